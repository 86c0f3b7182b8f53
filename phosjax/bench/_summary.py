"""What a bench prints: the `leaderboard` summary and the profile."""

import json
import math
import os
import pathlib
import shlex
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from phosjax._callables import a_type, cut_repr
from phosjax._listing import counted, listing
from phosjax._nearest import did_you_mean
from phosjax.bench import _layout
from phosjax.bench._errors import BrokenFileError
from phosjax.bench._reading import PROFILE_HINT, read_file, read_parquet
from phosjax.bench._usage import as_argument


def command_line(module: str, argv: Sequence[str]) -> str:
    """The command that runs ``module`` with the arguments ``argv``, each quoted so that
    it runs as printed, copied into a shell.

    Examples:
      >>> command_line("phosjax.bench.speed", ["--quick", "--out", "runs/my speed"])
      "python -m phosjax.bench.speed --quick --out 'runs/my speed'"
    """
    return f"python -m {module} {shlex.join(argv)}".rstrip()


def dir_command(module: str, directory: str | os.PathLike) -> str:
    """The `command_line` that runs ``module`` on ``--dir directory``.

    Examples:
      >>> dir_command("phosjax.bench.view", "runs/my bench")
      "python -m phosjax.bench.view --dir 'runs/my bench'"
    """
    return command_line(module, ["--dir", as_argument(directory)])


def _mean(values: pd.Series) -> float:
    """The mean, NaN when any value is: a diverged seed must not vanish from it."""
    return values.mean(skipna=False)


def _std(values: pd.Series) -> float:
    """The sample standard deviation, NaN when any value is (or there is only one)."""
    return values.std(skipna=False)


def _diverged(evaluations: pd.DataFrame) -> pd.Series:
    """Whether each of these test rows evaluates a diverged cell: its row says so
    (``diverged``: its training state turned NaN or inf). A NaN test accuracy or loss of
    a cell that did not diverge is no divergence (NaN test inputs, allowed as padding under
    a mask); in benches written before ``diverged`` was recorded (null) it is the one sign.

    Examples:
      >>> _diverged(pd.DataFrame({"diverged": [False, True, None, None, False],
      ...                         "accuracy": [0.5, 0.5, 0.5, 0.5, 0.5],
      ...                         "loss": [1.0, 1.0, 1.0, float("nan"), float("nan")]})).tolist()
      [False, True, False, True, False]
    """
    measured = evaluations[["accuracy", "loss"]].to_numpy(dtype=float)
    diverged = ~np.isfinite(measured).all(axis=1)
    if _layout.DIVERGED in evaluations:
        flag = evaluations[_layout.DIVERGED]
        diverged &= flag.isna().to_numpy(dtype=bool)
        diverged |= flag.eq(True).to_numpy(dtype=bool, na_value=False)
    return pd.Series(diverged, index=evaluations.index)


