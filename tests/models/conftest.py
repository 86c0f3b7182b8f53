"""Fixtures for the model tests: a registry that each test may change freely."""

import pytest

from phosjax.models import _registry


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> dict:
    """A private copy of the model registry (and of the loaded entry points) for one test."""
    models = dict(_registry._REGISTRY)
    monkeypatch.setattr(_registry, "_REGISTRY", models)
    monkeypatch.setattr(_registry, "_LOADED_ENTRY_POINTS", set())
    return models
