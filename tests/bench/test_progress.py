"""The bench's progress bar: its time left, with a fake clock."""

import contextlib
import gc
import io
import os
import re
import sys
import threading
import time

import pytest
import tqdm

from phosjax.bench import _speed
from phosjax.bench._cli import data_bars_hidden
from phosjax.bench._profile import MemorySampler, ProfileFiles, init_rows
from phosjax.bench._progress import Bar, TimeLeft, TrainingBar, bar_options
from phosjax.bench._speed_config import SpeedConfig
from phosjax.bench._speed_left import CasesLeft
from phosjax.bench._speed_methods import Ready
from phosjax.morph import _loop
from phosjax.morph._loop import _Stages


@pytest.fixture(autouse=True)
def no_bar_left_open() -> None:
    """These tests read what their bars write: another bar left open in this worker (by an
    earlier test) would move theirs to a row below it, where tqdm closes a bar without its
    last line. Such a test is named here, not these ones failing now and then."""
    if tqdm.tqdm._instances:
        gc.collect()  # those no one holds: closed as they go
    assert not tqdm.tqdm._instances, (
        f"an earlier test left bars open: {[bar.desc for bar in tqdm.tqdm._instances]}"
    )


def test_time_left_leaves_compile_out_of_the_rate():
    """Two groups of 400 cell-steps, each compiling 10 s then training 100 steps in 0.5 s:
    after the first group's second chunk, 13 s are left (its 200 steps and the other's
    400 at 200 step/s, and the other's compile), where tqdm's rate, the compile in it,
    said minutes; ``?`` before the second chunk, which times a chunk that compiles not."""
    now = [0.0]
    out = io.StringIO()
    bar = TrainingBar(groups=2, total=800, file=out, mininterval=0, clock=lambda: now[0])
    bar.group_started()
    now[0] = 10.5
    bar.chunk(100)
    assert "<?," in out.getvalue().splitlines()[-1]
    now[0] = 11.0
    bar.chunk(100)
    assert "<00:13," in out.getvalue().splitlines()[-1]
    bar.close()


def test_the_bar_s_rate_leaves_compiles_out():
    """tqdm's rate counted each group's compile in: 70 step/s shown while the groups
    trained 1,600 (4 host devices, 2 cores). It is tqdm's until a chunk after a group's
    first has trained, then that group's own."""
    now = [0.0]
    out = io.StringIO()
    bar = TrainingBar(
        groups=2, total=800, unit="step", file=out, mininterval=0, clock=lambda: now[0]
    )
    rates = []
    with bar:
        for group_steps in ((10.5, 11.0), (20.0, 22.0)):  # 200 step/s, then 50
            bar.group_started()
            for now[0] in group_steps:  # its compile, then 100 steps after it
                bar.chunk(100)
                rates.append(re.search(r", (\S+)step/s", out.getvalue().splitlines()[-1])[1])
    assert rates[1:] == ["200.00", "200.00", "50.00"]


def test_the_bar_s_rate_before_its_own_is_smoothed_as_before(monkeypatch):
    """Groups of one chunk each (no rate of the bar's own): tqdm's rate, the compiles in,
    is shown, smoothed by 0.1 as before 60500f69 dropped it (to tqdm's 0.3):
    a group of 100 steps in 10 s, then one in 1 s, showed 21.25 step/s, not 19.00."""
    now = [0.0]
    monkeypatch.setattr(tqdm.std, "time", lambda: now[0])  # tqdm's clock
    out = io.StringIO()
    bar = TrainingBar(groups=2, total=200, unit="step", file=out, mininterval=0)
    with bar:
        for now[0] in (10.0, 11.0):
            bar.group_started(steps=100)
            bar.chunk(100)
    # debiased means: steps 100; seconds (0.1 * 1 + 0.9 * 0.1 * 10) / (1 - 0.9**2)
    assert ", 19.00step/s]" in out.getvalue().splitlines()[-1], out.getvalue()


def test_time_left_counts_down_while_a_group_compiles():
    """The bar is redrawn while a group compiles: its time left stood still meanwhile,
    for as long as that compile took, then fell at once."""
    now = [0.0]
    left = _first_group_timed(groups=2, now=now)
    left.group_started()
    now[0] = 15.0
    assert left.seconds(200) == 1.0 + 6.0  # its steps, and its compile's 10 s less 4
    now[0] = 30.0
    assert left.seconds(200) == 1.0  # compiling for longer than the first


