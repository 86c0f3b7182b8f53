"""`Frame`: the standard model skeleton, stem -> blocks -> head."""

import math
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from phosjax._callables import a_type, cut_repr
from phosjax.core import tag
from phosjax.core._paths import module_path
from phosjax.core._tags import calls_tagged, tag_output
from phosjax.layers._common import (
    CheckedFields,
    Dropout,
    PassesKeywords,
    call_block,
    check_keywords,
    checked_rate,
    checked_size,
    checked_train,
    takes_keyword,
    token_mean,
)
from phosjax.models._kinds import KINDS, VECTOR, choose_kind, view_as
from phosjax.models._masks import (
    call_mask,
    check_mask_tokens,
    check_stem_padding,
    check_view_tokens,
    padding_mask,
    viewed_mask,
    zero_padded_input,
)

POOLS = ("mean", "max", "flatten", "last")


def _check_features(module: nn.Module, x: jax.Array, y: Any, features: int) -> None:
    expected = f"({x.shape[0]}, {'*, ' * (x.ndim - 2)}{features})"
    fits = (
        isinstance(y, jax.Array)
        and y.ndim == x.ndim
        and y.shape[0] == x.shape[0]
        and y.shape[-1] == features
    )
    if not fits:
        got = getattr(y, "shape", type(y).__name__)
        raise ValueError(
            f"block {module.name!r} ({type(module).__name__}) maps {x.shape} to {got}; the "
            f"frame expects {expected} (batch, {'spatial axes, ' if x.ndim > 2 else ''}"
            f"{features} features)."
        )


def checked_batch(x: Any, input_shape: tuple[int, ...], who: str) -> jax.Array:
    """``x`` as an array (a list or a numpy array too) if it is a batch of examples of
    ``input_shape``; else a TypeError (no array, a complex one) or a ValueError (another
    shape) naming ``who`` and the shape expected.

    Examples:
      >>> checked_batch([[1.0, 2.0]], (2,), "Frame").shape
      (1, 2)
      >>> checked_batch({"x": 1.0}, (2,), "Frame")
      Traceback (most recent call last):
      TypeError: Frame takes x, a batch array of shape (batch, *(2,)), got a dict
    """
    try:
        x = jnp.asarray(x)
    except (TypeError, ValueError):  # a dict, a str; a ragged list; an array of objects
        numpy = isinstance(x, np.ndarray)  # of the right shape, maybe
        got = f"{a_type(x)} of dtype {x.dtype}, no numbers" if numpy else a_type(x)
        raise TypeError(
            f"{who} takes x, a batch array of shape (batch, *{input_shape}), got {got}"
        ) from None
    if x.shape[1:] != tuple(input_shape):
        raise ValueError(
            f"{who} was built for examples of shape {input_shape}; got a batch of shape "
            f"{x.shape} (expected (batch, *{input_shape}))."
        )
    if jnp.issubdtype(x.dtype, jnp.complexfloating):  # complex logits, or its real part
        raise TypeError(
            f"{who} takes real inputs, got x of dtype {x.dtype}; give its magnitude "
            "(abs(x)) or its real and imaginary parts as channels"
        )
    return x


def _tokens(h: jax.Array) -> jax.Array:
    """``h`` ``(batch, ..., C)`` as ``(batch, tokens, C)`` (no ``-1``: an empty batch
    leaves it unknown)."""
    return h.reshape(h.shape[0], math.prod(h.shape[1:-1]), h.shape[-1])


def _pool_real(h: jax.Array, pool: str, real: jax.Array) -> jax.Array:
    """``h`` ``(batch, ..., C)`` pooled over the tokens that ``real`` ``(batch, tokens)``,
    float weights (1: a real token), keeps: their mean, max or last one, or all flattened
    with the others zeroed; an example with no real token pools to zeros.

    Examples:
      >>> h, real = jnp.array([[[1.0], [3.0], [9.0]]]), jnp.array([[1.0, 1.0, 0.0]])
      >>> [_pool_real(h, pool, real).tolist() for pool in POOLS]
      [[[2.0]], [[3.0]], [[1.0, 3.0, 0.0]], [[3.0]]]
    """
    if pool == "mean":
        return token_mean(h, real, kept=1).astype(h.dtype)
    tokens, kept = _tokens(h), real[..., None] > 0
    if pool == "flatten":
        return jnp.where(kept, tokens, 0).reshape(h.shape[0], math.prod(tokens.shape[1:]))
    some = kept.any(1)
    if pool == "last":
        last = real.shape[1] - 1 - jnp.argmax(real[:, ::-1] > 0, axis=1)
        return jnp.where(some, jnp.take_along_axis(tokens, last[:, None, None], axis=1)[:, 0], 0)
    return jnp.where(some, jnp.where(kept, tokens, -jnp.inf).max(1), 0).astype(h.dtype)


