"""What to train: `Regularizer`, `HParams` and `Cell` (frozen, hashable dataclasses)."""

import contextlib
import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
import optax

from phosjax._callables import cut_repr
from phosjax._nearest import did_you_mean, fields_checked
from phosjax.core import compile_selector
from phosjax.core._knobs import holds_exactly, what_holds
from phosjax.models._config import is_int
from phosjax.morph import COSTS, SOURCES

OPTIMIZERS = ("adam", "adamw", "sgd", "momentum")
"""Optimizer families `HParams.optimizer` accepts (see `make_optimizer`)."""

COMPUTE_DTYPES = ("float32", "bfloat16")
"""Compute dtypes `HParams.compute_dtype` accepts (params and optimizer stay float32)."""

LR_SCHEDULES = ("constant", "cosine", "linear")
"""How `HParams.lr_schedule` moves the learning rate after warmup (see `lr_multiplier`)."""

REGULARIZER_KINDS = ("l1", "l2", "morph")
REGULARIZER_TARGETS = ("params", "activations")


INT32_MAX = 2**31 - 1
"""The largest step count, batch size or interval `HParams` takes: the engine holds
steps and batch indices in int32 on device."""


def int_at_least(
    where: str, value: Any, least: int, most: int | None = None, *, hint: str = ""
) -> int:
    """``value`` as a plain int (numpy's too) when it is an integer >= ``least`` (and <=
    ``most``, when given); ``hint`` follows the range in the message.

    Raises:
      ValueError: naming ``where``: ``value`` is no integer (a float, a bool, ...) or is
        below ``least`` or above ``most``.

    Examples:
      >>> import numpy as np
      >>> int_at_least("HParams steps", np.int64(4), 1)
      4
      >>> int_at_least("HParams steps", 2**31, 1, INT32_MAX)
      Traceback (most recent call last):
      ValueError: HParams steps must lie in [1, 2147483647], got 2147483648.
    """
    if not is_int(value):
        raise ValueError(
            f"{where} must be an int, got {cut_repr(value)} ({type(value).__name__}); give a "
            f"whole number >= {least} as an int (a numpy int is fine)."
        )
    if value < least:
        raise ValueError(f"{where} must be >= {least}, got {value}.")
    if most is not None and value > most:
        raise ValueError(f"{where} must lie in [{least}, {most}]{hint}, got {value}.")
    return int(value)


def one_of(where: str, value: Any, choices: Sequence[Any]) -> None:
    """Raises a ValueError naming ``where`` unless ``value`` is one of ``choices``; for a
    misspelt name, the nearest choice (`did_you_mean`).

    Examples:
      >>> one_of("HParams compute_dtype", "int8", ("float32", "bfloat16"))
      Traceback (most recent call last):
      ValueError: HParams compute_dtype 'int8': expected one of ('float32', 'bfloat16').
      >>> one_of("Regularizer on", "activation", ("params", "activations"))
      Traceback (most recent call last):
      ValueError: Regularizer on 'activation': expected one of (...). Did you mean 'activations'?
    """
    if value not in choices:
        names = [choice for choice in choices if isinstance(choice, str)]
        hint = did_you_mean([value], names) if isinstance(value, str) else ""
        raise ValueError(
            f"{where} {cut_repr(value)}: expected one of {tuple(choices)}{hint or '.'}"
        )


