"""`run`: plan a bench, train what is missing, write everything; `add_models_to`."""

import contextlib
import dataclasses
import functools
import math
import numbers
import os
import pathlib
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import pandas as pd
import pyarrow as pa

from phosjax._chunks import even_chunk
from phosjax._listing import listing
from phosjax.bench import _layout
from phosjax.bench._config import BenchConfig, BenchError, ModelEntry
from phosjax.bench._directory import (
    agree,
    agree_on_arguments,
    agree_on_bench,
    agree_on_directory,
    agree_on_folder,
    check_processes,
    choose_config_together,
    differences_from_process_0,
    gather,
    in_every_process,
    locked,
    open_bench,
    read_bench_json,
    recorded_split,
    write_meta,
)
from phosjax.bench._imports import import_for_bench, planned_models
from phosjax.bench._interrupt import unread_at_end
from phosjax.bench._plan import (
    DataShape,
    Plan,
    check_config,
    check_datasets,
    check_distinct_datasets,
    check_model_sizes,
    check_models,
    dataset_versions,
    former_cell_ids,
    given_datasets,
    plan,
    with_former_ids,
)
from phosjax.bench._profile import MemorySampler, ProfileFiles, RunClock
from phosjax.bench._progress import TrainingBar
from phosjax.bench._reading import STATUS_HINT, UNREADABLE
from phosjax.bench._store import (
    NOT_WRITTEN,
    as_table,
    cells_schema,
    kept_schema,
    part_schemas,
    read_parts,
    remove_stale_temporaries,
    results_schema,
    widen_parts,
    write_json,
    write_text,
)
from phosjax.bench._summary import dir_command, summary_text
from phosjax.bench._train import GroupJob, restored_step, train_group
from phosjax.core._blurb import blurb_of_init
from phosjax.data import ArrayDataset
from phosjax.data._load import absolute_data_dir
from phosjax.models import registered_models


def chunk_size(config: BenchConfig, steps: int) -> int:
    """Steps per dispatch: ``config.chunk_steps``, else the largest divisor up to 250 of
    the evaluation and checkpoint intervals (of ``steps`` when both are 0), so that every
    chunk has one length (one compile, and one more for a last, shorter chunk). When that
    divisor is small (an interval of 257 has only 1), 250 instead: a few lengths cost a
    few compiles, where one step per dispatch would cost every step a dispatch.

    Examples:
      >>> from phosjax.bench import BenchConfig
      >>> def size(steps, eval_every, checkpoint_every):
      ...     config = BenchConfig(eval_every=eval_every, checkpoint_every=checkpoint_every)
      ...     return chunk_size(config, steps)
      >>> size(1000, 100, 500), size(1001, 100, 500), size(257, 0, 0), size(600, 600, 0)
      (100, 100, 250, 200)
    """
    if config.chunk_steps is not None:
        return config.chunk_steps
    intervals = [i for i in (config.eval_every, config.checkpoint_every) if i]
    return even_chunk(math.gcd(*intervals) if intervals else steps)


def jobs(
    plan_: Plan, process: tuple[int, int], split: str | None = _layout.SPLIT_PLAN
) -> list[GroupJob]:
    """The groups this process trains, each with its share of their cells, by the bench's
    ``split`` (`recorded_split`). `_layout.SPLIT_PLAN`: the plan's cells are numbered
    across its groups, in plan order, and process ``i`` of ``n`` takes those whose number
    is ``i`` mod ``n``; so each process trains at most one cell more than any other, and a
    group of fewer than ``n`` cells goes to that many processes. None (a bench made before
    the split was recorded): every n-th cell of each group from its i-th, so a group of
    fewer than ``n`` cells leaves the last processes idle on it.

    Examples:
      >>> from phosjax.bench import BenchConfig, plan
      >>> from phosjax.data import random_dataset
      >>> config = BenchConfig.from_dict({
      ...     "models": ["logreg", "mlp"],
      ...     "datasets": ["toy"],
      ...     "seeds": 1,
      ...     "grid": {"batch_size": 16},
      ... })
      >>> planned = plan(config, {"toy": random_dataset("toy", (8,), 3)})  # 2 groups of 1
      >>> [len(jobs(planned, (i, 2))) for i in range(2)]
      [1, 1]
      >>> [len(jobs(planned, (i, 2), split=None)) for i in range(2)]
      [2, 0]
    """
    index, count = process
    out = []
    first = 0  # the number of the group's first cell
    for group in plan_.groups:
        start = (index - first) % count if split == _layout.SPLIT_PLAN else index
        cells = group.cells[start::count]
        first += len(group.cells)
        if cells:
            key = group.group_id + _layout.process_suffix(process)
            out.append(GroupJob(key, tuple(cells)))
    return out


def _per_process(path: pathlib.Path, process: tuple[int, int]) -> pathlib.Path:
    """``path``, or ``<stem>.p<i>of<n><suffix>`` when several processes share a bench."""
    return path.with_name(_layout.process_name(path.name, process))


