"""Configs and grouping: which cells share a compiled step, and clear errors."""

import numpy as np
import pytest

import phosjax.train
from phosjax.train import (
    Cell,
    Group,
    HParams,
    Regularizer,
    plan_groups,
    process_share,
    run_group,
)
from tests.train.tiny import Tiny


def test_cells_differing_only_in_per_cell_values_share_a_group():
    reg = Regularizer("**/kernel", "l2", 1e-4)
    base = HParams(regularizers=(reg,), knobs={"**/T": 1.0})
    variants = [
        base,
        HParams(
            learning_rate=0.1,
            weight_decay=0.01,
            momentum=0.5,
            label_smoothing=0.1,
            regularizers=(Regularizer("**/kernel", "l2", 0.5),),
            knobs={"**/T": 3.0},
        ),
    ]
    cells = [Cell(Tiny(), "toy", hp, seed) for hp in variants for seed in (0, 1)]
    cells.append(Cell(Tiny(), "toy", HParams(batch_size=32)))  # other shapes
    cells.append(Cell(Tiny(width=4), "toy", base))  # other model
    cells.append(Cell(Tiny(), "toy", HParams(optimizer="sgd")))  # other family
    cells.append(Cell(Tiny(), "toy", HParams(regularizers=(Regularizer("**/bias"),))))
    groups = plan_groups(cells)
    assert [g.index for g in groups] == [(0, 1, 2, 3), (4,), (5,), (6,), (7,)]
    values = groups[0].values()
    np.testing.assert_allclose(values["learning_rate"], [1e-3, 1e-3, 0.1, 0.1])
    np.testing.assert_allclose(values["regularizer_strength"], [[1e-4], [1e-4], [0.5], [0.5]])
    np.testing.assert_allclose(values["knob_value"], [[1.0], [1.0], [3.0], [3.0]])
    assert groups[0].hparams.learning_rate == 0.0  # shared part only


def test_bad_configs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"optimizer 'adamm'.*expected one of"):
        HParams(optimizer="adamm")
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        HParams(batch_size=0)
    with pytest.raises(ValueError, match="kind 'l3'"):
        Regularizer("**", "l3")
    with pytest.raises(TypeError, match=r"cells\[1\] is a str, not a Cell"):
        plan_groups([Cell(Tiny(), "toy"), "mlp"])
    a, b = Cell(Tiny(), "toy"), Cell(Tiny(), "other")
    with pytest.raises(ValueError, match="share one signature"):
        Group((a, b), (0, 1))
    with pytest.raises(ValueError, match=r"unknown strategy 'fast'; expected 'auto' or \('vmap'"):
        run_group(plan_groups([a])[0], None, None, strategy="fast")
    with pytest.raises(ValueError, match=r"index 2 is not in range\(count=2\)"):
        process_share(5, 2, 2)


def test_public_names():
    assert phosjax.train.__all__ == [
        "COMPUTE_DTYPES",
        "OPTIMIZERS",
        "STRATEGIES",
        "Cell",
        "Chunk",
        "GridResult",
        "Group",
        "GroupRun",
        "GroupState",
        "HParams",
        "Regularizer",
        "init_group",
        "make_optimizer",
        "measure_strategies",
        "plan_groups",
        "precision_apply",
        "process_share",
        "run_group",
        "train_grid",
    ]
