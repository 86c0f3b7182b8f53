"""The scripts in benchmarks/ say what they do in ``--help``, in whole sentences."""

import sys

import pytest

from tests.benchmark_scripts import load_benchmark


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
