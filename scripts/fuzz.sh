#!/usr/bin/env bash
# Runs each libFuzzer harness for FUZZ_SECONDS (default 600) and reports executions and coverage.
#   scripts/fuzz.sh [SECONDS] [HARNESS ...]      (after the harnesses are built: `make fuzz` does both)
# Inputs: Tests/Fuzz/seeds/<harness> (committed) plus the corpus grown so far in .build-fuzz/corpus.
# A crash, leak, timeout (10 s per input) or out-of-memory (2 GB) is written to
# Tests/Fuzz/regressions/<harness>/, which `make test` replays once the bug is fixed; the script
# then exits 1 after the remaining harnesses have run.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-${FUZZ_SECONDS:-600}}
shift || true
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(GGUF Tokenizer ChatTemplate BatchInput Safetensors)
bin=.build-fuzz/release
summary=.build-fuzz/fuzz-summary.md
failed=0
{
  echo "fuzz run $(date -u +%Y-%m-%dT%H:%MZ), ${seconds} s per harness, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo
  echo "| harness | executions | exec/s | coverage (edges) | features | corpus | result |"
  echo "|---|---:|---:|---:|---:|---:|---|"
} > "$summary"
for h in "${harnesses[@]}"; do
  corpus=.build-fuzz/corpus/$h regress=Tests/Fuzz/regressions/$h log=.build-fuzz/fuzz-$h.log
  mkdir -p "$corpus" "$regress"
  echo "fuzz: $h for ${seconds} s (log: $log)"
  "$bin/Fuzz$h" "$corpus" "Tests/Fuzz/seeds/$h" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$regress/" -print_final_stats=1 > "$log" 2>&1
  status=$?
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1)
  [ -n "$done_line" ] || done_line=$(grep -E '^#[0-9]+[[:space:]]' "$log" | tail -1)
  execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$')
  rate=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$')
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<< "$done_line")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<< "$done_line")
  corp=$(sed -nE 's/.* corp: ([^ ]+).*/\1/p' <<< "$done_line")
  if [ $status -eq 0 ]; then result="no crash"; else result="FAILED (exit $status): see $log and $regress"; failed=1; fi
  echo "| $h | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | $result |" >> "$summary"
  echo "fuzz: $h: ${execs:-?} executions, coverage ${cov:-?} edges, $result"
done
cat "$summary"
exit $failed
