"""``python -m phosjax.morph --config configs/morph_mnist1d.yaml --dir runs/morph``.

Runs the MorphNet loop of the config (`phosjax.morph.MorphConfig`): trains the start
model, then per iteration trains it with the regularizer, shrinks it to its alive
channels, expands it to the start model's cost and retrains it. A progress bar on
stderr counts the trainings and estimates the time left (``--no_progress`` hides it, for a
log); at the end it prints one row per stage. It writes them to
``DIR/morph/iterations.parquet`` after every iteration, and the variables of its last model
to ``DIR/morph/states``; the viewer shows them (``python -m phosjax.bench.view --dir DIR``).
The same command continues an interrupted run after its last iteration (a finished one:
it says so and trains nothing); ``--overwrite`` moves its rows and states aside and starts
over.

Any config key can be set or overridden on the command line (``--iterations 1``,
``--model.width '[16, 16, 16]'``); ``--print_config`` prints the resolved config
(without ``--dir``, ``--overwrite`` and ``--no_progress``), checked as a run checks its
fields (the model's ``num_classes`` and ``input_shape`` against the data set's metadata
too, and that the loop can shrink and expand the model), and exits: saved to a file and
given back with ``--config``, it runs the same loop.
"""

import dataclasses
import pathlib
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

import pandas as pd
from jsonargparse import ActionConfigFile

import phosjax.bench._interrupt  # noqa: F401  first: a Ctrl-C while jax loads is kept
from phosjax._listing import counted
from phosjax._yaml import read_file
from phosjax.bench._argv import (
    config_files,
    config_files_first,
    group_file,
    kept_refusal,
    layered_configs,
    names_as_lists,
    option_names,
)
from phosjax.bench._cli import (
    REQUIRED,
    ConfigParser,
    check_own_values,
    data_bars_hidden,
    entry_point,
    exit_process,
    flag_set_by,
    kept_in_dir,
    not_started,
    once_parsed,
    parsed_fields,
    refuse_unknown_options,
    required_as_options,
    run_config,
)
from phosjax.bench._compile_cache import add_compilation_cache, compilation_cache
from phosjax.bench._config import BenchConfig
from phosjax.bench._summary import command_line, dir_command
from phosjax.bench._usage import as_argument, usage_error
from phosjax.data._load import declared_shapes
from phosjax.models import ModelConfig
from phosjax.morph._loop import (
    ITERATIONS,
    DivergedError,
    MorphConfig,
    MorphConfigError,
    RunDirectoryError,
    check_morphable,
    dataset_error,
    resolved_model,
    run,
    shape_mismatch,
    why_no_run_starts,
)


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


_STAND_INS = {"name": "mlp", "num_classes": 1, "input_shape": (1,)}
"""A value for each `ModelConfig` field that must be given, standing in (in a config
file's check) for one that the command line sets."""


def load_config(path: str, given: Sequence[str] = ()) -> MorphConfig:
    """The `MorphConfig` of the YAML file ``path``; any problem is a ValueError naming it
    (a bench's config, the command that runs it). ``given`` are the model fields that the
    command line sets (``name``, ...): the file may leave them out (a stand-in is read).

    Examples:
      >>> import tempfile
      >>> with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as file:
      ...     _ = file.write("model: {name: mlp, num_classes: 10}")
      >>> load_config(file.name, given=["input_shape"]).model.num_classes
      10
      >>> load_config(file.name)
      Traceback (most recent call last):
      ...
      ValueError: /...yaml: MorphConfig.model: ModelConfig needs the field(s) ['input_shape']; ...
      >>> pathlib.Path(file.name).unlink()
      >>> load_config("/no/such.yaml")
      Traceback (most recent call last):
      ...
      ValueError: config file '/no/such.yaml' does not exist.
    """
    return load_configs([path], given)


def load_configs(paths: Sequence[str], given: Sequence[str] = ()) -> MorphConfig:
    """The `MorphConfig` of the YAML files ``paths``, each read over the ones before it
    (``model`` key by key, as jsonargparse reads them); a problem is a ValueError naming
    the first file from which on the config has it (`load_config`, ``given``)."""
    return _morph_config(_files_config(paths, given), given)


