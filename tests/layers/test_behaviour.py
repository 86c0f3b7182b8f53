"""Per-layer behaviour: what each layer is for, checked against exact or numpy values."""

import math
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.experimental import checkify

import phosjax.core as px
from phosjax import layers as L
from phosjax.layers._common import Dropout, train_args


def test_choice_huge_temperature_gives_uniform_weights(key):
    layer = L.Choice([L.GLU(), L.SwiGLU(), nn.Dense(3)])
    x = jnp.ones((2, 3))
    variables = layer.init(key, x)
    variables["params"]["gate_logits"] = jnp.array([3.0, -2.0, 1.0])
    variables = px.with_knobs(layer, variables, x)
    _, found = px.probe(layer, px.set_knobs(variables, {"T": 1e6}), x, "weights")
    np.testing.assert_allclose(found["weights"], np.full(3, 1 / 3), atol=1e-5)


def test_choice_forced_logits_select_one_branch_exactly(key):
    layer = L.Choice([L.GLU(), L.SwiGLU()])
    x = jax.random.normal(key, (4, 3))
    variables = layer.init(key, x)
    variables["params"]["gate_logits"] = jnp.array([-1e4, 0.0])
    out, state = layer.apply(variables, x, mutable=[px.PATH_WEIGHTS])
    branch = L.SwiGLU().apply({"params": variables["params"]["branches_1"]}, x)
    np.testing.assert_array_equal(out, branch)
    assert float(state[px.PATH_WEIGHTS]["branch_0"][0]) == 0.0


def test_each_choice_branch_scales_its_aux_losses_by_its_own_weight(key):
    layer = L.Choice([L.ActivityL1(), L.ActivityL1(), L.ActivityL1()])
    x = jax.random.normal(key, (4, 3))
    variables = layer.init(key, x)
    variables["params"]["gate_logits"] = jnp.log(jnp.array([0.2, 0.3, 0.5]))
    _, state = layer.apply(variables, x, mutable=[px.AUX_LOSS, px.PATH_WEIGHTS])
    unscaled = 1e-3 * jnp.abs(x).mean()  # ActivityL1 at its default strength
    for i, weight in enumerate([0.2, 0.3, 0.5]):
        assert float(state[px.PATH_WEIGHTS][f"branch_{i}"][0]) == pytest.approx(weight)
        aux = state[px.AUX_LOSS][f"branches_{i}"]["activity_l1"][0]
        np.testing.assert_allclose(aux, weight * unscaled, rtol=1e-6)


@pytest.mark.parametrize("per_example", [False, True])
def test_a_choice_of_bfloat16_branches_returning_their_input_returns_it_exactly(per_example, key):
    """softmax([0.3, -1.1, 0.45]), each weight rounded to bfloat16 and the terms summed in
    bfloat16, changed 722 of these 4,001 inputs: the mix is taken in float32, cast once."""
    x = jnp.asarray(np.linspace(-200, 200, 4001), jnp.bfloat16).reshape(1, -1)
    layer = L.Choice([lambda h: h] * 3, per_example=per_example)
    params = layer.init(key, x)["params"]
    logits = jnp.array([0.3, -1.1, 0.45])
    if per_example:  # the gate's kernel starts at zeros: its bias is the logits
        params["gate"]["bias"] = logits
    else:
        params["gate_logits"] = logits
    out = layer.apply({"params": params}, x)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(out, np.float32), np.asarray(x, np.float32))


def test_choice_branches_may_be_plain_flax_sequentials(key):
    # nn.Sequential takes **kwargs but its first layer does not take `train`: it must not get it.
    first, second = nn.Sequential([nn.Dense(4), nn.relu]), nn.Dense(4)
    layer = L.Choice([first, second])
    x = jax.random.normal(key, (2, 3))
    variables = layer.init(key, x, train=True)
    p = variables["params"]
    w = jax.nn.softmax(p["gate_logits"])
    mixed = w[0] * first.apply({"params": p["branches_0"]}, x)
    mixed += w[1] * second.apply({"params": p["branches_1"]}, x)
    np.testing.assert_allclose(layer.apply(variables, x, train=True), mixed, rtol=1e-6)


WRAPPERS = {
    "sequence": lambda layer: L.Sequence([layer]),
    "choice": lambda layer: L.Choice([layer]),
}
by_wrapper = pytest.mark.parametrize("wrap", WRAPPERS.values(), ids=WRAPPERS.keys())


@by_wrapper
def test_flax_dropout_drops_exactly_in_training(wrap, key):
    layer = wrap(nn.Dropout(0.5))
    x = jnp.ones((4, 50))
    variables = layer.init(key, x)
    rngs = {"dropout": jax.random.key(1)}
    np.testing.assert_array_equal(layer.apply(variables, x, rngs=rngs), x)
    out = np.asarray(layer.apply(variables, x, train=True, rngs=rngs))
    assert set(np.unique(out)) == {0.0, 2.0}


@by_wrapper
def test_flax_batch_norm_updates_its_statistics_exactly_in_training(wrap, key):
    layer = wrap(nn.BatchNorm(momentum=0.5))
    x = 3.0 + jax.random.normal(key, (8, 4))
    variables = layer.init(key, x)
    for train in (False, True):
        out, state = layer.apply(variables, x, train=train, mutable=["batch_stats"])
        before, after = variables["batch_stats"], state["batch_stats"]
        changed = jax.tree.map(lambda a, b: bool((a != b).any()), after, before)
        assert all(leaf == train for leaf in jax.tree.leaves(changed)), train
        normalized = np.asarray(out).mean(0)  # batch statistics in training, else running ones
        assert np.allclose(normalized, 0.0, atol=1e-5) == train


@by_wrapper
def test_flax_batch_norm_keeps_its_statistics_when_trained_on_an_empty_batch(wrap, key):
    """Its running mean and variance, averaged over no example, turned NaN for good."""
    layer = wrap(nn.BatchNorm(momentum=0.5))
    variables = layer.init(key, jnp.ones((2, 4)))
    out, state = layer.apply(variables, jnp.ones((0, 4)), train=True, mutable=["batch_stats"])
    assert out.shape == (0, 4)
    kept, before = state["batch_stats"], variables["batch_stats"]
    jax.tree.map(np.testing.assert_array_equal, kept, before)


def test_a_flag_set_by_the_constructor_is_left_alone(key):
    layer = L.Sequence([nn.Dropout(0.5, deterministic=True)])
    x = jnp.ones((2, 8))
    np.testing.assert_array_equal(layer.apply({}, x, train=True), x)


class _TwoFlags(nn.Module):
    @nn.compact
    def __call__(self, x, train=False, deterministic=None):
        return x


class _Masked(nn.Module):
    @nn.compact
    def __call__(self, x, mask):
        return x


class _Training(nn.Module):
    @nn.compact
    def __call__(self, x, training=False):
        return x + 1 if training else x


class _IsTraining(nn.Module):
    @nn.compact
    def __call__(self, x, is_training=False, scale=1.0):
        return x + 1 if is_training else x


@pytest.mark.parametrize("block", [_Training(), _IsTraining()])
def test_a_flag_named_training_gets_the_train_flag(block):
    layer, x = L.Sequence([block]), jnp.zeros((1, 2))
    assert [float(layer.apply({}, x, train=t)[0, 0]) for t in (True, False)] == [1.0, 0.0]


@pytest.mark.parametrize(
    ("block", "match"),
    [
        (_TwoFlags(), r"_TwoFlags.__call__ takes both 'train' and 'deterministic'"),
        (_Masked(), r"_Masked.__call__ requires the parameter 'mask'"),
    ],
)
def test_a_block_that_takes_the_train_flag_ambiguously_is_an_error(block, match):
    with pytest.raises(TypeError, match=match):
        L.Sequence([block]).init(jax.random.key(0), jnp.ones((1, 2)))


@pytest.mark.parametrize(
    "layer",
    [L.DropPath(0.5), L.Sequence([nn.Dropout(0.5)]), L.TransformerBlock(1, dropout_rate=0.5)],
    ids=lambda layer: type(layer).__name__,
)
def test_a_train_flag_that_is_no_bool_is_an_error(layer, key):
    """train="false" trained (dropping), without a word."""
    name = type(layer).__name__
    with pytest.raises(TypeError, match=rf"^{name} train must be True or False, got 'false'"):
        jax.eval_shape(
            lambda: layer.init({"params": key, "dropout": key}, jnp.ones((2, 1, 2)), "false")
        )


@pytest.mark.parametrize(
    "layer",
    [L.DropPath(0.5), L.Residual(L.DropPath(0.5)), L.TransformerBlock(1)],
    ids=lambda layer: type(layer).__name__,
)
def test_a_traced_train_flag_names_the_layer_and_the_fix(layer, key):
    """jax.jit(model.apply)(variables, x, train=True) raised JAX's TracerBoolConversionError."""
    name = type(getattr(layer, "block", layer)).__name__  # a container hands it on
    with pytest.raises(TypeError, match=rf"^{name} train is traced, .* static_argnames="):
        jax.eval_shape(
            lambda t: layer.init({"params": key, "dropout": key}, jnp.ones((2, 1, 2)), t), True
        )


def test_a_train_flag_a_remat_traces_names_the_static_argnums_that_keep_it_a_bool(key):
    remat = nn.remat(L.TransformerBlock)(1, dropout_rate=0.5)
    message = r"^TransformerBlock train is traced, .* nn.remat\(Block, static_argnums=\(2,\)\)"
    with pytest.raises(TypeError, match=message):  # True a Python bool: the remat traces it
        jax.eval_shape(
            lambda: remat.init({"params": key, "dropout": key}, jnp.ones((2, 1, 2)), True)
        )


