"""Mixed precision: compute in bfloat16, keep float32 master params (`HParams.compute_dtype`)."""

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from phosjax.core._module_check import check_module
from phosjax.train._config import COMPUTE_DTYPES, one_of


def cast_floating(tree: Any, dtype: Any) -> Any:
    """``tree`` with every floating-point leaf cast to ``dtype`` (others left as they are).

    Examples:
      >>> import jax.numpy as jnp
      >>> tree = cast_floating({"w": jnp.ones(2), "step": jnp.zeros((), jnp.int32)}, "bfloat16")
      >>> str(tree["w"].dtype), str(tree["step"].dtype)
      ('bfloat16', 'int32')
    """
    dtype = jnp.dtype(dtype)

    def cast(leaf: Any) -> Any:
        leaf = jnp.asarray(leaf)
        return leaf.astype(dtype) if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf

    return jax.tree.map(cast, tree)


def precision_apply(model: nn.Module, compute_dtype: str) -> Callable[..., Any]:
    """``model.apply``, computing in ``compute_dtype``; what it returns is float32.

    With ``"float32"`` this is ``model.apply`` itself. Otherwise the params and the input
    are cast to ``compute_dtype`` on the way in (the other collections, e.g.
    ``batch_stats``, are passed as stored), and the outputs and every written collection
    are cast to float32 on the way out, so losses, metrics, running statistics and the
    optimizer see float32. Gradients with respect to the float32 params flow through the
    cast and come back float32.

    Raises:
      TypeError: ``model`` is no Flax module (a model config: `check_module`).
      ValueError: ``compute_dtype`` is not one of `COMPUTE_DTYPES` (e.g. ``"int8"``,
        which would round every param to an integer; ``"float16"``, whose gradients
        underflow without loss scaling).

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> model = nn.Dense(2)
      >>> variables = model.init(jax.random.key(0), jnp.ones((1, 3)))
      >>> apply = precision_apply(model, "bfloat16")
      >>> str(apply(variables, jnp.ones((1, 3))).dtype)
      'float32'
      >>> grads = jax.grad(lambda p: apply({"params": p}, jnp.ones((1, 3))).sum())(
      ...     variables["params"])
      >>> str(grads["kernel"].dtype)
      'float32'
    """
    check_module("precision_apply", model)
    one_of("precision_apply compute_dtype", compute_dtype, COMPUTE_DTYPES)
    if compute_dtype == "float32":
        return model.apply
    dtype = jnp.dtype(compute_dtype)

    def apply(variables: Any, x: jax.Array, *args: Any, **kwargs: Any) -> Any:
        variables = {**variables, "params": cast_floating(variables.get("params", {}), dtype)}
        out = model.apply(variables, cast_floating(x, dtype), *args, **kwargs)
        return cast_floating(out, jnp.float32)

    return apply
