"""`Frame`: the standard model skeleton, stem -> blocks -> head."""

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from phosjax.core import tag
from phosjax.layers._common import (
    PassesKeywords,
    broadcasts_to,
    call_block,
    check_keywords,
    checked_rate,
    checked_size,
    fits_pairs,
    real_tokens,
    takes_keyword,
    token_mean,
    zero_mask_padding,
    zero_padding,
)
from phosjax.models._kinds import KINDS, view_as

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


def padding_mask(mask: Any, h: jax.Array) -> jax.Array | None:
    """``mask`` as float32 weights ``(batch, tokens)`` (1: a real token), the tokens of
    ``h`` ``(batch, ..., C)`` in order, when it is a padding mask of them (``h.shape[:-1]``,
    axes of size 1 broadcasting; see `real_tokens`); None for no mask, a per-pair
    attention mask, or an ``h`` of no tokens.

    Examples:
      >>> h = jnp.ones((2, 3, 4))
      >>> padding_mask(jnp.array([[1, 1, 0]]), h).tolist(), padding_mask(jnp.ones((2, 1, 3, 3)), h)
      ([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]], None)
    """
    fits = mask is not None and h.ndim >= 3 and broadcasts_to(jnp.shape(mask), h.shape[:-1])
    real = real_tokens("Frame", mask, h.shape[:-1]) if fits else None
    return None if real is None else real.reshape(h.shape[0], -1)


def zero_padded_input(mask: Any, h: jax.Array, stem: Any = None) -> jax.Array:
    """``h``, a frame's input as viewed, with the tokens ``mask`` pads read as zeros (see
    `Frame`): ``mask`` is a padding mask of ``h``'s tokens, a per-pair attention mask of
    them (its padding as attention reads it, `zero_mask_padding`), or a padding mask of
    the tokens ``stem`` makes when it has an ``input_mask(mask, x)`` method (`Patches`);
    ``h`` as it is otherwise.

    Examples:
      >>> h = jnp.array([[[1.0], [jnp.nan]]])
      >>> zero_padded_input(jnp.array([[True, False]]), h).tolist()
      [[[1.0], [0.0]]]
      >>> zero_padded_input(jnp.array([[True, False]])[:, None, None, :], h).tolist()
      [[[1.0], [0.0]]]
    """
    real = padding_mask(mask, h)
    input_mask = getattr(stem, "input_mask", None)
    if real is None and callable(input_mask):
        real = input_mask(mask, h)
    if real is None:
        return zero_mask_padding("Frame", h, {"mask": mask})
    return zero_padding(h, real.reshape(h.shape[:-1]))


def _viewed_mask(mask: Any, x: jax.Array, viewed: jax.Array) -> Any:
    """``mask``, a padding mask of ``x``'s tokens (its shape but the features, axes of
    size 1 broadcasting), as one of ``viewed``'s when the frame's view flattened them (an
    image seen as a sequence of pixels); any other ``mask`` as given.

    Examples:
      >>> x, viewed = jnp.ones((1, 2, 2, 1)), jnp.ones((1, 4, 1))  # 2 x 2 pixels: 4 tokens
      >>> _viewed_mask(jnp.array([[[True], [False]]]), x, viewed).tolist()
      [[True, True, False, False]]
    """
    inputs, tokens = x.shape[:-1], viewed.shape[:-1]
    if mask is None or viewed.ndim < 3 or inputs == tokens:
        return mask
    shape = jnp.shape(mask)
    if not broadcasts_to(shape, inputs) or broadcasts_to(shape, tokens):
        return mask
    return jnp.broadcast_to(jnp.asarray(mask), inputs).reshape(tokens)


