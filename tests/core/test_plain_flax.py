"""A plain flax.linen model using only px.tag and px.aux_loss, trained by its own optax loop."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import serialization

import phosjax as px
from phosjax.core._record import Calls


class PlainMLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = px.tag(self, "hidden", nn.Dense(8)(x))
        px.aux_loss(self, "sparsity", 0.01 * jnp.mean(jnp.abs(h)))
        return nn.Dense(1)(nn.tanh(h))


def test_plain_flax_training_loop_gets_tag_gradients_and_aux_loss():
    x = jax.random.normal(jax.random.key(1), (32, 3))
    y = jnp.sum(x, axis=1, keepdims=True)
    model = PlainMLP()
    variables = model.init(jax.random.key(0), x)
    assert set(variables) == {"params"}
    # Flax's own perturbation mechanism: zeros in "perturbations" at the tag's path.
    zeros = {"hidden": jnp.zeros((32, 8))}
    tx = optax.adam(0.03)
    opt_state = tx.init(variables["params"])

    def loss_fn(params, perturbations):
        out, state = model.apply(
            {"params": params, "perturbations": perturbations}, x, mutable=["aux_loss"]
        )
        aux = sum(jnp.sum(v) for v in jax.tree.leaves(state["aux_loss"]))
        return jnp.mean((out - y) ** 2) + aux, aux

    @jax.jit
    def step(params, opt_state):
        (loss, aux), (g_params, g_hidden) = jax.value_and_grad(
            loss_fn, argnums=(0, 1), has_aux=True
        )(params, zeros)
        updates, opt_state = tx.update(g_params, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss, aux, g_hidden

    params = variables["params"]
    first = None
    for _ in range(60):
        params, opt_state, loss, aux, g_hidden = step(params, opt_state)
        first = float(loss) if first is None else first
    assert float(loss) < 0.2 * first
    assert 0 < float(aux) < 0.1
    assert g_hidden["hidden"].shape == (32, 8) and float(jnp.abs(g_hidden["hidden"]).sum()) > 0
    # The same gradient through phosjax's own transform.
    _, grads = px.grad_of(
        lambda out: jnp.mean((out - y) ** 2), model, {"params": params}, x, wrt="hidden"
    )
    _, (_, g_plain) = jax.value_and_grad(
        lambda p, z: jnp.mean((model.apply({"params": p, "perturbations": z}, x) - y) ** 2),
        argnums=(0, 1),
    )(params, zeros)
    np.testing.assert_allclose(grads["hidden"], g_plain["hidden"], rtol=1e-6)


class SowsBeside(nn.Module):
    @nn.compact
    def __call__(self, x):
        self.sow("intermediates", "sown", x)
        return px.tag(self, "tagged", 2 * x)


def test_a_record_has_the_key_paths_of_flax_s_own_sow():
    # a tag's record was keyed '<flat index 0>', a sown one [0]
    _, state = SowsBeside().apply({}, jnp.ones(2), mutable=["intermediates"])
    keys = [jax.tree_util.keystr(key) for key, _ in jax.tree.leaves_with_path(state)]
    assert keys == ["['intermediates']['sown'][0]", "['intermediates']['tagged'][0]"]


def test_a_state_of_records_round_trips_through_flax_serialization():
    # msgpack refused it: "can not serialize 'Calls' object"
    _, state = SowsBeside().apply({}, jnp.ones(2), mutable=["intermediates"])
    assert list(serialization.to_state_dict(state)["intermediates"]["tagged"]) == ["0"]
    restored = serialization.from_bytes(state, serialization.to_bytes(state))
    tagged = restored["intermediates"]["tagged"]
    assert type(tagged) is type(state["intermediates"]["tagged"]) and tagged.ndims == ((1,),)
    np.testing.assert_array_equal(tagged[0], [2.0, 2.0])
    with pytest.raises(ValueError, match=r"of 1 call\(s\), from a state dict of 2 item"):
        serialization.from_state_dict(tagged, {"0": tagged[0], "1": tagged[0]})


def test_a_record_that_cannot_be_restored_is_named_by_its_path_in_the_state():
    # it named no path, where Flax's refusal of a tuple (a sown record) names its own
    _, state = SowsBeside().apply({}, jnp.ones(2), mutable=["intermediates"])
    two = {"0": jnp.ones(2), "1": jnp.ones(2)}
    with pytest.raises(
        ValueError, match=r"^Cannot restore the record at \./intermediates/tagged, "
    ):
        serialization.from_state_dict(state, {"intermediates": {"sown": {"0": 0}, "tagged": two}})
    calls = Calls([[jnp.ones(2)]], ((1,),))  # a call that recorded a list
    with pytest.raises(ValueError, match=r"got 1 and 2 at path \./tagged/0$"):  # in an item
        serialization.from_state_dict({"tagged": calls}, {"tagged": {"0": two}})


def test_a_record_restored_from_keys_other_than_a_tuple_s_is_refused_naming_them():
    # it raised a bare KeyError: '0'
    _, state = SowsBeside().apply({}, jnp.ones(2), mutable=["intermediates"])
    wrong = {"intermediates": {"sown": {"0": 0}, "tagged": {"x": jnp.ones(2)}}}
    with pytest.raises(ValueError, match=r"1 item\(s\) \(keys \['x'\]\): .* keyed \['0'\]\.$"):
        serialization.from_state_dict(state, wrong)
