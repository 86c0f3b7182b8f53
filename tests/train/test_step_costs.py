"""benchmarks/step_costs.py times the parts of the engine's step."""

import jax.numpy as jnp

from phosjax.train import _step
from tests.benchmark_scripts import load_benchmark


def test_the_accuracy_timed_is_the_engines(monkeypatch):
    """It timed an argmax of its own, not the engine's `correct` (which also checks each
    row's logits for a NaN)."""
    monkeypatch.setattr(_step, "correct", lambda logits, labels: jnp.full(labels.shape, 7.0))
    benchmark = load_benchmark("step_costs")
    monkeypatch.setattr(benchmark, "STEPS", 2)
    _, metrics = benchmark.variants()["+ loss, accuracy"]()
    assert metrics["accuracy"].tolist() == [7.0, 7.0]
