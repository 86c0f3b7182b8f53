"""Every layer of `phosjax.layers` between Dense layers: the shrunk model equals the masked
one, and shrinking twice changes nothing (a layer missing from `CASES` fails); and what
their routing and spectral norms need: `top_k`, matrix decompositions."""

import re
from collections.abc import Callable, Mapping
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import phosjax.layers as L
from phosjax.morph import channel_groups, mask, shrink
from tests.morph.perturb import perturbed


class MLP(nn.Module):
    """A block for the containers: Dense(inner), relu, Dense(width)."""

    inner: int
    width: int

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.width, name="out")(nn.relu(nn.Dense(self.inner, name="hidden")(x)))


class Between(nn.Module):
    """Dense(w) and relu for each w of ``stems`` (``stem_0``...), ``layer``, Dense(3)."""

    layer: nn.Module
    stems: tuple[int, ...] = (6,)

    @nn.compact
    def __call__(self, x):
        for i, width in enumerate(self.stems):
            x = nn.relu(nn.Dense(width, name=f"stem_{i}")(x))
        return nn.Dense(3, name="head")(self.layer(x))


def _mlp(w, block):
    """The `MLP` named ``block``, of the widths ``w`` gives its groups."""
    return MLP(w[f"{block}/hidden"], w[f"{block}/out"])


class Case(NamedTuple):
    """A model around one layer, built from its groups' widths, and what to expect."""

    build: Callable[[Mapping[str, int]], nn.Module]
    shape: tuple[int, ...]  # of an input, without the batch
    groups: Mapping[str, int]  # the model's channel groups and their sizes
    alive: Mapping[str, int] = {}  # how many channels a group keeps, where the layer ties it


CASES = {
    "GLU": Case(
        lambda w: Between(L.GLU(w["layer/proj"]), (w["stem_0"],)),
        (5,),
        {"layer/proj": 4, "stem_0": 6},
    ),
    "ActivityL1": Case(lambda w: Between(L.ActivityL1(), (w["stem_0"],)), (5,), {"stem_0": 6}),
    "Choice": Case(
        lambda w: Between(
            L.Choice(
                [_mlp(w, "layer/branches_0"), nn.Dense(w["layer/branches_0/out"])],
                per_example=True,
            ),
            (w["stem_0"],),
        ),
        (5,),
        {"layer/branches_0/hidden": 5, "layer/branches_0/out": 6, "stem_0": 6},
    ),
    "DropPath": Case(lambda w: Between(L.DropPath(0.5), (w["stem_0"],)), (5,), {"stem_0": 6}),
    # cos(0) is 1: the frequencies' channels are pinned where the head contracts them
    "FourierFeatures": Case(
        lambda w: Between(L.FourierFeatures(4), (w["stem_0"],)), (5,), {"stem_0": 6}
    ),
    "GatedSkip": Case(
        lambda w: Between(L.GatedSkip(_mlp(w, "layer/block")), (w["layer/block/out"],)),
        (5,),
        {"layer/block/hidden": 5, "layer/block/out": 6},
    ),
    # its kernel is a slice of what its hyper-network makes: nothing around it prunes
    "HyperDense": Case(lambda w: Between(L.HyperDense(4), (6,)), (5,), {}),
    "LayerScale": Case(lambda w: Between(L.LayerScale(0.5), (w["stem_0"],)), (5,), {"stem_0": 6}),
    # an svd of its kernel pins its rows (stem_1) and columns: stem_0 prunes
    "LipschitzDense": Case(
        lambda w: Between(L.LipschitzDense(4), (w["stem_0"], 5)), (5,), {"stem_0": 6}
    ),
    "MixtureOfExperts": Case(
        lambda w: Between(
            L.MixtureOfExperts(3, 2, w["layer#0"], features=w["layer#1"]), (w["stem_0"],)
        ),
        (5,),
        {"layer#0": 4, "layer#1": 5, "stem_0": 6},
    ),
    # its input width is heads * head size (3), and its output width its input's
    "MultiHeadSelfAttention": Case(
        lambda w: Between(L.MultiHeadSelfAttention(w["layer/qkv"]), (w["stem_0"],)),
        (4, 5),
        {"layer/out": 6, "layer/qkv": 2, "stem_0": 6},
        {"stem_0": 3, "layer/qkv": 1, "layer/out": 3},
    ),
    "OrthogonalDense": Case(
        lambda w: Between(L.OrthogonalDense(w["layer"]), (w["stem_0"],)),
        (5,),
        {"layer": 4, "stem_0": 6},
    ),
    "ReZero": Case(
        lambda w: Between(L.ReZero(_mlp(w, "layer/block")), (w["layer/block/out"],)),
        (5,),
        {"layer/block/hidden": 5, "layer/block/out": 6},
    ),
    "Repeat": Case(
        lambda w: Between(
            L.Repeat(L.Residual(_mlp(w, "layer/block/block")), num_layers=2),
            (w["layer/block/block/out"],),
        ),
        (5,),
        {"layer/block/block/hidden": 5, "layer/block/block/out": 6},
    ),
    "Residual": Case(
        lambda w: Between(L.Residual(_mlp(w, "layer/block")), (w["stem_0"],)),
        (5,),
        {"layer/block/hidden": 5, "layer/block/out": 4, "stem_0": 6},
    ),
    "Sequence": Case(
        lambda w: Between(
            L.Sequence(
                [nn.Dense(w["layer/layers_0"]), L.DropPath(0.2), nn.Dense(w["layer/layers_2"])]
            ),
            (w["stem_0"],),
        ),
        (5,),
        {"layer/layers_0": 5, "layer/layers_2": 4, "stem_0": 6},
    ),
    # its bottleneck is half its width (reduction=2)
    "SqueezeExcite": Case(
        lambda w: Between(L.SqueezeExcite(2), (w["layer/up"],)),
        (4, 5),
        {"layer/down": 3, "layer/up": 6},
        {"layer/up": 4, "layer/down": 2},
    ),
    "SwiGLU": Case(
        lambda w: Between(L.SwiGLU(w["layer/gate_proj"], w["layer/out"]), (w["stem_0"],)),
        (5,),
        {"layer/gate_proj": 5, "layer/out": 4, "stem_0": 6},
    ),
    # the LayerNorms pin the stream (stem_0); fewer heads over it would be larger heads
    "TransformerBlock": Case(
        lambda w: Between(L.TransformerBlock(w["layer/attention/qkv"], w["layer/mlp_in"]), (4,)),
        (4, 5),
        {"layer/attention/qkv": 2, "layer/mlp_in": 8},
        {"layer/attention/qkv": 2},
    ),
}


