"""Fixtures of the bench runner tests: a toy data set and tiny configs; the stop signals
handled as in a command; a headless Chromium per module and a page of it per test (the
viewer's browser tests)."""

import signal
from collections.abc import Iterator

import pytest

from phosjax.bench import _interrupt
from phosjax.data import ArrayDataset
from tests.bench._chromium import Browser, Page
from tests.bench.runner_tiny import toy_data

collect_ignore = ["toy_datasets.py"]
"""Not collected (its doctests neither): importing it patches the bench's data sets for
good, as a command given ``--import tests.bench.toy_datasets`` wants, which a test process
must not."""


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


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A headless Chromium for the module's pages, started again where it ended."""
    started: list[Browser] = []

    def running() -> Browser:
        if not started or not started[-1].running:
            started.append(Browser(tmp_path_factory.mktemp("cdp-profile")))
        return started[-1]

    try:
        yield running
    finally:
        for each in started:
            each.close()


@pytest.fixture
def page(browser):
    """A page of the module's browser, in a browser context of its own, closed after."""
    opened = Page(browser())
    try:
        yield opened
    finally:
        opened.close()
