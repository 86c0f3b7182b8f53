"""``python -m phosjax.bench.speed``: the CLI's outputs and errors (never its timings)."""

import dataclasses
import importlib.util
import os
import pathlib
import re
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from phosjax.bench import _speed, _speed_methods, _speed_report, speed
from phosjax.bench._speed import COLUMNS, METHODS, Skip, SpeedConfig
from phosjax.bench._speed_config import SpeedConfigError
from tests.benchmark_scripts import load_benchmark


def test_quick_run_writes_parquet_table_and_plot(tmp_path, capsys):
    out = tmp_path / "speed"
    argv = ["--quick", "--models", "mlp", "--strategy", "vmap", "--out", str(out)]
    assert speed.main(argv) == 0
    frame = pd.read_parquet(out / "speed.parquet")
    assert list(frame.columns) == list(COLUMNS)
    assert sorted(zip(frame["model"], frame["K"], frame["method"], strict=True)) == sorted(
        ("mlp", 2, method) for method in METHODS
    )
    torch = importlib.util.find_spec("torch") is not None
    ok = frame.set_index("method")["status"] == "ok"
    assert ok.drop("torch").all() and ok["torch"] == torch
    rates = frame.loc[frame["status"] == "ok", "model_steps_per_s"]
    assert (rates > 0).all() and np.isfinite(rates).all()
    assert frame.set_index("method").loc["engine", "strategy"] == "vmap"
    assert set(frame["backend"]) == {"cpu"} and set(frame["steps"]) == {2}
    assert (frame.loc[frame["status"] == "ok", "calls"] == 1).all()  # --quick: min_time 0
    plots = list(out.glob("speed.png")) + list(out.glob("speed.svg"))
    assert len(plots) == 1 and plots[0].stat().st_size > 0
    printed, err = capsys.readouterr()
    bar = [line for line in err.splitlines() if line.startswith("speed:")]
    assert [line[:11] for line in bar] == ["speed:   0%", "speed: 100%"], err  # a line a case
    assert bar[-1].endswith("mlp K=2]"), err  # which case it measured
    assert "eng/1by1" in printed and "eng/fused" in printed and "eng/vmap" in printed
    assert [line for line in printed.splitlines() if line.startswith("mlp")]
    assert (out / "speed.txt").read_text().strip() in printed
    if not torch:
        assert "skipped: torch (mlp K=2): torch is not installed" in printed


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--models", "mlp,resnet50"],
            "--models: unknown ['resnet50']; choose from ['mlp', 'cnn1d'",
        ),
        (["--methods", "jit"], "--methods: unknown ['jit']; choose from ['one_by_one'"),
        (
            ["--models", "mlpp,cnn1d"],
            "error: --models: unknown ['mlpp']; choose from ['mlp', 'cnn1d', 'cnn2d', "
            "'transformer']. Did you mean 'mlp'?\n",
        ),
        (  # no guess: names were compared as written
            ["--models", "MLP"],
            "error: --models: unknown ['MLP']; choose from ['mlp', 'cnn1d', 'cnn2d', "
            "'transformer']. Did you mean 'mlp'?\n",
        ),
        (
            ["--methods", "vamp"],
            "error: --methods: unknown ['vamp']; choose from ['one_by_one', "
            "'vmap', 'engine', 'fused', 'torch']. Did you mean 'vmap'?\n",
        ),
        (  # was "--compute_dtype: 'float16': expected one of ('float32', 'bfloat16')"
            ["--compute_dtype", "float16"],
            "error: --compute_dtype: unknown 'float16'; choose from ['float32', 'bfloat16']. "
            "Did you mean 'bfloat16' or 'float32'?\n",
        ),
        (["--sizes", "1,eight"], "--sizes '1,eight': expected integers like 1,8,64, got 'eight'"),
        (["--sizes", "8,1.5"], "--sizes '8,1.5': expected integers like 1,8,64, got '1.5'"),
        (  # was "--strategy 'vamp': expected one of ('auto', ...)", unlike the others
            ["--strategy", "vamp"],
            "error: --strategy: unknown 'vamp'; choose from ['auto', 'vmap', 'map', "
            "'sequential', 'stepwise', 'vmap_matmul', 'map_matmul']. Did you mean 'vmap'?\n",
        ),
        (["--sizes", "1,8,1"], "--sizes: repeat [1]; give each size once"),
        (["--sizes", "[]"], "--sizes: empty; give at least one size"),
        (  # the empty item was dropped: mlp and cnn1d measured
            ["--models", "mlp,,cnn1d"],
            "error: --models 'mlp,,cnn1d' holds an empty name (before, between or after its "
            "commas); give names joined by commas, e.g. --models mlp,cnn1d\n",
        ),
        (  # sizes were called names: "holds an empty name ...; give names joined by commas"
            ["--sizes", "1,,8"],
            "error: --sizes '1,,8' holds an empty size (before, between or after its commas); "
            "give sizes joined by commas, e.g. --sizes 1,8,64\n",
        ),
        (["--sizes", ","], "error: --sizes ',' holds an empty size"),
        (["--models", "mlp,mlp"], "--models: repeat ['mlp']; give each model once"),
        (["--methods", ""], "--methods: empty; give at least one method"),
        (["--methods", "vmap,"], "e.g. --methods vmap,engine\n"),
        (["--budget", "-5"], "error: --budget: must be >= 0 seconds, got -5.0\n"),
        (["--sizes", "0"], "error: --sizes: must be >= 1, got 0\n"),
        (["--sizes", "2,-3"], "error: --sizes: must be >= 1, got -3\n"),
        (["--steps", "0"], "error: --steps: must be >= 1, got 0\n"),
        (["--batch", "0"], "error: --batch: must be >= 1, got 0\n"),
        (["--repeats", "0"], "error: --repeats: must be >= 1, got 0\n"),
        (["--min_time", "-1"], "error: --min_time: must be >= 0 seconds, got -1.0\n"),
        (["--budget", ".nan"], "error: --budget: must be >= 0 seconds, got nan\n"),  # it ran
        (["--min_time", ".nan"], "error: --min_time: must be >= 0 seconds, got nan\n"),
        (["--min_time", ".inf"], "error: --min_time: must be a finite number of seconds, got inf"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.setattr(speed, "measure", lambda *a, **k: pytest.fail("measured"))
    assert speed.main([*argv, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing measured, nothing written


@pytest.mark.parametrize("steps", [["--steps", "1e3"], ["--steps=1e3"]])
def test_a_bad_number_is_named_as_typed(tmp_path, capsys, steps):
    """``--steps 1e3`` was said to be ``--steps 1000.0``, the number jsonargparse made of it."""
    with pytest.raises(SystemExit) as exit_info:
        speed.main([*steps, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "error: --steps 1e3: expected int;" in capsys.readouterr().err


def test_an_empty_out_is_refused_not_taken_for_the_working_directory(tmp_path, capsys, monkeypatch):
    """``--out ''`` was the working directory: refused for its files, or written into."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(speed, "measure", lambda *a, **k: pytest.fail("measured"))
    with pytest.raises(SystemExit) as exit_info:
        speed.main(["--quick", "--out", ""])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "error: --out is empty; give the output directory, e.g. --out runs/speed; python -m "
        "phosjax.bench.speed --help lists the options.\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_an_out_that_is_a_file_is_refused_before_measuring(tmp_path, capsys):
    out = tmp_path / "speed"
    out.write_text("keep me")
    assert speed.main(["--quick", "--models", "mlp", "--out", str(out)]) == 2
    assert f"--out {str(out)!r} is a file" in capsys.readouterr().err
    assert out.read_text() == "keep me" and list(tmp_path.iterdir()) == [out]
    below = out / "sub"
    assert speed.main(["--quick", "--models", "mlp", "--out", str(below)]) == 2
    assert f"--out {str(below)!r}: cannot make the directory" in capsys.readouterr().err
    assert out.read_text() == "keep me"


def test_an_out_that_is_a_bench_or_holds_other_files_is_refused_before_measuring(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(speed, "measure", lambda *a, **k: pytest.fail("measured"))
    bench = tmp_path / "bench"
    (bench / "results").mkdir(parents=True)
    (bench / "bench.json").write_text("{}")
    for out, where in (
        (bench, "is a bench"),
        (bench / "results", f"is inside the bench {str(bench.resolve())!r}"),
    ):
        assert speed.main(["--quick", "--models", "mlp", "--out", str(out)]) == 2
        assert f"error: --out {str(out)!r} {where}, whose files speed.* would mix" in (
            capsys.readouterr().err
        )
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    (mine / "speed.txt.old-20260101-000000").write_text("an earlier table")
    assert speed.main(["--quick", "--models", "mlp", "--out", str(mine)]) == 2
    said = f"error: --out {str(mine)!r} holds notes.txt, which no speed run wrote; pick a new"
    assert said in capsys.readouterr().err
    assert sorted(p.name for p in bench.rglob("*")) == ["bench.json", "results"]
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt", "speed.txt.old-20260101-000000"]


def test_help_names_what_each_option_of_names_takes(capsys):
    """--compute_dtype's help read "or bfloat16"; --models, --methods and --strategy named
    none of the names they take."""
    with pytest.raises(SystemExit):
        speed.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--models MODELS comma-separated, any of mlp, cnn1d, cnn2d, transformer" in text
    assert "--methods METHODS comma-separated, any of one_by_one, vmap, engine, fused" in text
    assert "--strategy STRATEGY the engine's strategy: auto, vmap, map, sequential," in text
    assert "--compute_dtype COMPUTE_DTYPE float32 or bfloat16, for every method" in text


def test_help_shows_the_defaults_and_what_quick_sets(capsys):
    """--sizes, --steps, --batch and --min_time read "default: null" (their value left
    to --quick); each shows its default and --quick's value, and --quick what it sets."""
    with pytest.raises(SystemExit):
        speed.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "null" not in text
    assert "--sizes SIZES grid sizes K (type: str, default: 1,8,64,256; --quick: 2)" in text
    assert "--steps STEPS timed steps per model (type: int, default: 100; --quick: 2)" in text
    assert "(type: float, default: 0.25; --quick: 0.0)" in text
    assert "--quick a tiny smoke run: --sizes 2 --steps 2 --batch 8 --min_time 0.0," in text


def test_a_string_of_names_is_a_clear_error():
    with pytest.raises(
        SpeedConfigError, match=r"models: must be a tuple of names, e.g. \('mlp',\)"
    ):
        SpeedConfig(models="mlp")


def test_a_bad_field_is_named_in_the_error():
    with pytest.raises(SpeedConfigError, match=r"^budget: must be >= 0 seconds, got -1$") as info:
        SpeedConfig(budget=-1)
    assert info.value.field == "budget"
    assert isinstance(info.value, ValueError)  # what a caller of the dataclass catches


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        (8, r"^sizes: must be a tuple of integers, e.g. \(8,\), not 8$"),
        ("8", r"^sizes: must be a tuple of integers, e.g. \(1, 8\), not '8'$"),
        (2.5, r"^sizes: must be a tuple of integers, e.g. \(1, 8\), not 2.5$"),
        ((1, 2.5), r"^sizes: must be integers, got 2.5$"),
        (("8",), r"^sizes: must be integers, got '8'$"),
    ],
)
def test_sizes_that_are_not_a_tuple_of_integers_are_named(sizes, message):
    """``SpeedConfig(sizes=8)`` raised a bare AttributeError and 2.5 passed unchecked."""
    with pytest.raises(SpeedConfigError, match=message) as info:
        SpeedConfig(sizes=sizes)
    assert info.value.field == "sizes"


def test_sizes_of_a_range_are_taken_as_before():
    """The check of sizes' type took a tuple or a list only: range(1, 3) was refused."""
    assert sorted(SpeedConfig(sizes=range(1, 3)).sizes) == [1, 2]


@pytest.mark.parametrize(("field", "value"), [("steps", 2.5), ("batch", "8"), ("repeats", True)])
def test_steps_batch_and_repeats_that_are_not_integers_are_named(field, value):
    """They passed unchecked, where sizes of 2.5 are named; True is no count of steps."""
    with pytest.raises(SpeedConfigError, match=rf"^{field}: must be an integer, got {value!r}$"):
        SpeedConfig(**{field: value})
    assert getattr(SpeedConfig(**{field: np.int64(3)}), field) == 3


@pytest.mark.parametrize("field", ["budget", "min_time"])
@pytest.mark.parametrize(("value", "shown"), [(True, "True (bool)"), ("60", "'60' (str)")])
def test_budget_and_min_time_that_are_no_numbers_are_named(field, value, shown):
    """True ran as 1 second, as a bool for a float knob must not; "60" was a TypeError."""
    message = rf"^{field}: must be a number of seconds, got {re.escape(shown)}$"
    with pytest.raises(SpeedConfigError, match=message):
        SpeedConfig(**{field: value})
    assert getattr(SpeedConfig(**{field: np.float64(0.5)}), field) == 0.5


def _fake_setup(bytes_per_model: int) -> _speed_methods.Setup:
    return _speed_methods.Setup("mlp", _speed.MODELS["mlp"], id, id, id, None, bytes_per_model, 0.0)


def test_sizes_that_would_not_fit_or_exceed_the_budget_are_skipped():
    cfg = SpeedConfig(steps=10, budget=60.0, methods=("vmap",), repeats=2)
    with pytest.raises(Skip, match="would not fit"):
        _speed._check(_fake_setup(2**40), 256, "vmap", cfg, {})
    _speed._check(_fake_setup(1), 256, "vmap", cfg, {})  # first size: no estimate yet
    # 100 model-steps/s: 8 models x 21 steps take ~2 s, 256 models ~54 s, 512 ~108 s.
    _speed._check(_fake_setup(1), 256, "vmap", cfg, {"vmap": 100.0})
    with pytest.raises(Skip, match=r"estimated 108 s > budget 60 s"):
        _speed._check(_fake_setup(1), 512, "vmap", cfg, {"vmap": 100.0})
    # said "skipped" after a smaller K had failed (torch raising), too
    with pytest.raises(Skip, match=r"a smaller K of this method was not measured \(skipped or "):
        _speed._check(_fake_setup(1), 8, "vmap", cfg, {"vmap": None})
    tiny = dataclasses.replace(cfg, budget=1e-6)  # an estimate under a second is not "0 s"
    with pytest.raises(Skip, match=r"estimated 1.68 s > budget 1e-06 s"):
        _speed._check(_fake_setup(1), 8, "vmap", tiny, {"vmap": 100.0})


def test_torch_without_torch_is_skipped_before_compiling_the_jax_step(monkeypatch):
    """``--methods torch`` without torch compiled the jax one-model step, then skipped."""
    monkeypatch.setattr(_speed._speed_torch, "unavailable", lambda: "torch is not installed")
    monkeypatch.setattr(_speed, "setup_model", lambda *_: pytest.fail("compiled the jax step"))
    cfg = SpeedConfig(models=("mlp",), sizes=(1, 2), methods=("torch",))
    frame = _speed.measure(cfg, progress=False)
    assert frame["status"].tolist() == ["skipped", "skipped"]
    assert set(frame["note"]) == {"torch is not installed: install torch to compare"}


def test_the_engines_time_estimate_counts_autos_timings_only_under_auto():
    """``--strategy vmap`` times no strategies, yet its estimate counted auto's 240 steps
    a model: 8.7x the work of 10 steps, the engine skipped where the others ran."""
    cfg = SpeedConfig(steps=10, budget=5.0, methods=("engine",), strategy="vmap", repeats=2)
    _speed._check(_fake_setup(1), 8, "engine", cfg, {"engine": 100.0})  # 8 x 31 steps: 2.5 s
    with pytest.raises(Skip, match=r"estimated 21.7 s > budget 5 s"):  # 8 x 271 steps
        auto = dataclasses.replace(cfg, strategy="auto")
        _speed._check(_fake_setup(1), 8, "engine", auto, {"engine": 100.0})


def test_the_engines_time_estimate_counts_the_steps_it_runs():
    """``--steps 150``: the engine runs whole chunks of 100, 200 steps a timing, after a
    warm-up of one chunk; its estimate counted 150 and 150 (36.1 s), and it ran where it
    would take 40.1 s, over the budget."""
    cfg = SpeedConfig(steps=150, budget=38.0, methods=("engine",), strategy="vmap", repeats=2)
    with pytest.raises(Skip, match=r"estimated 40.1 s > budget 38 s"):  # 8 x (2 x 200 + 101)
        _speed._check(_fake_setup(1), 8, "engine", cfg, {"engine": 100.0})
    _speed._check(_fake_setup(1), 8, "vmap", cfg, {"vmap": 100.0})  # 8 x 301 steps: 24.1 s


def test_the_time_estimate_counts_the_min_time_each_timing_lasts():
    """A call of 10 steps of one model at 100 model-steps/s takes 0.1 s, but each of the 3
    timings lasts --min_time 2 s, after a sizing call: 6.11 s, not the 0.31 s of the steps
    alone, which ran a size past the budget."""
    cfg = SpeedConfig(steps=10, budget=5.0, methods=("vmap",), repeats=3, min_time=2.0)
    with pytest.raises(Skip, match=r"^estimated 6\.11 s > budget 5 s$"):
        _speed._check(_fake_setup(1), 1, "vmap", cfg, {"vmap": 100.0})
    short = dataclasses.replace(cfg, budget=0.3, min_time=0.0)
    with pytest.raises(Skip, match=r"^estimated 0\.31 s > budget 0\.3 s$"):
        _speed._check(_fake_setup(1), 1, "vmap", short, {"vmap": 100.0})


def test_the_time_left_counts_no_method_that_the_budget_check_skips(monkeypatch):
    """The engine under auto warms up 251 steps a model beside the 2 x 10 it times: at
    K=8 and 100 model-steps/s its timings take 1.6 s, under the 5 s budget, but with its
    warm-up 21.7 s, over it; the run skipped it, its time left counted its timings."""

    class Made(Exception):
        pass

    def made(*args, skipped, **kwargs):
        raise Made(skipped)

    monkeypatch.setattr(_speed, "CasesLeft", made)
    cfg = SpeedConfig(steps=10, budget=5.0, methods=("engine", "vmap"), repeats=2)
    with pytest.raises(Skip, match=r"^estimated 21\.7 s > budget 5 s$"):
        _speed._check(_fake_setup(1), 8, "engine", cfg, {"engine": 100.0})
    with pytest.raises(Made) as made_info:
        _speed.measure(cfg, progress=False)
    skipped = made_info.value.args[0]
    assert [skipped("engine", 0.8), skipped("vmap", 0.8)] == [True, False]  # vmap: 1.68 s
    with pytest.raises(Made) as made_info:
        _speed.measure(dataclasses.replace(cfg, budget=0.0), progress=False)  # no budget
    assert not made_info.value.args[0]("engine", 0.8)


def test_the_engines_memory_check_counts_its_gathered_chunk(monkeypatch):
    """mlp: 41 float32 numbers per example; 64 cells x 100 steps x batch 128 gather
    ~134 MB before their steps. With 100 MB free the engine is skipped, vmap is not."""
    monkeypatch.setattr(_speed, "_available_bytes", lambda device: 100 * 2**20)
    cfg = SpeedConfig(steps=100, batch=128, methods=("vmap", "engine"))
    assert _speed_methods.gathered_bytes(_fake_setup(1), 64, cfg) == 64 * 100 * 128 * 4 * 41
    # 1,024 cells' chunk would take 2.1 GB: each step gathers its own batch (21.5 MB) then
    assert _speed_methods.gathered_bytes(_fake_setup(1), 1024, cfg) == 1024 * 128 * 4 * 41
    _speed._check(_fake_setup(1), 64, "vmap", cfg, {})
    with pytest.raises(Skip, match=r"~0\.1 GiB needed, 0\.1 GiB free"):
        _speed._check(_fake_setup(1), 64, "engine", cfg, {})


def test_one_by_one_warmup_counts_its_compile_like_every_method():
    """``one_by_one``'s step is compiled in `setup_model` (shared by every K), not in its
    first call; its ``warmup_s`` counts it, as the other methods' first calls do."""
    cfg = SpeedConfig(batch=4, steps=2)
    setup = _speed_methods.setup_model("mlp", cfg)
    ready = _speed_methods.PREPARE["one_by_one"](setup, 2, cfg)
    assert 0 < setup.compile_s < ready.warmup_s


def _frame() -> pd.DataFrame:
    per_model = {"one_by_one": 100.0, "vmap": 300.0, "engine": 250.0, "torch": np.nan}
    rows = [
        ("mlp", k, method, "ok" if method != "torch" else "skipped", rate * k)
        for k in (1, 8)
        for method, rate in per_model.items()
    ]
    frame = pd.DataFrame(rows, columns=["model", "K", "method", "status", "model_steps_per_s"])
    frame = frame.reindex(columns=list(COLUMNS))
    return frame.assign(backend="cpu", device="cpu", batch=4, steps=2, compute_dtype="float32")


def test_a_run_with_no_engine_rows_has_empty_strategies():
    """With no method giving a strategy or a note (``--methods vmap``, every method
    skipped), their columns were float NaN, filled with "": pandas' Pandas4Warning, an
    error in pandas 4, after every case had been measured."""
    frame = _speed._frame([{"model": "mlp", "K": 1, "method": "vmap", "status": "ok"}])
    assert frame[["strategy", "note"]].values.tolist() == [["", ""]]


def test_table_ratios_and_svg_plot(tmp_path):
    frame = _frame().assign(note="", strategy="vmap")
    frame.loc[frame["method"] == "torch", "note"] = "torch is not installed"
    frame.loc[(frame["method"] == "vmap") & (frame["K"] == 8), "note"] = "a warning"
    text = _speed_report.table(frame)
    row = next(line for line in text.splitlines() if line.startswith("mlp") and " 8 " in line)
    assert row.split()[-4:] == ["vmap", "2.50", "0.83", "-"]  # strategy, eng/1by1, vmap, torch
    assert "skipped: torch (mlp K=1, mlp K=8): torch is not installed" in text
    assert "note: vmap (mlp K=8): a warning" in text and "vmap (mlp K=1)" not in text
    assert "steps=2 compute_dtype" in text
    chunked = frame.assign(steps=np.where(frame["method"] == "engine", 4, 2))
    assert "steps=2 (engine: 4, in whole chunks) compute_dtype" in _speed_report.table(chunked)
    assert "compute_dtype=float32\n" in text
    assert "; eng/x = engine rate / x rate (> 1: engine faster)\n" in text
    merged = pd.concat([frame, frame.assign(model="mlp bf16", compute_dtype="bfloat16")])
    assert "compute_dtype=float32,bfloat16\n" in _speed_report.table(merged)
    path = _speed_report.svg(frame, tmp_path / "speed")
    root = ET.parse(path).getroot()
    assert path.suffix == ".svg" and root.tag.endswith("svg")
    assert len(root.findall("{http://www.w3.org/2000/svg}polyline")) == 3  # ok methods


def test_a_long_strategy_name_keeps_the_table_s_columns_apart():
    frame = _frame().assign(note="", strategy="vmap_matmul")
    head, *rows = [line for line in _speed_report.table(frame).splitlines()[2:5]]
    assert all(len(row) == len(head) for row in rows)
    assert [row.split()[-4] for row in rows] == ["vmap_matmul"] * 2


def test_a_long_model_name_keeps_the_table_s_columns_apart():
    """speed_plot.py's merged names ("transformer bf16") ran past the model column, shifting
    their rows by four characters against the header and the other rows."""
    frame = _frame().assign(note="", strategy="vmap")
    merged = pd.concat([frame, frame.assign(model="transformer bf16")])
    head, *rows = _speed_report.table(merged).splitlines()[2:7]
    assert [len(row) for row in rows] == [len(head)] * 4
    k_ends = head.index(" K ") + 2  # each K right-aligned under the header's
    assert [row[:k_ends] for row in rows] == [
        f"{model:<17}{k:>5}" for model in ("mlp", "transformer bf16") for k in (1, 8)
    ]


def test_svg_tick_labels_show_rates_below_one(tmp_path):
    frame = _frame().assign(note="", strategy="vmap")
    frame["model_steps_per_s"] /= 1000  # 0.1 to 2.4 model-steps/s
    root = ET.parse(_speed_report.svg(frame, tmp_path / "speed")).getroot()
    texts = root.findall("{http://www.w3.org/2000/svg}text")
    assert [t.text for t in texts if t.get("text-anchor") == "end"] == ["0.1", "2.4"]


@pytest.mark.parametrize("name", list(_speed.MODELS))
def test_torch_twins_have_the_models_parameter_counts(name):
    """The ``torch`` method trains the same models (runs where torch is installed)."""
    torch = pytest.importorskip("torch")
    import jax
    import jax.numpy as jnp

    from phosjax.bench._speed_torch import _model

    config = _speed.MODELS[name]
    x = jnp.zeros((1, *config.input_shape))
    params = config.build().init(jax.random.key(0), x, train=False)["params"]
    twin = _model(name, torch)
    assert sum(p.numel() for p in twin.parameters()) == sum(a.size for a in jax.tree.leaves(params))


def test_a_timing_repeats_a_fast_methods_calls_to_last_min_time(monkeypatch):
    """A method whose run takes 10 ms is called 5 times per timing for ``min_time`` 0.05 s;
    one whose run takes 100 ms once, its first (sizing) call counting as a timing."""
    made = {"fast": 0, "slow": 0}

    def ready(name: str) -> _speed_methods.Ready:
        return _speed_methods.Ready(lambda: made.__setitem__(name, made[name] + 1), 0.0, 10)

    def fake_timed(run):  # 10 ms per fast call, 100 ms per slow call
        before = dict(made)
        run()
        return 0.01 * (made["fast"] - before["fast"]) + 0.1 * (made["slow"] - before["slow"])

    monkeypatch.setattr(_speed, "timed", fake_timed)
    best = _speed._interleaved({"fast": ready("fast"), "slow": ready("slow")}, 3, 0.05)
    assert best["fast"] == _speed.Timing(pytest.approx(0.05), 5) and made["fast"] == 1 + 3 * 5
    assert best["slow"] == _speed.Timing(pytest.approx(0.1), 1) and made["slow"] == 3


def test_a_timing_cut_short_by_a_slow_first_call_is_sized_again(monkeypatch):
    """A first call of 25 ms (later calls take 10 ms) sizes a timing of 0.05 s at 2 calls;
    their 20 ms fall short, so the count becomes 5 and every timing lasts ``min_time``."""
    made = []
    ready = _speed_methods.Ready(lambda: made.append(0.025 if not made else 0.01), 0.0, 10)

    def fake_timed(run):
        before = len(made)
        run()
        return sum(made[before:])

    monkeypatch.setattr(_speed, "timed", fake_timed)
    best = _speed._interleaved({"m": ready}, 3, 0.05)
    assert best["m"] == _speed.Timing(pytest.approx(0.05), 5)
    assert len(made) == 1 + 2 + 3 * 5  # sizing call, short timing, three timings


def test_a_run_cut_off_keeps_the_cases_it_measured(tmp_path, monkeypatch):
    """The files are written after each (model, K): a run killed at K=3 keeps K=1's rows."""
    prepare = _speed_methods.PREPARE["vmap"]

    def cut_at_three(setup, k, cfg):
        if k == 3:
            raise KeyboardInterrupt
        return prepare(setup, k, cfg)

    monkeypatch.setitem(_speed_methods.PREPARE, "vmap", cut_at_three)
    out = tmp_path / "speed"
    argv = ["--quick", "--sizes", "1,3", "--models", "mlp", "--methods", "vmap", "--no_progress"]
    assert speed.main([*argv, "--out", str(out)]) == 130  # Ctrl-C: one line, not a traceback
    frame = pd.read_parquet(out / "speed.parquet")
    assert frame[["model", "K", "method", "status"]].values.tolist() == [["mlp", 1, "vmap", "ok"]]
    assert "mlp" in (out / "speed.txt").read_text()
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp")]


def _config(*argv: str) -> SpeedConfig:
    return speed.config_from_args(speed.parser().parse_args(list(argv)))


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], dict(sizes=(1, 8, 64, 256), steps=100, batch=128, repeats=3, min_time=0.25)),
        (["--quick"], dict(sizes=(2,), steps=2, batch=8, repeats=3, min_time=0.0)),
        (
            ["--steps", "7", "--batch", "9", "--repeats", "4", "--min_time", "0.5"],
            dict(sizes=(1, 8, 64, 256), steps=7, batch=9, repeats=4, min_time=0.5),
        ),
        (
            ["--quick", "--steps", "5", "--batch", "3", "--repeats", "2", "--min_time", "1.5"],
            dict(sizes=(2,), steps=5, batch=3, repeats=2, min_time=1.5),
        ),
        (["--min_time", "0"], dict(steps=100, min_time=0.0)),  # 0 given is not "unset"
        (["--sizes", "3, 5", "--budget", "7"], dict(sizes=(3, 5), budget=7.0)),
        (  # a list as new takes it: '[a, b]'
            ["--sizes", "[1, 8]", "--models", "[mlp, cnn1d]", "--methods", "[vmap]"],
            dict(sizes=(1, 8), models=("mlp", "cnn1d"), methods=("vmap",)),
        ),
    ],
)
def test_the_command_line_flows_into_the_config(argv, expected):
    config = _config(*argv)
    assert {key: getattr(config, key) for key in expected} == expected


