#!/usr/bin/env bash
# The quantized-weights sitting (issue 10, BENCHMARKS.md sittings 4, 9, 10 and 11): Strata's weight and
# activation modes, llama.cpp on the Q4_1 file and on its F32 dequantization, and transformers, one
# after another on one machine, 2 threads; results under $OUT. Never part of `make test`.
#   LLAMA_BIN   llama.cpp's build/bin (../shared/tools/build-llama-cpp.sh; default ~/.cache/strata/llama.cpp/build/bin)
#   PYTHON      a Python with torch, transformers, accelerate and gguf (transformers is skipped without it)
# The F32 file is made once with llama-quantize next to $OUT.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/strata-quantized-sitting}
MODEL=${MODEL:-$HOME/.cache/strata/models/SmolLM2-135M-Instruct.Q4_1.gguf}
LLAMA_BIN=${LLAMA_BIN:-$HOME/.cache/strata/llama.cpp/build/bin}
F32=${F32:-$OUT/smollm2-f32.gguf}
T=${THREADS:-2}
S=.build/release/strata
mkdir -p "$OUT"
[ -x "$S" ] || { echo "build first: swift build -c release" >&2; exit 1; }
[ -f "$F32" ] || "$LLAMA_BIN/llama-quantize" --allow-requantize "$MODEL" "$F32" F32 > "$OUT/quantize.log" 2>&1
date -u +%FT%TZ > "$OUT/start"
lscpu > "$OUT/lscpu"
echo "== strata-microbench (machine ceilings)"
.build/release/strata-microbench > "$OUT/micro.md" 2>&1
echo "== strata: weights native/f32, activations f32/q24/q8"
$S bench --model "$MODEL" --backend simd --weights native,f32 --activations f32,q24,q8 --threads "$T" --batch 16 \
  -p 512 -n 128 -r 3 --format json > "$OUT/strata.json"
echo "== strata: batch 16 with a half-precision KV cache (llama.cpp's default cache type)"
$S bench --model "$MODEL" --backend simd --cache-type f16 --threads "$T" --batch 16 -p 0 -n 128 -r 3 --format json \
  > "$OUT/strata-f16-cache.json"
echo "== llama.cpp"
for f in "$MODEL" "$F32"; do
  n=$(basename "$f" .gguf)
  "$LLAMA_BIN/llama-bench" -m "$f" -t "$T" -p 512 -n 128 -r 3 -o json > "$OUT/llama-bench-$n.json" 2>/dev/null
  "$LLAMA_BIN/llama-batched-bench" -m "$f" -t "$T" -c 8192 -b 2048 -ub 512 -npp 128 -ntg 128 -npl 16 > "$OUT/llama-batched-$n.txt" 2>&1
done
if [ -n "${PYTHON:-}" ]; then
  echo "== transformers"
  "$PYTHON" Benchmarks/peers/transformers_bench.py --model "$MODEL" --threads "$T" -r 3 --batch 16 > "$OUT/transformers.jsonl" 2> "$OUT/transformers.err"
fi
echo "== peak resident set of generate"
for a in "" "--activations f32" "--activations q24" "--activations q8" "--weights f32"; do
  # shellcheck disable=SC2086
  /usr/bin/time -f "peak %M KB ${a:-default}" $S generate --model "$MODEL" $a --max-tokens 32 "Once upon a time" > /dev/null 2>> "$OUT/memory.txt"
done
date -u +%FT%TZ > "$OUT/end"
echo "results in $OUT"
