"""The viewer's server: each endpoint's JSON against the bench's files, safety, and errors."""

import contextlib
import datetime
import decimal
import errno
import http.client
import json
import math
import os
import pathlib
import re
import shlex
import shutil
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
import urllib.parse

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from phosjax.bench import _layout, _reading, _store
from phosjax.bench._store import TEMPORARY
from phosjax.bench.view import (
    BenchFiles,
    BrokenFileError,
    CannotServeError,
    NotABenchError,
    PortInUseError,
    ViewerServer,
    _api,
    _bench,
    make_server,
)
from phosjax.bench.view.__main__ import main
from phosjax.bench.view._bench import not_started
from tests.bench._viewer_fixtures import (
    DIVERGED,
    DIVERGED_STEP,
    GRAPH,
    METRICS,
    MODELS,
    SPLITS,
    STEPS,
    blurb_json,
    get,
    get_json,
    serving,
    stop_at,
    write_bench,
)
from tests.bench.runner_tiny import listing_refused

SECRET = "top-secret-outside-the-bench"


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("benches")
    (root / "secret.json").write_text(json.dumps({"secret": SECRET}))
    bench = write_bench(root / "example", blurb_json())
    (bench.root / _layout.BLURBS / "evil.json").symlink_to(root / "secret.json")
    (bench.root / _layout.MORPH / "leak.json").symlink_to(root / "secret.json")
    return bench


@pytest.fixture(scope="module")
def server(written):
    with serving(written.root) as server:
        yield server


def _same(got, want):
    """JSON numbers against the frame's: NaN was sent as null."""
    if want is None or (isinstance(want, float) and math.isnan(want)):
        return got is None
    return got == pytest.approx(want, rel=1e-12)


def test_bench_endpoint_describes_the_files(server, written):
    info = get_json(server, "/api/bench")
    assert info["name"] == "example"
    assert info["marker"] == json.loads((written.root / _layout.MARKER).read_text())
    assert info["config"] == (written.root / _layout.CONFIG).read_text()
    assert info["hparams"] == ["lr", "width"]
    assert info["metrics"] == list(METRICS)
    assert info["models"] == [
        {"model_id": "m-mlp", "model": "mlp", "has_blurb": True, "has_graph": False},
        {"model_id": "m-choice", "model": "choice", "has_blurb": True, "has_graph": True},
    ]
    assert info["has_profile"] and info["has_morph"]
    assert set(info["status"]["groups"]) == {"g-mlp", "g-choice"}


def test_cells_endpoint_holds_each_cells_last_values(server, written):
    board = get_json(server, "/api/cells")
    assert [r["cell"] for r in board["rows"]] == written.cells.to_dict("records")
    assert board["splits"] == ["test", "train"]
    assert "options" not in written.cells  # a bench written before options were kept
    assert {r["options_that_vary"] for r in board["rows"]} == {None}
    last = written.results[written.results.step == STEPS[-1]]
    for row in board["rows"]:
        done = {"steps_done": STEPS[-1], "steps": STEPS[-1], "finished": True}
        assert row["progress"] == done | {"stopped": False}
        for split in ("train", "test"):
            want = last[(last.cell_id == row["cell"]["cell_id"]) & (last.split == split)].iloc[0]
            for metric in METRICS:
                assert _same(row["final"][split][metric], want[metric]), (split, metric)


def test_cells_endpoint_sends_the_options_that_vary_within_each_model(tmp_path):
    """Of each cell's options (JSON, its model's defaults included), those that differ
    between its model's cells, as the table shows them; null where none does."""
    (tmp_path / _layout.MARKER).write_text(json.dumps({"format": 1}))
    models = ["mlp", "mlp", "choice"]
    options = ['{"pool": "max", "top_k": 1}', '{"pool": "mean", "top_k": 1}', '{"pool": "max"}']
    cells = {c: [f"c{i}" for i in range(3)] for c in _layout.CELL_COLUMNS}
    cells |= {"model": models, "seed": [0, 0, 0], "options": options}
    pd.DataFrame(cells).to_parquet(tmp_path / _layout.CELLS)
    with serving(tmp_path) as server:
        rows = get_json(server, "/api/cells")["rows"]
    assert [r["cell"]["options"] for r in rows] == options  # the JSON too, whole
    assert [r["options_that_vary"] for r in rows] == ['pool="max"', 'pool="mean"', None]


def _floats(values: list) -> pd.Series:
    """Arrow-backed floats as `BenchFiles.results` reads them: None a null, NaN a NaN."""
    return pd.Series(pa.array(values, type=pa.float64()), dtype=pd.ArrowDtype(pa.float64()))


def test_final_values_are_each_series_last_value_a_nan_apart_from_nothing_recorded():
    """A NaN at a series' last step (diverged) is "nan", a metric the series never
    recorded None; an older bench's null after a value is "nan"; an unfinished cell's
    last value is at its own last step; a cell without rows has no entry."""
    rows = [  # cell_id, step, split, loss, aux
        ("a", 0, "test", 1.0, None),
        ("a", 0, "train", 2.0, None),
        ("a", 10, "test", 0.5, None),
        ("a", 10, "train", math.nan, None),
        ("b", 0, "train", None, 0.3),
        ("b", 5, "train", 1.5, math.inf),
        ("b", 5, "val", None, None),
        ("c", 0, "train", 3.0, 0.1),
        ("c", 5, "train", None, -math.inf),
        ("c", 0, "test", 0.25, None),
    ]
    cell_id, step, split, loss, aux = map(list, zip(*rows, strict=True))
    results = pd.DataFrame({"cell_id": cell_id, "step": step, "split": split})
    results["loss"], results["aux/balance"] = _floats(loss), _floats(aux)
    results = results.sort_values(["cell_id", "step", "split"], kind="stable")
    assert _api.final_values(results.reset_index(drop=True), ["loss", "aux/balance"]) == {
        "a": {
            "test": {"loss": 0.5, "aux/balance": None},
            "train": {"loss": "nan", "aux/balance": None},
        },
        "b": {
            "train": {"loss": 1.5, "aux/balance": "inf"},
            "val": {"loss": None, "aux/balance": None},
        },
        "c": {
            "train": {"loss": "nan", "aux/balance": "-inf"},
            "test": {"loss": 0.25, "aux/balance": None},
        },
    }
    assert _api.final_values(results.iloc[:0], ["loss"]) == {}


def test_results_endpoint_returns_the_curves(server, written):
    cells = written.cells["cell_id"].tolist()[:2]
    data = get_json(server, f"/api/results?cells={','.join(cells)}&columns=loss,aux/balance")
    assert data["columns"] == ["loss", "aux/balance"]
    assert sorted((s["cell_id"], s["split"]) for s in data["series"]) == sorted(
        (c, s) for c in cells for s in ("train", "test")
    )
    for series in data["series"]:
        rows = written.results[
            (written.results.cell_id == series["cell_id"])
            & (written.results.split == series["split"])
        ]
        assert series["step"] == list(STEPS)
        np.testing.assert_allclose(series["values"]["loss"], rows["loss"], rtol=1e-12)
        assert series["values"]["aux/balance"] == [None] * len(STEPS)  # mlp: NaN -> null


def test_results_endpoint_thins_long_curves(server, written):
    cell = written.cells["cell_id"].iloc[0]
    data = get_json(server, f"/api/results?cells={cell}&columns=accuracy&max_points=5")
    group = written.cells.set_index("cell_id").group_id
    of_group = written.results[written.results.cell_id.map(group) == group[cell]]
    assert [(s["cell_id"], s["split"]) for s in data["series"]] == [(cell, "test"), (cell, "train")]
    for series in data["series"]:
        # First and last kept, evenly spread, and the steps of the group's seeds' extremes.
        rows = of_group[of_group.split == series["split"]].set_index("step").groupby("cell_id")
        extremes = {*rows.accuracy.idxmax(), *rows.accuracy.idxmin()}
        assert series["step"] == sorted({0, 80, 150, 220, 300} | extremes)
        assert len(series["step"]) <= 5 + 5
        rows = written.results[
            (written.results.cell_id == cell) & (written.results.split == series["split"])
        ].set_index("step")
        np.testing.assert_allclose(
            series["values"]["accuracy"], rows.loc[series["step"], "accuracy"]
        )


def _bench_of_no_results_and_two_seeds(tmp_path):
    """An example bench with its results removed, and the cell ids of two seeds of one
    configuration (whose results a test writes)."""
    bench = write_bench(tmp_path / "example", blurb_json())
    for part in _layout.part_files(bench.root / _layout.RESULTS):
        part.unlink()
    seeds = bench.cells[(bench.cells.model == "mlp") & (bench.cells.lr == 0.01)].cell_id
    return bench, seeds.tolist()


def test_seeds_at_different_steps_are_thinned_on_the_same_steps(tmp_path):
    # The processes of a bench train a group's seeds apart: one may be far behind the other.
    bench, (ahead, behind) = _bench_of_no_results_and_two_seeds(tmp_path)
    rows = [(ahead, step) for step in range(1000)] + [(behind, step) for step in range(700)]
    results = pd.DataFrame(rows, columns=["cell_id", "step"]).assign(split="train", loss=1.0)
    results.to_parquet(bench.root / _layout.RESULTS / "part-g-mlp-000000000.parquet")
    with serving(bench.root) as server:
        both = get_json(server, f"/api/results?columns=loss&cells={ahead},{behind}")
        alone = get_json(server, f"/api/results?columns=loss&cells={behind}")  # fetched apart
    steps = {s["cell_id"]: s["step"] for s in both["series"]}
    assert steps[ahead][-1] == 999 and steps[behind][-1] == 699  # each series' last kept
    assert steps[behind] == [step for step in steps[ahead] if step <= 699]  # the same steps
    assert alone["series"][0]["step"] == steps[behind]
    assert 390 <= len(steps[ahead]) <= _api.DEFAULT_POINTS + 1


def test_thinning_keeps_the_steps_of_each_spike_dip_and_nan_on_every_seed(tmp_path):
    # Evenly spread steps alone would drop a seed's spike, its first NaN, or a dip.
    bench, (ahead, behind) = _bench_of_no_results_and_two_seeds(tmp_path)
    rows = [(ahead, step, 1.0 - step * 1e-4) for step in range(1000)]
    rows += [(behind, step, 1.0 - step * 1e-4) for step in range(700)]
    results = pd.DataFrame(rows, columns=["cell_id", "step", "loss"]).assign(split="train")
    results.loc[(results.cell_id == behind) & (results.step == 333), "loss"] = 5.0  # a spike
    results.loc[(results.cell_id == behind) & (results.step == 444), "loss"] = -1.0  # a dip
    odd = [555, 556, 557, 901, 903, 905, 907]  # runs of NaNs: the first three runs' starts
    results.loc[(results.cell_id == ahead) & results.step.isin(odd), "loss"] = np.nan
    results.to_parquet(bench.root / _layout.RESULTS / "part-g-mlp-000000000.parquet")
    with serving(bench.root) as server:
        both = get_json(server, f"/api/results?columns=loss&cells={ahead},{behind}&max_points=5")
        alone = {
            cell: get_json(server, f"/api/results?columns=loss&cells={cell}&max_points=5")
            for cell in (behind, ahead)
        }
    series = {s["cell_id"]: s for s in both["series"]}
    evenly = [0, 250, 500, 749, 999]
    assert series[ahead]["step"] == sorted([*evenly, 333, 444, 555, 699, 901, 903])
    assert series[behind]["step"] == [0, 250, 333, 444, 500, 555, 699]
    for cell in (ahead, behind):  # whichever cells asked
        assert alone[cell]["series"][0]["step"] == series[cell]["step"]
    at = dict(zip(series[behind]["step"], series[behind]["values"]["loss"], strict=True))
    assert (at[333], at[444]) == (5.0, -1.0)
    at = dict(zip(series[ahead]["step"], series[ahead]["values"]["loss"], strict=True))
    assert (at[555], at[901], at[903]) == ("nan", "nan", "nan")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("columns=lossy", r"Unknown columns \['lossy'\] in columns=; the bench has 6: \['loss'"),
        ("columns=acuracy", r"\(metrics in /api/bench\)\. Did you mean 'accuracy'\?$"),
        ("columns=zzz", r"\(metrics in /api/bench\)\.$"),
        ("columns=loss&cells=nope", r"Unknown cells \['nope'\] in cells=; the bench has 8: \['"),
        ("columns=loss&max_points=" + "9" * 5000, "max_points must have at most 18 digits"),
        ("cells=a", r"columns is required: name the metrics .*; the bench has \['loss'"),
        ("", "columns is required"),
        ("columns=loss&max_points=1", "max_points must be at least 2, got 1"),
        ("columns=loss&max_points=abc", "max_points must be an integer in plain decimal digits"),
        ("columns=loss&max_points=1_000", r"plain decimal digits, got '1_000'"),
        ("columns=loss&max_points=-5", r"plain decimal digits, got '-5'"),
        ("columns=loss&max_points=%EF%BC%95", "plain decimal digits, got '\uff15'"),  # full width
        ("columns=loss&max_points=5&max_points=9", "'max_points' is given more than once"),
        ("columns=loss&columns=accuracy", "'columns' is given more than once"),
        ("columns=loss&cells=", r"cells must name at least one cell id \(leave it out for all"),
        ("columns=loss&cells=,", "cells must name at least one cell id"),
        ("columns=", r"columns is required: name the metrics .*; the bench has \['loss'"),
        ("columns=,", r"columns is required: name the metrics .*; the bench has \['loss'"),
    ],
)
def test_results_endpoint_names_what_is_wrong(server, query, message):
    status, _, body = get(server, f"/api/results?{query}")
    assert status == 400
    assert re.search(message, json.loads(body)["error"])


@pytest.mark.parametrize(
    ("cells", "columns", "message"),
    [
        (None, ["loss"], "Unknown columns ['loss'] in columns=; the bench has none yet (metrics"),
        (None, [], "name the metrics to send (columns=loss,accuracy); the bench has none yet (no"),
    ],
)
def test_results_before_any_are_refused_saying_there_are_none_yet(
    tmp_path, cells, columns, message
):
    """Asked for curves before the bench wrote any result, the viewer answered "the
    bench has 0: []" (or "has []"): it says it has none yet."""
    (tmp_path / _layout.MARKER).write_text('{"format": 1}')
    with pytest.raises(_api.BadRequest) as refused:
        _api.curves(BenchFiles(tmp_path), cells, columns)
    assert message in str(refused.value)


def test_results_of_some_cells_are_those_cells_rows_of_all(server, written):
    """Cells of both groups (two part files), asked in another order than the plan's:
    their series, and no other, each as the request for every cell sends it."""
    everything = get_json(server, "/api/results?columns=loss,accuracy")["series"]
    cells = written.cells["cell_id"].tolist()
    asked = [cells[-1], cells[0], cells[5]]
    data = get_json(server, f"/api/results?columns=loss,accuracy&cells={','.join(asked)}")
    assert data["series"] == [s for s in everything if s["cell_id"] in asked]
    assert {s["cell_id"] for s in data["series"]} == set(asked)


def test_unknown_cells_are_listed_in_short(server, written):
    """A bench of thousands of cells is not listed whole in the message: ten, and a count."""
    unknown = [f"x{i}" for i in range(12)]
    status, _, body = get(server, f"/api/results?columns=loss&cells={','.join(unknown)}")
    some = written.cells["cell_id"].tolist()[:8]
    assert status == 400
    assert json.loads(body)["error"] == (
        f"Unknown cells {unknown[:10]} and 2 more in cells=; the bench has 8: {some} "
        "(all in /api/cells)."
    )


def test_many_misspelt_columns_get_the_nearest_metrics_of_the_first_few_alone(server):
    """Each misspelt column got the nearest metrics named, each search comparing every
    metric: 1,700 misspelt names of a bench of 500 metrics took two minutes to refuse."""
    asked = ["losss", "acuracy", "step_time", "aux/balanc", *(f"x{i}" for i in range(500))]
    status, _, body = get(server, f"/api/results?columns={','.join(asked)}")
    assert status == 400
    assert json.loads(body)["error"].endswith(
        ". Did you mean 'loss' for 'losss', 'accuracy' for 'acuracy', 'step_time_s' for "
        "'step_time'?"
    )


def test_a_metric_named_with_a_comma_is_asked_for_with_the_comma_encoded(tmp_path):
    """Aux loss names and module paths may hold a comma: a literal comma separates the
    names asked for, an encoded one (``%2C``, as ``encodeURIComponent`` writes it) is part
    of a name."""
    written = write_bench(tmp_path / "bench", blurb_json())
    for part in (written.root / _layout.RESULTS).iterdir():
        pd.read_parquet(part).assign(**{"aux/l1,l2": 0.5}).to_parquet(part, index=False)
    with serving(written.root) as server:
        assert "aux/l1,l2" in get_json(server, "/api/bench")["metrics"]
        data = get_json(server, "/api/results?columns=loss,aux%2Fl1%2Cl2")
        status, _, body = get(server, "/api/results?columns=aux/l1,l2")
    assert data["columns"] == ["loss", "aux/l1,l2"]
    assert all(s["values"]["aux/l1,l2"] == [0.5] * len(STEPS) for s in data["series"])
    assert status == 400
    assert "Unknown columns ['aux/l1', 'l2'] in columns=" in json.loads(body)["error"]


