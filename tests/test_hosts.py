import jax
import pytest

from phosjax._hosts import local_devices


def test_devices_that_are_no_devices_are_shown_cut():
    """A long list (of device ids, say) was shown whole in the message."""
    with pytest.raises(TypeError) as raised:
        local_devices(list(range(1000)), "run_group")
    assert str(raised.value) == (
        "run_group: devices must be a sequence of jax devices, e.g. jax.local_devices()[:2] "
        "or [jax.local_devices()[0]], got [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, "
        "16, …"
    )


def test_a_device_listed_again_is_named_once():
    """The whole list was shown (a device listed 1000 times: 1000 reprs)."""
    device = jax.local_devices()[0]
    with pytest.raises(ValueError) as raised:
        local_devices([device] * 1000, "run_group")
    assert str(raised.value) == (
        f"run_group: devices lists a device more than once ({device!r}); each device holds "
        "its own block of cells, so name each at most once."
    )
