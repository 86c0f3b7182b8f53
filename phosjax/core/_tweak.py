"""`tweak`: run a model with some knobs set to other values."""

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import flax.linen as nn

from phosjax.core._apply import (
    hands_back_every_collection,
    naming_apply_errors,
    no_array_in,
    tag_shapes,
)
from phosjax.core._collections import KNOBS
from phosjax.core._knobs import _set_knobs, _with_knobs_declared, init_kwargs
from phosjax.core._module_check import check_module
from phosjax.core._paths import flatten
from phosjax.core._selectors import SelectorError, check_values, select


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
      SelectorError: a selector matches no knob; the message lists the nearest (and
        says so where it matches a tagged value, which `inject` replaces).
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
    check_module("tweak", model)
    check_values(values, "knob")  # first: a bare value is no selector
    with naming_apply_errors(model, variables, "tweak", kwargs.get("method")) as variables:
        full, declared, dropped = _with_knobs_declared(model, variables, x, **init_kwargs(kwargs))
        with _naming_params_and_tags(model, variables, x, kwargs):
            tweaked = _set_knobs(full, values, declared, dropped)
        out = model.apply(tweaked, x, **kwargs)
    if not hands_back_every_collection(kwargs.get("mutable", False)) or KNOBS not in out[1]:
        return out  # the collections named, as asked
    output, state = out
    return output, {**state, KNOBS: full[KNOBS]}


@contextlib.contextmanager
def _naming_params_and_tags(
    model: nn.Module, variables: Mapping[str, Any], x: Any, kwargs: Mapping[str, Any]
) -> Iterator[None]:
    """Within it, a selector of knobs that matched none, but matches a param of
    ``variables`` or a value ``model`` tags, says so (the `SelectorError` gains a
    sentence)."""
    try:
        yield
    except SelectorError as error:
        if error.what != "knob" or error.selector is None:
            raise
        params = select(flatten(variables.get("params", {})), error.selector, allow_empty=True)
        if params:
            hint = (
                f" It matches param {params[0]!r}, which is no knob: variables['params'] holds it."
            )
            raise SelectorError(f"{error}{hint}") from None
        applied = {k: v for k, v in kwargs.items() if k != "mutable"}
        try:
            shapes = tag_shapes(model, variables, x, **applied)
        except Exception:  # the model does not run on them (no params): the error stands
            raise error from None
        tags = [  # a tagged str is no value px.inject replaces (`check_tagged_arrays`)
            tag
            for tag in select(shapes, error.selector, allow_empty=True)
            if no_array_in(shapes[tag]) is None
        ]
        if not tags:
            raise
        hint = f" It matches tagged value {tags[0]!r}, which is no knob: px.inject replaces it."
        raise SelectorError(f"{error}{hint}") from None
