"""`numbers_as_array`: a nested list of scalars as the one array a model reads
(`numbers_read_together`: the groups of numbers read as one array each, with its dtype);
`in_type_of`: an array in the dtype and weak type of a value it stands in for
(`zeros_in_type_of`: zeros so typed); `concrete_number`: the Python number a numpy scalar or a
concrete 0-d array holds."""

import contextlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

_SCALARS = (jax.Array, np.ndarray, np.number, np.bool_, bool, int, float, complex)
"""What `jax.jit` traces as a 0-d array, in a list of an input's scalars."""


def concrete_number(value: Any) -> Any:
    """``value`` as the Python number it holds when it is a numpy scalar or a concrete 0-d
    numpy or JAX array (an element of ``jnp.linspace``, say), else as it is (a traced
    value too): a size, rate or seed given so is that number.

    Examples:
      >>> concrete_number(jnp.float32(0.5)), concrete_number(np.int64(2)), concrete_number("2")
      (0.5, 2, '2')
      >>> concrete_number(np.array([2])), jax.jit(lambda v: jnp.ndim(concrete_number(v)))(1.0)
      (array([2]), Array(0, dtype=int32, weak_type=True))
    """
    if isinstance(value, np.generic):
        return value.item()
    held = isinstance(value, np.ndarray | jax.Array) and not isinstance(value, jax.core.Tracer)
    return value.item() if held and value.ndim == 0 else value


def numbers_as_array(value: Any) -> Any:
    """``value``; a (nested) list or tuple of scalars (Python numbers and bools, numpy
    scalars, 0-d arrays) as one array, as a graph node and `phosjax.blurb` read an
    input: `jax.jit` traces each scalar of such a list as a 0-d array of its own, so a
    jitted ``apply`` reads it as ``apply`` does (a ragged one stays one, for the caller
    to name).

    Examples:
      >>> numbers_as_array([[0.0, 1.0]]).shape, numbers_as_array([True, jnp.float32(2)])
      ((1, 2), Array([1., 2.], dtype=float32))
      >>> numbers_as_array([[0.0, 1.0], [2.0]]), numbers_as_array([jnp.ones(2)])[0].shape
      ([[0.0, 1.0], [2.0]], (2,))
    """
    if _scalars_in_list(value):
        with contextlib.suppress(TypeError, ValueError):  # ragged: no array
            return jnp.asarray(value)
    return value


def _scalars_in_list(value: Any) -> list[Any]:
    """The leaves of ``value`` if it is a (nested) list or tuple of scalars only, what
    `numbers_as_array` reads as one array; else none."""
    leaves = jax.tree.leaves(value)
    if isinstance(value, list | tuple) and all(
        isinstance(v, _SCALARS) and jnp.ndim(v) == 0 for v in leaves
    ):
        return leaves
    return []


def numbers_read_together(value: Any) -> list[tuple[Any, list[Any]]]:
    """The Python numbers in ``value``, in groups of those read as one array, each with
    that array's dtype: each (nested) list or tuple of scalars only (as
    `numbers_as_array` reads it, its dtype from all its scalars), also inside a dict,
    as one group; every other number alone.

    Examples:
      >>> numbers_read_together({"a": [2**40, 0.5], "b": (3, jnp.ones(2)), "c": 1.5})
      [(dtype('float32'), [1099511627776, 0.5]), (dtype('int32'), [3]), (dtype('float32'), [1.5])]
      >>> numbers_read_together([2**40, jnp.float16(1), True])
      [(dtype('float16'), [1099511627776])]
    """
    if type(value) in (int, float):
        return [(jnp.result_type(value), [value])]
    if scalars := _scalars_in_list(value):
        return [(jnp.result_type(*scalars), [v for v in scalars if type(v) in (int, float)])]
    children = jax.tree.leaves(value, is_leaf=lambda v: v is not value)
    if len(children) == 1 and children[0] is value:  # an array, a str: no number
        return []
    return [group for child in children for group in numbers_read_together(child)]


def in_type_of(value: Any, spec: Any) -> jax.Array:
    """``value`` in ``spec``'s dtype, weakly typed where ``spec`` is (as an array made from
    a Python number is, a knob's value): a value standing in for a weakly typed one then
    scales a bfloat16 activation without promoting it to float32, as the one it replaces.
    Strongly typed where JAX reads no Python number in that dtype: the dtype is kept over
    the weak type (a weakly typed float16 or bfloat16; a float32 knob made without
    ``jax_enable_x64``, used with it, where Python numbers are float64).

    Examples:
      >>> weak = jax.ShapeDtypeStruct((2,), jnp.float32, weak_type=True)
      >>> in_type_of(jnp.ones(2), weak)
      Array([1., 1.], dtype=float32, weak_type=True)
      >>> in_type_of(jnp.full(2, 1.0), jax.ShapeDtypeStruct((2,), jnp.float16))
      Array([1., 1.], dtype=float16)
      >>> in_type_of(np.ones(2, np.float16), weak.update(dtype=jnp.float16))
      Array([1., 1.], dtype=float16)
    """
    typed, zero = jnp.asarray(value, spec.dtype), _weak_zero(spec)
    # cast first: a float set into an int array warns (JAX: "will result in an error")
    return typed if zero is None else jnp.full(typed.shape, zero).at[...].set(typed)


def zeros_in_type_of(spec: Any) -> jax.Array:
    """Zeros of ``spec``'s shape, typed as `in_type_of` types a value for it, made by one
    operation (not zeros, then a weakly typed copy of them).

    Examples:
      >>> zeros_in_type_of(jax.ShapeDtypeStruct((2,), jnp.float32, weak_type=True))
      Array([0., 0.], dtype=float32, weak_type=True)
      >>> zeros_in_type_of(jax.ShapeDtypeStruct((), jnp.bfloat16, weak_type=True))
      Array(0, dtype=bfloat16)
    """
    zero = _weak_zero(spec)
    return jnp.zeros(spec.shape, spec.dtype) if zero is None else jnp.full(spec.shape, zero)


def _weak_zero(spec: Any) -> Any:
    """The Python number JAX reads as a weakly typed zero of ``spec``'s dtype, where
    ``spec`` is weakly typed and there is one (`in_type_of`); else None (a float16, or a
    float32 under ``jax_enable_x64``, where Python floats are float64)."""
    if not spec.weak_type:
        return None
    zero = np.dtype(spec.dtype).type(0).item()
    return zero if jnp.result_type(zero) == spec.dtype else None
