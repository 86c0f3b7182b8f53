"""The MorphNet loop end to end on a tiny config (a smoke test of `run` and the CLI)."""

import json

import pandas as pd
import pytest

from phosjax.morph import MorphConfig, config_cost
from phosjax.morph.__main__ import main


@pytest.mark.slow
def test_the_cli_writes_one_row_per_stage_and_iteration(tmp_path, data_dir, capsys):
    config = tmp_path / "morph.yaml"
    config.write_text(
        "model: {name: cnn1d, num_classes: 10, input_shape: [40], depth: 1, width: [16, 16]}\n"
        f"dataset: mnist1d\ndata_dir: {data_dir}\niterations: 1\nsteps: 30\nthreshold: 0.3\n"
    )
    main(["--config", str(config), "--dir", str(tmp_path / "run")])
    rows = pd.read_parquet(tmp_path / "run" / "morph" / "iterations.parquet")
    assert rows["kind"].tolist() == ["start", "regularized", "shrunk", "expanded"]
    assert rows["iteration"].tolist() == [0, 1, 1, 1]
    budget = rows["flops"][0]
    assert rows["flops"][3] <= budget and rows["flops"][2] <= budget
    assert ((rows["accuracy"] >= 0) & (rows["accuracy"] <= 1)).all()
    assert (rows["latency_s"] > 0).all()
    expanded = MorphConfig.from_dict({"model": json.loads(rows["config"][3])}).model
    assert config_cost(expanded, "flops") == rows["flops"][3]
    assert "expanded" in capsys.readouterr().out
