"""Primitives that `phosjax.morph` follows: bit casts, shifts, Bessel functions, dynamic slices,
tiles, iota and Fourier transforms."""

import contextlib
import re
from collections.abc import Callable

import jax
import jax.numpy as jnp
import jax.scipy.special as jss
import numpy as np
import pytest
from flax import linen as nn
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from phosjax.morph import UnsupportedOpError, channel_groups, mask, shrink
from tests.morph.two_layers import pruned_through, two_layers

ACTIVATIONS = {  # name: (activation, whether a dead channel stays zero through it)
    "copysign(h, h - 0.5)": (lambda h: jnp.copysign(h, h - 0.5), True),
    "where(signbit(h - 0.5), h, 2h)": (lambda h: jnp.where(jnp.signbit(h - 0.5), h, 2 * h), True),
    "i1e": (jss.i1e, True),
    "i0e": (jss.i0e, False),  # i0e(0) = 1
    "ldexp(h, 2)": (lambda h: jnp.ldexp(h, 2), False),  # frexp's bits: not known zero
    "int32 bits as uint32": (lambda h: _bits(jnp.round(jnp.abs(h) * 4).astype("i4"), "u4"), True),
    "float16 bits as bfloat16": (lambda h: _bits(h.astype("f2"), jnp.bfloat16), False),  # NaN
    "bfloat16 bits as float16": (lambda h: _bits(h.astype(jnp.bfloat16), "f2"), True),
    "float32 bits as int32": (lambda h: _bits(h, "i4"), False),  # -0.0's bits are not zero
    "float8_e4m3fn bits as float8_e4m3fnuz": (  # -0.0's bits are NaN there
        lambda h: _bits(h.astype(jnp.float8_e4m3fn), jnp.float8_e4m3fnuz),
        False,
    ),
    "as float8_e8m0fnu": (  # it has no zero: 0 becomes NaN
        lambda h: h.astype(jnp.float8_e8m0fnu).astype(jnp.float32),
        False,
    ),
    "as float8_e4m3fn": (lambda h: h.astype(jnp.float8_e4m3fn).astype(jnp.float32), True),
    "cumsum over rows": (lambda h: jnp.cumsum(h, 0), True),
    "cummax over rows": (lambda h: jax.lax.cummax(h, 0), True),
    "cumlogsumexp over rows": (lambda h: jax.lax.cumlogsumexp(h, 0), False),  # log(k) at step k
    "fft over rows, real part": (lambda h: jnp.fft.fft(h, axis=0).real, True),  # FNet's mixing
    "rfft then irfft over rows": (lambda h: jnp.fft.irfft(jnp.fft.rfft(h, axis=0), 3, 0), True),
    "power spectrum over rows": (lambda h: (_spectrum(h) * jnp.conj(_spectrum(h))).real, True),
    # conj's zeros are the product's: a power spectrum's factor is zero with or without them
    "cross spectrum of h + 1 and h over rows": (
        lambda h: (_spectrum(h + 1) * jnp.conj(_spectrum(h))).real,
        True,
    ),
    "fft over rows, imaginary part": (lambda h: jnp.fft.fft(h, axis=0).imag, True),
    "int32 of h shifted left": (lambda h: (_int(h, "i4") << 2).astype(jnp.float32), True),
    "int32 of h shifted right": (lambda h: (_int(h, "i4") >> 2).astype(jnp.float32), True),
    "uint32 of h shifted right, logically": (
        lambda h: jax.lax.shift_right_logical(_int(h, "u4"), jnp.uint32(2)).astype(jnp.float32),
        True,
    ),
    "abs(complex(h, 2h))": (lambda h: jnp.abs(jax.lax.complex(h, 2 * h)), True),
    "abs(complex(h, 1))": (lambda h: jnp.abs(jax.lax.complex(h, jnp.ones_like(h))), False),
    "fft times 1j over rows": (lambda h: jnp.fft.ifft(_spectrum(h) * 1j, axis=0).real, True),
    "abs(h ** (0.5+1j))": (lambda h: jnp.abs(h.astype("c8") ** (0.5 + 1j)), False),  # 0 ** y: NaN
    "device_put of (h, exp(h))": (lambda h: sum(jax.device_put((h, jnp.exp(h)))), False),
    "device_put of (h, 2h)": (lambda h: sum(jax.device_put((h, 2 * h))), True),
    "optimization_barrier of (h, exp(h))": (
        lambda h: sum(jax.lax.optimization_barrier((h, jnp.exp(h)))),
        False,
    ),
    "optimization_barrier of (h, 2h)": (
        lambda h: sum(jax.lax.optimization_barrier((h, 2 * h))),
        True,
    ),
}