def test_an_earlier_runs_files_in_out_are_moved_aside_not_overwritten(
    tmp_path, capsys, monkeypatch
):
    def measured(config, progress, on_case):
        on_case(_frame())
        return _frame()

    monkeypatch.setattr(speed, "measure", measured)
    out = tmp_path / "speed"
    out.mkdir()
    (out / "speed.parquet").write_bytes(b"an earlier run's rows")
    (out / "speed.txt").write_text("an earlier table")
    assert speed.main(["--quick", "--no_progress", "--out", str(out)]) == 0
    (rows,) = out.glob("speed.parquet.old-*")
    (table,) = out.glob("speed.txt.old-*")
    assert rows.read_bytes() == b"an earlier run's rows" and table.read_text() == "an earlier table"
    err = capsys.readouterr().err
    assert f"moved the earlier speed.parquet to {rows}\n" in err
    assert f"moved the earlier speed.txt to {table}\n" in err
    assert len(pd.read_parquet(out / "speed.parquet")) == len(_frame())


def test_a_stop_before_the_table_is_written_says_the_cases_are_in_speed_parquet(
    tmp_path, capsys, monkeypatch
):
    """Stopped as the first case's speed.txt was written, the line said the cases were
    kept in "(speed.parquet, speed.txt, the plot)", where only speed.parquet held them."""
    write_text = _speed_report.write_text

    def stopped_at_the_table(path: pathlib.Path, text: str) -> None:
        if path.name == "speed.txt":
            raise KeyboardInterrupt
        write_text(path, text)

    def measured(config, progress, on_case):
        on_case(_frame())
        pytest.fail("went on after the stop")

    monkeypatch.setattr(_speed_report, "write_text", stopped_at_the_table)
    monkeypatch.setattr(speed, "measure", measured)
    out = tmp_path / "speed"
    assert speed.main(["--quick", "--no_progress", "--out", str(out)]) == 130
    assert sorted(p.name for p in out.iterdir()) == ["speed.parquet"]
    assert len(pd.read_parquet(out / "speed.parquet")) == len(_frame())
    assert capsys.readouterr().err == (
        "interrupted: the (model, K) cases measured so far are kept in --out's speed.parquet "
        "(speed.txt and the plot, written after it, may lack the last); nothing resumes: the "
        "same command measures them all again (moving those files aside): python -m "
        f"phosjax.bench.speed --quick --no_progress --out {out}\n"
    )


