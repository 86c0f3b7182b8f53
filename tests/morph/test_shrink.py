"""Channel groups, mask and shrink: the shrunk model equals the masked one, on any tree."""

import functools
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import phosjax as px
from phosjax.layers import GLU
from phosjax.models import ModelConfig
from phosjax.models.graph import GraphModel
from phosjax.morph import (
    ChannelGroup,
    ChannelGroups,
    Folded,
    Morphed,
    Shrunk,
    UnsupportedOpError,
    alive_channels,
    channel_groups,
    cost_polynomial,
    expressible,
    fold,
    importance,
    mask,
    morph_regularizer,
    report,
    shrink,
)
from phosjax.morph._groups import leaf_path
from phosjax.train import make_optimizer
from tests.morph.perturb import perturbed
from tests.morph.two_layers import pruned_through, two_layers

ZOO = {
    name: ModelConfig(name, num_classes=5, input_shape=shape)
    for name, shape in {
        "mlp": (40,),
        "cnn1d": (40,),
        "cnn2d": (8, 8, 1),
        "resnet": (8, 8, 1),
        "transformer": (40,),
        "gru": (40,),  # nn.RNN: a scan
    }.items()
}
# Two blocks per stage: the first block of stage 1 downsamples, so the stages are not
# split into one per block (that computes another function on the same variables).
ZOO["cnn2d, 2 blocks per stage"] = ZOO["cnn2d"].replace(depth=2, width=(8, 16))
# A choice's skip branch projects where the width changes (blocks_2 here).
ZOO["choicenet, stages of 8 and 16"] = ModelConfig("choicenet", 5, (40,), width=(8, 16))
# top_k routing: the stream and the experts' hidden width prune, the expert axis is pinned.
ZOO["moenet"] = ModelConfig(
    "moenet", 5, (40,), width=(8,), options={"num_experts": 2, "hidden_features": 8}
)


@functools.cache
def _zoo_init(name: str):
    """An input of 3 examples for ``ZOO[name]`` and the model's variables, made by one
    program (op by op, each op compiles) once for the tests that take them."""
    config = ZOO[name]
    x = jax.random.normal(jax.random.key(1), (3, *config.input_shape))
    return x, jax.jit(config.build().init)(jax.random.key(0), x)


def _random_alive(groups, seed=0, fraction=0.6):
    rng = np.random.default_rng(seed)
    return {g.name: rng.random(g.size) < fraction for g in groups.groups}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_shrunk_equals_masked_and_shrinking_twice_changes_nothing(name):
    config = ZOO[name]
    model = config.build()
    x, variables = _zoo_init(name)
    variables = perturbed(variables)
    groups = channel_groups(model, variables, x)
    alive = expressible(config, groups, _random_alive(groups))
    small = shrink(variables, alive, groups, config=config)

    apply = jax.jit(model.apply)  # one program for both: each jax.jit(...) compiles anew
    masked_out = apply(mask(variables, alive, groups), x)
    small_out = jax.jit(small.config.build().apply)(small.variables, x)
    np.testing.assert_allclose(small_out, masked_out, atol=1e-5, rtol=1e-5)
    assert not np.allclose(masked_out, apply(variables, x), atol=1e-3)
    assert small.widths == {name: int(keep.sum()) for name, keep in alive.items()}

    again = channel_groups(small.config.build(), small.variables, x)
    twice = shrink(small.variables, again.full(), again, config=small.config)
    assert twice.config == small.config
    assert jax.tree.all(jax.tree.map(np.array_equal, twice.variables, small.variables))


def test_groups_of_the_zoo_follow_residuals_norms_and_heads():
    resnet = ZOO["resnet"]
    x = jnp.ones((2, 8, 8, 1))
    _, variables = _zoo_init("resnet")
    groups = {g.name: g for g in channel_groups(resnet.build(), variables, x).groups}
    stream = {(m.path, m.axis) for m in groups["blocks_0/conv_1"].members}
    assert ("params/stem/Conv_0/kernel", 3) in stream  # the residual add ties the stem
    assert ("params/blocks_0/norm_1/scale", 0) in stream
    assert ("batch_stats/blocks_0/norm_1/mean", 0) in stream
    proj = {(m.path, m.axis) for m in groups["blocks_1/conv_1"].members}
    assert ("params/blocks_1/proj/kernel", 3) in proj and ("params/head/kernel", 0) in proj

    transformer = ZOO["transformer"]
    x = jnp.ones((2, 40))
    _, variables = _zoo_init("transformer")
    found = channel_groups(transformer.build(), variables, x)
    heads = {g.name: g for g in found.groups}["blocks_0/attention/qkv"]  # its only group
    assert heads.size == 4
    assert {(m.path, m.axis) for m in heads.members} == {
        ("params/blocks_0/attention/qkv/kernel", 2),
        ("params/blocks_0/attention/qkv/bias", 1),
        ("params/blocks_0/attention/out/kernel", 0),
    }
    # LayerNorm reduces over the residual stream: it is pinned, with the op named.
    assert "reduce_sum" in found.pinned["params/blocks_0/attention_norm/scale:0"]


class PlainCNN(nn.Module):
    """A CNN written without phosjax: conv-BN-relu, a residual pair, a depthwise conv."""

    widths: tuple[int, int] = (6, 5)

    @nn.compact
    def __call__(self, x, train=False):
        bn = lambda name: nn.BatchNorm(use_running_average=not train, name=name)
        h = nn.relu(bn("bn0")(nn.Conv(self.widths[0], (3, 3), name="conv0")(x)))
        r = nn.Conv(self.widths[1], (3, 3), name="conv1")(h)
        s = nn.Conv(self.widths[1], (1, 1), name="skip")(h)
        h = nn.relu(r + s)
        c = h.shape[-1]
        h = nn.Conv(c, (3, 3), feature_group_count=c, name="depthwise")(h)
        h = jnp.concatenate([h, nn.relu(nn.Dense(3, name="side")(h))], axis=-1)
        return nn.Dense(4, name="head")(h.reshape(h.shape[0], -1))


def _grouped(model, shape):
    """An input of ``shape``, ``model``'s perturbed variables and its channel groups."""
    x = jax.random.normal(jax.random.key(1), shape)
    variables = perturbed(model.init(jax.random.key(0), x))
    return x, variables, channel_groups(model, variables, x)


def test_plain_flax_cnn_shrunk_equals_masked_with_its_optimizer_state():
    model = PlainCNN()
    x, variables, groups = _grouped(model, (2, 5, 5, 2))
    assert groups.names == ("conv0", "conv1", "side")
    by_position = channel_groups(model, variables, x, False)  # a flag is passed, not traced
    assert by_position == channel_groups(model, variables, x, train=False)
    tied = {(m.path, m.axis) for m in groups.groups[1].members}
    assert {("params/skip/kernel", 3), ("params/depthwise/kernel", 3)} <= tied
    alive = {"conv0": [1, 0, 1, 1, 0, 1], "conv1": [0, 1, 1, 0, 1], "side": [1, 0, 1]}
    params = variables["params"]
    opt_state = optax.adam(1e-3).init(params)
    small = shrink(variables, alive, groups, opt_state=opt_state)
    assert small.widths == {"conv0": 4, "conv1": 3, "side": 2}

    # the concatenation [depthwise (3), side (2)] feeds the flattened head
    assert small.variables["params"]["head"]["kernel"].shape == (5 * 5 * 5, 4)
    mu = small.opt_state[0].mu
    assert jax.tree.map(jnp.shape, mu) == jax.tree.map(jnp.shape, small.variables["params"])

    # PlainCNN's side branch is fixed at 3 wide: compare with that group kept whole
    alive = {**alive, "side": [1, 1, 1]}
    small = shrink(variables, alive, groups)
    masked_out = jax.jit(model.apply)(mask(variables, alive, groups), x)
    small_out = jax.jit(PlainCNN(widths=(4, 3)).apply)(small.variables, x)
    np.testing.assert_allclose(small_out, masked_out, atol=1e-5, rtol=1e-5)


class LiftedMLP(nn.Module):
    """Dense, relu, Dense; ``remat`` lifts the first with `nn.remat` (a ``remat2`` call)."""

    widths: tuple[int] = (6,)
    remat: bool = False

    @nn.compact
    def __call__(self, x):
        dense = nn.remat(nn.Dense) if self.remat else nn.Dense
        return nn.Dense(2, name="head")(nn.relu(dense(self.widths[0], name="hidden")(x)))


def test_a_layer_lifted_with_remat_is_followed_as_the_plain_layer():
    model = LiftedMLP(remat=True)
    x, variables, groups = _grouped(model, (3, 4))
    assert groups.groups == channel_groups(LiftedMLP(), variables, x).groups
    alive = {"hidden": np.arange(6) % 3 != 1}
    np.testing.assert_allclose(
        LiftedMLP((4,), remat=True).apply(shrink(variables, alive, groups).variables, x),
        model.apply(mask(variables, alive, groups), x),
        atol=1e-5,
    )


class EmbeddingLM(nn.Module):
    """nn.Embed, an MLP, and logits read through the embedding (``attend``: tied weights)."""

    widths: tuple[int, int] = (6, 5)

    @nn.compact
    def __call__(self, ids):
        embed = nn.Embed(10, self.widths[0], name="embed")
        h = nn.relu(nn.Dense(self.widths[1], name="hidden")(embed(ids)))
        return embed.attend(nn.Dense(self.widths[0], name="out")(h))


def test_an_embedding_s_features_prune_exactly_and_its_vocabulary_is_pinned():
    ids = jax.random.randint(jax.random.key(1), (3, 7), 0, 10)
    model = EmbeddingLM()
    variables = perturbed(model.init(jax.random.key(0), ids))
    groups = channel_groups(model, variables, ids)
    assert groups.names == ("embed", "hidden")
    assert ("params/out/kernel", 1) in {(m.path, m.axis) for m in groups.groups[0].members}
    assert "gather" in groups.pinned["params/embed/embedding:0"]
    alive = {"embed": [0, 1, 1, 0, 1, 1], "hidden": [1, 0, 1, 1, 0]}
    np.testing.assert_allclose(
        EmbeddingLM((4, 3)).apply(shrink(variables, alive, groups).variables, ids),
        model.apply(mask(variables, alive, groups), ids),
        atol=1e-5,
    )


NAN_FILLED = {  # name: (what the model does to an embedding, whether it stays a group)
    "nan_to_num(nan=0)": (lambda h: jnp.nan_to_num(h), True),
    "nan_to_num(nan=1)": (lambda h: jnp.nan_to_num(h, nan=1.0), False),
    "as int": (lambda h: h.astype(jnp.int32).astype(h.dtype), True),
    "as bool": (lambda h: h.astype(bool).astype(h.dtype), False),
    "float16 bits as bfloat16": (lambda h: _bits_as(h, jnp.float16, jnp.bfloat16), False),
    "bfloat16 bits as float16": (lambda h: _bits_as(h, jnp.bfloat16, jnp.float16), True),
}


def _bits_as(h, source, target):
    """``h`` as ``source``, its bits read as ``target`` (a NaN float16's are a finite
    bfloat16, a NaN bfloat16's a NaN float16), back as ``h``'s dtype."""
    return jax.lax.bitcast_convert_type(h.astype(source), target).astype(h.dtype)


@pytest.mark.parametrize("name", sorted(NAN_FILLED))
def test_an_id_out_of_range_is_nan_in_every_channel_and_a_nan_test_loses_zeros(name):
    """``jnp.take`` fills a missed id with NaN in every channel, a dead one too: replacing
    NaN by 0 or casting it to an int (0) keeps it zero (pruned exactly), replacing it by 1
    (``isnan`` is True), casting it to a bool (True) or reading a float16's bits as a
    bfloat16 (finite) does not (pinned)."""
    op, prunable = NAN_FILLED[name]
    keys = jax.random.split(jax.random.key(0), 2)
    p = {"table": jax.random.normal(keys[0], (5, 4)), "w2": jax.random.normal(keys[1], (4, 2))}
    ids = jnp.array([0, 3, 9])  # 9 is out of range

    def apply(p, ids):
        return op(jnp.take(p["table"], ids, axis=0)) @ p["w2"]

    groups = channel_groups(apply, p, ids)
    if not prunable:
        assert groups.names == () and "not zero when dead" in groups.pinned["table:1"]
        return
    alive = {"table": np.array([1, 0, 1, 1], bool)}
    pruned = apply(shrink(p, alive, groups).variables, ids)
    np.testing.assert_allclose(pruned, apply(mask(p, alive, groups), ids), atol=1e-5)


class PooledCNN(nn.Module):
    """Pooling, a flip, a zero pad and a stack between convolutions, in plain Flax."""

    widths: tuple[int, int] = (6, 5)

    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Conv(self.widths[0], (3, 3), name="conv0")(x))
        h = jnp.flip(nn.max_pool(h, (2, 2), (2, 2), padding="SAME"), axis=1)
        h = jnp.pad(h, ((0, 0), (1, 1), (1, 1), (0, 0)))  # zeros: dead channels stay zero
        h = nn.relu(nn.Conv(self.widths[1], (3, 3), name="conv1")(h))
        h = nn.avg_pool(h, (3, 3), padding="SAME", count_include_pad=False)
        side = nn.relu(nn.Conv(self.widths[1], (1, 1), name="side")(h))
        h = jnp.stack([h, side], axis=1)  # ties side's channels to conv1's
        return nn.Dense(4, name="head")(h.reshape(h.shape[0], -1))


