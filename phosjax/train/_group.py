"""Grouping cells that can share one compiled train step: `Group`, `plan_groups`."""

import array
import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from phosjax._callables import cut_repr
from phosjax._listing import counted
from phosjax.train._config import Cell, HParams, int_at_least


@dataclasses.dataclass(frozen=True)
class Group:
    """Cells with one signature (model, data set, shared hparams), trained by one compile.

    Attributes:
      cells: the cells, in the order of the grid's cell axis.
      index: each cell's position in the list given to `plan_groups`: distinct ints >= 0,
        by which the results name the cells.

    Examples:
      >>> from phosjax.models import ModelConfig
      >>> from phosjax.train import Cell, HParams
      >>> a = Cell(ModelConfig("mlp", 10, (40,)), "mnist1d", HParams(), seed=0)
      >>> b = Cell(ModelConfig("mlp", 10, (40,)), "mnist1d", HParams(), seed=1)
      >>> Group((a, b), (0, 1)).index
      (0, 1)
      >>> Group((a, b), (0, 1))  # what its cells share, not each cell
      Group(2 cells at (0, 1): ModelConfig(name='mlp', num_classes=10, input_shape=(40,),
            depth=None, width=None, options=()) on 'mnist1d')
    """

    cells: tuple[Cell, ...]
    index: tuple[int, ...]

    def __post_init__(self) -> None:
        check_cells("Group", self.cells)  # as plan_groups checks them
        index = _positions(self.index)
        if not self.cells or len(self.cells) != len(index):
            raise ValueError(
                f"A Group needs one index per cell and at least one cell, got "
                f"{len(self.cells)} cells and {len(index)} indices."
            )
        object.__setattr__(self, "cells", tuple(self.cells))
        object.__setattr__(self, "index", index)
        first = self.cells[0]
        for i, cell in enumerate(self.cells):
            if cell.signature() != first.signature():
                raise ValueError(
                    f"The cells of a Group must share one signature (model, dataset, shared "
                    f"hparams), but cells 0 and {i} differ in {_signature_difference(first, cell)}"
                    ". plan_groups puts such cells in separate groups."
                )

    @property
    def model(self) -> Any:
        """The model config every cell trains."""
        return self.cells[0].model

    @property
    def dataset(self) -> str:
        """The name of the data set every cell trains on."""
        return self.cells[0].dataset

    @functools.cached_property
    def hparams(self) -> HParams:
        """The hparams the cells share (per-cell values zeroed, knobs in selector order:
        `HParams.shared`), made once: `HParams` checks them again each time (about 0.1 ms,
        read several times in each `run_group` call).

        Examples:
          >>> from phosjax.models import ModelConfig
          >>> from phosjax.train import Cell, HParams
          >>> model = ModelConfig("mlp", 10, (40,))
          >>> a = Cell(model, "mnist1d", HParams(learning_rate=1e-3, steps=50), seed=0)
          >>> b = Cell(model, "mnist1d", HParams(learning_rate=1e-2, steps=50), seed=1)
          >>> group = Group((a, b), (0, 1))
          >>> group.model.name, group.dataset, len(group)
          ('mlp', 'mnist1d', 2)
          >>> group.hparams.steps, group.hparams.learning_rate  # in `values`, per cell
          (50, 0.0)
        """
        return self.cells[0].hparams.shared()

    def signature(self) -> tuple[Any, ...]:
        """What the cells share, `Cell.signature`: their model, data set and `hparams`."""
        return (self.model, self.dataset, self.hparams)

    @functools.cached_property
    def program_signature(self) -> tuple[Any, ...]:
        """`signature` less what no compiled program of the group reads, so that groups that
        differ only there share their programs: ``eval_every`` (the host picks the steps
        to evaluate at), and ``steps`` unless the learning rate is scheduled over them
        (`HParams.scheduled`). A grid over ``steps`` so compiles once, not once a group.
        Made once, as `hparams` is (about 0.2 ms, read several times in each `run_group`).

        Examples:
          >>> from phosjax.models import ModelConfig
          >>> from phosjax.train import Cell, HParams
          >>> model = ModelConfig("mlp", 10, (40,))
          >>> def program(**hparams):
          ...     cell = Cell(model, "mnist1d", HParams(**hparams))
          ...     return Group((cell,), (0,)).program_signature
          >>> program(steps=50, eval_every=10) == program(steps=90)
          True
          >>> program(steps=50, lr_schedule="cosine") == program(steps=90, lr_schedule="cosine")
          False
        """
        hp = self.hparams
        shared = dataclasses.replace(hp, steps=hp.steps if hp.scheduled else 1, eval_every=0)
        return (self.model, self.dataset, shared)

    def __len__(self) -> int:
        return len(self.cells)

    def __repr__(self) -> str:  # the dataclass's printed every cell's model and hparams
        return (
            f"Group({counted(len(self), 'cell')} at {cut_repr(self.index)}: "
            f"{cut_repr(self.model, 200)} on {self.dataset!r})"
        )

    def knob_values(self) -> list[list[float]]:
        """Each cell's knob values as given, in the order of ``hparams.knobs`` (which
        need not be the order a cell gives them in).

        Examples:
          >>> from phosjax.models import ModelConfig
          >>> from phosjax.train import Cell, HParams
          >>> model = ModelConfig("mlp", 10, (40,))
          >>> a = Cell(model, "mnist1d", HParams(knobs={"b": 1.0, "a": 2.0}), seed=0)
          >>> b = Cell(model, "mnist1d", HParams(knobs={"a": 3.0, "b": 4.0}), seed=1)
          >>> Group((a, b), (0, 1)).knob_values()
          [[2.0, 1.0], [3.0, 4.0]]
        """
        selectors = [selector for selector, _ in self.hparams.knobs]
        return [[dict(cell.hparams.knobs)[s] for s in selectors] for cell in self.cells]

    def values(self) -> dict[str, np.ndarray]:
        """The per-cell values, stacked on a leading cell axis (float32).

        ``regularizer_strength`` and ``knob_value`` (one column per regularizer or knob)
        are left out when there are none.

        Examples:
          >>> from phosjax.models import ModelConfig
          >>> from phosjax.train import Cell, HParams
          >>> model = ModelConfig("mlp", 10, (40,))
          >>> a = Cell(model, "mnist1d", HParams(learning_rate=1e-3), seed=0)
          >>> b = Cell(model, "mnist1d", HParams(learning_rate=1e-2), seed=1)
          >>> values = Group((a, b), (0, 1)).values()
          >>> sorted(values), values["learning_rate"].tolist()
          (['label_smoothing', 'learning_rate', 'momentum', 'weight_decay'], [0.001, 0.01])
        """

        def stack(get: Any, width: int | None = None) -> np.ndarray:
            rows = [get(cell.hparams) for cell in self.cells]
            shape = (len(rows),) if width is None else (len(rows), width)
            return np.asarray(rows, np.float32).reshape(shape)

        hp = self.hparams
        values = {
            "learning_rate": stack(lambda h: h.learning_rate),
            "weight_decay": stack(lambda h: h.weight_decay),
            "momentum": stack(lambda h: h.momentum),
            "label_smoothing": stack(lambda h: h.label_smoothing),
        }
        if hp.regularizers:
            values["regularizer_strength"] = stack(
                lambda h: [r.strength for r in h.regularizers], len(hp.regularizers)
            )
        if hp.knobs:
            values["knob_value"] = np.asarray(self.knob_values(), np.float32)
        return values


