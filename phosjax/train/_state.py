"""`GroupState`: everything a group's training carries, stacked on a leading cell axis."""

import collections
import functools
import types
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from phosjax._callables import REPR_LIMIT, a_type
from phosjax._compile import jit_run_once
from phosjax._listing import counted, listing
from phosjax.core import KNOBS, Knob, SelectorError, flatten, select, set_knobs
from phosjax.core._knobs import _trace_init, check_as_held, holds_exactly, what_holds
from phosjax.core._numbers import in_type_of
from phosjax.core._selectors import selector_per_path
from phosjax.models._registry import checked_build
from phosjax.train._config import COMPUTE_DTYPES, LR_SCHEDULES, OPTIMIZERS, HParams
from phosjax.train._group import Group
from phosjax.train._optim import hparams_optimizer
from phosjax.train._strategy import PRNG_IMPLS, kept, per_cell, trace_config


@flax.struct.dataclass
class GroupState:
    """The training state of a group: a pytree, every leaf with a leading cell axis.

    Plain arrays only (keys are raw ``uint32`` key data), so ``jax.device_get(state)``
    gives numpy that orbax or ``np.savez`` can store, and `run_group` resumes from it.

    Attributes:
      params: the model parameters.
      collections: the other persistent variable collections (``batch_stats``, ``knobs``).
      opt_state: the optimizer state (its ``hyperparams`` hold each cell's learning rate,
        weight decay and momentum).
      hparams: the other per-cell values: ``label_smoothing`` and, when there are
        regularizers, ``regularizer_strength`` (no zero-size arrays: their sharding
        would not survive a compiled call).
      data_key: raw key data drawing each cell's batches.
      dropout_key: raw key data for the ``"dropout"`` stream (folded with the step).
      step: steps done.
      diverged: whether the loss, the gradient norm, an updated param, running statistic
        (e.g. ``batch_stats``) or optimizer state became NaN/inf; the cell is then frozen.
      diverged_at: the step at which it diverged (-1: never).
      settings: the `RECORDED_SETTINGS` the state was last trained under (`init_group`'s
        or `run_group`'s group's), which `run_group` checks on resume; empty in a state
        written before states recorded them, which resumes unchecked.

    Examples:
      `init_group` makes one; `run_group` trains it, from numpy too (a checkpoint):

      >>> from phosjax.data import random_dataset
      >>> from phosjax.models import ModelConfig
      >>> from phosjax.train import Cell, HParams, init_group, plan_groups, run_group
      >>> data = random_dataset("toy", (8,), 3)
      >>> model = ModelConfig("mlp", 3, (8,), width=8)
      >>> hp = HParams(batch_size=16, steps=10)
      >>> [group] = plan_groups([Cell(model, "toy", hp, seed=0), Cell(model, "toy", hp, seed=1)])
      >>> state = init_group(group, data)
      >>> {leaf.shape[0] for leaf in jax.tree.leaves(state)}  # every leaf: one row a cell
      {2}
      >>> state.data_key.dtype, state.step.tolist(), state.diverged.tolist()
      (dtype('uint32'), [0, 0], [False, False])
      >>> saved = jax.device_get(state)  # numpy, what a checkpoint stores
      >>> type(saved.params["head"]["kernel"]).__name__
      'ndarray'
      >>> state, _ = run_group(group, saved, data, 5, strategy="vmap")
      >>> state.step.tolist(), state.diverged_at.tolist()
      ([5, 5], [-1, -1])
      >>> state  # a summary: the arrays are its attributes
      GroupState(2 cells, 171 params each in 6 arrays, at steps [5, 5], none diverged)
    """

    params: Any
    collections: dict[str, Any]
    opt_state: Any
    hparams: dict[str, jax.Array]
    data_key: jax.Array
    dropout_key: jax.Array
    step: jax.Array
    diverged: jax.Array
    diverged_at: jax.Array
    settings: dict[str, jax.Array] = flax.struct.field(default_factory=dict)

    def __repr__(self) -> str:  # the dataclass's printed every param of every cell
        leaves = jax.tree.leaves(self.params)
        cell_axes = np.ndim(self.step)  # 0 for one cell's (state[i], a vmap over cells)
        each = sum(int(np.prod(np.shape(leaf)[cell_axes:])) for leaf in leaves)
        where = "no values"  # traced (jit) or shapes alone (eval_shape)
        if isinstance(self.step, np.ndarray | jax.Array) and not isinstance(
            self.step, jax.core.Tracer
        ):
            where = f"{_steps_text(self.step)}, {diverged_text(self.diverged_at)}"
        return (
            f"GroupState({counted(np.size(self.step), 'cell')}, {each:,} "
            f"param{'' if each == 1 else 's'} each in {counted(len(leaves), 'array')}, {where})"
        )


def _steps_text(step: Any) -> str:
    """For a repr: each cell's ``step``, as a list where it is short, else their range.

    Examples:
      >>> _steps_text(np.array([7, 7])), _steps_text(np.full(1000, 7))
      ('at steps [7, 7]', 'at step 7 (every cell)')
      >>> _steps_text(np.arange(1000))
      'at steps 0 to 999'
    """
    steps = np.asarray(step)
    if len(shown := repr(steps.tolist())) <= REPR_LIMIT:
        return f"at steps {shown}"
    low, high = steps.min(), steps.max()
    return f"at step {low} (every cell)" if low == high else f"at steps {low} to {high}"


