"""The scripts in examples/ run, and print what their docstrings promise."""

import pathlib
import runpy

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"


def test_tour_prints_each_step_as_plain_numbers(capsys):
    """The tour printed jax reprs (``Array(0.41, dtype=float32)``) among its numbers, and
    no test ran it."""
    runpy.run_path(str(EXAMPLES / "tour.py"), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [
        "knobs:", "probed:", "aux", "tweaking", "injecting", "loss"
    ]  # fmt: skip
    assert not any("Array(" in line or "dtype" in line for line in lines)
    assert lines[1] == (
        "probed: {'deep_0/pre_act': (4, 8), 'deep_1/pre_act': (4, 8), 'shallow/pre_act': (4, 8)}"
    )
    moved = [line.rsplit(" ", 1)[1] for line in lines[3:5]]
    assert all(0 < float(m) < 10 for m in moved)  # tweak and inject change the output
    # rounded as the other steps' numbers are (they printed 0.23806950449943542)
    assert all(len(m.split(".")[1]) <= 4 for m in moved), moved


def test_each_step_of_the_tour_is_explained_by_a_comment():
    """main() printed six steps with no word on what each shows (why the aux loss total
    is 'path-weighted', what the tweak and the injection change)."""
    source = (EXAMPLES / "tour.py").read_text().split("def main()")[1].splitlines()
    explained = False
    for line in source:
        explained = explained or line.strip().startswith("#")
        if line.strip().startswith("print("):
            assert explained, f"no comment explains the step printed by {line.strip()!r}"
            explained = False
