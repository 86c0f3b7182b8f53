"""`leaderboard`: each cell's last test evaluation, aggregated over seeds per hparam row;
`summary_text` prints it. A diverged seed shows, whatever the frame's index."""

import json
import math
import pathlib
import shlex

import numpy as np
import pandas as pd
import pytest

from phosjax.bench import leaderboard, profile
from phosjax.bench._summary import options_that_vary, summary_text


def test_leaderboard_uses_each_cells_last_test_step_per_learning_rate():
    # 2 learning rates x 2 seeds = 4 cells, each evaluated on test at steps 5 and 10
    # (listed out of order) plus train rows that must be ignored.
    last = {  # (lr, seed): (accuracy, loss) at step 10
        (0.1, 0): (0.80, 0.50),
        (0.1, 1): (0.90, 0.30),
        (0.01, 0): (0.40, 1.20),
        (0.01, 1): (0.60, 1.00),
    }
    rows = []
    for (lr, seed), (acc, loss) in last.items():
        cell = f"lr{lr}-s{seed}"
        common = {"cell_id": cell, "model": "mlp", "dataset": "d", "learning_rate": lr}
        common |= {"batch_size": 16, "seed": seed}
        rows.append({**common, "step": 10, "split": "test", "accuracy": acc, "loss": loss})
        # an earlier, better-looking evaluation: must not be used
        rows.append({**common, "step": 5, "split": "test", "accuracy": 0.99, "loss": 0.01})
        rows.append({**common, "step": 10, "split": "train", "accuracy": 0.0, "loss": 9.0})
    results = pd.DataFrame(rows)

    board = leaderboard(results, ["learning_rate", "batch_size"])

    # batch_size does not vary within the model, so it is no key.
    assert list(board.columns) == [
        "model",
        "dataset",
        "learning_rate",
        "accuracy",
        "accuracy_std",
        "loss",
        "seeds",
        "diverged",
    ]
    assert len(board) == 2  # one row per learning rate, best first
    assert list(board["learning_rate"]) == [0.1, 0.01]
    assert list(board["model"]) == ["mlp", "mlp"]
    assert list(board["dataset"]) == ["d", "d"]
    assert list(board["seeds"]) == [2, 2]
    for row, lr in zip(board.itertuples(), [0.1, 0.01], strict=True):
        accs = np.array([last[(lr, s)][0] for s in (0, 1)])
        losses = np.array([last[(lr, s)][1] for s in (0, 1)])
        assert row.accuracy == pytest.approx(accs.mean(), abs=1e-12)
        assert row.accuracy_std == pytest.approx(accs.std(ddof=1), abs=1e-12)  # sample std
        assert row.loss == pytest.approx(losses.mean(), abs=1e-12)
    assert board["accuracy"].tolist() == pytest.approx([0.85, 0.5])
    assert board["accuracy_std"].tolist() == pytest.approx([0.0707106781, 0.1414213562])
    assert board["loss"].tolist() == pytest.approx([0.4, 1.1])


@pytest.mark.parametrize(
    ("results", "given", "path"),
    [
        ("runs/b/results", "a str 'runs/b/results'", "'runs/b/results'"),
        (
            pathlib.Path("runs/b/results"),
            "a PosixPath PosixPath('runs/b/results')",
            "'runs/b/results'",
        ),
        ({"split": ["test"]}, "a dict {'split': ['test']}", "'DIR/results'"),
    ],
)
def test_results_that_are_no_frame_are_refused_saying_to_read_them(results, given, path):
    """The results folder's path gave an empty leaderboard, as if nothing had been
    evaluated ("split" in the path tested a substring); a dict, a KeyError: False."""
    with pytest.raises(TypeError) as error:
        leaderboard(results, ["learning_rate"])
    assert str(error.value) == (
        f"results must be a pandas DataFrame of a bench's results, got {given}; read them "
        f"first: leaderboard(pandas.read_parquet({path}), hparam_columns)."
    )


def test_a_benchs_own_folder_given_for_the_results_names_its_results_folder(tmp_path):
    """It said to read the bench's folder itself, which pandas.read_parquet cannot
    (bench.json there is no Parquet file); its Parquet results lie in its results/."""
    (tmp_path / "bench.json").write_text("{}")
    with pytest.raises(TypeError) as error:
        leaderboard(tmp_path, ["learning_rate"])
    assert str(error.value).endswith(
        f"; read them first: leaderboard(pandas.read_parquet({str(tmp_path / 'results')!r}), "
        "hparam_columns)."
    )


def test_leaderboard_without_test_rows_is_empty():
    results = pd.DataFrame(
        {"cell_id": ["a"], "model": ["mlp"], "dataset": ["d"], "step": [1], "split": ["train"]}
        | {"accuracy": [0.5], "loss": [1.0]}
    )
    assert leaderboard(results, ["learning_rate"]).empty


