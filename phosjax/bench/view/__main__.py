"""``python -m phosjax.bench.view --dir runs/example [--port 1337] [--host 127.0.0.1]``."""

import argparse
import sys

from phosjax.bench._usage import ArgParser, usage_error
from phosjax.bench.view._bench import NotABenchError
from phosjax.bench.view._server import (
    ADDRESSES,
    CannotServeError,
    PortInUseError,
    empty_host,
    serve,
)


def _port(text: str) -> int:
    """A TCP port number, 0 to 65535 (argparse's ``type``)."""
    if not text.isdecimal() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    """Serves the viewer; returns the exit status (2 for a bad directory, port or host)."""
    parser = ArgParser(
        prog="python -m phosjax.bench.view", description="Serve a bench's web viewer."
    )
    parser.add_argument(
        "--dir",
        required=True,
        help="the bench directory (runs/NAME; one not started yet is waited for), or the "
        "--dir of a python -m phosjax.morph run",
    )
    parser.add_argument(
        "--port", type=_port, default=1337, help="TCP port (default 1337; 0: any free one)"
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1, this machine only; 0.0.0.0 for everyone)",
    )
    args = parser.parse_args(argv)
    if empty_host(args.host):
        usage_error(
            parser,
            f"--host {args.host!r} is empty; give the address to bind, e.g. {ADDRESSES}",
        )
    try:
        serve(args.dir, args.port, args.host)
    except (NotABenchError, PortInUseError, CannotServeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