def leaderboard(results: pd.DataFrame, hparam_columns: Sequence[str]) -> pd.DataFrame:
    """One row per (model, data set, hparams that vary within a model), best first.

    Columns: the keys, ``accuracy`` and ``accuracy_std`` (over seeds, of each cell's
    last test evaluation), ``loss`` (its mean), ``seeds`` (how many cells) and
    ``diverged`` (how many of them had diverged by that evaluation: `_diverged`). A
    diverged seed's accuracy and loss enter as NaN, even where its frozen state's are
    finite, and make the mean and std NaN; a NaN accuracy sorts last.

    Raises:
      TypeError: ``results`` is no DataFrame (a path: the message names the ``results``
        folder to read with `pandas.read_parquet`, that of a bench's folder too), or
        ``hparam_columns`` is a string, not a list of them.
      ValueError: ``results`` with test rows lacks a column it reads, or a name of
        ``hparam_columns`` is no column of it.

    Examples:
      >>> results = pd.DataFrame({
      ...     "cell_id": ["a", "b", "c"], "model": ["mlp", "mlp", "cnn"],
      ...     "dataset": "d", "learning_rate": 0.1, "step": 5, "split": "test",
      ...     "diverged": [False, False, True],
      ...     "accuracy": [0.5, 0.7, 0.9], "loss": [1.0, 0.8, 0.3]})
      >>> leaderboard(results, ["learning_rate"])
        model dataset  accuracy  accuracy_std  loss  seeds  diverged
      0   mlp       d       0.6      0.141421   0.9      2         0
      1   cnn       d       NaN           NaN   NaN      1         1
    """
    if not isinstance(results, pd.DataFrame):  # a path: "split" in it tests a substring
        path = os.fspath(results) if isinstance(results, str | os.PathLike) else "DIR/results"
        if _layout.is_bench(path):  # the bench's own folder: Parquet lies in its results
            path = os.path.join(path, _layout.RESULTS)
        raise TypeError(
            f"results must be a pandas DataFrame of a bench's results, got {a_type(results)} "
            f"{cut_repr(results)}; read them first: leaderboard(pandas.read_parquet({path!r}), "
            "hparam_columns)."
        )
    if isinstance(hparam_columns, str):  # its letters are no columns
        raise TypeError(
            f"hparam_columns must be a list of column names, got the string "
            f"{hparam_columns!r}; write [{hparam_columns!r}]."
        )
    if "split" not in results:  # no results yet: a frame without columns
        return pd.DataFrame()
    test = results[results["split"] == "test"].reset_index(drop=True)  # labels unique
    if test.empty:
        return pd.DataFrame()
    needed = ["cell_id", "model", "dataset", "step", "accuracy", "loss"]
    lacking = [c for c in needed if c not in results]
    if lacking:  # a frame cut to some columns: not a bare KeyError
        raise ValueError(
            f"results lack the columns {lacking}; the leaderboard reads {needed} and "
            "'split' (pandas.read_parquet of a bench's results has them all)."
        )
    unknown = [c for c in hparam_columns if c not in results]
    if unknown:  # else silently no key: every value of it averaged in one row
        raise ValueError(
            f"hparam_columns {unknown} are not columns of the results"
            f"{did_you_mean(unknown, map(str, results.columns))} (hparam columns of a bench: "
            "those of its cells.parquet after 'seed')."
        )
    last = test.loc[test.groupby("cell_id")["step"].idxmax()]
    diverged = _diverged(last)
    last = last.assign(
        accuracy=last["accuracy"].mask(diverged),
        loss=last["loss"].mask(diverged),
        diverged=diverged,
    )
    within_model = last.groupby("model")
    varying = [c for c in hparam_columns if (within_model[c].nunique(dropna=False) > 1).any()]
    keys = ["model", "dataset", *varying]
    board = last.groupby(keys, dropna=False, sort=False).agg(
        accuracy=("accuracy", _mean),
        accuracy_std=("accuracy", _std),
        loss=("loss", _mean),
        seeds=("accuracy", "size"),
        diverged=("diverged", "sum"),
    )
    return board.sort_values("accuracy", ascending=False).reset_index()


def _plus_minus(mean: float, std: float, seeds: int, diverged: int) -> str:
    """``mean ± std``; a single seed's value alone, which has no spread (``± 0.000`` read
    as seeds that agree); ``diverged (k/n)`` when ``k`` of the ``n`` seeds diverged (the
    mean is NaN), as the viewer shows them; ``nan`` when none did but a seed's accuracy is
    NaN (NaN test inputs).

    Examples:
      >>> _plus_minus(0.9, 0.01, 2, 0), _plus_minus(0.9, float("nan"), 1, 0)
      ('0.900 ± 0.010', '0.900')
      >>> _plus_minus(float("nan"), float("nan"), 3, 1), _plus_minus(float("nan"), 0.0, 1, 0)
      ('diverged (1/3)', 'nan')
    """
    if diverged:
        return f"diverged ({diverged}/{seeds})"
    if math.isnan(mean):
        return "nan"
    return f"{mean:.3f}" if seeds == 1 else f"{mean:.3f} ± {std:.3f}"


