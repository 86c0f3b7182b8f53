"""What the engine's caches are keyed by: a cached result is reused only where it holds."""

import pytest

from phosjax.train import Cell, HParams, _auto, _run, init_group, plan_groups, run_group
from tests.train.tiny import Tiny, toy_data


class _Chosen(Exception):
    """Raised where run_group would start to train with the strategy auto chose."""


def test_auto_measures_again_for_a_data_set_of_the_same_name_but_another_size(monkeypatch):
    """The choice measured on 64 examples was reused for 32 of the same name ("toy")."""
    measured = []

    def measure(signature, make_step, state, arrays, **options):
        measured.append(arrays["x_train"].shape)  # counted, not timed
        return {"vmap": 2.0, "map": 1.0}

    def chosen(strategy, *args, **kwargs):
        raise _Chosen(strategy)  # nothing compiled for training

    monkeypatch.setattr(_auto, "_CHOICES", {})
    monkeypatch.setattr(_auto, "measure_strategies", measure)
    monkeypatch.setattr(_run, "Executor", chosen)
    [group] = plan_groups([Cell(Tiny(), "toy", HParams(batch_size=16, steps=1), seed=0)])
    for train in (64, 32, 64, 32):
        data = toy_data(train=train)
        with pytest.raises(_Chosen, match=r"^map$"):
            run_group(group, init_group(group, data), data, strategy="auto")
    assert measured == [(64, 8), (32, 8)]  # each size once
