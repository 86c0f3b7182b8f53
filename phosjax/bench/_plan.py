"""`plan`: a `BenchConfig` becomes cells (with stable ids and hparam columns) in groups.

Planning checks every name before anything trains: unknown data sets and models are
listed with the known ones; a model name that cannot name a file (``a/b``) is refused;
a data set `phosjax.data.load` cannot read (another version prepared, no class label, a
text input) is named with the reason; bad model options,
models that fail to build on a data set, batch sizes larger than a data set's train
split, knob selectors that match no knob of any model, knob values out of the range a
matched knob declares (`phosjax.core.Range`), two knob selectors that match one knob of a
model, regularizers that apply to no model
(a selector that matches none of any model's params, tagged values or channel groups) and
models whose aux losses or path weights a lifted transform drops, or whose tagged values
it drops where a regularizer on activations matches them (as the train step refuses
them), are errors.
"""

import contextlib
import dataclasses
import functools
import hashlib
import itertools
import json
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from phosjax._callables import cut_repr
from phosjax._listing import counted, listing
from phosjax._nearest import nearest_names
from phosjax.bench import _layout
from phosjax.bench._config import (
    KNOB_PREFIX,
    LATER_GRID_FIELDS,
    BenchConfig,
    BenchError,
    ModelEntry,
    RegularizerEntry,
)
from phosjax.bench._profile import RunClock
from phosjax.core import (
    AUX_LOSS,
    INTERMEDIATES,
    PATH_WEIGHTS,
    Knob,
    SelectorError,
    aux_total,
    flatten,
    matches,
    select,
)
from phosjax.core._apply import dropped_tags
from phosjax.core._knobs import check_as_held
from phosjax.core._selectors import dropped_hint, selector_per_path, what_was_meant
from phosjax.core._tags import tags_seen
from phosjax.data import ArrayDataset, check_batch_size, load
from phosjax.data._load import (
    MissingFeaturesError,
    NoSuchFeatureError,
    SplitInNameError,
    declared_shapes,
    resolved_layout,
    resolved_name,
)
from phosjax.data._splits import MissingSplitsError, SplitsError, splits_written
from phosjax.models import ModelConfig, model_spec, registered_models
from phosjax.morph import UnsupportedOpError, channel_groups
from phosjax.train import Cell, HParams, plan_groups
from phosjax.train._state import _traced_knobs
from phosjax.train._step import (
    check_tags_kept,
    evaluation_apply,
    on_hint,
    training_apply,
    training_mutable,
)

_LATER_HPARAMS = ("compute_dtype", "lr_schedule", "warmup_steps")
"""HParams fields added after benches existed: in a cell's id only when not at their default,
so the cells of an existing bench keep their ids (and resume, not retrain)."""


def _hparams_identity(hparams: HParams) -> dict[str, Any]:
    defaults = HParams()
    return {
        name: value
        for name, value in dataclasses.asdict(hparams).items()
        if name not in _LATER_HPARAMS or value != getattr(defaults, name)
    }


def _momentum(values: Mapping[str, Any], unused: float = HParams().momentum) -> float:
    """A grid row's momentum, where its optimizer uses it (``"momentum"``); ``unused``
    elsewhere, so that a momentum axis does not train one adam cell once per value (its
    id and HParams take the default, its ``momentum`` column NaN)."""
    return values["momentum"] if values["optimizer"] == "momentum" else unused


HPARAM_COLUMNS = (
    "optimizer",
    "learning_rate",
    "weight_decay",
    "momentum",
    "batch_size",
    "steps",
    "label_smoothing",
    "grad_clip",
    "compute_dtype",
    "depth",
    "width",
    "options",
)
"""The hparam columns every bench has, then ``lr_schedule`` and ``warmup_steps`` where the
grid sets them, one ``knob/<selector>`` per knob axis and one ``reg/...`` per regularizer
(`RegularizerEntry.column`)."""


