"""How an error message names a function, a module, or a `functools.partial` of one."""

import functools
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
