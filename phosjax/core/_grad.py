"""`grad_of`: gradients of a scalar with respect to tagged values."""

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from phosjax.core._apply import tag_shapes
from phosjax.core._collections import PERTURBATIONS
from phosjax.core._paths import flatten, unflatten
from phosjax.core._selectors import select


def perturbations(
    model: nn.Module,
    variables: Mapping[str, Any],
    x: Any,
    wrt: str | Iterable[str],
    **kwargs: Any,
) -> dict[str, Any]:
    """A ``perturbations`` collection of zeros at the tagged values ``wrt`` selects.

    Add it to the variables and differentiate with respect to it: the gradient is the
    gradient to the tagged values. `grad_of` does this for you; a train step that also
    needs parameter gradients uses this directly.

    Raises:
      SelectorError: a selector matches no tagged value.
      TypeError: a selected value is not floating point.
    """
    shapes = tag_shapes(model, variables, x, **kwargs)
    chosen: dict[str, Any] = {}
    for selector in [wrt] if isinstance(wrt, str) else wrt:
        for path in select(shapes, selector, what="tagged value"):
            shape = shapes[path][0] if isinstance(shapes[path], tuple) else shapes[path]
            if not jnp.issubdtype(shape.dtype, jnp.inexact):
                raise TypeError(
                    f"Cannot differentiate with respect to {path!r}: its dtype is {shape.dtype}."
                )
            chosen[path] = jnp.zeros(shape.shape, shape.dtype)
    return unflatten(chosen)


def grad_of(
    fn: Callable[[Any], Any],
    model: nn.Module,
    variables: Mapping[str, Any],
    x: Any,
    *,
    wrt: str | Iterable[str],
    has_aux: bool = False,
    **kwargs: Any,
) -> tuple[Any, dict[str, Any]]:
    """Value and gradient of ``fn(model.apply(variables, x))`` with respect to tagged values.

    Works inside `jax.jit` (a train step), `jax.vmap` and nested `jax.grad`.

    Args:
      fn: maps the model's output to a scalar (e.g. the loss), or to ``(scalar, aux)``
        when ``has_aux``.
      model: a Flax module that tags values with `tag`.
      variables: its variables.
      x: the input.
      wrt: selector(s) of the tagged values to differentiate with respect to.
      has_aux: as in `jax.value_and_grad`.
      **kwargs: passed to ``model.apply``.

    Returns:
      ``(value, {path: gradient})``.

    Examples:
      >>> import flax.linen as nn, jax.numpy as jnp, phosjax as px
      >>> class Square(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         return px.tag(self, "h", x) ** 2
      >>> loss, grads = px.grad_of(jnp.sum, Square(), {}, jnp.array([1.0, 3.0]), wrt="h")
      >>> grads["h"].tolist()
      [2.0, 6.0]
    """
    zeros = perturbations(model, variables, x, wrt, **kwargs)

    def run(perturbation: Any) -> Any:
        return fn(model.apply({**variables, PERTURBATIONS: perturbation}, x, **kwargs))

    value, grads = jax.value_and_grad(run, has_aux=has_aux)(zeros)
    return value, flatten(grads)
