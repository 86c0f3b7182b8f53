"""`ArrayDataset`: a small supervised data set held whole in memory; `check_batch_size`;
`read_only` and `unchangeable`, how it holds its arrays."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from phosjax._callables import cut_repr
from phosjax.data._checks import first_outside, is_real, shape_sizes, static_int_at_least

Array = np.ndarray | jax.Array


@dataclasses.dataclass(frozen=True, eq=False)
class ArrayDataset:
    """A supervised data set with a train and a test split, held as whole arrays.

    `load` returns numpy arrays. The class is a pytree whose leaves are the four arrays
    (`name`, `num_classes` and `input_shape` are static), so `jax.device_put(dataset)` puts
    every split on a device (or sharding) at once and the result can enter `jax.jit`.
    Constructing one checks that the four are arrays, their shapes, that inputs are real
    numbers (not complex, strings or objects) and that concrete labels lie in
    ``[0, num_classes)``; tree ops (``jax.tree.map``, ``jax.vmap``, ...) rebuild it
    without checks, whatever their leaves.

    Its numpy arrays are its own and read-only (`read_only`: an array that could be
    written, or that views one that could, is copied, so editing the arrays given leaves
    it as it was), as the engine keeps a data set placed on the devices between calls:
    ``ds.x_train[0] = 1`` raises "assignment destination is read-only". To change one, make
    a new one, e.g. ``dataclasses.replace(ds, x_train=ds.x_train * 2)``.

    Attributes:
        name: the data set's name, e.g. ``"mnist1d"``.
        x_train: inputs, shape ``(num_train, *input_shape)``, of a float, integer or bool
          dtype that training casts to float32 as they are: `load` scales integer images
          to [0, 1], an ``ArrayDataset`` of your own is not scaled (divide uint8 by 255).
        y_train: labels in ``[0, num_classes)``, of an integer dtype, shape
          ``(num_train,)``.
        x_test: inputs, shape ``(num_test, *input_shape)``, as ``x_train``: an integer
          dtype where that is one, a float dtype where that is one (not uint8 beside float32).
        y_test: labels in ``[0, num_classes)``, shape ``(num_test,)``, as ``y_train``.
        num_classes: number of classes.
        input_shape: the shape of ONE example, e.g. ``(40,)`` or ``(8, 8, 1)`` (a list, a range,
          a 1-D numpy array or an int, one axis, is read as that tuple, as
          `phosjax.models.ModelConfig` reads it).

    Examples:
        >>> import numpy as np
        >>> ds = ArrayDataset("toy", np.zeros((4, 3), np.float32), np.arange(4, dtype=np.int32),
        ...                   np.zeros((2, 3), np.float32), np.zeros(2, np.int32), 4, (3,))
        >>> ds.num_train, ds.num_test
        (4, 2)
        >>> ds  # each array's dtype and shape, not its numbers
        ArrayDataset(name='toy', x_train=float32[4, 3], y_train=int32[4], x_test=float32[2, 3],
                     y_test=int32[2], num_classes=4, input_shape=(3,))
        >>> jax.device_put(ds).x_train.shape
        (4, 3)
        >>> pixels = np.full((4, 3), 255, np.uint8)  # kept as given: scale it yourself
        >>> ArrayDataset("toy", pixels, ds.y_train, pixels[:2], ds.y_test, 4, (3,)).x_train.max()
        np.uint8(255)
        >>> ArrayDataset("toy", pixels, ds.y_train, ds.x_test, ds.y_test, 4, (3,))
        Traceback (most recent call last):
        TypeError: ArrayDataset 'toy': x_train has dtype uint8 and x_test float32, an integer
        and a float dtype; training reads both as float32 as they are, so one split scaled
        (uint8 pixels / 255) and the other not would be read on scales 255 times apart: give
        both splits one kind, e.g. both x.astype(np.float32) / 255
        >>> ds.x_train[0] = 1
        Traceback (most recent call last):
        ValueError: assignment destination is read-only
        >>> dataclasses.replace(ds, x_train=ds.x_train + 1).x_train[0].tolist()
        [1.0, 1.0, 1.0]
    """

    name: str
    x_train: Array
    y_train: Array
    x_test: Array
    y_test: Array
    num_classes: int
    input_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        def whole(n: Any) -> bool:
            return isinstance(n, int | np.integer) and not isinstance(n, bool)

        if not isinstance(self.name, str) or not self.name:
            raise TypeError(
                f"ArrayDataset: name must be the data set's name, a non-empty str such as "
                f"'mnist1d' (what results and errors call it), got {cut_repr(self.name)}"
            )
        if not whole(self.num_classes) or self.num_classes < 1:
            raise ValueError(
                f"ArrayDataset {self.name!r}: num_classes must be a whole number >= 1, "
                f"got {cut_repr(self.num_classes)}"
            )
        shape = shape_sizes(self.input_shape)
        if not isinstance(shape, tuple) or not all(whole(n) and n >= 0 for n in shape):
            raise ValueError(
                f"ArrayDataset {self.name!r}: input_shape must be the shape of one example, "
                f"a tuple of sizes such as (40,) or (8, 8, 1), got {cut_repr(self.input_shape)}"
            )
        object.__setattr__(self, "input_shape", tuple(int(n) for n in shape))
        object.__setattr__(self, "num_classes", int(self.num_classes))
        for field in _DATA_FIELDS:
            value = getattr(self, field)
            if not isinstance(value, np.ndarray | jax.Array):
                raise TypeError(
                    f"ArrayDataset {self.name!r}: {field} must be an array (numpy or jax), got "
                    f"a {type(value).__name__}; convert it, e.g. np.asarray({field})"
                )
            object.__setattr__(self, field, read_only(value))
        for split, x, y in (
            ("train", self.x_train, self.y_train),
            ("test", self.x_test, self.y_test),
        ):
            if x.ndim == 0 or tuple(x.shape[1:]) != tuple(self.input_shape):
                raise ValueError(
                    f"ArrayDataset {self.name!r}: x_{split} has shape {tuple(x.shape)}, expected "
                    f"(num_examples, *input_shape) with input_shape={tuple(self.input_shape)}"
                )
            if not is_real(x.dtype):
                raise TypeError(
                    f"ArrayDataset {self.name!r}: x_{split} has dtype {x.dtype}; inputs are "
                    "real numbers, a float, integer or bool dtype (training reads them as "
                    "float32, e.g. x.astype(np.float32))"
                )
            if y.shape != x.shape[:1]:
                raise ValueError(
                    f"ArrayDataset {self.name!r}: y_{split} has shape {tuple(y.shape)}, expected "
                    f"({x.shape[0]},), one label per row of x_{split}"
                )
            if not np.issubdtype(y.dtype, np.integer):
                raise TypeError(
                    f"ArrayDataset {self.name!r}: y_{split} has dtype {y.dtype}; labels are "
                    f"class indices, an integer dtype (e.g. y.astype(np.int32))"
                )
            bad = first_outside(y, self.num_classes)
            if bad is not None:
                raise ValueError(
                    f"ArrayDataset {self.name!r}: y_{split} holds the label {bad}, outside "
                    f"[0, num_classes={self.num_classes}); labels are class indices from 0 "
                    f"to {self.num_classes - 1}"
                )
        kinds = {
            kind
            for x in (self.x_train, self.x_test)
            for kind in (np.integer, np.floating)
            if jax.numpy.issubdtype(x.dtype, kind)
        }
        if len(kinds) == 2:  # bool beside either, or two floats, read alike
            raise TypeError(
                f"ArrayDataset {self.name!r}: x_train has dtype {self.x_train.dtype} and x_test "
                f"{self.x_test.dtype}, an integer and a float dtype; training reads both as "
                "float32 as they are, so one split scaled (uint8 pixels / 255) and the other "
                "not would be read on scales 255 times apart: give both splits one kind, "
                "e.g. both x.astype(np.float32) / 255"
            )

    def __repr__(self) -> str:  # the dataclass's printed every number of every split
        def described(value: Any) -> str:
            if hasattr(value, "dtype") and hasattr(value, "shape"):
                return f"{value.dtype}{list(value.shape)}"
            return cut_repr(value)  # a tree op's leaf

        arrays = ", ".join(f"{field}={described(getattr(self, field))}" for field in _DATA_FIELDS)
        return (
            f"ArrayDataset(name={self.name!r}, {arrays}, num_classes={self.num_classes!r}, "
            f"input_shape={self.input_shape!r})"
        )

    def __copy__(self) -> ArrayDataset:
        """A shallow copy, holding its arrays as they are: `__setstate__` would flag
        read-only the arrays it shares with this one (writable after a tree op)."""
        new = object.__new__(ArrayDataset)
        new.__dict__.update(self.__dict__)
        return new

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickled or deep-copied: its new numpy arrays are made read-only, as its own."""
        for field, value in state.items():
            object.__setattr__(self, field, read_only(value, fresh=True))

    @property
    def num_train(self) -> int:
        """Number of training examples."""
        return int(self.x_train.shape[0])

    @property
    def num_test(self) -> int:
        """Number of test examples."""
        return int(self.x_test.shape[0])


