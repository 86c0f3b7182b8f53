"""Convolutions computed as matrix products: `convs_as_matmuls` and `conv_as_matmul`.

`jax.vmap` of a convolution whose kernel is batched too (one kernel per cell of a grid)
becomes ONE grouped convolution (``feature_group_count`` = cells), and its gradients
grouped convolutions as well, which convolution libraries may run far below a plain
convolution's speed. A convolution is also a sum, over the kernel's offsets, of shifted
strided slices of the input times the kernel's matrices: stacked, those slices make one
``dot_general`` (im2col), which `jax.vmap` turns into a batched matrix product.
"""

import contextvars
import dataclasses
import functools
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.extend import core

CONV = lax.conv_general_dilated_p

_CALLS = ("pjit", "jit", "closed_call", "core_call")
"""Primitives that only call a jaxpr: inlined when it holds a convolution."""

_REMATS = ("checkpoint", "remat", "remat2")
"""Names of `jax.checkpoint`'s primitive: rewritten inside, kept (`_checkpointed`)."""

_REWRITING = contextvars.ContextVar("phosjax_convs_as_matmuls", default=False)
"""True while `convs_as_matmuls` traces its function (`rewrite_before_grad`)."""


def conv_as_matmul(
    lhs: jax.Array,
    rhs: jax.Array,
    *,
    window_strides: Sequence[int],
    padding: Sequence[tuple[int, int]],
    lhs_dilation: Sequence[int],
    rhs_dilation: Sequence[int],
    dimension_numbers: lax.ConvDimensionNumbers,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision: Any = None,
    preferred_element_type: Any = None,
    **unused: Any,
) -> jax.Array:
    """`lax.conv_general_dilated` with the parameters of its primitive, computed as stacked
    strided slices of ``lhs`` and one `lax.dot_general` with ``rhs``.

    It stacks as few slices as it can: one per kernel offset (each slice covers all the
    output positions) or, when the output has fewer positions than the kernel (the
    gradient of a kernel), one per output position (each covers the whole window). An
    input dilated by ``lhs_dilation`` (the gradient of a strided convolution's input) is
    not filled with zeros: each phase of the output (its positions modulo the dilation)
    is a convolution of the undilated input with the kernel offsets that reach it.

    Examples:
      >>> x, k = jnp.ones((2, 8, 3)), jnp.ones((3, 3, 4))
      >>> numbers = lax.conv_dimension_numbers(x.shape, k.shape, ("NWC", "WIO", "NWC"))
      >>> params = dict(window_strides=(1,), padding=((1, 1),), lhs_dilation=(1,),
      ...               rhs_dilation=(1,), dimension_numbers=numbers)
      >>> y = conv_as_matmul(x, k, **params)
      >>> bool(jnp.allclose(y, lax.conv_general_dilated(x, k, **params)))
      True
    """
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    x = jnp.transpose(lhs, (lhs_spec[0], *lhs_spec[2:], lhs_spec[1]))  # (N, S..., C)
    w = jnp.transpose(rhs, (*rhs_spec[2:], rhs_spec[1], rhs_spec[0]))  # (K..., I, O)
    contract = functools.partial(
        _contract,
        groups=feature_group_count,
        batch_groups=batch_group_count,
        precision=precision,
        preferred_element_type=preferred_element_type,
    )
    phases = _Phases(x.shape[1:-1], w.shape[:-2], padding, lhs_dilation, rhs_dilation)
    if max(lhs_dilation) > 1 and max(window_strides) == 1 and phases.worth_it():
        y = phases.convolve(x, w, contract)
    else:
        pads = [(lo, hi, d - 1) for (lo, hi), d in zip(padding, lhs_dilation, strict=True)]
        x = lax.pad(x, lax.full_like(x, 0, shape=()), [(0, 0, 0), *pads, (0, 0, 0)])
        y = _windows(x, w, window_strides, rhs_dilation, contract)
    return jnp.transpose(y, _inverse((out_spec[0], *out_spec[2:], out_spec[1])))


Contract = Callable[..., jax.Array]


