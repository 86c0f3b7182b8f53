"""What the bench's entry points share: a clean exit on bad input, `--import`, `--dir`."""

import functools
import os
import pathlib
import re
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn

from jsonargparse import ArgumentParser

from phosjax.bench import _layout
from phosjax.bench._config import BenchError
from phosjax.bench._directory import read_bench_json
from phosjax.bench._interrupt import ctrl_c_kept
from phosjax.bench._usage import refuse_empty_dir, usage_error
from phosjax.models import import_models, registered_models

_KEY = re.compile(r'\AParser key "([^"]+)":\s*')


def _split_top(text: str) -> list[str]:
    """``text`` split at the commas outside brackets: ``"int, list[int, str]"`` in two."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    return [*parts, text[start:].strip()]


def value_error_line(message: str) -> str:
    r"""jsonargparse's (multi-line) message about a bad value on one line: the option, the
    value given and the types it takes; other messages as they are.

    Examples:
      >>> value_error_line('Parser key "eval_every":\n  Expected a <class \'int\'>. Got value: 1.5')
      '--eval_every 1.5: expected int'
      >>> value_error_line("unrecognized arguments: --x")
      'unrecognized arguments: --x'
    """
    key = _KEY.match(message)
    if key is None:
        return message
    rest = message[key.end() :]
    given = re.search(r"^  Given value: (.*)$", rest, re.M) or re.search(
        r"Got value: (.*)$", rest, re.M
    )
    types = re.search(r"^  Subtypes: \[(.*)\]$", rest, re.M) or re.search(
        r"Expected a (<class '\w+'>)", rest
    )
    if given is None or types is None:  # not a value's type: its first line
        return f"--{key[1]}: {rest.strip().splitlines()[0].strip()}"
    names = [
        re.sub(r"<class '(\w+)'>", r"\1", t).replace("NoneType", "null")
        for t in _split_top(types[1])
    ]
    expected = " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
    hint = " (a list is written '[a, b]')" if "list" in expected else ""
    return f"--{key[1]} {given[1]}: expected {expected}{hint}"


class Parser(ArgumentParser):
    """The bench commands' parser: a usage error is one line, ``error: ...`` (the option,
    what was given and what it takes; a near option name for a misspelt one) and exit
    status 2, without jsonargparse's usage of every option."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:  # jsonargparse parsing inside: it raises
            super().error(message, ex)
        usage_error(self, value_error_line(message))

    def parse_args(self, *args: Any, **kwargs: Any) -> Any:
        """jsonargparse's `parse_args`; an empty ``--dir`` is refused (`refuse_empty_dir`)."""
        return refuse_empty_dir(self, super().parse_args(*args, **kwargs))


def add_common(parser: ArgumentParser) -> None:
    """``--dir`` (required) and ``--import`` (modules that register models)."""
    parser.add_argument("--dir", required=True, help="the bench directory")
    parser.add_argument(
        "--import",
        nargs="+",
        default=[],
        help="modules to import first, e.g. ones that register models",
    )


class _NotFound(BenchError):
    """`import_all`'s error for a module that is not found; ``missing``: the name Python
    did not find (the module, or a package it is in)."""

    def __init__(self, message: str, missing: str) -> None:
        super().__init__(message)
        self.missing = missing


def import_all(modules: Sequence[str]) -> list[str]:
    """Imports ``modules``; the model names they registered.

    Raises:
        BenchError: a module is not found (one line: its name, and where Python looks),
            or it raised while it ran (a line naming it, then the traceback of its own
            code, without the frames of the import machinery).
    """
    added = []
    for module in modules:
        try:
            added += import_models(module)
        except Exception as error:
            cause = error.__cause__ if isinstance(error, ModuleNotFoundError) else None
            raised = cause if isinstance(cause, ModuleNotFoundError) else error
            missing = getattr(raised, "name", None)
            if isinstance(raised, ModuleNotFoundError) and missing and _is_part(missing, module):
                raise _NotFound(_not_found(module, missing), missing) from None
            raise BenchError(
                f"--import {module} failed: it raised {type(raised).__name__} in its own code "
                f"(traceback below)\n{_own_traceback(raised)}"
            ) from error
    return added


def import_recorded(directory: str, needed: Iterable[str]) -> list[str]:
    """Imports the modules the bench in ``directory`` recorded (``bench.json``'s
    ``imports``: the ``--import``s that registered its models); the names they registered.
    Nothing when ``directory`` holds no bench, or one made before the record.

    A recorded module that is no longer found (renamed, moved, not on the path) is an
    error only when a model named in ``needed`` (those the command will plan) is still
    unregistered: a module given with ``--import`` under its new name may register them.

    Raises:
        BenchError: a recorded module is not found and a ``needed`` model is not
            registered (the message names both, the bench and what to do), or a recorded
            module raised while it ran (as `import_all` says it).
    """
    root = pathlib.Path(directory)
    if not _layout.is_bench(root):
        return []
    recorded = read_bench_json(root / _layout.MARKER).get(_layout.IMPORTS_KEY, [])
    added, lost = [], {}
    for module in recorded if isinstance(recorded, list) else []:
        try:
            added += import_all([module])
        except _NotFound as error:
            lost[module] = error.missing
        except BenchError as error:  # it raised: its own traceback, said as recorded
            raise BenchError(
                f"the bench {str(root)!r} imports {module!r} (recorded in its "
                f"{_layout.MARKER} by an earlier --import), and {error}"
            ) from error.__cause__
    missing = sorted(set(needed) - set(registered_models()))
    if lost and missing:
        modules = ", ".join(
            f"{module!r}" + (f" (it needs {name!r})" if name != module else "")
            for module, name in lost.items()
        )
        raise BenchError(
            f"the bench {str(root)!r} registers its model{'s' * (len(missing) > 1)} "
            f"{', '.join(map(repr, missing))} by importing {modules} (recorded in its "
            f"{_layout.MARKER} by an earlier --import), which Python cannot find now; run "
            "from the folder that holds it (`python -m` puts the current folder on the "
            "path), or pip install it, or, if it was renamed, pass --import NEW_NAME (the "
            "bench then records that one)"
        )
    return added


def _is_part(name: str, module: str) -> bool:
    """Whether `name` is `module` or one of the packages it is in.

    Examples:
      >>> _is_part("mypkg", "mypkg.models"), _is_part("torch", "mypkg.models")
      (True, False)
    """
    return module == name or module.startswith(f"{name}.")


def _not_found(module: str, missing: str) -> str:
    of = f" (for {module!r})" if missing != module else ""
    return (
        f"--import {module}: no module named {missing!r}{of} on Python's path; run from the "
        "folder that holds it (`python -m` puts the current folder on the path), or pip "
        "install it"
    )


def _own_traceback(error: BaseException) -> str:
    """`error`'s traceback from the first frame outside importlib and phosjax's import
    code: the frames of the imported module's own code."""
    here = (__file__, sys.modules[import_models.__module__].__file__)
    frame = error.__traceback__
    while frame is not None and (
        frame.tb_frame.f_code.co_filename.startswith("<frozen importlib")
        or frame.tb_frame.f_code.co_filename in here
        or frame.tb_frame.f_code.co_filename.endswith(os.path.join("importlib", "__init__.py"))
    ):
        frame = frame.tb_next
    lines = traceback.format_exception(type(error), error, frame)
    return "".join(lines).rstrip("\n")


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
                with ctrl_c_kept():
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