def _alive(groups, counts, seed=0):
    """A random mask per group: half its channels (at least one), or ``counts``."""
    rng = np.random.default_rng(seed)
    return {
        g.name: rng.permutation(g.size) < counts.get(g.name, max(1, g.size // 2))
        for g in groups.groups
    }


def test_every_case_is_a_layer_of_phosjax_layers():
    assert set(CASES) <= set(L.__all__)


@pytest.mark.parametrize("name", L.__all__)
def test_each_layer_shrunk_equals_masked_and_shrinking_twice_changes_nothing(name):
    assert name in CASES, f"phosjax.layers.{name} has no case: add one to CASES"
    case = CASES[name]
    model = case.build(case.groups)
    x = jax.random.normal(jax.random.key(1), (3, *case.shape))
    variables = perturbed(model.init(jax.random.key(0), x))
    groups = channel_groups(model, variables, x)
    assert {g.name: g.size for g in groups.groups} == case.groups
    alive = _alive(groups, case.alive)
    small = shrink(variables, alive, groups)
    smaller = case.build(small.widths)

    masked_out = model.apply(mask(variables, alive, groups), x)
    np.testing.assert_allclose(smaller.apply(small.variables, x), masked_out, atol=1e-5, rtol=1e-5)
    if case.groups:
        assert not np.allclose(masked_out, model.apply(variables, x), atol=1e-3)

    again = channel_groups(smaller, small.variables, x)
    twice = shrink(small.variables, again.full(), again)
    assert jax.tree.all(jax.tree.map(np.array_equal, twice.variables, small.variables))


class TopK(nn.Module):
    """relu(Dense(6)), then its 2 largest values per channel over the sequence (k-max
    pooling), ``ranked``: over the channels instead; ``indices``: their positions too."""

    widths: tuple[int, ...] = (6,)
    ranked: str = "sequence"
    indices: bool = False

    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(self.widths[0], name="stem")(x))
        axis = {"sequence": 1, "channels": 2}[self.ranked]
        top, where = jax.lax.top_k(jnp.moveaxis(h, axis, -1), 2)
        top = top + where if self.indices else top
        return nn.Dense(3, name="head")(jnp.moveaxis(top, -1, axis).reshape(x.shape[0], -1))


def _assert_stem_prunes(model, variables, x):
    """The model's one group is its ``stem`` (width 6): with 4 of its channels alive,
    the shrunk model computes what the masked one does. Returns the groups."""
    groups = channel_groups(model, variables, x)
    assert groups.names == ("stem",)
    alive = {"stem": np.arange(6) % 3 != 1}
    small = shrink(variables, alive, groups)
    np.testing.assert_allclose(
        model.clone(widths=(4,)).apply(small.variables, x),
        model.apply(mask(variables, alive, groups), x),
        atol=1e-5,
        rtol=1e-5,
    )
    return groups


def test_top_k_over_other_axes_passes_channels_through_and_pins_what_it_ranks():
    x = jax.random.normal(jax.random.key(1), (3, 4, 5))
    model = TopK()
    variables = perturbed(model.init(jax.random.key(0), x))
    _assert_stem_prunes(model, variables, x)
    for pinned, reason in [
        (TopK(ranked="channels"), "top_k .* ranks along this axis"),
        (TopK(indices=True), "sums over channels that are not zero when dead"),
    ]:
        groups = channel_groups(pinned, pinned.init(jax.random.key(0), x), x)
        assert groups.names == ()
        assert re.search(reason, groups.pinned["params/stem/kernel:1"])


DECOMPOSED = {
    "svd": lambda k: jnp.linalg.svd(k, compute_uv=False)[0],
    "eigh": lambda k: jnp.linalg.eigh(k)[0][-1],
    "qr": lambda k: jnp.abs(jnp.linalg.qr(k)[1]).max(),
    "cholesky": lambda k: jnp.linalg.cholesky(k)[-1, -1],
    "lu": lambda k: jnp.abs(jax.scipy.linalg.lu_factor(k)[0]).max(),
    "triangular_solve": lambda k: jax.scipy.linalg.solve_triangular(k, k, lower=True)[-1, -1],
    "custom_linear_solve": lambda k: jnp.linalg.solve(2 * jnp.eye(5), k)[-1, -1],  # k: its b
}


def _positive_definite(key, shape):
    """``3 I`` plus small noise: positive definite, after `_perturbed` too."""
    return 3 * jnp.eye(shape[0]) + 0.01 * jax.random.normal(key, shape)


class Decomposed(nn.Module):
    """Dense(6), relu, Dense(5), relu, then a square kernel scaled by a number a
    decomposition of it gives (a spectral norm), and Dense(3)."""

    decompose: str
    widths: tuple[int, ...] = (6,)

    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(5, name="pinned")(nn.relu(nn.Dense(self.widths[0], name="stem")(x))))
        kernel = self.param("kernel", _positive_definite, (5, 5))
        h = h @ (kernel / DECOMPOSED[self.decompose](kernel))
        return nn.Dense(3, name="head")(h)


