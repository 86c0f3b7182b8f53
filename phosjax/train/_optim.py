"""Optimizers whose hyperparameters live in their state, so cells of a group may differ."""

import jax
import optax

from phosjax.train._config import OPTIMIZERS


def _family(
    name: str, grad_clip: float | None
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
        if grad_clip is None:
            return core
        return optax.chain(optax.clip_by_global_norm(grad_clip), core)

    return optax.inject_hyperparams(build)


def make_optimizer(
    name: str,
    *,
    learning_rate: float | jax.Array = 1e-3,
    weight_decay: float | jax.Array = 0.0,
    momentum: float | jax.Array = 0.9,
    grad_clip: float | None = None,
) -> optax.GradientTransformation:
    """An optimizer of family ``name`` with injected hyperparameters.

    ``learning_rate``, ``weight_decay`` and ``momentum`` are stored in the optimizer
    state (``state.hyperparams``), so a grid stacks them on its cell axis and one compiled
    update serves cells with different values.

    Args:
      name: ``"adam"``, ``"adamw"``, ``"sgd"`` or ``"momentum"``.
      learning_rate: the initial value stored in the state.
      weight_decay: L2 added to the gradient (``adamw``: decoupled decay).
      momentum: used by ``"momentum"``.
      grad_clip: clip gradients to this global norm first (None: no clipping).

    Examples:
      >>> import jax.numpy as jnp
      >>> tx = make_optimizer("sgd", learning_rate=0.5)
      >>> params = {"w": jnp.ones(2)}
      >>> state = tx.init(params)
      >>> float(state.hyperparams["learning_rate"])
      0.5
      >>> tx.update({"w": jnp.ones(2)}, state, params)[0]["w"].tolist()
      [-0.5, -0.5]
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}: expected one of {OPTIMIZERS}.")
    return _family(name, grad_clip)(
        learning_rate=learning_rate, weight_decay=weight_decay, momentum=momentum
    )
