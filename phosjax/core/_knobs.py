"""Knobs: values declared where they are used (Ptera's idea), kept in the variables tree.

``T = knob(self, "T", 1.0, doc="softmax temperature", valid=Range(gt=0))`` inside a
module; ``valid`` (optional) is the one place that states the values it takes. ``model.init``
stores every knob in the ``knobs`` collection, so changing one is a tree edit
(`set_knobs`, `tweak`), a grid can vmap over it, and a train step can learn it.
Variables without a ``knobs`` collection (say, params alone) run with the defaults.

A value out of its knob's `Range` is a ValueError wherever it is concrete: in `tweak`
and ``set_knobs(..., declared=knobs(model, x))`` before the model runs, and in the
module itself; under ``jit`` or ``vmap``, where it is traced, the knob reads NaN instead.
"""

import contextlib
import contextvars
import dataclasses
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from phosjax._callables import cut_repr
from phosjax.core._apply import checked_variables, traced_inlining_jit
from phosjax.core._collections import KNOBS
from phosjax.core._module_check import check_module
from phosjax.core._paths import check_path, flatten, module_path, unflatten
from phosjax.core._record import collecting, taking
from phosjax.core._selectors import (
    SelectorError,
    check_values,
    select,
    selected,
    selector_per_path,
)


@dataclasses.dataclass(frozen=True)
class Range:
    """The values a knob takes: finite numbers within the bounds given (``gt``/``ge`` a
    lower bound, open or closed; ``lt``/``le`` an upper one); NaN and infinities never.
    A bound given by position is ``gt``: ``Range(0)`` is ``Range(gt=0)``, which refuses 0
    itself; name the bounds (``Range(ge=0)``) to say which.

    Examples:
      >>> Range(gt=0), str(Range(gt=0)), str(Range(ge=0, lt=1))
      (Range(gt=0), 'a finite number > 0', 'a finite number >= 0 and < 1')
      >>> Range(0), Range(0).contains(0.0)
      (Range(gt=0), False)
      >>> Range(ge=0).contains(np.array([0.0, 2.0])), Range(gt=0).contains(np.inf)
      (True, False)
    """

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    def __post_init__(self) -> None:
        for name, bound in self.bounds().items():
            if not isinstance(bound, numbers.Real) or isinstance(bound, bool) or bound != bound:
                raise TypeError(f"Range {name} must be a number, got {cut_repr(bound)}.")
        for low, high in ((self.gt, self.ge), (self.lt, self.le)):
            if low is not None and high is not None:
                raise ValueError(
                    f"{self!r}: give one lower and one upper bound at most (by position, "
                    "the bounds are gt, ge, lt, le: name them, e.g. Range(ge=0, le=1))."
                )
        low, high = self.ge if self.gt is None else self.gt, self.le if self.lt is None else self.lt
        open_end = self.gt is not None or self.lt is not None
        if low is not None and high is not None and (low > high or (low == high and open_end)):
            raise ValueError(f"{self!r} holds no number: give a lower bound below the upper.")
        if low == np.inf or high == -np.inf:
            raise ValueError(
                f"{self!r} holds no number: it takes finite numbers alone, so give a lower "
                "bound below inf and an upper one above -inf."
            )

    def bounds(self) -> dict[str, float]:
        """The bounds given, by name (``{"gt": 0}`` for ``Range(gt=0)``).

        Examples:
          >>> Range(ge=0, lt=1).bounds()
          {'ge': 0, 'lt': 1}
        """
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def __repr__(self) -> str:
        return f"Range({', '.join(f'{k}={v!r}' for k, v in self.bounds().items())})"

    def _inequalities(self) -> list[str]:
        """Each bound as an inequality (``"> 0"``), lower first."""
        signs = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
        return [f"{signs[k]} {_bound(v)}" for k, v in self.bounds().items()]

    def __str__(self) -> str:
        return " ".join(["a finite number", " and ".join(self._inequalities())]).strip()

    def short(self) -> str:
        """The range in a few characters, for a table or the viewer: one bound as
        ``"> 0"``, two as an interval, none as ``"finite"``.

        Examples:
          >>> Range(gt=0).short(), Range(ge=0, lt=1).short(), Range(gt=-1, le=1).short()
          ('> 0', '[0, 1)', '(-1, 1]')
          >>> Range(le=0.5).short(), Range().short()
          ('<= 0.5', 'finite')
        """
        bounds = self.bounds()  # lower, then upper: at most one of each
        if len(bounds) == 2:
            (low, low_at), (high, high_at) = bounds.items()
            opens, closes = "(" if low == "gt" else "[", ")" if high == "lt" else "]"
            return f"{opens}{_bound(low_at)}, {_bound(high_at)}{closes}"
        return " ".join(self._inequalities()) or "finite"

    def mask(self, value: Any, xp: Any = np) -> Any:
        """Whether each entry of ``value`` is in range, computed with ``xp`` (numpy, or
        jax.numpy for a traced value); a non-finite entry never is.

        Examples:
          >>> Range(gt=0).mask(np.array([-1.0, 0.5, np.inf])).tolist()
          [False, True, False]
          >>> import jax, jax.numpy as jnp
          >>> jax.jit(lambda v: Range(gt=0).mask(v, jnp))(jnp.array([-1.0, 0.5])).tolist()
          [False, True]
        """
        inside = xp.isfinite(value)
        for bound, within in (
            (self.gt, xp.greater),
            (self.ge, xp.greater_equal),
            (self.lt, xp.less),
            (self.le, xp.less_equal),
        ):
            if bound is not None:
                inside = inside & within(value, bound)
        return inside

    def contains(self, value: Any) -> bool:
        """Whether every entry of ``value`` (concrete: a number or an array) is in range.

        Examples:
          >>> Range(gt=0, le=1).contains([0.5, 1.0]), Range(gt=0, le=1).contains(0.0)
          (True, False)
        """
        return bool(np.all(self.mask(np.asarray(value, dtype=float))))


