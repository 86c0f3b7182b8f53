"""Costs, the MorphNet regularizer, reports, expand and once."""

import functools
import math
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import phosjax as px
from phosjax.core import Blurb, SelectorError
from phosjax.models import ModelConfig, param_count
from phosjax.morph import (
    alive_channels,
    annotate,
    channel_groups,
    config_cost,
    cost_polynomial,
    evaluate,
    expand,
    expressible,
    importance,
    mask,
    morph_regularizer,
    once,
    report,
    scale_widths,
    shrink,
)


def test_costs_are_exact_for_the_alive_counts():
    config = ModelConfig("cnn2d", num_classes=5, input_shape=(8, 8, 1), width=(6, 4))
    model = config.build()
    x = jnp.ones((2, 8, 8, 1))
    variables = model.init(jax.random.key(0), x)
    groups = channel_groups(model, variables, x)
    alive = {"blocks_0/Conv_0": np.arange(6) < 5, "blocks_1/Conv_0": np.arange(4) < 3}
    counts = [int(alive[name].sum()) for name in groups.names]
    small = shrink(variables, alive, groups, config=config)
    assert evaluate(cost_polynomial(groups, "params"), counts) == param_count(small.config)
    # conv 3x3: 8x8 positions, 1->5 then (stride 2) 4x4 positions, 5->3, then head 3->5
    flops = 2 * (64 * 9 * 1 * 5 + 16 * 9 * 5 * 3 + 3 * 5)
    assert evaluate(cost_polynomial(groups, "flops"), counts) == flops
    assert config_cost(small.config, "flops") == flops
    latency = evaluate(cost_polynomial(groups, "latency"), counts)
    assert 0 < latency < 1


def test_a_transposed_convolution_s_flops_leave_out_the_zeros_its_stride_inserts():
    """They were counted: a stride-2 ConvTranspose cost 4 times its multiply-adds in 2-D,
    as every output position was priced by the whole window."""

    class Up(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.relu(nn.Dense(6)(x))
            h = nn.ConvTranspose(5, (3, 2), strides=(2, 2), padding=((0, 0), (0, 0)))(h)
            return nn.Dense(2)(nn.relu(h))

    x = jnp.ones((2, 4, 3, 1))
    model = Up()
    variables = model.init(jax.random.key(0), x)
    groups = channel_groups(model, variables, x)
    assert groups.names == ("ConvTranspose_0", "Dense_0")
    out_h, out_w = model.apply(variables, x).shape[1:3]

    def reads(inputs, taps, outputs):  # (input element, tap) pairs whose output exists
        return sum(0 <= 2 * i - j < outputs for i in range(inputs) for j in range(taps))

    taps = reads(4, 3, out_h) * reads(3, 2, out_w)  # 8 * 4 of the 5 * 4 outputs' 3 * 2 taps
    counts = [4, 3]  # ConvTranspose_0 keeps 4 of 5 channels, Dense_0 3 of 6
    flops = 2 * (12 * 1 * 3 + taps * 3 * 4 + out_h * out_w * 4 * 2)
    assert evaluate(cost_polynomial(groups, "flops"), counts) == flops


def test_flops_of_an_op_computed_from_params_alone_count_once_whatever_the_batch():
    """Every op's FLOPs were divided by the batch traced: a scale made from params alone,
    which runs once per call, cost a quarter of its multiply-adds traced on 4 examples."""

    class Generated(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.relu(nn.Dense(5)(x))
            code = self.param("code", nn.initializers.normal(), (3,))
            made = self.param("made", nn.initializers.normal(), (3, 5))
            return nn.Dense(2)(h * (code @ made))  # code @ made: 3 * 5 multiply-adds

    x = jnp.ones((4, 4))
    model = Generated()
    groups = channel_groups(model, model.init(jax.random.key(0), x), x)
    assert groups.names == ("Dense_0",)
    # 3 channels alive: Dense_0 4 * 3, code @ made 3 * 3, Dense_1 3 * 2
    assert evaluate(cost_polynomial(groups, "flops"), [3]) == 2 * (4 * 3 + 3 * 3 + 3 * 2)


def test_flops_of_a_loop_over_the_examples_count_one_example_whatever_the_batch():
    """Its steps got a label of their own, which the batch did not reach: a model mapping
    a function over the examples (jax.lax.map) cost 3 times its FLOPs traced on 3."""

    class PerExample(nn.Module):
        @nn.compact
        def __call__(self, x):
            k1 = self.param("k1", nn.initializers.normal(), (4, 5))
            k2 = self.param("k2", nn.initializers.normal(), (5, 2))
            return jax.lax.map(lambda e: nn.relu(e @ k1) @ k2, x)

    x = jnp.ones((3, 4))
    model = PerExample()
    groups = channel_groups(model, model.init(jax.random.key(0), x), x)
    assert groups.names == ("k1",)
    # 4 channels alive: e @ k1 4 * 4, then 4 * 2
    assert evaluate(cost_polynomial(groups, "flops"), [4]) == 2 * (4 * 4 + 4 * 2)


def test_latency_of_a_loop_over_the_examples_counts_the_runs_for_one_example():
    """Each step of the loop was a run of its contractions: traced on 3 examples, a model
    mapping a function over them (jax.lax.map) paid 3 times each one's overhead."""
    from phosjax.morph._cost import latency_table_given

    class PerExample(nn.Module):
        @nn.compact
        def __call__(self, x):
            kernel = self.param("kernel", nn.initializers.normal(), (4, 2))
            return jax.lax.map(lambda e: e @ kernel, x)

    x = jnp.ones((3, 4))
    model = PerExample()
    groups = channel_groups(model, model.init(jax.random.key(0), x), x)
    with latency_table_given({"dot_general": (1.0, 0.0)}):  # 1 s a run, FLOPs free
        assert evaluate(cost_polynomial(groups, "latency"), []) == 1.0


def test_a_config_s_latency_cost_is_priced_by_the_table_given_not_one_cached_earlier():
    """It was cached per config and cost: a run continued after another in one process
    took its budget from the other run's table, not its own stored one."""
    from phosjax.morph._cost import latency_table_given

    config = ModelConfig("mlp", 10, (40,), width=8)
    costs = []
    for overhead in (1e-6, 1e-3):
        with latency_table_given({"dot_general": (overhead, 1e-9)}):
            costs.append(config_cost(config, "latency"))
    assert costs[1] - costs[0] == pytest.approx(3 * (1e-3 - 1e-6))  # stem, block, head


def test_latency_is_overhead_plus_slope_times_flops_per_contraction(monkeypatch):
    from phosjax.morph import _cost

    # powers of two, so the sums below are exact in floating point
    table = {"dot_general": (2.0**-10, 2.0**-20), "conv_general_dilated": (2.0**-8, 2.0**-24)}
    monkeypatch.setattr(_cost, "latency_table", lambda backend=None: table)
    config = ModelConfig("cnn2d", num_classes=5, input_shape=(8, 8, 1), width=(6, 4))
    groups = _groups_of(config.build(), jnp.ones((2, 8, 8, 1)))
    poly = cost_polynomial(groups, "latency")

    def expected(c0, c1):  # two convs (3x3, 8x8 then 4x4 positions) and the dense head
        conv_oh, conv_slope = table["conv_general_dilated"]
        dot_oh, dot_slope = table["dot_general"]
        return (
            conv_oh + conv_slope * 2 * 64 * 9 * 1 * c0
            + conv_oh + conv_slope * 2 * 16 * 9 * c0 * c1
            + dot_oh + dot_slope * 2 * c1 * 5
        )  # fmt: skip

    assert evaluate(poly, [6, 4]) == expected(6, 4)
    assert evaluate(poly, [5, 3]) == expected(5, 3)
    assert evaluate(poly, [0, 0]) == 2 * 2.0**-8 + 2.0**-10  # overheads only
    assert evaluate(poly, [5, 3]) < evaluate(poly, [6, 4])
    assert evaluate(poly, [6, 3]) < evaluate(poly, [6, 4])
    assert evaluate(poly, [5, 4]) < evaluate(poly, [6, 4])
    # too few counts raised IndexError 'list index out of range'; a dict, KeyError 0
    with pytest.raises(ValueError, match=r"reads group 1, but counts has 1 entries; give one"):
        evaluate(poly, [6])
    with pytest.raises(TypeError, match=r"not a mapping .*\[counts\[name\] for name in groups"):
        evaluate(poly, dict(zip(groups.names, [6, 4], strict=True)))


def test_the_regularizer_is_morphnets_relaxation():
    model = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(3)])
    x = jnp.ones((2, 4))
    variables = model.init(jax.random.key(0), x)
    groups = channel_groups(model, variables, x)
    kernel = variables["params"]["layers_0"]["kernel"]
    norms = jnp.linalg.norm(kernel, axis=0)
    # params = 8 (bias) + 4*8 + 8*3 (kernels) + 3: each term is linear in the one group
    reg = morph_regularizer(groups, cost="params", normalize=False)
    np.testing.assert_allclose(reg(variables["params"]), (1 + 4 + 3) * norms.sum(), rtol=1e-5)
    flops = morph_regularizer(groups, cost="flops")  # 2*(4*8 + 8*3) = 112 per example
    np.testing.assert_allclose(jax.jit(flops)(variables), 14 * norms.sum() / 112, rtol=1e-5)
    grad = jax.grad(reg)(variables["params"])["layers_0"]["kernel"]
    np.testing.assert_allclose(grad, 8 * kernel / norms, rtol=1e-4)
    with pytest.raises(ValueError, match="unknown cost 'bytes'"):
        morph_regularizer(groups, cost="bytes")


