"""Ctrl-C that Python would drop: a `KeyboardInterrupt` raised inside a garbage collector
callback (jax registers one) is "unraisable" (printed, then ignored), so a command would
run on to its end, a whole bench, with the Ctrl-C ignored. Here it is raised again in
the main thread a moment later: once the hook that caught it has returned (raised inside
it, Python would drop it again), and once the main thread is out of a compiled
extension's init (jaxlib's, as jax loads: raised in there, it aborts the process), at
most `_EXTENSION_WAIT_S` later; one dropped while another is on its way adds none.

The commands that train (``new``, ``add_models``, ``speed``, ``python -m phosjax.morph``)
import this module first: when one of them runs as ``__main__``, that keeps a Ctrl-C pressed while
jax is still being imported too, and such a Ctrl-C, before ``main`` runs, ends the command
with one line (`said_at_start`), as one in ``main`` does, not a traceback; their SIGINT
handler holds a Ctrl-C pressed while an extension initializes until the init is done
(`_stop_after_extension_init`). `ctrl_c_kept`
keeps it around a call of their ``main``, and `stops_ignored` keeps a second Ctrl-C (or
stop signal) from cutting short the line that says what the first left. SIGTERM and SIGHUP
(`STOP_SIGNALS`: a job scheduler, a closed terminal) stop these commands as Ctrl-C does,
raising `Signalled`, a `KeyboardInterrupt` naming them; their exit status is 128 + the
signal's number (`exit_status`); a group under way holds one until it has checkpointed
the chunk it trains (`held_to_chunk_end`), and so does a broken pipe on stdout or stderr
then (`_output_gone`). Once a command has ended, they are ignored as it tears down
(`_ignored_in_teardown`). Only the standard library is imported here (and
`phosjax._pickling`, which imports only it).
"""

import _thread
import atexit
import contextlib
import dataclasses
import errno
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from importlib.machinery import ExtensionFileLoader
from types import FrameType
from typing import Any, TextIO

from phosjax._pickling import PicklableError

INTERRUPTED = 130
"""The exit status after Ctrl-C (128 + SIGINT), as shells report it."""

STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)
"""The signals besides Ctrl-C's that stop a command as Ctrl-C does: SIGTERM (what job
schedulers send, SLURM, Kubernetes, ``timeout``, systemd, a VM being preempted, some
seconds before SIGKILL) and SIGHUP (its terminal closed, an ssh session lost); Windows
has no SIGHUP."""


class Signalled(PicklableError, KeyboardInterrupt):
    """Raised by a stop signal (`STOP_SIGNALS`) in a phosjax command: what catches Ctrl-C's
    `KeyboardInterrupt` catches it, and ``signum`` says which signal it was."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_status(signum: int) -> int:
    """The exit status of a command stopped by the signal ``signum``, as shells report it.

    Examples:
      >>> exit_status(signal.SIGINT), exit_status(signal.SIGTERM)
      (130, 143)
    """
    return 128 + signum


def is_terminal(file: TextIO | None = None) -> bool:
    """Whether ``file`` (stderr where None) is a terminal; no stderr (the process started
    with it closed, ``2>&-``) is none.

    Examples:
      >>> import io
      >>> is_terminal(io.StringIO())
      False
    """
    file = sys.stderr if file is None else file
    return bool(getattr(file, "isatty", lambda: False)())


def stopped_line(signum: int, said: str) -> str:
    """The line saying that the signal ``signum`` stopped a command, then ``said`` (what
    that leaves); after Ctrl-C on a terminal, after a newline, off the row where it echoed
    ^C; else (a log, a stop signal, which echoes nothing) with no blank line before it.

    Examples:
      >>> stopped_line(signal.SIGINT, "kept."), stopped_line(signal.SIGTERM, "kept.")
      ('interrupted: kept.', 'interrupted by SIGTERM: kept.')
    """
    if signum != signal.SIGINT:
        return f"interrupted by {signal.Signals(signum).name}: {said}"
    return f"{chr(10) if is_terminal() else ''}interrupted: {said}"


@dataclasses.dataclass
class HeldStop:
    """What `held_to_chunk_end` gives its body: ``armed``, set by the body once it has
    trained a chunk it has not checkpointed (before, a stop signal is raised at once:
    nothing would be saved by waiting); ``signum``, the stop signal held since (None:
    none yet), for the body to checkpoint that chunk's end and end."""

    armed: bool = False
    signum: int | None = None


