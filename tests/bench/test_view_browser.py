"""The viewer in a real headless Chromium: the page loads a small finished bench, shows
the leaderboard rows, draws the curves, the blurb tree, the graph and the profile; the
hyperparameter plot is driven over the DevTools protocol (filters, hovering)."""

import html
import json
import math
import os
import pathlib
import re
import shutil
import socket
import subprocess
import time
import urllib.parse

import jax
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from phosjax.bench import _layout
from phosjax.bench.view import BenchFiles, _server
from tests.bench import _chromium
from tests.bench._chromium import CHROMIUM, Browser, Page, between
from tests.bench._viewer_fixtures import (
    DIVERGED,
    LEARNING_RATES,
    MODELS,
    NOTE_TEXT,
    SEEDS,
    SPLITS,
    blurb_json,
    serving,
    stop_at,
    write_bench,
)

ARTIFACTS = pathlib.Path(__file__).resolve().parents[2] / "test-artifacts"
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary (Debian: apt-get install chromium; CI installs it)"
)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("benches") / "example"
    return write_bench(root, blurb_json(), train_only=("step_time_s",))


def _modules(module: dict) -> int:
    return 1 + sum(_modules(child) for child in module["children"])


def test_page_shows_leaderboard_curves_blurb_and_profile(written, page):
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "viewer.png"
    screenshot.unlink(missing_ok=True)
    cells, choice_cells = len(written.cells), (written.cells.model == "choice").sum()
    with serving(written.root) as server:
        dom = page.dom(server.url + "?model=m-choice&metrics=all", screenshot)
        configs_dom = page.dom(server.url + "?mode=configs&metric=step_time_s")

    assert 'data-ready="true"' in dom, "the page's script did not finish"
    assert '<p id="error" class="error" hidden="">' in dom
    assert ">created 2026-01-01 00:00:00 UTC</span>" in dom  # written in UTC: not local time
    assert dom.count('class="board-row"') == cells
    for cell_id in written.cells.cell_id:
        assert f">{cell_id}</td>" in dom
    head = between(dom, "<thead>", "</thead>")  # all metrics, but no column without a value
    assert all(f">{split} aux/balance</th>" in head for split in SPLITS)
    assert ">train step_time_s</th>" in head and ">test step_time_s</th>" not in head
    curves = between(dom, 'id="curve-plots"', 'id="legend"')
    assert curves.count('class="curve"') == cells * len(SPLITS)
    assert all(curves.count(f">{split}</text>") == 1 for split in SPLITS)  # one plot each
    aux = between(dom, 'id="aux-plots"', 'id="aux-legend"')
    assert aux.count('class="curve"') == 3 * choice_cells  # aux/balance and two path weights
    aux_legend = between(dom, 'id="aux-legend"', 'id="models"')  # whose each colour is
    assert aux_legend.count(">choice · ") == len(LEARNING_RATES) and ">mlp · " not in aux_legend
    blurb = between(dom, 'id="blurb"', 'id="graph"')
    assert blurb.count('<details class="module') == _modules(written.blurb["root"])
    assert "softmax temperature" in blurb and "(default 1, range &gt; 0)" in blurb
    assert html.escape(NOTE_TEXT, quote=False) in blurb  # a note's text shown, not parsed
    assert ">1.2 s</span>" in blurb and ">25 µs</span>" in blurb  # as the text table: s, ms, µs
    graph = between(dom, 'id="graph"', 'id="profile"')
    assert graph.count('class="edge"') == 5 and graph.count('class="node ') == 5
    phases = between(dom, 'id="phases"', 'id="memory"')
    assert phases.count('class="bar"') == len(written.phases)
    memory = between(dom, 'id="memory"', 'id="morph"')
    assert memory.count('class="curve"') == 2  # see test_view_memory for several processes
    assert "host_rss_bytes</span>" in memory and "(process" not in memory

    env = between(dom, 'id="env"', "</table>")  # readable, not env.json's raw JSON
    assert f"<td>jax=={jax.__version__}, tensorflow-datasets (not installed)</td>" in env
    assert "<th>devices</th><td>NVIDIA H100 × 2</td>" in env and "<td>3.11</td>" in env
    assert "<th>earlier</th><td>python 3.10; packages jax==0.4.30; devices cpu × 1</td>" in env

    widths = between(dom, 'data-column="width"', "</select>")  # text in natural order
    assert widths.index(">25,50</option>") < widths.index(">100</option>")
    sort_by = between(dom, 'id="sort-by"', "</select>")  # any hparam, also those not shown
    columns = ("lr", "width", "seed", "group_id", "model")
    assert all(f'<option value="{c}">' in sort_by for c in columns)

    assert configs_dom.count('class="board-row"') == cells // len(SEEDS)
    assert configs_dom.count('data-mode="configs" class="on"') == 2  # the board's and the curves'
    curves = between(configs_dom, 'id="curve-plots"', 'id="legend"')
    assert curves.count('class="band"') == cells // len(SEEDS)  # step_time_s: train only
    assert ">train</text>" in curves and ">test</text>" not in curves  # no empty plot

    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 20_000  # a drawn page, not a blank one


@pytest.mark.parametrize("frozen", [False, True], ids=["nan", "frozen-finite"])
def test_a_diverged_seed_and_lines_past_the_cap_are_shown(tmp_path, frozen, page):
    """84 cells (over the 80 lines a plot draws), one seed of the best config diverged:
    its values NaN, or finite but its rows marked ``diverged`` (frozen after an overflow)."""
    seeds = tuple(range(21))
    written = write_bench(
        tmp_path / "many", blurb_json(), seeds=seeds, diverge=not frozen, frozen=frozen
    )
    with serving(written.root) as server:
        cells_dom = page.dom(server.url)
        configs_dom = page.dom(server.url + "?mode=configs")

    assert 'data-ready="true"' in cells_dom and 'data-ready="true"' in configs_dom
    legend = between(cells_dom, 'id="legend"', 'id="aux"')
    assert f"showing 80 of {len(written.cells)} lines: filter or hide rows" in legend
    curves = between(cells_dom, 'id="curve-plots"', 'id="legend"')
    assert curves.count('class="curve"') == 80 * len(SPLITS)
    assert '<td class="num diverged">NaN</td>' in cells_dom  # not the "–" of no result

    rows = between(configs_dom, "<tbody>", "</tbody>").split('class="board-row"')[1:]
    assert len(rows) == len(written.cells) // len(seeds)
    diverged = f"diverged (1/{len(seeds)})"
    model, lr, _ = DIVERGED
    assert diverged in rows[-1] and f">{model}</td>" in rows[-1] and f">{lr}</td>" in rows[-1]
    assert all(diverged not in row for row in rows[:-1])  # the diverged config sorts last
    legend = between(configs_dom, 'id="legend"', 'id="aux"')
    assert legend.count("(1 diverged)") == 1 and f"{model} · lr={lr} (1 diverged)" in legend


@pytest.mark.parametrize("flag", [False, None], ids=["recorded", "written-before"])
def test_a_nan_of_a_cell_whose_rows_say_it_did_not_diverge_is_no_divergence(tmp_path, flag, page):
    """A NaN test accuracy of a seed whose rows record diverged=False (NaN test inputs)
    showed "diverged (1/2)" and a red cell, where the summary shows "nan", and its curves
    and the hyperparameter plot said diverged; in rows that record no flag (null: written
    before they did) a NaN is still the one sign."""
    written = write_bench(tmp_path / "nan", blurb_json(), diverge=True, frozen=True)
    for part in (written.root / _layout.RESULTS).glob("*.parquet"):
        table = pq.read_table(part)
        column = pa.array([flag] * len(table), pa.bool_())
        at = table.schema.get_field_index(_layout.DIVERGED)
        pq.write_table(table.set_column(at, _layout.DIVERGED, column), part)
    with serving(written.root) as server:
        cells_dom = page.dom(server.url)
        configs_dom = page.dom(server.url + "?mode=configs")
        model, lr, seed = DIVERGED
        tips = []  # the curves' tooltips a quarter along, where no seed is NaN yet
        for mode in ("cells", "configs"):
            page.open(server.url + f"?mode={mode}&f.model=%22{model}%22&f.lr={lr}")
            page.move_to(*page.run(QUARTER_ALONG))
            tips.append(page.run("document.getElementById('tooltip').textContent"))
        hp_legend = page.run("document.getElementById('hp-legend').textContent")
        marks = page.run(MARKS)

    diverged = flag is None
    assert (f"{model} · lr={lr} · seed {seed} (diverged)" in tips[0]) is diverged
    assert f"{model} · lr={lr} · seed {1 - seed} 0." in tips[0]
    assert f"{model} · lr={lr} (2 seeds{', 1 diverged' if diverged else ''}) 0." in tips[1]
    assert (len(marks) == 1) is diverged
    assert hp_legend.endswith(
        "1 diverged (NaN or inf): red × on the top edge"
        if diverged
        else "1 not: test accuracy NaN or inf of a cell that did not diverge"
    )
    assert ("(1 diverged)" in between(configs_dom, 'id="legend"', 'id="aux"')) is diverged
    rows = between(configs_dom, "<tbody>", "</tbody>").split('class="board-row"')[1:]
    [row] = [r for r in rows if f">{model}</td>" in r and f">{lr}</td>" in r]
    assert ('<td class="num diverged">diverged (1/2)</td>' in row) is (flag is None)
    assert ('<td class="num">NaN</td>' in row) is (flag is False)
    assert ('<td class="num diverged">NaN</td>' in cells_dom) is (flag is None)
    assert ('<td class="num">NaN</td>' in cells_dom) is (flag is False)


ASKED = """performance.getEntriesByType('resource').map((e) => new URL(e.name))
  .filter((u) => u.pathname === '/api/results')
  .map((u) => [u.searchParams.get('columns'), u.searchParams.get('cells')?.split(',') ?? null])"""
"""The curves the page has asked for: ``[columns, [cell_id, ...]]`` of each request (None
for no ``cells=``: every cell)."""


def test_the_lines_drawn_are_those_of_the_tables_first_rows(tmp_path, page):
    """84 cells, 80 lines: those of the table's first 80 rows as sorted, also after the
    order is reversed (they were the plan's first 80, whatever the order). The page asks
    for the curves of those 80 cells alone (it fetched all 84), then for the 4 the new
    order draws first, and for none when the order goes back."""
    written = write_bench(tmp_path / "many", blurb_json(), seeds=tuple(range(21)))
    table = "[...document.querySelectorAll('.board-row')].map((r) => r.dataset.key)"
    lines = "[...document.querySelectorAll('#curve-plots .curve')].map((c) => c.dataset.key)"
    drawn, asked = [], []
    with serving(written.root) as server:
        page.open(server.url)
        for _ in range(3):
            page.settle()
            rows = page.run(table)
            assert len(rows) == len(written.cells) and set(page.run(lines)) == set(rows[:80])
            drawn.append(set(rows[:80]))
            asked.append(page.run(ASKED))
            page.run("document.getElementById('sort-dir').click()")

    def loss_cells(requests):
        assert all(ids is not None for _, ids in requests), "the curves of every cell asked for"
        cells = [c for columns, ids in requests if columns == "loss" for c in ids]
        assert len(cells) == len(set(cells)), "a cell asked for twice"
        return set(cells)

    assert loss_cells(asked[0]) == drawn[0]
    assert loss_cells(asked[1][len(asked[0]) :]) == drawn[1] - drawn[0] and len(drawn[1]) == 80
    assert asked[2] == asked[1] and drawn[2] == drawn[0]  # back: nothing fetched again
    aux = [ids for columns, ids in asked[0] if columns != "loss"]  # aux losses, path weights
    assert [set(ids) for ids in aux] == [drawn[0]]


def test_the_curves_of_many_cells_are_asked_for_in_requests_a_server_takes(tmp_path, page):
    """84 cells of ids 800 characters long: 67 KB of ids, more than the request line this
    server reads (64 KiB, 414 past that). The page asks in several requests, each line
    short, and draws every line."""
    written = write_bench(tmp_path / "long", blurb_json(), seeds=tuple(range(21)))
    longer = {cell: cell.ljust(800, "x") for cell in written.cells.cell_id}
    written.cells.assign(cell_id=written.cells.cell_id.map(longer)).to_parquet(
        written.root / _layout.CELLS
    )
    for part in (written.root / _layout.RESULTS).iterdir():
        table = pq.read_table(part)
        ids = pa.array([longer[c] for c in table.column("cell_id").to_pylist()])
        pq.write_table(
            table.set_column(table.schema.get_field_index("cell_id"), "cell_id", ids), part
        )
    lengths = (
        "performance.getEntriesByType('resource').map((e) => e.name)"
        ".filter((url) => url.includes('/api/results')).map((url) => url.length)"
    )
    with serving(written.root) as server:
        page.open(server.url + "?mode=configs")
        lines = page.run("document.querySelectorAll('#curve-plots .band').length")
        sent = page.run(lengths)
    assert lines == len(MODELS) * len(LEARNING_RATES) * len(SPLITS)  # a band per config
    assert len(sent) > 2 and max(sent) < 10_000  # the curves' and the aux plots', in parts


NEXT_LOOK_S = 90
"""Seconds a test waits for the page's next look at the bench, on its own: it waits up to
60 s between looks (five times as long as its last reading took: 15 s after one of 3 s,
on a busy machine; a tenth of that where `Page.hasten_looks`), then reads what changed."""

LIVE = "document.getElementById('live-state').textContent"
"""The header's live indicator."""
CHOOSE = """(id, value) => { const s = document.getElementById(id);
  s.value = value; s.dispatchEvent(new Event('change')); }"""
"""Picks ``value`` in the menu ``id`` as a user does."""


def test_curves_overtaken_while_fetching_draw_nothing(tmp_path, page):
    """The metric switched to accuracy, whose curves come slowly, and back to loss before
    they came: the plots stay loss's (the late answer drew accuracy's over them)."""
    written = write_bench(tmp_path / "slow", blurb_json())
    labels = "[...document.querySelectorAll('#curve-plots .axis-label')].map((t) => t.textContent)"
    with serving(written.root) as server:
        page.open(server.url)
        page.delay_fetches(r"accuracy", seconds=0.5)
        page.run(f"(({CHOOSE})('curve-metric', 'accuracy'), ({CHOOSE})('curve-metric', 'loss'))")
        page.settle()
        page.answered()  # the slow answer came and was handled
        assert sorted(page.run(labels)) == ["loss", "loss", "step", "step"]
        assert page.run("document.getElementById('curve-metric').value") == "loss"


def test_a_bench_without_cells_says_so(tmp_path, page):
    bench = tmp_path / "empty"
    bench.mkdir()
    (bench / _layout.MARKER).write_text(json.dumps({"format": _layout.FORMAT}))
    with serving(bench) as server:
        dom = page.dom(server.url)
    assert 'data-ready="true"' in dom and "No cells planned yet." in dom
    assert "No cell matches the filters." not in dom
    assert 'class="chip"' not in between(dom, 'id="filters"', "</div>")  # no "model = –"
    assert '<div id="graph" class="graph" hidden=""></div>' in dom  # no empty box beside


def test_a_page_opened_before_its_bench_starts_waits_for_it(tmp_path, page):
    """A viewer started with its bench (`bench.new` and `view` at once) was refused until
    bench.json existed. Its page says what it waits for in place of the panels, and shows
    the bench once it starts there."""
    folder = tmp_path / "bench"
    staged = write_bench(tmp_path / "staged", blurb_json())
    note = "document.getElementById('waiting')"
    panels = "[...document.querySelectorAll('main > section')].filter((s) => s.offsetParent)"
    with serving(folder) as server:
        page.navigate(server.url)
        deadline = time.monotonic() + 30
        said_so = page.wait_for(f"{note}?.hidden === false", deadline - time.monotonic())
        assert said_so, "the page did not say it waits"
        said = f"Waiting for the bench to start in {str(folder)!r} (no such directory yet)."
        assert page.run(f"{note}.textContent") == said
        assert page.run(f"{panels}.length") == 0
        page.run(  # the viewer restarted: a look fails (it ended the wait, the page dead)
            "(() => { const fetchNow = window.fetch; window.looks = 0;"
            " window.fetch = (url, ...rest) => (String(url) === 'api/version' && !looks++)"
            " ? Promise.reject(new TypeError('down')) : fetchNow(url, ...rest); })()"
        )
        for text in (f"{said[:-1]} (the viewer is not answering; asking again).", said):
            shown = f"{note}.textContent === {json.dumps(text)}"
            assert page.wait_for(shown, deadline - time.monotonic()), page.run(
                f"{note}.textContent"
            )
        folder.mkdir()
        (folder / "notes.txt").write_text("mine")  # named as why no bench starts there
        named = f"{note}.textContent.startsWith({json.dumps(f'{str(folder)!r} is not a ')})"
        assert page.wait_for(named, deadline - time.monotonic()), page.run(f"{note}.textContent")
        assert page.run(f"{note}.textContent").endswith(" --dir DIR`.")  # one full stop
        (folder / "notes.txt").unlink()
        folder.rmdir()
        page.run("Object.defineProperty(document, 'hidden', {configurable: true, get: () => true})")
        time.sleep(1.1)  # a look under way ends
        looks = page.run("window.looks")
        staged.root.rename(folder)
        time.sleep(1.2)
        assert page.run("window.looks") == looks  # none in a hidden tab (one a second)
        page.run("delete document.hidden; document.dispatchEvent(new Event('visibilitychange'))")
        page.wait_ready()
        assert page.run(f"{note}.hidden") is True
        assert page.run(f"{panels}.length") == 8  # the morph panel too
        rows = len(page.run("[...document.querySelectorAll('#board .board-row')]"))
        assert rows == len(staged.cells)