def test_time_left_takes_a_slow_group_s_steps_at_its_own_rate():
    """A group four times slower than the first: its steps left were taken at the rate
    of both, a fraction of the time they take."""
    now = [0.0]
    left = _first_group_timed(groups=3, now=now)  # 200 step/s
    left.group_started(steps=400)
    now[0] = 21.0
    left.chunk(100)  # compiled
    now[0] = 23.0
    left.chunk(100)  # 50 step/s
    rate = 2.5 / 200  # both groups' seconds per step, of the chunks that compiled nothing
    start = (10.5 + 10.0) / 2 - 100 * rate  # a first chunk's seconds beyond its steps
    # its 200 steps at 50 step/s (not 2.0 s at both's rate), and the third group's start
    assert left.seconds(200) == pytest.approx(4.0 + start)
    left.group_started(steps=400)  # the third: at both's rate, its start to come
    assert left.seconds(400) == pytest.approx(400 * rate + start)


def test_time_left_of_groups_that_each_train_in_one_chunk():
    """Three groups of 100 cell-steps, each trained in one chunk of 5 s (200 steps, no
    evaluation between): no chunk after a group's first ever trained, and the time left
    said ``?`` all through the bench."""
    now = [0.0]
    left = TimeLeft(groups=3, clock=lambda: now[0])
    left.group_started(steps=100)
    now[0] = 5.0
    left.chunk(100)
    assert left.seconds(200) == 10.0  # two groups of 5 s, compiles in
    left.group_started(steps=100)
    now[0] = 7.0
    assert left.seconds(200) == 8.0  # less the 2 s of the one compiling
    now[0] = 12.0
    assert left.seconds(200) == 5.0  # at most its 5 s
    resumed = TimeLeft(groups=2, clock=lambda: now[0])  # group 1: 100 of its steps left
    resumed.group_started(steps=100)
    now[0] = 17.0
    resumed.chunk(100)
    assert resumed.seconds(6000) == 5.0  # as group 1, not 6000 steps at its rate: 300 s
    resumed.group_started(steps=6000)
    now[0] = 22.0
    resumed.chunk(1000)
    assert resumed.seconds(5000) is None  # its steps left: no rate yet


def test_time_left_counts_no_start_for_a_group_that_trained_no_chunk():
    """A group restored at its end trains no chunk: its start stayed counted among those
    to come, a compile's worth too much in every later time left."""
    left = _first_group_timed(groups=3, now=[0.0])
    left.group_started()  # restored at its end: no chunk
    left.group_started()
    assert left.seconds(200) == 1.0 + 10.0  # its steps and its compile alone


def test_time_left_takes_no_start_off_between_a_group_s_chunks():
    """Past a group's first chunk nothing compiles: as time passes before its next chunk,
    the next group's start stays whole in its time left."""
    now = [0.0]
    left = _first_group_timed(groups=2, now=now)
    now[0] = 15.0
    assert left.seconds(200) == 1.0 + 10.0  # its steps, and the second group's compile


def _first_group_timed(groups: int, now: list[float]) -> TimeLeft:
    """A `TimeLeft` on the clock ``now`` whose first group compiled 10 s, then trained
    two chunks of 100 steps at 200 step/s: at 11 s."""
    left = TimeLeft(groups=groups, clock=lambda: now[0])
    left.group_started()
    now[0] = 10.5
    left.chunk(100)
    now[0] = 11.0
    left.chunk(100)
    return left


def test_speed_time_left_takes_each_model_s_cost_from_its_own_cases():
    """An MLP's case took 10 s, a CNN's 40 s (calls of 0.1 s and 1 s, 3 timings of at
    least 0.25 s): their cases at K=8 take their own fixed parts and calls 8 times as
    long; a transformer's, not started, their average. tqdm's rate, a count of cases,
    said 25 s a case for each."""
    now = [0.0]
    cases = [("mlp", 1), ("cnn", 1), ("mlp", 8), ("cnn", 8), ("transformer", 8)]
    left = CasesLeft(cases, repeats=3, min_time=0.25, clock=lambda: now[0])
    now[0] = 10.0
    left.case_done({"vmap": 0.1})  # timed 0.1 + 3 x 0.25 s: fixed 9.15 s
    now[0] = 50.0
    left.case_done({"vmap": 1.0})  # timed 3 x 1 s: fixed 37 s
    mlp, cnn = 9.15 + 3 * 0.8, 37.0 + 3 * 8.0  # calls over 0.25 s: timed 3 times
    assert left.seconds() == pytest.approx(mlp + cnn + (mlp + cnn) / 2)
    now[0] = 100.0  # 50 s into mlp K=8, estimated at 11.55 s: none of it left
    assert left.seconds() == pytest.approx(cnn + (mlp + cnn) / 2)


