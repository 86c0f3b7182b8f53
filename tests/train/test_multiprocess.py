"""Two local processes under ``jax.distributed`` split a grid and together cover it."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from phosjax.train import train_grid
from tests.train.tiny import GRID, save, toy_data

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_processes_split_the_grid_and_match_one_process(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("XLA_FLAGS", None)
    outs = [tmp_path / f"process_{i}.npz" for i in range(2)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.train.worker", str(port), str(i), "2", str(out)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for i, out in enumerate(outs)
    ]
    try:
        logs = [w.communicate(timeout=300)[0].decode() for w in workers]
    finally:
        for w in workers:
            w.kill()
    for w, log in zip(workers, logs, strict=True):
        assert w.returncode == 0, log[-3000:]
    together = {}
    for out in outs:
        together.update(np.load(out))
    save(train_grid(GRID, datasets={"toy": toy_data()}, strategy="vmap"), tmp_path / "one.npz")
    alone = dict(np.load(tmp_path / "one.npz"))
    assert sorted(together) == sorted(alone)
    assert {key.split("/")[0].split("[")[0] for key in together} == {"0", "1", "2", "3", "4"}
    for key, value in alone.items():
        np.testing.assert_allclose(together[key], value, rtol=2e-5, atol=2e-6, err_msg=key)
