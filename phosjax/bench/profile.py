"""``python -m phosjax.bench.profile --dir DIR``: print a bench's phase times and memory."""

from collections.abc import Sequence

from jsonargparse import ArgumentParser

from phosjax.bench._cli import Parser, entry_point, exit_process
from phosjax.bench._directory import open_bench
from phosjax.bench._summary import profile_text


def parser() -> ArgumentParser:
    """The command line of ``phosjax.bench.profile``."""
    parser = Parser(prog="python -m phosjax.bench.profile", description=__doc__)
    parser.add_argument("--dir", required=True, help="the bench directory")
    return parser


@entry_point("nothing was changed (profile only reads the bench).")
def main(argv: Sequence[str] | None = None) -> None:
    """Runs the command line ``argv`` (default ``sys.argv[1:]``)."""
    args = parser().parse_args(argv)
    open_bench(args.dir)
    print(profile_text(args.dir))


if __name__ == "__main__":
    exit_process(main())
