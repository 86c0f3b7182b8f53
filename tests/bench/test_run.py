"""`run` and `add_models_to` on a tiny bench: results, files, re-runs, refusals, schemas."""

import collections
import dataclasses
import errno
import fcntl
import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time
import types

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

import phosjax as px
from phosjax.bench import (
    BenchConfig,
    BenchError,
    _directory,
    _layout,
    _plan,
    _profile,
    _runner,
    _store,
    add_models_to,
    load_config,
    plan,
    run,
)
from phosjax.bench._checkpoint import Checkpoints
from phosjax.bench._directory import choose_config, choose_config_together, export_locked
from phosjax.bench._interrupt import UnreadAtEnd
from phosjax.bench._plan import Plan, PlannedCell, PlannedGroup
from phosjax.bench._profile import (
    MemorySampler,
    ProfileFiles,
    RunClock,
    init_rows,
    time_start_up,
)
from phosjax.bench._runner import jobs
from phosjax.bench._store import (
    TEMPORARY,
    drop_parts_after,
    kept_schema,
    machine,
    part_path,
    remove_stale_temporaries,
    widen_parts,
    write_table,
    write_text,
)
from phosjax.bench._summary import profile_text, read_profile
from phosjax.bench._train import _restored, chunk_rows
from phosjax.bench.add_models import main as add_models_main
from phosjax.bench.export import main as export_main
from phosjax.bench.profile import main as profile_main
from phosjax.bench.view import BenchFiles, BrokenFileError
from phosjax.bench.view._api import curves, leaderboard
from phosjax.models import ModelConfig, register_model, registered_models
from phosjax.models._registry import FRAME_OPTIONS
from phosjax.models.graph import GraphModel, node
from phosjax.train import Cell, Chunk, GroupState, HParams, init_group, plan_groups, train_grid
from phosjax.train._grid import chunk_frame
from tests.bench.runner_tiny import Killed, fake_toy_datasets, killed_after_save, tiny_config
from tests.compiles import compiles_seen
from tests.data import tfds_toys

NOT_STEP_TIME = lambda frame: frame.drop(columns="step_time_s")


class GraphNet(nn.Module):
    """A graph model the bench can train: the output of its ``head`` node is the logits."""

    graph: GraphModel

    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        return self.graph(x, train, outputs="head")["head"]

    def to_json(self, x: jax.Array | None = None) -> str:
        return self.graph.to_json(x)


def graph_net(config: ModelConfig) -> GraphNet:
    """stem -> relu, plus a skip around it, -> head."""
    spec = {
        "stem": nn.Dense(config.widths[0]),
        "act": nn.relu,
        "skip": node(inputs=("act", "stem"), combine="add"),
        "head": nn.Dense(config.num_classes),
    }
    return GraphNet(GraphModel(spec))


GRAPH_NET = "test_run_graph_net"
if GRAPH_NET not in registered_models():  # registered before any bench records the registry
    register_model(GRAPH_NET, build=graph_net, width=8)


def sort(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["cell_id", "step", "split"], ignore_index=True)


@pytest.fixture(scope="module")
def bench(tmp_path_factory, toy) -> tuple[pathlib.Path, pd.DataFrame]:
    """An mlp-only bench, trained once for the tests of this module."""
    root = tmp_path_factory.mktemp("bench") / "b"
    started = time.perf_counter()
    results = run(tiny_config(models=[{"name": "mlp", "width": 8}]), root, datasets=toy)
    WALL_S[root] = time.perf_counter() - started
    return root, results


WALL_S: dict[pathlib.Path, float] = {}
"""The seconds `bench`'s run took."""


def test_results_are_one_tidy_frame(bench, toy):
    root, results = bench
    loaded = pd.read_parquet(root / _layout.RESULTS)
    pd.testing.assert_frame_equal(sort(loaded), sort(results))
    # 2 cells x (12 train rows + test rows at steps 6 and 12)
    assert len(results) == 2 * (12 + 2)
    assert list(results.columns[:6]) == list(_layout.CELL_COLUMNS)
    assert {"learning_rate", "depth", "width", "seed", "loss", "accuracy", "step_time_s"} <= set(
        results.columns
    )
    test = results[results.split == "test"]
    assert sorted(test.step.unique()) == [6, 12]
    assert test.task_loss.isna().all() and results[results.split == "train"].grad_norm.notna().all()
    assert results.dtypes["step"] == np.int64 and results.dtypes["loss"] == np.float32


def test_results_equal_the_engine_trained_alone(bench, toy):
    root, results = bench
    cells = pd.read_parquet(root / _layout.CELLS)
    grid = [c.cell for c in plan(tiny_config(models=[{"name": "mlp", "width": 8}]), toy).cells]
    assert len(grid) == len(cells) == 2
    engine = train_grid(grid, datasets=toy, strategy="vmap", chunk_steps=6).metrics
    engine = engine.assign(cell_id=engine.cell.map(dict(enumerate(cells.cell_id))))
    shared = [c for c in engine.columns if c in results.columns]
    metrics = set(shared) - {"cell_id", "step", "split"}
    assert {"loss", "task_loss", "accuracy", "grad_norm"} <= metrics  # every engine metric
    assert metrics == set(engine.columns) - {"cell", "cell_id", "step", "split"}
    pd.testing.assert_frame_equal(
        sort(results)[shared], sort(engine)[shared], check_exact=False, rtol=1e-6
    )


def test_env_json_keeps_the_environments_of_earlier_runs_on_other_machines(tmp_path):
    config = BenchConfig(models=["mlp"], datasets=["toy"])
    other = {"packages": {"jax": "0.4.0"}, "python": "3.10", "host": "gpu-box", "devices": []}
    (tmp_path / _layout.ENV).write_text(json.dumps(other))
    _directory.write_meta(tmp_path, config, ["mlp"], 1)
    env = json.loads((tmp_path / _layout.ENV).read_text())
    assert env["host"] != "gpu-box" and env["earlier"] == [other]
    _directory.write_meta(tmp_path, config, ["mlp"], 1)  # the same machine again: no new entry
    assert json.loads((tmp_path / _layout.ENV).read_text()) == env
    (tmp_path / _layout.ENV).write_text(json.dumps({**other, "earlier": [{**other, "host": "a"}]}))
    _directory.write_meta(tmp_path, config, ["mlp"], 1)
    earlier = json.loads((tmp_path / _layout.ENV).read_text())["earlier"]
    assert [e["host"] for e in earlier] == ["a", "gpu-box"]  # oldest first


def test_env_json_of_a_bench_alternating_machines_lists_each_once(tmp_path, monkeypatch):
    """Each switch between two machines added an entry: 'earlier' grew without bound."""
    config = BenchConfig(models=["mlp"], datasets=["toy"])
    machines = [{"packages": {}, "python": "3.11", "host": h, "devices": []} for h in "ab"]
    for run_on in [*machines, *machines, *machines]:
        monkeypatch.setattr(_directory, "environment", lambda run_on=run_on: dict(run_on))
        _directory.write_meta(tmp_path, config, ["mlp"], 1)
    env = json.loads((tmp_path / _layout.ENV).read_text())
    assert env["host"] == "b" and [e["host"] for e in env["earlier"]] == ["a", "b"]


def test_bench_files(bench):
    root, _ = bench
    marker = json.loads((root / _layout.MARKER).read_text())
    assert marker["format"] == _layout.FORMAT and "mlp" in marker["registered_models"]
    assert marker["processes"] == 1
    env = json.loads((root / _layout.ENV).read_text())
    assert env["packages"]["jax"] == jax.__version__
    assert env["packages"]["flax"] == flax.__version__
    assert env["backend"] == jax.default_backend() and env["process_count"] == 1
    assert env["devices"] == [
        {"id": d.id, "platform": d.platform, "kind": d.device_kind, "process": d.process_index}
        for d in jax.devices()
    ]
    assert len(env["devices"]) == 4 and {d["platform"] for d in env["devices"]} == {"cpu"}
    cells = pd.read_parquet(root / _layout.CELLS)
    assert list(cells.columns[:6]) == list(_layout.CELL_COLUMNS) and len(cells) == 2
    blurb = json.loads((root / _layout.BLURBS / f"{cells.model_id[0]}.json").read_text())
    assert blurb["root"]["params"] == 8 * 8 + 8 + 8 * 8 + 8 + 8 * 3 + 3
    status = json.loads((root / _layout.STATUS).read_text())["groups"]
    (entry,) = status.values()
    assert entry["finished"] and entry["steps_done"] == 12 and len(entry["cells"]) == 2
    phases = pd.read_parquet(root / _layout.PHASES)  # init, then each of the 2 segments'
    phases = phases[phases.group_id != _layout.BENCH].reset_index(drop=True)
    segment = list(_layout.PHASE_NAMES[1:])
    assert list(phases.phase) == ["init", *segment, *segment] and phases.seconds[0] > 0
    steps = list(zip(phases.start_step, phases.end_step, strict=True))
    assert steps == [(0, 0), *[(0, 6)] * 3, *[(6, 12)] * 3]
    memory = pd.read_parquet(root / _layout.MEMORY)
    assert (memory.host_rss_bytes > 0).all()


def test_the_runs_own_phases_add_up_to_its_wall_time_and_hold_the_groups(bench):
    """Planning, writing, blurbs, training and the results are rows of the bench as a
    whole, one after another: they add up to what the run took, and ``train`` holds the
    group's phases (and the writing of its results and checkpoints)."""
    root, _ = bench
    phases = pd.read_parquet(root / _layout.PHASES)
    own = phases[phases.group_id == _layout.BENCH]
    given = ("start", "data")  # no start-up: not a command; no data set loaded: given
    assert list(own.phase) == [p for p in _layout.BENCH_PHASES if p not in given]
    assert (own.total_s >= 0).all()
    assert own.start_step.isna().all() and (own["count"] == 1).all()
    assert 0.8 * WALL_S[root] <= own.total_s.sum() <= WALL_S[root]
    groups = phases[phases.group_id != _layout.BENCH].total_s.sum()
    assert 0 < groups < own.set_index("phase").total_s["train"]
    text = profile_text(root)
    assert text.splitlines()[0].startswith(f"bench {root}: 1 run took ")
    assert "train " in text and "training (step, eval) " in text


def test_a_commands_start_up_is_the_first_phase_of_its_run_and_timed_once():
    """``python -m phosjax.bench.new`` spent seconds starting (Python, jax, its imports)
    before the run's clock started: `time_start_up` has the next run time them."""
    since_start = time.time() - psutil.Process().create_time()
    time_start_up()
    first, second = RunClock().rows(), RunClock().rows()
    ((phase, seconds),) = [(r["phase"], r["seconds"]) for r in first]
    assert phase == "start" and since_start - 0.1 <= seconds <= since_start + 60
    assert second == []  # a later run of the process started later


def test_the_runs_own_phases_hold_only_the_groups_rows_written_since_runs_were_timed(tmp_path):
    """A bench trained before runs had rows of their own, then continued: its old groups'
    seconds are no part of the timed run's ``train`` (they made its rest negative)."""
    (tmp_path / _layout.PROFILE).mkdir()
    group = [("g", "init", 1.0, 1, 1.0), ("g", "step", 0.1, 50, 5.0)]
    own = [(_layout.BENCH, phase, 1.0, 1, 1.0) for phase in ("plan", "write", "blurbs")]
    rows = [*group, *own, (_layout.BENCH, "train", 4.0, 1, 4.0), ("g", "step", 0.1, 30, 3.0)]
    columns = ["group_id", "phase", "seconds", "count", "total_s"]
    frame = pd.DataFrame(rows, columns=columns).assign(peak_bytes=np.nan)
    frame.to_parquet(tmp_path / _layout.PHASES)
    assert profile_text(tmp_path).splitlines()[0] == (
        f"bench {tmp_path}: 1 run took 7 s: plan 1 s, write 1 s, blurbs 1 s, train 4 s (the "
        "groups' step 3 s; their results, checkpoints and status 1 s); training (step, eval) "
        "43% of it"
    )


def test_each_process_own_phases_hold_only_its_groups_rows_written_since_it_was_timed(
    tmp_path,
):
    """As above, of a bench two processes shared: process 1's old groups' rows counted,
    once process 0's file had run rows (its rows come after process 0's)."""
    (tmp_path / _layout.PROFILE).mkdir()
    columns = ["group_id", "phase", "seconds", "count", "total_s"]
    for i in range(2):
        own = f"{_layout.BENCH}.p{i}of2"
        rows = [(f"g{i}", "step", 0.1, 50, 5.0)]
        rows += [(own, phase, 1.0, 1, 1.0) for phase in ("plan", "write", "blurbs")]
        rows += [(own, "train", 4.0, 1, 4.0), (f"g{i}", "step", 0.1, 30, 3.0)]
        frame = pd.DataFrame(rows, columns=columns).assign(peak_bytes=np.nan)
        frame.to_parquet(tmp_path / _layout.PROFILE / f"phases.p{i}of2.parquet")
    assert profile_text(tmp_path).splitlines()[0] == (
        f"bench {tmp_path}: 2 runs took 14 s: plan 2 s, write 2 s, blurbs 2 s, train 8 s (the "
        "groups' step 6 s; their results, checkpoints and status 2 s); training (step, eval) "
        "43% of it"
    )


def test_a_runs_own_rows_note_the_device_memory_peak_as_the_groups_do(monkeypatch):
    """They had no ``peak_bytes``: the viewer's tooltip said the backend reports none."""
    monkeypatch.setattr(_profile, "device_bytes", lambda: (1.0, 2.0**20))
    clock = RunClock()
    clock.lap("plan")
    assert [row["peak_bytes"] for row in clock.rows()] == [2.0**20]


def test_a_run_started_by_a_command_then_one_from_python_are_two_runs(tmp_path):
    """Runs were counted by their first phase's rows: ``start``, which only a command's
    run has, so a bench continued from Python said "1 run"."""
    (tmp_path / _layout.PROFILE).mkdir()
    own = ["start", "plan", "train", "plan", "train"]
    rows = [(_layout.BENCH, phase, 1.0, 1, 1.0, np.nan) for phase in own]
    columns = ["group_id", "phase", "seconds", "count", "total_s", "peak_bytes"]
    pd.DataFrame(rows, columns=columns).to_parquet(tmp_path / _layout.PHASES)
    assert profile_text(tmp_path).startswith(f"bench {tmp_path}: 2 runs took 5 s: start 1 s,")


def test_the_runs_phases_are_listed_in_a_runs_order(tmp_path):
    """A run from Python (no ``start``) then one from a command listed ``start`` last,
    after ``results``, as if it came after them."""
    (tmp_path / _layout.PROFILE).mkdir()
    own = ["plan", "train", "results", "start", "plan", "train", "results"]
    rows = [(_layout.BENCH, phase, 1.0, 1, 1.0, np.nan) for phase in own]
    columns = ["group_id", "phase", "seconds", "count", "total_s", "peak_bytes"]
    pd.DataFrame(rows, columns=columns).to_parquet(tmp_path / _layout.PHASES)
    laps = profile_text(tmp_path).splitlines()[0].split(": ", 2)[2]
    assert laps.startswith("start 1 s, plan 2 s, train 2 s (") and "), results 2 s;" in laps


def test_step_times_add_up_to_the_measured_steps_and_evaluations_compile_excluded(bench):
    root, results = bench
    phases = pd.read_parquet(root / _layout.PHASES).groupby(["group_id", "phase"]).total_s.sum()
    train = results[results.split == "train"]
    [(group_id, rows)] = train.groupby("group_id")  # the bench's one group
    per_step = rows.drop_duplicates("step").step_time_s.sum()  # one cell's rows
    measured = phases[group_id, "step"] + phases[group_id, "eval"]
    np.testing.assert_allclose(per_step, measured, rtol=1e-9)


