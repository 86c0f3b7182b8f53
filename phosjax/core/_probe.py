"""`probe`: run a model and return the tagged values a selector picks."""

from collections.abc import Iterable, Mapping
from typing import Any

import flax.linen as nn

from phosjax.core._apply import (
    Mutable,
    apply_collecting,
    dropped_tags,
    naming_apply_errors,
    naming_other_kinds,
)
from phosjax.core._collections import INTERMEDIATES
from phosjax.core._module_check import check_module
from phosjax.core._paths import flatten
from phosjax.core._selectors import select_items
from phosjax.core._tags import tags_seen


def probe(
    model: nn.Module,
    variables: Mapping[str, Any],
    x: Any,
    selector: str | Iterable[str] = "**",
    *,
    mutable: Mutable = False,
    **kwargs: Any,
) -> tuple[Any, dict[str, Any]]:
    """Runs ``model`` on ``x`` and returns the tagged values that ``selector`` matches.

    Args:
      model: a Flax module.
      variables: its variables.
      x: the input.
      selector: a selector, or several (each must match something).
      mutable: passed to ``model.apply``; the output then holds the updated state.
      **kwargs: passed to ``model.apply`` (``rngs=``, ``method=``, ``train=``...).

    Returns:
      ``(output, {path: value})``: the model's output and exactly the values the forward
      pass computed at the matching paths; a tuple, one value per call, where one path
      was tagged repeatedly (a module called twice, a shared one, or one tagging a name
      in a loop: name each ``f"h{i}"`` for paths of their own).

    Raises:
      SelectorError: a selector matched no tagged value.
      TypeError: ``selector`` is neither a str nor a list of them (a number); ``variables`` are no
        collections (the params alone: `naming_params_alone`).
      ValueError: ``selector`` is an empty list.

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp, phosjax as px
      >>> class Net(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         for i in range(2):
      ...             x = px.tag(self, f"h{i}", nn.Dense(2, name=f"dense_{i}")(x))
      ...         return x
      >>> x = jnp.ones((1, 3)); variables = Net().init(jax.random.key(0), x)
      >>> sorted(px.probe(Net(), variables, x, "h*")[1])
      ['h0', 'h1']
      >>> class Loop(nn.Module):  # "h" tagged twice: one value per call
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         for _ in range(2):
      ...             x = px.tag(self, "h", nn.Dense(3)(x))
      ...         return x
      >>> variables = Loop().init(jax.random.key(0), x)
      >>> [h.shape for h in px.probe(Loop(), variables, x, "h")[1]["h"]]
      [(1, 3), (1, 3)]
    """
    check_module("probe", model)
    try:
        with (
            naming_apply_errors(model, variables, "probe", kwargs.get("method")) as variables,
            tags_seen() as seen,
        ):
            output, collected = apply_collecting(
                model, variables, x, collect=[INTERMEDIATES], mutable=mutable, **kwargs
            )
    except Exception as error:
        if isinstance(x, str):  # probe(model, variables, "**/h"): the selector taken for x
            error.add_note(
                f"(probe got x={x!r}, a string: a selector given without the input? "
                f"probe(model, variables, x, {x!r}))"
            )
        raise
    flat = flatten(collected[INTERMEDIATES])
    with naming_other_kinds(variables, model, kwargs):
        found = select_items(flat, selector, what="tagged value", dropped=dropped_tags(seen, flat))
    return output, found
