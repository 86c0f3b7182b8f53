"""`load` of any TFDS data set prepared in the data dir, its errors, and `ArrayDataset`."""

import copy
import dataclasses
import importlib
import json
import pickle
import pkgutil
import re
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import PIL.Image
import pytest
import tensorflow_datasets as tfds

import phosjax.data
from phosjax.data import (
    ArrayDataset,
    MissingFeaturesError,
    MissingSplitsError,
    NoSuchFeatureError,
    SplitInNameError,
    _load,
    check_batch_size,
    check_loadable,
    load,
    prepared_names,
)
from phosjax.data._splits import SplitsError
from tests.data import tfds_toys

damaged_folder = _load._damaged_folder


def _images(index: int) -> np.ndarray:
    return np.full((4, 4, 1), 50 * index, np.uint8)


class TinyImages(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A user's data set: uint8 images, no supervised_keys, a validation split instead of test."""

    VERSION = tfds.core.Version("1.0.0")
    code_path = None  # tfds 4.9.10 would need importlib_resources to look for checksums

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(4, 4, 1)),
                    "label": tfds.features.ClassLabel(num_classes=3),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        return {
            "train": self._generate_examples(range(5)),
            "validation": self._generate_examples(range(5, 6)),
        }

    def _generate_examples(self, indices):
        for i in indices:
            # PIL images: TFDS encodes those without TensorFlow (numpy arrays would need it).
            yield i, {"image": PIL.Image.fromarray(_images(i)[..., 0]), "label": i % 3}


@pytest.fixture(scope="module")
def user_data_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("user_tfds")
    TinyImages(data_dir=str(data_dir), file_format="array_record").download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
    return data_dir


def test_prepared_tfds_data_set_loads_by_name(user_data_dir):
    assert prepared_names(user_data_dir) == ["tiny_images"]
    ds = load("tiny_images", data_dir=user_data_dir)
    assert (ds.name, ds.num_classes, ds.input_shape) == ("tiny_images", 3, (4, 4, 1))
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    # Images are scaled to [0, 1]; each image still matches its label.
    order = np.argsort(ds.x_train[:, 0, 0, 0])
    np.testing.assert_array_equal(ds.y_train[order], [0, 1, 2, 0, 1])
    expected = np.arange(5, dtype=np.float32) * 50 / 255
    np.testing.assert_allclose(ds.x_train[order, 0, 0, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(ds.x_test, _images(5)[None] / np.float32(255), rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, [2])


def test_unknown_name_lists_known_names_and_how_to_prepare(user_data_dir):
    with pytest.raises(ValueError, match="unknown data set 'no_such_set'") as error:
        load("no_such_set", data_dir=user_data_dir)
    message = str(error.value)
    assert "digits, mnist1d, mnist1d_shuffled" in message
    assert f"prepared in {user_data_dir} (tiny_images)" in message
    assert f"tfds build no_such_set --data_dir {user_data_dir}" in message


@pytest.mark.parametrize(
    ("name", "near"),
    [
        ("mnist_1d", "'mnist1d'"),
        ("digit", "'digits'"),
        ("mnist1d_shufled", "'mnist1d_shuffled' or 'mnist1d'"),  # named only the first
    ],
)
def test_an_unknown_name_close_to_a_known_one_suggests_it(tmp_path, name, near):
    with pytest.raises(
        ValueError,
        match=rf"unknown data set '{name}': .*\(none\)\. Did you mean {near}\? To load",
    ):
        check_loadable(name, data_dir=tmp_path)


def test_catalog_name_not_prepared_is_unknown(tmp_path):
    with pytest.raises(ValueError, match=r"unknown data set 'mnist'.*prepared in .* \(none\)"):
        load("mnist", data_dir=tmp_path)


@pytest.fixture(scope="module")
def toys_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("toys")
    for builder in (
        tfds_toys.ToyRegression,
        tfds_toys.ToyWeighted,
        tfds_toys.ToyIntLabels,
        tfds_toys.ToyIdLabels,
        tfds_toys.ToyOptionalLabel,
        tfds_toys.ToyText,
        tfds_toys.ToyVarShape,
        tfds_toys.ToyMultiLabel,
        tfds_toys.ToyUint8Tensor,
        tfds_toys.ToyPhasors,
        tfds_toys.ToyValidationAndTest,
        tfds_toys.ToyNamedFeatures,
        tfds_toys.ToyTrainOnly,
        tfds_toys.ToySeveralInputs,
        tfds_toys.ToyScalarInput,
    ):
        tfds_toys.prepare(builder, data_dir)
    tfds_toys.prepare(tfds_toys.ToyConfigs, data_dir, config="small")
    return data_dir


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("toy_regression", r"label feature 'y' \(Tensor, dtype float32, shape \(\)\)"),
        ("toy_multi_label", r"label feature 'label' \(Sequence, dtype int64, shape \(2,\)\)"),
        ("toy_text", r"input feature 'text' \(Text, dtype string, shape \(\)\)"),
        ("toy_var_shape", r"input feature 'image' \(Tensor, dtype float32, shape \(None,\)\)"),
        # float32 would drop the imaginary part: load read 0+1j as 0, with a ComplexWarning
        ("toy_phasors", r"input feature 'image' \(Tensor, dtype complex64, shape \(2,\)\)"),
    ],
)
def test_unsupported_features_are_named_with_their_kind_dtype_and_shape(toys_dir, name, match):
    supported = {
        "label": r"supports one class label per example: a ClassLabel or an integer Tensor of "
        r"shape \(\)",
        "input": r"supports inputs of a fixed shape and a real dtype \(float, integer or bool: "
        r"a Tensor or an Image without None in its shape\), not complex numbers,",
    }[match.split()[0]]
    for check in (load, check_loadable):
        with pytest.raises(
            ValueError, match=rf"data set '{name}': {match} is not supported; load "
        ):
            check(name, data_dir=toys_dir)
        with pytest.raises(ValueError, match=supported):
            check(name, data_dir=toys_dir)


def test_an_input_of_varying_shape_says_to_prepare_it_with_one_shape(toys_dir):
    # It said what load supports, not how to make such a data set (images of many sizes) load.
    for check in (load, check_loadable):
        with pytest.raises(ValueError) as raised:
            check("toy_var_shape", data_dir=toys_dir)
        assert str(raised.value).endswith(
            "nested features; to read it, prepare the data set with one shape for all its "
            "examples (resize or pad each), declared in the feature: shape (64,), say, not (None,)"
        )
        for features in (None, ("words", "label")):  # of one shape, or text: not that
            with pytest.raises(ValueError) as raised:
                check("toy_text", data_dir=toys_dir, features=features)
            assert str(raised.value).endswith("variable shapes or nested features")


def test_an_unsupported_feature_names_features_that_can_be_read(toys_dir):
    # It said what load supports, not which of the data set's features those are.
    with pytest.raises(ValueError) as raised:
        check_loadable("toy_weighted", data_dir=toys_dir, features=("x", "w"))
    assert str(raised.value).startswith("data set 'toy_weighted': label feature 'w' (Tensor")
    assert str(raised.value).endswith(
        "; of its features, 'x' and 'y' can be read as the input and the label"
    )


def test_supervised_keys_naming_several_inputs_say_to_name_the_features(toys_dir):
    # It said "load needs one input feature and one label feature, each named by a string",
    # not that features= names them, nor which, and a bench no dataset_features entry.
    for check in (load, check_loadable):
        with pytest.raises(MissingFeaturesError) as raised:
            check("toy_several_inputs", data_dir=toys_dir)
        assert str(raised.value) == (
            "data set 'toy_several_inputs' has supervised_keys ({'a': 'a', 'b': 'b'}, 'label'), "
            "not one input and one label feature (features: ['a', 'b', 'label']); load needs an "
            "input and a class label (features=(input, label), supervised_keys, or 'image' and "
            "'label'); e.g. features=('a', 'label')"
        )
    data = load("toy_several_inputs", data_dir=toys_dir, features=("b", "label"))
    assert data.input_shape == (3,) and data.x_train[:, 0].tolist() == data.x_train[:, 2].tolist()


def test_the_features_suggested_do_not_depend_on_the_order_tfds_reads_them_in():
    # TFDS reads a prepared data set's features in an order that changes from one process
    # to the next: the same command suggested features=('b', 'y') in one, ('a', 'y') in another.
    F = tfds.features
    x, y = F.Tensor(shape=(2,), dtype=np.float32), np.int64
    orders = [{"b": x, "a": x, "z": y, "y": y}, {"a": x, "b": x, "y": y, "z": y}]
    said = {str(MissingFeaturesError("toy", "image", F.FeaturesDict(o))) for o in orders}
    assert [message.split("; e.g. ")[1] for message in said] == ["features=('a', 'y')"]


def test_features_pick_the_input_and_label_of_a_data_set_without_supervised_keys(toys_dir):
    for check in (load, check_loadable):
        with pytest.raises(
            MissingFeaturesError,  # public, so that a caller can catch it alone
            match=r"no feature 'image' \(features: \['digit', 'pixels'\]\); load needs an input "
            r"and a class label \(.*\); e\.g\. features=\('pixels', 'digit'\)$",
        ):
            check("toy_named_features", data_dir=toys_dir)
    ds = load("toy_named_features", data_dir=toys_dir, features=("pixels", "digit"))
    assert (ds.input_shape, ds.num_classes) == ((2,), 3)
    np.testing.assert_array_equal(ds.y_train, ds.x_train[:, 0].astype(int) % 3)
    # They also override supervised keys: here the weights as the input.
    ds = load("toy_weighted", data_dir=toys_dir, features=["w", "y"])
    assert ds.input_shape == (1,) and (ds.x_train == 1).all()


