"""`train_grid`: plan, initialize and train every cell of a grid; tidy results."""

import collections
import dataclasses
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
import pandas as pd

from phosjax._hosts import barrier, gather_rows, local_devices
from phosjax._listing import counted
from phosjax._nearest import nearest, nearest_names
from phosjax.data import check_batch_size
from phosjax.train._config import Cell, int_at_least
from phosjax.train._group import Group, check_cells, plan_groups
from phosjax.train._run import (
    SPLITS,
    Chunk,
    GroupRun,
    check_callback,
    check_strategy,
    run_group,
)
from phosjax.train._state import (
    INIT_DATA_FIELDS,
    INIT_PROGRAMS_KEPT,
    GroupState,
    check_data_set,
    init_group,
)
from phosjax.train._step import (
    check_inputs_fit,
    check_splits,
    device_array_specs,
    make_evaluate,
    make_train_step,
)
from phosjax.train._strategy import kept, trace_config


@dataclasses.dataclass(frozen=True)
class GridResult:
    """What `train_grid` trained in this process.

    Attributes:
      index: the positions (in the ``cells`` given) of the cells this process trained.
      final: one row per trained cell: ``cell`` (its position), ``test_loss``,
        ``test_accuracy``, ``train_loss`` (last step), ``diverged_at`` (-1: never),
        ``strategy``.
      metrics: one row per (``cell``, ``step``, ``split``), in that order (a step's
        ``train`` row before its ``test`` row, as in a bench's results), with
        ``diverged``: whether the cell had diverged by that step (`Chunk.diverged`; its
        metrics are then those of its state frozen before it, often finite);
        ``split="train"`` rows hold the step's metrics (``loss``, ``task_loss``,
        ``regularizer`` (with regularizers), ``accuracy``, ``grad_norm``, ``aux/<name>``,
        ``path_weight/<path>``, ``lr`` (under a schedule)), ``split="test"`` rows the
        evaluation.
        Without cells (none for this process) both frames have no rows but the same
        columns and dtypes (of ``metrics``, those every model reports).
      groups: the `Group` of each group trained (its cells and their positions in the
        ``cells`` given), in the order trained; ``states[i]`` and ``runs[i]`` are
        ``groups[i]``'s.
      states: the final `GroupState` of each group, on the host (numpy: fetched as its
        group ends, so the devices hold one group's state at a time however large the
        grid; `run_group` resumes from it).
      runs: the `GroupRun` of each group.

    Examples:
      >>> from phosjax.data import random_dataset
      >>> from phosjax.models import ModelConfig
      >>> from phosjax.train import Cell, HParams, train_grid
      >>> model = ModelConfig("logreg", 3, (8,))
      >>> hp = HParams(batch_size=16, steps=10)
      >>> cells = [Cell(model, "toy", hp, seed=0), Cell(model, "toy", hp, seed=1)]
      >>> result = train_grid(cells, datasets={"toy": random_dataset("toy", (8,), 3)},
      ...                     strategy="vmap")
      >>> result.index, len(result.final), result.runs[0].strategy, result.states[0].step
      ((0, 1), 2, 'vmap', array([10, 10], dtype=int32))
      >>> result.groups[0].index  # the cells that states[0] and runs[0] hold
      (0, 1)
      >>> result  # a summary: the frames and states are its attributes
      GridResult(2 cells in 1 group (strategy vmap): final 2 rows, metrics 22 rows of
                 ['cell', 'step', 'split', 'diverged', 'accuracy', 'grad_norm', 'loss',
                 'task_loss'])
    """

    index: tuple[int, ...]
    final: pd.DataFrame
    metrics: pd.DataFrame
    groups: tuple[Group, ...]
    states: tuple[GroupState, ...]
    runs: tuple[GroupRun, ...]

    def __repr__(self) -> str:  # the dataclass's printed every param of every group
        strategies = ", ".join(dict.fromkeys(run.strategy for run in self.runs))
        return (
            f"GridResult({counted(len(self.index), 'cell')} in {counted(len(self.groups), 'group')}"
            f"{f' (strategy {strategies})' if strategies else ''}: final "
            f"{counted(len(self.final), 'row')}, metrics {counted(len(self.metrics), 'row')} of "
            f"{list(self.metrics.columns)})"
        )


