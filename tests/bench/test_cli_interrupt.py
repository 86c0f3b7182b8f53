"""Ctrl-C in every command line: one line saying what is kept and how to go on, exit 130."""

import copy
import errno
import fcntl
import gc
import importlib
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from importlib.machinery import ExtensionFileLoader

import pandas as pd
import pytest

from phosjax.bench import _cli, _interrupt
from phosjax.morph import _loop
from phosjax.morph._loop import ITERATIONS
from tests.bench.test_progress import _Terminal

MORPH_CONFIG = "model: {name: mlp, num_classes: 10, input_shape: [8]}\n"


def _interrupted(*args, **kwargs):
    raise KeyboardInterrupt


def _morph_run_kept(cli, tmp_path, monkeypatch, lines="", iterations=(0,)) -> list[dict]:
    """Makes ``tmp_path`` the working folder, its ``CONFIG`` `MORPH_CONFIG` and ``lines``
    and its run ``my run`` hold morph rows of ``iterations``; patches ``cli``'s run to
    stop as Ctrl-C does. Returns the arguments of each call of that run, by name."""
    calls = []

    def run(config, directory, **kwargs):
        calls.append({"directory": directory, **kwargs})
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run", run)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "CONFIG").write_text(MORPH_CONFIG + lines)
    (tmp_path / "my run" / "morph").mkdir(parents=True)
    pd.DataFrame({"iteration": list(iterations)}).to_parquet(tmp_path / "my run" / ITERATIONS)
    return calls


@pytest.mark.parametrize(
    ("module", "work", "argv", "line"),
    [
        (
            "phosjax.bench.add_models",
            "add_models_to",
            ["--dir", "b"],
            "the bench was not started in --dir 'b' yet (it has no bench.json); add_models "
            "refuses such a --dir, a bench config starts one there (add_models then adds to "
            "it): python -m phosjax.bench.new --config FILE --dir b",
        ),
        (
            "phosjax.bench.profile",
            "open_bench",
            ["--dir", "b"],
            "nothing was changed (profile only reads the bench).",
        ),
        (
            "phosjax.bench.speed",
            "measure",
            ["--quick"],
            "the (model, K) cases measured so far are kept in --out's speed.parquet (speed.txt "
            "and the plot, written after it, may lack the last); nothing resumes: the same "
            "command measures them all again (moving those files aside): python -m "
            "phosjax.bench.speed --quick --out s",
        ),
        (
            "phosjax.morph.__main__",
            "run",
            ["--config", "CONFIG", "--dir", "m"],
            "no rows were written in --dir 'm' yet; the same command starts the loop: "
            "python -m phosjax.morph --config CONFIG --dir m",
        ),
        (
            "phosjax.bench.export",
            "export_mlflow",
            ["--dir", "b", "--mlflow", "file:mlruns"],
            "the cells exported so far stay in MLflow (a half-logged run is deleted); the same "
            "command exports the others, skipping them: python -m phosjax.bench.export --dir b "
            "--mlflow file:mlruns",
        ),
    ],
)
def test_ctrl_c_is_one_line_saying_what_the_command_leaves(
    tmp_path, capsys, monkeypatch, module, work, argv, line
):
    if module.endswith("export"):
        pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
    cli = importlib.import_module(module)
    monkeypatch.setattr(cli, work, _interrupted)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "CONFIG").write_text(MORPH_CONFIG)
    assert cli.main([*argv, "--out", "s"] if module.endswith("speed") else argv) == 130
    assert capsys.readouterr().err == f"interrupted: {line}\n"


@pytest.mark.parametrize(
    ("iterations", "options", "kept", "continues"),
    [
        ([0], [], "the start model's rows", "the same command"),
        ([0, 1, 1, 1], [], "the start model's rows and 1 iteration's", "the same command"),
        (
            [0, 1, 1, 1, 2, 2, 2],
            ["--overwrite"],
            "the start model's rows and 2 iterations'",
            "this command",  # --overwrite left out: it would start over
        ),
    ],
)
def test_ctrl_c_in_a_morph_run_names_its_rows_and_the_command_that_continues_it(
    tmp_path, capsys, monkeypatch, iterations, options, kept, continues
):
    """The line said the loop does not resume, and gave the command with --overwrite."""
    cli = importlib.import_module("phosjax.morph.__main__")
    _morph_run_kept(cli, tmp_path, monkeypatch, iterations=iterations)
    assert cli.main(["--config", "CONFIG", "--dir", "my run", *options]) == 130
    assert capsys.readouterr().err == (
        f"interrupted: 'my run' keeps {kept} in morph/iterations.parquet; {continues} "
        "continues it: python -m phosjax.morph --config CONFIG --dir 'my run'\n"
    )


