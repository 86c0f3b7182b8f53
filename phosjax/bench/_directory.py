"""A bench directory: opening it, refusing a different config, moving it aside, its files.

When several processes share a bench (``jax.distributed``), they agree on what they run
before any of them writes (`agree`, `choose_config_together`), and stop together when
one cannot go on (`in_every_process`; the others also wait there for process 0's
metadata).
"""

import contextlib
import dataclasses
import datetime
import fcntl
import hashlib
import json
import os
import pathlib
import re
import shlex
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import jax
import numpy as np
import pyarrow as pa
import yaml

from phosjax._hosts import gather_rows
from phosjax._listing import listing
from phosjax._yaml import read_file as read_yaml_file
from phosjax.bench import _layout
from phosjax.bench._config import BenchConfig, BenchError, holds_no_config
from phosjax.bench._env import environment
from phosjax.bench._reading import (
    CONFIG_HINT,
    MARKER_HINT,
    REFUSED,
    UNREADABLE,
    not_an_object,
    read_file,
)
from phosjax.bench._starting import starting
from phosjax.bench._store import (
    NO_ROOM,
    NOT_WRITABLE,
    is_temporary,
    machine,
    move_aside,
    naming,
    read_json,
    write_json,
    write_table,
    write_text,
)
from phosjax.bench._usage import as_argument
from phosjax.models import model_spec, registered_models

T = TypeVar("T")


def read_bench_json(path: pathlib.Path, hint: str = MARKER_HINT) -> dict[str, Any]:
    """The JSON object in ``path`` (``bench.json``, ``status.json``), or a `BenchError`
    naming the file when it cannot be read or holds no object, and saying what to do:
    ``hint`` (by default: restore it, or start a new bench).

    Examples:
      >>> import tempfile
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     path = pathlib.Path(tmp) / "bench.json"
      ...     _ = path.write_text("[]")
      ...     read_bench_json(path)
      Traceback (most recent call last):
      phosjax.bench._errors.BenchError: '.../bench.json' holds a list, not the JSON object ...
    """
    data = read_file(path, read_json, repr(str(path)), hint)
    if not isinstance(data, dict):
        raise BenchError(f"{str(path)!r} {not_an_object(data, hint)}")
    return data


def open_bench(directory: str | os.PathLike) -> tuple[BenchConfig, dict[str, Any]]:
    """The stored config and marker of an existing bench.

    Raises:
      BenchError: ``directory`` holds no bench (no marker file; a run may be starting one
        there: `starting`), or its marker or its
        ``config.yaml`` cannot be read (naming the file).
    """
    root = pathlib.Path(directory)
    if not _layout.is_bench(root):
        raise BenchError(starting(root) or _layout.not_a_bench(root))
    marker = read_bench_json(root / _layout.MARKER)
    if (why := _layout.format_not_read(repr(str(root)), marker.get("format"))) is not None:
        raise BenchError(why)
    path = root / _layout.CONFIG
    try:
        data = read_yaml_file(path)  # missing, not YAML: its error names the file
        if data is None:  # not `read_yaml`'s "give at least one key": it is restored
            raise ValueError(f"{holds_no_config(path)}.")
    except ValueError as error:
        system = error.__cause__  # its permissions, the disk (not gone, nor a folder)
        gone = (FileNotFoundError, IsADirectoryError)
        if isinstance(system, OSError) and not isinstance(system, gone):
            raise BenchError(f"{error}\nIt is the bench's stored config: {REFUSED}.") from error
        raise BenchError(f"{error}\nIt is the bench's stored config: {CONFIG_HINT}") from error
    try:
        return BenchConfig.from_dict(data), marker
    except BenchError as error:
        raise BenchError(
            f"the bench's stored config {str(path)!r} is not valid: {error} phosjax wrote "
            "it valid, so it was edited since: undo that edit (a bench's config only grows, "
            "by add_models); to train a changed config, give it to `python -m "
            "phosjax.bench.new --config FILE --dir NEW_DIR`."
        ) from error


def _runner_env(path: pathlib.Path) -> bool:
    """Whether ``path`` is an ``env.json`` as `write_meta` writes it (`environment`)."""
    try:
        env = read_json(path)
    except UNREADABLE:
        return False
    return isinstance(env, dict) and {"packages", "python", "host", "devices"} <= env.keys()


_PEER = rf"[^/]+{_layout.PROCESS_SUFFIX}"  # a group key of process i of n
_PROFILE_STEMS = "|".join(
    re.escape(pathlib.PurePath(p).stem) for p in (_layout.PHASES, _layout.MEMORY)
)
_PEER_FILES = {
    _layout.RESULTS: re.compile(rf"part-{_PEER}-\d{{9,}}\.parquet"),  # 9: {step:09d}
    _layout.PROFILE: re.compile(rf"(?:{_PROFILE_STEMS}){_layout.PROCESS_SUFFIX}\.parquet"),
    _layout.CHECKPOINTS: re.compile(rf"{_PEER}/\d+"),
}
"""What process ``i`` of ``n`` writes in these folders (its group keys and file stems end
in ``.p<i>of<n>``, see `_layout`): run with ``process=(i, n)`` and no ``jax.distributed``,
it may write them before process 0 writes the marker."""