def _files_config(
    paths: Sequence[str],
    given: Sequence[str],
    parsed: Callable[[], Mapping[str, Any] | None] = lambda: None,
) -> dict[str, Any]:
    """The config that the YAML files ``paths`` make (`load_configs`); a problem is a
    ValueError naming the first file from which on the config has it where the run's
    config, ``parsed()`` (the command line's; None: the parser refuses it), keeps it
    (`kept_refusal`): an option may have replaced the refused value."""
    read: list[tuple[str, Mapping[str, Any]]] = []
    for path in paths:
        data = read_file(path)  # its errors name the file and say why it cannot be read
        if _is_bench_config(data):
            bench = command_line("phosjax.bench.new", ["--config", as_argument(path)])
            raise ValueError(
                f"{path}: a bench's config (models x data sets x grid), not a MorphNet loop's: "
                f"run `{bench} --dir DIR`; "
                "a MorphNet loop's config has a model, a dataset and iterations "
                "(configs/morph_mnist1d.yaml)"
            )
        if not isinstance(data, Mapping):
            raise ValueError(f"{path}: {_refused(data, given)}")
        check_own_values(path, data, ("overwrite", "no_progress"))
        read.append((path, data))
    layers = layered_configs(read, "model")
    refusal = kept_refusal(layers, lambda data: _refused(data, given), parsed)
    if refusal is not None:
        path, problem = refusal
        raise ValueError(f"{path}: {problem}")
    return layers[-1][1] if layers else {}


def _refused(data: Any, given: Sequence[str]) -> str | None:
    """Why `_morph_config` refuses ``data``; None if it takes it."""
    try:
        _morph_config(data, given)
    except (ValueError, TypeError) as error:
        return str(error)
    return None


def _morph_config(data: Any, given: Sequence[str]) -> MorphConfig:
    """`MorphConfig.from_dict` of ``data``, with a stand-in for each model field that the
    command line sets (``given``)."""
    stand_ins = {k: v for k, v in _STAND_INS.items() if k in given}
    if stand_ins and isinstance(data, Mapping):
        model = data.get("model", {})
        if isinstance(model, Mapping):
            data = {**data, "model": {**stand_ins, **model}}
    return MorphConfig.from_dict(data)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


_OWN = ("config", "dir", "overwrite", "no_progress", "print_config", "compilation_cache")
_LOOSE_MODEL_FIELDS = {
    "input_shape": (int | tuple[int, ...], "one example's shape, e.g. [40] (an int: one axis)"),
    "options": (dict[str, Any] | list[Any] | None, "model-specific extras, e.g. {dropout: 0.1}"),
}
"""The `ModelConfig` fields a config file writes in more forms than their types (which
`ModelConfig` normalizes): their types and help on the command line."""
_MODEL_DEFAULTS = {field.name: field.default for field in dataclasses.fields(ModelConfig)}
"""Each `ModelConfig` field's default (`dataclasses.MISSING`: it must be given)."""
_WRITTEN_DEFAULTS: dict[str, Any] = {"options": {}}
"""The `ModelConfig` defaults the command line writes as a config file does (``options``'
``()``, its items, would print as ``options: []``)."""


