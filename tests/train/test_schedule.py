"""Learning-rate schedules: the multiplier's curves against optax's own schedules, and a
scheduled group under every strategy, sharding, resumption and divergence."""

import dataclasses
import functools

import jax
import numpy as np
import optax
import pytest

from phosjax.train import (
    STRATEGIES,
    Cell,
    HParams,
    device_arrays,
    init_group,
    lr_multiplier,
    make_optimizer,
    make_train_step,
    plan_groups,
    run_group,
)
from tests.train.tiny import Tiny

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
    with pytest.raises(ValueError, match=r"lr schedule: warmup_steps must be >= 0, got -1"):
        lr_multiplier("cosine", -1, 10)
    # A float warmup was taken as is: a rise over 2.5 updates, not the whole ones HParams takes.
    with pytest.raises(ValueError, match=r"lr schedule: warmup_steps must be an int, got 2.5"):
        make_optimizer("adam", warmup_steps=2.5, steps=10)
    with pytest.raises(
        ValueError,
        match=r"^Unknown lr schedule 'cosin': expected one of .*\. Did you mean 'cosine'\?$",
    ):
        make_optimizer("adam", lr_schedule="cosin")  # not 'needs steps='
    with pytest.raises(ValueError, match=r"^Unknown optimizer 'adamm': .*\. Did you mean 'adam'"):
        make_optimizer("adamm")  # it said only 'expected one of (...)'
    with pytest.raises(  # it said 'Unknown optimizer HParams(optimizer=...)', repr and all
        TypeError,
        match=r"^make_optimizer: name must be an optimizer family's name, one of \('adam', .*\), "
        r"got a value of type HParams: pass hparams.optimizer \(and its rates\)$",
    ):
        make_optimizer(HParams())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"lr_schedule='cosine' .* needs steps="):
        make_optimizer("adam", lr_schedule="cosine")
    with pytest.raises(ValueError, match=r"lr_schedule='constant' with warmup_steps=5 needs"):
        make_optimizer("adam", warmup_steps=5)


TOL = {"rtol": 2e-5, "atol": 2e-6}
WARM_COSINE = HParams(
    optimizer="momentum", batch_size=16, steps=8, lr_schedule="cosine", warmup_steps=3
)


def schedule_counts(opt_state):
    """The ``count`` of each `optax.ScaleByScheduleState` in ``opt_state`` (one per cell)."""
    found = jax.tree.leaves(
        opt_state, is_leaf=lambda node: isinstance(node, optax.ScaleByScheduleState)
    )
    return [node.count.tolist() for node in found if isinstance(node, optax.ScaleByScheduleState)]


def scheduled_group(*learning_rates):
    cells = [
        Cell(Tiny(), "toy", dataclasses.replace(WARM_COSINE, learning_rate=lr), seed)
        for seed, lr in enumerate(learning_rates)
    ]
    [group] = plan_groups(cells)
    return group


def test_every_strategy_and_device_count_follow_one_schedule_and_resume_mid_warmup(toy):
    """The schedule's step count lives in each cell's optimizer state: every strategy, the
    cells sharded over 4 devices or on one, and a run resumed mid-warmup from a host copy
    of its state give the same numbers."""
    assert len(jax.local_devices()) == 4
    group = scheduled_group(0.05, 0.2, 0.1)  # three cells on four devices: one pads
    runs = {
        strategy: run_group(group, init_group(group, toy), toy, strategy=strategy, chunk_steps=2)
        for strategy in ["auto", *STRATEGIES]
    }
    runs["one device"] = run_group(
        group,
        init_group(group, toy),
        toy,
        strategy="vmap",
        chunk_steps=2,
        devices=jax.devices()[:1],
    )
    reference, reference_run = jax.device_get(runs.pop("vmap"))
    assert schedule_counts(reference.opt_state) == [[8, 8, 8]]
    for name, (state, run) in runs.items():
        jax.tree.map(
            functools.partial(np.testing.assert_allclose, **TOL, err_msg=name),
            (jax.device_get(state), [c.train for c in run.chunks]),
            (reference, [c.train for c in reference_run.chunks]),
        )
    warming, _ = run_group(group, init_group(group, toy), toy, 2, strategy="vmap", chunk_steps=2)
    saved = jax.device_get(warming)  # as a checkpoint holds it: 2 of 3 warmup steps done
    assert schedule_counts(saved.opt_state) == [[2, 2, 2]]
    resumed, _ = run_group(group, saved, toy, strategy="vmap", chunk_steps=2)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(resumed), reference)