@pytest.mark.parametrize("name", ["toy_named_features", "digits"])
def test_features_naming_a_missing_feature_list_the_features(toys_dir, tmp_path, name):
    data_dir = tmp_path if name == "digits" else toys_dir
    known, x = {
        "toy_named_features": ("['digit', 'pixels']", "pixels"),
        "digits": ("['image', 'label']", "image"),
    }[name]
    for check in (load, check_loadable):
        with pytest.raises(
            NoSuchFeatureError,  # public, so that a caller can catch it alone
            match=rf"data set '{name}' has no feature 'lable' \(features: "
            rf"{re.escape(known)}\); features=\('{x}', 'lable'\) names no feature",
        ):
            check(name, data_dir=data_dir, features=(x, "lable"))
    assert prepared_names(tmp_path) == []  # a built-in one is checked before it is prepared


@pytest.mark.parametrize(
    ("name", "features", "near"),
    [
        ("digits", ("imgae", "label"), "image"),
        ("digits", ("image", "lable"), "label"),
        ("toy_named_features", ("pixel", "digit"), "pixels"),
    ],
)
def test_a_misspelt_feature_names_the_nearest_one(toys_dir, tmp_path, name, features, near):
    data_dir = tmp_path if name == "digits" else toys_dir
    with pytest.raises(
        ValueError,
        match=rf"names no feature of it\. Did you mean '{near}'\?$",
    ):
        check_loadable(name, data_dir=data_dir, features=features)


@pytest.mark.parametrize(
    ("name", "suggested"),
    [("digits", "('image', 'label')"), ("toy_named_features", "('pixels', 'digit')")],
)
def test_features_near_no_feature_end_with_ones_that_load(toys_dir, tmp_path, name, suggested):
    """features=('x', 'y'), near no feature, named none that would do."""
    data_dir = tmp_path if name == "digits" else toys_dir
    with pytest.raises(
        ValueError,
        match=rf"features=\('x', 'y'\) names no feature of it; e\.g\. "
        rf"features={re.escape(suggested)}$",
    ):
        check_loadable(name, data_dir=data_dir, features=("x", "y"))


@pytest.mark.parametrize("features", ["image", ("image",), ("x", "x"), ("x", 1), {"x", "y"}])
def test_features_that_are_no_pair_of_names_are_refused(toys_dir, features):
    with pytest.raises(ValueError, match=r"features must name the input feature and the label"):
        load("toy_named_features", data_dir=toys_dir, features=features)


def test_a_weights_key_after_input_and_label_is_ignored(toys_dir):
    ds = load("toy_weighted", data_dir=toys_dir)
    assert (ds.input_shape, ds.x_train.shape, ds.x_test.shape) == ((2,), (5, 2), (3, 2))
    np.testing.assert_array_equal(np.sort(ds.y_train), [0, 0, 0, 1, 1])
    assert ds.num_classes == 4  # the ClassLabel's, though only 0 and 1 occur


def test_integer_labels_count_classes_over_train_and_test(toys_dir):
    ds = load("toy_int_labels", data_dir=toys_dir)
    np.testing.assert_array_equal(np.sort(ds.y_train), [0, 0, 1, 1, 2])
    np.testing.assert_array_equal(ds.y_test, [3, 3, 3])
    assert ds.num_classes == 4


def test_integer_labels_beyond_int32_are_named_not_an_overflow(toys_dir):
    with pytest.raises(
        ValueError,
        match=r"data set 'toy_id_labels': label feature 'label' holds 10995116277[0-9]+ in the "
        r"'train' split; load needs class indices, from 0 to num_classes - 1 \(int32\)",
    ):
        load("toy_id_labels", data_dir=toys_dir)


def test_a_split_held_without_labels_is_named_with_the_splits_to_read(tmp_path):
    # It said that load needs class indices, not that -1 marks an example without a label.
    tfds_toys.prepare(tfds_toys.ToyUnlabelledTest, tmp_path)
    with pytest.raises(ValueError) as raised:
        load("toy_unlabelled_test", data_dir=tmp_path)
    assert str(raised.value) == (
        "data set 'toy_unlabelled_test': label feature 'label' holds -1 in the 'test' split; "
        "load needs class indices, from 0 to num_classes - 1 (int32); -1 is TFDS's label of an "
        "example without one: read splits whose examples are labelled (its splits: ['test', "
        "'train', 'validation'])"
    )
    labelled = load("toy_unlabelled_test", data_dir=tmp_path, splits=("train", "validation"))
    assert sorted(labelled.y_test.tolist()) == [0, 1]


def test_an_optional_label_some_examples_lack_is_named_not_a_damaged_folder(toys_dir):
    with pytest.raises(
        ValueError,
        match=r"^data set 'toy_optional_label': label feature 'label' has no value in 1 of the 5 "
        r"examples of its 'train' split \(an optional feature\); load needs an input and a "
        r"label in every example$",
    ):
        load("toy_optional_label", data_dir=toys_dir)


def test_a_scalar_input_is_read_as_one_feature(toys_dir):
    # It was read as input_shape (), which no model takes: a bench said to use x[..., None].
    data = load("toy_scalar_input", data_dir=toys_dir)
    assert data.input_shape == (1,) and data.x_test.shape == (3, 1)
    assert sorted(data.x_train[:, 0].tolist()) == [0, 1, 2, 3, 4]
    assert _load.declared_shapes("toy_scalar_input", data_dir=toys_dir) == ((1,), None)


def test_uint8_inputs_of_a_plain_tensor_are_scaled_to_the_unit_range(toys_dir):
    ds = load("toy_uint8_tensor", data_dir=toys_dir)
    assert ds.x_train.dtype == np.float32
    order = np.argsort(ds.x_train[:, 0])
    np.testing.assert_allclose(ds.x_train[order, 0], 30 * np.arange(5) / 255, rtol=1e-6)
    np.testing.assert_allclose(np.sort(ds.x_test[:, 1]), 30 * np.arange(5, 8) / 255, rtol=1e-6)


def test_the_test_split_is_read_rather_than_validation_when_both_exist(toys_dir):
    ds = load("toy_validation_and_test", data_dir=toys_dir)
    np.testing.assert_array_equal(ds.y_test, [1, 1, 1])  # test's label; validation's is 0
    np.testing.assert_array_equal(np.sort(ds.x_test[:, 0]), [5.0, 6.0, 7.0])
    assert ds.num_train == 5


def test_a_data_set_without_a_test_split_asks_for_splits(toys_dir):
    for check in (load, check_loadable):
        with pytest.raises(
            MissingSplitsError,  # public, so that a caller can catch it alone
            match=re.escape(
                "data set 'toy_train_only' has splits ['train']; load reads 'train' and one of "
                "['test', 'validation'] unless given the two to read: pass splits=(train, test), "
                "e.g. splits=('train[:90%]', 'train[90%:]')"
            ),
        ):
            check("toy_train_only", data_dir=toys_dir)
    with pytest.raises(MissingSplitsError) as caught:
        load("toy_train_only", data_dir=toys_dir)
    assert (caught.value.known, caught.value.suggested) == (
        ["train"],
        ("train[:90%]", "train[90%:]"),
    )


@pytest.mark.parametrize(
    ("known", "suggested"),
    [
        (["train", "val"], ("train", "val")),
        (["testing", "training"], ("training", "testing")),
        (["test", "train_clean"], ("train_clean", "test")),
        (["dev", "unlabelled"], ("unlabelled", "dev")),
        (["test", "validation"], ("validation", "test")),  # was ('test', 'validation')
    ],
)
def test_splits_suggested_train_on_a_split_named_so_and_test_on_a_held_out_one(known, suggested):
    """It suggested the first split, in order, to train on: splits=('testing', 'training')."""
    error = MissingSplitsError("toy", known)
    assert error.suggested == suggested
    assert str(error).endswith(f"e.g. splits={suggested!r}")


def test_splits_hold_out_the_same_part_of_train_on_every_load(toys_dir):
    check_loadable("toy_train_only", data_dir=toys_dir, splits=["train[:60%]", "train[60%:]"])
    first, again = (
        load("toy_train_only", data_dir=toys_dir, splits=("train[:60%]", "train[60%:]"))
        for _ in range(2)
    )
    assert (first.num_train, first.num_test) == (3, 2)
    seen = np.concatenate([first.x_train[:, 0], first.x_test[:, 0]])
    np.testing.assert_array_equal(np.sort(seen), np.arange(5))  # every example, once
    np.testing.assert_array_equal(again.x_test, first.x_test)
    np.testing.assert_array_equal(first.y_test, first.x_test[:, 0].astype(np.int32) % 2)


def test_splits_name_the_splits_to_train_and_test_on(toys_dir):
    ds = load("toy_validation_and_test", data_dir=toys_dir, splits=("train+test", "validation"))
    np.testing.assert_array_equal(ds.y_test, [0, 0])  # validation's label; test's is 1
    np.testing.assert_array_equal(np.sort(ds.x_train[:, 0]), np.arange(8))


