"""``python -m phosjax.bench.new --config FILE --dir DIR``: plan, train and write a bench.

Any config key can be overridden on the command line (``--grid.learning_rate '[0.1,
0.01]'``; ``--models`` and ``--datasets`` take one name or several, joined by commas or not,
or a YAML list: ``--models mlp,cnn1d``, and ``--models+ gru`` appends); ``--print_config``
prints the resolved bench config (without the command's own options such as ``--dir``),
after checking it as a run would (keys, values, model names once ``--import`` ran, data set
names, each model entry's depth, width and options where a data set's metadata gives its
input shape), and exits: saved to a file and passed back with ``--config``, it plans the
same grid. Running the same command again continues an interrupted bench from its
checkpoints; so does ``--dir DIR`` alone (no config given), which never trains the built-in
defaults into a new directory, and ``--dir DIR --data_dir NEW`` continues it reading its
data sets from ``NEW``. A bench records the ``--import`` modules that registered its models
(``bench.json``'s ``imports``) and imports them again when continued, so ``--dir DIR`` alone
continues a bench of your own models too. Processes (hosts) share a bench when each runs
the command with ``--coordinator HOST:PORT --processes N --process_id I`` (or ``--distributed``
in a Slurm, Open MPI or TPU job): docs/results.md, "Several hosts".
"""

import contextlib
import dataclasses
import json
import pathlib
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import yaml
from jsonargparse import ActionConfigFile, ArgumentParser

import phosjax.bench._interrupt  # noqa: F401  first: a Ctrl-C while jax loads is kept
from phosjax._yaml import safe_load
from phosjax.bench import _layout, _plan
from phosjax.bench._argv import (
    config_files,
    config_files_first,
    dir_option,
    group_file,
    kept_refusal,
    layered_configs,
    names_as_lists,
    option_names,
)
from phosjax.bench._cli import (
    ConfigParser,
    add_common,
    check_own_values,
    data_bars_hidden,
    entry_point,
    exit_process,
    flag_set_by,
    kept_in_bench,
    once_parsed,
    parsed_fields,
    refuse_unknown_options,
    run_config,
    setting_file,
)
from phosjax.bench._compile_cache import add_compilation_cache, compilation_cache
from phosjax.bench._config import NAMED_HPARAMS, BenchConfig, BenchError, Grid, read_yaml
from phosjax.bench._directory import check_dir_kind, open_bench, shown_differences
from phosjax.bench._imports import import_for_bench, planned_models
from phosjax.bench._join import JOINING, add_join_options, join_processes
from phosjax.bench._plan import check_models
from phosjax.bench._profile import time_start_up
from phosjax.bench._runner import run, starts_anew
from phosjax.bench._summary import command_line
from phosjax.bench._usage import as_argument
from phosjax.models._config import is_int
from phosjax.morph._loop import MorphConfig
from phosjax.train import STRATEGIES

_OWN = (
    "config",
    "dir",
    "import",
    "resume",
    "force",
    "no_progress",
    "compilation_cache",
    *JOINING,
    "distributed",
    "join_timeout",
)
_FLAGS = ("resume", "force", "no_progress", "distributed")
"""The own options that are flags: a config file sets each true or false."""


