"""``python -m phosjax.bench.new --config FILE --dir DIR``: plan, train and write a bench.

Any config key can be overridden on the command line (``--grid.learning_rate
'[0.1, 0.01]'``); ``--print_config`` prints the resolved config and exits. Running the
same command again continues an interrupted bench from its checkpoints.
"""

import sys
from collections.abc import Sequence

from jsonargparse import ActionConfigFile, ArgumentParser

from phosjax.bench._cli import add_common, entry_point, import_all
from phosjax.bench._config import BenchConfig, load_config
from phosjax.bench._runner import run

_OWN = ("config", "dir", "import", "resume", "force", "no_progress")


def parser() -> ArgumentParser:
    """The command line of ``phosjax.bench.new``."""
    parser = ArgumentParser(prog="python -m phosjax.bench.new", description=__doc__)
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML bench config")
    add_common(parser)
    parser.add_argument("--resume", action="store_true", help="continue the bench in --dir")
    parser.add_argument("--force", action="store_true", help="move an old bench aside")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar, no summary")
    parser.add_class_arguments(BenchConfig, None, fail_untyped=False)
    return parser


def _config_files(argv: Sequence[str]) -> list[str]:
    files = []
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            files.append(argv[i + 1])
        elif arg.startswith("--config="):
            files.append(arg.split("=", 1)[1])
    return files


@entry_point
def main(argv: Sequence[str] | None = None) -> None:
    """Runs the command line ``argv`` (default ``sys.argv[1:]``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    for path in _config_files(argv):  # named, clear errors before jsonargparse's
        load_config(path)
    args = parser().parse_args(argv)
    import_all(args["import"])
    fields = {k: v for k, v in args.as_dict().items() if k not in _OWN}
    config = None if args.resume else BenchConfig.from_dict(fields)
    run(config, args.dir, resume=args.resume, force=args.force, progress=not args.no_progress)


if __name__ == "__main__":
    sys.exit(main())
