"""`inject`: run a model with some tagged values replaced."""

import contextlib
import functools
from collections.abc import Mapping
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
from phosjax.core._collections import INJECTIONS, INTERMEDIATES
from phosjax.core._knobs import broadcasts, holds_exactly, is_traced, what_holds
from phosjax.core._module_check import check_module
from phosjax.core._numbers import in_type_of
from phosjax.core._paths import unflatten
from phosjax.core._record import Calls, add_call
from phosjax.core._selectors import selected, selector_per_path


def injections(
    model: nn.Module,
    variables: Mapping[str, Any],
    x: Any,
    values: Mapping[str, Any],
    **kwargs: Any,
) -> dict[str, Any]:
    """The ``injections`` collection that replaces the tagged values ``values`` selects.

    Raises:
      SelectorError: a selector matches no tagged value (one that Flax's ``sow`` stored
        in ``intermediates``, not `tag`, cannot be reached: the message says so).
      TypeError: ``values`` is no dict ``{selector: value}`` (a bare value); ``variables`` are no
        collections (the params alone: `naming_params_alone`); a value holds what is no
        number nor array (a str; the tagged value named).
      ValueError: two selectors match one tagged value (both and its path named), a
        value's structure, shape or dtype differs from the tagged value's (both named), or
        several calls tag the selected value and it is no tuple of one value per call
        (each call finds its own only when ``intermediates`` is mutable:
        ``model.apply(..., mutable=["intermediates"])``).

    Examples:
      >>> import flax.linen as nn, jax.numpy as jnp, phosjax as px
      >>> class Double(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         return 2 * px.tag(self, "h", x)
      >>> tree = injections(Double(), {}, jnp.ones(2), {"h": jnp.array([5.0, 6.0])})
      >>> tree
      {'h': Array([5., 6.], dtype=float32)}
      >>> Double().apply({"injections": tree}, jnp.ones(2)).tolist()
      [10.0, 12.0]
    """
    check_module("injections", model)
    with (
        naming_apply_errors(model, variables, "injections", kwargs.get("method")) as variables,
        naming_other_kinds(variables, model, kwargs),
    ):
        return unflatten(_flat_injections(model, variables, x, values, **kwargs)[0])


def _flat_injections(
    model: nn.Module,
    variables: Mapping[str, Any],
    x: Any,
    values: Mapping[str, Any],
    **kwargs: Any,
) -> tuple[dict[str, Any], bool]:
    """`injections` as ``{path: value}``, unnested, so pytree values stay whole, and
    whether a value there is tagged by several calls (each call then finds its own
    through ``intermediates``)."""
    calls, sown, dropped = tag_call_shapes(model, variables, x, **kwargs)
    find = lambda selector: select_tags(calls, sown, selector, dropped)
    chosen = selector_per_path(values, find, what="tagged value")
    flat = {
        path: _checked(path, values[selector], calls[path], selector)
        for path, selector in chosen.items()
    }
    return flat, any(len(calls[path]) > 1 for path in flat)


def _checked(path: str, value: Any, calls: tuple[Any, ...], selector: str) -> Any:
    """``value`` as arrays, once it has the structure, shapes and dtypes tagged at ``path``;
    for a value tagged by several calls, a `Calls` of one such value per call. The errors
    name ``path``, and the ``selector`` that matched it where that is another (``"**"``
    may match more than was meant).

    Raises:
      TypeError: the tagged value holds no array (a str: `check_tagged_arrays`).
      ValueError: ``value`` differs from the tagged value, or several calls tag ``path``
        and ``value`` is no tuple of one value per call.
    """
    check_tagged_arrays("inject", path, calls)
    where = selected(path, selector)
    if len(calls) == 1:
        return _checked_call(where, value, calls[0])
    if not (isinstance(value, tuple) and len(value) == len(calls)):
        given = (
            f"a tuple of {len(value)}"
            if isinstance(value, tuple)
            else f"{a_type(value)} of shape {value.shape}"
            if hasattr(value, "shape")
            else a_type(value)
        )
        raise ValueError(
            f"Cannot inject {where}: it is tagged {len(calls)} times (by a module called "
            f"several times, or by one name tagged again in a call), so it takes a tuple of "
            f"{len(calls)} values, one per call of tag (as px.probe returns them), got {given}."
        )
    checked = [
        _checked_call(f"{where} (call {i + 1} of {len(calls)})", item, expected)
        for i, (item, expected) in enumerate(zip(value, calls, strict=True))
    ]
    return functools.reduce(add_call, checked, Calls())  # one value per call, to `tag`


