"""Running a one-cell function over a group's cells: vmap, map or sequential, on a mesh.

``"vmap"`` and ``"map"`` compile ONE program over all cells: the cell axis is sharded
over the devices with a ``grid`` mesh axis (`jax.shard_map` inside `jax.jit`), and each
device runs its block of cells with `jax.vmap` (batched) or `jax.lax.map` (one after
another, inside the compiled program). A group with fewer cells than devices uses one
device per cell; otherwise the cell count is padded to a multiple of the device count
with copies of the first cell, which `Executor.take` drops again.
``"sequential"`` compiles the one-cell function and calls it cell after cell on the
first device.
"""

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

STRATEGIES = ("vmap", "map", "sequential")
"""The ways to run a group; ``"auto"`` picks one of these by measurement."""

GRID = "grid"
"""The mesh axis the cell axis is sharded over."""

CellFn = Callable[[Any, Any], Any]

_LIFTED: dict[tuple[Any, ...], CellFn] = {}
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

    def __call__(self, *args: Any) -> Any:
        leaves, treedef = jax.tree.flatten(args)
        signature = (treedef, tuple((jax.typeof(a), getattr(a, "sharding", None)) for a in leaves))
        compiled = self.compiled.get(signature)
        if compiled is None:
            start = time.perf_counter()
            compiled = self.jitted.lower(*args).compile()
            _COMPILED.seconds += time.perf_counter() - start
            _COMPILED.programs += 1
            self.compiled[signature] = compiled
        return compiled(*args)


def _lift(fn: CellFn, strategy: str, mesh: Mesh, donate: bool) -> CellFn:
    donate_argnums = (0,) if donate else ()
    if strategy == "sequential":
        single = _Program(jax.jit(fn, donate_argnums=donate_argnums))

        def run(states: Any, arrays: Any) -> Any:
            cells = jax.tree.leaves(states)[0].shape[0]
            outs = [single(jax.tree.map(lambda a, i=i: a[i], states), arrays) for i in range(cells)]
            return jax.tree.map(lambda *xs: jnp.stack(xs), *outs)

        return run
    if strategy == "vmap":
        local = jax.vmap(fn, in_axes=(0, None))
    else:

        def local(states: Any, arrays: Any) -> Any:
            return jax.lax.map(lambda state: fn(state, arrays), states)

    spec, replicated = PartitionSpec(GRID), PartitionSpec()
    sharded = jax.shard_map(local, mesh=mesh, in_specs=(spec, replicated), out_specs=spec)
    return _Program(jax.jit(sharded, donate_argnums=donate_argnums))


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
        used = 1 if strategy == "sequential" else min(len(devices), num_cells)
        self.mesh = Mesh(np.asarray(devices[:used]), (GRID,))
        size = self.mesh.size
        self.padded = -(-num_cells // size) * size

    def put_state(self, state: Any) -> Any:
        """``state`` padded to a multiple of the devices and sharded over the ``grid`` axis."""
        extra = self.padded - self.num_cells

        def pad(a: Any) -> Any:
            a = jnp.asarray(a)
            return jnp.concatenate([a, jnp.repeat(a[:1], extra, axis=0)]) if extra else a

        sharding = NamedSharding(self.mesh, PartitionSpec(GRID))
        return jax.device_put(jax.tree.map(pad, state), sharding)

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
        cache_key = (key, self.strategy, tuple(self.mesh.devices.flat), donate)
        if cache_key not in _LIFTED:
            _LIFTED[cache_key] = _lift(make(), self.strategy, self.mesh, donate)
        return _LIFTED[cache_key](state, arrays)