class _Parser(ConfigParser):
    """Checks the bench config (``--print_config``) as a run would: keys, values, model
    names after ``--import``, ``--dir`` (a directory or none yet), data set names
    (`phosjax.data.check_loadable`), and each models entry's depth, width and options on
    each data set whose metadata declares its input shape and class count
    (`_plan.check_model_sizes`), and the grid's knob selectors where every data set's does
    (`_plan.check_knobs`); a note on stderr names the data sets it could not check
    them on (a label that is no ``ClassLabel``). Options without ``--config`` on a bench in
    ``--dir`` are refused as a run refuses them (`_refuse_defaults_for_a_bench`): they set
    keys of the built-in defaults, not the bench's."""

    own = frozenset(_OWN)

    def check(self, config: dict[str, Any], options: dict[str, Any]) -> None:
        bench = BenchConfig.from_dict(config)
        directory, force = options.get("dir"), bool(options.get("force"))
        keys = _config_keys(self.argv)
        given = keys and "config" not in keys and not (options.get("resume") or force)
        if directory is not None:
            check_dir_kind(pathlib.Path(directory))  # as the run does
        if given and directory is not None:  # no --dir: no bench to differ from
            _refuse_defaults_for_a_bench(directory, bench, self.argv)  # as main does
        import_for_bench(
            directory, options.get("import") or [], planned_models(directory, bench, force)
        )
        check_models(bench.model_entries())
        shapes = _plan.check_datasets(
            bench.datasets, bench.data_dir, bench.dataset_features, bench.dataset_splits
        )
        if directory is None or starts_anew(
            pathlib.Path(directory), bench, bool(options.get("resume")), force
        ):
            _plan.check_distinct_datasets(bench)  # a bench made so before continues
        with _entry_errors_named(self.argv, bool(options.get("resume"))):
            _plan.check_model_sizes(bench, shapes)
        unchecked = [name for name in bench.datasets if name not in shapes]
        if not unchecked:  # a knob may be on a model's config on another data set alone
            _plan.check_knobs(bench, shapes)
        if unchecked:
            print(
                f"note: the models entries' depth, width and options were not checked on "
                f"{', '.join(unchecked)}: a label that is no ClassLabel declares no number of "
                "classes, known only once the data is loaded (a run checks them as it plans).",
                file=sys.stderr,
            )


_NAMED = {
    **{f"grid.{name}": names for name, names in NAMED_HPARAMS.items()},
    "strategy": ("auto", *STRATEGIES),
}
"""The options whose values are names, and the names each takes (``--help`` lists them)."""


def parser() -> ArgumentParser:
    """The command line of ``phosjax.bench.new``."""
    parser = _Parser(prog="python -m phosjax.bench.new", description=__doc__)
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML bench config")
    add_common(parser)
    add_join_options(parser)
    parser.add_argument("--resume", action="store_true", help="continue the bench in --dir")
    parser.add_argument(
        "--force",
        action="store_true",
        help="move aside a bench of another config and start over (a bench of the same "
        "config continues)",
    )
    parser.add_argument("--no_progress", action="store_true", help="no progress bar, no summary")
    add_compilation_cache(parser)
    parser.add_class_arguments(BenchConfig, None, fail_untyped=False)
    for action in parser._actions:
        if action.dest in _NAMED:
            names = f"One of: {', '.join(_NAMED[action.dest])}."
            action.help = f"{action.help} {names}" if action.help else names
    actions = {action.dest: action for action in parser._actions}
    _before_appending(actions["seeds"], _seeds_counted)
    _before_appending(actions["grid.width"], _widths_whole)
    return parser


def _before_appending(action: Any, before: Callable[[Any, Any], tuple[Any, str]]) -> None:
    """Makes ``action`` call ``before(namespace, value)`` when its ``+`` option appends
    ``value``, and parse the value and option it returns instead."""
    parse = type(action).__call__
    appending = f"{action.option_strings[0]}+"

    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if len(args) == 4 and args[3] == appending:  # (parser, namespace, value, option)
            args = (args[0], args[1], *before(args[1], args[2]))
        return parse(self, *args, **kwargs)

    action.__class__ = type(
        f"{type(action).__name__}Appending", (type(action),), {"__call__": call}
    )


def _seeds_counted(namespace: Any, value: Any) -> tuple[Any, str]:
    """For ``--seeds+``: a number of seeds so far as the seeds it numbers (``seeds: 2``: 0
    and 1); jsonargparse took the number for a seed (``--seeds+ 5`` on ``seeds: 2``
    planned seeds 2 and 5, not 0, 1 and 5)."""
    count = namespace.get("seeds")
    if isinstance(count, int) and not isinstance(count, bool):
        namespace["seeds"] = list(range(count))
    return value, "--seeds+"


def _widths_whole(namespace: Any, value: Any) -> tuple[Any, str]:
    """For ``--grid.width+``: the widths so far with those ``value`` gives (one, or a YAML
    list of them; ``null``: the model's own), as ``--grid.width``'s value; jsonargparse
    appended within each width too (``--grid.width 8 --grid.width+ 16`` planned the
    two-stage width [8, 8] and 16, not 8 and 16). A value YAML cannot read, or that holds
    anything but widths (``abc``, ``true``, ``[2.5]``), is left to the parser, which says
    so of the value as given."""
    try:
        given = safe_load(value) if isinstance(value, str) else value
    except yaml.YAMLError:
        return value, "--grid.width+"
    added = given if isinstance(given, list) else [given]
    if not all(
        width is None or is_int(width) or (isinstance(width, list) and all(map(is_int, width)))
        for width in added
    ):
        return value, "--grid.width+"
    so_far = namespace.get("grid.width")
    widths = [] if so_far is None else so_far if isinstance(so_far, list) else [so_far]
    return json.dumps([*widths, *added]), "--grid.width"