def check_process(process: tuple[int, int]) -> None:
    """Raises `BenchError` unless ``process`` is ``(index, count)``, two whole numbers with
    ``0 <= index < count``.

    Examples:
      >>> check_process((2, 2))
      Traceback (most recent call last):
      phosjax.bench._errors.BenchError: process=(2, 2) is not (index, count) with 0 <= ...
    """
    pair = isinstance(process, tuple | list) and len(process) == 2
    whole = pair and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in process
    )
    if not whole or not 0 <= process[0] < process[1]:
        raise BenchError(
            f"process={process!r} is not (index, count) with 0 <= index < count: process i "
            "of n sharing a bench passes (i, n), as (jax.process_index(), "
            "jax.process_count()) are; or pass none to take those."
        )


def _write_blurbs(root: pathlib.Path, plan_: Plan, flops: bool) -> None:
    """Writes ``blurbs/<model_id>.json`` of each model, and ``graphs/<model_id>.json`` of
    each that draws its graph (a `phosjax.models.graph.GraphModel`, or a module with the
    same ``to_json(x)``); files already there are kept. A model `blurb` refuses (a note
    that a lifted transform dropped) is a `BenchError` naming it."""
    for model_id, config in plan_.models().items():
        blurb_path = root / _layout.BLURBS / f"{model_id}.json"
        graph_path = root / _layout.GRAPHS / f"{model_id}.json"
        model = config.build()
        x = jnp.zeros((1, *config.input_shape), jnp.float32)
        if not blurb_path.is_file():
            # init in the blurb's program: params no recorded value reads are never made
            init = functools.partial(model.init, jax.random.key(0), x)
            try:
                summary = blurb_of_init(model, init, x, measure_latency=False, flops=flops)
            except ValueError as error:  # a note a lifted transform dropped, a name with '/'
                raise BenchError(f"The blurb of model {model_id!r}: {error}") from error
            write_text(blurb_path, summary.to_json())
        if hasattr(model, "to_json") and not graph_path.is_file():
            write_text(graph_path, model.to_json(x))


def _check_imports(imports: Sequence[str]) -> None:
    """Raises `BenchError` when ``imports`` is one string: its letters are no modules."""
    if isinstance(imports, str):
        raise BenchError(
            f"imports must be a list of module names, got the string {imports!r}; write "
            f"[{imports!r}]."
        )


def run(
    config: BenchConfig | None,
    directory: str | os.PathLike,
    *,
    resume: bool = False,
    force: bool = False,
    datasets: Mapping[str, ArrayDataset] | None = None,
    process: tuple[int, int] | None = None,
    progress: bool = True,
    imports: Sequence[str] = (),
) -> pd.DataFrame:
    """Plans ``config``, trains every cell not yet trained in ``directory``, writes it all.

    Running it again on the same directory and config continues where it stopped (from
    each group's last checkpoint); finished groups are skipped.

    Args:
      config: the bench (None: the one stored in ``directory``).
      directory: the bench directory (see `phosjax.bench._layout`).
      resume: continue the bench in ``directory`` under its stored config.
      force: if ``directory`` holds another config, move it aside (saying where, on
        stderr) and start over.
      datasets: data sets by name, instead of loading them.
      process: ``(index, count)`` of this process among those sharing the bench
        (default: `jax.process_index`, `jax.process_count`).
      progress: show a progress bar and print the summary (among processes sharing the
        bench, process 0 prints it; the others say so in one line).
      imports: modules to import first, to register models (the command line's
        ``--import``); those that registered a model of the bench are recorded in its
        ``bench.json``. The modules a bench in ``directory`` recorded are imported too,
        so ``run(None, directory)`` continues a bench of one's own models as ``new
        --dir`` does (`phosjax.bench._imports.import_for_bench`).

    Returns:
      The results this directory holds, as one frame (``pandas.read_parquet``); every
      process returns once all have trained their shares.

    Raises:
      BenchError: bad config or directory, both ``resume`` and ``force``, ``imports``
        given as one string, a bench started with another number of processes, a
        ``process`` whose index is not in ``range(count)``, or processes given different
        arguments (nothing is written then).

    Examples:
      >>> import tempfile
      >>> from phosjax.bench import BenchConfig
      >>> from phosjax.data import random_dataset
      >>> data = random_dataset("toy", (8,), 3)
      >>> config = BenchConfig.from_dict({
      ...     "models": ["logreg"],
      ...     "datasets": ["toy"],
      ...     "seeds": 2,
      ...     "strategy": "vmap",
      ...     "grid": {"batch_size": 16, "steps": 5},
      ... })
      >>> with tempfile.TemporaryDirectory() as directory:
      ...     results = run(config, directory, datasets={"toy": data}, progress=False)
      ...     again = run(config, directory, datasets={"toy": data}, progress=False)
      >>> results.groupby(["seed", "split"]).size().to_dict()  # 5 steps, then the test
      {(0, 'test'): 1, (0, 'train'): 5, (1, 'test'): 1, (1, 'train'): 5}
      >>> again.equals(results)  # a finished bench is not trained again
      True
    """
    clock = RunClock()
    if config is not None:
        check_config(config, "or None")
        config = dataclasses.replace(config, data_dir=absolute_data_dir(config.data_dir))
    _layout.check_directory(directory, BenchError)
    if resume and force:  # else resume won, force silently dropped
        raise BenchError(
            "resume and force contradict each other: resume continues the bench in "
            "directory under its stored config, force moves it aside and starts over; pass one."
        )
    if process is not None:  # before anything is moved or written
        check_process(process)
    _check_imports(imports)
    # before any branch: a process whose import fails alone leaves the others waiting
    agree_on_arguments(directory, config, resume=resume, force=force, imports=imports)
    needed = lambda: import_for_bench(directory, imports, planned_models(directory, config, force))
    in_every_process(needed, "import the bench's modules")  # one host may lack one
    root = pathlib.Path(directory)
    if datasets is None and config is not None and starts_anew(root, config, resume, force):
        new = config  # checked before an old bench moves aside; one made so continues
        in_every_process(lambda: check_distinct_datasets(new), "check the bench's data sets")
    plans: dict[str, Plan] = {}  # with force: planned before an old bench moves aside

    def check(given: BenchConfig) -> None:
        if _config_hash(root) != given.digest():  # a bench of this config stays, continued
            plans[given.digest()] = plan(given, datasets, clock)

    config, _ = choose_config_together(root, config, resume=resume, force=force, check=check)
    seen = _config_hash(root)  # what was chosen on; another run may write there until locked
    planned = plans.get(config.digest())
    if planned is not None:  # a bench of another hash (an older phosjax's) keeps its cell ids
        planned = _planned(root, config, datasets, clock, planned)[0]
    return _execute(config, root, datasets, process, progress, planned, seen, imports, clock)


