"""`Checkpoints`: each group's `GroupState` saved every few steps, one file per step.

A checkpoint is ``<directory>/<step>``: an ``.npz`` archive of the state's leaves keyed
by their `jax.tree_util.keystr` paths, written to a temporary file and renamed over its
name (`phosjax.bench._store.write_bytes`), so a killed process leaves either a whole
checkpoint or none. Each process reads and writes only its own directory: nothing here
waits for another process.
"""

import errno
import io
import os
import pathlib
import shutil
import zipfile
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import numpy as np

from phosjax._listing import listing
from phosjax._pickling import PicklableError
from phosjax.bench._config import BenchError
from phosjax.bench._store import write_bytes
from phosjax.train._state import stored_as

T = TypeVar("T")


def encode(state: Any) -> bytes:
    """``state`` (a pytree of arrays) as the bytes of an ``.npz`` keyed by leaf path."""
    leaves = jax.tree_util.tree_flatten_with_path(jax.device_get(state))[0]
    arrays: dict[str, Any] = {jax.tree_util.keystr(p): np.asarray(leaf) for p, leaf in leaves}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


_DAMAGED = (ValueError, EOFError, zipfile.BadZipFile, NotImplementedError)
"""What reading a damaged ``.npz`` raises: a bad CRC or header (`zipfile.BadZipFile`; a
zip version or compression read from damaged bytes, `NotImplementedError`), a cut-off
member (`EOFError`, `ValueError`), a seek to an offset read from a damaged header (`OSError`
EINVAL); the OS's other errors are `_unreadable` (`system_refused`)."""


def system_refused(error: OSError) -> bool:
    """Whether ``error`` is the system's refusal to read a checkpoint or a morph state
    (its permissions, the disk), not its bytes: an `OSError` but EINVAL (`_DAMAGED`).

    Examples:
      >>> refused = PermissionError(13, "Permission denied")
      >>> system_refused(refused), system_refused(OSError(22, "Invalid argument"))
      (True, False)
    """
    return error.errno != errno.EINVAL


class RefusedError(BenchError):
    """The system would not read a checkpoint or a morph state (`_unreadable`); its
    ``__cause__`` is the system's `OSError`. Any other `BenchError` of `decode` but
    `OtherLeavesError` is of a damaged file."""


def _unreadable(path: pathlib.Path, error: OSError) -> RefusedError:
    """The error for checkpoint ``path``, which the system would not read (``error``:
    its permissions, the disk), whatever its bytes.

    Examples:
      >>> print(_unreadable(pathlib.Path("ck/g/8"), PermissionError(13, "Permission denied")))
      cannot read checkpoint 'ck/g/8': [Errno 13] Permission denied. Let this user read it ...
    """
    return RefusedError(
        f"cannot read checkpoint {str(path)!r}: {error}. Let this user read it (its "
        f"permissions, those of {str(path.parent)!r}), or, where the disk fails, move it out "
        "and run the command again: the group resumes from its checkpoint before (or from "
        "the start), its rows after that trained again."
    )