def test_a_traced_train_flag_a_container_turns_into_a_flax_deterministic_names_it(key):
    """jit(apply) of Sequence([..., nn.Dropout(0.5)]) raised TracerBoolConversionError."""
    layer = L.Sequence([nn.Dense(2), nn.Dropout(0.5)])
    message = r"^Dropout's deterministic \(not train\) is traced, .* static_argnames="
    with pytest.raises(TypeError, match=message):
        jax.eval_shape(lambda t: layer.init(key, jnp.ones((1, 2)), t), True)


def test_a_container_hands_a_traced_train_flag_to_a_block_that_takes_it(key):
    layer, x = (
        L.Sequence([nn.Dense(2), lambda h, train: jnp.where(train, h + 1, h)]),
        jnp.ones((1, 2)),
    )
    variables = layer.init(key, x)
    traced = jax.jit(layer.apply)(variables, x, train=True)
    np.testing.assert_allclose(traced, layer.apply(variables, x, train=True))


def test_gated_skip_closed_gate_is_identity(key):
    layer = L.GatedSkip(L.SwiGLU(), gate_init=-1e4)
    x = jax.random.normal(key, (4, 3))
    out, state = layer.apply(layer.init(key, x), x, mutable=[px.PATH_WEIGHTS])
    np.testing.assert_array_equal(out, x)
    assert float(state[px.PATH_WEIGHTS]["block_weight"][0]) == 0.0


def test_gated_skip_keeps_the_identity_share_of_a_bfloat16_gate_near_1(key):
    """sigmoid(7) = 0.99909 is 1.0 in bfloat16, so 1 - gate was taken after the cast and
    the identity's share 0.00091 * 1000 came out 0, not 0.91."""
    layer, x = L.GatedSkip(jnp.zeros_like, gate_init=7.0), jnp.full((1, 2), 1000.0, jnp.bfloat16)
    out = layer.apply(layer.init(key, x), x)
    assert out.dtype == jnp.bfloat16
    expected = np.float32(1000 / (1 + math.exp(7.0)))  # 0.9110512
    np.testing.assert_allclose(np.asarray(out, np.float32), expected, rtol=2**-8)


@pytest.mark.parametrize("gate_init", [-1.0, 0.5, 2.0])
def test_a_gated_skip_of_a_bfloat16_block_returning_its_input_returns_it_exactly(gate_init, key):
    """The shares (1 - gate) and gate, each rounded to bfloat16, need not add up to 1
    (0.998 for gate 0.88): the mix is taken in the gate's float32 and cast once."""
    x = jnp.asarray(np.linspace(-200, 200, 4001), jnp.bfloat16).reshape(1, -1)
    layer = L.GatedSkip(lambda h: h, gate_init=gate_init)
    out = layer.apply(layer.init(key, x), x)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(out, np.float32), np.asarray(x, np.float32))


@pytest.mark.parametrize(
    ("make", "share"),
    [
        (lambda block: L.Choice([lambda h: h, block]), 0.5),  # weights softmax(0, 0)
        (L.GatedSkip, 0.5),  # sigmoid(0)
        (L.ReZero, 1.0),
    ],
    ids=["choice", "gated_skip", "rezero"],
)
def test_a_mix_of_integer_x_and_a_bfloat16_block_is_float32_in_every_pathway(make, share, key):
    """Choice of an identity branch and a bfloat16 block gave float32, GatedSkip and ReZero
    bfloat16: x's share 128.5 came out 128 (and ReZero's 257, 256)."""
    x = jnp.array([[257, 1001]], jnp.int32)
    layer = make(lambda h: jnp.zeros(h.shape, jnp.bfloat16))
    out = layer.apply(layer.init(key, x), x)
    assert out.dtype == jnp.float32
    np.testing.assert_array_equal(out, share * np.array([[257, 1001]], np.float32))


def test_drop_path_identity_in_eval_and_drops_whole_examples_in_training(key):
    x = jax.random.normal(key, (4000, 3)) + 5.0
    layer = L.DropPath(0.3)
    np.testing.assert_array_equal(layer.apply({}, x), x)
    out = layer.apply({}, x, train=True, rngs={"dropout": jax.random.key(1)})
    kept = np.all(out != 0, axis=1)
    assert np.all(kept | np.all(out == 0, axis=1))  # whole examples, never parts
    assert abs(kept.mean() - 0.7) < 0.03  # 4 standard deviations
    np.testing.assert_allclose(out[kept], x[kept] / 0.7, rtol=1e-6)


def test_drop_path_scales_bfloat16_by_the_exact_keep_rate_rounding_once(key):
    """In bfloat16 it divided by 0.9 rounded to 0.8984: kept values 1.8e-3 too large on
    average, so the expectation was off by that much; each is x / 0.9 rounded once now."""
    x = (2.0 ** jax.random.uniform(key, (4000, 4), minval=-4, maxval=4)).astype(jnp.bfloat16)
    out = L.DropPath(0.1).apply({}, x, train=True, rngs={"dropout": jax.random.key(1)})
    assert out.dtype == jnp.bfloat16
    kept = np.asarray(out[:, 0] != 0)
    exact = np.asarray(x, np.float32) / np.float32(0.9)
    np.testing.assert_array_equal(out[kept], exact[kept].astype(jnp.bfloat16))
    expectation = 0.9 * np.asarray(out[kept], np.float64) / np.asarray(x[kept], np.float64)
    assert abs(expectation.mean() - 1) < 2e-4  # rounding alone: ~3e-5


def test_the_blurb_of_a_bfloat16_dropout_shows_its_bfloat16_output(key):
    """Dropout (TransformerBlock's, the frame's) ran Flax's call nested in its own, on
    the input cast to float32: the blurb, which keeps a module's first call to end,
    showed that one's float32 output."""
    layer, x = L.Sequence([Dropout(0.1)]), jnp.ones((2, 4), jnp.bfloat16)
    rngs = {"dropout": key}
    summary = px.blurb(layer, {}, x, measure_latency=False, flops=False, train=True, rngs=rngs)
    assert summary["layers_0"].outputs == {"": px.ArraySpec((2, 4), "bfloat16")}


@pytest.mark.parametrize("rate", [0.0, 0.5])
def test_drop_path_needs_a_batch_axis_in_training_only(rate, key):
    layer, x = L.DropPath(rate), jnp.ones(())
    assert layer.apply({}, x) == x
    with pytest.raises(ValueError, match=r"DropPath needs a batch axis .*\(B, \.\.\.\), got \(\)"):
        layer.apply({}, x, train=True, rngs={"dropout": key})


def test_a_module_given_as_a_rate_is_named_on_one_line():
    # DropPath(nn.Dense(3)) (a block where the rate goes) printed Dense's 13-line repr
    with pytest.raises(ValueError) as raised:
        L.DropPath(nn.Dense(3)).apply({}, jnp.ones((2, 3)))
    said = str(raised.value)
    assert said.startswith("DropPath rate must be a number in [0, 1), got Dense( # attributes")
    assert "\n" not in said and said.endswith("…") and len(said) < 120


def test_drop_path_gives_an_integer_input_as_float32_in_every_mode(key):
    """It came back int32 in eval (and at rate 0), float32 in training."""
    x = jnp.arange(8).reshape(4, 2)
    for rate, train in [(0.5, False), (0.0, True), (0.5, True)]:
        out = L.DropPath(rate).apply({}, x, train=train, rngs={"dropout": key})
        assert out.dtype == jnp.float32, (rate, train)
    bf16 = jnp.ones((4, 2), jnp.bfloat16)
    assert L.DropPath(0.5).apply({}, bf16, train=True, rngs={"dropout": key}).dtype == bf16.dtype
    assert L.DropPath(0.5).apply({}, bf16).dtype == bf16.dtype


def test_drop_path_tags_its_keep_mask_in_training_at_every_rate(key):
    x = jax.random.normal(key, (6, 3))
    rngs = {"dropout": jax.random.key(1)}
    for rate in (0.0, 0.5):
        out, found = px.probe(L.DropPath(rate), {}, x, "keep_mask", train=True, rngs=rngs)
        assert found["keep_mask"].shape == (6,) and found["keep_mask"].dtype == jnp.bool_
    np.testing.assert_array_equal(found["keep_mask"], np.any(out != 0, axis=1))
    out, found = px.probe(L.DropPath(0.0), {}, x, "keep_mask", train=True)  # no rng needed
    np.testing.assert_array_equal(out, x)
    assert bool(found["keep_mask"].all())


def test_moe_top1_output_is_one_expert_weighted_by_its_probability(key):
    layer = L.MixtureOfExperts(num_experts=3, top_k=1, hidden_features=5)
    x = jax.random.normal(key, (6, 4))
    variables = jax.jit(layer.init)(key, x)  # one program each: eager, each op compiles
    probe = jax.jit(lambda v: px.probe(layer, v, x, ["router_probs", "expert_load"]))
    out, found = probe(variables)
    p = variables["params"]
    probs = np.asarray(found["router_probs"])
    for token in range(6):
        e = int(probs[token].argmax())
        h = jax.nn.gelu(x[token] @ p["expert_in_kernel"][e] + p["expert_in_bias"][e])
        y = h @ p["expert_out_kernel"][e] + p["expert_out_bias"][e]
        np.testing.assert_allclose(out[token], probs[token, e] * y, rtol=1e-5, atol=1e-6)
    counts = np.bincount(probs.argmax(1), minlength=3) / 6
    np.testing.assert_allclose(found["expert_load"], counts, rtol=1e-6)


