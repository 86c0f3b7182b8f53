"""Output values of the gating and hyper-network layers, recomputed from their definitions
in float64 numpy from the layers' own params (the table only checks shapes)."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import phosjax.core as px
from phosjax import layers as L


def _np(tree):
    return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def _dense(p, x):
    return x @ p["kernel"] + p["bias"]


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _run(layer, x):
    variables = layer.init(jax.random.key(0), x)
    out, found = px.probe(layer, variables, x, "**")
    return np.asarray(out, np.float64), _np(found), _np(variables.get("params", {}))


X = jax.random.normal(jax.random.key(1), (3, 4))


def test_glu_is_the_first_half_times_the_sigmoid_of_the_second():
    out, found, params = _run(L.GLU(5), X)
    projected = _dense(params["proj"], np.asarray(X, np.float64))
    assert projected.shape == (3, 10)
    a, b = projected[:, :5], projected[:, 5:]
    np.testing.assert_allclose(found["gate"], _sigmoid(b), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, a * _sigmoid(b), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, a * found["gate"], rtol=1e-5, atol=1e-6)


def test_glu_keeps_the_input_width_by_default():
    out, _, params = _run(L.GLU(), X)
    assert out.shape == (3, 4) and params["proj"]["kernel"].shape == (4, 8)


def test_swiglu_is_out_of_silu_gate_times_value():
    out, found, params = _run(L.SwiGLU(hidden_features=6, features=2), X)
    x = np.asarray(X, np.float64)
    pre = _dense(params["gate_proj"], x)
    gate = pre * _sigmoid(pre)  # silu
    value = _dense(params["value_proj"], x)
    assert gate.shape == value.shape == (3, 6)
    np.testing.assert_allclose(found["gate"], gate, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, _dense(params["out"], gate * value), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(2, 8), (2, 5, 8), (2, 3, 4, 8)])
def test_squeeze_excite_scales_each_channel_by_its_gate(shape):
    x = jax.random.normal(jax.random.key(2), shape) + 0.5  # nonzero channel means
    out, found, params = _run(L.SqueezeExcite(reduction=4), x)
    xs = np.asarray(x, np.float64)
    squeezed = xs.reshape(shape[0], -1, 8).mean(1)  # mean over every middle axis
    hidden = np.maximum(_dense(params["down"], squeezed), 0.0)
    assert hidden.shape == (2, 2)  # bottleneck 8 // 4
    gate = _sigmoid(_dense(params["up"], hidden))
    np.testing.assert_allclose(found["channel_gate"], gate, rtol=1e-5, atol=1e-6)
    broadcast = gate.reshape((shape[0],) + (1,) * (len(shape) - 2) + (8,))
    np.testing.assert_allclose(out, xs * broadcast, rtol=1e-5, atol=1e-6)
    assert not np.allclose(gate[0], gate[1])  # one gate per example, not shared


def test_hyper_dense_applies_the_generated_kernel_and_bias():
    out, found, params = _run(L.HyperDense(3, embedding_features=5), X)
    generated = params["embedding"] @ params["hyper"]["kernel"] + params["hyper"]["bias"]
    assert generated.shape == (4 * 3 + 3,)
    kernel = generated[:12].reshape(4, 3) / math.sqrt(4)
    bias = generated[12:]
    np.testing.assert_allclose(found["generated_kernel"], kernel, rtol=1e-5, atol=1e-6)
    x = np.asarray(X, np.float64)
    np.testing.assert_allclose(out, x @ kernel + bias, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, x @ found["generated_kernel"] + bias, rtol=1e-5, atol=1e-6)
    assert np.abs(bias).max() > 0  # the bias term is really exercised


def test_hyper_dense_kernel_follows_the_embedding():
    layer = L.HyperDense(3, embedding_features=5)
    variables = layer.init(jax.random.key(0), X)
    moved = jax.tree.map(lambda a: a, variables)
    moved["params"]["embedding"] = variables["params"]["embedding"] * 2.0
    _, before = px.probe(layer, variables, X, "generated_kernel")
    _, after = px.probe(layer, moved, X, "generated_kernel")
    hyper = _np(variables["params"]["hyper"])
    # generated = e @ W + b is affine in e: doubling e gives 2 (e @ W) + b
    e = np.asarray(variables["params"]["embedding"], np.float64)
    expected = (2 * e @ hyper["kernel"] + hyper["bias"])[:12].reshape(4, 3) / 2.0
    np.testing.assert_allclose(after["generated_kernel"], expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(after["generated_kernel"], before["generated_kernel"])


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _gelu(z):  # flax's default, the tanh approximation
    return 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z**3)))


def _attention(p, x, causal):
    qkv = np.einsum("blc,cthd->blthd", x, p["qkv"]["kernel"]) + p["qkv"]["bias"]
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    logits = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(q.shape[-1])
    if causal:
        logits = np.where(np.tril(np.ones(logits.shape[-2:], bool)), logits, -np.inf)
    weights = _softmax(logits)
    heads = np.einsum("bhqk,bkhd->bqhd", weights, v)
    return np.einsum("bqhd,hdc->bqc", heads, p["out"]["kernel"]) + p["out"]["bias"], weights


@pytest.mark.parametrize("causal", [False, True])
def test_attention_output_and_weights_match_numpy(causal):
    x = jax.random.normal(jax.random.key(2), (2, 5, 6))
    layer = L.MultiHeadSelfAttention(num_heads=3, causal=causal)
    variables = jax.tree.map(lambda a: a + 0.1, layer.init(jax.random.key(0), x))  # biases != 0
    out, found = px.probe(layer, variables, x, "attention_weights")
    expected, weights = _attention(_np(variables["params"]), np.asarray(x, np.float64), causal)
    np.testing.assert_allclose(found["attention_weights"], weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_causal_attention_outputs_ignore_later_tokens(causal):
    x = jax.random.normal(jax.random.key(2), (2, 5, 6))
    layer = L.MultiHeadSelfAttention(num_heads=3, causal=causal)
    variables = layer.init(jax.random.key(0), x)
    changed = x.at[:, -1].add(1.0)
    before, after = layer.apply(variables, x), layer.apply(variables, changed)
    assert np.array_equal(before[:, :-1], after[:, :-1]) == causal
    assert not np.allclose(before[:, -1], after[:, -1])


@pytest.mark.parametrize("width", [4, 6])
def test_residual_adds_the_block_to_the_input_projected_if_widths_differ(width):
    out, _, params = _run(L.Residual(L.GLU(width)), X)
    x = np.asarray(X, np.float64)
    projected = _dense(params["block"]["proj"], x)
    block = projected[:, :width] * _sigmoid(projected[:, width:])
    skip = x @ params["projection"]["kernel"] if width != 4 else x
    assert ("projection" in params) == (width != 4)
    np.testing.assert_allclose(out, skip + block, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("top_k", "features"), [(1, None), (2, None), (3, None), (2, 6)])
def test_moe_output_is_the_top_k_experts_weighted_by_their_router_probabilities(top_k, features):
    x = jax.random.normal(jax.random.key(2), (2, 5, 4))
    layer = L.MixtureOfExperts(num_experts=4, top_k=top_k, hidden_features=3, features=features)
    variables = layer.init(jax.random.key(0), x)
    noise = lambda a: a + 0.2 * jax.random.normal(jax.random.key(3), a.shape)  # biases != 0
    variables = {**variables, "params": jax.tree.map(noise, variables["params"])}
    out, found = px.probe(layer, variables, x, ["router_probs", "expert_load"])
    p, xs = _np(variables["params"]), np.asarray(x, np.float64)
    probs = _softmax(_dense(p["router"], xs))
    top = np.argsort(-probs, -1)[..., :top_k]
    chosen = (top[..., None] == np.arange(4)).any(-2)
    gates = np.where(chosen, probs, 0.0)  # not renormalized over the chosen experts
    hidden = _gelu(np.einsum("...c,ech->...eh", xs, p["expert_in_kernel"]) + p["expert_in_bias"])
    experts = np.einsum("...eh,ehc->...ec", hidden, p["expert_out_kernel"]) + p["expert_out_bias"]
    np.testing.assert_allclose(found["router_probs"], probs, rtol=1e-5, atol=1e-6)
    expected = np.einsum("...e,...ec->...c", gates, experts)
    assert out.shape == (2, 5, features or 4)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(found["expert_load"], chosen.reshape(-1, 4).mean(0) / top_k)
    assert (gates.sum(-1) < 1).all() == (top_k < 4)


def test_layer_scale_multiplies_each_channel_by_its_scale():
    out, found, params = _run(L.LayerScale(0.3), X)
    np.testing.assert_array_equal(params["scale"], np.full(4, np.float32(0.3)))
    np.testing.assert_allclose(out, np.asarray(X) * np.float32(0.3), rtol=1e-7)
    np.testing.assert_array_equal(found["scaled"], out)
    layer, scale = L.LayerScale(), jnp.array([1.0, -2.0, 0.5, 3.0])
    np.testing.assert_allclose(
        layer.apply({"params": {"scale": scale}}, X), np.asarray(X) * np.asarray(scale), rtol=1e-7
    )


def test_choice_mixes_a_sequential_branch_by_the_softmax_of_its_logits():
    layer = L.Choice([nn.Sequential([nn.Dense(4), nn.relu]), nn.Dense(4)])
    variables = layer.init(jax.random.key(0), X)
    variables["params"]["gate_logits"] = jnp.array([0.7, -0.4])
    out = np.asarray(layer.apply(variables, X, train=True), np.float64)
    p, x = _np(variables["params"]), np.asarray(X, np.float64)
    w = _softmax(np.array([0.7, -0.4]))
    branches = [np.maximum(_dense(p["branches_0"]["layers_0"], x), 0), _dense(p["branches_1"], x)]
    assert (branches[0] == 0).any()  # the relu really clips
    np.testing.assert_allclose(out, w[0] * branches[0] + w[1] * branches[1], rtol=1e-5, atol=1e-6)


def test_per_example_choice_weights_are_the_softmax_of_the_gate_on_the_mean_input():
    # the gate reads the input averaged over its middle axes: one weight vector per example
    x = jax.random.normal(jax.random.key(2), (3, 5, 4)) + jnp.arange(3.0)[:, None, None]
    layer = L.Choice([nn.Dense(4), L.GLU()], per_example=True)
    variables = layer.init(jax.random.key(0), x)
    kernel = jnp.array([[0.5, -0.3], [0.2, 0.1], [-0.4, 0.6], [0.3, 0.2]])
    variables["params"]["gate"] = {"kernel": kernel, "bias": jnp.array([0.1, -0.2])}
    (out, state), found = px.probe(layer, variables, x, "weights", mutable=[px.PATH_WEIGHTS])
    p, xs = _np(variables["params"]), np.asarray(x, np.float64)
    w = _softmax(_dense(p["gate"], xs.mean(1)))  # (3, 2)
    assert not np.allclose(w[0], w[2])  # the examples really differ
    np.testing.assert_allclose(found["weights"], w, rtol=1e-5, atol=1e-6)
    projected = _dense(p["branches_1"]["proj"], xs)
    branches = [_dense(p["branches_0"], xs), projected[..., :4] * _sigmoid(projected[..., 4:])]
    expected = w[:, 0, None, None] * branches[0] + w[:, 1, None, None] * branches[1]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    for i in range(2):  # the recorded path weight is the batch mean
        np.testing.assert_allclose(state[px.PATH_WEIGHTS][f"branch_{i}"][0], w[:, i].mean(), 1e-5)


def _layer_norm(p, x, eps=1e-6):  # flax's LayerNorm over the last axis
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * p["scale"] + p["bias"]


@pytest.mark.parametrize("offset", [0.0, 1000.0])
def test_transformer_block_is_two_pre_norm_residual_branches(offset):
    """With features sharing a large offset, Flax's default LayerNorm variance (the mean
    square less the squared mean) cancelled in float32: the output was off by 244."""
    x = jax.random.normal(jax.random.key(2), (2, 5, 6)) + offset
    layer = L.TransformerBlock(num_heads=3, mlp_features=10)
    variables = jax.tree.map(lambda a: a + 0.1, layer.init(jax.random.key(0), x))  # biases != 0
    out, found = px.probe(layer, variables, x, "mlp_hidden")
    p, xs = _np(variables["params"]), np.asarray(x, np.float64)
    attended, _ = _attention(p["attention"], _layer_norm(p["attention_norm"], xs), False)
    mid = xs + attended
    hidden = _gelu(_dense(p["mlp_in"], _layer_norm(p["mlp_norm"], mid)))
    rounding = 1e-6 * offset  # float32 spaces numbers near 1000 by 6e-5
    np.testing.assert_allclose(found["mlp_hidden"], hidden, rtol=1e-4, atol=1e-5 + rounding)
    np.testing.assert_allclose(out, mid + _dense(p["mlp_out"], hidden), rtol=1e-4, atol=1e-4)


def test_moe_balance_loss_is_the_load_times_the_mean_probability_summed_over_experts():
    x = jax.random.normal(jax.random.key(2), (2, 5, 4))
    layer = L.MixtureOfExperts(num_experts=4, top_k=2, hidden_features=3)
    variables = layer.init(jax.random.key(0), x)
    router = variables["params"]["router"]
    router["kernel"] = 3.0 * jax.random.normal(jax.random.key(3), router["kernel"].shape)
    (_, state), found = px.probe(layer, variables, x, "**", mutable=[px.AUX_LOSS])
    probs = found["router_probs"].reshape(-1, 4)
    top = np.argsort(-probs, -1)[:, :2]
    load = (top[..., None] == np.arange(4)).any(-2).mean(0) / 2
    balance = 4 * np.sum(load * probs.mean(0))
    assert not np.allclose(probs.mean(0), probs.max(0))  # routing is not uniform
    np.testing.assert_allclose(found["balance"], balance, rtol=1e-5)
    np.testing.assert_allclose(state[px.AUX_LOSS]["balance"][0], 0.01 * balance, rtol=1e-5)


def test_moe_routes_by_logit_where_saturated_router_probabilities_tie_at_zero():
    """Logits 300, 0, 150, -300 give probabilities 1, 0, 0, 0 in float32: the second slot
    of top_k=2 went to expert 1 (the lowest index of the tie), not to expert 2 (logit
    150), so the load and the balance loss counted the wrong expert."""
    layer = L.MixtureOfExperts(num_experts=4, top_k=2, hidden_features=3)
    x = jnp.array([[1.0, 0.0], [0.0, 1.0]])  # token 1's logits are token 0's reversed
    variables = layer.init(jax.random.key(0), x)
    logits = jnp.array([[300.0, 0.0, 150.0, -300.0], [-300.0, 150.0, 0.0, 300.0]])
    variables["params"]["router"] = {"kernel": logits, "bias": jnp.zeros(4)}
    _, found = px.probe(layer, variables, x, ["router_probs", "expert_load", "balance"])
    np.testing.assert_array_equal(found["router_probs"], [[1, 0, 0, 0], [0, 0, 0, 1]])
    np.testing.assert_array_equal(found["expert_load"], [0.25, 0.25, 0.25, 0.25])
    np.testing.assert_allclose(found["balance"], 1.0)