def unchangeable(a: Any) -> bool:
    """Whether ``a``'s numbers cannot be written in place: a jax array, or a numpy array
    that is read-only, as is every array it views, down to memory that is read-only or
    its own.

    Examples:
      >>> x = np.zeros(3)
      >>> unchangeable(jax.numpy.zeros(3)), unchangeable(x), unchangeable(read_only(x))
      (True, False, True)
      >>> view = x[:2]
      >>> view.flags.writeable = False
      >>> unchangeable(view)  # x, which it views, can be written
      False
    """
    if isinstance(a, jax.Array):
        return True
    while isinstance(a, np.ndarray):
        if a.flags.writeable:
            return False
        a = a.base
    try:
        return a is None or memoryview(a).readonly
    except TypeError:  # no buffer: what it is is not known
        return False


def read_only(a: Any, *, fresh: bool = False) -> Any:
    """``a`` where it is no numpy array; else ``a`` read-only where it is `unchangeable`
    or ``fresh`` (no one else holds it: only flagged), else a read-only copy of it.

    Examples:
      >>> x = np.zeros(3)
      >>> held = read_only(x)
      >>> held is x, held.flags.writeable, x.flags.writeable
      (False, False, True)
      >>> read_only(held) is held, read_only(x, fresh=True) is x, x.flags.writeable
      (True, True, False)
    """
    if not isinstance(a, np.ndarray):
        return a
    if not (fresh or unchangeable(a)):
        a = np.array(a)
    a.setflags(write=False)
    return a


