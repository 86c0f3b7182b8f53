"""One plot and table of several speed-bench runs (their ``speed.parquet``), each model's
panel named with its run's precision, e.g. the float32 and bfloat16 runs of a GPU call::

    python benchmarks/speed_plot.py docs/img/speed-h200 gpu/float32/cnn2d gpu/bfloat16/cnn2d

It writes ``OUT.png`` (``OUT.svg`` without matplotlib) and prints the merged table.
"""

import argparse
import pathlib

import pandas as pd

from phosjax.bench._speed_report import plot, table


def merged(runs: list[str]) -> pd.DataFrame:
    """The runs' rows, ``model`` renamed ``"<model> <dtype>"`` (``f32``, ``bf16``)."""
    frame = pd.concat([pd.read_parquet(pathlib.Path(run) / "speed.parquet") for run in runs])
    short = frame["compute_dtype"].map({"float32": "f32", "bfloat16": "bf16"})
    return frame.assign(model=frame["model"] + " " + short.fillna(frame["compute_dtype"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", help="the plot's path, without its suffix")
    parser.add_argument("runs", nargs="+", help="directories of speed.parquet files")
    args = parser.parse_args()
    frame = merged(args.runs)
    print(table(frame))
    print(f"wrote {plot(frame, pathlib.Path(args.out))}")


if __name__ == "__main__":
    main()