def short_hash(value: Any, length: int = 10) -> str:
    """A short stable hash of a JSON-serializable value."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


@dataclasses.dataclass(frozen=True)
class PlannedCell:
    """One cell of the plan.

    Attributes:
      cell: what the engine trains.
      row: its row of ``cells.parquet``: the cell columns, then the hparam columns.

    Examples:
      >>> from phosjax.bench import BenchConfig, plan
      >>> from phosjax.data import random_dataset
      >>> config = BenchConfig.from_dict(
      ...     {"models": ["mlp"], "datasets": ["toy"], "seeds": 2, "grid": {"batch_size": 16}}
      ... )
      >>> planned = plan(config, datasets={"toy": random_dataset("toy", (8,), 3)})
      >>> cell = planned.cells[1]
      >>> cell.cell.seed, {k: cell.row[k] for k in ("model", "dataset", "seed")}
      (1, {'model': 'mlp', 'dataset': 'toy', 'seed': 1})
    """

    cell: Cell
    row: dict[str, Any]

    @property
    def cell_id(self) -> str:
        """The cell's id in the bench's files (12 hex digits of a hash of its model
        config, data set, hparams and seed: planned again, the same)."""
        return self.row["cell_id"]


@dataclasses.dataclass(frozen=True)
class PlannedGroup:
    """Cells that train in one compiled group, and the metric columns they report.

    Examples:
      >>> from phosjax.bench import BenchConfig, plan
      >>> from phosjax.data import random_dataset
      >>> config = BenchConfig.from_dict(
      ...     {"models": ["mlp"], "datasets": ["toy"], "seeds": 2, "grid": {"batch_size": 16}}
      ... )
      >>> planned = plan(config, datasets={"toy": random_dataset("toy", (8,), 3)})
      >>> [group] = planned.groups  # both seeds train in one group
      >>> group.group_id.startswith("mlp-"), len(group.cells)
      (True, 2)
      >>> group  # a summary: its cells are its attribute
      PlannedGroup('mlp-...': 2 cells of mlp on 'toy')
    """

    group_id: str
    cells: tuple[PlannedCell, ...]
    metrics: tuple[str, ...]

    def __repr__(self) -> str:  # the dataclass's printed every cell's config and row
        row = self.cells[0].row if self.cells else {}
        named = {"model", "dataset"} <= set(row)  # plan writes both; a hand-made row may not
        what = f" of {row['model']} on {row['dataset']!r}" if named else ""
        metrics = f", metrics {list(self.metrics)}" if self.metrics else ""
        return f"PlannedGroup({self.group_id!r}: {counted(len(self.cells), 'cell')}{what}{metrics})"


@dataclasses.dataclass(frozen=True)
class Plan:
    """The whole bench: its groups, data sets and hparam column names (`plan` makes it).

    Examples:
      >>> from phosjax.bench import BenchConfig, plan
      >>> from phosjax.data import random_dataset
      >>> config = BenchConfig.from_dict(
      ...     {"models": ["mlp"], "datasets": ["toy"], "seeds": 2, "grid": {"batch_size": 16}}
      ... )
      >>> planned = plan(config, datasets={"toy": random_dataset("toy", (8,), 3)})
      >>> len(planned.cells), list(planned.datasets), planned.hparam_columns[:2]
      (2, ['toy'], ('optimizer', 'learning_rate'))
      >>> planned  # a summary: its groups are its attribute
      Plan(2 cells in 1 group ['mlp-...'] on ['toy'])
    """

    groups: tuple[PlannedGroup, ...]
    datasets: dict[str, ArrayDataset]
    hparam_columns: tuple[str, ...]
    _former_rows: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    """Of each cell whose row older phosjax wrote otherwise (it hashed its options as
    written: ``dropout: 0`` apart from ``0.0``, ``param_dtype: float32`` apart from none),
    by ``cell_id``: that row's ``cell_id``, ``model_id`` and ``options``."""

    def __repr__(self) -> str:  # the dataclass's printed every cell's config and row
        ids = cut_repr([group.group_id for group in self.groups], 100)
        return (
            f"Plan({counted(len(self.cells), 'cell')} in {counted(len(self.groups), 'group')} "
            f"{ids} on {cut_repr(list(self.datasets), 100)})"
        )

    @property
    def cells(self) -> list[PlannedCell]:
        """Every group's cells, group by group."""
        return [cell for group in self.groups for cell in group.cells]

    def models(self) -> dict[str, ModelConfig]:
        """The resolved model config of each model id (``model_id`` of a cell's row).

        Examples:
          >>> from phosjax.bench import BenchConfig, plan
          >>> from phosjax.data import random_dataset
          >>> config = BenchConfig.from_dict(
          ...     {"models": ["mlp"], "datasets": ["toy"], "seeds": 2, "grid": {"batch_size": 16}}
          ... )
          >>> planned = plan(config, datasets={"toy": random_dataset("toy", (8,), 3)})
          >>> [model_id] = {cell.row["model_id"] for cell in planned.cells}  # both seeds'
          >>> model = planned.models()[model_id]
          >>> model.name, model.input_shape, model.num_classes  # read from the data set
          ('mlp', (8,), 3)
        """
        return {c.row["model_id"]: c.cell.model for c in self.cells}


def with_former_ids(plan_: Plan, stored: Collection[str]) -> Plan:
    """``plan_`` with the rows (`Plan._former_rows`) of the cells a bench holds under their
    former ids (``stored``: its cell ids), their groups' ids made from those: a bench made
    by older phosjax keeps its cells, rows and checkpoints as they are."""
    renamed = {
        cell_id: former
        for cell_id, former in plan_._former_rows.items()
        if former["cell_id"] in stored and cell_id not in stored
    }
    if not renamed:
        return plan_
    groups = []
    for group in plan_.groups:
        cells = [PlannedCell(c.cell, {**c.row, **renamed.get(c.cell_id, {})}) for c in group.cells]
        groups.append(_named_group(cells, group.metrics))
    former_rows = {k: v for k, v in plan_._former_rows.items() if k not in renamed}
    return dataclasses.replace(plan_, groups=tuple(groups), _former_rows=former_rows)


def former_cell_ids(plan_: Plan) -> set[str]:
    """The ids older phosjax gave cells that ``plan_`` names otherwise; after
    `with_former_ids`, those of cells it trained a second time under their new ids."""
    return {row["cell_id"] for row in plan_._former_rows.values()}


def load_datasets(
    names: Sequence[str],
    data_dir: str | None,
    features: Mapping[str, Sequence[str]] | None = None,
    splits: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, ArrayDataset]:
    """Loads each data set (reading its `features` and `splits`, where given), after
    checking every name as `load` would; its errors as BenchError."""
    features, splits = features or {}, splits or {}
    check_datasets(names, data_dir, features, splits)
    try:
        return {
            name: load(
                name, data_dir=data_dir, features=features.get(name), splits=splits.get(name)
            )
            for name in names
        }
    except (ValueError, PermissionError) as error:  # a bad name; a read-only data dir
        raise BenchError(str(error)) from error


