"""What the export tests share: one episode flown with the torch policy's actions while the
bundle's onnxruntime graph is asked for the same observations; a bundle with random weights for
node tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def fly_torch_and_onnx(policy, runtime, env, seed: int) -> tuple[float, set, int]:
    """Fly `env` (a PettingZoo env) to its end with `policy.act`, asking `runtime.run` for each
    agent's action on the same observation. Discrete actions must be equal (asserted); returns
    the largest Box difference, the set of distinct actions flown and the step count."""
    obs, _ = env.reset(seed=seed)
    worst, seen, steps = 0.0, set(), 0
    while env.agents:
        torch_actions = policy.act(obs)
        for agent in env.agents:
            out = runtime.run(obs[agent], agent)["action"][0]
            if env.cfg.action_mode == "discrete":
                assert int(out) == torch_actions[agent]
                seen.add(int(torch_actions[agent]))
            else:
                worst = max(worst, float(np.abs(out - torch_actions[agent]).max()))
                seen.add(tuple(np.round(torch_actions[agent], 2)))
        obs, *_ = env.step(torch_actions)
        steps += 1
    return worst, seen, steps


def random_bundle_in(out: Path, scenario: str, **params) -> Path:
    """A shared-parameter bundle of `scenario` with random weights (setpoints of ~1 m/s)."""
    import torch

    from policies.export import export_bundle
    from policies.normalization import ObservationNormalizer
    from policies.policy import TrainedPolicy, build_actors

    torch.manual_seed(0)
    import sim

    venv = sim.make_vec_env(scenario, 1, **params)
    network = {"hidden_sizes": [32, 32], "activation": "tanh", "recurrent": False,
               "gru_size": 16, "init_log_std": -0.5}
    n = venv.num_agents
    actors = build_actors([venv.observation_space] * n, [venv.action_space] * n, True, 0, network)
    last = [m for m in actors[0].modules() if isinstance(m, torch.nn.Linear)][-1]
    last.weight.data.normal_(0.0, 0.3)
    meta = {"algorithm": "mappo", "seed": 0, "global_step": 0, "env_config": venv.cfg.to_dict()}
    policy = TrainedPolicy(venv.agents, [venv.observation_space] * n, [venv.action_space] * n,
                           actors, ObservationNormalizer((venv.observation_size,)), True, 0,
                           network, meta)
    return export_bundle(policy, out)


def simulator_episode(bundle: Path, seed: int) -> dict:
    """The bundle flown by OnnxPolicy in the PyBullet env's episode of `seed` (the start
    positions, mission or obstacles the simulator node and the monitor draw for the same
    seed): the world's metrics (drone_0's infos) at the episode's end."""
    from marl_ros.runtime import OnnxPolicy, load_swarm_config
    from sim.env import DroneSwarmEnv

    cfg = load_swarm_config(bundle, 4)
    policy = OnnxPolicy.load(bundle, config=cfg)
    env = DroneSwarmEnv(cfg, backend="pybullet", render_mode=None, seed=seed)
    obs, infos = env.reset(seed=seed)
    while env.agents:
        actions = {a: policy.run(obs[a], a)["action"][0] for a in env.possible_agents}
        obs, _, _, _, infos = env.step(actions)
    env.close()
    return infos["drone_0"]
