"""`launch`: the helper that runs multi-process tests."""

from types import SimpleNamespace

import pytest

from tests import conftest
from tests.processes import (
    FAST_COMPILE,
    LOOP_EMITTERS,
    ROOT,
    free_port,
    launch,
    lowest_ephemeral_port,
)


def test_a_worker_that_runs_on_is_killed_and_every_output_is_kept(tmp_path):
    (tmp_path / "sleeper.py").write_text(
        "import sys, time\n"
        "print('worker', sys.argv[2], 'started', flush=True)\n"
        "if sys.argv[2] == '1':\n"
        "    time.sleep(60)\n"
    )
    with pytest.raises(TimeoutError) as raised:
        launch("sleeper", [[], []], {"PYTHONPATH": str(tmp_path)}, timeout=2)
    message = str(raised.value)
    assert message.startswith("sleeper: worker(s) [1] still ran after 2 s and were killed")
    assert "--- worker 0 ---\nworker 0 started\n" in message
    assert "--- worker 1 ---\nworker 1 started\n" in message


def test_workers_that_end_give_their_exit_codes_and_outputs(tmp_path):
    (tmp_path / "quitter.py").write_text("import sys\nprint('bye', sys.argv[2])\nsys.exit(3)\n")
    assert launch("quitter", [[], []], {"PYTHONPATH": str(tmp_path)}) == [
        (3, "bye 0\n"),
        (3, "bye 1\n"),
    ]


def test_the_port_is_one_no_server_on_port_0_can_take_meanwhile():
    """A port the kernel hands out for port 0 (a viewer's, gloo's) could be taken by
    another test between `launch` choosing it and the coordinator binding it: the
    workers failed. It is below that range."""
    low = lowest_ephemeral_port()
    if low <= 10_000:  # free_port then takes any free port
        pytest.skip(f"this machine hands out ports from {low} for port 0: none below it")
    assert all(10_000 <= free_port() < low for _ in range(20))


@pytest.mark.parametrize(
    ("given", "added"), [("--xla_dump_to=/tmp/x", "--xla_dump_to=/tmp/x "), ("", "")]
)
def test_an_optimized_test_runs_with_the_users_xla_flags_and_ours(monkeypatch, given, added):
    """Its subprocess had only ours (``DEVICES``, ``LOOP_EMITTERS``): the user's were lost.
    In an xdist worker, which inherits the flags conftest sets (``FAST_COMPILE``'s level
    0 among them), none of the user's: the subprocess kept ours, not level 0."""
    ran = []
    monkeypatch.setenv(conftest.USER_XLA_FLAGS, given)
    monkeypatch.setenv("XLA_FLAGS", f"{conftest.DEVICES} {FAST_COMPILE}")  # a worker's
    monkeypatch.setattr(
        conftest.subprocess,
        "run",
        lambda command, **kwargs: (
            ran.append(kwargs["env"]) or SimpleNamespace(returncode=0, stdout="")
        ),
    )
    item = SimpleNamespace(
        get_closest_marker=lambda name: name == "optimized" or None,
        funcargs={},
        nodeid="tests/x.py::test_x",
        config=SimpleNamespace(rootpath=ROOT),
    )
    monkeypatch.delenv(conftest.OPTIMIZED, raising=False)
    assert conftest.pytest_pyfunc_call(item) is True
    assert ran[0]["XLA_FLAGS"] == f"{added}{conftest.DEVICES} {LOOP_EMITTERS}"
