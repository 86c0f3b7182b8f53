"""``python -m phosjax.bench.speed``: model-steps/s of grids of K small models, five ways.

In ONE run on the current backend, for each model (``mlp``, ``cnn1d``, ``cnn2d``,
``transformer``) and grid size K it times one jitted Adam step per model one after
another (``one_by_one``), plain ``jax.vmap`` over stacked params (``vmap``), the phosjax
engine (``engine``), one model on batch K x B (``fused``, the ceiling) and, if torch is
installed, ``torch.func.vmap`` (``torch``). It prints a table of absolute rates and
engine/method ratios and writes ``speed.parquet`` (one row per model, K, method),
``speed.txt`` and a plot (``speed.png``, or ``speed.svg`` without matplotlib) to ``--out``
(an earlier run's files there are moved aside to ``<name>.old-<time>``, never overwritten;
a bench, a folder inside one or one holding other files is refused).

Example: ``python -m phosjax.bench.speed --models mlp,cnn1d --sizes 1,8,64 --out runs/speed``
(a list may also be written as ``new`` takes one: ``--sizes '[1, 8, 64]'``).
"""

import contextlib
import pathlib
import re
import sys
from argparse import Action
from collections.abc import Sequence
from typing import Any

from jsonargparse import ArgumentParser, DefaultHelpFormatter

import phosjax.bench._interrupt  # noqa: F401  first: a Ctrl-C while jax loads is kept
from phosjax._listing import listing
from phosjax._nearest import did_you_mean
from phosjax.bench import _layout
from phosjax.bench._argv import comma_names, option_value
from phosjax.bench._cli import (
    Parser,
    either,
    entry_point,
    exit_process,
    then_command,
)
from phosjax.bench._config import BenchError
from phosjax.bench._speed import METHODS, MODELS, SpeedConfig, measure
from phosjax.bench._speed_config import SpeedConfigError
from phosjax.bench._speed_report import OUTPUTS, move_earlier, table, write
from phosjax.bench._store import is_temporary
from phosjax.bench._usage import expand_dirs
from phosjax.train import COMPUTE_DTYPES, STRATEGIES

QUICK: dict[str, Any] = {"sizes": "2", "steps": 2, "batch": 8, "min_time": 0.0}
"""``--quick``: one tiny grid, a smoke test of every method (its figures mean nothing)."""

DEFAULTS: dict[str, Any] = {"sizes": "1,8,64,256", "steps": 100, "batch": 128, "min_time": 0.25}
"""The values of the options `QUICK` sets, without ``--quick``."""


class _QuickHelp(DefaultHelpFormatter):
    """jsonargparse's help, where an option ``--quick`` sets (its parsed default None,
    shown ``default: null``) shows its default and ``--quick``'s value."""

    def _get_help_string(self, action: Action) -> str:
        text = super()._get_help_string(action)
        if action.dest not in DEFAULTS:
            return text
        both = f"default: {DEFAULTS[action.dest]}; --quick: {QUICK[action.dest]}"
        return text.replace("default: %(default)s", both)


_OUT = "runs/speed"
"""Where ``--out`` defaults to."""


def parser() -> ArgumentParser:
    """The command line of ``phosjax.bench.speed``."""
    parser = Parser(
        prog="python -m phosjax.bench.speed", description=__doc__, formatter_class=_QuickHelp
    )
    parser.add_argument(
        "--models",
        type=str,
        default=",".join(MODELS),
        help=f"comma-separated, any of {', '.join(MODELS)}",
    )
    parser.add_argument("--sizes", type=str, default=None, help="grid sizes K")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per model")
    parser.add_argument("--batch", type=int, default=None, help="examples per model step")
    parser.add_argument(
        "--methods",
        type=str,
        default=",".join(METHODS),
        help=f"comma-separated, any of {', '.join(METHODS)}",
    )
    parser.add_argument(
        "--strategy",
        type=str,
        default="auto",
        help=f"the engine's strategy: {either(('auto', *STRATEGIES))}",
    )
    parser.add_argument(
        "--compute_dtype",
        type=str,
        default="float32",
        help=f"{either(COMPUTE_DTYPES)}, for every method",
    )
    parser.add_argument(
        "--budget", type=float, default=120.0, help="skip runs estimated to take longer (s; 0: no)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed rounds, methods taking turns; fastest counts"
    )
    parser.add_argument(
        "--min_time",
        type=float,
        default=None,
        help="seconds a timing lasts at least; faster methods repeat their steps",
    )
    parser.add_argument("--out", type=str, default=_OUT, help="the output directory")
    quick = " ".join(f"--{key} {value}" for key, value in QUICK.items())
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a tiny smoke run: {quick}, where those options are not given",
    )
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    return parser


def _names(option: str, text: str, example: str, noun: str = "name") -> tuple[str, ...]:
    """The items of a comma-separated option, bracketed or not (``new`` writes a list
    ``[a, b]``); none for an empty value; an empty item, a ``noun``, is an error
    (`comma_names`).

    Examples:
      >>> _names("--models", "mlp,cnn1d", "mlp,cnn1d"), _names("--sizes", " [1, 8] ", "1,8")
      (('mlp', 'cnn1d'), ('1', '8'))
      >>> _names("--models", "mlp,,cnn1d", "mlp,cnn1d")
      Traceback (most recent call last):
      ...
      phosjax.bench._errors.BenchError: --models 'mlp,,cnn1d' holds an empty name (before, ...
    """
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return tuple(comma_names(option, text, example, noun)) if text.strip() else ()