def test_alive_channels_and_report_after_zeroing():
    model = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(3)])
    x = jnp.ones((2, 4))
    variables = model.init(jax.random.key(0), x)
    variables["params"]["layers_0"]["kernel"] = (
        variables["params"]["layers_0"]["kernel"].at[:, :6].set(0)
    )
    groups = channel_groups(model, variables, x)
    assert alive_channels(groups, variables)["layers_0"].tolist() == [False] * 6 + [True] * 2
    found = report(groups, variables)
    assert found["groups"] == {"layers_0": {"alive": 2, "total": 8}}
    assert found["cost"]["params"]["now"] == 2 + 4 * 2 + 2 * 3 + 3
    assert found["cost"]["flops"]["ratio"] == pytest.approx(2 / 8)


def test_the_regularizer_prices_only_the_selected_groups():
    model = nn.Sequential([nn.Dense(4), nn.relu, nn.Dense(6), nn.relu, nn.Dense(3)])
    x = jnp.ones((2, 5))
    variables = model.init(jax.random.key(0), x)
    groups = channel_groups(model, variables, x)
    value = jax.jit(lambda v, s: morph_regularizer(groups, selector=s)(v), static_argnums=1)
    parts = [value(variables, name) for name in groups.names]
    np.testing.assert_allclose(sum(parts), value(variables, "**"), rtol=1e-5)
    grads = jax.jit(jax.grad(lambda v: value(v, "layers_0")))(variables)["params"]
    assert np.abs(grads["layers_0"]["kernel"]).sum() > 0
    assert np.all(grads["layers_2"]["kernel"] == 0)
    with pytest.raises(SelectorError, match=r"matched no channel group.*'layers_0'"):
        morph_regularizer(groups, selector="stem/**")


