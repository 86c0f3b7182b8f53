"""Variables moved off their initial values, for the tests that compare masked and shrunk
models: non-zero biases, scales (ReZero's starts at 0) and batch statistics, so masking is
really tested."""

import jax
import jax.numpy as jnp
import numpy as np


def perturbed(variables):
    """``variables`` plus uniform noise in ``[0, 0.3)``, the same for the same shapes."""
    rng = np.random.default_rng(7)
    return jax.tree.map(lambda x: jnp.asarray(x + 0.3 * rng.random(x.shape, np.float32)), variables)
