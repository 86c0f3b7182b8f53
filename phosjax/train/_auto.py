"""``strategy="auto"``: time each strategy on the actual group and keep the fastest."""

import collections
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from phosjax._hosts import local_devices
from phosjax.train._config import int_at_least
from phosjax.train._matmul_convs import has_convs
from phosjax.train._state import INIT_PROGRAMS_KEPT
from phosjax.train._step import check_arrays
from phosjax.train._strategy import (
    COPY,
    MATMUL_STRATEGIES,
    STRATEGIES,
    VMAPPED_STRATEGIES,
    Executor,
    kept,
    trace_config,
    vmap_draws_as_alone,
)

TIE = 0.05
"""Strategies within this fraction of the fastest count as equally fast: the first of them
in `STRATEGIES` is chosen, so that timing noise does not flip the choice from run to run."""

_CHOICES: collections.OrderedDict[tuple[Any, ...], tuple[str, dict[str, float]]] = (
    collections.OrderedDict()
)
"""In-memory cache of measured choices, by (backend, `Group.program_signature`, data shapes, cells,
devices, `trace_config`), the last `INIT_PROGRAMS_KEPT` used."""


def measure_strategies(
    signature: Any,
    make_step: Callable[[], Callable[..., Any]],
    state: Any,
    arrays: Any,
    *,
    num_cells: int,
    devices: Sequence[jax.Device] | None = None,
    candidates: Sequence[str] = STRATEGIES,
    steps: int = 10,
    repeats: int = 3,
    place_data: Callable[[Executor], Any] | None = None,
) -> dict[str, float]:
    """Seconds per step (all cells) of each candidate, after compilation; best of ``repeats``
    rounds in which the candidates take turns.

    Times the very programs `run_group` then runs (`Executor.run_steps` of ``steps``
    steps, without donation: its unguarded chunks) on ``state`` and the data placed once
    per set of devices, which the candidates running there share, so
    measuring compiles nothing extra when the run's chunks have ``steps`` steps. A
    candidate that runs out of device memory is left out of the timings (e.g. a
    `MATMUL_STRATEGIES` one, whose slices take the kernel's size times the input's memory).

    Args:
      signature: names the group's compiled programs: `Group.program_signature`, as
        `run_group` names them (another name compiles them anew).
      make_step: builds the one-cell train step (`make_train_step`).
      state: the group's state (left intact).
      arrays: the data arrays (`device_arrays`).
      num_cells: the group's number of cells.
      devices: the devices the group runs on (``None``: all local devices, as
        `run_group` takes it).
      candidates: strategies to time (a list or tuple of at least one of `STRATEGIES`).
      steps: steps per timed call, an int >= 1.
      repeats: timed rounds (after one call of each candidate that compiles), an int >= 1.
      place_data: ``executor -> arrays`` placed on its devices (default
        ``executor.put_data(arrays)``); `run_group` passes the placements it keeps, so
        the run trains on the very arrays measured on, not on a second transfer (and
        keeps only the one its strategy uses).

    Raises:
      ValueError: ``devices`` as `run_group` refuses them (empty, a device named twice,
        another process's), ``num_cells`` is not the state's cell count, ``candidates``
        is empty, a string or names an unknown strategy, or ``steps`` or ``repeats`` is
        no int >= 1; before anything compiles.
      TypeError: ``arrays`` is no mapping of arrays (e.g. the data set itself, not
        `device_arrays` of it).

    Examples:
      >>> import jax
      >>> from phosjax.data import random_dataset
      >>> from phosjax.models import ModelConfig
      >>> from phosjax.train import Cell, HParams, device_arrays, init_group, make_train_step
      >>> from phosjax.train import plan_groups
      >>> data = random_dataset("toy", (8,), 3)
      >>> model = ModelConfig("logreg", 3, (8,))
      >>> hp = HParams(batch_size=16, steps=10)
      >>> [group] = plan_groups([Cell(model, "toy", hp, seed=0), Cell(model, "toy", hp, seed=1)])
      >>> timings = measure_strategies(
      ...     group.program_signature, lambda: make_train_step(model.build(), group.hparams),
      ...     init_group(group, data), device_arrays(data), num_cells=2,
      ...     devices=jax.devices()[:1], candidates=("vmap",), steps=5, repeats=1)
      >>> list(timings), timings["vmap"] > 0
      (['vmap'], True)
    """

    devices = local_devices(devices, "measure_strategies")
    steps = int_at_least("measure_strategies: steps", steps, 1)
    repeats = int_at_least("measure_strategies: repeats", repeats, 1)
    if isinstance(candidates, str) or not isinstance(candidates, Sequence) or not candidates:
        raise ValueError(
            "measure_strategies: candidates must be a list or tuple of at least one of "
            f"{STRATEGIES}, got {candidates!r}"
            + (f"; for one, candidates=({candidates!r},)" if isinstance(candidates, str) else "")
        )
    check_arrays("measure_strategies", arrays)
    cells = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in jax.tree.leaves(state)}
    if cells != {num_cells}:
        raise ValueError(
            f"measure_strategies: num_cells={num_cells!r}, but the state's leaves lead with "
            f"{sorted(cells, key=str)} cells; pass the group's state (init_group) and "
            "num_cells=len(group)."
        )

    def timed(executor: Executor, placed: Any, data: Any) -> float:
        start = time.perf_counter()
        out = executor.run_steps(("train", signature), make_step, placed, data, steps, donate=False)
        jax.block_until_ready(out)
        return time.perf_counter() - start

    # each checked (an unknown strategy named) before any compiles
    executors = {strategy: Executor(strategy, num_cells, devices) for strategy in candidates}
    ready, exhausted = {}, None
    # (state, data) placed once per set of devices, which the candidates there share (none
    # donates them: every timed call is without donation)
    placed: dict[tuple[jax.Device, ...], tuple[Any, Any]] = {}
    for strategy, executor in executors.items():  # the first call of each compiles
        mesh = tuple(executor.mesh.devices.flat)
        if mesh not in placed:
            # A copy on the device keeps the leaves' weak types, so the programs timed are
            # those the run then runs (a host copy would not); one program, not one per leaf.
            copy = executor.put_state(COPY(state))
            data = executor.put_data(arrays) if place_data is None else place_data(executor)
            placed[mesh] = jax.block_until_ready(copy), data
        ready[strategy] = executor, *placed[mesh]
        try:
            timed(*ready[strategy])
        except jax.errors.JaxRuntimeError as error:
            if "RESOURCE_EXHAUSTED" not in str(error):
                raise
            del ready[strategy]  # out of device memory: not a candidate
            exhausted = error
    if exhausted is not None and not ready:
        raise exhausted
    best = dict.fromkeys(ready, float("inf"))
    for _ in range(repeats):  # the strategies take turns, so load on the machine hits all
        for strategy, args in ready.items():
            best[strategy] = min(best[strategy], timed(*args))
    return {strategy: seconds / steps for strategy, seconds in best.items()}


