"""PyBullet drone worlds for multi-agent learning.

    env = sim.make_env("coverage", num_drones=4)                 # PettingZoo ParallelEnv
    venv = sim.make_vec_env("coverage", 512, backend="fast")     # batched numpy arrays
    game = sim.make_env("pursuit", view="cells", action_mode="discrete", policy_hz=1)

Imports numpy, pybullet, gymnasium and pettingzoo; never torch, never rclpy.
"""

from __future__ import annotations

from typing import Any

from sim.config import SCENARIOS, ConfigError, make_config

BACKENDS = ("fast", "pybullet")


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}.")


def make_env(name: str, *, backend: str = "pybullet", render_mode: str | None = "rgb_array",
             seed: int | None = None, **cfg: Any):
    """A PettingZoo ParallelEnv for scenario `name` ("coverage", "spread", "pursuit",
    "formation" or "flock")."""
    from sim.env import DroneSwarmEnv

    _check_backend(backend)
    return DroneSwarmEnv(make_config(name, **cfg), backend=backend, render_mode=render_mode,
                         seed=seed)


def make_vec_env(name: str, num_envs: int, *, backend: str = "fast", seed: int | None = None,
                 autoreset: bool = True, **cfg: Any):
    """Batched environments: arrays shaped (num_envs, num_agents, ...), auto-reset."""
    from sim.vec_env import VecEnv

    _check_backend(backend)
    return VecEnv(make_config(name, **cfg), num_envs=num_envs, backend=backend, seed=seed,
                  autoreset=autoreset)


__all__ = ["BACKENDS", "ConfigError", "SCENARIOS", "make_config", "make_env", "make_vec_env"]
