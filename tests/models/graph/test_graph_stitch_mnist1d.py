"""Stitching two CNNs trained on MNIST-1D with different seeds (Bansal et al. 2021).

Run with ``-s`` to print the accuracies that docs/graph.md quotes.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
import pytest

import phosjax.data
from phosjax.models.graph import GraphModel, stitch, train_only

WIDTH, STEPS, ADAPTER_STEPS, BATCH = 16, 400, 100, 128


def cnn() -> GraphModel:
    return GraphModel(
        {
            "channels": lambda x: x[..., None],
            "conv1": nn.Conv(WIDTH, (5,), strides=(2,)),
            "act1": nn.relu,
            "conv2": nn.Conv(WIDTH, (3,), strides=(2,)),
            "act2": nn.relu,
            "conv3": nn.Conv(WIDTH, (3,)),
            "act3": nn.relu,
            "flat": lambda h: h.reshape(h.shape[0], -1),
            "logits": nn.Dense(10),
        }
    )


def train(model, params, optimizer, steps, key, x, y, output):
    """A small local optax loop (the grid engine is `phosjax.train`)."""

    def loss(params, xb, yb):
        logits = model.apply({"params": params}, xb, outputs=output)[output]
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    def step(carry, key):
        params, state = carry
        batch = jax.random.randint(key, (BATCH,), 0, x.shape[0])
        grads = jax.grad(loss)(params, x[batch], y[batch])
        updates, state = optimizer.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), None

    carry = (params, optimizer.init(params))
    (params, _), _ = jax.lax.scan(step, carry, jax.random.split(key, steps))
    return params


def unstack(tree):
    """The trees along the leading axis of every leaf."""
    return [jax.tree.map(lambda leaf, i=i: leaf[i], tree) for i in range(2)]


def accuracy(model, variables, x, y, output):
    return float((model.apply(variables, x, outputs=output)[output].argmax(-1) == y).mean())


@pytest.mark.slow
@pytest.mark.optimized
def test_stitched_cnns_match_the_originals(data_dir, key):
    data = phosjax.data.load("mnist1d", data_dir=data_dir)
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    x_test, y_test = jnp.asarray(data.x_test), jnp.asarray(data.y_test)
    model = cnn()
    keys = jax.random.split(key, 2)
    params = jax.vmap(lambda k: model.init(k, x[:1])["params"])(keys)
    fit = jax.jit(
        jax.vmap(lambda p, k: train(model, p, optax.adam(1e-2), STEPS, k, x, y, "logits"))
    )
    params = fit(params, jax.random.split(jax.random.fold_in(key, 1), 2))
    vars_a, vars_b = ({"params": one} for one in unstack(params))
    acc_a = accuracy(model, vars_a, x_test, y_test, "logits")
    acc_b = accuracy(model, vars_b, x_test, y_test, "logits")
    weaker = min(acc_a, acc_b)
    assert weaker > 0.75  # both learned (chance: 0.1)

    # a's act1 -> b's conv1, whose ReLU then applies: the adapter is fitted to b's
    # pre-activations, which loses less than fitting b's act1 (a ReLU's zeros).
    cut = ("act1", "conv1")
    stitched, variables = stitch(model, vars_a, cut[0], model, vars_b, cut[1], x=x[:1000])
    acc_lstsq = accuracy(stitched, variables, x_test, y_test, "b/logits")
    adapter = nn.Conv(WIDTH, (1,))
    adapter_key, tuning_key = (jax.random.fold_in(key, i) for i in (2, 3))  # not `keys`, the inits'
    randomly = stitch(
        model, vars_a, cut[0], model, vars_b, cut[1], adapter, x=x[:1], key=adapter_key
    )
    acc_random = accuracy(*randomly, x_test, y_test, "b/logits")
    optimizer = train_only(optax.adam(1e-2), "adapter/**")
    tuned = jax.jit(
        lambda p: train(stitched, p, optimizer, ADAPTER_STEPS, tuning_key, x, y, "b/logits")
    )(variables["params"])
    acc_tuned = accuracy(stitched, {"params": tuned}, x_test, y_test, "b/logits")
    frozen = {k: v for k, v in tuned.items() if k != "adapter"}
    assert jax.tree.all(
        jax.tree.map(jnp.array_equal, frozen, {k: variables["params"][k] for k in frozen})
    )
    print(
        f"\nMNIST-1D test accuracy: a {acc_a:.3f}, b {acc_b:.3f}, stitched a/act1 -> b/conv1 "
        f"with a random adapter {acc_random:.3f}, least squares {acc_lstsq:.3f}, "
        f"after {ADAPTER_STEPS} adapter steps {acc_tuned:.3f}"
    )
    assert acc_random < 0.3  # the adapter matters
    # least squares recovers most of what a random adapter loses (at least 85%)
    assert acc_lstsq - acc_random > 0.85 * (weaker - acc_random)
    assert acc_tuned > weaker - 0.05