def diverged_text(diverged_at: Any) -> str:
    """For a repr: the step at which each cell diverged (``diverged_at``; -1: it did not),
    as a list where it is short, else the cells that diverged, counted, a few named.

    Examples:
      >>> diverged_text(np.array([-1, 4])), diverged_text(np.full(3, -1))
      ('diverged at [-1, 4]', 'none diverged')
      >>> print(diverged_text(np.where(np.arange(1000) % 300 == 7, 9, -1)))
      4 of 1,000 cells diverged: cell 7 at step 9, cell 307 at step 9, cell 607 at step 9 and 1 more
    """
    at = np.asarray(diverged_at)
    if not (at >= 0).any():
        return "none diverged"
    if len(shown := repr(at.tolist())) <= REPR_LIMIT:
        return f"diverged at {shown}"
    cells = np.flatnonzero(at >= 0)
    named = listing([f"cell {i} at step {at[i]}" for i in cells], 3)
    return f"{len(cells):,} of {counted(at.size, 'cell')} diverged: {named}"


RECORDED_SETTINGS = (
    "optimizer",
    "lr_schedule",
    "warmup_steps",
    "steps",
    "grad_clip",
    "batch_size",
    "compute_dtype",
)
"""The `HParams` a `GroupState` records (``settings``): those that shape its training
beyond the per-cell values it holds itself, most of which its tree does not show (a cosine
schedule's ``steps``, a ``grad_clip``'s norm, ...)."""

_NAMED = {"optimizer": OPTIMIZERS, "lr_schedule": LR_SCHEDULES, "compute_dtype": COMPUTE_DTYPES}
"""The `RECORDED_SETTINGS` that are names, recorded as their index among these choices."""


def recorded_settings(hp: HParams) -> dict[str, np.ndarray]:
    """``hp``'s `RECORDED_SETTINGS` as a `GroupState` records them for one cell: a name
    as its index among its choices, a ``grad_clip`` of None as NaN.

    Examples:
      >>> recorded_settings(HParams(lr_schedule="cosine", grad_clip=1.0))["lr_schedule"]
      array(1, dtype=int32)
    """

    def recorded(name: str) -> np.ndarray:
        value = getattr(hp, name)
        if name in _NAMED:
            return np.asarray(_NAMED[name].index(value), np.int32)
        if name == "grad_clip":
            return np.asarray(np.nan if value is None else value, np.float32)
        return np.asarray(value, np.int32)

    return {name: recorded(name) for name in RECORDED_SETTINGS}


def stacked_settings(group: Group) -> dict[str, np.ndarray]:
    """``group``'s `recorded_settings`, one per cell on a leading cell axis."""
    recorded = recorded_settings(group.hparams)
    return {name: np.full(len(group), value) for name, value in recorded.items()}


def _shown_setting(name: str, recorded: np.ndarray) -> str:
    """A setting `recorded_settings` recorded, as `HParams` takes it."""
    if name in _NAMED:
        return repr(_NAMED[name][int(recorded)])
    if name == "grad_clip":
        return "None" if np.isnan(recorded) else str(recorded)
    return str(int(recorded))