def number_in(
    where: str,
    value: Any,
    least: float,
    most: float = math.inf,
    *,
    strict: bool = False,
    hint: str = "",
) -> float:
    """``value`` as a float when it is a finite real number (not a bool) in ``[least,
    most]`` (``strict``: above ``least``); ``hint`` follows the range in the message. A
    string that spells a float is that float, as in a bench config (YAML reads ``1e-3``,
    without a dot, as the string ``"1e-3"``).

    Raises:
      ValueError: naming ``where``: ``value`` is no number (a string spelling none, a
        bool, NaN), is infinite or lies outside the range.

    Examples:
      >>> number_in("HParams momentum", 0.9, 0, 1), number_in("HParams learning_rate", "1e-3", 0)
      (0.9, 0.001)
      >>> number_in("HParams learning_rate", "fast", 0)
      Traceback (most recent call last):
      ValueError: HParams learning_rate must be a number, got 'fast' (str).
    """
    number = math.nan
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value)
    elif isinstance(value, numbers.Real | np.ndarray | jax.Array):
        array = np.asarray(value)
        if array.ndim == 0 and array.dtype != bool:
            number = float(array)
    if math.isnan(number):
        raise ValueError(
            f"{where} must be a number, got {cut_repr(value)} ({type(value).__name__})."
        )
    if math.isinf(number):
        raise ValueError(f"{where} must be a finite number, got {number}.")
    if not (least < number if strict else least <= number) or not number <= most:
        if most < math.inf:
            shown = f"lie in {'(' if strict else '['}{least}, {most}]"
        else:
            shown = f"be {'>' if strict else '>='} {least}"
        raise ValueError(f"{where} must {shown}{hint}, got {number}.")
    return number


def check_float32(where: str, value: float, holder: str) -> None:
    """Raises a ValueError naming ``where`` and ``value`` if float32, the dtype ``holder``
    holds it in, would hold it as inf (`holds_exactly`: beyond its range, rounded).

    Examples:
      >>> check_float32("HParams learning_rate", 3.4e38, "a group")
      >>> check_float32("HParams learning_rate", -1e39, "a group")
      Traceback (most recent call last):
      ValueError: HParams learning_rate -1e+39 lies beyond float32's range, the dtype a
      group holds it in, where it would be inf; give a number between -3.40282e+38 and
      3.40282e+38.
    """
    if not holds_exactly(np.float32, value):
        raise ValueError(
            f"{where} {value!r} lies beyond float32's range, the dtype {holder} holds it in, "
            f"where it would be inf; give {what_holds(np.float32)}."
        )


def group_number_in(
    where: str, value: Any, least: float, most: float = math.inf, *, hint: str = ""
) -> float:
    """`number_in`, for a value a group holds in float32 (`check_float32`).

    Examples:
      >>> group_number_in("HParams momentum", "0.5", 0, 1)
      0.5
      >>> group_number_in("HParams learning_rate", 1e39, 0)
      Traceback (most recent call last):
      ValueError: HParams learning_rate 1e+39 lies beyond float32's range, the dtype a group ...
    """
    number = number_in(where, value, least, most, hint=hint)
    check_float32(where, number, "a group")
    return number


def _check_compute_dtype(value: Any) -> None:
    """Raises a ValueError naming ``HParams compute_dtype`` unless ``value`` is one of
    `COMPUTE_DTYPES`, a name: a dtype (``np.dtype("float32")``) compares equal to its
    name but hashes otherwise, which split equal hparams into two groups and failed a
    look-up by name (a bare ``KeyError: dtype('float32')``).

    Examples:
      >>> _check_compute_dtype(np.dtype("float32"))
      Traceback (most recent call last):
      ValueError: HParams compute_dtype must be a dtype's name, one of ('float32', 'bfloat16'),
      got dtype('float32'): give 'float32'.
    """
    if not isinstance(value, str):
        try:  # np.dtype(None) is float64: no dtype given
            name = None if value is None else np.dtype(value).name
        except TypeError:  # no dtype at all
            name = None
        raise ValueError(
            f"HParams compute_dtype must be a dtype's name, one of {COMPUTE_DTYPES}, got "
            f"{value!r}" + (f": give {name!r}." if name in COMPUTE_DTYPES else ".")
        )
    one_of("HParams compute_dtype", value, COMPUTE_DTYPES)


def _check_selector(where: str, selector: Any) -> None:
    """Raises `compile_selector`'s error (a TypeError for no str, a ValueError), starting
    with ``where``, if ``selector`` does not compile."""
    try:
        compile_selector(selector)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{where}: {error}") from None


