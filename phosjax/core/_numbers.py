"""`numbers_as_array`: a nested list of Python numbers as the one array a model reads."""

import contextlib
from typing import Any

import jax
import jax.numpy as jnp


def numbers_as_array(value: Any) -> Any:
    """``value``; a (nested) list or tuple of Python numbers as one array, as a graph
    node, `phosjax.inject` and `phosjax.blurb` read it, not as a pytree of scalars (a
    ragged one stays one, for the caller to name).

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
