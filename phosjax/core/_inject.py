"""`inject`: run a model with some tagged values replaced."""

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from phosjax.core._apply import tag_shapes
from phosjax.core._collections import INJECTIONS
from phosjax.core._paths import unflatten
from phosjax.core._selectors import select


def injections(
    model: nn.Module,
    variables: Mapping[str, Any],
    x: Any,
    values: Mapping[str, Any],
    **kwargs: Any,
) -> dict[str, Any]:
    """The ``injections`` collection that replaces the tagged values ``values`` selects.

    Raises:
      SelectorError: a selector matches no tagged value.
      ValueError: a value's shape or dtype differs from the tagged value's (both named).
    """
    shapes = tag_shapes(model, variables, x, **kwargs)
    flat: dict[str, Any] = {}
    for selector, value in values.items():
        value = jnp.asarray(value)
        for path in select(shapes, selector, what="tagged value"):
            expected = shapes[path]
            if isinstance(expected, tuple):
                raise ValueError(
                    f"Cannot inject {path!r}: it is tagged by {len(expected)} calls of one "
                    "module; inject works on values tagged once."
                )
            if value.shape != expected.shape or value.dtype != expected.dtype:
                raise ValueError(
                    f"Injected value for {path!r} has shape {value.shape} and dtype "
                    f"{value.dtype}, but the tagged value there has shape {expected.shape} "
                    f"and dtype {expected.dtype}."
                )
            flat[path] = value
    return unflatten(flat)


def inject(
    model: nn.Module,
    variables: Mapping[str, Any],
    x: Any,
    values: Mapping[str, Any],
    **kwargs: Any,
) -> Any:
    """Runs ``model`` on ``x`` with the tagged values each selector matches replaced.

    Everything computed after a replaced value sees the injected one.

    Args:
      model: a Flax module that tags values with `tag`.
      variables: its variables.
      x: the input.
      values: ``{selector: value}``; each value has the shape and dtype of the tagged
        value it replaces.
      **kwargs: passed to ``model.apply``.

    Raises:
      SelectorError: a selector matches no tagged value.
      ValueError: a value of the wrong shape or dtype (the path and both shapes named).

    Examples:
      >>> import flax.linen as nn, jax.numpy as jnp, phosjax as px
      >>> class Double(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         return 2 * px.tag(self, "h", x)
      >>> px.inject(Double(), {}, jnp.ones(2), {"h": jnp.array([5.0, 6.0])}).tolist()
      [10.0, 12.0]
    """
    tree = injections(model, variables, x, values, **kwargs)
    return model.apply({**variables, INJECTIONS: tree}, x, **kwargs)
