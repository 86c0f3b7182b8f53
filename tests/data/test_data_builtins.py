"""The built-in data sets: shapes, splits, determinism, the shuffled variant, safe preparation."""

import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from phosjax.data import _load, check_loadable, load
from phosjax.data._builders import BUILDERS, _global_rng_restored, mnist1d_permutation
from tests.data import tfds_toys

EXPECTED = {
    # name: (input_shape, num_train, num_test)
    "mnist1d": ((40,), 4000, 1000),
    "mnist1d_shuffled": ((40,), 4000, 1000),
    "digits": ((8, 8, 1), 1437, 360),
}


@pytest.fixture(scope="module")
def datasets(data_dir):
    return {name: load(name, data_dir=data_dir) for name in EXPECTED}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builtin_shapes_dtypes_and_classes(datasets, name):
    ds = datasets[name]
    input_shape, num_train, num_test = EXPECTED[name]
    assert ds.name == name
    assert ds.input_shape == input_shape
    assert ds.num_classes == 10
    assert ds.x_train.shape == (num_train, *input_shape)
    assert ds.x_test.shape == (num_test, *input_shape)
    assert ds.y_train.shape == (num_train,)
    assert ds.y_test.shape == (num_test,)
    for x in (ds.x_train, ds.x_test):
        assert isinstance(x, np.ndarray) and x.dtype == np.float32
        assert np.isfinite(x).all()
    for y in (ds.y_train, ds.y_test):
        assert isinstance(y, np.ndarray) and y.dtype == np.int32
        assert set(np.unique(y).tolist()) == set(range(10))


def test_builtin_split_sizes_known_before_preparing_are_those_prepared(datasets, data_dir):
    for name in EXPECTED:  # load checks splits= against them before preparing
        prepared = tfds.builder_from_directory(os.path.join(data_dir, name, "1.0.0"))
        sizes = {split: info.num_examples for split, info in prepared.info.splits.items()}
        assert sizes == BUILDERS[name].SIZES


def test_builtin_loads_are_deterministic(datasets, data_dir):
    for name in EXPECTED:
        again = load(name, data_dir=data_dir)
        for field in ("x_train", "y_train", "x_test", "y_test"):
            np.testing.assert_array_equal(getattr(again, field), getattr(datasets[name], field))


def test_digits_are_scaled_images_in_unit_range(datasets):
    from sklearn.datasets import load_digits

    ds = datasets["digits"]
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    # The two splits together are exactly the bundled images / 16, each once.
    ours = np.concatenate([ds.x_train, ds.x_test]).reshape(-1, 64)
    bundled = (load_digits().data / 16.0).astype(np.float32)
    sort = lambda rows: rows[np.lexsort(rows.T[::-1])]
    np.testing.assert_array_equal(sort(ours), sort(bundled))


