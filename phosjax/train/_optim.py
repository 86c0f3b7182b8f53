"""Optimizers whose hyperparameters live in their state, so cells of a group may differ."""

import math
from typing import Any

import jax
import jax.numpy as jnp
import optax

from phosjax._widening import widened
from phosjax.train._config import (
    LR_SCHEDULES,
    OPTIMIZER_RANGES,
    OPTIMIZERS,
    HParams,
    check_float32,
    checked_grad_clip,
    int_at_least,
    number_in,
    one_of,
    refuse_optax_optimizer,
    refuse_optax_schedule,
)
from phosjax.train._reduce import scaled_global_norm


def _check_schedule(schedule: str) -> None:
    one_of("Unknown lr schedule", schedule, LR_SCHEDULES)


def lr_multiplier(schedule: str, warmup_steps: int, steps: int) -> optax.Schedule:
    """The factor on the learning rate at each update (counted from 0): a linear rise
    from 0 to 1 over ``warmup_steps``, then 1 (``"constant"``) or a decay to 0 at
    ``steps`` along half a cosine (``"cosine"``) or a line (``"linear"``).

    The same curves as optax's ``warmup_cosine_decay_schedule`` and ``linear_schedule``
    of a peak of 1 and an end of 0; the peak itself, per cell, is the optimizer's
    injected ``learning_rate``.

    Examples:
      >>> f = lr_multiplier("cosine", warmup_steps=2, steps=6)
      >>> [round(float(f(step)), 3) for step in range(7)]
      [0.0, 0.5, 1.0, 0.854, 0.5, 0.146, 0.0]
    """
    _check_schedule(schedule)
    steps = int_at_least("lr schedule: steps", steps, 1)
    warmup_steps = int_at_least("lr schedule: warmup_steps", warmup_steps, 0)
    if warmup_steps > steps:
        raise ValueError(
            f"lr schedule: warmup_steps must be in [0, steps={steps}], got {warmup_steps}."
        )
    decay_steps = max(steps - warmup_steps, 1)

    def multiplier(count: jax.Array) -> jax.Array:
        count = jnp.asarray(count, jnp.float32)
        rise = jnp.minimum(count / warmup_steps, 1.0) if warmup_steps else jnp.ones(())
        progress = jnp.clip((count - warmup_steps) / decay_steps, 0.0, 1.0)
        if schedule == "cosine":
            return rise * 0.5 * (1.0 + jnp.cos(math.pi * progress))
        if schedule == "linear":
            return rise * (1.0 - progress)
        return rise

    return multiplier


def clip_by_global_norm(max_norm: float) -> optax.GradientTransformation:
    """`optax.clip_by_global_norm` with a norm that does not overflow.

    optax's norm (`optax.tree.norm`) reaches inf for a finite float32 gradient of norm
    above ~1.8e19, and the clip then scaled the gradient by ``max_norm / inf``, to zeros.
    Where it does, this clip divides by `scaled_global_norm` instead (``t / norm`` as
    ``t * scale / root``: finite even for a norm above the dtype's largest value);
    elsewhere by optax's norm, so that a run rounds as before (XLA computes that
    `scaled_global_norm` once with the step's own). NumPy gradients come back as JAX
    arrays (float64 ones as float32 without x64, as `jax.numpy.asarray` makes them,
    without its warning on each update that casting to float64 gave).

    Examples:
      >>> import jax.numpy as jnp
      >>> clip = clip_by_global_norm(1.0)
      >>> clipped, _ = clip.update({"w": jnp.array([3e19, 4e19])}, clip.init(None))
      >>> [round(v, 6) for v in clipped["w"].tolist()]
      [0.6, 0.8]
      >>> clipped, _ = clip.update({"w": jnp.array([3e38, 3e38])}, clip.init(None))
      >>> [round(v, 6) for v in clipped["w"].tolist()]  # its norm overflows float32
      [0.707107, 0.707107]
    """

    def update(updates: optax.Updates, state: optax.OptState, params: object = None) -> tuple:
        del params
        updates = jax.tree.map(jnp.asarray, updates)
        plain = optax.tree.norm(jax.tree.map(widened, updates))
        root, scale = scaled_global_norm(updates)
        overflowed = ~jnp.isfinite(plain)
        root, scale = jnp.where(overflowed, root, plain), jnp.where(overflowed, scale, 1)
        within = root / scale < max_norm

        def clipped(t: jax.Array) -> jax.Array:
            wide = widened(t)
            wide = wide * scale.astype(wide.dtype) / root.astype(wide.dtype)
            return (wide * max_norm).astype(t.dtype)

        return jax.tree.map(lambda t: jnp.where(within, t, clipped(t)), updates), state

    return optax.GradientTransformation(optax.init_empty_state, update)