_HELD: HeldStop | None = None
"""The `HeldStop` of the `held_to_chunk_end` running now; None when none runs."""


@contextlib.contextmanager
def held_to_chunk_end() -> Iterator[HeldStop]:
    """Within it, once the body has armed it (``armed``), a stop signal (`STOP_SIGNALS`:
    SIGTERM, which SIGKILL follows some seconds later) is held in its ``signum`` rather than
    raised, so that the body ends at its chunk's end, having checkpointed it; then it is
    raised (`Signalled`) as the body ends. Ctrl-C, and a second stop signal, are raised
    at once. Stop signals are handled only in the phosjax commands' processes.

    Examples:
      >>> with contextlib.suppress(Signalled), held_to_chunk_end() as held:
      ...     held.armed = True
      ...     _stop_after_extension_init(signal.SIGTERM, None)  # SIGTERM, as handled
      ...     print("checkpointed at the chunk's end, then stopped by", held.signum.name)
      checkpointed at the chunk's end, then stopped by SIGTERM
    """
    global _HELD
    held = _HELD = HeldStop()
    try:
        yield held
    finally:
        _HELD = None
    if held.signum is not None:
        raise Signalled(held.signum)


def _held(signum: int) -> bool:
    """Whether the stop signal ``signum`` is held (`held_to_chunk_end`), not raised; a
    broken pipe held (`_output_gone`) is no signal sent: one sent then is held instead."""
    if signum == signal.SIGINT or _HELD is None or not _HELD.armed:
        return False
    if _HELD.signum not in (None, BROKEN_PIPE):
        return False
    _HELD.signum = signal.Signals(signum)
    return True


_main_began = False
"""Whether the command's ``main`` has begun (`ctrl_c_kept` in a phosjax command): from then
on an error ending the process is not one at start-up, whatever caused it
(`said_at_start`)."""


_EXTENSION_INIT = frozenset(
    {ExtensionFileLoader.create_module.__code__, ExtensionFileLoader.exec_module.__code__}
)
"""The code of the import steps that run a compiled extension module's init."""

_EXTENSION_WAIT_S = 5.0
"""How long a dropped Ctrl-C waits for the init of a compiled extension to end (jaxlib's
takes under a second): one whose init runs on (a program compiled as an extension runs
in its init) gets it there, rather than never."""


def _initializing_extension(frame: FrameType | None = None) -> bool:
    """Whether the main thread (at ``frame``: by default where it is now) is initializing
    a compiled extension module (jaxlib's, as jax loads): a `KeyboardInterrupt` raised in
    the Python code such an init calls can abort the process (nanobind's C++ inits:
    "terminate called") or come out as an ImportError.

    Examples:
      >>> _initializing_extension()
      False
    """
    if frame is None:
        main = threading.main_thread().ident
        frame = None if main is None else sys._current_frames().get(main)
    while frame is not None:
        if frame.f_code in _EXTENSION_INIT:
            return True
        frame = frame.f_back
    return False


_ON_ITS_WAY = threading.Event()
"""Set while a dropped Ctrl-C waits to be raised again (`_interrupt_main_soon`): a second
one dropped meanwhile (pressed twice, or both kept while an extension initializes) would
be raised right after the first, in what the command does on Ctrl-C (before the line
saying what is kept, `stops_ignored`: cut short with a traceback)."""


def _interrupt_main_soon(signum: int = signal.SIGINT) -> None:
    """Raise `KeyboardInterrupt` (``signum``'s: `Signalled` for a stop signal, in a phosjax
    command) in the main thread a moment after the unraisable hook
    calling this has returned: raised while the hook still runs (starting the thread
    can take longer than the moment on a busy machine), it would be dropped again; and
    once no compiled extension initializes there (`_initializing_extension`), or after
    `_EXTENSION_WAIT_S` of one. A Ctrl-C dropped while one is on its way adds none
    (`_ON_ITS_WAY`)."""
    if _ON_ITS_WAY.is_set():
        return
    hook_done = threading.Event()

    def interrupt() -> None:
        hook_done.wait()
        time.sleep(0.01)  # the main thread is out of the hook and the callback by then
        deadline = time.monotonic() + _EXTENSION_WAIT_S
        while _initializing_extension() and time.monotonic() < deadline:
            time.sleep(0.01)
        _ON_ITS_WAY.clear()  # before: one landing in the hook is raised again
        if _initializing_extension() and _handling(signum):
            _WAITED.set()  # it raises it now, in the init
        _thread.interrupt_main(signal.Signals(signum))

    thread = threading.Thread(target=interrupt, daemon=True)
    _ON_ITS_WAY.set()
    try:
        thread.start()
    except BaseException:
        if not thread.is_alive():  # not started (or not yet: raised twice, never lost)
            _ON_ITS_WAY.clear()
        raise
    finally:
        hook_done.set()


