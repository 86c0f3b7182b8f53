"""The MorphNet loop: train with the regularizer, shrink, expand to the budget, retrain.

Each iteration's widths, costs (parameters, FLOPs, measured latency) and accuracies are
written to ``<dir>/morph/iterations.parquet`` (atomically, after every iteration), the
variables of its last model to ``<dir>/morph/states/iteration-<i>.npz`` (the start
model's: ``iteration-0.npz``), so that `run` continues an interrupted run.
"""

import contextlib
import dataclasses
import functools
import json
import math
import os
import pathlib
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pyarrow as pa

from phosjax._callables import a_type
from phosjax._chunks import even_chunk
from phosjax._listing import counted, listing
from phosjax._nearest import no_field
from phosjax.bench import _layout
from phosjax.bench._checkpoint import OtherLeavesError, RefusedError, decode, encode
from phosjax.bench._directory import locked
from phosjax.bench._errors import BenchError
from phosjax.bench._progress import REDRAW_EVERY, EstimatedBar, counted_down
from phosjax.bench._reading import REFUSED, read_parquet
from phosjax.bench._store import move_aside, remove_stale_temporaries, write_bytes, write_table
from phosjax.bench._summary import command_line
from phosjax.bench._usage import as_argument
from phosjax.core import AUX_LOSS, aux_total
from phosjax.core._numbers import concrete_number
from phosjax.data import ArrayDataset, batch_indices, check_batch_size, load
from phosjax.data._checks import static_int_at_least
from phosjax.data._load import (
    MissingFeaturesError,
    NoSuchFeatureError,
    SplitInNameError,
    _features,
    absolute_data_dir,
    resolved_layout,
    resolved_name,
)
from phosjax.data._splits import MissingSplitsError, SplitsError, checked_splits
from phosjax.models import ModelConfig, build_model
from phosjax.morph._cost import COSTS, LatencyTable, latency_table, latency_table_given
from phosjax.morph._expand import config_cost, expand, once
from phosjax.morph._groups import ChannelGroups, channel_groups, leaf_paths, read_by_the_model
from phosjax.morph._regularizer import SOURCES, check_source, morph_regularizer
from phosjax.train._step import (
    check_float_inputs,
    check_integer_inputs,
    correct,
    evaluation_apply,
    training_apply,
    training_mutable,
    written_as_stored,
)

ITERATIONS = _layout.MORPH_ITERATIONS
"""Where `run` writes its rows, relative to the run directory."""
STATES = "morph/states"
"""Where `run` saves the variables it continues from, relative to the run directory."""

_BOUNDS: dict[str, tuple[type, float, bool]] = {
    "iterations": (int, 0, False),
    "steps": (int, 1, False),
    "batch_size": (int, 1, False),
    "learning_rate": (float, 0, True),
    "strength": (float, 0, False),
    "threshold": (float, 0, False),
    "multiple": (int, 1, False),
}
"""``{field: (type, bound, strict)}``: the field must be ``> bound`` (strict) or ``>=``."""


def _read_number(name: str, value: Any) -> Any:
    """A float field's value as read from YAML: PyYAML reads ``3e-3`` (no dot) as a
    string, which becomes the number; anything else stays for the checks to name."""
    if isinstance(value, str) and _BOUNDS.get(name, (None,))[0] is float:
        try:
            return float(value)
        except ValueError:
            return value
    return value


class MorphConfigError(ValueError):
    """A `MorphConfig` field (or the mapping it is read from) is invalid.

    Examples:
      >>> from phosjax.models import ModelConfig
      >>> from phosjax.morph import MorphConfig, MorphConfigError
      >>> try:
      ...     MorphConfig(ModelConfig("mlp", 10, (8, 8, 1)), steps=0)
      ... except MorphConfigError as error:
      ...     print(error)
      MorphConfig.steps=0: expected an integer >= 1
    """


class RunDirectoryError(MorphConfigError):
    """The run directory cannot take the loop's rows (a `MorphConfigError` too: both are
    raised before anything trains).

    Examples:
      >>> import tempfile
      >>> from phosjax.models import ModelConfig
      >>> from phosjax.morph import ITERATIONS, MorphConfig, run
      >>> directory = pathlib.Path(tempfile.mkdtemp())
      >>> (directory / ITERATIONS).parent.mkdir()
      >>> _ = (directory / ITERATIONS).write_text("")  # an earlier run's rows, cut short
      >>> run(MorphConfig(ModelConfig("mlp", 10, (8, 8, 1)), dataset="digits"), directory)
      Traceback (most recent call last):
      phosjax.morph._loop.RunDirectoryError: '...iterations.parquet' holds the rows of an
      earlier run that cannot be continued: they cannot be read (ArrowInvalid: ...);
      choose another directory, or pass --overwrite (in Python: run(..., overwrite=True))
      to move them and their states aside and start over
    """


class DivergedError(ValueError):
    """A training of the loop diverged: its variables hold NaN or infinity, so which
    channels are alive is unknown; the message names the stage, the leaves and the fields
    to lower (`run` raises it after the stage trains, before its rows are written).

    Examples:
      >>> from phosjax.models import ModelConfig
      >>> config = MorphConfig(ModelConfig("mlp", 10, (8,)), learning_rate=0.5)
      >>> _finite({"params": {"w": np.array([1.0, np.nan])}}, 1, "regularized", config)
      Traceback (most recent call last):
      phosjax.morph._loop.DivergedError: training iteration 1's regularized model diverged:
      ['params/w'] hold NaN or infinity; a lower learning_rate (0.5) or strength (1.0) may
      keep it finite
    """


def _number_error(name: str, value: Any, owner: str = "MorphConfig.") -> str | None:
    """Why the numeric field ``name`` cannot be ``value`` (``None``: it can); ``owner``
    prefixes the name."""
    kind, bound, strict = _BOUNDS[name]
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int and not isinstance(value, int):
        numeric = False
    numeric = numeric and math.isfinite(value)  # NaN and infinity train nothing sensible
    relation = ">" if strict else ">="
    what = "an integer" if kind is int else "a finite number"
    if not numeric:
        return f"{owner}{name}={value!r}: expected {what} {relation} {bound:g}"
    if value < bound or (strict and value == bound):
        return f"{owner}{name}={value!r}: expected {what} {relation} {bound:g}"
    return None