def pool_tokens(h: jax.Array, pool: str, real: jax.Array | None = None) -> jax.Array:
    """``h`` ``(batch, ..., C)`` reduced to ``(batch, C')`` as ``pool`` says, over the
    ``real`` tokens only when given (see `_pool_real`); a ``(batch, C)`` ``h`` as it is.

    Examples:
      >>> h = jnp.array([[[1.0], [3.0], [9.0]]])
      >>> [pool_tokens(h, pool).tolist() for pool in POOLS]
      [[[4.333333492279053]], [[9.0]], [[1.0, 3.0, 9.0]], [[9.0]]]
      >>> pool_tokens(h, "mean", jnp.array([[1.0, 1.0, 0.0]])).tolist()
      [[2.0]]
    """
    if h.ndim == 2:
        return h
    if real is not None:
        return _pool_real(h, pool, real)
    if pool == "flatten":
        return h.reshape(h.shape[0], math.prod(h.shape[1:]))
    if pool == "last":
        return _tokens(h)[:, -1]
    axes = tuple(range(1, h.ndim - 1))
    return jnp.mean(h, axis=axes) if pool == "mean" else jnp.max(h, axis=axes)


class Frame(PassesKeywords, CheckedFields):
    """The standard model: input view -> stem -> blocks -> pooling -> ``Dense(num_classes)``.

    Blocks are grouped in stages of equal width: block ``i`` must map ``(batch, ...,
    c_in)`` to ``(batch, ..., widths[i // depth])`` (spatial axes may shrink); anything
    else is an error that names the block and both shapes. Usually built by
    `build_model` from a `ModelConfig`; the registry constructs the stem and blocks.

    The call's optional ``mask`` goes to the blocks whose call takes it (an error when
    none does), not to the stem: for `TransformerBlock` blocks it is an attention mask
    over the tokens they see, the stem's output (``(batch, tokens)``, true for a real
    token; booleans or integers, a float mask is a TypeError, see `phosjax.layers`;
    the transformer's ``Patches`` stem makes ``length // patch_size`` tokens, and
    a mask of the input's tokens, a per-pair one too, is an error that gives the shape
    to use),
    so padded tokens' inputs do not change real tokens' block outputs; `GRUBlock` blocks
    (``gru``) skip the padded tokens in their recurrence. A padding mask
    (``(batch, tokens)``), or a per-pair one of them (its padding as attention reads it),
    also leaves the padded tokens out of the head's pooling (the mean, max or last of the
    real tokens; ``"flatten"`` zeroes the padded ones; an example of padding alone pools
    to zeros), so they do not change the logits either. A padding mask of the input's tokens
    (no stem, or one that keeps them), or a per-pair one of them (its padding as attention
    reads it), makes the frame read the padded tokens as zeros, its stem too, so what they hold (an
    infinity, a NaN) reaches neither the logits nor the gradients; so does a mask of the
    stem's tokens when the stem has an ``input_mask(mask, x)`` method that gives the
    input tokens making up its real ones (`Patches`; one returning None takes the input
    as it is); with any other stem, such a mask is an error (which input tokens it pads
    cannot be told). An image's mask (``(batch, height, width)``), or a volume's (its
    shape but the channels), is flattened as the input is when the frame views it as a
    sequence; a mask of a sequence's, an image's or a volume's tokens is an error when the
    frame views it as a vector, which has no tokens to pad. A block that changes the token
    count under a padding mask (a strided convolution, say) is an error naming it and
    both token shapes: after a block that takes the mask, since it no longer fits the
    tokens pooled; before any, since the blocks that take it see the new tokens (the
    error gives the shape to use). Under a per-pair mask, such a block after one that takes
    the mask is no error, and the head then pools every token, padded ones too. In a
    container (a `phosjax.layers.Sequence`, a graph), a frame is given the mask only when
    one of its blocks takes it.

    Tagged values: ``stem/out``, ``blocks_<i>/out`` (each block's output), ``features``
    (pooled) and ``logits``, plus whatever the stem and blocks tag themselves.

    Attributes:
      num_classes: logits per example.
      input_shape: one example's shape; ``x`` must be ``(batch, *input_shape)``.
      input_kind: how the input is viewed: ``"vector"``, ``"sequence"`` or ``"image"``,
        one ``input_shape`` can be viewed as (`choose_kind`: an image has 3 axes; one of 4
        or more, a volume, is viewed as a vector or a sequence).
      widths: features per stage.
      depth: blocks per stage (``len(blocks) == depth * len(widths)``).
      blocks: the block modules, in order (named ``blocks_0``, ``blocks_1``...).
      stem: an optional module that maps the input to ``widths[0]`` features.
      pool: how the head reduces spatial axes: ``"mean"``, ``"max"``, ``"flatten"`` or
        ``"last"`` (the last position, for recurrent blocks).
      dropout: dropout rate before the head (rng stream ``"dropout"``, train only).
      dtype: the head's computation dtype (``None``: what the pooled features and its
        params promote to, as Flax's layers); the stem and blocks keep their own. The
        logits are what the features and params promote to either way (float32 for
        float32 params), as the loss expects.
      param_dtype: the dtype the head's params are stored in (the registry gives it a
        model's ``param_dtype`` option, which its stem and blocks take too).

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from phosjax.models import Frame
      >>> frame = Frame(num_classes=3, input_shape=(4,), input_kind="vector", widths=(5,),
      ...               depth=1, blocks=(nn.Dense(5),), stem=nn.Dense(5))
      >>> x = jnp.ones((2, 4))
      >>> logits, variables = jax.eval_shape(frame.init_with_output, jax.random.key(0), x)
      >>> logits.shape, sorted(variables["params"])
      ((2, 3), ['blocks_0', 'head', 'stem'])
      >>> from phosjax.layers import TransformerBlock
      >>> frame = Frame(num_classes=3, input_shape=(4, 2), input_kind="sequence", widths=(2,),
      ...               depth=1, blocks=(TransformerBlock(num_heads=1),))
      >>> real = jnp.array([[True, True, False, False]])  # 2 tokens, 2 padded
      >>> x = jnp.ones((1, 4, 2)); variables = jax.jit(frame.init)(jax.random.key(0), x)
      >>> jax.jit(frame.apply)(variables, x, mask=real).shape
      (1, 3)
    """

    num_classes: int
    input_shape: tuple[int, ...]
    input_kind: str
    widths: tuple[int, ...]
    depth: int
    blocks: tuple[nn.Module, ...] = ()
    blocks_field: ClassVar[str] = "blocks"
    stem: nn.Module | None = None
    pool: str = "mean"
    dropout: float = 0.0
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, *, mask: Any = None) -> jax.Array:
        checked_train(self, train)
        x = checked_batch(x, self.input_shape, type(self).__name__)
        if len(self.blocks) != self.depth * len(self.widths):
            raise ValueError(
                f"{len(self.blocks)} blocks do not make {len(self.widths)} stage(s) of depth "
                f"{self.depth}."
            )
        if self.pool not in POOLS:
            raise ValueError(f"Frame pool must be one of {POOLS}, got {cut_repr(self.pool)}")
        if self.input_kind not in KINDS:
            raise ValueError(
                f"Frame input_kind must be one of {KINDS}, got {cut_repr(self.input_kind)}"
            )
        kind = self.input_kind  # one the input can be viewed as: (40,) is no image
        if self.input_shape or kind != VECTOR:  # a scalar example, (), flattens to (1,) only
            choose_kind(self.input_shape, (kind,), kind, type(self).__name__)
        num_classes, dropout = checked_size(self, "num_classes"), checked_rate(self, "dropout")
        check_keywords(self, self.blocks, {} if mask is None else {"mask": mask})
        mask = call_mask(mask)
        h = view_as(x, self.input_kind)
        check_view_tokens(mask, x, h, self.input_kind)
        given, mask = mask, viewed_mask(mask, x, h)
        keywords = {} if mask is None else {"mask": mask}
        h = zero_padded_input(mask, h, self.stem)  # padding read as zeros, by the stem too
        if self.stem is not None:
            viewed, h = h, self._run(self.stem, h, train, self.widths[0])
            check_mask_tokens(self.stem, mask, viewed, h, given=given)
            check_stem_padding(self.stem, mask, viewed, h)
        taken = False  # whether a block so far took the mask
        for i, block in enumerate(self.blocks):
            taken = taken or takes_keyword(block, "mask")
            before, h = h, self._run(block, h, train, self.widths[i // self.depth], **keywords)
            check_mask_tokens(block, mask, before, h, stem=False, taken=taken, given=given)
        h = tag(self, "features", pool_tokens(h, self.pool, padding_mask(mask, h)))
        h = Dropout(dropout, deterministic=not train)(h)
        head = nn.Dense(num_classes, dtype=self.dtype, param_dtype=self.param_dtype, name="head")
        logits = head(h)  # in what h and its params promote to, as with no dtype:
        logits = logits.astype(jnp.result_type(h, *jax.tree.leaves(head.variables)))
        return tag(self, "logits", logits)

    def _run(
        self, module: nn.Module, h: jax.Array, train: bool, features: int, **keywords: Any
    ) -> jax.Array:
        tagged = calls_tagged(module, "out")
        out = call_block(module, h, train, **keywords)
        if calls_tagged(module, "out") > tagged:
            raise ValueError(
                f"block {module.name!r} ({type(module).__name__}) tags a value named 'out' "
                f"itself, at {module_path(module, 'out')!r}, where the frame tags the block's "
                "output, so the two would be read as two calls of one tag; give that tag "
                f"another name in {type(module).__name__}."
            )
        _check_features(module, h, out, features)
        return tag_output(module, "out", out)  # beside a submodule named out of the block