def test_splits_may_write_a_sum_with_spaces_as_tfds_does(toys_dir):
    """TFDS reads 'train + test' (its own docs write sums so); it was refused as naming no
    split 'train ', with "Did you mean 'train'?"."""
    spaced, plain = (
        load("toy_validation_and_test", data_dir=toys_dir, splits=(train, "validation"))
        for train in ("train + test", "train+test")
    )
    np.testing.assert_array_equal(spaced.x_train, plain.x_train)


@pytest.mark.parametrize(
    ("splits", "message"),
    [
        (
            ("train", "tset"),
            "data set 'toy_validation_and_test' has no split 'tset' (splits=('train', 'tset') "
            "names it; its splits: ['test', 'train', 'validation']). Did you mean 'test'?",
        ),
        (
            ("train[:80%]", "test+train[60%:]"),
            "data set 'toy_validation_and_test': splits=('train[:80%]', 'test+train[60%:]') "
            "reads the examples train[3:4] both to train and to test; name disjoint parts, e.g. "
            "splits=('train[:90%]', 'train[90%:]')",
        ),
        (  # TFDS reads it, each example twice
            ("train[:60%]+train[40%:]", "test"),
            "data set 'toy_validation_and_test': splits=('train[:60%]+train[40%:]', 'test') "
            "reads the examples train[2:3] twice for the train split ('train[:60%]+train[40%:]'"
            "); sum disjoint parts, each example once",
        ),
        (
            ("train", "test[2:2]"),
            "data set 'toy_validation_and_test': splits=('train', 'test[2:2]') reads no example "
            "for the test split ('test[2:2]'; its splits hold test: 3, train: 5, validation: 2)",
        ),
        (
            ("train", "test[:10]"),
            "data set 'toy_validation_and_test': splits=('train', 'test[:10]') holds "
            "'test[:10]': Requested slice [:10] incompatible with 3 examples. (its splits hold "
            "test: 3, train: 5, validation: 2)",
        ),
        (
            ("train", "test[half]"),
            "data set 'toy_validation_and_test': splits=('train', 'test[half]') holds "
            "'test[half]', which is no TFDS split spec (Unrecognized split format: 'test[half]'. "
            "See format at https://www.tensorflow.org/datasets/splits); write a split's name, a "
            "slice of one ('train[:90%]', 'train[-500:]') or a sum ('train+val')",
        ),
        (  # TFDS reads every split for 'all' (and refuses a slice of it)
            ("train", "all[:10%]"),
            "data set 'toy_validation_and_test': splits=('train', 'all[:10%]') holds "
            "'all[:10%]'; TFDS's 'all' reads every split, the one to test on too: sum the splits "
            "to read instead, e.g. 'train' (its splits: ['test', 'train', 'validation'])",
        ),
        (
            "train",
            "splits must name the split to train on and the split to test on, two TFDS split "
            "specs, e.g. ('train', 'val') or ('train[:90%]', 'train[90%:]'); got 'train'",
        ),
    ],
)
def test_splits_naming_no_split_no_example_or_one_twice_are_refused(toys_dir, splits, message):
    for check in (load, check_loadable):
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            check("toy_validation_and_test", data_dir=toys_dir, splits=splits)


def test_a_splits_error_crosses_processes_as_it_was_raised(toys_dir):
    """A process pool sends a worker's error back pickled: unpickling this one raised
    "TypeError: SplitsError.__init__() missing 2 required positional arguments"."""
    with pytest.raises(SplitsError) as raised:
        load("toy_validation_and_test", data_dir=toys_dir, splits=("train", "tset"))
    again = pickle.loads(pickle.dumps(raised.value))
    assert (type(again), str(again)) == (SplitsError, str(raised.value))
    assert again.told_as("key") == raised.value.told_as("key")


def test_every_error_phosjax_data_defines_is_exported():
    """SplitsError, load's error for bad splits, was in phosjax.data._splits alone: caught
    by a private name, or as any ValueError."""
    package = phosjax.data
    modules = [
        importlib.import_module(f"phosjax.data.{m.name}")
        for m in pkgutil.iter_modules(package.__path__)
    ]
    errors = {
        name
        for module in modules
        for name, value in vars(module).items()
        if isinstance(value, type)
        and issubclass(value, Exception)
        and not name.startswith("_")
        and value.__module__ == module.__name__
    }
    assert "SplitsError" in errors and errors <= set(package.__all__)


def test_splits_of_a_built_in_data_set_are_checked_before_it_is_prepared(tmp_path):
    with pytest.raises(ValueError, match=r"^data set 'digits' has no split 'validation' \("):
        check_loadable("digits", data_dir=tmp_path, splits=("train", "validation"))
    with pytest.raises(  # passed check_loadable: load refused it once it had prepared digits
        ValueError,
        match=r"^data set 'digits': splits=\('train\[:60%\]', 'train\[50%:\]'\) reads the "
        r"examples train\[718:862\] both to train and to test; ",
    ):
        check_loadable("digits", data_dir=tmp_path, splits=("train[:60%]", "train[50%:]"))
    assert not list(tmp_path.iterdir())  # nothing prepared


@pytest.mark.parametrize(
    "name",
    [
        "toy_configs",  # its default config
        "toy_configs/small",
        "toy_configs:1.0.0",
        "toy_configs/small:1.0.0",
    ],
)
def test_every_tfds_form_of_a_prepared_name_loads(toys_dir, name):
    assert prepared_names(toys_dir)[0] == "toy_configs/small"
    check_loadable(name, data_dir=toys_dir)
    ds = load(name, data_dir=toys_dir)
    assert (ds.name, ds.x_train.shape, ds.num_classes) == (name, (5, 2), 2)
    assert _load.resolved_name(name, data_dir=toys_dir) == "toy_configs/small:1.0.0"


def test_a_name_alone_loads_the_version_of_its_code_else_the_newest_prepared(tmp_path):
    # docs/data.md said the newest version prepared, which TFDS reads only where it has no
    # code of the data set (mnist's code in its catalog, or a class imported, names one).
    class Newer(tfds_toys.ToyTrainOnly, skip_registration=True):
        name, VERSION = "toy_two_versions", tfds.core.Version("2.0.0")

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(range(5), "train")}

    class Older(Newer, skip_registration=True):
        name, VERSION = "toy_two_versions", tfds.core.Version("1.0.0")

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(range(3), "train")}

    for builder in (Older, Newer):
        tfds_toys.prepare(builder, tmp_path)
    splits = ("train[:2]", "train[2:]")
    assert load("toy_two_versions", data_dir=tmp_path, splits=splits).num_test == 3

    class ToyTwoVersions(Older):  # registered: TFDS reads the version of this code
        name = "toy_two_versions"

    assert load("toy_two_versions", data_dir=tmp_path, splits=splits).num_test == 1


@pytest.mark.parametrize("name", ["toy_configs:9.9.9", "toy_configs/big", "toy_configs/big:1.0.0"])
def test_an_unprepared_version_or_config_lists_the_prepared_ones(toys_dir, name):
    with pytest.raises(
        ValueError,
        match=rf"data set '{name}' is not prepared in {toys_dir} at the version or config it "
        r"asks for; the prepared versions of 'toy_configs' are toy_configs/small:1\.0\.0\. "
        rf"Load one of those, or prepare it there first: `tfds build {name} ",
    ):
        load(name, data_dir=toys_dir)


def test_an_error_of_tfds_builder_says_what_is_prepared(toys_dir, monkeypatch):
    def builder(name, **kwargs):  # as a builder registered in this process checks its version
        raise AssertionError(f"Dataset {name} cannot be loaded at version 2.0.0, only: 1.0.0.")

    monkeypatch.setattr(tfds, "builder", builder)
    with pytest.raises(ValueError, match=r"the prepared versions of 'toy_configs' are ") as error:
        load("toy_configs:2.0.0", data_dir=toys_dir)
    assert str(error.value).endswith(
        "(TFDS: Dataset toy_configs:2.0.0 cannot be loaded at version 2.0.0, only: 1.0.0.)"
    )
    assert isinstance(error.value.__cause__, AssertionError)


def test_a_data_set_prepared_as_parquet_loads_like_array_record(toys_dir, tmp_path):
    tfds_toys.prepare(tfds_toys.ToyWeighted, tmp_path, file_format="parquet")
    check_loadable("toy_weighted", data_dir=tmp_path)
    parquet, array_record = (load("toy_weighted", data_dir=d) for d in (tmp_path, toys_dir))
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(parquet, field), getattr(array_record, field))
        assert not (
            getattr(parquet, field).flags.writeable or getattr(array_record, field).flags.writeable
        )
    folder = tmp_path / "toy_weighted" / "1.0.0"
    next(folder.glob("toy_weighted-test.*")).write_bytes(b"cut")
    with pytest.raises(
        ValueError,
        match=rf"data set 'toy_weighted' is incomplete or damaged in {folder} \(reading its "
        r"'test' split raised ArrowInvalid: .*\); delete that folder and prepare it again",
    ):
        load("toy_weighted", data_dir=tmp_path)