class OtherLeavesError(PicklableError, BenchError):
    """`decode`: the file holds other leaves than expected; ``problems`` names each."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


def _read(path: pathlib.Path, read: Callable[[Any], T]) -> T:
    """``read`` of the ``.npz`` archive in ``path`` (a `numpy.lib.npyio.NpzFile`).

    Raises:
      RefusedError: the system would not read the file (`_unreadable`).
      BenchError: the file cannot be read (damaged on the disk).
    """
    try:
        # the file closed here: np.load leaves it open where zipfile raises on its bytes
        with open(path, "rb") as file, np.load(file, allow_pickle=False) as archive:
            return read(archive)
    except (OSError, *_DAMAGED) as error:  # whole when written: changed on the disk since
        if isinstance(error, OSError) and system_refused(error):
            raise _unreadable(path, error) from error
        raise BenchError(
            f"cannot read checkpoint {str(path)!r}: {type(error).__name__}: {error}. It was "
            "written whole, so something else damaged it. Move it out of "
            f"{str(path.parent)!r} and run the command again: the group resumes from its "
            "checkpoint before (or from the start), its rows after that trained again."
        ) from error


def decode(path: pathlib.Path, like: Any) -> Any:
    """The state stored in ``path``, with the structure, shapes and dtypes of ``like``.

    Raises:
      RefusedError: the system would not read the file (`_unreadable`).
      BenchError: the file cannot be read (damaged on the disk).
      OtherLeavesError: its leaves are not those of ``like`` (names, shapes, dtypes).
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
    expected = {jax.tree_util.keystr(p): leaf for p, leaf in leaves}
    stored, extra = _read(
        path,
        lambda archive: (
            {k: stored_as(archive[k], expected[k]) for k in archive.files if k in expected},
            sorted(set(archive.files) - set(expected)),
        ),
    )
    problems = [f"unexpected leaves {extra}"] if extra else []
    for name, leaf in expected.items():
        want = f"{np.dtype(leaf.dtype)}{tuple(leaf.shape)}"
        got = f"{stored[name].dtype}{stored[name].shape}" if name in stored else "nothing"
        if want != got:
            problems.append(f"{name}: expected {want}, found {got}")
    if problems:
        raise OtherLeavesError(
            f"checkpoint {str(path)!r} does not hold this group's training state "
            f"({listing(problems, sep='; ')}). "
            "Was the bench started with other model code? Move the group's checkpoints "
            "away to train it again from the start.",
            problems,
        )
    return jax.tree_util.tree_unflatten(treedef, [stored[name] for name in expected])


def readable(path: pathlib.Path) -> bool:
    """Whether ``path`` is a whole ``.npz`` archive (its index, at the end, is there).

    Raises:
      RefusedError: the system would not read it (`_unreadable`): it is not cut short.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.namelist())
    except (FileNotFoundError, zipfile.BadZipFile, NotImplementedError):  # gone; cut short
        return False
    except OSError as error:
        if system_refused(error):
            raise _unreadable(path, error) from error
        return False


class Checkpoints:
    """The checkpoints of one group in ``directory``, local to this process.

    Args:
      directory: created at the first save.
      keep: how many of the latest checkpoints to keep.
    """

    def __init__(self, directory: str | os.PathLike, keep: int = 2) -> None:
        self._directory = pathlib.Path(directory)
        self._keep = keep

    def _steps(self) -> list[int]:
        """The steps of the checkpoint files present, newest first."""
        if not self._directory.is_dir():
            return []
        names = (p.name for p in self._directory.iterdir() if p.is_file())
        return sorted((int(name) for name in names if name.isdigit()), reverse=True)

    def latest(self) -> int | None:
        """The step of the newest whole checkpoint (None: none yet)."""
        return next((s for s in self._steps() if readable(self._directory / str(s))), None)

    def passed_over(self) -> list[pathlib.Path]:
        """The checkpoint files newer than `latest`: cut short (not whole), so a resume
        passes them over. phosjax writes each whole: something else cut them short."""
        latest = self.latest() or 0
        return [self._directory / str(s) for s in self._steps() if s > latest]

    def save(self, step: int, state: Any) -> None:
        """Saves ``state`` (any pytree of arrays) as the checkpoint of ``step``, then
        deletes the older ones but the ``keep`` - 1 newest. Newer files (`passed_over`:
        cut short) count for nothing: saves that reach them replace them, as they replace a
        folder of that name, a checkpoint of phosjax before 2026-12-03 (orbax's), which
        this one does not read (`latest` passes it over)."""
        path = self._directory / str(step)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        write_bytes(path, encode(state))
        for old in [s for s in self._steps() if s < step][self._keep - 1 :]:
            (self._directory / str(old)).unlink()

    def paths(self, step: int) -> list[str]:
        """The leaf paths (`jax.tree_util.keystr`'s) the checkpoint of ``step`` holds.

        Raises:
          BenchError: it cannot be read (damaged on the disk).
        """
        return _read(self._directory / str(step), lambda archive: list(archive.files))

    def restore(self, step: int, like: Any) -> Any:
        """The state saved at ``step``, with the structure, shapes and dtypes of ``like``
        (numpy arrays).

        Raises:
          BenchError: the checkpoint does not match ``like``.
        """
        return decode(self._directory / str(step), like)

    def close(self) -> None:
        """Nothing to release: every save is written whole before it returns."""
