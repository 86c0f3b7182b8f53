"""What parts of the engine's train step cost: a one-cell MLP, 100 steps per scan.

Run: ``python benchmarks/engine_step_parts.py``

Times, in this one run on the current backend, chunks of 100 steps (one `jax.lax.scan`
each, one cell, batch 128 from 4,000 synthetic MNIST-1D-shaped examples), each run as
`run_group` runs it (`Executor.run_steps`, strategies ``map`` and ``vmap``), of:

* ``engine``: the step as `run_group` runs it: unguarded, the chunk's batch indices drawn
  and its examples gathered before the scan (`TrainStep.batches`);
* ``drawn in each step``: the same, each step drawing and gathering its own batch inside
  the scan body;
* ``guarded``: the step that freezes a diverged cell (``make_train_step(guard=True)``);
* ``bare``: the speed bench's plain Adam step on one fixed batch, no metrics.

The variants take turns over the rounds; it prints µs per step (best and median) and
each one's best over the engine's.
"""

import argparse

from _rounds import print_table, time_rounds

STEPS, ROUNDS = 100, 30


def variants() -> dict:
    """name -> a call that runs one chunk."""
    import functools

    import jax

    from phosjax.bench._speed_config import SpeedConfig
    from phosjax.bench._speed_methods import setup_model
    from phosjax.data import random_dataset
    from phosjax.train import Cell, HParams, device_arrays, init_group, make_train_step, plan_groups
    from phosjax.train._strategy import Executor

    data = random_dataset("synthetic", (40,), 10, num_train=4000, num_test=100)
    bench = setup_model("mlp", SpeedConfig(models=("mlp",), sizes=(1,), steps=STEPS))
    hp = HParams(batch_size=128, steps=10 * STEPS)
    [group] = plan_groups([Cell(bench.config, data.name, hp, 0)])
    model = group.model.build()
    steps = {
        "engine": lambda: make_train_step(model, hp, guard=False),
        "drawn in each step": lambda: lambda s, a: make_train_step(model, hp, guard=False)(s, a),
        "guarded": lambda: make_train_step(model, hp),
    }
    calls = {}
    for strategy in ("map", "vmap"):
        executor = Executor(strategy, 1)
        state = executor.put_state(init_group(group, data))
        arrays = executor.put_data(device_arrays(data))
        for name, make in steps.items():
            run = functools.partial(
                executor.run_steps, name, make, state, arrays, STEPS, donate=False
            )
            calls[f"{name} ({strategy})"] = run
    fixed = jax.device_put((data.x_train[:128], data.y_train[:128]))
    bare = jax.jit(
        lambda s: jax.lax.scan(lambda c, _: (bench.step(c, *fixed), None), s, None, STEPS)
    )
    calls["bare"] = functools.partial(bare, jax.device_put(bench.states(1)[0]))
    return calls


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # no options: --help
    print_table(time_rounds(variants(), ROUNDS, STEPS), ["engine (map)"])


if __name__ == "__main__":
    main()