@pytest.mark.parametrize("where", ["inside a bench", "a file"])
def test_ctrl_c_in_a_morph_run_where_no_run_can_start_says_why_not_a_command_refused(
    tmp_path, capsys, monkeypatch, where
):
    """As the loop prepared its data (before it looked at --dir), it said 'the same command
    starts the loop', which that command then refused."""
    cli = importlib.import_module("phosjax.morph.__main__")
    monkeypatch.setattr(cli, "run", _interrupted)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "CONFIG").write_text(MORPH_CONFIG)
    if where == "inside a bench":
        (tmp_path / "bench.json").write_text('{"format": 1}')
        directory = "runs/m"
    else:
        (tmp_path / "m").write_text("mine")
        directory = "m"
    assert cli.main(["--config", "CONFIG", "--dir", directory]) == 130
    with pytest.raises(_loop.RunDirectoryError) as refused, _loop._output(directory, False):
        pass  # what the run raises, the same command's error
    assert capsys.readouterr().err == (
        f"interrupted: no rows were written in --dir {directory!r} yet; no run can start "
        f"there: {refused.value}\n"
    )


def test_ctrl_c_of_speed_before_its_out_is_checked_says_why_not_a_command_refused(
    tmp_path, capsys, monkeypatch
):
    """It said the cases measured so far are kept in --out's speed.parquet and the same
    command measures them all again, which that command refused."""
    cli = importlib.import_module("phosjax.bench.speed")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s").write_text("mine")
    argv = ["--quick", "--out", "s"]
    assert cli.main(argv) == 2  # the command the line said before
    refused = capsys.readouterr().err.removeprefix("error: ")
    assert refused == "--out 's' is a file; it must be a directory (made if new).\n"
    monkeypatch.setattr(cli, "config_from_args", _interrupted)
    assert cli.main(argv) == 130
    assert capsys.readouterr().err == (
        f"interrupted: nothing was written in --out 's'; no speed run can start there: {refused}"
    )


@pytest.mark.parametrize("flag", [[], ["--overwrite"]])
def test_ctrl_c_in_a_morph_run_a_config_file_overwrites_names_that_file(
    tmp_path, capsys, monkeypatch, flag
):
    """With 'overwrite: true' in the --config file it said 'the same command continues it'
    (with --overwrite too: the command without that option), which starts it over."""
    cli = importlib.import_module("phosjax.morph.__main__")
    calls = _morph_run_kept(cli, tmp_path, monkeypatch, "overwrite: true\n")
    assert cli.main(["--config", "CONFIG", "--dir", "my run", *flag]) == 130
    without = (
        "--overwrite and overwrite: true in 'CONFIG'" if flag else "overwrite: true in 'CONFIG'"
    )
    assert capsys.readouterr().err == (
        f"interrupted: 'my run' keeps the start model's rows in {ITERATIONS}; the command "
        f"without {without} continues it: python -m phosjax.morph --config CONFIG --dir 'my run'\n"
    )
    (tmp_path / "CONFIG").write_text(MORPH_CONFIG)  # the file without it
    assert cli.main(["--config", "CONFIG", "--dir", "my run"]) == 130
    # the command named continues the run
    assert [call["overwrite"] for call in calls] == [True, False]


def test_ctrl_c_in_a_morph_run_whose_config_file_sets_the_dir_says_what_that_dir_keeps(
    tmp_path, capsys, monkeypatch
):
    """With 'dir: ...' in the --config file (no --dir given) it said 'nothing was written'
    of a run directory holding the start model's rows."""
    cli = importlib.import_module("phosjax.morph.__main__")
    calls = _morph_run_kept(cli, tmp_path, monkeypatch, "dir: my run\n")
    assert cli.main(["--config", "CONFIG"]) == 130
    assert [call["directory"] for call in calls] == ["my run"]
    assert capsys.readouterr().err == (
        f"interrupted: 'my run' keeps the start model's rows in {ITERATIONS}; the same command "
        "continues it: python -m phosjax.morph --config CONFIG --dir 'my run'\n"
    )