@fields_checked
@dataclasses.dataclass(frozen=True)
class Regularizer:
    """A penalty ``strength * sum over matches of kind(value)`` added to the loss.

    Attributes:
      selector: which values, e.g. ``"**/kernel"`` (params) or ``"**/pre_act"`` (tags);
        for ``"morph"``, which channel groups are priced (``"**"``: all).
      kind: ``"l1"`` (absolute values), ``"l2"`` (squares) or ``"morph"`` (MorphNet's
        resource regularizer, `phosjax.morph.morph_regularizer`, normalized by the full
        model's cost; its channel groups are traced from the model when the step compiles).
      strength: the factor, >= 0 and within float32's range; may differ between the
        cells of one group. At 0 the penalty adds nothing, even where it overflows.
      on: ``"params"`` sums over every entry of the matching parameters;
        ``"activations"`` averages over the entries of each matching tagged value.
        ``"morph"`` needs ``"params"``.
      cost: ``"morph"`` only: ``"flops"``, ``"params"`` or ``"latency"``.
      source: ``"morph"`` only: the channel importance, ``"auto"``, ``"gamma"`` or
        ``"group_lasso"`` (see `phosjax.morph.SOURCES`).
      threshold: ``"morph"`` only: a channel whose importance is at or below it counts
        as dead.

    Examples:
      >>> Regularizer("**/kernel", "l2", 1e-4).kind
      'l2'
      >>> Regularizer("**", "morph", 0.1, cost="params").cost
      'params'
    """

    selector: str
    kind: str = "l2"
    strength: float = 1e-4
    on: str = "params"
    cost: str = "flops"
    source: str = "auto"
    threshold: float = 1e-2

    def __post_init__(self) -> None:
        _check_selector("Regularizer selector", self.selector)
        one_of("Regularizer kind", self.kind, REGULARIZER_KINDS)
        one_of("Regularizer on", self.on, REGULARIZER_TARGETS)
        strength = group_number_in("Regularizer strength", self.strength, 0)
        object.__setattr__(self, "strength", strength)
        object.__setattr__(self, "threshold", number_in("Regularizer threshold", self.threshold, 0))
        one_of("Regularizer cost", self.cost, COSTS)  # for every kind: a typo is never silent
        one_of("Regularizer source", self.source, SOURCES)
        if self.kind == "morph" and self.on != "params":
            raise ValueError("Regularizer kind 'morph' prices params: it needs on='params'.")

    def shared(self) -> "Regularizer":
        """This penalty at strength 0, less the fields its kind ignores: what a compiled
        group shares.

        Examples:
          >>> Regularizer("**/kernel", "l2", 1e-3, cost="params").shared()  # l2 has no cost
          Regularizer(selector='**/kernel', kind='l2', strength=0.0, on='params',
                      cost='flops', source='auto', threshold=0.01)
        """
        if self.kind == "morph":
            return dataclasses.replace(self, strength=0.0)
        return Regularizer(self.selector, self.kind, 0.0, self.on)


OPTIMIZER_RANGES = (
    ("learning_rate", 0, math.inf, ""),
    ("weight_decay", 0, math.inf, " (0: none)"),
    ("momentum", 0, 1, ""),
)
"""``(name, least, most, hint)`` of the optimizer's per-cell values (`number_in`'s ranges)."""


def optax_shown(value: Any) -> str:
    """How a refusal shows an optax transformation (`optax.MultiSteps`' wrapper of one too)
    or a function; ``""`` for other values."""
    if isinstance(value, optax.GradientTransformation):
        return "an optax transformation"
    if isinstance(value, optax.MultiSteps):  # no GradientTransformation, nor callable
        return "an optax transformation (optax.MultiSteps)"
    return f"a function {cut_repr(value, 40)}" if callable(value) else ""


def refuse_optax_optimizer(where: str, value: Any, error: type[Exception] = ValueError) -> None:
    """Raises ``error`` naming ``where`` and the family names the engine takes instead if
    ``value`` is an optax transformation or a function (an optimizer's factory, as
    ``optax.adam``): a group builds each family's optax chain itself, with each cell's rates
    in its state.

    Examples:
      >>> import optax
      >>> refuse_optax_optimizer("HParams optimizer", optax.adam)
      Traceback (most recent call last):
      ValueError: HParams optimizer must be an optimizer family's name, one of ('adam', ...
    """
    shown = optax_shown(value)
    if shown:
        raise error(
            f"{where} must be an optimizer family's name, one of {OPTIMIZERS}, got {shown}: "
            "the engine builds the family's optax chain itself (make_optimizer), each cell's "
            "learning_rate, weight_decay and momentum in its state, so that one compiled "
            "update serves a group; give the family's name and grad_clip, lr_schedule and "
            "warmup_steps."
        )


