#!/usr/bin/env bash
# Prints, as Markdown, how stepwise (beyond the paper: one-step grants re-planned at every
# request's step boundary) compares with tetriserve, tetriserve-shed and the best fixed
# baseline: paired gains in SLO attainment over the seeds (95% confidence intervals) on the
# paper's grids (Figs. 7, 8, 12, 13, 14) and on bursty Gamma traces (CV 2, 3, 4). Simulated,
# with the shipped estimated profiles; a few minutes on 2 cores.
#
# Usage: scripts/stepwise-report.sh [OUT_DIR]   (sweep results are kept there; default: a temp dir)
# Runs target/release/tetriserve when it is newer than the sources, else builds it first
# (scripts/release-bin.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/release-bin.sh
out=${1:-$(mktemp -d)}
mkdir -p "$out"

# sweep <name> <scenario file>: the file's grid with every policy of the comparison.
sweep() {
  local name=$1 file=$2
  local s="$out/$name.toml"
  sed -e 's/^policies = .*/policies = ["all", "tetriserve-shed", "stepwise"]/' \
    -e "s|\"\\.\\./\\.\\./|\"$PWD/|g" -e "s|\"\\.\\./|\"$PWD/scenarios/|g" "$file" > "$s"
  "$bin" sweep -s "$s" --out "$out/$name" --rerun >"$out/$name.log" 2>&1 ||
    { cat "$out/$name.log" >&2; exit 1; }
}

paper="fig07-uniform fig08-skewed fig12-sd3-a40 fig13-rate fig14-homogeneous"
bursty="bursty-cv2 bursty-cv3 bursty-cv4"
for g in $paper; do sweep "$g" "scenarios/paper/$g.toml"; done
for g in $bursty; do sweep "$g" "scenarios/beyond/shed-$g.toml"; done

compare_all() { # <baseline> <grids...>
  local base=$1; shift
  local files=(); for g in "$@"; do files+=("$out/$g/results.csv"); done
  "$bin" compare "${files[@]}" --baseline "$base" --policy stepwise | tail -1
}

echo "## stepwise: paired gain in SLO attainment (percentage points, 95% CI over seeds)"
echo
echo "| grid | vs tetriserve | vs tetriserve-shed |"
echo "|---|---|---|"
for g in $paper $bursty; do
  a=$(compare_all tetriserve "$g" | sed -E 's/.*= ([-+0-9.]+ ± [0-9.]+).*/\1/')
  b=$(compare_all tetriserve-shed "$g" | sed -E 's/.*= ([-+0-9.]+ ± [0-9.]+).*/\1/')
  echo "| $g | $a | $b |"
done
echo
echo "Paper grids together: $(compare_all tetriserve $paper)"
echo
echo "Bursty grids together: $(compare_all tetriserve $bursty)"
echo
echo "## Mean SLO attainment per grid (%)"
echo
python3 - "$out" $paper $bursty <<'PY'
import csv, sys
out, grids = sys.argv[1], sys.argv[2:]
fixed = ["xdit-sp1", "xdit-sp2", "xdit-sp4", "xdit-sp8", "rssp"]
print("| grid | best fixed | tetriserve | tetriserve-shed | stepwise | bound |")
print("|---|---|---|---|---|---|")
for g in grids:
    rows = list(csv.DictReader(open(f"{out}/{g}/results.csv")))
    def mean(p, col="slo_attainment"):
        v = [float(r[col]) for r in rows if r["policy"] == p]
        return 100 * sum(v) / len(v) if v else None
    best = max((p for p in fixed if mean(p) is not None), key=mean)
    print(f"| {g} | {best} {mean(best):.1f} | {mean('tetriserve'):.1f} | "
          f"{mean('tetriserve-shed'):.1f} | {mean('stepwise'):.1f} | "
          f"{mean('stepwise', 'attainment_bound'):.1f} |")
PY