def test_summary_of_a_bench_without_results_says_so():
    """The runner summarizes an empty frame when no part file is there yet (a process of
    a bench shared by more processes than a group has cells)."""
    assert leaderboard(pd.DataFrame(), ["learning_rate"]).empty
    assert summary_text("b", pd.DataFrame(), ["learning_rate"]).splitlines() == [
        "bench b: 0 cells, 0 result rows",
        "no test evaluations yet.",
    ]


def test_summary_names_the_split_of_each_metric():
    """The loss shown is the last test evaluation's, as the accuracy: headed "test loss"
    (it read "loss", which the results also hold for train rows: a batch's total loss)."""
    header = summary_text("b", _results(), ["learning_rate"]).splitlines()[1]
    keys = ["model", "dataset", "learning_rate", "seeds"]
    assert header.split() == [*keys, "test", "accuracy", "test", "loss"]


def test_summary_commands_quote_a_directory_with_spaces():
    """The printed commands run as printed, copied into a shell."""
    text = summary_text("runs/my bench", _results(), ["learning_rate"])
    assert "python -m phosjax.bench.view --dir 'runs/my bench'  then open" in text
    assert text.splitlines()[-1] == "profile: python -m phosjax.bench.profile --dir 'runs/my bench'"
    assert "pandas.read_parquet('runs/my bench/results')" in text


def test_summary_commands_run_on_a_directory_named_like_an_option():
    """A --dir beginning with "-" is printed as ./-b: the printed `--dir -b` was refused
    ("argument --dir: expected one argument")."""
    text = summary_text("-b", _results(), ["learning_rate"])
    command = text.splitlines()[-1].removeprefix("profile: ")
    assert command == "python -m phosjax.bench.profile --dir ./-b"
    assert profile.parser().parse_args(shlex.split(command)[3:]).dir == "./-b"
    assert "python -m phosjax.bench.view --dir ./-b  then open" in text


def test_summary_commands_name_a_directory_named_tilde_not_the_home_folder():
    """A bench written in ./~/b (run(config, "~/b"): Python expands no ~) printed
    `--dir '~/b'`, which the command reads as the home folder's b."""
    text = summary_text("~/b", _results(), ["learning_rate"])
    command = text.splitlines()[-1].removeprefix("profile: ")
    assert command == "python -m phosjax.bench.profile --dir './~/b'"
    parsed = profile.parser().parse_args(shlex.split(command)[3:]).dir
    assert pathlib.Path(parsed) == pathlib.Path("~", "b")


def _results(loss_d: float = 0.2) -> pd.DataFrame:
    """4 cells (2 learning rates x 2 seeds) evaluated on test at steps 5 and 10; cell ``d``'s
    last test loss is ``loss_d``."""
    rows = []
    for cell, lr, acc, loss in [
        ("a", 0.1, 0.5, 1.0),
        ("b", 0.1, 0.7, 0.8),
        ("c", 1.0, 0.9, 0.3),
        ("d", 1.0, 0.8, loss_d),
    ]:
        common = {"cell_id": cell, "model": "mlp", "dataset": "d", "learning_rate": lr}
        rows.append({**common, "step": 5, "split": "test", "accuracy": 0.0, "loss": 9.0})
        rows.append({**common, "step": 10, "split": "test", "accuracy": acc, "loss": loss})
    return pd.DataFrame(rows)


def test_a_diverged_seed_makes_its_rows_loss_nan():
    board = leaderboard(_results(loss_d=np.nan), ["learning_rate"]).set_index("learning_rate")
    assert math.isnan(board.loc[1.0, "loss"])  # not seed c's 0.3 alone
    assert board.loc[1.0, "seeds"] == 2
    assert board.loc[0.1, "loss"] == pytest.approx(0.9)


def test_a_diverged_seeds_accuracy_is_nan_in_the_mean_and_std_and_sorts_last():
    results = _results()
    results.loc[(results["cell_id"] == "c") & (results["step"] == 10), "accuracy"] = np.nan
    board = leaderboard(results, ["learning_rate"])
    assert board["learning_rate"].tolist() == [0.1, 1.0]
    assert board[["accuracy", "accuracy_std"]].iloc[1].isna().all()
    assert board["diverged"].tolist() == [0, 1]
    assert "diverged (1/2)" in summary_text("b", results, ["learning_rate"])


