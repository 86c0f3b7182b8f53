"""How a `Frame` (and its graph twin) reads its call's ``mask`` of tokens: as a padding
mask of the tokens it pools, its input read with the padded tokens as zeros, and the
errors for a mask that no longer fits once a stem or block changes the token count."""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from phosjax.layers._common import (
    broadcasts_to,
    fits_pairs,
    fits_tokens,
    mask_array,
    real_tokens,
    zero_mask_padding,
    zero_padding,
)


def call_mask(mask: Any) -> jax.Array | None:
    """A frame's call ``mask`` as an array, None for none: a nested list too, which
    `jax.jit` traces as one scalar per item, so that its shape can be read.

    Examples:
      >>> call_mask([[True, False]]).shape, call_mask(None)
      ((1, 2), None)
    """
    return None if mask is None else mask_array("Frame", mask)


def padding_mask(mask: Any, h: jax.Array) -> jax.Array | None:
    """``mask`` as float32 weights ``(batch, tokens)`` (1: a real token), the tokens of
    ``h`` ``(batch, ..., C)`` in order, when it is a padding mask of them (``h.shape[:-1]``,
    axes of size 1 broadcasting; see `real_tokens`) or a per-pair attention mask of them
    (its padding as attention reads it, `pair_tokens`); None for no mask, another one, or
    an ``h`` of no tokens.

    Examples:
      >>> h = jnp.ones((2, 3, 4))
      >>> padding_mask(jnp.array([[1, 1, 0]]), h).tolist()
      [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]]
      >>> real = jnp.array([[True, True, False]])
      >>> padding_mask(real[:, None, :, None] & real[:, None, None, :], h).tolist()
      [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]]
    """
    tokens = h.shape[:-1]
    fits = mask is not None and h.ndim >= 3 and fits_tokens(jnp.shape(mask), tokens)
    real = real_tokens("Frame", mask, tokens, pairs=True) if fits else None
    return None if real is None else real.reshape(h.shape[0], math.prod(h.shape[1:-1]))


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


def viewed_mask(mask: Any, x: jax.Array, viewed: jax.Array) -> Any:
    """``mask``, a padding mask of ``x``'s tokens (its shape but the features, axes of
    size 1 broadcasting), as one of ``viewed``'s when the frame's view flattened them (an
    image seen as a sequence of pixels, a volume as a sequence); any other ``mask`` as given.

    Examples:
      >>> x, viewed = jnp.ones((1, 2, 2, 1)), jnp.ones((1, 4, 1))  # 2 x 2 pixels: 4 tokens
      >>> viewed_mask(jnp.array([[[True], [False]]]), x, viewed).tolist()
      [[True, True, False, False]]
    """
    inputs, tokens = x.shape[:-1], viewed.shape[:-1]
    flattened = inputs != tokens and math.prod(inputs) == math.prod(tokens)
    if mask is None or viewed.ndim < 3 or not flattened:  # not a (B, L) input's (B, L, 1)
        return mask
    shape = jnp.shape(mask)
    if not broadcasts_to(shape, inputs) or broadcasts_to(shape, tokens):
        return mask
    return jnp.broadcast_to(jnp.asarray(mask), inputs).reshape(tokens)


def check_view_tokens(mask: Any, x: jax.Array, viewed: jax.Array, kind: str) -> None:
    """Raises a ValueError when ``mask`` is a padding (or per-pair) mask of the tokens of
    ``x`` (a sequence's, an image's) but the frame views ``x`` as ``viewed``, a vector
    (``kind``), which has no tokens left for it to pad: the blocks that take it would
    fail on its shape, naming tokens the call never had.

    Examples:
      >>> x, viewed = jnp.ones((2, 8, 3)), jnp.ones((2, 24))
      >>> check_view_tokens(jnp.ones((2, 8), bool), x, viewed, "vector")
      Traceback (most recent call last):
      ValueError: Frame views its input (2, 8, 3) as a vector (2, 24), which has no tokens ...
    """
    if mask is None or x.ndim < 3 or viewed.ndim >= 3:
        return
    shape, inputs = jnp.shape(mask), x.shape[:-1]
    if fits_tokens(shape, inputs):
        raise ValueError(
            f"Frame views its input {x.shape} as a {kind} {viewed.shape}, which has no "
            f"tokens for the mask {shape} (of the input's tokens {inputs}) to pad: call it "
            "without a mask (a model that views its input as a sequence or an image takes one)."
        )


