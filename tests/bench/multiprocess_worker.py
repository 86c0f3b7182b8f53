"""One process of a bench shared by several: ``python -m tests.bench.multiprocess_worker
PORT ID COUNT DIRS CHANGES``.

Joins ``jax.distributed`` on CPU (two fake devices per process) and runs
``tiny_config(**changes)`` on the toy data in each of ``DIRS`` (one directory, or several
joined by ``os.pathsep``: one after the other, in the same processes), printing ``rows
<count>`` after each; ``CHANGES`` is the JSON of the ``changes`` of every directory, or of
a list of one per directory. A `BenchError` is printed as ``BenchError: <message>`` and
exits with 2. With ``STOP_AFTER_SAVE=<step>`` in the environment the process stops (exit
code 3) right after saving its first checkpoint of that step: what a kill mid-group
leaves. With ``SLOW_SAVE_S=<seconds>`` each save of a checkpoint in the last directory
takes that much longer. With ``FAIL_TRAINING_IN=<id>`` process ``id`` fails at its first
group (a ``RuntimeError``). With ``FEW_EXAMPLES_IN=<id>`` process ``id`` gets a toy data
set of 8 training examples, fewer than a batch: its plan fails. With ``FULL_DISK=1``,
process 0 cannot write the bench's metadata (an ``OSError``, as when the disk is full).
Only run as a script: importing it changes nothing.
"""

import dataclasses
import json
import os
import sys
import time

from tests.processes import join


def main(port: str, process_id: str, count: str, directories: str, changes: str) -> None:
    join(port, process_id, count)
    import jax

    from phosjax.bench import BenchError, run
    from phosjax.bench._checkpoint import Checkpoints
    from tests.bench.runner_tiny import tiny_config, toy_data

    stop = os.environ.get("STOP_AFTER_SAVE")
    if stop is not None:
        save = Checkpoints.save

        def save_then_exit(self: Checkpoints, step: int, state: object) -> None:
            save(self, step, state)
            if step == int(stop):  # what a kill here leaves: no status, no profile
                raise SystemExit(3)  # through `jax.distributed.shutdown`, as the peer does

        Checkpoints.save = save_then_exit  # type: ignore[method-assign]
    if os.environ.get("FULL_DISK") and process_id == "0":
        from phosjax.bench import _runner

        def full_disk(*_: object) -> None:
            raise OSError(28, "No space left on device")

        _runner.write_meta = full_disk  # type: ignore[assignment]
    if os.environ.get("FAIL_TRAINING_IN") == process_id:
        from phosjax.bench import _runner

        def failing(*_: object, **__: object) -> None:
            raise RuntimeError("training failed")

        _runner.train_group = failing  # type: ignore[assignment]
    roots = directories.split(os.pathsep)
    given = json.loads(changes)
    configs = [
        tiny_config(**c) for c in (given if isinstance(given, list) else [given] * len(roots))
    ]
    data = toy_data()
    if os.environ.get("FEW_EXAMPLES_IN") == process_id:
        data = dataclasses.replace(data, x_train=data.x_train[:8], y_train=data.y_train[:8])
    try:
        for i, (directory, config) in enumerate(zip(roots, configs, strict=True)):
            if i == len(roots) - 1:
                slow_saves(os.environ.get("SLOW_SAVE_S"))
            results = run(config, directory, datasets={"toy": data}, progress=False)
            print(f"rows {len(results)}", flush=True)
    except BenchError as error:
        print(f"BenchError: {error}", flush=True)
        sys.exit(2)
    finally:
        jax.distributed.shutdown()


def slow_saves(seconds: str | None) -> None:
    """Makes each later save of a checkpoint take ``seconds`` longer (None: as long)."""
    from phosjax.bench._checkpoint import Checkpoints

    if seconds is None:
        return
    save_now = Checkpoints.save

    def save_slowly(self: Checkpoints, step: int, state: object) -> None:
        save_now(self, step, state)
        time.sleep(float(seconds))

    Checkpoints.save = save_slowly  # type: ignore[method-assign]


if __name__ == "__main__":
    main(*sys.argv[1:])
