"""What the engine's caches are keyed by: a cached result is reused only where it holds."""

import collections

import jax
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

    monkeypatch.setattr(_auto, "_CHOICES", collections.OrderedDict())
    monkeypatch.setattr(_auto, "measure_strategies", measure)
    monkeypatch.setattr(_run, "Executor", chosen)
    [group] = plan_groups([Cell(Tiny(), "toy", HParams(batch_size=16, steps=1), seed=0)])
    for train in (64, 32, 64, 32):
        data = toy_data(train=train)
        with pytest.raises(_Chosen, match=r"^map$"):
            run_group(group, init_group(group, data), data, strategy="auto")
    assert measured == [(64, 8), (32, 8)]  # each size once


def test_auto_choices_are_keyed_by_the_trace_config_and_bounded(monkeypatch):
    """The choice measured without x64 was reused under x64 (other programs), and every
    choice was kept for the life of the process; now both as the other caches do."""
    measured = []

    def measure(signature, make_step, state, arrays, **options):
        measured.append((signature, jax.config.values["jax_enable_x64"]))
        return {"vmap": 1.0}

    monkeypatch.setattr(_auto, "_CHOICES", collections.OrderedDict())
    monkeypatch.setattr(_auto, "INIT_PROGRAMS_KEPT", 2)
    monkeypatch.setattr(_auto, "measure_strategies", measure)
    monkeypatch.setattr(_auto, "candidates", lambda *args: ("vmap",))

    def choose(signature):
        options = dict(data_shapes=(), num_cells=1, devices=jax.devices())
        return _auto.choose_strategy(signature, lambda: None, None, dict, **options)

    choose("a")
    with jax.enable_x64(True):
        choose("a")
    choose("b")  # drops ("a", no x64), the least recently used
    choose("a")
    assert measured == [("a", False), ("a", True), ("b", False), ("a", False)]
    assert len(_auto._CHOICES) == 2
