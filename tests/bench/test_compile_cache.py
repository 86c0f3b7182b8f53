"""The bench commands' persistent compilation cache (``--compilation_cache``)."""

import errno
import importlib
import pathlib
import re
import sys
import tempfile
import tomllib
import warnings

import jax
import jax.numpy as jnp
import pytest

from phosjax.bench import add_models, new
from phosjax.bench._compile_cache import _dropping_damaged, compilation_cache
from phosjax.bench._errors import BenchError


def entries(directory) -> list:
    return sorted(directory.glob("*-cache"))


def compile_one(scale: float) -> None:
    """Compiles a program this process has not compiled before."""
    jax.jit(lambda x: x * scale + 1).lower(jnp.zeros(3)).compile()


def test_new_and_add_models_train_with_the_cache_and_restore_jax_settings_after(
    tmp_path, monkeypatch
):
    used = []

    def train(*args, **kwargs):
        used.append(jax.config.jax_compilation_cache_dir)
        compile_one(2.0)

    monkeypatch.setattr(new, "run", train)
    monkeypatch.setattr(add_models, "add_models_to", train)
    cache = str(tmp_path / "xla")
    config = tmp_path / "bench.yaml"
    config.write_text("models: [mlp]\n")
    assert new.main(["--config", str(config), "--dir", "d", "--compilation_cache", cache]) == 0
    assert add_models.main(["--dir", "d", "--compilation_cache", cache]) == 0
    assert used == [cache, cache]
    kept = entries(tmp_path / "xla")
    assert [p for p in kept if p.name.startswith("jit__lambda")]  # however fast it compiled
    assert jax.config.jax_compilation_cache_dir is None
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 1.0
    compile_one(3.0)  # after the command: nothing more is kept
    assert entries(tmp_path / "xla") == kept


def test_off_keeps_nothing_and_a_cache_configured_through_jax_is_left_alone(tmp_path):
    with compilation_cache("off", tmp_path):
        compile_one(4.0)
    assert jax.config.jax_compilation_cache_dir is None
    with compilation_cache(str(tmp_path / "ours"), tmp_path / "run"):
        compile_one(5.0)
    assert entries(tmp_path / "ours")
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "theirs"))
    try:
        with compilation_cache(str(tmp_path / "unused"), tmp_path / "run"):
            assert jax.config.jax_compilation_cache_dir == str(tmp_path / "theirs")
    finally:
        jax.config.update("jax_compilation_cache_dir", None)
    assert not (tmp_path / "unused").exists()


