"""Profiling a bench: phase times per group and segment, and memory sampled over the run.

What it costs: one background thread waking every ``interval`` seconds to read the
process's RSS (`psutil`) and the devices' ``memory_stats()`` (None on CPU: NaN), and
the profile files rewritten at each checkpoint (a few rows per segment).
"""

import contextlib
import dataclasses
import os
import pathlib
import statistics
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import numpy as np
import pandas as pd
import psutil
import tqdm

from phosjax._aside import aside_path
from phosjax.bench._layout import BENCH, process_suffix
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


STEPS = ("start_step", "end_step")
"""The columns that say which steps of its group a ``profile/phases`` row measured."""


def phase_row(
    group_id: str,
    phase: str,
    seconds: float,
    count: int,
    steps: tuple[int | None, int | None],
    **measured: float,
) -> dict[str, Any]:
    """One ``profile/phases`` row: ``group_id``, ``phase``, ``seconds``, ``count``,
    ``start_step`` and ``end_step`` (``steps``: the row measured the steps after the one,
    up to the other), then ``measured`` (``total_s``, ``peak_bytes``, ``program_bytes``).

    Examples:
      >>> phase_row("g", "init", 0.5, 1, (10, 10), total_s=0.5)
      {'group_id': 'g', 'phase': 'init', 'seconds': 0.5, 'count': 1, 'start_step': 10, \
'end_step': 10, 'total_s': 0.5}
    """
    return {
        "group_id": group_id,
        "phase": phase,
        "seconds": float(seconds),
        "count": count,
        **dict(zip(STEPS, steps, strict=True)),
        **measured,
    }


def init_rows(group_id: str, seconds: float, step: int, peak: float) -> list[dict[str, Any]]:
    """The ``init`` row of a run of a group that built its state (``step`` 0) or restored
    the checkpoint of ``step``, in ``seconds``: it measures no step (``start_step`` and
    ``end_step`` are ``step``); ``peak``: `device_bytes`'s peak then."""
    return [
        phase_row(
            group_id,
            "init",
            seconds,
            1,
            (step, step),
            total_s=float(seconds),
            peak_bytes=peak,
            program_bytes=float("nan"),
        )
    ]


@dataclasses.dataclass
class PhaseClock:
    """The timings of one segment of a group's training (its steps up to a checkpoint):
    chunks of steps, some with evaluation, and the compiles they needed.

    Every phase is measured on its own: the engine compiles each program ahead of time
    (``jit(...).lower(...).compile()``) and waits for a chunk's steps to finish before it
    evaluates, so no phase is inferred from another. ``rows`` gives, per phase,
    ``seconds`` (compile: all the segment's compiles; step: the steady-state seconds per
    step, the median over the segment's chunks, less the first of a run's first segment,
    whose first-run overheads it skips, unless it is the only one; eval: the mean seconds
    per evaluation), ``count`` (programs compiled; steps; evaluations) and ``total_s``
    (all the seconds the phase took); and the group's ``program_bytes``, the memory one
    device needs for its largest program (`phosjax.train.Chunk.program_bytes`).

    Attributes:
      start_step: the step the segment starts after (a checkpoint's, or 0).
      warm: the segment follows another of the same run (no first-run overheads).
    """

    start_step: int
    warm: bool = False
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

    def rows(self, group_id: str, end_step: int, peak_bytes: float) -> list[dict[str, Any]]:
        """One row per phase but ``init`` (`phase_row`) of the steps after ``start_step``
        up to ``end_step``, each with ``peak_bytes`` (`device_bytes`'s peak at the
        segment's end, NaN if not reported) and ``program_bytes``.

        Examples:
          >>> clock = PhaseClock(4, warm=True, chunks=[(2, 0.2), (2, 0.4)])
          >>> [(r["phase"], r["seconds"], r["count"], r["start_step"], r["end_step"])
          ...  for r in clock.rows("g", 8, float("nan"))]  # doctest: +NORMALIZE_WHITESPACE
          [('compile', 0.0, 0, 4, 8), ('step', 0.15000000000000002, 4, 4, 8),
           ('eval', nan, 0, 4, 8)]
        """
        steady = self.chunks if self.warm else self.chunks[1:] or self.chunks
        nan = float("nan")
        step = statistics.median(s / n for n, s in steady) if steady else nan
        phases = {
            "compile": (self.compile_s, self.compiles, self.compile_s),
            "step": (step, sum(n for n, _ in self.chunks), sum(s for _, s in self.chunks)),
            "eval": (
                statistics.fmean(self.evals) if self.evals else nan,
                len(self.evals),
                sum(self.evals),
            ),
        }
        return [
            phase_row(
                group_id,
                phase,
                seconds,
                count,
                (self.start_step, end_step),
                total_s=float(total),
                peak_bytes=peak_bytes,
                program_bytes=self.program_bytes,
            )
            for phase, (seconds, count, total) in phases.items()
        ]


_process_started: list[float] = []
"""This process's start (Unix seconds), put by `time_start_up` for the next `RunClock`."""


def time_start_up() -> None:
    """Has the next `RunClock` start with ``start``: the seconds from this process's start
    till then (a command line's Python start-up: the interpreter, its imports, parsing
    its arguments). The commands that run a bench call it, as ``__main__`` only.
    """
    _process_started[:] = [psutil.Process().create_time()]


