"""The progress bar of a bench's training, and its estimate of the time left."""

import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

import tqdm

from phosjax.bench._interrupt import is_terminal


def counted_down(seconds: float, under_way: float, since: float) -> float:
    """``seconds`` left, ``under_way`` of them the estimate of the work running now (0:
    none), less its ``since`` seconds so far, at most its estimate (one running past it
    has none left).

    Examples:
      >>> counted_down(30.0, 10.0, 4.0), counted_down(30.0, 10.0, 25.0)
      (26.0, 20.0)
    """
    return seconds - min(under_way, since)


class TimeLeft:
    """Estimates the seconds ``groups`` groups have left to train, in two parts:

    - steps: the cell-steps left at the rate of chunks that were not a group's first (the
      group training at its own rate, once it has one and `group_started` was told its
      steps);
    - starts: for each group not started yet, what a group's first chunk took beyond its
      steps at that rate (compiling).

    A rate counting the compile in, as tqdm's does, overestimated many times over. Before
    any chunk after a group's first, where groups trained whole in their first chunk
    (groups of one chunk each: 200 steps, no evaluation between), each group left takes
    what those took on average, compile and all.

    Examples:
      >>> now = [0.0]
      >>> left = TimeLeft(groups=2, clock=lambda: now[0])
      >>> left.group_started()
      >>> now[0] = 10.5; left.chunk(100)  # compiled: 10 s, then 100 steps at 200 step/s
      >>> left.seconds(1000) is None  # no chunk after a group's first yet
      True
      >>> now[0] = 11.0; left.chunk(100)
      >>> left.seconds(800)  # 800 steps at 200 step/s, and the second group's start
      14.0
      >>> left.group_started(steps=400); left.seconds(800)  # compiling: its start to come
      14.0
      >>> now[0] = 21.0; left.chunk(100); now[0] = 23.0; left.chunk(100)  # 50 step/s
      >>> left.seconds(200)  # the rest of its steps at its own rate
      4.0
    """

    def __init__(self, groups: int, clock: Callable[[], float] = time.perf_counter) -> None:
        self._unstarted = groups  # whose first chunk has not trained
        self._clock = clock
        self._last = clock()
        self._starting = False
        self._steady = [0, 0.0]  # cell-steps, seconds of the chunks after a group's first
        self._starts: list[tuple[int, float]] = []  # each group's first chunk: steps, seconds
        self._group_left = 0  # the cell-steps the group training has left, where told
        self._told = False  # whether `group_started` was told them
        self._whole: list[float] = []  # the seconds of groups trained in their first chunk
        self._group_steady = [0, 0.0]  # as _steady, of the group training

    def group_started(self, steps: int | None = None) -> None:
        """The next chunk is a group's first (it compiles); ``steps``: the cell-steps it
        has left to train (None: not known, its steps then go at every group's rate)."""
        if self._starting:  # the last group trained no chunk (restored at its end)
            self._unstarted -= 1
        self._starting = True
        self._group_left, self._told = steps or 0, steps is not None
        self._group_steady = [0, 0.0]

    def chunk(self, steps: int) -> None:
        """A chunk of ``steps`` cell-steps has trained (timed since the one before)."""
        now = self._clock()
        seconds, self._last = now - self._last, now
        if self._starting:
            self._starts.append((steps, seconds))
            self._unstarted -= 1
            if self._told and steps >= self._group_left:
                self._whole.append(seconds)
        else:
            for steady in (self._steady, self._group_steady):
                steady[0] += steps
                steady[1] += seconds
        self._starting = False
        self._group_left = max(0, self._group_left - steps)

    def seconds(self, steps: int) -> float | None:
        """The seconds that ``steps`` cell-steps left take, with the starts of the groups
        left (the one starting now: less its time so far); None before a chunk after a
        group's first or a whole group has trained, unless none are left."""
        if not steps:  # done: groups of one chunk each time no chunk after a first
            return 0.0
        if not self._steady[0]:
            return self._by_whole_groups()
        per_step = self._steady[1] / self._steady[0]
        start = sum(max(0.0, s - n * per_step) for n, s in self._starts) / len(self._starts)
        own_steps, own_seconds = self._group_steady
        own = min(steps, self._group_left) if own_steps else 0  # at the group's own rate
        by_rates = own * own_seconds / max(own_steps, 1) + (steps - own) * per_step
        return self._counted_down(by_rates + self._unstarted * start, start)

    def _by_whole_groups(self) -> float | None:
        """The seconds of the groups left, each the mean seconds of those trained whole in
        their first chunk (the group starting now: less its time so far; not per step: a
        resumed group's few steps left carry a whole compile); None where none has, or
        where the group training has steps left after its first chunk."""
        if not self._whole or (not self._starting and self._group_left):
            return None
        per_group = sum(self._whole) / len(self._whole)
        return self._counted_down(self._unstarted * per_group, per_group)

    def _counted_down(self, seconds: float, start: float) -> float:
        """`counted_down`: ``seconds`` less the time so far of the group starting now, if
        any, whose first chunk takes ``start``."""
        return counted_down(seconds, start if self._starting else 0.0, self._clock() - self._last)

    def rate(self) -> float | None:
        """The cell-steps per second of the chunks after a group's first: the group
        training's own once it has one, else every group's; None before any."""
        for steps, seconds in (self._group_steady, self._steady):
            if steps and seconds:
                return steps / seconds
        return None