_WAITED = threading.Event()
"""Set by `_interrupt_main_soon` as it raises a Ctrl-C again in an extension's init that
ran on for `_EXTENSION_WAIT_S`: `_stop_after_extension_init` raises it there."""


def _handling(signum: int = signal.SIGINT) -> bool:
    """Whether `_stop_after_extension_init` is the handler of ``signum`` (in a phosjax
    command).

    Examples:
      >>> _handling(), _handling(signal.SIGTERM)
      (False, False)
    """
    return signal.getsignal(signum) is _stop_after_extension_init


def readers_gone(fds: Iterable[int]) -> set[int]:
    """Those of ``fds`` that no one reads any more, as `select.poll` reports them (POSIX
    only): a pipe whose reader left (``| head`` read its lines, ``| tee log`` gone with the
    terminal: POLLERR), a socket whose peer closed (a systemd service's journal: POLLHUP), a
    terminal that hung up.

    Examples:
      >>> reader, piped = os.pipe()
      >>> before = readers_gone([piped])
      >>> os.close(reader)  # as head, gone
      >>> before, readers_gone([piped]) == {piped}
      (set(), True)
      >>> os.close(piped)
    """
    import select

    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLOUT)
    return {fd for fd, events in poller.poll(0) if events & (select.POLLERR | select.POLLHUP)}


def silence_gone(fds: Sequence[int] = (1, 2)) -> None:
    """Points each of ``fds`` (stdout, stderr) that no one reads any more at `os.devnull`:
    a terminal that hung up (SIGHUP: it was closed, its ssh session lost; each write fails,
    EIO) or a pipe or socket whose reader left (``2>&1 | tee log``, tee gone; each write
    fails, EPIPE; `readers_gone`). The line a command says as it stops would end it with a
    traceback and exit status 1, not 129. Any other fd is left as it is.

    Examples:
      >>> import pty
      >>> (master, gone), (live, terminal) = pty.openpty(), pty.openpty()
      >>> os.close(master)  # the terminal closed
      >>> reader, piped = os.pipe()
      >>> os.close(reader)  # tee gone
      >>> silence_gone([gone, terminal, piped])
      >>> os.write(gone, b"lost"), os.isatty(terminal), os.write(piped, b"lost")
      (4, True, 4)
      >>> for fd in (gone, live, terminal, piped):
      ...     os.close(fd)
    """
    import termios  # POSIX only, as SIGHUP and SIGPIPE

    gone = readers_gone(fds)
    for fd in fds:
        try:
            termios.tcgetattr(fd)
            hung_up = False
        except termios.error as error:
            hung_up = error.args[0] == errno.EIO  # not a terminal: ENOTTY
        if hung_up or fd in gone:
            _to_devnull(fd)


def silence_unwritable(fds: Sequence[int] = (1, 2)) -> None:
    """Points each of ``fds`` (stdout, stderr) open for reading alone at `os.devnull`: a
    pyenv shim run with ``2>&-`` hands its script's fd as stderr, where each line said
    (a warning, a usage error's) failed, EBADF, and ended the command with status 1. A
    closed one too: the next file opened took it (a bench's run.lock), and what libraries
    wrote to stderr below Python (XLA's warnings) went into that file."""
    import fcntl  # POSIX only

    for fd in fds:
        try:
            unwritable = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
        except OSError:  # closed
            unwritable = True
        if unwritable:
            _to_devnull(fd)


def _to_devnull(fd: int) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    if devnull != fd:  # fd closed and the lowest free: opened on it
        os.dup2(devnull, fd)
        os.close(devnull)


BROKEN_PIPE = getattr(signal, "SIGPIPE", None)
"""The signal a write to a pipe with no reader sends (Python ignores it: the write raises
`BrokenPipeError`); a command stopped by such a write exits as SIGPIPE ends a process,
141. Windows has none."""