def dataset_versions(config: BenchConfig) -> dict[str, str]:
    """The full TFDS name, ``name[/config]:version``, that each of ``config``'s data sets
    reads (`phosjax.data`'s `resolved_name`: a name without a version reads its code's,
    else the newest prepared).

    Examples:
      >>> import tempfile
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     dataset_versions(BenchConfig.from_dict(
      ...         {"models": ["mlp"], "datasets": ["digits"], "data_dir": tmp}))
      {'digits': 'digits:1.0.0'}
    """
    return {name: resolved_name(name, data_dir=config.data_dir) for name in config.datasets}


class DataShape(Protocol):
    """What a models entry's config reads of a data set (an `ArrayDataset` has it)."""

    @property
    def name(self) -> str: ...
    @property
    def input_shape(self) -> tuple[int, ...]: ...
    @property
    def num_classes(self) -> int: ...


class DeclaredShape(NamedTuple):
    """A data set's `DataShape` as its metadata declares it (`check_datasets`)."""

    name: str
    input_shape: tuple[int, ...]
    num_classes: int


def check_datasets(
    names: Sequence[str],
    data_dir: str | None,
    features: Mapping[str, Sequence[str]] | None = None,
    splits: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, DeclaredShape]:
    """Raises a BenchError for the first data set of ``names`` that `load` would refuse
    (`phosjax.data.check_loadable`: nothing is prepared or read); else the shapes of those
    whose metadata declares their number of classes."""
    features, splits = features or {}, splits or {}
    declared = {}
    for name in names:
        try:
            shape, classes = declared_shapes(
                name, data_dir=data_dir, features=features.get(name), splits=splits.get(name)
            )
        except NoSuchFeatureError as error:  # features given: from dataset_features
            raise BenchError(_no_such_feature_text(error)) from error
        except MissingFeaturesError as error:  # no dataset_features entry
            raise BenchError(_missing_features_text(error)) from error
        except MissingSplitsError as error:  # no dataset_splits entry
            raise BenchError(_missing_splits_text(error)) from error
        except SplitInNameError as error:  # said 'load takes ... splits=(train, test)'
            raise BenchError(_split_in_name_text(error)) from error
        except SplitsError as error:  # said as load's splits=(...): the config's key instead
            raise BenchError(error.told_as("dataset_splits", error.name)) from error
        except (ValueError, PermissionError) as error:
            raise BenchError(str(error)) from error
        if classes is not None:
            declared[name] = DeclaredShape(name, shape, classes)
    return declared


def check_distinct_datasets(config: BenchConfig) -> None:
    """Raises a BenchError where two names of ``config.datasets`` are one data set read
    alike (its `resolved_name` and `resolved_layout`: ``digits`` and ``digits:1.0.0``),
    which a bench would train and report as two; `check_datasets` first, where there are
    two names. A new bench is checked so; one made so before still continues."""
    names, features, splits = config.datasets, config.dataset_features, config.dataset_splits
    if len(names) < 2:
        return
    check_datasets(names, config.data_dir, features, splits)
    first: dict[tuple[Any, ...], str] = {}
    twice: list[tuple[str, str]] = []  # (the name kept, one naming it again)
    for name in names:
        resolved = resolved_name(name, data_dir=config.data_dir)
        layout = resolved_layout(
            name, data_dir=config.data_dir, features=features.get(name), splits=splits.get(name)
        )
        kept = first.setdefault((resolved, *layout), name)
        if kept != name:
            twice.append((kept, name))
    if not twice:
        return
    read_as = {name: read for read, name in first.items()}
    kept, name = twice[0]
    resolved, x_key, y_key, pair = read_as[kept]
    dropped = [again for _, again in twice]
    more = "".join(f" (so are {k!r} and {n!r})" for k, n in twice[1:])
    entries = [
        f"no {' or '.join(fields)} entry for {again!r}"
        for again in dropped
        if (
            fields := [
                f for f in ("dataset_features", "dataset_splits") if again in getattr(config, f)
            ]
        )
    ]
    without = f", and {', '.join(entries)}" if entries else ""
    raise BenchError(
        f"datasets names one data set twice: {kept!r} and {name!r} are both {resolved}, "
        f"read alike (input {x_key!r}, label {y_key!r}, splits {list(pair)}), which a "
        f"bench would train and report as two{more}; keep {kept!r} alone: datasets: "
        f"[{', '.join(each for each in names if each not in dropped)}]{without}"
    )


def check_model_sizes(
    config: BenchConfig, datasets: Mapping[str, DataShape]
) -> dict[str, set[str]]:
    """Raises the `BenchError` `plan` would for a models entry whose depth, width or
    options its model refuses on one of ``datasets`` (with the grid's depths and widths);
    else the ``model_id`` of each model `plan` makes on each of them, and the one older
    phosjax gave it (`Plan._former_rows`), by data set name (a model whose code changed its
    defaults has others); nothing is built."""
    ids: dict[str, set[str]] = {name: set() for name in datasets}
    for entry, name, model in _resolved_models(config, datasets):
        spelled = f"{model.name}-{short_hash(_as_spelled(model, entry), 8)}"  # older benches'
        ids[name] |= {_model_id(model), spelled}
    return ids


