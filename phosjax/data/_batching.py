"""On-device batching: a fresh permutation per epoch, drawn from the key and the step."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from phosjax.data._checks import one_integer, static_int_at_least
from phosjax.data._shuffle import key_words, permuted

PyTree = Any


_INT32_MAX = np.iinfo(np.int32).max


def batch_indices(
    key: jax.Array, step: jax.Array | int, num_examples: int, batch_size: int
) -> jax.Array:
    """The example indices of batch number `step`.

    Each epoch is a permutation of ``range(num_examples)`` drawn from the key and the
    epoch (`shuffled_positions` with ``salt=epoch``); its first
    ``num_examples // batch_size`` slices of `batch_size` are the epoch's batches (the
    remainder ``num_examples % batch_size`` examples of each permutation are skipped, a
    different few each epoch). Only the batch's positions of the permutation are computed,
    so a step costs ``O(batch_size)`` however large the split. Pure and jittable (`step` may
    be traced; `num_examples` and `batch_size` are static), and vmappable over `key`, so
    each cell of a grid gets its own order.

    Args:
        key: a PRNG key (typed or raw uint32).
        step: the global step, an integer counted from 0 across epochs. A concrete negative
            step is refused; a traced one cannot be checked, and gives a batch of a
            permutation of its own (step -1: the last batch of "epoch" -1).
        num_examples: size of the split to draw from.
        batch_size: examples per batch, at most `num_examples`.

    Returns:
        int32 indices, shape ``(batch_size,)``.

    Raises:
        TypeError: `step` is a float or a bool, or a size is no static int.
        ValueError: `step` is not a scalar, or concrete and negative or above ``2**31 - 1``; a
            size is below 1, or `batch_size` is larger than `num_examples`.

    Examples:
        >>> key = jax.random.key(0)
        >>> first_epoch = jnp.concatenate([batch_indices(key, s, 6, 2) for s in range(3)])
        >>> sorted(first_epoch.tolist())
        [0, 1, 2, 3, 4, 5]
        >>> batch_indices(key, 3, 6, 2).dtype
        dtype('int32')
    """
    num_examples = static_int_at_least("batch_indices: num_examples", num_examples)
    batch_size = static_int_at_least("batch_indices: batch_size", batch_size)
    call = "batch_indices({key}, {step}, num_examples, batch_size)"
    return _indices(key, step, num_examples, batch_size, call, f"{num_examples=}")


def _indices(
    key: jax.Array, step: jax.Array | int, num_examples: int, batch_size: int, call: str, pool: str
) -> jax.Array:
    """`batch_indices` of a checked ``num_examples`` and ``batch_size``. The errors name
    the function that ``call`` (its call, with ``{key}`` and ``{step}`` to fill in)
    calls; that of a ``batch_size`` above ``num_examples`` says ``pool`` (what the
    examples are, in its terms)."""
    where = call.partition("(")[0]
    if batch_size > num_examples:
        raise ValueError(
            f"{where}: batch_size={batch_size} is larger than {pool}; "
            f"use a batch_size of at most {num_examples}"
        )
    steps_per_epoch = num_examples // batch_size
    step = _checked_step(step, call.format(key="key", step="s"))
    words = key_words(key, call.format(key="k", step="step"))
    epoch, position = jnp.divmod(step, steps_per_epoch)
    positions = position * batch_size + jnp.arange(batch_size, dtype=jnp.int32)
    return permuted(words, positions, num_examples, salt=epoch)


def _checked_step(step: jax.Array | int, call: str) -> jax.Array:
    """`step` as int32; raises unless it is one integer (a scalar, not a bool) and, when
    concrete, within ``[0, 2**31 - 1]``, naming the function that ``call`` (a call of it
    at step ``s``) calls.

    Examples:
        >>> _checked_step(True, "take_batch(key, s, arrays, batch_size)")
        Traceback (most recent call last):
        TypeError: take_batch: step must be a whole number (the global step), got the bool True;
        pass a number, e.g. 0 for the first batch
    """
    where = call.partition("(")[0]
    one_integer(
        where,
        "step",
        step,
        "the global step",
        "0 for the first batch",
        f"for the batches of several steps, vmap: jax.vmap(lambda s: {call})(steps)",
    )
    if not isinstance(step, jax.core.Tracer):
        concrete = np.asarray(step)
        if np.any(concrete < 0):
            raise ValueError(
                f"{where}: step={step} is negative; steps count batches from 0 across "
                "epochs (the first batch is step 0)"
            )
        if np.any(concrete > _INT32_MAX):
            raise ValueError(
                f"{where}: step={step} does not fit the int32 that steps are counted in "
                f"(at most {_INT32_MAX}); count from 0 again under a new key instead"
            )
    return jnp.asarray(step, jnp.int32)


def take_batch(key: jax.Array, step: jax.Array | int, arrays: PyTree, batch_size: int) -> PyTree:
    """Gather batch number `step` from every leaf of `arrays` (rows on axis 0).

    The leaves share their leading size, e.g. ``(x_train, y_train)`` already on device; the
    batch is ``leaf[batch_indices(key, step, num_examples, batch_size)]`` for each leaf.

    Args:
        key: a PRNG key.
        step: the global step.
        arrays: a pytree of arrays with the same leading dimension.
        batch_size: examples per batch.

    Returns:
        The same pytree, each leaf of leading size `batch_size`.

    Raises:
        ValueError: naming take_batch: the leaves have no rows, fewer than `batch_size`,
            different leading sizes, or one is a scalar; `batch_size` is below 1; `step`
            as in `batch_indices`.
        TypeError: naming take_batch: `batch_size` is no static int; `step` as in
            `batch_indices`.

    Examples:
        >>> x, y = jnp.arange(12.0).reshape(6, 2), jnp.arange(6)
        >>> xb, yb = take_batch(jax.random.key(0), 0, (x, y), 4)
        >>> bool(jnp.all(xb[:, 0] == 2 * yb)), xb.shape
        (True, (4, 2))
    """
    leaves = jax.tree_util.tree_leaves_with_path(arrays)
    if not leaves:
        raise ValueError("take_batch: `arrays` has no leaves; pass e.g. (x_train, y_train)")
    for path, leaf in leaves:
        if not np.shape(leaf):
            raise ValueError(
                f"take_batch: the leaf arrays{jax.tree_util.keystr(path)} is a scalar; every "
                "leaf must be an array with one row per example (a list's items are leaves)"
            )
    sizes = {int(np.shape(leaf)[0]) for _, leaf in leaves}
    if len(sizes) != 1:
        raise ValueError(
            f"take_batch: the leaves of `arrays` have different leading sizes {sorted(sizes)}; "
            "all must have one row per example"
        )
    rows = sizes.pop()
    batch_size = static_int_at_least("take_batch: batch_size", batch_size)
    if not rows:
        raise ValueError(
            "take_batch: the leaves of `arrays` have no rows; give at least "
            f"batch_size={batch_size!r} rows, one per example"
        )
    call = "take_batch({key}, {step}, arrays, batch_size)"
    indices = _indices(key, step, rows, batch_size, call, f"the {rows} rows of `arrays`")
    return jax.tree_util.tree_map(lambda leaf: jnp.take(leaf, indices, axis=0), arrays)
