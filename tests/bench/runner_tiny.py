"""Tiny data and bench configs for the runner tests."""

import numpy as np

from phosjax.bench import BenchConfig
from phosjax.data import ArrayDataset


def toy_data() -> ArrayDataset:
    """Three classes from the signs of two of eight gaussian features."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 8)).astype(np.float32)
    y = ((x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0)).astype(np.int32)
    return ArrayDataset("toy", x[:64], y[:64], x[64:], y[64:], 3, (8,))


def tiny_config(**changes: object) -> BenchConfig:
    """mlp (width 8) and choicenet (width 8) x 2 seeds, 12 steps, on ``toy``."""
    data = {
        "models": [{"name": "mlp", "width": 8}, {"name": "choicenet", "width": 8, "depth": 1}],
        "datasets": ["toy"],
        "grid": {"steps": 12, "batch_size": 16, "learning_rate": 0.01},
        "seeds": 2,
        "eval_every": 6,
        "checkpoint_every": 6,
        "strategy": "vmap",
        **changes,
    }
    return BenchConfig.from_dict(data)
