#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -DPSREC_FUZZ=ON, in build-fuzz/) and runs each for
# SECONDS (default 60) on a scratch copy of its committed seed corpus (tests/fuzz/corpus/<name>),
# so new inputs do not land in the tree. Exits non-zero at the first target that crashes; the
# crashing input is left as build-fuzz/crash-* (add it to the corpus with the fix).
#   scripts/fuzz.sh [SECONDS] [TARGET...]     TARGET: wire tsv config ckpt dataset (default: all)
#   scripts/fuzz.sh --seeds                   rewrite the binary seeds (corpus/wire, ckpt, dataset)
# After each target it prints libFuzzer's final stats: executions (#N DONE ... / number_of_
# executed_units), coverage (cov: edges) and execs per second. PSREC_FUZZ_SEED=N fixes
# libFuzzer's seed (scripts/test.sh sets 1, so CI explores the same inputs on every run and a
# CI failure reproduces; by hand leave it unset to explore new ground each run).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DPSREC_FUZZ=ON >/dev/null
jobs=${PSREC_JOBS:-2}
if [[ "${1:-}" == "--seeds" ]]; then
  cmake --build build-fuzz -j"$jobs" --target fuzz_seeds
  build-fuzz/tests/fuzz/fuzz_seeds tests/fuzz/corpus
  exit 0
fi
secs=${1:-60}
shift || true
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(wire tsv config ckpt dataset)
cmake --build build-fuzz -j"$jobs" --target "${targets[@]/#/fuzz_}"
for t in "${targets[@]}"; do
  work=build-fuzz/fuzz-corpus/$t
  rm -rf "$work" && mkdir -p "$work"
  cp tests/fuzz/corpus/"$t"/* "$work"/
  echo "== fuzz_$t for ${secs}s"
  if ! (cd build-fuzz && tests/fuzz/fuzz_"$t" -max_total_time="$secs" -print_final_stats=1 \
          ${PSREC_FUZZ_SEED:+-seed="$PSREC_FUZZ_SEED"} \
          "fuzz-corpus/$t" >"fuzz-$t.log" 2>&1); then
    tail -n 60 build-fuzz/fuzz-"$t".log
    echo "fuzz_$t: CRASH (log build-fuzz/fuzz-$t.log, input build-fuzz/crash-*)" >&2
    exit 1
  fi
  echo "fuzz_$t: $(grep -E '^#[0-9]+[[:space:]]+DONE' build-fuzz/fuzz-"$t".log | tail -n 1)"
  grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec' build-fuzz/fuzz-"$t".log
done
