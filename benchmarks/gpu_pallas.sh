#!/usr/bin/env bash
# The 2D CNN grid's convolutions as Pallas (Triton) kernels on a GPU, in one short device-tool
# run (under 5 minutes): first the kernels against lax at small sizes, and the cnn2d grid's
# convolutions' outputs and gradients against lax's and its loss against jax.vmap's for
# each block choice, then the
# grid's bare Adam step with them against conv_forms.py's vmap, vmap_matmul_fwd and fused,
# K = 64 then 8, float32 then bfloat16. Each step runs under its own `timeout`; the output
# is teed to OUT/pallas-*.txt.
# Further arguments go to every pallas_conv.py call (later ones win), e.g. a smoke run on
# a CPU: bash benchmarks/gpu_pallas.sh /tmp/out --interpret --sizes 2 --batch 8 --steps 1
#
#   run(command="bash benchmarks/gpu_pallas.sh $OUT", timeout_s=330)
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu_pallas.sh OUT_DIR [PALLAS_CONV_ARGS...]}
shift
cd "$(dirname "$0")/.."
mkdir -p "$out"
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
blocks="64,32,32,8,4 128,64,32,8,4 32,32,32,16,2"  # pixels,outs,ins,split,warps
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c "import jax; print('jax', jax.__version__, jax.devices())"
  # shellcheck disable=SC2086  # one argument per block
  timeout 60 python3 benchmarks/pallas_conv.py --check --blocks $blocks "$@" || echo "== check: exit $?"
} 2>&1 | tee "$out/pallas-check.txt"
for run in float32:120 bfloat16:95; do
  IFS=: read -r dtype limit <<<"$run"
  echo "== cnn2d $dtype ($limit s)"
  # shellcheck disable=SC2086
  timeout "$limit" python3 benchmarks/pallas_conv.py --dtype "$dtype" --sizes 64,8 --steps 10 \
    --rounds 3 --blocks $blocks "$@" || echo "== cnn2d $dtype: exit $?"
done 2>&1 | tee "$out/pallas-steps.txt"
