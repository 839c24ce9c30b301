#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 60 s each) with cargo-fuzz (libFuzzer).
# cargo-fuzz needs unstable compiler flags; RUSTC_BOOTSTRAP lets the stable toolchain accept
# them. Every target gets fuzz/dict/time.dict (numbers at the edges of the representable
# times). Crashes land in fuzz/artifacts/<target>/; turn each into a regression test before
# fixing it: a parser crash as a case in tests/it/bad_input.rs, a scheduler crash as a workload
# in tests/it/invariants.rs, a path-rule failure (`paths`: the output writer on small random
# filesystems of files, directories, links and FIFOs) as a case in tests/it/hostile.rs.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(trace profile scenario import scheduler paths)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  [ -d "fuzz/seeds/$t" ] && cp -n fuzz/seeds/$t/* "fuzz/corpus/$t/" 2>/dev/null || true
  echo "== $t ($secs s)"
  cargo fuzz run "$t" "fuzz/corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 \
    -dict=fuzz/dict/time.dict 2>&1 | tail -5
done
