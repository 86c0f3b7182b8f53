"""Does the README's example bench run faster on CPU with XLA's loop emitters?

Run: ``python benchmarks/cpu_compile_flags.py [--config configs/example.yaml]``

It trains the bench twice into a temporary folder, one run after the other: with XLA's
defaults, and with ``XLA_FLAGS=--xla_cpu_use_fusion_emitters=false`` (the flag the test
suite compiles with, see tests/processes.py). It prints each run's wall time and the
bench profile's totals per phase (``init``, ``compile``, ``step``, ``eval``: seconds summed
over the groups, from ``profile/phases.parquet``), and the flag's time over the default's.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = {"default": "", "loop emitters": "--xla_cpu_use_fusion_emitters=false"}


def run_bench(config: str, root: Path, flags: str) -> dict[str, float]:
    """Trains ``config`` into ``root`` with ``flags``: wall seconds and the phase totals."""
    import pandas as pd

    env = {**os.environ, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()}
    command = [sys.executable, "-m", "phosjax.bench.new", "--config", config]
    start = time.perf_counter()
    subprocess.run([*command, "--dir", str(root), "--no_progress"], env=env, check=True)
    wall = time.perf_counter() - start
    phases = pd.read_parquet(root / "profile" / "phases.parquet")
    return {"wall": wall, **phases.groupby("phase").total_s.sum().to_dict()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", default="configs/example.yaml", help="the bench config trained (%(default)s)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        seconds = {
            name: run_bench(args.config, Path(folder) / str(i), flags)
            for i, (name, flags) in enumerate(VARIANTS.items())
        }
    columns = ["wall", "init", "compile", "step", "eval"]
    print(f"{'variant':<15}" + "".join(f"{c + ' s':>11}" for c in columns))
    for name, row in seconds.items():
        print(f"{name:<15}" + "".join(f"{row.get(c, float('nan')):>11.1f}" for c in columns))
    ratios = {c: seconds["loop emitters"][c] / seconds["default"][c] for c in columns}
    print(f"{'ratio':<15}" + "".join(f"{ratios[c]:>11.2f}" for c in columns))


if __name__ == "__main__":
    main()
