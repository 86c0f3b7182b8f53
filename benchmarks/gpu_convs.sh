#!/usr/bin/env bash
# The engine's convolutions as matmuls on a GPU, in one short device-tool run (~6 minutes):
# the speed bench's CNNs with `--strategy vmap_matmul` (no `auto`: one compile per K),
# the 2D CNN's bare step in each form (conv_forms.py), the MLP grid with XLA:GPU's
# command buffers around loops too (`+WHILE,+CONDITIONAL`) against its defaults, and
# where the 2D CNN grid's step spends its time as matmuls (step_profile.py).
#
# Here:   bash benchmarks/gpu_wheels.sh
# There:  run(command="bash benchmarks/gpu_convs.sh $OUT", carry=[".whl"], timeout_s=420)
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu_convs.sh OUT_DIR}
cd "$(dirname "$0")/.."
RUNS="float32:cnn2d:75 bfloat16:cnn2d:45 float32:cnn1d:45" bash benchmarks/gpu_speed.sh "$out" 60 \
  --sizes 8,64 --methods engine,fused,torch --strategy vmap_matmul
export PYTHONPATH="$PWD:/tmp/site" PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=0.6
timeout 60 python3 benchmarks/conv_forms.py --models cnn2d --sizes 64 --rounds 3 2>&1 \
  | tee "$out/conv-forms.txt"
for flags in "" "--xla_gpu_enable_command_buffer=+WHILE,+CONDITIONAL"; do
  echo "== mlp, XLA_FLAGS=$flags"
  XLA_FLAGS=$flags timeout 35 python3 -m phosjax.bench.speed --models mlp --sizes 64 \
    --methods vmap,engine,fused --strategy vmap --min_time 0.1 --no_progress --out "/tmp/mlp$RANDOM"
done 2>&1 | tee "$out/command-buffers.txt"
timeout 75 python3 benchmarks/step_profile.py --model cnn2d --k 64 --strategies vmap_matmul 2>&1 \
  | tee "$out/step-profile.txt"
