"""The scripts in benchmarks/ (no package) as modules, for their tests."""

import importlib
import pathlib
import sys
from types import ModuleType

FOLDER = pathlib.Path(__file__).parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module, imported as a script imports its neighbours
    (by name: ``pallas_conv`` imports ``conv_forms``), with benchmarks/ on the path."""
    sys.path.insert(0, str(FOLDER))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(FOLDER))
