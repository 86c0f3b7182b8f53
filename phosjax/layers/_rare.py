"""Rarer layers: random Fourier features, hyper-network weights, a Lipschitz-bounded dense."""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from phosjax.core import CONSTANTS, Range, knob, tag
from phosjax.layers._common import (
    CheckedFields,
    at_least_float32,
    checked_size,
    compute_dtype,
    input_width,
)


class FourierFeatures(CheckedFields):
    """Random Fourier features ``[cos(2 pi s x B), sin(2 pi s x B)]``.

    ``B`` (``(C, num_frequencies)``) is drawn from a standard normal at init (rng
    ``"params"``). Unless ``trainable`` it is fixed: it lives in the ``constants``
    collection, not in ``params``, so no optimizer (weight decay included) changes it.
    The scale ``s`` is a knob (default 1, a finite number >= 0), so the bandwidth can be
    tweaked or swept without re-initializing (Tancik et al., arXiv 2006.10739). Maps
    ``(..., C)`` to ``(..., 2 * num_frequencies)``. Tags ``phases`` (``2 pi s x B``).
    The phases are computed in float32 at least, whatever ``dtype`` (in bfloat16 a phase
    near 100 would be off by up to 0.25, one near 1000 by up to 2); the features are
    cast to ``dtype``.

    Attributes:
      num_frequencies: the number of frequencies (half the output width).
      trainable: whether ``B`` is learned (a ``params`` entry).
      dtype: the computation dtype (``None``: the input's).
      param_dtype: the dtype ``B`` is stored in, learned or not (as Flax's ``param_dtype``).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from phosjax.layers import FourierFeatures
      >>> layer, x = FourierFeatures(3), jnp.zeros((2, 4))
      >>> variables = layer.init(jax.random.key(0), x)
      >>> variables["constants"]["frequencies"].shape, "params" in variables
      ((4, 3), False)
      >>> layer.apply(variables, x).tolist()
      [[1.0, 1.0, 1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]]
    """

    num_frequencies: int = 16
    trainable: bool = False
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (input_width(self, x), checked_size(self, "num_frequencies"))
        init = nn.initializers.normal(1.0)
        if self.trainable:
            frequencies = self.param("frequencies", init, shape, self.param_dtype)
        else:
            draw = lambda: init(self.make_rng("params"), shape, self.param_dtype)
            frequencies = self.variable(CONSTANTS, "frequencies", draw).value
            if frequencies.shape != shape:  # a constant gets no Flax shape check, as params do
                raise ValueError(
                    f"FourierFeatures got inputs of width {shape[0]} (shape {x.shape}) and "
                    f"num_frequencies={shape[1]}, but its constant frequencies have shape "
                    f"{frequencies.shape} (width, num_frequencies): apply it to what it was "
                    f"initialized for, or init it again."
                )
        scale = knob(
            self, "scale", 1.0, doc="bandwidth: frequencies are multiplied by it", valid=Range(ge=0)
        )
        dtype = compute_dtype(self.dtype, x)
        phase_dtype = at_least_float32(dtype)  # bfloat16 phases lose radians
        frequencies = 2 * math.pi * scale * frequencies.astype(phase_dtype)
        phases = tag(self, "phases", x.astype(phase_dtype) @ frequencies)
        return jnp.concatenate([jnp.cos(phases), jnp.sin(phases)], axis=-1).astype(dtype)