def test_ctrl_c_in_morph_before_its_command_line_is_read_whole_says_nothing_was_written(
    tmp_path, capsys, monkeypatch
):
    """As the --config files were checked (their overwrite not read yet), it said what
    --dir keeps and 'the same command continues it', of a file that starts it over."""
    cli = importlib.import_module("phosjax.morph.__main__")
    monkeypatch.setattr(cli, "_files_config", _interrupted)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "CONFIG").write_text(MORPH_CONFIG + "overwrite: true\n")
    (tmp_path / "m" / "morph").mkdir(parents=True)
    pd.DataFrame({"iteration": [0]}).to_parquet(tmp_path / "m" / ITERATIONS)
    assert cli.main(["--config", "CONFIG", "--dir", "m"]) == 130
    assert capsys.readouterr().err == (
        "interrupted: the command was still starting, nothing was written; the same command "
        "runs it: python -m phosjax.morph --config CONFIG --dir m\n"
    )


def test_ctrl_c_pressed_again_while_the_line_is_said_still_says_it(capsys):
    """A second Ctrl-C while the command reads what the first left (the bench's status)
    is ignored: the line is said whole, not cut short by a traceback."""

    def kept(argv):
        signal.raise_signal(signal.SIGINT)  # pressed again
        return "kept."

    @_cli.entry_point(kept)
    def main(argv=None):
        raise KeyboardInterrupt

    assert main([]) == 130
    assert capsys.readouterr().err == "interrupted: kept.\n"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # as before