def _positions(index: Any) -> tuple[int, ...]:
    """``index`` as a tuple of plain ints when they are distinct ints >= 0: the cells'
    positions in the grid, by which the results name them.

    Raises:
      TypeError: ``index`` is no sequence (``None``, a generator, a string).
      ValueError: naming the entry: one is no int or below 0, or one is given twice.

    Examples:
      >>> _positions([0, np.int64(2)])
      (0, 2)
      >>> _positions((0, 1, 0))
      Traceback (most recent call last):
      ValueError: Group: index (0, 1, 0) gives position 0 to cells 0 and 2; give each cell
      its own position in the grid, by which the results name it, e.g. (0, 1, 2).
    """
    if isinstance(index, str) or not isinstance(index, Sequence | np.ndarray):
        raise TypeError(
            f"Group: index must be a sequence of ints, each cell's position in the grid, "
            f"got {index!r} ({type(index).__name__}); e.g. (0, 1)."
        )
    positions = tuple(int_at_least(f"Group: index[{k}]", p, 0) for k, p in enumerate(index))
    first: dict[int, int] = {}
    for k, position in enumerate(positions):
        j = first.setdefault(position, k)
        if j != k:
            raise ValueError(
                f"Group: index {positions} gives position {position} to cells {j} and {k}; "
                "give each cell its own position in the grid, by which the results name it, "
                f"e.g. {tuple(range(len(positions)))}."
            )
    return positions


