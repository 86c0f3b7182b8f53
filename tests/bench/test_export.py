"""`python -m phosjax.bench.export`: every finished cell as an MLflow run in a local store."""

import errno
import hashlib
import http.server
import importlib.metadata
import itertools
import json
import math
import os
import pathlib
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time

import pandas as pd
import pyarrow.parquet as pq
import pytest
import tqdm

from phosjax._listing import listing
from phosjax.bench import _directory, _layout
from phosjax.bench._config import BenchError
from phosjax.bench._directory import export_locked
from phosjax.bench._reading import MARKER_HINT
from phosjax.bench.export import (
    TAG_BENCH,
    TAG_CELL,
    TAG_CONFIG,
    TAG_CREATED,
    TAG_DIVERGED_AT,
    TAG_METRIC_NAMES,
    TAG_PARAM_NAMES,
    _unreachable,
    export_mlflow,
    main,
    mlflow_keys,
)
from tests.bench._viewer_fixtures import (
    DIVERGED,
    METRICS,
    RUNNER_DIVERGED_STEP,
    RUNNER_STEPS,
    blurb_json,
    write_bench,
)
from tests.bench.runner_tiny import listing_refused

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra (mlflow-skinny) is not installed")


@pytest.fixture
def store(tmp_path, monkeypatch):
    # MLflow 3 keeps the file store only on request; it is the store a test can make locally.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return f"file:{tmp_path / 'mlruns'}"


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return write_bench(tmp_path_factory.mktemp("benches") / "example", blurb_json(), as_runner=True)


def _runs(store, experiment="example"):
    client = mlflow.tracking.MlflowClient(store)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([experiment_id], max_results=100)
    by_cell = {run.data.tags[TAG_CELL]: run for run in runs}
    assert len(by_cell) == len(runs), "a cell was exported twice"
    return client, by_cell


def test_every_cell_becomes_a_run_with_params_metrics_and_blurb(
    written, store, tmp_path, capsys, monkeypatch
):
    seconds = itertools.count(0, 5)  # tqdm's clock: 5 s a reading
    monkeypatch.setattr(tqdm.std, "time", lambda: next(seconds))
    exported = export_mlflow(str(written.root), store, progress=True)
    shown = capsys.readouterr().err.splitlines()  # it was silent
    assert shown[-1].startswith("export: 100%") and f"{len(exported.runs)} [" in shown[-1], shown
    elapsed = [int(m) * 60 + int(s) for m, s in re.findall(r"\[(\d\d):(\d\d)<", "\n".join(shown))]
    assert min(b - a for a, b in itertools.pairwise(elapsed[:-1])) >= 30, shown  # but its end
    assert sorted(exported.runs) == sorted(written.cells.cell_id)
    client, runs = _runs(store)
    assert sorted(runs) == sorted(written.cells.cell_id)
    for cell in written.cells.to_dict("records"):
        run = runs[cell["cell_id"]]
        assert run.info.status == "FINISHED"
        assert run.info.run_name == f"{cell['model']}-{cell['cell_id']}"
        assert run.data.params == {k: str(v) for k, v in cell.items()}
        expected = {
            f"{split}/{metric}"
            for split in ("train", "test")
            for metric in METRICS
            if cell["model"] == "choice" or not metric.startswith(("aux/", "path_weight/"))
        }
        assert set(run.data.metrics) == expected
        history = client.get_metric_history(run.info.run_id, "test/loss")
        rows = written.results[
            (written.results.cell_id == cell["cell_id"]) & (written.results.split == "test")
        ]
        assert [m.step for m in history] == list(RUNNER_STEPS["test"])
        assert [m.value for m in history] == pytest.approx(rows["loss"].tolist(), rel=1e-12)
        folders = {f.path for f in client.list_artifacts(run.info.run_id)}
        assert folders == (
            {"blurb", "bench", "graph"} if cell["model"] == "choice" else {"blurb", "bench"}
        )
        blurb = client.download_artifacts(
            run.info.run_id, f"blurb/{cell['model_id']}.json", str(tmp_path)
        )
        assert json.loads(pathlib.Path(blurb).read_text()) == written.blurb


def test_params_and_metrics_beyond_one_log_batch_are_all_logged(written, store, monkeypatch):
    """MLflow takes at most 100 params and 1000 metrics per call; small batches here make
    every cell span several calls, none of which may lose an item."""
    from phosjax.bench import export

    monkeypatch.setattr(export, "_PARAMS_BATCH", 3)
    monkeypatch.setattr(export, "_BATCH", 7)
    export_mlflow(str(written.root), store)
    client, runs = _runs(store)
    for cell in written.cells.to_dict("records"):
        run = runs[cell["cell_id"]]
        assert run.data.params == {k: str(v) for k, v in cell.items()}
        history = client.get_metric_history(run.info.run_id, "test/loss")
        assert [m.step for m in history] == list(RUNNER_STEPS["test"])
        train = client.get_metric_history(run.info.run_id, "train/loss")
        assert [m.step for m in train] == list(RUNNER_STEPS["train"])


def test_a_diverged_cell_logs_its_nans_at_every_step(tmp_path, store):
    bench = write_bench(tmp_path / "example", blurb_json(), diverge=True, as_runner=True)
    export_mlflow(str(bench.root), store)
    client, runs = _runs(store)
    cell_id = bench.cells.set_index(["model", "lr", "seed"]).loc[DIVERGED, "cell_id"]
    history = client.get_metric_history(runs[cell_id].info.run_id, "test/loss")
    steps = RUNNER_STEPS["test"]
    assert [m.step for m in history] == list(steps)
    assert [math.isnan(m.value) for m in history] == [s >= RUNNER_DIVERGED_STEP for s in steps]


def test_a_cell_frozen_since_it_diverged_is_tagged_with_the_step(tmp_path, store):
    """Its values finite (its frozen state's), its rows say ``diverged`` from a step on."""
    bench = write_bench(tmp_path / "example", blurb_json(), frozen=True, as_runner=True)
    export_mlflow(str(bench.root), store)
    _, runs = _runs(store)
    cell_id = bench.cells.set_index(["model", "lr", "seed"]).loc[DIVERGED, "cell_id"]
    tagged = {c: run.data.tags.get(TAG_DIVERGED_AT) for c, run in runs.items()}
    assert tagged == {c: str(RUNNER_DIVERGED_STEP) if c == cell_id else None for c in runs}


