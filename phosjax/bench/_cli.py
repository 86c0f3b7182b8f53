"""What the bench's entry points share: a clean exit on bad input, `--import`, `--dir`."""

import functools
import sys
from collections.abc import Callable, Sequence
from typing import Any

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


def entry_point(main: Callable[[Sequence[str] | None], Any]) -> Callable[..., int]:
    """Wraps ``main(argv)``: a `BenchError` prints ``error: ...`` and returns 2; Ctrl-C
    prints one line (what was written is kept) and returns 130."""

    @functools.wraps(main)
    def wrapped(argv: Sequence[str] | None = None) -> int:
        try:
            main(argv)
        except BenchError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(
                "\ninterrupted: everything written so far is kept (a bench continues from "
                "its last checkpoint when the same command runs again).",
                file=sys.stderr,
            )
            return 130
        return 0

    return wrapped