def test_the_regularizer_of_a_model_without_channel_groups_says_it_has_none_to_price():
    """It said "Selector '**' matched no channel group: there are none.", of a selector the
    caller had not given, without why."""
    groups = _groups_of(nn.Dense(3), jnp.ones((2, 4)))
    with pytest.raises(SelectorError) as raised:
        morph_regularizer(groups)
    assert raised.value.args[0] == (
        "the model has no channel group to price: channel_groups found no hidden width it "
        "can prune (a model without hidden layers, such as logreg; kept whole: "
        "'params/kernel:1' (model output)), so the regularizer would be 0 whatever the weights"
    )


class _FiveHeads(nn.Module):
    """Five Dense heads on the input: no hidden width, five outputs kept whole."""

    @nn.compact
    def __call__(self, x):
        return [nn.Dense(2)(x) for _ in range(5)]


def test_the_regularizer_without_channel_groups_names_three_axes_kept_whole_and_counts_the_rest():
    """They were cut with ', ...', not saying how many more (the shared listing counts)."""
    groups = _groups_of(_FiveHeads(), jnp.ones((2, 3)))
    with pytest.raises(SelectorError) as raised:
        morph_regularizer(groups)
    kept = ", ".join(f"'params/Dense_{i}/kernel:1' (model output)" for i in range(3))
    assert f"; kept whole: {kept} and 2 more), so the regularizer" in raised.value.args[0]


def test_annotate_writes_the_report_into_the_blurb():
    model = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(3)])
    x = jnp.ones((2, 4))
    variables = model.init(jax.random.key(0), x)
    variables["params"]["layers_0"]["bias"] = jnp.zeros(8)
    variables["params"]["layers_0"]["kernel"] = (
        variables["params"]["layers_0"]["kernel"].at[:, :6].set(0)
    )
    found = report(channel_groups(model, variables, x), variables)
    summary = px.blurb(model, variables, x, flops=False, measure_latency=False)
    annotated = annotate(summary, found)
    assert annotated["layers_0"].notes == {"alive": "2/8"}
    assert annotated["layers_2"].notes == summary["layers_2"].notes == {}
    assert annotated.root.notes == {f"{c}_ratio": v["ratio"] for c, v in found["cost"].items()}
    assert annotated.root.notes["flops_ratio"] == pytest.approx(2 / 8)
    assert Blurb.from_json(annotated.to_json()) == annotated
    assert "alive=2/8" in annotated.table()
    heads = {"groups": {"layers_0[1]": {"alive": 1, "total": 2}}, "cost": {}}
    assert annotate(summary, heads)["layers_0"].notes == {"alive[1]": "1/2"}
    numbered = {"layers_0#0": {"alive": 1, "total": 2}, "layers_0[1]#1": {"alive": 3, "total": 4}}
    assert annotate(summary, {"groups": numbered, "cost": {}})["layers_0"].notes == {
        "alive#0": "1/2",
        "alive[1]#1": "3/4",
    }
    with pytest.raises(SelectorError, match="layers_0"):
        annotate(summary, {"groups": {"layer_0": {"alive": 1, "total": 2}}, "cost": {}})
    alive = {"layers_0": np.arange(8) < 2}  # raised a bare KeyError: 'groups'
    with pytest.raises(ValueError, match=r"^annotate: report \(\['layers_0'\]\) is no morph "):
        annotate(summary, alive)
    with pytest.raises(TypeError, match=r"^annotate: blurb is a dict; expected the Blurb of "):
        annotate(found, summary)  # swapped: raised "'dict' object has no attribute 'root'"


class _RootParam(nn.Module):
    """A first layer held by the top module itself (``self.param``)."""

    @nn.compact
    def __call__(self, x):
        h = nn.relu(x @ self.param("w", nn.initializers.normal(), (4, 8)))
        return nn.Dense(3)(h)


def test_annotate_writes_a_group_of_a_top_module_param_into_the_top_module():
    model, x = _RootParam(), jnp.ones((2, 4))
    variables = model.init(jax.random.key(0), x)
    variables["params"]["w"] = variables["params"]["w"].at[:, :6].set(0)
    found = report(channel_groups(model, variables, x), variables)
    assert found["groups"] == {"w": {"alive": 2, "total": 8}}
    summary = px.blurb(model, variables, x, flops=False, measure_latency=False)
    annotated = annotate(summary, found)
    assert annotated.root.notes["alive"] == "2/8"
    assert annotated["Dense_0"].notes == {}
    with pytest.raises(SelectorError, match="Dense_0"):
        annotate(summary, {"groups": {"v": {"alive": 1, "total": 2}}, "cost": {}})


def test_expand_finds_the_largest_multiplier_within_the_budget():
    config = ModelConfig("cnn1d", num_classes=10, input_shape=(40,), depth=1, width=(12, 20, 9))
    budget = config_cost(config.replace(width=(40, 64, 32)), "flops")
    found = expand(config, budget)
    assert all(w % 8 == 0 and w >= 8 for w in found.widths)
    assert config_cost(found, "flops") <= budget
    bigger = [
        m for m in np.linspace(1, 6, 200) if config_cost(scale_widths(config, m), "flops") <= budget
    ]
    assert config_cost(found, "flops") == max(
        config_cost(scale_widths(config, m), "flops") for m in bigger
    )
    with pytest.raises(ValueError, match="no width multiplier fits"):
        expand(config, 10.0)


def test_once_shrinks_the_dead_channels_and_expands_back():
    config = ModelConfig("cnn2d", num_classes=5, input_shape=(8, 8, 1), width=(16, 16))
    variables = config.build().init(jax.random.key(0), jnp.ones((1, 8, 8, 1)))
    params = variables["params"]
    params["blocks_0"]["Conv_0"]["kernel"] = (
        params["blocks_0"]["Conv_0"]["kernel"].at[..., 4:].set(0)
    )
    morphed = once(config, variables, cost="flops")
    assert morphed.shrunk.config.widths == (4, 16)
    assert config_cost(morphed.config, "flops") <= config_cost(config, "flops")
    assert morphed.config.widths[0] < morphed.config.widths[1]


