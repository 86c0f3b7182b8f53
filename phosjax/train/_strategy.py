"""Running a one-cell function over a group's cells: vmap, map, sequential or stepwise.

``"vmap"`` and ``"map"`` compile ONE program over all cells: the cell axis is sharded
over the devices with a ``grid`` mesh axis (`jax.shard_map` inside `jax.jit`), and each
device runs its block of cells with `jax.vmap` (batched) or `jax.lax.map` (one after
another, inside the compiled program). A group with fewer cells than devices uses one
device per cell; otherwise the cell count is padded to a multiple of the device count
with copies of the first cell, which `Executor.take` drops again.
``"sequential"`` compiles the one-cell function and calls it cell after cell on the
first device. ``"stepwise"`` is ``"sequential"`` without a loop on the device: it
compiles `STEPWISE_UNROLL` steps of one cell, unrolled, and calls that program again and
again (`Executor.run_steps`), the way a plain training loop does; XLA:CPU compiles
convolutions inside loops onto a slow path (jax-ml/jax#12868), which this avoids.
``"vmap_matmul"`` and ``"map_matmul"`` are ``"vmap"`` and ``"map"`` with every
convolution of the function computed as a matrix product (`convs_as_matmuls`): a batched
one under `jax.vmap`, where a convolution would become a grouped one.
"""

import collections
import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from phosjax._hosts import local_devices
from phosjax.train._matmul_convs import convs_as_matmuls

STRATEGIES = ("vmap", "map", "sequential", "stepwise", "vmap_matmul", "map_matmul")
"""The ways to run a group; ``"auto"`` picks one of these by measurement."""

MATMUL_STRATEGIES = {"vmap_matmul": "vmap", "map_matmul": "map"}
"""The strategies that compute convolutions as matrix products, and what they batch as."""

VMAPPED_STRATEGIES = ("vmap", "vmap_matmul")
"""The strategies that batch the cells' steps with `jax.vmap`."""


PRNG_IMPLS = ("threefry2x32", "threefry4x32", "rbg", "unsafe_rbg", "philox2x32", "philox4x32")
"""The values ``jax_default_prng_impl`` takes (jax 0.10)."""

VMAP_PRNG_IMPLS = ("threefry2x32", "threefry4x32")
"""The PRNG implementations under which the engine's `jax.vmap` draws each cell's random
numbers as it would alone. Under `BATCH_DRAWN_PRNG_IMPLS` a key's draws depend on the
other keys of the batch; philox's draw alone, but XLA fails to compile them batched inside
the engine's `jax.shard_map` (jax 0.10: "failed to legalize operation")."""

BATCH_DRAWN_PRNG_IMPLS = ("rbg", "unsafe_rbg")
"""The PRNG implementations whose draws under `jax.vmap` come from the batch's other keys
too (``unsafe_rbg``'s `jax.random.split` too), so a cell's init and dropout would depend
on its neighbours."""


def vmap_draws_as_alone() -> bool:
    """Whether the engine's `jax.vmap` draws each cell's random numbers as it would alone
    under the PRNG implementation `jax.random.key` uses now (one of `VMAP_PRNG_IMPLS`)."""
    return trace_config()[0] in VMAP_PRNG_IMPLS