class _Parser(ConfigParser):
    """Checks the config (``--print_config``) as `MorphConfig` checks its fields, its
    model's ``num_classes`` and ``input_shape`` against the data set's metadata, and that
    the loop can shrink and expand the model (`check_morphable`; with a ``latency`` cost,
    whose table the run measures on its device, not whether its narrowest config fits:
    FLOPs price a model mixing convolutions and matmuls otherwise)."""

    own = frozenset(_OWN)

    def check(self, config: dict[str, Any], options: dict[str, Any]) -> None:
        missing = _missing_model_fields(config)
        if missing:  # as a run's usage error says it, not as ModelConfig's
            raise ValueError(
                f"the following arguments are required: {', '.join(missing)} (neither "
                "the --config files nor the command line set them)"
            )
        morph = morph_config(config)
        model = resolved_model(morph)
        try:  # as prepare checks it, from the data set's metadata: nothing prepared or read
            shape, classes = declared_shapes(
                morph.dataset,
                data_dir=morph.data_dir,
                features=morph.features,
                splits=morph.splits,
            )
        except (ValueError, PermissionError) as error:
            raise dataset_error(morph, error) from error
        problem = shape_mismatch(model, morph.dataset, shape, classes)
        if problem:
            raise MorphConfigError(problem)
        check_morphable(morph, model, priced=morph.cost != "latency")

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        """A usage error; one that misses the model's fields says where they are set."""
        if self.exit_on_error and message.startswith(REQUIRED) and "model." in message:
            usage_error(self, f"{required_as_options(message)} ({_MODEL_GIVEN})")
        super().error(message, ex)


_MODEL_GIVEN = (
    "the model's fields: a --config file of a MorphConfig sets them, e.g. --config "
    "configs/morph_mnist1d.yaml, or --model.KEY options"
)


def morph_config(fields: Mapping[str, Any]) -> MorphConfig:
    """The `MorphConfig` of the parsed ``fields``; a model field that must be given and
    was not (``None``) is left out, so the error names it as missing.

    Examples:
      >>> morph_config({"model": {"name": "mlp", "num_classes": None, "input_shape": None}})
      Traceback (most recent call last):
      ...
      phosjax.morph._loop.MorphConfigError: MorphConfig.model: ModelConfig needs the field(s)
      ['num_classes', 'input_shape']; got ['name']
    """
    model = fields.get("model")
    if isinstance(model, Mapping):
        model = {
            k: v
            for k, v in model.items()
            if v is not None or _MODEL_DEFAULTS.get(k) is not dataclasses.MISSING
        }
    return MorphConfig.from_dict({**fields, "model": model})


def parser() -> _Parser:
    """The command line of ``python -m phosjax.morph``: the command's own options, and
    every `MorphConfig` field (``--model.<field>`` for the model's)."""
    parser = _Parser(prog="python -m phosjax.morph", description=__doc__)
    parser.add_argument(
        "--config", action=ActionConfigFile, help="a YAML file of MorphConfig fields"
    )
    parser.add_argument(
        "--dir",
        required=True,
        help="the run directory, for DIR/morph/iterations.parquet (a bench's own directory "
        "works, a folder inside a bench does not)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start over: move the rows and states of an earlier run in --dir aside (to "
        "iterations.parquet.old-<time>, states.old-<time>) rather than continue it",
    )
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    add_compilation_cache(parser)
    parser.add_class_arguments(ModelConfig, "model", skip=set(_LOOSE_MODEL_FIELDS))
    model = (parser.groups or {})["model"]  # its --help lists them with the others
    for name, (kind, help) in _LOOSE_MODEL_FIELDS.items():
        default = _WRITTEN_DEFAULTS.get(name, _MODEL_DEFAULTS[name])
        given: dict[str, Any] = (
            {"required": True} if default is dataclasses.MISSING else {"default": default}
        )
        model.add_argument(f"--model.{name}", type=kind, help=help, **given)
    parser.add_class_arguments(MorphConfig, None, skip={"model"})
    return parser


_LISTS = {
    "--features": "pixels,digit",
    "--splits": "train,val",
    "--features+": "digit",
    "--splits+": "val",
}
"""The options of a list of names, each with names as it takes them joined by commas
(``--features+`` appends them to the list so far, as ``new --models+`` does)."""


def _model_fields_given(argv: Sequence[str]) -> list[str]:
    """The `ModelConfig` fields that ``argv`` sets (``--model FILE``: all of them).

    Examples:
      >>> _model_fields_given(["--config", "a.yaml", "--model.input_shape=40", "--steps", "9"])
      ['input_shape']
      >>> len(_model_fields_given(["--model", "m.yaml"])) == len(_MODEL_DEFAULTS)
      True
    """
    options = option_names(argv)
    if "--model" in options:
        return list(_MODEL_DEFAULTS)
    return [name for name in _MODEL_DEFAULTS if f"--model.{name}" in options]