def _groups_of(model, x):
    """`channel_groups` of ``model`` initialised (key 0) and called on ``x``."""
    return channel_groups(model, model.init(jax.random.key(0), x), x)


def _slopes(fn, tree, key, eps=1e-2):
    """``fn``'s gradient along a random direction, and its central finite difference."""
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    direction = jax.tree.unflatten(
        treedef, [jax.random.normal(k, leaf.shape) for k, leaf in zip(keys, leaves, strict=True)]
    )
    moved = [jax.tree.map(lambda p, d, s=s: p + s * eps * d, tree, direction) for s in (1, -1)]
    finite = (fn(moved[0]) - fn(moved[1])) / (2 * eps)
    analytic = sum(
        jnp.vdot(g, d)
        for g, d in zip(
            jax.tree.leaves(jax.grad(fn)(tree)), jax.tree.leaves(direction), strict=True
        )
    )
    return analytic, finite


def _resnet_with_a_dead_norm_channel():
    config = ModelConfig("resnet", 10, (40,))
    model = config.build()
    x = jax.random.normal(jax.random.key(1), (8, 40))
    variables = model.init(jax.random.key(0), x)
    norm = variables["params"]["blocks_0"]["norm_1"]
    norm["scale"], norm["bias"] = norm["scale"].at[0].set(0.0), norm["bias"].at[0].set(0.0)
    return config, model, x, variables


def test_auto_adds_each_producers_own_importance_in_a_mixed_group():
    # blocks_0/conv_1 is written by stem/Conv_0 (no norm) and blocks_0/norm_1 (a norm)
    config, model, x, variables = _resnet_with_a_dead_norm_channel()
    groups = channel_groups(model, variables, x)
    index = groups.names.index("blocks_0/conv_1")
    stem = {o.path: o.norms for o in groups.groups[index].sources("out")}
    assert stem == {
        "params/blocks_0/conv_1/kernel": ("params/blocks_0/norm_1/scale",),
        "params/stem/Conv_0/kernel": (),
    }
    p = variables["params"]
    lasso = jnp.sqrt(
        jnp.square(p["stem"]["Conv_0"]["kernel"]).sum((0, 1)) + p["stem"]["Conv_0"]["bias"] ** 2
    )
    expected = jnp.abs(p["blocks_0"]["norm_1"]["scale"]) + lasso
    np.testing.assert_allclose(importance(groups, variables)[index], expected, rtol=1e-5)
    alive = alive_channels(groups, variables)
    assert alive["blocks_0/conv_1"][0]  # the stem still writes channel 0
    np.testing.assert_array_equal(
        model.apply(mask(variables, alive, groups), x), model.apply(variables, x)
    )
    scores = {
        g.name: np.asarray(s)
        for g, s in zip(groups.groups, importance(groups, variables), strict=True)
    }
    dead = expressible(config, groups, {**alive, "blocks_0/conv_1": np.arange(16) > 0}, scores)
    small = shrink(variables, dead, groups, config=config)
    np.testing.assert_allclose(
        small.config.build().apply(small.variables, x),
        model.apply(mask(variables, dead, groups), x),
        atol=1e-5,
    )
    penalty = morph_regularizer(groups, cost="flops")
    assert jnp.abs(jax.grad(penalty)(p)["stem"]["Conv_0"]["kernel"]).sum() > 0

    def of_stem(stem):  # |scale| has a kink at the zeroed gamma: vary the stem only
        return penalty({**p, "stem": stem})

    np.testing.assert_allclose(*_slopes(of_stem, p["stem"], jax.random.key(2)), rtol=2e-2)


def _mlp_with_bias_only_channels(bias):
    config = ModelConfig("mlp", 10, (40,), depth=1, width=16)
    model = config.build()
    x = jax.random.normal(jax.random.key(1), (8, 40))
    variables = model.init(jax.random.key(0), x)
    for layer in ("stem", "blocks_0"):  # tied by the residual add
        dense = variables["params"][layer]["Dense_0"]
        dense["kernel"] = dense["kernel"].at[:, 8:].set(0.0)
        dense["bias"] = dense["bias"].at[8:].set(bias)
    return config, model, x, variables


@pytest.mark.parametrize("bias, width", [(0.5, 16), (0.0, 8)])
def test_group_lasso_counts_the_bias_so_shrinking_keeps_the_outputs(bias, width):
    config, model, x, variables = _mlp_with_bias_only_channels(bias)
    morphed = once(config, variables, cost="params")
    assert morphed.shrunk.config.width == (width,)
    shrunk = morphed.shrunk.config.build().apply(morphed.shrunk.variables, x)
    np.testing.assert_allclose(shrunk, model.apply(variables, x), atol=1e-5)
    groups = channel_groups(model, variables, x)
    (scores,) = importance(groups, variables, "group_lasso")
    np.testing.assert_allclose(scores[8:], 2 * abs(bias), atol=1e-5)


def test_the_regularizer_gradient_includes_the_bias_and_matches_finite_differences():
    _, model, x, variables = _mlp_with_bias_only_channels(0.5)
    params = variables["params"]
    penalty = morph_regularizer(channel_groups(model, variables, x), cost="params")
    grad = jax.grad(penalty)(params)
    assert np.all(np.asarray(grad["stem"]["Dense_0"]["bias"][8:]) > 0)
    np.testing.assert_allclose(*_slopes(penalty, params, jax.random.key(3)), rtol=2e-2)


