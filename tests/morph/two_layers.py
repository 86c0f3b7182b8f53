"""Two dense layers with an activation between them, for the tests that `phosjax.morph`
follows a dead channel through an activation exactly when it stays zero there."""

import jax
import numpy as np

from phosjax.morph import channel_groups, mask, shrink


def two_layers(hidden, inner):
    """``w1`` and ``b1`` of ``hidden`` channels, ``w2`` taking ``inner`` (its input), ``x``."""
    keys = jax.random.split(jax.random.key(0), 4)
    p = {
        "w1": jax.random.normal(keys[0], (5, hidden)),
        "b1": jax.random.normal(keys[1], (hidden,)),
        "w2": jax.random.normal(keys[2], (inner, 2)),
    }
    return p, jax.random.normal(keys[3], (3, 5))


def check_followed_where_zero_stays_zero(act, keeps_zero):
    """A dead channel of ``act(x @ w1 + b1) @ w2`` is pruned where ``act`` keeps it zero
    (``keeps_zero``: shrunk equal to masked), pinned ("not zero when dead") where not."""
    p, x = two_layers(4, 4)
    apply = lambda p, x: act(x @ p["w1"] + p["b1"]) @ p["w2"]
    groups = channel_groups(apply, p, x)
    assert bool(groups.groups) == keeps_zero, groups.pinned
    if not keeps_zero:
        assert "not zero when dead" in groups.pinned["w1:1"]
        return
    alive = {"w1": np.array([True, False, True, False])}
    shrunk, masked = apply(shrink(p, alive, groups).variables, x), apply(mask(p, alive, groups), x)
    np.testing.assert_allclose(shrunk, masked, atol=1e-5, rtol=1e-5)  # sums of 2 vs 4 terms
