"""`random_dataset`: what it draws, its shapes and dtypes, its seed, its argument checks."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import phosjax.data
from phosjax.data import ArrayDataset, random_dataset
from phosjax.models import ModelConfig


def test_is_public():
    assert "random_dataset" in phosjax.data.__all__


def test_draws_the_inputs_then_the_labels_from_one_numpy_generator():
    data = random_dataset("toy", (8,), 3, num_train=64, num_test=32, seed=5)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(96, 8)).astype(np.float32)
    y = rng.integers(0, 3, 96).astype(np.int32)
    assert isinstance(data, ArrayDataset)
    np.testing.assert_array_equal(data.x_train, x[:64])
    np.testing.assert_array_equal(data.y_train, y[:64])
    np.testing.assert_array_equal(data.x_test, x[64:])
    np.testing.assert_array_equal(data.y_test, y[64:])


def test_shapes_dtypes_and_metadata():
    data = random_dataset("img", [4, 4, 1], 10, num_train=7, num_test=3)
    assert (data.name, data.num_classes, data.input_shape) == ("img", 10, (4, 4, 1))
    assert data.x_train.shape == (7, 4, 4, 1) and data.x_test.shape == (3, 4, 4, 1)
    assert data.y_train.shape == (7,) and data.y_test.shape == (3,)
    assert data.x_train.dtype == data.x_test.dtype == np.float32
    assert data.y_train.dtype == data.y_test.dtype == np.int32


def test_repr_gives_each_arrays_dtype_and_shape_not_its_numbers():
    data = random_dataset("img", (28, 28, 1), 10, num_train=300, num_test=100)
    expected = (
        "ArrayDataset(name='img', x_train=float32[300, 28, 28, 1], y_train=int32[300], "
        "x_test=float32[100, 28, 28, 1], y_test=int32[100], num_classes=10, "
        "input_shape=(28, 28, 1))"
    )
    assert repr(jax.device_put(data)) == repr(data) == expected
    no_labels = jax.tree.map(lambda a: "gone" if a.ndim == 1 else a, data)  # no checks
    assert "y_train='gone', x_test=float32[100, 28, 28, 1], y_test='gone'" in repr(no_labels)


def test_defaults_are_64_train_and_32_test_examples_with_seed_0():
    data = random_dataset("toy", (8,), 3)
    again = random_dataset("toy", (8,), 3, num_train=64, num_test=32, seed=0)
    assert (data.num_train, data.num_test) == (64, 32)
    np.testing.assert_array_equal(data.x_test, again.x_test)
    np.testing.assert_array_equal(data.y_train, again.y_train)


def test_labels_cover_the_classes_and_inputs_look_gaussian():
    data = random_dataset("toy", (16,), 4, num_train=4000, num_test=1000)
    labels = np.concatenate([data.y_train, data.y_test])
    np.testing.assert_array_equal(np.unique(labels), np.arange(4))
    x = np.concatenate([data.x_train, data.x_test])
    assert abs(x.mean()) < 0.02 and abs(x.std() - 1) < 0.02


def test_same_seed_same_data_other_seed_other_data():
    one, same = random_dataset("a", (3,), 2, seed=1), random_dataset("b", (3,), 2, seed=1)
    other = random_dataset("a", (3,), 2, seed=2)
    np.testing.assert_array_equal(one.x_train, same.x_train)
    np.testing.assert_array_equal(one.y_test, same.y_test)
    assert not np.array_equal(one.x_train, other.x_train)


def test_numpy_ints_are_taken():
    data = random_dataset(
        "toy", (np.int64(2),), np.int32(3), num_train=np.int64(5), seed=np.uint8(0)
    )
    assert data.input_shape == (2,) and data.num_classes == 3 and data.num_train == 5
    assert all(type(n) is int for n in (*data.input_shape, data.num_classes))


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((None, (8,), 3), {}, TypeError, "name must be a non-empty str, got None"),
        (("", (8,), 3), {}, TypeError, "name must be a non-empty str, got ''"),  # ArrayDataset's
        (("toy", "8", 3), {}, TypeError, "input_shape must be the shape of one example, a tuple"),
        (("toy", (8, 2.0), 3), {}, TypeError, "input_shape[1] must be a static int >= 0, got 2.0"),
        (("toy", (-1,), 3), {}, ValueError, "input_shape[0] must be an int >= 0, got -1"),
        (("toy", (8,), 0), {}, ValueError, "num_classes must be a positive int, got 0"),
        (("toy", (8,), True), {}, TypeError, "num_classes must be a static positive int, got True"),
        (("toy", (8,), 3), {"num_train": 0}, ValueError, "num_train must be a positive int, got 0"),
        (("toy", (8,), 3), {"num_test": 0}, ValueError, "num_test must be a positive int, got 0"),
        (
            ("toy", (8,), 3),
            {"num_test": "4"},
            TypeError,
            "num_test must be a static positive int, got '4'",
        ),
        (("toy", (8,), 3), {"seed": -1}, ValueError, "seed must be an int >= 0, got -1"),
        (("toy", (8,), 3), {"seed": 0.5}, TypeError, "seed must be a static int >= 0, got 0.5"),
    ],
)
def test_bad_arguments_are_named(args, kwargs, error, message):
    with pytest.raises(error, match=re.escape(f"random_dataset: {message}")):
        random_dataset(*args, **kwargs)


LONG = list(range(1000))  # a value whose whole repr would run to thousands of characters
_X, _Y = np.zeros((2, 3), np.float32), np.zeros(2, np.int32)


@pytest.mark.parametrize(
    "call",
    [
        lambda: random_dataset("toy", (3,), 3, num_train=LONG),
        lambda: random_dataset(LONG, (3,), 3),
        lambda: random_dataset("toy", {"x": LONG}, 3),
        lambda: ArrayDataset(LONG, _X, _Y, _X, _Y, 3, (3,)),
        lambda: ArrayDataset("toy", _X, _Y, _X, _Y, LONG, (3,)),
        lambda: ArrayDataset("toy", _X, _Y, _X, _Y, 3, [-1, *LONG]),
        lambda: phosjax.data.batch_indices(LONG, 0, 10, 2),
        lambda: phosjax.data.batch_indices(np.zeros(2, np.uint32), LONG, 10, 2),
        lambda: phosjax.data.load(LONG),
        lambda: phosjax.data.load("digits", data_dir=LONG),
        lambda: phosjax.data.load("digits", features=LONG),
        lambda: phosjax.data.load("digits", splits=LONG),
    ],
)
def test_an_argument_error_cuts_a_long_value_it_shows(call):
    with pytest.raises((TypeError, ValueError)) as caught:
        call()
    got = re.search(r"got (?:the \w+ )?(\S.*?…)", str(caught.value))
    assert got is not None and got.group(1).startswith(("[", "{")), str(caught.value)
    assert len(got.group(1)) == 60 and len(str(caught.value)) < 400


@pytest.mark.parametrize(
    "shape", [40, np.int64(40), np.array(40), range(40, 41), [np.int64(40)], (jnp.int32(40),)]
)
def test_an_input_shape_is_read_as_modelconfig_reads_it(shape):
    # An int, a 0-d array or a range was refused (a TypeError), though ModelConfig takes it.
    data = random_dataset("toy", shape, 3, num_train=2, num_test=1)
    assert data.input_shape == ModelConfig("mlp", 3, shape).input_shape == (40,)
    assert all(type(n) is int for n in data.input_shape) and data.x_train.shape == (2, 40)
    splits = (data.x_train, data.y_train, data.x_test, data.y_test)
    assert ArrayDataset("toy", *splits, 3, shape).input_shape == (40,)


@pytest.mark.parametrize("shape", [np.array([2, 3]), jnp.array([2, 3]), [2, 3]])
def test_an_input_shape_given_as_a_1d_array_is_read_as_modelconfig_reads_it(shape):
    # A numpy array was refused ("got array([2, 3])"), though ModelConfig takes it.
    data = random_dataset("toy", shape, 3, num_train=4, num_test=2)
    assert data.input_shape == (2, 3) and data.x_train.shape == (4, 2, 3)
    assert all(type(n) is int for n in data.input_shape)
    splits = (data.x_train, data.y_train, data.x_test, data.y_test)
    again = ArrayDataset("toy", *splits, 3, shape)
    assert again.input_shape == (2, 3) and hash(again.input_shape)
    with pytest.raises(TypeError, match=r"got array\(\[\[2, 3\]\]\)$"):
        random_dataset("toy", np.array([[2, 3]]), 3)  # 2-D: no shape
    with pytest.raises(ValueError, match=r"input_shape\[0\] must be an int >= 0, got -1$"):
        random_dataset("toy", np.array([-1, 3]), 3)
    with pytest.raises(ValueError, match=r"\(8, 8, 1\), got array\(\[-1,  3\]\)$"):
        ArrayDataset("toy", *splits, 3, np.array([-1, 3]))


def test_its_arrays_are_read_only_views_of_one_draw_not_copies():
    data = random_dataset("toy", (8,), 3, num_train=4, num_test=2)
    assert data.x_train.base is data.x_test.base and not data.x_train.base.flags.writeable
    with pytest.raises(ValueError, match=r"^assignment destination is read-only$"):
        data.y_train[0] = 1
