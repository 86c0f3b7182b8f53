"""``python -m phosjax.bench.new`` on a tiny config, in this process: the progress bar,
the one-screen summary, the profile (every phase timed), the refusal of another config,
and ``--print_config`` round trips.

One bench is trained for the whole module. Its model (an mlp of width 6) is trained by
no other test, so its programs are compiled here (the engine caches them per process).
"""

import contextlib
import dataclasses
import errno
import functools
import io
import json
import math
import os
import pathlib
import re
import shlex
import shutil
import signal
import sys

import jax
import pandas as pd
import pyarrow.parquet as pq
import pytest
import tqdm
import yaml

from phosjax.bench import (
    BenchConfig,
    BenchError,
    Grid,
    _directory,
    _interrupt,
    _layout,
    _plan,
    _runner,
    _store,
    load_config,
    plan,
)
from phosjax.bench.add_models import main as add_models_main
from phosjax.bench.new import main as new_main
from phosjax.bench.new import parser
from phosjax.bench.profile import main as profile_main
from phosjax.models import _registry
from tests.bench.runner_tiny import fake_toy_datasets, listing_refused, toy_data

CONFIG = """\
models: [{name: mlp, width: 6}]
datasets: [toy]
grid: {steps: 12, batch_size: 16, learning_rate: [0.01, 0.003]}
seeds: 2
eval_every: 4
checkpoint_every: 12
strategy: vmap
"""


@pytest.fixture(scope="module")
def cli_bench(tmp_path_factory) -> tuple[pathlib.Path, str, str]:
    """``(bench directory, stdout, stderr)`` of one ``new`` run on the toy data."""
    tmp = tmp_path_factory.mktemp("cli")
    config = tmp / "bench.yaml"
    config.write_text(CONFIG)
    root = tmp / "bench"
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        fake_toy_datasets(patch)
        # Every chunk shows, however close together chunks end on a slow machine.
        patch.setattr(_runner, "TrainingBar", functools.partial(_runner.TrainingBar, mininterval=0))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = new_main(["--config", str(config), "--dir", str(root)])
    assert status == 0, err.getvalue()
    return root, out.getvalue(), err.getvalue()


def test_progress_bar_shows_cells_done_rate_and_eta(cli_bench):
    _, _, err = cli_bench
    updates = [u for u in re.split(r"[\r\n]+", err) if u.strip()]
    assert updates[0].startswith("cells 0/4")
    # cells done, steps done of all (4 cells x 12 steps), [elapsed<ETA, rate]; a slow
    # machine's rate reads seconds per step
    bar = r"\| {}/48 \[\d\d:\d\d<\d\d:\d\d, +[\d.]+(?:step/s|s/step)\]"
    assert re.fullmatch(r"cells 4/4: 100%.*" + bar.format(48), updates[-1]), updates[-1]
    # after the first chunk (4 cells x 4 steps), which compiled, a rate and no ETA yet;
    # after the second, an ETA
    mid = [u for u in updates if re.search(bar.format(16).replace(r"\d\d:\d\d,", r"\?,"), u)]
    assert mid and mid[0].startswith("cells 0/4:  33%"), updates
    assert any(re.search(bar.format(32), u) for u in updates), updates


def test_summary_fits_a_screen_and_says_where_and_how_to_view(cli_bench):
    root, out, _ = cli_bench
    lines = out.strip().splitlines()
    assert len(lines) <= 24  # one screen; widths checked apart from the (long) temp path
    assert max(len(line.replace(str(root), "DIR")) for line in lines) <= 160
    assert lines[0] == f"bench {root}: 4 cells, {4 * (12 + 3)} result rows"
    header = lines[1].split()
    assert header[:2] == ["model", "dataset"] and "learning_rate" in header
    assert "test" in header and "accuracy" in header
    board = lines[2:4]  # one row per learning rate, the best first
    accuracy = [float(re.findall(r"(\d\.\d{3}) ± \d\.\d{3}", row)[0]) for row in board]
    assert accuracy == sorted(accuracy, reverse=True)
    assert f"pandas.read_parquet('{root}/results')" in out
    assert f"python -m phosjax.bench.view --dir {root}" in out
    assert "ssh -L 1337:localhost:1337" in out
    assert f"python -m phosjax.bench.profile --dir {root}" in out


def test_every_phase_is_timed(cli_bench):
    root, _, _ = cli_bench
    phases = pd.read_parquet(root / _layout.PHASES).query(f"group_id != '{_layout.BENCH}'")
    phases = phases.set_index("phase")
    assert list(phases.index) == list(_layout.PHASE_NAMES)
    for phase in _layout.PHASE_NAMES:
        seconds = phases.loc[phase, "seconds"]
        assert math.isfinite(seconds) and seconds > 0, (phase, seconds)
        assert phases.loc[phase, "total_s"] >= seconds
    # 3 chunks of 4 steps, each ending on an evaluation: the train and eval programs and
    # the end-of-chunk check of the optimizer state compiled, once each
    assert phases["count"].to_dict() == {"init": 1, "compile": 3, "step": 12, "eval": 3}
    assert phases.loc["step", "seconds"] < phases.loc["compile", "seconds"]
    # XLA:CPU analyses its programs' memory too: the group's largest, on every row but init
    assert phases["program_bytes"].nunique() == 1 and phases["program_bytes"].max() > 1000


def test_loading_the_data_sets_is_a_run_phase_of_its_own(cli_bench, capsys):
    """It had no row: it was inside ``plan``, which also imports, checks and plans."""
    root, _, _ = cli_bench
    own = pd.read_parquet(root / _layout.PHASES).query(f"group_id == '{_layout.BENCH}'")
    assert (
        list(own.phase)
        == [  # start: where the process's start is known
            *(["start"] if "start" in set(own.phase) else []),
            "data",  # taken out of plan, which ends after it
            "plan",
            *_layout.BENCH_PHASES[3:],
        ]
    )
    assert profile_main(["--dir", str(root)]) == 0
    assert ", data " in capsys.readouterr().out.splitlines()[0]


def test_memory_is_sampled_and_device_memory_null_where_not_reported(cli_bench):
    root, _, _ = cli_bench
    memory = pd.read_parquet(root / _layout.MEMORY)
    assert len(memory) >= 2 and memory.time_s.is_monotonic_increasing
    assert (memory.host_rss_bytes > 2**20).all() and memory.run_started.nunique() == 1
    reported = jax.local_devices()[0].memory_stats() is not None
    for path, column in ((_layout.MEMORY, "device_bytes"), (_layout.PHASES, "peak_bytes")):
        table = pq.read_table(root / path)
        nulls = table.column(column).null_count
        assert nulls == (0 if reported else len(table)), (path, column, nulls)


def test_profile_prints_every_phase(cli_bench, capsys):
    root, _, _ = cli_bench
    assert profile_main(["--dir", str(root)]) == 0
    out = capsys.readouterr().out
    phases = pd.read_parquet(root / _layout.PHASES).set_index("phase")["seconds"]
    assert out.splitlines()[0].startswith(f"bench {root}: 1 run took ")  # the run's own
    header, row = out.splitlines()[2], out.splitlines()[4]
    assert header.split()[1:5] == ["init_s", "compile_s", "step_s", "eval_s"]
    printed = [float(v) for v in row.split()[1:5]]
    assert printed == [float(f"{phases[p]:.4g}") for p in _layout.PHASE_NAMES]
    assert "host RSS: peak" in out
    program = pd.read_parquet(root / _layout.PHASES)["program_bytes"].max() / 2**20
    assert header.split()[-2:] == ["program_MiB", "peak_device_MiB"]
    assert float(row.split()[-2]) == float(f"{program:.4g}")


