"""Grid speed: model-steps per second of K small models trained by five methods, one run.

The methods (every one an Adam step on a synthetic batch already on the device). For
each (model, K) every method is set up and warmed up (its first call compiles), then
timed ``repeats`` times with ``jax.block_until_ready``, the methods taking turns, so that
load on the machine hits them alike; the fastest call counts:

* ``one_by_one`` — one jitted step per model, the models one after another;
* ``vmap`` — plain ``jax.jit(jax.vmap(step))`` over the stacked params, one call per step;
* ``engine`` — `phosjax.train` (`plan_groups`, `init_group`, `run_group`) on real
  `Cell`\\ s: ``steps`` steps in chunks of at most `ENGINE_CHUNK`, after a warm-up chunk
  (which compiles and, for ``strategy="auto"``, measures the strategies); includes all
  that ``run_group`` does per call (placing the state and data, gathering each batch,
  metrics, divergence checks, one metrics transfer per chunk);
* ``fused`` — the ceiling: ONE model trained on batch ``K x batch``;
* ``torch`` — ``torch.func.vmap`` of the same grid, when torch is importable.

Costs: each (model, K) compiles about five programs; a size that would not fit in the
device's memory, or whose estimated time exceeds ``budget`` seconds, is skipped (a row
with ``status="skipped"`` and the reason in ``note``).
"""

import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import psutil

from phosjax.bench import _speed_torch
from phosjax.data import ArrayDataset
from phosjax.models import ModelConfig
from phosjax.train import Cell, HParams, init_group, plan_groups, precision_apply, run_group

MODELS: dict[str, ModelConfig] = {
    "mlp": ModelConfig("mlp", 10, (40,), depth=1, width=100),  # 40-100-100-10, residual
    "cnn1d": ModelConfig("cnn1d", 10, (40,), depth=3, width=25),  # MNIST-1D shaped input
    "cnn2d": ModelConfig("cnn2d", 10, (28, 28, 1), depth=1, width=(32, 64, 64)),
    "transformer": ModelConfig("transformer", 10, (40,), depth=2, width=32),
}
"""The benchmarked models: zoo configs (``cnn2d``: conv32, conv64/2, conv64/2, pool, dense)."""

METHODS = ("one_by_one", "vmap", "engine", "fused", "torch")
"""The methods compared, in the order they run for each (model, K)."""

COLUMNS = (
    "model",
    "K",
    "method",
    "status",
    "model_steps_per_s",
    "seconds",
    "warmup_s",
    "steps",
    "batch",
    "compute_dtype",
    "strategy",
    "backend",
    "device",
    "note",
)
"""The columns of ``speed.parquet``: one row per (model, K, method)."""

LEARNING_RATE = 1e-3
ENGINE_CHUNK = 100
"""The engine's steps per dispatch (``chunk_steps``), at most; `run_group`'s default."""
_AUTO_STEPS = 4 * 3 * 10  # strategy="auto" times four strategies, 3 calls of 10 steps each


@dataclasses.dataclass(frozen=True)
class SpeedConfig:
    """What `measure` runs.

    Examples:
      >>> SpeedConfig(models=("mlp", "resnet"))
      Traceback (most recent call last):
      ...
      ValueError: unknown models ['resnet']; choose from ['mlp', 'cnn1d', 'cnn2d', 'transformer']

    Attributes:
      models: names in `MODELS`.
      sizes: grid sizes K, smallest first.
      steps: timed steps per model.
      batch: examples per step per model.
      methods: a subset of `METHODS`.
      strategy: the engine's strategy: ``"auto"`` or one of `phosjax.train.STRATEGIES`.
      compute_dtype: ``"float32"`` or ``"bfloat16"`` (`HParams.compute_dtype`), for every
        method.
      budget: skip a measurement whose estimated time (from the same method at the
        previous size) exceeds this many seconds; 0: no limit.
      repeats: timed rounds (each method runs ``steps`` steps per round, the methods
        taking turns); the fastest round of each method counts.
    """

    models: tuple[str, ...] = tuple(MODELS)
    sizes: tuple[int, ...] = (1, 8, 64, 256)
    steps: int = 100
    batch: int = 128
    methods: tuple[str, ...] = METHODS
    strategy: str = "auto"
    compute_dtype: str = "float32"
    budget: float = 120.0
    repeats: int = 3

    def __post_init__(self) -> None:
        for name, given, known in [
            ("models", self.models, MODELS),
            ("methods", self.methods, METHODS),
        ]:
            unknown = [g for g in given if g not in known]
            if unknown or not given:
                raise ValueError(f"unknown {name} {unknown or given}; choose from {list(known)}")
        if min((*self.sizes, self.steps, self.batch, self.repeats), default=0) < 1:
            raise ValueError(f"sizes, steps, batch and repeats must be >= 1: {self}")
        HParams(compute_dtype=self.compute_dtype)  # a clear error for a bad dtype


