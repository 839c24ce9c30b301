"""The Gymnasium environment: passes Gymnasium's checker, is deterministic under a seed, and
its rewards add up to the engine's count of met deadlines."""

import numpy as np
import pytest

gymnasium = pytest.importorskip("gymnasium")
from gymnasium.utils.env_checker import check_env  # noqa: E402

from tetriserve.gym import ServingEnv  # noqa: E402
from gym_agent import heuristic, play  # noqa: E402


def test_check_env_passes():
    env = ServingEnv(requests=20)
    check_env(env, skip_render_check=True)
    env.close()


def episode(env, seed, actions):
    obs, _ = env.reset(seed=seed)
    trace, done, i = [obs], False, 0
    rewards = []
    while not done:
        obs, r, done, trunc, _ = env.step(actions[i % len(actions)])
        trace.append(obs)
        rewards.append(r)
        i += 1
    return np.array(trace), rewards


def test_deterministic_under_a_seed():
    env = ServingEnv(requests=30)
    actions = [3, 1, 0, 5, 2, 9, 1, 1]
    a = episode(env, 4, actions)
    b = episode(env, 4, actions)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    c = episode(env, 5, actions)
    assert len(c[0]) != len(a[0]) or not np.array_equal(c[0], a[0])
    env.close()


def test_rewards_count_met_deadlines():
    env = ServingEnv(requests=40)
    total = play(env, lambda obs: heuristic(env, obs), seed=2)
    s = env.result.summary["gym-agent"]
    assert total == s["met"] and s["met"] > 0
    assert env.result.check() == {"gym-agent": []}
    env.close()


def test_miss_penalty_shapes_the_reward():
    env = ServingEnv(requests=40, miss_penalty=0.5)
    total = play(env, lambda obs: 1, seed=2)  # always the most urgent at degree 1
    s = env.result.summary["gym-agent"]
    assert total == s["met"] - 0.5 * s["missed"]
    env.close()


def test_reset_mid_episode_starts_over():
    env = ServingEnv(requests=30)
    first, _ = env.reset(seed=9)
    env.step(1)
    env.step(2)
    again, _ = env.reset(seed=9)
    assert np.array_equal(first, again)
    env.close()
