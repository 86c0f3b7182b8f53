"""Imported by a bench command (``--import tests.bench.toy_datasets``), as a test running it
in another process cannot patch it: the bench's data sets are ``toy``
(`tests.bench.runner_tiny.toy_data`), whatever its config names."""

import pytest

from tests.bench.runner_tiny import fake_toy_datasets

fake_toy_datasets(pytest.MonkeyPatch())  # never undone
