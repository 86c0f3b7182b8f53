"""`eval_shape_as_applied`: `jax.eval_shape` that leaves an input's Python values as they are."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def _is_number_list(value: Any) -> bool:
    """Whether ``value`` is a (nested) list of Python numbers alone, which a node reads as
    one array.

    Examples:
      >>> _is_number_list([[1.0, 2.0]]), _is_number_list([np.ones(2)]), _is_number_list([])
      (True, False, False)
    """
    leaves = jax.tree.leaves(value)
    return (
        isinstance(value, list)
        and bool(leaves)
        and all(isinstance(leaf, int | float) for leaf in leaves)
    )


def eval_shape_as_applied(fn: Callable[..., Any], *args: Any) -> Any:
    """``jax.eval_shape(fn, *args)`` abstracting only the arrays (and
    `jax.ShapeDtypeStruct` s) among the leaves of ``args``, a nested list of numbers
    taken as its array (as a node reads it: one array, not one traced scalar per number,
    and so drawn); the other leaves (Python numbers) reach ``fn`` as they are.

    Examples:
      >>> import jax.numpy as jnp
      >>> x, y = eval_shape_as_applied(lambda x, w: (x, x @ w), [[1.0, 2.0]], jnp.ones((2, 3)))
      >>> x.shape, y.shape
      ((1, 2), (1, 3))
    """
    args = jax.tree.map(
        lambda v: jnp.asarray(v) if _is_number_list(v) else v, args, is_leaf=_is_number_list
    )
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
