"""Attention layers: multi-head self-attention that reports its weights, and a block."""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from phosjax.core import tag
from phosjax.layers._common import (
    CheckedFields,
    Dropout,
    apply_as_out,
    at_least_float32,
    broadcasts_to,
    check_mask_dtype,
    checked_rate,
    checked_size,
    checked_train,
    compute_dtype,
    input_width,
    layer_norm,
    mask_array,
    pair_tokens,
    zero_padding,
)


def _entropy(weights: jax.Array, real: jax.Array | None = None) -> jax.Array:
    """The entropy of each row of ``weights`` ``(..., H, L, L)``, averaged over the rows
    (queries) ``real`` ``(..., L)`` keeps (all when None; 0 when it keeps none): of the
    weights as tagged, so of those `phosjax.inject` gives in their place too.

    Weights of 0 (masked keys) count 0, with finite gradients.

    Examples:
      >>> _entropy(jnp.array([[0.5, 0.5], [1.0, 0.0]])).round(4).tolist()  # log 2, 0
      0.3466
    """
    logs = jnp.log(jnp.where(weights > 0, weights, 1.0))  # no log 0: no NaN, even discarded
    per_query = -(weights * logs).sum(-1)
    if real is None:  # 0 for no query (a sequence of no token), not a NaN mean
        return per_query.mean(-1) if per_query.shape[-1] else per_query.sum(-1)
    kept = real[..., None, :].astype(per_query.dtype)
    return (per_query * kept).sum(-1) / jnp.maximum(kept.sum(-1), 1.0)


def _attention_mask(
    mask: Any,
    batch: tuple[int, ...],
    heads: int,
    length: int,
    causal: bool,
    owner: str = "MultiHeadSelfAttention",
) -> jax.Array | None:
    """``mask`` (see `MultiHeadSelfAttention`) as booleans broadcastable to the attention
    logits ``(*batch, H, L, L)``, and-ed with the causal mask; None when there is neither.

    Raises:
      ValueError: ``mask`` has neither shape it may have (both named), naming ``owner``
        (the layer called with it).
      TypeError: ``mask`` is a float mask (which may be an additive one), or holds no
        numbers (a str).

    Examples:
      >>> _attention_mask(jnp.array([[1, 1, 0]]), (1,), 2, 3, causal=False).shape
      (1, 1, 1, 3)
      >>> _attention_mask(None, (1,), 2, 3, causal=True).astype(int).tolist()
      [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    """
    causal_mask = jnp.tril(jnp.ones((length, length), bool)) if causal else None
    if mask is None:
        return causal_mask
    mask = mask_array(owner, mask, attend=True)
    keys, pairs = (*batch, length), (*batch, heads, length, length)
    if broadcasts_to(mask.shape, keys):
        mask = mask[..., None, None, :]
    elif not broadcasts_to(mask.shape, pairs):
        raise ValueError(
            f"{owner} mask must have the shape {keys} (the keys each query "
            f"may attend) or {pairs} (query-key pairs, batch and heads), axes of size 1 "
            f"broadcasting, but got {mask.shape}."
        )
    check_mask_dtype(owner, mask, attend=True)
    mask = mask.astype(bool)
    return mask if causal_mask is None else mask & causal_mask


def _real_tokens(
    mask: Any, batch: tuple[int, ...], heads: int, length: int, owner: str
) -> jax.Array | None:
    """The real tokens ``(*batch, L)`` of ``mask`` (see `MultiHeadSelfAttention`), as
    `pair_tokens` reads them; None when there is no mask. The layer (``owner``, named by
    the errors of `_attention_mask`) zeroes the others, the padding (`zero_padding`),
    before it computes on them.

    Examples:
      >>> _real_tokens(jnp.array([[1, 1, 0]]), (1,), 2, 3, "TransformerBlock").tolist()
      [[True, True, False]]
      >>> _real_tokens(jnp.tril(jnp.ones((1, 3, 3), bool), -1), (), 1, 3, "T").tolist()  # strict
      [True, True, True]
    """
    allowed = _attention_mask(mask, batch, heads, length, False, owner)
    if allowed is None:
        return None
    return jnp.broadcast_to(pair_tokens(allowed), (*batch, length))


def _head_width(module: nn.Module, x: jax.Array) -> int:
    """The width of each of ``module``'s ``num_heads`` heads on ``x`` ``(..., L, C)``.

    Raises:
      ValueError: ``num_heads`` is no int >= 1, or does not divide ``C``: naming
        ``module``, ``C``, ``x``'s shape and the head counts that would.

    Examples:
      >>> _head_width(TransformerBlock(3), jnp.ones((2, 5, 4)))
      Traceback (most recent call last):
      ValueError: TransformerBlock input width 4 (input shape (2, 5, 4)) must be divisible
      by num_heads=3 (each head takes width / num_heads features); give num_heads one of
      [1, 2, 4].
    """
    features, heads = input_width(module, x, "..., L, C"), checked_size(module, "num_heads")
    if features % heads:
        divisors = [n for n in range(1, features + 1) if features % n == 0]
        raise ValueError(
            f"{type(module).__name__} input width {features} (input shape {x.shape}) must "
            f"be divisible by num_heads={heads} (each head takes width / num_heads "
            f"features); give num_heads one of {divisors}."
        )
    return features // heads


