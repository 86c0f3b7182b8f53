"""On-device batching: permutation per epoch, determinism, jit and vmap."""

import json
import os
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phosjax.data import batch_indices, shuffled_positions, take_batch
from tests.compiles import compiles_seen


def _epoch(key, epoch, num_examples, batch_size):
    steps = num_examples // batch_size
    return np.concatenate(
        [batch_indices(key, epoch * steps + s, num_examples, batch_size) for s in range(steps)]
    )


def test_every_example_once_per_epoch_and_epochs_differ(key):
    first, second = _epoch(key, 0, 12, 4), _epoch(key, 1, 12, 4)
    np.testing.assert_array_equal(np.sort(first), np.arange(12))
    np.testing.assert_array_equal(np.sort(second), np.arange(12))
    assert not np.array_equal(first, second)
    # The epoch is the permutation drawn from the key and the epoch.
    whole = shuffled_positions(key, jnp.arange(12), 12, salt=1)
    np.testing.assert_array_equal(second, whole)


def test_remainder_is_dropped_without_repeats(key):
    epoch = _epoch(key, 0, 10, 3)
    assert epoch.shape == (9,) and len(set(epoch.tolist())) == 9


def test_same_key_same_order_different_keys_differ(key):
    same = _epoch(key, 0, 32, 8)
    np.testing.assert_array_equal(_epoch(jax.random.clone(key), 0, 32, 8), same)
    assert not np.array_equal(_epoch(jax.random.fold_in(key, 1), 0, 32, 8), same)


def test_jit_and_vmap_over_keys_match_separate_calls():
    keys = jax.random.split(jax.random.key(3), 4)
    step = jnp.int32(5)
    separate = np.stack([batch_indices(k, 5, 20, 6) for k in keys])
    vmapped = jax.jit(jax.vmap(batch_indices, in_axes=(0, None, None, None)), static_argnums=(2, 3))
    np.testing.assert_array_equal(vmapped(keys, step, 20, 6), separate)
    jitted = jax.jit(batch_indices, static_argnums=(2, 3))
    np.testing.assert_array_equal(jitted(keys[0], step, 20, 6), separate[0])
    assert len({tuple(row) for row in separate.tolist()}) == 4


def test_eager_calls_compile_the_walk_once_not_at_every_call(key):
    """Called eagerly, batch_indices and shuffled_positions compiled their loop anew at
    every call (0.3 s+ each): drawing an epoch's batches took seconds."""
    first = batch_indices(key, 0, 32, 8)
    shuffled_positions(key, jnp.arange(5), 32)
    with compiles_seen() as compiled:
        later = [batch_indices(key, step, 32, 8) for step in (1, 5)]
        salted = shuffled_positions(key, jnp.arange(5), 32, salt=3)
    assert compiled == []
    np.testing.assert_array_equal(later[0], _epoch(key, 0, 32, 8)[8:16])
    np.testing.assert_array_equal(later[1], _epoch(key, 1, 32, 8)[8:16])
    np.testing.assert_array_equal(salted, _epoch(key, 3, 32, 32)[:5])
    assert not np.array_equal(first, later[0])


def test_take_batch_gathers_matching_rows(key):
    x = jnp.arange(24.0).reshape(8, 3)
    y = jnp.arange(8, dtype=jnp.int32)
    xb, yb = jax.jit(take_batch, static_argnums=3)(key, 2, (x, y), 4)
    np.testing.assert_array_equal(yb, batch_indices(key, 2, 8, 4))
    np.testing.assert_array_equal(xb, x[yb])