class Lines:
    """A stream that is no terminal (a log file, a pipe) as a progress bar writes to it:
    each display on a line of its own, where tqdm's carriage returns joined them all in one
    line, padded with spaces.

    Examples:
      >>> import io
      >>> out = io.StringIO()
      >>> with tqdm.tqdm(total=2, file=Lines(out), bar_format="{n}/{total}") as bar:
      ...     bar.update(2)
      >>> out.getvalue().splitlines()  # shown, and closed: a line each
      ['0/2', '2/2']
    """

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream  # None: no stderr (the process started with it closed)

    def write(self, text: str) -> int:
        line = text.lstrip("\r").rstrip()  # a bare "\r" or "\n" (clearing, closing): none
        if line:
            self._written(lambda stream: stream.write(line + "\n"))
        return len(text)

    def flush(self) -> None:
        self._written(lambda stream: stream.flush())

    def _written(self, write: Callable[[TextIO], object]) -> None:
        """``write`` to the stream, if any; one that fails (opened read-only: EBADF) is
        dropped: a bar that cannot write does not stop the run. A reader that left
        (BrokenPipeError) stops it, as a write of the command's own does."""
        if self._stream is None:
            return
        try:
            write(self._stream)
        except BrokenPipeError:
            raise
        except OSError:
            self._stream = None


def bar_file(file: TextIO | None = None) -> TextIO:
    """Where a progress bar writes to show on ``file`` (stderr where None): it, or
    `Lines` of it where it is no terminal.

    Examples:
      >>> import io
      >>> type(bar_file(io.StringIO())).__name__
      'Lines'
    """
    file = sys.stderr if file is None else file
    return file if is_terminal(file) else Lines(file)  # type: ignore[return-value]


LOG_INTERVAL = 30.0
"""The least seconds between the displays of a bar written to a log (`Lines`)."""


def bar_options(file: TextIO | None = None, **options: Any) -> dict[str, Any]:
    """tqdm's ``options`` of a bar shown on ``file`` (stderr where None), with where it
    writes (`bar_file`), the terminal's width at each display (narrowed meanwhile, a
    display wrapped to rows the next did not overwrite), and, in a log, a display at
    most every `LOG_INTERVAL` seconds unless ``options`` give ``mininterval`` (with
    ``miniters`` 1: tqdm's own, grown past 1, had its monitor thread add a display
    10 s after each).

    Examples:
      >>> import io
      >>> bar_options(io.StringIO())["mininterval"], bar_options(mininterval=0)["mininterval"]
      (30.0, 0)
    """
    shown = bar_file(file)
    found: dict[str, Any] = {"file": shown, "dynamic_ncols": True}
    if isinstance(shown, Lines):
        found |= {"mininterval": LOG_INTERVAL, "miniters": 1}
    return found | options