def test_profile_prints(bench, capsys):
    root, _ = bench
    assert profile_main(["--dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "init_s" in out and "host RSS" in out


def test_running_again_trains_nothing(bench, toy):
    root, results = bench
    before = {p.name: p.read_bytes() for p in (root / _layout.RESULTS).iterdir()}
    again = run(tiny_config(models=[{"name": "mlp", "width": 8}]), root, datasets=toy)
    pd.testing.assert_frame_equal(sort(again), sort(results))
    assert {p.name: p.read_bytes() for p in (root / _layout.RESULTS).iterdir()} == before


def test_the_same_config_with_its_numbers_written_otherwise_trains_nothing(bench, toy):
    """``weight_decay: 0`` (an int) is the stored ``0.0``: the bench resumes, not refuses."""
    root, results = bench
    before = {
        p.name: p.read_bytes() for p in [*(root / _layout.RESULTS).iterdir(), root / "config.yaml"]
    }
    grid = {
        "steps": 12,
        "batch_size": 16,
        "learning_rate": 0.01,
        "weight_decay": 0,
        "momentum": 0.9,
    }
    config = tiny_config(models=[{"name": "mlp", "width": 8.0}], grid=grid)
    assert config.digest() != tiny_config(models=[{"name": "mlp", "width": 8}]).digest()
    again = run(config, root, datasets=toy)
    pd.testing.assert_frame_equal(sort(again), sort(results))
    after = {
        p.name: p.read_bytes() for p in [*(root / _layout.RESULTS).iterdir(), root / "config.yaml"]
    }
    assert after == before


def test_a_moved_data_dir_is_the_same_bench_and_reads_from_there(bench, toy, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(bench[0], copy)
    results = pd.read_parquet(copy / _layout.RESULTS)
    moved = tiny_config(models=[{"name": "mlp", "width": 8}], data_dir=f"{tmp_path}/data/")
    assert moved.digest() == tiny_config(models=[{"name": "mlp", "width": 8}]).digest()
    again = run(moved, copy, datasets=toy)
    pd.testing.assert_frame_equal(sort(again), sort(results))  # nothing trained again
    assert load_config(copy / _layout.CONFIG).data_dir == f"{tmp_path}/data/"  # the given one


def test_a_damaged_newest_part_is_trained_again_as_its_error_says(bench, toy, tmp_path):
    """It said its rows could not be made again from the checkpoints; the group keeps the
    checkpoint before its newest part, from which they are, as the error now says."""
    root = tmp_path / "copy"
    shutil.copytree(bench[0], root)
    newest = max((root / _layout.RESULTS).iterdir())
    group = _layout.PART.fullmatch(newest.name)["group"]
    assert newest.name == f"part-{group}-000000007.parquet"
    newest.write_bytes(newest.read_bytes()[:50])  # cut short
    with pytest.raises(BrokenFileError) as raised:
        run(tiny_config(models=[{"name": "mlp", "width": 8}]), root, datasets=toy)
    assert str(raised.value).endswith(
        "; phosjax writes it whole, so something else changed it. Its rows are trained again "
        f"from its group's checkpoint of step 6 where the bench keeps it (checkpoints/{group}/6: "
        "a group keeps its two newest, so the one before its newest part): move the part out "
        f"of the bench, and the checkpoints of later steps out of checkpoints/{group}, delete "
        "the status file(s) (status*.json: the next run finds each group's progress in its "
        "checkpoints) and continue the bench (python -m phosjax.bench.new --dir DIR). Else "
        "restore it from a backup; or move it out of the bench (its rows are then missing) and "
        "train the bench again in a new --dir to have them."
    )
    shutil.move(newest, tmp_path / newest.name)  # done as it says
    shutil.move(root / _layout.CHECKPOINTS / group / "12", tmp_path / "12")
    (root / _layout.STATUS).unlink()
    again = run(tiny_config(models=[{"name": "mlp", "width": 8}]), root, datasets=toy)
    pd.testing.assert_frame_equal(NOT_STEP_TIME(sort(again)), NOT_STEP_TIME(sort(bench[1])))


def test_a_new_bench_naming_one_data_set_twice_is_refused(tmp_path):
    # It trained digits twice and reported it as two data sets.
    config = tiny_config(datasets=["digits", "digits:1.0.0"], data_dir=str(tmp_path / "data"))
    with pytest.raises(BenchError) as raised:
        run(config, tmp_path / "bench", progress=False)
    assert str(raised.value) == (
        "datasets names one data set twice: 'digits' and 'digits:1.0.0' are both "
        "digits:1.0.0, read alike (input 'image', label 'label', splits ['train', 'test']), "
        "which a bench would train and report as two; keep 'digits' alone: datasets: [digits]"
    )
    assert not (tmp_path / "bench").exists() and not (tmp_path / "data").exists()
    _directory.write_meta(tmp_path / "old", tiny_config(), ["mlp", "choicenet"], 1)
    with pytest.raises(BenchError, match="datasets names one data set twice"):
        run(config, tmp_path / "old", force=True, progress=False)  # before it moves aside
    assert [path.name for path in tmp_path.iterdir()] == ["old"]
    halves = {"digits:1.0.0": ["train[:50%]", "test"]}  # read otherwise: two data sets
    _plan.check_distinct_datasets(dataclasses.replace(config, dataset_splits=halves))


def test_each_data_set_named_twice_is_dropped_from_the_list_to_keep(tmp_path):
    """With two such pairs, the list to keep dropped only the first pair's second name:
    the next run was refused again."""
    names = ["digits", "mnist1d", "digits:1.0.0", "mnist1d:1.0.0"]
    config = tiny_config(datasets=names, data_dir=str(tmp_path / "data"))
    with pytest.raises(BenchError) as raised:
        _plan.check_distinct_datasets(config)
    assert str(raised.value).endswith(
        "which a bench would train and report as two (so are 'mnist1d' and 'mnist1d:1.0.0'); "
        "keep 'digits' alone: datasets: [digits, mnist1d]"
    )


@pytest.mark.parametrize("force", [False, True])
def test_a_bench_naming_one_data_set_twice_continues(tmp_path, monkeypatch, force):
    config = tiny_config(datasets=["digits", "digits:1.0.0"], data_dir=str(tmp_path / "data"))
    _directory.write_meta(tmp_path, config, ["mlp", "choicenet"], 1)  # made before the check
    monkeypatch.setattr(_runner, "_execute", lambda config, *args: config.datasets)
    assert run(config, tmp_path, force=force) == ["digits", "digits:1.0.0"]
    assert run(None, tmp_path, resume=True) == ["digits", "digits:1.0.0"]


def _prepare_versioned(version: str, data_dir: pathlib.Path) -> None:
    """Prepares ``toy_versions`` (`tfds_toys.ToyIntLabels`' examples) at ``version``."""
    versioned = types.new_class(
        "ToyVersions",
        (tfds_toys.ToyIntLabels,),
        {"skip_registration": True},
        lambda body: body.update(VERSION=tfds_toys.tfds.core.Version(version)),
    )
    tfds_toys.prepare(versioned, data_dir)


def test_a_bench_records_its_data_sets_versions_and_is_not_continued_on_another(tmp_path):
    """Once a newer version was prepared beside the one its cells trained on, a bench
    trained the models added to it on the newer one, its results mixing the two, and no
    file said which version any cell read."""
    data_dir, root = tmp_path / "data", tmp_path / "bench"
    _prepare_versioned("1.0.0", data_dir)
    grid = {"steps": 2, "batch_size": 4, "learning_rate": 0.01}
    mlp = {"name": "mlp", "width": 8}
    config = tiny_config(datasets=["toy_versions"], data_dir=str(data_dir), models=[mlp], grid=grid)
    run(config, root, progress=False)
    marker = json.loads((root / _layout.MARKER).read_text())
    assert marker["datasets"] == {"toy_versions": "toy_versions:1.0.0"}
    assert [key for key in marker if f'"{key}"' not in _layout.__doc__] == []  # documented
    _prepare_versioned("1.0.1", data_dir)
    with pytest.raises(BenchError) as raised:
        add_models_to(root, ["logreg"], progress=False)
    assert str(raised.value) == (
        f"data set 'toy_versions' now reads toy_versions:1.0.1, but the bench in {str(root)!r} "
        "trained its cells on toy_versions:1.0.0 (bench.json records it): continued, its "
        "results would mix the two. Continue it where 'toy_versions' reads toy_versions:1.0.0: "
        "give a data dir (--data_dir) where toy_versions:1.0.0 is the newest version of "
        "'toy_versions', or move toy_versions:1.0.1 out of its data dir; or train "
        "toy_versions:1.0.1 in a new bench (datasets: [toy_versions:1.0.1])."
    )
    assert set(pd.read_parquet(root / _layout.CELLS).model) == {"mlp"}
    shutil.rmtree(data_dir / "toy_versions" / "1.0.1")  # done as it says
    assert set(add_models_to(root, ["logreg"], progress=False).model) == {"mlp", "logreg"}
    assert json.loads((root / _layout.MARKER).read_text())["datasets"] == marker["datasets"]


def test_a_data_dir_beginning_with_a_tilde_is_the_home_folders(bench, toy, tmp_path, monkeypatch):
    """It was taken as a folder named ~ in the current one (``--data_dir=~/tfds``, or
    ``data_dir: ~/tfds`` in a config, which no shell expands), where phosjax.data.load
    reads ~/tfds from the home folder."""
    copy = tmp_path / "copy"
    shutil.copytree(bench[0], copy)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(copy)
    run(tiny_config(models=[{"name": "mlp", "width": 8}], data_dir="~/tfds"), copy, datasets=toy)
    assert load_config(copy / _layout.CONFIG).data_dir == str(tmp_path / "home" / "tfds")


def test_a_relative_data_dir_is_recorded_absolute(bench, toy, tmp_path, monkeypatch):
    """It was recorded relative: new --dir DIR run from another folder looked (or prepared
    the data sets) there."""
    copy = tmp_path / "copy"
    shutil.copytree(bench[0], copy)
    monkeypatch.chdir(tmp_path)
    run(tiny_config(models=[{"name": "mlp", "width": 8}], data_dir="data"), copy, datasets=toy)
    assert load_config(copy / _layout.CONFIG).data_dir == str(tmp_path / "data")


def test_another_config_is_refused_and_nothing_touched(bench, toy):
    root, _ = bench
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    with pytest.raises(
        BenchError,
        match=r"different config \(stored -> given: seeds: 2 -> 3\)\. Pass --resume .* --force",
    ):
        run(tiny_config(models=[{"name": "mlp", "width": 8}], seeds=3), root, datasets=toy)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_force_moves_the_old_bench_aside(bench, tmp_path, toy, capsys):
    root = tmp_path / "b"
    shutil.copytree(bench[0], root)
    other = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=[5])
    results = run(other, root, datasets=toy, force=True, progress=False)
    (old,) = tmp_path.glob("b.old-*")
    assert f"moved the old bench to {old}" in capsys.readouterr().err  # even without progress
    assert sorted(pd.read_parquet(old / _layout.RESULTS).seed.unique()) == [0, 1]
    assert results.seed.unique().tolist() == [5]


def test_force_moves_aside_a_bench_whose_name_is_near_the_longest_a_name_may_be(
    bench, tmp_path, toy, capsys
):
    """<name>.old-<time> was longer than a folder's name may be: a traceback of "File name
    too long"; the name is cut to fit."""
    root = tmp_path / ("b" * 250)
    shutil.copytree(bench[0], root)
    other = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=[5])
    results = run(other, root, datasets=toy, force=True, progress=False)
    (old,) = tmp_path.glob(f"{'b' * 235}.old-*")
    assert len(old.name) == 255
    assert f"moved the old bench to {old}" in capsys.readouterr().err
    assert sorted(pd.read_parquet(old / _layout.RESULTS).seed.unique()) == [0, 1]
    assert results.seed.unique().tolist() == [5]


def test_force_through_a_link_moves_the_bench_it_points_to_and_starts_over_there(
    bench, tmp_path, toy, capsys
):
    """It moved the link aside (the old bench left where it was, named by a link
    b.old-<time>) and made the new bench a folder in the link's place, off the disk the
    link pointed to."""
    real = tmp_path / "disk" / "b"
    shutil.copytree(bench[0], real)
    (tmp_path / "b").symlink_to(real)
    other = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=[5])
    run(other, tmp_path / "b", datasets=toy, force=True, progress=False)
    (old,) = real.parent.glob("b.old-*")
    assert f"moved the old bench to {old}" in capsys.readouterr().err
    assert sorted(pd.read_parquet(old / _layout.RESULTS).seed.unique()) == [0, 1]
    assert (tmp_path / "b").readlink() == real
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "disk"]
    assert pd.read_parquet(real / _layout.RESULTS).seed.unique().tolist() == [5]


@pytest.mark.parametrize("linked", [False, True], ids=["folder", "link"])
def test_force_on_a_full_disk_says_where_the_old_bench_moved(
    bench, tmp_path, toy, capsys, monkeypatch, linked
):
    """Making the new bench's folder on a full disk, after the old bench moved aside, ended
    in a traceback ('No space left on device'), unsaid where the old bench went."""
    real = tmp_path / "disk" / "b" if linked else tmp_path / "b"
    shutil.copytree(bench[0], real)
    if linked:
        (tmp_path / "b").symlink_to(real)
    make = pathlib.Path.mkdir

    def full_disk(path, *args, **kwargs):
        if path.resolve() == real.resolve():
            raise OSError(errno.ENOSPC, "No space left on device")
        return make(path, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", full_disk)
    other = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=[5])
    with pytest.raises(BenchError) as refused:
        run(other, tmp_path / "b", datasets=toy, force=True, progress=False)
    assert str(refused.value) == (
        f"cannot write the bench into --dir {str(tmp_path / 'b')!r}: [Errno 28] No space left "
        "on device; free space on its disk, or pick another --dir."
    )
    (old,) = real.parent.glob("b.old-*")
    assert f"moved the old bench to {old}" in capsys.readouterr().err
    assert sorted(pd.read_parquet(old / _layout.RESULTS).seed.unique()) == [0, 1]


@pytest.mark.parametrize(
    ("refusal", "allows"),
    [
        (errno.EACCES, "let this user read and write it (its permissions, those of its folder)"),
        (errno.EBUSY, "move it aside yourself"),  # the bench's folder a mount point
    ],
)
def test_force_refused_moving_the_old_bench_aside_is_one_error_naming_it(
    bench, tmp_path, refuse_moving, refusal, allows
):
    """A move aside the system refused (a read-only parent folder) was a traceback of the
    OSError; it is a BenchError naming the bench, where it was to go, and what to do."""
    root = tmp_path / "b"
    shutil.copytree(bench[0], root)
    refuse_moving(root, refusal)
    other = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=[5])
    with pytest.raises(BenchError) as error:
        choose_config(root, other, force=True)
    said = re.fullmatch(
        rf"cannot move the old bench {re.escape(repr(str(root)))} aside to "
        rf"'{re.escape(str(root))}\.old-\d{{8}}-\d{{6}}': (.*); (.*), or pick another --dir\.",
        str(error.value),
    )
    assert said is not None, str(error.value)
    assert said.groups() == (os.strerror(refusal), allows)
    assert (root / _layout.CONFIG).is_file()  # left where it was


def test_a_link_to_a_bench_of_another_config_names_where_force_would_move_it(bench, tmp_path):
    """It said --force would move it to latest.old-<time>, the link's name beside the link,
    where --force moves the bench the link points to beside that: runs/b7.old-<time>."""
    real = tmp_path / "runs" / "b7"
    shutil.copytree(bench[0], real)
    (tmp_path / "latest").symlink_to(real)
    other = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=[5])
    with pytest.raises(BenchError) as refused:
        choose_config(tmp_path / "latest", other)
    assert str(refused.value) == (
        f"{str(tmp_path / 'latest')!r} holds a bench with a different config (stored -> given: "
        "seeds: 2 -> [5]). Pass --resume to continue it under its stored config, or --force to "
        f"move it aside (to {real}.old-<time>) and start over, or pick another --dir."
    )


@pytest.mark.parametrize(
    ("given", "why"),
    [("same", "holds a bench of this config"), ("none", "holds a bench and no config was given")],
)
def test_force_on_a_bench_of_the_same_config_says_it_continues(bench, capsys, given, why):
    """--force (help: 'move an old bench aside') continued it without a word; given no
    config, it was said to be 'of this config'."""
    root = bench[0]
    config = tiny_config(models=[{"name": "mlp", "width": 8}]) if given == "same" else None
    stored = load_config(root / _layout.CONFIG)
    assert choose_config(root, config, force=True) == (stored, None)
    assert capsys.readouterr().err == (
        f"--force: {str(root)!r} {why}, so it continues; --force "
        "moves aside only a bench of another config. To start it over, pick another --dir "
        "or delete this one.\n"
    )
    assert not list(root.parent.glob(f"{root.name}.old-*"))


def test_force_on_a_finished_bench_of_the_same_config_plans_nothing(
    bench, toy, tmp_path, monkeypatch
):
    """It continues, as without --force: it planned (preparing every data set) first."""

    def planned(*args: object) -> None:
        raise AssertionError("planned")

    copy = tmp_path / "copy"
    shutil.copytree(bench[0], copy)
    monkeypatch.setattr("phosjax.bench._runner.plan", planned)
    config = tiny_config(models=[{"name": "mlp", "width": 8}])
    results = run(config, copy, datasets=toy, force=True, progress=False)
    pd.testing.assert_frame_equal(sort(results), sort(bench[1]))


def test_force_with_a_config_that_cannot_plan_moves_nothing(bench, tmp_path, toy):
    root = tmp_path / "b"
    shutil.copytree(bench[0], root)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    typo = tiny_config(models=[{"name": "mpl", "width": 8}], seeds=[5])
    with pytest.raises(BenchError, match="unknown model 'mpl'"):
        run(typo, root, datasets=toy, force=True, progress=False)
    assert list(tmp_path.glob("b.old-*")) == []
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_force_refuses_to_move_the_working_directory_aside(bench, tmp_path, toy, monkeypatch):
    root = tmp_path / "my b"  # the --dir it named was unquoted: two arguments
    shutil.copytree(bench[0], root)
    monkeypatch.chdir(root)
    other = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=[5])
    with pytest.raises(BenchError, match=r"cannot move '\.' aside.*parent with --dir 'my b'\.$"):
        run(other, ".", datasets=toy, force=True, progress=False)
    assert list(tmp_path.glob("my b.old-*")) == [] and (root / _layout.MARKER).is_file()