def _spectrum(h):
    return jnp.fft.fft(h, axis=0)


def _int(h, dtype):
    """``|h|`` in sixteenths, rounded, as the integer ``dtype``: zero where ``h`` is."""
    return jnp.round(jnp.abs(h) * 16).astype(dtype)


def _bits(h, dtype):
    """``h``'s bits read as ``dtype`` (of the same width), as float32."""
    return jax.lax.bitcast_convert_type(h, dtype).astype(jnp.float32)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_bitcasts_shifts_and_bessel_functions_follow_channels(name):
    """bitcast_convert_type (in copysign, signbit, ldexp), shifts and bessel_i0e/i1e were
    refused as unsupported; they are elementwise: a dead channel is pruned where it stays
    zero (shrunk equal to masked), pinned where it does not. A bitcast was taken to lose
    every zero; an integer's zero bits or a float's as another float with a -0.0 are
    still zero (float8_e4m3fnuz has none: -0.0's bits are NaN there), where a NaN's bits
    stay a NaN too (a float16 NaN's are a finite bfloat16). A cast to float8_e8m0fnu,
    which has no zero, does not keep one. A
    cumulative op over another axis lost a dead channel's zeros; all but cumlogsumexp keep
    them. A Fourier transform (jnp.fft) was refused as unsupported; it is linear along the
    axes it transforms, so over another axis it keeps a dead channel's zeros; so do conj
    and complex (zero where both parts are), which were refused too. jax.device_put, which
    moves arrays, was refused; each of its outputs is its input, as of
    lax.optimization_barrier, whose several operands failed with an internal zip error. A
    complex known operand (1j) warned (an error under -W error), read as a power's exponent;
    a power by one with an imaginary part was taken to keep a zero, but 0 ** (0.5+1j) is
    NaN. Each op followed as keeping a zero has a row that keeps it only through that op
    (shifts, conj, imag had none: a power spectrum's product is zero where its first
    factor is, whatever conj gives)."""
    act, keeps_zero = ACTIVATIONS[name]
    groups, pruned = pruned_through(act)
    assert bool(groups.groups) == keeps_zero, groups.pinned
    if keeps_zero:  # shrunk equals masked, up to sums of 2 vs 4 terms
        np.testing.assert_allclose(*pruned, atol=1e-5, rtol=1e-5)
    else:
        assert "not zero when dead" in groups.pinned["w1:1"]


class Constrained(nn.Module):
    """A kernel and the activation after it, each passed through ``pin`` (a sharding
    constraint or reshard), then a dense head."""

    width: int
    pin: Callable[[jax.Array], jax.Array] = lambda a: a

    @nn.compact
    def __call__(self, x):
        kernel = self.pin(self.param("kernel", nn.initializers.normal(1.0), (5, self.width)))
        return nn.Dense(2, name="head")(self.pin(jax.nn.relu(x @ kernel)))


SHARDINGS = {  # name: (pin, the mesh it is called under)
    "with_sharding_constraint": (
        lambda a: jax.lax.with_sharding_constraint(
            a, NamedSharding(jax.make_mesh((1,), ("data",)), PartitionSpec())
        ),
        contextlib.nullcontext,
    ),
    "reshard": (
        lambda a: jax.sharding.reshard(a, PartitionSpec()),
        lambda: jax.set_mesh(jax.make_mesh((1,), ("data",), axis_types=(AxisType.Explicit,))),
    ),
}


@pytest.mark.parametrize("name", SHARDINGS)
def test_a_sharding_constraint_passes_its_array_through(name):
    """lax.with_sharding_constraint was taken for an elementwise op that loses zeros and
    drops its operand's leaf, and jax.sharding.reshard was refused: the constrained
    kernel made no group (and the activation's dead channels would be pinned). Each
    passes its array through: the groups are those of the model without it, and shrunk
    equals masked."""
    pin, mesh = SHARDINGS[name]
    x = jax.random.normal(jax.random.key(1), (3, 5))
    with mesh():
        model = Constrained(4, pin)
        variables = model.init(jax.random.key(0), x)
        groups = channel_groups(model.apply, variables, x)
        plain = channel_groups(Constrained(4).apply, variables, x)
        alive = {"kernel": np.array([True, False, True, False])}
        small = Constrained(2, pin).apply(shrink(variables, alive, groups).variables, x)
        masked = model.apply(mask(variables, alive, groups), x)
    assert (groups.groups, groups.pinned) == (plain.groups, plain.pinned)
    assert [m.path for m in groups.groups[0].members] == ["params/head/kernel", "params/kernel"]
    np.testing.assert_allclose(small, masked, atol=1e-6)


