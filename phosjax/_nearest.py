"""The known names nearest a misspelt one, for a "did you mean" in an error message."""

import difflib
import functools
import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

Class = TypeVar("Class", bound=type)


def _one_letter_apart(word: str, name: str) -> bool:
    return len(word) == len(name) and sum(a != b for a, b in zip(word, name, strict=True)) == 1


def one_edit_apart(word: str, name: str) -> bool:
    """Whether ``name`` is ``word`` with at most one typo, letters compared regardless of
    case: one letter replaced, added or left out, or two adjacent letters swapped. Stricter
    than `nearest`, for names a user makes up (folders): among many of one pattern,
    ``nu_none`` is `nearest` ``nu_int`` and ``nu_ex3`` too.

    Examples:
      >>> one_edit_apart("exmaple", "example"), one_edit_apart("rusn", "runs")
      (True, True)
      >>> one_edit_apart("nu_none", "nu_nine"), one_edit_apart("nu_none", "nu_non")
      (True, True)
      >>> one_edit_apart("nu_none", "nu_int"), one_edit_apart("nu_none", "nu_ex3")
      (False, False)
    """
    short, long = sorted((word.casefold(), name.casefold()), key=len)
    if len(long) - len(short) > 1:
        return False
    i = next((k for k, (a, b) in enumerate(zip(short, long, strict=False)) if a != b), len(short))
    if len(short) < len(long):
        return short[i:] == long[i + 1 :]
    swapped = short[i : i + 2] == long[i : i + 2][::-1] and short[i + 2 :] == long[i + 2 :]
    return short[i + 1 :] == long[i + 1 :] or swapped


def _initials(name: str) -> str:
    """The initials of the last ``.``-separated key of ``name``, after the keys before it:
    ``grid.lr`` of ``grid.learning_rate``."""
    head, dot, key = name.rpartition(".")
    return head + dot + "".join(part[:1] for part in key.split("_")) if "_" in key else ""


def nearest(word: str, known: Iterable[str], cutoff: float = 0.6) -> list[str]:
    """Up to three of ``known`` closest to ``word``, the closest first; letters compared
    regardless of case (``MLP`` is near ``mlp``). A two-letter ``word`` is also near a
    name of two letters one of which differs (``dz`` and ``dx``), which the ratio of
    ``cutoff`` never finds (1 letter of 2 in common is 0.5); a one-letter one is near none.
    A word that spells the initials of a name's ``_``-joined parts is nearest it (``lr``,
    ``learning_rate``; ``grid.lr``, ``grid.learning_rate``), unless a name is the word in
    another case, nearest of all (``LR``, ``lr``).

    Examples:
      >>> nearest("--dirr", ["--dir", "--dirs", "--port"]), nearest("zzz", ["mlp"])
      (['--dir', '--dirs'], [])
      >>> nearest("MLP", ["mlp", "cnn1d"]), nearest("Adam", ["adam", "adamw"])
      (['mlp'], ['adam', 'adamw'])
      >>> nearest("dz", ["dx", "dxx", "zd"]), nearest("x", ["y", "z"])
      (['dx'], [])
      >>> nearest("lr", ["lr_schedule", "learning_rate"]), nearest("LR", ["learning_rate", "lr"])
      (['learning_rate'], ['lr', 'learning_rate'])
      >>> nearest("grid.wd", ["grid", "grid.width", "grid.weight_decay"])
      ['grid.weight_decay', 'grid.width', 'grid']
      >>> nearest("mpl", ["mlp", "mlp"])
      ['mlp']
    """
    by_folded: dict[str, list[str]] = {}
    for name in dict.fromkeys(known):  # each once: a name given twice is suggested once
        by_folded.setdefault(name.casefold(), []).append(name)
    folded_word = word.casefold()
    close = difflib.get_close_matches(folded_word, list(by_folded), n=3, cutoff=cutoff)
    if len(folded_word) == 2:
        close += [f for f in by_folded if _one_letter_apart(folded_word, f) and f not in close]
    if len(folded_word) > 1:
        close[:0] = [f for f in by_folded if _initials(f) == folded_word and f not in close]
    if folded_word in by_folded:  # the word itself in another case: nearest of all
        close = [folded_word, *(f for f in close if f != folded_word)]
    return [name for folded in close for name in by_folded[folded]][:3]


