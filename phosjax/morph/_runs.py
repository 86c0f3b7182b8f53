"""`read_runs`: the rows of several morph runs in one frame, each run's config as columns."""

import json
import os
import pathlib

import pandas as pd
import pyarrow as pa

from phosjax.bench._reading import read_parquet
from phosjax.morph._loop import (
    ITERATIONS,
    MORPH_CONFIG,
    RESOLVED_DATASET,
    RunDirectoryError,
    _check_run_directory,
    _lacking_columns,
    _morph_command,
    _no_run,
)


def read_runs(*directories: str | os.PathLike) -> pd.DataFrame:
    """The rows of the morph runs in ``directories`` (as `run` writes them) in one frame.

    ``pd.concat`` of runs' ``iterations.parquet`` keeps their ``attrs`` (the config) only
    where every run's is equal, and drops them without a word otherwise. Here each row
    carries its run's: the column ``run`` (its directory, as given), one column per
    `MorphConfig` field (``model``, and ``features`` or ``splits`` where given: as JSON,
    ``'["train", "val"]'``), ``resolved_dataset``
    (None for a run written before it was stored), then the rows' own columns. So runs of
    other strengths compare by ``frame.groupby(["strength", "kind"]).accuracy.mean()``.

    Raises:
      RunDirectoryError: a directory holds no ``morph/iterations.parquet`` (its
        ``morph`` folder or that file, given instead, name the run's directory), its
        metadata holds no run config (not written by `run`), it lacks the rows' columns,
        or it cannot be read (cut short, not Parquet; the message names it and its run),
        as `load_variables` says.
      ValueError: no directory is given.
      TypeError: a directory is no path (a list of them: ``read_runs(*directories)``).

    Examples:
      >>> read_runs("runs/none")
      Traceback (most recent call last):
      phosjax.morph._loop.RunDirectoryError: 'runs/none' holds no morph run: it has no
      morph/iterations.parquet (python -m phosjax.morph --config CONFIG.yaml --dir runs/none
      writes one)
    """
    if not directories:
        raise ValueError("read_runs needs the directory of at least one run, e.g. 'runs/morph'")
    frames = []
    for directory in directories:
        _check_run_directory(
            directory,
            "read_runs",
            "one run directory per argument: read_runs('runs/a', 'runs/b'), or "
            "read_runs(*directories)",
        )
        path = pathlib.Path(directory) / ITERATIONS
        if not path.is_file():
            raise RunDirectoryError(_no_run(directory))
        try:
            rows = read_parquet(path)  # one open file: a run may replace it meanwhile
        except (ValueError, pa.ArrowException) as error:  # cut short, or not Parquet
            raise RunDirectoryError(
                f"cannot read {str(path)!r}, the rows of the morph run {os.fspath(directory)!r}"
                f" ({type(error).__name__}: {error}); the file is damaged: leave that run out, "
                f"or run it again ({_morph_command(directory, '--overwrite')} moves the file "
                "aside)"
            ) from error
        config = rows.attrs.get(MORPH_CONFIG)
        if not isinstance(config, dict):
            raise RunDirectoryError(
                f"{str(path)!r} holds no run config in its metadata (attrs[{MORPH_CONFIG!r}]): "
                "phosjax.morph.run did not write it"
            )
        lacking = _lacking_columns(rows)
        if lacking:  # the frame lacked them without a word
            raise RunDirectoryError(
                f"{str(path)!r}, the rows of the morph run {os.fspath(directory)!r}, holds no "
                f"rows of phosjax.morph.run: it has {lacking}; leave that run out, or run it "
                f"again ({_morph_command(directory, '--overwrite')} moves the file aside)"
            )
        columns = {
            "run": os.fspath(directory),
            **{
                field: json.dumps(value) if isinstance(value, list | dict) else value
                for field, value in config.items()
            },
            RESOLVED_DATASET: rows.attrs.get(RESOLVED_DATASET),
        }
        frames.append(pd.DataFrame(columns, index=rows.index).join(rows))
    frame = pd.concat(frames, ignore_index=True)
    frame.attrs = {}  # kept by concat where every run's are equal: the columns hold them
    return frame