def starts_anew(root: pathlib.Path, config: BenchConfig, resume: bool, force: bool) -> bool:
    """Whether running ``config`` in ``root`` starts a bench (as `choose_config` does):
    none is there, or ``force`` moves aside one of another config; not where one continues."""
    if resume:
        return False
    if not _layout.is_bench(root):
        return True
    return force and bool(open_bench(root)[0].differences(config))


def _config_hash(root: pathlib.Path) -> str | None:
    """The config hash that the bench in ``root`` records (None: no bench there)."""
    if not _layout.is_bench(root):
        return None
    return read_bench_json(root / _layout.MARKER).get("config_hash")


def _check_unchanged(root: pathlib.Path, seen: str | None) -> None:
    """Raises `BenchError` unless the bench in ``root`` records the config hash ``seen``
    (None: no bench), as when this run chose its config: another run that wrote (or
    moved) a bench there while this one planned must not have it overwritten with this
    run's config, nor continued under it."""
    now = _config_hash(root)
    if now != seen:
        was, found = (f"config {h}" if h else "no bench" for h in (seen, now))
        raise BenchError(
            f"another run changed {str(root)!r} while this one was starting (it held {was}, "
            f"now {found}); nothing was written. Run the command again: it then sees the "
            "bench there now."
        )


def _checked_versions(root: pathlib.Path, config: BenchConfig) -> dict[str, str]:
    """The full TFDS name, with its version, that each of ``config``'s data sets reads
    (`dataset_versions`); raises `BenchError` where the bench in ``root`` recorded another
    (a newer version prepared since): its cells trained on that one, and its results would
    mix the two."""
    versions = dataset_versions(config)
    marker = read_bench_json(root / _layout.MARKER) if _layout.is_bench(root) else {}
    recorded = marker.get(_layout.DATASETS_KEY)
    recorded = recorded if isinstance(recorded, dict) else {}
    changed = [name for name, now in versions.items() if recorded.get(name, now) != now]
    if not changed:
        return versions
    name = changed[0]
    was, now = recorded[name], versions[name]
    raise BenchError(
        f"data set {name!r} now reads {now}, but the bench in {str(root)!r} trained its cells "
        f"on {was} ({_layout.MARKER} records it): continued, its results would mix the two. "
        f"Continue it where {name!r} reads {was}: give a data dir (--data_dir) where {was} "
        f"is the newest version of {name!r}, or move {now} out of its data dir; or train "
        f"{now} in a new bench (datasets: [{now}])."
    )


def _status(root: pathlib.Path, process: tuple[int, int]) -> dict[str, Any]:
    """This process's ``status.json`` (no group yet before its first).

    Raises:
      BenchError: it cannot be read, or holds no ``{"groups": {group_id: {"cells":
        [...], ...}}}`` (its ``cells`` a list of cell ids, where there).
    """
    path = _per_process(root / _layout.STATUS, process)
    if not path.is_file():
        return {"groups": {}}
    status = read_bench_json(path, STATUS_HINT)
    groups = status.get("groups")
    entries = groups.values() if isinstance(groups, dict) else [None]
    if not all(map(_layout.group_status, entries)):
        raise BenchError(
            f'{str(path)!r} does not hold the {{"groups": {{group_id: {{"cells": [...], '
            f"...}}}}}} object phosjax writes there; {STATUS_HINT}"
        )
    return status


def _unfinished(mine: Sequence[GroupJob], status: Mapping[str, Any]) -> list[GroupJob]:
    """The jobs ``status`` does not record as finished."""
    return [j for j in mine if not status["groups"].get(j.key, {}).get("finished")]