def test_a_bfloat16_moe_of_equal_experts_all_chosen_returns_their_output_exactly(key):
    """Four equal experts, each token routed to all four: the output is the one expert's
    (its router probability 1). The gates rounded to bfloat16 need not add up to 1
    (307 of these 32,000 outputs differed): they are mixed in float32, cast once."""
    x = jax.random.normal(key, (4000, 8), jnp.bfloat16)
    layer = L.MixtureOfExperts(num_experts=4, top_k=4)
    params = layer.init(key, x)["params"]
    params["router"]["kernel"] = jax.random.normal(key, (8, 4))
    experts = [name for name in params if name.startswith("expert_")]
    one = {name: params[name][:1] for name in experts}
    one["router"] = {"kernel": jnp.zeros((8, 1)), "bias": jnp.zeros(1)}
    for name in experts:
        params[name] = jnp.broadcast_to(one[name], params[name].shape)
    out = layer.apply({"params": params}, x)
    alone = L.MixtureOfExperts(num_experts=1).apply({"params": one}, x)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(out, np.float32), np.asarray(alone, np.float32))


def test_moe_balance_loss_is_one_for_uniform_routing_and_larger_when_concentrated(key):
    layer = L.MixtureOfExperts(num_experts=4, top_k=2)
    x = jax.random.normal(key, (8, 4))
    variables = layer.init(key, x)
    router = variables["params"]["router"]
    router["kernel"] = jnp.zeros_like(router["kernel"])
    _, found = px.probe(layer, variables, x, "balance")
    assert float(found["balance"]) == pytest.approx(1.0, abs=1e-6)
    router["bias"] = jnp.array([5.0, 0.0, 0.0, 0.0])
    _, state = layer.apply(variables, x, mutable=[px.AUX_LOSS, px.INTERMEDIATES])
    assert float(state[px.INTERMEDIATES]["balance"][0]) > 1.5
    np.testing.assert_allclose(
        state[px.AUX_LOSS]["balance"][0], 0.01 * state[px.INTERMEDIATES]["balance"][0]
    )


def test_moe_balance_with_padding_masked_equals_the_unpadded_batch(key):
    layer = L.MixtureOfExperts(num_experts=4, top_k=2)
    x = jax.random.normal(key, (2, 5, 4))
    real = jnp.arange(5) < jnp.array([[5], [2]])  # example 1: 2 real tokens, 3 padded
    variables = jax.jit(layer.init)(key, x)  # one program each: eager, each op compiles
    names = ["balance", "expert_load"]
    probe = jax.jit(lambda x, **kw: px.probe(layer, variables, x, names, **kw))
    out, masked = probe(x, mask=real)
    _, unpadded = probe(jnp.concatenate([x[0], x[1, :2]]))
    for name in names:
        np.testing.assert_allclose(masked[name], unpadded[name], rtol=1e-5, atol=1e-7)
    _, padded = probe(x)
    assert not np.allclose(padded["expert_load"], unpadded["expert_load"])
    zeroed = jnp.where(real[..., None], x, 0.0)  # padding still routed, read as zeros
    np.testing.assert_array_equal(out, probe(zeroed)[0])


def test_moe_mask_of_the_wrong_shape_names_both_shapes(key):
    layer = L.MixtureOfExperts(num_experts=2)
    x = jnp.ones((2, 5, 4))
    with pytest.raises(ValueError, match=r"tokens \(2, 5\) .* got \(5, 2\)"):
        layer.init(key, x, mask=jnp.ones((5, 2)))


def test_attention_rows_sum_to_one_and_entropy_matches_numpy(key):
    layer = L.MultiHeadSelfAttention(num_heads=2, causal=True)
    x = jax.random.normal(key, (3, 5, 4))
    _, found = px.probe(layer, layer.init(key, x), x, "attention_*")
    weights = np.asarray(found["attention_weights"], np.float64)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
    assert np.all(np.triu(weights, k=1) == 0)  # causal
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(weights > 0, weights * np.log(weights), 0.0)
    np.testing.assert_allclose(found["attention_entropy"], -plogp.sum(-1).mean(-1), rtol=1e-5)


def test_attention_entropy_of_sequences_of_no_token_is_zero_not_nan(key):
    layer, x = L.MultiHeadSelfAttention(num_heads=2), jnp.ones((2, 0, 4))
    _, found = px.probe(layer, layer.init(key, x), x, "attention_entropy")
    np.testing.assert_array_equal(found["attention_entropy"], np.zeros((2, 2)))


def test_attention_entropy_is_that_of_the_weights_injected_in_their_place(key):
    """It was computed from the layer's own log-weights: one-hot weights injected gave
    1.6 to 2.0 nats, not 0; uniform ones over 4 keys 1.5 to 1.7, not log 4 (1.386)."""
    layer, x = L.MultiHeadSelfAttention(num_heads=2), jax.random.normal(key, (2, 4, 4))
    variables = layer.init(key, x)
    for weights, entropy in ((jnp.eye(4), 0.0), (jnp.full((4, 4), 0.25), np.log(4))):
        given = {"attention_weights": jnp.broadcast_to(weights, (2, 2, 4, 4))}
        injected = {**variables, "injections": px.injections(layer, variables, x, given)}
        _, found = px.probe(layer, injected, x, "attention_entropy")
        np.testing.assert_allclose(found["attention_entropy"], np.full((2, 2), entropy), rtol=1e-6)


@pytest.mark.parametrize("causal", [False, True])
def test_attention_entropy_gradients_are_finite_and_match_finite_differences(causal, key):
    layer = L.MultiHeadSelfAttention(num_heads=2, causal=causal)
    x = jax.random.normal(key, (2, 5, 4))
    params = jax.jit(layer.init)(key, x)["params"]  # one program each: eager, each op compiles

    def entropy(params):  # masked (causal) weights are 0: their log must not leak a NaN
        _, found = px.probe(layer, {"params": params}, x, "attention_entropy")
        return jnp.sum(jnp.sin(found["attention_entropy"]))

    grads = jax.jit(jax.grad(entropy))(params)
    assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))
    direction = jax.tree.map(lambda p: jax.random.normal(jax.random.key(1), p.shape), params)
    along = jax.jit(lambda s: entropy(jax.tree.map(lambda p, d: p + s * d, params, direction)))
    eps = 3e-3  # float32: truncation ~eps**2, rounding ~1e-7 / eps, both well under 2e-3
    numeric = (along(eps) - along(-eps)) / (2 * eps)
    pairs = zip(jax.tree.leaves(grads), jax.tree.leaves(direction), strict=True)
    np.testing.assert_allclose(sum(jnp.vdot(g, d) for g, d in pairs), numeric, rtol=2e-3)


LENGTHS = jnp.array([5, 3, 1])
"""The real tokens of each example of a (3, 5, ...) batch; the rest is padding."""
PADDING = jnp.arange(5) < LENGTHS[:, None]
"""Their padding mask, (3, 5)."""
MASKS = {
    "padding": PADDING,
    "flax_pairs": nn.make_attention_mask(PADDING, PADDING, dtype=bool),  # (3, 1, 5, 5)
}
ATTENTION_LAYERS = {
    "attention": lambda **kw: L.MultiHeadSelfAttention(num_heads=2, **kw),
    "block": lambda **kw: L.TransformerBlock(num_heads=2, mlp_features=8, **kw),
}


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("mask", MASKS.values(), ids=MASKS.keys())
@pytest.mark.parametrize("make", ATTENTION_LAYERS.values(), ids=ATTENTION_LAYERS.keys())
def test_masked_keys_do_not_reach_the_real_tokens(make, mask, dtype, key):
    layer, x = make(dtype=dtype), jax.random.normal(key, (3, 5, 4))
    variables = layer.init(key, x)
    changed = jnp.where(PADDING[..., None], x, 100.0)  # the padding's inputs changed
    apply = jax.jit(lambda x: layer.apply(variables, x, mask=mask))
    before, after = np.asarray(apply(x), np.float32), np.asarray(apply(changed), np.float32)
    np.testing.assert_array_equal(before[PADDING], after[PADDING])
    zeroed = np.asarray(apply(jnp.where(PADDING[..., None], x, 0.0)), np.float32)
    np.testing.assert_array_equal(after, zeroed)  # the padding is read as zeros


@pytest.mark.parametrize("mask", MASKS.values(), ids=MASKS.keys())
def test_attention_entropy_under_a_mask_averages_the_real_queries_alone(mask, key):
    layer, x = L.MultiHeadSelfAttention(num_heads=2), jax.random.normal(key, (3, 5, 4))
    variables = jax.jit(layer.init)(key, x)  # one program each: eager, each op compiles
    probe = jax.jit(lambda x, **kw: px.probe(layer, variables, x, "attention_*", **kw))
    _, found = probe(x, mask=mask)
    for example, length in enumerate(LENGTHS.tolist()):  # as if unpadded
        _, alone = probe(x[example : example + 1, :length])
        np.testing.assert_allclose(
            found["attention_entropy"][example], alone["attention_entropy"][0], rtol=1e-6
        )


@pytest.mark.parametrize("make", ATTENTION_LAYERS.values(), ids=ATTENTION_LAYERS.keys())
def test_a_query_no_token_attends_is_read_as_it_is_not_as_padding(make, key):
    layer, x = make(), jax.random.normal(key, (3, 6, 4))
    variables = jax.jit(layer.init)(key, x)  # one program each: eager, each op compiles
    apply = jax.jit(lambda x, mask: layer.apply(variables, x, mask=mask))
    strict = jnp.tril(jnp.ones((1, 1, 6, 6), bool), -1)  # each token attends the earlier ones
    out = apply(x[:, :5], strict[..., :5, :5])  # none attends token 4
    np.testing.assert_allclose(out, apply(x, strict)[:, :5], atol=1e-6)
    keys = nn.make_attention_mask(jnp.ones((3, 5)), PADDING, dtype=bool)  # padded queries too
    changed, zeroed = (jnp.where(PADDING[..., None], x[:, :5], v) for v in (100.0, 0.0))
    out, out_zeroed = (apply(v, keys) for v in (changed, zeroed))
    np.testing.assert_array_equal(out[PADDING], out_zeroed[PADDING])
    assert not np.allclose(out[~PADDING], out_zeroed[~PADDING])  # queries: read as they are


