"""Toy TFDS data sets, each one way a user's data set can look, and how to prepare them.

None is registered with TFDS: `load` reads them back from their files, as a user's own.
"""

import os
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds

F = tfds.features


class _Toy(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Five train and three test examples; a subclass gives the features and each example."""

    VERSION = tfds.core.Version("1.0.0")
    code_path = None  # tfds 4.9.10 would need importlib_resources to look for checksums
    SUPERVISED_KEYS: tuple[str, ...] | None = None

    def features(self) -> F.FeaturesDict:
        raise NotImplementedError

    def example(self, index: int, split: str) -> dict:
        raise NotImplementedError

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self, features=self.features(), supervised_keys=self.SUPERVISED_KEYS
        )

    def _split_generators(self, dl_manager):
        return {
            "train": self._generate_examples(range(5), "train"),
            "test": self._generate_examples(range(5, 8), "test"),
        }

    def _generate_examples(self, indices, split):
        for i in indices:
            yield i, self.example(i, split)


def _vector(index: int) -> np.ndarray:
    return np.full(2, index, np.float32)


class ToyNamedFeatures(_Toy, skip_registration=True):
    """No supervised keys, and neither ``image`` nor ``label``: only `features=` picks them."""

    def features(self):
        return F.FeaturesDict(
            {"pixels": F.Tensor(shape=(2,), dtype=np.float32), "digit": F.ClassLabel(num_classes=3)}
        )

    def example(self, index, split):
        return {"pixels": _vector(index), "digit": index % 3}


class ToySeveralInputs(_Toy, skip_registration=True):
    """Two inputs, which its supervised keys name as a dict, as TFDS writes several."""

    SUPERVISED_KEYS = ({"a": "a", "b": "b"}, "label")

    def features(self):
        return F.FeaturesDict(
            {
                "a": F.Tensor(shape=(2,), dtype=np.float32),
                "b": F.Tensor(shape=(3,), dtype=np.float32),
                "label": F.ClassLabel(num_classes=2),
            }
        )

    def example(self, index, split):
        return {"a": _vector(index), "b": np.full(3, index, np.float32), "label": index % 2}


class ToyScalarInput(_Toy, skip_registration=True):
    """One number per example, ``features``, and an integer ``target``: its supervised keys."""

    SUPERVISED_KEYS = ("features", "target")

    def features(self):
        return F.FeaturesDict(
            {"features": F.Scalar(dtype=np.float32), "target": F.Scalar(dtype=np.int64)}
        )

    def example(self, index, split):
        return {"features": float(index), "target": index % 2}


class ToyRegression(_Toy, skip_registration=True):
    """A float target: not a class label."""

    SUPERVISED_KEYS = ("x", "y")

    def features(self):
        return F.FeaturesDict(
            {"x": F.Tensor(shape=(2,), dtype=np.float32), "y": F.Tensor(shape=(), dtype=np.float32)}
        )

    def example(self, index, split):
        return {"x": _vector(index), "y": 0.5 * index}


class ToyWeighted(_Toy, skip_registration=True):
    """(input, label, weights) supervised keys; its ClassLabel has more classes than it uses."""

    SUPERVISED_KEYS = ("x", "y", "w")

    def features(self):
        return F.FeaturesDict(
            {
                "x": F.Tensor(shape=(2,), dtype=np.float32),
                "y": F.ClassLabel(num_classes=4),
                "w": F.Tensor(shape=(), dtype=np.float32),
            }
        )

    def example(self, index, split):
        return {"x": _vector(index), "y": index % 2, "w": 1.0}


class ToyIntLabels(_Toy, skip_registration=True):
    """Integer labels, no ClassLabel; only the test split holds the label 3."""

    def features(self):
        return F.FeaturesDict(
            {
                "image": F.Tensor(shape=(2,), dtype=np.float32),
                "label": F.Tensor(shape=(), dtype=np.int64),
            }
        )

    def example(self, index, split):
        return {"image": _vector(index), "label": 3 if split == "test" else index % 3}


class ToyIdLabels(ToyIntLabels, skip_registration=True):
    """ToyIntLabels' features, with integer labels that are no class indices: ids beyond
    int32."""

    def example(self, index, split):
        return {"image": _vector(index), "label": 2**40 + index}


class ToyOptionalLabel(_Toy, skip_registration=True):
    """An optional label that one train example lacks."""

    def features(self):
        return F.FeaturesDict(
            {
                "image": F.Tensor(shape=(2,), dtype=np.float32),
                "label": F.Tensor(shape=(), dtype=np.int64, optional=True),
            }
        )

    def example(self, index, split):
        return {"image": _vector(index), "label": None if index == 2 else index % 2}


class ToyText(_Toy, skip_registration=True):
    """A text input, and its words: text of varying length."""

    SUPERVISED_KEYS = ("text", "label")

    def features(self):
        return F.FeaturesDict(
            {"text": F.Text(), "words": F.Sequence(F.Text()), "label": F.ClassLabel(num_classes=2)}
        )

    def example(self, index, split):
        return {"text": f"example {index}", "words": ["example", str(index)], "label": index % 2}


class ToyVarShape(_Toy, skip_registration=True):
    """An input whose length varies from example to example."""

    def features(self):
        return F.FeaturesDict(
            {
                "image": F.Tensor(shape=(None,), dtype=np.float32),
                "label": F.ClassLabel(num_classes=2),
            }
        )

    def example(self, index, split):
        return {"image": np.zeros(1 + index % 3, np.float32), "label": index % 2}


class ToyMultiLabel(_Toy, skip_registration=True):
    """Two class labels per example."""

    def features(self):
        return F.FeaturesDict(
            {
                "image": F.Tensor(shape=(2,), dtype=np.float32),
                "label": F.Sequence(F.ClassLabel(num_classes=3), length=2),
            }
        )

    def example(self, index, split):
        return {"image": _vector(index), "label": [index % 3, (index + 1) % 3]}


class ToyUint8Tensor(_Toy, skip_registration=True):
    """uint8 inputs in a plain Tensor (not an Image feature): scaled like images."""

    def features(self):
        return F.FeaturesDict(
            {
                "image": F.Tensor(shape=(2,), dtype=np.uint8),
                "label": F.ClassLabel(num_classes=2),
            }
        )

    def example(self, index, split):
        return {"image": np.full(2, 30 * index, np.uint8), "label": index % 2}


class ToyPhasors(_Toy, skip_registration=True):
    """A complex input (stored as bytes: TFDS serializes no complex tensor otherwise)."""

    def features(self):
        return F.FeaturesDict(
            {
                "image": F.Tensor(shape=(2,), dtype=np.complex64, encoding="bytes"),
                "label": F.ClassLabel(num_classes=2),
            }
        )

    def example(self, index, split):
        return {"image": np.full(2, index + 1j, np.complex64), "label": index % 2}


class ToyValidationAndTest(_Toy, skip_registration=True):
    """A validation split (label 0) besides the test split (label 1)."""

    def features(self):
        return F.FeaturesDict(
            {
                "image": F.Tensor(shape=(2,), dtype=np.float32),
                "label": F.ClassLabel(num_classes=2),
            }
        )

    def _split_generators(self, dl_manager):
        return {
            **super()._split_generators(dl_manager),
            "validation": self._generate_examples(range(8, 10), "validation"),
        }

    def example(self, index, split):
        return {"image": _vector(index), "label": int(split == "test")}


class ToyTrainOnly(_Toy, skip_registration=True):
    """A train split alone, its example i holding (i, i) and the label i % 2."""

    def features(self):
        return F.FeaturesDict(
            {
                "image": F.Tensor(shape=(2,), dtype=np.float32),
                "label": F.ClassLabel(num_classes=2),
            }
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(range(5), "train")}

    def example(self, index, split):
        return {"image": _vector(index), "label": index % 2}


class ToyUnlabelledTest(ToyValidationAndTest, skip_registration=True):
    """A validation split and a test split held without labels (-1), as imagenet2012's."""

    def example(self, index, split):
        return {"image": _vector(index), "label": -1 if split == "test" else index % 2}


class ToyConfigs(_Toy, skip_registration=True):
    """Two configs, ``small`` the default; the tests prepare ``small`` only."""

    BUILDER_CONFIGS: ClassVar[list[tfds.core.BuilderConfig]] = [
        tfds.core.BuilderConfig(name="small"),
        tfds.core.BuilderConfig(name="big"),
    ]

    def features(self):
        return F.FeaturesDict(
            {
                "image": F.Tensor(shape=(2,), dtype=np.float32),
                "label": F.ClassLabel(num_classes=2),
            }
        )

    def example(self, index, split):
        return {"image": _vector(index), "label": index % 2}


def prepare(
    builder: type[_Toy],
    data_dir: str | os.PathLike,
    file_format: str = "array_record",
    **kwargs: object,
) -> None:
    """Prepares `builder` in `data_dir` (as array_record unless told), offline."""
    builder(data_dir=os.fspath(data_dir), file_format=file_format, **kwargs).download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            try_download_gcs=False, compute_stats=tfds.download.ComputeStatsMode.SKIP
        )
    )