def test_bad_sizes_are_errors(key):
    with pytest.raises(
        ValueError, match=r"^batch_indices: batch_size=5 is larger than num_examples=4"
    ):
        batch_indices(key, 0, 4, 5)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        batch_indices(key, 0, 4, 0)
    with pytest.raises(TypeError, match="num_examples must be a static positive int"):
        batch_indices(key, 0, 4.0, 2)
    with pytest.raises(TypeError, match="batch_size must be a static positive int, got True"):
        batch_indices(key, 0, 4, True)
    with pytest.raises(
        ValueError, match=r"^take_batch: batch_size=5 is larger than the 4 rows of `arrays`; "
    ):  # it said num_examples=4, which take_batch takes no argument of
        take_batch(key, 0, (jnp.zeros(4),), 5)
    with pytest.raises(
        ValueError, match=r"^take_batch: the leaves of `arrays` have no rows; give at least "
    ):  # it said "num_examples must be a positive int, got 0"
        take_batch(key, 0, (jnp.zeros((0, 3)),), 2)
    with pytest.raises(TypeError, match=r"^take_batch: batch_size must be a static positive int"):
        take_batch(key, 0, (jnp.zeros(4),), 2.0)
    for size, error in ((0, ValueError), (2.0, TypeError)):  # no rows: asked 'at least 0'
        with pytest.raises(error, match=rf"^take_batch: batch_size must be .*, got {size}$"):
            take_batch(key, 0, (jnp.zeros((0, 3)),), size)
    with pytest.raises(ValueError, match=r"different leading sizes \[3, 4\]"):
        take_batch(key, 0, (jnp.zeros(4), jnp.zeros(3)), 2)
    for arrays, leaf in (
        ({"x": jnp.zeros(4), "n": 3.0}, "['n']"),
        ((jnp.zeros(4), [0, 1]), "[1][0]"),
    ):
        with pytest.raises(
            ValueError, match=rf"the leaf arrays{re.escape(leaf)} is a scalar; every"
        ):
            take_batch(key, 0, arrays, 2)
    with pytest.raises(TypeError, match=r"step must be a whole number .*got dtype float32"):
        batch_indices(key, jnp.float32(2.7), 4, 2)
    assert batch_indices(key, np.int64(1), 4, 2).shape == (2,)  # any integer dtype


def test_a_bool_step_is_refused_as_a_bool(key):
    for step in (True, jnp.bool_(False)):
        with pytest.raises(
            TypeError,
            match=r"step must be a whole number \(the global step\), got the bool "
            r"(True|.*False.*); pass a number, e.g. 0 for the first batch$",
        ) as error:
            batch_indices(key, step, 4, 2)
        assert "float" not in str(error.value)


def test_several_steps_at_once_are_refused_rather_than_mixed_into_one_batch(key):
    for steps in (jnp.arange(3), np.arange(2), jnp.zeros((1,), jnp.int32)):
        with pytest.raises(
            ValueError,
            match=rf"step must be one step \(a scalar\), got shape {re.escape(str(steps.shape))}; "
            r"for the batches of several steps, vmap",
        ):
            batch_indices(key, steps, 9, 3)
        with pytest.raises(ValueError, match=r"step must be one step \(a scalar\)"):
            jax.jit(batch_indices, static_argnums=(2, 3))(key, steps, 9, 3)
    with pytest.raises(
        ValueError,
        match=r"^take_batch: step must be one step .* vmap: jax\.vmap\(lambda s: "
        r"take_batch\(key, s, arrays, batch_size\)\)\(steps\)$",
    ):
        take_batch(key, jnp.arange(2), (jnp.zeros(6),), 2)
    per_step = jax.vmap(lambda s: batch_indices(key, s, 9, 3))(jnp.arange(3))
    np.testing.assert_array_equal(per_step, _epoch(key, 0, 9, 3).reshape(3, 3))


def test_a_concrete_negative_step_is_refused_a_traced_one_cannot_be(key):
    for step in (-1, np.int64(-3), jnp.int32(-2)):
        with pytest.raises(
            ValueError, match=rf"step={step} is negative; steps count batches from 0 across epochs"
        ):
            batch_indices(key, step, 6, 2)
    with pytest.raises(ValueError, match=r"^take_batch: step=-1 is negative"):  # not batch_indices
        take_batch(key, -1, (jnp.zeros(6),), 2)
    traced = jax.jit(batch_indices, static_argnums=(2, 3))(key, jnp.int32(-1), 6, 2)
    assert traced.shape == (2,)  # unchecked: the last batch of a permutation of its own
    np.testing.assert_array_equal(batch_indices(key, 0, 6, 2), _epoch(key, 0, 6, 2)[:2])


