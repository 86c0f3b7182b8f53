"""Joining a bench shared by several processes (hosts) from the command line: the options
of ``new`` and ``add_models`` that name the `jax.distributed` group (`add_join_options`),
checked and joined before anything uses a jax backend (`join_processes`)."""

import contextlib
import errno
import os
import socket
import time
from collections.abc import Sequence
from typing import Any

from jsonargparse import ArgumentParser

from phosjax._addresses import ip_address
from phosjax.bench._cli import flag_set_by, setting_file, usage_error
from phosjax.bench._config import BenchError
from phosjax.bench._directory import agree

JOINING = ("coordinator", "processes", "process_id")
"""The options that say which group of processes a command joins, and as whom."""
JOIN_TIMEOUT_S = 300
"""How long a process waits to join the group by default (`jax.distributed`'s default)."""
_MOST_SECONDS = 2**31 - 1
"""The longest wait `jax.distributed` takes (a C++ int): a longer one raised a TypeError."""


def add_join_options(parser: ArgumentParser) -> None:
    """The options that join a bench shared by several processes (`join_processes`):
    ``--coordinator``, ``--processes``, ``--process_id``, ``--distributed`` and
    ``--join_timeout``."""
    parser.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        default=None,
        help="share the bench with other processes (hosts): the address of process 0, which "
        "listens on PORT, given to every process with --processes and --process_id",
    )
    parser.add_argument(
        "--processes", type=int, metavar="N", default=None, help="how many processes share it"
    )
    parser.add_argument(
        "--process_id", type=int, metavar="I", default=None, help="this process's id, 0 to N-1"
    )
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="share the bench with the other processes of a Slurm, Open MPI or TPU job, "
        "which gives the coordinator, count and id (those given as options are kept)",
    )
    parser.add_argument(
        "--join_timeout",
        type=int,
        metavar="SECONDS",
        default=JOIN_TIMEOUT_S,
        help="with --coordinator or --distributed: how long a process waits for the "
        "coordinator and the others to join",
    )


def join_processes(parser: ArgumentParser, args: Any) -> None:
    """Joins the `jax.distributed` group that the options ``args`` (parsed by ``parser``)
    name: `JOINING` given together, or ``--distributed`` (the job gives those left out);
    none: nothing. Call it before anything uses a jax backend. Options given in part (or
    ``--join_timeout`` alone), a count below 1, an id out of range or an address without
    its port are usage errors, said before joining.

    Raises:
      BenchError: ``--distributed`` outside a job that gives what is left out, or the
        processes joined were given different counts (in every process).
    """
    given = {name: args[name] for name in JOINING if args[name] is not None}
    timeout = JOIN_TIMEOUT_S if args.join_timeout is None else args.join_timeout  # a file's null
    if timeout != JOIN_TIMEOUT_S:  # the default joins nothing alone
        given["join_timeout"] = timeout
    if not given and not args.distributed:
        return
    argv = getattr(parser, "argv", ())  # as a `Parser` parsed it: its --config files
    shown = lambda name, value=None: _shown(argv, name, given[name] if value is None else value)
    options = [shown(name) for name in given]
    missing = [f"--{name}" for name in JOINING if name not in given]
    if missing and not args.distributed:
        usage_error(
            parser,
            f"{_listed(options)} without {' and '.join(missing)}: a process sharing a bench "
            "with others is given --coordinator HOST:PORT (process 0's address), --processes N and "
            "--process_id I (0 to N-1), or --distributed in a Slurm, Open MPI or TPU job",
        )
    count, index = given.get("processes"), given.get("process_id")
    if count is not None and count < 1:
        usage_error(parser, f"{shown('processes')}: expected 1 or more")
    if index is not None and not 0 <= index < (count or index + 1):
        top = f"{count - 1} ({shown('processes')})" if count else "N-1"
        usage_error(parser, f"{shown('process_id')}: expected an id from 0 to {top}")
    if not 1 <= timeout <= _MOST_SECONDS:
        usage_error(parser, f"{shown('join_timeout')}: expected 1 to {_MOST_SECONDS} seconds")
    address = given.get("coordinator")
    if address is not None:
        if problem := _address_problem(address):
            usage_error(parser, f"{shown('coordinator', repr(address))}: {problem}")
        if index is not None:
            _reach_coordinator(shown("coordinator"), address, index, timeout)
    import jax

    try:
        jax.distributed.initialize(address, count, index, initialization_timeout=timeout)
    except ValueError as error:  # --distributed: the job gives no address, count or id
        detail = str(error).rstrip(".")
        flag = (flag_set_by(argv, "distributed") or ["--distributed"])[0]  # or a file's
        if not detail.endswith(" defined"):  # the id or count given does not fit the job's
            given_as = _listed([flag, *options])
            raise BenchError(
                f"{given_as}: {detail} (the job gives the rest); give values that fit the "
                "job's, or leave them to it"
            ) from error
        raise BenchError(
            f"{flag}: {detail} (no Slurm, Open MPI or TPU job gives it); outside such a "
            "job give --coordinator HOST:PORT --processes N --process_id I"
        ) from error
    # process 0's count makes the group: another count given elsewhere went unheeded
    agree("--processes", str(count or jax.process_count()))