_DATA_FIELDS = ("x_train", "y_train", "x_test", "y_test")
_META_FIELDS = ("name", "num_classes", "input_shape")


def _flatten_with_keys(
    ds: ArrayDataset,
) -> tuple[list[tuple[jax.tree_util.GetAttrKey, Any]], tuple[Any, ...]]:
    children = [(jax.tree_util.GetAttrKey(f), getattr(ds, f)) for f in _DATA_FIELDS]
    return children, tuple(getattr(ds, f) for f in _META_FIELDS)


def _unflatten(meta: tuple[Any, ...], leaves: Any) -> ArrayDataset:
    """Rebuilds without `__post_init__`'s checks: tree ops give leaves of any kind
    (``jax.tree.map(jnp.mean, ds)``: scalars; shardings; ``None``; vmapped tracers)."""
    ds = object.__new__(ArrayDataset)
    for field, value in zip(_META_FIELDS + _DATA_FIELDS, (*meta, *leaves), strict=True):
        object.__setattr__(ds, field, value)
    return ds


jax.tree_util.register_pytree_with_keys(ArrayDataset, _flatten_with_keys, _unflatten)


def check_batch_size(field: str, batch_size: int, data: ArrayDataset) -> None:
    """Raises unless ``data``'s train split holds ``batch_size`` examples, as every
    training step draws a batch of that many from it.

    Args:
      field: what set ``batch_size``, named in the error (``"grid.batch_size"``).
      batch_size: the examples per step.
      data: the data set trained on.

    Raises:
      ValueError: naming ``field``, its value, the data set and the largest batch size
        that fits (or that the train split is empty); or ``batch_size`` is below 1.
      TypeError: ``batch_size`` is no int (naming ``field``).

    Examples:
      >>> x, y = np.zeros((8, 2), np.float32), np.zeros(8, np.int32)
      >>> check_batch_size("HParams.batch_size", 16, ArrayDataset("toy", x, y, x, y, 2, (2,)))
      Traceback (most recent call last):
      ValueError: HParams.batch_size=16 is larger than the train split of data set 'toy',
      which has 8 examples; set HParams.batch_size to at most 8
    """
    static_int_at_least(field, batch_size)
    num_train = data.num_train
    if batch_size <= num_train:
        return
    if not num_train:
        raise ValueError(
            f"data set {data.name!r} has an empty train split: {field}={batch_size} needs "
            "at least that many train examples"
        )
    raise ValueError(
        f"{field}={batch_size} is larger than the train split of data set {data.name!r}, "
        f"which has {num_train} examples; set {field} to at most {num_train}"
    )
