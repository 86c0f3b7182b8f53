"""`eval_shape_as_applied`: `jax.eval_shape` that leaves an input's Python values as they
are."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from phosjax.core._arrays_apart import arrays_apart


def eval_shape_as_applied(fn: Callable[..., Any], *args: Any) -> Any:
    """``jax.eval_shape(fn, *args)`` abstracting only the arrays (and
    `jax.ShapeDtypeStruct` s) among the leaves of ``args``; the other leaves (Python
    numbers, a nested list of them that an input node reads as its array) reach ``fn``
    as they are, as ``apply`` gets them, not as one traced scalar per number.

    Examples:
      >>> import jax.numpy as jnp
      >>> from phosjax.core._numbers import numbers_as_array
      >>> rows_times = lambda rows, w: numbers_as_array(rows) @ w  # as an input node reads rows
      >>> eval_shape_as_applied(rows_times, [[1.0, 2.0]], jnp.ones((2, 3))).shape
      (1, 3)
    """
    arrays, put_back = arrays_apart(args)
    return jax.eval_shape(lambda arrays: fn(*put_back(arrays)), arrays)