def test_speed_time_left_counts_no_timing_that_the_budget_skips():
    """mlp K=1 took 10 s (2 methods timed 3 x 1 s, 4 s fixed): at K=8 a method's timings
    take 24 s, at K=256 768 s, over a 60 s budget, so skipped: K=256 takes 4 s, not the
    1,540 s said."""
    now = [0.0]
    cases = [("mlp", 1), ("mlp", 8), ("mlp", 256)]
    over = lambda method, call: 3 * call > 60.0
    left = CasesLeft(cases, repeats=3, min_time=0.25, clock=lambda: now[0], skipped=over)
    now[0] = 10.0
    left.case_done({"vmap": 1.0, "engine": 1.0})  # 6 s timed: 4 s fixed
    assert left.seconds() == pytest.approx((4.0 + 2 * 24.0) + 4.0)


def test_speed_time_left_is_unknown_until_a_case_is_measured_and_none_at_the_end():
    now = [0.0]
    left = CasesLeft([("mlp", 1)], repeats=1, min_time=0.0, clock=lambda: now[0])
    assert left.seconds() is None
    now[0] = 3.0
    left.case_done({})  # every method skipped: all of it fixed
    assert left.seconds() == 0.0


def _bar_lines(monkeypatch, capsys, cases, set_up, methods, *, model_set_up=0.0, skips=None):
    """The lines the speed bar writes, `measure` run on a fake clock over ``cases``: each
    method of ``set_up`` (its name: seconds) set up in its seconds and timed K seconds,
    each model set up in ``model_set_up``; ``skips(method, call)``: the budget's skips."""
    now = [0.0]

    def prepare(seconds):
        def prepared(setup, k, cfg):
            now[0] += seconds
            return Ready(lambda: k, 0.0, 1)  # its call: K seconds

        return prepared

    def setup_model(name, cfg):
        now[0] += model_set_up

    def timed(run):
        now[0] += run()
        return float(run())

    clocked = lambda *args, **kwargs: CasesLeft(*args, clock=lambda: now[0], **kwargs)
    monkeypatch.setattr(_speed, "CasesLeft", clocked)
    monkeypatch.setattr(_speed, "_cases", lambda cfg: cases)
    monkeypatch.setattr(_speed, "setup_model", setup_model)
    monkeypatch.setattr(_speed, "_check", lambda *args: None)
    if skips is not None:
        monkeypatch.setattr(_speed, "_over_budget", lambda cfg, method, call: skips(method, call))
    for method, seconds in set_up.items():
        monkeypatch.setitem(_speed.PREPARE, method, prepare(seconds))
    monkeypatch.setattr(_speed, "timed", timed)
    monkeypatch.setattr(_speed, "_frame", list)
    _speed.measure(SpeedConfig(methods=methods, repeats=1, min_time=0.0))
    return capsys.readouterr().err.splitlines()


def test_speed_bar_shows_the_time_left_of_its_cases(capsys, monkeypatch):
    """mlp K=1 prepared in 10 s and timed in 1 s: 1/3 done, mlp K=2 (10 s and a timing
    twice as long) and cnn1d K=1 (as mlp K=1: 11 s) are left, where tqdm's rate (the
    fake clock's seconds passing in no time) said nothing was."""
    cases = [("mlp", 1), ("mlp", 2), ("cnn1d", 1)]
    err = _bar_lines(monkeypatch, capsys, cases, {"vmap": 10.0}, ("vmap",))
    lines = [line for line in err if " 1/3 " in line]
    assert lines and "<00:23," in lines[-1], lines


def test_speed_s_time_left_changes_as_no_redraw_reads_it(capsys, monkeypatch):
    """Its redraws (a thread) read `CasesLeft` as a case's end changed its dicts: now and
    then 'dictionary changed size during iteration' in that thread, its redraws gone. A
    case's end holds the bar's lock, as a redraw does."""
    lock, held = tqdm.std.TqdmDefaultWriteLock.th_lock, []
    done = CasesLeft.case_done

    def case_done(self, calls):
        def redraw():
            got = lock.acquire(blocking=False)
            if got:
                lock.release()
            held.append(not got)

        other = threading.Thread(target=redraw)
        other.start()
        other.join()
        done(self, calls)

    monkeypatch.setattr(CasesLeft, "case_done", case_done)
    _bar_lines(monkeypatch, capsys, [("mlp", 1), ("mlp", 2)], {"vmap": 1.0}, ("vmap",))
    assert held == [True, True]


