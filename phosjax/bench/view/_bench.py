"""Reading a bench directory safely: the files `_layout` names, and nothing outside it."""

import contextlib
import copy
import dataclasses
import hashlib
import json
import math
import os
import pathlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pyarrow.types as pat

from phosjax._listing import listing
from phosjax.bench import _layout
from phosjax.bench._errors import BrokenFileError
from phosjax.bench._reading import (
    STATUS_HINT,
    UNREADABLE,
    hint,
    read_file,
    read_parquet,
    read_parquets,
)
from phosjax.bench._starting import gone, starting_runs_gone, unrelated_names
from phosjax.bench._store import plain_strings


class NotABenchError(ValueError):
    """A directory that holds no bench (no ``bench.json`` marker).

    Examples:
      >>> import tempfile
      >>> from phosjax.bench.view import make_server
      >>> with tempfile.TemporaryDirectory() as folder:
      ...     _ = (pathlib.Path(folder) / "notes.txt").write_text("mine")
      ...     make_server(folder, port=0)
      Traceback (most recent call last):
      phosjax.bench.view._bench.NotABenchError: ... is not a bench: it has no bench.json, ...
    """


class NotStartedError(NotABenchError):
    """A directory that holds no bench yet but may (`not_started` says why): the server
    answers its requests for the bench's data with 503 until a bench starts there.

    Examples:
      >>> import tempfile
      >>> from phosjax.bench.view import make_server
      >>> server = make_server(tempfile.mkdtemp(), port=0)
      >>> server.bench
      Traceback (most recent call last):
      phosjax.bench.view._bench.NotStartedError: waiting for the bench to start in '...' (no
      bench.json yet)
      >>> server.server_close()
    """


class OutsideBenchError(PermissionError):
    """A path that would leave the bench directory (``..``, absolute, a symlink out); the
    server answers such a request with 403.

    Examples:
      >>> import pathlib, tempfile
      >>> bench = pathlib.Path(tempfile.mkdtemp())
      >>> _ = (bench / "bench.json").write_text('{"format": 1}')
      >>> BenchFiles(bench).path("../secrets.json")
      Traceback (most recent call last):
      phosjax.bench.view._bench.OutsideBenchError: '../secrets.json' is not a path inside
      the bench.
    """


def vanished(error: Exception) -> bool:
    """Whether ``error`` is a file found, then gone before it was read (a resume drops
    the part files it trains again; the viewer reads on), not a broken one.

    Examples:
      >>> vanished(FileNotFoundError("part-g-000000010.parquet")), vanished(ValueError())
      (True, False)
    """
    return isinstance(error, FileNotFoundError) or isinstance(error.__cause__, FileNotFoundError)


_T = TypeVar("_T")
_WATCHED = {
    "bench": ("",),
    "results": (_layout.RESULTS,),
    "profile": (_layout.PROFILE,),
    "models": (_layout.BLURBS, _layout.GRAPHS),
    "morph": (_layout.MORPH,),
}
"""The folders whose files `BenchFiles.versions` watches, by the part of the page they
feed (``""``: the bench's own; not its checkpoints, which the viewer never reads)."""
_PANDAS_INDEX = re.compile(r"__index_level_\d+__")
"""The column pandas writes an unnamed index to (a part a user rewrote with ``to_parquet``)."""


def _is_morph_run(directory: pathlib.Path) -> bool:
    """Whether ``directory`` is the run directory of ``python -m phosjax.morph`` (its rows
    written), not merely a folder holding a subfolder named ``morph``."""
    return (directory / _layout.MORPH_ITERATIONS).is_file()


def holds_a_run(directory: pathlib.Path) -> bool:
    """Whether ``directory`` is a bench or a morph run directory."""
    return _layout.is_bench(directory) or _is_morph_run(directory)


_LISTED = 10
"""The most names an error message lists (a bench may have thousands of cells)."""


def listed(names: Sequence[str]) -> str:
    """``names`` as a list for a message, cut after `_LISTED` with a count of the rest.

    Examples:
      >>> listed(["a", "b"]), listed([str(i) for i in range(12)])
      ("['a', 'b']", "['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] and 2 more")
    """
    return listing(names, _LISTED, as_list=True)


def not_started(directory: str | pathlib.Path) -> str | None:
    """Why the viewer waits for a bench in ``directory``, one may start there (no such
    directory yet: a bench makes its ``--dir``, the benches of a name close to its named
    as a typo's likely intended ones; or one holding nothing but what a bench writes
    before its ``bench.json``); None where it holds a bench or a morph run.

    Raises:
      NotABenchError: none can start there: a file, a folder inside a bench or holding
        benches, one holding files no bench writes before its marker (a bench starts
        only in a new or empty folder; a bench's own files without its lock, see
        `phosjax.bench._starting.unrelated_names`), one it cannot list, one under a
        file, or a link to nothing.

    Examples:
      >>> import tempfile
      >>> folder = pathlib.Path(tempfile.mkdtemp())
      >>> not_started(folder / "new")
      "waiting for the bench to start in '.../new' (no such directory yet)"
      >>> _ = (folder / "notes.txt").write_text("mine")
      >>> not_started(folder)
      Traceback (most recent call last):
      phosjax.bench.view._bench.NotABenchError: '...' is not a bench: it has no bench.json,
      and holds ['notes.txt'], which no bench writes before its bench.json: a bench starts
      only in a new or empty folder. ...
    """
    given = pathlib.Path(directory)
    if holds_a_run(given):
        return None
    above = next((p for p in given.absolute().parents if p.exists()), None)
    if given.is_symlink() and not given.exists():  # as `python -m phosjax.bench.new`
        raise NotABenchError(
            f"{str(given)!r} is not a bench: it is a link to {os.readlink(given)!r}, which "
            "does not exist; no bench can start there."
        )
    if not given.exists() and above is not None and not above.is_dir():
        raise NotABenchError(
            f"{str(given)!r} is not a bench: no such directory, and none can be made: "
            f"{str(above)!r} is a file."
        )
    where = f"waiting for the bench to start in {str(given.resolve())!r}"
    inside = _layout.enclosing_bench(given, holds_a_run) is not None
    if not given.exists() and not inside:
        return f"{where} ({_layout.no_such_directory(given, holds_a_run, 'yet')})"
    if inside or not given.is_dir() or _layout.benches_inside(given, holds_a_run):
        raise NotABenchError(_layout.not_a_bench(given, holds_a_run, use="view"))
    try:
        unrelated, unlocked = unrelated_names(given)
    except OSError as error:  # unreadable: none can start there for this viewer to see
        raise NotABenchError(
            f"{str(given)!r} is not a bench: it has no {_layout.MARKER}, and cannot be "
            f"listed ({error.strerror or error})."
        ) from error
    if unrelated:
        lock, marker = f"it holds its {_layout.LOCK}, and there is none", _layout.MARKER
        before = lock if unlocked else f"its {marker}"
        raise NotABenchError(
            f"{str(given)!r} is not a bench: it has no {_layout.MARKER}, and holds "
            f"{listed(unrelated)}, which no bench writes before {before}: a bench starts "
            "only in a new or empty folder. Make one with `python -m phosjax.bench.new "
            "--config CONFIG.yaml --dir DIR`."
        )
    stopped = starting_runs_gone(given)
    return f"{where} (no {_layout.MARKER} yet{'' if stopped is None else f'; {stopped}'})"


