"""The 2D CNN grid's convolutions as Pallas kernels of our own: implicit GEMMs batched over cells.

`jax.vmap` of a convolution with a kernel per cell becomes a grouped convolution (cuDNN
runs the grid's as FFTs), and `convs_as_matmuls` writes the stacked 3x3 slices to memory.
Here each convolution of the K cells is ONE Pallas kernel (`grid_conv`; on a GPU Pallas
lowers it to Triton): a program per (cell, image, tile of output positions, tile of
output channels) sums, over the kernel's taps and tiles of input channels, the products
of input rows read in place with the tap's kernel matrix. Its gradients are such kernels
too (`jax.custom_vjp`): the input's, a convolution of the output's gradient with the
transposed kernel (one kernel call per phase of a strided convolution's input), the
kernel's, per cell and tap, the sum over images and positions of input rows times the
output's gradient.

The input rows are read in place through one layout trick: the input is padded, split
into ``stride**2`` phases (even/odd rows and columns for stride 2) and flattened, so that
a tap reads ``block.pixels`` consecutive rows of one phase, at a fixed offset from the
output positions; each output row is computed as wide as the phase's row (the extra
columns are dropped). Besides the kernels, XLA only pads and reshapes (copies the size of
the input or the output, not the nine slices).

The script times the bare Adam step of the speed bench's cnn2d grid with its
convolutions so (``pallas <block>``, `pallas_step`: one cell's loss run on the stacked
cells, equation by equation, `_evaluate_grid`) against `conv_forms.py`'s ``vmap``,
``vmap_matmul_fwd`` and ``fused`` (the ceiling), in the same run; XLA's cost columns do
not count what the kernels compute. ``--interpret`` runs the kernels in Pallas's
interpreter (a CPU: slow, for a smoke run); ``benchmarks/gpu_pallas.sh`` runs it on a GPU::

    python benchmarks/pallas_conv.py --check                     # kernels against lax
    python benchmarks/pallas_conv.py --sizes 64,8 --blocks 64,32,32,8 128,64,32,8,4
    python benchmarks/pallas_conv.py --interpret --sizes 2 --steps 1 --batch 8  # ~20 s

A block, ``pixels,outs,ins,split[,warps]``: output positions and output channels per
program, input channels per matrix product (Triton's products take power-of-two sizes
>= 16: each is clipped to the padded size it tiles), programs sharing a kernel
gradient's sum over the images (partial sums added by XLA; its greatest common divisor
with the batch), and Triton's warps per program (4).
"""

import argparse
import functools
import itertools
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import conv_forms
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu
from jax.extend import core

from phosjax.bench._speed_config import SpeedConfig
from phosjax.bench._speed_methods import ADAM, Setup, _batches, _stack, setup_model
from phosjax.train._matmul_convs import CONV, _called, _has_conv

TOLERANCES = {"float32": 1e-2, "bfloat16": 1e-1}
"""Of `check` and `check_step`, relative to the largest value: on a GPU both our kernels
and XLA's convolutions multiply float32 in TF32 by default, each in its own order (our
kernels' factors rounded to TF32, against lax in float32, on a CPU: 4.7e-3 and 4.4e-4)."""

Padding = tuple[tuple[int, int], tuple[int, int]]
Taps = tuple[tuple[int, int, int], ...]
"""Per kernel matrix: (phase, row offset, column offset) of the input positions it reads."""


class Stacked(NamedTuple):
    """A value of `_evaluate_grid`, and whether it is stacked over the cells."""

    value: Any
    stacked: bool


class Block(NamedTuple):
    """Tile sizes of the kernels (see the module's docstring) and how they run."""

    pixels: int = 64
    outs: int = 32
    ins: int = 32
    split: int = 8
    warps: int = 4
    interpret: bool = False

    def __str__(self) -> str:
        return f"{self.pixels},{self.outs},{self.ins},{self.split},{self.warps}"

    def params(self) -> dict[str, Any]:
        """`pl.pallas_call`'s arguments for how it runs (Triton on a GPU, not Mosaic GPU)."""
        return {
            "interpret": self.interpret,
            "compiler_params": plgpu.CompilerParams(num_warps=self.warps),
        }


