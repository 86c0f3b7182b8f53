"""One plot and table of several speed-bench runs (their ``speed.parquet``), each model's
panel named with its run's precision: it writes ``OUT.png`` (``OUT.svg`` without matplotlib)
and prints the merged table.

E.g. the float32 and bfloat16 runs of a GPU call::

    python benchmarks/speed_plot.py docs/img/speed-h200 gpu/float32/cnn2d gpu/bfloat16/cnn2d
"""

import argparse
import pathlib

import pandas as pd

from phosjax.bench._speed_report import plot, table


def merged(runs: list[str]) -> pd.DataFrame:
    """The runs' rows, ``model`` renamed ``"<model> <dtype>"`` (``f32``, ``bf16``); a
    (model, dtype, K, method) measured by two runs is refused (the table would average
    them, its ratios no longer those of one run)."""
    frames = [pd.read_parquet(pathlib.Path(run) / "speed.parquet") for run in runs]
    frame = pd.concat([f.assign(run=run) for f, run in zip(frames, runs, strict=True)])
    short = frame["compute_dtype"].map({"float32": "f32", "bfloat16": "bf16"})
    frame = frame.assign(model=frame["model"] + " " + short.fillna(frame["compute_dtype"]))
    twice = frame[frame.duplicated(["model", "K", "method"], keep=False)]
    if len(twice):
        first = twice.iloc[0]
        same = (twice[["model", "K", "method"]] == first[["model", "K", "method"]]).all(axis=1)
        raise SystemExit(
            f"error: {first['model']} K={first['K']} {first['method']} is in more than one "
            f"run ({', '.join(twice.loc[same, 'run'])}); give each (model, dtype) from one run"
        )
    return frame.drop(columns="run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="the plot's path, without its suffix")
    parser.add_argument("runs", nargs="+", help="directories of speed.parquet files")
    args = parser.parse_args()
    frame = merged(args.runs)
    print(table(frame))
    print(f"wrote {plot(frame, pathlib.Path(args.out))}")


if __name__ == "__main__":
    main()
