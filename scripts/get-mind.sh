#!/usr/bin/env bash
# Real MIND in one command: fetch (or take local) MIND archives, check them, unpack them and
# prepare every split with `psrec prep`, then print the `psrec train` line to run next.
#
#   scripts/get-mind.sh small|large|demo DIR [--accept-license] [--from FILE ...]
#                       [--psrec PATH] [--force]
#
# Splits: small = train + dev, large = train + dev + test (test has no labels; it is prepared
# for prediction), demo = train + dev. dev and test are prepared with --vocab-from train.
#
# Where the archives come from (cited so they can be checked):
# - small and large: the Azure blob container the MIND authors publish, documented on
#   Azure Open Datasets, "Microsoft News Recommendation"
#   (https://docs.microsoft.com/en-us/azure/open-datasets/dataset-microsoft-news, which names
#   https://mind201910small.blob.core.windows.net/release/ with MINDsmall_train.zip,
#   MINDsmall_dev.zip, MINDlarge_train.zip, MINDlarge_dev.zip) and linked from
#   https://msnews.github.io. MINDlarge_test.zip sits in the same container.
# - demo: NOT a release of the MIND authors. It is the 5,000-user sample of MIND-small that
#   Microsoft Recommenders made for its notebooks (recommenders/models/newsrec/newsrec_utils.py,
#   get_mind_data_set("demo"): https://recodatasets.z20.web.core.windows.net/newsrec/). Same
#   file format; useful for a quick end-to-end try, not for comparing with published numbers.
#
# Checksums: the publishers give none (neither msnews.github.io nor the Azure page lists one),
# so nothing is compared against a known value. The check is each archive's own integrity test
# (`unzip -t`: every member's CRC-32), and the SHA-256 of every archive used is printed so a
# user can record it and compare later downloads.
#
# License: MIND is distributed under the Microsoft Research License Terms
# (https://github.com/msnews/MIND/blob/master/MSR%20License_Data.pdf), non-commercial research
# use only. Nothing is downloaded or unpacked until the user accepts them: --accept-license,
# or typing "yes" at the prompt when stdin is a terminal; otherwise exit 2.
#
# --from FILE (repeatable) uses local zip archives instead of downloading. Each FILE is either
#   - one split, laid out as the official archives are: news.tsv and behaviors.tsv at the top
#     level; its split is named by the file name, which must end in _train.zip, _dev.zip or
#     _test.zip (MINDsmall_train.zip, MINDlarge_dev.zip, ...); or
#   - several splits, one directory per split holding news.tsv and behaviors.tsv, named
#     train/, dev/, test/ or MIND<size>_<split>/ (e.g. a re-zipped unpacked tree).
#   Every split the size needs must come from exactly one archive; nothing is downloaded then.
#
# Layout of DIR: MIND<size>_<split>/ (unpacked archive), <split>.db (prepared dataset),
# MIND<size>_<split>.zip (downloaded archives only). --force replaces existing <split>.db.
#
# Exit codes: 0 done, 1 failure (download, bad archive, prep), 2 usage error or license not
# accepted. Errors are one line on stderr starting with "get-mind.sh: error:".
set -uo pipefail

ME=get-mind.sh
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LICENSE_NAME="Microsoft Research License Terms"
LICENSE_URL="https://github.com/msnews/MIND/blob/master/MSR%20License_Data.pdf"

die() { echo "$ME: error: $*" >&2; exit 1; }
usage_die() { echo "$ME: error: $*" >&2; echo "usage: $ME small|large|demo DIR [--accept-license] [--from FILE ...] [--psrec PATH] [--force]" >&2; exit 2; }

usage() {
    cat <<EOF
usage: $ME small|large|demo DIR [--accept-license] [--from FILE ...] [--psrec PATH] [--force]

Download MIND (small: train+dev, large: train+dev+test, demo: Microsoft Recommenders'
5k-user sample of MIND-small), verify and unpack the archives into DIR, prepare each split
with psrec prep (DIR/train.db, DIR/dev.db[, DIR/test.db]) and print the psrec train line.

  --accept-license   accept the $LICENSE_NAME of MIND
                     ($LICENSE_URL); required (or answer yes at the prompt)
  --from FILE        use a local zip archive instead of downloading (repeatable): one split
                     per archive (news.tsv + behaviors.tsv at the top, named *_train.zip,
                     *_dev.zip, *_test.zip) or one archive with train/ dev/ [test/] inside
  --psrec PATH       psrec binary (default: build/psrec of this tree, else psrec on PATH)
  --force            replace existing prepared datasets in DIR
  -h, --help         this text
EOF
}

