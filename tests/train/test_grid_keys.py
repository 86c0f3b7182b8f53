"""What the engine's caches are keyed by: a cached result is reused only where it holds."""

import jax

from phosjax.train import _auto
from phosjax.train._run import SPLITS
from tests.train.tiny import toy_data


def test_auto_measures_again_for_a_data_set_of_the_same_name_but_another_size(monkeypatch):
    """The choice measured on 64 examples was reused for 32 of the same name ("toy")."""
    measured = []

    def measure(signature, make_step, state, arrays, **options):
        measured.append(arrays)
        return {"vmap": 1.0}

    monkeypatch.setattr(_auto, "_CHOICES", {})
    monkeypatch.setattr(_auto, "measure_strategies", measure)
    monkeypatch.setattr(_auto, "candidates", lambda step, state, arrays: ("vmap",))
    for train in (64, 32, 64, 32):
        data = toy_data(train=train)
        choice = _auto.choose_strategy(
            ("a group's signature",),
            lambda: None,
            {"state": None},
            lambda data=data: data.x_train.shape,
            data_shapes=_auto.split_shapes(data, SPLITS),
            num_cells=1,
            devices=jax.devices()[:1],
        )
        assert choice == ("vmap", {"vmap": 1.0})
    assert measured == [(64, 8), (32, 8)]  # each size once