@pytest.mark.parametrize("causal", [False, True])
def test_a_mask_zeroes_exactly_the_weights_it_masks_and_others_sum_to_one(causal, key):
    layer, x = (
        L.MultiHeadSelfAttention(num_heads=2, causal=causal),
        jax.random.normal(key, (3, 5, 4)),
    )
    per_head = jax.random.bernoulli(key, 0.6, (3, 2, 5, 5))
    _, found = px.probe(layer, layer.init(key, x), x, "attention_weights", mask=per_head)
    kept = per_head & (np.tril(np.ones((5, 5), bool)) if causal else True)
    weights = np.asarray(found["attention_weights"])
    assert np.all(weights[~kept] == 0) and np.all(weights[kept] > 0)
    np.testing.assert_allclose(weights.sum(-1), kept.any(-1), rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_a_query_with_no_key_to_attend_gives_the_output_bias_and_finite_gradients(dtype, key):
    layer, x = L.MultiHeadSelfAttention(num_heads=2, dtype=dtype), jax.random.normal(key, (3, 5, 4))
    variables = jax.jit(layer.init)(key, x)  # one program: eager, each op compiles
    variables["params"]["out"]["bias"] = jnp.arange(4.0)
    nothing = PADDING.at[2].set(False)  # example 2 attends nothing, example 1 its 3 tokens
    out, found = jax.jit(lambda v: px.probe(layer, v, x, "attention_*", mask=nothing))(variables)
    np.testing.assert_array_equal(out[2], jnp.broadcast_to(jnp.arange(4.0, dtype=dtype), (5, 4)))
    assert np.all(found["attention_weights"][2] == 0)
    np.testing.assert_array_equal(found["attention_entropy"][2], 0.0)

    def loss(params, x):  # through whole, partial and empty rows
        out, found = px.probe(layer, {"params": params}, x, "attention_entropy", mask=nothing)
        return jnp.sum(out.astype(jnp.float32) ** 2) + jnp.sum(found["attention_entropy"])

    grad = checkify.checkify(jax.grad(loss, argnums=(0, 1)), errors=checkify.nan_checks)
    error, grads = jax.jit(grad)(variables["params"], x)
    error.throw()  # not even an intermediate NaN, discarded later: no op made one
    assert all(np.isfinite(np.asarray(g, np.float32)).all() for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("mask", MASKS.values(), ids=MASKS.keys())
def test_a_vmapped_layer_takes_each_examples_mask(mask, key):
    layer, x = L.TransformerBlock(num_heads=2), jax.random.normal(key, (3, 5, 4))
    variables = layer.init(key, x)
    one = jax.jit(jax.vmap(lambda x, mask: layer.apply(variables, x, mask=mask)))
    np.testing.assert_allclose(
        one(x, mask), layer.apply(variables, x, mask=mask), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    "shape",
    [(5,), (3, 4), (2, 5), (3, 5, 5), (3, 3, 5, 5), (3, 1, 5, 4), (1, 3, 2, 5, 5)],
)
def test_a_mask_of_the_wrong_shape_is_an_error_naming_the_shapes_it_takes(shape, key):
    layer = L.TransformerBlock(num_heads=2)
    expected = r"^TransformerBlock mask must have the shape \(3, 5\) .* or \(3, 2, 5, 5\) .*"
    with pytest.raises(ValueError, match=expected + rf"got {re.escape(str(shape))}\."):
        jax.eval_shape(layer.init, key, jnp.ones((3, 5, 4)), mask=jnp.ones(shape, bool))


@pytest.mark.parametrize("make", ATTENTION_LAYERS.values(), ids=ATTENTION_LAYERS.keys())
def test_a_float_mask_is_an_error_by_its_dtype_under_jit_too(make, key):
    """A 0 / -inf mask (attend / not, as an additive mask) would read the other way round:
    the padding attended, the real tokens not; under jit its values cannot be seen, so
    every float mask is refused, 0 and 1 ones too (Flax's make_attention_mask's default)."""
    layer, x = make(), jax.random.normal(key, (2, 5, 4))
    variables = layer.init(key, x)
    keep = jnp.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    message = (  # naming the layer called, not a TransformerBlock's attention
        rf"^{type(layer).__name__} mask must be booleans \(or integers; nonzero: attend\), got a "
        r"float32 one, which may be an additive mask \(0: attend, -inf: not\) and would read "
        r"the other way round: pass mask == 0 for an additive mask, mask != 0 for one of 0 "
        r"and 1 \(make_attention_mask\(..., dtype=bool\) makes one\)\."
    )
    apply = jax.jit(lambda mask: layer.apply(variables, x, mask=mask))
    for mask in (jnp.where(keep, 0.0, -jnp.inf), nn.make_attention_mask(keep, keep)):
        with pytest.raises(TypeError, match=message):
            apply(mask)
    np.testing.assert_array_equal(  # as the message says: booleans, or integers
        apply(jnp.where(keep, 0.0, -jnp.inf) == 0), apply(keep.astype(jnp.int32))
    )
    # a str was JAX's "Value 'real' with dtype <U4 is not a valid JAX array type"
    with pytest.raises(TypeError, match=message.split(", got")[0] + r", got 'real' \(a str\)"):
        layer.apply(variables, x, mask="real")


PADDING_READERS = {
    "moe": lambda: L.MixtureOfExperts(num_experts=2, top_k=1),
    "squeeze": lambda: L.SqueezeExcite(2),
    "activity": lambda: L.ActivityL1(),
    "container": lambda: L.Sequence([nn.Dense(4), L.TransformerBlock(num_heads=2)]),
    "flax_attention": lambda: L.Sequence([nn.MultiHeadDotProductAttention(num_heads=2)]),
}


@pytest.mark.parametrize("make", PADDING_READERS.values(), ids=PADDING_READERS.keys())
def test_every_layer_reading_a_mask_refuses_a_float_one_as_attention_does(make, key):
    """An additive padding mask (0: real, -inf: not) was read as nonzero: real, the real
    tokens dropped and the padding kept, without a word; as attention, every layer that
    reads a mask refuses a float one by its dtype, under jit too."""
    layer, x = make(), jax.random.normal(key, (2, 5, 4))
    keep = jnp.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    variables = layer.init(key, x, mask=keep)
    name = type(layer).__name__
    message = (
        rf"^{name} mask must be booleans \(or integers; nonzero: a real token\), got a float32 "
        r"one, which may be an additive mask \(0: a real token, -inf: not\) and would read "
        r"the other way round: pass mask == 0 for an additive mask, mask != 0 for one of 0 "
        r"and 1\."
    )
    apply = jax.jit(lambda mask: layer.apply(variables, x, mask=mask, mutable=True)[0])
    for mask in (jnp.where(keep, 0.0, -jnp.inf), keep.astype(jnp.float32)):
        with pytest.raises(TypeError, match=message):
            apply(mask)
    np.testing.assert_array_equal(apply(jnp.where(keep, 0.0, -jnp.inf) == 0), apply(keep))
    # JAX's error named no layer; a container passed it on (to Flax's attention: JAX's)
    got = (
        rf"^{name} mask must be booleans \(or integers; nonzero: a real token\), got 'real' \(a str"
    )
    with pytest.raises(TypeError, match=got):
        layer.apply(variables, x, mask="real", mutable=True)


@pytest.mark.parametrize(
    ("layer", "params", "expected"),
    [
        (L.Choice([jnp.abs, jnp.abs]), {"gate_logits": jnp.zeros(2)}, [[0.0, 1.0], [2.0, 3.0]]),
        (L.GatedSkip(jnp.negative), {"gate_logit": jnp.array(0.0)}, [[0.0, 0.0], [0.0, 0.0]]),
        (L.ReZero(jnp.negative), {"alpha": jnp.array(0.5)}, [[0.0, 0.5], [1.0, 1.5]]),
    ],
)
def test_an_integer_branch_output_is_weighted_in_float32(layer, params, expected):
    """Not by its weight cast to an integer (0 for a weight in (0, 1))."""
    x = jnp.arange(4).reshape(2, 2)
    np.testing.assert_array_equal(layer.apply({"params": params}, x), expected)


def test_rezero_is_identity_at_init(key):
    x = jax.random.normal(key, (2, 3))
    layer = L.ReZero(L.SwiGLU())
    np.testing.assert_array_equal(layer.apply(layer.init(key, x), x), x)


@pytest.mark.parametrize("alpha", [0.0, -0.987])
def test_a_bfloat16_rezero_rounds_x_plus_alpha_times_its_residual_once(alpha, key):
    """With alpha -0.987 rounded to bfloat16 (-0.9883) and x + alpha * x summed in
    bfloat16, outputs were off by up to 49 of their bfloat16 steps; alpha 0 gives x."""
    x = jnp.asarray(np.linspace(-200, 200, 4001), jnp.bfloat16).reshape(1, -1)
    layer = L.ReZero(lambda h: h)
    variables = {"params": {"alpha": jnp.array(alpha)}}
    out, found = px.probe(layer, variables, x, "residual")
    assert out.dtype == jnp.bfloat16 and found["residual"].dtype == jnp.float32
    expected = np.asarray(x, np.float64) * (1 + np.float64(np.float32(alpha)))
    np.testing.assert_allclose(np.asarray(out, np.float64), expected, rtol=2**-8)
    if alpha == 0:
        np.testing.assert_array_equal(np.asarray(out, np.float32), np.asarray(x, np.float32))


def test_orthogonal_dense_penalty_is_zero_for_orthogonal_and_exact_otherwise(key):
    layer = L.OrthogonalDense(3)
    x = jnp.ones((2, 5))
    variables = layer.init(key, x)
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(5, 3)))
    for scale, expected in [(1.0, 0.0), (2.0, 9.0 * 3)]:  # ||4I - I||^2 = 9 * 3
        variables["params"]["kernel"] = jnp.asarray(scale * q, jnp.float32)
        _, state = layer.apply(variables, x, mutable=[px.AUX_LOSS])
        assert float(state[px.AUX_LOSS]["orthogonality"][0]) == pytest.approx(expected, abs=1e-5)


