"""`shuffled_positions`: a random permutation evaluated at a few positions, without a sort.

`jax.random.permutation` sorts all ``n`` indices; XLA:CPU sorts slowly (about 1.6 ms for
4,000 indices, 25 ms for 60,000), which would dwarf the train step of a small model if
done every step. Here the permutation is a keyed bijection of ``[0, 2**m)`` (a Feistel
network: `ROUNDS` rounds, each mixing one half of the bits into the other through an
integer hash of it and a round key), restricted to ``[0, n)`` by cycle walking (apply it
again while the value lies outside). It costs ``O(len(positions))`` and needs no state.
"""

from __future__ import annotations

import functools
import operator

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from phosjax._callables import cut_repr
from phosjax.data._checks import first_outside, one_integer, static_int_at_least

ROUNDS = 10
"""Feistel rounds, each with its own 32-bit round key. Small domains need many: with 6,
the placements of two of 8 items were measurably non-uniform (chi-square 165 on 55
degrees of freedom over 20,000 keys); with 8 or more they were not."""


def _hash(x: jax.Array) -> jax.Array:
    """A 32-bit integer mixing function (xorshift-multiply), bijective on ``uint32``.

    In `lax` ops on numpy scalars, the same jaxpr as jnp's operators: their jitted
    wrappers took two thirds of the time to trace `batch_indices`."""
    x = lax.bitwise_xor(x, lax.shift_right_logical(x, np.uint32(16)))
    x = lax.mul(x, np.uint32(0x7FEB352D))
    x = lax.bitwise_xor(x, lax.shift_right_logical(x, np.uint32(15)))
    x = lax.mul(x, np.uint32(0x846CA68B))
    return lax.bitwise_xor(x, lax.shift_right_logical(x, np.uint32(16)))


def _half_bits(n: int) -> int:
    """Bits of each Feistel half: the domain ``4**half`` is the smallest one >= ``n`` (and >= 4)."""
    return max(1, (max(n - 1, 1).bit_length() + 1) // 2)


def _feistel(x: jax.Array, round_keys: list[jax.Array], half: int) -> jax.Array:
    mask = jnp.uint32((1 << half) - 1)
    left, right = x >> half, x & mask
    for i in range(ROUNDS):
        left, right = right, left ^ (_hash(right ^ round_keys[i]) & mask)
    return (left << half) | right


def _round_keys(words: jax.Array, salt_word: jax.Array) -> list[jax.Array]:
    """`ROUNDS` 32-bit round keys hashed from the key's data ``words`` and the salt's
    uint32 ``salt_word`` (`_salt_word`).

    Integer hashing only: `jax.random` would run threefry, which XLA:CPU compiles into a
    loop, several microseconds per call, inside every train step.
    """
    mixed = _hash(salt_word ^ jnp.uint32(0x9E3779B9))
    for word in words:
        mixed = _hash(mixed ^ word)
    return [_hash(mixed ^ jnp.uint32((0x85EBCA6B * (i + 1)) & 0xFFFFFFFF)) for i in range(ROUNDS)]


_CALL = "shuffled_positions(k, positions, n, salt)"
"""`shuffled_positions` called with the key ``k``, as its errors about a key show it."""


def _salt_word(salt: jax.Array | int) -> jax.Array:
    """``salt`` modulo ``2**32`` as a uint32: a concrete integer of any size is reduced
    first (jax would refuse a Python int outside int32), so equal salts give one word
    whether they come as Python ints, numpy or jax integers.

    Examples:
      >>> int(_salt_word(2**32 + 5)), int(_salt_word(-1)) == int(_salt_word(jnp.int32(-1)))
      (5, True)
    """
    if isinstance(salt, int | np.integer):
        return jnp.uint32(operator.index(salt) % 2**32)
    return jnp.asarray(salt).astype(jnp.uint32)


def key_words(key: jax.Array, call: str = _CALL) -> jax.Array:
    """The uint32 words of one key; raises for no key, and for a batch of keys, which
    would be mixed into one. The errors name the function that ``call`` (its call with
    the key ``k``) calls, and say to vmap it.

    Examples:
      >>> key_words(jax.random.split(jax.random.key(0), 3))
      Traceback (most recent call last):
      ValueError: shuffled_positions: key must be one PRNG key ... of shape (3,); for a batch
      of keys, vmap: jax.vmap(lambda k: shuffled_positions(k, positions, n, salt))(keys)
      >>> key_words(0, "batch_indices(k, step, num_examples, batch_size)")
      Traceback (most recent call last):
      TypeError: batch_indices: key must be a PRNG key, e.g. jax.random.key(0) (or its
      raw uint32 key data), got the int 0
    """
    where = call.partition("(")[0]
    dtype = getattr(key, "dtype", None)
    typed = dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)
    if not typed and dtype != jnp.dtype(jnp.uint32):  # a seed, or an array that no key's data is
        got = (
            f"the {type(key).__name__} {cut_repr(key)}" if dtype is None else f"an array of {dtype}"
        )
        raise TypeError(
            f"{where}: key must be a PRNG key, e.g. jax.random.key(0) (or its raw "
            f"uint32 key data), got {got}"
        )
    words = jax.random.key_data(key) if typed else jnp.asarray(key)
    if words.ndim != 1:
        kind = "a typed key" if typed else "raw key data"
        raise ValueError(
            f"{where}: key must be one PRNG key (a typed key of shape (), or raw "
            f"key data of shape (words,)), got {kind} of shape {jnp.shape(key)}; for a batch "
            f"of keys, vmap: jax.vmap(lambda k: {call})(keys)"
        )
    return words.astype(jnp.uint32)