def _missing_model_fields(config: Mapping[str, Any]) -> list[str]:
    """The options of the `ModelConfig` fields that must be given and that neither the
    config files nor the command line set (``None`` in the parsed ``config``).

    Examples:
      >>> _missing_model_fields({"model": {"name": "mlp", "num_classes": None}})
      ['--model.num_classes', '--model.input_shape']
    """
    model = config.get("model")
    model = model if isinstance(model, Mapping) else {}
    return [
        f"--model.{name}"
        for name, default in _MODEL_DEFAULTS.items()
        if default is dataclasses.MISSING and model.get(name) is None
    ]


def _source(argv: Sequence[str]) -> str:
    """Where the config came from, to start an error about it: the ``--config`` files,
    and ``the command line`` where it sets keys (``--model``'s file named).

    Examples:
      >>> _source(["--config", "a.yaml", "--dir", "d"])
      'a.yaml'
      >>> _source(["--config", "a.yaml", "--iterations", "1", "--dir", "d"])
      'a.yaml with the command line (--iterations)'
      >>> _source(["--dir", "d"])
      'the command line'
      >>> _source(["--model", __file__, "--dir", "d"]) == f"the command line (--model {__file__})"
      True
    """
    given = option_names(argv)
    model_file = group_file(argv, "model")
    keys = [
        f"{arg} {shlex.quote(model_file)}" if arg == "--model" and model_file else arg
        for arg in dict.fromkeys(given)  # each once
        if arg[2:] not in _OWN
    ]
    files = ", ".join(config_files(argv))
    if files and not keys:
        return files
    line = f"the command line ({', '.join(keys)})" if keys else "the command line"
    return f"{files} with {line}" if files else line


def _kept(directory: str, command: str, argv: Sequence[str]) -> str:
    """What Ctrl-C leaves of ``python -m phosjax.morph ARGV`` (``command``), for
    `kept_in_dir`: the rows in ``directory`` (the start model's and those of each
    iteration finished), and the command that continues the loop (``command`` without
    ``--overwrite``, or a ``--config`` file's ``overwrite: true``, which would start it
    over); without rows, the command that starts it,
    or why no run can start in ``directory`` (`why_no_run_starts`).

    Examples:
      >>> said = kept_in_dir("phosjax.morph", _kept)(["--config", "my m.yaml", "--dir", "/no/run"])
      >>> print(*said.split("; "), sep="\\n")
      no rows were written in --dir '/no/run' yet
      the same command starts the loop: python -m phosjax.morph --config 'my m.yaml' --dir /no/run
    """
    path = pathlib.Path(directory) / ITERATIONS
    if not path.exists():
        return not_started(
            f"no rows were written in --dir {directory!r} yet",
            "run",
            lambda: why_no_run_starts(directory),
            lambda: f"the same command starts the loop: {command}",
        )
    try:
        done = int(pd.read_parquet(path, columns=["iteration"])["iteration"].max())
        owner = counted(done, "iteration") + ("'s" if done == 1 else "'")
        kept = "the start model's rows" + (f" and {owner}" if done else "")
    except (OSError, ValueError, KeyError):  # a file cut short, or not the loop's rows
        kept = "the rows written"
    overwritten_by = _PARSED["overwritten_by"]  # it would start over
    same = "the same command"
    if overwritten_by == ["--overwrite"]:
        same = "this command"
    elif overwritten_by:  # a file's: the command given, that file without it
        same = f"the command without {' and '.join(overwritten_by)}"
    if overwritten_by:
        command = command_line("phosjax.morph", [arg for arg in argv if arg != "--overwrite"])
    return f"{directory!r} keeps {kept} in {ITERATIONS}; {same} continues it: {command}"


_PARSED: dict[str, Any] = {}
"""What `main` parsed of the options that a ``--config`` file may set too, for the Ctrl-C
line (`once_parsed`, `_kept`): ``dir``, and ``overwritten_by``, what set ``overwrite``
(`flag_set_by`); empty until `main` parsed its command line."""


