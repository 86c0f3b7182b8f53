"""Sums of low-precision floats taken wide: bfloat16 and float16 values summed as float32."""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def summing_dtype(dtype: Any) -> np.dtype:
    """The float dtype to sum values of ``dtype`` in: ``dtype`` itself when it is a float
    of 32 bits or more, else float32 (a bfloat16 sum rounds to 3 digits), and for integers
    the default float (float64 under ``jax_enable_x64``). Chosen without promoting types,
    so that it holds under ``jax.numpy_dtype_promotion("strict")``.

    Examples:
      >>> [summing_dtype(d).name for d in (jnp.bfloat16, jnp.float32, jnp.int32)]
      ['float32', 'float32', 'float32']
    """
    dtype = np.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        return np.dtype(jax.dtypes.canonicalize_dtype(np.float64))
    return dtype if dtype.itemsize >= 4 else np.dtype(np.float32)


def widened(value: jax.Array) -> jax.Array:
    """A floating ``value`` in its `summing_dtype` (bfloat16 as float32), any other as it is.

    Examples:
      >>> widened(jnp.ones(2, jnp.bfloat16)).dtype, widened(jnp.ones(2, jnp.int32)).dtype
      (dtype('float32'), dtype('int32'))
    """
    if not jnp.issubdtype(value.dtype, jnp.floating):
        return value
    wide = summing_dtype(value.dtype)
    return value if value.dtype == wide else value.astype(wide)