def test_pooled_flipped_and_stacked_channels_shrunk_equals_masked():
    model = PooledCNN()
    x, variables, groups = _grouped(model, (2, 7, 7, 2))
    assert groups.names == ("conv0", "conv1")
    tied = {(m.path, m.axis) for m in groups.groups[1].members}
    assert ("params/side/kernel", 3) in tied
    alive = {"conv0": [1, 0, 1, 1, 0, 1], "conv1": [0, 1, 1, 0, 1]}
    small = shrink(variables, alive, groups)
    assert small.variables["params"]["head"]["kernel"].shape == (2 * 6 * 6 * 3, 4)
    masked_out = jax.jit(model.apply)(mask(variables, alive, groups), x)
    small_out = jax.jit(PooledCNN(widths=(4, 3)).apply)(small.variables, x)
    np.testing.assert_allclose(small_out, masked_out, atol=1e-5, rtol=1e-5)


CUT_KERNELS = {  # name: (what the model does to its (rows, 4) kernel to get (5, 4), rows)
    "flipped and sliced": (lambda w: w[::-1][:5], 7),
    "padded with zeros": (lambda w: jnp.pad(w, ((2, 0), (0, 0))), 3),
    "padded with ones": (lambda w: jnp.pad(w, ((2, 0), (0, 0)), constant_values=1.0), 3),
    "through a combiner adding its init": (
        lambda w: jax.lax.reduce_window(w, 1.0, jax.lax.add, (1, 1), (1, 1), "VALID"),
        5,
    ),
}


@pytest.mark.parametrize("name", sorted(CUT_KERNELS))
def test_a_kernel_cut_on_its_input_axis_prunes_its_outputs_exactly_or_pins_them(name):
    """A cut that keeps a kernel's zeros leaves its output channels a group; one that
    loses them (a pad with ones, a combiner adding 1) pins them: mask would not zero them."""
    cut, rows = CUT_KERNELS[name]
    keys = iter(jax.random.split(jax.random.key(0), 3))
    x = jax.random.normal(next(keys), (3, 5))
    p = {"w": jax.random.normal(next(keys), (rows, 4)), "o": jax.random.normal(next(keys), (4, 2))}

    def apply(p, x):
        return jax.nn.relu(x @ cut(p["w"])) @ p["o"]

    groups = channel_groups(apply, p, x)
    prunable = "with ones" not in name and "combiner" not in name
    assert groups.names == (("w",) if prunable else ()), groups.pinned
    if prunable:
        alive = {"w": np.array([0, 1, 1, 1], bool)}
        pruned = apply(shrink(p, alive, groups).variables, x)
        np.testing.assert_allclose(pruned, apply(mask(p, alive, groups), x), atol=1e-5)


def test_a_complex_kernel_of_two_leaves_prunes_its_outputs_exactly():
    """A kernel built as lax.complex(wr, wi) held no leaf to the trace, so its output
    channels were no group (nothing to prune); each is both leaves' column now."""
    keys = iter(jax.random.split(jax.random.key(0), 4))
    x = jax.random.normal(next(keys), (3, 4))
    p = {name: jax.random.normal(next(keys), (4, 6)) for name in ("wr", "wi")}
    p["o"] = jax.random.normal(next(keys), (6, 2))

    def apply(p, x):
        h = x.astype(jnp.complex64) @ jax.lax.complex(p["wr"], p["wi"])
        return jnp.abs(h) @ p["o"]

    groups = channel_groups(apply, p, x)
    [group] = groups.groups
    assert {(m.path, m.axis) for m in group.sources("out")} == {("wr", 1), ("wi", 1)}
    alive = {group.name: np.array([1, 0, 1, 1, 0, 1], bool)}
    small = shrink(p, alive, groups).variables
    assert jax.tree.map(jnp.shape, small) == {"wr": (4, 4), "wi": (4, 4), "o": (4, 2)}
    masked = apply(mask(p, alive, groups), x)
    assert not np.allclose(masked, apply(p, x), atol=1e-2)  # the dead channels mattered
    np.testing.assert_allclose(apply(small, x), masked, atol=1e-6)


@pytest.mark.parametrize(
    "imaginary, shape",
    [(lambda wi: jnp.broadcast_to(wi, (4, 6)), (4, 1)), (lambda wi: wi.reshape(4, 6), (24,))],
    ids=["broadcast along the channels", "reshaped"],
)
def test_a_complex_kernel_whose_imaginary_part_holds_no_channel_is_no_group(imaginary, shape):
    """lax.complex(wr, wi) was taken to hold wr's column wherever wr did, though wi held
    none there (broadcast along the channels, or reshaped): mask zeroed wr's column alone,
    so the channel was not dead, yet shrink removed it (pruned 3 to 5 off masked)."""
    keys = iter(jax.random.split(jax.random.key(0), 4))
    x = jax.random.normal(next(keys), (3, 4))
    p = {"wr": jax.random.normal(next(keys), (4, 6)), "wi": jax.random.normal(next(keys), shape)}
    p["o"] = jax.random.normal(next(keys), (6, 2))

    def apply(p, x):
        h = x.astype(jnp.complex64) @ jax.lax.complex(p["wr"], imaginary(p["wi"]))
        return jnp.abs(h) @ p["o"]

    assert channel_groups(apply, p, x).names == ()


@pytest.mark.parametrize(
    "op, reason",
    [
        (lambda h: jnp.flip(h, axis=-1), "^rev.* reverses this axis"),
        (lambda h: jax.lax.reduce_window(h, 0.0, jax.lax.add, (1, 2), (1, 2), "VALID"), "pools"),
        (lambda h: nn.max_pool(h[None], (3,), padding=((3, 3),))[0], "not zero"),
        (lambda h: jax.lax.reduce_window(h, 1.0, jax.lax.mul, (1, 1), (1, 1), "VALID"), "not zero"),
        (lambda h: (h[:, :, None] * h[:, None]).reshape(3, 16), "outer product"),
        (lambda h: jnp.einsum("bc,bd->bcd", h, h).reshape(3, 16), "outer product"),
    ],
    ids=[
        "flip",
        "pool over channels",
        "max pool with windows in the padding",
        "custom combiner",
        "outer product",
        "outer product by einsum",
    ],
)
def test_flipping_pooling_or_squaring_channels_or_losing_their_zeros_pins_them(op, reason):
    """An outer product of channels with themselves, flattened, holds two channels at a
    position: shrink would cut the next kernel's rows of one of them only."""

    def apply(p, x):
        return op(jax.nn.relu(x @ p["w1"])) @ p["w2"]

    x = jnp.ones((3, 5))
    w2_rows = jax.eval_shape(op, jnp.ones((3, 4))).shape[-1]
    variables = {"w1": jnp.ones((5, 4)), "w2": jnp.ones((w2_rows, 2))}
    groups = channel_groups(apply, variables, x)
    assert groups.groups == ()
    assert any(re.search(reason, why) for why in groups.pinned.values()), groups.pinned


def _products_params_and_inputs():
    """A (5 → 4) layer's and a (4 × 4 → 2) contraction's params, and 3 inputs."""
    keys = iter(jax.random.split(jax.random.key(0), 3))
    x = jax.random.normal(next(keys), (3, 5))
    return {
        "w1": jax.random.normal(next(keys), (5, 4)),
        "w2": jax.random.normal(next(keys), (4, 4, 2)),
    }, x


@pytest.mark.parametrize(
    "outer",
    [lambda h: h[:, :, None] * h[:, None, :], lambda h: jnp.einsum("bi,bj->bij", h, h)],
    ids=["mul", "einsum"],
)
def test_channels_a_product_meets_with_themselves_prune_exactly_as_an_einsum_does(outer):
    """``h_i * h_j`` is zero for a dead ``i`` or ``j`` (a row and a column), as the einsum's
    outer product is; the mul's was pinned ("mul ... multiplied by themselves on another
    axis (an outer product), which phosjax.morph does not follow") where the einsum's is
    pruned: both are, the shrunk model's outputs the masked one's."""

    def apply(p, x):
        h = jax.nn.relu(x @ p["w1"])
        return jnp.einsum("bij,ijo->bo", outer(h), p["w2"])

    p, x = _products_params_and_inputs()
    groups = channel_groups(apply, p, x)
    assert groups.names == ("w1",), groups.pinned
    tied = {(m.path, m.axis) for m in groups.groups[0].members}
    assert tied == {("w1", 1), ("w2", 0), ("w2", 1)}
    alive = {"w1": np.array([True, False, True, False])}
    small = shrink(p, alive, groups).variables
    assert small["w2"].shape == (2, 2, 2)
    np.testing.assert_allclose(apply(small, x), apply(mask(p, alive, groups), x), atol=1e-5)


@pytest.mark.parametrize(
    "outer",
    [
        lambda h, g: h[:, :, None] * g[:, None, :],
        lambda h, g: jnp.einsum("bi,bj->bij", h, g),
    ],
    ids=["mul", "einsum"],
)
def test_a_product_of_channels_with_a_factor_not_zero_when_dead_pins_them(outer):
    """``h_i * g_j`` with ``g = 1 / (h + 1)`` (1 for a dead channel) is zero for a dead
    ``i`` only, not a dead ``j``: the einsum's zeros were ``h``'s on every axis carrying
    the channels, so it was pruned and the shrunk model's outputs were not the masked
    one's; both are pinned, as the mul is."""

    def apply(p, x):
        h = jax.nn.relu(x @ p["w1"])
        return jnp.einsum("bij,ijo->bo", outer(h, 1 / (h + 1)), p["w2"])

    p, x = _products_params_and_inputs()
    groups = channel_groups(apply, p, x)
    assert groups.groups == (), groups.names
    assert re.fullmatch(
        r"dot_general \(.*test_shrink.py:\d+.*\) sums over channels that are not zero when dead",
        groups.pinned["w1:1"],
    ), groups.pinned


@pytest.mark.parametrize(
    "against",
    [
        lambda h, w: jnp.einsum("bi,io->bo", h, jnp.full((4, 2), jnp.inf)),
        lambda h, w: jnp.einsum("bij,ijo->bo", jnp.einsum("bi,j->bij", h, jnp.full(4, jnp.inf)), w),
        lambda h, w: jax.lax.conv_general_dilated(
            h[:, None],
            jnp.full((1, 4, 2), jnp.inf),
            (1,),
            "VALID",
            None,
            None,
            ("NWC", "WIO", "NWC"),
        ),
    ],
    ids=["contracted", "free", "convolved"],
)
def test_a_contraction_against_a_constant_holding_inf_pins_the_channels(against):
    """A dead channel contracted (or convolved) with ``jnp.inf`` is ``0 * inf = NaN`` masked
    and missing from the shrunk one: it was pruned, as ``h * jnp.inf`` was; it is pinned."""

    def apply(p, x):
        return against(jax.nn.relu(x @ p["w1"]), p["w2"])

    x = jax.random.normal(jax.random.key(1), (3, 5))
    p = {"w1": jax.random.normal(jax.random.key(2), (5, 4)), "w2": jnp.ones((4, 4, 2))}
    groups = channel_groups(apply, p, x)
    assert groups.groups == (), groups.names
    assert re.fullmatch(
        r"(dot_general|conv_general_dilated) \(.*test_shrink.py:\d+.*\) sums over channels "
        r"that are not zero when dead",
        groups.pinned["w1:1"],
    ), groups.pinned


@pytest.mark.parametrize("combine", [jnp.add, jnp.maximum])
def test_channels_an_op_meets_with_themselves_on_another_axis_are_pinned(combine):
    """``h_i + h_j`` is not zero for a dead ``i`` and a live ``j``: the zeros of each
    operand cover one of the two axes carrying the channels, so the contraction pins them."""

    def apply(p, x):
        h = jax.nn.relu(x @ p["w1"])
        return jnp.einsum("bij,ijo->bo", combine(h[:, :, None], h[:, None, :]), p["w2"])

    x, p = jnp.ones((3, 5)), {"w1": jnp.ones((5, 4)), "w2": jnp.ones((4, 4, 2))}
    groups = channel_groups(apply, p, x)
    assert groups.groups == ()
    assert "not zero when dead" in groups.pinned["w1:1"]


class Heads(nn.Module):
    """Multi-head attention with explicit head count and head width."""

    heads: int
    head_dim: int = 3

    @nn.compact
    def __call__(self, x):
        qkv = nn.DenseGeneral((3, self.heads, self.head_dim), name="qkv")(x)
        q, k, v = qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :]
        w = nn.softmax(jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(self.head_dim))
        h = jnp.einsum("bhqk,bkhd->bqhd", w, v)
        return nn.DenseGeneral(x.shape[-1], axis=(-2, -1), name="out")(h)


