"""The measurements of docs/python.md: a large run with a Rust policy from Python against the
command line, and what a decision costs when the policy is written in Python.

    python examples/python/overhead.py [--requests 100000] [--repeats 3] [--cli target/release/tetriserve]

Prints wall-clock times on the machine that runs it; nothing here is simulated time.
"""

import argparse
import statistics
import subprocess
import time

import tetriserve
from fixed_sp import FixedSP


def best_of(repeats, fn):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--policy", default="stepwise")
    ap.add_argument("--cli", default="target/release/tetriserve")
    a = ap.parse_args()
    n, p = str(a.requests), a.policy

    cli = best_of(a.repeats, lambda: subprocess.run(
        [a.cli, "simulate", "--requests", n, "-p", p], check=True, capture_output=True))
    py = best_of(a.repeats, lambda: tetriserve.simulate(policies=[p], requests=a.requests))
    result = tetriserve.simulate(policies=[p], requests=a.requests)
    t0 = time.perf_counter()
    frames = len(result.requests) + len(result.works)
    to_pandas = time.perf_counter() - t0
    print(f"{p}, {n} requests: CLI best {cli[0]:.2f} s (median {cli[1]:.2f}), "
          f"Python simulate() best {py[0]:.2f} s (median {py[1]:.2f}), "
          f"ratio of bests {py[0] / cli[0]:.3f}; DataFrames ({frames} rows) {to_pandas:.2f} s")

    both = tetriserve.simulate(policies=["xdit-sp4", FixedSP(4)], requests=a.requests)
    assert both.requests_csv("xdit-sp4") == both.requests_csv("py-sp4")
    rust, mine = (both.summary[k]["scheduler"] for k in ("xdit-sp4", "py-sp4"))
    print(f"per decision ({rust['decisions']} decisions): xdit-sp4 in Rust mean "
          f"{rust['mean_us']:.2f} us (p99 {rust['p99_us']:.2f}); the same policy in Python "
          f"mean {mine['mean_us']:.2f} us (p50 {mine['p50_us']:.2f}, p99 {mine['p99_us']:.2f}); "
          f"overhead {mine['mean_us'] - rust['mean_us']:.2f} us per decision")


if __name__ == "__main__":
    main()
