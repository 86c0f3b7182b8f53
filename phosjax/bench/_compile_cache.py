"""The bench commands keep the programs XLA compiles in JAX's persistent compilation
cache, so a bench resumed, run again or extended (``add_models``) and ``phosjax.morph``
load them rather than compile them again (docs/performance.md has the figures)."""

import argparse
import contextlib
import glob
import os
import pathlib
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import jax
from jax.experimental.compilation_cache import compilation_cache as jax_cache
from jsonargparse import ArgumentParser

from phosjax.bench._errors import BenchError
from phosjax.bench._layout import MARKER, is_bench

CACHE_ENV = "PHOSJAX_COMPILATION_CACHE"
OFF = "off"
MAX_BYTES = 2**30
"""The cache's size; JAX drops its least recently used programs beyond it."""
_OURS_UNLESS_SET = {
    "jax_persistent_cache_min_compile_time_secs": (0.0, 1.0),
    "jax_compilation_cache_max_size": (MAX_BYTES, -1),
}
"""Our value of each of JAX's cache settings, and JAX's default: one the user set (in
the environment, or in ``jax.config`` to other than the default) is kept."""


def default_cache() -> str:
    """``$PHOSJAX_COMPILATION_CACHE`` if set and not blank (a directory, or ``off``), else
    ``$XDG_CACHE_HOME/phosjax/xla`` (``~/.cache/phosjax/xla``).

    Examples:
      >>> from unittest import mock
      >>> with mock.patch.dict(os.environ, {"PHOSJAX_COMPILATION_CACHE": "off"}):
      ...     default_cache()
      'off'
      >>> with mock.patch.dict(os.environ, {"XDG_CACHE_HOME": "/c", CACHE_ENV: " "}):
      ...     default_cache()
      '/c/phosjax/xla'
    """
    if given := os.environ.get(CACHE_ENV, "").strip():
        return given
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return str(pathlib.Path(base) / "phosjax" / "xla")


_FALSE_OR_NULL = {"off", "false", "no", "null", "~"}
"""The words YAML reads as false or null (in any case)."""


class NotACacheError(argparse.ArgumentTypeError, ValueError):
    """A ``--compilation_cache`` that is neither a directory nor `OFF`: an
    ``ArgumentTypeError`` for the command line, a ``ValueError`` for a config file's key
    (jsonargparse let any other error out as a traceback)."""


def cache_directory(value: object) -> str:
    """``--compilation_cache``'s value (or ``$PHOSJAX_COMPILATION_CACHE``'s): a directory
    (a string: a config file's list or number is refused), or `OFF` for the words YAML
    reads as false or null (``off``, ``false``, ``null``), on the command line as in a
    config file.

    Examples:
      >>> cache_directory("~/xla"), cache_directory(False), cache_directory("OFF")
      ('~/xla', 'off', 'off')
      >>> cache_directory("")
      Traceback (most recent call last):
      ...
      phosjax.bench._compile_cache.NotACacheError: '' is neither a directory nor off; ...
      >>> cache_directory(["xla"])
      Traceback (most recent call last):
      ...
      phosjax.bench._compile_cache.NotACacheError: ['xla'] is neither a directory nor off; ...
    """
    word = str(value).strip().lower()
    if value is False or value is None or word in _FALSE_OR_NULL:
        return OFF
    if not isinstance(value, str) or not word:  # a config file's [a] made a folder "['a']"
        raise NotACacheError(
            f"{value!r} is neither a directory nor {OFF}; give one, e.g. ~/xla or {OFF}"
        )
    return str(value)


class _DirOrOff:
    """``--compilation_cache``'s type: `cache_directory`, which ``--help`` names as
    ``type: DIR or off`` (jsonargparse printed a function: ``<function ... at 0x7f...>``)."""

    def __call__(self, value: object) -> str:
        return cache_directory(value)

    def __repr__(self) -> str:
        return f"DIR or {OFF}"


def add_compilation_cache(parser: ArgumentParser) -> None:
    """``--compilation_cache DIR`` (or ``off``)."""
    parser.add_argument(
        "--compilation_cache",
        type=_DirOrOff(),
        default=default_cache(),
        metavar="DIR",
        help=f"where compiled programs are kept for later runs to load ({OFF}: nowhere; the "
        f"default is ${CACHE_ENV} if set, else $XDG_CACHE_HOME/phosjax/xla); a cache "
        "configured through JAX (JAX_COMPILATION_CACHE_DIR) is used instead",
    )


