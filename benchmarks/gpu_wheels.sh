#!/usr/bin/env bash
# Fetches, HERE (where pip reaches PyPI), the wheels that the device tool's GPU image lacks
# for `benchmarks/gpu_speed.sh` into .whl/ (git-ignored); name `.whl` in the run's carry.
#
#   bash benchmarks/gpu_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl \
  "jsonargparse>=4.40" typeshed-client docstring-parser
ls .whl
