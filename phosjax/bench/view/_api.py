"""The viewer's JSON payloads, each built from the bench's files on request."""

import dataclasses
import datetime
import json
import math
import pathlib
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from phosjax._nearest import did_you_mean
from phosjax.bench import _layout, _reading
from phosjax.bench._errors import BrokenFileError
from phosjax.bench._summary import options_that_vary, per_group_and_phase
from phosjax.bench.view._bench import BenchFiles, OutsideBenchError, digest, hidden, listed

DEFAULT_POINTS = 400
"""Points per curve the server sends unless asked otherwise (long curves are thinned)."""


_JSON_SCALARS = frozenset({str, int, bool, type(None)})
"""The types `plain` returns as they are, checked first (a float may be NaN: not one)."""


class BadRequest(ValueError):
    """A request naming something the bench does not have (answered with HTTP 400)."""


class NotFound(LookupError):
    """A request for a file the bench does not have (answered with HTTP 404)."""


def plain(value: Any) -> Any:
    """``value`` as JSON-ready Python: numpy scalars unwrapped, NaN and infinities as None,
    bytes decoded (undecodable bytes escaped), and values JSON has no type for (a date,
    a Decimal: columns a user adds to a bench's files) as their text.

    Examples:
      >>> plain({"a": np.float32(0.5), "b": [np.nan, np.int64(3)], "c": (1.0, math.inf)})
      {'a': 0.5, 'b': [None, 3], 'c': [1.0, None]}
      >>> import decimal
      >>> plain([b"ab\\xff", datetime.date(2026, 1, 2), decimal.Decimal("1.50")])
      ['ab\\\\xff', '2026-01-02', '1.50']
      >>> plain([datetime.datetime(2026, 1, 2), np.datetime64("2026-01-02", "ns")])
      ['2026-01-02T00:00:00', '2026-01-02T00:00:00']
    """
    if type(value) in _JSON_SCALARS:  # most values: skip the checks below
        return value
    if type(value) is float:
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray | pd.Series):
        return [plain(v) for v in value]
    if isinstance(value, np.datetime64):  # its .item() is an int in ns, a datetime in us
        value = pd.Timestamp(value)
    elif isinstance(value, np.timedelta64 | datetime.timedelta):  # as a column's reads
        value = pd.Timedelta(value)
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:  # NaT is a datetime too
        return None
    if isinstance(value, datetime.date | datetime.time):  # a Timestamp too: ISO 8601
        return value.isoformat()
    if value is None or isinstance(value, str | int | float):  # subclasses too
        return value
    if isinstance(value, bytes):
        return value.decode(errors="backslashreplace")
    return str(value)


def encode(value: Any) -> bytes:
    """``value`` as strict JSON bytes (no NaN, which browsers cannot parse)."""
    return json.dumps(plain(value), allow_nan=False, separators=(",", ":")).encode()


def thin(length: int, max_points: int) -> np.ndarray:
    """At most ``max_points`` evenly spread indices into ``length`` items, first and last kept.

    Examples:
      >>> thin(10, 4).tolist(), thin(3, 400).tolist()
      ([0, 3, 6, 9], [0, 1, 2])
    """
    if length <= max_points:
        return np.arange(length)
    return np.unique(np.round(np.linspace(0, length - 1, max(max_points, 2))).astype(int))


_SERIES = ["cell_id", "split"]
"""The columns of `BenchFiles.results` that name a series (one cell's rows of one split)."""