def check_knobs(config: BenchConfig, datasets: Mapping[str, DataShape]) -> None:
    """Raises the `BenchError` `plan` would for a ``grid.knobs`` selector that matches no
    knob of the models on ``datasets`` (each traced abstractly: nothing is computed)."""
    axes = config.grid.axes()
    selectors = [name.removeprefix(KNOB_PREFIX) for name in axes if name.startswith(KNOB_PREFIX)]
    if not selectors:
        return
    knobs: dict[str, dict[str, None]] = {}  # each name's knob paths, all configs
    dropped: dict[str, dict[str, None]] = {}  # those a lifted transform dropped
    for entry, name, model in _resolved_models(config, datasets):
        paths, lost = _built(entry.name, name, model)
        knobs.setdefault(entry.name, {}).update(dict.fromkeys(paths))
        dropped.setdefault(entry.name, {}).update(dict.fromkeys(lost))
    _check_knobs(selectors, knobs, dropped)


def _resolved_models(
    config: BenchConfig, datasets: Mapping[str, DataShape]
) -> Iterator[tuple[ModelEntry, str, ModelConfig]]:
    """Each resolved model of ``config`` on each of ``datasets`` at each of the grid's
    depths and widths (`_model_config`), as its models entry, the data set's name and it."""
    axes = config.grid.axes()
    for entry, (name, data) in itertools.product(config.model_entries(), datasets.items()):
        for depth, width in itertools.product(axes["depth"], axes["width"]):
            yield entry, name, _model_config(entry, data, depth, width)


def _model_id(model: ModelConfig) -> str:
    """The ``model_id`` of a resolved ``model``: its name and a hash of its config."""
    return f"{model.name}-{short_hash(_identity(model), 8)}"


def _identity(model: ModelConfig) -> dict[str, Any]:
    """What the ids of a resolved ``model`` hash: its config, less the options it gives at
    their block's own default (`ModelSpec.without_defaults_given`: the same model)."""
    return model_spec(model.name).without_defaults_given(model).to_dict()


def _as_spelled(model: ModelConfig, entry: ModelEntry) -> dict[str, Any]:
    """``model.to_dict()`` with the options its model registers and ``entry`` gives as
    they spell them: what older phosjax hashed ids from, before an int given for (or
    registered as the default of) a float option was that float."""
    options = {**dict(model_spec(model.name).options), **entry.options}
    given = model.replace(options=tuple(options.items())).to_dict()["options"]
    spelled = model.to_dict()
    return {**spelled, "options": {**spelled["options"], **given}}


def _named_group(cells: Sequence[PlannedCell], metrics: tuple[str, ...]) -> PlannedGroup:
    """A group of ``cells``, its id made from their ids, written in their rows."""
    group_id = f"{cells[0].row['model']}-{short_hash([c.cell_id for c in cells], 8)}"
    named = tuple(PlannedCell(c.cell, {**c.row, "group_id": group_id}) for c in cells)
    return PlannedGroup(group_id, named, metrics)


def _no_such_feature_text(error: NoSuchFeatureError) -> str:
    """`error` in a bench config's terms: the ``dataset_features`` entry, and what to write."""
    return error.told_as(f"dataset_features.{error.name}", _features_entry(error))


def _missing_features_text(error: MissingFeaturesError) -> str:
    """`error` in a bench config's terms: the ``dataset_features`` entry to write."""
    return error.told_by("a bench", "its dataset_features entry", _features_entry(error))


def _features_entry(error: NoSuchFeatureError | MissingFeaturesError) -> str:
    """The ``dataset_features`` entry naming `error`'s example pair of features."""
    pair = error.example_pair
    return f"dataset_features: {{{error.name}: [{pair[0]}, {pair[1]}]}}"


def _missing_splits_text(error: MissingSplitsError) -> str:
    """`error` in a bench config's terms: the ``dataset_splits`` entry to write."""
    entry = splits_written(error.suggested, "dataset_splits", error.name)
    return error.told_by("a bench", "its dataset_splits entry", entry)


def _split_in_name_text(error: SplitInNameError) -> str:
    """`error` in a bench config's terms: the data set's name alone in ``datasets``, its
    splits in ``dataset_splits``."""
    return (
        f"datasets names {error.name!r}, a data set with a split ({error.split!r}); a bench "
        f"takes the data set's name alone in datasets ({error.dataset}) and the splits to "
        f"train and test on in dataset_splits, e.g. "
        f"{splits_written(error.suggested, 'dataset_splits', error.dataset)}"
    )


def check_models(entries: Sequence[ModelEntry]) -> None:
    """Raises a `BenchError` naming an entry whose model is not registered, or whose name
    cannot name a bench's files."""
    known = registered_models()
    for entry in entries:
        if entry.name not in known:
            near = nearest_names(entry.name, known)
            hint = f" (did you mean {near}?)" if near else ""
            raise BenchError(
                f"unknown model {entry.name!r}{hint}; registered models: {', '.join(known)} "
                "(register your own and pass --import your.module)."
            )
        if not _layout.PLAIN_NAME.fullmatch(entry.name):
            raise BenchError(
                f"model {entry.name!r} cannot name the bench's files (blurbs/<name>-<hash>"
                ".json, results/part-<name>-...): a bench takes a model name without '/', "
                "'\\' or NUL that does not start with '.'; register it under such a name."
            )


def _width(width: Any) -> int | tuple[int, ...] | None:
    """A config's width (an int, a list of per-stage ints, or None) as `ModelConfig`'s."""
    return tuple(width) if isinstance(width, list) else width


