"""`run_group`: train a group in chunks of steps, evaluate on schedule, report per chunk."""

import collections
import dataclasses
import functools
import inspect
import math
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from phosjax._hosts import local_devices
from phosjax._listing import counted
from phosjax._nearest import did_you_mean
from phosjax.data import check_batch_size
from phosjax.data._dataset import unchangeable
from phosjax.train._auto import choose_strategy, split_shapes
from phosjax.train._config import int_at_least
from phosjax.train._group import Group
from phosjax.train._reduce import all_finite
from phosjax.train._state import (
    INIT_DATA_FIELDS,
    GroupState,
    check_arguments,
    check_state,
    diverged_text,
    with_settings,
    with_stored_dtypes,
    with_weak_types,
)
from phosjax.train._step import (
    check_inputs_fit,
    device_arrays,
    make_evaluate,
    make_train_step,
)
from phosjax.train._strategy import (
    BATCH_DRAWN_PRNG_IMPLS,
    COPY,
    STRATEGIES,
    VMAPPED_STRATEGIES,
    CompiledProgram,
    Executor,
    compile_totals,
    program_memory,
    trace_config,
    vmap_draws_as_alone,
)


@dataclasses.dataclass(frozen=True)
class Chunk:
    """What one dispatch of ``len(steps)`` steps reported, as numpy.

    Attributes:
      steps: ``(n,)`` the step count after each update (1-based).
      train: per-step train metrics by name, each ``(cells, n)``.
      eval: test-split ``loss`` and ``accuracy`` after ``steps[-1]``, each ``(cells,)``;
        empty when this chunk did not end on an evaluation.
      diverged_at: ``(cells,)`` the step each cell diverged at (-1: not diverged).
      compile_s: seconds spent compiling programs ahead of time (``lower().compile()``)
        since the previous chunk; the first chunk's include ``strategy="auto"``'s.
      compiles: how many programs those seconds compiled.
      train_s: seconds running the chunk's steps (and fetching their metrics), compile
        excluded.
      eval_s: seconds evaluating the test split, compile excluded (0 without ``eval``).
      program_bytes: the memory one device needs for the largest program the chunk ran
        (`program_bytes`: XLA's memory analysis; NaN where the backend gives none).

    Examples:
      `run_group` hands each chunk to ``on_chunk`` as soon as it is on the host:

      >>> from phosjax.data import random_dataset
      >>> from phosjax.models import ModelConfig
      >>> from phosjax.train import Cell, HParams, init_group, plan_groups
      >>> data = random_dataset("toy", (8,), 3)
      >>> model = ModelConfig("mlp", 3, (8,), width=8)
      >>> hp = HParams(batch_size=16, steps=10)
      >>> [group] = plan_groups([Cell(model, "toy", hp, seed=0), Cell(model, "toy", hp, seed=1)])
      >>> chunks = []
      >>> state = init_group(group, data)
      >>> _ = run_group(group, state, data, strategy="vmap", chunk_steps=5, on_chunk=chunks.append)
      >>> first, last = chunks
      >>> first.steps.tolist(), sorted(first.train), first.train["loss"].shape  # (cells, n)
      ([1, 2, 3, 4, 5], ['accuracy', 'grad_norm', 'loss', 'task_loss'], (2, 5))
      >>> first.eval, sorted(last.eval), last.eval["accuracy"].shape  # evaluated at step 10
      ({}, ['accuracy', 'loss'], (2,))
      >>> last.diverged_at.tolist(), bool(last.diverged().any()), last.train_s > 0
      ([-1, -1], False, True)
      >>> last  # a summary: the metrics are its attributes
      Chunk(steps 6 to 10, of 2 cells: train ['accuracy', 'grad_norm', 'loss', 'task_loss'],
            eval ['accuracy', 'loss'], none diverged; compile_s ..., train_s ..., eval_s ...)
    """

    steps: np.ndarray
    train: dict[str, np.ndarray]
    eval: dict[str, np.ndarray]
    diverged_at: np.ndarray
    compile_s: float = 0.0
    compiles: int = 0
    train_s: float = math.nan
    eval_s: float = 0.0
    program_bytes: float = math.nan

    def __repr__(self) -> str:  # the dataclass's printed every metric of every cell and step
        span = f"steps {self.steps[0]} to {self.steps[-1]}" if len(self.steps) else "no steps"
        return (
            f"Chunk({span}, of {counted(len(self.diverged_at), 'cell')}: train "
            f"{sorted(self.train)}, eval {sorted(self.eval)}, {diverged_text(self.diverged_at)}; "
            f"compile_s {self.compile_s:.3g} "
            f"({counted(self.compiles, 'program')}), train_s {self.train_s:.3g}, "
            f"eval_s {self.eval_s:.3g})"
        )

    def diverged(self) -> np.ndarray:
        """``(cells, n)``: whether each cell had diverged by each of ``steps`` (its
        ``diverged_at`` is that step or an earlier one): its metrics there are those of
        its state frozen as it was before ``diverged_at``.

        Examples:
          >>> Chunk(np.array([3, 4]), {}, {}, np.array([-1, 4])).diverged().tolist()
          [[False, False], [False, True]]
        """
        at = np.asarray(self.diverged_at)[:, None]
        return (at >= 0) & (at <= self.steps)


