#!/usr/bin/env bash
# The GPU check, sized for a few minutes on one H100/H200 (see README, "Real GPUs").
# Probes the CUDA libraries, checks the kernels against the CPU reference and the emulated
# Ulysses ranks against the plain step, times latent hand-offs (and NCCL with 2+ devices),
# profiles FLUX.1-dev at 256-2048 px, times the PyTorch reference of the same step, validates
# the simulator on a short trace (`validate`: real run vs simulation), and writes a summary. Needs a release binary built elsewhere
# (the GPU machine has no Rust): TETRISERVE_BIN, default target/release/tetriserve.
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
  ldconfig -p | grep -E 'libcuda\.so|libcublas\.so|libnvrtc\.so' | head -5
  echo
} > "$out/summary.md"

log "numerics (tiny model, GPU vs CPU reference)"
"$bin" gpu-check 2>&1 | tee -a "$out/summary.md"

log "profile flux1-dev (median of 3 steps after 1 warm-up)"
prof="$out/h100-flux1-dev-measured.csv"
timeout 300 "$bin" profile --model flux1-dev --warmup 1 --repeats 3 -o "$prof" 2>&1 | tee "$out/profile.log" | tail -60

log "PyTorch reference (SDPA), batch 1"
timeout 150 python3 scripts/torch_dit_step.py --resolutions 256,512,1024,2048 --batches 1 > "$out/torch.csv" 2> "$out/torch.log"
cat "$out/torch.csv" | tee -a "$out/summary.md"

log "ours / PyTorch, SP 1, batch 1"
python3 - "$prof" "$out/torch.csv" <<'PY' | tee -a "$out/summary.md"
import csv, sys
ours = {}
try:
    for r in csv.DictReader(l for l in open(sys.argv[1]) if not l.startswith("#")):
        if r["sp_degree"] == "1" and r["batch"] == "1":
            ours[f'{r["width"]}x{r["height"]}'] = float(r["step_ms"])
except FileNotFoundError:
    pass
print("| resolution | tetriserve ms | PyTorch ms | ratio |\n|---|---|---|---|")
for r in csv.DictReader(open(sys.argv[2])):
    o = ours.get(r["resolution"])
    t = float(r["torch_ms"])
    print(f'| {r["resolution"]} | {o if o is None else round(o, 2)} | {t:.2f} | {"-" if o is None else round(o / t, 3)} |')
PY

# 256-1024 px only: a 2048 px request takes ~2 minutes on one GPU with the unfused attention.
log "validate: 16 requests of 256-1024 px, 60 req/min, SLO 1.5x, tetriserve, real vs simulated"
timeout 300 "$bin" validate --requests 16 --rate 60 --slo-scale 1.5 --policy tetriserve \
  --mix custom:256=1,512=1,1024=1 \
  --out "$out/validate" --force 2>&1 | tee -a "$out/summary.md"
echo "done" | tee -a "$out/summary.md"