SIZE=""
DIR=""
ACCEPT=0
FORCE=0
PSREC=""
FROM=()
while [ $# -gt 0 ]; do
    case "$1" in
    -h | --help) usage; exit 0 ;;
    --accept-license) ACCEPT=1 ;;
    --force) FORCE=1 ;;
    --from)
        [ $# -ge 2 ] || usage_die "--from needs a FILE"
        FROM+=("$2"); shift ;;
    --from=*) FROM+=("${1#--from=}") ;;
    --psrec)
        [ $# -ge 2 ] || usage_die "--psrec needs a PATH"
        PSREC=$2; shift ;;
    --psrec=*) PSREC=${1#--psrec=} ;;
    -*) usage_die "unknown option '$1'" ;;
    *)
        if [ -z "$SIZE" ]; then SIZE=$1
        elif [ -z "$DIR" ]; then DIR=$1
        else usage_die "unexpected argument '$1'"; fi ;;
    esac
    shift
done

[ -n "$SIZE" ] || usage_die "missing the MIND size (small, large or demo)"
case "$SIZE" in
small) SPLITS="train dev"; CONF=configs/mind-small.conf; NP="-np 4" ;;
large) SPLITS="train dev test"; CONF=configs/mind-large.conf; NP="--hostfile hosts -np 16" ;;
demo) SPLITS="train dev"; CONF=configs/mind-small.conf; NP="-np 4" ;;
*) usage_die "unknown MIND size '$SIZE' (expected small, large or demo)" ;;
esac
[ -n "$DIR" ] || usage_die "missing the output DIR"
case "$SIZE" in
demo) BASE_URL="https://recodatasets.z20.web.core.windows.net/newsrec" ;;
*) BASE_URL="https://mind201910small.blob.core.windows.net/release" ;;
esac
NAME="MIND$SIZE" # MINDsmall, MINDlarge, MINDdemo: the archives' own prefix

# Every --from file must exist before anything else happens.
for f in "${FROM[@]+"${FROM[@]}"}"; do
    [ -f "$f" ] || die "--from file '$f' does not exist"
done

# --- license ---------------------------------------------------------------------------
echo "MIND is distributed under the $LICENSE_NAME:"
echo "  $LICENSE_URL"
echo "(non-commercial research use; read them before using the data)."
if [ "$ACCEPT" != 1 ]; then
    if [ -t 0 ]; then
        printf 'Do you accept these terms? Type yes to continue: '
        read -r answer || answer=""
        [ "$answer" = yes ] || { echo "$ME: license not accepted; nothing downloaded" >&2; exit 2; }
    else
        echo "$ME: error: the MIND license must be accepted first: read $LICENSE_URL and rerun with --accept-license" >&2
        exit 2
    fi
fi

# --- tools -----------------------------------------------------------------------------
command -v unzip >/dev/null || die "unzip is not installed (apt-get install -y unzip)"
command -v sha256sum >/dev/null || die "sha256sum is not installed (coreutils)"
if [ -z "$PSREC" ]; then
    if [ -x "$ROOT/build/psrec" ]; then PSREC=$ROOT/build/psrec
    else PSREC=$(command -v psrec) || die "no psrec: build it (cmake --build build) or pass --psrec PATH"; fi
fi
[ -x "$PSREC" ] || die "psrec '$PSREC' is not an executable file"

mkdir -p "$DIR" || die "cannot create '$DIR'"
DIR=$(cd "$DIR" && pwd) || die "cannot enter '$DIR'"

# True if the zip FILE has the member PATH (exact name).
zip_has() { printf '%s\n' "$LIST" | grep -Fxq -- "$2"; }

# Checks one archive: zip integrity (unzip -t) and prints its SHA-256.
check_archive() {
    local f=$1
    unzip -tqq "$f" >/dev/null 2>&1 || die "'$f' is not a valid zip archive (unzip -t failed: damaged or truncated)"
    echo "sha256 $(sha256sum "$f" | cut -d' ' -f1)  $f (zip integrity: ok)"
}

declare -A SRC_ZIP SRC_PREFIX # split -> archive, member prefix ("" = top level)

