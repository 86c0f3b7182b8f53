"""Sequence blocks: patch embedding for transformers and a GRU layer."""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from phosjax.core import tag
from phosjax.layers._common import compute_dtype


class Patches(nn.Module):
    """Cuts a sequence into non-overlapping patches, embeds them and adds positions.

    Maps ``(batch, length, channels)`` to ``(batch, length // patch_size, features)``:
    a convolution with kernel and stride ``patch_size`` (a remainder is dropped), plus a
    learned position embedding ``positions``, both stored in ``param_dtype``. Tags
    ``tokens``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from phosjax.models import Patches
      >>> patches = Patches(8, patch_size=4)
      >>> y, _ = jax.eval_shape(patches.init_with_output, jax.random.key(0), jnp.ones((2, 40, 1)))
      >>> y.shape
      (2, 10, 8)
    """

    features: int
    patch_size: int = 4
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if x.shape[1] < self.patch_size:
            raise ValueError(
                f"Patches: a sequence of length {x.shape[1]} is shorter than patch_size "
                f"{self.patch_size}."
            )
        size = (self.patch_size,)
        embed = nn.Conv(
            self.features, size, size, padding="VALID", param_dtype=self.param_dtype, name="embed"
        )
        tokens = embed(x)
        init = nn.initializers.normal(0.02)
        shape = (tokens.shape[1], self.features)
        positions = self.param("positions", init, shape, self.param_dtype)
        return tag(self, "tokens", tokens + positions.astype(tokens.dtype))


class GRUBlock(nn.Module):
    """A GRU layer over the sequence: ``(batch, length, c) -> (batch, length, features)``.

    It computes in the input's dtype (float32 for an integer input), its hidden state
    too, whatever the params' dtype: bfloat16 inputs and params compute in bfloat16
    (Flax's float32 default state promoted every step to float32). Tags
    ``final_state`` (the last hidden state, ``(batch, features)``).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from phosjax.models import GRUBlock
      >>> gru = GRUBlock(3)
      >>> y, _ = jax.eval_shape(gru.init_with_output, jax.random.key(0), jnp.ones((2, 5, 1)))
      >>> y.shape
      (2, 5, 3)
    """

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        dtype = compute_dtype(None, x)
        rnn = nn.RNN(nn.GRUCell(self.features, dtype=dtype), return_carry=True, name="rnn")
        state = jnp.zeros((x.shape[0], self.features), dtype)
        final_state, outputs = rnn(x, initial_carry=state)
        tag(self, "final_state", final_state)
        return outputs
