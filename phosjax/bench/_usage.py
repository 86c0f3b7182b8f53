"""How the bench's commands report a usage error, for jsonargparse's parsers (`_cli.Parser`,
for ``new`` and ``python -m phosjax.morph``) and argparse's (`ArgParser`, for ``view`` and
``export``): one line, ``error: ...`` (a near option name for a misspelt one) and exit
status 2; a module without jax or jsonargparse."""

import argparse
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from phosjax._nearest import nearest


def option_for(given: str, known: Sequence[str]) -> str | None:
    """The option of ``known`` that ``given``, an argument without one, would be the value
    of: ``--config`` for a YAML file, ``--dir`` (else ``--out``, as speed's) for a
    directory that exists; else None.

    Examples:
      >>> option_for("configs/my.yaml", ["--config", "--dir"]), option_for(".", ["--dir"])
      ('--config', '--dir')
      >>> option_for(".", ["--out"]), option_for(".", ["--dir", "--out"])
      ('--out', '--dir')
      >>> option_for("cnn1d", ["--dir"]), option_for("--dir", ["--dir"])
      (None, None)
    """
    if given.endswith((".yaml", ".yml")) and "--config" in known:
        return "--config"
    if not given.startswith("-") and os.path.isdir(given):
        return next((option for option in ("--dir", "--out") if option in known), None)
    return None


def near_options(message: str, known: Sequence[str]) -> str:
    """``message`` with, after an ``unrecognized arguments:`` one, the option nearest each
    misspelt one (``-dir`` too, with one dash): the one it abbreviates, else the most
    alike by name (the ``--`` that every option shares makes any two short ones look
    alike: ``--bogus``, ``--host``).

    Examples:
      >>> near_options("unrecognized arguments: --dirr x", ["--dir", "--port"])
      'unrecognized arguments: --dirr x (did you mean --dir?)'
      >>> near_options("unrecognized arguments: --eval 5", ["--help", "--eval_every"])
      'unrecognized arguments: --eval 5 (did you mean --eval_every?)'
      >>> near_options("unrecognized arguments: --bogus 1", ["--host", "--port"])
      'unrecognized arguments: --bogus 1'
      >>> near_options("unrecognized arguments: -dir my-bench -1", ["--dir", "--port"])
      'unrecognized arguments: -dir my-bench -1 (did you mean --dir?)'
      >>> near_options("unrecognized arguments: --dirr /tmp/-port", ["--dir", "--port"])
      'unrecognized arguments: --dirr /tmp/-port (did you mean --dir?)'
      >>> near_options("argument --port: bad", ["--port"])
      'argument --port: bad'

    A first argument given without an option, a YAML file or a directory, is the
    ``--config`` or ``--dir`` it would be (`option_for`).
    """
    if not message.startswith("unrecognized arguments:"):
        return message
    given = message.removeprefix("unrecognized arguments:").split()
    option = option_for(given[0], known) if given else None
    hints = [f"{option} {given[0]}"] if option is not None else []
    names = {option.lstrip("-"): option for option in known}
    for misspelt in _options_in(given):
        longer = [option for option in known if option.startswith(misspelt)]
        alike = [names[name] for name in nearest(misspelt.lstrip("-"), names)]
        hints += longer[:1] if len(longer) == 1 else alike[:1]
    return message + "".join(f" (did you mean {hint}?)" for hint in hints)


def _options_in(given: Sequence[str]) -> list[str]:
    """The arguments of ``given`` that are options (``-dir`` too, with one dash), without
    an ``=value``; a value, as a path that holds ``/-port``, is none.

    Examples:
      >>> _options_in(["--dirr", "/tmp/-port", "-dir=runs/-b", "-1", "x"])
      ['--dirr', '-dir']
    """
    options = (arg.partition("=")[0] for arg in given)
    return [option for option in options if re.fullmatch(r"--?[A-Za-z][\w.+-]*", option)]


def dash_dir_hint(message: str) -> str:
    """``message`` with, after argparse's "expected one argument" for ``--dir`` or
    ``--out``, how to write a directory whose name begins with ``-`` (which argparse takes
    for another option).

    Examples:
      >>> print(dash_dir_hint("argument --dir: expected one argument"))
      argument --dir: expected one argument (a directory whose name begins with '-' is
      written --dir=-NAME or --dir ./-NAME)
      >>> dash_dir_hint("argument --config: expected one argument")
      'argument --config: expected one argument'
    """
    for option in _DIRS:
        if message == f"argument --{option}: expected one argument":
            return (
                f"{message} (a directory whose name begins with '-' is written "
                f"--{option}=-NAME or --{option} ./-NAME)"
            )
    return message


def usage_error(parser: argparse.ArgumentParser, line: str) -> NoReturn:
    """Prints ``error: <line>`` (with `near_options` and `dash_dir_hint`) and how to list
    the options; exits 2 (raises an `argparse.ArgumentError` of ``line`` where ``parser``
    does not exit on one)."""
    if not parser.exit_on_error:
        raise argparse.ArgumentError(None, line)
    known = [option for action in parser._actions for option in action.option_strings]
    line = dash_dir_hint(near_options(line, known))
    print(f"error: {line}; {parser.prog} --help lists the options.", file=sys.stderr)
    parser.exit(2)