def test_a_nan_test_accuracy_of_a_seed_that_did_not_diverge_shows_as_nan():
    """NaN test inputs (padding under a mask) make a test accuracy NaN while training stays
    finite (``diverged`` False): the summary said ``diverged (1/2)``."""
    results = _results().assign(diverged=False)
    last_of_c = (results["cell_id"] == "c") & (results["step"] == 10)
    results.loc[last_of_c, ["accuracy", "loss"]] = np.nan
    board = leaderboard(results, ["learning_rate"])
    assert board["learning_rate"].tolist() == [0.1, 1.0]  # a NaN still sorts last
    assert board[["accuracy", "loss"]].iloc[1].isna().all()
    assert board["diverged"].tolist() == [0, 0]
    lines = summary_text("b", results, ["learning_rate"]).splitlines()
    assert lines[1:4] == [
        "model dataset  learning_rate  seeds test accuracy test loss",
        "  mlp       d            0.1      2 0.600 ± 0.141     0.900",
        "  mlp       d            1.0      2           nan       nan",
    ]


@pytest.mark.parametrize("frames", [1, 2], ids=["one-frame", "two-concatenated"])
def test_repeated_index_labels_pick_one_row_per_cell(frames):
    """Frames concatenated without ``ignore_index`` repeat their labels."""
    whole = _results()
    halves = [whole[whole["learning_rate"] == lr].reset_index(drop=True) for lr in (0.1, 1.0)]
    results = whole if frames == 1 else pd.concat(halves)
    board = leaderboard(results, ["learning_rate"]).set_index("learning_rate")
    assert board["seeds"].tolist() == [2, 2]
    assert board["accuracy"].tolist() == pytest.approx([0.85, 0.6])
    spread = [np.std([0.9, 0.8], ddof=1), np.std([0.5, 0.7], ddof=1)]
    assert board["accuracy_std"].tolist() == pytest.approx(spread)
    assert board["loss"].tolist() == pytest.approx([0.25, 0.9])


def test_summary_shows_a_blown_up_but_finite_loss_in_a_few_characters():
    text = summary_text("b", _results(loss_d=4.65e31), ["learning_rate"])
    assert " 2.33e+31\n" in text  # the mean of seeds c and d, the last column
    assert max(map(len, text.splitlines()[:4])) < 80


def test_summary_shows_a_single_seeds_accuracy_without_a_spread():
    """A bench of one seed printed ``0.900 ± 0.000`` on every row, a spread of seeds that
    agree, where a single seed has none; the viewer shows none."""
    one_seed = _results()[lambda r: r["cell_id"].isin(["a", "c"])]
    lines = summary_text("b", one_seed, ["learning_rate"]).splitlines()
    assert [line.split()[-2:] for line in lines[2:4]] == [["0.900", "0.300"], ["0.500", "1.000"]]
    assert "±" not in "\n".join(lines)


def test_an_hparam_set_in_some_cells_and_unset_in_others_splits_the_rows():
    # weight_decay is NaN (unset) in cells a, b and 0.1 in c, d: two rows, not one.
    results = _results().assign(weight_decay=lambda r: r["cell_id"].map({"c": 0.1, "d": 0.1}))
    board = leaderboard(results, ["weight_decay"])
    assert list(board.columns[:3]) == ["model", "dataset", "weight_decay"]
    assert board["seeds"].tolist() == [2, 2]
    assert board["weight_decay"].iloc[0] == 0.1 and math.isnan(board["weight_decay"].iloc[1])
    assert board["accuracy"].tolist() == pytest.approx([0.85, 0.6])


def test_an_hparam_that_varies_within_any_one_model_is_a_key():
    # mlp varies its learning rate; cnn, a single cell, does not: still one row per rate.
    cnn = {"cell_id": "e", "model": "cnn", "dataset": "d", "learning_rate": 0.1, "step": 10}
    cnn |= {"split": "test", "accuracy": 0.3, "loss": 2.0}
    results = pd.concat([_results(), pd.DataFrame([cnn])], ignore_index=True)
    board = leaderboard(results, ["learning_rate"])
    rows = board[["model", "learning_rate", "seeds"]].values.tolist()
    assert rows == [["mlp", 1.0, 2], ["mlp", 0.1, 2], ["cnn", 0.1, 1]]


def test_summary_counts_cells_and_rows_and_says_how_many_rows_it_left_out():
    results = _results()  # 4 cells, 8 rows, 2 leaderboard rows
    assert summary_text("b", results, ["learning_rate"]).splitlines()[0] == (
        "bench b: 4 cells, 8 result rows"
    )
    assert "more rows" not in summary_text("b", results, ["learning_rate"], rows=2)
    assert "... 1 more row\n" in summary_text("b", results, ["learning_rate"], rows=1)


def test_summary_says_one_cell_and_one_row_in_the_singular():
    one_row = _results().iloc[[0]]
    assert summary_text("b", one_row, ["learning_rate"]).splitlines()[0] == (
        "bench b: 1 cell, 1 result row"
    )