def test_a_parquet_file_holding_fewer_examples_than_its_metadata_counts_is_damaged(tmp_path):
    # TFDS 4.9.10's parquet writer drops examples of a file of over 100 (1000 written: 400
    # kept); load read the 400 alone without a word, then raised ArrowIndexError for index 400.
    import pyarrow.parquet as pq

    tfds_toys.prepare(tfds_toys.ToyWeighted, tmp_path, file_format="parquet")
    folder = tmp_path / "toy_weighted" / "1.0.0"
    file = next(folder.glob("toy_weighted-train.*"))
    pq.write_table(pq.read_table(file).slice(0, 3), file)
    for splits, read in ((None, "train"), (("train[:1]", "test"), "train[:1]")):
        with pytest.raises(ValueError) as raised:
            load("toy_weighted", data_dir=tmp_path, splits=splits)
        assert str(raised.value) == (
            f"data set 'toy_weighted' is incomplete or damaged in {folder} (reading its {read!r} "
            "split raised ValueError: its 'train' files hold 3 examples where its metadata counts "
            "5, as TFDS 4.9.10's parquet writer leaves a file of over 100); delete that folder and "
            f"prepare it again: `tfds build toy_weighted --data_dir {tmp_path} --file_format "
            f"array_record` or `tfds.builder('toy_weighted', data_dir='{tmp_path}', "
            "file_format='array_record').download_and_prepare()`"
        )


def test_a_slice_of_a_parquet_data_set_reads_its_examples_alone(toys_dir, tmp_path):
    # TFDS's parquet reader reads a slice's whole files: train[:60%] was all of train, and
    # train[60%:] too, so that every example trained on was tested on.
    tfds_toys.prepare(tfds_toys.ToyTrainOnly, tmp_path, file_format="parquet")
    splits = ("train[:60%]", "train[60%:]")
    parquet, array_record = (
        load("toy_train_only", data_dir=d, splits=splits) for d in (tmp_path, toys_dir)
    )
    assert (parquet.num_train, parquet.num_test) == (3, 2)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(parquet, field), getattr(array_record, field))
        assert not (
            getattr(parquet, field).flags.writeable or getattr(array_record, field).flags.writeable
        )
    held_out = set(parquet.x_test[:, 0].tolist())
    assert held_out.isdisjoint(parquet.x_train[:, 0].tolist())
    assert held_out | set(parquet.x_train[:, 0].tolist()) == {0, 1, 2, 3, 4}


def test_a_data_set_stored_as_tfrecord_says_how_to_convert_it_and_loads_once_converted(
    toys_dir, tmp_path
):
    shutil.copytree(toys_dir / "toy_weighted", tmp_path / "toy_weighted")
    folder = tmp_path / "toy_weighted" / "1.0.0"
    info = folder / "dataset_info.json"
    info.write_text(info.read_text().replace('"array_record"', '"tfrecord"', 1))
    with pytest.raises(ValueError) as error:
        check_loadable("toy_weighted", data_dir=tmp_path)
    assert str(error.value) == (
        f"data set 'toy_weighted' in {folder} is stored as tfrecord, which needs TensorFlow to "
        "read; convert it where TensorFlow is installed: `tfds convert_format "
        f"--dataset_version_dir {folder} --out_file_format array_record` (it adds array_record "
        "files beside the tfrecord ones), or delete that folder and prepare it again: `tfds "
        f"build toy_weighted --data_dir {tmp_path} --file_format array_record` or "
        f"`tfds.builder('toy_weighted', data_dir='{tmp_path}', "
        "file_format='array_record').download_and_prepare()`"
    )
    # What convert_format leaves: the array_record files, named in the metadata beside tfrecord.
    info.write_text(
        info.read_text().replace(
            '"tfrecord"', '"tfrecord", "alternativeFileFormats": ["array_record"]', 1
        )
    )
    converted, original = (load("toy_weighted", data_dir=d) for d in (tmp_path, toys_dir))
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(converted, field), getattr(original, field))


def test_a_data_dir_with_glob_characters_in_its_path_loads(toys_dir, tmp_path):
    data_dir = tmp_path / "runs[1]"  # TFDS's glob read it as a pattern: nothing prepared there
    shutil.copytree(toys_dir / "toy_weighted", data_dir / "toy_weighted")
    check_loadable("toy_weighted", data_dir=data_dir)
    np.testing.assert_array_equal(
        load("toy_weighted", data_dir=data_dir).x_train,
        load("toy_weighted", data_dir=toys_dir).x_train,
    )


def _cut_to_its_first_block(file):
    with open(file, "r+b") as handle:
        handle.truncate(65536)  # array_record's block size: the file keeps no complete record


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda file: file.unlink(), "RuntimeError: .*"),
        (_cut_to_its_first_block, "ValueError: some of its records are empty, .*"),
    ],
    ids=["missing", "cut"],
)
def test_a_damaged_prepared_data_set_says_how_to_prepare_it_again(toys_dir, tmp_path, damage, why):
    shutil.copytree(toys_dir / "toy_weighted", tmp_path / "toy_weighted")
    folder = tmp_path / "toy_weighted" / "1.0.0"
    damage(next(folder.glob("toy_weighted-test.*")))
    with pytest.raises(
        ValueError,
        match=rf"data set 'toy_weighted' is incomplete or damaged in {folder} \(reading its "
        rf"'test' split raised {why}\); delete that folder and prepare it again: "
        rf"`tfds build toy_weighted --data_dir {tmp_path} --file_format array_record`",
    ):
        load("toy_weighted", data_dir=tmp_path)


@pytest.mark.parametrize(
    ("name", "asked"),
    [
        ("toy_weighted", "toy_weighted/1.0.0"),
        ("toy_weighted:1.0.0", "toy_weighted/1.0.0"),
        ("toy_weighted:1.*.*", "toy_weighted/1.0.0"),
        ("toy_configs", "toy_configs/small/1.0.0"),
        ("toy_configs/small", "toy_configs/small/1.0.0"),
    ],
)
def test_a_prepared_folder_without_its_info_file_is_damaged_not_unknown(
    toys_dir, tmp_path, name, asked
):
    dataset = asked.split("/")[0]
    shutil.copytree(toys_dir / dataset, tmp_path / dataset)
    (tmp_path / asked / "dataset_info.json").unlink()
    for check in (load, check_loadable):
        with pytest.raises(
            ValueError,
            match=rf"data set '{re.escape(name)}' is incomplete or damaged in {tmp_path / asked} "
            r"\(it has no dataset_info\.json\); delete that folder and prepare it again: "
            rf"`tfds build {re.escape(name)} --data_dir {tmp_path} --file_format array_record`",
        ):
            check(name, data_dir=tmp_path)


def _damaged(why: str) -> str:
    return rf"is incomplete or damaged in {{folder}} \({why}.*\);"


def _unreadable(why: str) -> str:
    return (
        rf"in {{folder}} has metadata this TFDS \(\d+\.\d+\.\d+\) cannot read "
        rf"\(\w+: {why}[\s\S]*\); a newer TFDS may have prepared it: upgrade "
        r"tensorflow_datasets to read it\. Only if the newest TFDS cannot read it either is it "
        r"damaged: then"
    )


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (
            lambda folder: (folder / "dataset_info.json").write_text('{"name": '),
            _damaged("its dataset_info"),
        ),
        (lambda folder: (folder / "features.json").write_text(""), _damaged("its features")),
        (lambda folder: (folder / "features.json").unlink(), _damaged(r"it has no features\.json")),
        (  # it was said to be of a newer TFDS, to upgrade first
            lambda folder: (folder / "dataset_info.json").write_text("{}"),
            _damaged(r"its dataset_info\.json holds no 'version', which every TFDS writes there"),
        ),
        (
            lambda folder: (folder / "features.json").write_text("[]"),
            _damaged(r"its features\.json holds no 'pythonClassName'"),
        ),
        (  # as a newer TFDS may write: it was said to be damaged, to delete, and not to
            lambda folder: (folder / "features.json").write_text(
                (folder / "features.json").read_text().replace("tensor_feature.", "new_feature.")
            ),
            _unreadable("Unrecognized FeatureConnector type: "),
        ),
    ],
    ids=[
        "cut_info",
        "empty_features",
        "no_features",
        "info_emptied",
        "features_no_object",
        "features_of_a_newer_tfds",
    ],
)
def test_unreadable_metadata_is_named_not_another_version(toys_dir, tmp_path, damage, said):
    shutil.copytree(toys_dir / "toy_weighted", tmp_path / "toy_weighted")
    folder = tmp_path / "toy_weighted" / "1.0.0"
    damage(folder)
    for check in (load, check_loadable):
        with pytest.raises(
            ValueError,
            match=rf"^data set 'toy_weighted' {said.format(folder=folder)} delete that folder and "
            r"prepare it again: `tfds build toy_weighted ",
        ):
            check("toy_weighted", data_dir=tmp_path)


_LEGACY_FEATURES = {  # as a TFDS before its features' protos wrote them: TFDS reads it still
    "type": "tensorflow_datasets.core.features.features_dict.FeaturesDict",
    "content": {
        **{
            name: {
                "type": "tensorflow_datasets.core.features.feature.Tensor",
                "content": {"shape": shape, "dtype": "float32"},
            }
            for name, shape in (("w", []), ("x", [2]))
        },
        "y": {
            "type": "tensorflow_datasets.core.features.class_label_feature.ClassLabel",
            "content": {"num_classes": 4},
        },
    },
}