class Skip(Exception):
    """A measurement that was not made; the message says why."""


class Failed(Exception):
    """A measurement that raised (only the untested-here torch path is caught)."""


@dataclasses.dataclass
class _Setup:
    """What every method of one model shares: the model, its step, its compiled step."""

    name: str
    config: ModelConfig
    init: Callable[[jax.Array], Any]  # jitted: key -> (params, opt_state)
    step: Callable[..., Any]  # (state, x, y) -> state
    compiled: Any  # the one-model step, compiled ahead of time with donation
    bytes_per_model: int
    hosts: list[Any] = dataclasses.field(default_factory=list)  # initial states, numpy

    def states(self, k: int) -> list[Any]:
        """K initial (params, opt_state) on the host: one compiled init, called K times."""
        while len(self.hosts) < k:  # rbg keys: XLA compiles them faster than threefry
            key = jax.random.key(len(self.hosts), impl="rbg")
            self.hosts.append(jax.device_get(self.init(key)))
        return self.hosts[:k]


def _setup(name: str, cfg: SpeedConfig) -> _Setup:
    config = MODELS[name]
    model = config.build()
    apply = precision_apply(model, cfg.compute_dtype)
    tx = optax.adam(LEARNING_RATE)

    def init(key: jax.Array) -> Any:
        params = model.init(key, jnp.zeros((1, *config.input_shape)), train=False)["params"]
        return params, tx.init(params)

    def loss(params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
        logits = apply({"params": params}, x, train=True)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def step(state: Any, x: jax.Array, y: jax.Array) -> Any:
        params, opt_state = state
        updates, opt_state = tx.update(jax.grad(loss)(params, x, y), opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    shapes = (
        jax.eval_shape(init, jax.random.key(0, impl="rbg")),
        jax.ShapeDtypeStruct((cfg.batch, *config.input_shape), jnp.float32),
        jax.ShapeDtypeStruct((cfg.batch,), jnp.int32),
    )
    compiled = jax.jit(step, donate_argnums=0).lower(*shapes).compile()
    memory = compiled.memory_analysis()
    size = 0
    if memory is not None:
        size = memory.argument_size_in_bytes + memory.output_size_in_bytes
        size += memory.temp_size_in_bytes - memory.alias_size_in_bytes
    return _Setup(name, config, jax.jit(init), step, compiled, size)


def _batches(setup: _Setup, k: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """K random batches on the host (numpy: nothing to compile), ``(K, batch, ...)``."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(k, batch, *setup.config.input_shape)).astype(np.float32)
    return x, rng.integers(0, setup.config.num_classes, (k, batch)).astype(np.int32)


def _stack(trees: list[Any]) -> Any:
    return jax.tree.map(lambda *leaves: np.stack(leaves), *trees)


def _timed(run: Callable[[], Any]) -> float:
    start = time.perf_counter()
    jax.block_until_ready(run())
    return time.perf_counter() - start


@dataclasses.dataclass
class _Ready:
    """A method set up for one (model, K), compiled and warmed up, not yet timed.

    Attributes:
      run: trains every model ``steps`` more steps and returns what to block on.
      warmup_s: seconds of the first call (compiling; for the engine also ``"auto"``).
      steps: steps per ``run`` call.
      strategy: the engine's strategy ("" for the other methods).
    """

    run: Callable[[], Any]
    warmup_s: float
    steps: int
    strategy: str = ""


def _one_by_one(setup: _Setup, k: int, cfg: SpeedConfig) -> _Ready:
    x, y = _batches(setup, k, cfg.batch)
    xs, ys = [jax.device_put(a) for a in x], [jax.device_put(a) for a in y]
    states = [jax.device_put(state) for state in setup.states(k)]
    start = time.perf_counter()  # compiled already: one call, its input donated
    states[0] = jax.block_until_ready(setup.compiled(states[0], xs[0], ys[0]))
    warmup = time.perf_counter() - start

    def run() -> Any:
        for i in range(k):
            state = states[i]
            for _ in range(cfg.steps):
                state = setup.compiled(state, xs[i], ys[i])
            states[i] = state
        return states

    return _Ready(run, warmup, cfg.steps)


def _repeat(step: Callable[..., Any], state: Any, cfg: SpeedConfig, *args: Any) -> _Ready:
    box = [jax.device_put(state)]
    args = tuple(jax.device_put(a) for a in args)

    def call() -> Any:
        box[0] = step(box[0], *args)
        return box[0]

    warmup = _timed(call)

    def run() -> Any:
        for _ in range(cfg.steps):
            call()
        return box[0]

    return _Ready(run, warmup, cfg.steps)


def _vmap(setup: _Setup, k: int, cfg: SpeedConfig) -> _Ready:
    step = jax.jit(jax.vmap(setup.step), donate_argnums=0)
    return _repeat(step, _stack(setup.states(k)), cfg, *_batches(setup, k, cfg.batch))


def _fused(setup: _Setup, k: int, cfg: SpeedConfig) -> _Ready:
    x, y = _batches(setup, k, cfg.batch)
    x, y = x.reshape(k * cfg.batch, *x.shape[2:]), y.reshape(-1)
    step = jax.jit(setup.step, donate_argnums=0)
    return _repeat(step, setup.states(1)[0], cfg, x, y)


def synthetic_data(config: ModelConfig, batch: int) -> ArrayDataset:
    """A random data set shaped for ``config``: ``max(2 * batch, 256)`` train examples."""
    rng = np.random.default_rng(0)
    n, m = max(2 * batch, 256), 16
    x = rng.normal(size=(n + m, *config.input_shape)).astype(np.float32)
    y = rng.integers(0, config.num_classes, n + m).astype(np.int32)
    shape = config.input_shape
    return ArrayDataset("speed-synthetic", x[:n], y[:n], x[n:], y[n:], config.num_classes, shape)


def _engine(setup: _Setup, k: int, cfg: SpeedConfig) -> _Ready:
    data = synthetic_data(setup.config, cfg.batch)
    chunk = min(cfg.steps, ENGINE_CHUNK)
    steps = -(-cfg.steps // chunk) * chunk  # whole chunks: one compiled program
    hp = HParams(  # steps beyond the timed ones: no evaluation is timed
        learning_rate=LEARNING_RATE,
        batch_size=cfg.batch,
        steps=chunk + cfg.repeats * steps + 1,
        compute_dtype=cfg.compute_dtype,
    )
    [group] = plan_groups([Cell(setup.config, data.name, hp, seed) for seed in range(k)])
    state = jax.block_until_ready(init_group(group, data))
    start = time.perf_counter()  # compiles (and, for "auto", times the strategies)
    state, first = run_group(group, state, data, chunk, strategy=cfg.strategy, chunk_steps=chunk)
    warmup = time.perf_counter() - start
    box = [state]

    def run() -> Any:  # one run_group call, as a user makes it
        until = int(jax.device_get(box[0].step)[0]) + steps
        strategy = first.strategy
        box[0] = run_group(group, box[0], data, until, strategy=strategy, chunk_steps=chunk)[0]
        return box[0]

    return _Ready(run, warmup, steps, first.strategy)


def _torch(setup: _Setup, k: int, cfg: SpeedConfig) -> _Ready:
    try:
        run, warmup = _speed_torch.prepare(
            setup.name, k, cfg.batch, cfg.steps, setup.config.input_shape, cfg.compute_dtype
        )
    except Exception as error:  # keep every other row of a long run
        raise Failed(f"{type(error).__name__}: {error}") from error
    return _Ready(run, warmup, cfg.steps)


_PREPARE: dict[str, Callable[[_Setup, int, SpeedConfig], _Ready]] = {
    "one_by_one": _one_by_one,
    "vmap": _vmap,
    "engine": _engine,
    "fused": _fused,
    "torch": _torch,
}


def _available_bytes(device: jax.Device) -> int:
    stats = device.memory_stats() or {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    return int(psutil.virtual_memory().available)


def _check(setup: _Setup, k: int, method: str, cfg: SpeedConfig, rates: dict[str, Any]) -> None:
    """Raises `Skip` when K models would not fit in the memory left (the methods set up
    before for this K hold theirs) or would take longer than the budget."""
    if method == "torch" and _speed_torch.unavailable():
        raise Skip(f"{_speed_torch.unavailable()}: install torch to compare")
    need, free = 2 * k * setup.bytes_per_model, _available_bytes(jax.devices()[0])
    if need > 0.9 * free:
        raise Skip(f"would not fit: ~{need / 2**30:.1f} GiB needed, {free / 2**30:.1f} GiB free")
    previous = rates.get(method)
    if not cfg.budget or method not in rates:
        return
    if previous is None:
        raise Skip("a smaller K of this method was skipped")
    work = k * (cfg.repeats * cfg.steps + 1 + (cfg.steps + _AUTO_STEPS) * (method == "engine"))
    if work / previous > cfg.budget:
        raise Skip(f"estimated {work / previous:.0f} s > budget {cfg.budget:g} s")


def _cases(cfg: SpeedConfig) -> Iterator[tuple[str, int]]:
    for name in cfg.models:
        for k in sorted(cfg.sizes):
            yield name, k


def _interleaved(ready: dict[str, _Ready], repeats: int) -> dict[str, float]:
    """The fastest of ``repeats`` timed calls of each method, the methods taking turns
    (round after round), so that a spell of load on the machine hits them alike."""
    best = dict.fromkeys(ready, float("inf"))
    for _ in range(repeats):
        for method, prepared in ready.items():
            best[method] = min(best[method], _timed(prepared.run))
    return best


def measure(cfg: SpeedConfig, progress: bool = True) -> pd.DataFrame:
    """Runs every (model, K, method) of ``cfg``; one row each, with the `COLUMNS`.

    Examples:
      >>> cfg = SpeedConfig(models=("mlp",), sizes=(1, 8), steps=1, batch=4, methods=("vmap",))
      >>> frame = measure(cfg, progress=False)  # doctest: +SKIP
      >>> frame[["model", "K", "method", "status"]].values.tolist()  # doctest: +SKIP
      [['mlp', 1, 'vmap', 'ok'], ['mlp', 8, 'vmap', 'ok']]
    """
    from tqdm.auto import tqdm

    device = jax.devices()[0]
    common = {
        "steps": cfg.steps,
        "batch": cfg.batch,
        "compute_dtype": cfg.compute_dtype,
        "backend": jax.default_backend(),
        "device": device.device_kind,
    }
    rows, setups = [], {}
    rates: dict[str, dict[str, float | None]] = {}
    cases = list(_cases(cfg))
    bar = tqdm(total=len(cases) * len(cfg.methods), disable=not progress, desc="speed", unit="run")
    for name, k in cases:
        bar.set_postfix_str(f"{name} K={k}")
        seen = rates.setdefault(name, {})
        if name not in setups:
            setups[name] = _setup(name, cfg)
        ready, found = {}, {}
        for method in cfg.methods:
            found[method] = {"model": name, "K": k, "method": method, **common}
            try:
                _check(setups[name], k, method, cfg, seen)
                ready[method] = _PREPARE[method](setups[name], k, cfg)
            except (Skip, Failed) as error:
                status = "skipped" if isinstance(error, Skip) else "failed"
                found[method] |= {"status": status, "note": str(error)}
                seen[method] = None
        best = _interleaved(ready, cfg.repeats)
        for method, prepared in ready.items():
            rate = k * prepared.steps / best[method]
            found[method] |= {
                "status": "ok",
                "seconds": best[method],
                "warmup_s": prepared.warmup_s,
                "steps": prepared.steps,
                "strategy": prepared.strategy,
                "model_steps_per_s": rate,
            }
            seen[method] = rate
        rows.extend(found.values())
        bar.update(len(cfg.methods))
    bar.close()
    frame = pd.DataFrame(rows).reindex(columns=list(COLUMNS))
    frame["strategy"] = frame["strategy"].fillna("").astype(str)
    frame["note"] = frame["note"].fillna("").astype(str)
    for column in ("model_steps_per_s", "seconds", "warmup_s"):
        frame[column] = frame[column].astype(float)
    return frame