def _in_dtype(value: Any, dtype: Any) -> Any:
    """``value`` as an array; one that has no dtype of its own (a Python number, a list of
    them) in ``dtype`` where that holds it exactly (None: JAX's default). Its numbers are
    read as given, not as JAX's default dtype holds them (an int beyond int32 for a float
    tag; a tracer under jit); a list holding a traced array takes that array's dtype.
    One that a float ``dtype`` would turn into an infinity is an OverflowError, and so is
    a numpy array JAX reads in ``dtype`` that cannot hold it (float64 as float32, 1e300 as
    inf; int64 as int32, 2**40 as 0); one JAX reads in another dtype stays as given.

    Examples:
      >>> _in_dtype(2, jnp.float32), _in_dtype(2.5, jnp.int32), _in_dtype(jnp.int32(2), None)
      (Array(2., dtype=float32), Array(2.5, dtype=float32, weak_type=True), Array(2, dtype=int32))
      >>> _in_dtype(2**40, jnp.float32)
      Array(1.0995116e+12, dtype=float32)
      >>> _in_dtype(1e300, jnp.float32)
      Traceback (most recent call last):
      OverflowError: 1e+300 overflows float32
      >>> _in_dtype(np.array([2**40]), jnp.int32)
      Traceback (most recent call last):
      OverflowError: array([1099511627776]) overflows int32
    """
    if dtype is None or is_traced(value):
        return jnp.asarray(value)
    if not isinstance(value, int | float | list | tuple):
        read_as = _read_as(value)
        if read_as == dtype and not holds_exactly(dtype, value):
            raise OverflowError(f"{cut_repr(value)} overflows {jnp.dtype(dtype).name}")
        if read_as not in (None, dtype):  # another dtype: the caller names it
            return value  # as given (int64), not as JAX reads it (int32)
        return jnp.asarray(value)  # an array keeps its dtype
    if holds_exactly(dtype, value):
        return jnp.asarray(value, dtype)
    if jnp.issubdtype(dtype, jnp.inexact) and not np.iscomplexobj(value):  # nor as inf
        raise OverflowError(f"{cut_repr(value)} overflows {jnp.dtype(dtype).name}")
    return jnp.asarray(value)  # a complex one: its dtype named by the caller


def _read_as(value: Any) -> Any:
    """The dtype JAX reads a numpy array or number ``value`` in, where that is not its own
    (float64 as float32, int64 as int32 without ``jax_enable_x64``); else None.

    Examples:
      >>> _read_as(np.ones(2)), _read_as(np.ones(2, np.float32)), _read_as(jnp.ones(2))
      (dtype('float32'), None, None)
    """
    if not isinstance(value, np.ndarray | np.generic) or value.dtype.kind not in "biufc":
        return None
    read_as = np.dtype(jax.dtypes.canonicalize_dtype(value.dtype))
    return read_as if read_as != value.dtype else None


def in_dtypes_of(value: Any, expected: Any) -> Any:
    """``value`` with what has no dtype of its own (Python numbers, a list or tuple of them
    for an array) in ``expected``'s dtypes where they hold it exactly; as it is where its
    structure is not ``expected``'s (for the caller to name).

    Examples:
      >>> in_dtypes_of([[0, 1]], jax.ShapeDtypeStruct((1, 2), jnp.float32))
      Array([[0., 1.]], dtype=float32)
    """
    if isinstance(value, list | tuple) and jax.tree_util.treedef_is_leaf(
        jax.tree.structure(expected)
    ):
        with contextlib.suppress(TypeError, ValueError):  # not numbers: named by the caller
            value = _in_dtype(value, expected.dtype)
    given_tree: Any = jax.tree.structure(value)  # Any: jaxlib's PyTreeDef has no stubs
    if given_tree != jax.tree.structure(expected):
        return value
    return jax.tree.map(lambda given, want: _in_dtype(given, want.dtype), value, expected)


