"""The measurements of docs/python.md: a large run with a Rust policy from Python against the
command line, and what a decision costs when the policy is written in Python.

    cargo build --release && python examples/python/overhead.py [--requests 100000] [--repeats 5]

Prints wall-clock and CPU times on the machine that runs it (nothing here is simulated time).
On a machine shared with other work, compare CPU times: wall-clock ones move with the load.
"""

import argparse
import resource
import statistics
import subprocess
import time

import pandas  # noqa: F401  (imported up front: the DataFrame timing excludes the import)

import tetriserve
from fixed_sp import FixedSP


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(fn, cpu):
    """(wall seconds, CPU seconds) of one call."""
    w0, c0 = time.perf_counter(), cpu()
    fn()
    return time.perf_counter() - w0, cpu() - c0


def compare(cli, policy, requests, repeats):
    """The same run from the command line (a process, no --out) and from Python, alternated;
    best and median of wall-clock and of CPU time (user + system) for each."""
    n = str(requests)
    runs = {"CLI": [], "Python": [], "Python works=False": []}
    for _ in range(repeats):
        runs["CLI"].append(timed(lambda: subprocess.run(
            [cli, "simulate", "--requests", n, "-p", policy], check=True, capture_output=True),
            children_cpu))
        runs["Python"].append(timed(
            lambda: tetriserve.simulate(policies=[policy], requests=requests), time.process_time))
        runs["Python works=False"].append(timed(
            lambda: tetriserve.simulate(policies=[policy], requests=requests, works=False),
            time.process_time))
    stats = {}
    for k, v in runs.items():
        wall, cpu = [x[0] for x in v], [x[1] for x in v]
        stats[k] = (min(wall), statistics.median(wall), min(cpu), statistics.median(cpu))
    c = stats["CLI"]
    print(f"{policy:10} {n} requests: CLI wall best/median {c[0]:.3f}/{c[1]:.3f} s, "
          f"CPU best/median {c[2]:.3f}/{c[3]:.3f} s")
    for k in ("Python", "Python works=False"):
        p = stats[k]
        print(f"    {k:19}: wall best/median {p[0]:.3f}/{p[1]:.3f} s, CPU best/median "
              f"{p[2]:.3f}/{p[3]:.3f} s; / CLI: CPU medians {p[3] / c[3]:.3f}, wall medians "
              f"{p[1] / c[1]:.3f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cli", default="target/release/tetriserve")
    a = ap.parse_args()
    for policy in ("xdit-sp4", "stepwise", "tetriserve"):
        compare(a.cli, policy, a.requests, a.repeats)

    result = tetriserve.simulate(policies=["stepwise"], requests=a.requests)
    t0 = time.perf_counter()
    rows = len(result.requests) + len(result.works)
    print(f"stepwise's DataFrames ({rows} rows of requests and works) built in "
          f"{time.perf_counter() - t0:.2f} s")

    both = tetriserve.simulate(policies=["xdit-sp4", FixedSP(4)], requests=a.requests)
    assert both.requests_csv("xdit-sp4") == both.requests_csv("py-sp4")
    rust, mine = (both.summary[k]["scheduler"] for k in ("xdit-sp4", "py-sp4"))
    print(f"per decision ({rust['decisions']} decisions): xdit-sp4 in Rust mean "
          f"{rust['mean_us']:.2f} us (p99 {rust['p99_us']:.2f}); the same policy in Python "
          f"(examples/python/fixed_sp.py) mean {mine['mean_us']:.2f} us (p50 "
          f"{mine['p50_us']:.2f}, p99 {mine['p99_us']:.2f}); overhead "
          f"{mine['mean_us'] - rust['mean_us']:.2f} us per decision")


if __name__ == "__main__":
    main()
