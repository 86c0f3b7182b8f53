"""Convolutions computed as matrix products: `convs_as_matmuls` and `conv_as_matmul`.

`jax.vmap` of a convolution whose kernel is batched too (one kernel per cell of a grid)
becomes ONE grouped convolution (``feature_group_count`` = cells), and its gradients
grouped convolutions as well, which convolution libraries may run far below a plain
convolution's speed. A convolution is also a sum, over the kernel's offsets, of shifted
strided slices of the input times the kernel's matrices: stacked, those slices make one
``dot_general`` (im2col), which `jax.vmap` turns into a batched matrix product.
"""

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.extend import core

CONV = lax.conv_general_dilated_p

_CALLS = ("pjit", "jit", "closed_call", "core_call", "checkpoint", "remat", "remat2")
"""Primitives that only call a jaxpr: inlined when it holds a convolution."""


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
    gradient of a kernel), one per output position (each covers the whole window).

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
    pads = [(lo, hi, d - 1) for (lo, hi), d in zip(padding, lhs_dilation, strict=True)]
    x = lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), *pads, (0, 0, 0)])
    kernel = w.shape[:-2]
    spans = [(k - 1) * d + 1 for k, d in zip(kernel, rhs_dilation, strict=True)]
    out = [
        (n - span) // s + 1 for n, span, s in zip(x.shape[1:-1], spans, window_strides, strict=True)
    ]
    batch = x.shape[0]
    groups, per_group = feature_group_count, w.shape[-2]
    bgroups, outputs = batch_group_count, w.shape[-1]
    if math.prod(kernel) <= math.prod(out):  # a slice per kernel offset: (N, P, out..., C)
        x = _stacked_slices(x, kernel, rhs_dilation, out, window_strides)
        x = x.reshape(bgroups, batch // bgroups, math.prod(kernel), *out, groups, per_group)
        w = w.reshape(math.prod(kernel), per_group, bgroups, groups, outputs // bgroups // groups)
        spec = "bnp...gi,pibgo->bn...go"
    else:  # a slice per output position: (N, Q, kernel..., C)
        x = _stacked_slices(x, out, window_strides, kernel, rhs_dilation)
        x = x.reshape(bgroups, batch // bgroups, math.prod(out), -1, groups, per_group)
        w = w.reshape(-1, per_group, bgroups, groups, outputs // bgroups // groups)
        spec = "bnqkgi,kibgo->bnqgo"
    y = jnp.einsum(spec, x, w, precision=precision, preferred_element_type=preferred_element_type)
    y = jnp.moveaxis(y, 0, -3).reshape(batch // bgroups, *out, outputs)  # (N', out..., O)
    return jnp.transpose(y, _inverse((out_spec[0], *out_spec[2:], out_spec[1])))


def _stacked_slices(
    x: jax.Array,
    offsets: Sequence[int],
    offset_steps: Sequence[int],
    counts: Sequence[int],
    steps: Sequence[int],
) -> jax.Array:
    """``(N, prod(offsets), counts..., C)``: for every offset tuple ``o``, the positions
    ``o * offset_steps + j * steps`` (``j < counts``) of ``x``'s spatial axes."""
    pieces = []
    for offset in itertools.product(*(range(n) for n in offsets)):
        starts = [o * s for o, s in zip(offset, offset_steps, strict=True)]
        limits = [a + (c - 1) * s + 1 for a, c, s in zip(starts, counts, steps, strict=True)]
        pieces.append(
            lax.slice(x, (0, *starts, 0), (x.shape[0], *limits, x.shape[-1]), (1, *steps, 1))
        )
    return jnp.stack(pieces, axis=1)


def _inverse(permutation: Sequence[int]) -> list[int]:
    inverse = [0] * len(permutation)
    for i, p in enumerate(permutation):
        inverse[p] = i
    return inverse


def convs_as_matmuls(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with every convolution it computes done by `conv_as_matmul` instead.

    Apply it to the whole function to batch, gradients included (a train step): it
    rewrites the convolutions of ``fn``'s traced program, those of the backward pass
    too, and those inside loops and conditionals (`lax.scan`, `lax.while_loop`,
    `lax.cond`). Jitted functions, `jax.checkpoint` and custom derivatives that hold a
    convolution are inlined (their derivative rules no longer apply: rewrite after
    differentiating). Positional array arguments; same results up to float rounding.

    Examples:
      >>> conv = lambda x, k: lax.conv_general_dilated(x, k, (1,), "SAME")
      >>> x, k = jnp.ones((2, 3, 8)), jnp.ones((4, 3, 3))
      >>> grad = jax.grad(lambda k: conv(x, k).sum())
      >>> bool(jnp.allclose(convs_as_matmuls(grad)(k), grad(k)))
      True
    """

    @functools.wraps(fn)
    def rewritten(*args: Any) -> Any:
        closed, shapes = jax.make_jaxpr(fn, return_shape=True)(*args)
        outs = _evaluate(closed.jaxpr, closed.consts, jax.tree.leaves(args))
        return jax.tree.unflatten(jax.tree.structure(shapes), outs)

    return rewritten


def has_convs(fn: Callable[..., Any], *args: Any) -> bool:
    """Whether ``fn(*args)`` computes a convolution (``args`` may be `jax.ShapeDtypeStruct`).

    Examples:
      >>> has_convs(jnp.tanh, jnp.ones(3))
      False
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


def _varied(eqn: core.JaxprEqn, value: Any) -> Any:
    """``pvary``: ``value`` made to vary over the mesh axes it does not vary over yet.

    Inside `jax.shard_map`, a call's jaxpr may type an argument as the same on every
    device while the value passed varies (`jax.checkpoint` in a vmapped `lax.cond` does
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
        return tuple(_rewritten(p) for p in param)
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
