"""Input kinds: how the frame views one example (a vector, a sequence or an image)."""

import math
from collections.abc import Sequence

import jax

from phosjax._callables import cut_repr

VECTOR = "vector"
"""``(batch, features)``: every input is flattened."""
SEQUENCE = "sequence"
"""``(batch, length, channels)``; ``(L,)`` is viewed as ``(L, 1)``, ``(H, W, C)`` as ``(HW, C)``."""
IMAGE = "image"
"""``(batch, height, width, channels)`` (NHWC)."""

KINDS = (VECTOR, SEQUENCE, IMAGE)
_NATURAL = {1: VECTOR, 2: SEQUENCE, 3: IMAGE}
_REACHABLE = {  # kind of the input shape -> kinds it can be viewed as
    VECTOR: (VECTOR, SEQUENCE),
    SEQUENCE: (SEQUENCE, VECTOR),
    IMAGE: (IMAGE, SEQUENCE, VECTOR),
}
_VOLUME = (SEQUENCE, VECTOR)
"""The kinds an input of 4 axes or more (a volume, no kind of its own) can be viewed as."""


def natural_kind(input_shape: Sequence[int], model: str | None = None) -> str | None:
    """The kind an example's shape suggests: 1 axis a vector, 2 a sequence, 3 an image;
    None for 4 or more, a volume, which has no kind of its own (it is viewed as a
    sequence or a vector: `own_kinds`); a ValueError for no axes, naming ``model`` if given.

    Examples:
      >>> natural_kind((8, 8, 1)), natural_kind((2, 8, 8, 1))
      ('image', None)
      >>> natural_kind((), "m")
      Traceback (most recent call last):
      ValueError: model 'm': input_shape () has 0 axes; the frame takes (features,), ...
    """
    if not input_shape:
        raise ValueError(
            ("" if model is None else f"model {model!r}: ") + "input_shape () has 0 axes; "
            "the frame takes (features,), (length, channels), "
            "(height, width, channels) or more axes (a volume, viewed as a sequence or a "
            "vector): a scalar example is input_shape (1,), x[..., None]."
        )
    return _NATURAL.get(len(input_shape))


def own_kinds(input_shape: Sequence[int], model: str | None = None) -> tuple[str, ...]:
    """The kinds a model that takes whatever its input is (``input_kinds=None``) views
    ``input_shape`` as: its own kind (`natural_kind`); a volume, of 4 axes or more, has
    none: a sequence, or a vector where ``input_kind`` asks for one (as the frame views it);
    a ValueError naming ``model`` for no axes (`natural_kind`).

    Examples:
      >>> own_kinds((8, 8, 1)), own_kinds((2, 8, 8, 1))
      (('image',), ('sequence', 'vector'))
    """
    natural = natural_kind(input_shape, model)
    return _VOLUME if natural is None else (natural,)


def _one_channel(input_shape: Sequence[int], kinds: Sequence[str]) -> str:
    """Where ``kinds`` (those wanted) hold the image a 2-axis ``input_shape`` cannot be
    viewed as (a grayscale image without its channel axis, read as a sequence), the
    shape that makes it one."""
    if IMAGE not in kinds or len(input_shape) != 2:
        return ""
    return f" (a one-channel image is input_shape {(*input_shape, 1)}: x[..., None])"


def choose_kind(
    input_shape: Sequence[int], supported: Sequence[str], forced: str | None, model: str
) -> str:
    """The kind a model views its input as.

    ``forced`` if given; else the input's own kind (`natural_kind`) if the model supports
    it, so an input is never reshaped needlessly; else the first of ``supported`` that
    can view the input (a volume, of 4 axes or more, has no kind of its own: it is
    viewed as a sequence or a vector, as the frame takes it).

    Raises:
      ValueError: naming ``model``: the kind is unknown, unsupported by the model, or
        cannot view this shape, or the shape has no axes.

    Examples:
      >>> choose_kind((40,), ["sequence", "vector"], None, "m")  # its own kind first
      'vector'
      >>> choose_kind((8, 8, 1), ["vector", "sequence"], None, "m")  # else the first listed
      'vector'
      >>> choose_kind((40,), ["image", "sequence"], None, "m")  # that can view it
      'sequence'
      >>> choose_kind((2, 8, 8, 1), ["image", "sequence"], None, "m")  # a volume
      'sequence'
      >>> choose_kind((40,), ["image", "sequence"], "image", "m")
      Traceback (most recent call last):
      ValueError: model 'm': input_shape (40,) (vector) cannot be viewed as 'image'; it can be ...
      >>> choose_kind((28, 28), ["image"], None, "m")
      Traceback (most recent call last):
      ValueError: model 'm' takes image inputs; ... image is input_shape (28, 28, 1): x[..., None]).
    """
    natural = natural_kind(input_shape, model)  # a volume: None
    reachable = _VOLUME if natural is None else _REACHABLE[natural]
    own = f"{len(input_shape)} axes" if natural is None else natural
    if forced is not None:
        if forced not in KINDS:
            raise ValueError(
                f"model {model!r}: input_kind {cut_repr(forced)} is not one of {KINDS}"
            )
        if forced not in supported:
            raise ValueError(
                f"model {model!r} does not take input_kind {forced!r}; "
                f"it takes {', '.join(supported)}"
            )
        if forced not in reachable:
            raise ValueError(
                f"model {model!r}: input_shape {tuple(input_shape)} ({own}) cannot be "
                f"viewed as {forced!r}; it can be viewed as {', '.join(reachable)}"
                + _one_channel(input_shape, (forced,))
            )
        return forced
    candidates = [kind for kind in (natural, *supported) if kind is not None]
    for kind in candidates:
        if kind in supported and kind in reachable:
            return kind
    raise ValueError(
        f"model {model!r} takes {', '.join(supported)} inputs; input_shape "
        f"{tuple(input_shape)} ({own}) can only be viewed as {', '.join(reachable)}"
        + _one_channel(input_shape, supported)
        + "."
    )


def view_as(x: jax.Array, kind: str) -> jax.Array:
    """Reshapes a batch ``x`` (batch first) to ``kind`` (see the kind constants)."""
    batch = x.shape[0]
    if kind == VECTOR:
        return x.reshape(batch, math.prod(x.shape[1:]))
    if kind == SEQUENCE:
        if x.ndim == 2:
            return x[..., None]
        return x.reshape(batch, math.prod(x.shape[1:-1]), x.shape[-1])
    return x