def _execute(
    config: BenchConfig,
    root: pathlib.Path,
    datasets: Mapping[str, ArrayDataset] | None,
    process: tuple[int, int] | None,
    progress: bool,
    planned: Plan | None,
    seen: str | None,
    imports: Sequence[str],
    clock: RunClock,
) -> pd.DataFrame:
    """Trains what ``config`` (planned: ``planned``, with the bench's cell ids, `_planned`)
    lacks in ``root``, writing it all, unless the bench there no longer records the config
    hash ``seen`` (`_check_unchanged`).
    ``clock`` times the run from its start for ``profile/phases``.

    Processes sharing the bench first agree on the config and their count, and plan it
    (when planning fails in one, all stop), then lock it, each seeing the others' locks
    (`agree_on_folder`: one folder); the others wait for process 0's metadata
    (when writing it fails, all stop). Training waits for no other process; each then
    waits for all to finish theirs (when training fails in one, all stop)."""
    given = process is not None
    process = process or (jax.process_index(), jax.process_count())
    agree(
        "configs or process counts",
        f"config {config.digest()}, {process[1]} processes",
        lambda: differences_from_process_0(config),
    )
    check_processes(root, process[1], given)
    hparams = _finished_hparams(root, config) if process[1] == 1 and planned is None else None
    if hparams is not None:  # nothing to train: no plan, no data set loaded
        return _read_finished(config, root, datasets, process, progress, seen, imports, hparams)
    plan_ = planned or _planned(root, config, datasets, clock)[0]
    versions = None  # data sets given in Python: no TFDS version to record
    if datasets is None:
        check = lambda: _checked_versions(root, config)
        versions = in_every_process(check, "check the versions of the bench's data sets")
    clock.lap("plan")
    with contextlib.ExitStack() as lock:  # one run at a time writes the bench

        def lock_unchanged() -> None:
            lock.enter_context(locked(root, process))
            _check_unchanged(root, seen)

        in_every_process(lock_unchanged, "lock the bench")
        agree_on_folder(root, process)
        remove_stale_temporaries(root)  # what a run (new, add_models) killed mid-write left
        return _write_and_train(config, root, process, progress, plan_, clock, imports, versions)


def _read_finished(
    config: BenchConfig,
    root: pathlib.Path,
    datasets: Mapping[str, ArrayDataset] | None,
    process: tuple[int, int],
    progress: bool,
    seen: str | None,
    imports: Sequence[str],
    hparams: tuple[str, ...],
) -> pd.DataFrame:
    """`_execute` of the bench in ``root`` finished under ``config`` (``hparams``: its
    hyperparameter columns, `_finished_hparams`), which needs no plan: its models, and its
    data sets' shapes where known, are checked as a plan checks them; its metadata is
    written again where its folder may be written and its disk has room (they must for a
    new ``--data_dir``); its results are read."""
    check_models(config.model_entries())  # as a plan checks them, nothing prepared
    stored = open_bench(root)[0].data_dir  # relative (an older bench): from here
    moved = absolute_data_dir(config.data_dir) != absolute_data_dir(stored)  # new --data_dir NEW
    shapes: Mapping[str, DataShape]
    if datasets is not None:
        shapes = given_datasets(config.datasets, datasets)
    elif moved:  # NEW a file, or lacking a data set: as a plan says
        shapes = check_datasets(
            config.datasets, config.data_dir, config.dataset_features, config.dataset_splits
        )
    else:
        shapes = _readable_shapes(config)
    with locked(root, process, reading=True) as unwritable:  # read-only: only read
        _check_unchanged(root, seen)
        _check_keeps_models(root, check_model_sizes(config, shapes))
        if unwritable is None:
            remove_stale_temporaries(root)
            try:
                write_meta(root, config, registered_models(), process[1], imports)
            except OSError as error:  # a full disk, a folder turned read-only (its own
                # run.lock still writable): only a new --data_dir must be recorded
                if moved or error.errno not in NOT_WRITTEN:
                    raise
        elif moved:  # its config.yaml must say where its data sets are now
            raise BenchError(
                f"cannot record --data_dir {config.data_dir!r} in "
                f"{str(root / _layout.CONFIG)!r}: {unwritable}; make the bench's folder "
                "writable to record it, or leave --data_dir out."
            )
        return _results(root, _status(root, process)["groups"], hparams, progress)


