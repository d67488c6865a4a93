"""What the export tests share: one episode flown with the torch policy's actions while the
bundle's onnxruntime graph is asked for the same observations."""

from __future__ import annotations

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
