"""Pathway layers: a learned choice between branches and gated or plain skip connections.

Each layer that weights a branch computes it inside `phosjax.core.path_weight`, so the
weight is recorded in the ``path_weights`` collection and the branch's auxiliary losses
are scaled by it (the phos idea).
"""

from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from phosjax.core import Range, knob, path_weight, tag
from phosjax.layers._common import (
    CheckedFields,
    PassesKeywords,
    at_least_float32,
    call_block,
    check_block,
    check_blocks,
    check_keywords,
    check_shape,
    checked_finite,
    checked_train,
    compute_dtype,
    real_tokens,
    returned,
    token_mean,
    zero_mask_padding,
)


def _per_example(weight: jax.Array, like: jax.Array) -> jax.Array:
    """``weight`` (scalar or ``(B,)``) broadcastable to ``like``."""
    return weight.reshape(weight.shape + (1,) * (like.ndim - weight.ndim))


class Choice(PassesKeywords, CheckedFields):
    """A softmax-gated mixture of branches: ``sum_i w_i * branch_i(x)``.

    The gate logits are learned. With ``per_example=False`` (the default) they are one
    parameter per branch (``gate_logits``, a global choice that training sharpens, as in
    phos and DARTS); with ``per_example=True`` a ``Dense`` layer named ``gate`` computes
    them from the input averaged over its middle axes, giving one weight per example;
    over the real tokens only when the call has a ``mask`` (``(B, ..., L)``, the input's
    shape but its features: ``(B,)`` for vectors ``(B, C)``; axes of size 1
    broadcasting; booleans or integers, true: a real token, a float one is a TypeError;
    or an
    attention mask ``(B, H, L, L)``, read as attention reads it), which also goes to
    the branches that take it (as a container, it reads the padded tokens as zeros: see
    `phosjax.layers`).
    The weights are ``softmax(logits / T)`` with the temperature ``T`` a knob (a finite
    number > 0). Branch
    ``i`` runs inside ``path_weight(self, "branch_i", w_i)``.

    Tags ``weights`` (``(num_branches,)``, or ``(B, num_branches)`` per example).
    The output has the dtype of the branch outputs (float32 for integer ones), the
    weighted sum taken in the weights' float32 and cast once.

    Attributes:
      branches: the candidate blocks (a list or tuple of Flax modules or functions);
        each maps ``x`` to outputs of one common shape (anything else is an error that
        names the branch).
      per_example: compute the gate logits from the input instead of learning them
        directly.
      param_dtype: the dtype the gate's parameters are stored in (as Flax's
        ``param_dtype``); the branches are the caller's and keep their own. The softmax
        is computed in float32 at least (float64 for float64 params, and per example
        for a float64 input too).

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp, phosjax as px
      >>> from phosjax.layers import Choice
      >>> layer = Choice([nn.Dense(3), nn.Dense(3)])
      >>> x = jnp.ones((2, 3)); variables = jax.jit(layer.init)(jax.random.key(0), x)
      >>> out, found = px.probe(layer, variables, x, "weights")
      >>> out.shape, found["weights"].tolist()
      ((2, 3), [0.5, 0.5])
      >>> layer = Choice([nn.Dense(3), nn.Dense(3)], per_example=True)
      >>> x = jnp.ones((2, 4, 3)); real = jnp.arange(4) < jnp.array([[4], [2]])
      >>> variables = jax.jit(layer.init)(jax.random.key(0), x, mask=real)
      >>> jax.jit(layer.apply)(variables, x, mask=real).shape
      (2, 4, 3)
    """

    branches: Sequence[nn.Module]
    blocks_field: ClassVar[str] = "branches"
    per_example: bool = False
    param_dtype: Any = jnp.float32

    def takes_keyword(self, name: str) -> bool:
        """As `PassesKeywords`, and ``mask`` when ``per_example`` (its gate reads it).

        Examples:
          >>> import flax.linen as nn
          >>> Choice([nn.Dense(3), nn.Dense(3)]).takes_keyword("mask")  # no branch takes it
          False
          >>> Choice([nn.Dense(3), nn.Dense(3)], per_example=True).takes_keyword("mask")
          True
        """
        return (self.per_example and name == "mask") or super().takes_keyword(name)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, **keywords: Any) -> jax.Array:
        checked_train(self, train, handed_on=True)
        check_blocks(self, "branches", "branch")
        if not self.branches:
            raise ValueError("Choice needs at least one branch, got an empty `branches`.")
        own = ("mask",) if self.per_example else ()  # the gate reads it, so no branch must
        check_keywords(self, self.branches, {k: v for k, v in keywords.items() if k not in own})
        x = zero_mask_padding(self, x, keywords)
        mask = keywords.get("mask") if self.per_example else None
        num = len(self.branches)
        if self.per_example:
            if x.ndim < 2:
                raise ValueError(
                    f"Choice(per_example=True) needs a batch axis: input shape (B, ..., C), "
                    f"got {x.shape}."
                )
            real = real_tokens(self, mask, x.shape[:-1], pairs=True)
            summary = token_mean(x.astype(at_least_float32(compute_dtype(None, x))), real, kept=1)
            gate = nn.Dense(
                num, kernel_init=nn.initializers.zeros, param_dtype=self.param_dtype, name="gate"
            )
            logits = gate(summary)  # in the dtype summary (float32 at least) and params promote to
        else:
            logits = self.param("gate_logits", nn.initializers.zeros, (num,), self.param_dtype)
            logits = logits.astype(at_least_float32(self.param_dtype))
        temperature = knob(
            self, "T", 1.0, doc="softmax temperature of the branch weights", valid=Range(gt=0)
        )
        weights = tag(self, "weights", nn.softmax(logits / temperature, axis=-1))
        outputs = []
        for i, branch in enumerate(self.branches):
            with path_weight(self, f"branch_{i}", weights[..., i]):
                outputs.append(call_block(branch, x, train, **keywords))
            if i == 0 and getattr(outputs[0], "shape", None) is None:
                raise ValueError(
                    f"Choice's branch 0 must return an array, but returned {returned(outputs[0])}."
                )
            check_shape(
                outputs[i], outputs[0].shape, f"Choice's branch {i} must return branch 0's shape"
            )
        # mixed in the weights' float32, cast once: bfloat16 weights of branches returning
        # their input would not add up to it
        terms = [_per_example(weights[..., i], y) * y for i, y in enumerate(outputs)]
        return sum(terms[1:], terms[0]).astype(
            jnp.result_type(*(compute_dtype(None, y) for y in outputs))
        )


