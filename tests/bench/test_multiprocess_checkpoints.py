"""`Checkpoints` are files of this process alone: whole or absent, checked on restore."""

import builtins
import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phosjax.bench import BenchError
from phosjax.bench._checkpoint import Checkpoints


def state(value: int) -> dict:
    """A group state's kinds of leaves: float32, bfloat16 and int32, under odd names."""
    return {
        "params": {
            "w": jnp.full((2, 3), value, jnp.float32),
            "**/T": jnp.full(2, value, jnp.bfloat16),
        },
        "step": jnp.full(2, value, jnp.int32),
    }


def test_saves_keep_the_newest_and_restore_as_saved(tmp_path):
    checkpoints = Checkpoints(tmp_path / "group", keep=2)
    assert checkpoints.latest() is None
    for step in (5, 10, 15):
        checkpoints.save(step, state(step))
    assert sorted(p.name for p in (tmp_path / "group").iterdir()) == ["10", "15"]
    assert checkpoints.latest() == 15
    restored = checkpoints.restore(15, state(0))
    for got, want in zip(jax.tree.leaves(restored), jax.tree.leaves(state(15)), strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_a_newest_checkpoint_cut_short_is_passed_over(tmp_path):
    checkpoints = Checkpoints(tmp_path, keep=2)
    checkpoints.save(5, state(5))
    checkpoints.save(10, state(10))
    whole = (tmp_path / "10").read_bytes()
    (tmp_path / "10").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "20").mkdir()  # not a checkpoint file (an orbax one of older benches)
    assert checkpoints.latest() == 5
    assert checkpoints.passed_over() == [tmp_path / "10"]


def test_a_save_replaces_an_orbax_folder_of_its_step(tmp_path):
    """phosjax before 2026-12-03 saved each checkpoint as an orbax folder named by its
    step, which `latest` passes over: a stopped bench of it resumed from the start, then
    its save of such a step failed (IsADirectoryError: ... '10') and the run ended."""
    (tmp_path / "10" / "default").mkdir(parents=True)
    (tmp_path / "10" / "_CHECKPOINT_METADATA").write_text("{}")
    checkpoints = Checkpoints(tmp_path, keep=2)
    assert checkpoints.latest() is None
    checkpoints.save(5, state(5))
    checkpoints.save(10, state(10))
    assert checkpoints.latest() == 10 and (tmp_path / "10").is_file()
    np.testing.assert_array_equal(checkpoints.restore(10, state(0))["step"], [10, 10])


def test_checkpoints_cut_short_do_not_count_among_those_kept(tmp_path):
    """Two newer files cut short were the two kept: a save deleted the whole checkpoint
    before it, then itself, so a resume started over."""
    checkpoints = Checkpoints(tmp_path, keep=2)
    checkpoints.save(5, state(5))
    for cut in (20, 25):
        (tmp_path / str(cut)).write_bytes(b"PK")
    checkpoints.save(10, state(10))
    assert checkpoints.latest() == 10
    assert sorted(int(p.name) for p in tmp_path.iterdir()) == [5, 10, 20, 25]
    checkpoints.save(15, state(15))
    assert sorted(int(p.name) for p in tmp_path.iterdir()) == [10, 15, 20, 25]
    checkpoints.save(20, state(20))  # replaces the file cut short
    assert checkpoints.latest() == 20


def test_a_checkpoint_of_another_state_is_refused_by_name(tmp_path):
    checkpoints = Checkpoints(tmp_path)
    checkpoints.save(5, state(5))
    other = {**state(0), "params": {"w": jnp.zeros((2, 4)), "b": jnp.zeros(2)}}
    with pytest.raises(BenchError) as raised:
        checkpoints.restore(5, other)
    message = str(raised.value)
    assert f"checkpoint '{tmp_path / '5'}' does not hold this group's training state" in message
    assert "unexpected leaves [\"['params']['**/T']\"]" in message
    assert "['params']['w']: expected float32(2, 4), found float32(2, 3)" in message
    assert "['params']['b']: expected float32(2,), found nothing" in message