def _raw_mnist1d() -> tuple[np.ndarray, np.ndarray]:
    """The package's 5000 signals and labels before standardization, generated as its
    `make_dataset` does (seed 42, templates, `transform`, batch shuffle)."""
    from mnist1d.data import get_dataset_args, get_templates, set_seed, transform

    args = get_dataset_args()
    templates = get_templates()
    with _global_rng_restored():
        set_seed(args.seed)
        xs, ys = [], []
        for label in range(len(templates["y"])):
            for _ in range(args.num_samples // len(templates["y"])):
                x, _ = transform(templates["x"][label], templates["t"], args)
                xs.append(x)
                ys.append(templates["y"][label])
        shuffle = np.random.permutation(len(ys))
    return np.stack(xs)[shuffle], np.stack(ys)[shuffle]


def test_mnist1d_is_standardized_like_the_package(datasets):
    raw, labels = _raw_mnist1d()
    assert raw.shape == (5000, 40)
    # one mean and one std over all 5000 signals (both splits), then the 4000/1000 split
    expected = ((raw - raw.mean()) / raw.std()).astype(np.float32)
    ds = datasets["mnist1d"]
    # TFDS stores the examples in its own (hashed-key) order: compare each split's
    # (signal, label) rows as sorted sets, like the digits test
    sort = lambda rows: rows[np.lexsort(rows.T[::-1])]
    for split, rows in (("train", slice(0, 4000)), ("test", slice(4000, 5000))):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        ours = np.column_stack([x, y.astype(np.float32)])
        theirs = np.column_stack([expected[rows], labels[rows].astype(np.float32)])
        np.testing.assert_array_equal(sort(ours), sort(theirs), err_msg=split)
    # the statistics are global, not per split: the test split alone is not standardized
    assert abs(float(ds.x_test.mean())) > 1e-3 or abs(float(ds.x_test.std()) - 1) > 1e-3


def test_shuffled_mnist1d_permutes_the_positions(datasets):
    plain, shuffled = datasets["mnist1d"], datasets["mnist1d_shuffled"]
    permutation = mnist1d_permutation()
    assert not np.array_equal(permutation, np.arange(40))
    for split in ("train", "test"):
        x_plain, x_shuffled = getattr(plain, f"x_{split}"), getattr(shuffled, f"x_{split}")
        np.testing.assert_array_equal(getattr(shuffled, f"y_{split}"), getattr(plain, f"y_{split}"))
        np.testing.assert_array_equal(np.sort(x_shuffled, axis=1), np.sort(x_plain, axis=1))
        np.testing.assert_array_equal(x_shuffled, x_plain[:, permutation])
        assert not np.array_equal(x_shuffled, x_plain)


@pytest.mark.slow
@pytest.mark.multiprocess
def test_concurrent_preparation_yields_one_valid_data_set(tmp_path, datasets):
    script = (
        "import sys; from phosjax.data import load; "
        "ds = load('digits', data_dir=sys.argv[1]); print('num_train', ds.num_train)"
    )
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert "num_train 1437" in out
        assert "has no dataset_info.json" not in err  # TFDS's warning about a folder to come
    # Exactly one process prepared it; the other waited on the lock and found it prepared.
    assert sum("prepared built-in data set 'digits'" in err for _, err in outputs) == 1
    versions = sorted(p.name for p in pathlib.Path(tmp_path, "digits").iterdir())
    assert versions == ["1.0.0"]  # no leftover "incomplete.*" dir
    prepared_elsewhere = load("digits", data_dir=tmp_path)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(
            getattr(prepared_elsewhere, field), getattr(datasets["digits"], field)
        )


def test_preparing_a_built_in_says_so_on_stderr_not_that_it_downloads(tmp_path, capfd):
    """TFDS printed "Downloading and preparing dataset Unknown size (download: Unknown
    size, ...)" on stdout, of a data set generated offline."""
    load("digits", data_dir=tmp_path)
    out, err = capfd.readouterr()
    folder = tmp_path / "digits" / "1.0.0"
    assert "Download" not in out + err and "downloaded" not in out + err
    assert err.startswith(
        f"preparing built-in data set 'digits' in {folder}: generated here, offline, once "
        "(later loads read it)\n"
    )
    assert err.endswith(f"prepared built-in data set 'digits' in {folder}\n")
    load("digits", data_dir=tmp_path)
    assert capfd.readouterr() == ("", "")  # read, not prepared again


def test_a_data_dir_that_cannot_be_made_is_named():
    with pytest.raises(
        PermissionError,
        match=r"cannot prepare built-in data set 'mnist1d' in data_dir '/proc/phosjax_data' "
        r"\(No such file or directory: '/proc/phosjax_data'\); pass a data_dir you can write",
    ):
        load("mnist1d", data_dir="/proc/phosjax_data")  # no folder can be made in /proc


def test_a_prepared_read_only_data_dir_loads_without_taking_the_lock(
    tmp_path, datasets, data_dir, monkeypatch
):
    shutil.copytree(pathlib.Path(data_dir, "digits"), tmp_path / "digits")

    def no_lock(path):  # as a read-only dir would: root ignores the chmod below
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(_load, "_file_lock", no_lock)
    tmp_path.chmod(0o555)
    try:
        digits = load("digits", data_dir=tmp_path)
        with pytest.raises(  # preparing takes the lock
            PermissionError,
            match=r"cannot prepare built-in data set 'mnist1d' in data_dir .*Permission denied.*"
            r"\.mnist1d\.lock.*; pass a data_dir you can write to",
        ):
            load("mnist1d", data_dir=tmp_path)
    finally:
        tmp_path.chmod(0o755)
    np.testing.assert_array_equal(digits.x_train, datasets["digits"].x_train)


def test_a_built_in_prepared_under_a_path_with_glob_characters_loads(tmp_path, datasets, data_dir):
    data_dir_with_glob = tmp_path / "runs[1]"  # it was named damaged, to delete
    shutil.copytree(pathlib.Path(data_dir, "digits"), data_dir_with_glob / "digits")
    digits = load("digits", data_dir=data_dir_with_glob)
    np.testing.assert_array_equal(digits.x_train, datasets["digits"].x_train)
    assert sorted(p.name for p in data_dir_with_glob.iterdir()) == ["digits"]  # not prepared again


def _cut(path: pathlib.Path) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(1000)


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (
            lambda folder: (folder / "dataset_info.json").unlink(),
            r"is incomplete or damaged in {folder} \(it has no dataset_info.json",
        ),
        (
            lambda folder: next(folder.glob("digits-train.*")).unlink(),
            r"is incomplete or damaged in {folder} \(reading its 'train' split raised "
            r"RuntimeError: open\(\) failed",
        ),
        (
            lambda folder: _cut(next(folder.glob("digits-test.*"))),
            r"is incomplete or damaged in {folder} \(reading its 'test' split",
        ),
        (
            lambda folder: (folder / "dataset_info.json").write_text(""),
            r"is incomplete or damaged in {folder} \(its dataset_info.json",
        ),
        (  # it was said to be of a newer TFDS, to upgrade first
            lambda folder: (folder / "dataset_info.json").write_text("{}"),
            r"is incomplete or damaged in {folder} \(its dataset_info.json holds no 'version', "
            r"which every TFDS writes there\);",
        ),
    ],
    ids=["no_info", "no_train_file", "cut_test_file", "empty_info", "info_emptied"],
)
def test_a_damaged_built_in_folder_is_named_with_how_to_make_it_anew(
    tmp_path, datasets, data_dir, damage, said
):
    shutil.copytree(pathlib.Path(data_dir, "digits"), tmp_path / "digits")
    folder = tmp_path / "digits" / "1.0.0"
    damage(folder)
    with pytest.raises(
        ValueError,
        match=rf"data set 'digits' {said.format(folder=folder)}[\s\S]* delete that folder and "
        "load it again, which generates it anew$",
    ):
        load("digits", data_dir=tmp_path)
    shutil.rmtree(folder)
    np.testing.assert_array_equal(
        load("digits", data_dir=tmp_path).x_test, datasets["digits"].x_test
    )


