"""The bench's progress bar: its time left, with a fake clock."""

import io

from phosjax.bench._progress import TrainingBar


def test_time_left_leaves_compile_out_of_the_rate():
    """Two groups of 400 cell-steps, each compiling 10 s then training 100 steps in 0.5 s:
    after the first group's second chunk, 13 s are left (its 200 steps and the other's
    400 at 200 step/s, and the other's compile), where tqdm's rate, the compile in it,
    said minutes; ``?`` before the second chunk, which times a chunk that compiles not."""
    now = [0.0]
    out = io.StringIO()
    bar = TrainingBar(groups=2, total=800, file=out, mininterval=0, clock=lambda: now[0])
    bar.group_started()
    now[0] = 10.5
    bar.chunk(100)
    assert "<?," in out.getvalue().rsplit("\r", 1)[-1]
    now[0] = 11.0
    bar.chunk(100)
    assert "<00:13," in out.getvalue().rsplit("\r", 1)[-1]
    bar.close()