def _readings(
    results: pd.DataFrame,
    columns: Sequence[str],
    series: Any,
    seen: pd.DataFrame | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rule `nonfinite_marks` sends by, of each row of ``results`` and column: its
    value (NaN for a null), whether its series (``series``: the keys grouping rows by
    series) had recorded the column by then (``seen``'s, if given), and whether it is
    ``"diverged"`` (recorded in a row whose cell had diverged by its step)."""
    recorded = results[list(columns)].notna()
    had = recorded if seen is None else seen[list(columns)]
    started = had.groupby(series, sort=False).cummax().to_numpy(dtype=bool)
    values = results[list(columns)].to_numpy(dtype=float, na_value=np.nan)
    diverged = np.zeros(values.shape, dtype=bool)
    if _layout.DIVERGED in results:  # null in rows written before it was: not diverged
        frozen = results[_layout.DIVERGED].eq(True).to_numpy(dtype=bool, na_value=False)
        diverged = frozen[:, None] & recorded.to_numpy(dtype=bool)
    return values, started, diverged


def nonfinite_marks(
    results: pd.DataFrame,
    columns: list[str],
    rows: slice | np.ndarray = slice(None),
    seen: pd.DataFrame | None = None,
) -> np.ndarray:
    """The values of ``columns`` in ``rows`` of `BenchFiles.results` (sorted by step) as
    JSON, an object array (rows by columns) of numbers, ``"nan"``, ``"inf"``, ``"-inf"``,
    ``"diverged"`` or None (nothing recorded: a null).

    A NaN is a measured value (the run diverged). Benches written before phosjax kept
    the two apart stored a NaN as a null, so there a null after its series' first value
    is ``"nan"`` too. A value recorded in a row whose cell had diverged by its step
    (`_layout.DIVERGED`) is ``"diverged"``: the engine froze the cell before that step,
    so the value is its frozen state's, often finite, no longer the run's. ``seen``: of
    some rows of each series (`BenchFiles.last_rows`), whether the series had recorded
    each column by then (by default, whether the row holds it).

    Examples:
      >>> import pyarrow as pa
      >>> floats = lambda values: pd.Series(pa.array(values), dtype=pd.ArrowDtype(pa.float64()))
      >>> results = pd.DataFrame({"cell_id": "a", "split": ["test"] * 5 + ["train"] * 3})
      >>> results["loss"] = floats([None, 1.0, np.nan, np.inf, -np.inf, None, 2.0, None])
      >>> nonfinite_marks(results, ["loss"])[:, 0].tolist()  # train's last null: an older NaN
      [None, 1.0, 'nan', 'inf', '-inf', None, 2.0, 'nan']
      >>> results["diverged"] = [False] * 6 + [True, None]
      >>> nonfinite_marks(results, ["loss"])[5:, 0].tolist()
      [None, 'diverged', 'nan']
    """
    series = [results[k] for k in _SERIES]
    return _marks(*(a[rows] for a in _readings(results, columns, series, seen)))


def _marks(values: np.ndarray, started: np.ndarray, diverged: np.ndarray) -> np.ndarray:
    """`nonfinite_marks` of `_readings`."""
    marks = values.astype(object)
    marks[np.isnan(values)] = "nan"
    marks[np.isposinf(values)] = "inf"
    marks[np.isneginf(values)] = "-inf"
    marks[~started] = None
    marks[diverged] = "diverged"
    return marks


def final_values(
    results: pd.DataFrame, metrics: list[str], seen: pd.DataFrame | None = None
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{cell_id: {split: {metric: last value}}}`` of `BenchFiles.results` (sorted by
    step), or of `BenchFiles.last_rows` and its ``seen``: each series' value at its last
    row, as `nonfinite_marks` sends it (None for a metric the series never recorded).

    Examples:
      >>> import pyarrow as pa
      >>> floats = lambda values: pd.Series(pa.array(values), dtype=pd.ArrowDtype(pa.float64()))
      >>> results = pd.DataFrame({"cell_id": ["a", "a", "b", "b", "c"], "split": "test"})
      >>> results["loss"] = floats([None, 1.0, 2.0, np.nan, None])
      >>> final_values(results, ["loss"])
      {'a': {'test': {'loss': 1.0}}, 'b': {'test': {'loss': 'nan'}}, 'c': {'test': {'loss': None}}}
    """
    last = ~results.duplicated(_SERIES, keep="last").to_numpy()
    marks = nonfinite_marks(results, metrics, last, seen).tolist()
    final: dict[str, dict[str, dict[str, Any]]] = {}
    for cell_id, split, row in zip(*(results[k][last] for k in _SERIES), marks, strict=True):
        final.setdefault(cell_id, {})[split] = dict(zip(metrics, row, strict=True))
    return final


def _records(
    frame: pd.DataFrame | None, with_attrs: bool = False, measured: bool = False
) -> dict[str, Any] | None:
    """``{"columns", "rows"}`` of ``frame``; ``with_attrs``: its ``attrs`` too, if any;
    ``measured``: its floats are all measured, so a NaN or infinity is a value, sent as
    `nonfinite_marks` sends it (``"nan"``: a diverged model's accuracy), not as a null
    (nothing recorded: a morph run records every value of its rows); the null of a
    nullable column (``Float64``, ``double[pyarrow]``: columns added with pandas) is one.

    Examples:
      >>> frame = pd.DataFrame({"kind": ["start"], "accuracy": [np.nan]})
      >>> _records(frame)["rows"], _records(frame, measured=True)["rows"]
      ([{'kind': 'start', 'accuracy': nan}], [{'kind': 'start', 'accuracy': 'nan'}])
      >>> frame["accuracy"] = pd.array([None], dtype="Float64")
      >>> _records(frame, measured=True)["rows"]
      [{'kind': 'start', 'accuracy': None}]
    """
    if frame is None:
        return None
    if measured:
        floats = frame.select_dtypes("floating").columns
        values = frame[floats].to_numpy(dtype=float, na_value=np.nan)
        nullable = np.array([not isinstance(d, np.dtype) for d in frame[floats].dtypes], bool)
        null = frame[floats].isna().to_numpy(dtype=bool) & nullable  # NumPy's NaN: measured
        frame = frame.astype(dict.fromkeys(floats, object))
        frame[floats] = _marks(values, started=~null, diverged=np.zeros_like(null))
    records = {"columns": list(frame.columns), "rows": frame.to_dict("records")}
    return records | {"attrs": frame.attrs} if with_attrs and frame.attrs else records


def bench_info(bench: BenchFiles) -> dict[str, Any]:
    """What the page shows first: name, marker, config text, env (or why it cannot be
    read), status, columns, models."""
    cells = bench.cells()
    models = cells.drop_duplicates("model_id")[["model_id", "model"]].to_dict("records")
    for model in models:
        for key, folder in (("has_blurb", _layout.BLURBS), ("has_graph", _layout.GRAPHS)):
            model[key] = _absent_if_outside(_has_model_file, bench, folder, model["model_id"])
    marker = _json_object(bench, _layout.MARKER)
    return {
        "name": bench.name,
        "marker": marker,
        "format_error": _format_error(marker),
        **_or_error("config", lambda: bench.text(_layout.CONFIG)),
        **_or_error("env", lambda: _json_object(bench, _layout.ENV)),
        "status": bench.status(),
        "cell_columns": list(_layout.CELL_COLUMNS),
        "hparams": bench.hparams(),
        "metrics": bench.metrics(),
        "models": models,
        "has_profile": bool(bench.per_process(_layout.PHASES) or bench.per_process(_layout.MEMORY)),
        "has_morph": _absent_if_outside(lambda: bench.path(_layout.MORPH).is_dir()),
    }


def _format_error(marker: dict[str, Any] | None) -> str | None:
    """Why the page may show the bench of ``marker`` (``bench.json``) wrong: it holds
    another ``format`` than this phosjax reads, which the runner refuses
    (`phosjax.bench._directory.open_bench`); None where it holds this one, or there is
    none (a morph run's directory).

    Examples:
      >>> _format_error({"format": _layout.FORMAT}) is None, _format_error(None) is None
      (True, True)
      >>> print(_format_error({"format": 99}))
      bench.json holds a bench of format 99; this phosjax reads format 1, so what the page
      shows of it may be wrong. A newer phosjax wrote it: upgrade phosjax to read it.
    """
    if marker is None:
        return None
    then = ", so what the page shows of it may be wrong"
    return _layout.format_not_read(_layout.MARKER, marker.get("format"), then)


def _or_error(key: str, read: Callable[[], Any]) -> dict[str, Any]:
    """``{key: read(), key + "_error": None}``; where ``read`` finds its file damaged (a
    `BrokenFileError`), ``{key: None, key + "_error": why}`` (its name, what to do): the
    page only shows ``config.yaml``'s text and what ran the bench (``env.json``), and
    failing `bench_info` over either would leave the page showing nothing.

    Examples:
      >>> import tempfile
      >>> root = pathlib.Path(tempfile.mkdtemp())
      >>> _ = (root / "bench.json").write_text('{"format": 1}')
      >>> _ = (root / "config.yaml").write_bytes(b"models: [\\xff]")
      >>> _or_error("config", lambda: BenchFiles(root).text("config.yaml"))["config_error"][:44]
      'cannot read config.yaml: UnicodeDecodeError:'
      >>> _or_error("env", lambda: _json_object(BenchFiles(root), "env.json"))
      {'env': None, 'env_error': None}
    """
    try:
        return {key: read(), f"{key}_error": None}
    except BrokenFileError as error:
        return {key: None, f"{key}_error": str(error)}


def _json_object(bench: BenchFiles, relative: str) -> dict[str, Any] | None:
    """The object the JSON file ``relative`` holds (None: there is none); one that holds
    another JSON value, ``null`` too, is a `BrokenFileError` naming it and what to do (a
    ``bench.json`` of ``null`` showed the bench as a morph run, an ``env.json`` of it as
    no environment).

    Examples:
      >>> import tempfile
      >>> root = pathlib.Path(tempfile.mkdtemp())
      >>> _ = (root / "bench.json").write_text('{"format": 1}')
      >>> _ = (root / "env.json").write_text("[]")
      >>> _json_object(BenchFiles(root), "env.json")
      Traceback (most recent call last):
      phosjax.bench._errors.BrokenFileError: cannot read env.json: it holds a list, not the
      JSON object phosjax writes there; phosjax writes it whole, so something else changed it;
      restore it from a backup, ...
    """
    data = bench.json(relative)
    if isinstance(data, dict) or (data is None and not bench.path(relative).is_file()):
        return data
    why = _reading.not_an_object(data, _reading.hint(relative))
    raise BrokenFileError(f"cannot read {relative}: it {why}")


def version(bench: BenchFiles) -> dict[str, Any]:
    """``{"version": digest, "parts": {part: digest}}``: `BenchFiles.versions` and a
    digest of them all. The page asks for it every few seconds and reads again the parts
    of the bench that changed.

    Examples:
      >>> import tempfile
      >>> root = pathlib.Path(tempfile.mkdtemp())
      >>> _ = (root / "bench.json").write_text('{"format": 1}')
      >>> before = version(BenchFiles(root))
      >>> (root / "results").mkdir()
      >>> _ = (root / "results" / "part-g-000000000.parquet").write_bytes(b"PAR1")
      >>> after = version(BenchFiles(root))
      >>> before["version"] != after["version"], sorted(after["parts"])
      (True, ['bench', 'models', 'morph', 'profile', 'results'])
    """
    parts = bench.versions()
    return {"version": digest(parts), "parts": parts}


def waiting(why: str) -> dict[str, Any]:
    """What `version` answers before the bench starts: ``{"version", "parts": {},
    "waiting": why}`` (`phosjax.bench.view._bench.not_started`); the page says ``why``
    and asks again until the bench is there.

    Examples:
      >>> waiting("waiting for the bench to start in 'runs/a' (no bench.json yet)")["parts"]
      {}
    """
    return {"version": digest(why), "parts": {}, "waiting": why}


def _absent_if_outside(check: Callable[..., bool], *args: Any) -> bool:
    """``check(*args)``, False where it meets a link out of the bench (never read: absent)."""
    try:
        return check(*args)
    except OutsideBenchError:
        return False


def leaderboard(bench: BenchFiles) -> dict[str, Any]:
    """One row per cell: ``{"cell": its columns, "progress": {"steps_done", "steps",
    "finished", "stopped"}, "final": {split: {metric: last value}}}``, a value as
    `nonfinite_marks` sends it. ``steps_done``: its last step in the results, 0 before
    any row. ``stopped``: the run training it is known to have stopped
    before it finished (`BenchFiles.stopped`); for a cell whose group has not started,
    when every run that wrote the bench has (`BenchFiles.all_stopped`). ``common``, only
    in the rows of a configuration whose seeds stopped at different steps of a split:
    ``{split: {"step", "final"}}``, the last step all its seeds reached and the cell's
    values there (`_at_common_steps`), which a mean over seeds takes.
    ``options_that_vary``: of the cell's options, those that differ between its model's
    cells, as `options_that_vary` writes them (the page shows these, not the JSON).
    ``records_diverged``: whether the cell's last rows record ``diverged`` (not null): there
    a NaN of a value not marked ``"diverged"`` is no divergence (NaN test inputs), while in
    rows written before they recorded it, it is the one sign (as the summary counts them)."""
    cells = bench.cells()
    metrics = bench.metrics()
    results, seen = bench.last_rows(metrics)  # each part's read once per version
    final = final_values(results, metrics, seen)
    steps_done = results.groupby("cell_id")["step"].max().to_dict() if len(results) else {}
    common = _at_common_steps(bench, cells, results, final, metrics)
    progress = bench.progress()
    not_started = {"steps": None, "finished": False, "stopped": bench.all_stopped()}
    options: list[str | None] = [None] * len(cells)
    if "options" in cells:
        _check_options(cells)
        options = options_that_vary(cells)
    recorded = set()  # the cells whose last rows record diverged
    if _layout.DIVERGED in results:
        recorded = set(results.loc[results[_layout.DIVERGED].notna(), "cell_id"])
    rows = [
        {
            "cell": cell,
            "options_that_vary": varying,
            "progress": {
                "steps_done": steps_done.get(cell["cell_id"], 0),
                **progress.get(cell["cell_id"], not_started),
            },
            "final": final.get(cell["cell_id"], {}),
            "records_diverged": cell["cell_id"] in recorded,
            **({"common": common[cell["cell_id"]]} if cell["cell_id"] in common else {}),
        }
        for cell, varying in zip(cells.to_dict("records"), options, strict=True)
    ]
    return {
        "cell_columns": list(_layout.CELL_COLUMNS),
        "hparams": bench.hparams(),
        "metrics": metrics,
        "splits": sorted(results["split"].unique().tolist()) if len(results) else [],
        "rows": rows,
    }


def _check_options(cells: pd.DataFrame) -> None:
    """Raises a `BrokenFileError` naming the first cell of the plan whose ``options`` (the
    text `options_that_vary` parses; null: none) hold no JSON object, which failed the
    leaderboard naming neither the file nor the cell (a plan edited by hand).

    Examples:
      >>> _check_options(pd.DataFrame({"cell_id": ["a", "b"], "options": ['{"k": 1}', "[1]"]}))
      Traceback (most recent call last):
      phosjax.bench._errors.BrokenFileError: cannot read cells.parquet: the options of cell
      'b' hold a list, not the JSON object phosjax writes; phosjax writes it whole, so ...
    """
    read: set[str] = set()
    for cell_id, text in zip(cells["cell_id"], cells["options"], strict=True):
        if not isinstance(text, str) or text in read:
            continue
        read.add(text)
        try:
            options = json.loads(text)
        except ValueError as error:
            wrong = f"are no JSON ({error})"
        else:
            if isinstance(options, dict):
                continue
            wrong = f"hold {_reading.json_kind(options)}, not the JSON object phosjax writes"
        raise BrokenFileError(
            f"cannot read {_layout.CELLS}: the options of cell {cell_id!r} {wrong}; "
            f"{_reading.hint(_layout.CELLS)}"
        )


_SEEDS_OF = ("cell_id", "group_id", "seed")
"""The columns of the plan that tell the seeds of a configuration apart (its others)."""


def _at_common_steps(
    bench: BenchFiles,
    cells: pd.DataFrame,
    last: pd.DataFrame,
    final: dict[str, dict[str, dict[str, Any]]],
    metrics: list[str],
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{cell_id: {split: {"step": S, "final": {metric: value}, "at": {T: {metric:
    value}}}}}`` for the cells of each configuration (the plan's cells alike but for
    `_SEEDS_OF`) whose seeds stopped at different steps of a split (one crashed;
    processes run apart train a group's cells apart): ``S``, the last step of the split
    that every one of them with a row reached, and the cell's value of each metric at its
    last row up to ``S``, as `final_values` sends it; ``at``, its values so at each step
    ``T`` (a string) that one of these seeds stopped at, up to its own last, so that the
    page compares the seeds a filter leaves at the last step all of those reached. A mean
    of their last values would mix steps. ``last``: `BenchFiles.last_rows`, ``final`` its
    `final_values`; their values at an earlier step come from `BenchFiles.rows_upto`."""
    if not len(last):
        return {}
    ends = last.groupby(_SERIES, sort=False)["step"].max().rename("end").reset_index()
    config = [c for c in cells.columns if c not in _SEEDS_OF]
    ends = ends.merge(_groupable(cells[["cell_id", *config]]), on="cell_id")
    ends["config"] = ends.groupby([*config, "split"], dropna=False).ngroup()
    by_config = ends.groupby("config")["end"]
    uneven = ends[by_config.transform("max") > by_config.transform("min")]
    if not len(uneven):
        return {}
    stops = uneven[["config", "end"]].drop_duplicates().rename(columns={"end": "at"})
    targets = uneven[[*_SERIES, "config", "end"]].merge(stops, on="config")
    targets = targets[targets["at"] <= targets["end"]]
    earlier = targets[targets["at"] < targets["end"]]
    rows, seen = bench.rows_upto(earlier, metrics)
    before: dict[tuple[str, str, int], dict[str, Any] | None] = {}
    for step, upto in rows.groupby("at", sort=False).indices.items():
        there = final_values(
            rows.iloc[upto].reset_index(drop=True), metrics, seen.iloc[upto].reset_index(drop=True)
        )
        for cell_id, splits in there.items():
            for split, values in splits.items():
                before[cell_id, split, int(step)] = values
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for cell_id, split, end, step in targets[[*_SERIES, "end", "at"]].itertuples(index=False):
        own = final.get(cell_id, {}).get(split) if step == end else None  # at its own last
        values = own or before.get((cell_id, split, int(step))) or dict.fromkeys(metrics)
        found.setdefault(cell_id, {}).setdefault(split, {"at": {}})["at"][str(int(step))] = values
    for splits in found.values():
        for entry in splits.values():
            step = min(entry["at"], key=int)
            entry.update(step=int(step), final=entry["at"][step])
    return found


def _groupable(plan: pd.DataFrame) -> pd.DataFrame:
    """``plan`` with each value pandas cannot group by (a list or a dict of a column added
    by hand: Parquet reads a list as an array) as its text.

    Examples:
      >>> _groupable(pd.DataFrame({"widths": [np.array([1, 2]), "3"]}))["widths"].tolist()
      ['array([1, 2])', '3']
    """
    mixed = [c for c in plan if plan[c].dtype == object]  # not a column of str, say
    return plan.assign(**{str(c): plan[c].map(_hashable) for c in mixed})


def _hashable(value: Any) -> Any:
    """``value``, or its text where it cannot be hashed."""
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


_HINTED = 3
"""The unknown names a refusal offers the nearest known names of: each search compares
every known name (a request of 1,700 misspelt metrics of a bench of 500 took two minutes,
its message 270 kB)."""


def _check_known(
    parameter: str, asked: Sequence[str], known: Sequence[str], where: str, near: bool = False
) -> None:
    """Refuses the names of query parameter ``parameter`` that are not ``known`` (the
    message lists some of those, and ``where`` says where to find them all); with
    ``near``, it names the known ones nearest each of the first `_HINTED` (a misspelt
    metric: the list is cut after ten, a bench has more).

    Examples:
      >>> _check_known("columns", ["acuracy"], ["loss", "accuracy"], "in /api/bench", near=True)
      Traceback (most recent call last):
      phosjax.bench.view._api.BadRequest: Unknown columns ['acuracy'] in columns=; the bench
      has 2: ['loss', 'accuracy'] (in /api/bench). Did you mean 'accuracy'?
    """
    known_set = set(known)
    unknown = [a for a in asked if a not in known_set]
    if unknown:
        has = f"{len(known)}: {listed(known)}" if known else "none yet"
        hint = did_you_mean(unknown[:_HINTED], known) if near else ""
        raise BadRequest(
            f"Unknown {parameter} {listed(unknown)} in {parameter}=; the bench has {has} "
            f"({where}){hint or '.'}"
        )


def curves(
    bench: BenchFiles,
    cells: Sequence[str] | None,
    columns: Sequence[str],
    max_points: int = DEFAULT_POINTS,
) -> dict[str, Any]:
    """Every (cell, split) series of ``columns`` over steps, thinned to ``max_points`` on
    steps shared by its group (`_step_grids`), each value as `nonfinite_marks` sends it.

    Args:
      bench: the bench.
      cells: cell ids (all when None).
      columns: metric columns (`BenchFiles.metrics`).
      max_points: the points per series (plus the last step of each cell of its group,
        and up to ``max_points`` steps that show its group's extremes and non-finite values).
    """
    if max_points < 2:
        raise BadRequest(f"max_points must be at least 2, got {max_points}.")
    if not columns:
        metrics = bench.metrics()
        has = listed(metrics) if metrics else "none yet (no results written)"
        raise BadRequest(
            f"columns is required: name the metrics to send (columns=loss,accuracy); the "
            f"bench has {has}."
        )
    columns = list(dict.fromkeys(columns))  # each once, in the order asked
    cells = None if cells is None else list(dict.fromkeys(cells))
    _check_known("columns", columns, bench.metrics(), "metrics in /api/bench", near=True)
    if cells is not None:
        _check_known("cells", cells, bench.cells()["cell_id"].tolist(), "all in /api/cells")
    group_of = bench.cells().set_index("cell_id")["group_id"]
    ungrouped = [] if cells is None else [c for c, g in group_of[cells].items() if pd.isna(g)]
    if ungrouped:  # a hand-edited plan: the part files of its group are not known
        raise BrokenFileError(
            f"cannot read {_layout.CELLS}: it gives the cells {listed(ungrouped)} no group_id "
            f"(every bench's plan gives each cell its group); {_reading.hint(_layout.CELLS)}"
        )
    # Each group's series thinned (each shapes its group's steps), kept per version of
    # its parts and its cells in the plan: other cells of a group read nothing again.
    asked = ("curves", tuple(columns), max_points)
    keys: dict[str | None, Hashable]
    if cells is None:
        keys = {None: (*asked, tuple(group_of.items()))}
    else:  # the members of the groups asked alone (a plan may hold thousands of groups)
        of_asked = group_of[group_of.isin(group_of[cells])]
        members = of_asked.index.groupby(of_asked)
        keys = {g: (*asked, tuple(members[g])) for g in dict.fromkeys(group_of[cells])}
    compute = lambda missing: _thinned(bench, group_of, missing, columns, max_points)
    thinned = bench.per_group(keys, compute, lambda kept: kept.nbytes)
    sent = [(kept, i) for kept in thinned.values() for i in range(len(kept.series))]
    if cells is not None:  # those of the cells asked, by cell id
        wanted = set(cells)
        sent = sorted(
            ((kept, i) for kept, i in sent if kept.series[i][0] in wanted),
            key=lambda pair: pair[0].series[pair[1]][0],
        )
    series = []
    for kept, at in sent:
        (cell_id, split), rows = kept.series[at], slice(*kept.bounds[at : at + 2])
        marks = _marks(kept.values[rows], kept.started[rows], kept.diverged[rows])
        series.append(
            {
                "cell_id": cell_id,
                "split": split,
                "step": kept.step[rows].tolist(),
                "values": {c: marks[:, i].tolist() for i, c in enumerate(columns)},
            }
        )
    return {"columns": columns, "series": series}


@dataclasses.dataclass(frozen=True)
class _Kept:
    """The rows `curves` sends of the series of a group's cells (or of every cell): each
    series' ``(cell_id, split)`` in the order sent, its rows ``bounds[i]:bounds[i + 1]``
    of ``step`` and of `_readings`' ``values``, ``started`` and ``diverged``."""

    series: list[tuple[str, str]]
    bounds: np.ndarray
    step: np.ndarray
    values: np.ndarray
    started: np.ndarray
    diverged: np.ndarray

    @property
    def nbytes(self) -> int:
        arrays = (self.bounds, self.step, self.values, self.started, self.diverged)
        return sum(a.nbytes for a in arrays) + 100 * len(self.series)


def _thinned(
    bench: BenchFiles,
    group_of: pd.Series,
    groups: list[str | None],
    columns: list[str],
    max_points: int,
) -> dict[str | None, _Kept]:
    """The `_Kept` rows of each of ``groups`` (``[None]``: of every cell of the bench, one),
    read in one read of their parts (`_step_grids` shapes each group's steps alone)."""
    every = groups == [None]
    of_groups = None if every else group_of.index[group_of.isin(groups)].tolist()
    read = bench.results(columns, of_groups)
    readings = _readings(read, columns, [read[k] for k in _SERIES])
    grids = _step_grids(read, group_of, max_points, readings)
    steps = read["step"].to_numpy()
    values, started, diverged = readings
    found: dict[str | None, tuple[list[tuple[str, str]], list[np.ndarray]]] = {
        group: ([], []) for group in groups
    }
    group_by_cell = group_of.to_dict()
    for (cell_id, split), rows in read.groupby(_SERIES, sort=False).indices.items():
        series, kept = found[None if every else group_by_cell[cell_id]]
        series.append((cell_id, split))
        kept.append(rows[np.isin(steps[rows], grids[cell_id, split])])
    thinned = {}
    for group, (series, kept) in found.items():
        rows = np.concatenate(kept) if kept else np.zeros(0, dtype=int)
        bounds = np.r_[0, np.cumsum([len(k) for k in kept], dtype=int)]
        thinned[group] = _Kept(
            series, bounds, steps[rows], values[rows], started[rows], diverged[rows]
        )
    return thinned


_ODD_RUNS_KEPT = 3
"""The non-finite runs of a series and column whose first steps `_telling_steps` keeps."""


def _telling_steps(
    series: np.ndarray, readings: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The rows of `BenchFiles.results` (sorted by step; ``series``: each row's series
    number; ``readings``: their `_readings`) that evenly spread steps could drop but a
    plot must show, and each one's rank (the lower kept first where there are too many):
    of each series and column, the first row of each of its first `_ODD_RUNS_KEPT` runs of
    values `nonfinite_marks` sends as text (``"nan"``, ``"inf"``, ``"-inf"``,
    ``"diverged"``), rank 0, and the rows of its largest and smallest finite values (a
    spike, a dip), ranks 1 and 2.

    Examples:
      >>> logged = pd.DataFrame({"step": range(6), "loss": [3.0, 9.0, 1.0, np.nan, np.nan, 2.0]})
      >>> series = np.zeros(6, dtype=int)
      >>> rows, rank = _telling_steps(series, _readings(logged, ["loss"], series))
      >>> rows.tolist(), rank.tolist()
      ([3, 1, 2], [0, 1, 2])
    """
    values, started, diverged = readings
    n_columns = values.shape[1]
    odd = (started & ~np.isfinite(values)) | diverged  # sent as text
    order = np.argsort(series, kind="stable")  # each series' rows together, by step
    series, values, odd = series[order], values[order], odd[order]
    first = np.flatnonzero(np.r_[True, series[1:] != series[:-1]])  # each series' first row
    starts = odd.copy()  # the first row of each run
    starts[1:] &= ~odd[:-1]
    starts[first] = odd[first]
    row, column = np.nonzero(starts)
    nth = pd.Series(row).groupby([series[row], column]).cumcount().to_numpy()
    found = [row[nth < _ODD_RUNS_KEPT]]
    plain = np.isfinite(values) & ~odd
    length = np.diff(np.r_[first, len(series)])
    for extreme, fill in ((np.maximum, -np.inf), (np.minimum, np.inf)):
        shown = np.where(plain, values, fill)
        hits = []  # of each column, the first row of each series at its extreme
        for i in range(n_columns):
            top = np.repeat(extreme.reduceat(shown[:, i], first), length)
            row = np.flatnonzero(plain[:, i] & (shown[:, i] == top))
            hits.append(row[np.diff(series[row], prepend=-1) != 0])
        row = np.concatenate(hits)
        column = np.repeat(np.arange(n_columns), [len(h) for h in hits])
        found.append(row[np.argsort(series[row] * n_columns + column)])
    rank = np.concatenate([np.full(len(f), r) for r, f in enumerate(found)])
    return order[np.concatenate(found)], rank


def _step_grids(
    logged: pd.DataFrame,
    group_of: pd.Series,
    max_points: int,
    readings: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> dict[tuple[str, str], np.ndarray]:
    """The steps `curves` keeps of each (cell, split) series of ``logged`` (`BenchFiles.results`
    of whole groups, ``group_of`` each cell's): ``max_points`` of the steps the cells of
    its group logged, evenly spread, each such cell's last, and up to ``max_points`` steps
    where one of them has a value that a plot must show (``readings``: the `_readings` of
    ``logged``'s rows; `_telling_steps`:
    a non-finite value first, then a largest, then a smallest). Every cell of a group (the
    seeds of a configuration among them) keeps the same steps, whichever cells a request
    names and however far each has trained (a bench's processes train a group's cells
    apart), so that a mean over seeds takes each seed at each step.

    Examples:
      >>> logged = pd.DataFrame({"cell_id": ["a"] * 4 + ["b"] * 2, "split": "test"})
      >>> logged["step"] = [10, 20, 30, 40, 10, 20]  # b, a process behind, stopped at 20
      >>> logged["loss"] = [1.0, 2.0, 9.0, 4.0, 1.0, 2.0]  # a spike of a's at 30
      >>> readings = _readings(logged, ["loss"], [logged[k] for k in _SERIES])
      >>> grids = _step_grids(logged, pd.Series({"a": "g", "b": "g"}), 2, readings)
      >>> grids["a", "test"].tolist(), grids["b", "test"].tolist()
      ([10, 20, 30, 40], [10, 20, 30, 40])
    """
    if not len(logged):
        return {}
    # Each (group, split) and each (cell, split) numbered from codes (factorizing each
    # string column once: grouping by the strings took most of a request of 80 cells'
    # curves); their steps and last steps, in one pass each.
    cell, cells = pd.factorize(logged["cell_id"])
    split, splits = pd.factorize(logged["split"])
    group = pd.factorize(group_of.reindex(cells), use_na_sentinel=False)[0]
    which, own = group[cell] * len(splits) + split, cell * len(splits) + split
    numbered = np.unique(which)  # each (group, split), in grid_of's order
    frame = pd.DataFrame({"which": which, "step": logged["step"].to_numpy()})
    steps = frame.drop_duplicates().sort_values(["which", "step"])
    ends = frame.groupby(own).max().sort_values("which", kind="stable")
    step_of = np.split(steps["step"].to_numpy(), np.flatnonzero(np.diff(steps["which"])) + 1)
    end_of = np.split(ends["step"].to_numpy(), np.flatnonzero(np.diff(ends["which"])) + 1)
    grid_of = [
        np.union1d(own[thin(len(own), max_points)], last)
        for own, last in zip(step_of, end_of, strict=True)
    ]
    # The steps of each group's spikes, dips and non-finite values too.
    rows, rank = _telling_steps(own, readings)
    told = pd.DataFrame({"which": which[rows], "step": frame["step"].to_numpy()[rows]})
    told = told.iloc[np.lexsort((rank, told["which"]))].drop_duplicates()
    extra = dict(iter(told.groupby("which")["step"]))  # each, most telling first
    for k, number in enumerate(numbered):
        if number in extra:
            more = extra[number].to_numpy()
            more = more[~np.isin(more, grid_of[k])][:max_points]
            grid_of[k] = np.union1d(grid_of[k], more)
    at = np.searchsorted(numbered, ends["which"].to_numpy())
    return {
        (cells[series // len(splits)], splits[series % len(splits)]): grid_of[i]
        for series, i in zip(ends.index, at, strict=True)
    }


def profile(bench: BenchFiles, max_points: int = DEFAULT_POINTS) -> dict[str, Any]:
    """``profile/phases.parquet`` and ``profile/memory.parquet`` as records, each with the
    rows of its per-process files (``phases.p<i>of<n>.parquet``) after its own.

    Each memory file is thinned to ``max_points`` rows on its own, plus the row of each
    column's peak (so that the plot's peak is the true one), its rows kept in the order
    written (time order); with per-process files, a ``process`` column (``"<i>/<n>"``,
    None for ``memory.parquet``) says whose each sample is, one series per process.
    ``files``: the files read of each (those that exist), by ``phases`` and ``memory``.
    """
    files = {
        "phases": bench.per_process(_layout.PHASES),
        "memory": bench.per_process(_layout.MEMORY),
    }
    frames, memory_name = [], pathlib.PurePath(_layout.MEMORY).name
    for relative in files["memory"]:
        frame = bench.table(relative)
        if frame is not None:
            process = _layout.process_of(pathlib.PurePath(relative).name, memory_name)
            label = None if process is None else f"{process[0]}/{process[1]}"
            kept = np.union1d(thin(len(frame), max_points), _peaks(frame))  # in time order
            frames.append(frame.iloc[kept].assign(process=label))
    memory = pd.concat(frames, ignore_index=True) if frames else None
    if memory is not None and memory["process"].isna().all():
        memory = memory.drop(columns="process")  # a single process: no column to tell apart
    phases = per_group_and_phase(bench.tables(_layout.PHASES))
    return {"phases": _records(phases), "memory": _records(memory), "files": files}


def _has_model_file(bench: BenchFiles, folder: str, model_id: str) -> bool:
    """Whether the bench has ``<folder>/<model_id>.json`` (a link out of it:
    `OutsideBenchError`)."""
    path = bench.named(folder, model_id, ".json")
    try:
        return path.is_file()
    except OSError:  # a name the file system cannot hold (too long)
        return False


def _peaks(frame: pd.DataFrame) -> np.ndarray:
    """The row of each numeric column's largest value (none for a column of no value).

    Examples:
      >>> _peaks(pd.DataFrame({"a": [1.0, 5.0, 2.0], "b": [np.nan, 0.0, 3.0], "c": np.nan}))
      array([1, 2])
    """
    numbers = frame.select_dtypes("number")
    peaks = [numbers[c].argmax() for c in numbers if numbers[c].notna().any()]
    return np.array(peaks, dtype=int)


def model_file(bench: BenchFiles, folder: str, model_id: str) -> Any:
    """The parsed ``<folder>/<model_id>.json`` (a blurb or a graph drawing); a blurb
    without its module tree (``root``), or a graph drawing without its list of nodes (or
    whose edges or outputs are no list, or a node or edge no object), or either holding
    an array without its shape, is
    a `BrokenFileError` naming the file and what to do (`_reading.hint`), which the page
    would fail on without naming it; a ``model_id`` the bench lacks (``.`` too) is a
    `NotFound` naming its models.

    Examples:
      >>> import tempfile
      >>> root = pathlib.Path(tempfile.mkdtemp())
      >>> _ = (root / "bench.json").write_text('{"format": 1}')
      >>> (root / "blurbs").mkdir()
      >>> _ = (root / "blurbs" / "mlp-1.json").write_text("{}")
      >>> model_file(BenchFiles(root), "blurbs", "mlp-1")
      Traceback (most recent call last):
      phosjax.bench._errors.BrokenFileError: cannot read blurbs/mlp-1.json: it has no 'root';
      it does not hold a blurb ({"root": {module}, "backend": ...}, as
      phosjax.core.Blurb.to_json writes it); phosjax writes it whole, so something else
      changed it; delete it, then continue the bench (python -m phosjax.bench.new --dir
      DIR), which writes it again.
    """
    # '.', '.hidden': no model's id (`_layout.PLAIN_NAME`), not a path out of the bench
    plain = _layout.PLAIN_NAME.fullmatch(model_id)
    if not plain or not _has_model_file(bench, folder, model_id):
        cells = bench.cells().dropna(subset="model_id")  # null: a plan edited by hand
        models = cells["model_id"].unique().tolist()
        if model_id in models:
            raise NotFound(f"The bench has no {folder}/{model_id}.json.")
        has = f"{len(models)}: {listed(models)}" if models else "none yet"
        ids = cells.loc[cells["model"] == model_id, "model_id"].unique().tolist()  # a name
        of_name = f". Did you mean {' or '.join(map(repr, ids))}, of model {model_id!r}?"
        hint = (of_name if ids else did_you_mean([model_id], models)) or "."
        raise NotFound(
            f"The bench has no model {model_id!r}; it has {has} (models in /api/bench){hint}"
        )
    relative = f"{folder}/{model_id}.json"
    content = bench.json(relative)
    keys, what = _MODEL_FILES[folder]
    wrong = _unfit_keys(content, keys)
    if wrong is None and folder == _layout.BLURBS:
        wrong = _unfit_module(content["root"], "'root'")
    if wrong is None and folder == _layout.GRAPHS:
        wrong = _unfit_items(content, _GRAPH_ITEMS) or _unfit_parts(content["nodes"])
    if wrong is None:
        return content
    raise BrokenFileError(
        f"cannot read {relative}: {wrong}; it does not hold {what}; {_reading.hint(relative)}"
    )


def _unfit_keys(
    content: Any, keys: Mapping[str, type | tuple[type, ...]], where: str | None = None
) -> str | None:
    """What is wrong with ``content`` (the file's, or its value at ``where``), which
    should be a JSON object with each of ``keys`` of its type; None where nothing is.

    Examples:
      >>> _unfit_keys([], {"root": dict}), _unfit_keys({"root": 1}, {"root": dict})
      ('it holds a list', "its 'root' holds a number")
      >>> _unfit_keys({}, {"id": str}, "'nodes'[2]")
      "its 'nodes'[2] has no 'id'"
    """
    it = "it" if where is None else f"its {where}"
    if not isinstance(content, dict):
        return f"{it} holds {_reading.json_kind(content)}"
    unfit = [key for key, kind in keys.items() if not isinstance(content.get(key), kind)]
    if not unfit:
        return None
    key = unfit[0]
    if key not in content:
        return f"{it} has no {key!r}"
    at = f"its {key!r}" if where is None else f"its {where}[{key!r}]"
    return f"{at} holds {_reading.json_kind(content[key])}"


def _unfit_items(
    drawing: dict[str, Any], items: Mapping[str, Mapping[str, type | tuple[type, ...]]]
) -> str | None:
    """What is wrong with the lists of a graph ``drawing`` that the page draws item by
    item: each item of ``drawing[key]`` (where given) a JSON object with ``items[key]``'s
    keys of their types; None where nothing is.

    Examples:
      >>> _unfit_items({"nodes": [{"inputs": []}, {"inputs": "a"}]}, _GRAPH_ITEMS)
      "its 'nodes'[1]['inputs'] holds a string"
      >>> _unfit_items({"nodes": [], "edges": [{"source": "a"}, None]}, _GRAPH_ITEMS)
      "its 'edges'[1] holds null"
    """
    for key, keys in items.items():
        for i, item in enumerate(drawing.get(key) or []):
            if wrong := _unfit_keys(item, keys, f"{key!r}[{i}]"):
                return wrong
    return None


def _unfit_parts(nodes: list[dict[str, Any]]) -> str | None:
    """What is wrong with the ``parts`` of a graph drawing's ``nodes`` (the arrays of a
    tuple a node returns, which the page draws: `_unfit_specs`); None where nothing is.

    Examples:
      >>> _unfit_parts([{"parts": None}, {"parts": {"[0]": {"shape": None}}}])
      "its 'nodes'[1]['parts']['[0]']['shape'] holds null"
    """
    for i, node in enumerate(nodes):
        if wrong := _unfit_specs(node.get("parts") or {}, f"'nodes'[{i}]['parts']"):
            return wrong
    return None


def _unfit_specs(specs: Any, where: str) -> str | None:
    """What is wrong with ``specs`` (at ``where``): arrays by name, each ``{"shape": [...],
    ...}`` (a graph node's parts, a blurb module's outputs or variables of a collection),
    whose shapes the page writes out; None where nothing is.

    Examples:
      >>> _unfit_specs({"": {"shape": [1, 3], "dtype": "float32"}}, "'root'['outputs']")
      >>> _unfit_specs({"kernel": {"dtype": "float32"}}, "'root'['variables']['params']")
      "its 'root'['variables']['params']['kernel'] has no 'shape'"
    """
    if wrong := _unfit_keys(specs, {}, where):
        return wrong
    for name, spec in specs.items():
        if wrong := _unfit_keys(spec, {"shape": list}, f"{where}[{name!r}]"):
            return wrong
    return None


def _unfit_module(module: Any, where: str) -> str | None:
    """What is wrong with the blurb's module ``module`` (at ``where``) or one inside it,
    which the page's tree walks: no JSON object, ``children`` that are no list (null or
    absent: none, as the page reads them), ``knobs`` no object of objects (``{name:
    {"value", "default", "doc", ...}}``), or arrays without their shape (`_unfit_specs`);
    None where nothing is.

    Examples:
      >>> _unfit_module({"children": [{}, {"children": 3}]}, "'root'")
      "its 'root'['children'][1]['children'] holds a number"
      >>> _unfit_module({"children": [{"children": None}]}, "'root'") is None
      True
      >>> _unfit_module({"knobs": {"gain": None}}, "'root'")
      "its 'root'['knobs']['gain'] holds null"
    """
    if wrong := _unfit_keys(module, _MODULE_KEYS, where):
        return wrong
    for name, knob in (module.get("knobs") or {}).items():
        if wrong := _unfit_keys(knob, {}, f"{where}['knobs'][{name!r}]"):
            return wrong
    if wrong := _unfit_specs(module.get("outputs") or {}, f"{where}['outputs']"):
        return wrong
    for collection, specs in (module.get("variables") or {}).items():
        if wrong := _unfit_specs(specs, f"{where}['variables'][{collection!r}]"):
            return wrong
    for i, child in enumerate(module.get("children") or []):
        if wrong := _unfit_module(child, f"{where}['children'][{i}]"):
            return wrong
    return None


_OPTIONAL_LIST = (list, type(None))
_MODEL_FILES: dict[str, tuple[dict[str, type | tuple[type, ...]], str]] = {
    _layout.BLURBS: (
        {"root": dict},
        'a blurb ({"root": {module}, "backend": ...}, as phosjax.core.Blurb.to_json writes it)',
    ),
    _layout.GRAPHS: (
        {"nodes": list, "edges": _OPTIONAL_LIST, "outputs": _OPTIONAL_LIST},
        'a graph drawing ({"nodes": [{node}, ...], "edges": [...], "outputs": [...], ...}, '
        "as phosjax.models.graph.GraphModel.to_json writes it)",
    ),
}
"""What `model_file` needs of a file of each folder, which the page draws: the keys its
JSON object must have, each of what type (None: the page does without it), and what the
file holds."""
_MODULE_KEYS: dict[str, type | tuple[type, ...]] = {
    "children": _OPTIONAL_LIST,
    "variables": (dict, type(None)),
    "knobs": (dict, type(None)),
}
"""What `model_file` needs of each module of a blurb: its ``children`` a list, its
``variables`` and ``knobs`` objects, or absent (None)."""
_GRAPH_ITEMS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "nodes": {"inputs": _OPTIONAL_LIST, "shape": _OPTIONAL_LIST},
    "edges": {},
}
"""What `model_file` needs of each node and edge of a graph drawing: a JSON object, with
the keys the page reads as lists each a list or absent (None)."""


def morph(bench: BenchFiles) -> dict[str, Any]:
    """The JSON and Parquet files directly under ``morph/``, by name (links out and
    `hidden` files, a writer's temporaries, skipped): a Parquet file as ``{"columns",
    "rows"}``, and its pandas ``attrs`` where it has any (``iterations.parquet``'s
    ``morph_config`` and ``resolved_dataset``: what the run ran); ``errors``: why each
    file that cannot be read is not among them (a `BrokenFileError`, naming it and what
    to do), the others shown all the same."""
    folder = bench.path(_layout.MORPH)
    if not folder.is_dir():
        raise NotFound(f"The bench has no {_layout.MORPH}/ folder (run `python -m phosjax.morph`).")
    files: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for path in sorted(p for p in folder.iterdir() if not hidden(p.name)):
        relative = f"{_layout.MORPH}/{path.name}"
        try:
            if path.suffix == ".json":
                files[path.name] = bench.json(relative)
            elif path.suffix == ".parquet":
                files[path.name] = _records(bench.table(relative), True, measured=True)
        except OutsideBenchError:
            continue  # a link out of the bench is never read
        except BrokenFileError as error:
            errors[path.name] = str(error)
    return {"files": files, "errors": errors}