def _resolved(entry: ModelEntry, data: DataShape, depth: Any, width: Any) -> ModelConfig:
    return ModelConfig(
        entry.name,
        num_classes=data.num_classes,
        input_shape=tuple(data.input_shape),
        depth=depth,
        width=_width(width),
        options=tuple(entry.options.items()),
    ).resolved()


def _model_config(entry: ModelEntry, data: DataShape, depth: Any, width: Any) -> ModelConfig:
    """``entry``'s resolved model on ``data``; the grid's ``depth`` and ``width`` apply
    where the entry sets none."""
    sizes = {"depth": depth, "width": width}
    taken = [k for k, v in sizes.items() if getattr(entry, k) is None and v is not None]
    try:  # a bad depth, width or options value: an error naming the entry
        return _resolved(entry, data, **{**sizes, **_own_sizes(entry)})
    except (ValueError, TypeError) as error:
        hint = _own_sizes_hint(entry, data, taken)
        refused = BenchError if hint else EntryError  # the grid's sizes refused, not its own
        raise refused(f"{_model_on(entry.name, data.name, error)}{hint}") from error


class EntryError(BenchError):
    """A models entry whose own depth, width or options its model refuses (it fails
    without the grid's sizes too): the file or option that sets ``models`` gave them."""


def _own_sizes(entry: ModelEntry) -> dict[str, Any]:
    """The depth and width ``entry`` sets itself."""
    return {k: v for k, v in (("depth", entry.depth), ("width", entry.width)) if v is not None}


def _own_sizes_hint(entry: ModelEntry, data: DataShape, taken: list[str]) -> str:
    """When ``entry`` fails with the grid's sizes it took (``taken``: ``"depth"``,
    ``"width"``) yet builds with the model's defaults: how to give it those (a
    block-less ``logreg`` in a grid of widths)."""
    if not taken:
        return ""
    try:
        default = _resolved(entry, data, **{"depth": None, "width": None, **_own_sizes(entry)})
    except (ValueError, TypeError):
        return ""  # it fails without the grid's sizes too
    names = ", ".join(f"grid.{k}" for k in taken)
    shown = ", ".join(f"{k}: {json.dumps(default.to_dict()[k])}" for k in taken)
    return (
        f" ({names}: the grid's sizes go to every models entry that sets none; give this "
        f"one its own, e.g. {{name: {entry.name}, {shown}}}: the model's defaults)"
    )


def _built(
    name: str, dataset: str, config: ModelConfig
) -> tuple[Mapping[str, Knob], tuple[str, ...]]:
    """The knobs of ``config``'s model, and the paths of those a lifted transform dropped,
    once its init, train step and evaluation trace (nothing is computed): a model that
    fails to build is a `BenchError` naming it and the data set."""
    try:
        model_metrics(config)
        return _traced_knobs(config, tuple(config.input_shape))
    except Exception as error:  # a model's own code, a plugin's too: any failure to build
        why = error if isinstance(error, ValueError | TypeError) else repr(error)
        raise BenchError(_model_on(name, dataset, why)) from error


def _model_on(name: str, dataset: str, why: object) -> str:
    """``model 'NAME' on 'DATASET': why``, naming the model once where ``why``, a model's
    error, starts by naming it (``model 'mlp': width must be ...``).

    Examples:
      >>> _model_on("mlp", "toy", "model 'mlp': width must be an int >= 1")
      "model 'mlp' on 'toy': width must be an int >= 1"
      >>> _model_on("cnn2d", "toy", "model 'cnn2d' takes image inputs")
      "model 'cnn2d' on 'toy' takes image inputs"
      >>> _model_on("mlp", "toy", "model 'mlp2' failed")
      "model 'mlp' on 'toy': model 'mlp2' failed"
    """
    named, text = f"model {name!r}", str(why)
    rest = text.removeprefix(named)
    said = f"{named} on {dataset!r}"
    return f"{said}{rest}" if rest[:1] in (":", " ") and rest != text else f"{said}: {text}"


@functools.cache
def _traced_step(config: ModelConfig) -> dict[str, tuple[str, ...]]:
    """What a train step of the model writes, traced abstractly (nothing is computed)
    with its evaluation (a model failing only there fails when planned): the paths of its
    ``params`` and of the ``activations`` it sows, and the ``metrics`` it reports besides
    the base ones (``aux/<name>``, ``path_weight/<path>``), and the paths of the tagged
    values a lifted transform ``dropped`` (`dropped_tags`), which no regularizer sees."""
    model = config.build()
    x = jnp.zeros((2, *config.input_shape), jnp.float32)
    key = jax.random.key(0)

    def trace() -> tuple[Any, Any, dict[str, Any]]:
        variables = model.init(key, x)
        mutable = training_mutable(variables, AUX_LOSS, PATH_WEIGHTS, INTERMEDIATES)
        with tags_seen() as seen:
            _, out = training_apply(model, model.apply, variables, x, key, mutable)
        recorded = flatten(out.get(INTERMEDIATES, {}), unwrap=False)
        dropped.extend(dropped_tags(seen, recorded) or [])
        evaluation_apply(model, model.apply, variables, x)  # no rng, nothing written
        _, aux = aux_total(out.get(AUX_LOSS, {}))
        weights = flatten(out.get(PATH_WEIGHTS, {}), unwrap=False)
        metrics = {
            **{f"aux/{name}": value for name, value in aux.items()},
            **{f"path_weight/{path}": jnp.zeros(()) for path in weights},
        }
        return variables["params"], out.get(INTERMEDIATES, {}), metrics

    dropped: list[str] = []
    params, activations, metrics = jax.eval_shape(trace)
    return {
        "params": tuple(flatten(params)),
        "activations": tuple(flatten(activations)),
        "metrics": tuple(sorted(metrics)),
        "dropped": tuple(dropped),
    }


