"""Grid speed: model-steps per second of K small models trained by five methods, one run.

For each (model, K) every method (`phosjax.bench._speed_methods`) is set up and warmed up
(its first call compiles), then timed ``repeats`` times with ``jax.block_until_ready``,
the methods taking turns so that load on the machine hits them alike; each method's
fastest timing counts. A timing lasts at least ``min_time`` seconds (calls of a fast
method are repeated), so that no method is timed over a few milliseconds, where the
fastest of a few samples is mostly luck. A size that would not fit in the device's
memory, or whose estimated time exceeds ``budget`` seconds, is skipped (a row with
``status="skipped"`` and the reason in ``note``).
"""

import dataclasses
import functools
import math
from collections.abc import Callable, Iterator
from typing import Any

import jax
import pandas as pd
import psutil

from phosjax.bench import _speed_torch
from phosjax.bench._progress import REDRAW_EVERY, EstimatedBar
from phosjax.bench._speed_config import METHODS, MODELS, SpeedConfig
from phosjax.bench._speed_left import CasesLeft, timing_seconds
from phosjax.bench._speed_methods import (
    PREPARE,
    Failed,
    Ready,
    Setup,
    engine_steps,
    gathered_bytes,
    setup_model,
    timed,
)
from phosjax.train import STRATEGIES

__all__ = ["COLUMNS", "METHODS", "MODELS", "Failed", "Skip", "SpeedConfig", "measure"]

COLUMNS = (
    "model",
    "K",
    "method",
    "status",
    "model_steps_per_s",
    "seconds",
    "warmup_s",
    "steps",
    "calls",
    "batch",
    "compute_dtype",
    "strategy",
    "backend",
    "device",
    "note",
)
"""The columns of ``speed.parquet``: one row per (model, K, method); docs/performance.md
says what each holds."""

_AUTO_STEPS = len(STRATEGIES) * 4 * 10  # "auto": a call of 10 steps to compile, 3 timed


@dataclasses.dataclass(frozen=True)
class Timing:
    """A method's fastest timing: its ``seconds`` for ``calls`` calls of its ``run``."""

    seconds: float
    calls: int


class Skip(Exception):
    """A measurement that was not made; the message says why."""