def test_fixed_fourier_frequencies_are_constants_that_training_leaves_alone(key):
    layer = L.Sequence([L.FourierFeatures(3), nn.Dense(2)])
    x = jax.random.normal(key, (8, 4))
    variables = layer.init(key, x)
    frequencies = variables["constants"]["layers_0"]["frequencies"]
    assert "layers_0" not in variables["params"]
    _, found = px.probe(layer, variables, x, "layers_0/phases")
    np.testing.assert_allclose(found["layers_0/phases"], 2 * np.pi * x @ frequencies, rtol=1e-5)

    optimizer = optax.adamw(0.1, weight_decay=0.5)
    params, opt_state = variables["params"], optimizer.init(variables["params"])
    for _ in range(3):
        grads = jax.grad(lambda p: layer.apply({**variables, "params": p}, x).sum())(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
    _, after = px.probe(layer, {**variables, "params": params}, x, "layers_0/phases")
    np.testing.assert_array_equal(after["layers_0/phases"], found["layers_0/phases"])


def test_fixed_fourier_frequencies_refuse_an_input_of_another_width(key):
    layer = L.FourierFeatures(3)
    variables = jax.eval_shape(layer.init, key, jnp.ones((2, 4)))
    with pytest.raises(ValueError, match=r"width 5 .* frequencies have shape \(4, 3\)"):
        jax.eval_shape(layer.apply, variables, jnp.ones((2, 5)))


def test_hyper_dense_refuses_an_input_of_another_width_naming_the_widths(key):
    # Flax named the hyper-network's kernel alone: shape (8, 21), but got (8, 15)
    layer = L.HyperDense(3)
    variables = jax.eval_shape(layer.init, key, jnp.ones((2, 4)))
    with pytest.raises(
        ValueError,
        match=r"HyperDense got inputs of width 6 \(shape \(2, 6\)\) and features=3, which take "
        r"21 generated values .* generates 15 \(for inputs of width 4\)",
    ):
        jax.eval_shape(layer.apply, variables, jnp.ones((2, 6)))


def test_hyper_dense_reads_its_widths_of_params_boxed_by_partitioning(key):
    """Its width check read the stored kernel's shape of a box (nn.Partitioned) and failed
    with AttributeError: 'Partitioned' object has no attribute 'shape'."""
    layer, x = L.HyperDense(3), jax.random.normal(key, (2, 4))
    variables = layer.init(key, x)
    boxed = jax.tree.map(lambda a: nn.Partitioned(a, names=(None,) * a.ndim), variables)
    np.testing.assert_array_equal(layer.apply(boxed, x), layer.apply(variables, x))
    with pytest.raises(ValueError, match=r"width 6 .* generates 15 \(for inputs of width 4\)"):
        layer.apply(boxed, jnp.ones((2, 6)))


def test_trainable_fourier_frequencies_are_params_that_get_gradients(key):
    layer, x = L.FourierFeatures(3, trainable=True), jax.random.normal(key, (2, 4))
    variables = layer.init(key, x)
    assert "constants" not in variables
    grads = jax.grad(lambda p: layer.apply({**variables, "params": p}, x).sum())(
        variables["params"]
    )
    assert np.abs(grads["frequencies"]).sum() > 0


def test_bfloat16_fourier_features_of_large_inputs_match_float32_ones(key):
    """The phases (~100 to ~1000 radians here) are computed in float32: in bfloat16 they
    were off by up to 2 radians, so were the features."""
    x = jax.random.uniform(key, (64, 3), minval=90.0, maxval=110.0)
    variables = L.FourierFeatures(8).init(key, x)
    half = L.FourierFeatures(8, dtype=jnp.bfloat16).apply(variables, x)
    assert half.dtype == jnp.bfloat16
    full = L.FourierFeatures(8).apply(variables, x)
    np.testing.assert_allclose(np.asarray(half, np.float32), full, atol=4e-3)


def test_lipschitz_dense_bound_holds_on_random_pairs(key):
    layer = L.LipschitzDense(4)
    x = jax.random.normal(key, (64, 6))
    variables = layer.init(key, x)
    variables["params"]["kernel"] = 10 * variables["params"]["kernel"]  # bound active
    variables = px.set_knobs(px.with_knobs(layer, variables, x), {"bound": 0.5})
    fx = layer.apply(variables, x)
    y = x + 0.3 * jax.random.normal(jax.random.key(1), x.shape)
    fy = layer.apply(variables, y)
    ratio = np.linalg.norm(fx - fy, axis=1) / np.linalg.norm(x - y, axis=1)
    assert ratio.max() <= 0.5 * (1 + 1e-5)
    assert ratio.max() > 0.1  # the bound is not met by shrinking everything to 0


def test_lipschitz_dense_leaves_a_kernel_within_the_bound_unchanged_and_rescales_one_above(key):
    layer, x = L.LipschitzDense(3), jax.random.normal(key, (5, 4))
    variables = layer.init(key, x)
    kernel = np.zeros((4, 3), np.float32)
    kernel[[0, 1, 2], [0, 1, 2]] = [0.5, 0.25, 0.1]  # singular values 0.5, 0.25, 0.1
    variables["params"]["kernel"] = jnp.asarray(kernel)
    variables["params"]["bias"] = jnp.asarray([1.0, 2.0, 3.0])
    out, found = px.probe(layer, variables, x, "spectral_norm")
    assert float(found["spectral_norm"]) == pytest.approx(0.5)
    np.testing.assert_allclose(out, x @ kernel + np.array([1.0, 2.0, 3.0]), rtol=1e-6)
    variables["params"]["kernel"] = jnp.asarray(4 * kernel)  # sigma 2: scaled down by 2
    out = layer.apply(variables, x)
    np.testing.assert_allclose(out, x @ (2 * kernel) + np.array([1.0, 2.0, 3.0]), rtol=1e-6)


def test_lipschitz_dense_takes_bfloat16_params_as_mixed_precision_training_casts_them(key):
    layer, x = L.LipschitzDense(3), jax.random.normal(key, (5, 4), jnp.bfloat16)
    variables = layer.init(key, x)
    half = jax.tree.map(lambda p: p.astype(jnp.bfloat16), variables["params"])
    out, found = px.probe(layer, {**variables, "params": half}, x, "spectral_norm")
    assert out.dtype == jnp.bfloat16 and np.isfinite(np.asarray(out, np.float32)).all()
    kernel = np.asarray(half["kernel"], np.float32)
    assert float(found["spectral_norm"]) == pytest.approx(np.linalg.norm(kernel, 2), rel=1e-5)


def test_integer_inputs_are_computed_in_float32_and_a_set_dtype_wins(key):
    layer, x = L.LipschitzDense(3), jnp.arange(8, dtype=jnp.int32).reshape(2, 4)
    variables = layer.init(key, x)
    out = layer.apply(variables, x)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, layer.apply(variables, x.astype(jnp.float32)), rtol=1e-6)
    assert L.LipschitzDense(3, dtype=jnp.bfloat16).apply(variables, x).dtype == jnp.bfloat16


def test_a_transformer_block_carries_an_integer_input_in_float32(key):
    layer, x = L.TransformerBlock(2), jnp.arange(24).reshape(2, 3, 4)
    variables = jax.jit(layer.init)(key, x)  # one program each: eager, each op compiles
    apply = jax.jit(layer.apply)
    out = apply(variables, x)
    assert out.dtype == jnp.float32  # not its branches truncated to integers
    np.testing.assert_array_equal(out, apply(variables, x.astype(jnp.float32)))


def test_a_bfloat16_layer_scale_rounds_its_product_once(key):
    """The float32 scale rounded to bfloat16, then the product rounded: off by up to
    0.0062 of the value, past bfloat16's one rounding (2^-8); it scales in float32."""
    x = jax.random.normal(key, (512, 16), jnp.bfloat16)
    scale = np.random.default_rng(0).uniform(-2, 2, 16).astype(np.float32)
    out = L.LayerScale().apply({"params": {"scale": jnp.asarray(scale)}}, x)
    assert out.dtype == jnp.bfloat16
    expected = np.asarray(x, np.float64) * scale.astype(np.float64)
    np.testing.assert_allclose(np.asarray(out, np.float64), expected, rtol=2**-8)


def test_layer_scale_scales_an_integer_input_in_float32(key):
    layer, x = L.LayerScale(0.5), jnp.arange(4, dtype=jnp.int32).reshape(2, 2)
    out = layer.apply(layer.init(key, x), x)
    assert out.dtype == jnp.float32
    np.testing.assert_array_equal(out, [[0.0, 0.5], [1.0, 1.5]])


def test_repeat_equals_the_block_applied_layer_by_layer(key):
    block = L.ReZero(L.SwiGLU())
    layer = L.Repeat(block, num_layers=3)
    x = jax.random.normal(key, (2, 4))
    variables = jax.jit(layer.init)(key, x)  # one program each: eager, each op compiles
    variables = jax.tree.map(lambda p: p + 0.1, variables)  # alpha != 0
    out, found = jax.jit(lambda v: px.probe(layer, v, x, "block/residual"))(variables)
    assert found["block/residual"].shape == (3, 2, 4)
    h, block_apply = x, jax.jit(block.apply)
    for i in range(3):
        params = jax.tree.map(lambda p, i=i: p[i], variables["params"]["block"])
        residual = block_apply({"params": params}, h) - h
        np.testing.assert_allclose(found["block/residual"][i], residual, rtol=1e-5, atol=1e-6)
        h = h + residual
    np.testing.assert_allclose(out, h, rtol=1e-5, atol=1e-6)


