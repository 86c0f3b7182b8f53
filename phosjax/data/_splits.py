"""The splits `load` reads: ``train`` and ``test`` (else ``validation``), or the two given."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from phosjax._callables import cut_repr
from phosjax._nearest import did_you_mean
from phosjax._pickling import PicklableError

DEFAULT_TEST_SPLITS = ("test", "validation")
HELD_OUT = ("test", "validation", "valid", "val", "eval", "dev")
"""Names of the splits data sets hold out, tested on; a split whose name begins so
(``testing``) is taken for one too."""
_SLICES = "a split's name, a slice of one ('train[:90%]', 'train[-500:]') or a sum ('train+val')"


class SplitsError(PicklableError, ValueError):
    """The `splits` of data set `name` that `load` refuses: the message is ``head``, the
    splits, ``tail`` and, where given, the ``example`` splits to write instead; `str` writes
    splits as `load`'s argument, `told_as` as a config's key (`splits_written`).

    Examples:
        >>> error = SplitsError("toy", ("a", "a"), " reads 'a' twice; e.g. ", ("a", "b"))
        >>> print(error); print(error.told_as("dataset_splits", "toy"))
        data set 'toy': splits=('a', 'a') reads 'a' twice; e.g. splits=('a', 'b')
        data set 'toy': dataset_splits: {toy: ['a', 'a']} reads 'a' twice; e.g. dataset_splits:
        {toy: ['a', 'b']}
    """

    def __init__(
        self,
        name: str,
        splits: Sequence[str],
        tail: str,
        example: Sequence[str] | None = None,
        head: str = "",
    ):
        self.name, self.splits, self.example = name, tuple(splits), example
        self.head, self.tail = head or f"data set {name!r}: ", tail
        super().__init__(self.told_as(None))

    def told_as(self, key: str | None, entry: str | None = None, *, argument: bool = False) -> str:
        """This error with each pair of splits written as the config key ``key`` takes it,
        or its mapping's ``entry``; ``argument``: as the Python argument ``key`` (None: as
        `load`'s ``splits=``; `splits_written`)."""
        written = functools.partial(splits_written, key=key, entry=entry, argument=argument)
        example = "" if self.example is None else written(self.example)
        return f"{self.head}{written(self.splits)}{self.tail}{example}"


def splits_written(
    pair: Sequence[str], key: str | None, entry: str | None = None, *, argument: bool = False
) -> str:
    """The splits ``pair`` as the config key ``key`` takes them, or as the ``entry`` of its
    mapping, as a YAML config writes it; ``argument``: as the Python argument ``key`` does
    (None: `load`'s ``splits=``).

    Examples:
        >>> splits_written(("a", "b"), None), splits_written(("a", "b"), "splits")
        ("splits=('a', 'b')", "splits: ['a', 'b']")
        >>> splits_written(("a", "b"), "dataset_splits", "toy")
        "dataset_splits: {toy: ['a', 'b']}"
        >>> splits_written(("a", "b"), "dataset_splits", "toy", argument=True)
        "dataset_splits={'toy': ('a', 'b')}"
    """
    if key is None or argument:
        value = tuple(pair) if entry is None else {entry: tuple(pair)}
        return f"{key or 'splits'}={value!r}"
    return f"{key}: {list(pair) if entry is None else f'{{{entry}: {list(pair)}}}'}"


def checked_splits(splits: Sequence[str] | None) -> tuple[str, str] | None:
    """`splits` checked: None, or two TFDS split specs, (train, test).

    Examples:
        >>> checked_splits(["train", "val"])
        ('train', 'val')
        >>> checked_splits("train")
        Traceback (most recent call last):
        ValueError: splits must name the split to train on and the split to test on, ...
    """
    if splits is None:
        return None
    if (
        isinstance(splits, str)
        or not isinstance(splits, Sequence)
        or len(splits) != 2
        or not all(isinstance(spec, str) for spec in splits)
    ):
        raise ValueError(
            "splits must name the split to train on and the split to test on, two TFDS split "
            "specs, e.g. ('train', 'val') or ('train[:90%]', 'train[90%:]'); got "
            f"{cut_repr(splits)}"
        )
    return splits[0], splits[1]


