"""Mixed precision (`HParams.compute_dtype`): bfloat16 compute, float32 master weights."""

import jax
import numpy as np
import pytest

from phosjax.data import load
from phosjax.models import ModelConfig
from phosjax.train import Cell, HParams, plan_groups, train_grid


def test_bfloat16_learns_mnist1d_like_float32_and_keeps_float32_state(data_dir):
    data = load("mnist1d", data_dir=data_dir)
    cells = [
        Cell(
            ModelConfig("mlp", 10, (40,)),
            "mnist1d",
            HParams(learning_rate=3e-3, batch_size=100, steps=300, compute_dtype=dtype),
            seed,
        )
        for dtype in ("float32", "bfloat16")
        for seed in (0, 1)
    ]
    assert len(plan_groups(cells)) == 2  # the compute dtype is part of the group signature
    result = train_grid(
        cells,
        datasets={"mnist1d": data},
        strategy="vmap",
        chunk_steps=300,
        devices=jax.devices()[:1],
    )
    accuracy = result.final["test_accuracy"].to_numpy()
    f32, bf16 = accuracy[:2].mean(), accuracy[2:].mean()
    assert f32 > 0.45 and abs(bf16 - f32) < 0.05, (f32, bf16)
    assert np.isfinite(result.final["train_loss"]).all()
    for state in result.states:
        leaves = jax.tree.leaves((state.params, state.opt_state))
        assert {str(leaf.dtype) for leaf in leaves} <= {"float32", "int32"}
    train = result.metrics[result.metrics["split"] == "train"]
    assert train["loss"].dtype == np.float32


def test_bad_compute_dtype_names_the_allowed_values():
    with pytest.raises(ValueError, match=r"compute_dtype 'float16'.*\('float32', 'bfloat16'\)"):
        HParams(compute_dtype="float16")
