"""Routing layers: a mixture of experts with top-k routing and a load-balancing loss."""

import numbers
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from phosjax._callables import cut_repr
from phosjax.core import Range, aux_loss, knob, tag
from phosjax.core._numbers import concrete_number
from phosjax.layers._common import (
    CheckedFields,
    at_least_float32,
    checked_size,
    compute_dtype,
    input_width,
    real_tokens,
    token_mean,
    zero_padding,
)


class MixtureOfExperts(CheckedFields):
    """Mixture of MLP experts, each token routed to its ``top_k`` experts.

    A linear router gives each token probabilities over the experts; the token's output
    is the sum of its ``top_k`` experts' outputs weighted by their (not renormalized)
    router probabilities (in float32 at least, cast once to ``dtype``), so the router
    learns through the output as in the Switch Transformer (Fedus et al., arXiv
    2101.03961). Probabilities that tie (a saturated router's, underflowed to 0) are
    ranked by their logits. Dispatch is dense: every expert runs on every token and the
    unchosen outputs get weight 0, which costs ``num_experts`` MLPs per token but is
    simple and fast for small models.

    Each expert is ``Dense(hidden_features) -> gelu -> Dense(features)``, so the layer
    maps ``(..., C)`` to ``(..., features)``. The load-balancing loss is
    ``balance = num_experts * sum_e load_e * mean_prob_e`` over all tokens, where
    ``load_e`` is the fraction of routing slots sent to expert ``e`` and ``mean_prob_e``
    its mean router probability; it is 1.0 for uniform router probabilities and grows
    as routing concentrates. ``balance_weight * balance`` (a knob, default 0.01, a finite
    number >= 0) is raised as the aux loss ``balance``.

    The call's ``mask`` (the input's shape but its features, axes of size 1
    broadcasting; booleans or integers, nonzero: a real token, a float one is a
    TypeError; for a sequence, an attention mask
    ``(B, H, L, L)`` too, read as attention reads it) leaves padded tokens out of the
    balance loss and the load: both count only real tokens, as if the padding were
    not in the batch (no real token: both 0). Padded tokens are still routed and
    computed as the others, as zeros: what they hold (an infinity, a NaN) reaches
    neither the outputs nor the gradients, and their outputs are those of a zero input
    (mask them downstream, as attention does with the same ``mask``).

    Tags ``router_probs`` (``(..., num_experts)``), ``expert_load``
    (``(num_experts,)``, sums to 1) and ``balance`` (the unweighted loss).

    Attributes:
      num_experts: how many experts (an int >= 1).
      top_k: how many experts each token uses (an int, ``1 <= top_k <= num_experts``).
      hidden_features: the experts' hidden width (``None``: twice the input width).
      dtype: the computation dtype of the experts (``None``: the input's).
      features: the output width (``None``: the input's).
      param_dtype: the dtype the router's and experts' parameters are stored in (as
        Flax's ``param_dtype``); the router computes in float32 at least whatever it is.

    Examples:
      >>> import jax, jax.numpy as jnp, phosjax as px
      >>> from phosjax.layers import MixtureOfExperts
      >>> layer = MixtureOfExperts(num_experts=4, top_k=2)
      >>> x = jnp.ones((2, 5, 8)); variables = jax.jit(layer.init)(jax.random.key(0), x)
      >>> @jax.jit
      ... def probe(x, mask=None):
      ...     return px.probe(layer, variables, x, "expert_load", mask=mask)
      >>> out, found = probe(x)
      >>> out.shape, round(float(found["expert_load"].sum()), 6)
      ((2, 5, 8), 1.0)
      >>> real = jnp.arange(5) < jnp.array([[5], [2]])  # example 1: 2 tokens, 3 padded
      >>> _, found = probe(x, real)
      >>> round(float(found["expert_load"].sum()), 6)
      1.0
    """

    num_experts: int = 4
    top_k: int = 1
    hidden_features: int | None = None
    dtype: Any = None
    features: int | None = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, mask: Any = None) -> jax.Array:
        experts = checked_size(self, "num_experts")
        top_k = concrete_number(self.top_k)
        if (
            not isinstance(top_k, numbers.Integral)
            or isinstance(top_k, bool)
            or not 1 <= int(top_k) <= experts
        ):
            raise ValueError(
                f"MixtureOfExperts top_k must be an int in [1, num_experts={experts}], "
                f"got {cut_repr(top_k)}."
            )
        width = input_width(self, x)
        real = real_tokens(self, mask, x.shape[:-1], pairs=True)
        x = zero_padding(x, real)
        features = checked_size(self, "features", width)
        hidden = checked_size(self, "hidden_features", 2 * width)
        dtype = compute_dtype(self.dtype, x)

        wide = at_least_float32(compute_dtype(None, x), self.param_dtype)
        router = nn.Dense(experts, dtype=wide, param_dtype=self.param_dtype, name="router")
        logits = router(x.astype(wide))
        probs = tag(self, "router_probs", nn.softmax(logits, axis=-1))
        # by probability, and where that ties (probabilities that underflowed to 0) by logit
        experts_in_order = jnp.broadcast_to(jnp.arange(experts), probs.shape)
        ranked = jax.lax.sort((-probs, -logits, experts_in_order), num_keys=2)[2]
        chosen_index = ranked[..., :top_k]
        chosen = jax.nn.one_hot(chosen_index, experts, dtype=probs.dtype).sum(-2)
        gates = probs * chosen

        load = tag(self, "expert_load", token_mean(chosen, real) / top_k)
        mean_prob = token_mean(probs, real)
        balance = tag(self, "balance", experts * jnp.sum(load * mean_prob))
        weight = knob(
            self, "balance_weight", 0.01, doc="weight of the load-balancing loss", valid=Range(ge=0)
        )
        aux_loss(self, "balance", weight * balance)

        init = nn.initializers.lecun_normal(in_axis=-2, out_axis=-1, batch_axis=(0,))
        zeros, param_dtype = nn.initializers.zeros, self.param_dtype
        w_in = self.param("expert_in_kernel", init, (experts, width, hidden), param_dtype)
        b_in = self.param("expert_in_bias", zeros, (experts, hidden), param_dtype)
        w_out = self.param("expert_out_kernel", init, (experts, hidden, features), param_dtype)
        b_out = self.param("expert_out_bias", zeros, (experts, features), param_dtype)
        x = x.astype(dtype)
        h = nn.gelu(jnp.einsum("...c,ech->...eh", x, w_in.astype(dtype)) + b_in.astype(dtype))
        y = jnp.einsum("...eh,ehc->...ec", h, w_out.astype(dtype)) + b_out.astype(dtype)
        # in the gates' float32, cast once: bfloat16 gates need not add up to their sum
        return jnp.einsum("...e,...ec->...c", gates, y).astype(dtype)
