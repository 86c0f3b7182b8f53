"""Where a bench keeps what: the one description of a bench directory's layout.

The runner (`phosjax.bench.new`, `add_models`) writes it, the viewer and the exporter
read it, and users load ``results/`` with ``pandas.read_parquet``. Every file is written
atomically (a temporary file, then a rename), so a reader never sees half a file.

::

    runs/NAME/
      bench.json          marker: {"format": 1, "created": ISO time, "config_hash": sha256,
                           "registered_models": [names registered when last planned],
                           "processes": how many processes share it (absent in old benches),
                           "split": how they split its cells, "plan" (absent in benches
                           made before it was recorded: each group's own, see `SPLIT_KEY`),
                           "datasets": {data set: the full TFDS name, with the version its
                           cells read} (absent where given in Python, or in older benches),
                           "imports": [modules that register its models: ``--import``s,
                           imported again by later commands] (absent when none),
                           "import_folders": {module: the folder on Python's path it was
                           imported from, for the error when it is not found} (absent when
                           none, or in older benches)}
      config.yaml         the resolved config, exactly what was planned
      env.json            package versions, devices, host, Python (earlier runs: "earlier")
      cells.parquet       the plan: one row per cell (see CELL_COLUMNS + hparam columns)
      status.json         {"groups": {group_id: {"steps_done", "steps", "finished",
                           "diverged": how many of its cells have diverged (absent in
                           old benches), "strategy", "timings", "cells": [cell_id, ...]}}}
      results/            Parquet data set, one part file per group and segment (its
                           steps up to a checkpoint, ``checkpoint_every``):
        part-<group_id>-<first step:09d>.parquet
                          one row per (cell, step, split); see docs/results.md
      blurbs/<model_id>.json   `phosjax.core.blurb` of each model, JSON
      graphs/<model_id>.json   node/edge description of graph models (if any): their
                               ``to_json(x)`` (see `phosjax.models.graph.GraphModel`)
      profile/phases.parquet   one row per (group, segment, phase), an init row per run:
                               seconds, count, steps, total_s, bytes (docs/results.md)
      profile/memory.parquet   host RSS and device bytes in use over time
      checkpoints/<group_id>/  each group's training state: a file <step> (npz) per saved step
      morph/iterations.parquet results of `python -m phosjax.morph` (if run here)
      run.lock            held (``flock``) by the run writing the bench, which it names
                           (`lock_holder`: "pid 12 on h since ISO time"): a second run on the
                           same directory, or a ``--force`` moving it aside, stops at once;
                           the file stays after the run, naming its last holder
      export.lock         held (``flock``) by `phosjax.bench.export` while it exports the
                           bench, which it names as ``run.lock`` does: a second export, or a
                           ``--force`` moving it aside, stops

When several processes share a bench (``jax.distributed``), process ``i`` of ``n`` names
its group keys ``<group_id>.p<i>of<n>`` (part files, checkpoints) and writes
``status.p<i>of<n>.json``, ``run.p<i>of<n>.lock``, ``profile/phases.p<i>of<n>.parquet`` and
``profile/memory.p<i>of<n>.parquet`` instead of the single-process names; they split its
cells as ``bench.json`` records (`SPLIT_KEY`). A bench is continued only with the number of
processes it was started with (``bench.json``).
"""

import os
import pathlib
import re
import shlex
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from phosjax._callables import a_type, cut_repr
from phosjax._listing import listing
from phosjax._nearest import nearest_names, one_edit_apart
from phosjax.bench._usage import as_argument

FORMAT = 1

