"""Helpers shared by the layer families: calling inner blocks and choosing dtypes."""

import functools
import inspect
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

TRAIN_FLAGS = ("train", "training", "is_training", "deterministic", "use_running_average")
"""The call parameters that take the train flag: ``train``, ``training`` and
``is_training`` as is, Flax's ``deterministic`` (`flax.linen.Dropout`) and
``use_running_average`` (`flax.linen.BatchNorm`) as ``not train`` (`EVAL_FLAGS`)."""

EVAL_FLAGS = ("deterministic", "use_running_average")
"""The train flags that are true in evaluation."""


@functools.lru_cache(maxsize=256)
def _train_parameter(call: Any) -> str | None:
    """The parameter of a module's ``__call__`` that takes the train flag, or None.

    ``*args``/``**kwargs`` do not count: ``nn.Sequential`` would forward the flag to a layer
    that does not take it.

    Raises:
      TypeError: ``call`` takes several train flags, or requires a parameter that is none.
    """
    parameters = list(inspect.signature(call).parameters.values())[2:]  # self and the input
    flags = [p.name for p in parameters if p.name in TRAIN_FLAGS]
    if len(flags) > 1:
        raise TypeError(
            f"{call.__qualname__} takes both {flags[0]!r} and {flags[1]!r}; a block called "
            f"with the train flag must take one of {TRAIN_FLAGS}."
        )
    required = [
        p.name
        for p in parameters
        if p.name not in TRAIN_FLAGS
        and p.default is p.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if required:
        raise TypeError(
            f"{call.__qualname__} requires the parameter {required[0]!r}, which phosjax cannot "
            f"pass: a block is called with its input and at most one of {TRAIN_FLAGS} (rename "
            f"a train flag to `train`, or give {required[0]!r} a default)."
        )
    return flags[0] if flags else None


def call_block(block: nn.Module, x: jax.Array, train: bool) -> Any:
    """Calls ``block`` on ``x``, passing the train flag the way its ``__call__`` takes it.

    ``train=train`` to a block that names ``train`` (or ``training``, ``is_training``);
    ``deterministic=not train`` or ``use_running_average=not train`` to one that names
    these (Flax's `Dropout`, `BatchNorm`), unless its constructor already set them;
    nothing to any other block.

    Raises:
      TypeError: the block takes several of these flags, or requires another parameter.

    Examples:
      >>> class Noisy:  # takes the flag the way flax.linen.Dropout does
      ...     def __call__(self, x, deterministic=None):
      ...         return x if deterministic else x + 1
      >>> [call_block(Noisy(), 0, train) for train in (True, False)]
      [1, 0]
    """
    name = _train_parameter(type(block).__call__)
    if name is None:
        return block(x)
    if name not in EVAL_FLAGS:
        return block(x, **{name: train})
    if getattr(block, name, None) is not None:  # fixed by the constructor (Flax merge_param)
        return block(x)
    return block(x, **{name: not train})


def compute_dtype(dtype: Any, x: jax.Array) -> Any:
    """The dtype a layer computes in: its own ``dtype`` if set, else the input's."""
    if dtype is not None:
        return dtype
    return x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
