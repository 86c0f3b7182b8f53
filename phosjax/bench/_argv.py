"""A command's argv read and rewritten before jsonargparse parses it: names joined by commas
as YAML lists (``--models mlp,cnn1d``), ``--config`` files first, the options and ``--dir``
it gives."""

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml

from phosjax._yaml import safe_load
from phosjax.bench._errors import BenchError
from phosjax.bench._usage import expand_dirs, option_for


def split_top(text: str) -> list[str]:
    """``text`` split at the commas outside brackets: ``"int, list[int, str]"`` in two."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    return [*parts, text[start:].strip()]


def comma_names(
    option: str, text: str, example: str = "mlp,cnn1d", noun: str = "name"
) -> list[str]:
    """The names of ``option``'s value ``text``: one, or several joined by commas (outside
    brackets: ``digits[:10%]`` is one), spaces around each dropped; ``example``, names
    as ``option`` takes them, shows what is right in its error, which calls each a ``noun``.

    Examples:
      >>> comma_names("--models", "mlp, cnn1d"), comma_names("--datasets", "digits[:10%]")
      (['mlp', 'cnn1d'], ['digits[:10%]'])
      >>> comma_names("--models", "mlp,")
      Traceback (most recent call last):
      ...
      phosjax.bench._errors.BenchError: --models 'mlp,' holds an empty name (before, ...
      >>> comma_names("--sizes", "1,,8", "1,8", noun="size")
      Traceback (most recent call last):
      ...
      phosjax.bench._errors.BenchError: --sizes '1,,8' holds an empty size (before, ...

    Raises:
      BenchError: naming ``option`` and ``text`` where a name is empty (``mlp,``).
    """
    names = split_top(text)
    if not all(names):
        raise BenchError(
            f"{option} {text!r} holds an empty {noun} (before, between or after its commas); "
            f"give {noun}s joined by commas, e.g. {option} {example}"
        )
    return names


def names_as_lists(
    argv: Sequence[str], examples: Mapping[str, str], *, null: bool = False
) -> list[str]:
    """``argv`` with the values of each option of ``examples`` (an option that takes a
    list of names, and an example of its value) written as one YAML list: a name or
    several joined by commas (`comma_names`) or given one after another, up to the next
    option or a config file (``my.yaml``, meant for ``--config``), each quoted so that
    one holding brackets (``digits[:10%]``) reads as written; an entry ``{name: mlp}`` as
    it is. A YAML list (``[a, b]``) is kept for the parser; so are an empty value and
    ``null`` where ``null`` is true (an option that may be unset), else an empty value is
    an error (`comma_names`'s, as ``add_models --models ''`` says it).

    Examples:
      >>> lists = {"--models": "mlp,cnn1d", "--splits": "train,val"}
      >>> names_as_lists(["--models", "mlp,cnn1d", "{name: gru}", "--splits=a,b"], lists)
      ['--models', '["mlp", "cnn1d", {name: gru}]', '--splits=["a", "b"]']
      >>> names_as_lists(["--models", "[mlp]", "[gru]", "--splits", "null"], lists, null=True)
      ['--models', '[mlp]', '[gru]', '--splits', 'null']

    Raises:
      BenchError: naming the option and its value where a name is empty (``mlp,``), or
        the value is (``''``), unless ``null``.
    """
    given, argv = list(argv), []
    while given:
        arg = given.pop(0)
        option, equals, value = arg.partition("=")
        values = [value] if equals else []
        while option in examples and not equals and given and not _another_option(given[0]):
            values.append(given.pop(0))
        kept = [v for v in values if not v.strip() or v.lstrip()[0] == "["]
        if option in examples:
            for value in kept:
                if not (null or value.strip()):
                    comma_names(option, value, examples[option])  # raises: it names none
                _check_items(option, value, examples[option])
        if null and values == ["null"]:
            kept = values
        if option not in examples or kept:
            argv += [arg, *([] if equals else values)]
        elif equals:
            argv.append(f"{option}={_yaml_list(option, [value], examples[option])}")
        else:
            argv += [arg, *([_yaml_list(option, values, examples[option])] if values else [])]
    return argv


def _check_items(option: str, text: str, example: str) -> None:
    """Raises a `BenchError` where ``text``, a YAML list given to ``option``, holds an
    item that is neither a name nor an entry (``--models '[mlp, 5]'``): jsonargparse took
    such a list for one name (``unknown model '[mlp, 5]'``).

    Examples:
      >>> _check_items("--models", "[mlp, {name: gru}]", "mlp,cnn1d")
      >>> _check_items("--models", "[mlp, 5]", "mlp,cnn1d")
      Traceback (most recent call last):
      ...
      phosjax.bench._errors.BenchError: --models '[mlp, 5]' holds 5, which is no name; ...
    """
    try:
        items = safe_load(text)
    except yaml.YAMLError:  # the parser says what YAML cannot read
        return
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, str | Mapping):
            raise BenchError(
                f"{option} {text!r} holds {item!r}, which is no name; give names, joined "
                f"by commas or as a YAML list, e.g. {option} {example}"
            )


def _another_option(arg: str) -> bool:
    """Whether ``arg``, after a name of a list option, is no further name but an option,
    or a config file meant for ``--config`` (`option_for`): ``new --models mlp
    configs/example.yaml`` is told to pass ``--config configs/example.yaml``, not that no
    model has that name.

    Examples:
      >>> _another_option("--dir"), _another_option("my.yaml"), _another_option("cnn1d")
      (True, True, False)
    """
    return arg.startswith("-") or option_for(arg, ["--config"]) is not None


def _yaml_list(option: str, values: Sequence[str], example: str) -> str:
    """``values`` of ``option``, names (joined by commas or not: `comma_names`, with
    ``example`` in its error) and entries (``{name: mlp}``), as one YAML list.

    Examples:
      >>> print(_yaml_list("--models", ["mlp, cnn1d", "{name: gru}", "digits[:10%]"], "a,b"))
      ["mlp", "cnn1d", {name: gru}, "digits[:10%]"]
    """
    items = [
        item
        for value in values
        for item in (
            [value]
            if value.lstrip().startswith("{")
            else [json.dumps(name) for name in comma_names(option, value, example)]
        )
    ]
    return f"[{', '.join(items)}]"


def config_files_first(argv: Sequence[str]) -> list[str]:
    """``argv`` with its ``--config`` files moved to the front (in their order), so every
    other option overrides them wherever it stands; jsonargparse applies options in order,
    and a file after an option silently set that key back. A ``~`` beginning a file is
    expanded to the home directory, as the shell expands ``--config ~/a.yaml`` but not
    ``--config=~/a.yaml`` (a file "does not exist").

    Examples:
      >>> config_files_first(["--grid.steps", "7", "--config", "a.yaml", "--config=b.yaml"])
      ['--config', 'a.yaml', '--config=b.yaml', '--grid.steps', '7']
      >>> home = os.path.expanduser("~")
      >>> config_files_first(["--config=~/a.yaml", "--config", "~"]) == [
      ...     f"--config={home}/a.yaml", "--config", home]
      True
    """
    files: list[str] = []
    rest: list[str] = []
    taking = False  # the file after a bare --config
    for arg in argv:
        if taking:
            files.append(os.path.expanduser(arg))
            taking = False
        elif arg.startswith("--config="):
            files.append(f"--config={os.path.expanduser(arg.split('=', 1)[1])}")
        elif arg == "--config":
            files.append(arg)
            taking = True
        else:
            rest.append(arg)
    return files + rest


def config_files(argv: Sequence[str]) -> list[str]:
    """The files ``argv`` gives with ``--config``, to check before jsonargparse reads them.

    Examples:
      >>> config_files(["--config", "a.yaml", "--dir", "d", "--config=b.yaml"])
      ['a.yaml', 'b.yaml']
    """
    files = []
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            files.append(argv[i + 1])
        elif arg.startswith("--config="):
            files.append(arg.split("=", 1)[1])
    return files


def option_names(argv: Sequence[str]) -> list[str]:
    """The options ``argv`` gives, each as ``--name`` (without an ``=value``).

    Examples:
      >>> option_names(["--dir", "a", "--grid.steps=7", "x.yaml"])
      ['--dir', '--grid.steps']
    """
    return [arg.split("=", 1)[0] for arg in argv if arg.startswith("--")]


def option_value(argv: Sequence[str], option: str) -> str | None:
    """The value ``argv`` gives ``option`` (the last, as the parser takes it), as typed;
    None: none.

    Examples:
      >>> option_value(["--steps", "1e3", "--dir=b"], "--steps"), option_value([], "--dir")
      ('1e3', None)
    """
    found = None
    for i, arg in enumerate(argv):
        if arg == option and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith(f"{option}="):
            found = arg.split("=", 1)[1]
    return found


def group_file(argv: Sequence[str], group: str) -> str | None:
    """The file that ``argv`` gives the option ``--<group>`` (``--grid grid.yaml``: a file
    of ``grid``'s keys); None: none, a YAML mapping given instead of a file, or several
    values given (the group is read from each in turn: none alone holds its keys).

    Examples:
      >>> group_file(["--grid", "{steps: 3}"], "grid"), group_file([], "grid")
      (None, None)
      >>> group_file(["--grid", "{steps: 3}", "--grid", __file__], "grid")
    """
    if option_names(argv).count(f"--{group}") != 1:
        return None
    value = option_value(argv, f"--{group}")
    return value if value is not None and os.path.isfile(value) else None


def dir_option(argv: Sequence[str]) -> str | None:
    """The ``--dir`` that ``argv`` gives (the last, as the parser takes it, a ``~``
    beginning it expanded: `expand_dirs`); None: none.

    Examples:
      >>> dir_option(["--dir", "a", "--dir=b"]), dir_option(["--config", "c.yaml"])
      ('b', None)
    """
    return option_value(expand_dirs(argv), "--dir")


def layered_configs(
    files: Sequence[tuple[str, Mapping[str, Any]]], nested: str
) -> list[tuple[str, dict[str, Any]]]:
    """Each of the config ``files`` (its path and mapping) with the config it makes read
    over the ones before it, as jsonargparse reads several ``--config`` files: its keys
    replace theirs, but ``nested`` (a mapping in both) is merged key by key.

    Examples:
      >>> base, fast = {"steps": 5, "grid": {"lr": 1}}, {"grid": {"seed": 2}}
      >>> layered_configs([("a.yaml", base), ("b.yaml", fast)], "grid")[-1]
      ('b.yaml', {'steps': 5, 'grid': {'lr': 1, 'seed': 2}})
    """
    layers: list[tuple[str, dict[str, Any]]] = []
    config: dict[str, Any] = {}
    for path, data in files:
        before, given = config.get(nested), data.get(nested)
        config = {**config, **data}
        if isinstance(before, Mapping) and isinstance(given, Mapping):
            config[nested] = {**before, **given}
        layers.append((path, config))
    return layers


def first_refusing(
    layers: Sequence[tuple[str, dict[str, Any]]], refused: Callable[[Any], str | None]
) -> tuple[str, str] | None:
    """The problem ``refused`` finds in the config of the last of ``layers``
    (`layered_configs`; none: an empty config) with the first file from which on the
    configs have it ("": none); None where it finds none.

    Examples:
      >>> layers = layered_configs([("a.yaml", {"steps": 0}), ("b.yaml", {"seed": 1})], "grid")
      >>> first_refusing(layers, lambda config: "steps 0" if config["steps"] < 1 else None)
      ('a.yaml', 'steps 0')
    """
    problem = refused(layers[-1][1] if layers else {})
    if problem is None:
        return None
    return next((path for path, so_far in layers if refused(so_far) == problem), ""), problem


def kept_refusal(
    layers: Sequence[tuple[str, dict[str, Any]]],
    refused: Callable[[Any], str | None],
    parsed: Callable[[], Mapping[str, Any] | None],
) -> tuple[str, str] | None:
    """The refusal of the config files' config (`first_refusing`) where the run's config
    keeps it: ``parsed()`` (the config the parser reads from the command line, None where it
    refuses it) has the same problem, the files' values it keeps read as written
    (`as_written`). None where the options replaced the refused value: the run's config
    is taken, or refused for another reason, which the run says."""
    refusal = first_refusing(layers, refused)
    if refusal is None:
        return None
    config = parsed()
    if config is None or refused(as_written(config, layers[-1][1] if layers else {})) == refusal[1]:
        return refusal
    return None


def as_written(config: Mapping[str, Any], files: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with each value that equals the ``files``' (nested: key by key) as they
    write it, so that a problem of theirs reads the same (``-1``, not the parser's ``-1.0``).

    Examples:
      >>> as_written({"seeds": 2.0, "grid": {"lr": -1.0, "steps": 3}}, {"grid": {"lr": -1}})
      {'seeds': 2.0, 'grid': {'lr': -1, 'steps': 3}}
    """
    out = dict(config)
    for key in config.keys() & files.keys():
        value, written = config[key], files[key]
        if isinstance(value, Mapping) and isinstance(written, Mapping):
            out[key] = as_written(value, written)
        elif value == written:
            out[key] = written
    return out