def test_a_morph_run_directory_shows_its_morph_panel_alone(tmp_path, page):
    """A run directory of `python -m phosjax.morph` has no bench: the page shows its Morph
    panel, not the bench's panels, each empty ("No cells planned yet.", ...)."""
    (tmp_path / "morph").mkdir()
    iterations = {"iteration": [0, 1], "kind": ["start", "expanded"], "accuracy": [0.5, 0.7]}
    frame = pd.DataFrame(iterations)
    frame.attrs = {"morph_config": {"strength": 0.25, "cost": "flops"}, "resolved_dataset": "d:1"}
    frame.to_parquet(tmp_path / "morph" / "iterations.parquet")
    shown = "[...document.querySelectorAll('{}')].filter((e) => !e.hidden).map((e) => e.{})"
    with serving(tmp_path) as server:
        page.open(server.url)
        assert page.run(shown.format("main > section", "id")) == ["morph"]
        assert page.run(shown.format("nav a", "textContent")) == ["Morph"]
        assert "expanded" in page.run("document.getElementById('morph-files').textContent")
        config = "[...document.querySelectorAll('#morph-files .kv tr')].map((r) => r.innerText)"
        assert page.run(config) == [  # the run's config, from the table's metadata
            "morph_config.strength\t0.25",
            "morph_config.cost\tflops",
            "resolved_dataset\td:1",
        ]
        assert "morph run" in page.run("document.getElementById('summary').textContent")


def test_a_morph_table_tells_long_values_apart_as_the_results_table_does(tmp_path, page):
    """Two model configs alike in their first 39 characters read alike in a morph file's
    table, each cut there and "…" (a rule of its own); they are now cut as the results
    table cuts them (`shortApart`), their ends kept, whole on hover."""
    (tmp_path / "morph").mkdir()
    configs = [json.dumps({"widths": [64] * 6, "pool": pool}) for pool in ("max", "mean")]
    pd.DataFrame({"iteration": [0, 1], "model": configs}).to_parquet(
        tmp_path / "morph" / "iterations.parquet"
    )
    cells = "[...document.querySelectorAll('#morph-files table.board tr td:nth-child(2)')]"
    with serving(tmp_path) as server:
        page.open(server.url)
        shown = page.run(f"{cells}.map((td) => [td.title, td.textContent])")
    assert [title for title, _ in shown] == configs
    texts = [text for _, text in shown]
    assert len(set(texts)) == 2 and all(len(text) <= 40 for text in texts), texts
    assert texts[0].endswith('"max"}') and texts[1].endswith('"mean"}'), texts


def test_a_broken_morph_file_says_why_in_its_place(tmp_path, page):
    """One damaged file under ``morph/`` failed the whole Morph panel, its table of
    iterations not shown; the file says why in its place, the table is drawn."""
    (tmp_path / "morph").mkdir()
    frame = pd.DataFrame({"iteration": [0, 1], "kind": ["start", "expanded"]})
    frame.to_parquet(tmp_path / "morph" / "iterations.parquet")
    (tmp_path / "morph" / "summary.json").write_text('{"flops_before": 2')
    files = "[...document.querySelectorAll('#morph-files > *')].map((e) => e.textContent)"
    with serving(tmp_path) as server:
        page.open(server.url)
        shown = page.run(files)
        assert not page.run("document.getElementById('morph').classList.contains('failed')")
    assert shown[0] == "iterations.parquet" and "expanded" in shown[1], shown
    assert shown[2] == "summary.json" and shown[3].startswith("cannot read morph/summary.json: ")


def test_a_browser_that_ended_is_closed_its_pipe_too(tmp_path, monkeypatch):
    """Closing a browser that ended already (crashed) raised BrokenPipeError: at the module's
    end its pipe stayed open, the browser started after it running, the last test failed."""
    monkeypatch.setattr(_chromium, "CHROMIUM", "true")  # a browser that ends at once
    ended = Browser(tmp_path / "profile")
    ended._process.wait()
    ended.close()
    for fd in (ended._in, ended._out):
        with pytest.raises(OSError):  # closed
            os.fstat(fd)


class _Hanging:
    """A browser that answers until a page is closed, then no more."""

    def __init__(self):
        self.ended = False

    def call(self, method: str, *args, **kwargs) -> dict:
        assert method != "Target.disposeBrowserContext", "chromium did not answer within 60 s"
        return {"browserContextId": "context", "targetId": "target", "sessionId": "session"}

    def end(self) -> None:
        self.ended = True


def test_a_page_whose_browser_hangs_ends_it():
    """A browser that hung under a test's page was kept: each later test of the module
    waited 60 s for it and failed. The page's close fails as before and ends the browser,
    so that the next page starts one again."""
    hanging = _Hanging()
    opened = Page(hanging)
    with pytest.raises(AssertionError, match="did not answer"):
        opened.close()
    assert hanging.ended


POINTS = """[...document.querySelectorAll('#hp-plot circle.point')].map((c) => ({
  cell: c.dataset.cell, key: c.dataset.key,
  cx: Number(c.getAttribute('cx')), cy: Number(c.getAttribute('cy'))}))"""
MARKS = "[...document.querySelectorAll('#hp-plot .diverged-mark')].map((m) => m.dataset.cell)"
QUARTER_ALONG = """(() => { const r = document.querySelector('#curve-plots .overlay');
  r.scrollIntoView({block: 'center'}); const box = r.getBoundingClientRect();
  return [box.x + box.width / 4, box.y + box.height / 2]; })()"""
"""A point of the first curve plot a quarter along its steps."""


def test_cells_a_log_axis_cannot_place_are_counted_apart(tmp_path, page):
    """Learning rates 0 and 0.01 on a log x axis (a weight decay of 0, say): the cells at
    0 were left out of the plot silently, the note counting them as plotted."""
    written = write_bench(tmp_path / "zero", blurb_json(), learning_rates=(0.0, 0.01))
    at_zero = (written.cells.lr == 0).sum()
    legend = "document.getElementById('hp-legend').textContent"
    with serving(written.root) as server:
        page.open(server.url + "?x=lr&hp-log-x=on")
        assert len(page.run(POINTS)) == len(written.cells) - at_zero
        plotted = len(written.cells) - at_zero
        assert page.run(legend).endswith(
            f"{plotted} cells plotted · {at_zero} not: lr ≤ 0 on the log x axis"
        )


def _final(written, split: str, metric: str) -> dict[str, float]:
    """Each cell's last value of ``metric`` on ``split``."""
    rows = written.results[written.results.split == split].sort_values("step")
    return rows.groupby("cell_id")[metric].agg(lambda values: values.iloc[-1]).to_dict()


def test_a_loss_is_sorted_lowest_first_by_its_header_or_the_menu(tmp_path, page):
    """A click on the header of a loss (or picking it in *sort by*) sorted the highest,
    worst, loss first, as it does an accuracy."""
    written = write_bench(tmp_path / "grid", blurb_json(), seeds=(0,))
    loss = _final(written, "test", "loss")
    first = "document.querySelector('#board .board-row').dataset.key"
    header = (
        "[...document.querySelectorAll('#board th')].find((th) => th.textContent === 'test loss')"
    )
    menu = "document.getElementById('sort-by')"
    with serving(written.root) as server:
        page.open(server.url)
        page.run(f"{header}.click()")
        assert page.run(first) == min(loss, key=loss.get)
        page.run(f"{menu}.value = 'model'; {menu}.dispatchEvent(new Event('change'))")
        page.run(f"{menu}.value = 'test:loss'; {menu}.dispatchEvent(new Event('change'))")
        assert page.run(first) == min(loss, key=loss.get)


def test_the_table_is_sorted_and_its_rows_lit_from_the_keyboard(tmp_path, page):
    """A header sorted on a click alone (Tab passed it by, Enter and Space did nothing, a
    screen reader heard no order), and a row lit its curves on hovering alone. A header is
    reached by Tab, sorts on Enter or Space, keeps the focus and tells its order
    (aria-sort); a row whose tick box has the focus lights its curves."""
    written = write_bench(tmp_path / "grid", blurb_json(), seeds=(0,))
    loss = _final(written, "test", "loss")
    first = "document.querySelector('#board .board-row').dataset.key"
    order = "document.activeElement.dataset.sort + ' ' + document.activeElement.ariaSort"
    with serving(written.root) as server:
        page.open(server.url)
        page.run(
            "[...document.querySelectorAll('#board th')]"
            ".find((th) => th.textContent === 'test loss').previousElementSibling.focus()"
        )
        page.press("Tab")
        assert page.run(order) == "test:loss none"
        page.press("Enter")
        page.settle()
        assert page.run(first) == min(loss, key=loss.get)
        assert page.run(order) == "test:loss ascending"
        page.press(" ")
        page.settle()
        assert page.run(first) == max(loss, key=loss.get)
        assert page.run(order) == "test:loss descending"
        page.run("document.querySelector('#board .board-row input').focus()")
        lit = "[...document.querySelectorAll('.curve.lit')].map((c) => c.dataset.key)"
        assert page.run(lit) == [max(loss, key=loss.get)] * len(SPLITS)
        page.run("document.activeElement.blur()")
        assert page.run(lit) == []


def test_leaving_a_hovered_row_lights_the_focused_row_again(tmp_path, page):
    """A row lit because its tick box had the focus went dark when the mouse left any
    other row (its ``mouseleave`` lit nothing); it lights the focused row again."""
    written = write_bench(tmp_path / "grid", blurb_json(), seeds=(0,))
    keys = "[...document.querySelectorAll('#board .board-row')].map((r) => r.dataset.key)"
    lit = "[...document.querySelectorAll('.board-row.lit')].map((r) => r.dataset.key)"
    with serving(written.root) as server:
        page.open(server.url)
        focused, other = page.run(keys)[:2]
        page.run("document.querySelector('#board .board-row input').focus()")
        assert page.run(lit) == [focused]
        page.hover(f'#board .board-row[data-key="{other}"]')
        assert page.run(lit) == [other]
        page.move_to(0, 0)  # off the table
        assert page.run(lit) == [focused]
        page.run("document.activeElement.blur()")
        assert page.run(lit) == []


def test_a_regularizer_is_sorted_lowest_first_a_path_weight_highest(tmp_path, page):
    """The regularizer (a penalty, part of the loss) was sorted highest first, and a path
    weight whose module path holds "loss" lowest first: a metric's name was searched for
    "loss" anywhere in it."""
    written = write_bench(tmp_path / "grid", blurb_json(), seeds=(0,))
    for part in (written.root / _layout.RESULTS).glob("*.parquet"):
        table = pq.read_table(part)
        names = [name.replace("frame/", "loss_head/") for name in table.column_names]
        table = table.rename_columns(names)
        pq.write_table(table.append_column("regularizer", pc.multiply(table["loss"], 0.1)), part)
    direction = "document.getElementById('sort-dir').textContent"
    with serving(written.root) as server:
        page.open(server.url + "?metrics=all")
        page.run(f"({CHOOSE})('sort-by', 'train:regularizer')")
        assert page.run(direction) == "↑"
        page.run(f"({CHOOSE})('sort-by', 'train:path_weight/loss_head/choice/branch_0')")
        assert page.run(direction) == "↓"


def test_the_hyperparameter_plot_puts_each_cell_at_its_hparam(tmp_path, page):
    written = write_bench(tmp_path / "grid", blurb_json(), diverge=True)
    cells = written.cells.set_index("cell_id")
    accuracy = _final(written, "test", "accuracy")
    model, lr, seed = DIVERGED
    diverged = cells.index[(cells.model == model) & (cells.lr == lr) & (cells.seed == seed)][0]
    assert np.isnan(accuracy[diverged]) and sum(np.isnan(v) for v in accuracy.values()) == 1
    with serving(written.root) as server:
        page.open(server.url)
        # Defaults: the only numeric hparam that varies, test accuracy, a linear x (a factor 3).
        assert page.run("document.getElementById('hp-x').value") == "lr"
        assert page.run("[...document.getElementById('hp-x').options].map((o) => o.value)") == [
            "lr"
        ]
        assert page.run("document.getElementById('hp-metric').value") == "test:accuracy"
        assert page.run("document.getElementById('hp-log-x').checked") is False
        points = page.run(POINTS)
        finite = [c for c in cells.index if c != diverged]
        assert sorted(p["cell"] for p in points) == sorted(finite)  # one point per finite cell
        assert page.run(MARKS) == [diverged]  # the diverged cell: marked, not plotted
        assert "1 diverged" in page.run("document.getElementById('hp-legend').textContent")
        for a in points:  # x in the order of the learning rates, y in that of the accuracies
            for b in points:
                lr_a, lr_b = cells.lr[a["cell"]], cells.lr[b["cell"]]
                assert (a["cx"] < b["cx"]) == (lr_a < lr_b)
                assert (a["cx"] == b["cx"]) == (lr_a == lr_b)
                if accuracy[a["cell"]] < accuracy[b["cell"]] - 1e-3:
                    assert a["cy"] > b["cy"]
        # One mean line per model (the configuration but for lr).
        assert page.run("document.querySelectorAll('#hp-plot .trend').length") == len(MODELS)

        # Hovering a point lights its leaderboard row and tells its hparams and value (a
        # point no other covers: the one farthest from its nearest).
        gap = lambda p: min(
            math.dist((p["cx"], p["cy"]), (q["cx"], q["cy"])) for q in points if q != p
        )
        target = max(points, key=gap)
        page.hover(f'#hp-plot circle[data-cell="{target["cell"]}"]')
        lit = page.run("[...document.querySelectorAll('.board-row.lit')].map((r) => r.dataset.key)")
        assert lit == [target["cell"]]
        tip = page.run("document.getElementById('tooltip').textContent")
        assert (
            f"lr = {cells.lr[target['cell']]}" in tip and f"{accuracy[target['cell']]:.4g}" in tip
        )

        # A filter and an unticked row leave their cells out.
        page.run(
            "(() => { const s = document.querySelector('select[data-column=\"model\"]');"
            " s.value = JSON.stringify('mlp'); s.dispatchEvent(new Event('change')); })()"
        )
        mlp = sorted(cells.index[cells.model == "mlp"])
        assert sorted(p["cell"] for p in page.run(POINTS)) == mlp and page.run(MARKS) == []
        page.run(f"document.querySelector('.board-row[data-key=\"{mlp[0]}\"] input').click()")
        assert sorted(p["cell"] for p in page.run(POINTS)) == mlp[1:]

        # The address picks the result; a mean over seeds keeps one point per cell.
        page.open(server.url + "?mode=configs&x=lr&y=train:loss")
        assert page.run("document.getElementById('hp-metric').value") == "train:loss"
        assert len(page.run(POINTS)) == len(finite)


def test_the_hyperparameter_plot_takes_a_log_x_for_a_wide_range(tmp_path, page):
    rates = (1e-4, 1e-3, 1e-2)
    written = write_bench(tmp_path / "wide", blurb_json(), learning_rates=rates)
    cells = written.cells.set_index("cell_id")
    with serving(written.root) as server:
        page.open(server.url)
        assert page.run("document.getElementById('hp-log-x').checked") is True
        xs = {cells.lr[p["cell"]]: p["cx"] for p in page.run(POINTS)}
        assert sorted(xs) == list(rates)
        assert abs((xs[1e-3] - xs[1e-4]) - (xs[1e-2] - xs[1e-3])) < 1  # a decade each
        page.run("document.getElementById('hp-log-x').click()")  # the box overrides it
        xs = {cells.lr[p["cell"]]: p["cx"] for p in page.run(POINTS)}
        assert (xs[1e-3] - xs[1e-4]) * 5 < xs[1e-2] - xs[1e-3]
        assert page.run("location.search") == "?hp-log-x=off"  # kept, as it is not the default


def test_a_log_x_leaves_out_a_zero_of_the_mean_lines(tmp_path, page):
    """A learning rate of 0 has no place on a log axis: the mean lines leave it out and
    go through the others (their path began at x = -Infinity, and none was drawn)."""
    written = write_bench(tmp_path / "zero", blurb_json(), learning_rates=(0.0, 1e-3, 1e-2))
    with serving(written.root) as server:
        page.open(server.url)
        page.run("document.getElementById('hp-log-x').click()")
        paths = page.run(
            "[...document.querySelectorAll('#hp-plot .trend')].map((t) => t.getAttribute('d'))"
        )
    assert len(paths) == len(MODELS)
    for path in paths:  # through the two positive rates
        assert re.fullmatch(r"M[\d.]+,[\d.]+L[\d.]+,[\d.]+", path), path


def test_past_15_configurations_each_and_each_mean_line_has_a_colour_of_its_own(tmp_path, page):
    """15 learning rates a model: the 16th configuration took the first's colour of the
    palette's 15 in the table and the curves, and so did the two models' mean lines. A
    hyperparameter plot's points took their configuration's colour, its lines their group's:
    a line matched one of its points; each point now has its line's colour."""
    rates = tuple(0.001 * (i + 1) for i in range(15))
    written = write_bench(tmp_path / "rates", blurb_json(), seeds=(0,), learning_rates=rates)
    with serving(written.root) as server:
        page.open(server.url)
        colours = page.run(
            "[...document.querySelectorAll('#hp-plot .trend')].map((t) => t.getAttribute('stroke'))"
        )
        swatches = page.run(
            "[...document.querySelectorAll('#board .swatch')].map((s) => s.style.background)"
        )
        points = page.run(
            "[...document.querySelectorAll('#hp-plot circle.point')]"
            ".map((c) => c.getAttribute('fill'))"
        )
    assert len(colours) == len(MODELS) and len(set(colours)) == len(MODELS), colours
    assert len(points) == len(MODELS) * len(rates) and set(points) == set(colours), points
    assert len(swatches) == len(MODELS) * len(rates) == len(set(swatches)), swatches


def test_the_hyperparameter_plot_says_when_no_numeric_hparam_varies(tmp_path, page):
    written = write_bench(tmp_path / "fixed", blurb_json(), learning_rates=LEARNING_RATES[:1])
    with serving(written.root) as server:
        page.open(server.url)
        assert page.run(POINTS) == []
        hint = page.run("document.querySelector('#hp-plot .hint')?.textContent")
        assert hint and "No numeric hyperparameter varies" in hint


def test_the_hyperparameter_plot_is_first_against_an_axis_of_the_grid(tmp_path, page):
    """One learning rate; a depth each model fixes (mlp 1, choice 2) and a knob axis
    within the choice model: the plot is against the knob (it was against the depth, the
    first numeric column that varies, which only tells the models apart)."""
    written = write_bench(tmp_path / "knob", blurb_json(), learning_rates=LEARNING_RATES[:1])
    cells = written.cells.assign(depth=(written.cells.model == "choice") + 1)
    knob = cells.seed + 1.0
    cells.assign(**{"knob/**/T": knob.where(cells.model == "choice")}).to_parquet(
        written.root / _layout.CELLS
    )
    with serving(written.root) as server:
        page.open(server.url)
        assert page.run("[...document.getElementById('hp-x').options].map((o) => o.value)") == [
            "depth",
            "knob/**/T",
        ]
        assert page.run("document.getElementById('hp-x').value") == "knob/**/T"