def _same(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Where a recorded setting ``got`` is ``want`` (a ``grad_clip`` of None: NaN in both)."""
    return (got == want) | (np.isnan(got) & np.isnan(want))


def check_settings(state: GroupState, group: Group) -> None:
    """Raises unless ``state`` records ``group``'s `RECORDED_SETTINGS` (or none: a state
    written before states recorded them). ``steps`` may differ under ``lr_schedule="constant"``,
    whose rate does not depend on it (a warmup's neither): a run may be extended."""
    hp = group.hparams
    want = recorded_settings(hp)
    for name, got in jax.device_get(state.settings).items():
        if name == "steps" and hp.lr_schedule == "constant":
            continue
        same = _same(got, want[name])
        if not np.all(same):
            saved = _shown_setting(name, np.ravel(got)[np.argmin(np.ravel(same))])
            shown = _shown_setting(name, want[name])
            why = (
                f" (lr_schedule {hp.lr_schedule!r} decays the learning rate over steps: "
                "resumed under others, the rate would jump; steps may change under "
                "lr_schedule 'constant' alone)"
                if name == "steps"
                else ""
            )
            raise ValueError(
                f"run_group: the state was trained under hparams {name}={saved} but the "
                f"group has {name}={shown}{why}; resume it under {name}={saved}, or train "
                "the group from its start (init_group) as a new run."
            )


def _root_keys(group: Group) -> jax.Array:
    """Each cell's ``jax.random.key(seed)`` as raw key data, stacked: every seed
    `jax.random.key` takes gives the keys the cell would get alone. Seeds in
    ``[0, 2**31)`` (int32, the same keys) are made in one call, others one by one."""
    seeds = [cell.seed for cell in group.cells]
    if all(isinstance(s, int) and 0 <= s < 2**31 for s in seeds):
        return jax.random.key_data(jax.vmap(jax.random.key)(jnp.asarray(seeds, jnp.int32)))
    return jnp.stack([jax.random.key_data(jax.random.key(seed)) for seed in seeds])


INIT_PROGRAMS_KEPT = 256
"""How many group signatures keep their `init_group` program compiled (the least
recently used dropped first): a session sweeping many models does not keep them all,
while running a grid of up to that many groups again compiles none of them (an LRU
smaller than the grid drops each program before its group comes round again)."""


@functools.lru_cache(maxsize=INIT_PROGRAMS_KEPT)
def _vmapped_init(signature: Any, input_shape: tuple[int, ...], impl: str) -> Any:
    """``(root keys, `_init_values`) -> GroupState`` of a group of the `Group.program_signature`
    ``signature`` whose keys are of the PRNG implementation ``impl``, not jitted (`_init_fn`
    and `_cheap_init_fn` jit it)."""
    model_config, _, hp = signature
    model = model_config.build()
    knob_selectors = [selector for selector, _ in hp.knobs]

    def init_cell(root_key: jax.Array, v: dict[str, jax.Array]) -> GroupState:
        # Made here, not in the cached factory: a factory first called under a trace
        # (e.g. `jax.eval_shape(init_group, ...)`) would otherwise cache a tracer.
        x0 = jnp.zeros((1, *input_shape), jnp.float32)
        root = jax.random.wrap_key_data(root_key, impl=impl)
        init_key, data_key, dropout_key = jax.random.split(root, 3)
        # plain arrays: a param boxed by nn.with_partitioning names a mesh axis of the
        # model's, which the engine's mesh (one axis, the cells) lacks
        variables = dict(nn.meta.unbox(model.init(init_key, x0, train=False)))
        if knob_selectors:  # no two match one knob (`_check_knob_ranges`)
            values = {selector: v["knob_value"][i] for i, selector in enumerate(knob_selectors)}
            variables = set_knobs(variables, values)
        params = variables.pop("params", {})  # none: a model of knobs alone
        tx = hparams_optimizer(
            hp,
            learning_rate=v["learning_rate"],
            weight_decay=v["weight_decay"],
            momentum=v["momentum"],
        )
        return GroupState(
            params=params,
            collections=variables,
            opt_state=tx.init(params),
            hparams={k: v[k] for k in ("label_smoothing", "regularizer_strength") if k in v},
            data_key=jax.random.key_data(data_key),
            dropout_key=jax.random.key_data(dropout_key),
            step=jnp.zeros((), jnp.int32),
            diverged=jnp.zeros((), bool),
            diverged_at=jnp.full((), -1, jnp.int32),
            settings=dict(v["settings"]),
        )

    return per_cell(init_cell)


# ``impl`` in the keys of these caches: jit keeps a trace by its arguments' shapes and the
# settings it is keyed by, which leave the PRNG implementation out (rbg's and unsafe_rbg's
# keys have one shape)
@functools.lru_cache(maxsize=INIT_PROGRAMS_KEPT)
def _init_fn(signature: Any, input_shape: tuple[int, ...], impl: str) -> Any:
    return jax.jit(_vmapped_init(signature, input_shape, impl))


@functools.lru_cache(maxsize=INIT_PROGRAMS_KEPT)
def _cheap_init_fn(signature: Any, input_shape: tuple[int, ...], impl: str) -> Any:
    """`_init_fn`'s program compiled as one run once (`jit_run_once`): for calls outside
    any trace only."""
    return jit_run_once(_vmapped_init(signature, input_shape, impl))


def _init_values(group: Group) -> dict[str, Any]:
    """What `_vmapped_init`'s program takes of ``group`` beside its keys: its per-cell values
    (`Group.values`) and settings (`stacked_settings`), given, not built in, so groups of one
    `Group.program_signature` (e.g. a grid over ``steps``) share one program."""
    return {**group.values(), "settings": stacked_settings(group)}


CHECKED_BATCH = 2
"""The examples of the batch whose output shape `init_group` checks: more than one, so that
an output whose rows are not the examples' (e.g. a mean over the batch) shows."""


@functools.cache
def _logits_spec(model_config: Any, input_shape: tuple[int, ...]) -> Any:
    """The shape and dtype of the model's output for a batch of `CHECKED_BATCH` examples
    (traced, not computed); a pytree of them for a model that returns a pytree (a graph
    model's dict).

    Raises:
      TypeError: naming the model: its ``build`` returned no Flax module, or one whose
        ``__call__`` takes no ``train`` (the engine calls ``model(x, train=...)``).
    """
    name = str(getattr(model_config, "name", model_config))
    module = checked_build(model_config.build(), name)
    init = functools.partial(module.init_with_output, train=False)
    x = jax.ShapeDtypeStruct((CHECKED_BATCH, *input_shape), jnp.float32)
    logits, _ = jax.eval_shape(init, jax.random.key(0), x)
    return logits


def _check_classes(group: Group, data: Any) -> None:
    """Raises unless the group's model takes ``data``'s examples (when its config names an
    ``input_shape``) and returns ``data.num_classes`` float logits per example, one row per
    example."""
    name = getattr(group.model, "name", group.model)
    built_for = getattr(group.model, "input_shape", None)
    if built_for is not None and tuple(built_for) != tuple(data.input_shape):
        raise ValueError(
            f"model {name!r} is built for examples of shape {tuple(built_for)} (its config's "
            f"input_shape) but data set {data.name!r} has examples of shape "
            f"{tuple(data.input_shape)}; build the model with "
            f"input_shape={tuple(data.input_shape)} or train it on a data set of "
            f"{tuple(built_for)} examples"
        )
    logits = _logits_spec(group.model, tuple(data.input_shape))
    if not isinstance(logits, jax.ShapeDtypeStruct):
        fix = (
            "a graph model returns {node: value}: build it with GraphModel(spec, "
            "returns='head') (a zoo twin: graph_model(config).clone(returns='head')) so it "
            "returns its logits node"
            if isinstance(logits, Mapping)
            else "return the logits alone, and tag the other values (px.tag) for px.probe to read"
        )
        raise ValueError(
            f"model {name!r} returns a {type(logits).__name__}, not an array of logits; {fix}"
        )
    if jnp.issubdtype(logits.dtype, jnp.complexfloating):
        raise ValueError(
            f"model {name!r} returns complex outputs ({logits.dtype}), not float logits: the "
            "softmax cross-entropy takes real logits; return a real float array (e.g. the "
            "magnitudes, jnp.abs, or the real parts)"
        )
    if not jnp.issubdtype(logits.dtype, jnp.floating):
        raise ValueError(
            f"model {name!r} returns {logits.dtype} outputs, not float logits: the loss has no "
            "gradient through them, so no cell would learn; return the float logits (before "
            "an argmax, a rounding or a cast)"
        )
    batch_shape = logits.shape
    if batch_shape[:1] != (CHECKED_BATCH,):
        raise ValueError(
            f"model {name!r} returns an output of shape "
            f"{batch_shape} for a batch of {CHECKED_BATCH} examples; it must return one row "
            f"of logits per example, shape (batch, num_classes) = ({CHECKED_BATCH}, "
            f"{data.num_classes}) for data set {data.name!r} (does it reduce over the batch "
            "axis?)"
        )
    shape = batch_shape[1:]
    if len(shape) != 1:
        raise ValueError(
            f"model {name!r} returns logits of shape {shape} per example, where one vector "
            f"of num_classes={data.num_classes} logits (shape ({data.num_classes},)) is due "
            f"for data set {data.name!r}; pool or flatten the other axes before its last layer "
            "(x.mean(axis=1) over a sequence's positions, x.reshape(len(x), -1))"
        )
    if shape != (data.num_classes,):
        raise ValueError(
            f"model {name!r} returns {shape[0]} logits "
            f"per example but data set {data.name!r} has num_classes={data.num_classes}; "
            f"build the model for {data.num_classes} classes or train it on a data set "
            "with as many classes as it has logits"
        )


def _check_whole_knob_values(group: Group, data: Any) -> None:
    """Raises unless each knob is set to values its dtype holds exactly (``HParams`` knob
    values are floats; a cast would cut 2.5 to 2, or turn 1e5 into a float16 inf, silently).
    Beyond float32's range, `HParams` refused them first (`check_float32`)."""
    if not group.hparams.knobs:
        return
    given = np.array(group.knob_values())
    knobs = _knob_values(_layout(group, data).collections, group.hparams, given)
    for name, (spec, values) in knobs.items():
        dtype = np.dtype(spec.dtype)
        for value, index in zip(values, group.index, strict=True):
            if not holds_exactly(dtype, value):
                raise ValueError(
                    f"init_group: cell {index} sets {name} ({dtype.name}) to {value}, which "
                    f"it cannot hold; give it {what_holds(dtype)}"
                )


@functools.cache
def _traced_knobs(
    model: Any, input_shape: tuple[int, ...]
) -> tuple[Mapping[str, Knob], tuple[str, ...]]:
    """The knobs ``model`` (a `ModelConfig`) declares on inputs of ``input_shape``, by path
    (`phosjax.core.knobs`, traced abstractly; read-only: cached), and the paths of those a
    lifted transform dropped (`_trace_init`)."""
    x = jnp.zeros((1, *input_shape), jnp.float32)
    declared, _, dropped = _trace_init(model.build(), x, train=False)
    return types.MappingProxyType(declared), dropped


def _check_knob_ranges(group: Group, data: Any) -> None:
    """Raises unless the cells' knob selectors (one group: the same for every cell) each
    match knobs of the model, no two the same knob (`phosjax.core.set_knobs` refuses
    that too), and each cell sets them to values in the ranges they declare
    (`phosjax.core.Range`): traced in init and the train step, a value out reads NaN."""
    if not group.hparams.knobs:
        return
    declared, dropped = _traced_knobs(group.model, tuple(data.input_shape))
    name = getattr(group.model, "name", group.model)
    where = f"init_group: cell {group.index[0]} (HParams knobs"

    def paths(selector: str) -> list[str]:
        try:
            return select(tuple(declared), selector, what="knob", dropped=dropped)
        except SelectorError as error:
            raise SelectorError(f"{where} {selector!r}) of model {name!r}: {error}") from None

    try:  # as the first cell gives them, which a message names in that order
        chosen = selector_per_path(dict(group.cells[0].hparams.knobs), paths, what="knob")
    except ValueError as error:
        raise ValueError(f"{where} of model {name!r}): {error}") from None
    for cell, index in zip(group.cells, group.index, strict=True):
        values = dict(cell.hparams.knobs)
        for path, selector in chosen.items():
            try:
                check_as_held(declared[path], values[selector])
            except ValueError as error:
                raise ValueError(
                    f"init_group: cell {index} (HParams knobs {selector!r}): {error}"
                ) from None


INIT_DATA_FIELDS = ("name", "input_shape", "num_classes")
"""What `init_group` reads of a data set; `run_group` reads its splits too."""


def check_arguments(where: str, group: Any, data: Any, fields: tuple[str, ...]) -> None:
    """Raises a TypeError naming ``where`` unless ``group`` is a `Group` and ``data`` has
    ``fields`` (as a `phosjax.data.ArrayDataset` does).

    Examples:
      >>> check_arguments("init_group", [], None, INIT_DATA_FIELDS)
      Traceback (most recent call last):
      TypeError: init_group: group must be one Group, got a list; plan_groups returns a ...
    """
    if not isinstance(group, Group):
        hint = "; plan_groups returns a list of groups: e.g. [group] = plan_groups(cells)"
        raise TypeError(
            f"{where}: group must be one Group, got a {type(group).__name__}"
            + (hint if isinstance(group, list | tuple) else "")
        )
    example = f"e.g. phosjax.data.load({group.dataset!r})"
    check_data_set(f"{where}: data must be the group's data set", data, fields, example)


def check_data_set(where: str, data: Any, fields: tuple[str, ...], example: str) -> None:
    """Raises a TypeError, ``where`` followed by ``a phosjax.data.ArrayDataset
    (example)``, the type given and the ``fields`` it lacks, unless ``data`` has them all.

    Examples:
      >>> check_data_set("f: data must be a data set", {}, ("name",), "e.g. load('toy')")
      Traceback (most recent call last):
      TypeError: f: data must be a data set, a phosjax.data.ArrayDataset (e.g. load('toy')),
      got a dict, which has no name
    """
    missing = [field for field in fields if not hasattr(data, field)]
    if missing:
        raise TypeError(
            f"{where}, a phosjax.data.ArrayDataset ({example}), got {a_type(data)}, which has "
            f"no {', '.join(missing)}"
        )


def init_group(group: Group, data: Any) -> GroupState:
    """Initializes every cell of ``group``: params from its seed, knobs and hparams set.

    Cell ``i`` draws its params from the first of ``jax.random.split(jax.random.key(seed),
    3)`` (then its batches from the second, dropout from the third), exactly as it would
    alone. Compiled once per group signature and input shape (on CPU at -O1, as the
    program runs once: `phosjax._compile.jit_run_once`).

    Args:
      group: from `plan_groups`.
      data: the group's data set (an `phosjax.data.ArrayDataset`; only its ``name``,
        ``input_shape`` and ``num_classes`` are used here).

    Returns:
      The state at step 0, on the default device.

    Raises:
      SelectorError: a cell's knob selector matches no knob of the model (names the
        cell, the selector, the model and the nearest knobs).
      ValueError: a knob of an integer or bool dtype is set to a value it cannot hold
        exactly (names the knob and the cell) or one out of the range its knob declares
        (names the knob, the value, the range and the cell), two knob selectors match
        one knob (names both and the knob), the model's config has
        another ``input_shape`` than ``data``, or the model does not return
        ``data.num_classes`` logits per example, one row per example.
      TypeError: ``group`` is no `Group` or ``data`` no data set; the model's ``build``
        returns no Flax module, or one that takes no ``train`` argument.

    Examples:
      >>> from phosjax.data import random_dataset
      >>> from phosjax.models import ModelConfig
      >>> from phosjax.train import Cell, HParams, plan_groups
      >>> data = random_dataset("toy", (8,), 3)
      >>> model = ModelConfig("mlp", 3, (8,), width=8)
      >>> hp = HParams(batch_size=16, steps=10)
      >>> [group] = plan_groups([Cell(model, "toy", hp, seed=0), Cell(model, "toy", hp, seed=1)])
      >>> state = init_group(group, data)
      >>> state.step.tolist(), state.diverged_at.tolist()
      ([0, 0], [-1, -1])
      >>> state.params["head"]["kernel"].shape  # (cells, features, classes)
      (2, 8, 3)
    """
    check_arguments("init_group", group, data, INIT_DATA_FIELDS)
    _check_classes(group, data)
    _check_knob_ranges(group, data)  # first: it names a selector that matches no knob
    _check_whole_knob_values(group, data)
    keys = _root_keys(group)
    traced = isinstance(keys, jax.core.Tracer)  # e.g. under jax.eval_shape: nothing compiles
    program = (_init_fn if traced else _cheap_init_fn)(
        group.program_signature, tuple(data.input_shape), trace_config()[0]
    )
    return program(keys, _init_values(group))


def _leaves(tree: Any) -> dict[str, Any]:
    return {jax.tree_util.keystr(path): leaf for path, leaf in jax.tree.leaves_with_path(tree)}


def _same_spec(leaf: Any, spec: Any) -> bool:
    return np.shape(leaf) == spec.shape and np.dtype(leaf.dtype) == spec.dtype


_OPTIMIZER_SHAPE = "another optimizer family, gradient clipping or learning-rate schedule"
"""What gives an optimizer state another tree (`HParams`' optimizer, grad_clip, lr_schedule
and warmup_steps)."""


def _layout_difference(state: Any, like: Any) -> str | None:
    """How ``state``'s paths, leaf shapes or dtypes differ from ``like``'s (a `GroupState`'s
    or its ``settings``'; None: not)."""
    tree: Any = jax.tree.structure(state)  # Any: jaxlib's PyTreeDef has no stubs
    same_tree = tree == jax.tree.structure(like)
    if same_tree and all(map(_same_spec, jax.tree.leaves(state), jax.tree.leaves(like))):
        return None  # the usual case, found without naming every path
    got, want = _leaves(state), _leaves(like)
    missing, extra = [p for p in want if p not in got], [p for p in got if p not in want]
    if missing or extra:
        sides = [(" lacks ", missing), (" has extra ", extra)]
        text = "the state" + "; it".join(verb + listing(paths, 3) for verb, paths in sides if paths)
        if all(path.startswith(".opt_state") for path in missing + extra):
            return f"its optimizer state was made for {_OPTIMIZER_SHAPE}: {text}"
        return text
    if not same_tree:
        return "its tree structure differs (the same paths, other node types)"
    for path, spec in want.items():
        leaf = got[path]
        if not _same_spec(leaf, spec):
            return (
                f"{path} is {np.dtype(leaf.dtype).name}{list(np.shape(leaf))} in the state, "
                f"{spec.dtype.name}{list(spec.shape)} for this group"
            )
    return None


def _knob_values(collections: Any, hp: Any, values: Any) -> dict[str, tuple[Any, Any]]:
    """``{knob path: (its value in collections, what the knob selectors set)}``."""
    flat = flatten(collections.get(KNOBS, {}))
    out = {}
    for j, (selector, _) in enumerate(hp.knobs):  # no two match one knob (init_group)
        for path in select(flat, selector, what="knob"):
            out[f"knob {path!r}"] = flat[path], values[:, j]
    return out


def _value_difference(state: GroupState, group: Group) -> str | None:
    """The first per-cell hyperparameter ``state`` holds with another value than ``group``."""
    values = group.values()
    stored = {**state.opt_state.hyperparams, **state.hparams}
    pairs = {name: (stored[name], want) for name, want in values.items() if name != "knob_value"}
    if "knob_value" in values:
        pairs |= _knob_values(state.collections, group.hparams, values["knob_value"])
    for name, (got, want) in jax.device_get(pairs).items():
        got = np.reshape(got, (len(group), -1))
        want = np.broadcast_to(np.reshape(want, (len(group), -1)).astype(got.dtype), got.shape)
        same = (got == want) | ((got != got) & (want != want))  # equal, or both NaN
        for i in np.flatnonzero(~same.all(1)):
            one = got.shape[1] == 1  # a scalar per cell: shown without brackets
            return (
                f"{name} of cell {group.index[i]} is {got[i, 0] if one else got[i]!s} in the "
                f"state but {want[i, 0] if one else want[i]!s} in the group"
            )
    return None


@functools.partial(jax.jit, static_argnames="impl")
def _data_keys(root_keys: jax.Array, impl: str) -> jax.Array:
    """The data keys `init_group` derives from each cell's root key of the PRNG
    implementation ``impl`` (static: see `_init_fn`)."""
    split = per_cell(lambda key: jax.random.split(jax.random.wrap_key_data(key, impl=impl), 3)[1])
    return jax.random.key_data(split(root_keys))


_SEED_DATA_KEYS: collections.OrderedDict[tuple[Any, ...], np.ndarray] = collections.OrderedDict()
"""`_data_keys` of the cells' seeds, by seeds and `trace_config`, the last
`INIT_PROGRAMS_KEPT` used: `check_state` runs in every `run_group` call, and deriving the
keys again (`jax.random.key` under `jax.vmap`, run op by op) took about three quarters of
its time (cProfile of one-step calls on a 2-core CPU; about half of the whole call)."""


def _seed_data_keys(group: Group) -> np.ndarray:
    """The data keys `init_group` gives ``group``'s cells, one row per cell."""
    key = (tuple(cell.seed for cell in group.cells), trace_config())

    def make() -> np.ndarray:
        return np.asarray(_data_keys(_root_keys(group), trace_config()[0]))

    return kept(_SEED_DATA_KEYS, key, make, INIT_PROGRAMS_KEPT)


KEY_SETTINGS = ("jax_default_prng_impl", "jax_threefry_partitionable", "jax_enable_x64")
"""The JAX settings that change the keys a seed makes: the PRNG implementation all of them,
the threefry setting those `jax.random.split` derives, x64 those of a seed outside
``[0, 2**32)``."""


@functools.cache
def _key_data_shape(impl: str) -> tuple[int, ...]:
    """The shape of a key's data under the PRNG implementation ``impl``."""
    return jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0, impl=impl))).shape