MAX_N = 2**31 - 1
"""The largest ``n``: the values are int32 (and positions wrap modulo ``n`` in int32)."""


def _checked_n(positions: jax.Array, n: int) -> int:
    """``n`` as an int; raises for a bad ``n``, non-integer positions, or a concrete
    position outside ``[0, n)``."""
    n = static_int_at_least("shuffled_positions: n", n)
    if n > MAX_N:
        raise ValueError(f"shuffled_positions: n={n} is larger than 2**31 - 1 = {MAX_N}")
    dtype = jnp.asarray(positions).dtype
    if not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(
            f"shuffled_positions: positions must be integers, got dtype {dtype}; "
            "cast them, e.g. positions.astype(jnp.int32)"
        )
    bad = first_outside(positions, n)
    if bad is not None:
        raise ValueError(
            f"shuffled_positions: position {bad} is outside [0, n={n}); "
            f"positions must lie in range({n})"
        )
    return n


def shuffled_positions(
    key: jax.Array, positions: jax.Array, n: int, salt: jax.Array | int = 0
) -> jax.Array:
    """``perm[positions]`` for the permutation ``perm`` of ``range(n)`` that ``key`` and
    ``salt`` draw.

    Pure and jittable (``positions`` and ``salt`` may be traced, ``n`` is static) and
    vmappable over ``key``. Each (key, salt) gives one fixed permutation; different ones
    give independent-looking permutations.

    Args:
      key: one PRNG key (typed or raw ``uint32`` key data); vmap over a batch of keys.
      positions: integer positions in ``[0, n)``, any shape. Concrete ones are checked;
        traced ones cannot be: a traced position ``p`` outside ``[0, n)`` gives
        ``perm[p % n]``.
      n: the size of the permuted range, an int (numpy's or a concrete jax scalar too)
        from 1 to ``2**31 - 1``.
      salt: one integer (a scalar, traced or not) that draws another permutation from the
        same key (e.g. the epoch); vmap over several. Salts are taken modulo ``2**32``
        (a Python int of any size too): salts equal modulo ``2**32`` draw one permutation.

    Returns:
      int32 values in ``[0, n)``, shaped like ``positions``; distinct positions give
      distinct values.

    Raises:
      TypeError: ``n`` is no static integer, ``positions`` are not integers, or ``salt``
        is no integer (a float, a bool).
      ValueError: ``n`` outside ``[1, 2**31 - 1]``, a concrete position lies outside
        ``[0, n)``, ``key`` is a batch of keys, or ``salt`` an array of several.

    Examples:
      >>> key = jax.random.key(0)
      >>> perm = shuffled_positions(key, jnp.arange(10), 10)
      >>> sorted(perm.tolist()) == list(range(10))
      True
      >>> bool(jnp.all(shuffled_positions(key, jnp.arange(3, 6), 10) == perm[3:6]))
      True
    """
    n = _checked_n(positions, n)
    one_integer(
        "shuffled_positions",
        "salt",
        salt,
        "which permutation to draw, e.g. the epoch",
        "the epoch",
        "for the permutations of several salts, vmap: jax.vmap(lambda s: "
        "shuffled_positions(key, positions, n, salt=s))(salts)",
    )
    return permuted(key_words(key), positions, n, salt)


def permuted(words: jax.Array, positions: jax.Array, n: int, salt: jax.Array | int) -> jax.Array:
    """`shuffled_positions` of arguments its caller has checked, the key given as its
    ``words`` (`key_words`)."""
    positions = jnp.asarray(positions)
    if positions.dtype.itemsize < 4:  # n would wrap in a narrower dtype (1000 in int8: -24)
        positions = positions.astype(jnp.int32)
    return _walked(words, positions, n, _salt_word(salt))


@functools.partial(jax.jit, static_argnums=2)
def _walked(words: jax.Array, positions: jax.Array, n: int, salt_word: jax.Array) -> jax.Array:
    """`permuted` of int32 (or wider) ``positions`` and the salt as its uint32 word. Jitted:
    called eagerly, its loop was compiled anew at every call (0.3 s+ each)."""
    half = _half_bits(n)
    round_keys = _round_keys(words, salt_word)
    bound = jnp.uint32(n)

    def outside(x: jax.Array) -> jax.Array:
        return jnp.any(x >= bound)

    def walk(x: jax.Array) -> jax.Array:
        return jnp.where(x >= bound, _feistel(x, round_keys, half), x)

    # In [0, n), the walk ends: it meets a value below n at the latest back at its start.
    inside = jnp.remainder(positions, n).astype(jnp.uint32)
    start = _feistel(inside, round_keys, half)
    return lax.while_loop(outside, walk, start).astype(jnp.int32)