def test_a_knob_of_one_model_tells_its_configurations_and_mean_lines_apart(tmp_path, page):
    """A knob the choice model's cells differ in (null in the mlp's): each (model, lr,
    knob) is a configuration of its own, a table row over its seeds, and the plot against
    lr draws one mean line per model and knob value, the mlp's whole."""
    written = write_bench(tmp_path / "knob", blurb_json())
    cells = written.cells
    knob = (cells.seed + 1.0).where(cells.model == "choice")
    cells.assign(**{"knob/**/T": knob}).to_parquet(written.root / _layout.CELLS)
    legend = "[...document.querySelectorAll('#hp-legend .legend-item')].map((i) => i.textContent)"
    with serving(written.root) as server:
        page.open(server.url + "?mode=configs&x=lr")
        keys = page.run(
            "[...document.querySelectorAll('#board .board-row')].map((r) => r.dataset.key)"
        )
        assert len(set(keys)) == len(LEARNING_RATES) * (1 + len(SEEDS)) == len(keys)
        assert page.run("document.querySelectorAll('#hp-plot .trend').length") == 1 + len(SEEDS)
        assert page.run(legend) == [
            "choice · knob/**/T=1: mean over seeds",
            "choice · knob/**/T=2: mean over seeds",
            "mlp: mean over seeds",
            f"{len(cells)} cells plotted",
        ]


def test_a_single_test_evaluation_is_drawn(tmp_path, page):
    """eval_every 0: one test row per cell, at its last step. Each cell's test curve is a
    small ring there (a path of one point, "M x,y", drew nothing: an empty plot)."""
    written = write_bench(tmp_path / "once", blurb_json())
    for part in (written.root / _layout.RESULTS).iterdir():
        rows = pd.read_parquet(part)
        last = (rows.split == "train") | (rows.step == rows.step.max())
        pq.write_table(pq.read_table(part).filter(pa.array(last)), part)
    paths = """[...document.querySelectorAll('#curve-plots svg')].filter((p) =>
      p.querySelector('.chart-title').textContent === 'test')
      .flatMap((p) => [...p.querySelectorAll('.curve')].map((c) => c.getAttribute('d')))"""
    with serving(written.root) as server:
        page.open(server.url)
        drawn = page.run(paths)
    assert len(drawn) == len(written.cells)
    ring = r"M[\d.]+,[\d.]+a2,2 0 1,0 4,0a2,2 0 1,0 -4,0"
    assert all(re.fullmatch(ring, d) for d in drawn), drawn


def test_the_last_step_label_fits_in_its_plot(tmp_path, page):
    """Steps up to 30,000: the label "30,000" under the plot's right edge is whole (it was
    cut off by the edge of the plot's svg, "3000")."""
    written = write_bench(tmp_path / "long", blurb_json())
    for part in (written.root / _layout.RESULTS).iterdir():
        table = pq.read_table(part)
        steps = pa.array(table.column("step").to_numpy() * 100)
        pq.write_table(table.set_column(table.schema.get_field_index("step"), "step", steps), part)
    overflow = """[...document.querySelectorAll('#curve-plots svg')].flatMap((svg) =>
      [...svg.querySelectorAll('.axes text[text-anchor="middle"]')].map((t) =>
        [t.textContent, t.getBBox().x + t.getBBox().width - svg.width.baseVal.value]))"""
    with serving(written.root) as server:
        page.open(server.url)
        labels = page.run(overflow)
    assert [text for text, _ in labels if text == "30,000"] == ["30,000", "30,000"]  # both plots
    assert all(past <= 0 for _, past in labels), labels


def test_the_models_menu_tells_a_models_ids_apart_by_data_set(tmp_path, page):
    """mlp on two data sets: two model ids (one per input shape), each entry naming its
    data set (both read "mlp (<id>)"); choice, on one, as ever."""
    written = write_bench(tmp_path / "two", blurb_json())
    cells = written.cells.copy()
    other = (cells.model == "mlp") & (cells.seed == 1)
    cells.loc[other, ["model_id", "dataset"]] = ["m-mlp-digits", "digits"]
    cells.to_parquet(written.root / _layout.CELLS)
    dataset = cells.loc[~other & (cells.model == "mlp"), "dataset"].iloc[0]
    with serving(written.root) as server:
        page.open(server.url)
        entries = page.run("[...document.getElementById('model-select').options].map(o => o.text)")
    assert sorted(entries) == [
        "choice (m-choice)",
        "mlp on digits (m-mlp-digits)",
        f"mlp on {dataset} (m-mlp)",
    ]


def test_a_filter_menu_tells_long_values_apart(tmp_path, page):
    """Two options, alike in their first 36 characters: the menu showed both cut there,
    the same text twice; now each whole (the closed menu stays narrow)."""
    written = write_bench(tmp_path / "options", blurb_json())
    note = "a note alike in its first 36 characters but its end, "
    first = written.cells.lr == LEARNING_RATES[0]
    notes = np.where(first, note + "one", note + "two")
    cells = written.cells.assign(options=[json.dumps({"note": n}) for n in notes])
    cells.to_parquet(written.root / _layout.CELLS)
    menu = "document.querySelector('#filters select[data-column=\"options\"]')"
    with serving(written.root) as server:
        page.open(server.url)
        entries = page.run(f"[...{menu}.options].map((o) => o.text)")
        width = page.run(f"{menu}.getBoundingClientRect().width")
    assert sorted(entries) == sorted(["all", *(f"note={json.dumps(n)}" for n in set(notes))])
    assert width < 400


def test_the_table_tells_long_values_apart(tmp_path, page):
    """Options alike in their first 36 characters read alike in the table, each cut after
    35 of them and "…"; a long value is now cut in its middle, its end kept, and values
    alike in their start and end both shown around where they differ."""
    written = write_bench(tmp_path / "options", blurb_json())
    cells = written.cells
    first = (cells.lr == LEARNING_RATES[0]).to_numpy()
    mlp = (cells.model == "mlp").to_numpy()
    ends = [f"a long note alike in all but its end: {end}" for end in ("one", "two")]
    middles = [f"alike at its start; {middle}; alike at its end too" for middle in ("red", "blue")]
    notes = np.where(mlp, np.where(first, *ends), np.where(first, *middles))
    options = [json.dumps({"note": n}) for n in notes]
    cells.assign(options=options).to_parquet(written.root / _layout.CELLS)
    headers = "[...document.querySelectorAll('#board th')]"
    column = f"{headers}.findIndex((th) => th.textContent === 'options')"
    cell = f"r.children[{column}]"
    with serving(written.root) as server:
        page.open(server.url)
        rows = "[...document.querySelectorAll('.board-row')]"
        shown = page.run(f"{rows}.map((r) => [{cell}.title, {cell}.textContent])")
    assert dict(shown) == {
        f'note="{ends[0]}"': 'note="a long note …but its end: one"',
        f'note="{ends[1]}"': 'note="a long note …but its end: two"',
        f'note="{middles[0]}"': "…ike at its start; red; alike at it…",
        f'note="{middles[1]}"': "…ike at its start; blue; alike at i…",
    }


def test_a_screen_reader_hears_the_mode_chosen_and_the_order(tmp_path, page):
    """The mode chosen (one row per cell, or mean over seeds) was shown by its button's
    colour alone, and the order's button read out as an arrow: each mode button tells
    whether it is chosen (aria-pressed), and the order's button the order."""
    written = write_bench(tmp_path / "grid", blurb_json())
    pressed = (
        "[...document.querySelectorAll('.segmented button')]"
        ".map((b) => `${b.dataset.mode} ${b.ariaPressed}`)"
    )
    order = "document.getElementById('sort-dir').ariaLabel"
    with serving(written.root) as server:
        page.open(server.url)
        assert page.run(pressed) == ["cells true", "configs false"] * 2
        assert page.run(order) == "descending: reverse the order"  # the best accuracy first
        page.run("document.querySelector('.segmented button[data-mode=configs]').click()")
        page.run("document.getElementById('sort-dir').click()")
        page.settle()
        assert page.run(pressed) == ["cells false", "configs true"] * 2
        assert page.run(order) == "ascending: reverse the order"


def test_each_plot_tells_a_screen_reader_what_it_shows(tmp_path, page):
    """The plots were drawings without a name: a screen reader read out their tick labels
    one by one. Each is one image named by its title and what it draws against what."""
    written = write_bench(tmp_path / "grid", blurb_json(), seeds=(0,))
    charts = (
        "[...document.querySelectorAll('svg.chart')].map((chart) =>"
        " `${chart.closest('[id]').id} ${chart.getAttribute('role')} ${chart.ariaLabel}`)"
    )
    with serving(written.root) as server:
        page.open(server.url)
        assert page.run(charts) == [
            "curve-plots img test: loss against step",
            "curve-plots img train: loss against step",
            "hp-plot img test accuracy against lr",  # its title says it: once
            "aux-plots img balance: aux against step",
            "aux-plots img frame/choice/branch_0: path weight against step",
            "aux-plots img frame/choice/branch_1: path weight against step",
            "phases img seconds per phase, per group (hover for each step, evaluation, compile):"
            " seconds",
            "memory img memory over time: MiB against seconds since the bench first ran",
        ]


def test_a_flat_curve_smoothed_gets_an_axis(tmp_path, page):
    """A loss of 0.75 at every step, smoothed: the averages differ from it by a rounding
    error alone (0.7500000000000001), and the y axis still gets a few distinct ticks
    (the tick loop ran forever, and the page hung)."""
    written = write_bench(tmp_path / "flat", blurb_json())
    for part in (written.root / _layout.RESULTS).iterdir():
        table = pq.read_table(part)
        flat = pa.array(np.full(len(table), 0.75), table.schema.field("loss").type)
        pq.write_table(table.set_column(table.schema.get_field_index("loss"), "loss", flat), part)
    with serving(written.root) as server:
        page.open(server.url + "?metric=loss&smoothing=0.6")
        ticks = page.run(
            "[...document.querySelector('#curve-plots svg').querySelectorAll("
            "'.axes text[text-anchor=\"end\"]')].map((t) => t.textContent)"
        )
    assert "0.75" in ticks and len(set(ticks)) == len(ticks) <= 10


def test_the_y_axis_fits_the_lines_that_did_not_diverge(tmp_path, page):
    """A loss soaring to 1e22 before its NaN (a learning rate far too high) set the y
    axis, and every other line lay flat along 0; so it still did where every line diverged."""
    (tmp_path / _layout.MARKER).write_text(json.dumps({"format": _layout.FORMAT}))
    healthy = {"key": "a", "label": "a", "color": "#000", "x": [0, 1, 2], "y": [2, 1, 0.5]}
    soaring = {"key": "b", "label": "b", "color": "#f00", "x": [0, 1, 2], "y": [2, 1e22, math.nan]}
    later = {**healthy, "y": [2, 1, 1e22, math.nan], "x": [0, 1, 2, 3]}

    def ticks(*series):
        drawn = (
            "(() => { const box = document.createElement('div'); document.body.append(box);"
            f" m.linePlot(box, {{ series: {json.dumps(series)} }});"  # NaN: JavaScript's too
            " return [...box.querySelectorAll('.axes text[text-anchor=\"end\"]')]"
            ".map((t) => Number(t.textContent)); })()"
        )
        return page.run(f"import('./static/plot.js').then((m) => {drawn})")

    with serving(tmp_path) as server:
        page.open(server.url)
        mixed = ticks(healthy, {**soaring, "diverged": True})
        diverged = ticks({**later, "diverged": True}, {**soaring, "diverged": True})
    assert mixed and max(mixed) <= 2.5, mixed
    assert diverged and max(diverged) <= 2.5, diverged


def test_an_axis_gets_at_least_two_ticks(tmp_path, page):
    """A path weight from 0.02 to 0.33 in a short aux plot (3 ticks asked): its step was
    rounded up to 0.2, which left one tick, 0.2, and so no scale."""
    (tmp_path / _layout.MARKER).write_text(json.dumps({"format": _layout.FORMAT}))
    cases = [(0.0075, 0.346, 3), (0.09, 0.345, 3), (0, 1.7, 2), (-3, 14, 2), (0.1, 0.3, 4)]
    with serving(tmp_path) as server:
        page.open(server.url)
        found = page.run(
            f"import('./static/plot.js').then((m) => {json.dumps(cases)}.map("
            "([lo, hi, count]) => m.ticks(lo, hi, count)))"
        )
    assert found[0] == [0.1, 0.2, 0.3]
    for (lo, hi, count), ticks in zip(cases, found, strict=True):
        assert 2 <= len(ticks) <= 2 * count + 1 and lo <= min(ticks) <= max(ticks) <= hi, ticks


def test_a_table_value_is_written_out_below_a_million(tmp_path, page):
    """A leaderboard value from 10,000 up (a grad_norm of a run blowing up) read
    "1.235e+4" (toPrecision's exponent), where the plots' labels read 12350."""
    (tmp_path / _layout.MARKER).write_text(json.dumps({"format": _layout.FORMAT}))
    cases = [0.5, 12.345678, 1234.5678, 12345.67, -54321.2, 999999.4, 1234567.5, 0.000123]
    with serving(tmp_path) as server:
        page.open(server.url)
        found = page.run(f"import('./static/plot.js').then((m) => {cases}.map(m.fixed))")
    assert found == ["0.5000", "12.35", "1235", "12346", "-54321", "999999", "1.23e+6", "1.23e-4"]


def test_a_latency_rounding_up_to_the_next_unit_reads_in_it(tmp_path, page):
    """A blurb's latency of 0.9996 ms read "1000 µs" and 0.9996 s "1000 ms", where the text
    table reads 1ms and 1s."""
    (tmp_path / _layout.MARKER).write_text(json.dumps({"format": _layout.FORMAT}))
    cases = [2e-7, 0.0009994, 0.0009996, 0.0015, 0.9994, 0.9996, 1.5, None]
    with serving(tmp_path) as server:
        page.open(server.url)
        found = page.run(
            f"import('./static/plot.js').then((m) => {json.dumps(cases)}.map(m.formatSeconds))"
        )
    assert found == ["0.2 µs", "999 µs", "1 ms", "1.5 ms", "999 ms", "1 s", "1.5 s", "–"]


def test_a_curve_of_one_step_is_labelled_at_whole_steps(tmp_path, page):
    """A curve of one point, at step 5 (a split evaluated once), got the x axis 4.5, 4.6,
    ..., 5.5, steps no run takes; a step axis is labelled at whole steps, an axis of
    seconds (the memory plot) as before. One at step 0 spans 0 to 1 (it read -1, 0, 1)."""
    (tmp_path / _layout.MARKER).write_text(json.dumps({"format": _layout.FORMAT}))
    cases = [([5], {}), ([1, 2], {}), ([0], {}), ([0.5, 0.7], {"wholeX": False})]
    drawn = (
        f"import('./static/plot.js').then((m) => {json.dumps(cases)}.map(([x, options]) => {{"
        " const box = document.createElement('div'); document.body.append(box);"
        " const series = [{key: 'a', label: 'a', color: 'red', x, y: x.map(() => 0.25)}];"
        " m.linePlot(box, {series, ...options});"
        " return [...box.querySelectorAll('.axes text[text-anchor=\"middle\"]')]"
        ".map((t) => t.textContent); }))"
    )
    with serving(tmp_path) as server:
        page.open(server.url)
        found = page.run(drawn)
    assert found[:3] == [["4", "5", "6"], ["1", "2"], ["0", "1"]]
    assert "0.6" in found[3]  # seconds: not whole


def test_the_ticks_of_a_narrow_range_are_labelled_apart(tmp_path, page):
    """Accuracies from 0.99901 to 0.99909 (a run converged) got the axis labels 0.999,
    0.999, 0.9991, 0.9991, and 1234.5601 to 1234.5699 four times 1235: each label has as
    many digits as tell the ticks apart; so too in exponent form (an aux loss flat at 1e-4,
    whose labels all read 1.00e-4)."""
    (tmp_path / _layout.MARKER).write_text(json.dumps({"format": _layout.FORMAT}))
    cases = [(0.99901, 0.99909), (1234.5601, 1234.5699), (0, 1.7)]
    cases += [(1.0001e-4, 1.0009e-4), (1000100, 1000900), (2e-4, 1e-3)]
    with serving(tmp_path) as server:
        page.open(server.url)
        asked = f"{json.dumps(cases)}.map(([lo, hi]) => m.tickLabels(m.ticks(lo, hi, 5)))"
        found = page.run(f"import('./static/plot.js').then((m) => {asked})")
    assert found == [
        ["0.99902", "0.99904", "0.99906", "0.99908"],
        ["1234.562", "1234.564", "1234.566", "1234.568"],
        ["0", "0.5", "1", "1.5"],  # as few digits as before where those tell them apart
        ["1.0002e-4", "1.0004e-4", "1.0006e-4", "1.0008e-4"],
        ["1.0002e+6", "1.0004e+6", "1.0006e+6", "1.0008e+6"],
        ["2.00e-4", "4.00e-4", "6.00e-4", "8.00e-4", "0.001"],
    ]


def test_a_log_axis_within_a_decade_gets_round_ticks(tmp_path, page):
    """Accuracies from 0.567 to 0.893 on a log y axis hold no 1, 2 or 5 times a power of
    ten: the axis was labelled at its two ends alone, '0.567' and '0.893'."""
    (tmp_path / _layout.MARKER).write_text(json.dumps({"format": _layout.FORMAT}))
    cases = [(0.567, 0.893, 5), (0.01, 1e30, 5), (0.003, 0.01, 5)]
    with serving(tmp_path) as server:
        page.open(server.url)
        asked = f"{json.dumps(cases)}.map((c) => m.logTicks(...c))"
        found = page.run(f"import('./static/plot.js').then((m) => {asked})")
    assert found[0] == [0.6, 0.7, 0.8]
    assert found[2] == [0.005, 0.01]  # a 5 and a power of ten: those, as before
    assert all(lo <= t <= hi for (lo, hi, _), ts in zip(cases, found, strict=True) for t in ts)


