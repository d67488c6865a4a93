"""Benchmarks (not tests): throughput figures printed with a baseline measured in the same run."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

import sim
from marl_ros.runtime import SHIPPED_BUNDLE
from sim import kernels
from sim.config import scaled_field
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


def pybullet_breakdown(num_drones: int, seconds: float, seed: int = 0,
                       repeats: int = 3) -> list[dict[str, float]]:
    """Where a PyBullet env step's time goes, layer by layer, at `num_drones` drones: physics
    steps/s of (1) bare stepSimulation of the env's own world (plane, drone bodies; gravity
    off so that they float as under hover thrust), (2) plus one force and one torque call
    per body per physics step (the floor: PyBullet clears external forces after every
    step), (3) plus the state reads every control tick (pose and
    velocity per body), (4) `PyBulletWorld.step` (reads, the controller, motor model and
    forces: the physics backend alone), (5) the coverage env's step under random-walk actions
    on the field of the default drone density (`sim.config.scaled_field`; 4 plus
    observations, beliefs, rewards). The layers are measured in turn `repeats` times,
    about `seconds` / `repeats` each, so that all see the same machine load; each row holds
    the median rate, microseconds per physics step, and the rate relative to the floor (2)."""
    import pybullet as p

    from sim.physics import PyBulletWorld

    world = PyBulletWorld(num_drones, seed=seed)
    cid, bodies = world._client, world._bodies
    hover = world.params.mass * world.params.gravity
    force, torque, origin = (0.0, 0.0, hover), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)
    per_tick = world._steps_per_tick
    venv = sim.make_vec_env("coverage", 1, backend="pybullet", seed=seed, num_drones=num_drones,
                            **scaled_field("coverage", num_drones))
    venv.reset(seed=seed)
    rng = np.random.default_rng(seed)

    def bare() -> int:  # gravity off: the bodies float as under hover thrust (no ground contacts)
        p.setGravity(0.0, 0.0, 0.0, physicsClientId=cid)
        for _ in range(30):
            p.stepSimulation(cid)
        p.setGravity(0.0, 0.0, -world.params.gravity, physicsClientId=cid)
        return 30

    def forces(read: bool = False) -> int:
        for k in range(30):
            if read and k % per_tick == 0:
                world._read_states()
            for body in bodies:
                p.applyExternalForce(body, -1, force, origin, p.LINK_FRAME, cid)  # positional, as
                p.applyExternalTorque(body, -1, torque, p.LINK_FRAME, cid)  # PyBulletWorld calls
            p.stepSimulation(cid)
        return 30

    setpoints = np.zeros((num_drones, 4))

    def backend() -> int:
        before = world.physics_steps
        world.step(setpoints, 30 / world.physics_hz)
        return world.physics_steps - before

    def env_step() -> int:
        before = venv.physics_steps
        venv.step(random_walk_actions(venv.cfg, rng, (1, num_drones)))
        return venv.physics_steps - before

    layers = [("stepSimulation only (gravity off)", bare), ("+ force and torque per body (floor)", forces),
              ("+ state reads each control tick", partial(forces, True)),
              ("PyBulletWorld.step (+ controller, motors)", backend),
              ("coverage env step (+ observations, beliefs, rewards)", env_step)]
    rates: list[list[float]] = [[] for _ in layers]
    start = np.column_stack([np.arange(num_drones) * 0.5, np.zeros(num_drones), np.ones(num_drones)])
    for _ in range(repeats):
        for k, (_, work) in enumerate(layers):
            world.reset(start)
            rates[k].append(_rate(work, seconds / repeats))
    world.close()
    venv.close()
    floor = float(np.median(rates[1]))
    rows = []
    for (name, _), measured in zip(layers, rates, strict=True):
        rate = float(np.median(measured))
        rows.append({"layer": name, "physics_steps_per_s": rate, "us_per_physics_step": 1e6 / rate,
                     "vs_floor": rate / floor})
    return rows


def fast_env_rate(num_envs: int, seconds: float, num_drones: int = 4, seed: int = 0,
                  env: dict | None = None, scenario: str = "coverage") -> float:
    """Fast-backend env steps/s (one env step = one policy step of one environment); `env`:
    further scenario parameters (a training config's env section)."""
    env = {"num_drones": num_drones, **(env or {})}
    venv = sim.make_vec_env(scenario, num_envs, backend="fast", seed=seed, **env)
    venv.reset(seed=seed)
    rng = np.random.default_rng(seed)
    n = venv.cfg.num_drones
    actions = [random_walk_actions(venv.cfg, rng, (num_envs, n)) for _ in range(16)]
    counter = iter(range(1 << 62))

    def step() -> int:
        venv.step(actions[next(counter) % len(actions)])
        return num_envs

    rate = _rate(step, seconds)
    venv.close()
    return rate


SCALING_AGENTS = 1024
"""Drones stepped per call in the fast-backend scaling rows: N drones x 1024 / N envs."""


def fast_scaling(seconds: float, drones: tuple[int, ...] = (4, 16, 64, 256),
                 agents: int = SCALING_AGENTS) -> list[dict[str, float]]:
    """Fast-backend coverage at N drones per env, `agents` / N envs (the same drones per
    step for every N), each N on its field of the default density (`sim.config.scaled_field`):
    env steps/s, agent steps/s, and the cost per drone relative to the first N of the run."""
    rows = []
    for n in drones:
        envs = max(agents // n, 1)
        field = scaled_field("coverage", n)
        rate = fast_env_rate(envs, seconds, num_drones=n, env=field)
        rows.append({"num_drones": n, "num_envs": envs, "width": field["width"],
                     "height": field["height"], "env_steps_per_s": rate,
                     "agent_steps_per_s": rate * n})
    for row in rows:  # cost per agent step relative to the smallest swarm
        row["per_drone_cost_ratio"] = rows[0]["agent_steps_per_s"] / row["agent_steps_per_s"]
    return rows


BREAKDOWN_DRONES = 16  # the PyBullet breakdown's swarm (issue figures: env vs floor at 16)

# The VMAS tasks comparable to this project's scenarios, and what one env step computes in each.
VMAS_PAIRS = (("navigation", "coverage"), ("simple_spread", "spread"))
VMAS_AGENTS = 4
PROJECT_STEP = {
    "coverage": "3-D drones: velocity controller with tilt saturation, 6 substeps; each drone's "
                "belief map updated from its and its neighbours' footprints, K nearest "
                "neighbours, 9 x 9 belief patch and 5 x 5 summary; coverage reward, collisions, "
                "geofence",
    "spread": "3-D drones: the same controller, 6 substeps; K nearest neighbours and the "
              "landmarks' relative positions; nearest-drone distances per landmark, collisions, "
              "geofence",
}
PEER_STEP = "2-D point masses (force, drag, collisions between agents), torch on the CPU"


def vmas_env_rate(scenario: str, num_envs: int, seconds: float, num_agents: int = VMAS_AGENTS,
                  seed: int = 0) -> float:
    """VMAS env steps/s of `scenario` (continuous actions, uniform random in each agent's
    range, one torch thread), the same way `fast_env_rate` counts: one env step = one step
    of one environment. Needs `pip install vmas` (never a test or runtime dependency)."""
    import torch
    import vmas

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        env = vmas.make_env(scenario, num_envs=num_envs, device="cpu", continuous_actions=True,
                            seed=seed, n_agents=num_agents)
        env.reset()
        gen = torch.Generator().manual_seed(seed)
        actions = [[(torch.rand(num_envs, env.get_agent_action_size(agent), generator=gen) * 2 - 1)
                     * agent.u_range
                    for agent in env.agents] for _ in range(16)]
        counter = iter(range(1 << 62))

        def step() -> int:
            env.step(actions[next(counter) % len(actions)])
            return num_envs

        return _rate(step, seconds)
    finally:
        torch.set_num_threads(threads)


def vmas_comparison(seconds: float = 3.0, num_envs: int = 512,
                    repeats: int = 5) -> list[dict[str, float | str]]:
    """Each VMAS task beside this project's comparable scenario (fast backend), 4 agents,
    `num_envs` envs, interleaved `repeats` times (peer, project, peer, project, ...) so that
    both see the same machine load; medians and the ratio project / peer."""
    rows = []
    for peer, ours in VMAS_PAIRS:
        peer_rates, our_rates = [], []
        for _ in range(repeats):
            peer_rates.append(vmas_env_rate(peer, num_envs, seconds))
            our_rates.append(fast_env_rate(num_envs, seconds, num_drones=VMAS_AGENTS,
                                           scenario=ours))
        peer_rate, our_rate = float(np.median(peer_rates)), float(np.median(our_rates))
        rows.append({"peer": peer, "scenario": ours, "num_envs": num_envs,
                     "peer_env_steps_per_s": peer_rate, "env_steps_per_s": our_rate,
                     "ratio": our_rate / peer_rate, "peer_range": np.ptp(peer_rates) / peer_rate,
                     "range": np.ptp(our_rates) / our_rate})
    return rows


def vmas_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("vmas") is not None


def bench_sim(seconds: float = 3.0, console: Console | None = None,
              peers: bool = True) -> dict[str, float]:
    console = console or Console(width=120)
    results: dict[str, float] = {}
    table = Table(title="marl-ros bench sim")
    for col in ("measure", "value", "baseline (same run)", "ratio", "target"):
        table.add_column(col, justify="right" if col != "measure" else "left")
    # 64 drones: the sim_node's swarm; 240 physics steps/s is real time.
    for n, target in ((4, 8000), (16, 3000), (64, 240)):
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

    scaling = Table(title=f"fast backend, coverage, N drones per env x {SCALING_AGENTS} / N "
                          "envs, field of the default density (100 cells of 0.25 m a drone)",
                    caption="per-drone cost: seconds per agent step relative to N = 4, "
                            "same run")
    for col in ("N", "envs", "field [cells]", "env steps/s", "agent steps/s",
                "us per agent step", "per-drone cost vs N=4"):
        scaling.add_column(col, justify="right")
    for row in fast_scaling(seconds):
        n = row["num_drones"]
        results[f"fast_env_steps_per_s_n{n}"] = row["env_steps_per_s"]
        results[f"fast_agent_steps_per_s_n{n}"] = row["agent_steps_per_s"]
        results[f"fast_per_drone_cost_ratio_n{n}"] = row["per_drone_cost_ratio"]
        scaling.add_row(str(n), str(row["num_envs"]), f"{row['width']} x {row['height']}",
                        f"{row['env_steps_per_s']:,.0f}", f"{row['agent_steps_per_s']:,.0f}",
                        f"{1e6 / row['agent_steps_per_s']:.2f}",
                        f"{row['per_drone_cost_ratio']:.2f}")
    console.print(scaling)
    layers = Table(title=f"PyBullet, {BREAKDOWN_DRONES} drones, 1 env: where a step's time goes "
                         "(same run)",
                   caption="ratio: physics steps/s over the floor's (one force and one torque "
                           "call per body per physics step, which PyBullet needs); target for "
                           "the env: >= 0.33")
    for col in ("layer", "physics steps/s", "us per physics step", "vs floor"):
        layers.add_column(col, justify="left" if col == "layer" else "right")
    breakdown = pybullet_breakdown(BREAKDOWN_DRONES, seconds)
    for row in breakdown:
        layers.add_row(row["layer"], f"{row['physics_steps_per_s']:,.0f}",
                       f"{row['us_per_physics_step']:.0f}", f"{row['vs_floor']:.2f}")
    results[f"pybullet_env_vs_floor_n{BREAKDOWN_DRONES}"] = breakdown[-1]["vs_floor"]  # the env
    console.print(layers)
    if peers:
        results.update(print_vmas_comparison(seconds, console))
    return results


def print_vmas_comparison(seconds: float, console: Console) -> dict[str, float]:
    """`vmas_comparison` as a table, or one line saying how to install VMAS."""
    results: dict[str, float] = {}
    if not vmas_installed():
        console.print("VMAS comparison skipped: VMAS is not installed (pip install -e "
                      "'.[peers]' in the checkout, or pip install vmas, then run bench sim "
                      "again).")
        return results
    versus = Table(title=f"fast backend vs VMAS, {VMAS_AGENTS} agents, 512 envs, env steps/s "
                         "(medians of 5 interleaved repeats, same run)",
                   caption="ratio: this project / VMAS; target >= 2. Range: (max - min) / "
                           f"median over the repeats. VMAS steps {PEER_STEP}; this project's "
                           "steps: " + "; ".join(f"{k}: {v}" for k, v in PROJECT_STEP.items())
                           + "; compiled loops (sim.kernels, numba): "
                           + ("on" if kernels.available() else "off, numba not installed"))
    for col in ("VMAS task", "VMAS", "(range)", "this project", "scenario", "(range) ",
                "ratio"):
        versus.add_column(col, justify="left" if col in ("VMAS task", "scenario") else "right")
    for row in vmas_comparison(seconds):
        results[f"vmas_{row['peer']}_env_steps_per_s"] = row["peer_env_steps_per_s"]
        results[f"vs_vmas_{row['scenario']}_ratio"] = row["ratio"]
        versus.add_row(row["peer"], f"{row['peer_env_steps_per_s']:,.0f}",
                       f"{row['peer_range']:.0%}", f"{row['env_steps_per_s']:,.0f}",
                       row["scenario"], f"{row['range']:.0%}", f"{row['ratio']:.2f}")
    console.print(versus)
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


def _random_policy(recurrent: bool, seed: int = 0, env: dict | None = None):
    """A default-architecture coverage policy with random weights (timing does not depend on
    the weights); `env`: coverage parameters other than the defaults (e.g. a larger field)."""
    import torch

    from policies.normalization import ObservationNormalizer
    from policies.policy import TrainedPolicy, build_actors

    torch.manual_seed(seed)
    venv = sim.make_vec_env("coverage", 1, **(env or {}))
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
    """Batch-1 latency of the same actor graph in torch eager and in onnxruntime; then the
    bundle's batch-1 and batch-64 latency in onnxruntime on the CPU and, where onnxruntime-gpu
    has a working CUDA (or TensorRT) provider, on the GPU (`provider_latencies`)."""
    import tempfile

    import torch

    import policies
    from marl_ros.runtime import OnnxPolicy
    from policies.export import export_bundle, exported_actor

    torch.set_num_threads(1)
    console = console or Console(width=120)
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
                "onnx / torch (p50)", "target", "OnnxPolicy.run p50 [us]"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    results: dict[str, float] = {}
    provider_rows: list[dict] = []
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
            session = runtime._sessions[runtime.meta["models"][agent]]
            feeds = {"obs": x[None]}
            if runtime.hidden_size:
                feeds["h_in"] = np.zeros((1, runtime.hidden_size), np.float32)
            # Like for like: the bare graph call in each framework ...
            t_onnx = _latencies_us(partial(session.run, None, feeds), repeats)
            # ... and, for reference, the runtime's checked call a node makes.
            t_wrapped = _latencies_us(partial(runtime.run, x, agent), repeats)
            provider_rows += provider_latencies(name, tmp, repeats)
        p50_t, p99_t = np.percentile(t_torch, [50, 99])
        p50_o, p99_o = np.percentile(t_onnx, [50, 99])
        ratio = p50_o / p50_t
        results[name] = ratio
        table.add_row(name, f"{p50_t:.1f} / {p99_t:.1f}", f"{p50_o:.1f} / {p99_o:.1f}",
                      f"{ratio:.2f}", "<= 0.33", f"{np.percentile(t_wrapped, 50):.1f}")
    console.print(table)
    batches = Table(title=f"onnxruntime session.run latency by execution provider and batch "
                          f"({repeats} calls each; inputs and outputs in host memory)")
    for col in ("policy", "provider", "batch", "p50 (us)", "p99 (us)", "p50 per obs (us)"):
        batches.add_column(col, justify="left" if col in ("policy", "provider") else "right")
    for row in provider_rows:
        if "error" in row:
            batches.add_row(row["policy"], row["provider"], "-", "-", "-", row["error"])
            continue
        batches.add_row(row["policy"], row["provider"], str(row["batch"]), f"{row['p50']:.1f}",
                        f"{row['p99']:.1f}", f"{row['p50'] / row['batch']:.2f}")
        results[f"{row['policy']} {row['provider']} batch {row['batch']} p50_us"] = row["p50"]
    console.print(batches)
    return results


def provider_latencies(name: str, bundle: str | Path, repeats: int,
                       batches: tuple[int, ...] = (1, 64)) -> list[dict]:
    """session.run latency of a bundle's first model at each batch size on the CPU, and on
    CUDA / TensorRT where onnxruntime offers them (`choose_providers("auto")`); a provider
    that fails to start gives a row saying why instead of figures."""
    from marl_ros.runtime import BundleError, OnnxPolicy, choose_providers

    offered = choose_providers("auto")
    names = ["cpu"] + [p for p, ep in (("cuda", "CUDAExecutionProvider"),
                                       ("tensorrt", "TensorrtExecutionProvider"))
                       if ep in offered]
    rows = []
    for provider in names:
        try:
            runtime = OnnxPolicy.load(bundle, provider=provider)
        except BundleError as err:
            rows.append({"policy": name, "provider": provider, "error": str(err)[:60]})
            continue
        agent = runtime.agents[0]
        session = runtime._sessions[runtime.meta["models"][agent]]
        for batch in batches:
            feeds = {"obs": np.zeros((batch, runtime.obs_sizes[agent]), np.float32)}
            if runtime.hidden_size:
                feeds["h_in"] = np.zeros((batch, runtime.hidden_size), np.float32)
            t = _latencies_us(partial(session.run, None, feeds), repeats)
            p50, p99 = np.percentile(t, [50, 99])
            rows.append({"policy": name, "provider": provider, "batch": batch, "p50": p50,
                         "p99": p99})
    return rows


# ------------------------------------------------------------------------------------------------
# bench ros: the deployed graph's control loops, separate processes vs one process
# ------------------------------------------------------------------------------------------------
def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (Linux /proc)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ros_loop_timing(num_drones: int, one_process: bool, bundle: str, rate: float,
                    seconds: float, work_dir: Path, warmup: float = 2.0,
                    start_timeout: float = 180.0) -> dict[str, float]:
    """Run sim_node + the agents (wall clock, no monitor) and measure the agents' control ticks
    over `seconds` once every agent is up: deadline misses (a tick starting more than half a
    period late, or skipped), odometry-to-command latency (odometry stamp to cmd_vel publish),
    the agents' CPU time over wall time (in cores), and the sim_node's real-time factor
    (simulated seconds advanced over wall seconds in the window; 1 = it keeps up)."""
    import dataclasses
    import json

    from marl_ros.graph import NodeProcesses, swarm_graph

    stats_dir = work_dir / "stats"
    specs = [s for s in swarm_graph(num_drones=num_drones, policy=bundle, rate=rate,
                                    use_sim_time=False, one_process=one_process)
             if s.executable != "monitor_node"]
    specs = [dataclasses.replace(s, parameters={**s.parameters, "stats_dir": str(stats_dir)})
             for s in specs]
    nodes = NodeProcesses(work_dir, stop_timeout_s=20.0)  # none outlives the benchmark
    sim_log = work_dir / "sim.log"
    try:
        for spec in specs:
            nodes.start(spec)
        procs = [(spec.executable, proc) for spec, proc in nodes.procs]
        deadline = time.monotonic() + start_timeout
        while "starting simulated time" not in sim_log.read_text():
            if time.monotonic() > deadline or nodes.exited():
                raise RuntimeError(f"the {num_drones}-drone graph did not start; see the logs "
                                   f"in {work_dir}")
            time.sleep(0.2)
        time.sleep(warmup)
        agents = [p for kind, p in procs if kind != "sim_node"]
        sim_proc = next(p for kind, p in procs if kind == "sim_node")
        window_start = time.time()
        cpu0 = sum(_cpu_seconds(p.pid) for p in agents)
        sim0 = _cpu_seconds(sim_proc.pid)
        wall0 = time.monotonic()
        time.sleep(seconds)
        cpu = sum(_cpu_seconds(p.pid) for p in agents) - cpu0
        sim_cpu = _cpu_seconds(sim_proc.pid) - sim0
        wall = time.monotonic() - wall0
        window_end = time.time()
    finally:
        nodes.stop()

    lateness, latency, skipped, period = [], [], 0, 1.0 / rate
    for i in range(num_drones):
        path = stats_dir / f"agent_{i}.json"
        if not path.is_file():
            raise RuntimeError(f"agent {i} wrote no timing file ({path}); see {work_dir}")
        stats = json.loads(path.read_text())
        for start, late, skip, age, _ in stats["ticks"]:
            if window_start <= start <= window_end and late is not None:
                lateness.append(late)
                skipped += skip
                if age is not None:
                    latency.append(age)
    lateness, latency = np.array(lateness), np.array(latency) * 1e3
    misses = int((lateness > 0.5 * period).sum()) + skipped
    deadlines = len(lateness) + skipped
    return {"deadlines": deadlines, "miss_fraction": misses / max(deadlines, 1),
            "latency_p50_ms": float(np.percentile(latency, 50)) if latency.size else np.nan,
            "latency_p99_ms": float(np.percentile(latency, 99)) if latency.size else np.nan,
            "agent_cpu_cores": cpu / wall, "sim_cpu_cores": sim_cpu / wall,
            "sim_real_time_factor": _real_time_factor(stats_dir / "sim.json", window_start,
                                                      window_end)}


def _real_time_factor(path: Path, start: float, end: float) -> float:
    """Simulated seconds the sim_node advanced per wall second between its first and last tick
    inside [start, end] (wall clock, s), from the tick times it wrote."""
    import json

    if not path.is_file():
        raise RuntimeError(f"the sim_node wrote no timing file ({path}); see its log")
    ticks = np.array([t for t in json.loads(path.read_text())["ticks"] if start <= t[0] <= end])
    if len(ticks) < 2:
        return 0.0  # it did not tick in the window: stalled
    return float((ticks[-1, 1] - ticks[0, 1]) / (ticks[-1, 0] - ticks[0, 0]))


def bench_ros(seconds: float = 10.0, rate: float = 30.0, drones: tuple[int, ...] = (4, 8, 16),
              bundle: str | None = None, console: Console | None = None) -> dict[str, float]:
    """Agent control loops at `rate` Hz for each count in `drones`: one process per agent (up
    to what `agent_process_capacity` says the machine holds; skipped beyond) vs all agents in
    one process (swarm_agents), with the PyBullet sim_node as the hardware and its real-time
    factor. Without `bundle`, random-weight coverage policies on the default 20 x 20 field, or
    on `scaled_field` where that does not hold the swarm (more than 64 drones)."""
    import tempfile

    from marl_ros.graph import agent_process_capacity
    from marl_ros.runtime import load_swarm_config
    from policies.export import export_bundle

    console = console or Console(width=130)
    capacity, machine = agent_process_capacity()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="marl_ros_bench_ros_") as tmp:
        bundles: dict[int, str] = {}  # drones -> the bundle they fly
        for n in drones:
            if bundle is not None:
                bundles[n] = bundle
                continue
            default = sim.make_config("coverage")
            env = {} if n <= default.start_capacity() else scaled_field("coverage", n)
            folder = Path(tmp) / f"bundle_{env.get('width', default.width)}"
            if not folder.is_dir():  # timing does not depend on the weights
                export_bundle(_random_policy(False, env=env), folder)
            bundles[n] = str(folder)
        policy_name = Path(bundle).name if bundle else "MLP 128x128, random weights"
        table = Table(title=f"marl-ros bench ros: agents at {rate:g} Hz, {seconds:g} s per row, "
                            f"sim_node at 48 Hz ({policy_name})",
                      caption="misses: ticks started > half a period late or skipped; latency: "
                              "odom stamp -> cmd_vel publish; CPU: CPU s / wall s; sim RTF: "
                              "simulated s / wall s (1.00 = keeps up); separate processes "
                              f"only up to {capacity} agents ({machine})")
        for col in ("N", "field", "agents", "misses", "latency p50/p99 ms", "agent CPU",
                    "sim CPU", "sim RTF", "one/separate", "target"):
            table.add_column(col, justify="left" if col == "agents" else "right")
        for n in drones:
            path = bundles[n]
            cfg = load_swarm_config(path, n)  # refuses a swarm the bundle's field cannot hold
            field = (f"{cfg.width} x {cfg.height} cells" if hasattr(cfg, "width")
                     else f"{cfg.arena_size:g} m")
            rows: dict[str, dict[str, float] | None] = {}
            for one_process in (False, True):
                mode = "one process" if one_process else "separate"
                if not one_process and n > capacity:
                    rows[mode] = None
                    continue
                console.print(f"[dim]{n} drones, {mode}...[/dim]")
                rows[mode] = r = ros_loop_timing(n, one_process, path, rate, seconds,
                                                 Path(tmp) / f"{n}_{mode.replace(' ', '_')}")
                for key, value in r.items():
                    results[f"n{n}_{mode.replace(' ', '_')}_{key}"] = value
            sep, one = rows["separate"], rows["one process"]
            # The targets: 16 drones at 30 Hz, 64 at the bundle's policy rate.
            target = "<= 1% misses" if n == 16 or (n == 64 and rate == cfg.policy_hz) else ""
            if sep is None:
                table.add_row(str(n), field, "separate", f"skipped (> {capacity})", "", "", "",
                              "", "", "")
            for mode, r in rows.items():
                if r is None:
                    continue
                ratio = ""
                if r is one and sep is not None:
                    ratio = (f"CPU {one['agent_cpu_cores'] / sep['agent_cpu_cores']:.2f} "
                             f"p99 {one['latency_p99_ms'] / sep['latency_p99_ms']:.2f}")
                table.add_row(str(n), field, mode,
                              f"{100 * r['miss_fraction']:.2f}% /{r['deadlines']}",
                              f"{r['latency_p50_ms']:.1f} / {r['latency_p99_ms']:.1f}",
                              f"{r['agent_cpu_cores']:.2f}", f"{r['sim_cpu_cores']:.2f}",
                              f"{r['sim_real_time_factor']:.2f}", ratio, target)
    console.print(table)
    return results


# ------------------------------------------------------------------------------------------------
# bench train: env steps/s of training and wall-clock time to a coverage threshold
# ------------------------------------------------------------------------------------------------
def _new_trainer(algo: str, config: dict, seed: int, out: Path | None, resume: bool):
    """The family trainer `policies.train` would build (kept, so its counters can be read)."""
    import policies
    from policies.config import read_yaml, resolve_config

    resolved = (read_yaml(out / "config.yaml") if resume
                else resolve_config(algo, "coverage", config, seed=seed))
    return policies.family_trainer(algo)(resolved, "coverage", out, resume=resume)


def train_throughput(algo: str, seconds: float = 30.0, seed: int = 0,
                     config: dict | None = None) -> dict[str, float]:
    """Steady-state training throughput of `algo` on the default coverage task (fast backend,
    the algorithm's own num_envs), nothing written. Warm-up (not timed): iterations until the
    learning starts (off-policy: `learning_starts` random env steps and a full first batch),
    then at least one more. Then whole iterations of the trainer's own hooks (`collect`, then
    `update_step`, as `Trainer.train` runs them) for about `seconds`, each hook timed apart:
    training env steps/s, gradient updates/s (families that count them: off-policy), the
    collection-only env steps/s and the share of the wall clock in `update_step`. `config`
    is merged over the defaults like `policies.train`'s."""
    import torch

    from policies.config import merge

    config = merge({"trainer": {"progress": False, "tensorboard": False}}, config or {})
    trainer = _new_trainer(algo, config, seed, None, False)
    trainer.restart_envs()
    acfg = trainer.algo.cfg

    def learning() -> bool:
        if not hasattr(trainer.algo, "gradient_steps"):  # no random phase outside off-policy
            return True
        return (trainer.global_step >= acfg.learning_starts
                and trainer.buffer.size >= acfg.batch_size)

    def iteration() -> tuple[float, float]:
        t0 = time.perf_counter()
        trainer.collect()
        t1 = time.perf_counter()
        trainer.update_step()
        trainer.update += 1
        return t1 - t0, time.perf_counter() - t1

    warmup_iterations = 0
    while not learning() or warmup_iterations < 1:
        iteration()
        warmup_iterations += learning()
    steps0, grads0 = trainer.global_step, getattr(trainer.algo, "gradient_steps", None)
    collect_s = update_s = worker_s = 0.0
    iterations = 0
    while collect_s + update_s < seconds:
        c, u = iteration()
        collect_s, update_s = collect_s + c, update_s + u
        worker_s += getattr(trainer.env, "last_rollout_s", 0.0)  # Ray rollout workers
        iterations += 1
    total = collect_s + update_s
    steps = trainer.global_step - steps0
    out = {"num_envs": float(trainer.env.num_envs), "env_steps": float(steps),
           "iterations": float(iterations), "collect_s": collect_s, "update_s": update_s,
           "worker_rollout_s": worker_s,
           "seconds": total, "train_steps_per_s": steps / total,
           "collect_steps_per_s": steps / collect_s, "update_fraction": update_s / total,
           "torch_threads": float(torch.get_num_threads()), "device": str(trainer.device)}
    if grads0 is not None:
        grads = trainer.algo.gradient_steps - grads0
        out.update(gradient_steps=float(grads), updates_per_s=grads / total,
                   updates_per_update_s=grads / update_s if update_s else np.nan,
                   utd_ratio=float(acfg.utd_ratio))
    if hasattr(trainer.env, "close"):
        trainer.env.close()
    return out


def bench_train_throughput(algos: tuple[str, ...], seconds: float = 30.0, seed: int = 0,
                           config: dict | None = None, console: Console | None = None,
                           devices: tuple[str, ...] = ()) -> dict[str, float]:
    """`marl-ros bench train --throughput SECONDS [--device cpu cuda]`: `train_throughput` of
    each algorithm (on each `trainer.device` of `devices`; none: the config's, auto) with the
    bare env steps/s of the same vector env (same num_envs, random-walk actions, no policy, no
    learning) measured in the same run; no evaluation, no coverage."""
    from policies.config import merge

    console = console or Console(width=150)
    table = Table(title=f"marl-ros bench train --throughput {seconds:g}: coverage, 4 drones, "
                        f"20 x 20, T = 100, fast backend, steady state after warm-up",
                  caption="train: collect + update_step wall clock; collect only: env "
                          "stepping, actors, normalisation, replay add; updates: gradient "
                          "steps (off-policy: one critic step, + actors every policy_delay)")
    for col in ("algorithm", "device", "envs", "train env steps/s", "grad updates/s",
                "collect-only env steps/s", "time in updates", "bare env steps/s",
                "train / bare", "collect / bare"):
        table.add_column(col, justify="left" if col == "algorithm" else "right")
    results: dict[str, float] = {}
    runs = [(algo, device) for algo in algos for device in (devices or (None,))]
    for algo, device in runs:
        console.print(f"[dim]{algo}{f' on {device}' if device else ''}: warm-up, then "
                      f"{seconds:g} s...[/dim]", highlight=False)
        run_config = merge(config or {}, {"trainer": {"device": device}} if device else {})
        r = train_throughput(algo, seconds, seed=seed, config=run_config)
        bare = fast_env_rate(int(r["num_envs"]), min(3.0, max(0.5, seconds / 10)), seed=seed,
                             env=(config or {}).get("env"))
        r["bare_env_steps_per_s"] = bare
        key = f"{algo}_{device}" if device else algo
        results.update({f"{key}_{k}": v for k, v in r.items()})
        grads = f"{r['updates_per_s']:,.1f}" if "updates_per_s" in r else "-"
        table.add_row(algo, r["device"], f"{r['num_envs']:.0f}", f"{r['train_steps_per_s']:,.0f}",
                      grads,
                      f"{r['collect_steps_per_s']:,.0f}", f"{100 * r['update_fraction']:.0f}%",
                      f"{bare:,.0f}", f"{r['train_steps_per_s'] / bare:.3f}",
                      f"{r['collect_steps_per_s'] / bare:.3f}")
    console.print(table)
    return results


def bench_train(algos: tuple[str, ...] = ("mappo", "happo"), threshold: float = 0.9,
                budget_minutes: float = 30.0, segment_steps: int = 500_000, episodes: int = 10,
                seed: int = 0, console: Console | None = None,
                out_dir: str | Path | None = None,
                throughput_seconds: float | None = None,
                devices: tuple[str, ...] = ()) -> dict[str, float]:
    """Train each algorithm on the default coverage task (4 drones, 20 x 20, T = 100, fast
    backend) in segments; after each, evaluate deterministically in PyBullet. Reports the
    training wall clock (evaluation excluded) at which coverage first reaches `threshold`,
    and training env steps/s (and, for the off-policy family, gradient updates/s) against
    the bare env steps/s of the same vector env. Any algorithm works (the episodic family
    trains on discrete actions by its config); runs are kept under `out_dir` when given
    (then `marl-ros eval` / `export` them). `throughput_seconds`: only the short steady-state
    throughput measurement (`bench_train_throughput`), no training to a threshold.
    `devices`: the `trainer.device` of each throughput measurement; one for a threshold run."""
    import tempfile

    import torch

    from policies.evaluation import evaluate, evaluate_random_walk

    torch.set_num_threads(1)
    if throughput_seconds is not None:
        return bench_train_throughput(algos, throughput_seconds, seed=seed, console=console,
                                      devices=devices)
    if len(devices) > 1:
        raise ValueError("several --device values are for --throughput (CPU vs GPU); a run to "
                         "the coverage threshold trains on one, e.g. --device cuda.")
    console = console or Console(width=120)
    eval_seed = 12345
    random_walk = evaluate_random_walk("coverage", episodes=episodes, backend="pybullet",
                                       seed=eval_seed)["coverage"]
    results: dict[str, float] = {"random_walk_coverage": random_walk}
    table = Table(title=f"marl-ros bench train: coverage, 4 drones, 20 x 20, T = 100 "
                        f"(pybullet eval, {episodes} episodes; random walk "
                        f"{100 * random_walk:.1f}%)")
    for col in ("algorithm", "env steps", "train wall [min]", "coverage", "train steps/s",
                "grad updates/s", "bare env steps/s", "ratio"):
        table.add_column(col, justify="left" if col == "algorithm" else "right")
    with tempfile.TemporaryDirectory(prefix="marl_ros_bench_train_") as tmp:
        for algo in algos:
            out = Path(out_dir or tmp) / algo
            config = {"trainer": {"progress": False, "tensorboard": False,
                                  **({"device": devices[0]} if devices else {})}}
            steps, train_s, reached, grads = 0, 0.0, None, None
            while train_s < budget_minutes * 60:
                steps += segment_steps
                start = time.perf_counter()
                trainer = _new_trainer(algo, config, seed, out, resume=steps > segment_steps)
                policy = trainer.train(steps)
                train_s += time.perf_counter() - start
                num_envs = trainer.env.num_envs
                grads = getattr(trainer.algo, "gradient_steps", None)
                steps = trainer.global_step  # the family may round up to whole iterations
                cov = evaluate(policy, "coverage", episodes=episodes, backend="pybullet",
                               seed=eval_seed)["coverage"]
                console.print(f"[dim]{algo}: {steps:,} steps, {train_s / 60:.1f} min, "
                              f"coverage {100 * cov:.1f}%[/dim]", highlight=False)
                if cov >= threshold:
                    reached = train_s
                    break
            bare = fast_env_rate(num_envs, 3.0, seed=seed)
            rate = steps / train_s
            results[f"{algo}_minutes_to_threshold"] = np.nan if reached is None else reached / 60
            results[f"{algo}_train_steps_per_s"] = rate
            if grads is not None:
                results[f"{algo}_updates_per_s"] = grads / train_s
            table.add_row(algo, f"{steps:,}",
                          f"{reached / 60:.1f}" if reached is not None else f"> {train_s / 60:.1f}",
                          f"{100 * cov:.1f}%", f"{rate:,.0f}",
                          f"{grads / train_s:,.1f}" if grads is not None else "-",
                          f"{bare:,.0f} ({num_envs} envs)", f"{rate / bare:.2f}")
    console.print(table)
    return results


def load_env_fn(spec: str) -> Callable[[], object]:
    """`module:function` -> the function (a user's ParallelEnv constructor), one clear
    sentence when the module is not installed or has no such name."""
    import importlib

    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise ValueError(f"--env must be module:function, e.g. mpe2.simple_spread_v3:parallel_env "
                         f"(got {spec!r}).")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        hint = " (pip install mpe2)" if module_name.startswith("mpe2") else ""
        raise ValueError(f"--env {spec}: cannot import {module_name} ({err}){hint}.") from None
    if not callable(getattr(module, name, None)):
        raise ValueError(f"--env {spec}: {module_name} has no function {name!r}.")
    return getattr(module, name)


def batched_env_rate(env_fn: Callable[[], object], num_envs: int, workers: int,
                     seconds: float, seed: int = 0) -> float:
    """Env steps/s of a user's ParallelEnv as the trainer steps it (`policies.envs`): E
    copies in this process (workers 0) or over `workers` processes, random actions."""
    from policies.envs import ParallelEnvBatch, SubprocessEnvBatch

    batch = (SubprocessEnvBatch(env_fn, num_envs, workers) if workers
             else ParallelEnvBatch(env_fn, num_envs))
    try:
        batch.reset(seed=seed)
        rng = np.random.default_rng(seed)
        spaces_ = batch.spec.action_spaces

        def step() -> int:
            actions = np.zeros((num_envs, len(spaces_), batch.spec.action_size), np.float32)
            for j, space in enumerate(spaces_):
                if space.shape == ():  # Discrete: the index in column 0
                    actions[:, j, 0] = rng.integers(0, space.n, num_envs)
                else:
                    w = int(np.prod(space.shape))
                    actions[:, j, :w] = rng.uniform(space.low.ravel(), space.high.ravel(),
                                                    (num_envs, w))
            batch.step(actions)
            return num_envs

        return _rate(step, seconds)
    finally:
        batch.close()


def bench_envs(env: str = "mpe2.simple_spread_v3:parallel_env", num_envs: int = 16,
               workers: tuple[int, ...] = (1, 2, 4), seconds: float = 5.0,
               console: Console | None = None) -> dict[int, float]:
    """`marl-ros bench envs`: a user's ParallelEnv stepped as the trainer steps it, in this
    process and over each worker count (`trainer.env_workers`), ratios against the
    in-process rate measured in the same run."""
    import os

    console = console or Console(width=150)
    env_fn = load_env_fn(env)
    rates = {0: batched_env_rate(env_fn, num_envs, 0, seconds)}
    for w in workers:
        rates[w] = batched_env_rate(env_fn, num_envs, w, seconds)
    console.print(f"marl-ros bench envs: {env}, {num_envs} copies, random actions, "
                  f"{os.cpu_count()} CPUs", highlight=False)
    table = Table(caption="env steps/s of policies.envs batches: every copy stepped once per "
                          "batch step; 0 workers = one after the other in this process")
    for col in ("env_workers", "env steps/s", "vs in-process"):
        table.add_column(col, justify="right")
    for w, rate in rates.items():
        table.add_row(str(w), f"{rate:,.0f}", f"{rate / rates[0]:.2f}x")
    console.print(table)
    return rates


# ------------------------------------------------------------------------------------------------
# bench workers: training throughput with Ray rollout workers, and a model to size a cluster
# ------------------------------------------------------------------------------------------------
def bench_workers(algos: tuple[str, ...] = ("mappo", "hatd3"), workers: tuple[int, ...] = (0, 1, 2),
                  seconds: float = 20.0, seed: int = 0, backend: str = "fast",
                  console: Console | None = None) -> dict[str, float]:
    """`marl-ros bench workers`: `train_throughput` of each algorithm (default coverage task,
    its own num_envs, learner on the CPU) in process (0) and with each count of Ray rollout
    workers, on a local Ray instance, with the ratio to the in-process rate of the same run.
    Each iteration's time splits into the workers' own stepping (the slowest worker), the
    transfer (weights out, arrays back, the join and the learner's normaliser updates: the
    rest of collection) and the learner's update. From them, the model a cluster is sized
    by: an iteration of S env steps over K workers takes about
        t(K) = t_step(1) / K + t_transfer + t_update,
    with t_step(1) one worker stepping every env (measured with K = 1), where a worker's
    stepping time is proportional to the envs it holds (PyBullet worlds, a user's Python
    env; the fast backend's vector step is mostly a fixed cost per call, so it shrinks
    less). Throughput is S / t(K) and can never pass S / (t_transfer + t_update): past a few
    workers the learner (faster on a GPU) and the transfer (a cluster's network) are what
    to buy. `backend`: the training backend (trainer.backend)."""
    import ray

    console = console or Console(width=150)
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=max(os.cpu_count() or 1, max(workers)), include_dashboard=False)
    results: dict[str, float] = {}
    try:
        for algo in algos:
            table = Table(title=f"marl-ros bench workers: {algo} on coverage (4 drones, {backend} "
                                f"backend), {seconds:g} s per row after warm-up, learner on the "
                                f"CPU, {os.cpu_count()} cores",
                          caption="step: the slowest worker's own stepping; transfer: weights "
                                  "out, arrays back, join, normaliser updates; update: the "
                                  "learner's gradient steps; all per iteration")
            for col in ("workers", "envs", "train env steps/s", "vs in-process", "step ms",
                        "transfer ms", "update ms", "iteration ms"):
                table.add_column(col, justify="right")
            rows: dict[int, dict[str, float]] = {}
            for count in workers:
                console.print(f"[dim]{algo}, {count} workers...[/dim]", highlight=False)
                r = train_throughput(algo, seconds, seed=seed,
                                     config={"trainer": {"workers": count, "device": "cpu",
                                                         "backend": backend}})
                n = r["iterations"]
                step = (r["worker_rollout_s"] if count else r["collect_s"]) / n
                transfer = (r["collect_s"] - r["worker_rollout_s"]) / n if count else 0.0
                rows[count] = {"rate": r["train_steps_per_s"], "step_s": step,
                               "transfer_s": transfer, "update_s": r["update_s"] / n,
                               "steps": r["env_steps"] / n, "envs": r["num_envs"]}
                results.update({f"{algo}_w{count}_{k}": v for k, v in rows[count].items()})
            base = rows.get(0, {}).get("rate")
            for count, r in rows.items():
                ratio = f"{r['rate'] / base:.2f}" if base else "-"
                table.add_row(str(count), f"{r['envs']:.0f}", f"{r['rate']:,.0f}", ratio,
                              f"{1e3 * r['step_s']:.0f}", f"{1e3 * r['transfer_s']:.0f}",
                              f"{1e3 * r['update_s']:.0f}",
                              f"{1e3 * (r['step_s'] + r['transfer_s'] + r['update_s']):.0f}")
            console.print(table)
            if 1 in rows:  # the model, from the one-worker row
                one = rows[1]
                model = Table(title=f"{algo}: predicted with a core per worker (same envs and "
                                    "learner; a worker's stepping time proportional to its envs)")
                for col in ("workers", "predicted env steps/s", "vs one worker"):
                    model.add_column(col, justify="right")
                for k in (1, 2, 4, 8, 16, 32):
                    t = one["step_s"] / k + one["transfer_s"] + one["update_s"]
                    model.add_row(str(k), f"{one['steps'] / t:,.0f}",
                                  f"{one['step_s'] + one['transfer_s'] + one['update_s']:.3f} / "
                                  f"{t:.3f} s = {(one['step_s'] + one['transfer_s'] + one['update_s']) / t:.2f}x")
                ceiling = one["steps"] / (one["transfer_s"] + one["update_s"])
                results[f"{algo}_ceiling_steps_per_s"] = ceiling
                console.print(model)
                console.print(f"ceiling (infinitely many workers): {ceiling:,.0f} env steps/s, "
                              f"set by the update ({1e3 * one['update_s']:.0f} ms) and the transfer "
                              f"({1e3 * one['transfer_s']:.0f} ms) of each iteration's "
                              f"{one['steps']:,.0f} env steps", highlight=False)
    finally:
        if started:
            ray.shutdown()
    return results
