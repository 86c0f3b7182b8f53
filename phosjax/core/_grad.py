"""`grad_of`: gradients of a scalar with respect to tagged values."""

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from phosjax._callables import a_type, cut_repr
from phosjax.core._apply import (
    apply_reaching_tags,
    check_tagged_arrays,
    naming_apply_errors,
    naming_other_kinds,
    select_tags,
    tag_call_shapes,
)
from phosjax.core._collections import INTERMEDIATES, PERTURBATIONS
from phosjax.core._module_check import check_module
from phosjax.core._numbers import zeros_in_type_of
from phosjax.core._paths import unflatten
from phosjax.core._selectors import selector_list


def _zeros_per_call(path: str, calls: tuple[Any, ...], selector: str) -> Any:
    """Zeros shaped and typed like the tagged value at ``path`` (weakly typed where it
    is); a tuple of them, one per call.

    A value tagged by one call gets its zeros alone, not a 1-tuple.

    Raises:
      TypeError: a leaf of the value is not floating point (a DropPath's ``keep_mask``
        that ``wrt="**"`` selects), naming it, its dtype and the ``selector`` that
        matched it; where it is one leaf of a pytree (no selector reaches it alone), it
        says to tag the floating-point leaves on their own; or it holds no array (a str:
        `check_tagged_arrays`).
    """
    check_tagged_arrays("differentiate with respect to", path, calls)
    for call in calls:
        for key, shape in jax.tree.leaves_with_path(call):
            if not jnp.issubdtype(shape.dtype, jnp.inexact):
                where = f"{path!r}{jax.tree_util.keystr(key)}"
                fix = "leave it out" if not key else f"leave {path!r} out, or tag its floats apart"
                raise TypeError(
                    f"Cannot differentiate with respect to {where}: its dtype is "
                    f"{shape.dtype}, and only floating-point values have a gradient; wrt "
                    f"{selector!r} selects it: give selectors that {fix}."
                )
    # weakly typed as the tagged value (a knob's): a bfloat16 output stays bfloat16
    zeros = tuple(jax.tree.map(zeros_in_type_of, call) for call in calls)
    return zeros[0] if len(zeros) == 1 else zeros


