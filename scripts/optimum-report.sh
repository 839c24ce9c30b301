#!/usr/bin/env bash
# Prints, as Markdown, the measured tables of docs/optimum.md: per window of 30 requests, the
# true optimum (exact search; a range where the search did not prove it), the upper bound of
# bound.rs and what every registered policy meets of the window's requests, counted in the
# policy's run over the whole workload (backlog carried in) and, in brackets, with the window
# replayed alone from an empty cluster; with the totals (bound looseness = bound - optimum,
# policy loss = optimum - best policy, also as a share of the optimum). Settings: the paper's
# default scenario (Uniform mix, 12 req/min, 8 H100s, FLUX profile, SLO 1.0x) and harder ones
# (SLO 0.8x; Skewed mix at 24 req/min), seed 42; then, per seed and in total over seeds 1-5,
# two nodes (16 H100s, Skewed, 50 steps, 25 req/min, SLO 0.8x) and one node with small and
# huge images (256 and 2048 px 6:1, 50 steps, constant 17.2 req/min, SLO 0.8x). Simulated,
# with the estimated profile; about a minute on 2 cores.
#
# Usage: scripts/optimum-report.sh [EFFORT]   (search nodes per window; default 2000000, the
# command's own default; more proves more windows and takes longer)
# Runs target/release/tetriserve when it is newer than the sources, else builds it first
# (scripts/release-bin.sh). Every policy of the registry runs: a policy added later joins the
# tables when the script is run again.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/release-bin.sh
effort=${1:-2000000}

# study <title> <flags...>
study() {
  local title=$1
  shift
  echo "### $title"
  echo
  echo '```'
  echo "tetriserve optimum${*:+ $*} --window 30 --windows 4 --effort $effort"
  echo '```'
  echo
  local start=$SECONDS
  "$bin" optimum "$@" --window 30 --windows 4 --effort "$effort" 2>/dev/null
  echo
  echo "($((SECONDS - start)) s for the solver, the bound and every policy, release build.)"
  echo
}

study "Default scenario: Uniform mix, 12 req/min, 8 H100s, SLO 1.0x (seed 42)"
study "Tighter deadlines: SLO 0.8x" --slo-scale 0.8
study "Heavier load: Skewed mix, 24 req/min" --mix skewed --rate 24

# seeds <title> <flags...>: every window of 30 of seeds 1-5 (the 300 requests hold 9 per seed),
# summed per seed, then the totals.
seeds() {
  local title=$1
  shift
  echo "### $title"
  echo
  echo '```'
  echo "tetriserve optimum${*:+ $*} --window 30 --windows 10 --seeds 1,2,3,4,5 --effort $effort"
  echo '```'
  echo
  local start=$SECONDS
  local json
  json=$(mktemp)
  "$bin" optimum "$@" --window 30 --windows 10 --seeds 1,2,3,4,5 --effort "$effort" \
    --format json 2>/dev/null >"$json"
  python3 - "$json" <<'PY'
import json, sys

s = json.load(open(sys.argv[1]))
t = s["totals"]
names = [p["policy"] for p in t["policies"]]


def rng(lo, hi):
    return str(lo) if lo == hi else f"{lo}..{hi}"


def pct(lo, hi):
    a, b = f"{lo:.1f}", f"{hi:.1f}"
    return f"{a}%" if a == b else f"{a}..{b}%"


def line(label, rows):
    lo = sum(r["optimum_low"] for r in rows)
    hi = sum(r["optimum_high"] for r in rows)
    opt = rng(lo, hi) + ("" if all(r["proven"] for r in rows) else " (open)")
    cells = []
    for n in names:
        got = [p for r in rows for p in r["policies"] if p["policy"] == n]
        in_run = sum(p["in_run"] for p in got)
        alone = sum(p["alone"] for p in got)
        cells.append(f"{in_run} ({alone})")
    req = sum(r["requests"] for r in rows)
    bound = sum(r["bound"] for r in rows)
    print(f"| {label} | {len(rows)} | {req} | {bound} | {opt} | " + " | ".join(cells) + " |")


print("Each policy: the windows' requests it meets in its run over the whole workload"
      " (in brackets: with each window replayed alone, from an empty cluster).")
print()
print("| seed | windows | requests | bound | optimum | " + " | ".join(names) + " |")
print("|" + " --- |" * (5 + len(names)))
for seed in s["seeds"]:
    line(seed, [r for r in s["rows"] if r["seed"] == seed])
line("total", s["rows"])
print()
looseness = rng(t["bound_looseness_low"], t["bound_looseness_high"])
print(f"Bound looseness (bound - optimum): {looseness} of {t['requests']} requests.")
loss = rng(t["policy_loss_low"], t["policy_loss_high"])
share = pct(t["policy_loss_percent_low"], t["policy_loss_percent_high"])
print(f"Policy loss in the run over the whole workload (optimum - best policy,"
      f" {t['best_in_run']} with {t['best_in_run_met']}): {loss}, {share} of the optimum"
      f" ({t['windows_ending_idle']} of {t['windows']} windows end at an idle point).")
loss = rng(t["policy_loss_alone_low"], t["policy_loss_alone_high"])
share = pct(t["policy_loss_alone_percent_low"], t["policy_loss_alone_percent_high"])
print(f"Policy loss with each window replayed alone ({t['best_alone']} with"
      f" {t['best_alone_met']}): {loss}, {share} of the optimum.")
PY
  rm -f "$json"
  echo
  echo "($((SECONDS - start)) s for the solver, the bound and every policy, release build.)"
  echo
}

seeds "Two nodes: 16 H100s, Skewed mix, 50 steps, Poisson 25 req/min, SLO 0.8x (seeds 1-5)" \
  --gpus 16 --mix skewed --steps 50 --rate 25 --slo-scale 0.8
seeds "Small and huge images: 8 H100s, 256 and 2048 px (6:1), 50 steps, constant 17.2 req/min, SLO 0.8x (seeds 1-5)" \
  --mix custom:256=6,2048=1 --steps 50 --arrival constant --rate 17.2 --slo-scale 0.8
