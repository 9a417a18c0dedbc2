#!/usr/bin/env bash
# One sitting: Strata, llama.cpp and Hugging Face transformers on the same machine, model and
# shapes, one after another, results under $OUT. llama.cpp is built outside the repository from
# the PyPI sdist of llama-cpp-python (see BENCHMARKS.md); point LLAMA_BIN at its build/bin and
# LLAMA_MODEL at the F32 dequantization of the default model. PYTHON must have torch,
# transformers, accelerate (its GGUF loader needs it) and gguf.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/strata-sitting}
MODEL=${MODEL:-$HOME/.cache/strata/models/SmolLM2-135M-Instruct.Q4_1.gguf}
THREADS=${THREADS:-2}
mkdir -p "$OUT"
S=.build/release/strata
date -u +%FT%TZ > "$OUT/date"
lscpu > "$OUT/lscpu"
echo "== strata: simd and blas backends (environment as set: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto})"
$S bench --model "$MODEL" --backend simd,blas --threads "$THREADS" --batch 1,4,8,16,32 -p 128,512 -n 128 -r 3 --format json > "$OUT/strata.json"
if [ -n "${SKYLAKEX:-}" ]; then
  echo "== strata blas (OPENBLAS_CORETYPE=SkylakeX, AVX-512 kernels)"
  OPENBLAS_CORETYPE=SkylakeX $S bench --model "$MODEL" --backend blas --threads "$THREADS" --batch 1,4,8,16,32 -p 128,512 -n 128 -r 3 --format json > "$OUT/strata-skylakex.json"
fi
if [ -n "${LLAMA_BIN:-}" ]; then
  echo "== llama.cpp"
  "$LLAMA_BIN/llama-bench" -m "$LLAMA_MODEL" -t "$THREADS" -p 128,512 -n 128 -r 3 -o json > "$OUT/llama-bench.json"
  "$LLAMA_BIN/llama-batched-bench" -m "$LLAMA_MODEL" -t "$THREADS" -c 8192 -b 2048 -ub 512 -npp 128 -ntg 128 -npl 1,4,8,16,32 > "$OUT/llama-batched.txt" 2>&1
fi
if [ -n "${PYTHON:-}" ]; then
  echo "== transformers"
  "$PYTHON" Benchmarks/peers/transformers_bench.py --model "$MODEL" --threads "$THREADS" -r 3 > "$OUT/transformers.jsonl" 2> "$OUT/transformers.err"
fi
echo "results in $OUT"