def config_from_args(args: Any) -> SpeedConfig:
    """The `SpeedConfig` of parsed arguments; bad values raise `BenchError`.

    Examples:
      >>> config_from_args(parser().parse_args(["--quick", "--models", "mlp"])).sizes
      (2,)
    """
    get = args.__getitem__
    base = QUICK if get("quick") else DEFAULTS
    values = {key: base[key] if get(key) is None else get(key) for key in base}
    given_sizes = _names("--sizes", str(values["sizes"]), "1,8,64", "size")
    sizes = []
    for size in given_sizes:
        try:
            sizes.append(int(size))
        except ValueError as error:
            raise BenchError(
                f"--sizes {values['sizes']!r}: expected integers like 1,8,64, got {size!r}"
            ) from error
    strategies = ("auto", *STRATEGIES)
    if get("strategy") not in strategies:
        near = did_you_mean([str(get("strategy"))], strategies)
        raise BenchError(
            f"--strategy: unknown {get('strategy')!r}; choose from {list(strategies)}{near}"
        )
    try:
        return SpeedConfig(
            models=_names("--models", get("models"), "mlp,cnn1d"),
            sizes=tuple(sizes),
            steps=int(values["steps"]),
            batch=int(values["batch"]),
            methods=_names("--methods", get("methods"), "vmap,engine"),
            strategy=get("strategy"),
            compute_dtype=get("compute_dtype"),
            budget=get("budget"),
            repeats=get("repeats"),
            min_time=float(values["min_time"]),
        )
    except SpeedConfigError as error:
        raise BenchError(f"--{error.field}: {error.problem}") from error


def _check_out(out: pathlib.Path, given: str) -> None:
    """Raises a `BenchError` naming ``--out`` (``given``) unless it is new, empty or an
    earlier speed run's: a file, a bench (or a folder inside one, whose ``results`` would
    read ``speed.parquet`` as its rows) or a folder holding other files is refused.

    Examples:
      >>> import tempfile
      >>> out = pathlib.Path(tempfile.mkdtemp()); _ = (out / "notes.txt").write_text("mine")
      >>> _check_out(out, "o")
      Traceback (most recent call last):
      phosjax.bench._errors.BenchError: --out 'o' holds notes.txt, which no speed run ...
    """
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {given!r} is a file; it must be a directory (made if new).")
    bench = out.resolve() if _layout.is_bench(out) else _layout.enclosing_bench(out)
    if bench is not None:
        where = "is a bench" if bench == out.resolve() else f"is inside the bench {str(bench)!r}"
        raise BenchError(
            f"--out {given!r} {where}, whose files speed.* would mix with its own; pick an "
            "--out outside it (new, empty or an earlier speed run's)."
        )
    ours = re.compile(rf"({'|'.join(map(re.escape, OUTPUTS))})(\.old-[-0-9]+)?")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    others = [n for n in entries if not (ours.fullmatch(n) or is_temporary(n))]
    if others:
        raise BenchError(
            f"--out {given!r} holds {listing(others)}, which no speed run wrote; "
            "pick a new or empty --out, or an earlier speed run's (its files are moved aside)."
        )


def _interrupted(argv: Sequence[str]) -> str:
    """What Ctrl-C leaves of ``speed`` run with ``argv``: the cases measured so far, and
    the same command, which measures them all again; where the command refuses its
    ``--out`` (`_check_out`, before it writes anything), that nothing was written and why."""
    given = option_value(expand_dirs(argv), "--out") or _OUT
    with contextlib.suppress(OSError):  # unlistable: the command says why when run
        try:
            _check_out(pathlib.Path(given), given)
        except BenchError as error:
            return f"nothing was written in --out {given!r}; no speed run can start there: {error}"
    return then_command(
        "phosjax.bench.speed",
        "the (model, K) cases measured so far are kept in --out's speed.parquet (speed.txt "
        "and the plot, written after it, may lack the last); nothing resumes: the same "
        "command measures them all again (moving those files aside):",
    )(argv)


@entry_point(_interrupted)
def main(argv: Sequence[str] | None = None) -> None:
    """Runs the command line ``argv`` (default ``sys.argv[1:]``)."""
    args = parser().parse_args(argv)
    config = config_from_args(args)
    out = pathlib.Path(args.out)
    _check_out(out, args.out)
    try:  # before anything is measured
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BenchError(f"--out {args.out!r}: cannot make the directory ({error}).") from error
    for moved in move_earlier(out):  # never overwritten
        print(f"moved the earlier {moved.name.split('.old-')[0]} to {moved}", file=sys.stderr)
    paths: dict[str, Any] = {}  # written after each (model, K): a run cut off keeps its cases
    frame = measure(
        config,
        progress=not args.no_progress,
        on_case=lambda so_far: paths.update(write(so_far, args.out)),
    )
    print(table(frame))
    print("wrote " + ", ".join(str(path) for path in paths.values()))


if __name__ == "__main__":
    exit_process(main())
