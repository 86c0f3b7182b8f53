"""Two local processes under ``jax.distributed`` split a grid and together cover it."""

import re

import numpy as np
import pytest

from phosjax.train import train_grid
from tests.processes import launch
from tests.train.tiny import GRID, save, toy_data


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_processes_split_the_grid_and_match_one_process(tmp_path):
    """And the process done first waits for the other, so their shutdown does not fail;
    processes with different numbers of devices (2 and 3) gather their rows, where the
    gather needed a device grid of one count per process (one pair of processes checks
    all; each pair costs seconds)."""
    outs = [tmp_path / f"process_{i}.npz" for i in range(2)]
    env = {"SHUTDOWN_TIMEOUT_S": "2", "SLOW_CHUNK_S": "3", "DEVICES_IN_1": "3"}  # 1 done 3 s first
    for code, log in launch("tests.train.worker", [[str(out)] for out in outs], env):
        assert code == 0, log[-3000:]  # process 1 at the shutdown barrier early: both aborted
    together = {}
    for out in outs:
        together.update(np.load(out))
    save(train_grid(GRID, datasets={"toy": toy_data()}, strategy="vmap"), tmp_path / "one.npz")
    alone = dict(np.load(tmp_path / "one.npz"))
    assert sorted(together) == sorted(alone)
    assert {key.split("/")[0].split("[")[0] for key in together} == {"0", "1", "2", "3", "4"}
    for key, value in alone.items():
        np.testing.assert_allclose(together[key], value, rtol=2e-5, atol=2e-6, err_msg=key)


@pytest.mark.slow
@pytest.mark.multiprocess
def test_devices_of_another_process_are_refused_by_name(tmp_path):
    outs = [tmp_path / f"process_{i}.npz" for i in range(2)]
    env = {"GLOBAL_DEVICES": "1", "SHUTDOWN_TIMEOUT_S": "10"}
    for i, (code, log) in enumerate(launch("tests.train.worker", [[str(o)] for o in outs], env)):
        assert code == 1, log[-3000:]  # one: a RuntimeError fetching results; other: a hang
        message = (
            rf"ValueError: train_grid: devices must be this process's own, but device \d+ "
            rf"belongs to process {1 - i} \(this is process {i}\); pass jax.local_devices\(\)"
        )
        assert re.search(message, log), log[-3000:]


@pytest.mark.slow
@pytest.mark.multiprocess
def test_a_process_that_fails_waits_for_the_other_so_their_shutdown_does_not_fail(tmp_path):
    outs = [tmp_path / f"process_{i}.npz" for i in range(2)]
    env = {"NO_DATA_IN": "1", "SHUTDOWN_TIMEOUT_S": "2", "SLOW_CHUNK_S": "3"}
    (code_0, log_0), (code_1, log_1) = launch("tests.train.worker", [[str(o)] for o in outs], env)
    assert code_0 == 0 and outs[0].is_file(), log_0[-3000:]  # it was aborted, as was 1
    raised = [line for line in log_1.splitlines() if line.startswith("ValueError: ")]
    assert code_1 == 1 and "'toy'" in raised[-1], log_1[-3000:]  # gloo may print after it