# Assign the splits found in one archive; split archives are named by their file name.
assign_archive() {
    local f=$1 base split prefix found=0
    LIST=$(unzip -Z1 "$f" 2>/dev/null) || die "'$f' is not a valid zip archive (cannot list it)"
    if zip_has "$f" news.tsv && zip_has "$f" behaviors.tsv; then
        base=$(basename "$f")
        case "$base" in
        *_train.zip) split=train ;;
        *_dev.zip) split=dev ;;
        *_test.zip) split='test' ;;
        *) die "'$f' holds one split (news.tsv, behaviors.tsv at its top level) but its name does not say which: name it ${NAME}_train.zip, ${NAME}_dev.zip or ${NAME}_test.zip" ;;
        esac
        case " $SPLITS " in *" $split "*) ;; *) die "'$f' is a $split split, which MIND $SIZE does not have (its splits: $SPLITS)" ;; esac
        [ -z "${SRC_ZIP[$split]+x}" ] || die "two archives for the $split split: '${SRC_ZIP[$split]}' and '$f'"
        SRC_ZIP[$split]=$f; SRC_PREFIX[$split]=""
        return
    fi
    for split in train dev test; do
        for prefix in "$split" "${NAME}_$split"; do
            if zip_has "$f" "$prefix/news.tsv" && zip_has "$f" "$prefix/behaviors.tsv"; then
                case " $SPLITS " in *" $split "*) ;; *) continue ;; esac
                [ -z "${SRC_ZIP[$split]+x}" ] || die "two archives for the $split split: '${SRC_ZIP[$split]}' and '$f'"
                SRC_ZIP[$split]=$f; SRC_PREFIX[$split]=$prefix; found=1
                break
            fi
        done
    done
    [ "$found" = 1 ] || die "'$f' holds no MIND split: expected news.tsv and behaviors.tsv at its top level, or in train/, dev/, test/ (or ${NAME}_<split>/) directories"
}

# Downloads URL to OUT (via OUT.part, renamed when complete).
download() {
    local url=$1 out=$2
    echo "downloading $url"
    if command -v curl >/dev/null; then
        curl -fL --retry 3 -o "$out.part" "$url" || { rm -f "$out.part"; die "download of $url failed (curl)"; }
    elif command -v wget >/dev/null; then
        wget -O "$out.part" "$url" || { rm -f "$out.part"; die "download of $url failed (wget)"; }
    else
        die "neither curl nor wget is installed (apt-get install -y curl), or pass --from FILE"
    fi
    mv "$out.part" "$out" || die "cannot write '$out'"
}

# --- archives --------------------------------------------------------------------------
if [ ${#FROM[@]} -gt 0 ]; then
    for f in "${FROM[@]}"; do
        check_archive "$f"
        assign_archive "$f"
    done
    for split in $SPLITS; do
        [ -n "${SRC_ZIP[$split]+x}" ] || die "no --from archive holds the $split split of MIND $SIZE (needed: $SPLITS)"
    done
else
    for split in $SPLITS; do
        zip="$DIR/${NAME}_$split.zip"
        if [ -f "$zip" ]; then
            echo "using $zip (already downloaded)"
        else
            download "$BASE_URL/${NAME}_$split.zip" "$zip"
        fi
        check_archive "$zip"
        assign_archive "$zip"
    done
fi

# --- unpack ----------------------------------------------------------------------------
for split in $SPLITS; do
    raw="$DIR/${NAME}_$split"
    zip=${SRC_ZIP[$split]}
    prefix=${SRC_PREFIX[$split]}
    rm -rf "$raw" "$raw.tmp" || die "cannot replace '$raw'"
    if [ -z "$prefix" ]; then
        unzip -q -o "$zip" -d "$raw.tmp" || die "cannot unpack '$zip' into '$raw'"
        mv "$raw.tmp" "$raw" || die "cannot rename '$raw.tmp'"
    else
        unzip -q -o "$zip" "$prefix/*" -d "$raw.tmp" || die "cannot unpack '$prefix/' of '$zip'"
        mv "$raw.tmp/$prefix" "$raw" || die "cannot move '$prefix/' of '$zip' to '$raw'"
        rm -rf "$raw.tmp"
    fi
    for t in news.tsv behaviors.tsv; do
        [ -f "$raw/$t" ] || die "'$zip' unpacked without $t in '$raw'"
    done
    echo "unpacked $split split into $raw"
done

# --- prep ------------------------------------------------------------------------------
force=()
[ "$FORCE" = 1 ] && force=(--force)
for split in $SPLITS; do
    raw="$DIR/${NAME}_$split"
    vocab=()
    [ "$split" = train ] || vocab=(--vocab-from "$DIR/train.db")
    cmd=("$PSREC" prep --news "$raw/news.tsv" --behaviors "$raw/behaviors.tsv" --out "$DIR/$split.db"
        "${vocab[@]+"${vocab[@]}"}" "${force[@]+"${force[@]}"}")
    echo "preparing $split: ${cmd[*]}"
    "${cmd[@]}"
    rc=$?
    [ "$rc" = 0 ] || die "psrec prep failed for the $split split (exit $rc; its message is above)"
done

# --- next step -------------------------------------------------------------------------
line="mpirun $NP $PSREC train $CONF --data.train=$DIR/train.db --data.dev=$DIR/dev.db"
[ "$SIZE" = large ] && line="$line --data.test=$DIR/test.db"
echo
echo "MIND $SIZE is ready in $DIR. Train from $ROOT with:"
echo "  $line"
exit 0
