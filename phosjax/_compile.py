"""`jit_run_once`: jit a program that runs once, compiled cheaply on CPU."""

import os
from collections.abc import Callable
from typing import Any

import jax

# A program that runs once (a group's init, a probe) runs for milliseconds, while XLA:CPU's
# default (LLVM -O3) spends seconds optimising it: -O1 compiled the example bench's init
# programs 3-5x faster, to bitwise the same states (docs/performance.md).
RUN_ONCE_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


def run_once_compiler_options(backend: str, xla_flags: str) -> dict[str, int] | None:
    """`RUN_ONCE_COMPILER_OPTIONS` on CPU, unless ``xla_flags`` (``XLA_FLAGS``) sets the
    optimization level itself: then every program, these too, is compiled at that level.

    Examples:
      >>> run_once_compiler_options("cpu", "--xla_force_host_platform_device_count=4")
      {'xla_backend_optimization_level': 1}
      >>> run_once_compiler_options("cpu", "--xla_backend_optimization_level=0") is None
      True
      >>> run_once_compiler_options("gpu", "") is None
      True
    """
    if backend != "cpu" or "--xla_backend_optimization_level" in xla_flags:
        return None
    return RUN_ONCE_COMPILER_OPTIONS


def jit_run_once(fn: Callable[..., Any]) -> Any:
    """``jax.jit(fn)`` compiled with `run_once_compiler_options` of the default backend and
    ``XLA_FLAGS``: for a program run once, called outside any trace (jax refuses compiler
    options on a jit nested in another trace)."""
    options = run_once_compiler_options(jax.default_backend(), os.environ.get("XLA_FLAGS", ""))
    return jax.jit(fn, compiler_options=options)
