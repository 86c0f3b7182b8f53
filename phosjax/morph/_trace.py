"""Following channels through a model's jaxpr: which axes are tied, and what uses them.

`trace` walks the jaxpr of ``apply(variables, *args)`` once, giving every axis of every
value a label (`Labels`). It records, for each variable leaf axis, how it is used
(``in``: contracted against an activation; ``out``: a free axis of a contraction;
``scale``/``bias``: multiplied onto / added to an activation; ``other``), the labels of
every contraction's loop (for FLOPs), and pins the labels that cannot be pruned exactly:
the model's inputs and outputs, reduced, sliced, padded, reversed, pooled, convolved,
indexed (``gather``), written at positions (``dynamic_update_slice``, ``scatter``) and
ranked (``top_k``) and sorted (``sort``) axes, every axis a matrix decomposition gets, outer
products of an axis with itself, and channels that reach a contraction without being zero
when dead. A leaf axis whose zeros would turn non-finite (``k / norm(k)``: 0/0) is
recorded as ``unsafe``: `mask` must not zero it. A loop's body (``scan``) is walked again
until what its carry holds no longer changes (see `_Walker.scan`).
"""

import copy
import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import jax
import numpy as np
from jax.extend import core as jcore

from phosjax.morph._labels import PROD, SUM, Labels
from phosjax.morph._ops import (
    ALL_ZERO,
    ANY_ZERO,
    BITCAST,
    CALL_PRIMITIVES,
    CALLS,
    COMPARE,
    CUMULATIVE,
    DECOMPOSITIONS,
    FIRST_ZERO,
    KEEPS_ZERO,
    LAYOUT,
    LOSES_ZERO,
    POLE_AT_ZERO,
    POWERS,
    REDUCE,
    SCATTERS,
    SHIFTS,
    UNSUPPORTED_HINTS,
    WINDOW,
)

CONSTANT = (
    "a constant: an array the traced function holds outside the variables (closed over, "
    "e.g. batch statistics of a params-only apply, or built from literals), which shrinking "
    "cannot cut; pass it in the variables to prune these channels"
)
"""Why an axis of a constant is pinned."""

ZEROING = frozenset({"out", "scale", "bias"})
"""Kinds of use whose slices `mask` zeroes: a dead channel's output is then zero."""


Sources = frozenset[tuple[int, int]]
"""The leaf axes ``(leaf, axis)`` an axis of a value holds: one for a leaf's axis, several
for an axis of leaves concatenated (``OptimizedLSTMCell``'s four gate kernels), none for
an axis no leaf holds."""

NO_SOURCE: Sources = frozenset()


class UnsupportedOpError(ValueError):
    """The traced model uses an operation whose effect on channels is not known.

    Examples:
      >>> import flax.linen as nn, jax, jax.numpy as jnp
      >>> from phosjax.morph import channel_groups
      >>> halve = lambda h: jax.lax.while_loop(lambda h: jnp.abs(h).max() > 1, lambda h: h / 2, h)
      >>> model = nn.Sequential([nn.Dense(4), halve, nn.Dense(2)])
      >>> x = jnp.ones((1, 3)); variables = model.init(jax.random.key(0), x)
      >>> channel_groups(model, variables, x)
      Traceback (most recent call last):
      ...
      phosjax.morph._trace.UnsupportedOpError: cannot follow channels through while ...
    """


def _keeps_zero(name: str, index: int, value: Any) -> bool:
    """Whether the known operand ``index`` of ``name`` maps a zero of the others to zero:
    ``max(0, c)`` for ``c <= 0``, ``min(0, c)`` for ``c >= 0``, ``clamp(lo, 0, hi)`` for
    ``lo <= 0 <= hi``; ``c == 0`` for the others (``add(0, c)``).

    Examples:
      >>> _keeps_zero("min", 1, 6.0), _keeps_zero("max", 1, 6.0), _keeps_zero("add", 1, 0)
      (True, False, True)
    """
    value = np.asarray(value)
    if name == "max" or (name == "clamp" and index == 0):
        return bool(np.all(value <= 0))
    if name == "min" or (name == "clamp" and index == 2):
        return bool(np.all(value >= 0))
    return bool(np.all(value == 0))


def _bitcast_keeps_zero(eqn: Any) -> bool:
    """Whether the same-width ``bitcast_convert_type`` ``eqn`` maps a zero to zero: zero
    bits are 0 or +0.0, and a float's -0.0 (its sign bit set) is a zero as most other
    floats, but not as an integer or as a float without a -0.0 (``float8_e4m3fnuz``: NaN).
    A float's NaN, which a dead channel holds where every channel does (a gather's NaN
    fill), must stay a NaN (or become 0): a float16 NaN's bits are a finite bfloat16.

    Examples:
      >>> bitcast = lambda to: jax.make_jaxpr(lambda x: jax.lax.bitcast_convert_type(x, to))
      >>> pairs = [("i4", "f4"), ("f4", "i4"), ("float8_e4m3fn", "float8_e4m3fnuz"),
      ...          ("f2", "bfloat16"), ("bfloat16", "f2")]
      >>> [_bitcast_keeps_zero(bitcast(to)(np.zeros(2, x)).eqns[0]) for x, to in pairs]
      [True, False, False, False, True]
    """
    source, target = eqn.invars[0].aval.dtype, eqn.outvars[0].aval.dtype
    if not _has_zero(source, target):
        return False
    if not jax.numpy.issubdtype(source, jax.numpy.inexact) or source == target:
        return True
    # every NaN of a 16- or 8-bit float (any of them may come in); wider: the usual one
    bits = np.arange(2 ** (8 * source.itemsize)) if source.itemsize <= 2 else np.arange(0)
    patterns = bits.astype(f"u{source.itemsize}").view(source)
    nans = np.concatenate([patterns[np.isnan(patterns)], np.array([np.nan]).astype(source)])
    cast = nans.view(target)
    return bool(np.all(np.isnan(cast) | (cast == 0)))


def _convert_keeps_nan(eqn: Any) -> bool:
    """Whether the ``convert_element_type`` ``eqn`` keeps a float's NaN, which a dead channel
    holds where every channel does (a gather's NaN fill, as for an id out of range of
    ``nn.Embed``; a NaN input), a NaN or makes it 0 (an integer), not True (a bool).

    Examples:
      >>> convert = lambda x, to: jax.make_jaxpr(lambda x: x.astype(to))(x).eqns[0]
      >>> pairs = [("f4", bool), ("f4", "i4"), ("i4", bool), ("f4", "f2")]
      >>> [_convert_keeps_nan(convert(np.ones(2, x), to)) for x, to in pairs]
      [False, True, True, True]
    """
    source, target = eqn.invars[0].aval.dtype, eqn.outvars[0].aval.dtype
    floating = jax.numpy.issubdtype(source, jax.numpy.inexact)
    if target == np.bool_:
        return not floating
    if not jax.numpy.issubdtype(target, jax.numpy.inexact):
        return True  # XLA casts a NaN to the integer 0
    nans = np.array([np.nan] if floating else []).astype(target)
    return bool(np.all(np.isnan(nans) | (nans == 0)))


def _has_zero(dtype: Any, bits_as: Any = None) -> bool:
    """Whether 0 and -0.0 cast to ``dtype`` (then their bits read as ``bits_as``) are zeros:
    ``float8_e8m0fnu`` has none (NaN), and a float's -0.0 read as an integer is not 0.

    Examples:
      >>> _has_zero(np.float32), _has_zero(np.int8), _has_zero(jax.numpy.float8_e8m0fnu)
      (True, True, False)
      >>> _has_zero(np.int32, np.float32), _has_zero(np.float32, np.int32)
      (True, False)
    """
    zeros = np.array([0.0, -0.0]).astype(dtype)
    return bool(np.all((zeros if bits_as is None else zeros.view(bits_as)) == 0))


def _zero_rule(eqn: Any) -> tuple[bool, bool]:
    """``(keeps, moves)`` for the elementwise ``eqn``: whether it maps what a dead channel
    holds to zero (`KEEPS_ZERO`; a bitcast or cast only where its zeros and NaNs stay), and
    whether it only moves its operand's data, whose leaf its output then is (`LAYOUT`; a cast
    only to a dtype with a zero: `mask`'s zeros cast to ``float8_e8m0fnu`` are NaN).

    Examples:
      >>> convert = lambda to: jax.make_jaxpr(lambda x: x.astype(to))(np.ones(2, "f4")).eqns[0]
      >>> [_zero_rule(convert(to)) for to in ("i4", bool, jax.numpy.float8_e8m0fnu)]
      [(True, True), (False, True), (False, False)]
    """
    name = eqn.primitive.name
    if name == BITCAST:
        return _bitcast_keeps_zero(eqn), False
    if name != "convert_element_type":
        return name in KEEPS_ZERO, name in LAYOUT
    moves = _has_zero(eqn.outvars[0].aval.dtype)
    return moves and _convert_keeps_nan(eqn), moves


