"""One process of a multi-process grid: ``python -m tests.train.worker PORT ID COUNT OUT``.

Joins ``jax.distributed`` on CPU (two fake devices per process), trains its share of
`GRID` with `train_grid` and saves each of its cells' final params and test accuracy.
"""

import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
os.environ["JAX_PLATFORMS"] = "cpu"

import jax
import numpy as np

from phosjax.train import Cell, HParams, train_grid
from tests.train.tiny import Tiny, toy_data

ADAM = HParams(batch_size=16, steps=4, learning_rate=1e-2)
SGD = HParams(optimizer="sgd", batch_size=16, steps=4, learning_rate=0.1)
GRID = [Cell(Tiny(), "toy", hp, seed) for seed in range(3) for hp in (ADAM, SGD)][:5]


def save(result, path: str) -> None:
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


if __name__ == "__main__":
    port, process_id, count, out = sys.argv[1:]
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}",
        num_processes=int(count),
        process_id=int(process_id),
    )
    assert len(jax.local_devices()) == 2 and jax.process_count() == int(count)
    save(train_grid(GRID, datasets={"toy": toy_data()}, strategy="vmap"), out)
    jax.distributed.shutdown()