def model_metrics(config: ModelConfig) -> tuple[str, ...]:
    """The ``aux/<name>`` and ``path_weight/<path>`` metrics a train step of it reports."""
    return _traced_step(config)["metrics"]


def penalized_paths(config: ModelConfig) -> dict[str, tuple[str, ...]]:
    """What an ``l1``/``l2`` selector can match, by its ``on``: the paths of the model's
    ``params`` and of the ``activations`` it sows in a train step."""
    traced = _traced_step(config)
    return {"params": traced["params"], "activations": traced["activations"]}


@functools.cache
def morph_groups(config: ModelConfig) -> tuple[str, ...] | str:
    """The names of the model's channel groups (`phosjax.morph`), or why there are none."""
    model = config.build()
    x = jax.ShapeDtypeStruct((2, *config.input_shape), jnp.float32)
    init = lambda: model.init(jax.random.key(0), jnp.zeros(x.shape, x.dtype), train=False)
    try:
        return channel_groups(model, jax.eval_shape(init), x, train=False).names
    except UnsupportedOpError as error:
        return str(error)


def _check_penalized_kept(
    entry: RegularizerEntry, model: ModelConfig, name: str, dataset: str
) -> None:
    """Raises a `BenchError` naming the model (``name``) and ``dataset`` where ``entry``, a
    regularizer on activations, matches a tagged value of ``model`` that a lifted
    transform dropped, which the train step refuses (`check_penalized_tags_kept`)."""
    if entry.on != "activations":
        return
    unpenalized = f"the regularizer {entry.column()!r} would not penalize it"
    try:
        check_tags_kept(entry.selector, _traced_step(model)["dropped"], unpenalized)
    except ValueError as error:
        raise BenchError(_model_on(name, dataset, error)) from None


def _applies(entry: RegularizerEntry, model: ModelConfig) -> str | None:
    """None when ``entry`` applies to ``model``, else why not."""
    if entry.kind != "morph":
        what = "param" if entry.on == "params" else "activation (tagged value)"
        paths = penalized_paths(model)
        try:
            select(paths[entry.on], entry.selector, what=what)
        except SelectorError as error:
            return f"{error}{on_hint(entry.selector, entry.on, paths)}"
        return None
    names = morph_groups(model)
    if isinstance(names, str):
        return names
    if not any(matches(entry.selector, name) for name in names):
        return f"no channel group matches {entry.selector!r}; its groups: {list(names)}"
    return None


def _width_text(width: Any) -> str:
    return ",".join(str(w) for w in (width if isinstance(width, tuple | list) else [width]))


def _check_batch_sizes(batch_sizes: Sequence[Any], datasets: Mapping[str, ArrayDataset]) -> None:
    """Raises `BenchError` for a batch size larger than a data set's train split."""
    for data in datasets.values():
        for batch_size in batch_sizes:
            try:
                check_batch_size("grid.batch_size", batch_size, data)
            except ValueError as error:
                raise BenchError(str(error)) from None


def _check_knobs(
    selectors: Sequence[str],
    by_model: Mapping[str, Iterable[str]],
    dropped: Mapping[str, Iterable[str]],
) -> None:
    """Raises `BenchError` for a knob axis whose selector matches no knob of any model,
    naming the knobs each model declares and, where it can tell, what was meant, or the
    knob it matches that a lifted transform dropped (``dropped``, by model).

    Examples:
      >>> _check_knobs(["T"], {"mlp": [], "choicenet": ["blocks_0/T", "blocks_1/T"]}, {})
      Traceback (most recent call last):
      phosjax.bench._errors.BenchError: knob selector 'T' matches no knob of any model; the \
models declare: {'choicenet': ['blocks_0/T', 'blocks_1/T']}. A selector matches whole paths; \
'**/T' would match 'blocks_0/T', 'blocks_1/T'.
    """
    for selector in selectors:
        if not any(matches(selector, p) for paths in by_model.values() for p in paths):
            declared = {name: list(paths) for name, paths in by_model.items() if paths}
            every = dict.fromkeys(p for paths in declared.values() for p in paths)
            lost = (dropped_hint(selector, dropped[n], "knob", f" in model {n!r}") for n in dropped)
            raise BenchError(
                f"knob selector {selector!r} matches no knob of any model; the models "
                f"declare: {declared or 'no knobs at all'}.{what_was_meant(selector, every)}"
                f"{next(filter(None, lost), '')}"
            )


