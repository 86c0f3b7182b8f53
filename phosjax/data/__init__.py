"""phosjax.data: small TFDS data sets as whole arrays, random ones, and on-device batching.

Importing this package does not import `tensorflow_datasets`; `load` does, on first use.
The names, features and splits it reads, and where a bench, a morph config and
`phosjax.train.train_grid` set them: docs/data.md.

Example:
  >>> from phosjax.data import random_dataset
  >>> random_dataset("toy", (8,), 3)  # as `load` gives a TFDS one; train_grid takes either
  ArrayDataset(name='toy', x_train=float32[64, 8], y_train=int32[64], x_test=float32[32, 8],
               y_test=int32[32], num_classes=3, input_shape=(8,))
"""

from phosjax.data._batching import batch_indices, take_batch
from phosjax.data._dataset import ArrayDataset, check_batch_size
from phosjax.data._load import (
    BUILTIN_NAMES,
    MissingFeaturesError,
    NoSuchFeatureError,
    SplitInNameError,
    check_loadable,
    default_data_dir,
    load,
    prepared_names,
)
from phosjax.data._random import random_dataset
from phosjax.data._shuffle import shuffled_positions
from phosjax.data._splits import MissingSplitsError, SplitsError

__all__ = [
    "BUILTIN_NAMES",
    "ArrayDataset",
    "MissingFeaturesError",
    "MissingSplitsError",
    "NoSuchFeatureError",
    "SplitInNameError",
    "SplitsError",
    "batch_indices",
    "check_batch_size",
    "check_loadable",
    "default_data_dir",
    "load",
    "prepared_names",
    "random_dataset",
    "shuffled_positions",
    "take_batch",
]
