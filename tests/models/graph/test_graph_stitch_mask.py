"""`stitch` with a padding mask: the models get it, the adapter is fitted on real tokens."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phosjax.layers import TransformerBlock
from phosjax.models.graph import GraphError, GraphModel, fit_adapter, stitch

NET = GraphModel(
    {"block": TransformerBlock(2), "hidden": nn.Dense(4), "logits": nn.Dense(2)},
    returns="logits",
)
X = jax.random.normal(jax.random.key(0), (8, 6, 4))
REAL = jnp.arange(6) < jnp.array([[6], [5], [4], [3], [6], [2], [5], [4]])
PADDED = jnp.where(REAL[..., None], X, 50.0)  # the padded tokens hold something else


def test_stitch_fits_its_adapter_on_the_real_tokens_only():
    init = jax.jit(NET.init)  # one program for both: run eagerly, Flax compiles op by op
    vars_a, vars_b = init(jax.random.key(1), X), init(jax.random.key(2), X)
    model, variables = stitch(NET, vars_a, "hidden", NET, vars_b, "hidden", x=X, mask=REAL)
    h_a = NET.apply(vars_a, X, outputs=["hidden"], mask=REAL)["hidden"]
    h_b = NET.apply(vars_b, X, outputs=["hidden"], mask=REAL)["hidden"]
    expected = jax.jit(fit_adapter)(h_a[REAL][None], h_b[REAL][None])  # the real tokens, in a row
    fitted = variables["params"]["adapter"]
    np.testing.assert_allclose(fitted["kernel"], expected["kernel"], atol=1e-4)
    np.testing.assert_allclose(fitted["bias"], expected["bias"], atol=1e-4)
    _, other = stitch(NET, vars_a, "hidden", NET, vars_b, "hidden", x=PADDED, mask=REAL)
    np.testing.assert_allclose(other["params"]["adapter"]["kernel"], fitted["kernel"], atol=1e-4)
    _, unmasked = stitch(NET, vars_a, "hidden", NET, vars_b, "hidden", x=PADDED)
    assert not np.allclose(unmasked["params"]["adapter"]["kernel"], fitted["kernel"], atol=1e-2)
    assert model.apply(variables, X, mask=REAL).shape == (8, 6, 2)


def test_a_stitch_mask_that_does_not_fit_the_cut_names_its_shape_and_the_layer():
    dense = GraphModel({"hidden": nn.Dense(4)})  # takes no mask: only the fit reads it
    variables = dense.init(jax.random.key(1), X)
    with pytest.raises(GraphError, match=r"stitch's mask, for a's 'hidden' of shape \(8, 6, 4\)"):
        stitch(dense, variables, "hidden", dense, variables, "hidden", x=X, mask=REAL[:, :5])


def test_a_float_stitch_mask_is_refused_as_the_layers_refuse_one():
    """An additive mask (0: real, -inf: not) fitted the adapter on the padded tokens alone,
    without a word, where no node of the models reads the mask (a Dense net)."""
    dense = GraphModel({"hidden": nn.Dense(4)})
    variables = dense.init(jax.random.key(1), X)
    additive = jnp.where(REAL, 0.0, -jnp.inf)
    with pytest.raises(TypeError, match=r"^stitch mask must be booleans .* pass mask == 0 "):
        stitch(dense, variables, "hidden", dense, variables, "hidden", x=X, mask=additive)
    with pytest.raises(TypeError, match=r"^fit_adapter mask must be booleans \(or integers"):
        fit_adapter(X, X, REAL.astype(jnp.float32))
    with pytest.raises(TypeError, match=r"^stitch mask must be booleans .*, got 'real' \(a str\)"):
        stitch(dense, variables, "hidden", dense, variables, "hidden", x=X, mask="real")
    with pytest.raises(
        TypeError, match=r"^fit_adapter mask must be booleans .*, got 'real' \(a str\)"
    ):
        fit_adapter(X, X, "real")
