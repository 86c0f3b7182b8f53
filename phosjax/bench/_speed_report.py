"""The speed bench's outputs: the printed table, ``speed.parquet`` and a plot."""

import io
import math
import pathlib
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd

from phosjax.bench._errors import BenchError
from phosjax.bench._store import move_aside, write_bytes, write_table, write_text

RATIOS = (
    ("one_by_one", "eng/1by1"),
    ("fused", "eng/fused"),
    ("vmap", "eng/vmap"),
    ("torch", "eng/torch"),
)
"""The ratios the table shows: engine rate / method rate (> 1: the engine is faster)."""

COLORS = {
    "one_by_one": "#1f77b4",
    "vmap": "#ff7f0e",
    "engine": "#2ca02c",
    "fused": "#7f7f7f",
    "torch": "#d62728",
}


def _rate(value: float) -> str:
    """A rate as the table and the plot show it: whole numbers from 10, three significant
    digits below (a rate below 1 too), ``-`` for none.

    Examples:
      >>> _rate(5388.4), _rate(8.814), _rate(0.25), _rate(0.0042), _rate(float("nan"))
      ('5,388', '8.81', '0.25', '0.0042', '-')
    """
    if not np.isfinite(value):
        return "-"
    return f"{value:,.0f}" if value >= 10 else f"{value:.3g}"


def rates(frame: pd.DataFrame) -> pd.DataFrame:
    """Model-steps per second, one row per (model, K), one column per method (NaN: none).

    Examples:
      >>> frame = pd.DataFrame({"model": ["mlp"] * 2, "K": [8, 8], "method": ["vmap", "engine"],
      ...                       "status": ["ok"] * 2, "model_steps_per_s": [100.0, 150.0]})
      >>> float(rates(frame).loc[("mlp", 8), "engine"])
      150.0
    """
    ok = frame[frame["status"] == "ok"]
    table = ok.pivot_table("model_steps_per_s", ["model", "K"], "method", sort=False)
    keys = pd.MultiIndex.from_frame(frame[["model", "K"]].drop_duplicates())
    methods = list(dict.fromkeys(frame["method"]))
    return table.reindex(index=keys, columns=methods)


def table(frame: pd.DataFrame) -> str:
    """The printed table: absolute model-steps/s per method, then engine/method ratios."""
    first, steps = frame.iloc[0], int(frame["steps"].min())
    more = frame[frame["steps"] > steps].groupby("method", sort=False)["steps"].max()
    rounded = "".join(f" ({method}: {n}, in whole chunks)" for method, n in more.items())
    dtypes = ",".join(dict.fromkeys(frame["compute_dtype"]))  # several: merged runs
    wide = rates(frame)
    strategy = frame[frame["method"] == "engine"].set_index(["model", "K"])["strategy"]
    methods = list(wide.columns)
    ratios = [(m, name) for m, name in RATIOS if m in methods and "engine" in methods]
    legend = "; eng/x = engine rate / x rate (> 1: engine faster)" if ratios else ""
    lines = [
        f"backend={first['backend']} device={first['device']} batch={first['batch']} "
        f"steps={steps}{rounded} compute_dtype={dtypes}",
        f"model-steps/s (higher is better){legend}",
    ]
    named = 1 + max([11, *(len(str(model)) for model, _ in wide.index)])  # e.g. "cnn2d bf16"
    head = f"{'model':<{named}}{'K':>5}" + "".join(f"{m:>12}" for m in methods)
    shown = "engine" in methods  # its strategy: no column of dashes without it
    width = 2 + max([len("strategy"), *(len(str(s)) for s in strategy)])  # e.g. vmap_matmul
    head += f"{'strategy':>{width}}" if shown else ""
    head += "".join(f"{name:>11}" for _, name in ratios)
    lines.append(head)
    for (model, k), row in wide.iterrows():
        text = f"{model:<{named}}{k:>5}" + "".join(f"{_rate(row[m]):>12}" for m in methods)
        text += f"{strategy.get((model, k), '') or '-':>{width}}" if shown else ""
        for method, _ in ratios:
            ratio = row["engine"] / row[method]
            text += f"{ratio:>11.2f}" if np.isfinite(ratio) else f"{'-':>11}"
        lines.append(text)
    notes = frame[(frame["status"] != "ok") | (frame["note"] != "")]
    for (method, status, note), rows in notes.groupby(["method", "status", "note"], sort=False):
        where = ", ".join(f"{m} K={k}" for m, k in zip(rows["model"], rows["K"], strict=True))
        lines.append(f"{'note' if status == 'ok' else status}: {method} ({where}): {note}")
    return "\n".join(lines)


