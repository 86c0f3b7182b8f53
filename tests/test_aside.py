"""`aside_path`: an unused sibling to move a file or folder to."""

import os

import pytest

from phosjax._aside import aside_path

E = "é".encode()  # 2 bytes


@pytest.mark.parametrize(
    ("name", "kept"),
    [(b"b\xff", b"b\xff"), (b"\xff\xfe" + E * 126, b"\xff\xfe" + E * 116)],
    ids=["short", "long"],
)
def test_a_name_the_system_cannot_decode_is_moved_aside(tmp_path, name, kept):
    """A folder whose name is not UTF-8 (held as surrogates, '\\udcff') failed with
    UnicodeEncodeError; its bytes are kept, a long one cut by whole characters to fit 255
    bytes with .old-<time> (2 + 116 * 2 + 20: half of a 117th é would make 255)."""
    path = tmp_path / os.fsdecode(name)
    path.mkdir()
    target = aside_path(path)
    os.replace(path, target)
    assert os.fsencode(target.name).split(b".old-")[0] == kept
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
