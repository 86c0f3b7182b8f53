"""The methods of the speed bench, each set up for one (model, K) and warmed up.

Every method is an Adam step on a synthetic batch already on the device: ``one_by_one``
(one jitted step per model, model after model), ``vmap`` (``jax.jit(jax.vmap(step))``
over stacked params), ``engine`` (`phosjax.train` on real `Cell`\\ s, one `run_group`
call per timed run), ``fused`` (ONE model on batch ``K x batch``: the ceiling) and
``torch`` (``torch.func.vmap``, when torch is importable). `PREPARE` maps a method to a
function ``(setup, K, config) -> Ready``; `phosjax.bench._speed.measure` times them.
"""

import dataclasses
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from phosjax.bench import _speed_torch
from phosjax.bench._speed_config import MODELS, SpeedConfig
from phosjax.bench._speed_report import _rate
from phosjax.data import ArrayDataset, random_dataset
from phosjax.models import ModelConfig
from phosjax.train import Cell, HParams, init_group, plan_groups, precision_apply, run_group
from phosjax.train._strategy import PREFETCH_BYTES, program_bytes

LEARNING_RATE = 1e-3
ENGINE_CHUNK = 100
"""The engine's steps per dispatch (``chunk_steps``), at most; `run_group`'s default."""
ENGINE_HORIZON = 2**30
"""The engine cells' ``steps``: more than any timing takes, so none ends on an evaluation."""


class Failed(Exception):
    """A measurement that raised (only the untested-here torch path is caught)."""


@dataclasses.dataclass
class Setup:
    """What every method of one model shares: the model, its step, its compiled step."""

    name: str
    config: ModelConfig
    init: Callable[[jax.Array], Any]  # jitted: key -> (params, opt_state)
    loss: Callable[..., jax.Array]  # (params, x, y) -> mean loss
    step: Callable[..., Any]  # adam_step(loss): (state, x, y) -> state
    compiled: Any  # the one-model step, compiled ahead of time with donation
    bytes_per_model: int
    compile_s: float  # seconds tracing and compiling ``compiled``
    hosts: list[Any] = dataclasses.field(default_factory=list)  # initial states, numpy

    def states(self, k: int) -> list[Any]:
        """K initial (params, opt_state) on the host: one compiled init, called K times."""
        while len(self.hosts) < k:  # rbg keys: XLA compiles them faster than threefry
            key = jax.random.key(len(self.hosts), impl="rbg")
            self.hosts.append(jax.device_get(self.init(key)))
        return self.hosts[:k]


ADAM = optax.adam(LEARNING_RATE)


