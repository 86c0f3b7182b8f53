"""`random_dataset`: an `ArrayDataset` of random numbers, for examples, tests and timing."""

from __future__ import annotations

import numpy as np

from phosjax._callables import cut_repr
from phosjax.data._checks import shape_sizes, static_int_at_least
from phosjax.data._dataset import ArrayDataset, read_only


def random_dataset(
    name: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    num_train: int = 64,
    num_test: int = 32,
    seed: int = 0,
) -> ArrayDataset:
    """A data set of random numbers: gaussian float32 inputs, uniform int32 labels.

    The labels do not depend on the inputs: there is nothing to learn beyond the class
    frequencies. It stands in for a real data set where only shapes matter (examples,
    tests, timing). With ``rng = np.random.default_rng(seed)`` and
    ``n = num_train + num_test``, the inputs are ``rng.normal(size=(n, *input_shape))``
    and then the labels ``rng.integers(0, num_classes, n)``; the train split is the
    first ``num_train`` of them, the test split the rest.

    Args:
      name: the data set's name, e.g. ``"toy"`` (what a `phosjax.train.Cell` names).
      input_shape: the shape of ONE example, e.g. ``(8,)`` or ``(8, 8, 1)`` (a list, a range,
        a 1-D numpy array or an int, one axis, too, as `phosjax.models.ModelConfig` reads it).
      num_classes: number of classes (labels lie in ``[0, num_classes)``).
      num_train: train examples (at least 1).
      num_test: test examples (at least 1).
      seed: the numpy seed (an int >= 0); the same seed gives the same data set.

    Raises:
      TypeError: naming the argument: ``name`` is no str (or empty), ``input_shape`` is
        no shape (read as Args says), or a count or the seed is no int.
      ValueError: naming the argument: a size in ``input_shape`` is below 0,
        ``num_classes``, ``num_train`` or ``num_test`` is below 1, or ``seed`` below 0.

    Examples:
      >>> data = random_dataset("toy", (8,), 3)
      >>> data.x_train.shape, data.y_test.shape, data.x_train.dtype, data.y_train.dtype
      ((64, 8), (32,), dtype('float32'), dtype('int32'))
      >>> data.y_train[:8].tolist()
      [2, 1, 1, 1, 0, 0, 1, 2]
      >>> random_dataset("toy", (8,), 3, num_train=0)
      Traceback (most recent call last):
      ValueError: random_dataset: num_train must be a positive int, got 0
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"random_dataset: name must be a non-empty str, got {cut_repr(name)}")
    listed = shape_sizes(input_shape)
    if not isinstance(listed, tuple):
        raise TypeError(
            "random_dataset: input_shape must be the shape of one example, a tuple of ints "
            f"such as (8,) or (8, 8, 1), got {cut_repr(input_shape)}"
        )
    where = "random_dataset: "
    shape = tuple(
        static_int_at_least(f"{where}input_shape[{i}]", n, least=0) for i, n in enumerate(listed)
    )
    num_classes = static_int_at_least(f"{where}num_classes", num_classes)
    num_train = static_int_at_least(f"{where}num_train", num_train)
    n = num_train + static_int_at_least(f"{where}num_test", num_test)
    rng = np.random.default_rng(static_int_at_least(f"{where}seed", seed, least=0))
    # its own arrays, made read-only: the data set copies none of them (`read_only`)
    x = read_only(rng.normal(size=(n, *shape)).astype(np.float32), fresh=True)
    y = read_only(rng.integers(0, num_classes, n).astype(np.int32), fresh=True)
    return ArrayDataset(
        name, x[:num_train], y[:num_train], x[num_train:], y[num_train:], num_classes, shape
    )
