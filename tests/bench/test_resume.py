"""Resume after ``kill -9`` or SIGTERM: the finished bench equals an uninterrupted one, row
for row."""

import contextlib
import dataclasses
import json
import os
import pathlib
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tqdm

from phosjax.bench import (
    BenchConfig,
    _interrupt,
    _layout,
    _runner,
    _store,
    _train,
    add_models_to,
    load_config,
    run,
)
from phosjax.bench._errors import BenchError, BrokenFileError
from phosjax.bench._profile import MemorySampler, PhaseClock, ProfileFiles, init_rows
from phosjax.bench._store import read_json
from phosjax.bench._summary import profile_text, read_profile
from phosjax.models import _registry
from phosjax.train import STRATEGIES, _run
from tests.bench.runner_tiny import Killed, killed_after_save, tiny_config

CONFIG = """
models: [{name: mlp, width: 16}]
datasets: [mnist1d]
grid: {steps: 240, batch_size: 32, learning_rate: [0.01, 0.003]}
seeds: 1
eval_every: 20
checkpoint_every: 20
strategy: vmap
data_dir: DATA_DIR
"""


def command(config: pathlib.Path, root: pathlib.Path) -> list[str]:
    return [sys.executable, "-m", "phosjax.bench.new", "--config", str(config), "--dir", str(root)]


def frame(root: pathlib.Path) -> pd.DataFrame:
    results = pd.read_parquet(root / _layout.RESULTS).drop(columns="step_time_s")
    return results.sort_values(["cell_id", "step", "split"], ignore_index=True)


@contextlib.contextmanager
def training(
    config: pathlib.Path, root: pathlib.Path, prefix: Sequence[str] = (), **popen: Any
) -> Iterator[subprocess.Popen[bytes]]:
    """``new`` on ``config`` in ``root``, run in a subprocess (after ``prefix``, a program
    that runs it; its stderr piped, unless ``popen``, `subprocess.Popen`'s arguments, says
    otherwise), given to the body once it saved its first checkpoint, mid-run; killed
    after, if it runs on."""
    env = {**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).parents[2])}
    argv = [*prefix, *command(config, root), "--no_progress"]
    process = subprocess.Popen(argv, env=env, **{"stderr": subprocess.PIPE, **popen})
    deadline = time.monotonic() + 300
    try:  # at the first checkpoint seen: 20 is gone once 60 is written, 0.15 s later
        while not list(root.glob(f"{_layout.CHECKPOINTS}/*/[0-9]*")):
            assert process.poll() is None, process.stderr and process.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.02)
        yield process
    finally:
        process.kill()
        process.wait()
        if process.stderr:
            process.stderr.close()


@pytest.fixture(scope="module")
def config_file(tmp_path_factory, data_dir) -> pathlib.Path:
    """`CONFIG`, in a file."""
    config = tmp_path_factory.mktemp("config") / "bench.yaml"
    config.write_text(CONFIG.replace("DATA_DIR", data_dir))
    return config


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, config_file) -> pd.DataFrame:
    """The results of `CONFIG` trained without a stop (`frame`)."""
    whole = tmp_path_factory.mktemp("whole")
    run(load_config(config_file), whole, progress=False)
    return frame(whole)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, toy) -> Callable[[BenchConfig], tuple[pathlib.Path, pd.DataFrame]]:
    """The folder of a config's bench trained on ``toy`` without a stop, and the results its
    run returned: trained once for the module, for tests that read it or copy it to write."""
    benches: dict[str, tuple[pathlib.Path, pd.DataFrame]] = {}

    def bench(config: BenchConfig) -> tuple[pathlib.Path, pd.DataFrame]:
        key = json.dumps(config.to_dict(), sort_keys=True)
        if key not in benches:
            root = tmp_path_factory.mktemp("trained") / "b"
            benches[key] = root, run(config, root, datasets=toy, progress=False)
        return benches[key]

    return bench


def copied(bench: tuple[pathlib.Path, pd.DataFrame], root: pathlib.Path) -> pd.DataFrame:
    """``bench`` (of `trained`) copied to ``root``, for a test to write; its results."""
    shutil.copytree(bench[0], root)
    return bench[1]


@pytest.mark.slow
def test_kill_9_then_the_same_command_continues_and_matches(tmp_path, config_file, uninterrupted):
    killed = tmp_path / "killed"
    with training(config_file, killed) as process:
        process.send_signal(signal.SIGKILL)
    steps_done = pd.read_parquet(killed / _layout.RESULTS).step.max()
    assert 20 <= steps_done < 240, "the kill must land mid-run"

    # The same command again (in this process: it shares the compiled programs with the
    # uninterrupted run), then compared with the uninterrupted run.
    run(load_config(config_file), killed, progress=False)
    resumed = frame(killed)
    assert not resumed.duplicated(["cell_id", "step", "split"]).any()
    pd.testing.assert_frame_equal(resumed, uninterrupted)
    assert list(killed.rglob(".tmp*")) == []


