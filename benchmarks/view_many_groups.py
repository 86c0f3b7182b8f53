"""How long the viewer's curves of a few cells take on a plan of many groups.

Run: ``python benchmarks/view_many_groups.py [--groups 20000]``

Writes `view_api.write_bench`'s synthetic bench (40 cells of 200 steps in 4 groups), then
times, in this one run (best of three), the curves of two of its cells read again (their
groups' series kept: `BenchFiles.per_group`) on its own plan and on that plan with
``--groups`` groups of one cell more (cells without rows, as a plan whose other groups have
not started), and, on the larger plan, the cells of every group listed (as each request of
curves listed them before 2026-12-07, to key each group's kept series) against those of the
groups asked alone (as it lists them now).
"""

import argparse
import pathlib
import tempfile

import pandas as pd
from view_api import best_of, count, write_bench

from phosjax.bench import _layout
from phosjax.bench.view import BenchFiles, _api


def with_groups(root: pathlib.Path, groups: int) -> None:
    """The plan under ``root`` with ``groups`` groups of one cell more."""
    cells = pd.read_parquet(root / _layout.CELLS)
    more = cells.iloc[[0] * groups].assign(
        cell_id=[f"x{i:06d}" for i in range(groups)],
        group_id=[f"x{i:06d}" for i in range(groups)],
    )
    pd.concat([cells, more]).to_parquet(root / _layout.CELLS)


def read_again(root: pathlib.Path, asked: list[str]) -> float:
    """Seconds of the curves of ``asked`` read again (``loss``), their JSON included."""
    bench = BenchFiles(root)
    send = lambda: _api.encode(_api.curves(bench.snapshot(), asked, ["loss"]))
    send()  # the groups' series read and kept
    return best_of(send)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--groups", type=count, default=20_000, help="groups of one cell added (%(default)s)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = pathlib.Path(folder)
        write_bench(root, cells=40, steps=200)
        asked = pd.read_parquet(root / _layout.CELLS)["cell_id"].tolist()[:2]
        few_s = read_again(root, asked)
        with_groups(root, args.groups)
        many_s = read_again(root, asked)
        group_of = pd.read_parquet(root / _layout.CELLS).set_index("cell_id")["group_id"]
        every_s, _ = best_of(lambda: group_of.index.groupby(group_of))
        of_asked = lambda: (kept := group_of[group_of.isin(group_of[asked])]).index.groupby(kept)
        alone_s, _ = best_of(of_asked)
    print(
        f"curves of 2 cells read again: 4 groups {few_s:.3f} s, {4 + args.groups:,} groups "
        f"{many_s:.3f} s ({many_s / few_s:.1f}x)"
    )
    print(
        f"listing the cells on {4 + args.groups:,} groups: of every group {every_s:.3f} s "
        f"(before), of the groups asked {alone_s:.4f} s (now), {every_s / alone_s:.0f}x"
    )


if __name__ == "__main__":
    main()
