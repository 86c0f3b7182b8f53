"""phosjax.bench: train a grid of models x data sets x hparams x seeds, resumably.

``python -m phosjax.bench.new --config configs/example.yaml --dir runs/example`` plans
the grid, trains it with `phosjax.train`, and writes tidy Parquet results, checkpoints,
blurbs and a profile under ``--dir`` (see `phosjax.bench._layout` and docs/results.md).
"""

from phosjax.bench._config import BenchConfig, BenchError, Grid, ModelEntry, load_config
from phosjax.bench._plan import Plan, PlannedCell, PlannedGroup, plan
from phosjax.bench._runner import add_models, run
from phosjax.bench._summary import leaderboard

__all__ = [
    "BenchConfig",
    "BenchError",
    "Grid",
    "ModelEntry",
    "Plan",
    "PlannedCell",
    "PlannedGroup",
    "add_models",
    "leaderboard",
    "load_config",
    "plan",
    "run",
]