def test_a_column_or_cell_asked_twice_is_sent_once(server, written):
    cell = written.cells["cell_id"].iloc[0]
    data = get_json(server, f"/api/results?cells={cell},{cell}&columns=loss,accuracy,loss")
    assert data["columns"] == ["loss", "accuracy"]
    assert sorted(s["split"] for s in data["series"]) == sorted(SPLITS)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (  # named no "cells", as other endpoints' errors name the nearest
            "/api/results?columns=loss&cell=zzz",
            "'cell' for /api/results; it takes columns, cells, max_points. Did you mean 'cells'?",
        ),
        ("/api/results?columns=loss&max_point=5", "max_points. Did you mean 'max_points'?"),
        ("/api/cells?mode=configs", "'mode' for /api/cells; it takes none"),
        ("/api/bench?verbose", "'verbose' for /api/bench; it takes none"),
        ("/api/blurb/m-mlp?depth=2", r"'depth' for /api/blurb/<model_id>; it takes none"),
    ],
)
def test_unknown_query_parameters_are_refused(server, path, message):
    status, _, body = get(server, path)
    assert status == 400, (path, body[:300])
    assert message in json.loads(body)["error"]


def test_an_unknown_endpoint_is_not_found_listing_the_endpoints(server):
    status, _, body = get(server, "/api/cell")
    assert status == 404
    assert json.loads(body)["error"] == (
        "No such endpoint: /api/cell; there are /api/bench, /api/cells, /api/profile, "
        "/api/morph, /api/version, /api/results, /api/blurb/<model_id>, "
        "/api/graph/<model_id>. Did you mean '/api/cells'?"
    )


@pytest.mark.parametrize(
    ("path", "hint"),
    [
        ("/api/blurbs/m-mlp", ". Did you mean '/api/blurb/m-mlp'?"),
        ("/api/grahp/m-choice", ". Did you mean '/api/graph/m-choice'?"),
        ("/api/nosuch/m-mlp", "/api/graph/<model_id>."),
    ],
)
def test_an_unknown_endpoint_shaped_like_a_models_is_offered_the_one_meant(server, path, hint):
    """The first part of ``/api/blurbs/m-mlp`` was never compared with a model's routes:
    no "Did you mean"."""
    status, _, body = get(server, path)
    assert status == 404
    assert json.loads(body)["error"].endswith(hint)


def test_the_pages_own_parameters_are_left_to_it(server):
    assert get(server, "/?mode=configs&metric=accuracy")[0] == 200
    assert get(server, "/?mode=configs&mode=cells")[0] == 200  # the page's to read


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"])
def test_methods_other_than_get_are_not_allowed(server, method):
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(str(host), int(port), timeout=10)
    try:
        connection.request(method, "/api/bench", body=b'{"x": 1}')
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status == 405 and response.getheader("Allow") == "GET, HEAD"
    assert response.getheader("Content-Type") == "application/json"
    assert json.loads(body) == {
        "error": f"Method {method} not allowed: the viewer only reads (GET)."
    }
    assert response.getheader("Connection") == "close"  # its body unread: not a request


def test_a_request_line_too_long_is_refused_saying_the_limit_and_what_to_ask(server):
    """A request of more cell ids than the server reads was refused with 414 saying only
    ``Request-URI Too Long``: neither the limit nor what to ask instead."""
    status, headers, body = get(server, "/api/results?columns=loss&cells=" + "a," * 40_000)
    assert (status, headers["Connection"]) == (414, "close")
    assert json.loads(body)["error"] == (
        "Request line longer than 64 KiB (65,536 bytes), the most the viewer reads: ask for "
        "fewer cells or columns in each request, in several requests, or leave cells= out "
        "for every cell."
    )


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({f"X-{i}": "1" for i in range(101)}, "Too many headers: got more than 100 headers"),
        ({"Cookie": "a" * 70_000}, "Line too long: got more than 65536 bytes when reading "
         "header line"),
    ],
)  # fmt: skip
def test_headers_too_many_or_too_long_are_refused_saying_the_limit(server, headers, message):
    """They were refused with 431 saying only ``Too many headers`` or ``Line too long``."""
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(str(host), int(port), timeout=10)
    try:
        connection.request("GET", "/api/bench", headers=headers)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert (response.status, json.loads(body)) == (431, {"error": message})


def test_head_answers_the_headers_of_get(server):
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(str(host), int(port), timeout=10)
    try:
        connection.request("HEAD", "/api/bench")
        response = connection.getresponse()
        assert response.status == 200 and response.read() == b""
        assert response.getheader("Content-Type") == "application/json"
    finally:
        connection.close()


def _strict(body: bytes):
    """JSON that has no NaN or Infinity literal (a browser's JSON.parse refuses them)."""
    return json.loads(body, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))


@pytest.mark.parametrize("nan_as_null", [False, True], ids=["nan", "older-bench-null"])
def test_a_diverged_run_is_sent_apart_from_missing_values(tmp_path, nan_as_null):
    bench = write_bench(tmp_path / "example", blurb_json(), diverge=True, nan_as_null=nan_as_null)
    model, lr, seed = DIVERGED
    cells = bench.cells.set_index(["model", "lr", "seed"])["cell_id"]
    diverged, mlp = cells[(model, lr, seed)], cells[("mlp", lr, seed)]
    with serving(bench.root) as server:
        status, _, body = get(server, "/api/cells")
        board = {row["cell"]["cell_id"]: row["final"] for row in _strict(body)["rows"]}
        status_curves, _, curves = get(
            server, f"/api/results?cells={diverged},{mlp}&columns=loss,aux/balance"
        )
    assert status == status_curves == 200
    assert board[diverged]["test"]["loss"] == board[diverged]["test"]["accuracy"] == "nan"
    assert isinstance(board[mlp]["test"]["loss"], float)
    assert board[mlp]["test"]["aux/balance"] is None  # never recorded: missing, not NaN
    for series in _strict(curves)["series"]:
        loss, aux = series["values"]["loss"], series["values"]["aux/balance"]
        if series["cell_id"] == diverged:
            assert [v == "nan" for v in loss] == [s >= DIVERGED_STEP for s in series["step"]]
            assert all(isinstance(v, float) for v in aux)
        else:
            assert all(isinstance(v, float) for v in loss) and aux == [None] * len(STEPS)


def test_a_diverged_column_of_pandas_booleans_beside_an_older_part_is_read(tmp_path):
    """A part rewritten with pandas' nullable types (``dtype_backend="numpy_nullable"``)
    stores its diverged column as pandas booleans; beside a part written before phosjax
    recorded it (no such column, null there), each request of the curves of that older
    part's cells failed (500: cannot convert to 'bool'-dtype NumPy array with missing
    values). A null there is not diverged, as in any other part."""
    bench, (mlp, _) = _bench_of_no_results_and_two_seeds(tmp_path)
    choice = bench.cells.loc[bench.cells.model == "choice", "cell_id"].iloc[0]
    rows = lambda cell: pd.DataFrame(
        {"cell_id": cell, "step": [0, 1, 2], "split": "train", "loss": [3.0, 2.0, 1.0]}
    )
    results = bench.root / _layout.RESULTS  # the newer part first, whose pandas types are read
    newer = rows(choice).assign(diverged=pd.array([False, False, True], dtype="boolean"))
    newer.to_parquet(results / "part-g-choice-000000000.parquet")
    rows(mlp).to_parquet(results / "part-g-mlp-000000000.parquet")
    files = BenchFiles(bench.root)
    every = {s["cell_id"]: s for s in _api.curves(files, None, ["loss"])["series"]}
    assert {cell: s["values"]["loss"] for cell, s in every.items()} == {
        choice: [3.0, 2.0, "diverged"],
        mlp: [3.0, 2.0, 1.0],
    }
    assert _api.curves(files, [mlp], ["loss"])["series"] == [every[mlp]]


@pytest.mark.parametrize("content", ["a whole part", "half a part"])
def test_a_part_file_being_written_is_not_read(tmp_path, content):
    """A writer's hidden temporary (`phosjax.bench._store`) in results/ is not a result."""
    bench = write_bench(tmp_path / "example", blurb_json())
    part = bench.root / _layout.RESULTS / "part-g-mlp-000000000.parquet"
    data = part.read_bytes()
    temporary = part.with_name(f"{TEMPORARY}host~123~{part.name}")
    temporary.write_bytes(data if content == "a whole part" else data[: len(data) // 2])
    with serving(bench.root) as server:
        board = get_json(server, "/api/cells")
        assert [r["cell"] for r in board["rows"]] == bench.cells.to_dict("records")
        curves = get_json(server, "/api/results?columns=loss")
    assert len(curves["series"]) == len(bench.cells) * len(SPLITS)
    assert all(series["step"] == list(STEPS) for series in curves["series"])


@pytest.mark.parametrize("path", ["/api/cells", "/api/results?columns=loss"])
def test_a_part_dropped_by_a_resume_while_read_is_read_again(tmp_path, monkeypatch, path):
    """A resume drops the part files it trains again: one listed by a request, then gone
    before it was read, failed the request with 500 (``FileNotFoundError``). The request
    is answered from the files as they are then, as a request after the drop is."""
    bench = write_bench(tmp_path / "example", blurb_json())
    results = bench.root / _layout.RESULTS
    whole = pd.read_parquet(results / "part-g-mlp-000000000.parquet")
    later = results / "part-g-mlp-000000160.parquet"
    whole[whole.step < 160].to_parquet(results / "part-g-mlp-000000000.parquet", index=False)
    whole[whole.step >= 160].to_parquet(later, index=False)
    with serving(bench.root) as server:
        part_files, listed = _layout.part_files, []

        def list_then_drop(folder):
            found = part_files(folder)
            listed.append([p.name for p in found])
            later.unlink(missing_ok=True)  # the resume, right after the viewer listed them
            return found

        monkeypatch.setattr(_layout, "part_files", list_then_drop)
        status, _, body = get(server, path)
        assert status == 200, body[:300]
        assert later.name in listed[0]
        monkeypatch.setattr(_layout, "part_files", part_files)
        assert json.loads(body) == get_json(server, path)  # as a request after the drop
    answer, mlp = json.loads(body), set(bench.cells[bench.cells.model == "mlp"].cell_id)
    last = {row["cell"]["cell_id"]: row["progress"]["steps_done"] for row in answer.get("rows", [])}
    last |= {series["cell_id"]: series["step"][-1] for series in answer.get("series", [])}
    assert {cell_id: step for cell_id, step in last.items() if cell_id in mlp} == dict.fromkeys(
        mlp, 150
    )


@pytest.mark.parametrize("path", ["/api/cells", "/api/results?columns=loss"])
def test_parts_dropped_by_resumes_at_each_read_are_read_again(tmp_path, monkeypatch, path):
    """The processes of a bench resumed together each drop their group's later parts: a
    second part gone as the request read the bench again failed it with 500
    (``FileNotFoundError``)."""
    bench = write_bench(tmp_path / "example", blurb_json())
    results, later = bench.root / _layout.RESULTS, []
    for group in ("g-mlp", "g-choice"):
        whole = pd.read_parquet(results / f"part-{group}-000000000.parquet")
        whole[whole.step < 160].to_parquet(results / f"part-{group}-000000000.parquet", index=False)
        later.append(results / f"part-{group}-000000160.parquet")
        whole[whole.step >= 160].to_parquet(later[-1], index=False)
    with serving(bench.root) as server:
        part_files = _layout.part_files

        def list_then_drop(folder):
            found = part_files(folder)
            if later:
                later.pop(0).unlink()  # a process's resume, right after the viewer listed them
            return found

        monkeypatch.setattr(_layout, "part_files", list_then_drop)
        status, _, body = get(server, path)
        assert status == 200, body[:300]
        assert not later
        monkeypatch.setattr(_layout, "part_files", part_files)
        assert json.loads(body) == get_json(server, path)  # as a request after the drops


def test_the_version_changes_with_the_files_the_page_shows_alone(tmp_path):
    """`/api/version`, which the page polls to refresh: a new part, a rewritten status or
    a run known to have stopped change it; a writer's hidden temporary and a checkpoint
    do not."""
    bench = write_bench(tmp_path / "example", blurb_json())
    with serving(bench.root) as server:
        version = lambda: get_json(server, "/api/version")["version"]
        first = version()
        assert re.fullmatch(r"[0-9a-f]{16}", first) and version() == first
        (bench.root / _layout.RESULTS / f"{TEMPORARY}host~1~part-g-mlp-000000310.parquet").touch()
        (bench.root / _layout.CHECKPOINTS).mkdir()
        (bench.root / _layout.CHECKPOINTS / "g-mlp").write_text("a checkpoint")
        assert version() == first
        part = bench.root / _layout.RESULTS / "part-g-mlp-000000310.parquet"
        part.write_bytes(
            (bench.root / _layout.RESULTS / "part-g-mlp-000000000.parquet").read_bytes()
        )
        second = version()
        assert second != first
        (bench.root / _layout.STATUS).write_text('{"groups": {}}')
        third = version()
        assert third != second
        with subprocess.Popen(["sleep", "60"]) as run:  # the run, its lock file written
            (bench.root / _layout.LOCK).write_text(
                f"pid {run.pid} on {socket.gethostname()} since -"
            )
            fourth = version()
            run.kill()
        assert version() not in (first, second, third, fourth)  # the run died: no file changed


def test_the_version_tells_the_parts_of_the_bench_apart(tmp_path):
    """`/api/version`'s ``parts``: a new result part changes ``results`` alone, a status
    ``bench`` alone, a profile file ``profile`` alone, a blurb ``models`` alone (the page
    reads those again alone); ``version`` changes with each."""
    bench = write_bench(tmp_path / "example", blurb_json())
    results, profile = bench.root / _layout.RESULTS, bench.root / _layout.PHASES

    def changed(write) -> list[str]:
        before = get_json(server, "/api/version")
        write()
        after = get_json(server, "/api/version")
        assert after["version"] != before["version"]
        return sorted(p for p in after["parts"] if after["parts"][p] != before["parts"][p])

    with serving(bench.root) as server:
        part = (results / "part-g-mlp-000000000.parquet").read_bytes()
        assert changed(lambda: (results / "part-g-mlp-000000310.parquet").write_bytes(part)) == [
            "results"
        ]
        assert changed(lambda: (bench.root / _layout.STATUS).write_text("{}")) == ["bench"]
        stat = profile.stat()
        assert changed(lambda: os.utime(profile, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))) == [
            "profile"
        ]
        assert changed(lambda: (bench.root / _layout.BLURBS / "m-new.json").write_text("{}")) == [
            "models"
        ]


def test_result_parts_linking_out_of_the_bench_are_skipped(tmp_path):
    bench = write_bench(tmp_path / "example", blurb_json())
    results = bench.root / _layout.RESULTS
    moved, copied = _layout.part_files(results)[:2]
    kept = bench.root / "kept" / moved.name  # a link inside the bench is read
    kept.parent.mkdir()
    moved.rename(kept)
    moved.symlink_to(kept)
    outside = tmp_path / "outside.parquet"
    pd.read_parquet(copied).assign(loss=12345.0, leak=1.0).to_parquet(outside)
    (results / "part-zzz-000000000.parquet").symlink_to(outside)
    with serving(bench.root) as server:
        metrics = get_json(server, "/api/bench")["metrics"]
        cells = get(server, "/api/cells")[2]
        curves = get_json(server, "/api/results?columns=loss&max_points=1000")
    assert "leak" not in metrics and b"12345" not in cells
    assert 12345.0 not in [v for s in curves["series"] for v in s["values"]["loss"]]
    assert len(curves["series"]) == len(bench.cells) * len(SPLITS)
    assert all(series["step"] == list(STEPS) for series in curves["series"])


CUT_SHORT = '{"cut short": '


@pytest.mark.parametrize(
    ("relative", "endpoint", "content"),
    [
        (_layout.STATUS, "/api/bench", CUT_SHORT),
        (_layout.STATUS, "/api/bench", "[]"),
        (_layout.STATUS, "/api/cells", '{"groups": {"g": {"cells": 5}}}'),
        (_layout.STATUS, "/api/cells", '{"groups": {"g": {"cells": [["a"]]}}}'),  # no ids
        (f"{_layout.BLURBS}/m-mlp.json", "/api/blurb/m-mlp", CUT_SHORT),
        (f"{_layout.BLURBS}/m-mlp.json", "/api/blurb/m-mlp", "{}"),  # JSON, but no blurb
        (f"{_layout.BLURBS}/m-mlp.json", "/api/blurb/m-mlp", '{"root": [], "backend": "cpu"}'),
        (f"{_layout.RESULTS}/part-g-mlp-{0:09d}.parquet", "/api/cells", CUT_SHORT),
        (_layout.PHASES, "/api/profile", CUT_SHORT),
    ],
)
def test_a_broken_file_is_named_and_the_server_keeps_running(tmp_path, relative, endpoint, content):
    written = write_bench(tmp_path / "bench", blurb_json())
    (written.root / relative).write_text(content)
    with serving(written.root) as server:
        status, _, body = get(server, endpoint)
        assert status == 500
        assert json.loads(body)["error"].startswith(f"cannot read {relative}: ")
        assert get(server, "/")[0] == 200


def test_results_that_cannot_be_listed_are_an_error_saying_to_let_this_user_read_them(
    tmp_path, monkeypatch
):
    """A results/ folder this user may not list (chmod 000) was taken for an empty one (a
    bench of no results), or answered only 'PermissionError: ...', not what allows it."""
    written = write_bench(tmp_path / "bench", blurb_json())
    results = written.root.resolve() / _layout.RESULTS
    listing_refused(monkeypatch, results)
    with serving(written.root) as server:
        for endpoint in ("/api/cells", "/api/version"):
            status, _, body = get(server, endpoint)
            assert (status, json.loads(body)["error"]) == (
                500,
                f"PermissionError: [Errno 13] Permission denied: {str(results)!r}; let this "
                "user read it (its permissions, those of its folder)",
            )


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ('{"python": "3.11"}', None),
        (CUT_SHORT, "JSONDecodeError: Expecting value: line 1 column 15 (char 14); "),
        ("[]", "it holds a list, not the JSON object phosjax writes there; "),
        ("null", "it holds null, not the JSON object phosjax writes there; "),
    ],
    ids=["whole", "cut short", "a list", "null"],
)
def test_a_damaged_env_json_is_named_and_the_rest_of_the_bench_sent(tmp_path, content, error):
    """A damaged env.json failed all of /api/bench: the page showed nothing but its error."""
    written = write_bench(tmp_path / "bench", blurb_json())
    (written.root / _layout.ENV).write_text(content)
    info = _api.bench_info(BenchFiles(written.root))
    assert len(info["models"]) == 2 and set(info["status"]["groups"]) == {"g-mlp", "g-choice"}
    if error is None:
        assert info["env"] == {"python": "3.11"} and info["env_error"] is None
    else:
        hint = "phosjax writes it whole, so something else changed it; restore it from a backup"
        assert info["env"] is None and info["env_error"].startswith(
            f"cannot read env.json: {error}{hint}"
        )