@contextlib.contextmanager
def compilation_cache(directory: str, run_dir: str | os.PathLike[str]) -> Iterator[None]:
    """Within it, each program JAX compiles is kept in ``directory`` (none if ``off``),
    however fast it compiled, and loaded from there when compiled before; a cache
    configured through JAX's own settings (or JAX's cache turned off there) is left as it
    is; so is a minimum compile time or size the user set (`_OURS_UNLESS_SET`). An entry
    cut short (its bytes do not decompress) is replaced (`_dropping_damaged`);
    one without its time of last use is given the oldest (`_date_undated`). A
    directory that cannot be written: one warning, no cache. JAX's settings again after.
    A ``directory`` in the command's ``run_dir`` (its ``--dir``), which holds only
    the run's own files, or in another bench, is a `BenchError`, raised before either is
    made.

    Examples:
      >>> with compilation_cache("off", "runs/a"):
      ...     jax.config.jax_compilation_cache_dir is None
      True
      >>> with compilation_cache("runs/a/xla", "runs/a"):
      ...     pass
      Traceback (most recent call last):
      ...
      phosjax.bench._errors.BenchError: --compilation_cache 'runs/a/xla' is inside --dir
      'runs/a', which holds only the run's own files; pick a directory outside it.
    """
    if directory != OFF:
        _check_outside(directory, run_dir)
    config: Any = jax.config  # its flags are attributes that mypy does not know
    if (
        directory == OFF
        or config.jax_compilation_cache_dir is not None
        or not config.jax_enable_compilation_cache
        or not _writable(directory)
    ):
        yield
        return
    path = pathlib.Path(directory).expanduser()
    settings: dict[str, object] = {"jax_compilation_cache_dir": str(path)}
    for name, (ours, jax_default) in _OURS_UNLESS_SET.items():
        if name.upper() not in os.environ and getattr(config, name) == jax_default:
            settings[name] = ours
    before = {name: getattr(config, name) for name in settings}
    for name, value in settings.items():
        config.update(name, value)
    if config.jax_compilation_cache_max_size != -1:  # -1: JAX keeps no time of last use
        _date_undated(path)
    jax_cache.reset_cache()  # JAX opens its cache once: this one from the next compile
    try:
        with _dropping_damaged(path):
            yield
    finally:
        for name, value in before.items():
            config.update(name, value)
        jax_cache.reset_cache()


@contextlib.contextmanager
def _dropping_damaged(directory: pathlib.Path) -> Iterator[None]:
    """Within it, the files of a cache entry in ``directory`` that JAX cannot load as its
    bytes do not decompress (cut short by a run killed while writing it, or by a full
    disk) are deleted as JAX finds it, so that the program JAX then compiles is kept in
    its place: JAX writes no entry where one is, and so warned of the damaged one in every
    run. An entry that failed to load otherwise (the lock held by another bench too long,
    a device out of memory) is kept; a JAX that reads its entries otherwise (its private
    module moved, `_jax_entries`) is left as it is."""
    entries = _jax_entries()
    read = getattr(entries, "get_executable_and_time", None)
    if read is None:
        yield
        return

    def read_or_drop(cache_key: str, *args: Any, **kwargs: Any) -> tuple[Any | None, int | None]:
        try:  # JAX's arguments after the key vary from version to version: passed on as given
            return read(cache_key, *args, **kwargs)
        except Exception:  # JAX warns of it and compiles the program
            if _cut_short(directory / f"{cache_key}-cache"):
                for path in directory.glob(f"{glob.escape(cache_key)}-*"):  # -cache, -atime
                    path.unlink(missing_ok=True)
            raise

    entries.get_executable_and_time = read_or_drop
    try:
        yield
    finally:
        entries.get_executable_and_time = read


def _jax_entries() -> Any:
    """JAX's module that reads and writes the cache's entries, or None where this JAX has
    none by that name: it is private, so it is looked up when used, never as the bench's
    commands load."""
    try:
        from jax._src import compilation_cache
    except ImportError:
        return None
    return compilation_cache


