"""`read_file`: one bench file read, a damaged one named in a `BrokenFileError`, with
what to do about it (`hint`).

The bench's own reads (``bench.json``, the profile) and the viewer's share it, so a
damaged file is named the same way wherever it is found. No jax here: the viewer and
the profile import it.
"""

import contextlib
import errno
import pathlib
import re
import shlex
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads

from phosjax.bench import _layout
from phosjax.bench._errors import BrokenFileError
from phosjax.bench._usage import as_argument

UNREADABLE = (OSError, ValueError, pa.ArrowException)
"""What reading a damaged, vanished or foreign file raises: the OS's errors, the
`ValueError` of `json`, of pandas and of a bad encoding (`UnicodeDecodeError`), and
pyarrow's own errors (not all of them are one of the others)."""

_T = TypeVar("_T")

WRITTEN_WHOLE = "phosjax writes it whole, so something else changed it"
"""Why a bench file that cannot be read is damaged: the start of every hint."""
MARKER_HINT = (
    f"{WRITTEN_WHOLE}; restore it from a backup, or move the directory aside and start a new bench."
)
STATUS_HINT = (
    f"{WRITTEN_WHOLE}; restore it from a backup, or delete it: the next run finds each group's "
    "progress in its checkpoints, but not the strategy `auto` chose for a group and its "
    "timings, which only this file keeps: an unfinished group times the strategies again, a "
    "finished one is recorded as trained by `auto`, its choice and timings lost."
)
PROFILE_HINT = (
    f"{WRITTEN_WHOLE}; restore it from a backup, or delete it: it holds only the profile, which "
    "the results and checkpoints do not need."
)
ENV_HINT = (
    f"{WRITTEN_WHOLE}; restore it from a backup, or delete it: it holds only what ran the bench "
    "(package versions, devices, host), which the results and checkpoints do not need; "
    "continuing the bench (python -m phosjax.bench.new --dir DIR) writes it again."
)
CONFIG_HINT = (
    f"{WRITTEN_WHOLE}; restore it from a backup, or write the bench's config there again "
    "(`python -m phosjax.bench.new --config FILE --print_config > DIR/config.yaml`, FILE the "
    "config the bench was started with, with the models add_models added to its models): "
    "no run continues the bench, nor adds models to it, until it reads."
)
LET_READ = "let this user read it (its permissions, those of its folder)"
"""What allows a read the system refused (`READ_REFUSED`)."""
READ_REFUSED = frozenset({errno.EACCES, errno.EPERM})
"""The errors of a read the system refused: this user's permissions (or its folder's)."""
REFUSED = f"the system would not read it, whatever it holds: {LET_READ}, or see to the disk"
"""What to do where the system would not read a bench file: it need not be damaged."""
_PLANNED_HINT = (
    f"{WRITTEN_WHOLE}; delete it, then continue the bench (python -m phosjax.bench.new --dir "
    "DIR), which writes it again."
)
_GRAPH_HINT = (
    f"{WRITTEN_WHOLE}; delete it and the model's blurb (blurbs/ holds it under the same "
    "name), then continue the bench (python -m phosjax.bench.new --dir DIR), which writes "
    "them again (a finished bench holding the blurb writes no graph)."
)


def not_an_object(data: object, hint: str) -> str:
    """Why a bench JSON file that parsed to ``data`` (no object) is damaged, and ``hint``.

    Examples:
      >>> not_an_object([1], "delete it")
      'holds a list, not the JSON object phosjax writes there; delete it'
      >>> [not_an_object(d, "")[6:15] for d in (None, "x", 2.5, True)]
      ['null, not', 'a string,', 'a number,', 'true, not']
    """
    return f"holds {json_kind(data)}, not the JSON object phosjax writes there; {hint}"


def json_kind(data: object) -> str:
    """What JSON calls the value ``json.load`` read as ``data``: null, true, false, a
    number, a string, a list or an object.

    Examples:
      >>> json_kind({}), json_kind([]), json_kind(False)
      ('an object', 'a list', 'false')
    """
    if data is None:
        return "null"
    if isinstance(data, bool):
        return str(data).lower()
    if isinstance(data, int | float):
        return "a number"
    if isinstance(data, dict):
        return "an object"
    return "a string" if isinstance(data, str) else f"a {type(data).__name__}"