def test_expand_rounds_widths_divided_by_heads_to_their_lcm():
    config = ModelConfig(
        "transformer", 10, (40,), width=64,
        options={"num_heads": 16, "patch_size": 4, "mlp_features": 64},
    )  # fmt: skip
    narrow = scale_widths(config, 0.0)
    assert narrow.width == (16,) and dict(narrow.options)["mlp_features"] == 8
    wide = expand(config, config_cost(config))
    assert wide.width[0] % 16 == 0 and config_cost(wide) <= config_cost(config)
    x = jnp.ones((2, 40))
    variables = jax.jit(config.build().init)(jax.random.key(0), x)  # op by op: 3x slower
    assert once(config, variables).config.width[0] % 16 == 0


def test_scale_widths_rounds_a_tie_up_to_the_multiple():
    config = ModelConfig("mlp", 10, (40,), depth=1, width=(20, 28, 19, 21))
    assert scale_widths(config, 1.0).width == (24, 32, 16, 24)
    assert scale_widths(config.replace(width=(12, 4)), 1.0, multiple=8).width == (16, 8)


@pytest.mark.parametrize("multiplier", [math.nan, math.inf, -0.5, "2", True, None])
def test_scale_widths_refuses_a_multiplier_that_is_no_finite_number_at_least_zero(multiplier):
    # NaN and infinity raised numpy's "cannot convert float NaN to integer" (an
    # OverflowError for infinity); a negative one gave the narrowest config silently
    with pytest.raises(
        ValueError,
        match=rf"^multiplier={re.escape(repr(multiplier))}: every width is multiplied by it, "
        r"so expected a finite number >= 0 \(0 gives the narrowest config, every width 8\)$",
    ):
        scale_widths(ModelConfig("mlp", 10, (40,), width=16), multiplier)


def test_a_config_that_does_not_build_does_not_fit(monkeypatch):
    from phosjax.morph import _expand

    def failing(config, cost="flops"):
        raise ValueError("Self-attention input width 8 must be divisible by num_heads=16.")

    monkeypatch.setattr(_expand, "config_cost", failing)
    with pytest.raises(ValueError, match=r"no width multiplier fits.*fails to build.*num_heads"):
        expand(ModelConfig("mlp", 10, (40,), width=16), 1e9)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"cost": "flop"}, r"^unknown cost 'flop'; expected one of \('params', 'flops'"),
        ({"multiple": 2.5}, r"^multiple=2.5: widths are rounded to it, so expected an int >= 1"),
    ],
)
def test_expand_names_a_bad_cost_or_multiple_not_a_config_that_fails_to_build(arguments, message):
    with pytest.raises(ValueError, match=message):
        expand(ModelConfig("mlp", 10, (40,), width=16), 1e9, **arguments)


def test_an_unknown_source_fails_when_the_regularizer_is_built():
    groups = _groups_of(nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(3)]), jnp.ones((2, 4)))
    with pytest.raises(ValueError, match=r"unknown importance source 'gama'.*'gamma'"):
        morph_regularizer(groups, source="gama")


def test_a_normalize_that_is_no_bool_fails_when_the_regularizer_is_built():
    """normalize="false" (read from a config) was true: the penalty was normalized."""
    groups = _groups_of(nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(3)]), jnp.ones((2, 4)))
    with pytest.raises(TypeError, match=r"^morph_regularizer: normalize must be True or False, "):
        morph_regularizer(groups, normalize="false")
    morph_regularizer(groups, normalize=np.bool_(False))


def test_gamma_without_a_normalization_fails_when_the_regularizer_is_built():
    groups = _groups_of(nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(3)]), jnp.ones((2, 4)))
    match = r"source 'gamma' .* group\(s\) \['layers_0'\] have none; use source 'auto'"
    with pytest.raises(ValueError, match=match):
        morph_regularizer(groups, source="gamma")


@pytest.mark.parametrize("traced", ["variables", "params"])
def test_the_regularizer_and_alive_channels_take_variables_or_params(traced):
    model = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(3)])
    x = jnp.ones((2, 4))
    variables = model.init(jax.random.key(0), x)
    layer = variables["params"]["layers_0"]
    layer["kernel"], layer["bias"] = layer["kernel"].at[:, :6].set(0), layer["bias"].at[:6].set(0)
    if traced == "variables":
        groups = channel_groups(model, variables, x)
    else:
        apply = lambda p, x: model.apply({"params": p}, x)
        groups = channel_groups(apply, variables["params"], x)
    expected = morph_regularizer(channel_groups(model, variables, x))(variables)
    for tree in (variables, variables["params"]):
        reg = morph_regularizer(groups)
        np.testing.assert_allclose(jax.jit(reg)(tree), expected, rtol=1e-6)
        assert jax.tree.map(jnp.shape, jax.grad(reg)(tree)) == jax.tree.map(jnp.shape, tree)
        alive = alive_channels(groups, tree)["layers_0"]
        assert alive.tolist() == [False] * 6 + [True] * 2
    missing = {"params": {"layers_2": variables["params"]["layers_2"]}}
    for tree, top in ((missing, "params"), (missing["params"], "layers_2")):
        match = rf"no leaf '(params/)?layers_0/(kernel|bias)'.*top-level keys are \['{top}'\]"
        with pytest.raises(KeyError, match=match):
            morph_regularizer(groups)(tree)
        with pytest.raises(KeyError, match=match):
            alive_channels(groups, tree)


