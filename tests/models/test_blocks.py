"""The zoo's blocks compute what their docstrings say, checked against numpy by hand."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phosjax.models import DenseBlock, GRUBlock, Layer, Patches, ResBlock, Skip

TOL = {"rtol": 1e-5, "atol": 1e-5}


def _relu(a: np.ndarray) -> np.ndarray:
    return np.maximum(a, 0)


@pytest.mark.parametrize("features", [4, 3])
def test_dense_block_adds_its_input_only_when_the_widths_match(rbg_key, features):
    x = jax.random.normal(jax.random.key(1), (5, 4))
    block = DenseBlock(features)
    variables = block.init(rbg_key, x)
    dense = variables["params"]["Dense_0"]
    h = _relu(np.asarray(x) @ np.asarray(dense["kernel"]) + np.asarray(dense["bias"]))
    expected = np.asarray(x) + h if features == 4 else h
    np.testing.assert_allclose(block.apply(variables, x), expected, **TOL)


def _conv_same(x: np.ndarray, kernel: np.ndarray, stride: int) -> np.ndarray:
    """A 1D ``SAME`` convolution ``(batch, length, c_in) -> (batch, length // stride, c_out)``."""
    size = kernel.shape[0]
    out_length = -(-x.shape[1] // stride)
    pad_total = max((out_length - 1) * stride + size - x.shape[1], 0)
    padded = np.pad(x, ((0, 0), (pad_total // 2, pad_total - pad_total // 2), (0, 0)))
    windows = [padded[:, i * stride : i * stride + size] for i in range(out_length)]
    return np.stack([np.einsum("bkc,kcd->bd", w, kernel) for w in windows], axis=1)


def test_layer_convolves_with_stride_two_when_it_downsamples(rbg_key):
    x = jax.random.normal(jax.random.key(2), (2, 8, 3))
    layer = Layer(4, downsample=True)
    variables = layer.init(rbg_key, x)
    conv = variables["params"]["Conv_0"]
    expected = _relu(_conv_same(np.asarray(x), np.asarray(conv["kernel"]), 2) + conv["bias"])
    np.testing.assert_allclose(layer.apply(variables, x), expected, **TOL)


def test_res_block_normalizes_both_convolutions_and_adds_its_input(rbg_key):
    """At init the running statistics are mean 0, variance 1: in inference each BatchNorm
    divides by sqrt(1 + eps) (scale 1, bias 0); the widths match, so the shortcut is x."""
    x = jax.random.normal(jax.random.key(3), (2, 6, 4))
    block = ResBlock(4)
    variables = block.init(rbg_key, x)
    params = {
        name: np.asarray(p["kernel"]) for name, p in variables["params"].items() if "conv" in name
    }
    norm = 1 / np.sqrt(1 + 1e-5)
    h = _relu(_conv_same(np.asarray(x), params["conv_0"], 1) * norm)
    expected = _relu(_conv_same(h, params["conv_1"], 1) * norm + np.asarray(x))
    np.testing.assert_allclose(block.apply(variables, x), expected, **TOL)
    assert sorted(variables["batch_stats"]) == ["norm_0", "norm_1"]


def test_res_block_running_statistics_move_a_tenth_of_the_way_per_step(rbg_key):
    """BatchNorm momentum 0.9: one training step moves each running mean from 0 to a
    tenth of the batch mean."""
    x = jax.random.normal(jax.random.key(4), (8, 6, 4)) + 3.0
    block = ResBlock(4)
    variables = block.init(rbg_key, x)
    _, updated = block.apply(variables, x, train=True, mutable=["batch_stats"])
    kernel = np.asarray(variables["params"]["conv_0"]["kernel"])
    batch_mean = _conv_same(np.asarray(x), kernel, 1).mean(axis=(0, 1))
    np.testing.assert_allclose(updated["batch_stats"]["norm_0"]["mean"], 0.1 * batch_mean, **TOL)
    assert jnp.shape(updated["batch_stats"]["norm_1"]["var"]) == (4,)


def _batch_norm(h: np.ndarray) -> np.ndarray:
    """Flax's BatchNorm in training at init (scale 1, bias 0), over all but the last axis."""
    mean, var = h.mean(axis=(0, 1)), h.var(axis=(0, 1))
    return (h - mean) / np.sqrt(var + 1e-5)


def test_res_block_in_training_normalizes_channels_sharing_a_large_offset_as_float64_does():
    """Flax's default BatchNorm variance (the mean square less the squared mean) cancelled
    in float32 where a channel's values share a large offset (x + 3000 through a 1x1
    conv): the block's outputs, about 3000, were off from float64's by up to 2.6."""
    x = jax.random.normal(jax.random.key(5), (8, 6, 4)) + 3000.0
    block = ResBlock(4, kernel_size=1)
    variables = block.init(jax.random.key(0), x)
    out, _ = block.apply(variables, x, train=True, mutable=["batch_stats"])
    params = variables["params"]
    kernels = {k: np.asarray(params[k]["kernel"][0], np.float64) for k in ("conv_0", "conv_1")}
    wide = np.asarray(x, np.float64)
    h = _relu(_batch_norm(wide @ kernels["conv_0"]))
    expected = _relu(_batch_norm(h @ kernels["conv_1"]) + wide)
    np.testing.assert_allclose(out, expected, rtol=0, atol=2e-3)


@pytest.mark.parametrize(
    ("block", "shape", "message"),
    [
        (Layer(4, kernel_size=0), (2, 8, 3), r"Layer kernel_size must be an int >= 1, got 0"),
        (Layer(4, stride=0), (2, 8, 8, 3), r"Layer stride must be an int >= 1, got 0"),
        (ResBlock(4, kernel_size=0), (2, 8, 3), r"ResBlock kernel_size must be an int >= 1, got 0"),
    ],
)
def test_a_convolution_size_below_one_is_an_error_naming_it(block, shape, message):
    with pytest.raises(ValueError, match=message):
        jax.eval_shape(block.init, jax.random.key(0), jnp.ones(shape))


@pytest.mark.parametrize(
    ("block", "shape", "message"),
    [
        (DenseBlock(0), (2, 3), r"^DenseBlock features must be an int >= 1, got 0"),
        (Layer(0), (2, 3), r"^Layer features must be an int >= 1, got 0"),
        (Layer(-1), (2, 8, 3), r"^Layer features must be an int >= 1, got -1"),
        (ResBlock(0), (2, 8, 3), r"^ResBlock features must be an int >= 1, got 0"),
        (GRUBlock(0), (2, 8, 3), r"^GRUBlock features must be an int >= 1, got 0"),
        (Patches(0), (2, 8, 3), r"^Patches features must be an int >= 1, got 0"),
        (Patches(4, patch_size=0), (2, 8, 3), r"^Patches patch_size must be an int >= 1, got 0"),
        (Skip(0), (2, 3), r"^Skip features must be an int >= 1, got 0"),
    ],
)
def test_a_block_size_below_one_is_an_error_naming_it(block, shape, message):
    with pytest.raises(ValueError, match=message):  # not a ZeroDivisionError in Flax's init
        jax.eval_shape(block.init, jax.random.key(0), jnp.ones(shape))


@pytest.mark.parametrize(
    ("given", "plain"),
    [
        (Layer(jnp.int32(3), kernel_size=jnp.int32(3), stride=jnp.int32(2)), Layer(3, 3, 2)),
        (Patches(jnp.int32(3), patch_size=jnp.int32(2)), Patches(3, patch_size=2)),
    ],
)
def test_a_block_size_given_as_a_0d_array_is_the_number_it_holds(rbg_key, given, plain):
    x = jax.random.normal(rbg_key, (2, 8, 2))
    variables = plain.init(rbg_key, x)
    np.testing.assert_array_equal(given.apply(variables, x), plain.apply(variables, x))


@pytest.mark.parametrize("shape", [(2, 40), (2, 8, 32, 1)])  # no channel axis; an image
@pytest.mark.parametrize("block", [GRUBlock(3), Patches(8, patch_size=4)])
def test_a_sequence_block_given_another_layout_says_so(block, shape):
    layout = rf"needs inputs \(batch, length, channels\), got shape {re.escape(str(shape))}"
    message = rf"^{type(block).__name__} {layout}"
    with pytest.raises(ValueError, match=message):  # not Patches' (2, 8, 8, 8) of mixed tokens
        block.init(jax.random.key(0), jnp.ones(shape))


def test_patches_refuse_a_sequence_of_another_length_naming_the_lengths():
    # Flax named the positions alone: expected to generate shape (3, 8), but got (2, 8)
    patches = Patches(8, patch_size=4)
    variables = jax.eval_shape(patches.init, jax.random.key(0), jnp.ones((2, 8, 1)))
    message = (
        r"^Patches got a sequence of length 12 \(shape \(2, 12, 1\)\): 3 patch\(es\) of 4 "
        r"tokens, but its position embedding holds 2 positions \(sequences of length 8 to 11\)"
    )
    with pytest.raises(ValueError, match=message):
        jax.eval_shape(patches.apply, variables, jnp.ones((2, 12, 1)))


def test_patches_read_their_length_of_params_boxed_by_partitioning():
    """Its length check read the stored positions' shape of a box (nn.Partitioned) and
    failed with AttributeError: 'Partitioned' object has no attribute 'shape'."""
    patches, x = Patches(8, patch_size=4), jnp.arange(16.0).reshape(2, 8, 1)
    variables = patches.init(jax.random.key(0), x)
    boxed = jax.tree.map(lambda a: nn.Partitioned(a, names=(None,) * a.ndim), variables)
    np.testing.assert_array_equal(patches.apply(boxed, x), patches.apply(variables, x))
    with pytest.raises(ValueError, match=r"holds 2 positions \(sequences of length 8 to 11\)"):
        patches.apply(boxed, jnp.ones((2, 12, 1)))


@pytest.mark.parametrize("block", [DenseBlock(3), Layer(3), ResBlock(3), Skip(3)])
def test_a_block_given_a_scalar_says_it_needs_features(block):
    """It failed with IndexError: tuple index out of range (or, for a convolution,
    conv_general_dilated's 'lhs and rhs must have the same number of dimensions')."""
    message = rf"^{type(block).__name__} needs inputs \(\.\.\., C\), got shape \(\)\."
    with pytest.raises(ValueError, match=message):
        jax.eval_shape(block.init, jax.random.key(0), jnp.ones(()))
