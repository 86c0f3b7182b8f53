"""benchmarks/view_api.py's synthetic bench (the benchmarks are scripts, no package)."""

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
