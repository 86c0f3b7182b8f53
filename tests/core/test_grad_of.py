"""grad_of against a hand-written closed form, and inside a jitted optax train step."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import phosjax as px


class TwoLayer(nn.Module):
    """y = W2 relu(W1 x + b1) + b2, with the hidden pre-activation tagged."""

    @nn.compact
    def __call__(self, x):
        h = px.tag(self, "pre_act", nn.Dense(5, name="hidden")(x))
        return nn.Dense(3, name="out")(nn.relu(h))


X = jax.random.normal(jax.random.key(1), (4, 2))
Y = jax.random.normal(jax.random.key(2), (4, 3))


def loss_fn(y_hat):
    return 0.5 * jnp.sum((y_hat - Y) ** 2)


def test_grad_of_matches_closed_form():
    model = TwoLayer()
    variables = model.init(jax.random.key(0), X)
    p = variables["params"]
    h = X @ p["hidden"]["kernel"] + p["hidden"]["bias"]
    y_hat = jnp.maximum(h, 0) @ p["out"]["kernel"] + p["out"]["bias"]
    expected = ((y_hat - Y) @ p["out"]["kernel"].T) * (h > 0)  # dL/dh
    value, grads = px.grad_of(loss_fn, model, variables, X, wrt="pre_act")
    np.testing.assert_allclose(grads["pre_act"], expected, rtol=1e-5, atol=1e-6)
    assert float(value) == pytest.approx(float(loss_fn(y_hat)), rel=1e-6)


def test_grad_of_matches_finite_differences():
    model = TwoLayer()
    variables = model.init(jax.random.key(0), X)
    _, grads = px.grad_of(loss_fn, model, variables, X, wrt="pre_act")
    _, found = px.probe(model, variables, X, "pre_act")
    h = found["pre_act"]
    at = jax.jit(lambda h: loss_fn(px.inject(model, variables, X, {"pre_act": h})))
    eps = 1e-2
    for index in [(0, 0), (1, 3), (3, 4)]:
        bump = jnp.zeros_like(h).at[index].set(eps)
        numeric = (at(h + bump) - at(h - bump)) / (2 * eps)
        assert float(grads["pre_act"][index]) == pytest.approx(float(numeric), rel=1e-2, abs=1e-4)


def test_grad_of_with_aux_output():
    model = TwoLayer()
    variables = model.init(jax.random.key(0), X)
    (value, y_hat), _ = px.grad_of(
        lambda y: (loss_fn(y), y), model, variables, X, wrt="pre_act", has_aux=True
    )
    np.testing.assert_allclose(y_hat, model.apply(variables, X))
    assert float(value) == pytest.approx(float(loss_fn(y_hat)))


def test_gradients_to_tags_and_params_in_one_jitted_train_step():
    """A train step that uses the tag gradient (here: its norm as a metric) alongside params."""
    model = TwoLayer()
    variables = model.init(jax.random.key(0), X)
    optimizer = optax.sgd(0.05)
    perturbation = px.perturbations(model, variables, X, "pre_act")

    @jax.jit
    def step(params, opt_state):
        def loss(params, perturbation):
            out = model.apply({"params": params, "perturbations": perturbation}, X)
            return loss_fn(out)

        value, (g_params, g_tags) = jax.value_and_grad(loss, argnums=(0, 1))(params, perturbation)
        updates, opt_state = optimizer.update(g_params, opt_state)
        return optax.apply_updates(params, updates), opt_state, value, g_tags["pre_act"]

    params, opt_state = variables["params"], optimizer.init(variables["params"])
    _, expected = px.grad_of(loss_fn, model, variables, X, wrt="pre_act")
    losses = []
    for i in range(20):
        if i == 0:
            _, _, _, g_tag = step(params, opt_state)
            np.testing.assert_allclose(g_tag, expected["pre_act"], rtol=1e-5, atol=1e-7)
        params, opt_state, value, _ = step(params, opt_state)
        losses.append(float(value))
    assert losses[-1] < 0.5 * losses[0]