def test_a_log_axis_over_many_decades_is_labelled_sparsely(tmp_path, page):
    """Learning rates 0.01 and 1e30 on a log x axis: a label every few decades, as many
    as a linear axis of that width gets (one per decade, 35 of them, ran into each other)."""
    written = write_bench(tmp_path / "wide", blurb_json(), learning_rates=(0.01, 1e30))
    with serving(written.root) as server:
        page.open(server.url)
        assert page.run("document.getElementById('hp-log-x').checked") is True
        labels = page.run(
            "[...document.querySelectorAll('#hp-plot .axes text[text-anchor=\"middle\"]')]"
            ".map((t) => t.textContent)"
        )
        width = page.run("document.querySelector('#hp-plot .plot-border').getAttribute('width')")
    assert 2 <= len(labels) <= float(width) / 90 + 1, labels


def test_a_blurb_notes_the_knob_values_its_cells_train_with(tmp_path, page):
    """One blurb per model, as initialized: its knob reads its default (T = 1) whatever the
    grid's knob values; a note above it names those of the model's cells (none for mlp)."""
    written = write_bench(tmp_path / "knobs", blurb_json())
    knob = "knob/**/T"
    cells = written.cells.assign(**{knob: written.cells.lr * 100})
    cells.loc[cells.model == "mlp", knob] = None
    cells.to_parquet(written.root / _layout.CELLS)
    note = "document.querySelector('#blurb .knob-note')?.textContent ?? null"
    with serving(written.root) as server:
        page.open(server.url + "?model=m-choice")
        assert page.run(note) == (
            "This blurb is of the model as initialized: each knob shows its default, while the "
            f"bench's cells set **/T: 0.3, 1 (the {knob} column)."
        )
        page.run(f"({CHOOSE})('model-select', 'm-mlp')")
        page.settle()
        assert page.run(note) is None
        assert page.run("document.querySelectorAll('#blurb details.module').length") > 0


def test_a_blurbs_parameter_counts_are_whole(tmp_path, page):
    """A module of 1,234,567 parameters read 1.23e+6 (and one of 123,456 read 123456),
    where the text blurb table writes 1,234,567: two models of nearly as many parameters
    read alike."""
    (tmp_path / _layout.MARKER).write_text(json.dumps({"format": _layout.FORMAT}))
    module = {"path": "", "type": "MLP", "outputs": {}, "flops": None, "latency_s": None}
    child = module | {"path": "dense", "type": "Dense", "params": 123456, "children": []}
    blurb = {"root": module | {"params": 1234567, "children": [child]}, "backend": "cpu"}
    drawn = (
        "import('./static/blurb.js').then((m) => { const box = document.createElement('div');"
        f" m.renderBlurb(box, {json.dumps(blurb)});"
        " return [...box.querySelectorAll('summary .col-2')].map((c) => c.textContent); })"
    )
    with serving(tmp_path) as server:
        page.open(server.url)
        assert page.run(drawn) == ["1,234,567", "123,456"]


@pytest.mark.parametrize(
    ("value", "default", "shown"),
    [
        (3e-4, 1e-3, "3e-4 (default 0.001)"),
        ([3e-4, 1e6], [1e-3], "[3e-4, 1e6] (default [0.001])"),  # read [3.00e-4, 1.00e+6]
    ],
)
def test_a_blurb_writes_a_knob_as_the_table_does(tmp_path, page, value, default, shown):
    """A knob set to 3e-4 (default 1e-3) read "T = 3.00e-4 (default 0.001)" in the blurb,
    while the table's knob column and the note above the blurb read 3e-4; a list's numbers
    too."""
    (tmp_path / _layout.MARKER).write_text(json.dumps({"format": _layout.FORMAT}))
    knob = {"value": value, "default": default, "doc": "", "valid": None}
    module = {"path": "", "type": "Net", "params": 0, "knobs": {"T": knob}}
    blurb = {"root": module | {"outputs": {}, "children": []}, "backend": "cpu"}
    drawn = (
        "import('./static/blurb.js').then((m) => { const box = document.createElement('div');"
        f" box.id = 'knob'; document.body.append(box); m.renderBlurb(box, {json.dumps(blurb)}); }})"
    )
    with serving(tmp_path) as server:
        page.open(server.url)
        page.run(drawn)
        text = page.run("document.querySelector('#knob .module-info').textContent")
    assert text == f"knob T = {shown}"


def test_shapes_and_counts_of_a_model_file_are_shown_as_text_never_parsed(tmp_path, page):
    """A blurb's variable shapes and a graph node's shapes and parameter count went into the
    page's HTML as they were (a hand-edited file's "<i>2</i>" an element), where every
    other text of these files is escaped; they are shown as text."""
    (tmp_path / _layout.MARKER).write_text(json.dumps({"format": _layout.FORMAT}))
    odd = "<i>2</i>"
    kernel = {"kernel": {"shape": [odd, 3], "dtype": "float32"}}
    module = {"path": "", "type": "MLP", "params": 6, "variables": {"params": kernel}}
    blurb = {"root": module | {"outputs": {}, "children": []}, "backend": "cpu"}
    node = {"id": "x", "name": "x", "group": "", "op": "Input", "inputs": []}
    node |= {"shape": [odd, 3], "dtype": "float32", "params": odd}
    node |= {"parts": {"[0]": {"shape": [odd], "dtype": "float32"}}}
    drawn = (
        "import('./static/blurb.js').then(async (m) => { const box = document.createElement('div');"
        " box.id = 'odd'; document.body.append(box);"
        f" m.renderBlurb(box, {json.dumps(blurb)});"
        " const graph = document.createElement('div'); graph.id = 'odd-graph';"
        " document.body.append(graph); (await import('./static/graph.js'))"
        f".drawGraph(graph, {json.dumps({'nodes': [node]})}); }})"
    )
    with serving(tmp_path) as server:
        page.open(server.url)
        page.run(drawn)
        page.hover("#odd-graph .node")
        tip = "document.getElementById('tooltip')"
        assert page.run("document.querySelector('#odd .module-info').textContent").endswith(
            f"params kernel ({odd}×3)"
        )
        assert page.run(f"{tip}.querySelectorAll('i').length") == 0
        assert f"shape ({odd}, 3)" in page.run(f"{tip}.textContent")
        assert f"params {odd}" in page.run(f"{tip}.textContent")
        assert page.run("document.querySelectorAll('#odd i').length") == 0


HANDLERS = """[...document.querySelectorAll('*')].flatMap((e) => [...e.attributes]
  .filter((a) => a.name.startsWith('on')).map((a) => `${e.tagName} ${a.name}`))"""
"""The elements with an inline event handler: none of the page's (it adds its listeners),
so each one is markup of the bench's data put into the page as HTML."""


SHOWN = """[document.body.textContent,
  ...[...document.querySelectorAll('[title]')].map((e) => e.title)].join('\\n')"""
"""The page's text, and that of its elements' titles (a value cut short, whole on hover)."""


def test_names_and_values_of_the_bench_are_shown_as_text_never_parsed(tmp_path, page):
    """Model and data set names, hyperparameter values, cell ids and a metric's name
    holding markup are shown as text in the table, filters, legends and tooltips of the
    curves, aux and hyperparameter plots: no element of theirs is made, nor by a tooltip
    (each looked at while shown: the next one hovered replaces it)."""
    written = write_bench(tmp_path / "odd", blurb_json())
    odd = {
        "mlp": "<img src=x onerror=alert(1)>",
        "choice": '"><svg onload=alert(2)>',
        "dataset": "</script><b onmouseover=alert(3)>d</b>",
        "width": "<i onclick=alert(4)>w</i>",
        "aux/balance": "aux/<img src=y onerror=alert(5)>",
    }
    ids = {c: f"{c}<u onfocus=alert(6)>" for c in written.cells.cell_id}
    cells = written.cells.assign(
        model=written.cells.model.map(odd),
        dataset=odd["dataset"],
        cell_id=written.cells.cell_id.map(ids),
    )
    choice = cells.model == odd["choice"]  # the cells of the aux losses: those the hp plot shows
    cells.loc[choice, "width"] = odd["width"]
    cells.to_parquet(written.root / _layout.CELLS)
    for part in (written.root / _layout.RESULTS).iterdir():
        rows = pd.read_parquet(part).rename(columns={"aux/balance": odd["aux/balance"]})
        rows.assign(cell_id=rows.cell_id.map(ids)).to_parquet(part, index=False)
    tip = "document.getElementById('tooltip').textContent"
    hp_metric = urllib.parse.quote(f"test:{odd['aux/balance']}")  # its name in each point's tip
    with serving(written.root) as server:
        page.open(server.url + f"?model=m-choice&metrics=all&y={hp_metric}")
        page.settle()
        shown, made, tips = page.run(SHOWN), [page.run(HANDLERS)], []
        for plotted in ("#curve-plots .curve", "#aux-plots .curve", "#hp-plot circle.point"):
            page.hover(plotted)
            tips.append(page.run(tip))
            made.append(page.run(HANDLERS))
        assert made == [[]] * 4 and page.run("document.querySelectorAll('img').length") == 0
    assert [text for text in [*odd.values(), *ids.values()] if text not in shown] == []
    assert odd["mlp"] in tips[0] and odd["choice"] in tips[1]  # the labels of the lines
    heads = [f"{odd['choice']} · cell {ids[c]}" for c in written.cells.cell_id[choice]]
    hp_tip = (f"width = {odd['width']}", f"test {odd['aux/balance']} ")  # a value, the metric
    assert any(tips[2].startswith(head) for head in heads) and all(t in tips[2] for t in hp_tip)


def test_an_open_module_with_nothing_inside_is_marked_as_a_leaf_unturned(tmp_path, page):
    """A module of no children nor details (a Dropout) opened, as those near the top are,
    had its leaf's dot turned as an open module's arrow is, drawn off its line."""
    blurb = json.loads(blurb_json())
    leaf = blurb["root"]["children"][0] | {"path": "drop", "type": "Dropout", "children": []}
    blurb["root"]["children"].append(leaf | {"variables": {}, "params": 0, "own_params": 0})
    written = write_bench(tmp_path / "leaf", json.dumps(blurb))
    marker = "document.querySelector('#blurb details.leaf > summary .col-0')"
    with serving(written.root) as server:
        page.open(server.url + "?model=m-mlp")
        assert page.run(f"{marker}.closest('details').open") is True
        assert page.run(f"getComputedStyle({marker}, '::before').transform") == "none"


def test_the_address_keeps_the_choices_made_so_that_a_reload_shows_them(tmp_path, page):
    """Reloading (for the rows a running bench wrote since) reset the mode and menus: the
    page read them from its address but never wrote them there. The rows unticked for
    the plots, and the hyperparameter plot's log axes, came back as they were before."""
    written = write_bench(tmp_path / "address", blurb_json())
    search = "location.search"
    with serving(written.root) as server:
        page.open(server.url + "#curves")
        page.run("document.querySelector('button[data-mode=configs]').click()")
        page.run(f"({CHOOSE})('curve-metric', 'accuracy')")
        page.run("document.getElementById('all-metrics').click()")
        page.run("document.querySelector('#board .board-row input').click()")  # unticked
        page.run("document.getElementById('hp-log-x').click()")  # not log by default here
        page.run("document.getElementById('hp-log-y').click()")
        page.settle()
        hidden = page.run("document.querySelector('#board .hidden-row').dataset.key")
        hide = urllib.parse.urlencode({"hide": hidden})
        logs = "hp-log-x=on&hp-log-y=on"
        assert page.run(search) == f"?mode=configs&metrics=all&metric=accuracy&{logs}&{hide}"
        assert page.run("location.hash") == "#curves"
        page.run("document.body.dataset.ready = 'reloading'")
        page.open(page.run("location.href.split('#')[0]"))  # no fragment: a new page
        assert page.run("location.hash") == ""
        assert page.run("document.getElementById('curve-metric').value") == "accuracy"
        assert page.run("document.getElementById('all-metrics').checked") is True
        on = "document.querySelector('button[data-mode=configs]').classList.contains('on')"
        assert page.run(on) is True
        unticked = "[...document.querySelectorAll('#board .hidden-row')].map((r) => r.dataset.key)"
        assert page.run(unticked) == [hidden]
        drawn = "[...document.querySelectorAll('#curve-plots .curve')].map((c) => c.dataset.key)"
        assert hidden not in page.run(drawn) and len(set(page.run(drawn))) == 3
        checked = "['hp-log-x', 'hp-log-y'].map((id) => document.getElementById(id).checked)"
        assert page.run(checked) == [True, True]
        page.run(f"({CHOOSE})('curve-metric', 'loss')")  # the default again: not written
        assert page.run(search) == f"?mode=configs&metrics=all&{logs}&{hide}"


def test_the_address_keeps_the_filters_search_and_sort_so_that_a_reload_shows_them(tmp_path, page):
    """A reload kept the menus but dropped the leaderboard's filter menus, text search and
    sort (and the log scale): all the rows again, in the default order. A column whose
    name starts with ``-``, sorted ascending, came back sorted descending by the column
    named without it (``sort=-key`` meant both)."""
    written = write_bench(tmp_path / "address", blurb_json())
    cells = written.cells.assign(**{"-lr": -written.cells.lr})  # a hyperparameter "-lr"
    cells.to_parquet(written.root / _layout.CELLS)
    board = "[...document.querySelectorAll('#board .board-row')].map((r) => r.dataset.key)"
    with serving(written.root) as server:
        page.open(server.url)
        page.run("""(() => { const s = document.querySelector('select[data-column="model"]');
          s.value = '"mlp"'; s.dispatchEvent(new Event('change')); })()""")
        page.run("""(() => { const s = document.querySelector('#filters input[type=search]');
          s.value = 'seed=1'; s.dispatchEvent(new Event('input')); })()""")
        page.run(f"({CHOOSE})('sort-by', 'lr')")  # ascending: text-like columns first up
        page.run("document.getElementById('sort-dir').click()")
        page.run("document.getElementById('log-y').click()")
        page.settle()
        query = "?log=y&sort=lr&order=desc&q=seed%3D1&f.model=%22mlp%22"
        assert page.run("location.search") == query
        rows = page.run(board)
        mlp = written.cells[(written.cells.model == "mlp") & (written.cells.seed == 1)]
        assert rows == mlp.sort_values("lr", ascending=False).cell_id.tolist()
        page.run("document.body.dataset.ready = 'reloading'")
        page.open(page.run("location.href"))
        assert page.run(board) == rows
        assert page.run("document.querySelector('#filters input[type=search]').value") == "seed=1"
        assert page.run("document.querySelector('select[data-column=\"model\"]').value") == '"mlp"'
        assert page.run("document.getElementById('sort-by').value") == "lr"
        assert page.run("document.getElementById('log-y').checked") is True
        assert page.run("location.search") == query
        page.run(f"({CHOOSE})('sort-by', '-lr')")  # ascending: -lr up, so lr down
        page.settle()
        assert page.run("location.search") == "?log=y&sort=-lr&q=seed%3D1&f.model=%22mlp%22"
        page.run("document.body.dataset.ready = 'reloading'")
        page.open(page.run("location.href"))
        assert page.run("document.getElementById('sort-by').value") == "-lr"
        assert page.run("document.getElementById('sort-dir').textContent") == "↑"
        assert page.run(board) == rows
        page.open(
            server.url + "?sort=nosuch&order=desc&f.model=%22nosuch%22&f.nosuch=1"
        )  # left out
        assert len(page.run(board)) == len(written.cells)
        assert page.run("location.search") == ""
        # Most rows unticked: the address lists those left ticked, short on a large bench.
        page.run("document.querySelector('#board thead input').click()")  # all unticked
        page.run("document.querySelector('#board .board-row input').click()")
        page.settle()
        ticked = "[...document.querySelectorAll('#board .board-row:not(.hidden-row)')]"
        (shown,) = page.run(f"{ticked}.map((r) => r.dataset.key)")
        assert page.run("location.search") == f"?show.cells={shown}"
        page.run("document.body.dataset.ready = 'reloading'")
        page.open(page.run("location.href"))
        assert page.run(f"{ticked}.map((r) => r.dataset.key)") == [shown]
        page.run("document.querySelector('#board .board-row:not(.hidden-row) input').click()")
        assert page.run("location.search") == "?show.cells="  # none ticked
        # The other mode's rows, unticked apart, are kept as short (they were each listed).
        page.run("document.querySelector('button[data-mode=configs]').click()")
        assert page.run("location.search") == "?mode=configs&show.cells="
        page.run("document.body.dataset.ready = 'reloading'")
        page.open(page.run("location.href"))
        page.run("document.querySelector('button[data-mode=cells]').click()")
        assert page.run(f"{ticked}.length") == 0 and len(page.run(board)) == len(written.cells)


def test_rows_a_running_bench_writes_show_without_a_reload_the_choices_kept(tmp_path, page):
    """The page showed the bench as it was when it loaded: a part file a run wrote since
    (the mlp group's steps past 150) showed only after a reload. It polls the bench's
    version and redraws the table and curves in place, the filter, sort and scroll kept
    (a tooltip of the curves drawn before, its values old, gone); the header says when it
    last updated, and it can be paused. An address written before ``order=desc``
    (``sort=-seed``) sorts as it did, and is written anew."""
    written = write_bench(tmp_path / "running", blurb_json())
    results = written.root / _layout.RESULTS
    table = pq.read_table(results / "part-g-mlp-000000000.parquet")
    later = pc.greater_equal(table.column("step"), 160)
    pq.write_table(table.filter(pc.invert(later)), results / "part-g-mlp-000000000.parquet")
    steps = """[...document.querySelectorAll('#board .board-row td.num')]
      .map((td) => td.textContent).filter((text) => text.includes(' / '))"""
    ticks = "[...document.querySelectorAll('#curve-plots .axes text')].map((t) => t.textContent)"
    rows = "[...document.querySelectorAll('#board .board-row')].map((r) => r.dataset.key)"
    page.hasten_looks()
    with serving(written.root) as server:
        page.open(server.url + "?sort=-seed&f.model=%22mlp%22&f.lr=0.01")  # as written before
        sort_by = "document.getElementById('sort-by').value"
        assert page.run(f"[{sort_by}, document.getElementById('sort-dir').textContent]") == [
            "seed",
            "↓",
        ]
        page.hover("#curve-plots .overlay")  # its tooltip shows the values at a step
        assert page.run("document.getElementById('tooltip').hidden") is False
        before = page.run(rows), page.run("window.scrollY")
        assert before[1] > 0
        assert page.run(steps) == ["150 / 300"] * 2
        assert "300" not in page.run(ticks)
        assert re.fullmatch(r"live · updated \d\d:\d\d:\d\d", page.run(LIVE))
        pq.write_table(table.filter(later), results / "part-g-mlp-000000160.parquet")
        done = f"JSON.stringify({steps}) === JSON.stringify({json.dumps(['300 / 300'] * 2)})"
        assert page.wait_for(done, NEXT_LOOK_S), page.run(steps)
        page.settle()
        assert (page.run(rows), page.run("window.scrollY")) == before
        assert "300" in page.run(ticks)  # the curves read again
        assert page.run("document.getElementById('tooltip').hidden") is True  # its values old
        assert page.run("location.search") == "?sort=seed&order=desc&f.model=%22mlp%22&f.lr=0.01"
        page.run("document.getElementById('live-toggle').click()")
        assert page.run(LIVE).startswith("paused · updated ")
        assert page.run("document.getElementById('live-toggle').textContent") == "resume"