@pytest.mark.parametrize(
    ("dtype", "prunable"), [(jnp.float8_e4m3fn, True), (jnp.float8_e8m0fnu, False)]
)
def test_a_kernel_cast_to_a_dtype_without_a_zero_is_not_zeroed_through(dtype, prunable):
    """A kernel cast to float8_e8m0fnu, which has no zero, was still a kernel `mask`
    zeroes through: its dead channel was pruned, yet masked made it NaN (shrunk did not).
    It makes no group; a cast to a float with a zero still prunes (shrunk equal to masked)."""
    p, x = two_layers(4, 4)
    p["w1"] = jnp.abs(p["w1"]) + 0.5  # float8_e8m0fnu holds positive powers of two
    cast = lambda w: w.astype(dtype).astype(jnp.float32)
    apply = lambda p, x: jax.nn.relu(x @ cast(p["w1"]) + p["b1"]) @ p["w2"]
    groups = channel_groups(apply, p, x)
    assert bool(groups.groups) == prunable
    if prunable:
        alive = {"w1": np.array([True, False, True, True])}
        masked = apply(mask(p, alive, groups), x)
        np.testing.assert_allclose(apply(shrink(p, alive, groups).variables, x), masked)
        assert np.isfinite(masked).all()


def test_a_bitcast_to_another_width_is_refused_naming_what_to_do():
    p, x = two_layers(4, 4)
    to_bytes = lambda h: jax.lax.bitcast_convert_type(h, jnp.uint8).astype(jnp.float32).sum(-1)
    apply = lambda p, x: to_bytes(x @ p["w1"]) @ p["w2"]
    with pytest.raises(
        UnsupportedOpError,
        match=r"the primitive 'bitcast_convert_type' bitcasts to a dtype of another width, "
        r"which adds or removes an axis of its parts; bitcast to a dtype of the same width",
    ):
        channel_groups(apply, p, x)


def _row(x):
    """A position the data picks, so the slices below are dynamic."""
    return jnp.argmax(x[:, 0])


SLICES = {  # name: (block on h = relu(x @ w1 + b1), (3, 4), whether its channels stay free)
    "dynamic_slice of rows": (lambda h, i: jax.lax.dynamic_slice_in_dim(h, i, 2), True),
    "h[i]": (lambda h, i: h[i], True),
    "update of rows": (
        lambda h, i: jax.lax.dynamic_update_slice_in_dim(jnp.zeros((5, h.shape[1])), h, i, 0),
        True,
    ),
    "dynamic_slice of channels": (
        lambda h, i: jnp.concatenate([jax.lax.dynamic_slice_in_dim(h, i, 2, axis=1)] * 2, 1),
        "dynamic_slice (",
    ),
    "update of channels": (
        lambda h, i: jax.lax.dynamic_update_slice_in_dim(h, jnp.ones((3, 1)), i, axis=1),
        "dynamic_update_slice (",
    ),
    "h.at[rows].set": (
        lambda h, i: jnp.zeros((5, h.shape[1])).at[jnp.array([0, 2, 4])].set(h),
        True,
    ),
    "h.at[rows].add": (lambda h, i: h.at[jnp.array([0, 0, i])].add(h), True),
    "take rows, filling with 1": (  # row 7 is all ones, a dead channel's too
        lambda h, i: jnp.take(h, jnp.array([0, 7]), axis=0, mode="fill", fill_value=1.0),
        "dot_general (",
    ),
    "vmapped h[i] of rows": (  # a gather indexing the channels too, at 0
        lambda h, i: jax.vmap(lambda k: jax.lax.dynamic_index_in_dim(h, k, keepdims=False))(
            jnp.array([i, 0])
        ),
        True,
    ),
    "vmapped update of rows": (  # a scatter indexing the channels too, at 0
        lambda h, i: jax.vmap(
            lambda r, k: jax.lax.dynamic_update_slice_in_dim(jnp.zeros((2, len(r))), r[None], k, 0)
        )(h, jnp.array([i, 0, 1]) % 2).sum(1),
        True,
    ),
    "h.at[channel].set": (lambda h, i: h.at[:, i].set(1.0), "scatter ("),
    "count at positions h gives": (  # a dead channel's index 0 still counts
        lambda h, i: jnp.zeros((2, 4)).at[(h <= 0).astype(jnp.int32)].add(1.0),
        "scatter-add (",
    ),
    "h.at[rows].apply(cos)": (lambda h, i: h.at[i].apply(jnp.cos), "dot_general ("),  # cos(0) = 1
    "tile of rows": (lambda h, i: jnp.tile(h, (2, 1)), True),
    "tile of channels": (lambda h, i: jnp.tile(h, 2)[:, ::2], "tile ("),
}