def _checked_call(where: str, value: Any, expected: Any) -> Any:
    """``value`` as arrays, once it has the structure, shapes and dtypes of ``expected``,
    what one call tagged (``where`` names it in the errors), and its weak types (weakly
    typed where the model's value is, not elsewhere: `in_type_of`); a list or tuple for a
    tagged array is read as one array (as `tweak` reads a knob's value), not as a pytree,
    and it or a Python number in the tagged dtype where that holds it exactly.

    Raises:
      TypeError: ``value`` holds what is no number nor array (a str), naming ``where``.
      ValueError: ``value`` has another structure, shape or dtype, a Python int that
        neither the tagged dtype nor int32 holds, or a Python number that a tagged float
        dtype would turn into an infinity, naming ``where`` and the dtype's range.

    Examples:
      >>> _checked_call("'h'", [[1, 2]], jax.ShapeDtypeStruct((1, 2), jnp.float32))
      Array([[1., 2.]], dtype=float32)
      >>> _checked_call("'h'", "zeros", jax.ShapeDtypeStruct((1, 2), jnp.float32))
      Traceback (most recent call last):
      TypeError: Injected value for 'h' must be an array (or a pytree of them) like the
      tagged value there, of shape (1, 2) and dtype float32, got 'zeros' (a str).
    """
    try:
        value = in_dtypes_of(value, expected)
    except OverflowError:  # JAX's names no tag: "Python int 2**40 too large to convert..."
        dtypes = sorted({str(s.dtype) for s in jax.tree.leaves(expected)})
        ranges = ", ".join(f"{dtype}: {what_holds(dtype)}" for dtype in dtypes)
        raise ValueError(
            f"Injected value for {where} holds a number out of the range of the tagged "
            f"value's dtypes there ({ranges}): got {cut_repr(value)}."
        ) from None
    except (TypeError, ValueError):  # JAX's names no tag: "Value 'zeros' with dtype <U5..."
        leaf = jax.tree_util.treedef_is_leaf(jax.tree.structure(expected))
        tagged = (
            f"of shape {expected.shape} and dtype {expected.dtype}"
            if leaf
            else f"of structure {jax.tree.structure(expected)}"
        )
        raise TypeError(
            f"Injected value for {where} must be an array (or a pytree of them) like the "
            f"tagged value there, {tagged}, got {cut_repr(value)} ({a_type(value)})."
        ) from None
    given_tree: Any = jax.tree.structure(value)  # Any: jaxlib's PyTreeDef has no stubs
    expected_tree = jax.tree.structure(expected)
    if given_tree != expected_tree:
        raise ValueError(
            f"Injected value for {where} has structure {given_tree}, but the tagged value "
            f"there has structure {expected_tree}.{_sequence_hint(value, expected)}"
        )
    for (key, given), want in zip(
        jax.tree.leaves_with_path(value), jax.tree.leaves(expected), strict=True
    ):
        if given.shape != want.shape or given.dtype != want.dtype:
            raise ValueError(
                f"Injected value for {where}{jax.tree_util.keystr(key)} has shape "
                f"{given.shape} and dtype {given.dtype}, but the tagged value there has shape "
                f"{want.shape} and dtype {want.dtype}.{_how_to_give(given, want)}"
            )
    # weakly typed or not as the tagged value: else what follows takes another dtype (a
    # bfloat16 output where the model's is float32, or a float32 one where it is bfloat16)
    return jax.tree.map(in_type_of, value, expected)


def _sequence_hint(given: Any, want: Any, at: str = "") -> str:
    """A sentence naming the first place (below ``at``) where ``given`` holds one kind of
    sequence and the tagged ``want`` another (a tuple for a list), which JAX's structures
    tell apart, else ``""``.

    Examples:
      >>> _sequence_hint((1, 2), [1, 2])
      ' It is a tuple where the tagged value holds a list: give a list.'
      >>> _sequence_hint({"a": [1]}, {"a": (1,)}), _sequence_hint([1], [1, 2])
      (" It holds a list at ['a'] where the tagged value holds a tuple: give a tuple.", '')
    """
    both = lambda kind: isinstance(given, kind) and isinstance(want, kind)
    if both(list | tuple) and type(given) is not type(want):
        kind, wanted = type(given).__name__, type(want).__name__
        holds = f"holds a {kind} at {at}" if at else f"is a {kind}"
        return f" It {holds} where the tagged value holds a {wanted}: give a {wanted}."
    if both(list | tuple) and len(given) == len(want):
        pairs = [(f"{at}[{i}]", g, w) for i, (g, w) in enumerate(zip(given, want, strict=True))]
    elif both(Mapping) and given.keys() == want.keys():
        pairs = [(f"{at}[{k!r}]", given[k], want[k]) for k in want]
    else:
        return ""
    return next(filter(None, (_sequence_hint(g, w, a) for a, g, w in pairs)), "")


