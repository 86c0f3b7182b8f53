"""`GroupState`: everything a group's training carries, stacked on a leading cell axis."""

import functools
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

from phosjax.core import set_knobs
from phosjax.train._group import Group
from phosjax.train._optim import make_optimizer


@flax.struct.dataclass
class GroupState:
    """The training state of a group: a pytree, every leaf with a leading cell axis.

    Plain arrays only (keys are raw ``uint32`` key data), so ``jax.device_get(state)``
    gives numpy that orbax or ``np.savez`` can store, and `run_group` resumes from it.

    Attributes:
      params: the model parameters.
      collections: the other persistent variable collections (``batch_stats``, ``knobs``).
      opt_state: the optimizer state (its ``hyperparams`` hold each cell's learning rate,
        weight decay and momentum).
      hparams: the other per-cell values: ``label_smoothing`` and, when there are
        regularizers, ``regularizer_strength`` (no zero-size arrays: their sharding
        would not survive a compiled call).
      data_key: raw key data drawing each cell's batches.
      dropout_key: raw key data for the ``"dropout"`` stream (folded with the step).
      step: steps done.
      diverged: whether the loss became NaN/inf; the cell is then frozen.
      diverged_at: the step at which it diverged (-1: never).
    """

    params: Any
    collections: dict[str, Any]
    opt_state: Any
    hparams: dict[str, jax.Array]
    data_key: jax.Array
    dropout_key: jax.Array
    step: jax.Array
    diverged: jax.Array
    diverged_at: jax.Array


def _root_keys(group: Group) -> jax.Array:
    """Each cell's ``jax.random.key(seed)`` as raw key data, stacked: every seed
    `jax.random.key` takes gives the keys the cell would get alone. Seeds in
    ``[0, 2**31)`` (int32, the same keys) are made in one call, others one by one."""
    seeds = [cell.seed for cell in group.cells]
    if all(isinstance(s, int) and 0 <= s < 2**31 for s in seeds):
        return jax.random.key_data(jax.vmap(jax.random.key)(jnp.asarray(seeds, jnp.int32)))
    keys = []
    for seed, index in zip(seeds, group.index, strict=True):
        try:
            keys.append(jax.random.key_data(jax.random.key(seed)))
        except (OverflowError, TypeError) as error:
            raise ValueError(
                f"init_group: cell {index} has seed {seed!r}, which jax.random.key "
                f"refuses ({error}); use an int in [-2**63, 2**63)"
            ) from error
    return jnp.stack(keys)


@functools.cache
def _init_fn(signature: Any, input_shape: tuple[int, ...]) -> Any:
    model_config, _, hp = signature
    model = model_config.build()
    knob_selectors = [selector for selector, _ in hp.knobs]

    def init_cell(root_key: jax.Array, v: dict[str, jax.Array]) -> GroupState:
        # Made here, not in the cached factory: a factory first called under a trace
        # (e.g. `jax.eval_shape(init_group, ...)`) would otherwise cache a tracer.
        x0 = jnp.zeros((1, *input_shape), jnp.float32)
        root = jax.random.wrap_key_data(root_key)
        init_key, data_key, dropout_key = jax.random.split(root, 3)
        variables = dict(model.init(init_key, x0, train=False))
        if knob_selectors:
            values = {s: v["knob_value"][i] for i, s in enumerate(knob_selectors)}
            variables = set_knobs(variables, values)
        params = variables.pop("params")
        tx = make_optimizer(
            hp.optimizer,
            learning_rate=v["learning_rate"],
            weight_decay=v["weight_decay"],
            momentum=v["momentum"],
            grad_clip=hp.grad_clip,
        )
        return GroupState(
            params=params,
            collections=variables,
            opt_state=tx.init(params),
            hparams={k: v[k] for k in ("label_smoothing", "regularizer_strength") if k in v},
            data_key=jax.random.key_data(data_key),
            dropout_key=jax.random.key_data(dropout_key),
            step=jnp.zeros((), jnp.int32),
            diverged=jnp.zeros((), bool),
            diverged_at=jnp.full((), -1, jnp.int32),
        )

    return jax.jit(jax.vmap(init_cell))


def init_group(group: Group, data: Any) -> GroupState:
    """Initializes every cell of ``group``: params from its seed, knobs and hparams set.

    Cell ``i`` draws its params from the first of ``jax.random.split(jax.random.key(seed),
    3)`` (then its batches from the second, dropout from the third), exactly as it would
    alone. Compiled once per group signature and input shape.

    Args:
      group: from `plan_groups`.
      data: the group's data set (an `phosjax.data.ArrayDataset`; only its
        ``input_shape`` is used here).

    Returns:
      The state at step 0, on the default device.

    Raises:
      ValueError: a cell's seed is one `jax.random.key` refuses (names the cell).
    """
    init = _init_fn(group.signature(), tuple(data.input_shape))
    return init(_root_keys(group), group.values())