def candidates(step: Callable[..., Any], state: Any, arrays: Any) -> tuple[str, ...]:
    """The strategies worth timing for the one-cell ``step`` on a group's stacked ``state``:
    all of `STRATEGIES` when it computes a convolution, else all but `MATMUL_STRATEGIES`;
    none of `VMAPPED_STRATEGIES` where vmap would draw a cell's random numbers otherwise
    than alone (`vmap_draws_as_alone`)."""
    cell = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), state)
    left_out = () if has_convs(step, cell, arrays) else tuple(MATMUL_STRATEGIES)
    if not vmap_draws_as_alone():
        left_out += VMAPPED_STRATEGIES
    return tuple(s for s in STRATEGIES if s not in left_out)


def fastest(timings: dict[str, float], tie: float = TIE) -> str:
    """The first strategy (in `STRATEGIES` order) within ``tie`` of the fastest.

    Examples:
      >>> fastest({"vmap": 1.04, "map": 1.0, "stepwise": 2.0})
      'vmap'
      >>> fastest({"vmap": 1.2, "map": 1.0})
      'map'
    """
    limit = min(timings.values()) * (1 + tie)
    return next(s for s in sorted(timings, key=STRATEGIES.index) if timings[s] <= limit)


def split_shapes(data: Any, splits: Sequence[str]) -> tuple[Any, ...]:
    """``(name, shape, dtype)`` of each of ``data``'s ``splits``: what, beside the group,
    shapes the programs a strategy runs (a data set's name may stand for other sizes).

    Examples:
      >>> from phosjax.data import random_dataset
      >>> split_shapes(random_dataset("toy", (8,), 3, num_train=64), ("x_train",))
      (('x_train', (64, 8), dtype('float32')),)
    """
    shapes = []
    for name in splits:
        split = getattr(data, name)
        shapes.append((name, np.shape(split), getattr(split, "dtype", None)))
    return tuple(shapes)


def choose_strategy(
    signature: Any,
    make_step: Callable[[], Callable[..., Any]],
    state: Any,
    make_arrays: Callable[[], Any],
    *,
    data_shapes: tuple[Any, ...],
    num_cells: int,
    devices: Sequence[jax.Device],
    steps: int = 10,
    place_data: Callable[[Executor], Any] | None = None,
) -> tuple[str, dict[str, float]]:
    """The fastest strategy for this group on these devices (`fastest`: ties go to the
    earlier in `STRATEGIES`) and its timings, cached by the group's ``signature``, its
    ``data_shapes`` (`split_shapes`: one measured on a small data set is not reused for
    a big one of the same name), ``num_cells``, ``devices`` and `trace_config` (the last
    `INIT_PROGRAMS_KEPT` used); ``make_arrays()`` gives
    the data arrays, called only when measuring (``place_data``: as `measure_strategies`
    takes it). `MATMUL_STRATEGIES` are candidates only
    for a step that computes convolutions (for others they are ``"vmap"`` and ``"map"``).
    """
    key = (devices[0].platform, signature, data_shapes, num_cells, len(devices), trace_config())

    def measure() -> tuple[str, dict[str, float]]:
        arrays = make_arrays()
        timings = measure_strategies(
            signature,
            make_step,
            state,
            arrays,
            num_cells=num_cells,
            devices=devices,
            candidates=candidates(make_step(), state, arrays),
            steps=steps,
            place_data=place_data,
        )
        return fastest(timings), timings

    return kept(_CHOICES, key, measure, INIT_PROGRAMS_KEPT)
