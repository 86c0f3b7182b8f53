"""Fixtures of the engine tests: a toy data set."""

import pytest

from phosjax.data import ArrayDataset
from tests.train.tiny import toy_data


@pytest.fixture(scope="session")
def toy() -> ArrayDataset:
    return toy_data()
