"""Training one planned group: resume from its checkpoint, flush results per segment.

A group trains in segments of ``checkpoint_every`` steps. After each segment its rows
are written as one part file and its profile rows are handed on, then its state is
checkpointed, then ``status.json`` is updated; its count of diverged cells is updated
after each chunk that changes it, as soon as the bar can say it. On restart the newest
checkpoint is restored and the part files past it (rows that will be trained again) are
deleted, as are the profile rows past it (the profile's ``init`` row, handed on once the
state is restored, replaces them: `phosjax.bench._profile.superseded`), so the results
and the profile hold every segment's rows exactly once, wherever a kill landed.
"""

import dataclasses
import pathlib
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import pandas as pd
import pyarrow as pa
import tqdm

from phosjax.bench import _layout
from phosjax.bench._checkpoint import Checkpoints
from phosjax.bench._interrupt import held_to_chunk_end
from phosjax.bench._plan import PlannedCell
from phosjax.bench._profile import PhaseClock, device_bytes, init_rows
from phosjax.bench._store import STEP_TIME, as_table, drop_parts_after, part_path, write_table
from phosjax.data import ArrayDataset
from phosjax.train import Chunk, Group, GroupState, init_group, run_group
from phosjax.train._grid import chunk_splits


def _warn_cut_short(path: pathlib.Path, key: str, latest: int) -> None:
    """Says on stderr that checkpoint ``path`` of group ``key`` is passed over, through
    tqdm so a progress bar showing is cleared and redrawn below the line, not cut.

    Examples:
      >>> import contextlib, io
      >>> with contextlib.redirect_stderr(io.StringIO()) as err:
      ...     _warn_cut_short(pathlib.Path("ck/g/8"), "g", 4)
      >>> print(err.getvalue(), end="")
      warning: checkpoint 'ck/g/8' is cut short (...); g resumes from step 4 instead, ...
    """
    tqdm.tqdm.write(
        f"warning: checkpoint {str(path)!r} is cut short (not a whole npz archive; "
        f"phosjax writes it whole, so something else cut it); {key} resumes from "
        f"step {latest} instead, its steps after that trained again.",
        file=sys.stderr,
    )


@dataclasses.dataclass(frozen=True)
class GroupJob:
    """One group as this process trains it.

    Attributes:
      key: names its part files and checkpoints (the group id, plus ``.p<i>of<n>``
        when several processes share the group).
      cells: the planned cells trained here.
    """

    key: str
    cells: tuple[PlannedCell, ...]

    @property
    def steps(self) -> int:
        return self.cells[0].cell.hparams.steps

    @property
    def rows(self) -> tuple[dict[str, Any], ...]:
        return tuple(c.row for c in self.cells)


def chunk_rows(chunk: Chunk, rows: tuple[dict[str, Any], ...], schema: pa.Schema) -> pa.Table:
    """The results rows of one chunk (`phosjax.train._grid.chunk_splits`, a cell's
    columns from its row of ``rows``) in ``schema``. A metric a split does not report is
    null; a NaN it reports stays NaN. ``step_time_s`` is the chunk's training and
    evaluation time per step (compile excluded), on train rows."""
    train, *test = chunk_splits(chunk, pd.DataFrame(list(rows)))
    train[STEP_TIME] = (chunk.train_s + chunk.eval_s) / len(chunk.steps)
    tables = [as_table(train, schema, measured=[*chunk.train, STEP_TIME])]
    tables += [as_table(frame, schema, measured=list(chunk.eval)) for frame in test]
    return pa.concat_tables(tables)


def diverged_cells(diverged_at: Any) -> int:
    """How many of a group's cells have diverged: their ``diverged_at`` (a
    `GroupState`'s or a `Chunk`'s, on device or host) is a step, not -1.

    Examples:
      >>> from phosjax.data import random_dataset
      >>> from phosjax.models import ModelConfig
      >>> from phosjax.train import Cell, HParams, plan_groups
      >>> model, hp = ModelConfig("mlp", 3, (8,), width=8), HParams(batch_size=16, steps=10)
      >>> [group] = plan_groups([Cell(model, "toy", hp, seed=0), Cell(model, "toy", hp, seed=1)])
      >>> state = init_group(group, random_dataset("toy", (8,), 3))
      >>> diverged_cells(state.diverged_at), diverged_cells(state.step + 3)
      (0, 2)
    """
    return int((np.asarray(jax.device_get(diverged_at)) >= 0).sum())