LIVE_JS = "import(new URL('static/live.js', location.href))"
"""The page's module of live updates."""


LOOKS = (
    "window.looks || (() => { window.looks = []; const later = window.setTimeout;"
    " window.setTimeout = (f, ms, ...rest) => {"
    " if (f.name === 'poll') looks.push(ms); return later(f, ms, ...rest); };"
    " const fetchNow = window.fetch; window.fetch = (url, ...rest) => {"
    " if (String(url).startsWith('api/version')) looks.push('asked');"
    " return fetchNow(url, ...rest); }; })()"
)
"""Keeps in ``window.looks`` what the page's looks at the bench do, in order: ``'asked'``
where one asks api/version, the ms it waits before the next where one ends."""


def _look_now(page, meanwhile: str | None = None) -> int:
    """Makes the page look at the bench now, as a tab shown again does (and read it again,
    where it changed), and waits until that look has set when it looks next: in how many
    ms. A look already under way ignores the tab shown (it may have asked before a file
    changed): the tab is shown again once it is done. ``meanwhile``: JavaScript run half a
    second after the look began."""
    page.run(LOOKS)
    since = f"window.looks.slice({page.run('window.looks.length')})"
    show = f"(() => {{ document.dispatchEvent(new Event('visibilitychange')); return {since}; }})()"
    deadline = time.monotonic() + 30
    asked = page.wait_for(f"{show}.includes('asked')", deadline - time.monotonic())
    assert asked, "the page did not look at the bench"
    if meanwhile is not None:
        time.sleep(0.5)
        page.run(meanwhile)
    ended = page.wait_for(f"{since}.at(-1) !== 'asked'", deadline - time.monotonic())
    assert ended, "the page's look at the bench did not end"
    return page.run(since)[-1]


def _touch(path: pathlib.Path) -> None:
    """Moves ``path``'s modification time on a second, as writing it again would."""
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))


def test_a_look_under_way_as_a_file_changes_is_not_the_look_waited_for(tmp_path, page):
    """`_look_now` waited for the end of any look: one under way as a run wrote a part (the
    page looks every 3 s), which had read api/version before, ended saying nothing changed
    and the test went on before the page read the part (a flake on a busy machine). It
    waits for a look begun after the part was written."""
    written = write_bench(tmp_path / "running", blurb_json())
    part = written.root / _layout.RESULTS / "part-g-mlp-000000000.parquet"
    table = pq.read_table(part)
    later = pc.greater_equal(table.column("step"), 160)
    pq.write_table(table.filter(pc.invert(later)), part)
    steps = "[...document.querySelectorAll('#board .board-row td.num')].map((td) => td.textContent)"
    late = (  # api/version answered, the answer handed to the page half a second later
        "(() => { const fetchNow = window.fetch; window.fetch = (url, ...rest) =>"
        " fetchNow(url, ...rest).then((answer) => String(url).startsWith('api/version')"
        " ? (window.answered = true, new Promise((done) => setTimeout(() => done(answer), 500)))"
        " : answer); })()"
    )
    with serving(written.root) as server:
        page.open(server.url)
        assert "150 / 300" in page.run(steps)
        page.run(late)
        page.run("document.dispatchEvent(new Event('visibilitychange'))")  # a look begins
        assert page.wait_for("window.answered === true", 30), "the page did not ask api/version"
        pq.write_table(table.filter(later), part.with_name("part-g-mlp-000000160.parquet"))
        _look_now(page)
        page.settle()
        assert "150 / 300" not in page.run(steps)


def test_a_bench_slow_to_read_is_asked_for_less_often(tmp_path, page):
    """The page asked for the bench's version every 3 s and, a file changed, read it all
    again, however long that took (a 2,000-cell bench: ~1 s of the viewer's work each
    time, while it runs). It waits five times as long as its last reading took (3 to
    60 s) before it asks again, and says so in the indicator's title."""
    written = write_bench(tmp_path / "slow", blurb_json())
    delays = f"{LIVE_JS}.then((live) => [0, 0.1, 1.2, 30].map(live.pollDelay))"
    with serving(written.root) as server:
        page.open(server.url)
        assert page.run(delays) == [3, 3, 6, 60]
        page.delay_fetches(r"api/cells", seconds=2)  # reading the bench takes 2 s
        _touch(written.root / _layout.RESULTS / "part-g-mlp-000000000.parquet")
        assert _look_now(page) >= 10_000
        title = page.run("document.getElementById('live-state').title")
        every, took = re.fullmatch(
            r"asks the bench every (\S+) s \(reading it took (\S+) s\)", title
        ).groups()
        assert float(took) >= 2 and float(every) == pytest.approx(5 * float(took), rel=0.05)


def test_the_page_reads_again_the_parts_of_the_bench_that_changed(tmp_path, page):
    """Any file of the bench changed, the page read it all again: the curves of every line
    drawn and the profile too where a run had written its status alone. It asks again for
    those whose files changed (api/version's parts), the leaderboard always."""
    written = write_bench(tmp_path / "running", blurb_json())
    asked = """(() => { const asked = window.asked || []; window.asked = [];
      return [...new Set(asked.map((url) => url.split('?')[0]))].sort(); })()"""
    with serving(written.root) as server:
        page.open(server.url)
        page.run(
            "(() => { const fetchNow = window.fetch; window.asked = [];"
            " window.fetch = (url, ...rest) => { asked.push(String(url));"
            " return fetchNow(url, ...rest); }; })()"
        )
        _touch(written.root / _layout.STATUS)
        _look_now(page)
        page.settle()
        assert page.run(asked) == ["api/bench", "api/cells", "api/version"]
        _touch(written.root / _layout.PHASES)
        _look_now(page)
        page.settle()
        assert page.run(asked) == ["api/bench", "api/cells", "api/profile", "api/version"]
        _touch(written.root / _layout.RESULTS / "part-g-mlp-000000000.parquet")
        _look_now(page)
        page.settle()
        assert page.run(asked) == ["api/bench", "api/cells", "api/results", "api/version"]
        assert page.run(
            f"{LIVE_JS}.then((live) => [...live.changedParts(null, {{parts: {{a: 1}}}})])"
        ) == ["a"]


def test_the_live_indicator_is_written_only_when_its_text_changes(tmp_path, page):
    """The indicator (``aria-live``: a screen reader reads out what is written into it)
    was written after each look at the bench, every 3 s, its text unchanged when nothing
    had; it is written when its text changes alone (paused, here)."""
    written = write_bench(tmp_path / "still", blurb_json())
    observe = """(() => { window.writes = 0;
      new MutationObserver((changes) => { writes += changes.length; }).observe(
        document.getElementById('live-state'),
        { childList: true, characterData: true, subtree: true }); })()"""
    with serving(written.root) as server:
        page.open(server.url)
        text = page.run(LIVE)
        page.run(observe)
        _look_now(page)
        _look_now(page)
        assert (page.run("window.writes"), page.run(LIVE)) == (0, text)
        page.run("document.getElementById('live-toggle').click()")
        assert page.run("window.writes") > 0 and page.run(LIVE).startswith("paused · ")


OPENED = "[...document.querySelectorAll('#blurb details.module')].map((d) => d.open)"
"""Whether each module of the blurb shown is open."""


def test_the_modules_opened_in_a_blurb_stay_open_as_the_bench_changes(tmp_path, page):
    """A blurb written for another model (a bench starting writes them one by one) drew
    the blurb shown again, closing every module the user had opened; it is drawn again
    only where its own model's files changed (its graph written, here), and then with the
    modules open as they were."""
    written = write_bench(tmp_path / "starting", blurb_json())
    for model_id in MODELS.values():
        (written.root / _layout.BLURBS / f"{model_id}.json").unlink()
    graph = written.root / _layout.GRAPHS / "m-choice.json"
    kept = graph.read_text()
    graph.unlink()
    with serving(written.root) as server:
        page.open(server.url + "?model=m-choice")
        assert "No blurb was written" in page.run("document.getElementById('blurb').textContent")
        (written.root / _layout.BLURBS / "m-choice.json").write_text(blurb_json())
        _look_now(page)
        page.settle()
        assert False in page.run(OPENED)  # a module below the first two levels
        page.run("document.querySelector('#blurb details.module:not([open])').open = true")
        opened = page.run(OPENED)
        (written.root / _layout.BLURBS / "m-mlp.json").write_text(blurb_json())  # another's
        _look_now(page)
        page.settle()
        assert page.run(OPENED) == opened
        graph.write_text(kept)  # its own model's graph: drawn again, as it was
        _look_now(page)
        page.settle()
        assert page.run("document.querySelectorAll('#graph .node').length") > 0
        assert page.run(OPENED) == opened


FOCUSED = """(() => { const e = document.activeElement;
  return e.dataset.column ?? e.closest('tr')?.dataset.key ?? e.tagName; })()"""
"""The control that has the focus: a filter menu's column, a row's key, else its tag."""


def test_the_control_a_user_is_on_keeps_the_focus_as_the_page_draws_again(tmp_path, page):
    """A keyboard user on a filter menu or on a row's tick box lost the focus (to the
    page's body) whenever the page read a running bench again, every few seconds, and on
    ticking a row: the control was drawn anew. The same control, drawn anew, has it."""
    written = write_bench(tmp_path / "running", blurb_json())
    part = written.root / _layout.RESULTS / "part-g-mlp-000000000.parquet"
    with serving(written.root) as server:
        page.open(server.url)
        page.run("document.querySelector('#filters select[data-column=\"model\"]').focus()")
        _touch(part)
        _look_now(page)
        page.settle()
        assert page.run(FOCUSED) == "model"
        key = page.run("document.querySelector('#board .board-row').dataset.key")
        page.run(
            "(() => { const box = document.querySelector('#board .board-row input');"
            " box.focus(); box.click(); })()"
        )  # unticked
        page.settle()
        assert page.run(FOCUSED) == key
        _touch(part)
        _look_now(page)
        page.settle()
        assert page.run(FOCUSED) == key
        assert page.run("document.activeElement.checked") is False


def test_the_menus_are_kept_as_the_page_reads_the_bench_again(tmp_path, page):
    """Reading a running bench again, every few seconds, the page made its filter menus
    and the options of its other menus anew: a menu a user had opened (its list of values
    shown) closed before a value was picked. A menu whose values are the same is kept as
    it is; one with other values (a model added) is filled anew."""
    written = write_bench(tmp_path / "running", blurb_json())
    mark = "document.querySelectorAll('select, option').forEach((n) => { n.kept = true; })"
    made = "[...document.querySelectorAll('select, option')].filter((n) => !n.kept).length"
    models = "[...document.querySelectorAll('#model-select option')].map((o) => o.value)"
    cells = pd.read_parquet(written.root / _layout.CELLS)
    with serving(written.root) as server:
        page.open(server.url + "?f.lr=0.01")
        page.run(mark)
        _touch(written.root / _layout.RESULTS / "part-g-mlp-000000000.parquet")
        _look_now(page)
        page.settle()
        assert page.run(made) == 0
        assert page.run("document.querySelector('select[data-column=\"lr\"]').value") == "0.01"
        added = cells[cells.model == "mlp"].assign(
            model_id="m-mlp2", cell_id=lambda c: c.cell_id + "2"
        )
        pd.concat([cells, added]).to_parquet(written.root / _layout.CELLS)
        _look_now(page)
        page.settle()
        assert page.run(models) == ["m-mlp", "m-choice", "m-mlp2"]


def test_selected_text_stays_selected_as_the_page_reads_the_bench_again(tmp_path, page):
    """Text a user selected (to copy it) in the config, the environment or the summary was
    unselected whenever the page read a running bench again, every few seconds: each was
    written anew, the same. What reads the same is left as it is."""
    written = write_bench(tmp_path / "running", blurb_json())
    select = """((selector) => { const range = document.createRange();
      range.selectNodeContents(document.querySelector(selector));
      getSelection().removeAllRanges(); getSelection().addRange(range);
      return getSelection().toString(); })"""
    with serving(written.root) as server:
        page.open(server.url)
        for selector in ("#config", "#env td", "#summary .chip"):
            chosen = page.run(f"({select})({json.dumps(selector)})")
            assert chosen
            _touch(written.root / _layout.RESULTS / "part-g-mlp-000000000.parquet")
            _look_now(page)
            page.settle()
            assert page.run("getSelection().toString()") == chosen, selector


def test_a_menu_picked_while_the_page_reads_the_bench_stays_picked(tmp_path, page):
    """A menu picked while the page read the bench again (a large bench: a second, every
    few seconds) went back to the value it had before, its plot with it, once the reading
    was done; it stays as picked."""
    written = write_bench(tmp_path / "running", blurb_json())
    with serving(written.root) as server:
        page.open(server.url)
        page.delay_fetches(r"api/cells", seconds=1.5)  # reading the bench takes 1.5 s
        _touch(written.root / _layout.RESULTS / "part-g-mlp-000000000.parquet")
        _look_now(page, meanwhile=f"({CHOOSE})('curve-metric', 'accuracy')")
        page.settle()
        assert page.run("document.getElementById('curve-metric').value") == "accuracy"
        assert page.run("location.search") == "?metric=accuracy"
        labels = (
            "[...document.querySelectorAll('#curve-plots .axis-label')].map((t) => t.textContent)"
        )
        assert "accuracy" in page.run(labels)


def test_a_configuration_unticked_stays_so_when_a_model_brings_a_new_column(tmp_path, page):
    """With *mean over seeds*, a configuration unticked (hidden from the plots) came back
    once a model added to the running bench (add_models) brought a hyperparameter column
    the others lack: a configuration's key held every column, the new one too. It holds
    those the configuration has a value in."""
    written = write_bench(tmp_path / "growing", blurb_json())
    hidden = "[...document.querySelectorAll('#board .hidden-row')].map((r) => r.dataset.key)"
    cells = pd.read_parquet(written.root / _layout.CELLS)
    with serving(written.root) as server:
        page.open(server.url + "?mode=configs")
        key = page.run("document.querySelector('#board .board-row').dataset.key")
        page.run("document.querySelector('#board .board-row input').click()")
        page.settle()
        assert page.run(hidden) == [key]
        added = cells[cells.model == "mlp"].assign(
            model="new", model_id="m-new", group_id="g-new", cell_id=cells.cell_id + "-new"
        )
        grown = pd.concat([cells.assign(**{"knob/gain": None}), added.assign(**{"knob/gain": 2.0})])
        grown.to_parquet(written.root / _layout.CELLS)
        _look_now(page)
        page.settle()
        assert page.run("document.querySelectorAll('#board .board-row').length") == len(
            grown.drop(columns=["cell_id", "group_id", "seed"]).drop_duplicates()
        )
        assert page.run(hidden) == [key]


def test_a_page_opened_as_a_bench_starts_takes_the_defaults_of_its_results(tmp_path, page):
    """Opened on a bench with no cells yet, the page kept the defaults of an empty table
    once the cells and results came: sorted by model (and so wrote ``?sort=model`` into its
    address), not by test accuracy; a linear x for learning rates a factor 100 apart."""
    written = write_bench(tmp_path / "full", blurb_json(), learning_rates=(0.1, 0.001))
    root = tmp_path / "starting"
    root.mkdir()
    shutil.copy(written.root / _layout.MARKER, root / _layout.MARKER)
    page.hasten_looks()
    with serving(root) as server:
        page.open(server.url)
        assert page.run("document.querySelectorAll('#board .board-row').length") == 0
        # Each written whole (a look between two writes here saw the cells without their
        # results: a table sorted by model), the cells last: their rows show with results.
        shutil.copytree(written.root / _layout.RESULTS, root / ".results")
        os.replace(root / ".results", root / _layout.RESULTS)
        shutil.copy(written.root / _layout.CELLS, root / ".cells.parquet")
        os.replace(root / ".cells.parquet", root / _layout.CELLS)
        has_rows = "document.querySelectorAll('#board .board-row').length !== 0"
        assert page.wait_for(has_rows, NEXT_LOOK_S), "the page did not read the bench again"
        page.settle()
        assert page.run("document.getElementById('sort-by').value") == "test:accuracy"
        assert page.run("document.getElementById('hp-log-x').checked") is True
        assert page.run("location.search") == ""
        page.run("document.getElementById('sort-dir').click()")  # a choice: kept
        assert page.run("location.search") == "?sort=test%3Aaccuracy"


def test_a_menu_left_at_its_default_takes_the_new_default_when_test_rows_come(tmp_path, page):
    """Opened while a bench had train rows alone, the hyperparameter plot's result was
    train loss (the default then), and stayed so once test rows came (and wrote
    ``?y=train:loss`` into the address) rather than go to test accuracy; a menu the user
    chose stays."""
    written = write_bench(tmp_path / "train-first", blurb_json())
    parts = sorted((written.root / _layout.RESULTS).iterdir())
    tables = {part: pq.read_table(part) for part in parts}
    for part, table in tables.items():
        pq.write_table(table.filter(pc.equal(table.column("split"), "train")), part)
    page.hasten_looks()
    with serving(written.root) as server:
        page.open(server.url + "?metric=accuracy")
        assert page.run("document.getElementById('hp-metric').value") == "train:loss"
        for part, table in tables.items():
            pq.write_table(table, part)
        test_accuracy = "document.getElementById('hp-metric').value === 'test:accuracy'"
        assert page.wait_for(test_accuracy, NEXT_LOOK_S), "the result stayed train loss"
        page.settle()
        assert page.run("document.getElementById('curve-metric').value") == "accuracy"
        assert page.run("location.search") == "?metric=accuracy"


