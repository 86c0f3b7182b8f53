"""`PicklableError`: the base of phosjax's exceptions whose ``__init__`` takes other
arguments than their message (only the standard library is imported here)."""

from typing import Any, TypeVar

_Error = TypeVar("_Error", bound=BaseException)


class PicklableError(BaseException):
    """A base, beside a built-in exception, for one whose ``__init__`` takes other arguments
    than its message: it pickles (a process pool sends a worker's error back so) with its
    message and attributes, ``__init__`` not called again. A built-in exception unpickles
    as ``type(error)(*error.args)``, its message alone: such an ``__init__`` raised a
    TypeError.

    Examples:
      >>> import pickle, signal
      >>> from phosjax.bench._interrupt import Signalled
      >>> again = pickle.loads(pickle.dumps(Signalled(signal.SIGTERM)))
      >>> str(again), again.signum
      ('SIGTERM', <Signals.SIGTERM: 15>)
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return _unpickled, (type(self), self.args), self.__dict__


def _unpickled(kind: type[_Error], args: tuple[Any, ...]) -> _Error:
    """An error of type ``kind`` with the arguments ``args`` (its message), ``__init__`` not
    called: pickle then sets its attributes."""
    return kind.__new__(kind, *args)