@pytest.mark.parametrize("content", ["null", "[1]", '"bench"'])
def test_a_bench_json_that_holds_no_object_is_named_with_what_to_do(tmp_path, content):
    """A bench.json of null was sent as no marker, and the page showed the bench as a
    morph run ("no bench"); one of another value as the marker, unnamed."""
    (tmp_path / _layout.MARKER).write_text(content)
    with pytest.raises(
        BrokenFileError,
        match=r"^cannot read bench\.json: it holds .*, not the JSON object phosjax writes "
        "there; phosjax writes it whole, so something else changed it; restore it from a "
        "backup, or move the directory aside",
    ):
        _api.bench_info(BenchFiles(tmp_path))


def test_a_config_yaml_that_cannot_be_decoded_is_named_and_the_rest_of_the_bench_sent(tmp_path):
    """config.yaml not UTF-8 failed all of /api/bench: the page showed nothing but its error;
    then it said nothing of what to do about it, then not where the printed config goes."""
    written = write_bench(tmp_path / "bench", blurb_json())
    info = _api.bench_info(BenchFiles(written.root))
    assert info["config"] is not None and info["config_error"] is None
    (written.root / _layout.CONFIG).write_bytes(b"models: [\xff]\n")
    info = _api.bench_info(BenchFiles(written.root))
    assert len(info["models"]) == 2 and set(info["status"]["groups"]) == {"g-mlp", "g-choice"}
    assert info["config"] is None and info["config_error"].startswith(
        "cannot read config.yaml: UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff "
        "in position 9: invalid start byte; phosjax writes it whole, so something else changed "
        "it; restore it from a backup, or write the bench's config there again (`python -m "
        "phosjax.bench.new --config FILE --print_config > DIR/config.yaml`"
    )


def test_a_client_gone_before_the_answer_is_not_an_error(server, monkeypatch, capsys):
    """A page reloaded while a slow answer is built resets its connection: the request
    ends quietly (it printed a 500 for the bench and a traceback)."""
    client_gone, handled = threading.Event(), threading.Event()
    leaderboard, shutdown_request = _api.leaderboard, server.shutdown_request

    def slow_leaderboard(bench):
        client_gone.wait(10)
        return leaderboard(bench)

    def shutdown_then_tell(request):
        shutdown_request(request)
        handled.set()

    monkeypatch.setattr(_api, "leaderboard", slow_leaderboard)
    monkeypatch.setattr(server, "shutdown_request", shutdown_then_tell)
    client = socket.create_connection(server.server_address[:2])
    client.sendall(b"GET /api/cells HTTP/1.1\r\nHost: localhost\r\n\r\n")
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()  # with a reset, as a browser cancelling the request
    client_gone.set()
    assert handled.wait(10)
    assert capsys.readouterr().err == ""


def test_a_part_rewritten_by_pandas_with_its_index_has_no_index_metric(tmp_path):
    """Every part written with its index (a filtered frame): pandas stores it as a column."""
    written = write_bench(tmp_path / "bench", blurb_json())
    for part in (written.root / _layout.RESULTS).iterdir():
        frame = pd.read_parquet(part)
        frame[frame.step > 0].to_parquet(part)
    with serving(written.root) as server:
        assert get_json(server, "/api/bench")["metrics"] == list(METRICS)
        board = get_json(server, "/api/cells")
    assert len(board["rows"]) == len(written.cells) and board["metrics"] == list(METRICS)


def test_blurb_graph_profile_and_morph_endpoints(server, written):
    for model_id in MODELS.values():
        assert get_json(server, f"/api/blurb/{model_id}") == written.blurb
    assert get_json(server, "/api/graph/m-choice") == GRAPH
    status, _, body = get(server, "/api/graph/m-mlp")
    assert status == 404 and b"no graphs/m-mlp.json" in body
    profile = get_json(server, "/api/profile")
    assert profile["phases"]["rows"] == written.phases.to_dict("records")
    assert profile["memory"]["columns"] == list(written.memory.columns)
    np.testing.assert_allclose(
        [r["host_rss_bytes"] for r in profile["memory"]["rows"]], written.memory["host_rss_bytes"]
    )
    morph = {"files": {"summary.json": {"flops_before": 1e6}}, "errors": {}}
    assert get_json(server, "/api/morph") == morph


def test_a_morph_file_being_written_is_left_out(tmp_path):
    """A morph run writes ``iterations.parquet`` through a temporary beside it (which a
    run killed as it wrote leaves): /api/morph read it too, failing on one half written
    and showing a whole one as a second table; it leaves out hidden files, as versions do."""
    written = write_bench(tmp_path / "morphing", blurb_json())
    folder = written.root / _layout.MORPH
    (folder / f"{TEMPORARY}host~12~iterations.parquet").write_bytes(b"PAR1 half written")
    (folder / f"{TEMPORARY}host~12~summary.json").write_text('{"flops_before": 2')
    with serving(written.root) as server:
        morph = get_json(server, "/api/morph")
    assert morph == {"files": {"summary.json": {"flops_before": 1e6}}, "errors": {}}


def test_a_broken_morph_file_fails_only_itself(tmp_path):
    """One damaged file under ``morph/`` (a summary cut short) failed the whole of
    /api/morph, the panel showing none of the others; it is in ``errors``, naming it
    and what to do, the others read as ever."""
    written = write_bench(tmp_path / "morphing", blurb_json())
    (written.root / _layout.MORPH / "notes.json").write_text('{"flops_after": 2')
    with serving(written.root) as server:
        morph = get_json(server, "/api/morph")
    assert morph["files"] == {"summary.json": {"flops_before": 1e6}}
    assert list(morph["errors"]) == ["notes.json"]
    assert morph["errors"]["notes.json"].startswith("cannot read morph/notes.json: ")


@pytest.mark.parametrize(
    ("folder", "text", "wrong"),
    [
        ("graphs", "[]", "it holds a list"),
        ("graphs", '{"nodes": {"a": 1}}', "its 'nodes' holds an object"),
        ("graphs", '"x"', "it holds a string"),
        ("blurbs", "{}", "it has no 'root'"),
        ("graphs", '{"nodes": [], "edges": {"a": "b"}}', "its 'edges' holds an object"),
        ("graphs", '{"nodes": [], "edges": [], "outputs": 3}', "its 'outputs' holds a number"),
        (
            "blurbs",
            '{"root": {"children": [{"children": {}}]}}',
            r"its 'root'\['children'\]\[0\]\['children'\] holds an object",
        ),
        ("blurbs", '{"root": {"children": [null]}}', r"its 'root'\['children'\]\[0\] holds null"),
        (
            "blurbs",
            '{"root": {"children": [{"knobs": {"gain": null}}]}}',
            r"its 'root'\['children'\]\[0\]\['knobs'\]\['gain'\] holds null",
        ),
        ("blurbs", '{"root": {"knobs": [null]}}', r"its 'root'\['knobs'\] holds a list"),
        ("graphs", '{"nodes": [null]}', r"its 'nodes'\[0\] holds null"),
        ("graphs", '{"nodes": [], "edges": [null]}', r"its 'edges'\[0\] holds null"),
        (
            "graphs",
            '{"nodes": [{"parts": {"[0]": {"dtype": "float32"}}}]}',
            r"its 'nodes'\[0\]\['parts'\]\['\[0\]'\] has no 'shape'",
        ),
        (
            "blurbs",
            '{"root": {"outputs": {"": {"shape": null}}}}',
            r"its 'root'\['outputs'\]\[''\]\['shape'\] holds null",
        ),
        (
            "blurbs",
            '{"root": {"children": [{"variables": {"params": null}}]}}',
            r"its 'root'\['children'\]\[0\]\['variables'\]\['params'\] holds null",
        ),
        (
            "graphs",
            '{"nodes": [{"id": "a", "inputs": []}, {"id": "b", "inputs": "a"}]}',
            r"its 'nodes'\[1\]\['inputs'\] holds a string",
        ),
    ],
)
def test_a_model_file_that_holds_no_drawing_is_an_error_naming_it(tmp_path, folder, text, wrong):
    """A graph drawing without its list of nodes (or edges, outputs; or whose node is
    none, its inputs no list; or an edge none), or a blurb whose module's children are no
    list (its knobs no object, a knob none), or an array of either without its shape,
    was sent as it was: the page failed with 'nodes.map is not a function' ('edges is
    not iterable', 'children is not iterable', 'inputs.filter is not a function', 'e is
    null', 'knob is null', 'p.shape is undefined'), naming no file (or drew an empty
    graph); the error names what is wrong and says what to do, as
    it does where the file is no JSON."""
    (tmp_path / "bench.json").write_text('{"format": 1}')
    (tmp_path / folder).mkdir()
    (tmp_path / folder / "m-1.json").write_text(text)
    remedy = "; phosjax writes it whole, so something else changed it; delete it"
    with pytest.raises(
        BrokenFileError,
        match=rf"^cannot read {folder}/m-1\.json: {wrong}; it does not hold a .*\){remedy}",
    ):
        _api.model_file(BenchFiles(tmp_path), folder, "m-1")


@pytest.mark.parametrize(
    ("folder", "content"),
    [
        ("graphs", {"nodes": [], "edges": None}),
        ("blurbs", {"root": {"children": [{"children": None}]}}),
    ],
)
def test_a_drawing_without_edges_outputs_or_children_is_sent(tmp_path, folder, content):
    """The page draws a graph without edges or outputs (``graph.edges || []``), a module
    without children (``module.children || []``): a module's null children were refused."""
    (tmp_path / "bench.json").write_text('{"format": 1}')
    (tmp_path / folder).mkdir()
    (tmp_path / folder / "m-1.json").write_text(json.dumps(content))
    assert _api.model_file(BenchFiles(tmp_path), folder, "m-1") == content


def test_page_and_static_files(server):
    status, headers, body = get(server, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'<script type="module" src="static/app.js">' in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    for name, kind in [("app.js", "text/javascript"), ("style.css", "text/css")]:
        status, headers, body = get(server, f"/static/{name}")
        assert status == 200 and headers["Content-Type"].startswith(kind) and body
    assert get(server, "/static/nope.js")[0] == 404
    assert get(server, "/api/nope")[0] == 404


@pytest.mark.parametrize(
    "path",
    [
        "/static/../../secret.json",
        "/static/%2e%2e/%2e%2e/secret.json",
        "/static/%2E%2E%2F%2E%2E%2Fsecret.json",
        "/api/blurb/..%2F..%2Fsecret",
        "/api/blurb/%2e%2e",
        "/api/blurb/.hidden",
        "/api/graph/..%5C..%5Csecret",
        "//secret.json",
        "/static//etc/passwd",
        "/api/blurb/%2Fetc%2Fpasswd",
        "/static/%00app.js",
    ],
)
def test_paths_that_climb_out_are_refused(server, path):
    status, _, body = get(server, path)
    assert status in (403, 404), (path, status)
    assert SECRET.encode() not in body


@pytest.mark.parametrize(
    "path",
    [
        "/static//etc/passwd",
        "/static/%2Fetc%2Fpasswd",
        "/api/blurb//etc/passwd",
        "/api/blurb/%2Fetc%2Fpasswd",
        "/api/graph/%2Ftmp%2Fsecret",
    ],
)
def test_absolute_paths_are_refused_with_403(server, path):
    """docs/viewer.md: paths that climb out (``..``, absolute paths, symlinks out): 403."""
    status, _, body = get(server, path)
    assert status == 403 and b"holds '//': an absolute path out of the bench" in body, body


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/api//cells", "holds '//': an absolute path out of the bench, or an empty part (meant "
         "'/api/cells'?)"),
        ("/static/app.js%00", "holds '\\x00', which no path the viewer answers holds"),
        ("/static/..%5Capp.js", "holds '\\\\', which no path the viewer answers holds"),
        ("/static/%2e%2e/app.js", "climbs out of the bench"),
    ],
)  # fmt: skip
def test_a_path_refused_is_refused_saying_what_in_it_is_wrong(server, path, why):
    """A double slash in a path (an URL joined as ``base + "/" + "api/cells"``) was refused
    saying the path ``climbs out of the bench``, as a NUL or a backslash was."""
    status, _, body = get(server, path)
    decoded = urllib.parse.unquote(path)
    assert (status, json.loads(body)["error"]) == (403, f"Refused: {decoded!r} {why}.")


def test_symlinks_out_of_the_bench_are_refused(server):
    status, _, body = get(server, "/api/blurb/evil")
    assert status == 403 and b"leads outside the bench" in body
    assert SECRET.encode() not in get(server, "/api/morph")[2]  # the link is skipped


def test_a_blurb_or_morph_folder_linking_out_is_absent_from_the_bench_info(tmp_path):
    """The server never reads them: the page is told there is none (not a 403 for all)."""
    written = write_bench(tmp_path / "bench", blurb_json())
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "summary.json").write_text(json.dumps({"secret": SECRET}))
    blurb = written.root / _layout.BLURBS / "m-mlp.json"
    blurb.unlink()
    blurb.symlink_to(tmp_path / "elsewhere" / "summary.json")
    graph = written.root / _layout.GRAPHS / "m-choice.json"
    graph.rename(tmp_path / "elsewhere" / "graph.json")
    graph.symlink_to(tmp_path / "elsewhere" / "graph.json")
    shutil.rmtree(written.root / _layout.MORPH)
    (written.root / _layout.MORPH).symlink_to(tmp_path / "elsewhere")
    with serving(written.root) as server:
        status, _, body = get(server, "/api/bench")
        assert status == 200, body
        info = json.loads(body)
        assert info["models"] == [
            {"model_id": "m-mlp", "model": "mlp", "has_blurb": False, "has_graph": False},
            {"model_id": "m-choice", "model": "choice", "has_blurb": True, "has_graph": False},
        ]
        assert info["has_morph"] is False
        for path in ("/api/blurb/m-mlp", "/api/graph/m-choice", "/api/morph"):
            status, _, body = get(server, path)
            assert status == 403 and SECRET.encode() not in body, path


