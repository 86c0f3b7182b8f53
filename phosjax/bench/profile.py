"""``python -m phosjax.bench.profile --dir DIR``: print a bench's phase times and memory.

On a bench with unfinished cells (a run is training it, or stopped) a note says how many
are finished: its groups not started yet have no row, the others the times so far.
"""

from collections.abc import Sequence

from jsonargparse import ArgumentParser

from phosjax._listing import counted
from phosjax.bench._cli import Parser, entry_point, exit_process, finished_cells
from phosjax.bench._directory import open_bench
from phosjax.bench._errors import BrokenFileError
from phosjax.bench._summary import dir_command, profile_text
from phosjax.bench.view._bench import BenchFiles


def timed_strategies(directory: str) -> bool:
    """Whether ``auto`` timed the strategies of a group of the bench in ``directory`` (its
    status entry's ``timings``); False where its status cannot be read: the profile needs
    none of it, and `finished_cells` names the file after it."""
    try:
        groups = BenchFiles(directory).status()["groups"].values()
    except BrokenFileError:
        return False
    return any(group.get("timings") for group in groups)


def parser() -> ArgumentParser:
    """The command line of ``phosjax.bench.profile``."""
    parser = Parser(prog="python -m phosjax.bench.profile", description=__doc__)
    parser.add_argument("--dir", required=True, help="the bench directory")
    return parser


@entry_point("nothing was changed (profile only reads the bench).", reads_only=True)
def main(argv: Sequence[str] | None = None) -> None:
    """Runs the command line ``argv`` (default ``sys.argv[1:]``)."""
    args = parser().parse_args(argv)
    open_bench(args.dir)
    print(profile_text(args.dir, timed_strategies(args.dir)))
    finished, cells = finished_cells(args.dir)
    if finished < cells:
        print(
            f"note: {args.dir!r} keeps {finished} of {counted(cells, 'cell')} finished: a run "
            f"is training it, or stopped (`{dir_command('phosjax.bench.new', args.dir)}` "
            "continues it); its groups not started yet have no row above, the others the "
            "times so far."
        )


if __name__ == "__main__":
    exit_process(main())