@dataclasses.dataclass(frozen=True)
class Knob:
    """One declared knob: where it lives, its default, what it does and the values it
    takes (``valid``; None: any), as `knobs` lists them.

    Examples:
      >>> import flax.linen as nn, jax.numpy as jnp, phosjax as px
      >>> class Softmax(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         T = px.knob(self, "T", 1.0, doc="temperature", valid=px.Range(gt=0))
      ...         return nn.softmax(x / T)
      >>> px.knobs(Softmax(), jnp.zeros(3))["T"]
      Knob(path='T', default=1.0, doc='temperature', valid=Range(gt=0))
    """

    path: str
    default: Any
    doc: str
    valid: Range | None = None

    def check(self, value: Any, where: str = "", selector: str | None = None) -> None:
        """Raises a ValueError naming the knob (after ``where``, e.g. the module; with the
        ``selector`` that matched it, where given), the value and its range when a
        concrete ``value`` is out of ``valid``.

        An array (a knob stacked on a grid axis) is named by its first entry out of range,
        not by all of them.

        Examples:
          >>> Knob("blocks_0/T", 1.0, "", Range(gt=0)).check(0.0, where="Choice ")
          Traceback (most recent call last):
          ValueError: Choice knob 'blocks_0/T' must be a finite number > 0, got 0.0.
          >>> Knob("T", 1.0, "", Range(gt=0)).check(np.array([[1.0, 2.0], [-1.0, 0.0]]))
          Traceback (most recent call last):
          ValueError: knob 'T' must be a finite number > 0, got -1.0 at index (1, 0) (2 of 4
          entries out of range).
        """
        if self.valid is None or self.valid.contains(value):
            return
        array = np.asarray(value)
        shown = array.tolist()
        if array.ndim:
            out = np.argwhere(~self.valid.mask(array.astype(float)))
            first = tuple(int(i) for i in out[0])
            shown = f"{array[first].tolist()} at index {first} ({len(out)} of {array.size} "
            shown += "entries out of range)"
        name = selected(self.path, selector)
        raise ValueError(f"{where}knob {name} must be {self.valid}, got {shown}.")


