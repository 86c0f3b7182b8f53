"""Fixtures of the bench runner tests: a toy data set and tiny configs; the stop signals
handled as in a command."""

import signal
from collections.abc import Iterator

import pytest

from phosjax.bench import _interrupt
from phosjax.data import ArrayDataset
from tests.bench.runner_tiny import toy_data


@pytest.fixture(scope="session")
def toy() -> dict[str, ArrayDataset]:
    return {"toy": toy_data()}


@pytest.fixture
def stop_signals_handled() -> Iterator[None]:
    """SIGTERM and SIGHUP handled in this process as a phosjax command handles them
    (`phosjax.bench._interrupt.STOP_SIGNALS`), their handlers as before after."""
    handler = _interrupt._stop_after_extension_init
    previous = {signum: signal.signal(signum, handler) for signum in _interrupt.STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handled in previous.items():
            signal.signal(signum, handled)