def test_the_relaxation_prices_a_group_by_the_alive_counts_of_its_neighbours():
    # flops per example: 2 * (5 * g0 + g0 * g1 + g1 * 3), g0 and g1 the two hidden widths;
    # the relaxation replaces one factor at a time by the summed importances (group lasso)
    model = nn.Sequential([nn.Dense(4), nn.relu, nn.Dense(6), nn.relu, nn.Dense(3)])
    x = jnp.ones((2, 5))
    variables = model.init(jax.random.key(0), x)
    params = variables["params"]
    params["layers_0"]["kernel"] = params["layers_0"]["kernel"].at[:, :1].set(0)  # 3 alive
    params["layers_2"]["kernel"] = params["layers_2"]["kernel"].at[:, :2].set(0)  # 4 alive
    params["layers_0"]["bias"] = jnp.linspace(0.1, 0.4, 4).at[0].set(0)
    groups = channel_groups(model, variables, x)
    assert groups.names == ("layers_0", "layers_2")

    def lasso(layer):
        p = {k: np.asarray(v, np.float64) for k, v in params[layer].items()}
        return np.sqrt((p["kernel"] ** 2).sum(0) + p["bias"] ** 2)

    s0, s1 = lasso("layers_0").sum(), lasso("layers_2").sum()
    n0, n1 = 3, 4
    expected = 2 * (5 * s0 + (s0 * n1 + n0 * s1) + 3 * s1)
    reg = morph_regularizer(groups, cost="flops", normalize=False)
    np.testing.assert_allclose(reg(variables), expected, rtol=1e-5)
    full = 2 * (5 * 4 + 4 * 6 + 6 * 3)
    normalized = morph_regularizer(groups, cost="flops")
    np.testing.assert_allclose(normalized(variables), expected / full, rtol=1e-5)
    only_first = morph_regularizer(groups, cost="flops", normalize=False, selector="layers_0")
    np.testing.assert_allclose(only_first(variables), 2 * (5 * s0 + s0 * n1), rtol=1e-5)
    # the gradient to a live kernel column of layers_0: d s0 / d k times 2 * (5 + n1)
    grad = jax.grad(reg)(variables)["params"]["layers_0"]["kernel"]
    column = np.asarray(params["layers_0"]["kernel"][:, 2], np.float64)
    np.testing.assert_allclose(grad[:, 2], 2 * (5 + n1) * column / lasso("layers_0")[2], rtol=1e-4)


@pytest.mark.parametrize("threshold", [math.nan, "0.05", None, True, jnp.ones(2), -1.0])
def test_a_threshold_that_is_no_number_is_refused_naming_it(threshold):
    # against NaN no channel was above it: each group silently kept its best channel only;
    # below 0 (importances are >= 0) every channel was silently kept
    config = ModelConfig("mlp", 3, (5,), width=4)
    x = jnp.ones((2, 5))
    variables = config.build().init(jax.random.key(0), x)
    groups = channel_groups(config.build(), variables, x)
    message = (
        rf"^threshold={re.escape(repr(threshold))}: a channel whose importance is at or "
        r"below it is dead, so expected a number >= 0, e.g. 1e-2$"
    )
    for call in (alive_channels, report, morph_regularizer):
        with pytest.raises(ValueError, match=message):
            if call is morph_regularizer:
                call(groups, threshold=threshold)
            else:
                call(groups, variables, threshold=threshold)
    with pytest.raises(ValueError, match=message):
        once(config, variables, threshold=threshold)
    for number in (np.float32(0.5), jnp.asarray(0.5), 0):  # numpy, jax and int numbers pass
        got = alive_channels(groups, variables, threshold=number)
        expected = alive_channels(groups, variables, threshold=float(number))
        assert {k: v.tolist() for k, v in got.items()} == {
            k: v.tolist() for k, v in expected.items()
        }


def test_alive_channels_keep_the_most_important_channel_of_an_all_dead_group():
    model = nn.Sequential([nn.Dense(4), nn.relu, nn.Dense(3)])
    x = jnp.ones((2, 5))
    variables = model.init(jax.random.key(0), x)
    kernel = jnp.zeros((5, 4)).at[0, 2].set(1e-3)  # every channel below the threshold
    variables["params"]["layers_0"]["kernel"] = kernel
    groups = channel_groups(model, variables, x)
    alive = alive_channels(groups, variables)
    assert alive["layers_0"].tolist() == [False, False, True, False]
    assert report(groups, variables)["groups"]["layers_0"] == {"alive": 1, "total": 4}


def test_a_negative_gamma_counts_by_its_magnitude():
    # GammaL1: a channel whose normalization scale is negative is as important as its |scale|
    _, model, x, variables = _resnet_with_a_dead_norm_channel()
    norm = variables["params"]["blocks_0"]["norm_1"]
    norm["scale"] = norm["scale"] * jnp.where(jnp.arange(norm["scale"].shape[0]) % 2, -2.0, 0.5)
    groups = channel_groups(model, variables, x)
    index = groups.names.index("blocks_0/conv_1")
    p = variables["params"]
    lasso = jnp.sqrt(
        jnp.square(p["stem"]["Conv_0"]["kernel"]).sum((0, 1)) + p["stem"]["Conv_0"]["bias"] ** 2
    )
    assert (norm["scale"] < 0).any()
    expected = jnp.abs(norm["scale"]) + lasso
    np.testing.assert_allclose(importance(groups, variables)[index], expected, rtol=1e-5)


def test_the_group_lasso_of_a_complex_kernel_is_its_column_norms():
    """A complex kernel's entries were squared without their magnitude, so importance
    was complex: columns of norms 1, 1, 2 had [-1e-06+1j, 1, -1e-06+2j]. It is each
    column's norm, with its bias, in float32."""
    w = np.array([[1j, 1, 0], [0, 0, 2j]], np.complex64) + np.array([[0, 0, 0], [3 - 4j, 0, 0]])
    b = np.array([0, 1j, 1 + 1j], np.complex64)
    params = {"w": jnp.asarray(w), "b": jnp.asarray(b), "v": jnp.ones((3, 2), jnp.complex64)}
    apply = lambda p, x: jnp.tanh(x @ p["w"] + p["b"]) @ p["v"]
    groups = channel_groups(apply, params, jnp.ones((4, 2), jnp.complex64))
    (scores,) = importance(groups, params)
    assert scores.dtype == jnp.float32
    np.testing.assert_allclose(scores, np.linalg.norm(np.vstack([w, b]), axis=0), rtol=1e-5)