def test_summary_shows_a_knob_a_model_does_not_have_as_a_dash_not_nan():
    """Only choice declares T (at 2.0 and 4.0): the mlp rows show ``–`` there (as the
    viewer does), not ``NaN``, which in this table reads as a value (a diverged run's)."""
    mlp = _results()[lambda r: r["cell_id"] == "c"]
    choice = [
        mlp.assign(model="choice", cell_id=f"c{t}", loss=0.3 / t, **{"knob/**/T": t})
        for t in (2.0, 4.0)
    ]
    text = summary_text("b", pd.concat([mlp, *choice]), ["learning_rate", "knob/**/T"])
    header = ["model", "dataset", "knob/**/T", "seeds", "test", "accuracy", "test", "loss"]
    assert [line.split() for line in text.splitlines()[1:5]] == [
        header,
        ["mlp", "d", "–", "1", "0.900", "0.300"],
        ["choice", "d", "2.0", "1", "0.900", "0.150"],
        ["choice", "d", "4.0", "1", "0.900", "0.075"],
    ]


def test_hparam_columns_that_name_no_column_are_refused_not_averaged_over():
    """'learning_rate' (its letters) or a typo silently put every rate in one row."""
    results = pd.DataFrame(
        {"cell_id": ["a", "b"], "model": "mlp", "dataset": "d", "learning_rate": [0.1, 0.01]}
    ).assign(step=5, split="test", accuracy=[0.9, 0.1], loss=[0.3, 2.0])
    with pytest.raises(TypeError, match=r"got the string 'learning_rate'; write \['learning_rate'"):
        leaderboard(results, "learning_rate")
    with pytest.raises(ValueError, match=r"\['learning_rat'\] are not .* mean 'learning_rate'\?"):
        leaderboard(results, ["learning_rat"])
    assert len(leaderboard(results, ["learning_rate"])) == 2


def test_results_cut_to_some_columns_name_those_the_leaderboard_lacks():
    results = pd.DataFrame(
        {"cell_id": ["a"], "model": "mlp", "dataset": "d", "step": 5, "split": "test"}
    ).assign(accuracy=0.9)
    with pytest.raises(ValueError, match=r"^results lack the columns \['loss'\]; the leader"):
        leaderboard(results, [])


def test_the_summary_shows_only_the_options_that_differ_within_a_model():
    """configs/mnist1d_study.yaml trains choicenet with and without per_example: the summary
    showed each row's every option as JSON, defaults too, rows of 200 characters."""
    plain = '{"dropout": 0.0, "input_kind": null, "pool": "mean"}'
    rows = [
        {"cell_id": cell, "model": model, "dataset": "d", "options": options}
        | {"step": 1, "split": "test", "accuracy": accuracy, "loss": 1.0}
        for cell, model, options, accuracy in [
            ("a", "choicenet", plain, 0.9),
            ("b", "choicenet", plain[:-1] + ', "per_example": true}', 0.8),
            ("c", "mlp", plain, 0.7),
        ]
    ]
    lines = summary_text("b", pd.DataFrame(rows), ["options"]).splitlines()
    assert [line.split()[2] for line in lines[2:5]] == ["–", "per_example=true", "–"]
    assert max(map(len, lines[:5])) < 80


def test_the_options_that_vary_read_each_distinct_options_once(monkeypatch):
    """/api/cells computes them for every cell: a JSON parse per cell and a pass over all
    cells per model took 1 s for 20,000 cells, each time the viewer read the bench."""
    plain, other = '{"pool": "mean"}', '{"pool": "max"}'
    board = pd.DataFrame({"model": ["m", "m", "n"] * 1000, "options": [plain, other, plain] * 1000})
    parsed = []
    monkeypatch.setattr(
        json, "loads", lambda text, loads=json.loads: parsed.append(text) or loads(text)
    )
    assert options_that_vary(board)[:3] == ['pool="mean"', 'pool="max"', None]
    assert sorted(parsed) == sorted([plain, other, plain])


def test_the_options_that_vary_take_an_int_as_the_float_it_resolves_to():
    """Older phosjax wrote ``dropout: 0`` as given; a model added since writes the ``0.0``
    it resolves to: the same model, no option varying, but a bool is no number."""
    board = pd.DataFrame(
        {
            "model": ["mlp", "mlp", "moe", "moe"],
            "options": [
                '{"dropout": 0, "pool": "mean"}',
                '{"dropout": 0.0, "pool": "mean"}',
                '{"gate": 1}',
                '{"gate": true}',
            ],
        }
    )
    assert options_that_vary(board) == [None, None, "gate=1", "gate=true"]
