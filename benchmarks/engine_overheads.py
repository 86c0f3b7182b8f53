"""What the engine spends around the model's own work, per step and per call.

Run: ``python benchmarks/engine_overheads.py``

Prints, measured in this one run on the current backend:

* per-step cost of drawing a batch's indices for train splits of 256, 4,000 and 60,000
  examples: `phosjax.data.batch_indices` (only the batch's positions of the epoch's
  permutation) against slicing a full ``jax.random.permutation`` (a sort), each timed
  over 500 steps inside one `jax.lax.scan`;
* the wall time of one `run_group` call of ONE step of a one-cell MLP group, i.e. what a
  call costs besides its steps (placing state and data, dispatch, the metrics transfer);
* the time `train_grid`'s check before any group trains spends per group on a grid run
  again in the session (its train steps traced once already: `_check_group`).
"""

import argparse
import time


def _per_step(body, steps: int = 500) -> float:
    import jax
    import jax.numpy as jnp

    def loop(carry):
        return jax.lax.scan(lambda c, i: (c + body(i), None), carry, jnp.arange(steps))[0]

    run = jax.jit(loop)
    jax.block_until_ready(run(jnp.int32(0)))
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        jax.block_until_ready(run(jnp.int32(0)))
        best = min(best, time.perf_counter() - start)
    return best / steps


def batch_draws() -> None:
    import jax

    from phosjax.data import batch_indices

    key, batch = jax.random.key(0), 128
    print(f"{'examples':>9} {'batch_indices us/step':>22} {'permutation us/step':>20} {'ratio':>7}")
    for n in (256, 4_000, 60_000):

        def ours(i, n=n):
            return batch_indices(key, i, n, batch).sum()

        def permuted(i, n=n):
            epoch, position = divmod(i, n // batch)
            order = jax.random.permutation(jax.random.fold_in(key, epoch), n)
            return jax.lax.dynamic_slice_in_dim(order, position * batch, batch).sum()

        a, b = _per_step(ours) * 1e6, _per_step(permuted) * 1e6
        print(f"{n:9d} {a:22.1f} {b:20.1f} {b / a:7.0f}")


def run_group_call() -> None:
    import jax

    from phosjax.data import random_dataset
    from phosjax.models import ModelConfig
    from phosjax.train import Cell, HParams, init_group, plan_groups, run_group

    data = random_dataset("synthetic", (40,), 10, num_train=4000, num_test=16)
    model = ModelConfig("mlp", 10, (40,), depth=1, width=100)
    [group] = plan_groups([Cell(model, data.name, HParams(batch_size=128, steps=10_000), 0)])
    box = [init_group(group, data)]

    def call() -> None:
        step = int(jax.device_get(box[0].step)[0])
        box[0] = run_group(group, box[0], data, step + 1, strategy="map", chunk_steps=1)[0]
        jax.block_until_ready(box[0])

    for _ in range(3):
        call()
    start = time.perf_counter()
    for _ in range(100):
        call()
    print(f"run_group call of one step (one-cell mlp): {(time.perf_counter() - start) * 10:.2f} ms")


def grid_check() -> None:
    from phosjax.data import random_dataset
    from phosjax.models import ModelConfig
    from phosjax.train import Cell, HParams, plan_groups
    from phosjax.train._grid import _check_group

    data = random_dataset("synthetic", (40,), 10, num_train=4000, num_test=16)
    hparams = HParams(batch_size=128, steps=100)
    models = [ModelConfig("mlp", 10, (40,), depth=1, width=8 * (i + 1)) for i in range(20)]
    groups = plan_groups([Cell(model, data.name, hparams, 0) for model in models])
    for group in groups:  # the grid's first run: each group's train step traced
        _check_group(group, data)
    start = time.perf_counter()
    for group in groups:
        _check_group(group, data)
    per_group = (time.perf_counter() - start) / len(groups) * 1e3
    print(f"train_grid's check of a group run again ({len(groups)} mlp groups): {per_group:.2f} ms")


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # no options: --help
    import jax

    print(f"backend={jax.default_backend()} device={jax.devices()[0].device_kind}")
    batch_draws()
    run_group_call()
    grid_check()


if __name__ == "__main__":
    main()
