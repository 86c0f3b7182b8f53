"""Two local processes under ``jax.distributed`` share a bench: resume, idle shares,
configs that differ, and a process that fails."""

import dataclasses
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from phosjax.bench import _layout
from phosjax.bench.new import main as new_main
from tests.bench.runner_tiny import fake_toy_datasets, tiny_config
from tests.processes import launch as launch_workers

MLP = [{"name": "mlp", "width": 8}]
SPLIT = {
    "models": MLP,
    "grid": {"steps": 12, "batch_size": 16, "learning_rate": [0.01, 0.003]},
    "seeds": 1,
}
"""One group of two cells: each process trains one."""

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    """The module's compilation cache: a worker loads the programs that an earlier run of
    the module compiled (the same in each test that trains), about 1 s of CPU less."""
    return tmp_path_factory.mktemp("compiled")


def cached_in(compiled: Path) -> dict[str, str]:
    """A worker's environment that keeps every program it compiles in ``compiled`` (JAX
    keeps only those compiled in over 1 s unless told), and loads them from there."""
    return {
        "JAX_COMPILATION_CACHE_DIR": str(compiled),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }


def launch(
    compiled: Path, roots: Path | list[Path], changes: list[dict | list[dict]], **env: str
) -> list[tuple[int, str]]:
    """Runs one worker per entry of ``changes`` (its config's changes, or a list of one per
    root) on ``roots`` (one bench, or several run one after the other by the same workers),
    with ``env`` in their environment (see `tests.bench.multiprocess_worker`) and the cache
    ``compiled``; their exit codes and logs."""
    roots = [roots] if isinstance(roots, Path) else roots
    env |= cached_in(compiled)
    args = [[os.pathsep.join(map(str, roots)), json.dumps(c)] for c in changes]
    return launch_workers("tests.bench.multiprocess_worker", args, env, timeout=240)


def succeeded(outcomes: list[tuple[int, str]]) -> None:
    for code, log in outcomes:
        assert code == 0, log[-3000:]


def frame(root: Path) -> pd.DataFrame:
    results = pd.read_parquet(root / _layout.RESULTS).drop(columns="step_time_s")
    return results.sort_values(["cell_id", "step", "split"], ignore_index=True)


@dataclasses.dataclass
class Resumed:
    """What `resumed` ran: the outcomes of the two processes killed mid-group, the
    checkpoints they left and the last step of their rows; the outcomes of the same
    command and the runs after it, in the benches ``killed``, ``whole`` and ``one_cell``."""

    root: Path
    killed: list[tuple[int, str]]
    saved: list[str]
    rows_to: int
    outcomes: list[tuple[int, str]]


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, compiled) -> Resumed:
    """`SPLIT` killed mid-group, then the same command, then in the same processes (each
    launch costs seconds) an uninterrupted run of it and, last, a bench of one cell
    (process 1 without cells), its saves slow (process 0's take 3 s more)."""
    root = tmp_path_factory.mktemp("resumed")
    killed = launch(compiled, root / "killed", [SPLIT, SPLIT], STOP_AFTER_SAVE="6")
    saved = sorted(p.parent.suffix for p in (root / "killed" / _layout.CHECKPOINTS).glob("*/*"))
    rows_to = frame(root / "killed").step.max()
    roots = [root / name for name in ("killed", "whole", "one_cell")]
    each = [SPLIT, SPLIT, {"models": MLP, "seeds": 1}]
    env = {"SHUTDOWN_TIMEOUT_S": "2", "SLOW_SAVE_S": "1.5"}
    outcomes = launch(compiled, roots, [each, each], **env)
    return Resumed(root, killed, saved, rows_to, outcomes)


def test_killed_mid_group_then_resumed_matches_an_uninterrupted_run(resumed):
    assert [code for code, _ in resumed.killed] == [3, 3], resumed.killed
    assert resumed.saved == [".p0of2", ".p1of2"]  # each process its own
    assert resumed.rows_to == 6
    succeeded(resumed.outcomes)
    killed = resumed.root / "killed"
    again = frame(killed)
    assert not again.duplicated(["cell_id", "step", "split"]).any()
    assert set(again.cell_id) == set(pd.read_parquet(killed / _layout.CELLS).cell_id)
    pd.testing.assert_frame_equal(again, frame(resumed.root / "whole"))
    assert list(killed.rglob(".tmp*")) == []


