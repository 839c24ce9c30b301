#!/usr/bin/env python3
"""A plain Python discrete-event simulator of tetriserve's fixed-degree baselines.

Usage:
    scripts/fcfs_reference.py --trace TRACE.csv --profile profiles/h100-flux1-dev.csv \\
        --gpus 1024 -p rssp [-p xdit-sp8 ...] [--gpus-per-node 8] [--slo-scale 1.0]

prints, per policy, the SLO attainment (met/total) and the wall time of reading the trace and
of simulating it. Compare with

    tetriserve simulate --trace TRACE.csv --profile profiles/h100-flux1-dev.csv --gpus 1024 -p rssp

which reads the same files with the same defaults. Python 3 standard library only.

What it is for: a reference point ("tetriserve is N x faster than a plain Python simulator on
the same trace") and an independent cross-check of the Rust engine and policies. It is written
to be read, not to be fast: one heap of events, one FIFO queue, and the policies' rules as they
are stated in `src/policy/fixed_sp.rs` and `src/policy/rssp.rs`.

The model it reproduces (tetriserve's default scenario, `scenarios/default.toml`):
- The cluster is `--gpus` GPUs: one node if they fit in a node of 8 and `--gpus-per-node` is
  not given, else nodes of `--gpus-per-node` (8) GPUs. NVSwitch nodes, so every group's
  collectives run over NVLink.
- A request runs all its denoising steps in one work, on one GPU set, without preemption. The
  work lasts `steps x step time`, where the step time is the profile's `step_ms` for the
  request's resolution at the group's degree, batch 1, converted to integer nanoseconds as
  tetriserve does (`round(ms / 1e3 * 1e9)`, halves away from zero). The default overheads add
  nothing to such a work: text encoder, VAE decode, group set-up and dispatch cost are zero,
  and the remap hand-off is only paid by a request that moves between GPU sets, which these
  policies never do.
- A request meets its SLO if its work ends at or before `arrival + slo_s` (exact integer
  nanoseconds; a row without `slo_s` takes `scale x base`, with the scenario's bases of 1.5,
  2, 3 and 5 s for 256, 512, 1024 and 2048 px squares).
- Events at the same nanosecond are all handled (arrivals in file order, then the policy sees
  the GPUs the completions freed) before the policy decides once for that instant.
- `xdit-spK`: each node is cut into `gpus_per_node / K` fixed groups of K consecutive GPUs.
  Whenever a group is idle, the oldest waiting request runs on the lowest-numbered idle group.
- `rssp`: each resolution has a fixed degree (256->1, 512->1, 1024->2, 2048->8; a resolution
  without one, or whose degree does not fit the node, gets the smallest degree whose
  `steps x step time` meets its base SLO alone, or the fastest degree if none does). The
  oldest waiting request starts as soon as some node has that many idle GPUs (the first such
  node, its lowest-numbered idle GPUs); if it does not fit, everything behind it waits too
  (strict FCFS, no backfilling).

Limits, by design: the trace must be valid (run it through `tetriserve simulate` first; this
script checks little), and every resolution in it must have its own rows in the profile
(tetriserve interpolates between rows for unlisted resolutions; this script refuses them).
Only the default overheads are modelled; scenario files are not read.

Agreement: on every trace it was checked on, the met count equals tetriserve's exactly:
generated traces of 1,000 to 1,000,000 rows (uniform and skewed mixes, 6 to 6,000 requests
per minute), on 4, 8, 16 and 1,024 GPUs, under rssp and xdit-sp1/2/4/8, and the same rows with
reordered columns, comments, CRLF endings, quoted ids and empty slo_s cells. docs/performance.md
has the timings.
"""

import argparse
import collections
import csv
import heapq
import math
import sys
import time

NS_PER_S = 1_000_000_000

# The scenario's SLO bases (seconds) and RSSP's configured degrees, by (width, height).
SLO_BASES_S = {(256, 256): 1.5, (512, 512): 2.0, (1024, 1024): 3.0, (2048, 2048): 5.0}
RSSP_DEGREES = {(256, 256): 1, (512, 512): 1, (1024, 1024): 2, (2048, 2048): 8}
# The steps RSSP's automatic rule assumes (the scenario's workload steps).
RSSP_RULE_STEPS = 28