@pytest.mark.slow
def test_sigterm_stops_saying_what_is_kept_and_the_same_command_continues_and_matches(
    tmp_path, config_file, uninterrupted
):
    """A job scheduler's SIGTERM (SLURM's, Kubernetes', ``timeout``'s) ended the run on
    the spot, saying nothing, exit status -15. It stops as Ctrl-C does: one line saying
    what is kept and the command that continues, exit status 143 (128 + 15)."""
    stopped = tmp_path / "stopped"
    with training(config_file, stopped) as process:
        process.send_signal(signal.SIGTERM)
        err = process.communicate(timeout=120)[1].decode()
    again = shlex.join([*command(config_file, stopped)[1:], "--no_progress"])
    assert process.returncode == 143, err
    assert err.endswith(
        f"interrupted by SIGTERM: {str(stopped)!r} keeps 0 of 2 cells finished, and the "
        f"others' rows up to their group's last checkpoint; the same command continues it: "
        f"python {again}\n"
    ), err
    (entry,) = read_json(stopped / _layout.STATUS)["groups"].values()
    steps = pd.read_parquet(stopped / _layout.RESULTS).step.max()
    assert entry["steps_done"] == steps  # the chunk under way checkpointed, as its rows

    run(load_config(config_file), stopped, progress=False)  # the same command
    pd.testing.assert_frame_equal(frame(stopped), uninterrupted)
    assert list(stopped.rglob(".tmp*")) == []


CONTROLLED_BY_STDIN = [
    sys.executable,
    "-c",
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.argv[1], sys.argv[1:])",
]
"""Runs the program after it with its stdin, a terminal, as its controlling terminal (it
leads a new session: ``start_new_session``), so that the terminal closing sends it SIGHUP."""


@pytest.mark.slow
def test_its_terminal_closed_the_run_stops_with_129_and_the_same_command_continues(
    tmp_path, config_file, uninterrupted
):
    """Its terminal closed (an ssh session lost), the run got SIGHUP, and each write to
    the terminal failed (EIO): it ended with a traceback, exit status 1. Its output goes
    to /dev/null then: it stops as on SIGTERM, exit status 129."""
    terminal, tty = os.openpty()
    stopped = tmp_path / "stopped"
    with training(
        config_file,
        stopped,
        stdin=tty,
        stdout=tty,
        stderr=tty,
        start_new_session=True,
        prefix=CONTROLLED_BY_STDIN,
    ) as process:
        os.close(tty)
        os.close(terminal)  # the terminal closes: the kernel sends SIGHUP
        assert process.wait(timeout=120) == 129
    (entry,) = read_json(stopped / _layout.STATUS)["groups"].values()
    assert entry["steps_done"] == pd.read_parquet(stopped / _layout.RESULTS).step.max()

    run(load_config(config_file), stopped, progress=False)  # the same command
    pd.testing.assert_frame_equal(frame(stopped), uninterrupted)


def _sigterm_as_rows_of(step: int):
    """`_train.chunk_rows` sending this process SIGTERM as it makes the rows of the chunk
    ending at ``step`` (the chunk trained, not yet written)."""
    rows = _train.chunk_rows

    def sigterm_then_rows(chunk, *args):
        if chunk.steps[-1] == step:
            signal.raise_signal(signal.SIGTERM)
        return rows(chunk, *args)

    return sigterm_then_rows


def test_sigterm_mid_segment_checkpoints_the_chunk_under_way_and_resumed_matches(
    tmp_path, toy, stop_signals_handled, monkeypatch, trained
):
    """SIGTERM, which SIGKILL follows some seconds later (SLURM's time limit, a preempted
    VM), stopped the run at once: what the group trained since its last checkpoint
    (checkpoint_every 6) was lost, trained again. The group now stops at the end of the
    chunk under way (2 steps), written and checkpointed there; the same command resumes
    from that step and matches an uninterrupted run."""
    config = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1, chunk_steps=2)
    stopped = tmp_path / "stopped"
    with monkeypatch.context() as patch, pytest.raises(_interrupt.Signalled):
        patch.setattr(_train, "chunk_rows", _sigterm_as_rows_of(4))
        run(config, stopped, datasets=toy, progress=False)
    (entry,) = read_json(stopped / _layout.STATUS)["groups"].values()
    assert (entry["steps_done"], entry["finished"]) == (4, False)
    assert frame(stopped).step.max() == 4  # its rows up to there kept

    run(config, stopped, datasets=toy, progress=False)
    pd.testing.assert_frame_equal(frame(stopped), frame(trained(config)[0]))


def test_sigterm_right_after_a_checkpoint_stops_at_once(tmp_path, toy, stop_signals_handled):
    """SIGTERM as the second segment began (step 6 checkpointed, its program compiling)
    was held until that segment's first chunk had trained, then checkpointed again: a
    chunk more to wait for, with SIGKILL on its way. Nothing is left to save there: it
    stops at once, at step 6."""
    config = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1, chunk_steps=2)
    run_group = _train.run_group

    def sigterm_as_step_7_begins(group, state, *args, **kwargs):
        if int(np.asarray(state.step)[0]) == 6:
            signal.raise_signal(signal.SIGTERM)
        return run_group(group, state, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch, pytest.raises(_interrupt.Signalled):
        patch.setattr(_train, "run_group", sigterm_as_step_7_begins)
        run(config, tmp_path, datasets=toy, progress=False)
    (entry,) = read_json(tmp_path / _layout.STATUS)["groups"].values()
    assert entry["steps_done"] == frame(tmp_path).step.max() == 6


def test_sigterm_as_a_segments_first_chunk_is_reported_checkpoints_it(
    tmp_path, toy, stop_signals_handled, monkeypatch
):
    """SIGTERM as the second segment's first chunk (steps 7 and 8) had trained, its rows
    being made, stopped the run at once, at step 6: the chunk was trained again. It is
    held to that chunk's end, as later in a segment, and checkpointed at step 8."""
    config = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1, chunk_steps=2)
    monkeypatch.setattr(_train, "chunk_rows", _sigterm_as_rows_of(8))
    with pytest.raises(_interrupt.Signalled):
        run(config, tmp_path, datasets=toy, progress=False)
    (entry,) = read_json(tmp_path / _layout.STATUS)["groups"].values()
    assert entry["steps_done"] == frame(tmp_path).step.max() == 8