def _date_undated(directory: pathlib.Path) -> None:
    """Gives each cache entry in ``directory`` that lacks the file of its last use (a disk
    that filled as JAX wrote it) the oldest use, so that JAX evicts it first: JAX reads
    every entry's as it keeps a program, and, one missing, kept none (warning at each
    compile) in every run until that entry's program was compiled again.

    Examples:
      >>> import tempfile
      >>> folder = pathlib.Path(tempfile.mkdtemp())
      >>> _ = (folder / "jit_f-12-cache").write_bytes(b"")
      >>> _date_undated(folder)
      >>> (folder / "jit_f-12-atime").read_bytes()
      b'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00'
    """
    try:  # JAX's own layout: <key>-cache, <key>-atime
        from jax._src.lru_cache import _ATIME_SUFFIX, _CACHE_SUFFIX
    except ImportError:  # a JAX that keeps it otherwise: no file written into its cache
        return
    for entry in directory.glob(f"*{_CACHE_SUFFIX}"):
        used = entry.with_name(f"{entry.name.removesuffix(_CACHE_SUFFIX)}{_ATIME_SUFFIX}")
        if not used.exists():
            with contextlib.suppress(OSError):  # the disk still full: JAX warns as before
                used.write_bytes(bytes(8))


def _cut_short(entry: pathlib.Path) -> bool:
    """Whether the cache entry file ``entry`` holds bytes that do not decompress as JAX
    wrote them; False where it cannot be read (gone, or refused). A JAX without its
    ``decompress_executable`` raises AttributeError here: no entry is taken for damaged.

    Examples:
      >>> import tempfile
      >>> entry = pathlib.Path(tempfile.mkdtemp()) / "jit_f-12-cache"
      >>> _ = entry.write_bytes(_jax_entries().compress_executable(b"program")[:-3])
      >>> _cut_short(entry), _cut_short(entry.with_name("jit_g-34-cache"))
      (True, False)
    """
    decompress = _jax_entries().decompress_executable  # outside the try: absent, no damage
    try:
        data = entry.read_bytes()
    except OSError:
        return False
    try:
        decompress(data)
    except Exception:  # zlib's, zstandard's errors: damaged bytes
        return True
    return False


def _check_outside(directory: str, run_dir: str | os.PathLike[str]) -> None:
    """Raises a `BenchError` where ``directory`` is ``run_dir``, another bench, or lies
    inside either."""
    cache, run = (pathlib.Path(path).expanduser().resolve() for path in (directory, run_dir))
    if cache == run or run in cache.parents:
        raise BenchError(
            f"{_setting(directory)} {directory!r} is inside --dir {str(run_dir)!r}, which "
            "holds only the run's own files; pick a directory outside it."
        )
    if bench := next((path for path in (cache, *cache.parents) if _holds_bench(path)), None):
        raise BenchError(
            f"{_setting(directory)} {directory!r} is inside the bench {str(bench)!r} (it has "
            f"a {MARKER}), which holds only its run's own files; pick a directory outside it."
        )


def _setting(directory: str) -> str:
    """What gave the cache ``directory``, for a message: ``$PHOSJAX_COMPILATION_CACHE``
    where it holds it (``--compilation_cache``'s default), else ``--compilation_cache``.

    Examples:
      >>> from unittest import mock
      >>> with mock.patch.dict(os.environ, {CACHE_ENV: "/c"}):
      ...     _setting("/c"), _setting("/d")
      ('$PHOSJAX_COMPILATION_CACHE', '--compilation_cache')
    """
    from_env = os.environ.get(CACHE_ENV, "").strip() == directory
    return f"${CACHE_ENV}" if from_env else "--compilation_cache"


def _holds_bench(directory: pathlib.Path) -> bool:
    """`is_bench`; False for a folder this user may not look into, which the cache cannot
    be written into either (`_writable` warns of it)."""
    try:
        return is_bench(directory)
    except PermissionError:
        return False


def _writable(directory: str) -> bool:
    """Whether a file can be written in ``directory`` (made if missing); if not, a warning
    on stderr says why."""
    try:
        path = pathlib.Path(directory).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path) as probe:
            probe.write(bytes(4096))
            probe.flush()
            os.fsync(probe.fileno())  # a full disk says so here
    except OSError as error:
        setting = _setting(directory)  # the option overrides the variable: its advice holds
        given = f" (from {setting})" if setting != "--compilation_cache" else ""
        print(
            f"warning: compilation cache {directory!r}{given} cannot be written ({error}); "
            f"programs are compiled anew, none kept (--compilation_cache DIR moves it, "
            f"--compilation_cache {OFF} turns it off).",
            file=sys.stderr,
        )
        return False
    return True