def part_hint(name: str) -> str:
    """What to do about the damaged result part named ``name``: its rows are trained again
    from its group's checkpoint before its first step (a group keeps its two newest, so the
    one before its newest part) or, for its first part, from the start.

    Examples:
      >>> print(part_hint("part-mlp-1a2b-000000007.parquet"))  # doctest: +NORMALIZE_WHITESPACE
      phosjax writes it whole, so something else changed it. Its rows are trained again from
      its group's checkpoint of step 6 where the bench keeps it (checkpoints/mlp-1a2b/6: a
      group keeps its two newest, so the one before its newest part): move the part out of the
      bench, and the checkpoints of later steps out of checkpoints/mlp-1a2b, delete the
      status file(s) (status*.json: the next run finds each group's progress in its
      checkpoints) and continue the bench (python -m phosjax.bench.new --dir DIR). Else
      restore it from a backup; or move it out of the bench (its rows are then missing) and
      train the bench again in a new --dir to have them.
      >>> part_hint("part-mlp-1a2b-000000001.parquet").split(": ")[0][55:]
      'Its rows are trained again from the start'
    """
    lost = (
        "restore it from a backup; or move it out of the bench (its rows are then missing) and "
        "train the bench again in a new --dir to have them."
    )
    match = _layout.PART.fullmatch(name)
    if match is None:
        return f"{WRITTEN_WHOLE}; {lost}"
    checkpoints, before = f"{_layout.CHECKPOINTS}/{match['group']}", int(match["step"]) - 1
    start = (
        f"its group's checkpoint of step {before} where the bench keeps it ({checkpoints}/"
        f"{before}: a group keeps its two newest, so the one before its newest part)"
        if before
        else "the start"
    )
    return (
        f"{WRITTEN_WHOLE}. Its rows are trained again from {start}: move the part out of the "
        f"bench, and the checkpoints of later steps out of {checkpoints}, delete the status "
        "file(s) (status*.json: the next run finds each group's progress in its checkpoints) "
        "and continue the bench (python -m phosjax.bench.new --dir DIR). Else "
        f"{lost}"
    )


def in_dir(message: str, directory: str) -> str:
    """``message``, a `BrokenFileError`'s, with its hint's placeholder ``DIR`` (the bench
    directory) written as the bench ``directory`` is in a command line.

    Examples:
      >>> in_dir("continue it (python -m phosjax.bench.new --dir DIR)", "runs/my b")
      "continue it (python -m phosjax.bench.new --dir 'runs/my b')"
    """
    return re.sub(r"\bDIR\b", lambda _: shlex.quote(as_argument(directory)), message)


def hint(relative: str) -> str:
    """What to do about the damaged file ``relative`` of a bench ("" where nothing is said).

    Examples:
      >>> hint("status.p1of2.json") == STATUS_HINT, hint("results/part-g-000000001.parquet")[:40]
      (True, 'phosjax writes it whole, so something el')
      >>> hint("env.json") == ENV_HINT, hint("config.yaml") == CONFIG_HINT, hint("x.txt")
      (True, True, '')
    """
    folder = relative.partition("/")[0] if "/" in relative else None
    if relative == _layout.MARKER:
        return MARKER_HINT
    if _layout.per_process_names(_layout.STATUS, [relative]):
        return STATUS_HINT
    if folder == _layout.RESULTS:
        return part_hint(relative.partition("/")[2])
    if folder == _layout.PROFILE:
        return PROFILE_HINT
    if relative == _layout.ENV:
        return ENV_HINT
    if relative == _layout.CONFIG:
        return CONFIG_HINT
    if folder == _layout.GRAPHS:
        return _GRAPH_HINT
    if relative == _layout.CELLS or folder == _layout.BLURBS:
        return _PLANNED_HINT
    return ""


def read_parquet(path: pathlib.Path) -> pd.DataFrame:
    """The Parquet file ``path`` as a frame, read through one open file: a run that
    replaces it meanwhile (the profile, each segment) leaves this read the version it
    opened, where pyarrow, given the path, opens it twice and may read the footer of one
    version with the pages of the next (``OSError: Unexpected end of stream``)."""
    with open(path, "rb") as file:
        return pd.read_parquet(file)