def test_exporting_again_skips_exported_and_unfinished_cells(written, store, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(written.root, partial)
    status = json.loads((partial / _layout.STATUS).read_text())
    status["groups"]["g-mlp"]["finished"] = False
    (partial / _layout.STATUS).write_text(json.dumps(status))
    first = export_mlflow(str(partial), store, experiment="example")
    mlp = sorted(written.cells[written.cells.model == "mlp"].cell_id)
    assert sorted(first.unfinished) == mlp and len(first.runs) == len(written.cells) - len(mlp)
    second = export_mlflow(str(written.root), store)
    assert sorted(second.runs) == mlp and sorted(second.already_exported) == sorted(first.runs)
    assert len(_runs(store)[1]) == len(written.cells)


def test_exporting_again_counts_only_the_cells_it_exports_in_its_bar(
    written, store, tmp_path, capsys
):
    """The bar's total (and so its time left) is the cells still to export, not the
    bench's every cell; with none left it shows no bar."""
    partial = tmp_path / "partial"
    shutil.copytree(written.root, partial)
    status = json.loads((partial / _layout.STATUS).read_text())
    status["groups"]["g-mlp"]["finished"] = False
    (partial / _layout.STATUS).write_text(json.dumps(status))
    export_mlflow(str(partial), store, experiment="example")
    capsys.readouterr()
    mlp = len(written.cells[written.cells.model == "mlp"])
    export_mlflow(str(written.root), store, progress=True)
    shown = capsys.readouterr().err.splitlines()
    assert shown[-1].startswith("export: 100%|") and f" {mlp}/{mlp} [" in shown[-1], shown
    export_mlflow(str(written.root), store, progress=True)
    assert capsys.readouterr().err == ""


def test_exporting_after_add_models_adds_only_the_new_cells(written, store, tmp_path):
    """`add_models` rewrites the bench's config hash but keeps its creation time."""
    bench = tmp_path / "example"
    shutil.copytree(written.root, bench)
    mlp = written.cells[written.cells.model == "mlp"]
    mlp.to_parquet(bench / _layout.CELLS)  # the bench before the choice model was added
    first = export_mlflow(str(bench), store)
    assert sorted(first.runs) == sorted(mlp.cell_id)
    shutil.copytree(written.root, bench, dirs_exist_ok=True)  # after add_models
    marker = json.loads((bench / _layout.MARKER).read_text())
    (bench / _layout.MARKER).write_text(json.dumps({**marker, "config_hash": "extended"}))
    second = export_mlflow(str(bench), store)
    assert sorted(second.already_exported) == sorted(mlp.cell_id)
    assert sorted(second.runs) == sorted(written.cells[written.cells.model == "choice"].cell_id)
    runs = _runs(store)[1]
    assert len(runs) == len(written.cells)
    assert {run.data.tags[TAG_CREATED] for run in runs.values()} == {marker["created"]}


def test_runs_exported_before_the_creation_tag_are_not_exported_again(written, store):
    """Runs of an earlier version carry the bench's config hash but no creation time."""
    export_mlflow(str(written.root), store)
    client, runs = _runs(store)
    for run in runs.values():
        client.delete_tag(run.info.run_id, TAG_CREATED)
    again = export_mlflow(str(written.root), store)
    assert again.runs == {} and sorted(again.already_exported) == sorted(runs)
    assert len(_runs(store)[1]) == len(written.cells)


def test_another_bench_with_the_same_config_is_exported_in_full(written, store, tmp_path):
    """Only runs without a creation tag are matched by config hash: a bench made again
    from the same config (another creation time) is a new bench, all of its cells new."""
    export_mlflow(str(written.root), store)
    again = tmp_path / "example"
    shutil.copytree(written.root, again)
    marker = json.loads((again / _layout.MARKER).read_text())
    (again / _layout.MARKER).write_text(json.dumps({**marker, "created": "another time"}))
    second = export_mlflow(str(again), store)
    assert second.already_exported == []
    assert sorted(second.runs) == sorted(written.cells.cell_id)
    client = mlflow.tracking.MlflowClient(store)
    experiment_id = client.get_experiment_by_name("example").experiment_id
    assert len(client.search_runs([experiment_id], max_results=100)) == 2 * len(written.cells)


def test_mlflow_keys_number_every_column_that_would_share_a_key():
    keys = mlflow_keys(["a*", "a?", "a!", "a_2", "b"])
    assert keys == {"a*": "a_", "a?": "a__2", "a!": "a__3", "a_2": "a_2", "b": "b"}
    assert len(set(keys.values())) == len(keys)


def test_command_line(written, store, tmp_path, capsys, monkeypatch):
    assert main(["--dir", str(written.root), "--mlflow", store, "--experiment", "cli"]) == 0
    out = capsys.readouterr().out
    experiment_id = mlflow.tracking.MlflowClient(store).get_experiment_by_name("cli").experiment_id
    assert (
        f"Exported {len(written.cells)} cells to MLflow experiment 'cli' (id {experiment_id}) "
        in out
    )
    assert len(_runs(store, "cli")[1]) == len(written.cells)
    assert main(["--dir", str(tmp_path), "--mlflow", store]) == 2
    assert "is not a bench: it has no bench.json" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "mlflow.exceptions", None)  # as if not installed
    assert main(["--dir", str(written.root), "--mlflow", store]) == 2
    assert "needs the mlflow extra: pip install 'phosjax[mlflow]'" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["", "  "])
def test_an_empty_experiment_name_is_refused_naming_the_option(written, store, capsys, name):
    """``--experiment ""`` exported into the bench's experiment as if it were left out."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--dir", str(written.root), "--mlflow", store, "--experiment", name])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --experiment {name!r} is empty; give the experiment's name"), err
    assert not pathlib.Path(store.removeprefix("file:")).exists()  # no store, no experiment


@pytest.mark.parametrize("name", [" cli", "cli\n"])
def test_an_experiment_name_with_spaces_around_it_is_refused(written, store, capsys, name):
    """``--experiment ' cli'`` exported into an experiment ' cli', beside 'cli'."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--dir", str(written.root), "--mlflow", store, "--experiment", name])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"error: --experiment {name!r} begins or ends with whitespace, which MLflow keeps in "
        "the name; write --experiment 'cli'; python -m phosjax.bench.export --help lists the "
        "options.\n"
    )
    assert not pathlib.Path(store.removeprefix("file:")).exists()  # no store, no experiment