def _key_settings(data_key: np.ndarray, seed: int) -> dict[str, Any] | None:
    """The values of `KEY_SETTINGS` other than this session's under which ``seed`` makes
    the data key ``data_key`` (`init_group`'s): another threefry or x64 setting or both, or
    another PRNG implementation whose keys have its shape; None if under none."""
    now = {name: jax.config.values[name] for name in KEY_SETTINGS}
    impl_now, threefry_now, x64_now = now.values()
    threefry: dict[str, Any] = {KEY_SETTINGS[1]: not threefry_now}
    x64: dict[str, Any] = {KEY_SETTINGS[2]: not x64_now}
    shaped: list[dict[str, Any]] = [
        {KEY_SETTINGS[0]: impl}
        for impl in PRNG_IMPLS
        if impl != impl_now and _key_data_shape(impl) == data_key.shape
    ]
    for settings in (threefry, x64, threefry | x64, *shaped):
        if np.array_equal(_data_key_under(seed, now | settings), data_key):
            return settings
    return None


def _data_key_under(seed: int, settings: dict[str, Any]) -> np.ndarray:
    """The data key `init_group` gives ``seed`` under ``settings``, values of all the
    `KEY_SETTINGS` in their order."""
    impl, partitionable, enable_x64 = settings.values()
    with jax.threefry_partitionable(partitionable), jax.enable_x64(enable_x64):
        made = jax.random.key_data(jax.random.split(jax.random.key(seed, impl=impl), 3)[1])
    return np.asarray(made)