def as_argument(path: str | os.PathLike) -> str:
    """``path`` as it is written after an option in a command: with ``./`` before one that
    begins with ``-``, which the option would refuse as another option (``--dir -b``:
    "expected one argument"), or with ``~``, which the command would take as the home
    folder (`expand_dirs`, `phosjax._yaml.read_file`), not the folder ``~`` in the current one.

    Examples:
      >>> as_argument("-b"), as_argument("runs/-b"), as_argument("/tmp/-b"), as_argument("~/b")
      ('./-b', 'runs/-b', '/tmp/-b', './~/b')
    """
    text = os.fspath(path)
    return f"./{text}" if text.startswith(("-", "~")) else text


_DIRS = {"dir": "runs/NAME", "out": "runs/speed"}
"""The options that name a directory, and an example of each."""


def expand_dirs(argv: Sequence[str]) -> list[str]:
    """``argv`` with a ``~`` that begins the value of ``--dir`` or ``--out`` expanded to
    the home directory, as the shell expands ``--dir ~/x`` but not ``--dir=~/x`` (which
    named a folder ``~`` in the working directory).

    Examples:
      >>> home = os.path.expanduser("~")
      >>> expand_dirs(["--dir=~/b", "--out", "~", "--config", "~/c.yaml"]) == [
      ...     f"--dir={home}/b", "--out", home, "--config", "~/c.yaml"]
      True
    """
    options = {f"--{option}" for option in _DIRS}
    expanded = list(argv)
    for i, arg in enumerate(expanded):
        option, equals, value = arg.partition("=")
        if equals and option in options:
            expanded[i] = f"{option}={os.path.expanduser(value)}"
        elif i and argv[i - 1] in options:
            expanded[i] = os.path.expanduser(arg)
    return expanded


def home_expanded(args: Any) -> Any:
    """``args`` (a jsonargparse namespace or a dict) with a ``~`` that begins its ``dir`` or
    ``out`` expanded to the home directory, as `expand_dirs` expands the options: a config
    file's ``dir: ~/b``, which no shell saw, named a folder ``~`` in the working directory.

    Examples:
      >>> home_expanded({"dir": "~/b", "out": None}) == {
      ...     "dir": os.path.join(os.path.expanduser("~"), "b"), "out": None}
      True
    """
    for option in _DIRS:
        if isinstance(value := args.get(option), str):
            args[option] = os.path.expanduser(value)
    return args


def refuse_empty_dirs(parser: argparse.ArgumentParser, args: Any) -> Any:
    """``args``, parsed by ``parser``; an empty ``--dir`` or ``--out`` (which paths read
    as ``.``, the working directory) is a `usage_error` naming what to give, as the
    option's help calls it (``the run directory``).

    Examples:
      >>> import contextlib, io
      >>> parser = ArgParser(prog="cmd"); _ = parser.add_argument("--dir", help="the run directory")
      >>> with contextlib.redirect_stderr(io.StringIO()) as err, contextlib.suppress(SystemExit):
      ...     refuse_empty_dirs(parser, parser.parse_args(["--dir", ""]))
      >>> print(*err.getvalue().split("; "), sep="\\n", end="")
      error: --dir is empty
      give the run directory, e.g. --dir runs/NAME
      cmd --help lists the options.
    """
    for option, example in _DIRS.items():
        if getattr(args, option, None) == "":
            helps = [a.help or "" for a in parser._actions if f"--{option}" in a.option_strings]
            named = re.match(r"the \w+ directory", helps[0] if helps else "")
            what = named[0] if named else "a directory"
            usage_error(parser, f"--{option} is empty; give {what}, e.g. --{option} {example}")
    return args


class ArgParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are `usage_error`'s line; a misspelt option is
    the error even when a required one is missing (``--dirr x`` for ``--dir x``), as with
    jsonargparse's, rather than argparse's "the following arguments are required" (the
    help, which that first pass would show with every option optional, skips it); an
    empty ``--dir`` or ``--out`` is refused (`refuse_empty_dirs`), a ``~`` beginning one
    expanded (`expand_dirs`). An option is spelt in full, as with `_cli.Parser`:
    argparse's abbreviations took ``--di=~/x`` as ``--dir``, its ``~`` not expanded. Its
    ``--help`` is worded as jsonargparse's (the other commands')."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "allow_abbrev": False, "add_help": False})
        self.add_argument("-h", "--help", action="help", help="Show this help message and exit.")

    def error(self, message: str) -> NoReturn:
        usage_error(self, message)

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        args = expand_dirs(sys.argv[1:] if args is None else args)
        if {"-h", "--help"} & set(args):  # the help, its usage with the required options
            return super().parse_args(args, namespace)
        required = [action for action in self._actions if action.required]
        for action in required:  # unrecognized options first
            action.required = False
        try:
            _, unknown = self.parse_known_args(args)
        finally:
            for action in required:
                action.required = True
        if unknown:
            self.error(f"unrecognized arguments: {' '.join(unknown)}")
        return refuse_empty_dirs(self, super().parse_args(args, namespace))
