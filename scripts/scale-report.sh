#!/usr/bin/env bash
# The simulator at scale: re-measures the large-trace table of docs/performance.md.
#
# Usage: scripts/scale-report.sh [WORKDIR]   (default: a temporary directory, removed after)
#
# Generates a 1,000,000-row trace (4,800 req/min, Uniform, 28 steps,
# seed 1), then times with /usr/bin/time (wall seconds, peak RSS):
#   - simulate --trace on 1,024 GPUs for rssp, xdit-sp8, tetriserve and stepwise, without and
#     with --out (the size of each output file on stderr);
#   - tetriserve on 8 GPUs at 60 req/min (sustained overload) for 5k..100k requests;
#   - a burst of simultaneous arrivals (--rate 1e9) of 2k and 5k requests;
#   - the plain Python reference simulator (scripts/fcfs_reference.py) on the same trace, if
#     python3 is present, for the speed ratio.
# Prints one markdown table row per run. Takes about 8 minutes on 2 cores.
# Runs target/release/tetriserve when it is newer than the sources, else builds it first
# (scripts/release-bin.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/release-bin.sh
BIN=$bin
WORK=${1:-$(mktemp -d)}
[ -n "${1:-}" ] || trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK"
TRACE="$WORK/t1m.csv"
PROFILE=profiles/h100-flux1-dev.csv

"$BIN" trace generate --rate 4800 --requests 1000000 --steps 28 --mix uniform --seed 1 -o "$TRACE" 2>/dev/null

# One row: what, then the command; prints `| what | wall s | peak MiB | attainment |`.
row() {
    local what=$1
    shift
    local log="$WORK/time.log"
    local out
    out=$(/usr/bin/time -f "%e %M" -o "$log" "$@" --format csv 2>/dev/null | tail -n +2 | cut -d, -f1,6 | tr '\n' ' ')
    read -r wall kb <"$log"
    printf '| %s | %s s | %d MiB | %s |\n' "$what" "$wall" "$((kb / 1024))" "$out"
}

echo "| run | wall | peak RSS | policy,attainment |"
echo "|---|---|---|---|"
for p in rssp xdit-sp8 tetriserve stepwise; do
    row "1M-row trace, 1,024 GPUs, $p" "$BIN" simulate --trace "$TRACE" --profile "$PROFILE" --gpus 1024 -p "$p"
    rm -rf "$WORK/out"
    row "same, with --out" "$BIN" simulate --trace "$TRACE" --profile "$PROFILE" --gpus 1024 -p "$p" --out "$WORK/out"
    du -sh "$WORK/out/$p"/* | sed 's/^/    /' >&2
done
for n in 5000 10000 20000 100000; do
    row "tetriserve, 8 GPUs, 60 req/min, $n requests" "$BIN" simulate --gpus 8 --rate 60 --requests "$n" -p tetriserve
done
for n in 2000 5000; do
    row "burst (--rate 1e9), 8 GPUs, $n requests, rssp" "$BIN" simulate --gpus 8 --rate 1e9 --requests "$n" -p rssp
done
if command -v python3 >/dev/null && [ -f scripts/fcfs_reference.py ]; then
    for p in rssp xdit-sp8; do
        /usr/bin/time -f "%e %M" -o "$WORK/py.log" python3 scripts/fcfs_reference.py \
            --trace "$TRACE" --profile "$PROFILE" --gpus 1024 -p "$p" >"$WORK/py.out" 2>&1 || true
        read -r wall kb <"$WORK/py.log"
        printf '| Python reference, 1M-row trace, 1,024 GPUs, %s | %s s | %d MiB | %s |\n' \
            "$p" "$wall" "$((kb / 1024))" "$(tail -1 "$WORK/py.out")"
    done
fi
