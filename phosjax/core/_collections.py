"""Names of the Flax variable collections that phosjax reads and writes.

Every piece of phosjax that touches a collection imports its name from here, so the
convention lives in one place.
"""

from typing import Any

import flax.linen as nn

from phosjax._callables import cut_repr
from phosjax._nearest import one_edit_apart

INTERMEDIATES = "intermediates"
"""Tagged values (`tag`), one tuple of values per tag and call."""

AUX_LOSS = "aux_loss"
"""Auxiliary losses (`aux_loss`), already multiplied by their path weight."""

PATH_WEIGHTS = "path_weights"
"""The weight a choice or skip layer gave each of its branches (`path_weight`)."""

PERTURBATIONS = "perturbations"
"""Zeros added to tagged values so that gradients can be taken to them (`grad_of`)."""

INJECTIONS = "injections"
"""Values that replace tagged values during a forward pass (`inject`)."""

KNOBS = "knobs"
"""Values declared where they are used (`knob`); persistent, may be tweaked or trained."""

BLURB = "blurb"
"""Custom summary information that modules record for `blurb` (`note`)."""

CONSTANTS = "constants"
"""Values drawn at init and never trained (e.g. `FourierFeatures`' fixed frequencies)."""

TRANSIENT = (INTERMEDIATES, AUX_LOSS, PATH_WEIGHTS, PERTURBATIONS, INJECTIONS, BLURB)
"""Collections that only live during one call; `init` never returns them as state."""

SCANNED = (
    INTERMEDIATES,
    AUX_LOSS,
    PATH_WEIGHTS,
    PERTURBATIONS,
    INJECTIONS,
    KNOBS,
    CONSTANTS,
    BLURB,
)
"""Collections that carry one entry per iteration under `nn.scan` (see `scan_axes`)."""

FLAX_COLLECTIONS = ("params", "batch_stats", "cache")
"""Collections Flax's own layers use, which `scan_axes` may be given an axis for."""


def scan_axes(**extra: Any) -> dict[Any, Any]:
    """The ``variable_axes`` for `flax.linen.scan` so phosjax collections work inside a scan.

    Each phosjax collection gets one entry per scan iteration (axis 0): probing a
    scanned block returns values stacked on a leading layer axis, and ``init`` stores
    one value of each knob per layer, so `tweak` reaches knobs inside the scan. Flax's
    other collections and one of your own need their own entry (``batch_stats=0``): the
    scan hides one left out (a BatchNorm fails at init; what is sown there is dropped
    silently); ``{True: 0}`` gives every collection an axis, as `phosjax.layers.Repeat`
    does.

    Args:
      **extra: more collections and their axes, e.g. ``params=0``; they override the
        defaults. ``None`` shares a collection across ``nn.vmap``'s members (``nn.scan``
        refuses it: give the collection as its ``variable_broadcast``).

    Raises:
      TypeError: an axis is no int nor None (``params="0"`` or ``nn.broadcast``, which
        Flax's scan refused with a bare AssertionError; ``True``, which it took for 1).
      ValueError: a name is a typo of a collection Flax or phosjax uses (``param=0``, for
        which Flax's scan said only that the collection ``params`` is empty).

    Examples:
      >>> axes = scan_axes(params=0)
      >>> axes["intermediates"], axes["knobs"], axes["params"]
      (0, 0, 0)
      >>> scan_axes(param=0)
      Traceback (most recent call last):
      ValueError: scan_axes: no collection is named 'param'; did you mean 'params'? ...
    """
    for name, axis in extra.items():
        _check_no_typo(name)
        if axis is nn.broadcast:  # for inputs alone: Flax's scan failed with an AssertionError
            raise TypeError(
                f"scan_axes: the axis of {name!r} must be an int or None, got nn.broadcast, "
                "which nn.scan takes in in_axes alone; for variables every iteration "
                f"shares, leave {name!r} out here and pass nn.scan(..., "
                f"variable_broadcast={name!r}) (under nn.vmap, which has no "
                f"variable_broadcast, give {name}=None)."
            )
        if axis is not None and type(axis) is not int:
            raise TypeError(
                f"scan_axes: the axis of {name!r} must be an int (0: one entry per "
                f"iteration) or None, got {cut_repr(axis)}."
            )
    return {**{name: 0 for name in SCANNED}, **extra}


def _check_no_typo(name: str) -> None:
    """Raises a ValueError when ``name`` is one letter off a collection Flax or phosjax uses
    (`one_edit_apart`), naming it and them; any other name may be a collection of the
    user's own, and so is one holding a digit, as none of theirs does (``knobs2``).

    Examples:
      >>> _check_no_typo("knobs2"), _check_no_typo("params_ema")
      (None, None)
    """
    known = (*FLAX_COLLECTIONS, *SCANNED)
    if name in known or any(character.isdigit() for character in name):
        return
    near = [collection for collection in known if one_edit_apart(name, collection)]
    if near:
        raise ValueError(
            f"scan_axes: no collection is named {name!r}; did you mean {near[0]!r}? (Flax's "
            f"and phosjax's: {', '.join(known)}; for a collection of your own named "
            f"{name!r}, add it to the dict scan_axes returns.)"
        )
