"""Elementwise primitives that `phosjax.morph` follows: bit casts, shifts, Bessel functions."""

import jax
import jax.numpy as jnp
import jax.scipy.special as jss
import numpy as np
import pytest

from phosjax.morph import UnsupportedOpError, channel_groups, mask, shrink

ACTIVATIONS = {  # name: (activation, whether a dead channel stays zero through it)
    "copysign(h, h - 0.5)": (lambda h: jnp.copysign(h, h - 0.5), True),
    "where(signbit(h - 0.5), h, 2h)": (lambda h: jnp.where(jnp.signbit(h - 0.5), h, 2 * h), True),
    "i1e": (jss.i1e, True),
    "i0e": (jss.i0e, False),  # i0e(0) = 1
    "ldexp(h, 2)": (lambda h: jnp.ldexp(h, 2), False),  # frexp's bits: not known zero
}


def _layers():
    keys = jax.random.split(jax.random.key(0), 4)
    shapes = {"w1": (5, 4), "b1": (4,), "w2": (4, 2), "x": (3, 5)}
    drawn = {
        name: jax.random.normal(k, shape)
        for k, (name, shape) in zip(keys, shapes.items(), strict=True)
    }
    return drawn, drawn.pop("x")


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_bitcasts_shifts_and_bessel_functions_follow_channels(name):
    """bitcast_convert_type (in copysign, signbit, ldexp), shifts and bessel_i0e/i1e were
    refused as unsupported; they are elementwise: a dead channel is pruned where it stays
    zero (shrunk equal to masked), pinned where it does not."""
    act, keeps_zero = ACTIVATIONS[name]
    p, x = _layers()
    apply = lambda p, x: act(x @ p["w1"] + p["b1"]) @ p["w2"]
    groups = channel_groups(apply, p, x)
    assert bool(groups.groups) == keeps_zero, groups.pinned
    if not keeps_zero:
        assert "not zero when dead" in groups.pinned["w1:1"]
        return
    alive = {"w1": np.array([True, False, True, False])}
    np.testing.assert_allclose(
        apply(shrink(p, alive, groups).variables, x), apply(mask(p, alive, groups), x), atol=1e-5
    )


def test_a_bitcast_to_another_width_is_refused_naming_what_to_do():
    p, x = _layers()
    to_bytes = lambda h: jax.lax.bitcast_convert_type(h, jnp.uint8).astype(jnp.float32).sum(-1)
    apply = lambda p, x: to_bytes(x @ p["w1"]) @ p["w2"]
    with pytest.raises(
        UnsupportedOpError,
        match=r"the primitive 'bitcast_convert_type' bitcasts to a dtype of another width, "
        r"which adds or removes an axis of its parts; bitcast to a dtype of the same width",
    ):
        channel_groups(apply, p, x)