class _Tee:
    """A stderr piped to tee (``2>&1 | tee log``): its writes raise once tee is ``gone``."""

    gone = False

    def write(self, text: str) -> int:
        if self.gone:
            raise BrokenPipeError(32, "Broken pipe")
        return len(text)


def test_a_broken_pipe_mid_segment_checkpoints_the_chunk_under_way(tmp_path, toy, monkeypatch):
    """``new ... 2>&1 | tee log``, the terminal closed and tee with it: the next progress
    write raised BrokenPipeError before the chunk's checkpoint (exit status 1, the chunk
    trained again). It stops as on SIGHUP: output silenced, the chunk under way (steps 3
    and 4) checkpointed, then `Signalled` (SIGPIPE's exit status, 141)."""
    config = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1, chunk_steps=2)
    tee, silenced = _Tee(), []
    monkeypatch.setattr(sys, "stderr", _interrupt._PipeWatched(tee))
    monkeypatch.setattr(_interrupt, "silence_gone", lambda: silenced.append(True))
    rows = _train.chunk_rows

    def tee_gone_then_rows(chunk, *args):
        if chunk.steps[-1] == 4:
            tee.gone = True
            print("a progress bar's line", file=sys.stderr)
        return rows(chunk, *args)

    monkeypatch.setattr(_train, "chunk_rows", tee_gone_then_rows)
    with pytest.raises(_interrupt.Signalled) as stopped:
        run(config, tmp_path, datasets=toy, progress=False)
    assert (stopped.value.signum, silenced) == (signal.SIGPIPE, [True, True])  # print: 2 writes
    (entry,) = read_json(tmp_path / _layout.STATUS)["groups"].values()
    assert entry["steps_done"] == frame(tmp_path).step.max() == 4


def test_killed_after_the_last_checkpoint_before_its_status_resumes_and_matches(
    tmp_path, toy, trained
):
    """checkpoint_every (5) does not divide steps (12): the last segment ends at 12. A kill
    after its checkpoint, before status.json says finished: the run again finishes the
    group, trains nothing, writes no empty part and keeps every row and its profile."""
    config = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1, checkpoint_every=5)
    killed = tmp_path / "killed"
    with killed_after_save(12):
        run(config, killed, datasets=toy, progress=False)
    (entry,) = read_json(killed / _layout.STATUS)["groups"].values()
    assert (entry["steps_done"], entry["finished"]) == (10, False)

    run(config, killed, datasets=toy, progress=False)
    ((group, entry),) = read_json(killed / _layout.STATUS)["groups"].items()
    assert (entry["steps_done"], entry["finished"]) == (12, True)
    pd.testing.assert_frame_equal(frame(killed), frame(trained(config)[0]))
    firsts = sorted(int(p.stem.rsplit("-", 1)[1]) for p in (killed / _layout.RESULTS).iterdir())
    assert firsts == [1, 6, 11]  # one part per segment, none empty
    assert set(pd.read_parquet(killed / _layout.PHASES).group_id) == {group, _layout.BENCH}


def test_a_resumed_bar_starts_at_the_restored_steps_and_counts_only_those_trained(
    tmp_path, toy, monkeypatch
):
    """The steps restored from a checkpoint were counted as trained at once, so the
    resumed bar's rate (and ETA) held them: thousands of steps a second, an ETA of 0 s."""
    config = tiny_config(models=[{"name": "mlp", "width": 8}])  # 2 cells, 12 steps
    with killed_after_save(6):
        run(config, tmp_path, datasets=toy, progress=False)
    bars = []

    class Recorded(_runner.TrainingBar):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.given, self.updates = kwargs, []
            bars.append(self)

        def update(self, n=1):
            self.updates.append(n)
            return super().update(n)

    monkeypatch.setattr(_runner, "TrainingBar", Recorded)
    run(config, tmp_path, datasets=toy, progress=False)
    ((bar,),) = [bars]
    assert (bar.given["total"], bar.given.get("initial", 0), sum(bar.updates)) == (24, 12, 12)


def measured(root: pathlib.Path) -> list[tuple[str, str, int, int, int]]:
    """The profile's rows but ``init``: (group, phase, start_step, end_step, count), the
    counts of ``compile`` left out (a resumed run compiles again)."""
    rows = pd.read_parquet(root / _layout.PHASES)
    rows = rows[(rows.phase != "init") & (rows.group_id != _layout.BENCH)]
    counts = rows["count"].where(rows.phase != "compile", 0)
    return list(zip(rows.group_id, rows.phase, rows.start_step, rows.end_step, counts, strict=True))


@pytest.mark.parametrize("saved", [True, False], ids=["after-the-save", "while-saving"])
def test_a_kill_at_a_checkpoint_keeps_each_segments_profile_once(tmp_path, toy, saved, trained):
    """A segment's profile rows are written before its checkpoint, with its steps: a kill
    after the checkpoint of step 8 keeps them; a kill while it is written (resumed from
    step 4) leaves rows that the run resuming at 4 replaces. Either way the resumed
    profile has the segments of an uninterrupted run, each once, and the same results."""
    config = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1, checkpoint_every=4)
    killed = tmp_path / "killed"
    with killed_after_save(8, saved=saved):
        run(config, killed, datasets=toy, progress=False)
    phases = pd.read_parquet(killed / _layout.PHASES)
    assert phases.end_step.max() == 8 and len(pd.read_parquet(killed / _layout.MEMORY)) > 0

    run(config, killed, datasets=toy, progress=False)
    whole, _ = trained(config)
    assert measured(killed) == measured(whole)
    steps = [row[2:] for row in measured(whole) if row[1] == "step"]
    assert steps == [(0, 4, 4), (4, 8, 4), (8, 12, 4)]
    inits = pd.read_parquet(killed / _layout.PHASES).query("phase == 'init'")
    restored = 8 if saved else 4
    assert list(zip(inits.start_step, inits.end_step, strict=True)) == [(0, 0), (restored,) * 2]
    pd.testing.assert_frame_equal(frame(killed), frame(whole))


