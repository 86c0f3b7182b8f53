"""The viewer on a bench two processes shared: each process's memory samples are a series
of their own, in time order, thinned on their own; each group is counted once."""

import json
import pathlib
import re

import numpy as np
import pandas as pd
import pytest

from phosjax.bench import _layout
from phosjax.bench.view._api import encode, profile
from phosjax.bench.view._bench import BenchFiles
from tests.bench._chromium import CHROMIUM, between
from tests.bench._viewer_fixtures import blurb_json, serving, write_bench

STARTED = 1.7e9


def _samples(count: int, started: float, seconds: float = 10.0) -> pd.DataFrame:
    """``count`` samples of one run as `phosjax.bench._runner` appends them."""
    t = np.linspace(0, seconds, count)
    return pd.DataFrame(
        {"time_s": t, "host_rss_bytes": 2**20 * (400 + t), "device_bytes": 2**20 * (50 + t)}
    ).assign(run_started=started)


def write_process_memory(root: pathlib.Path, counts: tuple[int, ...]) -> list[pd.DataFrame]:
    """Replaces the bench's memory file by one per process (``counts[i]`` samples for
    process ``i``, resumed once halfway); returns what each process wrote."""
    (root / _layout.MEMORY).unlink(missing_ok=True)
    written = []
    for index, count in enumerate(counts):
        first, second = count // 2, count - count // 2
        started = STARTED + 0.25 * index  # the processes start close together
        frame = pd.concat(
            [_samples(first, started), _samples(second, started + 20.0)], ignore_index=True
        )
        suffix = _layout.process_suffix((index, len(counts)))
        frame.to_parquet(root / _layout.MEMORY.replace(".parquet", f"{suffix}.parquet"))
        written.append(frame)
    return written


def write_process_status(root: pathlib.Path) -> None:
    """Replaces the bench's status by one file per process of two, each holding its share
    of every group (half the cells); only process 0's shares finished."""
    status = json.loads((root / _layout.STATUS).read_text())
    (root / _layout.STATUS).unlink()
    for index in (0, 1):
        groups = {
            f"{group_id}.p{index}of2": group | {"cells": group["cells"][index::2]}
            for group_id, group in status["groups"].items()
        }
        finished = {key: group | {"finished": index == 0} for key, group in groups.items()}
        (root / f"status.p{index}of2.json").write_text(json.dumps({"groups": finished}))


@pytest.fixture
def bench(tmp_path) -> pathlib.Path:
    root = tmp_path / "bench"
    (root / "profile").mkdir(parents=True)
    (root / _layout.MARKER).write_text("{}")
    return root


def test_each_process_is_its_own_series_in_time_order(bench):
    written = write_process_memory(bench, (40, 30))
    memory = profile(BenchFiles(bench))["memory"]
    assert memory["columns"] == [*written[0].columns, "process"]
    json.loads(encode(memory))  # strict JSON
    for index, frame in enumerate(written):
        rows = [r for r in memory["rows"] if r["process"] == f"{index}/2"]
        got = pd.DataFrame(rows).drop(columns="process")
        pd.testing.assert_frame_equal(got, frame)  # all of its rows, in the order written
        clock = got["run_started"] + got["time_s"]
        assert clock.is_monotonic_increasing


def test_each_process_is_thinned_on_its_own(bench):
    """A process with few samples keeps them all next to one with many (thinning the
    files together would leave it one sample)."""
    many, few = write_process_memory(bench, (1000, 10))
    memory = profile(BenchFiles(bench), max_points=20)["memory"]
    rows = pd.DataFrame(memory["rows"])
    kept = rows[rows.process == "0/2"].drop(columns="process").reset_index(drop=True)
    assert len(kept) == 22  # first and last kept, and the peaks (a run's end, one's start)
    peaks = many.iloc[[499, 500]].to_dict("records")  # time_s and RSS peak; run_started
    assert all(peak in kept.to_dict("records") for peak in peaks)
    pd.testing.assert_frame_equal(
        kept.iloc[[0, -1]], many.iloc[[0, -1]].set_index(kept.index[[0, -1]])
    )
    assert (kept["run_started"] + kept["time_s"]).is_monotonic_increasing
    pd.testing.assert_frame_equal(
        rows[rows.process == "1/2"].drop(columns="process").reset_index(drop=True), few
    )