def check_mask_tokens(
    module: nn.Module,
    mask: Any,
    before: jax.Array,
    h: jax.Array,
    *,
    stem: bool = True,
    taken: bool = False,
    given: Any = None,
    owner: str = "Frame",
) -> None:
    """Raises a ValueError when ``mask`` is a padding mask of the tokens of ``before``
    (``module``'s input: the ``stem``'s, else a block's), or a per-pair attention mask of
    them before any block has ``taken`` it, while ``module`` made other tokens, ``h``'s
    (the error gives the shape to use). When no block up to ``module`` has ``taken`` the
    mask, those after it need a mask of ``h``'s tokens; else no mask fits both a block
    that takes it and the head's pooling, which would then take the padded tokens too.
    ``given``: the mask as the call was given it, when the frame flattened it as the
    input (an image, a volume: `viewed_mask`), which the error shows with its flattened shape.
    ``owner``: what the error says was given the mask (a graph twin names itself).

    Examples:
      >>> viewed, h = jnp.ones((1, 8, 1)), jnp.ones((1, 2, 4))  # 8 tokens in, 2 out
      >>> check_mask_tokens(nn.Dense(2), jnp.ones((1, 8)), viewed, h)
      Traceback (most recent call last):
      ValueError: Frame's mask has shape (1, 8), which fits the input's tokens (1, 8), but ...
      >>> block = nn.Dense(2, name="blocks_1")
      >>> check_mask_tokens(block, jnp.ones((1, 8)), viewed, h, stem=False, taken=True)
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
        shown = f"{jnp.shape(given)} (flattened as the input: {shape})"
    wanted = f"{tokens} (true: a real token)"
    if pairs and len(tokens) == 2:
        wanted = f"({tokens[0]}, H, {tokens[1]}, {tokens[1]}) (true: the pair may attend)"
    if stem:
        raise ValueError(
            f"{owner}'s mask has shape {shown}, which fits the input's tokens {inputs}, but "
            f"its blocks see the tokens of its stem's output ({kind}, {h.shape}): give a "
            f"mask of shape {wanted}."
        )
    if not taken:
        raise ValueError(
            f"{owner}'s mask has shape {shown}, which fits the tokens {inputs} of block "
            f"{module.name!r} ({kind}), but no block up to it takes the mask, and those "
            f"after it see the tokens of its output {h.shape}: give a mask of shape "
            f"{wanted}."
        )
    raise ValueError(
        f"block {module.name!r} ({kind}) maps the tokens {inputs} to {tokens}, so {owner}'s "
        f"padding mask {shown} does not fit the tokens its head pools, which would take the "
        "padded ones too: change the token count in the stem (and give a mask of its "
        "output's tokens), or call without a mask (every token counts)."
    )


def check_stem_padding(stem: nn.Module, mask: Any, viewed: jax.Array, h: jax.Array) -> None:
    """Raises a ValueError when ``mask`` is a padding mask of the tokens the ``stem`` made
    (``h``'s), or a per-pair one, but not of those of its input ``viewed``, and the stem has no
    ``input_mask(mask, x)`` method to say which input tokens make up its real ones: the
    frame could not read the padded ones as zeros, so what they hold would reach the
    real tokens.

    Examples:
      >>> viewed, h = jnp.ones((1, 8, 1)), jnp.ones((1, 2, 4))  # 8 tokens in, 2 out
      >>> check_stem_padding(nn.Conv(4, (4,), 4), jnp.array([[True, False]]), viewed, h)
      Traceback (most recent call last):
      ValueError: Frame's stem (Conv) maps the tokens (1, 8) to (1, 2), and the mask ...
    """
    if mask is None or h.ndim < 3:
        return
    tokens, inputs, shape = h.shape[:-1], viewed.shape[:-1], jnp.shape(mask)
    if not fits_tokens(shape, tokens) or fits_tokens(shape, inputs):
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