def _masked_log_softmax(logits: jax.Array, mask: jax.Array | None) -> jax.Array:
    """The log-softmax of ``logits`` over the keys ``mask`` keeps; ``-inf`` at the others,
    and on a row that keeps no key (its weights are all 0, its gradients finite, and no
    NaN is computed on the way: ``jax_debug_nans`` passes).

    Examples:
      >>> mask = jnp.array([[True, False], [False, False]])
      >>> jnp.exp(_masked_log_softmax(jnp.zeros((2, 2)), mask)).tolist()
      [[1.0, 0.0], [0.0, 0.0]]
    """
    if mask is None:
        return jax.nn.log_softmax(logits, axis=-1)
    kept = mask | ~mask.any(-1, keepdims=True)  # a row with no key: over all, then dropped
    log_weights = jax.nn.log_softmax(jnp.where(kept, logits, -jnp.inf), axis=-1)
    return jnp.where(mask, log_weights, -jnp.inf)


class MultiHeadSelfAttention(CheckedFields):
    """Multi-head scaled dot-product self-attention over the second-to-last axis.

    Maps ``(..., L, C)`` to ``(..., L, C)``; ``C`` must divide by ``num_heads``: each head's
    query, key and value have ``C / H`` features, made by one ``DenseGeneral`` named ``qkv``
    (kernel ``(C, 3, H, C / H)``, bias ``(3, H, C / H)``: query, key, value), and the heads'
    values go back to ``C`` through ``out``. The key's bias adds the same number to every
    logit of a query, which the softmax ignores: it changes no output and its gradient is
    zero up to rounding (as in `flax.linen.MultiHeadDotProductAttention`, which has one
    too). The logits and their softmax are computed in float32 at least (float64 in
    float64), so float16 logits do not overflow. Tags
    ``attention_weights`` (``(..., H, L, L)``, in that dtype, each row sums to 1, or to
    0 where a ``mask`` leaves its query no key) and
    ``attention_entropy`` (``(..., H)``: the entropy in nats of each query's weights,
    averaged over the queries, the real ones alone under a ``mask`` (padded ones,
    below, do not count); ``log L`` is uniform attention, 0 is attention to one position).

    The call's ``mask`` says which keys each query may attend (booleans or integers, true
    or nonzero: attend; a float mask is an error, traced or not, as it may be an additive
    one of 0 and ``-inf`` that would read the other way round: give Flax's
    `flax.linen.make_attention_mask` ``dtype=bool``), in one of two shapes, with
    ``...`` the input's batch axes and axes of size 1 broadcasting: ``(..., L)``, the
    keys every query may attend (a padding mask), or ``(..., H, L, L)``, per head,
    query and key. It is and-ed with the causal mask. A query left no key has weights
    all 0 (its row sums to 0; its entropy is 0), so its attention output is 0 and the
    layer returns the output projection's bias there, not NaN. The padded tokens (with
    a mask of the keys, those no query may attend; with a per-pair mask, those that
    neither attend nor are attended, in any head, so a token that only attends, a
    summary token say, is real) are read as zeros, so what they hold (an infinity, a
    NaN) reaches neither the outputs nor the gradients; their own outputs are those of a
    zero input. A per-pair mask whose padded queries attend the real keys (Flax's
    ``make_attention_mask(ones, real)``) leaves them real: give ``real`` alone, or
    ``make_attention_mask(real, real)``, for that.

    Attributes:
      num_heads: the number of heads ``H``.
      causal: mask future positions (query ``i`` sees keys ``<= i``).
      dropout_rate: dropout on the attention weights in training (rng ``"dropout"``).
      dtype: the computation dtype (``None``: the input's).
      param_dtype: the dtype parameters are stored in (as Flax's ``param_dtype``).

    Examples:
      >>> import jax, jax.numpy as jnp, phosjax as px
      >>> from phosjax.layers import MultiHeadSelfAttention
      >>> layer = MultiHeadSelfAttention(num_heads=2)
      >>> x = jnp.ones((3, 5, 4)); variables = jax.jit(layer.init)(jax.random.key(0), x)
      >>> out, found = px.probe(layer, variables, x, "attention_*")
      >>> out.shape, found["attention_weights"].shape, found["attention_entropy"].shape
      ((3, 5, 4), (3, 2, 5, 5), (3, 2))
      >>> padding = jnp.arange(5) < jnp.array([[5], [3], [1]])  # (3, 5): the real tokens
      >>> _, found = px.probe(layer, variables, x, "attention_weights", mask=padding)
      >>> [round(w, 3) for w in found["attention_weights"][1, 0, 0].tolist()]  # example 1
      [0.333, 0.333, 0.333, 0.0, 0.0]
    """

    num_heads: int
    causal: bool = False
    dropout_rate: float = 0.0
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, *, mask: Any = None) -> jax.Array:
        checked_train(self, train)
        features, length = input_width(self, x, "..., L, C"), x.shape[-2]
        head = _head_width(self, x)
        checked_rate(self, "dropout_rate")
        dtype = compute_dtype(self.dtype, x)
        real = _real_tokens(mask, x.shape[:-2], self.num_heads, length, "MultiHeadSelfAttention")
        x = zero_padding(x, real)
        qkv = nn.DenseGeneral(
            (3, self.num_heads, head), dtype=dtype, param_dtype=self.param_dtype, name="qkv"
        )(x)
        query, key, value = qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :]
        wide = at_least_float32(dtype)  # float16 logits overflow where float32 ones do not
        logits = jnp.einsum("...qhd,...khd->...hqk", query, key, preferred_element_type=wide)
        logits = logits / math.sqrt(head)
        mask = _attention_mask(mask, x.shape[:-2], self.num_heads, length, self.causal)
        log_weights = _masked_log_softmax(logits, mask)
        weights = tag(self, "attention_weights", jnp.exp(log_weights))
        tag(self, "attention_entropy", _entropy(weights, real))
        weights = nn.Dropout(self.dropout_rate)(weights, deterministic=not train)
        out = jnp.einsum("...hqk,...khd->...qhd", weights.astype(dtype), value)
        project = nn.DenseGeneral(
            features, axis=(-2, -1), dtype=dtype, param_dtype=self.param_dtype, parent=None
        )
        return apply_as_out(self, project, out)


