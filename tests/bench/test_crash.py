"""A bench command that a full disk or a damaged file stops: what it says, what it keeps."""

import errno
import os

from phosjax.bench import _cli, _store


def _no_room(descriptor):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_is_one_error_line_naming_the_file_and_the_command_that_continues(
    tmp_path, capsys, monkeypatch
):
    target = tmp_path / "status.json"
    target.write_text("{}")
    monkeypatch.setattr(os, "fsync", _no_room)

    @_cli.entry_point(_cli.kept_in_bench("phosjax.bench.new"))
    def main(argv=None):
        _store.write_text(target, '{"groups": {}}')

    assert main(["--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: [Errno 28] No space left on device: {str(target)!r}; free ")
    assert f"the same command starts it: python -m phosjax.bench.new --dir {tmp_path}" in err
    assert "Traceback" not in err and target.read_text() == "{}"
