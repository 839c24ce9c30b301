#!/usr/bin/env bash
# Regenerates the cluster-size figure and prints, as Markdown, the tables of
# docs/cluster-scale.md: SLO attainment and provisioned GPU-hours per 1,000 met images of every
# policy on 1, 2, 4 and 8 nodes of 8 H100s, the load scaled with the GPUs (12 and 24 req/min
# and 300 requests per 8 GPUs; Uniform and Skewed; SLO 1.0x; five seeds), with the upper bound;
# then the goodput per GPU (the highest rate per GPU at which each policy still meets 90% of
# its requests, mean over seeds 1-3, 300 requests per 8 GPUs) at each size. Simulated, with the
# shipped estimated H100 profile; a few minutes on 2 cores.
#
# Usage: scripts/cluster-scale-report.sh [PLOTS_DIR]   (default: plots)
# Writes PLOTS_DIR/beyond-cluster-scale-*.{png,svg}, the sweep's rows under
# PLOTS_DIR/data/cluster-scale/ (and the goodput searches' rows there, goodput.csv), and the
# figure's section of PLOTS_DIR/README.md
# (`tetriserve figures --only beyond-cluster-scale`: the other figures are left as they are).
# Runs target/release/tetriserve when it is newer than the sources, else builds it first
# (scripts/release-bin.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/release-bin.sh
plots=${1:-plots}
start=$SECONDS

"$bin" figures --only beyond-cluster-scale --out "$plots" 2>/dev/null

echo "## SLO attainment and GPU-hours per met image by cluster size"
echo
echo '```'
echo "tetriserve figures --only beyond-cluster-scale --out $plots   # scenarios/beyond/cluster-scale.toml"
echo '```'
# The figure's section of the README: its tables, without the marker.
awk '/^<!-- figure: /{on = ($0 == "<!-- figure: beyond-cluster-scale -->"); next}
     /^## Files/{on = 0} on' "$plots/README.md"
echo "($((SECONDS - start)) s for the sweep and the charts.)"
echo

# goodput <mix> <nodes> <policy>: `tetriserve goodput`'s CSV, a header and one row.
goodput() {
  local mix=$1 nodes=$2 policy=$3
  "$bin" goodput -p "$policy" --mix "$mix" --gpus $((8 * nodes)) --requests $((300 * nodes)) \
    --seeds 1,2,3 --target 0.9 --max-rate $((60 * nodes)) --format csv 2>/dev/null
}

policies="xdit-sp1 xdit-sp2 xdit-sp4 xdit-sp8 rssp tetriserve tetriserve-shed stepwise"
rows=$plots/data/cluster-scale/goodput.csv
start=$SECONDS
header=
rm -f "$rows.never"
touch "$rows.never"
{
  for mix in uniform skewed; do
    for nodes in 1 2 4 8; do
      for p in $policies; do
        # A policy that can never meet some resolution's SLO at the target is refused before
        # any search (goodput names the resolutions): recorded as such, not as a row.
        if ! out=$(goodput "$mix" "$nodes" "$p"); then
          echo "$mix,$((8 * nodes)),$p" >>"$rows.never"
          continue
        fi
        [ -n "$header" ] || { header=1; echo "mix,$(head -n 1 <<<"$out")"; }
        echo "$mix,$(tail -n 1 <<<"$out")"
      done
    done
  done
} >"$rows.tmp"
mv "$rows.tmp" "$rows"
echo "## Goodput per GPU by cluster size"
echo
echo '```'
echo "tetriserve goodput -p POLICY --mix MIX --gpus G --requests \$((300 * G / 8)) --seeds 1,2,3 --target 0.9 --max-rate \$((60 * G / 8))"
echo '```'
echo
python3 - "$rows" $policies <<'PY'
import csv, sys

path, policies = sys.argv[1], sys.argv[2:]
rows = list(csv.DictReader(open(path)))
never = {tuple(l.strip().split(",")) for l in open(path + ".never") if l.strip()}
for mix in ["uniform", "skewed"]:
    print(f"### Requests per minute per GPU at 90% SLO attainment, {mix.capitalize()}, SLO 1.0x")
    print()
    print("| GPUs | " + " | ".join(policies) + " |")
    print("|---|" + "---|" * len(policies))
    for gpus in ["8", "16", "32", "64"]:
        cells = []
        for p in policies:
            if (mix, gpus, p) in never:
                cells.append("never")
                continue
            r = next(r for r in rows if r["mix"] == mix and r["gpus"] == gpus and r["policy"] == p)
            g = int(gpus)
            if r["outcome"] == "found":
                cells.append(f"{float(r['rate_per_min_per_gpu']):.2f}")
            elif r["outcome"] == "below-range":
                cells.append(f"< {float(r['range_min']) / g:.2f}")
            else:
                cells.append(f"> {float(r['range_max']) / g:.2f}")
        print(f"| {gpus} | " + " | ".join(cells) + " |")
    print()
PY
rm -f "$rows.never"
echo "($((SECONDS - start)) s for the goodput searches.)"
