"""`load`: a TFDS data set (built-in or already prepared) as whole numpy arrays."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from phosjax._callables import cut_repr
from phosjax._nearest import did_you_mean, nearest
from phosjax._pickling import PicklableError
from phosjax.data._checks import first_outside, is_real
from phosjax.data._dataset import ArrayDataset, read_only
from phosjax.data._splits import HELD_OUT, checked_splits, chosen_splits, read_spans

if TYPE_CHECKING:
    import tensorflow_datasets as tfds

BUILTIN_NAMES = ("digits", "mnist1d", "mnist1d_shuffled")
DATA_DIR_ENV = "PHOSJAX_DATA_DIR"
TFDS_DATA_DIR_ENV = "TFDS_DATA_DIR"
_VERSION = re.compile(r"\d+\.\d+\.\d+")
_NO_INFO = "it has no dataset_info.json"
_METADATA = {"dataset_info.json": ("version",), "features.json": ("pythonClassName", "type")}
"""The metadata files of a prepared folder, each a JSON object holding one of these keys as
every TFDS writes it (a features.json of ``type`` and ``content``: an older TFDS's, still read)."""


def default_data_dir() -> pathlib.Path:
    """``$PHOSJAX_DATA_DIR`` if set, else ``~/.cache/phosjax/tfds``: where built-in data sets
    are prepared, and the first place `load` looks for others.

    Examples:
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"PHOSJAX_DATA_DIR": "/data/tfds"}):
        ...     print(default_data_dir())
        /data/tfds
    """
    if env := os.environ.get(DATA_DIR_ENV):
        return pathlib.Path(env).expanduser()
    return pathlib.Path.home() / ".cache" / "phosjax" / "tfds"


def absolute_data_dir(data_dir: str | None) -> str | None:
    """``data_dir`` with a ``~`` that begins it expanded to the home folder, as
    `phosjax.data.load` expands it, and taken from the current folder where it is
    relative, so that a bench or a morph run records where its data sets are wherever it
    is continued from.

    Examples:
      >>> absolute_data_dir("data") == os.path.join(os.getcwd(), "data")
      True
      >>> absolute_data_dir("/d/"), absolute_data_dir(None)
      ('/d/', None)
      >>> absolute_data_dir("~/tfds") == os.path.join(os.path.expanduser("~"), "tfds")
      True
    """
    if data_dir is None:
        return None
    expanded = os.path.expanduser(data_dir)
    return expanded if os.path.isabs(expanded) else os.path.abspath(expanded)


def _data_dirs(data_dir: str | os.PathLike | None) -> list[pathlib.Path]:
    """The data dirs `load` looks in, in order: `data_dir` alone if given, else
    ``$PHOSJAX_DATA_DIR`` alone if set, else ``~/.cache/phosjax/tfds`` then TFDS's own data
    dir (``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``) where that is a folder.

    Examples:
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"PHOSJAX_DATA_DIR": "/data/tfds"}):
        ...     [str(path) for path in _data_dirs(None)], [str(p) for p in _data_dirs("/d")]
        (['/data/tfds'], ['/d'])
    """
    first = _resolve(data_dir)
    if data_dir is not None or os.environ.get(DATA_DIR_ENV):
        return [first]
    env = os.environ.get(TFDS_DATA_DIR_ENV)
    tfds_dir = pathlib.Path(env or "~/tensorflow_datasets").expanduser()
    return [first, tfds_dir] if tfds_dir.is_dir() and tfds_dir != first else [first]


def _resolve(data_dir: str | os.PathLike | None) -> pathlib.Path:
    """`data_dir` (else `default_data_dir()`) as a path; raises when it is not a path, is
    empty, or when it, or the nearest of its parents that exists, is not a folder (a file,
    or a link to nothing).

    Examples:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile() as file:
        ...     _resolve(file.name)
        Traceback (most recent call last):
        ValueError: data_dir '/tmp/...' is not a folder: '/tmp/...' is a file; ...
    """
    if data_dir is not None and not isinstance(data_dir, str | os.PathLike):
        raise TypeError(
            f"data_dir must be a folder's path (a str or os.PathLike), e.g. "
            f"'~/tensorflow_datasets', got {cut_repr(data_dir)} (of type {type(data_dir).__name__})"
        )
    if data_dir is not None and not os.fspath(data_dir):  # pathlib reads "" as the working dir
        raise ValueError(
            "data_dir is empty; give a folder's path, e.g. '~/tensorflow_datasets', or None for "
            f"the default data dir ({default_data_dir()})"
        )
    path = pathlib.Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    existing = next((folder for folder in (path, *path.parents) if os.path.lexists(folder)), None)
    what = "data_dir" if data_dir is not None else f"the default data dir (${DATA_DIR_ENV})"
    if existing is not None and not existing.exists():  # a link to nothing: lexists alone
        raise ValueError(
            f"{what} {str(path)!r} is not a folder: {str(existing)!r} is a link to "
            f"{os.readlink(existing)!r}, which does not exist (a drive not mounted, a folder "
            "moved or deleted); make or mount that folder, or give a data dir elsewhere"
        )
    if existing is not None and not existing.is_dir():
        raise ValueError(
            f"{what} {str(path)!r} is not a folder: {str(existing)!r} is a file; TFDS data sets "
            "live in a folder, so give the path of one, new (it is made) or existing"
        )
    return path


def load(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    features: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
) -> ArrayDataset:
    """Load a data set whole into numpy arrays, preparing a built-in one on first use.

    Built-in names (generated offline, prepared into `data_dir` the first time, under a file
    lock so that concurrent processes prepare it once): ``"mnist1d"`` (x ``(40,)``,
    4000/1000), ``"mnist1d_shuffled"`` (its positions permuted), ``"digits"`` (x ``(8, 8, 1)``,
    1437/360). Any other TFDS data set already prepared in `data_dir` as ``array_record`` or
    ``parquet`` (the formats TFDS reads without TensorFlow) loads by its TFDS name
    (``"name"``, ``"name/config"``, ``"name:1.0.0"``; ``"Name"`` is refused): the
    two `features` named, else its supervised keys (a third, weights key is ignored), else
    ``image`` and ``label``, give x and y; its ``train`` split is the train split and its
    ``test`` (else ``validation``) split the test split, unless `splits` names others. x
    must have a fixed shape and a real dtype (float, integer or bool, not complex); y must
    be a class label: a ``ClassLabel`` or an integer scalar. Integer images (an ``Image``
    feature, or any uint8 input) are scaled to float32 in [0, 1] (NHWC); other inputs become
    float32, a scalar one of shape ``(1,)``; labels int32. The number of classes is the
    ``ClassLabel``'s, else one more than the largest train or test label.

    Where it looks: in `data_dir` alone if given; else in ``$PHOSJAX_DATA_DIR`` alone if
    set; else in ``~/.cache/phosjax/tfds`` (where built-in ones are prepared), then in
    TFDS's own data dir (``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``), so that data
    sets TFDS prepared load by name, without a copy; the first dir that holds the name wins (a
    damaged copy there raises, naming its folder: it is not passed over for a later one).

    Args:
        name: the data set's name, without a split (``"digits[:10%]"`` is refused: give
            ``splits``).
        data_dir: the TFDS data dir; default: as above.
        features: the names of the input and the label feature, e.g. ``("image", "label")``
            for a data set without supervised keys, or to pick others than those.
        splits: the split to train on and the split to test on, as TFDS writes splits: a
            name (``("train", "val")``), a slice (``("train[:90%]", "train[90%:]")`` holds
            out the last tenth of ``train``, the same examples on every load) or a sum
            (``"train+val"``). No example may be read twice: by both, or
            by two parts of a sum.

    Returns:
        The `ArrayDataset`.

    Raises:
        ValueError: the data set is not one `load` can read (as `check_loadable` explains,
            before any example is read), its prepared folder is incomplete or damaged (the
            message names the folder and how to make it anew), `splits` names a split it
            lacks, no example or an example twice (the message lists its splits and their
            sizes), the folder of a built-in name
            holds a data set phosjax did not prepare (a user's own ``digits``), or its labels
            fall outside ``[0, num_classes)``.
        PermissionError: a built-in data set is to be prepared in a ``data_dir`` that
            cannot be made or written (read-only, say).

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     ds = load("digits", data_dir=tmp)  # the first load prepares it
        ...     held_out = load("digits", data_dir=tmp, splits=("train[:80%]", "train[80%:]"))
        >>> ds.x_train.shape, ds.x_test.shape, ds.num_classes
        ((1437, 8, 8, 1), (360, 8, 8, 1), 10)
        >>> held_out.num_train, held_out.num_test
        (1150, 287)
    """
    keys, pair = _features(features), checked_splits(splits)
    builder, found_in = _builder(name, _data_dirs(data_dir), keys, pair)
    if not _is_prepared(builder):  # a built-in data set, on first use
        builder = _prepare_builtin(name, found_in)
    return _read(name, builder, found_in, keys, pair)


def check_loadable(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    features: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
) -> None:
    """Raises what `load` would raise for `name` before reading it; prepares and reads nothing.

    A bench checks all its names this way before it loads any.

    Raises:
        ValueError: `name` is malformed, names a split or spells its data set otherwise than
            TFDS names it (``"Digits"``: the message names the right spelling); it is neither
            built in nor prepared in `data_dir` (or prepared at another version or config: the
            message lists the prepared ones); its prepared folder's metadata is missing or
            damaged (the message names the folder and how to make it anew); it is stored in
            neither of the formats TFDS reads without TensorFlow (``array_record``,
            ``parquet``); it lacks a train or test split (or one `splits` names: the message
            lists its splits), `splits` read no example or one twice (a built-in's split
            sizes are known before it is prepared), an input or a label (or one of the
            `features` named: the message lists its features and the nearest); or its input or
            label is of a kind `load` does not support (each message names the data set, the
            feature, its kind, dtype and shape, and what is supported).

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     check_loadable("digits:1.0.0", data_dir=tmp)  # built in: nothing prepared
        ...     check_loadable("no_such_set", data_dir=tmp)
        Traceback (most recent call last):
        ValueError: unknown data set 'no_such_set': it is neither built in ...
    """
    _builder(name, _data_dirs(data_dir), _features(features), checked_splits(splits))


def declared_shapes(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    features: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
) -> tuple[tuple[int, ...], int | None]:
    """`check_loadable`, then the input shape and the number of classes `load` gives
    `name`, from its metadata alone; the number is None where the label is no
    ``ClassLabel`` (`load` counts the classes in the data).

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     declared_shapes("mnist1d", data_dir=tmp)  # built in: nothing prepared
        ((40,), 10)
    """
    pair = _features(features)
    builder, _ = _builder(name, _data_dirs(data_dir), pair, checked_splits(splits))
    x_key, y_key = _keys(name, builder.info, pair)
    known = builder.info.features
    classes = getattr(known[y_key], "num_classes", None)
    return _input_shape(known[x_key]), int(classes) if classes else None


def is_feature_pair(value: Any) -> bool:
    """Whether ``value`` names two different features, (input, label): a sequence (not a
    string) of two different strings.

    Examples:
      >>> is_feature_pair(["image", "label"]), is_feature_pair("xy"), is_feature_pair(["x", "x"])
      (True, False, False)
    """
    return (
        not isinstance(value, str)
        and isinstance(value, Sequence)
        and len(value) == 2
        and all(isinstance(key, str) for key in value)
        and value[0] != value[1]
    )


def _features(features: Sequence[str] | None) -> tuple[str, str] | None:
    """`features` checked: None, or the names of two different features (input, label)."""
    if features is None:
        return None
    if not is_feature_pair(features):
        raise ValueError(
            "features must name the input feature and the label feature, two different "
            f"names, e.g. ('image', 'label'); got {cut_repr(features)}"
        )
    return features[0], features[1]


@contextlib.contextmanager
def _file_lock(path: pathlib.Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _builder(
    name: str,
    data_dirs: list[pathlib.Path],
    features: tuple[str, str] | None = None,
    splits: tuple[str, str] | None = None,
) -> tuple[tfds.core.DatasetBuilder, pathlib.Path]:
    """The builder `load` reads `name` from, its metadata, `features` and `splits` checked,
    and the data dir it is in (a built-in one: the first of `data_dirs`); prepares nothing."""
    builder, data_dir = _located(name, data_dirs)
    _checked_layout(name, builder, features, splits)
    return builder, data_dir


def _checked_layout(
    name: str,
    builder: tfds.core.DatasetBuilder,
    features: tuple[str, str] | None,
    splits: tuple[str, str] | None,
) -> tuple[str, str, tuple[str, str]]:
    """`_layout` of `name`'s `builder`, a built-in's splits checked before it is prepared
    (its sizes are known)."""
    if _parse(name)[0] in BUILTIN_NAMES:
        from phosjax.data._builders import BUILDERS

        keys = _keys(name, builder.info, features)
        return *keys, chosen_splits(name, splits, BUILDERS[_parse(name)[0]].split_infos())
    return _layout(name, builder.info, features, splits)


def resolved_layout(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    features: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
) -> tuple[str, str, tuple[str, str]]:
    """The input feature, label feature and (train, test) split specs `load` reads from
    `name` given `features` and `splits` (None: its defaults); prepares nothing.

    Raises:
        ValueError: as `check_loadable`.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     resolved_layout("digits", data_dir=tmp)  # built in: nothing prepared
        ('image', 'label', ('train', 'test'))
    """
    builder, _ = _located(name, _data_dirs(data_dir))
    return _checked_layout(name, builder, _features(features), checked_splits(splits))


def _located(
    name: str, data_dirs: list[pathlib.Path]
) -> tuple[tfds.core.DatasetBuilder, pathlib.Path]:
    """`name`'s builder and the data dir it is in, its features and splits unchecked."""
    dataset, kwargs = _parse(name, data_dirs)
    if dataset in BUILTIN_NAMES:
        return _builtin_builder(name, dataset, kwargs, data_dirs[0]), data_dirs[0]
    return _prepared_builder(name, dataset, data_dirs)


def resolved_name(name: str, *, data_dir: str | os.PathLike | None = None) -> str:
    """The full TFDS name, ``name[/config]:version``, of the data set `load` finds for
    `name`: which config and version a name given without them stands for.

    Raises:
        ValueError: `name` is one `load` cannot find, as `check_loadable` says.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     resolved_name("digits", data_dir=tmp)  # built in: nothing prepared
        'digits:1.0.0'
    """
    builder, _ = _located(name, _data_dirs(data_dir))
    config = f"/{builder.builder_config.name}" if builder.builder_config else ""
    return f"{builder.name}{config}:{builder.version}"


def _parse(name: str, data_dirs: Sequence[pathlib.Path] = ()) -> tuple[str, dict[str, Any]]:
    """`name`'s TFDS data set name (snake_case) and builder arguments (config, version);
    a name refused is respelled as a built-in data set or one prepared in `data_dirs`."""
    import tensorflow_datasets as tfds

    if not isinstance(name, str):
        raise TypeError(
            f"name must be a data set's name as a str, e.g. 'mnist1d' or 'digits:1.0.0', got "
            f"{cut_repr(name)} (of type {type(name).__name__})"
        )
    try:
        dataset, kwargs = tfds.core.naming.parse_builder_name_kwargs(name)
    except ValueError:
        dataset = None
    if dataset is None or dataset.namespace:  # "ns:name" would look the name up in a registry
        _refuse_a_split(name)
        namespace = f", without a namespace ({dataset.namespace!r} here)" if dataset else ""
        raise ValueError(
            f"data set name {name!r} is malformed; expected a TFDS name: 'name', 'name/config', "
            f"'name:1.2.3' or 'name/config:1.2.3'{namespace}{_respelled(name, data_dirs)}"
        )
    for folder in (dataset.name, kwargs.get("config") or ""):  # <data_dir>/<name>/<config>
        if len(folder.encode()) > _NAME_MAX:  # no folder holds it: stat raises, not False
            raise ValueError(
                f"data set name {cut_repr(name)} is too long: a data set is prepared in a "
                f"folder named after it, and {cut_repr(folder, 20)} has {len(folder.encode())} "
                f"bytes, more than a folder's name may have ({_NAME_MAX})"
            )
    _refuse_another_spelling(name, dataset.name, data_dirs)
    return dataset.name, kwargs


_NAME_MAX = 255
"""The most bytes a folder's name may have (Linux's, macOS's and Windows' file systems)."""


def _respelled(name: str, data_dirs: Sequence[pathlib.Path] = ()) -> str:
    """``. Did you mean ...?`` with `name` without spaces around it or around a ``/`` or
    ``:``, a ``/`` at its end or hyphens and spaces inside it (``_`` instead), a version of
    fewer than three numbers (`_three_part_version`), and spelled as
    TFDS names its data set (`_right_spelling`, among those prepared in `data_dirs`), or,
    where that names none built in or prepared there, as the nearest that does; where
    that is a well-formed TFDS name; "" if it is not.

    Examples:
        >>> _respelled("my-images"), _respelled(" digits/")
        (". Did you mean 'my_images'?", ". Did you mean 'digits'?")
        >>> _respelled("digits:1.0"), _respelled("digits:1.0.0.0")
        (". Did you mean 'digits:1.0.0'?", '')
        >>> _respelled("My-Images/small")  # not 'My_Images/small', refused in turn
        ". Did you mean 'my_images/small'?"
        >>> _respelled("my images"), _respelled("Mnist-1D")  # a built-in name, not 'mnist_1_d'
        (". Did you mean 'my_images'?", ". Did you mean 'mnist1d'?")
        >>> _respelled("Toy Configs /small")  # not 'toy_configs_/small'
        ". Did you mean 'toy_configs/small'?"
    """
    import tensorflow_datasets as tfds

    unspaced = re.sub(r"\s*([/:])\s*", r"\1", name).strip().rstrip("/")
    fixed = _three_part_version(re.sub(r"[\s-]+", "_", unspaced))
    try:
        dataset = tfds.core.naming.parse_builder_name_kwargs(fixed)[0]
    except ValueError:
        return ""
    spelled = re.split("[/:]", fixed, maxsplit=1)[0]
    known = _known_names(data_dirs)
    right = _right_spelling(spelled, dataset.name, known)
    if right not in known:  # one that loads, rather than the respelling of none
        right = next(iter(nearest(right, known)), right)
    fixed = right + fixed[len(spelled) :]
    return f". Did you mean {fixed!r}?" if fixed != name and not dataset.namespace else ""


def _three_part_version(name: str) -> str:
    """`name` with a version of one or two numbers (or ``*``), or one that begins with
    ``v``, written as TFDS takes it: three numbers, the missing ones 0 (``*`` after a ``*``).

    Examples:
        >>> _three_part_version("digits:1.0"), _three_part_version("a/b:v2")
        ('digits:1.0.0', 'a/b:2.0.0')
        >>> _three_part_version("digits:1.*"), _three_part_version("digits:1.0.0")
        ('digits:1.*.*', 'digits:1.0.0')
    """
    parsed = re.fullmatch(r"(?P<head>[^:]+):v?(?P<parts>(\d+|\*)(\.(\d+|\*)){0,2})", name)
    if parsed is None:
        return name
    parts = parsed["parts"].split(".")
    filler = "*" if parts[-1] == "*" else "0"
    return f"{parsed['head']}:{'.'.join(parts + [filler] * (3 - len(parts)))}"


def _refuse_another_spelling(
    name: str, dataset: str, data_dirs: Sequence[pathlib.Path] = ()
) -> None:
    """Raises if `name` spells its data set otherwise than TFDS names it (``"Digits"`` for
    ``digits``): each data set is spelled one way, or its results would be told apart; the
    spelling it says is `_right_spelling`'s (among those built in or prepared in
    `data_dirs`: `_known_names`).

    Examples:
        >>> _refuse_another_spelling("MNIST1D:1.0.0", "mnis_t1_d")
        Traceback (most recent call last):
        ValueError: data set name 'MNIST1D:1.0.0' is not spelled as TFDS names the data set:
        write 'mnist1d:1.0.0' (lower-case snake_case; results name a data set as written, so
        'MNIST1D' and 'mnist1d' would be reported as two)
    """
    spelled = re.split("[/:]", name, maxsplit=1)[0]
    if spelled == dataset:
        return
    right = _right_spelling(spelled, dataset, _known_names(data_dirs))
    raise ValueError(
        f"data set name {name!r} is not spelled as TFDS names the data set: write "
        f"{right + name[len(spelled) :]!r} (lower-case snake_case; results name a data set as "
        f"written, so {spelled!r} and {right!r} would be reported as two)"
    )


def _known_names(data_dirs: Sequence[pathlib.Path]) -> list[str]:
    """The built-in data sets' names, then those of the data sets prepared in `data_dirs`
    (without a config)."""
    prepared = [name for path in data_dirs for name in _names(_prepared_variants(path))]
    return list(dict.fromkeys([*BUILTIN_NAMES, *(name.split("/")[0] for name in prepared)]))


def _right_spelling(spelled: str, dataset: str, known: Sequence[str] = BUILTIN_NAMES) -> str:
    """How to write `spelled`, a data set's name that TFDS reads as `dataset`: the name
    among `known` (`_known_names`: built in or prepared) that it spells but for case and
    underscores (``Mnist_1D``: ``mnist1d``), lower-case if in capitals (TFDS reads
    ``CIFAR10`` as ``cifa_r10``), else `dataset` with one underscore where it has several
    (TFDS's snake_case of ``My_Images`` is ``my__images``).

    Examples:
        >>> _right_spelling("Cifar_10", "cifar_10", [*BUILTIN_NAMES, "cifar10"])
        'cifar10'
        >>> _right_spelling("Cifar_10", "cifar_10"), _right_spelling("Mnist_1D", "mnist_1_d")
        ('cifar_10', 'mnist1d')
    """
    letters = spelled.lower().replace("_", "")
    spelt_so = [each for each in known if each.replace("_", "") == letters]
    if spelt_so:
        return spelt_so[0]
    if spelled.isupper():
        return spelled.lower()
    return re.sub("__+", "_", dataset)


_NAMED = "|".join(("train", *HELD_OUT))
_SPLIT = re.compile(rf"(?:[:/](?:{_NAMED}))?\[.*\]$|:(?:{_NAMED})$")
"""A split or slice at the end of a data set's name, as in tfds.load's ``split=``."""


def _refuse_a_split(name: str) -> None:
    """Raises if `name` ends with a split or a slice of one, which `load` does not take.

    Examples:
        >>> _refuse_a_split("digits:train[:10%]")
        Traceback (most recent call last):
        phosjax.data._load.SplitInNameError: data set name 'digits:train[:10%]' names a
        split (':train[:10%]'); load ...
    """
    split = _SPLIT.search(name)
    if split:
        raise SplitInNameError(name, split.start())


class SplitInNameError(PicklableError, ValueError):
    """`load`'s data set ``name`` ends with a split or a slice of one; ``dataset``: the name
    without it; ``split``: what it ends with; ``suggested``: the (train, test) splits to
    read instead.

    Examples:
        >>> error = SplitInNameError("digits[:10%]", 6)
        >>> error.dataset, error.split, error.suggested
        ('digits', '[:10%]', ('train[:10%]', 'test'))
    """

    def __init__(self, name: str, start: int):
        self.name, self.dataset, self.split = name, name[:start], name[start:]
        spec = self.split.lstrip(":/")
        spec = f"train{spec}" if spec.startswith("[") else spec
        self.suggested = ("train", spec) if spec.startswith(HELD_OUT) else (spec, "test")
        super().__init__(
            f"data set name {name!r} names a split ({self.split!r}); load takes the data "
            f"set's name alone ({self.dataset!r}) and the splits to read apart: "
            f"splits=(train, test), e.g. splits={self.suggested!r}"
        )


def _builtin_builder(
    name: str, dataset: str, kwargs: dict[str, Any], data_dir: pathlib.Path
) -> tfds.core.DatasetBuilder:
    from phosjax.data._builders import BUILDERS

    if "config" in kwargs:
        raise ValueError(
            f"built-in data set {name!r} cannot be loaded: {dataset!r} has no configs; load "
            f"{dataset!r}"
        )
    try:
        builder = BUILDERS[dataset](
            data_dir=os.fspath(data_dir), file_format="array_record", **kwargs
        )
    except Exception as error:  # TFDS's check of the version, or of a prepared folder's metadata
        unreadable = _damaged_folder(name, dataset, data_dir)
        if unreadable is not None:
            raise ValueError(unreadable) from error
        raise ValueError(f"built-in data set {name!r} cannot be loaded: {error}") from error
    if builder.data_path.exists() and not _is_prepared(builder):  # TFDS would reuse it as it is
        raise ValueError(_damaged(name, builder.data_path, data_dir, _NO_INFO))
    if not _is_prepared(builder) and (own := _in_own_folder(name, dataset, data_dir)):
        raise ValueError(own)  # it would be prepared again, inside its prepared folder
    _check_made_by(name, builder)
    return builder


def _check_made_by(name: str, builder: tfds.core.DatasetBuilder) -> None:
    """Raises when `builder`'s prepared folder was made by another builder than phosjax's of
    that name (a user's own ``digits``), which TFDS would read as phosjax's without a word."""
    info = pathlib.Path(builder.data_path) / "dataset_info.json"
    made_by = json.loads(info.read_bytes()).get("moduleName") if info.is_file() else None
    if made_by not in (None, type(builder).__module__):
        raise ValueError(
            f"data set {name!r} in {builder.data_path} is not phosjax's built-in "
            f"{builder.name!r}: its dataset_info.json says {made_by!r} prepared it, not "
            f"{type(builder).__module__!r}. A built-in name loads only the built-in data set: "
            "load yours under another name, or load the built-in from a data_dir without it"
        )


def _is_prepared(builder: tfds.core.DatasetBuilder) -> bool:
    """Whether `builder`'s folder holds its dataset_info.json: ``builder.is_prepared()``
    without a glob (TFDS's reads a ``[`` in the data dir's path as a pattern, and the folder
    as not prepared) and without its warning about a folder not made yet, as on first use."""
    return (pathlib.Path(builder.data_path) / "dataset_info.json").is_file()


def _prepare_builtin(name: str, data_dir: pathlib.Path) -> tfds.core.DatasetBuilder:
    try:
        return _prepare_builtin_locked(name, data_dir)
    except OSError as error:  # a data dir that cannot be made or written: read-only, ...
        raise PermissionError(
            f"cannot prepare built-in data set {name!r} in data_dir {str(data_dir)!r} "
            f"({error.strerror or error}: {error.filename!r}); pass a data_dir you can "
            "write to, or prepare it there once as a user who can"
        ) from error


def _prepare_builtin_locked(name: str, data_dir: pathlib.Path) -> tfds.core.DatasetBuilder:
    import tensorflow_datasets as tfds

    dataset = _parse(name)[0]
    with _file_lock(data_dir / f".{dataset}.lock"):
        builder = _builder(name, [data_dir])[0]  # another process may have prepared it meanwhile
        if not _is_prepared(builder):
            for left in _unfinished(data_dir / dataset):  # by a preparation killed: no other runs
                shutil.rmtree(left)
            with tempfile.TemporaryDirectory() as downloads:  # none: no downloads/ in data_dir
                builder.download_and_prepare(
                    download_dir=downloads,
                    download_config=tfds.download.DownloadConfig(
                        try_download_gcs=False,
                        compute_stats=tfds.download.ComputeStatsMode.SKIP,
                    ),
                )
    return builder


def _prepared_builder(
    name: str, dataset: str, data_dirs: list[pathlib.Path]
) -> tuple[tfds.core.DatasetBuilder, pathlib.Path]:
    """`name`'s builder from the first of `data_dirs` where it is prepared, and that dir;
    raises why it does not load from the first that holds a folder of `dataset`, else why
    it is unknown (naming every dir). A damaged folder of what `name` asks for is never
    passed over for a copy in a later dir: it raises, naming the folder."""
    holding = [data_dir for data_dir in data_dirs if (data_dir / dataset).is_dir()]
    if len(data_dirs) > 1 and not holding:
        raise _not_prepared(name, dataset, data_dirs[0], data_dirs)
    errors = []
    for data_dir in holding or data_dirs:
        try:
            return _prepared_builder_in(name, dataset, data_dir), data_dir
        except _DamagedFolder as error:
            later = holding[holding.index(data_dir) + 1 :]
            raise ValueError(f"{error}{_passed_over(later)}") from error
        except ValueError as error:
            errors.append(error)
    raise errors[0]


def _passed_over(later: list[pathlib.Path]) -> str:
    """What to pass to read instead the copy in the first of the `later` data dirs, if any.

    Examples:
        >>> print(_passed_over([pathlib.Path("/tfds")]))
        . It was not passed over for the copy in /tfds, as the first data dir that holds a
        data set wins; to read that copy, pass data_dir='/tfds'
    """
    if not later:
        return ""
    return (
        f". It was not passed over for the copy in {later[0]}, as the first data dir that "
        f"holds a data set wins; to read that copy, pass data_dir={str(later[0])!r}"
    )


def _prepared_builder_in(
    name: str, dataset: str, data_dir: pathlib.Path
) -> tfds.core.DatasetBuilder:
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=os.fspath(data_dir))
    except tfds.core.registered.DatasetNotFoundError:
        raise _not_prepared(name, dataset, data_dir) from None
    except Exception as error:  # a builder registered in this process checks its own arguments
        raise _not_prepared(name, dataset, data_dir, tail=f" (TFDS: {error})") from error
    if not _is_prepared(builder):
        raise _not_prepared(name, dataset, data_dir)
    random_access = tfds.core.FileFormat.with_random_access()
    if not builder.info.available_file_formats() & random_access:
        raise ValueError(_needs_tensorflow(name, builder, data_dir))
    return builder


def _needs_tensorflow(name: str, builder: tfds.core.DatasetBuilder, data_dir: pathlib.Path) -> str:
    """That `name`, prepared in `builder`'s folder in a format only TensorFlow reads, is to
    be converted to array_record (TFDS reuses a prepared folder as it is: preparing it
    again in `data_dir` changes nothing unless the folder is deleted first)."""
    folder, stored = builder.data_path, builder.info.file_format.value
    return (
        f"data set {name!r} in {folder} is stored as {stored}, which needs TensorFlow to read; "
        f"convert it where TensorFlow is installed: `tfds convert_format --dataset_version_dir "
        f"{folder} --out_file_format array_record` (it adds array_record files beside the "
        f"{stored} ones), or delete that folder and {_made_anew(name, data_dir)}"
    )


class _DamagedFolder(ValueError):
    """A prepared folder of the data set asked for whose metadata TFDS cannot read
    (`_damaged_folder`): `load` never passes it over for a copy in a later data dir."""


def _not_prepared(
    name: str,
    dataset: str,
    data_dir: pathlib.Path,
    searched: list[pathlib.Path] | None = None,
    tail: str = "",
) -> ValueError:
    """The error for `name` not loading from `data_dir`: a `_DamagedFolder` where its
    folder there has metadata TFDS cannot read (TFDS's error in it); else why, ending in `tail`:
    `data_dir` is its own folder, or what is prepared there (in each of the `searched`
    dirs, default `data_dir`), and how to prepare it."""
    unreadable = _damaged_folder(name, dataset, data_dir)
    if unreadable is not None:
        return _DamagedFolder(unreadable)
    return ValueError(_why_not_prepared(name, dataset, data_dir, searched) + tail)


def _why_not_prepared(
    name: str, dataset: str, data_dir: pathlib.Path, searched: list[pathlib.Path] | None
) -> str:
    """Why `name`, whose folder in `data_dir` (if any) TFDS can read, does not load from
    `data_dir` (see `_not_prepared`)."""
    variants = _prepared_variants(data_dir)
    same = [variant for variant in variants if re.split("[/:]", variant)[0] == dataset]
    asked = _parse(name)[1]  # the config and version the name gives, if any
    version, config = asked.get("version"), asked.get("config")
    left = [  # the unfinished preparations of `name`, not another config's or version's
        path
        for path in _unfinished(data_dir / dataset)
        if (not version or path.name.endswith(f"_{version}"))
        and (not config or path.parent.name == config)
    ]
    if same:
        killed = (
            f": a preparation of it there did not finish, leaving {left[0]} (unless one is "
            "running now, delete that folder)"
            if left
            else ""
        )
        problem = (
            f"data set {name!r} is not prepared in {data_dir} at the version or config it asks "
            f"for{killed}; the prepared versions of {dataset!r} are {', '.join(same)}. Load "
            "one of those, or prepare it there first"
        )
    elif left:
        problem = (
            f"data set {name!r} is not prepared in {data_dir}: a preparation of it there did "
            f"not finish, leaving {left[0]}. Unless one is running now, delete that folder "
            "and prepare it again"
        )
    elif own := _in_own_folder(name, dataset, data_dir):
        return own
    else:
        found = {path: _names(_prepared_variants(path)) for path in searched or [data_dir]}
        prepared = " or in ".join(
            f"{path} ({', '.join(names) or _none_in(path)})" for path, names in found.items()
        )
        near = _near(
            dataset, [*BUILTIN_NAMES, *(known for names in found.values() for known in names)]
        )
        problem = (
            f"unknown data set {name!r}: it is neither built in ({', '.join(BUILTIN_NAMES)}) nor "
            f"prepared in {prepared}{near or '.'} To load another TFDS data set, prepare it in "
            f"{'one of those' if len(found) > 1 else 'there'} first"
        )
        return (
            f"{problem}: {_how_to_prepare(name, data_dir)}; or, if it is prepared in another "
            "data dir, pass that dir (data_dir=...; to a bench, new's --data_dir: "
            "`python -m phosjax.bench.new --dir BENCH --data_dir THAT_DIR` continues a bench "
            "made already reading from there, and its add_models then reads from there too)"
        )
    return f"{problem}: {_how_to_prepare(name, data_dir)}"


def _in_own_folder(name: str, dataset: str, data_dir: pathlib.Path) -> str | None:
    """Why `name` does not load where `data_dir` is, or is inside, the folder of its data
    set `dataset` holding a prepared version (``<dataset>/[<config>/]<version>``), as
    ``<data dir>/<dataset>`` is; None where it is not.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     own = pathlib.Path(tmp) / "digits"
        ...     (own / "1.0.0").mkdir(parents=True)
        ...     _ = (own / "1.0.0" / "dataset_info.json").write_text('{"name": "digits"}')
        ...     print(_in_own_folder("digits", "digits", own))
        ...     _in_own_folder("digits", "digits", pathlib.Path(tmp))  # a data dir: None
        data set 'digits' cannot be loaded: data_dir '/tmp/.../digits' is no data dir but the
        prepared data set's own folder (or one inside it); pass the data dir that holds
        'digits': data_dir='/tmp/...'
    """
    own = next((folder for folder in (data_dir, *data_dir.parents) if folder.name == dataset), None)
    if own is None or not any(
        _info_name(info) == dataset  # not another data set's, in a data dir named like this one
        for levels in ("*/", "*/*/")  # [config/]version
        for info in own.glob(f"{levels}dataset_info.json")
    ):
        return None
    return (
        f"data set {name!r} cannot be loaded: data_dir {str(data_dir)!r} is no data dir but "
        f"the prepared data set's own folder (or one inside it); pass the data dir that "
        f"holds {own.name!r}: data_dir={str(own.parent)!r}"
    )


def _info_name(info: pathlib.Path) -> str | None:
    """The data set's name that the dataset_info.json `info` gives; None if unreadable."""
    try:
        return json.loads(info.read_bytes()).get("name")
    except (OSError, ValueError, AttributeError):  # AttributeError: JSON, but no object
        return None


def _unfinished(folder: pathlib.Path) -> list[pathlib.Path]:
    """The folders that TFDS's unfinished preparations left in a data set's `folder`
    (``[config/]incomplete.XXXXXX_<version>``, renamed to ``<version>`` when one finishes);
    not those of a data dir deeper inside it, which are no preparations of this data set.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     (pathlib.Path(tmp) / "incomplete.AB12CD_1.0.0").mkdir()
        ...     [path.name for path in _unfinished(pathlib.Path(tmp))]
        ['incomplete.AB12CD_1.0.0']
    """
    pattern = re.compile(rf"incomplete\.\w+_{_VERSION.pattern}")
    left = [*folder.glob("incomplete.*"), *folder.glob("*/incomplete.*")]  # [config/]
    return sorted(path for path in left if pattern.fullmatch(path.name))


def _none_in(data_dir: pathlib.Path) -> str:
    """What is prepared in `data_dir` where nothing is: ``none``, and why if it is no folder.

    Examples:
        >>> _none_in(pathlib.Path("/no/such/dir"))
        'none: no such folder'
    """
    return "none" if data_dir.is_dir() else "none: no such folder"


def _damaged_folder(name: str, dataset: str, data_dir: pathlib.Path) -> str | None:
    """The error for the first folder ``<data_dir>/<dataset>[/<config>]/<version>`` of the
    config and version `name` asks for (any, where it names none; its version may hold ``*``)
    whose metadata is damaged (`_damaged`) or this TFDS cannot read (`_unreadable`); None if
    none.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     (pathlib.Path(tmp) / "mine" / "1.0.0").mkdir(parents=True)
        ...     print(_damaged_folder("mine:1.0.0", "mine", pathlib.Path(tmp)))
        data set 'mine:1.0.0' is incomplete or damaged in .../mine/1.0.0 (it has no
        dataset_info.json); delete that folder and prepare it again: ...
    """
    import tensorflow_datasets as tfds

    asked = _parse(name)[1]
    root = data_dir / dataset
    for folder in sorted([*root.glob("*"), *root.glob("*/*")]):  # not a data dir's inside it
        config = "/".join(folder.relative_to(root).parts[:-1])
        if not (
            _VERSION.fullmatch(folder.name)
            and folder.is_dir()
            and asked.get("config", config) == config
            and tfds.core.Version(folder.name).match(asked.get("version", folder.name))
        ):
            continue
        if why := _metadata_problem(folder):
            return _damaged(name, folder, data_dir, why)
        try:
            tfds.builder_from_directory(os.fspath(folder))
        except Exception as error:  # TFDS's checks of the fields: a version, a feature's class
            return _unreadable(name, folder, data_dir, error)
    return None


def _metadata_problem(folder: pathlib.Path) -> str | None:
    """Why the metadata files of the prepared `folder` are damaged (one is missing, not
    JSON, or no object holding one of its keys: `_METADATA`); None if they are not.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     print(_metadata_problem(pathlib.Path(tmp)))
        ...     _ = (pathlib.Path(tmp) / "dataset_info.json").write_text("{}")
        ...     print(_metadata_problem(pathlib.Path(tmp)))
        it has no dataset_info.json
        its dataset_info.json holds no 'version', which every TFDS writes there
    """
    for file, keys in _METADATA.items():
        try:
            metadata = json.loads((folder / file).read_bytes())
        except FileNotFoundError:
            return f"it has no {file}"
        except ValueError as error:
            return f"its {file} is not JSON: {error}"
        if not isinstance(metadata, dict) or metadata.keys().isdisjoint(keys):
            named = " or ".join(map(repr, keys))
            return f"its {file} holds no {named}, which every TFDS writes there"
    return None


def _near(dataset: str, names: list[str]) -> str:
    """`did_you_mean` among `names` (their data sets, without a config) for `dataset`.

    Examples:
        >>> _near("mnist_1d", ["digits", "mnist1d"]), _near("cifar10", ["digits"])
        (". Did you mean 'mnist1d'?", '')
        >>> _near("mnist1d_s", ["mnist1d", "mnist1d_shuffled/big"])
        ". Did you mean 'mnist1d' or 'mnist1d_shuffled'?"
    """
    return did_you_mean([dataset], dict.fromkeys(name.split("/")[0] for name in names))


def _how_to_prepare(name: str, data_dir: pathlib.Path) -> str:
    return (
        f"`tfds build {name} --data_dir {data_dir} --file_format array_record` or "
        f"`tfds.builder({name!r}, data_dir={str(data_dir)!r}, "
        "file_format='array_record').download_and_prepare()`"
    )


def _damaged(name: str, folder: os.PathLike, data_dir: pathlib.Path, why: str) -> str:
    """Why `name`'s prepared `folder` cannot be read, and how to make it anew."""
    return (
        f"data set {name!r} is incomplete or damaged in {folder} ({why}); delete "
        f"that folder and {_made_anew(name, data_dir)}"
    )


def _unreadable(name: str, folder: os.PathLike, data_dir: pathlib.Path, error: Exception) -> str:
    """That this TFDS cannot read the metadata of `name`'s prepared `folder` (TFDS's `error`),
    which a newer TFDS may have written: to upgrade first, not to delete it."""
    import tensorflow_datasets as tfds

    return (
        f"data set {name!r} in {folder} has metadata this TFDS ({tfds.__version__}) cannot "
        f"read ({type(error).__name__}: {error}); a newer TFDS may have prepared it: upgrade "
        "tensorflow_datasets to read it. Only if the newest TFDS cannot read it either is it "
        f"damaged: then delete that folder and {_made_anew(name, data_dir)}"
    )


def _made_anew(name: str, data_dir: pathlib.Path) -> str:
    """How to make `name`'s prepared folder in `data_dir` anew, once deleted."""
    if _parse(name)[0] in BUILTIN_NAMES:
        return "load it again, which generates it anew"
    return f"prepare it again: {_how_to_prepare(name, data_dir)}"


def prepared_names(data_dir: str | os.PathLike | None = None) -> list[str]:
    """Names of the data sets prepared in `data_dir` (``name`` or ``name/config``); by
    default, in every dir `load` looks in.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     prepared_names(tmp)
        []
    """
    return _names([v for path in _data_dirs(data_dir) for v in _prepared_variants(path)])


def _prepared_variants(root: pathlib.Path) -> list[str]:
    """``name[/config]:version`` of each data set prepared under `root`, sorted.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     for folder in ("digits/1.0.0", "mnist1d/cfg/1.0.0", "other/dir/digits/1.0.0"):
        ...         (pathlib.Path(tmp) / folder).mkdir(parents=True)
        ...         (pathlib.Path(tmp) / folder / "dataset_info.json").touch()
        ...     _prepared_variants(pathlib.Path(tmp))
        ['digits:1.0.0', 'mnist1d/cfg:1.0.0']
    """
    variants = set()
    # <root>/name[/config]/<version>/dataset_info.json, each level a folder or a link to one
    # (`**` follows no link, and walks every file under root: downloads/extracted too);
    # skips TFDS's "incomplete.*" dirs and a data dir deeper inside root (a/b/name/<version>:
    # no name load reads).
    for info in [*root.glob("*/*/dataset_info.json"), *root.glob("*/*/*/dataset_info.json")]:
        if _VERSION.fullmatch(info.parent.name):
            variants.add("/".join(info.relative_to(root).parts[:-2]) + f":{info.parent.name}")
    return sorted(variants)


def _names(variants: list[str]) -> list[str]:
    return sorted({variant.split(":")[0] for variant in variants})


def _layout(
    name: str,
    info: tfds.core.DatasetInfo,
    features: tuple[str, str] | None = None,
    splits: tuple[str, str] | None = None,
) -> tuple[str, str, tuple[str, str]]:
    """The input feature, label feature and (train, test) splits `load` reads; raises unless
    supported."""
    x_key, y_key = _keys(name, info, features)
    return x_key, y_key, chosen_splits(name, splits, info.splits)


def _keys(
    name: str, info: tfds.core.DatasetInfo, features: tuple[str, str] | None
) -> tuple[str, str]:
    """The input and label features `load` reads (`features`, else as `_supervised_keys`);
    raises unless both exist and are supported."""
    x_key, y_key = features or _supervised_keys(name, info)
    known = info.features
    for key in (x_key, y_key):
        if key not in known and features:
            raise NoSuchFeatureError(name, key, features, known)
        if key not in known:
            raise MissingFeaturesError(name, key, known)
    _check_input(name, x_key, known)
    _check_label(name, y_key, known)
    return x_key, y_key


def _supervised_keys(name: str, info: tfds.core.DatasetInfo) -> tuple[str, str]:
    """The input and label keys: the first two supervised keys (a third, weights, is ignored)."""
    keys = info.supervised_keys or ("image", "label")
    if not all(isinstance(key, str) for key in keys[:2]):  # several inputs: a dict of them
        raise MissingFeaturesError(name, None, info.features, supervised_keys=keys)
    return keys[0], keys[1]


class _FeaturesError(PicklableError, ValueError):
    """The base of `NoSuchFeatureError` and `MissingFeaturesError`, which set ``suggested``."""

    suggested: tuple[str, str] | None

    @property
    def example_pair(self) -> tuple[str, str]:
        """The (input, label) features an example of what to write names: ``suggested``,
        else ``("INPUT", "LABEL")``."""
        return self.suggested or ("INPUT", "LABEL")


class NoSuchFeatureError(_FeaturesError):
    """`load`'s ``features`` name ``missing``, which data set ``name`` lacks; ``known``: its
    features, sorted; ``suggested``: an (input, label) pair of them `load` can read, or None.

    Examples:
        >>> import tempfile
        >>> from phosjax.data import NoSuchFeatureError, check_loadable
        >>> tmp = tempfile.mkdtemp()
        >>> check_loadable("digits", data_dir=tmp, features=("image", "lable"))  # not prepared
        Traceback (most recent call last):
        phosjax.data._load.NoSuchFeatureError: data set 'digits' has no feature 'lable'
        (features: ['image', 'label']); features=('image', 'lable') names no feature of it.
        Did you mean 'label'?
        >>> try:
        ...     check_loadable("digits", data_dir=tmp, features=("pixels", "label"))
        ... except NoSuchFeatureError as error:
        ...     print(error.missing, error.known, error.suggested)
        pixels ['image', 'label'] ('image', 'label')
    """

    def __init__(
        self,
        name: str,
        missing: str,
        features: tuple[str, str],
        known: tfds.features.FeaturesDict,
    ):
        self.name, self.missing, self.known = name, missing, sorted(known.keys())
        self.suggested = _suggested_pair(known)
        hint = did_you_mean([missing], self.known) or _suggested_features(known)
        super().__init__(
            f"data set {name!r} has no feature {missing!r} (features: {self.known}); "
            f"features={features!r} names no feature of it{hint}"
        )

    def told_as(self, entry: str, example: str) -> str:
        """This error as said of ``entry``, which gave the features (a bench's
        ``dataset_features.NAME``); ``example``: that entry naming `example_pair`.

        Examples:
            >>> import tensorflow_datasets as tfds
            >>> known = tfds.features.FeaturesDict({"x": np.float32, "y": np.int64})
            >>> error = NoSuchFeatureError("toy", "z", ("x", "z"), known)
            >>> print(error.told_as("dataset_features.toy", "{toy: [x, y]}"))
            dataset_features.toy names 'z', which data set 'toy' lacks (its features: ['x',
            'y']); name its input and label feature there, e.g. {toy: [x, y]}
        """
        return (
            f"{entry} names {self.missing!r}, which data set {self.name!r} lacks (its "
            f"features: {self.known}); name its input and label feature there, e.g. "
            f"{example}{did_you_mean([self.missing], self.known)}"
        )


class MissingFeaturesError(_FeaturesError):
    """Data set ``name`` lacks the feature ``missing`` that `load` reads when no
    ``features`` are given (a supervised key, else ``image`` or ``label``), or (``missing``
    None) its ``supervised_keys`` name no one input and one label feature (several inputs);
    ``known``: its features, sorted; ``suggested``: an (input, label) pair of them `load`
    can read, or None.

    Examples:
        >>> import tensorflow_datasets as tfds
        >>> known = tfds.features.FeaturesDict({"x": np.float32, "y": np.int64})
        >>> print(MissingFeaturesError("toy", "image", known))
        data set 'toy' has no feature 'image' (features: ['x', 'y']); load needs an input and a
        class label (features=(input, label), supervised_keys, or 'image' and 'label'); e.g.
        features=('x', 'y')
        >>> keys = ({"x": "x", "z": "z"}, "y")
        >>> print(MissingFeaturesError("toy", None, known, supervised_keys=keys).problem)
        has supervised_keys ({'x': 'x', 'z': 'z'}, 'y'), not one input and one label feature
    """

    def __init__(
        self,
        name: str,
        missing: str | None,
        known: tfds.features.FeaturesDict,
        supervised_keys: tuple[Any, ...] | None = None,
    ):
        self.name, self.missing, self.known = name, missing, sorted(known.keys())
        self.suggested = _suggested_pair(known)
        self.problem = (
            f"has no feature {missing!r}"
            if supervised_keys is None
            else f"has supervised_keys {cut_repr(supervised_keys)}, not one input and one label "
            "feature"
        )
        super().__init__(
            f"data set {name!r} {self.problem} (features: {self.known}); load needs an input and "
            "a class label (features=(input, label), supervised_keys, or 'image' and 'label')"
            f"{_suggested_features(known)}"
        )

    def told_by(self, reader: str, field: str, example: str) -> str:
        """This error as `reader` says it, which reads the features its `field` names;
        `example`: `field` written with `suggested`.

        Examples:
            >>> import tensorflow_datasets as tfds
            >>> known = tfds.features.FeaturesDict({"x": np.float32, "y": np.int64})
            >>> error = MissingFeaturesError("toy", "image", known)
            >>> print(error.told_by("a bench", "its dataset_features entry", "{toy: [x, y]}"))
            data set 'toy' has no feature 'image' (features: ['x', 'y']); a bench reads its
            supervised_keys, else 'image' and 'label', unless its dataset_features entry names
            the input and the label, e.g. {toy: [x, y]}
        """
        return (
            f"data set {self.name!r} {self.problem} (features: {self.known}); "
            f"{reader} reads its supervised_keys, else 'image' and 'label', unless {field} names "
            f"the input and the label, e.g. {example}"
        )


def _suggested_features(known: tfds.features.FeaturesDict) -> str:
    """``; e.g. features=(input, label)`` with `_suggested_pair`; "" if there is none.

    Examples:
        >>> import tensorflow_datasets as tfds
        >>> _suggested_features(tfds.features.FeaturesDict({
        ...     "id": tfds.features.Tensor(shape=(), dtype=np.int64),
        ...     "digit": tfds.features.ClassLabel(num_classes=3),
        ...     "pixels": tfds.features.Tensor(shape=(2,), dtype=np.float32)}))
        "; e.g. features=('pixels', 'digit')"
    """
    pair = _suggested_pair(known)
    return f"; e.g. features={pair!r}" if pair else ""


def _suggested_pair(known: tfds.features.FeaturesDict) -> tuple[str, str] | None:
    """Features of `known` that `load` can read as (input, label) (a ClassLabel and a
    non-scalar input first, then by name: TFDS reads a prepared data set's features in an
    order that changes from one process to the next); None if it has none.

    Examples:
        >>> import tensorflow_datasets as tfds
        >>> x, y = tfds.features.Tensor(shape=(2,), dtype=np.float32), np.int64
        >>> _suggested_pair(tfds.features.FeaturesDict({"b": x, "a": x, "y": y}))
        ('a', 'y')
    """
    import tensorflow_datasets as tfds

    labels = sorted(
        (key for key, feature in known.items() if _is_label(feature)),
        key=lambda key: (not isinstance(known[key], tfds.features.ClassLabel), key),
    )
    inputs = sorted(
        (key for key, feature in known.items() if key not in labels and _is_input(feature)),
        key=lambda key: (known[key].shape == (), key),
    )
    return (inputs[0], labels[0]) if inputs and labels else None


def _is_input(feature: tfds.features.FeatureConnector) -> bool:
    """Whether `load` reads `feature` as an input: a fixed shape and a real dtype (float32
    would drop a complex one's imaginary part)."""
    shape = feature.shape
    if not isinstance(shape, tuple) or None in shape:
        return False
    return is_real(np.dtype(feature.np_dtype))


def _is_label(feature: tfds.features.FeatureConnector) -> bool:
    """Whether `load` reads `feature` as a label: a ClassLabel or an integer scalar."""
    return feature.shape == () and np.issubdtype(np.dtype(feature.np_dtype), np.integer)


def _check_input(name: str, key: str, known: tfds.features.FeaturesDict) -> None:
    if _is_input(known[key]):
        return
    raise ValueError(
        f"data set {name!r}: input feature {key!r} ({_describe(known[key])}) is not supported; "
        "load supports inputs of a fixed shape and a real dtype (float, integer or bool: a Tensor "
        "or an Image without None in its shape), not complex numbers, text, variable shapes or "
        f"nested features{_one_shape_hint(known[key])}{_readable(known)}"
    )


def _one_shape_hint(feature: tfds.features.FeatureConnector) -> str:
    """``; to read it, prepare ...`` where `feature`'s shape alone keeps it from being read:
    it varies from example to example (None in it, as in images of many sizes) and its
    dtype is real; "" otherwise (text of varying length would still be text).

    Examples:
        >>> import tensorflow_datasets as tfds
        >>> print(_one_shape_hint(tfds.features.Image(shape=(None, None, 3))))
        ; to read it, prepare the data set with one shape for all its examples (resize or pad
        each), declared in the feature: shape (64, 64, 3), say, not (None, None, 3)
        >>> _one_shape_hint(tfds.features.Text())
        ''
        >>> _one_shape_hint(tfds.features.Sequence(tfds.features.Text()))  # still text
        ''
    """
    shape = feature.shape
    if not isinstance(shape, tuple) or None not in shape or not is_real(np.dtype(feature.np_dtype)):
        return ""
    fixed = tuple(64 if size is None else size for size in shape)
    return (
        "; to read it, prepare the data set with one shape for all its examples (resize or pad "
        f"each), declared in the feature: shape {fixed}, say, not {shape}"
    )


def _check_label(name: str, key: str, known: tfds.features.FeaturesDict) -> None:
    if _is_label(known[key]):
        return
    raise ValueError(
        f"data set {name!r}: label feature {key!r} ({_describe(known[key])}) is not supported; "
        "load supports one class label per example: a ClassLabel or an integer Tensor of shape "
        f"(), not regression targets, text or multi-label sequences{_readable(known)}"
    )


def _readable(known: tfds.features.FeaturesDict) -> str:
    """``; of its features, ... can be read as input and label`` (`_suggested_pair`, in
    no reader's option); "" if there is none.

    Examples:
        >>> import tensorflow_datasets as tfds
        >>> _readable(tfds.features.FeaturesDict({"x": np.float32, "y": np.int64}))
        "; of its features, 'x' and 'y' can be read as the input and the label"
    """
    pair = _suggested_pair(known)
    return (
        f"; of its features, {pair[0]!r} and {pair[1]!r} can be read as the input and the label"
        if pair
        else ""
    )


def _describe(feature: tfds.features.FeatureConnector) -> str:
    """`feature`'s kind, dtype and shape, for error messages."""
    kind = type(feature).__name__
    if not isinstance(feature.shape, tuple):
        return f"{kind} of the features {sorted(feature.shape)}"
    dtype = np.dtype(feature.np_dtype)
    dtype_name = "string" if dtype.kind in "OSU" else dtype.name
    return f"{kind}, dtype {dtype_name}, shape {feature.shape}"


def _read(
    name: str,
    builder: tfds.core.DatasetBuilder,
    data_dir: pathlib.Path,
    features: tuple[str, str] | None = None,
    splits: tuple[str, str] | None = None,
) -> ArrayDataset:
    x_key, y_key, (train_split, test_split) = _layout(name, builder.info, features, splits)
    arrays = {}
    for split, out in ((train_split, "train"), (test_split, "test")):
        spans = read_spans(name, (train_split, test_split), split, builder.info.splits)
        try:
            examples = _examples(builder, spans)
        except (OSError, RuntimeError, ValueError) as error:  # a missing, cut or bad file
            why = f"reading its {split!r} split raised {type(error).__name__}: {error}"
            raise ValueError(_damaged(name, builder.data_path, data_dir, why)) from error
        _check_present(name, split, examples, x_key, y_key)
        x = _as_inputs([e[x_key] for e in examples], builder.info.features[x_key])
        labels = [example[y_key] for example in examples]
        y = _as_labels(name, y_key, split, labels, list(builder.info.splits))
        # new arrays, made read-only: the data set copies neither (`read_only`)
        arrays[f"x_{out}"], arrays[f"y_{out}"] = read_only(x, fresh=True), read_only(y, fresh=True)
    label = builder.info.features[y_key]
    return ArrayDataset(
        name=name,
        num_classes=_num_classes(label, arrays["y_train"], arrays["y_test"]),
        input_shape=tuple(arrays["x_train"].shape[1:]),
        **arrays,
    )


def _examples(
    builder: tfds.core.DatasetBuilder, spans: list[tuple[str, int, int]]
) -> list[dict[str, Any]]:
    """The examples of each (split, start, end) of `spans` (`read_spans`), in order, read by
    index: TFDS's parquet reader reads a slice as its whole files (``train[:80%]`` as all of
    ``train``). Raises ValueError where a split's files hold another number of examples than
    its metadata counts, or where one is empty (no feature has a value), as each is in an
    array_record file cut short."""
    examples = []
    for split, start, end in spans:
        source = builder.as_data_source(split=split)
        counted = builder.info.splits[split].num_examples
        if len(source) != counted:
            raise ValueError(
                f"its {split!r} files hold {len(source)} examples where its metadata counts "
                f"{counted}, as TFDS 4.9.10's parquet writer leaves a file of over 100"
            )
        examples += source.__getitems__(range(start, end))
    if any(not jax.tree_util.tree_leaves(example) for example in examples):  # None: no leaf
        raise ValueError("some of its records are empty, as in a file cut short")
    return examples


def _check_present(
    name: str, split: str, examples: list[dict[str, Any]], x_key: str, y_key: str
) -> None:
    """Raises naming the input or label feature that some examples lack (an optional one)."""
    for kind, key in (("input", x_key), ("label", y_key)):
        missing = sum(example[key] is None for example in examples)
        if missing:
            raise ValueError(
                f"data set {name!r}: {kind} feature {key!r} has no value in {missing} of the "
                f"{len(examples)} examples of its {split!r} split (an optional feature); load "
                "needs an input and a label in every example"
            )


def _num_classes(label: tfds.features.FeatureConnector, *labels: np.ndarray) -> int:
    """The `ClassLabel`'s number of classes, else one more than the largest of `labels`."""
    declared = getattr(label, "num_classes", None)
    return int(declared) if declared else 1 + max(int(y.max(initial=0)) for y in labels)


def _as_labels(
    name: str, key: str, split: str, values: list[Any], known: Sequence[str]
) -> np.ndarray:
    """`values` as int32; raises naming the first that is no class index int32 holds (-1,
    TFDS's label of an unlabelled example: naming the data set's splits, `known`)."""
    labels = np.asarray(values)
    bad = first_outside(labels, np.iinfo(np.int32).max)
    if bad is not None:
        unlabelled = (
            "; -1 is TFDS's label of an example without one: read splits whose examples are "
            f"labelled (its splits: {sorted(known)})"
            if bad == -1
            else ""
        )
        raise ValueError(
            f"data set {name!r}: label feature {key!r} holds {bad} in the {split!r} split; load "
            f"needs class indices, from 0 to num_classes - 1 (int32){unlabelled}"
        )
    return labels.astype(np.int32)


def _as_inputs(values: list[Any], feature: tfds.features.FeatureConnector) -> np.ndarray:
    """Stack into float32, each of `_input_shape`; integer images (an `Image` feature, or any
    uint8) scale to [0, 1]."""
    import tensorflow_datasets as tfds

    x = np.stack(values).reshape(len(values), *_input_shape(feature))
    is_image = isinstance(feature, tfds.features.Image) or x.dtype == np.uint8
    if is_image and np.issubdtype(x.dtype, np.integer):
        return x.astype(np.float32) / np.float32(np.iinfo(x.dtype).max)
    return x.astype(np.float32)


def _input_shape(feature: tfds.features.FeatureConnector) -> tuple[int, ...]:
    """The shape `load` gives each example of the input `feature`: its own, a scalar's
    ``(1,)``, one feature, as models take it.

    Examples:
        >>> import tensorflow_datasets as tfds
        >>> _input_shape(tfds.features.Scalar(np.float32)), _input_shape(tfds.features.Image())
        ((1,), (None, None, 3))
    """
    return tuple(feature.shape) or (1,)
