"""``python -m phosjax.morph --config configs/morph_mnist1d.yaml --dir runs/morph``.

Runs the MorphNet loop of the config (`phosjax.morph.MorphConfig`): trains the start
model, then per iteration trains it with the regularizer, shrinks it to its alive
channels, expands it to the start model's cost and retrains it. Prints one row per
stage and writes them to ``DIR/morph/iterations.parquet`` after every iteration; the
viewer shows them (``python -m phosjax.bench.view --dir DIR``). An interrupted run does
not resume: ``--overwrite`` moves its rows aside and starts over.
"""

import dataclasses
import pathlib
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

import phosjax.bench._interrupt  # noqa: F401  first: a Ctrl-C while jax loads is kept
from phosjax._yaml import safe_load
from phosjax.bench._cli import entry_point, exit_process
from phosjax.bench._config import BenchConfig
from phosjax.bench._summary import dir_command
from phosjax.bench._usage import ArgParser
from phosjax.morph._loop import ITERATIONS, MorphConfig, MorphConfigError, RunDirectoryError, run


def _is_bench_config(data: Any) -> bool:
    """Whether ``data`` reads as a config of ``python -m phosjax.bench.new`` (its keys all
    a `BenchConfig`'s, ``models`` or ``grid`` among them), rather than of a MorphNet loop.

    Examples:
      >>> _is_bench_config({"models": ["mlp"], "grid": {"steps": 400}})
      True
      >>> _is_bench_config({"model": {"name": "mlp"}}), _is_bench_config(None)
      (False, False)
    """
    fields = {field.name for field in dataclasses.fields(BenchConfig)}
    if not isinstance(data, Mapping):
        return False
    return bool({"models", "grid"} & set(data)) and set(data) <= fields


def load_config(path: str) -> MorphConfig:
    """The `MorphConfig` of the YAML file ``path``; any problem is a ValueError naming it
    (a bench's config, the command that runs it)."""
    try:
        data = safe_load(pathlib.Path(path).read_text(encoding="utf-8"))
        if _is_bench_config(data):
            raise ValueError(
                "a bench's config (models x data sets x grid), not a MorphNet loop's: run "
                f"`python -m phosjax.bench.new --config {path} --dir DIR`; a MorphNet loop's "
                "config has a model, a dataset and iterations (configs/morph_mnist1d.yaml)"
            )
        return MorphConfig.from_dict(data)
    except (OSError, yaml.YAMLError, ValueError, TypeError) as error:
        raise ValueError(f"{path}: {error}") from error


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


@entry_point(
    "the rows of the iterations finished so far are kept in --dir's morph/iterations.parquet; "
    "the loop does not resume: run again with --overwrite to start over (it moves them aside)."
)
def main(argv: Sequence[str] | None = None) -> int:
    """Parses the command line and runs the MorphNet loop (see `phosjax.morph.run`).

    Returns 0, or 2 after printing ``error: <file>: ...`` when the config file is invalid
    or names a model or data set that cannot run, or ``error: --dir: ...`` when ``--dir``
    holds an earlier run's rows (without ``--overwrite``), lies inside a bench or cannot
    be written (all checked before anything trains).
    """
    parser = ArgParser(prog="python -m phosjax.morph", description=__doc__)
    parser.add_argument("--config", required=True, help="a YAML file of MorphConfig fields")
    parser.add_argument(
        "--dir",
        required=True,
        help="the run directory, for DIR/morph/iterations.parquet (a bench's own directory "
        "works, a folder inside a bench does not)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="move the rows of an earlier run in --dir aside (to iterations.parquet.old-<time>)",
    )
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ValueError as error:
        return _fail(str(error))
    try:
        rows = run(config, args.dir, overwrite=args.overwrite)
    except RunDirectoryError as error:  # --dir's, not the config file's
        return _fail(f"--dir: {error}")
    except MorphConfigError as error:  # raised before anything trains or is written
        return _fail(f"{args.config}: {error}")
    columns = ["iteration", "kind", "widths", "params", "flops", "latency_s", "accuracy"]
    print(rows[columns].to_string(index=False))
    print(f"wrote {pathlib.Path(args.dir) / ITERATIONS}", file=sys.stderr)
    print(f"view it: {dir_command('phosjax.bench.view', args.dir)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    exit_process(main())
