"""TFDS builders for the built-in offline data sets: MNIST-1D (plain, shuffled) and digits.

Importing this module imports `tensorflow_datasets` and registers the builders under the
names ``"mnist1d"``, ``"mnist1d_shuffled"`` and ``"digits"``. Everything is generated
locally (the `mnist1d` package's generator, scikit-learn's bundled digits): nothing is
downloaded. Examples are stored as ``array_record`` files, which read without TensorFlow.
"""

from __future__ import annotations

import contextlib
import functools
import random
import sys
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds

MNIST1D_LENGTH = 40
MNIST1D_SHUFFLE_SEED = 0
DIGITS_NUM_TEST = 360
DIGITS_SPLIT_SEED = 0

_MNIST1D_CITATION = """@article{greydanus2020scaling,
  title={Scaling down Deep Learning},
  author={Greydanus, Sam},
  journal={arXiv preprint arXiv:2011.14439},
  year={2020}
}"""

Example = tuple[int, dict[str, np.ndarray | int]]


def mnist1d_permutation() -> np.ndarray:
    """The fixed permutation of the 40 MNIST-1D positions used by ``"mnist1d_shuffled"``.

    Examples:
        >>> sorted(mnist1d_permutation().tolist()) == list(range(40))
        True
    """
    return np.random.default_rng(MNIST1D_SHUFFLE_SEED).permutation(MNIST1D_LENGTH)


@contextlib.contextmanager
def _global_rng_restored() -> Iterator[None]:
    """`mnist1d` seeds the global numpy and Python RNGs; put them back afterwards."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


@functools.cache
def _mnist1d_arrays() -> dict[str, np.ndarray]:
    """The standard MNIST-1D split (4000 train / 1000 test), generated offline (~5 s).

    Cached: preparing both MNIST-1D builders in one process generates the data once. Callers
    must not modify the arrays in place.
    """
    from mnist1d.data import get_dataset_args, make_dataset  # slow import (matplotlib)

    with _global_rng_restored():
        data = make_dataset(get_dataset_args())
    return {
        "x_train": data["x"].astype(np.float32),
        "y_train": data["y"],
        "x_test": data["x_test"].astype(np.float32),
        "y_test": data["y_test"],
    }


def _labelled_examples(x: np.ndarray, y: np.ndarray, feature: str) -> Iterator[Example]:
    for index, (row, label) in enumerate(zip(x, y, strict=True)):
        yield index, {feature: row, "label": int(label)}


class _ArrayBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):  # type: ignore[call-arg]
    """Shared frame: one input feature plus ``label``, a train and a test split."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}  # noqa: RUF012 (TFDS API)
    FEATURE = "x"
    SHAPE: tuple[int, ...] = ()
    NUM_CLASSES = 10
    SIZES: ClassVar[dict[str, int]] = {}  # examples per split, known before it is prepared
    DESCRIPTION = ""
    HOMEPAGE = ""
    CITATION = ""
    # No checksums file (nothing is downloaded). Looking for one needs `code_path`, which in
    # tfds 4.9.10 imports `importlib_resources`, a package it declares only for Python < 3.9.
    code_path = None

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=self.DESCRIPTION,
            features=tfds.features.FeaturesDict(
                {
                    self.FEATURE: tfds.features.Tensor(shape=self.SHAPE, dtype=np.float32),
                    "label": tfds.features.ClassLabel(num_classes=self.NUM_CLASSES),
                }
            ),
            supervised_keys=(self.FEATURE, "label"),
            homepage=self.HOMEPAGE,
            citation=self.CITATION,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        arrays = self._arrays()
        return {
            split: self._generate_examples(arrays[f"x_{split}"], arrays[f"y_{split}"])
            for split in self.SIZES
        }

    @classmethod
    def split_infos(cls) -> dict[str, tfds.core.SplitInfo]:
        """Its splits as TFDS describes them once prepared (one shard each), known before.

        Examples:
            >>> {split: info.num_examples for split, info in Digits.split_infos().items()}
            {'train': 1437, 'test': 360}
        """
        return {
            split: tfds.core.SplitInfo(name=split, shard_lengths=[size], num_bytes=0)
            for split, size in cls.SIZES.items()
        }

    def _generate_examples(self, x: np.ndarray, y: np.ndarray) -> Iterator[Example]:
        return _labelled_examples(x, y, self.FEATURE)

    # TFDS's own lines, on stdout, said "Downloading and preparing dataset Unknown size
    # (download: Unknown size, ...)" of a data set generated here, without a download.
    def _log_download_bytes(self) -> None:
        print(
            f"preparing built-in data set {self.name!r} in {self.data_dir}: generated here, "
            "offline, once (later loads read it)",
            file=sys.stderr,
        )

    def _log_download_done(self) -> None:
        print(f"prepared built-in data set {self.name!r} in {self.data_dir}", file=sys.stderr)

    def _arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError


class Mnist1d(_ArrayBuilder):
    """MNIST-1D: 10 classes of 1-D signals of length 40, 4000 train / 1000 test."""

    name = "mnist1d"
    FEATURE = "signal"
    SHAPE = (MNIST1D_LENGTH,)
    SIZES: ClassVar[dict[str, int]] = {"train": 4000, "test": 1000}
    DESCRIPTION = "MNIST-1D (Greydanus 2020), the standard 5000-example split, seed 42."
    HOMEPAGE = "https://github.com/greydanus/mnist1d"
    CITATION = _MNIST1D_CITATION

    def _arrays(self) -> dict[str, np.ndarray]:
        return _mnist1d_arrays()


class Mnist1dShuffled(Mnist1d):
    """MNIST-1D with its 40 positions permuted by one fixed permutation (train and test)."""

    name = "mnist1d_shuffled"
    DESCRIPTION = (
        "MNIST-1D with the spatial positions shuffled by a fixed permutation "
        f"(numpy default_rng({MNIST1D_SHUFFLE_SEED}).permutation(40)), the same for both splits."
    )

    def _arrays(self) -> dict[str, np.ndarray]:
        permutation = mnist1d_permutation()
        return {
            key: value[:, permutation] if key.startswith("x_") else value
            for key, value in _mnist1d_arrays().items()
        }


class Digits(_ArrayBuilder):
    """scikit-learn's 8x8 digits as (8, 8, 1) float32 images in [0, 1], 1437 train / 360 test."""

    name = "digits"
    FEATURE = "image"
    SHAPE = (8, 8, 1)
    SIZES: ClassVar[dict[str, int]] = {"train": 1797 - DIGITS_NUM_TEST, "test": DIGITS_NUM_TEST}
    DESCRIPTION = (
        "The UCI optical recognition of handwritten digits (8x8, 1797 images, as bundled with "
        f"scikit-learn), scaled to [0, 1]; a fixed split of {DIGITS_NUM_TEST} test images drawn "
        f"with numpy default_rng({DIGITS_SPLIT_SEED})."
    )
    HOMEPAGE = "https://archive.ics.uci.edu/dataset/80"

    def _arrays(self) -> dict[str, np.ndarray]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = (digits.images / 16.0).astype(np.float32)[..., None]
        order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(images))
        test, train = order[:DIGITS_NUM_TEST], order[DIGITS_NUM_TEST:]
        return {
            "x_train": images[train],
            "y_train": digits.target[train],
            "x_test": images[test],
            "y_test": digits.target[test],
        }


BUILDERS: dict[str, type[_ArrayBuilder]] = {
    builder.name: builder for builder in (Mnist1d, Mnist1dShuffled, Digits)
}
