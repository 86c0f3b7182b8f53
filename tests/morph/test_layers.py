"""What the layers of `phosjax.layers` need: `top_k` (routing) and matrix decompositions
(spectral norms) are followed exactly."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phosjax.morph import channel_groups, mask, shrink


def _perturbed(variables):
    """Non-zero biases, so masking is really tested."""
    rng = np.random.default_rng(7)
    return jax.tree.map(lambda x: x + 0.3 * rng.random(x.shape, np.float32), variables)


class TopK(nn.Module):
    """relu(Dense(6)), then its 2 largest values per channel over the sequence (k-max
    pooling), ``ranked``: over the channels instead; ``indices``: their positions too."""

    widths: tuple[int, ...] = (6,)
    ranked: str = "sequence"
    indices: bool = False

    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(self.widths[0], name="stem")(x))
        axis = {"sequence": 1, "channels": 2}[self.ranked]
        top, where = jax.lax.top_k(jnp.moveaxis(h, axis, -1), 2)
        top = top + where if self.indices else top
        return nn.Dense(3, name="head")(jnp.moveaxis(top, -1, axis).reshape(x.shape[0], -1))


def test_top_k_over_other_axes_passes_channels_through_and_pins_what_it_ranks():
    x = jax.random.normal(jax.random.key(1), (3, 4, 5))
    model = TopK()
    variables = _perturbed(model.init(jax.random.key(0), x))
    groups = channel_groups(model, variables, x)
    assert groups.names == ("stem",)
    alive = {"stem": np.arange(6) % 3 != 1}
    small = shrink(variables, alive, groups)
    np.testing.assert_allclose(
        model.clone(widths=(4,)).apply(small.variables, x),
        model.apply(mask(variables, alive, groups), x),
        atol=1e-5,
        rtol=1e-5,
    )
    for pinned, reason in [
        (TopK(ranked="channels"), "top_k .* ranks along this axis"),
        (TopK(indices=True), "sums over channels that are not zero when dead"),
    ]:
        groups = channel_groups(pinned, pinned.init(jax.random.key(0), x), x)
        assert groups.names == ()
        assert re.search(reason, groups.pinned["params/stem/kernel:1"])


DECOMPOSED = {
    "svd": lambda k: jnp.linalg.svd(k, compute_uv=False)[0],
    "eigh": lambda k: jnp.linalg.eigh(k)[0][-1],
    "qr": lambda k: jnp.abs(jnp.linalg.qr(k)[1]).max(),
    "cholesky": lambda k: jnp.linalg.cholesky(k)[-1, -1],
}


def _positive_definite(key, shape):
    """``3 I`` plus small noise: positive definite, after `_perturbed` too."""
    return 3 * jnp.eye(shape[0]) + 0.01 * jax.random.normal(key, shape)


class Decomposed(nn.Module):
    """Dense(6), relu, Dense(5), relu, then a square kernel scaled by a number a
    decomposition of it gives (a spectral norm), and Dense(3)."""

    decompose: str
    widths: tuple[int, ...] = (6,)

    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(5, name="pinned")(nn.relu(nn.Dense(self.widths[0], name="stem")(x))))
        kernel = self.param("kernel", _positive_definite, (5, 5))
        h = h @ (kernel / DECOMPOSED[self.decompose](kernel))
        return nn.Dense(3, name="head")(h)


@pytest.mark.parametrize("name", sorted(DECOMPOSED))
def test_a_matrix_decomposition_pins_its_operand_and_the_rest_prunes(name):
    x = jax.random.normal(jax.random.key(1), (3, 5))
    model = Decomposed(name)
    variables = _perturbed(model.init(jax.random.key(0), x))
    groups = channel_groups(model, variables, x)
    assert groups.names == ("stem",)
    reason = groups.pinned["params/pinned/kernel:1"]
    assert reason.startswith(name) and reason.endswith("decomposes matrices over this axis")
    alive = {"stem": np.arange(6) % 3 != 1}
    small = shrink(variables, alive, groups)
    np.testing.assert_allclose(
        model.clone(widths=(4,)).apply(small.variables, x),
        model.apply(mask(variables, alive, groups), x),
        atol=1e-5,
        rtol=1e-5,
    )