def test_a_concrete_step_beyond_int32_is_refused_not_overflowed(key):
    assert batch_indices(key, 2**31 - 1, 6, 2).shape == (2,)
    for step in (2**31, np.int64(2**40), np.uint32(2**31)):
        with pytest.raises(
            ValueError,
            match=rf"step={step} does not fit the int32 that steps are counted in "
            r"\(at most 2147483647\)",
        ):
            batch_indices(key, step, 6, 2)


def test_shuffled_positions_takes_any_integer_n_and_refuses_the_rest(key):
    perm = shuffled_positions(key, jnp.arange(10), 10)
    for n in (np.int64(10), jnp.int32(10)):
        np.testing.assert_array_equal(shuffled_positions(key, jnp.arange(10), n), perm)
    with pytest.raises(TypeError, match=r"shuffled_positions: n must be a static positive int"):
        shuffled_positions(key, jnp.arange(10), 10.0)
    with pytest.raises(TypeError, match=r"positions must be integers, got dtype float32"):
        shuffled_positions(key, jnp.array([0.5, 1.5, 2.9]), 10)
    for n in (2**31, 2**32):
        with pytest.raises(ValueError, match=rf"n={n} is larger than 2\*\*31 - 1 = 2147483647"):
            shuffled_positions(key, jnp.arange(3), n)
    largest = np.asarray(shuffled_positions(key, jnp.array([0, 1, 2**31 - 2]), 2**31 - 1))
    assert len(set(largest.tolist())) == 3 and ((largest >= 0) & (largest < 2**31 - 1)).all()


@pytest.mark.parametrize("n", [1, 2, 5, 16, 17, 1000, 4097])
def test_shuffled_positions_is_a_permutation_of_any_size(n):
    perm = np.asarray(shuffled_positions(jax.random.key(n), jnp.arange(n), n))
    np.testing.assert_array_equal(np.sort(perm), np.arange(n))
    assert perm.dtype == np.int32


OUTSIDE = """
import jax, jax.numpy as jnp
from phosjax.data import shuffled_positions
key = jax.random.key(0)
for bad in ([3, 16], [12], [-1]):
    try:
        shuffled_positions(key, jnp.array(bad), 10)
    except ValueError as error:
        print(error)
traced = jax.jit(shuffled_positions, static_argnums=2)
print(traced(key, jnp.array([-1, 10, 12, 16, 2**30]), 10).tolist())
"""
NARROW = """
import jax, jax.numpy as jnp
from phosjax.data import shuffled_positions
key = jax.random.key(0)
for dtype, n in (("int8", 1000), ("uint8", 1000), ("int16", 40000), ("uint16", 70000)):
    positions = jnp.array([0, 1, 2, 100, 250], jnp.int32) % jnp.iinfo(dtype).max
    print(shuffled_positions(key, positions.astype(dtype), n).tolist()
          == shuffled_positions(key, positions, n).tolist())
"""


@pytest.fixture(scope="module")
def printed() -> dict[str, list[str]]:
    """The lines `OUTSIDE` and `NARROW` print, run in a subprocess with a timeout (code
    that once hung), each in its own namespace: one start of python and jax for both.
    A script that raises or hangs ends its lines with a line saying so."""
    scripts = {"outside": OUTSIDE, "narrow": NARROW}
    runner = "".join(
        f"print({name!r})\ntry:\n    exec({body!r}, {{}})\n"
        "except Exception as error:\n    print(f'raised {error!r}')\n"
        for name, body in scripts.items()
    )
    command = [sys.executable, "-c", runner]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    cwd = pathlib.Path(__file__).parents[2]
    try:
        out = subprocess.run(
            command, capture_output=True, text=True, timeout=120, cwd=cwd, env=env, check=True
        ).stdout.splitlines()
    except subprocess.TimeoutExpired as timeout:  # its stdout: bytes, whatever text=
        out = [*(timeout.stdout or b"").decode().splitlines(), "timed out after 120 s"]
    at = [out.index(name) if name in out else len(out) for name in scripts]
    return {
        name: out[i + 1 : j] for name, i, j in zip(scripts, at, [*at[1:], len(out)], strict=True)
    }