def _check_keeps_cells(root: pathlib.Path, plan_: Plan) -> None:
    """Raises `BenchError` when ``plan_`` lacks cells of the bench in ``root``, or puts
    them in other groups: their rows would stay beside those of other cells (or of the
    same cells, trained again), two configs mixed in one bench. Only a ``config.yaml``
    edited by hand (or a model whose code changed what its defaults resolve to) plans so;
    a bench's config otherwise only grows by new models (`add_models_to`). An unreadable
    ``cells.parquet`` is rewritten, as before, and so is one without a bench's marker (a
    start killed before it wrote that left it: `write_meta`)."""
    if not _layout.is_bench(root):
        return
    try:
        stored = pd.read_parquet(root / _layout.CELLS, columns=["cell_id", "group_id"])
    except UNREADABLE:
        return
    planned = {cell.row["cell_id"]: cell.row["group_id"] for cell in plan_.cells}
    moved = [c for c, g in zip(stored.cell_id, stored.group_id, strict=True) if planned.get(c) != g]
    if moved and set(moved) <= former_cell_ids(plan_):
        raise BenchError(
            f"{str(root / _layout.CONFIG)!r} plans once {len(moved)} of the bench's "
            f"{len(stored)} cells ({listing(moved, 3)}) that older phosjax trained a second "
            "time under other ids, for a models entry giving an option at its block's default "
            "(param_dtype: float32): the same model as another entry's. Finished, the bench "
            "still reads; to train more, give its config to `python -m phosjax.bench.new "
            "--config FILE --dir NEW_DIR`."
        )
    if moved:
        raise _not_as_trained(root, moved, len(stored))


def _check_keeps_models(root: pathlib.Path, model_ids: Mapping[str, set[str]]) -> None:
    """`_check_keeps_cells` of a finished bench, which is not planned: raises `BenchError`
    when a cell of a data set in ``model_ids`` (the ids its models now resolve to,
    `check_model_sizes`) has a model that is not among them, e.g. one whose code changed
    its defaults. A data set whose shape is unknown unloaded is not checked."""
    try:
        stored = pd.read_parquet(root / _layout.CELLS, columns=["cell_id", "dataset", "model_id"])
    except UNREADABLE:
        return
    rows = zip(stored.cell_id, stored.dataset, stored.model_id, strict=True)
    moved = [c for c, d, m in rows if d in model_ids and m not in model_ids[d]]
    if moved:
        raise _not_as_trained(root, moved, len(stored))


def _not_as_trained(root: pathlib.Path, moved: list[str], cells: int) -> BenchError:
    """The error that the config of the bench in ``root`` no longer plans the cells
    ``moved`` (of its ``cells``) as they were trained."""
    return BenchError(
        f"{str(root / _layout.CONFIG)!r} no longer plans {len(moved)} of the bench's "
        f"{cells} cells as they were trained ({listing(moved, 3)}): it was edited, or a "
        "model's code changed. Restore it (a bench's config only grows, by add_models); "
        "to train a changed config, give it to `python -m phosjax.bench.new --config "
        "FILE --dir NEW_DIR`."
    )


def _write_and_train(
    config: BenchConfig,
    root: pathlib.Path,
    process: tuple[int, int],
    progress: bool,
    plan_: Plan,
    clock: RunClock,
    imports: Sequence[str],
    versions: Mapping[str, str] | None,
) -> pd.DataFrame:
    """`_execute`'s writing, once this process holds its lock of the bench; ``clock``
    times its phases, written to ``profile/phases`` when this process trains a group;
    ``versions``: its data sets' (`_checked_versions`), recorded in ``bench.json``."""

    def read_parts() -> tuple[dict[pathlib.Path, pa.Schema], pa.Schema]:
        """The parts' schemas, each read once, and the columns new parts keep (those of
        older parts too); read before any widens."""
        held = part_schemas(root)
        return held, kept_schema(root, results_schema(plan_), held)

    held, schema = in_every_process(read_parts, "read the bench's part files")

    def write_metadata() -> None:
        """Process 0 writes what describes the bench; the others wait for it."""
        if process[0] == 0:
            _check_keeps_cells(root, plan_)
            cells = pd.DataFrame([c.row for c in plan_.cells])
            table = as_table(cells, cells_schema(plan_.hparam_columns))
            write_meta(root, config, registered_models(), process[1], imports, table, versions)
            # before the others drop the parts they train again
            widen_parts(root, schema, cells, held)

    split = in_every_process(lambda: recorded_split(root), "read the bench's split")
    in_every_process(write_metadata, "write the bench's metadata")
    clock.lap("write")
    status_file = _per_process(root / _layout.STATUS, process)
    status: dict[str, Any] = {"groups": {}}
    mine = jobs(plan_, process, split)
    cells = sum(len(j.cells) for j in mine)  # this process's share of the plan
    phases_file = _per_process(root / _layout.PHASES, process)
    memory_file = _per_process(root / _layout.MEMORY, process)
    profiled: list[ProfileFiles] = []  # this process's profile, once it trains a group

    def train_share() -> None:
        """Process 0 writes the blurbs; then each reads its status and checkpoints and
        trains what they lack. All in `in_every_process`: each of these may fail in one
        process alone (a damaged status, a checkpoint it may not read), and the others
        then stop too, instead of waiting for it at the shutdown barrier."""
        if process[0] == 0:
            _write_blurbs(root, plan_, config.blurb_flops)
        clock.lap("blurbs")
        status.update(_status(root, process))
        todo = _unfinished(mine, status)
        entries = lambda: [status["groups"].get(j.key, {}) for j in mine]
        described = lambda: _progress_text(entries(), cells, process)
        left = [len(j.cells) * (j.steps - restored_step(root, j.key)) for j in todo]
        total = sum(len(j.cells) * j.steps for j in todo)
        restored = total - sum(left)
        # The bar counts cell-steps (one step of one cell): its rate is cell-steps per
        # second, of those trained now (those restored from checkpoints start it).
        bar = TrainingBar(
            groups=len(todo),
            total=total,
            initial=restored,
            unit="step",
            unit_scale=total >= 100_000,
            disable=not progress or not todo,  # a finished bench: no empty bar
            desc=described(),
        )
        with bar, MemorySampler() as sampler:  # the bar closed before Ctrl-C's line
            profile = ProfileFiles(phases_file, memory_file, sampler)
            if todo:
                profile.write(clock.rows(process))
                profiled.append(profile)
            for job, steps_left in zip(todo, left, strict=True):
                bar.group_started(steps_left)

                def on_status(key: str, entry: dict[str, Any]) -> None:
                    status["groups"][key] = dict(entry)
                    write_json(status_file, status)
                    bar.set_description(described())

                train_group(
                    root,
                    job,
                    plan_.datasets[job.cells[0].cell.dataset],
                    schema,
                    strategy=config.strategy,
                    previous=status["groups"].get(job.key),
                    chunk_steps=chunk_size(config, job.steps),
                    checkpoint_every=config.checkpoint_every,
                    on_status=on_status,
                    on_progress=bar.chunk,
                    on_profile=profile.write,
                )
        if todo:  # with the samples of the last group's end
            clock.lap("train")
            profile.write(clock.rows(process))
        if jax.process_count() > 1:  # said: a peer that dies holds it ~100 s (docs/results.md;
            # with process=(i, n) alone, nothing is waited for)
            done = "trained its share" if cells else "had no cells to train"
            print(
                f"process {process[0]} of {process[1]} {done}; waiting for the "
                "others to train theirs (where one dies, this one is stopped ~100 s later: "
                "then run the same command again).",
                file=sys.stderr,
                flush=True,
            )

    # All leave together: one leaving first would reach jax.distributed's shutdown
    # barrier early, which aborts every process once it times out (300 s by default).
    in_every_process(train_share, "train its share of the bench")
    groups = {j.key: status["groups"][j.key] for j in mine if j.key in status["groups"]}
    results = _results(root, groups, plan_.hparam_columns, progress and process[0] == 0)
    if progress and process[0] != 0:  # one summary on a terminal the processes share
        with unread_at_end():  # its share trained: nothing left to cut short
            print(f"process {process[0]} of {process[1]}: process 0 prints the bench's summary")
    if profiled:  # at most one
        clock.lap("results")
        profiled[0].write(clock.rows(process))
    return results


