"""A registered model whose channels `phosjax.morph` cannot follow, for the tests of what
the bench and the morph loop do with one: its block halves its features until they are
small (``while``)."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from phosjax.models import register_model, registered_models

NAME = "test_looped_features"


class LoopedFeatures(nn.Module):
    """Dense(features), its outputs halved until at most 1: how many times depends on the
    data."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = nn.Dense(self.features)(x)
        return jax.lax.while_loop(lambda h: jnp.abs(h).max() > 1, lambda h: h / 2, h)


if NAME not in registered_models():
    register_model(NAME, LoopedFeatures, width=8, input_kinds="vector")
