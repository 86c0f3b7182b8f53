"""Tiny models and data for the engine tests (importable by the worker subprocesses)."""

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import phosjax as px
from phosjax.data import ArrayDataset
from phosjax.train import Cell, GridResult, HParams


class _Plain(nn.Module):
    width: int

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        return nn.Dense(3)(nn.relu(nn.Dense(self.width)(x)))


class _Rich(nn.Module):
    """BatchNorm, dropout, a knob, two weighted branches and an aux loss."""

    width: int

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        # No bias before BatchNorm: its gradient is rounding noise that Adam would amplify.
        h = nn.BatchNorm(use_running_average=not train)(nn.Dense(self.width, use_bias=False)(x))
        h = nn.Dropout(0.25, deterministic=not train)(nn.relu(h))
        gate = jax.nn.sigmoid(self.param("gate", nn.initializers.zeros, ()))
        out = jnp.zeros((x.shape[0], 3))
        for i, weight in enumerate((gate, 1 - gate)):
            with px.path_weight(self, f"branch_{i}", weight):
                branch = px.tag(self, f"pre_act_{i}", nn.Dense(3, name=f"head_{i}")(h))
                px.aux_loss(self, "l1", jnp.abs(branch).mean())
                out = out + weight * branch
        return out / px.knob(self, "T", 1.0, doc="temperature")


class Counts(nn.Module):
    """Counts its training calls in variable ``calls`` of ``collection``: a train step
    writes none but ``batch_stats``."""

    num_classes: int = 3
    collection: str = "counter"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        calls = self.variable(self.collection, "calls", jnp.zeros, ())
        if train:
            calls.value = calls.value + 1
        return nn.Dense(self.num_classes)(x)


class NormsAlways(nn.Module):
    """A BatchNorm told to use the batch's statistics whatever ``train`` says: it writes
    its running ones in an evaluation too."""

    num_classes: int = 3

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        return nn.Dense(self.num_classes)(nn.BatchNorm(use_running_average=False)(x))


@dataclasses.dataclass(frozen=True)
class Tiny:
    """A model config: ``Tiny().build()``; ``rich=True`` uses every engine feature."""

    width: int = 8
    rich: bool = False

    def build(self) -> nn.Module:
        return _Rich(self.width) if self.rich else _Plain(self.width)


@dataclasses.dataclass(frozen=True)
class Builds:
    """A model config whose build returns ``module`` (for a test's own module)."""

    module: Any

    def build(self) -> Any:
        return self.module


def toy_data(name: str = "toy", train: int = 64, test: int = 40) -> ArrayDataset:
    """Three classes from the signs of two of eight gaussian features."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(train + test, 8)).astype(np.float32)
    y = ((x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0)).astype(np.int32)
    return ArrayDataset(name, x[:train], y[:train], x[train:], y[train:], 3, (8,))


GRID = [
    Cell(Tiny(), "toy", HParams(batch_size=16, steps=4, learning_rate=lr), seed)
    for seed, lr in enumerate([1e-2, 3e-3, 1e-2, 3e-2, 1e-2])
]
"""The grid of the multi-process test (one group of five cells)."""


def save(result: GridResult, path: str) -> None:
    """Each trained cell's flattened final params and test accuracy, keyed by its index."""
    arrays = {}
    for group, state in zip(result.groups, result.states, strict=True):
        leaves = jax.tree_util.tree_leaves_with_path(jax.device_get(state.params))
        for j, cell in enumerate(group.index):
            for key, leaf in leaves:
                arrays[f"{cell}{jax.tree_util.keystr(key)}"] = leaf[j]
    for cell, accuracy in zip(result.final["cell"], result.final["test_accuracy"], strict=True):
        arrays[f"{cell}/test_accuracy"] = np.asarray(accuracy)
    np.savez(path, **arrays)


def assert_same_run(got: tuple, expected: tuple, **tol: float) -> None:
    """Two `run_group` results ``(state, GroupRun)`` agree within ``tol``: the states and
    each chunk's train and eval metrics."""
    (state, run), (reference, reference_run) = got, expected
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **tol), state, reference)
    for chunk, reference_chunk in zip(run.chunks, reference_run.chunks, strict=True):
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, **tol),
            (chunk.train, chunk.eval),
            (reference_chunk.train, reference_chunk.eval),
        )
