"""`leaderboard`: each cell's last test evaluation, aggregated over seeds per hparam row."""

import numpy as np
import pandas as pd
import pytest

from phosjax.bench import leaderboard


def test_leaderboard_uses_each_cells_last_test_step_per_learning_rate():
    # 2 learning rates x 2 seeds = 4 cells, each evaluated on test at steps 5 and 10
    # (listed out of order) plus train rows that must be ignored.
    last = {  # (lr, seed): (accuracy, loss) at step 10
        (0.1, 0): (0.80, 0.50),
        (0.1, 1): (0.90, 0.30),
        (0.01, 0): (0.40, 1.20),
        (0.01, 1): (0.60, 1.00),
    }
    rows = []
    for (lr, seed), (acc, loss) in last.items():
        cell = f"lr{lr}-s{seed}"
        common = {"cell_id": cell, "model": "mlp", "dataset": "d", "learning_rate": lr}
        common |= {"batch_size": 16, "seed": seed}
        rows.append({**common, "step": 10, "split": "test", "accuracy": acc, "loss": loss})
        # an earlier, better-looking evaluation: must not be used
        rows.append({**common, "step": 5, "split": "test", "accuracy": 0.99, "loss": 0.01})
        rows.append({**common, "step": 10, "split": "train", "accuracy": 0.0, "loss": 9.0})
    results = pd.DataFrame(rows)

    board = leaderboard(results, ["learning_rate", "batch_size"])

    # batch_size does not vary within the model, so it is no key.
    assert list(board.columns) == [
        "model",
        "dataset",
        "learning_rate",
        "accuracy",
        "accuracy_std",
        "loss",
        "seeds",
    ]
    assert len(board) == 2  # one row per learning rate, best first
    assert list(board["learning_rate"]) == [0.1, 0.01]
    assert list(board["model"]) == ["mlp", "mlp"]
    assert list(board["dataset"]) == ["d", "d"]
    assert list(board["seeds"]) == [2, 2]
    for row, lr in zip(board.itertuples(), [0.1, 0.01], strict=True):
        accs = np.array([last[(lr, s)][0] for s in (0, 1)])
        losses = np.array([last[(lr, s)][1] for s in (0, 1)])
        assert row.accuracy == pytest.approx(accs.mean(), abs=1e-12)
        assert row.accuracy_std == pytest.approx(accs.std(ddof=1), abs=1e-12)  # sample std
        assert row.loss == pytest.approx(losses.mean(), abs=1e-12)
    assert board["accuracy"].tolist() == pytest.approx([0.85, 0.5])
    assert board["accuracy_std"].tolist() == pytest.approx([0.0707106781, 0.1414213562])
    assert board["loss"].tolist() == pytest.approx([0.4, 1.1])


def test_leaderboard_without_test_rows_is_empty():
    results = pd.DataFrame(
        {"cell_id": ["a"], "model": ["mlp"], "dataset": ["d"], "step": [1], "split": ["train"]}
        | {"accuracy": [0.5], "loss": [1.0]}
    )
    assert leaderboard(results, ["learning_rate"]).empty