def _bound(value: float) -> str:
    """A bound of a `Range` as written: short (``1``, ``0.5``, ``1e-06``) where that is the
    number itself, else all its digits (6 significant ones showed 1234567 as 1.23457e+06,
    a bound that 1234567 is below).

    Examples:
      >>> _bound(1.0), _bound(1e-6), _bound(1234567), _bound(0.9999999)
      ('1', '1e-06', '1234567', '0.9999999')
    """
    text = f"{value:g}"
    if float(text) == value:
        return text
    return str(value) if isinstance(value, numbers.Integral) else repr(float(value))


_DECLARED: contextvars.ContextVar[dict[str, Knob] | None] = contextvars.ContextVar(
    "phosjax_knobs", default=None
)


def knob(
    module: nn.Module, name: str, default: Any, *, doc: str = "", valid: Range | None = None
) -> jax.Array:
    """Declares a knob in ``module`` and returns its current value.

    A value out of ``valid`` is a ValueError when concrete; a traced one (under ``jit``,
    ``vmap`` or `flax.linen.scan`, where nothing can be raised) reads NaN, so that it shows
    (an integer knob, which cannot hold NaN, reads it as it is).

    Args:
      module: the bound module that uses the value (``self``).
      name: the knob's name, the last segment of its path.
      default: its value until tweaked; sets shape and dtype.
      doc: one line saying what it does (listed by `knobs`).
      valid: the values it takes, e.g. ``Range(gt=0)`` for a temperature; None: any.

    Raises:
      TypeError: ``valid`` is no `Range` (a tuple ``(0, 1)``), or is given for a complex
        default, which no range orders; the knob named.
      ValueError: the default, or the value in ``module``'s variables, is out of ``valid``
        (naming the module, the knob's path, the value and the range).

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp, phosjax as px
      >>> class Softmax(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         return nn.softmax(x / px.knob(self, "T", 1.0, doc="temperature"))
      >>> variables = Softmax().init(jax.random.key(0), jnp.zeros(3))
      >>> variables["knobs"]["T"].item()
      1.0
      >>> class Tempered(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         return x / px.knob(self, "T", 1.0, valid=px.Range(gt=0))
      >>> px.tweak(Tempered(), {}, jnp.ones(1), {"T": 0.0})
      Traceback (most recent call last):
      ValueError: knob 'T' must be a finite number > 0, got 0.0.
      >>> jax.jit(lambda T: px.tweak(Tempered(), {}, jnp.ones(1), {"T": T}))(-1.0).tolist()
      [nan]
    """
    check_path(module, name, "knob")
    path = module_path(module, name)
    if valid is not None and not isinstance(valid, Range):
        raise TypeError(
            f"knob {path!r}: valid must be a px.Range (e.g. px.Range(gt=0), px.Range(ge=0, "
            f"lt=1)) or None, got {cut_repr(valid)}."
        )
    value = _default_array(path, default)
    if valid is not None and jnp.issubdtype(value.dtype, jnp.complexfloating):
        raise TypeError(
            f"knob {path!r}: valid={valid!r} takes real numbers, but the default "
            f"{cut_repr(default)} is {value.dtype}: give a real default, or valid=None for a "
            "complex knob."
        )
    declaration = Knob(path, default, doc, valid)
    if not isinstance(default, jax.core.Tracer):  # value is one under a trace (eval_shape)
        declaration.check(
            default, where=f"{type(module).__name__} declares a default out of range: "
        )
    declared = taking(_DECLARED)
    if declared is not None:
        declared.setdefault(path, declaration)
    if module.has_variable(KNOBS, name) or module.is_mutable_collection(KNOBS):
        value = module.variable(KNOBS, name, lambda: value).value
    return _in_range(declaration, value, type(module).__name__)