class TransformerBlock(CheckedFields):
    """A pre-LayerNorm transformer block: ``x + MHSA(LN(x))``, then ``x + MLP(LN(x))``.

    Maps ``(..., L, C)`` to ``(..., L, C)`` (Xiong et al., arXiv 2002.04745). The MLP is
    ``Dense(mlp_features) -> gelu -> Dense(C)``; the norms are `layer_norm`'s (their
    variance stays right where a token's features share a large offset). Tags
    ``mlp_hidden`` (after the gelu);
    its attention layer ``attention`` tags its weights and their entropy. The call's
    ``mask`` goes to the attention layer (see `MultiHeadSelfAttention` for its shapes);
    its padded tokens (as it reads them) are read as zeros by the whole block, so what
    they hold reaches neither the outputs nor the gradients.

    Attributes:
      num_heads: attention heads; ``C`` must divide by it.
      mlp_features: the MLP's hidden width (``None``: four times ``C``).
      causal: causal attention (and-ed with the call's ``mask``, as in
        `MultiHeadSelfAttention`).
      dropout_rate: dropout on the attention weights and on both residual branches in
        training (rng ``"dropout"``).
      dtype: the branches' computation dtype (``None``: the input's). The residual
        stream keeps the input's dtype (float32 for an integer input): the branches are
        cast to it before they are added, so a float32 input gives a float32 output with
        bfloat16 branches, and a bfloat16 input a bfloat16 output with float32 branches.
      param_dtype: the dtype parameters are stored in (as Flax's ``param_dtype``).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from phosjax.layers import TransformerBlock
      >>> layer = TransformerBlock(num_heads=2)
      >>> x = jnp.ones((3, 5, 4)); variables = jax.jit(layer.init)(jax.random.key(0), x)
      >>> jax.jit(layer.apply)(variables, x).shape
      (3, 5, 4)
    """

    num_heads: int
    mlp_features: int | None = None
    causal: bool = False
    dropout_rate: float = 0.0
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, *, mask: Any = None) -> jax.Array:
        checked_train(self, train)
        features = input_width(self, x, "..., L, C")
        num_heads = self.num_heads
        _head_width(self, x)  # as its attention checks it, naming this block
        dtype = compute_dtype(self.dtype, x)
        dropout = Dropout(checked_rate(self, "dropout_rate"), deterministic=not train)
        x = x.astype(compute_dtype(None, x))  # an integer residual stream would truncate
        real = _real_tokens(mask, x.shape[:-2], num_heads, x.shape[-2], "TransformerBlock")
        x = zero_padding(x, real)
        h = layer_norm(dtype=dtype, param_dtype=self.param_dtype, name="attention_norm")(x)
        h = MultiHeadSelfAttention(
            num_heads,
            self.causal,
            self.dropout_rate,
            dtype,
            param_dtype=self.param_dtype,
            name="attention",
        )(h, train=train, mask=mask)
        x = x + dropout(h).astype(x.dtype)
        h = layer_norm(dtype=dtype, param_dtype=self.param_dtype, name="mlp_norm")(x)
        hidden = checked_size(self, "mlp_features", 4 * features)
        h = nn.Dense(hidden, dtype=dtype, param_dtype=self.param_dtype, name="mlp_in")(h)
        h = tag(self, "mlp_hidden", nn.gelu(h))
        h = nn.Dense(features, dtype=dtype, param_dtype=self.param_dtype, name="mlp_out")(h)
        return x + dropout(h).astype(x.dtype)