def test_status_and_profile_files_linking_out_are_skipped(tmp_path):
    """Files found by listing a folder (`status.p<i>of<n>.json`, the profile's): one that
    links out is never read, as a result part."""
    written = write_bench(tmp_path / "bench", blurb_json())
    status = json.loads((written.root / _layout.STATUS).read_text())
    (tmp_path / "status.json").write_text(json.dumps({"groups": {SECRET: {}}}))
    (written.root / "status.p1of2.json").symlink_to(tmp_path / "status.json")
    phases = written.root / _layout.PHASES
    phases.rename(tmp_path / "phases.parquet")
    phases.symlink_to(tmp_path / "phases.parquet")
    with serving(written.root) as server:
        info = get_json(server, "/api/bench")
        profile = get_json(server, "/api/profile")
    assert info["status"] == status and info["has_profile"]
    assert profile["phases"] is None and len(profile["memory"]["rows"]) == len(written.memory)


def test_a_model_id_too_long_for_a_file_name_is_not_found(server):
    status, _, body = get(server, "/api/blurb/" + "a" * 300)
    assert status == 404 and b"no model 'aaa" in body


@pytest.mark.parametrize("kind", ["blurb", "graph"])
def test_an_unknown_model_is_not_found_naming_the_benchs_models(server, kind):
    status, _, body = get(server, f"/api/{kind}/m-mlpp")
    assert status == 404
    assert json.loads(body)["error"] == (
        "The bench has no model 'm-mlpp'; it has 2: ['m-mlp', 'm-choice'] (models in "
        "/api/bench). Did you mean 'm-mlp'?"
    )


def test_a_plan_edited_to_leave_a_model_id_null_is_shown_without_its_files(tmp_path):
    """A cell of a plan edited by hand with its model_id left null failed /api/bench with
    500 (``TypeError: expected string or bytes-like object, got 'float'``) and an unknown
    model's blurb with another (``'float' object has no attribute 'casefold'``); a model's
    name asked for got its null id offered (``Did you mean nan or 'm-mlp'``)."""
    written = write_bench(tmp_path / "edited", blurb_json())
    written.cells.assign(model_id=[None, *written.cells.model_id[1:]]).to_parquet(
        written.root / _layout.CELLS
    )
    with serving(written.root) as server:
        models = get_json(server, "/api/bench")["models"]
        status, _, body = get(server, "/api/blurb/m-mlpp")
        by_name = json.loads(get(server, "/api/blurb/mlp")[2])["error"]
    assert models[0] == {"model_id": None, "model": "mlp", "has_blurb": False, "has_graph": False}
    assert {m["model_id"]: m["has_blurb"] for m in models[1:]} == dict.fromkeys(
        MODELS.values(), True
    )
    assert (status, json.loads(body)["error"]) == (
        404,
        "The bench has no model 'm-mlpp'; it has 2: ['m-mlp', 'm-choice'] (models in /api/bench)."
        " Did you mean 'm-mlp'?",
    )
    assert by_name.endswith("(models in /api/bench). Did you mean 'm-mlp', of model 'mlp'?")


@pytest.mark.parametrize("model_id", [".", ".hidden", "..."])
def test_a_dot_name_is_no_model_and_not_found_naming_the_benchs_models(server, model_id):
    """It was a 403 "'.' is not a plain file name", as if it climbed out of the bench."""
    status, _, body = get(server, f"/api/blurb/{model_id}")
    assert status == 404
    assert json.loads(body)["error"].startswith(
        f"The bench has no model {model_id!r}; it has 2: ['m-mlp', 'm-choice'] (models in "
    )


def test_a_models_name_in_place_of_its_id_is_not_found_naming_its_id(server):
    status, _, body = get(server, "/api/blurb/choice")
    assert status == 404
    assert json.loads(body)["error"].endswith(
        "(models in /api/bench). Did you mean 'm-choice', of model 'choice'?"
    )


def test_an_unparsable_host_is_refused_with_json(server):
    status, _, body = get(server, "/api/bench", host="[")
    assert status == 403 and "Host not allowed" in json.loads(body)["error"]


def test_other_host_names_are_refused_on_loopback(server):
    assert get(server, "/api/bench", host="evil.example.com")[0] == 403
    assert get(server, "/api/bench", host=f"localhost:{server.server_address[1]}")[0] == 200


def test_the_address_printed_for_another_loopback_address_is_answered(written):
    """Bound to 127.0.0.2, the viewer refused its own URL (only localhost, 127.0.0.1 and
    ::1 were allowed) with 'Host not allowed'."""
    with serving(written.root, host="127.0.0.2") as server:
        assert server.url.startswith("http://127.0.0.2:")
        assert get(server, "/api/bench", host=server.url.split("/")[2])[0] == 200
        assert get(server, "/api/bench", host="evil.example.com")[0] == 403


def test_a_bench_that_just_started(tmp_path):
    (tmp_path / _layout.MARKER).write_text(json.dumps({"format": 1}))
    with serving(tmp_path) as server:
        assert get_json(server, "/api/cells")["rows"] == []
        info = get_json(server, "/api/bench")
        assert info["metrics"] == [] and info["models"] == [] and not info["has_profile"]
        nothing = {"phases": None, "memory": None, "files": {"phases": [], "memory": []}}
        assert get_json(server, "/api/profile") == nothing
        assert get(server, "/api/morph")[0] == 404


def test_a_cell_whose_group_has_not_started_is_unfinished_with_nothing_done(tmp_path):
    (tmp_path / _layout.MARKER).write_text(json.dumps({"format": 1}))
    cells = {c: ["c1"] for c in _layout.CELL_COLUMNS} | {"seed": [0]}
    pd.DataFrame(cells).to_parquet(tmp_path / _layout.CELLS)
    with serving(tmp_path) as server:
        (row,) = get_json(server, "/api/cells")["rows"]
    assert row["cell"]["cell_id"] == "c1"
    nothing = {"steps_done": 0, "steps": None, "finished": False, "stopped": False}
    assert row["progress"] == nothing
    assert row["final"] == {}


def test_memory_of_a_single_run_and_of_per_process_runs_keeps_whose_each_sample_is(tmp_path):
    """A bench run once alone, then resumed by two processes: memory.parquet's samples
    have the process None, each per-process file's its ``i/n``."""
    (tmp_path / "profile").mkdir()
    (tmp_path / _layout.MARKER).write_text(json.dumps({"format": 1}))
    for suffix, rss in (("", 1.0), (".p0of2", 2.0), (".p1of2", 3.0)):
        frame = pd.DataFrame({"time_s": [0.0, 1.0], "host_rss_bytes": [rss, rss]})
        frame.to_parquet(tmp_path / _layout.MEMORY.replace(".parquet", f"{suffix}.parquet"))
    with serving(tmp_path) as server:
        profile = get_json(server, "/api/profile")
    memory, files = profile["memory"], profile["files"]
    assert memory["columns"] == ["time_s", "host_rss_bytes", "process"]
    read = [
        "profile/memory.parquet",
        "profile/memory.p0of2.parquet",
        "profile/memory.p1of2.parquet",
    ]
    assert files == {"phases": [], "memory": read}
    whose = [(row["host_rss_bytes"], row["process"]) for row in memory["rows"]]
    # Two samples each (the files' order is not what this checks).
    assert sorted(whose, key=str) == sorted([(1.0, None), (2.0, "0/2"), (3.0, "1/2")] * 2, key=str)


@pytest.mark.parametrize("model", ["my net", "résnet"])
def test_a_model_named_with_a_space_or_accent_shows_its_blurb(tmp_path, model):
    """Any name the runner takes (`_layout.PLAIN_NAME`) names a blurb the viewer serves."""
    model_id = f"{model}-1a2b3c4d"
    (tmp_path / _layout.MARKER).write_text(json.dumps({"format": 1}))
    cells = {c: ["c1"] for c in _layout.CELL_COLUMNS} | {"model_id": [model_id], "seed": [0]}
    pd.DataFrame(cells).to_parquet(tmp_path / _layout.CELLS)
    (tmp_path / _layout.BLURBS).mkdir()
    (tmp_path / _layout.BLURBS / f"{model_id}.json").write_text(blurb_json())
    with serving(tmp_path) as server:
        assert get_json(server, "/api/bench")["models"][0]["has_blurb"]
        blurb = get_json(server, f"/api/blurb/{urllib.parse.quote(model_id)}")
    assert blurb == json.loads(blurb_json())


def test_a_directory_that_is_not_a_bench(tmp_path, written, capsys, monkeypatch):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "data").mkdir()
    unrelated = (
        rf"^{re.escape(repr(str(tmp_path)))} is not a bench: it has no bench.json, and holds "
        r"\['data', 'notes.txt'\], which no bench writes before its bench.json: a bench starts "
        r"only in a new or empty folder\. Make one with `python -m phosjax.bench.new "
    )
    with pytest.raises(NotABenchError, match=unrelated):
        make_server(tmp_path)
    unreadable = tmp_path / "unreadable"
    unreadable.mkdir()
    listing = pathlib.Path.iterdir

    def refused(path):  # as for a folder of another user (the tests may run as root)
        if path == unreadable:
            raise PermissionError(13, "Permission denied", str(path))
        return listing(path)

    with monkeypatch.context() as patched:
        patched.setattr(pathlib.Path, "iterdir", refused)
        assert main(["--dir", str(unreadable), "--port", "0"]) == 2  # not a traceback
    assert capsys.readouterr().err == (
        f"error: {str(unreadable)!r} is not a bench: it has no bench.json, and cannot be "
        "listed (Permission denied).\n"
    )
    assert main(["--dir", str(tmp_path), "--port", "0"]) == 2
    said = capsys.readouterr().err
    assert said.startswith(f"error: {str(tmp_path)!r} is not a bench: it has no bench.json, ")
    view = rf"Benches inside it: example; pass one: --dir {re.escape(str(written.root))}$"
    with pytest.raises(NotABenchError, match=view):  # not "Make one with ... new"
        make_server(written.root.parent)
    with pytest.raises(NotABenchError, match=r"no such directory\. It is inside the bench "):
        make_server(written.root / _layout.RESULTS / "new")
    inside = rf" It is inside the bench {re.escape(repr(str(written.root)))}: view that one\.$"
    with pytest.raises(NotABenchError, match=rf"it has no bench.json\.{inside}"):
        make_server(written.root / _layout.RESULTS)
    with pytest.raises(NotABenchError, match=rf"it is a file, not a directory\.{inside}"):
        make_server(written.root / _layout.CONFIG)
    # No bench can start there (bench.new refuses them): not waited for.
    under = r"^'.*/notes.txt/b' is not a bench: no such directory, and none can be made: "
    with pytest.raises(NotABenchError, match=rf"{under}'.*/notes.txt' is a file\.$"):
        make_server(tmp_path / "notes.txt" / "b")
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    dangling = r"^'.*/gone' is not a bench: it is a link to '.*/nowhere', which does not exist"
    with pytest.raises(NotABenchError, match=dangling):
        make_server(tmp_path / "gone")


@pytest.mark.parametrize("exists", [False, True], ids=["no folder yet", "an empty folder"])
def test_a_viewer_started_before_its_bench_waits_for_it(tmp_path, exists):
    """A viewer started with its bench (`bench.new` and `view` at once) was refused until
    bench.json existed. It serves, says what it waits for (in its banner, api/version
    and in place of the bench's data), and serves the bench once it starts; a file no
    bench writes put in the folder meanwhile is named as why none will start there."""
    folder = tmp_path / "bench"
    if exists:
        folder.mkdir()
    why = "no bench.json" if exists else "no such directory"
    waiting = f"waiting for the bench to start in {str(folder)!r} ({why} yet)"
    with serving(folder) as server:
        assert server.banner() == f"Viewing {folder} at {server.url}; {waiting}  (Ctrl-C stops)"
        assert get_json(server, "/api/version") == _api.waiting(waiting)
        status, _, body = get(server, "/api/cells")
        assert (status, json.loads(body)) == (503, {"error": waiting})
        folder.mkdir(exist_ok=True)
        (folder / _layout.LOCK).write_text("pid 1 on host since 2026-01-01T00:00:00+00:00")
        (folder / _layout.RESULTS).mkdir()  # process 1 of 2, run apart, trains first
        assert get_json(server, "/api/version")["waiting"] == waiting.replace(why, "no bench.json")
        (folder / "notes.txt").write_text("mine")  # no bench writes it
        unrelated = get_json(server, "/api/version")["waiting"]
        assert unrelated.endswith(
            "holds ['notes.txt'], which no bench writes before its bench.json: a bench "
            "starts only in a new or empty folder. Make one with `python -m "
            "phosjax.bench.new --config CONFIG.yaml --dir DIR`."
        )
        (folder / "notes.txt").unlink()
        (folder / f"{TEMPORARY}host~12~{_layout.MARKER}").write_text("{")  # being written
        assert get_json(server, "/api/version")["waiting"] == waiting.replace(why, "no bench.json")
        (folder / ".DS_Store").write_bytes(b"")  # hidden, but bench.new refuses it too
        assert "holds ['.DS_Store'], which no bench" in get_json(server, "/api/version")["waiting"]
        (folder / ".DS_Store").unlink()
        (folder / _layout.MARKER).write_text(json.dumps({"format": 1}))
        assert "waiting" not in get_json(server, "/api/version")
        assert get_json(server, "/api/cells")["rows"] == []
        assert server.banner() == f"Viewing {folder} at {server.url}  (Ctrl-C stops)"


def test_a_bench_whose_run_stopped_before_bench_json_says_so_while_waited_for(tmp_path):
    """A bench killed as it started (Ctrl-C while its data loaded: its run.lock alone
    written) was waited for, '(no bench.json yet)', forever; the wait says its run is
    gone and how to start it again (bench.new takes the folder)."""
    ended = subprocess.Popen([sys.executable, "-c", ""])
    ended.wait()
    host = socket.gethostname()
    tmp_path = tmp_path / "Ann's $b"  # its repr, "...Ann's $b", pasted: $b expanded
    tmp_path.mkdir()
    (tmp_path / _layout.LOCK).write_text(f"pid {os.getpid()} on {host} since 2026-01-01T00:00")
    waiting = f"waiting for the bench to start in {str(tmp_path)!r} (no bench.json yet"
    assert not_started(tmp_path) == f"{waiting})"  # its run still going
    (tmp_path / _layout.LOCK).write_text(f"pid {ended.pid} on {host} since 2026-01-01T00:00")
    assert not_started(tmp_path) == (
        f"{waiting}; the run that began it (pid {ended.pid} on {host} since 2026-01-01T00:00) "
        "stopped before it wrote bench.json: start it again, `python -m phosjax.bench.new "
        f"--config CONFIG.yaml --dir {shlex.quote(str(tmp_path))}`)"
    )


def test_a_bench_removed_while_viewed_is_waited_for_again(tmp_path):
    """A bench deleted to start it over (``rm -r``, then ``bench.new`` again) was served as
    an empty morph run (``marker`` null: the page hid every bench panel, for good); the
    viewer waits for a bench to start there again, saying that the bench shown so far is
    gone (it said "waiting for the bench to start" alone, as before any), and serves the
    new one."""
    written = write_bench(tmp_path / "bench", blurb_json())
    with serving(written.root) as server:
        assert len(get_json(server, "/api/cells")["rows"]) == len(written.cells)
        shutil.rmtree(written.root)
        waiting = (
            "the bench shown so far is gone (deleted or moved); waiting for the bench to "
            f"start in {str(written.root)!r} (no such directory yet)"
        )
        assert get_json(server, "/api/version") == _api.waiting(waiting)
        status, _, body = get(server, "/api/bench")
        assert (status, json.loads(body)) == (503, {"error": waiting})
        again = write_bench(written.root, blurb_json(), learning_rates=(0.5,))
        assert len(get_json(server, "/api/cells")["rows"]) == len(again.cells)
        shutil.rmtree(written.root)
        assert get_json(server, "/api/version") == _api.waiting(waiting)  # again, once more


def test_a_dir_not_made_yet_names_the_benches_beside_it_of_a_name_close_to_its(tmp_path):
    """A typo in --dir (`runs/exmaple`) waited for a bench to start there, forever, saying
    no more than 'no such directory yet'. The line names the benches beside it of a name
    close to its (not another folder), and where the folder above it is missing too, that
    one and the folders beside it of a name close to its (a bench may start there still:
    `bench.new` makes every folder of its --dir)."""
    runs = tmp_path / "runs"
    (runs / "example").mkdir(parents=True)
    (runs / "example" / _layout.MARKER).write_text(json.dumps({"format": 1}))
    (runs / "examples").mkdir()  # no bench
    waiting = lambda path, why: f"waiting for the bench to start in {str(path)!r} ({why})"
    typo = runs / "exmaple"
    assert not_started(typo) == waiting(
        typo, "no such directory yet; a typo of the bench 'example' beside it?"
    )
    assert not_started(runs / "mlp-sweep") == waiting(runs / "mlp-sweep", "no such directory yet")
    above = tmp_path / "rusn"
    assert not_started(above / "example") == waiting(
        above / "example", f"no such directory yet, nor {str(above)!r}; a typo of 'runs' beside it?"
    )
    assert not_started(tmp_path / "new" / "a") == waiting(
        tmp_path / "new" / "a", f"no such directory yet, nor {str(tmp_path / 'new')!r}"
    )