def test_positions_outside_the_range_are_refused_or_wrap_without_hanging(printed):
    """In a subprocess with a timeout: such positions once looped forever."""
    *errors, traced = printed["outside"]
    for position, error in zip((16, 12, -1), errors, strict=True):
        assert f"position {position} is outside [0, n=10)" in error
    perm = np.asarray(shuffled_positions(jax.random.key(0), jnp.arange(10), 10))
    assert json.loads(traced) == perm[np.array([-1, 10, 12, 16, 2**30]) % 10].tolist()


def test_positions_of_a_dtype_too_narrow_for_n_draw_the_same_values_without_hanging(printed):
    """In a subprocess with a timeout: ``n`` cast to such a dtype once wrapped (1000 to -24 in
    int8), giving other values or looping forever."""
    assert printed["narrow"] == ["True"] * 4


def test_shuffled_positions_look_uniform():
    """Over 20,000 keys, where the first two of 8 items land (56 ordered pairs of places)
    passes a chi-square test, and so does each item's place."""
    keys = jax.random.split(jax.random.key(0), 20_000)
    perms = np.asarray(jax.vmap(lambda k: shuffled_positions(k, jnp.arange(8), 8))(keys))
    pairs = np.bincount(perms[:, 0] * 8 + perms[:, 1], minlength=64)[~np.eye(8, dtype=bool).ravel()]
    expected = 20_000 / 56
    assert ((pairs - expected) ** 2 / expected).sum() < 95  # 55 dof: P(chi2 > 95) < 0.001
    for item in range(8):
        places = np.bincount(perms[:, item], minlength=8)
        assert ((places - 2500) ** 2 / 2500).sum() < 24  # 7 dof: P(chi2 > 24) ~ 0.001


def test_a_large_split_costs_no_sort_and_no_threefry():
    hlo = jax.jit(lambda k: batch_indices(k, 7, 60_000, 128)).lower(jax.random.key(0)).as_text()
    assert "sort" not in hlo and "threefry" not in hlo


def test_raw_key_data_and_typed_keys_draw_the_same_batches(key):
    raw = jax.random.key_data(key)
    np.testing.assert_array_equal(batch_indices(raw, 9, 50, 8), batch_indices(key, 9, 50, 8))


@pytest.mark.parametrize(
    ("key", "got"),
    [(0, "the int 0"), (np.zeros(2, np.int32), "an array of int32"), (1.5, "the float 1.5")],
)
def test_a_seed_or_data_no_key_has_is_refused_naming_what_a_key_is(key, got):
    """A seed raised "AttributeError: 'int' object has no attribute 'dtype'"; int32 or
    float key data drew batches, cast to uint32 without a word. The error names the
    function called (batch_indices' said shuffled_positions)."""
    for where, call in (
        ("batch_indices", lambda: batch_indices(key, 0, 10, 2)),
        ("take_batch", lambda: take_batch(key, 0, jnp.zeros(10), 2)),
        ("shuffled_positions", lambda: shuffled_positions(key, jnp.arange(2), 10)),
    ):
        with pytest.raises(
            TypeError,
            match=rf"^{where}: key must be a PRNG key, e.g. jax.random.key\(0\) \(or its "
            rf"raw uint32 key data\), got {re.escape(got)}$",
        ):
            call()