def test_an_earlier_file_that_cannot_be_moved_aside_is_one_error_naming_it(
    tmp_path, capsys, monkeypatch, refuse_moving
):
    """A move aside the system refused (a read-only --out) said "[Errno 13] Permission
    denied: ... -> ...", then that the cases measured so far were kept, none measured;
    it names the file, where it was to go and what to do, as the bench's --force does."""
    monkeypatch.setattr(speed, "measure", lambda *args, **kwargs: pytest.fail("measured"))
    out = tmp_path / "speed"
    out.mkdir()
    table = out / "speed.txt"
    table.write_text("an earlier table")
    refuse_moving(table)
    assert speed.main(["--quick", "--no_progress", "--out", str(out)]) == 2
    said = re.fullmatch(
        rf"error: cannot move the earlier speed\.txt {re.escape(repr(str(table)))} aside to "
        rf"'{re.escape(str(table))}\.old-\d{{8}}-\d{{6}}': Permission denied; let this user "
        r"read and write it \(its permissions, those of its folder\), or pick another --out\.\n",
        capsys.readouterr().err,
    )
    assert said is not None
    assert sorted(p.name for p in out.iterdir()) == ["speed.txt"]
    assert table.read_text() == "an earlier table"


@pytest.mark.parametrize("draw", [_speed_report.svg, _speed_report.plot])
def test_a_plot_is_written_whole(tmp_path, monkeypatch, draw):
    """The plot was written in place: a kill or a full disk as it was written left half a
    file, over the earlier one; it is replaced whole, as the table and the Parquet are."""
    replaced, replace = [], os.replace
    spy = lambda source, target: replaced.append(target) or replace(source, target)
    monkeypatch.setattr(os, "replace", spy)
    path = draw(_frame().assign(note="", strategy="vmap"), tmp_path / "speed")
    assert replaced == [path] and path.stat().st_size > 0