def _fills_nonzero(eqn: Any) -> bool:
    """Whether the ``gather`` ``eqn`` fills a position an index misses with a number that is
    not zero (``jnp.take(h, idx, mode="fill", fill_value=1.0)``; an integer's default is
    its minimum). A NaN (``nn.Embed``'s) fills every channel of that position alike.

    Examples:
      >>> take = lambda fill: jax.make_jaxpr(
      ...     lambda h: h.at[np.array([0, 9])].get(mode="fill", fill_value=fill)
      ... )(np.ones((3, 4))).eqns[-1]
      >>> [_fills_nonzero(take(fill)) for fill in (1.0, 0.0, None)]
      [True, False, False]
    """
    if eqn.params["mode"] != jax.lax.GatherScatterMode.FILL_OR_DROP:
        return False
    fill, dtype = eqn.params["fill_value"], eqn.outvars[0].aval.dtype
    if fill is None:
        return not jax.numpy.issubdtype(dtype, jax.numpy.inexact)
    return bool(fill != 0 and not np.isnan(fill))


@dataclasses.dataclass
class Value:
    """What the trace knows about one value: a label per axis, and more."""

    labels: list[int]
    zeros: frozenset[int] = frozenset()  # labels whose dead channels are zero here
    src: list[Sources] | None = None  # per axis, if a reshaped or concatenated leaf
    data: bool = False  # depends on the model's inputs
    made_by: frozenset[tuple[int, int]] = frozenset()  # leaf axes that produced it ("out")
    scales: frozenset[int] = frozenset()  # leaves multiplied into it as a scale
    known: Any = None  # its value, if a literal or constant (or one converted)
    poles: frozenset[int] = frozenset()  # labels whose dead channels may be inf or NaN here
    zeroed_by: frozenset[tuple[int, int]] = frozenset()  # zeroed leaf axes behind its zeros


@dataclasses.dataclass
class Trace:
    """The facts `trace` gathers (see the module docstring)."""

    labels: Labels
    leaf_labels: list[list[int]]
    kinds: dict[tuple[int, int], set[str]]
    ops: list[tuple[str, list[int], tuple[int, ...]]]
    """``(primitive, labels of its loop, steps)`` per contraction: its multiply-adds are the
    product of the labels' sizes (a loop's steps are one of them), and it runs once per
    step of each loop around it, whose steps are labelled ``steps``."""
    normalized: dict[tuple[int, int], set[int]] = dataclasses.field(default_factory=dict)
    """``{producer leaf axis: scale leaves}``: the scales multiplied onto its output."""
    made: set[int] = dataclasses.field(default_factory=set)
    """Labels of axes the model makes (a broadcast's new axis, a unit axis): no variable
    holds their channels, so only a kernel that produces them can remove them."""
    unsafe: set[tuple[int, int]] = dataclasses.field(default_factory=set)
    """Zeroed leaf axes whose zeros reach an op that makes them inf or NaN (a divisor,
    ``rsqrt``, ``log``: weight normalization's ``k / norm(k)``); `mask` must not zero them."""
    reshaped: dict[tuple[int, int], str] = dataclasses.field(default_factory=dict)
    """``{leaf axis: where}`` for leaf axes a reshape splits or merges (a kernel stored flat):
    how they are used after it, say as a kernel's output channels, is not recorded."""
    input_labels: list[list[int]] = dataclasses.field(default_factory=list)
    """The labels of each input's axes (the leaves of ``args``)."""
    unread: list[int] = dataclasses.field(default_factory=list)
    """The leaves that nothing the outputs need reads (a statistic only training updates)."""


def _operand_kind(name: str, index: int, operands: int) -> str:
    """How the elementwise op ``name`` uses its operand ``index`` among ``operands``.

    A divisor is ``"other"``: sliced by `shrink` but never zeroed by `mask` (x / 0).
    """
    if operands < 2:
        return "other"
    if name == "mul" or (name == "div" and index == 0):
        return "scale"
    return "bias" if name in ("add", "sub") else "other"


def _place(eqn: Any) -> str:
    """Where user code runs ``eqn`` (``file:line (function)``); empty inside a function jax
    compiled (``jnp.sort``, ``jnp.linalg.norm``), whose lines are all jax's. Where they are
    all a library's (a Flax layer's), the innermost line is morph's own call of the model:
    the Flax module is named instead (``module Sequential/layers_2``)."""
    try:
        from jax._src import source_info_util

        frame = source_info_util.user_frame(eqn.source_info.traceback)
        if frame is not None and os.path.dirname(frame.file_name) == os.path.dirname(__file__):
            stack = str(eqn.source_info.name_stack)
            return f"module {stack}" if stack else ""
        return source_info_util.summarize(eqn.source_info)
    except Exception:  # the location is a courtesy; the primitive name is what matters
        return "?"


def _carry(
    value: Value, labels: list[int], zeros: frozenset[int], src: list[Sources] | None
) -> Value:
    """A value with new ``labels``, ``zeros`` and ``src`` and ``value``'s provenance."""
    return Value(
        labels,
        zeros,
        src,
        value.data,
        value.made_by,
        value.scales,
        poles=value.poles,
        zeroed_by=value.zeroed_by,
    )


def _joined(
    values: Sequence[Value],
    labels: list[int],
    zeros: set[int],
    src: list[Sources] | None = None,
    known: Any = None,
    poles: set[int] | None = None,
) -> Value:
    """A value computed from ``values``, with ``labels``, ``zeros``, ``src`` and ``known``
    and their provenance joined (what `_carry` keeps of one value); the ``poles`` of every
    value stay poles, and so do ``poles``."""
    made_by = frozenset().union(*(v.made_by for v in values))
    scales = frozenset().union(*(v.scales for v in values))
    zeroed_by = frozenset().union(*(v.zeroed_by for v in values))
    all_poles = frozenset().union(*(v.poles for v in values), poles or ())
    data = any(v.data for v in values)
    return Value(labels, frozenset(zeros), src, data, made_by, scales, known, all_poles, zeroed_by)


def _contracted(
    lhs: Value, rhs: Value, labels: list[int], zeros: set[int], made_by: frozenset[Any]
) -> Value:
    """The output of a contraction of ``lhs`` and ``rhs`` (a fresh value, no leaf): their
    poles and zeroed leaf axes stay with it."""
    data = lhs.data or rhs.data
    poles, zeroed_by = lhs.poles | rhs.poles, lhs.zeroed_by | rhs.zeroed_by
    return Value(labels, frozenset(zeros), None, data, made_by, poles=poles, zeroed_by=zeroed_by)


def _finite(known: Sequence[Any]) -> bool:
    """Whether each of the ``known`` values (None: not known) is finite: ``0 * inf`` is NaN,
    so a dead channel multiplied with ``jnp.inf`` is not zero."""
    return all(np.all(np.isfinite(k)) for k in known if k is not None)


def _without_zeros_times_inf(lhs: Value, rhs: Value) -> tuple[Value, Value]:
    """``lhs`` and ``rhs``, each without its zeros where either is a known value that is not
    `_finite`, a dead channel multiplied with it (then summed or not, by a contraction or a
    convolution) not zero."""
    if _finite([lhs.known, rhs.known]):
        return lhs, rhs
    return dataclasses.replace(lhs, zeros=frozenset()), dataclasses.replace(rhs, zeros=frozenset())


def _produced(value: Value, free: Sequence[bool]) -> frozenset[tuple[int, int]]:
    """The leaf axes of ``value`` (a kernel) that a contraction leaves free ("out")."""
    if value.src is None:
        return frozenset()
    return NO_SOURCE.union(*(s for s, f in zip(value.src, free, strict=True) if f))


def _with_scales(value: Value) -> Value:
    """``value`` as a ``mul`` operand: a leaf multiplied on is a scale."""
    if value.src is None:
        return value
    leaves = {leaf for sources in value.src for leaf, _ in sources}
    return dataclasses.replace(value, scales=value.scales | leaves)


