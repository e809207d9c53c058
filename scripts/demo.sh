#!/usr/bin/env bash
# The demo: install what is missing, build, generate a synthetic MIND-format set, prepare it
# into LMDB, train LSTM-NR on it under mpirun (a parameter-server shard and two workers),
# evaluate the trained model on the dev split and print
# MIND's metrics next to the oracle's (the best any model can do on this data), and plot the
# run's curves into runs/demo/plot.png.
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
# Distributed: 1 server shard + 2 workers (ps.servers = 1 in the config), on this machine.
# --force: each demo is a new run; ps.host: the demo talks over loopback only.
mpirun --oversubscribe -np 3 $PSREC train configs/demo.conf --force --ps.host=127.0.0.1
echo "== dev metrics of the trained model (psrec eval):"
$PSREC eval --ckpt runs/demo/ckpt --data data/demo/dev.db --predictions runs/demo/dev.predictions
echo "== oracle (ranking by the true click probability): $(cat data/demo/oracle.json)"
echo "== training loss, dev AUC and nDCG@10 curves (psrec plot):"
$PSREC plot runs/demo