def _in_range(declaration: Knob, value: jax.Array, owner: str) -> jax.Array:
    """``value`` checked against ``declaration``'s range: raises when it is concrete (in
    numpy: jnp is staged in a trace), NaN where it is out when traced and a float."""
    if declaration.valid is None:
        return value
    if not isinstance(value, jax.core.Tracer):
        declaration.check(value, where=f"{owner} ")
        return value
    if not jnp.issubdtype(value.dtype, jnp.inexact):
        return value
    return jnp.where(declaration.valid.mask(value, jnp), value, jnp.nan)


def _default_array(path: str, default: Any) -> jax.Array:
    """``default`` as an array; a TypeError naming the knob when it is no number or array,
    a ValueError when its dtype (JAX's default for a Python number) cannot hold it
    (`holds_exactly`: 2**40, 1e300)."""
    try:
        with np.errstate(over="ignore"):  # 1e300: its float32 inf is refused below
            array = jnp.asarray(default)
    except OverflowError:  # a Python int beyond int32: JAX's says "Python int ... too large"
        array = None
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"Knob {path!r} takes a number or an array as its default, got {cut_repr(default)}; to "
            "choose between options, declare an integer knob that indexes them."
        ) from error
    dtype = np.dtype(jax.dtypes.canonicalize_dtype(int) if array is None else array.dtype)
    if array is None or (not is_traced(default) and not holds_exactly(dtype, default)):
        raise ValueError(
            f"Knob {path!r} has the default {cut_repr(default)}, which its dtype, {dtype.name}, "
            f"cannot hold: give {what_holds(dtype)}."
        )
    return array


def _declarations() -> contextlib.AbstractContextManager[dict[str, Knob]]:
    """Within it, the knobs a trace declares are collected, by path."""
    return collecting(_DECLARED)


def _trace_init(
    model: nn.Module, *args: Any, **kwargs: Any
) -> tuple[dict[str, Knob], dict[str, jax.ShapeDtypeStruct], tuple[str, ...]]:
    """The knobs ``model.init`` stores and the shapes it stores them with, by path, and
    the paths of the knobs a lifted transform dropped (declared inside an nn.scan or
    nn.vmap whose ``variable_axes`` omit ``knobs``: they read their default, and no
    value can be set).

    Traced abstractly; a default the module computes with jax (``jnp.ones(3)``) is a
    tracer there, so then ``init`` runs again, jitted, and the default is read from the
    value it stores (a tracer of an inner transform such as nn.remat cannot leave it).
    A knob stored but not declared was in a trace that nn.jit reused (from an earlier
    call, or from a sibling block of the same fields: it fingerprints no name), which runs
    no Python; that run inlines nn.jit where it can (`traced_inlining_jit`), so each
    block declares its own doc and range.
    """

    def run() -> dict[str, Any]:
        with _declarations() as found:
            stored = model.init(jax.random.key(0), *args, **kwargs)
        declared.update(found)
        return stored.get(KNOBS, {})

    declared: dict[str, Knob] = {}
    shapes = flatten(jax.eval_shape(run))
    kept = {path: knob for path, knob in declared.items() if path in shapes}
    made_by_jax = any(isinstance(knob.default, jax.core.Tracer) for knob in kept.values())
    undeclared = len(kept) < len(shapes)
    if made_by_jax or undeclared:
        jitted = lambda fn: jax.jit(fn)()  # the rest of init is dead code
        inlined = traced_inlining_jit(jitted, run) if undeclared else None
        stored = flatten(jitted(run) if inlined is None else inlined)
        kept = {p: _read_default(k, stored[p]) for p, k in declared.items() if p in shapes}
        # still not declared: a variable that other code than `knob` put in 'knobs', or one
        # of a trace that could not be inlined; its default is what init stores, its doc unknown
        kept.update({p: Knob(p, stored[p], "") for p in shapes if p not in declared})
    return kept, shapes, tuple(path for path in declared if path not in shapes)