def test_attention_heads_shrunk_equals_masked():
    x = jax.random.normal(jax.random.key(1), (2, 5, 6))
    model = Heads(heads=4)
    variables = model.init(jax.random.key(0), x)
    groups = channel_groups(model, variables, x)
    alive = {"qkv": [True, False, True, False]}  # the heads: head_dim scales q . k, pinned
    small = shrink(variables, alive, groups)
    assert small.variables["params"]["qkv"]["kernel"].shape == (6, 3, 2, 3)
    np.testing.assert_allclose(
        jax.jit(Heads(heads=2).apply)(small.variables, x),
        jax.jit(model.apply)(mask(variables, alive, groups), x),
        atol=1e-5,
    )


class FlaxAttention(nn.Module):
    heads: int = 2

    @nn.compact
    def __call__(self, x):
        size = 4 * self.heads  # 4 per head
        attention = nn.MultiHeadDotProductAttention(self.heads, qkv_features=size, out_features=3)
        return attention(x, x).mean(1)


def test_flax_attention_pins_the_query_key_size_and_prunes_heads_exactly():
    x = jax.random.normal(jax.random.key(1), (2, 5, 6))
    variables = FlaxAttention().init(jax.random.key(0), x)
    groups = channel_groups(FlaxAttention(), variables, x)
    assert {g.name: g.size for g in groups.groups} == {
        "MultiHeadDotProductAttention_0/key": 2,  # heads
        "MultiHeadDotProductAttention_0/value": 4,  # value size per head
    }
    reason = groups.pinned["params/MultiHeadDotProductAttention_0/query/kernel:2"]
    assert "contracts two activations over this axis" in reason and "1/sqrt" in reason
    alive = {"MultiHeadDotProductAttention_0/key": [False, True]}
    small = shrink(variables, alive, groups)
    np.testing.assert_allclose(
        FlaxAttention().apply(mask(variables, alive, groups), x),
        jax.jit(FlaxAttention(heads=1).apply)(small.variables, x),
        atol=1e-5,
    )