def _check_mask_tokens(
    module: nn.Module,
    mask: Any,
    before: jax.Array,
    h: jax.Array,
    *,
    stem: bool = True,
    taken: bool = False,
    given: Any = None,
) -> None:
    """Raises a ValueError when ``mask`` is a padding mask of the tokens of ``before``
    (``module``'s input: the ``stem``'s, else a block's), or a per-pair attention mask of
    them before any block has ``taken`` it, while ``module`` made other tokens, ``h``'s
    (the error gives the shape to use). When no block up to ``module`` has ``taken`` the
    mask, those after it need a mask of ``h``'s tokens; else no mask fits both a block
    that takes it and the head's pooling, which would then take the padded tokens too.
    ``given``: the mask as the call was given it, when the frame flattened it as the
    image (`_viewed_mask`), which the error shows with its flattened shape.

    Examples:
      >>> viewed, h = jnp.ones((1, 8, 1)), jnp.ones((1, 2, 4))  # 8 tokens in, 2 out
      >>> _check_mask_tokens(nn.Dense(2), jnp.ones((1, 8)), viewed, h)
      Traceback (most recent call last):
      ValueError: Frame's mask has shape (1, 8), which fits the input's tokens (1, 8), but ...
      >>> block = nn.Dense(2, name="blocks_1")
      >>> _check_mask_tokens(block, jnp.ones((1, 8)), viewed, h, stem=False, taken=True)
      Traceback (most recent call last):
      ValueError: block 'blocks_1' (Dense) maps the tokens (1, 8) to (1, 2), so Frame's ...
    """
    if mask is None:
        return
    tokens, inputs, shape = h.shape[:-1], before.shape[:-1], jnp.shape(mask)
    pairs = fits_pairs(shape, inputs) and not fits_pairs(shape, tokens) and not taken
    if not (pairs or broadcasts_to(shape, inputs)) or broadcasts_to(shape, tokens):
        return
    kind, shown = type(module).__name__, f"{shape}"
    if given is not None and jnp.shape(given) != shape:
        shown = f"{jnp.shape(given)} (flattened as the image: {shape})"
    wanted = f"{tokens} (true: a real token)"
    if pairs and len(tokens) == 2:
        wanted = f"({tokens[0]}, H, {tokens[1]}, {tokens[1]}) (true: the pair may attend)"
    if stem:
        raise ValueError(
            f"Frame's mask has shape {shown}, which fits the input's tokens {inputs}, but "
            f"its blocks see the tokens of its stem's output ({kind}, {h.shape}): give a "
            f"mask of shape {wanted}."
        )
    if not taken:
        raise ValueError(
            f"Frame's mask has shape {shown}, which fits the tokens {inputs} of block "
            f"{module.name!r} ({kind}), but no block up to it takes the mask, and those "
            f"after it see the tokens of its output {h.shape}: give a mask of shape "
            f"{wanted}."
        )
    raise ValueError(
        f"block {module.name!r} ({kind}) maps the tokens {inputs} to {tokens}, so Frame's "
        f"padding mask {shown} does not fit the tokens its head pools, which would take the "
        "padded ones too: change the token count in the stem (and give a mask of its "
        "output's tokens), or call without a mask (every token counts)."
    )


def _check_stem_padding(stem: nn.Module, mask: Any, viewed: jax.Array, h: jax.Array) -> None:
    """Raises a ValueError when ``mask`` is a padding mask of the tokens the ``stem`` made
    (``h``'s), or a per-pair one, but not of those of its input ``viewed``, and the stem has no
    ``input_mask(mask, x)`` method to say which input tokens make up its real ones: the
    frame could not read the padded ones as zeros, so what they hold would reach the
    real tokens.

    Examples:
      >>> viewed, h = jnp.ones((1, 8, 1)), jnp.ones((1, 2, 4))  # 8 tokens in, 2 out
      >>> _check_stem_padding(nn.Conv(4, (4,), 4), jnp.array([[True, False]]), viewed, h)
      Traceback (most recent call last):
      ValueError: Frame's stem (Conv) maps the tokens (1, 8) to (1, 2), and the mask ...
    """
    if mask is None or h.ndim < 3:
        return
    tokens, inputs, shape = h.shape[:-1], viewed.shape[:-1], jnp.shape(mask)
    fits = lambda tokens: broadcasts_to(shape, tokens) or fits_pairs(shape, tokens)
    if not fits(tokens) or fits(inputs):
        return
    if callable(getattr(stem, "input_mask", None)):
        return
    raise ValueError(
        f"Frame's stem ({type(stem).__name__}) maps the tokens {inputs} to {tokens}, and "
        f"the mask {jnp.shape(mask)} pads some of its tokens, but the frame cannot tell which "
        "input tokens make them up, so what those hold (an infinity, a NaN) would reach "
        "the real tokens: give the stem an input_mask(mask, x) method that returns them as "
        f"weights of shape {inputs} (1: a real token, as Patches does), or None to take "
        "the input as it is."
    )