def _check_knob_ranges(
    model: str, dataset: str, declared: Mapping[str, Knob], values: Mapping[str, float]
) -> None:
    """Raises `BenchError` when two knob axes (``values``, by selector) match one knob of
    ``model`` (the engine sets each knob once), or a grid value is out of the range of a
    knob of ``model`` its selector matches, naming the axis, the model and the knob.

    Examples:
      >>> from phosjax.core import Range
      >>> declared = {"blocks_0/T": Knob("blocks_0/T", 1.0, "temperature", Range(gt=0))}
      >>> _check_knob_ranges("choicenet", "toy", declared, {"**/T": 0.0})
      Traceback (most recent call last):
      phosjax.bench._errors.BenchError: grid.knobs['**/T'] = 0.0 for model 'choicenet' on ...
    """
    find = lambda selector: [path for path in declared if matches(selector, path)]
    try:
        chosen = selector_per_path(values, find, what="knob")
    except ValueError as error:
        raise BenchError(f"grid.knobs for model {model!r} on {dataset!r}: {error}") from None
    for path, selector in chosen.items():
        try:
            check_as_held(declared[path], values[selector])
        except ValueError as error:
            raise BenchError(
                f"grid.knobs[{selector!r}] = {values[selector]} for model {model!r} on "
                f"{dataset!r}: {error} Give grid.knobs values in its range."
            ) from None


def check_config(config: Any, alternatives: str = "") -> None:
    """Raises `BenchError` unless ``config`` is a `BenchConfig`, naming how to make one
    (and ``alternatives``, as "or None", where the caller takes others).

    Examples:
      >>> check_config({"models": ["mlp"]})
      Traceback (most recent call last):
      phosjax.bench._errors.BenchError: config must be a BenchConfig (BenchConfig.from_dict...
    """
    if not isinstance(config, BenchConfig):
        raise BenchError(
            "config must be a BenchConfig (BenchConfig.from_dict(data), load_config(path))"
            f"{' ' + alternatives if alternatives else ''}, got {type(config).__name__} "
            f"{cut_repr(config, 80)}."
        )


def given_datasets(names: Sequence[str], given: Any) -> dict[str, ArrayDataset]:
    """The data sets ``names`` of ``given``, the ``datasets`` a caller passed instead of
    loading them; a `BenchError` names what is wrong: not a mapping, a name it lacks
    (with the nearest it has), a value that is no `ArrayDataset`.

    Examples:
      >>> from phosjax.data import random_dataset
      >>> given_datasets(["toy"], {"tyo": random_dataset("toy", (8,), 3)})
      Traceback (most recent call last):
      phosjax.bench._errors.BenchError: datasets has no 'toy', a data set of the config ...
    """
    usage = (
        "pass {name: ArrayDataset} for each of the config's datasets, as {'toy': "
        "phosjax.data.random_dataset('toy', (8,), 3)}, or None to load them"
    )
    if not isinstance(given, Mapping):
        raise BenchError(f"datasets must be a mapping, got {type(given).__name__}; {usage}.")
    has = sorted(map(str, given))
    for name in names:
        if name not in given:
            near = nearest_names(name, has)
            raise BenchError(
                f"datasets has no {name!r}, a data set of the config ({listing(names)}); it "
                f"has {listing(has, as_list=True)}"
                + (f" (did you mean {near}?)" if near else "")
                + f"; {usage}."
            )
        if not isinstance(given[name], ArrayDataset):
            raise BenchError(
                f"datasets[{name!r}] is a {type(given[name]).__name__}, not an ArrayDataset; "
                f"{usage}."
            )
    return {name: given[name] for name in names}