def test_a_bench_another_run_writes_is_refused_and_nothing_touched(bench, tmp_path, toy):
    """While a run holds the bench's lock, the same command, add_models_to and a --force
    with another config stop before writing: none trains the same groups alongside it,
    nor moves its directory from under it (it would then write into the new bench)."""
    root = tmp_path / "b"
    shutil.copytree(bench[0], root)
    config = tiny_config(models=[{"name": "mlp", "width": 8}])
    busy = r"'.*b' is being written by another run \(pid 12 on elsewhere since 1999\); wait"
    with open(root / _layout.LOCK, "w") as holder:  # another run's
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        holder.write("pid 12 on elsewhere since 1999\n")
        holder.flush()
        before = _contents(root)
        with pytest.raises(BenchError, match=busy):
            run(config, root, datasets=toy, progress=False)
        with pytest.raises(BenchError, match=busy):
            add_models_to(root, ["logreg"], datasets=toy, progress=False)
        other = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=[5])
        with pytest.raises(BenchError, match=busy):
            run(other, root, datasets=toy, force=True, progress=False)
        assert _contents(root) == before and not list(tmp_path.glob("b.old-*"))
    again = run(config, root, datasets=toy, progress=False)  # the lock went with its holder
    pd.testing.assert_frame_equal(sort(again), sort(bench[1]))


def test_a_run_of_another_process_count_is_refused_while_its_peers_lock_alongside(tmp_path):
    """A plain run (run.lock) and process 0 of 2 (run.p0of2.lock) started at once on a new
    directory both took their own lock before either wrote the marker, so both trained
    every cell of process 0's share and the bench kept both rows of each. Each now stops
    at the other's lock, naming it; the processes of one count still lock alongside."""
    said = (
        f"{str(tmp_path)!r} is being written by another run (pid 12 on elsewhere since 1999); "
        "wait for it to end, or stop it, then run the command again; or pick another --dir."
    )
    for held, taken in (((0, 2), (0, 1)), ((0, 1), (1, 2)), ((1, 2), (0, 3))):
        with open(tmp_path / _layout.process_name(_layout.LOCK, held), "w") as holder:
            fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
            holder.write("pid 12 on elsewhere since 1999\n")
            holder.flush()
            with pytest.raises(BenchError) as refused, _directory.locked(tmp_path, taken):
                pass
            assert str(refused.value) == said
    with _directory.locked(tmp_path, (0, 2)), _directory.locked(tmp_path, (1, 2)):
        pass  # peers


def test_force_does_not_move_aside_a_bench_an_export_reads(bench, tmp_path, toy):
    """--force with another config moved a bench aside while an export read it (it
    checked run.lock alone): the export's runs then got the new bench's config and
    blurbs, or none. It stops before writing, naming the export."""
    root = tmp_path / "b"
    shutil.copytree(bench[0], root)
    other = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=[5])
    with export_locked(root):
        before = _contents(root)
        with pytest.raises(BenchError, match=r"'.*b' is being exported by another export \(pid "):
            run(other, root, datasets=toy, force=True, progress=False)
        assert _contents(root) == before and not list(tmp_path.glob("b.old-*"))


def test_force_skips_a_lock_file_deleted_meanwhile_and_names_one_it_cannot_read(
    tmp_path, monkeypatch
):
    """--force's check of the locks raised a bare FileNotFoundError for a lock file
    deleted between listing and reading (held by none), and a bare PermissionError for
    one it may not read."""
    gone = _layout.process_name(_layout.LOCK, (1, 2))
    monkeypatch.setattr(_layout, "per_process_files", lambda folder, name: [gone, _layout.LOCK])
    with open(tmp_path / _layout.LOCK, "w") as holder:  # another run's, listed after it
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(BenchError, match=r"is being written by another run"):
            _directory.check_unlocked(tmp_path)

    def refused(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(_directory, "open", refused, raising=False)
    said = rf"holds '.*': \[Errno 13\] Permission denied: '.*{re.escape(gone)}'; let this user"
    with pytest.raises(BenchError, match=said):
        _directory.check_unlocked(tmp_path)


def test_a_bench_another_run_writes_while_one_plans_is_not_taken_over(tmp_path, toy, monkeypatch):
    """Two runs started at once on a new directory with configs of the same cells (here
    other strategies): the one that takes the lock second finds the bench the other
    wrote while it planned, and stops without writing, instead of overwriting that
    bench's config with its own and continuing its groups under it."""
    root = tmp_path / "b"
    other = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1)
    written: dict[str, bytes | bool] = {}
    locked = _runner.locked

    def the_other_run_first(*args: object) -> object:
        monkeypatch.setattr(_runner, "locked", locked)
        run(other, root, datasets=toy, progress=False)  # the whole of the other run
        written.update(_contents(root))
        return locked(*args)

    monkeypatch.setattr(_runner, "locked", the_other_run_first)
    mine = tiny_config(**{**other.to_dict(), "strategy": "sequential"})
    with pytest.raises(BenchError, match=r"another run changed '.*b' while this one was start"):
        run(mine, root, datasets=toy, progress=False)
    after = _contents(root)
    after.pop(_layout.LOCK), written.pop(_layout.LOCK)  # it names its last holder
    assert after == written
    assert _directory.open_bench(root)[0].strategy == "vmap"


def test_not_a_bench_is_refused(tmp_path, toy, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BenchError, match="not empty and holds no bench"):
        run(tiny_config(), tmp_path, datasets=toy)
    assert add_models_main(["--dir", str(tmp_path)]) == 2
    assert profile_main(["--dir", str(tmp_path)]) == 2
    assert "is not a bench" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda path: None, "no such directory"),
        (lambda path: path.write_text(""), "it is a file, not a directory"),
        (lambda path: path.mkdir(), "it has no bench.json"),
        (
            lambda path: (
                (path / "morph").mkdir(parents=True)
                or (path / "morph" / "iterations.parquet").write_bytes(b"")
            ),
            "it holds a run of `python -m phosjax.morph` (morph/iterations.parquet)",
        ),
    ],
    ids=["missing", "file", "empty", "morph_run"],
)
def test_profile_and_add_models_say_why_a_dir_is_not_a_bench(tmp_path, capsys, make, why):
    path = tmp_path / "given"
    make(path)
    for main in (add_models_main, profile_main):
        assert main(["--dir", str(path)]) == 2
        assert capsys.readouterr().err == (
            f"error: {str(path)!r} is not a bench: {why}. Make one with "
            "`python -m phosjax.bench.new --config CONFIG.yaml --dir DIR`.\n"
        )


@pytest.mark.parametrize("make", [lambda path: None, lambda path: path.mkdir()])
def test_every_command_quotes_a_dir_that_is_not_a_bench_alike(tmp_path, capsys, make):
    path = tmp_path / "given dir"
    make(path)
    mlflow = ["--mlflow", (tmp_path / "mlruns").as_uri()]
    said = []
    # Not the viewer: it waits for a bench to start in such a dir (test_view_server.py).
    for main, extra in [(add_models_main, []), (profile_main, []), (export_main, mlflow)]:
        assert main(["--dir", str(path), *extra]) == 2
        said.append(capsys.readouterr().err)
    assert said[0].startswith(f"error: {str(path)!r} is not a bench: ")
    assert said == [said[0]] * 3


def test_every_command_on_a_folder_a_run_is_starting_names_that_run(tmp_path, capsys):
    """A folder whose run held its lock and had not yet written bench.json was "not a
    bench ... Make one with `python -m phosjax.bench.new`", as one nobody holds."""
    root = tmp_path / "starting"
    mlflow = ["--mlflow", (tmp_path / "mlruns").as_uri()]
    commands = [(add_models_main, []), (profile_main, []), (export_main, mlflow)]

    def said() -> list[str]:
        errors = []
        for main, extra in commands:
            assert main(["--dir", str(root), *extra]) == 2
            errors.append(capsys.readouterr().err)
        return errors

    not_a_bench = (
        f"error: {str(root)!r} is not a bench: it has no bench.json. Make one with "
        "`python -m phosjax.bench.new --config CONFIG.yaml --dir DIR`.\n"
    )
    with _directory.locked(root, (0, 1)):
        (root / _layout.CONFIG).write_text("models: [logreg]\n")  # written before bench.json
        since = _layout.read_lock_holder((root / _layout.LOCK).read_text()).since
        holder = f"pid {os.getpid()} on {_layout.host_name(machine())} since {since}"
        assert (
            said()
            == [
                f"error: {str(root)!r} is not a bench yet: a run ({holder}) is starting the bench "
                "there; wait for it to write its first files, then run the command again.\n"
            ]
            * 3
        )
        (root / "notes.txt").write_text("mine")  # no bench starts among other files
        assert said() == [not_a_bench] * 3
    (root / "notes.txt").unlink()
    ended = subprocess.Popen([sys.executable, "-c", ""])
    ended.wait()  # a run killed before it wrote bench.json: its lock file stays
    (root / _layout.LOCK).write_text(f"pid {ended.pid} on {machine()} since {since}\n")
    assert said() == [not_a_bench] * 3


def test_a_folder_holding_many_benches_names_the_first_ten(tmp_path, capsys):
    """A folder such as /tmp, with hundreds of benches, filled the terminal with them."""
    for i in range(12):
        (tmp_path / f"b{i:02}").mkdir()
        (tmp_path / f"b{i:02}" / "bench.json").write_text("{}")
    assert profile_main(["--dir", str(tmp_path)]) == 2
    names = ", ".join(f"b{i:02}" for i in range(10))
    assert capsys.readouterr().err.endswith(
        f"it has no bench.json. Benches inside it: {names} and 2 more; "
        f"pass one: --dir {tmp_path / 'b00'}\n"
    )


def test_a_folder_holding_benches_quotes_the_one_to_pass(tmp_path):
    """--dir .../my b, unquoted, passed two arguments when pasted into a shell."""
    (tmp_path / "my b").mkdir()
    (tmp_path / "my b" / "bench.json").write_text("{}")
    assert _layout.benches_inside(tmp_path) == (
        f"Benches inside it: my b; pass one: --dir '{tmp_path / 'my b'}'"
    )


def test_a_folder_holding_benches_names_them_as_view_does(bench, toy, capsys):
    root = bench[0]
    parent = root.parent  # holds the bench b alone
    inside = f"Benches inside it: b; pass one: --dir {root}"
    for main in (add_models_main, profile_main):
        assert main(["--dir", str(parent)]) == 2
        assert capsys.readouterr().err.endswith(f"it has no bench.json. {inside}\n")
    new = f"{str(parent)!r} is not empty and holds no bench (bench.json)"
    then = f". {inside} (to continue it), or pick a new or empty --dir for a new bench."
    resume = f"--resume: {str(parent)!r} holds no bench to resume (no bench.json)"
    bench_only = "; give the --dir of a bench. "
    with pytest.raises(BenchError) as refused:  # b is a bench, not what no bench run left
        run(tiny_config(), parent, datasets=toy, progress=False)  # as new --dir does
    assert str(refused.value) == new + then
    with pytest.raises(BenchError) as refused:
        choose_config(parent, None, resume=True)
    assert str(refused.value) == resume + bench_only + inside
    (parent / "notes.txt").write_text("mine")  # beside the bench: named, as not a bench
    with pytest.raises(BenchError) as refused:
        run(tiny_config(), parent, datasets=toy, progress=False)
    assert str(refused.value) == f"{new}: it holds notes.txt, which no bench run left there{then}"
    with pytest.raises(BenchError) as refused:
        choose_config(parent, None, resume=True)
    held = ", and holds notes.txt, which no bench run left there"
    assert str(refused.value) == resume + held + bench_only + inside
    assert sorted(p.name for p in parent.iterdir()) == ["b", "notes.txt"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bench.json", "", r"cannot read '.*bench\.json': JSONDecodeError: Expecting value"),
        ("bench.json", "[1]", r"'.*bench\.json' holds a list, not the JSON object"),
        ("bench.json", "null", r"'.*bench\.json' holds null, not the JSON object"),  # NoneType
        ("status.json", "{", r"cannot read '.*status\.json': JSONDecodeError: Expecting prop"),
    ],
)
def test_a_damaged_bench_file_is_named_and_nothing_else_touched(
    bench, tmp_path, toy, capsys, name, content, message
):
    copy = tmp_path / "copy"
    shutil.copytree(bench[0], copy)
    (copy / name).write_text(content)
    unlocked = lambda: {k: v for k, v in _contents(copy).items() if k != _layout.LOCK}
    before = unlocked()
    with pytest.raises(BenchError, match=message + r".*restore it from a backup"):
        run(tiny_config(models=[{"name": "mlp", "width": 8}]), copy, datasets=toy)
    if name == "bench.json":
        assert add_models_main(["--dir", str(copy)]) == 2
        assert profile_main(["--dir", str(copy)]) == 2
        assert capsys.readouterr().err.count("restore it from a backup") == 2
    assert unlocked() == before  # the lock file names the last run that took it


def test_a_hand_edited_config_yaml_is_refused_and_nothing_touched(bench, toy, tmp_path):
    """Run under it, the bench would drop its cells from cells.parquet and train others."""
    copy = tmp_path / "copy"
    shutil.copytree(bench[0], copy)
    config = copy / _layout.CONFIG
    config.write_text(config.read_text().replace("steps: 12", "steps: 14"))
    ours = (_layout.LOCK, _layout.CONFIG)  # the lock names the last run; we edit the config
    unlocked = lambda: {k: v for k, v in _contents(copy).items() if k not in ours}
    before = unlocked()
    message = r"config\.yaml' no longer plans 2 of the bench's 2 cells as they were trained"
    with pytest.raises(BenchError, match=message + r" .*: it was edited"):
        run(None, copy, datasets=toy)
    with pytest.raises(BenchError, match=message):
        add_models_to(copy, ["logreg"], datasets=toy)
    config.write_text(
        config.read_text().replace("steps: 14", "steps: 12").replace("seeds: 2", "seeds: 3")
    )
    with pytest.raises(BenchError, match=message):  # its seeds' group would train them again
        run(None, copy, datasets=toy)
    assert unlocked() == before


def test_a_finished_bench_whose_models_code_changed_its_defaults_is_refused(
    bench, toy, tmp_path, monkeypatch
):
    """A finished bench run again is not planned: it printed its summary, as if its cells
    were still those of its config, where an unfinished one was refused."""
    copy = tmp_path / "copy"
    shutil.copytree(bench[0], copy)
    before = {k: v for k, v in _contents(copy).items() if k != _layout.LOCK}
    monkeypatch.setitem(FRAME_OPTIONS, "dropout", 0.5)  # as a new version of the code
    message = r"config\.yaml' no longer plans 2 of the bench's 2 cells as they were trained"
    with pytest.raises(BenchError, match=message + r" .*: it was edited, or a model's code"):
        run(None, copy, datasets=toy, progress=False)
    assert {k: v for k, v in _contents(copy).items() if k != _layout.LOCK} == before


def test_a_finished_bench_given_no_data_sets_for_its_own_is_refused_as_a_plan_refuses(
    bench, tmp_path
):
    """Read for its models' shapes, {'toy': 'junk'} raised AttributeError: 'str' object has
    no attribute 'input_shape'."""
    copy = tmp_path / "copy"
    shutil.copytree(bench[0], copy)
    with pytest.raises(BenchError, match=r"^datasets\['toy'\] is a str, not an ArrayDataset"):
        run(None, copy, datasets={"toy": "junk"}, progress=False)
    with pytest.raises(BenchError, match=r"^datasets has no 'toy', a data set of the config"):
        run(None, copy, datasets={}, progress=False)


@pytest.mark.parametrize(
    "entry",
    [
        {"name": "mlp", "width": 8, "depth": 1},
        {"name": "mlp", "width": 8, "options": {"dropout": 0}},
        {"name": "mlp", "width": 8, "options": {"param_dtype": "float32"}},
    ],
)
def test_an_entry_planning_only_the_benches_cells_is_not_added(bench, toy, tmp_path, entry):
    """{name: mlp, width: 8, depth: 1} is the bench's mlp (depth 1 is its default): it was
    said to be added and recorded in config.yaml, yet trained nothing. ``dropout: 0``
    (the default 0.0 written as an int) had other ids, refused as the same cells twice;
    ``param_dtype: float32`` (its block's default) too: its mlp was trained again."""
    copy = tmp_path / "copy"
    shutil.copytree(bench[0], copy)
    before = {k: v for k, v in _contents(copy).items() if k != _layout.LOCK}
    with pytest.raises(BenchError, match=r"^the bench already has every model named, \["):
        add_models_to(copy, [entry], datasets=toy, progress=False)
    assert {k: v for k, v in _contents(copy).items() if k != _layout.LOCK} == before


def test_a_config_that_is_no_bench_config_is_refused(tmp_path, toy):
    for config in ({"models": ["mlp"]}, "configs/example.yaml"):
        with pytest.raises(
            BenchError, match=rf"^config must be a BenchConfig .*, got {type(config).__name__} "
        ):
            run(config, tmp_path / "b", datasets=toy)
    assert not (tmp_path / "b").exists()


