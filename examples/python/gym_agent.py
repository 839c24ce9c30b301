"""Agents for tetriserve.gym.ServingEnv: a random one and a heuristic (start the most urgent
waiting request at the narrowest degree that still meets its deadline, else the widest)."""

import numpy as np

from tetriserve.gym import ServingEnv


def heuristic(env: ServingEnv, obs: np.ndarray) -> int:
    d = len(env.degrees)
    width = 3 + d
    if obs[0] == 0.0:  # no waiting request
        return 0
    slack, times = obs[1], obs[3:width]
    room = obs[env.max_queue * width: env.max_queue * width + d]
    for j in range(d):
        if room[j] and times[j] <= slack:
            return 1 + j
    for j in reversed(range(d)):
        if room[j]:
            return 1 + j
    return 0


def play(env: ServingEnv, agent, seed: int) -> float:
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        obs, reward, done, _, _ = env.step(agent(obs))
        total += reward
    return total


if __name__ == "__main__":
    env = ServingEnv(requests=100)
    rng = np.random.default_rng(0)
    print("random   :", play(env, lambda obs: int(rng.integers(env.action_space.n)), seed=1), "met of 100")
    print("heuristic:", play(env, lambda obs: heuristic(env, obs), seed=1), "met of 100")
    env.close()