def test_a_folder_an_older_tfds_prepared_is_not_named_damaged(toys_dir, tmp_path):
    """A features.json of ``type`` and ``content`` (an older TFDS's) was named damaged, to
    be deleted ("holds no 'pythonClassName'"), where another version was the damaged one."""
    root = tmp_path / "toy_weighted"
    shutil.copytree(toys_dir / "toy_weighted", root)
    shutil.copytree(root / "1.0.0", root / "2.0.0")
    (root / "2.0.0" / "dataset_info.json").write_text("{}")
    (root / "1.0.0" / "features.json").write_text(json.dumps(_LEGACY_FEATURES))
    assert check_loadable("toy_weighted:1.0.0", data_dir=tmp_path) is None
    with pytest.raises(ValueError) as raised:
        check_loadable("toy_weighted", data_dir=tmp_path)
    assert str(raised.value).startswith(
        f"data set 'toy_weighted' is incomplete or damaged in {root / '2.0.0'} (its "
        "dataset_info.json holds no 'version', which every TFDS writes there); delete that folder"
    )


def test_unreadable_metadata_says_tfds_s_error_once(toys_dir, tmp_path):
    # It ended in " (TFDS: <the same error>)", the error twice.
    shutil.copytree(toys_dir / "toy_weighted", tmp_path / "toy_weighted")
    features = tmp_path / "toy_weighted" / "1.0.0" / "features.json"
    features.write_text(features.read_text().replace("tensor_feature.", "new_feature."))
    with pytest.raises(ValueError) as raised:
        check_loadable("toy_weighted", data_dir=tmp_path)
    assert str(raised.value).count("Unrecognized FeatureConnector type") == 1


@pytest.mark.parametrize("asked", ["toy_weighted", "toy_configs/small"])
def test_an_unfinished_preparation_is_named_not_an_unknown_data_set(toys_dir, tmp_path, asked):
    """What a preparation killed midway leaves: TFDS renames the folder only when it ends."""
    left = tmp_path / asked / "incomplete.AB12CD_1.0.0"
    shutil.copytree(toys_dir / asked / "1.0.0", left)
    (left / "dataset_info.json").unlink()
    with pytest.raises(
        ValueError,
        match=rf"data set '{asked}' is not prepared in {tmp_path}: a preparation of it there "
        rf"did not finish, leaving {left}\. Unless one is running now, delete that folder and "
        rf"prepare it again: `tfds build {asked} --data_dir {tmp_path} ",
    ):
        load(asked, data_dir=tmp_path)


def test_an_unfinished_preparation_of_another_version_than_the_prepared_one_is_named(
    toys_dir, tmp_path
):
    """It said only that 1.0.0 was prepared, not that a preparation of 2.0.0 was killed."""
    shutil.copytree(toys_dir / "toy_weighted", tmp_path / "toy_weighted")
    left = tmp_path / "toy_weighted" / "incomplete.AB12CD_2.0.0"
    shutil.copytree(toys_dir / "toy_weighted" / "1.0.0", left)
    (left / "dataset_info.json").unlink()
    with pytest.raises(ValueError) as error:
        check_loadable("toy_weighted:2.0.0", data_dir=tmp_path)
    assert str(error.value).startswith(
        f"data set 'toy_weighted:2.0.0' is not prepared in {tmp_path} at the version or config "
        f"it asks for: a preparation of it there did not finish, leaving {left} (unless one is "
        "running now, delete that folder); the prepared versions of 'toy_weighted' are "
        "toy_weighted:1.0.0. Load one of those, or prepare it there first: `tfds build "
    )
    with pytest.raises(ValueError, match=r"asks for; the prepared versions"):  # not 3.0.0's
        check_loadable("toy_weighted:3.0.0", data_dir=tmp_path)


@pytest.mark.parametrize("asked", ["toy_configs/big", "toy_configs/big:2.0.0"])
def test_an_unfinished_preparation_of_another_config_is_not_named(toys_dir, tmp_path, asked):
    """It said a preparation of toy_configs/big had not finished, naming small's folder."""
    shutil.copytree(toys_dir / "toy_configs", tmp_path / "toy_configs")
    left = tmp_path / "toy_configs" / "small" / "incomplete.AB12CD_2.0.0"
    shutil.copytree(toys_dir / "toy_configs" / "small" / "1.0.0", left)
    (left / "dataset_info.json").unlink()
    with pytest.raises(ValueError) as error:
        check_loadable(asked, data_dir=tmp_path)
    assert str(error.value).startswith(
        f"data set {asked!r} is not prepared in {tmp_path} at the version or config it asks "
        "for; the prepared versions of 'toy_configs' are toy_configs/small:1.0.0. Load one of "
    )
    with pytest.raises(ValueError, match=f"did not finish, leaving {left} "):  # its own config's
        check_loadable("toy_configs/small:2.0.0", data_dir=tmp_path)


@pytest.mark.parametrize("asked", ["toy_configs/big", "toy_configs:2.0.0"])
def test_with_nothing_prepared_another_config_s_unfinished_preparation_is_not_named(
    toys_dir, tmp_path, asked
):
    """It said a preparation of the name asked had not finished, naming small:1.0.0's."""
    left = tmp_path / "toy_configs" / "small" / "incomplete.AB12CD_1.0.0"
    shutil.copytree(toys_dir / "toy_configs" / "small" / "1.0.0", left)
    (left / "dataset_info.json").unlink()
    with pytest.raises(ValueError) as error:
        check_loadable(asked, data_dir=tmp_path)
    assert str(error.value).startswith(
        f"unknown data set {asked!r}: it is neither built in (digits, mnist1d, "
        f"mnist1d_shuffled) nor prepared in {tmp_path} (none). "
    )


def test_an_unknown_data_set_says_to_pass_the_data_dir_it_is_prepared_in(tmp_path):
    """It said only to prepare it where it looked: one prepared in another data dir (and
    the data dir not passed) was told to be prepared again. Then it said to pass "a
    bench's --data_dir", which add_models (failing so on a bench whose data moved) has
    not: new records it in the bench, add_models then reads from there."""
    with pytest.raises(ValueError) as error:
        check_loadable("my_set", data_dir=tmp_path)
    assert str(error.value).endswith(
        "; or, if it is prepared in another data dir, pass that dir (data_dir=...; to a "
        "bench, new's --data_dir: `python -m phosjax.bench.new --dir BENCH --data_dir "
        "THAT_DIR` continues a bench made already reading from there, and its add_models "
        "then reads from there too)"
    )


def test_another_version_than_the_damaged_folder_is_still_unknown(toys_dir, tmp_path):
    shutil.copytree(toys_dir / "toy_weighted", tmp_path / "toy_weighted")
    (tmp_path / "toy_weighted" / "1.0.0" / "dataset_info.json").unlink()
    with pytest.raises(ValueError, match=r"unknown data set 'toy_weighted:2\.0\.0'"):
        check_loadable("toy_weighted:2.0.0", data_dir=tmp_path)


NAME_MUST_BE = "a data set's name as a str, e.g. 'mnist1d' or 'digits:1.0.0'"
DATA_DIR_MUST_BE = "a folder's path (a str or os.PathLike), e.g. '~/tensorflow_datasets'"


def test_a_data_dir_deeper_inside_a_data_dir_lists_no_name(toys_dir, tmp_path):
    """A data dir two folders down was listed as the data set 'outer/inner/toy_weighted',
    a name load refuses as malformed, and offered as a prepared version of 'outer'."""
    shutil.copytree(toys_dir / "toy_weighted", tmp_path / "outer/inner/toy_weighted")
    assert prepared_names(tmp_path) == []
    with pytest.raises(ValueError) as raised:
        load("outer/inner", data_dir=tmp_path)
    assert str(raised.value).startswith(
        "unknown data set 'outer/inner': it is neither built in (digits, mnist1d, "
        f"mnist1d_shuffled) nor prepared in {tmp_path} (none). "
    )


def test_a_version_folder_that_is_a_link_is_listed_as_prepared(toys_dir, tmp_path):
    """A data set whose version folder links to another disk loaded, but prepared_names
    said [] (a `**` glob follows no link), and asking another version said 'unknown data
    set' rather than listing the prepared one."""
    (tmp_path / "toy_weighted").mkdir()
    (tmp_path / "toy_weighted/1.0.0").symlink_to(toys_dir / "toy_weighted/1.0.0")
    assert prepared_names(tmp_path) == ["toy_weighted"]
    assert load("toy_weighted", data_dir=tmp_path).num_train == 5
    with pytest.raises(
        ValueError,
        match=r"the prepared versions of 'toy_weighted' are toy_weighted:1\.0\.0\. Load one",
    ):
        load("toy_weighted:2.0.0", data_dir=tmp_path)


def test_an_unfinished_preparation_deeper_inside_a_data_set_s_folder_is_not_its(
    tmp_path, monkeypatch
):
    """A data dir's unfinished preparation two folders down ('outer/inner/toy/incomplete.
    AB12CD_1.0.0') was named as one of 'outer' to delete (and a built-in data set's
    preparation deleted such folders); only outer/[<config>/]incomplete.* are its."""
    (tmp_path / "outer/inner/toy/incomplete.AB12CD_1.0.0").mkdir(parents=True)
    with pytest.raises(ValueError, match="unknown data set 'outer'") as raised:
        load("outer", data_dir=tmp_path)
    assert "did not finish" not in str(raised.value)
    own = tmp_path / "digits/incomplete.AB12CD_1.0.0"
    deeper = tmp_path / "digits/inner/toy/incomplete.AB12CD_1.0.0"
    for folder in (own, deeper):
        folder.mkdir(parents=True)
    prepared = []

    class Builder:  # a built-in's, whose preparation runs (TFDS's own work left out)
        def download_and_prepare(self, **kwargs):
            prepared.append(kwargs)

    monkeypatch.setattr(_load, "_builder", lambda name, data_dirs: (Builder(),))
    monkeypatch.setattr(_load, "_is_prepared", lambda builder: False)
    _load._prepare_builtin("digits", tmp_path)
    assert len(prepared) == 1 and not own.exists() and deeper.is_dir()  # the deeper survives