def test_speed_time_left_counts_no_set_up_of_a_method_that_the_budget_skips(capsys, monkeypatch):
    """mlp K=1: vmap set up in 1 s, fused in 10 s, each timed 1 s. At K=2 the budget skips
    fused: the case takes vmap's set-up and a timing of 2 s, 3 s, where it counted
    fused's 10 s of set-up too (13 s)."""
    err = _bar_lines(
        monkeypatch,
        capsys,
        [("mlp", 1), ("mlp", 2)],
        {"vmap": 1.0, "fused": 10.0},
        ("vmap", "fused"),
        skips=lambda method, call: method == "fused" and call > 1.5,
    )
    lines = [line for line in err if " 2/4 " in line]
    assert lines and "<00:03," in lines[-1], lines


def test_speed_time_left_counts_a_models_set_up_once(capsys, monkeypatch):
    """mlp K=1: the model set up in 5 s (once: its step compiled), vmap in 1 s, timed 1 s.
    Left: mlp K=2, 1 s and a timing of 2 s; cnn1d K=1, as mlp K=1 (2 s) and a model's
    set-up (5 s): 10 s, where each counted mlp's set-up again (15 s)."""
    cases = [("mlp", 1), ("mlp", 2), ("cnn1d", 1)]
    err = _bar_lines(monkeypatch, capsys, cases, {"vmap": 1.0}, ("vmap",), model_set_up=5.0)
    lines = [line for line in err if " 1/3 " in line]
    assert lines and "<00:10," in lines[-1], lines


def test_a_bar_to_a_log_writes_lines_at_most_every_log_interval(monkeypatch):
    """Piped or written to a file (no terminal), each display is a line, no carriage
    returns joining a run's displays in one line, at most every 30 s: a description set
    at each group's start and checkpoint wrote a line each (two alike at the start)."""
    now = [0.0]
    monkeypatch.setattr(tqdm.std, "time", lambda: now[0])  # tqdm's clock
    out = io.StringIO()
    with TrainingBar(groups=2, total=200, file=out, desc="cells 0/2") as bar:
        for group in range(2):
            bar.group_started()
            bar.set_description(f"cells {group}/2")  # a group's status written
            for _ in range(50):
                now[0] += 1
                bar.chunk(2)
                bar.set_description(f"cells {group}/2")  # a checkpoint's
        bar.set_description("cells 2/2")
    lines = out.getvalue().split("\n")
    assert "\r" not in out.getvalue() and lines[-1] == "", lines
    shown = ["cells 0/2:   0%", "cells 0/2:  30%", "cells 1/2:  60%", "cells 1/2:  90%"]
    assert [line[:15] for line in lines[:-1]] == [*shown, "cells 2/2: 100%"], lines


def test_a_bar_to_a_log_is_not_refreshed_by_tqdm_s_monitor(monkeypatch):
    """tqdm grew a bar's miniters past 1 after a display 30 s after the one before, and its
    monitor thread then refreshed the bar once 10 s had passed: export's bar wrote two
    lines every 30 s to a log."""
    now = [0.0]
    monkeypatch.setattr(tqdm.std, "time", lambda: now[0])  # tqdm's clock
    with tqdm.tqdm(total=100, **bar_options(io.StringIO())) as bar:
        for _ in range(40):
            now[0] += 1
            bar.update()
        assert bar.miniters == 1  # the monitor refreshes those whose miniters is more


def test_morph_and_speed_bars_to_a_log_write_lines(capsys, monkeypatch):
    """As the bench's: no carriage returns joining their displays in one line; their
    100% line once, where their last update and their close wrote it twice."""
    with _Stages(0, progress=True) as stages:  # the start model alone
        stages.done([], {"iteration": 0, "kind": "start"})
    monkeypatch.setattr(_speed, "_cases", lambda cfg: [("mlp", 1)])
    monkeypatch.setattr(_speed, "setup_model", lambda name, cfg: None)
    monkeypatch.setattr(_speed, "_check", _skipped)  # the bar alone, nothing timed
    monkeypatch.setattr(_speed, "_frame", list)
    _speed.measure(SpeedConfig(models=("mlp",), sizes=(1,), methods=("vmap",)))
    err = capsys.readouterr().err
    assert "\r" not in err and "start model:" in err and "speed:" in err, err
    assert [line.split(":")[0] for line in err.splitlines() if "100%" in line] == [
        "start model",
        "speed",
    ], err


