#!/usr/bin/env bash
# Prints, as Markdown, the TetriServe comparison tables on the default FLUX.1-dev / 8x H100
# scenario (simulated, with the estimated profile): SLO attainment per policy and SLO scale for
# the Uniform and Skewed mixes, the Table 5 ablation, the tie-break and refinement switches,
# round granularity, remap cost, and scheduler decision times.
#
# Usage: scripts/tetriserve-report.sh [extra simulate flags...]   (e.g. --seed 7)
# Runs target/release/tetriserve when it is newer than the sources, else builds it first
# (scripts/release-bin.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/release-bin.sh
extra=("$@")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# attainment <csv> <policy> -> percentage with one decimal
col() { awk -F, -v p="$2" -v c="$3" '$1 == p { printf "%.1f", ($c) * (c == 6 ? 100 : 1) }' "$1"; }

echo "## SLO attainment (%) by SLO scale, 300 requests, Poisson 12 req/min"
for mix in uniform skewed; do
  echo
  echo "### $mix"
  echo
  policies="xdit-sp1 xdit-sp2 xdit-sp4 xdit-sp8 rssp tetriserve"
  printf "| scale |"; for p in $policies; do printf " %s |" "$p"; done; echo
  printf "|---|"; for p in $policies; do printf "%s" "---|"; done; echo
  for s in 1.0 1.1 1.2 1.3 1.4 1.5; do
    "$bin" simulate --mix "$mix" --slo-scale "$s" --format csv "${extra[@]}" 2>/dev/null > "$tmp/r.csv"
    printf "| %s |" "$s"; for p in $policies; do printf " %s |" "$(col "$tmp/r.csv" "$p" 6)"; done; echo
  done
done

echo
echo "## Ablation (the paper's Table 5): SLO attainment (%) / mean latency of completed requests (s)"
echo
echo "| variant | Uniform 1.0 | Uniform 1.5 | Skewed 1.0 | Skewed 1.5 |"
echo "|---|---|---|---|---|"
for p in tetriserve-dp tetriserve-dp-pp tetriserve; do
  printf "| %s |" "$p"
  for mix in uniform skewed; do for s in 1.0 1.5; do
    "$bin" simulate -p "$p" --mix "$mix" --slo-scale "$s" --format csv "${extra[@]}" 2>/dev/null > "$tmp/r.csv"
    printf " %s / %s |" "$(col "$tmp/r.csv" "$p" 6)" "$(awk -F, -v p="$p" '$1 == p { printf "%.2f", $7 }' "$tmp/r.csv")"
  done; done
  echo
done

# Runs tetriserve with a [policy.tetriserve] / [overheads] snippet at the four ablation cells.
variant_row() {
  local label=$1 toml=$2 policy=${3:-tetriserve}
  printf "%s" "$toml" > "$tmp/s.toml"
  printf "| %s |" "$label"
  for mix in uniform skewed; do for s in 1.0 1.5; do
    "$bin" simulate -s "$tmp/s.toml" -p "$policy" --mix "$mix" --slo-scale "$s" --format csv "${extra[@]}" 2>/dev/null > "$tmp/r.csv"
    printf " %s |" "$(col "$tmp/r.csv" "$policy" 6)"
  done; done
  echo
}

echo
echo "## Tie-break and refinements: SLO attainment (%)"
echo
echo "| configuration | Uniform 1.0 | Uniform 1.5 | Skewed 1.0 | Skewed 1.5 |"
echo "|---|---|---|---|---|"
variant_row "default (tie-break none, refinements on, batching off)" ""
variant_row "tie-break work" $'[policy.tetriserve]\ntie_break = "work"\n'
variant_row "no round-aware plans" $'[policy.tetriserve]\nround_aware_plans = false\n'
variant_row "no round filling" $'[policy.tetriserve]\nfill_rounds = false\n'
variant_row "no backfill" $'[policy.tetriserve]\nbackfill = false\n'
variant_row "no round snapping" $'[policy.tetriserve]\nsnap_rounds = false\n'
variant_row "with batching" $'[policy.tetriserve]\nbatching = true\n'
variant_row "paper-literal (no refinement)" $'[policy.tetriserve]\ntie_break = \"none\"\nround_aware_plans = false\nfill_rounds = false\nbackfill = false\nsnap_rounds = false\n'
variant_row "paper-literal, tie-break work" $'[policy.tetriserve]\ntie_break = "work"\nround_aware_plans = false\nfill_rounds = false\nbackfill = false\nsnap_rounds = false\n'
variant_row "paper-literal, DP only" $'[policy.tetriserve]\ntie_break = \"none\"\nround_aware_plans = false\nfill_rounds = false\nbackfill = false\nsnap_rounds = false\n' tetriserve-dp
variant_row "paper-literal, DP + PP" $'[policy.tetriserve]\ntie_break = \"none\"\nround_aware_plans = false\nfill_rounds = false\nbackfill = false\nsnap_rounds = false\n' tetriserve-dp-pp

