#!/usr/bin/env bash
# strata serve against llama-server on the same GGUF file, the same prompts, max_tokens and
# temperature, at 1, 8 and 32 concurrent streamed clients (Benchmarks/serve_load.py; loopback only).
#   Benchmarks/serve_bench.sh [MODEL]      (make bench-serve)
# Needs llama-server from ../shared/tools/build-llama-cpp.sh (LLAMA_BIN overrides its folder) and
# the release build of strata. Both servers get 32 slots of CTX positions (llama-server: -np 32 -c 32×CTX,
# continuous batching on) and all cores; they run one after the other, never together.
set -euo pipefail
cd "$(dirname "$0")/.."
STRATA_HOME=${STRATA_HOME:-$HOME/.cache/strata}
MODEL=${1:-$STRATA_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf}
LLAMA_BIN=${LLAMA_BIN:-$STRATA_HOME/llama.cpp/build/bin}
PYTHON=${PYTHON:-python3}
CTX=${CTX:-512}
SLOTS=${SLOTS:-32}
CLIENTS=${CLIENTS:-1,8,32}
REQUESTS=${REQUESTS:-2}
MAX_TOKENS=${MAX_TOKENS:-128}
STRATA_ARGS=${STRATA_ARGS:-}
PORT_STRATA=${PORT_STRATA:-18431}
PORT_LLAMA=${PORT_LLAMA:-18432}
THREADS=$(nproc)

wait_healthy() {
  for _ in $(seq 1 600); do
    if curl -sf "http://127.0.0.1:$1/health" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "server on port $1 did not become healthy" >&2; return 1
}

run_one() {  # label, port
  $PYTHON Benchmarks/serve_load.py --url "http://127.0.0.1:$2" --clients "$CLIENTS" --requests "$REQUESTS" \
    --max-tokens "$MAX_TOKENS" --label "$1" --deadline 1800
}

echo "model: $MODEL; $SLOTS slots × $CTX positions; clients $CLIENTS × $REQUESTS streamed chat requests, max_tokens $MAX_TOKENS, temperature 0, ignore_eos"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $THREADS cores"

# shellcheck disable=SC2086
.build/release/strata serve --model "$MODEL" --port "$PORT_STRATA" --parallel "$SLOTS" --ctx "$CTX" --queue 1024 \
  --log-level warning $STRATA_ARGS 2>/tmp/strata-serve-bench.log &
STRATA_PID=$!
trap 'kill $STRATA_PID 2>/dev/null || true' EXIT
wait_healthy "$PORT_STRATA"
run_one strata "$PORT_STRATA"
kill -TERM $STRATA_PID; wait $STRATA_PID || true

if [ -x "$LLAMA_BIN/llama-server" ]; then
  "$LLAMA_BIN/llama-server" -m "$MODEL" --host 127.0.0.1 --port "$PORT_LLAMA" -np "$SLOTS" -c $((SLOTS * CTX)) -cb \
    -t "$THREADS" -tb "$THREADS" --no-webui >/tmp/llama-server-bench.log 2>&1 &
  LLAMA_PID=$!
  trap 'kill $LLAMA_PID 2>/dev/null || true' EXIT
  wait_healthy "$PORT_LLAMA"
  run_one llama-server "$PORT_LLAMA"
  kill -TERM $LLAMA_PID; wait $LLAMA_PID || true
else
  echo "llama-server not found in $LLAMA_BIN: run ../shared/tools/build-llama-cpp.sh" >&2
fi
