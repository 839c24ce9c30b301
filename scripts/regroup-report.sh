#!/usr/bin/env bash
# Prints, as Markdown, how the cost of regrouping (setting up a GPU set as an SP group: NCCL
# communicator creation) moves TetriServe and its ablations (Table 5: DP packing only, + placement
# preservation, + elastic scale-up), on the default FLUX.1-dev / 8x H100 scenario (simulated,
# estimated profile), Uniform and Skewed mixes, 12 req/min, SLO 1.0x, mean of 5 seeds.
# Two models of the cost: paid once per GPU set (communicators cached) or on every regroup
# (a request moving onto another multi-GPU set; no cache). About 20 s on 2 cores.
#
# Usage: scripts/regroup-report.sh
# Runs target/release/tetriserve when it is newer than the sources, else builds it first
# (scripts/release-bin.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/release-bin.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
policies="tetriserve-dp tetriserve-dp-pp tetriserve tetriserve-shed stepwise"

# header <first column name>: a table header, one column per policy, then pp - dp.
header() {
  printf "| %s |" "$1"; for p in $policies; do printf " %s |" "$p"; done; echo " pp - dp |"
  printf "|---|"; for p in $policies; do printf -- "---|"; done; echo "---|"
}

# row <label> <scenario TOML text> [simulate flags...]: mean attainment per policy over seeds 1-5.
row() {
  local label=$1 toml=$2
  shift 2
  printf '%b' "$toml" > "$tmp/s.toml"
  : > "$tmp/all.csv"
  for seed in 1 2 3 4 5; do
    "$bin" simulate -s "$tmp/s.toml" --seed "$seed" --format csv "$@" \
      $(for p in $policies; do printf -- "-p %s " "$p"; done) 2>/dev/null | tail -n +2 >> "$tmp/all.csv"
  done
  printf "| %s |" "$label"
  for p in $policies; do
    awk -F, -v p="$p" '$1 == p { s += $6; n++ } END { printf " %.1f |", 100 * s / n }' "$tmp/all.csv"
  done
  awk -F, '$1 == "tetriserve-dp" { d += $6; n++ } $1 == "tetriserve-dp-pp" { q += $6 } END { printf " %+.1f |\n", 100 * (q - d) / n }' "$tmp/all.csv"
}

echo "## SLO attainment (%) against the group set-up cost, mean of seeds 1-5"
for mix in uniform skewed; do
  for mode in false true; do
    echo
    if [ "$mode" = false ]; then echo "### $mix, paid once per GPU set (cached communicators)"; else echo "### $mix, paid on every regroup (no cache)"; fi
    echo
    header "group set-up, ms"
    for ms in 0 0.06 1 10 100 778; do
      row "$ms" "[overheads]\ngroup_setup_ms = $ms\ngroup_setup_on_regroup = $mode\n" --mix "$mix"
    done
  done
done

echo
echo "## SLO attainment (%) against the hand-off cost of a move (remap_fraction: a fraction of one step on the new set), no group set-up cost, Uniform, mean of seeds 1-5"
echo
header "remap fraction"
for f in 0.0005 0.05 0.2 0.5 1.0; do
  row "$f" "[overheads]\nremap_fraction = $f\n"
done
