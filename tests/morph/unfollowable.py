"""A registered model whose channels `phosjax.morph` cannot follow, for the tests of what
the bench and the morph loop do with one: its block sorts its features (``sort``)."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from phosjax.models import register_model, registered_models

NAME = "test_sorted_features"


class SortedFeatures(nn.Module):
    """Dense(features), its outputs sorted: which channel lands where depends on the data."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.sort(nn.Dense(self.features)(x), axis=-1)


if NAME not in registered_models():
    register_model(NAME, SortedFeatures, width=8, input_kinds="vector")