@pytest.mark.parametrize("name", sorted(SLICES))
def test_dynamic_slices_scatters_and_tiles_carry_the_channels_of_the_axes_they_take_whole(name):
    """dynamic_slice, dynamic_update_slice (a traced index: h[i], a buffer written in a
    loop), scatter (h.at[idx].set) and tile were refused as unsupported; an axis they take
    whole carries its channels (shrunk equal to masked), one they cut, write at positions
    or repeat is pinned, naming the op and the line of the model that does it. A
    scatter's indices were not read: positions computed from channels were pruned. A
    gather filling a missed index with a number (1.0) kept a dead channel's zeros."""
    block, free = SLICES[name]
    p, x = two_layers(4, 4)
    apply = lambda p, x: block(jax.nn.relu(x @ p["w1"] + p["b1"]), _row(x)) @ p["w2"]
    groups = channel_groups(apply, p, x)
    if free is not True:
        assert not groups.groups
        assert groups.pinned["w1:1"].startswith(free) and "test_ops.py" in groups.pinned["w1:1"]
        return
    alive = {"w1": np.array([True, True, False, True])}
    masked = apply(mask(p, alive, groups), x)
    np.testing.assert_allclose(apply(shrink(p, alive, groups).variables, x), masked, atol=1e-5)
    assert not np.allclose(masked, apply(p, x), atol=1e-3)


SORTS = {  # name: (block on h = relu(x @ w1 + b1), (3, 4), whether its channels stay free)
    "sort of rows": (lambda h, g: jnp.sort(h, axis=0), True),
    "sort of rows moving another value": (  # g's channels are tied to h's
        lambda h, g: jax.lax.sort((h, g), dimension=0, num_keys=1)[0],
        True,
    ),
    "sort of rows keyed by two values": (
        lambda h, g: jax.lax.sort((h, g, 2 * h), dimension=0, num_keys=2)[0],
        True,
    ),
    "sort of rows by another value": (  # h's rows move by g's keys: see the NaN test below
        lambda h, g: jax.lax.sort((jnp.tanh(h) - g, h), dimension=0, num_keys=1)[1],
        "dot_general (",
    ),
    "sort of channels": (lambda h, g: jnp.sort(h, axis=1), "sort ("),
    "sort of channels by another value": (
        lambda h, g: jax.lax.sort((g, h), dimension=1, num_keys=1)[1],
        "sort (",
    ),
    "argsort of rows": (  # a dead channel's indices are 0, 1, 2: pinned by their iota
        lambda h, g: h * jnp.argsort(h, axis=0),
        "iota (",
    ),
}


@pytest.mark.parametrize("name", sorted(SORTS))
def test_a_sort_carries_the_channels_of_the_axes_it_does_not_sort(name):
    """sort was refused as unsupported; each row along its axis is sorted on its own, by
    its own keys, so the other axes carry their channels, tied across its operands
    (shrunk equal to masked), and the sorted axis is pinned, naming the line of the model
    that sorts. argsort's indices are not zero for a dead channel: pinned."""
    block, free = SORTS[name]
    p, x = two_layers(4, 4)
    p["w3"] = jax.random.normal(jax.random.key(3), (5, 4))

    def apply(p, x):
        h, g = jax.nn.relu(x @ p["w1"] + p["b1"]), jax.nn.relu(x @ p["w3"])
        return block(h, g) @ p["w2"]

    groups = channel_groups(apply, p, x)
    if free is not True:
        assert not groups.groups
        assert groups.pinned["w1:1"].startswith(free) and "test_ops.py" in groups.pinned["w1:1"]
        return
    [group] = groups.groups
    assert {m.path for m in group.members} >= {"w1", "b1", "w2"}
    alive = {group.name: np.array([True, True, False, True])}
    masked = apply(mask(p, alive, groups), x)
    np.testing.assert_allclose(apply(shrink(p, alive, groups).variables, x), masked, atol=1e-5)
    assert not np.allclose(masked, apply(p, x), atol=1e-3)


