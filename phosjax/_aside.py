"""An unused ``<name>.old-<time>`` sibling to move a file or folder to instead of deleting it."""

import datetime
import os
import pathlib


def aside_path(path: pathlib.Path) -> pathlib.Path:
    """A sibling of ``path`` named ``<name>.old-<YYYYmmdd-HHMMSS>[-n]`` that does not exist yet;
    ``<name>`` cut short, by whole characters, where the whole would take more bytes than a
    name in that folder may (a name already near the limit: the sibling's name was refused,
    "File name too long").

    The bench's ``--force`` and the morph loop's ``--overwrite`` move earlier results there,
    so starting over never deletes them.

    >>> import pathlib, tempfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "rows.parquet").write_text("earlier")
    7
    >>> aside_path(root / "rows.parquet").name.startswith("rows.parquet.old-")
    True
    >>> long = aside_path(root / ("b" * 250)).name  # 250 + 20 bytes: more than 255
    >>> len(long), long.startswith("b" * 235 + ".old-")
    (255, True)
    """
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    most = os.pathconf(path.parent, "PC_NAME_MAX")  # bytes
    suffix = 0
    while True:
        tail = f".old-{stamp}" + (f"-{suffix}" if suffix else "")
        kept = path.name
        while len(os.fsencode(kept + tail)) > most:  # as the system stores it, undecodable too
            kept = kept[:-1]
        target = path.with_name(kept + tail)
        if not target.exists():
            return target
        suffix += 1
