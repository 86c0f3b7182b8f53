"""Tests across local processes under ``jax.distributed`` on CPU (gloo collectives).

A test `launch`es workers, ``python -m <module> PORT ID COUNT *args``; each worker first
`join`s the group (before anything else imports jax). Importing this module does not
import jax.
"""

import atexit
import gc
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
"""The repository root: the workers' working directory and ``PYTHONPATH``."""

LOOP_EMITTERS = "--xla_cpu_use_fusion_emitters=false"
"""XLA's older loop emitters instead of its fusion emitters: programs compile faster
(tests that train for real, at XLA's default optimization level: about 11-16% less CPU
time; accuracies within a point of the fusion emitters')."""

FAST_COMPILE = (
    f"--xla_backend_optimization_level=0 {LOOP_EMITTERS} --xla_cpu_parallel_codegen_split_count=1"
)
"""XLA flags the tests compile with: their programs are tiny and compiling dominates their
time. Without LLVM's optimizations (level 0) and with `LOOP_EMITTERS`, the engine's tests
compile about 3x faster; each program generated as one piece (not split for parallel
codegen, which costs more than it saves on programs this small, two workers on two cores)
takes about 10-18% less CPU time again."""


def with_flags(given: str | None, flags: str) -> str:
    """The XLA flags ``given`` (the user's ``XLA_FLAGS``, or None or "") followed by each of
    ``flags`` whose name they do not set.

    Examples:
      >>> with_flags("--a=1 --c", "--a=2 --b=3"), with_flags(None, "--b=3")
      ('--a=1 --c --b=3', '--b=3')
    """
    mine = (given or "").split()
    named = {flag.split("=")[0] for flag in mine}
    return " ".join(mine + [flag for flag in flags.split() if flag.split("=")[0] not in named])


def lowest_ephemeral_port() -> int:
    """The lowest port the system hands out for port 0 and outgoing connections (Linux's
    ``ip_local_port_range``; 32768 where it cannot be read)."""
    ports = Path("/proc/sys/net/ipv4/ip_local_port_range")
    return int(ports.read_text().split()[0]) if ports.is_file() else 32768


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing is bound to now, from 10000 up to below
    `lowest_ephemeral_port` (any free one where that leaves none): between this and the
    workers' coordinator binding it (seconds), another test's server on port 0 (a
    viewer's, gloo's) cannot take it."""
    low = lowest_ephemeral_port()
    for _ in range(100):
        port = random.SystemRandom().randrange(10_000, low) if low > 10_000 else 0
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken
            return s.getsockname()[1]
    raise OSError(f"no free TCP port from 10000 to {low - 1} on 127.0.0.1 in 100 tries")


def worker_flags(devices: int) -> str:
    """The XLA flags of a worker: ``devices`` fake CPU devices, compiled as the tests are."""
    return f"--xla_force_host_platform_device_count={devices} {FAST_COMPILE}"


def launch(
    module: str,
    args: Sequence[Sequence[str]],
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
    *,
    command: bool = False,
) -> list[tuple[int, str]]:
    """Runs one ``python -m module PORT ID COUNT *args[i]`` per entry of ``args``, all
    joining one group, with ``env`` added to this process's environment (less
    ``XLA_FLAGS``: `join` sets it); each worker's exit code and output, in order. A
    ``command`` (a bench command) is run as ``python -m module *args[i] --coordinator
    127.0.0.1:PORT --processes COUNT --process_id ID`` instead, and joins the group itself,
    on the CPU devices and XLA flags that `join` gives.

    All must end within ``timeout`` seconds; else all are killed and a `TimeoutError`
    says which ran on, with each worker's output so far."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    environment.pop("XLA_FLAGS", None)
    if command:
        environment |= {"XLA_FLAGS": worker_flags(2), "JAX_PLATFORMS": "cpu"}
    port, count = str(free_port()), str(len(args))

    def argv(i: int, extra: Sequence[str]) -> list[str]:
        if not command:
            return [port, str(i), count, *extra]
        joining = ["--coordinator", f"127.0.0.1:{port}", "--processes", count]
        return [*extra, *joining, "--process_id", str(i)]

    workers = [
        subprocess.Popen(
            [sys.executable, "-m", module, *argv(i, extra)],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for i, extra in enumerate(args)
    ]
    deadline = time.monotonic() + timeout
    running = []
    try:
        for w in workers:
            try:
                w.communicate(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                running.append(w)
    finally:
        for w in workers:
            w.kill()
    # Popen keeps what it read before a timeout; this reads the rest, now they are killed.
    logs = [w.communicate()[0].decode() for w in workers]
    if running:
        ids = [workers.index(w) for w in running]
        outputs = "".join(f"\n--- worker {i} ---\n{log}" for i, log in enumerate(logs))
        raise TimeoutError(
            f"{module}: worker(s) {ids} still ran after {timeout} s and were killed; "
            f"the output of each:{outputs}"
        )
    return [(w.returncode, log) for w, log in zip(workers, logs, strict=True)]


def join(port: str, process_id: str, count: str, devices: int = 2) -> None:
    """In a worker: gives this process ``devices`` fake CPU devices and joins the group of
    ``count`` processes whose coordinator listens on ``port``. Call it before anything
    else imports jax. ``SHUTDOWN_TIMEOUT_S`` in the environment shortens how long
    `jax.distributed.shutdown` waits for the others (300 s by default; then all abort).

    At its exit the worker freezes what lives on (`gc.freeze`, after every other exit
    handler, jax's too): Python's finalization collects the oldest generation several
    times, each walking the whole heap of jax, pandas and pyarrow (1-2 s a worker)."""
    atexit.register(gc.freeze)  # registered first: runs last
    os.environ["XLA_FLAGS"] = worker_flags(devices)
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}",
        num_processes=int(count),
        process_id=int(process_id),
        shutdown_timeout_seconds=int(os.environ.get("SHUTDOWN_TIMEOUT_S", "300")),
    )
