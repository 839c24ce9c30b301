#!/usr/bin/env bash
# Prints, as Markdown, the measured tables of docs/optimum.md: per window of 30 requests, the
# true optimum (exact search; a range where the search did not prove it), the upper bound of
# bound.rs and what every registered policy meets, with the totals (bound looseness = bound -
# optimum, policy loss = optimum - best policy), on the paper's default scenario (Uniform mix,
# 12 req/min, 8 H100s, FLUX profile, SLO 1.0x) and on harder settings (SLO 0.8x; Skewed mix at
# 24 req/min). Simulated, with the estimated profile; one to a few minutes on 2 cores.
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