def test_channels_through_a_non_zero_preserving_op_are_pinned():
    class Exp(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(2)(jnp.exp(nn.Dense(4)(x)))

    x = jnp.ones((1, 3))
    variables = Exp().init(jax.random.key(0), x)
    groups = channel_groups(Exp(), variables, x)
    assert groups.groups == ()
    assert (
        "not zero when dead" in groups.pinned["params/Dense_1/kernel:1"]
    )  # Dense_0 is the outer one


class KnobShift(nn.Module):
    """A dense layer shifted by a knob (a scalar variable) before the relu."""

    width: int = 4

    @nn.compact
    def __call__(self, x):
        h = nn.Dense(self.width)(x)
        return nn.Dense(2)(nn.relu(h + px.knob(self, "shift", 0.5, doc="offset")))


def _knob_shift(variables, x):
    return KnobShift(variables["params"]["Dense_0"]["kernel"].shape[1]).apply(variables, x)


_W = {"w1": (5, 4), "s": (), "w2": (4, 2)}
SCALAR_OPERANDS = {  # name: (apply, variables, whether the first layer stays prunable)
    "h + scalar param": (lambda p, x: jax.nn.relu(x @ p["w1"] + p["s"]) @ p["w2"], _W, False),
    "max(h, scalar param)": (lambda p, x: jnp.maximum(x @ p["w1"], p["s"]) @ p["w2"], _W, False),
    "clamp(scalar param, h, 0)": (
        lambda p, x: jax.lax.clamp(p["s"], x @ p["w1"], jnp.float32(0)) @ p["w2"],
        _W,
        False,
    ),
    "h + knob": (_knob_shift, None, False),
    "max(h, 0), a zero literal": (lambda p, x: jnp.maximum(x @ p["w1"], 0.0) @ p["w2"], _W, True),
    "relu6: min(max(h, 0), 6)": (lambda p, x: jax.nn.relu6(x @ p["w1"]) @ p["w2"], _W, True),
    "clip(h, 0, 1)": (lambda p, x: jnp.clip(x @ p["w1"], 0.0, 1.0) @ p["w2"], _W, True),
    "clip(h, 0.5, 1)": (lambda p, x: jnp.clip(x @ p["w1"], 0.5, 1.0) @ p["w2"], _W, False),
    "max(h, 0.5)": (lambda p, x: jnp.maximum(x @ p["w1"], 0.5) @ p["w2"], _W, False),
}


@pytest.mark.parametrize("name", sorted(SCALAR_OPERANDS))
def test_a_scalar_operand_other_than_zero_pins_or_prunes_exactly(name):
    """A dead channel plus a scalar param or knob is not zero: the layer is pinned (or,
    where it stays a group, its pruned outputs equal the masked ones)."""
    apply, shapes, prunable = SCALAR_OPERANDS[name]
    keys = iter(jax.random.split(jax.random.key(0), 4))
    x = jax.random.normal(next(keys), (3, 5))
    if shapes is None:
        variables = KnobShift().init(next(keys), x)
    else:
        variables = {k: jax.random.normal(next(keys), shape) for k, shape in shapes.items()}
        variables["s"] = jnp.asarray(0.7)
    groups = channel_groups(apply, variables, x)
    assert bool(groups.groups) == prunable, groups.pinned
    if prunable:
        alive = {g.name: np.arange(g.size) % 2 == 0 for g in groups.groups}
        masked = apply(mask(variables, alive, groups), x)
        pruned = apply(shrink(variables, alive, groups).variables, x)
        np.testing.assert_allclose(pruned, masked, atol=1e-5)
    else:
        assert any("not zero when dead" in why for why in groups.pinned.values())


ACTIVATIONS = {
    name: getattr(jax.nn, name)
    for name in (
        "relu", "relu6", "hard_tanh", "hard_sigmoid", "hard_swish", "celu", "selu", "elu",
        "silu", "gelu", "softplus", "leaky_relu", "log_sigmoid", "sigmoid", "soft_sign",
        "sparse_plus", "squareplus", "mish", "tanh",
    )
}  # fmt: skip
ACTIVATIONS["gelu, exact"] = lambda h: jax.nn.gelu(h, approximate=False)
ACTIVATIONS["where(h > 0, h, 1)"] = lambda h: jnp.where(h > 0, h, 1.0)
ACTIVATIONS["arctanh(tanh(h) / 2)"] = lambda h: jnp.arctanh(jnp.tanh(h) / 2)
ACTIVATIONS["arccosh"] = jnp.arccosh  # NaN at 0
ACTIVATIONS["erfinv(tanh(h) / 2)"] = lambda h: jax.scipy.special.erfinv(jnp.tanh(h) / 2)
ACTIVATIONS["h * inf"] = lambda h: h * jnp.inf  # 0 * inf is NaN: was followed


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_an_activation_follows_channels_exactly_when_it_maps_zero_to_zero(name):
    """hard_tanh (a select on comparisons), elu and selu (a select with a broadcast 0) keep
    a dead channel zero, as relu does: they are followed; those with f(0) != 0 pin it."""
    act = ACTIVATIONS[name]
    keeps_zero = float(act(jnp.zeros(()))) == 0.0
    groups, pruned = pruned_through(act)
    assert bool(groups.groups) == keeps_zero, groups.pinned
    if keeps_zero:  # shrunk equals masked, up to sums of 2 vs 4 terms
        np.testing.assert_allclose(*pruned, atol=1e-5, rtol=1e-5)
    else:
        assert "not zero when dead" in groups.pinned["w1:1"]


def test_glu_prunes_both_halves_of_a_channel_together():
    """glu splits its input into halves ``a`` and ``b`` and returns ``a * sigmoid(b)``:
    channel ``i`` is the columns ``i`` and ``i + half`` of the kernel before it."""
    p, x = two_layers(6, 3)
    apply = lambda p, x: jax.nn.glu(x @ p["w1"] + p["b1"]) @ p["w2"]
    groups = channel_groups(apply, p, x)
    (group,) = groups.groups
    channels = {m.path: m.channels.tolist() for m in group.members}
    assert channels == {"w1": [0, 1, 2, 0, 1, 2], "b1": [0, 1, 2, 0, 1, 2], "w2": [0, 1, 2]}
    alive = {"w1": np.array([True, False, True])}
    small = shrink(p, alive, groups).variables
    assert small["w1"].shape == (5, 4) and small["w2"].shape == (2, 2)
    np.testing.assert_allclose(apply(small, x), apply(mask(p, alive, groups), x), atol=1e-5)


SPLITS = {  # name: (apply of h, the hidden layer, of 6 channels; its head's input size)
    "halves, one head each": (
        lambda h, p: jnp.split(h, 2, axis=-1)[0] @ p["w2"] + jnp.split(h, 2, axis=-1)[1] @ p["w3"],
        3,
    ),
    "thirds, a * b + c": (
        lambda h, p: (lambda a, b, c: (a * b + c) @ p["w2"])(*jnp.split(h, 3, -1)),
        2,
    ),
    "halves, the second unused": (lambda h, p: jnp.split(h, 2, axis=-1)[0] @ p["w2"], 3),
}


@pytest.mark.parametrize("name", sorted(SPLITS))
def test_a_split_into_equal_sections_loses_the_same_channels_in_each(name):
    """``jnp.split(h, n)`` cuts the shrunk axis into ``n`` sections again: the sections
    are tied, channel ``i`` being position ``i`` of each, whatever uses them."""
    head, inner = SPLITS[name]
    p, x = two_layers(6, inner)
    p["w3"] = p["w2"] + 1.0
    apply = lambda p, x: head(jax.nn.relu(x @ p["w1"] + p["b1"]), p)
    groups = channel_groups(apply, p, x)
    (group,) = groups.groups
    channels = {m.path: m.channels.tolist() for m in group.members}
    assert channels["w1"] == list(range(inner)) * (6 // inner)
    alive = {group.name: np.arange(inner) != 1}
    np.testing.assert_allclose(
        apply(shrink(p, alive, groups).variables, x), apply(mask(p, alive, groups), x), atol=1e-5
    )


def test_a_split_into_unequal_pieces_is_pinned():
    """``jnp.split(h, [2])``: the code fixes where the cut is, which shrinking moves."""
    p, x = two_layers(6, 4)
    apply = lambda p, x: (lambda a, b: b @ p["w2"] + a.sum(-1, keepdims=True))(
        *jnp.split(jax.nn.relu(x @ p["w1"] + p["b1"]), [2], axis=-1)
    )
    groups = channel_groups(apply, p, x)
    assert groups.groups == ()
    assert "pieces of unequal sizes [2, 4]" in groups.pinned["w1:1"]


class GLUNet(nn.Module):
    """phosjax's GLU layer (a jnp.split of its projection) before a head."""

    features: int = 4

    @nn.compact
    def __call__(self, x):
        return nn.Dense(2, name="head")(GLU(self.features, name="glu")(x))


def test_the_glu_layer_is_pruned_exactly():
    x = jax.random.normal(jax.random.key(1), (3, 5))
    model = GLUNet()
    variables = perturbed(model.init(jax.random.key(0), x))
    groups = channel_groups(model, variables, x)
    assert groups.names == ("glu/proj",)
    alive = {"glu/proj": np.array([True, False, True, True])}
    small = shrink(variables, alive, groups)
    assert small.variables["params"]["glu"]["proj"]["kernel"].shape == (5, 6)
    np.testing.assert_allclose(
        GLUNet(3).apply(small.variables, x),
        model.apply(mask(variables, alive, groups), x),
        atol=1e-5,
    )


def test_an_axis_broadcast_from_size_one_is_no_group():
    """A ``(1, C)`` scale, and a ``(1, K)`` factor on a kept-dims sum: their size-1 axes
    broadcast over the batch, so they hold no channel that shrink could remove."""
    keys = iter(jax.random.split(jax.random.key(0), 5))
    p = {
        name: jax.random.normal(next(keys), s)
        for name, s in {"w": (3, 6), "g": (1, 6), "o": (6, 2), "k": (1, 2)}.items()
    }
    x = jax.random.normal(next(keys), (4, 3))
    scaled = lambda p, x: (jax.nn.relu(x @ p["w"]) * p["g"]) @ p["o"]
    groups = channel_groups(scaled, p, x)
    assert groups.names == ("w",)
    assert {(m.path, m.axis) for m in groups.groups[0].members} == {("w", 1), ("g", 1), ("o", 0)}
    alive = {"w": np.arange(6) % 2 == 0}
    np.testing.assert_allclose(
        scaled(shrink(p, alive, groups).variables, x),
        scaled(mask(p, alive, groups), x),
        atol=1e-5,
    )
    summed = lambda p, x: jnp.sum(x @ p["w"], -1, keepdims=True) * p["k"]
    assert channel_groups(summed, p, x).groups == ()


def test_a_scale_on_an_axis_the_model_makes_is_no_group():
    """Two unit axes concatenated and flattened with the input's channels: a (6,) scale
    on them holds channels no variable makes, so shrinking it could not remove them."""
    keys = iter(jax.random.split(jax.random.key(0), 3))
    p = {"g": jax.random.normal(next(keys), (6,)), "o": jax.random.normal(next(keys), (6, 2))}
    x = jax.random.normal(next(keys), (4, 3))

    def apply(p, x):
        pair = jnp.concatenate([x[:, None, :], 2 * x[:, None, :]], 1)
        return (pair.reshape(x.shape[0], -1) * p["g"]) @ p["o"]

    groups = channel_groups(apply, p, x)
    assert groups.groups == ()
    params = groups.params[groups.paths.index("g")]
    assert params == ((6.0, ()),)  # priced as a constant, not by an alive count


def test_dropout_in_training_is_refused_saying_to_trace_as_in_inference():
    class Dropped(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            h = nn.Dropout(0.5, deterministic=not train)(nn.relu(nn.Dense(4)(x)))
            return nn.Dense(2)(h)

    x = jnp.ones((2, 3))
    variables = Dropped().init(jax.random.key(0), x)
    with pytest.raises(
        UnsupportedOpError,
        match=r"in module '.*Dropout_0': the primitive 'random_\w+' draws random.*train=False",
    ):
        channel_groups(Dropped(), variables, x, True, rngs={"dropout": jax.random.key(1)})
    assert channel_groups(Dropped(), variables, x, False).names == ("Dense_0",)


def test_a_stored_key_read_in_the_call_is_refused_as_a_key_not_a_draw():
    """``jax.random.key_data`` of a key the model stores was refused as drawing random
    numbers (dropout, noise), which it does not; it is named as reading a key."""

    class Keyed(nn.Module):
        @nn.compact
        def __call__(self, x):
            key = self.variable("constants", "key", lambda: jax.random.key(0)).value
            seed = jax.random.key_data(key).astype(jnp.float32).sum()
            return nn.Dense(2)(nn.relu(nn.Dense(4)(x)) + 0 * seed)

    x = jnp.ones((3, 5))
    variables = Keyed().init(jax.random.key(0), x)
    with pytest.raises(UnsupportedOpError) as error:
        channel_groups(Keyed(), variables, x)
    assert (
        "the primitive 'random_unwrap' makes or reads a random key (jax.random.key, "
        "wrap_key_data, key_data: to draw random numbers, dropout or noise, or of a key the "
        "model stores) in the traced call, which phosjax.morph does not follow; trace the "
        "model as in inference (e.g. train=False, no dropout rng), and read a key it stores "
        "outside the traced call (pass what it gives in)."
    ) in str(error.value)


def test_unsupported_ops_and_bad_alive_raise_clear_errors():
    class Looped(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.Dense(4)(x)
            return jax.lax.cumsum(h, axis=0) + jnp.gcd(h.astype(int), 6)

    x = jnp.ones((2, 3))
    with pytest.raises(UnsupportedOpError, match="'while'") as error:
        channel_groups(Looped(), Looped().init(jax.random.key(0), x), x)
    # jnp.gcd runs its while loop in code jax compiled: the line named is the model's
    assert re.search(r"through while \(\S+/test_shrink\.py:\d+:\d+ \(test_", str(error.value))

    model = nn.Dense(3)
    mlp = nn.Sequential([nn.Dense(4), nn.relu, model])
    variables = mlp.init(jax.random.key(0), x)
    groups = channel_groups(mlp, variables, x)
    with pytest.raises(KeyError) as error:
        shrink(variables, {"layer_0": [True] * 4}, groups)
    assert error.value.args[0] == (
        "no channel group named ['layer_0']; groups: ['layers_0']. Did you mean 'layers_0'?"
    )
    with pytest.raises(KeyError) as error:  # each unknown group gets its hint, not the first
        shrink(variables, {"layer_0": [True] * 4, "layers_9": [True] * 4}, groups)
    assert error.value.args[0] == (
        "no channel group named ['layer_0', 'layers_9']; groups: ['layers_0']. "
        "Did you mean 'layers_0' for 'layer_0', 'layers_0' for 'layers_9'?"
    )
    with pytest.raises(ValueError, match="expected \\(4,\\)"):
        shrink(variables, {"layers_0": [True] * 3}, groups)
    with pytest.raises(ValueError, match=r"alive\['layers_0'\] holds 0.5; alive is a mask"):
        shrink(variables, {"layers_0": [1.0, 0.5, 0.0, 1.0]}, groups)
    with pytest.raises(TypeError, match=r"^alive is a list, not a mapping \{group name: "):
        shrink(variables, [True, False, True, True], groups)  # 'bool' has no 'casefold'
    with_floats = shrink(variables, {"layers_0": [1.0, 0.0, 0.0, 1.0]}, groups)
    assert with_floats.variables["params"]["layers_0"]["kernel"].shape == (3, 2)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "shrink: alive keeps no channel of group(s) ['layers_0'], which would leave layers 0 "
            "channels wide; keep at least one per group (alive_channels and expressible keep "
            "each group's best one)"
        ),
    ):
        shrink(variables, {"layers_0": [False] * 4}, groups)


def test_alive_traced_by_jit_is_refused_naming_the_group():
    """mask inside a jitted step given alive as an argument failed in numpy's conversion
    ("TracerArrayConversionError: The numpy.ndarray conversion method __array__() was
    called on traced array"), naming neither alive nor the group."""
    x = jnp.ones((1, 4))
    variables = MLP.init(jax.random.key(0), x)
    groups = channel_groups(MLP, variables, x)
    masked = jax.jit(lambda v, keep: mask(v, {"layers_0": keep}, groups))
    with pytest.raises(TypeError) as error:
        masked(variables, jnp.array([True, False, True]))
    assert str(error.value) == (
        "alive['layers_0'] is traced (an argument of a jax.jit-ed function): the channels to "
        "cut are chosen on the host, so pass concrete flags, e.g. close over alive instead of "
        "passing it to the jitted function"
    )


def test_a_model_name_for_shrinks_config_names_shrink_and_the_keyword():
    """shrink(..., config="mlp") said "fit_config takes a ModelConfig ...: pass
    fit_config(ModelConfig('mlp', ...), ...)", a call the user never made."""
    x, variables = _zoo_init("mlp")
    groups = channel_groups(ZOO["mlp"].build(), variables, x)
    with pytest.raises(TypeError) as error:
        shrink(variables, groups.full(), groups, config="mlp")
    assert str(error.value) == (
        "shrink takes a ModelConfig as config=, got 'mlp' (a str): pass "
        "shrink(..., config=ModelConfig('mlp', num_classes=10, input_shape=(40,)))."
    )


def test_a_config_that_cannot_express_the_widths_is_an_error():
    config = ZOO["resnet"]
    x = jnp.ones((2, 8, 8, 1))
    _, variables = _zoo_init("resnet")
    groups = channel_groups(config.build(), variables, x)
    alive = {"blocks_0/conv_0": np.arange(16) < 8}  # the inner width is not a config field
    with pytest.raises(ValueError, match=r"cannot express these widths.*expressible\(config"):
        shrink(variables, alive, groups, config=config)
    rounded = expressible(config, groups, alive)
    assert shrink(variables, rounded, groups, config=config).config is not None


class ConcatAdded(nn.Module):
    """A layer's output added to a concatenation of two others: two groups, one kernel."""

    widths: tuple[int, int] = (3, 5)

    @nn.compact
    def __call__(self, x):
        a = nn.Dense(sum(self.widths), name="a")(x)
        h = jnp.concatenate(
            [nn.Dense(w, name=n)(x) for w, n in zip(self.widths, "bc", strict=True)], -1
        )
        return nn.Dense(2, name="d")(nn.relu(a + h))


def test_groups_sharing_their_first_producer_get_distinct_names():
    x = jax.random.normal(jax.random.key(1), (2, 4))
    model = ConcatAdded()
    variables = perturbed(model.init(jax.random.key(0), x))
    groups = channel_groups(model, variables, x)
    assert [(g.name, g.size) for g in groups.groups] == [("a#0", 3), ("a#1", 5)]
    assert set(alive_channels(groups, variables)) == {"a#0", "a#1"}
    assert report(groups, variables)["groups"] == {
        "a#0": {"alive": 3, "total": 3},
        "a#1": {"alive": 5, "total": 5},
    }
    alive = {"a#0": [1, 0, 1], "a#1": [0, 1, 1, 0, 1]}
    small = shrink(variables, alive, groups)
    assert small.widths == {"a#0": 2, "a#1": 3}
    np.testing.assert_allclose(
        jax.jit(ConcatAdded(widths=(2, 3)).apply)(small.variables, x),
        jax.jit(model.apply)(mask(variables, alive, groups), x),
        atol=1e-5,
    )


class Block(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(4, name="out")(nn.relu(nn.Dense(6, name="hidden")(x)))


class Blocks(nn.Module):
    @nn.compact
    def __call__(self, x):
        return Block(name="blocks_1")(Block(name="blocks_0")(x))


def test_a_params_tree_through_a_callable_names_groups_like_the_module():
    x = jnp.ones((2, 4))
    model = Blocks()
    variables = model.init(jax.random.key(0), x)
    params = variables["params"]
    from_params = channel_groups(lambda p, x: model.apply({"params": p}, x), params, x)
    expected = ("blocks_0/hidden", "blocks_0/out", "blocks_1/hidden")
    assert channel_groups(model, variables, x).names == expected
    assert from_params.names == expected
    small = shrink(params, {"blocks_1/hidden": np.arange(6) < 4}, from_params)
    assert small.variables["blocks_1"]["out"]["kernel"].shape == (4, 4)


class Divided(nn.Module):
    """A hidden layer divided by a learned per-channel temperature."""

    width: int = 4

    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(self.width, name="a")(x))
        temperature = self.param("temp", nn.initializers.ones, (self.width,))
        return nn.Dense(2, name="b")(h / temperature)


def test_a_divisor_is_sliced_but_neither_zeroed_nor_a_gamma():
    x = jax.random.normal(jax.random.key(1), (2, 3))
    model = Divided()
    variables = perturbed(model.init(jax.random.key(0), x))
    groups = channel_groups(model, variables, x)
    (group,) = groups.groups
    kinds = {m.path: m.kinds for m in group.members}
    assert kinds["params/temp"] == {"other"}
    assert group.sources("scale") == ()  # "auto" uses the kernels, not |temp|
    alive = {"a": [True, False, True, True]}
    masked_out = jax.jit(model.apply)(mask(variables, alive, groups), x)
    assert np.all(np.isfinite(masked_out))
    small = shrink(variables, alive, groups)
    np.testing.assert_array_equal(
        small.variables["params"]["temp"], variables["params"]["temp"][np.array([0, 2, 3])]
    )
    np.testing.assert_allclose(
        jax.jit(Divided(width=3).apply)(small.variables, x), masked_out, atol=1e-5
    )


class WeightNormed(nn.Module):
    """A weight-normalized hidden layer, ``g * k / norm(k)``, its norm written ``form``."""

    width: int = 4
    form: str = "norm"
    gain: bool = True

    @nn.compact
    def __call__(self, x):
        k = self.param("kernel", nn.initializers.normal(), (x.shape[-1], self.width))
        if self.form == "norm":
            unit = k / jnp.linalg.norm(k, axis=0)
        elif self.form == "sum":  # the kernel reduced as it is, with no op before the sum
            unit = k / jnp.sum(k, axis=0)
        else:
            unit = k * jax.lax.rsqrt(jnp.sum(k**2, axis=0))
        if self.gain:
            unit = self.param("g", nn.initializers.ones, (self.width,)) * unit
        h = x @ unit + self.param("b", nn.initializers.zeros, (self.width,))
        return nn.Dense(2, name="head")(nn.relu(h))


@pytest.mark.parametrize("form", ["norm", "rsqrt", "sum"])
def test_a_weight_normalized_kernel_is_sliced_but_not_zeroed(form):
    """Zeroing ``k`` in ``k / norm(k)`` makes 0/0: `mask` zeroes the gain and the bias
    instead, so the masked model is finite (and its gradients) and equals the pruned one."""
    x = jax.random.normal(jax.random.key(1), (3, 5))
    model = WeightNormed(form=form)
    variables = perturbed(model.init(jax.random.key(0), x))
    groups = channel_groups(model, variables, x)
    (group,) = groups.groups
    kinds = {m.path: m.kinds for m in group.members}
    assert {"scale", "normalized"} <= kinds["params/kernel"]
    assert [m.path for m in group.sources("scale") if m.zeroed] == ["params/g"]
    alive = {group.name: np.array([True, False, True, True])}
    masked = mask(variables, alive, groups)
    np.testing.assert_array_equal(masked["params"]["kernel"], variables["params"]["kernel"])
    masked_out = model.apply(masked, x)
    grads = jax.grad(lambda v: model.apply(v, x).sum())(masked)
    assert jax.tree.all(jax.tree.map(lambda g: bool(jnp.isfinite(g).all()), grads))
    small = shrink(variables, alive, groups)
    assert small.variables["params"]["kernel"].shape == (5, 3)
    pruned_out = WeightNormed(width=3, form=form).apply(small.variables, x)
    np.testing.assert_allclose(pruned_out, masked_out, atol=1e-5)


def test_a_weight_normalized_kernel_without_a_gain_is_pinned():
    """``k / norm(k)`` with no gain: nothing zeroes a channel without making 0/0."""
    x = jax.random.normal(jax.random.key(1), (3, 5))
    model = WeightNormed(gain=False)
    variables = model.init(jax.random.key(0), x)
    groups = channel_groups(model, variables, x)
    assert groups.groups == ()
    assert "not zero when dead" in groups.pinned["params/kernel:1"]


def test_a_positive_power_keeps_a_dead_channel_zero_and_its_kernel_zeroed():
    """``0 ** 1.5`` is 0, unlike ``0 ** -1.5``: the kernel before it is zeroed as usual."""
    keys = jax.random.split(jax.random.key(0), 3)
    p = {"w1": jax.random.normal(keys[0], (5, 4)), "w2": jax.random.normal(keys[1], (4, 2))}
    x = jax.random.normal(keys[2], (3, 5))
    apply = lambda p, x: (jax.nn.relu(x @ p["w1"]) ** 1.5) @ p["w2"]
    groups = channel_groups(apply, p, x)
    (group,) = groups.groups
    assert {m.path: m.kinds for m in group.members} == {"w1": {"out"}, "w2": {"in"}}
    alive = {"w1": np.array([True, False, True, False])}
    np.testing.assert_allclose(
        apply(shrink(p, alive, groups).variables, x), apply(mask(p, alive, groups), x), atol=1e-5
    )


MLP = nn.Sequential([nn.Dense(3), nn.relu, nn.Dense(2)])
MLP_LABELS = {
    "layers_0": {"kernel": "adam", "bias": "sgd"},
    "layers_2": {"kernel": "adam", "bias": "adam"},
}


@pytest.mark.parametrize(
    "optimizer",
    [
        optax.masked(
            optax.adam(0.1),
            {
                "layers_0": {"kernel": True, "bias": False},
                "layers_2": {"kernel": True, "bias": True},
            },
        ),
        optax.multi_transform(
            {"adam": optax.adam(0.1), "sgd": optax.sgd(0.1, momentum=0.9)}, MLP_LABELS
        ),
        # the engine's: hyperparameters injected, a schedule's count beside the moments
        make_optimizer("adamw", weight_decay=0.1, lr_schedule="cosine", warmup_steps=2, steps=9),
    ],
    ids=["masked", "multi_transform", "engine_scheduled"],
)
def test_masked_and_partitioned_optimizer_states_are_shrunk(optimizer):
    x = jnp.ones((1, 4))
    variables = MLP.init(jax.random.key(0), x)
    params = variables["params"]
    groups = channel_groups(MLP, variables, x)
    alive = {"layers_0": [True, False, True]}
    rng = np.random.default_rng(0)
    grads = [jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)]
    grads.append(jax.tree.map(lambda g: 2 - g, grads[0]))
    _, state = optimizer.update(grads[0], optimizer.init(params), params)  # moments != 0
    small = shrink(variables, alive, groups, opt_state=state)

    def shrunk(tree):
        return shrink({"params": tree}, alive, groups).variables["params"]

    kept = np.array([0, 2])
    sliced = {
        "layers_0/kernel": (kept, 1),
        "layers_0/bias": (kept, 0),
        "layers_2/kernel": (kept, 0),
    }
    before = jax.tree_util.tree_flatten_with_path(state)[0]
    after = jax.tree_util.tree_flatten_with_path(small.opt_state)[0]
    assert [key for key, _ in after] == [key for key, _ in before]
    for (key, old), (_, new) in zip(before, after, strict=True):
        path = jax.tree_util.keystr(key, simple=True, separator="/")
        index, axis = next((v for k, v in sliced.items() if path.endswith(k)), (None, None))
        expected = old if index is None else np.take(np.asarray(old), index, axis)
        np.testing.assert_array_equal(new, expected)

    # Optimizers act per element: updating the shrunk state with the shrunk gradients
    # gives the shrunk updates of the full state.
    full_updates, _ = optimizer.update(grads[1], state, params)
    small_params = small.variables["params"]
    small_updates, _ = optimizer.update(shrunk(grads[1]), small.opt_state, small_params)
    jax.tree.map(np.testing.assert_allclose, small_updates, shrunk(full_updates))


class RunningMean(nn.Module):
    """Dense, relu, Dense, with a running mean of the hidden layer that only training
    updates (the call in inference never reads it)."""

    width: int = 4

    @nn.compact
    def __call__(self, x, train=False):
        h = nn.relu(nn.Dense(self.width)(x))
        mean = self.variable("stats", "mean", jnp.zeros, (self.width,))
        if train:
            mean.value = 0.9 * mean.value + 0.1 * h.mean(0)
        return nn.Dense(2)(h)


def test_a_variable_the_traced_call_never_reads_as_long_as_a_narrowed_group_is_refused():
    """A running mean only training updates came back whole, (4,) beside Dense_0 shrunk to
    3 channels; training the shrunk model failed in its update ("add got incompatible
    shapes for broadcasting: (4,), (3,)")."""
    x = jnp.ones((3, 5))
    variables = RunningMean().init(jax.random.key(0), x)
    groups = channel_groups(RunningMean(), variables, x)
    assert groups.unread == ("stats/mean",)
    alive = {"Dense_0": [True, False, True, True]}
    with pytest.raises(ValueError) as error:
        shrink(variables, alive, groups)
    assert str(error.value) == (
        "shrink: the traced call never reads the variable 'stats/mean' (4,) (say, a "
        "statistic only training updates), so which of its axes hold channels is unknown, "
        "and its axis 0 is as long as group 'Dense_0', which shrink narrows to 3 channels: "
        "left whole, it would not fit the shrunk model. Leave it out of the variables given "
        "to shrink (and initialize it anew for the shrunk model), or trace the groups with a "
        "call that reads it"
    )
    small = shrink({"params": variables["params"]}, alive, groups).variables
    stats = RunningMean(3).init(jax.random.key(0), x)["stats"]
    _, new = RunningMean(3).apply({**small, "stats": stats}, x, train=True, mutable="stats")
    assert new["stats"]["mean"].shape == (3,)
    assert shrink(variables, {}, groups).variables["stats"]["mean"].shape == (4,)


def _two_branches(nested):
    """Params of two same-shaped branches ``a`` and ``b`` (under ``block`` if ``nested``)
    read by ``out``; their apply; alive channels that cut ``a`` and ``b`` apart."""
    a, b, c = jax.random.split(jax.random.key(0), 3)
    branches = {
        "a": {"kernel": jax.random.normal(a, (4, 3))},
        "b": {"kernel": jax.random.normal(b, (4, 3))},
    }
    out = {"kernel": jax.random.normal(c, (6, 2))}
    params = {"block": branches, "out": out} if nested else {**branches, "out": out}

    def apply(p, x):
        held = p["block"] if nested else p
        hidden = [jax.nn.relu(x @ held[n]["kernel"]) for n in "ab"]
        return jnp.concatenate(hidden, -1) @ p["out"]["kernel"]

    alive = {"a": np.array([False, True, True]), "b": np.array([True, True, False])}
    return params, apply, alive, "block/" if nested else ""


@pytest.mark.parametrize("nested", [False, True], ids=["top", "nested"])
def test_per_module_optimizer_states_are_shrunk_as_their_modules(nested):
    """Adam states kept per module ({'a': tx.init(params['a']), ...}) were shrunk as the
    first module alike in shape (b's state lost b's channel 0, not 2), or, for modules
    below the top, not at all: the next update failed on (4, 3) against (4, 2)."""
    params, apply, alive, group = _two_branches(nested)
    groups = channel_groups(apply, params, jnp.ones((2, 4)))
    branches = params["block"] if nested else params
    tx = optax.adam(0.1)
    grads = jax.tree.map(lambda p: jnp.arange(p.size, dtype=p.dtype).reshape(p.shape), params)
    moved = grads["block"] if nested else grads
    state = {n: tx.update(moved[n], tx.init(branches[n]), branches[n])[1] for n in "ab"}
    small = shrink(params, {group + n: alive[n] for n in "ab"}, groups, opt_state=state)
    small_branches = small.variables["block"] if nested else small.variables
    for n in "ab":
        kept = np.flatnonzero(alive[n])
        mu = small.opt_state[n][0].mu["kernel"]
        np.testing.assert_array_equal(mu, np.take(np.asarray(state[n][0].mu["kernel"]), kept, 1))
        # one more step: Adam acts per element, so the shrunk state's update is the
        # shrunk update of the full state
        again = {"kernel": 2 - moved[n]["kernel"]}
        full, _ = tx.update(again, state[n], branches[n])
        sliced = {"kernel": np.take(np.asarray(again["kernel"]), kept, 1)}
        step, _ = tx.update(sliced, small.opt_state[n], small_branches[n])
        np.testing.assert_allclose(step["kernel"], np.take(np.asarray(full["kernel"]), kept, 1))


def test_a_per_module_optimizer_state_shaped_like_two_modules_is_an_error():
    """States of modules alike in shape, kept in a list, not under the modules' names,
    were each shrunk as the first module ('a'), though 'b' loses another channel."""
    params, apply, alive, _ = _two_branches(nested=False)
    groups = channel_groups(apply, params, jnp.ones((2, 4)))
    state = [optax.sgd(0.1, momentum=0.9).init(params[n]) for n in "ab"]
    with pytest.raises(ValueError) as error:
        shrink(params, alive, groups, opt_state=state)
    assert str(error.value) == (
        "opt_state sub-tree '0/0/trace' {'kernel': (4, 3)} is shaped like the variables of "
        "each of ['a', 'b'], which shrink narrows apart, so which one's state it is is "
        "unknown; keep each module's state under the module's path (as "
        "{'Dense_0': tx.init(params['Dense_0'])}) or re-initialize the optimizer"
    )


def test_an_optimizer_state_refused_as_a_whole_is_named_opt_state():
    """A state passed as is, not inside a chain (scale_by_factored_rms's, a momentum
    trace), was named "opt_state sub-tree ''" when refused."""
    params, apply, alive, _ = _two_branches(nested=False)
    groups = channel_groups(apply, params, jnp.ones((2, 4)))
    with pytest.raises(ValueError) as error:
        shrink(params, alive, groups, opt_state={"kernel": jnp.ones((4, 3))})
    assert str(error.value).startswith(
        "opt_state {'kernel': (4, 3)} is shaped like the variables of each of ['a', 'b'], "
        "which shrink narrows apart"
    )
    factored = optax.scale_by_factored_rms(min_dim_size_to_factor=2).init(params)
    with pytest.raises(ValueError) as error:
        shrink(params, alive, groups, opt_state=factored)
    assert str(error.value).startswith(
        "opt_state holds Adafactor's factored second moments (v_row (3,), v_col (4,)) of "
        "'a/kernel' (4, 3), which shrink narrows;"
    )


def _two_alike(first="a", second="block/a"):
    """Params of modules ``first`` and ``second`` (paths of one or two keys) alike in
    shape, read by 'out'; groups; alive channels that cut them apart (``first`` keeps
    channels 1 and 2, ``second`` 0 and 1)."""
    w = jax.random.normal(jax.random.key(0), (4, 3))
    params = {"out": {"kernel": jnp.ones((6, 2))}}
    for path in (first, second):
        *outer, name = path.split("/")
        held = params.setdefault(outer[0], {}) if outer else params
        held[name] = {"kernel": w}

    def module(p, path):
        for key in path.split("/"):
            p = p[key]
        return p

    def apply(p, x):
        hidden = [jax.nn.relu(x @ module(p, path)["kernel"]) for path in (first, second)]
        return jnp.concatenate(hidden, -1) @ p["out"]["kernel"]

    groups = channel_groups(apply, params, jnp.ones((2, 4)))
    alive = {first: np.array([False, True, True]), second: np.array([True, True, False])}
    return params, groups, alive


def test_a_state_under_a_modules_whole_path_is_that_modules_not_a_deeper_ones_of_that_name():
    """A state kept under 'a' ({k: tx.init(params[k]) for k in params}), shaped like both
    module 'a' and module 'block/a', which shrink apart, is module 'a''s: its whole path."""
    params, groups, alive = _two_alike()
    tx = optax.sgd(0.1, momentum=0.9)
    grads = {"kernel": jnp.arange(12.0).reshape(4, 3)}
    state = {"a": tx.update(grads, tx.init(params["a"]))[1]}
    small = shrink(params, alive, groups, opt_state=state).opt_state
    np.testing.assert_array_equal(small["a"][0].trace["kernel"], grads["kernel"][:, 1:])


def test_a_state_under_a_name_two_modules_alike_in_shape_end_in_is_an_error():
    """A state kept under 'a', shaped like both 'p/a' and 'q/a', which shrink apart, is
    either's."""
    params, groups, alive = _two_alike("p/a", "q/a")
    state = {"a": optax.sgd(0.1, momentum=0.9).init(params["p"]["a"])}
    with pytest.raises(ValueError) as error:
        shrink(params, alive, groups, opt_state=state)
    assert str(error.value).startswith(
        "opt_state sub-tree 'a/0/trace' {'kernel': (4, 3)} is shaped like the variables of "
        "each of ['p/a', 'q/a'], which shrink narrows apart"
    )


def test_a_state_under_a_modules_last_key_is_that_modules_not_a_shallower_ones():
    """A state kept under 'a' ({k: tx.init(params['block'][k])}), shaped like both module
    'block/a' and the shallower 'b', is 'block/a''s: its path names the module's last key,
    and none of 'b''s (the shallowest module is taken only where the path names none)."""
    params, groups, alive = _two_alike("b", "block/a")
    tx = optax.sgd(0.1, momentum=0.9)
    grads = {"kernel": jnp.arange(12.0).reshape(4, 3)}
    state = {"a": tx.update(grads, tx.init(params["block"]["a"]))[1]}
    small = shrink(params, alive, groups, opt_state=state).opt_state
    np.testing.assert_array_equal(small["a"][0].trace["kernel"], grads["kernel"][:, :2])


@pytest.mark.parametrize("nested", [True, False], ids=["nested", "keyed 'block/a'"])
def test_a_state_kept_under_its_modules_whole_path_is_shrunk_as_that_modules(nested):
    """A state kept as {'block': {'a': ...}} (or under 'block/a') names module 'block/a'
    whole, 'a' only in part, yet was refused as either's (both end in 'a')."""
    params, groups, alive = _two_alike()
    tx = optax.sgd(0.1, momentum=0.9)
    grads = {"kernel": jnp.arange(12.0).reshape(4, 3)}
    moved = tx.update(grads, tx.init(params["block"]["a"]))[1]
    state = {"block": {"a": moved}} if nested else {"block/a": moved}
    small = shrink(params, alive, groups, opt_state=state).opt_state
    trace = (small["block"]["a"] if nested else small["block/a"])[0].trace["kernel"]
    np.testing.assert_array_equal(trace, grads["kernel"][:, :2])  # block/a keeps 0 and 1


def test_many_per_module_states_alike_in_shape_are_each_shrunk_as_their_module():
    """Each per-module state was matched against every module alike in shape (400 modules:
    7 s); the modules its path names are looked up. States under 'm0' and under
    'block/m0', both shaped like modules 'm0' and 'block/m0', and a state of all the
    params beside them, are each still sliced by their own module's dead channels."""
    names = [f"m{i}" for i in range(6)]
    paths = [*names, *(f"block/{n}" for n in names)]
    rng = np.random.default_rng(0)
    params = {"block": {}, "head": {"kernel": jnp.ones((3 * len(paths), 2))}}
    for path in paths:
        *outer, name = path.split("/")
        held = params[outer[0]] if outer else params
        held[name] = {"kernel": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)}

    def module(p, path):
        return p["block"][path[6:]] if path.startswith("block/") else p[path]

    def apply(p, x):
        hidden = [jax.nn.relu(x @ module(p, path)["kernel"]) for path in paths]
        return jnp.concatenate(hidden, -1) @ p["head"]["kernel"]

    groups = channel_groups(apply, params, jnp.ones((2, 4)))
    alive = {path: np.append(True, rng.random(2) < 0.5) for path in paths}
    tx = optax.sgd(0.1, momentum=0.9)
    moved = {
        path: tx.update(module(params, path), tx.init(module(params, path)))[1] for path in paths
    }
    per_module = {n: moved[n] for n in names} | {"block": {n: moved[f"block/{n}"] for n in names}}
    whole = tx.update(params, tx.init(params))[1]
    small = shrink(params, alive, groups, opt_state=(per_module, whole)).opt_state
    for path in paths:
        kept = np.flatnonzero(alive[path])
        expected = np.take(np.asarray(module(params, path)["kernel"]), kept, 1)
        np.testing.assert_array_equal(module(small[0], path)[0].trace["kernel"], expected)
        np.testing.assert_array_equal(module(small[1][0].trace, path)["kernel"], expected)
    rows = np.flatnonzero(np.concatenate([alive[path] for path in paths]))
    np.testing.assert_array_equal(small[1][0].trace["head"]["kernel"], np.ones((len(rows), 2)))


