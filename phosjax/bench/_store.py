"""Atomic writes and the Parquet results of a bench (see `phosjax.bench._layout`).

Every file is written to a hidden temporary file in its directory, then renamed over
its name with `os.replace`, so a reader (or a crash) never sees half a file. Readers
of ``results/`` skip hidden files; a writer killed mid-write leaves only its temporary
file, which the next run removes (`remove_stale_temporaries`).
"""

import errno
import functools
import hashlib
import json
import os
import pathlib
import re
import socket
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from phosjax._aside import aside_path
from phosjax.bench import _layout
from phosjax.bench._reading import UNREADABLE, part_hint, read_file

_T = TypeVar("_T")

if TYPE_CHECKING:  # not at run time: the morph loop writes with this module; _plan imports morph
    from phosjax.bench._plan import Plan

BASE_METRICS = ("loss", "task_loss", "accuracy", "grad_norm")
"""What every train row reports; test rows report ``loss`` and ``accuracy``."""
STEP_TIME = "step_time_s"

_TYPES = {
    "seed": pa.int64(),
    "batch_size": pa.int64(),
    "steps": pa.int64(),
    "warmup_steps": pa.int64(),
    "depth": pa.int64(),
    "step": pa.int64(),
    "optimizer": pa.string(),
    "compute_dtype": pa.string(),
    "lr_schedule": pa.string(),
    "width": pa.string(),
    "options": pa.string(),
    "split": pa.string(),
    _layout.DIVERGED: pa.bool_(),
    STEP_TIME: pa.float64(),
}


def _type(name: str) -> pa.DataType:
    if name in _TYPES:
        return _TYPES[name]
    if name in _layout.CELL_COLUMNS:
        return pa.string()
    if name in (*BASE_METRICS, _layout.REGULARIZER, _layout.LR):
        return pa.float32()
    if name.startswith((_layout.AUX_PREFIX, _layout.PATH_WEIGHT_PREFIX)):
        return pa.float32()
    return pa.float64()  # learning_rate, weight_decay, ..., knob/<selector>


def cells_schema(hparam_columns: Sequence[str]) -> pa.Schema:
    """The schema of ``cells.parquet``: the cell columns, then the hparam columns."""
    return pa.schema([(name, _type(name)) for name in (*_layout.CELL_COLUMNS, *hparam_columns)])


def results_schema(plan: "Plan") -> pa.Schema:
    """The schema of every part file: cell and hparam columns, step, split, diverged,
    metrics."""
    extra = sorted({name for group in plan.groups for name in group.metrics})
    names = [
        *_layout.CELL_COLUMNS,
        *plan.hparam_columns,
        *_layout.RESULT_KEYS,
        _layout.DIVERGED,
        *BASE_METRICS,
        *extra,
        STEP_TIME,
    ]
    return pa.schema([(name, _type(name)) for name in names])


TEMPORARY = ".tmp~"
"""The name prefix of a file being written: ``.tmp~<machine>~<pid>~<name>`` (`machine`)."""

STALE_AFTER_S = 3600.0
"""A temporary file this old is stale whoever wrote it (writes take milliseconds)."""


_TEMPORARY_NAME = re.compile(rf"{re.escape(TEMPORARY)}([^~]+)~(\d+)~(.+)|\.tmp-(\d+)-(.+)")
"""A temporary file's name: ``.tmp~<host>~<pid>~<name>``, or ``.tmp-<pid>-<name>`` as
writers named them before the host was added."""


def machine() -> str:
    """This process's machine, as a bench's temporary files and its processes' check of
    one --dir name it, and its lock files: its host name, and where the system tells them
    (Linux) digests of its boot and of its pid and mount namespaces
    (`_boot_and_namespaces`), so that two containers given one host name (each with pids
    and paths of its own) are two machines. `_layout.host_name` and
    `_layout.machine_digest` read its parts back.

    Examples:
      >>> machine().startswith(socket.gethostname()), "~" in machine()
      (True, False)
    """
    return f"{socket.gethostname()}{_boot_and_namespaces()}"