def _opened(path: pathlib.Path) -> pa.NativeFile:
    """``path`` opened for pyarrow to read (without the GIL, as it reads a path)."""
    return pa.OSFile(str(path))


_OPEN_AT_ONCE = 64
"""The most files one `read_parquets` holds open at once."""
_READS_AT_ONCE = threading.BoundedSemaphore(4)
"""How many `read_parquets` hold files open at once, across threads (the viewer's
requests): together at most 256 files (a process may often open 1,024)."""


def read_parquets(
    paths: Sequence[pathlib.Path],
    schema: pa.Schema,
    columns: Sequence[str],
    filter: pads.Expression | None = None,
    index: str | None = None,
) -> pa.Table:
    """The ``columns`` of the rows of the Parquet files ``paths`` (those ``filter`` keeps),
    read in ``schema`` as one dataset, in their order, each through one open file (as
    `read_parquet`; pyarrow, given paths, opens a file twice where it filters); ``index``
    names a column added last, of the index in ``paths`` of each row's file.

    Examples:
      >>> import tempfile
      >>> import pyarrow.parquet as pq
      >>> folder = pathlib.Path(tempfile.mkdtemp())
      >>> for n in (1, 2):
      ...     pq.write_table(pa.table({"step": list(range(n))}), folder / f"{n}.parquet")
      >>> paths = [folder / "2.parquet", folder / "1.parquet"]
      >>> read_parquets(paths, pa.schema([("step", pa.int64())]), ["step"], index="i").to_pydict()
      {'step': [0, 1, 0], 'i': [0, 0, 1]}
    """
    parquet = pads.ParquetFileFormat()
    full = schema.append(pa.field(index, pa.int64())) if index else schema
    tables = []
    for start in range(0, max(len(paths), 1), _OPEN_AT_ONCE):
        with _READS_AT_ONCE, contextlib.ExitStack() as files:
            fragments = [
                parquet.make_fragment(
                    files.enter_context(_opened(path)),
                    partition_expression=pads.field(index) == i if index else None,
                )
                for i, path in enumerate(paths[start : start + _OPEN_AT_ONCE], start)
            ]
            dataset = pads.FileSystemDataset(fragments, full, parquet)
            read = [*columns, index] if index else list(columns)
            tables.append(dataset.to_table(columns=read, filter=filter))
    return pa.concat_tables(tables)


def read_file(
    path: pathlib.Path, read: Callable[[pathlib.Path], _T], name: str, hint: str = ""
) -> _T:
    """``read(path)``; what a damaged file raises (`UNREADABLE`) becomes a
    `BrokenFileError`: ``cannot read <name>: <error type>: <error>[; <hint>]``, where
    the system would not read it (an error with an errno: its permissions, the disk)
    `REFUSED` in place of ``hint``, and nothing for a file gone since it was found; on one
    line, where the error's own words span several (pyarrow's on a damaged page).

    Args:
      path: the file.
      read: what reads it (``pd.read_parquet``, a JSON reader).
      name: how the message names the file (its path, or its name in the bench).
      hint: what to do about it, appended to the message.

    Examples:
      >>> import json, tempfile
      >>> with tempfile.TemporaryDirectory() as folder:
      ...     path = pathlib.Path(folder, "status.json")
      ...     _ = path.write_text("{")
      ...     read_file(path, lambda p: json.loads(p.read_text()), "status.json", "delete it")
      Traceback (most recent call last):
      phosjax.bench._errors.BrokenFileError: cannot read status.json: JSONDecodeError:
      Expecting property name enclosed in double quotes: line 1 column 2 (char 1); delete it
    """
    try:
        return read(path)
    except UNREADABLE as error:
        if isinstance(error, OSError) and error.errno is not None:  # not about its bytes
            hint = "" if isinstance(error, FileNotFoundError) else REFUSED
        tail = f"; {hint}" if hint else ""
        said = re.sub(r"\s*\n\s*", " ", str(error).strip())  # pyarrow's may span lines
        raise BrokenFileError(
            f"cannot read {name}: {type(error).__name__}: {said}{tail}"
        ) from error