def _contract(
    x: jax.Array,
    w: jax.Array,
    *,
    groups: int,
    batch_groups: int,
    precision: Any,
    preferred_element_type: Any,
) -> jax.Array:
    """``(N', positions..., O)`` from patches ``x`` ``(N, positions..., P, C)`` and kernel
    matrices ``w`` ``(P, I, O)``: the sum over the ``P`` offsets and the ``I`` inputs of
    each feature group, one `lax.dot_general` with the patches first and the contracted
    axes last, so its result is laid out as the output is (a plain matrix product when
    there is one group: the groups' axes are of size 1)."""
    batch, per_group, outputs = x.shape[0], w.shape[1], w.shape[2]
    x = x.reshape(batch_groups, batch // batch_groups, *x.shape[1:-1], groups, per_group)
    w = w.reshape(w.shape[0], per_group, batch_groups, groups, outputs // batch_groups // groups)
    p, i = x.ndim - 3, x.ndim - 1
    numbers = (((p, i), (0, 1)), ((0, x.ndim - 2), (2, 3)))
    y = lax.dot_general(
        x, w, numbers, precision=precision, preferred_element_type=preferred_element_type
    )  # (batch groups, groups, N', positions..., O per group)
    y = jnp.moveaxis(y, (0, 1), (-3, -2))
    return y.reshape(*y.shape[:-3], outputs)


def _windows(
    x: jax.Array,
    w: jax.Array,
    strides: Sequence[int],
    dilation: Sequence[int],
    contract: Contract,
) -> jax.Array:
    """The convolution of a padded ``x`` ``(N, S..., C)`` with ``w`` ``(K..., I, O)``."""
    kernel = w.shape[:-2]
    spans = [(k - 1) * d + 1 for k, d in zip(kernel, dilation, strict=True)]
    shape = zip(x.shape[1:-1], spans, strides, strict=True)
    out = [max(0, (n - span) // s + 1) for n, span, s in shape]
    w = w.reshape(math.prod(kernel), *w.shape[-2:])  # no -1: a size may be 0
    if min(out) == 0:  # a window longer than the input: no output position
        return contract(lax.full_like(x, 0, shape=(x.shape[0], *out, *w.shape[:1], x.shape[-1])), w)
    if math.prod(kernel) <= math.prod(out):  # a slice per kernel offset: (N, out..., P, C)
        return contract(_stacked_slices(x, kernel, dilation, out, strides, axis=-2), w)
    patches = _stacked_slices(x, out, strides, kernel, dilation, axis=1)  # per output position
    patches = patches.reshape(*patches.shape[:2], w.shape[0], patches.shape[-1])  # (N, Q, P, C)
    y = contract(patches, w)
    return y.reshape(y.shape[0], *out, y.shape[-1])


def _stacked_slices(
    x: jax.Array,
    offsets: Sequence[int],
    offset_steps: Sequence[int],
    counts: Sequence[int],
    steps: Sequence[int],
    axis: int,
) -> jax.Array:
    """For every offset tuple ``o``, the positions ``o * offset_steps + j * steps`` (``j <
    counts``) of ``x``'s spatial axes, stacked along ``axis`` (`_slices`)."""
    starts = [
        [o * s for o, s in zip(offset, offset_steps, strict=True)]
        for offset in itertools.product(*(range(n) for n in offsets))
    ]
    return _slices(x, starts, counts, steps, axis)


def _slices(
    x: jax.Array,
    starts: Sequence[Sequence[int]],
    counts: Sequence[int],
    steps: Sequence[int],
    axis: int,
) -> jax.Array:
    """From each start, ``counts`` positions ``steps`` apart along ``x``'s spatial axes:
    ``(N, counts..., len(starts), C)`` stacked at ``axis=-2``, ``(N, len(starts),
    counts..., C)`` at ``axis=1``."""
    pieces = []
    for start in starts:
        limits = [a + (c - 1) * s + 1 for a, c, s in zip(start, counts, steps, strict=True)]
        pieces.append(
            lax.slice(x, (0, *start, 0), (x.shape[0], *limits, x.shape[-1]), (1, *steps, 1))
        )
    return jnp.stack(pieces, axis=axis)


class _Axis(NamedTuple):
    """One spatial axis of an input dilation split into phases (`_Phases`)."""

    out: int  # output positions
    taps: list[list[tuple[int, int]]]  # per phase: (kernel offset, first input position)
    lengths: list[int]  # per phase: output positions


@dataclasses.dataclass(frozen=True)
class _Phases:
    """A stride-1 convolution of an input dilated by ``lhs_dilation``, split by the phase
    of its output positions (``y = r + s * t``, ``r < s``): the kernel offsets ``k``
    reaching phase ``r`` read the undilated input at ``t + (r + k * d - lo) / s``."""

    size: Sequence[int]  # of the input's spatial axes
    kernel: Sequence[int]
    padding: Sequence[tuple[int, int]]
    lhs_dilation: Sequence[int]
    rhs_dilation: Sequence[int]

    def axis(self, i: int) -> _Axis:
        s, d, k = self.lhs_dilation[i], self.rhs_dilation[i], self.kernel[i]
        lo, hi = self.padding[i]
        dilated = max(0, (self.size[i] - 1) * s + 1)  # an empty axis stays empty
        out = max(0, dilated + lo + hi - (k - 1) * d)
        taps = [
            [(j, (r + j * d - lo) // s) for j in range(k) if (r + j * d - lo) % s == 0]
            for r in range(s)
        ]
        return _Axis(out, taps, [max(0, -(-(out - r) // s)) for r in range(s)])

    def worth_it(self) -> bool:
        """Whether the output has as many positions as the kernel (else `_windows`' other
        way, a slice per output position, takes fewer slices)."""
        outs = [self.axis(i).out for i in range(len(self.size))]
        return math.prod(self.kernel) <= math.prod(outs)

    def convolve(self, x: jax.Array, w: jax.Array, contract: Contract) -> jax.Array:
        """The convolution of ``x`` ``(N, S..., C)`` with ``w`` ``(K..., I, O)``."""
        axes = [self.axis(i) for i in range(len(self.size))]
        pads = [_reach(axis, n) for axis, n in zip(axes, self.size, strict=True)]
        x = lax.pad(
            x, lax.full_like(x, 0, shape=()), [(0, 0, 0), *((a, b, 0) for a, b in pads), (0, 0, 0)]
        )
        full = [-(-axis.out // s) for axis, s in zip(axes, self.lhs_dilation, strict=True)]
        outs = []
        for phase in itertools.product(*(range(s) for s in self.lhs_dilation)):
            lengths = [axis.lengths[r] for axis, r in zip(axes, phase, strict=True)]
            reaching = list(
                itertools.product(*(a.taps[r] for a, r in zip(axes, phase, strict=True)))
            )
            if reaching and min(lengths) > 0:
                starts = [
                    [a + lo for (_, a), (lo, _) in zip(t, pads, strict=True)] for t in reaching
                ]
                patches = _slices(x, starts, lengths, [1] * len(lengths), axis=-2)
                kernels = jnp.stack([w[tuple(j for j, _ in t)] for t in reaching])
            else:  # no kernel offset reaches this phase: a sum of nothing, zeros
                patches = lax.full_like(x, 0, shape=(x.shape[0], *lengths, 0, x.shape[-1]))
                kernels = lax.full_like(w, 0, shape=(0, *w.shape[-2:]))
            y = contract(patches, kernels)
            gaps = [(0, f - n) for f, n in zip(full, lengths, strict=True)]
            outs.append(jnp.pad(y, [(0, 0), *gaps, (0, 0)]))
        # (N', phases..., full..., O) -> (N', full_1, s_1, full_2, s_2, ..., O): y = t * s + r
        dims = len(full)
        y = jnp.stack(outs, axis=1)
        y = y.reshape(y.shape[0], *self.lhs_dilation, *full, y.shape[-1])
        y = jnp.transpose(y, [0, *(j for i in range(dims) for j in (1 + dims + i, 1 + i)), -1])
        y = y.reshape(
            y.shape[0], *(f * s for f, s in zip(full, self.lhs_dilation, strict=True)), y.shape[-1]
        )
        return y[(slice(None), *(slice(0, axis.out) for axis in axes))]


def _reach(axis: _Axis, size: int) -> tuple[int, int]:
    """The zeros the phases' slices read before and after an input axis of ``size``."""
    ends = [
        (a, a + n - 1) for taps, n in zip(axis.taps, axis.lengths, strict=True) for _, a in taps
    ]
    return max([0, *(-a for a, _ in ends)]), max([0, *(b - size + 1 for _, b in ends)])


def _inverse(permutation: Sequence[int]) -> list[int]:
    inverse = [0] * len(permutation)
    for i, p in enumerate(permutation):
        inverse[p] = i
    return inverse


def convs_as_matmuls(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with every convolution it computes done by `conv_as_matmul` instead.

    Apply it to the whole function to batch, gradients included (a train step): it
    rewrites the convolutions of ``fn``'s traced program, those of the backward pass
    too, and those inside loops, conditionals and checkpoints (`lax.scan`,
    `lax.while_loop`, `lax.cond`, `jax.checkpoint`). Jitted functions and custom
    derivatives that hold a convolution are inlined (their derivative rules no longer
    apply: rewrite after differentiating). Positional array arguments; same results up
    to float rounding.

    Examples:
      >>> conv = lambda x, k: lax.conv_general_dilated(x, k, (1,), "SAME")
      >>> x, k = jnp.ones((2, 3, 8)), jnp.ones((4, 3, 3))
      >>> grad = jax.grad(lambda k: conv(x, k).sum())
      >>> bool(jnp.allclose(convs_as_matmuls(grad)(k), grad(k)))
      True
    """

    @functools.wraps(fn)
    def rewritten(*args: Any) -> Any:
        token = _REWRITING.set(True)
        try:
            closed, shapes = jax.make_jaxpr(fn, return_shape=True)(*args)
        finally:
            _REWRITING.reset(token)
        outs = _evaluate(closed.jaxpr, closed.consts, jax.tree.leaves(args))
        return jax.tree.unflatten(jax.tree.structure(shapes), outs)

    return rewritten


def rewrite_before_grad(loss: Callable[..., Any]) -> Callable[..., Any]:
    """``loss`` to differentiate: its convolutions rewritten first (`convs_as_matmuls`)
    when it is traced inside `convs_as_matmuls`, else ``loss`` itself.

    `convs_as_matmuls` of a train step otherwise rewrites the convolutions JAX derived
    for the backward pass, each on its own: a kernel's gradient builds the input's slices
    again, in a transposed layout. Differentiated after the rewrite, the backward pass
    is that of matrix products and slices: a kernel's gradient is one product of the
    forward's saved slices, an input's a sum of the slices' gradients. A train step
    calls it on its loss (`phosjax.train`'s does).

    Examples:
      >>> conv = lambda k, x: lax.conv_general_dilated(x, k, (1,), "SAME").sum()
      >>> step = lambda k, x: jax.grad(rewrite_before_grad(conv))(k, x)
      >>> x, k = jnp.ones((2, 3, 8)), jnp.ones((4, 3, 3))
      >>> has_convs(step, k, x), has_convs(convs_as_matmuls(step), k, x)
      (True, False)
      >>> bool(jnp.allclose(convs_as_matmuls(step)(k, x), step(k, x)))
      True
    """
    return convs_as_matmuls(loss) if _REWRITING.get() else loss


def has_convs(fn: Callable[..., Any], *args: Any) -> bool:
    """Whether ``fn(*args)`` computes a convolution (``args`` may be `jax.ShapeDtypeStruct`).

    Examples:
      >>> has_convs(jnp.tanh, jnp.ones(3))
      False
      >>> conv = lambda x, k: lax.conv_general_dilated(x, k, (1,), "SAME")
      >>> x, k = jax.ShapeDtypeStruct((2, 3, 8), "float32"), jnp.ones((4, 3, 3))
      >>> has_convs(conv, x, k)  # traced alone: x holds no values
      True
    """
    return _has_conv(jax.make_jaxpr(fn)(*args).jaxpr)


def _evaluate(jaxpr: core.Jaxpr, consts: Sequence[Any], args: Sequence[Any]) -> list[Any]:
    env: dict[core.Var, Any] = {}

    def read(v: Any) -> Any:
        return v.val if isinstance(v, core.Literal) else env[v]

    env.update(zip(jaxpr.constvars, consts, strict=True))
    env.update(zip(jaxpr.invars, args, strict=True))
    for eqn in jaxpr.eqns:
        values = [read(v) for v in eqn.invars]
        called = _called(eqn)
        if eqn.primitive is CONV:
            outs = [conv_as_matmul(*values, **eqn.params)]
        elif eqn.primitive.name in _REMATS and _has_conv(eqn.params["jaxpr"]):
            outs = _checkpointed(eqn, values)
        elif called is not None and _has_conv(called[0]):
            outs = _evaluate(*called, values)
        elif eqn.primitive.name == "pvary":  # see `_varied`
            outs = [_varied(eqn, *values)]
        else:
            params = {name: _rewritten(value) for name, value in eqn.params.items()}
            with eqn.ctx.manager:
                outs = eqn.primitive.bind(*values, **eqn.primitive.get_bind_params(params))
            outs = outs if eqn.primitive.multiple_results else [outs]
        env.update(
            (v, out)
            for v, out in zip(eqn.outvars, outs, strict=True)
            if not isinstance(v, core.DropVar)
        )
    return [read(v) for v in jaxpr.outvars]


def _checkpointed(eqn: core.JaxprEqn, values: Sequence[Any]) -> Any:
    """A `jax.checkpoint` with its convolutions rewritten, still a checkpoint: inlined, a
    gradient's recomputation would lose the barrier that keeps XLA from merging it with
    the forward pass (which keeps the activations alive that it is meant to free)."""
    closed = _rewritten(core.ClosedJaxpr(eqn.params["jaxpr"], ()))
    jaxpr = closed.jaxpr.replace(
        constvars=[], invars=[*closed.jaxpr.constvars, *closed.jaxpr.invars]
    )
    cse = eqn.params["prevent_cse"]
    if isinstance(cse, tuple):  # one flag per argument
        cse = (False,) * len(closed.consts) + cse
    params = {**eqn.params, "jaxpr": jaxpr, "prevent_cse": cse}
    return eqn.primitive.bind(*closed.consts, *values, **params)


def _varied(eqn: core.JaxprEqn, value: Any) -> Any:
    """``pvary``: ``value`` made to vary over the mesh axes it does not vary over yet.

    Inside `jax.shard_map`, a call's jaxpr may type an argument as the same on every
    device while the value passed varies (a jitted function in a vmapped `lax.cond` does
    so); inlined, its ``pvary`` of that value would fail.
    """
    aval = jax.typeof(value)
    mat = getattr(aval, "mat", None)  # jax >= 0.10: the manual axis type; before: .vma
    varying = getattr(mat, "varying", None) or getattr(aval, "vma", None) or frozenset()
    axes = tuple(axis for axis in eqn.params["axes"] if axis not in varying)
    return eqn.primitive.bind(value, **{**eqn.params, "axes": axes}) if axes else value


def _rewritten(param: Any) -> Any:
    """A parameter of an equation, its jaxprs (a loop's body, a conditional's branches)
    re-traced through `_evaluate` when they hold a convolution."""
    if isinstance(param, tuple) and any(isinstance(p, core.ClosedJaxpr) for p in param):
        items = [_rewritten(p) for p in param]  # a named tuple stays one (custom_linear_solve)
        return param._make(items) if hasattr(param, "_make") else tuple(items)
    if not isinstance(param, core.ClosedJaxpr) or not _has_conv(param.jaxpr):
        return param
    avals = [v.aval for v in param.jaxpr.invars]  # weak types, varying mesh axes and all
    return jax.make_jaxpr(lambda *args: _evaluate(param.jaxpr, param.consts, args))(*avals)


def _called(eqn: core.JaxprEqn) -> tuple[core.Jaxpr, Sequence[Any]] | None:
    """The jaxpr and consts a call-like equation (`_CALLS`, custom derivatives) runs."""
    name = eqn.primitive.name
    if name not in _CALLS and not name.startswith("custom_"):
        return None
    for field in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        inner = eqn.params.get(field)
        if isinstance(inner, core.ClosedJaxpr):
            return inner.jaxpr, inner.consts
        if isinstance(inner, core.Jaxpr) and not inner.constvars:
            return inner, ()
    return None


@functools.lru_cache(maxsize=256)
def _has_conv(jaxpr: core.Jaxpr) -> bool:
    if any(eqn.primitive is CONV for eqn in jaxpr.eqns):
        return True
    return any(_has_conv(inner) for inner in core.subjaxprs(jaxpr))
