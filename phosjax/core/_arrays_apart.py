"""`arrays_apart`: the arrays of a pytree apart from its other leaves, to trace them alone."""

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

_ARRAYS = (jax.Array, np.ndarray, jax.ShapeDtypeStruct)


def arrays_apart(tree: Any, scalars: bool = True) -> tuple[list[Any], Callable[[list[Any]], Any]]:
    """``(arrays, put_back)``: the leaves of ``tree`` that are arrays (jax's, numpy's,
    `jax.ShapeDtypeStruct` s) and a function of such a list that returns ``tree`` with them
    in their places. Traced through ``put_back``, only the arrays are traced: the other
    leaves (a Python int a model loops over, a nested list of numbers) reach the function
    as they are, as ``model.apply`` gets them, not as one traced scalar each. With
    ``scalars=False``, an array of shape ``()`` stays with them: a model may read it in
    Python (a flag given by name, ``train=jnp.array(True)``; a count), as ``model.apply``
    gets it concrete.

    Examples:
      >>> import jax.numpy as jnp
      >>> arrays, put_back = arrays_apart({"x": jnp.ones(2), "n": 3})
      >>> jax.jit(lambda a: put_back(a)["x"] * put_back(a)["n"])(arrays).tolist()
      [3.0, 3.0]
      >>> len(arrays_apart({"y": jnp.ones(2), "train": jnp.array(True)}, scalars=False)[0])
      1
    """
    leaves, treedef = jax.tree.flatten(tree)
    arrays = [
        i
        for i, leaf in enumerate(leaves)
        if isinstance(leaf, _ARRAYS) and (scalars or leaf.shape != ())
    ]

    def put_back(given: list[Any]) -> Any:
        filled = list(leaves)
        for i, array in zip(arrays, given, strict=True):
            filled[i] = array
        return jax.tree.unflatten(treedef, filled)

    return [leaves[i] for i in arrays], put_back