class HyperDense(CheckedFields):
    """A dense layer whose kernel and bias a small hyper-network generates.

    A learned embedding ``z`` (``embedding_features`` numbers) goes through a ``Dense``
    named ``hyper`` that outputs the kernel (scaled by ``1/sqrt(C)``) and the bias (Ha et
    al., HyperNetworks, arXiv 1609.09106). Tags ``generated_kernel`` (``(C, features)``).

    Attributes:
      features: the output width.
      embedding_features: the size of the learned embedding.
      dtype: the computation dtype (``None``: the input's).
      param_dtype: the dtype parameters are stored in (as Flax's ``param_dtype``); the
        kernel and bias are generated in float32 at least whatever it is.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from phosjax.layers import HyperDense
      >>> x = jnp.ones((2, 3)); variables = HyperDense(4).init(jax.random.key(0), x)
      >>> HyperDense(4).apply(variables, x).shape, variables["params"]["embedding"].shape
      ((2, 4), (8,))
    """

    features: int
    embedding_features: int = 8
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in, features = input_width(self, x), checked_size(self, "features")
        embedding_shape = (checked_size(self, "embedding_features"),)
        embedding = self.param(
            "embedding", nn.initializers.normal(1.0), embedding_shape, self.param_dtype
        )
        size, param_dtype = fan_in * features + features, self.param_dtype
        self._check_generated(x, features, size)
        wide = at_least_float32(param_dtype)
        hyper = nn.Dense(size, dtype=wide, param_dtype=param_dtype, name="hyper")
        generated = hyper(embedding)  # in float32 at least whatever the storage
        kernel = generated[: fan_in * features].reshape(fan_in, features)
        kernel = tag(self, "generated_kernel", kernel / math.sqrt(fan_in))
        bias = generated[fan_in * features :]
        dtype = compute_dtype(self.dtype, x)
        return x.astype(dtype) @ kernel.astype(dtype) + bias.astype(dtype)

    def _check_generated(self, x: jax.Array, features: int, size: int) -> None:
        """Raises a ValueError when the stored hyper-network generates another number of
        values than ``size`` (``x``'s width times ``features``, plus ``features``): Flax's
        own error names the shapes of ``hyper``'s kernel alone, not the input's width."""
        stored = nn.meta.unbox(self.variables.get("params", {}).get("hyper", {}).get("kernel"))
        if stored is None or stored.shape[-1] == size:
            return
        made = stored.shape[-1]
        width = f" (for inputs of width {made // features - 1})" if made % features == 0 else ""
        raise ValueError(
            f"HyperDense got inputs of width {x.shape[-1]} (shape {x.shape}) and features="
            f"{features}, which take {size} generated values (width * features + features), "
            f"but its hyper-network generates {made}{width}: apply it to what it was "
            f"initialized for, or init it again."
        )


class LipschitzDense(CheckedFields):
    """A dense layer whose Lipschitz constant (in the 2-norm) is at most ``bound``.

    The kernel ``W`` is used as ``W * bound / max(sigma, bound)``, where ``sigma`` is its
    largest singular value, computed exactly in float32 at least (an SVD of the kernel per call:
    cheap for the small layers this library targets, and unlike power iteration it needs
    no state and always holds). ``bound`` is a knob (default 1, a finite number > 0).
    Spectral normalization: Miyato et al., arXiv 1802.05957. Tags ``spectral_norm``
    (``sigma``, before the rescaling).

    Attributes:
      features: the output width.
      use_bias: whether to add a bias.
      dtype: the computation dtype (``None``: the input's).
      param_dtype: the dtype parameters are stored in (as Flax's ``param_dtype``).

    Examples:
      >>> import jax, jax.numpy as jnp, phosjax as px
      >>> from phosjax.layers import LipschitzDense
      >>> layer, x = LipschitzDense(2), jnp.array([[1.0, 1.0]])
      >>> variables = layer.init(jax.random.key(0), x)
      >>> kernel = jnp.array([[4.0, 0.0], [0.0, 1.0]])  # its largest singular value: 4
      >>> variables = {**variables, "params": {"kernel": kernel, "bias": jnp.zeros(2)}}
      >>> layer.apply(variables, x).tolist()  # the kernel divided by 4: bound 1
      [[1.0, 0.25]]
      >>> px.tweak(layer, variables, x, {"bound": 8.0}).tolist()  # within 8: kept as is
      [[4.0, 1.0]]
    """

    features: int
    use_bias: bool = True
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (input_width(self, x), checked_size(self, "features"))
        kernel = self.param("kernel", nn.initializers.lecun_normal(), shape, self.param_dtype)
        bound = knob(
            self, "bound", 1.0, doc="upper bound on the Lipschitz constant", valid=Range(gt=0)
        )
        wide = kernel.astype(at_least_float32(self.param_dtype))
        singular_values = jnp.linalg.svd(wide, compute_uv=False)
        sigma = tag(self, "spectral_norm", singular_values[0])
        kernel = kernel * (bound / jnp.maximum(sigma, bound))
        dtype = compute_dtype(self.dtype, x)
        y = x.astype(dtype) @ kernel.astype(dtype)
        if self.use_bias:
            bias = self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
            y = y + bias.astype(dtype)
        return y
