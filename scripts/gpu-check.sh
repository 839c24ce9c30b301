#!/usr/bin/env bash
# The GPU check, sized for a few minutes on one H100/H200 (see README, "Real GPUs").
#
# 1. `tetriserve gpu-check`: the libraries, the kernels against the CPU reference, every
#    attention backend (cuDNN flash, fused softmax, unfused) against the CPU reference at head
#    dim 128 for 128 / 1,137 / 4,608 tokens and timed at FLUX.1-dev's 1024 and 2048 px, the local
#    transport's conformance (k = 2, 4, 8 lanes on one GPU, every element checked, two
#    exchanges back to back), a Ulysses step on lanes against the plain step and the CPU
#    ranks, latent hand-offs, and NCCL when there are two or more devices.
# 2. An emulated-lane run: `simulate --real --gpus 8 -p tetriserve` on one GPU (8 lanes), with
#    a table of the degrees its works ran at and of the requests that changed degree.
# 3. `validate` on the GPU: profile the node, replay a trace for real and in simulation,
#    compare request by request.
# 4. Speed against PyTorch: our FLUX.1-dev step (SP1, batch 1, `profile`) and PyTorch's eager
#    step with its fastest SDPA backend (scripts/torch_dit_step.py --sdpa-backend fastest) at
#    256-2048 px, as one table (compare.md): ms, the ratio, effective TFLOP/s, torch/cuDNN
#    versions, and which attention backend each side ran.
# 5. With GPU_CHECK_FULL=1 only (several more minutes): the full FLUX.1-dev profile (batches
#    1, 2, 4; SP 1-8 emulated).
#
# Needs a release binary built elsewhere (the GPU machine has no Rust): TETRISERVE_BIN,
# default target/release/tetriserve. Every section has its own time limit and the script
# goes on after a failing one, so one run gives every table it can.
#
# Usage: scripts/gpu-check.sh [OUT_DIR]      (OUT_DIR default: $OUT, else gpu-check-out)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu-check-out}}
mkdir -p "$out"
bin=${TETRISERVE_BIN:-target/release/tetriserve}
log() { echo "== $*" | tee -a "$out/summary.md"; }

# Libraries: the system's, else the ones PyTorch's wheels bring.
extra=$(python3 - <<'PY' 2>/dev/null
import glob, os, site
dirs = set()
for base in site.getsitepackages():
    for lib in glob.glob(os.path.join(base, "nvidia", "*", "lib")):
        dirs.add(lib)
print(":".join(sorted(dirs)))
PY
)
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}:/usr/local/cuda/lib64:${extra}"
{
  echo "# GPU check"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  echo
} > "$out/summary.md"

log "1. gpu-check: numerics, attention backends, lane conformance, Ulysses on lanes, hand-offs"
start=$(date +%s)
timeout 180 "$bin" gpu-check 2>&1 | tee -a "$out/summary.md"
echo "(${PIPESTATUS[0]}: $(( $(date +%s) - start )) s)" | tee -a "$out/summary.md"

log "2. emulated lanes: simulate --real --gpus 8 -p tetriserve (FLUX.1-dev, 8 lanes on one GPU)"
start=$(date +%s)
timeout 240 "$bin" simulate --real --gpus 8 -p tetriserve --requests 8 --rate 240 \
  --mix custom:256=1,512=1 --steps 28 --out "$out/lanes8" --force 2>&1 | tee -a "$out/summary.md"
echo "(${PIPESTATUS[0]}: $(( $(date +%s) - start )) s)" | tee -a "$out/summary.md"
python3 - "$out/lanes8/tetriserve/works.csv" <<'PY' 2>&1 | tee -a "$out/summary.md"
import csv, sys, collections
try:
    rows = list(csv.DictReader(open(sys.argv[1])))
except FileNotFoundError:
    sys.exit("no works.csv")
# A row is a work or a merged run of back-to-back works (its `works` column).
by_degree = collections.Counter()
for r in rows:
    by_degree[len(r["gpus"].split(";"))] += int(r.get("works") or 1)
per_request = collections.defaultdict(list)
for r in rows:
    per_request[r["requests"]].append(len(r["gpus"].split(";")))
changed = {k: v for k, v in per_request.items() if len(set(v)) > 1}
print("| degree | works |\n|---|---|")
for k in sorted(by_degree):
    print(f"| {k} | {by_degree[k]} |")
