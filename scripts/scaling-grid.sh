#!/usr/bin/env bash
# The measured half of docs/scaling.md: the demo config trained across simulated hosts (shards on
# one network namespace, 2 workers on another, links rate-limited with tbf) for every link rate x
# wire dtype x shard count given, one JSON line per run on stdout:
#   {"rate","dtype","shards","per_worker_samples_per_s","bytes_per_sample","auc","wall_s","load1"}
# per_worker_samples_per_s: median of the workers' metrics.jsonl windows after the first (start-up
# excluded); bytes_per_sample: every shard's bytes in + out over the samples trained.
#
#   sudo scripts/scaling-grid.sh [-n NETNS_HOSTS] [-e EPOCHS] [-r "off 1gbit 500mbit"]
#                                [-d "f32 bf16"] [-s "1 2"] DATA_DIR OUT_DIR
# DATA_DIR holds train.db and dev.db of `psrec gen` + `psrec prep` (scripts/demo.sh makes them).
# Needs root (network namespaces). NETNS_HOSTS defaults to ../shared/tools/netns-hosts next to the
# checkout; hosts psh1, psh2 are made and removed by this script.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
NH=$HERE/../shared/tools/netns-hosts EPOCHS=1 RATES="off 1gbit 500mbit" DTYPES="f32 bf16" SHARDS="1 2"
while getopts n:e:r:d:s: o; do
  case $o in n) NH=$OPTARG ;; e) EPOCHS=$OPTARG ;; r) RATES=$OPTARG ;; d) DTYPES=$OPTARG ;;
             s) SHARDS=$OPTARG ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
DATA=$(cd "${1:?data dir}" && pwd) OUT=${2:?out dir}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
PSREC=$HERE/build/psrec
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
trap '"$NH" down >/dev/null 2>&1 || true' EXIT
"$NH" up 2 off >/dev/null
FLAGS=$("$NH" flags)
H1=$(getent hosts psh1 | awk '{print $1}')

for rate in $RATES; do
  "$NH" rate "$rate"
  for dtype in $DTYPES; do
    for s in $SHARDS; do
      run=$OUT/$rate-$dtype-s$s
      rm -rf "$run"
      load=$(cut -d' ' -f1 /proc/loadavg)
      # shellcheck disable=SC2086
      timeout 1200 mpirun $FLAGS --allow-run-as-root --oversubscribe --host "psh1:$s,psh2:2" \
        -np $((s + 2)) "$PSREC" train "$HERE/configs/demo.conf" --ps.host="$H1" \
        --ps.servers="$s" --ps.wire_dtype="$dtype" --train.epochs="$EPOCHS" \
        --data.train="$DATA/train.db" --data.dev="$DATA/dev.db" --run.dir="$run" \
        --checkpoint.every_steps=0 >"$run.log" 2>&1 || { echo "run $run failed" >&2; continue; }
      python3 - "$run" "$rate" "$dtype" "$s" "$load" <<'PY'
import json, statistics, sys
run, rate, dtype, s, load = sys.argv[1:]
rates, shard = [], {}
for line in open(run + "/metrics.jsonl"):
    m = json.loads(line)
    if "worker" in m and "samples_per_s" in m:
        rates.append((m["worker"], m["step"], m["samples_per_s"]))
    if "shard" in m:
        shard[m["shard"]] = m["bytes_in"] + m["bytes_out"]
first = min(r[1] for r in rates)
steady = [r[2] for r in rates if r[1] > first] or [r[2] for r in rates]
summ = json.load(open(run + "/summary.json"))
print(json.dumps({"rate": rate, "dtype": dtype, "shards": int(s),
                  "per_worker_samples_per_s": round(statistics.median(steady), 1),
                  "bytes_per_sample": round(sum(shard.values()) / summ["samples"], 1),
                  "auc": round(summ["dev"]["auc"], 4), "wall_s": round(summ["wall_s"], 1),
                  "load1": float(load)}), flush=True)
PY
    done
  done
done
