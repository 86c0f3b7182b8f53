"""Output values of the gating and hyper-network layers, recomputed from their definitions
in float64 numpy from the layers' own params (the table only checks shapes)."""

import math

import jax
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
