#!/usr/bin/env bash
# Builds psrec with warnings as errors and runs every test suite (unit, mpi, slow), then every
# libFuzzer target for PSREC_FUZZ_SECONDS each (default 12: about a minute for the five, in
# a clang build of its own, build-fuzz/); a crash fails the run. PSREC_FUZZ_SECONDS=0 skips
# the fuzzers.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
# mpirun refuses to run as root without these; tests run on loopback only.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPSREC_WERROR=ON
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
fuzz_secs=${PSREC_FUZZ_SECONDS:-12}
if [[ "$fuzz_secs" != 0 ]]; then
  PSREC_FUZZ_SEED=${PSREC_FUZZ_SEED:-1} ./scripts/fuzz.sh "$fuzz_secs"
fi