def test_repeat_carries_an_integer_input_in_float32(key):
    layer, x = L.Repeat(L.LayerScale(0.5), num_layers=2), jnp.arange(4).reshape(2, 2)
    out = layer.apply(layer.init(key, x), x)
    assert out.dtype == jnp.float32
    np.testing.assert_array_equal(out, [[0.0, 0.25], [0.5, 0.75]])


class _Noise(nn.Module):
    """Adds noise drawn from an rng stream of its own, ``"noise"``; tags it."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return x + px.tag(self, "noise", jax.random.normal(self.make_rng("noise"), x.shape))


def test_repeat_gives_each_layer_its_own_draws_of_any_rng_stream(key):
    layer, x = L.Repeat(_Noise(), num_layers=3), jnp.zeros((2, 4))
    out, found = px.probe(layer, {}, x, "block/noise", rngs={"noise": key})
    noise = found["block/noise"]
    assert noise.shape == (3, 2, 4)
    assert not np.allclose(noise[0], noise[1]) and not np.allclose(noise[1], noise[2])
    np.testing.assert_allclose(out, noise.sum(0), rtol=1e-6)


class _Doubler(nn.Module):
    """Doubles its input, sowing its mean in a collection of its own, ``"stats"``."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        self.sow("stats", "mean", x.mean())
        return 2 * x


def test_repeat_keeps_what_its_block_sows_in_a_collection_of_its_own():
    layer = L.Repeat(_Doubler(), num_layers=3)
    out, state = layer.apply({}, jnp.ones((2, 4)), mutable=["stats"])
    np.testing.assert_array_equal(out, np.full((2, 4), 8.0))
    (means,) = state["stats"]["block"]["mean"]  # one call, one value per layer
    np.testing.assert_array_equal(means, [1.0, 2.0, 4.0])


def test_repeat_keeps_one_knob_per_layer_and_tweak_reaches_them(key):
    layer = L.Repeat(L.Choice([nn.Dense(4), L.GLU()]), num_layers=3)
    x = jax.random.normal(key, (2, 4))
    variables = jax.jit(layer.init)(key, x)  # one program each: eager, each op compiles
    variables["params"]["block"]["gate_logits"] = jnp.array([[3.0, -2.0]] * 3)
    assert variables["knobs"]["block"]["T"].shape == (3,)
    probe = jax.jit(lambda v: px.probe(layer, v, x, "block/weights"))
    _, found = probe(px.set_knobs(variables, {"block/T": 1e6}))
    np.testing.assert_allclose(found["block/weights"], np.full((3, 2), 0.5), atol=1e-5)


def test_remat_block_matches_plain_block(key):
    x = jax.random.normal(key, (2, 5, 4))
    plain = L.TransformerBlock(num_heads=2)
    variables = plain.init(key, x)
    rematted = nn.remat(L.TransformerBlock)(num_heads=2)
    out, found = px.probe(rematted, variables, x, "attention/attention_entropy")
    np.testing.assert_allclose(out, plain.apply(variables, x), rtol=1e-6)
    assert found["attention/attention_entropy"].shape == (2, 2)


class _Classifier(nn.Module):
    """A plain Flax model that uses phosjax layers as-is."""

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = nn.Dense(8)(x)
        x = L.Choice([L.SwiGLU(), L.GatedSkip(L.GLU())])(x)
        x = L.Residual(L.MixtureOfExperts(num_experts=2))(x)
        return nn.Dense(3)(x)


def test_layers_train_inside_a_plain_flax_model_with_optax(key):
    x = jax.random.normal(key, (16, 5))
    labels = jnp.arange(16) % 3
    model = _Classifier()
    params = jax.jit(model.init)(key, x)["params"]  # one program: eager, each op compiles
    optimizer = optax.adam(1e-2)

    @jax.jit
    def step(params, opt_state):
        def loss_fn(params):
            logits = model.apply({"params": params}, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state = optimizer.init(params)
    losses = []
    for _ in range(10):
        params, opt_state, loss = step(params, opt_state)
        losses.append(float(loss))
    assert losses[-1] < 0.8 * losses[0]


def test_layer_wrapped_into_nnx_matches_linen(key):
    layer = L.TransformerBlock(num_heads=2)
    x = jax.random.normal(key, (2, 5, 4))
    wrapped = nnx.bridge.ToNNX(layer, rngs=nnx.Rngs(0)).lazy_init(x)
    params = nnx.to_pure_dict(nnx.state(wrapped, nnx.Param))
    np.testing.assert_allclose(wrapped(x), layer.apply({"params": params}, x), rtol=1e-6)


FINITE = "must be a finite number, got "


class Pair(nn.Module):
    """A block that returns a pair of arrays (as a recurrent cell returns its state too)."""

    @nn.compact
    def __call__(self, x):
        h = nn.Dense(x.shape[-1])(x)
        return h, h


@pytest.mark.parametrize(
    ("layer", "shape", "match"),
    [
        (L.Choice([]), (2, 3), "at least one branch"),
        (
            L.TransformerBlock(num_heads=3),
            (2, 5, 4),
            r"^TransformerBlock input width 4 \(input shape \(2, 5, 4\)\) must be "
            r"divisible by num_heads=3 \(each head takes width / num_heads features\); give "
            r"num_heads one of \[1, 2, 4\]\.",
        ),
        *(
            (
                L.TransformerBlock(num_heads=n),
                (2, 5, 4),
                rf"TransformerBlock num_heads must be an int >= 1, got {n}",
            )
            for n in (0, -2)
        ),
        (
            L.MultiHeadSelfAttention(num_heads=-2),
            (2, 5, 4),
            r"num_heads must be an int >= 1, got -2",
        ),
        (
            L.SqueezeExcite(reduction=0),
            (2, 8),
            r"SqueezeExcite reduction must be an int >= 1, got 0",
        ),
        (
            L.SqueezeExcite(reduction=-4),
            (2, 8),
            r"SqueezeExcite reduction must be an int >= 1, got -4",
        ),
        (
            L.TransformerBlock(2, mlp_features=0),
            (2, 5, 4),
            r"mlp_features must be an int >= 1, got 0",
        ),
        (L.GLU(features=0), (2, 3), r"GLU features must be an int >= 1, got 0"),
        (
            L.SwiGLU(hidden_features=-1),
            (2, 3),
            r"SwiGLU hidden_features must be an int >= 1, got -1",
        ),
        (L.SwiGLU(features=0), (2, 3), r"SwiGLU features must be an int >= 1, got 0"),
        (
            L.MixtureOfExperts(features=0),
            (2, 4),
            r"MixtureOfExperts features must be an int >= 1, got 0",
        ),
        (
            L.MixtureOfExperts(hidden_features=0),
            (2, 4),
            r"hidden_features must be an int >= 1, got 0",
        ),
        (L.HyperDense(0), (2, 3), r"HyperDense features must be an int >= 1, got 0"),
        (
            L.HyperDense(4, embedding_features=0),
            (2, 3),
            r"embedding_features must be an int >= 1, got 0",
        ),
        (
            L.MixtureOfExperts(num_experts=2, top_k=3),
            (2, 4),
            r"top_k must be an int in \[1, num_experts=2\], got 3",
        ),
        (
            L.MixtureOfExperts(num_experts=2, top_k=0),
            (2, 4),
            r"top_k must be an int in \[1, num_experts=2\], got 0",
        ),
        *(
            (
                L.MixtureOfExperts(num_experts=n),
                (2, 4),
                rf"num_experts must be an int >= 1, got {n}",
            )
            for n in (0, -2, 2.0)
        ),
        (
            L.MixtureOfExperts(top_k=1.5),
            (2, 4),
            r"top_k must be an int in \[1, num_experts=4\], got 1\.5",
        ),
        *(
            (layer(size), (2, 3), rf"{layer.__name__} {name} must be an int >= 1, got {size}")
            for layer, name in [
                (L.LipschitzDense, "features"),
                (L.OrthogonalDense, "features"),
                (L.FourierFeatures, "num_frequencies"),
            ]
            for size in (0, -1)
        ),
        *(
            (L.DropPath(rate), (2, 3), rf"DropPath rate must be a number in \[0, 1\), got {rate!r}")
            for rate in (1.0, -0.1, "0.5", True)
        ),
        *(
            (
                layer(2, dropout_rate=rate),
                (2, 5, 4),
                rf"{layer.__name__} dropout_rate must be a "
                rf"number in \[0, 1\), got {rate}",
            )
            for layer in (L.MultiHeadSelfAttention, L.TransformerBlock)
            for rate in (1.5, -0.1, 1.0)
        ),
        *(
            (L.GatedSkip(nn.Dense(3), gate_init=v), (2, 3), rf"GatedSkip gate_init {FINITE}{v!r}")
            for v in (np.nan, np.inf, "1", None)
        ),
        *(
            (L.LayerScale(v), (2, 3), rf"LayerScale init_value {FINITE}{re.escape(repr(v))}")
            for v in (-np.inf, "0.1", None, (0.1, 0.2, 0.3), np.array([1.0, np.nan, 1.0]))
        ),
        *(  # Flax's constant initializer failed on the shape, naming neither layer nor value
            (
                layer,
                (2, 3),
                rf"{type(layer).__name__} {name} must be a number or an array that broadcasts "
                rf"to the shape {re.escape(str(param))} of the parameter it initializes, got one "
                rf"of shape {re.escape(str(shape))}\.",
            )
            for layer, name, param, shape in [
                (L.LayerScale(np.ones(7)), "init_value", (3,), (7,)),
                (L.LayerScale(np.ones((2, 3))), "init_value", (3,), (2, 3)),
                (L.GatedSkip(nn.Dense(3), gate_init=np.ones(3)), "gate_init", (), (3,)),
            ]
        ),
        (L.GatedSkip(nn.Dense(5)), (2, 3), r"GatedSkip's block must keep the input shape \(2, 3\)"),
        (
            L.ReZero(nn.Dense(1)),
            (3, 4),
            r"block must keep the input shape \(3, 4\), but returned \(3, 1\)",
        ),
        (
            L.Choice([nn.Dense(4), nn.Dense(1)]),
            (3, 4),
            r"Choice's branch 1 must return branch 0's shape \(3, 4\), but returned \(3, 1\)",
        ),
        *(
            (
                L.Repeat(L.GLU(), num_layers=n),
                (2, 3),
                rf"Repeat num_layers must be an int >= 1, got {n}",
            )
            for n in (0, 2.5)
        ),
        (
            L.Repeat(nn.Dense(5), num_layers=2),
            (2, 4),
            r"Repeat's block must keep the input shape \(2, 4\), but returned \(2, 5\)",
        ),
        (L.Residual(L.MultiHeadSelfAttention(1)), (2,), r"inputs \(\.\.\., L, C\)"),
        *(
            (layer, (), rf"{type(layer).__name__} needs inputs \(\.\.\., C\), got shape \(\)\.")
            for layer in (
                L.GLU(),
                L.SwiGLU(),
                L.FourierFeatures(),
                L.HyperDense(3),
                L.LipschitzDense(3),
                L.OrthogonalDense(3),
                L.MixtureOfExperts(),
                L.LayerScale(),  # made one scale for a scalar, as if it were a channel
            )
        ),
        (
            L.TransformerBlock(2),
            (4,),
            r"TransformerBlock needs inputs \(\.\.\., L, C\), got shape \(4,\)",
        ),
        (L.SqueezeExcite(), (4,), r"SqueezeExcite needs inputs \(B, \.\.\., C\), got shape \(4,\)"),
        *(
            (layer, (2, 4), rf"{who} .*, but returned a tuple\.")
            for layer, who in [
                (L.Residual(Pair()), "Residual's block"),
                (L.ReZero(Pair()), "ReZero's block"),
                (L.GatedSkip(Pair()), "GatedSkip's block"),
                (L.Repeat(Pair(), num_layers=2), "Repeat's block"),
                (L.Choice([Pair(), Pair()]), "Choice's branch 0"),
                (L.Choice([nn.Dense(4), Pair()]), "Choice's branch 1"),
            ]
        ),
    ],
)
def test_bad_configuration_raises_a_clear_error(layer, shape, match):
    """Including a block that returns a tuple (``Pair``), not an array."""
    with pytest.raises(ValueError, match=match):
        jax.eval_shape(layer.init, jax.random.key(0), jnp.ones(shape))


@pytest.mark.parametrize(
    ("given", "plain", "shape", "train"),
    [
        (L.DropPath(jnp.float32(0.5)), L.DropPath(0.5), (4, 3), (True,)),
        (
            L.TransformerBlock(jnp.int32(2), dropout_rate=jnp.float32(0.5)),
            L.TransformerBlock(2, dropout_rate=0.5),
            (2, 3, 4),
            (True,),
        ),
        (L.MixtureOfExperts(2, top_k=jnp.int32(2)), L.MixtureOfExperts(2, 2), (2, 4), ()),
    ],
)
def test_a_size_or_rate_given_as_a_0d_array_is_the_number_it_holds(key, given, plain, shape, train):
    """An element of ``jnp.linspace`` was 'rate must be a number in [0, 1), got Array(0.5)'."""
    x, rngs = jax.random.normal(key, shape), {"params": key, "dropout": key}
    variables = plain.init(rngs, x)
    expected = plain.apply(variables, x, *train, rngs=rngs)
    np.testing.assert_array_equal(given.apply(variables, x, *train, rngs=rngs), expected)


KNOBS = [  # (layer, its input's shape, its knob's path, the range it takes)
    (L.Choice([nn.Dense(3), nn.Dense(3)]), (2, 3), "T", "> 0"),
    (L.LipschitzDense(3), (2, 3), "bound", "> 0"),
    (L.FourierFeatures(3), (2, 3), "scale", ">= 0"),
    (L.Sequence([L.ActivityL1()]), (2, 3), "layers_0/strength", ">= 0"),
    (L.OrthogonalDense(3), (2, 3), "strength", ">= 0"),
    (L.MixtureOfExperts(), (2, 3), "balance_weight", ">= 0"),
]
OUT_OF_RANGE = {"> 0": (0.0, -1.0, np.nan, np.inf), ">= 0": (-1e-3, np.nan, -np.inf)}


@pytest.mark.parametrize(
    ("layer", "shape", "path", "valid", "value"),
    [(*case, value) for case in KNOBS for value in OUT_OF_RANGE[case[-1]]],
)
def test_a_knob_out_of_its_range_is_an_error_naming_it_or_nan_where_traced(
    layer, shape, path, valid, value, key
):
    x = jax.random.normal(key, shape)
    variables = layer.init(key, x)
    with pytest.raises(ValueError, match=rf"knob '{path}' must be a finite number {valid}, got"):
        px.tweak(layer, variables, x, {path: value})

    @jax.jit
    def tweaked(value):  # the knob traced: no error can be raised, the output shows it
        return px.tweak(layer, variables, x, {path: value}, mutable=[px.AUX_LOSS])

    out, state = tweaked(value)
    assert not all(np.isfinite(leaf).all() for leaf in jax.tree.leaves((out, state)))
    edge = tweaked(0.0 if valid == ">= 0" else 0.5)  # in range
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(edge))