def test_a_kill_as_the_status_says_finished_keeps_the_whole_profile(tmp_path, toy, monkeypatch):
    """A segment's profile is written before its status: killed as status.json records the
    group finished (it never trains again), the profile still has all of its 12 steps."""
    config = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1, checkpoint_every=4)
    write = _runner.write_json

    def write_unless_finished(path, status):
        if any(group["finished"] for group in status["groups"].values()):
            raise Killed
        write(path, status)

    monkeypatch.setattr(_runner, "write_json", write_unless_finished)
    with pytest.raises(Killed):
        run(config, tmp_path, datasets=toy, progress=False)
    phases = pd.read_parquet(tmp_path / _layout.PHASES)
    assert phases.query("phase == 'step'")["count"].sum() == 12


def test_a_profile_written_before_its_step_columns_is_kept_and_read(tmp_path):
    """A bench profiled before rows said their steps: its rows stay as they were (their
    steps unknown, null), a resumed run's follow them, and ``profile`` reads them all."""
    root = tmp_path / "b"
    (root / _layout.PROFILE).mkdir(parents=True)
    old = pd.DataFrame(
        {
            "group_id": "g",
            "phase": list(_layout.PHASE_NAMES),
            "seconds": [1.0, 2.0, 0.5, 0.25],
            "count": [1, 1, 4, 1],
            "total_s": [1.0, 2.0, 2.0, 0.25],
            "peak_bytes": np.nan,
            "program_bytes": 1024.0,
        }
    )
    old.to_parquet(root / _layout.PHASES, index=False)
    with MemorySampler() as sampler:
        files = ProfileFiles(root / _layout.PHASES, root / _layout.MEMORY, sampler)
        files.write(init_rows("g", 3.0, 4, np.nan))
        files.write(PhaseClock(4, chunks=[(4, 1.0)]).rows("g", 8, np.nan))  # read back
    phases = read_profile(root, _layout.PHASES)
    pd.testing.assert_frame_equal(phases[old.columns].iloc[:4], old)
    assert phases.start_step.isna().tolist() == [True] * 4 + [False] * 4
    steps = list(zip(phases.start_step[4:], phases.end_step[4:], strict=True))
    assert steps == [(4, 4), (4, 8), (4, 8), (4, 8)]
    text = profile_text(root)
    line = next(line for line in text.splitlines() if line.startswith("g "))
    assert line.split()[1:3] == ["2", "1"]  # init_s: the runs' mean; compile_s: 2 s over 2


def test_profile_weights_each_segments_step_time_by_its_steps(tmp_path):
    """A group of 8 steps in two segments (6 steps at 0.1 s, then 2 at 0.4 s) and two runs:
    ``profile`` says 0.175 s per step (not 0.25, the mean of the rows), the runs' mean
    init and compile seconds, and the summed counts."""
    root = tmp_path / "b"
    (root / _layout.PROFILE).mkdir(parents=True)
    with MemorySampler() as sampler:
        files = ProfileFiles(root / _layout.PHASES, root / _layout.MEMORY, sampler)
        files.write(init_rows("g", 1.0, 0, np.nan))
        files.write(PhaseClock(0, compiles=1, compile_s=2.0, chunks=[(6, 0.6)]).rows("g", 6, 0.0))
        files.write(init_rows("g", 3.0, 6, np.nan))
        files.write(PhaseClock(6, compiles=1, compile_s=4.0, chunks=[(2, 0.8)]).rows("g", 8, 0.0))
    line = next(line for line in profile_text(root).splitlines() if line.startswith("g "))
    assert line.split()[1:6] == [
        "2",
        "3",
        "0.175",
        "NaN",
        "2",
    ]  # init, compile, step, eval, programs


def test_a_kill_after_auto_chose_resumes_with_its_choice_and_matches(
    tmp_path, toy, monkeypatch, trained
):
    """``strategy: auto`` chooses in the first segment; a kill right after that segment's
    checkpoint resumes with the strategy chosen, not timing again (its status keeps the
    timings that chose it), so the rows are those of an uninterrupted run with that
    strategy, bit for bit."""
    config = tiny_config(
        models=[{"name": "mlp", "width": 8}], seeds=1, checkpoint_every=5, strategy="auto"
    )
    killed = tmp_path / "killed"
    with killed_after_save(5):
        run(config, killed, datasets=toy, progress=False)
    (entry,) = read_json(killed / _layout.STATUS)["groups"].values()
    assert entry["steps_done"] == 0 and entry["strategy"] in STRATEGIES and entry["timings"]

    def timing_again(*args, **kwargs):
        raise AssertionError("the resumed run timed the strategies again")

    monkeypatch.setattr(_run, "choose_strategy", timing_again)
    run(config, killed, datasets=toy, progress=False)
    (resumed,) = read_json(killed / _layout.STATUS)["groups"].values()
    assert (resumed["strategy"], resumed["timings"]) == (entry["strategy"], entry["timings"])
    whole = tiny_config(**{**config.to_dict(), "strategy": entry["strategy"]})
    pd.testing.assert_frame_equal(frame(killed), frame(trained(whole)[0]))


