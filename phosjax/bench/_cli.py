"""What the bench's entry points share: a clean exit on bad input, `--import`, `--dir`."""

import functools
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from jsonargparse import ArgumentParser

from phosjax.bench._config import BenchError
from phosjax.models import import_models


def add_common(parser: ArgumentParser) -> None:
    """``--dir`` (required) and ``--import`` (modules that register models)."""
    parser.add_argument("--dir", required=True, help="the bench directory")
    parser.add_argument(
        "--import",
        nargs="+",
        default=[],
        help="modules to import first, e.g. ones that register models",
    )


def import_all(modules: Sequence[str]) -> list[str]:
    """Imports ``modules``; the model names they registered."""
    added = []
    for module in modules:
        try:
            added += import_models(module)
        except ImportError as error:
            raise BenchError(f"--import {module}: {error}") from error
    return added


INTERRUPTED = 130
"""The exit status after Ctrl-C (128 + SIGINT), as shells report it."""

RESUMES = (
    "everything written so far is kept (a bench continues from its last checkpoint when "
    "the same command runs again)."
)
"""What Ctrl-C leaves, for the commands that train a bench (``new``, ``add_models``)."""


def entry_point(
    interrupted: str,
) -> Callable[[Callable[[Sequence[str] | None], int | None]], Callable[..., int]]:
    """Wraps ``main(argv)``, which returns its exit status (None: 0): a `BenchError`
    prints ``error: ...`` and returns 2; Ctrl-C prints ``interrupted: <interrupted>``
    (what it leaves and how to go on) and returns `INTERRUPTED`.

    Examples:
      >>> @entry_point("nothing was written.")
      ... def main(argv=None):
      ...     raise KeyboardInterrupt
      >>> import contextlib, io
      >>> with contextlib.redirect_stderr(io.StringIO()) as err:
      ...     status = main([])
      >>> status, err.getvalue()
      (130, '\\ninterrupted: nothing was written.\\n')
    """

    def wrap(main: Callable[[Sequence[str] | None], int | None]) -> Callable[..., int]:
        @functools.wraps(main)
        def wrapped(argv: Sequence[str] | None = None) -> int:
            try:
                return main(argv) or 0
            except BenchError as error:
                print(f"error: {error}", file=sys.stderr)
                return 2
            except KeyboardInterrupt:  # "\n": off the line where the terminal echoed ^C
                print(f"\ninterrupted: {interrupted}", file=sys.stderr)
                return INTERRUPTED

        return wrapped

    return wrap


def exit_process(status: int) -> NoReturn:
    """Ends the process with ``status``; after Ctrl-C (`INTERRUPTED`) at once, skipping
    the interpreter's teardown: a Ctrl-C that cut an XLA compile short can crash that
    teardown (a segmentation fault after the one line said, jax 0.10 on CPU), and by
    then every file is written and closed."""
    if status == INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
