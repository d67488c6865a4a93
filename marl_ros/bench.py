"""Benchmarks (not tests): throughput figures printed with a baseline measured in the same run."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

import sim
from marl_ros.runtime import SHIPPED_BUNDLE
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


def _latencies_us(fn: Callable[[], object], repeats: int) -> np.ndarray:
    for _ in range(50):  # warm-up
        fn()
    out = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - start
    return out * 1e6


def _random_policy(recurrent: bool, seed: int = 0):
    """A default-architecture coverage policy with random weights (timing does not depend on
    the weights)."""
    import torch

    from policies.normalization import ObservationNormalizer
    from policies.policy import TrainedPolicy, build_actors

    torch.manual_seed(seed)
    venv = sim.make_vec_env("coverage", 1)
    network = {"hidden_sizes": [128, 128], "activation": "tanh", "recurrent": recurrent,
               "gru_size": 64, "init_log_std": -0.5}
    n = venv.num_agents
    actors = build_actors([venv.observation_space] * n, [venv.action_space] * n, True, 0, network)
    norm = ObservationNormalizer((venv.observation_size,))
    meta = {"algorithm": "mappo", "seed": seed, "global_step": 0, "env_config": venv.cfg.to_dict()}
    return TrainedPolicy(venv.agents, [venv.observation_space] * n, [venv.action_space] * n,
                         actors, norm, True, 0, network, meta)


def bench_infer(repeats: int = 2000, bundle: str | None = None,
                console: Console | None = None) -> dict[str, float]:
    """Batch-1 latency of the same actor graph in torch eager and in onnxruntime."""
    import tempfile

    import torch

    import policies
    from marl_ros.runtime import OnnxPolicy
    from policies.export import export_bundle, exported_actor

    torch.set_num_threads(1)
    console = console or Console()
    cases = []
    shipped = Path(bundle) if bundle else SHIPPED_BUNDLE
    if (shipped / "policy.pt").is_file():
        cases.append((f"shipped policy ({shipped.name})", policies.load(shipped / "policy.pt")))
    else:
        cases.append(("MLP actor 128x128 (random weights; no shipped policy.pt)",
                      _random_policy(recurrent=False)))
    cases.append(("GRU actor 128x128 + GRU 64 (random weights)", _random_policy(recurrent=True)))

    table = Table(title=f"marl-ros bench infer (batch 1, {repeats} calls each)")
    for col in ("policy", "torch eager p50/p99 [us]", "onnxruntime p50/p99 [us]",
                "onnx / torch (p50)", "target"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    results: dict[str, float] = {}
    for name, policy in cases:
        module = exported_actor(policy, 0)
        obs = torch.zeros(1, policy.obs_sizes[0])
        args = (obs,) + ((torch.zeros(1, module.actor.hidden_size),) if module.actor.recurrent
                         else ())
        with torch.no_grad():
            t_torch = _latencies_us(partial(module, *args), repeats)
        with tempfile.TemporaryDirectory() as tmp:
            runtime = OnnxPolicy.load(export_bundle(policy, tmp), provider="cpu")
            x = np.zeros(policy.obs_sizes[0], np.float32)
            agent = policy.agents[0]
            t_onnx = _latencies_us(partial(runtime.run, x, agent), repeats)
        p50_t, p99_t = np.percentile(t_torch, [50, 99])
        p50_o, p99_o = np.percentile(t_onnx, [50, 99])
        ratio = p50_o / p50_t
        results[name] = ratio
        table.add_row(name, f"{p50_t:.1f} / {p99_t:.1f}", f"{p50_o:.1f} / {p99_o:.1f}",
                      f"{ratio:.2f}", "<= 0.33")
    console.print(table)
    return results
