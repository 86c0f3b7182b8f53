"""What a `run_group` call of a whole chunk costs besides the chunk's program.

Run: ``python benchmarks/run_group_overhead.py [--model mlp] [--steps 100] [--rounds 40]``

On the speed bench's model (`phosjax.bench._speed_config.MODELS`, one cell, ``map``, its
synthetic data) it times, interleaved, best of ``--rounds``: one `run_group` call of
``--steps`` steps (what the speed bench's ``engine`` times), the same call with
`check_state` skipped, and the chunk's program alone (`Executor.run_steps`) with its
metrics fetched, with and without the optimizer-state check `run_group` runs after it.
"""

import argparse
import time

import jax
from _rounds import add_model, add_rounds

import phosjax.train._run as run_module
from phosjax.bench._speed_config import MODELS
from phosjax.bench._speed_methods import synthetic_data
from phosjax.train import Cell, HParams, init_group, make_train_step, plan_groups, run_group
from phosjax.train._run import OPTIMIZER_STATE_FINITE
from phosjax.train._step import device_arrays
from phosjax.train._strategy import Executor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model(parser)
    parser.add_argument("--steps", type=int, default=100, help="steps per chunk (%(default)s)")
    add_rounds(parser, 40)
    args = parser.parse_args()
    config, n = MODELS[args.model], args.steps
    data = synthetic_data(config, 128)
    hp = HParams(learning_rate=1e-3, batch_size=128, steps=10**6)
    [group] = plan_groups([Cell(config, data.name, hp, 0)])
    start = init_group(group, data)
    box = [run_group(group, start, data, n, strategy="map", chunk_steps=n)[0]]
    check_state = run_module.check_state

    def call(check: bool = True) -> None:
        run_module.check_state = check_state if check else lambda *_: None
        until = int(jax.device_get(box[0].step)[0]) + n
        box[0] = run_group(group, box[0], data, until, strategy="map", chunk_steps=n)[0]
        jax.block_until_ready(box[0])
        run_module.check_state = check_state

    executor = Executor("map", 1)
    arrays = executor.put_data(device_arrays(data))
    placed = executor.put_state(jax.tree.map(lambda a: a.copy(), start))
    make_step = lambda: make_train_step(config.build(), hp, guard=False)

    def program(finite: bool) -> None:
        key = ("train", group.signature())
        state, metrics = executor.run_steps(key, make_step, placed, arrays, n, donate=False)
        jax.device_get((metrics, OPTIMIZER_STATE_FINITE(state)) if finite else metrics)

    ways = {
        "run_group": call,
        "run_group, check_state skipped": lambda: call(False),
        "program + optimizer-state check": lambda: program(True),
        "program": lambda: program(False),
    }
    for way in ways.values():  # compiles
        way()
    best = dict.fromkeys(ways, float("inf"))
    for _ in range(args.rounds):
        for name, way in ways.items():
            begin = time.perf_counter()
            way()
            best[name] = min(best[name], time.perf_counter() - begin)
    print(f"{args.model}, one cell, {n} steps a call, best of {args.rounds} (ms; / program):")
    for name, seconds in best.items():
        print(f"  {name:<32} {seconds * 1e3:7.2f}  {seconds / best['program']:5.2f}")


if __name__ == "__main__":
    main()
