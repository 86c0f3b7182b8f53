"""How long the viewer's leaderboard and curves take on a bench of many runs.

Run: ``python benchmarks/view_api.py [--cells 2000] [--steps 200] [--groups 4] [--segments 1]
[--behind]``

Writes a synthetic bench to a temporary folder: ``--cells`` cells of 8 metrics, each
logged on train rows at every one of ``--steps`` steps and on test rows every 10th step,
a few NaN values (diverged runs) and metrics some models never record (nulls), in
``--groups`` groups of ``--segments`` part files each (a bench of many groups, trained in
chunks, has thousands); with ``--behind``, the seed-0 cells of each group lack its last
part (a process training them apart is behind: every configuration's seeds stopped at
different steps). Then times, in this one run (best of three):

* the leaderboard's final values: the per-(cell, split) loop the viewer had (one call
  per cell, split and metric, kept here) against `phosjax.bench.view._api.final_values`,
  one vectorised computation, and their ratio (the two must agree);
* ``/api/bench`` (`bench_info`) and ``/api/cells`` (`leaderboard`), a new viewer's first
  read, the page's reads again, and its reads after one part changed (a running bench);
  then ``/api/results?columns=loss`` (`curves`), each with
  its JSON encoding, as the server builds them: the curves of every cell (the page asked
  for them all) against those of the 80 cells a plot draws, the leaderboard's first rows
  (``cells=<id>,...``, as the page asks now), each with the size of its body, at a new
  viewer's first read, read again and after one part changed; then those of 80 other
  cells (the next rows: the page scrolled or sorted anew), each time new ones; for the
  learning curves' ``loss`` and for the aux plots' four columns.
"""

import argparse
import json
import math
import os
import pathlib
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from phosjax.bench import _layout
from phosjax.bench.view import BenchFiles, _api

METRICS = ("loss", "accuracy", "grad_norm", "step_time_s")
AUX = ("aux/balance", "aux/l1", "path_weight/a", "path_weight/b")
"""Recorded by half the models only (null for the others)."""