def test_an_empty_tracking_uri_is_refused_naming_the_option(written, tmp_path, capsys, monkeypatch):
    """``--mlflow ""`` was MLflow's default store, ``sqlite:///mlflow.db`` in the working dir."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["--dir", str(written.root), "--mlflow", ""])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (  # MLflow 3 refused the file:mlruns it advised
        "error: --mlflow '' is empty; give MLflow's tracking URI, e.g. --mlflow "
        "http://localhost:5000 or --mlflow file:mlruns (with MLFLOW_ALLOW_FILE_STORE=true); "
        "python -m phosjax.bench.export --help lists the options.\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_tracking_server_that_cannot_be_reached_is_an_error_at_once(written, capsys):
    """MLflow retried http://localhost:1 for 4 minutes before its error."""
    with socket.socket() as sock:  # a port that nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{sock.getsockname()[1]}"
    started = time.monotonic()
    assert main(["--dir", str(written.root), "--mlflow", uri]) == 2
    assert time.monotonic() - started < 10
    assert capsys.readouterr().err == (
        f"error: cannot reach the MLflow tracking server {uri} (Connection refused): start it "
        "(mlflow server --port PORT) or pass the URI of one that runs with --mlflow.\n"
    )


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("http://localhost:99999", "Port out of range 0-65535"),
        ("http://localhost:5000x", "Port could not be cast to integer value as '5000x'"),
        ("http://", "no host"),
    ],
)
def test_a_server_uri_that_names_no_server_is_an_error_naming_it(written, capsys, uri, why):
    """It was requests' traceback: 'InvalidURL: Failed to parse: http://localhost:99999'."""
    assert main(["--dir", str(written.root), "--mlflow", uri]) == 2
    assert capsys.readouterr().err == (
        f"error: the MLflow tracking URI {uri} names no server ({why}): write "
        "http://HOST:PORT, e.g. --mlflow http://localhost:5000.\n"
    )


def test_a_tracking_server_that_answers_is_reachable_whatever_it_answers():
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.handle_request)  # one request: 501 to HEAD
    thread.start()
    try:
        assert _unreachable(f"http://127.0.0.1:{server.server_port}") is None
    finally:
        thread.join(5)
        server.server_close()


def test_help_says_what_a_tracking_uri_is_and_what_an_export_logs(capsys):
    """It said 'MLflow tracking URI' and 'Log a bench's cells to MLflow.' alone."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    option = out.split("--mlflow URI MLflow's tracking URI: ")[-1]
    for said in ("http://localhost:5000", "sqlite:///mlflow.db", "MLFLOW_ALLOW_FILE_STORE=true"):
        assert said in option, out
    assert "one MLflow run per finished cell" in out and "skips the cells already exported" in out


def test_a_store_that_cannot_be_made_is_an_error_naming_it(written, store, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    for uri in (f"file:{tmp_path / 'notes.txt'}", "file:/proc/mlruns"):
        assert main(["--dir", str(written.root), "--mlflow", uri]) == 2
        assert capsys.readouterr().err.startswith(f"error: cannot use the MLflow store {uri}: ")
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("inside", ["", "mlruns", "results"])
@pytest.mark.parametrize("scheme", ["", "file:"])
def test_a_file_store_in_a_bench_is_refused_and_nothing_is_written(
    written, store, tmp_path, capsys, inside, scheme
):
    root = tmp_path / "example"
    shutil.copytree(written.root, root)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    uri = f"{scheme}{root / inside}"
    assert main(["--dir", str(written.root), "--mlflow", uri]) == 2
    where = "is inside the bench" if inside else "is the bench"
    assert capsys.readouterr().err == (
        f"error: the MLflow store {uri} {where} {str(root.resolve())!r}: MLflow would write "
        "its experiments among the bench's files; pass a folder outside every bench "
        "(--mlflow file:mlruns).\n"
    )
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_a_sqlite_store_without_the_full_mlflow_says_to_install_it(written, tmp_path, capsys):
    """README: a ``sqlite:`` store needs the full ``mlflow`` package; mlflow-skinny's own
    error (an unsupported model registry URI) does not say so."""
    status = main(["--dir", str(written.root), "--mlflow", f"sqlite:///{tmp_path / 'm.db'}"])
    if status == 0:
        pytest.skip("the full mlflow package is installed: the sqlite store works")
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: Model registry functionality"), err
    assert "(a sqlite: store needs the full mlflow package: pip install mlflow)" in err


@pytest.mark.parametrize("uri", ["postgresql://me@localhost/runs", "mysql+pymysql://db/runs"])
def test_a_database_store_without_the_full_mlflow_says_to_install_it(written, capsys, uri):
    """A postgresql: or mysql: store, which the full mlflow package takes, was said to be
    of a scheme MLflow stores runs at no URI of."""
    try:
        importlib.metadata.distribution("mlflow")
    except importlib.metadata.PackageNotFoundError:
        pass
    else:
        pytest.skip("the full mlflow package is installed: it would connect to the database")
    assert main(["--dir", str(written.root), "--mlflow", uri]) == 2
    database = uri.partition(":")[0].partition("+")[0]
    err = capsys.readouterr().err
    assert err.endswith(
        f"(a {database}: store needs the full mlflow package: pip install mlflow)\n"
    )


def test_a_tracking_uri_of_a_scheme_mlflow_lacks_is_an_error_saying_what_it_takes(written, capsys):
    """``--mlflow htp://localhost:5000`` (a typo) was refused in MLflow's words, 'Model
    registry functionality is unavailable; got unsupported URI ... for model registry data
    storage': the export uses no model registry. The error says what --mlflow takes."""
    assert main(["--dir", str(written.root), "--mlflow", "htp://localhost:5000"]) == 2
    assert capsys.readouterr().err == (
        "error: --mlflow htp://localhost:5000: MLflow stores runs at no 'htp' URI; give a "
        "tracking server (http://HOST:PORT), file:mlruns (with MLFLOW_ALLOW_FILE_STORE=true) "
        "or sqlite:///mlflow.db\n"
    )