MARKER = "bench.json"
IMPORTS_KEY = "imports"
"""The key of ``bench.json`` that records the modules registering the bench's models."""
IMPORT_FOLDERS_KEY = "import_folders"
"""The key of ``bench.json`` that records where each of its ``imports`` was imported from."""
DATASETS_KEY = "datasets"
"""The key of ``bench.json`` that records the full TFDS name, with its version, of each data
set the bench's cells trained on (`phosjax.bench._plan.dataset_versions`)."""
SPLIT_KEY = "split"
"""The key of ``bench.json`` that records how the processes sharing the bench split its
cells (`phosjax.bench._runner.jobs`): `SPLIT_PLAN`, written by new benches, or absent, as in
benches made before it was recorded, which keep the split they started with: process ``i``
of ``n`` takes every n-th cell of each group, from its i-th."""
SPLIT_PLAN = "plan"
"""`SPLIT_KEY`'s value for cells numbered across the plan's groups, in plan order, cell
``p`` going to process ``p mod n``."""
CONFIG = "config.yaml"
ENV = "env.json"
CELLS = "cells.parquet"
STATUS = "status.json"
RESULTS = "results"
BLURBS = "blurbs"
GRAPHS = "graphs"
PROFILE = "profile"
PHASES = "profile/phases.parquet"
MEMORY = "profile/memory.parquet"
CHECKPOINTS = "checkpoints"
MORPH = "morph"
MORPH_ITERATIONS = "morph/iterations.parquet"
LOCK = "run.lock"
EXPORT_LOCK = "export.lock"

PLAIN_NAME = re.compile(r"[^/\\\x00.][^/\\\x00]*")
"""A name that names one file of a bench folder: no path separator (``/``, ``\\``) nor
NUL, and not hidden (no leading dot, so neither ``.`` nor ``..``). A model's name must be
one: it begins its id (``blurbs/<model_id>.json``) and its group ids (part files,
checkpoints)."""

CELL_COLUMNS = ("cell_id", "group_id", "model_id", "model", "dataset", "seed")
"""Columns of ``cells.parquet`` and of every results row, before the hparam columns.

``cell_id``: stable id of the cell (a short hash of its full config); ``group_id``: the
compiled group it trained in; ``model_id``: the model name and a short hash of the model
config, ``<model>-<hash>`` (names the blurb file); ``model``: the registered model name.
"""

RESULT_KEYS = ("step", "split")
"""Per row: ``step`` (int, updates done) and ``split`` (``"train"`` or ``"test"``)."""

DIVERGED = "diverged"
"""Per row: whether the cell had diverged by its step (`phosjax.train.Chunk.diverged`): its
metrics there are those of its state frozen before the step it diverged at. Null in rows
written before phosjax recorded it."""

AUX_PREFIX = "aux/"
"""``aux/<name>``: an auxiliary loss's per-step total (already path-weighted)."""

PATH_WEIGHT_PREFIX = "path_weight/"
"""``path_weight/<module path>/<branch>``: a branch's mean path weight."""

REGULARIZER = "regularizer"
"""The strength-weighted sum of a cell's regularizers (train rows of groups that have any)."""

LR = "lr"
"""The learning rate of each step's update (train rows of groups whose rate moves:
`phosjax.train.HParams.scheduled`)."""

PHASE_NAMES = ("init", "compile", "step", "eval")
"""The phases of a network's life that ``profile/phases.parquet`` reports."""

BENCH = "(bench)"
"""The ``group_id`` of the ``profile/phases.parquet`` rows that time a run of the bench
as a whole (`BENCH_PHASES`), not one group (``(bench).p<i>of<n>``: process ``i``'s run,
where ``n`` share the bench)."""

BENCH_PHASES = ("start", "plan", "data", "write", "blurbs", "train", "results")
"""A bench run's own phases, one after another: ``start`` (a command line's start-up,
from its process's start: the interpreter, its imports, parsing its arguments; none
where `phosjax.bench.run` is called from Python), ``plan`` (from its start: importing the
bench's modules, choosing its config, checking models, planning the cells), ``data``
(loading the data sets, taken out of ``plan``, so its row comes before ``plan``'s; none
where they were given, nor in runs written before it was timed apart), ``write``
(locking the bench, writing its metadata), ``blurbs`` (the models' blurbs and graphs),
``train`` (this process's groups, with their results, checkpoints and status),
``results`` (reading the results, printing the summary)."""