def refuse_optax_schedule(where: str, value: Any, name: str = "learning_rate") -> None:
    """Raises a ValueError naming ``where`` and what the engine takes instead if ``value``
    (the `HParams` field ``name``: ``learning_rate``, ``weight_decay``, ...) is a function
    (a schedule) or an optax transformation: a group schedules each cell's learning rate
    itself, its peak in the cell's state, and holds the other values constant.

    Examples:
      >>> refuse_optax_schedule("HParams learning_rate", lambda count: 1e-3)
      Traceback (most recent call last):
      ValueError: HParams learning_rate must be a number (the peak rate), got a function
      <function <lambda> at 0x...>: the engine schedules each cell's rate itself; give its
      peak as learning_rate and its shape as lr_schedule (one of ('constant', 'cosine',
      'linear')) and warmup_steps.
      >>> refuse_optax_schedule("HParams weight_decay", lambda count: 1e-4, "weight_decay")
      Traceback (most recent call last):
      ValueError: HParams weight_decay must be a number, got a function <function <lambda>
      at 0x...>: the engine holds each cell's weight_decay constant through the run (only
      the learning rate follows a schedule: lr_schedule, one of ('constant', 'cosine',
      'linear'), and warmup_steps); give weight_decay as one number.
    """
    shown = optax_shown(value)
    if not shown:
        return
    if name == "learning_rate":
        raise ValueError(
            f"{where} must be a number (the peak rate), got {shown}: "
            "the engine schedules each cell's rate itself; give its peak as learning_rate "
            f"and its shape as lr_schedule (one of {LR_SCHEDULES}) and warmup_steps."
        )
    raise ValueError(
        f"{where} must be a number, got {shown}: the engine holds each cell's {name} "
        "constant through the run (only the learning rate follows a schedule: lr_schedule, "
        f"one of {LR_SCHEDULES}, and warmup_steps); give {name} as one number."
    )


GRAD_CLIP_HINT = " (a global norm) or None (no clipping)"


def checked_grad_clip(where: str, value: Any) -> float:
    """``value``, a ``grad_clip`` other than None, as the global norm to clip to, > 0.

    Raises:
      ValueError: naming ``where``: ``value`` is no number above 0; an optax
        transformation (``optax.clip_by_global_norm(1.0)``) or a function is told to give
        the norm, as the engine clips first in the family's chain itself.

    Examples:
      >>> import optax
      >>> checked_grad_clip("HParams grad_clip", optax.clip_by_global_norm(1.0))
      Traceback (most recent call last):
      ValueError: HParams grad_clip must be a number (a global norm) or None (no clipping),
      got an optax transformation: the engine clips the gradients itself, first in the
      family's optax chain (make_optimizer); give the norm, as to optax.clip_by_global_norm.
    """
    shown = optax_shown(value)
    if shown:
        raise ValueError(
            f"{where} must be a number{GRAD_CLIP_HINT}, got {shown}: the engine clips the "
            "gradients itself, first in the family's optax chain (make_optimizer); give the "
            "norm, as to optax.clip_by_global_norm."
        )
    return number_in(where, value, 0, strict=True, hint=GRAD_CLIP_HINT)


INT32_HINT = " (2**31 - 1 at most: the engine holds it in an int32 on device)"

REGULARIZER_EXAMPLE = 'regularizers=(Regularizer("**/kernel", "l2", 1e-4),)'
KNOBS_EXAMPLE = "knobs={'**/T': 2.0} or knobs=(('**/T', 2.0),)"


def _sequence(where: str, value: Any, example: str) -> tuple[Any, ...]:
    """``value`` as a tuple when it is a list or tuple (of items ``where`` checks itself).

    Raises:
      ValueError: naming ``where`` and ``example``: ``value`` is one item, a mapping, a
        string or no collection at all.
    """
    if not isinstance(value, list | tuple):
        raise ValueError(
            f"{where} must be a tuple (or list), got {value!r} ({type(value).__name__}); "
            f"e.g. {example}."
        )
    return tuple(value)