def _loss(value: float) -> str:
    """A mean loss with three decimals; past 1e4 (a run that blew up but stayed finite)
    with three significant digits, so that the table keeps its width.

    Examples:
      >>> _loss(0.34357), _loss(2.3e31), _loss(float("nan"))
      ('0.344', '2.3e+31', 'nan')
    """
    return f"{value:.3f}" if abs(value) < 1e4 else f"{value:.3g}"


UNSET = "–"
"""What the summary shows for a hyperparameter a row's model does not have (another
model's knob) or leaves unset, as the viewer does: not ``NaN``, which reads as a value."""


def options_that_vary(board: pd.DataFrame) -> list[str | None]:
    """``board``'s ``options`` (each model's options as JSON, its defaults included) cut to
    those that differ between rows of one model (a number by its value: ``0`` is ``0.0``),
    as ``key=value`` (None: none of them);
    the summary and the viewer show these, not the JSON, whose start is alike.

    Examples:
      >>> board = pd.DataFrame({"model": ["moe", "moe", "mlp"], "options": [
      ...     '{"pool": "mean", "top_k": 1}', '{"pool": "mean", "top_k": 2}', '{"pool": "max"}']})
      >>> options_that_vary(board)
      ['top_k=1', 'top_k=2', None]
    """
    texts = [text if isinstance(text, str) else None for text in board["options"]]
    rows = list(zip(board["model"], texts, strict=True))
    parsed = {row: {} if row[1] is None else json.loads(row[1]) for row in dict.fromkeys(rows)}
    of_model: dict[str, list[dict[str, Any]]] = {}  # each distinct options once: not per seed
    for (model, _), options in parsed.items():
        of_model.setdefault(model, []).append(options)
    varying = {
        model: {
            key
            for key in {key for options in each for key in options}
            if len({json.dumps(_by_value(options.get(key, UNSET))) for options in each}) > 1
        }
        for model, each in of_model.items()
    }
    shown = {
        (model, text): ", ".join(
            f"{key}={json.dumps(options[key])}" for key in sorted(options) if key in varying[model]
        )
        or None
        for (model, text), options in parsed.items()
    }
    return [shown[row] for row in rows]


def _by_value(value: Any) -> Any:
    """An option's ``value`` to compare: a number by its value, so that ``dropout: 0`` (as
    older phosjax wrote an int given for a float option) is the ``0.0`` it resolves to now,
    one model; a bool as it is (``true`` is no ``1``)."""
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def summary_text(
    directory: str, results: pd.DataFrame, hparam_columns: Sequence[str], rows: int = 12
) -> str:
    """The one-screen summary printed at the end of a run: counts, the leaderboard's top
    ``rows`` rows (`UNSET` for a hyperparameter a row lacks), where the results are and
    how to view them."""
    board = leaderboard(results, hparam_columns)
    cells = results["cell_id"].nunique() if len(results) else 0
    lines = [f"bench {directory}: {counted(cells, 'cell')}, {counted(len(results), 'result row')}"]
    if board.empty:
        return "\n".join([*lines, "no test evaluations yet."])
    shown = board.head(rows).copy()
    shown["test accuracy"] = [
        _plus_minus(*values)
        for values in zip(
            shown.pop("accuracy"),
            shown.pop("accuracy_std"),
            shown["seeds"],
            shown.pop("diverged"),
            strict=True,
        )
    ]
    shown["test loss"] = shown.pop("loss").map(_loss)
    if "options" in shown:  # all of them, defaults too, made a row wider than a screen
        shown["options"] = options_that_vary(board)[: len(shown)]
    for column in [c for c in hparam_columns if c in shown and shown[c].isna().any()]:
        shown[column] = shown[column].astype(object).where(shown[column].notna(), UNSET)
    lines.append(shown.to_string(index=False))
    if len(board) > rows:
        lines.append(f"... {counted(len(board) - rows, 'more row')}")
    lines += [
        f"results: pandas.read_parquet({directory + '/' + _layout.RESULTS!r})  "
        "(columns: docs/results.md)",
        f"view:    {dir_command('phosjax.bench.view', directory)}  then open "
        "http://localhost:1337 (remote: ssh -L 1337:localhost:1337 HOST)",
        f"profile: {dir_command('phosjax.bench.profile', directory)}",
    ]
    return "\n".join(lines)


