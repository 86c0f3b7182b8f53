"""What an `ArrayDataset` of writable arrays costs: the copy it makes of them.

Run: ``python benchmarks/dataset_copy.py [--train 50000] [--repeats 3]``

Makes writable uint8 images of 32x32x3 (``--train`` train and a fifth as many test), then
times ``ArrayDataset`` of them ``--repeats`` times (each copies them: the first also touches
its new memory) and of the same arrays made read-only (kept as they are, nothing copied),
in this one run.
"""

import argparse
import time

import numpy as np

from phosjax.data import ArrayDataset


def seconds(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> float:
    """Seconds of one ``ArrayDataset`` of the four arrays."""
    start = time.perf_counter()
    ArrayDataset("c", x, y, x_test, y_test, 10, (32, 32, 3))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=50_000, help="train images (%(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="datasets made (%(default)s)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    images = lambda n: rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = lambda n: rng.integers(0, 10, n, dtype=np.int32)
    arrays = (
        images(args.train),
        labels(args.train),
        images(args.train // 5),
        labels(args.train // 5),
    )
    copied = [seconds(*arrays) for _ in range(args.repeats)]
    for array in arrays:
        array.flags.writeable = False
    kept = [seconds(*arrays) for _ in range(args.repeats)]
    mib = sum(a.nbytes for a in arrays) / 2**20
    print(f"{mib:.0f} MiB of arrays, {args.repeats} datasets each way:")
    print(f"writable (copied): {', '.join(f'{s:.3f}' for s in copied)} s")
    print(f"read-only (kept): {', '.join(f'{s:.4f}' for s in kept)} s")


if __name__ == "__main__":
    main()