def test_a_sort_by_other_keys_does_not_keep_the_zeros_of_what_it_moves():
    """Each channel of a value sorted by another's keys moves by its own keys, and so does
    a row that is NaN in every channel (an id out of range of ``jnp.take``): a dead
    channel's keys are zero, which leaves its NaN where no live channel's is, and masked
    was NaN on a row where shrunk was not. What the keys move is not zero when dead."""
    keys = jax.random.split(jax.random.key(0), 3)
    p = {"table": jax.random.normal(keys[0], (5, 4)), "w2": jax.random.normal(keys[1], (4, 2))}
    p["w3"] = jax.random.normal(keys[2], (3, 4))
    ids = jnp.array([0, 7, 2, 3])  # 7 is out of range: NaN in every channel

    def apply(p, ids):
        k = -jnp.arange(4.0)[:, None] * (jnp.ones((4, 3)) @ p["w3"]) ** 2  # live: reversed
        return jax.lax.sort((k, jnp.take(p["table"], ids, axis=0)), num_keys=1, dimension=0)[1]

    groups = channel_groups(lambda p, ids: apply(p, ids) @ p["w2"], p, ids)
    assert not groups.groups
    assert groups.pinned["table:1"].startswith("dot_general (")
    # the first operand's NaN rows are last in every channel: its zeros are kept
    first = lambda p, ids: jax.lax.sort(jnp.take(p["table"], ids, axis=0), dimension=0) @ p["w2"]
    groups = channel_groups(first, p, ids)
    alive = {groups.groups[0].name: np.array([True, True, False, True])}
    masked = first(mask(p, alive, groups), ids)
    np.testing.assert_allclose(first(shrink(p, alive, groups).variables, ids), masked, atol=1e-5)
    assert np.isnan(masked).any() and not np.isnan(masked).all()


@pytest.mark.parametrize(
    ("block", "inner", "reason"),
    [
        (lambda h: h[:, 1:], 3, r"^slice \(\S+test_ops\.py:\d+.* cuts this axis$"),
        (lambda h: jnp.pad(h, ((0, 0), (1, 0))), 5, r"^pad \(\S+test_ops\.py:\d+.* pads this axis"),
        (
            lambda h: jnp.fft.fft(h).real,
            4,
            r"^fft \(\S+test_ops\.py:\d+.* transforms along this axis$",
        ),
    ],
)
def test_a_slice_pins_the_channels_it_cuts_and_a_pad_those_it_pads(block, inner, reason):
    """Both said "cuts or pads this axis", whichever they did. A Fourier transform over the
    channels mixes them: it pins them."""
    p, x = two_layers(4, inner)
    pinned = channel_groups(lambda p, x: block(x @ p["w1"]) @ p["w2"], p, x).pinned["w1:1"]
    assert re.match(reason, pinned), pinned


def test_a_position_numbered_by_iota_pins_the_channels_it_meets_naming_the_line():
    """jnp.tril's mask numbers the channels' positions (iota); the pin said only "iota",
    not what or where."""
    p, x = two_layers(4, 4)
    apply = lambda p, x: jnp.tril(jax.nn.relu(x @ p["w1"] + p["b1"])) @ p["w2"]
    reason = channel_groups(apply, p, x).pinned["w1:1"]
    assert reason.startswith("iota (") and "test_ops.py" in reason, reason
    assert "numbers the positions along this axis" in reason, reason


def test_a_reshape_in_another_order_is_refused_naming_its_line_the_order_and_the_fix():
    """lax.reshape(h, sizes, dimensions) raised "reshape (...): reshape with dimensions is
    not supported": no order, primitive or what to do."""
    p, x = two_layers(4, 4)
    flat = lambda h: jax.lax.reshape(h, (12,), (1, 0)).reshape(3, 4)
    with pytest.raises(
        UnsupportedOpError,
        match=r"through reshape \(\S+test_ops\.py:\d+:\d+ .*the primitive 'reshape' reshapes in "
        r"the order dimensions=\(1, 0\), which phosjax.morph does not follow; transpose first "
        r"\(jnp.transpose\(h, \(1, 0\)\)\), then reshape\.",
    ):
        channel_groups(lambda p, x: flat(x @ p["w1"]) @ p["w2"], p, x)


def test_a_convolution_over_batch_groups_is_refused_naming_its_module_line_and_the_fix():
    """batch_group_count != 1 raised "conv_general_dilated (...): batch_group_count != 1 is
    not supported": no value, module or what to do."""
    kernel = {"k": jnp.ones((2, 2, 1))}  # (out, in, window): 2 batch groups, 1 out each
    conv = lambda p, x: jax.lax.conv_general_dilated(x, p["k"], (1,), "VALID", batch_group_count=2)
    with pytest.raises(
        UnsupportedOpError,
        match=r"through conv_general_dilated \(\S+test_ops\.py:\d+:\d+ .*the primitive "
        r"'conv_general_dilated' sums over groups of the batch \(batch_group_count=2\), which "
        r"phosjax.morph does not follow; convolve with batch_group_count=1\.",
    ):
        channel_groups(conv, kernel, jnp.ones((2, 2, 4)))
