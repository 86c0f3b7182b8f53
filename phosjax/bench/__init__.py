"""phosjax.bench: train a grid of models x data sets x hparams x seeds, resumably.

``python -m phosjax.bench.new --config configs/example.yaml --dir runs/example`` plans
the grid, trains it with `phosjax.train`, and writes tidy Parquet results, checkpoints,
blurbs and a profile under ``--dir`` (see `phosjax.bench._layout` and docs/results.md).
Its names load on first use, so the viewer (``phosjax.bench.view``) starts without jax.
From Python, `run` plans and trains a config into a folder, `plan` plans it alone: a `Plan`
of `PlannedGroup` values, each of `PlannedCell` values. `load_config` reads a
`BenchConfig` (its models `ModelEntry` values, its grid a `Grid`) from YAML; bad input is
a `BenchError`, whose message says what is right.

Example:
  >>> from phosjax.bench import BenchConfig, plan
  >>> from phosjax.data import random_dataset
  >>> config = BenchConfig.from_dict({"models": ["mlp"], "datasets": ["toy"], "seeds": 2,
  ...                                 "grid": {"batch_size": 16}})
  >>> plan(config, datasets={"toy": random_dataset("toy", (8,), 3)})
  Plan(2 cells in 1 group ['mlp-...'] on ['toy'])
"""

from typing import TYPE_CHECKING

from phosjax._lazy import lazy_exports

_EXPORTS = {
    "BenchConfig": "phosjax.bench._config",
    "BenchError": "phosjax.bench._errors",
    "Grid": "phosjax.bench._config",
    "ModelEntry": "phosjax.bench._config",
    "load_config": "phosjax.bench._config",
    "Plan": "phosjax.bench._plan",
    "PlannedCell": "phosjax.bench._plan",
    "PlannedGroup": "phosjax.bench._plan",
    "plan": "phosjax.bench._plan",
    "add_models_to": "phosjax.bench._runner",
    "run": "phosjax.bench._runner",
    "leaderboard": "phosjax.bench._summary",
}

__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)

if TYPE_CHECKING:  # the same names, for type checkers and IDEs (a test keeps them in step)
    from phosjax.bench._config import BenchConfig as BenchConfig
    from phosjax.bench._config import Grid as Grid
    from phosjax.bench._config import ModelEntry as ModelEntry
    from phosjax.bench._config import load_config as load_config
    from phosjax.bench._errors import BenchError as BenchError
    from phosjax.bench._plan import Plan as Plan
    from phosjax.bench._plan import PlannedCell as PlannedCell
    from phosjax.bench._plan import PlannedGroup as PlannedGroup
    from phosjax.bench._plan import plan as plan
    from phosjax.bench._runner import add_models_to as add_models_to
    from phosjax.bench._runner import run as run
    from phosjax.bench._summary import leaderboard as leaderboard