NARROW_FORMAT = "{l_bar} {remaining} left [{elapsed}{postfix}] {n_fmt}/{total_fmt}, {rate_fmt}"
"""A bar's line in a terminal too narrow for its bar: what matters first, first; the
elapsed time next, which shows a bar redrawn while a group compiles going on."""

_BAR_WIDTH = 10
"""The characters of tqdm's bar in a line of no set width."""


REDRAW_EVERY = 1.0
"""The seconds between a bar's redraws on a terminal while nothing updates it
(`Bar.keep_redrawn`)."""


class Bar(tqdm.tqdm):
    """tqdm's bar shown on ``file`` (stderr where None) as `bar_options` has it; in a log,
    its close writes no line where its last display showed the same count, description
    and postfix (a 100% line written twice, their times and rates differing).

    Examples:
      >>> import io
      >>> out = io.StringIO()
      >>> with Bar(total=2, file=out, mininterval=0, bar_format="{n}/{total}") as bar:
      ...     shown = bar.update(2)
      >>> out.getvalue().splitlines()  # shown at its start and update, none at its close
      ['0/2', '2/2']
    """

    def __init__(self, *args: Any, file: TextIO | None = None, **kwargs: Any) -> None:
        options = bar_options(file, **kwargs)
        self._to_log = isinstance(options["file"], Lines)
        self._shown: tuple[Any, ...] | None = None  # what the last display in a log showed
        self._redraws: tuple[threading.Event, threading.Thread] | None = None
        super().__init__(*args, **options)

    def keep_redrawn(self, every: float) -> None:
        """On a terminal, redraws it every ``every`` seconds until `redraws_stopped` or its
        close (those it had, stopped first), its elapsed time going on while nothing
        updates it (it stood still: it seemed to hang)."""
        self.redraws_stopped()
        if not self.disable and not self._to_log:
            stop = threading.Event()
            redraws = threading.Thread(target=self._redrawn, args=(stop, every), daemon=True)
            self._redraws = (stop, redraws)
            redraws.start()

    def _redrawn(self, stop: threading.Event, every: float) -> None:
        while not stop.wait(every):
            self.refresh()

    def refresh(self, nolock: bool = False, lock_args: Any = None) -> bool | None:
        """tqdm's, its lock released however its display ends: Ctrl-C as the main thread
        wrote (a terminal paused by Ctrl-S) kept it held, and a redraw waiting for it kept
        the bar's close waiting for that redraw: the bench hung."""
        if nolock or lock_args or self.disable:
            return super().refresh(nolock, lock_args)
        with self._lock:
            return super().refresh(nolock=True)

    def redraws_stopped(self) -> None:
        """Stops the redraws of `keep_redrawn`, if any, once their last is written."""
        if self._redraws is not None:
            stop, redraws = self._redraws
            stop.set()
            redraws.join()
            self._redraws = None

    def display(self, msg: str | None = None, pos: int | None = None) -> bool | None:
        if msg is None and self._to_log:  # the bar's line, not a clearing
            self._shown = (self.n, self.desc, self.postfix)
        return super().display(msg, pos)

    def __str__(self) -> str:
        """Its line; in a terminal too narrow for its bar, its time left right after its
        percentage (tqdm cut the line's end, the time left with it, at the width)."""
        found = self.format_dict
        width = found["ncols"]
        if width and found["total"]:
            full = tqdm.utils.disp_len(self.format_meter(**(found | {"ncols": None})))
            if full - _BAR_WIDTH + 1 > width:  # no room left for a bar of one character
                found["bar_format"] = NARROW_FORMAT
        return self.format_meter(**found)

    def close(self) -> None:
        if getattr(self, "disable", True):  # closed, or its start failed: as tqdm's own
            return
        self.redraws_stopped()  # none after its last line
        if self._shown is not None and self._shown == (self.n, self.desc, self.postfix):
            self.leave = False  # its line is written: closed without another
        super().close()

    def show_postfix(self, text: str) -> None:
        """``text`` as its postfix: shown at once on a terminal; in a log at its next
        display, not on a line of its own."""
        self.set_postfix_str(text, refresh=not self._to_log)


