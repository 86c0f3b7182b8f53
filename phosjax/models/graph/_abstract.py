"""`eval_shape_as_applied`: `jax.eval_shape` that leaves an input's Python values as they
are; `numbers_as_array`: a nested list of numbers as the one array a node reads."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def numbers_as_array(value: Any) -> Any:
    """``value``; a (nested) list or tuple of Python numbers as one array, as a node and
    `phosjax.inject` read it, not as a pytree of scalars (a ragged one stays one, for
    the caller to name).

    Examples:
      >>> numbers_as_array([[0.0, 1.0]]).shape, numbers_as_array((jnp.ones(2), jnp.ones(3)))
      ((1, 2), (Array([1., 1.], dtype=float32), Array([1., 1., 1.], dtype=float32)))
      >>> numbers_as_array([[0.0, 1.0], [2.0]])
      [[0.0, 1.0], [2.0]]
    """
    leaves = jax.tree.leaves(value)
    if isinstance(value, list | tuple) and leaves and all(type(v) in (int, float) for v in leaves):
        with contextlib.suppress(ValueError):  # ragged: no array
            return jnp.asarray(value)
    return value


def eval_shape_as_applied(fn: Callable[..., Any], *args: Any) -> Any:
    """``jax.eval_shape(fn, *args)`` abstracting only the arrays (and
    `jax.ShapeDtypeStruct` s) among the leaves of ``args``; the other leaves (Python
    numbers, a nested list of them that an input node reads as its array) reach ``fn``
    as they are, as ``apply`` gets them, not as one traced scalar per number.

    Examples:
      >>> import jax.numpy as jnp
      >>> rows_times = lambda rows, w: numbers_as_array(rows) @ w  # as an input node reads rows
      >>> eval_shape_as_applied(rows_times, [[1.0, 2.0]], jnp.ones((2, 3))).shape
      (1, 3)
    """
    leaves, tree = jax.tree.flatten(args)
    traced = [
        i
        for i, leaf in enumerate(leaves)
        if isinstance(leaf, jax.Array | np.ndarray | jax.ShapeDtypeStruct)
    ]

    def on_arrays(arrays: list[Any]) -> Any:
        given = list(leaves)
        for i, array in zip(traced, arrays, strict=True):
            given[i] = array
        return fn(*jax.tree.unflatten(tree, given))

    return jax.eval_shape(on_arrays, [leaves[i] for i in traced])