def process_share(num_cells: int, index: int | None = None, count: int | None = None) -> list[int]:
    """The cells process ``index`` of ``count`` trains: every ``count``-th, from ``index``.

    Defaults to `jax.process_index` and `jax.process_count`, so under
    ``jax.distributed`` each process takes its own share and, together, they cover all.

    Examples:
      >>> process_share(5, 1, 2)
      [1, 3]
      >>> process_share(5, 1.0, 2)
      Traceback (most recent call last):
      ValueError: process_share: index must be an int, got 1.0 (float); give a whole number ...
    """
    num_cells = int_at_least("process_share: num_cells", num_cells, 0)
    count = int_at_least("process_share: count", jax.process_count() if count is None else count, 1)
    index = int_at_least("process_share: index", jax.process_index() if index is None else index, 0)
    if index >= count:
        raise ValueError(f"process_share: index {index} is not in range(count={count}).")
    return list(range(index, num_cells, count))


def _train_grid_share(num_cells: int, process: Any) -> list[int]:
    """`process_share` of ``train_grid(process=...)``: ``None`` or an ``(index, count)``
    pair; a wrong one is refused naming ``process``."""
    if process is None:
        return process_share(num_cells)
    if isinstance(process, str) or not isinstance(process, Sequence) or len(process) != 2:
        raise ValueError(
            "train_grid: process must be an (index, count) pair, e.g. (1, 2) for the second "
            f"of two processes, or None for jax.distributed's; got {process!r}"
        )
    try:
        return process_share(num_cells, *process)
    except ValueError as error:
        raise ValueError(f"train_grid: process={tuple(process)!r}: {error}") from None


def _check_same_cells(cells: Sequence[Cell]) -> None:
    """Raises in every process of a `jax.distributed` group unless all were given the
    same ``cells`` (their count, and each cell's model config, data set, hparams and
    seed): each trains its share of its own list, so lists that differ (hparams drawn at
    random in each process) would train some cells twice and others never.

    Examples:
      >>> _check_same_cells([])  # one process: nothing to compare
    """
    if jax.process_count() == 1:
        return
    text = _alike_text([(cell.model, cell.dataset, cell.hparams, cell.seed) for cell in cells])
    mine = np.array([len(cells), zlib.crc32(text.encode())], np.uint32)
    given = gather_rows(mine)
    if (given != given[0]).any():
        each = [f"process {i}: {n} cells, digest {d:08x}" for i, (n, d) in enumerate(given)]
        raise ValueError(
            f"train_grid: the {len(given)} processes were given different cells "
            f"({'; '.join(each)}). Give every process the whole grid, built alike (hparams "
            "drawn at random from one fixed seed): each trains its share of it."
        )