def test_an_optimizer_state_that_cannot_be_matched_is_an_error():
    x = jnp.ones((1, 4))
    variables = MLP.init(jax.random.key(0), x)
    groups = channel_groups(MLP, variables, x)
    params = variables["params"]
    # a module's moments beside a step: no sub-tree of the variables (the moments of a
    # module alone are, and are shrunk)
    state = {"moments": {**params, "layers_0": {**params["layers_0"], "step": jnp.zeros(())}}}
    match = "'moments/layers_0/bias' has the shape \\(3,\\) of 'params/layers_0/bias'"
    with pytest.raises(ValueError, match=match):
        shrink(variables, {"layers_0": [True, False, True]}, groups, opt_state=state)


def test_the_optimizer_state_of_other_widths_is_an_error_not_returned_unshrunk():
    """Adam's state of a 5-wide MLP came back as it was, too wide for the shrunk params."""
    x = jnp.ones((1, 4))
    variables = MLP.init(jax.random.key(0), x)
    groups = channel_groups(MLP, variables, x)
    other = nn.Sequential([nn.Dense(5), nn.relu, nn.Dense(2)]).init(jax.random.key(0), x)
    state = optax.adam(0.1).init(other["params"])
    match = r"'0/mu/layers_0/bias' has the shape \(5,\), but 'params/layers_0/bias' has \(3,\)"
    with pytest.raises(ValueError, match=match):
        shrink(variables, {"layers_0": [True, False, True]}, groups, opt_state=state)
    small = optax.adafactor(0.1).init(variables["params"])  # (1,) placeholders: shrunk
    shrink(variables, {"layers_0": [True, False, True]}, groups, opt_state=small)


