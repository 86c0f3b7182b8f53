"""Blocks built from `phosjax.layers`: a learned choice of branches, a mixture of experts.

Each takes ``dtype`` (computation, ``None``: what the input and params promote to) and
``param_dtype`` (storage, float32), as Flax's layers, and gives them to all its layers.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from phosjax.layers import Choice, MixtureOfExperts, Residual
from phosjax.layers._common import CheckedFields, checked_size, input_width
from phosjax.models._blocks import DenseBlock, Layer


class Skip(CheckedFields):
    """The identity: a branch that lets a `Choice` skip its block. When the input has
    another width than ``features``, a linear projection (``Dense(features)``, a ResNet's
    shortcut) instead, so that blocks of different widths can follow each other.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> Skip().apply({}, jnp.ones(3))
      Array([1., 1., 1.], dtype=float32)
      >>> x = jnp.ones((2, 4))  # 4 features, not 8: a projection
      >>> y, variables = jax.eval_shape(Skip(8).init_with_output, jax.random.key(0), x)
      >>> y.shape, list(variables["params"])
      ((2, 8), ['projection'])
    """

    features: int | None = None
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.features is None or input_width(self, x) == checked_size(self, "features"):
            return x
        dense = nn.Dense(
            self.features, dtype=self.dtype, param_dtype=self.param_dtype, name="projection"
        )
        return dense(x)


def choice_block(
    features: int, per_example: bool = False, dtype: Any = None, param_dtype: Any = jnp.float32
) -> Choice:
    """A `Choice` between a residual ReLU layer, a plain ReLU layer and a skip.

    Branch weights are recorded in the ``path_weights`` collection under
    ``blocks_<i>/branch_<j>``.

    Args:
      features: the width of every branch (the skip projects an input of another width).
      per_example: the gate depends on the input (one weight per example).
      dtype: the branches' computation dtype (the gate computes in float32).
      param_dtype: the dtype every param is stored in.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from phosjax.models import choice_block
      >>> block = choice_block(4)
      >>> y, variables = jax.eval_shape(block.init_with_output, jax.random.key(0), jnp.ones((2, 4)))
      >>> y.shape, sorted(variables["params"])
      ((2, 4), ['branches_0', 'branches_1', 'gate_logits'])
    """
    dtypes = {"dtype": dtype, "param_dtype": param_dtype}
    # a tuple, not a list: the module must hash (a jit taking the model as static, say)
    branches = (DenseBlock(features, **dtypes), Layer(features, **dtypes), Skip(features, **dtypes))
    return Choice(branches, per_example=per_example, param_dtype=param_dtype)


def moe_block(
    features: int,
    num_experts: int = 4,
    top_k: int = 1,
    hidden_features: int = 64,
    dtype: Any = None,
    param_dtype: Any = jnp.float32,
) -> Residual:
    """``x + MixtureOfExperts(x)``: each example (or token) routed to ``top_k`` experts.

    The mixture raises the aux loss ``balance`` (load balancing, weight 0.01 by default).
    An input of another width than ``features`` is projected (`Residual`'s
    ``projection``, a ResNet's shortcut), so blocks of different widths can follow each
    other.

    Args:
      features: the output width.
      num_experts: how many experts.
      top_k: experts per example.
      hidden_features: each expert's hidden width.
      dtype: the experts' and the projection's computation dtype (the router computes
        in float32).
      param_dtype: the dtype every param is stored in.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from phosjax.models import moe_block
      >>> block = moe_block(4, num_experts=2)
      >>> y, _ = jax.eval_shape(block.init_with_output, jax.random.key(0), jnp.ones((2, 4)))
      >>> y.shape
      (2, 4)
    """
    experts = MixtureOfExperts(
        num_experts, top_k, hidden_features, dtype, features=features, param_dtype=param_dtype
    )
    return Residual(experts, param_dtype=param_dtype, dtype=dtype)