def _signature_difference(a: Cell, b: Cell) -> str:
    """What differs between the signatures of cells ``a`` and ``b`` (`Cell.signature`),
    each value as the cell gives it.

    Examples:
      >>> from phosjax.models import ModelConfig
      >>> mlp = ModelConfig("mlp", 10, (40,))
      >>> a = Cell(mlp, "mnist1d", HParams(learning_rate=1e-3))
      >>> b = Cell(mlp, "mnist1d", HParams(learning_rate=1e-2, optimizer="sgd", steps=5))
      >>> _signature_difference(a, b)
      "hparams optimizer ('adam' and 'sgd'), hparams steps (1000 and 5)"
    """
    differences = [
        f"{name} ({getattr(a, name)!r} and {getattr(b, name)!r})"
        for name in ("model", "dataset")
        if getattr(a, name) != getattr(b, name)
    ]
    shared_a, shared_b = a.hparams.shared(), b.hparams.shared()
    differences += [
        f"hparams {name} ({getattr(a.hparams, name)!r} and {getattr(b.hparams, name)!r})"
        for name in (field.name for field in dataclasses.fields(HParams))
        if getattr(shared_a, name) != getattr(shared_b, name)
    ]
    return ", ".join(differences)


_PER_CELL_FIELDS = ("learning_rate", "weight_decay", "momentum", "label_smoothing")
"""`HParams` fields of per-cell values (`_per_cell_values`), compared as float32."""


def _per_cell_values(hp: HParams) -> dict[str, float]:
    """The values of ``hp`` that may differ between the cells of a group, by name, less
    a momentum its optimizer ignores (all but ``"momentum"``)."""
    values = {n: getattr(hp, n) for n in _PER_CELL_FIELDS if n != "momentum"}
    if hp.optimizer == "momentum":
        values["momentum"] = hp.momentum
    values.update(
        {f"regularizers[{k}] strength": r.strength for k, r in enumerate(hp.regularizers)}
    )
    values.update({f"knob {selector!r}": value for selector, value in sorted(hp.knobs)})
    return values


def _check_distinct(where: str, cells: Sequence[Cell]) -> None:
    """Raises naming ``where`` if two cells are the same, or differ only in a momentum
    their optimizer ignores (all but ``"momentum"``), in a regularizer's field its kind
    ignores (``cost``, ``source`` and ``threshold``, all but ``"morph"``'s) or in
    per-cell values that are one float32 value (what a group holds them in): they would
    train one model twice."""
    first: dict[tuple[Any, ...], int] = {}
    for i, cell in enumerate(cells):
        j = first.setdefault(_trained_alike(cell), i)
        if j == i:
            continue
        ignored = _ignored_differences(cells[j].hparams, cell.hparams)
        if ignored:
            raise ValueError(
                f"{where}: cells {j} and {i} differ only in "
                f"{' and in '.join(what for what, _ in ignored)}, so they would train the same "
                f"model twice; {'; '.join(dict.fromkeys(fix for _, fix in ignored))}."
            )
        raise ValueError(
            f"{where}: cells {j} and {i} are the same cell, so they would train the same model "
            "twice; give each cell once (another seed trains another model)."
        )


def _trained_alike(cell: Cell) -> tuple[Any, ...]:
    """What makes ``cell`` train the model it does: equal for two cells that would train
    one model twice (fields their kind ignores left out; per-cell values as float32, as
    the group holds them)."""
    hp = cell.hparams
    per_cell = (*_PER_CELL_FIELDS, "regularizers", "knobs")
    shared = [getattr(hp, f.name) for f in dataclasses.fields(HParams) if f.name not in per_cell]
    penalties = tuple(r.shared() for r in hp.regularizers)
    knobs = tuple(selector for selector, _ in sorted(hp.knobs))
    values = tuple(array.array("f", _per_cell_values(hp).values()))
    return (cell.model, cell.dataset, cell.seed, *shared, penalties, knobs, values)