def _low_bits_twin(data_key: np.ndarray, seed: int) -> int | None:
    """The seed of ``seed``'s low 32 bits (all JAX keeps of it without ``jax_enable_x64``)
    where it is another seed that makes ``data_key`` under this session's settings, with
    x64 (without it, a seed beyond 32 bits makes none); None otherwise."""
    low = seed % 2**32
    now = {name: jax.config.values[name] for name in KEY_SETTINGS}
    if low == seed or not now["jax_enable_x64"]:
        return None
    return low if np.array_equal(_data_key_under(low, now), data_key) else None


def _seed_difference(state: GroupState, group: Group) -> str | None:
    """The first cell whose keys ``state`` drew from another seed than ``group``'s.

    Raises:
      ValueError: the keys are its seed's under other `KEY_SETTINGS` (a state saved under
        another setting, or another JAX version's default), naming them and how to resume.
    """
    keys = np.asarray(state.data_key)
    same = np.all(keys == _seed_data_keys(group), 1)
    for i in np.flatnonzero(~same):
        seed = group.cells[i].seed
        settings = _key_settings(keys[i], seed)
        if settings:
            made = ", ".join(f"{name}={value!r}" for name, value in settings.items())
            now = ", ".join(f"{name}={jax.config.values[name]!r}" for name in settings)
            update = "; ".join(f"jax.config.update({n!r}, {v!r})" for n, v in settings.items())
            setting = "setting" if len(settings) == 1 else "settings"
            resume = f"resume it under the {setting} it was made with ({update})"
            low = _low_bits_twin(keys[i], seed)
            what = (
                f"; they are also the keys seed {low} (its low 32 bits) makes under this "
                f"session's: if the state was made from seed {low}, the seeds differ: train "
                f"the group from init_group as a new run; else {resume}"
                if low is not None
                else f": {resume}, or train the group from init_group as a new run"
            )
            raise ValueError(
                f"run_group: cell {group.index[i]} of the state holds the keys its seed {seed} "
                f"makes under {made}, not under this session's {now}{what}"
            )
        return f"cell {group.index[i]} holds the keys of another seed than its {seed}"
    return None


