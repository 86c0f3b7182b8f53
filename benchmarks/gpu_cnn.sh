#!/usr/bin/env bash
# The CNN grid's figures on a GPU in one device-tool run (under 10 minutes): the speed
# bench's CNNs at K = 8 and 64 (gpu_speed.sh; the 2D CNN 165 s per precision, the 1D 60 s),
# then where a step's time goes (step_profile.py: cnn2d and the MLP at K = 64) and the
# bare steps with XLA's convolutions and as matmuls (conv_forms.py), each under its own
# time limit.
#
# Here:   bash benchmarks/gpu_wheels.sh
# There:  run(command="bash benchmarks/gpu_cnn.sh $OUT", carry=[".whl"], timeout_s=600)
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu_cnn.sh OUT_DIR}
cd "$(dirname "$0")/.."
RUNS="float32:cnn2d:165 bfloat16:cnn2d:165 float32:cnn1d:60" bash benchmarks/gpu_speed.sh "$out" 120 \
  --sizes 8,64 --methods vmap,engine,fused,torch
export PYTHONPATH="$PWD:/tmp/site" PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=0.6
for run in "75 --model cnn2d --k 64 --strategies vmap,vmap_matmul" \
           "35 --model mlp --k 64 --strategies vmap,map"; do
  echo "== step_profile.py ${run#* }"
  timeout ${run%% *} python3 benchmarks/step_profile.py ${run#* } || echo "== exit $?"
done 2>&1 | tee "$out/step-profile.txt"
timeout 60 python3 benchmarks/conv_forms.py --models cnn2d --sizes 64 --dtype bfloat16 2>&1 \
  | tee "$out/conv-forms.txt"
