"""Ctrl-C that Python would drop: a `KeyboardInterrupt` raised inside a garbage collector
callback (jax registers one) is "unraisable" (printed, then ignored), so a command would
run on to its end, a whole bench, with the Ctrl-C ignored. Here it is raised again in
the main thread a moment later.

The commands that train (``new``, ``add_models``, ``python -m phosjax.morph``) import this
module first: when one of them runs as ``__main__``, that keeps a Ctrl-C pressed while
jax is still being imported too. `ctrl_c_kept` keeps it around a call of their ``main``.
Only the standard library is imported here.
"""

import _thread
import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any


def _interrupt_main_soon() -> None:
    time.sleep(0.01)  # the main thread is out of the callback by then
    _thread.interrupt_main()


def _keeping(previous: Callable[[Any], object]) -> Callable[[Any], None]:
    """An unraisable hook that raises a dropped `KeyboardInterrupt` again in the main
    thread and hands anything else to ``previous``."""

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            threading.Thread(target=_interrupt_main_soon, daemon=True).start()
        else:
            previous(unraisable)

    return hook


@contextlib.contextmanager
def ctrl_c_kept() -> Iterator[None]:
    """While the body runs, a Ctrl-C that Python drops as unraisable is raised again in
    the main thread a moment later.

    Examples:
      >>> with ctrl_c_kept():
      ...     sys.unraisablehook is sys.__unraisablehook__
      False
    """
    previous = sys.unraisablehook
    sys.unraisablehook = _keeping(previous)
    try:
        yield
    finally:
        sys.unraisablehook = previous


def _run_as_command() -> bool:
    """Whether the program is one of phosjax's commands (``python -m phosjax...``)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec is not None and spec.name.startswith("phosjax.")


if _run_as_command():  # for the whole process: imports included
    sys.unraisablehook = _keeping(sys.unraisablehook)
