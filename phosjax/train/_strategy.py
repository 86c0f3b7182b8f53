"""Running a one-cell function over a group's cells: vmap, map, sequential or stepwise.

``"vmap"`` and ``"map"`` compile ONE program over all cells: the cell axis is sharded
over the devices with a ``grid`` mesh axis (`jax.shard_map` inside `jax.jit`), and each
device runs its block of cells with `jax.vmap` (batched) or `jax.lax.map` (one after
another, inside the compiled program). A group with fewer cells than devices uses one
device per cell; otherwise the cell count is padded to a multiple of the device count
with copies of the first cell, which `Executor.take` drops again.
``"sequential"`` compiles the one-cell function and calls it cell after cell on the
first device. ``"stepwise"`` is ``"sequential"`` without a loop on the device: it
compiles ONE step of one cell and calls it step after step (`Executor.run_steps`), the
way a plain training loop does; XLA:CPU compiles convolutions inside loops onto a slow
path (jax-ml/jax#12868), which this avoids.
"""

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

STRATEGIES = ("vmap", "map", "sequential", "stepwise")
"""The ways to run a group; ``"auto"`` picks one of these by measurement."""

GRID = "grid"
"""The mesh axis the cell axis is sharded over."""

CellFn = Callable[[Any, Any], Any]

_LIFTED: dict[tuple[Any, ...], Callable[..., Any]] = {}
"""Compiled programs by (caller's key, strategy, devices, donation): later calls reuse them."""


@dataclasses.dataclass
class _Totals:
    seconds: float = 0.0
    programs: int = 0


_COMPILED = _Totals()
"""Seconds spent compiling and programs compiled ahead of time in this process."""


def compile_totals() -> tuple[float, int]:
    """``(seconds, programs)`` compiled ahead of time by every `Executor` of this process.

    Callers read it before and after some work to learn what that work spent compiling.
    """
    return _COMPILED.seconds, _COMPILED.programs


class _Program:
    """A jitted function, lowered and compiled ahead of time (``.lower(...).compile()``)
    once per argument signature (shapes, dtypes, shardings); each compile is timed."""

    def __init__(self, jitted: Any) -> None:
        self.jitted = jitted
        self.compiled: dict[Any, Any] = {}

    def executable(self, *args: Any) -> Any:
        """The compiled program for ``args``' signature (compiled on first use)."""
        leaves, treedef = jax.tree.flatten(args)
        signature = (treedef, tuple(_signature(a) for a in leaves))
        compiled = self.compiled.get(signature)
        if compiled is None:
            start = time.perf_counter()
            compiled = self.jitted.lower(*args).compile()
            _COMPILED.seconds += time.perf_counter() - start
            _COMPILED.programs += 1
            self.compiled[signature] = compiled
        return compiled

    def __call__(self, *args: Any) -> Any:
        return self.executable(*args)(*args)


def _signature(a: Any) -> tuple[Any, ...]:
    """What a compiled program depends on of argument ``a``: shape, dtype, weak type and
    where it lives (its device when it lives on one: every sharding of one device is
    equivalent; else its sharding)."""
    aval, sharding = jax.typeof(a), getattr(a, "sharding", None)
    if sharding is not None and len(sharding.device_set) == 1:
        sharding = next(iter(sharding.device_set))
    return aval.shape, aval.dtype, aval.weak_type, sharding


def _unstack(tree: Any) -> list[Any]:
    cells = jax.tree.leaves(tree)[0].shape[0]
    return [jax.tree.map(lambda a, i=i: a[i], tree) for i in range(cells)]


def _stack(trees: list[Any]) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


UNSTACK, STACK = _Program(jax.jit(_unstack)), _Program(jax.jit(_stack))
"""One compiled call each: a stacked tree into its cells, and cells into one stacked tree."""


def _lift(fn: CellFn, strategy: str, mesh: Mesh, donate: bool) -> Callable[..., Any]:
    donate_argnums = (0,) if donate else ()
    if strategy in ("sequential", "stepwise"):
        single = _Program(jax.jit(fn, donate_argnums=donate_argnums))
        if strategy == "stepwise":
            return functools.partial(_stepwise, single)

        def run(states: Any, arrays: Any) -> Any:
            return STACK([single(state, arrays) for state in UNSTACK(states)])

        return run
    if strategy == "vmap":
        local = jax.vmap(fn, in_axes=(0, None))
    else:

        def local(states: Any, arrays: Any) -> Any:
            return jax.lax.map(lambda state: fn(state, arrays), states)

    spec, replicated = PartitionSpec(GRID), PartitionSpec()
    sharded = jax.shard_map(local, mesh=mesh, in_specs=(spec, replicated), out_specs=spec)
    return _Program(jax.jit(sharded, donate_argnums=donate_argnums))


