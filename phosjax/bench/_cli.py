"""What the bench's entry points share: a clean exit on bad input, `--import`, `--dir`."""

import argparse
import contextlib
import functools
import gc
import math
import os
import pathlib
import re
import select
import shlex
import signal
import sys
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, NoReturn

import yaml
from jsonargparse import ArgumentParser

from phosjax._listing import counted
from phosjax._nearest import did_you_mean
from phosjax._yaml import read_file
from phosjax.bench import _layout
from phosjax.bench._argv import (
    config_files,
    dir_option,
    group_file,
    option_names,
    option_value,
    split_top,
)
from phosjax.bench._config import BenchError, colon_hint
from phosjax.bench._directory import read_bench_json, why_no_bench_starts
from phosjax.bench._errors import BrokenFileError
from phosjax.bench._interrupt import (
    BROKEN_PIPE,
    INTERRUPTED,
    STOP_SIGNALS,
    UnreadAtEnd,
    ctrl_c_kept,
    exit_status,
    is_terminal,
    readers_gone,
    silence_gone,
    still_starting,
    stopped_by,
    stopped_line,
    stops_ignored,
    unread_at_end,
)
from phosjax.bench._reading import LET_READ, READ_REFUSED, in_dir
from phosjax.bench._store import NOT_WRITTEN
from phosjax.bench._summary import command_line
from phosjax.bench._usage import (
    as_argument,
    expand_dirs,
    home_expanded,
    refuse_empty_dirs,
    usage_error,
)
from phosjax.bench.view._bench import BenchFiles

_KEY = re.compile(r'\AParser key "([^"]+)":\s*')


def either(names: Iterable[str]) -> str:
    """``names`` in words: ``"a, b or c"``.

    Examples:
      >>> either(["float32", "bfloat16"]), either("abc"), either(["int"])
      ('float32 or bfloat16', 'a, b or c', 'int')
    """
    names = list(names)
    return " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


_UNKNOWN_KEY = re.compile(r"\AGroup '([^']+)' does not accept option '(.*)'$")
_UNLOADABLE = re.compile(r"\AParser key \"([^\"]+)\":\s*Unable to load config '(.*)'$", re.M)
_NESTED_KEY = re.compile(r"^  - (Parser key \"[^\"]+\":\n)", re.M)


def unloadable_group(option: str, given: str, keys: Sequence[str]) -> str:
    """Why ``given``, the value of ``option``, a group of ``keys`` (``--grid``), is neither
    a YAML file of them that can be read (`read_file`'s error) nor a YAML mapping of them;
    jsonargparse said "Unable to load config" of a file missing or of a list alike.

    Examples:
      >>> unloadable_group("--grid", "/no/grid.yaml", ["steps", "batch_size"])
      "--grid: config file '/no/grid.yaml' does not exist; --grid takes a YAML file of its \
keys or a YAML mapping of them, e.g. --grid '{steps: VALUE}' (its keys: steps, batch_size)"
      >>> unloadable_group("--grid", "[1]", ["steps"]).split(";")[0]
      "--grid '[1]' is neither a YAML file nor a YAML mapping"
      >>> unloadable_group("--grid", "", ["steps"]).split(";")[0]
      "--grid '' is empty"
    """
    hint = (
        f"{option} takes a YAML file of its keys or a YAML mapping of them, e.g. "
        f"{option} '{{{keys[0] if keys else 'KEY'}: VALUE}}' (its keys: {', '.join(keys)})"
    )
    if not given.strip():  # pathlib reads '' as '.', "a directory"
        return f"{option} {given!r} is empty; {hint}"
    path = pathlib.Path(given)
    if not (path.exists() or path.suffix in (".yaml", ".yml") or os.sep in given):
        unreadable = _unreadable_hint(given)
        return f"{option} {given!r} is neither a YAML file nor a YAML mapping{unreadable}; {hint}"
    try:
        data = read_file(path)
    except ValueError as error:
        return f"{option}: {str(error).rstrip('.')}; {hint}"
    return f"{option}: config file {given!r} holds a {type(data).__name__}, not a mapping; {hint}"