def parse_block(text: str, interpret: bool = False) -> Block:
    """``"pixels,outs,ins,split[,warps]"`` as a `Block`."""
    sizes = [int(part) for part in text.split(",")]
    if len(sizes) not in (4, 5) or min(sizes) < 1:
        raise ValueError(
            f"block {text!r}: give four or five sizes >= 1, pixels,outs,ins,split[,warps] "
            "(e.g. 64,32,32,8 or 64,32,32,8,4)"
        )
    return Block(*sizes, interpret=interpret)


def _tile(size: int, block: int) -> int:
    """The tile for an axis of ``size``: ``block``, but no more than ``size`` rounded up to
    a power of two, and at least 16 (Triton's matrix products)."""
    return max(16, min(block, 1 << (size - 1).bit_length()))


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _pad_to(a: jax.Array, sizes: Sequence[int | None]) -> jax.Array:
    """``a`` padded with zeros at the end of each axis to ``sizes`` (None: as it is)."""
    pads = [(0, 0 if s is None else s - n) for n, s in zip(a.shape, sizes, strict=True)]
    return jnp.pad(a, pads) if any(hi for _, hi in pads) else a


def _flat_rows(xq: jax.Array, length: int, channels: int) -> jax.Array:
    """Phases ``(K, N, P, Hq, Wq, C)`` as rows ``(K, N, P, length, channels)``, zero-padded."""
    k, n, p, hq, wq, c = xq.shape
    return _pad_to(xq.reshape(k, n, p, hq * wq, c), (None, None, None, length, channels))


def _gemm_kernel(x_ref, w_ref, y_ref, *, offsets, phases, ins, channels):
    """One tile of output positions and channels: the sum over taps and input channels."""
    pixels = y_ref.shape[0]
    start = pl.program_id(2) * pixels
    acc = jnp.zeros(y_ref.shape, jnp.float32)
    for tap, (phase, offset) in enumerate(zip(phases, offsets, strict=True)):
        for c in range(0, channels, ins):
            rows = x_ref[phase, pl.ds(start + offset, pixels), pl.ds(c, ins)]
            acc += jnp.dot(rows, w_ref[tap, pl.ds(c, ins), :], preferred_element_type=jnp.float32)
    y_ref[...] = acc.astype(y_ref.dtype)