def test_a_frozen_cell_keeps_its_schedule_where_it_diverged(toy):
    """A diverged cell's optimizer state, the schedule's count included, stops changing;
    its neighbour's schedule goes on to the last step. Its ``lr`` stays that of the update
    it diverged at (it followed the step on: at 6, 6.5e5 then 3.5e5 and 9.5e4)."""
    group = scheduled_group(0.05, 1e6)
    whole, run = run_group(group, init_group(group, toy), toy, strategy="vmap")
    at = int(whole.diverged_at[1])
    assert whole.diverged.tolist() == [False, True] and 2 <= at < 8  # a frozen step after
    rates = np.concatenate([chunk.train["lr"] for chunk in run.chunks], axis=1)
    curve = optax.warmup_cosine_decay_schedule(0.0, 1.0, 3, 8)
    live = [float(curve(step)) for step in range(8)]
    frozen = live[:at] + [live[at - 1]] * (8 - at)
    np.testing.assert_allclose(rates, [[0.05 * r for r in live], [1e6 * r for r in frozen]], 1e-6)
    before, _ = run_group(group, init_group(group, toy), toy, at - 1, strategy="vmap")
    assert schedule_counts(jax.device_get(whole.opt_state)) == [[8, at - 1]]
    bad = lambda state: jax.tree.map(lambda a: a[1], jax.device_get(state.opt_state))
    jax.tree.map(np.testing.assert_array_equal, bad(whole), bad(before))


def test_an_unguarded_step_reports_the_rate_its_update_ran_at_after_a_divergence(toy):
    """Unguarded, a diverged cell's optimizer goes on through the schedule; its ``lr`` was
    that of the update it diverged at, not the rate each later update ran at."""
    [group] = plan_groups(
        [Cell(Tiny(), "toy", dataclasses.replace(WARM_COSINE, learning_rate=1e6))]
    )
    cell = jax.tree.map(lambda a: a[0], init_group(group, toy))
    step = jax.jit(make_train_step(Tiny().build(), group.hparams, guard=False))
    rates = []
    for _ in range(8):
        cell, metrics = step(cell, device_arrays(toy))
        rates.append(float(metrics["lr"]))
    assert bool(cell.diverged) and 2 <= int(cell.diverged_at) < 8  # a step after it
    curve = optax.warmup_cosine_decay_schedule(0.0, 1.0, 3, 8)
    np.testing.assert_allclose(rates, [1e6 * float(curve(step)) for step in range(8)], 1e-6)


def test_a_scheduled_group_reports_each_cells_rate_and_a_constant_one_none(toy):
    group = scheduled_group(0.1, 0.4)
    _, run = run_group(group, init_group(group, toy), toy, strategy="vmap", chunk_steps=4)
    rates = np.concatenate([chunk.train["lr"] for chunk in run.chunks], axis=1)
    curve = optax.warmup_cosine_decay_schedule(0.0, 1.0, 3, 8)
    expected = [[peak * float(curve(step)) for step in range(8)] for peak in (0.1, 0.4)]
    np.testing.assert_allclose(rates, expected, atol=1e-7)
    assert rates[:, 0].tolist() == [0.0, 0.0] and rates[0, 3] == pytest.approx(0.1)
    [constant] = plan_groups(
        [
            Cell(
                Tiny(),
                "toy",
                dataclasses.replace(WARM_COSINE, lr_schedule="constant", warmup_steps=0),
            )
        ]
    )
    _, run = run_group(constant, init_group(constant, toy), toy, strategy="vmap")
    assert not constant.hparams.scheduled and "lr" not in run.chunks[0].train
