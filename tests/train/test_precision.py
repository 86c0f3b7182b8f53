"""Mixed precision (`HParams.compute_dtype`): bfloat16 compute, float32 master weights."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phosjax.data import ArrayDataset, load
from phosjax.models import ModelConfig
from phosjax.train import (
    Cell,
    HParams,
    device_arrays,
    init_group,
    plan_groups,
    precision_apply,
    run_group,
    train_grid,
)
from phosjax.train._step import check_inputs_fit
from tests.train.tiny import Tiny


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
    # Cells 2, 3 are cells 0, 1 (same seeds: same init, same batches) computing in bfloat16:
    # their losses are rounded (never bit-equal to float32) but close while training starts.
    loss = train.pivot(index="step", columns="cell", values="loss").to_numpy()[:10]
    f32_loss, bf16_loss = loss[:, :2], loss[:, 2:]
    assert (f32_loss != bf16_loss).all(), (f32_loss, bf16_loss)
    np.testing.assert_allclose(bf16_loss, f32_loss, rtol=1e-2)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_model_computes_in_the_compute_dtype_and_returns_float32(dtype):
    model = ModelConfig("mlp", 10, (40,)).build()
    x = jnp.ones((2, 40))
    variables = model.init(jax.random.key(0), x)
    seen = []

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if isinstance(context.module, nn.Dense) and context.method_name == "__call__":
            seen.append(out.dtype)
        return out

    with nn.intercept_methods(record):
        out = precision_apply(model, dtype)(variables, x, train=False)
    assert len(seen) == 3 and set(seen) == {jnp.dtype(dtype)}  # stem, block and head Dense
    assert out.dtype == jnp.float32


def test_bad_compute_dtype_names_the_allowed_values():
    with pytest.raises(ValueError, match=r"compute_dtype 'float16'.*\('float32', 'bfloat16'\)"):
        HParams(compute_dtype="float16")


@pytest.mark.parametrize(
    "dtype, shown",
    [(np.dtype("float32"), r"dtype\('float32'\)"), (jnp.bfloat16, r"<class 'jax.numpy.bfloat16'>")],
)
def test_a_compute_dtype_given_as_a_dtype_is_refused_naming_the_name_to_give(dtype, shown):
    """np.dtype('float32') == 'float32' passed, but hashed otherwise: equal hparams went
    to two groups, and train_grid failed with a bare KeyError: dtype('float32')."""
    name = np.dtype(dtype).name
    with pytest.raises(
        ValueError,
        match=rf"^HParams compute_dtype must be a dtype's name, one of \('float32', 'bfloat16'\), "
        rf"got {shown}: give '{name}'\.$",
    ):
        HParams(compute_dtype=dtype)


@pytest.mark.parametrize("dtype", ["int8", "float16"])
def test_precision_apply_refuses_a_compute_dtype_the_engine_does_not_take(dtype):
    """``"int8"`` had cast every param to an integer: the model silently output zeros."""
    expected = r"expected one of \('float32', 'bfloat16'\)"
    with pytest.raises(ValueError, match=rf"precision_apply compute_dtype '{dtype}': {expected}"):
        precision_apply(nn.Dense(2), dtype)


class _Halve(nn.Module):
    """No params: what ``model.init`` returns for it holds no ``"params"``."""

    @nn.compact
    def __call__(self, x, train=False):
        return x / 2


def test_precision_apply_takes_the_variables_of_a_model_without_params():
    # it read variables["params"]: a bare KeyError 'params', where model.apply runs
    x = jnp.array([[3.0, 5.0]])
    out = precision_apply(_Halve(), "bfloat16")(_Halve().init(jax.random.key(0), x), x)
    assert out.dtype == jnp.float32 and out.tolist() == [[1.5, 2.5]]


def test_bfloat16_refuses_integer_inputs_it_would_round_before_anything_trains():
    """Token ids or counts beyond 256 were rounded in silence (257 read 256)."""
    x = np.arange(64 * 8).reshape(64, 8) % 300  # up to 299
    y = np.arange(64, dtype=np.int32) % 3
    ids = ArrayDataset("ids", x[:48], y[:48], x[48:], y[48:], 3, (8,))
    hp = HParams(batch_size=16, steps=2, compute_dtype="bfloat16")
    cells = [Cell(Tiny(), "ids", hp)]
    message = r"^data set 'ids' has integer inputs up to 299 \(x_train, int64\), which HParams "
    with pytest.raises(ValueError, match=message):
        train_grid(cells, datasets={"ids": ids}, strategy="vmap")
    [group] = plan_groups(cells)
    with pytest.raises(ValueError, match=message):
        run_group(group, init_group(group, ids), ids, strategy="vmap")
    pixels = ArrayDataset("pixels", x[:48] % 256, y[:48], x[48:] % 256, y[48:], 3, (8,))
    check_inputs_fit(pixels, "bfloat16")  # 0..255: exact


def test_float32_refuses_integer_inputs_beyond_2_to_the_24_it_would_round():
    """The inputs reach the devices as float32: 2**24 + 1 read 2**24, in silence."""
    x = np.arange(64 * 8).reshape(64, 8) + 2**24 - 64 * 8 + 2  # up to 2**24 + 1
    y = np.arange(64, dtype=np.int32) % 3
    ids = ArrayDataset("ids", x[:48], y[:48], x[48:], y[48:], 3, (8,))
    message = (
        r"^data set 'ids' has integer inputs up to 16777217 \(x_test, int64\), which HParams "
        r"compute_dtype='float32' would round \(it holds integers exactly up to 16777216: "
        r"16777217 reads 16777216\); scale its inputs"
    )
    cells = [Cell(Tiny(), "ids", HParams(batch_size=16, steps=2))]
    with pytest.raises(ValueError, match=message):
        train_grid(cells, datasets={"ids": ids}, strategy="vmap")
    check_inputs_fit(ArrayDataset("ids", x[:48], y[:48], x[:16], y[:16], 3, (8,)), "float32")


def test_device_arrays_refuses_integer_inputs_float32_rounds_naming_itself():
    """It named "HParams compute_dtype='float32'", where no HParams was given."""
    x = np.array([[3], [2**24 + 1]])
    ids = ArrayDataset("ids", x, np.zeros(2, np.int32), x, np.zeros(2, np.int32), 2, (1,))
    message = r"\), which float32 \(device_arrays converts the inputs to it\) would round \(it"
    with pytest.raises(ValueError, match=message):
        device_arrays(ids)


def test_bfloat16_does_not_suggest_float32_for_integer_inputs_float32_rounds_too():
    """It said 'train it in float32, or scale its inputs' of ids up to 2**24 + 1."""
    x = np.array([[3], [2**24 + 1]])
    ids = ArrayDataset("ids", x, np.zeros(2, np.int32), x, np.zeros(2, np.int32), 2, (1,))
    with pytest.raises(ValueError, match=r"would round .*\); scale its inputs") as error:
        check_inputs_fit(ids, "bfloat16")
    assert "float32" not in str(error.value)


def test_float64_inputs_beyond_float32s_range_are_refused_naming_where():
    """They became inf on their way to the devices, with numpy's 'overflow encountered in
    cast' at best: the test loss was NaN."""
    x = np.ones((64, 8))
    x[50, 3] = -1e39
    y = np.arange(64, dtype=np.int32) % 3
    big = ArrayDataset("big", x[:48], y[:48], x[48:], y[48:], 3, (8,))
    message = (
        r"^data set 'big' has an input of -1e\+39 \(x_test\[2, 3\], float64\), beyond "
        r"float32's range \(a number between -3.40282e\+38 and 3.40282e\+38\), to which the "
        r"inputs are converted: it would become inf"
    )
    cells = [Cell(Tiny(), "big", HParams(batch_size=16, steps=2))]
    with pytest.raises(ValueError, match=message):
        train_grid(cells, datasets={"big": big}, strategy="vmap")
    with pytest.raises(ValueError, match=message):
        device_arrays(big)


