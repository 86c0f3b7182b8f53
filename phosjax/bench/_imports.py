"""Importing the modules that register a bench's models: ``--import``, and those a bench
recorded (``bench.json``'s ``imports``), for the commands and the Python API alike."""

import os
import pathlib
import shlex
import sys
import traceback
from collections.abc import Iterable, Sequence

from phosjax._pickling import PicklableError
from phosjax.bench import _layout
from phosjax.bench._config import BenchConfig, BenchError
from phosjax.bench._directory import open_bench, read_bench_json
from phosjax.models import import_models, registered_models


class _NotFound(PicklableError, BenchError):
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
        if "/" in module or os.sep in module or module.endswith(".py"):
            raise BenchError(_a_path(module))
        if not all(part.isidentifier() for part in module.split(".")):
            raise BenchError(
                f"--import {module!r} is no module's name: give Python names joined by dots, "
                "e.g. --import mypkg.models (several modules: --import mypkg.a mypkg.b)"
            )
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


def import_recorded(directory: str | os.PathLike | None, needed: Iterable[str]) -> list[str]:
    """Imports the modules the bench in ``directory`` recorded (``bench.json``'s
    ``imports``: the ``--import``s that registered its models); the names they registered.
    Nothing when ``directory`` is None or holds no bench, or one made before the record.

    A recorded module that is no longer found (renamed, moved, not on the path) is an
    error only when a model named in ``needed`` (those the command will plan) is still
    unregistered: a module given with ``--import`` under its new name may register them.

    Raises:
        BenchError: a recorded module is not found and a ``needed`` model is not
            registered (the message names both, the bench and what to do), or a recorded
            module raised while it ran (as `import_all` says it).
    """
    root = pathlib.Path(directory or "")
    if directory is None or not _layout.is_bench(root):
        return []
    marker = read_bench_json(root / _layout.MARKER)
    recorded = marker.get(_layout.IMPORTS_KEY, [])
    folders = marker.get(_layout.IMPORT_FOLDERS_KEY)
    folders = folders if isinstance(folders, dict) else {}  # none in older benches
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
        ways = "; ".join(
            f"for {m!r}, {_how_to_import(m, name, folders.get(m))}" for m, name in lost.items()
        )
        raise BenchError(
            f"the bench {str(root)!r} registers its model{'s' * (len(missing) > 1)} "
            f"{', '.join(map(repr, missing))} by importing {modules} (recorded in its "
            f"{_layout.MARKER} by an earlier --import), which Python cannot find now on its "
            f"path; {ways}; or, if it was renamed, pass --import NEW_NAME (the bench then "
            "records that one)"
        )
    return added


def _is_part(name: str, module: str) -> bool:
    """Whether `name` is `module` or one of the packages it is in.

    Examples:
      >>> _is_part("mypkg", "mypkg.models"), _is_part("torch", "mypkg.models")
      (True, False)
    """
    return module == name or module.startswith(f"{name}.")


def _a_path(module: str) -> str:
    """The error for an ``--import`` given a file or folder (``my_models.py``) rather
    than a module's name, with the name and the folder that make it one.

    Examples:
      >>> print(_a_path("src/my_models.py"))
      --import src/my_models.py: --import takes a module's name, as Python's import
      does, not a file or folder; pass --import my_models and run from the folder
      'src' or add it to PYTHONPATH (PYTHONPATH=src python -m ...)
      >>> _a_path("my_models.py").split("; ")[1]
      'pass --import my_models and run from the folder that holds my_models.py'

    A file in a package (folders holding ``__init__.py``) is named with the package:
    ``mypkg/models.py`` gives ``--import mypkg.models``, run from the folder above it.
    """
    path = pathlib.Path(module)
    parts = [path.stem if path.suffix == ".py" else path.name]
    parent = path.parent
    while parent.name and (parent / "__init__.py").is_file():
        parts.insert(0, parent.name)
        parent = parent.parent
    name = ".".join(parts)
    folder = str(parent)
    holds = f"the package {parts[0]}/" if len(parts) > 1 else path.name
    where = (
        f"run from the folder that holds {holds}"
        if folder == "."
        else f"run from the folder {folder!r} or add it to PYTHONPATH (PYTHONPATH="
        f"{shlex.quote(folder)} python -m ...)"
    )
    return (
        f"--import {module}: --import takes a module's name, as Python's import does, not "
        f"a file or folder; pass --import {name} and {where}"
    )


def _not_found(module: str, missing: str) -> str:
    of = f" (for {module!r})" if missing != module else ""
    return (
        f"--import {module}: no module named {missing!r}{of} on Python's path; "
        f"{_how_to_import(module, missing)}"
    )


def _how_to_import(module: str, missing: str, folder: str | None = None) -> str:
    """What makes ``module`` importable where Python did not find ``missing`` (``module``,
    or a package it is in): the file or folder to look for (in ``folder`` when the bench
    recorded it, if known), and the ways onto the path.

    Examples:
      >>> _how_to_import("my_models", "my_models").split(" (`")[0]
      'run from the folder that holds my_models.py or the package my_models/'
      >>> _how_to_import("lab.models", "lab").split(" (`")[0]
      'run from the folder that holds the package lab/'
      >>> print(_how_to_import("my_models", "my_models", "/home/me/my src"))
      run from the folder that holds my_models.py or the package my_models/, which was
      '/home/me/my src' when the bench recorded it (`python -m` puts the current folder
      on Python's path), or add that folder to PYTHONPATH (PYTHONPATH='/home/me/my src'
      python -m ...), or pip install it
    """
    path = missing.replace(".", "/")
    what = f"{path}.py or the package {path}/" if missing == module else f"the package {path}/"
    was = f", which was {folder!r} when the bench recorded it" if folder else ""
    return (
        f"run from the folder that holds {what}{was} (`python -m` puts the current folder on "
        "Python's path), or add that folder to PYTHONPATH (PYTHONPATH="
        f"{shlex.quote(folder) if folder else 'FOLDER'} python -m ...), or pip install it"
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


def planned_models(
    directory: str | os.PathLike | None, config: BenchConfig | None, force: bool
) -> set[str]:
    """The model names a run may plan: those of ``config`` and, unless ``force`` moves
    it aside, those of the bench already in ``directory`` (continued or extended)."""
    names = {entry.name for entry in config.model_entries()} if config else set()
    if directory is not None and not force and _layout.is_bench(pathlib.Path(directory)):
        names |= {entry.name for entry in open_bench(directory)[0].model_entries()}
    return names


def import_for_bench(
    directory: str | os.PathLike | None, imports: Sequence[str], needed: Iterable[str]
) -> list[str]:
    """Imports ``imports`` (``--import``), then the modules the bench in ``directory``
    recorded (`import_recorded`, ``needed``: the model names the caller will plan); the
    model names they registered. `run`, `add_models_to` and ``new --print_config`` call
    it before they plan, so the commands and the Python API alike continue a bench of
    one's own models without importing its modules first (an import already done is not
    run again).

    Raises:
        BenchError: as `import_all` and `import_recorded`.

    Examples:
      >>> import tempfile
      >>> with tempfile.TemporaryDirectory() as directory:  # no bench there: imports alone
      ...     import_for_bench(directory, ["json"], ["mlp"])
      []
    """
    return [*import_all(imports), *import_recorded(directory, needed)]
