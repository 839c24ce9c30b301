#!/usr/bin/env bash
# Mutation testing (cargo-mutants) of the modules whose rules decide results: each module's
# mutants run against the tests that pin its rules, and the outcome lists are kept under
# docs/mutants/<module>/ (caught.txt, missed.txt, timeout.txt, unviable.txt). Every missed
# mutant must get a test that kills it or a line in docs/mutants/equivalent.md saying why it
# cannot change any output (docs/testing.md).
#
# Usage:
#   scripts/mutants.sh [OPTIONS] [MODULE...]      measure whole modules (default: all)
#   scripts/mutants.sh --in-diff [BASE] [OPTIONS]  only the mutants in lines changed since the
#                                                 branch left BASE (default: main), committed or
#                                                 not, in every module: the check before
#                                                 landing a change to these modules
#   scripts/mutants.sh --list                      the modules, their files and their tests
#   scripts/mutants.sh --sample K [MODULE...]      one mutant in K, spread over each module (a
#                                                 score estimate in 1/K of the time)
#
# MODULE: invariants, bound, summary, optimum, engine, workload, stages, policy (or policy-fixed_sp,
# policy-rssp, policy-stepwise, policy-tetriserve for one policy at a time).
# OPTIONS are passed to cargo-mutants, e.g. --in-place (mutate the working tree instead of a
# copy: no cold build of the copy, but leave the tree alone while it runs), --baseline=skip,
# --shard 1/4, -j 2, --timeout 300.
#
# Resumable: each module writes to mutants.out/<module>/ (git-ignored) and a rerun passes
# --iterate, so mutants already caught are skipped; delete that directory to start afresh.
# Costs: a copy is built cold once per module (about 5 minutes on 2 cores); each mutant then
# rebuilds the crate in the `mutants` profile (about 7 s) and runs its module's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# module -> files (cargo-mutants -f globs, space-separated) | test targets (built and run for
# each mutant; fewer targets build faster) | test filters (libtest arguments).
declare -A files targets filters
# The slow end-to-end modules and the real backend's checks (the CPU attention check alone runs
# 20 s unoptimised), none of which decides a simulated result.
slow="--skip real_cpu:: --skip real:: --skip claims:: --skip job_array:: --skip cli:: --skip hostile::"
files[invariants]="src/metrics/invariants.rs"
targets[invariants]="--test=it"
filters[invariants]="invariants:: stages::"
files[bound]="src/bound.rs"
targets[bound]="--lib --test=it"
filters[bound]="bound::"
files[summary]="src/metrics/summary.rs"
targets[summary]="--lib --test=it"
filters[summary]="$slow"
files[optimum]="src/optimum/*.rs"
targets[optimum]="--lib --test=it"
filters[optimum]="optimum bound::"
files[engine]="src/engine/*.rs"
targets[engine]="--lib --test=it"
filters[engine]="$slow"
files[stages]="src/stages/*.rs"
targets[stages]="--lib --test=it"
filters[stages]="stages::"
files[workload]="src/workload/cache.rs src/workload/skipping.rs src/workload/arrival.rs"
targets[workload]="--lib --test=it"
filters[workload]="workload:: cache:: invariants:: causality::"
for p in fixed_sp rssp stepwise; do
  files[policy-$p]="src/policy/$p.rs"
done
files[policy-tetriserve]="src/policy/tetriserve/*.rs"
files[policy]="src/policy/*.rs src/policy/tetriserve/*.rs"
for m in policy policy-fixed_sp policy-rssp policy-stepwise policy-tetriserve; do
  targets[$m]="--lib --test=it"
  filters[$m]="$slow"
done
all=(invariants bound summary optimum engine workload stages policy)

command -v cargo-mutants >/dev/null || cargo install cargo-mutants --locked

# The `mutants` profile (Cargo.toml): an unoptimised crate on optimised dependencies, ~7 s a
# rebuild instead of ~42 s.
common=(--minimum-test-timeout 60 --no-shuffle --profile=mutants)

