"""The viewer and the exporter on a real (tiny) bench trained by `phosjax.bench.run`."""

import json

import numpy as np
import pandas as pd
import pytest

from phosjax.bench import _layout
from phosjax.bench._summary import per_group_and_phase
from tests.bench._viewer_fixtures import get_json, serving
from tests.bench.runner_tiny import tiny_config


@pytest.mark.slow
def test_viewer_serves_a_real_bench(tmp_path, data_dir):
    from phosjax.bench import BenchConfig, run

    tiny = {
        "models": ["mlp"],
        "grid": {"steps": 20},
        "seeds": 2,
        "eval_every": 10,
        "strategy": "vmap",
    }
    config = BenchConfig.from_dict({**tiny, "data_dir": data_dir})
    root = tmp_path / "bench"
    run(config, root, progress=False)
    results = pd.read_parquet(root / _layout.RESULTS)
    cells = pd.read_parquet(root / _layout.CELLS)
    with serving(root) as server:
        board = get_json(server, "/api/cells")
        assert [row["cell"]["cell_id"] for row in board["rows"]] == cells["cell_id"].tolist()
        last = results.sort_values("step").groupby(["cell_id", "split"]).tail(1)
        for row in board["rows"]:
            assert row["progress"]["finished"]
            for split, values in row["final"].items():
                want = last[(last.cell_id == row["cell"]["cell_id"]) & (last.split == split)]
                assert values["loss"] == pytest.approx(want["loss"].item(), rel=1e-6)
        curves = get_json(server, "/api/results?columns=accuracy")
        assert len(curves["series"]) == len(cells) * results["split"].nunique()
        for series in curves["series"]:
            rows = results[
                (results.cell_id == series["cell_id"]) & (results.split == series["split"])
            ].sort_values("step")
            assert series["step"] == rows["step"].tolist()
            np.testing.assert_allclose(series["values"]["accuracy"], rows["accuracy"], rtol=1e-6)
        for model_id in cells["model_id"].unique():
            blurb = json.loads((root / _layout.BLURBS / f"{model_id}.json").read_text())
            assert get_json(server, f"/api/blurb/{model_id}") == blurb
        profile = get_json(server, "/api/profile")
        assert len(profile["phases"]["rows"]) == len(pd.read_parquet(root / _layout.PHASES))


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory, toy):
    """A bench two processes shared: each wrote its own status, parts and profile files."""
    from phosjax.bench import run

    root = tmp_path_factory.mktemp("shared") / "bench"
    for index in (0, 1):
        run(tiny_config(), root, datasets=toy, process=(index, 2), progress=False)
    assert not (root / _layout.STATUS).exists() and not (root / _layout.PHASES).exists()
    return root


@pytest.mark.slow
def test_viewer_merges_the_files_of_each_process(two_processes):
    root = two_processes
    cells = pd.read_parquet(root / _layout.CELLS)
    phases = [pd.read_parquet(p) for p in sorted((root / _layout.PROFILE).glob("phases.p*"))]
    with serving(root) as server:
        info = get_json(server, "/api/bench")
        assert sorted(info["status"]["groups"]) == sorted(
            f"{group}.p{index}of2" for group in cells["group_id"].unique() for index in (0, 1)
        )
        assert info["has_profile"]
        board = get_json(server, "/api/cells")
        assert [row["cell"]["cell_id"] for row in board["rows"]] == cells["cell_id"].tolist()
        for row in board["rows"]:
            assert row["progress"] == {
                "steps_done": 12,
                "steps": 12,
                "finished": True,
                "stopped": False,
            }
        profile = get_json(server, "/api/profile")
        keys = ["group_id", "phase", "seconds"]
        got = [[row[k] for k in keys] for row in profile["phases"]["rows"]]
        merged = per_group_and_phase(pd.concat(phases, ignore_index=True))  # each process's
        assert got == merged[keys].to_numpy().tolist()
        assert {row["group_id"].split(".")[-1] for row in profile["phases"]["rows"]} == {
            "p0of2",
            "p1of2",
        }
        assert len(profile["memory"]["rows"]) > 0


@pytest.mark.slow
def test_exporter_exports_every_cell_of_each_process(two_processes, tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="the mlflow extra (mlflow-skinny) is not installed")
    from phosjax.bench.export import export_mlflow

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    exported = export_mlflow(str(two_processes), f"file:{tmp_path / 'mlruns'}")
    cells = pd.read_parquet(two_processes / _layout.CELLS)
    assert sorted(exported.runs) == sorted(cells["cell_id"]) and exported.unfinished == []
