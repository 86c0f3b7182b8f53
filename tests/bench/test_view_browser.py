"""The viewer in a real headless Chromium: the page loads a small finished bench, shows
the leaderboard rows, draws the curves, the blurb tree, the graph and the profile."""

import html
import json
import pathlib
import shutil
import subprocess

import pytest

from phosjax.bench import _layout
from tests.bench._viewer_fixtures import (
    DIVERGED,
    NOTE_TEXT,
    SEEDS,
    SPLITS,
    blurb_json,
    serving,
    write_bench,
)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = pathlib.Path(__file__).resolve().parents[2] / "test-artifacts"
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary (Debian: apt-get install chromium; CI installs it)"
)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("benches") / "example"
    return write_bench(root, blurb_json(), train_only=("step_time_s",))


def _render(url: str, profile: pathlib.Path, screenshot: pathlib.Path | None = None) -> str:
    """The DOM after the page's scripts ran (and a screenshot of the window, if asked)."""
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
        "--virtual-time-budget=5000", "--window-size=1400,1000", "--dump-dom",
    ]  # fmt: skip
    if screenshot is not None:
        command.append(f"--screenshot={screenshot}")
    done = subprocess.run([*command, url], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _modules(module: dict) -> int:
    return 1 + sum(_modules(child) for child in module["children"])


def _between(dom: str, start: str, end: str) -> str:
    return dom[dom.index(start) : dom.index(end, dom.index(start))]


def test_page_shows_leaderboard_curves_blurb_and_profile(written, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "viewer.png"
    screenshot.unlink(missing_ok=True)
    cells, choice_cells = len(written.cells), (written.cells.model == "choice").sum()
    with serving(written.root) as server:
        dom = _render(server.url + "?model=m-choice&metrics=all", tmp_path / "profile", screenshot)
        configs_dom = _render(server.url + "?mode=configs&metric=step_time_s", tmp_path / "profile")

    assert 'data-ready="true"' in dom, "the page's script did not finish"
    assert '<p id="error" class="error" hidden="">' in dom
    assert dom.count('class="board-row"') == cells
    for cell_id in written.cells.cell_id:
        assert f">{cell_id}</td>" in dom
    head = _between(dom, "<thead>", "</thead>")  # all metrics, but no column without a value
    assert all(f">{split} aux/balance</th>" in head for split in SPLITS)
    assert ">train step_time_s</th>" in head and ">test step_time_s</th>" not in head
    curves = _between(dom, 'id="curve-plots"', 'id="legend"')
    assert curves.count('class="curve"') == cells * len(SPLITS)
    assert all(curves.count(f">{split}</text>") == 1 for split in SPLITS)  # one plot each
    aux = _between(dom, 'id="aux-plots"', 'id="models"')
    assert aux.count('class="curve"') == 3 * choice_cells  # aux/balance and two path weights
    blurb = _between(dom, 'id="blurb"', 'id="graph"')
    assert blurb.count('<details class="module') == _modules(written.blurb["root"])
    assert "softmax temperature" in blurb
    assert html.escape(NOTE_TEXT, quote=False) in blurb  # a note's text shown, not parsed
    graph = _between(dom, 'id="graph"', 'id="profile"')
    assert graph.count('class="edge"') == 5 and graph.count('class="node ') == 5
    phases = _between(dom, 'id="phases"', 'id="memory"')
    assert phases.count('class="bar"') == len(written.phases)
    memory = _between(dom, 'id="memory"', 'id="morph"')
    assert memory.count('class="curve"') == 2  # see test_view_memory for several processes
    assert "host_rss_bytes</span>" in memory and "(process" not in memory

    widths = _between(dom, 'data-column="width"', "</select>")  # text in natural order
    assert widths.index(">25,50</option>") < widths.index(">100</option>")
    sort_by = _between(dom, 'id="sort-by"', "</select>")  # any hparam, also those not shown
    columns = ("lr", "width", "seed", "group_id", "model")
    assert all(f'<option value="{c}">' in sort_by for c in columns)

    assert configs_dom.count('class="board-row"') == cells // len(SEEDS)
    assert configs_dom.count('data-mode="configs" class="on"') == 2  # the board's and the curves'
    curves = _between(configs_dom, 'id="curve-plots"', 'id="legend"')
    assert curves.count('class="band"') == cells // len(SEEDS)  # step_time_s: train only
    assert ">train</text>" in curves and ">test</text>" not in curves  # no empty plot

    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 20_000  # a drawn page, not a blank one


def test_a_diverged_seed_and_lines_past_the_cap_are_shown(tmp_path):
    """84 cells (over the 80 lines a plot draws), one seed of the best config diverged."""
    seeds = tuple(range(21))
    written = write_bench(tmp_path / "many", blurb_json(), seeds=seeds, diverge=True)
    with serving(written.root) as server:
        cells_dom = _render(server.url, tmp_path / "profile")
        configs_dom = _render(server.url + "?mode=configs", tmp_path / "profile")

    assert 'data-ready="true"' in cells_dom and 'data-ready="true"' in configs_dom
    legend = _between(cells_dom, 'id="legend"', 'id="aux"')
    assert f"showing 80 of {len(written.cells)} lines: filter or hide rows" in legend
    curves = _between(cells_dom, 'id="curve-plots"', 'id="legend"')
    assert curves.count('class="curve"') == 80 * len(SPLITS)
    assert '<td class="num diverged">NaN</td>' in cells_dom  # not the "–" of no result

    rows = _between(configs_dom, "<tbody>", "</tbody>").split('class="board-row"')[1:]
    assert len(rows) == len(written.cells) // len(seeds)
    diverged = f"diverged (1/{len(seeds)})"
    model, lr, _ = DIVERGED
    assert diverged in rows[-1] and f">{model}</td>" in rows[-1] and f">{lr}</td>" in rows[-1]
    assert all(diverged not in row for row in rows[:-1])  # the diverged config sorts last
    legend = _between(configs_dom, 'id="legend"', 'id="aux"')
    assert legend.count("(1 diverged)") == 1 and f"{model} · lr={lr} (1 diverged)" in legend


def test_a_bench_without_cells_says_so(tmp_path):
    bench = tmp_path / "empty"
    bench.mkdir()
    (bench / _layout.MARKER).write_text(json.dumps({"format": _layout.FORMAT}))
    with serving(bench) as server:
        dom = _render(server.url, tmp_path / "profile")
    assert 'data-ready="true"' in dom and "No cells planned yet." in dom
    assert "No cell matches the filters." not in dom