def test_a_port_in_use(written, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUseError, match=rf"Port {port} on 127.0.0.1 is already in use"):
            make_server(written.root, port=port)
        assert main(["--dir", str(written.root), "--port", str(port)]) == 2
    assert f"Port {port} on 127.0.0.1 is already in use (another viewer?). Try --port" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_a_bad_port_is_refused_when_parsed(written, capsys, port):
    with pytest.raises(SystemExit) as exited:
        main(["--dir", str(written.root), "--port", port])
    assert exited.value.code == 2
    assert f"--port: must be a port number from 0 to 65535, got '{port}'" in capsys.readouterr().err


@pytest.mark.parametrize("port", [65536, 99999, -1])
def test_a_port_out_of_range_is_an_error_naming_it_and_the_range(written, port):
    message = rf"cannot serve on 127\.0\.0\.1:{port}: a port is a number from 0 to 65535 "
    with pytest.raises(CannotServeError, match=message):
        make_server(written.root, port=port)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"directory": None}, "directory must be the bench's folder, a str or pathlib.Path "),
        ({"port": "8080"}, r"port must be an int from 0 to 65535 \(0: any free one\), got a str"),
        ({"port": True}, "port must be an int from 0 to 65535 .*, got a bool: True"),
        ({"port": 8080.0}, "port must be an int .*, got a float: 8080.0"),
        ({"host": None}, "host must be the address to bind, a str such as '127.0.0.1', got a No"),
        ({"directory": list(range(40))}, r"got a list: \[0, 1, .*, 21, …\.$"),  # not ", 2."
        ({"port": list(range(40))}, r"got a list: \[0, 1, .*, 21, …\.$"),
    ],
)
def test_make_server_names_an_argument_of_the_wrong_type(written, arguments, message):
    """From Python, make_server(None) said "expected str, bytes or os.PathLike object",
    port="8080" "'<=' not supported between instances of 'int' and 'str'", host=None
    "'NoneType' object has no attribute 'startswith'", and port=True bound port 1."""
    given = {"directory": written.root, "port": 0} | arguments
    with pytest.raises(TypeError, match=message):
        make_server(**given)


@pytest.mark.parametrize("host", ["", "  ", "[]", " [ ] "])
def test_make_server_refuses_an_empty_host_rather_than_serve_everyone(written, host):
    """make_server(host="") bound every interface (as the CLI refuses --host ""), and
    host="  " said 'cannot serve on   :0: Name or service not known'; host="[]", an empty
    address in brackets, still bound every interface, its url 'http://:PORT/'."""
    with pytest.raises(ValueError, match=rf"^host {re.escape(repr(host))} is empty; give the"):
        make_server(written.root, port=0, host=host)


def test_make_server_takes_a_numpy_integer_port(written):
    """port=np.int64(...), which the socket binds, was refused as no int (an int64)."""
    server = make_server(written.root, port=np.int64(0))
    try:
        assert isinstance(server.server_address[1], int)
    finally:
        server.server_close()


def test_bench_files_names_a_directory_of_the_wrong_type():
    """BenchFiles(None) said "expected str, bytes or os.PathLike object, not NoneType"."""
    with pytest.raises(TypeError, match=r"^directory must be the bench's folder, .* got an int"):
        BenchFiles(5)


HOST_HINT = "; give an address of this machine: --host 127.0.0.1 (this machine only) or --host "


