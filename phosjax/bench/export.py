"""Export a bench to MLflow: one MLflow run per finished cell.

``python -m phosjax.bench.export --dir runs/example --mlflow URI [--experiment NAME]``

Each run gets the cell's columns and hyperparameters as params (those it has: a null
one, another model's knob or ``momentum`` under adam, is left out, not logged as
``nan``; one longer than MLflow keeps, 6000 characters, which MLflow would cut with no
error, is cut to end in ``... [cut: N characters, over 6000, digest D]``, D a digest of
the whole value, so that values differing past the cut read apart), every metric per step
and split as ``<split>/<metric>`` (``test/accuracy``, ``train/aux/balance``): a column
MLflow cannot name, such as ``knob/**/T``, ``knob/re:.*/.`` or ``aux/kl(1e-3)``, under a
key with ``_`` for each character it refuses or would read as a path, cut to its 250
characters ending in a digest of the column's name (see `mlflow_keys`; the tags
``phosjax.param_names`` and ``phosjax.metric_names`` map such keys to the columns), the
model's blurb (and graph drawing) as artifacts under ``blurb/`` (``graph/``), the
bench's ``config.yaml`` and ``env.json`` under ``bench/``, and the tags
``phosjax.cell_id``, ``phosjax.bench``, ``phosjax.bench_created``,
``phosjax.config_hash`` and, for a cell that diverged, ``phosjax.diverged_at``: the
first step whose row says ``diverged`` (its metrics from there on are those of its state
frozen before it, often finite). Exporting again skips the cells already exported
(finished runs with the same cell id from the same bench, known by the creation time in
its ``bench.json``, which `add_models` keeps); cells whose group has not finished
training are left for later, and so are finished ones whose result rows are gone, or
those of some of their steps (their part files, or some, removed or lost: restored, they
are exported). The unfinished runs that an export cut short (killed: nothing deleted its
run) left of this bench are deleted, so each cell keeps one whole run; a second export
of the bench while one runs stops at once (the first holds ``export.lock`` in the bench,
naming its pid and host; a bench one may not write is exported without it). Needs the
``mlflow`` extra (``mlflow-skinny``).

MLflow 3 refuses ``file:`` stores unless ``MLFLOW_ALLOW_FILE_STORE=true`` is set; a
tracking server (``http://...``) or ``sqlite:///mlflow.db`` (full ``mlflow``) need nothing.
A file store that is a bench or lies inside one is refused: MLflow would write among its
files.
"""

import argparse
import contextlib
import dataclasses
import json
import math
import pathlib
import re
import shlex
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from phosjax._listing import counted, listing
from phosjax.bench import _layout
from phosjax.bench._cli import entry_point, exit_process, then_command
from phosjax.bench._directory import export_locked
from phosjax.bench._progress import Bar
from phosjax.bench._reading import MARKER_HINT, hint, not_an_object
from phosjax.bench._starting import starting
from phosjax.bench._store import NOT_WRITTEN, naming
from phosjax.bench._usage import ArgParser, as_argument, usage_error
from phosjax.bench.view._bench import (
    BenchFiles,
    BrokenFileError,
    NotABenchError,
    OutsideBenchError,
    digest,
)

TAG_CELL = "phosjax.cell_id"
TAG_BENCH = "phosjax.bench"
TAG_CREATED = "phosjax.bench_created"
TAG_CONFIG = "phosjax.config_hash"
TAG_PARAM_NAMES = "phosjax.param_names"
TAG_METRIC_NAMES = "phosjax.metric_names"
TAG_DIVERGED_AT = "phosjax.diverged_at"
_BATCH = 1000  # MLflow's most metrics per log_batch call
_PARAMS_BATCH = 100  # and params
_LONGEST_KEY = 250  # MLflow's longest param or metric key (MAX_ENTITY_KEY_LENGTH)
_MODEL_ARTIFACTS = {_layout.BLURBS: "blurb", _layout.GRAPHS: "graph"}
_DATABASES = ("sqlite", "postgresql", "mysql", "mssql")
"""The schemes of MLflow's database stores, which mlflow-skinny lacks."""
_INSTALL = "Exporting to MLflow needs the mlflow extra: pip install 'phosjax[mlflow]'."
_FILE_STORE = "file:mlruns (with MLFLOW_ALLOW_FILE_STORE=true)"
"""A file store, as advice gives it: MLflow 3 refuses one without that variable."""


