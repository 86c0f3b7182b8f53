"""Shared test set-up: four fake CPU devices, a key fixture, a shared data dir, tests
marked ``optimized`` run in a subprocess compiled at XLA's default optimization level, and
rarer garbage collections."""

import errno
import gc
import os
import subprocess
import sys

import pytest

from tests.processes import FAST_COMPILE, LOOP_EMITTERS, with_flags

# Must be set before jax initializes its backends: tests of sharding see 4 CPU devices.
# The tests' programs are tiny and compiling them dominates their time, so they compile
# with `FAST_COMPILE`; each equivalence compares programs compiled alike. Tests that train
# for real (many steps) run up to 10x slower so: they are marked ``optimized`` and run in
# a subprocess at XLA's default optimization level (with `LOOP_EMITTERS`).
DEVICES = "--xla_force_host_platform_device_count=4"
OPTIMIZED = "PHOSJAX_TEST_OPTIMIZED"
"""Set in the subprocess that runs an ``optimized`` test."""
USER_XLA_FLAGS = "PHOSJAX_TEST_USER_XLA_FLAGS"
"""Holds the user's own XLA flags as pytest started, before ours below (which xdist's
workers inherit), kept in an ``optimized`` test's subprocess too."""
os.environ.setdefault(USER_XLA_FLAGS, os.environ.get("XLA_FLAGS", ""))
os.environ.setdefault("XLA_FLAGS", f"{DEVICES} {FAST_COMPILE}")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# No bench command run here keeps its programs in the user's cache (nor in any: a test
# that loaded programs an earlier one compiled would depend on it, and loading the tests'
# tiny programs costs about what compiling them does).
os.environ["PHOSJAX_COMPILATION_CACHE"] = "off"
for _name in [
    n for n in os.environ if n.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE"))
]:
    del os.environ[_name]  # nor in a cache the user's environment gives JAX (nor its settings)

import jax  # noqa: E402 (after XLA_FLAGS)

GC_THRESHOLDS = (50_000, 20, 100)
"""Python's collector thresholds in a test process (its defaults: 700, 10, 10). The tests
trace and compile programs, making many objects that live on (jax's and the engine's
caches), so each collection of the oldest generation walks a large heap: with the
defaults, collecting took 10.5 s of tests/morph's 112 s (4,359 collections); with these,
4.4 s (37). Tests that need a collection make one (`gc.collect`)."""
gc.set_threshold(*GC_THRESHOLDS)


@pytest.fixture
def key() -> jax.Array:
    # rbg keys: on CPU, programs that draw random numbers (every init) compile about 2x faster
    # than with the default threefry keys.
    return jax.random.key(0, impl="rbg")


@pytest.fixture
def refuse_moving(monkeypatch: pytest.MonkeyPatch):
    """Makes ``os.replace`` of one path fail as the system would refuse it.

    ``refuse_moving(path, errno.EACCES)``: moving ``path`` raises that errno's OSError
    (PermissionError for EACCES), naming both paths; other moves go on.
    """
    replace = os.replace

    def refuse(path: os.PathLike, code: int = errno.EACCES) -> None:
        def refused(source: os.PathLike, target: os.PathLike) -> None:
            if os.fspath(source) == os.fspath(path):
                raise OSError(code, os.strerror(code), str(source), None, str(target))
            replace(source, target)

        monkeypatch.setattr(os, "replace", refused)

    return refuse


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> str:
    """One TFDS data dir for the whole session, shared by its xdist workers (their base
    temp dirs' parent is the session's): `phosjax.data.load` prepares a data set under a
    file lock, into a folder renamed when done, so the first worker to need it prepares it
    once and the others wait, then read it."""
    if given := os.environ.get("PHOSJAX_TEST_DATA_DIR"):
        return given
    base = tmp_path_factory.getbasetemp()
    worker = hasattr(pytestconfig, "workerinput")  # an xdist worker (not a process it starts)
    folder = (base.parent if worker else base) / "tfds"
    folder.mkdir(exist_ok=True)
    return str(folder)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Runs a test marked ``optimized`` in ``python -m pytest`` at XLA's default
    optimization level, with `LOOP_EMITTERS` after the user's own XLA flags (sharing this
    session's data dir); its output shows with ``-s``."""
    if pyfuncitem.get_closest_marker("optimized") is None or os.environ.get(OPTIMIZED):
        return None  # pytest runs it here
    flags = with_flags(os.environ[USER_XLA_FLAGS], f"{DEVICES} {LOOP_EMITTERS}")
    env = {**os.environ, "XLA_FLAGS": flags, OPTIMIZED: "1"}
    if "data_dir" in pyfuncitem.funcargs:
        env["PHOSJAX_TEST_DATA_DIR"] = str(pyfuncitem.funcargs["data_dir"])
    command = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:xdist", pyfuncitem.nodeid]
    done = subprocess.run(
        command,
        cwd=pyfuncitem.config.rootpath,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # a crash's trace shows with the report
        text=True,
    )
    print(done.stdout)
    if done.returncode != 0:
        pytest.fail(f"{pyfuncitem.nodeid} failed in its optimized subprocess", pytrace=False)
    return True


MAPPINGS_KEPT = 20_000
"""How many memory mappings a test process may hold before the compiled programs kept
so far are let go (`pytest_runtest_teardown`)."""


def _mappings() -> int:
    """How many memory mappings this process holds (0 where /proc is not there)."""
    try:
        with open("/proc/self/maps", "rb") as maps:
            return sum(1 for _ in maps)
    except OSError:
        return 0


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    """After a test file (doctests too), lets go of the programs compiled so far (jax's
    caches and the engine's) once the process holds `MAPPINGS_KEPT` memory mappings: each
    XLA:CPU executable maps a few (fewer since `FAST_COMPILE` generates each as one piece:
    tests/train/test_engine.py's add 7,600, not 19,700), and a worker running half the
    suite neared Linux's limit (``vm.max_map_count``, 65,530), where compiling one more
    crashed it (a segmentation fault in ``backend_compile_and_load``)."""
    yield
    if nextitem is not None and nextitem.path == item.path:  # not the module's last
        return
    if _mappings() < MAPPINGS_KEPT:
        return
    from phosjax.train import _state, _strategy

    jax.clear_caches()
    _strategy._LIFTED.clear()
    for cached in (_state._vmapped_init, _state._init_fn, _state._cheap_init_fn):
        cached.cache_clear()
    gc.collect()


@pytest.hookimpl(trylast=True)  # after the session's fixtures are torn down
def pytest_sessionfinish() -> None:
    """Collects until one collection finds nothing (five at most, as many as pytest's
    clean-up makes), then freezes what lives on (`gc.freeze`): the clean-up's collections,
    which report the warnings of late ``__del__`` methods, each walked the whole heap
    (a worker's: 0.3 s+)."""
    for _ in range(5):
        if not gc.collect():
            break
    gc.freeze()