def value_error_line(message: str, argv: Sequence[str] = ()) -> str:
    r"""jsonargparse's (multi-line) message about a bad value on one line: the option, the
    value given and the types it takes; other messages as they are. The value is named as
    ``argv`` typed it where jsonargparse names the number it made of it (``1e3``, not
    ``1000.0``); one that a ``--config`` file of ``argv`` gives, not an option, is named
    as the file's key (``FILE: model.width``, `setting_file`).

    Examples:
      >>> value_error_line('Parser key "eval_every":\n  Expected a <class \'int\'>. Got value: 1.5')
      '--eval_every 1.5: expected int'
      >>> value_error_line('Parser key "eval_every":\n  Expected a <class \'int\'>. Got value: ')
      "--eval_every '': expected int"
      >>> value_error_line('Parser key "steps":\n  Expected a <class \'int\'>. Got value: 1000.0',
      ...                  ["--steps", "1e3"])
      '--steps 1e3: expected int'
      >>> value_error_line("unrecognized arguments: --x")
      'unrecognized arguments: --x'
    """
    key = _KEY.match(message)
    if key is None:
        return message
    rest = message[key.end() :]
    given = re.search(r"^  Given value: (.*)$", rest, re.M) or re.search(
        r"Got value: (.*)$", rest, re.M
    )
    option = f"--{key[1]}"
    if path := setting_file(argv, key[1], given and given[1]):  # not an option's value
        option = f"{path}: {key[1]}"
    types = re.search(r"^  Subtypes: \[(.*)\]$", rest, re.M) or re.search(
        r"Expected a (<class '\w+'>)", rest
    )
    if given is None or types is None:  # not a value's type: its first line
        return f"{option}: {rest.strip().splitlines()[0].strip()}"
    given_text = given[1]
    typed = None if path else option_value(argv, f"--{key[1]}")  # the value refused, typed
    if typed is not None and typed != given_text and _same_number(typed, given_text):
        given_text = typed
    names = [
        re.sub(r"<class '(\w+)'>", r"\1", t).replace("NoneType", "null")
        for t in split_top(types[1])
    ]
    expected = either(names)
    items = split_top(given_text)  # "1e-3,1e-2": the list meant, in its brackets
    meant = len(items) > 1 and given_text[:1] not in ("[", "{")  # a mapping's commas: no list
    written = f"[{', '.join(items)}]" if meant else "[a, b]"
    listed = given_text[:1] == "["  # written as one: an item of it refused
    hint = f" (a list is written '{written}')" if "list" in expected and not listed else ""
    if unreadable := _unreadable_hint(given_text):
        hint = unreadable
    elif colon := _colon_hint(given_text):
        hint = colon
    elif "float" in expected and (yaml_float := _yaml_float_hint(given_text)):
        hint = yaml_float
    shown = given_text if given_text.strip() else repr(given_text)  # '' (an unset variable)
    if typed is not None and typed.lstrip()[:1] == "{" and given_text[:1] != "{":
        return f"{option} {typed}: expected each value {expected}, got {shown}{hint}"
    return f"{option} {shown}: expected {expected}{hint}"


def setting_file(argv: Sequence[str], key: str, given: str | None) -> str | None:
    r"""The ``--config`` file of ``argv``, or the file of a group's option after them
    (``--model model.yaml``: its ``width`` is ``model.width``), whose value of the (dotted)
    ``key`` the parser refused: the first whose value reads as ``given`` (the parser checks
    each file as it reads it, in order, and the files before the options), else, where no
    option of ``argv`` sets the key (``--model.width``, ``--model.width+`` or ``--model``
    given a mapping), the last that sets it; None: an option's value.

    Examples:
      >>> import tempfile
      >>> with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as file:
      ...     _ = file.write("model: {width: [a, b]}\n")
      >>> setting_file(["--config", file.name], "model.width", None) == file.name
      True
      >>> setting_file(["--config", file.name, "--model.width", "x"], "model.width", "x")
      >>> argv = ["--config", file.name, "--model.width", "x"]
      >>> setting_file(argv, "model.width", "['a', 'b']") == file.name
      True
      >>> setting_file(["--config", file.name], "model.depth", None)
      >>> pathlib.Path(file.name).unlink()
    """
    parts = key.split(".")
    options = {name.removesuffix("+") for name in option_names(argv)}
    files = [(path, 0) for path in config_files(argv)]  # each with the parts it holds keys of
    if len(parts) > 1 and (group := group_file(argv, parts[0])):  # read after them
        files.append((group, 1))
        options.discard(f"--{parts[0]}")  # its file's value, not the option's
    typed = any(f"--{'.'.join(parts[:n])}" in options for n in range(1, len(parts) + 1))
    setting = []  # the files that set the key, in order
    for path, within in files:
        try:
            data = read_file(path)
        except ValueError:  # read before, by the parser: gone since
            continue
        for part in parts[within:]:
            data = data.get(part, _UNSET) if isinstance(data, dict) else _UNSET
        if data is not _UNSET:
            if given is not None and str(data) == given:  # a later file's value never read
                return path
            setting.append(path)
    return setting[-1] if setting and not typed else None


_UNSET = object()


def flag_set_by(argv: Sequence[str], flag: str) -> list[str]:
    """What sets the flag ``--<flag>`` in ``argv``, in words: the option itself, and the
    ``--config`` file whose ``<flag>: true`` the parser reads (the last file setting it,
    where it sets it true). For a line saying what to drop; read where the command line
    is parsed, not as the line is said.

    Examples:
      >>> import tempfile
      >>> with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as file:
      ...     _ = file.write("resume: true\\n")
      >>> flag_set_by(["--config", file.name, "--resume"], "resume") == [
      ...     "--resume", f"resume: true in {file.name!r}"]
      True
      >>> flag_set_by(["--dir", "b"], "resume")
      []
      >>> pathlib.Path(file.name).unlink()
    """
    option = f"--{flag}"
    set_by = [option] if option in argv else []
    path = setting_file([arg for arg in argv if arg != option], flag, None)
    if path is not None:
        data = read_file(path)
        if isinstance(data, dict) and data.get(flag) is True:
            set_by.append(f"{flag}: true in {path!r}")
    return set_by


def _same_number(typed: str, shown: str) -> bool:
    """Whether ``typed`` and ``shown`` are the same number (``1e3`` and ``1000.0``).

    Examples:
      >>> _same_number("1e3", "1000.0"), _same_number("1e3", "1000.5"), _same_number("a", "a")
      (True, False, False)
    """
    try:
        return float(typed) == float(shown)
    except ValueError:
        return False


def _colon_hint(text: str) -> str:
    """`colon_hint` of the YAML mapping ``text`` (``{T:1}``: its key ``'T:1'``, a key and
    value written without the space YAML needs after a colon); "" for any other text.

    Examples:
      >>> _colon_hint("{T:1}").split(", as in ")[1], _colon_hint("{T: 1}"), _colon_hint("[")
      ("'T: 1')", '', '')
    """
    try:
        data = yaml.load(text, Loader=_OPTION_LOADER)
    except yaml.YAMLError:
        return ""
    hints = [colon_hint(k, v) for k, v in data.items()] if isinstance(data, dict) else []
    return next(filter(None, hints), "")


