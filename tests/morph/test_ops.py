"""Elementwise primitives that `phosjax.morph` follows: bit casts, shifts, Bessel functions."""

import jax
import jax.numpy as jnp
import jax.scipy.special as jss
import pytest

from phosjax.morph import UnsupportedOpError, channel_groups
from tests.morph.two_layers import check_followed_where_zero_stays_zero, two_layers

ACTIVATIONS = {  # name: (activation, whether a dead channel stays zero through it)
    "copysign(h, h - 0.5)": (lambda h: jnp.copysign(h, h - 0.5), True),
    "where(signbit(h - 0.5), h, 2h)": (lambda h: jnp.where(jnp.signbit(h - 0.5), h, 2 * h), True),
    "i1e": (jss.i1e, True),
    "i0e": (jss.i0e, False),  # i0e(0) = 1
    "ldexp(h, 2)": (lambda h: jnp.ldexp(h, 2), False),  # frexp's bits: not known zero
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_bitcasts_shifts_and_bessel_functions_follow_channels(name):
    """bitcast_convert_type (in copysign, signbit, ldexp), shifts and bessel_i0e/i1e were
    refused as unsupported; they are elementwise: a dead channel is pruned where it stays
    zero (shrunk equal to masked), pinned where it does not."""
    check_followed_where_zero_stays_zero(*ACTIVATIONS[name])


def test_a_bitcast_to_another_width_is_refused_naming_what_to_do():
    p, x = two_layers(4, 4)
    to_bytes = lambda h: jax.lax.bitcast_convert_type(h, jnp.uint8).astype(jnp.float32).sum(-1)
    apply = lambda p, x: to_bytes(x @ p["w1"]) @ p["w2"]
    with pytest.raises(
        UnsupportedOpError,
        match=r"the primitive 'bitcast_convert_type' bitcasts to a dtype of another width, "
        r"which adds or removes an axis of its parts; bitcast to a dtype of the same width",
    ):
        channel_groups(apply, p, x)
