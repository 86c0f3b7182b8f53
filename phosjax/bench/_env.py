"""`environment`: what ran a bench (package versions, devices, host), for ``env.json``."""

import importlib.metadata
import os
import platform
import socket
from typing import Any

import jax

PACKAGES = (
    "phosjax",
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "numpy",
    "pandas",
    "pyarrow",
    "tensorflow-datasets",
)


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """Package versions, Python, host, CPUs, JAX processes and devices.

    Examples:
      >>> env = environment()
      >>> sorted(env)
      ['backend', 'cpu_count', 'devices', 'host', 'packages', 'platform', 'process_count', 'python']
    """
    return {
        "packages": {package: _version(package) for package in PACKAGES},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "backend": jax.default_backend(),
        "process_count": jax.process_count(),
        "devices": [
            {"id": d.id, "platform": d.platform, "kind": d.device_kind, "process": d.process_index}
            for d in jax.devices()
        ],
    }