def _read_default(knob: Knob, stored: jax.Array) -> Knob:
    """``knob``, its default read from the value init stored if jax made it (a tracer);
    under nn.scan that value is stacked on a leading axis, and its first entry is taken."""
    if not isinstance(knob.default, jax.core.Tracer):
        return knob
    layer_axes = stored.ndim - knob.default.ndim
    return dataclasses.replace(knob, default=stored[(0,) * layer_axes])


def knobs(model: nn.Module, *args: Any, **kwargs: Any) -> dict[str, Knob]:
    """Every knob ``model`` declares when called on ``args``, by path.

    Traces ``model.init`` abstractly (nothing is computed; see `_trace_init`). The knobs
    of a model ``model`` applies inside its call (a frozen teacher's ``.apply``) are that
    model's, set through its own variables: they are not listed; nor are those that an
    nn.scan or nn.vmap whose ``variable_axes`` omit ``knobs`` drops, which read their
    default and cannot be set (`tweak` names them).

    Examples:
      >>> import flax.linen as nn, jax.numpy as jnp, phosjax as px
      >>> class Scaled(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         return x * px.knob(self, "gain", 2.0, doc="output gain")
      >>> px.knobs(Scaled(), jnp.ones(3))
      {'gain': Knob(path='gain', default=2.0, doc='output gain', valid=None)}
      >>> px.knobs(Scaled(), {"params": {}}, jnp.ones(3))  # as px.tweak is called
      Traceback (most recent call last):
      TypeError: knobs takes the model's call arguments, as model.init does after its key
      (px.knobs(model, x)), not its variables: got a mapping of the collections ['params']
      first.
    """
    check_module("knobs", model)
    first = args[0] if args else None
    if isinstance(first, Mapping) and any(
        isinstance(first.get(c), Mapping) for c in (KNOBS, "params")
    ):
        raise TypeError(
            "knobs takes the model's call arguments, as model.init does after its key "
            "(px.knobs(model, x)), not its variables: got a mapping of the collections "
            f"{list(first)} first."
        )
    return _trace_init(model, *args, **kwargs)[0]


def set_knobs(
    variables: Mapping[str, Any],
    values: Mapping[str, Any],
    *,
    declared: Mapping[str, Knob] | None = None,
) -> dict[str, Any]:
    """Returns ``variables`` with the knobs that each selector matches set to its value.

    A value is cast to the knob's dtype (its weak type kept) and broadcast to its shape
    (so a knob stacked on a grid axis takes one value for every cell). Given the model's
    knobs as ``declared`` (`knobs`), a concrete value is checked against its knob's
    ``valid`` range here, before anything is traced (a traced one reads NaN in the model).
    Whether an integer knob holds a value is checked where the value is concrete too: a
    traced one (under ``jit`` or ``vmap``, as the engine sets a grid's knobs, from
    float32) is cast toward zero (2.5 sets 2).

    Raises:
      SelectorError: a selector matches no knob (the message lists the nearest), or
        ``variables`` hold no ``knobs`` collection (see `with_knobs`).
      TypeError: a value is not a number or an array, or is a bool for a number knob (the
        knob named), ``values`` is no dict ``{selector: value}`` (a bare value), or
        ``variables`` are no mapping (None).
      ValueError: two selectors match one knob (both and the knob named), a value's shape
        does not broadcast to the knob's (both named), an integer or bool knob cannot hold
        it exactly (2.5, NaN) or a float one overflows to an infinity (1e300 for float32;
        the knob named), or it is out of the range ``declared``
        gives its knob (the knob, value and range named).

    Examples:
      >>> import jax.numpy as jnp
      >>> v = {"params": {}, "knobs": {"blocks_1": {"T": jnp.array(1.0)}}}
      >>> set_knobs(v, {"**/T": 3})["knobs"]["blocks_1"]["T"].item()
      3.0
      >>> declared = {"blocks_1/T": Knob("blocks_1/T", 1.0, "temperature", Range(gt=0))}
      >>> set_knobs(v, {"**/T": 0}, declared=declared)
      Traceback (most recent call last):
      ValueError: knob 'blocks_1/T' (selected by '**/T') must be a finite number > 0, got 0.
      >>> import jax
      >>> count = {"knobs": {"n": jnp.array(2)}}
      >>> jax.jit(lambda n: set_knobs(count, {"n": n})["knobs"]["n"])(2.5).item()  # traced
      2
    """
    variables = checked_variables(variables, "set_knobs")
    check_values(values, "knob")  # first: a bare value is no selector
    if values and KNOBS not in variables:
        raise SelectorError(
            f"Selector {next(iter(values))!r} matched no knob: the variables hold no "
            f"{KNOBS!r} collection (params alone?); px.core.with_knobs(model, variables, x) "
            "adds every knob at its default, and px.tweak does so itself."
        )
    flat = flatten(variables.get(KNOBS, {}))
    dropped = None if declared is None else [p for p in declared if p not in flat]  # lifted
    return _set_knobs(variables, values, declared or {}, dropped)


