"""A Gymnasium environment for learned schedulers: ``ServingEnv``.

The Rust engine replays a workload; at every decision point where a request waits and some
GPUs are idle, the agent chooses what to start. The agent's choices reach the engine through
an ordinary :class:`tetriserve.Policy`, so the engine, its checks and its records are the ones
every other policy gets (the run is driven from a background thread that hands each decision
point to ``step`` and waits for the action; nothing is simulated in Python).

**Episode**: one run of a workload: the scenario's generator (the default scenario, or a
file/dict and overrides such as ``requests=50``) seeded from ``reset(seed=...)``, or a trace
(``trace="file.csv"``; then every episode replays it). It ends when every request has ended.

**Action** (``Discrete(1 + max_queue * len(degrees))``): ``0`` waits for the next event (an
arrival or a completed work); ``1 + i * len(degrees) + j`` starts the i-th waiting request
(waiting requests sorted by deadline, then arrival) at SP degree ``degrees[j]`` on the
lowest-numbered idle GPUs of the first node that has that many, for all its remaining steps
(non-preemptive). An action naming an empty slot, or a degree no node has room for, waits.
After a start the same instant is offered again while requests wait and GPUs are idle.
Waiting while the whole cluster is idle asks the engine to come back ``idle_wait_s`` (default
1 s) later, so that an episode cannot stall; the engine ends a run whose policy keeps waking
without dispatching (100,000 idle wake-ups) with an error.

**Observation** (``Box(-1, 1, (max_queue * (3 + D) + D + 2,), float32)``, D = len(degrees)):
per queue slot: present (0/1), slack to the deadline (seconds / ``horizon_s``, clipped),
remaining steps / 100, and per degree the time its remaining steps take at that degree
(seconds / ``horizon_s``); then per degree whether some node has that many idle GPUs; then the
cluster's idle fraction and the number of waiting requests / (4 * max_queue), clipped.

**Reward**: +1 for each request that finishes by its deadline (the engine's rule: finishing at
the deadline meets it), counted at the step after it finishes; ``miss_penalty`` (shaping,
default 0) is subtracted for each request that finishes late.

Deterministic for a seed: the same seed and the same actions give the same observations and
rewards.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

import tetriserve
from tetriserve import Decision, GpuSet


class _Abort(Exception):
    """Ends a run the environment no longer needs."""


def _lowest_bits(mask: int, k: int) -> int:
    out = 0
    for _ in range(k):
        if mask == 0:
            return 0
        bit = mask & -mask
        out |= bit
        mask ^= bit
    return out


class _Bridge(tetriserve.Policy):
    """The policy the engine runs: each decision point goes to the agent."""

    name = "gym-agent"

    def __init__(self, env: "ServingEnv"):
        self.env = env

    def decide(self, view):
        return self.env._decide(view)


class ServingEnv(gymnasium.Env):
    """Serve DiT requests under deadlines; see the module's documentation."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        scenario: Any = None,
        *,
        max_queue: int = 8,
        degrees: tuple[int, ...] = (1, 2, 4, 8),
        miss_penalty: float = 0.0,
        horizon_s: float = 60.0,
        idle_wait_s: float = 1.0,
        **overrides: Any,
    ):
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.scenario = scenario
        self.overrides = dict(overrides)
        self.max_queue = int(max_queue)
        self.degrees = tuple(int(d) for d in degrees)
        self.miss_penalty = float(miss_penalty)
        self.horizon_ns = float(horizon_s) * 1e9
        if not idle_wait_s > 0:
            raise ValueError("idle_wait_s must be positive")
        self.idle_wait_ns = max(1, int(idle_wait_s * 1e9))
        d = len(self.degrees)
        self.action_space = spaces.Discrete(1 + self.max_queue * d)
        size = self.max_queue * (3 + d) + d + 2
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(size,), dtype=np.float32)
        self._thread: threading.Thread | None = None
        self._to_agent: queue.Queue = queue.Queue()
        self._to_engine: queue.Queue = queue.Queue()
        self.result: tetriserve.Result | None = None

    # --- the engine's side (background thread) ---

    def _decide(self, view):
        for r in view.completed:
            q = view.request(r)
            if q.phase == "finished":
                met = view.now <= q.deadline
                self._pending += 1.0 if met else -self.miss_penalty
        free = [view.free_mask(n) for n in range(view.nodes)]
        started: set[int] = set()
        out = []
        while True:
            slots = sorted(
                (view.request(r) for r in view.waiting() if r not in started),
                key=lambda q: (q.deadline, q.id),
            )
            if not slots or not any(free):
                return out
            self._to_agent.put(("obs", self._observe(view, slots, free)))
            action = self._to_engine.get()
            if action is None:
                raise _Abort()
            if action == 0:
                return self._wait(view, out)
            i, j = divmod(action - 1, len(self.degrees))
            if i >= len(slots):
                return self._wait(view, out)
            k = self.degrees[j]
            for node, mask in enumerate(free):
                gpus = _lowest_bits(mask, k) if k <= view.gpus_per_node else 0
                if gpus:
                    q = slots[i]
                    free[node] &= ~gpus
                    started.add(q.id)
                    out.append(Decision.dispatch(q.id, q.remaining_steps, GpuSet(node, gpus)))
                    break
            else:
                return self._wait(view, out)

    def _wait(self, view, out):
        """Waiting with the whole cluster idle: nothing would wake the engine before the next
        arrival (or ever, after the last), so ask to be called again ``idle_wait_s`` later."""
        if not out and view.free_count() == view.nodes * view.gpus_per_node:
            out.append(Decision.wake_at(view.now + self.idle_wait_ns))
        return out

    def _observe(self, view, slots, free) -> np.ndarray:
        d = len(self.degrees)
        obs = np.zeros(self.observation_space.shape, dtype=np.float32)
        for i, q in enumerate(slots[: self.max_queue]):
            base = i * (3 + d)
            obs[base] = 1.0
            obs[base + 1] = (q.deadline - view.now) / self.horizon_ns
            obs[base + 2] = q.remaining_steps / 100.0
            for j, k in enumerate(self.degrees):
                t = view.step_time(q.id, k) if k <= view.gpus_per_node else None
                obs[base + 3 + j] = 1.0 if t is None else t * q.remaining_steps / self.horizon_ns
        tail = self.max_queue * (3 + d)
        for j, k in enumerate(self.degrees):
            obs[tail + j] = float(any(bin(m).count("1") >= k for m in free))
        total = view.nodes * view.gpus_per_node
        obs[tail + d] = sum(bin(m).count("1") for m in free) / total
        obs[tail + d + 1] = len(slots) / (4.0 * self.max_queue)
        return np.clip(obs, -1.0, 1.0)

    def _run(self, seed: int) -> None:
        try:
            overrides = dict(self.overrides)
            if "trace" not in overrides:
                overrides.setdefault("seed", seed)
            result = tetriserve.simulate(self.scenario, policies=[_Bridge(self)], **overrides)
            self._to_agent.put(("done", result))
        except _Abort:
            pass
        except BaseException as e:  # handed to the agent's side, raised in step/reset
            self._to_agent.put(("error", e))

    # --- the agent's side ---

    def _stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._to_engine.put(None)
            self._thread.join()
        self._thread = None
        self._to_agent = queue.Queue()
        self._to_engine = queue.Queue()

    def _next(self):
        kind, payload = self._to_agent.get()
        if kind == "error":
            self._thread = None
            raise payload
        # Read only while the engine's thread waits (for an action, or finished).
        reward, self._pending = self._pending, 0.0
        if kind == "done":
            self.result = payload
            self._thread = None
            return np.zeros(self.observation_space.shape, dtype=np.float32), reward, True
        return payload, reward, False

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._stop()
        self._pending = 0.0
        self.result = None
        run_seed = int(self.np_random.integers(0, 2**31 - 1))
        self._thread = threading.Thread(target=self._run, args=(run_seed,), daemon=True)
        self._thread.start()
        obs, _, done = self._next()
        self._done = done
        return obs, {}

    def step(self, action):
        if self._thread is None or self._done:
            raise RuntimeError("the episode has ended; call reset()")
        self._to_engine.put(int(action))
        obs, reward, done = self._next()
        self._done = done
        return obs, reward, done, False, {}

    def close(self):
        self._stop()
        super().close()