def test_profile_counts_autos_timing_of_the_strategies_in_the_rest_of_train(
    cli_bench, tmp_path, capsys
):
    """``auto`` times each strategy's steps before a group trains, which none of the
    groups' phases counts: the profile put those seconds (38 s of a 190 s run) under
    'their results, checkpoints and status', as if writing them had taken that long."""
    rest = "; their results, checkpoints and status"
    assert profile_main(["--dir", str(cli_bench[0])]) == 0  # strategy: vmap, timed nothing
    assert f"{rest} " in capsys.readouterr().out.splitlines()[0]
    root = tmp_path / "bench"
    shutil.copytree(cli_bench[0], root)
    status = json.loads((root / _layout.STATUS).read_text())
    for group in status["groups"].values():  # as auto records what it timed
        group["timings"] = {"vmap": 0.002, "map": 0.003}
    (root / _layout.STATUS).write_text(json.dumps(status))
    assert profile_main(["--dir", str(root)]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert f"{rest}, and auto's timing of the strategies " in line, line


def test_profile_of_a_bench_whose_status_is_cut_short_prints_the_profile_then_the_error(
    cli_bench, tmp_path, capsys
):
    """Reading the status for auto's timings first, it printed the error alone."""
    root = tmp_path / "bench"
    shutil.copytree(cli_bench[0], root)
    (root / _layout.STATUS).write_text('{"groups": ')
    assert profile_main(["--dir", str(root)]) == 2
    out, err = capsys.readouterr()
    assert out.startswith(f"bench {root}: 1 run took ")
    assert err.startswith("error: cannot read status.json: JSONDecodeError: ")


def test_profile_of_a_bench_whose_plan_is_cut_short_says_the_given_dir_to_continue(
    cli_bench, tmp_path, capsys
):
    """It said to continue the bench with 'python -m phosjax.bench.new --dir DIR'."""
    root = tmp_path / "my bench"
    shutil.copytree(cli_bench[0], root)
    (root / _layout.CELLS).write_bytes((root / _layout.CELLS).read_bytes()[:50])
    assert profile_main(["--dir", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot read cells.parquet: ")
    assert err.endswith(
        "; phosjax writes it whole, so something else changed it; delete it, then continue "
        f"the bench (python -m phosjax.bench.new --dir {shlex.quote(str(root))}), which "
        "writes it again.\n"
    )


def test_profile_of_a_bench_with_unfinished_cells_says_how_many_are_finished(
    cli_bench, tmp_path, capsys
):
    root = tmp_path / "my b"  # the command it printed split there: --dir .../my b
    shutil.copytree(cli_bench[0], root)
    status = json.loads((root / _layout.STATUS).read_text())
    for group in status["groups"].values():  # as while a run trains it
        group["finished"] = False
    (root / _layout.STATUS).write_text(json.dumps(status))
    cells = len(pd.read_parquet(root / _layout.CELLS))
    assert profile_main(["--dir", str(root)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"note: {str(root)!r} keeps 0 of {cells} cells finished: a run is training it, or "
        f"stopped (`python -m phosjax.bench.new --dir '{root}'` continues it); its groups not "
        "started yet have no row above, the others the times so far."
    )
    assert profile_main(["--dir", str(cli_bench[0])]) == 0
    assert "note:" not in capsys.readouterr().out


def test_profile_refused_a_read_says_to_let_this_user_read_it(cli_bench, capsys, monkeypatch):
    """profile, which writes nothing, said of a folder it may not list 'let this user
    write it (its permissions, those of its folder), then: nothing was changed'."""
    profile = cli_bench[0] / "profile"
    listdir = os.listdir

    def refused(path="."):
        if pathlib.Path(path) == profile:  # chmod 000, another user's
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return listdir(path)

    monkeypatch.setattr(os, "listdir", refused)
    assert profile_main(["--dir", str(cli_bench[0])]) == 1
    assert capsys.readouterr().err == (
        f"error: [Errno 13] Permission denied: {str(profile)!r}; let this user read it (its "
        "permissions, those of its folder), then: nothing was changed (profile only reads the "
        "bench).\n"
    )


@pytest.mark.parametrize(
    ("main", "models", "then"),
    [
        (new_main, [], "nothing is left to train; the same command reads its results"),
        (add_models_main, ["--models", "{name: mlp, width: 5}"], "the same command continues it"),
    ],
    ids=["new", "add_models"],
)
def test_results_that_cannot_be_listed_say_to_let_this_user_read_them(
    cli_bench, tmp_path, capsys, monkeypatch, main, models, then
):
    """A results/ folder this user may not list (chmod 000) was taken for an empty one:
    new said the part files were "removed or lost ... train the bench again", printed a
    summary of 0 result rows and exited 0; add_models trained its models, then could not
    write their rows."""
    root = tmp_path / "bench"
    shutil.copytree(cli_bench[0], root)
    fake_toy_datasets(monkeypatch)
    listing_refused(monkeypatch, root / "results")
    capsys.readouterr()
    argv = ["--dir", str(root), *models, "--no_progress"]
    assert main(argv) == 1
    command = "new" if main is new_main else "add_models"
    assert capsys.readouterr() == (
        "",
        f"error: [Errno 13] Permission denied: {str(root / 'results')!r}; let this user read "
        f"and write it (its permissions, those of its folder), then: {str(root)!r} keeps 4 of "
        f"4 cells finished; {then}: python -m phosjax.bench.{command} {shlex.join(argv)}\n",
    )


def test_another_config_is_refused_on_the_command_line(cli_bench, tmp_path, capsys):
    root, _, _ = cli_bench
    other = tmp_path / "other.yaml"
    other.write_text(CONFIG.replace("seeds: 2", "seeds: 3"))
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    assert new_main(["--config", str(other), "--dir", str(root)]) == 2
    err = capsys.readouterr().err
    assert "holds a bench with a different config" in err
    assert "--resume" in err and "--force" in err
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before


@pytest.mark.parametrize("printed", [[], ["--print_config"]])
def test_options_without_config_on_a_bench_name_the_defaults_they_set(
    cli_bench, capsys, monkeypatch, printed
):
    """--dir BENCH --grid.steps 24 (no --config) said the bench had a different config,
    listing models, learning_rate, seeds... that no option touched (the defaults');
    with --print_config it printed those defaults with 24 steps, exit 0."""
    root, _, _ = cli_bench
    monkeypatch.setattr(_plan, "check_datasets", lambda *args: {})  # the toy data set
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    assert new_main(["--dir", str(root), "--grid.steps", "24", *printed]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(
        f"error: {str(root)!r} holds a bench, but without --config the options (--grid.steps) "
        "set keys of the built-in defaults, not of its stored config, which differs from "
        "them also where no option is given (stored -> given: "
    )
    assert "grid.steps" not in err.split("stored -> given: ")[1].split(")")[0]
    assert f"--config {root / 'config.yaml'} with the same options" in err
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before


def test_a_list_option_without_config_on_a_bench_is_not_named_among_the_keys_none_set(
    cli_bench, capsys, monkeypatch
):
    """--dir BENCH --datasets digits listed 'datasets[0]: 'toy' -> 'digits'' among the
    differences "where no option is given": an item of the list it set."""
    root, _, _ = cli_bench
    monkeypatch.setattr(_plan, "check_datasets", lambda *args: {})  # no data read
    assert new_main(["--dir", str(root), "--datasets", "digits"]) == 2
    err = capsys.readouterr().err
    assert "the options (--datasets) set keys of the built-in defaults" in err
    unset = err.split("stored -> given: ")[1].split("). To change")[0]
    assert "grid.steps: 12 -> 1000" in unset and "datasets" not in unset


@pytest.mark.parametrize("models", [["gru"], ["gru", "--models+", "cnn1d"]])
def test_an_appending_option_without_config_on_a_bench_is_no_continuation(
    models, cli_bench, capsys, monkeypatch
):
    """--dir BENCH --models+ gru was read as no config given: it continued the bench as
    it was (here: read its results, exit 0), gru silently not added; given twice, the
    error named it twice ('the options (--models+, --models+)')."""
    root, _, _ = cli_bench
    monkeypatch.setattr(_plan, "check_datasets", lambda *args: {})  # the toy data set
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    assert new_main(["--dir", str(root), "--models+", *models]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(
        f"error: {str(root)!r} holds a bench, but without --config the options (--models+) "
        "set keys of the built-in defaults"
    )
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before


def test_print_config_of_options_without_dir_prints_the_defaults_with_them(capsys, monkeypatch):
    """No --dir, no bench to continue: it said 'error: expected str, bytes or os.PathLike
    object, not NoneType'."""
    monkeypatch.setattr(_plan, "check_datasets", lambda *args: {})  # no data read
    with pytest.raises(SystemExit) as exit_info:
        new_main(["--grid.steps", "24", "--print_config"])
    assert exit_info.value.code == 0
    assert BenchConfig.from_dict(yaml.safe_load(capsys.readouterr().out)).grid.steps == 24


@pytest.mark.parametrize("options", [[], ["--data_dir", "/moved/data"]])
def test_print_config_of_a_bench_continued_prints_its_stored_config(
    cli_bench, capsys, monkeypatch, options
):
    """--dir BENCH --print_config printed the built-in defaults (mlp, learning_rate
    0.001, 400 steps...), not the config that --dir BENCH continues."""
    root, _, _ = cli_bench
    monkeypatch.setattr(_plan, "check_datasets", lambda *args: {})  # the toy data set
    with pytest.raises(SystemExit) as exit_info:
        new_main(["--dir", str(root), *options, "--print_config"])
    assert exit_info.value.code == 0
    printed = BenchConfig.from_dict(yaml.safe_load(capsys.readouterr().out))
    stored = load_config(root / _layout.CONFIG)
    assert printed.digest() == stored.digest()
    assert printed.data_dir == (options[1] if options else stored.data_dir)


def test_resume_with_another_config_says_it_keeps_the_stored_one(
    cli_bench, tmp_path, capsys, monkeypatch
):
    root, _, _ = cli_bench
    fake_toy_datasets(monkeypatch)
    other = tmp_path / "other.yaml"
    other.write_text(CONFIG.replace("seeds: 2", "seeds: 3"))
    stored = (root / _layout.CONFIG).read_text()
    rows = len(pd.read_parquet(root / _layout.RESULTS))
    args = ["--config", str(other), "--dir", str(root), "--resume", "--no_progress"]
    assert new_main(args) == 0
    err = capsys.readouterr().err
    assert f"--resume: continuing {str(root)!r} under its stored config; the config given " in err
    assert "differs (stored -> given: seeds: 2 -> 3) and is not used." in err
    assert (root / _layout.CONFIG).read_text() == stored
    assert len(pd.read_parquet(root / _layout.RESULTS)) == rows  # finished: nothing trained


def test_a_finished_bench_run_again_shows_no_empty_progress_bar(cli_bench, capsys, monkeypatch):
    """Nothing left to train: the summary, without a bar of zero steps before it."""
    root, _, _ = cli_bench
    fake_toy_datasets(monkeypatch)
    capsys.readouterr()
    assert new_main(["--dir", str(root)]) == 0
    out, err = capsys.readouterr()
    assert "step/s" not in err and "cells " not in err, err
    assert f"bench {root}:" in out


@pytest.mark.parametrize("buffering", [1, -1], ids=["raised_printing", "raised_flushing"])
def test_a_finished_bench_whose_summary_no_one_reads_ends_quietly(
    cli_bench, tmp_path, capsys, monkeypatch, buffering
):
    """``new --dir DIR | head`` on a finished bench said 'interrupted by SIGPIPE: ... keeps
    4 of 4 cells finished; nothing is left to train' once head left, though nothing was
    cut short; it ends as ``cat`` does: SIGPIPE's status, no line, the bench as it was."""
    root = tmp_path / "bench"
    shutil.copytree(cli_bench[0], root)
    fake_toy_datasets(monkeypatch)
    parts = [f"{_layout.RESULTS}/{name}" for name in os.listdir(root / _layout.RESULTS)]
    before = {name: (root / name).read_bytes() for name in [_layout.CELLS, _layout.STATUS, *parts]}
    read, write = os.pipe()
    os.close(read)  # as head, gone
    capsys.readouterr()
    with os.fdopen(write, "w", buffering) as stdout:  # on the null device once stopped
        monkeypatch.setattr(sys, "stdout", stdout)
        assert new_main(["--dir", str(root)]) == 141
    assert capsys.readouterr().err == ""
    assert {name: (root / name).read_bytes() for name in before} == before


def _writes_refused(path, mode="r", *args, **kwargs):
    """`open`, refusing to write as a folder's permissions refuse others than root."""
    if mode != "r":
        raise PermissionError(errno.EACCES, "Permission denied", str(path))
    return open(path, mode, *args, **kwargs)


def test_a_finished_bench_in_a_read_only_folder_prints_its_summary(
    cli_bench, tmp_path, capsys, monkeypatch
):
    """``new --dir DIR`` on a finished bench whose folder may not be written (an archive,
    a read-only mount) said only that it could not write its run.lock, exit status 2. A
    finished bench needs no write: its summary, exit status 0, nothing written."""
    root = tmp_path / "bench"
    shutil.copytree(cli_bench[0], root)
    fake_toy_datasets(monkeypatch)
    if os.geteuid() == 0:  # root writes whatever the permissions say
        monkeypatch.setattr(_directory, "open", _writes_refused, raising=False)
    before = {path: path.stat().st_mtime_ns for path in root.rglob("*")}
    capsys.readouterr()
    root.chmod(0o555)
    try:
        assert new_main(["--dir", str(root)]) == 0
    finally:
        root.chmod(0o755)
    assert f"bench {root}:" in capsys.readouterr().out
    assert {path: path.stat().st_mtime_ns for path in root.rglob("*")} == before


def _no_room(descriptor):
    """`os.fsync` on a full disk."""
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize(
    ("module", "name", "refusing"),
    [(os, "fsync", _no_room), (_store, "open", _writes_refused)],
    ids=["full disk", "folder turned read-only, its run.lock still writable"],
)
def test_a_finished_bench_that_cannot_write_its_metadata_prints_its_summary(
    cli_bench, tmp_path, capsys, monkeypatch, module, name, refusing
):
    """A finished bench needs no write, yet ``new --dir DIR`` on a full disk ended in
    'error: [Errno 28] No space left on device: '.../env.json'', exit status 1, its
    summary unsaid, where a read-only folder printed it; so did a folder made read-only
    (``chmod a-w DIR``) whose run.lock, the user's own, could still be opened to write."""
    root = tmp_path / "bench"
    shutil.copytree(cli_bench[0], root)
    fake_toy_datasets(monkeypatch)
    monkeypatch.setattr(module, name, refusing, raising=False)
    files = lambda: {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    before = files()
    capsys.readouterr()
    assert new_main(["--dir", str(root)]) == 0
    assert f"bench {root}:" in capsys.readouterr().out
    lock = root / _layout.LOCK  # names this run: written in place, no room needed
    assert {p: b for p, b in files().items() if p != lock} == {
        p: b for p, b in before.items() if p != lock
    }


@pytest.mark.parametrize("inside", ["results/new", "blurbs"])
def test_a_new_bench_inside_a_bench_is_refused_and_nothing_written(cli_bench, capsys, inside):
    root, _, _ = cli_bench
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    command = ["--config", "configs/example.yaml", "--dir", str(root / inside)]
    assert new_main(command) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: --dir {str(root / inside)!r} is inside the bench {str(root)!r}, whose files a "
        "new bench there would mix with its own; pick a --dir outside it.\n"
    )
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before


def test_no_config_on_a_new_dir_is_refused_and_nothing_written(tmp_path, capsys):
    root = tmp_path / "new"
    assert new_main(["--dir", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no config given") and "pass --config FILE" in err
    assert not root.exists()


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ([], "no config given, and {dir} holds no bench to continue ({typo}): pass --config"),
        (["--resume"], "--resume: {dir} holds no bench to resume ({typo}); run the command"),
    ],
)
def test_a_mistyped_dir_without_config_names_the_bench_beside_it(tmp_path, capsys, given, said):
    """It said the directory holds no bench (or does not exist) alone, as if new."""
    (tmp_path / "example").mkdir()
    (tmp_path / "example" / _layout.MARKER).write_text('{"format": 1}')
    assert new_main(["--dir", str(tmp_path / "exmaple"), *given]) == 2
    typo = "no such directory; a typo of the bench 'example' beside it?"
    said = said.format(dir=repr(str(tmp_path / "exmaple")), typo=typo)
    assert capsys.readouterr().err.startswith(f"error: {said}")
    assert not (tmp_path / "exmaple").exists()


@pytest.mark.parametrize("given", ["flag", "file"])
def test_resume_of_a_dir_without_a_bench_says_to_drop_the_flag_or_the_files_key(
    tmp_path, capsys, given
):
    """It said 'run the command without --resume' where a config file's 'resume: true'
    gave it, which the user cannot do."""
    config = tmp_path / "mine.yaml"
    config.write_text("models: [mlp]\ndatasets: [mnist1d]\n" + "resume: true\n" * (given == "file"))
    root = tmp_path / "b"
    flag = ["--resume"] if given == "flag" else []
    assert new_main(["--config", str(config), "--dir", str(root), *flag]) == 2
    assert capsys.readouterr().err == (
        f"error: --resume: {str(root)!r} holds no bench to resume (no such directory); run "
        "the command without --resume (or resume: true in a config file), with its --config "
        "FILE, to start it.\n"
    )


def test_help_names_the_values_each_named_option_takes(capsys):
    """--grid.optimizer, --grid.lr_schedule, --grid.compute_dtype and --strategy: their
    names listed (--help gave only their type, str)."""
    with pytest.raises(SystemExit) as exit_info:
        new_main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for option, names in [
        ("the optimizer family.", "adam, adamw, sgd, momentum"),
        ("decays to 0 by the end.", "constant, cosine, linear"),
        ("see `phosjax.train.HParams`).", "float32, bfloat16"),
        ("(see `phosjax.train.run_group`).", "auto, vmap, map, sequential, stepwise, vmap_matmul"),
    ]:
        assert f"{option} One of: {names}" in text, option


def test_help_says_what_each_grid_key_is():
    """--help gave the grid's keys their type and default alone (--grid.grad_clip,
    --grid.knobs: what they set was said nowhere in it)."""
    helps = {action.dest: action.help or "" for action in parser()._actions}
    for field in dataclasses.fields(Grid):
        said = helps[f"grid.{field.name}"].split("One of:")[0].strip()
        assert said, f"--grid.{field.name} says nothing of what it sets"


def test_help_says_the_grid_option_takes_a_file_or_a_mapping(capsys):
    """--help said 'Path to a configuration file.', where a YAML mapping is taken too."""
    with pytest.raises(SystemExit):
        new_main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "--grid CONFIG grid's keys: a YAML file of them or a YAML mapping, e.g. --grid "
        "'{optimizer: VALUE}'; each is also --grid.KEY"
    ) in text


def test_a_key_given_twice_is_refused_naming_it(tmp_path, capsys):
    """Two grid: blocks: the second replaced the first without a word (its steps lost)."""
    config, root = tmp_path / "bench.yaml", tmp_path / "bench"
    config.write_text("models: [mlp]\ngrid:\n  steps: 3\nseeds: 1\ngrid:\n  batch_size: 8\n")
    assert new_main(["--config", str(config), "--dir", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: config file {str(config)!r} is not valid YAML: "), err
    assert "found the key 'grid' twice (the second would replace the first)" in err
    assert "line 5, column 1" in err and "Traceback" not in err  # the second
    assert not root.exists()


def test_a_morph_config_is_refused_saying_which_command_runs_it(tmp_path, capsys):
    """configs/morph_mnist1d.yaml, given to `new`: not "unknown key 'model' ... Did you
    mean 'models'?", which leads on to a bench config's other keys."""
    config = tmp_path / "my morph.yaml"  # printed unquoted, the command split there
    shutil.copy(
        pathlib.Path(__file__).resolve().parents[2] / "configs" / "morph_mnist1d.yaml", config
    )
    root = tmp_path / "bench"
    assert new_main(["--config", str(config), "--dir", str(root)]) == 2
    assert capsys.readouterr().err == (
        f"error: {config} is a config of `python -m phosjax.morph` (a model and its MorphNet "
        f"loop), not of a bench: run `python -m phosjax.morph --config '{config}' --dir DIR`; "
        "a bench config has models, datasets and grid (configs/example.yaml).\n"
    )
    assert not root.exists()


@pytest.mark.parametrize(
    ("flag", "value", "shown"), [("resume", "[1]", "[1]"), ("no_progress", "maybe", "'maybe'")]
)
def test_a_flag_a_config_file_sets_to_no_bool_is_refused_naming_the_file(
    flag, value, shown, tmp_path, capsys
):
    """'resume: [1]' resumed and 'no_progress: maybe' hid the bar: the parser took any
    value of a flag from a config file, where the command line's takes none."""
    config = tmp_path / "bench.yaml"
    config.write_text(f"models: [mlp]\n{flag}: {value}\n")
    root = tmp_path / "bench"
    assert new_main(["--config", str(config), "--dir", str(root)]) == 2
    assert capsys.readouterr().err == (
        f"error: {config}: {flag} must be true or false, got {shown}.\n"
    )
    config.write_text(f"models: [mlp]\n{flag}: false\nforce: null\n")  # null: not given
    with pytest.raises(SystemExit) as exit_info:
        new_main(["--config", str(config), "--dir", str(root), "--print_config"])
    assert exit_info.value.code == 0
    assert not root.exists()


@pytest.mark.parametrize(
    ("line", "said"),
    [
        (
            "dir: 5",
            "dir must be a directory's path, e.g. dir: runs/NAME (quoted where YAML "
            "reads it as another type: dir: '5'), got 5.",
        ),
        ("import: 5", "import must be a list of module names, e.g. import: [my_models], got 5."),
        (
            "import: [json, 5]",
            "import must be a list of module names, e.g. import: [my_models], got ['json', 5].",
        ),
    ],
)
def test_a_dir_or_import_a_config_file_sets_to_another_type_is_refused_naming_the_file(
    line, said, tmp_path, capsys, monkeypatch
):
    """'dir: 5' and 'import: 5' ended new with a TypeError's traceback."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "bench.yaml"
    config.write_text(f"models: [mlp]\n{line}\n")
    assert new_main(["--config", str(config)]) == 2
    assert capsys.readouterr().err == f"error: {config}: {said}\n"
    assert sorted(os.listdir(tmp_path)) == ["bench.yaml"]


@pytest.mark.parametrize("print_config", [False, True])
def test_a_models_entry_its_model_refuses_names_the_config_file_that_gave_it(
    print_config, tmp_path, capsys
):
    """Planning refuses it, where the file is not known: its error named no file, as a
    config file's other errors do; given by --models, it names none."""
    config = tmp_path / "bench.yaml"
    config.write_text("models: [{name: mlp, width: [a, b]}]\ndatasets: [mnist1d]\n")
    root = tmp_path / "bench"
    refused = "model 'mlp' on 'mnist1d': width must be an int >= 1"
    shown = ["--print_config"] if print_config else ["--no_progress"]
    assert new_main(["--config", str(config), "--dir", str(root), *shown]) == 2
    assert capsys.readouterr().err.startswith(f"error: {config}: {refused}")
    models = ["--models", "{name: mlp, width: [c]}"]
    assert new_main(["--config", str(config), *models, "--dir", str(root), *shown]) == 2
    assert capsys.readouterr().err.startswith(f"error: {refused}")
    assert not root.exists()


def test_a_models_entry_refused_on_a_data_set_of_another_file_names_both_files(tmp_path, capsys):
    """models in one file, datasets in another: it named the models' file alone, the
    data set's shape the entry is refused on coming from the other; a later file setting
    datasets again is the one named."""
    models, datasets, both = (tmp_path / name for name in ("models.yaml", "data.yaml", "b.yaml"))
    models.write_text("models: [cnn2d]\n")
    datasets.write_text("datasets: [mnist1d]\n")
    both.write_text("models: [cnn2d]\ndatasets: [mnist1d]\n")
    refused = "model 'cnn2d' on 'mnist1d' takes image inputs; input_shape (40,) (vector)"
    for first, second in [(models, datasets), (both, datasets)]:
        argv = ["--config", str(first), "--config", str(second), "--dir", str(tmp_path / "r")]
        assert new_main([*argv, "--print_config"]) == 2  # checked as a run checks it
        said = f"error: {first} (models), {second} (datasets): {refused}"
        assert capsys.readouterr().err.startswith(said)
    assert new_main(["--config", str(both), "--dir", str(tmp_path / "r"), "--print_config"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {both}: {refused}")  # one file: once
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("value", "shown", "why"),
    [("-2.0", "-2.0", ""), ("1.0e-50", "1e-50", "1e-50 held as float32: ")],  # float32: 0
)
def test_a_knob_value_out_of_its_range_is_one_error_line_and_nothing_written(
    tmp_path, capsys, monkeypatch, value, shown, why
):
    """A grid temperature of 0 (or one that float32 holds as 0) planned and trained cells
    with NaN outputs."""
    fake_toy_datasets(monkeypatch)
    config, root = tmp_path / "bench.yaml", tmp_path / "bench"
    config.write_text(
        CONFIG.replace("{name: mlp, width: 6}", "{name: choicenet, width: 6, depth: 1}").replace(
            "learning_rate: [0.01, 0.003]", f"knobs: {{'**/T': [1.0, {value}]}}"
        )
    )
    assert new_main(["--config", str(config), "--dir", str(root), "--no_progress"]) == 2
    err = capsys.readouterr().err
    held = "0.0" if why else shown
    assert err.startswith(
        f"error: grid.knobs['**/T'] = {shown} for model 'choicenet' on 'toy': {why}knob "
        f"'blocks_0/T' must be a finite number > 0, got {held}."
    ), err
    assert "Traceback" not in err
    assert not root.exists()


def test_a_data_set_that_cannot_load_is_one_error_line_and_nothing_written(tmp_path, capsys):
    config = tmp_path / "bench.yaml"
    config.write_text(CONFIG.replace("datasets: [toy]", "datasets: ['digits:9.9.9']"))
    root = tmp_path / "bench"
    args = ["--config", str(config), "--dir", str(root), "--data_dir", str(tmp_path / "data")]
    assert new_main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: built-in data set 'digits:9.9.9' cannot be loaded")
    assert "Traceback" not in err
    assert not root.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "is a directory, not a file."),
        (b"\xff\xfe models", "is not UTF-8 text"),
        (b"# only a comment\n", "holds no config (it is blank, comments only, or null)"),
    ],
)
def test_a_config_file_that_cannot_be_read_or_is_empty_is_one_error_line(
    tmp_path, capsys, content, message
):
    config, root = tmp_path / "bench.yaml", tmp_path / "bench"
    config.mkdir() if content is None else config.write_bytes(content)
    assert new_main(["--config", str(config), "--dir", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: config file {str(config)!r} {message}"), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not root.exists()


def test_no_config_on_a_bench_continues_it_under_its_stored_config(cli_bench, monkeypatch):
    root, _, _ = cli_bench
    fake_toy_datasets(monkeypatch)
    stored = (root / _layout.CONFIG).read_text()
    rows = len(pd.read_parquet(root / _layout.RESULTS))
    assert new_main(["--dir", str(root), "--no_progress"]) == 0
    assert (root / _layout.CONFIG).read_text() == stored
    assert len(pd.read_parquet(root / _layout.RESULTS)) == rows  # finished: nothing trained


def test_printed_config_passed_back_plans_the_same_grid(tmp_path, capsys, monkeypatch, toy):
    monkeypatch.setattr(_plan, "check_datasets", lambda *args: {})  # the toy data set
    path = tmp_path / "bench.yaml"
    path.write_text(
        "models: [mlp, {name: choicenet, width: 8, depth: 1}]\ndatasets: [toy]\n"
        "grid: {steps: 12, learning_rate: [0.1, 0.01], grad_clip: [null, 1.0],"
        " knobs: {'**/T': [0.5, 2.0]}}\nseeds: [3, 4]\n"
    )
    command = ["--config", str(path), "--dir", str(tmp_path / "b"), "--grid.batch_size", "16"]
    with pytest.raises(SystemExit) as exit_info:
        new_main([*command, "--print_config"])
    assert exit_info.value.code == 0
    printed = tmp_path / "printed.yaml"
    printed.write_text(capsys.readouterr().out)
    data = load_config(path).to_dict()
    data["grid"]["batch_size"] = 16
    wanted = BenchConfig.from_dict(data)
    assert load_config(printed) == wanted  # a bench config on its own: no --dir inside

    args = parser().parse_args(["--config", str(printed), "--dir", str(tmp_path / "c")])
    fields = {k: v for k, v in args.as_dict().items() if k in BenchConfig.__dataclass_fields__}
    again = BenchConfig.from_dict(fields)
    assert again == wanted and again.digest() == wanted.digest()
    cells = [c.cell_id for c in plan(again, toy).cells]
    assert len(cells) == (1 * 4 + 2 * 4) * 2  # mlp: lr x clip; choicenet: x T; x 2 seeds
    assert cells == [c.cell_id for c in plan(wanted, toy).cells]
    with pytest.raises(SystemExit) as exit_info:  # main's own checks accept it too
        new_main(["--config", str(printed), "--dir", str(tmp_path / "c"), "--print_config"])
    assert exit_info.value.code == 0 and capsys.readouterr().out == printed.read_text()
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_an_option_before_config_overrides_the_file_too(tmp_path, capsys):
    """jsonargparse applies options in order: the file set grid.steps back to 400."""
    config = pathlib.Path(__file__).resolve().parents[2] / "configs" / "example.yaml"
    argv = ["--grid.steps", "7", "--config", str(config), "--dir", str(tmp_path / "b")]
    with pytest.raises(SystemExit) as exit_info:
        new_main([*argv, "--print_config"])
    assert exit_info.value.code == 0
    printed = tmp_path / "printed.yaml"
    printed.write_text(capsys.readouterr().out)
    assert load_config(printed).grid.steps == 7


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ('--models=[{"name": "nosuch"}]', "unknown model 'nosuch'; registered models: "),
        ('--models=[{"name": "mlp", "widht": 3}]', "unknown key 'widht' in a models entry"),
        (  # jsonargparse took the list for one name: "unknown model '[mlp, 5]'"
            "--models=[mlp, 5]",
            "--models '[mlp, 5]' holds 5, which is no name; give names, joined by commas or "
            "as a YAML list, e.g. --models mlp,cnn1d\n",
        ),
        ("--grid.steps=-3", "grid.steps must be a whole number >= 1, got -3"),
        (  # a pair the plan would refuse: said before any data set is loaded
            "--grid.warmup_steps=[0, 500]",
            "grid.warmup_steps 500 is more than grid.steps 400, and the grid trains every pair",
        ),
        (  # entries the plan refuses: mnist1d's metadata gives its shape and classes
            '--models=[{"name": "mlp", "width": 0}]',
            "model 'mlp' on 'mnist1d': width must be an int >= 1 or a list of "
            "them (one per stage), got 0\n",
        ),
        (
            '--models=[{"name": "mlp", "options": {"nosuch": 1}}]',
            "model 'mlp' on 'mnist1d' has no option(s) ['nosuch']; it takes ",
        ),
        (  # it was printed, and the run refused it
            "--datasets=[mnist1d, mnist1d:1.0.0]",
            "datasets names one data set twice: 'mnist1d' and 'mnist1d:1.0.0' are both",
        ),
        (  # it was printed: only the models, traced as the run traces them, tell
            "--grid.knobs={T: [1.0]}",
            "knob selector 'T' matches no knob of any model; the models declare: {'choicenet'",
        ),
    ],
)
def test_print_config_refuses_a_config_a_run_would_refuse(tmp_path, capsys, override, message):
    command = ["--config", "configs/example.yaml", "--dir", str(tmp_path / "b"), override]
    assert new_main([*command, "--print_config"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"error: {message}"), err


def test_print_config_refuses_a_dir_that_is_a_file(tmp_path, capsys):
    """It printed the config and exited 0, though the run refuses such a --dir."""
    (tmp_path / "f").touch()
    command = ["--config", "configs/example.yaml", "--dir", str(tmp_path / "f")]
    assert new_main([*command, "--print_config"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"error: --dir {str(tmp_path / 'f')!r} is a file;"), err


@pytest.mark.parametrize(
    "given",
    [
        ["--models", "mlp,cnn1d", "--datasets", "digits"],
        ["--models=mlp,cnn1d", "--datasets=digits"],
        ["--models", "[mlp, cnn1d]", "--datasets", "[digits]"],
        ["--models", "mlp", "cnn1d", "--datasets", "digits"],  # was 'unrecognized: cnn1d'
        ["--models", "mlp", "--models+", "cnn1d", "--datasets", "digits"],
        [
            "--models",
            "[]",
            "--models+",
            "mlp,cnn1d",
            "--datasets",
            "digits",
        ],  # was "unknown model 'mlp,cnn1d'"
        ["--models", "[]", "--models+", "mlp", "cnn1d", "--datasets", "digits"],
    ],
)
def test_models_and_datasets_take_names_as_add_models_does(tmp_path, capsys, given):
    """'--datasets digits' was 'expected list (a list is written '[a, b]')'."""
    with pytest.raises(SystemExit) as exit_info:
        new_main(["--dir", str(tmp_path / "b"), *given, "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert (printed["models"], printed["datasets"]) == (["mlp", "cnn1d"], ["digits"])
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    ("option", "value", "example"),
    [
        ("--models", "mlp,", "mlp,cnn1d"),
        ("--models", "mlp,,cnn1d", "mlp,cnn1d"),
        ("--models", ",", "mlp,cnn1d"),
        ("--datasets", "digits,,mnist1d", "digits,mnist1d"),  # was told 'mlp,cnn1d'
        ("--datasets+", "digits,", "mnist1d,mnist1d_shuffled"),
        ("--models", "", "mlp,cnn1d"),  # was "expected list (a list is written '[a, b]')"
        ("--datasets", " ", "digits,mnist1d"),
    ],
)
def test_an_empty_name_between_commas_is_an_error_as_in_add_models(
    tmp_path, capsys, option, value, example
):
    """'--models mlp,' was the list [mlp] (YAML drops a last comma), 'mlp,,cnn1d' a YAML
    error about '[mlp,,cnn1d]'; add_models said "unknown model ''" of both."""
    assert new_main(["--dir", str(tmp_path / "b"), option, value, "--print_config"]) == 2
    assert capsys.readouterr().err == (
        f"error: {option} {value!r} holds an empty name (before, between or after its "
        f"commas); give names joined by commas, e.g. {option} {example}\n"
    )


def test_a_config_file_after_the_models_is_not_taken_for_a_model(tmp_path, capsys):
    """It was "unknown model 'my.yaml'", without the hint to pass --config."""
    argv = ["--models", "mlp", "cnn1d", "my.yaml", "--dir", str(tmp_path / "b")]
    with pytest.raises(SystemExit, match="2"):
        new_main(argv)
    assert capsys.readouterr().err.startswith(
        "error: unrecognized arguments: my.yaml (did you mean --config my.yaml?)"
    )


def test_a_data_set_name_with_a_split_is_read_as_written(tmp_path, capsys):
    """'--datasets digits[:10%]' was a YAML error about '[digits[:10%]]', a list no one
    wrote, not the config's error naming the dataset_splits entry to write."""
    assert new_main(["--dir", str(tmp_path / "b"), "--datasets", "digits[:10%]"]) == 2
    assert capsys.readouterr().err.startswith(
        "error: datasets names 'digits[:10%]', a data set with a split ('[:10%]'); a bench "
        "takes the data set's name alone in datasets (digits)"
    )


def test_print_config_knows_the_models_an_import_registers(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))
    (tmp_path / "my_models.py").write_text(
        "import flax.linen as nn\nfrom phosjax.models import register_model\n"
        "register_model('my_dense', nn.Dense)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_models", raising=False)
    command = ["--models=[my_dense]", "--dir", str(tmp_path / "b"), "--print_config"]
    assert new_main(command) == 2  # not registered without --import
    assert "unknown model 'my_dense'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        new_main([*command, "--import", "my_models"])
    assert exit_info.value.code == 0
    printed = tmp_path / "printed.yaml"
    printed.write_text(capsys.readouterr().out)
    assert [entry.name for entry in load_config(printed).model_entries()] == ["my_dense"]


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--grid.steps", "ten"],
            "--grid.steps ten: expected int or list[int] (a list is written ",
        ),
        (
            ["--grid.regularizers", "l1"],
            "--grid.regularizers l1: expected list (a list is written '[a, b]')",
        ),
        (  # was told a list is written '[a, b]', not the one meant
            ["--grid.learning_rate", "1e-3,1e-2"],
            "--grid.learning_rate 1e-3,1e-2: expected float or list[float] (a list is written "
            "'[1e-3, 1e-2]')",
        ),
        (  # said only 'expected float', of Python's NaN: YAML's is .nan
            ["--grid.learning_rate", "nan"],
            "--grid.learning_rate nan: expected float or list[float] (YAML writes NaN as .nan)",
        ),
        (  # said "(a list is written '[a, b]')", of a list
            ["--grid.learning_rate", "[nan, 0.1]"],
            "--grid.learning_rate ['nan', 0.1]: expected float or list[float] (YAML writes NaN "
            "as .nan)",
        ),
        (  # was told a list is written '[a, b]', of a list whose item is no number
            ["--grid.learning_rate", "[1, x]"],
            "--grid.learning_rate [1.0, 'x']: expected float or list[float]; python -m ",
        ),
        (  # the same of a list in a mapping
            ["--grid.knobs", "{T: [1, x]}"],
            "--grid.knobs {T: [1, x]}: expected each value float or list[float], got [1.0, 'x']"
            "; python -m ",
        ),
        (  # was told a list is written "[{'a': 1, 'b': 2}]", the mapping split at its comma
            ["--grid.learning_rate", "{a: 1, b: 2}"],
            "--grid.learning_rate {'a': 1, 'b': 2}: expected float or list[float] (a list is "
            "written '[a, b]')",
        ),
        (  # said only 'expected dict', of a dict whose items YAML cannot read unquoted
            ["--dataset_splits", "{digits: [train[:60%], train[60%:]]}"],
            "--dataset_splits {digits: [train[:60%], train[60%:]]}: expected dict (YAML cannot "
            "read it: expected ',' or ']', but got '['; an item holding brackets or commas is "
            """quoted, as in "['train[:90%]', 'train[90%:]']")""",
        ),
        (  # said only 'expected dict': the check read it as {'T': [0.5, 2.0]}, the option not
            ["--grid.knobs", "{T:[0.5, 2.0]}"],
            "--grid.knobs {T:[0.5, 2.0]}: expected dict (YAML cannot read it: found unexpected "
            "':'; a key's colon takes a space after it, as in '{T: [0.5, 2.0]}')",
        ),
        (  # was told a list is written '[a, b]', of a list
            ["--models", "[{name:mlp, width:[64]}]"],
            "--models [{name:mlp, width:[64]}]: expected list (YAML cannot read it: found "
            "unexpected ':'; a key's colon takes a space after it, as in "
            "'[{name: mlp, width: [64]}]')",
        ),
        (  # said only that it is neither a YAML file nor a YAML mapping
            ["--grid", "{steps:[10, 20]}"],
            "--grid '{steps:[10, 20]}' is neither a YAML file nor a YAML mapping (YAML cannot "
            "read it: found unexpected ':'; a key's colon takes a space after it, as in "
            "'{steps: [10, 20]}'); --grid takes a YAML file of its keys",
        ),
        (  # was told to quote its items
            ["--models", "[mlp"],
            "--models [mlp: expected list (YAML cannot read it: expected ',' or ']', but got "
            "'<stream end>'; an item holding brackets or commas is quoted, as in ",
        ),
        (  # said only 'expected dict', of what looks like one
            ["--grid.knobs", "{T:1}"],
            "--grid.knobs {T:1}: expected dict (YAML reads 'T:1' as one key without a value: "
            "a colon takes a space after it, as in 'T: 1')",
        ),
        (  # said '--grid.knobs True': the value of one of its keys, the key shown nowhere
            ["--grid.knobs", '{"**/T": true}'],
            '--grid.knobs {"**/T": true}: expected each value float or list[float], got True '
            "(a list is written '[a, b]')",
        ),
        (["--eval_every", "1.5"], "--eval_every 1.5: expected int"),
        (["--eval_every", ""], "--eval_every '': expected int"),  # was '--eval_every : '
        (
            ["--grid.stesp", "3"],
            "unrecognized arguments: --grid.stesp 3 (did you mean --grid.steps?)",
        ),
        ([], "the following arguments are required: --dir"),
    ],
)
def test_a_usage_error_is_one_line_naming_the_option_and_what_it_takes(
    tmp_path, capsys, args, line
):
    command = [*args, "--dir", str(tmp_path / "b")] if args else []
    with pytest.raises(SystemExit) as exit_info:
        new_main(command)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {line}") and len(err.splitlines()) == 1, err
    assert err.endswith("; python -m phosjax.bench.new --help lists the options.\n")
    assert not (tmp_path / "b").exists()


def _interrupted(*args, **kwargs):
    raise KeyboardInterrupt


def _starts_interrupted(monkeypatch) -> list:
    """Patches `new`'s run to stop at once as Ctrl-C does; the list it returns gets what
    `_directory.choose_config` chooses for each call that starts a bench (a config given,
    no resume): the command a line names starts the bench it says."""
    chosen = []

    def run(config, directory, *, resume, force, **kwargs):
        if config is not None and not resume:
            chosen.append(_directory.choose_config(directory, config, resume=resume, force=force))
        raise KeyboardInterrupt

    monkeypatch.setattr("phosjax.bench.new.run", run)
    return chosen


def test_ctrl_c_before_the_bench_is_written_says_the_command_that_starts_it(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr("phosjax.bench.new.run", _interrupted)
    root = tmp_path / "my b"
    assert new_main(["--config", "configs/example.yaml", "--dir", str(root)]) == 130
    assert capsys.readouterr().err == (
        f"interrupted: the bench was not started in --dir {str(root)!r} yet (it has no "
        "bench.json); the same command starts it: python -m phosjax.bench.new --config "
        f"configs/example.yaml --dir '{root}'\n"
    )


def test_ctrl_c_before_a_bench_starts_without_a_config_says_the_command_with_one(
    tmp_path, capsys, monkeypatch
):
    """It said the same command starts it, which new refuses: no config given."""
    root = tmp_path / "b"
    assert new_main(["--dir", str(root)]) == 2  # the command the line said before
    assert capsys.readouterr().err.startswith("error: no config given, and ")
    chosen = _starts_interrupted(monkeypatch)
    assert new_main(["--dir", str(root)]) == 130
    assert capsys.readouterr().err == (
        f"interrupted: the bench was not started in --dir {str(root)!r} yet (it has no "
        "bench.json); the command with a config starts it: python -m phosjax.bench.new "
        f"{shlex.join(['--config', 'FILE', '--dir', str(root)])}\n"
    )
    assert new_main(["--config", "configs/example.yaml", "--dir", str(root)]) == 130
    assert chosen == [(load_config("configs/example.yaml"), None)]  # it starts the bench


@pytest.mark.parametrize("resume", [[], ["--resume"]])
@pytest.mark.parametrize("where", ["inside a bench", "holding a file"])
def test_ctrl_c_before_a_bench_starts_where_none_may_says_why_not_a_command_refused(
    tmp_path, capsys, monkeypatch, where, resume
):
    """It said the same command (with --resume: the command without it) starts the bench
    there, which that command then refused."""
    (tmp_path / _layout.MARKER).write_text('{"format": 1}')
    root = tmp_path / "results" / "b"
    if where == "holding a file":
        (tmp_path / _layout.MARKER).unlink()
        root.mkdir(parents=True)
        (root / "notes.txt").write_text("mine")

    monkeypatch.setattr("phosjax.bench.new.run", _interrupted)
    command = ["--config", "configs/example.yaml", "--dir", str(root)]
    assert new_main([*command, *resume]) == 130
    said = capsys.readouterr().err
    monkeypatch.undo()
    assert new_main(command) == 2  # the command the line said before
    refused = capsys.readouterr().err.removeprefix("error: ")
    assert said == (
        f"interrupted: the bench was not started in --dir {str(root)!r} yet (it has no "
        f"bench.json); no bench can start there: {refused}"
    )
    if where == "inside a bench":
        assert refused.startswith(f"--dir {str(root)!r} is inside the bench {str(tmp_path)!r}")
    else:
        assert refused.startswith(f"{str(root)!r} is not empty and holds no bench (bench.json)")


def test_ctrl_c_of_add_models_inside_a_bench_says_no_bench_starts_there(
    tmp_path, capsys, monkeypatch
):
    """It said 'new --config FILE --dir' that --dir starts a bench, which new refuses."""
    (tmp_path / _layout.MARKER).write_text('{"format": 1}')
    root = tmp_path / "results"

    monkeypatch.setattr("phosjax.bench.add_models.add_models_to", _interrupted)
    assert add_models_main(["--dir", str(root)]) == 130
    assert capsys.readouterr().err == (
        f"interrupted: the bench was not started in --dir {str(root)!r} yet (it has no "
        f"bench.json); no bench can start there: --dir {str(root)!r} is inside the bench "
        f"{str(tmp_path)!r}, whose files a new bench there would mix with its own; pick a "
        "--dir outside it.\n"
    )


@pytest.mark.parametrize("config", [["--config", "configs/example.yaml"], []])
def test_ctrl_c_of_resume_before_the_bench_is_written_says_the_command_that_starts_it(
    tmp_path, capsys, monkeypatch, config
):
    """It said 'the same command starts it', which --resume refuses for a --dir without
    bench.json, here one a start killed before writing it left."""

    def killed(path, data):
        raise KeyboardInterrupt  # the first file written: env.json

    root = tmp_path / "my b"
    monkeypatch.setattr(_store, "write_bytes", killed)
    assert new_main(["--config", "configs/example.yaml", "--dir", str(root)]) == 130
    monkeypatch.undo()
    assert root.is_dir() and not (root / _layout.MARKER).exists()
    chosen = _starts_interrupted(monkeypatch)
    capsys.readouterr()
    assert new_main(["--resume", *config, "--dir", str(root)]) == 130
    start = ["--config", "configs/example.yaml" if config else "FILE", "--dir", str(root)]
    assert capsys.readouterr().err == (
        f"interrupted: the bench was not started in --dir {str(root)!r} yet (it has no "
        "bench.json); --resume refuses such a --dir, the command without it starts it: "
        f"python -m phosjax.bench.new {shlex.join(start)}\n"
    )
    example = load_config("configs/example.yaml")
    with pytest.raises(BenchError) as refused:  # what the line said before
        _directory.choose_config(root, example, resume=True)
    assert str(refused.value).startswith(f"--resume: {str(root)!r} holds no bench to resume: ")
    if config:  # the command said starts the bench there
        assert new_main(start) == 130 and chosen == [(example, None)]


@pytest.mark.parametrize("flag", [[], ["--resume"]])
def test_ctrl_c_where_a_config_file_resumes_a_dir_without_a_bench_names_that_file(
    tmp_path, capsys, monkeypatch, flag
):
    """With 'resume: true' in the --config file it said 'the same command starts it' (with
    --resume too: 'the command without it'), which that file's resume refuses."""
    config = tmp_path / "my bench.yaml"
    config.write_text(CONFIG + "resume: true\n")
    root = tmp_path / "b"
    command = ["--config", str(config), "--dir", str(root)]
    assert new_main([*command, *flag]) == 2  # what the command named before does
    assert capsys.readouterr().err.startswith(f"error: --resume: {str(root)!r} holds no bench")
    chosen = _starts_interrupted(monkeypatch)
    assert new_main([*command, *flag]) == 130
    refusing = (
        f"--resume and resume: true in {str(config)!r} refuse"
        if flag
        else (f"resume: true in {str(config)!r} refuses")
    )
    assert capsys.readouterr().err == (
        f"interrupted: the bench was not started in --dir {str(root)!r} yet (it has no "
        f"bench.json); {refusing} such a --dir, the command without {'them' if flag else 'it'} "
        f"starts it: python -m phosjax.bench.new {shlex.join(command)}\n"
    )
    config.write_text(CONFIG)  # the file without it
    assert new_main(command) == 130 and chosen == [(load_config(config), None)]  # started


def test_ctrl_c_where_a_config_file_forces_says_the_bench_is_moved_aside_if_it_differs(
    cli_bench, tmp_path, capsys, monkeypatch
):
    """With 'force: true' in the --config file it said 'the same command continues it'."""
    root = tmp_path / "bench"
    shutil.copytree(cli_bench[0], root)
    config = tmp_path / "forced.yaml"
    config.write_text(CONFIG + "force: true\n")

    monkeypatch.setattr("phosjax.bench.new.run", _interrupted)
    argv = ["--config", str(config), "--dir", str(root)]
    assert new_main(argv) == 130
    assert capsys.readouterr().err == (
        f"interrupted: {str(root)!r} keeps 4 of 4 cells finished; the same command moves it "
        "aside and starts over if the config given differs from its own, or else reads its "
        f"results: python -m phosjax.bench.new {shlex.join(argv)}\n"
    )


def test_ctrl_c_in_a_process_of_a_shared_bench_says_each_process_runs_again(
    cli_bench, tmp_path, capsys, monkeypatch
):
    """Ctrl-C in process 1 of 2 said 'the same command continues it: ... --process_id 1',
    which run alone waits for a coordinator that is gone; each process is run again."""
    root = tmp_path / "bench"
    shutil.copytree(cli_bench[0], root)
    marker = json.loads((root / _layout.MARKER).read_text())
    (root / _layout.MARKER).write_text(json.dumps({**marker, "processes": 2}))
    monkeypatch.setattr("phosjax.bench.new.run", _interrupted)
    argv = ["--dir", str(root)]
    assert new_main(argv) == 130
    assert capsys.readouterr().err == (
        f"interrupted: {str(root)!r} keeps 4 of 4 cells finished; nothing is left to train; "
        f"the same command reads its results: python -m phosjax.bench.new {shlex.join(argv)} "
        "(run in each of the bench's 2 processes)\n"
    )


def test_ctrl_c_where_a_config_file_sets_the_dir_says_what_that_dir_keeps(
    cli_bench, tmp_path, capsys, monkeypatch
):
    """With 'dir: ...' in the --config file (no --dir given) it said 'nothing was written'
    of a bench whose cells were all finished."""
    root = tmp_path / "my bench"
    shutil.copytree(cli_bench[0], root)
    config = tmp_path / "bench.yaml"
    config.write_text(CONFIG + f"dir: {str(root)!r}\n")
    directories = []

    def interrupted(config, directory, **kwargs):
        directories.append(directory)
        raise KeyboardInterrupt

    monkeypatch.setattr("phosjax.bench.new.run", interrupted)
    assert new_main(["--config", str(config)]) == 130
    assert directories == [str(root)]
    assert capsys.readouterr().err == (
        f"interrupted: {str(root)!r} keeps 4 of 4 cells finished; nothing is left to train; "
        "the same command reads its results: python -m phosjax.bench.new "
        f"{shlex.join(['--config', str(config), '--dir', str(root)])}\n"
    )


def test_ctrl_c_before_the_command_line_is_read_whole_says_nothing_was_written(
    tmp_path, capsys, monkeypatch
):
    """As the --config files were checked (their resume or force not read yet), it said
    'the same command starts it' of a file's config that --resume then refused."""
    config = tmp_path / "bench.yaml"
    config.write_text(CONFIG + "resume: true\n")

    monkeypatch.setattr("phosjax.bench.new._check_config_files", _interrupted)
    argv = ["--config", str(config), "--dir", str(tmp_path / "b")]
    assert new_main(argv) == 130
    assert capsys.readouterr().err == (
        "interrupted: the command was still starting, nothing was written; the same command "
        f"runs it: python -m phosjax.bench.new {shlex.join(argv)}\n"
    )
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("finished", [True, False])
@pytest.mark.parametrize("force", [False, True])
def test_ctrl_c_says_how_many_cells_are_kept_and_the_command_that_continues(
    cli_bench, tmp_path, capsys, monkeypatch, finished, force
):
    """With --force, Ctrl-C before the bench was moved aside (as the config given was
    planned) said what the same command does without it: continue the bench or read its
    results, where it moves the bench aside and starts over when the config differs."""
    root = tmp_path / "bench"
    shutil.copytree(cli_bench[0], root)
    status = json.loads((root / _layout.STATUS).read_text())
    for group in status["groups"].values():
        group |= {"finished": finished, "steps_done": 12 if finished else 0}
    (root / _layout.STATUS).write_text(json.dumps(status))

    monkeypatch.setattr("phosjax.bench.new.run", _interrupted)
    options = ["--dir", str(root), *(["--force", "--seeds", "5"] if force else []), "--no_progress"]
    assert new_main(options) == 130
    forced = (
        "the same command moves it aside and starts over if the config given differs from its "
        "own, or else "
    )
    again = {  # run again, a finished bench is not continued: its results are read
        (True, False): "nothing is left to train; the same command reads its results",
        (False, False): "the same command continues it",
        (True, True): f"{forced}reads its results",
        (False, True): f"{forced}continues it",
    }[finished, force]
    kept = (
        "4 of 4 cells finished"
        if finished
        else "0 of 4 cells finished, and the others' rows up to their group's last checkpoint"
    )
    command = f"python -m phosjax.bench.new {' '.join(options)}"
    assert (
        capsys.readouterr().err == f"interrupted: {str(root)!r} keeps {kept}; {again}: {command}\n"
    )


def test_ctrl_c_of_add_models_once_every_cell_is_finished_says_what_the_same_command_does(
    cli_bench, tmp_path, capsys, monkeypatch
):
    """Stopped as it wrote its summary, every model it added trained, it said 'the same
    command continues it', which then refused: the bench has every model named (and the
    refusal named no command that reads the results)."""
    root = tmp_path / "my b"
    shutil.copytree(cli_bench[0], root)
    argv = ["--dir", str(root), "--models", "{name: mlp, width: 6}", "--no_progress"]
    assert add_models_main(argv) == 2  # what the same command does, and what reads it
    assert capsys.readouterr().err == (
        "error: the bench already has every model named, [{'name': 'mlp', 'width': 6}], and "
        f"is finished; python -m phosjax.bench.new --dir '{root}' reads its results.\n"
    )

    monkeypatch.setattr("phosjax.bench.add_models.add_models_to", _interrupted)
    assert add_models_main(argv) == 130
    assert capsys.readouterr().err == (
        f"interrupted: {str(root)!r} keeps 4 of 4 cells finished; it has every model named, "
        "which add_models adds no more; nothing is left to train, this command reads its "
        f"results: python -m phosjax.bench.new --dir '{root}'\n"
    )
    assert new_main(["--dir", str(root), "--no_progress"]) == 0  # it reads them


@pytest.mark.parametrize("force", [False, True])
def test_ctrl_c_on_a_bench_whose_status_is_cut_short_still_says_how_to_continue(
    cli_bench, tmp_path, capsys, monkeypatch, force
):
    """With --force it said 'the same command continues it', where the same command moves
    the bench aside and starts over when the config given differs."""
    root = tmp_path / "bench"
    shutil.copytree(cli_bench[0], root)
    (root / _layout.STATUS).write_text('{"groups": ')

    monkeypatch.setattr("phosjax.bench.new.run", _interrupted)
    options = ["--dir", str(root), *(["--force"] if force else [])]
    assert new_main(options) == 130
    again = (
        "the same command moves it aside and starts over if the config given differs from its "
        "own, or else continues it"
        if force
        else "the same command continues it"
    )
    assert capsys.readouterr().err == (
        f"interrupted: everything written in --dir {str(root)!r} is kept; {again}: "
        f"python -m phosjax.bench.new {' '.join(options)}\n"
    )


def test_ctrl_c_mid_training_closes_the_bar_before_its_line(tmp_path, capsys, monkeypatch):
    """The bar is not left open, to be drawn again after the line (or at exit)."""

    def interrupted_after_a_chunk(*args, on_progress, **kwargs):
        on_progress(4)
        raise KeyboardInterrupt

    fake_toy_datasets(monkeypatch)
    monkeypatch.setattr(_runner, "train_group", interrupted_after_a_chunk)
    config = tmp_path / "bench.yaml"
    config.write_text(CONFIG)
    assert new_main(["--config", str(config), "--dir", str(tmp_path / "b")]) == 130
    assert not tqdm.tqdm._instances  # closed, not waiting for the garbage collector
    err = capsys.readouterr().err
    kept = f"{str(tmp_path / 'b')!r} keeps 0 of 4 cells finished"
    assert f"interrupted: {kept}, and the others' rows up to" in err and "4/48" in err


def test_a_stop_on_a_bench_without_its_plan_says_it_continues_not_that_it_is_finished(
    cli_bench, tmp_path, capsys, monkeypatch
):
    """SIGTERM on a bench whose cells.parquet was lost, as the run planned it again, said
    "keeps 0 of 0 cells finished; nothing is left to train; the same command reads its
    results", of a bench the same command plans and continues."""
    root = tmp_path / "bench"
    shutil.copytree(cli_bench[0], root)
    (root / _layout.CELLS).unlink()

    def stopped_planning(*args, **kwargs):
        raise _interrupt.Signalled(signal.SIGTERM)

    monkeypatch.setattr("phosjax.bench.new.run", stopped_planning)
    argv = ["--dir", str(root), "--no_progress"]
    assert new_main(argv) == 143
    assert capsys.readouterr().err == (
        f"interrupted by SIGTERM: the bench in --dir {str(root)!r} has no cells.parquet (its "
        f"plan, which the next run writes); the same command continues it: python -m "
        f"phosjax.bench.new {' '.join(argv)}\n"
    )


def test_data_dir_alone_continues_the_bench_reading_from_there(cli_bench, tmp_path, monkeypatch):
    root = tmp_path / "copy"
    shutil.copytree(cli_bench[0], root)
    read_from = []

    def load(names, data_dir, features, splits):
        read_from.append(data_dir)
        return {"toy": toy_data()}

    fake_toy_datasets(monkeypatch, load)
    checked_in = []
    monkeypatch.setattr(_runner, "check_datasets", lambda *a: checked_in.append(a[1]) or {})
    rows = len(pd.read_parquet(root / _layout.RESULTS))
    moved = str(tmp_path / "moved")
    assert new_main(["--dir", str(root), "--data_dir", moved, "--no_progress"]) == 0
    assert read_from == []  # finished: nothing to train, so no data set prepared in moved
    assert checked_in == [moved]  # but checked there, as a plan checks them
    before = load_config(cli_bench[0] / _layout.CONFIG)
    assert load_config(root / _layout.CONFIG) == dataclasses.replace(before, data_dir=moved)
    assert len(pd.read_parquet(root / _layout.RESULTS)) == rows  # the same bench: nothing new


def test_resume_with_force_is_one_error_line_naming_both(tmp_path, capsys):
    assert new_main(["--dir", str(tmp_path / "b"), "--resume", "--force"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "error: --resume and --force contradict each other: --resume continues the bench in "
        "--dir under its stored config, --force moves it aside and starts over; give one.\n"
    )
    assert not (tmp_path / "b").exists()


def test_resume_from_a_config_file_with_force_names_that_file(tmp_path, capsys):
    """With 'resume: true' in the --config file and --force it said '--resume and --force
    contradict each other', naming an option the command did not give."""
    config = tmp_path / "resumed.yaml"
    config.write_text(CONFIG + "resume: true\n")
    assert new_main(["--config", str(config), "--dir", str(tmp_path / "b"), "--force"]) == 2
    assert capsys.readouterr().err == (
        f"error: resume: true in {str(config)!r} and --force contradict each other: --resume "
        "continues the bench in --dir under its stored config, --force moves it aside and "
        "starts over; give one.\n"
    )
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("no_progress", [True, False])
def test_no_progress_hides_tfds_s_bars_as_it_prepares_a_data_set(
    tmp_path, capsys, monkeypatch, no_progress
):
    """TFDS drew 'Generating splits...' bars into a log run with --no_progress."""
    from phosjax.bench import new
    from phosjax.data import load

    def preparing_run(*args, **kwargs):
        load("digits", data_dir=str(tmp_path / "data"))

    monkeypatch.setattr(new, "run", preparing_run)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # in a log, hidden either way
    command = ["--models", "mlp", "--dir", str(tmp_path / "b")]
    assert new_main([*command, *(["--no_progress"] if no_progress else [])]) == 0
    err = capsys.readouterr().err
    assert "preparing built-in data set 'digits'" in err  # a line, said either way
    assert ("Generating splits" in err) is not no_progress, err