def _pool_real(h: jax.Array, pool: str, real: jax.Array) -> jax.Array:
    """``h`` ``(batch, ..., C)`` pooled over the tokens that ``real`` ``(batch, tokens)``,
    float weights (1: a real token), keeps: their mean, max or last one, or all flattened
    with the others zeroed; an example with no real token pools to zeros (its last token
    for ``"last"``).

    Examples:
      >>> h, real = jnp.array([[[1.0], [3.0], [9.0]]]), jnp.array([[1.0, 1.0, 0.0]])
      >>> [_pool_real(h, pool, real).tolist() for pool in POOLS]
      [[[2.0]], [[3.0]], [[1.0, 3.0, 0.0]], [[3.0]]]
    """
    if pool == "mean":
        return token_mean(h, real, kept=1).astype(h.dtype)
    tokens, kept = h.reshape(h.shape[0], -1, h.shape[-1]), real[..., None] > 0
    if pool == "flatten":
        return jnp.where(kept, tokens, 0).reshape(h.shape[0], -1)
    if pool == "last":
        last = real.shape[1] - 1 - jnp.argmax(real[:, ::-1] > 0, axis=1)
        return jnp.take_along_axis(tokens, last[:, None, None], axis=1)[:, 0]
    some = kept.any(1)
    return jnp.where(some, jnp.where(kept, tokens, -jnp.inf).max(1), 0).astype(h.dtype)


def pool_tokens(h: jax.Array, pool: str, real: jax.Array | None = None) -> jax.Array:
    """``h`` ``(batch, ..., C)`` reduced to ``(batch, C')`` as ``pool`` says, over the
    ``real`` tokens only when given (see `_pool_real`)."""
    if h.ndim == 2:
        return h
    if real is not None:
        return _pool_real(h, pool, real)
    if pool == "flatten":
        return h.reshape(h.shape[0], -1)
    if pool == "last":
        return h[:, -1] if h.ndim == 3 else h.reshape(h.shape[0], -1, h.shape[-1])[:, -1]
    axes = tuple(range(1, h.ndim - 1))
    return jnp.mean(h, axis=axes) if pool == "mean" else jnp.max(h, axis=axes)


