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
    steps: int = 10,
    repeats: int = 2,
) -> dict[str, float]:
    """Seconds per step (all cells) of each candidate, after compilation; best of ``repeats``.

    Times the very programs `run_group` then runs (chunks of ``steps`` steps, with
    donation) on copies of ``state``, so measuring compiles nothing extra when the run's
    chunks have ``steps`` steps.

    Args:
      signature: names the group's compiled programs (`Group.signature`).
      make_chunk: ``num_steps -> one-cell chunk function``.
      state: the group's state (left intact: each call gets a fresh copy).
      arrays: the data arrays (`device_arrays`).
      num_cells: the group's number of cells.
      devices: the devices the group runs on.
      candidates: strategies to time.
      steps: steps per timed call.
      repeats: timed calls per strategy (after one call that compiles).
    """
    host = jax.device_get(state)
    timings = {}
    for strategy in candidates:
        executor = Executor(strategy, num_cells, devices)
        data = executor.put_data(arrays)
        best = float("inf")
        for attempt in range(repeats + 1):
            placed = jax.block_until_ready(executor.put_state(host))
            start = time.perf_counter()
            key = ("train", signature, steps)
            out = executor.run(key, lambda: make_chunk(steps), placed, data, donate=True)
            jax.block_until_ready(out)
            if attempt:  # the first call compiles
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
    steps: int = 10,
) -> tuple[str, dict[str, float]]:
    """The fastest strategy for this group on these devices and its timings (cached)."""
    key = (devices[0].platform, signature, num_cells, len(devices))
    if key not in _CHOICES:
        timings = measure_strategies(
            signature, make_chunk, state, arrays, num_cells=num_cells, devices=devices, steps=steps
        )
        _CHOICES[key] = (min(timings, key=timings.__getitem__), timings)
    return _CHOICES[key]