def _matplotlib(frame: pd.DataFrame, path: pathlib.Path) -> pathlib.Path:
    from matplotlib.figure import Figure

    models = list(dict.fromkeys(frame["model"]))
    fig = Figure(figsize=(3.6 * len(models), 3.4), layout="constrained")
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    for ax, model in zip(axes, models, strict=True):
        ok = frame[(frame["model"] == model) & (frame["status"] == "ok")]
        for method, rows in ok.groupby("method", sort=False):
            ax.plot(rows["K"], rows["model_steps_per_s"], "o-", color=COLORS[str(method)])
            ax.lines[-1].set_label(str(method))
        if len(ok):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            sizes = sorted(set(ok["K"]))
            ax.set_xticks(sizes, [str(k) for k in sizes], minor=False)
            ax.set_xticks([], minor=True)
        ax.set_title(model)
        ax.set_xlabel("K (models)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    axes[0].set_ylabel("model-steps / s")
    first = frame.iloc[0]
    fig.suptitle(f"{first['backend']} ({first['device']}), batch {first['batch']}")
    out, image = path.with_suffix(".png"), io.BytesIO()
    fig.savefig(image, dpi=110, format="png")
    write_bytes(out, image.getvalue())
    return out


def svg(frame: pd.DataFrame, path: pathlib.Path) -> pathlib.Path:
    """A dependency-free plot: one log-log panel per model, one line per method."""
    models = list(dict.fromkeys(frame["model"]))
    w, h, pad = 300, 240, 40
    ok = frame[frame["status"] == "ok"]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w * len(models)}" height="{h + 30}" '
        'font-family="sans-serif" font-size="11">'
    ]
    for i, model in enumerate(models):
        rows = ok[ok["model"] == model]
        x0 = i * w
        parts.append(f'<text x="{x0 + w / 2}" y="14" text-anchor="middle">{escape(model)}</text>')
        parts.append(
            f'<rect x="{x0 + pad}" y="20" width="{w - pad - 10}" height="{h - pad}" '
            'fill="none" stroke="#999"/>'
        )
        if not len(rows):
            continue
        lx, ly = np.log2(rows["K"].astype(float)), np.log10(rows["model_steps_per_s"])
        span = (lx.min(), max(lx.max(), lx.min() + 1), ly.min(), max(ly.max(), ly.min() + 1))

        def xy(a: float, b: float, s: Any = span, x0: int = x0) -> tuple[float, float]:
            fx, fy = (a - s[0]) / (s[1] - s[0]), (b - s[2]) / (s[3] - s[2])
            return x0 + pad + 5 + fx * (w - pad - 20), 15 + h - pad - fy * (h - pad - 10)

        for value in sorted({ly.min(), ly.max()}):
            _, y = xy(span[0], value)
            tick = _rate(10**value)
            parts.append(f'<text x="{x0 + pad - 3}" y="{y:.1f}" text-anchor="end">{tick}</text>')
        for j, (method, group) in enumerate(rows.groupby("method", sort=False)):
            logs = np.log2(group["K"].astype(float)), np.log10(group["model_steps_per_s"])
            points = [xy(a, b) for a, b in zip(*logs, strict=True)]
            color = COLORS[str(method)]
            coords = " ".join(f"{a:.1f},{b:.1f}" for a, b in points)
            parts.append(f'<polyline points="{coords}" fill="none" stroke="{color}"/>')
            parts += [
                f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{color}"/>' for a, b in points
            ]
            parts.append(
                f'<text x="{x0 + pad + 8}" y="{34 + 13 * j}" fill="{color}">'
                f"{escape(str(method))}</text>"
            )
        for k in sorted(set(rows["K"])):
            x, _ = xy(math.log2(k), span[2])
            parts.append(f'<text x="{x:.1f}" y="{h + 12}" text-anchor="middle">{k}</text>')
    parts.append(
        f'<text x="{w * len(models) / 2}" y="{h + 27}" text-anchor="middle">'
        "K (models), log scale; model-steps/s, log scale</text></svg>"
    )
    out = path.with_suffix(".svg")
    write_text(out, "\n".join(parts))
    return out


def plot(frame: pd.DataFrame, path: pathlib.Path) -> pathlib.Path:
    """``path.png`` with matplotlib when it is installed, else `svg` (``path.svg``);
    written whole (`write_bytes`)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return svg(frame, path)
    return _matplotlib(frame, path)


OUTPUTS = ("speed.parquet", "speed.txt", "speed.png", "speed.svg")
"""The files `write` may leave in ``--out``."""


def move_earlier(out: str | pathlib.Path) -> list[pathlib.Path]:
    """Moves an earlier run's `OUTPUTS` in ``out`` aside (``<name>.old-<time>``, see
    `aside_path`), so that a new run never overwrites them; where they went. A move the
    system refuses is a `BenchError` naming the file (`move_aside`).

    Examples:
      >>> import tempfile
      >>> out = pathlib.Path(tempfile.mkdtemp())
      >>> _ = (out / "speed.txt").write_text("an earlier table")
      >>> [p.name.startswith("speed.txt.old-") for p in move_earlier(out)], move_earlier(out)
      ([True], [])
    """
    moved = []
    for name in OUTPUTS:
        path = pathlib.Path(out) / name
        if path.exists():
            moved.append(move_aside(path, f"the earlier {name}", BenchError, "--out"))
    return moved


def write(frame: pd.DataFrame, out: str | pathlib.Path) -> dict[str, pathlib.Path]:
    """Writes ``speed.parquet``, ``speed.txt`` (the table) and the plot under ``out``;
    each file is replaced whole (never seen half-written)."""
    directory = pathlib.Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"parquet": directory / "speed.parquet", "table": directory / "speed.txt"}
    write_table(paths["parquet"], frame, None)
    write_text(paths["table"], table(frame) + "\n")
    paths["plot"] = plot(frame, directory / "speed")
    return paths