def _set_knobs(
    variables: Mapping[str, Any],
    values: Mapping[str, Any],
    declared: Mapping[str, Knob],
    dropped: Sequence[str] | None,
) -> dict[str, Any]:
    """`set_knobs` of checked ``variables`` and ``values`` (`check_values`), ``dropped``
    the knobs a lifted transform dropped, which a selector that matches none names (None:
    not known)."""
    flat = flatten(variables.get(KNOBS, {}))
    chosen = selector_per_path(
        values, lambda s: select(flat, s, what="knob", dropped=dropped), what="knob"
    )
    for path, selector in chosen.items():
        value = values[selector]
        refilled = _refill(path, jnp.asarray(flat[path]), value, selector)  # names a non-number
        if path in declared and not isinstance(value, jax.core.Tracer):
            check_as_held(declared[path], value, refilled.dtype, selector)
        flat[path] = refilled
    return {**variables, KNOBS: unflatten(flat)}


def check_as_held(
    declaration: Knob, value: Any, dtype: Any = None, selector: str | None = None
) -> None:
    """Checks a concrete ``value`` against its knob's range, and as the knob's ``dtype``
    (None: its default's) holds it: 0.999 is below 1, but a bfloat16 knob holds it as 1.0.
    The error names the ``selector`` that matched the knob, where given (`Knob.check`).

    Examples:
      >>> check_as_held(Knob("p", 0.5, "", Range(lt=1)), 0.999, jnp.bfloat16)
      Traceback (most recent call last):
      ValueError: 0.999 held as bfloat16: knob 'p' must be a finite number < 1, got 1.0.
    """
    declaration.check(value, selector=selector)
    dtype = jnp.result_type(declaration.default) if dtype is None else dtype
    if declaration.valid is None or not jnp.issubdtype(dtype, jnp.floating):
        return  # an int or bool knob holds a value exactly, or refuses it (`holds_exactly`)
    with np.errstate(over="ignore"):  # 1e300 as float32: inf, which the range refuses
        held = np.asarray(value).astype(dtype)  # numpy: jnp is staged under jit
    held_as = f"{_number_shown(value)} held as {np.dtype(dtype).name}: "
    declaration.check(held, where=held_as, selector=selector)


