"""`read_file`: one bench file read, a damaged one named in a `BrokenFileError`.

The bench's own reads (``bench.json``, the profile) and the viewer's share it, so a
damaged file is named the same way wherever it is found. No jax here: the viewer and
the profile import it.
"""

import pathlib
from collections.abc import Callable
from typing import TypeVar

import pyarrow as pa

from phosjax.bench._errors import BrokenFileError

UNREADABLE = (OSError, ValueError, pa.ArrowException)
"""What reading a damaged, vanished or foreign file raises: the OS's errors, the
`ValueError` of `json`, of pandas and of a bad encoding (`UnicodeDecodeError`), and
pyarrow's own errors (not all of them are one of the others)."""

_T = TypeVar("_T")


def read_file(
    path: pathlib.Path, read: Callable[[pathlib.Path], _T], name: str, hint: str = ""
) -> _T:
    """``read(path)``; what a damaged file raises (`UNREADABLE`) becomes a
    `BrokenFileError`: ``cannot read <name>: <error type>: <error>[; <hint>]``.

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
        tail = f"; {hint}" if hint else ""
        raise BrokenFileError(
            f"cannot read {name}: {type(error).__name__}: {error}{tail}"
        ) from error