@pytest.mark.parametrize("name", sorted(DECOMPOSED))
def test_a_matrix_decomposition_pins_its_operand_and_the_rest_prunes(name):
    x = jax.random.normal(jax.random.key(1), (3, 5))
    model = Decomposed(name)
    variables = perturbed(model.init(jax.random.key(0), x))
    reason = _assert_stem_prunes(model, variables, x).pinned["params/pinned/kernel:1"]
    assert reason.startswith(name)
    assert reason.endswith("decomposes or solves with matrices over this axis")


def test_a_grouped_convolution_pins_its_channels_saying_which_convolutions_prune():
    """The pin said only "is a grouped convolution (feature_group_count=2)"."""
    model = nn.Sequential([nn.Conv(4, (1,)), nn.Conv(4, (1,), feature_group_count=2)])
    x = jnp.ones((1, 2, 4))
    groups = channel_groups(model, model.init(jax.random.key(0), x), x)
    assert groups.pinned["params/layers_0/kernel:2"].startswith("conv_general_dilated (")
    assert groups.pinned["params/layers_0/kernel:2"].endswith(
        "is a grouped convolution (feature_group_count=2), whose groups must keep equal sizes; "
        "only feature_group_count=1 and a depthwise convolution (feature_group_count = its "
        "input and output features) prune"
    )


def test_a_pin_inside_a_flax_layer_names_the_layer_s_module_not_morph_s_own_line():
    """Where the op is all a Flax layer's code, the reason named morph's own call of the
    model as its place: "conv_general_dilated (.../phosjax/morph/_groups.py:<line>
    (traced_groups.<locals>.run))"."""
    model = nn.Sequential([nn.Conv(4, (1,)), nn.Conv(4, (1,), feature_group_count=2)])
    x = jnp.ones((1, 2, 4))
    groups = channel_groups(model, model.init(jax.random.key(0), x), x)
    assert groups.pinned["params/layers_0/kernel:2"].startswith(
        "conv_general_dilated (module Sequential/layers_1) is a grouped convolution"
    )
