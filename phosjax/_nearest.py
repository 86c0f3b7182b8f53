"""The known names nearest a misspelt one, for a "did you mean" in an error message."""

import difflib
from collections.abc import Iterable


def nearest_names(word: str, known: Iterable[str], cutoff: float = 0.6) -> str:
    """Up to three of ``known`` closest to ``word``, quoted and joined by "or"; "" if none.

    Examples:
      >>> nearest_names("mpl", ["mlp", "cnn1d"]), nearest_names("zzz", ["mlp"])
      ("'mlp'", '')
    """
    near = difflib.get_close_matches(word, list(known), n=3, cutoff=cutoff)
    return " or ".join(map(repr, near))