print(f"\n{len(changed)} of {len(per_request)} requests ran at two or more degrees:")
for k, v in list(changed.items())[:8]:
    print(f"- request {k}: " + " -> ".join(map(str, v)))
PY

log "3. validate on the GPU: 1 slot, FLUX.1-dev, 10 requests of 256-1024 px, tetriserve"
start=$(date +%s)
timeout 400 "$bin" validate --gpus 1 --requests 10 --rate 60 --slo-scale 1.5 --policy tetriserve \
  --mix custom:256=1,512=1,1024=1 --runs 2 --out "$out/validate" --force 2>&1 | tee -a "$out/summary.md"
echo "(${PIPESTATUS[0]}: $(( $(date +%s) - start )) s)" | tee -a "$out/summary.md"

log "4. speed against PyTorch: FLUX.1-dev step, SP1, batch 1, 256-2048 px"
ours="$out/ours-sp1.csv"
start=$(date +%s)
timeout 200 "$bin" profile --model flux1-dev --resolutions 256,512,1024,2048 --batches 1 --degrees 1 \
  --warmup 1 --repeats 3 -o "$ours" 2>&1 | tee "$out/ours-sp1.log" | tail -8
echo "(ours ${PIPESTATUS[0]}: $(( $(date +%s) - start )) s)" | tee -a "$out/summary.md"
start=$(date +%s)
timeout 240 python3 scripts/torch_dit_step.py --resolutions 256,512,1024,2048 --batches 1 \
  --sdpa-backend fastest > "$out/torch.csv" 2> "$out/torch.log"
echo "(torch $?: $(( $(date +%s) - start )) s)" | tee -a "$out/summary.md"
python3 - "$ours" "$out/torch.csv" <<'PY' 2>&1 | tee "$out/compare.md" | tee -a "$out/summary.md"
import csv, sys
# FLOPs per FLUX.1-dev step, batch 1 (the analytic model's FLUX preset, src/cost/analytic/presets.rs;
# derived from the model's published shapes in docs/calibration.md): weight GEMMs 2 x 6.47e9 per token, adaLN 6.4e9
# per sample, attention 4 N^2 x 3072 over 57 blocks; N = (px/16)^2 image + 512 text tokens.
def flops(px):
    n = (px // 16) ** 2 + 512
    return n * 2.0 * (2.16e9 + 4.31e9) + 2.0 * 3.2e9 + 57 * 4.0 * n * n * 3072
ours, attention = {}, "unknown"
try:
    for line in open(sys.argv[1]):
        if line.startswith("# attention:"):
            attention = line.split(":", 1)[1].strip()
    rows = csv.DictReader(l for l in open(sys.argv[1]) if not l.startswith("#"))
    for r in rows:
        if r["sp_degree"] == "1" and r["batch"] == "1":
            ours[int(r["width"])] = float(r["step_ms"])
except FileNotFoundError:
    pass
torch = {}
try:
    for r in csv.DictReader(open(sys.argv[2])):
        torch[int(r["resolution"].split("x")[0])] = r
except FileNotFoundError:
    pass
print(f"our attention backend: {attention}")
print("| px | ours ms | ours TFLOP/s | PyTorch fastest eager ms | its SDPA backend | PyTorch TFLOP/s | ours / PyTorch | torch | cuDNN |")
print("|---|---|---|---|---|---|---|---|---|")
for px in [256, 512, 1024, 2048]:
    o, t = ours.get(px), torch.get(px)
    tm = float(t["torch_ms"]) if t else None
    cell = lambda v, f: f.format(v) if v is not None else "-"
    print("| {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
        px, cell(o, "{:.1f}"), cell(o and flops(px) / (o * 1e-3) / 1e12, "{:.0f}"),
        cell(tm, "{:.1f}"), t["sdpa_backend"] if t else "-",
        cell(tm and flops(px) / (tm * 1e-3) / 1e12, "{:.0f}"),
        cell(o / tm if o and tm else None, "{:.2f}"),
        t["torch_version"] if t else "-", t["cudnn_version"] if t else "-"))
PY

if [ "${GPU_CHECK_FULL:-0}" = 1 ]; then
  log "5. full profile flux1-dev (median of 3 steps after 1 warm-up)"
  prof="$out/flux1-dev-measured.csv"
  timeout 300 "$bin" profile --model flux1-dev --warmup 1 --repeats 3 -o "$prof" 2>&1 | tee "$out/profile.log" | tail -60
fi
echo "done" | tee -a "$out/summary.md"