def _flat_perturbations(
    model: nn.Module,
    variables: Mapping[str, Any],
    x: Any,
    wrt: str | Iterable[str],
    **kwargs: Any,
) -> dict[str, Any]:
    """`perturbations` as ``{path: zeros}``, unnested, so pytree-valued zeros stay whole."""
    calls, sown, dropped = tag_call_shapes(model, variables, x, **kwargs)
    return {
        path: _zeros_per_call(path, calls[path], selector)
        for selector in selector_list(wrt)
        for path in select_tags(calls, sown, selector, dropped)
    }


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
    needs parameter gradients uses this directly. A value tagged by several calls of one
    module gets a tuple of zeros, one per call; each call finds its own only when
    ``intermediates`` is mutable (``model.apply(..., mutable=["intermediates"])``).

    Raises:
      SelectorError: a selector matches no tagged value (one that Flax's ``sow`` stored
        in ``intermediates``, not `tag`, cannot be reached: the message says so).
      TypeError: a selected value is not floating point, or ``wrt`` is neither a str nor
        a list of them; ``variables`` are no mapping (None), or the params alone
        (`naming_params_alone`).
      ValueError: ``wrt`` is an empty list.

    Examples:
      >>> import flax.linen as nn, jax.numpy as jnp, phosjax as px
      >>> class Tagged(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         return px.tag(self, "h", x)
      >>> zeros = px.perturbations(Tagged(), {}, jnp.ones(2), "h")
      >>> zeros["h"].tolist()
      [0.0, 0.0]
    """
    check_module("perturbations", model)
    with (
        naming_apply_errors(model, variables, "perturbations", kwargs.get("method")) as variables,
        naming_other_kinds(variables, model, kwargs),
    ):
        return unflatten(_flat_perturbations(model, variables, x, wrt, **kwargs))


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
      **kwargs: passed to ``model.apply``; with ``mutable=...`` it returns
        ``(output, state)``, and that pair is what ``fn`` gets (under ``mutable=True``
        or an ``nn.DenyList``, a state without the ``perturbations`` the gradient is taken to).

    Returns:
      ``(value, {path: gradient})``. A gradient has the structure of its tagged value; where
      a module tagged the value in several calls, it is a tuple with one gradient per
      call, as `probe` returns the values.

    Raises:
      SelectorError: a selector matches no tagged value (see `perturbations`).
      TypeError: a selected value is not floating point, or ``wrt`` is neither a str nor
        a list of them; ``variables`` are no
        collections (the params alone: `naming_params_alone`); ``fn`` is no function, or
        gives no scalar (its shape named) or one of no real floating-point dtype (None,
        an int, a bool), or, under ``has_aux``, no pair.
      ValueError: ``wrt`` is an empty list, or a perturbation never reached its tag: a
        lifted transform, such as nn.scan, whose ``variable_axes`` omit ``perturbations``
        dropped it, though it kept the tagged value (`scan_axes` lists all of phosjax's
        collections).

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
    if not callable(fn):
        raise TypeError(
            f"grad_of: fn must be a function of the model's output to a scalar (e.g. "
            f"jnp.sum, or the loss), got {cut_repr(fn)}; call it as grad_of(fn, model, "
            "variables, x, wrt=...)."
        )
    check_module("grad_of", model)
    with (
        naming_apply_errors(model, variables, "grad_of", kwargs.get("method")) as variables,
        naming_other_kinds(variables, model, kwargs),
    ):
        zeros = _flat_perturbations(model, variables, x, wrt, **kwargs)

    def run(flat: dict[str, Any]) -> Any:
        perturbed = {**variables, PERTURBATIONS: unflatten(flat)}
        # Tags count their calls in ``intermediates``, so each call takes its own zeros.
        out, _ = apply_reaching_tags(
            model,
            perturbed,
            x,
            collection=PERTURBATIONS,
            paths=flat,
            collect=[INTERMEDIATES],
            **kwargs,
        )
        value = fn(out)
        _check_kind(value, has_aux)
        loss = value[0] if has_aux else value
        _check_loss(loss)
        if jnp.ndim(loss):  # JAX: "Gradient only defined for scalar-output functions"
            raise TypeError(
                f"grad_of: fn gave a value of shape {jnp.shape(loss)}, not a scalar; reduce "
                "it in fn, e.g. lambda y: jnp.sum(y ** 2)."
            )
        return value

    return jax.value_and_grad(run, has_aux=has_aux)(zeros)


def _check_loss(loss: Any) -> None:
    """Raises a TypeError unless ``loss``, what ``fn`` gave, is an array or number of a
    real floating-point dtype, which alone has a gradient (JAX said "Gradient only defined
    for scalar-output functions. Output was None", or "grad requires real-valued outputs").

    Examples:
      >>> _check_loss(jnp.float32(1)), _check_loss(2.0)
      (None, None)
      >>> _check_loss(None)
      Traceback (most recent call last):
      TypeError: grad_of: fn gave None, not a scalar; return the loss, e.g. ...
      >>> _check_loss(jnp.int32(3))
      Traceback (most recent call last):
      TypeError: grad_of: fn gave a value of dtype int32, and only a real floating-point ...
    """
    fix = "e.g. lambda y: jnp.sum(y ** 2)"
    if not isinstance(loss, jax.Array | np.ndarray | np.generic | int | float | complex):
        given = "None" if loss is None else a_type(loss)
        raise TypeError(f"grad_of: fn gave {given}, not a scalar; return the loss, {fix}.")
    dtype = jnp.result_type(loss)
    if not jnp.issubdtype(dtype, jnp.floating):  # ints, bools and complex numbers
        raise TypeError(
            f"grad_of: fn gave a value of dtype {dtype}, and only a real "
            f"floating-point one has a gradient; return the loss, {fix}."
        )


def _check_kind(value: Any, has_aux: bool) -> None:
    """Raises a TypeError unless what ``fn`` gave is a pair under ``has_aux`` (JAX's error
    named a GradTracer), else one value (a tuple failed in jnp.ndim: "__array__()").

    Examples:
      >>> _check_kind((1.0, 2.0, 3.0), has_aux=True)
      Traceback (most recent call last):
      TypeError: grad_of: with has_aux=True, fn must give a pair (loss, aux), got a tuple of 3 ...
    """
    several = isinstance(value, tuple | list)
    given = f"{a_type(value)} of {len(value)} values" if several else "one value"
    if has_aux and not (several and len(value) == 2):
        raise TypeError(
            f"grad_of: with has_aux=True, fn must give a pair (loss, aux), got {given}."
        )
    if several and not has_aux:
        fix = "for (loss, aux), pass has_aux=True" if len(value) == 2 else "give the loss alone"
        raise TypeError(f"grad_of: fn gave {given}, not a scalar; {fix}.")