def _profile_frames(
    root: pathlib.Path, relative: str, columns: Sequence[str] = ()
) -> list[pd.DataFrame]:
    """`read_profile`'s frames, one per file."""
    frames = []
    for path in [root / path for path in _layout.per_process_paths(root, relative)]:
        frame = read_file(path, read_parquet, repr(str(path)), PROFILE_HINT)
        lacking = [c for c in columns if c not in frame]
        if lacking:
            raise BrokenFileError(
                f"{str(path)!r} lacks the columns {lacking} of a profile (it has "
                f"{listing(list(frame.columns), 8)}); {PROFILE_HINT}"
            )
        frames.append(frame)
    return frames


def read_profile(
    root: pathlib.Path, relative: str, columns: Sequence[str] = ()
) -> pd.DataFrame | None:
    """The profile file ``relative`` (`_layout.PHASES`, `_layout.MEMORY`) of the bench in
    ``root`` and its per-process files (`_layout.per_process_paths`) as one frame; None
    when none exists. A file that cannot be read, or lacks one of ``columns``, is a
    `BrokenFileError` naming it."""
    frames = _profile_frames(root, relative, columns)
    return pd.concat(frames, ignore_index=True) if frames else None


_PER_OCCURRENCE = ("step", "eval")
"""The phases whose ``seconds`` are of one step or evaluation (others': the row's all)."""


def per_group_and_phase(phases: pd.DataFrame | None) -> pd.DataFrame | None:
    """``profile/phases`` rows merged to one per group and phase, in the order first
    written: a group has rows per segment (its steps up to a checkpoint) and per run.
    ``count`` and ``total_s`` are summed, the byte columns' maxima kept; ``seconds`` is,
    for ``step`` and ``eval``, the mean over the rows weighted by their ``count`` (one
    step or evaluation), else the rows' sum. A table without those columns is returned
    as it is (the page draws what it can).

    Examples:
      >>> rows = pd.DataFrame({"group_id": "g", "phase": ["init", "step", "step"],
      ...     "seconds": [0.5, 0.1, 0.4], "count": [1, 3, 1], "total_s": [0.5, 0.3, 0.4]})
      >>> per_group_and_phase(rows)
        group_id phase  seconds  count  total_s
      0        g  init    0.500      1      0.5
      1        g  step    0.175      4      0.7
    """
    if phases is None or not {"group_id", "phase", "seconds", "count", "total_s"} <= set(phases):
        return phases
    occurrences = phases["phase"].isin(_PER_OCCURRENCE)
    counted = phases["seconds"].notna() & (phases["count"] > 0)
    weights = phases["count"].where(occurrences & counted, 0).astype("float64")
    frame = phases.assign(
        weighted=phases["seconds"].where(counted, 0) * weights,
        weight=weights,
        seconds=phases["seconds"].where(~occurrences),
    )
    sums = {c: "sum" for c in ("seconds", "count", "total_s", "weighted", "weight")}
    extremes = {c: "max" for c in frame if c.endswith("_bytes")}
    merged = frame.groupby(["group_id", "phase"], sort=False, dropna=False).agg(
        {**sums, **extremes}
    )
    mean = merged["weighted"] / merged["weight"].where(merged["weight"] > 0)
    is_occurrence = merged.index.get_level_values("phase").isin(_PER_OCCURRENCE)
    merged["seconds"] = mean.where(is_occurrence, merged["seconds"])
    return merged.drop(columns=["weighted", "weight"]).reset_index()


