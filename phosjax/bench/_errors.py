"""`BenchError` and `BrokenFileError`: bad bench input; a module without jax, so that
reading results is light."""


class BenchError(ValueError):
    """Bad bench input: a config, a directory or a name; the message says what is right.

    Examples:
      >>> raise BenchError("eval_every must be a whole number >= 0, got -1.")
      Traceback (most recent call last):
      phosjax.bench._errors.BenchError: eval_every must be a whole number >= 0, got -1.
    """


class BrokenFileError(BenchError):
    """A bench file that cannot be read (cut off, not JSON or Parquet); names the file and
    says what to do (`phosjax.bench._reading.read_file` raises it).

    Examples:
      >>> import pathlib, tempfile
      >>> from phosjax.bench.view import BenchFiles
      >>> bench = pathlib.Path(tempfile.mkdtemp())
      >>> _ = (bench / "bench.json").write_text('{"format": 1}')
      >>> _ = (bench / "status.json").write_text("{")  # cut off
      >>> BenchFiles(bench).status()
      Traceback (most recent call last):
      phosjax.bench._errors.BrokenFileError: cannot read status.json: JSONDecodeError:
      Expecting property name enclosed in double quotes: line 1 column 2 (char 1); phosjax
      writes it whole, so something else changed it; restore it from a backup, or delete ...
    """
