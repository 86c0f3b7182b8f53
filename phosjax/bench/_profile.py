"""Profiling a bench: phase times per group and memory sampled over the run.

What it costs: one background thread waking every ``interval`` seconds to read the
process's RSS (`psutil`) and the devices' ``memory_stats()`` (None on CPU: NaN).
"""

import dataclasses
import statistics
import threading
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
import pandas as pd
import psutil


def device_bytes(devices: Sequence[jax.Device] | None = None) -> tuple[float, float]:
    """``(bytes in use, peak bytes in use)`` summed over the devices; NaN if not reported."""
    in_use, peak, reported = 0, 0, False
    for device in devices or jax.local_devices():
        try:
            stats = device.memory_stats()
        except Exception:  # some backends raise instead of returning None
            stats = None
        if stats:
            reported = True
            in_use += stats.get("bytes_in_use", 0)
            peak += stats.get("peak_bytes_in_use", 0)
    return (float(in_use), float(peak)) if reported else (float("nan"), float("nan"))


class MemorySampler:
    """Samples host RSS and device bytes in a daemon thread; a context manager.

    Examples:
      >>> with MemorySampler(interval=0.01) as sampler:
      ...     _ = sum(range(10_000))
      >>> list(sampler.frame().columns)
      ['time_s', 'host_rss_bytes', 'device_bytes']
    """

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self._rows: list[tuple[float, float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="phosjax-memory", daemon=True)
        self._process = psutil.Process()
        self._start = time.perf_counter()

    def _sample(self) -> None:
        now = time.perf_counter() - self._start
        self._rows.append((now, float(self._process.memory_info().rss), device_bytes()[0]))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def frame(self) -> pd.DataFrame:
        """One row per sample: ``time_s`` (since start), ``host_rss_bytes``, ``device_bytes``."""
        rows = np.asarray(self._rows, np.float64).reshape(-1, 3)
        return pd.DataFrame(rows, columns=["time_s", "host_rss_bytes", "device_bytes"])


@dataclasses.dataclass
class PhaseClock:
    """The timings of one group's life: init, then chunks of steps (some with evaluation).

    Compile time is what the group's first chunk took beyond its steps at the steady
    rate (it includes ``strategy="auto"``'s measurements); the steady step time is the
    median per-step time of later chunks without evaluation (of all later chunks if each
    ended on an evaluation); evaluation time is what chunks ending on an evaluation took
    beyond their steps (NaN when no chunk without one tells the step time apart).
    """

    init_s: float = 0.0
    chunks: list[tuple[int, float, bool]] = dataclasses.field(default_factory=list)

    def add_chunk(self, steps: int, seconds: float, evaluated: bool) -> None:
        self.chunks.append((steps, seconds, evaluated))

    def rows(self, group_id: str, peak_bytes: float) -> list[dict[str, Any]]:
        """One row per phase: ``group_id``, ``phase``, ``seconds``, ``count``, ``peak_bytes``."""
        later = self.chunks[1:]
        plain = [s / n for n, s, evaluated in later if not evaluated]
        evals = [(n, s) for n, s, evaluated in later if evaluated] if plain else []
        step = statistics.median(plain or [s / n for n, s, _ in later] or [float("nan")])
        eval_s = sum(s - n * step for n, s in evals) if evals else float("nan")
        compile_s = float("nan")
        if self.chunks:
            first_n, first_s, first_eval = self.chunks[0]
            first_extra = eval_s / len(evals) if first_eval and evals else 0.0
            compile_s = first_s - first_n * step - first_extra
        phases = {
            "init": (self.init_s, 1),
            "compile": (compile_s, 1 if self.chunks else 0),
            "step": (step, sum(n for n, _, _ in later)),
            "eval": (eval_s / len(evals) if evals else float("nan"), len(evals)),
        }
        return [
            {
                "group_id": group_id,
                "phase": phase,
                "seconds": float(seconds),
                "count": count,
                "peak_bytes": peak_bytes,
            }
            for phase, (seconds, count) in phases.items()
        ]
