"""A bench whose cells diverge by an overflow of their optimizer state, with a finite
loss and gradient: frozen before that step, they report finite metrics from then on, and
the results, the leaderboard and the viewer say they diverged."""

import dataclasses
import json
import pathlib

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from phosjax.bench import _layout, leaderboard, plan, run
from phosjax.bench._summary import summary_text
from phosjax.train import train_grid
from tests.bench._viewer_fixtures import get_json, serving
from tests.bench.runner_tiny import killed_after_save, tiny_config, toy_data

KEYS = ["cell_id", "step", "split"]

CONFIG = tiny_config(
    models=[{"name": "logreg"}],
    grid={"steps": 12, "batch_size": 16, "optimizer": ["adam", "sgd"], "learning_rate": 1e-30},
)
"""Two seeds of Adam, whose second moment the huge example overflows (the squared
gradient): those cells diverge in the first epoch; two of SGD, which it does not."""


@pytest.fixture(scope="module")
def data():
    toy = toy_data()
    x_train = toy.x_train.copy()
    x_train[5] = -1e22  # its loss and gradient norm stay finite
    return {"toy": dataclasses.replace(toy, x_train=x_train)}


@pytest.fixture(scope="module")
def bench(tmp_path_factory, data) -> tuple[pathlib.Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("bench") / "b"
    return root, run(CONFIG, root, datasets=data, progress=False)


def test_rows_say_from_which_step_a_cell_had_diverged_as_the_engine_does(bench, data):
    root, _ = bench
    results = pd.read_parquet(root / _layout.RESULTS)
    assert results.dtypes[_layout.DIVERGED] == np.bool_
    cells = plan(CONFIG, data).cells
    engine = train_grid([c.cell for c in cells], datasets=data, strategy="vmap").final
    diverged_at = dict(zip([c.row["cell_id"] for c in cells], engine.diverged_at, strict=True))
    adam = {c.row["cell_id"] for c in cells if c.cell.hparams.optimizer == "adam"}
    assert {c for c, at in diverged_at.items() if at >= 0} == adam
    assert all(1 <= diverged_at[c] <= 4 for c in adam)  # the example's batch: first epoch
    at = results.cell_id.map(diverged_at)
    expected = ((at >= 0) & (at <= results.step)).tolist()
    assert results[_layout.DIVERGED].tolist() == expected
    frozen = results[results.cell_id.isin(adam) & results.diverged]
    assert np.isfinite(frozen[["loss", "accuracy"]]).all().all()  # no NaN tells of it


def test_the_leaderboard_counts_diverged_seeds_and_their_mean_is_nan(bench):
    root, results = bench
    board = leaderboard(results, ["optimizer"]).set_index("optimizer")
    assert board["diverged"].to_dict() == {"sgd": 0, "adam": 2}
    assert board.loc["adam", ["accuracy", "loss"]].isna().all()
    assert np.isfinite(board.loc["sgd", ["accuracy", "loss"]].astype(float)).all()
    assert board.index.tolist() == ["sgd", "adam"]  # a NaN sorts last
    text = summary_text(str(root), results, ["optimizer"])
    assert "diverged (2/2)" in text and "nan ± nan" not in text


def test_the_viewer_sends_a_frozen_cells_values_as_diverged(bench):
    """From the step it diverged at on, a cell's recorded values are sent as
    ``"diverged"`` (the page reads them as NaN: ``diverged (k/n)``, a broken curve); a
    value never recorded stays None."""
    root, results = bench
    with serving(root) as server:
        board = get_json(server, "/api/cells")["rows"]
        sent = get_json(server, "/api/results?columns=loss,grad_norm&max_points=100")["series"]
    flagged = results.set_index(KEYS)[_layout.DIVERGED]
    adam = {row["cell"]["cell_id"] for row in board if row["cell"]["optimizer"] == "adam"}
    assert len(adam) == 2
    for row in board:
        final = row["final"]
        values = [final[split][m] for split in ("train", "test") for m in ("loss", "accuracy")]
        if row["cell"]["cell_id"] in adam:
            assert values == ["diverged"] * 4 and final["test"]["grad_norm"] is None
        else:
            assert all(isinstance(v, float) for v in values)
    assert {s["cell_id"] for s in sent} == set(results.cell_id) and len(sent) == 8
    for series in sent:
        keys = [(series["cell_id"], step, series["split"]) for step in series["step"]]
        expected = flagged.loc[keys].tolist()
        assert [v == "diverged" for v in series["values"]["loss"]] == expected
        assert any(expected) == (series["cell_id"] in adam)


def test_a_bench_written_before_the_column_gains_it_null_when_continued(tmp_path, data, bench):
    """Parts of an older phosjax lack ``diverged``: continuing the bench rewrites them
    with it, null (not recorded), their rows kept; the rows trained then have it."""
    with killed_after_save(6):
        run(CONFIG, tmp_path, datasets=data, progress=False)
    for path in _layout.part_files(tmp_path / _layout.RESULTS):
        pq.write_table(pq.read_table(path).drop_columns([_layout.DIVERGED]), path)
    old = pd.read_parquet(tmp_path / _layout.RESULTS).set_index(KEYS).sort_index()
    run(CONFIG, tmp_path, datasets=data, progress=False)
    results = pd.read_parquet(tmp_path / _layout.RESULTS).set_index(KEYS).sort_index()
    before = results.index.isin(old.index)
    assert 0 < before.sum() < len(results)
    assert results[before].diverged.isna().all() and results[~before].diverged.notna().all()
    pd.testing.assert_frame_equal(results[before].drop(columns=[_layout.DIVERGED]), old)
    expected = bench[1].set_index(KEYS).sort_index().diverged
    assert results[~before].diverged.tolist() == expected[~before].tolist()
    board = leaderboard(results.reset_index(), ["optimizer"]).set_index("optimizer")
    assert board["diverged"].to_dict() == {"sgd": 0, "adam": 2}  # the rows trained since


def _diverged_by_group(root: pathlib.Path) -> dict[str, int]:
    return {
        k: g["diverged"]
        for k, g in json.loads((root / _layout.STATUS).read_text())["groups"].items()
    }


def test_the_status_counts_each_groups_diverged_cells_and_the_bar_shows_them(
    tmp_path, data, bench, capsys
):
    """status.json counts each group's diverged cells as of the last chunk it trained, not
    only once a checkpoint is saved (a resumed group's from the state it restored), and
    the progress bar of a run says how many diverged."""
    cells = pd.read_parquet(bench[0] / _layout.CELLS)
    expected = (cells.optimizer == "adam").groupby(cells.group_id).sum().to_dict()
    assert _diverged_by_group(bench[0]) == expected and sum(expected.values()) == 2
    with killed_after_save(6):  # after the adam cells diverged, before the status says step 6
        run(CONFIG, tmp_path, datasets=data, progress=False)
    [(key, group)] = json.loads((tmp_path / _layout.STATUS).read_text())["groups"].items()
    assert (group["steps_done"], group["diverged"], expected[key]) == (0, 2, 2)  # adam's
    capsys.readouterr()
    run(CONFIG, tmp_path, datasets=data, progress=True)
    assert _diverged_by_group(tmp_path) == expected
    assert "cells 4/4, 2 diverged" in capsys.readouterr().err