def _yaml_float_hint(text: str) -> str:
    """How YAML writes ``text``, or the first item of the list it writes, that is Python's
    spelling of a NaN or an infinity (``nan``, ``-inf``), which YAML reads as a string; ""
    for any other text.

    Examples:
      >>> _yaml_float_hint("nan"), _yaml_float_hint("-Infinity"), _yaml_float_hint("1.5")
      (' (YAML writes NaN as .nan)', ' (YAML writes -Infinity as -.inf)', '')
      >>> _yaml_float_hint("[0.1, 'inf']")  # a list's item
      ' (YAML writes inf as .inf)'
    """
    try:
        data = yaml.load(text, Loader=_OPTION_LOADER)
    except yaml.YAMLError:
        return ""
    for item in data if isinstance(data, list) else [data]:
        try:
            value = float(item) if isinstance(item, str) else 0.0
        except ValueError:
            continue
        if math.isnan(value):
            return " (YAML writes NaN as .nan)"
        if math.isinf(value):
            return f" (YAML writes {item.strip()} as {'-' if value < 0 else ''}.inf)"
    return ""


_OPTION_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""The loader jsonargparse reads an option's value with: libyaml's where PyYAML has it, which
refuses ``{T:[1]}`` (a key's colon without its space, before a bracket) that PyYAML's own
reads as ``{'T': [1]}``."""


def _yaml_problem(text: str) -> str | None:
    """Why YAML cannot read ``text``, an option's value; None if it can. In PyYAML's own
    words where its loader fails too (libyaml's say less), else in libyaml's.

    Examples:
      >>> _yaml_problem("[train[:90%], train[90%:]]"), _yaml_problem("[train, val]")
      ("expected ',' or ']', but got '['", None)
      >>> _yaml_problem("{T:[1]}")
      "found unexpected ':'"
    """
    for loader in (yaml.SafeLoader, _OPTION_LOADER):
        try:
            yaml.load(text, Loader=loader)
        except yaml.MarkedYAMLError as error:
            return error.problem
    return None


_UNSPACED_COLON = re.compile(r"(?<=[\w\"']):(?=[^\s,\]}])")


def _unreadable_hint(text: str) -> str:
    """Why YAML cannot read ``text``, an option's value, and how to write it; "" if it can.

    Examples:
      >>> _unreadable_hint("{T:[0.5, 2.0]}")
      " (YAML cannot read it: found unexpected ':'; a key's colon takes a space after it, \
as in '{T: [0.5, 2.0]}')"
      >>> _unreadable_hint("[train[:90%], train[90%:]]").split(";")[0]
      " (YAML cannot read it: expected ',' or ']', but got '['"
      >>> _unreadable_hint("[train, val]")
      ''
    """
    problem = _yaml_problem(text)
    if problem is None:
        return ""
    spaced = _UNSPACED_COLON.sub(": ", text)
    if problem == "found unexpected ':'" and _yaml_problem(spaced) is None:
        how = f"a key's colon takes a space after it, as in {spaced!r}"
    else:
        how = (
            "an item holding brackets or commas is quoted, "
            """as in "['train[:90%]', 'train[90%:]']\""""
        )
    return f" (YAML cannot read it: {problem}; {how})"


_BAD_FLAG = re.compile(r'\AInvalid option "(.*)" for (--print_config)$')
_PRINT_CONFIG_FLAGS = ("skip_default", "skip_unset")
"""The flags ``--print_config`` takes (jsonargparse's, without ruamel.yaml's ``comments``)."""


def print_config_flag_line(message: str) -> str:
    """jsonargparse's message about a flag that ``--print_config`` does not take, with the
    nearest flag and those it takes; other messages as they are.

    Examples:
      >>> print(print_config_flag_line('Invalid option "skip_defaults" for --print_config'))
      --print_config: unknown flag 'skip_defaults'. Did you mean 'skip_default' or 'skip_unset'? \
It takes skip_default, skip_unset or both, e.g. --print_config=skip_default,skip_unset
      >>> print_config_flag_line("unrecognized arguments: --x")
      'unrecognized arguments: --x'
    """
    found = _BAD_FLAG.match(message)
    if found is None:
        return message
    flags = _PRINT_CONFIG_FLAGS
    near = did_you_mean([found[1]], flags) or "."
    return (
        f"{found[2]}: unknown flag {found[1]!r}{near} It takes {', '.join(flags)} or both, "
        f"e.g. {found[2]}={','.join(flags)}"
    )


def print_config_flags_joined(argv: Sequence[str]) -> list[str]:
    """``argv`` with the flags given to ``--print_config`` after a space joined to it by
    an ``=``, as jsonargparse takes them; it called ``skip_default`` an unrecognized
    argument.

    Examples:
      >>> print_config_flags_joined(["--print_config", "skip_default,skip_unset", "--dir", "d"])
      ['--print_config=skip_default,skip_unset', '--dir', 'd']
      >>> print_config_flags_joined(["--print_config", "--dir", "d"])
      ['--print_config', '--dir', 'd']
    """
    joined: list[str] = []
    for arg in argv:
        if joined[-1:] == ["--print_config"] and set(arg.split(",")) <= set(_PRINT_CONFIG_FLAGS):
            joined[-1] = f"--print_config={arg}"
        else:
            joined.append(arg)
    return joined


REQUIRED = "the following arguments are required: "
"""How argparse (and jsonargparse) begins its message about missing arguments."""


def required_as_options(message: str) -> str:
    """jsonargparse's message about missing arguments, which names them by key (``dir``),
    with the options to give (``--dir``), as argparse names them; other messages as they are.

    Examples:
      >>> required_as_options("the following arguments are required: dir, grid.steps")
      'the following arguments are required: --dir, --grid.steps'
      >>> required_as_options("unrecognized arguments: --x")
      'unrecognized arguments: --x'
    """
    if not message.startswith(REQUIRED):
        return message
    keys = message.removeprefix(REQUIRED).split(", ")
    return REQUIRED + ", ".join(key if key.startswith("-") else f"--{key}" for key in keys)


class Parser(ArgumentParser):
    """The bench commands' parser: a usage error is one line, ``error: ...`` (the option,
    what was given and what it takes; a near option name for a misspelt one) and exit
    status 2, without jsonargparse's usage of every option. An option is spelt in full:
    argparse's abbreviations took ``--eval 5`` as ``--eval_every 5`` but called
    ``--grid.learning_rat`` ambiguous (its ``--grid.learning_rate+`` twin)."""

    argv: Sequence[str] = ()
    """The arguments being parsed (as typed, a ``~`` beginning ``--dir`` expanded)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:  # jsonargparse parsing inside: it raises
            super().error(message, ex)
        line = value_error_line(required_as_options(print_config_flag_line(message)), self.argv)
        usage_error(self, self._group_error(message) or line)

    def _group_error(self, message: str) -> str | None:
        """jsonargparse's message about the value of a group's option (``--grid``,
        ``--model``): one it could not load (`unloadable_group`), one holding a bad value
        (the key, the value and the types it takes, as ``--grid.KEY``'s), or one with an
        unknown key, named with the nearest and the group's keys as a config file's is; a
        file's (``--grid FILE``) bad value or unknown key names the file; None for any
        other message."""
        found = _UNLOADABLE.match(message) or _UNKNOWN_KEY.match(message)
        if found is None:
            return None
        keys = self._group_keys(found[1])
        if found.re is _UNLOADABLE and (nested := _NESTED_KEY.search(message)):
            value = re.sub("^  ", "", message[nested.end() :], flags=re.M)  # a key's value
            line = value_error_line(nested[1] + value, self.argv)  # a file's: named by it
            return line if group_file(self.argv, found[1]) else f"--{found[1]} {found[2]}: {line}"
        if found.re is _UNLOADABLE:
            return unloadable_group(f"--{found[1]}", found[2], keys)
        unknown = f"--{found[1]}: unknown key {found[2]!r}"
        if path := group_file(self.argv, found[1]):  # named as a config file's grid names it
            unknown = f"{path}: unknown key {found[2]!r} in {found[1]}"
        near = did_you_mean([found[2]], keys) or "."
        return f"{unknown}{near} Valid keys: {', '.join(keys)}"

    def _group_keys(self, group: str) -> list[str]:
        """The keys of the options ``--<group>.KEY`` (none: ``group`` is no group)."""
        return [a.dest.split(".", 1)[1] for a in self._actions if a.dest.startswith(f"{group}.")]

    def format_help(self, *args: Any, **kwargs: Any) -> str:
        """jsonargparse's help, where a group's option (``--grid``) says what it takes
        rather than "Path to a configuration file." (a YAML mapping is taken too)."""
        for action in self._actions:
            keys = self._group_keys(action.dest)
            if keys and action.option_strings:
                option = action.option_strings[0]
                action.help = (
                    f"{action.dest}'s keys: a YAML file of them or a YAML mapping, e.g. "
                    f"{option} '{{{keys[0]}: VALUE}}'; each is also {option}.KEY"
                )
        return super().format_help(*args, **kwargs)

    def parse_args(self, args: Sequence[str] | None = None, **kwargs: Any) -> Any:  # type: ignore[override]
        """jsonargparse's `parse_args`, a ``~`` beginning ``--dir`` or ``--out`` expanded
        (`expand_dirs`; a config file's ``dir``: `home_expanded`), ``--print_config``'s
        flags after a space joined to it (`print_config_flags_joined`); an empty ``--dir``
        is refused (`refuse_empty_dirs`), as is a group's file (``--grid FILE``) that a
        config file could not be (`_read_group_files`)."""
        given = sys.argv[1:] if args is None else args
        argv = self.argv = expand_dirs(print_config_flags_joined(given))
        self._read_group_files(argv)
        return refuse_empty_dirs(self, home_expanded(super().parse_args(argv, **kwargs)))

    def _read_group_files(self, argv: Sequence[str]) -> None:
        """Reads each file that ``argv`` gives a group's option (``--grid FILE``) as a
        config file is read (`read_file`): one naming a key twice is a usage error, where
        jsonargparse's YAML keeps the second value silently, as is a whole config (its
        ``grid`` a top-level key), meant for ``--config``."""
        groups = {
            a.option_strings[0]
            for a in self._actions
            if a.option_strings and self._group_keys(a.dest)
        }
        for i, arg in enumerate(argv):
            option, equals, value = arg.partition("=")
            if option not in groups or not (equals or i + 1 < len(argv)):
                continue
            path = pathlib.Path(value if equals else argv[i + 1])
            if path.is_file():
                try:
                    data = read_file(path)
                except ValueError as error:
                    usage_error(self, f"{option}: {str(error).rstrip('.')}")
                if isinstance(data, dict) and option[2:] in data:
                    usage_error(
                        self,
                        f"{option} {str(path)!r} is a whole config (its {option[2:]} a top-level "
                        f"key), not the keys of {option[2:]}: give it as --config "
                        f"{shlex.quote(as_argument(path))}",
                    )


class ConfigParser(Parser):
    """A `Parser` whose ``--print_config`` prints the config alone, without the command's
    own options (``own``, e.g. ``dir``), once `check` has passed it: saved to a file and
    given back with ``--config``, it runs the same."""

    own: ClassVar[frozenset[str]] = frozenset()

    def check(self, config: dict[str, Any], options: dict[str, Any]) -> None:
        """Raises for a ``config`` that a run with ``options`` (its own) would refuse."""

    def dump(self, cfg: Any, *args: Any, **kwargs: Any) -> str:
        data = yaml.safe_load(super().dump(cfg, *args, **kwargs)) or {}
        config = {k: v for k, v in data.items() if k not in self.own}
        self.check(config, home_expanded({k: v for k, v in data.items() if k in self.own}))
        return yaml.safe_dump(config, sort_keys=False)


def _holds_keys(typehint: Any) -> bool:
    """Whether a value of ``typehint`` can be a mapping (a dict, ``Any``, a class's fields).

    Examples:
      >>> _holds_keys(dict[str, list[str]]), _holds_keys(list[str | dict[str, Any]])
      (True, True)
      >>> _holds_keys(int | list[int]), _holds_keys(None)
      (False, False)
    """
    if typehint is Any or typing.get_origin(typehint) in (dict, Mapping):
        return True
    if isinstance(typehint, type) and typehint.__module__ != "builtins":
        return True  # a dataclass or other class jsonargparse reads by its fields
    return any(map(_holds_keys, typing.get_args(typehint)))


def refuse_unknown_options(parser: ArgumentParser, argv: Sequence[str]) -> None:
    """A `usage_error` for the options of ``argv`` that ``parser`` does not know (the
    nearest named), before its config files are read: the misspelling is the error. A
    key of a typed option's value that can hold keys (``--dataset_splits.digits``,
    ``--grid.knobs.lr``) is known, as jsonargparse takes it; one of a number's or a
    name's (``--eval_every.x``) is not.

    Examples:
      >>> parser = Parser(prog="cmd"); add_common(parser)
      >>> refuse_unknown_options(parser, ["--dir", "d", "--import=m"])  # all known
      >>> import contextlib, io
      >>> with contextlib.redirect_stderr(io.StringIO()) as err, contextlib.suppress(SystemExit):
      ...     refuse_unknown_options(parser, ["--dirr", "d"])
      >>> print(err.getvalue(), end="")
      error: unrecognized arguments: --dirr d (did you mean --dir?); cmd --help lists the options.
    """
    known = {option for action in parser._actions for option in action.option_strings}
    typed = tuple(  # jsonargparse reads --<typed option>.<key> into its value, as typed
        f"{option}."
        for action in parser._actions
        if _holds_keys(getattr(action, "_typehint", None))
        for option in action.option_strings
    )
    unknown, taking = [], False  # taking: the values after an unknown option
    for arg in argv:
        if arg.startswith("--"):
            option = arg.split("=", 1)[0]
            taking = option not in known and not option.startswith(typed)
        if taking:
            unknown.append(arg)
    if unknown:
        usage_error(parser, f"unrecognized arguments: {' '.join(unknown)}")


def check_own_values(
    path: str, data: Mapping[str, Any], flags: Iterable[str], imports: bool = False
) -> None:
    """Raises a `BenchError` naming the config file ``path`` where its ``data`` sets one
    of the command's own options to a value the parser takes as it is: one of ``flags``
    to other than true or false (``overwrite: 'false'`` overwrote), ``dir`` to other than
    a path (``dir: 5``: a traceback), ``import`` (``imports``: the command takes it) to
    other than a list of module names.

    Examples:
      >>> check_own_values("a.yaml", {"dir": "runs/a", "import": ["m"], "resume": None}, ["resume"])
      >>> check_own_values("a.yaml", {"import": "m"}, [], imports=True)
      Traceback (most recent call last):
      ...
      phosjax.bench._errors.BenchError: a.yaml: import must be a list of module names, e.g. \
import: [my_models], got 'm'.
    """
    for flag in flags:
        if not isinstance(data.get(flag), bool | None):
            raise BenchError(f"{path}: {flag} must be true or false, got {data[flag]!r}.")
    if not isinstance(data.get("dir"), str | None):
        raise BenchError(
            f"{path}: dir must be a directory's path, e.g. dir: runs/NAME (quoted where YAML "
            f"reads it as another type: dir: '5'), got {data['dir']!r}."
        )
    modules = [] if data.get("import") is None or not imports else data["import"]
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise BenchError(
            f"{path}: import must be a list of module names, e.g. import: [my_models], "
            f"got {modules!r}."
        )


def add_common(parser: ArgumentParser) -> None:
    """``--dir`` (required) and ``--import`` (modules that register models; given again,
    it adds to them)."""
    parser.add_argument("--dir", required=True, help="the bench directory")
    parser.add_argument(
        "--import",
        nargs="+",
        action="extend",
        default=[],
        help="modules to import first, e.g. ones that register models",
    )


def parsed_fields(args: Any, own: Iterable[str]) -> dict[str, Any]:
    """The config fields that the parser read into ``args`` (its namespace), less the
    command's ``own`` options (``dir``) and jsonargparse's metadata: the ``__path__`` of
    a group read from a file (``--grid FILE``), which a config has no key for.

    Examples:
      >>> from jsonargparse import Namespace
      >>> args = Namespace(dir="runs/a", grid=Namespace(steps=3, __path__="grid.yaml"))
      >>> parsed_fields(args, ["dir"])
      {'grid': {'steps': 3}}
    """

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items() if k != "__path__"}
        return value

    own = set(own)
    return {k: plain(v) for k, v in args.as_dict().items() if k not in own and k != "__path__"}


def run_config(
    parser: ArgumentParser, argv: Sequence[str], own: Iterable[str]
) -> dict[str, Any] | None:
    """The config fields (`parsed_fields`, less ``own``) that ``parser`` reads from
    ``argv``, ``--print_config`` and ``--help`` left out (they print and exit); None where
    it refuses ``argv`` (``parser`` is made to raise, not to say it and exit); an ``own``
    option left out (``--dir``) is no config's problem: the run says it."""
    parser.exit_on_error = False
    for action in parser._actions:
        if action.dest in own:
            action.required = False
    printing = ("--print_config", "--help", "-h")
    try:
        args = parser.parse_args(
            [arg for arg in print_config_flags_joined(argv) if arg.split("=", 1)[0] not in printing]
        )
    except argparse.ArgumentError:
        return None
    return parsed_fields(args, own)


def finished_cells(directory: str) -> tuple[int, int]:
    """How many of the cells of the bench in ``directory`` are finished, and how many it has.

    Raises:
      BrokenFileError: a status file or ``cells.parquet`` cannot be read.
    """
    files = BenchFiles(directory)
    return sum(cell["finished"] for cell in files.progress().values()), len(files.cells())


def kept_in_dir(
    module: str, kept: Callable[[str, str, Sequence[str]], str]
) -> Callable[[Sequence[str]], str]:
    """What Ctrl-C leaves of ``python -m <module> ARGV``, a command that writes in
    ``--dir``, for `entry_point`: ``kept(directory, command, argv)`` (``command``: the same
    command line), or, without ``--dir`` (the parser refuses that before anything runs),
    that nothing was written.

    Examples:
      >>> said = kept_in_dir("phosjax.morph", lambda d, command, argv: f"{d}: {command}")
      >>> said(["--dir", "r"])
      'r: python -m phosjax.morph --dir r'
      >>> said([])
      'nothing was written; the same command runs it: python -m phosjax.morph'
    """

    def said(argv: Sequence[str]) -> str:
        command = command_line(module, argv)
        directory = dir_option(argv)
        if directory is None:
            return f"nothing was written; the same command runs it: {command}"
        return kept(directory, command, argv)

    return said


def once_parsed(
    module: str, parsed: Mapping[str, Any], said: Callable[[Sequence[str]], str]
) -> Callable[[Sequence[str]], str]:
    """What Ctrl-C leaves of ``python -m <module> ARGV``, whose ``main`` puts what it
    parsed in ``parsed`` (``dir`` among it), for `entry_point`: before that, nothing was
    written (`still_starting`); after, ``said(argv)``, ``argv`` given the parsed ``--dir``
    where none of its options does (a ``--config`` file's ``dir``).

    Examples:
      >>> parsed = {}
      >>> line = once_parsed("phosjax.morph", parsed, lambda argv: " ".join(argv))
      >>> line(["--config", "c.yaml"])
      'the command was still starting, nothing was written; the same command runs it: \
python -m phosjax.morph --config c.yaml'
      >>> parsed["dir"] = "runs/m"
      >>> line(["--config", "c.yaml"]), line(["--dir", "m"])
      ('--config c.yaml --dir runs/m', '--dir m')
    """

    def line(argv: Sequence[str]) -> str:
        if not parsed:
            return still_starting(module, argv)
        if dir_option(argv) is None:  # a --config file's: named, not 'nothing written'
            return said([*argv, "--dir", str(parsed["dir"])])
        return said(argv)

    return line


def not_started(
    said: str, kind: str, refused: Callable[[], str | None], starts: Callable[[], str]
) -> str:
    """What Ctrl-C leaves of a command that starts a ``kind`` (a bench, a run) in
    ``--dir`` but wrote none there yet: ``said``, then why none can start there
    (``refused()``, where the same command would be refused; an error of the system
    reading the folder is left to that command to say) or else ``starts()``, what starts
    one there and the command that does.

    Examples:
      >>> not_started("no rows yet", "run", lambda: "'r' is a file", lambda: "run: ...")
      "no rows yet; no run can start there: 'r' is a file"
    """
    why = None
    with contextlib.suppress(OSError):  # unlistable: the command says why when run
        why = refused()
    if why is not None:
        return f"{said}; no {kind} can start there: {why}"
    return f"{said}; {starts()}"


def same_command_starts(directory: str, command: str, argv: Sequence[str]) -> str:
    """What starts a bench in ``directory``, which holds none, for `kept_in_bench`:
    ``command`` (run with ``argv``) itself."""
    return f"the same command starts it: {command}"


def _kept_in_bench(
    directory: str,
    command: str,
    argv: Sequence[str],
    *,
    when_finished: str,
    when_unfinished: str,
    starts: Callable[[str, str, Sequence[str]], str],
) -> str:
    """What Ctrl-C leaves of a command that trains the bench in ``directory``, ``command``
    run with ``argv`` (see `kept_in_bench`)."""
    root = pathlib.Path(directory)
    if not _layout.is_bench(root):
        return not_started(
            f"the bench was not started in --dir {directory!r} yet (it has no bench.json)",
            "bench",
            lambda: why_no_bench_starts(root),
            lambda: starts(directory, command, argv),
        )
    command = _in_each_process(root, command)
    try:
        finished, cells = finished_cells(directory)
    except (OSError, ValueError):  # a BrokenFileError, a file cut short: what is sure
        return f"everything written in --dir {directory!r} is kept; {when_unfinished}: {command}"
    if not cells:  # its plan lost: none is finished
        return (
            f"the bench in --dir {directory!r} has no {_layout.CELLS} (its plan, which the "
            f"next run writes); {when_unfinished}: {command}"
        )
    kept = f"{directory!r} keeps {finished} of {counted(cells, 'cell')} finished"
    if finished == cells:  # no other cell has rows to speak of
        return f"{kept}; {when_finished}: {command}"
    return (
        f"{kept}, and the others' rows up to their group's last checkpoint; "
        f"{when_unfinished}: {command}"
    )


def _in_each_process(root: pathlib.Path, command: str) -> str:
    """``command``, which continues the bench in ``root``; where its marker records several
    processes, one process run again alone continues nothing: each of them is.

    Examples:
      >>> _in_each_process(pathlib.Path("/no/bench"), "python -m phosjax.bench.new --dir b")
      'python -m phosjax.bench.new --dir b'
    """
    try:
        count = read_bench_json(root / _layout.MARKER).get("processes")
    except BenchError:  # unread: the run that reads it says why
        return command
    if not isinstance(count, int) or count < 2:
        return command
    return f"{command} (run in each of the bench's {count} processes)"


def kept_in_bench(
    module: str,
    when_finished: str = "the same command continues it",
    when_unfinished: str = "the same command continues it",
    starts: Callable[[str, str, Sequence[str]], str] = same_command_starts,
) -> Callable[[Sequence[str]], str]:
    """What Ctrl-C leaves of ``python -m <module> ARGV``, a command that trains the bench
    in ``--dir`` (``new``, ``add_models``), for `entry_point`: how many of its cells are
    finished, and what the same command does when run again: ``when_unfinished`` (by
    default it continues the bench, resuming each group from its last checkpoint), or
    ``when_finished`` where every cell is (not where it has none: not planned yet). Where
    ``--dir`` holds no bench (no ``bench.json``) yet: why none can start there
    (`why_no_bench_starts`), or else ``starts(directory, command, argv)``, what starts one
    there and the command that does (``command``: the same command line).

    Examples:
      >>> said = kept_in_bench("phosjax.bench.new")(["--config", "my bench.yaml", "--dir", "/no/b"])
      >>> print(*said.split("; "), sep="\\n")
      the bench was not started in --dir '/no/b' yet (it has no bench.json)
      the same command starts it: python -m phosjax.bench.new --config 'my bench.yaml' --dir /no/b
    """
    said = functools.partial(
        _kept_in_bench,
        when_finished=when_finished,
        when_unfinished=when_unfinished,
        starts=starts,
    )
    return kept_in_dir(module, said)


def then_command(module: str, kept: str) -> Callable[[Sequence[str]], str]:
    """What Ctrl-C leaves of ``python -m <module> ARGV``, for `entry_point`: ``kept``, a
    text ending in what the same command does when run again, then that command.

    Examples:
      >>> said = then_command("phosjax.bench.speed", "the same command measures them again:")
      >>> said(["--quick", "--out", "s"])
      'the same command measures them again: python -m phosjax.bench.speed --quick --out s'
    """
    return lambda argv: f"{kept} {command_line(module, argv)}"


def output_reader_left() -> bool:
    """Whether the reader of this process's stdout or stderr, a pipe, has left (``| head``
    read its lines), as `select.poll` reports it; True where it cannot tell (no poll).

    Examples:
      >>> read, write = os.pipe()
      >>> out = os.fdopen(write, "w")
      >>> with contextlib.redirect_stdout(out):
      ...     before = output_reader_left()
      ...     os.close(read)  # as head, gone
      ...     after = output_reader_left()
      >>> out.close(); before, after
      (False, True)
    """
    if not hasattr(select, "poll"):  # Windows
        return True
    return bool(readers_gone(_output_fds()))


def _output_fds() -> list[int]:
    """The file descriptors of this process's stdout and stderr (none for a stream with no
    file: a captured one)."""
    fds = []
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            fds.append(stream.fileno())
    return fds


def entry_point(
    interrupted: str | Callable[[Sequence[str]], str], *, reads_only: bool = False
) -> Callable[[Callable[[Sequence[str] | None], int | None]], Callable[..., int]]:
    """Wraps ``main(argv)``, which returns its exit status (None: 0): a `BenchError`
    prints ``error: ...`` and returns 2; a write that found no room (`NO_ROOM`) or an
    access refused (`NOT_WRITABLE`: a folder turned read-only, its permissions, which
    refuse reads too: `LET_READ` where it ``reads_only``; the system's error names the
    file) prints ``error: ...``, what makes room or allows it and ``interrupted``, and
    returns 1, as every file is written whole; Ctrl-C prints
    ``interrupted: <interrupted>`` (what it leaves and how to go on; a function of the
    command's arguments, such as `kept_in_bench`, says it once they are known) and
    returns `INTERRUPTED`; a stop signal (SIGTERM: ``interrupted by SIGTERM:
    <interrupted>``) returns its `exit_status`, and so does a write to stdout or stderr
    whose reader left (``| head``: SIGPIPE's, 141), as one while a group trains does; a
    command that ``reads_only`` (changes nothing), or whose work was done (its last output
    unread: `UnreadAtEnd`), stops so without a line, as ``cat``.
    A `SystemError` raised from a stop (C code that the stop reached) is that stop.

    Examples:
      >>> @entry_point("nothing was written.")
      ... def main(argv=None):
      ...     raise KeyboardInterrupt
      >>> import contextlib, io
      >>> with contextlib.redirect_stderr(io.StringIO()) as err:
      ...     status = main([])
      >>> status, err.getvalue()
      (130, 'interrupted: nothing was written.\\n')
    """

    def wrap(main: Callable[[Sequence[str] | None], int | None]) -> Callable[..., int]:
        @functools.wraps(main)
        def wrapped(argv: Sequence[str] | None = None) -> int:
            args = sys.argv[1:] if argv is None else list(argv)
            try:
                with ctrl_c_kept():
                    status = main(args) or 0
                    with unread_at_end():  # its work done
                        sys.stdout.flush()  # a full disk said here, not as a traceback at exit
                    return status
            except BenchError as error:
                print(f"error: {_in_given_dir(error, args)}", file=sys.stderr)
                return 2
            except BrokenPipeError as error:  # its reader left (`| head`, tee gone): a stop,
                # as one while a group trains (`_interrupt._output_gone`), as SIGPIPE ends cat
                if not output_reader_left():
                    raise  # another pipe (a data loader's): not to be hidden
                if BROKEN_PIPE is None:  # Windows: no SIGPIPE, no status of its own
                    _stdout_dropped()
                    return 1
                silence_gone(_output_fds())  # its output is not written again at exit
                if reads_only or isinstance(error, UnreadAtEnd):  # nothing cut short
                    return exit_status(BROKEN_PIPE)
                return stopped(BROKEN_PIPE, args)
            except OSError as error:  # after BrokenPipeError, one of them
                allows = NOT_WRITTEN.get(error.errno or 0)
                if allows is None:
                    raise
                if reads_only and error.errno in READ_REFUSED:  # a read refused
                    allows = LET_READ  # (its stdout on a disk turned read-only: EROFS's words)
                if error.filename == getattr(sys.stdout, "name", None):
                    _stdout_dropped()  # its output is not written again at exit
                said = interrupted if isinstance(interrupted, str) else interrupted(args)
                with contextlib.suppress(OSError):  # stderr on that disk: the status says it
                    print(f"error: {error}; {allows}, then: {said}", file=sys.stderr)
                return 1
            except KeyboardInterrupt as error:
                return stopped(stopped_by(error) or signal.SIGINT, args)
            except SystemError as error:  # a stop raised in Python code that C code called
                signum = stopped_by(error.__cause__)  # (numpy's dtype hooks, as jax traces),
                if signum is None:  # which raised this from it: "returned a result with an
                    raise  # exception set"; one raised as a stop was handled is an error
                return stopped(signum, args)

        def stopped(signum: int, args: Sequence[str]) -> int:
            """Says that ``signum`` stopped the command, and what that leaves; its status."""
            with stops_ignored():  # pressed again meanwhile: the line is still said
                said = interrupted if isinstance(interrupted, str) else interrupted(args)
                with contextlib.suppress(OSError):  # no one reads it: the status says it
                    print(stopped_line(signum, said), file=sys.stderr)
            return exit_status(signum)

        return wrapped

    return wrap


def _in_given_dir(error: BenchError, args: Sequence[str]) -> str:
    """``error``'s message; a damaged file's with the ``--dir`` that ``args`` give for its
    hint's ``DIR`` (`in_dir`)."""
    directory = dir_option(args)
    if isinstance(error, BrokenFileError) and directory is not None:
        return in_dir(str(error), directory)
    return str(error)


def _stdout_dropped() -> None:
    """Sends what is left of stdout's output to the null device: what could not be
    written is not written again (and failing again) as the process exits."""
    with contextlib.suppress(OSError):  # a stdout with no file: nothing to flush
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


@contextlib.contextmanager
def data_bars_hidden(hidden: bool) -> Iterator[None]:
    """Within it, where ``hidden`` (``--no_progress``) or stderr is no terminal, TFDS shows
    no progress bars as it prepares a built-in data set (its ``Generating splits...``), so
    that a log gets none (their cursor moves, ``\\x1b[A``, and carriage returns); TFDS's
    own setting again after.

    Examples:
      >>> with data_bars_hidden(True):
      ...     pass
    """
    if not hidden and is_terminal():
        yield
        return
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.utils import tqdm_utils

    shown = bool(getattr(tqdm_utils, "_active", True))  # private: a TFDS without it shows bars
    tfds.disable_progress_bar()
    try:
        yield
    finally:
        tfds.display_progress_bar(shown)


_STOPPED = frozenset(
    {INTERRUPTED, *(exit_status(s) for s in (*STOP_SIGNALS, BROKEN_PIPE) if s is not None)}
)
"""The exit statuses of a command stopped by Ctrl-C, a stop signal or a broken pipe as a
group trained (`entry_point`)."""


def exit_process(status: int) -> NoReturn:
    """Ends the process with ``status``; after Ctrl-C (`INTERRUPTED`) or a stop signal
    (`_STOPPED`) at once, skipping the interpreter's teardown: a Ctrl-C that cut an XLA
    compile short can crash that teardown (a segmentation fault after the one line said,
    jax 0.10 on CPU), and by then every file is written and closed. Otherwise what lives on
    is frozen first (`gc.freeze`, after one collection, whose finalizers run): the
    teardown's collections then skip the heap of jax, pandas and pyarrow, 0.3-0.4 s of
    each command's exit on 2 CPU cores."""
    if status in _STOPPED:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:  # None: started with it closed (2>&-)
                stream.flush()
        os._exit(status)
    gc.collect()
    gc.freeze()
    sys.exit(status)