def test_a_bfloat16_group_with_knobs_resumed_matches_an_uninterrupted_run(tmp_path, toy, trained):
    """choicenet's temperature knob is declared with a Python number: weakly typed, so it
    divides bfloat16 logits without promoting them. A checkpoint keeps that weak type, so
    the resumed run computes in bfloat16 as the uninterrupted one does, bit for bit."""
    config = tiny_config(
        models=[{"name": "choicenet", "width": 8, "depth": 1}],
        seeds=1,
        grid={"steps": 12, "batch_size": 16, "learning_rate": 0.01, "compute_dtype": "bfloat16"},
    )
    killed = tmp_path / "killed"
    with killed_after_save(6):
        run(config, killed, datasets=toy, progress=False)
    run(config, killed, datasets=toy, progress=False)
    pd.testing.assert_frame_equal(frame(killed), frame(trained(config)[0]))


def test_a_scheduled_bench_resumed_mid_schedule_matches_an_uninterrupted_run(
    tmp_path, toy, trained
):
    """The schedule's step count lives in the optimizer state: a run killed after the
    first group's checkpoint at step 6, 6 steps into its 8 of warmup, goes on where it
    stopped, and writes its columns and the rate of each step."""
    grid = {"steps": 12, "batch_size": 16, "learning_rate": 0.05}
    scheduled = {**grid, "lr_schedule": ["cosine", "linear"], "warmup_steps": 8}
    config = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1, grid=scheduled)
    killed = tmp_path / "killed"
    with killed_after_save(6):
        run(config, killed, datasets=toy, progress=False)
    assert len(list(killed.glob(f"{_layout.CHECKPOINTS}/*/6"))) == 1  # one group, mid-warmup
    run(config, killed, datasets=toy, progress=False)
    resumed = frame(killed)
    pd.testing.assert_frame_equal(resumed, frame(trained(config)[0]))
    assert sorted(set(resumed.lr_schedule)) == ["cosine", "linear"]
    assert (resumed.warmup_steps == 8).all() and resumed.warmup_steps.dtype == "int64"
    constant = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1, grid=grid)
    plain = frame(trained(constant)[0])
    assert {"lr_schedule", "warmup_steps", "lr"}.isdisjoint(plain.columns)
    train = resumed[resumed.split == "train"]
    assert train.lr.dtype == "float32" and resumed[resumed.split == "test"].lr.isna().all()
    rising = train[train.step <= 9].groupby("step").lr.unique()  # warmup: both schedules
    assert all(len(rates) == 1 for rates in rising)
    np.testing.assert_allclose([r[0] for r in rising], np.arange(9) / 8 * 0.05, rtol=1e-6)
    cosine, linear = (resumed[resumed.lr_schedule == kind].loss for kind in ("cosine", "linear"))
    assert not np.allclose(cosine, linear) and not np.allclose(cosine, plain.loss)


def test_parts_past_step_999_999_999_are_dropped_when_trained_again(tmp_path):
    # part_path writes 10 digits from step 1e9 on (steps go to 2**31 - 1); they were not
    # found, so a group resumed there kept them beside their rows trained again.
    names = [_store.part_path(tmp_path, "mlp-0a", s) for s in (1, 999_999_999, 1_000_000_001)]
    for path in [*names, _store.part_path(tmp_path, "mlp-0a.p0of2", 1_000_000_001)]:
        _store.write_text(path, "")
    assert _store.drop_parts_after(tmp_path, "mlp-0a", 999_999_999) == 1
    kept = sorted(p.name for p in (tmp_path / _layout.RESULTS).iterdir())
    assert kept == [
        "part-mlp-0a-000000001.parquet",
        "part-mlp-0a-999999999.parquet",
        "part-mlp-0a.p0of2-1000000001.parquet",
    ]


def test_part_files_are_in_step_order_past_step_999_999_999(tmp_path):
    # In name order a group's 10-digit parts came before its 9-digit ones, so the rows
    # read from results/ were out of step order.
    steps = (1_000_000_001, 999_999_999, 1)
    for key, step in [("mlp-0a", s) for s in steps] + [("mlp-0b", 2)]:
        _store.write_text(_store.part_path(tmp_path, key, step), "")
    assert [p.name for p in _layout.part_files(tmp_path / _layout.RESULTS)] == [
        "part-mlp-0a-000000001.parquet",
        "part-mlp-0a-999999999.parquet",
        "part-mlp-0a-1000000001.parquet",
        "part-mlp-0b-000000002.parquet",
    ]


def test_stale_temporaries_are_removed_and_live_writers_kept(tmp_path):
    """What a writer killed mid-write leaves is removed (this machine: its process is
    gone; any machine: an hour old); a live writer's file, or a recent one of another
    machine, is kept."""
    from phosjax.bench._store import TEMPORARY, machine, remove_stale_temporaries

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = machine()
    (tmp_path / "results").mkdir()
    names = {
        "dead": f"{TEMPORARY}{host}~{dead.pid}~status.json",
        "live": f"{TEMPORARY}{host}~{os.getpid()}~status.json",
        "other host": f"{TEMPORARY}elsewhere~{dead.pid}~bench.json",
        "other host, old": f"{TEMPORARY}elsewhere~1~config.yaml",
        "old format, old": ".tmp-123-env.json",
    }
    paths = {key: tmp_path / "results" / name for key, name in names.items()}
    for path in paths.values():
        path.write_text("half")
    for key in ("other host, old", "old format, old"):
        os.utime(paths[key], (time.time() - 7200, time.time() - 7200))
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted(
        paths[k] for k in ("dead", "other host, old", "old format, old")
    )
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == sorted(
        names[k] for k in ("live", "other host")
    )