@pytest.mark.parametrize(("layer", "shape", "path", "valid"), KNOBS)
def test_knobs_lists_the_range_each_layer_declares(layer, shape, path, valid):
    assert str(px.knobs(layer, jnp.ones(shape))[path].valid) == f"a finite number {valid}"


def test_a_knob_out_of_its_range_inside_repeat_is_an_error_before_the_scan(key):
    """Repeat scans its block, where the knob is traced even in an eager call (it read NaN
    there); tweak checks the concrete value against the declared range first."""
    layer, x = L.Repeat(L.Choice([nn.Dense(3), nn.Dense(3)]), num_layers=2), jnp.ones((2, 3))
    variables = layer.init(key, x)
    with pytest.raises(ValueError, match=r"knob 'block/T' must be a finite number > 0, got -1"):
        px.tweak(layer, variables, x, {"block/T": -1.0})
    assert np.isfinite(px.tweak(layer, variables, x, {"block/T": 2.0})).all()
    stacked = px.set_knobs(px.with_knobs(layer, variables, x), {"block/T": -1.0})
    assert np.isnan(layer.apply(stacked, x)).all()  # unchecked: traced in the scan


def test_a_sequence_takes_functions_as_flax_sequential_does(key):
    """``Sequence([nn.Dense(4), nn.relu])`` was a TypeError ('wrap a function in one'),
    though Choice, GatedSkip, Residual and ReZero take functions; a function gets the
    train flag and the keywords its signature names, as a module does."""
    layer = L.Sequence([nn.Dense(4), nn.relu, lambda h, train=False: h + train])
    x = jax.random.normal(key, (3, 2))
    variables = layer.init(key, x)
    dense = nn.Dense(4).apply({"params": variables["params"]["layers_0"]}, x)
    np.testing.assert_array_equal(layer.apply(variables, x), nn.relu(dense))
    np.testing.assert_array_equal(layer.apply(variables, x, train=True), nn.relu(dense) + 1)


MODULE_OR_FUNCTION = r"must be a Flax module or a function of the input, got "
MODULE_ONLY = r"must be a Flax module \(wrap a function in one\), got "


@pytest.mark.parametrize(
    ("layer", "match"),
    [
        (L.Choice([3]), rf"Choice's branch 0 {MODULE_OR_FUNCTION}3 \(an int\)\."),
        (L.Choice([nn.Dense(2), "relu"]), rf"Choice's branch 1 {MODULE_OR_FUNCTION}'relu' \(a str"),
        (L.Choice(nn.Dense(2)), r"Choice branches must be a list or tuple of blocks, got a Dense"),
        (L.GatedSkip(3), rf"GatedSkip's block {MODULE_OR_FUNCTION}3"),
        (L.Residual(None), rf"Residual's block {MODULE_OR_FUNCTION}None \(a NoneType\)"),
        (L.ReZero(2.0), rf"ReZero's block {MODULE_OR_FUNCTION}2\.0 \(a float\)"),
        (L.Repeat(3, num_layers=2), rf"Repeat's block {MODULE_ONLY}3 \(an int\)"),
        (L.Repeat(jnp.abs, num_layers=2), rf"Repeat's block {MODULE_ONLY}<PjitFunction"),
        (L.Sequence([nn.Dense(2), "relu"]), rf"Sequence's layer 1 {MODULE_OR_FUNCTION}'relu'"),
        (
            L.Sequence(nn.Dense(2)),
            r"Sequence layers must be a list or tuple of blocks, got a Dense",
        ),
        *(
            (layer, rf"{who} is the class {cls}, not a module: pass an instance, {cls}\(\.\.\.\)")
            for layer, who, cls in [
                (L.GatedSkip(nn.Dense), "GatedSkip's block", "Dense"),
                (L.Choice([L.GLU(), L.GLU]), "Choice's branch 1", "GLU"),
                (L.Residual(L.SwiGLU), "Residual's block", "SwiGLU"),
                (L.ReZero(L.SwiGLU), "ReZero's block", "SwiGLU"),
                (L.Sequence([nn.Dense]), "Sequence's layer 0", "Dense"),
                (L.Repeat(L.GLU, num_layers=2), "Repeat's block", "GLU"),
            ]
        ),
    ],
)
def test_a_block_that_is_no_module_or_function_is_an_error_naming_it(layer, match):
    with pytest.raises(TypeError, match=match):
        layer.init(jax.random.key(0), jnp.ones((1, 2)))