@dataclasses.dataclass(frozen=True)
class GroupRun:
    """How a group was run and what it reported.

    Attributes:
      strategy: the strategy used.
      timings: seconds per step of each strategy ``"auto"`` measured (empty otherwise).
      chunks: one `Chunk` per dispatch.

    Examples:
      >>> from phosjax.data import random_dataset
      >>> from phosjax.models import ModelConfig
      >>> from phosjax.train import Cell, HParams, init_group, plan_groups
      >>> data = random_dataset("toy", (8,), 3)
      >>> model = ModelConfig("mlp", 3, (8,), width=8)
      >>> hp = HParams(batch_size=16, steps=10)
      >>> [group] = plan_groups([Cell(model, "toy", hp, seed=0), Cell(model, "toy", hp, seed=1)])
      >>> from phosjax.train import run_group
      >>> state, run = run_group(group, init_group(group, data), data, 5, strategy="vmap")
      >>> run.strategy, run.timings, [chunk.steps.tolist() for chunk in run.chunks]
      ('vmap', {}, [[1, 2, 3, 4, 5]])
      >>> run.chunks[0].train["loss"].shape, state.step.tolist()  # a Chunk; the GroupState
      ((2, 5), [5, 5])
      >>> run  # a summary: the chunks are its attribute
      GroupRun(strategy 'vmap': 1 chunk, steps 1 to 5, of 2 cells)
    """

    strategy: str
    timings: dict[str, float]
    chunks: list[Chunk]

    def __repr__(self) -> str:  # the dataclass's printed every metric of every chunk
        steps = [chunk.steps for chunk in self.chunks if len(chunk.steps)]
        span = f", steps {steps[0][0]} to {steps[-1][-1]}" if steps else ""
        cells = f", of {counted(len(self.chunks[0].diverged_at), 'cell')}" if self.chunks else ""
        timed = {name: float(f"{seconds:.3g}") for name, seconds in self.timings.items()}
        return (
            f"GroupRun(strategy {self.strategy!r}: {counted(len(self.chunks), 'chunk')}{span}"
            f"{cells}{f'; seconds per step {timed}' if timed else ''})"
        )


_PLACED: collections.OrderedDict[tuple[Any, ...], tuple[Any, Any]] = collections.OrderedDict()
"""The data arrays `run_group` placed last, by (data set object, devices): see `_keep_data`."""

SPLITS = ("x_train", "y_train", "x_test", "y_test")
"""The arrays of a data set `run_group` reads."""

PLACED_DATA_SETS = 4
"""How many data sets stay placed on the devices between `run_group` calls."""


def _kept_data(data: Any, executor: Executor) -> Any:
    """The arrays `_keep_data` kept of ``data`` placed for ``executor``, else None."""
    key = (id(data), tuple(executor.mesh.devices.flat))
    ref, arrays = _PLACED.get(key, (None, None))
    if ref is None or ref() is not data:
        return None
    _PLACED.move_to_end(key)
    return arrays


def _keep_data(data: Any, executor: Executor, arrays: Any) -> Any:
    """Keeps ``arrays``, ``data`` placed for ``executor``, among the last
    `PLACED_DATA_SETS` data set objects placed (`_kept_data`), so that calling `run_group`
    again on one converts and transfers nothing, while it lives: a data set let go is let
    go on the devices too; one whose arrays could be written in place is not kept (an
    `ArrayDataset`'s cannot: `unchangeable`). Returns ``arrays``."""
    if not all(unchangeable(getattr(data, split)) for split in SPLITS):
        return arrays  # an edit would leave the kept copy stale: placed again next time
    key = (id(data), tuple(executor.mesh.devices.flat))

    def forget(gone: weakref.ref[Any]) -> None:
        # The GC may call it in another thread, between that one's look-up of the entry
        # and its `popitem` of it: the entry may be gone by the time it is dropped here.
        if _PLACED.get(key, (None, None))[0] is gone:
            _PLACED.pop(key, None)

    try:
        _PLACED[key] = (weakref.ref(data, forget), arrays)
    except TypeError:  # not weak-referenceable: placed again next time
        return arrays
    _PLACED.move_to_end(key)
    while len(_PLACED) > PLACED_DATA_SETS:
        _PLACED.popitem(last=False)
    return arrays