def test_speed_plot_refuses_a_case_measured_by_two_runs(tmp_path):
    """benchmarks/speed_plot.py averaged a (model, dtype, K, method) two runs held, the
    table's ratios then no longer those of one run."""
    merged = load_benchmark("speed_plot").merged
    runs = {
        "a": ("float32", [8]),
        "b": ("bfloat16", [8]),
        "c": ("float32", [8, 64]),
        "d": ("float32", [64]),  # mlp f32 twice too, at another K: not named with K=8
    }
    for run, (dtype, sizes) in runs.items():
        (tmp_path / run).mkdir()
        rows = {"model": "mlp", "K": sizes, "method": "vmap", "compute_dtype": dtype}
        pd.DataFrame(rows).to_parquet(tmp_path / run / "speed.parquet")
    frame = merged([str(tmp_path / "a"), str(tmp_path / "b")])
    assert list(frame["model"]) == ["mlp f32", "mlp bf16"] and "run" not in frame
    with pytest.raises(
        SystemExit, match=r"mlp f32 K=8 vmap is in more than one run \(\S*/a, \S*/c\);"
    ):
        merged([str(tmp_path / run) for run in runs])


@pytest.mark.parametrize(
    "script",
    ["engine_overheads", "engine_step_parts", "fit_candidates", "step_copies", "step_costs"],
)
def test_a_benchmark_without_options_refuses_an_argument(script, monkeypatch, capsys):
    """They ignored their arguments: a typo such as ``--rounds 3`` ran the whole benchmark."""
    monkeypatch.setattr("sys.argv", [f"{script}.py", "--rounds", "3"])
    with pytest.raises(SystemExit) as exit_info:
        load_benchmark(script).main()
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --rounds 3" in capsys.readouterr().err