def test_a_page_whose_version_fails_loads_and_says_it_cannot_follow(tmp_path, page, monkeypatch):
    """``/api/version`` failing (a folder of the bench the viewer may not list) failed the
    whole page (``Could not load the bench``): the page loads, its header says why it
    does not update."""

    def unlisted(bench):
        raise PermissionError(13, "Permission denied", str(bench.root / _layout.PROFILE))

    monkeypatch.setattr(BenchFiles, "versions", unlisted)
    written = write_bench(tmp_path / "unlisted", blurb_json())
    with serving(written.root) as server:
        page.open(server.url)  # fails unless the page loaded
        assert page.run("document.querySelectorAll('#board .board-row').length") == len(
            written.cells
        )
        assert page.run(LIVE).startswith(
            "not updating (PermissionError: [Errno 13] Permission denied: "
        )


def test_a_page_whose_bench_is_removed_waits_for_it_to_start_again(tmp_path, page):
    """A bench deleted to start it over (``rm -r``, then ``bench.new``) was read as an
    empty morph run: the page hid every bench panel and kept them hidden once the new
    bench came. The page keeps what it showed, its header says it waits, and it shows
    the new bench once there."""
    written = write_bench(tmp_path / "redo", blurb_json())
    rows = "document.querySelectorAll('#board .board-row').length"
    look = "(() => { const b = document.getElementById('live-toggle'); b.click(); b.click(); })()"

    def look_until(expected: str) -> None:
        page.run(look)  # pause, resume: a look at once
        assert page.wait_for(f"{LIVE}.startsWith({json.dumps(expected)})", 10), page.run(LIVE)

    with serving(written.root) as server:
        page.open(server.url)
        shutil.rmtree(written.root)
        look_until("not updating (the bench shown so far is gone (deleted or moved); waiting ")
        assert page.run("document.getElementById('leaderboard').hidden") is False
        assert page.run(rows) == len(written.cells)  # as it was
        again = write_bench(written.root, blurb_json(), learning_rates=(0.5,))
        look_until("live · ")
        page.settle()
        assert page.run(rows) == len(again.cells) != len(written.cells)


def test_a_model_picked_while_the_one_before_loads_shows_its_own(tmp_path, page):
    """The choice model picked, whose blurb and graph come slowly, then the mlp before they
    came: the mlp's blurb and no graph (the late answers drew the choice model's graph)."""
    written = write_bench(tmp_path / "slow", blurb_json())
    with serving(written.root) as server:
        page.open(server.url + "?model=m-mlp")
        page.delay_fetches(r"m-choice", seconds=0.5)
        page.run(f"(({CHOOSE})('model-select', 'm-choice'), ({CHOOSE})('model-select', 'm-mlp'))")
        page.settle()
        page.answered()  # the slow answers came and were handled
        assert page.run("document.getElementById('graph').hidden") is True
        assert page.run("document.querySelectorAll('#graph .node').length") == 0
        assert page.run("document.querySelectorAll('#blurb details.module').length") > 0


def test_a_broken_file_fails_only_its_panel(tmp_path, page):
    """A blurb, a profile table and env.json cut short, config.yaml not UTF-8: the models
    and profile panels, and the run's environment and config, say which file is broken,
    the rest of the page works (a broken env.json or config.yaml failed it all)."""
    written = write_bench(tmp_path / "broken", blurb_json())
    (written.root / _layout.BLURBS / "m-mlp.json").write_text('{"cut short": ')
    (written.root / _layout.ENV).write_text('{"cut short": ')
    (written.root / _layout.CONFIG).write_bytes(b"models: [\xff]\n")
    (written.root / _layout.PHASES).write_bytes(b"PAR1 cut short")
    with serving(written.root) as server:
        dom = page.dom(server.url + "?model=m-mlp")

    assert 'data-ready="true"' in dom
    assert '<p id="error" class="error" hidden="">' in dom  # the page loaded
    models = between(dom, 'id="models"', 'id="profile"')
    assert 'class="card failed"' in models
    assert "Could not load this panel: cannot read blurbs/m-mlp.json: " in models
    profile = between(dom, 'id="profile"', 'id="morph"')
    assert "Could not load this panel: cannot read profile/phases.parquet: " in profile
    env = between(dom, 'id="env"', "</div>")
    assert '<p class="error">Could not read the environment: cannot read env.json: ' in env
    assert "; phosjax writes it whole, so something else changed it; restore it" in env
    assert (
        '<pre id="config" class="error">Could not read the config: cannot read config.yaml: ' in dom
    )
    assert dom.count('class="board-row"') == len(written.cells)
    curves = between(dom, 'id="curves"', 'id="hparams"')
    assert "failed" not in curves and curves.count('class="curve"') == len(written.cells) * 2


def test_an_answer_that_is_no_json_is_said_to_be_none(tmp_path, page, monkeypatch):
    """A proxy's HTML error page (the viewer behind it stopped) failed its panel with the
    browser's parse error ("Unexpected token '<' ..."), naming neither the request nor
    its status; the panel names both, and that the answer is not the viewer's."""
    route = _server._Handler._route

    def behind_a_proxy(handler, path, query):
        if path != "/api/profile":
            return route(handler, path, query)
        return handler._send(502, b"<html>Bad Gateway</html>", "text/html")

    monkeypatch.setattr(_server._Handler, "_route", behind_a_proxy)
    written = write_bench(tmp_path / "proxied", blurb_json())
    with serving(written.root) as server:
        dom = page.dom(server.url)
    profile = html.unescape(between(dom, 'id="profile"', 'id="morph"'))
    assert (
        "Could not load this panel: api/profile answered HTTP 502, not the viewer's JSON" in profile
    )


def test_a_profile_with_one_file_says_why_the_other_box_is_empty(tmp_path, page):
    """Phase timings without memory samples, and the reverse: the empty box says which
    file is missing (it was left blank) while the other is drawn. Where each process
    wrote its own memory file, without samples yet, the box names those files (it named
    ``profile/memory.parquet``, which no process writes then, as missing)."""
    boxes = {}
    for kept, removed in ((_layout.PHASES, _layout.MEMORY), (_layout.MEMORY, _layout.PHASES)):
        written = write_bench(tmp_path / pathlib.PurePath(kept).stem, blurb_json())
        (written.root / removed).unlink()
        if removed == _layout.MEMORY:  # two processes' files, no sample in either
            for i in range(2):
                name = _layout.process_name(_layout.MEMORY, (i, 2))
                written.memory.iloc[:0].to_parquet(written.root / name)
        with serving(written.root) as server:
            dom = page.dom(server.url)
        boxes[removed] = (
            between(dom, 'id="phases"', 'id="memory"'),
            between(dom, 'id="memory"', "</section>"),
        )
    phases, memory = boxes[_layout.MEMORY]
    assert phases.count('class="bar"') == len(written.phases)
    assert memory.startswith(
        'id="memory" class="plot-box"><p class="hint">No memory figures: '
        "profile/memory.p0of2.parquet, profile/memory.p1of2.parquet have no samples.</p></div>"
    )
    phases, memory = boxes[_layout.PHASES]
    assert (
        "No phase timings: neither profile/phases.parquet nor a process's "
        "profile/phases.p&lt;i&gt;of&lt;n&gt;.parquet was written.</p>"
    ) in phases
    assert memory.count('class="curve"') == 2


def test_a_phases_file_without_rows_is_said_to_have_none(tmp_path, page):
    """profile/phases.parquet written with no rows drew an empty chart, an axis from 0 to
    1e-9 seconds; the box says the file has no rows, as the memory box does."""
    written = write_bench(tmp_path / "empty", blurb_json())
    written.phases.iloc[:0].to_parquet(written.root / _layout.PHASES)
    with serving(written.root) as server:
        page.open(server.url)
        assert page.run("document.getElementById('phases').textContent") == (
            "No phase timings: profile/phases.parquet has no rows."
        )


def test_a_legend_label_wider_than_the_page_wraps_in_its_panel(tmp_path, page):
    """Options of 240 characters that tell two configurations apart made each of their
    legend labels one line wider than the page, which scrolled sideways; such a label
    wraps within the legend, a short one stays on one line."""
    written = write_bench(tmp_path / "long", blurb_json())
    note = "a rather long note " * 12
    ends = np.where(written.cells.lr == LEARNING_RATES[0], "one", "two")
    cells = written.cells.assign(options=[json.dumps({"note": note + end}) for end in ends])
    cells.to_parquet(written.root / _layout.CELLS)
    items = "[...document.querySelectorAll('#legend .legend-item')]"
    with serving(written.root) as server:
        page.open(server.url)
        page_width = page.run("document.documentElement.clientWidth")
        scrolled = page.run("document.documentElement.scrollWidth")
        right = page.run("document.getElementById('legend').getBoundingClientRect().right")
        boxes = page.run(f"{items}.map((e) => [e.getBoundingClientRect().right, e.offsetHeight])")
    assert scrolled == page_width
    assert all(edge <= right + 0.5 for edge, _ in boxes)
    heights = sorted({height for _, height in boxes})
    assert len(heights) == 2 and heights[1] > heights[0]  # long labels wrapped, the note not


def test_the_curves_legend_names_only_the_configurations_drawn(tmp_path, page):
    """aux/balance is the choice model's alone: mlp's configurations, which draw no line
    of it, are not in the legend (they were)."""
    written = write_bench(tmp_path / "aux", blurb_json())
    with serving(written.root) as server:
        dom = page.dom(server.url + "?metric=aux/balance")

    assert 'data-ready="true"' in dom
    legend = between(dom, 'id="legend"', 'id="hparams"')
    assert legend.count(">choice · ") == len(LEARNING_RATES) and ">mlp · " not in legend


def test_labels_leave_out_a_hyperparameter_a_model_has_not(tmp_path, page):
    """A knob only the choice model has (null for mlp's cells): mlp's labels do not name it."""
    written = write_bench(tmp_path / "knob", blurb_json())
    knob = "knob/**/T"
    cells = written.cells.assign(**{knob: written.cells.lr * 100})
    cells.loc[cells.model == "mlp", knob] = None
    cells.to_parquet(written.root / _layout.CELLS)
    with serving(written.root) as server:
        dom = page.dom(server.url + "?mode=configs")

    assert 'data-ready="true"' in dom
    legend = between(dom, 'id="legend"', 'id="aux"')  # the curves' and the hparams'
    assert "=–" not in legend
    for lr, value in zip(LEARNING_RATES, ("1", "0.3"), strict=True):
        assert f">mlp · lr={lr}</span>" in legend
        assert f">choice · lr={lr} · {knob}={value}</span>" in legend
        assert f">choice · {knob}={value}: mean over seeds</span>" in legend
    assert ">mlp: mean over seeds</span>" in legend


def test_the_groups_chip_counts_the_groups_not_started_yet(tmp_path, page):
    """A group not in status.json has not started: it is one of the bench's groups all
    the same ("1 / 1 group finished" read as if the bench were done). A bench.json
    ``created`` or ``config_hash`` that is no text is shown as given (each broke the
    page: ``.slice is not a function``)."""
    written = write_bench(tmp_path / "started", blurb_json())
    status = json.loads((written.root / _layout.STATUS).read_text())
    first = next(iter(status["groups"]))
    status["groups"] = {first: status["groups"][first]}
    (written.root / _layout.STATUS).write_text(json.dumps(status))
    marker = json.loads((written.root / _layout.MARKER).read_text())  # no text: shown as given
    no_text = {"created": 1767225600, "config_hash": 123456789012}
    (written.root / _layout.MARKER).write_text(json.dumps(marker | no_text))
    with serving(written.root) as server:
        dom = page.dom(server.url)

    assert 'data-ready="true"' in dom
    assert '<span class="chip">1 / 2 groups finished</span>' in dom
    assert '<span class="chip">created 1767225600</span>' in dom
    assert '<span class="chip">config 1234567890</span>' in dom


def test_a_bench_of_another_format_says_so_first(tmp_path, page):
    """A bench.json of ``"format": 99``, which the runner refuses, was shown as any
    bench; the header's first chip says it may be shown wrong, and what to do."""
    written = write_bench(tmp_path / "newer", blurb_json())
    marker = json.loads((written.root / _layout.MARKER).read_text())
    (written.root / _layout.MARKER).write_text(json.dumps(marker | {"format": 99}))
    chips = (
        "[...document.querySelectorAll('#summary .chip')]"
        ".map((c) => c.className + ': ' + c.textContent)"
    )
    with serving(written.root) as server:
        page.open(server.url)
        shown = page.run(chips)
    assert shown[0].startswith("chip format: bench.json holds a bench of format 99;"), shown
    assert shown[1].endswith(" cells"), shown


def test_a_steps_hyperparameter_and_the_steps_done_are_told_apart(tmp_path, page):
    """A grid over ``steps``: its column and the progress column (steps done of planned)
    have headers and sort-by entries of their own (both were "steps")."""
    written = write_bench(tmp_path / "steps", blurb_json())
    cells = written.cells.assign(steps=np.where(written.cells.lr == LEARNING_RATES[0], 100, 300))
    cells.to_parquet(written.root / _layout.CELLS)
    with serving(written.root) as server:
        dom = page.dom(server.url)

    assert 'data-ready="true"' in dom
    headers = re.findall(r"<th[^>]*>([^<]+)</th>", between(dom, "<thead>", "</thead>"))
    options = re.findall(
        r"<option[^>]*>([^<]+)</option>", between(dom, 'id="sort-by"', "</select>")
    )
    for labels in (headers, options):
        assert labels.count("steps") == 1 and len(set(labels)) == len(labels), labels


def test_a_count_of_one_is_singular(tmp_path, page):
    """One cell of one model, one seed per configuration, each phase done once: "1 cell",
    "1 seed", "1 compiled program" (they read "1 cells", "1 seeds", ...)."""
    written = write_bench(tmp_path / "one", blurb_json(), seeds=(0,), learning_rates=(0.01,))
    written.cells.iloc[:1].to_parquet(written.root / _layout.CELLS)
    written.phases.assign(count=1).to_parquet(written.root / _layout.PHASES)
    chips = "[...document.querySelectorAll('#summary .chip')].map((c) => c.textContent)"
    text = "document.getElementById('{}').textContent".format
    with serving(written.root) as server:
        page.open(server.url + "?mode=configs")
        assert page.run(chips)[:3] == ["1 cell", "1 model", "2 / 2 groups finished"]
        assert page.run(text("groups")).count("1 cell · 300 / 300 steps") == 2
        page.hover("#curve-plots rect.overlay")
        assert "mlp (1 seed)" in page.run(text("tooltip"))
        page.hover('#phases rect.bar[fill="#ef7b2d"]')  # compile's colour
        assert "1 compiled program: " in page.run(text("tooltip"))


def test_step_counts_from_a_million_up_are_written_whole(tmp_path, page):
    """A group of 2,000,000 steps read "1.50e+6 / 2.00e+6 steps" in the run panel, the
    curves' tooltip "step 1.00e+6" and their x axis "1.00e+6": counts read whole, their
    thousands separated."""
    written = write_bench(tmp_path / "long", blurb_json())
    status = json.loads((written.root / _layout.STATUS).read_text())
    for group in status["groups"].values():
        group.update(steps_done=1_500_000, steps=2_000_000, finished=False)
    (written.root / _layout.STATUS).write_text(json.dumps(status))
    line = {"key": "a", "label": "a", "color": "#000", "x": [0, 1e6, 2e6], "y": [2, 1, 0.5]}
    drawn = (
        "import('./static/plot.js').then((m) => { const box = document.createElement('div');"
        " box.id = 'long-steps'; document.body.append(box);"
        f" m.linePlot(box, {{ series: [{json.dumps(line)}] }}); }})"
    )
    text = "document.getElementById('{}').textContent".format
    with serving(written.root) as server:
        page.open(server.url)
        assert page.run(text("groups")).count("1,500,000 / 2,000,000 steps") == 2
        page.run(drawn)
        page.hover("#long-steps rect.overlay")
        assert page.run(text("tooltip")).startswith("step 1,000,000")
        labels = """[...document.querySelectorAll('#long-steps .axes text[text-anchor="middle"]')]
          .map((t) => [t.textContent,
            t.getBBox().x + t.getBBox().width - t.ownerSVGElement.width.baseVal.value])"""
        ticks = page.run(labels)  # the x axis's, each with how far it goes past the svg's edge
        assert {"1,000,000", "2,000,000"} <= {text for text, _ in ticks}
        assert all(past <= 0 for _, past in ticks), ticks


def test_a_long_group_id_in_the_phases_plot_fits_its_margin(tmp_path, page):
    """A group id longer than the bars' left margin ran off the plot's left edge, its start
    cut away; it keeps its start and end (model and hash), the whole id on hover."""
    written = write_bench(tmp_path / "long", blurb_json())
    long_id = "a_model_with_a_rather_long_registered_name-1a2b3c4d"
    phases = written.phases.replace({"group_id": {"g-choice": long_id}})
    phases.to_parquet(written.root / _layout.PHASES)
    labels = """[...document.querySelectorAll('#phases .bar-label')].map((t) => ({
      text: t.firstChild.nodeValue, left: t.getBBox().x,
      title: t.querySelector('title')?.textContent ?? null}))"""
    with serving(written.root) as server:
        page.open(server.url)
        shown = {label["title"] or label["text"]: label for label in page.run(labels)}
    start, _, end = shown[long_id]["text"].partition("…")  # as many as the font fits
    assert long_id.startswith(start) and long_id.endswith(end) and len(end) >= len("-1a2b3c4d")
    assert all(label["left"] >= 0 for label in shown.values()), shown
    assert shown["g-mlp"]["text"] == "g-mlp" and shown["g-mlp"]["title"] is None


def test_a_bench_runs_own_phases_are_drawn_as_a_bar_of_their_own(tmp_path, page):
    """A run's own rows (group ``(bench)``: plan, write, blurbs, train, results) are one
    more bar beside the groups', a segment per phase."""
    written = write_bench(tmp_path / "own", blurb_json())
    phases = list(_layout.BENCH_PHASES)
    own = pd.DataFrame({"group_id": _layout.BENCH, "phase": phases, "seconds": 1.0, "count": 1})
    pd.concat([own.assign(total_s=1.0), written.phases]).to_parquet(written.root / _layout.PHASES)
    labels = "[...document.querySelectorAll('#phases .bar-label')].map((t) => t.textContent)"
    bars = "document.querySelectorAll('#phases rect.bar').length"
    with serving(written.root) as server:
        page.open(server.url)
        shown, drawn = page.run(labels), page.run(bars)
    assert shown[0] == _layout.BENCH and len(shown) == 1 + written.phases.group_id.nunique()
    assert drawn == len(phases) + len(written.phases)