def test_a_users_old_files_and_folders_named_like_temporaries_are_kept(tmp_path):
    """Only a writer's temporary files (``.tmp~<host>~<pid>~<name>``) are removed: a
    user's ``.tmp_notes.txt`` and ``.tmp_cache/``, or a folder named as a temporary, stay."""
    from phosjax.bench._store import TEMPORARY, remove_stale_temporaries

    notes, cache = tmp_path / ".tmp_notes.txt", tmp_path / "results" / ".tmp_cache"
    folder = tmp_path / f"{TEMPORARY}elsewhere~1~folder"
    for made in (cache, folder):
        made.mkdir(parents=True)
        (made / "kept.txt").write_text("cached")
    notes.write_text("mine")
    for path in (notes, cache, folder):
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    assert remove_stale_temporaries(tmp_path) == []
    assert notes.read_text() == "mine"
    assert [(p / "kept.txt").read_text() for p in (cache, folder)] == ["cached", "cached"]


def _write_rows_as_the_morph_loop(path: pathlib.Path, frame: pd.DataFrame) -> None:
    from phosjax.models import ModelConfig
    from phosjax.morph import MorphConfig
    from phosjax.morph._loop import _frame

    config = MorphConfig(ModelConfig("mlp", 10, (40,)))
    _store.write_table(path, _frame(frame.to_dict("records"), config, "mnist1d:1.0.0", None))


@pytest.mark.parametrize("write", [_store.write_table, _write_rows_as_the_morph_loop])
def test_a_file_is_on_disk_before_it_takes_its_name_and_its_name_after(
    tmp_path, monkeypatch, write
):
    """A part file (or the morph loop's rows) is flushed to the disk (fsync) before it
    is renamed into place, as a checkpoint is, and its directory after: after a power
    cut, a part that the next checkpoint counts is whole and has its name."""
    synced = []
    fsync = os.fsync

    def recording(fd: int) -> None:
        synced.append(pathlib.Path(os.readlink(f"/proc/self/fd/{fd}")).name)
        fsync(fd)

    monkeypatch.setattr(_store.os, "fsync", recording)
    path = tmp_path / "results" / "part-g-000000001.parquet"
    write(path, pd.DataFrame({"step": [1, 2]}))
    assert len(synced) == 2 and _store.is_temporary(synced[0]), synced
    assert synced[1] == "results"
    assert pd.read_parquet(path).step.tolist() == [1, 2]
    assert os.listdir(path.parent) == [path.name]


def test_a_write_that_fails_removes_its_temporary_file_and_keeps_the_old(tmp_path, monkeypatch):
    """A full disk: the partial temporary file held its space until the next run. The
    error names the file being written, which the system's (from a write) does not."""
    path = tmp_path / "status.json"
    _store.write_json(path, {"groups": {}})

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_store.os, "fsync", full)
    with pytest.raises(OSError, match=f"No space left on device: '{path}'$") as raised:
        _store.write_json(path, {"groups": {"g": {}}})
    assert raised.value.errno == 28
    assert os.listdir(tmp_path) == ["status.json"]
    assert read_json(path) == {"groups": {}}


