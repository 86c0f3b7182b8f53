"""Helpers shared by the layer families: calling inner blocks and choosing dtypes."""

import functools
import inspect
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


@functools.lru_cache(maxsize=256)
def _train_argument(call: Any) -> str | None:
    """How a module's ``__call__`` takes ``train``: ``"keyword"`` (a parameter named
    ``train``), ``"positional"`` (a second positional parameter) or None.

    ``*args``/``**kwargs`` do not count: ``nn.Sequential`` would forward the flag to a layer
    that does not take it.
    """
    parameters = list(inspect.signature(call).parameters.values())[1:]
    if any(p.name == "train" for p in parameters):
        return "keyword"
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return "positional" if len(positional) >= 2 else None


def call_block(block: nn.Module, x: jax.Array, train: bool, *, positional: bool = False) -> Any:
    """Calls ``block(x, train=train)`` when the block's ``__call__`` names ``train``;
    with ``positional=True`` also ``block(x, train)`` when it takes a second positional
    parameter (user blocks of a model frame); else ``block(x)``.

    Examples:
      >>> class Shift:
      ...     def __call__(self, x, train):
      ...         return x + 1 if train else x
      >>> [call_block(Shift(), 1, train, positional=True) for train in (True, False)]
      [2, 1]
    """
    how = _train_argument(type(block).__call__)
    if how == "keyword":
        return block(x, train=train)
    if how == "positional" and positional:
        return block(x, train)
    return block(x)


def compute_dtype(dtype: Any, x: jax.Array) -> Any:
    """The dtype a layer computes in: its own ``dtype`` if set, else the input's."""
    if dtype is not None:
        return dtype
    return x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