def _taps_gemm(
    xq: jax.Array, w: jax.Array, taps: Taps, out: tuple[int, int], block: Block
) -> jax.Array:
    """``y[k, n, i, j] = sum over taps t of xq[k, n, phase_t, i + di_t, j + dj_t] @ w[k, t]``
    for ``i, j < out``: ``xq`` ``(K, N, P, Hq, Wq, C)``, ``w`` ``(K, T, C, O)``."""
    k, n, _, hq, wq, c = xq.shape
    o = w.shape[-1]
    rows = out[0] * wq  # each output row as wide as the input's
    pixels, ins, outs = _tile(rows, block.pixels), _tile(c, block.ins), _tile(o, block.outs)
    positions, channels = _round_up(rows, pixels), _round_up(c, ins)
    offsets = tuple(di * wq + dj for _, di, dj in taps)
    x = _flat_rows(xq, max(hq * wq, positions + max(offsets)), channels)
    w = _pad_to(w, (None, None, channels, _round_up(o, outs)))
    kernel = functools.partial(
        _gemm_kernel,
        offsets=offsets,
        phases=tuple(p for p, _, _ in taps),
        ins=ins,
        channels=channels,
    )
    y = pl.pallas_call(
        kernel,
        out_shape=jax.ShapeDtypeStruct((k, n, positions, w.shape[-1]), xq.dtype),
        grid=(k, n, positions // pixels, w.shape[-1] // outs),
        in_specs=[
            pl.BlockSpec((None, None, *x.shape[2:]), lambda kk, nn, m, oo: (kk, nn, 0, 0, 0)),
            pl.BlockSpec((None, *w.shape[1:3], outs), lambda kk, nn, m, oo: (kk, 0, 0, oo)),
        ],
        out_specs=pl.BlockSpec((None, None, pixels, outs), lambda kk, nn, m, oo: (kk, nn, m, oo)),
        **block.params(),
        name="grid_conv",
    )(x, w)
    y = y[:, :, :rows, :o].reshape(k, n, out[0], wq, o)
    return y[:, :, :, : out[1]]


def _phases(x: jax.Array, stride: int, padding: Padding) -> jax.Array:
    """``x`` ``(K, N, H, W, C)`` padded, then split by the phase of its positions modulo
    ``stride``: ``(K, N, stride**2, Hq, Wq, C)``, position ``(s * i + a, s * j + b)`` at
    phase ``a * s + b``, ``(i, j)``."""
    k, n, h, w, c = x.shape
    s = stride
    (top, bottom), (left, right) = padding
    hq, wq = -(-(top + h + bottom) // s), -(-(left + w + right) // s)
    pads = [(top, hq * s - h - top, 0), (left, wq * s - w - left, 0)]
    x = lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), (0, 0, 0), *pads, (0, 0, 0)])
    x = x.reshape(k, n, hq, s, wq, s, c).transpose(0, 1, 3, 5, 2, 4, 6)
    return x.reshape(k, n, s * s, hq, wq, c)