if [ "${1:-}" = "--list" ]; then
  for m in "${all[@]}" policy-fixed_sp policy-rssp policy-stepwise policy-tetriserve; do
    printf '%-18s %-55s cargo test %s -- %s\n' "$m" "${files[$m]}" "${targets[$m]}" "${filters[$m]}"
  done
  exit 0
fi

if [ "${1:-}" = "--in-diff" ]; then
  shift
  base=main
  if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    base=$1
    shift
  fi
  diff=$(mktemp)
  trap 'rm -f "$diff"' EXIT
  # The branch's changes and the uncommitted ones, not what BASE gained since they forked.
  git diff "$(git merge-base "$base" HEAD)" -- src >"$diff"
  if [ ! -s "$diff" ]; then
    echo "mutants: no change under src/ since $base"
    exit 0
  fi
  args=()
  for m in "${all[@]}"; do
    for f in ${files[$m]}; do args+=(-f "$f"); done
  done
  mkdir -p mutants.out/in-diff
  # Every test but the slow end-to-end ones (the binary's): a diff may touch any module.
  # shellcheck disable=SC2086 # the filters are words
  exec cargo mutants "${common[@]}" "${args[@]}" --cargo-arg=--lib --cargo-arg=--test=it \
    --in-diff "$diff" -o mutants.out/in-diff "$@" -- -- $slow
fi

modules=()
opts=()
while [ $# -gt 0 ]; do
  a=$1
  shift
  if [ "$a" = "--sample" ]; then
    k=${1:?--sample needs K, e.g. --sample 10}
    shift
    case $k in '' | *[!0-9]* | 0) echo "mutants: --sample takes a count of 1 or more, not $k" >&2; exit 2 ;; esac
    opts+=(--shard "0/$k" --sharding round-robin)
  elif [ -n "${files[$a]+x}" ]; then modules+=("$a"); else opts+=("$a"); fi
done
[ ${#modules[@]} -eq 0 ] && modules=("${all[@]}")

status=0
for m in "${modules[@]}"; do
  out=mutants.out/$m
  mkdir -p "$out"
  args=()
  for f in ${files[$m]}; do args+=(-f "$f"); done
  iterate=()
  [ -f "$out/mutants.out/outcomes.json" ] && iterate=(--iterate)
  for t in ${targets[$m]}; do args+=("--cargo-arg=$t"); done
  echo "mutants: $m (${files[$m]}), tests: cargo test ${targets[$m]} -- ${filters[$m]}"
  # shellcheck disable=SC2086 # the filters are words
  cargo mutants "${common[@]}" "${args[@]}" -o "$out" "${iterate[@]}" "${opts[@]}" \
    -- -- ${filters[$m]} || status=$?
  # Keep the outcome lists (small) beside the equivalents; the logs stay in mutants.out/.
  # A resumed (or interrupted) run tests only some mutants: its lists update the kept ones.
  keep=docs/mutants/$m
  new=$out/mutants.out
  mkdir -p "$keep"
  for f in caught missed timeout unviable; do
    touch "$keep/$f.txt" "$new/$f.txt"
  done
  merged=$(mktemp)
  for f in caught unviable; do
    sort -u "$keep/$f.txt" "$new/$f.txt" >"$merged" && cp "$merged" "$keep/$f.txt"
  done
  for f in missed timeout; do
    sort -u "$keep/$f.txt" | grep -vxF -f "$new/caught.txt" -f "$new/missed.txt" \
      -f "$new/timeout.txt" -f "$new/unviable.txt" | sort -u - "$new/$f.txt" >"$merged" || true
    cp "$merged" "$keep/$f.txt"
  done
  rm -f "$merged"
  echo "mutants: $m: $(wc -l <"$keep/caught.txt") caught, $(wc -l <"$keep/missed.txt") missed," \
    "$(wc -l <"$keep/timeout.txt") timeout, $(wc -l <"$keep/unviable.txt") unviable (kept in $keep/)"
done
exit $status