def _shown(argv: Sequence[str], name: str, value: object) -> str:
    """The joining option ``name`` given ``value`` as ``argv`` gives it: ``--name value``,
    or ``name: value in 'FILE'`` where a ``--config`` file sets it (`setting_file`).

    Examples:
      >>> _shown(["--processes", "0"], "processes", 0)
      '--processes 0'
    """
    path = setting_file(argv, name, None)
    return f"--{name} {value}" if path is None else f"{name}: {value} in {path!r}"


def _listed(shown: Sequence[str]) -> str:
    """Options as `_shown` gives them, those of the command line as it has them.

    Examples:
      >>> _listed(["--processes 2", "coordinator: n:1 in 'b.yaml'", "--process_id 0"])
      "--processes 2 --process_id 0 and coordinator: n:1 in 'b.yaml'"
    """
    typed = [text for text in shown if text.startswith("--")]
    command_line = [" ".join(typed)] if typed else []
    return " and ".join(command_line + [text for text in shown if text not in typed])


def _address_problem(address: str) -> str | None:
    """What is wrong with the coordinator's ``address`` (``HOST:PORT``); None: nothing.
    An IPv6 host without brackets is refused: jax.distributed took ``::1:1234`` and
    aborted the process once its wait was up.

    Examples:
      >>> _address_problem("node0:1234"), _address_problem("[::1]:1234")
      (None, None)
      >>> _address_problem("::1:1234")
      'expected an IPv6 address in brackets before the port, e.g. [::1]:1234'
      >>> _address_problem("http://node0:1234")  # a URL: a host name holds no colon
      "expected HOST:PORT, process 0's host and a free port on it, e.g. node0:1234"
    """
    host, _, port = address.rpartition(":")
    bare = ":" in host and not (host.startswith("[") and host.endswith("]"))
    if bare and ip_address(host) is not None:
        return "expected an IPv6 address in brackets before the port, e.g. [::1]:1234"
    if bare or not (host and port.isdigit() and 0 < int(port) < 2**16):
        return "expected HOST:PORT, process 0's host and a free port on it, e.g. node0:1234"
    return None


def _reach_coordinator(option: str, address: str, index: int, timeout: int) -> None:
    """Raises a `BenchError` naming ``option`` (`_shown`: what gave ``address``,
    ``HOST:PORT``) where process ``index`` cannot join there: process 0 finds the port held
    (where it would listen, unless ``$JAX_COORDINATOR_BIND_ADDRESS`` says another address),
    another finds no coordinator listening (or no such host) within ``timeout`` seconds.
    `jax.distributed` would abort the process, naming no address (a segmentation fault, or
    after ``timeout`` a C++ stack trace)."""
    host, _, port = address.rpartition(":")
    if index == 0 and "JAX_COORDINATOR_BIND_ADDRESS" in os.environ:
        return  # jax's coordinator listens where that says, not on PORT
    if index == 0:  # jax's coordinator listens on [::]:PORT, reusing the address as this does
        with contextlib.suppress(OSError), socket.socket(socket.AF_INET6) as listener:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                listener.bind(("::", int(port)))
            except OSError as error:
                if error.errno != errno.EADDRINUSE:
                    raise
                raise BenchError(
                    f"{option}: process 0 cannot listen on port {port}, which "
                    "another program (or a run still going) holds; give every process a free "
                    "port"
                ) from error
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
            return
        except OSError as error:  # a host name made as its host starts is waited for too
            if time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            if isinstance(error, socket.gaierror):
                raise BenchError(
                    f"{option}: no host {host!r} was known in {timeout} s "
                    f"({error.strerror}); give process 0's host name or address, or a longer "
                    "--join_timeout"
                ) from error
            raise BenchError(
                f"{option}: process {index} found no coordinator listening "
                f"there in {timeout} s ({error.strerror or error}); process 0 listens there "
                "once it runs with the same --coordinator: check the host and port, and "
                "that this host may connect to it (a firewall), or give a longer "
                "--join_timeout"
            ) from error