def _peers_only(folder: pathlib.Path) -> bool:
    """Whether ``folder`` holds something, and only what processes sharing a bench write
    there (`_PEER_FILES`), and writers' temporary files."""
    pattern = _PEER_FILES.get(folder.name)
    if pattern is None or folder.is_symlink() or not folder.is_dir():
        return False
    found = list(folder.rglob("*"))
    for path in found:
        relative = path.relative_to(folder).as_posix()
        if path.is_symlink():
            return False
        if not path.exists():  # a temporary file renamed meanwhile
            continue
        if path.is_dir():
            if folder.name != _layout.CHECKPOINTS or not re.fullmatch(_PEER, relative):
                return False
        elif not (path.is_file() and (is_temporary(path.name) or pattern.fullmatch(relative))):
            return False
    return bool(found)


def _foreign(root: pathlib.Path) -> list[str]:
    """The names in ``root``, a directory without a marker, that no start of a bench leaves
    there before the marker is written; sorted. Such a start leaves writers' temporary
    files (`is_temporary`); processes sharing the bench, run apart, their per-process
    files (``status.p<i>of<n>.json``, `_PEER_FILES`); its lock files (`locked`, taken
    before the marker is written); and process 0 killed inside `write_meta` (it writes
    ``env.json``, then ``config.yaml``, then ``cells.parquet``, then the marker) an
    ``env.json`` of `environment`, with or without those. Anything else (an empty
    folder, a hand-written ``config.yaml``) is the user's, never to be overwritten."""
    entries = list(root.iterdir())  # once: peers may be writing meanwhile
    files = {p.name for p in entries if p.is_file() and not p.is_symlink()}
    leftovers = {n for n in files if is_temporary(n)}
    leftovers |= {
        n for n in _layout.per_process_names(_layout.STATUS, files) if n != _layout.STATUS
    }
    leftovers |= set(_layout.per_process_names(_layout.LOCK, files))
    if _layout.ENV in files and _runner_env(root / _layout.ENV):
        leftovers |= {_layout.CONFIG, _layout.CELLS, _layout.ENV} & files
    leftovers |= {name for name in _PEER_FILES if _peers_only(root / name)}
    gone = {p.name for p in entries if not (p.exists() or p.is_symlink())}  # renamed
    return sorted(p.name for p in entries if p.name not in leftovers | gone)


def _not_benches(root: pathlib.Path, foreign: list[str], lead: str) -> str:
    """For a message on ``root``: ``lead`` and the first five of its ``foreign`` entries
    that are no benches (`_layout.benches_inside` names those), as what no bench run left
    there; ``""`` when every one is a bench.

    Examples:
      >>> _not_benches(pathlib.Path("/no/such"), ["notes.txt", "old"], ": it holds ")
      ': it holds notes.txt, old, which no bench run left there'
    """
    others = [name for name in foreign if not _layout.is_bench(root / name)]
    if not others:
        return ""
    return f"{lead}{listing(others)}, which no bench run left there"


def shown_differences(changed: list[str]) -> str:
    """The first five of a config's ``differences``, for a message."""
    return "stored -> given: " + listing(changed, sep="; ")


def _nothing_to_resume(root: pathlib.Path) -> str:
    """What ``--resume`` says of ``root``, which holds no bench: how to start one there
    (a start killed before it wrote the marker is started again by the same command,
    without ``--resume``, which a config file's ``resume: true`` may have given)."""
    start = (
        "run the command without --resume (or resume: true in a config file), with its "
        "--config FILE, to start it"
    )
    if not root.exists():
        why = _layout.no_such_directory(root)  # a typo of a bench beside it named
        return f"--resume: {str(root)!r} holds no bench to resume ({why}); {start}."
    foreign = _foreign(root)
    if foreign:
        return (
            f"--resume: {str(root)!r} holds no bench to resume (no {_layout.MARKER})"
            f"{_not_benches(root, foreign, ', and holds ')}; give the --dir of a bench. "
            f"{_layout.benches_inside(root)}".rstrip()
        )
    return (
        f"--resume: {str(root)!r} holds no bench to resume: it has no {_layout.MARKER} "
        f"(a start killed before writing it leaves none); {start}."
    )


def _continued(
    root: pathlib.Path, config: BenchConfig, force: bool, given: bool = True
) -> tuple[BenchConfig, None]:
    """`choose_config`'s answer for the bench in ``root`` continued under ``config``, its
    own (the config ``given``, or none); saying so on stderr where ``force`` asked to
    start over, which it moves aside only for another config."""
    if force:
        why = "holds a bench of this config" if given else "holds a bench and no config was given"
        print(
            f"--force: {str(root)!r} {why}, so it continues; --force "
            "moves aside only a bench of another config. To start it over, pick another "
            "--dir or delete this one.",
            file=sys.stderr,
        )
    return config, None