def nearest_names(word: str, known: Iterable[str], cutoff: float = 0.6) -> str:
    """`nearest`, quoted and joined by "or"; "" if none.

    Examples:
      >>> nearest_names("mpl", ["mlp", "cnn1d"]), nearest_names("zzz", ["mlp"])
      ("'mlp'", '')
    """
    return " or ".join(map(repr, nearest(word, known, cutoff)))


def did_you_mean(unknown: Sequence[str], known: Iterable[str], cutoff: float = 0.6) -> str:
    """``". Did you mean ...?"`` with the nearest of ``known`` to each of ``unknown`` (named
    when there are several), for the end of an error message; "" if none is near
    (`nearest`, ``cutoff``).

    Examples:
      >>> did_you_mean(["widht"], ["width", "depth"])
      ". Did you mean 'width'?"
      >>> did_you_mean(["widht", "strid", "zzz"], ["width", "stride"])
      ". Did you mean 'width' for 'widht', 'stride' for 'strid'?"
      >>> did_you_mean(["zzz"], ["width"])
      ''
      >>> did_you_mean(["eval"], ["eval_every"]), did_you_mean(["eval"], ["eval_every"], cutoff=0.5)
      ('', ". Did you mean 'eval_every'?")
    """
    known = list(known)
    near = {word: nearest_names(word, known, cutoff) for word in unknown}
    hints = [f"{n} for {w!r}" if len(unknown) > 1 else n for w, n in near.items() if n]
    return f". Did you mean {', '.join(hints)}?" if hints else ""


def fields_checked(cls: Class, otherwise: Callable[[str], str] | None = None) -> Class:
    """Decorates a dataclass so that a keyword that is none of its fields is a TypeError
    naming the class, the keyword, the nearest fields (`did_you_mean`), else what
    ``otherwise`` says of the first keyword, and every field, where Python's names only
    the keyword. Its dataclass subclasses, which get an ``__init__`` of their own, are
    checked too: the check is the class's ``__new__``. The signature, pickling and all
    else stay the dataclass's own.

    Examples:
      >>> import dataclasses
      >>> @fields_checked
      ... @dataclasses.dataclass(frozen=True)
      ... class Fit:
      ...     learning_rate: float = 1e-3
      ...     steps: int = 10
      >>> Fit(lr=0.1, stpes=5)
      Traceback (most recent call last):
      TypeError: Fit has no field 'lr', 'stpes'. Did you mean 'learning_rate' for 'lr',
      'steps' for 'stpes'? Its fields: learning_rate, steps.
      >>> Fit(0.1, steps=5).steps
      5
    """
    init = vars(cls)["__init__"]  # the dataclass's own

    @functools.wraps(init)  # its signature is the class's (`inspect.signature`)
    def checked_new(subclass: type, *args: Any, **kwargs: Any) -> Any:
        fields = _init_fields(subclass)
        if fields is not None and (unknown := [key for key in kwargs if key not in fields]):
            raise TypeError(no_field(subclass.__name__, unknown, fields, otherwise))
        return object.__new__(subclass)

    setattr(cls, "__new__", checked_new)  # noqa: B010 (mypy refuses assigning a method)
    return cls


@functools.cache
def _init_fields(cls: type) -> list[str] | None:
    """The keywords ``cls`` takes (its ``__init__``'s: its fields, InitVars too); None
    where it takes any (a subclass's own ``__init__(**kwargs)``, passing them on)."""
    parameters = inspect.signature(cls).parameters.values()
    if any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters):
        return None
    return [parameter.name for parameter in parameters]


def no_field(
    name: str,
    unknown: Sequence[Any],
    fields: Sequence[str],
    otherwise: Callable[[str], str] | None = None,
) -> str:
    """What `fields_checked` says of keys ``unknown``, none of the ``fields`` of the class
    ``name`` (a mapping's keys, e.g. YAML's, may be no str).

    Examples:
      >>> print(no_field("Fit", ["stpes", 2], ["lr", "steps"]))
      Fit has no field 'stpes', 2. Did you mean 'steps' for 'stpes'? Its fields: lr, steps.
      >>> print(no_field("Empty", ["lr"], []))
      Empty has no field 'lr'. It has no fields.
    """
    tail = otherwise(unknown[0]) if otherwise and isinstance(unknown[0], str) else ""
    near = did_you_mean(list(map(str, unknown)), fields) or f"{tail}."
    named = ", ".join(map(repr, unknown))
    listed = f"Its fields: {', '.join(fields)}." if fields else "It has no fields."
    return f"{name} has no field {named}{near} {listed}"