def test_a_version_folder_deeper_inside_a_data_set_s_folder_is_not_its_damaged_one(tmp_path):
    """A damaged version folder of a data dir two folders down ('outer/inner/toy/1.0.0')
    was named as a damaged preparation of 'outer' at config 'inner/toy', to delete; only
    outer/<version> and outer/<config>/<version> are its preparations."""
    (tmp_path / "outer/inner/toy/1.0.0").mkdir(parents=True)
    with pytest.raises(ValueError, match="unknown data set 'outer'") as raised:
        load("outer", data_dir=tmp_path)
    assert "damaged" not in str(raised.value)


@pytest.mark.parametrize(
    ("name", "inside"),
    [
        ("toy_weighted", "toy_weighted"),
        ("toy_weighted", "toy_weighted/1.0.0"),
        ("toy_configs/small", "toy_configs/small"),
    ],
)
def test_a_data_dir_inside_the_data_sets_own_folder_names_the_data_dir_above(
    toys_dir, name, inside
):
    assert prepared_names(toys_dir / inside) == []  # it listed '' (a nameless data set)
    dataset = name.split("/")[0]
    for check in (load, check_loadable):
        with pytest.raises(
            ValueError,
            match=rf"data set '{name}' cannot be loaded: data_dir '{toys_dir / inside}' is no data "
            r"dir but the prepared data set's own folder \(or one inside it\); pass the data dir "
            rf"that holds '{dataset}': data_dir='{toys_dir}'$",
        ):
            check(name, data_dir=toys_dir / inside)


@pytest.mark.parametrize(
    ("argument", "value", "must_be"),
    [("name", value, NAME_MUST_BE) for value in (None, 3, b"digits")]
    + [("data_dir", value, DATA_DIR_MUST_BE) for value in (3, ["/tmp"], b"/tmp")],
)
def test_a_name_or_data_dir_of_another_type_is_a_type_error_naming_it(
    tmp_path, argument, value, must_be
):
    given = {"name": "digits", "data_dir": tmp_path, argument: value}
    checks = [load, check_loadable]
    if argument == "data_dir":
        checks.append(lambda _, data_dir: prepared_names(data_dir))
    message = f"{argument} must be {must_be}, got {value!r} (of type {type(value).__name__})"
    for check in checks:
        with pytest.raises(TypeError, match=re.escape(message)):
            check(given["name"], data_dir=given["data_dir"])


def test_an_empty_data_dir_is_refused_not_read_as_the_working_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for check in (load, check_loadable, lambda _, data_dir: prepared_names(data_dir)):
        with pytest.raises(
            ValueError,
            match=r"data_dir is empty; give a folder's path, e\.g\. '~/tensorflow_datasets', "
            r"or None for the default data dir \(.+\)$",
        ):
            check("digits", data_dir="")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("below", ["", "sub/dir"])
@pytest.mark.parametrize("name", ["digits", "tiny_images"])
def test_a_data_dir_that_is_a_file_asks_for_a_folder(tmp_path, name, below):
    file = tmp_path / "a_file"
    file.write_text("")
    data_dir = file / below if below else file
    for check in (load, check_loadable, lambda _, data_dir: prepared_names(data_dir)):
        with pytest.raises(
            ValueError,
            match=rf"data_dir '{data_dir}' is not a folder: '{file}' is a file; TFDS data sets "
            "live in a folder, so give the path of one, new",
        ):
            check(name, data_dir=data_dir)


@pytest.mark.parametrize("below", ["", "sub/dir"])
@pytest.mark.parametrize("name", ["digits", "tiny_images"])
def test_a_data_dir_linked_to_nothing_names_the_link_not_a_permission(tmp_path, name, below):
    """A data dir linked to a drive not mounted read as a PermissionError, "(File exists:
    ...); pass a data_dir you can write to", or as a data set prepared nowhere."""
    link = tmp_path / "tfds"
    link.symlink_to(tmp_path / "unmounted")
    data_dir = link / below if below else link
    for check in (load, check_loadable, lambda _, data_dir: prepared_names(data_dir)):
        with pytest.raises(
            ValueError,
            match=rf"data_dir '{data_dir}' is not a folder: '{link}' is a link to "
            rf"'{tmp_path / 'unmounted'}', which does not exist \(a drive not mounted",
        ):
            check(name, data_dir=data_dir)
    assert sorted(tmp_path.iterdir()) == [link]


def test_a_default_data_dir_that_is_a_file_names_the_variable(tmp_path, monkeypatch):
    file = tmp_path / "a_file"
    file.write_text("")
    monkeypatch.setenv("PHOSJAX_DATA_DIR", str(file))
    with pytest.raises(
        ValueError, match=rf"the default data dir \(\$PHOSJAX_DATA_DIR\) '{file}' is not a folder"
    ):
        load("digits")


@pytest.fixture
def no_data_dir_set(tmp_path, monkeypatch):
    """No $PHOSJAX_DATA_DIR and a new home: phosjax's dir is <home>/.cache/phosjax/tfds."""
    monkeypatch.delenv("PHOSJAX_DATA_DIR", raising=False)
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home" / ".cache" / "phosjax" / "tfds"


class ShadowIntLabels(tfds_toys.ToyIntLabels, skip_registration=True):
    """`toy_int_labels`, labels all 0: which of two dirs holding that name was read."""

    name = "toy_int_labels"

    def example(self, index, split):
        return {"image": tfds_toys._vector(index), "label": 0}


def test_a_data_set_prepared_in_tfds_data_dir_loads_by_name_after_phosjax_dir(
    no_data_dir_set, tmp_path, monkeypatch
):
    tfds_dir = tmp_path / "tfds"
    tfds_toys.prepare(tfds_toys.ToyIntLabels, tfds_dir)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tfds_dir))
    assert prepared_names() == ["toy_int_labels"]
    check_loadable("toy_int_labels")
    np.testing.assert_array_equal(np.sort(load("toy_int_labels").y_train), [0, 0, 1, 1, 2])
    assert not no_data_dir_set.exists()  # read where TFDS prepared it, not copied
    # The same name prepared in phosjax's dir comes first.
    tfds_toys.prepare(ShadowIntLabels, no_data_dir_set)
    np.testing.assert_array_equal(load("toy_int_labels").y_train, [0] * 5)
    # $PHOSJAX_DATA_DIR (or data_dir) is the only dir looked in.
    monkeypatch.setenv("PHOSJAX_DATA_DIR", str(tmp_path / "only"))
    with pytest.raises(
        ValueError, match=rf"nor prepared in {tmp_path}/only \(none: no such folder\)\."
    ):
        load("toy_int_labels")


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (
            lambda folder: (folder / "dataset_info.json").unlink(),
            r"is incomplete or damaged in {folder} \(it has no dataset_info\.json",
        ),
        (
            lambda folder: (folder / "features.json").write_text(""),
            r"is incomplete or damaged in {folder} \(its features\.json is not JSON",
        ),
        (
            lambda folder: (folder / "dataset_info.json").write_text("{}"),
            r"is incomplete or damaged in {folder} \(its dataset_info\.json holds no 'version'",
        ),
    ],
    ids=["no_info", "empty_features", "info_emptied"],
)
def test_a_damaged_copy_in_phosjax_dir_is_named_not_passed_over_for_tfds_dir(
    no_data_dir_set, tmp_path, monkeypatch, damage, said
):
    tfds_dir = tmp_path / "tfds"
    tfds_toys.prepare(tfds_toys.ToyIntLabels, tfds_dir)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tfds_dir))
    tfds_toys.prepare(ShadowIntLabels, no_data_dir_set)
    folder = no_data_dir_set / "toy_int_labels" / "1.0.0"
    damage(folder)
    looked = []  # each look reads every matching folder's metadata with TFDS
    monkeypatch.setattr(
        _load, "_damaged_folder", lambda *args: looked.append(args) or damaged_folder(*args)
    )
    for check in (load, check_loadable):  # both read tfds_dir's copy, saying nothing
        looked.clear()
        with pytest.raises(
            ValueError,
            match=rf"data set 'toy_int_labels' {said.format(folder=folder)}.*"
            rf"It was not passed over for the copy in {tfds_dir}, as the first data dir that "
            rf"holds a data set wins; to read that copy, pass data_dir='{tfds_dir}'$",
        ):
            check("toy_int_labels")
        assert len(looked) == 1  # was twice: for the message, then to stop at the folder
    np.testing.assert_array_equal(
        np.sort(load("toy_int_labels", data_dir=tfds_dir).y_train), [0, 0, 1, 1, 2]
    )


