"""`BenchConfig`: what a bench trains, as typed frozen dataclasses read from YAML.

Every field of `Grid` may be one value or a list of values; a list is an axis of the
grid. Loading a config never runs code: YAML is parsed with a safe loader
(`phosjax._yaml.safe_load`) and model plugins are imported only when named with ``--import``
(or recorded in ``bench.json`` by an earlier ``--import`` that registered the bench's models).
"""

import dataclasses
import hashlib
import json
import numbers
import pathlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import numpy as np
import optax

from phosjax._callables import cut_repr
from phosjax._nearest import did_you_mean
from phosjax._yaml import read_file
from phosjax.bench._errors import BenchError
from phosjax.core import compile_selector
from phosjax.data._load import is_feature_pair
from phosjax.train import (
    COMPUTE_DTYPES,
    LR_SCHEDULES,
    OPTIMIZERS,
    STRATEGIES,
    HParams,
    Regularizer,
)
from phosjax.train._config import (
    INT32_HINT,
    INT32_MAX,
    int_at_least,
    optax_shown,
)


def _keys_hint(word: str, known: list[str]) -> str:
    """What an error on the unknown key ``word`` ends with: the nearest of the ``known``
    keys, if any is near, then every one of them."""
    return f"{did_you_mean([word], known, cutoff=0.5) or '.'} Valid keys: {', '.join(known)}."


def check_axis(key: str, values: Any) -> None:
    """Raises `BenchError` when ``values`` (the config's ``key``) is an empty list (an axis
    with no value would make a grid with no cell), or lists a value twice (its cells would
    be planned once: the bench would silently have fewer cells than the config lists).

    Examples:
      >>> check_axis("seeds", [0, 1, 0])
      Traceback (most recent call last):
      phosjax.bench._errors.BenchError: seeds lists 0 twice; a repeat plans no more cells ...
    """
    if not isinstance(values, list | tuple):
        return
    if not values:
        raise BenchError(f"{key} is an empty list; give one value or a list of at least one value.")
    for index, value in enumerate(values):
        if value in values[:index]:
            raise BenchError(
                f"{key} lists {value!r} twice; a repeat plans no more cells (each is "
                "trained once), so the bench would have fewer cells than the config lists: "
                "remove it."
            )