def test_preparing_a_built_in_removes_what_a_killed_preparation_left(tmp_path, datasets):
    # the folder of a preparation killed midway was left there, beside the one made anew
    left = tmp_path / "digits" / "incomplete.AB12CD_1.0.0"
    left.mkdir(parents=True)
    (left / "digits-train.array_record-00000-of-00001").write_bytes(b"half")
    np.testing.assert_array_equal(
        load("digits", data_dir=tmp_path).x_test, datasets["digits"].x_test
    )
    assert sorted(path.name for path in (tmp_path / "digits").iterdir()) == ["1.0.0"]


def test_preparing_a_built_in_leaves_no_downloads_folder_in_the_data_dir(tmp_path):
    # TFDS's empty downloads/extracted was left there, though nothing is downloaded
    load("digits", data_dir=tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == [".digits.lock", "digits"]


@pytest.mark.parametrize("inside", ["digits", "digits/1.0.0"])
def test_a_data_dir_inside_a_built_in_s_own_folder_names_the_data_dir_above(
    tmp_path, datasets, data_dir, inside
):
    # the built-in was prepared again, inside its prepared folder (digits/digits/1.0.0)
    shutil.copytree(pathlib.Path(data_dir, "digits"), tmp_path / "digits")
    for check in (load, check_loadable):
        with pytest.raises(
            ValueError,
            match=rf"data set 'digits' cannot be loaded: data_dir '{tmp_path / inside}' is no "
            r"data dir but the prepared data set's own folder \(or one inside it\); pass the "
            rf"data dir that holds 'digits': data_dir='{tmp_path}'$",
        ):
            check("digits", data_dir=tmp_path / inside)
    assert sorted(path.name for path in (tmp_path / "digits").iterdir()) == ["1.0.0"]
    assert load("digits", data_dir=tmp_path).num_train == 1437


def test_a_built_in_is_prepared_in_a_data_dir_named_like_it_holding_another_data_set(
    tmp_path, datasets, data_dir
):
    # the check of a data_dir inside a data set's own folder would take it for digits' own
    shutil.copytree(pathlib.Path(data_dir, "mnist1d"), tmp_path / "digits" / "mnist1d")
    assert load("digits", data_dir=tmp_path / "digits").num_train == 1437


class UsersDigits(tfds_toys.ToyIntLabels, skip_registration=True):
    """A user's own data set named like a built-in one, at its version."""

    name = "digits"


def test_a_users_data_set_of_a_built_in_name_is_refused_not_read_as_the_built_in(tmp_path):
    tfds_toys.prepare(UsersDigits, tmp_path)
    for check in (load, check_loadable):  # load read its 5 examples as digits
        with pytest.raises(
            ValueError,
            match=rf"data set 'digits' in {tmp_path / 'digits' / '1.0.0'} is not phosjax's "
            rf"built-in 'digits': its dataset_info.json says '{re.escape(UsersDigits.__module__)}' "
            r"prepared it, not 'phosjax\.data\._builders'\. A built-in name loads only",
        ):
            check("digits", data_dir=tmp_path)


def test_check_loadable_names_a_built_in_folder_without_its_info_file(tmp_path):
    folder = tmp_path / "digits" / "1.0.0"
    folder.mkdir(parents=True)
    with pytest.raises(
        ValueError,
        match=rf"data set 'digits' is incomplete or damaged in {folder} \(it has no "
        r"dataset_info\.json\); delete that folder and load it again, which generates it anew",
    ):
        check_loadable("digits", data_dir=tmp_path)


def test_a_built_in_data_set_has_no_configs(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"built-in data set 'mnist1d/big' cannot be loaded: 'mnist1d' has no "
        r"configs; load 'mnist1d'$",
    ):
        load("mnist1d/big", data_dir=tmp_path)
