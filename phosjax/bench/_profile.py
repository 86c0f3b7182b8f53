"""Profiling a bench: phase times per group and memory sampled over the run.

What it costs: one background thread waking every ``interval`` seconds to read the
process's RSS (`psutil`) and the devices' ``memory_stats()`` (None on CPU: NaN), and
the profile files rewritten at each checkpoint (a few rows per group).
"""

import dataclasses
import os
import pathlib
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
import pandas as pd
import psutil

from phosjax._aside import aside_path
from phosjax.bench._reading import UNREADABLE
from phosjax.bench._store import write_table
from phosjax.train import Chunk


def device_bytes(devices: Sequence[jax.Device] | None = None) -> tuple[float, float]:
    """``(bytes in use, peak bytes in use)``: the bytes in use summed over the devices,
    the peak of the device that peaked highest (per device, as a device's capacity and
    ``program_bytes`` are); NaN if not reported.

    The peak is the backend's own counter: the most in use since the process started
    (it is never reset). A sum of the devices' peaks, which they may reach at different
    times, would grow with the device count. CPU backends report nothing (NaN).
    """
    in_use, peak, reported = 0, 0, False
    for device in devices or jax.local_devices():
        try:
            stats = device.memory_stats()
        except Exception:  # some backends raise instead of returning None
            stats = None
        if stats:
            reported = True
            in_use += stats.get("bytes_in_use", 0)
            peak = max(peak, stats.get("peak_bytes_in_use", 0))
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
        rows = np.asarray(list(self._rows), np.float64).reshape(-1, 3)  # a copy: it grows
        return pd.DataFrame(rows, columns=["time_s", "host_rss_bytes", "device_bytes"])


@dataclasses.dataclass
class PhaseClock:
    """The timings of one group's life: init, then chunks of steps (some with evaluation).

    Every phase is measured on its own: the engine compiles each program ahead of time
    (``jit(...).lower(...).compile()``) and waits for a chunk's steps to finish before it
    evaluates, so no phase is inferred from another. ``rows`` gives, per phase,
    ``seconds`` (init: once; compile: all the group's compiles; step: the steady-state
    seconds per step, the median over chunks after the first, whose first-run overheads
    it skips, or the first chunk's alone; eval: the mean seconds per evaluation),
    ``count`` (1; programs compiled; steps; evaluations) and ``total_s`` (all the
    seconds the phase took); and the group's ``program_bytes``, the memory one device
    needs for its largest program (`phosjax.train.Chunk.program_bytes`).
    """

    init_s: float = 0.0
    compile_s: float = 0.0
    compiles: int = 0
    chunks: list[tuple[int, float]] = dataclasses.field(default_factory=list)
    evals: list[float] = dataclasses.field(default_factory=list)
    program_bytes: float = float("nan")

    def add_chunk(self, chunk: Chunk) -> None:
        """Adds one `phosjax.train.Chunk`'s compile, step and evaluation seconds and the
        memory of its programs."""
        self.compile_s += chunk.compile_s
        self.compiles += chunk.compiles
        self.chunks.append((len(chunk.steps), chunk.train_s))
        if chunk.eval:
            self.evals.append(chunk.eval_s)
        self.program_bytes = float(np.fmax(self.program_bytes, chunk.program_bytes))

    def rows(self, group_id: str, peak_bytes: float) -> list[dict[str, Any]]:
        """One row per phase: ``group_id``, ``phase``, ``seconds``, ``count``, ``total_s``,
        ``peak_bytes`` (`device_bytes`'s peak when the group ended, NaN if not reported)
        and ``program_bytes``."""
        steady = self.chunks[1:] or self.chunks
        nan = float("nan")
        step = statistics.median(s / n for n, s in steady) if steady else nan
        phases = {
            "init": (self.init_s, 1, self.init_s),
            "compile": (self.compile_s, self.compiles, self.compile_s),
            "step": (step, sum(n for n, _ in self.chunks), sum(s for _, s in self.chunks)),
            "eval": (
                statistics.fmean(self.evals) if self.evals else nan,
                len(self.evals),
                sum(self.evals),
            ),
        }
        return [
            {
                "group_id": group_id,
                "phase": phase,
                "seconds": float(seconds),
                "count": count,
                "total_s": float(total),
                "peak_bytes": peak_bytes,
                "program_bytes": self.program_bytes,
            }
            for phase, (seconds, count, total) in phases.items()
        ]


def _readable_rows(path: pathlib.Path) -> pd.DataFrame | None:
    """The rows of the profile file ``path``; None when there is none, or when it cannot
    be read: then it moves aside to ``<name>.old-<time>`` (said on stderr) and the profile
    starts anew, since a damaged profile must not stop the training it times."""
    if not path.is_file():
        return None
    try:
        return pd.read_parquet(path)
    except UNREADABLE as error:
        target = aside_path(path)
        os.replace(path, target)
        print(
            f"cannot read the profile file {str(path)!r} ({error}); moved it to "
            f"{str(target)!r} and started it anew (the results do not need it)",
            file=sys.stderr,
        )
        return None


class ProfileFiles:
    """A process's ``profile/phases`` and ``profile/memory`` files, written as it trains.

    A group writes its phase rows at each of its checkpoints and when it ends, each time
    replacing the rows it wrote before, so a run stopped mid-group keeps what it measured
    up to the group's last checkpoint; each write also appends the memory samples taken
    since the last. Rows of earlier groups and runs stay.

    Args:
      phases: the ``profile/phases`` file.
      memory: the ``profile/memory`` file.
      sampler: what samples the memory (running).
    """

    def __init__(self, phases: pathlib.Path, memory: pathlib.Path, sampler: MemorySampler) -> None:
        self._phases, self._memory, self._sampler = phases, memory, sampler
        self._run_started = time.time()
        self._flushed = 0
        self._earlier: pd.DataFrame | None = None

    def start_group(self) -> None:
        """Keeps the phase rows written so far: the next group's follow them."""
        self._earlier = _readable_rows(self._phases)

    def write(self, phases: list[dict[str, Any]]) -> None:
        """Writes the group's phase rows so far (`PhaseClock.rows`), and the memory samples."""
        frame = pd.concat([self._earlier, pd.DataFrame(phases)], ignore_index=True)
        write_table(self._phases, frame)
        self.flush_memory()

    def flush_memory(self) -> None:
        """Appends the memory samples taken since the last flush."""
        memory = self._sampler.frame()
        new = memory.iloc[self._flushed :].assign(run_started=self._run_started)
        self._flushed = len(memory)
        new = pd.concat([_readable_rows(self._memory), new], ignore_index=True)
        write_table(self._memory, new)