def test_public_names():
    assert sorted(L.__all__) == sorted(
        [
            "ActivityL1", "Choice", "DropPath", "FourierFeatures", "GLU", "GatedSkip",
            "HyperDense", "LayerScale", "LipschitzDense", "MixtureOfExperts",
            "MultiHeadSelfAttention", "OrthogonalDense", "ReZero", "Repeat", "Residual",
            "Sequence", "SqueezeExcite", "SwiGLU", "TransformerBlock",
        ]
    )  # fmt: skip


class _Doubled(nn.Module):
    """A Dense layer whose output is doubled in training: the flag changes the value."""

    @nn.compact
    def __call__(self, x, train=False):
        y = nn.Dense(x.shape[-1])(x)
        return 2 * y if train else y


CONTAINERS = {
    "choice": lambda block: L.Choice([block]),
    "gated_skip": L.GatedSkip,
    "residual": L.Residual,
    "rezero": L.ReZero,
    "sequence": lambda block: L.Sequence([block]),
    "repeat": lambda block: L.Repeat(block, num_layers=2),
}


@pytest.mark.parametrize("contain", CONTAINERS.values(), ids=CONTAINERS.keys())
def test_a_remat_block_with_a_static_flag_matches_the_plain_block_in_containers(contain, key):
    x = jax.random.normal(key, (3, 4))
    plain = contain(_Doubled())
    variables = jax.tree.map(lambda p: p + 0.1, plain.init(key, x))  # ReZero's alpha != 0
    rematted = contain(nn.remat(_Doubled, static_argnums=(2,))())
    outs = {}
    for train in (False, True):
        outs[train] = rematted.apply(variables, x, train=train)
        np.testing.assert_allclose(outs[train], plain.apply(variables, x, train=train), rtol=1e-6)
    assert not np.allclose(outs[False], outs[True])  # the flag reached the block


def test_a_jit_block_whose_flag_is_traced_is_told_to_mark_it_static_with_nn_jit():
    layer = L.Sequence([nn.jit(L.DropPath)(0.5)])  # the flag goes positionally, traced
    with pytest.raises(TypeError) as error:
        layer.init(jax.random.key(0), jnp.ones((2, 3)))
    assert str(error.value) == (
        "DropPath train is traced, where it must be a Python bool (it picks the mode): "
        'mark it static where it is traced, jax.jit(model.apply, static_argnames="train"), '
        "nn.remat(Block, static_argnums=(2,)) (self, x, train), or "
        "nn.jit(Block, static_argnums=(2,)) for a block lifted with nn.jit."
    )
    fixed = L.Sequence([nn.jit(L.DropPath, static_argnums=(2,))(0.5)])
    assert fixed.apply({}, jnp.ones((2, 3))).tolist() == [[1.0] * 3] * 2


class _ScaledThenFlagged(nn.Module):
    """Takes another parameter before the flag: the flag must go by keyword."""

    @nn.compact
    def __call__(self, x, scale=1.0, train=False):
        return x * scale + 1 if train else x * scale


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (_Doubled(), ((True,), {})),
        (nn.Dropout(0.5), ((False,), {})),
        (nn.Dropout(0.5, deterministic=True), ((), {})),
        (_ScaledThenFlagged(), ((), {"train": True})),
        (lambda x, *, training: x, ((), {"training": True})),
        (nn.Dense(2), ((), {})),
    ],
)
def test_the_flag_goes_positionally_only_right_after_the_input(block, expected):
    assert train_args(block, True) == expected


def test_a_flag_after_another_parameter_reaches_the_block_by_keyword():
    layer, x = L.Sequence([_ScaledThenFlagged()]), jnp.full((1, 2), 3.0)
    np.testing.assert_array_equal(layer.apply({}, x, train=True), x + 1)
    np.testing.assert_array_equal(layer.apply({}, x), x)


@pytest.mark.parametrize(
    ("stream", "compute"), [(jnp.float32, jnp.bfloat16), (jnp.bfloat16, jnp.float32)]
)
@pytest.mark.parametrize(
    ("make", "shape", "branch"),
    [
        (lambda dtype: L.TransformerBlock(num_heads=2, dtype=dtype), (2, 5, 4), "mlp_hidden"),
        (lambda dtype: L.SqueezeExcite(dtype=dtype), (2, 5, 8), "channel_gate"),
    ],
    ids=["transformer_block", "squeeze_excite"],
)
def test_the_residual_stream_keeps_the_inputs_dtype(make, shape, branch, stream, compute, key):
    """The residual stream (the scaled input) keeps the input's dtype; the branch computes
    in the layer's dtype, cast to the stream's before it is added (multiplied)."""
    layer = make(compute)
    x = jax.random.normal(key, shape).astype(stream)
    variables = layer.init(key, x)
    out, found = px.probe(layer, variables, x, branch)
    assert out.dtype == stream
    assert found[branch].dtype == compute


@pytest.mark.parametrize("width", [4, 6])
@pytest.mark.parametrize(
    ("stream", "block"), [(jnp.float32, jnp.bfloat16), (jnp.bfloat16, jnp.float32)]
)
def test_a_residual_gives_one_dtype_whether_it_projects_or_not(width, stream, block, key):
    """With a projection (the block widening 4 features to 6) the output was the block's
    dtype (bfloat16 for a float32 input), without one what the two promote to."""
    layer, x = L.Residual(nn.Dense(width, dtype=block)), jax.random.normal(key, (2, 4), stream)
    out = layer.apply(layer.init(key, x), x)
    assert out.dtype == jnp.float32 and out.shape == (2, width)


def test_a_residual_projecting_integers_is_told_to_give_floats(key):
    """Flax's Dense said only "Dtype must be inexact: int32", naming no Residual."""
    layer, x = L.Residual(lambda h: jnp.concatenate([h, h], -1)), jnp.ones((2, 3), jnp.int32)
    with pytest.raises(TypeError) as info:
        layer.init(key, x)
    assert str(info.value) == (
        "Residual's block changed the width of its input (3 to 6), so x goes through a "
        "learned projection, which needs floats, and neither x (int32) nor the block's "
        "output (int32) is one; give x as floats (x.astype(jnp.float32)) or keep its width."
    )
    kept = L.Residual(lambda h: h + 1)  # the width kept: no projection, integers sum
    assert kept.apply({}, x).tolist() == [[3] * 3] * 2
    out = layer.apply(layer.init(key, x.astype(jnp.float32)), x.astype(jnp.float32))
    assert out.dtype == jnp.float32 and out.shape == (2, 6)
    widened = L.Residual(nn.Dense(6))  # a float output: x is projected in float32
    assert widened.apply(widened.init(key, x), x).dtype == jnp.float32
    computed = layer.copy(dtype=jnp.float32)  # projected in float32, as it was before
    out = computed.apply(computed.init(key, x), x)
    assert out.dtype == jnp.int32 and out.shape == (2, 6)


def test_a_residual_of_a_scalar_adds_and_a_block_adding_axes_to_one_is_an_error(key):
    """Both read the scalar's missing last axis (IndexError: tuple index out of range)."""
    layer, x = L.Residual(jnp.sin), jnp.asarray(0.5)
    assert float(layer.apply(layer.init(key, x), x)) == pytest.approx(0.5 + np.sin(0.5))
    message = r"keep every axis but the last of the input shape \(\), but returned \(5,\)\."
    with pytest.raises(ValueError, match=message):
        L.Residual(lambda h: jnp.ones(5)).init(key, x)


def test_a_residuals_dtype_sets_the_projections_computation_dtype_alone(key):
    layer, x = L.Residual(nn.Dense(6), dtype=jnp.bfloat16), jax.random.normal(key, (2, 4))
    variables = layer.init(key, x)
    params = variables["params"]
    projection = nn.Dense(6, use_bias=False, dtype=jnp.bfloat16)
    projected = projection.apply({"params": params["projection"]}, x)
    expected = projected.astype(jnp.float32) + nn.Dense(6).apply({"params": params["block"]}, x)
    out = layer.apply(variables, x)
    assert out.dtype == jnp.float32  # what x and the block's output promote to
    np.testing.assert_array_equal(out, expected)
    in_float32 = L.Residual(nn.Dense(6)).apply(variables, x)
    assert not np.array_equal(out, in_float32)  # the projection computed in bfloat16
    same = L.Residual(nn.Dense(4), dtype=jnp.bfloat16)  # no projection: nothing to set
    np.testing.assert_array_equal(
        same.apply(same.init(key, x), x), L.Residual(nn.Dense(4)).apply(same.init(key, x), x)
    )


@pytest.mark.parametrize("make", [L.ActivityL1, L.SqueezeExcite])
@pytest.mark.parametrize("shape", [(0, 4), (0, 3, 4)])
def test_layers_that_average_over_tokens_take_an_empty_batch(make, shape):
    """reshape(B, -1, ...) of no examples raised ZeroDivisionError 'integer modulo by zero'."""
    x = jnp.ones(shape)
    variables = make().init(jax.random.key(0), x)
    assert make().apply(variables, x).shape == shape
    assert make().apply(variables, x, mask=jnp.ones(shape[:-1], bool)).shape == shape


@pytest.mark.parametrize("mask_dtype", [jnp.bool_, jnp.bfloat16])
def test_a_masked_token_mean_of_bfloat16_values_is_summed_in_float32(mask_dtype):
    from phosjax.layers._common import token_mean

    # 3,000 tokens near 3: bfloat16 sums of them (and of their count) round by more than
    # a bfloat16 step of the mean; the unmasked mean (jnp.mean) sums in float32.
    values = 3 + 0.1 * np.random.default_rng(0).standard_normal((1, 3000, 1))
    real = jnp.ones((1, 3000), mask_dtype)
    masked = token_mean(jnp.asarray(values, jnp.bfloat16), real)
    unmasked = token_mean(jnp.asarray(values, jnp.bfloat16), None)
    assert masked.dtype == jnp.bfloat16
    assert float(masked[0]) == float(unmasked[0]) == float(jnp.bfloat16(values.mean()))