def _skipped(*args):
    raise _speed.Skip("not timed here")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_damaged_profile_is_said_below_the_bar(tmp_path, monkeypatch):
    """The bench's first profile write, as its bar shows: on a terminal the warning
    was written on the bar's line, after its ``0/100 [00:00<?, ?it/s]``."""
    out = _Terminal()
    monkeypatch.setattr(sys, "stderr", out)
    (tmp_path / "phases.parquet").write_bytes(b"PAR1 cut off")
    with TrainingBar(groups=1, total=100, mininterval=0), MemorySampler() as sampler:
        files = ProfileFiles(tmp_path / "phases.parquet", tmp_path / "memory.parquet", sampler)
        files.write(init_rows("g", 0.5, 0, float("nan")))
    (line,) = [line for line in out.getvalue().split("\n") if "profile file" in line]
    assert line.rsplit("\r", 1)[-1].startswith("cannot read the profile file "), line


def test_a_bar_takes_the_terminal_s_width_as_it_changes(monkeypatch):
    """Its width was the terminal's at its start: narrowed, each display wrapped to
    several rows, which the next did not overwrite."""
    width = [100]
    monkeypatch.setattr(tqdm.std, "_screen_shape_wrapper", lambda: lambda fp: (width[0], 24))
    out = _Terminal()
    with TrainingBar(groups=1, total=300, file=out, mininterval=0) as bar:
        bar.group_started()
        bar.chunk(100)
        width[0] = 40
        bar.chunk(100)
        assert len(out.getvalue().rsplit("\r", 1)[-1].rstrip()) <= 40


def test_a_narrow_terminal_shows_the_time_left(monkeypatch):
    """In 40 columns tqdm cut the line's end, the time left with it."""
    monkeypatch.setattr(tqdm.std, "_screen_shape_wrapper", lambda: lambda fp: (40, 24))
    now = [0.0]
    out = _Terminal()
    bar = TrainingBar(groups=2, total=800, file=out, mininterval=0, clock=lambda: now[0])
    with bar:
        bar.set_description("cells 12/40")
        bar.group_started()
        now[0] = 10.5
        bar.chunk(100)
        now[0] = 11.0
        bar.chunk(100)
        shown = out.getvalue().rsplit("\r", 1)[-1].rstrip()
    assert shown.startswith("cells 12/40:  25%| 00:13 left") and len(shown) <= 40, shown


def test_a_narrow_terminal_shows_time_going_on_while_a_group_compiles(monkeypatch):
    """In 40 columns the elapsed time and 'compiling' were cut: once the time left was
    known, a later group's compile redrew one same line for minutes, as if it hung."""
    monkeypatch.setattr(tqdm.std, "_screen_shape_wrapper", lambda: lambda fp: (40, 24))
    out = _Terminal()
    with TrainingBar(groups=2, total=800, file=out, mininterval=0, desc="cells 1/2") as bar:
        bar.group_started()
        shown = out.getvalue().rsplit("\r", 1)[-1].rstrip()
        bar.chunk(400)
    # any elapsed time: a loaded machine may pause the test past a second
    assert re.match(r"cells 1/2:   0%\| \? left \[\d\d:\d\d, comp", shown), shown
    assert len(shown) <= 40, shown


def test_a_bar_on_a_terminal_goes_on_while_a_group_compiles():
    """It stood still until the group's first chunk had trained (minutes, for a big
    model): it seemed to hang. It says so, redrawn meanwhile; once trained, no more, and
    no redraw after it is closed."""
    out = _Terminal()
    with TrainingBar(groups=2, total=200, file=out, mininterval=0, redraw_every=0.01) as bar:
        bar.group_started()
        deadline = time.monotonic() + 5  # a loaded machine's threads may wait their turn
        while out.getvalue().count("compiling group 1/2]") < 3:
            assert time.monotonic() < deadline, out.getvalue()
            time.sleep(0.01)
        bar.chunk(100)
        assert "compiling" not in out.getvalue().rsplit("\r", 1)[-1]
        bar.group_started()
    shown = out.getvalue()
    time.sleep(0.05)
    assert out.getvalue() == shown and not bar._redraws