_LAYOUTS: collections.OrderedDict[tuple[Any, ...], GroupState] = collections.OrderedDict()
"""`_layout`'s, the last `INIT_PROGRAMS_KEPT` used: a session sweeping many models does
not keep a tree of shapes for each."""


def _layout(group: Group, data: Any) -> GroupState:
    """``jax.eval_shape`` of `init_group`, kept per signature, cell count, input shape and
    `trace_config` (the shapes do not depend on the per-cell values)."""
    key = (group.program_signature, len(group), tuple(data.input_shape), trace_config())

    def make() -> GroupState:
        init = _init_fn(group.program_signature, tuple(data.input_shape), trace_config()[0])
        return jax.eval_shape(init, _root_keys(group), _init_values(group))

    return kept(_LAYOUTS, key, make, INIT_PROGRAMS_KEPT)


def check_state(state: Any, group: Group, data: Any) -> None:
    """Raises unless ``state`` is one `init_group` (or `run_group`) made for ``group`` and
    ``data``: the same paths, leaf shapes and dtypes (host numpy is fine), the group's
    `RECORDED_SETTINGS` (`check_settings`), per-cell hyperparameters (learning rate, ..., knob
    values) and its cells' seeds."""
    _check_classes(group, data)

    def refuse(difference: str | None) -> None:
        if difference:
            raise ValueError(
                f"run_group: the state was made for another group (or data set): "
                f"{difference}; pass the state init_group (or run_group) made for this group "
                f"and data set {data.name!r}."
            )

    like = _layout_of(state, group, data)
    if _layout_difference(state.settings, like.settings) is None:  # else refused just below
        check_settings(state, group)  # first: it names a setting the tree shows too (optimizer)
    refuse(_layout_difference(state, like))
    refuse(_value_difference(state, group) or _seed_difference(state, group))


