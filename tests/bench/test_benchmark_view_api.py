"""benchmarks/view_api.py's synthetic bench (the benchmarks are scripts, no package)."""

import sys

import pytest

from phosjax.bench.view import BenchFiles
from tests.benchmark_scripts import load_benchmark


def test_the_synthetic_bench_records_aux_metrics_for_half_the_models_in_any_group(tmp_path):
    """The aux metrics were null for every model of a group whose first cell was m0 or m1:
    with ``--groups 1`` or ``2`` no group recorded them and the run failed on its curves."""
    load_benchmark("view_api").write_bench(tmp_path, cells=8, steps=2, groups=1)
    bench = BenchFiles(tmp_path)
    results = bench.results(bench.metrics())
    recorded = set(results.loc[results["aux/l1"].notna(), "cell_id"])
    assert sorted(recorded) == ["c000002", "c000003", "c000006", "c000007"]  # models m2, m3


@pytest.mark.parametrize("given", ["--cells=0", "--groups=0", "--segments=0", "--steps=-1"])
def test_a_count_below_one_is_refused_by_name(given, monkeypatch, capsys):
    """``--cells 0`` failed on an IndexError, ``--groups 0`` and ``--segments 0`` on a
    ZeroDivisionError, deep in writing the bench; argparse refuses them, naming the option."""
    monkeypatch.setattr(sys, "argv", ["view_api.py", given])
    with pytest.raises(SystemExit):
        load_benchmark("view_api").main()
    option, value = given.split("=")
    assert (
        f"argument {option}: {value!r} is no whole number of 1 or more" in capsys.readouterr().err
    )