def _stepwise(step: _Program, states: Any, arrays: Any, num_steps: int) -> Any:
    """``num_steps`` calls of the one-step program ``step`` per cell, cell after cell."""
    outs = []
    for state in UNSTACK(states):
        call, metrics = step.executable(state, arrays), []
        for _ in range(num_steps):  # the state keeps its signature: one lookup per cell
            state, out = call(state, arrays)
            metrics.append(out)
        outs.append((state, STACK(metrics)))
    return STACK(outs)


def _placed(a: Any, sharding: NamedSharding) -> bool:
    return isinstance(a, jax.Array) and a.sharding.is_equivalent_to(sharding, a.ndim)


class Executor:
    """Places a group's state and data for one strategy and runs one-cell functions on them.

    Args:
      strategy: one of `STRATEGIES`.
      num_cells: the group's real number of cells.
      devices: the devices to shard the cell axis over (default: all local devices).
    """

    def __init__(
        self, strategy: str, num_cells: int, devices: Sequence[jax.Device] | None = None
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"Unknown strategy {strategy!r}: expected 'auto' or {STRATEGIES}")
        self.strategy = strategy
        self.num_cells = num_cells
        devices = list(devices or jax.local_devices())
        # A group smaller than the device count uses one device per cell (no padding).
        used = 1 if strategy in ("sequential", "stepwise") else min(len(devices), num_cells)
        self.mesh = Mesh(np.asarray(devices[:used]), (GRID,))
        size = self.mesh.size
        self.padded = -(-num_cells // size) * size

    def put_state(self, state: Any) -> Any:
        """``state`` padded to a multiple of the devices and sharded over the ``grid`` axis."""
        extra = self.padded - self.num_cells

        def pad(a: Any) -> Any:  # on the host for host arrays: one transfer per leaf
            xp = np if isinstance(a, np.ndarray) else jnp
            return xp.concatenate([a, xp.repeat(a[:1], extra, axis=0)])

        if extra:
            state = jax.tree.map(pad, state)
        sharding = NamedSharding(self.mesh, PartitionSpec(GRID))
        if all(_placed(a, sharding) for a in jax.tree.leaves(state)):
            return state  # placed already (e.g. by the previous call): device_put costs ms
        return jax.device_put(state, sharding)

    def put_data(self, arrays: Any) -> Any:
        """``arrays`` replicated on every device of the mesh."""
        return jax.device_put(arrays, NamedSharding(self.mesh, PartitionSpec()))

    def take(self, tree: Any) -> Any:
        """``tree`` without the padding cells."""
        if self.padded == self.num_cells:
            return tree
        return jax.tree.map(lambda a: a[: self.num_cells], tree)

    def run(self, key: Any, make: Callable[[], CellFn], state: Any, arrays: Any, *, donate: bool):
        """Runs the one-cell function ``make()`` over every cell.

        ``key`` (hashable) names the function: it is built and compiled once per key,
        strategy, devices and donation in this process.
        """
        strategy = "sequential" if self.strategy == "stepwise" else self.strategy
        return self._lifted(key, make, strategy, donate)(state, arrays)

    def run_steps(
        self,
        key: Any,
        make_step: Callable[[], CellFn],
        state: Any,
        arrays: Any,
        num_steps: int,
        *,
        donate: bool = True,
    ) -> tuple[Any, Any]:
        """``num_steps`` steps of the one-cell step ``make_step()`` on every cell:
        ``(state, outputs)``, each output stacked ``(cells, num_steps, ...)``.

        ``"stepwise"`` dispatches every step; the other strategies run the steps in one
        `jax.lax.scan` per call (compiled once per ``num_steps`` and ``donate``). With
        ``donate`` the call may reuse ``state``'s buffers; without, ``state`` stays valid.
        A step with a ``batches`` method (`TrainStep`) gets the chunk's batches drawn
        before the scan, ``step(state, arrays, batches[i])``.
        """
        # "sequential" and "stepwise" step per-cell copies (UNSTACK): those they can donate
        donate = donate or self.strategy in ("sequential", "stepwise")
        if self.strategy == "stepwise":
            return self._lifted(key, make_step, "stepwise", donate)(state, arrays, num_steps)

        def make_chunk() -> CellFn:
            step = make_step()
            draw = getattr(step, "batches", None)
            if draw is None:
                return lambda s, a: jax.lax.scan(lambda c, _: step(c, a), s, None, num_steps)
            return lambda s, a: jax.lax.scan(lambda c, b: step(c, a, b), s, draw(s, a, num_steps))

        return self.run((key, num_steps), make_chunk, state, arrays, donate=donate)

    def _lifted(
        self, key: Any, make: Callable[[], CellFn], strategy: str, donate: bool
    ) -> Callable[..., Any]:
        cache_key = (key, strategy, tuple(self.mesh.devices.flat), donate)
        if cache_key not in _LIFTED:
            _LIFTED[cache_key] = _lift(make(), strategy, self.mesh, donate)
        return _LIFTED[cache_key]