def check_directory(directory: Any, error: type[Exception] = TypeError) -> None:
    """Raises ``error`` unless ``directory`` is a path (pathlib's own says only "expected
    str, bytes or os.PathLike object, not NoneType", naming no argument); `phosjax.bench.run`
    raises a `BenchError`, the viewer a `TypeError`.

    Examples:
      >>> check_directory(None)
      Traceback (most recent call last):
      TypeError: directory must be the bench's folder, a str or pathlib.Path such as
      'runs/example', got a NoneType: None.
    """
    if not isinstance(directory, str | os.PathLike):
        raise error(
            "directory must be the bench's folder, a str or pathlib.Path such as "
            f"'runs/example', got {a_type(directory)}: {cut_repr(directory, 80)}."
        )


def is_bench(directory: str | pathlib.Path) -> bool:
    """Whether ``directory`` holds a bench (its marker file exists)."""
    return (pathlib.Path(directory) / MARKER).is_file()


def why_not_a_bench(
    directory: str | os.PathLike, holds: Callable[[pathlib.Path], bool] = is_bench
) -> str:
    """Why ``directory``, which holds no bench, is not one, for a message: there is no
    such directory (`no_such_directory`: a typo of a bench beside it, or of what
    ``holds``), it is a file, it holds a run of ``python -m phosjax.morph``, or it has
    no marker.

    Examples:
      >>> why_not_a_bench("/no/such/bench")
      "no such directory, nor '/no'"
    """
    path = pathlib.Path(directory)
    if not path.exists():
        return no_such_directory(path, holds)
    if not path.is_dir():
        return "it is a file, not a directory"
    if (path / MORPH_ITERATIONS).is_file():
        return f"it holds a run of `python -m phosjax.morph` ({MORPH_ITERATIONS})"
    return f"it has no {MARKER}"


def no_such_directory(
    directory: pathlib.Path, holds: Callable[[pathlib.Path], bool] = is_bench, yet: str = ""
) -> str:
    """Why ``directory``, which does not exist, is no bench (``yet``: the viewer waits for
    one), a typo made plain: where the folder above it is missing too, the first one
    missing (`python -m phosjax.bench.new` makes them all); the names beside the one
    missing one typo away from it (`one_edit_apart`: benches, or what ``holds``, beside
    ``directory`` itself).

    Examples:
      >>> import tempfile
      >>> runs = pathlib.Path(tempfile.mkdtemp(), "runs")
      >>> (runs / "example").mkdir(parents=True)
      >>> _ = (runs / "example" / MARKER).write_text('{"format": 1}')
      >>> no_such_directory(runs / "exmaple"), no_such_directory(runs / "new", yet="yet")
      ("no such directory; a typo of the bench 'example' beside it?", 'no such directory yet')
      >>> no_such_directory(runs.parent / "rusn" / "example")
      "no such directory, nor '.../rusn'; a typo of 'runs' beside it?"
    """
    resolved = missing = directory.resolve()
    while not missing.parent.exists() and missing.parent != missing:
        missing = missing.parent
    beside = holds if missing == resolved else pathlib.Path.is_dir
    try:
        names = [p.name for p in missing.parent.iterdir() if not p.name.startswith(".")]
        typos = [n for n in names if one_edit_apart(missing.name, n)]  # made-up names: strict
        near = nearest_names(missing.name, [n for n in typos if beside(missing.parent / n)])
    except OSError:  # unreadable: nothing to suggest
        near = ""
    why = " ".join(filter(None, ["no such directory", yet]))
    why += "" if missing == resolved else f", nor {str(missing)!r}"
    what = "the bench " if missing == resolved else ""
    return f"{why}; a typo of {what}{near} beside it?" if near else why


def enclosing_bench(
    directory: str | os.PathLike, holds: Callable[[pathlib.Path], bool] = is_bench
) -> pathlib.Path | None:
    """The bench (or, with ``holds``, the folder that ``holds`` accepts: the viewer also
    takes morph runs) that ``directory`` lies inside (at any depth; resolved), or None. A run
    written there would mix its files into that bench's: ``pandas.read_parquet`` of its
    ``results`` reads every Parquet file below it.

    Examples:
      >>> import tempfile
      >>> with tempfile.TemporaryDirectory() as root:
      ...     _ = (pathlib.Path(root) / MARKER).write_text("{}")
      ...     enclosing_bench(f"{root}/results/new") == pathlib.Path(root).resolve()
      True
    """
    return next((p for p in pathlib.Path(directory).resolve().parents if holds(p)), None)