@pytest.mark.parametrize(
    ("optimizer", "message"),
    [
        (
            optax.lbfgs(),
            "opt_state leaf '0/diff_params_memory/layers_0/bias' (10, 5) is kept under "
            "'params/layers_0/bias' (5,), which shrink narrows, but is not shaped like it (a "
            "state per axis or stacked over steps, as SM3's or L-BFGS's), so it cannot be "
            "shrunk; re-initialize the optimizer on the shrunk params (tx.init)",
        ),
        (
            optax.sm3(0.1),
            "opt_state leaf '0/mu/layers_0/bias/0' has the shape (5,) of "
            "'params/layers_0/bias', which shrink changes, but its sub-tree is not shaped",
        ),
    ],
    ids=["lbfgs", "sm3"],
)
def test_a_state_stacked_or_per_axis_under_a_narrowed_leaf_is_refused(optimizer, message):
    """L-BFGS's memory (10, *shape) and SM3's accumulators per axis came back unshrunk;
    the next update failed ("Incompatible types for broadcasting: float32[3] and
    float32[5]", "cannot reshape array of shape (5,) into shape [3]")."""
    model = nn.Sequential([nn.Dense(5), nn.relu, nn.Dense(3)])
    x = jnp.ones((1, 4))
    variables = model.init(jax.random.key(0), x)
    groups = channel_groups(model, variables, x)
    state = optimizer.init(variables["params"])
    with pytest.raises(ValueError) as error:
        shrink(variables, {"layers_0": [True, False, True, True, False]}, groups, opt_state=state)
    assert str(error.value).startswith(message)


@pytest.mark.parametrize(
    ("optimizer", "message"),
    [
        (
            optax.lbfgs(),
            "opt_state leaf 'layers_0/0/diff_params_memory/bias' (10, 5) is kept under "
            "'params/layers_0/bias' (5,), which shrink narrows, but is not shaped like it",
        ),
        (
            optax.sm3(0.1),
            "opt_state leaf 'layers_0/0/mu/bias/0' has the shape (5,) of "
            "'params/layers_0/bias', which shrink changes, but its sub-tree is not shaped",
        ),
    ],
    ids=["lbfgs", "sm3"],
)
def test_a_state_stacked_or_per_axis_kept_per_module_is_refused(optimizer, message):
    """Kept per module ({k: tx.init(params[k])}), L-BFGS's memory and SM3's accumulators
    came back unshrunk, the module's path and the leaf's apart in the state's path; the
    next update failed ("Incompatible types for broadcasting: float32[3] and float32[5]",
    "cannot reshape array of shape (5,) into shape [3]")."""
    model = nn.Sequential([nn.Dense(5), nn.relu, nn.Dense(3)])
    x = jnp.ones((1, 4))
    variables = model.init(jax.random.key(0), x)
    groups = channel_groups(model, variables, x)
    state = {k: optimizer.init(p) for k, p in variables["params"].items()}
    with pytest.raises(ValueError) as error:
        shrink(variables, {"layers_0": [True, False, True, True, False]}, groups, opt_state=state)
    assert str(error.value).startswith(message)


def test_a_state_of_other_widths_kept_per_module_is_refused():
    """A per-module Adam state of another model (bias (5,) where the variables have (3,))
    came back as given, where the same state as one tree is refused."""
    x = jnp.ones((1, 4))
    variables = MLP.init(jax.random.key(0), x)
    groups = channel_groups(MLP, variables, x)
    other = nn.Sequential([nn.Dense(5), nn.relu, nn.Dense(2)]).init(jax.random.key(0), x)
    state = {k: optax.adam(0.1).init(p) for k, p in other["params"].items()}
    match = r"'layers_0/0/mu/bias' has the shape \(5,\), but 'params/layers_0/bias' has \(3,\)"
    with pytest.raises(ValueError, match=match):
        shrink(variables, {"layers_0": [True, False, True]}, groups, opt_state=state)


@pytest.mark.parametrize("use_bias", [True, False])
def test_adafactors_factored_moments_are_refused_naming_the_optimizer(use_bias):
    """Its v_row/v_col came back unshrunk (use_bias=False) or an error blamed the tree's
    shape; the next update then failed broadcasting (4,) with (3,)."""
    model = nn.Sequential([nn.Dense(5, use_bias=use_bias), nn.relu, nn.Dense(3)])
    x = jnp.ones((1, 4))
    variables = model.init(jax.random.key(0), x)
    groups = channel_groups(model, variables, x)
    alive = {"layers_0": [True, False, True, True, False]}
    factored = optax.adafactor(0.1, min_dim_size_to_factor=2).init(variables["params"])
    match = r"Adafactor's factored second moments \(v_row \(4,\), v_col \(5,\)\) of "
    with pytest.raises(ValueError, match=match + "'params/layers_0/kernel'"):
        shrink(variables, alive, groups, opt_state=factored)
    plain = optax.adafactor(0.1, min_dim_size_to_factor=2, factored=False)
    small = shrink(variables, alive, groups, opt_state=plain.init(variables["params"]))
    assert small.opt_state[0].v["layers_0"]["kernel"].shape == (4, 3)


@pytest.mark.parametrize(
    "wrap",
    [lambda p: (p, {"scale": jnp.ones(3)}), lambda p: {"model": p}],
    ids=["(params, extra)", "{'model': params}"],
)
def test_adafactors_factored_moments_of_params_inside_another_tree_are_refused(wrap):
    """An Adafactor over (params, extra) or {'model': params} came back with its v_row and
    v_col unshrunk (v_col (3,) of 'layers_2/kernel', now (5, 3) -> (3, 3)), and the next
    update failed broadcasting; the params inside are found as a sub-tree's are."""
    model = nn.Sequential([nn.Dense(5, use_bias=False), nn.relu, nn.Dense(3, use_bias=False)])
    x = jnp.ones((1, 4))
    variables = model.init(jax.random.key(0), x)
    groups = channel_groups(model, variables, x)
    alive = {"layers_0": [True, False, True, True, False]}
    factored = optax.adafactor(0.1, min_dim_size_to_factor=2).init(wrap(variables["params"]))
    with pytest.raises(ValueError) as error:
        shrink(variables, alive, groups, opt_state=factored)
    assert str(error.value).startswith(
        "opt_state sub-tree '0' holds Adafactor's factored second moments (v_row (4,), "
        "v_col (5,)) of 'params/layers_0/kernel' (4, 5), which shrink narrows;"
    )
    plain = optax.adafactor(0.1, min_dim_size_to_factor=2, factored=False)
    state = plain.init(wrap(variables["params"]))
    small = shrink(variables, alive, groups, opt_state=state).opt_state
    kept = shrink(variables, alive, groups).variables["params"]
    assert jax.tree.map(np.shape, wrap(kept)) == jax.tree.map(np.shape, small[0].v)


def _two_alike_dense_layers_the_second_narrowed():
    """Variables, groups and alive of Dense 5, 5, 3 on 4 inputs, where shrink narrows
    layers_2 and leaves layers_0 (alike in its bias) whole; an Adafactor that factors."""
    model = nn.Sequential([nn.Dense(5), nn.relu, nn.Dense(5), nn.relu, nn.Dense(3)])
    x = jnp.ones((1, 4))
    variables = model.init(jax.random.key(0), x)
    alive = {"layers_2": [True, False, True, True, False]}
    adafactor = optax.adafactor(0.1, min_dim_size_to_factor=2)
    return variables, channel_groups(model, variables, x), alive, adafactor