@dataclasses.dataclass(frozen=True)
class Exported:
    """What `export_mlflow` did: ``{cell_id: run_id}`` of new runs, the cells it skipped
    (already exported, not finished, or finished without their result rows, or those of
    some of their steps: their part files, or some, removed or lost) and ``{run_id: cell_id}``
    of the runs an export cut short had left unfinished, which it deleted, in the
    experiment of that id and name."""

    experiment_id: str
    runs: dict[str, str]
    already_exported: list[str]
    unfinished: list[str]
    experiment: str = ""
    cut_short: dict[str, str] = dataclasses.field(default_factory=dict)
    without_rows: list[str] = dataclasses.field(default_factory=list)


def _no_path_steps(key: str) -> str:
    """``key`` with each segment MLflow would read as a step of a path (``.``, ``..``, an
    empty one), which makes it refuse the key, turned into ``_`` for each of its
    characters (``_`` for an empty one).

    Examples:
      >>> _no_path_steps("knob/re:._/."), _no_path_steps("reg/../x//y/")
      ('knob/re:._/_', 'reg/__/x/_/y/_')
    """
    return "/".join("_" * max(len(s), 1) if s in ("", ".", "..") else s for s in key.split("/"))


def mlflow_keys(names: Sequence[str], longest: int = _LONGEST_KEY) -> dict[str, str]:
    """``{column: MLflow param or metric key}``: a character MLflow refuses in a key (it
    takes letters, digits, ``_-. :/``) becomes ``_``, as does a segment it would read as a
    step of a path (`_no_path_steps`: a knob selector ``re:.*/.``), a key longer than
    ``longest`` (MLflow's most, 250) is cut to fit ``_`` and a digest of its column's name
    (so that it names that column beside any others: in a bench's runs exported before
    and after `add_models` brought a column sharing its start), and a key two columns
    would share gets ``_2``, ``_3``... appended (within ``longest``).

    Examples:
      >>> mlflow_keys(["lr", "knob/**/T", "knob/?*/T"])
      {'lr': 'lr', 'knob/**/T': 'knob/__/T', 'knob/?*/T': 'knob/__/T_2'}
      >>> mlflow_keys(["knob/re:.*/.", "reg/l2/re:../.."])
      {'knob/re:.*/.': 'knob/re:._/_', 'reg/l2/re:../..': 'reg/l2/re:../__'}
      >>> mlflow_keys(["aux/balance(1)/kl", "aux/balance(2)/kl"], longest=16)
      {'aux/balance(1)/kl': 'aux/bal_3a937bdf', 'aux/balance(2)/kl': 'aux/bal_11e71d40'}
    """
    keys: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        key = base = _no_path_steps(re.sub(r"[^\w\-. :/]", "_", name, flags=re.ASCII))
        if len(base) > longest:
            key = base = f"{base[: longest - 9]}_{digest(name)[:8]}"
        count = 1
        while key in taken:
            count += 1
            suffix = f"_{count}"
            key = base[: longest - len(suffix)] + suffix
        keys[name] = key
        taken.add(key)
    return keys


def _unset(value: Any) -> bool:
    """Whether a cell's ``cells.parquet`` value is null: a hyperparameter the cell does not
    have (another model's knob, ``momentum`` under adam) or leaves off (``grad_clip``),
    which the cell's run does not log (rather than as ``nan``, a value).

    Examples:
      >>> _unset(None), _unset(float("nan")), _unset(0.0), _unset("nan")
      (True, True, False, False)
    """
    return value is None or (isinstance(value, float) and math.isnan(value))


def _param_text(value: Any, limit: int) -> str:
    """``str(value)``, a param's value; one longer than ``limit`` (MLflow's
    ``MAX_PARAM_VAL_LENGTH``, past which MLflow cuts a value with no error) cut to it
    here, ending in a note of its length, so that it reads as cut rather than as a value,
    and of a digest of it, so that two values differing past the cut read apart.

    Examples:
      >>> _param_text(0.001, 40), _param_text("x" * 100, 80)
      ('0.001', 'xxxxxxxxxxxxxxxxxxxxx... [cut: 100 characters, over 80, digest 9919cd30803f901a]')
    """
    text = str(value)
    if len(text) <= limit:
        return text
    note = f"... [cut: {len(text)} characters, over {limit}, digest {digest(text)}]"
    return text[: limit - len(note)] + note


