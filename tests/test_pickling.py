"""Every exception phosjax defines pickles with its message and attributes (a process pool
sends a worker's error back pickled)."""

import importlib
import pickle
import pkgutil
import signal

import numpy as np
import pytest

import phosjax


def _subclasses(kind: type) -> list[type]:
    return [each for sub in kind.__subclasses__() for each in (sub, *_subclasses(sub))]


def _phosjax_errors() -> list[type[BaseException]]:
    """Each exception class defined in phosjax's modules, all of them imported."""
    for module in pkgutil.walk_packages(phosjax.__path__, "phosjax."):
        importlib.import_module(module.name)
    errors = {kind for kind in _subclasses(BaseException) if kind.__module__.startswith("phosjax.")}
    return sorted(errors, key=lambda kind: f"{kind.__module__}.{kind.__qualname__}")


def _features():
    import tensorflow_datasets as tfds

    return tfds.features.FeaturesDict(
        {"image": tfds.features.Tensor(shape=(2,), dtype=np.float32), "label": np.int64}
    )


_ARGUMENTS = {  # those of each error whose __init__ takes other arguments than its message
    "SplitsError": lambda: ("toy", ("a", "a"), " reads 'a' twice; e.g. ", ("a", "b")),
    "MissingSplitsError": lambda: ("toy", ["train", "val"]),
    "MissingFeaturesError": lambda: ("toy", "pixels", _features()),
    "SplitInNameError": lambda: ("digits[:10%]", 6),
    "NoSuchFeatureError": lambda: ("toy", "lable", ("image", "lable"), _features()),
    "SpeedConfigError": lambda: ("steps", "must be >= 1, got 0"),
    "_NotFound": lambda: ("no module named 'mypkg'", "mypkg"),
    "Signalled": lambda: (signal.SIGTERM,),
    "OtherLeavesError": lambda: ("holds other leaves", ["params/w: (3,) there, (4,) here"]),
}


def _own_init(kind: type) -> bool:
    return any("__init__" in vars(base) for base in kind.__mro__ if base.__module__ != "builtins")


@pytest.mark.parametrize("kind", _phosjax_errors(), ids=lambda kind: kind.__qualname__)
def test_an_error_pickles_with_its_message_and_attributes(kind):
    if _own_init(kind):
        assert kind.__name__ in _ARGUMENTS, f"give _ARGUMENTS an example of {kind.__name__}'s"
    error = kind(*_ARGUMENTS.get(kind.__name__, lambda: ("what went wrong",))())
    error.add_note("a note")
    again = pickle.loads(pickle.dumps(error))
    assert (type(again), str(again), again.args) == (kind, str(error), error.args)
    assert vars(again) == vars(error)