BENCHES_LISTED = 10
"""The most benches `benches_inside` names (a folder such as ``/tmp`` may hold hundreds)."""


def benches_inside(
    directory: str | os.PathLike, holds: Callable[[pathlib.Path], bool] = is_bench
) -> str:
    """For ``directory``, which holds no bench, the folders in it that ``holds`` (default:
    benches; the viewer also takes morph runs; the first `BENCHES_LISTED`, then how many
    more) and how to pass one, for a message; ``""`` when there are none (or it cannot be
    read).

    Examples:
      >>> import tempfile
      >>> with tempfile.TemporaryDirectory() as root:
      ...     _ = (pathlib.Path(root, "b") / MARKER).parent.mkdir()
      ...     _ = (pathlib.Path(root, "b") / MARKER).write_text("{}")
      ...     benches_inside(root).replace(root, "ROOT")
      'Benches inside it: b; pass one: --dir ROOT/b'
    """
    try:
        names = sorted(p.name for p in pathlib.Path(directory).iterdir() if holds(p))
    except OSError:  # missing or unreadable: nothing to suggest
        return ""
    if not names:
        return ""
    first = pathlib.Path(directory, names[0])
    return (
        f"Benches inside it: {listing(names, BENCHES_LISTED)}; pass one: --dir "
        f"{shlex.quote(as_argument(first))}"
    )


def not_a_bench(
    directory: str | os.PathLike,
    holds: Callable[[pathlib.Path], bool] = is_bench,
    use: str = "pass",
) -> str:
    """The message for ``directory``, which holds no bench (nor, with ``holds``, what
    ``holds`` accepts), quoting it: why not, then the bench it lies inside (to ``use``),
    the benches inside it, or how to make one.

    Examples:
      >>> not_a_bench("/no/such/bench")
      "'/no/such/bench' is not a bench: no such directory, nor '/no'. Make one with `python -m ..."
    """
    around = enclosing_bench(directory, holds)
    hint = (
        f"It is inside the bench {str(around)!r}: {use} that one."
        if around is not None
        else benches_inside(directory, holds)
        or "Make one with `python -m phosjax.bench.new --config CONFIG.yaml --dir DIR`."
    )
    why = why_not_a_bench(directory, holds)
    return f"{str(directory)!r} is not a bench: {why}{'' if why.endswith('?') else '.'} {hint}"


def format_not_read(where: str, found: Any, then: str = "") -> str | None:
    """The message for a bench at ``where`` whose marker holds the ``format`` ``found``,
    which this phosjax does not read (what follows from it, ``then``, and what to do);
    None where it reads it.

    Examples:
      >>> format_not_read("b", FORMAT) is None
      True
      >>> print(format_not_read("b", 99))
      b holds a bench of format 99; this phosjax reads format 1. A newer phosjax wrote it:
      upgrade phosjax to read it.
    """
    if found == FORMAT:
        return None
    if isinstance(found, int) and found > FORMAT:
        advice = "A newer phosjax wrote it: upgrade phosjax to read it."
    else:
        advice = (
            f'phosjax writes {MARKER} with "format": {FORMAT}, so something else changed it; '
            "restore it from a backup."
        )
    reads = f"this phosjax reads format {FORMAT}{then}"
    return f"{where} holds a bench of format {found!r}; {reads}. {advice}"


def group_status(group: Any) -> bool:
    """Whether ``group`` is a group's entry of a status file: an object whose ``cells``
    (absent: none) is a list of cell ids (the run and the viewer key cells by them).

    Examples:
      >>> group_status({"cells": ["a"]}), group_status({}), group_status({"cells": [[]]})
      (True, True, False)
    """
    cells = group.get("cells", []) if isinstance(group, dict) else None
    return isinstance(cells, list) and all(isinstance(cell, str) for cell in cells)


PROCESS_SUFFIX = r"\.p(\d+)of(\d+)"
"""What `process_suffix` adds for process ``i`` of ``n``, as a regular expression (its
groups: ``i``, ``n``)."""