def _segments(start: int, steps: int, every: int) -> list[int]:
    """The steps at which the segments after ``start`` end: each multiple of ``every``
    (0: none) below ``steps``, then ``steps``; none when ``start`` reached ``steps``.

    Examples:
      >>> _segments(0, 12, 5), _segments(10, 12, 5), _segments(12, 12, 5), _segments(3, 12, 0)
      ([5, 10, 12], [12], [], [12])
    """
    if start >= steps:
        return []
    if not every:
        return [steps]
    return [min(stop, steps) for stop in range((start // every + 1) * every, steps + every, every)]


def _restored(checkpoints: Checkpoints, step: int, like: GroupState) -> GroupState:
    """The state checkpointed at ``step`` (``like``'s layout); one written before states
    recorded their settings (`GroupState.settings`) without them, as `run_group` resumes it.
    """
    if not any(path.startswith(".settings[") for path in checkpoints.paths(step)):
        like = like.replace(settings={})  # type: ignore[attr-defined]
    return checkpoints.restore(step, like)


def restored_step(root: pathlib.Path, key: str) -> int:
    """The step the group ``key`` resumes from: its newest whole checkpoint's (0: none)."""
    return Checkpoints(root / _layout.CHECKPOINTS / key).latest() or 0


def train_group(
    root: pathlib.Path,
    job: GroupJob,
    data: ArrayDataset,
    schema: pa.Schema,
    *,
    strategy: str,
    previous: dict[str, Any] | None,
    chunk_steps: int,
    checkpoint_every: int,
    on_status: Callable[[str, dict[str, Any]], None],
    on_progress: Callable[[int], None],
    on_profile: Callable[[list[dict[str, Any]]], None],
) -> None:
    """Trains (or finishes) one group, giving ``on_profile`` its ``profile/phases`` rows:
    the ``init`` row once its state is built or restored, then each segment's rows
    before its checkpoint is saved (with its part file), so a group recorded as finished
    has its whole profile. ``on_progress`` gets the cell-steps each chunk trains, not
    those restored (`restored_step`: a bar starts with them, so its rate is not theirs).

    ``previous`` is the group's entry of an earlier ``status.json``: a strategy it
    chose is kept, with the timings that chose it, so a resumed group runs the very
    same programs.

    A stop signal (SIGTERM, in a phosjax command) once a chunk has trained since the last
    checkpoint ends the group at the end of the chunk under way, written and checkpointed
    there as at a segment's end, then stops the run
    (`phosjax.bench._interrupt.held_to_chunk_end`): what was trained since the last
    checkpoint is kept, not trained again; before, it stops the run at once.
    """
    group = Group(tuple(c.cell for c in job.cells), tuple(range(len(job.cells))))
    checkpoints = Checkpoints(root / _layout.CHECKPOINTS / job.key)
    start_time = time.perf_counter()
    latest = checkpoints.latest() or 0  # as restored_step
    for path in checkpoints.passed_over():  # said: steps trained again, not silently
        _warn_cut_short(path, job.key, latest)
    chosen: dict[str, Any] = {"strategy": strategy, "timings": {}}
    if latest:
        state = _restored(checkpoints, latest, jax.eval_shape(lambda: init_group(group, data)))
        chosen |= {k: v for k, v in (previous or {}).items() if k in chosen}
    else:
        state = init_group(group, data)
    state = jax.block_until_ready(state)
    drop_parts_after(root, job.key, latest)
    on_profile(init_rows(job.key, time.perf_counter() - start_time, latest, device_bytes()[1]))
    status: dict[str, Any] = {
        "steps_done": latest,
        "steps": job.steps,
        "finished": latest >= job.steps,
        "diverged": diverged_cells(state.diverged_at),
    }
    status |= {**chosen, "cells": [r["cell_id"] for r in job.rows]}
    on_status(job.key, status)
    segments = _segments(latest, job.steps, checkpoint_every)
    with held_to_chunk_end() as held:  # SIGTERM: this chunk's end checkpointed, then raised
        for index, stop in enumerate(segments):
            tables: list[pa.Table] = []
            first = int(np.asarray(jax.device_get(state.step))[0]) + 1
            clock = PhaseClock(first - 1, warm=index > 0)

            def report(
                chunk: Chunk,
                tables: list[pa.Table] = tables,
                clock: PhaseClock = clock,
                status: dict[str, Any] = status,
            ) -> None:
                held.armed = True  # a chunk to checkpoint: a stop signal waits for it
                clock.add_chunk(chunk)
                tables.append(chunk_rows(chunk, job.rows, schema))
                diverged = diverged_cells(chunk.diverged_at)
                if diverged != status["diverged"]:  # said now, not at the segment's end
                    status["diverged"] = diverged
                    on_status(job.key, status)
                on_progress(len(chunk.steps) * len(group))

            state, run = run_group(
                group,
                state,
                data,
                until_step=stop,
                strategy=status["strategy"],
                chunk_steps=chunk_steps,
                on_chunk=report,
                should_stop=lambda: held.signum is not None,
            )
            end = int(run.chunks[-1].steps[-1]) if run.chunks else stop  # < stop: signalled
            if tables:  # a segment that trained nothing writes no (empty) part
                write_table(part_path(root, job.key, first), pa.concat_tables(tables))
            on_profile(clock.rows(job.key, end, device_bytes()[1]))  # before the checkpoint
            if run.strategy != status["strategy"]:  # "auto" chose: say so before a checkpoint
                status |= {"strategy": run.strategy, "timings": run.timings}  # resumes with it
                on_status(job.key, status)
            checkpoints.save(end, state)
            status |= {"steps_done": end, "finished": end >= job.steps}
            on_status(job.key, status)
            held.armed = False  # all checkpointed: a stop signal before the next chunk stops
            if held.signum is not None:
                break
    checkpoints.close()