def _exponent(eqn: Any, ins: Sequence[Value | None]) -> float | None:
    """The smallest exponent of a power (`POWERS`), if known and real: ``0 ** y`` is NaN
    for a ``y`` with an imaginary part (``h ** (0.5 + 1j)``), as for an unknown one.

    Examples:
      >>> pow_ = jax.make_jaxpr(lambda h: h**1.5)(1.0).eqns[0]
      >>> [_exponent(pow_, [None, Value([], known=np.array(y))]) for y in ([1.5, -2], 2j)]
      [-2.0, None]
    """
    if eqn.primitive.name == "integer_pow":
        return float(eqn.params["y"])
    known = ins[1].known if len(ins) > 1 and ins[1] is not None else None
    if known is None or np.any(np.imag(known) != 0):
        return None
    return float(np.min(np.real(known)))


def _stacked(src: list[Sources] | None) -> list[Sources] | None:
    """The leaf axes of a loop's stacked output, from those of its step's ``src``."""
    return None if src is None else [NO_SOURCE, *src]


def _needed(jaxpr: Any) -> tuple[list[bool], set[Any]]:
    """For each equation of ``jaxpr``, whether the outputs need it (XLA drops the others);
    and the variables they need (the inputs among them are the ones read)."""
    needed = {v for v in jaxpr.outvars if not isinstance(v, jcore.Literal)}
    live = []
    for eqn in reversed(jaxpr.eqns):
        live.append(any(v in needed for v in eqn.outvars))
        if live[-1]:
            needed.update(v for v in eqn.invars if not isinstance(v, jcore.Literal))
    return live[::-1], needed


def _taps_off_inserted_zeros(eqn: Any) -> int:
    """How many (output position, window tap) pairs of the convolution ``eqn`` read an
    input element or its padding, not a zero its ``lhs_dilation`` inserts between input
    elements (a transposed convolution's stride): only those multiply-add something.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> conv = lambda x, k: jax.lax.conv_general_dilated(x, k, (1,), [(1, 1)], (2,))
      >>> eqn = jax.make_jaxpr(conv)(jnp.ones((1, 1, 3)), jnp.ones((1, 1, 3))).eqns[0]
      >>> _taps_off_inserted_zeros(eqn)  # of 5 outputs x 3 taps: 7 on the inputs, 2 on the padding
      9
    """
    p = eqn.params
    lhs_spec, rhs_spec, out_spec = p["dimension_numbers"]
    inside, real, every = [], [], []
    for d in range(len(lhs_spec) - 2):
        n = eqn.invars[0].aval.shape[lhs_spec[d + 2]]
        k = eqn.invars[1].aval.shape[rhs_spec[d + 2]]
        outputs = eqn.outvars[0].aval.shape[out_spec[d + 2]]
        low, dilation = p["padding"][d][0], p["lhs_dilation"][d]
        position = (
            np.arange(outputs)[:, None] * p["window_strides"][d]
            + np.arange(k)[None, :] * p["rhs_dilation"][d]
            - low
        )
        within = (position >= 0) & (position <= (n - 1) * dilation)
        inside.append(int(within.sum()))
        real.append(int((within & (position % dilation == 0)).sum()))
        every.append(outputs * k)
    # a tap reads an inserted zero where it lies within the dilated input on every axis and
    # between two of its elements on some axis
    return int(np.prod(every) - np.prod(inside) + np.prod(real))