def _knob_pairs(knobs: Any) -> tuple[tuple[str, float], ...]:
    """``HParams.knobs`` as ``(selector, value)`` pairs, from a mapping or from pairs.

    Raises:
      ValueError: ``knobs`` is neither, an item is no pair, a selector does not compile
        or is given twice, or a value is no number (the selector named).

    Examples:
      >>> _knob_pairs({"**/T": 2})
      (('**/T', 2.0),)
      >>> _knob_pairs((("T", 5), ("T", 7)))
      Traceback (most recent call last):
      ValueError: HParams knobs: selector 'T' is given twice (5 and 7); give each knob one value.
    """
    items = tuple(knobs.items()) if isinstance(knobs, Mapping) else knobs
    checked = []
    given: dict[Any, Any] = {}
    for item in _sequence("HParams knobs", items, KNOBS_EXAMPLE):
        if not (isinstance(item, list | tuple) and len(item) == 2):
            raise ValueError(
                f"HParams knobs: each item must be a (selector, value) pair, got {item!r} "
                f"in {knobs!r}; e.g. {KNOBS_EXAMPLE}."
            )
        selector, value = item
        _check_selector("HParams knobs", selector)
        if selector in given:
            raise ValueError(
                f"HParams knobs: selector {selector!r} is given twice ({given[selector]} and "
                f"{value}); give each knob one value."
            )
        given[selector] = value
        where = f"HParams knob {selector!r}"
        checked.append((selector, group_number_in(where, value, -math.inf)))
    return tuple(checked)