def _as_number(value: Any) -> Any:
    """``value``, or the float a string spells (``"1e-3"``, given in Python)."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _checked_number(
    where: str, value: Any, integer: bool, least: float | None, strict: bool, optional: bool
) -> Any:
    if value is None and optional:
        return None
    value = value if integer else _as_number(value)
    kind_ok = isinstance(value, numbers.Integral if integer else numbers.Real)
    kind_ok = kind_ok and not isinstance(value, bool)
    if integer and kind_ok and not -(2**63) <= value < 2**63:
        raise BenchError(f"{where} must fit in int64 (results store it so), got {value}.")
    if kind_ok and (least is None or (value > least if strict else value >= least)):
        return value
    what = "a whole number" if integer else "a number"
    bound = "" if least is None else f" {'>' if strict else '>='} {least:g}"
    got = repr(value) if kind_ok else f"{value!r} ({type(value).__name__})"
    raise BenchError(f"{where} must be {what}{bound}{' or null' * optional}, got {got}.")


def checked_numbers(
    where: str,
    value: Any,
    *,
    integer: bool = False,
    least: float | None = None,
    strict: bool = False,
    optional: bool = False,
) -> Any:
    """``value`` (one value or a list of them) with each value checked: a number (a whole
    number if ``integer``), ``>= least`` (``> least`` if ``strict``), or None if
    ``optional``; a string that spells a float is that float.

    Raises:
      BenchError: naming ``where``, the value and what it must be.

    Examples:
      >>> checked_numbers("grid.learning_rate", ["1e-3", 0.1], least=0, strict=True)
      [0.001, 0.1]
      >>> checked_numbers("eval_every", "ten", integer=True, least=0)
      Traceback (most recent call last):
      ...
      phosjax.bench._errors.BenchError: eval_every must be a whole number >= 0, got 'ten' (str).
    """
    rule = (integer, least, strict, optional)
    if isinstance(value, list | tuple):
        return [_checked_number(where, v, *rule) for v in value]
    return _checked_number(where, value, *rule)


def _check_distinct_keys(seeds: list[int]) -> None:
    """Raises `BenchError` naming two different seeds that make the same
    ``jax.random.key`` (without ``jax_enable_x64`` JAX keeps a seed's low 32 bits)."""
    first: dict[bytes, int] = {}
    for seed in seeds:  # each once (check_axis)
        key = np.asarray(jax.random.key_data(jax.random.key(seed))).tobytes()
        if key in first:
            raise BenchError(
                f"seeds {first[key]} and {seed} make the same jax.random.key (JAX keeps a "
                "seed's low 32 bits unless jax_enable_x64 is set), so their cells would "
                "train the same models; use seeds in [0, 2**32)."
            )
        first[key] = seed


def check_keys(data: Any, cls: type, where: str, elsewhere: tuple[type, str] | None = None) -> None:
    """Raises `BenchError` naming any key of ``data`` that ``cls`` has no field for (and,
    for a key and value written without the space YAML needs after a colon, ``{kind:l1}``
    read as the key ``'kind:l1'``, how to write them; for a key of ``elsewhere``'s class,
    where it goes, as its phrase says).

    Examples:
      >>> check_keys({"name:mlp": None}, ModelEntry, "a models entry")
      Traceback (most recent call last):
      ...
      phosjax.bench._errors.BenchError: unknown key 'name:mlp' in a models entry (YAML reads
      'name:mlp' as one key without a value: a colon takes a space after it, as in 'name: mlp').
      Did ...
      >>> check_keys({"steps": 5}, BenchConfig, "the bench config", (Grid, "a grid setting"))
      Traceback (most recent call last):
      ...
      phosjax.bench._errors.BenchError: unknown key 'steps' in the bench config: 'steps' is
      a grid setting
    """
    if not isinstance(data, Mapping):
        raise BenchError(f"{where} must be a mapping of keys to values, got {data!r}.")
    known = [field.name for field in dataclasses.fields(cls)]
    for key in data:
        if key not in known:
            if elsewhere and key in (field.name for field in dataclasses.fields(elsewhere[0])):
                raise BenchError(f"unknown key {key!r} in {where}: {key!r} is {elsewhere[1]}")
            hint = colon_hint(key, data[key])
            raise BenchError(f"unknown key {key!r} in {where}{hint}{_keys_hint(str(key), known)}")


def colon_hint(key: Any, value: Any) -> str:
    """How to write ``key`` of a mapping whose ``value`` is None where it is a key and a
    value written without the space YAML needs after a colon (``{T:1}`` reads as
    ``{'T:1': None}``); "" for any other.

    Examples:
      >>> colon_hint("T:1", None).split(", as in ")[1], colon_hint("T", None)
      ("'T: 1')", '')
    """
    if not (isinstance(key, str) and ":" in key and value is None):
        return ""
    spaced = key.replace(":", ": ", 1)
    return (
        f" (YAML reads {key!r} as one key without a value: a colon takes a space after it, "
        f"as in {spaced!r})"
    )


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One model of the bench: a registered name and optional explicit sizes.

    Attributes:
      name: a registered model name (see `phosjax.models.registered_models`).
      depth: blocks per stage (None: the grid's ``depth``, else the model's default).
      width: width per stage, an int or a list (None: the grid's, else the default).
      options: model-specific options (see the model's registration).

    Examples:
      >>> ModelEntry.parse({"name": "mlp", "width": 64})
      ModelEntry(name='mlp', depth=None, width=64, options={})
    """

    name: str
    depth: int | None = None
    width: int | list[int] | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def parse(cls, entry: "str | Mapping[str, Any] | ModelEntry") -> "ModelEntry":
        """A `ModelEntry` from a name, a mapping with its fields, or an entry.

        Examples:
          >>> ModelEntry.parse("mlp")
          ModelEntry(name='mlp', depth=None, width=None, options={})
          >>> ModelEntry.parse({"name": "mlp", "width": 64}).width
          64
        """
        if isinstance(entry, ModelEntry):
            return entry
        if isinstance(entry, str):
            return cls(entry)
        if not isinstance(entry, Mapping):  # check_keys would ask for a mapping alone
            raise BenchError(
                f"a models entry is a registered model's name (mlp) or a mapping of its "
                f"fields ({{name: mlp, width: 64}}), got {entry!r}."
            )
        check_keys(entry, cls, "a models entry")
        if "name" not in entry:
            raise BenchError(f"a models entry needs a 'name', got {dict(entry)!r}.")
        if not isinstance(entry["name"], str) or not entry["name"]:
            raise BenchError(
                f"a models entry's name must be a registered model's name, e.g. "
                f"{{name: mlp}}, got {entry['name']!r} in {dict(entry)!r}."
            )
        options = {} if entry.get("options") is None else entry["options"]  # null: none
        if not isinstance(options, Mapping):
            raise BenchError(
                f"the options of models entry {entry['name']!r} must be a mapping of option "
                f"names to values (or null), got {options!r}."
            )
        return cls(**{**entry, "options": dict(options)})


@dataclasses.dataclass(frozen=True)
class RegularizerEntry:
    """One penalty of ``grid.regularizers`` (a `phosjax.train.Regularizer`).

    A list of strengths is an axis of the grid, reported in the column `column`
    (``reg/<kind>/<selector>``, ``reg/morph_<cost>/<selector>`` for ``morph``); the other
    fields take one value. The strengths of one entry train in one compiled group.

    Attributes:
      kind: ``"l1"``, ``"l2"`` or ``"morph"`` (MorphNet's resource regularizer).
      strength: one value or a list of values.
      selector: params or tagged values (``l1``, ``l2``), channel groups (``morph``).
      on: ``"params"`` or ``"activations"`` (``l1``, ``l2``).
      cost: ``morph``: ``"flops"``, ``"params"`` or ``"latency"``.
      source: ``morph``: ``"auto"``, ``"gamma"`` or ``"group_lasso"``.
      threshold: ``morph``: the importance at or below which a channel counts as dead.

    Examples:
      >>> entry = RegularizerEntry.parse({"kind": "morph", "strength": [0, 0.1]})
      >>> entry.column(), entry.strengths()
      ('reg/morph_flops/**', [0.0, 0.1])
    """

    kind: str
    strength: float | list[float] = 1e-4
    selector: str = "**"
    on: str = "params"
    cost: str = "flops"
    source: str = "auto"
    threshold: float = 1e-2

    @classmethod
    def parse(cls, entry: "Mapping[str, Any] | RegularizerEntry") -> "RegularizerEntry":
        """A checked entry from a mapping of its fields."""
        if isinstance(entry, RegularizerEntry):
            return entry
        check_keys(entry, cls, "a grid.regularizers entry")
        if "kind" not in entry:
            raise BenchError(f"a grid.regularizers entry needs a 'kind', got {dict(entry)!r}.")
        where = f"the strength of grid.regularizers entry {entry['kind']!r}"
        check_axis(where, entry.get("strength"))
        checked_numbers(where, entry.get("strength", cls.strength), least=0)
        try:
            parsed = cls(**entry)
            for strength in parsed.strengths():
                parsed.regularizer(strength)
        except (TypeError, ValueError) as error:
            raise BenchError(f"grid.regularizers: {error}") from error
        return parsed

    def strengths(self) -> list[float]:
        """The strength axis."""
        values = self.strength if isinstance(self.strength, list | tuple) else [self.strength]
        return [float(v) for v in values]

    def column(self) -> str:
        """The hparam column of the strength."""
        label = f"morph_{self.cost}" if self.kind == "morph" else self.kind
        return f"reg/{label}/{self.selector}"

    def regularizer(self, strength: float) -> Regularizer:
        """The engine's `Regularizer` at one strength."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return Regularizer(**{**fields, "strength": float(strength)})


_GRID_NUMBERS: dict[str, dict[str, Any]] = {
    "learning_rate": {"least": 0, "strict": True},
    "weight_decay": {},
    "momentum": {},
    "warmup_steps": {"integer": True, "least": 0},
    "batch_size": {"integer": True, "least": 1},
    "steps": {"integer": True, "least": 1},
    "label_smoothing": {},
    "grad_clip": {"optional": True},
}
"""How each numeric field of `Grid` is checked (`checked_numbers`); `HParams` checks the
rest of its fields' ranges (`_check_hparam`)."""

NAMED_HPARAMS = {
    "optimizer": OPTIMIZERS,
    "lr_schedule": LR_SCHEDULES,
    "compute_dtype": COMPUTE_DTYPES,
}
"""The fields of `Grid` whose values are names, and the names each takes."""

_HPARAMS = (*NAMED_HPARAMS, *(name for name in _GRID_NUMBERS if name != "warmup_steps"))
"""The fields of `Grid` that `HParams` checks one value at a time (``warmup_steps`` is
bounded by ``steps``: `_check_warmups_fit` checks the pairs)."""

LATER_GRID_FIELDS = {"lr_schedule": "constant", "warmup_steps": 0}
"""`Grid` fields added after benches existed, with their defaults: left out of a config's
plain data (`BenchConfig.to_dict`, its digest) and of a bench's columns at the default, so
an existing bench keeps its files as they are."""


def _check_hparam(name: str, value: Any) -> None:
    """Raises `BenchError` naming ``grid.<name>`` and ``value`` if `HParams` refuses it
    (its reason, said of ``grid.<name>``); a name not among those it takes, with them and
    the nearest.

    Examples:
      >>> _check_hparam("optimizer", "adamm")
      Traceback (most recent call last):
      ...
      phosjax.bench._errors.BenchError: grid.optimizer 'adamm' is not one of adam, adamw, sgd, ...
      >>> _check_hparam("momentum", 2.0)
      Traceback (most recent call last):
      ...
      phosjax.bench._errors.BenchError: grid.momentum must lie in [0, 1], got 2.0.
    """
    names = NAMED_HPARAMS.get(name)
    if names is not None and value not in names:
        near = did_you_mean([str(value)], names)
        raise BenchError(f"grid.{name} {value!r} is not one of {', '.join(names)}{near or '.'}")
    _refuse_as_hparams(name, value)


def _refuse_as_hparams(name: str, value: Any) -> None:
    """Raises `BenchError` naming ``grid.<name>`` if `HParams` refuses ``value`` (its
    reason, said of ``grid.<name>``)."""
    try:
        HParams(**{name: value})
    except (TypeError, ValueError) as error:
        said = str(error)
        own = f"HParams {name} "  # its reason, said of the HParams field
        why = f" {said.removeprefix(own)}" if said.startswith(own) else f"={value!r}: {said}"
        raise BenchError(f"grid.{name}{why}") from error


def _refuse_optax(name: str, value: Any) -> None:
    """Raises `BenchError` with `HParams`' reason if ``grid.<name>`` is, or lists, an optax
    transformation or a function (`optax_shown`): before a transformation, a tuple
    (``optax.adam(1e-3)``: its init and update), is read as an axis of its two functions.

    Examples:
      >>> import optax
      >>> _refuse_optax("optimizer", optax.adam(1e-3))
      Traceback (most recent call last):
      ...
      phosjax.bench._errors.BenchError: grid.optimizer must be an optimizer family's name, ...
    """
    values = [value] if isinstance(value, optax.GradientTransformation) else _as_axis(value)
    for one in values:
        if optax_shown(one):
            _refuse_as_hparams(name, one)


def _check_warmups_fit(warmups: list[int], steps: list[int]) -> None:
    """Raises `BenchError` unless each warmup of the grid fits in each of its step counts:
    the grid trains every pair, and `HParams` refuses a warmup longer than its run.

    Examples:
      >>> _check_warmups_fit([0, 50], [100, 40])
      Traceback (most recent call last):
      ...
      phosjax.bench._errors.BenchError: grid.warmup_steps 50 is more than grid.steps 40, ...
    """
    longest, shortest = max(warmups), min(steps)
    if longest > shortest:
        raise BenchError(
            f"grid.warmup_steps {longest} is more than grid.steps {shortest}, and the grid "
            f"trains every pair of them: warm up over at most {shortest} steps (the learning "
            "rate peaks at the warmup's end)."
        )


KNOB_PREFIX = "knob/"
"""What the name of a knob axis (`Grid.axes`), and of its hparam column, starts with."""


def _as_axis(value: Any) -> list[Any]:
    """A grid field's values: a list as a list, one value as a list of it."""
    return list(value) if isinstance(value, list | tuple) else [value]


@dataclasses.dataclass(frozen=True)
class Grid:
    """Training hyperparameters; a list is an axis of the grid (every value is tried).
    Cells of another ``compute_dtype``, ``lr_schedule`` or ``warmup_steps`` train in
    groups of their own.

    Attributes:
      optimizer: the optimizer family.
      learning_rate: the learning rate (a schedule's peak).
      lr_schedule: after the warmup, the rate stays (``constant``) or decays to 0 by the
        end.
      warmup_steps: steps of linear warmup from 0 (each must fit in each ``steps``).
      weight_decay: L2 added to the gradient (``adamw``: decoupled decay).
      momentum: the ``momentum`` optimizer's (the others ignore it).
      batch_size: examples per step.
      steps: training steps.
      label_smoothing: of the train loss's targets (the test loss takes the plain labels).
      grad_clip: the global gradient norm to clip to (None: no clipping).
      compute_dtype: what the forward and backward pass compute in (``bfloat16``: mixed
        precision, see `phosjax.train.HParams`).
      depth: blocks per stage, for models whose entry does not set it (None: the model's
        default).
      width: channels per stage, as ``depth``; each value is an int or a list of
        per-stage widths (``width: [[16, 32]]`` is ONE two-stage width).
      knobs: a knob selector to a value or a list of values (``{"**/T": [0.5, 2.0]}``);
        a model that declares no knob the selector matches ignores it, and two
        selectors that match one knob of a model are an error when the bench plans.
      regularizers: penalties (`RegularizerEntry`: ``{kind, strength, selector, on,
        cost, source, threshold}``), each strength a value or a list (an axis); a model
        that cannot take an entry (a ``morph`` entry it cannot price, a selector that
        matches nothing of it) ignores it, and an entry no model takes is an error.

    Examples:
      >>> grid = BenchConfig.from_dict({"grid": {"learning_rate": [1e-3, 1e-2]}}).grid
      >>> grid.learning_rate, grid.steps  # an axis of two rates; the default steps
      ([0.001, 0.01], 1000)
    """

    optimizer: str | list[str] = "adam"
    learning_rate: float | list[float] = 1e-3
    lr_schedule: str | list[str] = "constant"
    warmup_steps: int | list[int] = 0
    weight_decay: float | list[float] = 0.0
    momentum: float | list[float] = 0.9
    batch_size: int | list[int] = 128
    steps: int | list[int] = 1000
    label_smoothing: float | list[float] = 0.0
    grad_clip: float | list[float | None] | None = None
    compute_dtype: str | list[str] = "float32"
    depth: int | list[int | None] | None = None
    width: int | list[int | list[int] | None] | None = None
    knobs: dict[str, float | list[float]] = dataclasses.field(default_factory=dict)
    regularizers: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        for name in (*_HPARAMS, "warmup_steps"):
            _refuse_optax(name, getattr(self, name))
        for name, rule in _GRID_NUMBERS.items():  # first: "1e-2" repeats 0.01
            value = checked_numbers(f"grid.{name}", getattr(self, name), **rule)
            object.__setattr__(self, name, value)
        for field in dataclasses.fields(self):
            if field.name not in ("knobs", "regularizers"):
                check_axis(f"grid.{field.name}", getattr(self, field.name))
        for name in _HPARAMS:
            for one in _as_axis(getattr(self, name)):
                _check_hparam(name, one)
        _check_warmups_fit(_as_axis(self.warmup_steps), _as_axis(self.steps))
        if not isinstance(self.knobs, Mapping):
            raise BenchError(
                f"grid.knobs must be a mapping of knob selectors to values, got {self.knobs!r}."
            )
        knobs = {}
        for selector, values in self.knobs.items():
            if hint := colon_hint(selector, values):
                raise BenchError(f"grid.knobs[{selector!r}] has no value{hint}.")
            try:  # malformed: said here, not as the plan matches it to the models' knobs
                compile_selector(selector)
            except (TypeError, ValueError) as error:
                raise BenchError(f"grid.knobs: {error}") from None
            knobs[selector] = checked_numbers(f"grid.knobs[{selector!r}]", values)
            check_axis(f"grid.knobs[{selector!r}]", knobs[selector])
        object.__setattr__(self, "knobs", knobs)

    def axes(self) -> dict[str, list[Any]]:
        """Every field as a list of values, in field order, then knobs as
        ``knob/<selector>`` and regularizer strengths as `RegularizerEntry.column`.

        Examples:
          >>> grid = BenchConfig.from_dict({"grid": {
          ...     "learning_rate": [1e-3, 1e-2], "knobs": {"**/T": [1.0, 2.0]},
          ...     "regularizers": [{"kind": "l2", "selector": "**/kernel", "strength": [0, 1e-4]}],
          ... }}).grid
          >>> {name: values for name, values in grid.axes().items() if len(values) > 1}
          {'learning_rate': [0.001, 0.01], 'knob/**/T': [1.0, 2.0],
           'reg/l2/**/kernel': [0.0, 0.0001]}
        """
        out = {}
        for field in dataclasses.fields(self):
            if field.name in ("knobs", "regularizers"):
                continue
            out[field.name] = _as_axis(getattr(self, field.name))
        for selector, values in self.knobs.items():
            out[f"{KNOB_PREFIX}{selector}"] = _as_axis(values)
        for entry in self.regularizer_entries():
            out[entry.column()] = entry.strengths()
        return out

    def regularizer_entries(self) -> list[RegularizerEntry]:
        """The regularizers as checked `RegularizerEntry` values (columns must differ).

        Examples:
          >>> entry = {"kind": "l2", "selector": "**/kernel", "strength": 1e-4}
          >>> BenchConfig.from_dict({"grid": {"regularizers": [entry, entry]}})
          Traceback (most recent call last):
          phosjax.bench._errors.BenchError: grid.regularizers: two entries share the column
          'reg/l2/**/kernel'; give them different selectors.
        """
        if not isinstance(self.regularizers, list | tuple):
            raise BenchError(f"grid.regularizers must be a list, got {self.regularizers!r}.")
        entries = [RegularizerEntry.parse(entry) for entry in self.regularizers]
        columns = [entry.column() for entry in entries]
        for column in columns:
            if columns.count(column) > 1:
                raise BenchError(
                    f"grid.regularizers: two entries share the column {column!r}; "
                    "give them different selectors."
                )
        return entries


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """A bench: models x data sets x grid x seeds, and how to run it.

    Attributes:
      models: model names or entries ``{name, depth, width, options}``.
      datasets: data set names (see `phosjax.data.load`).
      dataset_features: for some of those names, the input and the label feature to read,
        ``{name: [input, label]}`` (`phosjax.data.load`'s ``features``); by default a data
        set's supervised keys, else ``image`` and ``label``.
      dataset_splits: for some of those names, the split to train on and the split to
        test on, ``{name: [train, test]}`` (`phosjax.data.load`'s ``splits``, e.g.
        ``['train[:90%]', 'train[90%:]']``); by default ``train`` and ``test`` (else
        ``validation``).
      grid: the hyperparameters (`Grid`); lists are axes.
      seeds: a number of seeds (0, 1, ...) or the list of seeds.
      eval_every: evaluate on the test split every this many steps (0: only at the end).
      checkpoint_every: save each group's state (and flush its results) every this many
        steps; 0 saves only at the end (and, either way, at the end of the chunk under
        way when SIGTERM or SIGHUP stops the run).
      chunk_steps: steps per dispatch (None: the largest divisor up to 250 of
        ``eval_every`` and ``checkpoint_every``, of the steps where both are 0, so that
        every chunk compiles once; 250 where that divisor is small, as an interval of
        257's is). These three, and a number of ``seeds``, are at most ``2**31 - 1`` (the
        engine holds steps in int32 on device).
      strategy: how the engine runs a group: ``"auto"`` or one of
        `phosjax.train.STRATEGIES` (see `phosjax.train.run_group`).
      data_dir: where data sets are prepared (None: where `phosjax.data.load` looks by default);
        a relative one is taken from the current folder, and a run records it absolute.
      blurb_flops: measure FLOPs in each model's blurb (costs a compile per module, one
        for modules of the same program).

    Examples:
      >>> config = BenchConfig.from_dict({"models": ["mlp"], "grid": {"steps": 20}})
      >>> config.grid.steps, config.seed_list()
      (20, [0, 1])
    """

    models: list[str | dict[str, Any]] = dataclasses.field(default_factory=lambda: ["mlp"])
    datasets: list[str] = dataclasses.field(default_factory=lambda: ["mnist1d"])
    dataset_features: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    dataset_splits: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    grid: Grid = dataclasses.field(default_factory=Grid)
    seeds: int | list[int] = 2
    eval_every: int = 100
    checkpoint_every: int = 500
    chunk_steps: int | None = None
    strategy: str = "auto"
    data_dir: str | None = None
    blurb_flops: bool = False

    def __post_init__(self) -> None:
        for name in ("eval_every", "checkpoint_every"):
            checked_numbers(name, getattr(self, name), integer=True, least=0)
        checked_numbers("chunk_steps", self.chunk_steps, integer=True, least=1, optional=True)
        datasets = self.datasets
        if not isinstance(datasets, list | tuple) or not all(isinstance(d, str) for d in datasets):
            raise BenchError(
                f"datasets must be a list of data set names, got {cut_repr(self.datasets, 80)}"
                f"{_as_list('datasets', self.datasets)}."
            )
        if not isinstance(self.models, list | tuple):  # as from_dict, for a config built here
            raise _models_not_a_list(self.models)
        if not isinstance(self.grid, Grid):
            raise BenchError(
                f"grid must be a Grid, got {type(self.grid).__name__} {cut_repr(self.grid, 80)} "
                "(BenchConfig.from_dict makes one from a mapping)."
            )
        if not self.models or not self.datasets:
            raise BenchError("a bench needs at least one model and one data set.")
        check_axis("models", self.models)
        check_axis("datasets", self.datasets)
        self._check_per_dataset(
            "dataset_features",
            "[input, label] feature names, e.g. {my_set: [pixels, digit]}",
            "the input and the label feature, two different names, e.g. [image, label]",
            is_feature_pair,
        )
        self._check_per_dataset(
            "dataset_splits",
            "[train, test] splits, e.g. {my_set: [train, val]}",
            "the split to train on and the split to test on, e.g. [train, val] or "
            "['train[:90%]', 'train[90%:]']",
            lambda pair: len(pair) == 2 and all(isinstance(spec, str) for spec in pair),
        )
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            raise BenchError(f"data_dir must be a folder (a path) or null, got {self.data_dir!r}.")
        check_axis("seeds", self.seeds)
        if isinstance(self.seeds, list | tuple):
            checked_numbers("each of seeds (a list of seeds)", self.seeds, integer=True)
            _check_distinct_keys(self.seeds)
        elif not isinstance(self.seeds, int) or isinstance(self.seeds, bool) or self.seeds < 1:
            raise BenchError(f"seeds must be a number of seeds >= 1 or a list, got {self.seeds!r}.")
        if not isinstance(self.blurb_flops, bool):  # a string "false" would be truthy
            raise BenchError(f"blurb_flops must be true or false, got {self.blurb_flops!r}.")
        strategies = ("auto", *STRATEGIES)
        if self.strategy not in strategies:
            raise BenchError(
                f"unknown strategy {self.strategy!r}; strategy must be one of "
                f"{', '.join(map(repr, strategies))}"
                f"{did_you_mean([str(self.strategy)], strategies) or '.'}"
            )
        self._check_int32()

    def _check_int32(self) -> None:
        """Raises `BenchError` naming an interval or count (``eval_every``,
        ``checkpoint_every``, ``chunk_steps``, a number of ``seeds``) above `INT32_MAX`: the
        engine holds steps in int32 on device, so it would be refused (or wrap) only later."""
        seeds_hint = " (a number of seeds; list the seeds to pick large ones)"
        counts = [
            ("eval_every", 0, INT32_HINT),
            ("checkpoint_every", 0, INT32_HINT),
            ("chunk_steps", 1, INT32_HINT),
        ]
        if not isinstance(self.seeds, list | tuple):
            counts.append(("seeds", 1, seeds_hint))
        for name, least, hint in counts:
            value = getattr(self, name)
            if value is None:
                continue
            try:
                int_at_least(name, value, least, INT32_MAX, hint=hint)
            except ValueError as error:
                raise BenchError(str(error)) from None

    def _check_per_dataset(
        self, field: str, mapping: str, entry: str, valid: Callable[[Any], bool]
    ) -> None:
        """Raises unless `field` maps names among the datasets to `valid` lists."""
        entries = getattr(self, field)
        if not isinstance(entries, Mapping):
            raise BenchError(f"{field} must map data set names to {mapping}, got {entries!r}.")
        for name, value in entries.items():
            if name not in self.datasets:
                raise BenchError(
                    f"{field} names {name!r}, which is not among the datasets "
                    f"({', '.join(map(repr, self.datasets))})."
                )
            if not isinstance(value, list | tuple) or not valid(value):
                raise BenchError(f"{field}.{name} must name {entry}, got {value!r}.")

    def model_entries(self) -> list[ModelEntry]:
        """The models as `ModelEntry` values.

        Examples:
          >>> config = BenchConfig.from_dict({"models": ["mlp", {"name": "cnn", "width": 32}]})
          >>> config.model_entries()
          [ModelEntry(name='mlp', depth=None, width=None, options={}),
           ModelEntry(name='cnn', depth=None, width=32, options={})]
        """
        return [ModelEntry.parse(entry) for entry in self.models]

    def seed_list(self) -> list[int]:
        """The seeds: ``range(seeds)`` for a count, else the list.

        Examples:
          >>> BenchConfig(seeds=3).seed_list(), BenchConfig(seeds=[3, 7]).seed_list()
          ([0, 1, 2], [3, 7])
        """
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON and YAML friendly) that `from_dict` reads back.

        Examples:
          >>> config = BenchConfig.from_dict({"models": ["mlp"], "grid": {"steps": 20}})
          >>> config.to_dict()["grid"]["steps"], BenchConfig.from_dict(config.to_dict()) == config
          (20, True)
        """
        data = self._plain()
        if not data["grid"]["regularizers"]:  # benches made before the field keep their file
            del data["grid"]["regularizers"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BenchConfig":
        """A config from plain data; unknown keys are named with the nearest valid ones.

        Examples:
          >>> BenchConfig.from_dict({"model": ["mlp"]})
          Traceback (most recent call last):
          phosjax.bench._errors.BenchError: unknown key 'model' in the bench config. Did you
          mean 'models'? Valid keys: models, datasets, ...
        """
        check_keys(data, cls, "the bench config", (Grid, "a grid setting; write it inside grid"))
        grid = data.get("grid", {})
        check_keys(
            grid, Grid, "grid", (cls, "no grid setting; write it at the top level, beside grid")
        )
        models = data.get("models", ["mlp"])
        if not isinstance(models, list):
            raise _models_not_a_list(models)
        for entry in models:
            ModelEntry.parse(entry)
        try:
            config = cls(**{**data, "grid": Grid(**grid)})
        except TypeError as error:
            raise BenchError(f"bad bench config: {error}") from error
        config.grid.regularizer_entries()
        return config

    def _fields(self) -> dict[str, Any]:
        """Every field as plain data, defaults included."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def _plain(self) -> dict[str, Any]:
        """`_fields` less the `LATER_GRID_FIELDS` at their defaults, and less an empty
        ``dataset_features`` or ``dataset_splits``: benches made before them keep their
        bench.json and digest."""
        data = self._fields()
        for name in ("dataset_features", "dataset_splits"):
            if not data[name]:
                del data[name]
        for name, default in LATER_GRID_FIELDS.items():
            if data["grid"][name] == default:
                del data["grid"][name]
        return data

    def digest(self) -> str:
        """The sha256 of the config's canonical JSON, less ``data_dir``: configs of one
        bench, one digest.

        Examples:
          >>> config = BenchConfig.from_dict({"models": ["mlp"]})
          >>> moved = BenchConfig.from_dict({"models": ["mlp"], "data_dir": "/data"})
          >>> more = BenchConfig.from_dict({"models": ["mlp"], "seeds": 3})
          >>> config.digest() == moved.digest() != more.digest(), len(config.digest())
          (True, 64)
        """
        text = json.dumps(_identity(self._plain()), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def differences(self, other: "BenchConfig") -> list[str]:
        """Where ``other`` differs from this config, as ``key: this -> other`` lines;
        numbers compare by value (``weight_decay: 0`` is ``0.0``), a grid axis of one
        value as that value (``learning_rate: [0.01]`` is ``0.01``: the same cells; where
        they differ, each is shown as written), a ``grid.regularizers`` entry with its
        defaults filled in (``{kind: l2}`` is ``{kind: l2, selector: "**"}``), and
        ``data_dir`` not at all (see `digest`).

        Examples:
          >>> a = BenchConfig.from_dict({"grid": {"learning_rate": 1, "steps": 20}})
          >>> b = BenchConfig.from_dict({"grid": {"learning_rate": 1.0, "steps": 30}})
          >>> a.differences(b)
          ['grid.steps: 20 -> 30']
        """
        return _differences(_identity(self._fields()), _identity(other._fields()), "")


def _identity(data: dict[str, Any]) -> dict[str, Any]:
    """What makes a bench: its config's plain ``data`` less where its data sets live
    (``data_dir`` may move without changing a result)."""
    return {key: value for key, value in data.items() if key != "data_dir"}


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


_ABSENT = _Absent()


def _same(a: Any, b: Any) -> bool:
    """Equal, numbers by value (``0 == 0.0``), other values also by type."""
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b)):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


def _differences(a: Any, b: Any, where: str) -> list[str]:
    """``where: a -> b`` for every leaf in which the plain data ``a`` and ``b`` differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = [*a, *(k for k in b if k not in a)]
        return [
            line
            for k in keys
            for line in _differences(
                a.get(k, _ABSENT), b.get(k, _ABSENT), f"{where}.{k}" if where else str(k)
            )
        ]
    if where.startswith("grid."):  # an axis of one value plans the cells of the value
        for one, other in ((a, b), (b, a)):  # shown as written where they differ
            single = isinstance(one, list) and len(one) == 1 and not isinstance(other, list | dict)
            if single and not _differences(one[0], other, where):
                return []
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        pairs: Iterable[tuple[Any, Any]] = zip(a, b, strict=True)
        if where == "grid.regularizers":
            pairs = map(_less_agreed_defaults, a, b)
        return [
            line for i, (x, y) in enumerate(pairs) for line in _differences(x, y, f"{where}[{i}]")
        ]
    return [] if _same(a, b) else [f"{where}: {a!r} -> {b!r}"]


def _less_agreed_defaults(
    a: dict[str, Any], b: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two ``grid.regularizers`` entries less the fields they agree on once their defaults
    are filled in: ``{kind: l2}`` plans the cells of ``{kind: l2, selector: "**"}``."""
    filled_a, filled_b = (dataclasses.asdict(RegularizerEntry.parse(e)) for e in (a, b))
    agreed = {k for k in filled_a if not _differences(filled_a[k], filled_b[k], f"grid.{k}")}
    kept_a, kept_b = ({k: v for k, v in e.items() if k not in agreed} for e in (a, b))
    return kept_a, kept_b


def _as_list(key: str, value: Any) -> str:
    """For an error about ``key`` given one name, ``value``, where a list is taken: the
    list to write instead; else "".

    Examples:
      >>> _as_list("models", "mlp"), _as_list("models", 3)
      ('; write models: [mlp]', '')
    """
    return f"; write {key}: [{value}]" if isinstance(value, str) else ""


def _models_not_a_list(models: Any) -> BenchError:
    """The error that a config's ``models`` is no list."""
    return BenchError(
        f"models must be a list of names or entries, got {models!r}{_as_list('models', models)}."
    )


def holds_no_config(path: str | pathlib.Path) -> str:
    """What an error says of the config file ``path`` that YAML reads as nothing.

    Examples:
      >>> holds_no_config("b.yaml")
      "config file 'b.yaml' holds no config (it is blank, comments only, or null)"
    """
    return f"config file {str(path)!r} holds no config (it is blank, comments only, or null)"


def read_yaml(path: str | pathlib.Path) -> Any:
    """Safely parsed YAML; a clear `BenchError` if the file is missing, unreadable (a
    folder, not UTF-8), malformed, or read as nothing (blank, comments, null: the command
    line's parser refuses such a file, so `load_config` does too)."""
    try:
        data = read_file(path)
    except ValueError as error:
        raise BenchError(str(error)) from error
    if data is None:
        raise BenchError(f"{holds_no_config(path)}; give at least one key, e.g. 'models: [mlp]'.")
    return data


def load_config(path: str | pathlib.Path) -> BenchConfig:
    """Reads a `BenchConfig` from a YAML file (safe load; never runs code).

    Examples:
      >>> import tempfile, pathlib
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     path = pathlib.Path(tmp) / "bench.yaml"
      ...     _ = path.write_text("models: [mlp]\\ngrid: {learning_rate: [0.1, 0.01]}\\n")
      ...     load_config(path).grid.learning_rate
      [0.1, 0.01]
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     path = pathlib.Path(tmp) / "bench.yaml"
      ...     _ = path.write_text("model: [mlp]\\n")
      ...     load_config(path)
      Traceback (most recent call last):
      ...
      phosjax.bench._errors.BenchError: unknown key 'model' in the bench config. Did you ...
    """
    return BenchConfig.from_dict(read_yaml(path))