def rows_table(rows: pd.DataFrame) -> str:
    """The run's ``rows`` as the command prints them: params and FLOPs as the counts they
    are, the latency to three significant digits, as the viewer shows them (six decimals
    showed 3.51e-6 and 3.65e-6 s both as 0.000004).

    Examples:
      >>> rows = pd.DataFrame({"iteration": [0], "kind": ["start"], "widths": ["[32]"],
      ...     "params": [7946.0], "flops": [99200.0], "latency_s": [3.5612e-6],
      ...     "accuracy": [0.882]})
      >>> print(rows_table(rows))
       iteration  kind widths params flops latency_s  accuracy
               0 start   [32]   7946 99200  3.56e-06     0.882
    """
    columns = ["iteration", "kind", "widths", "params", "flops", "latency_s", "accuracy"]
    count, significant = "{:.0f}".format, "{:.3g}".format
    formats = {"params": count, "flops": count, "latency_s": significant}
    return rows[columns].to_string(index=False, formatters=formats)


@entry_point(once_parsed("phosjax.morph", _PARSED, kept_in_dir("phosjax.morph", _kept)))
def main(argv: Sequence[str] | None = None) -> int:
    """Parses the command line and runs the MorphNet loop (see `phosjax.morph.run`).

    Returns 0, or 2 after printing ``error: <file>: ...`` when the config file is invalid
    or names a model or data set that cannot run (``error: <file> with the command line
    (--key): ...`` when options set keys), or ``error: --dir: ...`` when ``--dir``
    holds an earlier run's rows it cannot continue (without ``--overwrite``), lies inside
    a bench or a run's ``morph`` folder, is being written by another run or cannot be
    written (all checked before
    anything trains), or ``error: <file>: training ... diverged: ...`` when a training
    leaves NaN or infinity in the variables; a misspelt option is a usage error naming
    the nearest one.
    """
    _PARSED.clear()  # a call before's
    try:
        argv = names_as_lists(
            config_files_first(sys.argv[1:] if argv is None else argv), _LISTS, null=True
        )
    except ValueError as error:
        return _fail(str(error))
    command_line = parser()
    refuse_unknown_options(command_line, argv)
    given = _model_fields_given(argv)
    try:
        if config_files(argv):  # named, clear errors before jsonargparse's
            parsed = lambda: run_config(parser(), argv, _OWN)  # only where they are refused
            _files_config(config_files(argv), given, parsed)
    except ValueError as error:
        return _fail(str(error))
    source = _source(argv)
    try:
        args = command_line.parse_args(argv)
        config = morph_config(parsed_fields(args, _OWN))
    except (ValueError, TypeError) as error:  # a MorphConfigError, a ModelConfig's
        return _fail(f"{source}: {error}")
    overwritten_by = flag_set_by(argv, "overwrite") if args.overwrite else []
    _PARSED.update(dir=args.dir, overwritten_by=overwritten_by)
    rows_file = pathlib.Path(args.dir) / ITERATIONS
    before = rows_file.stat().st_mtime_ns if rows_file.is_file() else None  # a finished run's: kept
    try:
        with (
            data_bars_hidden(args.no_progress),
            compilation_cache(args.compilation_cache, args.dir),
        ):
            rows = run(config, args.dir, overwrite=args.overwrite, progress=not args.no_progress)
    except RunDirectoryError as error:  # --dir's, not the config file's
        return _fail(f"--dir: {error}")
    except MorphConfigError as error:  # raised before anything trains or is written
        return _fail(f"{source}: {error}")
    except DivergedError as error:  # a rate or strength of the config's too high
        return _fail(f"{source}: {error}")
    print(rows_table(rows))
    written = before is None or rows_file.stat().st_mtime_ns != before
    print(f"{'wrote' if written else 'its rows are in'} {rows_file}", file=sys.stderr)
    print(f"view it: {dir_command('phosjax.bench.view', args.dir)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    exit_process(main())