@fields_checked
@dataclasses.dataclass(frozen=True)
class HParams:
    """How to train one cell.

    ``learning_rate``, ``weight_decay``, ``momentum``, ``label_smoothing``, the
    regularizers' strengths and the knobs' values may differ between the cells of one
    compiled group, which holds them in float32: one beyond its range (``1e39``, inf
    there) is refused (`check_float32`). Everything else is part of the group's signature
    (see `plan_groups`).

    Attributes:
      optimizer: one of ``"adam"``, ``"adamw"``, ``"sgd"``, ``"momentum"``. ``adam``,
        ``sgd`` and ``momentum`` add ``weight_decay * params`` to the gradient (L2);
        ``adamw`` decouples the decay. Either decays every param, biases and norm scales
        too (optax's default, no mask); to penalize kernels alone, give
        ``weight_decay=0`` and ``Regularizer("**/kernel", "l2", strength)``.
      learning_rate: the step size, >= 0 (the peak, under a schedule).
      lr_schedule: ``"constant"``, or ``"cosine"`` / ``"linear"``: after the warmup the
        learning rate decays along half a cosine or a line, reaching 0 just after the
        last update (updates count from 0, as in optax).
      warmup_steps: the learning rate rises linearly from 0 (at the first step) to
        ``learning_rate`` over this many steps, at most ``steps`` (0: no warmup).
      weight_decay: see ``optimizer``.
      momentum: the momentum of ``"momentum"`` (ignored by the others: `plan_groups`
        refuses cells that differ only in it under another optimizer).
      batch_size: examples per step.
      steps: total number of steps. It, ``batch_size``, ``eval_every`` and
        ``warmup_steps`` are ints of at most ``2**31 - 1`` (`INT32_MAX`): the engine
        counts steps and indexes examples in int32 on device.
      eval_every: evaluate on the test split every this many steps, and always after the
        last step (0, or more than ``steps``: only there); one that does not divide
        ``steps`` adds that last evaluation, e.g. steps 7, eval_every 3: after 3, 6 and 7.
      label_smoothing: mass spread uniformly over the classes in the targets, in [0, 1].
      grad_clip: clip gradients to this global norm, > 0 (None: no clipping).
      regularizers: extra penalties (`Regularizer`).
      knobs: ``{selector: value}`` set with `phosjax.set_knobs` before training; a
        mapping is stored as a tuple of pairs. As in `phosjax.set_knobs`, each knob takes
        one value: `init_group` refuses two selectors that match one knob.
      compute_dtype: ``"float32"`` or ``"bfloat16"`` (mixed precision: the forward and
        backward pass see the inputs and params cast to bfloat16; the master params, the
        gradients, the loss and the optimizer stay float32; other collections, e.g.
        ``batch_stats``, are not cast). A data set of integer inputs beyond 256, which
        bfloat16 would round, is refused; in float32, beyond ``2**24``; so is one of float
        inputs beyond the range of the dtype, which would make them inf.

    Examples:
      >>> HParams(learning_rate=1e-2, knobs={"**/T": 2.0}).knobs
      (('**/T', 2.0),)
      >>> HParams(compute_dtype="bfloat16").shared().compute_dtype  # part of the signature
      'bfloat16'
      >>> HParams(lr_schedule="cosine", warmup_steps=100, steps=1000).shared().warmup_steps
      100
      >>> HParams(steps=2**31)
      Traceback (most recent call last):
      ValueError: HParams steps must lie in [1, 2147483647] (...), got 2147483648.
      >>> HParams(learning_rate=1e39)
      Traceback (most recent call last):
      ValueError: HParams learning_rate 1e+39 lies beyond float32's range, the dtype a
      group holds it in, where it would be inf; give a number between ... and 3.40282e+38.
    """

    optimizer: str = "adam"
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    momentum: float = 0.9
    batch_size: int = 128
    steps: int = 1000
    eval_every: int = 0
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    regularizers: tuple[Regularizer, ...] = ()
    knobs: tuple[tuple[str, float], ...] = ()
    compute_dtype: str = "float32"

    def __post_init__(self) -> None:
        refuse_optax_optimizer("HParams optimizer", self.optimizer)
        one_of("HParams optimizer", self.optimizer, OPTIMIZERS)
        _check_compute_dtype(self.compute_dtype)
        one_of("HParams lr_schedule", self.lr_schedule, LR_SCHEDULES)
        for name, least in (
            ("batch_size", 1),
            ("steps", 1),
            ("eval_every", 0),
            ("warmup_steps", 0),
        ):
            where, value = f"HParams {name}", getattr(self, name)
            value = int_at_least(where, value, least, INT32_MAX, hint=INT32_HINT)
            object.__setattr__(self, name, value)
        if self.warmup_steps > self.steps:
            raise ValueError(
                f"HParams warmup_steps {self.warmup_steps} is more than steps {self.steps}: "
                f"warm up over at most {self.steps} steps (the learning rate peaks at the "
                "warmup's end)."
            )
        for name, least, most, hint in (
            *OPTIMIZER_RANGES,
            ("label_smoothing", 0, 1, " (the mass spread over the classes)"),
        ):
            refuse_optax_schedule(f"HParams {name}", getattr(self, name), name)
            number = group_number_in(f"HParams {name}", getattr(self, name), least, most, hint=hint)
            object.__setattr__(self, name, number)
        if self.grad_clip is not None:
            clip = checked_grad_clip("HParams grad_clip", self.grad_clip)
            object.__setattr__(self, "grad_clip", clip)
        object.__setattr__(self, "knobs", _knob_pairs(self.knobs))
        regularizers = _sequence("HParams regularizers", self.regularizers, REGULARIZER_EXAMPLE)
        for i, regularizer in enumerate(regularizers):
            if not isinstance(regularizer, Regularizer):
                raise ValueError(
                    f"HParams regularizers[{i}] must be a Regularizer, got {regularizer!r}; "
                    f"e.g. {REGULARIZER_EXAMPLE}."
                )
        object.__setattr__(self, "regularizers", regularizers)

    @property
    def scheduled(self) -> bool:
        """Whether the learning rate moves during the run (a warmup or a decay): then the
        step reports it as the metric ``lr``.

        Examples:
          >>> HParams().scheduled, HParams(lr_schedule="cosine").scheduled
          (False, True)
        """
        return self.lr_schedule != "constant" or self.warmup_steps > 0

    def shared(self) -> "HParams":
        """These hparams with every per-cell value zeroed: what a compiled group shares;
        its knobs in selector order, as their order means nothing (no two set one knob),
        so cells that give them in other orders share a group.

        Examples:
          >>> shared = HParams(learning_rate=1e-2, knobs={"**/T": 2.0}, steps=50).shared()
          >>> shared.learning_rate, shared.knobs, shared.steps
          (0.0, (('**/T', 0.0),), 50)
          >>> HParams(knobs={"b": 1.0, "a": 2.0}).shared().knobs
          (('a', 0.0), ('b', 0.0))
        """
        return dataclasses.replace(
            self,
            learning_rate=0.0,
            weight_decay=0.0,
            momentum=0.0,
            label_smoothing=0.0,
            regularizers=tuple(r.shared() for r in self.regularizers),
            knobs=tuple((selector, 0.0) for selector, _ in sorted(self.knobs)),
        )