class Frame(PassesKeywords, nn.Module):
    """The standard model: input view -> stem -> blocks -> pooling -> ``Dense(num_classes)``.

    Blocks are grouped in stages of equal width: block ``i`` must map ``(batch, ...,
    c_in)`` to ``(batch, ..., widths[i // depth])`` (spatial axes may shrink); anything
    else is an error that names the block and both shapes. Usually built by
    `build_model` from a `ModelConfig`; the registry constructs the stem and blocks.

    The call's optional ``mask`` goes to the blocks whose call takes it (an error when
    none does), not to the stem: for `TransformerBlock` blocks it is an attention mask
    over the tokens they see, the stem's output (``(batch, tokens)``, true for a real
    token; the transformer's ``Patches`` stem makes ``length // patch_size`` tokens, and
    a mask of the input's tokens, a per-pair one too, is an error that gives the shape
    to use),
    so padded tokens' inputs do not change real tokens' block outputs; `GRUBlock` blocks
    (``gru``) skip the padded tokens in their recurrence. A padding mask
    (``(batch, tokens)``) also leaves the padded tokens out of the head's pooling (the
    mean, max or last of the real tokens; ``"flatten"`` zeroes the padded ones), so they
    do not change the logits either; a per-pair mask does not (the pooling takes every
    token). A padding mask of the input's tokens (no stem, or one that keeps them), or
    a per-pair one of them (its padding as attention reads it), makes
    the frame read the padded tokens as zeros, its stem too, so what they hold (an
    infinity, a NaN) reaches neither the logits nor the gradients; so does a mask of the
    stem's tokens when the stem has an ``input_mask(mask, x)`` method that gives the
    input tokens making up its real ones (`Patches`; one returning None takes the input
    as it is); with any other stem, such a mask is an error (which input tokens it pads
    cannot be told). An image's mask (``(batch, height, width)``) is flattened as the
    image is when the frame views it as a sequence of pixels. A block that changes the token
    count under a padding mask (a strided convolution, say) is an error naming it and
    both token shapes: after a block that takes the mask, since it no longer fits the
    tokens pooled; before any, since the blocks that take it see the new tokens (the
    error gives the shape to use). In a container (a `phosjax.layers.Sequence`, a graph),
    a frame is given the mask only when one of its blocks takes it.

    Tagged values: ``stem/out``, ``blocks_<i>/out`` (each block's output), ``features``
    (pooled) and ``logits``, plus whatever the stem and blocks tag themselves.

    Attributes:
      num_classes: logits per example.
      input_shape: one example's shape; ``x`` must be ``(batch, *input_shape)``.
      input_kind: how the input is viewed: ``"vector"``, ``"sequence"`` or ``"image"``.
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
      >>> x = jnp.ones((1, 4, 2)); variables = frame.init(jax.random.key(0), x)
      >>> frame.apply(variables, x, mask=real).shape
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
        if x.shape[1:] != tuple(self.input_shape):
            raise ValueError(
                f"{type(self).__name__} was built for examples of shape {self.input_shape}; "
                f"got a batch of shape {x.shape} (expected (batch, *{self.input_shape}))."
            )
        if len(self.blocks) != self.depth * len(self.widths):
            raise ValueError(
                f"{len(self.blocks)} blocks do not make {len(self.widths)} stage(s) of depth "
                f"{self.depth}."
            )
        if self.pool not in POOLS:
            raise ValueError(f"pool {self.pool!r} is not one of {POOLS}")
        if self.input_kind not in KINDS:
            raise ValueError(f"Frame input_kind must be one of {KINDS}, got {self.input_kind!r}")
        num_classes, dropout = checked_size(self, "num_classes"), checked_rate(self, "dropout")
        check_keywords(self, self.blocks, {} if mask is None else {"mask": mask})
        h = view_as(x, self.input_kind)
        given, mask = mask, _viewed_mask(mask, x, h)
        keywords = {} if mask is None else {"mask": mask}
        h = zero_padded_input(mask, h, self.stem)  # padding read as zeros, by the stem too
        if self.stem is not None:
            viewed, h = h, self._run(self.stem, h, train, self.widths[0])
            _check_mask_tokens(self.stem, mask, viewed, h, given=given)
            _check_stem_padding(self.stem, mask, viewed, h)
        taken = False  # whether a block so far took the mask
        for i, block in enumerate(self.blocks):
            taken = taken or takes_keyword(block, "mask")
            before, h = h, self._run(block, h, train, self.widths[i // self.depth], **keywords)
            _check_mask_tokens(block, mask, before, h, stem=False, taken=taken, given=given)
        h = tag(self, "features", pool_tokens(h, self.pool, padding_mask(mask, h)))
        h = nn.Dropout(dropout, deterministic=not train)(h)
        head = nn.Dense(num_classes, dtype=self.dtype, param_dtype=self.param_dtype, name="head")
        logits = head(h)  # in what h and its params promote to, as with no dtype:
        logits = logits.astype(jnp.result_type(h, *jax.tree.leaves(head.variables)))
        return tag(self, "logits", logits)

    def _run(
        self, module: nn.Module, h: jax.Array, train: bool, features: int, **keywords: Any
    ) -> jax.Array:
        out = call_block(module, h, train, **keywords)
        _check_features(module, h, out, features)
        return tag(module, "out", out)
