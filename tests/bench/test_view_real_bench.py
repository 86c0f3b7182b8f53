"""The viewer and the exporter on a real (tiny) bench trained by `phosjax.bench.run`."""

import json

import numpy as np
import pandas as pd
import pytest

from phosjax.bench import _layout
from tests.bench._viewer_fixtures import get_json, serving


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