@fields_checked
@dataclasses.dataclass(frozen=True)
class Cell:
    """One model trained on one data set with one set of hparams and one seed.

    Attributes:
      model: a hashable config whose ``.build()`` returns a Flax module called as
        ``module(x, train=...)`` (e.g. `phosjax.models.ModelConfig`).
      dataset: the data set's name (see `phosjax.data.load`).
      hparams: how to train.
      seed: seeds the initialization, the batch order and dropout: an int in
        ``[-2**63, 2**63)`` (int64, what `jax.random.key` takes). Without
        ``jax_enable_x64`` `jax.random.key` keeps its low 32 bits: `plan_groups` and
        `train_grid` refuse two seeds that make one key (e.g. 0 and ``2**32``).

    Examples:
      >>> from phosjax.models import ModelConfig
      >>> cell = Cell(ModelConfig("mlp", 10, (40,)), "mnist1d", HParams(steps=100), seed=1)
      >>> cell.dataset, cell.hparams.steps, cell.seed
      ('mnist1d', 100, 1)
    """

    model: Any
    dataset: str
    hparams: HParams = HParams()
    seed: int = 0

    def __post_init__(self) -> None:
        if not callable(getattr(self.model, "build", None)):
            raise ValueError(
                f"Cell model must be a config with a .build() method, got {self.model!r} "
                f"({type(self.model).__name__}); e.g. phosjax.models.ModelConfig('mlp', "
                "num_classes=10, input_shape=(40,))."
            )
        try:
            hash(self.model)
        except TypeError:
            raise ValueError(
                f"Cell model must be hashable, as cells share a compiled step by their model "
                f"config; got {self.model!r} ({type(self.model).__name__}), which is not: make "
                "it a frozen dataclass (@dataclasses.dataclass(frozen=True)) with hashable "
                "fields, as phosjax.models.ModelConfig is."
            ) from None
        if not isinstance(self.hparams, HParams):
            raise ValueError(
                f"Cell hparams must be an HParams, got {self.hparams!r}; e.g. "
                "HParams(learning_rate=1e-3, steps=100)."
            )
        if not isinstance(self.dataset, str):
            raise ValueError(f"Cell dataset must be a data set's name, got {self.dataset!r}.")
        if is_int(self.seed) and not -(2**63) <= self.seed < 2**63:
            raise ValueError(
                f"Cell seed must lie in [-2**63, 2**63) (int64, the seeds jax.random.key "
                f"takes), got {self.seed}."
            )
        object.__setattr__(self, "seed", int_at_least("Cell seed", self.seed, -(2**63)))

    def signature(self) -> tuple[Any, ...]:
        """What must be equal for two cells to share one compiled step.

        Examples:
          >>> from phosjax.models import ModelConfig
          >>> model = ModelConfig("mlp", 10, (40,))
          >>> a = Cell(model, "mnist1d", HParams(learning_rate=1e-3), seed=0)
          >>> b = Cell(model, "mnist1d", HParams(learning_rate=1e-2), seed=1)
          >>> c = Cell(model, "mnist1d", HParams(batch_size=64), seed=0)
          >>> a.signature() == b.signature(), a.signature() == c.signature()  # c: other shapes
          (True, False)
        """
        return (self.model, self.dataset, self.hparams.shared())
