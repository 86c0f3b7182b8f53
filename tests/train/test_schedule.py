"""Learning-rate schedules: the multiplier's curves, against optax's own schedules."""

import numpy as np
import optax
import pytest

from phosjax.train import lr_multiplier, make_optimizer

STEPS = np.arange(0, 13)


@pytest.mark.parametrize(
    ("schedule", "warmup", "reference"),
    [
        ("constant", 0, optax.constant_schedule(1.0)),
        ("constant", 4, optax.linear_schedule(0.0, 1.0, 4)),
        ("cosine", 0, optax.cosine_decay_schedule(1.0, 12)),
        ("cosine", 4, optax.warmup_cosine_decay_schedule(0.0, 1.0, 4, 12)),
        ("cosine", 12, optax.linear_schedule(0.0, 1.0, 12)),
        ("linear", 0, optax.linear_schedule(1.0, 0.0, 12)),
        (
            "linear",
            3,
            optax.join_schedules(
                [optax.linear_schedule(0.0, 1.0, 3), optax.linear_schedule(1.0, 0.0, 9)], [3]
            ),
        ),
    ],
)
def test_the_multiplier_follows_optaxs_schedule_of_peak_one(schedule, warmup, reference):
    multiplier = lr_multiplier(schedule, warmup, 12)
    got = [float(multiplier(step)) for step in STEPS]
    np.testing.assert_allclose(got, [float(reference(step)) for step in STEPS], atol=1e-6)


def test_bad_schedules_are_refused_by_name():
    with pytest.raises(ValueError, match=r"Unknown lr schedule 'step': expected one of"):
        lr_multiplier("step", 0, 10)
    with pytest.raises(ValueError, match=r"warmup_steps must be in \[0, steps=10\], got 11"):
        lr_multiplier("cosine", 11, 10)
    with pytest.raises(ValueError, match=r"lr schedule: steps must be >= 1, got 0"):
        lr_multiplier("cosine", 0, 0)
    with pytest.raises(ValueError, match=r"Unknown lr schedule 'cosin': expected one of"):
        make_optimizer("adam", lr_schedule="cosin")  # not 'needs steps='
    with pytest.raises(ValueError, match=r"lr_schedule='cosine' .* needs steps="):
        make_optimizer("adam", lr_schedule="cosine")
    with pytest.raises(ValueError, match=r"lr_schedule='constant' with warmup_steps=5 needs"):
        make_optimizer("adam", warmup_steps=5)
