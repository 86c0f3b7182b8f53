"""How long does compiling each group's `init_group` program take, and at what cost?

Run: ``python benchmarks/init_compile.py [--config configs/example.yaml]``

For each group of the bench, it compiles the group's init program (`init_group`'s
``jax.jit(jax.vmap(init_cell))``) with XLA's defaults (``XLA_FLAGS`` as set) and with
`phosjax._compile.RUN_ONCE_COMPILER_OPTIONS`, as `init_group` does on CPU (unless
``XLA_FLAGS`` sets the optimization level), times both
compiles, and says whether the two programs give bitwise the same states.
"""

import argparse
import time

import jax
import numpy as np
import yaml

from phosjax._compile import RUN_ONCE_COMPILER_OPTIONS
from phosjax.bench import BenchConfig
from phosjax.bench._plan import plan
from phosjax.train import Group
from phosjax.train._state import _init_values, _root_keys, _vmapped_init
from phosjax.train._strategy import trace_config


def compile_and_run(jitted, *args) -> tuple[float, list[np.ndarray]]:
    """Seconds to compile ``jitted`` for ``args``, and its outputs' leaves as numpy."""
    start = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    seconds = time.perf_counter() - start
    return seconds, jax.tree.leaves(jax.device_get(compiled(*args)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config",
        default="configs/example.yaml",
        help="the bench config whose groups compile (%(default)s)",
    )
    args = parser.parse_args()
    with open(args.config) as file:
        planned = plan(BenchConfig.from_dict(yaml.safe_load(file)))
    print(f"{'group':<22}{'cells':>6}{'default s':>11}{'options s':>11}  same states")
    for planned_group in planned.groups:
        group = Group(
            tuple(c.cell for c in planned_group.cells), tuple(range(len(planned_group.cells)))
        )
        data = planned.datasets[group.cells[0].dataset]
        init = _vmapped_init(group.program_signature, tuple(data.input_shape), trace_config()[0])
        inputs = (_root_keys(group), _init_values(group))
        default_s, want = compile_and_run(jax.jit(init), *inputs)
        options = jax.jit(init, compiler_options=RUN_ONCE_COMPILER_OPTIONS)
        options_s, got = compile_and_run(options, *inputs)
        same = all(np.array_equal(a, b, equal_nan=True) for a, b in zip(got, want, strict=True))
        seconds = f"{default_s:>11.2f}{options_s:>11.2f}"
        print(f"{planned_group.group_id:<22}{len(group):>6}{seconds}  {same}")


if __name__ == "__main__":
    main()
