"""`tweak`: run a model with some knobs set to other values."""

from collections.abc import Mapping
from typing import Any

import flax.linen as nn

from phosjax.core._apply import (
    hands_back_every_collection,
    naming_params_alone,
)
from phosjax.core._collections import KNOBS
from phosjax.core._knobs import _with_knobs_declared, init_kwargs, set_knobs


def tweak(
    model: nn.Module,
    variables: Mapping[str, Any],
    x: Any,
    values: Mapping[str, Any],
    **kwargs: Any,
) -> Any:
    """Runs ``model`` on ``x`` with the knobs each selector matches set to its value.

    Only modules whose knobs match change; knobs missing from ``variables`` start at
    their declared default. The tree edit alone is `set_knobs`.

    Args:
      model: a Flax module that declares knobs with `knob`.
      variables: its variables (with or without a ``knobs`` collection).
      x: the input.
      values: ``{selector: value}``, e.g. ``{"blocks_1/**/T": 10.0}``.
      **kwargs: passed to ``model.apply`` (``method`` too: the knobs it declares are the
        ones found); under ``mutable=True`` (or an ``nn.DenyList``) the state it hands back
        holds the knobs as ``model.apply(variables, x, ...)`` would, not the tweaked
        values, so variables updated from it are not tweaked for good.

    Raises:
      SelectorError: a selector matches no knob; the message lists the nearest.
      TypeError: ``values`` is no dict ``{selector: value}`` (a bare value); ``variables`` are no
        collections (the params alone: `naming_params_alone`).
      ValueError: a concrete value is out of its knob's range (see `knob`'s ``valid``),
        checked before the model runs.

    Examples:
      >>> import flax.linen as nn, jax.numpy as jnp, phosjax as px
      >>> class Gain(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         return x * px.knob(self, "gain", 1.0)
      >>> px.tweak(Gain(), {}, jnp.ones(2), {"gain": 3.0}).tolist()
      [3.0, 3.0]
    """
    with naming_params_alone(variables, "tweak") as variables:
        full, declared = _with_knobs_declared(model, variables, x, **init_kwargs(kwargs))
        out = model.apply(set_knobs(full, values, declared=declared), x, **kwargs)
    if not hands_back_every_collection(kwargs.get("mutable", False)) or KNOBS not in out[1]:
        return out  # the collections named, as asked
    output, state = out
    return output, {**state, KNOBS: full[KNOBS]}
