#!/usr/bin/env bash
# Byte-for-byte comparison of two tetriserve binaries' outputs, for a refactoring that must not
# change any result: simulations of every policy (one and two nodes, a trace, caching, step
# skipping, an A40 profile, the analytic model, the paper-literal TetriServe), `figures` (charts
# and their data), a sweep, plots of runs and of sweep results, `goodput`, `optimum`,
# `validate --compare` and `trace generate`.
#
#   scripts/compare-outputs.sh OLD_BINARY NEW_BINARY [WORK_DIR]
#
# Wall-clock figures (the policies' decision times, "in X s" messages) are masked before the
# comparison; everything else must be identical. Exits 0 when it is, 1 otherwise (listing the
# files that differ). Run from the repository root (scenario files are read from it).
set -uo pipefail
old=${1:?usage: scripts/compare-outputs.sh OLD_BINARY NEW_BINARY [WORK_DIR]}
new=${2:?usage: scripts/compare-outputs.sh OLD_BINARY NEW_BINARY [WORK_DIR]}
work=${3:-$(mktemp -d)}
mkdir -p "$work"
cat > "$work/sweep.toml" <<'TOML'
name = "compare-sweep"
[workload]
requests = 60
arrival = "gamma"
cv = 2.0
[sweep]
rates_per_min = [12.0, 24.0]
seeds = [1, 2]
gpus = [8, 16]
policies = ["all", "tetriserve-shed", "stepwise"]
TOML

outputs() {
  local B=$1 O=$2
  rm -rf "$O"; mkdir -p "$O"
  run() { local name=$1; shift; "$B" "$@" > "$O/$name.stdout" 2> "$O/$name.stderr"; echo "rc=$?" >> "$O/$name.stdout"; }
  run sim-default simulate -p all -p tetriserve-shed -p stepwise --out "$O/sim-default"
  run sim-multinode simulate -p all -p tetriserve-shed -p stepwise --gpus 16 --mix skewed --rate 25 --slo-scale 0.8 --steps 50 --requests 200 --out "$O/sim-multi"
  run sim-skip simulate -s scenarios/beyond/step-skipping.toml --out "$O/sim-skip"
  run sim-table3 simulate -s scenarios/paper/table3-nirvana.toml --out "$O/sim-table3"
  run sim-a40 simulate -s scenarios/a40-sd3-medium.toml --out "$O/sim-a40"
  run sim-analytic simulate -s scenarios/what-if/flux-h200-analytic.toml --out "$O/sim-analytic"
  run sim-literal simulate -s scenarios/tetriserve-paper-literal.toml --granularity 3 --tie-break work --out "$O/sim-literal"
  run sim-onoff simulate --arrival on-off --on-s 20 --off-s 40 --rate 30 -p tetriserve -p rssp --out "$O/sim-onoff"
  run sim-trace simulate --trace traces/tiny.csv --time-scale 2 --out "$O/sim-trace"
  run figures figures --out "$O/figures"
  run sweep sweep -s "$work/sweep.toml" --out "$O/sweep" -j 2
  run goodput goodput --policy stepwise --min-rate 4 --max-rate 40 --seeds 1,2 --requests 80
  run goodput-gpus goodput --policy xdit-sp4 --min-gpus --rate 20 --seeds 1 --requests 80
  run plot-run plot --run "$O/sim-default/stepwise" --run "$O/sim-default/tetriserve" --out "$O/plot-run"
  run plot-sweep plot "$O/sweep/results.csv" --x rate_per_min --out "$O/plot-sweep"
  run vcompare validate --compare "$O/sim-default/rssp" "$O/sim-default/stepwise"
  run optimum optimum --window 30 --windows 2
  run tracegen trace generate --requests 50 --seed 3 -o "$O/gen.csv"
  # Mask wall-clock figures and the output directory's own name.
  python3 - "$O" <<'PY'
import json, os, re, sys
root = sys.argv[1]
for d, _, files in os.walk(root):
    for f in files:
        p = os.path.join(d, f)
        if f.endswith('.json') and f != 'timeline.json':
            try:
                j = json.load(open(p))
            except Exception:
                continue
            def scrub(x):
                if isinstance(x, dict):
                    return {k: scrub(v) for k, v in x.items() if k != 'scheduler'}
                if isinstance(x, list):
                    return [scrub(v) for v in x]
                return x
            json.dump(scrub(j), open(p, 'w'), indent=1, sort_keys=True)
        elif f.endswith(('.stdout', '.stderr', '.md')):
            t = open(p).read().replace(root, 'OUT')
            t = re.sub(r'\d+(\.\d+)?\s?(us|µs|ms|s)\b', 'T', t)
            t = re.sub(r' +', ' ', t)
            open(p, 'w').write(t)
PY
}

outputs "$old" "$work/old"
outputs "$new" "$work/new"
if diff -rq "$work/old" "$work/new"; then
  echo "identical: every output of $new matches $old (wall-clock figures masked; $work)"
else
  echo "different (see the files above; $work)"
  exit 1
fi