class GatedSkip(PassesKeywords, CheckedFields):
    """A learned gate between identity and a block: ``(1 - g) * x + g * block(x)``.

    ``g = sigmoid(gate_logit)`` is one learned scalar (the original phos ``Skip``); the
    block runs inside ``path_weight(self, "block_weight", g)``. Tags ``gate``. The output
    has the dtype ``x`` and the block's output promote to, an integer one counting as
    float32 (as `Choice` of an identity branch and the block gives), the mix taken in the
    gate's float32 and cast once.

    Attributes:
      block: maps ``x`` to an output of the same shape (anything else is an error).
      gate_init: the initial gate logit, a finite number (0 gives ``g = 0.5``).
      param_dtype: the dtype ``gate_logit`` is stored in (as Flax's ``param_dtype``; the
        gate is computed in float32 at least); the block is the caller's and keeps its own.

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp, phosjax as px
      >>> from phosjax.layers import GatedSkip
      >>> layer = GatedSkip(nn.Dense(3), gate_init=-1e4)  # gate closed: identity
      >>> x = jnp.arange(3.0)[None]; variables = layer.init(jax.random.key(0), x)
      >>> layer.apply(variables, x).tolist()
      [[0.0, 1.0, 2.0]]
    """

    block: nn.Module
    blocks_field: ClassVar[str] = "block"
    gate_init: float = 0.0
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, **keywords: Any) -> jax.Array:
        checked_train(self, train, handed_on=True)
        check_block(self.block, "GatedSkip's block")
        check_keywords(self, self.block, keywords)
        x = zero_mask_padding(self, x, keywords)
        init = nn.initializers.constant(checked_finite(self, "gate_init"))
        logit = self.param("gate_logit", init, (), self.param_dtype)
        gate = tag(self, "gate", nn.sigmoid(logit.astype(at_least_float32(self.param_dtype))))
        with path_weight(self, "block_weight", gate):
            y = call_block(self.block, x, train, **keywords)
        check_shape(y, x.shape, "GatedSkip's block must keep the input shape")
        # mixed in the gate's float32, cast once: a bfloat16 gate near 1 is 1, and bfloat16
        # shares of a block returning its input would not add up to it
        mixed = jnp.result_type(compute_dtype(None, x), compute_dtype(None, y))
        return ((1 - gate) * x + gate * y).astype(mixed)