@dataclasses.dataclass(frozen=True)
class MorphConfig:
    """The settings of a MorphNet `run`: start model, data, rounds, training, cost.

    Attributes:
      model: the starting `ModelConfig` (its cost is the budget).
      dataset: a `phosjax.data.load` name.
      features: the input and the label feature to read (`phosjax.data.load`'s
        ``features``, e.g. ``[pixels, digit]``); None: the data set's supervised keys, else
        ``image`` and ``label``.
      splits: the split to train on and the split to test on (`phosjax.data.load`'s
        ``splits``, e.g. ``[train, val]`` or ``['train[:90%]', 'train[90%:]']``); None:
        ``train`` and ``test`` (else ``validation``).
      iterations: shrink/expand rounds.
      steps: training steps per training run (Adam, batches from `batch_indices`).
      batch_size: examples per step.
      learning_rate: Adam's step size.
      strength: the regularizer's weight (it is normalized by the full model's cost).
      cost: ``"params"``, ``"flops"`` or ``"latency"``.
      threshold: a channel whose importance is at or below it is dead.
      source: the importance source (``"auto"``, ``"gamma"``, ``"group_lasso"``).
      multiple: widths are rounded to a multiple of this.
      seed: the seed of every training run, an int64 (in ``[-2**63, 2**63)``).
      data_dir: where data sets are prepared (``None``: the default); a path given as an
        ``os.PathLike`` (``pathlib.Path``) is kept as its str.

    Examples:
      >>> from phosjax.models import ModelConfig
      >>> config = MorphConfig(ModelConfig("mlp", 10, (8, 8, 1)), dataset="digits", steps=20)
      >>> config.iterations, config.cost, config.threshold
      (2, 'flops', 0.01)
      >>> MorphConfig(ModelConfig("mlp", 10, (8, 8, 1)), cost="size")
      Traceback (most recent call last):
      ...
      phosjax.morph._loop.MorphConfigError: MorphConfig.cost='size': expected one of ...
    """

    model: ModelConfig
    dataset: str = "mnist1d"
    features: list[str] | None = None
    splits: list[str] | None = None
    iterations: int = 2
    steps: int = 1500
    batch_size: int = 100
    learning_rate: float = 3e-3
    strength: float = 1.0
    cost: str = "flops"
    threshold: float = 1e-2
    source: str = "auto"
    multiple: int = 8
    seed: int = 0
    data_dir: str | None = None

    def __post_init__(self) -> None:
        """Checks every field, so a bad value fails here, before anything trains; numpy
        numbers become Python ones (``np.int64(100)`` steps: 100)."""
        for field in ("iterations", "steps", "batch_size", "multiple", "seed"):
            value = getattr(self, field)
            if isinstance(value, np.integer):
                object.__setattr__(self, field, int(value))
        for field in ("learning_rate", "strength", "threshold"):
            value = getattr(self, field)
            if isinstance(value, np.floating | np.integer):
                object.__setattr__(self, field, float(value))
        if not isinstance(self.model, ModelConfig):
            raise MorphConfigError(
                f"MorphConfig.model={self.model!r}: expected a phosjax.models.ModelConfig"
            )
        if self.cost not in COSTS:
            raise MorphConfigError(f"MorphConfig.cost={self.cost!r}: expected one of {COSTS}")
        if self.source not in SOURCES:
            raise MorphConfigError(f"MorphConfig.source={self.source!r}: expected one of {SOURCES}")
        for name in _BOUNDS:
            problem = _number_error(name, getattr(self, name))
            if problem:
                raise MorphConfigError(problem)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise MorphConfigError(f"MorphConfig.seed={self.seed!r}: expected an integer")
        if not -(2**63) <= self.seed < 2**63:
            raise MorphConfigError(
                f"MorphConfig.seed={self.seed}: expected an integer in [-2**63, 2**63) (int64, "
                "the seeds jax.random.key takes)"
            )
        if not isinstance(self.dataset, str):
            raise MorphConfigError(f"MorphConfig.dataset={self.dataset!r}: expected a name")
        for field, checked in (("features", _features), ("splits", checked_splits)):
            try:
                pair = checked(getattr(self, field))
            except ValueError as error:
                raise MorphConfigError(f"MorphConfig.{error}") from None
            object.__setattr__(self, field, None if pair is None else list(pair))
        if self.data_dir is not None and not isinstance(self.data_dir, str | os.PathLike):
            raise MorphConfigError(
                f"MorphConfig.data_dir={self.data_dir!r}: expected a folder (a path) or null"
            )
        if isinstance(self.data_dir, os.PathLike):  # kept as a str: a YAML or JSON value
            object.__setattr__(self, "data_dir", os.fspath(self.data_dir))

    @classmethod
    def from_dict(cls, data: Any) -> "MorphConfig":
        """From a YAML/JSON mapping with at least ``model``; anything else is a
        `MorphConfigError` that names what is wrong and the fields.

        Examples:
          >>> model = {"name": "mlp", "num_classes": 10, "input_shape": [8, 8, 1]}
          >>> MorphConfig.from_dict({"model": model, "steps": 20}).steps
          20
          >>> MorphConfig.from_dict({"model": model, "step": 20})
          Traceback (most recent call last):
          phosjax.morph._loop.MorphConfigError: MorphConfig has no field 'step'. Did you mean
          'steps'? Its fields: model, dataset, ...
          >>> MorphConfig.from_dict({"model": {**model, "widht": 8}})
          Traceback (most recent call last):
          phosjax.morph._loop.MorphConfigError: MorphConfig.model: ModelConfig has no
          field 'widht'. Did you mean 'width'? Its fields: name, num_classes, ...
        """
        known = [f.name for f in dataclasses.fields(cls)]
        fields = f"Its fields: {', '.join(known)}."  # as `no_field` ends
        example = "{'name': 'mlp', 'num_classes': 10, 'input_shape': [40]}"
        if not isinstance(data, Mapping):
            got = "None (an empty file)" if data is None else f"{data!r} ({a_type(data)})"
            raise MorphConfigError(
                f"a MorphConfig is a mapping of its fields, got {got}; e.g. "
                f"{{'model': {example}, 'steps': 300}}. {fields}"
            )
        unknown = sorted(set(data) - set(known), key=str)  # YAML's `1:` or `on:`: not a str
        if unknown:  # the words of ModelConfig's (`no_field`), which its model's get
            raise MorphConfigError(no_field(cls.__name__, unknown, known))
        if "model" not in data:
            raise MorphConfigError(
                f"MorphConfig needs the field 'model', a ModelConfig mapping, e.g. {example}; "
                f"got {sorted(data, key=str)}. {fields}"
            )
        if not isinstance(given := data["model"], Mapping):
            raise MorphConfigError(
                f"MorphConfig.model={given!r} ({a_type(given)}) is not a ModelConfig "
                f"mapping; give one, e.g. {example}"
            )
        try:
            model = ModelConfig.from_dict(data["model"])
        except (ValueError, TypeError) as error:  # a missing, unknown or bad model field
            raise MorphConfigError(f"MorphConfig.model: {error}") from error
        fields_ = {name: _read_number(name, value) for name, value in data.items()}
        return cls(**{**fields_, "model": model})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict that `from_dict` reads back (the model's `to_dict`).

        Examples:
          >>> config = MorphConfig(ModelConfig("mlp", 10, (40,)), steps=20)
          >>> data = config.to_dict()
          >>> data["model"]["input_shape"], data["steps"], MorphConfig.from_dict(data) == config
          ([40], 20, True)
        """
        fields = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        return {**fields, "model": self.model.to_dict()}


def shape_mismatch(
    model: ModelConfig,
    name: str,
    input_shape: tuple[int, ...],
    num_classes: int | None,
    owner: str = "MorphConfig.",
) -> str | None:
    """Why ``model`` does not fit the data set ``name``, of examples of ``input_shape`` in
    ``num_classes`` classes (None: not known), None where it fits; ``owner`` prefixes the
    fields named (``MorphConfig.model.num_classes``).

    Examples:
      >>> shape_mismatch(ModelConfig("mlp", 10, (41,)), "mnist1d", (40,), 10)
      "MorphConfig.model.input_shape=[41], but the examples of data set 'mnist1d' have \
shape [40]; set input_shape: [40]"
    """
    if num_classes is not None and model.num_classes != num_classes:
        return (
            f"{owner}model.num_classes={model.num_classes}, but data set {name!r} has "
            f"{num_classes} classes; set num_classes: {num_classes}"
        )
    shape = list(input_shape)
    if list(model.input_shape) != shape:
        return (
            f"{owner}model.input_shape={list(model.input_shape)}, but the examples of "
            f"data set {name!r} have shape {shape}; set input_shape: {shape}"
        )
    return None


def _mismatch(
    model: ModelConfig, data: ArrayDataset, batch_size: int, owner: str = "MorphConfig."
) -> str | None:
    """Why ``model`` cannot train on ``data`` in batches of ``batch_size`` (None: it can);
    ``owner`` prefixes the fields named (``MorphConfig.model.num_classes``). Inputs
    beyond the range of the float dtype `train` reads them in (``jnp.asarray``'s: float32
    unless ``jax_enable_x64``) would become inf, and the training diverge (`check_float_inputs`);
    integer ones beyond 2**24 would be rounded in the model's float32, and beyond 2**31
    wrapped by ``jnp.asarray``'s int32 (2**40 reads 0), as the engine refuses them."""
    shapes = shape_mismatch(model, data.name, data.input_shape, data.num_classes, owner)
    if shapes:
        return shapes
    try:
        check_batch_size(f"{owner}batch_size", batch_size, data)
        check_float_inputs(data, str(jax.dtypes.canonicalize_dtype(np.float64)))
        check_integer_inputs(data, "float32", "float32 (the model reads the inputs in it)")
    except ValueError as error:
        return str(error)
    return None


def _traced_groups(model: ModelConfig) -> ChannelGroups:
    """The channel groups of ``model`` (traced abstractly: nothing is computed).

    Raises:
      MorphConfigError: ``model`` does not build or `channel_groups` cannot follow it.
    """
    module = build_model(model)
    x = jax.ShapeDtypeStruct((2, *model.input_shape), jnp.float32)
    try:
        variables = jax.eval_shape(module.init, jax.random.key(0), x)
        return channel_groups(module, variables, x)
    except Exception as error:  # the model's own code, a plugin's too: any failure to build
        why = error if isinstance(error, ValueError | TypeError) else repr(error)
        raise MorphConfigError(f"MorphConfig.model {model.name!r}: {why}") from error


def resolved_model(config: MorphConfig) -> ModelConfig:
    """``config``'s model with its defaults filled in (see `ModelConfig.resolved`).

    Raises:
      MorphConfigError: an unknown model (the nearest names listed) or a bad option of it.

    Examples:
      >>> config = MorphConfig(ModelConfig("mlpp", 10, (40,)))
      >>> resolved_model(config)
      Traceback (most recent call last):
      ...
      phosjax.morph._loop.MorphConfigError: MorphConfig.model: unknown model 'mlpp'. Did ...
    """
    try:
        return config.model.resolved()
    except (ValueError, TypeError) as error:
        raise MorphConfigError(f"MorphConfig.model: {error}") from error


def dataset_error(config: MorphConfig, error: ValueError | PermissionError) -> MorphConfigError:
    """`error`, raised loading ``config.dataset``, in a morph config's terms.

    Examples:
      >>> from phosjax.data._splits import MissingSplitsError
      >>> config = MorphConfig(ModelConfig("mlp", 2, (2,)), dataset="mine")
      >>> print(dataset_error(config, MissingSplitsError("mine", ["train"])))
      MorphConfig.dataset='mine': data set 'mine' has splits ['train']; a morph run trains on
      'train' and tests on 'test' (else 'validation') unless MorphConfig.splits names the
      two, e.g. splits: ['train[:90%]', 'train[90%:]']
    """
    if isinstance(error, SplitsError):  # said as load's splits=(...): the field's value
        return MorphConfigError(f"MorphConfig.splits: {error.told_as('splits')}")
    why = str(error)
    if isinstance(error, NoSuchFeatureError | MissingFeaturesError):
        example = f"features: {list(error.example_pair)}"
        if isinstance(error, NoSuchFeatureError):  # said as load's features=(...)
            return MorphConfigError(error.told_as("MorphConfig.features", example))
        why = error.told_by("a morph run", "MorphConfig.features", example)
    if isinstance(error, MissingSplitsError):
        why = error.told_by("a morph run", "MorphConfig.splits", f"splits: {list(error.suggested)}")
    if isinstance(error, SplitInNameError):  # said 'load takes ...'
        why = (
            f"the name holds a split ({error.split!r}); give the data set's name alone and the "
            f"splits apart: dataset: {error.dataset}, splits: {list(error.suggested)}"
        )
    return MorphConfigError(f"MorphConfig.dataset={config.dataset!r}: {why}")


def prepare(config: MorphConfig) -> tuple[ModelConfig, ArrayDataset]:
    """``config``'s model, resolved, and its data set, checked against each other.

    Raises:
      MorphConfigError: naming the field: an unknown model or a bad option of it, an
        unknown data set, a model whose ``num_classes`` or ``input_shape`` is not the
        data set's, a ``batch_size`` larger than its train split, inputs beyond
        float32's range (which would train as inf) or integer ones beyond 2**24 (which it
        would round), or (with
        ``iterations``) a model that does not build, whose channels `channel_groups`
        cannot follow (an `UnsupportedOpError`), that has none to prune (``logreg``), that
        lacks what ``source`` reads (a
        normalization scale for ``gamma``), or whose narrowest config (every width
        ``multiple``) costs more than the model itself, so no expansion can fit it.
    """
    model = resolved_model(config)
    try:
        data = load(
            config.dataset,
            data_dir=config.data_dir,
            features=config.features,
            splits=config.splits,
        )
    except (ValueError, PermissionError) as error:  # PermissionError: data_dir not writable
        raise dataset_error(config, error) from error
    problem = _mismatch(model, data, config.batch_size)
    if problem:
        raise MorphConfigError(problem)
    check_morphable(config, model)
    return model, data


def check_morphable(config: MorphConfig, model: ModelConfig, *, priced: bool = True) -> None:
    """Raises a `MorphConfigError` where ``config.iterations`` rounds cannot shrink and
    expand ``model`` (``config``'s, resolved): see `prepare` (computed abstractly).
    ``priced`` False leaves out whether the narrowest config costs more than the model
    (a ``latency`` cost prices it by a table measured on the device)."""
    if not config.iterations:
        return
    groups = _traced_groups(model)
    if not groups.groups:
        raise MorphConfigError(
            f"MorphConfig.model {model.name!r} has no channels to prune (no channel "
            "group: no hidden width, or every one pinned), so each iteration would train "
            "the same model again; pick a model with hidden widths, e.g. 'mlp', or set "
            "iterations: 0"
        )
    try:
        check_source(config.source, groups)
    except ValueError as error:
        raise MorphConfigError(f"MorphConfig.source={config.source!r}: {error}") from error
    if not priced:
        return
    try:
        expand(model, config_cost(model, config.cost), config.cost, config.multiple)
    except ValueError as error:
        raise MorphConfigError(
            f"MorphConfig.multiple={config.multiple}: {error}; use a smaller multiple"
        ) from error


def train(
    config: ModelConfig,
    data: ArrayDataset,
    steps: int,
    batch_size: int,
    learning_rate: float | optax.Schedule,
    seed: int,
    penalty: Callable[[Any], jax.Array] | None = None,
    strength: float = 0.0,
) -> tuple[Any, float]:
    """Trains ``config`` on ``data`` (jitted scans of up to 250 steps, `even_chunk`, the
    same numbers as one scan of them all: a Ctrl-C stops it between two); returns
    variables and test accuracy.

    The loss is the cross-entropy, plus the model's auxiliary losses (`phosjax.aux_loss`:
    ``moenet``'s load balance) as the engine's train step adds them, plus ``strength``
    times ``penalty`` of the variables (nothing at strength 0, even where the penalty
    overflows, as in the engine's step). As the engine's step, training writes the running
    statistics (``batch_stats``) alone; another collection init made is kept as made.

    Raises:
      ValueError: ``config``'s ``num_classes`` or ``input_shape`` is not ``data``'s,
        ``batch_size`` does not fit its train split (the field and the value to set named),
        or an input lies beyond the range of float32 (`check_float_inputs`) or an integer
        one beyond 2**24 (`check_integer_inputs`);
        ``steps`` is no integer >= 1, ``learning_rate`` no finite number > 0 (nor an
        optax schedule, step -> rate) or ``strength`` none >= 0 (as `MorphConfig` checks
        them); the model writes another collection than ``batch_stats`` in training, or
        any in the test accuracy's evaluation (the variable named, as the engine does).
      TypeError: ``seed`` is no integer.

    Examples:
      >>> from phosjax.data import ArrayDataset
      >>> from phosjax.models import ModelConfig
      >>> x = np.random.default_rng(0).normal(size=(96, 8)).astype(np.float32)
      >>> y = x[:, :3].argmax(1).astype(np.int32)  # the class: which of 3 inputs is largest
      >>> data = ArrayDataset("easy", x[:64], y[:64], x[64:], y[64:], 3, (8,))
      >>> config = ModelConfig("mlp", 3, (8,), width=8)
      >>> variables, accuracy = train(config, data, 20, 16, 0.1, seed=0)
      >>> sorted(variables["params"]), accuracy > 0.7  # chance: 1/3
      (['blocks_0', 'head', 'stem'], True)
    """
    for name, value in (("steps", steps), ("learning_rate", learning_rate), ("strength", strength)):
        if name == "learning_rate" and callable(value):  # an optax schedule, as adam takes
            continue
        problem = _number_error(name, concrete_number(value), owner="train: ")
        if problem:  # a negative steps trained nothing, a NaN rate trained NaNs, silently
            raise ValueError(problem)
    whole = concrete_number(seed)  # np.int64(0), jnp.array(0): seeds as jax.random.key takes
    if not isinstance(whole, int) or isinstance(whole, bool):
        raise TypeError(f"train: seed={seed!r}: expected an integer")
    problem = _mismatch(config, data, batch_size, owner="train: ")
    if problem:
        raise ValueError(problem)
    model = build_model(config)
    key = jax.random.key(seed)
    x_train, y_train = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    variables = jax.jit(model.init)(key, x_train[:1])
    params = variables["params"]
    state = {k: v for k, v in variables.items() if k != "params"}
    tx = optax.adam(learning_rate)
    # as the engine's step: training writes the running statistics alone; another
    # collection init made (a sown one, which would grow each step) is carried as made
    mutable = training_mutable(state, AUX_LOSS)

    def loss(params: Any, state: Any, step: jax.Array) -> tuple[jax.Array, Any]:
        index = batch_indices(key, step, x_train.shape[0], batch_size)
        logits, written = training_apply(  # as the engine's step: a dropped aux loss or
            model,  # a draw from another rng stream than "dropout" is named
            model.apply,
            {"params": params, **state},
            x_train[index],
            jax.random.fold_in(key, step),
            mutable,
        )
        written = dict(written)
        aux, _ = aux_total(written.pop(AUX_LOSS, {}))  # as the engine's step (moenet's balance)
        # as the engine's step: the scan's carry keeps its variables and dtypes (bfloat16
        # batch statistics come back float32)
        new_state = {**state, **written_as_stored(written, state)}
        logits = logits.astype(jnp.float32)  # as the engine's step: bfloat16 ones rounded it
        task = optax.softmax_cross_entropy_with_integer_labels(logits, y_train[index]).mean()
        # at strength 0 none (0 * an overflowing penalty, or its gradient, would be NaN)
        extra = strength * penalty({"params": params, **state}) if penalty and strength else 0.0
        return task + aux + extra, new_state

    def step(carry: Any, i: jax.Array) -> tuple[Any, None]:
        params, state, opt = carry
        grads, state = jax.grad(loss, has_aux=True)(params, state, i)
        updates, opt = tx.update(grads, opt, params)
        return (optax.apply_updates(params, updates), state, opt), None

    @jax.jit
    def fit(carry: Any, steps_at: jax.Array) -> Any:
        return jax.lax.scan(step, carry, steps_at)[0]

    carry = (params, state, tx.init(params))
    size = even_chunk(steps)  # one length where it can: one compile
    for start in range(0, steps, size):  # waited for: Ctrl-C lands between chunks
        chunk = jnp.arange(start, min(start + size, steps))
        carry = jax.block_until_ready(fit(carry, chunk))
    params, state, _ = carry
    variables = {"params": params, **state}
    return variables, _test_accuracy(model, variables, data)


def _test_accuracy(model: nn.Module, variables: Any, data: ArrayDataset) -> float:
    """The share of ``data``'s test examples that ``model`` with ``variables`` classifies
    right; NaN where a row's largest logit is not finite (`correct`)."""
    evaluate = functools.partial(evaluation_apply, model, model.apply)
    logits = jax.jit(evaluate)(variables, jnp.asarray(data.x_test))
    return float(np.mean(np.asarray(correct(logits, data.y_test), np.float64)))


def measured_latency(config: ModelConfig, variables: Any, batch: int = 100) -> float:
    """Seconds per example of the jitted forward pass (median of 20 calls on ``batch``).

    Raises:
      ValueError: ``batch`` is below 1 (TypeError: no int); it is named. ``variables``
        lack what the model reads (another model's, or params without their collection).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from phosjax.models import ModelConfig
      >>> config = ModelConfig("mlp", 3, (8,), width=8)
      >>> variables = config.build().init(jax.random.key(0), jnp.zeros((1, 8)))
      >>> seconds = measured_latency(config, variables, batch=10)
      >>> 0.0 < seconds < 1.0  # per example, on this machine
      True
    """
    batch = static_int_at_least("measured_latency batch", batch)
    apply = jax.jit(build_model(config).apply)
    x = jnp.zeros((batch, *config.input_shape), jnp.float32)
    with read_by_the_model("measured_latency", variables):
        jax.block_until_ready(apply(variables, x))
    times = []
    for _ in range(20):
        start = time.perf_counter()
        jax.block_until_ready(apply(variables, x))
        times.append(time.perf_counter() - start)
    return float(np.median(times)) / batch


MORPH_CONFIG = "morph_config"
"""The key of the run's `MorphConfig` (`MorphConfig.to_dict`) in its rows' ``attrs``."""
RESOLVED_DATASET = "resolved_dataset"
"""The key of the full TFDS name of the run's data set (``"mnist1d:1.0.0"``, where its
config says ``"mnist1d"``) in its rows' ``attrs``."""


LATENCY_TABLE = "latency_table"
"""The key of the `latency_table` a run with ``cost="latency"`` priced by in its rows'
``attrs`` (``{primitive: [overhead seconds, seconds per FLOP]}``)."""


def _frame(
    rows: list[dict[str, Any]], config: MorphConfig, dataset: str, table: LatencyTable | None
) -> pd.DataFrame:
    """``rows`` as a frame whose ``attrs`` hold the run's config, the full name of its
    data set and its latency ``table`` unless None (Parquet keeps them)."""
    frame = pd.DataFrame(rows)
    frame.attrs[MORPH_CONFIG] = config.to_dict()
    frame.attrs[RESOLVED_DATASET] = dataset
    if table is not None:
        frame.attrs[LATENCY_TABLE] = table
    return frame


def _row(
    iteration: int, kind: str, config: ModelConfig, variables: Any, accuracy: float
) -> dict[str, Any]:
    return {
        "iteration": iteration,
        "kind": kind,
        "widths": json.dumps(list(config.resolved().widths or ())),
        "config": json.dumps(config.to_dict()),
        "params": config_cost(config, "params"),
        "flops": config_cost(config, "flops"),
        "latency_s": measured_latency(config, variables),
        "accuracy": accuracy,
    }


def why_no_run_starts(directory: str | os.PathLike) -> str | None:
    """Why `run` refuses ``directory`` whatever it holds (`_output`): it is ``''``, lies
    inside a bench (`enclosing_bench`) or a run's ``morph`` folder (`_enclosing_run`), or
    it or a folder above it is a file; None where a run may start or go on there."""
    if not os.fspath(directory):  # pathlib reads '' as '.': the rows would land in the cwd
        return "the run directory is '' (an unset shell variable?); name one, e.g. runs/morph"
    around = _layout.enclosing_bench(directory)
    if around is not None:
        return (
            f"{str(directory)!r} is inside the bench {str(around)!r}, whose files the rows "
            f"would mix with its own; pick that bench's directory itself or one outside it"
        )
    run = _enclosing_run(directory)
    if run is not None:
        return (
            f"{str(directory)!r} is inside the morph run {str(run)!r}, whose files the rows "
            f"would mix with its own; pass that run's directory (the same config continues "
            f"it) or one outside it"
        )
    folder = (pathlib.Path(directory) / ITERATIONS).parent
    blocking = next((p for p in (folder, *folder.parents) if p.is_file()), None)
    if blocking is not None:
        return (
            f"{str(blocking)!r} is a file, not a directory: --dir (in Python: run's "
            f"directory) wants a run directory, existing or new; got {str(directory)!r}"
        )
    return None


@contextlib.contextmanager
def _output(directory: str | os.PathLike, overwrite: bool) -> Iterator[pathlib.Path]:
    """The rows' file in ``directory`` (its folder made), checked before anything trains,
    while this process holds the lock of the folder (`locked`: ``morph/run.lock``), so a
    second run on ``directory`` stops before it moves, reads or writes anything.

    With ``overwrite``, an earlier run's rows and states are moved aside to
    ``iterations.parquet.old-<time>`` and ``states.old-<time>`` (see `aside_path`), never
    deleted, so a new run that fails loses nothing; stderr names where they went. States
    without rows (a run stopped before its first rows) are moved aside too. The temporary
    files of a run killed mid-write (`remove_stale_temporaries`) are removed, as a bench
    run removes its own.

    Raises:
      RunDirectoryError: `why_no_run_starts` says why not, the folder cannot be made, or
        another run holds its lock (the message names its pid and host).
    """
    refused = why_no_run_starts(directory)
    if refused is not None:
        raise RunDirectoryError(refused)
    path = pathlib.Path(directory) / ITERATIONS
    with contextlib.ExitStack() as held:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            held.enter_context(locked(path.parent, (0, 1)))
            remove_stale_temporaries(path.parent)  # what a run killed mid-write left
            # looked at once locked: rows another run wrote meanwhile are continued, kept
            earlier = {"rows": path, "states": pathlib.Path(directory) / STATES}
            if not overwrite and path.exists():
                earlier = {}
            for what, moved in earlier.items():
                if moved.exists():
                    target = move_aside(moved, f"the earlier {what}", RunDirectoryError)
                    print(f"moved the earlier {what} to {target}", file=sys.stderr)
        except OSError as error:
            raise RunDirectoryError(
                f"cannot write rows into {str(directory)!r}: {error}"
            ) from error
        except BenchError as error:  # another run holds the lock
            raise RunDirectoryError(str(error)) from error
        yield path


def _state(directory: str | os.PathLike, iteration: int) -> pathlib.Path:
    """The file of the variables of iteration ``iteration``'s last model in ``directory``."""
    return pathlib.Path(directory) / STATES / f"iteration-{iteration}.npz"


_CONTINUED_UNDER_ANOTHER = ("model", "iterations", "data_dir", "dataset")
"""The `MorphConfig` fields `_earlier` does not compare as they are: the model resolved
(its defaults filled in), more iterations continue a run, ``data_dir`` is where the
data set lies and ``dataset`` a name for it (its full name, with its version, is
compared)."""


def _as_loaded(config: MorphConfig, data_dir: str | None) -> MorphConfig:
    """``config`` with the features and splits `load` reads from its data set in
    ``data_dir`` (None, their defaults, written out); as it is where `load` refuses them."""
    try:
        x, y, splits = resolved_layout(
            config.dataset, data_dir=data_dir, features=config.features, splits=config.splits
        )
    except ValueError:  # another data set's features or splits: they differ as written
        return config
    return dataclasses.replace(config, features=[x, y], splits=list(splits))


def _differences(earlier: MorphConfig, config: MorphConfig) -> list[str]:
    """The fields whose values in ``earlier`` and ``config`` differ, as ``field: earlier
    there, config here`` (all but `_CONTINUED_UNDER_ANOTHER`).

    Examples:
      >>> model = ModelConfig("mlp", 10, (40,))
      >>> _differences(MorphConfig(model, steps=30), MorphConfig(model, steps=20, iterations=5))
      ['steps: 30 there, 20 here']
    """
    pairs = {
        field.name: (getattr(earlier, field.name), getattr(config, field.name))
        for field in dataclasses.fields(config)
        if field.name not in _CONTINUED_UNDER_ANOTHER
    }
    return [f"{name}: {a!r} there, {b!r} here" for name, (a, b) in pairs.items() if a != b]


def _model_differences(earlier: ModelConfig, start: ModelConfig) -> list[str]:
    """The fields of the start model ``earlier`` that ``start`` (resolved) sets otherwise.

    Examples:
      >>> _model_differences(ModelConfig("mlp", 10, (40,), width=8), ModelConfig("mlp", 10, (40,)))
      ['model.width: 8 there, None here']
    """
    there, here = earlier.to_dict(), start.to_dict()
    return [
        f"model.{name}: {there.get(name)!r} there, {here.get(name)!r} here"
        for name in dict.fromkeys([*there, *here])
        if there.get(name) != here.get(name)
    ]


def _stored_latency_table(attrs: Mapping[str, Any]) -> LatencyTable | None:
    """The latency table stored in a run's rows' ``attrs`` (None: none).

    Raises:
      ValueError, TypeError, AttributeError: it is no ``{primitive: [overhead, per FLOP]}``.
    """
    priced = attrs.get(LATENCY_TABLE)
    if priced is None:
        return None
    return {k: (float(o), float(f)) for k, (o, f) in priced.items()}


def _continued_latency_table(directory: str | os.PathLike) -> LatencyTable | None:
    """The latency table of the run in ``directory`` that `run` would continue (None:
    none, or rows that cannot be read: `_earlier` says why, under the lock)."""
    path = pathlib.Path(directory) / ITERATIONS
    try:
        return _stored_latency_table(read_parquet(path).attrs)  # one open file, as below
    except (OSError, ValueError, TypeError, AttributeError, pa.ArrowException):
        return None


class _Continued(NamedTuple):
    """What `_earlier` found in a run directory: the rows written, the last model, its
    variables (``rows[-1]``'s; None where the config trains no more, so none are read) and
    the latency table the run priced by (None: none stored)."""

    rows: list[dict[str, Any]]
    model: ModelConfig
    variables: Any
    latency_table: LatencyTable | None


def _lacking_columns(frame: pd.DataFrame) -> str | None:
    """Which of the columns `_earlier`, `load_variables` and `read_runs` read ``frame``
    (rows read back) lacks, and those it has; None: none.

    Examples:
      >>> _lacking_columns(pd.DataFrame({"kind": ["start"], "accuracy": [0.5]}))
      "no column(s) ['iteration', 'config'] (it has ['kind', 'accuracy'])"
    """
    missing = [name for name in ("iteration", "kind", "config") if name not in frame]
    return f"no column(s) {missing} (it has {list(frame.columns)})" if missing else None


def _earlier(
    directory: str | os.PathLike, config: MorphConfig, start: ModelConfig, dataset: str
) -> _Continued:
    """The run in ``directory`` (its rows exist) that ``config``, whose start model is
    ``start`` on the data set ``dataset`` (its full name), continues.

    Raises:
      RunDirectoryError: the rows cannot be read, another config (field, or data set
        version) wrote them, or ``config`` continues them and their last state cannot be
        read (or it is missing).
    """
    path = pathlib.Path(directory) / ITERATIONS

    def refused(why: str) -> RunDirectoryError:
        return RunDirectoryError(
            f"{str(path)!r} holds the rows of an earlier run that cannot be continued: {why}; "
            "choose another directory, or pass --overwrite (in Python: run(..., "
            "overwrite=True)) to move them and their states aside and start over"
        )

    try:
        frame = read_parquet(path)  # one open file: a run may replace it meanwhile
    except (OSError, ValueError, pa.ArrowException) as error:  # cut short, not Parquet
        raise refused(f"they cannot be read ({type(error).__name__}: {error})") from error
    stored = frame.attrs.get(MORPH_CONFIG)
    if not isinstance(stored, dict):
        raise refused(f"they do not say which config ran them (no attrs[{MORPH_CONFIG!r}])")
    try:
        earlier = MorphConfig.from_dict(stored)
    except (ValueError, TypeError) as error:  # MorphConfigError: a field this one refuses
        raise refused(
            f"their config attrs[{MORPH_CONFIG!r}] cannot be read as a MorphConfig now ({error})"
        ) from error
    lacking = _lacking_columns(frame)
    if lacking:  # a bare KeyError said "('config')"
        raise refused(f"they are no rows of `phosjax.morph.run`: the file has {lacking}")
    if frame.empty:  # rows[-1] said "(list index out of range)"
        raise refused("the file has their columns but no row")
    try:
        rows = frame.to_dict("records")
        model = ModelConfig.from_dict(json.loads(rows[-1]["config"]))
        first = ModelConfig.from_dict(json.loads(rows[0]["config"]))
        done = int(rows[-1]["iteration"])
        finished = rows[-1]["kind"] in ("start", "expanded")
        table = _stored_latency_table(frame.attrs)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
        raise refused(f"they are no rows of `phosjax.morph.run` ({error})") from error
    there, here = (_as_loaded(c, config.data_dir) for c in (earlier, config))
    differences = _model_differences(first, start) + _differences(there, here)
    if frame.attrs.get(RESOLVED_DATASET) != dataset:
        differences.append(
            f"the data set: {frame.attrs.get(RESOLVED_DATASET)!r} there, {dataset!r} here"
        )
    if differences:
        raise refused(
            f"another config ran them ({listing(differences, sep='; ')}), and only that "
            "config continues them"
        )
    if not finished:
        raise refused(f"their last row ({rows[-1]['kind']!r}) ends no iteration")
    if done >= config.iterations:  # finished: its rows stand, nothing continues from the state
        return _Continued(rows, model, None, table)
    try:
        variables = _saved_variables(directory, done, model)
    except RunDirectoryError as error:
        raise refused(f"the variables to continue from, {error}") from error
    return _Continued(rows, model, variables, table)


def _saved_variables(directory: str | os.PathLike, iteration: int, model: ModelConfig) -> Any:
    """The variables of ``model``, iteration ``iteration``'s last, saved in ``directory``.

    Raises:
      RunDirectoryError: ``'<state>', are missing``, ``... are not its last model's (why)``,
        ``... cannot be read`` (the system refused) or ``... are damaged``.
    """
    state = _state(directory, iteration)
    if not state.is_file():
        raise RunDirectoryError(f"{str(state)!r}, are missing")
    module = build_model(model)
    x = jax.ShapeDtypeStruct((1, *model.input_shape), jnp.float32)
    try:
        return decode(state, jax.eval_shape(module.init, jax.random.key(0), x))
    except OtherLeavesError as error:
        raise RunDirectoryError(
            f"{str(state)!r}, are not its last model's ({listing(error.problems, sep='; ')})"
        ) from error
    except RefusedError as error:  # its cause: the system's OSError
        raise RunDirectoryError(
            f"{str(state)!r}, cannot be read ({error.__cause__}); {REFUSED}"
        ) from error
    except BenchError as error:  # damaged: its cause
        cause = error.__cause__
        raise RunDirectoryError(
            f"{str(state)!r}, are damaged: the file was cut short or changed on the disk "
            f"({type(cause).__name__}: {cause}); restore it from a backup"
        ) from error


def _enclosing_run(directory: str | os.PathLike) -> pathlib.Path | None:
    """The run whose ``morph`` folder holds ``directory`` (that folder, or a file or
    folder in it), or None.

    Examples:
      >>> _enclosing_run("/no/run/morph") is None
      True
    """
    path = pathlib.Path(os.path.normpath(directory))  # 'runs/a/morph/..': runs/a itself
    return next(
        (
            up
            for up in path.parents
            if (up / ITERATIONS).is_file() and path.is_relative_to((up / ITERATIONS).parent)
        ),
        None,
    )


def _check_run_directory(directory: Any, caller: str, give: str) -> None:
    """Refuse a run ``directory`` of ``caller`` that is no path (a list of them), naming
    it and what to ``give``; pathlib said only "expected str, bytes or os.PathLike
    object, not list".

    Examples:
      >>> _check_run_directory(["runs/a"], "load_variables", "one run directory")
      Traceback (most recent call last):
      TypeError: load_variables: got the list ['runs/a'] as a directory; give one run directory
    """
    if not isinstance(directory, str | os.PathLike):
        raise TypeError(
            f"{caller}: got the {type(directory).__name__} {directory!r} as a directory; "
            f"give {give}"
        )


def _no_run(directory: str | os.PathLike) -> str:
    """Why ``directory`` holds no run; where it lies inside one (its ``morph`` folder or
    its rows' file), which directory to pass instead; where it holds the start model's
    state but no rows, that it was stopped before them.

    Examples:
      >>> print(_no_run("runs/none"))
      'runs/none' holds no morph run: it has no morph/iterations.parquet (python -m
      phosjax.morph --config CONFIG.yaml --dir runs/none writes one)
    """
    name = os.fspath(directory)
    inside = _enclosing_run(directory)
    if inside is not None:
        return (
            f"{name!r} holds no morph run: it lies inside the run {str(inside)!r}; pass "
            "that run's directory"
        )
    if _state(directory, 0).is_file():  # stopped between the start model's two writes
        return (
            f"{name!r} holds no morph run yet: it was stopped before its first rows (it has "
            f"{STATES}/iteration-0.npz, the start model's variables, but no {ITERATIONS}); "
            f"{_morph_command(directory)} starts it over, moving that state aside"
        )
    return (
        f"{name!r} holds no morph run: it has no {ITERATIONS} "
        f"({_morph_command(directory)} writes one)"
    )


def _morph_command(directory: str | os.PathLike, *more: str) -> str:
    """The command that runs a config on ``directory``, quoted to run as printed.

    Examples:
      >>> _morph_command("runs/my run", "--overwrite")
      "python -m phosjax.morph --config CONFIG.yaml --dir 'runs/my run' --overwrite"
    """
    return command_line(
        "phosjax.morph", ["--config", "CONFIG.yaml", "--dir", as_argument(directory), *more]
    )


def load_variables(
    directory: str | os.PathLike, iteration: int | None = None
) -> tuple[ModelConfig, Any]:
    """The last model of iteration ``iteration`` (0: the start model; None: the last one
    finished) of the `run` in ``directory``, and its variables as `run` saved them.

    Examples:
      >>> load_variables("/no/run")
      Traceback (most recent call last):
      phosjax.morph._loop.RunDirectoryError: '/no/run' holds no morph run: it has no
      morph/iterations.parquet (python -m phosjax.morph --config CONFIG.yaml --dir /no/run
      writes one)

    Raises:
      RunDirectoryError: ``directory`` holds no rows of `run` (or they cannot be read),
        none of ``iteration``, not its iteration or config (a cell null, or not JSON), or
        not its variables (missing, or damaged).
      TypeError: ``iteration`` is neither an integer nor None, or ``directory`` no path
        (a list of them: one run per call).
    """
    if iteration is not None and (
        isinstance(iteration, bool) or not isinstance(iteration, int | np.integer)
    ):  # "1" was said not to be among the iterations finished, [0, 1, 2]
        raise TypeError(
            f"load_variables: iteration={iteration!r}: expected an integer (0: the start "
            "model) or None (the last finished)"
        )
    _check_run_directory(directory, "load_variables", "one run directory: load_variables('runs/a')")
    path = pathlib.Path(directory) / ITERATIONS
    if not path.is_file():
        raise RunDirectoryError(_no_run(directory))
    try:
        frame = read_parquet(path)  # one open file: a run may replace it meanwhile
    except (OSError, ValueError, pa.ArrowException) as error:  # cut short, not Parquet
        raise RunDirectoryError(
            f"cannot read the rows {str(path)!r} ({type(error).__name__}: {error})"
        ) from error
    lacking = _lacking_columns(frame)
    if lacking:  # read by name, Arrow said "No match for FieldRef.Name(iteration) in a: ..."
        raise RunDirectoryError(
            f"{str(path)!r} holds no rows of phosjax.morph.run: it has {lacking}"
        )

    def damaged(what: str, instead: str = "load another iteration, or ") -> RunDirectoryError:
        return RunDirectoryError(
            f"{str(path)!r}: {what}; the file is damaged: {instead}run it again "
            f"({_morph_command(directory, '--overwrite')} moves the file aside)"
        )

    if frame.empty:  # it said "has finished the iterations []"
        raise damaged("it has the columns of the rows but no row", instead="")
    ends = frame[frame["kind"].isin(["start", "expanded"])]  # each iteration's last model
    done = ends["iteration"].tolist()
    chosen = ends[ends["iteration"] == iteration] if iteration is not None else ends.tail(1)
    if len(chosen) != 1:
        raise RunDirectoryError(
            f"iteration={iteration!r}: the run in {os.fspath(directory)!r} has finished the "
            f"iterations {done} (0: the start model; None: the last)"
        )
    row = chosen.iloc[0]
    try:
        number = int(row["iteration"])
    except (ValueError, TypeError) as error:  # null (NaN), or no number
        raise damaged(
            f"the iteration of its row {row['kind']!r} is no integer ({row['iteration']})"
        ) from error
    try:
        model = ModelConfig.from_dict(json.loads(row["config"]))
    except (ValueError, TypeError) as error:  # null, not JSON, or no ModelConfig's fields
        raise damaged(
            f"the config of its row of iteration {number} ({row['kind']!r}) is no ModelConfig "
            f"as JSON ({type(error).__name__}: {error})"
        ) from error
    try:
        return model, _saved_variables(directory, number, model)
    except RunDirectoryError as error:
        raise RunDirectoryError(f"the variables of iteration {number}, {error}") from error


_NEXT_STAGE = {
    "start": "regularized",
    "regularized": "shrunk",
    "shrunk": "expanded",
    "expanded": "regularized",
}
"""The stage `run` computes after a row of each kind."""


class _Stages:
    """The progress bar of `run`: one tick per training (the start model's, then two per
    iteration), so that its time left counts them, not the shrink between them (seconds,
    where a training takes tens); described by the stage that runs next; on a terminal
    redrawn every `REDRAW_EVERY` seconds, its elapsed time going on through a training, and
    its time left counting down (`seconds_left`); a context manager that closes the bar
    (before a Ctrl-C's line).

    Examples:
      >>> rows = []
      >>> with _Stages(1, progress=False) as stages:  # a bar of 3 trainings, not shown
      ...     stages.done(rows, {"iteration": 0, "kind": "start"})
      >>> rows
      [{'iteration': 0, 'kind': 'start'}]
      >>> _Stages(3, progress=False, done=1).bar.n  # continued after iteration 1
      3
    """

    def __init__(
        self,
        iterations: int,
        progress: bool,
        done: int | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """``done``: the last iteration finished (the start model's: 0), None: none."""
        self.iterations = iterations
        total, initial = 1 + 2 * iterations, 0 if done is None else 1 + 2 * done
        self._to_train, self._trained = total - initial, 0  # trainings, this run
        self._clock = clock
        self._started = self._ticked = clock()
        self.bar = EstimatedBar(
            total=total,
            initial=initial,
            seconds_left=self.seconds_left,
            unit="training",
            disable=not progress,
            mininterval=0,  # a training takes seconds at least: show each
            desc="start model"
            if done is None
            else f"iteration {done + 1}/{iterations}: regularized",
        )
        self.bar.keep_redrawn(REDRAW_EVERY)

    def __enter__(self) -> "_Stages":
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    def seconds_left(self) -> float | None:
        """The trainings left at the mean seconds of those this run trained (the shrinks
        between them in), the one under way less its time so far; None before one has.
        tqdm's time left, its trainings left over its rate, stood still through a training.

        Examples:
          >>> now = [0.0]
          >>> stages = _Stages(1, progress=False, clock=lambda: now[0])
          >>> now[0] = 10.0; stages.done([], {"iteration": 0, "kind": "start"})
          >>> now[0] = 14.0; stages.seconds_left()  # 2 trainings of 10 s, 4 s into one
          16.0
        """
        left = self._to_train - self._trained
        if not left:
            return 0.0
        if not self._trained:
            return None
        mean = (self._ticked - self._started) / self._trained
        return counted_down(mean * left, mean, self._clock() - self._ticked)

    def done(self, rows: list[dict[str, Any]], row: dict[str, Any]) -> None:
        """Adds ``row`` to ``rows``, names the next stage and ticks the bar if ``row``'s
        stage trained (all but ``shrunk``)."""
        rows.append(row)
        kind, iteration = _NEXT_STAGE[row["kind"]], row["iteration"]
        iteration += kind == "regularized"  # after start or expanded: the next iteration
        trained = row["kind"] != "shrunk"
        if iteration <= self.iterations:
            description = f"iteration {iteration}/{self.iterations}: {kind}"
            self.bar.set_description(description, refresh=not trained)
        if trained:
            self._trained += 1
            self._ticked = self._clock()
            self.bar.update()


def _finite(variables: Any, iteration: int, kind: str, config: MorphConfig) -> None:
    """Raises `DivergedError` if ``variables``, as the training of ``kind`` (``"start"``,
    ``"regularized"``, ``"expanded"``) in ``iteration`` left them, hold NaN or infinity."""
    broken = [
        path
        for path, leaf in leaf_paths(variables, "run").items()
        if not np.isfinite(np.asarray(leaf, np.float32)).all()
    ]
    if not broken:
        return
    stage = "the start model" if kind == "start" else f"iteration {iteration}'s {kind} model"
    strength = f" or strength ({config.strength})" if kind == "regularized" else ""
    raise DivergedError(
        f"training {stage} diverged: {listing(broken, 3, as_list=True)} hold NaN or "
        f"infinity; a lower learning_rate ({config.learning_rate}){strength} may keep it finite"
    )


def run(
    config: MorphConfig,
    directory: str | os.PathLike,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """Runs the loop (see the module docstring); returns the rows it wrote.

    The rows' ``attrs`` (in the file too: ``pd.read_parquet(path).attrs``) hold the
    run's config under ``"morph_config"`` (`MorphConfig.to_dict`; `MorphConfig.from_dict`
    reads it back; its ``data_dir`` absolute, a ``~`` expanded, as a bench records it), so
    a run's file says which data set, steps, strength... made it, and
    the full name of its data set, with its version, under ``"resolved_dataset"``
    (``"mnist1d:1.0.0"`` where the config says ``"mnist1d"``).

    Rows: ``kind`` is ``"start"`` (the starting model, trained without regularizer),
    ``"regularized"`` (trained with it), ``"shrunk"`` (its alive channels; accuracy
    of the shrunk network, same outputs as the masked one: with ``source="gamma"``,
    without the dead channels' constants ``act(shift)``, which `fold` would keep; see
    docs/morph.md) and ``"expanded"`` (widened to the budget and retrained from scratch).

    ``python -m phosjax.morph --config configs/morph_mnist1d.yaml --dir runs/morph`` calls
    ``run(config, "runs/morph")`` with that file's `MorphConfig`. A tiny run, e.g.
    ``run(MorphConfig(ModelConfig("mlp", 10, (8, 8, 1), width=(32,)), dataset="digits",
    iterations=1, steps=20), "runs/tiny")``, returns (and writes) four rows: start,
    regularized, shrunk, expanded. It takes tens of seconds on CPU, most of it compiling
    and timing latency, so it is not a doctest; tests/morph/test_loop.py runs one.

    With ``progress``, a progress bar on stderr counts the trainings done, names the stage
    running (``iteration 1/2: regularized``) and estimates the time left.

    After the start model and each iteration, the variables of its last model are saved
    to ``<directory>/morph/states/iteration-<i>.npz`` (`STATES`), then its rows written.
    Where ``directory`` holds the rows of a run of the same config (an interrupted one),
    `run` continues it after its last iteration, keeping its rows, to the rows and
    variables the run would have reached uninterrupted (latencies measured anew; with
    ``cost="latency"``, priced by the `latency_table` stored under ``"latency_table"``); a
    finished one is returned as it is (stderr says so), its first ``iterations`` where it
    ran more; a larger ``iterations`` continues a finished run. ``overwrite`` starts over
    instead.

    Raises:
      MorphConfigError: before anything trains or is written (see `prepare`), also when
        ``directory`` holds rows that cannot be continued (another config's,
        unreadable, or, where more iterations would train, without the last state)
        unless ``overwrite``, which moves them and their states aside to
        ``iterations.parquet.old-<time>`` and ``states.old-<time>``, or when it cannot be
        written.
      DivergedError: a training left NaN or infinity in the variables (the rows of the
        iterations before are kept).
      TypeError: ``directory`` is no path (a list of them: one run per call).

    References:
      Gordon et al., MorphNet, https://arxiv.org/abs/1711.06798 (algorithm 1).

    Examples:
      A config is checked before anything trains (the tiny run above is not run here):

      >>> import tempfile
      >>> from phosjax.models import ModelConfig
      >>> config = MorphConfig(ModelConfig("mlp", 10, (40,)), dataset="nope")
      >>> with tempfile.TemporaryDirectory() as directory:
      ...     run(config, directory)
      Traceback (most recent call last):
      ...
      phosjax.morph._loop.MorphConfigError: MorphConfig.dataset='nope': unknown data set ...
    """
    _check_run_directory(directory, "run", "one run directory: run(config, 'runs/a')")
    if config.data_dir:  # recorded as the bench records it; "" is left for `load` to refuse
        config = dataclasses.replace(config, data_dir=absolute_data_dir(config.data_dir))
    # a continued run checks `multiple` by the latency table it priced by: none measured
    with latency_table_given(None if overwrite else _continued_latency_table(directory)):
        current, data = prepare(config)
    dataset = resolved_name(config.dataset, data_dir=config.data_dir)
    with _output(directory, overwrite) as path:
        earlier = _earlier(directory, config, current, dataset) if path.exists() else None
        table = earlier.latency_table if earlier is not None else None
        if config.cost == "latency" and table is None:
            table = latency_table()  # stored with the rows: a continued run prices as this
        with latency_table_given(table):
            common = (config.steps, config.batch_size, config.learning_rate, config.seed)
            budget = config_cost(current, config.cost)
            rows: list[dict[str, Any]] = []
            done = None
            if earlier is not None:
                rows, current, variables, _ = earlier
                done = rows[-1]["iteration"]
                ran = (
                    f"the run in {os.fspath(directory)!r} has finished {counted(done, 'iteration')}"
                )
                if done >= config.iterations:  # its first ones: this config's whole run
                    asked = config.iterations
                    print(
                        f"{ran} (of {asked}): nothing to train"
                        if done == asked
                        else f"{ran}, more than the {asked} asked: nothing to train; its rows "
                        f"up to iteration {asked} are this config's (iterations: {done} gives "
                        "them all)",
                        file=sys.stderr,
                    )
                    first = [row for row in rows if row["iteration"] <= asked]
                    return _frame(first, config, dataset, table)
                print(f"{ran}: continuing it with iteration {done + 1}", file=sys.stderr)
            with _Stages(config.iterations, progress, done) as stages:
                if done is None:
                    variables, accuracy = train(current, data, *common)
                    _finite(variables, 0, "start", config)
                    stages.done(rows, _row(0, "start", current, variables, accuracy))
                    write_bytes(_state(directory, 0), encode(variables))
                    write_table(path, _frame(rows, config, dataset, table))
                    done = 0
                for iteration in range(done + 1, config.iterations + 1):
                    model = build_model(current)
                    groups = channel_groups(model, variables, jnp.zeros((2, *current.input_shape)))
                    penalty = morph_regularizer(
                        groups, config.cost, config.source, config.threshold
                    )
                    variables, accuracy = train(current, data, *common, penalty, config.strength)
                    _finite(variables, iteration, "regularized", config)
                    stages.done(rows, _row(iteration, "regularized", current, variables, accuracy))
                    morphed = once(
                        current,
                        variables,
                        cost=config.cost,
                        budget=budget,
                        threshold=config.threshold,
                        source=config.source,
                        multiple=config.multiple,
                    )
                    shrunk = morphed.shrunk
                    assert shrunk.config is not None
                    shrunk_model = build_model(shrunk.config)
                    shrunk_accuracy = _test_accuracy(shrunk_model, shrunk.variables, data)
                    row = _row(
                        iteration, "shrunk", shrunk.config, shrunk.variables, shrunk_accuracy
                    )
                    stages.done(rows, row)
                    current = morphed.config
                    variables, accuracy = train(current, data, *common)
                    _finite(variables, iteration, "expanded", config)
                    stages.done(rows, _row(iteration, "expanded", current, variables, accuracy))
                    write_bytes(_state(directory, iteration), encode(variables))
                    write_table(path, _frame(rows, config, dataset, table))
            return _frame(rows, config, dataset, table)