def test_a_process_without_cells_waits_for_the_other_so_their_shutdown_does_not_fail(resumed):
    """Nor does it hold the other up: all its rows, one status (`resumed`'s last run:
    process 1 has no cell there; process 0 has 3 s of saves)."""
    succeeded(resumed.outcomes)  # process 1 at the shutdown barrier 3 s early: both aborted
    printed = [
        [r for r in log.splitlines() if r.startswith("rows ")] for _, log in resumed.outcomes
    ]
    assert printed == [["rows 28", "rows 28", "rows 14"]] * 2  # gloo may print after them
    said = ["process 0 of 2 trained its share", "process 1 of 2 had no cells to train"]
    for done, (_, log) in zip(said, resumed.outcomes, strict=True):
        last_run = log.split("rows 28\n")[-1]  # lest a peer that died leave it silent
        assert f"{done}; waiting for the others" in last_run, log
    one_cell = resumed.root / "one_cell"
    assert len(frame(one_cell)) == 14  # 12 train rows and 2 test rows of the one cell
    assert [p.name for p in one_cell.glob("status*")] == ["status.p0of2.json"]


def test_a_process_whose_training_fails_stops_the_other_once_it_is_done(tmp_path, compiled):
    env = {"SHUTDOWN_TIMEOUT_S": "2", "SLOW_SAVE_S": "1.5", "FAIL_TRAINING_IN": "1"}
    process_0, process_1 = launch(compiled, tmp_path, [SPLIT, SPLIT], **env)
    assert process_1[0] == 1 and "RuntimeError: training failed" in process_1[1], process_1[1]
    assert process_0[0] == 2, process_0[1][-3000:]
    assert "BenchError: process 1 could not train its share of the bench" in process_0[1]
    assert frame(tmp_path).step.max() == 12  # process 0 trained its share whole


def test_processes_given_different_configs_write_nothing(tmp_path, compiled):
    other = {**SPLIT, "seeds": 2}
    outcomes = launch(compiled, tmp_path / "b", [SPLIT, other])
    for code, log in outcomes:
        assert code == 2, log[-3000:]
        assert "BenchError: the 2 processes sharing this bench were given different" in log
        assert "process 0: config " in log and "process 1: config " in log
    assert not (tmp_path / "b").exists()


def test_a_process_that_cannot_plan_stops_the_other_too(tmp_path, compiled):
    process_0, process_1 = launch(compiled, tmp_path / "b", [SPLIT, SPLIT], FEW_EXAMPLES_IN="1")
    assert process_1[0] == 2, process_1[1][-3000:]
    assert (
        "BenchError: grid.batch_size=16 is larger than the train split of data set 'toy'"
        in process_1[1]
    )
    assert process_0[0] == 2, process_0[1][-3000:]
    assert "BenchError: process 1 could not plan the bench (see its message)" in process_0[1]
    assert not (tmp_path / "b").exists()


def test_process_0_failing_to_write_the_metadata_stops_the_other_too(tmp_path, compiled):
    process_0, process_1 = launch(compiled, tmp_path / "b", [SPLIT, SPLIT], FULL_DISK="1")
    assert process_0[0] == 1 and "No space left on device" in process_0[1], process_0[1]
    assert process_1[0] == 2, process_1[1][-3000:]
    assert "BenchError: process 0 could not write the bench's metadata" in process_1[1]
    assert not list((tmp_path / "b").glob("results*"))


def test_new_run_by_two_processes_joined_by_its_options_writes_the_rows_of_one_process(
    tmp_path, compiled, monkeypatch
):
    """`new` had no options to join a group: sharing a bench took a script of one's own."""
    config = tmp_path / "bench.yaml"
    config.write_text(json.dumps(tiny_config(**SPLIT).to_dict()))  # the other tests' programs
    given = ["--config", str(config), "--no_progress"]
    toy = ["--import", "tests.bench.toy_datasets"]  # in this process: patched
    both = [[*given, *toy, "--dir", str(tmp_path / "shared")]] * 2
    outcomes = launch_workers("phosjax.bench.new", both, cached_in(compiled), 240, command=True)
    succeeded(outcomes)
    assert sorted(p.name for p in (tmp_path / "shared").glob("status*")) == [
        "status.p0of2.json",
        "status.p1of2.json",
    ]  # each process trained a cell
    fake_toy_datasets(monkeypatch)
    assert new_main([*given, "--dir", str(tmp_path / "alone")]) == 0
    pd.testing.assert_frame_equal(frame(tmp_path / "shared"), frame(tmp_path / "alone"))
