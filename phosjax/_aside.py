"""An unused ``<name>.old-<time>`` sibling to move a file or folder to instead of deleting it."""

import datetime
import pathlib


def aside_path(path: pathlib.Path) -> pathlib.Path:
    """A sibling of ``path`` named ``<name>.old-<YYYYmmdd-HHMMSS>[-n]`` that does not exist yet.

    The bench's ``--force`` and the morph loop's ``--overwrite`` move earlier results there,
    so starting over never deletes them.

    >>> import pathlib, tempfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "rows.parquet").write_text("earlier")
    7
    >>> aside_path(root / "rows.parquet").name.startswith("rows.parquet.old-")
    True
    """
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.old-{stamp}")
    suffix = 1
    while target.exists():
        target, suffix = path.with_name(f"{path.name}.old-{stamp}-{suffix}"), suffix + 1
    return target
