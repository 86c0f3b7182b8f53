"""``python -m phosjax.bench.add_models --dir DIR [--import MODULE ...] [--models NAME ...]``.

Adds to an existing bench the models registered since it was made (after importing
``--import`` modules) or those given with ``--models``, and trains their cells (and
finishes the bench's unfinished groups), under the bench's stored config. The modules
the bench recorded (the ``--import``s that registered its models) are imported again
first; a new ``--import`` that registers a model it adds is recorded too. A ``--models``
value is a registered name or a YAML entry, as in the config's ``models``: ``--models
logreg '{name: mlp, width: [64]}'``.
"""

from collections.abc import Sequence
from typing import Any

import yaml
from jsonargparse import ArgumentParser

import phosjax.bench._interrupt  # noqa: F401  first: a Ctrl-C while jax loads is kept
from phosjax._yaml import safe_load
from phosjax.bench._cli import (
    Parser,
    add_common,
    entry_point,
    exit_process,
    kept_in_bench,
)
from phosjax.bench._config import BenchError
from phosjax.bench._runner import add_models_to


def parser() -> ArgumentParser:
    """The command line of ``phosjax.bench.add_models``."""
    parser = Parser(prog="python -m phosjax.bench.add_models", description=__doc__)
    add_common(parser)
    parser.add_argument(
        "--models",
        nargs="+",
        default=None,
        help="model names or YAML entries to add, e.g. logreg '{name: mlp, width: [64]}'",
    )
    parser.add_argument("--no_progress", action="store_true", help="no progress bar, no summary")
    return parser


def model_argument(text: str) -> str | dict[str, Any]:
    """A ``--models`` value: a name, or an entry written as a YAML mapping.

    Examples:
      >>> model_argument("logreg"), model_argument("{name: mlp, width: [64]}")
      ('logreg', {'name': 'mlp', 'width': [64]})
    """
    if not text.lstrip().startswith("{"):
        return text
    try:
        return safe_load(text)
    except yaml.YAMLError as error:
        raise BenchError(
            f"--models {text!r} is not a YAML mapping ({getattr(error, 'problem', error)}); "
            "write an entry as "
            "'{name: mlp, width: [64]}'."
        ) from error


@entry_point(kept_in_bench("phosjax.bench.add_models"))
def main(argv: Sequence[str] | None = None) -> None:
    """Runs the command line ``argv`` (default ``sys.argv[1:]``)."""
    args = parser().parse_args(argv)
    models = None if args.models is None else [model_argument(m) for m in args.models]
    add_models_to(args.dir, models, progress=not args.no_progress, imports=args["import"])


if __name__ == "__main__":
    exit_process(main())