@pytest.mark.parametrize("damage", ["cut off", "garbled"])
def test_a_damaged_part_file_stops_the_next_run_naming_it(tmp_path, toy, damage, trained):
    """A part file damaged on the disk (cut off: no footer; garbled: a page overwritten)
    stops the next run with an error naming the file and what to do, not a bare pyarrow
    error; the file and the bench's other parts are left as they were."""
    config = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1)
    copied(trained(config), tmp_path / "b")
    parts = _layout.part_files(tmp_path / "b" / _layout.RESULTS)
    kept = {path: path.read_bytes() for path in parts}
    damaged = bytearray(kept[parts[0]])
    if damage == "cut off":
        del damaged[len(damaged) // 2 :]
    else:
        damaged[100:300] = b"\xff" * 200
    parts[0].write_bytes(damaged)
    with pytest.raises(BrokenFileError, match=f"(?s)cannot read '.*{parts[0].name}'.*backup"):
        run(config, tmp_path / "b", datasets=toy, progress=False)
    assert {path: path.read_bytes() for path in parts} == {**kept, parts[0]: bytes(damaged)}


def test_a_damaged_checkpoint_stops_the_run_naming_it_and_moved_out_it_resumes(
    tmp_path, toy, capsys, trained
):
    """A checkpoint whose bytes changed on the disk (its zip index intact, a member's CRC
    wrong) stops the run with an error naming it and what to do, not a bare zipfile
    traceback; done (moved out), the group resumes from the checkpoint before and the
    bench equals an uninterrupted one."""
    config = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1, checkpoint_every=4)
    killed = tmp_path / "killed"
    with killed_after_save(8):
        run(config, killed, datasets=toy, progress=False)
    (newest,) = killed.glob(f"{_layout.CHECKPOINTS}/*/8")
    damaged = bytearray(newest.read_bytes())
    damaged[len(damaged) // 2 : len(damaged) // 2 + 64] = bytes(64)
    newest.write_bytes(damaged)
    with pytest.raises(BenchError, match=f"cannot read checkpoint '{newest}'.*Move it out"):
        run(config, killed, datasets=toy, progress=False)
    assert newest.read_bytes() == damaged  # left for the user to look at
    newest.rename(tmp_path / "damaged")
    cut = newest.with_name("12")  # a newer one cut short (a copy stopped): passed over, said
    cut.write_bytes(bytes(damaged[:100]))
    run(config, killed, datasets=toy, progress=False)
    err = capsys.readouterr().err
    assert f"warning: checkpoint '{cut}' is cut short (not a whole npz archive;" in err
    assert f"{cut.parent.name} resumes from step 4 instead" in err
    pd.testing.assert_frame_equal(frame(killed), frame(trained(config)[0]), check_exact=True)


def test_the_cut_short_warning_clears_the_progress_bar_not_lands_mid_bar(capsys):
    """The warning for a checkpoint cut short, said while the bench's bar shows on
    stderr, starts on a cleared line (the bar erased, then redrawn below it), not glued
    to the bar's text."""
    from phosjax.bench._train import _warn_cut_short

    with tqdm.tqdm(total=10, file=sys.stderr) as bar:
        bar.update(3)
        _warn_cut_short(pathlib.Path("ck") / "g" / "8", "g", 4)
    err = capsys.readouterr().err
    before, line = err.split("warning: checkpoint", 1)
    assert before.endswith("\r") and "3/10" in line.split("\n", 1)[1]
    assert "g resumes from step 4 instead" in line


def test_a_damaged_status_says_to_delete_it_and_deleted_the_bench_goes_on(tmp_path, toy, trained):
    """status.json damaged on the disk: the error names it and says it may be deleted
    (not that the bench must start anew); deleted, the next run finds each group's
    progress in its checkpoints: the killed group resumes, and the bench equals an
    uninterrupted one."""
    config = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1, checkpoint_every=4)
    killed = tmp_path / "killed"
    with killed_after_save(8):
        run(config, killed, datasets=toy, progress=False)
    (killed / _layout.STATUS).write_text('{"groups": {"mlp-')
    with pytest.raises(BrokenFileError, match=r"cannot read '.*status.json'.*or delete it"):
        run(config, killed, datasets=toy, progress=False)
    (killed / _layout.STATUS).unlink()
    run(config, killed, datasets=toy, progress=False)
    pd.testing.assert_frame_equal(frame(killed), frame(trained(config)[0]), check_exact=True)
    (entry,) = read_json(killed / _layout.STATUS)["groups"].values()
    assert (entry["steps_done"], entry["finished"]) == (12, True)


@pytest.mark.parametrize("text", ["{}", '{"groups": []}', '{"groups": {"mlp-1": 3}}'])
def test_a_status_of_another_shape_is_named_not_a_key_error(tmp_path, toy, text):
    """JSON, but not what phosjax writes (edited by hand): a KeyError or AttributeError
    from deep in the run; now the error names the file and what to do, as for one cut off."""
    config = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1)
    with killed_after_save(6):
        run(config, tmp_path, datasets=toy, progress=False)
    (tmp_path / _layout.STATUS).write_text(text)
    message = rf"'{tmp_path / _layout.STATUS}' does not hold the .*groups.* or delete it"
    with pytest.raises(BenchError, match=message):
        run(config, tmp_path, datasets=toy, progress=False)


@pytest.mark.parametrize("cells", ["5", '[["a"]]'])
def test_a_status_entry_whose_cells_are_no_list_is_named_not_a_type_error(tmp_path, cells):
    """'cells': 5 (edited by hand): a finished bench run again raised a bare TypeError,
    "'int' object is not iterable", naming no file; 'cells': [["a"]], a list of no cell
    ids, "unhashable type: 'list'"."""
    (tmp_path / _layout.STATUS).write_text(f'{{"groups": {{"mlp-1": {{"cells": {cells}}}}}}}')
    message = rf"'{tmp_path / _layout.STATUS}' does not hold the .*\"cells\": \[.*or delete it"
    with pytest.raises(BenchError, match=message):
        _runner._status(tmp_path, (0, 1))


def test_a_finished_group_whose_rows_were_lost_is_said_not_silently_summed(tmp_path, toy, capsys):
    """A part file of a finished group removed by hand: the next run, which trusts the
    status and trains nothing, says which group lacks rows and what to do, instead of
    returning the results without them as if whole."""
    config = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1)
    whole = run(config, tmp_path, datasets=toy, progress=False)
    assert "warning" not in capsys.readouterr().err
    (group,) = whole.group_id.unique()
    _layout.part_files(tmp_path / _layout.RESULTS)[-1].unlink()
    run(config, tmp_path, datasets=toy, progress=False)
    err = capsys.readouterr().err
    assert f"lacks training rows of finished groups: {group} (1 of its 1 cells)" in err
    assert "restore them from a backup" in err


def test_a_finished_bench_run_again_plans_nothing_and_loads_no_data(
    tmp_path, toy, capsys, monkeypatch, trained
):
    """``new --dir DIR --data_dir NEW`` of a finished bench planned it, preparing every
    data set in NEW with nothing to train; it records NEW and prints the summary alone.
    Where a model's blurb is missing it plans, writing it again (it stayed missing)."""
    config = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1)
    root = tmp_path / "b"
    whole = copied(trained(config), root)

    def planned(*args, **kwargs):
        raise AssertionError("a finished bench was planned")

    monkeypatch.setattr(_runner, "plan", planned)
    moved = dataclasses.replace(config, data_dir=str(tmp_path / "moved"))
    again = run(moved, root, datasets=toy, progress=True)
    pd.testing.assert_frame_equal(again, whole)
    assert "mlp" in capsys.readouterr().out  # the summary
    assert load_config(root / _layout.CONFIG).data_dir == str(tmp_path / "moved")
    assert not (tmp_path / "moved").exists()
    monkeypatch.undo()  # a blurb deleted: the plan writes it again, as before
    (blurb,) = (root / _layout.BLURBS).iterdir()
    blurb.unlink()
    run(config, root, datasets=toy, progress=False)
    assert blurb.is_file()


