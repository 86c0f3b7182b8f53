"""Names listed in a message: the first few, and how many more there are."""

from collections.abc import Sequence


def listing(names: Sequence[str], limit: int = 5, sep: str = ", ", *, as_list: bool = False) -> str:
    """The first ``limit`` of ``names`` joined by ``sep`` (``as_list``: written as a Python
    list), then how many more there are: " and N more", or "; and N more" after a ``"; "``
    list (whose names may hold commas); "N more" alone where none is shown.

    Examples:
      >>> listing(["a", "b"]), listing(["a", "b", "c"], 2)
      ('a, b', 'a, b and 1 more')
      >>> listing(["a", "b", "c"], 2, as_list=True)
      "['a', 'b'] and 1 more"
      >>> listing(["x -> 1, 2", "y -> 3", "z -> 4"], 2, sep="; ")
      'x -> 1, 2; y -> 3; and 1 more'
      >>> listing(["a", "b"], 0)
      '2 more'
    """
    shown = repr(list(names[:limit])) if as_list else sep.join(names[:limit])
    if len(names) <= limit:
        return shown
    if not shown:  # limit 0: no name before "and"
        return f"{len(names) - limit} more"
    return f"{shown}{';' if sep == '; ' else ''} and {len(names) - limit} more"


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1, thousands apart (as the viewer's
    ``counted``).

    Examples:
      >>> counted(1, "cell"), counted(0, "cell"), counted(36928, "result row")
      ('1 cell', '0 cells', '36,928 result rows')
    """
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"
