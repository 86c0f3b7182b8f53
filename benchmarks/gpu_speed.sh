#!/usr/bin/env bash
# The GPU figures of docs/performance.md in one device-tool run, sized to fit its limits.
#
# Here:   bash benchmarks/gpu_wheels.sh
# There:  run(command="bash benchmarks/gpu_speed.sh $OUT", carry=[".whl"], timeout_s=600)
#
# Every model is its own `phosjax.bench.speed` run under `timeout` (SECONDS each, default 85),
# so one that runs long still leaves the others: float32 for all four models, bfloat16 for
# the MLP and the 2D CNN (the precision the CNN target is about); RUNS="dtype:model[:seconds] ..."
# picks others, each with its own limit if given (e.g. RUNS="float32:cnn2d:150 bfloat16:cnn2d"). The results
# (gpu/<dtype>/<model>/speed.{parquet,txt,png}) come back as OUT/speed-gpu.tgz, the
# output as OUT/speed-gpu.log, which starts with nvidia-smi's line for the device. Further
# arguments go to every bench (a smoke run: bash benchmarks/gpu_speed.sh /tmp/out 60 --quick).
# Timings last at least 0.1 s (--min_time; 0.25 by default), to keep each model's run
# within its limit; a run cut off keeps the (model, K) it finished.
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu_speed.sh OUT_DIR [SECONDS_PER_RUN [BENCH_ARGS...]]}
seconds=${2:-85}
shift $(($# < 2 ? $# : 2))
cd "$(dirname "$0")/.."
work=$(mktemp -d)
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.6  # leaves room for the torch column
trap 'tar -C "$work" -czf "$out/speed-gpu.tgz" gpu' EXIT
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c "import jax, torch; print('jax', jax.__version__, jax.devices(), 'torch', torch.__version__)"
  for run in ${RUNS:-float32:mlp float32:cnn1d float32:cnn2d float32:transformer bfloat16:mlp bfloat16:cnn2d}; do
    IFS=: read -r dtype model limit <<<"$run"
    echo "== $model $dtype (${limit:-$seconds} s)"
    timeout "${limit:-$seconds}" python3 -m phosjax.bench.speed --models "$model" --compute_dtype "$dtype" \
      --min_time 0.1 --no_progress --out "$work/gpu/$dtype/$model" "$@" \
      || echo "== $model $dtype: exit $?"
  done
} 2>&1 | tee "$out/speed-gpu.log"