class EstimatedBar(Bar):
    """`Bar` whose time left is ``seconds_left()`` (``?`` where None), an estimate
    of the work left, where tqdm's divides the count left by its rate."""

    def __init__(self, *args: Any, seconds_left: Callable[[], float | None], **kwargs: Any) -> None:
        self._seconds_left = seconds_left
        bar_format = (
            "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
        )
        super().__init__(*args, bar_format=bar_format, **kwargs)

    @property
    def format_dict(self) -> dict[str, Any]:
        left = self._seconds_left()
        shown = "?" if left is None else self.format_interval(left)
        return super().format_dict | {"remaining": shown}


class TrainingBar(EstimatedBar):
    """tqdm's bar of a bench's cell-steps, whose time left (``?`` until it has one) and
    rate (tqdm's until it has one) are `TimeLeft`'s of ``groups`` groups; `group_started`
    before each, `chunk` after each of their chunks. tqdm's rate is smoothed over about
    ten displays (``smoothing`` 0.1, where tqdm's 0.3 swung with each group of one chunk,
    its compile in), and every chunk may show (``miniters`` 1: tqdm's own, smoothed by
    0.1, grew past a chunk's steps: 6 displays of 10 chunks of 100). Written to a stream
    that is no terminal, a line per display, at most every `LOG_INTERVAL` seconds (where
    not given ``mininterval``), a description's change included."""

    def __init__(
        self,
        *args: Any,
        groups: int,
        clock: Callable[[], float] = time.perf_counter,
        redraw_every: float = REDRAW_EVERY,
        **kwargs: Any,
    ) -> None:
        self.time_left = TimeLeft(groups, clock)
        self._groups, self._started, self._redraw_every = groups, 0, redraw_every
        steps_left = lambda: self.time_left.seconds(int(self.total - self.n))
        options = {"smoothing": 0.1, "miniters": 1} | kwargs
        super().__init__(*args, seconds_left=steps_left, **options)

    @property
    def format_dict(self) -> dict[str, Any]:
        """tqdm's, with `TimeLeft.rate` once it has one, where tqdm's counted the compiles
        in: 70 step/s shown of groups training 1,600."""
        found = super().format_dict
        rate = self.time_left.rate()
        return found if rate is None else found | {"rate": rate}

    def group_started(self, steps: int | None = None) -> None:
        """The next chunk starts a group of ``steps`` cell-steps left (`TimeLeft`), and
        compiles: said (``compiling group 2/5``) until it has trained; on a terminal the
        bar is redrawn every ``redraw_every`` seconds meanwhile, its elapsed time going on
        (it stood still: it seemed to hang)."""
        self.time_left.group_started(steps)
        self._started += 1
        self.show_postfix(f"compiling group {self._started}/{self._groups}")
        self.keep_redrawn(self._redraw_every)

    def set_description(self, desc: str | None = None, refresh: bool | None = True) -> None:
        """Shown at once on a terminal; in a log at the bar's next display (each group's
        start and checkpoint wrote a line, the first two at the bench's start alike)."""
        super().set_description(desc, refresh=refresh and not self._to_log)

    def chunk(self, steps: int) -> None:
        """A chunk of ``steps`` cell-steps has trained."""
        self.redraws_stopped()
        self.set_postfix_str("", refresh=False)  # its group's compile, if said, is over
        self.time_left.chunk(steps)
        self.update(steps)