class UnreadAtEnd(BrokenPipeError):
    """A command's last output, printed once its work was done, that no one read: its
    reader left (``| head``); the command ends as ``cat`` does, with no line, not as stopped."""


@contextlib.contextmanager
def unread_at_end() -> Iterator[None]:
    """Raises a `BrokenPipeError` of what it holds, a command's last output, as `UnreadAtEnd`.

    Examples:
      >>> try:
      ...     with unread_at_end():
      ...         raise BrokenPipeError(32, "Broken pipe")
      ... except UnreadAtEnd as error:
      ...     print(type(error).__name__, error.errno)
      UnreadAtEnd 32
    """
    try:
        yield
    except BrokenPipeError as error:
        raise UnreadAtEnd(*error.args) from error


def _output_gone() -> bool:
    """Whether a write to stdout or stderr that raised `BrokenPipeError` (its reader gone)
    is taken as written: while a group trains (`held_to_chunk_end`), the outputs no one reads
    point at `os.devnull` (`silence_gone`) and the command stops as on SIGHUP, as SIGPIPE
    (held to the chunk's end once armed, else raised: `Signalled`); elsewhere the error
    goes on (`phosjax.bench._cli.entry_point` stops the command as SIGPIPE, at once).

    Examples:
      >>> _output_gone()  # no group trains
      False
      >>> with contextlib.suppress(Signalled), held_to_chunk_end() as held:
      ...     held.armed = True
      ...     print(_output_gone(), held.signum.name)
      True SIGPIPE
    """
    if _HELD is None or BROKEN_PIPE is None:
        return False
    silence_gone()
    if _HELD.signum is None and not _held(BROKEN_PIPE):
        raise Signalled(BROKEN_PIPE)
    return True