class Residual(PassesKeywords, CheckedFields):
    """A residual connection ``x + block(x)``, projecting ``x`` when the widths differ.

    When the block changes the number of features, ``x`` goes through a bias-free
    ``Dense`` named ``projection`` first (He et al., arXiv 1512.03385). The output is
    what ``x`` and the block's output promote to, whether it projects or not (a float32
    input and a bfloat16 block give float32). Tags ``residual`` (the block's output).

    Attributes:
      block: maps ``(..., C)`` to ``(..., C')``, every other axis kept.
      param_dtype: the dtype ``projection``'s kernel is stored in (as Flax's
        ``param_dtype``); the block is the caller's and keeps its own.
      dtype: the dtype ``projection`` computes in (``None``: the output's).

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp
      >>> from phosjax.layers import Residual
      >>> layer = Residual(nn.Dense(5))
      >>> x = jnp.ones((2, 3)); variables = layer.init(jax.random.key(0), x)
      >>> layer.apply(variables, x).shape, sorted(variables["params"])
      ((2, 5), ['block', 'projection'])
    """

    block: nn.Module
    blocks_field: ClassVar[str] = "block"
    param_dtype: Any = jnp.float32
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, **keywords: Any) -> jax.Array:
        checked_train(self, train, handed_on=True)
        check_block(self.block, "Residual's block")
        check_keywords(self, self.block, keywords)
        x = zero_mask_padding(self, x, keywords)
        y = tag(self, "residual", call_block(self.block, x, train, **keywords))
        if getattr(y, "shape", None) is None or (y.ndim, y.shape[:-1]) != (x.ndim, x.shape[:-1]):
            raise ValueError(
                f"Residual's block must keep every axis but the last of the input shape "
                f"{x.shape}, but returned {returned(y)}."
            )
        if y.shape != x.shape:
            summed = jnp.result_type(x, y)  # as without a projection
            computed = summed if self.dtype is None else self.dtype  # a float: CheckedFields
            if not jnp.issubdtype(computed, jnp.inexact):  # Flax's Dense: "must be inexact"
                raise TypeError(
                    f"Residual's block changed the width of its input ({x.shape[-1]} to "
                    f"{y.shape[-1]}), so x goes through a learned projection, which needs "
                    f"floats, and neither x ({x.dtype}) nor the block's output ({y.dtype}) "
                    "is one; give x as floats (x.astype(jnp.float32)) or keep its width."
                )
            projection = nn.Dense(
                y.shape[-1],
                use_bias=False,
                dtype=computed,
                param_dtype=self.param_dtype,
                name="projection",
            )
            x = projection(x).astype(summed)
        return x + y


class ReZero(PassesKeywords, CheckedFields):
    """``x + alpha * block(x)`` with a learned scalar ``alpha`` that starts at 0.

    At initialization the layer is the identity, which lets deep stacks train without
    normalization (Bachlechner et al., arXiv 2003.04887). Tags ``residual``
    (``alpha * block(x)``, in float32 at least). The sum is taken in float32 at least
    and cast once to what ``x`` and the block's output promote to, an integer one
    counting as float32 (as in `GatedSkip`).

    ``alpha`` is a residual gain, not a path weight: it may be negative or above 1, so
    the block does not run in a `phosjax.core.path_weight` scope, and its auxiliary
    losses count fully whatever ``alpha`` is (use `GatedSkip` for a weighted pathway).

    Attributes:
      block: maps ``x`` to an output of the same shape (anything else is an error).
      param_dtype: the dtype ``alpha`` is stored in (as Flax's ``param_dtype``); the
        block is the caller's and keeps its own.

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp
      >>> from phosjax.layers import ReZero
      >>> layer = ReZero(nn.Dense(2))
      >>> x = jnp.array([[1.0, 2.0]]); variables = layer.init(jax.random.key(0), x)
      >>> layer.apply(variables, x).tolist()
      [[1.0, 2.0]]
    """

    block: nn.Module
    blocks_field: ClassVar[str] = "block"
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, **keywords: Any) -> jax.Array:
        checked_train(self, train, handed_on=True)
        check_block(self.block, "ReZero's block")
        check_keywords(self, self.block, keywords)
        x = zero_mask_padding(self, x, keywords)
        alpha = self.param("alpha", nn.initializers.zeros, (), self.param_dtype)
        y = call_block(self.block, x, train, **keywords)
        check_shape(y, x.shape, "ReZero's block must keep the input shape")
        # in alpha's float32, cast once: a bfloat16 alpha (-0.987 as -0.9883) and a bfloat16
        # sum of x and a residual nearly cancelling it are off by many of the output's steps
        residual = tag(self, "residual", alpha.astype(at_least_float32(self.param_dtype)) * y)
        return (x + residual).astype(
            jnp.result_type(compute_dtype(None, x), compute_dtype(None, y))
        )
