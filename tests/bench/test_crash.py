"""A bench command that a full disk or a damaged file stops: what it says, what it keeps."""

import errno
import io
import os
import pathlib
import re
import sys

import pandas as pd
import pytest

from phosjax.bench import BenchConfig, BenchError, _cli, _interrupt, _layout, _store
from phosjax.bench._directory import choose_config, locked, open_bench, write_meta
from phosjax.bench._errors import BrokenFileError
from phosjax.bench._store import write_bytes
from phosjax.bench._summary import read_profile
from phosjax.bench.view import BenchFiles
from tests.bench.runner_tiny import Killed


@pytest.mark.parametrize(
    ("refused", "then"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "free space on its disk"),
        (
            OSError(errno.EFBIG, "File too large"),  # the file system's limit too: FAT32's 4 GiB
            "raise the file size limit (ulimit -f), or use a file system allowing larger files "
            "(FAT32 stops at 4 GiB)",
        ),
        (
            OSError(errno.EROFS, "Read-only file system"),
            "mount its disk read-write (it is read-only)",
        ),
        (
            OSError(errno.EACCES, "Permission denied"),
            "let this user read and write it (its permissions, those of its folder)",
        ),
    ],
)
def test_a_full_or_unwritable_disk_is_one_error_line_naming_the_file_and_the_command_that_continues(
    tmp_path, capsys, monkeypatch, refused, then
):
    """A file size limit was said as a full disk ('free space on its disk'); a folder
    turned read-only while a bench trained ended it in a traceback."""
    target = tmp_path / "status.json"
    target.write_text("{}")

    def no_room(descriptor):
        raise refused

    monkeypatch.setattr(os, "fsync", no_room)

    @_cli.entry_point(_cli.kept_in_bench("phosjax.bench.new"))
    def main(argv=None):
        _store.write_text(target, '{"groups": {}}')

    bench = tmp_path / "bench"  # not started: a --dir holding only status.json is the user's
    assert main(["--dir", str(bench)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {refused}: {str(target)!r}; {then}, then: ")
    assert f"the same command starts it: python -m phosjax.bench.new --dir {bench}" in err
    assert "Traceback" not in err and target.read_text() == "{}"


@pytest.mark.parametrize("writes", [1, 2])
def test_a_start_killed_between_the_writes_of_its_metadata_is_started_again(
    tmp_path, monkeypatch, writes
):
    """It left config.yaml alone, which the same command refused as the user's."""
    config = BenchConfig.from_dict({"models": ["mlp"]})
    written = []

    def killed(path, data):
        if len(written) == writes:
            raise Killed
        written.append(path)
        write_bytes(path, data)

    monkeypatch.setattr(_store, "write_bytes", killed)
    with pytest.raises(Killed):
        write_meta(tmp_path, config, [], 1)
    monkeypatch.undo()
    assert choose_config(tmp_path, config) == (config, None)


@pytest.mark.parametrize(
    ("damaged", "then"),
    [
        (  # it said what deleting costs an unfinished group alone (timing again)
            "status.json",
            "delete it: the next run finds each group's progress in its checkpoints, but not the "
            "strategy `auto` chose for a group and its timings, which only this file keeps: an "
            "unfinished group times the strategies again, a finished one is recorded as trained "
            "by `auto`, its choice and timings lost.",
        ),
        ("cells.parquet", "delete it, then continue the bench"),
        ("blurbs/mlp-1a2b.json", "delete it, then continue the bench"),
        # a finished bench holding the blurb writes no graph: 'delete it' alone left none
        ("graphs/mlp-1a2b.json", "delete it and the model's blurb (blurbs/ holds it"),
        ("profile/phases.p1of2.parquet", "it holds only the profile"),
        # it said its rows could not be made again: they train again from the start
        ("results/part-mlp-1a2b-000000001.parquet", "Its rows are trained again from the start"),
    ],
)
def test_a_damaged_file_read_by_the_viewer_export_or_profile_is_said_with_what_to_do(
    tmp_path, damaged, then
):
    """They named the file and why it could not be read, and said nothing to do."""
    (tmp_path / _layout.MARKER).write_text('{"format": 1}')
    (tmp_path / damaged).parent.mkdir(exist_ok=True)
    (tmp_path / damaged).write_bytes(b"PAR1 cut off")
    bench = BenchFiles(tmp_path)
    read = bench.json if damaged.endswith(".json") else bench.table
    said = rf"^cannot read {re.escape(damaged)}: .+; phosjax writes it whole.*{re.escape(then)}"
    with pytest.raises(BrokenFileError, match=said):
        read(damaged)


@pytest.mark.parametrize("stored", ["models: [mlp\n", "\xff", "# emptied\n", "null\n"])
def test_a_damaged_stored_config_is_said_with_what_to_do(tmp_path, stored):
    """It named the file and its YAML error, and said nothing to do; an empty one said
    to write a key in it ('models: [mlp]'), another config than the bench's."""
    (tmp_path / _layout.MARKER).write_text('{"format": 1}')
    (tmp_path / _layout.CONFIG).write_text(stored, "latin-1")
    said = r"(?s)config\.yaml' (is|holds) .*It is the bench's stored config: .*restore it from a"
    with pytest.raises(BenchError, match=said) as raised:
        open_bench(tmp_path)
    assert "give at least one key" not in str(raised.value)


def test_a_stored_config_the_system_would_not_read_is_not_said_to_be_damaged(tmp_path, monkeypatch):
    """Its permissions (or the disk) were said as 'something else changed it; restore it'."""
    (tmp_path / _layout.MARKER).write_text('{"format": 1}')
    (tmp_path / _layout.CONFIG).write_text("models: [mlp]\n")
    read_text = pathlib.Path.read_text

    def refused(path, *args, **kwargs):
        if path.name == _layout.CONFIG:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return read_text(path, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "read_text", refused)
    said = r"Permission denied.*\nIt is the bench's stored config: the system would not read it"
    with pytest.raises(BenchError, match=said) as raised:
        open_bench(tmp_path)
    assert "writes it whole" not in str(raised.value)


def test_the_viewer_reads_a_parquet_file_a_run_replaces_meanwhile_as_it_was_opened(
    tmp_path, monkeypatch
):
    """Given the path, pyarrow opened the file twice: a profile replaced in between (a run
    rewrites it each segment) was read torn, 'OSError: Unexpected end of stream', said
    to be damaged; read through one open file, it is the version opened."""
    (tmp_path / _layout.MARKER).write_text('{"format": 1}')
    path = tmp_path / _layout.PHASES
    _store.write_table(path, pd.DataFrame({"seconds": [1.0]}))
    read, written = pd.read_parquet, [1.0]

    def replaced_meanwhile(source, *args, **kwargs):
        written.append(written[-1] + 1)  # a run's next write
        _store.write_table(path, pd.DataFrame({"seconds": written[-1:]}))
        return read(source, *args, **kwargs)

    monkeypatch.setattr(pd, "read_parquet", replaced_meanwhile)
    assert BenchFiles(tmp_path).table(_layout.PHASES).seconds.tolist() == [1.0]
    assert read_profile(tmp_path, _layout.PHASES).seconds.tolist() == [2.0]


def test_a_bench_file_the_system_would_not_read_is_not_said_to_be_damaged(tmp_path, monkeypatch):
    """Its permissions (or the disk) were said as a damaged file, to delete or move out."""
    (tmp_path / _layout.MARKER).write_text('{"format": 1}')
    (tmp_path / _layout.STATUS).write_text('{"groups": {}}')
    _store.write_table(tmp_path / _layout.PHASES, pd.DataFrame({"seconds": [1.0]}))

    def refused(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(pathlib.Path, "read_text", refused)
    monkeypatch.setattr(pd, "read_parquet", refused)
    said = r"Permission denied; the system would not read it, whatever it holds: let this user"
    with pytest.raises(BrokenFileError, match=said) as viewer:
        BenchFiles(tmp_path).json(_layout.STATUS)
    with pytest.raises(BrokenFileError, match=said) as profile:
        read_profile(tmp_path, _layout.PHASES)
    assert "writes it whole" not in f"{viewer.value}{profile.value}"


def test_a_full_disk_as_the_lock_is_written_names_the_lock_file(tmp_path, monkeypatch):
    """It named no file ('error: [Errno 28] No space left on device; free space on its
    disk'), raised again as the lock file closed, its buffer written again."""

    def no_room(descriptor, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patched, pytest.raises(OSError) as raised:
        patched.setattr(os, "write", no_room)
        with locked(tmp_path, (0, 1)):
            pass
    assert raised.value.filename == str(tmp_path / _layout.LOCK)


class _FullDisk(io.StringIO):
    """A command's stdout redirected to a file on a full disk: its buffer, written as it
    is flushed, finds no room."""

    name = "<stdout>"

    def flush(self) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_under_stdout_is_one_error_line_naming_stdout(capsys, monkeypatch):
    """Its output buffered (as by default), the command said nothing and exited 0, then
    Python's 'Exception ignored ... OSError' at exit (status 120); unbuffered, the error
    named no file."""

    @_cli.entry_point("nothing was changed (profile only reads the bench).")
    def main(argv=None):
        print("the profile")

    monkeypatch.setattr(sys, "stdout", _interrupt._PipeWatched(_FullDisk()))
    assert main([]) == 1
    assert capsys.readouterr().err == (
        "error: [Errno 28] No space left on device: '<stdout>'; free space on its disk, then: "
        "nothing was changed (profile only reads the bench).\n"
    )


def test_a_reading_commands_stdout_on_a_disk_turned_read_only_says_to_mount_it_read_write(
    capsys, monkeypatch
):
    """``profile > file`` on a disk the system turned read-only (ext4's errors=remount-ro)
    was told to 'let this user read it (its permissions, those of its folder)'."""

    class ReadOnlyDisk(_FullDisk):
        def flush(self) -> None:
            raise OSError(errno.EROFS, "Read-only file system")

    @_cli.entry_point("nothing was changed (profile only reads the bench).", reads_only=True)
    def main(argv=None):
        print("the profile")

    monkeypatch.setattr(sys, "stdout", _interrupt._PipeWatched(ReadOnlyDisk()))
    assert main([]) == 1
    assert capsys.readouterr().err == (
        "error: [Errno 30] Read-only file system: '<stdout>'; mount its disk read-write (it is "
        "read-only), then: nothing was changed (profile only reads the bench).\n"
    )


def test_a_full_disk_under_stderr_too_ends_the_command_with_its_status(monkeypatch):
    """The error line, written to a stderr on the full disk, raised again: a traceback."""

    class FullStderr(_FullDisk):
        name = "<stderr>"

        def write(self, text: str) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    @_cli.entry_point("nothing was changed (profile only reads the bench).")
    def main(argv=None):
        raise OSError(errno.ENOSPC, "No space left on device", "<stderr>")

    monkeypatch.setattr(sys, "stderr", FullStderr())
    assert main([]) == 1