def _clock() -> tuple[float, float, int]:
    """``(wall seconds, seconds compiled, programs compiled)`` so far."""
    return (time.perf_counter(), *compile_totals())


def _net(start: tuple[float, float, int], end: tuple[float, float, int]) -> float:
    """Wall seconds from ``start`` to ``end`` less the seconds compiled in between."""
    return (end[0] - start[0]) - (end[1] - start[1])


def _stops(start: int, until: int, chunk_steps: int, eval_every: int) -> list[int]:
    stops, step = [], start
    while step < until:
        stop = min(until, step + chunk_steps)
        if eval_every:
            stop = min(stop, (step // eval_every + 1) * eval_every)
        stops.append(stop)
        step = stop
    return stops


def _optimizer_state_finite(state: GroupState) -> jax.Array:
    """``(cells,)`` whether each cell's optimizer state is finite. The unguarded step
    leaves it unchecked (an ``isfinite`` over Adam's two moments in every step cost a
    one-cell MLP step 7-12%): in the engine's optimizers an inf or NaN in a moment stays
    there, so a check at a chunk's end finds every cell whose state overflowed in it."""
    return jax.vmap(all_finite)(state.opt_state)


OPTIMIZER_STATE_FINITE = CompiledProgram(jax.jit(_optimizer_state_finite))
"""`_optimizer_state_finite`, compiled ahead of time: its compile counts in a chunk's
``compile_s``, not its ``train_s``."""


def _train_chunk(
    executor: Executor,
    signature: Any,
    make_step: Callable[[bool], Any],
    state: Any,
    arrays: Any,
    num_steps: int,
    guarded: bool,
    owned: bool,
) -> tuple[Any, tuple[Any, np.ndarray], bool]:
    """``(state, (metrics, diverged_at), guarded)`` after ``num_steps`` steps of
    ``make_step(guard)``, the metrics and ``diverged_at`` fetched in one transfer.

    Unguarded while no cell has diverged, keeping ``state``: a chunk in which one
    diverges (or whose optimizer state ends non-finite, which the unguarded step does not
    check: `_optimizer_state_finite`) runs again, guarded, from ``state``, and so does
    every later chunk. A guarded chunk donates its start state: ``state`` when it is
    ``owned``, else (the caller's arrays) a copy, so that one compiled program serves both.
    """

    def run(guard: bool) -> tuple[Any, tuple[Any, np.ndarray], np.ndarray]:
        key = ("train-guarded" if guard else "train", signature)
        step = functools.partial(make_step, guard)
        start = state if owned or not guard else COPY(state)
        ended, metrics = executor.run_steps(key, step, start, arrays, num_steps, donate=guard)
        fetched = (metrics, ended.diverged_at, OPTIMIZER_STATE_FINITE(ended))
        metrics, diverged_at, finite = executor.take(jax.device_get(fetched))
        return ended, (metrics, diverged_at), finite

    if not guarded:
        ended, host, finite = run(guard=False)
        if np.all(host[1] < 0) and np.all(finite):
            return ended, host, False
    ended, host, _ = run(guard=True)
    return ended, host, True


def check_strategy(strategy: str, where: str) -> None:
    """Raises unless ``strategy`` is ``"auto"`` or one of `STRATEGIES` (``where`` named;
    a misspelt one, the nearest).

    Examples:
      >>> check_strategy("fast", "train_grid")
      Traceback (most recent call last):
      ValueError: train_grid: unknown strategy 'fast'; expected 'auto' or ('vmap', ...)
      >>> check_strategy("vmpa", "train_grid")
      Traceback (most recent call last):
      ValueError: train_grid: unknown strategy 'vmpa'; ... Did you mean 'vmap'?
    """
    if strategy != "auto" and strategy not in STRATEGIES:
        hint = did_you_mean([strategy], ("auto", *STRATEGIES)) if isinstance(strategy, str) else ""
        raise ValueError(
            f"{where}: unknown strategy {strategy!r}; expected 'auto' or {STRATEGIES}{hint}"
        )
    if strategy in VMAPPED_STRATEGIES and not vmap_draws_as_alone():
        impl = trace_config()[0]
        why = (
            "draws a cell's random numbers (its dropout) from the other cells' keys too"
            if impl in BATCH_DRAWN_PRNG_IMPLS
            else "XLA fails to compile a cell's random draws (its dropout) batched"
        )
        raise ValueError(
            f"{where}: strategy {strategy!r} batches the cells with jax.vmap, under which "
            f"jax_default_prng_impl={impl!r} {why}; use 'map', 'sequential' or 'stepwise' "
            "('auto' leaves the vmapped ones out), or the threefry2x32 implementation"
        )


def check_callback(where: str, name: str, function: Any, *args: str) -> None:
    """Raises a TypeError naming ``where`` and ``name`` (``on_chunk``, ``should_stop``)
    unless ``function`` is None or a callable that takes ``args`` (their names, shown in
    the message) positionally: else it would fail only once the first chunk had trained.

    Examples:
      >>> check_callback("train_grid", "on_chunk", lambda chunk: None, "group", "chunk")
      Traceback (most recent call last):
      TypeError: train_grid: on_chunk is called as on_chunk(group, chunk), but <lambda>(chunk) ...
    """
    if function is None:
        return
    call = f"{name}({', '.join(args)})"
    if not callable(function):
        raise TypeError(f"{where}: {name} must be a function, called as {call}; got {function!r}")
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin without one: taken as it is
        return
    try:
        signature.bind(*args)
    except TypeError as error:
        shown = getattr(function, "__qualname__", type(function).__name__).rsplit(".", 1)[-1]
        raise TypeError(
            f"{where}: {name} is called as {call}, but {shown}{signature} cannot take that "
            f"({error})"
        ) from None


def run_group(
    group: Group,
    state: GroupState,
    data: Any,
    until_step: int | None = None,
    *,
    strategy: str = "auto",
    chunk_steps: int = 100,
    on_chunk: Callable[[Chunk], None] | None = None,
    devices: Sequence[jax.Device] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[GroupState, GroupRun]:
    """Trains ``group`` from ``state`` up to ``until_step``, ``chunk_steps`` per dispatch.

    Each chunk runs its steps on device (one `jax.lax.scan` per dispatch; ``"stepwise"``:
    one dispatch per `STEPWISE_UNROLL` steps, unrolled) and returns its per-step metrics
    in one transfer. Chunks also end at every evaluation step (each ``eval_every`` steps
    and at ``hparams.steps``), where the test split is evaluated. A cell whose loss or
    gradient norm turns non-finite, or whose update would make a param non-finite, is
    frozen from that step on, keeping the state from before it: chunks run without the
    per-step freezing selects until a cell diverges in one, which is then run again, with
    them, from its start state (`make_train_step`'s ``guard``).
    The state may come from an earlier call, or from ``jax.device_get`` of one (e.g. a
    checkpoint): resuming gives the same numbers as an uninterrupted run, bit for bit
    while no cell of the group diverges and the resumed run's chunks end where the
    uninterrupted run's do (it resumes at a chunk's end). Resumed mid-chunk, it runs
    chunks of other lengths, which XLA compiles into other fused code (a one-step
    chunk loses its loop): they agree within rounding (in our runs within one float32
    ulp of each leaf's largest value, e.g. 1.5e-8 on a kernel of at most 0.9). Once a
    cell diverges, the guarded program rounds the healthy cells' numbers differently
    from the unguarded one, and a resumed run guards other chunks than an
    uninterrupted one: they agree within rounding (in our runs within one float32 ulp
    of each leaf's largest value, e.g. 5.8e-11 on a param of 5.5e-4). The state passed
    in stays usable: only buffers this call placed or produced are donated. A state
    made for another group (other cells, hyperparameters or seeds) or data set (other
    shapes or classes) is refused.

    Args:
      group: from `plan_groups`.
      state: from `init_group` or an earlier `run_group`.
      data: the group's `phosjax.data.ArrayDataset`.
      until_step: train until this step count (default ``hparams.steps``).
      strategy: ``"vmap"``, ``"map"``, ``"sequential"``, ``"stepwise"`` (one dispatch per
        `STEPWISE_UNROLL` steps), ``"vmap_matmul"``, ``"map_matmul"`` (convolutions as
        matrix products, `convs_as_matmuls`) or ``"auto"`` (time each on this group
        after compiling, keep the fastest; cached per backend, group, data shapes, cell
        count, device count and `trace_config`: `choose_strategy`).
      chunk_steps: steps per dispatch, at most.
      on_chunk: called with each `Chunk` as soon as it is on the host.
      devices: the devices to shard the cells over (``None``: all local devices): at
        least one, each named once, each one of this process's.
      should_stop: called with no arguments after each chunk (after ``on_chunk``): once it
        returns True, training ends at that chunk's end, before ``until_step`` (the
        bench stops there on SIGTERM, to checkpoint the group: resumed from that chunk's
        end, a run gives the uninterrupted run's numbers, as above).

    Returns:
      ``(state, run)``: the state at ``until_step`` (or at the chunk's end where
      ``should_stop`` returned True) and the `GroupRun`. A state already
      at ``until_step`` comes back as given, with a run of no chunks whose strategy is
      the one asked for (``"auto"`` measures nothing then).

    Raises:
      TypeError: ``group`` is no `Group`, ``data`` no data set, ``state`` no `GroupState`,
        ``on_chunk`` no function of one argument or ``should_stop`` none of no arguments.
      ValueError: an unknown ``strategy`` (or ``vmap`` or ``vmap_matmul`` under a PRNG
        implementation other than threefry's: rbg's, philox's), ``chunk_steps`` not an
        int >= 1, ``until_step`` not an int in ``[state's step, hparams.steps]`` (or, not
        given, a state past ``hparams.steps``), ``devices`` empty, with a repeated device
        or another process's, a state whose cells are at different steps, or a state
        `init_group` did not make for this group and data (another cell count, tree, leaf
        shape or dtype, other per-cell
        hyperparameters or seeds; the message says what differs) or one trained under
        other `RECORDED_SETTINGS` (``steps`` may change under ``lr_schedule="constant"``:
        `check_settings`; the message names the setting, its saved and its new value),
        or whose keys its seeds made under another ``jax_default_prng_impl``,
        ``jax_threefry_partitionable`` or ``jax_enable_x64`` than this session's (named,
        with the value to resume under).

    Examples:
      >>> from phosjax.data import random_dataset
      >>> from phosjax.models import ModelConfig
      >>> from phosjax.train import Cell, HParams, init_group, plan_groups
      >>> data = random_dataset("toy", (8,), 3)
      >>> model = ModelConfig("mlp", 3, (8,), width=8)
      >>> hp = HParams(batch_size=16, steps=10)
      >>> [group] = plan_groups([Cell(model, "toy", hp, seed=0), Cell(model, "toy", hp, seed=1)])
      >>> state, run = run_group(group, init_group(group, data), data, 5, strategy="vmap")
      >>> state.step.tolist(), run.strategy, run.chunks[-1].eval  # no evaluation yet
      ([5, 5], 'vmap', {})
      >>> state, run = run_group(group, state, data, strategy="vmap")  # resumes to step 10
      >>> state.step.tolist(), run.chunks[-1].steps.tolist()
      ([10, 10], [6, 7, 8, 9, 10])
      >>> {name: value.shape for name, value in run.chunks[-1].eval.items()}
      {'accuracy': (2,), 'loss': (2,)}
    """
    check_strategy(strategy, "run_group")
    check_callback("run_group", "on_chunk", on_chunk, "chunk")
    check_callback("run_group", "should_stop", should_stop)
    devices = local_devices(devices, "run_group")  # even where nothing is left to run
    chunk_steps = int_at_least("run_group: chunk_steps", chunk_steps, 1)
    if until_step is not None:
        until_step = int_at_least("run_group: until_step", until_step, 0)
    if not isinstance(state, GroupState):
        raise TypeError(
            f"run_group: state must be the GroupState init_group (or run_group) made for this "
            f"group, got {type(state).__name__}; e.g. run_group(group, init_group(group, data), "
            "data)."
        )
    check_arguments("run_group", group, data, (*INIT_DATA_FIELDS, *SPLITS))
    hp = group.hparams
    until = hp.steps if until_step is None else until_step
    steps_done, diverged = jax.device_get((state.step, state.diverged))
    if np.shape(steps_done) != (len(group),):
        raise ValueError(
            f"run_group: the state has {np.size(steps_done)} cells (step shape "
            f"{np.shape(steps_done)}) but the group has {len(group)}; pass the state "
            "init_group (or run_group) made for this group."
        )
    state = with_stored_dtypes(state, group, data)  # np.load's bfloat16: raw bytes
    check_state(state, group, data)
    check_batch_size("HParams.batch_size", hp.batch_size, data)
    check_inputs_fit(data, hp.compute_dtype)
    if np.any(steps_done != steps_done[0]):
        raise ValueError(
            f"run_group: the state's cells are at different steps {steps_done.tolist()}; a "
            "group's cells train in lockstep, so pass a state whose cells all share one step "
            "(as init_group and run_group make it)."
        )
    start = int(steps_done[0])
    guarded = bool(np.any(diverged))  # a frozen cell stays frozen
    if until_step is None and start > hp.steps:  # none given: hparams.steps, behind it
        raise ValueError(
            f"run_group: the state is at step {start}, past the group's hparams.steps="
            f"{hp.steps}, the step it trains to; to train it on, resume it in a group of "
            f"steps > {start}"
        )
    if not start <= until <= hp.steps:
        raise ValueError(
            f"run_group: until_step={until} must lie between the state's step {start} and "
            f"hparams.steps={hp.steps}."
        )
    stops = _stops(start, until, chunk_steps, hp.eval_every)
    if not stops:  # already at until_step: nothing to build, choose, place or run
        return state, GroupRun(strategy, {}, [])
    state = with_settings(state, group)  # e.g. steps extended: the steps it trains to
    state = with_weak_types(state, group, data)  # e.g. a checkpoint's knobs
    signature = group.program_signature
    model = functools.cache(group.model.build)  # built only when a program is

    def make_step(guard: bool) -> Any:
        return make_train_step(model(), hp, guard=guard)

    host = functools.cache(lambda: device_arrays(data))  # once: "auto" measures on it too

    # "auto" measures on the arrays the run then trains on; those placed for devices the run
    # does not use are let go with `placed_on` (device 0 would keep a "sequential" copy
    # beside a "vmap" one)
    placed_on: dict[tuple[jax.Device, ...], Any] = {}

    def place_data(executor: Executor) -> Any:
        on = tuple(executor.mesh.devices.flat)
        if on not in placed_on:
            kept = _kept_data(data, executor)
            placed_on[on] = executor.put_data(host()) if kept is None else kept
        return placed_on[on]

    timings: dict[str, float] = {}
    last = _clock()  # what is compiled from here to the first chunk's end is its compile_s
    if strategy == "auto":
        strategy, timings = choose_strategy(
            signature,
            functools.partial(make_step, False),
            state,
            host,
            data_shapes=split_shapes(data, SPLITS),
            num_cells=len(group),
            devices=devices,
            steps=min(stops[0] - start, 10),
            place_data=place_data,
        )
    executor = Executor(strategy, len(group), devices)
    placed, arrays = executor.put_state(state), _keep_data(data, executor, place_data(executor))
    placed_on.clear()  # the copies measured on elsewhere are let go
    host.cache_clear()  # placed: the host copy is not kept while the group trains
    owned = placed is not state  # else the caller's own arrays: not donated
    state = placed
    chunks = []
    step = start
    for stop in stops:
        n = stop - step
        begin = _clock()
        with program_memory() as memory:
            state, (metrics, diverged_at), guarded = _train_chunk(
                executor, signature, make_step, state, arrays, n, guarded, owned
            )
            owned = True  # from here on, a state this call produced
            scores = {}
            evaluated: tuple[float, float, int] | None = None
            if stop == hp.steps or (hp.eval_every and stop % hp.eval_every == 0):
                evaluated = _clock()
                scores = executor.run(
                    ("eval", signature),
                    lambda: make_evaluate(model(), hp.compute_dtype),
                    state,
                    arrays,
                    donate=False,
                )
                scores = executor.take(jax.device_get(scores))
        end = _clock()
        chunk = Chunk(
            np.arange(step + 1, stop + 1),
            metrics,
            scores,
            diverged_at,
            compile_s=end[1] - last[1],
            compiles=end[2] - last[2],
            train_s=_net(begin, evaluated or end),
            eval_s=_net(evaluated, end) if evaluated else 0.0,
            program_bytes=memory.largest,
        )
        last = end
        chunks.append(chunk)
        if on_chunk is not None:
            on_chunk(chunk)
        step = stop
        if should_stop is not None and should_stop():
            break
    return executor.take(state), GroupRun(strategy, timings, chunks)
