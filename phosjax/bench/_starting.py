"""A bench a run is starting: what it writes before its marker, the lock files it takes,
and whether the runs they name are known to have stopped. Commands refuse such a folder
with `starting`'s message; the viewer waits there (`phosjax.bench.view._bench.not_started`).
"""

import contextlib
import datetime
import math
import os
import pathlib
import socket
import time

from phosjax.bench import _layout
from phosjax.bench._store import is_temporary, is_this_machine, of_this_boot
from phosjax.bench._summary import command_line
from phosjax.bench._usage import as_argument


def unrelated_names(directory: pathlib.Path) -> tuple[list[str], bool]:
    """The names in ``directory`` that a bench starting there does not write before its
    marker, sorted, and whether one is of a bench's files found without its lock file.

    A bench's processes each take their lock file first (``run.lock``,
    ``run.p<i>of<n>.lock``), then write its config, env, cells and status files, and the
    ``results/``, ``profile/`` and ``checkpoints/`` of processes run apart (which may
    train before process 0 writes the marker): with no lock file, those are no bench's
    starting (a ``config.yaml`` written by hand, an empty ``results/``), as ``python
    -m phosjax.bench.new`` refuses them too. Every other name but a writer's
    temporaries and a morph run's ``morph/`` is unrelated, a hidden one too (a
    ``.DS_Store``)."""
    names = [p.name for p in directory.iterdir() if not is_temporary(p.name)]
    locks = _layout.per_process_names(_layout.LOCK, names)
    locked = {_layout.CONFIG, _layout.ENV, *_layout.per_process_names(_layout.STATUS, names)}
    locked |= {_layout.CELLS, _layout.RESULTS, _layout.PROFILE, _layout.CHECKPOINTS}
    before_marker = {_layout.MORPH, *locks, *(locked if locks else ())}
    unrelated = sorted(name for name in names if name not in before_marker)
    return unrelated, not locks and any(name in locked for name in unrelated)


def gone(lock_text: str | None, written: float = -math.inf) -> bool:
    """Whether the run a lock file's text names is known to have stopped: a process of
    this machine (`is_this_machine`: a container sharing its host name is another) that no
    longer exists (killed, out of memory), or a run of this host name that began, and last
    wrote the bench (``written``: its status file's time, -inf before it wrote one), before
    the machine last booted (`_began_before_boot`). False when that is not known: no
    text, another machine's run, or a pid some process has.

    Examples:
      >>> import subprocess, sys
      >>> from phosjax.bench._store import machine
      >>> ended = subprocess.Popen([sys.executable, "-c", ""]); _ = ended.wait()
      >>> gone(f"pid {ended.pid} on {machine()} since 2026-01-01T00:00:00+00:00")
      True
      >>> gone(f"pid {os.getpid()} on {machine()} since t"), gone(None)
      (False, False)
    """
    holder = None if lock_text is None else _layout.read_lock_holder(lock_text)
    if holder is None:
        return False
    if not is_this_machine(holder.host):
        return _began_before_boot(holder, written)
    try:
        os.kill(holder.pid, 0)  # no signal sent: only whether the process exists
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):  # PermissionError: it exists, another user's
        return False
    return False


def _began_before_boot(holder: _layout.LockHolder, written: float = -math.inf) -> bool:
    """Whether ``holder`` names a run of this host name that began, and last wrote the
    bench (``written``, a time), before this machine last booted: the boot made its
    machine's digest another (`machine`), and no container of this boot began then. False
    where the system tells no boot time (macOS, whose machines have no digest), the run's
    start cannot be read, its machine is of this boot (`of_this_boot`: a container sharing
    the host name, whose start, on a wall clock set forward since, as NTP sets a clock
    that booted late, may read before the boot), or it wrote since the boot (another
    machine given this host name, whose run goes on).

    Examples:
      >>> import socket
      >>> host = f"{socket.gethostname()}#00000000"
      >>> old = _layout.LockHolder(os.getpid(), host, "2000-01-01T00:00:00+00:00")
      >>> _began_before_boot(old), _began_before_boot(old._replace(since="t"))
      (True, False)
      >>> _began_before_boot(old, written=time.time())
      False
    """
    boot_clock = getattr(time, "CLOCK_BOOTTIME", None)
    host = _layout.host_name(holder.host)
    if boot_clock is None or host != socket.gethostname() or of_this_boot(holder.host):
        return False
    try:
        since = datetime.datetime.fromisoformat(holder.since).timestamp()
    except ValueError:
        return False
    return max(since, written) < time.time() - time.clock_gettime(boot_clock)


def _lock_texts(directory: pathlib.Path) -> tuple[list[str], list[str]]:
    """The lock files in ``directory`` (``run.lock``, ``run.p<i>of<n>.lock``), and the
    texts of those that could be read."""
    locks = _layout.per_process_names(_layout.LOCK, [p.name for p in directory.iterdir()])
    texts = []
    for lock in locks:
        with contextlib.suppress(OSError, UnicodeDecodeError):  # unreadable: not known
            texts.append((directory / lock).read_text())
    return locks, texts


def starting_runs_gone(directory: pathlib.Path) -> str | None:
    """Where every run that took a lock file in ``directory`` (a bench not started yet)
    is known to have stopped (`gone`) before it wrote the marker: which, and how to start
    the bench again; else None."""
    locks, texts = _lock_texts(directory)
    if not locks or len(texts) < len(locks) or not all(gone(text) for text in texts):
        return None
    runs = ", ".join(_layout.shown_lock_holder(text) for text in texts)
    again = ["--config", "CONFIG.yaml", "--dir", as_argument(directory)]
    return (
        f"the run that began it ({runs}) stopped before it wrote {_layout.MARKER}: start it "
        f"again, `{command_line('phosjax.bench.new', again)}`"
    )


def starting(directory: str | os.PathLike) -> str | None:
    """The message for ``directory``, which holds no bench, where a run is starting one
    there: it holds nothing but what a bench writes before its marker (`unrelated_names`)
    and a lock file naming a run not known to have stopped (`gone`), which it names; None
    elsewhere (no such folder, one nobody's run holds, one holding other files), where a
    command's "not a bench" stands. The viewer waits there
    (`phosjax.bench.view._bench.not_started`).

    Examples:
      >>> import tempfile
      >>> folder = pathlib.Path(tempfile.mkdtemp())
      >>> starting(folder) is None
      True
      >>> _ = (folder / "run.lock").write_text(f"pid {os.getpid()} on vm since 2026-01-01")
      >>> starting(folder)
      "'...' is not a bench yet: a run (pid ... on vm since 2026-01-01) is starting the bench
      there; wait for it to write its first files, then run the command again."
    """
    path = pathlib.Path(directory)
    try:
        if unrelated_names(path)[0]:
            return None
        texts = _lock_texts(path)[1]
    except OSError:  # no such folder, not one, or one it cannot list
        return None
    runs = [_layout.shown_lock_holder(text) for text in texts if not gone(text)]
    if not runs:
        return None
    return (
        f"{str(directory)!r} is not a bench yet: a run ({', '.join(runs)}) is starting the "
        "bench there; wait for it to write its first files, then run the command again."
    )
