"""The bench viewer: a local web page of a bench's leaderboard, curves, blurbs and profile.

Run it with ``python -m phosjax.bench.view --dir runs/example --port 1337``. The page
follows a bench still training (or resumed): it redraws its panels as the bench writes,
keeping its menus, filters and scroll (docs/viewer.md, "Live updates"). Started before the
bench (no ``--dir`` yet, or an empty one), it waits for it and shows it once it starts.
"""

from phosjax.bench.view._bench import (
    BenchFiles,
    BrokenFileError,
    NotABenchError,
    NotStartedError,
    OutsideBenchError,
)
from phosjax.bench.view._server import (
    CannotServeError,
    PortInUseError,
    ViewerServer,
    make_server,
    serve,
)

__all__ = [
    "BenchFiles",
    "BrokenFileError",
    "CannotServeError",
    "NotABenchError",
    "NotStartedError",
    "OutsideBenchError",
    "PortInUseError",
    "ViewerServer",
    "make_server",
    "serve",
]
