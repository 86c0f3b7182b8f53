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