def test_gamma_adds_the_scales_of_every_normalization_of_a_group():
    # blocks_1/conv_1's channels are scaled by norm_1 and, on the skip, by proj_norm
    config = ModelConfig("resnet", 10, (40,))
    model = config.build()
    x = jax.random.normal(jax.random.key(1), (8, 40))
    variables = model.init(jax.random.key(0), x)
    block = variables["params"]["blocks_1"]
    block["norm_1"]["scale"] = jnp.linspace(-1.0, 2.0, 32)
    block["proj_norm"]["scale"] = jnp.linspace(0.5, -0.5, 32) ** 2
    groups = channel_groups(model, variables, x)
    index = groups.names.index("blocks_1/conv_1")
    scales = {m.path for m in groups.groups[index].sources("scale")}
    assert scales == {"params/blocks_1/norm_1/scale", "params/blocks_1/proj_norm/scale"}
    expected = jnp.abs(block["norm_1"]["scale"]) + block["proj_norm"]["scale"]
    np.testing.assert_allclose(importance(groups, variables, "gamma")[index], expected, rtol=1e-6)


@pytest.mark.parametrize("budget", [math.nan, math.inf, "1e5", True, None, 0, -5.0])
def test_expand_refuses_a_budget_that_is_not_a_finite_positive_number(budget):
    """A budget <= 0 said 'no width multiplier fits the budget -5', not asking for one > 0."""
    with pytest.raises(ValueError, match=r"^budget=.*: expected a finite positive flops cost"):
        expand(ModelConfig("mlp", 10, (40,), width=16), budget)


def test_expand_of_a_config_without_widths_over_budget_says_it_has_none():
    """It blamed 'the narrowest config (every width 8)' of a logreg, which has no width."""
    with pytest.raises(
        ValueError,
        match=r"^no width multiplier fits the params budget 1: the config \('logreg' has no "
        r"widths to narrow\) costs 410$",
    ):
        expand(ModelConfig("logreg", 10, (40,)), 1.0, "params")


@pytest.mark.parametrize("kind", [np.float32, jnp.float32, int])
def test_expand_takes_a_numpy_or_jax_scalar_budget(kind):
    config = ModelConfig("mlp", 10, (40,), width=16)
    assert expand(config, kind(config_cost(config, "params")), "params").width == (16,)


def test_a_config_without_widths_is_its_own_expansion_and_once_keeps_it():
    # it was "the budget 410 is beyond the widest config searched (every width times
    # 4096, widths (), costs 410)": no multiplier changes a config without widths
    config = ModelConfig("logreg", 10, (40,))
    assert expand(config, config_cost(config, "params"), "params") == config.resolved()
    with pytest.raises(ValueError, match=r"^no width multiplier fits the params budget 409: "):
        expand(config, 409, "params")
    variables = config.build().init(jax.random.key(0), jnp.zeros((1, 40)))
    morphed = once(config, variables, cost="params")
    assert (morphed.shrunk.widths, morphed.config) == ({}, config.resolved())


def test_expand_refuses_a_budget_beyond_the_widest_config_it_searches():
    # every width times 2**12 costs ~1e11 FLOPs: a larger budget would be met silently
    # by that config, far below the budget, rather than by the largest one that fits
    with pytest.raises(ValueError, match=r"budget 1e\+30 is beyond the widest config searched"):
        expand(ModelConfig("mlp", 10, (40,), width=16), 1e30)


def test_a_masked_channel_is_dead_at_threshold_zero_with_the_group_lasso_as_with_gamma():
    model = nn.Sequential([nn.Dense(4), nn.relu, nn.Dense(2)])
    x = jnp.ones((1, 3))
    variables = model.init(jax.random.key(0), x)
    groups = channel_groups(model, variables, x)
    masked = mask(variables, {"layers_0": np.array([True, False, True, True])}, groups)
    assert float(importance(groups, masked)[0][1]) == 0.0  # not sqrt(epsilon)
    assert alive_channels(groups, masked, threshold=0.0)["layers_0"].tolist() == [
        True,
        False,
        True,
        True,
    ]
    reg = morph_regularizer(groups, "params", threshold=0.0, normalize=False)
    assert np.isfinite(np.asarray(jax.grad(reg)(masked)["params"]["layers_0"]["kernel"])).all()


def test_an_all_dead_group_still_counts_the_channel_it_keeps_in_its_neighbours_prices():
    # alive_channels keeps one channel of an all-dead group, so the shrunk model's cost
    # (report) has 1 there, not 0: the neighbour's price must count it too
    model = nn.Sequential([nn.Dense(4), nn.relu, nn.Dense(6), nn.relu, nn.Dense(3)])
    x = jnp.ones((2, 5))
    variables = model.init(jax.random.key(0), x)
    params = variables["params"]
    params["layers_0"]["kernel"] = jnp.zeros((5, 4)).at[0, 2].set(1e-3)  # all below 1e-2
    params["layers_0"]["bias"] = jnp.zeros(4)
    groups = channel_groups(model, variables, x)
    assert report(groups, variables)["groups"]["layers_0"]["alive"] == 1
    s0, s1 = (float(s.sum()) for s in importance(groups, variables))
    n0, n1 = 1, 6
    reg = morph_regularizer(groups, cost="flops", normalize=False)
    expected = 2 * (5 * s0 + (s0 * n1 + n0 * s1) + 3 * s1)
    np.testing.assert_allclose(reg(variables), expected, rtol=1e-5)


