"""Deterministic evaluation of a trained policy, and the random-walk baseline beside it.

`evaluate` runs `episodes` episodes of a sim scenario, all at once in a vector env
(either backend), through the same `TrainedPolicy.act` a user calls, and reports
means of the end-of-episode figures: coverage, team return, length, near-collisions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import sim
from policies.policy import TrainedPolicy
from sim.scripted import random_walk_actions


def run_episodes(venv: Any, choose_actions, seed: int) -> dict[str, float]:
    """Roll every env of `venv` to the end of its first episode; means of the end figures."""
    obs, _ = venv.reset(seed=seed)
    e = venv.num_envs
    finished = np.zeros(e, bool)
    figures: dict[str, np.ndarray] = {k: np.zeros(e) for k in (
        "coverage", "episode_return", "episode_length", "episode_collisions")}
    while not finished.all():
        obs, _, _, _, infos = venv.step(choose_actions(obs))
        first = infos["done"] & ~finished
        for key in figures:
            if key in infos:
                figures[key][first] = infos[key][first]
        finished |= infos["done"]
    out = {k: float(v.mean()) for k, v in figures.items()}
    out["coverage_min"] = float(figures["coverage"].min())
    return out


def evaluate(policy: TrainedPolicy, scenario: str = "coverage", episodes: int = 16,
             backend: str = "fast", seed: int = 12345, **params: Any) -> dict[str, float]:
    """Mean end-of-episode figures of the deterministic policy over `episodes` episodes."""
    if not params and "env_config" in policy.metadata:
        params = {k: v for k, v in policy.metadata["env_config"].items() if k != "scenario"}
    venv = sim.make_vec_env(scenario, episodes, backend=backend, seed=seed, **params)
    discrete = venv.cfg.action_mode == "discrete"

    def choose(obs: np.ndarray) -> np.ndarray:
        actions = policy.act_batch(obs)
        return actions[..., 0].astype(np.int64) if discrete else np.clip(actions, -1.0, 1.0)

    policy.reset()
    try:
        return run_episodes(venv, choose, seed)
    finally:
        venv.close()


def evaluate_random_walk(scenario: str = "coverage", episodes: int = 16, backend: str = "fast",
                         seed: int = 12345, **params: Any) -> dict[str, float]:
    """The same figures for the random-walk baseline (`sim.scripted.random_walk_actions`)."""
    venv = sim.make_vec_env(scenario, episodes, backend=backend, seed=seed, **params)
    rng = np.random.default_rng(seed)
    try:
        return run_episodes(venv, lambda obs: random_walk_actions(
            venv.cfg, rng, (venv.num_envs, venv.num_agents)), seed)
    finally:
        venv.close()