def as_dtype_of(new: jax.Array, old: jax.Array) -> jax.Array:
    """``new`` in ``old``'s dtype (itself when it has it already).

    Examples:
      >>> as_dtype_of(jnp.ones(2), jnp.zeros(1, jnp.bfloat16)).dtype
      dtype(bfloat16)
    """
    return new if new.dtype == old.dtype else new.astype(old.dtype)


def _keeping_state_dtypes(
    tx: optax.GradientTransformationExtraArgs,
) -> optax.GradientTransformationExtraArgs:
    """``tx`` whose update hands back its state in the dtypes it was given.

    ``tx.init`` makes the moments in the params' dtype, but a hyperparameter injected as
    a float32 array (a grid's per-cell value) promotes the update of bfloat16 params, and
    the moments with it: a loop carrying the state (the engine's `jax.lax.scan` over a
    chunk's steps) refused a state whose dtypes changed. The update runs under standard
    dtype promotion even where the caller's is strict: optax promotes implicitly (adam's
    bias correction raises a Python float to the int32 step count, ``1 - decay**count``
    in ``optax.tree.bias_correction``), which the caller cannot fix.
    """

    def update(
        updates: optax.Updates, state: optax.OptState, params: Any = None, **extra: Any
    ) -> tuple[optax.Updates, optax.OptState]:
        with jax.numpy_dtype_promotion("standard"):  # optax's own, even if strict
            updates, new = tx.update(updates, state, params, **extra)
        return updates, jax.tree.map(as_dtype_of, new, state)

    return optax.GradientTransformationExtraArgs(tx.init, update)


def _family(
    name: str, grad_clip: float | None, multiplier: optax.Schedule | None
) -> "optax.GradientTransformationExtraArgs | optax.GradientTransformation":
    def build(
        learning_rate: float, weight_decay: float, momentum: float
    ) -> optax.GradientTransformation:
        if name == "adamw":
            core = optax.adamw(learning_rate, weight_decay=weight_decay)
        else:
            base = {
                "adam": lambda: optax.adam(learning_rate),
                "sgd": lambda: optax.sgd(learning_rate),
                "momentum": lambda: optax.sgd(learning_rate, momentum=momentum),
            }[name]()
            core = optax.chain(optax.add_decayed_weights(weight_decay), base)
        if multiplier is not None:
            core = optax.chain(core, optax.scale_by_schedule(multiplier))
        if grad_clip is None:
            return core
        return optax.chain(clip_by_global_norm(grad_clip), core)

    return optax.inject_hyperparams(build)


