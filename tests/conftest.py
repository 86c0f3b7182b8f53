"""Shared test set-up: four fake CPU devices, a key fixture, a shared data dir."""

import os

# Must be set before jax initializes its backends: tests of sharding see 4 CPU devices.
# The tests' programs are tiny and compiling them dominates their time: without LLVM's
# optimizations (level 0) the suite runs about a quarter faster, and each equivalence
# compares programs compiled alike.
os.environ.setdefault(
    "XLA_FLAGS", "--xla_force_host_platform_device_count=4 --xla_backend_optimization_level=0"
)
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import pytest


@pytest.fixture
def key() -> jax.Array:
    # rbg keys: on CPU, programs that draw random numbers (every init) compile about 2x faster
    # than with the default threefry keys.
    return jax.random.key(0, impl="rbg")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One TFDS data dir for the whole session (data sets are prepared once per worker)."""
    return os.environ.get("PHOSJAX_TEST_DATA_DIR") or str(tmp_path_factory.mktemp("tfds"))