def with_settings(state: GroupState, group: Group) -> GroupState:
    """``state`` recording ``group``'s `RECORDED_SETTINGS`, those it trains under next (a
    state `check_settings` passed: its own, ``steps`` extended, or none recorded); itself
    where it records them already (placed, it is not placed again)."""
    want = recorded_settings(group.hparams)
    got = jax.device_get(state.settings)
    if got.keys() == want.keys() and all(np.all(_same(got[n], want[n])) for n in want):
        return state
    return state.replace(settings=stacked_settings(group))  # type: ignore[attr-defined]


def _layout_of(state: Any, group: Group, data: Any) -> GroupState:
    """`_layout`, less the ``settings`` where ``state`` records none (one written before
    states recorded them)."""
    like = _layout(group, data)
    recorded = getattr(state, "settings", True)
    return like if recorded else like.replace(settings={})  # type: ignore[attr-defined]


def with_stored_dtypes(state: Any, group: Group, data: Any) -> Any:
    """``state`` with each leaf numpy holds as raw bytes (a void dtype of the same size)
    read back as the dtype `init_group` gives it.

    ``np.save`` and ``np.savez`` write a bfloat16 array (a model storing its params in
    bfloat16) as ``|V2``, and ``np.load`` reads it back so: without this, a checkpoint
    saved as the engine's docs suggest was refused as "void16" params.

    Examples:
      >>> import io
      >>> from phosjax.models import ModelConfig
      >>> from phosjax.train import Cell, HParams, init_group, plan_groups
      >>> from phosjax.data import random_dataset
      >>> data = random_dataset("toy", (8,), 3)
      >>> model = ModelConfig("mlp", 3, (8,), width=8, options={"param_dtype": "bfloat16"})
      >>> [group] = plan_groups([Cell(model, "toy", HParams(batch_size=4), seed=0)])
      >>> leaves, tree = jax.tree.flatten(jax.device_get(init_group(group, data)))
      >>> saved = io.BytesIO(); np.savez(saved, *leaves); _ = saved.seek(0)
      >>> loaded = jax.tree.unflatten(tree, np.load(saved).values())
      >>> kernel = lambda state: state.params["head"]["kernel"]
      >>> kernel(loaded).dtype, kernel(with_stored_dtypes(loaded, group, data)).dtype
      (dtype('V2'), dtype(bfloat16))
    """
    raw = (isinstance(a, np.ndarray) and a.dtype.type is np.void for a in jax.tree.leaves(state))
    if not any(raw):  # the usual case, found without the group's layout (run_group's cost)
        return state
    like = _layout_of(state, group, data)
    tree: Any = jax.tree.structure(state)  # Any: jaxlib's PyTreeDef has no stubs
    if tree != jax.tree.structure(like):
        return state  # `check_state` names the difference
    return jax.tree.map(stored_as, state, like)