def test_a_bench_runs_own_bar_does_not_squeeze_the_groups_bars(tmp_path, page):
    """A run's own bar is its wall time, every group's time and more: drawn on the groups'
    scale, it left each group's bar a sliver; each is drawn on a scale of its own."""
    written = write_bench(tmp_path / "own", blurb_json())
    phases = list(_layout.BENCH_PHASES)
    own = pd.DataFrame({"group_id": _layout.BENCH, "phase": phases, "seconds": 1.0, "count": 1})
    pd.concat([own.assign(total_s=100.0), written.phases]).to_parquet(written.root / _layout.PHASES)
    widths = """[...document.querySelectorAll('#phases svg')].flatMap((svg) => {
      const row = {};
      for (const r of svg.querySelectorAll('rect.bar')) {
        const y = r.getAttribute('y');
        row[y] = (row[y] || 0) + Number(r.getAttribute('width'));
      }
      return Object.values(row); })"""
    with serving(written.root) as server:
        page.open(server.url)
        bench, *groups = page.run(widths)
    assert max(groups) == pytest.approx(bench, rel=0.05)


def test_a_bench_runs_own_phases_take_colours_no_group_phase_has(tmp_path, page):
    """The run's phases took colours of the palette by their order, so ``blurbs`` came out
    in ``init``'s grey; each phase has a colour of its own."""
    written = write_bench(tmp_path / "own", blurb_json())
    phases = list(_layout.BENCH_PHASES)
    own = pd.DataFrame({"group_id": _layout.BENCH, "phase": phases, "seconds": 1.0, "count": 1})
    pd.concat([own.assign(total_s=1.0), written.phases]).to_parquet(written.root / _layout.PHASES)
    legend = """Object.fromEntries([...document.querySelectorAll('#phases .legend-item')]
      .map((item) => [item.textContent, item.querySelector('i').style.background]))"""
    with serving(written.root) as server:
        page.open(server.url)
        colours = page.run(legend)
    assert set(colours) == {*phases, *written.phases.phase}
    assert len(set(colours.values())) == len(colours), colours


def test_a_bench_runs_own_phases_are_drawn_in_a_runs_order(tmp_path, page):
    """A run from Python (no ``start``), then one from a command: ``start`` came last in
    the (bench) bar and its legend, after ``results``."""
    written = write_bench(tmp_path / "own", blurb_json())
    phases = ["plan", "train", "results", "start", "plan", "train", "results"]
    own = pd.DataFrame({"group_id": _layout.BENCH, "phase": phases, "seconds": 1.0, "count": 1})
    pd.concat([own.assign(total_s=1.0), written.phases]).to_parquet(written.root / _layout.PHASES)
    legend = "[...document.querySelector('#phases .legend').children].map((i) => i.textContent)"
    with serving(written.root) as server:
        page.open(server.url)
        assert page.run(legend) == ["start", "plan", "train", "results"]
        assert page.run(RUN_ORDER) == page.run(COLOURS_OF % "start, plan, train, results")


RUN_ORDER = """[...document.querySelector('#phases svg').querySelectorAll('rect.bar')]
  .map((r) => { const swatch = document.createElement('i');
    swatch.style.background = r.getAttribute('fill'); return swatch.style.background; })"""
COLOURS_OF = """(() => { const colour = Object.fromEntries(
  [...document.querySelectorAll('#phases .legend')[0].children]
  .map((i) => [i.textContent, i.querySelector('i').style.background]));
  return '%s'.split(', ').map((n) => colour[n]); })()"""


SEARCH = """(text) => { const box = document.querySelector('#filters input[type=search]');
  box.value = text; box.dispatchEvent(new Event('input'));
  return [...document.querySelectorAll('.board-row')].map((r) => r.dataset.key); }"""
"""Types ``text`` into the filter's search box: the keys of the rows left."""


def test_the_text_search_matches_every_column_of_a_cell(tmp_path, page):
    """The dataset (the same for all: a chip), the width (fixed by each model: a filter,
    no table column) and the group match too (they matched no row); so do options the
    same for all, a chip of their JSON, and the cell id as a column (``cell_id=...`` was
    left out as no column)."""
    written = write_bench(tmp_path / "search", blurb_json())
    cells = written.cells.assign(options='{"pool": "max"}')
    cells.to_parquet(written.root / _layout.CELLS)
    with serving(written.root) as server:
        page.open(server.url)
        for text, want in [
            ("MNIST1D", cells),
            ('"pool": "max"', cells),
            ("width=100", cells[cells.model == "mlp"]),
            ("g-choice seed=1", cells[(cells.model == "choice") & (cells.seed == 1)]),
            ("lr=0.003 m-mlp", cells[(cells.model == "mlp") & (cells.lr == 0.003)]),
            (f"cell_id={cells.cell_id.iloc[0]}", cells.iloc[:1]),
        ]:
            assert sorted(page.run(f"({SEARCH})({json.dumps(text)})")) == sorted(want.cell_id)


def test_the_text_search_matches_a_value_as_written_and_as_shown(tmp_path, page):
    """A learning rate of 0.0001 is shown as 1e-4: the search finds it written either
    way (``lr=0.0001`` matched no row), and as the table showed it before (1.00e-4)."""
    written = write_bench(tmp_path / "small", blurb_json(), learning_rates=(0.01, 0.0001))
    cells = written.cells
    small = sorted(cells[cells.lr == 0.0001].cell_id)
    with serving(written.root) as server:
        page.open(server.url)
        for text in ("lr=0.0001", "lr=1.00e-4", "LR=1e-4", "lr=0.00010"):
            assert sorted(page.run(f"({SEARCH})({json.dumps(text)})")) == small, text


def test_a_setting_of_a_list_or_an_object_reads_as_json_in_the_filters(tmp_path, page):
    """A plan's column of objects added by hand (an optimizer's settings) read
    ``[object Object]`` for each value in its filter menu, two settings alike; the menu
    then kept them in the plan's order, as objects compared as that text."""
    written = write_bench(tmp_path / "objects", blurb_json())
    half = len(written.cells) // 2
    adam = [{"b1": 0.9}] * half + [{"b1": 0.5}] * half
    written.cells.assign(adam=adam, schedule=[[1, 2]] * half + [[1, 3]] * half).to_parquet(
        written.root / _layout.CELLS
    )
    options = "[...document.querySelector('#filters select[data-column=\"{}\"]').options]"
    with serving(written.root) as server:
        page.open(server.url)
        entries = {
            c: page.run(f"{options.format(c)}.map((o) => o.text)") for c in ("adam", "schedule")
        }
    assert entries["adam"] == ["all", '{"b1":0.5}', '{"b1":0.9}']
    assert entries["schedule"] == ["all", "[1,2]", "[1,3]"]


def test_a_setting_reads_alike_in_the_table_the_filters_and_the_legend(tmp_path, page):
    """A learning rate of 3e-4 read 3.00e-4 and a million steps 1.00e+6 in the table, the
    filter menus, the legends, the tooltips and the hyperparameter plot's axis: a setting
    reads as a person writes it in a config (no thousands commas: a width's list has
    commas, 32,64)."""
    written = write_bench(tmp_path / "settings", blurb_json(), learning_rates=(0.01, 0.0003))
    values = [3e-4, 2.5e-7, 0.003, 0, 1000000, 1024, 1234567, 1234567.5, True, None, "max"]
    board = "[...document.querySelectorAll('#board .board-row')]"
    with serving(written.root) as server:
        page.open(server.url)
        asked = f"{json.dumps(values)}.map((v) => m.formatSetting(v))"
        found = page.run(f"import('./static/plot.js').then((m) => {asked})")
        column = page.run(
            "[...document.querySelectorAll('#board th')].findIndex((th) => th.textContent === 'lr')"
        )
        table = page.run(f"{board}.map((r) => r.children[{column}].textContent)")
        menu = "document.querySelector('#filters select[data-column=\"lr\"]')"
        entries = page.run(f"[...{menu}.options].map((o) => o.text)")
        legend = page.run("document.getElementById('legend').textContent")
        axis = "document.querySelector('#hp-plot svg').querySelectorAll('.axes text')"
        below = f"[...{axis}].filter((t) => t.getAttribute('text-anchor') === 'middle')"
        ticks = page.run(f"{below}.map((t) => t.textContent)")
    numbers = ["3e-4", "2.5e-7", "0.003", "0", "1e6", "1024", "1234567", "1.23457e6"]
    assert found == [*numbers, "true", "–", "max"]
    assert sorted(set(table)) == ["0.01", "3e-4"]
    assert entries == ["all", "3e-4", "0.01"]
    assert "lr=3e-4" in legend and "3.00e-4" not in legend
    assert ticks == ["5e-4", "0.001", "0.002", "0.005", "0.01"]  # the lr axis: 5.00e-4 first


def test_a_column_value_search_matches_whole_values_and_a_word_any_part(tmp_path, page):
    """``seed=1`` finds seed 1, not seed 10 (it found both), ``lr=0.0`` no learning rate;
    a word without ``=`` still matches part of a value.
    ``seed>1``, ``lr<=3e-3``, ``seed!=1`` matched no row (no column ``seed>1``): a column
    compares as the table sorts it, numbers as numbers, text in natural order (a width
    ``25,50`` below ``100``); ``!=`` matches the rows ``=`` does not. A term that cannot
    compare (``>0.5`` hid every row; ``accuracy>``, ``accuracy>abc`` compared text with
    numbers) is left out, the box marked invalid, its tooltip saying which and why; so is
    a column the bench does not have (``seeds!=1`` found every row, ``acuracy>0.9`` none,
    saying nothing), the tooltip naming the nearest it has; and so is a number on a column
    of text without digits (``model<5`` found none, ``model>5`` all)."""
    written = write_bench(tmp_path / "whole", blurb_json(), seeds=(1, 10))
    cells = written.cells
    with serving(written.root) as server:
        page.open(server.url)
        for text, want in [
            ("seed=1", cells[cells.seed == 1]),
            ("seed=10", cells[cells.seed == 10]),
            ("seed=1.0 model=mlp", cells[(cells.seed == 1) & (cells.model == "mlp")]),
            ("lr=0.0", cells.iloc[:0]),
            ("lr=", cells),
            ("seed=1  choi", cells[(cells.seed == 1) & (cells.model == "choice")]),
            ("seed>1", cells[cells.seed == 10]),
            ("seed>=1.0", cells),
            ("seed<10 seed!=10", cells[cells.seed == 1]),
            ("seed!=1", cells[cells.seed == 10]),
            ("lr<=3e-3", cells[cells.lr == 0.003]),
            ("lr<0.003", cells.iloc[:0]),
            ("lr>0.0030", cells[cells.lr == 0.01]),
            ("width<100", cells[cells.model == "choice"]),
            ("model>d", cells[cells.model == "mlp"]),
        ]:
            got = page.run(f"({SEARCH})({json.dumps(text)})")
            assert sorted(got) == sorted(want.cell_id), text
        box = "document.querySelector('#filters input[type=search]')"
        for text, want, left_out in [
            ("seed=1 accuracy>", cells[cells.seed == 1], "accuracy>"),
            (">0.5", cells, ">0.5"),
            ("ACCURACY>abc", cells, "ACCURACY>abc"),
            ("seed<=x", cells, "seed<=x"),
            ("model<5", cells, "model<5"),  # a number on a column of text
            ("width<100", cells[cells.model == "choice"], None),  # 25,50 before 100
            ("model>abc seed>1", cells[cells.seed == 10], None),  # text on a column of text
            ("seeds!=1 seed=1", cells[cells.seed == 1], "seeds!=1"),
            ("acuracy>0.9 ed=1", cells, "ed=1"),  # ed: a part of "seed=1", but no column
        ]:
            got = page.run(f"({SEARCH})({json.dumps(text)})")
            assert sorted(got) == sorted(want.cell_id), text
            title = page.run(f"{box}.title")
            assert page.run(f"{box}.matches('.invalid[aria-invalid=true]')") is bool(left_out)
            assert (f"left out: {left_out} (" in title) if left_out else "left out" not in title
            assert "column<value" in title
        assert "(no column acuracy; nearest: accuracy)" in title
        assert "(no column ed; nearest: seed)" in title  # not lr, as far in letters


def test_the_search_takes_the_results_as_the_table_shows_them(tmp_path, page):
    """``accuracy>0.5``, ``train:loss<=0.4``, ``accuracy=0.9123`` matched no row (the
    search took only the cells' columns): a metric alone is its first split's, test; a
    diverged (NaN) value matches ``=nan`` and no comparison; with *mean over seeds*, the
    mean is compared; a value shown as ``0.9199`` is ``<=`` and ``>=`` it too (one of them
    left it out, though ``=`` found it); an infinite loss is no number but inf (it was
    ``=``, ``<=`` and ``>=`` any number), and ``loss<inf`` finds the finite ones (it was
    left out, inf read as no number); a metric no cell has a value of (test
    step_time_s) finds none, not left out as a column the bench does not have."""
    written = write_bench(
        tmp_path / "results", blurb_json(), diverge=True, train_only=("step_time_s",)
    )
    part = written.root / _layout.RESULTS / "part-g-choice-000000000.parquet"
    table = pq.read_table(part)  # the diverged cell's loss infinite, its accuracy NaN
    infinite = pc.if_else(pc.is_nan(table["loss"]), math.inf, table["loss"])
    pq.write_table(table.set_column(table.schema.get_field_index("loss"), "loss", infinite), part)
    cells = written.cells.set_index("cell_id")
    accuracy = pd.Series(_final(written, "test", "accuracy"))
    loss = pd.Series(_final(written, "train", "loss"))
    at, bound = accuracy.dropna().median(), loss.dropna().median()
    means = accuracy.groupby([cells.model, cells.lr]).agg(lambda v: v.mean(skipna=False))
    diverged = accuracy[accuracy.isna()].index.tolist()
    one = accuracy.dropna().index[:1]
    shown = f"{accuracy[one[0]]:#.4g}"  # as the table shows it, not quite it
    with serving(written.root) as server:
        page.open(server.url)
        for text, want in [
            (f"accuracy>{at}", accuracy[accuracy > at].index),
            (
                f"ACCURACY<={at} train:loss>={bound}",
                accuracy[(accuracy <= at) & (loss >= bound)].index,
            ),
            (f"accuracy={accuracy.iloc[0]:#.4g}", accuracy.index[:1]),
            (f"accuracy>={shown} accuracy<={shown}", one),
            ("accuracy=nan", diverged),
            ("accuracy!=nan", accuracy.dropna().index),
            ("loss=inf", diverged),
            ("loss<=1e9", accuracy.dropna().index),
            ("loss<inf loss>-INF", accuracy.dropna().index),
            ("test:accuracy=", accuracy.index),
            ("test:step_time_s>=0", []),
        ]:
            got = page.run(f"({SEARCH})({json.dumps(text)})")
            assert sorted(got) == sorted(want), text
        page.run("document.querySelector('button[data-mode=configs]').click()")
        assert len(page.run(f"({SEARCH})('accuracy>{at}')")) == (means > at).sum()
        assert len(page.run(f"({SEARCH})('accuracy=nan')")) == means.isna().sum() == 1


def test_a_group_whose_run_is_gone_shows_stopped_not_running(tmp_path, page):
    """Two processes shared the bench: process 0 (the choice model's group) was killed,
    its lock file naming a pid that no longer exists; process 1 (the mlp's) still trains.
    The killed one's rows and group read "stopped", muted, saying how to continue; the
    other's still "running"."""
    written = write_bench(tmp_path / "killed", blurb_json())
    groups = json.loads((written.root / _layout.STATUS).read_text())["groups"]
    (written.root / _layout.STATUS).unlink()
    for i, group_id in enumerate(("g-choice", "g-mlp")):
        entry = groups[group_id] | {"steps_done": 150, "finished": False}
        status = {"groups": {f"{group_id}.p{i}of2": entry}}
        (written.root / f"status.p{i}of2.json").write_text(json.dumps(status))
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: no process has its pid now
    for i, pid in enumerate((gone.pid, os.getpid())):
        holder = _layout.LockHolder(pid, socket.gethostname(), "2026-01-01T00:00:00+00:00")
        (written.root / f"run.p{i}of2.lock").write_text(_layout.lock_holder(holder))
    states = """[...document.querySelectorAll('.board-row')].map((r) => {
      const td = r.querySelector('td.stopped, td.running');
      return [r.dataset.key, td ? td.className.split(' ').pop() : 'finished', td?.title ?? ''];
    })"""
    groups_text = "document.getElementById('groups').innerText"
    chips = "[...document.querySelectorAll('#summary .chip')].map((c) => c.textContent)"
    model = dict(zip(written.cells.cell_id, written.cells.model, strict=True))
    with serving(written.root) as server:
        page.open(server.url)
        rows = page.run(states)
        run_panel = page.run(groups_text)
        summary = page.run(chips)
        page.open(server.url + "?mode=configs")
        configs = page.run(states)
    assert sorted((model[key], state) for key, state, _ in rows) == sorted(
        (m, "stopped" if m == "choice" else "running") for m in written.cells.model
    )
    stopped_titles = [title for _, state, title in rows if state == "stopped"]
    assert all("python -m phosjax.bench.new --dir" in title for title in stopped_titles)
    assert sorted(state for _, state, _ in configs) == ["running"] * 2 + ["stopped"] * 2
    lines = {line.split("\t")[0]: line for line in run_panel.splitlines()}
    assert "· stopped ·" in lines["g-choice.p0of2"] and "running" not in lines["g-choice.p0of2"]
    assert "· running ·" in lines["g-mlp.p1of2"]
    assert summary[2:4] == ["0 / 2 groups finished", "1 group stopped"]


