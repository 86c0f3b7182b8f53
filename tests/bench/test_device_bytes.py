"""Device memory as the profile reports it, on several devices."""

import math

from phosjax.bench._profile import device_bytes


class FakeDevice:
    def __init__(self, stats: dict[str, int] | None) -> None:
        self.stats = stats

    def memory_stats(self) -> dict[str, int] | None:
        return self.stats


def test_the_peak_is_one_devices_and_the_bytes_in_use_all_devices():
    """Four devices that each peaked at 3 GiB peaked at 3 GiB per device, not 12 GiB:
    ``peak_bytes`` stands beside ``program_bytes``, what one device needs."""
    gib = 2**30
    devices = [FakeDevice({"bytes_in_use": gib, "peak_bytes_in_use": 3 * gib}) for _ in range(3)]
    devices.append(FakeDevice({"bytes_in_use": 2 * gib, "peak_bytes_in_use": 4 * gib}))
    assert device_bytes(devices) == (5.0 * gib, 4.0 * gib)  # type: ignore[arg-type]


def test_devices_that_report_nothing_give_nan():
    assert all(math.isnan(v) for v in device_bytes([FakeDevice(None)] * 2))  # type: ignore[list-item]