def test_a_host_that_cannot_be_bound_is_refused(written, capsys):
    """The OS's reason alone ('Name or service not known', 'Cannot assign requested
    address') did not say what to give instead."""
    assert main(["--dir", str(written.root), "--host", "nosuch.invalid", "--port", "0"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: cannot serve on nosuch.invalid:0: ") and HOST_HINT in error
    with pytest.raises(CannotServeError, match=r"cannot serve on 192\.0\.2\.1:0: \w") as refused:
        make_server(written.root, port=0, host="192.0.2.1")  # an address of no machine here
    assert HOST_HINT in str(refused.value)


@pytest.mark.parametrize(
    ("host", "instead"),
    [
        ("127.0.0.1:8080", "--host 127.0.0.1 --port 8080"),
        ("[::1]:8080", "--host ::1 --port 8080"),
        ("http://localhost", "--host 127.0.0.1 (this machine only)"),
        ("http://localhost:8080", "--host localhost --port 8080"),
    ],
)
def test_a_host_holding_a_port_is_refused_saying_to_give_it_apart(written, capsys, host, instead):
    """``--host 127.0.0.1:8080`` was refused as an unknown IPv6 address, 'cannot serve on
    [127.0.0.1:8080]:1337: Name or service not known', naming no port."""
    assert main(["--dir", str(written.root), "--host", host, "--port", "0"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: cannot serve on host {host!r}: no address but an IPv6 ")
    assert instead in error


def test_a_port_kept_for_root_is_refused_saying_so(written, monkeypatch):
    """A port below 1024 bound by another user said 'Permission denied' alone."""

    def refused(server):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(socketserver.TCPServer, "server_bind", refused)
    with pytest.raises(CannotServeError) as error:
        make_server(written.root, port=80)
    assert str(error.value) == (
        "cannot serve on 127.0.0.1:80: Permission denied; a port below 1024 needs root: try "
        "--port 1337, or --port 0 (any free one)"
    )


@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_an_ipv6_host_is_served_with_or_without_brackets(written, host):
    with serving(written.root, host) as server:  # "[::1]" was looked up as a host name
        assert server.url == f"http://[::1]:{server.server_address[1]}/"
        assert len(get_json(server, "/api/cells")["rows"]) == len(written.cells)


def test_a_morph_run_directory_shows_its_iterations(tmp_path):
    """The run directory of `python -m phosjax.morph` (no bench.json) opens in the viewer."""
    import jax
    import jax.numpy as jnp
    import pandas as pd

    from phosjax.bench._store import write_table
    from phosjax.models import ModelConfig
    from phosjax.morph import ITERATIONS, MorphConfig
    from phosjax.morph._loop import _frame, _output, _row

    config = ModelConfig("mlp", num_classes=3, input_shape=(8,), width=4).resolved()
    variables = config.build().init(jax.random.key(0), jnp.zeros((1, 8)))
    rows = [_row(0, "start", config, variables, 0.5), _row(1, "expanded", config, variables, 0.75)]
    with _output(tmp_path, overwrite=False) as path:  # as `run` writes
        write_table(path, _frame(rows, MorphConfig(config), "digits:1.0.0", None))
    frame = pd.read_parquet(tmp_path / ITERATIONS)
    with serving(tmp_path) as server:
        info = get_json(server, "/api/bench")
        assert info["has_morph"] and info["marker"] is None and info["models"] == []
        assert get_json(server, "/api/cells")["rows"] == []
        table = get_json(server, "/api/morph")["files"]["iterations.parquet"]
        assert table["columns"] == list(frame.columns)
        assert [r["kind"] for r in table["rows"]] == ["start", "expanded"]
        assert [r["widths"] for r in table["rows"]] == ["[4]", "[4]"]
        assert table["attrs"]["resolved_dataset"] == "digits:1.0.0"  # what the run ran
        assert table["attrs"]["morph_config"] == MorphConfig(config).to_dict()
        assert all(
            _same(r[c], want)
            for r, (_, w) in zip(table["rows"], frame.iterrows(), strict=True)
            for c, want in w.items()
        )
        assert get(server, "/")[0] == 200
    runs = tmp_path.parent / f"{tmp_path.name}-runs"  # a folder holding the run as morph/
    runs.mkdir()
    tmp_path.rename(runs / "morph")
    with pytest.raises(NotABenchError, match=r"Benches inside it: morph; pass one: --dir "):
        make_server(runs)


def test_a_morph_rows_nan_accuracy_is_sent_as_nan_not_as_nothing_recorded(tmp_path):
    """A model whose logits are NaN has the accuracy NaN in its row: sent as null, the
    page showed it as ``–``, a value never recorded."""
    import jax
    import jax.numpy as jnp

    from phosjax.bench._store import write_table
    from phosjax.models import ModelConfig
    from phosjax.morph import MorphConfig
    from phosjax.morph._loop import _frame, _output, _row

    config = ModelConfig("mlp", num_classes=3, input_shape=(8,), width=4).resolved()
    variables = config.build().init(jax.random.key(0), jnp.zeros((1, 8)))
    rows = [
        _row(0, "start", config, variables, 0.5),
        _row(1, "regularized", config, variables, math.nan),
    ]
    with _output(tmp_path, overwrite=False) as path:
        write_table(path, _frame(rows, MorphConfig(config), "digits:1.0.0", None))
    with serving(tmp_path) as server:
        table = get_json(server, "/api/morph")["files"]["iterations.parquet"]
    assert [r["accuracy"] for r in table["rows"]] == [0.5, "nan"]
    assert [r["params"] for r in table["rows"]] == [rows[0]["params"]] * 2


def test_a_null_of_a_nullable_morph_column_is_sent_as_null_not_as_nan(tmp_path):
    """A column added with pandas to a morph file holds its missing values as nulls
    (``Float64``'s NA, ``double[pyarrow]``'s null): they were sent as ``"nan"``, a NaN
    measured; a NaN and an infinity of the same column still are sent as measured."""
    written = write_bench(tmp_path / "morphing", blurb_json())
    arrow = pd.Series(pa.array([0.5, None, math.nan, math.inf]), dtype=pd.ArrowDtype(pa.float64()))
    frame = pd.DataFrame(
        {"masked": pd.array([0.5, None, None, 1.0], dtype="Float64"), "arrow": arrow}
    )
    frame["plain"] = [0.5, math.nan, -math.inf, 1.0]
    frame.to_parquet(written.root / _layout.MORPH / "added.parquet")
    pd.DataFrame({"kind": ["start"]}).to_parquet(written.root / _layout.MORPH / "kinds.parquet")
    with serving(written.root) as server:
        files = get_json(server, "/api/morph")["files"]
    assert files["kinds.parquet"]["rows"] == [{"kind": "start"}]  # no float column
    rows = files["added.parquet"]["rows"]
    assert [r["masked"] for r in rows] == [0.5, None, None, 1.0]
    assert [r["arrow"] for r in rows] == [0.5, None, "nan", "inf"]
    assert [r["plain"] for r in rows] == [0.5, "nan", "-inf", 1.0]


def test_columns_of_types_json_lacks_added_to_the_plan_or_morph_are_sent_as_text(tmp_path):
    """Columns a user adds with pandas to the plan or a morph file, of bytes, dates,
    Decimals or durations, failed the whole endpoint (500, ``TypeError: Object of type
    bytes is not JSON serializable``); each value is sent as its text, bytes decoded."""
    written = write_bench(tmp_path / "added", blurb_json())
    added = {
        "raw": b"ab\xff",
        "day": datetime.date(2026, 1, 2),
        "price": decimal.Decimal("1.50"),
        "wait": pd.Timedelta(seconds=3),
    }
    cells = written.cells.assign(**{k: [v] * len(written.cells) for k, v in added.items()})
    cells.to_parquet(written.root / _layout.CELLS)
    pd.DataFrame({"kind": ["start"], "raw": [b"\x00ab"]}).to_parquet(
        written.root / _layout.MORPH / "raw.parquet"
    )
    with serving(written.root) as server:
        rows = get_json(server, "/api/cells")["rows"]
        morph = get_json(server, "/api/morph")["files"]["raw.parquet"]
    sent = {"raw": "ab\\xff", "day": "2026-01-02", "price": "1.50", "wait": "0 days 00:00:03"}
    assert [{k: r["cell"][k] for k in added} for r in rows] == [sent] * len(cells)
    assert morph["rows"] == [{"kind": "start", "raw": "\x00ab"}]


def test_datetimes_in_lists_are_sent_as_iso_8601_as_a_column_of_them_is(tmp_path):
    """A column of lists of datetimes sent '2026-12-08 00:00:00' (str of a datetime), and
    in nanoseconds an int (1796688000000000000), where a column of them sent ISO 8601."""
    written = write_bench(tmp_path / "added", blurb_json())
    when, n = datetime.datetime(2026, 12, 8), len(written.cells)
    added = {"when": [when] * n, "us": [[when]] * n, "ns": [np.array([when], "M8[ns]")] * n}
    written.cells.assign(**added).to_parquet(written.root / _layout.CELLS)
    with serving(written.root) as server:
        rows = get_json(server, "/api/cells")["rows"]
    iso = "2026-12-08T00:00:00"
    assert [{k: r["cell"][k] for k in added} for r in rows] == [
        {"when": iso, "us": [iso], "ns": [iso]}
    ] * n


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped): no process has it now."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _holder(pid: int, host: str | None = None, since: str = "2026-01-01T00:00:00+00:00") -> str:
    host = socket.gethostname() if host is None else host
    return _layout.lock_holder(_layout.LockHolder(pid, host, since)) + "\n"


_NOW = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
"""A run's start in this boot of the machine."""


_Y2K = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC).timestamp()
"""A time before this machine's boot (a file's times, a run's start)."""


def _unfinish(status: dict, key: str) -> None:
    status["groups"][key] |= {"steps_done": 150, "finished": False}


@pytest.mark.parametrize(
    ("lock", "stopped"),
    [
        (lambda: _holder(_dead_pid(), _store.machine()), True),
        (lambda: _holder(_dead_pid()), True),  # an old lock file: its plain host name
        (lambda: _holder(os.getpid(), _store.machine()), False),  # alive: still training
        (lambda: _holder(_dead_pid(), "another-host"), False),  # cannot tell: running
        # a container sharing this host name (pids of its own): cannot tell
        (lambda: _holder(_dead_pid(), f"{socket.gethostname()}#00000000", _NOW), False),
        # this host name's run, begun before the machine booted (its digest was another)
        (lambda: _holder(os.getpid(), f"{socket.gethostname()}#00000000", "2000-01-01"), True),
        # a container of this boot, its start read before the boot (a wall clock set since)
        (lambda: _holder(os.getpid(), f"{_store.machine()[:-8]}00000000", "2000-01-01"), False),
        (lambda: "pid 12 on", False),  # cannot read it: running
        (None, False),  # no lock file (written before there was one): running
    ],
    ids=[
        *["dead pid", "old lock", "live pid", "other host", "other container", "rebooted"],
        *["container, clock set", "garbled", "none"],
    ],
)
def test_an_unfinished_group_whose_run_is_gone_is_stopped(tmp_path, lock, stopped):
    """The lock file names the run that held it last: a pid of this host that no longer
    exists is a run killed before it finished; anything else is not known to be one."""
    written = write_bench(tmp_path / "bench", blurb_json())
    status = json.loads((written.root / _layout.STATUS).read_text())
    _unfinish(status, "g-choice")
    del status["groups"]["g-mlp"]  # not started yet
    (written.root / _layout.STATUS).write_text(json.dumps(status))
    os.utime(written.root / _layout.STATUS, (_Y2K, _Y2K))  # last written before the boot
    if lock is not None:
        (written.root / _layout.LOCK).write_text(lock())
    with serving(written.root) as server:
        groups = get_json(server, "/api/bench")["status"]["groups"]
        rows = get_json(server, "/api/cells")["rows"]
    assert groups["g-choice"].get("stopped", False) is stopped
    want = {"mlp": stopped, "choice": stopped}  # the group not started: nothing will run it
    assert {r["cell"]["model"]: r["progress"]["stopped"] for r in rows} == want
    assert all(not r["progress"]["finished"] for r in rows)


def test_a_run_of_another_machine_of_this_host_name_writing_since_the_boot_is_not_stopped(
    tmp_path,
):
    """A lock of this host name, another boot's digest, taken before this machine booted:
    the run was read as this machine's before its reboot, and shown stopped, even while it
    wrote its status since the boot (another machine given this host name, still training)."""
    written = write_bench(tmp_path / "bench", blurb_json())
    status = json.loads((written.root / _layout.STATUS).read_text())
    _unfinish(status, "g-choice")
    (written.root / _layout.STATUS).write_text(json.dumps(status))
    lock = _holder(_dead_pid(), f"{socket.gethostname()}#00000000", "2000-01-01")
    (written.root / "run.lock").write_text(lock)
    stopped = {}
    for when in ("now", "before the boot"):
        if when != "now":
            os.utime(written.root / _layout.STATUS, (_Y2K, _Y2K))
        with serving(written.root) as server:
            groups = get_json(server, "/api/bench")["status"]["groups"]
        stopped[when] = groups["g-choice"].get("stopped", False)
    assert stopped == {"now": False, "before the boot": True}


def test_each_process_share_goes_by_its_own_lock_and_a_finished_group_stays_finished(tmp_path):
    """Process 0 of 2 was killed, process 1 still trains; a finished share is finished
    whatever its lock says."""
    written = write_bench(tmp_path / "bench", blurb_json())
    groups = json.loads((written.root / _layout.STATUS).read_text())["groups"]
    (written.root / _layout.STATUS).unlink()
    for i in range(2):
        status = {"groups": {f"{g}.p{i}of2": entry for g, entry in groups.items()}}
        _unfinish(status, f"g-choice.p{i}of2")
        (written.root / f"status.p{i}of2.json").write_text(json.dumps(status))
    (written.root / "run.p0of2.lock").write_text(_holder(_dead_pid()))
    (written.root / "run.p1of2.lock").write_text(_holder(os.getpid()))
    with serving(written.root) as server:
        groups = get_json(server, "/api/bench")["status"]["groups"]
    assert {k: g.get("stopped", False) for k, g in groups.items()} == {
        "g-mlp.p0of2": False,  # finished
        "g-choice.p0of2": True,
        "g-mlp.p1of2": False,
        "g-choice.p1of2": False,  # its run is alive
    }
    assert groups["g-mlp.p0of2"]["finished"] and not groups["g-choice.p0of2"]["finished"]


def test_the_lock_file_a_run_writes_names_it(tmp_path):
    """`_directory.locked` writes what the viewer reads (`_layout.read_lock_holder`)."""
    from phosjax.bench import _directory

    with _directory.locked(tmp_path, (0, 1)):
        holder = _layout.read_lock_holder((tmp_path / _layout.LOCK).read_text())
    assert holder is not None
    assert (holder.pid, holder.host) == (os.getpid(), _store.machine())


def test_messages_name_a_lock_s_run_by_its_host_name(tmp_path):
    """Lock files name the run's machine, host name and digest (``vm#1a2b3c4d5e6f7a8b``); the
    busy message and the viewer's stopped one showed the digest, which tells a reader
    nothing: they name the host."""
    from phosjax.bench import _directory

    host = socket.gethostname()
    with _directory.locked(tmp_path, (0, 1)), pytest.raises(_directory.BenchError) as busy:
        _directory.locked(tmp_path, (0, 1)).__enter__()  # a second run's
    assert f"another run (pid {os.getpid()} on {host} since 20" in str(busy.value)
    (tmp_path / _layout.LOCK).write_text(_holder(_dead_pid(), _store.machine()))
    message = not_started(tmp_path) or ""
    assert re.search(
        rf"the run that began it \(pid \d+ on {re.escape(host)} since 20\S+\) stopped", message
    )


def test_help_says_a_morph_run_directory_is_viewed_too(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "--dir DIR the bench directory (runs/NAME; one not started yet is waited for), or the "
        "--dir of a python -m phosjax.morph run" in text
    )


def test_profile_merges_a_groups_segments_and_runs_per_phase(tmp_path):
    """A group trained in two segments, the second by a resumed run: one row per phase,
    seconds and counts summed, a step's seconds weighted by the steps each row measured."""
    root = write_bench(tmp_path / "b", blurb_json()).root
    rows = [
        ("g", "init", 0.5, 1, 0.5, 0, 0),
        ("g", "step", 0.1, 6, 0.6, 0, 6),
        ("g", "compile", 2.0, 2, 2.0, 0, 6),
        ("g", "init", 0.25, 1, 0.25, 6, 6),
        ("g", "step", 0.4, 2, 0.8, 6, 8),
        ("g", "compile", 1.0, 1, 1.0, 6, 8),
        ("h", "step", 0.3, 3, 0.9, 0, 3),
    ]
    columns = ["group_id", "phase", "seconds", "count", "total_s", "start_step", "end_step"]
    pd.DataFrame(rows, columns=columns).to_parquet(root / _layout.PHASES)
    with serving(root) as server:
        phases = get_json(server, "/api/profile")["phases"]
    assert phases["columns"] == columns[:5]
    assert [tuple(r.values()) for r in phases["rows"]] == [
        ("g", "init", 0.75, 2, 0.75),
        ("g", "step", pytest.approx((0.6 + 0.8) / 8), 8, pytest.approx(1.4)),
        ("g", "compile", 3.0, 3, 3.0),
        ("h", "step", 0.3, 3, 0.9),
    ]


@pytest.mark.parametrize("host, local", [("0.0.0.0", "127.0.0.1"), ("::", "[::1]")])
def test_serving_every_interface_prints_addresses_a_browser_opens(
    written, monkeypatch, capsys, host, local
):
    """``--host 0.0.0.0`` printed ``http://0.0.0.0:PORT/``, an address no browser is sure
    to open, and did not say that others could reach the viewer at this machine's name."""
    monkeypatch.setattr(socket, "gethostname", lambda: "gpu-box")
    served = []

    with serving(written.root, host) as server:  # the address printed is answered
        assert server.url == f"http://{local}:{server.server_address[1]}/"
        status, _, _ = get(server, "/api/bench", host=server.url.split("/")[2])
        assert status == 200

    def serve_once(server):
        served.append(server.server_address[1])
        raise KeyboardInterrupt

    monkeypatch.setattr(ViewerServer, "serve_forever", serve_once)
    assert main(["--dir", str(written.root), "--host", host, "--port", "0"]) == 0
    (port,) = served
    assert capsys.readouterr().out == (
        f"Viewing {written.root} at http://{local}:{port}/ (this machine); listening on all "
        f"interfaces, others open http://gpu-box:{port}/  (Ctrl-C stops)\n"
    )


def test_the_version_changes_with_a_file_replaced_within_a_clock_tick(tmp_path):
    """A status rewritten (``os.replace``) with one of the same size within a tick of the
    file system's clock (a few ms on Linux, 2 s on FAT) left the version as it was, and
    the page showed the older status until another file changed (never, the run done);
    the file's inode, new with each replacement, tells them apart."""
    bench = write_bench(tmp_path / "example", blurb_json())
    status = bench.root / _layout.STATUS
    files = BenchFiles(bench.root)
    before = files.versions()
    stat = status.stat()
    written = bench.root / ".status.json.tmp"
    written.write_text(status.read_text().replace("1", "2").replace("0", "1"))
    assert written.stat().st_size == stat.st_size and written.read_text() != status.read_text()
    os.utime(written, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # within the same tick
    os.replace(written, status)
    after = files.versions()
    assert [part for part in after if after[part] != before[part]] == ["bench"]


def test_a_ctrl_c_as_the_address_shows_stops_the_viewer_quietly(written, monkeypatch, capsys):
    """A Ctrl-C that came just after the address was printed, before serving began, ended
    in a KeyboardInterrupt traceback (and the socket left open) where a later one returns."""
    closed = []

    def banner_then_ctrl_c(server):
        print("Viewing ...")
        raise KeyboardInterrupt

    monkeypatch.setattr(ViewerServer, "banner", banner_then_ctrl_c)
    close = ViewerServer.server_close
    monkeypatch.setattr(ViewerServer, "server_close", lambda server: closed.append(close(server)))
    assert main(["--dir", str(written.root), "--port", "0"]) == 0
    assert (capsys.readouterr().out, closed) == ("Viewing ...\n", [None])


def test_a_parts_schema_is_read_once_per_version_of_the_part(tmp_path, monkeypatch):
    """Each read of the bench opened every part file for its schema, the leaderboard
    twice: on a bench of 4,000 parts, 2.7 s of /api/cells' 5.7 s and most of /api/bench's
    1.2 s, which the page asks for again at every change. A part's schema is read once
    per version of the file (a part replaced, or a new one, is read); the results read
    the same."""
    bench = write_bench(tmp_path / "example", blurb_json())
    results = bench.root / _layout.RESULTS
    read = []
    read_schema = pq.read_schema
    monkeypatch.setattr(pq, "read_schema", lambda p: read.append(p.name) or read_schema(p))
    files = BenchFiles(bench.root)
    first = _api.leaderboard(files.snapshot())
    assert sorted(read) == sorted(p.name for p in results.iterdir())
    read.clear()
    assert _api.leaderboard(files.snapshot()) == first and _api.bench_info(files.snapshot())
    assert read == []
    part = results / "part-g-mlp-000000000.parquet"
    table = pq.read_table(part)
    pq.write_table(table.append_column("aux/new", pa.array([1.0] * len(table))), part)
    assert "aux/new" in files.snapshot().metrics()
    assert read == [part.name]


def test_the_parts_of_the_same_columns_share_one_schema_in_memory(tmp_path):
    """The viewer kept each part file's schema, 3.6 kB each (the pandas metadata): 360 MB
    on a bench of 100,000 parts, where a bench's parts share a few. Parts of the same
    columns share one, and a schema no part has any longer is let go."""
    bench = write_bench(tmp_path / "example", blurb_json())
    results = bench.root / _layout.RESULTS
    files = BenchFiles(bench.root)
    files.snapshot().metrics()
    held = lambda: {id(schema) for schema in files._schemas.values()}
    assert len(files._schemas) == len(list(results.iterdir())) == 2 and len(held()) == 1
    part = results / "part-g-mlp-000000000.parquet"
    table = pq.read_table(part)
    pq.write_table(table.append_column("aux/new", pa.array([1.0] * len(table))), part)
    assert "aux/new" in files.snapshot().metrics() and len(held()) == len(files._alike) == 2
    pq.write_table(table, part)  # as it was: the schema of aux/new no part has any longer
    assert "aux/new" not in files.snapshot().metrics()
    assert len(held()) == len(files._alike) == 1


def test_the_columns_of_the_parts_are_unified_once_per_distinct_schema(tmp_path, monkeypatch):
    """Each read of the bench unified the schemas of all its part files, one per part:
    0.37 s of every request on a bench of 100,000 parts of one schema. The parts sharing
    one (`test_the_parts_of_the_same_columns_share_one_schema_in_memory`) unify it once."""
    bench = write_bench(tmp_path / "example", blurb_json())
    unified = []
    unify = pa.unify_schemas
    monkeypatch.setattr(
        pa, "unify_schemas", lambda schemas: unified.append(len(schemas)) or unify(schemas)
    )
    files = BenchFiles(bench.root)
    metrics = files.snapshot().metrics()
    assert (len(list((bench.root / _layout.RESULTS).iterdir())), unified) == (2, [1])
    assert metrics == BenchFiles(bench.root).metrics() and "loss" in metrics


def test_a_part_replaced_while_another_request_reads_the_schemas_is_no_error(tmp_path, monkeypatch):
    """Two requests at once (the page asks for several as the bench changes), one reading
    a new part's schema while the other finds a part replaced meanwhile and forgets its
    version: the first failed with a KeyError (500), the version it had found cached
    gone before it took it. Each request takes the schemas it found."""
    bench = write_bench(tmp_path / "example", blurb_json())
    results = bench.root / _layout.RESULTS
    files = BenchFiles(bench.root)
    first = files.snapshot().metrics()
    mlp, choice = (results / f"part-g-{model}-000000000.parquet" for model in ("mlp", "choice"))

    def replace(part):  # a new file renamed over it: another inode
        table = pq.read_table(part)
        pq.write_table(table, part.with_name(".new"))
        part.with_name(".new").replace(part)

    replace(mlp)
    read_schema = pq.read_schema

    def meanwhile(path):  # as the first request reads the new mlp part, another comes
        monkeypatch.setattr(pq, "read_schema", read_schema)
        replace(choice)
        assert files.snapshot().metrics() == first
        return read_schema(path)

    monkeypatch.setattr(pq, "read_schema", meanwhile)
    assert files.snapshot().metrics() == first


def test_a_read_of_the_leaderboard_looks_at_each_part_once(tmp_path, monkeypatch):
    """Each read of the leaderboard looked up each part file's version twice (its
    columns, then its rows) and resolved its path (a link out of the bench is skipped):
    on 4,000 parts, about a second of /api/cells' three. It looks each up once, and
    resolves a part's path only where the part is a link."""
    bench = write_bench(tmp_path / "example", blurb_json())
    parts = sorted(p.name for p in (bench.root / _layout.RESULTS).iterdir())
    files = BenchFiles(bench.root)
    first = _api.leaderboard(files.snapshot())
    looked, resolved = [], []
    stat, resolve = pathlib.Path.stat, pathlib.Path.resolve

    def stat_part(path, *, follow_symlinks=True):  # not an lstat: whether it is a link
        if follow_symlinks and path.name.startswith("part-"):
            looked.append(path.name)
        return stat(path, follow_symlinks=follow_symlinks)

    def resolve_part(path, strict=False):
        if path.name.startswith("part-"):
            resolved.append(path.name)
        return resolve(path, strict)

    monkeypatch.setattr(pathlib.Path, "stat", stat_part)
    monkeypatch.setattr(pathlib.Path, "resolve", resolve_part)
    assert _api.leaderboard(files.snapshot()) == first
    assert (sorted(looked), resolved) == (parts, [])


def test_the_curves_of_some_cells_read_the_parts_of_their_groups_alone(tmp_path, monkeypatch):
    """The curves of the 80 cells a plot draws read every part file of the bench: 5.1 s
    on one of 4,000 parts (1,000 groups), nearly what every cell's took. They read the
    parts of those cells' groups alone (a part holds its group's rows alone), and send
    what the request for every cell sends of them."""
    bench = write_bench(tmp_path / "example", blurb_json())
    files = BenchFiles(bench.root)
    asked = bench.cells.loc[bench.cells.model == "mlp", "cell_id"].tolist()[:2]
    everything = _api.curves(files, None, ["loss"])["series"]
    read = []
    read_parquets = _bench.read_parquets
    monkeypatch.setattr(
        _bench, "read_parquets", lambda paths, *a: read.append(paths) or read_parquets(paths, *a)
    )
    some = _api.curves(files, asked, ["loss"])["series"]
    assert some == [s for s in everything if s["cell_id"] in asked]
    parts = {pathlib.Path(path).name for paths in read for path in paths}
    assert parts == {"part-g-mlp-000000000.parquet"}


def _spied_reads(monkeypatch):
    """The part files each read of the results reads, by name, as a list per read."""
    read = []
    read_parquets = _bench.read_parquets
    spy = lambda paths, *a: read.append(sorted(p.name for p in paths)) or read_parquets(paths, *a)
    monkeypatch.setattr(_bench, "read_parquets", spy)
    return read


def test_the_curves_of_other_cells_of_a_group_read_nothing_again(tmp_path, monkeypatch):
    """Each request of curves read every row of its cells' groups again to pick their
    steps: 2 s a request on 1,000 cells x 2,000 steps, 14-20 s to the page's first
    plots. A group's thinned series are kept per version of its parts: other cells of it
    read nothing again, a part changed or removed is read again (its group alone), and
    each answer is a new viewer's."""
    bench = write_bench(tmp_path / "example", blurb_json())
    results = bench.root / _layout.RESULTS
    mlp, choice = (bench.cells.loc[bench.cells.model == m, "cell_id"].tolist() for m in MODELS)
    files = BenchFiles(bench.root)
    fresh = lambda cells: _api.curves(BenchFiles(bench.root), cells, ["loss"])
    read = _spied_reads(monkeypatch)
    asked = lambda cells: _api.curves(files.snapshot(), cells, ["loss"])
    mlp_part, choice_part = (f"part-g-{m}-000000000.parquet" for m in MODELS)
    assert asked(mlp[:1]) and read == [[mlp_part]]
    want = fresh(mlp[1:2])
    read.clear()
    assert asked(mlp[1:2]) == want and read == []
    want = fresh([choice[0], mlp[2]])
    read.clear()
    assert asked([choice[0], mlp[2]]) == want and read == [[choice_part]]  # mlp's kept
    before = asked(mlp[1:2])
    part = results / mlp_part
    table = pq.read_table(part)
    twice = pc.multiply(table["loss"], 2.0)
    twice = table.set_column(table.schema.get_field_index("loss"), "loss", twice)
    pq.write_table(twice, part.with_name(".new"))
    part.with_name(".new").replace(part)  # as the runner writes a part: renamed over it
    want = fresh(mlp[1:2])
    read.clear()
    after = asked(mlp[1:2])
    assert read == [[mlp_part]] and after == want != before
    assert after["series"][0]["values"]["loss"][0] == 2 * before["series"][0]["values"]["loss"][0]
    want = fresh(choice[:1])
    part.unlink()
    read.clear()
    assert asked(mlp[1:2])["series"] == [] and asked(choice[:1]) == want
    assert [name for names in read for name in names] == []  # no mlp part; choice's kept


def test_the_curves_kept_of_a_group_follow_its_cells_in_the_plan(tmp_path):
    """The thinned series a group keeps were kept while its parts stayed as they were,
    whatever the plan said: a cell taken out of the group's plan (its rows still in
    the parts) went on shaping the steps of the group's cells (here its spike's). They
    are computed again when the group's cells in the plan change, as a new viewer
    computes them."""
    bench, (ahead, behind) = _bench_of_no_results_and_two_seeds(tmp_path)
    rows = [(cell, step, 1.0 - step * 1e-4) for cell in (ahead, behind) for step in range(1000)]
    results = pd.DataFrame(rows, columns=["cell_id", "step", "loss"]).assign(split="train")
    results.loc[(results.cell_id == behind) & (results.step == 333), "loss"] = 5.0  # a spike
    results.to_parquet(bench.root / _layout.RESULTS / "part-g-mlp-000000000.parquet")
    files = BenchFiles(bench.root)
    steps = lambda files: _api.curves(files.snapshot(), [ahead], ["loss"], 5)["series"][0]["step"]
    assert steps(files) == [0, 250, 333, 500, 749, 999]
    bench.cells[bench.cells.cell_id != behind].to_parquet(bench.root / _layout.CELLS)
    assert steps(files) == steps(BenchFiles(bench.root)) == [0, 250, 500, 749, 999]


def test_the_curves_kept_are_bounded_in_bytes(tmp_path, monkeypatch):
    """What `test_the_curves_of_other_cells_of_a_group_read_nothing_again` keeps is
    bounded: beyond `_bench._PER_GROUP_BYTES`, the least recently used is let go (here
    all of it, and each request reads its group again)."""
    bench = write_bench(tmp_path / "example", blurb_json())
    files = BenchFiles(bench.root)
    cell = bench.cells["cell_id"].iloc[0]
    monkeypatch.setattr(_bench, "_PER_GROUP_BYTES", 1)
    read = _spied_reads(monkeypatch)
    assert _api.curves(files.snapshot(), [cell], ["loss"]) == _api.curves(files, [cell], ["loss"])
    assert len(read) == 2


def test_the_curves_kept_of_a_plan_of_many_groups_list_the_groups_asked_alone(
    tmp_path, monkeypatch
):
    """Each request of curves listed the cells of every group of the plan (each group's
    series are kept per its cells in the plan): a request of two cells, read again, took
    2.6 s on a plan of 20,000 groups (0.1 s now: benchmarks/view_many_groups.py). The cells
    of the groups asked alone are listed."""
    bench = write_bench(tmp_path / "example", blurb_json())
    many = bench.cells.iloc[[0] * 100].assign(
        cell_id=[f"c{i:03d}" for i in range(100)], group_id=[f"g-{i:03d}" for i in range(100)]
    )
    pd.concat([bench.cells, many]).to_parquet(bench.root / _layout.CELLS)
    files, asked = BenchFiles(bench.root), bench.cells["cell_id"].tolist()[:2]
    want = _api.curves(files.snapshot(), asked, ["loss"])
    listed, group_by = [], pd.Index.groupby
    monkeypatch.setattr(
        pd.Index,
        "groupby",
        lambda cells, groups: listed.append(len(cells)) or group_by(cells, groups),
    )
    assert _api.curves(files.snapshot(), asked, ["loss"]) == want
    of_asked = bench.cells.group_id.isin(bench.cells.group_id.iloc[:2])
    assert listed == [int(of_asked.sum())]  # the asked groups' cells, of the plan's 108
    assert want == _api.curves(BenchFiles(bench.root), asked, ["loss"])  # a new viewer's
    assert {s["cell_id"] for s in want["series"]} == set(asked)


def test_a_part_replaced_as_the_curves_read_it_is_read_as_opened(tmp_path, monkeypatch):
    """A part replaced (`add_models` widening it) as the viewer read some cells' curves:
    pyarrow, given its path, opened it twice (its footer as it filtered, then its pages)
    and read the footer of one version with the pages of the next (``OSError: Couldn't
    deserialize thrift``, a 500). Each part is read through one open file, the version
    it opened. The part is replaced right after the first opening of it, whichever reads."""
    bench = write_bench(tmp_path / "example", blurb_json())
    files = BenchFiles(bench.root)
    asked = bench.cells.loc[bench.cells.model == "mlp", "cell_id"].tolist()[:1]
    before = files.results(["loss"], asked)
    part = bench.root / _layout.RESULTS / "part-g-mlp-000000000.parquet"
    table = pq.read_table(part)
    replaced = []

    def replace():  # once, as a run's write does: a new file renamed over it
        if not replaced:
            replaced.append(part)
            new = pa.array([1.0] * len(table))  # a new model's aux loss, among the others
            pq.write_table(table.add_column(1, "aux/new", new), part.with_name(".new"))
            part.with_name(".new").replace(part)

    dataset = pads.dataset  # how the viewer read the parts: by path

    def opened_by_path(paths, **kwargs):
        found = dataset(paths, **kwargs)
        for fragment in found.get_fragments():
            fragment.ensure_complete_metadata()  # its footer read, as pyarrow does to filter
        replace()
        return found

    def opened(path):
        file = pa.OSFile(str(path))
        if path == part:
            replace()
        return file

    monkeypatch.setattr(pads, "dataset", opened_by_path)
    monkeypatch.setattr(_reading, "_opened", opened, raising=False)  # how it reads them now
    pd.testing.assert_frame_equal(files.results(["loss"], asked), before)
    assert replaced == [part]


def test_reads_at_once_hold_few_files_open_together(tmp_path, monkeypatch):
    """Each read of the results held up to 256 part files open, so four requests at once
    over a bench of many parts opened more than the 1,024 files a process may often open
    ('Too many open files', a 500). Reads at once hold at most 256 together: here, with
    2 a read and one read at a time, 2."""
    paths = [tmp_path / f"{n}.parquet" for n in range(4)]
    for n, path in enumerate(paths):
        pq.write_table(pa.table({"step": [n]}), path)
    monkeypatch.setattr(_reading, "_OPEN_AT_ONCE", 2)
    monkeypatch.setattr(_reading, "_READS_AT_ONCE", threading.BoundedSemaphore(1), raising=False)
    lock, open_now, most, read = threading.Lock(), [0], [0], []
    opened = _reading._opened

    @contextlib.contextmanager
    def counted(path):
        with lock:
            open_now[0] += 1
            most[0] = max(most[0], open_now[0])
        time.sleep(0.05)  # the other read opens its files meanwhile
        try:
            with opened(path) as file:
                yield file
        finally:
            with lock:
                open_now[0] -= 1

    monkeypatch.setattr(_reading, "_opened", counted)
    schema = pa.schema([("step", pa.int64())])
    reading = lambda: read.append(_reading.read_parquets(paths, schema, ["step"]))
    threads = [threading.Thread(target=reading) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [table["step"].to_pylist() for table in read] == [[0, 1, 2, 3]] * 2
    assert most[0] == 2


@pytest.mark.parametrize("cells", [None, ["some"]], ids=["every cell", "some cells"])
def test_a_request_reads_the_plan_once(tmp_path, monkeypatch, cells):
    """The curves of a few cells read the plan four times (to check the cells and the
    columns asked, to pick their groups' parts, twice), the leaderboard twice: a read
    of the plan, cells.parquet, is once per request, whose answer then holds the cells
    of one version of the plan."""
    bench = write_bench(tmp_path / "example", blurb_json())
    asked = None if cells is None else bench.cells["cell_id"].tolist()[:2]
    read = []
    read_parquet = pd.read_parquet
    spy = lambda file: read.append(pathlib.Path(file.name).name) or read_parquet(file)
    monkeypatch.setattr(pd, "read_parquet", spy)
    files = BenchFiles(bench.root)
    assert _api.curves(files.snapshot(), asked, ["loss"])["series"]
    assert _api.leaderboard(files.snapshot())["rows"]
    assert read == [_layout.CELLS, _layout.CELLS]


@pytest.mark.parametrize("cells", [None, "some"])
def test_a_request_of_curves_reads_the_results_once(tmp_path, monkeypatch, cells):
    """The curves read the parts of the cells' groups twice, their columns and then the
    steps of every cell of the groups (which shape each group's steps): half the time of
    the request (view_api.py --groups 1000 --segments 4). One read serves both."""
    bench = write_bench(tmp_path / "example", blurb_json())
    asked = None if cells is None else bench.cells["cell_id"].tolist()[:2]
    reads = []
    results = BenchFiles.results
    monkeypatch.setattr(BenchFiles, "results", lambda *a: reads.append(a[1:]) or results(*a))
    series = _api.curves(BenchFiles(bench.root).snapshot(), asked, ["loss"])["series"]
    assert {s["cell_id"] for s in series} == set(asked or bench.cells["cell_id"])
    assert len(reads) == 1


@pytest.mark.parametrize("kind", ["finite", "diverged", "older-bench-null", "frozen"])
def test_the_leaderboard_reads_each_part_once_per_version(tmp_path, monkeypatch, kind):
    """/api/cells read every part file's rows for the last values at each request (2.7 s
    of a bench of 4,000 parts, read again at each change of a running bench). Each part's
    last rows are read once per version of the file: a new or replaced part is read, an
    unchanged one is not; the leaderboard is the one every row read gives, a series
    split over parts (trained in chunks) and a column a later part brings too."""
    options = {"diverge": kind != "finite", "nan_as_null": kind == "older-bench-null"}
    bench = write_bench(tmp_path / "example", blurb_json(), frozen=kind == "frozen", **options)
    results = bench.root / _layout.RESULTS
    later = {}
    for part in sorted(results.iterdir()):  # each group's rows in two chunks of steps
        table = pq.read_table(part)
        early = pc.less(table["step"], DIVERGED_STEP)
        pq.write_table(table.filter(early), part)
        later[part.name.replace("000000000", f"{DIVERGED_STEP:09d}")] = table.filter(
            pc.invert(early)
        )
    earlier = sorted(p.name for p in results.iterdir())
    read = []
    series_ends = _bench._series_ends
    monkeypatch.setattr(
        _bench,
        "_series_ends",
        lambda paths, *rest: (
            read.append(sorted(p.name for p in paths)) or series_ends(paths, *rest)
        ),
    )
    files = BenchFiles(bench.root)

    def uncached():
        snapshot = files.snapshot()
        metrics = snapshot.metrics()
        rows = snapshot.results(metrics)
        steps = rows.groupby("cell_id")["step"].max().to_dict()
        return _api.final_values(rows, metrics), steps, sorted(rows["split"].unique())

    def leaderboard():
        board = _api.leaderboard(files.snapshot())
        final = {row["cell"]["cell_id"]: row["final"] for row in board["rows"]}
        steps = {row["cell"]["cell_id"]: row["progress"]["steps_done"] for row in board["rows"]}
        return final, steps, board["splits"]

    assert leaderboard() == uncached()
    assert read == [earlier]  # in one pass (apart, 4,000 parts took 50 s where 4 s)
    for name, table in later.items():
        if name.startswith("part-g-mlp"):  # brings a column the earlier part has not
            table = table.append_column("aux/new", pa.array([1.0] * len(table)))
        pq.write_table(table, results / name)
    read.clear()
    assert leaderboard() == uncached()
    assert read == [sorted(later)]
    mlp = bench.cells.loc[bench.cells.model == "mlp", "cell_id"].iloc[0]
    assert leaderboard()[0][mlp]["test"]["aux/new"] == 1.0
    read.clear()
    assert leaderboard() == uncached() and read == []


@pytest.mark.parametrize(
    "files", [[_layout.CONFIG], [_layout.CELLS], [_layout.RESULTS], [_layout.STATUS, "notes"]]
)
def test_a_benchs_files_without_its_lock_are_no_bench_starting(tmp_path, files):
    """A config.yaml written by hand, or an empty results/, in a folder without
    bench.json was waited on as a bench starting, forever, while bench.new refuses such
    a folder. A bench takes its lock file (run.lock) before it writes anything there:
    without one, the viewer says what is wrong; with one, it waits for the bench. Its
    cells.parquet is among those (written before bench.json since 0daee5bc)."""
    folder = tmp_path / "bench"
    folder.mkdir()
    for name in files:
        if name == _layout.RESULTS:
            (folder / name).mkdir()
        else:
            (folder / name).write_text("{}")
    with pytest.raises(NotABenchError) as refused:
        make_server(folder, port=0)
    assert str(refused.value) == (
        f"{str(folder)!r} is not a bench: it has no bench.json, and holds {sorted(files)}, "
        "which no bench writes before it holds its run.lock, and there is none: a bench "
        "starts only in a new or empty folder. Make one with `python -m phosjax.bench.new "
        "--config CONFIG.yaml --dir DIR`."
    )
    (folder / _layout.LOCK).write_text("pid 1 on host since 2026-01-01T00:00:00+00:00")
    if "notes" in files:  # no bench writes it, lock or not
        with pytest.raises(NotABenchError, match=r"holds \['notes'\], which no bench writes "):
            not_started(folder)
    else:
        assert not_started(folder) == f"waiting for the bench to start in {str(folder)!r} " + (
            "(no bench.json yet)"
        )


def test_seeds_stopped_at_different_steps_are_compared_at_the_last_step_all_reached(tmp_path):
    """The mean over seeds averaged each seed's last value, one seed stopped at step 150
    (crashed) and the other at 300. The leaderboard's rows of such a configuration hold,
    per split, the last step all its seeds reached and each one's values there, which
    the mean takes; the other configurations' rows hold none."""
    bench = write_bench(tmp_path / "example", blurb_json())
    crashed = bench.cells.iloc[0]
    stop_at(bench, crashed.cell_id, 150)
    files = BenchFiles(bench.root)
    board = _api.leaderboard(files.snapshot())
    alike = (bench.cells.model == crashed.model) & (bench.cells.lr == crashed.lr)
    seeds = bench.cells.loc[alike, "cell_id"].tolist()
    results = files.results(board["metrics"])
    at_150 = _api.final_values(results[results.step <= 150], board["metrics"])
    common = {r["cell"]["cell_id"]: r.get("common") for r in board["rows"]}
    final = {r["cell"]["cell_id"]: r["final"] for r in board["rows"]}
    stops = {seeds[0]: {"150": at_150[seeds[0]]}, seeds[1]: {"150": at_150[seeds[1]]}}
    stops[seeds[1]]["300"] = final[seeds[1]]  # its own last
    want = {
        cell: {
            s: {"step": 150, "final": at_150[cell][s], "at": {k: v[s] for k, v in at.items()}}
            for s in SPLITS
        }
        for cell, at in stops.items()
    }
    assert {cell: common.pop(cell) for cell in seeds} == want
    assert set(common.values()) == {None}
    assert final[seeds[1]] != at_150[seeds[1]]  # its last values: at step 300


def test_hyperparameters_of_lists_or_dicts_are_sent_and_their_seeds_compared(tmp_path):
    """A plan holding a list or a dict hyperparameter (columns added by hand) failed
    /api/cells with 500 (``TypeError: unhashable type: 'dict'``, grouping the cells
    alike but for their seeds); their values are sent, and seeds alike compared."""
    bench = write_bench(tmp_path / "example", blurb_json())
    n = len(bench.cells)
    cells = bench.cells.assign(schedule=[[1, 2]] * n, adam=[{"b1": 0.9}] * n, none=[None] * n)
    cells.to_parquet(bench.root / _layout.CELLS)
    crashed = bench.cells.iloc[0]
    stop_at(bench, crashed.cell_id, 150)
    with serving(bench.root) as server:
        rows = get_json(server, "/api/cells")["rows"]
    sent = [{k: r["cell"][k] for k in ("schedule", "adam", "none")} for r in rows]
    assert sent == [{"schedule": [1, 2], "adam": {"b1": 0.9}, "none": None}] * n
    alike = (bench.cells.model == crashed.model) & (bench.cells.lr == crashed.lr)
    compared = {r["cell"]["cell_id"]: r["common"]["test"]["step"] for r in rows if "common" in r}
    assert compared == dict.fromkeys(bench.cells.loc[alike, "cell_id"], 150)


def test_seeds_a_filter_leaves_are_compared_at_the_last_step_they_all_reached(tmp_path):
    """Three seeds stopped at steps 150, 200 and 300: the leaderboard sent each one's
    values at step 150 alone, the last all three reached, so that the page compared the
    two a filter leaves (200 and 300) at step 150 too, not at 200. Each row of such a
    configuration holds its values at every step one of its seeds stopped at (up to its
    own last): the page takes those at the last step the seeds shown all reached."""
    bench = write_bench(tmp_path / "example", blurb_json(), seeds=(0, 1, 2))
    first = bench.cells.iloc[0]
    alike = (bench.cells.model == first.model) & (bench.cells.lr == first.lr)
    seeds = bench.cells.loc[alike, "cell_id"].tolist()
    stop_at(bench, seeds[0], 150)
    stop_at(bench, seeds[1], 200)
    files = BenchFiles(bench.root)
    board = _api.leaderboard(files.snapshot())
    results = files.results(board["metrics"])
    up_to = {
        step: _api.final_values(results[results.step <= step], board["metrics"])
        for step in (150, 200, 300)
    }
    common = {r["cell"]["cell_id"]: r["common"] for r in board["rows"] if "common" in r}
    assert sorted(common) == sorted(seeds)
    for cell, stops in zip(seeds, ((150,), (150, 200), (150, 200, 300)), strict=True):
        for split in SPLITS:
            want = {str(step): up_to[step][cell][split] for step in stops}
            assert common[cell][split]["at"] == want
            assert common[cell][split]["step"] == 150
            assert common[cell][split]["final"] == up_to[150][cell][split]
    assert up_to[200][seeds[2]] != up_to[150][seeds[2]]


def test_seeds_behind_at_the_end_of_a_part_are_compared_without_reading_the_results(
    tmp_path, monkeypatch
):
    """A bench whose processes train a group's seeds apart has seeds at different steps
    while it runs: /api/cells read every row of the cells ahead at each request, to take
    them at the step the others reached (2.9 s of 4,000 parts where 0.4 s without). A
    seed behind stops where a part ends (at a checkpoint): the parts' last rows, read
    once per version, hold the values there, and nothing more is read."""
    bench = write_bench(tmp_path / "example", blurb_json())
    results = bench.root / _layout.RESULTS
    for part in sorted(results.iterdir()):  # each group's rows in two parts: steps 0-140, 150-
        table = pq.read_table(part)
        early = pc.less(table["step"], 150)
        pq.write_table(table.filter(early), part)
        pq.write_table(
            table.filter(pc.invert(early)), results / part.name.replace("000000000", "000000150")
        )
    behind = bench.cells.iloc[0]
    stop_at(bench, behind.cell_id, 140)  # the first part holds all its rows: none to drop
    later = results / f"part-{behind.group_id}-000000150.parquet"
    table = pq.read_table(later)
    pq.write_table(table.filter(pc.invert(pc.equal(table["cell_id"], behind.cell_id))), later)
    files = BenchFiles(bench.root)
    _api.leaderboard(files.snapshot())  # reads each part's last rows
    opened = []
    read_parquets = _bench.read_parquets
    monkeypatch.setattr(
        _bench, "read_parquets", lambda *a, **k: opened.append(a) or read_parquets(*a, **k)
    )
    board = _api.leaderboard(files.snapshot())
    assert opened == []
    metrics = board["metrics"]
    rows = files.results(metrics)
    at_140 = _api.final_values(rows[rows.step <= 140], metrics)
    alike = (bench.cells.model == behind.model) & (bench.cells.lr == behind.lr)
    common = {r["cell"]["cell_id"]: r.get("common") for r in board["rows"]}
    for cell in bench.cells.cell_id[alike]:
        assert {s: common[cell][s]["final"] for s in SPLITS} == at_140[cell]
        assert {s: common[cell][s]["step"] for s in SPLITS} == dict.fromkeys(SPLITS, 140)


def test_requests_at_once_read_each_part_once(tmp_path, monkeypatch):
    """The page asks for /api/bench and /api/cells at once: a new viewer of a bench of
    4,000 parts read each part's schema in both (the two answered in 5.0 s at best, 3.7
    s now), and two /api/cells at once each read every part's last rows. A request
    waits for those another is reading, and reads none again."""
    bench = write_bench(tmp_path / "example", blurb_json())
    parts = sorted((bench.root / _layout.RESULTS).iterdir())
    schemas, ends = [], []
    read_schema, series_ends = pq.read_schema, _bench._series_ends

    def slowly(log, read):
        def call(first, *rest):
            log.append(first)
            time.sleep(0.1)  # the other request starts meanwhile
            return read(first, *rest)

        return call

    monkeypatch.setattr(pq, "read_schema", slowly(schemas, read_schema))
    monkeypatch.setattr(_bench, "_series_ends", slowly(ends, series_ends))
    files = BenchFiles(bench.root)
    requests = [threading.Thread(target=_api.leaderboard, args=(files.snapshot(),)) for _ in "ab"]
    for request in requests:
        request.start()
    for request in requests:
        request.join()
    assert sorted(schemas) == parts
    assert len(ends) == 1


def test_a_part_damaged_in_its_rows_is_named(tmp_path):
    """A part whose footer is whole but a page of its rows is not (a disk error, a copy
    cut short and patched) failed /api/cells and /api/results with the reader's words
    alone ('OSError: Couldn't deserialize thrift ...'), naming no file. The error names
    the part, as that of a part damaged in its footer does, on one line (pyarrow's words
    spanned three, the hint beginning one of its own: '\n; phosjax writes it whole')."""
    bench = write_bench(tmp_path / "example", blurb_json())
    part = sorted((bench.root / _layout.RESULTS).iterdir())[0]
    data = bytearray(part.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little")
    data[4 : len(data) - 8 - footer] = b"\x55" * (len(data) - 12 - footer)
    part.write_bytes(bytes(data))
    name = f"cannot read results/{part.name}: "
    files = BenchFiles(bench.root)
    with pytest.raises(BrokenFileError, match=re.escape(name)) as board:
        _api.leaderboard(files.snapshot())
    with pytest.raises(BrokenFileError, match=re.escape(name)) as curves:
        _api.curves(files.snapshot(), None, ["loss"])
    assert "\n" not in str(board.value) + str(curves.value)


@pytest.mark.parametrize("text", [pa.string(), pa.large_string()])
def test_parts_holding_a_column_in_types_that_do_not_merge_are_named(tmp_path, text):
    """A part holding a column in another type than the others (written by hand, or by
    another version) failed every request with 'ArrowTypeError: Unable to merge: Field
    step_time_s has incompatible types: double vs string', naming no file. The error
    names the column and two parts that disagree, in the types they hold (a part's
    ``large_string``, which reads as ``string``, was named ``string``); a column null in
    a part merges with any type (aux/balance, before it)."""
    bench = write_bench(tmp_path / "example", blurb_json())
    choice, mlp = sorted((bench.root / _layout.RESULTS).iterdir())
    table = pq.read_table(mlp)
    for name, column in (
        ("aux/balance", pa.nulls(len(table))),
        ("step_time_s", table["step_time_s"].cast(text)),
    ):
        table = table.set_column(table.schema.get_field_index(name), name, column)
    assert table.schema.names.index("aux/balance") < table.schema.names.index("step_time_s")
    pq.write_table(table, mlp)
    with pytest.raises(BrokenFileError) as refused:
        BenchFiles(bench.root).metrics()
    assert str(refused.value).startswith(
        f"cannot read the results: column 'step_time_s' is double in results/{choice.name} "
        f"but {text} in results/{mlp.name}; "
    )


def test_parts_whose_types_do_not_merge_are_named_past_one_holding_the_column_null(tmp_path):
    """A column double in one part, null in a second (it merges) and text in a third was
    said to be double in the second part, which holds it null; the error names the part
    that holds it double."""
    bench = write_bench(tmp_path / "example", blurb_json())
    choice, mlp = sorted((bench.root / _layout.RESULTS).iterdir())
    table = pq.read_table(mlp)
    at = table.schema.get_field_index("step_time_s")
    pq.write_table(table.set_column(at, "step_time_s", pa.nulls(len(table))), mlp)
    text = mlp.with_name(mlp.name.replace("000000000", "000000999"))
    pq.write_table(table.set_column(at, "step_time_s", table[at].cast(pa.string())), text)
    with pytest.raises(BrokenFileError) as refused:
        BenchFiles(bench.root).metrics()
    assert str(refused.value).startswith(
        f"cannot read the results: column 'step_time_s' is double in results/{choice.name} "
        f"but string in results/{text.name}; "
    )


def test_a_plan_lacking_a_cell_column_is_named(tmp_path):
    """A cells.parquet lacking group_id (written by hand) failed /api/results with
    'KeyError: group_id' (and /api/bench and /api/cells answered as if whole). Every
    request says the plan lacks it."""
    written = write_bench(tmp_path / "example", blurb_json())
    written.cells.drop(columns="group_id").to_parquet(written.root / _layout.CELLS)
    want = "cannot read cells.parquet: it lacks the columns ['group_id'] of every bench's plan"
    with serving(written.root) as server:
        for path in ("/api/bench", "/api/cells", "/api/results?columns=loss"):
            status, _, body = get(server, path)
            assert (status, json.loads(body)["error"][: len(want)]) == (500, want), path


def test_a_plan_holding_a_cell_twice_is_named(tmp_path):
    """A cells.parquet holding a cell twice (written by hand) failed /api/results with
    'InvalidIndexError: Reindexing only valid with uniquely valued Index objects', naming
    no file, while /api/cells showed the cell twice. Every request names the plan and the
    cell."""
    written = write_bench(tmp_path / "example", blurb_json())
    twice = pd.concat([written.cells, written.cells.iloc[[2]]], ignore_index=True)
    twice.to_parquet(written.root / _layout.CELLS)
    cell_id = written.cells.cell_id[2]
    want = f"cannot read cells.parquet: it holds the cell ids ['{cell_id}'] more than once"
    with serving(written.root) as server:
        for path in ("/api/bench", "/api/cells", "/api/results?columns=loss"):
            status, _, body = get(server, path)
            assert (status, json.loads(body)["error"][: len(want)]) == (500, want), path


@pytest.mark.parametrize(
    ("text", "wrong"),
    [
        ('{"pool": "max"', "are no JSON (Expecting ',' delimiter: line 1 column 15 (char 14))"),
        ('["max"]', "hold a list, not the JSON object phosjax writes"),
    ],
)
def test_a_plan_holding_options_that_are_no_json_object_is_named(tmp_path, text, wrong):
    """A cell's options edited by hand into no JSON object failed the leaderboard with
    ``JSONDecodeError: Expecting ',' delimiter: ...`` or ``AttributeError: 'list' object
    has no attribute 'get'``, naming neither the file nor the cell."""
    written = write_bench(tmp_path / "edited", blurb_json())
    options = [text, *['{"pool": "mean"}'] * (len(written.cells) - 1)]
    written.cells.assign(options=options).to_parquet(written.root / _layout.CELLS)
    with serving(written.root) as server:
        status, _, body = get(server, "/api/cells")
    cell_id = written.cells.cell_id[0]
    assert (status, json.loads(body)["error"]) == (
        500,
        f"cannot read cells.parquet: the options of cell {cell_id!r} {wrong}; "
        f"{_reading.hint(_layout.CELLS)}",
    )


def test_a_plan_giving_a_cell_no_group_is_named_by_the_curves_of_that_cell(tmp_path):
    """A cells.parquet giving a cell a null group_id (written by hand) failed the curves
    asked of that cell with 'KeyError: nan', naming nothing. They name the plan and the
    cell; the leaderboard and the curves of every cell, which need no group, answer."""
    written = write_bench(tmp_path / "example", blurb_json())
    cells = written.cells.assign(group_id=written.cells.group_id.where(written.cells.index != 2))
    cells.to_parquet(written.root / _layout.CELLS)
    ungrouped, other = written.cells.cell_id[2], written.cells.cell_id[5]
    want = f"cannot read cells.parquet: it gives the cells ['{ungrouped}'] no group_id (every"
    with serving(written.root) as server:
        for asked in (ungrouped, f"{other},{ungrouped}"):
            status, _, body = get(server, f"/api/results?columns=loss&cells={asked}")
            assert (status, json.loads(body)["error"][: len(want)]) == (500, want), asked
        assert len(get_json(server, "/api/cells")["rows"]) == len(written.cells)
        every = get_json(server, "/api/results?columns=loss")["series"]
        assert [s["split"] for s in every if s["cell_id"] == ungrouped] == ["test", "train"]


@pytest.mark.parametrize("lacking", ["cell_id", "step", "split"])
def test_a_part_whose_rows_lack_a_key_is_named(tmp_path, lacking):
    """A part file written by hand without ``split`` (or ``cell_id``) failed /api/cells
    with "ArrowInvalid: Needed to copy 1 chunks with 248 nulls" and /api/results with
    "zip() argument 2 is shorter than argument 1"; one without ``step`` was read as if
    whole. Every request names the part and the column."""
    written = write_bench(tmp_path / "example", blurb_json())
    part = written.root / _layout.RESULTS / "part-g-choice-000000000.parquet"
    pd.read_parquet(part).drop(columns=lacking).to_parquet(part, index=False)
    want = f"cannot read results/{part.name}: its rows have no {lacking} (every part of the"
    with serving(written.root) as server:
        for path in ("/api/bench", "/api/cells", "/api/results?columns=loss"):
            status, _, body = get(server, path)
            assert (status, json.loads(body)["error"][: len(want)]) == (500, want), path


@pytest.mark.parametrize("key", ["cell_id", "step", "split"])
def test_a_part_with_a_row_lacking_a_key_is_named(tmp_path, key):
    """A part file edited by hand, one row's ``split`` (or ``cell_id``) null, failed
    /api/cells with 'ArrowInvalid: Needed to copy 1 chunks with 1 nulls, but
    zero_copy_only was True', naming no file; a null ``step`` was read as if whole."""
    written = write_bench(tmp_path / "example", blurb_json())
    part = written.root / _layout.RESULTS / "part-g-choice-000000000.parquet"
    rows = pq.read_table(part)
    column = rows[key].to_pylist()
    rows = rows.set_column(rows.schema.get_field_index(key), key, pa.array([None, *column[1:]]))
    pq.write_table(rows, part)
    want = f"cannot read results/{part.name}: 1 of its rows have no {key} (every part of the"
    with serving(written.root) as server:
        for path in ("/api/cells", "/api/results?columns=loss"):
            status, _, body = get(server, path)
            assert (status, json.loads(body)["error"][: len(want)]) == (500, want), path


def test_rows_lacking_a_key_in_two_parts_are_counted_in_the_part_named(tmp_path):
    """A null ``cell_id`` in one row of a part and two of another said '3 of its rows'
    of the part it named, counting the rows of both."""
    written = write_bench(tmp_path / "example", blurb_json())
    counts = {"g-choice": 1, "g-mlp": 2}
    for group, count in counts.items():
        part = written.root / _layout.RESULTS / f"part-{group}-000000000.parquet"
        rows = pq.read_table(part)
        column = [None] * count + rows["cell_id"].to_pylist()[count:]
        index = rows.schema.get_field_index("cell_id")
        pq.write_table(rows.set_column(index, "cell_id", pa.array(column, pa.string())), part)
    said = [f"results/part-{g}-000000000.parquet: {n} of its rows " for g, n in counts.items()]
    with serving(written.root) as server:
        for path in ("/api/cells", "/api/results?columns=loss"):
            status, _, body = get(server, path)
            error = json.loads(body)["error"]
            assert status == 500 and any(error.startswith(f"cannot read {s}") for s in said)


def test_a_part_rewritten_with_pandas_is_read_with_the_others(tmp_path):
    """phosjax writes text columns as ``string``, pandas 3 as ``large_string``: a part
    rewritten with pandas (rows dropped by hand) failed every request with "column
    'cell_id' is large_string in results/... but string in results/...", the same text;
    its rows are read with the others'."""
    written = write_bench(tmp_path / "example", blurb_json())  # text as large_string
    part = written.root / _layout.RESULTS / "part-g-mlp-000000000.parquet"
    table = pq.read_table(part)
    as_string = [
        f.with_type(pa.string()) if pa.types.is_large_string(f.type) else f for f in table.schema
    ]
    pq.write_table(table.cast(pa.schema(as_string, table.schema.metadata)), part)  # as phosjax
    with serving(written.root) as server:
        rows = get_json(server, "/api/cells")["rows"]
        series = get_json(server, "/api/results?columns=loss")["series"]
    assert {r["progress"]["steps_done"] for r in rows} == {max(STEPS)}
    assert len(series) == len(written.cells) * len(SPLITS)


@pytest.mark.parametrize(
    ("format_", "why"),
    [
        (99, "A newer phosjax wrote it: upgrade phosjax to read it."),
        ("1", 'phosjax writes bench.json with "format": 1, so something else changed it;'),
        (None, 'phosjax writes bench.json with "format": 1, so something else changed it;'),
    ],
)
def test_a_bench_of_another_format_is_said_to_be_so(tmp_path, format_, why):
    """A bench.json of ``"format": 99`` (a newer phosjax's), which the runner refuses,
    was shown as any bench, with no word that it may be read wrong; /api/bench says so,
    and what to do, and nothing for this phosjax's format."""
    written = write_bench(tmp_path / "example", blurb_json())
    with serving(written.root) as server:
        assert get_json(server, "/api/bench")["format_error"] is None
    marker = json.loads((written.root / _layout.MARKER).read_text())
    (written.root / _layout.MARKER).write_text(json.dumps(marker | {"format": format_}))
    with serving(written.root) as server:
        error = get_json(server, "/api/bench")["format_error"]
    assert error.startswith(
        f"bench.json holds a bench of format {format_!r}; this phosjax reads format 1, so what "
        "the page shows of it may be wrong. "
    )
    assert why in error