def _alike_text(value: Any) -> str:
    """``value``'s repr, the same in every process for values built alike: a set's
    members sorted (their order follows string hashes, salted in each process) and an
    object's address left out (a function's differs), within tuples, lists, dicts and
    dataclasses (a model config's fields).

    Examples:
      >>> a, b = frozenset({8, 0}), frozenset({0, 8})  # equal, listed in two orders
      >>> repr(a) == repr(b), _alike_text([a, {"f": abs}]) == _alike_text([b, {"f": abs}])
      (False, True)
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = (
            f"{f.name}={_alike_text(getattr(value, f.name))}" for f in dataclasses.fields(value)
        )
        return f"{type(value).__qualname__}({', '.join(fields)})"
    if isinstance(value, set | frozenset):
        return f"{type(value).__name__}({sorted(map(_alike_text, value))})"
    if isinstance(value, tuple | list):
        return f"{type(value).__name__}({', '.join(map(_alike_text, value))})"
    if isinstance(value, Mapping):
        items = (f"{_alike_text(k)}: {_alike_text(v)}" for k, v in value.items())
        return f"{{{', '.join(items)}}}"
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(value))


TRAIN_METRICS = ("accuracy", "grad_norm", "loss", "task_loss")
"""The train metrics of every step, in the order a `Chunk` has them (sorted, as
``jax.device_get`` gives a dict); regularizers, aux losses and path weights add more."""


def chunk_splits(chunk: Chunk, cells: pd.DataFrame) -> list[pd.DataFrame]:
    """The rows of one `Chunk`, a frame per split: per (cell, step) train rows, then,
    when the chunk ended on an evaluation, a test row per cell. Each row is its cell's row
    of ``cells`` (one per cell, in the chunk's order), then ``step``, ``split``,
    ``diverged`` (`Chunk.diverged`) and the split's metrics.

    Examples:
      >>> chunk = Chunk(np.array([1, 2]), {"loss": np.array([[0.5, 0.25]])},
      ...               {"accuracy": np.array([0.75])}, np.array([2]))
      >>> train, test = chunk_splits(chunk, pd.DataFrame({"cell": [7]}))
      >>> list(train), train.step.tolist(), train.diverged.tolist()
      (['cell', 'step', 'split', 'diverged', 'loss'], [1, 2], [False, True])
      >>> test.to_dict("list")
      {'cell': [7], 'step': [2], 'split': ['test'], 'diverged': [True], 'accuracy': [0.75]}
    """
    n, diverged = len(chunk.steps), chunk.diverged()
    train = (
        cells.loc[cells.index.repeat(n)]
        .reset_index(drop=True)
        .assign(
            step=np.tile(chunk.steps, len(cells)),
            split="train",
            diverged=diverged.reshape(-1),
            **{name: np.asarray(value).reshape(-1) for name, value in chunk.train.items()},
        )
    )
    if not chunk.eval:
        return [train]
    test = cells.reset_index(drop=True).assign(
        step=chunk.steps[-1], split="test", diverged=diverged[:, -1], **chunk.eval
    )
    return [train, test]


def chunk_frame(chunk: Chunk, cells: Sequence[int]) -> pd.DataFrame:
    """The rows of one `Chunk` (`chunk_splits`) in one frame, each cell's position in
    ``cell``: a metric one split does not report is NaN in the other's rows."""
    cell = pd.DataFrame({"cell": np.asarray(cells, np.int64)})
    return pd.concat(chunk_splits(chunk, cell), ignore_index=True)


def final_frame(cells: Sequence[int], run: GroupRun) -> pd.DataFrame:
    """One row per cell of a group: its last chunk's evaluation, train loss, divergence."""
    last = run.chunks[-1]
    return pd.DataFrame(
        {
            "cell": np.asarray(cells, np.int64),
            "test_loss": last.eval["loss"],
            "test_accuracy": last.eval["accuracy"],
            "train_loss": last.train["loss"][:, -1],
            "diverged_at": last.diverged_at,
            "strategy": run.strategy,
        }
    )


def _frames_without_rows() -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(final, metrics)`` of no cell, with a result's columns (`TRAIN_METRICS` only)
    and dtypes: made from a chunk of one step of no cell."""
    none = np.zeros((0, 1), np.float32)
    scores = {"loss": none[:, 0], "accuracy": none[:, 0]}
    diverged_at = np.zeros(0, np.int32)
    chunk = Chunk(np.ones(1, np.int64), dict.fromkeys(TRAIN_METRICS, none), scores, diverged_at)
    return final_frame([], GroupRun("", {}, [chunk])), chunk_frame(chunk, [])


def _load(
    name: str,
    data_dir: str | None,
    given: Sequence[str],
    features: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
) -> Any:
    """`phosjax.data.load` (with ``features`` and ``splits``); when it cannot load ``name``,
    the error also names the data sets given (``datasets=``), the nearest first. load's
    errors that say which of its arguments to give keep their type (`MissingSplitsError`,
    ...), told with train_grid's arguments instead."""
    from phosjax.data import load
    from phosjax.data._load import MissingFeaturesError, NoSuchFeatureError, SplitInNameError
    from phosjax.data._splits import MissingSplitsError, SplitsError, splits_written

    try:
        return load(name, data_dir=data_dir, features=features, splits=splits)
    except SplitInNameError as error:  # said 'load takes ... splits=', load's argument
        error.args = (
            f"train_grid: a cell's data set {name!r} names a split ({error.split!r}); give the "
            f"cells the data set's name alone ({error.dataset!r}) and the splits to train and "
            "test on in dataset_splits, e.g. "
            f"{splits_written(error.suggested, 'dataset_splits', error.dataset, argument=True)}",
        )
        raise
    except (MissingFeaturesError, NoSuchFeatureError) as error:  # said as load's features=
        example = f"dataset_features={{{name!r}: {error.example_pair!r}}}"
        said = (
            error.told_as(f"dataset_features[{name!r}]", example)
            if isinstance(error, NoSuchFeatureError)
            else error.told_by("it", "dataset_features", example)
        )
        error.args = (f"train_grid: {said}",)
        raise
    except MissingSplitsError as error:  # said 'pass splits=', load's argument
        example = splits_written(error.suggested, "dataset_splits", name, argument=True)
        error.args = (f"train_grid: {error.told_by('it', 'dataset_splits', example)}",)
        raise
    except SplitsError as error:  # said as load's splits=(...): the entry of dataset_splits
        error.args = (f"train_grid: {error.told_as('dataset_splits', name, argument=True)}",)
        raise
    except ValueError as error:
        if not given:
            raise
        shown = ", ".join(map(repr, dict.fromkeys([*nearest(name, given)[:1], *given])))
        raise ValueError(
            f"data set {name!r} is not one of those datasets= gives ({shown}), and it does "
            f"not load: {error}"
        ) from error


def _check_dataset(name: str, data: Any) -> None:
    """Raises a TypeError naming ``datasets[name]`` unless ``data`` has the fields of a
    `phosjax.data.ArrayDataset` (e.g. ``datasets={name: (x, y)}``)."""
    check_data_set(
        f"train_grid: datasets[{name!r}] must be a data set",
        data,
        (*INIT_DATA_FIELDS, *SPLITS),
        f"from arrays: ArrayDataset({name!r}, x_train, y_train, x_test, y_test, num_classes, "
        "input_shape)",
    )


_PER_DATASET = {
    "dataset_features": ("features", "(input, label) feature names", "('pixels', 'digit')"),
    "dataset_splits": ("splits", "(train, test) splits", "('train[:90%]', 'train[90%:]')"),
}
"""``{train_grid argument: (load's argument, what it maps to, an example)}``."""


def _check_per_dataset(
    field: str, entries: Any, cells: Sequence[Cell], given: Sequence[str]
) -> dict[str, tuple[str, str] | None]:
    """``dataset_features`` or ``dataset_splits`` (`field`) checked: a mapping from names
    of data sets the cells train on (and that ``datasets=`` does not give, for only a
    loaded set reads them) to what `phosjax.data.load` takes for them.

    Raises:
      ValueError: naming the wrong name or pair and what would be right.
    """
    from phosjax.data._load import _features
    from phosjax.data._splits import checked_splits

    argument, what, example = _PER_DATASET[field]
    if entries is None:
        return {}
    if not isinstance(entries, Mapping):
        raise ValueError(
            f"train_grid: {field} must map data set names to {what}, e.g. "
            f"{{'my_set': {example}}}, got {entries!r}"
        )
    names = list(dict.fromkeys(cell.dataset for cell in cells))
    checked: dict[str, tuple[str, str] | None] = {}
    for name, pair in entries.items():
        if name not in names:
            hint = nearest_names(str(name), names)
            raise ValueError(
                f"train_grid: {field} names {name!r}, which is not among the cells' "
                f"datasets ({', '.join(map(repr, names))})"
                + (f"; did you mean {hint}?" if hint else "")
            )
        if name in given:
            raise ValueError(
                f"train_grid: {field} names {name!r}, which datasets= gives as arrays; only "
                f"a data set train_grid loads reads {argument}: drop one of them"
            )
        try:
            checked[name] = (_features if argument == "features" else checked_splits)(pair)
        except ValueError as error:
            raise ValueError(f"train_grid: {field}[{name!r}]: {error}") from None
    return checked


_STEPS_CHECKED: collections.OrderedDict[Any, None] = collections.OrderedDict()
"""The (`Group.program_signature`, split shapes, `trace_config`) whose train step and evaluation
`_check_group` traced without error, the last `INIT_PROGRAMS_KEPT`: a grid run again
traces none of them again (one run under another x64 setting traces them anew: e.g. a
step adding float64 noise to float32 inputs with `jax.lax.add` raises only under x64)."""


def _check_group(group: Group, data: Any) -> None:
    """Raises what training ``group`` on ``data`` would raise for its cells, model or data
    set: `init_group`'s checks, an empty split, the batch size, the train step's (e.g. a
    regularizer selector that matches none of the model's params) and the evaluation's
    (e.g. a model that draws dropout at evaluation, which has no rng), traced abstractly
    (nothing is computed or compiled; both once per signature and split shapes)."""
    state = jax.eval_shape(lambda: init_group(group, data))
    check_splits(data)  # as device_arrays, which converts the data only once the group trains
    check_batch_size("HParams.batch_size", group.hparams.batch_size, data)
    check_inputs_fit(data, group.hparams.compute_dtype)
    num_train, num_test, input_shape = data.num_train, data.num_test, tuple(data.input_shape)

    def check_step() -> None:
        cell = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype, weak_type=a.weak_type), state
        )
        arrays = device_array_specs(data)  # what a step and an evaluation read
        model, hp = group.model.build(), group.hparams
        jax.eval_shape(make_train_step(model, hp, guard=False), cell, arrays)
        jax.eval_shape(make_evaluate(model, hp.compute_dtype), cell, arrays)

    key = (group.program_signature, num_train, num_test, input_shape, trace_config())
    kept(_STEPS_CHECKED, key, check_step, INIT_PROGRAMS_KEPT)


