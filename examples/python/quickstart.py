"""tetriserve from Python in one page: run the default scenario, read the results as pandas
DataFrames, change the scenario, and schedule with a policy written in Python.

    pip install ./python          # builds the Rust extension (needs cargo)
    python examples/python/quickstart.py
"""

import tetriserve
from tetriserve import Decision


# 1. The default scenario (300 requests on one 8x H100 node), two built-in policies.
result = tetriserve.simulate(policies=["xdit-sp8", "stepwise"])
print(result.description)
print(result.comparison[["policy", "slo_attainment", "met", "requests"]].to_string(index=False))
print(f"upper bound on attainment: {result.bound:.1%}")

# 2. Records are DataFrames (times in integer nanoseconds).
req = result.requests
req["latency_s"] = (req["finish_ns"] - req["arrival_ns"]) / 1e9
print(req.groupby(["policy", "width"])["latency_s"].median().unstack())

# 3. Overrides are the command line's flags: looser deadlines, a burstier stream.
bursty = tetriserve.simulate(policies=["stepwise"], slo_scale=1.5, arrival="gamma", cv=3)
print("stepwise, bursty, SLO x1.5:", bursty.summary["stepwise"]["slo_attainment"])


# 4. A policy in Python: first come first served, every request on the whole of node 0's
#    lowest free GPUs at degree 2.
class Pairs(tetriserve.Policy):
    name = "py-pairs"

    def decide(self, view):
        out, mask = [], view.free_mask(0)
        for r in view.waiting():
            if bin(mask).count("1") < 2:
                break
            low = mask & -mask
            second = (mask ^ low) & -(mask ^ low)
            mask ^= low | second
            out.append(Decision.dispatch(r, view.request(r).remaining_steps,
                                         tetriserve.GpuSet(0, low | second)))
        return out


mine = tetriserve.simulate(policies=["xdit-sp2", Pairs()])
print(mine.comparison[["policy", "slo_attainment", "met"]].to_string(index=False))
