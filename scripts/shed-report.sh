#!/usr/bin/env bash
# Prints, as Markdown, how tetriserve-shed (overload shedding, beyond the paper) compares with
# tetriserve: paired gains in SLO attainment over five seeds with 95% confidence intervals on
# the paper's grids and on bursty traces, then the ablations of the shedding rule (which
# request goes, how much capacity the test assumes, best effort or drop). Simulated, with the
# estimated profiles; about a minute on 2 cores.
#
# Usage: scripts/shed-report.sh [OUT_DIR]   (sweep results are kept there; default: a temp dir)
# Runs target/release/tetriserve when it is newer than the sources, else builds it first
# (scripts/release-bin.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/release-bin.sh
out=${1:-$(mktemp -d)}
mkdir -p "$out"

# sweep <name> <scenario file> [extra TOML appended to the scenario]
sweep() {
  local name=$1 file=$2 extra=${3:-}
  local s="$out/$name.toml"
  { cat "$file"; printf '%b' "$extra"; } > "$s"
  "$bin" sweep -s "$s" --out "$out/$name" --rerun >"$out/$name.log" 2>&1 ||
    { cat "$out/$name.log" >&2; exit 1; }
}

grids="slo rate homogeneous sd3-a40 bursty-cv2 bursty-cv3 bursty-cv4"
for g in $grids; do sweep "$g" "scenarios/beyond/shed-$g.toml"; done

echo "## tetriserve-shed vs tetriserve: paired gain in SLO attainment (percentage points)"
for g in $grids; do
  echo
  echo "### $g"
  echo
  "$bin" compare "$out/$g/results.csv" --baseline tetriserve --policy tetriserve-shed
done
echo
echo "### every grid together"
echo
all=(); for g in $grids; do all+=("$out/$g/results.csv"); done
"$bin" compare "${all[@]}" --baseline tetriserve --policy tetriserve-shed | tail -1

echo
echo "## Who pays: attainment per resolution, every grid together"
echo
for res in 256x256 512x512 1024x1024 2048x2048; do
  "$bin" compare "${all[@]}" --baseline tetriserve --policy tetriserve-shed --resolution "$res" | tail -1
done

echo
echo "## Ablation of the shedding rule (gain over tetriserve, all grids together)"
echo
echo "| variant | gain (pp, 95% CI over seeds) |"
echo "|---|---|"
ablate() {
  local label=$1 toml=$2 files=() slug
  slug=$(echo "$toml" | tr -c 'a-z0-9.\n' '-')
  for g in $grids; do
    sweep "abl-$slug-$g" "scenarios/beyond/shed-$g.toml" "\n[policy.tetriserve]\n$toml\n"
    files+=("$out/abl-$slug-$g/results.csv")
  done
  local line
  line=$("$bin" compare "${files[@]}" --baseline tetriserve --policy tetriserve-shed | tail -1)
  echo "| $label | $(echo "$line" | sed -E 's/.* = ([^ ]+ ± [^ ]+) .*/\1/') |"
}
ablate "default (largest work, capacity 1.0, best effort)" 'shed_capacity = 1.0'
ablate "shed the latest deadline instead" 'shed_rule = "latest-deadline"'
ablate "drop shed requests" 'shed_drop = true'
ablate "capacity 0.8 (shed earlier)" 'shed_capacity = 0.8'
ablate "capacity 0.9" 'shed_capacity = 0.9'
ablate "capacity 1.1 (shed later)" 'shed_capacity = 1.1'
ablate "capacity 1.25" 'shed_capacity = 1.25'