@pytest.mark.parametrize("reading", ["latest", "restore"])
def test_a_checkpoint_the_system_will_not_read_is_named_not_passed_over(
    tmp_path, monkeypatch, reading
):
    """A checkpoint this user may not read (or a failing disk's) is not cut short: a
    resume passed it over, saying so, and trained its steps again from the one before;
    restored, it was said to be damaged. Either names it and what to do."""
    checkpoints = Checkpoints(tmp_path)
    checkpoints.save(5, state(5))
    checkpoints.save(10, state(10))
    newest, opened = tmp_path / "10", builtins.open

    def refusing(file, *args, **kwargs):
        if str(file) == str(newest):
            raise PermissionError(13, "Permission denied", str(file))
        return opened(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing)  # numpy's
    monkeypatch.setattr(io, "open", refusing)  # zipfile's
    message = rf"cannot read checkpoint '{newest}': \[Errno 13\] Permission denied: .* Let "
    with pytest.raises(BenchError, match=message + "this user read it"):
        if reading == "latest":
            checkpoints.latest()
        else:
            checkpoints.restore(10, state(0))


def test_a_checkpoint_whose_zip_index_is_damaged_is_said_damaged_not_unreadable(tmp_path):
    """A flipped byte in the archive's index points zipfile's seek before the file's start,
    an OSError (EINVAL) from its bytes, not from the system: it was said to be a file this
    user may not read ('Let this user read it (its permissions ...')."""
    checkpoints = Checkpoints(tmp_path)
    checkpoints.save(5, state(5))
    damaged = bytearray((tmp_path / "5").read_bytes())
    damaged[-3] ^= 0xFF  # the high byte of the central directory's offset (no comment)
    (tmp_path / "5").write_bytes(bytes(damaged))
    with pytest.raises(BenchError, match=r"Invalid argument\. It was written whole, so some"):
        checkpoints.restore(5, state(0))


@pytest.mark.parametrize("reading", ["latest", "restore"])
def test_a_checkpoint_of_a_damaged_zip_version_is_damaged_not_a_bare_error(tmp_path, reading):
    """A damaged byte read as the zip version needed raised zipfile's bare
    NotImplementedError ('zip file version 25.5'), stopping the run naming no file."""
    checkpoints = Checkpoints(tmp_path)
    checkpoints.save(5, state(5))
    damaged = bytearray((tmp_path / "5").read_bytes())
    damaged[damaged.index(b"PK\x01\x02") + 6] = 255  # version needed to extract: 25.5
    (tmp_path / "5").write_bytes(bytes(damaged))
    if reading == "latest":
        assert checkpoints.latest() is None  # passed over, as a file cut short
    else:
        with pytest.raises(BenchError, match=r"'.*5': NotImplementedError: zip file version 25"):
            checkpoints.restore(5, state(0))


def test_a_refused_read_is_its_own_error_class_a_damaged_one_is_not(tmp_path, monkeypatch):
    """morph told the two apart by the error's __cause__ and errno, a second time after
    `_read` had: decode raises `RefusedError` for the first, its cause the system's."""
    from phosjax.bench._checkpoint import RefusedError, decode

    Checkpoints(tmp_path).save(5, state(5))
    (tmp_path / "6").write_bytes((tmp_path / "5").read_bytes()[:100])  # cut short
    with pytest.raises(BenchError) as damaged:
        decode(tmp_path / "6", state(0))
    assert type(damaged.value) is BenchError
    refusal = PermissionError(13, "Permission denied", str(tmp_path / "5"))

    def refusing(*args, **kwargs):
        raise refusal

    monkeypatch.setattr(builtins, "open", refusing)  # numpy's
    monkeypatch.setattr(io, "open", refusing)  # zipfile's
    with pytest.raises(RefusedError) as refused:
        decode(tmp_path / "5", state(0))
    assert refused.value.__cause__ is refusal
    assert str(refused.value).startswith(
        f"cannot read checkpoint {str(tmp_path / '5')!r}: [Errno 13] Permission denied: "
    )