def write_bench(
    root: pathlib.Path,
    cells: int,
    steps: int,
    groups: int = 4,
    segments: int = 1,
    behind: bool = False,
) -> None:
    """A bench of ``cells`` cells (4 models) in ``groups`` groups under ``root``, each
    group's rows in ``segments`` part files (by step), its last lacking the rows of the
    seed-0 cells where ``behind``."""
    rng = np.random.default_rng(0)
    (root / _layout.MARKER).write_text(json.dumps({"format": _layout.FORMAT}))
    plan = pd.DataFrame(
        {
            "cell_id": [f"c{i:06d}" for i in range(cells)],
            "group_id": [f"g{i % groups}" for i in range(cells)],
            "model_id": [f"m{i % 4}" for i in range(cells)],
            "model": [f"model{i % 4}" for i in range(cells)],
            "dataset": "mnist1d",
            "seed": [i % 5 for i in range(cells)],
            "learning_rate": [10.0 ** -(1 + i % 7) for i in range(cells)],
        }
    )
    plan.to_parquet(root / _layout.CELLS)
    (root / _layout.RESULTS).mkdir()
    train, test = np.arange(steps), np.arange(0, steps, 10)
    for group_id, members in plan.groupby("group_id"):
        frames = []
        for cell in members.to_dict("records"):
            for split, at in (("train", train), ("test", test)):
                frame = pd.DataFrame({**cell, "step": at, "split": split})
                for metric in METRICS:
                    frame[metric] = rng.random(len(at))
                if rng.random() < 0.05:  # a diverged run
                    frame.loc[frame.step > steps // 2, ["loss", "accuracy"]] = np.nan
                frames.append(frame)
        part = pd.concat(frames, ignore_index=True)
        for metric in AUX:  # null where a model does not record it
            values = rng.random(len(part))
            part[metric] = pd.array(values, dtype="Float64")
            part.loc[part["model_id"].isin(("m0", "m1")), metric] = pd.NA
        starts = train[:: math.ceil(steps / segments)]
        for start in starts:
            rows = part[(part.step >= start) & (part.step < start + math.ceil(steps / segments))]
            if behind and start == starts[-1]:
                rows = rows[rows.seed != 0]
            rows.to_parquet(root / _layout.RESULTS / f"part-{group_id}-{start:09d}.parquet")


def per_cell_finals(results: pd.DataFrame, metrics: list[str]) -> dict[str, Any]:
    """The final values as the leaderboard computed them before `_api.final_values`: one
    call of the per-series function below per cell, split and metric."""
    final: dict[str, dict[str, dict[str, Any]]] = {}
    for (cell_id, split), rows in results.groupby(["cell_id", "split"], sort=False):
        last = [len(rows) - 1]
        final.setdefault(cell_id, {})[split] = {m: _series_marks(rows[m], last)[0] for m in metrics}
    return final


def _series_marks(column: pd.Series, indices: list[int]) -> list[Any]:
    """The viewer's former ``nonfinite_marks``: one series' values at ``indices`` as JSON."""
    recorded = column.notna().to_numpy(dtype=bool)
    values = column.to_numpy(dtype=float, na_value=np.nan)
    started = np.cumsum(recorded) > 0
    return [_mark(float(values[i])) if started[i] else None for i in indices]


def _mark(value: float) -> float | str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def first_rows(final: dict[str, Any], count: int = 80) -> list[str]:
    """The ``count`` cells the page draws first: the leaderboard's default order, the best
    test accuracy first (a NaN, a diverged run, after every number)."""
    accuracy = {cell: splits.get("test", {}).get("accuracy") for cell, splits in final.items()}
    numbers = [cell for cell, value in accuracy.items() if isinstance(value, float)]
    return sorted(numbers, key=accuracy.__getitem__, reverse=True)[:count]


def best_of(call: Callable[[], Any], repeats: int = 3) -> tuple[float, Any]:
    """The shortest of ``repeats`` timed calls, and the last call's value."""
    best, value = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        value = call()
        best = min(best, time.perf_counter() - start)
    return best, value


def count(text: str) -> int:
    """``text`` as a whole number of 1 or more (an option's type), else an argparse error
    naming it.

    Examples:
      >>> count("3")
      3
      >>> count("0")
      Traceback (most recent call last):
      argparse.ArgumentTypeError: '0' is no whole number of 1 or more
    """
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is no whole number of 1 or more")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cells", type=count, default=2000, help="cells of the bench (%(default)s)"
    )
    parser.add_argument(
        "--steps",
        type=count,
        default=200,
        help="steps each cell logs, a test row every 10th (%(default)s)",
    )
    parser.add_argument("--groups", type=count, default=4, help="groups of cells (%(default)s)")
    parser.add_argument(
        "--segments", type=count, default=1, help="part files of each group (%(default)s)"
    )
    parser.add_argument(
        "--behind",
        action="store_true",
        help="the seed-0 cells of each group lack its last part (needs --segments 2 or more)",
    )
    args = parser.parse_args()
    if args.behind and args.segments < 2:
        parser.error("--behind needs --segments 2 or more (seed 0 lacks the last segment)")
    with tempfile.TemporaryDirectory() as folder:
        root = pathlib.Path(folder)
        write_bench(root, args.cells, args.steps, args.groups, args.segments, args.behind)
        bench = BenchFiles(root)
        metrics = bench.metrics()
        results = bench.results(metrics)
        shape = f"{len(results):,} rows of {len(metrics)} metrics"
        parts = len(list((root / _layout.RESULTS).iterdir()))
        print(f"{args.cells} cells x {args.steps} steps: {shape}, in {parts} part files")
        old_s, old = best_of(lambda: per_cell_finals(results, metrics))
        new_s, new = best_of(lambda: _api.final_values(results, metrics))
        assert json.dumps(old, sort_keys=True) == json.dumps(new, sort_keys=True)
        print(
            f"final values: per cell {old_s:.3f} s, vectorised {new_s:.3f} s, {old_s / new_s:.0f}x"
        )
        part = sorted((root / _layout.RESULTS).iterdir())[0]
        touch = lambda: os.utime(part, ns=(part.stat().st_atime_ns, time.time_ns()))
        for path, build in (("bench", _api.bench_info), ("cells", _api.leaderboard)):
            # A new viewer's first read, then the page's reads again (the parts' schemas
            # and last rows read once per version of each part: `BenchFiles._per_version`).
            first_s, _ = best_of(lambda b=build: _api.encode(b(BenchFiles(root).snapshot())))
            again_s, _ = best_of(lambda b=build: _api.encode(b(bench.snapshot())))
            # A running bench: one part written anew (a new version of its file) each time.
            changed_s, _ = best_of(lambda b=build: touch() or _api.encode(b(bench.snapshot())))
            print(
                f"/api/{path} {first_s:.2f} s, read again {again_s:.2f} s, "
                f"after a part changed {changed_s:.2f} s"
            )
        order = first_rows(new, len(new))
        drawn, below = order[:80], [order[80 * n : 80 * n + 80] for n in (1, 2, 3)]
        for columns in (["loss"], list(AUX)):  # the curves' request, and the aux plots'
            print(f"/api/results?columns={','.join(columns)}:")
            for label, cells in (("every cell", None), (f"the {len(drawn)} drawn", drawn)):
                send = lambda b, c=cells, k=columns: _api.encode(_api.curves(b, c, k))
                first_s, body = best_of(lambda s=send: s(BenchFiles(root).snapshot()))
                again_s, _ = best_of(lambda s=send: s(bench.snapshot()))
                changed_s, _ = best_of(lambda s=send: touch() or s(bench.snapshot()))
                print(
                    f"  {label:>13}: {first_s:.3f} s, read again {again_s:.3f} s, after a part "
                    f"changed {changed_s:.3f} s; {len(body) / 2**10:,.0f} KiB"
                )
            # The rows below the drawn ones (the page scrolled, sorted or filtered anew):
            # other cells of the same groups, 80 new ones each time.
            others = iter(below)
            send = lambda k=columns, o=others: _api.curves(bench.snapshot(), next(o), k)
            others_s, _ = best_of(lambda s=send: _api.encode(s()))
            print(f"  {'80 others':>13}: {others_s:.3f} s")


if __name__ == "__main__":
    main()
