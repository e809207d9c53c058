#!/usr/bin/env bash
# The demo: install what is missing, build, generate a synthetic MIND-format set, prepare it
# into LMDB, and show what was prepared.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
PSREC=./build/psrec
mkdir -p data
$PSREC gen --out data/demo
$PSREC prep --news data/demo/train/news.tsv --behaviors data/demo/train/behaviors.tsv \
            --out data/demo/train.db --title-len 20 --his-len 30 --force
$PSREC prep --news data/demo/dev/news.tsv --behaviors data/demo/dev/behaviors.tsv \
            --out data/demo/dev.db --vocab-from data/demo/train.db --force
$PSREC inspect data/demo/train.db
$PSREC inspect data/demo/dev.db
echo "oracle (the best any model can do on this data): $(cat data/demo/oracle.json)"
