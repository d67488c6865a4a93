"""Benchmarks (not tests): throughput figures printed with a baseline measured in the same run."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from rich.console import Console
from rich.table import Table

import sim
from sim.scripted import random_walk_actions


def _rate(work: Callable[[], int], seconds: float) -> float:
    """Units of work per second, running `work` repeatedly for about `seconds`."""
    work()  # warm-up
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        done += work()
    return done / elapsed


def pybullet_physics_rate(num_drones: int, seconds: float, seed: int = 0) -> tuple[float, float]:
    """(env physics steps/s under velocity actions, bare stepSimulation steps/s) for N drones."""
    import pybullet as p

    venv = sim.make_vec_env("coverage", 1, backend="pybullet", seed=seed, num_drones=num_drones)
    venv.reset(seed=seed)
    rng = np.random.default_rng(seed)

    def env_step() -> int:
        before = venv.physics_steps
        venv.step(random_walk_actions(venv.cfg, rng, (1, num_drones)))
        return venv.physics_steps - before

    env_rate = _rate(env_step, seconds)
    venv.close()

    # Baseline: the same number of drone bodies stepped with no control and no reads.
    from sim.drone import URDF_PATH

    client = p.connect(p.DIRECT)
    p.setGravity(0, 0, 0, physicsClientId=client)
    for i in range(num_drones):
        p.loadURDF(str(URDF_PATH), [i * 0.5, 0, 1], physicsClientId=client)

    def bare_step() -> int:
        for _ in range(30):
            p.stepSimulation(physicsClientId=client)
        return 30

    bare_rate = _rate(bare_step, seconds)
    p.disconnect(client)
    return env_rate, bare_rate


def fast_env_rate(num_envs: int, seconds: float, num_drones: int = 4, seed: int = 0) -> float:
    """Fast-backend env steps/s (one env step = one policy step of one environment)."""
    venv = sim.make_vec_env("coverage", num_envs, backend="fast", seed=seed, num_drones=num_drones)
    venv.reset(seed=seed)
    rng = np.random.default_rng(seed)
    actions = [random_walk_actions(venv.cfg, rng, (num_envs, num_drones)) for _ in range(16)]
    counter = iter(range(1 << 62))

    def step() -> int:
        venv.step(actions[next(counter) % len(actions)])
        return num_envs

    rate = _rate(step, seconds)
    venv.close()
    return rate


def bench_sim(seconds: float = 3.0, console: Console | None = None) -> dict[str, float]:
    console = console or Console()
    results: dict[str, float] = {}
    table = Table(title="marl-ros bench sim")
    for col in ("measure", "value", "baseline (same run)", "ratio", "target"):
        table.add_column(col, justify="right" if col != "measure" else "left")
    for n, target in ((4, 8000), (16, 3000)):
        env_rate, bare = pybullet_physics_rate(n, seconds)
        results[f"pybullet_physics_steps_per_s_n{n}"] = env_rate
        table.add_row(f"pybullet env, N={n}: physics steps/s", f"{env_rate:,.0f}",
                      f"{bare:,.0f} (bare stepSimulation)", f"{env_rate / bare:.2f}",
                      f">= {target:,}")
    base = None
    for e in (1, 32, 512):
        rate = fast_env_rate(e, seconds)
        results[f"fast_env_steps_per_s_e{e}"] = rate
        base = base or rate
        table.add_row(f"fast backend, 4 agents, {e} envs: env steps/s", f"{rate:,.0f}",
                      f"{base:,.0f} (1 env)", f"{rate / base:.1f}",
                      ">= 130,000" if e == 512 else "")
    console.print(table)
    return results