def plan(
    config: BenchConfig,
    datasets: Mapping[str, ArrayDataset] | None = None,
    clock: RunClock | None = None,
) -> Plan:
    """Every cell of ``config``, grouped as the engine trains them, with stable ids.

    Its models entries are checked on the shapes its data sets' metadata declares before
    any is loaded: a refused entry does not wait for a built-in data set to be prepared.

    Args:
      config: the bench.
      datasets: data sets by name, instead of loading them (tests).
      clock: the run's, which times the loading of the data sets as its phase ``data``.

    Returns:
      The `Plan`; cells are listed model by model, in config order.

    Raises:
      BenchError: ``config`` not a `BenchConfig`, an unknown model or data set,
        ``datasets`` lacking one of the config's or holding something else than an
        `ArrayDataset`, a data set `phosjax.data.load` cannot read
        (`phosjax.data.check_loadable` gives the reason), a bad model option, a
        model that fails to build on a data set, a batch size larger than a data set's
        train split, a knob selector that matches no knob of any model, two that match one
        knob of a model, a knob value out of the range of a knob it sets
        (`phosjax.core.Range`), or a regularizer
        that applies to no model (each model's reason is listed, with the nearest paths).

    Examples:
      >>> from phosjax.data import random_dataset
      >>> data = random_dataset("toy", (8,), 3)
      >>> config = BenchConfig.from_dict({
      ...     "models": ["mlp", "logreg"],
      ...     "datasets": ["toy"],
      ...     "seeds": 2,
      ...     "grid": {"batch_size": 16, "steps": 10, "learning_rate": [1e-3, 1e-2]},
      ... })
      >>> planned = plan(config, datasets={"toy": data})
      >>> len(planned.cells), len(planned.groups)  # 2 models x 2 rates x 2 seeds
      (8, 2)
      >>> [len(group.cells) for group in planned.groups]  # rates and seeds share a group
      [4, 4]
      >>> {k: planned.cells[0].row[k] for k in ("model", "dataset", "seed", "learning_rate")}
      {'model': 'mlp', 'dataset': 'toy', 'seed': 0, 'learning_rate': 0.001}
    """
    check_config(config)
    entries = config.model_entries()
    check_models(entries)
    if datasets is None:
        names, data_dir = config.datasets, config.data_dir
        features, splits = config.dataset_features, config.dataset_splits
        declared = check_datasets(names, data_dir, features, splits)
        check_model_sizes(config, declared)  # before a built-in data set is prepared
        with clock.apart("data") if clock else contextlib.nullcontext():
            datasets = load_datasets(names, data_dir, features, splits)
    datasets = given_datasets(config.datasets, datasets)
    axes = config.grid.axes()
    _check_batch_sizes(axes["batch_size"], datasets)
    schedule_columns = [  # only where the grid sets them: older benches keep their columns
        name for name, default in LATER_GRID_FIELDS.items() if axes[name] != [default]
    ]
    knob_columns = [name for name in axes if name.startswith(KNOB_PREFIX)]
    selectors = [name.removeprefix(KNOB_PREFIX) for name in knob_columns]
    reg_entries = config.grid.regularizer_entries()
    reg_columns = [reg.column() for reg in reg_entries]
    applied: set[str] = set()  # a morph regularizer skips models it cannot price
    skipped: dict[str, dict[str, str]] = {column: {} for column in reg_columns}
    planned: dict[str, PlannedCell] = {}
    former_rows: dict[str, dict[str, str]] = {}
    for entry, (dataset, data) in itertools.product(entries, datasets.items()):
        for point in itertools.product(*axes.values()):
            values = dict(zip(axes, point, strict=True))
            model = _model_config(entry, data, values["depth"], values["width"])
            paths, _ = _built(entry.name, dataset, model)  # own (depth, options)
            knob_values = {
                s: values[f"{KNOB_PREFIX}{s}"]
                for s in selectors
                if any(matches(s, p) for p in paths)
            }
            _check_knob_ranges(entry.name, dataset, paths, knob_values)
            strengths, nan = {}, float("nan")
            for reg, column in zip(reg_entries, reg_columns, strict=True):
                _check_penalized_kept(reg, model, entry.name, dataset)  # first: as the step
                reason = _applies(reg, model)
                if reason is None:
                    strengths[column] = reg.regularizer(values[column])
                    applied.add(column)
                else:
                    skipped[column][entry.name] = reason
            try:
                hparams = HParams(
                    optimizer=values["optimizer"],
                    learning_rate=values["learning_rate"],
                    lr_schedule=values["lr_schedule"],
                    warmup_steps=values["warmup_steps"],
                    weight_decay=values["weight_decay"],
                    momentum=_momentum(values),
                    batch_size=values["batch_size"],
                    steps=values["steps"],
                    eval_every=config.eval_every,
                    label_smoothing=values["label_smoothing"],
                    grad_clip=values["grad_clip"],
                    compute_dtype=values["compute_dtype"],
                    knobs=tuple(knob_values.items()),
                    regularizers=tuple(strengths.values()),
                )
            except (ValueError, TypeError) as error:
                raise BenchError(f"grid: {error}") from error
            model_dict = _identity(model)
            model_id = _model_id(model)
            spelled = _as_spelled(model, entry)
            identity = _hparams_identity(hparams)  # the seeds' cells share it
            hparam_row = {
                **{k: values[k] for k in HPARAM_COLUMNS[:9]},  # optimizer to compute_dtype
                **{k: values[k] for k in schedule_columns},
                "momentum": _momentum(values, unused=float("nan")),
                "grad_clip": float("nan") if hparams.grad_clip is None else hparams.grad_clip,
                "depth": model.depth,
                "width": _width_text(model.width),
                "options": json.dumps(model_dict["options"], sort_keys=True),
                **{f"{KNOB_PREFIX}{s}": knob_values.get(s, float("nan")) for s in selectors},
                **{c: strengths[c].strength if c in strengths else nan for c in reg_columns},
            }
            for seed in config.seed_list():
                cell = Cell(model, dataset, hparams, seed)
                cell_id = short_hash([model_dict, dataset, identity, seed], 12)
                row = {
                    "cell_id": cell_id,
                    "group_id": "",
                    "model_id": model_id,
                    "model": entry.name,
                    "dataset": dataset,
                    "seed": seed,
                    **hparam_row,
                }
                planned.setdefault(cell_id, PlannedCell(cell, row))
                former = short_hash([spelled, dataset, identity, seed], 12)
                if former != cell_id:
                    former_rows.setdefault(
                        cell_id,
                        {
                            "cell_id": former,
                            "model_id": f"{model.name}-{short_hash(spelled, 8)}",
                            "options": json.dumps(spelled["options"], sort_keys=True),
                        },
                    )
    check_knobs(config, datasets)
    for column in reg_columns:
        if column not in applied:
            listed = "; ".join(f"{name}: {why}" for name, why in skipped[column].items())
            raise BenchError(f"regularizer {column!r} applies to no model ({listed}).")
    cells = list(planned.values())
    try:
        planned_groups = plan_groups([c.cell for c in cells])
    except ValueError as error:  # e.g. learning rates 0.1 and 0.100000001: one float32 value
        raise BenchError(f"the grid gives cells the engine refuses: {error}") from error
    groups = []
    for group in planned_groups:
        metrics = model_metrics(group.model)
        metrics += (_layout.REGULARIZER,) * bool(group.hparams.regularizers)
        metrics += (_layout.LR,) * group.hparams.scheduled
        groups.append(_named_group([cells[i] for i in group.index], metrics))
    columns = (*HPARAM_COLUMNS, *schedule_columns, *knob_columns, *reg_columns)
    return Plan(tuple(groups), dict(datasets), columns, former_rows)