def test_ctrl_c_s_line_leaves_the_echoed_row_on_a_terminal_alone(monkeypatch):
    """On a terminal the line starts a row of its own, off the ^C it echoed; in a log (no
    echo) it followed a blank line."""

    @_cli.entry_point("kept.")
    def main(argv=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert main([]) == 130
    assert sys.stderr.getvalue() == "\ninterrupted: kept.\n"


def test_a_stop_signal_s_line_on_a_terminal_follows_no_blank_line(monkeypatch):
    """No ^C is echoed for a stop signal (``timeout``'s SIGTERM, SIGPIPE from ``| head``):
    its line followed a blank one on a terminal."""

    @_cli.entry_point("kept.")
    def main(argv=None):
        raise _interrupt.Signalled(signal.SIGTERM)

    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert main([]) == 143
    assert sys.stderr.getvalue() == "interrupted by SIGTERM: kept.\n"


class _NoReader:
    """A stderr whose reader left (``cmd 2>&1 | head`` ended): its writes raise."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize(("name", "status"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_stop_whose_line_no_one_reads_exits_with_the_signals_status(
    monkeypatch, stop_signals_handled, name, status
):
    """The line saying what Ctrl-C (or SIGTERM) left raised BrokenPipeError on a stderr
    that no one reads: the command exited 1, not 130 (143)."""

    @_cli.entry_point("kept.")
    def main(argv=None):
        signal.raise_signal(getattr(signal, name))
        _the_rest_of_the_command()

    monkeypatch.setattr(sys, "stderr", _NoReader())
    assert main([]) == status


class _Ended(Exception):
    """Stands for `os._exit`: the process ends there."""


@pytest.mark.parametrize(
    "stopped", [130, 143, 129, 141], ids=["SIGINT", "SIGTERM", "SIGHUP", "SIGPIPE"]
)
def test_exit_process_skips_the_teardown_only_after_ctrl_c_or_a_stop_signal(monkeypatch, stopped):
    """Before the usual teardown, what lives on is frozen, after a collection: the
    teardown's own collections walked the whole heap (0.3-0.4 s of each exit)."""
    called = []

    def ended(status):
        raise _Ended(status)

    monkeypatch.setattr(os, "_exit", ended)
    monkeypatch.setattr(gc, "collect", lambda: called.append("collect"))
    monkeypatch.setattr(gc, "freeze", lambda: called.append("freeze"))
    with pytest.raises(_Ended) as at_once:
        _cli.exit_process(stopped)
    assert at_once.value.args == (stopped,)
    assert called == []
    with pytest.raises(SystemExit) as exit_info:  # teardown as usual
        _cli.exit_process(2)
    assert exit_info.value.code == 2
    assert called == ["collect", "freeze"]


def test_exit_process_after_ctrl_c_with_stderr_closed(monkeypatch):
    """Started with ``2>&-`` (``sys.stderr`` None), Ctrl-C's exit status was 1, flushing
    None raising AttributeError, where it is 130."""

    def ended(status):
        raise _Ended(status)

    monkeypatch.setattr(os, "_exit", ended)
    monkeypatch.setattr(sys, "stderr", None)
    with pytest.raises(_Ended) as at_once:
        _cli.exit_process(130)
    assert at_once.value.args == (130,)


@pytest.mark.parametrize(("name", "status"), [("SIGTERM", 143), ("SIGHUP", 129)])
def test_a_stop_signal_stops_a_command_as_ctrl_c_does_naming_it(
    capsys, stop_signals_handled, name, status
):
    """SIGTERM (a job scheduler's: SLURM, Kubernetes, ``timeout``) and SIGHUP (a closed
    terminal) ended a command on the spot, saying nothing. They stop it as Ctrl-C does:
    one line naming the signal, what is kept and how to go on (sent again meanwhile, the
    line is still said), and exit status 128 + the signal's number."""
    signum = getattr(signal, name)

    def kept(argv):
        signal.raise_signal(signum)  # sent again
        return "kept."

    @_cli.entry_point(kept)
    def main(argv=None):
        signal.raise_signal(signum)
        _the_rest_of_the_command()

    assert main([]) == status
    assert capsys.readouterr().err == f"interrupted by {name}: kept.\n"
    assert signal.getsignal(signum) is _interrupt._stop_after_extension_init  # as before


@pytest.mark.parametrize(
    ("stop", "said", "status"),
    [("SIGTERM", "interrupted by SIGTERM", 143), ("SIGINT", "interrupted", 130)],
)
def test_a_stop_that_c_code_turned_into_a_system_error_stops_the_command(
    capsys, stop, said, status
):
    """A SIGTERM raised in a dtype hook numpy called as jax traced (while `auto` timed the
    strategies) came out as ``SystemError: ... returned a result with an exception set``:
    a traceback and exit status 1, not the line a stop says. Another SystemError stays."""
    signum = getattr(signal, stop)

    @_cli.entry_point("kept.")
    def main(argv=None):
        try:
            _interrupt._stop_after_extension_init(signum, None)
        except KeyboardInterrupt as error:
            raise SystemError("<function> returned a result with an exception set") from error

    assert main([]) == status
    assert capsys.readouterr().err == f"{said}: kept.\n"  # a log's: no blank line

    @_cli.entry_point("kept.")
    def failing(argv=None):
        raise SystemError("not a stop")

    with pytest.raises(SystemError, match="not a stop"):
        failing([])


def test_a_system_error_raised_as_a_stop_was_handled_stays_an_error():
    """A SystemError raised while a stop was handled (by a cleanup: the stop its context,
    not its cause) was taken as that stop, hidden behind the stop's line and status."""

    @_cli.entry_point("kept.")
    def main(argv=None):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise SystemError("a cleanup's bug")  # noqa: B904 (its context alone)

    with pytest.raises(SystemError, match="a cleanup's bug"):
        main([])


@pytest.mark.parametrize(
    ("armed", "sent", "raised_at"),
    [
        (True, ["SIGTERM"], "the end"),
        (True, ["SIGHUP", "SIGTERM"], "SIGTERM"),  # a second: at once
        (True, ["SIGINT"], "SIGINT"),  # Ctrl-C: at once
        (False, ["SIGTERM"], "SIGTERM"),  # no chunk to checkpoint: at once
    ],
)
def test_a_stop_signal_is_held_to_a_chunks_end_once_armed(
    stop_signals_handled, armed, sent, raised_at
):
    """What `held_to_chunk_end` holds: the first stop signal once a chunk trained."""
    raised = []
    try:
        with _interrupt.held_to_chunk_end() as held:
            held.armed = armed
            for name in sent:
                raised.append(name)
                signal.raise_signal(getattr(signal, name))
            raised.append("the end")
    except KeyboardInterrupt as error:
        assert _interrupt.stopped_by(error) == getattr(signal, sent[-1])
    assert raised[-1] == raised_at
    assert _interrupt._HELD is None


def test_a_stop_signal_after_a_broken_pipe_is_held_in_its_place(stop_signals_handled, monkeypatch):
    """``2>&1 | tee log`` and the terminal closed: tee's end (a write's broken pipe, held)
    may come before the SIGHUP, which is then held too, no second stop sent at once."""
    monkeypatch.setattr(_interrupt, "silence_gone", lambda: None)
    ran = []
    with pytest.raises(_interrupt.Signalled) as stopped, _interrupt.held_to_chunk_end() as held:
        held.armed = True
        assert _interrupt._output_gone()
        signal.raise_signal(signal.SIGHUP)
        ran.append(_interrupt._output_gone())  # a write again: taken as written
    assert (stopped.value.signum, ran) == (signal.SIGHUP, [True])  # at the chunk's end


def test_a_watched_output_copies_as_its_stream_does():
    """copy.copy(sys.stdout) in a phosjax command raised RecursionError (its wrapper copied
    without its stream), not the stream's own TypeError."""
    with open(os.devnull, "w") as stream, pytest.raises(TypeError, match="cannot pickle"):
        copy.copy(_interrupt._PipeWatched(stream))


def test_a_watched_output_keeps_what_a_non_blocking_write_wrote():
    """Its BlockingIOError was raised again naming the stream, with what it wrote (its
    third argument) lost."""

    class _Busy(io.StringIO):
        def flush(self) -> None:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable", 5)

    with pytest.raises(BlockingIOError) as raised:
        _interrupt._PipeWatched(_Busy()).flush()
    assert raised.value.characters_written == 5


def test_an_output_socket_whose_peer_closed_is_silenced_as_a_pipe_is():
    """stdout and stderr a socket (a systemd service's journal), its peer gone as a group
    trained: each write still raised (poll says POLLHUP there, a pipe's POLLERR), the
    chunk was checkpointed but the exit's flush raised, exit status 1, not 141."""
    output, peer = socket.socketpair()
    with output, peer:
        peer.close()
        assert _interrupt.readers_gone([output.fileno()]) == {output.fileno()}
        _interrupt.silence_gone([output.fileno()])
        assert os.write(output.fileno(), b"lost") == 4  # the null device's now


def test_an_output_open_for_reading_alone_is_silenced():
    """stderr open for reading alone (a pyenv shim run with ``2>&-`` hands it its script's
    fd): each line said there raised EBADF, a usage error's ending with status 1."""
    read_only = os.open(os.devnull, os.O_RDONLY)
    with open(read_only, "w") as stderr:
        _interrupt.silence_unwritable([read_only])
        print("error: --out 'x' is a file", file=stderr, flush=True)  # raised EBADF
        assert os.path.samestat(os.fstat(read_only), os.stat(os.devnull))
        assert fcntl.fcntl(read_only, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY


def test_a_closed_output_is_taken_by_the_null_device_not_a_file():
    """Started with stderr closed (``2>&-``), the bench's next file opened took its fd,
    its run.lock (held for the whole run): what jax's libraries wrote to stderr (XLA's
    warnings) went into it."""
    closed = os.open(os.devnull, os.O_RDONLY)
    os.close(closed)  # the lowest free fd, as stderr's is
    _interrupt.silence_unwritable([closed])
    try:
        assert os.path.samestat(os.fstat(closed), os.stat(os.devnull))
    finally:
        os.close(closed)


@pytest.mark.parametrize("closed", ["stdout", "stderr"])
def test_a_closed_output_is_written_to_the_null_device(closed):
    """Started with stderr closed (``2>&-``: ``sys.stderr`` None), a command's error line
    went to stdout (print's file None), into ``profile > table``; with stdout closed, its
    flush ended a finished command with an AttributeError, status 1. (A command's start,
    run for real: `_interrupt` as ``__main__``.)"""
    code = (
        f"import runpy, sys; sys.{closed} = None; "
        "runpy.run_module('phosjax.bench._interrupt', run_name='__main__', alter_sys=True); "
        "print('error: said', file=sys.stderr); sys.stdout.flush()"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    said = "error: said\n" if closed == "stdout" else ""  # on the open one alone
    assert (done.returncode, done.stdout, done.stderr) == (0, "", said), done.stderr[-2000:]


def test_a_stop_signal_as_a_command_starts_is_one_line_naming_it(capsys, monkeypatch):
    monkeypatch.setattr(os, "_exit", lambda status: print("exit", status))
    monkeypatch.setattr(sys, "argv", ["-m", "--help"])
    hook = _interrupt.said_at_start(sys.__excepthook__, "phosjax.morph")
    hook(_interrupt.Signalled, _interrupt.Signalled(signal.SIGTERM), None)
    said = STARTING.format("phosjax.morph").replace("interrupted", "interrupted by SIGTERM")
    assert capsys.readouterr() == ("exit 143\n", said)


def test_importing_the_commands_handles_no_stop_signal():
    """Only a command's process handles them: a program importing phosjax keeps its own."""
    importlib.import_module("phosjax.bench.new")
    importlib.import_module("phosjax.morph.__main__")
    assert [signal.getsignal(s) for s in _interrupt.STOP_SIGNALS] == [signal.SIG_DFL] * 2


def _collect_dropping_a_ctrl_c() -> None:
    """A garbage collection whose callback raises KeyboardInterrupt, as Ctrl-C landing in
    one (jax registers one) does: Python drops it as unraisable."""
    raised = []

    def callback(phase: str, info: object) -> None:
        if phase == "start" and not raised:
            raised.append(phase)
            raise KeyboardInterrupt

    gc.callbacks.append(callback)
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(callback)
    assert raised


def _the_rest_of_the_command() -> None:
    """30 s of a command's work (a Ctrl-C cuts it short)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.parametrize(
    "slow",
    [None, (threading.Thread, "start"), (threading.Event, "set")],
    ids=["plain", "thread_start", "event_set"],
)
def test_ctrl_c_dropped_in_a_garbage_collector_callback_still_stops_the_command(
    capsys, monkeypatch, slow
):
    """Ctrl-C's KeyboardInterrupt raised inside a gc callback (jax registers one) is
    dropped by Python as unraisable; the command still stops as after any Ctrl-C,
    instead of running on to its end (a whole bench) with the Ctrl-C ignored. On a busy
    machine, the main thread can stop for longer than the thread raising it again waits,
    while the unraisable hook still runs (starting that thread, or right after letting it
    go): the Ctrl-C must still not be dropped a second time there."""
    earlier, slowed = set(), []
    if slow is not None:
        owner, name = slow
        method = getattr(owner, name)

        def slow_once(self, *args):
            method(self, *args)
            main = threading.get_ident() == threading.main_thread().ident
            if main and self is not _interrupt._ON_ITS_WAY and not slowed:
                started = [t for t in threading.enumerate() if t not in earlier]
                slowed.append((name, len(started)))  # with the thread raising it started
                time.sleep(0.2)  # the main thread descheduled right after

        monkeypatch.setattr(owner, name, slow_once)

    @_cli.entry_point("kept.")
    def main(argv=None):
        earlier.update(threading.enumerate())
        _collect_dropping_a_ctrl_c()
        _the_rest_of_the_command()
        return 0

    assert main([]) == 130
    assert capsys.readouterr().err == "interrupted: kept.\n"
    assert slowed == ([] if slow is None else [(slow[1], 1)])


def test_ctrl_c_dropped_while_an_extension_initializes_is_raised_once_it_is_done(
    capsys, monkeypatch
):
    """A Ctrl-C dropped while a compiled extension initialized (jaxlib's, as jax loads)
    was raised again inside that init, a moment later: nanobind's C++ inits abort the
    process then ("terminate called"), others fail with an ImportError. It is raised once
    the init is done."""
    landed = []

    def init(module):  # stands for the extension's init: a gc drops a Ctrl-C, it runs on
        _collect_dropping_a_ctrl_c()
        try:
            time.sleep(0.2)
        except KeyboardInterrupt:
            landed.append(module.__name__)

    @_cli.entry_point("kept.")
    def main(argv=None):
        with monkeypatch.context() as patch:
            initializing = types.SimpleNamespace(exec_dynamic=init)  # what exec_module calls
            patch.setattr(importlib._bootstrap_external, "_imp", initializing)
            ExtensionFileLoader("ext", "ext.so").exec_module(types.ModuleType("ext"))
        _the_rest_of_the_command()
        return 0

    assert main([]) == 130
    assert landed == [] and capsys.readouterr().err == "interrupted: kept.\n"


def test_ctrl_c_dropped_in_an_extension_init_that_runs_on_is_raised_there(monkeypatch):
    """A Ctrl-C dropped while a compiled extension initialized waited for the init to end:
    one that ran on (a program compiled as an extension runs in its init) never got it,
    and its thread polled the main thread's frames every 10 ms meanwhile. It is raised
    there after `_interrupt._EXTENSION_WAIT_S`."""
    raised = threading.Event()
    monkeypatch.setattr(_interrupt, "_initializing_extension", lambda: True)
    monkeypatch.setattr(_interrupt, "_EXTENSION_WAIT_S", 0.05, raising=False)
    interrupt_main = lambda signum: raised.set()
    monkeypatch.setattr(_interrupt, "_thread", types.SimpleNamespace(interrupt_main=interrupt_main))
    _interrupt._interrupt_main_soon()
    assert raised.wait(2)


def test_ctrl_c_pressed_while_an_extension_initializes_is_raised_once_it_is_done(monkeypatch):
    """A real Ctrl-C pressed while a compiled extension initialized (jaxlib's, as a command
    imports jax) was raised in the Python code the init called: the process aborted
    ("terminate called"). The commands' SIGINT handler raises it once the init is done."""
    landed = []

    def init(module):  # what exec_module calls: the extension's init
        signal.raise_signal(signal.SIGINT)
        landed.append("init done")

    initializing = types.SimpleNamespace(exec_dynamic=init)
    monkeypatch.setattr(importlib._bootstrap_external, "_imp", initializing)
    previous = signal.signal(signal.SIGINT, _interrupt._stop_after_extension_init)
    try:
        with pytest.raises(KeyboardInterrupt):
            ExtensionFileLoader("ext", "ext.so").exec_module(types.ModuleType("ext"))
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert landed == ["init done"]


def test_two_ctrl_c_dropped_before_the_first_is_raised_are_raised_once(monkeypatch):
    """Two Ctrl-Cs dropped before the first was raised again (both kept while an
    extension initialized) were raised one right after the other, the second in what
    the command does on Ctrl-C (a traceback before the line saying what is kept). The
    second adds none; one dropped after the first was raised is raised too."""
    raised, done = [], threading.Event()
    interrupt_main = lambda signum: raised.append("KeyboardInterrupt")
    monkeypatch.setattr(_interrupt, "_initializing_extension", lambda: not done.is_set())
    monkeypatch.setattr(_interrupt, "_thread", types.SimpleNamespace(interrupt_main=interrupt_main))
    hook = _interrupt._keeping(sys.__unraisablehook__)
    dropped = types.SimpleNamespace(exc_value=KeyboardInterrupt())
    before = threading.active_count()
    for _ in range(2):
        hook(dropped)
    done.set()
    deadline = time.monotonic() + 2
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert raised == ["KeyboardInterrupt"]
    hook(dropped)
    while len(raised) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert raised == ["KeyboardInterrupt"] * 2


STARTING = (
    "interrupted: the command was still starting, nothing was written; the same command "
    "runs it: python -m {} --help\n"
)
"""What a command stopped by Ctrl-C as it imports jax says (`python -m MODULE --help`)."""

DROPS_ONE_CTRL_C = """
import gc, runpy, sys
def callback(phase, info):  # a Ctrl-C landing in a gc callback while jax loads
    if phase == "start" and "jax" in sys.modules and not dropped:
        dropped.append(phase)
        raise KeyboardInterrupt
dropped = []
gc.callbacks.append(callback)
sys.argv = [sys.argv[0], "--help"]
runpy.run_module(MODULE, run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize(
    "module",
    ["phosjax.bench.new", "phosjax.bench.add_models", "phosjax.morph", "phosjax.bench.speed"],
)
def test_ctrl_c_dropped_while_a_command_imports_jax_still_stops_it(module):
    """Before ``main`` runs, while the command imports jax (seconds), a Ctrl-C dropped in a
    gc callback stops it too: the commands that train import `_interrupt` first. It ends
    with one line, the command to run again, not a traceback."""
    code = DROPS_ONE_CTRL_C.replace("MODULE", repr(module))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 130, done.stderr[-2000:]
    assert done.stderr == STARTING.format(module)
    assert "usage:" not in done.stdout  # it did not go on to print its help


@pytest.mark.parametrize("caused", [True, False])
def test_ctrl_c_made_an_import_error_as_jax_loads_is_said_as_ctrl_c(capsys, monkeypatch, caused):
    """A Ctrl-C while a compiled extension initializes (jaxlib's, as the command imports
    jax) comes out as an ImportError raised from the KeyboardInterrupt: the command ended
    with its traceback and exit status 1; it ends as after any Ctrl-C then. An ImportError
    of its own still goes to the previous hook."""
    monkeypatch.setattr(os, "_exit", lambda status: print("exit", status))
    monkeypatch.setattr(sys, "argv", ["-m", "--help"])
    previous = []
    hook = _interrupt.said_at_start(lambda *info: previous.append(info[1]), "phosjax.morph")
    try:
        try:
            raise KeyboardInterrupt if caused else ModuleNotFoundError("No module named 'x'")
        except BaseException as error:
            raise ImportError("Encountered an error while initializing the extension.") from error
    except ImportError as error:
        hook(type(error), error, error.__traceback__)
        assert previous == ([] if caused else [error])
    assert capsys.readouterr() == (
        ("exit 130\n", STARTING.format("phosjax.morph")) if caused else ("", "")
    )


def test_ctrl_c_pressed_again_as_the_start_up_line_is_said_still_says_it(monkeypatch):
    """Ctrl-C pressed again while the command says that it stopped at start-up (pressed
    twice as jax loads) cut the line short: 'Error in sys.excepthook', two tracebacks,
    exit status 1. It is ignored there, as in `_cli.entry_point`."""
    said, exits = [], []

    class Terminal:
        def write(self, text):
            if not said:
                signal.raise_signal(signal.SIGINT)  # pressed again
            said.append(text)

        def flush(self):
            pass

    monkeypatch.setattr(os, "_exit", exits.append)
    monkeypatch.setattr(sys, "argv", ["-m", "--help"])
    monkeypatch.setattr(sys, "stderr", Terminal())
    hook = _interrupt.said_at_start(sys.__excepthook__, "phosjax.morph")
    try:
        hook(KeyboardInterrupt, KeyboardInterrupt(), None)
    except KeyboardInterrupt:
        said.append("<cut short>")
    assert ("".join(said), exits) == (STARTING.format("phosjax.morph"), [130])
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # as before


def test_a_start_up_stop_whose_line_no_one_reads_exits_with_the_signals_status(monkeypatch):
    """Ctrl-C as the command started, its stderr a pipe with no reader: the line raised
    BrokenPipeError in the hook ('Error in sys.excepthook'), exit status 1, not 130."""
    exits = []
    monkeypatch.setattr(os, "_exit", exits.append)
    monkeypatch.setattr(sys, "stderr", _NoReader())
    _interrupt.said_at_start(sys.__excepthook__, "phosjax.morph")(
        KeyboardInterrupt, KeyboardInterrupt(), None
    )
    assert exits == [130]


def test_an_error_after_main_began_is_not_said_as_ctrl_c_at_start(capsys, monkeypatch):
    """An error escaping a command's ``main`` after a Ctrl-C (a file failing to close as
    it stopped) was said as a Ctrl-C at start-up: 'the command was still starting, nothing
    was written', exit 130, its traceback hidden, though the bench had cells written. Once
    ``main`` began, the start-up hook hands every error to the previous hook."""
    monkeypatch.setattr(os, "_exit", lambda status: print("exit", status))
    monkeypatch.setattr(_interrupt, "_COMMAND", "phosjax.bench.new")
    monkeypatch.setattr(_interrupt, "_main_began", False, raising=False)
    previous = []
    hook = _interrupt.said_at_start(lambda *info: previous.append(info[1]), "phosjax.bench.new")

    @_cli.entry_point("kept.")
    def main(argv=None):
        try:
            raise KeyboardInterrupt
        finally:
            raise OSError(5, "Input/output error")  # not a full disk, which entry_point says

    with pytest.raises(OSError) as raised:
        main([])
    hook(raised.type, raised.value, raised.tb)
    assert previous == [raised.value] and capsys.readouterr() == ("", "")


CTRL_C_IN_TEARDOWN = """
import importlib.machinery, os, signal, sys, time
sys.modules["__main__"].__spec__ = importlib.machinery.ModuleSpec("phosjax.bench.add_models", None)
import phosjax.bench._interrupt  # as a command imports it first

class FreedInTeardown:  # freed as jax's objects are, once Python's signal handling ended
    def __del__(self, kill=os.kill, pid=os.getpid(), sleep=time.sleep):
        kill(pid, signal.SIGINT)
        sleep(0.05)
        print("ended as it ended", flush=True)

freed = FreedInTeardown()
"""


def test_ctrl_c_as_a_finished_command_tears_down_leaves_its_exit_status():
    """After the command's last line (the summary), as Python frees jax's objects: Ctrl-C
    killed it with exit status 130 and no line (its default action, given back by then)."""
    done = subprocess.run(
        [sys.executable, "-c", CTRL_C_IN_TEARDOWN], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "ended as it ended\n", "")