class RunClock:
    """Times a bench run's own phases, one after another: `lap` ends the phase running
    and starts the next, so the phases of a run add up to its wall time (from the
    process's start, where `time_start_up` was called: then its first phase is ``start``).

    Examples:
      >>> clock = RunClock()
      >>> clock.lap("plan")
      >>> [(r["group_id"], r["phase"], r["count"], r["start_step"]) for r in clock.rows()]
      [('(bench)', 'plan', 1, None)]
      >>> clock.rows((0, 2))  # each lap is written once
      []
    """

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self._laps: list[tuple[str, float, float]] = []
        if _process_started:  # taken once: a second run in the process started later
            since = time.time() - _process_started.pop()
            self._laps.append(("start", since, device_bytes()[1]))

    def lap(self, phase: str) -> None:
        """Ends ``phase`` (one of `phosjax.bench._layout.BENCH_PHASES`) now, noting
        `device_bytes`'s peak then."""
        now = time.perf_counter()
        self._laps.append((phase, now - self._last, device_bytes()[1]))
        self._last = now

    @contextlib.contextmanager
    def apart(self, phase: str) -> Iterator[None]:
        """Times the block as ``phase``, a lap of its own taken out of the phase running
        (``data``, the data sets loaded while planning): the laps still add up.

        Examples:
          >>> clock = RunClock()
          >>> with clock.apart("data"):
          ...     time.sleep(0.01)
          >>> clock.lap("plan")
          >>> data, plan = clock.rows()
          >>> data["phase"], data["seconds"] >= 0.01, plan["phase"]
          ('data', True, 'plan')
        """
        start = time.perf_counter()
        yield
        seconds = time.perf_counter() - start
        self._laps.append((phase, seconds, device_bytes()[1]))
        self._last += seconds  # the phase running leaves it out

    def rows(self, process: tuple[int, int] = (0, 1)) -> list[dict[str, Any]]:
        """The ``profile/phases`` rows (steps null; ``peak_bytes`` at the lap's end;
        ``program_bytes`` NaN: a file of these alone has every column) of the laps ended
        since the last call, of group ``(bench)`` (process ``i`` of ``n > 1``:
        ``(bench).p<i>of<n>``)."""
        group_id = BENCH + process_suffix(process)
        nan = float("nan")
        rows = [
            phase_row(
                group_id,
                phase,
                seconds,
                1,
                (None, None),
                total_s=seconds,
                peak_bytes=peak,
                program_bytes=nan,
            )
            for phase, seconds, peak in self._laps
        ]
        self._laps.clear()
        return rows


def superseded(rows: pd.DataFrame, group_id: str, step: int) -> pd.Series:
    """Which ``rows`` of ``profile/phases`` measured steps of ``group_id`` after ``step``:
    a run that resumes the group from its checkpoint of ``step`` trains them again, so
    its rows replace them, as `phosjax.bench._store.drop_parts_after` drops the results'
    part files past it. Rows written before the step columns were (null) are kept.

    Examples:
      >>> ends = pd.array([0, 4, 8, 8, None], "Int64")
      >>> rows = pd.DataFrame({"group_id": ["a", "a", "a", "b", "a"], "end_step": ends})
      >>> superseded(rows, "a", 4).tolist()
      [False, False, True, False, False]
    """
    if "end_step" not in rows:
        return pd.Series(False, index=rows.index)
    return (rows["group_id"] == group_id) & (rows["end_step"].astype("float64") > step)


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
        tqdm.tqdm.write(  # below the bench's bar on a terminal, not on its line
            f"cannot read the profile file {str(path)!r} ({error}); moved it to "
            f"{str(target)!r} and started it anew (the results do not need it)",
            file=sys.stderr,
        )
        return None


class ProfileFiles:
    """A process's ``profile/phases`` and ``profile/memory`` files, written as it trains.

    A group's run writes its ``init`` row once it has built or restored its state, then
    the rows of each segment (`PhaseClock`) before the segment's checkpoint is saved, as
    its results are: a run stopped anywhere keeps every segment it measured, and a run
    that resumes a group from a checkpoint replaces the rows of the steps after it
    (`superseded`), which it trains again, so each segment's rows are there once. Each
    write also appends the memory samples taken since the last. Rows of other groups
    and of earlier runs stay.

    Args:
      phases: the ``profile/phases`` file.
      memory: the ``profile/memory`` file.
      sampler: what samples the memory (running).
    """

    def __init__(self, phases: pathlib.Path, memory: pathlib.Path, sampler: MemorySampler) -> None:
        self._phases, self._memory, self._sampler = phases, memory, sampler
        self._run_started = time.time()
        self._flushed = 0

    def write(self, phases: list[dict[str, Any]]) -> None:
        """Writes the phase rows of one group's segment (`init_rows`, `PhaseClock.rows`)
        in place of its rows of the steps after the segment's start, and the memory
        samples."""
        new = pd.DataFrame(phases)
        earlier = _readable_rows(self._phases)
        if earlier is not None and not new["group_id"].iloc[0].startswith(BENCH):  # all stay
            first = new.iloc[0]
            earlier = earlier[~superseded(earlier, first["group_id"], first["start_step"])]
        frame = pd.concat([earlier, new], ignore_index=True)
        write_table(self._phases, frame.astype(dict.fromkeys(STEPS, "Int64")))
        self.flush_memory()

    def flush_memory(self) -> None:
        """Appends the memory samples taken since the last flush."""
        memory = self._sampler.frame()
        new = memory.iloc[self._flushed :].assign(run_started=self._run_started)
        self._flushed = len(memory)
        new = pd.concat([_readable_rows(self._memory), new], ignore_index=True)
        write_table(self._memory, new)