def round_half_away(x):
    """Rounds a non-negative float to the nearest integer, halves up (as Rust's f64::round)."""
    whole = math.floor(x)
    return whole + 1 if x - whole >= 0.5 else whole


def secs_to_ns(cell):
    """Seconds as integer nanoseconds: exact for plain decimals of up to nine fractional
    digits, through a float (rounded to the nanosecond) for anything else, as tetriserve."""
    whole, _, frac = cell.partition(".")
    digits = whole + frac
    if digits and digits.isascii() and digits.isdigit() and len(frac) <= 9:
        return int(whole or "0") * NS_PER_S + int(frac.ljust(9, "0"))
    return round_half_away(float(cell) * 1e9)


def read_trace(path, slo_scale):
    """The trace's requests as (arrival_ns, (width, height), steps, deadline_ns), in file order
    (which is arrival order in a valid trace)."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        lines = [line for line in f if line.strip() and not line.strip().startswith("#")]
    rows = csv.reader(lines, skipinitialspace=True)
    header = [name.strip().lower() for name in next(rows)]
    col = {name: i for i, name in enumerate(header)}
    requests = []
    for row in rows:
        cell = [c.strip() for c in row]
        arrival = secs_to_ns(cell[col["arrival_s"]])
        res = (int(cell[col["width"]]), int(cell[col["height"]]))
        steps = int(cell[col["steps"]])
        if "slo_s" in col and cell[col["slo_s"]]:
            slo = secs_to_ns(cell[col["slo_s"]])
        else:
            slo = round_half_away(SLO_BASES_S[res] * slo_scale * 1e9)
        requests.append((arrival, res, steps, arrival + slo))
    return requests


def read_profile(path):
    """Step times in integer nanoseconds by (width, height, degree), batch 1."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        lines = [line for line in f if line.strip() and not line.strip().startswith("#")]
    step_ns = {}
    for row in csv.DictReader(lines, skipinitialspace=True):
        if int(row["batch"]) == 1:
            key = (int(row["width"]), int(row["height"]), int(row["sp_degree"]))
            step_ns[key] = round_half_away(float(row["step_ms"]) / 1e3 * 1e9)
    return step_ns


def degrees(per_node):
    """The SP degrees a node can run: powers of two up to its size."""
    k, out = 1, []
    while k <= per_node:
        out.append(k)
        k *= 2
    return out


def rssp_degree(res, per_node, step_ns):
    """RSSP's degree for a resolution (see the module docstring)."""
    configured = RSSP_DEGREES.get(res)
    if configured is not None and configured <= per_node:
        return configured
    step = {k: step_ns[(res[0], res[1], k)] for k in degrees(per_node)}
    if res in SLO_BASES_S:
        base = round_half_away(SLO_BASES_S[res] * 1e9)
        for k in degrees(per_node):
            if step[k] * RSSP_RULE_STEPS <= base:
                return k
    return min(degrees(per_node), key=lambda k: (step[k], k))


