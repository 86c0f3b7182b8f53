"""One process of a multi-process grid: ``python -m tests.train.worker PORT ID COUNT OUT``.

Joins ``jax.distributed`` on CPU (two fake devices per process; ``DEVICES_IN_1=<n>``:
process 1 has ``n``), trains its share of `tiny.GRID` with `train_grid` and saves each
of its cells' final params and test accuracy.
With ``SLOW_CHUNK_S=<seconds>`` in the environment, process 0 takes that much longer
per chunk; with ``GLOBAL_DEVICES=1`` each process passes every process's devices; with
``NO_DATA_IN=<id>`` process ``id`` has no data set (its `train_grid` raises).
Only run as a script: importing it changes nothing.
"""

import os
import sys
import time

from tests.processes import join


def main(port: str, process_id: str, count: str, out: str) -> None:
    devices = int(os.environ.get("DEVICES_IN_1", "2")) if process_id == "1" else 2
    join(port, process_id, count, devices)
    import jax

    from phosjax.train import train_grid
    from tests.train.tiny import GRID, save, toy_data

    assert len(jax.local_devices()) == devices and jax.process_count() == int(count)
    slow = float(os.environ.get("SLOW_CHUNK_S", "0")) * (process_id == "0")

    def on_chunk(*_: object) -> None:
        time.sleep(slow)

    given = jax.devices() if os.environ.get("GLOBAL_DEVICES") else None
    data = {} if os.environ.get("NO_DATA_IN") == process_id else {"toy": toy_data()}
    save(train_grid(GRID, datasets=data, strategy="vmap", devices=given, on_chunk=on_chunk), out)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:])
