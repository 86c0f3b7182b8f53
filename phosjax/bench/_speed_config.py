"""What the speed bench measures: its models, its methods and `SpeedConfig`."""

import dataclasses
import numbers
from collections.abc import Sequence
from typing import Any

from phosjax._nearest import did_you_mean
from phosjax._pickling import PicklableError
from phosjax.models import ModelConfig
from phosjax.models._config import is_int
from phosjax.train import COMPUTE_DTYPES

MODELS: dict[str, ModelConfig] = {
    "mlp": ModelConfig("mlp", 10, (40,), depth=1, width=100),  # 40-100-100-10, residual
    "cnn1d": ModelConfig("cnn1d", 10, (40,), depth=3, width=25),  # MNIST-1D shaped input
    "cnn2d": ModelConfig("cnn2d", 10, (28, 28, 1), depth=1, width=(32, 64, 64)),
    "transformer": ModelConfig("transformer", 10, (40,), depth=2, width=32),
}
"""The benchmarked models: zoo configs (``cnn2d``: conv32, conv64/2, conv64/2, pool, dense)."""

METHODS = ("one_by_one", "vmap", "engine", "fused", "torch")
"""The methods compared, in the order they run for each (model, K)."""


class SpeedConfigError(PicklableError, ValueError):
    """A bad `SpeedConfig` field: ``field`` names it, the message says what would be right.

    Examples:
      >>> str(SpeedConfigError("steps", "must be >= 1, got 0"))
      'steps: must be >= 1, got 0'
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclasses.dataclass(frozen=True)
class SpeedConfig:
    """What `measure` runs.

    Examples:
      >>> SpeedConfig(models=("mlp", "resnet"))
      Traceback (most recent call last):
      phosjax.bench._speed_config.SpeedConfigError: models: unknown ['resnet']; choose from ...

    Attributes:
      models: names in `MODELS`.
      sizes: grid sizes K, smallest first.
      steps: timed steps per model.
      batch: examples per step per model.
      methods: a subset of `METHODS`.
      strategy: the engine's strategy: ``"auto"`` or one of `phosjax.train.STRATEGIES`.
      compute_dtype: ``"float32"`` or ``"bfloat16"`` (`HParams.compute_dtype`), for every
        method.
      budget: skip a measurement whose estimated time (from the same method at the
        previous size) exceeds this many seconds; 0: no limit.
      repeats: timed rounds (each method runs ``steps`` steps per round, the methods
        taking turns); the fastest round of each method counts.
      min_time: seconds a timing is sized to last: a method whose ``steps`` take less runs
        them again within the timing, as often as its first timing says that takes (0:
        once).
    """

    models: tuple[str, ...] = tuple(MODELS)
    sizes: tuple[int, ...] = (1, 8, 64, 256)
    steps: int = 100
    batch: int = 128
    methods: tuple[str, ...] = METHODS
    strategy: str = "auto"
    compute_dtype: str = "float32"
    budget: float = 120.0
    repeats: int = 3
    min_time: float = 0.25

    def __post_init__(self) -> None:
        for name, given, known in [
            ("models", self.models, MODELS),
            ("methods", self.methods, METHODS),
        ]:
            if isinstance(given, str):
                raise SpeedConfigError(
                    name, f"must be a tuple of names, e.g. ({given!r},), not a str"
                )
            unknown = [g for g in given if g not in known]
            if unknown:
                hint = did_you_mean(unknown, known)
                raise SpeedConfigError(name, f"unknown {unknown}; choose from {list(known)}{hint}")
        if not isinstance(self.sizes, Sequence) or isinstance(self.sizes, str | bytes):
            one = is_int(self.sizes)
            example = f"({self.sizes!r},)" if one else "(1, 8)"  # not ('8',), itself refused
            raise SpeedConfigError(
                "sizes", f"must be a tuple of integers, e.g. {example}, not {self.sizes!r}"
            )
        odd = [s for s in self.sizes if not is_int(s)]
        if odd:
            raise SpeedConfigError("sizes", f"must be integers, got {odd[0]!r}")
        for name, count in [
            ("steps", self.steps),
            ("batch", self.batch),
            ("repeats", self.repeats),
        ]:
            if not is_int(count):  # 2.5 ran unchecked
                raise SpeedConfigError(name, f"must be an integer, got {count!r}")
        named: list[tuple[str, tuple[Any, ...]]] = [
            ("models", self.models),
            ("sizes", self.sizes),
            ("methods", self.methods),
        ]
        for name, given in named:
            repeated = sorted({g for g in given if given.count(g) > 1})
            if repeated:
                raise SpeedConfigError(name, f"repeat {repeated}; give each {name[:-1]} once")
            if not given:
                raise SpeedConfigError(name, f"empty; give at least one {name[:-1]}")
        for name, values in [
            ("sizes", self.sizes),
            ("steps", (self.steps,)),
            ("batch", (self.batch,)),
            ("repeats", (self.repeats,)),
        ]:
            below = [v for v in values if v < 1]
            if below:
                raise SpeedConfigError(name, f"must be >= 1, got {below[0]}")
        for name, seconds in [("budget", self.budget), ("min_time", self.min_time)]:
            if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real):  # True: 1 s
                got = f"{seconds!r} ({type(seconds).__name__})"
                raise SpeedConfigError(name, f"must be a number of seconds, got {got}")
            if not seconds >= 0:  # nan too: no budget then skipped anything
                raise SpeedConfigError(name, f"must be >= 0 seconds, got {seconds}")
        if self.min_time == float("inf"):  # each timing would repeat its steps forever
            raise SpeedConfigError("min_time", "must be a finite number of seconds, got inf")
        if self.compute_dtype not in COMPUTE_DTYPES:
            near = did_you_mean([str(self.compute_dtype)], COMPUTE_DTYPES)
            raise SpeedConfigError(
                "compute_dtype",
                f"unknown {self.compute_dtype!r}; choose from {list(COMPUTE_DTYPES)}{near}",
            )