def make_optimizer(
    name: str,
    *,
    learning_rate: float | jax.Array = 1e-3,
    weight_decay: float | jax.Array = 0.0,
    momentum: float | jax.Array = 0.9,
    grad_clip: float | None = None,
    lr_schedule: str = "constant",
    warmup_steps: int = 0,
    steps: int | None = None,
) -> optax.GradientTransformation:
    """An optimizer of family ``name`` with injected hyperparameters.

    ``learning_rate``, ``weight_decay`` and ``momentum`` are stored in the optimizer
    state (``state.hyperparams``), so a grid stacks them on its cell axis and one compiled
    update serves cells with different values. A schedule scales each update by
    `lr_multiplier` (``adamw``'s decoupled decay too, as optax does with a scheduled
    learning rate). An update hands back the state in the dtypes ``init`` made it (the
    moments of bfloat16 params stay bfloat16, though a float32 hyperparameter promotes
    the update), so a `jax.lax.scan` can carry it; it runs under
    ``jax.numpy_dtype_promotion("strict")`` too (optax's own promotions allowed).

    Args:
      name: ``"adam"``, ``"adamw"``, ``"sgd"`` or ``"momentum"``.
      learning_rate: the initial value stored in the state (the peak, under a schedule).
      weight_decay: L2 added to the gradient (``adamw``: decoupled decay).
      momentum: used by ``"momentum"``.
      grad_clip: clip gradients to this global norm first, > 0 (None: no clipping).
      lr_schedule: ``"constant"``, ``"cosine"`` or ``"linear"`` (see `lr_multiplier`).
      warmup_steps: updates over which the learning rate rises from 0.
      steps: the number of updates the schedule spans; needed by a decay or a warmup.

    Raises:
      TypeError: ``name`` is no str (e.g. an `HParams`, or an optax transformation: the
        message, as `HParams`' ValueError for one, says to give the family's name).
      ValueError: an unknown ``name`` or ``lr_schedule``, a schedule without ``steps``, a
        ``grad_clip`` that is no number above 0 (a negative one would turn every clipped
        step up the loss; 0, every step to nothing), or a ``learning_rate``,
        ``weight_decay`` or ``momentum`` that is no single number (an array of several
        would scale each param entry by another) or, unless traced (a grid's per-cell
        value), one out of the range `HParams` takes (a negative rate climbs the loss)
        or, without ``jax_enable_x64``, one beyond float32's range (`check_float32`: the
        state would hold inf).

    Examples:
      >>> import jax.numpy as jnp
      >>> tx = make_optimizer("sgd", learning_rate=0.5)
      >>> params = {"w": jnp.ones(2)}
      >>> state = tx.init(params)
      >>> float(state.hyperparams["learning_rate"])
      0.5
      >>> tx.update({"w": jnp.ones(2)}, state, params)[0]["w"].tolist()
      [-0.5, -0.5]
      >>> tx = make_optimizer("sgd", learning_rate=0.5, lr_schedule="linear", steps=4)
      >>> tx.update({"w": jnp.ones(2)}, tx.init(params), params)[0]["w"].tolist()
      [-0.5, -0.5]
    """
    refuse_optax_optimizer("make_optimizer: name", name, TypeError)
    if not isinstance(name, str):
        raise TypeError(
            f"make_optimizer: name must be an optimizer family's name, one of {OPTIMIZERS}, "
            f"got a value of type {type(name).__name__}"
            + (": pass hparams.optimizer (and its rates)" if isinstance(name, HParams) else "")
        )
    one_of("Unknown optimizer", name, OPTIMIZERS)
    _check_schedule(lr_schedule)  # before asking for the steps an unknown one would need
    given = {"learning_rate": learning_rate, "weight_decay": weight_decay, "momentum": momentum}
    for key, least, most, hint in OPTIMIZER_RANGES:
        value, where = given[key], f"make_optimizer {key}"
        refuse_optax_schedule(where, value, key)
        if isinstance(value, jax.core.Tracer):  # a cell's value in a grid's init
            if value.shape != ():
                raise ValueError(
                    f"{where} must be one number, got a traced array of shape {value.shape}, "
                    "which would scale each param entry by another value; for one value per "
                    "cell, jax.vmap the optimizer's init over the cells (as init_group does)."
                )
            continue
        checked = number_in(where, value, least, most, hint=hint)
        if isinstance(value, jax.Array):
            continue  # its dtype kept: finite there
        if jax.dtypes.canonicalize_dtype(float) == jnp.float32:  # not float64 (x64)
            check_float32(where, checked, "the optimizer's state (without jax_enable_x64)")
        given[key] = checked
    if grad_clip is not None:
        grad_clip = checked_grad_clip("make_optimizer grad_clip", grad_clip)
    multiplier = None
    if lr_schedule != "constant" or warmup_steps:
        if steps is None:
            raise ValueError(
                f"make_optimizer: lr_schedule={lr_schedule!r} with warmup_steps="
                f"{warmup_steps} needs steps=, the number of updates it spans."
            )
        multiplier = lr_multiplier(lr_schedule, warmup_steps, steps)
    injected = _family(name, grad_clip, multiplier)(**given)
    return _keeping_state_dtypes(injected)


def hparams_multiplier(hp: HParams) -> optax.Schedule | None:
    """``hp``'s `lr_multiplier`; None when its rate stays constant (`HParams.scheduled`)."""
    return lr_multiplier(hp.lr_schedule, hp.warmup_steps, hp.steps) if hp.scheduled else None


def hparams_optimizer(hp: HParams, **injected: float | jax.Array) -> optax.GradientTransformation:
    """`make_optimizer` for ``hp``: its family, clipping and schedule; ``injected``
    gives the per-cell ``learning_rate``, ``weight_decay`` and ``momentum``."""
    return make_optimizer(
        hp.optimizer,
        grad_clip=hp.grad_clip,
        lr_schedule=hp.lr_schedule,
        warmup_steps=hp.warmup_steps,
        steps=hp.steps,
        **injected,
    )