def test_every_parquet_column_is_documented():
    """docs/performance.md listed some of speed.parquet's columns and ``...``; its table of
    columns names each of `COLUMNS`, and no other."""
    docs = (pathlib.Path(__file__).parents[2] / "docs" / "performance.md").read_text()
    columns = docs.split("with the columns:\n\n")[1].split("\n\n")[0]  # the table
    rows = re.findall(r"^\| (`.+?`) \|", columns, re.MULTILINE)
    named = [name for row in rows for name in re.findall(r"`(\w+)`", row)]
    assert sorted(named) == sorted(COLUMNS)


def test_torch_runs_on_the_device_jax_runs_on():
    """Torch took CUDA whenever it had it: with jax on the CPU its row (and eng/torch)
    compared a GPU with the CPU. It runs on jax's kind of device, or its row fails saying
    why (jax on a GPU, torch without CUDA)."""
    from phosjax.bench._speed_torch import device

    assert (device("cpu", cuda=True), device("cpu", cuda=False)) == ("cpu", "cpu")
    assert device("gpu", cuda=True) == "cuda"
    with pytest.raises(ValueError, match=r"^jax runs on gpu but this torch has no CUDA: "):
        device("gpu", cuda=False)
    with pytest.raises(ValueError, match=r"^jax runs on tpu; torch runs only on cpu or gpu"):
        device("tpu", cuda=True)


def test_a_table_without_the_engine_has_no_strategy_column_nor_ratio_legend():
    """``--methods vmap,fused``: the table showed a strategy column of dashes, the
    engine's strategy, and the "eng/x = ..." legend, though no engine ran."""
    frame = _frame().assign(note="", strategy="")
    frame = frame[frame["method"].isin(["one_by_one", "vmap"])]
    lines = _speed_report.table(frame).splitlines()
    assert lines[1] == "model-steps/s (higher is better)"  # no eng/x legend without the engine
    assert lines[2].split() == ["model", "K", "one_by_one", "vmap"]
    assert lines[3].split() == ["mlp", "1", "100", "300"]