class _Walker:
    def __init__(self, num_leaves: int, zeroing: set[tuple[int, int]] | None) -> None:
        self.labels = Labels()
        self.kinds: dict[tuple[int, int], set[str]] = {}
        self.ops: list[tuple[str, list[int], tuple[int, ...]]] = []
        self.normalized: dict[tuple[int, int], set[int]] = {}
        self.zeroing = zeroing
        self.num_leaves = num_leaves
        self.made: set[int] = set()
        self.unsafe: set[tuple[int, int]] = set()
        self.reshaped: dict[tuple[int, int], str] = {}
        self.scopes: list[str] = []  # the name stacks of the calls being walked
        self.places: list[str] = []  # where in user code those calls are (`_place`)

    def where(self, eqn: Any) -> str:
        """``eqn``'s primitive and where user code runs it: its own line, else (inside a
        function jax compiled, ``jnp.sort``) that of the innermost call that has one."""
        place = _place(eqn) or next((p for p in reversed(self.places) if p), "")
        return f"{eqn.primitive.name} ({place})" if place else eqn.primitive.name

    def leaf(self, index: int, labels: list[int]) -> Value:
        """Leaf ``index`` as `mask` leaves it: zero on its dead channels along the axes in
        ``zeroing`` wherever it goes, a reduction too (``k / k.sum(0)`` is 0/0), not only
        where a use records them (none in a first pass, which decides ``zeroing``)."""
        src = [frozenset({(index, a)}) for a in range(len(labels))]
        zeroed = {(index, a) for a in range(len(labels)) if (index, a) in (self.zeroing or ())}
        zeros = frozenset(labels[a] for _, a in zeroed)
        return Value(labels, zeros, src, zeroed_by=frozenset(zeroed))

    def make(self, size: int) -> int:
        """A fresh label for an axis the model makes (see `Trace.made`)."""
        label = self.labels.new(size)
        self.made.add(label)
        return label

    def atoms(self, label: int) -> set[int]:
        root = self.labels.find(label)
        found = {root}
        for child in self.labels.parts.get(root, (None, ()))[1]:
            found |= self.atoms(child)
        return found

    def zero_atoms(self, value: Value) -> set[int]:
        """The atoms whose dead channels are zero in ``value`` (not inf or NaN)."""
        zeros = set().union(*(self.atoms(z) for z in value.zeros))
        return zeros - set().union(*(self.atoms(p) for p in value.poles))

    def poles_made(self, eqn: Any, ins: Sequence[Value | None]) -> set[int]:
        """The atoms whose dead channels ``eqn`` makes inf or NaN: the zeros of a divisor,
        or of what ``rsqrt``, ``log`` or a negative power gets. The zeroed leaf axes behind
        them are `Trace.unsafe`."""
        name = eqn.primitive.name
        exponent = _exponent(eqn, ins)
        negative_power = name in POWERS and (exponent is None or exponent < 0)
        if name in FIRST_ZERO:
            source = ins[1]
        elif name in POLE_AT_ZERO or negative_power:
            source = ins[0]
        else:
            return set()
        made = self.zero_atoms(source) if source is not None else set()
        if made:
            self.unsafe |= source.zeroed_by  # type: ignore[union-attr]
        return made

    def use(self, value: Value, kinds: Sequence[str]) -> Value:
        """Records how a leaf's axes are used here; its zeros as `mask` leaves them."""
        if value.src is None:
            return value
        zeros, zeroed_by = set(value.zeros), set(value.zeroed_by)
        for axis, (sources, kind) in enumerate(zip(value.src, kinds, strict=True)):
            for source in sources:
                self.kinds.setdefault(source, set()).add(kind)
            zeroed = kind in ZEROING if self.zeroing is None else sources <= self.zeroing
            if sources and zeroed:
                zeros.add(value.labels[axis])
                zeroed_by |= sources
        return dataclasses.replace(value, zeros=frozenset(zeros), zeroed_by=frozenset(zeroed_by))

    def check_contraction(self, label: int, sides: Sequence[Value], where: str) -> None:
        for atom in self.atoms(label):
            if atom in self.labels.pinned or atom in self.labels.parts:
                continue
            if not any(atom in self.zero_atoms(side) for side in sides):
                reason = f"{where} sums over channels that are not zero when dead"
                self.labels.pin(atom, reason)

    def product_zeros(
        self, zero_axes: dict[int, dict[int, list[int]]], labels: list[int]
    ) -> set[int]:
        """The atoms a product (``mul``, ``and``, a ``dot_general``'s terms: ``zero_axes`` of
        its operands, its output's ``labels``) is zero along every axis carrying them, though
        no operand need be (`covering` drops them): each axis is one operand's, and a product
        is zero where one factor is. A dead channel is a zero row and a zero column of
        ``h[:, :, None] * h[:, None, :]``, as of ``jnp.einsum("bi,bj->bij", h, h)``; of
        ``jnp.einsum("bi,bj->bij", h, g)`` a zero row only, unless ``g`` is zero there too."""
        covered: dict[int, list[set[int]]] = {}
        for axes_of in zero_axes.values():
            for atom, axes in axes_of.items():
                covered.setdefault(self.labels.find(atom), []).append(set(axes))
        zeros: set[int] = set()
        for root, sides in covered.items():
            carrying = {k for k, label in enumerate(labels) if root in self.atoms(label)}
            if set().union(*sides) == carrying:
                zeros.add(root)
        return zeros

    def pinned_axis(self, label: int, reason: str, size: int) -> int:
        self.labels.pin(label, reason)
        return self.labels.new(size, reason)

    # -- primitives -------------------------------------------------------------------

    def elementwise(self, eqn: Any, ins: list[Value | None], known: list[Any]) -> Value:
        name, where = eqn.primitive.name, self.where(eqn)
        shape = eqn.outvars[0].aval.shape
        operands = {
            i: v for i, v in enumerate(ins) if v is not None and len(v.labels) == len(shape)
        }
        used = {
            i: self.use(v, self.operand_kinds(v, shape, _operand_kind(name, i, len(operands))))
            if v.src
            else v
            for i, v in operands.items()
        }
        zero_axes = {i: self.zero_axes(v) for i, v in used.items()}
        labels = []
        for axis, size in enumerate(shape):
            carried = [
                v.labels[axis] for v in used.values() if self.labels.size[v.labels[axis]] == size
            ]
            for other in carried[1:]:
                self.labels.union(carried[0], other, where)
            labels.append(carried[0] if carried else self.make(size))
        products = self.product_zeros(zero_axes, labels) if name in ANY_ZERO else set()
        used = {i: self.covering(v, zero_axes[i], labels) for i, v in used.items()}
        full = list(used.values())
        args = [used.get(i, v) for i, v in enumerate(ins)]
        cases = full[1:] if name == "select_n" else full
        zeros: set[int]
        keeps, moves = _zero_rule(eqn)
        if name in ANY_ZERO and not _finite(known):
            zeros = set()  # h * jnp.inf is NaN where h is dead
        elif name in ANY_ZERO:
            zeros = set().union(*(self.zero_atoms(v) for v in cases), products)
        elif name in ALL_ZERO:
            zeros = self.all_zero(name, args, known)
            if name == "select_n":
                zeros |= self.first_picked(args, known)
        elif name in FIRST_ZERO | SHIFTS:
            zeros = self.zero_atoms(args[0]) if args[0] is not None else set()
        elif name in COMPARE:
            floating = jax.numpy.issubdtype(eqn.invars[0].aval.dtype, jax.numpy.inexact)
            zeros = self.compared(name, args, known, floating)
        elif name in POWERS:  # 0 ** y is 0 for y > 0 (h ** 2, h ** 1.5)
            exponent = _exponent(eqn, args)
            positive = exponent is not None and exponent > 0 and args[0] is not None
            zeros = self.zero_atoms(args[0]) if positive else set()  # type: ignore[arg-type]
        elif keeps:
            zeros = self.zero_atoms(full[0]) if full else set()
        else:
            zeros = set()
        single = ins[0] if len(ins) == 1 else None
        src = single.src if single is not None and moves else None
        parts = [v.src for v in ins if v is not None and v.src is not None]
        if name == "complex" and len(parts) == len(ins):
            # a kernel of two leaves, ``lax.complex(wr, wi)``: an axis holds both's, or
            # none where a part holds none (`mask` would zero the other's slice alone)
            src = [a | b if a and b else NO_SOURCE for a, b in zip(*parts, strict=True)]
        present = [v for v in args if v is not None]
        if name == "mul":
            present = [_with_scales(v) for v in present]
            self.pair_scales(present)
        value = single.known if single is not None and moves else None
        return _joined(present, labels, zeros, src, value, self.poles_made(eqn, args))

    def zero_axes(self, value: Value) -> dict[int, list[int]]:
        """``{atom: the axes of value that carry it}`` for each atom zero in ``value``."""
        return {
            atom: [k for k, label in enumerate(value.labels) if atom in self.atoms(label)]
            for atom in self.zero_atoms(value)
        }

    def covering(self, value: Value, zero_axes: dict[int, list[int]], labels: list[int]) -> Value:
        """``value``, an elementwise operand, without the zeros that do not cover every axis
        of the output (``labels``) carrying their channels: a dead channel of ``h`` is a zero
        row of ``h[:, :, None] + h[:, None]``, not a zero column (``h_i + h_j``); ``zero_axes``
        are its `zero_axes` before the op tied its axes to the other operands'."""
        partial = set()
        for atom, axes in zero_axes.items():
            root = self.labels.find(atom)
            if axes != [k for k, label in enumerate(labels) if root in self.atoms(label)]:
                partial.add(root)
        if not partial:
            return value
        return dataclasses.replace(value, zeros=frozenset(self.zero_atoms(value) - partial))

    def operand_kinds(self, value: Value, shape: Sequence[int], kind: str) -> list[str]:
        """``kind`` for each axis of an elementwise operand, but ``"other"`` for an axis it
        broadcasts from size 1: that axis holds no channel of the output (a ``(1, C)``
        scale's first axis is no group of one channel)."""
        sizes = [self.labels.size[label] for label in value.labels]
        return [kind if size == n else "other" for size, n in zip(sizes, shape, strict=True)]

    def all_zero(
        self, name: str, operands: Sequence[Value | None], known: Sequence[Any]
    ) -> set[int]:
        """The zeros of an op that is zero only where every operand is (``add``, ``max``,
        ``select_n``'s cases, ...): those every operand carries, but a known operand that
        keeps a zero a zero (see `_keeps_zero`: ``0`` for ``add``, ``6`` for ``min`` as in
        relu6). Any other operand, a scalar param or knob too, is not zero when a channel
        is dead."""
        first = 1 if name == "select_n" else 0  # select_n's predicate picks, it is no case
        cases = [
            self.zero_atoms(v) if v is not None else set()
            for i, (v, value) in enumerate(zip(operands, known, strict=True))
            if i >= first and (value is None or not _keeps_zero(name, i, value))
        ]
        return set.intersection(*cases) if cases else set()

    def compared(
        self, name: str, operands: Sequence[Value | None], known: Sequence[Any], floating: bool
    ) -> set[int]:
        """The zeros (False) of a comparison: where every operand that is not known is zero
        for a dead channel, and the comparison of those zeros with the known operands is
        False (``x > 1``, ``x < -1``; not ``x >= 0``). Of ``floating`` operands, it must be
        False for NaN too, which a dead channel holds where every channel does (a gather's
        NaN fill, ``nn.Embed``'s for an id out of range; a NaN input): not ``x != y``,
        ``jnp.isnan(x)``.

        Examples:
          >>> walker = _Walker(0, None)
          >>> x = Value([walker.labels.new(3)], zeros=frozenset({0}))
          >>> [walker.compared(op, [x, x], [None, 1.0], True) for op in ("gt", "lt", "ne")]
          [{0}, set(), set()]
        """
        unknown = [v for v, value in zip(operands, known, strict=True) if value is None]
        if not unknown or any(v is None for v in unknown):
            return set()
        zeros = set.intersection(*(self.zero_atoms(v) for v in unknown))  # type: ignore[arg-type]
        for fill in (0.0, np.nan) if floating else (0,):
            dead = [np.asarray(fill) if value is None else np.asarray(value) for value in known]
            if np.any(COMPARE[name](*dead)):
                return set()
        return zeros

    def first_picked(self, operands: Sequence[Value | None], known: Sequence[Any]) -> set[int]:
        """The zeros ``select_n`` gets from its first case where its predicate is zero (False)
        for a dead channel, so picks that case: hard_tanh's ``where(x > 1, 1, x)``."""
        predicate, first = operands[0], operands[1]
        if predicate is None or first is None:
            return set()
        if known[1] is not None and np.all(np.asarray(known[1]) == 0):
            return self.zero_atoms(predicate)
        return self.zero_atoms(predicate) & self.zero_atoms(first)

    def pair_scales(self, operands: Sequence[Value]) -> None:
        """Records the scales a ``mul`` puts onto produced channels (e.g. a BatchNorm's).

        A factor carrying scales and only producers the other operand also has (none in
        inference, the same kernel for batch statistics) normalizes that operand.
        """
        for value in operands:
            for factor in operands:
                if factor is value or not factor.scales or not value.made_by:
                    continue
                if factor.made_by <= value.made_by:
                    for producer in value.made_by:
                        self.normalized.setdefault(producer, set()).update(factor.scales)

    def dot_general(self, eqn: Any, lhs: Value, rhs: Value) -> Value:
        where = self.where(eqn)
        (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
        for i, j in (*zip(lc, rc, strict=True), *zip(lb, rb, strict=True)):
            self.labels.union(lhs.labels[i], rhs.labels[j], where)
        lhs = self.use(lhs, ["in" if i in lc else "out" for i in range(len(lhs.labels))])
        rhs = self.use(rhs, ["in" if j in rc else "out" for j in range(len(rhs.labels))])
        lhs, rhs = _without_zeros_times_inf(lhs, rhs)
        for i in lc:
            self.check_contraction(lhs.labels[i], (lhs, rhs), where)
            if lhs.data and rhs.data:  # e.g. attention's query . key
                self.labels.pin(
                    lhs.labels[i],
                    f"{where} contracts two activations over this axis; its size may also "
                    "scale the result (attention's 1/sqrt(head size)), which shrinking changes",
                )
        lfree = [lhs.labels[i] for i in range(len(lhs.labels)) if i not in (*lc, *lb)]
        rfree = [rhs.labels[j] for j in range(len(rhs.labels)) if j not in (*rc, *rb)]
        batch = [lhs.labels[i] for i in lb]
        out = [*batch, *lfree, *rfree]
        lhs_axes = range(len(batch) + len(lfree))  # the axes of out each operand gives
        rhs_axes = [*range(len(batch)), *range(len(batch) + len(lfree), len(out))]
        zero_axes = {
            side: {a: [k for k in axes if a in self.atoms(out[k])] for a in self.zero_atoms(v)}
            for side, (v, axes) in enumerate(((lhs, lhs_axes), (rhs, rhs_axes)))
        }
        # a sum of products: zero where each is, on the axes its operands cover together
        carried = set().union(*(self.atoms(label) for label in out))
        zeros = self.product_zeros(zero_axes, out) & carried
        self.ops.append(("dot_general", [*batch, *lfree, *rfree, *(lhs.labels[i] for i in lc)], ()))
        made_by = _produced(lhs, [i not in (*lc, *lb) for i in range(len(lhs.labels))])
        made_by |= _produced(rhs, [j not in (*rc, *rb) for j in range(len(rhs.labels))])
        return _contracted(lhs, rhs, out, zeros, made_by)

    def conv(self, eqn: Any, lhs: Value, rhs: Value) -> Value:
        where = self.where(eqn)
        if eqn.params["batch_group_count"] != 1:
            self.refuse(
                eqn,
                f"sums over groups of the batch (batch_group_count="
                f"{eqn.params['batch_group_count']}), which phosjax.morph does not follow; "
                "convolve with batch_group_count=1",
            )
        lhs_spec, rhs_spec, out_spec = eqn.params["dimension_numbers"]
        groups = eqn.params["feature_group_count"]
        size = self.labels.size
        lf, ri, ro = lhs.labels[lhs_spec[1]], rhs.labels[rhs_spec[1]], rhs.labels[rhs_spec[0]]
        kinds = ["in"] * len(rhs.labels)
        kinds[rhs_spec[0]] = "out"
        lhs, rhs = _without_zeros_times_inf(lhs, self.use(rhs, kinds))
        out = [0] * len(out_spec)
        out[out_spec[0]] = lhs.labels[lhs_spec[0]]
        for axis in lhs_spec[2:]:
            self.labels.pin(lhs.labels[axis], f"{where} convolves this axis")
        for axis in rhs_spec[2:]:
            self.labels.pin(rhs.labels[axis], f"{where} convolution window")
        for axis in out_spec[2:]:
            out[axis] = self.labels.new(eqn.outvars[0].aval.shape[axis], f"{where} spatial axis")
        zeros = set()
        if groups == 1:
            self.labels.union(lf, ri, where)
            self.check_contraction(lf, (lhs, rhs), where)
            out[out_spec[1]] = ro
            zeros = {a for a in self.zero_atoms(rhs) if a in self.atoms(ro)}
        elif size[ri] == 1 and size[ro] == groups:
            self.labels.union(lf, ro, where)
            out[out_spec[1]] = ro
            zeros = {a for a in self.zero_atoms(lhs) | self.zero_atoms(rhs) if a in self.atoms(ro)}
        else:
            reason = (
                f"{where} is a grouped convolution (feature_group_count={groups}), whose "
                "groups must keep equal sizes; only feature_group_count=1 and a depthwise "
                "convolution (feature_group_count = its input and output features) prune"
            )
            for label in (lf, ri, ro):
                self.labels.pin(label, reason)
            out[out_spec[1]] = self.labels.new(size[ro], reason)
        loop = [*out, ri, *(rhs.labels[axis] for axis in rhs_spec[2:])]
        if any(d != 1 for d in eqn.params["lhs_dilation"]):  # a transposed convolution
            taps = self.labels.new(_taps_off_inserted_zeros(eqn), f"{where} spatial axes")
            loop = [out[out_spec[0]], out[out_spec[1]], ri, taps]
        self.ops.append(("conv_general_dilated", loop, ()))
        made_by = _produced(rhs, [axis == rhs_spec[0] for axis in range(len(rhs.labels))])
        return _contracted(lhs, rhs, out, zeros, made_by)

    def reshape(self, eqn: Any, value: Value) -> Value:
        where, labels = self.where(eqn), self.labels
        if (order := eqn.params.get("dimensions")) is not None:
            self.refuse(
                eqn,
                f"reshapes in the order dimensions={order}, which phosjax.morph does not "
                f"follow; transpose first (jnp.transpose(h, {order})), then reshape",
            )
        old = list(eqn.invars[0].aval.shape)
        new = list(eqn.params["new_sizes"])
        out: list[int] = []
        src: list[Sources] = []
        i = j = 0
        while i < len(old) or j < len(new):
            if i < len(old) and old[i] == 1 and (j == len(new) or new[j] != 1):
                i += 1
                continue
            if j < len(new) and new[j] == 1 and (i == len(old) or old[i] != 1):
                out.append(self.make(1))
                src.append(NO_SOURCE)
                j += 1
                continue
            ii, jj, pi, pj = [i], [j], old[i], new[j]
            while pi != pj:
                if pi < pj:
                    i += 1
                    ii.append(i)
                    pi *= old[i]
                else:
                    j += 1
                    jj.append(j)
                    pj *= new[j]
            i, j = i + 1, j + 1
            merged = value.labels[ii[0]] if len(ii) == 1 else None
            if merged is None:
                merged = labels.compose(PROD, [value.labels[k] for k in ii])
            parts = [merged] if len(jj) == 1 else labels.split(merged, [new[k] for k in jj], where)
            out.extend(parts)
            one_to_one = len(ii) == 1 and len(jj) == 1 and value.src is not None
            if value.src is not None and not one_to_one:
                for source in set().union(*(value.src[k] for k in ii)):
                    self.reshaped.setdefault(source, where)
            src.extend([value.src[ii[0]] if one_to_one else NO_SOURCE] * len(jj))  # type: ignore[index]
        return _carry(value, out, value.zeros, src if value.src is not None else None)

    def broadcast(self, eqn: Any, value: Value) -> Value:
        shape, dims = eqn.params["shape"], eqn.params["broadcast_dimensions"]
        kept = {d: i for i, d in enumerate(dims) if eqn.invars[0].aval.shape[i] == shape[d]}
        labels = [value.labels[kept[d]] if d in kept else self.make(n) for d, n in enumerate(shape)]
        src = [NO_SOURCE] * len(shape)
        for d, i in kept.items():
            src[d] = value.src[i] if value.src is not None else NO_SOURCE
        known = None
        if value.known is not None:  # a literal broadcast is still known: where(x > 0, x, 0)
            expanded = [1] * len(shape)
            for i, d in enumerate(dims):
                expanded[d] = np.shape(value.known)[i]
            known = np.broadcast_to(np.reshape(value.known, expanded), shape)
        # jnp.zeros (an RNN's first state) is zero on whatever channels it meets
        zeros = frozenset(labels) if known is not None and not known.any() else value.zeros
        carried = _carry(value, labels, zeros, src if value.src is not None else None)
        return dataclasses.replace(carried, known=known)

    def permute(self, value: Value, order: Sequence[int]) -> Value:
        src = None if value.src is None else [value.src[i] for i in order]
        return _carry(value, [value.labels[i] for i in order], value.zeros, src)

    def reduce(self, eqn: Any, value: Value) -> Value:
        axes = set(eqn.params["axes"])
        for axis in axes:
            self.labels.pin(value.labels[axis], f"{self.where(eqn)} reduces over this axis")
        keep = [i for i in range(len(value.labels)) if i not in axes]
        zeros = value.zeros if eqn.primitive.name.startswith("reduce_") else frozenset()
        return _carry(value, [value.labels[i] for i in keep], zeros, None)

    def top_k(self, eqn: Any, value: Value) -> list[Value]:
        """``top_k`` (a mixture of experts' routing): which entries win depends on every
        entry along ``axis``, so that axis is pinned, and the ``k`` ranks are a new pinned
        axis. Each row along the other axes is ranked on its own, so those axes carry their
        channels: a dead channel's rows are zeros, and so are their top values; their
        indices are ``0..k-1``, not zero."""
        axis, labels = eqn.params["axis"], list(value.labels)
        reason = f"{self.where(eqn)} ranks along this axis"
        labels[axis] = self.pinned_axis(labels[axis], reason, eqn.params["k"])
        return [_carry(value, labels, value.zeros, None), _carry(value, labels, frozenset(), None)]

    def sort(self, eqn: Any, ins: list[Value]) -> list[Value]:
        """``sort`` (``jnp.sort``, ``jnp.argsort``, ``lax.sort`` of several operands): each
        row along ``dimension`` is sorted on its own by the first ``num_keys`` operands, the
        others permuted alike, so that axis is pinned (as by ``rev``), and the other axes
        carry their channels, tied across the operands. A dead channel's rows are sorted
        by its own keys: the first operand's output is zero where it is, its rows that are
        NaN in every channel (a gather's fill) last in each. The others' are not: keys that
        differ from channel to channel move such a row to another place in each, and a
        dead channel's NaN there is NaN where a live one's is not. ``argsort``'s indices
        are an ``iota``'s, whose axes are all pinned: so are those tied to them.

        Examples:
          >>> eqn = jax.make_jaxpr(lambda h: jax.lax.sort(h, dimension=0))(np.ones((3, 4))).eqns[0]
          >>> walker = _Walker(0, None)
          >>> h = Value([walker.labels.new(3), walker.labels.new(4)], zeros=frozenset({1}))
          >>> [out] = walker.sort(eqn, [h])
          >>> out.labels[1] == 1, out.zeros, sorted(walker.labels.pinned)
          (True, frozenset({1}), [0, 2])
        """
        where, axis = self.where(eqn), eqn.params["dimension"]
        for k, label in enumerate(ins[0].labels):
            for value in ins[1:]:
                self.labels.union(label, value.labels[k], where)
        reason = f"{where} sorts along this axis"
        size = self.labels.size[ins[0].labels[axis]]
        labels = list(ins[0].labels)
        labels[axis] = self.pinned_axis(labels[axis], reason, size)
        return [
            _carry(value, list(labels), value.zeros if k == 0 else frozenset(), None)
            for k, value in enumerate(ins)
        ]

    def gather(self, eqn: Any, operand: Value, indices: Value) -> Value:
        """``gather`` (``nn.Embed``, ``jnp.take``, ``h[:, idx]``) reads as a contraction
        with a one-hot matrix: the axes it indexes (or slices) are pinned, and an axis it
        takes whole (indexed too, in a vmapped ``dynamic_slice``: its start can only be 0)
        carries its channels to its output axis, as a kernel's free axis (an
        embedding table's features are ``out``: `mask` zeroes a dead channel's column).
        The output's other axes are the indices' (their last axis holds the positions).

        Examples:
          >>> table, ids = np.ones((10, 4)), np.zeros((2, 3), int)
          >>> eqn = jax.make_jaxpr(lambda t, i: t[i])(table, ids).eqns[-1]
          >>> walker = _Walker(1, None)
          >>> operand = walker.leaf(0, [walker.labels.new(10), walker.labels.new(4)])
          >>> indices = Value([walker.labels.new(2), walker.labels.new(3), walker.make(1)])
          >>> out = walker.gather(eqn, operand, indices)
          >>> out.labels == [*indices.labels[:2], operand.labels[1]], walker.kinds
          (True, {(0, 0): {'in'}, (0, 1): {'out'}})
        """
        numbers, sizes = eqn.params["dimension_numbers"], eqn.params["slice_sizes"]
        skipped = {*numbers.collapsed_slice_dims, *numbers.operand_batching_dims}
        whole = [d not in skipped and sizes[d] == n for d, n in enumerate(eqn.invars[0].aval.shape)]
        reason = f"{self.where(eqn)} indexes this axis"
        for label, keep in zip(operand.labels, whole, strict=True):
            if not keep:
                self.labels.pin(label, reason)
        operand = self.use(operand, ["out" if keep else "in" for keep in whole])
        offsets = [
            label if keep else self.pinned_axis(label, reason, sizes[d])
            for d, (label, keep) in enumerate(zip(operand.labels, whole, strict=True))
            if d not in skipped
        ]
        batch = iter(indices.labels[:-1])
        labels = [
            offsets[numbers.offset_dims.index(axis)] if axis in numbers.offset_dims else next(batch)
            for axis in range(len(eqn.outvars[0].aval.shape))
        ]
        carried = set().union(*(self.atoms(label) for label in offsets))
        zeros = set() if _fills_nonzero(eqn) else self.zero_atoms(operand) & carried
        return _contracted(operand, indices, labels, zeros, _produced(operand, whole))

    def decomposed(self, eqn: Any, ins: list[Value]) -> list[Value]:
        """A matrix decomposition or solve (`DECOMPOSITIONS`: ``jnp.linalg.svd`` in a
        spectral norm, ``eigh``, ``solve_triangular``...) mixes every entry of its
        operands, and its outputs' sizes follow theirs: every axis of the operands is
        pinned, so the masked and the shrunk model decompose the same matrices, and the
        outputs get new pinned axes."""
        reason = f"{self.where(eqn)} decomposes or solves with matrices over this axis"
        for value in ins:
            for label in value.labels:
                self.labels.pin(label, reason)
        return [
            _joined(ins, [self.labels.new(n, reason) for n in out.aval.shape], set())
            for out in eqn.outvars
        ]

    def concatenate(self, eqn: Any, ins: list[Value]) -> Value:
        """``concatenate``: the concatenated axis is the sum of the operands', the others
        are tied. Leaves concatenated (``OptimizedLSTMCell``'s gate kernels and biases)
        are still leaves: each axis holds the leaf axes of every operand, so a contraction
        records their uses as it does a single kernel's."""
        where, axis = self.where(eqn), eqn.params["dimension"]
        labels = []
        for k in range(len(ins[0].labels)):
            if k == axis:
                labels.append(self.labels.compose(SUM, [v.labels[k] for v in ins]))
                continue
            for v in ins[1:]:
                self.labels.union(ins[0].labels[k], v.labels[k], where)
            labels.append(ins[0].labels[k])
        along = set().union(*(self.zero_atoms(v) & self.atoms(v.labels[axis]) for v in ins))
        across = set.intersection(*(self.zero_atoms(v) for v in ins)) - along
        src = None
        if all(v.src is not None for v in ins):
            src = [NO_SOURCE.union(*(v.src[k] for v in ins)) for k in range(len(labels))]  # type: ignore[index]
        return _joined(ins, labels, along | across, src)

    def stack(self, eqn: Any, ins: list[Value]) -> Value:
        """``stack``: the operands' axes are tied; the new axis holds no channels."""
        where = self.where(eqn)
        for k, label in enumerate(ins[0].labels):
            for v in ins[1:]:
                self.labels.union(label, v.labels[k], where)
        labels = list(ins[0].labels)
        labels.insert(eqn.params["axis"], self.make(len(ins)))
        return _joined(ins, labels, set.intersection(*(self.zero_atoms(v) for v in ins)))

    def split(self, eqn: Any, value: Value) -> list[Value]:
        """``split`` (``jnp.split``, glu's halves): the axis is cut into consecutive pieces,
        one label each, as a concatenation's operands; a leaf's axis keeps its source.

        The model's code fixes how it splits, read here as equal sections
        (``jnp.split(h, 2)``): the pieces are tied, so each loses the same channels and
        the shrunk axis still splits into them. Pieces of unequal sizes are pinned.
        """
        axis, where = eqn.params["axis"], self.where(eqn)
        sizes = [int(n) for n in eqn.params["sizes"]]
        if len(set(sizes)) > 1:
            reason = f"{where} splits this axis into pieces of unequal sizes {sizes}"
            self.labels.pin(value.labels[axis], reason)
        pieces = self.labels.split(value.labels[axis], sizes, where, kind=SUM)
        for piece in pieces[1:]:
            self.labels.union(pieces[0], piece, where)
        labels = [[*value.labels[:axis], piece, *value.labels[axis + 1 :]] for piece in pieces]
        return [_carry(value, piece, value.zeros, value.src) for piece in labels]

    def cut(self, eqn: Any, value: Value, keeps: Sequence[bool], zeros: bool, what: str) -> Value:
        """``slice``/``pad``/``rev``/``tile``/``fft``/pooling: the axes ``what`` changes
        (``keeps`` false) are pinned, the others carry; ``zeros``: a dead channel stays zero."""
        reason = f"{self.where(eqn)} {what} this axis"
        shape = eqn.outvars[0].aval.shape
        out = [
            label if keep else self.pinned_axis(label, reason, size)
            for label, keep, size in zip(value.labels, keeps, shape, strict=True)
        ]
        src = None  # a leaf that lost its zeros is no kernel `mask` could zero through
        if value.src is not None and zeros:
            src = [s if keep else NO_SOURCE for s, keep in zip(value.src, keeps, strict=True)]
        return _carry(value, out, value.zeros if zeros else frozenset(), src)

    def written(self, eqn: Any, operand: Value, update: Value, spans: dict[int, int]) -> Value:
        """``update`` written into ``operand`` (``dynamic_update_slice``: a buffer written in
        a loop; ``scatter``: ``x.at[idx].set``): an axis ``d`` of the operand whose update
        axis ``spans[d]`` spans it whole carries its channels, tied to the update's; every
        other axis of both is written at positions, and pinned. A dead channel is zero
        where the operand and the update both are (not where a function is applied:
        ``x.at[idx].apply(jnp.cos)``)."""
        where, shape = self.where(eqn), eqn.outvars[0].aval.shape
        reason = f"{where} writes at positions along this axis"
        whole = {d: k for d, k in spans.items() if self.labels.size[update.labels[k]] == shape[d]}
        for k, label in enumerate(update.labels):
            if k not in whole.values():
                self.labels.pin(label, reason)
        labels = []
        for d, (label, size) in enumerate(zip(operand.labels, shape, strict=True)):
            if d in whole:
                self.labels.union(label, update.labels[whole[d]], where)
                labels.append(label)
            else:
                labels.append(self.pinned_axis(label, reason, size))
        applied = eqn.primitive.name == "scatter" and eqn.params["update_jaxpr"] is not None
        zeros = set() if applied else self.zero_atoms(operand) & self.zero_atoms(update)
        return _joined([operand, update], labels, zeros)

    def scatter(self, eqn: Any, operand: Value, indices: Value | None, update: Value) -> Value:
        """``scatter`` and its kin (`SCATTERS`): the operand's window axes (neither
        inserted nor batched) take the update's window axes in order (see `written`: one
        it spans whole, indexed too, starts at 0: a vmapped ``dynamic_update_slice``); the
        axes of ``indices`` hold positions, and are pinned (a dead channel's index 0 still
        writes)."""
        reason = f"{self.where(eqn)} writes at the positions this axis holds"
        for label in indices.labels if indices is not None else ():
            self.labels.pin(label, reason)
        numbers = eqn.params["dimension_numbers"]
        skipped = {*numbers.inserted_window_dims, *numbers.operand_batching_dims}
        window = [d for d in range(len(operand.labels)) if d not in skipped]
        spans = dict(zip(window, numbers.update_window_dims, strict=True))
        return self.written(eqn, operand, update, spans)

    def window(self, eqn: Any, ins: list[Value]) -> list[Value]:
        """``reduce_window*`` (pooling): axes the window spans are pinned, the others
        carry. A sum keeps a dead channel zero; a max or min does where every window
        holds a real element (the padding is ``-inf``); a custom combiner does not."""
        p, name = eqn.params, eqn.primitive.name
        spans = list(
            zip(
                p["window_dimensions"],
                p["window_strides"],
                p["padding"],
                p["base_dilation"],
                p["window_dilation"],
                strict=True,
            )
        )
        keeps = [span == (1, 1, (0, 0), 1, 1) for span in spans]
        every_window_real = all(
            bd == 1 and wd == 1 and lo < w and hi < w for w, _, (lo, hi), bd, wd in spans
        )
        zeros = name == "reduce_window_sum" or (
            name in ("reduce_window_max", "reduce_window_min") and every_window_real
        )
        operands = ins[: len(eqn.outvars)]
        for k, keep in enumerate(keeps):  # a custom combiner may mix its operands
            for v in operands[1:] if keep else ():
                self.labels.union(operands[0].labels[k], v.labels[k], self.where(eqn))
        return [self.cut(eqn, v, keeps, zeros, "pools over") for v in operands]

    # -- loops ----------------------------------------------------------------------

    def scan(self, eqn: Any, args: list[Value]) -> list[Value]:
        """``scan`` (``lax.scan``, ``nn.scan``, ``nn.RNN``, `phosjax.layers.Repeat`): the
        body sees the consts as they are and each scanned input (a stacked param too)
        without its leading axis, which is pinned: its positions are steps, not channels,
        so a kernel's channels are axes 1.. of its stacked leaf and `shrink` cuts the same
        ones in every layer. The body's carry out is tied to its carry in (the loop feeds
        it back), and what the body gets as carry must hold at every step: the walk is
        redone from the same start with the carry's state joined with what the body
        returns (see `looped`) until it no longer changes, so the last walk's pins, zeros
        and uses are those of a carry valid at every step. The stacked outputs get a
        pinned leading axis, and the body's contractions count once per step."""
        p, where = eqn.params, self.where(eqn)
        consts, carried = p["num_consts"], p["num_consts"] + p["num_carry"]
        steps = self.labels.new(p["length"], f"{where} loops over this axis, one step each")
        for value in args[carried:]:
            self.labels.pin(value.labels[0], f"{where} scans over this axis, one step each")
        slices = [
            _carry(v, v.labels[1:], v.zeros, None if v.src is None else v.src[1:])
            for v in args[carried:]
        ]
        carry = [self.loop_state(v) for v in args[consts:carried]]
        atoms = [set().union(*(self.atoms(label) for label in v.labels)) for v in carry]
        start = len(self.ops)
        while True:  # the carry's zeros only shrink and the rest only grows: it ends
            saved = self.save()
            outs = self.call(eqn, p["jaxpr"], [*args[:consts], *carry, *slices])
            looped = [
                self.looped(state, out, known, where)
                for state, out, known in zip(carry, outs[: len(carry)], atoms, strict=True)
            ]
            if looped == carry:
                break
            self.restore(saved)
            carry = looped
        # a loop over the inputs' axis (``jax.lax.map`` over the examples) steps along it:
        # its contractions carry that axis, so the batch divides them and their runs
        loop = next((v.labels[0] for v in args[carried:] if v.data), steps)
        self.ops[start:] = [
            (name, [*labels, loop], (*inner, loop)) for name, labels, inner in self.ops[start:]
        ]
        ys = [_carry(y, [steps, *y.labels], y.zeros, _stacked(y.src)) for y in outs[len(carry) :]]
        return [*carry, *ys]

    def loop_state(self, value: Value) -> Value:
        """What a loop's body gets as carry first: ``value``'s labels, zeros and
        provenance, its zeros as atoms (the body's labels may merge or split them)."""
        zeros = frozenset(self.zero_atoms(value))
        return dataclasses.replace(value, zeros=zeros, src=None, known=None)

    def looped(self, state: Value, out: Value, atoms: set[int], where: str) -> Value:
        """The carry's state once the body has returned ``out`` from ``state``: ``out``
        is tied to ``state``; a dead channel stays zero only if the body keeps it zero,
        and what made ``out`` (its poles among the carry's ``atoms``, its data and
        producers) is in the carry from then on."""
        for label, other in zip(state.labels, out.labels, strict=True):
            self.labels.union(label, other, where)
        zeros = self.zero_atoms(out)
        poles = set().union(*(self.atoms(label) for label in out.poles))
        return Value(
            state.labels,
            frozenset(z for z in state.zeros if self.labels.find(z) in zeros),
            data=state.data or out.data,
            made_by=state.made_by | out.made_by,
            scales=state.scales | out.scales,
            poles=state.poles | {a for a in atoms if self.labels.find(a) in poles},
            zeroed_by=state.zeroed_by | out.zeroed_by,
        )

    _WALKED = ("labels", "kinds", "ops", "normalized", "made", "unsafe", "reshaped")
    """What a walk changes: `save` copies it, `restore` puts it back."""

    def save(self) -> tuple[Any, ...]:
        """A copy of what a walk changes, for `restore`."""
        return copy.deepcopy(tuple(getattr(self, name) for name in self._WALKED))

    def restore(self, saved: tuple[Any, ...]) -> None:
        """Undoes what walks did since `save` gave ``saved``."""
        for name, value in zip(self._WALKED, saved, strict=True):
            setattr(self, name, value)

    # -- the walk ---------------------------------------------------------------------

    def walk(self, jaxpr: Any, ins: list[Value | None], consts: list[Value]) -> list[Any]:
        env: dict[Any, Value | None] = dict(zip(jaxpr.invars, ins, strict=True))
        env.update(zip(jaxpr.constvars, consts, strict=True))

        def read(atom: Any) -> Value | None:
            if isinstance(atom, jcore.Literal):
                return self.constant(atom.val)
            return env[atom]

        for eqn, live in zip(jaxpr.eqns, _needed(jaxpr)[0], strict=True):
            if not live:  # nothing uses it (nn.RNN's unused random_seed): no channel flows
                continue
            args = [read(a) for a in eqn.invars]
            known = [None if v is None else v.known for v in args]
            outs = self.apply(eqn, args, known)
            env.update(zip(eqn.outvars, outs, strict=True))
        return [read(v) for v in jaxpr.outvars]

    def apply(self, eqn: Any, args: list[Value | None], known: list[Any]) -> list[Any]:
        name, p = eqn.primitive.name, eqn.params
        for key in CALLS if name in CALL_PRIMITIVES else ():
            sub = p.get(key)
            if hasattr(getattr(sub, "jaxpr", sub), "eqns"):
                return self.call(eqn, sub, args)
        if name == "scan":
            return self.scan(eqn, args)  # type: ignore[arg-type]
        if name == "dot_general":
            return [self.dot_general(eqn, args[0], args[1])]  # type: ignore[arg-type]
        if name == "conv_general_dilated":
            return [self.conv(eqn, args[0], args[1])]  # type: ignore[arg-type]
        if name == "reshape":
            return [self.reshape(eqn, args[0])]  # type: ignore[arg-type]
        if name == "broadcast_in_dim":
            return [self.broadcast(eqn, args[0])]  # type: ignore[arg-type]
        if name == "transpose":
            return [self.permute(args[0], p["permutation"])]  # type: ignore[arg-type]
        if name == "squeeze":
            value = args[0]
            keep = [i for i in range(len(value.labels)) if i not in p["dimensions"]]  # type: ignore[union-attr]
            return [self.permute(value, keep)]  # type: ignore[arg-type]
        if name in REDUCE:
            return [self.reduce(eqn, args[0])]  # type: ignore[arg-type]
        if name in CUMULATIVE:
            value = args[0]
            reason = f"{self.where(eqn)} accumulates over this axis"
            self.labels.pin(value.labels[p["axis"]], reason)  # type: ignore[union-attr]
            zeros = frozenset() if name == "cumlogsumexp" else value.zeros  # type: ignore[union-attr]
            return [dataclasses.replace(value, zeros=zeros, src=None)]  # type: ignore[type-var]
        if name == "top_k":
            return self.top_k(eqn, args[0])  # type: ignore[arg-type]
        if name == "sort":
            return self.sort(eqn, args)  # type: ignore[arg-type]
        if name == "gather":
            return [self.gather(eqn, args[0], args[1])]  # type: ignore[arg-type]
        if name in DECOMPOSITIONS:
            return self.decomposed(eqn, args)  # type: ignore[arg-type]
        if name == "concatenate":
            return [self.concatenate(eqn, args)]  # type: ignore[arg-type]
        if name in ("slice", "dynamic_slice", "pad"):
            before, after = eqn.invars[0].aval.shape, eqn.outvars[0].aval.shape
            keeps = [b == a for b, a in zip(before, after, strict=True)]
            if name == "pad":
                keeps = [
                    k and cfg == (0, 0, 0)
                    for k, cfg in zip(keeps, p["padding_config"], strict=True)
                ]
            zeros = name != "pad" or bool(np.all(np.asarray(known[1]) == 0))
            what = "pads" if name == "pad" else "cuts"
            return [self.cut(eqn, args[0], keeps, zeros, what)]  # type: ignore[arg-type]
        if name == "dynamic_update_slice":
            spans = {d: d for d in range(len(eqn.outvars[0].aval.shape))}
            return [self.written(eqn, args[0], args[1], spans)]  # type: ignore[arg-type]
        if name in SCATTERS:
            return [self.scatter(eqn, args[0], args[1], args[2])]  # type: ignore[arg-type]
        if name == "tile":
            keeps = [reps == 1 for reps in p["reps"]]
            return [self.cut(eqn, args[0], keeps, True, "repeats")]  # type: ignore[arg-type]
        if name in ("device_put", "optimization_barrier", "sharding_constraint", "reshard"):
            # each output is its operand
            return list(args)
        if name == "fft":  # linear along its last axes: a dead channel's zeros stay
            ndim, transformed = len(eqn.invars[0].aval.shape), len(p["fft_lengths"])
            keeps = [d < ndim - transformed for d in range(ndim)]
            return [self.cut(eqn, args[0], keeps, True, "transforms along")]  # type: ignore[arg-type]
        if name == "rev":
            value = args[0]
            keeps = [i not in p["dimensions"] for i in range(len(value.labels))]  # type: ignore[union-attr]
            return [self.cut(eqn, value, keeps, True, "reverses")]  # type: ignore[arg-type]
        if name in WINDOW:
            return self.window(eqn, args)  # type: ignore[arg-type]
        if name == "stack":
            return [self.stack(eqn, args)]  # type: ignore[arg-type]
        if name == "split":
            return self.split(eqn, args[0])  # type: ignore[arg-type]
        if name == "iota":
            shape = eqn.outvars[0].aval.shape
            reason = (
                f"{self.where(eqn)} numbers the positions along this axis (jnp.arange, a "
                "triangular mask): what a channel gets depends on where it is"
            )
            return [Value([self.labels.new(n, reason) for n in shape])]
        resized = (  # a bitcast to another width adds or removes an axis: refused below
            name == BITCAST and eqn.outvars[0].aval.shape != eqn.invars[0].aval.shape
        )
        zeros_kept_or_lost = ANY_ZERO | ALL_ZERO | FIRST_ZERO | SHIFTS | KEEPS_ZERO | LOSES_ZERO
        if name in zeros_kept_or_lost | {*COMPARE, *POWERS, BITCAST} and not resized:
            return [self.elementwise(eqn, args, known)]
        self.refuse(
            eqn,
            UNSUPPORTED_HINTS.get(
                name,
                "is not supported by phosjax.morph (it may mix channels); write that part "
                "with supported operations, e.g. contractions, elementwise ops, reshapes",
            ),
        )

    def refuse(self, eqn: Any, hint: str) -> NoReturn:
        """Raises `UnsupportedOpError` naming ``eqn``'s primitive, line and module, and
        ``hint``: what it is and what to do instead."""
        module = "/".join(s for s in (*self.scopes, str(eqn.source_info.name_stack)) if s)
        raise UnsupportedOpError(
            f"cannot follow channels through {self.where(eqn)}"
            f"{f' in module {module!r}' if module else ''}: the primitive "
            f"{eqn.primitive.name!r} {hint}. The model's channel groups cannot be resolved."
        )

    def call(self, eqn: Any, sub: Any, args: Sequence[Value | None]) -> list[Any]:
        """Walks ``sub`` (a jaxpr or closed jaxpr ``eqn`` calls) on ``args``, within the
        caller's name stack."""
        consts = [self.constant(c) for c in getattr(sub, "consts", ())]
        self.scopes.append(str(eqn.source_info.name_stack))
        self.places.append(_place(eqn))
        try:
            return self.walk(getattr(sub, "jaxpr", sub), list(args), consts)
        finally:
            self.scopes.pop()
            self.places.pop()

    def constant(self, value: Any) -> Value:
        return Value([self.labels.new(n, CONSTANT) for n in np.shape(value)], known=value)


def trace(
    apply_fn: Callable[..., Any],
    leaves: list[Any],
    args: tuple[Any, ...],
    zeroing: set[tuple[int, int]] | None = None,
) -> Trace:
    """Walks ``apply_fn(leaves, *args)`` (see the module docstring).

    ``zeroing``: the leaf axes `mask` zeroes (``None``: decided at each use, a first pass).
    """
    closed = jax.make_jaxpr(apply_fn)(leaves, *args)
    needed = _needed(closed.jaxpr)[1]
    walker = _Walker(len(leaves), zeroing)
    leaf_labels = [[walker.labels.new(n) for n in np.shape(leaf)] for leaf in leaves]
    ins: list[Value | None] = [walker.leaf(k, labels) for k, labels in enumerate(leaf_labels)]
    input_labels = [
        [walker.labels.new(n, "model input") for n in np.shape(arg)]
        for arg in jax.tree.leaves(args)
    ]
    ins += [Value(labels, data=True) for labels in input_labels]
    consts = [walker.constant(c) for c in closed.consts]
    outs = walker.walk(closed.jaxpr, ins, consts)
    for out in outs:
        for label in out.labels if out is not None else ():
            walker.labels.pin(label, "model output")
    walker.labels.pin_self_products()
    return Trace(
        walker.labels,
        leaf_labels,
        walker.kinds,
        walker.ops,
        walker.normalized,
        walker.made,
        walker.unsafe,
        walker.reshaped,
        input_labels,
        [k for k, v in enumerate(closed.jaxpr.invars[: len(leaves)]) if v not in needed],
    )
