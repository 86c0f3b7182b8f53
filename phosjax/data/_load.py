"""`load`: a TFDS data set (built-in or already prepared) as whole numpy arrays."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pathlib
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from phosjax.data._dataset import ArrayDataset

if TYPE_CHECKING:
    import tensorflow_datasets as tfds

BUILTIN_NAMES = ("digits", "mnist1d", "mnist1d_shuffled")
DATA_DIR_ENV = "PHOSJAX_DATA_DIR"
_TEST_SPLITS = ("test", "validation")


def default_data_dir() -> pathlib.Path:
    """``$PHOSJAX_DATA_DIR`` if set, else ``~/.cache/phosjax/tfds``.

    Examples:
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"PHOSJAX_DATA_DIR": "/data/tfds"}):
        ...     print(default_data_dir())
        /data/tfds
    """
    if env := os.environ.get(DATA_DIR_ENV):
        return pathlib.Path(env).expanduser()
    return pathlib.Path.home() / ".cache" / "phosjax" / "tfds"


def _resolve(data_dir: str | os.PathLike | None) -> pathlib.Path:
    return pathlib.Path(data_dir).expanduser() if data_dir is not None else default_data_dir()


def load(name: str, *, data_dir: str | os.PathLike | None = None) -> ArrayDataset:
    """Load a data set whole into numpy arrays, preparing a built-in one on first use.

    Built-in names (generated offline, prepared into `data_dir` the first time, under a file
    lock so that concurrent processes prepare it once): ``"mnist1d"`` (x ``(40,)``,
    4000/1000), ``"mnist1d_shuffled"`` (its positions permuted), ``"digits"`` (x ``(8, 8, 1)``,
    1437/360). Any other TFDS data set already prepared in `data_dir` as ``array_record``
    loads by its name (``"name"``, ``"name/config"`` or ``"name:1.0.0"``): its supervised keys
    (else ``image``/``label``) give x and y, its ``test`` (else ``validation``) split is the
    test split. Integer images (an ``Image`` feature, or any uint8 input) are scaled to float32 in
    [0, 1] (NHWC); other inputs become float32; labels int32.

    Args:
        name: the data set's name.
        data_dir: the TFDS data dir; default `default_data_dir()`.

    Returns:
        The `ArrayDataset`.

    Raises:
        ValueError: `name` is neither built in nor prepared in `data_dir` (the message lists
            both and how to prepare others), or it lacks a train/test split or a label.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     ds = load("digits", data_dir=tmp)  # the first load prepares it
        Downloading and preparing dataset ...
        Dataset digits downloaded and prepared to .../digits/1.0.0. Subsequent calls will ...
        >>> ds.x_train.shape, ds.x_test.shape, ds.num_classes
        ((1437, 8, 8, 1), (360, 8, 8, 1), 10)
    """
    import tensorflow_datasets as tfds

    data_dir = _resolve(data_dir)
    if name in BUILTIN_NAMES:
        builder = _prepare_builtin(name, data_dir)
    else:
        builder = _prepared_builder(name, data_dir)
    if builder.info.file_format != tfds.core.FileFormat.ARRAY_RECORD:
        raise ValueError(
            f"data set {name!r} in {data_dir} is stored as {builder.info.file_format.value}, which "
            "needs TensorFlow to read; prepare it with file_format='array_record', e.g. "
            f"tfds.builder({name!r}, data_dir={str(data_dir)!r}, "
            "file_format='array_record').download_and_prepare()"
        )
    return _read(name, builder)


@contextlib.contextmanager
def _file_lock(path: pathlib.Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prepare_builtin(name: str, data_dir: pathlib.Path) -> tfds.core.DatasetBuilder:
    import tensorflow_datasets as tfds

    from phosjax.data._builders import BUILDERS

    def make() -> tfds.core.DatasetBuilder:
        return BUILDERS[name](data_dir=os.fspath(data_dir), file_format="array_record")

    builder = make()
    if builder.is_prepared():  # no lock: reading needs no write access to data_dir
        return builder
    with _file_lock(data_dir / f".{name}.lock"):
        builder = make()  # another process may have prepared it while this one waited
        if not builder.is_prepared():
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(
                    try_download_gcs=False,
                    compute_stats=tfds.download.ComputeStatsMode.SKIP,
                )
            )
    return builder


def _prepared_builder(name: str, data_dir: pathlib.Path) -> tfds.core.DatasetBuilder:
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=os.fspath(data_dir))
    except tfds.core.registered.DatasetNotFoundError:
        builder = None
    if builder is None or not builder.is_prepared():
        prepared = ", ".join(prepared_names(data_dir)) or "none"
        raise ValueError(
            f"unknown data set {name!r}: it is neither built in ({', '.join(BUILTIN_NAMES)}) nor "
            f"prepared in {data_dir} ({prepared}). To load another TFDS data set, prepare it "
            f"there first: `tfds build {name} --data_dir {data_dir} --file_format array_record` or "
            f"`tfds.builder({name!r}, data_dir={str(data_dir)!r}, "
            "file_format='array_record').download_and_prepare()`"
        )
    return builder


def prepared_names(data_dir: str | os.PathLike | None = None) -> list[str]:
    """Names of the data sets prepared in `data_dir` (``name`` or ``name/config``).

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     prepared_names(tmp)
        []
    """
    root = _resolve(data_dir)
    names = set()
    for info in root.glob("*/**/dataset_info.json"):
        # <root>/name[/config]/<version>/dataset_info.json; skips TFDS's "incomplete.*" dirs.
        if re.fullmatch(r"\d+\.\d+\.\d+", info.parent.name):
            names.add("/".join(info.relative_to(root).parts[:-2]))
    return sorted(names)


def _read(name: str, builder: tfds.core.DatasetBuilder) -> ArrayDataset:
    info = builder.info
    x_key, y_key = info.supervised_keys or ("image", "label")
    features = info.features
    for key in (x_key, y_key):
        if key not in features:
            raise ValueError(
                f"data set {name!r} has no feature {key!r} (features: {sorted(features.keys())}); "
                "load needs an input and a class label (supervised_keys, or 'image' and 'label')"
            )
    test_split = next((split for split in _TEST_SPLITS if split in info.splits), None)
    if "train" not in info.splits or test_split is None:
        raise ValueError(
            f"data set {name!r} has splits {sorted(info.splits.keys())}; load needs 'train' and "
            f"one of {list(_TEST_SPLITS)}"
        )
    arrays = {}
    for split, out in (("train", "train"), (test_split, "test")):
        source = builder.as_data_source(split=split)
        examples = source.__getitems__(range(len(source)))
        arrays[f"x_{out}"] = _as_inputs([e[x_key] for e in examples], features[x_key])
        arrays[f"y_{out}"] = np.asarray([e[y_key] for e in examples], np.int32)
    label = features[y_key]
    num_classes = getattr(label, "num_classes", None) or int(arrays["y_train"].max()) + 1
    return ArrayDataset(
        name=name,
        num_classes=int(num_classes),
        input_shape=tuple(arrays["x_train"].shape[1:]),
        **arrays,
    )


def _as_inputs(values: list[Any], feature: tfds.features.FeatureConnector) -> np.ndarray:
    """Stack into float32; integer images (an `Image` feature, or any uint8) scale to [0, 1]."""
    import tensorflow_datasets as tfds

    x = np.stack(values)
    is_image = isinstance(feature, tfds.features.Image) or x.dtype == np.uint8
    if is_image and np.issubdtype(x.dtype, np.integer):
        return x.astype(np.float32) / np.float32(np.iinfo(x.dtype).max)
    return x.astype(np.float32)