def test_a_folder_of_a_bench_is_refused_naming_the_bench(bench, capsys):
    assert profile_main(["--dir", str(bench[0] / _layout.RESULTS)]) == 2
    assert add_models_main(["--dir", str(bench[0] / _layout.RESULTS), "--models", "mlp"]) == 2
    inside = f"is inside the bench {str(bench[0].resolve())!r}: pass that one."
    assert capsys.readouterr().err.count(inside) == 2


def test_a_dir_that_is_a_file_is_refused(tmp_path, toy):
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    with pytest.raises(BenchError, match=r"--dir '.*notes\.txt' is a file; it must be a directory"):
        run(tiny_config(), path, datasets=toy)
    with pytest.raises(
        BenchError, match=r"notes\.txt/b/c' cannot be made: '.*notes\.txt' is a file"
    ):
        run(tiny_config(), path / "b" / "c", datasets=toy)
    assert path.read_text() == "mine"
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    with pytest.raises(
        BenchError, match=r"'.*link' is a link to '.*nowhere', which does not exist"
    ):
        run(tiny_config(), tmp_path / "link", datasets=toy)
    assert not (tmp_path / "nowhere").exists()


def test_a_dir_that_cannot_be_written_is_refused(bench, tmp_path, toy, monkeypatch):
    """A bench to add models to was told to 'pick a --dir you can write to', which would
    not hold it: it says to make the folder writable, or to copy the bench."""
    with pytest.raises(BenchError, match=r"cannot write the bench into --dir '/proc/bench'"):
        run(tiny_config(), "/proc/bench", datasets=toy)  # no folder can be made in /proc
    copy = tmp_path / "copy"
    shutil.copytree(bench[0], copy)

    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(_directory, "open", denied, raising=False)  # a read-only folder
    pick = r"--dir '.*ro': .*Permission denied.*run\.lock'; pick a --dir you can write to\.$"
    with pytest.raises(BenchError, match=pick):
        run(tiny_config(), tmp_path / "ro", datasets=toy)
    with pytest.raises(BenchError) as error:
        add_models_to(copy, ["logreg"], datasets=toy, progress=False)
    assert str(error.value).endswith(
        "'; make its folder writable, or copy the bench to a folder you can write and give "
        "that as --dir."
    )


def _contents(root: pathlib.Path) -> dict[str, bytes | bool]:
    """Every path under ``root``: a file's bytes, False for a folder."""
    return {str(p.relative_to(root)): p.is_file() and p.read_bytes() for p in root.rglob("*")}


@pytest.mark.parametrize(
    ("made", "shown"),
    [
        ({"config.yaml": "models: [cnn1d]\n", "results/": ""}, "config.yaml, results"),
        ({".tmp_notes.txt": "mine"}, ".tmp_notes.txt"),
        ({"status.json": "{}", "env.json": "{}"}, "env.json, status.json"),
        ({"config.yaml": "seeds: 1\n", "env.json": '{"mine": 1}'}, "config.yaml, env.json"),
        ({"checkpoints/": "", "profile/": ""}, "checkpoints, profile"),
        ({"results/part-g.p1of2-000000001.parquet": "", "results/README.txt": ""}, "results"),
        ({"checkpoints/mine/6": "", "profile/phases.p1of2.parquet": ""}, "checkpoints"),
    ],
)
def test_a_folder_with_files_named_as_a_bench_names_its_own_is_refused(tmp_path, toy, made, shown):
    """Only what a start killed before its marker leaves is taken for a bench's own: a
    user's files of the same names are named in the refusal, and kept."""
    root = tmp_path / "proj"
    for name, text in made.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("/"):
            (root / name).mkdir()
        else:
            (root / name).write_text(text)
    before = _contents(root)
    with pytest.raises(
        BenchError,
        match=rf"not empty and holds no bench \(bench\.json\): it holds {re.escape(shown)}, "
        "which no bench run left there",
    ):
        run(tiny_config(), root, datasets=toy)
    assert _contents(root) == before


def test_what_a_start_killed_before_its_marker_leaves_is_taken_over(tmp_path, toy, monkeypatch):
    """Killed inside write_meta (env.json, config.yaml and cells.parquet written, the marker
    not), with a
    writer's temporary left, a start with another config makes the bench there; so does
    one in a folder holding what a process sharing a bench, run apart, wrote before
    process 0's marker."""
    root = tmp_path / "b"
    write_json = _directory.write_json

    def killed_at_the_marker(path: pathlib.Path, value: object) -> None:
        if pathlib.Path(path).name == _layout.MARKER:
            raise Killed
        write_json(path, value)

    first = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1)
    with monkeypatch.context() as patch:
        patch.setattr(_directory, "write_json", killed_at_the_marker)
        with pytest.raises(Killed):
            run(first, root, datasets=toy, progress=False)
    (root / f"{TEMPORARY}elsewhere~1~bench.json").write_text("half")
    left = [_layout.CELLS, _layout.CONFIG, _layout.ENV, _layout.LOCK]
    assert sorted(p.name for p in root.iterdir())[1:] == left
    second = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=[7])
    results = run(second, root, datasets=toy, progress=False)
    assert results.seed.unique().tolist() == [7]
    assert json.loads((root / _layout.MARKER).read_text())["config_hash"] == second.digest()
    peers = tmp_path / "peers"
    for name in [
        "status.p1of2.json",
        "run.p1of2.lock",
        f"{TEMPORARY}elsewhere~1~status.p1of2.json",
        "results/part-mlp-be0040c2.p1of2-000000001.parquet",
        "results/part-mlp-be0040c2.p1of2-1000000001.parquet",  # past step 999,999,999
        "checkpoints/mlp-be0040c2.p1of2/6",
        f"checkpoints/mlp-be0040c2.p1of2/{TEMPORARY}elsewhere~1~12",
        "profile/phases.p1of2.parquet",
        "profile/memory.p1of2.parquet",
    ]:
        (peers / name).parent.mkdir(parents=True, exist_ok=True)
        (peers / name).write_text("")
    assert choose_config(peers, second) == (second, None)


@pytest.mark.parametrize("written", [_layout.CONFIG, _layout.CELLS, _layout.MARKER])
def test_add_models_stopped_as_it_records_a_model_trains_it_when_run_again(
    bench, tmp_path, toy, monkeypatch, written
):
    """Stopped right after it wrote bench.json, before cells.parquet, add_models run again
    said "the bench already has every model named, ['logreg'], and is finished", and `run`
    read the bench as finished without logreg's cells: the marker named the grown config,
    cells.parquet still the old one. It is written last now."""
    root = tmp_path / "b"
    shutil.copytree(bench[0], root)
    write_bytes = _store.write_bytes

    def stopped_after(path: pathlib.Path, data: bytes) -> None:
        write_bytes(path, data)
        if pathlib.Path(path).name == written:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(_store, "write_bytes", stopped_after)
        with pytest.raises(KeyboardInterrupt):
            add_models_to(root, ["logreg"], datasets=toy, progress=False)
    results = add_models_to(root, ["logreg"], datasets=toy, progress=False)
    assert results.groupby("model").cell_id.nunique().to_dict() == {"logreg": 2, "mlp": 2}
    assert results.groupby("model").step.max().to_dict() == {"logreg": 12, "mlp": 12}