def broadcasts(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether an array of ``shape`` broadcasts to ``target``.

    Examples:
      >>> broadcasts((3,), (2, 3)), broadcasts((2,), (3,)), broadcasts((2, 3), (3,))
      (True, False, False)
    """
    try:
        return jnp.broadcast_shapes(shape, target) == target
    except ValueError:
        return False


def _refill(path: str, stored: jax.Array, value: Any, selector: str | None = None) -> jax.Array:
    """``stored`` with every entry set to ``value``: same shape, dtype and weak type; the
    errors name the knob at ``path`` with the ``selector`` that matched it (`selected`).

    The weak type of a knob declared with a Python number is kept, so setting it does
    not promote a bfloat16 computation to float32.

    Raises:
      TypeError: ``value`` is not a number or an array, or is a bool for a knob of
        another dtype (``True`` is no temperature).
      ValueError: ``value``'s shape does not broadcast to the knob's (both named), or an
        integer or bool knob cannot hold it exactly (e.g. 2.5), or a float one would turn it
        into an infinity (see `holds_exactly`).

    Examples:
      >>> _refill("blocks_0/T", jnp.zeros(3), jnp.ones(2))
      Traceback (most recent call last):
      ValueError: Knob 'blocks_0/T' has shape (3,); a value of shape (2,) does not ...
    """
    name = selected(path, selector)
    cannot_hold = f"Knob {name} holds {np.dtype(stored.dtype).name}, which cannot hold"
    try:
        with np.errstate(over="ignore"):  # a float64 array's float32 inf is refused below
            array = jnp.asarray(value)  # a tracer under jit, even of a Python number
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"Knob {name} takes a number or an array ({stored.dtype}, shape "
            f"{stored.shape}), got {cut_repr(value)}."
        ) from error
    except OverflowError as error:  # a Python int beyond JAX's default int
        raise ValueError(
            f"{cannot_hold} {_number_shown(value)}; give {what_holds(stored.dtype)}."
        ) from error
    if array.dtype == bool and stored.dtype != bool:  # as Range's bounds and layer sizes
        raise TypeError(
            f"Knob {name} holds {np.dtype(stored.dtype).name}, and a bool is no number "
            f"there: got {cut_repr(value)}; give {what_holds(stored.dtype)} (1 for True, 0 "
            "for False)."
        )
    if not broadcasts(array.shape, stored.shape):
        raise ValueError(
            f"Knob {name} has shape {stored.shape}; a value of shape {array.shape} does not "
            f"broadcast to it (give a scalar, or an array of shape {stored.shape})."
        )
    if not is_traced(value) and not holds_exactly(stored.dtype, value):
        raise ValueError(f"{cannot_hold} {_number_shown(value)}; give {what_holds(stored.dtype)}.")
    # cast explicitly (an integer value was checked above), so that a float32 value sets a
    # bfloat16 knob even where the caller's dtype promotion is strict
    return stored.at[...].set(array.astype(stored.dtype))


def _number_shown(value: Any) -> str:
    """``value`` (a number, an array or a list of them) as an error names it: a number as
    it reads, an array cut to one short line (`cut_repr`).

    Examples:
      >>> _number_shown(np.float64(2.5)), _number_shown([2**70] * 3)
      ('2.5', '[1180591620717411303424, 1180591620717411303424, 1180591620…')
    """
    return str(value) if np.ndim(value) == 0 else cut_repr(value)


def is_traced(value: Any) -> bool:
    """Whether ``value`` (an array, a number, a list of them) holds a tracer, whose numbers
    are known only when it runs (`holds_exactly` cannot tell).

    Examples:
      >>> is_traced([1, 2.5]), is_traced(jnp.ones(2))
      (False, False)
      >>> jax.jit(lambda x: print(is_traced([x, 1])))(2.0)  # at trace time
      True
    """
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(value))


def holds_exactly(dtype: Any, value: Any) -> bool:
    """Whether ``dtype`` holds ``value`` (a number or array) exactly: for a float dtype,
    any real value it does not turn into an infinity (it rounds; NaN and infinities given
    stay themselves), for an integer or bool one, only whole numbers in its range.

    Examples:
      >>> holds_exactly("int32", 2.0), holds_exactly("int32", 2.5), holds_exactly(bool, 2)
      (True, False, False)
      >>> holds_exactly(jnp.bfloat16, 0.1)  # jnp's test: numpy's misses bfloat16
      True
      >>> holds_exactly("float32", 2**200), holds_exactly("float32", [np.inf, np.nan])
      (False, True)
      >>> holds_exactly("float32", 2 + 1j), holds_exactly("complex64", 2 + 1j)
      (False, True)
    """
    dtype = np.dtype(dtype)
    value = np.asarray(value)
    if np.iscomplexobj(value) and dtype.kind != "c":
        if np.any(value.imag):
            return False  # its cast would drop the imaginary part
        value = value.real
    with np.errstate(invalid="ignore", over="ignore"):  # NaN, inf, out of range: False
        try:
            cast = value.astype(dtype)
            if not jnp.issubdtype(dtype, jnp.inexact):
                return bool(np.all(cast == value))
            given_finite = np.isfinite(value.astype(complex))  # complex: a Python int too
        except OverflowError:  # a Python int beyond float64 or the integer dtype
            return False
        return bool(np.all(np.isfinite(cast) | ~given_finite))


def what_holds(dtype: Any) -> str:
    """The values ``dtype`` holds (`holds_exactly`), in words, for an error message.

    Examples:
      >>> what_holds("float32"), what_holds("int8"), what_holds(bool)
      ('a number between -3.40282e+38 and 3.40282e+38', 'a whole number from -128 to 127', '0 or 1')
      >>> what_holds("complex64")
      'a number whose real and imaginary parts lie between -3.40282e+38 and 3.40282e+38'
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return "0 or 1"
    if jnp.issubdtype(dtype, jnp.inexact):
        largest = jnp.finfo(dtype).max
        parts = " whose real and imaginary parts lie" if dtype.kind == "c" else ""
        return f"a number{parts} between {-largest:g} and {largest:g}"
    info = jnp.iinfo(dtype)
    return f"a whole number from {info.min} to {info.max}"


def init_kwargs(apply_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``model.apply`` that ``model.init`` takes too (all but
    ``rngs`` and ``mutable``), so that init declares the knobs that apply reads."""
    return {k: v for k, v in apply_kwargs.items() if k not in ("rngs", "mutable")}


def with_knobs(
    model: nn.Module, variables: Mapping[str, Any], *args: Any, **kwargs: Any
) -> dict[str, Any]:
    """``variables`` with every knob ``model.init`` stores, missing ones at their default.

    A missing knob gets the shape ``init`` gives it (under `nn.scan`, one value per layer).

    Examples:
      >>> import flax.linen as nn, jax.numpy as jnp, phosjax as px
      >>> class Gain(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         return x * px.knob(self, "gain", 2.0)
      >>> with_knobs(Gain(), {"params": {}}, jnp.ones(3))["knobs"]["gain"].item()
      2.0
    """
    check_module("with_knobs", model)
    variables = checked_variables(variables, "with_knobs")
    return _with_knobs_declared(model, variables, *args, **kwargs)[0]


def _with_knobs_declared(
    model: nn.Module, variables: Mapping[str, Any], *args: Any, **kwargs: Any
) -> tuple[dict[str, Any], dict[str, Knob], tuple[str, ...]]:
    """`with_knobs`, the knobs ``model`` declares (`knobs`) and those a lifted transform
    dropped (`_trace_init`), from one trace."""
    declared, shapes, dropped = _trace_init(model, *args, **kwargs)
    flat = {  # as init stores it: jnp.asarray(default), weak type kept, stacked by nn.scan
        path: jnp.broadcast_to(jnp.asarray(declared[path].default), shape.shape)
        for path, shape in shapes.items()
    }
    flat.update(flatten(variables.get(KNOBS, {})))
    return {**variables, KNOBS: unflatten(flat)}, declared, dropped