def is_this_machine(name: str) -> bool:
    """Whether the machine ``name`` a file names (`machine`) is this process's, for what
    is only shown (whether a lock's run is gone): a plain host name (a file written before
    machines had a digest, or on a system that tells none) is taken by its host name. Not
    for deleting a file: `remove_stale_temporaries` takes only ``machine()`` itself, since
    an older phosjax in another container of this host name writes that plain name too.

    Examples:
      >>> is_this_machine(machine()), is_this_machine(socket.gethostname())
      (True, True)
      >>> is_this_machine(f"{socket.gethostname()}#00000000"), is_this_machine("other")
      (False, False)
    """
    plain = _layout.machine_digest(name) == ""
    return name == machine() or (plain and name == socket.gethostname())


def of_this_boot(name: str) -> bool:
    """Whether the machine ``name`` a file names (`machine`) is of this boot of this host:
    its host name, and the first half of its digest this boot's (this process's machine,
    or a container sharing its host name). False where that is not told: a plain host
    name, a digest of one half (an older version's), or a system that tells no boot.

    Examples:
      >>> of_this_boot(machine()) == (_boot_and_namespaces() != "")
      True
      >>> of_this_boot(f"{machine()[:-8]}00000000") == of_this_boot(machine())
      True
      >>> of_this_boot(f"{socket.gethostname()}#00000000"), of_this_boot("other#0")
      (False, False)
    """
    host, digest = _layout.host_name(name), _layout.machine_digest(name)
    boot = _boot_and_namespaces()[1:9]
    return host == socket.gethostname() and len(digest) == 16 and boot == digest[:8] != ""


@functools.cache
def _boot_and_namespaces() -> str:
    """``#``, a digest of this boot, and one of this boot and of this process's pid and
    mount namespaces (``#1a2b3c4d5e6f7a8b``: `of_this_boot` reads the first); "" where
    the system does not tell them (no /proc: macOS). Read once: every file written names
    its machine (`_temporary`)."""
    try:
        boot = pathlib.Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        spaces = [os.readlink(f"/proc/self/ns/{space}") for space in ("pid", "mnt")]
    except OSError:
        return ""
    digest = lambda *parts: hashlib.sha256(" ".join(parts).encode()).hexdigest()[:8]
    return f"#{digest(boot)}{digest(boot, *spaces)}"


def _temporary(path: pathlib.Path) -> pathlib.Path:
    return path.with_name(f"{TEMPORARY}{machine()}~{os.getpid()}~{path.name}")


def is_temporary(name: str) -> bool:
    """Whether ``name`` is the name of a bench writer's temporary file (`TEMPORARY`); a
    user's ``.tmp_notes.txt`` is not.

    Examples:
      >>> is_temporary(".tmp~host~12~status.json"), is_temporary(".tmp_notes.txt")
      (True, False)
    """
    return _TEMPORARY_NAME.fullmatch(name) is not None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process
        return True
    return True