def simulate(requests, policy, nodes, per_node, step_ns):
    """Runs `policy` on the requests; returns how many met their deadline."""
    for _, (w, h), _, _ in requests:
        for k in degrees(per_node):
            if (w, h, k) not in step_ns:
                sys.exit(f"the profile has no batch-1 row for {w}x{h} at SP {k}")

    # Policy state. rssp: a bit mask of idle GPUs per node. xdit-spK: fixed groups, the idle
    # ones in a heap (lowest index first).
    if policy == "rssp":
        fixed_k = None
        idle_mask = [(1 << per_node) - 1] * nodes
        idle_count = [per_node] * nodes
        degree_of = {}
    elif policy.startswith("xdit-sp") and policy.removeprefix("xdit-sp").isdigit():
        fixed_k = int(policy.removeprefix("xdit-sp"))
        if not 0 < fixed_k <= per_node or fixed_k & (fixed_k - 1):
            sys.exit(f"{policy} needs a power-of-two degree of at most {per_node}")
        groups_per_node = per_node // fixed_k
        idle_groups = list(range(nodes * groups_per_node))
        heapq.heapify(idle_groups)
    else:
        sys.exit(f"unknown policy {policy}; expected rssp or xdit-spK")

    # The event heap: (time, sequence number, kind, payload). Arrivals take the first
    # sequence numbers, so at equal times they come first, in file order.
    events = [(arrival, i, "arrival", i) for i, (arrival, _, _, _) in enumerate(requests)]
    heapq.heapify(events)
    seq = len(events)
    waiting = collections.deque()
    met = 0

    while events:
        now = events[0][0]
        # Handle every event of this instant.
        while events and events[0][0] == now:
            _, _, kind, payload = heapq.heappop(events)
            if kind == "arrival":
                waiting.append(payload)
            else:
                request, gpus = payload
                if now <= requests[request][3]:
                    met += 1
                if fixed_k is None:
                    node, mask = gpus
                    idle_mask[node] |= mask
                    idle_count[node] += bin(mask).count("1")
                else:
                    heapq.heappush(idle_groups, gpus)

        # Then the policy decides once: start waiting requests, oldest first.
        while waiting:
            request = waiting[0]
            _, res, steps, _ = requests[request]
            if fixed_k is None:
                if res not in degree_of:
                    degree_of[res] = rssp_degree(res, per_node, step_ns)
                k = degree_of[res]
                node = next((n for n in range(nodes) if idle_count[n] >= k), None)
                if node is None:
                    break  # The head does not fit: everyone waits (no backfilling).
                mask = lowest_bits(idle_mask[node], k)
                idle_mask[node] &= ~mask
                idle_count[node] -= k
                gpus = (node, mask)
            else:
                if not idle_groups:
                    break
                k = fixed_k
                gpus = heapq.heappop(idle_groups)
            waiting.popleft()
            end = now + steps * step_ns[(res[0], res[1], k)]
            heapq.heappush(events, (end, seq, "done", (request, gpus)))
            seq += 1
    return met


def lowest_bits(mask, k):
    """The k lowest set bits of `mask`."""
    out = 0
    for _ in range(k):
        bit = mask & -mask
        out |= bit
        mask &= mask - 1
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trace", required=True, help="trace CSV (id,arrival_s,width,height,steps,slo_s)")
    p.add_argument("--profile", required=True, help="profile CSV, e.g. profiles/h100-flux1-dev.csv")
    p.add_argument("--gpus", type=int, default=8, help="total GPUs (default 8)")
    p.add_argument("--gpus-per-node", type=int, help="GPUs per node (default 8)")
    p.add_argument("-p", "--policy", action="append", help="rssp or xdit-spK (repeatable; default rssp)")
    p.add_argument("--slo-scale", type=float, default=1.0, help="scale of the SLO bases for rows without slo_s")
    a = p.parse_args()

    # As `tetriserve --gpus`: one node if the GPUs fit the default node size, else nodes of
    # the given (or default) size.
    per_node = a.gpus_per_node or 8
    if a.gpus_per_node is None and 0 < a.gpus <= per_node:
        nodes, per_node = 1, a.gpus
    elif a.gpus > 0 and a.gpus % per_node == 0:
        nodes = a.gpus // per_node
    else:
        sys.exit(f"--gpus {a.gpus} is not a multiple of {per_node} GPUs per node")

    t0 = time.perf_counter()
    requests = read_trace(a.trace, a.slo_scale)
    step_ns = read_profile(a.profile)
    read_s = time.perf_counter() - t0
    print(f"read {len(requests)} requests in {read_s:.2f} s; {nodes} node(s) x {per_node} GPUs")
    for policy in a.policy or ["rssp"]:
        t0 = time.perf_counter()
        met = simulate(requests, policy, nodes, per_node, step_ns)
        sim_s = time.perf_counter() - t0
        total = len(requests)
        print(
            f"{policy}: met {met}/{total} ({100 * met / total:.1f}%), "
            f"simulated in {sim_s:.2f} s ({read_s + sim_s:.2f} s with reading)"
        )


if __name__ == "__main__":
    main()
