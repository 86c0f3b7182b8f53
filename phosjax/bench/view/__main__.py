"""``python -m phosjax.bench.view --dir runs/example [--port 1337] [--host 127.0.0.1]``."""

import argparse
import sys

from phosjax.bench.view._bench import NotABenchError
from phosjax.bench.view._server import PortInUseError, serve


def main(argv: list[str] | None = None) -> int:
    """Serves the viewer; returns the exit status (2 for a bad directory or a taken port)."""
    parser = argparse.ArgumentParser(
        prog="python -m phosjax.bench.view", description="Serve a bench's web viewer."
    )
    parser.add_argument("--dir", required=True, help="the bench directory (runs/NAME)")
    parser.add_argument("--port", type=int, default=1337, help="TCP port (0: any free one)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1, this machine only; 0.0.0.0 for everyone)",
    )
    args = parser.parse_args(argv)
    try:
        serve(args.dir, args.port, args.host)
    except (NotABenchError, PortInUseError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