def process_suffix(process: tuple[int, int]) -> str:
    """What process ``i`` of ``n`` adds to its group keys and file stems: ``".p<i>of<n>"``,
    or nothing for a single process.

    Examples:
      >>> process_suffix((1, 2)), process_suffix((0, 1))
      ('.p1of2', '')
    """
    index, count = process
    return "" if count == 1 else f".p{index}of{count}"


def process_name(name: str, process: tuple[int, int]) -> str:
    """The name under which process ``i`` of ``n`` writes file ``name``: ``name`` itself,
    or ``<stem>.p<i>of<n><suffix>`` when several processes share the bench.

    Examples:
      >>> process_name("status.json", (1, 2)), process_name("status.json", (0, 1))
      ('status.p1of2.json', 'status.json')
    """
    path = pathlib.PurePath(name)
    return path.with_name(f"{path.stem}{process_suffix(process)}{path.suffix}").as_posix()


def per_process_names(name: str, names: Iterable[str]) -> list[str]:
    """Those of ``names`` that hold file ``name``'s data: ``name`` itself first, then the
    files ``<stem>.p<i>of<n><suffix>`` that process ``i`` of ``n`` writes in its stead, by
    ``n`` and ``i`` (as numbers: ``p2of12`` before ``p10of12``).

    Examples:
      >>> names = ["memory.p1of2.parquet", "memory.parquet", ".tmp~h~1~memory.parquet"]
      >>> per_process_names("memory.parquet", [*names, "memory.p0of2.parquet"])
      ['memory.parquet', 'memory.p0of2.parquet', 'memory.p1of2.parquet']
      >>> per_process_names("status.json", ["status.p10of12.json", "status.p2of12.json"])
      ['status.p2of12.json', 'status.p10of12.json']
    """
    pattern = _per_process_pattern(name)

    def order(file_name: str) -> tuple[int, ...]:
        process = process_of(file_name, name)
        return (0,) if process is None else (1, process[1], process[0])

    return sorted((n for n in names if pattern.fullmatch(n)), key=order)


def process_of(file_name: str, name: str) -> tuple[int, int] | None:
    """``(i, n)`` when ``file_name`` is process ``i`` of ``n``'s file of ``name``; None
    for ``name`` itself.

    Examples:
      >>> process_of("status.p1of2.json", "status.json"), process_of("status.json", "status.json")
      ((1, 2), None)
    """
    match = _per_process_pattern(name).fullmatch(file_name)
    if match is None:
        raise ValueError(f"{file_name!r} is not a file of {name!r}.")
    return None if match.group(1) is None else (int(match.group(1)), int(match.group(2)))


def _per_process_pattern(name: str) -> re.Pattern[str]:
    path = pathlib.PurePath(name)
    return re.compile(rf"{re.escape(path.stem)}(?:{PROCESS_SUFFIX})?{re.escape(path.suffix)}")


PART = re.compile(r"part-(?P<group>.+)-(?P<step>\d{9,})\.parquet")
"""A part file's name: its group key and first step (``{step:09d}``: 10 digits from 1e9)."""


def group_of_part(name: str) -> str | None:
    """The id of the group whose rows the part file ``name`` holds (its key, less the
    ``.p<i>of<n>`` of a process's share), or None for a name `PART` does not match.

    Examples:
      >>> group_of_part("part-g-mlp.p1of2-000000100.parquet"), group_of_part("part-x.parquet")
      ('g-mlp', None)
    """
    match = PART.fullmatch(name)
    return None if match is None else re.sub(rf"{PROCESS_SUFFIX}$", "", match["group"])


def part_files(results: pathlib.Path) -> list[pathlib.Path]:
    """The part files (``part-*.parquet``) in the folder ``results``, in order of group,
    then first step as a number (``...-1000000000`` after ``...-999999999``); empty when
    there is no such directory (a fresh bench). Readers read only these: never a writer's
    hidden temporary file, nor anything else a user put there (a ``README.txt``).

    Raises:
      OSError: the folder is there but cannot be listed (``PermissionError``: chmod 000,
        another user's), naming it: not taken for an empty one, its results for lost.
    """
    try:
        found = [path for path in results.iterdir() if path.match("part-*.parquet")]
    except (FileNotFoundError, NotADirectoryError):
        found = []
    return sorted(found, key=_part_order)


