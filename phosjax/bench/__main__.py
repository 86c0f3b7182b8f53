"""``python -m phosjax.bench``: the bench's commands, each its own module; this lists them.

Examples:
  >>> main(["--help"])
  usage: python -m phosjax.bench.COMMAND [--help] ...
  <BLANKLINE>
  commands:
    new         plan, train and write a bench (or resume one)
  ...
  0
"""

import shlex
import sys
from collections.abc import Sequence

from phosjax._nearest import did_you_mean

COMMANDS = {
    "new": "plan, train and write a bench (or resume one)",
    "add_models": "add models' cells to a bench and train them",
    "view": "serve a web page of a bench's leaderboard, curves, blurbs and profile",
    "profile": "print a bench's phase times and memory",
    "export": "export a bench's finished cells to MLflow",
    "speed": "measure model-steps/s of grids of K small models, five ways",
}
"""Each command (a module ``phosjax.bench.NAME`` with a ``main``) and what it does."""


def usage() -> str:
    """The commands, one per line, and where each one's own ``--help`` is."""
    width = max(map(len, COMMANDS)) + 2
    lines = [f"  {name:<{width}}{what}" for name, what in COMMANDS.items()]
    return "\n".join(
        [
            "usage: python -m phosjax.bench.COMMAND [--help] ...",
            "",
            "commands:",
            *lines,
            "",
            "e.g. python -m phosjax.bench.new --config configs/example.yaml --dir runs/example;",
            "MorphNet width pruning is python -m phosjax.morph.",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Prints the commands: to stdout with ``--help`` (status 0), else to stderr with an
    error saying what to run instead (status 2): ``phosjax.bench`` runs nothing itself.

    Examples:
      >>> import contextlib, io
      >>> with contextlib.redirect_stderr(io.StringIO()) as err:
      ...     main(["new", "--dir", "runs/x"])
      2
      >>> print(err.getvalue().splitlines()[-1])
      error: a command is its own module: python -m phosjax.bench.new --dir runs/x
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(usage())
        return 0
    if not args:
        error = "give a command: python -m phosjax.bench.COMMAND"
    elif args[0] in COMMANDS:
        error = f"a command is its own module: python -m phosjax.bench.{shlex.join(args)}"
    else:
        error = (
            f"no command {args[0]!r}; run one of the above as python -m "
            f"phosjax.bench.COMMAND{did_you_mean([args[0]], COMMANDS)}"
        )
    print(usage(), file=sys.stderr)
    print(f"error: {error}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
