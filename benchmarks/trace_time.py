"""How long does tracing (Python, not XLA) each zoo model's train step and init take, and
how much of it is phosjax's own code?

Run: ``python benchmarks/trace_time.py [--models mlp,transformer]``

For each model (tiny configs, a batch of 16), it times ``jax.make_jaxpr`` of the
one-cell train step (`make_train_step`, its batch draw included) and of the group's
init program (the median of ``--repeats``, after one warm-up trace), then profiles one
step trace with `cProfile` and says what share of its Python time ran in phosjax's
files (a builtin's time counted to the files calling it), garbage collection off.
"""

import argparse
import cProfile
import gc
import pstats
import statistics
import time

import jax

from phosjax.data import random_dataset
from phosjax.models import ModelConfig
from phosjax.train import Cell, HParams, device_arrays, init_group, plan_groups
from phosjax.train._state import _init_values, _root_keys, _vmapped_init
from phosjax.train._step import make_train_step
from phosjax.train._strategy import trace_config

SHAPES = {
    "mlp": (40,),
    "cnn1d": (40, 1),
    "cnn2d": (8, 8, 1),
    "resnet": (8, 8, 1),
    "transformer": (40, 1),
    "choicenet": (40,),
    "moenet": (40,),
}
"""Each zoo model's input shape (one example)."""


def fresh_trace(fn, *args):
    """A call of ``jax.make_jaxpr`` of ``fn`` on ``args`` that traces it again each time
    (`jax.make_jaxpr` caches by function: it gets a new one)."""
    return lambda: jax.make_jaxpr(lambda *a: fn(*a))(*args)


def seconds(trace, repeats: int) -> float:
    """The median seconds of ``repeats`` calls of ``trace``, after one."""
    trace()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        trace()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def phosjax_share(trace) -> float:
    """The share of ``trace()``'s profiled Python time spent in phosjax's files."""
    gc.collect()
    gc.disable()
    profile = cProfile.Profile()
    try:
        profile.runcall(trace)
    finally:
        gc.enable()
    ours = total = 0.0
    for (file, _, _), (_, _, self_s, _, callers) in pstats.Stats(profile).stats.items():
        total += self_s
        if "/phosjax/" in file:
            ours += self_s
        elif "/" not in file:  # a builtin: shared among its callers
            called = sum(c[2] for c in callers.values()) or 1.0
            ours += sum(self_s * c[2] / called for f, c in callers.items() if "/phosjax/" in f[0])
    return ours / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", default=",".join(SHAPES), help="comma-separated zoo models (%(default)s)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed traces each (%(default)s)")
    args = parser.parse_args()
    print(f"{'model':<12}{'step s':>8}{'init s':>8}{'phosjax':>9}")
    for name in args.models.split(","):
        shape = SHAPES[name]
        data = random_dataset("toy", shape, 3)
        model = ModelConfig(name, 3, shape)
        [group] = plan_groups([Cell(model, "toy", HParams(batch_size=16, steps=10))])
        cell = jax.tree.map(lambda a: a[0], init_group(group, data))
        step = make_train_step(model.build(), group.hparams)
        arrays = device_arrays(data)
        init = _vmapped_init(group.program_signature, shape, trace_config()[0])
        trace_step = fresh_trace(step, cell, arrays)
        trace_init = fresh_trace(init, _root_keys(group), _init_values(group))
        step_s, init_s = seconds(trace_step, args.repeats), seconds(trace_init, args.repeats)
        print(f"{name:<12}{step_s:>8.3f}{init_s:>8.3f}{phosjax_share(trace_step):>9.1%}")


if __name__ == "__main__":
    main()
