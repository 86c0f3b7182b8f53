"""Where a grid step's time goes: the device's ops per step, from a `jax.profiler` trace.

For one model of the speed bench and one K, prepares methods of
`phosjax.bench._speed_methods` (``vmap``: the bare step under `jax.vmap`; ``engine`` under
each strategy asked for; ``fused``), traces one timed call of each (``--steps`` steps)
and sums the traced ops by kind (the op name without its number: ``loop_add_fusion``,
``gemm``, ``convolution``, ...): per step, how many ran and their microseconds. On a GPU
these are the device's ops (XLA's ``XLA Ops`` line, else its streams); on CPU, the ops
of XLA's CPU threads::

    python benchmarks/step_profile.py --model cnn2d --k 64 --strategies vmap,vmap_matmul
    python benchmarks/step_profile.py --model mlp --k 64 --strategies map,vmap --top 12
"""

import argparse
import collections
import glob
import re
import tempfile
import time
from typing import Any

import jax
from _rounds import add_model
from jax.profiler import ProfileData

from phosjax.bench._speed_config import SpeedConfig
from phosjax.bench._speed_methods import PREPARE, setup_model

_IDLE = ("ThreadpoolListener", "ThunkExecutor", "$")  # host bookkeeping, Python frames


def device_ops(trace_dir: str) -> list[tuple[str, float]]:
    """``(op name, microseconds)`` of every op a trace saw run on a device (or, on CPU,
    on XLA's threads); an event enclosing others on its line (a loop, an executor) counts
    only through them."""
    [path] = glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True)
    planes = list(ProfileData.from_file(path).planes)
    devices = [p for p in planes if p.name.startswith("/device:")]
    lines = []
    for plane in devices:
        named = {line.name: line for line in plane.lines}
        streams = [line for name, line in named.items() if name.startswith("Stream")]
        lines += [named["XLA Ops"]] if "XLA Ops" in named else streams
    if not devices:  # CPU: the ops run on XLA's host threads
        lines = [line for p in planes for line in p.lines if line.name.startswith("tf_XLA")]
    ops = []
    for line in lines:
        events = sorted(
            (e.start_ns, e.end_ns, e.name) for e in line.events if not e.name.startswith(_IDLE)
        )
        for (start, end, name), after in zip(events, [*events[1:], None], strict=False):
            if after is None or after[0] >= end:  # encloses nothing
                ops.append((name, (end - start) / 1e3))
    return ops


def kind(name: str) -> str:
    """An op's kind: its name without numbers and suffixes (``fusion.12`` -> ``fusion``).

    Examples:
      >>> kind("loop_add_fusion.3"), kind("gemm_fusion_dot.17.0"), kind("cudnn-conv")
      ('loop_add_fusion', 'gemm_fusion_dot', 'cudnn-conv')
    """
    return re.sub(r"(\.\d+)+$", "", name)


def profile(run: Any, steps: int) -> tuple[float, collections.Counter, collections.Counter]:
    """Wall µs per step of one traced ``run()``, and per kind the ops and µs per step."""
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir):
            start = time.perf_counter()
            jax.block_until_ready(run())
            wall = (time.perf_counter() - start) / steps * 1e6
        counts: collections.Counter = collections.Counter()
        micros: collections.Counter = collections.Counter()
        for name, us in device_ops(trace_dir):
            counts[kind(name)] += 1 / steps
            micros[kind(name)] += us / steps
    return wall, counts, micros


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model(parser, "cnn2d")
    parser.add_argument("--k", type=int, default=64, help="the grid size (%(default)s)")
    parser.add_argument(
        "--strategies",
        default="vmap,vmap_matmul",
        help="the engine's strategies traced, comma-separated (%(default)s)",
    )
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=("float32", "bfloat16"),
        help="compute dtype (%(default)s)",
    )
    parser.add_argument("--steps", type=int, default=20, help="steps per traced call (%(default)s)")
    parser.add_argument("--top", type=int, default=8, help="kinds listed per method (%(default)s)")
    args = parser.parse_args()
    cfg = SpeedConfig(steps=args.steps, compute_dtype=args.dtype)
    setup = setup_model(args.model, cfg)
    methods = [("vmap", cfg), ("fused", cfg)] + [
        (f"engine:{s}", SpeedConfig(steps=args.steps, compute_dtype=args.dtype, strategy=s))
        for s in args.strategies.split(",")
    ]
    print(f"backend={jax.default_backend()} device={jax.devices()[0].device_kind}")
    print(f"{args.model} K={args.k} {args.dtype}, {args.steps} steps traced per method")
    for label, method_cfg in methods:
        ready = PREPARE[label.split(":")[0]](setup, args.k, method_cfg)
        jax.block_until_ready(ready.run())  # warm: the traced call compiles nothing
        wall, counts, micros = profile(ready.run, ready.steps)
        busy = sum(micros.values())
        print(
            f"\n{label}: wall {wall:,.1f} µs/step, ops {sum(counts.values()):,.1f}/step, "
            f"busy {busy:,.1f} µs/step ({args.k * 1e6 / wall:,.0f} model-steps/s)"
        )
        for name, us in micros.most_common(args.top):
            print(f"  {name:<40}{counts[name]:>8.1f}/step{us:>12,.1f} µs/step{us / busy:>7.1%}")


if __name__ == "__main__":
    main()