def train_grid(
    cells: Sequence[Cell],
    *,
    data_dir: str | None = None,
    datasets: Mapping[str, Any] | None = None,
    dataset_features: Mapping[str, Sequence[str]] | None = None,
    dataset_splits: Mapping[str, Sequence[str]] | None = None,
    strategy: str = "auto",
    chunk_steps: int = 100,
    devices: Sequence[jax.Device] | None = None,
    process: tuple[int, int] | None = None,
    on_chunk: Callable[[Group, Chunk], None] | None = None,
) -> GridResult:
    """Trains this process's share of ``cells``, one compiled step per group.

    Args:
      cells: the whole grid (every process passes the same list: under
        ``jax.distributed``, lists that differ are refused in every process).
      data_dir: where `phosjax.data.load` finds or prepares the data sets.
      datasets: data sets by name, used instead of loading them. A key is the name the
        cells give (`Cell.dataset`); the data set's own ``name`` need not be it (one data
        set may serve under several names: ``{"a": data, "b": data}``).
      dataset_features: for some of the data sets loaded, the input and the label
        feature to read, ``{name: (input, label)}`` (`phosjax.data.load`'s ``features``,
        as a bench config's ``dataset_features``); by default a data set's supervised
        keys, else ``image`` and ``label``.
      dataset_splits: for some of the data sets loaded, the split to train on and the
        split to test on, ``{name: (train, test)}`` (`phosjax.data.load`'s ``splits``, as
        a bench config's ``dataset_splits``); by default ``train`` and ``test`` (else
        ``validation``).
      strategy: see `run_group`.
      chunk_steps: steps per dispatch, an int >= 1 (checked before any data set loads).
      devices: the devices to shard each group over (``None``: all local devices; see
        `run_group`); each group is initialized on the first of them.
      process: ``(index, count)``, ints with ``0 <= index < count``; default
        ``(jax.process_index(), jax.process_count())``, and then every process returns
        (or raises its error) once all have trained their shares.
      on_chunk: called with ``(group, chunk)`` after each chunk.

    Returns:
      A `GridResult` for the cells this process trained.

    Raises:
      ValueError, TypeError, SelectorError: before any cell trains, what `init_group` or
        `run_group` would raise for a group's cells, model or data set (the batch size,
        the model's output, knobs, a regularizer that matches none of its params, its
        evaluation, ...: each traced abstractly), with a note naming the group's cells,
        so that an error in a later group does not lose the results of the earlier ones;
        a data set read without the splits or features it needs, or with splits or
        features `load` refuses: load's `phosjax.data.MissingSplitsError`,
        ``MissingFeaturesError``, ``NoSuchFeatureError``, ``SplitsError`` or
        ``SplitInNameError``, told with ``dataset_splits`` and ``dataset_features``; and,
        in every process, a ValueError when the processes of a `jax.distributed` group were
        given different ``cells`` (each one's count and digest named).

    Examples:
      >>> from phosjax.data import random_dataset
      >>> from phosjax.models import ModelConfig
      >>> from phosjax.train import Cell, HParams
      >>> data = random_dataset("toy", (8,), 3)
      >>> model = ModelConfig("logreg", 3, (8,))
      >>> hp = HParams(batch_size=16, steps=10)
      >>> cells = [Cell(model, "toy", hp, seed=0), Cell(model, "toy", hp, seed=1)]
      >>> result = train_grid(cells, datasets={"toy": data}, strategy="vmap")
      >>> result.final[["cell", "diverged_at", "strategy"]]
         cell  diverged_at strategy
      0     0           -1     vmap
      1     1           -1     vmap
      >>> list(result.final.columns)
      ['cell', 'test_loss', 'test_accuracy', 'train_loss', 'diverged_at', 'strategy']
      >>> result.metrics.value_counts("split").to_dict()  # 10 steps + 1 evaluation per cell
      {'train': 20, 'test': 2}
    """
    check_strategy(strategy, "train_grid")  # before any data set loads or group trains
    check_callback("train_grid", "on_chunk", on_chunk, "group", "chunk")
    chunk_steps = int_at_least("train_grid: chunk_steps", chunk_steps, 1)
    check_cells("train_grid", cells)  # all: a process's share may hide a pair
    share = _train_grid_share(len(cells), process)
    if datasets is not None and not isinstance(datasets, Mapping):
        raise TypeError(
            "train_grid: datasets must map data set names to data sets, e.g. "
            f"{{'toy': phosjax.data.random_dataset('toy', (8,), 3)}}, got a "
            f"{type(datasets).__name__}"
            + (
                ": key each by its name, {data.name: data for data in datasets}"
                if isinstance(datasets, list | tuple)
                else ""
            )
        )
    given, datasets = list(datasets or {}), dict(datasets or {})
    features = _check_per_dataset("dataset_features", dataset_features, cells, given)
    splits = _check_per_dataset("dataset_splits", dataset_splits, cells, given)
    frames, finals, groups, states, runs = [], [], [], [], []
    try:
        if process is None:
            _check_same_cells(cells)
        chosen = local_devices(devices, "train_grid")  # once: e.g. a generator, for each group
        planned = [
            Group(local.cells, tuple(share[i] for i in local.index))
            for local in plan_groups([cells[i] for i in share])
        ]
        for name in dict.fromkeys(group.dataset for group in planned):  # before any trains
            if name not in datasets:
                datasets[name] = _load(name, data_dir, given, features.get(name), splits.get(name))
            _check_dataset(name, datasets[name])
        for group in planned:  # before any trains: a later group's error loses no results
            try:
                _check_group(group, datasets[group.dataset])
            except Exception as error:
                name = getattr(group.model, "name", group.model)
                error.add_note(
                    f"train_grid: raised for cells {list(group.index)} (model {name!r}, data "
                    f"set {group.dataset!r}), before any cell trained"
                )
                raise
        for group in planned:
            index, data = group.index, datasets[group.dataset]

            def report(chunk: Chunk, group: Group = group) -> None:
                if on_chunk is not None:
                    on_chunk(group, chunk)

            with jax.default_device(chosen[0]):  # not on a device it was not given
                state = init_group(group, data)
            state, run = run_group(
                group,
                state,
                data,
                strategy=strategy,
                chunk_steps=chunk_steps,
                on_chunk=report,
                devices=chosen,
            )
            frames += [chunk_frame(chunk, index) for chunk in run.chunks]
            finals.append(final_frame(index, run))
            groups.append(group)
            states.append(jax.device_get(state))  # off the devices before the next group
            runs.append(run)
    finally:  # all leave together, even when this one fails: one leaving first would
        # reach jax.distributed's shutdown barrier early, which aborts every process once it
        # times out (300 s by default)
        if process is None and jax.process_count() > 1:
            barrier("train_grid")
    if not groups:  # more processes than cells
        return GridResult((), *_frames_without_rows(), (), (), ())
    final = pd.concat(finals, ignore_index=True).sort_values("cell", ignore_index=True)
    # stable: each step's train row stays before its test row, as the chunks made them
    metrics = pd.concat(frames, ignore_index=True).sort_values(
        ["cell", "step"], ignore_index=True, kind="stable"
    )
    return GridResult(tuple(share), final, metrics, tuple(groups), tuple(states), tuple(runs))
