"""Every registered model trains under the strategies that lift its step over the cells,
with the numbers of ``"sequential"`` (one cell at a time, nothing lifted).

The zoo's ``gru`` once failed to trace under ``"vmap"`` and ``"map"`` (`jax.shard_map`'s
varying-axes check) and no test trained every model under every strategy. Here each model
of the zoo (`zoo_models`, so a new one is covered too), shrunk to one block of at most 8
channels, trains two cells for two steps under ``"vmap"`` and ``"map"`` (the cells sharded
over two of the tests' four devices) and, when its step has a convolution, under
``"vmap_matmul"`` and ``"map_matmul"``. ``"stepwise"`` lifts nothing (it calls the
one-cell step cell after cell, as ``"sequential"`` does): ``test_strategies.py`` checks it.
Each cell has its own learning rate, label smoothing and activation-regularizer strength,
and the evaluation is lifted too.

SGD, not Adam: Adam divides each gradient by its own size, so a param whose gradient is
only rounding noise moves ~lr per step in a direction the summation order decides, and
strategies sum in other orders. The zoo's ``transformer`` has one: the key bias of its
attention (``qkv/bias[1]``) shifts every logit of a query alike, which the softmax ignores.
"""

import functools

import jax
import jax.numpy as jnp
import pytest

from phosjax.data import random_dataset
from phosjax.models import IMAGE, ModelConfig, model_spec
from phosjax.train import Cell, HParams, Regularizer, init_group, plan_groups, run_group
from phosjax.train._matmul_convs import has_convs
from tests.models.zoo import zoo_models
from tests.train.tiny import assert_same_run

TOL = {"rtol": 2e-5, "atol": 2e-6}


def small_config(name: str) -> ModelConfig:
    """``name`` with at most one block of at most 8 channels per stage, on an image if the
    model takes images, else on a vector of 8 (which a sequence model views as a sequence)."""
    spec = model_spec(name)
    shape = (6, 6, 1) if IMAGE in (spec.input_kinds or ()) else (8,)
    width = tuple(min(w, 8) for w in spec.width)
    return ModelConfig(name, 3, shape, depth=min(spec.depth, 1), width=width)


def hparams(learning_rate: float, smoothing: float, strength: float) -> HParams:
    activations = Regularizer("**", "l1", strength, on="activations")
    return HParams(
        optimizer="sgd",
        learning_rate=learning_rate,
        batch_size=8,
        steps=2,
        label_smoothing=smoothing,
        regularizers=(activations,),
    )


@functools.cache
def data(shape: tuple[int, ...]):
    return random_dataset(f"zoo{len(shape)}", shape, 3, num_train=32, num_test=16)


@pytest.mark.parametrize("name", zoo_models())
def test_every_model_trains_alike_under_every_strategy(name):
    config = small_config(name)
    dataset = data(config.input_shape)
    cells = [
        Cell(config, dataset.name, hparams(0.1, 0.0, 0.01), seed=0),
        Cell(config, dataset.name, hparams(0.03, 0.1, 0.0), seed=1),
    ]
    [group] = plan_groups(cells)
    x = jnp.zeros((1, *config.input_shape))
    strategies = ["vmap", "map"]
    if has_convs(functools.partial(config.build().init, jax.random.key(0)), x):
        strategies += ["vmap_matmul", "map_matmul"]
    expected = run_group(group, init_group(group, dataset), dataset, strategy="sequential")
    for strategy in strategies:
        got = run_group(group, init_group(group, dataset), dataset, strategy=strategy)
        assert got[1].strategy == strategy
        assert_same_run(got, expected, **TOL)
