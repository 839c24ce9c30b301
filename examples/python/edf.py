"""Earliest deadline first at the narrowest feasible degree, written in Python.

At every decision point the waiting requests are taken in deadline order; each gets the
narrowest SP degree whose remaining steps (at the profile's step time) end by its deadline, or
the fastest degree if none does, on the lowest free GPUs of the first node that has that many.
A request that fits nowhere waits; later ones may still start (backfilling). Non-preemptive:
a request runs all its remaining steps on its group. Overheads outside the steps (text encoder,
VAE) are not planned for, so "feasible" is optimistic.
"""

import tetriserve
from tetriserve import Decision, GpuSet


def lowest_bits(mask: int, k: int) -> int:
    """The k lowest set bits of mask (0 if it has fewer)."""
    out = 0
    for _ in range(k):
        if mask == 0:
            return 0
        bit = mask & -mask
        out |= bit
        mask ^= bit
    return out


class EDF(tetriserve.Policy):
    name = "py-edf"

    def decide(self, view):
        free = [view.free_mask(n) for n in range(view.nodes)]
        degrees = view.degrees()
        out = []
        waiting = sorted((view.request(r) for r in view.waiting()), key=lambda q: q.deadline)
        for q in waiting:
            times = {k: view.step_time(q.id, k) * q.remaining_steps for k in degrees}
            feasible = [k for k in degrees if view.now + times[k] <= q.deadline]
            k = feasible[0] if feasible else min(degrees, key=lambda d: (times[d], d))
            for node, mask in enumerate(free):
                gpus = lowest_bits(mask, k)
                if gpus:
                    free[node] &= ~gpus
                    out.append(Decision.dispatch(q.id, q.remaining_steps, GpuSet(node, gpus)))
                    break
        return out


if __name__ == "__main__":
    result = tetriserve.simulate(policies=["xdit-sp8", "stepwise", EDF()])
    print(result.comparison[["policy", "slo_attainment", "met", "requests"]])