def per_cell(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` over the leading (cell) axis of its arguments: `jax.vmap`, or `jax.lax.map`
    where vmap would draw a cell's random numbers otherwise than alone
    (`vmap_draws_as_alone`, read when it is called or traced)."""

    def each(*args: Any) -> Any:
        if vmap_draws_as_alone():
            return jax.vmap(fn)(*args)
        return jax.lax.map(lambda one: fn(*one), args)

    return each


GRID = "grid"
"""The mesh axis the cell axis is sharded over."""

PREFETCH_BYTES = 256 * 2**20
"""Memory per device for the examples of a chunk's steps, gathered before its scan (the
cells a device runs at once share it); a chunk whose examples take more gathers each
step's batch in that step."""

STEPWISE_UNROLL = 2
"""Steps per dispatch of ``"stepwise"`` (unrolled: no loop on the device). For a one-cell
cnn1d chunk on XLA:CPU two steps per call took 0.90-0.97x the time of one (medians of
three runs; best of rounds 0.84-1.09x) and compiled 0.1 s longer; four took about the
same as two and compiled 0.6 s longer (``python benchmarks/stepwise_unroll.py``)."""

CellFn = Callable[[Any, Any], Any]

LIFTED_KEPT = 1024
"""How many lifted programs (one per function, chunk length, strategy, devices and
donation: a group trained with one strategy uses a few, ``"auto"`` about a dozen) stay
compiled, the least recently used dropped first: a session sweeping many models does not
keep every executable, while the bench's repeated `run_group` calls on one group (chunk,
checkpoint, resume), and a grid of a few hundred groups run again, recompile nothing."""

SIGNATURES_KEPT = 256
"""How many argument signatures (shapes, dtypes, devices) each `CompiledProgram` keeps
compiled, the least recently used dropped first (the engine's helper programs, e.g.
`UNSTACK`, see one signature per group state: as `INIT_PROGRAMS_KEPT`)."""

_LIFTED: collections.OrderedDict[tuple[Any, ...], Callable[..., Any]] = collections.OrderedDict()
"""Compiled programs by (caller's key, strategy, devices, donation): later calls reuse them
(at most `LIFTED_KEPT`)."""

_V = TypeVar("_V")


def kept(
    cache: collections.OrderedDict[Any, _V], key: Any, make: Callable[[], _V], size: int
) -> _V:
    """``cache[key]``, made by ``make()`` on a miss; ``cache`` keeps the ``size`` entries
    used last, in the order of use (the least recently used is dropped first).

    Examples:
      >>> cache = collections.OrderedDict()
      >>> [kept(cache, key, lambda: key * 10, 2) for key in (1, 2, 1, 3)]
      [10, 20, 10, 30]
      >>> list(cache)  # 2 was used least recently
      [1, 3]
    """
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    cache[key] = value = make()
    while len(cache) > size:
        cache.popitem(last=False)
    return value


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


def program_bytes(compiled: Any) -> float:
    """The memory one device needs to run a compiled program, as XLA's memory analysis
    gives it (arguments, outputs and the temporaries live at once; NaN where the
    backend gives none).

    Examples:
      >>> double = jax.jit(lambda x: 2 * x).lower(jnp.zeros(256, jnp.float32)).compile()
      >>> program_bytes(double) >= 2 * 256 * 4  # its argument and its output
      True
    """
    try:
        memory = compiled.memory_analysis()
    except Exception:  # some backends raise instead of returning None
        memory = None
    if memory is None:
        return float("nan")
    peak = getattr(memory, "peak_memory_in_bytes", 0)
    live = memory.argument_size_in_bytes + memory.output_size_in_bytes
    return float(peak or live + memory.temp_size_in_bytes - memory.alias_size_in_bytes)


@dataclasses.dataclass(eq=False)  # blocks are told apart by identity
class ProgramMemory:
    """The largest `program_bytes` of the programs called inside `program_memory`."""

    largest: float = float("nan")

    def add(self, size: float) -> None:
        self.largest = size if math.isnan(self.largest) else max(self.largest, size)


_WATCHING: list[ProgramMemory] = []


@contextlib.contextmanager
def program_memory() -> Iterator[ProgramMemory]:
    """Watches the compiled programs the engine calls inside the block: the `ProgramMemory`
    it yields ends with the largest one's `program_bytes` (NaN if none was called)."""
    memory = ProgramMemory()
    _WATCHING.append(memory)
    try:
        yield memory
    finally:
        _WATCHING.remove(memory)


def trace_config() -> tuple[str, bool, bool]:
    """The JAX settings a trace depends on beside its arguments: the PRNG implementation
    `jax.random.key` uses now and whether ``jax_enable_x64`` and
    ``jax_threefry_partitionable`` are on. They shape the cells' keys (without x64 a seed
    keeps its low 32 bits; the threefry setting changes what `jax.random.split` and
    `jax.random.bits` derive), the dtypes of the state's weakly typed leaves (a knob
    declared with a Python number) and what a compiled step computes (its batches,
    dropout and default dtypes)."""
    values = jax.config.values
    return (
        str(values["jax_default_prng_impl"]),
        bool(values["jax_enable_x64"]),
        bool(values["jax_threefry_partitionable"]),
    )


class CompiledProgram:
    """A jitted function, lowered and compiled ahead of time (``.lower(...).compile()``)
    once per argument signature (shapes, dtypes, shardings) and `trace_config`, the last
    `SIGNATURES_KEPT` kept; each compile is timed, and each use reported to the
    `program_memory` blocks around it."""

    def __init__(self, jitted: Any) -> None:
        self.jitted = jitted
        self.compiled: collections.OrderedDict[Any, tuple[Any, float]] = collections.OrderedDict()

    def executable(self, *args: Any) -> Any:
        """The compiled program for ``args``' signature under the `trace_config` now
        (compiled on first use)."""
        leaves, treedef = jax.tree.flatten(args)
        signature = (treedef, tuple(_signature(a) for a in leaves), trace_config())

        def compile_() -> tuple[Any, float]:
            start = time.perf_counter()
            compiled = self.jitted.lower(*args).compile()
            _COMPILED.seconds += time.perf_counter() - start
            _COMPILED.programs += 1
            return compiled, program_bytes(compiled)

        compiled, size = kept(self.compiled, signature, compile_, SIGNATURES_KEPT)
        for memory in _WATCHING:
            memory.add(size)
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


UNSTACK, STACK = CompiledProgram(jax.jit(_unstack)), CompiledProgram(jax.jit(_stack))
"""One compiled call each: a stacked tree into its cells, and cells into one stacked tree."""


def _copy(tree: Any) -> Any:
    """``tree`` in new buffers (of the same shardings and types), which a call may donate."""
    return jax.tree.map(jnp.copy, tree)


COPY = CompiledProgram(jax.jit(_copy))
"""`_copy`, compiled ahead of time: one program per tree signature, not an eager copy per
leaf (each compiling per shape); its compile counts in a chunk's ``compile_s``."""


def _without_logical_rules(fn: CellFn) -> CellFn:
    """``fn`` traced with no logical axis rules: each cell runs whole on one device, so a
    model's ``nn.with_logical_constraint`` constrains nothing (as without rules), where
    the caller's rules (``nn.logical_axis_rules``) would name mesh axes of the caller's,
    which the engine's mesh (one axis, the cells) lacks."""

    def run(state: Any, arrays: Any) -> Any:
        with nn.logical_axis_rules(()):
            return fn(state, arrays)

    return run


def _lift(fn: CellFn, strategy: str, mesh: Mesh, donate: bool) -> Callable[..., Any]:
    donate_argnums = (0,) if donate else ()
    fn = _without_logical_rules(fn)
    if strategy in MATMUL_STRATEGIES:
        fn, strategy = convs_as_matmuls(fn), MATMUL_STRATEGIES[strategy]
    if strategy in ("sequential", "stepwise"):
        single = CompiledProgram(jax.jit(fn, donate_argnums=donate_argnums))
        if strategy == "stepwise":
            return single

        def run(states: Any, arrays: Any) -> Any:
            return STACK([single(state, arrays) for state in UNSTACK(states)])

        return run
    if strategy == "vmap":
        local = jax.vmap(fn, in_axes=(0, None))
    else:

        def local(states: Any, arrays: Any) -> Any:
            return jax.lax.map(lambda state: fn(state, arrays), states)

    spec, replicated = PartitionSpec(GRID), PartitionSpec()
    # check_vma=False: the cells never communicate, and a loop whose carry starts the same
    # on every device but varies after a step (nn.RNN's zeros, the zoo's gru) would not trace
    sharded = jax.shard_map(
        local, mesh=mesh, in_specs=(spec, replicated), out_specs=spec, check_vma=False
    )
    return CompiledProgram(jax.jit(sharded, donate_argnums=donate_argnums))


def _steps(
    step: Callable[..., Any], num_steps: int, *, unrolled: bool, budget_bytes: float
) -> CellFn:
    """``num_steps`` calls of the one-cell ``step`` as one cell function ``(state, arrays)
    -> (state, outputs)``, the outputs stacked ``(num_steps, ...)``: a `jax.lax.scan`, or
    ``unrolled`` (no loop). A step with a ``batches`` method (`TrainStep`) gets its
    batches drawn before the steps, in at most ``budget_bytes`` per cell,
    ``step(state, arrays, batches[i])``."""
    draw = getattr(step, "batches", None)

    def run(state: Any, arrays: Any) -> Any:
        batches = None if draw is None else draw(state, arrays, num_steps, budget_bytes)

        def body(carry: Any, batch: Any) -> Any:
            return step(carry, arrays) if batch is None else step(carry, arrays, batch)

        if not unrolled:
            return jax.lax.scan(body, state, batches, length=num_steps)
        outs = []
        for i in range(num_steps):
            state, out = body(state, jax.tree.map(lambda b, i=i: b[i], batches))
            outs.append(out)
        return state, _stack(outs)

    return run


def _concatenate(parts: list[Any]) -> Any:
    return jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts)


CONCATENATE = CompiledProgram(jax.jit(_concatenate))
"""One compiled call: trees stacked on a leading axis into one, along that axis."""


def _stepwise(blocks: list[tuple[Any, int]], states: Any, arrays: Any) -> Any:
    """Cell after cell, ``count`` calls of each ``(program, count)`` of ``blocks`` in turn
    (each program a `CompiledProgram`, as `_lift` makes for ``"stepwise"``)."""
    outs = []
    for state in UNSTACK(states):
        parts = []
        for program, count in blocks:
            call = program.executable(state, arrays)  # the state keeps its signature
            for _ in range(count):
                state, out = call(state, arrays)
                parts.append(out)
        outs.append((state, CONCATENATE(parts)))
    return STACK(outs)


def _placed(a: Any, sharding: NamedSharding) -> bool:
    return isinstance(a, jax.Array) and a.sharding.is_equivalent_to(sharding, a.ndim)


def _padded(tree: Any, extra: int, sharding: NamedSharding) -> Any:
    """``tree``'s leaves with ``extra`` copies of their first cell appended, laid out by
    ``sharding`` (each device computes and keeps its own cells only)."""
    cells = jax.tree.leaves(tree)[0].shape[0]
    # a gather: concatenating cells that each device then cut compiled ~6x slower
    index = np.concatenate([np.arange(cells), np.zeros(extra, int)])
    return jax.lax.with_sharding_constraint(jax.tree.map(lambda a: a[index], tree), sharding)


def _held(a: jax.Array, cells: int, sharding: NamedSharding) -> jax.Array | None:
    """``a[:cells]`` laid out by ``sharding`` (over the cell axis) from ``a``'s own shards,
    copying nothing, where each of its devices holds just its part already (6 cells padded
    to 8 on 4 devices: the first 3 devices' shards); else None, as for a weakly typed leaf
    (a knob's: arrays assembled from shards lose their weak type)."""
    if jax.typeof(a).weak_type:
        return None
    shape = (cells, *a.shape[1:])
    shards = {shard.device: shard for shard in a.addressable_shards}
    parts = []
    for device, index in sharding.addressable_devices_indices_map(shape).items():
        shard = shards.get(device)
        if shard is None or shard.index is None or index is None:
            return None
        data = shard.data  # whole but for the cell axis, whose bounds are the same
        if data.shape[1:] != shape[1:] or (
            shard.index[0].indices(a.shape[0]) != index[0].indices(cells)
        ):
            return None
        parts.append(data)
    return jax.make_array_from_single_device_arrays(shape, sharding, parts)


def _sliced(tree: Any, cells: int) -> Any:
    """``tree``'s leaves cut to their first ``cells`` cells."""
    return jax.tree.map(lambda a: a[:cells], tree)


PADDED, SLICED = jax.jit(_padded, static_argnums=(1, 2)), jax.jit(_sliced, static_argnums=1)
"""One compiled program per tree signature and count (and sharding), not an eager operation
per leaf (each of which would compile per shape): a group's state padded with copies of its
first cell, and its leading cells taken. Plain `jax.jit` (a count is static, which
`CompiledProgram`'s signatures leave out): their compiles are JAX's to keep and not in
`compile_totals`."""


class Executor:
    """Places a group's state and data for one strategy and runs one-cell functions on them.

    Args:
      strategy: one of `STRATEGIES`.
      num_cells: the group's real number of cells.
      devices: the devices to shard the cell axis over (default: all local devices).
      unroll: ``"stepwise"``'s steps per dispatch.
    """

    def __init__(
        self,
        strategy: str,
        num_cells: int,
        devices: Sequence[jax.Device] | None = None,
        *,
        unroll: int = STEPWISE_UNROLL,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(
                f"Unknown strategy {strategy!r}: expected one of {STRATEGIES} ('auto' is "
                "run_group's choice among them, not one itself)"
            )
        if unroll < 1:
            raise ValueError(f"Executor: unroll must be >= 1, got {unroll}.")
        self.strategy = strategy
        self.unroll = unroll
        self.num_cells = num_cells
        devices = local_devices(devices, "Executor")
        # A group smaller than the device count uses one device per cell (no padding).
        used = 1 if strategy in ("sequential", "stepwise") else min(len(devices), num_cells)
        self.mesh = Mesh(np.asarray(devices[:used]), (GRID,))
        size = self.mesh.size
        self.padded = -(-num_cells // size) * size

    def put_state(self, state: Any) -> Any:
        """``state`` padded to a multiple of the devices and sharded over the ``grid`` axis:
        ``state`` itself when it is placed so already, else new arrays that share no buffer
        with it (which a call may donate)."""
        sharding = NamedSharding(self.mesh, PartitionSpec(GRID))
        if self.padded == self.num_cells:
            if all(_placed(a, sharding) for a in jax.tree.leaves(state)):
                return state  # placed already (e.g. by the previous call): device_put costs ms
            if self.mesh.size == 1:
                return jax.device_put(state, sharding, may_alias=False)
        # whole on every device first (a transfer that compiles nothing, where JAX splits a
        # single device's array by a program compiled per shape and dtype), then padded
        # (if need be) by one program, each device computing its own cells only
        whole = jax.device_put(state, NamedSharding(self.mesh, PartitionSpec()))
        return PADDED(whole, self.padded - self.num_cells, sharding)

    def put_data(self, arrays: Any) -> Any:
        """``arrays`` replicated on every device of the mesh."""
        return jax.device_put(arrays, NamedSharding(self.mesh, PartitionSpec()))

    def take(self, tree: Any) -> Any:
        """``tree`` without the padding cells: host arrays sliced; device arrays sharded
        over the most of the mesh's first devices that split the cells evenly (a slice
        alone would land whole on every device: 6 cells padded to 8 on 4 devices come
        back 2 on each of the first 3). Where a device holds its cells already (those 6:
        the first 3 devices' shards) they are its shards, copying nothing and sharing
        ``tree``'s buffers; the other leaves are cut by one program (`SLICED`) and split."""
        if self.padded == self.num_cells:
            return tree
        cells = self.num_cells
        used = max(n for n in range(1, self.mesh.size + 1) if cells % n == 0)
        sharding = NamedSharding(Mesh(self.mesh.devices[:used], (GRID,)), PartitionSpec(GRID))

        leaves, treedef = jax.tree.flatten(tree)
        out = [_held(a, cells, sharding) if isinstance(a, jax.Array) else a[:cells] for a in leaves]
        cut = [a for a, o in zip(leaves, out, strict=True) if o is None]
        taken = iter(jax.device_put(SLICED(cut, cells), sharding) if cut else [])
        return jax.tree.unflatten(treedef, [next(taken) if o is None else o for o in out])

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

        ``"stepwise"`` dispatches ``unroll`` steps at a time (unrolled); the other
        strategies run the steps in one `jax.lax.scan` per call (compiled once per
        ``num_steps`` and ``donate``). With ``donate`` the call may reuse ``state``'s
        buffers; without, ``state`` stays valid. A step with a ``batches`` method
        (`TrainStep`) gets the batches of a scan or of an unrolled call drawn before its
        steps, ``step(state, arrays, batches[i])``, their examples gathered too when they
        fit in `PREFETCH_BYTES` (shared by the cells a device runs at once).
        """
        # "sequential" and "stepwise" step per-cell copies (UNSTACK): those they can donate
        donate = donate or self.strategy in ("sequential", "stepwise")
        batched = MATMUL_STRATEGIES.get(self.strategy, self.strategy) == "vmap"
        at_once = -(-self.padded // self.mesh.size) if batched else 1
        budget = PREFETCH_BYTES // at_once  # in the programs' keys: it shapes them

        def maker(n: int, unrolled: bool) -> Callable[[], CellFn]:
            return lambda: _steps(make_step(), n, unrolled=unrolled, budget_bytes=budget)

        if self.strategy == "stepwise":
            whole, rest = divmod(num_steps, self.unroll)
            blocks = [(self.unroll, whole), (rest, 1)]
            programs = [
                (self._lifted((key, n, budget), maker(n, True), "stepwise", donate), calls)
                for n, calls in blocks
                if n and calls
            ]
            return _stepwise(programs, state, arrays)
        make = maker(num_steps, False)
        return self.run((key, num_steps, budget), make, state, arrays, donate=donate)

    def _lifted(
        self, key: Any, make: Callable[[], CellFn], strategy: str, donate: bool
    ) -> Callable[..., Any]:
        cache_key = (key, strategy, tuple(self.mesh.devices.flat), donate)
        return kept(
            _LIFTED, cache_key, lambda: _lift(make(), strategy, self.mesh, donate), LIFTED_KEPT
        )
