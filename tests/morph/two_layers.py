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


def pruned_through(act):
    """`channel_groups` of ``act(x @ w1 + b1) @ w2``, and where it follows ``w1``'s channels
    the output with channels 1 and 3 pruned by `shrink` and zeroed by `mask` (else None)."""
    p, x = two_layers(4, 4)
    apply = lambda p, x: act(x @ p["w1"] + p["b1"]) @ p["w2"]
    groups = channel_groups(apply, p, x)
    if not groups.groups:
        return groups, None
    alive = {"w1": np.array([True, False, True, False])}
    return groups, (apply(shrink(p, alive, groups).variables, x), apply(mask(p, alive, groups), x))
