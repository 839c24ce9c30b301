"""xDiT with a fixed SP degree, written in Python: reproduces the built-in `xdit-sp4` exactly.

Each node is cut into static groups of k consecutive GPUs; one FCFS queue; the lowest-numbered
idle group takes the oldest waiting request for all its steps.
"""

import heapq
from collections import deque

import tetriserve
from tetriserve import Decision, GpuSet


class FixedSP(tetriserve.Policy):
    def __init__(self, k: int = 4):
        self.k, self.name = k, f"py-sp{k}"
        self.groups, self.idle, self.queue = None, [], deque()

    def decide(self, view):
        if self.groups is None:  # static groups, node by node
            per_node = view.gpus_per_node // self.k
            self.groups = [GpuSet.range(n, g * self.k, self.k)
                           for n in range(view.nodes) for g in range(per_node)]
            self.index = {g: i for i, g in enumerate(self.groups)}
            self.idle = list(range(len(self.groups)))
        self.queue.extend(view.arrived)
        for r in view.completed:
            heapq.heappush(self.idle, self.index[view.request(r).gpus])
        out = []
        while self.queue and self.idle:
            r = self.queue.popleft()
            group = self.groups[heapq.heappop(self.idle)]
            out.append(Decision.dispatch(r, view.request(r).remaining_steps, group))
        return out


if __name__ == "__main__":
    result = tetriserve.simulate(policies=["xdit-sp4", FixedSP(4)])
    print(result.comparison[["policy", "slo_attainment", "met", "requests"]])