def test_a_bench_older_phosjax_left_naming_a_model_without_its_cells_trains_them(
    bench, tmp_path, toy, monkeypatch
):
    """Older phosjax wrote bench.json before cells.parquet: add_models stopped between them
    left the grown config's hash over the old cells, and the bench read as finished
    without the new model ('already has every model named, ['logreg'], and is finished';
    `run` returned mlp's rows alone)."""
    root = tmp_path / "b"
    shutil.copytree(bench[0], root)
    cells = (root / _layout.CELLS).read_bytes()

    def stopped(*args: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:  # stopped once bench.json is written, not the cells
        patch.setattr(_directory, "write_table", lambda *args: None)
        patch.setattr(_runner, "widen_parts", stopped)
        with pytest.raises(KeyboardInterrupt):
            add_models_to(root, ["logreg"], datasets=toy, progress=False)
    assert (root / _layout.CELLS).read_bytes() == cells
    assert "logreg" in (root / _layout.CONFIG).read_text()
    results = add_models_to(root, ["logreg"], datasets=toy, progress=False)
    assert results.groupby("model").cell_id.nunique().to_dict() == {"logreg": 2, "mlp": 2}


def test_a_users_file_in_results_is_kept_and_not_read(bench, tmp_path, toy):
    root = tmp_path / "b"
    shutil.copytree(bench[0], root)
    (root / _layout.RESULTS / "README.txt").write_text("my notes")
    again = run(tiny_config(models=[{"name": "mlp", "width": 8}]), root, datasets=toy)
    pd.testing.assert_frame_equal(sort(again), sort(bench[1]))
    assert (root / _layout.RESULTS / "README.txt").read_text() == "my notes"


def test_per_process_files_are_read_as_one_frame_by_the_profile_and_the_viewer(tmp_path):
    """`read_profile` (the profile's reader) and `BenchFiles.tables` (the
    viewer's, which also skips files linking out of the bench) read the same frame."""
    root = tmp_path / "b"
    (root / _layout.PROFILE).mkdir(parents=True)
    (root / _layout.MARKER).write_text("{}")
    for name, group in [("phases.p1of2.parquet", "g.p1of2"), ("phases.p0of2.parquet", "g.p0of2")]:
        frame = pd.DataFrame({"group_id": [group], "phase": ["init"], "seconds": [1.0]})
        frame.to_parquet(root / _layout.PROFILE / name)
    (root / _layout.PROFILE / f"{TEMPORARY}h~1~phases.parquet").write_text("half")
    (root / _layout.PROFILE / "README.txt").write_text("my notes")
    read = read_profile(root, _layout.PHASES)
    assert read.group_id.tolist() == ["g.p0of2", "g.p1of2"]
    pd.testing.assert_frame_equal(BenchFiles(root).tables(_layout.PHASES), read)
    assert read_profile(root, _layout.MEMORY) is None


@pytest.mark.parametrize("damaged", [_layout.PHASES, _layout.MEMORY])
def test_a_damaged_profile_file_is_one_error_naming_it(bench, tmp_path, capsys, damaged):
    copy = tmp_path / "copy"
    shutil.copytree(bench[0], copy)
    (copy / damaged).write_bytes((copy / damaged).read_bytes()[:20])  # cut off mid-write
    assert profile_main(["--dir", str(copy)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: cannot read {str(copy / damaged)!r}: ")
    assert "delete it" in error and len(error.splitlines()) == 1


@pytest.mark.parametrize("damaged", [_layout.PHASES, _layout.MEMORY])
def test_a_profile_file_lacking_its_columns_is_one_error_naming_them(
    bench, tmp_path, capsys, damaged
):
    """A readable file of other columns (a user's table saved over it) was a KeyError
    traceback naming a column, not the file."""
    copy = tmp_path / "copy"
    shutil.copytree(bench[0], copy)
    pd.DataFrame({"x": [1.0]}).to_parquet(copy / damaged)
    assert profile_main(["--dir", str(copy)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {str(copy / damaged)!r} lacks the columns [")
    assert "of a profile (it has x); phosjax writes it whole" in error and "delete it" in error


def test_the_profile_of_a_bench_written_before_total_s_is_its_table(tmp_path):
    """Benches profiled before rows had ``total_s`` (2026-11-23 to 12-01) were refused as
    damaged ('lacks the columns ['total_s']... delete it'); their table is printed."""
    (tmp_path / "profile").mkdir()
    pd.DataFrame(
        {"group_id": "g", "phase": ["init", "step"], "seconds": [1.0, 0.01], "count": [1, 100]}
    ).assign(peak_bytes=float("nan")).to_parquet(tmp_path / _layout.PHASES)
    table = profile_text(tmp_path).splitlines()[-2:]
    assert table[0].split() == ["group_id"] and table[1].split()[:3] == ["g", "1", "0.01"]


def test_the_profile_and_the_viewer_name_a_damaged_profile_file_alike(bench, tmp_path):
    """One reader (`read_file`) for both: the same `BrokenFileError` (a `BenchError`),
    saying what to do, the profile's naming the path, the viewer's the bench file."""
    root = tmp_path / "copy"
    shutil.copytree(bench[0], root)
    (root / _layout.PHASES).write_bytes(b"PAR1 cut off")
    with pytest.raises(BrokenFileError) as profile:
        read_profile(root, _layout.PHASES)
    with pytest.raises(BrokenFileError) as viewer:
        BenchFiles(root).tables(_layout.PHASES)
    said = str(viewer.value).removeprefix(f"cannot read {_layout.PHASES}: ")
    assert said.startswith("ArrowInvalid: ")
    assert str(profile.value) == f"cannot read {str(root / _layout.PHASES)!r}: {said}"
    assert said.endswith(
        "; phosjax writes it whole, so something else changed it; restore it from a backup, "
        "or delete it: it holds only the profile, which the results and checkpoints do not need."
    )
    assert issubclass(BrokenFileError, BenchError)  # the command lines print it as one


@pytest.mark.parametrize("damaged", [_layout.PHASES, _layout.MEMORY])
def test_a_run_moves_a_damaged_profile_file_aside_and_profiles_anew(tmp_path, capsys, damaged):
    root = tmp_path / "b"
    (root / _layout.PROFILE).mkdir(parents=True)
    (root / damaged).write_bytes(b"PAR1 cut off")
    with MemorySampler() as sampler:
        files = ProfileFiles(root / _layout.PHASES, root / _layout.MEMORY, sampler)
        files.write(init_rows("g", 0.5, 0, float("nan")))
    (aside,) = (root / _layout.PROFILE).glob(f"{pathlib.Path(damaged).name}.old-*")
    assert aside.read_bytes() == b"PAR1 cut off"  # kept, not deleted
    assert read_profile(root, _layout.PHASES).group_id.tolist() == ["g"]
    assert read_profile(root, _layout.MEMORY) is not None  # a readable file again
    error = capsys.readouterr().err
    assert f"cannot read the profile file {str(root / damaged)!r}" in error
    assert f"moved it to {str(aside)!r} and started it anew" in error


def test_the_profile_stores_its_text_columns_as_string_as_documented(tmp_path):
    # pandas 3 converted them to large_string, not the string that results.md gives
    with MemorySampler() as sampler:
        files = ProfileFiles(tmp_path / "phases.parquet", tmp_path / "memory.parquet", sampler)
        files.write(init_rows("g", 0.5, 0, float("nan")))
    schema = pq.read_schema(tmp_path / "phases.parquet")
    assert (schema.field("group_id").type, schema.field("phase").type) == (pa.string(),) * 2
    assert schema.field("seconds").type == pa.float64()


def test_the_profile_of_a_bench_with_no_finished_group_says_so(tmp_path):
    text = profile_text(tmp_path)
    assert f"no phase timings: {str(tmp_path / _layout.PHASES)!r} does not exist" in text
    assert "no group has started yet, or it was deleted or moved" in text


def test_a_profile_without_phase_timings_names_the_file_and_still_shows_the_memory(tmp_path):
    """Its phases deleted, a finished bench's profile said only "no group has started"
    (false) and left out the memory samples it had."""
    (tmp_path / _layout.PROFILE).mkdir()
    memory = pd.DataFrame({"time_s": [0.0], "host_rss_bytes": [2.0**30], "device_bytes": [np.nan]})
    memory.to_parquet(tmp_path / _layout.MEMORY)
    first, *rest = profile_text(tmp_path).splitlines()
    assert f"{str(tmp_path / _layout.PHASES)!r} does not exist" in first
    assert "deleted or moved (the results do not need it;" in first
    assert rest == ["host RSS: peak 1024 MiB, mean 1024 MiB over 1 samples"]


def test_a_batch_size_larger_than_the_data_is_refused_and_nothing_written(tmp_path, toy):
    config = tiny_config(grid={"steps": 12, "batch_size": 100})
    with pytest.raises(
        BenchError, match=r"grid\.batch_size=100 is larger than the train split of data set 'toy'"
    ):
        run(config, tmp_path / "b", datasets=toy)
    assert not (tmp_path / "b").exists()


def test_graph_models_get_their_graph_written(tmp_path, toy):
    config = tiny_config(
        models=[{"name": "mlp", "width": 8}, GRAPH_NET],
        grid={"steps": 6, "batch_size": 16},
        seeds=1,
    )
    root = tmp_path / "b"
    results = run(config, root, datasets=toy, progress=False)
    assert set(results.model) == {"mlp", GRAPH_NET}
    model_ids = dict(pd.read_parquet(root / _layout.CELLS)[["model", "model_id"]].values)
    graphs = [p.name for p in (root / _layout.GRAPHS).iterdir()]
    assert graphs == [f"{model_ids[GRAPH_NET]}.json"]  # the mlp has no graph
    graph = json.loads((root / _layout.GRAPHS / graphs[0]).read_text())
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert list(nodes) == ["input", "stem", "act", "skip", "head"]
    assert nodes["skip"]["inputs"] == ["act", "stem"] and nodes["skip"]["op"] == "add"
    assert (nodes["stem"]["shape"], nodes["stem"]["params"]) == ([1, 8], 8 * 8 + 8)
    assert (nodes["head"]["shape"], nodes["head"]["params"]) == ([1, 3], 8 * 3 + 3)
    assert {"source": "stem", "target": "skip"} in graph["edges"]
    assert (graph["inputs"], graph["outputs"]) == (["input"], ["head"])


@pytest.mark.slow
def test_add_models_trains_only_the_new_cells_and_columns_load(bench, toy, tmp_path):
    root, results = bench
    copy = tmp_path / "b"
    shutil.copytree(root, copy)
    with pytest.raises(BenchError, match="no model was registered since"):
        add_models_to(copy, datasets=toy, progress=False)
    choicenet = {"name": "choicenet", "width": 8, "depth": 1}  # as tiny_config: its programs
    grown = add_models_to(copy, [choicenet], datasets=toy, progress=False)
    old = sort(grown[grown.model == "mlp"]).reset_index(drop=True)
    weights = [c for c in grown.columns if c.startswith("path_weight/")]
    assert len(weights) == 3 and old[weights].isna().all().all()  # 1 block x 3 branches
    pd.testing.assert_frame_equal(NOT_STEP_TIME(old[results.columns]), NOT_STEP_TIME(sort(results)))
    assert grown[grown.model == "choicenet"].cell_id.nunique() == 2
    schemas = {tuple(pq.read_schema(p).names) for p in (copy / _layout.RESULTS).iterdir()}
    assert len(schemas) == 1  # every part widened to the bench's columns
    assert len(pd.read_parquet(copy / _layout.CELLS)) == 4


def test_add_models_refuses_one_name_or_entry_for_the_list(bench, toy):
    for models in ("logreg", {"name": "mlp", "width": 4}):
        written = re.escape(f"write [{models!r}]")
        with pytest.raises(BenchError, match=rf"^models must be a list .*; {written}"):
            add_models_to(bench[0], models, datasets=toy)


def test_add_models_reads_models_given_as_an_iterator_once(bench, toy):
    """Read up by the names it imports for, its error said "every model named, []"."""
    with pytest.raises(BenchError, match=r"^the bench already has every model named, \['mlp'\]"):
        add_models_to(bench[0], iter(["mlp"]), datasets=toy)
    with pytest.raises(BenchError, match=r"^models is an empty list"):
        add_models_to(bench[0], iter([]), datasets=toy)


def test_add_models_of_nothing_new_to_a_finished_bench_plans_nothing(bench, monkeypatch):
    """It planned the bench first, preparing every data set (in its data_dir) only to say
    there was nothing to add."""

    def planned(*args, **kwargs):
        raise AssertionError("a finished bench was planned")

    monkeypatch.setattr(_runner, "plan", planned)
    with pytest.raises(BenchError, match=r"^the bench already has every model named, \['mlp'\]"):
        add_models_to(bench[0], ["mlp"])


def _killed_mlp_bench(root: pathlib.Path, toy) -> BenchConfig:
    """Makes in ``root`` `bench`'s bench killed after its step-6 checkpoint; its config."""
    config = tiny_config(models=[{"name": "mlp", "width": 8}])
    with killed_after_save(6):
        run(config, root, datasets=toy, progress=False)
    return config


def _reads_counted(monkeypatch, module, name: str) -> collections.Counter:
    """Counts, by file name, the calls of ``module.name`` on one file from now on."""
    counts: collections.Counter = collections.Counter()
    read = getattr(module, name)

    def counted(path, *args, **kwargs):
        if isinstance(path, str | os.PathLike):  # not a list of files
            counts[pathlib.Path(path).name] += 1
        return read(path, *args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return counts


def test_continuing_reads_cells_parquet_once_to_plan(tmp_path, toy, monkeypatch):
    """cells.parquet was read after each plan twice (its stored ids, again in the run),
    and by add_models_to once more for whether the plan had new cells: once per plan now,
    besides _finished_hparams's and _check_keeps_cells's reads."""
    config = _killed_mlp_bench(tmp_path / "b", toy)
    shutil.copytree(tmp_path / "b", tmp_path / "c")
    counts = _reads_counted(monkeypatch, pd, "read_parquet")
    run(config, tmp_path / "b", datasets=toy, progress=False)
    assert counts[_layout.CELLS] == 3
    counts.clear()
    entry = {"name": "mlp", "width": 8, "depth": 1}  # the bench's own cells: continued
    add_models_to(tmp_path / "c", [entry], datasets=toy, progress=False)
    assert counts[_layout.CELLS] == 4  # the plan of the grown config too


def test_a_continued_run_reads_each_parts_schema_once(tmp_path, toy, monkeypatch):
    """It read every part's schema for the columns kept, then all again to widen them."""
    config = _killed_mlp_bench(tmp_path, toy)
    parts = [path.name for path in _layout.part_files(tmp_path / _layout.RESULTS)]
    counts = _reads_counted(monkeypatch, pq, "read_schema")
    run(config, tmp_path, datasets=toy, progress=False)
    assert parts and dict(counts) == dict.fromkeys(parts, 1)


def test_add_models_refuses_an_empty_list_saying_no_model_was_named(bench, toy):
    before = {p: p.read_bytes() for p in bench[0].rglob("*") if p.is_file()}
    with pytest.raises(BenchError) as raised:
        add_models_to(bench[0], [], datasets=toy)
    assert str(raised.value) == (
        "models is an empty list: no model was named; name some (['mlp'], or entries such "
        "as [{'name': 'mlp', 'width': 64}]), or pass None to add every model registered "
        "since the bench was made."
    )
    assert {p: p.read_bytes() for p in bench[0].rglob("*") if p.is_file()} == before


def test_add_models_command_of_an_empty_list_says_to_leave_models_out(tmp_path, capsys):
    """It said Python's words, 'or pass None to add every model registered since'."""
    assert add_models_main(["--dir", str(tmp_path), "--models", "[]"]) == 2
    assert capsys.readouterr().err == (
        "error: --models [] names no model; name some (--models mlp, or an entry '{name: mlp, "
        "width: [64]}'), or leave --models out to add every model registered since the bench "
        "was made.\n"
    )


def test_add_models_adds_another_configuration_of_a_model_the_bench_has(bench, toy, tmp_path):
    """An entry with other sizes adds the mlp again, once however often it is named; the
    bare name, or the entry the bench already has, adds nothing."""
    root, results = bench
    copy = tmp_path / "b"
    shutil.copytree(root, copy)
    wider = {"name": "mlp", "width": 16}
    grown = add_models_to(
        copy, ["mlp", wider, {"name": "mlp", "width": 8}, wider], progress=False, datasets=toy
    )
    assert sorted(grown.groupby("width").cell_id.nunique().items()) == [("16", 2), ("8", 2)]
    old = sort(grown[grown.width == "8"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(NOT_STEP_TIME(old[results.columns]), NOT_STEP_TIME(sort(results)))
    assert _directory.open_bench(copy)[0].models == [{"name": "mlp", "width": 8}, wider]
    with pytest.raises(BenchError, match=r"already has every model named, \['mlp', \{'name'"):
        add_models_to(copy, ["mlp", wider], datasets=toy, progress=False)


def test_add_models_command_reads_entries_as_yaml_and_names_a_bad_one(bench, capsys):
    assert add_models_main(["--dir", str(bench[0]), "--models", "{name: mlp, width: [16"]) == 2
    assert "--models '{name: mlp, width: [16' is not a YAML mapping" in capsys.readouterr().err
    assert add_models_main(["--dir", str(bench[0]), "--models", "{nam: mlp}"]) == 2
    assert "unknown key 'nam' in a models entry" in capsys.readouterr().err


def test_add_models_command_reads_a_yaml_list_as_new_does(bench, capsys):
    """``--models '[mlp, nosuch]'``, as ``new`` takes it, names two models (not one
    model '[mlp, nosuch]')."""
    assert add_models_main(["--dir", str(bench[0]), "--models", "[mlp, nosuch]"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown model 'nosuch'; registered ")
    assert add_models_main(["--dir", str(bench[0]), "--models", "[mlp, {name: cnn1d"]) == 2
    assert "--models '[mlp, {name: cnn1d' is not a YAML list (" in capsys.readouterr().err


def test_add_models_command_reads_names_joined_by_commas_as_new_does(bench, capsys):
    """``--models mlp,mlpp`` was one model, 'mlp,mlpp', near none."""
    assert add_models_main(["--dir", str(bench[0]), "--models", "mlp,mlpp"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown model 'mlpp' (did you mean 'mlp'?)")


def test_add_models_command_refuses_an_empty_name_between_commas_as_new_does(bench, capsys):
    """``--models mlp,`` said "unknown model ''; registered models: ..."."""
    assert add_models_main(["--dir", str(bench[0]), "--models", "mlp,"]) == 2
    assert capsys.readouterr().err.startswith("error: --models 'mlp,' holds an empty name")


def test_add_models_names_an_unknown_model_without_saying_it_adds_it(bench, capsys):
    assert add_models_main(["--dir", str(bench[0]), "--models", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'nosuch'" in err
    assert "adding models" not in err  # printed before the check, once


@pytest.mark.parametrize("index", [0, 1])
def test_only_process_0_says_which_models_add_models_adds(
    bench, toy, tmp_path, capsys, monkeypatch, index
):
    """Every process sharing the bench said 'adding models ['logreg'] to DIR': a terminal
    the processes share showed it once per process."""
    copy = tmp_path / "b"
    shutil.copytree(bench[0], copy)
    monkeypatch.setattr(jax, "process_index", lambda: index)
    monkeypatch.setattr(_runner, "_execute", lambda *args: None)  # as it trains
    add_models_to(copy, ["logreg"], datasets=toy)
    said = f"adding models ['logreg'] to {copy}\n"
    assert capsys.readouterr().err == (said if index == 0 else "")


def test_running_again_keeps_the_models_registered_when_the_bench_was_made(bench, toy, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(bench[0], copy)
    marker = json.loads((copy / _layout.MARKER).read_text())
    made_with = [name for name in marker["registered_models"] if name != "choicenet"]
    marker["registered_models"] = made_with  # as if choicenet were registered since
    (copy / _layout.MARKER).write_text(json.dumps(marker))
    run(tiny_config(models=[{"name": "mlp", "width": 8}]), copy, datasets=toy, progress=False)
    stored = json.loads((copy / _layout.MARKER).read_text())
    assert stored["registered_models"] == made_with  # add_models_to still finds choicenet new
    assert stored["created"] == marker["created"]


def test_add_models_killed_midway_resumes_when_run_again(bench, toy, tmp_path):
    """A kill after the new model's first checkpoint leaves it in the stored config and
    registry: the same add_models_to again continues it (it has nothing new to add)."""
    copy = tmp_path / "b"
    shutil.copytree(bench[0], copy)
    with killed_after_save():
        add_models_to(copy, ["logreg"], datasets=toy, progress=False)
    grown = add_models_to(copy, ["logreg"], datasets=toy, progress=False)
    logreg = grown[grown.model == "logreg"]
    assert not logreg.duplicated(["cell_id", "step", "split"]).any()
    assert sorted(logreg[logreg.split == "train"].step.unique()) == list(range(1, 13))
    assert len(logreg) == 2 * (12 + 2)  # 2 seeds x (12 train rows, tests at 6 and 12)
    assert all(
        g["finished"] for g in json.loads((copy / _layout.STATUS).read_text())["groups"].values()
    )
    with pytest.raises(BenchError, match=r"already has every model named.*is finished"):
        add_models_to(copy, ["logreg"], datasets=toy, progress=False)
    with pytest.raises(BenchError, match="no model was registered since"):
        add_models_to(copy, datasets=toy, progress=False)


def test_add_models_of_no_new_cell_loads_the_data_sets_once(bench, toy, tmp_path, monkeypatch):
    """An entry planning only cells the bench has ({name: mlp, depth: 1}, its mlp's
    default depth) on an unfinished bench: the grown plan loaded the data sets, then the
    bench's own plan loaded them again (two ``data`` rows in its profile)."""
    copy = tmp_path / "b"
    shutil.copytree(bench[0], copy)
    status = json.loads((copy / _layout.STATUS).read_text())
    for group in status["groups"].values():
        group["finished"] = False  # as a kill leaves it
    (copy / _layout.STATUS).write_text(json.dumps(status))
    loads = []
    fake_toy_datasets(monkeypatch, lambda names, *_: loads.append(names) or toy)
    add_models_to(copy, [{"name": "mlp", "width": 8, "depth": 1}], progress=False)
    assert loads == [["toy"]]
    phases = pd.read_parquet(copy / _layout.PHASES)
    assert list(phases.phase).count("data") == 1  # the fixture's run was given its data


def test_add_models_removes_what_a_run_killed_mid_write_left(bench, toy, tmp_path):
    """add_models_to, as run does, removes the temporary files of a writer killed
    mid-write (its process gone): a checkpoint's is as large as the group's state, and
    an add_models killed and run again must not leave it behind."""
    copy = tmp_path / "b"
    shutil.copytree(bench[0], copy)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = f"{TEMPORARY}{machine()}~{dead.pid}~"
    group = next((copy / _layout.CHECKPOINTS).iterdir())
    paths = [copy / _layout.RESULTS / f"{left}part-x-000000001.parquet", group / f"{left}6"]
    for path in paths:
        path.write_bytes(b"half")
    add_models_to(copy, ["logreg"], datasets=toy, progress=False)
    assert [path for path in paths if path.exists()] == []


def test_a_writer_in_another_container_of_one_host_name_keeps_its_temporary_file(
    tmp_path, monkeypatch
):
    """Two containers given one host name share a bench's folder: one's run took the
    other's file being written, its pid gone in this container's pids, for one of a writer
    killed mid-write and deleted it; only this machine's (namespaces too) are judged so."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with monkeypatch.context() as other:  # the other container's writer
        other.setattr(_store, "_boot_and_namespaces", lambda: "#0123456789abcdef")
        other.setattr(os, "getpid", lambda: dead.pid)
        theirs = _store._temporary(tmp_path / "status.p1of2.json")
    mine = tmp_path / f"{TEMPORARY}{machine()}~{dead.pid}~status.json"
    theirs.write_text("being written")
    mine.write_text("half")
    assert remove_stale_temporaries(tmp_path) == [mine]
    assert theirs.read_text() == "being written"


@pytest.mark.skipif(not os.path.exists("/proc/self/ns"), reason="no /proc namespaces to read")
def test_the_machine_is_read_once_not_for_every_file_written(tmp_path, monkeypatch):
    """machine() read the boot id and the namespaces again for every file written (each
    temporary file names its machine); one process's are read once."""
    read, readlink = [], os.readlink
    monkeypatch.setattr(os, "readlink", lambda path: read.append(path) or readlink(path))
    _store._boot_and_namespaces.cache_clear()
    first = machine()  # the spy sees it read them
    assert read == ["/proc/self/ns/pid", "/proc/self/ns/mnt"]
    read.clear()
    for i in range(3):
        write_text(tmp_path / f"{i}.txt", "whole")
    assert (read, machine()) == ([], first)


def test_widen_parts_lets_parts_with_missing_columns_load(tmp_path):
    schema = pa.schema([("step", pa.int64()), ("aux/a", pa.float32()), ("aux/b", pa.float32())])
    parts = tmp_path / _layout.RESULTS
    diverged = pa.table({"step": [1, 3], "aux/a": pa.array([1.0, np.nan], pa.float32())})
    write_table(parts / "part-x-000000001.parquet", diverged)
    write_table(parts / "part-y-000000001.parquet", pd.DataFrame({"step": [2], "aux/b": [2.0]}))
    assert widen_parts(tmp_path, schema) == 2
    table = pq.read_table(parts).sort_by("step")
    assert table.schema == schema and table.column("step").to_pylist() == [1, 2, 3]
    assert table.column("aux/a").is_null().to_pylist() == [False, True, False]  # NaN kept
    assert np.isnan(table.column("aux/a")[2].as_py())
    assert table.column("aux/b").to_pylist() == [None, 2.0, None]
    assert list(tmp_path.rglob(".tmp*")) == []


def test_widen_parts_keeps_the_columns_of_parts_that_the_schema_lacks(tmp_path):
    # a model's aux loss its changed code no longer reports: its column was dropped from
    # every part written, its values lost
    schema = pa.schema([("step", pa.int64()), ("aux/b", pa.float32())])
    parts = tmp_path / _layout.RESULTS
    write_table(parts / "part-x-000000001.parquet", pd.DataFrame({"step": [1], "aux/a": [0.5]}))
    write_table(parts / "part-x-000000002.parquet", pd.DataFrame({"step": [2], "aux/b": [2.0]}))
    assert widen_parts(tmp_path, schema) == 2
    table = pq.read_table(parts).sort_by("step")
    assert table.column_names == ["step", "aux/b", "aux/a"]
    assert table.column("aux/a").to_pylist() == [0.5, None]
    assert kept_schema(tmp_path, schema).names == table.column_names


def test_widen_parts_reads_each_parts_schema_once(tmp_path, monkeypatch):
    """It read every part's schema twice (once for the columns kept, once to find the
    parts lacking some): a bench of many parts on a slow disk read them all again."""
    parts = tmp_path / _layout.RESULTS
    write_table(parts / "part-x-000000001.parquet", pd.DataFrame({"step": [1], "aux/a": [0.5]}))
    write_table(parts / "part-x-000000002.parquet", pd.DataFrame({"step": [2]}))
    read, read_schema = [], pq.read_schema
    monkeypatch.setattr(pq, "read_schema", lambda path: read.append(path.name) or read_schema(path))
    assert widen_parts(tmp_path, pa.schema([("step", pa.int64())])) == 1
    assert sorted(read) == ["part-x-000000001.parquet", "part-x-000000002.parquet"]
    assert pq.read_table(parts).column("aux/a").to_pylist() == [0.5, None]


def test_a_bench_made_before_compute_dtype_gains_its_cells_values_in_older_parts(
    bench, toy, tmp_path
):
    """Parts and plan of a phosjax before grid.compute_dtype lack its column: continued,
    each older row takes its cell's value ("float32"), not null, which a filter on it or
    a groupby by it would drop."""
    root, results = bench
    old = tmp_path / "b"
    shutil.copytree(root, old)
    for path in [*_layout.part_files(old / _layout.RESULTS), old / _layout.CELLS]:
        pq.write_table(pq.read_table(path).drop_columns(["compute_dtype"]), path)
    (old / _layout.STATUS).unlink()  # its groups' progress read from their checkpoints
    run(tiny_config(models=[{"name": "mlp", "width": 8}]), old, datasets=toy, progress=False)
    loaded = pd.read_parquet(old / _layout.RESULTS)
    assert loaded.compute_dtype.value_counts(dropna=False).to_dict() == {"float32": len(results)}
    pd.testing.assert_frame_equal(sort(loaded), sort(results))


def test_a_bench_made_before_momentum_was_nan_for_adam_gets_nan_in_older_parts(
    bench, toy, tmp_path
):
    """phosjax before 63a6348d wrote an adam cell's momentum 0.9 in its rows (and in
    cells.parquet), and no diverged column: continued, cells.parquet said NaN and the older
    rows kept 0.9, so the rows trained since (NaN) fell apart from them in a groupby."""
    root, results = bench
    old = tmp_path / "b"
    shutil.copytree(root, old)
    for path in _layout.part_files(old / _layout.RESULTS):
        table = pq.read_table(path).drop_columns([_layout.DIVERGED])
        at = table.schema.get_field_index("momentum")
        pq.write_table(table.set_column(at, "momentum", pa.array([0.9] * len(table))), path)
    cells = pq.read_table(old / _layout.CELLS)
    at = cells.schema.get_field_index("momentum")
    pq.write_table(
        cells.set_column(at, "momentum", pa.array([0.9] * len(cells))), old / _layout.CELLS
    )
    (old / _layout.STATUS).unlink()  # its groups' progress read from their checkpoints
    run(tiny_config(models=[{"name": "mlp", "width": 8}]), old, datasets=toy, progress=False)
    loaded = pd.read_parquet(old / _layout.RESULTS, dtype_backend="pyarrow")
    assert loaded.momentum.isna().sum() == len(results) == len(loaded)
    assert pd.read_parquet(old / _layout.CELLS).momentum.isna().all()
    pd.testing.assert_frame_equal(
        sort(pd.read_parquet(old / _layout.RESULTS)).drop(columns=[_layout.DIVERGED]),
        sort(results).drop(columns=[_layout.DIVERGED]),
    )


def test_a_process_that_cannot_read_the_part_files_stops_the_others_before_they_write(
    tmp_path, toy, monkeypatch
):
    # process 0 read the part files on its own, then wrote the bench's metadata, before it
    # heard that process 1 could not read them
    from phosjax.bench import _directory, _runner

    peer_failed = []
    real = _runner.kept_schema
    monkeypatch.setattr(_runner, "kept_schema", lambda *a: peer_failed.append(1) or real(*a))
    monkeypatch.setattr(
        _directory,
        "gather",
        lambda value: [value, "x" if peer_failed and peer_failed.pop() else value],
    )
    with pytest.raises(BenchError, match=r"process 1 could not read the bench's part files"):
        run(tiny_config(), tmp_path / "b", datasets=toy)
    assert not (tmp_path / "b" / _layout.CELLS).exists()


@pytest.mark.parametrize("key", ["g", "net[2]-ab12"])
def test_resuming_drops_the_parts_after_the_checkpoint_and_keeps_the_one_ending_there(
    tmp_path, key
):
    """Checkpointing every step, the part that starts at the restored step holds that
    step's rows: trained before the checkpoint, so kept; another group's parts, too. A
    model name may hold glob characters."""
    for first in (1, 2, 3):
        write_table(part_path(tmp_path, key, first), pd.DataFrame({"step": [first]}))
    write_table(part_path(tmp_path, f"{key}2", 3), pd.DataFrame({"step": [3]}))
    assert drop_parts_after(tmp_path, key, 2) == 1
    kept = sorted(p.name for p in (tmp_path / _layout.RESULTS).iterdir())
    assert kept == [
        f"part-{key}-000000001.parquet",
        f"part-{key}-000000002.parquet",
        f"part-{key}2-000000003.parquet",
    ]


def test_a_checkpoint_that_records_no_settings_resumes_as_the_uninterrupted_run(
    bench, toy, tmp_path
):
    """A bench killed after checkpointing step 6 as phosjax wrote checkpoints before a
    state recorded its settings (`GroupState.settings`), run again, resumes there (its
    restore had expected the settings) and ends with the uninterrupted bench's results."""
    save = Checkpoints.save

    def save_as_before(self: Checkpoints, step: int, state: GroupState) -> None:
        save(self, step, state.replace(settings={}))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Checkpoints, "save", save_as_before)
        with killed_after_save(6):
            run(tiny_config(models=[{"name": "mlp", "width": 8}]), tmp_path, datasets=toy)
    resumed = run(tiny_config(models=[{"name": "mlp", "width": 8}]), tmp_path, datasets=toy)
    pd.testing.assert_frame_equal(NOT_STEP_TIME(sort(resumed)), NOT_STEP_TIME(sort(bench[1])))


def test_a_checkpoint_that_records_no_settings_of_other_model_code_names_only_its_params(
    toy, tmp_path
):
    """Its refusal counted the seven settings it rightly lacks (a checkpoint of an older
    phosjax) among the leaves that differ: "...; and 7 more", all of them settings."""
    data, sgd = toy["toy"], HParams(optimizer="sgd")  # sgd: no moments beside the params
    [made_for], [group] = (
        plan_groups([Cell(ModelConfig("mlp", 3, data.input_shape, width=width), "toy", sgd)])
        for width in (8, 16)
    )
    checkpoints = Checkpoints(tmp_path)
    checkpoints.save(4, init_group(made_for, data).replace(settings={}))
    with pytest.raises(BenchError) as raised:
        _restored(checkpoints, 4, jax.eval_shape(lambda: init_group(group, data)))
    differ = [
        ("['blocks_0']['Dense_0']['bias']", "(1, 16)", "(1, 8)"),
        ("['blocks_0']['Dense_0']['kernel']", "(1, 16, 16)", "(1, 8, 8)"),
        ("['head']['kernel']", "(1, 16, 3)", "(1, 8, 3)"),
        ("['stem']['Dense_0']['bias']", "(1, 16)", "(1, 8)"),
        ("['stem']['Dense_0']['kernel']", "(1, 8, 16)", "(1, 8, 8)"),
    ]
    listed = "; ".join(f".params{p}: expected float32{e}, found float32{f}" for p, e, f in differ)
    assert str(raised.value).startswith(
        f"checkpoint '{tmp_path / '4'}' does not hold this group's training state ({listed}). "
        "Was the bench started with other model code?"
    ), raised.value


def test_a_chunks_rows_are_the_engines_a_metric_not_reported_null_not_nan():
    """The bench writes a chunk's rows as the engine's `chunk_frame` has them, in its
    order, a NaN measured kept; a metric a split does not report is null there (NaN in
    the engine's frame)."""
    nan = np.float32("nan")
    chunk = Chunk(
        np.array([3, 4]),
        {"grad_norm": np.array([[1.0, nan]], np.float32), "loss": np.array([[0.5, 2.0]])},
        {"loss": np.array([nan], np.float32)},
        np.array([4]),
        train_s=1.0,
        eval_s=3.0,
    )
    schema = pa.schema([
        ("cell_id", pa.string()), ("step", pa.int64()), ("split", pa.string()),
        ("diverged", pa.bool_()), ("grad_norm", pa.float32()), ("loss", pa.float32()),
        ("step_time_s", pa.float64()),
    ])  # fmt: skip
    table = chunk_rows(chunk, ({"cell_id": "c"},), schema)
    nulls = {name: table.column(name).is_null().to_pylist() for name in ("grad_norm", "loss")}
    assert nulls == {"grad_norm": [False, False, True], "loss": [False, False, False]}
    assert table.column("step_time_s").to_pylist() == [2.0, 2.0, None]
    engine = chunk_frame(chunk, [0]).rename(columns={"cell": "cell_id"}).assign(cell_id="c")
    written = table.to_pandas().drop(columns="step_time_s")
    pd.testing.assert_frame_equal(written, engine, check_dtype=False)


def test_a_diverged_cell_is_stored_as_nan_and_a_metric_not_reported_as_null(tmp_path, toy):
    """``pandas.read_parquet`` makes both NaN; Arrow (and the viewer) tells them apart. The
    cells are a group of two as `bench`'s, whose programs they run."""
    grid = {"steps": 12, "batch_size": 16, "learning_rate": [0.01, 1e30]}
    config = tiny_config(models=[{"name": "mlp", "width": 8}], grid=grid, seeds=1)
    run(config, tmp_path / "b", datasets=toy)
    table = pq.read_table(tmp_path / "b" / _layout.RESULTS)
    rows = table.to_pandas(types_mapper=pd.ArrowDtype)
    train, test = rows[rows.split == "train"], rows[rows.split == "test"]
    assert test["grad_norm"].isna().all() and test["task_loss"].isna().all()  # nulls
    assert not train[["loss", "task_loss", "grad_norm", "step_time_s"]].isna().any().any()
    assert not test[["loss", "accuracy"]].isna().any().any()
    blown = train.learning_rate == 1e30
    loss = train["loss"].to_numpy(dtype=float)
    assert np.isnan(loss[blown]).any() and np.isfinite(loss[~blown]).all()
    assert np.isnan(test["loss"][test.learning_rate == 1e30].to_numpy(dtype=float)).all()
    sent = curves(BenchFiles(tmp_path / "b"), None, ["loss", "grad_norm"])["series"]
    [blown_test] = [s for s in sent if s["split"] == "test" and "diverged" in s["values"]["loss"]]
    assert blown_test["values"]["loss"] == ["diverged", "diverged"]  # its rows say so
    assert all(s["values"]["grad_norm"] == [None] * 2 for s in sent if s["split"] == "test")


MLP_GROUPS = {
    "models": [{"name": "mlp", "width": 8}],
    "grid": {"steps": [6, 12], "batch_size": 16, "learning_rate": 0.01},
}
"""Two groups of mlp cells (a number of steps each): a share of one cell of either runs the
programs of the groups of one mlp cell that other tests here train."""


def test_processes_write_their_own_parts(tmp_path, toy):
    config = tiny_config(**MLP_GROUPS)
    planned = plan(config, toy)
    mine = [jobs(planned, (i, 2)) for i in range(2)]
    keys = [job.key for share in mine for job in share]
    assert len(set(keys)) == len(keys) == 4
    cells = [c.cell_id for share in mine for job in share for c in job.cells]
    assert sorted(cells) == sorted(c.cell_id for c in planned.cells)
    for index in (1, 0):  # process 1 may write before process 0 writes the marker
        run(config, tmp_path / "b", datasets=toy, process=(index, 2), progress=False)
    results = pd.read_parquet(tmp_path / "b" / _layout.RESULTS)
    assert sorted(results.cell_id.unique()) == sorted(cells)
    assert not results.duplicated(["cell_id", "step", "split"]).any()
    assert {p.name for p in (tmp_path / "b").glob("status*.json")} == {
        "status.p0of2.json",
        "status.p1of2.json",
    }
    # Another process count would train every group again, beside the parts of these.
    root = tmp_path / "b"
    assert json.loads((root / _layout.MARKER).read_text())["processes"] == 2
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    for process, count, how in [  # a command's user was told "(jax.distributed)" alone
        (None, 1, "(--processes 2 in new and add_models, jax.distributed's num_processes)"),
        ((0, 3), 3, "process i passing process=(i, 2)"),  # its count passed, not jax's
    ]:
        with pytest.raises(BenchError) as raised:
            run(config, root, datasets=toy, process=process, progress=False)
        assert str(raised.value) == (
            f"{str(root)!r} was started with 2 process(es), and this run has {count}: each "
            "process trains its own share of the cells, so a different count would train it "
            f"all again. Continue it with 2 process(es) {how}, or pick another --dir."
        )
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_a_folder_of_process_1_of_2_run_apart_is_not_started_by_one_process(tmp_path, toy):
    """Process 1 of 2, run apart, trains before process 0 writes the marker; a run of one
    process there then started a bench, trained every cell again and returned the cells
    of process 1's share twice (28 rows of a cell of 14). It is refused, as a bench
    started with 2 processes is, and nothing is written."""
    config = tiny_config(models=[{"name": "mlp", "width": 8}])  # a cell for each process
    root = tmp_path / "b"
    run(config, root, datasets=toy, process=(1, 2), progress=False)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    with pytest.raises(BenchError) as raised:
        run(config, root, datasets=toy, progress=False)
    assert str(raised.value).startswith(
        f"{str(root)!r} was started with 2 process(es), and this run has 1: "
    )
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    run(config, root, datasets=toy, process=(0, 2), progress=False)  # its own count: as ever


def _plan_of_groups(sizes: list[int]) -> Plan:
    """A plan of groups of ``sizes`` cells (``g<group>c<cell>``), for `jobs` alone."""
    groups = tuple(
        PlannedGroup(
            f"g{g}", tuple(PlannedCell(None, {"cell_id": f"g{g}c{c}"}) for c in range(n)), ()
        )
        for g, n in enumerate(sizes)
    )
    return Plan(groups, {}, ())


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5])
def test_processes_split_the_plan_s_cells_evenly_whatever_its_groups_sizes(count):
    """Each process took every n-th cell of each group, from its i-th: with 4 processes
    and groups of one or two cells, processes 2 and 3 trained nothing."""
    planned = _plan_of_groups([1, 2, 1, 1, 3, 1, 2, 5, 1])
    shares = [jobs(planned, (i, count)) for i in range(count)]
    cells = [c.cell_id for share in shares for job in share for c in job.cells]
    assert sorted(cells) == sorted(c.cell_id for c in planned.cells)  # each exactly once
    totals = [sum(len(job.cells) for job in share) for share in shares]
    assert max(totals) - min(totals) <= 1, totals
    for index, share in enumerate(shares):
        for job in share:  # a group's cells in its order, under this process's key
            group_id, suffix = job.key.split(".", 1) if count > 1 else (job.key, "")
            assert suffix == (f"p{index}of{count}" if count > 1 else "")
            [group] = [g for g in planned.groups if g.group_id == group_id]
            assert [c.cell_id for c in job.cells] == [
                c.cell_id for c in group.cells if c in job.cells
            ]


def test_groups_of_one_cell_are_spread_over_the_processes_unless_split_by_group():
    singles = _plan_of_groups([1] * 8)
    assert [len(jobs(singles, (i, 4))) for i in range(4)] == [2, 2, 2, 2]
    assert [len(jobs(singles, (i, 4), split=None)) for i in range(4)] == [8, 0, 0, 0]


ONE_CELL_GROUPS = {**MLP_GROUPS, "seeds": 1}
"""Two groups of one cell each."""


def test_two_processes_train_a_cell_each_of_two_one_cell_groups_as_one_process_would(tmp_path, toy):
    """Process 0 trained both groups' cells, process 1 none."""
    config = tiny_config(**ONE_CELL_GROUPS)
    alone = run(config, tmp_path / "alone", datasets=toy, progress=False)
    root = tmp_path / "b"
    for index in (0, 1):
        shared = run(config, root, datasets=toy, process=(index, 2), progress=False)
        status = json.loads((root / f"status.p{index}of2.json").read_text())
        assert len(status["groups"]) == 1, status
    pd.testing.assert_frame_equal(NOT_STEP_TIME(sort(shared)), NOT_STEP_TIME(sort(alone)))
    assert json.loads((root / _layout.MARKER).read_text())[_layout.SPLIT_KEY] == "plan"


def _old_bench(root: pathlib.Path, config: BenchConfig, **changes: object) -> None:
    """Writes a bench of ``config`` for two processes, as phosjax did before it recorded
    their split, its marker with ``changes``; nothing trained yet."""
    root.mkdir()
    (root / _layout.CONFIG).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    marker = {
        "format": 1,
        "created": "2026-12-01T00:00:00+00:00",
        "config_hash": config.digest(),
        "registered_models": registered_models(),
        "processes": 2,
    }
    (root / _layout.MARKER).write_text(json.dumps(marker | changes))


def test_a_bench_started_before_the_split_was_recorded_keeps_each_group_s_own_split(tmp_path, toy):
    """Its process 1 trained nothing of groups of one cell, and still does: a group's cells
    moved to another process would be trained twice, their checkpoints unread."""
    config, root = tiny_config(**ONE_CELL_GROUPS), tmp_path / "b"
    _old_bench(root, config)
    run(config, root, datasets=toy, process=(1, 2), progress=False)
    assert not (root / "status.p1of2.json").exists()  # nothing to train
    results = run(config, root, datasets=toy, process=(0, 2), progress=False)
    status = json.loads((root / "status.p0of2.json").read_text())
    assert len(status["groups"]) == 2 and results.cell_id.nunique() == 2
    assert _layout.SPLIT_KEY not in json.loads((root / _layout.MARKER).read_text())


def test_a_split_this_phosjax_does_not_know_is_refused_naming_it(tmp_path, toy):
    config, root = tiny_config(**ONE_CELL_GROUPS), tmp_path / "b"
    _old_bench(root, config, split="round")
    with pytest.raises(BenchError, match=r"bench.json' records the split 'round' of its cells"):
        run(config, root, datasets=toy, process=(1, 2), progress=False)
    assert not (root / "status.p1of2.json").exists()


def test_imports_given_as_one_string_are_refused_not_read_letter_by_letter(bench, tmp_path, toy):
    """imports='json' said '--import j: no module named 'j''."""
    written = re.escape("write ['json']")
    with pytest.raises(BenchError, match=rf"^imports must be a list .* string 'json'; {written}"):
        run(tiny_config(), tmp_path / "b", datasets=toy, imports="json")
    with pytest.raises(BenchError, match=rf"^imports must be a list .*; {written}"):
        add_models_to(bench[0], ["logreg"], datasets=toy, imports="json")
    assert not (tmp_path / "b").exists()


def test_a_directory_that_is_no_path_is_refused_naming_it(toy):
    """Not TypeError: expected str, bytes or os.PathLike object, not NoneType; in the
    viewer's words (it said 'got a NoneType: None', the runner 'got NoneType None')."""
    with pytest.raises(
        BenchError, match=r"^directory must be the bench's folder.*got a NoneType: None\.$"
    ):
        run(tiny_config(), None, datasets=toy)
    with pytest.raises(
        BenchError, match=r"^directory must be the bench's folder.*got an int: 3\.$"
    ):
        add_models_to(3, ["mlp"], datasets=toy)


def test_resume_and_force_together_are_refused_before_anything_is_written(tmp_path, toy):
    with pytest.raises(BenchError, match=r"^resume and force contradict each other: resume"):
        run(tiny_config(), tmp_path / "b", datasets=toy, resume=True, force=True)
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("process", [(2, 2), (-1, 2), (0, 0), (0,), (0, 1, 2), "01", (0.0, 2)])
def test_a_process_index_outside_its_count_is_refused_and_nothing_written(tmp_path, toy, process):
    with pytest.raises(
        BenchError,
        match=rf"process={re.escape(repr(process))} is not \(index, count\) with 0 <= index "
        r"< count: process i of n sharing a bench passes \(i, n\)",
    ):
        run(tiny_config(), tmp_path / "b", datasets=toy, process=process, progress=False)
    assert not (tmp_path / "b").exists()  # (-1, 2) trained a cell of process 1 beside it


def test_a_bench_that_does_not_record_its_process_count_continues(bench, tmp_path, toy):
    root = tmp_path / "b"
    shutil.copytree(bench[0], root)
    marker = json.loads((root / _layout.MARKER).read_text())
    del marker["processes"]  # as benches made before the count was recorded
    (root / _layout.MARKER).write_text(json.dumps(marker))
    results = run(tiny_config(models=[{"name": "mlp", "width": 8}]), root, datasets=toy)
    pd.testing.assert_frame_equal(sort(results), sort(bench[1]))
    assert json.loads((root / _layout.MARKER).read_text())["processes"] == 1


def test_abstract_init_then_real_init(toy):
    """Resuming traces `init_group` abstractly first; a real init afterwards still draws
    the cell's params from its seed (no value cached from the trace)."""
    from phosjax.train import Group, init_group

    cell = plan(tiny_config(models=[{"name": "mlp", "width": 5}]), toy).cells[0].cell
    group = Group((cell,), (0,))
    abstract = jax.eval_shape(lambda: init_group(group, toy["toy"]))  # the first trace
    state = init_group(group, toy["toy"])
    assert jax.tree.map(lambda a: (a.shape, a.dtype), abstract) == jax.tree.map(
        lambda a: (a.shape, a.dtype), state
    )
    init_key = jax.random.split(jax.random.key(cell.seed), 3)[0]
    x0 = jnp.zeros((1, *toy["toy"].input_shape))
    init = jax.jit(cell.model.build().init, static_argnames="train")  # one program, not eager ops
    expected = init(init_key, x0, train=False)["params"]
    got = jax.tree.map(lambda leaf: leaf[0], state.params)  # the group's one cell
    jax.tree.map(np.testing.assert_array_equal, got, expected)


def test_a_regularizer_axis_reports_the_weighted_penalty(tmp_path, toy):
    grid = {
        "steps": 6,
        "batch_size": 16,
        "regularizers": [{"kind": "l2", "selector": "**/kernel", "strength": [0.0, 0.1]}],
    }
    config = tiny_config(models=[{"name": "mlp", "width": 8}], grid=grid, seeds=1, eval_every=6)
    results = run(config, tmp_path / "b", datasets=toy)
    train, test = results[results.split == "train"], results[results.split == "test"]
    by_strength = train.groupby("reg/l2/**/kernel")["regularizer"]
    assert by_strength.min()[0.0] == 0.0 and (by_strength.min()[0.1] > 0).all()
    extra = train["loss"] - train["task_loss"] - train["regularizer"]
    np.testing.assert_allclose(extra, 0.0, atol=1e-6)  # mlp has no aux losses
    assert test["regularizer"].isna().all() and results.dtypes["regularizer"] == np.float32


def test_a_scheduled_bench_takes_new_models_under_its_schedules_and_shows_them(
    tmp_path, toy, capsys
):
    """add_models trains the new model's cells under each of the bench's schedules (and its
    morph regularizer); the summary and the viewer's rows carry ``lr_schedule`` (text) and
    ``warmup_steps`` (an int) as hyperparameters, not as metrics."""
    grid = {
        "steps": 12,
        "batch_size": 16,
        "learning_rate": 0.05,
        "lr_schedule": ["cosine", "linear"],
        "warmup_steps": 4,
        "regularizers": [{"kind": "morph", "strength": 1e-3}],
    }
    root = tmp_path / "b"
    run(tiny_config(models=[{"name": "mlp", "width": 8}], grid=grid, seeds=1), root, datasets=toy)
    capsys.readouterr()
    results = add_models_to(root, ["logreg"], datasets=toy)
    header = capsys.readouterr().out.splitlines()[1].split()
    assert header[:4] == ["model", "dataset", "lr_schedule", "seeds"]
    last = results[(results.split == "test") & (results.step == 12)]
    assert sorted(zip(last.model, last.lr_schedule, last.warmup_steps, strict=True)) == [
        ("logreg", "cosine", 4),
        ("logreg", "linear", 4),
        ("mlp", "cosine", 4),
        ("mlp", "linear", 4),
    ]
    logreg = last[last.model == "logreg"].set_index("lr_schedule")["loss"]
    assert logreg["cosine"] != logreg["linear"]
    bench = BenchFiles(root)
    assert bench.hparams()[-3:] == ["lr_schedule", "warmup_steps", "reg/morph_flops/**"]
    assert {"lr_schedule", "warmup_steps"}.isdisjoint(bench.metrics())
    rows = [row["cell"] for row in leaderboard(bench)["rows"]]
    assert {(row["lr_schedule"], row["warmup_steps"]) for row in rows} == {
        ("cosine", 4),
        ("linear", 4),
    }
    assert all(type(row["warmup_steps"]) is int for row in rows)


def test_resume_without_a_bench_says_the_command_without_resume_starts_it(tmp_path):
    (tmp_path / "killed").mkdir()  # a start killed before it wrote bench.json
    (tmp_path / "killed" / _layout.LOCK).write_text("")
    start = r"run the command without --resume \(or resume: true in a config file\), with its "
    start += r"--config FILE, to start it\."
    for name in ("killed", "missing"):
        with pytest.raises(BenchError, match=rf"--resume: .*{name}'.* no bench to resume.*{start}"):
            choose_config(tmp_path / name, tiny_config(), resume=True)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(BenchError, match=r"no bench\.json\), and holds notes\.txt, which no"):
        choose_config(tmp_path / "mine", tiny_config(), resume=True)


def test_a_stored_config_edited_into_an_invalid_one_is_named_as_the_benchs_file(tmp_path):
    """`new --config mine.yaml --dir b` must not say 'unknown key' of mine.yaml's keys."""
    (tmp_path / _layout.MARKER).write_text(json.dumps({"format": _layout.FORMAT}))
    (tmp_path / _layout.CONFIG).write_text("models: [mlp]\nseed: 2\n")
    stored = re.escape(repr(str(tmp_path / _layout.CONFIG)))
    message = rf"the bench's stored config {stored} is not valid: unknown key 'seed'.*undo"
    with pytest.raises(BenchError, match=message):
        choose_config(tmp_path, tiny_config())


@pytest.mark.parametrize(
    "marker, match",
    [
        ({"format": 2}, "A newer phosjax wrote it: upgrade"),
        ({}, r"phosjax writes bench.json .* restore"),
    ],
)
def test_a_bench_of_another_format_says_what_to_do(tmp_path, marker, match):
    (tmp_path / _layout.MARKER).write_text(json.dumps(marker))
    (tmp_path / _layout.CONFIG).write_text("models: [mlp]\n")
    with pytest.raises(
        BenchError, match=r"holds a bench of format .*; this phosjax reads format 1\. " + match
    ):
        _directory.open_bench(tmp_path)


def test_processes_given_different_dirs_are_refused_before_anything_is_written(
    tmp_path, toy, monkeypatch
):
    """Each process wrote its share in its own --dir, both said they were done: two halves
    of a bench, one without its metadata. Process 1 (given ``b``) is stood for by the
    gather."""
    mine, theirs = str(tmp_path / "a"), str(tmp_path / "b")
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(_directory, "gather", lambda value: [value, value.replace(mine, theirs)])
    config = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1)
    with pytest.raises(BenchError, match=f"given different directories .*process 1: {theirs} on "):
        run(config, mine, datasets=toy, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_process_with_no_cells_says_so_as_it_waits(tmp_path, toy, capsys, monkeypatch):
    """It said it trained its share, having trained nothing."""
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(_directory, "gather", lambda value: [value, value])
    config = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1)  # process 0's cell
    run(config, tmp_path, datasets=toy, process=(1, 2), progress=False)
    assert "process 1 of 2 had no cells to train; waiting for the others" in capsys.readouterr().err


def test_processes_given_different_dirs_agree_on_them_before_any_other_gather(
    tmp_path, monkeypatch
):
    """Process 0's --dir held the bench, this one's (process 1's) none: this one checked
    its new bench's data sets at a gather first, met process 0's directory there and
    said process 0 could not check them (process 0 failed to read the flag as a
    directory)."""
    config = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1)
    theirs = json.dumps([machine(), str(tmp_path / "a")])
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(_directory, "gather", lambda value: [theirs, value])
    with pytest.raises(BenchError, match=r"given different directories \(process 0: "):
        run(config, tmp_path / "b", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_process_not_under_jax_distributed_says_it_waits_for_none(tmp_path, toy, capsys):
    """With ``process=(1, 2)`` and no ``jax.distributed``, it said it waited for the others
    (and how one that died stops it), then returned at once."""
    config = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1)  # process 0's cell
    run(config, tmp_path, datasets=toy, process=(1, 2), progress=False)
    assert "waiting" not in capsys.readouterr().err


def test_the_bar_of_a_process_sharing_the_bench_names_it(tmp_path, toy, monkeypatch):
    """Each process showed a bar ``cells 0/1``, none saying which process it was."""
    shown = []

    class Shown(Exception):
        pass

    def bar(**kwargs):
        shown.append(kwargs["desc"])
        raise Shown  # before anything trains

    monkeypatch.setattr(_runner, "TrainingBar", bar)
    config = tiny_config(models=[{"name": "mlp", "width": 8}])  # a cell for each process
    with pytest.raises(Shown):
        run(config, tmp_path, datasets=toy, process=(1, 2), progress=False)
    assert shown == ["p1/2 cells 0/1"]


def test_a_process_other_than_process_0_leaves_the_summary_to_it(tmp_path, toy, capsys):
    """Each process printed the whole summary: a terminal the processes share showed it
    once per process."""
    config = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1)  # process 0's cell
    run(config, tmp_path, datasets=toy, process=(1, 2))
    assert capsys.readouterr().out == "process 1 of 2: process 0 prints the bench's summary\n"


def test_the_line_of_a_process_other_than_process_0_unread_ends_it_quietly(
    tmp_path, toy, monkeypatch
):
    """``| head`` gone before process 1's last line ('process 0 prints the bench's
    summary') said 'interrupted by SIGPIPE' once its share was trained; it is unread at
    the end, as process 0's summary: the command ends as ``cat`` does."""
    config = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1)  # process 0's cell
    read, write = os.pipe()
    os.close(read)  # as head, gone
    with os.fdopen(write, "w", 1) as stdout:
        monkeypatch.setattr(sys, "stdout", stdout)
        with pytest.raises(UnreadAtEnd):
            run(config, tmp_path, datasets=toy, process=(1, 2))
        monkeypatch.undo()
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, write)  # its line, still held, flushed there on closing
        os.close(null)


def test_only_process_0_says_that_resume_leaves_the_config_given_unused(bench, capsys, monkeypatch):
    """Every process sharing the bench said it ('--resume: continuing ... the config
    given differs'): a terminal the processes share showed it once per process."""
    other = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=[5])
    stored = _directory.open_bench(bench[0])[0]
    said = {}
    for index in (0, 1):
        monkeypatch.setattr(jax, "process_index", lambda index=index: index)
        assert choose_config_together(bench[0], other, resume=True) == (stored, None)
        said[index] = capsys.readouterr().err
    assert said[0].startswith("--resume: continuing ") and said[1] == "", said


def test_processes_given_different_configs_are_told_what_differs(tmp_path, monkeypatch):
    """The error named each process's config digest alone: which field differed was left
    to guess."""
    config, other = tiny_config(seeds=1), tiny_config(seeds=2)

    def from_two(value):  # process 1 given ``other``
        if value.startswith("{"):
            return [value, json.dumps(other.to_dict())]
        return [value, value.replace(config.digest(), other.digest())]

    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(_directory, "gather", from_two)
    message = (
        r"given different arguments .* Their configs differ from process 0's: process 1: "
        r"seeds: 1 -> 2\.$"
    )
    with pytest.raises(BenchError, match=message):
        _directory.agree_on_arguments(tmp_path / "b", config, resume=False, force=False)
    assert list(tmp_path.iterdir()) == []


def test_processes_given_different_imports_are_refused_before_importing(tmp_path, monkeypatch):
    """They were not compared: a process whose import failed alone left the others an
    error saying they lost the other processes."""
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(_directory, "gather", lambda v: [v, v.replace("'json'", "'nomodule'")])
    message = r"different arguments .*imports=\['json'\]; process 1: .*imports=\['nomodule'\]"
    with pytest.raises(BenchError, match=message):
        run(tiny_config(seeds=1), tmp_path / "b", progress=False, imports=["json"])
    assert list(tmp_path.iterdir()) == []


def test_processes_adding_models_to_differing_benches_are_told_what_differs(
    tmp_path, toy, monkeypatch
):
    """add_models in processes whose configs came out different (on other hosts, copies
    of the bench that differ; different --models are refused before: the next test): the
    error named the configs' digests alone."""
    config = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1)
    _directory.write_meta(tmp_path, config, ["mlp"], 2)

    def from_two(value):  # process 1's config: logreg where this one's has mlp, width 16
        if value.startswith("{"):
            return [value, value.replace('"width": 16', '"name": "logreg"')]
        return [value, re.sub("config [0-9a-f]+", "config abc", value)]

    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(_directory, "gather", from_two)
    message = (
        r"given different configs or process counts .* Their configs differ from process "
        r"0's: process 1: models\[1\].name: 'mlp' -> 'logreg'; models\[1\].width: 16 -> "
        r"\(absent\)\.$"
    )
    with pytest.raises(BenchError, match=message):
        add_models_to(tmp_path, [{"name": "mlp", "width": 16}], datasets=toy, progress=False)
    assert not list(tmp_path.glob("results*"))


def test_processes_adding_different_models_are_refused_before_they_branch_on_them(
    tmp_path, toy, monkeypatch
):
    """This process's model was the bench's own, process 1's (logreg) new: this one went
    on to continue the bench while process 1 planned its new cells, each at a gather the
    other was not at."""
    config = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1)
    _directory.write_meta(tmp_path, config, ["mlp"], 1)  # this process alone goes on
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(_directory, "gather", lambda v: [v, v.replace("'mlp'", "'logreg'")])
    message = r"different models to add or imports \(process 0: models \['mlp'\], imports \[\]"
    with pytest.raises(BenchError, match=message):
        add_models_to(tmp_path, ["mlp"], datasets=toy, progress=False)


def test_processes_agree_on_values_too_long_to_gather_by_their_digests(monkeypatch):
    """A value longer than a gather holds raised ValueError in that process alone (the
    others then waited at the gather): each process gathers its sha256 digest."""
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    theirs = f"sha256 {hashlib.sha256(b'n' * 10_000).hexdigest()}"
    gathered = []

    def with_theirs(value):
        gathered.append(value)
        return [value, theirs]

    monkeypatch.setattr(_directory, "gather", with_theirs)
    _directory.agree("models to add", "n" * 10_000)  # the same value: no error
    with pytest.raises(BenchError, match=r"process 0: sha256 [0-9a-f]{64}; process 1: sha256"):
        _directory.agree("models to add", "m" * 10_000)
    assert gathered == [theirs, f"sha256 {hashlib.sha256(b'm' * 10_000).hexdigest()}"]


def test_processes_adding_models_in_different_dirs_are_refused(tmp_path, toy, monkeypatch):
    """Each added models to its own copy of a bench (its share of the new cells alone)."""
    mine, theirs = str(tmp_path / "a"), str(tmp_path / "b")
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(_directory, "gather", lambda value: [value, value.replace(mine, theirs)])
    with pytest.raises(BenchError, match=f"given different directories .*process 1: {theirs} on "):
        add_models_to(mine, ["mlp"], datasets=toy, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_processes_on_other_hosts_may_name_the_bench_by_their_own_path(tmp_path, monkeypatch):
    """A shared folder is often mounted at another path on each host: refusing every
    different --dir refused such a multi-host bench; only one host's differing are."""
    mine = str(tmp_path / "a")
    monkeypatch.setattr(jax, "process_count", lambda: 2)

    def elsewhere(value):  # process 1 on another host, the folder mounted at /mnt/b
        return [value, json.dumps(["another-host", "/mnt/b"])]

    monkeypatch.setattr(_directory, "gather", elsewhere)
    _directory.agree_on_directory(mine)  # no error
    monkeypatch.setattr(_directory, "gather", lambda v: [v, v.replace(mine, "/mnt/b")])
    with pytest.raises(BenchError, match=r"process 1: /mnt/b on .*same --dir"):
        _directory.agree_on_directory(mine)


def test_processes_in_containers_of_one_host_name_may_name_the_bench_by_their_own_path(
    tmp_path, monkeypatch
):
    """Two containers given one host name (each its own mounts) were taken for one host,
    and a shared folder mounted at another path in each was refused."""
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    sent = []
    with monkeypatch.context() as other:  # process 1, in another container, at /mnt/b
        other.setattr(_store, "_boot_and_namespaces", lambda: "#0123456789abcdef")
        other.setattr(_directory, "gather", lambda value: sent.append(value) or [value])
        _directory.agree_on_directory("/mnt/b")
    [(theirs, path)] = [json.loads(value) for value in sent]
    assert path == "/mnt/b" and theirs != machine()  # one host name, another machine
    assert _layout.host_name(theirs) == _layout.host_name(machine())
    gathered = []
    monkeypatch.setattr(_directory, "gather", lambda v: gathered.append(v) or [v, *sent])
    _directory.agree_on_directory(str(tmp_path / "a"))  # no error: not compared
    assert [json.loads(value) for value in gathered] == [[machine(), str(tmp_path / "a")]]


def test_processes_of_one_host_may_reach_the_bench_through_a_symbolic_link(tmp_path, monkeypatch):
    """One given runs/b, one a link to it (a folder mounted through one): refused as
    different directories, though both name one bench."""
    (tmp_path / "b").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "b")
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    real = json.dumps([machine(), str((tmp_path / "b").resolve())])
    gathered = []

    def with_real(value):
        gathered.append(value)
        return [value, real]

    monkeypatch.setattr(_directory, "gather", with_real)
    _directory.agree_on_directory(tmp_path / "link")  # no error
    assert gathered == [real]  # the link's folder, as the other process names it


def test_processes_that_see_different_benches_in_their_dir_are_refused_before_they_branch(
    tmp_path, toy, monkeypatch
):
    """On hosts that share no folder, process 0's --dir held the bench, process 1's none:
    process 0 continued it while process 1 started one, each at gathers the other was not
    at; process 0 said process 1 was given a different config, then waited for it until
    jax.distributed aborted both. Process 1 is stood for by the gather."""
    config = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1)
    _directory.write_meta(tmp_path, config, ["mlp"], 2)
    marker = hashlib.sha256((tmp_path / _layout.MARKER).read_bytes()).hexdigest()[:12]
    held = f"a bench (bench.json sha256 {marker})"
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(_directory, "machine", lambda: "host0")
    theirs = lambda value: value.replace("host0", "host1").replace(held, "no bench")
    monkeypatch.setattr(_directory, "gather", lambda value: [value, theirs(value)])
    before = {p: p.read_bytes() for p in tmp_path.rglob("*")}
    for call in (
        lambda: run(config, tmp_path, datasets=toy, progress=False),
        lambda: add_models_to(tmp_path, ["logreg"], datasets=toy, progress=False),
    ):
        with pytest.raises(BenchError) as raised:
            call()
        assert str(raised.value) == (
            "the 2 processes sharing this bench do not see one bench in their --dir (process "
            f"0: {str(tmp_path)!r} on host0 holds {held}; process 1: {str(tmp_path)!r} on "
            "host1 holds no bench); nothing was written. Their --dir is not one folder (give "
            "every process the path of one folder that all of them reach: on several hosts, "
            "on a file system they share), or a run wrote there meanwhile (run the command "
            "again)."
        )
        assert {p: p.read_bytes() for p in tmp_path.rglob("*")} == before


def test_a_process_that_cannot_import_or_open_the_bench_stops_the_others_too(
    tmp_path, toy, monkeypatch
):
    """A module missing on one host (or a bench it could not open) raised in that process
    alone, before it told the others: they waited at their next gather until
    jax.distributed's shutdown barrier timed out (300 s) and aborted them, saying nothing."""
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    told = []  # what this process gathers with the others
    monkeypatch.setattr(_directory, "gather", lambda value: told.append(value) or [value, value])
    missing = ["phosjax_no_such_module"]
    with pytest.raises(BenchError, match=r"^--import phosjax_no_such_module: no module named"):
        run(tiny_config(), tmp_path / "b", datasets=toy, imports=missing, progress=False)
    assert told[-1] == "x"  # that it failed, before raising
    with pytest.raises(BenchError, match=r"^'.*/none' is not a bench"):
        add_models_to(tmp_path / "none", ["mlp"], datasets=toy, progress=False)
    assert told[-1] == "x"
    monkeypatch.setattr(_runner, "open_bench", lambda directory: (tiny_config(), {}))
    with pytest.raises(BenchError, match=r"^--import phosjax_no_such_module: no module named"):
        add_models_to(tmp_path / "b", ["mlp"], datasets=toy, imports=missing, progress=False)
    assert told[-1] == "x"
    # the other process cannot import: this one stops too, naming it
    monkeypatch.setattr(_directory, "gather", lambda value: [value, value or "x"])
    with pytest.raises(BenchError) as raised:
        run(tiny_config(), tmp_path / "b", datasets=toy, progress=False)
    assert str(raised.value) == (
        "process 1 could not import the bench's modules (see its message); this process "
        "stops too, so none waits for it."
    )
    assert not (tmp_path / "b").exists()


def test_processes_whose_dir_is_no_folder_they_share_are_refused_before_writing(
    tmp_path, toy, monkeypatch
):
    """On hosts of their own, each given a --dir on its own disk, each trained its share
    into its own folder with no error: half a bench in each, said finished, and never
    completed by running again."""
    mine, theirs = str(tmp_path / "disk0" / "b"), str(tmp_path / "disk1" / "b")
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(_directory, "machine", lambda: "host0")

    def with_host_1(value: str) -> list[str]:
        """Beside this process's value, process 1's: on host1, its lock in its own folder."""
        if value == "[1]":  # the locks this process does not see: process 1's
            return [value, "[0]"]
        shifted = value.replace(mine, theirs).replace("p0of2", "p1of2").replace("host0", "host1")
        return [value, shifted]

    monkeypatch.setattr(_directory, "gather", with_host_1)
    with pytest.raises(BenchError) as raised:
        run(tiny_config(), mine, datasets=toy, progress=False)
    assert str(raised.value) == (
        "the --dir of the 2 processes sharing this bench is not one folder: process 0 "
        f"({mine!r} on host0) does not see the lock file of process 1 ({theirs!r} on host1); "
        f"process 1 ({theirs!r} on host1) does not see the lock file of process 0 ({mine!r} "
        "on host0); nothing but lock files was written. Give every process the path of one "
        "folder that all of them reach (on several hosts: on a file system they share), "
        "where each writes its share of the bench."
    )
    assert [p.name for p in pathlib.Path(mine).rglob("*")] == ["run.p0of2.lock"]


def test_a_process_whose_peer_died_says_so_and_what_to_run(monkeypatch):
    """A process killed (or stopped by Ctrl-C) while the other waited for it at a gather:
    the other printed gloo's traceback alone ("Gloo AllGather failed: ... Connection
    closed by peer")."""
    closed = "UNKNOWN: Gloo AllGather failed: Connection closed by peer [127.0.0.1]:1\nmore"

    def gather_from_the_dead(row):
        raise jax.errors.JaxRuntimeError(closed)

    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(_directory, "gather_rows", gather_from_the_dead)
    message = (
        r"process 0 of 2 lost the other processes of this bench \(UNKNOWN: Gloo AllGather "
        r"failed: Connection closed by peer \[127.0.0.1\]:1\): one stopped or died\. .* run "
        "the same command again in each"
    )
    with pytest.raises(BenchError, match=message):
        _directory.in_every_process(lambda: None, "train its share of the bench")


def test_what_may_fail_in_one_process_alone_runs_where_every_process_hears_of_it(
    tmp_path, toy, monkeypatch
):
    """A damaged ``status.p1of2.json`` (or a checkpoint process 1 may not read, or a blurb
    process 0 could not write) raised outside `in_every_process`: the other process
    trained on, then waited for it at jax.distributed's shutdown barrier for 300 s, and
    both aborted. Inside, both stop at once, each with its message (two processes, a
    damaged status: 14 s)."""
    inside: list[str] = []
    shared = _runner.in_every_process

    def recording(fn, what):
        inside.append(what)
        try:
            return shared(fn, what)
        finally:
            inside.pop()

    seen: dict[str, list[list[str]]] = {}

    def watched(name):
        real = getattr(_runner, name)

        def call(*args, **kwargs):
            seen.setdefault(name, []).append(list(inside))
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(_runner, "in_every_process", recording)
    for name in ("_status", "restored_step", "_write_blurbs"):
        monkeypatch.setattr(_runner, name, watched(name))
    config = tiny_config(models=[{"name": "mlp", "width": 8}], seeds=1)
    with killed_after_save(6):
        run(config, tmp_path, datasets=toy, progress=False)
    add_models_to(tmp_path, ["mlp"], datasets=toy, progress=False)  # continues it
    assert {name: [bool(w) for w in whats] for name, whats in seen.items()} == {
        # the run's; add_models_to's: one process's shortcut (several skip it), its
        # count of unfinished groups, its run's
        "_status": [True, False, True, True],
        "restored_step": [True, True],
        "_write_blurbs": [True, True],
    }


NOTES_LIFTED = "test_run_notes_lifted"
"""A registered model whose members (nn.vmap without a blurb axis) drop a note."""


class _NotingMember(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.Dense(3)(x)
        px.note(self, "mean", h.mean())
        return h


class _NotingMembers(nn.Module):
    num_classes: int

    @nn.compact
    def __call__(self, x, train=False):
        members = nn.vmap(
            _NotingMember, variable_axes={"params": 0}, split_rngs={"params": True}, axis_size=2
        )
        return members(name="members")(jnp.stack([x, x])).mean(0)[..., : self.num_classes]


if NOTES_LIFTED not in registered_models():
    register_model(NOTES_LIFTED, build=lambda config: _NotingMembers(config.num_classes))


def test_a_model_whose_blurb_is_refused_is_named(tmp_path, toy):
    """blurb refuses a note a lifted transform dropped; the bench stopped on its ValueError,
    which names the note's path alone."""
    planned = plan(tiny_config(models=[NOTES_LIFTED], seeds=1), toy)
    with pytest.raises(
        BenchError,
        match=rf"^The blurb of model '{NOTES_LIFTED}-\w+': note 'members/mean' was written but",
    ):
        _runner._write_blurbs(tmp_path, planned, flops=False)


def test_a_models_blurb_compiles_one_program_with_its_init(tmp_path, toy):
    # op by op, model.init compiled a program for each initializer op of each new shape;
    # jitted apart from the blurb's run, it compiled every param's random init
    planned = plan(tiny_config(models=[{"name": "mlp", "width": 11, "depth": 3}]), toy)
    with compiles_seen() as compiles:
        _runner._write_blurbs(tmp_path, planned, flops=False)
    assert len(list((tmp_path / _layout.BLURBS).iterdir())) == 1
    assert len(compiles) == 1  # the run that records the blurb, the init traced in it


def test_a_process_that_cannot_choose_after_process_0_moved_the_bench_stops_it_too(
    tmp_path, monkeypatch, capsys
):
    """On hosts that share no folder, each holding a copy of the bench, --force: process 0
    moved its copy aside, process 1 still saw the bench (of another config) and raised
    alone; process 0 went on and waited for it until jax.distributed aborted it, never
    saying where its bench had moved. Process 1 then told its user to pass --force, given.
    The gather stands for the other process."""
    root, other = tmp_path / "b", tiny_config(seeds=3)
    _directory.write_meta(root, tiny_config(), ["mlp", "choicenet"], 2)
    told = []  # what this process gathers with the other
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    monkeypatch.setattr(_directory, "gather", lambda value: told.append(value) or [value, ""])
    with pytest.raises(BenchError) as raised:
        choose_config_together(root, other, force=True)  # process 0 moved its own copy
    assert str(raised.value) == (
        f"{str(root)!r} still holds a bench of another config, though process 0 moved the old "
        "bench aside (--force): this --dir is not process 0's folder. Give every process the "
        "path of one folder that all of them reach (on several hosts: on a file system they "
        "share)."
    )
    assert told[-1] == "x"  # that it failed, before raising
    monkeypatch.setattr(jax, "process_index", lambda: 0)
    answers = iter(["", "", "x"])  # process 1: planned, waited for process 0, failed
    monkeypatch.setattr(_directory, "gather", lambda value: [value, next(answers)])
    with pytest.raises(BenchError) as raised:
        choose_config_together(root, other, force=True)
    assert str(raised.value) == (
        "process 1 could not open the bench (see its message); this process stops too, so "
        "none waits for it."
    )
    (old,) = tmp_path.glob("b.old-*")
    assert capsys.readouterr().err == f"moved the old bench to {old}\n"


def test_processes_whose_hosts_registered_different_models_to_add_are_refused(
    tmp_path, toy, monkeypatch
):
    """add_models with no models named adds those registered since the bench was made,
    each process from its own host's registry: a host with a plugin installed that the
    other lacked added a model while the other continued the bench, each at gathers the
    other was not at, until jax.distributed aborted both. The gather stands for process 1."""
    _directory.write_meta(tmp_path, tiny_config(), ["mlp", "choicenet"], 2)
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(_runner, "registered_models", lambda: ["mlp", "choicenet", "logreg"])
    theirs = lambda value: value.replace("models ['logreg']", "models []")
    monkeypatch.setattr(_directory, "gather", lambda value: [value, theirs(value)])
    before = {p: p.read_bytes() for p in tmp_path.rglob("*")}
    with pytest.raises(BenchError) as raised:
        add_models_to(tmp_path, datasets=toy, progress=False)
    assert str(raised.value) == (
        "the 2 processes sharing this bench were given different models registered since the "
        "bench was made (process 0: models ['logreg']; process 1: models []); nothing was "
        "written. Start every process with the same command and config. Install the same "
        "plugins on every host, or name the models with --models."
    )
    assert {p: p.read_bytes() for p in tmp_path.rglob("*")} == before


def test_a_process_that_lacks_a_model_to_add_stops_the_others_too(tmp_path, toy, monkeypatch):
    """add_models naming a model registered on one host (its plugin installed) but not on
    this one: this process raised alone, and the others waited for it at their next
    gather. The gather stands for the others."""
    _directory.write_meta(tmp_path, tiny_config(), ["mlp", "choicenet"], 2)
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    told = []  # what this process gathers with the others
    monkeypatch.setattr(_directory, "gather", lambda value: told.append(value) or [value, value])
    with pytest.raises(BenchError, match=r"^unknown model 'their_plugins_model'; registered"):
        add_models_to(tmp_path, ["their_plugins_model"], datasets=toy, progress=False)
    assert told[-1] == "x"  # that it failed, before raising
