"""Path weights seen from a branch compiled apart with `nn.jit`: an error, never stale."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

import phosjax as px


class Loss(nn.Module):
    """Raises an aux loss of 1 (so the recorded loss is the path weight)."""

    @nn.compact
    def __call__(self, x):
        px.aux_loss(self, "one", jnp.ones(()))
        return x


class Gated(nn.Module):
    """Runs ``branch`` inside a path weight ``sigmoid(logit)``, ``logit`` a param."""

    branch: nn.Module

    @nn.compact
    def __call__(self, x):
        logit = self.param("logit", nn.initializers.zeros, ())
        with px.path_weight(self, "branch", nn.sigmoid(logit)):
            return self.branch(x)


def _loss(model: nn.Module, logit: float) -> float:
    x = jnp.ones((2, 3))
    variables = model.init(jax.random.key(0), x)
    variables = {**variables, "params": {**variables["params"], "logit": jnp.asarray(logit)}}
    _, state = model.apply(variables, x, mutable=[px.AUX_LOSS])
    return float(px.aux_total(state.get(px.AUX_LOSS, {}))[0])


def test_a_branch_under_nn_jit_cannot_read_a_path_weight_opened_outside():
    # nn.jit reuses its first trace: the weight of the first call would be baked in.
    model = Gated(nn.jit(Loss)())
    with pytest.raises(ValueError, match=r"'branch' runs under nn.jit inside path_weight 'branch'"):
        _loss(model, 2.0)


def test_nested_path_weights_under_nn_jit_are_an_error_too():
    model = Gated(nn.jit(Gated)(Loss()))
    with pytest.raises(ValueError, match=r"runs under nn\.jit inside path_weight"):
        _loss(model, 2.0)


def test_nn_jit_around_the_owner_of_the_path_weight_follows_the_weight():
    model = nn.jit(Gated)(Loss())
    assert _loss(model, 0.0) == pytest.approx(0.5)
    assert _loss(model, 2.0) == pytest.approx(float(jax.nn.sigmoid(2.0)), rel=1e-6)


def test_a_branch_under_nn_jit_that_reads_no_path_weight_is_fine():
    model = Gated(nn.jit(nn.Dense)(3))
    assert _loss(model, 2.0) == 0.0
