"""``strategy="auto"``: time each strategy on the actual group and keep the fastest."""

import time
from collections.abc import Callable, Sequence
from typing import Any

import jax

from phosjax.train._strategy import STRATEGIES, Executor

_CHOICES: dict[tuple[Any, ...], tuple[str, dict[str, float]]] = {}
"""In-memory cache of measured choices, by (backend, group signature, cells, devices)."""


def measure_strategies(
    signature: Any,
    make_chunk: Callable[[int], Callable[..., Any]],
    state: Any,
    arrays: Any,
    *,
    num_cells: int,
    devices: Sequence[jax.Device],
    candidates: Sequence[str] = STRATEGIES,
    steps: int = 4,
    repeats: int = 2,
) -> dict[str, float]:
    """Seconds per step (all cells) of each candidate, after compilation; best of ``repeats``.

    Args:
      signature: names the group's compiled programs (`Group.signature`).
      make_chunk: ``num_steps -> one-cell chunk function``.
      state: the group's state (not consumed: nothing is donated).
      arrays: the data arrays (`device_arrays`).
      num_cells: the group's number of cells.
      devices: the devices the group runs on.
      candidates: strategies to time.
      steps: steps per timed call.
      repeats: timed calls per strategy (after one call that compiles).
    """
    timings = {}
    for strategy in candidates:
        executor = Executor(strategy, num_cells, devices)
        placed, data = executor.put_state(state), executor.put_data(arrays)

        def call(executor: Executor = executor, placed: Any = placed, data: Any = data) -> None:
            key = ("train", signature, steps)
            out = executor.run(key, lambda: make_chunk(steps), placed, data, donate=False)
            jax.block_until_ready(out)

        call()
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            best = min(best, time.perf_counter() - start)
        timings[strategy] = best / steps
    return timings


def choose_strategy(
    signature: Any,
    make_chunk: Callable[[int], Callable[..., Any]],
    state: Any,
    arrays: Any,
    *,
    num_cells: int,
    devices: Sequence[jax.Device],
) -> tuple[str, dict[str, float]]:
    """The fastest strategy for this group on these devices and its timings (cached)."""
    key = (devices[0].platform, signature, num_cells, len(devices))
    if key not in _CHOICES:
        timings = measure_strategies(
            signature, make_chunk, state, arrays, num_cells=num_cells, devices=devices
        )
        _CHOICES[key] = (min(timings, key=timings.__getitem__), timings)
    return _CHOICES[key]