def _readable_shapes(config: BenchConfig) -> dict[str, DataShape]:
    """The shapes that the metadata of ``config``'s data sets declares (`check_datasets`),
    of those it still can: a finished bench needs no data set, so one no longer there
    (deleted, or on another machine) is not checked."""
    shapes: dict[str, DataShape] = {}
    for name in config.datasets:
        try:
            shapes |= check_datasets(
                [name], config.data_dir, config.dataset_features, config.dataset_splits
            )
        except BenchError:
            continue
    return shapes


def _finished_hparams(root: pathlib.Path, config: BenchConfig) -> tuple[str, ...] | None:
    """The hyperparameter columns of the bench in ``root`` where it is finished under
    ``config`` (its recorded config hash, its ``cells.parquet`` holding cells of each of
    its models on each data set, its status recording every one finished, and it holds
    their models' blurbs): nothing is left to train, so it needs no plan, nor its data
    sets loaded (``new --dir DIR --data_dir NEW`` prepared them all in ``NEW``). None
    otherwise, or where a file cannot be read (the run plans, and sees to it). Older
    phosjax wrote ``bench.json`` before ``cells.parquet``: ``add_models`` stopped between
    them left the grown config's hash over the cells of the bench before it."""
    try:
        if _config_hash(root) != config.digest():
            return None
        cells = pd.read_parquet(root / _layout.CELLS)
        groups = _status(root, (0, 1))["groups"].values()
    except UNREADABLE:
        return None
    finished = {c for group in groups if group.get("finished") for c in group.get("cells", [])}
    if cells.empty or not set(cells.cell_id) <= finished:
        return None
    names = {entry.name for entry in config.model_entries()}
    named = {(d, name) for d in config.datasets for name in names}
    if not named <= set(zip(cells.dataset, cells.model, strict=True)):
        return None
    if not all((root / _layout.BLURBS / f"{m}.json").is_file() for m in set(cells.model_id)):
        return None  # deleted, or never written: the plan writes them
    return tuple(c for c in cells.columns if c not in _layout.CELL_COLUMNS)


def _results(
    root: pathlib.Path,
    groups: Mapping[str, Mapping[str, Any]],
    hparam_columns: Sequence[str],
    progress: bool,
) -> pd.DataFrame:
    """The results of the bench in ``root``, whose status entries ``groups`` record its
    progress; a warning names the finished ones whose rows are lost, and ``progress``
    prints the summary."""
    parts = _layout.part_files(root / _layout.RESULTS)  # not a README.txt a user put there
    results = read_parts(parts)
    lacking = _lacking_rows(results, groups)
    if lacking:  # said even without progress: the bench is not what its status says
        print(
            f"warning: {str(root / _layout.RESULTS)!r} lacks training rows of finished "
            f"groups: {'; '.join(lacking)}. Their part files were removed or lost: restore "
            "them from a backup, or train the bench again in a new --dir to have them.",
            file=sys.stderr,
        )
    if progress:
        with unread_at_end():  # the bench trained: nothing left to cut short
            print(summary_text(str(root), results, hparam_columns))
    return results


