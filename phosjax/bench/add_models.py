"""``python -m phosjax.bench.add_models --dir DIR [--import MODULE ...] [--models NAME ...]``.

Adds to an existing bench the models registered since it was made (after importing
``--import`` modules) or those named with ``--models``, and trains only their cells,
under the bench's stored config.
"""

import sys
from collections.abc import Sequence

from jsonargparse import ArgumentParser

from phosjax.bench._cli import add_common, entry_point, import_all
from phosjax.bench._directory import open_bench
from phosjax.bench._runner import add_models


def parser() -> ArgumentParser:
    """The command line of ``phosjax.bench.add_models``."""
    parser = ArgumentParser(prog="python -m phosjax.bench.add_models", description=__doc__)
    add_common(parser)
    parser.add_argument("--models", nargs="+", default=None, help="model names to add")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar, no summary")
    return parser


@entry_point
def main(argv: Sequence[str] | None = None) -> None:
    """Runs the command line ``argv`` (default ``sys.argv[1:]``)."""
    args = parser().parse_args(argv)
    open_bench(args.dir)  # not a bench: say so before importing anything
    import_all(args["import"])
    add_models(args.dir, args.models, progress=not args.no_progress)


if __name__ == "__main__":
    sys.exit(main())