def test_morph_s_bar_on_a_terminal_goes_on_while_a_model_trains(monkeypatch):
    """A training takes tens of seconds or minutes: its bar stood still meanwhile,
    ``start model:   0%| | 0/3 [00:00<?, ?training/s]`` through the whole first one; it
    seemed to hang. Redrawn, its elapsed time goes on; no redraw after its close."""
    out = _Terminal()
    monkeypatch.setattr(sys, "stderr", out)
    monkeypatch.setattr(_loop, "REDRAW_EVERY", 0.01)
    with _Stages(1, progress=True):
        deadline = time.monotonic() + 5  # a loaded machine's threads may wait their turn
        while out.getvalue().count("start model:") < 3:
            assert time.monotonic() < deadline, out.getvalue()
            time.sleep(0.01)
    shown = out.getvalue()
    time.sleep(0.05)
    assert out.getvalue() == shown


def test_morph_s_time_left_counts_down_through_a_training(monkeypatch):
    """Redrawn through a training, its time left (tqdm's: the trainings left over its
    rate) stood still: 00:20 all through the second of three trainings of 10 s (minutes
    each at 1500 steps)."""
    out = _Terminal()
    monkeypatch.setattr(sys, "stderr", out)
    monkeypatch.setattr(_loop, "REDRAW_EVERY", 3600.0)  # the test's redraw alone
    now = [0.0]
    with _Stages(1, progress=True, clock=lambda: now[0]) as stages:
        now[0] = 10.0
        stages.done([], {"iteration": 0, "kind": "start"})
        now[0] = 14.0
        stages.bar.refresh()  # as a redraw does
        shown = out.getvalue().rsplit("\r", 1)[-1]
    assert " 1/3 [" in shown and "<00:16," in shown, shown


def test_speed_s_bar_on_a_terminal_goes_on_while_a_case_runs(monkeypatch):
    """A case sets up, compiles and times its methods for a minute on CPU: its bar stood
    still meanwhile, its elapsed time and its time left (which counts down through the
    case) with it: ``0/8 [00:00<?``, then at once ``2/8 [00:56<02:40``."""
    out = _Terminal()
    monkeypatch.setattr(sys, "stderr", out)
    monkeypatch.setattr(_speed, "REDRAW_EVERY", 0.01)

    def setup_model(name, cfg):  # the case under way: redrawn meanwhile
        deadline = time.monotonic() + 5  # a loaded machine's threads may wait their turn
        while out.getvalue().count("mlp K=1]") < 3:
            assert time.monotonic() < deadline, out.getvalue()
            time.sleep(0.01)

    monkeypatch.setattr(_speed, "_cases", lambda cfg: [("mlp", 1)])
    monkeypatch.setattr(_speed, "setup_model", setup_model)
    monkeypatch.setattr(_speed, "_check", _skipped)
    monkeypatch.setattr(_speed, "_frame", list)
    _speed.measure(SpeedConfig(models=("mlp",), sizes=(1,), methods=("vmap",)))
    shown = out.getvalue()
    time.sleep(0.05)
    assert out.getvalue() == shown


def test_a_group_that_trained_no_chunk_leaves_no_redraws_behind():
    """A group with nothing left to train (restored at its end) calls no `chunk`: the
    next group's start left its redraws running for good, a thread holding the bar. (The
    bar's own threads, not all: tqdm's monitor starts with the first bar in a process.)"""
    with TrainingBar(groups=2, total=100, file=_Terminal(), redraw_every=0.01) as bar:
        bar.group_started()
        first = bar._redraws[1]
        bar.group_started()
        second = bar._redraws[1]
        assert not first.is_alive() and second.is_alive()
    assert not second.is_alive()


def test_ctrl_c_as_the_bar_writes_while_a_group_compiles_stops_the_bench():
    """Ctrl-C as the main thread wrote the bar (held: a terminal paused by Ctrl-S) left
    tqdm's lock held, and a redraw waiting for it kept the bar's close waiting: it hung."""

    class Held(_Terminal):
        def write(self, text):
            if threading.current_thread() is bench and self.held:
                self.held = False
                time.sleep(0.2)  # the redraws wait for the lock meanwhile
                raise KeyboardInterrupt
            return super().write(text)

    out = Held()
    out.held = False

    def run():
        bar = TrainingBar(groups=1, total=100, file=out, redraw_every=0.01)
        with contextlib.suppress(KeyboardInterrupt), bar:
            bar.group_started()
            out.held = True
            bar.set_description("cells 0/1")

    bench = threading.Thread(target=run, daemon=True)
    bench.start()
    bench.join(5)
    assert not bench.is_alive()


