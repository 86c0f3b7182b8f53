"""How an error message names a function, a module, a `functools.partial` of one, or a
value's type, and shows a value (`cut_repr`)."""

import functools
import re
import reprlib
from typing import Any


def callable_name(fn: Any, attribute: str = "__name__") -> str:
    """``fn``'s ``attribute`` (``__name__`` or ``__qualname__``), its type's name when it
    has none (a module instance); for a `functools.partial`, the function it wraps and
    the arguments it binds, so the user recognises it.

    Examples:
      >>> callable_name(abs), callable_name(functools.partial(round, ndigits=2))
      ('abs', 'partial(round, ndigits=2)')
      >>> callable_name(functools.partial(max, 1, key=None), "__qualname__")
      'partial(max, 1, key=None)'
    """
    if isinstance(fn, functools.partial):
        bound = [
            callable_name(fn.func, attribute),
            *map(reprlib.repr, fn.args),
            *(f"{key}={reprlib.repr(value)}" for key, value in fn.keywords.items()),
        ]
        return f"partial({', '.join(bound)})"
    return str(getattr(fn, attribute, type(fn).__name__))


def a_type(value: Any) -> str:
    """``value``'s type name with its article, for an error, as the name is read
    (``ndarray`` "en-d-array", ``uint8`` "you-int-eight").

    Examples:
      >>> import numpy as np
      >>> a_type(3), a_type([]), a_type(np.ones(2)), a_type(abs), a_type(np.uint8(1))
      ('an int', 'a list', 'an ndarray', 'a builtin_function_or_method', 'a uint8')
    """
    name = type(value).__name__
    vowel = name[0].lower() in "aeiou" and not name.lower().startswith(("uint", "uni", "use"))
    return f"{'an' if vowel or name == 'ndarray' else 'a'} {name}"


def shown(value: Any) -> str:
    """``value`` as an error names what was given in its place: None as itself, anything
    else by its type.

    Examples:
      >>> shown(None), shown([1])
      ('None', 'a list')
    """
    return repr(value) if value is None else a_type(value)


REPR_LIMIT = 60
"""How many characters of a value's repr an error message or a repr shows (`cut_repr`'s
default): a longer one is cut or summarised."""


def cut_repr(value: Any, limit: int = REPR_LIMIT) -> str:
    """``repr(value)`` on one line, cut to ``limit`` characters with ``…`` where longer (a
    cut number would read as another); an array's then names its shape and dtype.

    Examples:
      >>> import numpy as np
      >>> cut_repr("ab"), cut_repr("abcdef", 5), cut_repr(np.full((2, 9), 2**40), 30)
      ("'ab'", "'abc…", 'array([[1099511627776, 109951… (shape (2, 9), dtype int64)')
    """
    text = re.sub(r"\n\s*", " ", repr(value))  # a str's repr holds no newline: an array's
    if len(text) <= limit:
        return text
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    array = f" (shape {tuple(shape)}, dtype {dtype})" if shape is not None and dtype else ""
    return text[: limit - 1] + "…" + array