class _PipeWatched:
    """``sys.stdout`` or ``sys.stderr`` of a phosjax command: a write or flush raising
    `BrokenPipeError` while a group trains (``new ... 2>&1 | tee log``, tee killed, or gone
    with the terminal under ``nohup``: without it, the terminal's SIGHUP stops the command
    first, as a rule) stops the command at the chunk's end (`_output_gone`), where it raised
    before the chunk's checkpoint. Another error of the system names the stream
    (``<stdout>``: a full disk under ``> file``), where it named no file. All else is the
    stream's own."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            with self._named():
                return self._stream.write(text)
        except BrokenPipeError:
            if not _output_gone():
                raise
            return len(text)

    def flush(self) -> None:
        try:
            with self._named():
                self._stream.flush()
        except BrokenPipeError:
            if not _output_gone():
                raise

    @contextlib.contextmanager
    def _named(self) -> Iterator[None]:
        """Within it, an error of the system naming no file names the stream, where it
        has a name (not a `BlockingIOError`, whose third argument counts what was written)."""
        name = getattr(self._stream, "name", None)  # none: a stand-in stream (a test's)
        try:
            yield
        except OSError as error:
            if (
                error.errno is None
                or error.filename is not None
                or name is None
                or isinstance(error, BlockingIOError)
            ):
                raise
            raise type(error)(error.errno, error.strerror, name) from error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __reduce_ex__(self, protocol: Any) -> Any:
        """As the stream's (a file's: no copy, no pickle); object's copied this wrapper
        without its stream, whose every lookup then asked for the stream (RecursionError)."""
        return self._stream.__reduce_ex__(protocol)


def _watched(stream: TextIO | None) -> TextIO:
    """``sys.stdout`` or ``sys.stderr`` of a phosjax command (`_PipeWatched`); None (the
    command started with it closed, ``2>&-``) as `os.devnull`: print() to a None stderr
    wrote to stdout (``error: ...`` in ``profile > table``), and the flush of a None stdout
    (``>&-``) ended a finished command with an AttributeError, status 1."""
    opened = open(os.devnull, "w") if stream is None else stream  # noqa: SIM115 (for good)
    return _PipeWatched(opened)  # type: ignore[return-value]


def _stop_after_extension_init(signum: int, frame: FrameType | None) -> None:
    """The SIGINT handler of the phosjax commands, and their `STOP_SIGNALS`' one: Ctrl-C
    raises `KeyboardInterrupt`, as Python's own handler does, a stop signal `Signalled`
    (held until a chunk's end where a group trains: `held_to_chunk_end`; SIGHUP first
    silences the outputs no one reads, `silence_gone`), except while a
    compiled extension initializes in the main thread (jaxlib's, as jax loads: raised in
    there, it aborts the process); then it is raised once the init is done
    (`_interrupt_main_soon`).

    Examples:
      >>> try:
      ...     _stop_after_extension_init(signal.SIGINT, sys._getframe())
      ... except KeyboardInterrupt:
      ...     print("raised: no extension initializes here")
      raised: no extension initializes here
      >>> try:
      ...     _stop_after_extension_init(signal.SIGTERM, sys._getframe())
      ... except Signalled as stop:
      ...     print(stop.signum == signal.SIGTERM)
      True
    """
    if signum == getattr(signal, "SIGHUP", None):
        silence_gone()
    if _held(signum):
        return
    if _WAITED.is_set() or not _initializing_extension(frame):
        _WAITED.clear()
        if signum != signal.SIGINT:
            raise Signalled(signum)
        signal.default_int_handler(signum, frame)
    _interrupt_main_soon(signum)


def _keeping(previous: Callable[[Any], object]) -> Callable[[Any], None]:
    """An unraisable hook that raises a dropped `KeyboardInterrupt` again in the main
    thread and hands anything else to ``previous``. One raised while the hook runs (the
    main thread stopped for longer than `_interrupt_main_soon`'s moment, or a Ctrl-C
    while ``previous`` prints) is raised again too: Python would drop it."""

    def hook(unraisable: Any) -> None:
        dropped = isinstance(unraisable.exc_value, KeyboardInterrupt)
        signum = getattr(unraisable.exc_value, "signum", signal.SIGINT)
        while True:
            try:
                _interrupt_main_soon(signum) if dropped else previous(unraisable)
                return
            except KeyboardInterrupt as error:  # raised while the hook runs: Python would drop it
                dropped, signum = True, getattr(error, "signum", signal.SIGINT)

    return hook


@contextlib.contextmanager
def ctrl_c_kept() -> Iterator[None]:
    """While the body runs, a Ctrl-C that Python drops as unraisable is raised again in
    the main thread a moment later. The body is a command's ``main``: once it began,
    `said_at_start` leaves an error to the previous hook.

    Examples:
      >>> with ctrl_c_kept():
      ...     sys.unraisablehook is sys.__unraisablehook__
      False
    """
    global _main_began
    if _COMMAND is not None:
        _main_began = True
    previous = sys.unraisablehook
    sys.unraisablehook = _keeping(previous)
    try:
        yield
    finally:
        sys.unraisablehook = previous


@contextlib.contextmanager
def stops_ignored() -> Iterator[None]:
    """While the body runs (in the main thread, where Python handles signals), Ctrl-C
    is ignored, and so are the stop signals a command handles (`STOP_SIGNALS`): a second
    one, while a command says what the first left, would cut that line short with a
    traceback.

    Examples:
      >>> import signal
      >>> with stops_ignored():
      ...     signal.getsignal(signal.SIGINT) is signal.SIG_IGN
      True
      >>> signal.getsignal(signal.SIGINT) is signal.default_int_handler
      True
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handled = [signal.SIGINT, *filter(_handling, STOP_SIGNALS)]
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in handled}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _command() -> str | None:
    """The module of the phosjax command the program is (``python -m phosjax.morph``:
    ``phosjax.morph``); None when it is none (pytest, a script).

    Examples:
      >>> _command() is None
      True
    """
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is None or not spec.name.startswith("phosjax."):
        return None
    return spec.name.removesuffix(".__main__")


