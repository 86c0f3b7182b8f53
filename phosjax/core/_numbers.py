"""`numbers_as_array`: a nested list of Python numbers as the one array a model reads
(`numbers_read_together`: the groups of numbers read as one array each)."""

import contextlib
from typing import Any

import jax
import jax.numpy as jnp


def numbers_as_array(value: Any) -> Any:
    """``value``; a (nested) list or tuple of Python numbers (no bools) as one array, as
    `phosjax.blurb` reads its input, not as a pytree of scalars (a ragged one stays one,
    for the caller to name). A graph node reads more as one array: any scalars, 0-d
    arrays, numpy scalars and bools too (`phosjax.models.graph`'s `_scalars_as_array`).

    Examples:
      >>> numbers_as_array([[0.0, 1.0]]).shape, numbers_as_array((jnp.ones(2), jnp.ones(3)))
      ((1, 2), (Array([1., 1.], dtype=float32), Array([1., 1., 1.], dtype=float32)))
      >>> numbers_as_array([[0.0, 1.0], [2.0]])
      [[0.0, 1.0], [2.0]]
    """
    if _numbers_in_list(value):
        with contextlib.suppress(ValueError):  # ragged: no array
            return jnp.asarray(value)
    return value


def _numbers_in_list(value: Any) -> list[Any]:
    """The leaves of ``value`` if it is a (nested) list or tuple of Python numbers
    only, read as one array; else none."""
    leaves = jax.tree.leaves(value)
    if isinstance(value, list | tuple) and all(type(v) in (int, float) for v in leaves):
        return leaves
    return []


def numbers_read_together(value: Any) -> list[list[Any]]:
    """The Python numbers in ``value``, in groups of those read as one array, of one
    dtype: each (nested) list or tuple of numbers only (`numbers_as_array`), also
    inside a dict, as one group; every other number alone.

    Examples:
      >>> numbers_read_together({"a": [2**40, 0.5], "b": (3, jnp.ones(2)), "c": 1.5})
      [[1099511627776, 0.5], [3], [1.5]]
    """
    if type(value) in (int, float):
        return [[value]]
    if together := _numbers_in_list(value):
        return [together]
    children = jax.tree.leaves(value, is_leaf=lambda v: v is not value)
    if len(children) == 1 and children[0] is value:  # an array, a str: no number
        return []
    return [group for child in children for group in numbers_read_together(child)]