def _ignored_differences(a: HParams, b: HParams) -> list[tuple[str, str]]:
    """``(what differs, the fix)`` for each way the hparams of two cells that train alike
    (`_trained_alike`) differ: values float32 rounds to one, a momentum or regularizer
    fields their kind ignores; none for the same hparams."""
    ignored = []
    given, other = _per_cell_values(a), _per_cell_values(b)
    rounded = [f"{n} ({given[n]!r} and {other[n]!r})" for n in given if given[n] != other[n]]
    if rounded:
        ignored.append(
            (
                f"{', '.join(rounded)}, which float32 (a group's dtype for them) rounds to "
                "one value",
                "give values that differ in float32",
            )
        )
    if b.optimizer != "momentum" and a.momentum != b.momentum:
        ignored.append(
            (
                f"momentum ({a.momentum} and {b.momentum}), which optimizer {b.optimizer!r} "
                "ignores",
                "a grid over momentum needs optimizer='momentum' (SGD with momentum)",
            )
        )
    for k, (left, right) in enumerate(zip(a.regularizers, b.regularizers, strict=True)):
        shown = ", ".join(
            f"{name} ({getattr(left, name)!r} and {getattr(right, name)!r})"
            for name in ("cost", "source", "threshold")
            if getattr(left, name) != getattr(right, name)
        )
        if shown:
            ignored.append(
                (
                    f"regularizers[{k}]'s {shown}, which kind {left.kind!r} ignores",
                    "cost, source and threshold apply to kind='morph' alone",
                )
            )
    return ignored


def check_cells(where: str, cells: Any) -> None:
    """Raises naming ``where`` unless ``cells`` is a list or tuple of cells whose
    different seeds make different keys (`jax.random.key`), no two of which are the same
    or differ only in a momentum their optimizer ignores (all but ``"momentum"``), in a
    regularizer's field its kind ignores or in values that are one float32 value
    (`_check_distinct`).

    Without ``jax_enable_x64`` JAX keeps a seed's low 32 bits, so seeds 0 and ``2**32``
    would train the same models; seeds in ``[0, 2**32)`` never collide.

    Raises:
      TypeError: ``cells`` is no list or tuple (one `Cell`, a generator), or holds
        something else than a `Cell`.
      ValueError: two cells' seeds differ but make the same key, or two cells are the
        same or differ only in an ignored momentum or regularizer field or in values
        float32 rounds to one (both named).

    Examples:
      >>> check_cells("plan_groups", (cell for cell in []))
      Traceback (most recent call last):
      TypeError: plan_groups: cells must be a list (or tuple) of Cells, got a generator; ...
    """
    if not isinstance(cells, list | tuple):
        if isinstance(cells, Cell):
            hint = "one Cell; pass [cell]"
        else:
            hint = f"a {type(cells).__name__}; e.g. list(cells)"
        raise TypeError(f"{where}: cells must be a list (or tuple) of Cells, got {hint}")
    for i, cell in enumerate(cells):
        if not isinstance(cell, Cell):
            raise TypeError(f"{where}: cells[{i}] is a {type(cell).__name__}, not a Cell.")
    _check_distinct(where, cells)
    if all(0 <= cell.seed < 2**32 for cell in cells):
        return  # distinct keys, in either mode
    first: dict[bytes, int] = {}
    for i, cell in enumerate(cells):
        with jax.ensure_compile_time_eval():  # a concrete key, also under a trace
            key = np.asarray(jax.random.key_data(jax.random.key(cell.seed))).tobytes()
        j = first.setdefault(key, i)
        if cells[j].seed != cell.seed:
            raise ValueError(
                f"{where}: cells {j} and {i} have seeds {cells[j].seed} and {cell.seed}, "
                "which make the same jax.random.key (JAX keeps a seed's low 32 bits unless "
                "jax_enable_x64 is set), so they would draw the same params, batches and "
                "dropout; use seeds in [0, 2**32)."
            )


def plan_groups(cells: Sequence[Cell]) -> list[Group]:
    """Splits ``cells`` into groups that each train with one compiled step.

    Cells share a group when their model config, data set and hparams agree except for
    the per-cell values (seed, learning rate, weight decay, momentum, label smoothing,
    regularizer strengths, knob values). Groups come in order of their first cell.

    Raises:
      TypeError, ValueError: see `check_cells` (e.g. seeds 0 and ``2**32``, one key).

    Examples:
      >>> from phosjax.models import ModelConfig
      >>> mlp = ModelConfig("mlp", 10, (40,))
      >>> a = Cell(mlp, "mnist1d", HParams(learning_rate=1e-3), seed=0)
      >>> b = Cell(mlp, "mnist1d", HParams(learning_rate=1e-2), seed=1)
      >>> c = Cell(mlp, "mnist1d", HParams(batch_size=32))
      >>> [g.index for g in plan_groups([a, b, c])]
      [(0, 1), (2,)]
    """
    check_cells("plan_groups", cells)
    by_signature: dict[tuple[Any, ...], list[int]] = {}
    for i, cell in enumerate(cells):
        by_signature.setdefault(cell.signature(), []).append(i)
    return [Group(tuple(cells[i] for i in index), tuple(index)) for index in by_signature.values()]