def stopped_by(error: BaseException | None) -> int | None:
    """The signal whose `KeyboardInterrupt` ``error`` is or was raised by (its cause or
    context, at any depth): SIGINT for Ctrl-C's, a `Signalled`'s own; None for none. A
    Ctrl-C while a compiled extension initializes (jaxlib's, as jax loads) comes out as
    ``ImportError: Encountered an error while initializing the extension.``, raised from
    it.

    Examples:
      >>> try:
      ...     try:
      ...         raise KeyboardInterrupt
      ...     except KeyboardInterrupt as ctrl_c:
      ...         raise ImportError("Encountered an error while initializing") from ctrl_c
      ... except ImportError as error:
      ...     stopped_by(error), stopped_by(ImportError("no module named x"))
      (<Signals.SIGINT: 2>, None)
      >>> stopped_by(Signalled(signal.SIGTERM))
      <Signals.SIGTERM: 15>
    """
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return signal.Signals(getattr(error, "signum", signal.SIGINT))
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def still_starting(module: str, argv: Sequence[str]) -> str:
    """What a stop leaves of ``python -m <module> ARGV`` stopped before it read its
    command line whole: nothing.

    Examples:
      >>> still_starting("phosjax.bench.new", ["--config", "my bench.yaml"])
      "the command was still starting, nothing was written; the same command runs it: \
python -m phosjax.bench.new --config 'my bench.yaml'"
    """
    return (
        "the command was still starting, nothing was written; the same command runs it: "
        f"python -m {module} {shlex.join(argv)}"
    )


def said_at_start(previous: Callable[..., object], module: str) -> Callable[..., None]:
    """A `sys.excepthook` that ends ``python -m <module>`` stopped by Ctrl-C (or a stop
    signal) before its ``main`` ran (while it imports jax: seconds) with one line, the
    command to run again (Ctrl-C pressed again meanwhile is ignored), and exit status
    `INTERRUPTED` (`exit_status` of the signal), an error a Ctrl-C caused too
    (`stopped_by`); anything else goes to ``previous``, and so does
    everything once ``main`` began (`ctrl_c_kept`): an error escaping it after a Ctrl-C
    (a file that failed to close as it stopped) is no Ctrl-C at start-up, and files may
    have been written.

    Examples:
      >>> import contextlib, io, unittest.mock
      >>> hook = said_at_start(sys.__excepthook__, "phosjax.bench.new")
      >>> argv = ["-m", "--config", "my bench.yaml", "--dir", "b"]
      >>> with contextlib.redirect_stderr(io.StringIO()) as err, unittest.mock.patch.object(
      ...     sys, "argv", argv
      ... ), unittest.mock.patch.object(os, "_exit") as exit:
      ...     hook(KeyboardInterrupt, KeyboardInterrupt(), None)
      >>> print(err.getvalue().strip()); exit.call_args.args
      interrupted: the command was still starting, nothing was written; the same command
      runs it: python -m phosjax.bench.new --config 'my bench.yaml' --dir b
      (130,)
    """

    def hook(kind: type[BaseException], value: BaseException, traceback: Any) -> None:
        signum = stopped_by(value)
        if _main_began or signum is None:
            previous(kind, value, traceback)
            return
        with stops_ignored():  # pressed again meanwhile: the line is still said
            with contextlib.suppress(OSError):  # no one reads it: the status says it
                print(stopped_line(signum, still_starting(module, sys.argv[1:])), file=sys.stderr)
                sys.stderr.flush()
            os._exit(exit_status(signum))  # as `phosjax.bench._cli.exit_process` after Ctrl-C

    return hook


def _ignored_in_teardown() -> None:
    """Ignores Ctrl-C, and the stop signals a command handles, once it has ended: the last
    exit function of a phosjax command. Python then gives these signals their default
    action back, as it frees jax's objects (a moment, after the command's last line): a
    Ctrl-C there killed the finished command silently (exit status 130, no line). By then
    everything is written: the command ends with its own exit status.

    Examples:
      >>> _ignored_in_teardown()  # not in a command: no handler of its own to replace
      >>> signal.getsignal(signal.SIGINT) is signal.default_int_handler
      True
    """
    for signum in (signal.SIGINT, *STOP_SIGNALS):
        if _handling(signum):
            signal.signal(signum, signal.SIG_IGN)


_COMMAND = _command()
if _COMMAND is not None:  # for the whole process: imports included
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _stop_after_extension_init)
    for _signum in STOP_SIGNALS:  # one ignored (nohup's SIGHUP) stays ignored
        if signal.getsignal(_signum) is signal.SIG_DFL:
            signal.signal(_signum, _stop_after_extension_init)
    if BROKEN_PIPE is not None:  # POSIX
        silence_unwritable()
        sys.stdout, sys.stderr = _watched(sys.stdout), _watched(sys.stderr)
    sys.unraisablehook = _keeping(sys.unraisablehook)
    sys.excepthook = said_at_start(sys.excepthook, _COMMAND)
    atexit.register(_ignored_in_teardown)  # first: the last run (jax registers its own later)