def _raw_bytes(leaf: Any, like: Any) -> bool:
    """Whether numpy holds ``leaf`` as raw bytes of ``like``'s dtype's size (a void)."""
    wanted = np.dtype(like.dtype)
    stored = np.dtype(getattr(leaf, "dtype", wanted))
    return stored == np.dtype((np.void, wanted.itemsize)) != wanted


def stored_as(leaf: Any, like: Any) -> Any:
    """``leaf`` read as ``like``'s dtype where numpy kept only its bytes (``np.save`` of a
    bfloat16 array); else ``leaf`` itself.

    Examples:
      >>> raw = np.zeros(2, "V2")
      >>> stored_as(raw, jax.ShapeDtypeStruct((2,), jnp.bfloat16)).dtype
      dtype(bfloat16)
    """
    return np.asarray(leaf).view(like.dtype) if _raw_bytes(leaf, like) else leaf


def with_weak_types(state: Any, group: Group, data: Any) -> Any:
    """``state`` with the leaves that `init_group` makes weakly typed weakly typed again.

    A knob declared with a Python number is weakly typed, so it scales a bfloat16
    activation without promoting it to float32. ``jax.device_get`` (a checkpoint) keeps
    its dtype but not its weak type: resumed from it, a bfloat16 model would compute in
    float32 there, and compile another program.

    Examples:
      >>> import numpy as np
      >>> from phosjax.models import ModelConfig
      >>> from phosjax.train import Cell, HParams, init_group, plan_groups
      >>> from phosjax.data import ArrayDataset
      >>> x, y = np.zeros((8, 4), np.float32), np.zeros(8, np.int32)
      >>> data = ArrayDataset("toy", x, y, x, y, 2, (4,))
      >>> model = ModelConfig("choicenet", 2, (4,), width=4, depth=1)
      >>> [group] = plan_groups([Cell(model, "toy", HParams(batch_size=4), seed=0)])
      >>> host = jax.device_get(init_group(group, data))
      >>> T = lambda s: s.collections["knobs"]["blocks_0"]["T"]
      >>> type(T(host)).__name__, T(with_weak_types(host, group, data)).weak_type
      ('ndarray', True)
    """

    def restore(leaf: Any, spec: Any) -> Any:
        weak = spec.weak_type and not getattr(leaf, "weak_type", False)
        return in_type_of(leaf, spec) if weak else leaf  # of its dtype already: check_state

    return jax.tree.map(restore, state, _layout(group, data))