def _run_text(own: pd.DataFrame, groups: pd.DataFrame, timed_strategies: bool = False) -> str:
    """Where the wall time of the runs whose own rows (`_layout.BENCH`) are ``own`` went:
    their phases, and the part of ``train`` that the ``groups``' phases measured; the rest
    holds ``auto``'s timing runs where it ``timed_strategies``.

    Examples:
      >>> own = pd.DataFrame({"phase": ["plan", "train", "plan", "train"],
      ...     "total_s": [1.0, 7.0, 1.0, 1.0]})
      >>> groups = pd.DataFrame({"phase": ["init", "step"], "total_s": [1.0, 5.0]})
      >>> print(_run_text(own, groups))
      2 runs took 10 s: plan 2 s, train 8 s (the groups' init 1 s, step 5 s; \
their results, checkpoints and status 2 s); training (step, eval) 50% of it
      >>> print(_run_text(own, groups, timed_strategies=True))  # doctest: +ELLIPSIS
      2 runs took 10 s: ...; their results, checkpoints and status, and auto's timing of \
the strategies 2 s); training (step, eval) 50% of it
      >>> print(_run_text(own.iloc[:3], groups))  # the second run is training
      2 runs took 9 s: plan 2 s, train 7 s; one stopped, or is training, before its train row
    """
    spent = own.groupby("phase", sort=False)["total_s"].sum()
    order = [*_layout.BENCH_PHASES, *(p for p in spent.index if p not in _layout.BENCH_PHASES)]
    spent = spent.reindex([p for p in order if p in spent.index])  # a run's order
    runs = int((own["phase"] == "plan").sum())  # each run's rows have one (start: commands')
    wall = f"{counted(runs, 'run')} took {spent.sum():.3g} s"
    if (own["phase"] == "train").sum() < runs:  # the groups' phases hold its training
        laps = ", ".join(f"{phase} {seconds:.3g} s" for phase, seconds in spent.items())
        return f"{wall}: {laps}; one stopped, or is training, before its train row"
    parts = []
    for phase, seconds in spent.items():
        part = f"{phase} {seconds:.3g} s"
        if phase == "train":
            measured = groups.groupby("phase", sort=False)["total_s"].sum()
            inner = [f"{p} {measured[p]:.3g} s" for p in _layout.PHASE_NAMES if p in measured]
            rest = seconds - measured.sum()
            timed = ", and auto's timing of the strategies" if timed_strategies else ""
            part += f" (the groups' {', '.join(inner)}; their results, checkpoints and status"
            part += f"{timed} {rest:.3g} s)"
        parts.append(part)
    trained = groups.loc[groups["phase"].isin(["step", "eval"]), "total_s"].sum()
    share = trained / spent.sum()
    return f"{wall}: {', '.join(parts)}; training (step, eval) {share:.0%} of it"


def profile_text(directory: str | os.PathLike, timed_strategies: bool = False) -> str:
    """The profile of a bench as text: seconds per phase and group, then memory;
    ``timed_strategies``: whether ``auto`` timed the strategies of a group (its status
    entry's ``timings``), whose timing runs no phase of the groups counts.

    ``init`` and ``compile`` are seconds once per group's run, ``step`` seconds per step
    (all the group's cells at once), ``eval`` seconds per evaluation. A group has rows
    of each segment of its training and each run that trained it (an ``init`` row
    each), merged by `per_group_and_phase`: counts summed, ``init`` and ``compile``
    seconds their sums over the group's runs divided by them, ``step`` and ``eval``
    seconds their mean weighted by count.
    """
    root = pathlib.Path(directory)
    frames = _profile_frames(root, _layout.PHASES, _PHASE_COLUMNS)
    if not frames:
        lines = [
            f"bench {directory}: no phase timings: {str(root / _layout.PHASES)!r} does not "
            "exist (nor a process's profile/phases.p<i>of<n>.parquet). A run writes it once "
            "a group's state is built and at each of its checkpoints: no group has started "
            "yet, or it was deleted or moved (the results do not need it; a bench trained "
            "again in a new --dir is profiled anew)."
        ]
    else:
        lines = _phase_lines(directory, frames, timed_strategies)
    memory = read_profile(root, _layout.MEMORY, ["host_rss_bytes", "device_bytes"])
    return "\n".join(lines + _memory_lines(memory))