def test_a_single_process_has_no_process_column(bench):
    frame = _samples(30, STARTED)
    frame.to_parquet(bench / _layout.MEMORY)
    memory = profile(BenchFiles(bench), max_points=10)["memory"]
    assert memory["columns"] == list(frame.columns) and len(memory["rows"]) == 10


@pytest.mark.parametrize("column", ["host_rss_bytes", "device_bytes"])
def test_thinning_keeps_each_columns_peak(bench, column):
    """A spike between the samples thinning keeps is kept too: the plotted peak is true."""
    frame = _samples(1000, STARTED)
    between = 500  # `thin(1000, 400)` keeps 499 and 501
    frame.loc[between, column] = 2**30
    frame.to_parquet(bench / _layout.MEMORY)
    memory = profile(BenchFiles(bench))["memory"]
    got = pd.DataFrame(memory["rows"])
    assert len(got) == 401 and got["time_s"].is_monotonic_increasing
    assert got[column].max() == 2**30
    assert frame.iloc[between].to_dict() in memory["rows"]  # the whole sample


def _paths(section: str) -> list[list[float]]:
    """The x coordinates of each curve drawn in ``section`` of the DOM."""
    return [
        [float(x) for x in re.findall(r"[ML](-?[\d.]+),", d)]
        for d in re.findall(r'<path class="curve" d="([^"]*)"', section)
    ]


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary")
def test_the_page_draws_memory_per_process_and_counts_each_group_once(tmp_path, page):
    root = write_bench(tmp_path / "shared", blurb_json()).root
    write_process_memory(root, (60, 40))
    write_process_status(root)
    with serving(root) as server:
        dom = page.dom(server.url)

    assert 'data-ready="true"' in dom
    assert '<span class="chip">0 / 2 groups finished</span>' in dom  # not 2 / 4 shares
    section = between(dom, 'id="memory"', 'id="morph"')
    curves = _paths(section)
    assert len(curves) == 4  # two columns, two processes
    assert all(len(xs) > 10 and xs == sorted(xs) for xs in curves)  # never back in time
    for column in ("host_rss_bytes", "device_bytes"):
        for index in (0, 1):
            assert f"{column} (process {index}/2)" in section


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary")
def test_past_15_memory_series_each_has_a_colour_of_its_own(tmp_path, page):
    """8 processes, two columns each: the 14th series took the palette's first colour again."""
    root = write_bench(tmp_path / "shared", blurb_json()).root
    write_process_memory(root, (4,) * 8)
    with serving(root) as server:
        dom = page.dom(server.url)

    section = between(dom, 'id="memory"', 'id="morph"')
    colours = re.findall(r'<path class="curve" d="[^"]*" stroke="([^"]*)"', section)
    assert len(colours) == 16 == len(set(colours)), colours


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary")
def test_the_memory_line_breaks_between_the_runs_of_a_resumed_bench(tmp_path, page):
    """No process ran between a run and its resumption 10 s later: no line is drawn
    across that time (one was, from the last sample of the run to the first of the next)."""
    root = write_bench(tmp_path / "resumed", blurb_json()).root
    runs = [_samples(30, STARTED), _samples(30, STARTED + 20.0)]
    pd.concat(runs, ignore_index=True).to_parquet(root / _layout.MEMORY)
    with serving(root) as server:
        dom = page.dom(server.url)

    assert 'data-ready="true"' in dom
    section = between(dom, 'id="memory"', 'id="morph"')
    lines = re.findall(r'<path class="curve" d="([^"]*)"', section)
    assert len(lines) == 2 and all(d.count("M") == len(runs) for d in lines)
