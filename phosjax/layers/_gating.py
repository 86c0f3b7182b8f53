"""Gating and scaling layers: GLU, SwiGLU, squeeze-and-excitation, LayerScale."""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from phosjax.core import tag
from phosjax.layers._common import (
    CheckedFields,
    apply_as_out,
    at_least_float32,
    checked_finite,
    checked_size,
    compute_dtype,
    input_width,
    real_tokens,
    token_mean,
    zero_padding,
)


class GLU(CheckedFields):
    """Gated linear unit: ``a * sigmoid(b)`` with ``[a, b] = Dense(2 * features)(x)``.

    Dauphin et al., arXiv 1612.08083. Tags ``gate`` (``sigmoid(b)``).

    Attributes:
      features: the output width (``None``: the input's).
      dtype: the computation dtype (``None``: the input's).
      param_dtype: the dtype parameters are stored in (as Flax's ``param_dtype``).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from phosjax.layers import GLU
      >>> x = jnp.array([[1.0, 2.0]]); variables = GLU(1).init(jax.random.key(0), x)
      >>> variables["params"]["proj"]["kernel"].shape  # the Dense(2 * features)
      (2, 2)
      >>> identity = {"params": {"proj": {"kernel": jnp.eye(2), "bias": jnp.zeros(2)}}}
      >>> GLU(1).apply(identity, x).tolist()  # a = 1, b = 2: 1 * sigmoid(2)
      [[0.8807970285415649]]
    """

    features: int | None = None
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        features = checked_size(self, "features", input_width(self, x))
        dtype = compute_dtype(self.dtype, x)
        proj = nn.Dense(2 * features, dtype=dtype, param_dtype=self.param_dtype, name="proj")
        value, gate = jnp.split(proj(x), 2, -1)
        return value * tag(self, "gate", nn.sigmoid(gate))


class SwiGLU(CheckedFields):
    """The SwiGLU feed-forward block: ``Dense(features)(silu(x W) * (x V))``.

    Shazeer, arXiv 2002.05202. Maps ``(..., C)`` to ``(..., features)``. Tags ``gate``
    (``silu(x W)``).

    Attributes:
      hidden_features: the hidden width (``None``: twice the input width).
      features: the output width (``None``: the input's).
      dtype: the computation dtype (``None``: the input's).
      param_dtype: the dtype parameters are stored in (as Flax's ``param_dtype``).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from phosjax.layers import SwiGLU
      >>> x = jnp.ones((2, 3)); variables = SwiGLU().init(jax.random.key(0), x)
      >>> SwiGLU().apply(variables, x).shape, variables["params"]["gate_proj"]["kernel"].shape
      ((2, 3), (3, 6))
    """

    hidden_features: int | None = None
    features: int | None = None
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        width = input_width(self, x)
        hidden = checked_size(self, "hidden_features", 2 * width)
        features = checked_size(self, "features", width)
        dtype = compute_dtype(self.dtype, x)
        dense = functools.partial(nn.Dense, dtype=dtype, param_dtype=self.param_dtype)
        gate = tag(self, "gate", nn.silu(dense(hidden, name="gate_proj")(x)))
        value = dense(hidden, name="value_proj")(x)
        return apply_as_out(self, dense(features, parent=None), gate * value)


class SqueezeExcite(CheckedFields):
    """Squeeze-and-excitation: rescales channels by a gate computed from their means.

    Works on ``(B, C)``, ``(B, L, C)``, ``(B, H, W, C)``...: the channels are averaged
    over every axis between the first (batch) and the last (features) (zeros where
    there is none, ``(B, 0, C)``), passed through
    ``Dense(C // reduction) -> relu -> Dense(C) -> sigmoid``, and multiply the input
    (Hu et al., arXiv 1709.01507). Tags ``channel_gate`` (``(B, C)``).

    The call's ``mask`` (``(B, ..., L)``, the input's shape but its features, axes of
    size 1 broadcasting; booleans or integers, true: a real token; a float one is a
    TypeError), which containers pass it with an attention
    ``mask`` (a per-pair one, ``(B, H, L, L)``, is read as attention reads it),
    averages the real tokens alone (zeros for an example with none); the padded ones are
    read as zeros (their outputs are 0), so what they hold (an infinity, a NaN) reaches
    neither the outputs nor the gradients.

    Attributes:
      reduction: the bottleneck's reduction factor (its width is at least 1).
      dtype: the gate's computation dtype (``None``: the input's). The output is the
        input scaled by the gate cast to the input's dtype, so a float32 input stays
        float32 with a bfloat16 gate, and a bfloat16 input bfloat16 with a float32 one.
      param_dtype: the dtype parameters are stored in (as Flax's ``param_dtype``).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from phosjax.layers import SqueezeExcite
      >>> x = jnp.ones((2, 4, 4, 8)); variables = SqueezeExcite().init(jax.random.key(0), x)
      >>> SqueezeExcite().apply(variables, x).shape
      (2, 4, 4, 8)
      >>> tokens = jnp.ones((2, 5, 8)).at[1, 3:].set(jnp.nan)  # example 1: 2 tokens padded
      >>> real = jnp.arange(5) < jnp.array([[5], [3]])
      >>> bool(jnp.isfinite(SqueezeExcite().apply(variables, tokens, mask=real)).all())
      True
    """

    reduction: int = 4
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, mask: Any = None) -> jax.Array:
        channels = input_width(self, x, "B, ..., C")
        checked_size(self, "reduction")
        dtype = compute_dtype(self.dtype, x)
        real = real_tokens(self, mask, x.shape[:-1], pairs=True)
        x = zero_padding(x, real)
        squeezed = token_mean(x, real, kept=1)  # zeros for an example of no token, not NaN
        bottleneck = max(1, channels // self.reduction)
        dense = functools.partial(nn.Dense, dtype=dtype, param_dtype=self.param_dtype)
        h = nn.relu(dense(bottleneck, name="down")(squeezed))
        gate = nn.sigmoid(dense(channels, name="up")(h))
        gate = tag(self, "channel_gate", gate).astype(compute_dtype(None, x))
        return x * gate.reshape(x.shape[:1] + (1,) * (x.ndim - 2) + (channels,))


class LayerScale(CheckedFields):
    """Multiplies each channel by a learned scale that starts small (``init_value``).

    Put it at the end of a residual branch so that a deep stack starts close to the
    identity (Touvron et al., CaiT, arXiv 2103.17239). Maps ``(..., C)`` to ``(..., C)``
    (a scalar is an error). Tags ``scaled`` (the output). The output has the input's
    dtype, scaled in float32 at least and cast once; an integer input is scaled in
    float32.

    Attributes:
      init_value: the initial scale of every channel (a finite number, or an array of
        them that broadcasts to ``(C,)``).
      param_dtype: the dtype parameters are stored in (as Flax's ``param_dtype``).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from phosjax.layers import LayerScale
      >>> x = jnp.ones((1, 2)); variables = LayerScale(0.5).init(jax.random.key(0), x)
      >>> LayerScale(0.5).apply(variables, x).tolist()
      [[0.5, 0.5]]
    """

    init_value: float = 1e-4
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        width = input_width(self, x)
        init = nn.initializers.constant(checked_finite(self, "init_value", (width,)))
        scale = self.param("scale", init, (width,), self.param_dtype)
        # in float32, cast once: a scale rounded to bfloat16 and the product round twice
        wide = at_least_float32(compute_dtype(None, x), self.param_dtype)
        return tag(self, "scaled", (x * scale.astype(wide)).astype(compute_dtype(None, x)))