def _progress_text(
    groups: Sequence[Mapping[str, Any]], cells: int, process: tuple[int, int]
) -> str:
    """The progress bar's description: how many of the ``cells`` the status entries
    ``groups`` record as finished and, when any, how many diverged (an entry written
    before phosjax recorded ``diverged`` counts none); among processes sharing the bench,
    first which ``process`` (index, count) trains them.

    Examples:
      >>> groups = [{"cells": ["a", "b"], "finished": True, "diverged": 1}, {"cells": ["c"]}]
      >>> _progress_text(groups, 3, (0, 1)), _progress_text([{}], 3, (1, 2))
      ('cells 2/3, 1 diverged', 'p1/2 cells 0/3')
    """
    finished = sum(len(g.get("cells", [])) for g in groups if g.get("finished"))
    diverged = sum(g.get("diverged", 0) for g in groups)
    which = f"p{process[0]}/{process[1]} " if process[1] > 1 else ""
    return f"{which}cells {finished}/{cells}" + (f", {diverged} diverged" if diverged else "")


def _lacking_rows(results: pd.DataFrame, groups: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The status entries ``groups`` recorded as finished whose cells lack train rows in
    ``results`` (a row per step), each with how many of its cells do."""
    finished = {key: group for key, group in groups.items() if group.get("finished")}
    if not finished:
        return []
    steps: Mapping[str, int] = {}
    if {"cell_id", "split", "step"} <= set(results.columns):
        train = results[results.split == "train"]
        steps = train.groupby("cell_id").step.nunique().to_dict()
    lacking = []
    for key, group in finished.items():
        cells = group.get("cells", [])  # an entry edited by hand may lack them
        short = [c for c in cells if steps.get(c, 0) < group.get("steps", 0)]
        if short:
            lacking.append(f"{key} ({len(short)} of its {len(cells)} cells)")
    return lacking


def _planned(
    root: pathlib.Path,
    config: BenchConfig,
    datasets: Mapping[str, ArrayDataset] | None,
    clock: RunClock,
    planned: Plan | None = None,
) -> tuple[Plan, set[str] | None]:
    """``planned`` (None: `plan` of ``config``, in every process) with the ids the bench in
    ``root`` holds its cells under where older phosjax gave them others
    (`with_former_ids`), and those ids: ``cells.parquet`` read once (None, the plan as it
    is, when it cannot be read)."""
    plan_ = planned or in_every_process(lambda: plan(config, datasets, clock), "plan the bench")
    try:
        stored = set(pd.read_parquet(root / _layout.CELLS, columns=["cell_id"]).cell_id)
    except UNREADABLE:
        return plan_, None
    return with_former_ids(plan_, stored), stored


def has_entry(entries: list[ModelEntry], entry: ModelEntry) -> bool:
    """Whether ``entries`` hold ``entry``; a bare name is held by any entry of that name."""
    if entry == ModelEntry(entry.name):
        return any(known.name == entry.name for known in entries)
    return entry in entries


def add_models_to(
    directory: str | os.PathLike,
    models: Iterable[str | Mapping[str, Any]] | None = None,
    *,
    datasets: Mapping[str, ArrayDataset] | None = None,
    progress: bool = True,
    imports: Sequence[str] = (),
) -> pd.DataFrame:
    """Adds models to a bench and trains their cells, under the stored config (and the
    bench's own unfinished groups: none of its finished cells is trained again).

    A model is a registered name or an entry ``{name, depth, width, options}`` as in the
    config's ``models``: an entry adds another configuration of a model the bench may
    already have (``{"name": "mlp", "width": 64}`` beside its ``mlp``). A name the bench
    has, or an entry equal to one of its entries, is not added again, nor an entry that
    plans only cells the bench has (``{"name": "mlp", "depth": 1}``, the defaults of its
    ``mlp``: recorded, it would train nothing). With nothing to
    add, a bench with unfinished groups is continued, as ``new --resume`` does: the same
    command run again after a kill resumes it.

    ``python -m phosjax.bench.add_models`` calls it (a function named like that module
    would be hidden by it once the module is imported). In the bench directory of the
    example below, ``add_models_to(directory, ["mlp"], datasets={"toy": data},
    progress=False)`` would train only the two new ``mlp`` cells and return the rows of
    all four cells (not run here: compiling a second model takes several seconds).

    Args:
      directory: an existing bench.
      models: the names or entries to add (default: every model registered now that was
        not when the bench was made; import plugins first, e.g. with
        `phosjax.models.import_models`).
      datasets: data sets by name, instead of loading them.
      progress: show a progress bar and print the summary (among processes sharing the
        bench, process 0 prints it; the others say so in one line).
      imports: modules to import first, recorded as `run` records them; the modules the
        bench recorded are imported too, as `run` imports them.

    Returns:
      The bench's results, old and new, as one frame.

    Raises:
      BenchError: not a bench, ``models`` not a list or an empty one, ``imports`` one
        string, an unknown model or a bad entry, nothing to add to a finished bench, a
        bench started with another number of processes, or processes sharing it given
        different directories, models or imports.

    Examples:
      >>> import tempfile
      >>> from phosjax.bench import BenchConfig, BenchError, run
      >>> from phosjax.data import random_dataset
      >>> data = random_dataset("toy", (8,), 3)
      >>> config = BenchConfig.from_dict({  # as `run`'s example: its programs are reused
      ...     "models": ["logreg"],
      ...     "datasets": ["toy"],
      ...     "seeds": 2,
      ...     "strategy": "vmap",
      ...     "grid": {"batch_size": 16, "steps": 5},
      ... })
      >>> with tempfile.TemporaryDirectory() as directory:
      ...     _ = run(config, directory, datasets={"toy": data}, progress=False)
      ...     try:
      ...         add_models_to(directory, ["logreg"], datasets={"toy": data}, progress=False)
      ...     except BenchError as error:
      ...         print(error)
      the bench already has every model named, ['logreg'], and is finished;
      python -m phosjax.bench.new --dir ... reads its results.
    """
    clock = RunClock()
    if isinstance(models, str | Mapping):  # its letters, or its keys, are no models
        raise BenchError(
            f"models must be a list of names or entries, got {models!r}; write [{models!r}]."
        )
    models = None if models is None else list(models)  # an iterator, read once
    if models is not None and not models:
        raise BenchError(
            "models is an empty list: no model was named; name some (['mlp'], or entries "
            "such as [{'name': 'mlp', 'width': 64}]), or pass None to add every model "
            "registered since the bench was made."
        )
    _layout.check_directory(directory, BenchError)
    agree_on_directory(directory)  # each process adds to one bench
    agree_on_bench(directory)
    _check_imports(imports)
    # before any branch on them: a process adding nothing new would skip others' gathers
    agree("models to add or imports", f"models {models!r}, imports {list(imports)!r}")
    # not a bench: said before importing anything
    config, marker = in_every_process(lambda: open_bench(directory), "open the bench")
    seen = marker.get("config_hash")  # what was opened; another run may write there until locked
    root = pathlib.Path(directory)
    present = config.model_entries()
    wanted = {ModelEntry.parse(model).name for model in [*present, *(models or [])]}
    in_every_process(lambda: import_for_bench(root, imports, wanted), "import the bench's modules")
    named = models is not None
    said = progress and jax.process_index() == 0  # once on a terminal the processes share
    if models is None:
        known = {*marker.get("registered_models", []), *(entry.name for entry in present)}
        models = [name for name in registered_models() if name not in known]
        # each host's registry (its installed plugins): one adding none would skip gathers
        agree(
            "models registered since the bench was made",
            f"models {models!r}",
            lambda: " Install the same plugins on every host, or name the models with --models.",
        )
    new: list[str | dict[str, Any]] = []
    entries: list[ModelEntry] = []
    grown: Plan | None = None
    for model in models:
        entry = ModelEntry.parse(model)
        if not has_entry(present, entry) and entry not in entries:  # named twice: once
            entries.append(entry)
            new.append(model if isinstance(model, str) else dict(model))
    if new:
        # an unknown model (one host lacking its plugin) is named before anything claims to add it
        in_every_process(lambda: check_models(entries), "find the models to add")
        extended = BenchConfig.from_dict({**config.to_dict(), "models": [*config.models, *new]})
        grown, stored = _planned(root, extended, datasets, clock)
        # an unreadable cells.parquet is rewritten; else ({name: mlp, depth: 1}) the bench's own
        if stored is None or any(cell.cell_id not in stored for cell in grown.cells):
            if said:
                print(f"adding models {new} to {directory}", file=sys.stderr)
            return _execute(extended, root, datasets, None, progress, grown, seen, imports, clock)
    process = (jax.process_index(), jax.process_count())
    check_processes(root, process[1])
    planned = None  # a finished bench: nothing to continue, no data set to load
    if process[1] > 1 or _finished_hparams(root, config) is None:
        loaded = grown.datasets if grown else datasets  # loaded once, by the grown plan
        planned = _planned(root, config, loaded, clock)[0]
    unfinished = 0
    if planned is not None:  # a damaged status of one process stops the others too
        mine = jobs(planned, process, recorded_split(root))
        status = in_every_process(lambda: _status(root, process), "read its status")
        unfinished = len(_unfinished(mine, status))
    if not sum(map(int, gather(str(unfinished)))):  # in any process
        raise BenchError(
            f"the bench already has every model named, {list(models)}, and is finished; "
            f"{dir_command('phosjax.bench.new', directory)} reads its results."
            if named
            else "no model was registered since the bench was made (and the bench is "
            "finished); import the module that registers yours with --import, or name "
            "models with --models."
        )
    if said:
        print(f"nothing new to add; continuing the unfinished bench {directory}", file=sys.stderr)
    return _execute(config, root, datasets, process, progress, planned, seen, imports, clock)