def adam_step(loss: Callable[..., jax.Array]) -> Callable[..., Any]:
    """The bench's step of ``loss(params, x, y)``: ``(params, opt_state), x, y -> state``."""

    def step(state: Any, x: jax.Array, y: jax.Array) -> Any:
        params, opt_state = state
        updates, opt_state = ADAM.update(jax.grad(loss)(params, x, y), opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    return step


def setup_model(name: str, cfg: SpeedConfig) -> Setup:
    config = MODELS[name]
    model = config.build()
    apply = precision_apply(model, cfg.compute_dtype)

    def init(key: jax.Array) -> Any:
        params = model.init(key, jnp.zeros((1, *config.input_shape)), train=False)["params"]
        return params, ADAM.init(params)

    def loss(params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
        logits = apply({"params": params}, x, train=True)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    step = adam_step(loss)
    shapes = (
        jax.eval_shape(init, jax.random.key(0, impl="rbg")),
        jax.ShapeDtypeStruct((cfg.batch, *config.input_shape), jnp.float32),
        jax.ShapeDtypeStruct((cfg.batch,), jnp.int32),
    )
    start = time.perf_counter()
    compiled = jax.jit(step, donate_argnums=0).lower(*shapes).compile()
    compile_s = time.perf_counter() - start
    size = program_bytes(compiled)
    bytes_per_model = 0 if math.isnan(size) else int(size)
    return Setup(name, config, jax.jit(init), loss, step, compiled, bytes_per_model, compile_s)


def _batches(setup: Setup, k: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """K random batches on the host (numpy: nothing to compile), ``(K, batch, ...)``."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(k, batch, *setup.config.input_shape)).astype(np.float32)
    return x, rng.integers(0, setup.config.num_classes, (k, batch)).astype(np.int32)


def _stack(trees: list[Any]) -> Any:
    return jax.tree.map(lambda *leaves: np.stack(leaves), *trees)


def timed(run: Callable[[], Any]) -> float:
    start = time.perf_counter()
    jax.block_until_ready(run())
    return time.perf_counter() - start


@dataclasses.dataclass
class Ready:
    """A method set up for one (model, K), compiled and warmed up, not yet timed.

    Attributes:
      run: trains every model ``steps`` more steps and returns what to block on.
      warmup_s: seconds of compiling and the first call (for the engine also ``"auto"``;
        ``one_by_one``'s step, compiled once per model in `setup_model`, counts in each K).
      steps: steps per ``run`` call.
      strategy: the engine's strategy ("" for the other methods).
      note: what the row's reader should know (torch: the warnings of its warm-up).
    """

    run: Callable[[], Any]
    warmup_s: float
    steps: int
    strategy: str = ""
    note: str = ""


def _one_by_one(setup: Setup, k: int, cfg: SpeedConfig) -> Ready:
    x, y = _batches(setup, k, cfg.batch)
    xs, ys = [jax.device_put(a) for a in x], [jax.device_put(a) for a in y]
    states = [jax.device_put(state) for state in setup.states(k)]
    start = time.perf_counter()  # compiled already: one call, its input donated
    states[0] = jax.block_until_ready(setup.compiled(states[0], xs[0], ys[0]))
    warmup = setup.compile_s + time.perf_counter() - start

    def run() -> Any:
        for i in range(k):
            state = states[i]
            for _ in range(cfg.steps):
                state = setup.compiled(state, xs[i], ys[i])
            states[i] = state
        return states

    return Ready(run, warmup, cfg.steps)


def _repeat(step: Callable[..., Any], state: Any, cfg: SpeedConfig, *args: Any) -> Ready:
    box = [jax.device_put(state)]
    args = tuple(jax.device_put(a) for a in args)

    def call() -> Any:
        box[0] = step(box[0], *args)
        return box[0]

    warmup = timed(call)

    def run() -> Any:
        for _ in range(cfg.steps):
            call()
        return box[0]

    return Ready(run, warmup, cfg.steps)


def _vmap(setup: Setup, k: int, cfg: SpeedConfig) -> Ready:
    step = jax.jit(jax.vmap(setup.step), donate_argnums=0)
    return _repeat(step, _stack(setup.states(k)), cfg, *_batches(setup, k, cfg.batch))


def _fused(setup: Setup, k: int, cfg: SpeedConfig) -> Ready:
    x, y = _batches(setup, k, cfg.batch)
    x, y = x.reshape(k * cfg.batch, *x.shape[2:]), y.reshape(-1)
    step = jax.jit(setup.step, donate_argnums=0)
    return _repeat(step, setup.states(1)[0], cfg, x, y)


def engine_steps(steps: int) -> tuple[int, int]:
    """The engine's steps per dispatch (its chunk) and per timed run (whole chunks: one
    compiled program) when each method is to run ``steps``.

    Examples:
      >>> engine_steps(10), engine_steps(150)
      ((10, 10), (100, 200))
    """
    chunk = min(steps, ENGINE_CHUNK)
    return chunk, -(-steps // chunk) * chunk


def gathered_bytes(setup: Setup, k: int, cfg: SpeedConfig) -> int:
    """The examples the engine's K cells gather besides their states: a chunk's, before
    its steps, when they fit in `PREFETCH_BYTES`; else each step's batch in that step."""
    batch = k * cfg.batch * 4 * (math.prod(setup.config.input_shape) + 1)  # float32 x, label
    chunk = engine_steps(cfg.steps)[0] * batch
    return chunk if chunk <= PREFETCH_BYTES else batch


def synthetic_data(config: ModelConfig, batch: int) -> ArrayDataset:
    """A random data set shaped for ``config``: ``max(2 * batch, 256)`` train examples."""
    n = max(2 * batch, 256)
    return random_dataset(
        "speed-synthetic", config.input_shape, config.num_classes, num_train=n, num_test=16
    )


def _engine(setup: Setup, k: int, cfg: SpeedConfig) -> Ready:
    data = synthetic_data(setup.config, cfg.batch)
    chunk, steps = engine_steps(cfg.steps)
    hp = HParams(  # timing never reaches the last step: no evaluation is timed
        learning_rate=LEARNING_RATE,
        batch_size=cfg.batch,
        steps=ENGINE_HORIZON,
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

    return Ready(run, warmup, steps, first.strategy, _timings_note(first.timings, k))


def _timings_note(timings: dict[str, float], k: int) -> str:
    """What ``strategy="auto"`` measured, in model-steps/s: ``auto: vmap 1,200, map 900``.

    Examples:
      >>> _timings_note({"vmap": 0.004, "map": 0.008}, 8)
      'auto: vmap 2,000, map 1,000'
      >>> _timings_note({}, 8)
      ''
    """
    rates = ", ".join(f"{name} {_rate(k / seconds)}" for name, seconds in timings.items())
    return f"auto: {rates}" if rates else ""


def _torch(setup: Setup, k: int, cfg: SpeedConfig) -> Ready:
    """torch.func.vmap; its warm-up's warnings (e.g. an op without a batching rule, run in
    a loop over the models) go to the row's note."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run, warmup = _speed_torch.prepare(
                setup.name,
                k,
                cfg.batch,
                cfg.steps,
                setup.config.input_shape,
                cfg.compute_dtype,
                jax.default_backend(),
            )
    except Exception as error:  # keep every other row of a long run
        raise Failed(f"{type(error).__name__}: {error}") from error
    said = dict.fromkeys(str(w.message).split(" (Triggered internally")[0] for w in caught)
    return Ready(run, warmup, cfg.steps, note=" | ".join(f"torch warned: {m}" for m in said))


PREPARE: dict[str, Callable[[Setup, int, SpeedConfig], Ready]] = {
    "one_by_one": _one_by_one,
    "vmap": _vmap,
    "engine": _engine,
    "fused": _fused,
    "torch": _torch,
}