def hidden(name: str) -> bool:
    """Whether the viewer leaves the file ``name`` out of a folder it lists: a hidden one,
    a writer's temporary among them (``.tmp~<host>~<pid>~iterations.parquet``, half
    written, or left by a run killed as it wrote), a ``.DS_Store``.

    Examples:
      >>> hidden(".tmp~host~12~iterations.parquet"), hidden("iterations.parquet")
      (True, False)
    """
    return name.startswith(".")


_Version = tuple[str, int, int, int]
"""A version of a file: its name, inode, size and modification time (ns)."""


def _version(path: pathlib.Path) -> _Version:
    stat = path.stat()
    return path.name, stat.st_ino, stat.st_size, stat.st_mtime_ns


def _nullable_floats(type_: pa.DataType) -> pd.ArrowDtype | None:
    """Arrow-backed floats keep a null apart from a NaN (numpy floats make both NaN)."""
    return pd.ArrowDtype(type_) if pat.is_floating(type_) else None


def digest(value: Any) -> str:
    """16 hex digits of the SHA-256 of ``repr(value)``.

    Examples:
      >>> digest([1, 2]) == digest([1, 2]) != digest([2, 1])
      True
    """
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


class BenchFiles:
    """Read access to one bench directory; every path is checked to stay inside it.

    Args:
      directory: a bench directory (`phosjax.bench._layout.is_bench`), or the run
        directory of ``python -m phosjax.morph`` (it holds ``morph/iterations.parquet``, no
        plan).

    Raises:
      NotABenchError: when ``directory`` holds no bench.

    Examples:
      >>> import tempfile
      >>> with tempfile.TemporaryDirectory() as empty:
      ...     BenchFiles(empty)
      Traceback (most recent call last):
      ...
      phosjax.bench.view._bench.NotABenchError: ... is not a bench: it has no bench.json. ...
    """

    def __init__(self, directory: str | pathlib.Path) -> None:
        _layout.check_directory(directory)
        given = pathlib.Path(directory)
        if not holds_a_run(given):
            raise NotABenchError(_layout.not_a_bench(given, holds_a_run, use="view"))
        self.root = given.resolve()
        self.name = self.root.name
        self._listing: tuple[list[pathlib.Path], list[_Version], pa.Schema | None] | None = None
        self._plan: pd.DataFrame | None = None
        self._keeps_listing = False
        # Read once per version of each part file, shared with its snapshots.
        self._schemas: dict[_Version, pa.Schema] = {}
        self._alike: dict[Any, Any] = {}  # the cached values, one of each alike (`_alike`)
        self._ends: list[_Ends] = []  # the parts' last rows, as last read (at most one)
        self._per_group: OrderedDict[Any, _Held] = OrderedDict()  # `per_group`'s, oldest first
        self._cache_lock = threading.RLock()  # held while reading (`_per_version`)

    def snapshot(self) -> "BenchFiles":
        """This bench read as one snapshot: its plan read once and its part files listed
        once, at the first read of each, and every later read of the copy reads those (a
        request's answer then holds no rows of a part one of its reads saw and another did
        not, nor of a cell one of its reads had in the plan and another did not). A part
        that vanishes meanwhile (a resume drops those it trains again) fails the read
        (`vanished`): take a new snapshot and read again.

        Examples:
          >>> import tempfile
          >>> bench = pathlib.Path(tempfile.mkdtemp())
          >>> _ = (bench / "bench.json").write_text('{"format": 1}')
          >>> BenchFiles(bench).snapshot().metrics()
          []
        """
        copied = copy.copy(self)
        copied._listing, copied._plan, copied._keeps_listing = None, None, True
        return copied

    def path(self, relative: str) -> pathlib.Path:
        """``root / relative``, refused when it is absolute, climbs or links out of the bench."""
        parts = pathlib.PurePosixPath(relative).parts
        if not parts or relative.startswith(("/", "\\")) or ".." in parts or "\\" in relative:
            raise OutsideBenchError(f"{relative!r} is not a path inside the bench.")
        resolved = (self.root / relative).resolve()
        if not resolved.is_relative_to(self.root):
            raise OutsideBenchError(f"{relative!r} leads outside the bench (a symlink?).")
        return resolved

    def named(self, folder: str, name: str, suffix: str) -> pathlib.Path:
        """``folder/<name><suffix>`` for a plain file name (`_layout.PLAIN_NAME`: one
        that any model the runner takes gives, ``my net-1a2b`` too); a ``name`` that is no
        str (a model id left null in a plan edited by hand) names no file either."""
        if not isinstance(name, str) or not _layout.PLAIN_NAME.fullmatch(name):
            raise OutsideBenchError(f"{name!r} is not a plain file name.")
        return self.path(f"{folder}/{name}{suffix}")

    def _read(self, path: pathlib.Path, read: Callable[[pathlib.Path], _T]) -> _T:
        """``read(path)``; an error raised by a broken file becomes one that names it and
        says what to do (`hint`)."""
        relative = path.relative_to(self.root).as_posix()
        return read_file(path, read, relative, hint(relative))

    def json(self, relative: str) -> Any:
        """The parsed JSON file, or None when it does not exist.

        Examples:
          >>> import tempfile
          >>> root = pathlib.Path(tempfile.mkdtemp())
          >>> _ = (root / "bench.json").write_text('{"format": 1}')
          >>> BenchFiles(root).json("bench.json"), BenchFiles(root).json("status.json")
          ({'format': 1}, None)
        """
        path = self.path(relative)
        return self._read(path, lambda p: json.loads(p.read_text())) if path.is_file() else None

    def text(self, relative: str) -> str | None:
        """The file's text, or None when it does not exist.

        Examples:
          >>> import tempfile
          >>> root = pathlib.Path(tempfile.mkdtemp())
          >>> _ = (root / "bench.json").write_text('{"format": 1}')
          >>> _ = (root / "config.yaml").write_text("models: [mlp]")
          >>> BenchFiles(root).text("config.yaml"), BenchFiles(root).text("env.json")
          ('models: [mlp]', None)
        """
        path = self.path(relative)
        return self._read(path, pathlib.Path.read_text) if path.is_file() else None

    def table(self, relative: str) -> pd.DataFrame | None:
        """The Parquet file as a frame, or None when it does not exist.

        Examples:
          >>> import tempfile
          >>> root = pathlib.Path(tempfile.mkdtemp())
          >>> _ = (root / "bench.json").write_text('{"format": 1}')
          >>> pd.DataFrame({"cell_id": ["a", "b"]}).to_parquet(root / "cells.parquet")
          >>> BenchFiles(root).table("cells.parquet").cell_id.tolist()
          ['a', 'b']
          >>> BenchFiles(root).table("profile/groups.parquet") is None
          True
        """
        path = self.path(relative)
        return self._read(path, read_parquet) if path.is_file() else None

    def _inside(self, relative: str) -> pathlib.Path | None:
        """`path` of ``relative``, or None where it links out of the bench (a file found
        by listing a folder that does is skipped: never read)."""
        try:
            return self.path(relative)
        except OutsideBenchError:
            return None

    def per_process(self, relative: str) -> list[str]:
        """``relative`` and its per-process files that exist (`_layout.per_process_paths`),
        those that link out of the bench skipped."""
        paths = _layout.per_process_paths(self.root, relative)
        return [p for p in paths if self._inside(p) is not None]

    def tables(self, relative: str) -> pd.DataFrame | None:
        """The Parquet file ``relative`` and its per-process files (`per_process`) as one
        frame (None if none)."""
        frames = [self.table(path) for path in self.per_process(relative)]
        return pd.concat(frames, ignore_index=True) if frames else None

    def status(self) -> dict[str, Any]:
        """``status.json`` and the per-process status files merged: ``{"groups": {key: entry}}``,
        the key of process ``i`` of ``n``'s share of a group being ``<group_id>.p<i>of<n>``.
        An unfinished entry whose process's run is known to have stopped (`stopped`) gets
        ``"stopped": True``.

        Examples:
          >>> import tempfile
          >>> root = pathlib.Path(tempfile.mkdtemp())
          >>> _ = (root / "bench.json").write_text('{"format": 1}')
          >>> group = {"steps": 10, "cells": ["a", "b"], "finished": True}
          >>> _ = (root / "status.json").write_text(json.dumps({"groups": {"mlp-1": group}}))
          >>> other = {"mlp-2.p1of2": {"steps": 4, "cells": ["c"]}}
          >>> _ = (root / "status.p1of2.json").write_text(json.dumps({"groups": other}))
          >>> list(BenchFiles(root).status()["groups"])
          ['mlp-1', 'mlp-2.p1of2']
        """
        groups: dict[str, Any] = {}
        for relative in self.per_process(_layout.STATUS):
            data = self.json(relative)
            found = data.get("groups", {}) if isinstance(data, dict) else None
            if not isinstance(found, dict) or not all(map(_layout.group_status, found.values())):
                raise BrokenFileError(
                    f"cannot read {relative}: it does not hold a status "
                    '({"groups": {group_id: {"steps": ..., "cells": [cell_id, ...]}}}); '
                    f"{STATUS_HINT}"
                )
            process = _layout.process_of(pathlib.PurePath(relative).name, _layout.STATUS)
            if self.stopped(_layout.process_name(_layout.LOCK, process or (0, 1))):
                stop = lambda g: g if g.get("finished") else g | {"stopped": True}
                found = {key: stop(group) for key, group in found.items()}
            groups |= found
        return {"groups": groups}

    def stopped(self, lock: str) -> bool:
        """Whether the run that last held the lock file ``lock`` (``run.lock``, or
        ``run.p<i>of<n>.lock``) is known to have stopped: the file names a process of this
        machine that no longer exists (`gone`: the run was killed, ran out of memory, or
        the machine rebooted, the run's status file not written since). False when that is
        not known: no such file, one that names another machine, or one that cannot be
        read. The lock itself is never taken (a viewer holding it, even shared, would stop
        a run starting at that instant).

        Examples:
          >>> import tempfile
          >>> root = pathlib.Path(tempfile.mkdtemp())
          >>> _ = (root / "bench.json").write_text('{"format": 1}')
          >>> import subprocess, sys
          >>> from phosjax.bench._store import machine
          >>> gone = subprocess.Popen([sys.executable, "-c", ""]); _ = gone.wait()
          >>> text = f"pid {gone.pid} on {machine()} since 2026-01-01T00:00:00+00:00"
          >>> _ = (root / "run.lock").write_text(text)
          >>> BenchFiles(root).stopped("run.lock"), BenchFiles(root).stopped("run.p0of2.lock")
          (True, False)
        """
        try:
            text = self.text(lock) if self._inside(lock) is not None else None
        except BrokenFileError:
            return False
        process = _layout.process_of(lock, _layout.LOCK) or (0, 1)
        status = self._inside(_layout.process_name(_layout.STATUS, process))
        try:
            written = -math.inf if status is None else status.stat().st_mtime
        except OSError:  # none yet
            written = -math.inf
        return gone(text, written)

    def progress(self) -> dict[str, dict[str, Any]]:
        """``{cell_id: {"steps", "finished", "stopped"}}`` from the status files (empty
        before any); ``stopped``: its group's run is known to have stopped (see `status`).

        Examples:
          >>> import tempfile
          >>> root = pathlib.Path(tempfile.mkdtemp())
          >>> _ = (root / "bench.json").write_text('{"format": 1}')
          >>> BenchFiles(root).progress()  # no status yet
          {}
          >>> group = {"steps": 10, "cells": ["a", "b"], "finished": True}
          >>> _ = (root / "status.json").write_text(json.dumps({"groups": {"mlp-1": group}}))
          >>> BenchFiles(root).progress()["b"]
          {'steps': 10, 'finished': True, 'stopped': False}
        """
        return {
            cell: {
                "steps": group.get("steps"),
                "finished": bool(group.get("finished")),
                "stopped": bool(group.get("stopped")),
            }
            for group in self.status()["groups"].values()
            for cell in group.get("cells", [])
        }

    def all_stopped(self) -> bool:
        """Whether every run that wrote the bench is known to have stopped (`stopped`): at
        least one lock file, and each names a run that is gone. A group none has started
        then never will until the bench is run again.

        Examples:
          >>> import tempfile
          >>> root = pathlib.Path(tempfile.mkdtemp())
          >>> _ = (root / "bench.json").write_text('{"format": 1}')
          >>> BenchFiles(root).all_stopped()  # no lock file: no run known to have stopped
          False
        """
        locks = self.per_process(_layout.LOCK)
        return bool(locks) and all(self.stopped(lock) for lock in locks)

    def versions(self) -> dict[str, str]:
        """A digest per part of what the viewer shows (`_WATCHED`): of the name, inode,
        size and modification time of each file of its folders (hidden ones, a writer's
        temporaries, left out; the inode tells apart a file replaced, ``os.replace``, by
        one of the same size within a tick of the file system's clock); ``bench``'s (the
        bench's own files: its status, plan, lock) of which runs are known to have
        stopped too (a run that dies writes nothing). Equal digests: nothing the page
        shows of that part changed between them (it polls them, `_api.version`, and
        reads again the parts that changed).

        Examples:
          >>> import tempfile
          >>> root = pathlib.Path(tempfile.mkdtemp())
          >>> _ = (root / "bench.json").write_text('{"format": 1}')
          >>> bench = BenchFiles(root)
          >>> before = bench.versions()
          >>> _ = (root / "status.json").write_text('{"groups": {}}')
          >>> [part for part, now in bench.versions().items() if before[part] != now]
          ['bench']
        """
        stopped = [lock for lock in self.per_process(_layout.LOCK) if self.stopped(lock)]
        listed = {
            part: [self._listed(folder) for folder in folders] for part, folders in _WATCHED.items()
        }
        return {
            part: digest((files, part == "bench" and stopped)) for part, files in listed.items()
        }

    def _listed(self, folder: str) -> list[tuple[str, int, int, int]]:
        """``(name, inode, size, modification time)`` of each file in ``folder`` of the bench
        (``""``: its own), sorted; hidden ones (a writer's temporaries) left out, and
        none where the folder is not there (yet) or links out of the bench."""
        path = self._inside(folder) if folder else self.root
        if path is None or not path.is_dir():
            return []
        files = []
        with os.scandir(path) as entries:
            for entry in entries:
                with contextlib.suppress(FileNotFoundError):  # gone since listed
                    if not hidden(entry.name) and entry.is_file():
                        stat = entry.stat()
                        files.append((entry.name, entry.inode(), stat.st_size, stat.st_mtime_ns))
        return sorted(files)

    def cells(self) -> pd.DataFrame:
        """The plan (``cells.parquet``); an empty frame of the cell columns before it
        exists. A `snapshot` reads it once (do not change the frame in place). A plan
        lacking a cell column (``group_id``, ...), or holding a cell id more than once,
        is a `BrokenFileError` naming them.

        Examples:
          >>> import tempfile
          >>> root = pathlib.Path(tempfile.mkdtemp())
          >>> _ = (root / "bench.json").write_text('{"format": 1}')
          >>> list(BenchFiles(root).cells().columns)
          ['cell_id', 'group_id', 'model_id', 'model', 'dataset', 'seed']
          >>> pd.DataFrame({"cell_id": ["a"], "model": ["mlp"]}).to_parquet(root / "cells.parquet")
          >>> BenchFiles(root).cells()
          Traceback (most recent call last):
          phosjax.bench._errors.BrokenFileError: cannot read cells.parquet: it lacks the
          columns ['group_id', 'model_id', 'dataset', 'seed'] of every bench's plan (it has
          ['cell_id', 'model']).
        """
        if self._plan is not None:
            return self._plan
        cells = self.table(_layout.CELLS)
        plan = pd.DataFrame(columns=list(_layout.CELL_COLUMNS)) if cells is None else cells
        lacking = [c for c in _layout.CELL_COLUMNS if c not in plan]
        if lacking:
            raise BrokenFileError(
                f"cannot read {_layout.CELLS}: it lacks the columns {lacking} of every "
                f"bench's plan (it has {listed(list(plan.columns))})."
            )
        twice = plan.loc[plan["cell_id"].duplicated(), "cell_id"].unique().tolist()
        if twice:
            raise BrokenFileError(
                f"cannot read {_layout.CELLS}: it holds the cell ids {listed(twice)} more than "
                f"once (every bench's plan holds each cell once); {hint(_layout.CELLS)}"
            )
        if self._keeps_listing:
            self._plan = plan
        return plan

    def hparams(self) -> list[str]:
        """The hyperparameter columns: those of ``cells.parquet`` after the cell columns.

        Examples:
          >>> import tempfile
          >>> root = pathlib.Path(tempfile.mkdtemp())
          >>> _ = (root / "bench.json").write_text('{"format": 1}')
          >>> cells = dict.fromkeys(_layout.CELL_COLUMNS, ["a"]) | {"learning_rate": [1e-3]}
          >>> pd.DataFrame(cells | {"steps": [10]}).to_parquet(root / "cells.parquet")
          >>> BenchFiles(root).hparams()
          ['learning_rate', 'steps']
        """
        return [c for c in self.cells().columns if c not in _layout.CELL_COLUMNS]

    def _parts(self) -> tuple[list[pathlib.Path], list[_Version], pa.Schema | None]:
        """The result part files (only the runner's: `_store.part_path`), those that link
        out of the bench skipped, the version of each (`_version`) and the columns of them
        all (None before any); a `snapshot`'s as found at its first read."""
        if self._listing is not None:
            return self._listing
        folder = self.path(_layout.RESULTS)  # resolved: inside the bench
        found = _layout.part_files(folder)
        # A file of the folder is inside the bench, unless it links elsewhere.
        inside = (
            self._inside(f"{_layout.RESULTS}/{p.name}") if p.is_symlink() else p for p in found
        )
        parts = [path for path in inside if path is not None]
        versions = [_version(part) for part in parts]  # FileNotFoundError: `vanished`
        # Part files may differ in columns (models added later bring their own aux losses).
        schemas = self._per_version(self._schemas, parts, versions, _read_schema)
        first: dict[int, tuple[pa.Schema, pathlib.Path]] = {}  # a shared schema: alike parts
        for schema, part in zip(schemas, parts, strict=True):
            first.setdefault(id(schema), (schema, part))
        for schema, part in first.values():
            _check_keys(schema, part)
        distinct = [schema for schema, _ in first.values()]
        listing = parts, versions, _unified(distinct, parts, schemas) if parts else None
        if self._keeps_listing:
            self._listing = listing
        return listing

    def _per_version(
        self,
        cache: dict["_Version", _T],
        parts: list[pathlib.Path],
        versions: list["_Version"],
        read: Callable[[pathlib.Path], _T],
    ) -> list[_T]:
        """``read`` of each part file, from ``cache`` where it holds the part's version (a
        part is replaced whole, never changed in place): the page reads the bench again
        every few seconds, and reading each of thousands of parts took seconds each time.
        Equal values are kept once (the parts of a bench share a few schemas, of 3.6 kB
        each: 360 MB on 100,000 parts otherwise). The versions of parts no longer there
        are forgotten (a request reading at the same time keeps those it found). The lock
        is held while reading: a request at the same time (the page asks for /api/bench
        and /api/cells at once) waits for the parts read, and reads none of them again."""
        with self._cache_lock:
            found = {key: cache[key] for key in versions if key in cache}
            missing = [(k, p) for k, p in zip(versions, parts, strict=True) if k not in found]
            new = {key: self._read(part, read) for key, part in missing}
            new = {key: self._alike.setdefault(_alike(value), value) for key, value in new.items()}
            cache.update(new)
            if len(cache) > len(versions):
                kept = set(versions)
                for key in [k for k in cache if k not in kept]:
                    del cache[key]
                held = {id(value) for value in cache.values()}
                for alike in [k for k, v in self._alike.items() if id(v) not in held]:
                    del self._alike[alike]
        found |= new
        return [found[key] for key in versions]

    def _results(
        self, groups: set[str] | None = None
    ) -> tuple[list[pathlib.Path], pa.Schema | None]:
        """The part files of the results, those of ``groups`` alone where given (a part
        holds its group's rows alone; one its name does not tell the group of is kept),
        and the columns of them all (None before any part)."""
        parts, _, schema = self._parts()
        if groups is not None:
            kept = {*groups, None}  # None: a part whose name does not tell its group
            parts = [p for p in parts if _layout.group_of_part(p.name) in kept]
        return parts, schema

    def per_group(
        self,
        keys: Mapping[str | None, Hashable],
        compute: Callable[[list[str | None]], dict[str | None, _T]],
        size: Callable[[_T], int],
    ) -> dict[str | None, _T]:
        """``compute(missing)``'s value of each group of ``keys`` (None: the whole bench),
        kept per its key (all else the value is computed from: the group's cells in the
        plan, ...) and version of the group's part files (its own and those whose name
        tells no group, `_results`), as `_per_version` keeps a part's: a request for other
        cells of a group, or again after a part of another group changed, computes
        nothing again. ``compute`` gets the groups not kept, and must give each the value
        it would alone. Values of versions no longer there (a part replaced, removed)
        are forgotten, and beyond `_PER_GROUP_BYTES` (each value's ``size``) those used
        least recently. The lock is not held while computing (a request of curves takes
        seconds): two requests of a group at once may both compute it."""
        parts, versions, _ = self._parts()
        of_group: dict[str | None, list[_Version]] = {}
        for part, version in zip(parts, versions, strict=True):
            of_group.setdefault(_layout.group_of_part(part.name), []).append(version)
        read = lambda group: (
            tuple(versions)
            if group is None
            else (*of_group.get(group, ()), *of_group.get(None, ()))
        )
        wanted = {group: read(group) for group in keys}
        with self._cache_lock:
            kept = {g: self._per_group.get((key, g)) for g, key in keys.items()}
            found = {g: h.value for g, h in kept.items() if h and h.versions == wanted[g]}
            for group in found:
                self._per_group.move_to_end((keys[group], group))
        missing = [group for group in keys if group not in found]
        new = compute(missing) if missing else {}
        with self._cache_lock:
            for group, value in new.items():
                self._per_group[keys[group], group] = _Held(wanted[group], value, size(value))
            current = set(versions)
            gone = [k for k, h in self._per_group.items() if not current.issuperset(h.versions)]
            for old in gone:
                del self._per_group[old]
            held = sum(h.size for h in self._per_group.values())
            while held > _PER_GROUP_BYTES:
                held -= self._per_group.popitem(last=False)[1].size
        return found | new

    def metrics(self) -> list[str]:
        """The numeric result columns that are neither cell, hparam, key nor pandas index
        columns."""
        schema = self._parts()[2]
        if schema is None:
            return []
        known = {*_layout.CELL_COLUMNS, *self.hparams(), *_layout.RESULT_KEYS}
        metric = lambda f: _numeric(f.type) and not _PANDAS_INDEX.fullmatch(f.name)
        return [f.name for f in schema if f.name not in known and metric(f)]

    def _groups_of(self, cells: list[str]) -> set[str] | None:
        """The groups of ``cells`` in the plan (a curves request reads their part files
        alone: a few of a bench's thousands); None where one is not in the plan."""
        plan = self.cells()
        asked = plan[plan["cell_id"].isin(cells)]
        return set(asked["group_id"]) if asked["cell_id"].nunique() == len(set(cells)) else None

    def results(self, columns: list[str], cells: list[str] | None = None) -> pd.DataFrame:
        """``cell_id``, ``step``, ``split``, ``diverged`` (in benches that record it) and
        ``columns`` of the results, sorted by step. Float columns are Arrow-backed, so a
        null (not recorded) is NA but a NaN is not.

        Args:
          columns: metric columns to read (see `metrics`).
          cells: only these cells (all when None).
        """
        parts, schema = self._results(None if cells is None else self._groups_of(cells))
        if schema is None:
            return pd.DataFrame(columns=[*_KEYS, *columns])
        recorded = [_layout.DIVERGED] if _layout.DIVERGED in schema.names else []
        filter_ = None if cells is None else pads.field("cell_id").isin(cells)
        read = [*_KEYS, *recorded, *columns]
        scan = lambda: read_parquets(parts, schema, read, filter_, _PART)
        table = _keyed(self._scanned(parts, scan), parts)
        frame = table.to_pandas(types_mapper=_nullable_floats)
        return frame.sort_values(_KEYS, kind="stable").reset_index(drop=True)

    def _scanned(self, paths: Sequence[pathlib.Path], scan: Callable[[], _T]) -> _T:
        """``scan()``, a read of the rows of the part files ``paths`` as one dataset;
        where it fails on a damaged part (its footer whole, a page of rows not), whose
        name the error does not say, the `BrokenFileError` of the first of ``paths``
        that fails read alone."""
        try:
            return scan()
        except UNREADABLE as error:
            if isinstance(error, FileNotFoundError):
                raise  # gone since listed (`vanished`)
            for path in paths:
                self._read(path, read_parquet)
            raise

    def last_rows(self, columns: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The last row of each (cell, split) series in each part file, as `results` reads
        them (so the last of those of a series is its last row in the results), and
        whether the series had recorded each of ``columns`` (a value, NaN too, not a null)
        by that row, a frame of booleans of the same rows. The rows of a part are read
        once per version of its file (`_version`): the leaderboard, which the page asks
        for again at each change of a running bench, reads the parts written since alone.

        Examples:
          >>> import tempfile
          >>> root = pathlib.Path(tempfile.mkdtemp())
          >>> _ = (root / "bench.json").write_text('{"format": 1}')
          >>> (root / "results").mkdir()
          >>> rows = {"cell_id": "a", "step": [1, 2], "split": "test", "loss": [0.5, None]}
          >>> pd.DataFrame(rows).to_parquet(root / "results" / "part-g-000000000.parquet")
          >>> last, seen = BenchFiles(root).last_rows(["loss"])
          >>> last[["step", "loss"]].to_dict("records"), seen.to_dict("records")
          ([{'step': 2, 'loss': None}], [{'loss': True}])
        """
        frame, seen, _, _ = self._last_rows(columns)
        return frame, seen

    def _last_rows(
        self, columns: list[str]
    ) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, list[pathlib.Path]]:
        """`last_rows`, and of each row the first step of its series in its part and that
        part's file (for `rows_upto`)."""
        parts, versions, schema = self._parts()
        if schema is None:
            empty = pd.DataFrame(columns=[*_KEYS, *columns]), pd.DataFrame(columns=columns)
            return *empty, np.zeros(0, dtype=int), []
        names = [repr(version) for version in versions]
        with self._cache_lock:  # held while reading, as `_per_version`
            ends = self._ends[0] if self._ends else None
            if ends is None or ends.read != set(names):
                kept = None if ends is None else ends.of(names)
                missing = [
                    p
                    for p, n in zip(parts, names, strict=True)
                    if kept is None or n not in kept.read
                ]
                scan = lambda: _series_ends(missing, names, parts, schema)
                new = self._scanned(missing, scan) if missing else None
                ends = _Ends.joined([e for e in (kept, new) if e is not None])
                self._ends[:] = [ends]
        recorded = [_layout.DIVERGED] if _layout.DIVERGED in schema.names else []
        fields = [schema.field(name) for name in [*_KEYS, *recorded, *columns]]
        frame = _conformed(ends.rows, fields).to_pandas(types_mapper=_nullable_floats)
        absent = np.zeros(ends.rows.num_rows, dtype=bool)
        had = {c: ends.had.get(c, absent) for c in columns}
        seen = pd.DataFrame(had, columns=columns, index=range(ends.rows.num_rows))
        position = pd.Series(range(len(names)), index=names)
        part = position[ends.parts].to_numpy()
        order = frame[_KEYS].assign(part=part).sort_values([*_KEYS, "part"], kind="stable").index
        of_part = [parts[i] for i in part[order]]
        frame = frame.loc[order].reset_index(drop=True)
        return frame, seen.loc[order].reset_index(drop=True), ends.first[order], of_part

    def rows_upto(
        self, targets: pd.DataFrame, columns: list[str]
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The rows of the results that give each series its value at a step, as
        `last_rows` gives them its last: for each row of ``targets`` (``cell_id``,
        ``split``, ``at``: a step), those of its series up to ``at``, with an ``at``
        column, and ``seen``. From `last_rows` where each part of the series ends by
        ``at`` or starts after it (it stopped where a part ends: a process behind, or
        crashed, stops at a checkpoint); a part holding rows of the series on both
        sides of ``at`` is read, that part's rows of the series alone.

        Examples:
          >>> import tempfile
          >>> root = pathlib.Path(tempfile.mkdtemp())
          >>> _ = (root / "bench.json").write_text('{"format": 1}')
          >>> (root / "results").mkdir()
          >>> rows = {"cell_id": "a", "step": [1, 2, 3], "split": "test", "loss": [0.5, 0.4, 0.3]}
          >>> pd.DataFrame(rows).to_parquet(root / "results" / "part-g-000000001.parquet")
          >>> targets = pd.DataFrame({"cell_id": ["a"], "split": ["test"], "at": [2]})
          >>> rows, seen = BenchFiles(root).rows_upto(targets, ["loss"])
          >>> rows[["step", "loss", "at"]].to_dict("records")
          [{'step': 1, 'loss': 0.5, 'at': 2}, {'step': 2, 'loss': 0.4, 'at': 2}]
        """
        frame, seen, first, of_part = self._last_rows(columns)
        asked = targets[["cell_id", "split", "at"]]
        rows = frame.assign(_row=np.arange(len(frame))).merge(asked, on=["cell_id", "split"])
        index = rows.pop("_row").to_numpy()
        steps, at = rows["step"].to_numpy(), rows["at"].to_numpy()
        straddle = (steps > at) & (first[index] <= at)
        kept = steps <= at
        found = [rows[kept]]
        seen_found = [seen.iloc[index[kept]].reset_index(drop=True)]
        if straddle.any():
            read = sorted({of_part[i] for i in index[straddle]})
            cells = sorted(set(rows["cell_id"][straddle]))
            schema = self._parts()[2]
            filter_ = pads.field("cell_id").isin(cells)
            scan = lambda: read_parquets(read, schema, list(frame.columns), filter_)
            table = self._scanned(read, scan)
            fresh = table.to_pandas(types_mapper=_nullable_floats)
            fresh = fresh.merge(
                rows.loc[straddle, ["cell_id", "split", "at"]], on=["cell_id", "split"]
            )
            fresh = fresh[fresh["step"] <= fresh["at"]]
            found.append(fresh)
            seen_found.append(fresh[columns].notna())
        rows = pd.concat(found, ignore_index=True)
        seen = pd.concat(seen_found, ignore_index=True)
        order = rows.sort_values(["at", *_KEYS], kind="stable").index
        return rows.loc[order].reset_index(drop=True), seen.loc[order].reset_index(drop=True)


def _alike(value: Any) -> Any:
    """What tells ``value`` apart from others: a schema's metadata too (equal schemas
    may differ in it, the pandas metadata that `BenchFiles.results` converts by).

    Examples:
      >>> plain, marked = pa.schema([("a", pa.int8())]), pa.schema([("a", pa.int8())], {"k": "v"})
      >>> plain == marked, _alike(plain) == _alike(marked)
      (True, False)
    """
    if isinstance(value, pa.Schema):
        return value, tuple(sorted((value.metadata or {}).items()))
    return value


_PER_GROUP_BYTES = 256 * 2**20
"""The most bytes of values `BenchFiles.per_group` keeps (the curves of a bench of 1,000
cells x 2,000 steps, every cell's of four columns, take about 40 MB)."""


@dataclasses.dataclass(frozen=True)
class _Held:
    """A value `BenchFiles.per_group` keeps: the ``versions`` of the part files it was
    computed from, and its ``size`` in bytes."""

    versions: tuple[_Version, ...]
    value: Any
    size: int


_KEYS = ["cell_id", *_layout.RESULT_KEYS]
"""The columns that order the results' rows (`BenchFiles.results`)."""


def _numeric(type_: pa.DataType) -> bool:
    return pat.is_integer(type_) or pat.is_floating(type_)


@dataclasses.dataclass(frozen=True)
class _Ends:
    """`_series_ends` of some part files: ``rows``, the last row of each (part, cell,
    split) series; ``had``, by numeric column, whether the series had recorded it by
    then; ``first``, the series' first step in the part; ``parts``, the version (``repr``
    of `_version`) of each row's part; ``read``, those of every part read."""

    rows: pa.Table
    had: dict[str, np.ndarray]
    first: np.ndarray
    parts: np.ndarray
    read: frozenset[str]

    def of(self, names: list[str]) -> "_Ends":
        """Those of the parts ``names`` (the others forgotten: gone, or replaced)."""
        wanted = set(names)
        kept = np.fromiter((part in wanted for part in self.parts), bool, len(self.parts))
        had = {name: values[kept] for name, values in self.had.items()}
        rows, first, parts = self.rows.filter(kept), self.first[kept], self.parts[kept]
        return _Ends(rows, had, first, parts, self.read & wanted)

    @staticmethod
    def joined(ends: list["_Ends"]) -> "_Ends":
        """``ends`` as one (a column one lacks: null, never recorded)."""
        rows = pa.concat_tables([e.rows for e in ends], promote_options="default")
        absent = lambda e: np.zeros(e.rows.num_rows, dtype=bool)
        names = dict.fromkeys(name for e in ends for name in e.had)
        had = {n: np.concatenate([e.had.get(n, absent(e)) for e in ends]) for n in names}
        first = np.concatenate([e.first for e in ends])
        parts = np.concatenate([e.parts for e in ends])
        return _Ends(rows, had, first, parts, frozenset().union(*(e.read for e in ends)))


_PART = "__part_index__"
"""The column a read of the rows reads the index of each row's part file into."""


def _keyed(table: pa.Table, paths: Sequence[pathlib.Path]) -> pa.Table:
    """``table`` (rows of the part files ``paths``, `_PART` the index of each row's) without
    `_PART`; where a row has no value of one of `_KEYS` (a part edited by hand), a
    `BrokenFileError` naming its part, the column and what to do (the reads order and
    group the rows by them: a null failed them with ``ArrowInvalid: ... zero_copy_only``).

    Examples:
      >>> rows = pa.table({"cell_id": [None, None], "step": [1, 2], "split": ["test"] * 2})
      >>> rows = rows.append_column(_PART, pa.array([0, 1]))  # a row of each part
      >>> _keyed(rows, [pathlib.Path(f"part-{g}-000000000.parquet") for g in "gh"])
      Traceback (most recent call last):
      phosjax.bench._errors.BrokenFileError: cannot read results/part-g-000000000.parquet: 1
      of its rows have no cell_id (every part of the results gives each row its cell_id,
      step and split); phosjax writes it whole, ...
    """
    for key in _KEYS:
        if table[key].null_count:
            parts = table[_PART].filter(pc.is_null(table[key]))  # of each row lacking it
            count = pc.sum(pc.equal(parts, parts[0])).as_py()
            raise _keyless(paths[parts[0].as_py()], f"{count} of its rows", [key])
    return table.drop_columns([_PART])


def _series_ends(
    paths: list[pathlib.Path], names: list[str], parts: list[pathlib.Path], schema: pa.Schema
) -> _Ends:
    """The `_Ends` of the part files ``paths``, read in ``schema`` (their `_KEYS`,
    ``diverged`` and numeric columns), one of ``parts``, whose versions are ``names``."""
    name_of = {str(part): name for part, name in zip(parts, names, strict=True)}
    numeric = [f.name for f in schema if f.name not in _KEYS and _numeric(f.type)]
    recorded = [_layout.DIVERGED] if _layout.DIVERGED in schema.names else []
    columns = list(dict.fromkeys([*_KEYS, *recorded, *numeric]))
    table = read_parquets(paths, schema, columns, index=_PART).combine_chunks()
    part = table[_PART].to_numpy()
    table = _keyed(table, paths)
    codes = lambda name: pc.dictionary_encode(table[name]).combine_chunks().indices.to_numpy()
    series = np.stack([part, codes("cell_id"), codes("split")]) if len(table) else np.zeros((3, 0))
    # By series, then step, then as written (the last of a step's rows is its last).
    order = np.lexsort((np.arange(len(table)), table["step"].to_numpy(), *series[::-1]))
    ordered = series[:, order]
    starts = np.flatnonzero(np.r_[True, (ordered[:, 1:] != ordered[:, :-1]).any(axis=0)])
    ends = order[np.r_[starts[1:], len(order)] - 1] if len(order) else order
    valid = {name: pc.is_valid(table[name]).to_numpy(zero_copy_only=False) for name in numeric}
    had = {
        name: np.logical_or.reduceat(v[order], starts) if len(order) else v
        for name, v in valid.items()
    }
    first = table["step"].to_numpy()[order[starts]] if len(order) else np.zeros(0, dtype=int)
    versions = np.array([name_of[str(paths[i])] for i in part[ends]], dtype=object)
    read = frozenset(name_of[str(path)] for path in paths)
    return _Ends(table.take(ends), had, first, versions, read)


def _read_schema(path: pathlib.Path) -> pa.Schema:
    """The columns of the part file ``path``, its text ones as ``string`` (those of a
    part rewritten with pandas 3, ``to_parquet``, are ``large_string``: the same text,
    which reads as ``string``, as phosjax writes it; the parts then hold one type).

    Examples:
      >>> import tempfile
      >>> path = pathlib.Path(tempfile.mkdtemp()) / "part-g-0.parquet"
      >>> pq.write_table(pa.table({"split": pa.array(["test"], pa.large_string())}), path)
      >>> _read_schema(path).field("split").type
      DataType(string)
    """
    return plain_strings(pq.read_schema(path))


def _stored(field: pa.Field, part: pathlib.Path) -> pa.DataType:
    """The type of the column ``field`` (`_read_schema`'s) as the part file ``part``
    stores it: a text one as written, ``large_string`` or ``string`` (which
    `_read_schema` reads as ``string``: the file's schema read again, for an error)."""
    return pq.read_schema(part).field(field.name).type if pat.is_string(field.type) else field.type


def _check_keys(schema: pa.Schema, part: pathlib.Path) -> None:
    """Refuses the columns ``schema`` of the part file ``part`` where its rows lack one of
    `_KEYS` (no such column, or one of no value: a part written by hand), which every
    read of the results orders and groups its rows by, with a `BrokenFileError` naming
    the part, the columns and what to do.

    Examples:
      >>> by_hand = pa.schema([("cell_id", pa.string()), ("step", pa.null())])
      >>> _check_keys(by_hand, pathlib.Path("part-g-0.parquet"))
      Traceback (most recent call last):
      phosjax.bench._errors.BrokenFileError: cannot read results/part-g-0.parquet: its rows
      have no step, split (every part of the results gives each row its cell_id, step and
      split); phosjax writes it whole, ...
    """
    lacking = [k for k in _KEYS if k not in schema.names or pat.is_null(schema.field(k).type)]
    if lacking:
        raise _keyless(part, "its rows", lacking)


def _keyless(part: pathlib.Path, rows: str, keys: list[str]) -> BrokenFileError:
    """The error of the part file ``part`` whose ``rows`` (``"its rows"``, or how many)
    have no value of ``keys`` (of `_KEYS`), naming it and what to do."""
    relative = f"{_layout.RESULTS}/{part.name}"
    return BrokenFileError(
        f"cannot read {relative}: {rows} have no {', '.join(keys)} (every part of the "
        f"results gives each row its cell_id, step and split); {hint(relative)}"
    )


def _unified(
    distinct: list[pa.Schema], parts: list[pathlib.Path], schemas: list[pa.Schema]
) -> pa.Schema:
    """The columns of all the part files (``distinct``: their ``schemas``, each once);
    where two parts hold a column in types that do not merge (a part written by hand, or
    by another version), a `BrokenFileError` naming the column and the two parts.

    Examples:
      >>> a, b = pa.schema([("loss", pa.float32())]), pa.schema([("loss", pa.int64())])
      >>> _unified([a, b], [pathlib.Path(f"part-{g}-0.parquet") for g in "gh"], [a, b])
      Traceback (most recent call last):
      phosjax.bench._errors.BrokenFileError: cannot read the results: column 'loss' is float
      in results/part-g-0.parquet but int64 in results/part-h-0.parquet; ...
    """
    try:
        return pa.unify_schemas(distinct)
    except (pa.ArrowTypeError, pa.ArrowInvalid) as error:
        merged: dict[str, tuple[pa.Field, pathlib.Path]] = {}  # each column's, and a part's
        for part, schema in zip(parts, schemas, strict=True):
            for field in schema:
                known, where = merged.setdefault(field.name, (field, part))
                if field.type == known.type:
                    continue
                try:  # a column null in one part merges with any type
                    both = pa.unify_schemas([pa.schema([known]), pa.schema([field])])[0]
                except (pa.ArrowTypeError, pa.ArrowInvalid):
                    raise BrokenFileError(
                        f"cannot read the results: column {field.name!r} is "
                        f"{_stored(known, where)} in {_layout.RESULTS}/{where.name} but "
                        f"{_stored(field, part)} in {_layout.RESULTS}/{part.name}; the parts "
                        "of a bench hold each column "
                        "in one type: write one again in the other's, or move it out of "
                        f"{_layout.RESULTS}/."
                    ) from error
                # The part that holds it typed is named (not one that holds it null).
                merged[field.name] = both, where if pat.is_null(field.type) else part
        raise BrokenFileError(f"cannot read the results: {error}") from error


def _conformed(table: pa.Table, fields: list[pa.Field]) -> pa.Table:
    """``table``'s columns of ``fields``, each of its field's type (all null where
    ``table`` lacks it: a part written before a model that records it was added)."""
    columns = [
        table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(len(table), f.type)
        for f in fields
    ]
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))
