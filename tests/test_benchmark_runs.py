"""The scripts in benchmarks/ run start to end, at tiny sizes."""

import sys

from phosjax.bench import plan
from phosjax.data import random_dataset
from tests.benchmark_scripts import load_benchmark


def test_init_compile_compiles_each_groups_init_both_ways(tmp_path, monkeypatch, capsys):
    """It gave the init program `Group.values` alone, without the settings `init_group`
    gives it since groups share programs: ``KeyError: 'settings'`` before any row."""
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "models: [{name: mlp, width: 4, depth: 1}]\ndatasets: [toy]\nseeds: 2\n"
        "grid: {batch_size: 4, steps: 2}\n"
    )
    benchmark = load_benchmark("init_compile")
    toy = {"toy": random_dataset("toy", (3,), 2)}
    monkeypatch.setattr(benchmark, "plan", lambda bench_config: plan(bench_config, toy))
    monkeypatch.setattr(sys, "argv", ["init_compile.py", "--config", str(config)])
    benchmark.main()
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["group", "cells", "default", "s", "options", "s", "same", "states"]
    group, cells, default_s, options_s, same = row.split()
    assert (group.split("-")[0], cells) == ("mlp", "2")
    assert float(default_s) > 0 and float(options_s) > 0
    # the tests compile at -O0 (their XLA_FLAGS), so the -O1 program may round otherwise
    assert same in ("True", "False")


def test_trace_time_times_a_models_step_and_init_traces_and_phosjaxs_share(monkeypatch, capsys):
    """A row per model: its train step's and init's trace seconds and phosjax's share."""
    monkeypatch.setattr(sys, "argv", ["trace_time.py", "--models", "mlp", "--repeats", "1"])
    load_benchmark("trace_time").main()
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["model", "step", "s", "init", "s", "phosjax"]
    name, step_s, init_s, share = row.split()
    assert name == "mlp" and float(step_s) > 0 and float(init_s) > 0
    assert share.endswith("%") and 0 < float(share[:-1]) < 100


def test_view_many_groups_times_two_cells_curves_on_a_plan_grown_by_the_groups_asked(
    monkeypatch, capsys
):
    """Two lines: the two cells' curves on 4 groups and on the grown plan, then the cells
    of every group listed against those of the groups asked, each with its ratio."""
    monkeypatch.setattr(sys, "argv", ["view_many_groups.py", "--groups", "3"])
    load_benchmark("view_many_groups").main()
    curves, listing = capsys.readouterr().out.splitlines()
    assert curves.startswith("curves of 2 cells read again: 4 groups ") and " 7 groups " in curves
    assert listing.startswith("listing the cells on 7 groups: of every group ")
    assert curves.endswith("x)") and listing.endswith("x")


def test_dataset_copy_times_writable_arrays_copied_and_read_only_ones_kept(monkeypatch, capsys):
    """The arrays' size, then a time per dataset made of writable arrays and of read-only."""
    monkeypatch.setattr(sys, "argv", ["dataset_copy.py", "--train", "5", "--repeats", "2"])
    load_benchmark("dataset_copy").main()
    size, copied, kept = capsys.readouterr().out.splitlines()
    assert size == "0 MiB of arrays, 2 datasets each way:"
    assert copied.startswith("writable (copied): ") and kept.startswith("read-only (kept): ")
    assert [len(line.split(", ")) for line in (copied, kept)] == [2, 2]