def test_an_unknown_name_names_phosjax_and_tfds_data_dirs(no_data_dir_set, tmp_path, monkeypatch):
    tfds_dir = tmp_path / "tfds"
    tfds_toys.prepare(tfds_toys.ToyIntLabels, tfds_dir)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tfds_dir))
    for check in (load, check_loadable):
        with pytest.raises(
            ValueError,
            match=rf"unknown data set 'toy_int_label': it is neither built in \(.*\) nor "
            rf"prepared in {no_data_dir_set} \(none: no such folder\) or in {tfds_dir} "
            r"\(toy_int_labels\)\. "
            r"Did you mean 'toy_int_labels'\? To load another TFDS data set, prepare it in one "
            "of those first",
        ):
            check("toy_int_label")


def test_a_malformed_name_says_what_a_name_looks_like(toys_dir):
    with pytest.raises(
        ValueError,
        match=r"data set name 'toy_configs:1\.0\.0\.0' is malformed; .* 'name/config:1\.2\.3'$",
    ):
        load("toy_configs:1.0.0.0", data_dir=toys_dir)


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("toy-configs", "toy_configs"),
        ("toy_configs/", "toy_configs"),
        (" toy_configs", "toy_configs"),
        ("Toy-Configs/small", "toy_configs/small"),  # not 'Toy_Configs/small', refused in turn
        ("toy configs", "toy_configs"),  # spaces inside it: was said malformed, no name offered
        (" Toy - Configs/small", "toy_configs/small"),
        ("Mnist-1D", "mnist1d"),  # the built-in name, not TFDS's reading 'mnist_1_d'
        ("mnist 1d:1.0.0", "mnist1d:1.0.0"),
        ("Toy Configs /small", "toy_configs/small"),  # was offered as 'toy_configs_/small'
        ("digits : 1.0.0 / ", "digits:1.0.0"),
        ("toy-uint-8-tensor", "toy_uint8_tensor"),  # the prepared name, not toy_uint_8_tensor
        ("toy-int-label", "toy_int_labels"),  # the nearest prepared, not toy_int_label (none)
        ("toy_configs/small:1.0", "toy_configs/small:1.0.0"),  # a version has three numbers
        ("digits:v1", "digits:1.0.0"),
        ("Toy-Configs:1.*", "toy_configs:1.*.*"),
    ],
)
def test_a_malformed_name_offers_it_without_hyphens_spaces_or_a_slash_at_its_end(
    toys_dir, name, meant
):
    # It said what a name looks like, not the name meant.
    with pytest.raises(ValueError, match=rf"is malformed; .*\. Did you mean '{meant}'\?$"):
        check_loadable(name, data_dir=toys_dir)
    check_loadable(meant, data_dir=toys_dir)  # the name offered is taken


def test_a_malformed_name_lists_the_data_dirs_once(toys_dir, monkeypatch):
    """Its offer listed every data dir's data sets twice (once for the spelling, again for
    the nearest name): once."""
    listed = []
    monkeypatch.setattr(
        _load, "_prepared_variants", lambda root: listed.append(root) or ["toy_configs:1.0.0"]
    )
    with pytest.raises(ValueError, match=r"Did you mean 'toy_configs'\?$"):
        check_loadable("toy-configs", data_dir=toys_dir)
    assert len(listed) == len(set(listed)), listed


@pytest.mark.parametrize(
    ("name", "split", "pair"),
    [
        ("toy_int_labels[:10%]", "[:10%]", ("train[:10%]", "test")),
        ("toy_int_labels:train", ":train", ("train", "test")),
        ("toy_int_labels/test[50:]", "/test[50:]", ("train", "test[50:]")),
        ("digits:validation[:5]", ":validation[:5]", ("train", "validation[:5]")),
        # "a namespace" (':val'), or train[:10] for test (a slice of val)
        ("toy_int_labels:val", ":val", ("train", "val")),
        ("toy_int_labels/eval[:10]", "/eval[:10]", ("train", "eval[:10]")),
    ],
)
def test_a_split_in_the_name_says_to_give_splits(toys_dir, name, split, pair):
    for check in (load, check_loadable):  # was "malformed" (':train': "a namespace")
        with pytest.raises(
            SplitInNameError,  # public, so that a caller can catch it alone
            match=rf"data set name '{re.escape(name)}' names a split \('{re.escape(split)}'\); "
            rf"load takes the data set's name alone \('{name[: -len(split)]}'\) and the splits "
            rf"to read apart: splits=\(train, test\), e.g. splits={re.escape(repr(pair))}$",
        ):
            check(name, data_dir=toys_dir)
    with pytest.raises(SplitInNameError) as caught:
        load(name, data_dir=toys_dir)
    assert (caught.value.dataset, caught.value.split, caught.value.suggested) == (
        name[: -len(split)],
        split,
        pair,
    )


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("toy_configs:v1", r"\. Did you mean 'toy_configs:1\.0\.0'\?"),  # a version, not a name
        ("huggingface:toy_configs", ""),
    ],
)
def test_a_name_with_a_namespace_is_malformed_not_looked_up(toys_dir, name, meant):
    namespace = name.split(":")[0]
    for check in (load, check_loadable):
        with pytest.raises(
            ValueError,
            match=rf"data set name '{name}' is malformed; .* 'name/config:1\.2\.3', without a "
            rf"namespace \('{namespace}' here\){meant}$",
        ):
            check(name, data_dir=toys_dir)


@pytest.mark.parametrize(
    ("name", "spelled", "right"),
    [
        ("Digits", "Digits", "digits"),
        ("MNIST1D:1.0.0", "MNIST1D", "mnist1d"),  # built in: lower-cased
        ("TOY_CONFIGS", "TOY_CONFIGS", "toy_configs"),
        ("CIFAR10:3.0.2", "CIFAR10", "cifar10"),  # in capitals: lower-cased
        ("ToyConfigs/small", "ToyConfigs", "toy_configs"),  # its class's name
        ("Toy_Configs/small", "Toy_Configs", "toy_configs"),  # not toy__configs
        ("Mnist_1D", "Mnist_1D", "mnist1d"),  # the built-in name, not mnist_1_d
        # the name prepared in the data dir, not toy_uint_8_tensor
        ("Toy_Uint_8_Tensor", "Toy_Uint_8_Tensor", "toy_uint8_tensor"),
    ],
)
def test_a_name_spelled_otherwise_than_tfds_names_it_is_refused_naming_the_spelling(
    toys_dir, name, spelled, right
):
    written = right + name[len(spelled) :]
    for check in (load, check_loadable):
        with pytest.raises(
            ValueError,
            match=rf"^data set name '{name}' is not spelled as TFDS names the data set: write "
            rf"'{written}' \(lower-case snake_case; results name a data set as written, so "
            rf"'{spelled}' and '{right}' would be reported as two\)$",
        ):
            check(name, data_dir=toys_dir)
    assert "digits" not in prepared_names(toys_dir)


def test_a_built_in_name_is_checked_without_being_prepared(tmp_path):
    check_loadable("digits:1.0.0", data_dir=tmp_path)
    assert prepared_names(tmp_path) == []
    with pytest.raises(
        ValueError, match=r"built-in data set 'digits:2\.0\.0' cannot be loaded: .*only: 1\.0\.0"
    ):
        check_loadable("digits:2.0.0", data_dir=tmp_path)


def _toy(**overrides):
    fields = dict(
        name="toy",
        x_train=np.zeros((4, 3), np.float32),
        y_train=np.zeros(4, np.int32),
        x_test=np.zeros((2, 3), np.float32),
        y_test=np.zeros(2, np.int32),
        num_classes=2,
        input_shape=(3,),
    )
    return ArrayDataset(**{**fields, **overrides})


def test_array_dataset_checks_shapes():
    with pytest.raises(ValueError, match=r"x_test has shape \(2, 5\).*input_shape=\(3,\)"):
        _toy(x_test=np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match=r"y_train has shape \(3,\), expected \(4,\)"):
        _toy(y_train=np.zeros(3, np.int32))
    with pytest.raises(ValueError, match=r"x_test has shape \(2, 5\)"):
        dataclasses.replace(_toy(), x_test=np.zeros((2, 5), np.float32))


def test_array_dataset_refuses_a_scalar_split_whose_size_num_train_could_not_read():
    """A 0-d x_train with input_shape () and a 0-d y_train was taken; its num_train then
    raised IndexError: tuple index out of range."""
    with pytest.raises(ValueError, match=r"x_train has shape \(\), expected \(num_examples, \*"):
        _toy(
            x_train=np.zeros((), np.float32),
            y_train=np.zeros((), np.int32),
            x_test=np.zeros(2, np.float32),
            input_shape=(),
        )


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("input_shape", "3", r"input_shape must be the shape of one example, .*got '3'$"),
        ("input_shape", (3.0,), r"input_shape must be .*got \(3\.0,\)"),
        ("num_classes", 2.5, r"num_classes must be a whole number >= 1, got 2\.5"),
        ("num_classes", 0, r"num_classes must be a whole number >= 1, got 0"),
    ],
)
def test_array_dataset_names_a_bad_input_shape_or_class_count(field, value, match):
    with pytest.raises(ValueError, match=match):
        _toy(**{field: value})


@pytest.mark.parametrize("name", [3, "", None])
def test_array_dataset_refuses_a_name_that_is_no_str(name):
    # it was taken: results and messages then named the data set 3 or ''
    with pytest.raises(TypeError, match=rf"name must be the data set's name, .*got {name!r}$"):
        _toy(name=name)