def _forward_taps(kernel: tuple[int, int], stride: int) -> Taps:
    """The forward convolution's taps on `_phases` of its input, kernel offset by offset."""
    s = stride
    return tuple(
        ((i % s) * s + j % s, i // s, j // s) for i in range(kernel[0]) for j in range(kernel[1])
    )


def _out_size(size: int, kernel: int, stride: int, pads: tuple[int, int]) -> int:
    return (size + sum(pads) - kernel) // stride + 1


def _conv(x: jax.Array, w: jax.Array, stride: int, padding: Padding, block: Block) -> jax.Array:
    k, kh, kw, c, o = w.shape
    out = tuple(
        _out_size(n, m, stride, p) for n, m, p in zip(x.shape[2:4], (kh, kw), padding, strict=True)
    )
    taps = _forward_taps((kh, kw), stride)
    return _taps_gemm(_phases(x, stride, padding), w.reshape(k, kh * kw, c, o), taps, out, block)


class _GradAxis(NamedTuple):
    """One spatial axis of a convolution's input gradient, split by phase (`_grad_axis`)."""

    taps: list[list[tuple[int, int]]]  # per phase: (kernel offset, offset into dy)
    counts: list[int]  # per phase: input positions
    pads: tuple[int, int]  # the zeros dy needs before and after for every read


def _grad_axis(size: int, out: int, kernel: int, stride: int, lo: int) -> _GradAxis:
    """Input position ``h = s * t + a`` takes ``dy`` at ``t + (a + lo - i) / s`` through
    kernel offset ``i`` wherever that divides (``size`` positions, ``out`` of ``dy``)."""
    s = stride
    taps = [
        [(i, (a + lo - i) // s) for i in range(kernel) if (a + lo - i) % s == 0] for a in range(s)
    ]
    counts = [-(-(size - a) // s) for a in range(s)]
    reads = [(d, d + n - 1) for phase, n in zip(taps, counts, strict=True) for _, d in phase]
    before = max([0, *(-first for first, _ in reads)])
    return _GradAxis(taps, counts, (before, max([0, *(last - out + 1 for _, last in reads)])))


def _input_grad(
    dy: jax.Array, w: jax.Array, size: tuple[int, int], stride: int, padding: Padding, block: Block
) -> jax.Array:
    """The gradient of the input ``(K, N, H, W, C)``: one `_taps_gemm` of the padded
    ``dy`` and the transposed kernel per phase ``(a, b)`` of its positions (`_grad_axis`)."""
    k, n, _, _, _ = dy.shape
    rows, cols = (
        _grad_axis(size[i], dy.shape[2 + i], w.shape[1 + i], stride, padding[i][0])
        for i in range(2)
    )
    dyp = jnp.pad(dy, [(0, 0), (0, 0), rows.pads, cols.pads, (0, 0)])[:, :, None]
    dx = jnp.zeros((k, n, *size, w.shape[3]), dy.dtype)
    for a, b in itertools.product(range(stride), repeat=2):
        taps = list(itertools.product(rows.taps[a], cols.taps[b]))
        if not taps or not rows.counts[a] or not cols.counts[b]:
            continue  # no kernel offset reaches this phase: zeros
        mats = jnp.stack([w[:, i, j].swapaxes(-1, -2) for (i, _), (j, _) in taps], axis=1)
        where = tuple((0, di + rows.pads[0], dj + cols.pads[0]) for (_, di), (_, dj) in taps)
        part = _taps_gemm(dyp, mats, where, (rows.counts[a], cols.counts[b]), block)
        dx = dx.at[:, :, a::stride, b::stride].set(part)
    return dx


def _kernel_grad_kernel(x_ref, dy_ref, dw_ref, *, kernel_width, stride, width, images):
    """The kernel gradient's tile of one (cell, tap, channel tiles, share of the images)."""
    pixels = dy_ref.shape[1]
    tiles = dy_ref.shape[0] // images  # dy_ref: (images * tiles, pixels, outs)
    tap, share = pl.program_id(1), pl.program_id(4)
    i, j = lax.div(tap, kernel_width), lax.rem(tap, kernel_width)  # `//`: more ops
    phase = lax.rem(i, stride) * stride + lax.rem(j, stride)
    offset = lax.div(i, stride) * width + lax.div(j, stride)

    def add(step: jax.Array, acc: jax.Array) -> jax.Array:
        image, tile = share * images + lax.div(step, tiles), lax.rem(step, tiles)
        rows = x_ref[image, phase, pl.ds(tile * pixels + offset, pixels), :]
        grads = dy_ref[step, :, :]
        return acc + lax.dot_general(
            rows, grads, (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32
        )

    acc = lax.fori_loop(0, images * tiles, add, jnp.zeros(dw_ref.shape, jnp.float32))
    dw_ref[...] = acc


def _kernel_grad(
    x: jax.Array,
    dy: jax.Array,
    kernel: tuple[int, int],
    stride: int,
    padding: Padding,
    block: Block,
) -> jax.Array:
    """The kernel's gradient ``(K, kh, kw, C, O)``: per cell and tap, input rows (of
    `_phases`) transposed times the output's gradient, as wide as the rows, zeros at the
    extra columns; the images split in ``block.split`` shares, summed here."""
    xq = _phases(x, stride, padding)
    k, n, _, hq, wq, c = xq.shape
    ho, _, o = dy.shape[2:]
    rows = ho * wq
    pixels, ins, outs = _tile(rows, block.pixels), _tile(c, block.ins), _tile(o, block.outs)
    positions, channels = _round_up(rows, pixels), _round_up(c, ins)
    split = math.gcd(n, block.split)
    reach = (kernel[0] - 1) // stride * wq + (kernel[1] - 1) // stride
    xr = _flat_rows(xq, max(hq * wq, positions + reach), channels)
    wide = _pad_to(dy, (None, None, None, wq, _round_up(o, outs))).reshape(k, n, rows, -1)
    wide = _pad_to(wide, (None, None, positions, None))
    wide = wide.reshape(k, n * positions // pixels, pixels, wide.shape[-1])
    taps = kernel[0] * kernel[1]
    body = functools.partial(
        _kernel_grad_kernel, kernel_width=kernel[1], stride=stride, width=wq, images=n // split
    )
    per_share = n // split * positions // pixels
    parts = pl.pallas_call(
        body,
        out_shape=jax.ShapeDtypeStruct((k, split, taps, channels, wide.shape[-1]), jnp.float32),
        grid=(k, taps, channels // ins, wide.shape[-1] // outs, split),
        in_specs=[
            pl.BlockSpec(
                (None, n, *xr.shape[2:4], ins), lambda kk, t, ci, oo, sh: (kk, 0, 0, 0, ci)
            ),
            pl.BlockSpec(
                (None, per_share, pixels, outs), lambda kk, t, ci, oo, sh: (kk, sh, 0, oo)
            ),
        ],
        out_specs=pl.BlockSpec(
            (None, None, None, ins, outs), lambda kk, t, ci, oo, sh: (kk, sh, t, ci, oo)
        ),
        **block.params(),
        name="grid_conv_kernel_grad",
    )(xr, wide)
    dw = parts.sum(axis=1)[:, :, :c, :o]
    return dw.reshape(k, *kernel, c, o).astype(x.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def grid_conv(x: jax.Array, w: jax.Array, stride: int, padding: Padding, block: Block) -> jax.Array:
    """``y[k] = conv(x[k], w[k])`` for K cells: ``x`` ``(K, N, H, W, C)``, ``w`` ``(K, kh,
    kw, C, O)``, ``padding`` ``((top, bottom), (left, right))`` (as
    `lax.conv_general_dilated` takes it), the same ``stride`` along both axes.

    Examples:
      >>> x, w = jnp.ones((2, 1, 4, 4, 1)), jnp.ones((2, 3, 3, 1, 1))
      >>> grid_conv(x, w, 2, ((0, 1), (0, 1)), Block(interpret=True))[0, 0, :, :, 0]
      Array([[9., 6.],
             [6., 4.]], dtype=float32)
    """
    return _conv(x, w, stride, padding, block)


def _grid_conv_fwd(x, w, stride, padding, block):
    return _conv(x, w, stride, padding, block), (x, w)


def _grid_conv_bwd(stride, padding, block, saved, dy):
    x, w = saved
    dx = _input_grad(dy, w, x.shape[2:4], stride, padding, block)
    return dx, _kernel_grad(x, dy, w.shape[1:3], stride, padding, block)


grid_conv.defvjp(_grid_conv_fwd, _grid_conv_bwd)


def _lax_conv(x: jax.Array, w: jax.Array, stride: int, padding: Padding) -> jax.Array:
    """`grid_conv` as `jax.vmap` of `lax.conv_general_dilated`: the reference."""
    one = functools.partial(
        lax.conv_general_dilated,
        window_strides=(stride, stride),
        padding=padding,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    return jax.vmap(one)(x, w)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _lax_grads_conv(
    x: jax.Array, w: jax.Array, stride: int, padding: Padding, block: Block
) -> jax.Array:
    """`grid_conv`'s forward pass with `_lax_conv`'s gradients (`check_grads`'s reference)."""
    return _conv(x, w, stride, padding, block)


def _lax_grads(stride, padding, block, saved, dy):
    return jax.vjp(functools.partial(_lax_conv, stride=stride, padding=padding), *saved)[1](dy)


_lax_grads_conv.defvjp(_grid_conv_fwd, _lax_grads)


def _as_grid_conv(
    x: jax.Array, w: jax.Array, conv: Callable[..., jax.Array], **params: Any
) -> jax.Array:
    """A convolution equation of one cell's loss, its arguments stacked over K cells, as
    ``conv(x, w, stride, padding)`` (`grid_conv`'s)."""
    numbers = params["dimension_numbers"]
    plain = (
        numbers.lhs_spec == (0, 3, 1, 2)
        and numbers.rhs_spec == (3, 2, 0, 1)
        and numbers.out_spec == (0, 3, 1, 2)
        and params["feature_group_count"] == params["batch_group_count"] == 1
        and set(params["lhs_dilation"]) | set(params["rhs_dilation"]) == {1}
        and len(set(params["window_strides"])) == 1
        and x.ndim == 5
    )
    if not plain:
        raise NotImplementedError(
            f"grid_conv takes NHWC/HWIO 2D convolutions, undilated, ungrouped, one stride; "
            f"got {numbers}, strides {params['window_strides']}, groups "
            f"{params['feature_group_count']}, dilations {params['lhs_dilation']} "
            f"{params['rhs_dilation']}"
        )
    padding = tuple(tuple(p) for p in params["padding"])
    return conv(x, w, params["window_strides"][0], padding)


def _evaluate_grid(
    jaxpr: core.Jaxpr,
    consts: Sequence[Stacked],
    args: Sequence[Stacked],
    conv: Callable[..., jax.Array],
) -> list[Stacked]:
    """One cell's ``jaxpr`` run on arguments stacked over K cells (or not: each with its
    flag): each equation vmapped over the stacked values, each convolution ``conv`` (as
    `_as_grid_conv` calls it)."""
    env: dict[core.Var, Stacked] = {}

    def read(v: Any) -> Stacked:
        return Stacked(v.val, False) if isinstance(v, core.Literal) else env[v]

    env.update(zip(jaxpr.constvars, consts, strict=True))
    env.update(zip(jaxpr.invars, args, strict=True))
    for eqn in jaxpr.eqns:
        ins = [read(v) for v in eqn.invars]
        called = _called(eqn)
        if eqn.primitive is CONV:
            outs = [Stacked(_as_grid_conv(*(v for v, _ in ins), conv, **eqn.params), True)]
        elif called is not None and _has_conv(called[0]):
            inner, inner_consts = called
            outs = _evaluate_grid(inner, [Stacked(c, False) for c in inner_consts], ins, conv)
        else:
            outs = _bind_stacked(eqn, ins)
        env.update(
            (v, out)
            for v, out in zip(eqn.outvars, outs, strict=True)
            if not isinstance(v, core.DropVar)
        )
    return [read(v) for v in jaxpr.outvars]


def _bind_stacked(eqn: core.JaxprEqn, ins: Sequence[Stacked]) -> list[Stacked]:
    """``eqn`` on its arguments, vmapped over those stacked over the cells."""

    def bind(*args: Any) -> list[Any]:
        with eqn.ctx.manager:
            params = eqn.primitive.get_bind_params(eqn.params)
            outs = eqn.primitive.bind(*args, **params)
        return list(outs) if eqn.primitive.multiple_results else [outs]

    values = [v for v, _ in ins]
    if not any(stacked for _, stacked in ins):
        return [Stacked(out, False) for out in bind(*values)]
    axes = [0 if stacked else None for _, stacked in ins]
    return [Stacked(out, True) for out in jax.vmap(bind, in_axes=axes)(*values)]


def grid_loss(
    loss: Callable[..., jax.Array], block: Block, conv: Callable[..., jax.Array] = grid_conv
) -> Callable[..., jax.Array]:
    """The sum over K cells of ``loss(params, x, y)`` (one cell's), called on arguments
    stacked over the cells, its convolutions ``conv`` (`grid_conv`) with ``block``: its
    gradient is each cell's."""

    def total(*args: Any) -> jax.Array:
        leaves, tree = jax.tree.flatten(args)
        one = [jax.ShapeDtypeStruct(a.shape[1:], a.dtype) for a in leaves]
        closed = jax.make_jaxpr(loss)(*jax.tree.unflatten(tree, one))
        consts = [Stacked(c, False) for c in closed.consts]
        ((losses, _),) = _evaluate_grid(
            closed.jaxpr,
            consts,
            [Stacked(a, True) for a in leaves],
            functools.partial(conv, block=block),
        )
        return losses.sum()

    return total


def pallas_step(setup: Setup, block: Block) -> Callable[..., Any]:
    """The bench's Adam step of all K cells at once (`adam_step` of each), their
    convolutions `grid_conv`: ``(params, opt_state), x, y -> state``, stacked over K."""
    loss = grid_loss(setup.loss, block)

    def step(state: Any, x: jax.Array, y: jax.Array) -> Any:
        params, opt_state = state
        grads = jax.grad(loss)(params, x, y)
        updates, opt_state = jax.vmap(ADAM.update)(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    return step


def check(block: Block, dtype: str = "float32") -> float:
    """The largest difference, relative to the reference's largest value, between
    `grid_conv`'s forward pass and gradients and those of `jax.vmap` of
    `lax.conv_general_dilated` (K = 2, batch 2, 8x8, channels 1 -> 4 -> 8: stride 1,
    then 2; SAME padding)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 2, 8, 8, 1)).astype(jnp.dtype(dtype))
    ws = [rng.normal(size=(2, 3, 3, c, o)).astype(x.dtype) for c, o in [(1, 4), (4, 8)]]
    layers = [(1, ((1, 1), (1, 1))), (2, ((0, 1), (0, 1)))]

    def net(conv: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
        def out(x: jax.Array, *ws: jax.Array) -> jax.Array:
            for w, (stride, padding) in zip(ws, layers, strict=True):
                x = jnp.tanh(conv(x, w, stride, padding))
            return x

        return out

    ours = net(functools.partial(grid_conv, block=block))
    probe = rng.normal(size=jax.eval_shape(ours, x, *ws).shape).astype(x.dtype)

    def results(fn: Callable[..., jax.Array]) -> Any:
        y, pull = jax.vjp(fn, x, *ws)
        return y, *pull(probe)

    return _worst(jax.jit(lambda: (results(ours), results(net(_lax_conv))))())


def _worst(pairs: tuple[Any, Any]) -> float:
    """The largest difference between the leaves of ``pairs``, ``(got, want)``, relative to
    the largest magnitude of each ``want`` leaf (numpy: no op to compile)."""
    got, want = ([np.asarray(a, np.float32) for a in jax.tree.leaves(tree)] for tree in pairs)
    return max(float(np.abs(g - r).max() / np.abs(r).max()) for g, r in zip(got, want, strict=True))


def check_grads(loss: Callable[..., jax.Array], block: Block, params: Any, *data: Any) -> float:
    """The largest relative difference between each convolution's output in `grid_loss`
    and `_lax_conv`'s at its inputs, between `grid_loss` and the sum of `jax.vmap` of
    ``loss(params, *data)`` (one cell's), and between its gradients in ``params`` and those
    with `lax`'s convolutions' gradients at the same values: a ReLU's gradient is 0 or 1 by
    the sign of its input, which rounding flips where that is near 0 (one such flip made
    the bench's cnn2d gradients 1.4% off `jax.vmap`'s in float32). The loss alone hides
    forward faults (a cross-entropy at its start barely moves: outputs 1% too large moved
    the cnn2d grid's by 8e-4), so the outputs are compared one by one."""
    outputs: list[float] = []

    def compared(
        x: jax.Array, w: jax.Array, stride: int, padding: Padding, block: Block
    ) -> jax.Array:
        y = _conv(x, w, stride, padding, block)
        outputs.append(_worst((y, _lax_conv(x, w, stride, padding))))
        return y

    grid_loss(loss, block, compared)(params, *data)  # eager: each output compared as made
    got = jax.jit(jax.value_and_grad(grid_loss(loss, block)))(params, *data)
    want_loss = jax.jit(jax.vmap(loss))(params, *data).sum()
    want_grads = jax.jit(jax.grad(grid_loss(loss, block, _lax_grads_conv)))(params, *data)
    return max(*outputs, _worst((got, (want_loss, want_grads))))


def check_step(block: Block, cfg: SpeedConfig, k: int = 2) -> float:
    """`check_grads` of the cnn2d grid's loss (``cfg.batch`` examples per cell)."""
    setup = setup_model("cnn2d", cfg)
    params = _stack([params for params, _ in setup.states(k)])
    return check_grads(setup.loss, block, params, *_batches(setup, k, cfg.batch))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    conv_forms.add_grid_options(parser, rounds=3)
    parser.add_argument(
        "--blocks",
        nargs="+",
        default=["64,32,32,8"],
        metavar="P,O,I,S[,W]",
        help="the kernels' blocks timed: tiles of output positions, output channels and "
        "input channels, shares the images are split in for the kernel's gradient[, Triton "
        "warps] (64,32,32,8)",
    )
    parser.add_argument(
        "--forms",
        default="vmap,vmap_matmul_fwd,fused",
        help="conv_forms.py's forms timed alongside, comma-separated (%(default)s)",
    )
    parser.add_argument("--interpret", action="store_true", help="Pallas's interpreter (CPU)")
    parser.add_argument("--check", action="store_true", help="only compare with lax, then exit")
    args = parser.parse_args()
    blocks = [parse_block(text, args.interpret) for text in args.blocks]
    forms = tuple(args.forms.split(",")) if args.forms else ()
    if unknown := [form for form in forms if form not in conv_forms.VARIANTS]:
        parser.error(f"--forms: unknown {unknown}; give some of {','.join(conv_forms.VARIANTS)}")
    cfg = SpeedConfig(steps=args.steps, batch=args.batch, compute_dtype=args.dtype)
    if args.check:
        print(f"backend={jax.default_backend()} device={jax.devices()[0].device_kind}")
        sys.exit(0 if checks(blocks, args.dtype) else 1)
    setup = setup_model("cnn2d", cfg)
    conv_forms.print_header(args.dtype)
    for k in args.sizes:
        made = conv_forms.variants(setup, k, cfg, forms)
        for block in blocks:  # one that fails to compile leaves the others
            name = f"pallas {block}"
            try:
                grid = {name: functools.partial(pallas_step, block=block)}
                made |= conv_forms.variants(setup, k, cfg, (), grid)
            except Exception as error:  # Triton's lowering or compiling
                print(f"{'cnn2d':<7}{k:>4} {name}: failed: {type(error).__name__}: {error}")
        conv_forms.report("cnn2d", k, made, args.rounds, args.steps)


def checks(blocks: Sequence[Block], dtype: str) -> bool:
    """Prints `check` of the first block in float32 and bfloat16 (at its small sizes the
    blocks' tiles differ only in positions) and `check_step` (``dtype``, the bench's
    sizes) of each block; whether every one is within its `TOLERANCES`."""
    runs = [
        (f"block {blocks[0]} {d}: conv and grads vs lax", d, functools.partial(check, blocks[0], d))
        for d in TOLERANCES
    ]
    cfg = SpeedConfig(batch=4, compute_dtype=dtype)
    runs += [
        (
            f"block {b}: cnn2d grid's outputs, loss and grads ({dtype}) vs lax",
            dtype,
            functools.partial(check_step, b, cfg),
        )
        for b in blocks
    ]
    passed = True
    for label, dtype_, run in runs:
        try:
            error = run()
        except Exception as failure:  # Triton's lowering or compiling: the next may pass
            print(f"{label}: failed: {type(failure).__name__}: {failure}")
            passed = False
            continue
        print(f"{label}, max rel. error {error:.2e}")
        passed = passed and error < TOLERANCES[dtype_]
    return passed


if __name__ == "__main__":
    main()