def split_names(spec: str) -> list[str]:
    """The names of the splits a TFDS split spec reads (TFDS allows spaces around ``+``).

    Examples:
        >>> split_names("train[:90%]+validation"), split_names("train + val")
        (['train', 'validation'], ['train', 'val'])
    """
    return [re.sub(r"\[.*", "", part) for part in re.split(r"\s*\+\s*", spec)]


def check_split_names(name: str, splits: tuple[str, str] | None, known: Sequence[str]) -> None:
    """Raises unless each of `splits` is a well-formed TFDS split spec of the `known` splits
    of data set `name`; reads no example.

    Examples:
        >>> check_split_names("toy", ("train", "tset"), ["test", "train"])
        Traceback (most recent call last):
        phosjax.data._splits.SplitsError: data set 'toy' has no split 'tset' (splits=('train',
        'tset') names it; its splits: ['test', 'train']). Did you mean 'test'?
        >>> check_split_names("toy", ("all", "test"), ["test", "train", "val"])
        Traceback (most recent call last):
        phosjax.data._splits.SplitsError: data set 'toy': splits=('all', 'test') holds 'all';
        TFDS's 'all' reads every split, the one to test on too: sum the splits to read instead,
        e.g. 'train+val' (its splits: ['test', 'train', 'val'])
    """
    import tensorflow_datasets as tfds

    if splits is None:
        return
    for spec in splits:
        if "all" in split_names(spec):  # TFDS's every split, test included (and no slice)
            kept = [split for split in sorted(known) if split not in DEFAULT_TEST_SPLITS]
            raise SplitsError(
                name,
                splits,
                f" holds {spec!r}; TFDS's 'all' reads every split, the one to test on too: sum "
                f"the splits to read instead, e.g. {'+'.join(kept or sorted(known))!r} (its "
                f"splits: {sorted(known)})",
            )
        try:
            tfds.core.ReadInstruction.from_spec(spec)
        except (ValueError, AssertionError) as error:
            why = str(error).splitlines()[-1]
            raise SplitsError(
                name,
                splits,
                f" holds {spec!r}, which is no TFDS split spec ({why}); write {_SLICES}",
            ) from None
        unknown = [split for split in split_names(spec) if split not in known]
        if unknown:
            raise SplitsError(
                name,
                splits,
                f" names it; its splits: {sorted(known)}){did_you_mean(unknown[:1], known)}",
                head=f"data set {name!r} has no split {unknown[0]!r} (",
            )


class MissingSplitsError(PicklableError, ValueError):
    """Data set ``name`` lacks ``train``, or both ``test`` and ``validation``, and no
    ``splits`` were given; ``known``: its splits, sorted; ``suggested``: a (train, test)
    pair of them to give.

    Examples:
        >>> print(MissingSplitsError("toy", ["train", "val"]))
        data set 'toy' has splits ['train', 'val']; load reads 'train' and one of ['test',
        'validation'] unless given the two to read: pass splits=(train, test), e.g.
        splits=('train', 'val')
    """

    def __init__(self, name: str, known: list[str]):
        self.name, self.known, self.suggested = name, known, _example(known)
        super().__init__(
            f"data set {name!r} has splits {known}; load reads 'train' and one of "
            f"{list(DEFAULT_TEST_SPLITS)} unless given the two to read: pass "
            f"splits=(train, test), e.g. splits={self.suggested!r}"
        )

    def told_by(self, reader: str, field: str, example: str) -> str:
        """This error as `reader` says it, which reads the splits its `field` names;
        `example`: `field` written with `suggested`.

        Examples:
            >>> error = MissingSplitsError("toy", ["train", "val"])
            >>> print(error.told_by("a bench", "dataset_splits", "{toy: [train, val]}"))
            data set 'toy' has splits ['train', 'val']; a bench trains on 'train' and tests on
            'test' (else 'validation') unless dataset_splits names the two, e.g.
            {toy: [train, val]}
        """
        return (
            f"data set {self.name!r} has splits {self.known}; {reader} trains on 'train' and "
            f"tests on 'test' (else 'validation') unless {field} names the two, e.g. {example}"
        )


