"""The scripts in benchmarks/ say what they do in ``--help``, in whole sentences."""

import argparse
import re
import sys

import pytest

from tests.benchmark_scripts import FOLDER, load_benchmark


@pytest.mark.parametrize(
    ("script", "ending"),
    [
        ("speed_plot", "and prints the merged table."),
        ("blurb_init", "before the blurb or traced into it?"),
    ],
)
def test_help_describes_the_script_in_a_whole_sentence(script, ending, monkeypatch, capsys):
    """``--help`` showed the docstring's first line, cut mid-sentence ("... runs (their
    ``speed.parquet``), each model's"); it shows the docstring's first paragraph."""
    monkeypatch.setattr(sys, "argv", [f"{script}.py", "--help"])
    with pytest.raises(SystemExit):
        load_benchmark(script).main()
    described = " ".join(capsys.readouterr().out.split("\n\n")[1].split())
    assert described.endswith(ending), described


def test_morph_vs_uniform_help_keeps_its_example_apart_and_gives_defaults(monkeypatch, capsys):
    """``--help`` ran the docstring's example command into its prose ("prints a table.
    python benchmarks/...") and said nothing of where the run goes (``--dir``'s default)."""
    monkeypatch.setattr(sys, "argv", ["morph_vs_uniform.py", "--help"])
    with pytest.raises(SystemExit):
        load_benchmark("morph_vs_uniform").main()
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    example = "python benchmarks/morph_vs_uniform.py --config configs/morph_mnist1d.yaml --seeds 3"
    assert example in lines
    assert "--dir DIR             the morph run's folder (runs/morph_vs_uniform)" in lines


def test_engine_strategies_help_gives_the_data_dir_phosjax_uses(monkeypatch, capsys):
    """``--data-dir``'s help said MNIST-1D was kept in TFDS's default data dir; leaving
    it out, `phosjax.data.load` prepares it in phosjax's own (`default_data_dir`)."""
    monkeypatch.setattr(sys, "argv", ["engine_strategies.py", "--help"])
    with pytest.raises(SystemExit):
        load_benchmark("engine_strategies").main()
    said = " ".join(capsys.readouterr().out.split())
    assert "phosjax's default: $PHOSJAX_DATA_DIR, else ~/.cache/phosjax/tfds, then" in said


SCRIPTS = sorted(p.stem for p in FOLDER.glob("[!_]*.py"))
"""The scripts in benchmarks/, each with a ``main``."""


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_says_what_each_option_does(script, monkeypatch):
    """``--help`` listed options bare (``--sizes SIZES``, ``--rounds ROUNDS``): what they
    set and their defaults were only in the code. An option whose default means something
    (not None or False: unset) gives it: ``(%(default)s)``, or its value written in."""
    parsers = []

    def parse_args(parser, *args, **kwargs):
        parsers.append(parser)
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_args)
    with pytest.raises(SystemExit):
        load_benchmark(script).main()
    [parser] = parsers
    assert [a.dest for a in parser._actions if not a.help] == []
    unset = (None, False, argparse.SUPPRESS)
    defaults = [a for a in parser._actions if not any(a.default is u for u in unset)]
    shown = lambda a: [a.default] if not isinstance(a.default, list) else a.default
    said = lambda a, value: re.search(  # a whole number or word: a default 1 is not 10's 1
        rf"(?<![\w.-]){re.escape(str(value))}(?!\w|\.\d)",
        parser._get_formatter()._expand_help(a),  # as --help renders it: %(default)s filled
    )
    unsaid = [a.dest for a in defaults if not all(said(a, value) for value in shown(a))]
    assert unsaid == []


@pytest.mark.parametrize("script", ["stepwise_unroll", "step_profile"])
def test_a_model_the_speed_bench_has_not_is_a_usage_error(script, monkeypatch, capsys):
    """``--model nope`` went on to set the model up (its error a traceback); it is a usage
    error naming the speed bench's models, as ``pad_state.py``'s is."""
    monkeypatch.setattr(sys, "argv", [f"{script}.py", "--model", "nope"])
    with pytest.raises(SystemExit) as exit_info:
        load_benchmark(script).main()
    assert exit_info.value.code == 2
    assert "argument --model: invalid choice: 'nope' (choose from 'cnn1d', 'cnn2d', " in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "option, said",
    [
        (
            ["--models", "cnn1d,nope"],
            "argument --models: not the speed bench's: 'nope' (choose from 'cnn1d', 'cnn2d', ",
        ),
        (["--sizes", "8,x"], "argument --sizes: not comma-separated whole numbers: '8,x'\n"),
        (["--sizes", "8,0"], "argument --sizes: a grid size must be 1 or more, got '8,0'\n"),
    ],
)
def test_a_bad_model_or_size_for_conv_forms_is_a_usage_error(monkeypatch, capsys, option, said):
    """``--models cnn1d,nope`` (or ``--sizes 8,x``) printed its header, measured cnn1d, then
    ended in a KeyError (a ValueError) traceback at ``nope`` (``x``); each is a usage error
    naming what it takes, before anything is measured."""
    monkeypatch.setattr(sys, "argv", ["conv_forms.py", *option])
    with pytest.raises(SystemExit) as exit_info:
        load_benchmark("conv_forms").main()
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert (out, said in err) == ("", True), err