def test_a_batch_of_keys_is_refused_rather_than_mixed_into_one(key):
    keys = jax.random.split(key, 3)
    for batch in (keys, jax.random.key_data(keys)):
        with pytest.raises(
            ValueError,
            match=r"key must be one PRNG key \(a typed key of shape \(\), or raw key data of "
            r"shape \(words,\)\), got (a typed key|raw key data) of shape \(3,( \d)?\); for a "
            r"batch of keys, vmap: jax\.vmap\(lambda k: batch_indices\(k, step, num_examples, "
            r"batch_size\)\)\(keys\)$",
        ):
            batch_indices(batch, 0, 10, 2)
        with pytest.raises(  # it said to vmap batch_indices, which was not called
            ValueError,
            match=r"^shuffled_positions: key must be one PRNG key .* vmap: jax\.vmap\(lambda k: "
            r"shuffled_positions\(k, positions, n, salt\)\)\(keys\)$",
        ):
            shuffled_positions(batch, jnp.arange(2), 10)
    per_key = jax.vmap(lambda k: batch_indices(k, 0, 10, 2))(keys)
    np.testing.assert_array_equal(per_key[1], batch_indices(keys[1], 0, 10, 2))


def test_a_salt_that_is_no_one_integer_is_refused_not_cut_or_mixed(key):
    """A float salt was cut to an int (1.7 drew salt 1's permutation) and an array of salts
    drew each position from another permutation: repeated values, no permutation. None
    was said to be a float32 and a string raised jax's bare TypeError."""
    positions = jnp.arange(8)
    for salt, error, message in (
        (
            1.7,
            TypeError,
            r"salt must be a whole number \(which permutation to draw, e.g. the "
            r"epoch\), got dtype float32; a float salt would be cut to an int silently$",
        ),
        (
            True,
            TypeError,
            r"salt must be a whole number .*got the bool True; pass a number, e.g. the epoch$",
        ),
        (None, TypeError, r"salt must be a whole number .*got None$"),
        ("1", TypeError, r"salt must be a whole number .*got the str '1'$"),
        (
            jnp.arange(8),
            ValueError,
            r"salt must be one salt \(a scalar\), got shape \(8,\); "
            r"for the permutations of several salts, vmap",
        ),
    ):
        with pytest.raises(error, match=rf"^shuffled_positions: {message}"):
            shuffled_positions(key, positions, 8, salt=salt)
    per_salt = jax.vmap(lambda s: shuffled_positions(key, positions, 8, salt=s))(jnp.arange(2))
    np.testing.assert_array_equal(per_salt[1], shuffled_positions(key, positions, 8, salt=1))


def test_a_salt_outside_int32_is_taken_modulo_2_to_the_32(key):
    """A Python salt >= 2**31 raised jax's bare OverflowError; salts are taken modulo
    2**32, so equal salts draw one permutation however they are given."""
    positions = jnp.arange(8)

    def drawn(salt):
        return shuffled_positions(key, positions, 8, salt=salt)

    np.testing.assert_array_equal(drawn(2**32 + 5), drawn(5))
    np.testing.assert_array_equal(drawn(2**32 + 5), drawn(np.int64(2**32 + 5)))
    np.testing.assert_array_equal(drawn(2**32 - 1), drawn(jnp.int32(-1)))
    np.testing.assert_array_equal(drawn(-(2**40) - 1), drawn(-1))
    assert sorted(drawn(2**31).tolist()) == list(range(8))


def test_the_feistel_hash_is_numpys_and_traces_to_jnps_jaxpr():
    """In lax ops (jnp's operators took two thirds of the time to trace `batch_indices`:
    benchmarks/trace_time.py) it is the jaxpr jnp's operators give, with the values of
    the uint32 xorshift-multiply."""
    from phosjax.data._shuffle import _hash

    def with_jnp(x):
        x = x ^ (x >> 16)
        x = x * jnp.uint32(0x7FEB352D)
        x = x ^ (x >> 15)
        x = x * jnp.uint32(0x846CA68B)
        return x ^ (x >> 16)

    x = np.array([0, 1, 12345, 2**31, 2**32 - 1], np.uint32)
    want = x ^ (x >> 16)
    want = want * np.uint32(0x7FEB352D)
    want = want ^ (want >> 15)
    want = want * np.uint32(0x846CA68B)
    want = want ^ (want >> 16)
    np.testing.assert_array_equal(np.asarray(_hash(jnp.asarray(x))), want)
    spec = jax.ShapeDtypeStruct((128,), jnp.uint32)
    assert str(jax.make_jaxpr(_hash)(spec)) == str(jax.make_jaxpr(with_jnp)(spec))
