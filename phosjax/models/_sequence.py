"""Sequence blocks: patch embedding for transformers and a GRU layer."""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from phosjax.core import tag
from phosjax.layers._common import (
    CheckedFields,
    checked_size,
    compute_dtype,
    fits_tokens,
    input_width,
    orthogonal,
    real_tokens,
    zero_padding,
)


class Patches(CheckedFields):
    """Cuts a sequence into non-overlapping patches, embeds them and adds positions.

    Maps ``(batch, length, channels)`` to ``(batch, length // patch_size, features)``:
    a convolution with kernel and stride ``patch_size`` (a remainder is dropped), plus a
    learned position embedding ``positions``, both stored in ``param_dtype`` and computed
    in ``dtype`` (``None``: what the input and params promote to), as Flax's layers. Tags
    ``tokens``. `input_mask` gives the input tokens that make up the real patches (a
    `Frame` zeroes the others before its stem).

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
    dtype: Any = None
    param_dtype: Any = jnp.float32

    def input_mask(self, mask: Any, x: jax.Array) -> jax.Array | None:
        """``mask``, a padding mask of the patches made of ``x`` (``(batch, length //
        patch_size)``, axes of size 1 broadcasting; true: a real patch) or a per-pair
        attention mask of them (``(batch, H, patches, patches)``, its padding as attention
        reads it), as float32 weights of ``x``'s tokens ``(batch, length)``: a patch's
        tokens are real with it, the remainder it drops is not; None when ``mask`` is no
        such mask.

        Examples:
          >>> x = jnp.ones((1, 5, 1))  # 2 patches of 2 tokens, and a remainder
          >>> Patches(8, patch_size=2).input_mask(jnp.array([[True, False]]), x).tolist()
          [[1.0, 1.0, 0.0, 0.0, 0.0]]
          >>> pairs = jnp.array([[[[True, False], [False, False]]]])  # (1, 1, 2, 2)
          >>> Patches(8, patch_size=2).input_mask(pairs, x).tolist()
          [[1.0, 1.0, 0.0, 0.0, 0.0]]
        """
        if mask is None or x.ndim != 3:
            return None
        size, (batch, length) = checked_size(self, "patch_size"), x.shape[:2]
        patches = (batch, length // size)
        fits = fits_tokens(jnp.shape(mask), patches)
        real = real_tokens(self, mask, patches, pairs=True) if fits else None
        if real is None:
            return None
        real = jnp.repeat(real, size, axis=1)
        return jnp.pad(real, ((0, 0), (0, length - real.shape[1])))

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        checked_size(self, "features")
        patch_size = checked_size(self, "patch_size")
        input_width(self, x, "batch, length, channels")
        if x.shape[1] < patch_size:
            raise ValueError(
                f"Patches: a sequence of length {x.shape[1]} is shorter than patch_size "
                f"{patch_size}."
            )
        size = (patch_size,)
        embed = nn.Conv(
            self.features,
            size,
            size,
            padding="VALID",
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="embed",
        )
        tokens = embed(x)
        self._check_positions(x, tokens.shape[1], patch_size)
        init = nn.initializers.normal(0.02)
        shape = (tokens.shape[1], self.features)
        positions = self.param("positions", init, shape, self.param_dtype)
        return tag(self, "tokens", tokens + positions.astype(tokens.dtype))

    def _check_positions(self, x: jax.Array, patches: int, size: int) -> None:
        """Raises a ValueError when the stored position embedding holds another number of
        patches than ``x`` makes (``patches`` of ``size`` tokens): Flax's own error names
        the shapes of ``positions`` alone, not the sequence's length."""
        stored = nn.meta.unbox(self.variables.get("params", {}).get("positions"))
        if stored is None or stored.shape[0] == patches:
            return
        held = stored.shape[0]
        raise ValueError(
            f"Patches got a sequence of length {x.shape[1]} (shape {x.shape}): {patches} "
            f"patch(es) of {size} tokens, but its position embedding holds {held} positions "
            f"(sequences of length {held * size} to {held * size + size - 1}): apply it to "
            f"sequences as long as those it was initialized for, or init it again."
        )


class _SkippingGRUCell(nn.GRUCell):
    """A `flax.linen.GRUCell` whose step input ends with one more feature, 1 for a real
    token and 0 for a padded one: a padded step keeps the carry (and outputs it). Its
    parameters are a `GRUCell`'s of the input without that feature."""

    def __call__(self, carry: jax.Array, inputs: jax.Array) -> tuple[jax.Array, jax.Array]:
        new, _ = super().__call__(carry, inputs[..., :-1])
        new = jnp.where(inputs[..., -1:] > 0, new, carry)
        return new, new


class GRUBlock(CheckedFields):
    """A GRU layer over the sequence: ``(batch, length, c) -> (batch, length, features)``.

    It computes in ``dtype``, its hidden state too, or when ``dtype`` is ``None`` in the
    input's (float32 for an integer input), whatever the params' dtype (``param_dtype``,
    float32 by default): bfloat16 inputs compute in bfloat16 (Flax's float32 default
    state promoted every step to float32). The hidden state
    starts at zeros, not learned (as Flax's `flax.linen.GRUCell.initialize_carry`). Tags
    ``final_state`` (the last hidden state, ``(batch, features)``).

    The call's ``mask`` (``(batch, length)``, axes of size 1 broadcasting; booleans or
    integers, nonzero: a real token; a float one is a TypeError) makes the recurrence
    skip the padded tokens: their step keeps
    the hidden state, which is their output, so real tokens' outputs and the final state
    are those of the real tokens alone, wherever the padding is (left, right, between);
    the padded tokens are read as zeros, so what they hold (an infinity, a NaN) reaches
    neither the outputs nor the gradients.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from phosjax.models import GRUBlock
      >>> gru = GRUBlock(3)
      >>> y, _ = jax.eval_shape(gru.init_with_output, jax.random.key(0), jnp.ones((2, 5, 1)))
      >>> y.shape
      (2, 5, 3)
      >>> x = jnp.arange(10.0).reshape(2, 5, 1); variables = jax.jit(gru.init)(jax.random.key(0), x)
      >>> real = jnp.arange(5) < jnp.array([[5], [3]])  # example 1: 3 tokens, 2 padded
      >>> y = jax.jit(gru.apply)(variables, x, mask=real)
      >>> bool((y[1, 2:] == y[1, 2]).all())  # the padded steps keep the last real state
      True
    """

    features: int
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, mask: Any = None) -> jax.Array:
        checked_size(self, "features")
        input_width(self, x, "batch, length, channels")
        dtype = compute_dtype(self.dtype, x)
        real = real_tokens(self, mask, x.shape[:-1])
        kind = nn.GRUCell if real is None else _SkippingGRUCell
        cell = kind(  # the same params either way
            self.features,
            recurrent_kernel_init=orthogonal,  # Flax's default, which takes no bfloat16
            dtype=dtype,
            param_dtype=self.param_dtype,
            name="GRUCell_0",
        )
        if real is not None:  # the mask rides along as a last input feature
            x = zero_padding(x.astype(dtype), real)  # a NaN there: no NaN gradient
            x = jnp.concatenate([x, real[..., None].astype(dtype)], axis=-1)
        rnn = nn.RNN(cell, return_carry=True, name="rnn")
        state = jnp.zeros((x.shape[0], self.features), dtype)
        final_state, outputs = rnn(x, initial_carry=state)
        tag(self, "final_state", final_state)
        return outputs