def test_array_dataset_takes_a_list_or_numpy_sizes_as_plain_ints():
    ds = _toy(input_shape=[np.int64(3)], num_classes=np.int32(2))
    assert ds.input_shape == (3,) and type(ds.input_shape[0]) is int
    assert type(ds.num_classes) is int


@pytest.mark.parametrize(
    ("split", "labels", "bad"), [("train", [0, 1, 2, 1], 2), ("test", [0, -1], -1)]
)
def test_array_dataset_refuses_labels_outside_its_classes(split, labels, bad):
    with pytest.raises(
        ValueError,
        match=rf"'toy': y_{split} holds the label {bad}, outside \[0, num_classes=2\); labels "
        r"are class indices from 0 to 1",
    ):
        _toy(**{f"y_{split}": np.asarray(labels, np.int32)})
    _toy(**{f"y_{split}": jnp.asarray(labels, jnp.int32) % 2})  # in range: fine, on device too


@pytest.mark.parametrize("field", ["x_train", "y_test"])
def test_array_dataset_refuses_a_list_for_an_array_by_name(field):
    with pytest.raises(
        TypeError,
        match=rf"ArrayDataset 'toy': {field} must be an array \(numpy or jax\), got a list; "
        rf"convert it, e\.g\. np\.asarray\({field}\)",
    ):
        _toy(**{field: getattr(_toy(), field).tolist()})


def test_array_dataset_refuses_labels_that_are_not_integers():
    with pytest.raises(TypeError, match=r"'toy': y_test has dtype float32; labels are class"):
        _toy(y_test=np.zeros(2, np.float32))


@pytest.mark.parametrize("dtype", [np.complex64, np.str_, object])
def test_array_dataset_refuses_inputs_that_are_not_real_numbers(dtype):
    # they were taken: training cast complex inputs to float32, dropping their imaginary
    # part (a warning), and failed on strings only when it read them
    for split in ("train", "test"):
        x = getattr(_toy(), f"x_{split}").astype(dtype)
        with pytest.raises(
            TypeError,
            match=rf"^ArrayDataset 'toy': x_{split} has dtype {x.dtype}; inputs are real "
            r"numbers, a float, integer or bool dtype \(training reads them as float32, e\.g\. "
            r"x\.astype\(np\.float32\)\)$",
        ):
            _toy(**{f"x_{split}": x})
    for dtype in (np.uint8, np.bool_, jnp.bfloat16):  # real numbers of any kind pass
        _toy(x_train=jnp.zeros((4, 3), dtype), x_test=jnp.zeros((2, 3), dtype))


def test_array_dataset_refuses_integer_inputs_beside_float_ones_naming_both_dtypes():
    # uint8 train pixels beside test pixels scaled to [0, 1] were taken: the model was
    # scored on inputs 255 times smaller than it trained on, with no error
    pixels, scaled = np.full((4, 3), 255, np.uint8), np.ones((2, 3), np.float32)
    with pytest.raises(
        TypeError,
        match=r"^ArrayDataset 'toy': x_train has dtype uint8 and x_test float32, an integer and "
        r"a float dtype; training reads both as float32 as they are, so one split scaled "
        r"\(uint8 pixels / 255\) and the other not would be read on scales 255 times apart: "
        r"give both splits one kind, e\.g\. both x\.astype\(np\.float32\) / 255$",
    ):
        _toy(x_train=pixels, x_test=scaled)
    with pytest.raises(TypeError, match=r"x_train has dtype float64 and x_test int32, an integer"):
        _toy(x_train=np.ones((4, 3)), x_test=np.ones((2, 3), np.int32))
    kept = [  # two floats, two integers, or bool beside either: as before
        (np.float64, np.float32),
        (jnp.bfloat16, np.float32),
        (np.int32, np.uint8),
        (np.bool_, np.float32),
        (np.uint8, np.bool_),
    ]
    for train, test in kept:
        ds = _toy(x_train=np.ones((4, 3), train), x_test=np.ones((2, 3), test))
        assert (ds.x_train.dtype, ds.x_test.dtype) == (np.dtype(train), np.dtype(test))


def test_tree_ops_rebuild_an_array_dataset_whatever_its_leaves():
    ds = _toy(x_train=np.ones((4, 3), np.float32))
    means = jax.tree.map(jnp.mean, ds)
    assert (float(means.x_train), means.name, means.input_shape) == (1.0, "toy", (3,))
    assert jax.tree.leaves(jax.tree.map(lambda _: None, ds)) == []
    mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("data",))
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    placed = jax.device_put(ds, jax.tree.map(lambda _: replicated, ds))
    assert placed.x_test.sharding == replicated
    square = _toy(x_test=np.ones((4, 3), np.float32), y_test=np.ones(4, np.int32))
    per_row = jax.vmap(lambda d: d.x_train.sum() + d.x_test.sum() + d.y_test)(square)
    np.testing.assert_array_equal(per_row, [4.0] * 4)  # 0 + 3 + 1 per row
    paths = [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_leaves_with_path(ds)]
    assert paths == [".x_train", ".y_train", ".x_test", ".y_test"]


def test_array_dataset_is_a_pytree_with_static_metadata():
    ds = _toy()
    assert len(jax.tree_util.tree_leaves(ds)) == 4
    on_device = jax.device_put(ds)
    assert isinstance(on_device.x_train, jax.Array)
    assert (on_device.name, on_device.num_classes, on_device.input_shape) == ("toy", 2, (3,))
    total = jax.jit(lambda d: d.x_train.sum() + d.num_classes)(on_device)
    assert float(total) == 2.0


def test_an_array_dataset_copies_the_arrays_it_could_be_changed_through_and_holds_them_read_only():
    # it held the arrays given: an edit of them, or of its own (ds.x_train[...] *= 100),
    # changed it after run_group had placed it, whose next call trained on the copy placed
    x = np.zeros((4, 3), np.float32)
    seen = x[:2]  # read-only, but x, which it views, is not
    seen.flags.writeable = False
    ds = _toy(x_train=x, x_test=seen)
    x[...] = 5
    assert (ds.x_train.tolist(), ds.x_test.tolist()) == ([[0.0] * 3] * 4, [[0.0] * 3] * 2)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        with pytest.raises(ValueError, match=r"^assignment destination is read-only$"):
            getattr(ds, field)[0] = 1
    fixed, on_device = np.ones((4, 3), np.float32), jnp.ones((2, 3))
    fixed.flags.writeable = False
    again = _toy(x_train=fixed, x_test=on_device)  # nothing could change them: kept
    assert again.x_train is fixed and again.x_test is on_device
    for copied in (pickle.loads(pickle.dumps(ds)), copy.deepcopy(ds)):
        with pytest.raises(ValueError, match=r"^assignment destination is read-only$"):
            copied.y_test[0] = 1
        assert copied.x_train.tolist() == [[0.0] * 3] * 4


def test_a_shallow_copy_leaves_the_arrays_it_shares_writable_where_they_were():
    # copy.copy went through __setstate__, which flagged read-only the arrays the copy
    # shares with the original: a tree op's writable arrays could no longer be written
    writable = jax.tree.map(np.copy, _toy())
    shallow = copy.copy(writable)
    writable.x_train[0] = 1
    assert shallow.x_train is writable.x_train and shallow.x_train[0].tolist() == [1.0] * 3
    assert (shallow.name, shallow.num_classes, shallow.input_shape) == ("toy", 2, (3,))


def test_check_batch_size_passes_the_whole_train_split_and_names_one_larger():
    check_batch_size("grid.batch_size", 4, _toy())  # the whole train split fits
    with pytest.raises(ValueError) as error:
        check_batch_size("grid.batch_size", 5, _toy())
    assert str(error.value) == (
        "grid.batch_size=5 is larger than the train split of data set 'toy', which has 4 "
        "examples; set grid.batch_size to at most 4"
    )
    empty = _toy(x_train=np.zeros((0, 3), np.float32), y_train=np.zeros(0, np.int32))
    with pytest.raises(ValueError) as error:
        check_batch_size("HParams.batch_size", 1, empty)
    assert str(error.value) == (
        "data set 'toy' has an empty train split: HParams.batch_size=1 needs at least that "
        "many train examples"
    )
    for size in (0, -4):  # no batch at all, not one that always fits
        message = rf"^grid.batch_size must be a positive int, got {size}$"
        with pytest.raises(ValueError, match=message):
            check_batch_size("grid.batch_size", size, _toy())
    message = r"^grid.batch_size must be a static positive int, got 2.5$"
    with pytest.raises(TypeError, match=message):
        check_batch_size("grid.batch_size", 2.5, _toy())


@pytest.mark.parametrize("name", ["x" * 300, "toy_configs/" + "x" * 300])
def test_a_name_too_long_for_a_folder_is_refused_as_such_not_with_an_oserror(name, tmp_path):
    # Path.is_dir raised a bare OSError "[Errno 36] File name too long" on such a name.
    too_long = (
        rf"^data set name '{name[:20]}.*… is too long: a data set is prepared in a folder "
        r"named after it, and 'x{18}… has 300 bytes, more than a folder's name may have \(255\)$"
    )
    with pytest.raises(ValueError, match=too_long):
        phosjax.data.load(name, data_dir=tmp_path)
