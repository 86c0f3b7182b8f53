"""Tiny data and bench configs for the runner tests, a stand-in for a kill, and a folder
that cannot be listed."""

import contextlib
import errno
import os
import pathlib
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from phosjax.bench import BenchConfig, _plan, _runner
from phosjax.bench._checkpoint import Checkpoints
from phosjax.data import ArrayDataset


def toy_data() -> ArrayDataset:
    """Three classes from the signs of two of eight gaussian features."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 8)).astype(np.float32)
    y = ((x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0)).astype(np.int32)
    return ArrayDataset("toy", x[:64], y[:64], x[64:], y[64:], 3, (8,))


def fake_toy_datasets(
    patch: pytest.MonkeyPatch,
    load: Callable[..., dict[str, ArrayDataset]] = lambda *_: {"toy": toy_data()},
) -> None:
    """Makes a bench run's data sets those ``load`` gives (``toy``, `toy_data`), whatever its
    config names, through ``patch``: none is checked or read of TFDS, no version recorded."""
    patch.setattr(_plan, "check_datasets", lambda *args: {})
    patch.setattr(_plan, "load_datasets", load)
    patch.setattr(_runner, "dataset_versions", lambda config: {})


def tiny_config(**changes: object) -> BenchConfig:
    """mlp (width 8) and choicenet (width 8) x 2 seeds, 12 steps, on ``toy``."""
    data = {
        "models": [{"name": "mlp", "width": 8}, {"name": "choicenet", "width": 8, "depth": 1}],
        "datasets": ["toy"],
        "grid": {"steps": 12, "batch_size": 16, "learning_rate": 0.01},
        "seeds": 2,
        "eval_every": 6,
        "checkpoint_every": 6,
        "strategy": "vmap",
        **changes,
    }
    return BenchConfig.from_dict(data)


class Killed(Exception):
    """Stands for a kill at a chosen point of a run."""


@contextlib.contextmanager
def killed_after_save(step: int | None = None, saved: bool = True) -> Iterator[None]:
    """Raises `Killed` right after a checkpoint of ``step`` (None: any) is saved, before
    the status says so (``saved`` False: instead of saving it, as a kill while it is
    written leaves it): the state a kill there leaves."""
    save = Checkpoints.save

    def save_then_die(self: Checkpoints, at: int, state: object) -> None:
        if saved or not (step is None or at == step):
            save(self, at, state)
        if step is None or at == step:
            raise Killed

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Checkpoints, "save", save_then_die)
        with pytest.raises(Killed):
            yield


def listing_refused(monkeypatch: pytest.MonkeyPatch, folder: pathlib.Path) -> None:
    """Refuses to list ``folder`` (``os.listdir``, ``os.scandir``) as chmod 000 refuses it
    to other users than root: a `PermissionError` naming it."""
    for name in ("listdir", "scandir"):

        def refused(path: object = ".", listed: object = getattr(os, name)) -> object:
            if isinstance(path, str | os.PathLike) and pathlib.Path(path) == folder:
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return listed(path)  # type: ignore[operator]

        monkeypatch.setattr(os, name, refused)
