"""A CNN grid's bare step with XLA's convolutions and with convolutions as matmuls.

For each convolutional model of the speed bench and each K, times (interleaved rounds,
`_rounds.time_rounds`) the bare Adam step of `phosjax.bench._speed_methods.setup_model`:

* ``vmap``: ``jax.jit(jax.vmap(step))``: XLA makes each convolution a grouped one;
* ``vmap_matmul``: the same of ``convs_as_matmuls(step)``: batched matrix products,
  the backward pass's convolutions (those JAX derives) rewritten one by one;
* ``vmap_matmul_fwd``: the step of ``convs_as_matmuls(loss)``: the forward pass rewritten,
  then differentiated (its matrix products' gradients: matrix products and sums of slices);
* ``fused``, ``fused_matmul`` and ``fused_matmul_fwd``: ONE model on batch K x B, each way
  (the first is the ceiling).

It prints model-steps/s, the ratios to ``fused``, what XLA's cost analysis of each
compiled step counts (GFLOP and GB accessed per model-step; TFLOP/s reached) and the
memory the step needs (`program_bytes`, GiB)::

    python benchmarks/conv_forms.py                        # cnn1d, cnn2d; K = 8, 64
    python benchmarks/conv_forms.py --models cnn2d --sizes 64 --dtype bfloat16
"""

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from _rounds import add_models, add_rounds, time_rounds

from phosjax.bench._speed_config import SpeedConfig
from phosjax.bench._speed_methods import (
    Setup,
    _batches,
    _repeat,
    _stack,
    adam_step,
    setup_model,
)
from phosjax.bench._speed_report import _rate
from phosjax.train import convs_as_matmuls
from phosjax.train._strategy import program_bytes

VARIANTS = tuple(
    f"{way}{form}" for way in ("vmap", "fused") for form in ("", "_matmul", "_matmul_fwd")
)


def variants(
    setup: Setup,
    k: int,
    cfg: SpeedConfig,
    forms: Sequence[str] = VARIANTS,
    grids: dict[str, Callable[[Setup], Callable[..., Any]]] | None = None,
) -> dict[str, Any]:
    """Each variant's ``(run, compiled, compile seconds)``: ``run()`` takes ``cfg.steps``
    steps of all K models (`_repeat`, as the speed bench's ``vmap`` and ``fused``).

    ``forms``: those of `VARIANTS` to make; ``grids``: more variants, each a step of all
    K models at once made from the setup, taking the stacked states and batches as the
    ``vmap`` forms do."""
    x, y = (jax.device_put(a) for a in _batches(setup, k, cfg.batch))
    stacked = jax.device_put(_stack(setup.states(k)))
    one = jax.device_put(setup.states(1)[0])
    flat = x.reshape(k * cfg.batch, *x.shape[2:]), y.reshape(-1)
    steps = {
        "": setup.step,
        "_matmul": convs_as_matmuls(setup.step),
        "_matmul_fwd": adam_step(convs_as_matmuls(setup.loss)),
    }
    made = {}
    calls = {}
    for variant in forms:
        step = steps[variant.removeprefix("vmap").removeprefix("fused")]
        batched = variant.startswith("vmap")
        calls[variant] = (jax.vmap(step), (stacked, x, y)) if batched else (step, (one, *flat))
    for variant, make in (grids or {}).items():
        calls[variant] = make(setup), (stacked, x, y)
    for variant, (fn, args) in calls.items():
        start = time.perf_counter()
        compiled = jax.jit(fn, donate_argnums=0).lower(*args).compile()
        compile_s = time.perf_counter() - start
        state = jax.tree.map(jnp.copy, args[0])  # donated: a copy of its own
        made[variant] = _repeat(compiled, state, cfg, *args[1:]).run, compiled, compile_s
    return made


def _cost(compiled: Any) -> tuple[float, float]:
    """``(flops, bytes accessed)`` of one call, as XLA's cost analysis counts them."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost or {}
    return float(cost.get("flops", np.nan)), float(cost.get("bytes accessed", np.nan))


def print_header(dtype: str) -> None:
    """The device and the columns of `report`'s rows."""
    print(f"backend={jax.default_backend()} device={jax.devices()[0].device_kind} {dtype}")
    print(
        f"{'model':<7}{'K':>4} {'variant':<21}{'model-steps/s':>14}{'/fused':>8}"
        f"{'GFLOP/step':>11}{'GB/step':>8}{'TFLOP/s':>9}{'GiB':>7}{'compile s':>10}"
    )


def report(name: str, k: int, made: dict[str, Any], rounds: int, steps: int) -> None:
    """Times the `variants` in ``made`` and prints a row each (``/fused``: nan without it)."""
    runs = {variant: run for variant, (run, *_) in made.items()}
    best = {v: min(ts) for v, ts in time_rounds(runs, rounds, steps).items()}
    for variant, (_, compiled, compile_s) in made.items():
        flops, moved = _cost(compiled)  # one call: a step of all K models
        seconds = best[variant] * 1e-6
        print(
            f"{name:<7}{k:>4} {variant:<21}{_rate(k / seconds):>14}"
            f"{best.get('fused', np.nan) / best[variant]:>8.2f}{flops / k / 1e9:>11.3f}"
            f"{moved / k / 1e9:>8.3f}{flops / seconds / 1e12:>9.2f}"
            f"{program_bytes(compiled) / 2**30:>7.2f}{compile_s:>10.1f}"
        )


def _sizes(text: str) -> list[int]:
    """``--sizes``' comma-separated whole numbers; another is a usage error, before any run."""
    try:
        sizes = [int(size) for size in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not comma-separated whole numbers: {text!r}") from None
    if min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"a grid size must be 1 or more, got {text!r}")
    return sizes


def add_grid_options(parser: argparse.ArgumentParser, rounds: int) -> None:
    """The options of a timed grid's run, shared with pallas_conv.py: ``--sizes``,
    ``--dtype``, ``--batch``, ``--steps`` and ``--rounds`` (``rounds`` by default)."""
    parser.add_argument(
        "--sizes",
        default="8,64",
        type=_sizes,
        help="the grid sizes K, comma-separated (%(default)s)",
    )
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=("float32", "bfloat16"),
        help="compute dtype (%(default)s)",
    )
    parser.add_argument(
        "--batch", type=int, default=128, help="examples per cell per step (%(default)s)"
    )
    parser.add_argument("--steps", type=int, default=20, help="steps per timed call (%(default)s)")
    add_rounds(parser, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_models(parser, "cnn1d,cnn2d")
    add_grid_options(parser, rounds=5)
    args = parser.parse_args()
    cfg = SpeedConfig(steps=args.steps, batch=args.batch, compute_dtype=args.dtype)
    print_header(args.dtype)
    for name in args.models:
        setup = setup_model(name, cfg)
        for k in args.sizes:
            report(name, k, variants(setup, k, cfg), args.rounds, args.steps)


if __name__ == "__main__":
    main()
