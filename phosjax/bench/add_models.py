"""``python -m phosjax.bench.add_models --dir DIR [--import MODULE ...] [--models NAME ...]``.

Adds to an existing bench the models registered since it was made (after importing
``--import`` modules) or those given with ``--models``, and trains their cells (and
finishes the bench's unfinished groups), under the bench's stored config. The modules
the bench recorded (the ``--import``s that registered its models) are imported again
first; a new ``--import`` that registers a model it adds is recorded too. A ``--models``
value is a registered name, names joined by commas, a YAML entry or a YAML list of them,
as in the config's ``models``: ``--models logreg '{name: mlp, width: [64]}'``,
``--models logreg,cnn1d`` or ``--models '[logreg, cnn1d]'``. Processes sharing the bench
each run it with ``new``'s options that join them (``--coordinator``, ``--processes``,
``--process_id`` or ``--distributed``).
"""

from collections.abc import Sequence
from typing import Any

import yaml
from jsonargparse import ArgumentParser

import phosjax.bench._interrupt  # noqa: F401  first: a Ctrl-C while jax loads is kept
from phosjax._yaml import safe_load
from phosjax.bench._argv import comma_names, dir_option, option_value
from phosjax.bench._cli import (
    Parser,
    add_common,
    data_bars_hidden,
    entry_point,
    exit_process,
    finished_cells,
    kept_in_bench,
)
from phosjax.bench._compile_cache import add_compilation_cache, compilation_cache
from phosjax.bench._config import BenchError, ModelEntry
from phosjax.bench._directory import open_bench
from phosjax.bench._join import add_join_options, join_processes
from phosjax.bench._profile import time_start_up
from phosjax.bench._runner import add_models_to, has_entry
from phosjax.bench._summary import command_line
from phosjax.bench._usage import usage_error


def parser() -> ArgumentParser:
    """The command line of ``phosjax.bench.add_models``."""
    parser = Parser(prog="python -m phosjax.bench.add_models", description=__doc__)
    add_common(parser)
    add_join_options(parser)
    parser.add_argument(
        "--models",
        nargs="+",
        action="extend",
        default=None,
        help="model names (or names joined by commas) or YAML entries to add, e.g. logreg "
        "'{name: mlp, width: [64]}'",
    )
    parser.add_argument("--no_progress", action="store_true", help="no progress bar, no summary")
    add_compilation_cache(parser)
    return parser


def model_arguments(text: str) -> list[str | dict[str, Any]]:
    """The models of one ``--models`` value: a name, names joined by commas, an entry
    written as a YAML mapping, or a YAML list of them, as ``new --models`` takes.

    Examples:
      >>> model_arguments("logreg"), model_arguments("{name: mlp, width: [64]}")
      (['logreg'], [{'name': 'mlp', 'width': [64]}])
      >>> model_arguments("logreg,cnn1d")
      ['logreg', 'cnn1d']
      >>> model_arguments("[logreg, {name: mlp, width: [64]}]")
      ['logreg', {'name': 'mlp', 'width': [64]}]
    """
    start = text.lstrip()[:1]
    if start not in ("{", "["):
        return list(comma_names("--models", text))
    kind = "mapping" if start == "{" else "list"
    try:
        loaded = safe_load(text)
    except yaml.YAMLError as error:
        raise BenchError(
            f"--models {text!r} is not a YAML {kind} ({getattr(error, 'problem', error)}); "
            "write an entry as '{name: mlp, width: [64]}', a list as "
            "'[logreg, {name: mlp, width: [64]}]'."
        ) from error
    return loaded if isinstance(loaded, list) else [loaded]


def _refuse_data_dir(argv: Sequence[str]) -> None:
    """A usage error for a ``--data_dir`` in ``argv``, which argparse called only an
    unrecognized argument: add_models reads the bench's own, which ``new`` changes."""
    if not any(arg.split("=", 1)[0] == "--data_dir" for arg in argv):
        return
    moved = ["--dir", dir_option(argv) or "BENCH", "--data_dir"]
    moved.append(option_value(argv, "--data_dir") or "DATA_DIR")
    usage_error(
        parser(),
        "add_models has no --data_dir: it reads the data sets from the bench's data_dir (its "
        "config.yaml); where they moved, change that first with `"
        f"{command_line('phosjax.bench.new', moved)}` (it continues the bench, reading from "
        "there), then run add_models again",
    )


def _starts(directory: str, command: str, argv: Sequence[str]) -> str:
    """What starts a bench in ``directory``, which holds none yet and which add_models
    refuses (for `kept_in_bench`): ``new`` with a bench config."""
    start = command_line("phosjax.bench.new", ["--config", "FILE", "--dir", directory])
    return (
        "add_models refuses such a --dir, a bench config starts one there (add_models then "
        f"adds to it): {start}"
    )


_PARSED: dict[str, Any] = {}
"""What `main` parsed, for the Ctrl-C line (`_interrupted`): ``models``, those named
(None: every model registered since the bench was made); empty until parsed."""


def _interrupted(argv: Sequence[str]) -> str:
    """What Ctrl-C leaves of ``add_models`` run with ``argv`` (`kept_in_bench`): the same
    command continues the bench; where it refuses it, every cell finished and every model
    named in it (stopped as it wrote its summary), ``new`` reads its results. A ``--dir``
    holding no bench yet: `_starts`."""
    directory = dir_option(argv)
    if directory is not None and _nothing_to_add(directory):
        refused = (
            "it has every model named, which add_models adds no more; nothing is left to "
            "train, this command reads its results"
        )
        return kept_in_bench("phosjax.bench.new", refused)(["--dir", directory])
    return kept_in_bench("phosjax.bench.add_models", starts=_starts)(argv)


def _nothing_to_add(directory: str) -> bool:
    """Whether add_models, run again with the models it parsed (`_PARSED`), refuses the
    bench in ``directory``: every cell finished, every model named in it. Where none is
    named, those registered since the bench was made are known once imported: False."""
    models = _PARSED.get("models")
    if not models:
        return False
    try:
        finished, cells = finished_cells(directory)
        present = open_bench(directory)[0].model_entries()
        return 0 < finished == cells and all(
            has_entry(present, ModelEntry.parse(m)) for m in models
        )
    except (OSError, ValueError):  # a file cut short, an entry refused: the run says it
        return False


@entry_point(_interrupted)
def main(argv: Sequence[str] | None = None) -> None:
    """Runs the command line ``argv`` (default ``sys.argv[1:]``)."""
    _PARSED.clear()  # a call before's
    _refuse_data_dir(argv or ())
    cli = parser()
    args = cli.parse_args(argv)
    models = None if args.models is None else [m for a in args.models for m in model_arguments(a)]
    _PARSED.update(models=models)
    if models == []:  # add_models_to's words ("pass None") are Python's
        raise BenchError(
            f"--models {' '.join(args.models)} names no model; name some (--models mlp, or an "
            "entry '{name: mlp, width: [64]}'), or leave --models out to add every model "
            "registered since the bench was made."
        )
    join_processes(cli, args)
    with data_bars_hidden(args.no_progress), compilation_cache(args.compilation_cache, args.dir):
        add_models_to(args.dir, models, progress=not args.no_progress, imports=args["import"])


if __name__ == "__main__":
    time_start_up()  # the run's profile times the command's start-up
    exit_process(main())
