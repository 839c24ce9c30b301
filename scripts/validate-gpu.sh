#!/usr/bin/env bash
# Fidelity on a GPU, with the noise floor and the error split by cause (docs/fidelity.md).
# Sized for about 10 minutes on one H100/H200; not run yet (no GPU where it was written).
#
# 1. `validate --gpus 1`: one GPU, FLUX.1-dev, 10 requests of 256-1024 px, tetriserve, the
#    trace run twice for real (the floor).
# 2. `validate --gpus 8` on 8 emulated lanes of the same GPU (degree changes exercised; the
#    lanes share one device, so the error there says how well a loaded node is modelled).
#
# Usage: scripts/validate-gpu.sh OUT_DIR (the binary: target/release/tetriserve, built first).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/validate-gpu.sh OUT_DIR}
mkdir -p "$out"
bin=target/release/tetriserve
[ -x "$bin" ] || cargo build --release
for case in "1 --mix custom:256=1,512=1,1024=1 --requests 10 --rate 60" \
            "8 --mix custom:256=1,512=1 --requests 12 --rate 120"; do
  set -- $case
  gpus=$1; shift
  echo "## validate --gpus $gpus $*" | tee -a "$out/summary.md"
  timeout 540 "$bin" validate --gpus "$gpus" "$@" --slo-scale 1.5 --policy tetriserve --runs 2 \
    --out "$out/gpus-$gpus" --force 2> "$out/gpus-$gpus.log" > /dev/null
  echo "(exit $?)" | tee -a "$out/summary.md"
  grep -E "^validate:" "$out/gpus-$gpus.log" | tee -a "$out/summary.md"
  [ -f "$out/gpus-$gpus/split.md" ] && cat "$out/gpus-$gpus/split.md" >> "$out/summary.md"
done