def remove_stale_temporaries(root: str | os.PathLike) -> list[pathlib.Path]:
    """Removes the temporary files that writers killed mid-write left under ``root``
    (their targets are intact: a write only ever replaces a target whole): those naming
    exactly this `machine` (not `is_this_machine`'s plain host name: another container's
    live file is never deleted) whose process is gone, and any older than `STALE_AFTER_S`.
    Returns them.
    Only plain files named as writers name them (`is_temporary`) are considered: a
    user's ``.tmp_notes.txt`` or ``.tmp_cache/`` is left alone.

    Examples:
      >>> import tempfile
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     write_text(pathlib.Path(tmp) / "a.txt", "whole")
      ...     remove_stale_temporaries(tmp)
      []
    """
    host, now, removed = machine(), time.time(), []
    for path in pathlib.Path(root).rglob(".tmp*"):
        match = _TEMPORARY_NAME.fullmatch(path.name)
        if match is None or path.is_symlink() or not path.is_file():  # not a writer's
            continue
        try:
            gone = match.group(1) == host and not _alive(int(match.group(2)))
            if gone or now - path.stat().st_mtime > STALE_AFTER_S:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:  # its writer renamed it meanwhile
            continue
    return removed


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically (temporary file, fsync, rename, fsync of
    the directory, so that the rename too survives a power cut). A write that fails (a
    full disk) removes its temporary file, leaves ``path`` as it was, and raises its
    `OSError` naming ``path``, where the system named no file or the temporary one.

    Examples:
      >>> import tempfile
      >>> with tempfile.TemporaryDirectory() as tmp:  # a folder named like the file
      ...     write_bytes(pathlib.Path(tmp), b"")  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      IsADirectoryError: [Errno 21] Is a directory: '...'
    """
    path = pathlib.Path(path)
    temporary = _temporary(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(temporary, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:  # a full disk, Ctrl-C: its part written is no file's, and goes
            temporary.unlink(missing_ok=True)
            raise
    except OSError as error:  # ENOSPC from a write names no file
        if error.errno is None or error.filename not in (None, str(temporary)):
            raise
        raise naming(error, path) from error
    _sync_directory(path.parent)


NO_ROOM = {
    errno.ENOSPC: "free space on its disk",
    errno.EDQUOT: "free space in your disk quota",
    errno.EFBIG: (  # the process's limit, or the file system's own (FAT32's 4 GiB)
        "raise the file size limit (ulimit -f), or use a file system allowing larger files "
        "(FAT32 stops at 4 GiB)"
    ),
}
"""The errors of a write that found no room, with what makes room."""

_LET_USE = "let this user read and write it (its permissions, those of its folder)"
NOT_WRITABLE = {
    errno.EACCES: _LET_USE,
    errno.EPERM: _LET_USE,
    errno.EROFS: "mount its disk read-write (it is read-only)",
}
"""The errors of a write to a folder one may not write (its permissions, a read-only
file system: a bind mount, an archive), with what allows it; its permissions refuse a
read (of a file, a folder listed) with the same errors, so their words name both."""
NOT_WRITTEN = NO_ROOM | NOT_WRITABLE
"""The errors of a write that found no room or was refused, with what makes room or
allows it: each file is written whole, so a command they stop loses nothing written."""


def naming(error: OSError, path: str | os.PathLike) -> OSError:
    """``error``, of a write to ``path`` (a file, or a store's URI) that named no file (a
    full disk's), naming it."""
    return type(error)(error.errno, error.strerror, str(path))


def move_aside(
    path: pathlib.Path, what: str, refused: type[Exception], option: str = "--dir"
) -> pathlib.Path:
    """Moves ``path`` (``what`` it holds) to its `aside_path`, and returns that (the bench's
    ``--force``, morph's ``--overwrite``, the earlier files in speed's ``--out``); a move
    the system refuses is a ``refused`` naming ``path``, what allows it, and ``option``,
    the command's option to pick another folder (it was a traceback).

    Examples:
      >>> import tempfile
      >>> missing = pathlib.Path(tempfile.mkdtemp()) / "b"
      >>> move_aside(missing, "the old bench", ValueError)
      Traceback (most recent call last):
      ...
      ValueError: cannot move the old bench '.../b' aside to '.../b.old-...': No such
      file or directory; move it aside yourself, or pick another --dir.
    """
    target = aside_path(path)
    try:
        os.replace(path, target)
    except OSError as error:
        allows = NOT_WRITTEN.get(error.errno or 0, "move it aside yourself")
        raise refused(
            f"cannot move {what} {str(path)!r} aside to {str(target)!r}: "
            f"{error.strerror or error}; {allows}, or pick another {option}."
        ) from error
    return target


def _sync_directory(folder: pathlib.Path) -> None:
    """fsyncs ``folder``'s entries where the system allows it (POSIX; not Windows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:  # a file system that cannot sync a directory
        pass
    finally:
        os.close(descriptor)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` to ``path`` atomically."""
    write_bytes(path, text.encode())


def write_json(path: str | os.PathLike, value: Any) -> None:
    """Writes ``value`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(value, indent=1, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(pathlib.Path(path).read_text())


def as_table(frame: pd.DataFrame, schema: pa.Schema, measured: Collection[str] = ()) -> pa.Table:
    """``frame`` cast to ``schema``: a column it lacks is null, and so is a NaN, except
    in the ``measured`` columns, where a NaN is a value that was measured (a diverged
    run's loss) and stays NaN.

    Examples:
      >>> schema = pa.schema([("loss", pa.float32()), ("width", pa.float64())])
      >>> table = as_table(pd.DataFrame({"loss": [np.nan], "width": [np.nan]}), schema, ["loss"])
      >>> table.column("loss").null_count, table.column("width").null_count
      (0, 1)
    """
    unknown = sorted(set(frame.columns) - set(schema.names))
    if unknown:
        raise ValueError(f"Columns {unknown} are not in the bench's schema {schema.names}.")
    columns = [
        pa.array(np.asarray(frame[f.name]), f.type, from_pandas=f.name not in measured)
        if f.name in frame
        else pa.nulls(len(frame), f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def write_table(
    path: str | os.PathLike, table: pd.DataFrame | pa.Table, schema: pa.Schema | None = None
) -> None:
    """Writes ``table`` as Parquet atomically (`write_bytes`); a frame is first cast to
    ``schema`` by `as_table` (its NaNs null), or converted as it is when ``schema`` is None,
    its text as ``string`` (pandas 3 would make it ``large_string``).

    Examples:
      >>> import tempfile
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     write_table(pathlib.Path(tmp, "p.parquet"), pd.DataFrame({"group_id": ["mlp-1"]}))
      ...     pq.read_schema(pathlib.Path(tmp, "p.parquet")).field("group_id").type
      DataType(string)
    """
    if isinstance(table, pd.DataFrame) and schema is None:
        table = pa.Table.from_pandas(table, preserve_index=False)
        table = table.cast(plain_strings(table.schema))
    elif isinstance(table, pd.DataFrame):
        table = as_table(table, schema)
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer)
    write_bytes(path, buffer.getvalue().to_pybytes())


def plain_strings(schema: pa.Schema) -> pa.Schema:
    """``schema`` with its ``large_string`` columns as ``string``, as the bench documents
    and its results hold text (pandas 3 writes ``large_string``: the same text).

    Examples:
      >>> plain_strings(pa.schema([("split", pa.large_string())])).field("split").type
      DataType(string)
    """
    fields = [
        field.with_type(pa.string()) if pa.types.is_large_string(field.type) else field
        for field in schema
    ]
    return pa.schema(fields, metadata=schema.metadata)


def part_path(root: pathlib.Path, group_key: str, first_step: int) -> pathlib.Path:
    """``results/part-<group_key>-<first step:09d>.parquet``."""
    return root / _layout.RESULTS / f"part-{group_key}-{first_step:09d}.parquet"


def _parts(root: pathlib.Path, group_key: str) -> list[tuple[int, pathlib.Path]]:
    """The group's part files with their first steps, in step order."""
    return [
        (int(match["step"]), path)
        for path in _layout.part_files(root / _layout.RESULTS)
        if (match := _layout.PART.fullmatch(path.name)) and match["group"] == group_key
    ]


def drop_parts_after(root: pathlib.Path, group_key: str, step: int) -> int:
    """Deletes the group's part files holding steps after ``step``; how many it deleted.

    Parts end where checkpoints are saved, so after restoring the checkpoint of
    ``step`` these are exactly the rows that will be trained again.
    """
    dropped = 0
    for first, path in _parts(root, group_key):
        if first > step:
            path.unlink()
            dropped += 1
    return dropped


def kept_schema(
    root: pathlib.Path, schema: pa.Schema, held: Mapping[pathlib.Path, pa.Schema] | None = None
) -> pa.Schema:
    """``schema``, then the columns of the part files under ``root`` that it lacks (an aux
    loss a model's changed code no longer reports, a column of an older phosjax), in the
    order the parts hold them: the columns a bench's parts keep, whatever it trains now.
    ``held``: the parts' schemas, read already (`part_schemas`; None: read here).

    Raises:
      BrokenFileError: a part file cannot be read (it names the file and what to do).

    Examples:
      >>> import tempfile
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     root = pathlib.Path(tmp)
      ...     write_table(part_path(root, "g", 1), pa.table({"step": [1], "aux/a": [0.5]}))
      ...     kept_schema(root, pa.schema([("step", pa.int64())])).names
      ['step', 'aux/a']
    """
    return _kept(schema, (part_schemas(root) if held is None else held).values())


def part_schemas(root: pathlib.Path) -> dict[pathlib.Path, pa.Schema]:
    """The schema of each part file under ``root``, each read once."""
    return {
        path: _read_part(path, pq.read_schema)
        for path in _layout.part_files(root / _layout.RESULTS)
    }


def _kept(schema: pa.Schema, held: Iterable[pa.Schema]) -> pa.Schema:
    """`kept_schema` of parts holding the schemas ``held``."""
    fields = {field.name: field for field in schema}
    for part in held:
        for field in part:
            fields.setdefault(field.name, field)
    return pa.schema(list(fields.values()))


def widen_parts(
    root: pathlib.Path,
    schema: pa.Schema,
    cells: pd.DataFrame | None = None,
    held: Mapping[pathlib.Path, pa.Schema] | None = None,
) -> int:
    """Rewrites every part file lacking columns of ``schema``, or of another part
    (`kept_schema`: no column written is dropped); how many. In a part rewritten, a
    column of ``cells`` (the plan's rows, as ``cells.parquet``: cell and hparam columns)
    holds each row's cell's value, and another column it lacks is null. ``held``: the
    parts' schemas, read already (`part_schemas`; None: read here).

    When models with new aux losses or path weights join a bench, older parts gain
    the new columns, so ``pandas.read_parquet`` of the directory keeps them all; the
    parts of a bench of an older phosjax gain its new hparam columns (``compute_dtype``)
    as their cells trained, not null, and hold its hparam columns as ``cells`` does (an
    adam cell's ``momentum`` NaN, not the 0.9 of phosjax before 2026-12-04).

    Raises:
      BrokenFileError: a part file cannot be read (it names the file and what to do).
    """
    held = part_schemas(root) if held is None else held
    rewritten, schema = 0, _kept(schema, held.values())
    by_cell = pd.DataFrame() if cells is None else cells.set_index("cell_id")
    for path, part in held.items():
        if part.names != schema.names:
            table = _read_part(path, pq.read_table)
            columns = [_widened(table, field, by_cell) for field in schema]
            write_table(path, pa.Table.from_arrays(columns, schema=schema))
            rewritten += 1
    return rewritten


def _widened(table: pa.Table, field: pa.Field, by_cell: pd.DataFrame) -> pa.ChunkedArray:
    """``table``'s column ``field`` in its type (null where it lacks it), but a column of
    ``by_cell`` (indexed by cell id), where each row of a cell there takes that cell's
    value: one an older phosjax did not write (``compute_dtype``), or wrote otherwise
    (``momentum`` 0.9 of an adam cell, NaN now)."""
    if field.name in table.column_names:
        own = table.column(field.name).cast(field.type)
    else:
        own = pa.chunked_array([pa.nulls(len(table), field.type)])
    if field.name not in by_cell or "cell_id" not in table.column_names:
        return own
    cell_ids = table.column("cell_id").to_pandas()
    values = cell_ids.map(by_cell[field.name]).where(cell_ids.isin(by_cell.index), own.to_pandas())
    return pa.chunked_array([pa.array(np.asarray(values), field.type, from_pandas=True)])


def _read_part(path: pathlib.Path, read: Callable[[pathlib.Path], _T]) -> _T:
    """``read(path)`` of a part file; a damaged one is a `BrokenFileError` naming it."""
    return read_file(path, read, repr(str(path)), part_hint(path.name))


def read_parts(parts: Sequence[pathlib.Path]) -> pd.DataFrame:
    """The part files ``parts`` as one frame, as ``pandas.read_parquet`` reads them (an
    empty frame when there are none).

    Raises:
      BrokenFileError: a part cannot be read (it names the first such file).
    """
    if not parts:
        return pd.DataFrame()
    try:
        return pd.read_parquet(list(parts))
    except UNREADABLE:
        for path in parts:  # which one: its own error, named
            _read_part(path, pd.read_parquet)
        raise