def test_adafactors_factored_moments_kept_per_module_are_refused_naming_the_module():
    """States kept per module ({k: tx.init(params[k])}) were not refused: their v_row/v_col
    came back unshrunk and the next update failed broadcasting (5,) with (3,). A module
    that shrink leaves whole keeps its factored state, though another module alike in
    shape is narrowed."""
    variables, groups, alive, adafactor = _two_alike_dense_layers_the_second_narrowed()
    params = variables["params"]
    state = {k: adafactor.init(params[k]) for k in params}
    with pytest.raises(ValueError) as error:
        shrink(variables, alive, groups, opt_state=state)
    assert str(error.value) == (
        "opt_state sub-tree 'layers_2/0' holds Adafactor's factored second moments (v_row "
        "(5,), v_col (5,)) of 'params/layers_2/kernel' (5, 5), which shrink narrows; they "
        "are means over its widths and cannot be sliced: re-initialize the optimizer on the "
        "shrunk params (tx.init), or use optax.adafactor(..., factored=False)"
    )

    sgd = optax.sgd(0.1, momentum=0.9)
    state = {k: (adafactor if k == "layers_0" else sgd).init(params[k]) for k in params}
    small = shrink(variables, alive, groups, opt_state=state).opt_state
    jax.tree.map(np.testing.assert_array_equal, small["layers_0"], state["layers_0"])
    assert small["layers_2"][0].trace["kernel"].shape == (5, 3)


def test_adafactors_factored_moments_are_matched_to_a_module_of_their_shape():
    """Kept in a list, layers_0's factored state (v_row (4,), v_col (5,)) was taken for
    layers_2's, which shrink narrows, as both have a (5,) bias: it was refused as the
    moments of 'params/layers_2/kernel' (5, 5). A kernel (4, 5) or (5, 4) fits them."""
    variables, groups, alive, adafactor = _two_alike_dense_layers_the_second_narrowed()
    params = variables["params"]
    sgd = optax.sgd(0.1, momentum=0.9)
    state = [adafactor.init(params["layers_0"]), sgd.init(params["layers_2"])]
    small = shrink(variables, alive, groups, opt_state=state).opt_state
    jax.tree.map(np.testing.assert_array_equal, small[0], state[0])
    assert small[1][0].trace["kernel"].shape == (5, 3)

    state = [adafactor.init(params[k]) for k in ("layers_0", "layers_2")]
    with pytest.raises(ValueError) as error:
        shrink(variables, alive, groups, opt_state=state)
    assert str(error.value).startswith(
        "opt_state sub-tree '1/0' holds Adafactor's factored second moments (v_row (5,), "
        "v_col (5,)) of 'params/layers_2/kernel' (5, 5), which shrink narrows;"
    )


SEQ = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(3)])


def _traced(model, variables, x, form):
    """``model``'s groups traced from its variables, or from its params via a callable."""
    if form == "variables":
        return channel_groups(model, variables, x)
    return channel_groups(lambda p, x: model.apply({"params": p}, x), variables["params"], x)


@pytest.mark.parametrize("given", ["variables", "params"])
@pytest.mark.parametrize("traced", ["variables", "params"])
def test_shrink_and_mask_take_variables_or_params_whatever_was_traced(traced, given):
    x = jax.random.normal(jax.random.key(1), (2, 4))
    variables = perturbed(SEQ.init(jax.random.key(0), x))
    groups = _traced(SEQ, variables, x, traced)
    alive = {"layers_0": np.arange(8) % 2 == 0}
    tree = variables if given == "variables" else variables["params"]
    as_variables = (lambda t: t) if given == "variables" else (lambda t: {"params": t})
    opt_state = optax.adam(0.1).init(tree)

    small = shrink(tree, alive, groups, opt_state=opt_state)
    reference = shrink(variables, alive, _traced(SEQ, variables, x, "variables"))
    assert small.widths == {"layers_0": 4}
    jax.tree.map(np.testing.assert_array_equal, as_variables(small.variables), reference.variables)
    shapes = jax.tree.map(jnp.shape, small.variables)
    assert jax.tree.map(jnp.shape, small.opt_state[0].mu) == shapes

    masked = as_variables(mask(tree, alive, groups))
    np.testing.assert_array_equal(masked["params"]["layers_0"]["kernel"][:, 1::2], 0)
    jitted = jax.jit(lambda t: mask(t, alive, groups))(tree)  # a train step masking params
    jax.tree.map(np.testing.assert_array_equal, as_variables(jitted), masked)
    masked_out = SEQ.apply(masked, x)
    assert not np.allclose(masked_out, SEQ.apply(variables, x), atol=1e-3)
    small_model = nn.Sequential([nn.Dense(4), nn.relu, nn.Dense(3)])
    small_out = small_model.apply(as_variables(small.variables), x)
    np.testing.assert_allclose(small_out, masked_out, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("traced", ["variables", "params"])
def test_a_tree_without_a_member_leaf_is_an_error_naming_it(traced):
    x = jnp.ones((2, 4))
    variables = SEQ.init(jax.random.key(0), x)
    groups = _traced(SEQ, variables, x, traced)
    missing = {"params": {"layers_0": variables["params"]["layers_0"]}}
    for tree, top in ((missing, "params"), (missing["params"], "layers_0")):
        match = rf"no leaf '(params/)?layers_2/kernel'.*top-level keys are \['{top}'\]"
        with pytest.raises(KeyError, match=match):
            shrink(tree, {"layers_0": np.arange(8) < 4}, groups)
        with pytest.raises(KeyError, match=match):
            mask(tree, {"layers_0": np.arange(8) < 4}, groups)


SHARED_PATH = (
    "the variables' leaves ['a']['b'] and ['a/b'] both have the path 'a/b' (their keys "
    "joined by '/'), which names a leaf in the channel groups; rename the key holding '/' "
    "(e.g. 'a/b' to 'a_b')"
)


def test_a_tree_whose_keys_hold_slashes_that_give_two_leaves_one_path_is_refused():
    """Groups name leaves by their keys joined with '/': the bias at ['a']['b'] and the
    kernel at ['a/b'] both were 'a/b', and importance read the kernel as the bias."""
    params = {"w": jnp.ones((4, 3)), "a": {"b": jnp.ones(3)}, "a/b": jnp.full((3, 2), 5.0)}

    def apply(p, x):
        return jax.nn.relu(x @ p["w"] + p["a"]["b"]) @ p["a/b"]

    with pytest.raises(ValueError) as error:
        channel_groups(apply, params, jnp.ones((2, 4)))
    assert str(error.value) == f"channel_groups: {SHARED_PATH}"


def test_a_tree_with_two_leaves_of_one_path_is_refused_by_every_function_naming_leaves():
    """Only channel_groups refused two leaves of one path: given groups traced from a
    tree without the clash, importance read the leaf at ['a/b'] as the bias at
    ['a']['b'] (5, not 0) and mask zeroed both. Each message begins with the function's
    name, as channel_groups' does (it had lost it: the message named no function)."""
    x = jnp.ones((2, 4))
    variables = SEQ.init(jax.random.key(0), x)
    groups = channel_groups(SEQ, variables, x)
    clashing = {"params": {**variables["params"], "a": {"b": jnp.zeros(3)}, "a/b": jnp.ones(3)}}
    alive = {"layers_0": np.arange(8) < 4}
    config = ModelConfig("mlp", 3, (4,), width=8)
    calls = {
        "importance": lambda: importance(groups, clashing),
        "alive_channels": lambda: alive_channels(groups, clashing),
        "report": lambda: report(groups, clashing),
        "morph_regularizer": lambda: morph_regularizer(groups)(clashing),
        "mask": lambda: mask(clashing, alive, groups),
        "shrink": lambda: shrink(clashing, alive, groups),
        "fold": lambda: fold(SEQ, clashing, alive, groups, x),
        "fit_config": lambda: px.morph.fit_config(config, clashing),
        "once": lambda: px.morph.once(config, clashing),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError) as error:
            call()
        expected = SHARED_PATH.replace("['a", "['params']['a").replace("'a/b' (", "'params/a/b' (")
        assert (name, str(error.value)) == (name, f"{name}: {expected}")


def test_an_optimizer_state_of_two_leaves_of_one_path_beside_the_variables_is_kept():
    """Refusing two leaves of one path refused them in any opt_state sub-tree shrink
    probes, naming them 'the variables' leaves': a state beside Adam's holding ['a/b']
    and ['a']['b'] failed shrink. It is no sub-tree of the variables and is kept as is."""
    params = {"w": jnp.ones((4, 3)), "v": jnp.ones((3, 2))}
    apply = lambda p, x: jax.nn.relu(x @ p["w"]) @ p["v"]
    groups = channel_groups(apply, params, jnp.ones((2, 4)))
    own = {"a/b": jnp.zeros(()), "a": {"b": jnp.ones(())}}
    state = (optax.adam(1e-3).init(params), own)
    shrunk = shrink(params, {"w": np.array([True, False, True])}, groups, opt_state=state)
    adam, kept = shrunk.opt_state
    assert jax.tree.map(jnp.shape, adam[0].mu) == {"w": (4, 2), "v": (2, 2)}
    assert jax.tree.map(float, kept) == {"a/b": 0.0, "a": {"b": 1.0}}


def test_the_tree_of_a_model_with_renamed_layers_is_an_error_naming_its_modules():
    """It said only the top-level keys (['params']) and to give the variables."""
    x = jnp.ones((2, 4))
    groups = channel_groups(SEQ, SEQ.init(jax.random.key(0), x), x)

    class Renamed(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(3, name="head")(nn.relu(nn.Dense(8, name="enc")(x)))

    with pytest.raises(KeyError) as error:
        shrink(Renamed().init(jax.random.key(0), x), {"layers_0": np.arange(8) < 4}, groups)
    assert error.value.args[0].endswith(
        "its top-level keys are ['params'], its modules ['params/enc', 'params/head']; give a "
        "tree holding every traced leaf (the variables, if batch statistics or other "
        "collections were traced), or, for another model than the traced one (its layers "
        "renamed, say), trace its groups: channel_groups(model, variables, x)"
    )


def test_a_tree_of_many_modules_names_the_first_eight_and_counts_the_rest():
    """It cut the list with '...', without saying how many were left out."""
    paths = [f"params/dense_{i}/kernel" for i in range(11)]
    with pytest.raises(KeyError) as error:
        leaf_path("params/head/kernel", paths)
    shown = [f"params/dense_{i}" for i in range(8)]
    assert f"its modules {shown} and 3 more; give a tree" in error.value.args[0]


def test_a_tree_of_other_widths_than_traced_is_an_error_naming_leaf_and_group():
    x = jnp.ones((2, 4))
    variables = SEQ.init(jax.random.key(0), x)
    groups = channel_groups(SEQ, variables, x)
    half = {"layers_0": np.arange(8) < 4}
    small = shrink(variables, half, groups).variables  # the old groups no longer fit
    match = (
        r"leaf 'params/layers_0/\w+' of channel group 'layers_0' has shape \(.*4,?\), "
        r"but the group was traced with 8 positions along its axis \d; trace the groups"
    )
    for call in (shrink, mask):
        with pytest.raises(ValueError, match=match):
            call(small, half, groups)
    with pytest.raises(ValueError, match=match):
        alive_channels(groups, small)


def _boxed_mlp(width):
    def boxed(names):
        return nn.with_partitioning(nn.initializers.lecun_normal(), names)

    return nn.Sequential(
        [nn.Dense(width, kernel_init=boxed((None, "model"))), nn.relu, nn.Dense(3)]
    )


def test_partitioned_params_are_grouped_named_and_shrunk_like_bare_ones():
    x = jax.random.normal(jax.random.key(1), (2, 4))
    model = _boxed_mlp(8)
    variables = perturbed(model.init(jax.random.key(0), x))
    groups = channel_groups(model, variables, x)
    assert groups.names == ("layers_0",)
    kernel = groups.groups[0].sources("out")[0]
    assert kernel.path == "params/layers_0/kernel"
    assert kernel.module == "params/layers_0"  # with its bias, in one group-lasso term
    alive = {"layers_0": np.arange(8) % 3 != 1}
    small = shrink(variables, alive, groups).variables
    assert isinstance(small["params"]["layers_0"]["kernel"], nn.Partitioned)
    np.testing.assert_allclose(
        _boxed_mlp(5).apply(small, x), model.apply(mask(variables, alive, groups), x), atol=1e-6
    )


def test_params_alone_cannot_shrink_groups_holding_batch_statistics():
    x = jax.random.normal(jax.random.key(1), (2, 5, 5, 2))
    variables = PlainCNN().init(jax.random.key(0), x)
    groups = channel_groups(PlainCNN(), variables, x)
    with pytest.raises(KeyError, match=r"no leaf 'batch_stats/bn0/\w+'"):
        shrink(variables["params"], {"conv0": [1, 0, 1, 1, 0, 1]}, groups)


def test_tracing_the_params_alone_says_to_pass_the_variables():
    """It raised flax's "Could not find parameter named "kernel" in scope "/layers_0"",
    or, through once, "the collection is empty"."""
    model, x = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(2)]), jnp.ones((2, 4))
    params = model.init(jax.random.key(0), x)["params"]
    with pytest.raises(
        ValueError,
        match=r"^channel_groups: variables hold no 'params' collection \(they hold 'layers_0', "
        r"'layers_2': the params alone\?\); pass what model.init returns, \{'params': params, "
        r"\.\.\.\} \(Flax: .*\"kernel\".*\"/layers_0\".*\)$",
    ):
        channel_groups(model, params, x)
    assert channel_groups(model, {"params": params}, x).names == ("layers_0",)


