"""The MorphNet regularizer in the engine: its strength varies per cell of one group."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phosjax.morph import alive_channels, channel_groups, morph_regularizer
from phosjax.train import Cell, HParams, Regularizer, init_group, plan_groups, run_group
from tests.train.tiny import Tiny


def cell(regularizers: tuple[Regularizer, ...]) -> Cell:
    hp = HParams(batch_size=16, steps=40, learning_rate=3e-2, regularizers=regularizers)
    return Cell(Tiny(), "toy", hp, seed=0)


def test_morph_strength_per_cell_prunes_and_zero_equals_no_regularizer(toy):
    cells = [cell((Regularizer("**", "morph", s),)) for s in (0.0, 3.0)] + [cell(())]
    regularized, plain = plan_groups(cells)
    assert regularized.index == (0, 1)  # both strengths share one compiled step
    one = jax.devices()[:1]
    state, run = run_group(
        regularized, init_group(regularized, toy), toy, strategy="vmap", devices=one
    )
    reference, _ = run_group(plain, init_group(plain, toy), toy, strategy="vmap", devices=one)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a[0], b[0], rtol=2e-5, atol=2e-6),
        (state.params, state.opt_state),
        (reference.params, reference.opt_state),
    )

    model, x = Tiny().build(), jnp.zeros((2, 8))
    groups = channel_groups(model, model.init(jax.random.key(0), x), x)
    penalty = morph_regularizer(groups)
    alive, costs = [], []
    for i in range(2):
        params = {"params": jax.tree.map(lambda a, i=i: a[i], state.params)}
        alive.append(int(alive_channels(groups, params, threshold=0.05)["Dense_1"].sum()))  # hidden
        costs.append(float(penalty(params)))
    assert alive[0] == 8 and alive[1] < 8
    assert costs[1] < costs[0] / 2
    train = run.chunks[-1].train
    penalties = train["loss"][:, -1] - train["task_loss"][:, -1]
    assert penalties[0] == 0 and penalties[1] > 0


def test_bad_morph_regularizers_are_clear_errors():
    with pytest.raises(ValueError, match=r"cost 'bytes': expected one of \('params', 'flops'"):
        Regularizer("**", "morph", cost="bytes")
    with pytest.raises(ValueError, match="needs on='params'"):
        Regularizer("**", "morph", on="activations")
    with pytest.raises(ValueError, match="source 'gama'"):
        Regularizer("**", "morph", source="gama")