def _is_morph_config(data: Any) -> bool:
    """Whether ``data`` reads as a config of ``python -m phosjax.morph`` (a `MorphConfig`:
    a ``model`` and its other fields alone), rather than of a bench.

    Examples:
      >>> _is_morph_config({"model": {"name": "cnn1d"}, "iterations": 2})
      True
      >>> _is_morph_config({"model": ["mlp"]}), _is_morph_config({"models": ["mlp"]})
      (False, False)
    """
    fields = {field.name for field in dataclasses.fields(MorphConfig)}
    if not isinstance(data, Mapping):
        return False
    return isinstance(data.get("model"), Mapping) and set(data) <= fields


def _config_layers(argv: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    """The configs that the ``--config`` files of ``argv`` make, each read over the ones
    before it (``grid`` key by key, as jsonargparse reads them), then its ``--grid`` file
    (given once) over them, each with its path (`layered_configs`); the command's own
    keys (``dir``, ``resume``, ...) left out. A ``--grid`` file the parser refuses
    (unreadable, a key not of ``grid``) is left to it.

    Raises:
      BenchError: a file is a config of ``python -m phosjax.morph``, holds no mapping, or
        sets an own option to a value the parser would take as it is (`check_own_values`).
    """
    paths = config_files(argv)
    read: list[tuple[str, Mapping[str, Any]]] = []
    for path in paths:
        data = read_yaml(path)
        if _is_morph_config(data):
            morph = command_line("phosjax.morph", ["--config", as_argument(path)])
            raise BenchError(
                f"{path} is a config of `python -m phosjax.morph` (a model and its MorphNet "
                f"loop), not of a bench: run `{morph} "
                "--dir DIR`; a bench config has models, datasets and grid (configs/example.yaml)."
            )
        if not isinstance(data, Mapping):
            raise BenchError(f"{path}: {_refused(data)}")
        check_own_values(
            path, data, _FLAGS, imports=True
        )  # the parser took any: 'resume: [1]' resumed
        read.append((path, {k: v for k, v in data.items() if k not in _OWN}))
    grid_file = group_file(argv, "grid")
    if grid_file is not None and (grid := _grid_keys(grid_file)) is not None:
        read.append((grid_file, {"grid": grid}))
    return layered_configs(read, "grid")


def _check_config_files(argv: Sequence[str]) -> None:
    """Raises a `BenchError` where the config that the files of ``argv`` make
    (`_config_layers`) is one a run refuses and the run's config keeps the problem
    (`kept_refusal`), naming the first file from which on it is refused and the bad key
    or value (clearer than jsonargparse's)."""
    parsed = lambda: run_config(parser(), argv, _OWN)  # only where the files are refused
    refusal = kept_refusal(_config_layers(argv), _refused, parsed)
    if refusal is not None:
        raise BenchError(f"{refusal[0]}: {refusal[1]}")


def _grid_keys(path: str) -> Mapping[str, Any] | None:
    """The mapping of ``grid`` keys in ``path``; None where it holds anything else."""
    try:
        data = read_yaml(path)
    except BenchError:
        return None
    keys = {field.name for field in dataclasses.fields(Grid)}
    return data if isinstance(data, Mapping) and set(data) <= keys else None


@contextlib.contextmanager
def _entry_errors_named(argv: Sequence[str], resume: bool) -> Iterator[None]:
    """Names the ``--config`` file of ``argv`` that sets ``models`` (`setting_file`: no
    ``--models`` option does) in an `_plan.EntryError`, which planning raises where the
    file is not known, as the other errors of a file's config name it, and another that
    sets ``datasets``, which the error names an entry on (``a.yaml (models), b.yaml
    (datasets): model 'cnn2d' on 'mnist1d' takes image inputs``); ``resume``: the bench's
    stored config is planned, not the file's."""
    try:
        yield
    except _plan.EntryError as error:
        path = None if resume else setting_file(argv, "models", None)
        if path is None:
            raise
        datasets = setting_file(argv, "datasets", None)
        if datasets not in (None, path):
            path = f"{path} (models), {datasets} (datasets)"
        raise BenchError(f"{path}: {error}") from error


def _refused(data: Any) -> str | None:
    """Why `BenchConfig.from_dict` refuses ``data``; None if it takes it."""
    try:
        BenchConfig.from_dict(data)
    except BenchError as error:
        return str(error)
    return None


def _config_keys(argv: Sequence[str]) -> set[str]:
    """The bench config ``argv`` gives: ``config`` for ``--config``, and each top-level
    key set on the command line (``--models ...``, ``--grid.steps=20``, ``--models+
    gru``, which appends to it). Without any, ``new`` continues the bench in ``--dir``,
    and a new ``--dir`` is an error (never the built-in defaults); ``data_dir`` alone
    continues it reading from there.

    Examples:
      >>> sorted(_config_keys(["--dir", "b", "--grid.steps=20", "--data_dir", "d"]))
      ['data_dir', 'grid']
      >>> _config_keys(["--dir", "b", "--models+", "gru"])
      {'models'}
      >>> _config_keys(["--dir", "b"])
      set()
    """
    keys = {"config", *(field.name for field in dataclasses.fields(BenchConfig))}
    given = (_set_key(name).split(".", 1)[0] for name in option_names(argv))
    return {key for key in given if key in keys}


def _set_key(option: str) -> str:
    """The (dotted) config key that ``option`` sets, or appends to.

    Examples:
      >>> _set_key("--grid.steps"), _set_key("--models+")
      ('grid.steps', 'models')
    """
    return option[2:].removesuffix("+")


def _refuse_defaults_for_a_bench(directory: str, config: BenchConfig, argv: Sequence[str]) -> None:
    """Raises where ``directory`` holds a bench whose stored config differs from
    ``config`` (options given without ``--config``: the built-in defaults with them) in
    keys that no option set: the options were meant for that bench, not for the defaults.

    Raises:
      BenchError: naming those keys and the ``--config`` that sets the options on the
        bench's own config.
    """
    root = pathlib.Path(directory)
    if not _layout.is_bench(root):
        return
    top = _config_keys(argv)  # the config's top-level keys that argv sets
    names = dict.fromkeys(option_names(argv))  # each once: --models+ a --models+ b
    given = [name for name in names if _set_key(name).split(".", 1)[0] in top]
    keys = [_set_key(name) for name in given]

    def is_set(line: str) -> bool:
        key = line.split(":", 1)[0]
        within = lambda k: (f"{k}.", f"{k}[")  # a key of it, an item of its list
        return any(key == k or key.startswith(within(k)) or k.startswith(f"{key}.") for k in keys)

    unset = [line for line in open_bench(root)[0].differences(config) if not is_set(line)]
    if not unset:
        return
    raise BenchError(
        f"{directory!r} holds a bench, but without --config the options "
        f"({', '.join(given)}) set "
        "keys of the built-in defaults, not of its stored config, which differs from them "
        f"also where no option is given ({shown_differences(unset)}). "
        f"To change only what the options set, start from the bench's config: --config "
        f"{root / _layout.CONFIG} with the same options (then --force to move the bench aside "
        "and start over); --resume continues it under its stored config."
    )


_EXAMPLES = {
    "--models": "mlp,cnn1d",
    "--datasets": "digits,mnist1d",
    "--models+": "gru,resnet",
    "--datasets+": "mnist1d,mnist1d_shuffled",
}
"""The options whose value is a list of names, where one name or several joined by
commas are taken as that list (as ``add_models --models`` takes them; ``--models+``
appends it to the list so far), and an example of each's value."""


def _stored_config_to_print(argv: list[str]) -> list[str]:
    """``argv``, with the stored config of the bench in ``--dir`` as its ``--config``
    where it asks ``--print_config`` of that bench continued (no config given but
    ``--data_dir``), so that it prints the config the run continues rather than the
    built-in defaults.

    Examples:
      >>> _stored_config_to_print(["--dir", "/no/bench", "--print_config"])
      ['--dir', '/no/bench', '--print_config']
    """
    options = option_names(argv)
    if "--print_config" not in options or "--force" in options or config_files(argv):
        return argv
    if not _config_keys(argv) <= {"data_dir"}:
        return argv
    directory = dir_option(argv)
    if directory is None or not _layout.is_bench(pathlib.Path(directory)):
        return argv
    return ["--config", str(pathlib.Path(directory) / _layout.CONFIG), *argv]


_PARSED: dict[str, Any] = {}
"""What `main` parsed of the options that a ``--config`` file may set too, for the Ctrl-C
line (`once_parsed`, `_interrupted`): ``dir``, ``force``, and ``resumed_by``, what set
``resume`` (`flag_set_by`); empty until `main` parsed its command line."""


def _interrupted(argv: Sequence[str]) -> str:
    """What Ctrl-C leaves of ``new`` run with ``argv`` (`kept_in_bench`): the same command
    continues the bench, or reads its results where every cell is finished; with
    ``force`` (``--force``, or ``force: true`` in a ``--config`` file), it first moves
    the bench aside and starts over where the config given differs from the bench's. A
    ``--dir`` holding no bench yet: `_starts`."""
    if _PARSED["force"]:
        forced = (
            "the same command moves it aside and starts over if the config given differs "
            "from its own, or else "
        )
        return kept_in_bench(
            "phosjax.bench.new", forced + "reads its results", forced + "continues it", _starts
        )(argv)
    finished = "nothing is left to train; the same command reads its results"
    return kept_in_bench("phosjax.bench.new", finished, starts=_starts)(argv)


def _starts(directory: str, command: str, argv: Sequence[str]) -> str:
    """What starts a bench in ``directory``, which holds none yet, for `kept_in_bench`:
    the command (run with ``argv``) with a config (``--config FILE`` where none is given)
    and without ``--resume`` or a ``--config`` file's ``resume: true``, which refuse such
    a ``--dir``."""
    start = [arg for arg in argv if arg != "--resume"]
    given = bool(_config_keys(start))
    resumed_by = _PARSED["resumed_by"]
    if len(resumed_by) == 1:
        when = f"{resumed_by[0]} refuses such a --dir, the command without it starts it"
    elif resumed_by:
        when = f"{' and '.join(resumed_by)} refuse such a --dir, the command without them starts it"
    else:
        when = "the same command starts it" if given else "the command with a config starts it"
    start = start if given else ["--config", "FILE", *start]
    return f"{when}: {command_line('phosjax.bench.new', start)}"


@entry_point(once_parsed("phosjax.bench.new", _PARSED, _interrupted))
def main(argv: Sequence[str] | None = None) -> None:
    """Runs the command line ``argv`` (default ``sys.argv[1:]``)."""
    _PARSED.clear()  # a call before's
    argv = config_files_first(sys.argv[1:] if argv is None else argv)
    argv = _stored_config_to_print(names_as_lists(argv, _EXAMPLES))
    cli = parser()  # built once: 26 ms
    refuse_unknown_options(cli, argv)  # a misspelt option is the error, not a file's
    _check_config_files(argv)  # named, clear errors before jsonargparse's
    args = cli.parse_args(argv)
    resumed_by = flag_set_by(argv, "resume") if args.resume else []
    if args.resume and args.force:  # each named as set: the option, or a --config file
        raise BenchError(
            f"{' and '.join([*resumed_by, *flag_set_by(argv, 'force')])} contradict each "
            "other: --resume continues the bench in --dir under its stored config, --force "
            "moves it aside and starts over; give one."
        )
    _PARSED.update(dir=args.dir, force=args.force, resumed_by=resumed_by)
    join_processes(cli, args)
    fields = parsed_fields(args, _OWN)
    keys = _config_keys(argv)
    config: BenchConfig | None
    if keys == {"data_dir"} and _layout.is_bench(pathlib.Path(args.dir)):  # the data moved
        config = dataclasses.replace(open_bench(args.dir)[0], data_dir=args.data_dir)
    else:
        config = BenchConfig.from_dict(fields) if keys else None
    if config is not None and "config" not in keys and not (args.resume or args.force):
        _refuse_defaults_for_a_bench(args.dir, config, argv)
    with (
        _entry_errors_named(argv, args.resume),
        data_bars_hidden(args.no_progress),
        compilation_cache(args.compilation_cache, args.dir),
    ):
        run(
            config,
            args.dir,
            resume=args.resume,
            force=args.force,
            progress=not args.no_progress,
            imports=args["import"],
        )


if __name__ == "__main__":
    time_start_up()  # the run's profile times the command's start-up
    exit_process(main())