def test_flops_are_per_example_when_the_first_input_is_a_scalar():
    class Scaled(nn.Module):  # a time step or temperature first, then the batch
        @nn.compact
        def __call__(self, t, x):
            return nn.Dense(2)(nn.relu(nn.Dense(4)(x)) * t)

    model, t, x = Scaled(), jnp.float32(0.5), jnp.ones((3, 5))
    groups = channel_groups(model, model.init(jax.random.key(0), t, x), t, x)
    assert evaluate(cost_polynomial(groups, "flops"), [4]) == 2 * (5 * 4 + 4 * 2)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_the_gradient_of_a_zeroed_channel_is_finite_in_half_precision(dtype):
    # 1e-12 under the square root is zero in float16: the gradient was 0 * inf = NaN
    layer = functools.partial(nn.Dense, dtype=dtype, param_dtype=dtype)
    model = nn.Sequential([layer(4), nn.relu, layer(2)])
    x = jnp.ones((1, 3), dtype)
    variables = model.init(jax.random.key(0), x)
    groups = channel_groups(model, variables, x)
    masked = mask(variables, {"layers_0": np.array([True, False, True, True])}, groups)
    grad = jax.grad(morph_regularizer(groups, "params"))(masked)["params"]["layers_0"]
    assert np.isfinite(np.asarray(grad["kernel"], np.float32)).all()
    assert float(importance(groups, masked)[0][1]) == 0.0


def test_bfloat16_params_are_priced_as_their_float32_values_summed_in_float32():
    # summed in bfloat16, 512 weights per channel were off by ~1e-3 of the total
    model = nn.Sequential([nn.Dense(64, param_dtype=jnp.bfloat16), nn.relu, nn.Dense(2)])
    x = jnp.ones((1, 512))
    variables = model.init(jax.random.key(0), x)
    groups = channel_groups(model, variables, x)
    reg = morph_regularizer(groups, "params")
    wide = jax.tree.map(lambda v: v.astype(jnp.float32), variables)
    np.testing.assert_allclose(reg(variables), reg(wide), rtol=1e-6)


def test_the_shift_of_a_batchnorm_without_scale_keeps_a_channel_with_a_zero_kernel_alive():
    # the channel's output is the shift, a constant the next layer reads: pruning it
    # would change the outputs, so its importance counts the shift (its own group lasso)
    class Model(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.Dense(4, use_bias=False)(x)
            h = nn.BatchNorm(use_running_average=True, use_scale=False)(h)
            return nn.Dense(2)(nn.relu(h))

    model, x = Model(), jnp.ones((2, 3))
    variables = model.init(jax.random.key(0), x)
    params = variables["params"]
    params["Dense_0"]["kernel"] = params["Dense_0"]["kernel"].at[:, 0].set(0.0)
    params["BatchNorm_0"]["bias"] = jnp.array([2.0, 0.0, 0.0, 0.0])
    groups = channel_groups(model, variables, x)
    for source in ("auto", "group_lasso"):
        for tree in (variables, params):  # the shift is a param, the mean is not
            np.testing.assert_allclose(importance(groups, tree, source)[0][0], 2.0, rtol=1e-6)
        alive = alive_channels(groups, variables, source=source)
        assert alive["Dense_0"].all()
        masked = mask(variables, alive, groups)
        np.testing.assert_array_equal(model.apply(masked, x), model.apply(variables, x))
    params["BatchNorm_0"]["bias"] = jnp.zeros(4)  # now the channel is dead
    assert alive_channels(groups, variables)["Dense_0"].tolist() == [False, True, True, True]


def test_a_group_named_with_its_axis_is_selected_by_its_name():
    # a kernel producing groups on two axes names them `layers_0[1]`, `layers_0[2]`; the
    # brackets read as a character class, so the name matched nothing, not even itself
    model = nn.Sequential([nn.DenseGeneral((2, 3)), nn.relu, nn.DenseGeneral(4, axis=(-2, -1))])
    x = jnp.ones((2, 5))
    variables = model.init(jax.random.key(0), x)
    groups = channel_groups(model, variables, x)
    assert groups.names == ("layers_0[1]", "layers_0[2]")
    every = morph_regularizer(groups, "params", normalize=False)
    parts = [morph_regularizer(groups, "params", normalize=False, selector=n) for n in groups.names]
    np.testing.assert_allclose(sum(p(variables) for p in parts), every(variables), rtol=1e-6)


@pytest.mark.parametrize("bad", [jnp.nan, jnp.inf])
def test_alive_channels_of_variables_holding_nan_or_infinity_is_an_error_naming_the_leaf(bad):
    model = nn.Sequential([nn.Dense(4), nn.relu, nn.Dense(3)])
    x = jnp.ones((2, 5))
    variables = model.init(jax.random.key(0), x)
    groups = channel_groups(model, variables, x)
    kernel = variables["params"]["layers_0"]["kernel"]
    variables["params"]["layers_0"]["kernel"] = kernel.at[1, 2].set(bad)
    message = (
        f"alive_channels: channel group 'layers_0' has the importance {float(bad)} at "
        "channel(s) 2, as ['params/layers_0/kernel'] hold NaN or infinity, so whether a "
        "channel is alive is unknown; did the training diverge?"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        alive_channels(groups, variables)
    # named by the function called, not by the alive_channels it calls
    reported = message.replace("alive_channels", "report", 1)
    with pytest.raises(ValueError, match=f"^{re.escape(reported)}"):
        report(groups, variables)
    config = ModelConfig("mlp", 3, (5,), width=4)
    grown = config.build().init(jax.random.key(0), x)
    stem = grown["params"]["stem"]["Dense_0"]
    stem["kernel"] = stem["kernel"].at[1, 2].set(bad)
    in_once = (
        f"once: channel group 'blocks_0/Dense_0' has the importance {float(bad)} at "
        "channel(s) 2, as ['params/stem/Dense_0/kernel'] hold NaN or infinity"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(in_once)}"):
        once(config, grown)
    # finite kernels whose squares overflow float32: infinitely important, so alive
    variables["params"]["layers_0"]["kernel"] = kernel.at[:, 2].set(3e38)
    assert alive_channels(groups, variables)["layers_0"].tolist() == [True] * 4
