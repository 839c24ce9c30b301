#!/usr/bin/env bash
# Prints, as Markdown, the workloads built to make TetriServe lose (scenarios/adversarial/):
# mean SLO attainment over the seeds of each scenario for the best fixed baseline (xDiT
# SP 1/2/4/8 or RSSP, the best mean), tetriserve, tetriserve-shed, stepwise and the upper
# bound, then stepwise's paired gain over the best fixed baseline and over tetriserve. Simulated,
# with the shipped estimated H100 profile; under a minute on 2 cores.
#
# Usage: scripts/adversarial-report.sh [OUT_DIR]   (sweep results are kept there; default: a temp dir)
# Runs target/release/tetriserve when it is newer than the sources, else builds it first
# (scripts/release-bin.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/release-bin.sh
out=${1:-$(mktemp -d)}
mkdir -p "$out"

names=()
for f in scenarios/adversarial/*.toml; do
  n=$(basename "$f" .toml)
  names+=("$n")
  "$bin" sweep -s "$f" --out "$out/$n" --rerun >"$out/$n.log" 2>&1 || { cat "$out/$n.log" >&2; exit 1; }
done

# The table: one row per scenario, from its results.csv (read as CSV: mixes hold commas).
python3 - "$out" "${names[@]}" <<'PY'
import csv, sys
out, names = sys.argv[1], sys.argv[2:]
fixed = ["xdit-sp1", "xdit-sp2", "xdit-sp4", "xdit-sp8", "rssp"]
print("## Adversarial workloads: mean SLO attainment (%)")
print()
print("| scenario | seeds | best fixed | tetriserve | tetriserve-shed | stepwise | stepwise - best fixed | bound |")
print("|---|---|---|---|---|---|---|---|")
for n in names:
    rows = list(csv.DictReader(open(f"{out}/{n}/results.csv")))
    def mean(p, col="slo_attainment"):
        v = [float(r[col]) for r in rows if r["policy"] == p]
        return 100 * sum(v) / len(v) if v else None
    best = max((p for p in fixed if mean(p) is not None), key=mean)
    seeds = len({r["seed"] for r in rows})
    sw = mean("stepwise")
    print(f"| {n} | {seeds} | {best} {mean(best):.1f} | {mean('tetriserve'):.1f} | "
          f"{mean('tetriserve-shed'):.1f} | {sw:.1f} | {sw - mean(best):+.1f} | "
          f"{mean('stepwise', 'attainment_bound'):.1f} |")
PY
echo
echo "## stepwise vs tetriserve, paired by seed (every scenario together)"
echo
all=(); for n in "${names[@]}"; do all+=("$out/$n/results.csv"); done
"$bin" compare "${all[@]}" --baseline tetriserve --policy stepwise | tail -1