def test_tracing_the_params_alone_of_one_module_says_to_pass_the_variables():
    """Its params hold arrays, no collections: flax's bare "The first argument passed to
    an apply function should be a dictionary of collections" came out."""
    model, x = nn.Dense(3), jnp.ones((2, 4))
    params = model.init(jax.random.key(0), x)["params"]
    with pytest.raises(
        ValueError,
        match=r"^channel_groups: variables hold no 'params' collection \(they hold 'kernel', "
        r"'bias': the params alone\?\); pass what model.init returns",
    ):
        channel_groups(model, params, x)


def test_tracing_a_module_with_variables_that_are_no_mapping_names_them():
    """x and the variables swapped raised "Array.__contains__: unsupported operand type";
    None, "argument of type 'NoneType' is not iterable"."""
    model, x = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(2)]), jnp.ones((2, 4))
    variables = model.init(jax.random.key(0), x)
    start = r"^channel_groups: variables must be what model.init returns, .* got "
    with pytest.raises(TypeError, match=start + "an ArrayImpl"):
        channel_groups(model, x, variables)
    with pytest.raises(TypeError, match=start + "None"):
        channel_groups(model, None, x)


def test_a_model_that_is_no_module_nor_function_is_refused_saying_what_to_pass():
    """A model config (what expressible and once take) or the variables in the model's
    place were called as an apply: "'ModelConfig' object is not callable"."""
    config = ModelConfig("mlp", 2, (4,), width=3)
    x = jnp.ones((1, 4))
    variables = config.build().init(jax.random.key(0), x)
    start = "channel_groups: model must be a Flax module or an apply(variables, *args), got"
    with pytest.raises(TypeError) as error:
        channel_groups(config, variables, x)
    assert str(error.value) == f"{start} a ModelConfig: pass its .build()"
    with pytest.raises(TypeError) as error:
        channel_groups(variables, config.build(), x)
    assert str(error.value) == f"{start} a dict: e.g. ModelConfig('mlp', 10, (40,)).build()"
    assert channel_groups(config.build().apply, variables, x).names == ("blocks_0/Dense_0",)


def test_channel_groups_without_example_inputs_says_to_pass_them():
    """It was Flax's own 'Dense.__call__() missing 1 required positional argument', as
    fold's was."""
    model = nn.Sequential([nn.Dense(4), nn.relu, nn.Dense(2)])
    variables = model.init(jax.random.key(0), jnp.ones((1, 3)))
    with pytest.raises(TypeError) as error:
        channel_groups(model, variables)
    assert str(error.value) == (
        "channel_groups: no example inputs given, and the model cannot run without them "
        "(Dense.__call__() missing 1 required positional argument: 'inputs'); pass them "
        "after the variables, as model.apply takes them: channel_groups(model, variables, x)"
    )


def test_an_input_of_another_shape_than_the_variables_were_made_for_is_named():
    """It blamed only the variables ("are the variables of another model?"), not x."""
    model = nn.Sequential([nn.Dense(4), nn.relu, nn.Dense(2)])
    variables = model.init(jax.random.key(0), jnp.ones((1, 3)))
    with pytest.raises(ValueError) as error:
        channel_groups(model, variables, jnp.ones((2, 5)))
    assert str(error.value).startswith(
        "channel_groups: a variable has another shape than the model makes ("
    )
    assert str(error.value).endswith(
        "; or is an example input of another shape than the variables were made for "
        "(given: (2, 5))? pass inputs shaped as those model.init got"
    )
    with pytest.raises(ValueError) as by_keyword:  # it was named only when given by position
        channel_groups(model, variables, inputs=jnp.ones((2, 5)))
    assert str(by_keyword.value) == str(error.value)


def test_another_model_s_variables_are_named_as_such_not_a_flax_scope_error():
    """It raised flax's 'Could not find parameter named "kernel" in scope "/stem/Dense_0"',
    through once too, without saying that the variables are of another model."""
    x = jnp.ones((2, 4))
    variables = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(2)]).init(jax.random.key(0), x)
    text = (
        r"the model reads a variable that variables lack \(.*kernel.*\); its 'params' hold "
        r"the modules \['layers_0', 'layers_2'\]: are they another model's\? pass this "
        r"model's, e.g. model.init's$"
    )
    with pytest.raises(ValueError, match=f"^channel_groups: {text}"):
        channel_groups(nn.Sequential([nn.Dense(8), nn.relu, nn.relu, nn.Dense(2)]), variables, x)
    with pytest.raises(ValueError, match=f"^once: {text}"):  # named by the function called
        px.morph.once(ModelConfig("mlp", 2, (4,)), variables)


def test_a_graph_model_returning_every_node_is_refused_with_how_to_pick_the_logits():
    nodes = {"hidden": nn.Dense(8), "act": nn.relu, "head": nn.Dense(2)}
    x = jnp.ones((2, 4))
    every = GraphModel(nodes)
    variables = every.init(jax.random.key(0), x)
    with pytest.raises(ValueError, match=r"returns every node's output.*returns='head'"):
        channel_groups(every, variables, x)
    assert channel_groups(GraphModel(nodes, returns="head"), variables, x).names == ("hidden",)
    assert channel_groups(every, variables, x, outputs="head").names == ("hidden",)


def test_tracing_with_mutable_collections_is_an_error_not_a_model_without_groups():
    # in training, apply(..., mutable=["batch_stats"]) returns the new batch statistics
    # too: every channel became a model output, and the model silently had no group
    class Normed(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            h = nn.BatchNorm(use_running_average=not train)(nn.Dense(6, use_bias=False)(x))
            return nn.Dense(2)(nn.relu(h))

    model, x = Normed(), jnp.ones((4, 3))
    variables = model.init(jax.random.key(0), x)
    with pytest.raises(ValueError, match=r"mutable=\['batch_stats'\] .*trace in inference mode"):
        channel_groups(model, variables, x, train=True, mutable=["batch_stats"])
    assert channel_groups(model, variables, x).names == ("Dense_0",)


def test_an_axis_of_a_closed_over_array_is_pinned_saying_why():
    # a params-only apply closing over the batch statistics: their channels cannot be
    # shrunk, so the group is pinned; the reason says what the constant is and the fix
    class Normed(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.BatchNorm(use_running_average=True)(nn.Dense(6, use_bias=False)(x))
            return nn.Dense(2)(nn.relu(h))

    model, x = Normed(), jnp.ones((4, 3))
    variables = model.init(jax.random.key(0), x)

    def apply(params, x):
        return model.apply({"params": params, "batch_stats": variables["batch_stats"]}, x)

    groups = channel_groups(apply, variables["params"], x)
    assert groups.names == ()
    assert re.search(r"closed over.*pass it in the variables", groups.pinned["Dense_0/kernel:1"])


def test_a_kernel_stored_flat_and_reshaped_when_used_is_pinned_saying_why():
    """Its output channels formed no group, and nothing said why: the reshape lost which
    of its axes the kernel's outputs are. Stored as it is used, they are a group."""

    class Flat(nn.Module):
        shape: tuple[int, ...]

        @nn.compact
        def __call__(self, x):
            h = nn.relu(nn.Dense(5)(x))
            kernel = self.param("k", nn.initializers.normal(), self.shape)
            return nn.Dense(2)(nn.relu(h @ kernel.reshape(5, 6)))

    x = jnp.ones((2, 4))
    groups = channel_groups(Flat((30,)), Flat((30,)).init(jax.random.key(0), x), x)
    assert groups.names == ("Dense_0",)
    why = groups.pinned["params/k:0"]
    assert why.startswith("reshape (") and "test_shrink.py:" in why, why
    assert why.endswith(
        ") splits or merges this axis of the variable, and morph does not follow how a "
        "variable is used through a reshape (as a kernel's output channels), so what no "
        "other use ties to a group is kept whole; store the variable in the shape it is "
        "used in (a kernel as (inputs, outputs), not flat)"
    )
    stored = channel_groups(Flat((5, 6)), Flat((5, 6)).init(jax.random.key(0), x), x)
    assert stored.names == ("Dense_0", "k") and "params/k:0" not in stored.pinned


def test_results_print_how_many_numbers_they_hold_not_the_numbers():
    """Shrunk, Morphed and Folded printed every number of every array (43,313 characters
    for a Morphed of the default resnet on 8x8 images)."""
    variables = {"params": {"conv": {"kernel": np.zeros((3, 3, 64, 64)), "bias": np.zeros(64)}}}
    config = ModelConfig("mlp", 10, (40,), width=64)
    shrunk = Shrunk(variables, optax.adam(1e-3).init(variables), {"conv": 64}, config)
    assert repr(Morphed(shrunk, config)) == (
        "Morphed(shrunk=Shrunk(variables=(36,928 numbers in 2 arrays), opt_state=(73,857 "
        "numbers in 5 arrays), widths={'conv': 64}, config=ModelConfig(name='mlp', "
        "num_classes=10, input_shape=(40,), depth=None, width=64, options=())), "
        "config=ModelConfig(name='mlp', num_classes=10, input_shape=(40,), depth=None, "
        "width=64, options=()))"
    )
    alive = {"conv": np.arange(64) % 4 == 0, "dense": np.ones(1, bool)}
    assert repr(Folded(variables, alive)) == (
        "Folded(variables=(36,928 numbers in 2 arrays), alive={'conv': '16 of 64', "
        "'dense': '1 of 1'})"
    )


def test_channel_groups_print_a_summary_not_every_member_leaf_and_polynomial():
    """It printed them all (5,490 characters for the default resnet on 8x8 images)."""
    groups = tuple(ChannelGroup(f"blocks_{i}/conv", 64, ()) for i in range(12))
    paths = tuple(f"params/blocks_{i}/conv/kernel" for i in range(12))
    pinned = {"params/head/kernel:1": "model output", "params/stem/kernel:2": "input"}
    whole = ChannelGroups(groups, paths, ((3, 3, 64, 64),) * 12, pinned, (), (("dot", (), 1),))
    assert repr(whole) == (
        "ChannelGroups(12 groups of sizes {'blocks_0/conv': 64, 'blocks_1/conv': 64, "
        "'blocks_2/conv': 64, 'blocks_3/conv': 64, 'blocks_4/conv': 64, 'blocks_5/conv': 64, "
        "'blocks_6/conv': 64, 'blocks_7/conv': 64, 'blocks_8/conv': 64, 'blocks_9…, in 12 "
        "arrays (2 axes pinned), 1 op costed)"
    )


CALLS = {  # each function's call as its message gives it: they take the groups apart
    "alive_channels": "alive_channels(groups, variables)",
    "importance": "importance(groups, variables)",
    "report": "report(groups, variables)",
    "morph_regularizer": "morph_regularizer(groups)",
    "cost_polynomial": "cost_polynomial(groups)",
    "expressible": "expressible(config, groups, alive)",
    "mask": "mask(variables, alive, groups)",
    "shrink": "shrink(variables, alive, groups)",
    "fold": "fold(model, variables, alive, groups, x)",
}


@pytest.mark.parametrize("name", CALLS)
def test_groups_given_in_another_place_are_refused_naming_the_call(name):
    """Arguments swapped (variables where the groups go) were an AttributeError, "'dict'
    object has no attribute 'groups'" (or 'names', 'paths', ...), from inside."""
    model = nn.Sequential([nn.Dense(3), nn.relu, nn.Dense(2)])
    x = jnp.ones((1, 4))
    variables = model.init(jax.random.key(0), x)
    alive = {"layers_0": [True, False, True]}
    config = ModelConfig("mlp", 2, (4,), width=3)
    calls = {  # the variables where the groups go, and the groups where the variables go
        "alive_channels": lambda groups: alive_channels(variables, groups),
        "importance": lambda groups: importance(variables, groups),
        "report": lambda groups: report(variables, groups),
        "morph_regularizer": lambda groups: morph_regularizer(variables),
        "cost_polynomial": lambda groups: cost_polynomial(variables),
        "expressible": lambda groups: expressible(config, variables, alive),
        "mask": lambda groups: mask(groups, alive, variables),
        "shrink": lambda groups: shrink(groups, alive, variables),
        "fold": lambda groups: fold(model, groups, alive, variables, x),
    }
    with pytest.raises(TypeError) as error:
        calls[name](channel_groups(model, variables, x))
    assert str(error.value) == (
        f"{name}: groups must be the ChannelGroups that channel_groups(model, variables, x) "
        f"returns, got a dict; call it as {CALLS[name]}"
    )