def test_bfloat16_refuses_float_inputs_beyond_its_range_below_float32s():
    """Float32 inputs of 3.4e38 fit float32 but became inf in bfloat16, unrefused."""
    x = np.array([[1.0], [3.4e38]], np.float32)
    big = ArrayDataset("big", x, np.zeros(2, np.int32), x, np.zeros(2, np.int32), 2, (1,))
    check_inputs_fit(big, "float32")
    message = (
        r"\(x_train\[1, 0\], float32\), beyond bfloat16's range \(a number between -3.38953e\+38"
    )
    with pytest.raises(ValueError, match=message):
        check_inputs_fit(big, "bfloat16")
    # float64 just below bfloat16's rounding midpoint: as float32 (as device_arrays reads
    # it) it is the midpoint, which bfloat16 rounds to inf; cast at once it was kept
    x = np.array([[1.0], [np.nextafter((2 - 2**-8) * 2.0**127, 0)]])
    assert np.isinf(x.astype(np.float32).astype(jnp.bfloat16)).any()
    big = ArrayDataset("big", x, np.zeros(2, np.int32), x, np.zeros(2, np.int32), 2, (1,))
    check_inputs_fit(big, "float32")
    with pytest.raises(ValueError, match=r"\(x_train\[1, 0\], float64\), beyond bfloat16's"):
        check_inputs_fit(big, "bfloat16")


def test_float64_inputs_just_beyond_float32s_largest_that_round_to_it_are_kept():
    """3.4028235e38 rounds to float32's largest, yet was refused as one that "would
    become inf"; 3.5e38 does."""
    x = np.array([[1.0], [3.4028235e38]])
    assert np.isfinite(x.astype(np.float32)).all()
    kept = ArrayDataset("kept", x, np.zeros(2, np.int32), x, np.zeros(2, np.int32), 2, (1,))
    check_inputs_fit(kept, "float32")
    x[0, 0] = -3.5e38
    big = ArrayDataset("big", x, np.zeros(2, np.int32), x, np.zeros(2, np.int32), 2, (1,))
    with pytest.raises(ValueError, match=r"input of -3.5e\+38 \(x_train\[0, 0\], float64\)"):
        check_inputs_fit(big, "float32")


def test_the_float32_range_check_copies_no_float64_inputs_that_fit():
    """It made three copies of every float64 split (isfinite, abs, where): 300 ms and
    twice the data's memory for 1e6 x 40 inputs, at each run_group."""
    import tracemalloc

    x = np.ones((125_000, 8))  # 8 MB
    x[0, 0] = np.nan  # a NaN alone is left as it is
    y = np.zeros(125_000, np.int32)
    x.flags.writeable = y.flags.writeable = False  # else the data set holds copies of them
    tracing = tracemalloc.is_tracing()  # already, as with PYTHONTRACEMALLOC=1
    tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    try:
        check_inputs_fit(ArrayDataset("wide", x, y, x[:2], y[:2], 2, (8,)), "float32")
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        if not tracing:
            tracemalloc.stop()
    assert peak < 2_000_000
