"""Fixtures for the model tests: a registry that each test may change freely."""

import jax
import pytest

from phosjax.models import _registry


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> dict:
    """A private copy of the model registry (with which module registered each name, and
    the loaded entry points) for one test."""
    models = dict(_registry._REGISTRY)
    monkeypatch.setattr(_registry, "_REGISTRY", models)
    monkeypatch.setattr(_registry, "_RUN_BY", dict(_registry._RUN_BY))
    monkeypatch.setattr(_registry, "_LOADED_ENTRY_POINTS", set())
    return models


@pytest.fixture
def rbg_key() -> jax.Array:
    """A key of the ``rbg`` implementation: on CPU, a model's init compiles ~10x faster
    than with the default threefry key, which dominates these tests' run time."""
    return jax.random.key(0, impl="rbg")
