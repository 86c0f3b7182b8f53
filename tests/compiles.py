"""The XLA programs compiled while a block of a test runs, counted through JAX's
monitoring events (each compile reports its duration)."""

import contextlib
from collections.abc import Iterator

import jax

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@contextlib.contextmanager
def compiles_seen() -> Iterator[list[float]]:
    """A list that gets the seconds of each program XLA compiles inside the block.

    Examples:
      >>> import numpy as np
      >>> x = np.arange(37.0)  # made by NumPy: no program
      >>> with compiles_seen() as compiled:
      ...     _ = jax.jit(lambda x: x * 3.0 + 1.0)(x)
      >>> len(compiled)
      1
    """
    compiled: list[float] = []

    def listen(name: str, seconds: float, **_: object) -> None:
        if name == COMPILE_EVENT:
            compiled.append(seconds)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        yield compiled
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