def _renamed(keys: dict[str, str]) -> dict[str, str]:
    """``{key: column}`` of the columns `mlflow_keys` gave another key."""
    return {key: name for name, key in keys.items() if key != name}


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _tagged_runs(
    client: Any, experiment_id: str, tag: str, value: str, finished: bool
) -> Iterator[Any]:
    """The experiment's runs whose ``tag`` is ``value``, finished (or, ``finished`` False,
    not), page by page."""
    token = None
    status = "=" if finished else "!="
    query = f"attributes.status {status} 'FINISHED' and tags.`{tag}` = '{value}'"
    while True:
        page = client.search_runs([experiment_id], query, max_results=1000, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def _exported_cells(client: Any, experiment_id: str, created: str, config_hash: str) -> set[str]:
    """Cell ids with a finished run of this bench in the experiment: tagged with its
    creation time, or, exported before that tag existed, with its config hash."""
    runs = list(_tagged_runs(client, experiment_id, TAG_CREATED, created, finished=True))
    runs += [
        run
        for run in _tagged_runs(client, experiment_id, TAG_CONFIG, config_hash, finished=True)
        if TAG_CREATED not in run.data.tags
    ]
    return {run.data.tags.get(TAG_CELL) for run in runs}


def _experiment_id(client: Any, name: str, tracking_uri: str) -> str:
    """The id of the experiment ``name``, made when missing; a deleted one (runs cannot be
    made in it, nor another of its name) is an `MlflowException` saying how to restore it."""
    from mlflow.entities import LifecycleStage
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is None:
        return str(client.create_experiment(name))
    found_id = str(found.experiment_id)
    if found.lifecycle_stage == LifecycleStage.DELETED:
        restore = f"MLFLOW_TRACKING_URI={tracking_uri} mlflow experiments restore -x {found_id}"
        raise MlflowException(
            f"the MLflow experiment {name!r} (id {found_id}) is deleted: restore it "
            f"({restore}) or name another with --experiment."
        )
    return found_id


def _metrics(rows: Any, keys: dict[str, str], timestamp: int) -> list[Any]:
    """MLflow metrics ``<split>/<key>`` at every step of one cell's result rows, the
    ``{metric column: key}`` of ``keys``."""
    from mlflow.entities import Metric

    logged = []
    for split, by_split in rows.groupby("split", sort=True):
        steps = by_split["step"].tolist()
        for metric, name in keys.items():
            # A null was never recorded (an aux loss the model lacks); a NaN is a value.
            recorded = by_split[metric].notna().to_numpy(dtype=bool)
            values = by_split[metric].to_numpy(dtype=float, na_value=np.nan)
            key = f"{split}/{name}"
            logged += [
                Metric(key, float(v), timestamp, int(s))
                for s, v, r in zip(steps, values, recorded, strict=True)
                if r
            ]
    return logged


def _diverged_at(rows: Any) -> dict[str, str]:
    """``{TAG_DIVERGED_AT: step}`` of one cell's result rows: the first step of a row
    whose ``diverged`` is true; empty when none is (or the bench does not record it).

    Examples:
      >>> import pandas as pd
      >>> rows = pd.DataFrame({"step": [1, 2, 3, 3], "diverged": [False, True, True, None]})
      >>> _diverged_at(rows), _diverged_at(rows.iloc[:1]), _diverged_at(rows[["step"]])
      ({'phosjax.diverged_at': '2'}, {}, {})
    """
    if _layout.DIVERGED not in rows:
        return {}
    steps = rows["step"][rows[_layout.DIVERGED].eq(True)]
    return {TAG_DIVERGED_AT: str(steps.min())} if len(steps) else {}


def _rows_lost(rows: Any, steps: Any) -> bool:
    """Whether a finished cell's result ``rows`` lack part files: the runner writes a
    train row at every step from 1 to ``steps``, its group's (status.json's; not an int:
    unknown, to its last train row), in the part file of the segment that trained it
    (beside the test rows evaluated there), so each part lost leaves steps without one.

    Examples:
      >>> import pandas as pd
      >>> rows = pd.DataFrame({"split": ["train", "test", "train"], "step": [1, 2, 2]})
      >>> _rows_lost(rows, 2), _rows_lost(rows.iloc[:2], 2), _rows_lost(rows.iloc[:0], None)
      (False, True, True)
      >>> def train(*steps):
      ...     return pd.DataFrame({"split": "train", "step": list(steps)})
      >>> _rows_lost(train(1, 2, 3, 4, 5, 6), 6), _rows_lost(train(1, 2, 5, 6), 6)
      (False, True)
      >>> _rows_lost(train(4, 5, 6), 6), _rows_lost(train(1, 2, 3), 6)  # first, last part lost
      (True, True)
      >>> _rows_lost(train(11), 11)  # all lost but its last part, of one step
      True
      >>> _rows_lost(train(2, 4), 4), _rows_lost(train(1, 3, 5, 7, 8), 8)  # parts of one step
      (True, True)
      >>> _rows_lost(train(1, 2, 4), "?"), _rows_lost(train(1, 2, 3), "?")  # steps unknown
      (True, False)
    """
    trained = rows.loc[rows["split"] == "train", "step"]
    if trained.empty:
        return True
    last = steps if isinstance(steps, int) else trained.max()
    return not np.isin(np.arange(1, last + 1), trained).all()


def _links_out_refused(bench: BenchFiles) -> None:
    """Raises `OutsideBenchError` naming a status or part file of ``bench`` that links out
    of it, which the viewer's reads skip: an export would take its cells for unfinished, or
    their rows for lost."""
    parts = _layout.part_files(bench.path(_layout.RESULTS))
    for relative in [
        *_layout.per_process_paths(bench.root, _layout.STATUS),
        *(f"{_layout.RESULTS}/{part.name}" for part in parts),
    ]:
        bench.path(relative)


def _artifacts(bench: BenchFiles, model_id: str) -> list[tuple[str, str]]:
    """``(file, artifact folder)`` of the model's blurb and graph and the bench's config;
    `OutsideBenchError` for one that links out of the bench."""
    files = [(bench.named(f, model_id, ".json"), a) for f, a in _MODEL_ARTIFACTS.items()]
    files += [(bench.path(relative), "bench") for relative in (_layout.CONFIG, _layout.ENV)]
    return [(str(path), folder) for path, folder in files if path.is_file()]


def _local_store(tracking_uri: str) -> pathlib.Path | None:
    """The folder of a file store (a ``file:`` URI or a plain path), else None.

    Examples:
      >>> _local_store("file:/tmp/mlruns"), _local_store("runs/mlruns")
      (PosixPath('/tmp/mlruns'), PosixPath('runs/mlruns'))
      >>> _local_store("http://localhost:5000") is None
      True
    """
    parsed = urllib.parse.urlparse(tracking_uri)
    if parsed.scheme not in ("", "file"):
        return None
    return pathlib.Path(urllib.request.url2pathname(parsed.path))


def _not_a_server_url(tracking_uri: str) -> str | None:
    """Why ``tracking_uri``, a server's (``http(s)://``), names no server: it has no host,
    or a port that is no number from 0 to 65535; None where it names one, or for a store
    that is no server.

    Examples:
      >>> _not_a_server_url("http://localhost:99999"), _not_a_server_url("http://")
      ('Port out of range 0-65535', 'no host')
      >>> _not_a_server_url("http://localhost:5000"), _not_a_server_url("file:mlruns")
      (None, None)
    """
    parsed = urllib.parse.urlparse(tracking_uri)
    if parsed.scheme not in ("http", "https"):
        return None
    try:
        parsed.port  # noqa: B018 (reading it checks it)
    except ValueError as error:
        return str(error)
    return None if parsed.hostname else "no host"


def _unreachable(tracking_uri: str, timeout: float = 10.0) -> str | None:
    """Why the tracking server ``tracking_uri`` (``http(s)://``) cannot be reached (no
    connection, an unknown host, no answer in ``timeout`` seconds); None if it answers, or
    for a store that is no server. MLflow retries such a server for minutes before it
    says so.

    Examples:
      >>> _unreachable("file:mlruns") is None
      True
    """
    if urllib.parse.urlparse(tracking_uri).scheme not in ("http", "https"):
        return None
    import requests  # MLflow's: it honours the same proxies

    try:
        requests.head(tracking_uri, timeout=timeout)
    except requests.Timeout:
        return f"no answer in {timeout:g} s"
    except requests.ConnectionError as error:
        reason = re.search(r"\[Errno -?\d+\] ([^'\"()]+)", str(error))
        return reason[1].strip() if reason else str(error)
    return None


def export_mlflow(
    directory: str, tracking_uri: str, experiment: str | None = None, progress: bool = False
) -> Exported:
    """Logs every finished cell of the bench in ``directory`` as an MLflow run.

    Args:
      directory: the bench directory.
      tracking_uri: MLflow's tracking URI (``http://host:5000``, ``sqlite:///mlflow.db``,
        ``file:/path/mlruns``).
      experiment: the experiment's name (made when missing); the bench's name by default.
      progress: show a progress bar of the cells on stderr (``export`` shows it).

    Returns:
      An `Exported`: the new runs by cell id, the cells skipped (already exported, not
      finished, or without some of their rows) and the half-logged runs deleted.

    Examples:
      A bench trained with `phosjax.bench.run` exported to a local file store (run in
      docs/results.md#exporting-to-mlflow):

      >>> done = export_mlflow("runs/example", "file:mlruns")  # doctest: +SKIP
      >>> len(done.runs), done.unfinished  # doctest: +SKIP
      (24, [])
    """
    from mlflow.entities import Param
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    try:
        bench = BenchFiles(directory)  # all read before MLflow: a damaged file changes nothing
    except NotABenchError:  # the viewer's words ("view that one"), which also takes morph runs
        said = starting(directory) or _layout.not_a_bench(directory, use="export")
        raise NotABenchError(said) from None
    if not _layout.is_bench(bench.root):  # what the viewer also reads: a morph run
        raise NotABenchError(
            f"{str(directory)!r} is not a bench: it has no {_layout.MARKER} (a run of "
            "`python -m phosjax.morph`, which has no cells to export)."
        )
    store = _local_store(tracking_uri)
    if store is not None:
        inside = store.resolve() if _layout.is_bench(store) else _layout.enclosing_bench(store)
        if inside is not None:
            where = "is the bench" if inside == store.resolve() else "is inside the bench"
            raise MlflowException(
                f"the MLflow store {tracking_uri} {where} {str(inside)!r}: MLflow would write "
                "its experiments among the bench's files; pass a folder outside every bench "
                "(--mlflow file:mlruns)."
            )
    if (why := _not_a_server_url(tracking_uri)) is not None:
        raise MlflowException(
            f"the MLflow tracking URI {tracking_uri} names no server ({why}): write "
            "http://HOST:PORT, e.g. --mlflow http://localhost:5000."
        )
    if (why := _unreachable(tracking_uri)) is not None:
        raise MlflowException(
            f"cannot reach the MLflow tracking server {tracking_uri} ({why}): start it "
            "(mlflow server --port PORT) or pass the URI of one that runs with --mlflow."
        )
    marker = bench.json(_layout.MARKER)
    if not isinstance(marker, dict):  # its creation time tells this bench's runs apart
        raise BrokenFileError(
            f"cannot read {_layout.MARKER}: it {not_an_object(marker, MARKER_HINT)}"
        )
    created, config_hash = marker.get("created"), str(marker.get("config_hash", ""))
    if not isinstance(created, str) or not created.strip():  # "": any such bench's runs
        raise BrokenFileError(
            f"cannot read {_layout.MARKER}: its 'created' is {created!r}, not the bench's "
            "creation time, which tells its MLflow runs from another bench's; continue the "
            "bench once (python -m phosjax.bench.new --dir DIR), which records one, "
            "then export it."
        )
    _links_out_refused(bench)  # before any is read: the viewer's reads skip them
    steps = bench.progress()  # each cell's
    metrics = bench.metrics()
    results = bench.results(metrics)
    metric_keys = mlflow_keys(metrics, _LONGEST_KEY - len("train/"))  # <split>/<key>
    cells = bench.cells()
    param_keys = mlflow_keys([str(c) for c in cells.columns])  # every cell's columns
    if odd := [m for m in cells["model_id"] if not _layout.PLAIN_NAME.fullmatch(str(m))]:
        raise BrokenFileError(  # a blurb's file would be looked for outside the bench
            f"cannot read {_layout.CELLS}: its model_id {odd[0]!r} is no file name (a "
            f"model's blurb is blurbs/<model_id>.json); {hint(_layout.CELLS)}"
        )
    # export_locked: before it deletes another's unfinished runs
    with export_locked(bench.root), contextlib.ExitStack() as using:
        try:
            client = MlflowClient(tracking_uri)
            experiment = experiment or bench.name
            experiment_id = _experiment_id(client, experiment, tracking_uri)
        except OSError as error:  # a file: store that is a file, or cannot be made or written
            raise MlflowException(f"cannot use the MLflow store {tracking_uri}: {error}") from error
        using.enter_context(_system_errors_unwrapped(tracking_uri))  # the store in use
        done = _exported_cells(client, experiment_id, created, config_hash)
        exported = Exported(experiment_id, {}, [], [], experiment)
        # Those of its creation time alone: one tagged with its config hash alone may be
        # another bench's of the same config (an export before that tag existed).
        for run in _tagged_runs(client, experiment_id, TAG_CREATED, created, finished=False):
            client.delete_run(run.info.run_id)  # beside its cell's whole run, or before it
            exported.cut_short[run.info.run_id] = run.data.tags.get(TAG_CELL, "")
        to_export = []  # the bar counts these alone: skipped cells made its time left short
        for cell in cells.to_dict("records"):
            cell_id = cell["cell_id"]
            if cell_id in done:
                exported.already_exported.append(cell_id)
                continue
            if not steps.get(cell_id, {}).get("finished"):
                exported.unfinished.append(cell_id)
                continue
            rows = results[results["cell_id"] == cell_id]
            # a run of the rows left would stand for the cell, never exported again once
            # restored
            if _rows_lost(rows, steps[cell_id]["steps"]):
                exported.without_rows.append(cell_id)
                continue
            to_export.append((cell, rows))
        # found now: one linking out of the bench is refused before any cell is exported
        artifacts = {cell["model_id"]: _artifacts(bench, cell["model_id"]) for cell, _ in to_export}
        with Bar(  # a cell's run takes tenths of a second, a server's more
            to_export,
            "export",
            unit="cell",
            disable=not (progress and to_export),
        ) as shown:  # closed before an error's line
            for cell, rows in shown:
                cell_id = cell["cell_id"]
                tags = {
                    TAG_CELL: cell_id,
                    TAG_BENCH: bench.name,
                    TAG_CREATED: created,
                    TAG_CONFIG: config_hash,
                }
                given = {str(k): v for k, v in cell.items() if not _unset(v)}
                tags |= _diverged_at(rows)
                recorded = {m: k for m, k in metric_keys.items() if rows[m].notna().any()}
                for tag, renamed in (
                    (TAG_PARAM_NAMES, _renamed({k: param_keys[k] for k in given})),
                    (TAG_METRIC_NAMES, _renamed(recorded)),
                ):
                    if renamed:
                        tags[tag] = json.dumps(renamed)
                run_name = f"{cell['model']}-{cell_id}"
                run_id = client.create_run(experiment_id, tags=tags, run_name=run_name).info.run_id
                try:
                    params = [
                        Param(param_keys[k], _param_text(v, MAX_PARAM_VAL_LENGTH))
                        for k, v in given.items()
                    ]
                    for batch in _chunks(params, _PARAMS_BATCH):
                        client.log_batch(run_id, params=batch)
                    for batch in _chunks(_metrics(rows, recorded, int(time.time() * 1e3)), _BATCH):
                        client.log_batch(run_id, metrics=batch)
                    for path, folder in artifacts[cell["model_id"]]:
                        client.log_artifact(run_id, path, folder)
                except BaseException:
                    client.delete_run(run_id)  # no half-logged run stays; the next export redoes it
                    raise
                client.set_terminated(run_id)
                exported.runs[cell_id] = run_id
    return exported


@contextlib.contextmanager
def _system_errors_unwrapped(tracking_uri: str) -> Iterator[None]:
    """Within it, an `MlflowException` wrapping the OSError of a full disk (`NO_ROOM`) or
    of an access refused (`NOT_WRITABLE`), as MLflow's file store wraps them, raises that
    OSError (naming the store where it names no file), as MLflow's other writes
    (``log_artifact``) raise theirs: ``export`` says what makes room or allows it, that the
    cells exported so far stay and the command that exports the others (`entry_point`)."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as error:
        system = error.__cause__ or error.__context__
        if isinstance(system, OSError) and system.errno in NOT_WRITTEN:
            raise naming(system, system.filename or tracking_uri) from error
        raise


def _cut_short(runs: dict[str, str]) -> str:
    """The deleted runs ``{run_id: cell_id}``, each named by its cell and run id.

    Examples:
      >>> _cut_short({"8f2a": "c1", "77b0": "c2"})
      'cell c1: run 8f2a, cell c2: run 77b0'
    """
    return listing([f"cell {cell}: run {run}" for run, cell in runs.items()], 3)


@entry_point(
    then_command(
        "phosjax.bench.export",
        "the cells exported so far stay in MLflow (a half-logged run is deleted); the same "
        "command exports the others, skipping them:",
    )
)
def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (2 for bad input)."""
    parser = ArgParser(
        prog="python -m phosjax.bench.export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dir", required=True, help="the bench directory (runs/NAME)")
    parser.add_argument(
        "--mlflow",
        required=True,
        metavar="URI",
        help="MLflow's tracking URI: a server (http://localhost:5000), sqlite:///mlflow.db "
        f"(the full mlflow package) or {_FILE_STORE}",
    )
    parser.add_argument("--experiment", help="experiment name (default: the bench's name)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if not args.mlflow.strip():  # MLflow would take its default store in the working dir
        usage_error(
            parser,
            f"--mlflow {args.mlflow!r} is empty; give MLflow's tracking URI, e.g. --mlflow "
            f"http://localhost:5000 or --mlflow {_FILE_STORE}",
        )
    if args.experiment is not None and not args.experiment.strip():
        usage_error(
            parser,
            f"--experiment {args.experiment!r} is empty; give the experiment's name, or leave "
            "--experiment out for the bench's name",
        )
    if args.experiment is not None and args.experiment != args.experiment.strip():
        usage_error(  # another experiment than the one it looks like, hard to find
            parser,
            f"--experiment {args.experiment!r} begins or ends with whitespace, which MLflow "
            f"keeps in the name; write --experiment {args.experiment.strip()!r}",
        )
    try:
        import mlflow.exceptions
    except ImportError:
        print(f"error: {_INSTALL}", file=sys.stderr)
        return 2
    try:
        exported = export_mlflow(args.dir, args.mlflow, args.experiment, not args.no_progress)
    except NotABenchError as error:  # a BrokenFileError is said by `entry_point`
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OutsideBenchError as error:  # the viewer's refusal, read as export's
        copy = f"COPY/{shlex.quote(pathlib.Path(args.dir).resolve().name)}"  # as BenchFiles.name
        print(
            f"error: cannot export {args.dir}: {error} An export reads only the files inside "
            "the bench, as the viewer does: it sends them to an MLflow store others may read, "
            "and a bench may come from anyone. Copy the bench with its links followed, under "
            "its name, which names its runs' bench and experiment (mkdir -p COPY && cp -rL "
            f"{shlex.quote(as_argument(args.dir))} {copy}), and export the copy (--dir {copy}).",
            file=sys.stderr,
        )
        return 2
    except mlflow.exceptions.MlflowException as error:
        message = str(error).strip()
        if args.mlflow not in message:  # MLflow's own words: the store they are about
            message = f"--mlflow {args.mlflow}: {message}"
        scheme = urllib.parse.urlparse(args.mlflow).scheme
        database = scheme.partition("+")[0]  # postgresql+psycopg2: its driver after the +
        if database in _DATABASES and "unsupported URI" in message:  # skinny
            message += f" (a {database}: store needs the full mlflow package: pip install mlflow)"
        elif "unsupported URI" in message:  # MLflow's words name its model registry, unused
            message = (
                f"--mlflow {args.mlflow}: MLflow stores runs at no {scheme!r} URI; give a "
                f"tracking server (http://HOST:PORT), {_FILE_STORE} or sqlite:///mlflow.db"
            )
        print(f"error: {message}", file=sys.stderr)
        return 2
    if exported.without_rows:
        print(
            f"warning: rows missing in {str(pathlib.Path(args.dir, _layout.RESULTS))!r} for "
            f"{counted(len(exported.without_rows), 'finished cell')} "
            f"({listing(exported.without_rows, 3)}): their part files, or some of them, were "
            "removed or lost; "
            "not exported: restore them from a backup, then export again.",
            file=sys.stderr,
        )
    print(
        f"Exported {counted(len(exported.runs), 'cell')} to MLflow experiment "
        f"{exported.experiment!r} (id {exported.experiment_id}) at {args.mlflow}; "
        f"{len(exported.already_exported)} "
        f"{'was' if len(exported.already_exported) == 1 else 'were'} already there, "
        f"{len(exported.unfinished)} not finished yet."
        + (
            f" Deleted {counted(len(exported.cut_short), 'half-logged run')} that an "
            f"export cut short (killed) had left ({_cut_short(exported.cut_short)})."
            if exported.cut_short
            else ""
        )
    )
    return 0


if __name__ == "__main__":
    exit_process(main())