_PHASE_COLUMNS = ("group_id", "phase", "seconds", "count", "peak_bytes")
"""The columns of ``profile/phases`` that `profile_text` needs (every bench has them;
``total_s`` came later, and the `_layout.BENCH` rows, which it sums, have it)."""


def _phase_lines(
    directory: str | os.PathLike, frames: list[pd.DataFrame], timed_strategies: bool
) -> list[str]:
    """`profile_text`'s lines of the ``profile/phases`` files' rows ``frames``."""
    phases = pd.concat(frames, ignore_index=True)
    own = phases["group_id"].str.startswith(_layout.BENCH)
    # not the groups' rows that a file's process wrote before its runs were timed
    since = [f["group_id"].str.startswith(_layout.BENCH).cumsum() > 0 for f in frames]
    timed = ~own & pd.concat(since, ignore_index=True)
    lines: list[str] = []
    if own.any():  # benches written before runs had rows of their own have none
        lines.append(
            f"bench {directory}: {_run_text(phases[own], phases[timed], timed_strategies)}"
        )
    phases = phases[~own]
    if phases.empty:
        return lines
    merged = per_group_and_phase(phases)
    assert merged is not None  # phases is not None
    groups = merged["group_id"].unique()  # in the order written
    seconds, counts = (
        merged.pivot(index="group_id", columns="phase", values=c).reindex(groups)
        for c in ("seconds", "count")
    )
    runs = counts.get("init", 1)  # a run builds or restores once
    for phase in ("init", "compile"):
        if phase in seconds:
            seconds[phase] = seconds[phase] / runs
    phases_here = [p for p in _layout.PHASE_NAMES if p in seconds]
    table = seconds[phases_here].rename(columns={p: f"{p}_s" for p in phases_here})
    for phase, name in (("compile", "programs"), ("step", "steps"), ("eval", "evals")):
        if phase in counts:
            table[name] = counts[phase].astype("Int64")
    by_group = phases.groupby("group_id", sort=False)
    if "program_bytes" in phases:  # benches written before it was measured lack it
        table["program_MiB"] = by_group["program_bytes"].max() / 2**20
    table["peak_device_MiB"] = by_group["peak_bytes"].max() / 2**20
    lines += [
        f"bench {directory}: seconds per phase and group (compile_s: all its programs; "
        "step_s: per step, all its cells at once; eval_s: per evaluation; "
        "program_MiB: what one device needs for the group's largest program, by XLA's "
        "memory analysis; peak_device_MiB: the process's peak so far on its fullest device "
        "when the group ended, "
        "as the backend counts it, never reset; NaN where the backend reports no memory, "
        "e.g. CPU)"
    ]
    lines.append(table.to_string(float_format=lambda v: f"{v:.4g}"))
    return lines


def _memory_lines(memory: pd.DataFrame | None) -> list[str]:
    """`profile_text`'s lines of the ``profile/memory`` samples ``memory``."""
    lines: list[str] = []
    if memory is not None and len(memory):
        rss = memory["host_rss_bytes"] / 2**20
        lines.append(
            f"host RSS: peak {rss.max():.0f} MiB, mean {rss.mean():.0f} MiB "
            f"over {len(memory)} samples"
        )
        device = memory["device_bytes"].dropna()
        if len(device):
            lines.append(f"device bytes in use: peak {device.max() / 2**20:.0f} MiB")
    return lines