echo
echo "## Placement preservation under a larger hand-off cost (5% of a step instead of 0.05%): SLO attainment (%)"
echo
echo "| variant | Uniform 1.0 | Uniform 1.5 | Skewed 1.0 | Skewed 1.5 |"
echo "|---|---|---|---|---|"
for p in tetriserve-dp tetriserve-dp-pp tetriserve; do
  variant_row "$p" $'[overheads]\nremap_fraction = 0.05\n' "$p"
done

echo
echo "## Round granularity (steps of the reference request per round): SLO attainment (%), Uniform 1.0"
echo
echo "| granularity | 6 req/min | 12 req/min | 18 req/min |"
echo "|---|---|---|---|"
for g in 1 2 5 10 15; do
  printf "| %s |" "$g"
  for r in 6 12 18; do
    "$bin" simulate -p tetriserve --granularity "$g" --rate "$r" --format csv "${extra[@]}" 2>/dev/null > "$tmp/r.csv"
    printf " %s |" "$(col "$tmp/r.csv" tetriserve 6)"
  done
  echo
done

echo
echo "## Overload of small images: 1,000 requests at 256 px only, SLO 1.0, SLO attainment (%)"
echo
echo "| rate (req/min) | xdit-sp1 | xdit-sp8 | tetriserve | tetriserve, no snapping | tetriserve, batching |"
echo "|---|---|---|---|---|---|"
for r in 240 480 600; do
  common=(--mix homogeneous:256 --requests 1000 --rate "$r" --format csv "${extra[@]}")
  "$bin" simulate -p xdit-sp1 -p xdit-sp8 -p tetriserve "${common[@]}" 2>/dev/null > "$tmp/r.csv"
  printf '[policy.tetriserve]\nsnap_rounds = false\n' > "$tmp/ns.toml"
  "$bin" simulate -s "$tmp/ns.toml" -p tetriserve "${common[@]}" 2>/dev/null > "$tmp/ns.csv"
  printf '[policy.tetriserve]\nbatching = true\n' > "$tmp/b.toml"
  "$bin" simulate -s "$tmp/b.toml" -p tetriserve "${common[@]}" 2>/dev/null > "$tmp/b.csv"
  echo "| $r | $(col "$tmp/r.csv" xdit-sp1 6) | $(col "$tmp/r.csv" xdit-sp8 6) | $(col "$tmp/r.csv" tetriserve 6) | $(col "$tmp/ns.csv" tetriserve 6) | $(col "$tmp/b.csv" tetriserve 6) |"
done

echo
echo "## Scheduler decision time (wall clock of this machine, microseconds), Uniform 1.0"
echo
echo "| policy | decisions | mean | p99 | max |"
echo "|---|---|---|---|---|"
"$bin" simulate --format json "${extra[@]}" 2>/dev/null > "$tmp/r.json"
grep -o '"policy": "[^"]*"\|"decisions": [0-9]*\|"mean_us": [0-9.e-]*\|"p99_us": [0-9.e-]*\|"max_us": [0-9.e-]*' "$tmp/r.json" \
  | awk -F': ' '{gsub(/"/, "", $2); v[$1]=$2} /max_us/ {printf "| %s | %s | %.1f | %.1f | %.1f |\n", v["\"policy\""], v["\"decisions\""], v["\"mean_us\""], v["\"p99_us\""], $2}'
