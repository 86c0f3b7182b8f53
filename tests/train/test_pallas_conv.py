"""benchmarks/pallas_conv.py's kernels, without a GPU: their numbers in Pallas's
interpreter against `jax.vmap` of `lax.conv_general_dilated`, and their lowering to
Triton (what a GPU compiles) at the speed bench's cnn2d sizes."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from tests.benchmark_scripts import load_benchmark


@pytest.fixture
def pallas_conv():
    """benchmarks/pallas_conv.py as a module."""
    return load_benchmark("pallas_conv")


def test_the_pallas_grid_convolution_and_its_gradients_equal_vmapped_lax(pallas_conv):
    """Two SAME layers (stride 1, then 2) of K = 2 cells, in tiles smaller than the
    output (several tiles of positions, the images' sum split in two shares)."""
    block = pallas_conv.Block(pixels=16, outs=16, ins=16, split=2, interpret=True)
    assert pallas_conv.check(block) < 1e-5


def test_the_gradient_check_is_not_failed_by_rounding_at_a_relus_kink(pallas_conv, monkeypatch):
    """Where the input is zero, a stride-2 convolution's output is exactly 0, on ReLU's
    kink: lax's output stays there (gradient 0), ours moved up by a rounding error
    (1e-6 of the largest) passes (gradient 1), the input's gradients then differing by
    ``probe * w``. Compared with `jax.vmap`'s gradients that was an error of 0.56; with
    lax's at our forward values it is the rounding's."""
    conv = pallas_conv._conv

    def rounded_up(x, w, stride, padding, block):
        y = conv(x, w, stride, padding, block)
        return y + 1e-6 * jnp.abs(y).max()

    monkeypatch.setattr(pallas_conv, "_conv", rounded_up)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 2, 6, 6, 1)).astype(np.float32)
    x[:, :, :3, :3] = 0  # the output at (0, 0) reads only these
    params = {"x": x, "w": rng.normal(size=(2, 3, 3, 1, 4)).astype(np.float32)}
    probe = rng.normal(size=(2, 3, 3, 4)).astype(np.float32)

    def loss(params, probe):
        y = lax.conv_general_dilated(
            params["x"], params["w"], (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        return (jax.nn.relu(y) * probe).sum()

    block = pallas_conv.Block(pixels=16, outs=16, ins=16, split=2, interpret=True)
    assert pallas_conv.check_grads(loss, block, params, probe) < 1e-5


def test_the_gradient_check_finds_outputs_the_loss_barely_shows(pallas_conv, monkeypatch):
    """Outputs 1% too large move a cross-entropy at its start by far less than 1% (and
    the gradients, taken at those outputs on both sides, agree): each convolution's
    output against lax's shows the 1%."""
    conv = pallas_conv._conv
    monkeypatch.setattr(pallas_conv, "_conv", lambda *args: conv(*args) * 1.01)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 2, 6, 6, 1)).astype(np.float32)
    params = 0.1 * rng.normal(size=(2, 3, 3, 1, 4)).astype(np.float32)

    def loss(w, x):
        y = lax.conv_general_dilated(
            x, w, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        return -jax.nn.log_softmax(y.mean((0, 1, 2)))[0]

    block = pallas_conv.Block(pixels=16, outs=16, ins=16, split=2, interpret=True)
    assert pallas_conv.check_grads(loss, block, params, x) == pytest.approx(0.01, rel=1e-3)


CNN2D = [
    (28, 1, 32, 1, ((1, 1), (1, 1))),
    (28, 32, 64, 2, ((0, 1), (0, 1))),
    (14, 64, 64, 2, ((0, 1), (0, 1))),
]
"""The bench's cnn2d layers (28x28x1: conv32, conv64/2, conv64/2): input size, input and
output channels, stride, padding."""


@pytest.mark.parametrize(("dtype", "layers"), [("float32", CNN2D), ("bfloat16", CNN2D[1:2])])
def test_the_kernels_lower_to_triton_at_the_cnn2d_sizes(pallas_conv, dtype, layers):
    """Each layer and its gradients: one Triton kernel forward, one per phase of the
    input's gradient (1 at stride 1, 4 at stride 2), one for the kernel's."""
    for size, ins, outs, stride, padding in layers:
        x = jax.ShapeDtypeStruct((2, 4, size, size, ins), jnp.dtype(dtype))
        w = jax.ShapeDtypeStruct((2, 3, 3, ins, outs), x.dtype)
        conv = functools.partial(
            pallas_conv.grid_conv, stride=stride, padding=padding, block=pallas_conv.Block()
        )

        def both(x, w, conv=conv):
            y, pull = jax.vjp(conv, x, w)
            return pull(y)

        lowered = jax.jit(both).trace(x, w).lower(lowering_platforms=("cuda",))
        assert lowered.as_text().count("@__gpu$xla.gpu.triton(") == 2 + stride**2


def test_an_unknown_form_is_a_usage_error_naming_the_forms(pallas_conv, monkeypatch, capsys):
    """'--forms vmap,fused_mm' was a KeyError ('_mm') once the model was set up."""
    monkeypatch.setattr("sys.argv", ["pallas_conv.py", "--forms", "vmap,fused_mm"])
    with pytest.raises(SystemExit) as exit_info:
        pallas_conv.main()
    assert exit_info.value.code == 2
    said = capsys.readouterr().err
    assert "--forms: unknown ['fused_mm']; give some of vmap,vmap_matmul," in said
