"""Checks of the arguments and arrays of `phosjax.data`, shared by its modules."""

from __future__ import annotations

import numbers
import operator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from phosjax._callables import cut_repr
from phosjax.core._numbers import concrete_number


def static_int_at_least(name: str, value: Any, least: int = 1) -> int:
    """``value`` as a plain int when it is an integer (numpy's and concrete jax scalars
    too) of at least ``least``: a static argument (a size, a seed), a TypeError if it is
    none (`phosjax.train`'s ``int_at_least`` checks config fields, raising ValueErrors).

    Raises:
      TypeError: naming ``name``: ``value`` is no integer (a float, a bool, a traced
        value).
      ValueError: naming ``name``: ``value`` is below ``least``.

    Examples:
      >>> static_int_at_least("n", np.int64(3))
      3
      >>> static_int_at_least("seed", -1, least=0)
      Traceback (most recent call last):
      ValueError: seed must be an int >= 0, got -1
    """
    kind = "positive int" if least == 1 else f"int >= {least}"
    try:
        if isinstance(value, bool | np.bool_):  # True is an int in Python
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be a static {kind}, got {cut_repr(value)}") from None
    if value < least:
        raise ValueError(f"{name} must be {'a' if least == 1 else 'an'} {kind}, got {value}")
    return value


def shape_sizes(shape: Any) -> Any:
    """``shape``, one example's shape as given (an ``input_shape``), as a tuple of its
    sizes, numpy and concrete JAX scalars read as Python numbers: an int is one axis, and
    a list, tuple, range or 1-D numpy (or concrete JAX) array is read entry by entry. Any
    other value (a string, a 2-D or traced array) as it is, and the sizes unchecked, for
    the caller to check. `phosjax.models.ModelConfig` and `phosjax.data` read an
    ``input_shape`` so.

    Examples:
      >>> shape_sizes(np.array([8, 8, 1])), shape_sizes(40), shape_sizes(range(2))
      ((8, 8, 1), (40,), (0, 1))
      >>> shape_sizes(np.array(3)), shape_sizes("8"), shape_sizes((8, 1.5))
      ((3,), '8', (8, 1.5))
    """
    held = isinstance(shape, np.ndarray | jax.Array) and not isinstance(shape, jax.core.Tracer)
    if held and np.ndim(shape) <= 1:
        shape = np.asarray(shape).tolist()  # 0-d: a Python number; 1-D: a list of them
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        return (int(shape),)
    if isinstance(shape, list | tuple | range):
        return tuple(_number(n) for n in shape)
    return shape


def _number(value: Any) -> Any:
    """``value`` as a Python number when it is a numpy or concrete JAX scalar (0-d), an
    int for any integer but a bool; the rest as it is.

    Examples:
      >>> _number(np.int64(3)), _number(jnp.int32(3)), _number(np.float32(1.5)), _number("a")
      (3, 3, 1.5, 'a')
    """
    value = concrete_number(value)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return value


def first_outside(values: Any, stop: int) -> Any:
    """The first concrete entry of ``values`` outside ``[0, stop)``; None when there is
    none or ``values`` is traced (it cannot be checked).

    Examples:
      >>> first_outside(np.array([0, 3, 5, -1]), 4), first_outside(np.arange(4), 4)
      (np.int64(5), None)
    """
    if isinstance(values, jax.core.Tracer):
        return None
    values = np.asarray(values)
    bad = values[(values < 0) | (values >= stop)]
    return bad[0] if bad.size else None


def is_real(dtype: Any) -> bool:
    """Whether ``dtype`` holds real numbers: a float (bfloat16 too), integer or bool dtype,
    not complex (float32 would drop the imaginary part), strings or objects.

    Examples:
      >>> is_real(np.dtype(np.uint8)), is_real(jnp.bfloat16), is_real(np.complex64)
      (True, True, False)
    """
    return any(jnp.issubdtype(dtype, kind) for kind in (np.floating, np.integer, np.bool_))


def one_integer(
    where: str, name: str, value: Any, meaning: str, example: str, several: str
) -> None:
    """Raises unless the argument ``name`` of ``where`` is one integer, concrete or traced:
    a scalar of an integer dtype, not a bool (nor None or a string). A float would be cut
    to an int silently, and an array of several would mix them into one result.

    Args:
      where: the function, named in the errors.
      name: the argument, named in the errors.
      value: its value.
      meaning: what it is, said in the errors, e.g. ``"the global step"``.
      example: a value to pass instead of a bool, e.g. ``"0 for the first batch"``.
      several: what to do for several values instead (a vmap), said in the error for an
        array of them.

    Examples:
      >>> one_integer("f", "salt", 1.5, "a salt", "0", "vmap f")  # doctest: +NORMALIZE_WHITESPACE
      Traceback (most recent call last):
      TypeError: f: salt must be a whole number (a salt), got dtype float32; a float salt
      would be cut to an int silently
      >>> one_integer("f", "step", None, "the global step", "0", "vmap f")
      Traceback (most recent call last):
      TypeError: f: step must be a whole number (the global step), got None
    """
    if not isinstance(value, jax.Array | np.ndarray | np.generic | int | float | complex):
        got = "None" if value is None else f"the {type(value).__name__} {cut_repr(value)}"
        raise TypeError(f"{where}: {name} must be a whole number ({meaning}), got {got}")
    dtype = jnp.result_type(value)
    if dtype == jnp.bool_:
        raise TypeError(
            f"{where}: {name} must be a whole number ({meaning}), got the bool {value!r}; "
            f"pass a number, e.g. {example}"
        )
    if not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(
            f"{where}: {name} must be a whole number ({meaning}), got dtype {dtype}; a float "
            f"{name} would be cut to an int silently"
        )
    if jnp.ndim(value) != 0:
        raise ValueError(
            f"{where}: {name} must be one {name} (a scalar), got shape {jnp.shape(value)}; "
            f"{several}"
        )
