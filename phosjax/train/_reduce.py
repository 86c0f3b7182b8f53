"""Reductions over all of a pytree's leaves at once: its global norm, its finiteness."""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from phosjax._widening import summing_dtype


def global_norm(tree: Any) -> jax.Array:
    """The L2 norm of all of ``tree``'s leaves together, in one reduction over them
    concatenated (`scaled_l2_norm`): one reduction per leaf (`optax.tree.norm`) made a one-cell
    MLP step ~10% slower on XLA:CPU (``python benchmarks/step_costs.py``).

    Examples:
      >>> float(global_norm({"a": jnp.array([3.0]), "b": jnp.array([[4.0]])}))
      5.0
      >>> float(global_norm({"a": jnp.array([3e19]), "b": jnp.array([[4e19]])}))  # no overflow
      5e+19
      >>> float(global_norm({"a": jnp.array([3, 4])})), float(global_norm([jnp.array([jnp.nan])]))
      (5.0, nan)
    """
    root, scale = scaled_global_norm(tree)
    return root / scale


def scaled_global_norm(tree: Any) -> tuple[jax.Array, jax.Array]:
    """`global_norm` as ``(root, scale)``, the norm being ``root / scale`` (`scaled_l2_norm`):
    ``root`` is finite wherever every entry is, even where the norm exceeds the dtype's
    largest value.

    Examples:
      >>> root, scale = scaled_global_norm({"a": jnp.array([3e38]), "b": jnp.array([3e38])})
      >>> float(root / scale), f"{float(root) / float(scale):.4e}"  # above float32's max
      (inf, '4.2426e+38')
    """
    return _reduce_concatenated(tree, scaled_l2_norm, (jnp.zeros(()), jnp.ones(())))


def scaled_l2_norm(v: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(root, scale)``, the L2 norm of the vector ``v`` being ``root / scale``: the root
    of its sum of squares (``scale`` 1) or, where that sum overflows (a float32 norm above
    ~1.8e19, every entry finite), of the sum of the squares of ``v`` times ``scale``, a
    power of two (exact; a square it makes underflow is too small to count beside such a
    norm). That second sum runs only then (in a `jax.lax.cond`; `jax.vmap` makes it a
    select, which computes both). A narrower float (bfloat16, float16) or an integer
    ``v`` is summed in float32, whose ``root`` and ``scale`` come back: a bfloat16 sum
    of squares would round the norm to bfloat16's 3 digits. ``scale`` leaves room for
    2^32 entries of float32's (and bfloat16's) largest value, far more of float64's: so
    ``root`` is finite wherever every entry is (of up to that many entries), even where
    the norm is not: whether ``v`` is finite is whether ``root`` is.

    Examples:
      >>> [float(x) for x in scaled_l2_norm(jnp.array([3.0, 4.0]))]
      [5.0, 1.0]
      >>> root, scale = scaled_l2_norm(jnp.array([3e38, 3e38]))  # its norm overflows float32
      >>> bool(jnp.isfinite(root)), float(root / scale), f"{float(root) / float(scale):.4e}"
      (True, inf, '4.2426e+38')
    """
    v = v.astype(summing_dtype(v.dtype))
    maxexp = jnp.finfo(v.dtype).maxexp
    scale = jnp.asarray(2.0 ** -(maxexp // 2 + maxexp // 8), v.dtype)  # float32: 2^-80
    plain = jnp.sum(v * v)
    fits = jnp.isfinite(plain)
    root = jax.lax.cond(
        fits, lambda: jnp.sqrt(plain), lambda: jnp.sqrt(jnp.sum(jnp.square(v * scale)))
    )
    return root, jnp.where(fits, jnp.ones((), v.dtype), scale)


def all_finite(tree: Any) -> jax.Array:
    """Whether every entry of ``tree``'s floating-point leaves is finite (no NaN, no inf;
    other leaves, e.g. a step count, always are), in one reduction over those leaves
    concatenated (as `global_norm`; one per leaf was ~1% slower on a one-cell MLP step on
    XLA:CPU, interleaved runs).

    Examples:
      >>> bool(all_finite({"a": jnp.array([1.0]), "b": jnp.array([[jnp.inf]])}))
      False
      >>> bool(all_finite({"a": jnp.array([1.0]), "count": jnp.array(3)}))
      True
    """
    floats = [leaf for leaf in jax.tree.leaves(tree) if jnp.issubdtype(leaf.dtype, jnp.inexact)]
    return _reduce_concatenated(floats, lambda v: jnp.all(jnp.isfinite(v)), jnp.ones((), bool))


def _reduce_concatenated(tree: Any, reduce: Callable[[jax.Array], Any], empty: Any) -> Any:
    """``reduce`` of ``tree``'s leaves flattened and concatenated (one reduction for them
    all), ``empty`` when it has none."""
    leaves = [jnp.ravel(leaf) for leaf in jax.tree.leaves(tree)]
    if not leaves:
        return empty
    with jax.numpy_dtype_promotion("standard"):  # as concatenate promotes, even if strict
        dtype = jnp.result_type(*leaves)
    return reduce(jnp.concatenate([leaf.astype(dtype) for leaf in leaves]))
