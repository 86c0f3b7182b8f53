"""Imported by a bench command (``--import tests.bench.toy_datasets``), as a test running it
in another process cannot patch it: the bench's data sets are ``toy``
(`tests.bench.runner_tiny.toy_data`), whatever its config names."""

from phosjax.bench import _plan, _runner
from tests.bench.runner_tiny import toy_data

_plan.check_datasets = lambda *args: {}  # type: ignore[assignment]
_plan.load_datasets = lambda names, data_dir, features, splits: {"toy": toy_data()}  # type: ignore[assignment]
_runner.dataset_versions = lambda config: {}  # type: ignore[assignment]
