"""Helpers shared by the layer families: calling inner blocks and choosing dtypes."""

import functools
import inspect
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


@functools.lru_cache(maxsize=256)
def _accepts_train(call: Any) -> bool:
    # Only a named ``train`` parameter counts: ``**kwargs`` (e.g. ``nn.Sequential``) may forward
    # the flag to a layer that does not take it.
    return "train" in inspect.signature(call).parameters


def call_block(block: nn.Module, x: jax.Array, train: bool) -> jax.Array:
    """Calls ``block(x)``, passing ``train`` when the block's ``__call__`` names it."""
    if _accepts_train(type(block).__call__):
        return block(x, train=train)
    return block(x)


def compute_dtype(dtype: Any, x: jax.Array) -> Any:
    """The dtype a layer computes in: its own ``dtype`` if set, else the input's."""
    if dtype is not None:
        return dtype
    return x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