def chosen_splits(
    name: str, splits: tuple[str, str] | None, infos: Mapping[str, Any]
) -> tuple[str, str]:
    """The (train, test) split specs `load` reads from data set `name`, whose splits are
    `infos` (a TFDS ``SplitDict``): `splits` if given (checked: known splits, not empty, no
    example in both or twice in one), else ``train`` and ``test`` (else ``validation``).

    Raises:
        ValueError: naming the data set, its splits and the splits to pass.
    """
    known = sorted(infos)
    if splits is None:
        test = next((split for split in DEFAULT_TEST_SPLITS if split in infos), None)
        if "train" in infos and test is not None:
            return "train", test
        raise MissingSplitsError(name, known)
    check_split_names(name, splits, known)
    spans = [read_spans(name, splits, spec, infos) for spec in splits]
    for role, spec, spanned in zip(("train", "test"), splits, spans, strict=True):
        if not sum(end - start for _, start, end in spanned):
            raise SplitsError(
                name,
                splits,
                f" reads no example for the {role} split ({spec!r}; its splits hold "
                f"{_sizes(infos)})",
            )
        for index, part in enumerate(spanned):
            if twice := _shared([part], spanned[index + 1 :]):
                raise SplitsError(
                    name,
                    splits,
                    f" reads the examples {twice} twice for the {role} split ({spec!r}); sum "
                    "disjoint parts, each example once",
                )
    if both := _shared(spans[0], spans[1]):
        split = both.split("[")[0]
        raise SplitsError(
            name,
            splits,
            f" reads the examples {both} both to train and to test; name disjoint parts, e.g. ",
            (f"{split}[:90%]", f"{split}[90%:]"),
        )
    return splits


def read_spans(
    name: str, splits: tuple[str, str], spec: str, infos: Mapping[str, Any]
) -> list[tuple[str, int, int]]:
    """(split, start, end) of each part of `spec`, one of data set `name`'s `splits`: the
    examples it reads, as TFDS counts a slice's examples."""
    import tensorflow_datasets as tfds

    try:
        parts = tfds.core.ReadInstruction.from_spec(spec).to_absolute(infos)
    except ValueError as error:  # a slice beyond the split's examples
        raise SplitsError(
            name, splits, f" holds {spec!r}: {error} (its splits hold {_sizes(infos)})"
        ) from None
    spans = []
    for part in parts:
        size = infos[part.splitname].num_examples
        start = 0 if part.from_ is None else part.from_
        spans.append((part.splitname, start, max(start, size if part.to is None else part.to)))
    return spans


def _shared(spans: list[tuple[str, int, int]], others: list[tuple[str, int, int]]) -> str | None:
    """The first examples both `spans` and `others` read, as ``split[start:end]``; None if
    they read none in common.

    Examples:
        >>> _shared([("train", 0, 4)], [("test", 0, 2), ("train", 3, 5)])
        'train[3:4]'
    """
    for split, start, end in spans:
        for other, other_start, other_end in others:
            first, stop = max(start, other_start), min(end, other_end)
            if other == split and first < stop:
                return f"{split}[{first}:{stop}]"
    return None


def _sizes(infos: Mapping[str, Any]) -> str:
    """Each split's number of examples, e.g. ``train: 5, test: 3``."""
    return ", ".join(f"{split}: {info.num_examples}" for split, info in sorted(infos.items()))


def _example(known: list[str]) -> tuple[str, str]:
    """A (train, test) pair of `known` splits to suggest: to train on, ``train`` or the first
    named like it (``training``), else the first not named like a held-out split, else the
    first not named like a test split (``validation``); to test on, the first named like a
    held-out split (``testing``, ``val``), else another one; halves of one split where
    there is no other.

    Examples:
        >>> _example(["train", "val"]), _example(["testing", "training"]), _example(["all"])
        (('train', 'val'), ('training', 'testing'), ('all[:90%]', 'all[90%:]'))
        >>> _example(["test", "validation"])
        ('validation', 'test')
    """
    held_out = [split for split in known if split.startswith(HELD_OUT)]
    kept = [split for split in known if split not in held_out]
    named_train = [split for split in known if split.startswith("train")]
    no_test = [split for split in known if not split.startswith("test")]
    train = (
        "train" if "train" in known else (named_train or kept or no_test or known or ["train"])[0]
    )
    others = [split for split in known if split != train]
    test = next((split for split in others if split in held_out), others[0] if others else None)
    return (train, test) if test else (f"{train}[:90%]", f"{train}[90%:]")