def _unstarted_bench(root: pathlib.Path, lock_pid: int) -> pathlib.Path:
    """A bench whose g-choice group trained halfway and whose g-mlp group has not started,
    its run's lock naming ``lock_pid``."""
    written = write_bench(root, blurb_json())
    status = json.loads((written.root / _layout.STATUS).read_text())
    status["groups"]["g-choice"] |= {"steps_done": 150, "finished": False}
    del status["groups"]["g-mlp"]
    (written.root / _layout.STATUS).write_text(json.dumps(status))
    holder = _layout.LockHolder(lock_pid, socket.gethostname(), "2026-01-01T00:00:00+00:00")
    (written.root / _layout.LOCK).write_text(_layout.lock_holder(holder))
    return written.root


def test_the_stopped_chip_counts_the_groups_not_started_when_every_run_is_gone(tmp_path, page):
    """Every run is gone: a group none started is stopped (nothing will run it), its rows
    greyed and counted by the chip as the rows say."""
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: no process has its pid now
    states = """[...document.querySelectorAll('.board-row')].map((r) =>
      r.querySelector('td.stopped, td.running')?.className.split(' ').pop())"""
    chips = "[...document.querySelectorAll('#summary .chip')].map((c) => c.textContent)"
    with serving(_unstarted_bench(tmp_path / "gone", gone.pid)) as server:
        page.open(server.url)
        rows = page.run(states)
        summary = page.run(chips)
    assert set(rows) == {"stopped"}
    assert summary[2:4] == ["0 / 2 groups finished", "2 groups stopped"]


def test_the_cells_the_status_counts_as_diverged_are_shown_in_a_chip_and_the_run_panel(
    tmp_path, page
):
    """A group's ``diverged`` in status.json (how many of its cells diverged) is shown on
    its line of the Run panel and summed in a chip; a group whose entry lacks it (written
    before it was recorded) says nothing of divergence."""
    written = write_bench(tmp_path / "diverged", blurb_json())
    status = json.loads((written.root / _layout.STATUS).read_text())
    status["groups"]["g-choice"]["diverged"] = 2
    (written.root / _layout.STATUS).write_text(json.dumps(status))
    chips = "[...document.querySelectorAll('#summary .chip')].map((c) => c.textContent)"
    with serving(written.root) as server:
        page.open(server.url)
        run_panel = page.run("document.getElementById('groups').innerText")
        summary = page.run(chips)
    lines = {line.split("\t")[0]: line for line in run_panel.splitlines()}
    assert lines["g-choice"].endswith(" · 2 diverged") and "diverged" not in lines["g-mlp"]
    assert summary[3] == "2 cells diverged"


@pytest.mark.parametrize("gone", [False, True], ids=["running", "every run gone"])
def test_the_run_panel_lists_the_groups_not_started(tmp_path, page, gone):
    """A group none started yet is listed with its cells and nothing done: "not started"
    while a run trains the bench, "stopped" (as its rows) once every run is gone."""
    pid = os.getpid()
    if gone:
        process = subprocess.Popen(["true"])
        process.wait()  # reaped: no process has its pid now
        pid = process.pid
    shown = "stopped" if gone else "running"
    groups = "document.getElementById('groups').innerText"
    done = """(() => { const i = [...document.querySelectorAll('#board th')]
      .findIndex((th) => th.textContent.startsWith('steps done'));
      return [...document.querySelectorAll('.board-row')].map((r) =>
        `${r.children[i].textContent}: ${r.children[i].className}`); })()"""
    root = _unstarted_bench(tmp_path / "bench", pid)
    for part in (root / _layout.RESULTS).glob("part-g-mlp-*"):
        part.unlink()  # not started: no rows yet
    with serving(root) as server:
        page.open(server.url)
        lines = {line.split("\t")[0]: line for line in page.run(groups).splitlines()}
        steps_done = page.run(done)
    assert f"4 cells · 150 / 300 steps · {shown} ·" in lines["g-choice"]
    not_started = "stopped" if gone else "not started"
    assert lines["g-mlp"].endswith(f"4 cells · 0 / – steps · {not_started}")  # no strategy yet
    # steps done / planned; amber (running) once started, grey (stopped) once every run is gone
    assert sorted(set(steps_done)) == ["0 / –: num" + f" {shown}" * gone, f"300 / 300: num {shown}"]


def test_a_refresh_failing_in_the_page_says_why_and_not_that_the_viewer_is_silent(tmp_path, page):
    """A refresh that failed in the page's own code (an answer it cannot use: a viewer of
    another version restarted under an open page) said 'not updating (the viewer is not
    answering)', the viewer answering; the header gives the error, and 'not answering'
    only where no answer came (the viewer stopped)."""
    written = write_bench(tmp_path / "answering", blurb_json())
    with serving(written.root) as server:
        page.open(server.url)
        page.run(
            "(() => { const fetchNow = window.fetch; window.fetch = (url, ...rest) =>"
            " String(url).startsWith('api/cells') ? Promise.resolve(new Response('{}'))"
            " : fetchNow(url, ...rest); })()"
        )
        _touch(written.root / _layout.STATUS)
        _look_now(page)
        assert page.run(LIVE).startswith("not updating (Cannot read properties of undefined")
    _look_now(page)
    assert page.run(LIVE).startswith("not updating (the viewer is not answering) · updated ")


def test_a_page_that_could_not_load_the_bench_shows_no_live_controls(tmp_path, page, monkeypatch):
    """A page that could not load the bench (a broken plan, here) showed a *pause* button
    in its header that did nothing (the page follows no bench it could not load), next to
    an empty indicator; they show once the page follows the bench."""

    def broken(bench):
        raise RuntimeError("a broken plan")

    written = write_bench(tmp_path / "broken", blurb_json())
    shown = "document.getElementById('live-toggle').checkVisibility()"
    with serving(written.root) as server:
        page.open(server.url)
        assert page.run(shown) is True
        monkeypatch.setattr(BenchFiles, "cells", broken)
        page.navigate(server.url)  # a reload by script could end the evaluation asking for it
        failed = "document.getElementById('error')?.hidden === false"
        assert page.wait_for(failed, 30), "the page did not fail"
        assert "a broken plan" in page.run("document.getElementById('error').textContent")
        assert page.run(shown) is False


ROWS = """[...document.querySelectorAll('#board tr.board-row')].map((tr) => [...tr.children].map(
  (td) => [td.firstChild?.textContent ?? '', td.querySelector('.at-step')?.textContent ?? null,
           td.querySelector('.at-step')?.title ?? null]))"""
HEADS = "[...document.querySelectorAll('#board thead th')].map((th) => th.textContent)"


def test_hovering_past_where_a_line_ends_shows_the_step_of_its_value(tmp_path, page):
    """Hovered at step 300, the curves' tooltip gave a seed that stopped (crashed) at 150
    its value there as the one at step 300, under a head saying 300; it says its step."""
    written = write_bench(tmp_path / "crashed", blurb_json())
    crashed = written.cells.iloc[0]
    stop_at(written, crashed.cell_id, 150)
    query = f"?q=model%3D{crashed.model}+lr%3D{crashed.lr}&metric=loss"
    edge = (
        "(() => { const e = document.querySelector('#curve-plots .overlay');"
        " const r = e.getBoundingClientRect(); return [r.right - 1, r.y + r.height / 2]; })()"
    )
    with serving(written.root) as server:
        page.open(server.url + query)
        page.move_to(*page.run(edge))
        lines = page.run("[...document.querySelectorAll('#tooltip div')].map((d) => d.textContent)")
    assert lines[0].endswith(" 300")  # the step hovered
    assert sorted(line.endswith(" @ 150") for line in lines[1:]) == [False, True], lines


def test_a_mean_over_seeds_stopped_at_different_steps_is_at_the_last_step_all_reached(
    tmp_path, page
):
    """The mean over seeds averaged each seed's last value, one seed stopped (crashed) at
    step 150 and the other at 300, and said nothing of it. It averages their values at
    step 150, the last both reached, and says so by each value ('@ 150')."""
    written = write_bench(tmp_path / "crashed", blurb_json())
    crashed = written.cells.iloc[0]
    stop_at(written, crashed.cell_id, 150)
    alike = (written.cells.model == crashed.model) & (written.cells.lr == crashed.lr)
    at_150 = written.results[written.results.cell_id.isin(written.cells.cell_id[alike])]
    at_150 = at_150[at_150.step == 150]
    seeds = written.cells.cell_id[alike].tolist()
    with serving(written.root) as server:
        page.open(server.url + "?mode=configs&x=lr&y=test:loss")
        heads, rows = page.run(HEADS), page.run(ROWS)
        tips = []
        for cell in seeds:  # the hyperparameter plot's points: at step 150 too
            page.hover(f'#hp-plot circle.point[data-cell="{cell}"]')
            tips.append(page.run("document.getElementById('tooltip').textContent"))
        page.open(server.url + "?mode=configs&q=seed%3D1&x=lr&y=test:loss")  # trained to 300
        alone = page.run(ROWS)
        page.hover(f'#hp-plot circle.point[data-cell="{seeds[1]}"]')  # the plot's point too
        alone_tip = page.run("document.getElementById('tooltip').textContent")
    assert len(alone) == len(rows)  # shown alone: its own last values
    assert [at for row in alone for _, at, _ in row if at is not None] == []
    tests = written.results[
        (written.results.cell_id == seeds[1]) & (written.results.split == "test")
    ]
    last = tests.sort_values("step").loss.iloc[-1]
    assert alone_tip.endswith(f"test loss {last:.4g}"), alone_tip
    for cell, tip in zip(seeds, tips, strict=True):
        loss = at_150.loc[(at_150.cell_id == cell) & (at_150.split == "test"), "loss"].item()
        assert tip.endswith(f"test loss at step 150, the last all its seeds reached {loss:.4g}")
    marked = [row for row in rows if any(at is not None for _, at, _ in row)]
    assert len(marked) == 1 and len(rows) == len(written.cells) // len(SEEDS)
    said = "at step 150, the last all its seeds reached (they stopped at 150 to 300)"
    means = {}
    for head, (text, at, title) in zip(heads, marked[0], strict=True):
        split, _, metric = head.partition(" ")
        if split in SPLITS and metric in at_150:
            means[head] = float(text)
            assert (at, title) == (" @ 150", said)
            want = at_150.loc[at_150.split == split, metric].mean()
            assert means[head] == pytest.approx(want, rel=1e-3), head
    assert "test loss" in means
    steps = marked[0][heads.index("steps done")][0]
    assert steps == "150–300 / 300"  # not the mean, 225, of steps none stopped at


def test_the_seeds_shown_are_compared_at_the_last_step_they_all_reached(tmp_path, page):
    """Of three seeds stopped at steps 150, 200 and 300, the one at 150 hidden: the
    hyperparameter plot took the other two at step 150, the last all three reached,
    though both reached 200. It takes them at step 200."""
    written = write_bench(tmp_path / "uneven", blurb_json(), seeds=(0, 1, 2))
    first = written.cells.iloc[0]
    alike = (written.cells.model == first.model) & (written.cells.lr == first.lr)
    seeds = written.cells.cell_id[alike].tolist()
    stop_at(written, seeds[0], 150)
    stop_at(written, seeds[1], 200)
    with serving(written.root) as server:
        page.open(server.url + f"?x=lr&y=test:loss&hide={seeds[0]}")
        page.hover(f'#hp-plot circle.point[data-cell="{seeds[1]}"]')  # drawn over seeds[2]'s
        tip = page.run("document.getElementById('tooltip').textContent")
    results = written.results
    at_200 = results[(results.cell_id == seeds[1]) & (results.step == 200)]
    loss = at_200.loc[at_200.split == "test", "loss"].item()
    assert tip.endswith(f"test loss at step 200, the last all its seeds reached {loss:.4g}"), tip


def test_the_page_shows_and_takes_only_the_options_that_vary_within_a_model(tmp_path, page):
    """choice with and without per_example: its options cells showed the JSON cut at 36
    characters, '{"dropout": 0.0, "input_kind": nul…' in both rows, its labels the JSON;
    the search read 'per_example=true' as a column and 'options=per_example=true' against
    the JSON (no row either way), the menu and a point's tooltip showed the JSON."""
    written = write_bench(tmp_path / "options", blurb_json())
    cells = written.cells
    first = cells.lr == LEARNING_RATES[0]
    plain = {"dropout": 0.0, "input_kind": None}
    options = [
        plain | ({"per_example": True} if is_first else {})
        if model == "choice"
        else plain | {"pool": "max" if is_first else "mean"}
        for model, is_first in zip(cells.model, first, strict=True)
    ]
    cells.assign(options=[json.dumps(o) for o in options]).to_parquet(written.root / _layout.CELLS)
    per_example = sorted(cells[first & (cells.model == "choice")].cell_id)
    pooled_max = sorted(cells[first & (cells.model == "mlp")].cell_id)
    headers = "[...document.querySelectorAll('#board th')]"
    column = f"{headers}.findIndex((th) => th.textContent === 'options')"
    shown = (
        f"[...document.querySelectorAll('.board-row')].map((r) => r.children[{column}].textContent)"
    )
    menu = "document.querySelector('#filters select[data-column=\"options\"]')"
    with serving(written.root) as server:
        page.open(server.url)
        texts = page.run(shown)
        legend = page.run("document.getElementById('legend').textContent")
        for text, want in [
            ("per_example=true", per_example),
            ("OPTIONS=per_example=true", per_example),
            ("pool=max", pooled_max),
            ('pool="max"', pooled_max),
            ("options=", sorted([*per_example, *cells[cells.model == "mlp"].cell_id])),
        ]:
            assert sorted(page.run(f"({SEARCH})({json.dumps(text)})")) == want, text
        page.run(f"({SEARCH})('')")
        entries = page.run(f"[...{menu}.options].map((o) => o.text)")
        page.run(
            f"(() => {{ const s = {menu}; s.value = JSON.stringify('per_example=true');"
            " s.dispatchEvent(new Event('change')); })()"
        )
        rows = page.run("[...document.querySelectorAll('.board-row')].map((r) => r.dataset.key)")
        page.hover(f'#hp-plot circle[data-cell="{per_example[0]}"]')
        tip = page.run("document.getElementById('tooltip').textContent")
    assert sorted(set(texts)) == ["per_example=true", 'pool="max"', 'pool="mean"', "–"]
    assert "options=per_example=true" in legend and "{" not in legend
    assert entries == ["all", "per_example=true", 'pool="max"', 'pool="mean"', "–"]
    assert sorted(rows) == per_example
    assert "options = per_example=true" in tip and "{" not in tip, tip


def test_an_address_of_an_options_filter_as_json_picks_its_cells_still(tmp_path, page):
    """An address written while the options menu held their JSON (f.options=<it>) lost its
    filter, all rows shown, once the menu held the options shown; now the value shown where
    it picks the same cells (choice's per_example=true), else none (choice's plain options,
    shown '–' as mlp's, another JSON, are)."""
    written = write_bench(tmp_path / "options", blurb_json())
    cells = written.cells
    per_example = (cells.model == "choice") & (cells.lr == LEARNING_RATES[0])
    plain = '{"dropout": 0.0}'
    options = np.where(per_example, '{"dropout": 0.0, "per_example": true}', plain)
    options = np.where(cells.model == "mlp", '{"pool": "mean"}', options)
    cells.assign(options=options).to_parquet(written.root / _layout.CELLS)
    rows = "[...document.querySelectorAll('.board-row')].map((r) => r.dataset.key)"
    address = "?f.options=" + urllib.parse.quote(json.dumps(options[per_example.argmax()]))
    with serving(written.root) as server:
        page.open(server.url + address)
        picked = page.run(rows)
        page.open(server.url + "?f.options=" + urllib.parse.quote(json.dumps(plain)))
        unpicked = page.run(rows)
    assert sorted(picked) == sorted(cells[per_example].cell_id)
    assert sorted(unpicked) == sorted(cells.cell_id)


def test_the_search_takes_each_option_whole_shown_or_not(tmp_path, page):
    """note="a, b=c": the search cut the options shown at its ', b=' and took a column b
    of them ('b=c"' matched those rows); mlp's pool, max in all its cells, not shown:
    pool=max found only choice's cells of pool max, though width=100, which mlp fixes
    too, finds mlp's; a NaN in mlp's options (as Python writes it) hid all those it fixes;
    kernel=[3,3] found mlp's [3, 3], fixed (written by JSON.stringify), not choice's, shown;
    note="a, b=c", in quotes, was cut at its space (and so matched no row)."""
    written = write_bench(tmp_path / "options", blurb_json())
    cells = written.cells
    first = cells.lr == LEARNING_RATES[0]
    notes = np.where(first, "a, b=c", "d")
    pools = np.where((cells.model == "mlp") | first, "max", "mean")
    nans = [{"eps": math.nan} if model == "mlp" else {} for model in cells.model]
    kernels = np.where((cells.model == "mlp") | first, 3, 5)
    options = [
        json.dumps({"note": n, "pool": p, "kernel": [k, k], **nan})
        for n, p, k, nan in zip(notes, pools, kernels.tolist(), nans, strict=True)
    ]
    cells.assign(options=options).to_parquet(written.root / _layout.CELLS)
    with serving(written.root) as server:
        page.open(server.url)
        for text, want in [
            ('b=c"', cells.cell_id),  # no column b: left out (not those of note "a, b=c")
            ("b=", cells.cell_id),
            ("note=d", cells[~first].cell_id),
            ("pool=max", cells[pools == "max"].cell_id),
            ('pool="max"', cells[pools == "max"].cell_id),
            ("eps=nan", cells[cells.model == "mlp"].cell_id),
            ("kernel=[3,3]", cells[kernels == 3].cell_id),
            ('note="a, b=c"', cells[first].cell_id),
            ('kernel="[3, 3]"', cells[kernels == 3].cell_id),
            ('"A, B"', cells[first].cell_id),  # a phrase, as a free word
        ]:
            assert sorted(page.run(f"({SEARCH})({json.dumps(text)})")) == sorted(want), text
        text = 'note="a, b=c" seed>0'  # the address keeps it whole
        rows = page.run(f"({SEARCH})({json.dumps(text)})")
        assert sorted(rows) == sorted(cells[first & (cells.seed > 0)].cell_id)
        page.settle()
        assert page.run("location.search") == "?" + urllib.parse.urlencode({"q": text})
        page.run("document.body.dataset.ready = 'reloading'")
        page.open(page.run("location.href"))
        assert page.run("document.querySelector('#filters input[type=search]').value") == text
        assert (
            page.run("[...document.querySelectorAll('.board-row')].map((r) => r.dataset.key)")
            == rows
        )
