"""Regularizing layers: stochastic depth, an activity penalty and an orthogonality penalty.

The penalties are raised with `phosjax.core.aux_loss`, so an enclosing path weight scales
them, and `phosjax.core.aux_total` adds them to the training loss.
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from phosjax.core import Range, aux_loss, knob, tag
from phosjax.layers._common import (
    CheckedFields,
    at_least_float32,
    checked_rate,
    checked_size,
    checked_train,
    compute_dtype,
    input_width,
    orthogonal,
    real_tokens,
    token_mean,
    zero_padding,
)


class DropPath(nn.Module):
    """Stochastic depth: drops whole examples with probability ``rate`` in training.

    Kept examples are divided by ``1 - rate`` (in float32 at least, then rounded once to
    the input's dtype) so the expectation is unchanged; with
    ``train=False`` the layer is the identity. Apply it to a residual branch's output
    (Huang et al., arXiv 1603.09382). Draws from the rng stream ``"dropout"`` (not at
    ``rate=0``). Tags ``keep_mask`` (booleans of shape ``(B,)``) in training, all true at
    ``rate=0``, so a probe works over a sweep of rates. In training the input needs its
    batch axis first, ``(B, ...)``; a scalar is an error. Under a per-example `jax.vmap`
    it cannot see the batch axis and would drop entries of the example's first axis: give
    it the example as a batch of one, ``x[None]``, and each example its own key. An
    integer input comes out as float32 in every mode, as training scales it.

    Attributes:
      rate: the probability of dropping an example, in ``[0, 1)``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from phosjax.layers import DropPath
      >>> layer, x = DropPath(0.5), jnp.ones((4, 2))
      >>> bool((layer.apply({}, x) == x).all())
      True
      >>> out = layer.apply({}, x, train=True, rngs={"dropout": jax.random.key(0)})
      >>> sorted(set(out.ravel().tolist())) in ([0.0, 2.0], [0.0], [2.0])
      True
      >>> one = lambda x, k: layer.apply({}, x[None], train=True, rngs={"dropout": k})[0]
      >>> out = jax.vmap(one)(jnp.ones((8, 3)), jax.random.split(jax.random.key(0), 8))
      >>> {len(set(row)) for row in out.tolist()}  # each example kept or dropped whole
      {1}
    """

    rate: float

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        checked_train(self, train)
        rate = checked_rate(self, "rate")
        x = x.astype(compute_dtype(None, x))  # an integer input would be scaled in float32
        if not train:
            return x
        if x.ndim < 1:
            raise ValueError(
                f"DropPath needs a batch axis in training: input shape (B, ...), got {x.shape}."
            )
        if rate == 0.0:  # keeps every example, drawing nothing
            tag(self, "keep_mask", jnp.ones(x.shape[:1], bool))
            return x
        keep_rate = 1.0 - rate
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        keep = jax.random.bernoulli(self.make_rng("dropout"), keep_rate, shape)
        tag(self, "keep_mask", keep.reshape(x.shape[:1]))
        # in bfloat16, x / keep_rate would divide by keep_rate rounded (0.9 by 0.8984)
        scaled = (x.astype(at_least_float32(x.dtype)) / keep_rate).astype(x.dtype)
        return jnp.where(keep, scaled, jnp.zeros((), x.dtype))


class ActivityL1(nn.Module):
    """The identity, raising ``strength * mean |x|`` per example as the aux loss ``activity_l1``.

    ``strength`` is a knob (default ``1e-3``, a finite number >= 0). Tags ``activity``
    (mean ``|x|`` per example, 0 for one of no element, such as a sequence of no token;
    shape ``(B,)``, a scalar for a 1-D input).

    The call's ``mask`` (``(B, ..., L)``, the input's shape but its features, axes of
    size 1 broadcasting; booleans or integers, true: a real token; a float one is a
    TypeError), which containers pass it with an attention
    ``mask`` (a per-pair one, ``(B, H, L, L)``, is read as attention reads it), leaves
    the padded tokens out: the mean is over the real ones (0 for an
    example with none, which the penalty's mean over examples leaves out, as if it were
    not in the batch), and what padded tokens hold (an infinity, a NaN) reaches neither
    the penalty nor its gradient.

    Examples:
      >>> import jax.numpy as jnp, phosjax as px
      >>> from phosjax.layers import ActivityL1
      >>> x = jnp.array([[1.0, -3.0], [0.0, 2.0]])
      >>> _, state = ActivityL1().apply({}, x, mutable=["aux_loss"])
      >>> round(float(state["aux_loss"]["activity_l1"][0]), 6)  # mean over examples
      0.0015
      >>> tokens = jnp.array([[[1.0], [3.0], [jnp.nan]]])  # one example, its 3rd token padded
      >>> _, state = ActivityL1().apply({}, tokens, mask=jnp.array([[1, 1, 0]]), mutable=True)
      >>> state["intermediates"]["activity"][0].tolist()
      [2.0]
    """

    @nn.compact
    def __call__(self, x: jax.Array, *, mask: Any = None) -> jax.Array:
        strength = knob(
            self, "strength", 1e-3, doc="weight of the L1 activity penalty", valid=Range(ge=0)
        )
        if mask is not None and x.ndim < 2:
            raise ValueError(
                f"ActivityL1 called with a mask needs a batch axis: input shape (B, ..., C), "
                f"got {x.shape}."
            )
        real = real_tokens(self, mask, x.shape[:-1], pairs=True)
        wide = at_least_float32(compute_dtype(None, x))
        magnitude = jnp.abs(zero_padding(x, real).astype(wide))
        if real is not None:
            activity = tag(self, "activity", token_mean(magnitude, real, kept=1).mean(-1))
            # an example of padding alone (activity 0) is none: the mean over examples
            # leaves it out; with every example real the scale is 1, the penalty exact
            some = real.reshape(real.shape[0], math.prod(real.shape[1:])).any(-1)
            penalty = activity * (some.size / jnp.maximum(some.sum(), 1))
        else:  # per example; 0 for one of no elements (no token), as under a mask
            examples = x.shape[:1] if x.ndim > 1 else ()
            flat = magnitude.reshape(*examples, math.prod(x.shape[len(examples) :]))
            activity = flat.mean(-1) if flat.shape[-1] else jnp.zeros(examples, wide)
            penalty = tag(self, "activity", activity)
        aux_loss(self, "activity_l1", strength * penalty)
        return x


class OrthogonalDense(CheckedFields):
    """A dense layer whose aux loss ``orthogonality`` pushes its kernel to be orthogonal.

    The penalty is ``strength * ||G - I||_F^2`` with ``G`` the smaller Gram matrix of the
    kernel ``W`` (``W^T W`` when ``features <= C``, else ``W W^T``), so it is zero exactly
    when ``W`` has orthonormal columns (or rows). ``strength`` is a knob (default 1, a
    finite number >= 0). The kernel starts orthogonal. Tags ``orthogonality_penalty``
    (before ``strength``).

    Attributes:
      features: the number of output features.
      use_bias: whether to add a bias.
      dtype: the computation dtype (``None``: the input's).
      param_dtype: the dtype parameters are stored in (as Flax's ``param_dtype``).

    Examples:
      >>> import jax, jax.numpy as jnp, phosjax as px
      >>> from phosjax.layers import OrthogonalDense
      >>> layer = OrthogonalDense(3); x = jnp.ones((2, 4))
      >>> variables = layer.init(jax.random.key(0), x)
      >>> _, state = layer.apply(variables, x, mutable=["aux_loss"])
      >>> round(float(state["aux_loss"]["orthogonality"][0]), 6)
      0.0
    """

    features: int
    use_bias: bool = True
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = input_width(self, x)
        shape = (fan_in, checked_size(self, "features"))
        kernel = self.param("kernel", orthogonal, shape, self.param_dtype)
        wide = kernel.astype(at_least_float32(self.param_dtype))  # whatever the storage
        gram = wide.T @ wide if self.features <= fan_in else wide @ wide.T
        penalty = jnp.sum((gram - jnp.eye(gram.shape[0], dtype=gram.dtype)) ** 2)
        strength = knob(
            self, "strength", 1.0, doc="weight of the orthogonality penalty", valid=Range(ge=0)
        )
        aux_loss(self, "orthogonality", strength * tag(self, "orthogonality_penalty", penalty))
        dtype = compute_dtype(self.dtype, x)
        y = x.astype(dtype) @ kernel.astype(dtype)
        if self.use_bias:
            bias = self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
            y = y + bias.astype(dtype)
        return y
