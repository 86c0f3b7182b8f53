"""The speed bench's time left: each (model, K) case's seconds from the cases before it."""

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from statistics import fmean

from phosjax.bench._progress import counted_down


class CasesLeft:
    """Estimates the seconds that the (model, K) ``cases`` left take, the one running now
    less its time so far. A case costs a fixed part (setting up, compiling and warming up
    its methods: about the same at each K, most of a case on CPU) and its timing: per
    method ``repeats`` timings of at least ``min_time`` seconds. A method that ``skipped``
    says the run skips (given the method and the seconds of its call:
    `phosjax.bench._speed`'s budget) costs neither its timing nor its set-up (timed in
    `setting_up`). Each model's cases are estimated from its last one: the same fixed
    part, its calls (K models' steps each) scaled by K; those of a model not started yet
    as the started models' at that K, on average, and its own set-up (made once, in its
    first case) as theirs. tqdm's rate, a count of cases, took a CNN's case for an MLP's
    and a K of 256 for a K of 1.

    Examples:
      >>> now = [0.0]
      >>> left = CasesLeft([("mlp", 1), ("mlp", 8), ("cnn", 1)], 3, 0.25, clock=lambda: now[0])
      >>> left.seconds() is None  # no case measured yet
      True
      >>> now[0] = 10.0; left.case_done({"vmap": 1.0})  # 10 s: 3 timings of 1 s, 7 s fixed
      >>> left.seconds()  # mlp K=8: 7 s and 3 timings of 8 s; cnn K=1: as mlp K=1, 10 s
      41.0
      >>> now[0] = 14.0; left.seconds()  # 4 s into mlp K=8
      37.0
    """

    def __init__(
        self,
        cases: Iterable[tuple[str, int]],
        repeats: int,
        min_time: float,
        clock: Callable[[], float] = time.perf_counter,
        skipped: Callable[[str, float], bool] = lambda method, call: False,
    ) -> None:
        self._left = list(cases)
        self._repeats, self._min_time, self._clock = repeats, min_time, clock
        self._skipped = skipped
        self._last: dict[str, tuple[int, float, dict[str, float], dict[str, float]]] = {}
        self._set_up: dict[str | None, float] = {}  # the case running now's, by method
        self._once: dict[str, float] = {}  # each started model's own set-up
        self._started = clock()

    @contextlib.contextmanager
    def setting_up(self, method: str | None = None) -> Iterator[None]:
        """Times the set-up of ``method`` in the case running now: a case that skips the
        method does not cost it (one that raises is not timed: the fixed part's). None:
        the model's own, made in its first case alone."""
        start = self._clock()
        yield
        self._set_up[method] = self._clock() - start

    def case_done(self, calls: dict[str, float]) -> None:
        """The case running now is measured: ``calls`` holds the seconds of one call of
        each method timed (none of a method skipped); its fixed part is the rest of the
        time since the case before, less its methods' and its model's set-ups. Each case
        is estimated from its last: K, fixed seconds, and each method's call and set-up."""
        model, k = self._left.pop(0)
        now = self._clock()
        set_up = {method: self._set_up.get(method, 0.0) for method in calls}
        own = self._set_up.get(None, 0.0)  # the model's: in its first case alone
        self._once.setdefault(model, own)
        timing = sum(self._timing(call) for call in calls.values())
        spent = timing + sum(set_up.values()) + own
        self._last[model] = (k, max(0.0, now - self._started - spent), calls, set_up)
        self._started, self._set_up = now, {}

    def seconds(self) -> float | None:
        """The seconds the cases left take; None before a case is measured, unless none
        are left."""
        if not self._left:
            return 0.0
        if not self._last:
            return None
        cases = [self._case(model, k) for model, k in self._left]
        once = fmean(self._once.values())  # a model not started: its set-up ahead
        new = {model for model, _ in self._left if model not in self._once}
        running = cases[0] + (once if self._left[0][0] in new else 0.0)
        total = sum(cases) + once * len(new)
        return counted_down(total, running, self._clock() - self._started)

    def _case(self, model: str, k: int) -> float:
        """The seconds of ``model``'s case at ``k``, from its last case (or each started
        model's, on average, if it has none)."""
        if model not in self._last:
            return fmean(self._case(started, k) for started in self._last)
        last_k, fixed, calls, set_up = self._last[model]
        scaled = {method: call * k / last_k for method, call in calls.items()}
        return fixed + sum(
            set_up[method] + self._timing(call)
            for method, call in scaled.items()
            if not self._skipped(method, call)
        )

    def _timing(self, call: float) -> float:
        return timing_seconds(call, self._repeats, self._min_time)


def timing_seconds(call: float, repeats: int, min_time: float) -> float:
    """The seconds a method whose call takes ``call`` seconds is timed: ``repeats``
    timings of at least ``min_time``, after a call that sizes them where a call is
    shorter (`phosjax.bench._speed._interleaved`).

    Examples:
      >>> timing_seconds(0.01, 3, 0.25), timing_seconds(2.0, 3, 0.25)
      (0.76, 6.0)
    """
    sizing = call if call < min_time else 0.0
    return sizing + repeats * max(min_time, call)