def _how_to_give(given: jax.Array, want: Any) -> str:
    """A sentence saying how to give the tagged ``want``'s shape and dtype, else ``""``:
    for a ``given`` value of its shape in another dtype (bfloat16 for float32), which is
    not cast; for one whose shape broadcasts to it (a scalar), as the tagged value is
    replaced whole (unlike a knob's value, which `set_knobs` broadcasts); for a raw key
    (``jax.random.PRNGKey``'s uint32 pair) where a typed one is tagged, or the other way
    round, where its data has that shape (and, a raw one, the default implementation's,
    which ``wrap_key_data`` makes). A PRNG key's dtype is no numpy one for `jnp.full` to
    take: it is broadcast.

    Examples:
      >>> _how_to_give(jnp.zeros(()), jax.ShapeDtypeStruct((2, 3), jnp.float32))
      ' An injected value is not broadcast: give jnp.full((2, 3), value, jnp.float32).'
      >>> _how_to_give(jnp.zeros(4), jax.ShapeDtypeStruct((2, 3), jnp.float32))
      ''
      >>> _how_to_give(jnp.zeros(3, jnp.bfloat16), jax.ShapeDtypeStruct((3,), jnp.float32))
      ' An injected value is not cast: give value.astype(jnp.float32).'
      >>> key = jax.random.key(0)
      >>> _how_to_give(key, jax.ShapeDtypeStruct((2,), key.dtype))
      ' An injected value is not broadcast: give jnp.broadcast_to(value, (2,)).'
      >>> _how_to_give(jax.random.PRNGKey(0), jax.ShapeDtypeStruct((), key.dtype))
      ' A raw key is no typed one: give jax.random.wrap_key_data(value).'
      >>> _how_to_give(key, jax.ShapeDtypeStruct((2,), jnp.uint32))
      ' A typed key is no raw one: give jax.random.key_data(value).'
      >>> _how_to_give(key, jax.ShapeDtypeStruct((5,), jnp.uint32))  # five ids, no key
      ''
    """
    given_key, want_key = (
        jax.dtypes.issubdtype(s.dtype, jax.dtypes.extended) for s in (given, want)
    )
    data_of = lambda keys: jax.eval_shape(jax.random.key_data, keys).shape  # (2,): fry
    default = jax.eval_shape(jax.random.key, 0).dtype  # the keys wrap_key_data makes
    if want.dtype == default and given.dtype == jnp.uint32 and given.shape == data_of(want):
        return " A raw key is no typed one: give jax.random.wrap_key_data(value)."
    if given_key and want.dtype == jnp.uint32 and want.shape == data_of(given):  # no ids
        return " A typed key is no raw one: give jax.random.key_data(value)."
    if given_key != want_key:  # a key for numbers or numbers for a key: no fix
        return ""
    name = None if want_key else jnp.dtype(want.dtype).name  # key<fry>: no jnp.key<fry>
    if given.shape == want.shape:  # another dtype (bfloat16 for float32)
        return f" An injected value is not cast: give value.astype(jnp.{name})." if name else ""
    if not broadcasts(given.shape, want.shape):
        return ""
    if name is None:
        return f" An injected value is not broadcast: give jnp.broadcast_to(value, {want.shape})."
    return f" An injected value is not broadcast: give jnp.full({want.shape}, value, jnp.{name})."


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
      values: ``{selector: value}``; each value has the structure (an array or pytree of
        arrays), shapes and dtypes of the tagged value it replaces. A value that a module
        called several times tags takes a tuple, one value per call, as `probe` returns it.
      **kwargs: passed to ``model.apply``; under ``mutable=True`` (or an
        ``nn.DenyList``) the state it hands back holds no ``injections`` (the values
        given are no state of the model).

    Raises:
      SelectorError: a selector matches no tagged value (one that Flax's ``sow`` stored
        in ``intermediates``, not `tag`, cannot be reached: the message says so).
      TypeError: ``values`` is no dict ``{selector: value}`` (a bare value); ``variables`` are no
        collections (the params alone: `naming_params_alone`); a value holds what is no
        number nor array (a str; the tagged value named).
      ValueError: two selectors match one tagged value (both and its path named), a value
        of the wrong structure, shape or dtype (the path, the call and both named), no
        tuple of one value per call for a value tagged by several, or one that never
        reached its tag (a lifted transform, such as nn.scan, whose ``variable_axes``
        omit ``injections`` dropped it; `scan_axes` lists them all).

    Examples:
      >>> import flax.linen as nn, jax.numpy as jnp, phosjax as px
      >>> class Double(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         return 2 * px.tag(self, "h", x)
      >>> px.inject(Double(), {}, jnp.ones(2), {"h": jnp.array([5.0, 6.0])}).tolist()
      [10.0, 12.0]
    """
    check_module("inject", model)
    with (
        naming_apply_errors(model, variables, "inject", kwargs.get("method")) as variables,
        naming_other_kinds(variables, model, kwargs),
    ):
        flat, several = _flat_injections(model, variables, x, values, **kwargs)
    injected = {**variables, INJECTIONS: unflatten(flat)}
    collect = [INTERMEDIATES] if several else []  # tags count their calls there
    return apply_reaching_tags(
        model, injected, x, collection=INJECTIONS, paths=flat, collect=collect, **kwargs
    )[0]
