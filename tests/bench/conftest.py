"""Fixtures of the bench runner tests: a toy data set and tiny configs."""

import pytest

from phosjax.data import ArrayDataset
from tests.bench.runner_tiny import toy_data


@pytest.fixture(scope="session")
def toy() -> dict[str, ArrayDataset]:
    return {"toy": toy_data()}
