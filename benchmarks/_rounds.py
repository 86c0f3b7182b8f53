"""Shared by the step benchmarks: variants timed in interleaved rounds, printed as a table.

Example (from a benchmark script in this folder)::

    from _rounds import print_table, time_rounds
    print_table(time_rounds({"a": run_a, "b": run_b}, rounds=30, steps=100), ["a"])
"""

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any


def add_rounds(parser: argparse.ArgumentParser, default: int) -> None:
    """``--rounds``: how many interleaved rounds `time_rounds` times (``default``)."""
    parser.add_argument(
        "--rounds", type=int, default=default, help="interleaved rounds timed (%(default)s)"
    )


def add_model(parser: argparse.ArgumentParser, default: str = "mlp") -> None:
    """``--model``: one of the speed bench's models (``default``)."""
    from phosjax.bench._speed_config import MODELS

    parser.add_argument(
        "--model",
        default=default,
        choices=sorted(MODELS),
        help="the speed bench's model (%(default)s)",
    )


def add_models(parser: argparse.ArgumentParser, default: str) -> None:
    """``--models``: some of the speed bench's models, comma-separated (``default``); a
    name it has not is a usage error, before any is measured."""
    from phosjax.bench._speed_config import MODELS

    def names(text: str) -> list[str]:
        unknown = [name for name in text.split(",") if name not in MODELS]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"not the speed bench's: {', '.join(map(repr, unknown))} (choose from "
                f"{', '.join(map(repr, sorted(MODELS)))})"
            )
        return text.split(",")

    parser.add_argument(
        "--models",
        type=names,
        default=default,
        help="the speed bench's models, comma-separated (%(default)s)",
    )


def time_rounds(
    calls: dict[str, Callable[[], Any]], rounds: int, steps: int
) -> dict[str, list[float]]:
    """µs per step of each call (each runs ``steps`` steps), over ``rounds`` rounds in which
    the calls take turns, so that a spell of load on the machine hits them alike; one
    untimed call of each first (it compiles)."""
    import jax

    for call in calls.values():
        jax.block_until_ready(call())
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            jax.block_until_ready(call())
            times[name].append((time.perf_counter() - start) / steps * 1e6)
    return times


def print_table(times: dict[str, list[float]], baselines: Sequence[str]) -> None:
    """Each variant's best and median µs per step, and its best over each baseline's."""
    import jax
    import numpy as np

    print(f"backend={jax.default_backend()} device={jax.devices()[0].device_kind}")
    best = {name: min(ts) for name, ts in times.items()}
    width = max(len("variant"), *map(len, times)) + 2
    heads = [f"/{name}" for name in baselines]
    print(
        f"{'variant':<{width}}{'best us/step':>12} {'median':>8} "
        + " ".join(f"{head:>{max(len(head), 6)}}" for head in heads)
    )
    for name, ts in times.items():
        ratios = [
            f"{best[name] / best[base]:>{max(len(head), 6)}.2f}"
            for base, head in zip(baselines, heads, strict=True)
        ]
        print(f"{name:<{width}}{best[name]:12.1f} {np.median(ts):8.1f} " + " ".join(ratios))