def _part_order(path: pathlib.Path) -> tuple[str, int]:
    match = PART.fullmatch(path.name)
    return (match["group"], int(match["step"])) if match else (path.name, -1)


def per_process_files(folder: pathlib.Path, name: str) -> list[str]:
    """The names in ``folder`` of file ``name`` and its per-process files (see
    `per_process_names`), in its order; empty when ``folder`` is not a directory."""
    names = [p.name for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
    return per_process_names(name, names)


def per_process_paths(root: pathlib.Path, relative: str) -> list[str]:
    """The paths, relative to ``root``, of file ``relative`` and its per-process files
    that exist (see `per_process_files`), sorted."""
    path = pathlib.PurePosixPath(relative)
    return [str(path.with_name(n)) for n in per_process_files(root / path.parent, path.name)]


class LockHolder(NamedTuple):
    """The run that took a lock file (``run.lock``) last: its ``pid`` on ``host`` (its
    machine: `phosjax.bench._store.machine`), since ``since`` (ISO time)."""

    pid: int
    host: str
    since: str


def lock_holder(holder: LockHolder) -> str:
    """What a run writes into the lock file it takes (`read_lock_holder` reads it back).

    Examples:
      >>> lock_holder(LockHolder(12, "h", "2026-01-01T00:00:00+00:00"))
      'pid 12 on h since 2026-01-01T00:00:00+00:00'
    """
    return f"pid {holder.pid} on {holder.host} since {holder.since}"


def host_name(machine: str) -> str:
    """The host name of a machine a file names (`phosjax.bench._store.machine`:
    ``vm#1a2b3c4d5e6f7a8b``), what a message shows of it: the digest tells a reader nothing (a
    plain host name, of an older version or a system that tells no digest, is its own).

    Examples:
      >>> host_name("vm#1a2b3c4d5e6f7a8b"), host_name("vm")
      ('vm', 'vm')
    """
    return machine.partition("#")[0]


def machine_digest(machine: str) -> str:
    """The digest of a machine a file names (`phosjax.bench._store.machine`: ``host#digest``,
    16 hex digits: 8 of its boot, 8 of its boot and namespaces); "" for a plain host name.

    Examples:
      >>> machine_digest("vm#1a2b3c4d5e6f7a8b"), machine_digest("vm")
      ('1a2b3c4d5e6f7a8b', '')
    """
    return machine.partition("#")[2]


def shown_lock_holder(text: str) -> str:
    """A lock file's ``text`` as a message names the run holding it: ``pid 12 on vm since
    <time>``, its machine by its `host_name`; the text itself where it names none as a run
    writes it (`read_lock_holder`), ``pid unknown`` where it is empty.

    Examples:
      >>> shown_lock_holder("pid 12 on vm#1a2b3c4d5e6f7a8b since 2026-01-01T00:00:00+00:00\\n")
      'pid 12 on vm since 2026-01-01T00:00:00+00:00'
      >>> shown_lock_holder("held"), shown_lock_holder("")
      ('held', 'pid unknown')
    """
    holder = read_lock_holder(text)
    if holder is None:
        return text.strip() or "pid unknown"
    return lock_holder(holder._replace(host=host_name(holder.host)))


_LOCK_HOLDER = re.compile(r"pid ([1-9]\d{0,9}) on (\S.*) since (\S+)")


def read_lock_holder(text: str) -> LockHolder | None:
    """The `LockHolder` a lock file's ``text`` names (`lock_holder`); None for anything
    else (an empty file: a run writing it at this instant, or one from another version).

    Examples:
      >>> read_lock_holder("pid 12 on my host since 2026-01-01T00:00:00+00:00\\n")
      LockHolder(pid=12, host='my host', since='2026-01-01T00:00:00+00:00')
      >>> read_lock_holder(""), read_lock_holder("pid 0 on h since t"), read_lock_holder("pid x")
      (None, None, None)
    """
    match = _LOCK_HOLDER.fullmatch(text.strip())
    return None if match is None else LockHolder(int(match[1]), match[2], match[3])
