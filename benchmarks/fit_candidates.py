"""How long does `fit_config` take to find the configs that can express a model?

Run: ``python benchmarks/fit_candidates.py`` (in a fresh process: XLA compiles a program
once per process; run it on two checkouts to compare them)

Times `phosjax.morph._fit._candidates` of a few zoo configs (a config split into one stage
per block is a candidate when `same_function` finds it computes the same), after jax has
started, and counts the programs XLA compiled for it.
"""

import argparse
import time

import jax
import jax.numpy as jnp

from phosjax.models import ModelConfig
from phosjax.morph._fit import _candidates

CONFIGS = {
    "mlp": ModelConfig("mlp", 10, (40,), depth=3, width=64),
    "cnn1d": ModelConfig("cnn1d", 10, (40,), depth=3, width=25),
}


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # no options: --help
    compiles = []
    event = "/jax/core/compile/backend_compile_duration"
    jax.monitoring.register_event_duration_secs_listener(
        lambda name, seconds, **_: compiles.append(seconds) if name == event else None
    )
    jax.block_until_ready(jnp.zeros(2) + 1)  # jax started
    for name, config in CONFIGS.items():
        before, start = len(compiles), time.perf_counter()
        found = _candidates(config)
        seconds = time.perf_counter() - start
        print(
            f"{name:<6} {seconds:6.2f} s  {len(compiles) - before:3d} programs  {len(found)} found"
        )


if __name__ == "__main__":
    main()
