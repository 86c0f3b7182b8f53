"""The zoo's blocks take ``dtype`` and ``param_dtype`` as Flax's layers do."""

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phosjax.core import flatten
from phosjax.models import (
    DenseBlock,
    GRUBlock,
    Layer,
    ModelConfig,
    Patches,
    ResBlock,
    Skip,
    build_model,
    choice_block,
    moe_block,
)
from phosjax.models.graph import graph_model

Make = Callable[..., nn.Module]

# Each zoo block (and each way it builds layers), built with ``**kwargs``, on an input.
BLOCKS: dict[str, tuple[Make, tuple[int, ...]]] = {
    "dense_block": (lambda **kw: DenseBlock(4, **kw), (2, 3)),
    "layer_dense": (lambda **kw: Layer(4, **kw), (2, 3)),
    "layer_conv": (lambda **kw: Layer(4, stride=2, **kw), (2, 8, 3)),
    "res_block": (lambda **kw: ResBlock(4, downsample=True, **kw), (2, 8, 3)),
    "gru_block": (lambda **kw: GRUBlock(4, **kw), (2, 5, 3)),
    "patches": (lambda **kw: Patches(4, patch_size=2, **kw), (2, 8, 3)),
    "skip_projected": (lambda **kw: Skip(4, **kw), (2, 3)),
    "choice_block": (lambda **kw: choice_block(4, **kw), (2, 3)),
    "moe_block": (lambda **kw: moe_block(4, num_experts=2, hidden_features=4, **kw), (2, 3)),
}
by_block = pytest.mark.parametrize("name", sorted(BLOCKS))
LAYERS = (nn.Dense, nn.Conv, nn.BatchNorm, nn.GRUCell)


def _run(name: str, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """The block's variables and the outputs of its Flax layers (by path) but
    the routers and gates, which compute in float32 whatever the dtype."""
    make, shape = BLOCKS[name]
    block, x = make(**kwargs), jax.random.normal(jax.random.key(1), shape)
    variables = block.init(jax.random.key(0), x)
    _, state = block.apply(
        variables, x, capture_intermediates=lambda m, _: isinstance(m, LAYERS), mutable=True
    )
    layers = flatten(state["intermediates"])
    return variables, {
        path: value
        for path, value in layers.items()
        if (path.endswith("/__call__") or path == "final_state")  # a GRU's cell is scanned
        and not path.startswith(("gate/", "block/router/"))
    }


@by_block
def test_param_dtype_stores_every_param_of_a_block_in_it(name):
    variables, _ = _run(name, param_dtype=jnp.bfloat16)
    assert {leaf.dtype for leaf in jax.tree.leaves(variables["params"])} == {
        jnp.dtype(jnp.bfloat16)
    }


@by_block
def test_dtype_computes_every_layer_of_a_block_in_it(name):
    _, layers = _run(name, dtype=jnp.bfloat16)
    assert layers and all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(layers))
    _, layers = _run(name)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(layers)), layers


def test_the_resnet_graph_twin_takes_the_dtype_options_as_the_zoo_model():
    options = {"dtype": "bfloat16", "param_dtype": "bfloat16"}
    config = ModelConfig("resnet", 3, (8, 8, 1), width=(4, 8), options=options)
    zoo, graph = build_model(config), graph_model(config)
    x = jax.random.normal(jax.random.key(1), (2, 8, 8, 1))
    variables = zoo.init(jax.random.key(0), x)
    assert {leaf.dtype for leaf in jax.tree.leaves(variables["params"])} == {
        jnp.dtype(jnp.bfloat16)
    }
    out = graph.apply(variables, x)
    assert out["blocks_1/conv_1"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(out["head"], zoo.apply(variables, x))


def test_a_float64_gru_draws_its_recurrent_kernel_orthogonal_in_float64():
    with jax.enable_x64(True):
        block = GRUBlock(16, param_dtype=jnp.float64)
        x = jnp.ones((2, 3, 4), jnp.float64)
        kernel = block.init(jax.random.key(0), x)["params"]["GRUCell_0"]["hn"]["kernel"]
        assert kernel.dtype == jnp.float64
        error = np.abs(np.asarray(kernel).T @ np.asarray(kernel) - np.eye(16)).max()
        assert error < 1e-12, error  # not float32's 1e-7
