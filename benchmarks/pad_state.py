"""What placing a padded group's state and taking the padding off cost in compiles.

Run: ``python benchmarks/pad_state.py [--model mlp]``

On 4 CPU devices (``--xla_force_host_platform_device_count=4`` added to ``XLA_FLAGS``), a
group of 6 cells of the speed bench's model (`phosjax.bench._speed_config.MODELS`) from
`init_group`, padded to 8 by `Executor.put_state` and back to 6 by `Executor.take`; then 7
cells (new shapes), then each again; then a group of 8 cells, which needs no padding, placed
by ``jax.device_put`` alone (as `Executor.put_state` placed such a group before 2026-12-07:
JAX splits an array held on one device by a program compiled per shape and dtype) and by
`Executor.put_state` (whole on every device, then its padding program, none added). For each
call: the XLA compiles, the seconds they took, and the process's user CPU seconds.
"""

import argparse
import os
import resource

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
)

import jax  # after XLA_FLAGS
from _rounds import add_model
from jax.sharding import NamedSharding, PartitionSpec

from phosjax.bench._speed_config import MODELS
from phosjax.bench._speed_methods import synthetic_data
from phosjax.train import Cell, HParams, init_group, plan_groups
from phosjax.train._strategy import GRID, Executor

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model(parser)
    args = parser.parse_args()
    compiles: list[float] = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda name, seconds, **_: compiles.append(seconds) if name == COMPILE_EVENT else None
    )
    config = MODELS[args.model]
    data = synthetic_data(config, 128)
    hp = HParams(batch_size=128, steps=10)

    def measured(label: str, call, tree) -> object:
        before, user = len(compiles), resource.getrusage(resource.RUSAGE_SELF).ru_utime
        out = jax.block_until_ready(call(tree))
        user = resource.getrusage(resource.RUSAGE_SELF).ru_utime - user
        seconds = sum(compiles[before:])
        print(f"{label:<30}{len(compiles) - before:>9}{seconds:>12.2f}{user:>11.2f}")
        return out

    print(f"{'call':<30}{'compiles':>9}{'compile s':>12}{'user s':>11}")

    def group_state(cells: int) -> tuple[Executor, object]:
        [group] = plan_groups([Cell(config, data.name, hp, seed) for seed in range(cells)])
        return Executor("vmap", cells, jax.devices()), jax.block_until_ready(
            init_group(group, data)
        )

    for cells, when in [(6, "first"), (7, "new shape"), (6, "again"), (7, "again")]:
        executor, state = group_state(cells)
        placed = measured(f"{cells} cells put_state, {when}", executor.put_state, state)
        measured(f"{cells} cells take, {when}", executor.take, placed)
    executor, state = group_state(8)
    split = NamedSharding(executor.mesh, PartitionSpec(GRID))
    put = lambda tree: jax.device_put(tree, split, may_alias=False)
    measured("8 cells jax.device_put", put, state)
    measured("8 cells put_state", executor.put_state, state)


if __name__ == "__main__":
    main()