def _available_bytes(device: jax.Device) -> int:
    stats = device.memory_stats() or {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    return int(psutil.virtual_memory().available)


def _check(setup: Setup, k: int, method: str, cfg: SpeedConfig, rates: dict[str, Any]) -> None:
    """Raises `Skip` when K models would not fit in the memory left (the methods set up
    before for this K hold theirs; the engine also its gathered chunk) or would take
    longer than the budget."""
    need, free = 2 * k * setup.bytes_per_model, _available_bytes(jax.devices()[0])
    need += gathered_bytes(setup, k, cfg) if method == "engine" else 0
    if need > 0.9 * free:
        raise Skip(f"would not fit: ~{need / 2**30:.1f} GiB needed, {free / 2**30:.1f} GiB free")
    previous = rates.get(method)
    if not cfg.budget or method not in rates:  # no budget: nor need a smaller K be measured
        return
    if previous is None:
        raise Skip("a smaller K of this method was not measured (skipped or failed)")
    call = k * _steps(method, cfg)[0] / previous
    if _over_budget(cfg, method, call):
        raise Skip(f"estimated {_estimated(method, call, cfg):.3g} s > budget {cfg.budget:g} s")


def _steps(method: str, cfg: SpeedConfig) -> tuple[int, int]:
    """``method``'s steps per call, and those warming it up before its timings."""
    if method != "engine":
        return cfg.steps, 1
    chunk, steps = engine_steps(cfg.steps)  # whole chunks; its warm-up a chunk and auto's
    auto = _AUTO_STEPS if cfg.strategy == "auto" else 0  # a strategy given: none timed
    return steps, 1 + chunk + auto


def _estimated(method: str, call: float, cfg: SpeedConfig) -> float:
    """The seconds that ``method``, a call of which takes ``call`` seconds, is warmed up
    and timed for: what `_check` holds against the budget."""
    steps, warmup = _steps(method, cfg)
    return timing_seconds(call, cfg.repeats, cfg.min_time) + call * warmup / steps


def _over_budget(cfg: SpeedConfig, method: str, call: float) -> bool:
    """Whether the budget skips ``method`` where a call of it takes ``call`` seconds: the
    one rule of `_check` and of the time left (`CasesLeft`'s ``skipped``)."""
    return bool(cfg.budget) and _estimated(method, call, cfg) > cfg.budget


def _cases(cfg: SpeedConfig) -> Iterator[tuple[str, int]]:
    for name in cfg.models:
        for k in sorted(cfg.sizes):
            yield name, k


def _repeated(run: Callable[[], Any], calls: int) -> Callable[[], Any]:
    def repeated() -> Any:
        for _ in range(calls - 1):
            run()
        return run()  # each call continues the last one's state: blocking on it waits for all

    return repeated


def _calibrated(run: Callable[[], Any], min_time: float) -> Timing:
    """How many calls of ``run`` a timing needs to last ``min_time`` seconds, and the first
    timing that lasted so long. One call is timed first; a timing that falls short (its
    count came from a call slower than the rest) sizes the count again."""
    calls, seconds = 1, timed(run)
    while seconds < min_time:
        calls = max(calls + 1, math.ceil(calls * min_time / max(seconds, 1e-9)))
        seconds = timed(_repeated(run, calls))
    return Timing(seconds, calls)


def _interleaved(ready: dict[str, Ready], repeats: int, min_time: float) -> dict[str, Timing]:
    """The fastest of ``repeats`` timings of each method, the methods taking turns (round
    after round), so that a spell of load on the machine hits them alike. A timing makes
    enough calls of the method's ``run`` to last ``min_time`` seconds; the calibration's
    last timing (`_calibrated`) is the first of the ``repeats``."""
    calls, samples = {}, {}
    for method, prepared in ready.items():
        first = _calibrated(prepared.run, min_time)
        calls[method], samples[method] = first.calls, [first.seconds]
    for _ in range(repeats):
        for method, prepared in ready.items():
            if len(samples[method]) < repeats:
                samples[method].append(timed(_repeated(prepared.run, calls[method])))
    return {method: Timing(min(samples[method]), calls[method]) for method in ready}


def measure(
    cfg: SpeedConfig,
    progress: bool = True,
    on_case: Callable[[pd.DataFrame], None] | None = None,
) -> pd.DataFrame:
    """Runs every (model, K, method) of ``cfg``; one row each, with the `COLUMNS`.

    ``on_case`` gets the frame so far after each (model, K), e.g. to write it: a run
    cut off later keeps what it measured.

    Examples:
      >>> cfg = SpeedConfig(models=("mlp",), sizes=(1, 8), steps=1, batch=4, methods=("vmap",))
      >>> frame = measure(cfg, progress=False)  # doctest: +SKIP
      >>> frame[["model", "K", "method", "status"]].values.tolist()  # doctest: +SKIP
      [['mlp', 1, 'vmap', 'ok'], ['mlp', 8, 'vmap', 'ok']]
    """
    device = jax.devices()[0]
    common = {
        "steps": cfg.steps,
        "batch": cfg.batch,
        "compute_dtype": cfg.compute_dtype,
        "backend": jax.default_backend(),
        "device": device.device_kind,
    }
    rows: list[dict[str, Any]] = []
    setups: dict[str, Setup] = {}
    rates: dict[str, dict[str, float | None]] = {}
    cases = list(_cases(cfg))
    left = CasesLeft(cases, cfg.repeats, cfg.min_time, skipped=functools.partial(_over_budget, cfg))
    with EstimatedBar(
        total=len(cases) * len(cfg.methods),
        seconds_left=left.seconds,
        disable=not progress,
        mininterval=0,  # a log's: a line per model and size
        desc="speed",
        unit="run",
    ) as bar:  # closed before a Ctrl-C's or an error's line
        bar.keep_redrawn(REDRAW_EVERY)  # a case takes a minute: its time left counts down
        for name, k in cases:
            bar.show_postfix(f"{name} K={k}")
            seen = rates.setdefault(name, {})
            ready, found = {}, {}
            for method in cfg.methods:
                found[method] = {"model": name, "K": k, "method": method, **common}
                try:
                    if method == "torch" and (why := _speed_torch.unavailable()):  # pre-compile
                        raise Skip(f"{why}: install torch to compare")
                    if name not in setups:
                        with left.setting_up():
                            setups[name] = setup_model(name, cfg)
                    _check(setups[name], k, method, cfg, seen)
                    with left.setting_up(method):
                        ready[method] = PREPARE[method](setups[name], k, cfg)
                except (Skip, Failed) as error:
                    status = "skipped" if isinstance(error, Skip) else "failed"
                    found[method] |= {"status": status, "note": str(error)}
                    seen[method] = None
            best = _interleaved(ready, cfg.repeats, cfg.min_time)
            for method, prepared in ready.items():
                calls = best[method].calls
                rate = k * prepared.steps * calls / best[method].seconds
                found[method] |= {
                    "status": "ok",
                    "seconds": best[method].seconds,
                    "warmup_s": prepared.warmup_s,
                    "steps": prepared.steps,
                    "calls": calls,
                    "strategy": prepared.strategy,
                    "note": prepared.note,
                    "model_steps_per_s": rate,
                }
                seen[method] = rate
            rows.extend(found.values())
            with bar.get_lock():  # not as a redraw reads it (its dicts changing size)
                left.case_done({m: timing.seconds / timing.calls for m, timing in best.items()})
            bar.update(len(cfg.methods))
            if on_case is not None:
                on_case(_frame(rows))
    return _frame(rows)


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows).reindex(columns=list(COLUMNS))
    for column in ("strategy", "note"):  # no row has one (no engine): float NaN, cast first
        frame[column] = frame[column].astype(object).fillna("").astype(str)
    for column in ("model_steps_per_s", "seconds", "warmup_s"):
        frame[column] = frame[column].astype(float)
    frame["calls"] = frame["calls"].astype("Int64")
    return frame