def check_dir_kind(root: pathlib.Path) -> None:
    """Raises a `BenchError` where ``root``, a ``--dir``, can be no directory: it is a
    file, lies under a file or is a dangling link."""
    if root.exists() and not root.is_dir():
        raise BenchError(
            f"--dir {str(root)!r} is a file; it must be a directory (a new or empty one, "
            "or a bench)."
        )
    if root.is_symlink() and not root.exists():
        raise BenchError(
            f"--dir {str(root)!r} is a link to {os.readlink(root)!r}, which does not exist; "
            "make that directory, or pick another --dir."
        )
    above = next((p for p in root.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise BenchError(
            f"--dir {str(root)!r} cannot be made: {str(above)!r} is a file; pick a --dir "
            "whose parents are directories."
        )


def why_no_bench_starts(root: pathlib.Path) -> str | None:
    """Why no new bench may start in ``root``, which holds none: it lies inside a bench, or
    holds what no start of one left; None where one may."""
    around = _layout.enclosing_bench(root)
    if around is not None:
        return (
            f"--dir {str(root)!r} is inside the bench {str(around)!r}, whose files a new "
            "bench there would mix with its own; pick a --dir outside it."
        )
    foreign = _foreign(root) if root.exists() else []
    if not foreign:
        return None
    inside = _layout.benches_inside(root)
    return (
        f"{str(root)!r} is not empty and holds no bench ({_layout.MARKER})"
        f"{_not_benches(root, foreign, ': it holds ')}"
        + (
            f". {inside} (to continue it), or pick a new or empty --dir for a new bench."
            if inside
            else "; pick a new or empty --dir."
        )
    )


def _config_to_start(root: pathlib.Path, config: BenchConfig | None, resume: bool) -> BenchConfig:
    """`choose_config`'s config for ``root``, which holds no bench: ``config``, which starts
    one there; a `BenchError` where none may start (``resume``, ``root`` inside a bench or
    holding what no start of one left, no ``config``)."""
    if resume:
        raise BenchError(_nothing_to_resume(root))
    refused = why_no_bench_starts(root)
    if refused is not None:
        raise BenchError(refused)
    if config is None:
        why = "" if root.exists() else f" ({_layout.no_such_directory(root)})"
        raise BenchError(
            f"no config given, and {str(root)!r} holds no bench to continue{why}: pass "
            "--config FILE (a YAML bench config, e.g. configs/example.yaml)."
        )
    return config


def choose_config(
    directory: str | os.PathLike,
    config: BenchConfig | None,
    *,
    resume: bool = False,
    force: bool = False,
    quiet: bool = False,
) -> tuple[BenchConfig, pathlib.Path | None]:
    """The config to run in ``directory``, and where an old bench was moved (if forced).

    An empty or missing directory (or one holding only what a start killed before it
    wrote the marker left, see `_foreign`) takes ``config``. A bench holding the same config
    continues (the same command run again resumes). ``resume`` continues a bench under
    its stored config (saying so on stderr when ``config`` differs, unless ``quiet``); a
    config that differs only in how its numbers are written (``0`` for ``0.0``), in a grid
    axis of one value written as a list or not (``[0.01]`` for ``0.01``), in a regularizer
    entry's defaults written or not (``selector: "**"``) or in ``data_dir`` is the stored
    one, reading its data from the given ``data_dir``.
    ``force`` moves a bench with another config aside to ``<dir>.old-<time>`` (never
    deleting it; a ``directory`` that is a link: the folder it points to, beside which
    it moves, the new bench made there) and starts over; one of the same config continues
    (saying so on stderr).

    Raises:
      BenchError: the directory holds another config and neither flag is given; it is
        not empty and holds no bench (the benches in it named, to pass one); it is a
        file, lies under a file or is a dangling link; it is new and inside a bench; or
        ``resume`` without a bench.
    """
    root = pathlib.Path(directory)
    check_dir_kind(root)
    if not _layout.is_bench(root):
        return _config_to_start(root, config, resume), None
    stored, marker = open_bench(root)
    if config is None:
        return _continued(root, stored, force, given=False)
    relocated = dataclasses.replace(stored, data_dir=config.data_dir)  # data may move
    if marker.get("config_hash") == config.digest():
        return _continued(root, relocated, force)
    changed = stored.differences(config)
    if not changed:  # the same bench, written otherwise (0 and 0.0, [0.01] and 0.01)
        return _continued(root, relocated, force)
    if resume:
        if not quiet:  # said, so that a changed config is never dropped silently
            print(
                f"--resume: continuing {str(root)!r} under its stored config; the config "
                f"given differs ({shown_differences(changed)}) and is not used.",
                file=sys.stderr,
            )
        return stored, None
    moving = _linked(root)
    if force:
        here = pathlib.Path.cwd()
        if root.resolve() in (here, *here.parents):  # "." would then name the old bench
            raise BenchError(
                f"--force cannot move {str(root)!r} aside: it holds the working directory. "
                f"Run from its parent with --dir {shlex.quote(as_argument(root.resolve().name))}."
            )
        check_unlocked(root)
        # `locked` makes the new bench in its place
        return config, move_aside(moving, "the old bench", BenchError)
    raise BenchError(
        f"{str(root)!r} holds a bench with a different config ({shown_differences(changed)}). "
        "Pass --resume to continue it under its stored config, or --force to move it aside "
        f"(to {moving.name if moving is root else moving}.old-<time>) and start over, or "
        "pick another --dir."
    )


_WRITING = (
    "is being written by another run ({holder}); wait for it to end, or stop it, then run "
    "the command again; or pick another --dir."
)
"""What a bench whose lock a run holds is (`_flock`'s ``busy``)."""
_EXPORTING = (
    "is being exported by another export ({holder}); wait for it to end, or stop it, then "
    "run the command again."
)
"""What a bench whose export lock an export holds is (`_flock`'s ``busy``)."""


def _flock(file: Any, mode: int, root: pathlib.Path, busy: str) -> None:
    """Takes ``flock`` ``mode`` on the lock ``file`` of the bench in ``root`` without
    waiting. On a file system without locks (some network mounts) there is none to take,
    and no error.

    Raises:
      BenchError: another run holds the lock: ``root`` then ``busy``, its ``{holder}``
        what the file says (pid, host name: `_layout.shown_lock_holder`).
    """
    try:
        fcntl.flock(file, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        file.seek(0)
        holder = _layout.shown_lock_holder(file.read())
        raise BenchError(f"{str(root)!r} {busy.format(holder=holder)}") from None
    except OSError:
        pass


def _linked(root: pathlib.Path) -> pathlib.Path:
    """The folder a ``root`` that is a link points to, else ``root``: where ``--force``
    moves a bench from and the new one is made (moving the link made it beside the link,
    off the disk it pointed to)."""
    return root.resolve() if root.is_symlink() else root


@contextlib.contextmanager
def locked(
    root: pathlib.Path, process: tuple[int, int], *, reading: bool = False
) -> Iterator[OSError | None]:
    """Makes ``root`` and holds process ``i`` of ``n``'s lock of the bench there
    (``run.lock``, or ``run.p<i>of<n>.lock``: an exclusive ``flock``) while it writes
    there, so a second run on the same directory stops before it writes anything, instead
    of training the same groups alongside; so does a run of another process count, whose
    lock is another file (`check_unlocked`). The lock goes with the process (a killed run
    holds none); its file stays, naming the last holder. Yields None; with ``reading`` (a
    finished bench, which needs no write), where ``root`` may not be written (`NOT_WRITABLE`),
    it holds no lock and yields that error: the body only reads.

    Raises:
      BenchError: another run holds it (the message names its pid and host), or ``root``
        cannot be made or written.
    """
    path = root / _layout.process_name(_layout.LOCK, process)
    try:
        _linked(root).mkdir(parents=True, exist_ok=True)
        file = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (closed by the with below)
    except OSError as error:
        if reading and error.errno in NOT_WRITABLE:
            yield error
            return
        raise _unwritable(root, error, "the bench") from error
    with file:
        _hold(file, path, root, shared=jax.process_count() > 1)
        check_unlocked(root, process)  # a run of another process count writes other files
        yield None


def _unwritable(root: pathlib.Path, error: OSError, writing: str) -> BenchError:
    """What a lock file of the bench in ``root`` that cannot be made (or, an export's,
    written: `export_locked`) says, ``error`` naming it: what could not be written
    (``writing``: the bench, for a run; only its lock, for an export), ``root`` and what
    to do (for a bench's folder one may write, whose disk is full: make room
    (`NO_ROOM`), not its permissions)."""
    room = NO_ROOM.get(error.errno or 0)  # a full disk: what makes room (0: no errno)
    cause = "make its folder writable" if error.errno in NOT_WRITABLE else room or "see to that"
    if _layout.is_bench(root):  # continued or added to: another --dir would not hold it
        what = f"{cause}, or copy the bench to a folder you can write and give that as --dir"
    else:
        what = f"{room}, or pick another --dir" if room else "pick a --dir you can write to"
    return BenchError(f"cannot write {writing} into --dir {str(root)!r}: {error}; {what}.")


def _hold(
    file: Any, path: pathlib.Path, root: pathlib.Path, busy: str = _WRITING, shared: bool = False
) -> None:
    """Takes the exclusive `_flock` of the lock ``file`` at ``path`` and writes this
    process into it (`_layout.lock_holder`); ``shared``: flushed to the disk, for the
    other processes of the bench to read (`agree_on_folder`), on a network file system
    too."""
    _flock(file, fcntl.LOCK_EX, root, busy)
    file.seek(0)
    file.truncate()
    stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    holder = _layout.LockHolder(os.getpid(), machine(), stamp)
    try:  # unbuffered: a write that fails fails here, not again as the file closes
        os.write(file.fileno(), f"{_layout.lock_holder(holder)}\n".encode())
        if shared:
            os.fsync(file.fileno())
    except OSError as error:  # a full disk: the system names no file
        raise naming(error, path) from error


@contextlib.contextmanager
def export_locked(root: pathlib.Path) -> Iterator[None]:
    """Holds the lock of the bench in ``root`` that an export holds
    (``export.lock``: an exclusive ``flock`` naming its holder, as `locked`), so that a
    second export of it at once stops before it deletes the unfinished runs of the
    first. A bench one may not write (`NOT_WRITABLE`) is exported without it.

    Raises:
      BenchError: another export holds it (the message names its pid and host), or it
        cannot be made or written (a full disk: as `locked`).
    """
    path = root / _layout.EXPORT_LOCK
    try:
        file = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (closed by the with below)
    except OSError as error:
        if error.errno not in NOT_WRITABLE:
            raise _unwritable(root, error, "the export's lock file") from error
        yield
        return
    with file:
        try:
            _hold(file, path, root, _EXPORTING)
        except OSError as error:  # a full disk as it is written: as one as it is made
            raise _unwritable(root, error, "the export's lock file") from error
        yield


def check_unlocked(root: pathlib.Path, process: tuple[int, int] | None = None) -> None:
    """Raises `BenchError` when a run or an export holds a lock of the bench in ``root``
    (`locked`, `export_locked`). A lock file deleted since it was listed is held by none.
    For ``process`` ``(i, n)``, a run holding its own lock, only the locks of runs of
    another process count are checked: ``run.lock`` beside ``run.p0of2.lock``, each taken
    before either wrote the marker (`check_processes` has none to read), would have both
    train the same cells, and keep both rows of each.

    Raises:
      BenchError: a lock is held, or a lock file cannot be read (its permissions): the
        message names it.
    """
    names = _layout.per_process_files(root, _layout.LOCK)
    if process is not None:
        count = lambda name: (_layout.process_of(name, _layout.LOCK) or (0, 1))[1]
        names = [name for name in names if count(name) != process[1]]
    held = [(name, _WRITING) for name in names]
    if process is None and (root / _layout.EXPORT_LOCK).is_file():
        held.append((_layout.EXPORT_LOCK, _EXPORTING))
    for name, busy in held:
        try:
            file = open(root / name, encoding="utf-8")  # noqa: SIM115 (closed by the with below)
        except FileNotFoundError:  # deleted since it was listed: none holds it
            continue
        except OSError as error:
            raise BenchError(
                f"cannot tell whether another run or export holds {str(root)!r}: {error}; let this "
                "user read that lock file (its permissions, those of its folder), then run the "
                "command again."
            ) from error
        with file:
            _flock(file, fcntl.LOCK_SH, root, busy)


def check_processes(root: pathlib.Path, count: int, given: bool = False) -> None:
    """Raises `BenchError` when the bench in ``root`` was started with another number of
    processes (its groups are split, and named, per process), or a folder with no marker
    yet holds the status of a process of another count (run apart, before process 0 wrote
    the marker); a bench that does not record its count (made before it was recorded) is
    accepted. ``given``: the count was passed (`run`'s ``process``), not jax.distributed's,
    and the message says to pass it."""
    if _layout.is_bench(root):
        started = read_bench_json(root / _layout.MARKER).get("processes")
    else:
        started = _other_count(root, count)
    if started is not None and started != count:
        how = (
            f"process i passing process=(i, {started})"
            if given
            else f"(--processes {started} in new and add_models, jax.distributed's num_processes)"
        )
        raise BenchError(
            f"{str(root)!r} was started with {started} process(es), and this run has "
            f"{count}: each process trains its own share of the cells, so a different "
            f"count would train it all again. Continue it with {started} process(es) "
            f"{how}, or pick another --dir."
        )


def _other_count(root: pathlib.Path, count: int) -> int | None:
    """The least process count other than ``count`` of the processes whose status files
    (``status.p<i>of<n>.json``) are in ``root``; None where there is none."""
    names = _layout.per_process_files(root, _layout.STATUS)
    processes = [_layout.process_of(name, _layout.STATUS) for name in names]
    return min((p[1] for p in processes if p is not None and p[1] != count), default=None)


def recorded_split(root: pathlib.Path) -> str | None:
    """How the processes sharing the bench in ``root`` split its cells (`_layout.SPLIT_KEY`):
    `_layout.SPLIT_PLAN` where no bench is there yet (the run starts one) or its
    ``bench.json`` records it; None where it records none (a bench made before it was
    recorded keeps each group's own split).

    Raises:
      BenchError: ``bench.json`` records a split this phosjax does not know, or cannot be
        read.

    Examples:
      >>> import tempfile
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     new = recorded_split(pathlib.Path(tmp))
      ...     _ = (pathlib.Path(tmp) / "bench.json").write_text('{"format": 1}')
      ...     new, recorded_split(pathlib.Path(tmp))
      ('plan', None)
    """
    if not _layout.is_bench(root):
        return _layout.SPLIT_PLAN
    path = root / _layout.MARKER
    split = read_bench_json(path).get(_layout.SPLIT_KEY)
    if split not in (None, _layout.SPLIT_PLAN):
        raise BenchError(
            f"{str(path)!r} records the split {split!r} of its cells between processes; this "
            f"phosjax knows {_layout.SPLIT_PLAN!r} (and none: each group's own). A newer "
            "phosjax wrote it, or something else changed it: upgrade phosjax, or restore it "
            "from a backup."
        )
    return split


def _with_earlier(env: dict[str, Any], path: pathlib.Path) -> dict[str, Any]:
    """``env`` (this run's `environment`), keeping in ``earlier`` the other environments
    that earlier runs of the bench recorded in ``path``, each once, in the order they
    first ran it: a bench resumed or extended on another machine still says what trained
    its first results, and one alternating between two machines lists each once (it
    grew by one entry per switch)."""
    previous = read_json(path) if path.is_file() and _runner_env(path) else {}
    earlier = list(previous.pop("earlier", []))
    if previous and previous != env:
        earlier.append(previous)
    once = [e for i, e in enumerate(earlier) if e not in earlier[:i]]
    return {**env, "earlier": once} if once else env


def recorded_imports(config: BenchConfig, modules: Sequence[str]) -> list[str]:
    """The ``modules`` (each once, in order) that registered a model ``config`` uses: the
    model's `register_model` ran in the module or in a module inside it (a package's).
    Those are the modules a later command on the bench must import again.

    Examples:
      >>> from phosjax.bench import BenchConfig
      >>> config = BenchConfig.from_dict({"models": ["mlp"]})
      >>> recorded_imports(config, ["phosjax.models", "phosjax", "json", "phosjax"])
      ['phosjax.models', 'phosjax']
    """
    if not modules:
        return []
    registered = registered_models()
    homes = {
        model_spec(entry.name).module
        for entry in config.model_entries()
        if entry.name in registered
    }
    return [
        module
        for i, module in enumerate(modules)
        if module not in modules[:i]
        and any(home == module or home.startswith(f"{module}.") for home in homes)
    ]


def import_folder(module: str) -> str | None:
    """The folder on Python's path that the imported ``module`` came from: the one that
    holds its top-level module or package; None when that is not imported or has no file
    (a built-in, a namespace package).

    Examples:
      >>> import json
      >>> import_folder("json.decoder") == str(pathlib.Path(json.__file__).parents[1])
      True
      >>> import_folder("sys"), import_folder("not_imported_xyz")
      (None, None)
    """
    top = sys.modules.get(module.split(".")[0])
    file = getattr(top, "__file__", None)
    if file is None:
        return None
    path = pathlib.Path(file).resolve()
    return str(path.parents[1] if path.name == "__init__.py" else path.parent)


def write_meta(
    root: pathlib.Path,
    config: BenchConfig,
    registered: list[str],
    processes: int,
    imports: Sequence[str] = (),
    cells: pa.Table | None = None,
    versions: Mapping[str, str] | None = None,
) -> None:
    """Writes ``bench.json``, ``config.yaml`` and ``env.json`` (this run's environment;
    those of earlier runs that differ are kept in its ``earlier`` list), and ``cells``
    (the plan's rows) as ``cells.parquet``, before the marker: a ``bench.json`` naming a
    config comes with that config's cells (``add_models`` stopped between them left a
    bench said finished, without its new models' cells).

    A bench keeps its creation time and the models ``registered`` when it was made
    (`add_models` adds those registered since). ``processes``: how many processes share
    the bench (see `check_processes`). ``imports``: the modules this run imported to
    register models (``--import``); with those already recorded, the ones that registered
    a model of the bench (`recorded_imports`) are recorded in ``imports`` (absent when
    none: a bench of built-in models, or one made before the record, is written as
    before), for later commands to import again, and the folder each came from in
    ``import_folders`` (`import_folder`; a module not imported now keeps its earlier one).
    A new bench records the split of its cells between processes, `_layout.SPLIT_PLAN`;
    one made before it was recorded keeps none (`recorded_split`). ``versions``: the full
    TFDS name each data set was read at (`_layout.DATASETS_KEY`); None keeps those recorded
    (data sets given in Python record none)."""
    marker_path = root / _layout.MARKER
    created = None
    marker: dict[str, Any] = {_layout.SPLIT_KEY: _layout.SPLIT_PLAN}
    if marker_path.is_file():
        marker = read_bench_json(marker_path)
        created, registered = marker.get("created"), marker.get("registered_models", registered)
    split = marker.get(_layout.SPLIT_KEY)  # a new bench's, or the one recorded (or none)
    earlier = marker.get(_layout.IMPORTS_KEY, [])
    modules = recorded_imports(config, [*(earlier if isinstance(earlier, list) else []), *imports])
    found = marker.get(_layout.IMPORT_FOLDERS_KEY)
    found = found if isinstance(found, dict) else {}
    folders = {m: f for m in modules if (f := import_folder(m) or found.get(m))}
    versions = marker.get(_layout.DATASETS_KEY) if versions is None else versions
    # env.json first: what a start killed after it left is known by it (`_foreign`)
    write_json(root / _layout.ENV, _with_earlier(environment(), root / _layout.ENV))
    write_text(root / _layout.CONFIG, yaml.safe_dump(config.to_dict(), sort_keys=False))
    if cells is not None:
        write_table(root / _layout.CELLS, cells)
    write_json(
        marker_path,
        {
            "format": _layout.FORMAT,
            "created": created or datetime.datetime.now(datetime.UTC).isoformat(),
            "config_hash": config.digest(),
            "registered_models": registered,
            "processes": processes,
            **({_layout.SPLIT_KEY: split} if split else {}),
            **({_layout.DATASETS_KEY: versions} if versions else {}),
            **({_layout.IMPORTS_KEY: modules} if modules else {}),
            **({_layout.IMPORT_FOLDERS_KEY: folders} if folders else {}),
        },
    )


_AGREED_BYTES = 8192
"""The longest value, encoded, that processes `agree` on (room for a bench's directory:
Linux's paths are at most 4096 bytes)."""


def gather(value: str) -> list[str]:
    """``value`` of every process (its index in the list), for all processes alike.

    Raises:
      BenchError: a process left (killed, stopped by Ctrl-C) before it gathered too."""
    if jax.process_count() == 1:
        return [value]
    encoded = value.encode()
    if len(encoded) > _AGREED_BYTES:
        raise ValueError(f"gather: {len(encoded)} bytes, at most {_AGREED_BYTES}: {value!r}.")
    buffer = np.zeros(_AGREED_BYTES + 1, np.uint8)  # one zero byte ends every value
    buffer[: len(encoded)] = np.frombuffer(encoded, np.uint8)
    try:
        rows = gather_rows(buffer)
    except jax.errors.JaxRuntimeError as error:  # a peer killed: its connection closed
        raise BenchError(
            f"process {jax.process_index()} of {jax.process_count()} lost the other processes "
            f"of this bench ({str(error).splitlines()[0]}): one stopped or died. Each keeps "
            "what it trained up to its last checkpoint; once every process has ended "
            "(jax.distributed may hold this one ~100 s), run the same command again in each."
        ) from error
    return [bytes(row).split(b"\0", 1)[0].decode() for row in rows]


def agree(what: str, value: str, differing: Callable[[], str] = lambda: "") -> None:
    """Raises `BenchError` in every process unless all processes give the same ``value``.

    ``what`` names it in the message, which shows each process's value (its sha256
    digest where too long to gather), then ``differing()`` (called in every process
    alike, once they differ)."""
    if len(value.encode()) > _AGREED_BYTES:
        value = f"sha256 {hashlib.sha256(value.encode()).hexdigest()}"
    values = gather(value)
    if len(set(values)) > 1:
        shown = "; ".join(f"process {i}: {v}" for i, v in enumerate(values))
        raise BenchError(
            f"the {len(values)} processes sharing this bench were given different {what} "
            f"({shown}); nothing was written. Start every process with the same command "
            f"and config.{differing()}"
        )


def agree_on_directory(directory: str | os.PathLike) -> None:
    """Raises `BenchError` in every process where two processes on one host were given
    different ``directory`` (each would write its share into a bench of its own); processes
    on other hosts (or in other containers: `machine`) may reach a shared folder by another
    path, so theirs are not compared; on one host, paths through symbolic links to one
    folder are that folder's."""
    here = json.dumps([machine(), os.path.realpath(directory)])
    places = [json.loads(value) for value in gather(here)]
    hosts: dict[str, set[str]] = {}
    for host, path in places:
        hosts.setdefault(host, set()).add(path)
    if any(len(paths) > 1 for paths in hosts.values()):
        shown = "; ".join(f"process {i}: {path} on {host}" for i, (host, path) in enumerate(places))
        raise BenchError(
            f"the {len(places)} processes sharing this bench were given different directories "
            f"({shown}); nothing was written. Give the processes of one host the same --dir "
            "(those of other hosts name the shared folder by their own path)."
        )


def _text(path: pathlib.Path) -> str | None:
    """The text of the file at ``path``; None where it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _bench_seen(root: pathlib.Path) -> str:
    """What ``root`` holds, as processes compare it: no bench, or its marker's digest."""
    if not _layout.is_bench(root):
        return "no bench"
    text = _text(root / _layout.MARKER)
    if text is None:
        return f"a {_layout.MARKER} it cannot read"
    return f"a bench ({_layout.MARKER} sha256 {hashlib.sha256(text.encode()).hexdigest()[:12]})"


def agree_on_bench(directory: str | os.PathLike) -> None:
    """Raises `BenchError` in every process unless all see the same bench, or none, in
    their ``directory``: processes that see different ones would go different ways (one
    continues the bench, one starts it) and meet at different gathers, where they fail
    obscurely or wait until jax.distributed aborts them."""
    if jax.process_count() == 1:
        return
    root = pathlib.Path(directory)
    here = json.dumps([machine(), os.path.realpath(root), _bench_seen(root)])
    places = [json.loads(value) for value in gather(here)]
    if len({seen for _, _, seen in places}) == 1:
        return
    shown = "; ".join(
        f"process {i}: {path!r} on {_layout.host_name(host)} holds {seen}"
        for i, (host, path, seen) in enumerate(places)
    )
    raise BenchError(
        f"the {len(places)} processes sharing this bench do not see one bench in their --dir "
        f"({shown}); nothing was written. Their --dir is not one folder (give every process "
        "the path of one folder that all of them reach: on several hosts, on a file system "
        "they share), or a run wrote there meanwhile (run the command again)."
    )


def agree_on_folder(root: pathlib.Path, process: tuple[int, int]) -> None:
    """Raises `BenchError` in every process of a bench unless each sees, in its ``root``,
    the lock file that every other one holds there (`locked`) as that one wrote it: their
    --dir is then one folder. Folders of the same path on hosts that share no file system
    pass `agree_on_directory`, and each process would write its share of the bench into
    its own, with no error. Call it holding this process's lock, before writing more."""
    if jax.process_count() == 1:
        return
    name = _layout.process_name(_layout.LOCK, process)
    own = [name, _text(root / name), machine(), os.path.realpath(root)]
    held = [json.loads(value) for value in gather(json.dumps(own))]
    unseen = [i for i, (lock, text, _, _) in enumerate(held) if _text(root / lock) != text]
    missed = [json.loads(value) for value in gather(json.dumps(unseen))]
    if not any(missed):
        return
    where = lambda i: f"{held[i][3]!r} on {_layout.host_name(held[i][2])}"
    said = "; ".join(
        f"process {i} ({where(i)}) does not see the lock file"
        f"{'s of processes' if len(others) > 1 else ' of process'} "
        f"{listing([f'{j} ({where(j)})' for j in others])}"
        for i, others in enumerate(missed)
        if others
    )
    raise BenchError(
        f"the --dir of the {len(held)} processes sharing this bench is not one folder: "
        f"{said}; nothing but lock files was written. Give every process the path of one "
        "folder that all of them reach (on several hosts: on a file system they share), "
        "where each writes its share of the bench."
    )


def differences_from_process_0(config: BenchConfig | None) -> str:
    """Where the others' configs differ from process 0's (`BenchConfig.differences`), in
    every process alike: `` Their configs differ from process 0's: process 1: seeds: 2 ->
    3.``; "" where they do not, or one process was given none or one too long to gather."""
    text = json.dumps(config.to_dict()) if config is not None else ""
    texts = gather(text if len(text.encode()) <= _AGREED_BYTES else "")
    if not all(texts):
        return ""
    first, *others = [BenchConfig.from_dict(json.loads(t)) for t in texts]
    differing = {i: first.differences(other) for i, other in enumerate(others, 1)}
    said = [f"process {i}: {'; '.join(found)}" for i, found in differing.items() if found]
    return f" Their configs differ from process 0's: {', '.join(said)}." if said else ""


def in_every_process(fn: Callable[[], T], what: str) -> T:
    """``fn()``, in a bench's every process; when it raises in any of them, every process
    raises: that one its own error, the others a `BenchError` naming it, so no process is
    left waiting for the others at a later barrier.

    ``what`` says what ``fn`` does, for the others' message ("plan the bench")."""
    error: Exception | None = None
    try:
        result = fn()
    except Exception as caught:  # any: a peer must not wait for this process
        error = caught
    failed = [i for i, flag in enumerate(gather("x" if error else "")) if flag]
    if error is not None:
        raise error
    if failed:
        raise BenchError(
            f"process {failed[0]} could not {what} (see its message); this process stops "
            "too, so none waits for it."
        )
    return result


def agree_on_arguments(
    directory: str | os.PathLike,
    config: BenchConfig | None,
    *,
    resume: bool,
    force: bool,
    imports: Sequence[str] = (),
) -> None:
    """Raises `BenchError` in every process unless the processes of a bench were given
    the same arguments (`agree_on_directory`, then the rest, ``imports`` too): first, as
    what a process does next (which collectives it joins) depends on them, and on the
    bench each sees there (`agree_on_bench`)."""
    agree_on_directory(directory)
    agree_on_bench(directory)
    given = f"config {config.digest()}" if config is not None else "no config"
    arguments = f"{given}, resume={resume}, force={force}, imports={list(imports)!r}"
    agree("arguments", arguments, lambda: differences_from_process_0(config))


def choose_config_together(
    directory: str | os.PathLike,
    config: BenchConfig | None,
    *,
    resume: bool = False,
    force: bool = False,
    check: Callable[[BenchConfig], object] = lambda config: None,
) -> tuple[BenchConfig, pathlib.Path | None]:
    """`choose_config`, in every process of a bench (given the same arguments:
    `agree_on_arguments`).

    With ``force`` and a config, each process first runs ``check(config)`` (e.g. plans
    it): a config that fails there moves no old bench aside. Process 0 then chooses alone
    (only it moves an old bench aside, saying where on stderr, and says what ``resume`` or
    ``force`` did), and the others after it, seeing what it left; where one of them cannot
    (its folder still holds the bench process 0 moved: they share no folder), all stop.

    Raises:
      BenchError: ``check`` failed, or `choose_config` refused (in the process where it
        did: its message; in the others: a pointer to it).
    """
    if force and config is not None:
        in_every_process(lambda: check(config), "plan the bench")
    first = jax.process_index() == 0
    chosen = in_every_process(
        lambda: choose_config(directory, config, resume=resume, force=force) if first else None,
        "open the bench",
    )
    if chosen is not None and chosen[1] is not None:  # said even if another fails next
        print(f"moved the old bench to {chosen[1]}", file=sys.stderr)
    return in_every_process(
        lambda: chosen or _after_process_0(directory, config, resume=resume, force=force),
        "open the bench",
    )


def _after_process_0(
    directory: str | os.PathLike, config: BenchConfig | None, *, resume: bool, force: bool
) -> tuple[BenchConfig, pathlib.Path | None]:
    """`choose_config` in a process other than 0, once process 0 chose: with ``force``, a
    bench it refuses is one process 0 moved aside from its own folder, not this one's."""
    try:
        return choose_config(directory, config, resume=resume, quiet=True)
    except BenchError as error:
        if not (force and _layout.is_bench(pathlib.Path(directory))):
            raise
        raise BenchError(
            f"{str(directory)!r} still holds a bench of another config, though process 0 "
            "moved the old bench aside (--force): this --dir is not process 0's folder. Give "
            "every process the path of one folder that all of them reach (on several hosts: "
            "on a file system they share)."
        ) from error