def test_a_minimum_compile_time_or_size_the_user_set_is_kept(tmp_path, monkeypatch):
    """They were replaced by 0 s and 1 GiB."""
    monkeypatch.setenv("JAX_COMPILATION_CACHE_MAX_SIZE", "-1")  # JAX's default, yet set
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 5.0)
    try:
        with compilation_cache(str(tmp_path / "xla"), tmp_path / "run"):
            assert jax.config.jax_persistent_cache_min_compile_time_secs == 5.0
            assert jax.config.jax_compilation_cache_max_size == -1
    finally:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def test_a_cache_that_cannot_be_written_warns_once_and_programs_still_compile(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    with compilation_cache(str(tmp_path / "file" / "xla"), tmp_path / "run"):
        compile_one(6.0)
        compile_one(7.0)
    warned = capsys.readouterr().err.splitlines()
    assert len(warned) == 1 and warned[0].startswith(
        f"warning: compilation cache '{tmp_path / 'file' / 'xla'}' cannot be written"
    ), warned
    assert "--compilation_cache off turns it off" in warned[0]
    assert jax.config.jax_compilation_cache_dir is None


def test_a_cache_the_environment_variable_gave_is_named_so(tmp_path, capsys, monkeypatch):
    """The warning and the refusal named --compilation_cache alone, which was not given."""
    (tmp_path / "file").write_text("")
    cache = str(tmp_path / "file" / "xla")
    monkeypatch.setenv("PHOSJAX_COMPILATION_CACHE", cache)
    with compilation_cache(cache, tmp_path / "run"):
        pass
    assert capsys.readouterr().err.startswith(
        f"warning: compilation cache {cache!r} (from $PHOSJAX_COMPILATION_CACHE) cannot be"
    )
    monkeypatch.setenv("PHOSJAX_COMPILATION_CACHE", str(tmp_path))
    said = re.escape(f"$PHOSJAX_COMPILATION_CACHE {str(tmp_path)!r} is inside --dir")
    with pytest.raises(BenchError, match=said), compilation_cache(str(tmp_path), tmp_path):
        pass


def test_an_entry_cut_short_is_replaced_so_it_warns_in_one_run_only(tmp_path):
    """An entry cut short (a run killed while writing it) warned in every run: JAX writes
    no entry where one is; it is deleted as it fails, and the program compiled kept."""
    cache = str(tmp_path / "xla")
    with compilation_cache(cache, tmp_path / "run"):
        compile_one(8.5)
    (entry,) = [p for p in entries(tmp_path / "xla") if p.name.startswith("jit__lambda")]
    whole = entry.read_bytes()
    entry.write_bytes(whole[: len(whole) // 2])
    for warned in (1, 0):
        jax.clear_caches()  # the next compile reads the cache
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with compilation_cache(cache, tmp_path / "run"):
                compile_one(8.5)
        said = [str(w.message) for w in caught if "compilation cache entry" in str(w.message)]
        assert len(said) == warned, said
        assert entry.stat().st_size > len(whole) // 2  # written again, whole


def test_an_entry_a_full_disk_left_without_its_time_of_last_use_no_longer_stops_the_cache(
    tmp_path,
):
    """JAX reads every entry's time of last use as it keeps a program: an entry a full
    disk left without it (its program never compiled again) made JAX keep no program, in
    every run, warning at each compile."""
    cache = tmp_path / "xla"
    cache.mkdir()
    (cache / "jit_gone-0123-cache").write_bytes(b"")  # the disk filled as JAX wrote it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with compilation_cache(str(cache), tmp_path / "run"):
            compile_one(9.5)
    assert [str(w.message) for w in caught if "compilation cache entry" in str(w.message)] == []
    assert [p.name for p in entries(cache) if p.name.startswith("jit__lambda")] != []
    assert (cache / "jit_gone-0123-atime").read_bytes() == bytes(8)  # the first evicted


def test_a_jax_keeping_no_time_of_last_use_file_gets_none_written_into_its_cache(
    tmp_path, monkeypatch
):
    """The file of an entry's last use is JAX's own layout (``<key>-atime``): one beside
    each entry was written into the cache of a JAX that names it otherwise, or keeps none."""
    from jax._src import lru_cache

    monkeypatch.delattr(lru_cache, "_ATIME_SUFFIX")
    cache = tmp_path / "xla"
    cache.mkdir()
    (cache / "jit_f-0123-cache").write_bytes(b"")
    with compilation_cache(str(cache), tmp_path / "run"):
        pass
    assert [p.name for p in cache.iterdir()] == ["jit_f-0123-cache"]


def test_a_cache_folder_this_user_may_not_look_into_is_a_warning_and_no_cache(
    tmp_path, monkeypatch, capsys
):
    """A --compilation_cache folder this user may not look into (chmod 000, another
    user's) ended the command in 'error: [Errno 13] Permission denied: '.../bench.json'',
    as it looked for a bench there, where a cache that cannot be written is one warning."""
    cache = tmp_path / "xla"
    cache.mkdir()
    is_file = pathlib.Path.is_file

    def refused(path):
        if path.parent == cache:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return is_file(path)

    def unwritable(dir):
        raise PermissionError(errno.EACCES, "Permission denied", str(dir))

    monkeypatch.setattr(pathlib.Path, "is_file", refused)
    monkeypatch.setattr(tempfile, "TemporaryFile", unwritable)
    with compilation_cache(str(cache), tmp_path / "run"):
        assert jax.config.jax_compilation_cache_dir is None
    assert capsys.readouterr().err == (
        f"warning: compilation cache {str(cache)!r} cannot be written ([Errno 13] Permission "
        f"denied: {str(cache)!r}); programs are compiled anew, none kept (--compilation_cache "
        "DIR moves it, --compilation_cache off turns it off).\n"
    )


def test_an_entry_read_with_the_arguments_of_another_jax_version_is_kept(tmp_path, monkeypatch):
    """JAX's reader took four arguments here and takes more in other versions: a fixed
    signature failed on them, and every entry read was deleted as damaged."""
    from jax._src import compilation_cache as jax_entries

    monkeypatch.setattr(
        jax_entries, "get_executable_and_time", lambda key, *args, host_callbacks=(): (key, 7)
    )
    entry = tmp_path / "jit_f-1234-cache"
    entry.write_bytes(b"whole")
    with _dropping_damaged(tmp_path):
        read = jax_entries.get_executable_and_time("jit_f-1234", 1, 2, 3, host_callbacks=())
    assert read == ("jit_f-1234", 7)
    assert entry.read_bytes() == b"whole"


@pytest.mark.parametrize("error", [TimeoutError("lock held"), MemoryError("RESOURCE_EXHAUSTED")])
def test_an_entry_that_fails_to_load_but_is_whole_is_kept(tmp_path, monkeypatch, error):
    """Any failure deleted the entry: a lock held by another bench, a device out of memory."""
    from jax._src import compilation_cache as jax_entries

    def fail(key, *args):
        raise error

    monkeypatch.setattr(jax_entries, "get_executable_and_time", fail)
    whole = jax_entries.compress_executable(b"program")
    for name in ("jit_f-1234-cache", "jit_f-1234-atime"):
        (tmp_path / name).write_bytes(whole)
    with _dropping_damaged(tmp_path), pytest.raises(type(error)):
        jax_entries.get_executable_and_time("jit_f-1234", 1, 2, 3)
    assert [p.read_bytes() for p in sorted(tmp_path.iterdir())] == [whole, whole]


def test_an_entry_is_kept_by_a_jax_without_the_decompressor_it_is_checked_with(
    tmp_path, monkeypatch
):
    """Looked up inside the check's try, its absence read as damaged bytes: every entry that
    failed to load (a lock held too long) was deleted."""
    from jax._src import compilation_cache as jax_entries

    def fail(key, *args):
        raise TimeoutError("lock held")

    whole = jax_entries.compress_executable(b"program")
    monkeypatch.setattr(jax_entries, "get_executable_and_time", fail)
    monkeypatch.delattr(jax_entries, "decompress_executable")
    (tmp_path / "jit_f-1234-cache").write_bytes(whole)
    with _dropping_damaged(tmp_path), pytest.raises(AttributeError):
        jax_entries.get_executable_and_time("jit_f-1234", 1, 2, 3)
    assert (tmp_path / "jit_f-1234-cache").read_bytes() == whole


def test_a_jax_that_moved_its_private_cache_module_still_loads_the_commands(tmp_path, monkeypatch):
    """Imported as the module loaded, JAX's private jax._src.compilation_cache stopped new,
    add_models and morph from loading on a JAX without it; now nothing is patched there."""
    import jax._src

    from phosjax.bench import _compile_cache

    loaded = dict(vars(_compile_cache))  # its classes: reloaded, they would be new ones
    try:
        with monkeypatch.context() as moved:
            moved.setitem(sys.modules, "jax._src.compilation_cache", None)
            moved.delattr(jax._src, "compilation_cache")
            module = importlib.reload(_compile_cache)
            assert module._jax_entries() is None
            with module._dropping_damaged(tmp_path):
                (tmp_path / "jit_f-1234-cache").write_bytes(b"cut")
        assert (tmp_path / "jit_f-1234-cache").read_bytes() == b"cut"
    finally:  # as loaded: an error class reloaded no longer pickles (test_pickling)
        vars(_compile_cache).clear()
        vars(_compile_cache).update(loaded)


@pytest.mark.parametrize("inside", ["bench/xla", "bench"])
def test_a_cache_inside_the_dir_is_refused_before_either_is_made(tmp_path, capsys, inside):
    """It was made first, and a new bench's --dir then refused as holding other files."""
    cache = str(tmp_path / inside)
    config = tmp_path / "bench.yaml"
    config.write_text("models: [mlp]\n")
    argv = ["--config", str(config), "--dir", str(tmp_path / "bench"), "--compilation_cache"]
    assert new.main([*argv, cache]) == 2
    said = capsys.readouterr().err
    assert f"--compilation_cache {cache!r} is inside --dir {str(tmp_path / 'bench')!r}" in said
    assert not (tmp_path / "bench").exists()


@pytest.mark.parametrize("inside", ["other/xla", "other"])
def test_a_cache_inside_another_bench_is_refused(tmp_path, inside):
    """JAX wrote its files into that bench, whose checks may see them as foreign."""
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "bench.json").write_text("{}")
    cache = str(tmp_path / inside)
    said = re.escape(f"is inside the bench '{tmp_path / 'other'}'")
    with pytest.raises(BenchError, match=said), compilation_cache(cache, tmp_path / "run"):
        pass
    assert not (tmp_path / "other" / "xla").exists()


@pytest.mark.parametrize(
    "module", ["phosjax.bench.new", "phosjax.bench.add_models", "phosjax.morph.__main__"]
)
def test_each_command_takes_the_option_and_in_the_suite_it_is_off(module):
    assert importlib.import_module(module).parser().get_default("compilation_cache") == "off"


def test_a_config_files_off_turns_it_off_and_an_empty_or_true_value_is_refused(tmp_path, capsys):
    config = tmp_path / "bench.yaml"
    config.write_text("models: [mlp]\ncompilation_cache: off\n")  # YAML's false
    args = new.parser().parse_args(["--config", str(config), "--dir", "d"])
    assert args.compilation_cache == "off"
    with pytest.raises(SystemExit) as exit_info:
        new.main(["--models", "mlp", "--dir", str(tmp_path / "b"), "--compilation_cache", " "])
    assert exit_info.value.code == 2
    said = capsys.readouterr().err
    assert "--compilation_cache: ' ' is neither a directory nor off; give one" in said, said
    config.write_text("models: [mlp]\ncompilation_cache: true\n")  # was a traceback
    with pytest.raises(SystemExit) as exit_info:
        new.main(["--config", str(config), "--dir", str(tmp_path / "b")])
    assert exit_info.value.code == 2
    said = capsys.readouterr().err  # the file named, which gave it, not an option
    assert f"error: {config}: compilation_cache: True is neither a directory nor off" in said, said


@pytest.mark.parametrize("value", ["[xla]", "5"])
def test_a_config_files_list_or_number_is_refused_not_made_a_folder(
    value, tmp_path, capsys, monkeypatch
):
    """'compilation_cache: [xla]' kept the programs in a folder named "['xla']"."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "bench.yaml"
    config.write_text(f"models: [mlp]\ncompilation_cache: {value}\n")
    with pytest.raises(SystemExit) as exit_info:
        new.main(["--config", str(config), "--dir", str(tmp_path / "b")])
    assert exit_info.value.code == 2
    shown = "['xla']" if value == "[xla]" else value
    said = capsys.readouterr().err
    assert f"error: {config}: compilation_cache: {shown} is neither a directory nor off" in said
    assert [path.name for path in tmp_path.iterdir()] == ["bench.yaml"]


def test_the_words_yaml_reads_as_false_turn_it_off_on_the_command_line_too(monkeypatch):
    """They did in a config file only: ``--compilation_cache false`` (or ``OFF``, or
    ``$PHOSJAX_COMPILATION_CACHE=false``) made a folder of that name and kept programs there."""
    argv = ["--models", "[mlp]", "--dir", "d"]
    for word in ["OFF", "false", "No", "null"]:
        assert (
            new.parser().parse_args([*argv, "--compilation_cache", word]).compilation_cache == "off"
        )
    monkeypatch.setenv("PHOSJAX_COMPILATION_CACHE", "false")
    assert new.parser().parse_args(argv).compilation_cache == "off"


def test_a_blank_environment_variable_is_unset(monkeypatch, tmp_path):
    """``PHOSJAX_COMPILATION_CACHE=" "`` ended every command in a traceback."""
    monkeypatch.setenv("PHOSJAX_COMPILATION_CACHE", " ")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    args = new.parser().parse_args(["--models", "[mlp]", "--dir", "d"])
    assert args.compilation_cache == str(tmp_path / "phosjax" / "xla")


def test_phosjax_requires_the_filelock_that_jax_s_size_limited_cache_needs():
    """With `MAX_BYTES` set, JAX's cache needs the filelock package; only the test
    extras (nox, through virtualenv) brought it, so after the README's ``pip install -e
    .`` each compile warned "Please install the `filelock` package" and kept nothing."""
    pyproject = pathlib.Path(__file__).parents[2] / "pyproject.toml"
    required = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    assert [r for r in required if re.match(r"filelock\b", r)], required