def test_a_bar_in_a_log_says_nothing_more_while_a_group_compiles():
    """Its line every 30 s at most: no redraws."""
    out = io.StringIO()
    with TrainingBar(groups=1, total=100, file=out, redraw_every=0.01) as bar:
        bar.group_started()
        time.sleep(0.05)
        bar.chunk(100)
    assert len(out.getvalue().splitlines()) == 2 and "compiling" not in out.getvalue()


def test_data_preparation_shows_no_bars_in_a_log(capsys):
    """TFDS's bars, preparing a data set on first use, wrote their cursor moves to a log
    (``new ... 2>&1 | tee log``) unless --no_progress was given."""
    from tensorflow_datasets.core.utils import tqdm_utils

    shown = tqdm_utils._active
    with data_bars_hidden(False):  # stderr captured: no terminal
        assert not tqdm_utils._active
    assert tqdm_utils._active == shown


def test_no_stderr_hides_the_bars(monkeypatch):
    """Started with stderr closed (``2>&-``: ``sys.stderr`` None), a bench stopped on
    ``sys.stderr.isatty()``'s AttributeError, and its bar's first line on None."""
    from tensorflow_datasets.core.utils import tqdm_utils

    monkeypatch.setattr(sys, "stderr", None)
    with data_bars_hidden(False):
        assert not tqdm_utils._active
    with TrainingBar(groups=1, total=100, mininterval=0) as bar:
        bar.group_started()
        bar.chunk(100)


def test_a_bar_whose_start_failed_is_collected_quietly(monkeypatch):
    """A bar whose start failed before tqdm's (its stream closed: ``isatty``'s ValueError)
    was left half made, and its close as it was collected raised AttributeError, printed
    as ``Exception ignored in: tqdm.__del__`` (an error, under pytest)."""
    ignored = []
    monkeypatch.setattr(sys, "unraisablehook", ignored.append)
    closed = io.StringIO()
    closed.close()
    for start in (lambda: Bar(total=2, file=closed), lambda: TrainingBar(groups=1, file=closed)):
        with pytest.raises(ValueError, match="closed file"):
            start()
    gc.collect()
    assert not ignored, [str(found.exc_value) for found in ignored]


def test_a_finished_bar_of_groups_of_one_chunk_shows_no_time_left():
    """With no chunk after a group's first to time, the finished bar said ``<?``."""
    out = io.StringIO()
    with TrainingBar(groups=1, total=100, file=out, mininterval=0) as bar:
        bar.group_started()
        bar.chunk(100)
    assert "<00:00," in out.getvalue().splitlines()[-1]


def test_speed_closes_its_bar_when_interrupted(monkeypatch):
    """Ctrl-C mid-measure left its bar open: on a terminal, the line saying so was
    written on the bar's row."""
    monkeypatch.setattr(_speed, "_cases", lambda cfg: [("mlp", 1)])
    monkeypatch.setattr(_speed, "setup_model", _interrupted)
    open_before = set(tqdm.tqdm._instances)  # an earlier test's, collected here or not
    with pytest.raises(KeyboardInterrupt) as raised:  # its traceback keeps the bar
        _speed.measure(SpeedConfig(models=("mlp",), sizes=(1,), methods=("vmap",)))
    assert set(tqdm.tqdm._instances) <= open_before, raised


def _interrupted(*args):
    raise KeyboardInterrupt


def test_a_bar_that_cannot_write_leaves_the_run_going():
    """Started with stderr open read-only (``2</dev/null``, a shell shim's ``2>&-``), the
    bar's first line raised EBADF: a bench ended with status 1 before training a step."""
    unwritable = open(os.open(os.devnull, os.O_RDONLY), "w")  # noqa: SIM115
    try:
        with TrainingBar(groups=1, total=100, file=unwritable, mininterval=0) as bar:
            bar.group_started()
            bar.chunk(100)
    finally:
        with contextlib.suppress(OSError):  # closed all the same
            unwritable.close()
    assert bar.n == 100
