"""Collectives across the processes of a `jax.distributed` group, on one device of each
process and waited for there: `jax.experimental.multihost_utils.process_allgather`
returns the first local device's copy while the gathers of the others may still run,
and a process that leaves then (an error every process raises alike) tears its backend
down under them: its teardown waited ~150 s for gloo to give up connecting to the peer
already gone. One device each, not all: processes may have different numbers of local
devices. `local_devices` checks that devices given to train on are this process's own."""

import collections
import zlib
from collections.abc import Iterable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from phosjax._callables import cut_repr
from phosjax._listing import listing


def gather_rows(row: np.ndarray) -> np.ndarray:
    """Every process's ``row`` (one per process, in process order), gathered on each
    process's first device and finished there.

    Examples:
      >>> gather_rows(np.array([1, 2]))  # one process: its row alone
      array([[1, 2]])
    """
    if jax.process_count() == 1:
        return np.asarray(row)[None]
    firsts: dict[int, jax.Device] = {}  # of each process, whatever its number of devices
    for device in sorted(jax.devices(), key=lambda device: device.id):
        firsts.setdefault(device.process_index, device)
    mesh = Mesh(np.array([firsts[i] for i in range(jax.process_count())]), ("processes",))
    rows = jax.make_array_from_process_local_data(
        NamedSharding(mesh, PartitionSpec("processes")), np.asarray(row)[None]
    )
    gathered = jax.jit(lambda a: a, out_shardings=NamedSharding(mesh, PartitionSpec()))(rows)
    return np.asarray(gathered.block_until_ready().addressable_data(0))


def barrier(name: str) -> None:
    """Returns once every process has called ``barrier(name)`` (and its gather is done).

    Raises:
      RuntimeError: the processes named different barriers.

    Examples:
      >>> barrier("done")  # one process: nothing to wait for
    """
    names = gather_rows(np.array([zlib.crc32(name.encode())], np.uint32))
    if len(set(names[:, 0].tolist())) > 1:
        raise RuntimeError(f"barrier {name!r}: the processes named different barriers.")


def local_devices(devices: Sequence[jax.Device] | None, where: str) -> list[jax.Device]:
    """``devices`` as a list (``None``: `jax.local_devices`); raises unless it names
    distinct devices, at least one, each this process's own (``where`` named): a
    group's cells are this process's share, trained on its devices alone."""
    chosen = jax.local_devices() if devices is None else devices
    listed = list(chosen) if isinstance(chosen, Iterable) else None  # e.g. one device
    if listed is None or not all(isinstance(device, jax.Device) for device in listed):
        raise TypeError(
            f"{where}: devices must be a sequence of jax devices, e.g. jax.local_devices()[:2] "
            f"or [jax.local_devices()[0]], got {cut_repr(devices)}"
        )
    if not listed:
        raise ValueError(
            f"{where}: devices is empty; pass at least one device, e.g. "
            "[jax.local_devices()[0]], or None for all local devices."
        )
    if repeated := [device for device, n in collections.Counter(listed).items() if n > 1]:
        raise ValueError(
            f"{where}: devices lists a device more than once ("
            f"{listing([repr(device) for device in repeated], 3)}); each device holds its "
            "own block of cells, so name each at most once."
        )
    for device in listed:
        if device.process_index != jax.process_index():
            raise ValueError(
                f"{where}: devices must be this process's own, but device {device.id} "
                f"belongs to process {device.process_index} (this is process "
                f"{jax.process_index()}); pass jax.local_devices() or some of them: under "
                "jax.distributed each process trains its own share of the cells."
            )
    return listed
