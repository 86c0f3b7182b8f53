"""Path weights: how much of the signal flows through the branch being computed.

A choice or skip layer computes each branch inside ``with path_weight(self, name, w)``.
Scopes nest by multiplication, and `aux_loss` scales every loss by the current
product, so auxiliary losses stay balanced however the pathways are weighted. The
weights live in a context variable only while one trace runs (no global state).
"""

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from phosjax.core._collections import PATH_WEIGHTS
from phosjax.core._record import record

_CURRENT: contextvars.ContextVar[jax.Array | None] = contextvars.ContextVar(
    "phosjax_path_weight", default=None
)


def current_path_weight() -> jax.Array:
    """The product of the weights of all enclosing `path_weight` scopes (1.0 outside any)."""
    weight = _CURRENT.get()
    return jnp.ones(()) if weight is None else weight


def scale_by_path_weight(value: jax.Array, weight: jax.Array) -> jax.Array:
    """``value * weight`` with a per-example weight ``(B,)`` aligned to ``value``'s batch axis."""
    if weight.ndim and value.ndim > weight.ndim:
        weight = weight.reshape(weight.shape + (1,) * (value.ndim - weight.ndim))
    return value * weight


@contextlib.contextmanager
def path_weight(module: nn.Module, name: str, weight: Any) -> Iterator[jax.Array]:
    """Computes the enclosed branch with weight ``weight``, and records that weight.

    Args:
      module: the layer that owns the branch (``self``).
      name: the branch's name, e.g. ``"branch_0"``; the weight's batch mean is recorded
        in the ``path_weights`` collection under the module's path and this name.
      weight: a scalar, or one weight per example (shape ``(B,)``).

    Yields:
      The combined weight of this branch (the product with all enclosing scopes).

    Examples:
      >>> import flax.linen as nn, jax.numpy as jnp, phosjax as px
      >>> class Half(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         with px.path_weight(self, "branch", 0.5):
      ...             px.aux_loss(self, "loss", jnp.ones(()))
      ...         return x
      >>> _, state = Half().apply({}, 0.0, mutable=["aux_loss", "path_weights"])
      >>> float(state["aux_loss"]["loss"][0]), float(state["path_weights"]["branch"][0])
      (0.5, 0.5)
    """
    weight = jnp.asarray(weight)
    if weight.ndim > 1:
        raise ValueError(
            f"path_weight {name!r} in {'/'.join(module.path) or 'the top module'}: a weight "
            f"must be a scalar or one per example (B,), got shape {weight.shape}."
        )
    record(module, PATH_WEIGHTS, name, jnp.mean(weight))
    outer = _CURRENT.get()
    combined = weight if outer is None else outer * weight  # both scalar or (B,)
    token = _CURRENT.set(combined)
    try:
        yield combined
    finally:
        _CURRENT.reset(token)