def test_mlflow_s_own_error_names_the_store_it_is_about(written, tmp_path, capsys, monkeypatch):
    """MLflow's words (a file store it refuses, a registry it lacks) did not say which
    --mlflow they were about."""
    from phosjax.bench import export

    def refused(*args, **kwargs):
        raise mlflow.exceptions.MlflowException("The filesystem tracking backend is refused.")

    monkeypatch.setattr(export, "export_mlflow", refused)
    assert main(["--dir", str(written.root), "--mlflow", "mlruns"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --mlflow mlruns: The filesystem tracking backend is refused.\n"


def test_a_model_id_naming_no_file_is_an_error_and_nothing_is_exported(
    written, store, tmp_path, capsys
):
    """A cells.parquet changed by hand whose model_id is a path ('../x') ended the export
    in a traceback (OutsideBenchError) as it looked for that model's blurb, its run made
    and deleted. It is an error naming the file, before anything is exported."""
    bench = tmp_path / "example"
    shutil.copytree(written.root, bench)
    cells = pd.read_parquet(bench / _layout.CELLS)
    cells.loc[0, "model_id"] = "../x"
    cells.to_parquet(bench / _layout.CELLS)
    assert main(["--dir", str(bench), "--mlflow", store]) == 2
    assert capsys.readouterr().err.startswith(
        "error: cannot read cells.parquet: its model_id '../x' is no file name (a model's "
        "blurb is blurbs/<model_id>.json); phosjax writes it whole, so something else changed it"
    )
    assert not (tmp_path / "mlruns").exists()


def test_results_that_cannot_be_listed_say_to_let_this_user_read_them(
    written, store, tmp_path, capsys, monkeypatch
):
    """A results/ folder this user may not list (chmod 000) was taken for an empty one:
    every finished cell was said to lack its rows, none exported. It is an error naming
    the folder, before anything is exported."""
    results = written.root.resolve() / _layout.RESULTS
    listing_refused(monkeypatch, results)
    assert main(["--dir", str(written.root), "--mlflow", store]) == 1
    assert capsys.readouterr().err == (
        f"error: [Errno 13] Permission denied: {str(results)!r}; let this user read and write "
        "it (its permissions, those of its folder), then: the cells exported so far stay in "
        "MLflow (a half-logged run is deleted); the same command exports the others, skipping "
        f"them: python -m phosjax.bench.export --dir {written.root} --mlflow {store}\n"
    )
    assert not (tmp_path / "mlruns").exists()


def test_results_linking_out_of_the_bench_are_one_error_line_saying_to_copy_it(
    written, store, tmp_path, capsys, monkeypatch
):
    """A results/ folder that is a symlink to another disk ended in a traceback
    (OutsideBenchError); it is one line saying why and how to export it. The copy it said
    to make (cp -rL DIR COPY) was exported as bench 'COPY', to another experiment."""
    root = tmp_path / "example"
    shutil.copytree(written.root, root)
    shutil.move(root / _layout.RESULTS, tmp_path / "elsewhere")
    (root / _layout.RESULTS).symlink_to(tmp_path / "elsewhere")
    assert main(["--dir", str(root), "--mlflow", store]) == 2
    assert capsys.readouterr().err == (
        f"error: cannot export {root}: 'results' leads outside the bench (a symlink?). An "
        "export reads only the files inside the bench, as the viewer does: it sends them to an "
        "MLflow store others may read, and a bench may come from anyone. Copy the bench with "
        "its links followed, under its name, which names its runs' bench and experiment "
        f"(mkdir -p COPY && cp -rL {root} COPY/example), and export the copy (--dir "
        "COPY/example).\n"
    )
    assert not (tmp_path / "mlruns").exists()
    monkeypatch.chdir(tmp_path)  # done as it says: the runs are the bench's
    subprocess.run(f"mkdir -p COPY && cp -rL {root} COPY/example", shell=True, check=True)
    assert main(["--dir", "COPY/example", "--mlflow", store, "--no_progress"]) == 0
    _, by_cell = _runs(store)
    assert {run.data.tags[TAG_BENCH] for run in by_cell.values()} == {"example"}
    assert len(by_cell) == len(written.cells)


def test_the_copy_command_said_for_a_bench_named_like_an_option_runs(
    written, store, tmp_path, capsys, monkeypatch
):
    """The refusal's copy command wrote a --dir beginning with '-' as given (cp -rL -ex
    COPY/-ex), which cp reads as its options; it is written ./-ex, and the copy exports."""
    root = tmp_path / "-ex"
    shutil.copytree(written.root, root)
    shutil.move(root / _layout.RESULTS, tmp_path / "elsewhere")
    (root / _layout.RESULTS).symlink_to(tmp_path / "elsewhere")
    monkeypatch.chdir(tmp_path)
    assert main(["--dir=-ex", "--mlflow", store]) == 2
    command = capsys.readouterr().err.split("(mkdir -p COPY && ")[1].split("), and export")[0]
    assert command == "cp -rL ./-ex COPY/-ex"
    subprocess.run(f"mkdir -p COPY && {command}", shell=True, check=True)
    assert main(["--dir", "COPY/-ex", "--mlflow", store, "--no_progress"]) == 0
    assert len(_runs(store, "-ex")[1]) == len(written.cells)


@pytest.mark.parametrize(
    "linked", ["results/part-g-choice-000000001.parquet", _layout.STATUS, "blurbs/m-mlp.json"]
)
def test_a_file_linking_out_of_the_bench_is_refused_before_any_cell_is_exported(
    written, store, tmp_path, capsys, linked
):
    """The viewer's reads skip a part or status file linking out: export said the cells of
    one lacked rows "removed or lost" and exported the rest, of the other "not finished
    yet"; a blurb's was found mid-export, after other cells were exported."""
    root = tmp_path / "example"
    shutil.copytree(written.root, root)
    shutil.move(root / linked, tmp_path / "elsewhere")
    (root / linked).symlink_to(tmp_path / "elsewhere")
    assert main(["--dir", str(root), "--mlflow", store, "--no_progress"]) == 2
    assert capsys.readouterr().err == (
        f"error: cannot export {root}: {linked!r} leads outside the bench (a symlink?). An "
        "export reads only the files inside the bench, as the viewer does: it sends them to an "
        "MLflow store others may read, and a bench may come from anyone. Copy the bench with "
        "its links followed, under its name, which names its runs' bench and experiment "
        f"(mkdir -p COPY && cp -rL {root} COPY/example), and export the copy (--dir "
        "COPY/example).\n"
    )
    assert list((tmp_path / "mlruns").glob("*/*/meta.yaml")) == []  # no run


@pytest.mark.parametrize("damaged", [_layout.STATUS, _layout.MARKER, _layout.CELLS])
def test_a_damaged_bench_file_is_an_error_naming_it_and_nothing_is_exported(
    written, store, tmp_path, capsys, damaged
):
    root = tmp_path / "example"
    shutil.copytree(written.root, root)
    (root / damaged).write_bytes((root / damaged).read_bytes()[:20])  # cut off mid-write
    assert main(["--dir", str(root), "--mlflow", store]) == 2
    assert f"error: cannot read {damaged}: " in capsys.readouterr().err
    assert mlflow.tracking.MlflowClient(store).get_experiment_by_name("example") is None


def test_a_damaged_cells_file_says_the_given_dir_to_continue(written, store, tmp_path, capsys):
    """export printed its errors itself, with 'python -m phosjax.bench.new --dir DIR' in it."""
    root = tmp_path / "my example"
    shutil.copytree(written.root, root)
    (root / _layout.CELLS).write_bytes((root / _layout.CELLS).read_bytes()[:20])
    assert main(["--dir", str(root), "--mlflow", store]) == 2
    assert capsys.readouterr().err.endswith(
        f"continue the bench (python -m phosjax.bench.new --dir {shlex.quote(str(root))}), "
        "which writes it again.\n"
    )


@pytest.mark.parametrize("marker", ["[]", "[1]"])
def test_a_bench_json_holding_no_object_is_an_error_and_nothing_is_exported(
    written, store, tmp_path, capsys, marker
):
    """[] exported every cell under no creation time (exported again once restored); [1]
    was an AttributeError. It was said other than elsewhere: cut at 40 characters, with
    no 'or move the directory aside and start a new bench'."""
    root = tmp_path / "example"
    shutil.copytree(written.root, root)
    (root / _layout.MARKER).write_text(marker)
    assert main(["--dir", str(root), "--mlflow", store]) == 2
    said = "error: cannot read bench.json: it holds a list, not the JSON object phosjax writes"
    assert f"{said} there; {MARKER_HINT}\n" in capsys.readouterr().err  # as elsewhere, whole
    assert mlflow.tracking.MlflowClient(store).get_experiment_by_name("example") is None


@pytest.mark.parametrize("created", [None, ""])
def test_a_bench_json_without_its_creation_time_is_an_error_and_nothing_is_exported(
    written, store, tmp_path, capsys, created
):
    """Its runs were tagged with an empty creation time, so two such benches in one
    experiment took each other's runs for their own (skipped as exported, deleted as cut
    short)."""
    root = tmp_path / "example"
    shutil.copytree(written.root, root)
    marker = json.loads((root / _layout.MARKER).read_text())
    (root / _layout.MARKER).write_text(json.dumps({**marker, "created": created}))
    assert main(["--dir", str(root), "--mlflow", store]) == 2
    assert capsys.readouterr().err == (
        f"error: cannot read bench.json: its 'created' is {created!r}, not the bench's "
        "creation time, which tells its MLflow runs from another bench's; continue the bench "
        f"once (python -m phosjax.bench.new --dir {root}), which records one, then export it.\n"
    )
    assert mlflow.tracking.MlflowClient(store).get_experiment_by_name("example") is None


def test_a_folder_inside_or_holding_benches_names_the_benches_to_export(
    written, store, tmp_path, capsys
):
    inside = written.root / _layout.RESULTS
    assert main(["--dir", str(inside), "--mlflow", store]) == 2
    assert capsys.readouterr().err == (
        f"error: {str(inside)!r} is not a bench: it has no bench.json. It is inside the bench "
        f"{str(written.root)!r}: export that one.\n"
    )
    (tmp_path / "morph_run" / _layout.MORPH).mkdir(parents=True)  # no bench: not offered
    pd.DataFrame({"iteration": [0]}).to_parquet(tmp_path / "morph_run" / _layout.MORPH_ITERATIONS)
    shutil.copytree(written.root, tmp_path / "b")
    assert main(["--dir", str(tmp_path), "--mlflow", store]) == 2
    assert capsys.readouterr().err == (
        f"error: {str(tmp_path)!r} is not a bench: it has no bench.json. Benches inside it: b; "
        f"pass one: --dir {tmp_path / 'b'}\n"
    )


def test_a_morph_run_directory_is_refused_and_no_experiment_is_made(store, tmp_path, capsys):
    """The viewer reads a ``python -m phosjax.morph`` run directory; it holds no cells."""
    run = tmp_path / "morph_run"
    (run / _layout.MORPH).mkdir(parents=True)
    pd.DataFrame({"iteration": [0]}).to_parquet(run / _layout.MORPH_ITERATIONS)
    assert main(["--dir", str(run), "--mlflow", store]) == 2
    assert f"error: {str(run)!r} is not a bench: it has no bench.json" in capsys.readouterr().err
    assert mlflow.tracking.MlflowClient(store).get_experiment_by_name("morph_run") is None


def test_a_deleted_experiment_is_an_error_saying_how_to_restore_it(written, store, capsys):
    client = mlflow.tracking.MlflowClient(store)
    experiment_id = client.create_experiment("example")
    client.delete_experiment(experiment_id)
    assert main(["--dir", str(written.root), "--mlflow", store]) == 2
    assert (
        f"error: the MLflow experiment 'example' (id {experiment_id}) is deleted: restore it "
        f"(MLFLOW_TRACKING_URI={store} mlflow experiments restore -x {experiment_id}) or name "
        "another with --experiment.\n"
    ) in capsys.readouterr().err
    client.restore_experiment(experiment_id)
    assert client.search_runs([experiment_id]) == []


@pytest.mark.parametrize(
    "renamed",
    [
        # characters MLflow refuses in a key (a knob or regularizer axis: knob/**/T)
        {"knob/__/T": "knob/**/T", "reg/l2/_/kernel": "reg/l2/*/kernel"},
        # segments MLflow reads as a path: a knob selector re:.*/. (a one-letter knob,
        # blocks_0/T) made the key knob/re:._/., and no cell was exported
        {"knob/re:._/_": "knob/re:.*/.", "reg/l2/re:../__": "reg/l2/re:../.."},
    ],
)
def test_columns_mlflow_cannot_name_are_params_under_keys_it_takes(
    written, store, tmp_path, renamed
):
    """Each column is a param under a key MLflow takes; the tag maps keys to names."""
    root = tmp_path / "example"
    shutil.copytree(written.root, root)
    cells = pd.read_parquet(root / _layout.CELLS)
    knob, reg = renamed.values()
    cells[knob], cells[reg] = 2.0, 1e-4
    cells.to_parquet(root / _layout.CELLS)
    exported = export_mlflow(str(root), store)
    assert sorted(exported.runs) == sorted(cells.cell_id)
    _, runs = _runs(store)
    for run in runs.values():
        assert run.info.status == "FINISHED"
        assert [run.data.params[key] for key in renamed] == ["2.0", "0.0001"]
        assert json.loads(run.data.tags[TAG_PARAM_NAMES]) == renamed


def test_columns_longer_than_mlflow_keys_are_logged_under_keys_cut_to_fit(written, store, tmp_path):
    """MLflow refuses a param or metric key over 250 characters (a long regularizer
    selector, a long aux loss name): no cell was exported."""
    root = tmp_path / "example"
    shutil.copytree(written.root, root)
    long_reg = "reg/l2/re:" + "(blocks_0|blocks_1)/kernel|" * 10  # 280 characters
    cells = pd.read_parquet(root / _layout.CELLS)
    cells[long_reg] = 1e-4
    cells.to_parquet(root / _layout.CELLS)
    long_aux = "aux/" + "balance_" * 40  # 324 characters
    for part in (root / _layout.RESULTS).glob("part-*.parquet"):
        table = pq.read_table(part)
        names = [long_aux if n == "aux/balance" else n for n in table.column_names]
        pq.write_table(table.rename_columns(names), part)
    exported = export_mlflow(str(root), store)
    assert sorted(exported.runs) == sorted(cells.cell_id)
    reg_key = "reg/l2/re:" + "_blocks_0_blocks_1_/kernel_" * 10
    reg_key = reg_key[:241] + "_7a7aaeb3"  # a digest of long_reg
    aux_key = long_aux[: 250 - len("train/") - 9] + "_d14c2828"
    _, runs = _runs(store)
    for cell in written.cells.to_dict("records"):
        run = runs[cell["cell_id"]]
        assert run.data.params[reg_key] == "0.0001"
        assert json.loads(run.data.tags[TAG_PARAM_NAMES]) == {reg_key: long_reg}
        if cell["model"] == "choice":  # it records the aux loss
            assert len(f"train/{aux_key}") == 250 and f"train/{aux_key}" in run.data.metrics
            assert json.loads(run.data.tags[TAG_METRIC_NAMES]) == {aux_key: long_aux}


def test_a_key_cut_to_fit_names_its_column_whichever_columns_are_beside_it():
    """Numbered in column order, the cut key of a long regularizer meant another one
    once `add_models` brought one sharing its first 250 characters ahead of it: the
    experiment held the two under one key, the first in runs exported before."""
    start = "reg/l2/re:" + "(blocks_0|blocks_1)/kernel|" * 10
    first, second = start + "blocks_2/kernel", start + "blocks_3/kernel"
    alone, beside = mlflow_keys([second]), mlflow_keys([first, second])
    cut = "reg/l2/re:" + ("_blocks_0_blocks_1_/kernel_" * 10)[:231]
    assert alone == {second: cut + "_f038d310"}
    assert beside == {first: cut + "_7d12dadd", second: cut + "_f038d310"}


def test_a_hyperparameter_a_cell_does_not_have_is_no_param_of_its_run(written, store, tmp_path):
    """A null in ``cells.parquet`` (another model's knob, ``momentum`` under adam, no
    ``grad_clip``) is left out of the run's params, not logged as the value ``nan``."""
    root = tmp_path / "example"
    shutil.copytree(written.root, root)
    cells = pd.read_parquet(root / _layout.CELLS)
    cells["knob/**/T"] = [2.0 if m == "choice" else None for m in cells.model]
    cells["momentum"] = None
    cells.to_parquet(root / _layout.CELLS)
    export_mlflow(str(root), store)
    _, runs = _runs(store)
    for cell in written.cells.to_dict("records"):
        run = runs[cell["cell_id"]]
        knob = {"knob/__/T": "2.0"} if cell["model"] == "choice" else {}
        assert run.data.params == {k: str(v) for k, v in cell.items()} | knob
        renamed = {"knob/__/T": "knob/**/T"} if knob else None
        assert json.loads(run.data.tags.get(TAG_PARAM_NAMES, "null")) == renamed


def test_a_param_value_longer_than_mlflow_keeps_is_cut_saying_so(written, store, tmp_path):
    """MLflow cuts a param value past 6000 characters with no error (a model option holding
    a long list): two cells whose options differ past that would read the same, as they
    did cut with a note of the length alone."""
    root = tmp_path / "example"
    shutil.copytree(written.root, root)
    cells = pd.read_parquet(root / _layout.CELLS)
    cells["options"] = [json.dumps({"note": "x" * 7000 + str(i)}) for i in range(len(cells))]
    cells.to_parquet(root / _layout.CELLS)
    export_mlflow(str(root), store)
    _, runs = _runs(store)
    for cell in cells.to_dict("records"):
        params = runs[cell["cell_id"]].data.params
        assert len(cell["options"]) == 7013
        whole = hashlib.sha256(repr(cell["options"]).encode()).hexdigest()[:16]
        note = f"... [cut: 7013 characters, over 6000, digest {whole}]"
        assert params["options"] == cell["options"][: 6000 - len(note)] + note
        assert len(params["options"]) == 6000
        assert {k: v for k, v in params.items() if k != "options"} == {
            k: str(v) for k, v in cell.items() if k != "options"
        }
    assert len({run.data.params["options"] for run in runs.values()}) == len(cells) > 1


def test_metrics_mlflow_cannot_name_are_logged_under_keys_it_takes(written, store, tmp_path):
    """An aux loss's name may hold characters MLflow refuses in a metric key (``kl(1e-3)``)."""
    root = tmp_path / "example"
    shutil.copytree(written.root, root)
    for part in (root / _layout.RESULTS).glob("part-*.parquet"):
        table = pq.read_table(part)
        names = ["aux/kl(1e-3)" if n == "aux/balance" else n for n in table.column_names]
        pq.write_table(table.rename_columns(names), part)
    exported = export_mlflow(str(root), store)
    assert sorted(exported.runs) == sorted(written.cells.cell_id)
    client, runs = _runs(store)
    for cell in written.cells.to_dict("records"):
        run = runs[cell["cell_id"]]
        assert run.info.status == "FINISHED"
        if cell["model"] != "choice":  # it records no aux loss
            assert "train/aux/kl_1e-3_" not in run.data.metrics
            assert TAG_METRIC_NAMES not in run.data.tags
            continue
        history = client.get_metric_history(run.info.run_id, "train/aux/kl_1e-3_")
        rows = written.results[
            (written.results.cell_id == cell["cell_id"]) & (written.results.split == "train")
        ]
        assert [m.value for m in history] == pytest.approx(rows["aux/balance"].tolist(), rel=1e-6)
        assert json.loads(run.data.tags[TAG_METRIC_NAMES]) == {"aux/kl_1e-3_": "aux/kl(1e-3)"}


def test_a_cell_that_fails_midway_leaves_no_run_and_is_exported_next_time(
    written, store, monkeypatch
):
    client_class = mlflow.tracking.MlflowClient
    log_artifact = client_class.log_artifact

    def failing(self, *args, **kwargs):
        raise mlflow.exceptions.MlflowException("the store went away")

    monkeypatch.setattr(client_class, "log_artifact", failing)
    with pytest.raises(mlflow.exceptions.MlflowException, match="went away"):
        export_mlflow(str(written.root), store)
    client = client_class(store)
    experiment_id = client.get_experiment_by_name("example").experiment_id
    assert client.search_runs([experiment_id]) == []

    monkeypatch.setattr(client_class, "log_artifact", log_artifact)
    exported = export_mlflow(str(written.root), store)
    assert sorted(exported.runs) == sorted(written.cells.cell_id)
    _, runs = _runs(store)  # one run per cell
    assert {run.info.status for run in runs.values()} == {"FINISHED"}


def test_a_run_an_export_killed_mid_way_left_is_deleted_by_the_next_export(
    written, store, monkeypatch, capsys
):
    """An export killed (SIGKILL: nothing deletes its run) as it logged a cell left that
    run RUNNING, and the next export added the cell's whole run beside it: two runs of
    one cell, one half-logged. The next export deletes the half-logged one, and says so."""
    client_class = mlflow.tracking.MlflowClient

    def killed(self, *args, **kwargs):
        raise KeyboardInterrupt  # stands for the kill: nothing after it runs

    with monkeypatch.context() as patch:
        patch.setattr(client_class, "set_terminated", killed)
        patch.setattr(client_class, "delete_run", lambda self, run_id: None)
        with pytest.raises(KeyboardInterrupt):
            export_mlflow(str(written.root), store)
    client = client_class(store)
    experiment_id = client.get_experiment_by_name("example").experiment_id
    (cut,) = client.search_runs([experiment_id])
    config_hash = json.loads((written.root / _layout.MARKER).read_text())["config_hash"]
    others = [  # another bench's, of the same config exported before the creation tag
        client.create_run(experiment_id, tags=tags).info.run_id
        for tags in ({TAG_CREATED: "another bench"}, {TAG_CONFIG: config_hash})
    ]
    assert main(["--dir", str(written.root), "--mlflow", store]) == 0
    assert capsys.readouterr().out.endswith(
        " Deleted 1 half-logged run that an export cut short (killed) had left (cell "
        f"{cut.data.tags[TAG_CELL]}: run {cut.info.run_id}).\n"
    )
    for other in others:  # not this bench's, or not surely: kept
        assert client.get_run(other).info.lifecycle_stage == "active"
        client.delete_run(other)
    _, runs = _runs(store)  # one run per cell
    assert sorted(runs) == sorted(written.cells.cell_id)
    assert {run.info.status for run in runs.values()} == {"FINISHED"}


def test_a_finished_cell_without_rows_is_left_for_when_they_are_restored(
    written, store, tmp_path, capsys
):
    """A finished cell whose part files were lost became a run without metrics, counted as
    exported, and once the parts were restored the next export skipped it as exported.
    It is not exported, a warning says why, and the export once they are back has it."""
    bench = tmp_path / "example"
    shutil.copytree(written.root, bench)
    part = bench / _layout.RESULTS / "part-g-mlp-000000001.parquet"
    kept = part.read_bytes()
    part.unlink()
    mlp = written.cells[written.cells.model == "mlp"].cell_id.tolist()
    assert main(["--dir", str(bench), "--mlflow", store, "--no_progress"]) == 0
    assert capsys.readouterr().err == (
        f"warning: rows missing in {str(bench / _layout.RESULTS)!r} for {len(mlp)} finished "
        f"cells ({listing(mlp, 3)}): their part files, or some of them, were removed or lost; "
        "not exported: restore them from a backup, then export again.\n"
    )
    assert not set(_runs(store)[1]) & set(mlp)
    part.write_bytes(kept)
    assert sorted(export_mlflow(str(bench), store).runs) == sorted(mlp)


def test_a_finished_cell_missing_its_last_part_file_is_left_for_when_it_is_restored(
    written, store, tmp_path, capsys
):
    """A finished cell whose last part file was lost became a run of its first steps,
    counted as exported forever; it is left out with the warning of a cell without rows."""
    bench = tmp_path / "example"
    shutil.copytree(written.root, bench)
    part = bench / _layout.RESULTS / "part-g-mlp-000000001.parquet"
    table = pq.read_table(part)
    steps = table["step"].to_numpy()
    pq.write_table(table.filter(steps <= 15), part)  # the part of the steps after 15: lost
    mlp = written.cells[written.cells.model == "mlp"].cell_id.tolist()
    assert main(["--dir", str(bench), "--mlflow", store]) == 0
    assert f"finished cells ({listing(mlp, 3)}): their part files, or some of them" in (
        capsys.readouterr().err
    )
    assert not set(_runs(store)[1]) & set(mlp)
    pq.write_table(table.filter(steps > 15), part.with_name("part-g-mlp-000000016.parquet"))
    assert sorted(export_mlflow(str(bench), store).runs) == sorted(mlp)


LOST_MIDWAY = {
    "steps 11 to 20": lambda step: (step > 10) & (step <= 20),
    "all but the last step": lambda step: step < 30,
    "every other step (parts of one step)": lambda step: (step % 2 == 0) & (step < 30),
}


@pytest.mark.parametrize("lost", LOST_MIDWAY.values(), ids=LOST_MIDWAY)
def test_a_finished_cell_missing_a_part_file_midway_is_left_for_when_it_is_restored(
    written, store, tmp_path, capsys, lost
):
    """A finished cell whose rows of the middle of its run were lost (a part file between
    two others) became a run with a gap, counted as exported forever; so did one left
    with the rows of its last step alone, or with every other step's (checkpoint_every 1:
    its rows evenly spaced). It is left out with the warning of a cell without rows."""
    bench = tmp_path / "example"
    shutil.copytree(written.root, bench)
    part = bench / _layout.RESULTS / "part-g-mlp-000000001.parquet"
    table = pq.read_table(part)
    part.unlink()
    gone = lost(table["step"].to_numpy())

    def write_part(rows):  # named by its first step, as the runner names it
        pq.write_table(
            rows, part.with_name(f"part-g-mlp-{min(rows['step'].to_pylist()):09d}.parquet")
        )

    write_part(table.filter(~gone))
    mlp = written.cells[written.cells.model == "mlp"].cell_id.tolist()
    assert main(["--dir", str(bench), "--mlflow", store]) == 0
    assert f"finished cells ({listing(mlp, 3)}): their part files, or some of them" in (
        capsys.readouterr().err
    )
    assert not set(_runs(store)[1]) & set(mlp)
    write_part(table.filter(gone))
    assert sorted(export_mlflow(str(bench), store).runs) == sorted(mlp)


def test_a_second_export_of_a_bench_at_once_stops_naming_the_first(
    written, store, tmp_path, capsys
):
    """Two exports of one bench into one experiment at once each deleted the other's
    unfinished runs; the second stops before it touches MLflow, naming the first."""
    bench = tmp_path / "example"
    shutil.copytree(written.root, bench)
    with export_locked(bench):  # as the first export holds it
        assert main(["--dir", str(bench), "--mlflow", store]) == 2
    err = capsys.readouterr().err
    assert f"is being exported by another export (pid {os.getpid()} on " in err, err
    assert err.endswith("wait for it to end, or stop it, then run the command again.\n"), err
    assert not (tmp_path / "mlruns").exists()


def test_a_bench_one_may_not_write_is_exported_without_the_export_lock(tmp_path, monkeypatch):
    """An export lock that could not be made for another reason (a full disk) escaped as
    a bare OSError: it is a BenchError naming the folder and what to do, as the run lock's;
    it said it could not write the bench, though export writes only its lock file there."""

    def failing(code):
        def opened(path, *args, **kwargs):
            raise OSError(code, os.strerror(code), str(path))

        return opened

    monkeypatch.setattr(_directory, "open", failing(errno.EROFS), raising=False)
    with export_locked(tmp_path):  # no lock to take where it may only read
        pass
    monkeypatch.setattr(_directory, "open", failing(errno.ENOSPC))
    full = (  # it said to pick a --dir one can write to, as for a permission denied
        r"^cannot write the export's lock file into --dir '.*': \[Errno 28\] No space left "
        r"on device: '.*export\.lock'; free space on its disk, or pick another --dir\.$"
    )
    with pytest.raises(BenchError, match=full), export_locked(tmp_path):
        pass
    (tmp_path / _layout.MARKER).touch()  # a bench: it said to make its folder writable
    room = r"No space left on device: '.*export\.lock'; free space on its disk, or copy the "
    with pytest.raises(BenchError, match=room), export_locked(tmp_path):
        pass
    monkeypatch.setattr(_directory, "open", failing(errno.EMFILE))
    see_to = r"Too many open files: '.*export\.lock'; see to that, or copy the bench to "
    with pytest.raises(BenchError, match=see_to), export_locked(tmp_path):
        pass


def test_a_full_disk_as_the_export_lock_is_written_says_nothing_was_exported(
    written, store, tmp_path, capsys, monkeypatch
):
    """The lock file made but not written (a full disk) ended the export with "the cells
    exported so far stay in MLflow", though it had exported none: it is the error of a
    lock file that cannot be made."""
    bench = tmp_path / "example"
    shutil.copytree(written.root, bench)
    write = os.write

    def no_room(descriptor, data):
        if descriptor <= 2:  # stdout, stderr
            return write(descriptor, data)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", no_room)
    assert main(["--dir", str(bench), "--mlflow", store, "--no_progress"]) == 2
    err = capsys.readouterr().err
    said = (
        f"error: cannot write the export's lock file into --dir {str(bench)!r}: [Errno 28] No "
        f"space left on device: {str(bench / _layout.EXPORT_LOCK)!r}; free space on its disk,"
    )
    assert err.startswith(said) and "exported so far" not in err, err
    assert not (tmp_path / "mlruns").exists()


@pytest.mark.parametrize(
    ("refused", "then"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "free space on its disk"),
        (  # its folder's permissions changed mid-export
            PermissionError(errno.EACCES, "Permission denied", "<run>/params/lr"),
            "let this user read and write it (its permissions, those of its folder)",
        ),
    ],
)
def test_a_full_disk_under_a_file_store_says_what_makes_room_and_the_next_export_ends_it(
    written, store, capsys, monkeypatch, refused, then
):
    """MLflow's file store wraps a full disk's OSError in its own error, which the export
    said as 'error: --mlflow file:...: [Errno 28] No space left on device', exit status 2:
    nothing of what makes room, nor of the cells it kept, nor of the command to go on; a
    write refused there, where one outside MLflow's wrapping said all that, the same."""
    from mlflow.store.tracking import file_store

    write_to, runs = file_store.write_to, set()

    def no_room_after_one_run(path, data):
        runs.add(pathlib.Path(path).parents[1])  # <run>/params/<name>
        if "/params/" in str(path) and len(runs) > 1:
            raise refused
        write_to(path, data)

    monkeypatch.setattr(file_store, "write_to", no_room_after_one_run)
    argv = ["--dir", str(written.root), "--mlflow", store, "--no_progress"]
    assert main(argv) == 1
    named = refused.filename or store  # a full disk's names no file: the store
    assert capsys.readouterr().err == (
        f"error: [Errno {refused.errno}] {refused.strerror}: {named!r}; {then}, then: "
        "the cells exported so far stay in MLflow (a half-logged run is deleted); the same "
        "command exports the others, skipping them: python -m phosjax.bench.export "
        f"{' '.join(argv)}\n"
    )
    assert len(_runs(store)[1]) == 1
    monkeypatch.setattr(file_store, "write_to", write_to)  # room made
    assert main(argv) == 0
    assert len(_runs(store)[1]) == len(written.cells)


def test_a_full_disk_as_the_store_is_made_says_it_cannot_be_used(
    written, store, capsys, monkeypatch
):
    """A full disk as MLflow made its file store, before any cell was exported, ended the
    export with 'the cells exported so far stay in MLflow' (exit status 1), where it said
    that the store cannot be used."""
    from mlflow.store.tracking import file_store

    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(file_store, "write_yaml", no_room)
    assert main(["--dir", str(written.root), "--mlflow", store, "--no_progress"]) == 2
    assert capsys.readouterr().err == (
        f"error: cannot use the MLflow store {store}: [Errno 28] No space left on device\n"
    )