def test_a_finished_status_entry_without_its_cells_is_no_crash(tmp_path, toy, trained):
    """An entry edited by hand to lack 'cells' and 'steps' raised a bare KeyError as the
    run checked the finished groups' rows."""
    config = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1)
    root = tmp_path / "b"
    whole = copied(trained(config), root)
    status = read_json(root / _layout.STATUS)
    (entry,) = status["groups"].values()
    del entry["cells"], entry["steps"]
    (root / _layout.STATUS).write_text(json.dumps(status))
    pd.testing.assert_frame_equal(run(config, root, datasets=toy, progress=False), whole)


def test_a_finished_bench_run_again_refuses_a_data_dir_that_is_a_file(tmp_path, trained):
    """Unplanned, it recorded a data_dir that is a file (a plan refuses it) in config.yaml."""
    config = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1)
    copied(trained(config), tmp_path / "b")
    stored = (tmp_path / "b" / _layout.CONFIG).read_text()
    (tmp_path / "file").write_text("")
    with pytest.raises(BenchError, match=r"^data_dir '.*file' is not a folder"):
        run(dataclasses.replace(config, data_dir=str(tmp_path / "file")), tmp_path / "b")
    assert (tmp_path / "b" / _layout.CONFIG).read_text() == stored


def test_a_bench_whose_ids_hashed_its_options_as_written_resumes_under_them(
    tmp_path, toy, monkeypatch
):
    """Older phosjax hashed ``dropout: 0`` as written, apart from the ``0.0`` it now
    resolves to, and ``param_dtype: float32``, the block's default, apart from none: a
    bench it made would no longer plan its cells. It resumes under its own ids (its rows
    and checkpoints), as an uninterrupted run; finished, it reads them, and the same mlp
    written otherwise adds nothing."""
    mlp = {"name": "mlp", "width": 8, "options": {"dropout": 0, "param_dtype": "float32"}}
    config = tiny_config(models=[mlp], seeds=1)
    old = tmp_path / "old"
    with monkeypatch.context() as older:  # ids from the options as written, as before
        older.setattr(_registry, "float_options", lambda *args: set(), raising=False)
        unchanged = lambda self, config: config
        older.setattr(_registry.ModelSpec, "without_defaults_given", unchanged, raising=False)
        with killed_after_save(6):
            run(config, old, datasets=toy, progress=False)
    stored = pd.read_parquet(old / _layout.CELLS)[["cell_id", "group_id", "model_id"]]
    run(config, old, datasets=toy, progress=False)
    run(config, tmp_path / "whole", datasets=toy, progress=False)
    ids = ["cell_id", "group_id", "model_id"]
    resumed, whole = frame(old), frame(tmp_path / "whole")
    assert set(resumed.cell_id) == set(stored.cell_id) != set(whole.cell_id)
    written = '{"dropout": 0, "input_kind": null, "param_dtype": "float32", "pool": "mean"}'
    assert set(resumed.options) == {written}
    apart = [*ids, "options"]  # each bench as its phosjax wrote it, the numbers alike
    pd.testing.assert_frame_equal(resumed.drop(columns=apart), whole.drop(columns=apart))
    assert pd.read_parquet(old / _layout.CELLS)[ids].equals(stored)
    assert run(config, old, datasets=toy, progress=False).cell_id.unique().tolist() == list(
        stored.cell_id
    )
    with pytest.raises(BenchError, match=r"^the bench already has every model named, \["):
        add_models_to(old, [{"name": "mlp", "width": 8}], datasets=toy, progress=False)


def test_a_bench_that_trained_one_model_twice_under_two_ids_is_refused_saying_why(
    tmp_path, toy, monkeypatch
):
    """Older phosjax trained ``{mlp, param_dtype: float32}`` beside ``mlp`` as another
    model; now one, the bench no longer plans the second's cells: adding a model to it
    was refused as if its config were edited or its model's code changed. It still reads."""
    again = {"name": "mlp", "width": 8, "options": {"param_dtype": "float32"}}
    config = tiny_config(models=[{"name": "mlp", "width": 8}, again], seeds=1)
    with monkeypatch.context() as older:  # ids from the options as written, as before
        unchanged = lambda self, config: config
        older.setattr(_registry.ModelSpec, "without_defaults_given", unchanged, raising=False)
        run(config, tmp_path, datasets=toy, progress=False)
    stored = pd.read_parquet(tmp_path / _layout.CELLS)
    [twice] = stored.cell_id[stored.options.str.contains("param_dtype")]
    read = run(config, tmp_path, datasets=toy, progress=False)
    assert sorted(read.cell_id.unique()) == sorted(stored.cell_id)
    with pytest.raises(BenchError) as raised:
        add_models_to(tmp_path, ["logreg"], datasets=toy, progress=False)
    assert str(raised.value) == (
        f"{str(tmp_path / _layout.CONFIG)!r} plans once 1 of the bench's 2 cells ({twice}) "
        "that older phosjax trained a second time under other ids, for a models entry giving "
        "an option at its block's default (param_dtype: float32): the same model as another "
        "entry's. Finished, the bench still reads; to train more, give its config to `python "
        "-m phosjax.bench.new --config FILE --dir NEW_DIR`."
    )
