"""What the mean-field family shares: hyperparameters, the mean-action view of a batch, the
Q-head network and the trainer hooks.

Yang et al., "Mean Field Multi-Agent Reinforcement Learning" (ICML 2018): agent j's
Q-function reads its own action a^j and the mean action of its neighbours,
Q^j(s, a^j, a_bar^j), so its input does not grow with the swarm. Here every drone is one
such agent, the swarm shares one set of parameters (homogeneous agents), and s is the
drone's own observation: no global state, so nothing a deployed drone lacks.

The mean action is part of the observation: the drone scenarios with `mean_action: true`
(set by `policies/configs/swarm.yaml` for `mf_q` and `mf_ac`) end every observation with
`sim.obs.neighbour_mean_action`, the mean of the heard neighbours' actions read off their
velocities, computed by the same function in the simulator and in the agent node. Each
step's observation therefore carries the neighbours' previous actions, which is what an
agent acts on in the paper's Algorithm 1; the mean of the actions taken *with* a^j (the
a_bar the paper stores) is the field of the next observation. A batch gives both views:
- `obs`: o_t as the agent saw it (what the policy reads when acting);
- `q_obs`: o_t with its mean-action field replaced by o_{t+1}'s, i.e. (s_t, a_bar_t), the
  input of Q^j(s_t, ., a_bar_t) for the stored action a_t;
- `next_obs`: o_{t+1} with its own field, the input of the target v^MF(s_{t+1}).
A user ParallelEnv trains too if its observations end with such a field
(`algo.mean_action_size` names its width).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from policies.networks import DeterministicActor
from policies.offpolicy.common import OffPolicyAlgorithm, OffPolicyConfig


@dataclass
class MeanFieldConfig(OffPolicyConfig):
    """Hyperparameters of the mean-field family (the off-policy ones, per agent transition)."""

    share_params: bool = True  # one network for the whole (homogeneous) swarm
    agent_id: bool = False  # a swarm policy flies any drone count
    hidden_sizes: list[int] = field(default_factory=lambda: [128, 128])
    critic_hidden_sizes: list[int] = field(default_factory=lambda: [128, 128])
    batch_size: int = 256  # agent transitions per gradient step
    # Replay capacity in agent transitions (a joint step of one env holds N of them).
    buffer_size: int = 200_000
    learning_starts: int = 5_000
    utd_ratio: float = 0.05
    reward_scale: float = 1.0  # rewards are multiplied by this in every target
    huber_delta: float = 1.0  # Huber loss on the TD error (in scaled reward units)
    # The width of the mean-action field that ends each observation: 0 reads it from a drone
    # scenario's config (sim.obs.mean_action_size); a user env must give it.
    mean_action_size: int = 0

    def validate(self) -> None:
        super().validate()
        if self.n_step != 1:
            raise ValueError("the mean-field family learns one-step targets; remove algo.n_step.")
        if self.critic_input != "state":
            raise ValueError("critic_input is the centralised critics' option (maddpg, haddpg, "
                             "hatd3); the mean-field family's Q reads each agent's observation "
                             "already: remove algo.critic_input.")
        if not self.share_params:
            raise ValueError("the mean-field family shares one network across the swarm; set "
                             "share_params=true (separate networks would not see the swarm as one "
                             "population).")
        if self.agent_id:
            raise ValueError("the mean-field family's one network flies any swarm size and is "
                             "told no agent id; set agent_id=false.")
        if self.reward_scale <= 0 or self.huber_delta <= 0 or self.mean_action_size < 0:
            raise ValueError(f"need reward_scale > 0, huber_delta > 0 and mean_action_size >= 0 "
                             f"(got {self.reward_scale}, {self.huber_delta}, "
                             f"{self.mean_action_size}).")


def q_network(obs_size: int, space: spaces.Discrete, hidden_sizes: list[int],
              activation: str) -> DeterministicActor:
    """Q(o, .): one output per discrete action. A `DeterministicActor` whose logits are the
    Q-values, so the greedy policy exports as the bundle's arg-max actor unchanged."""
    return DeterministicActor(obs_size, space, hidden_sizes, activation)


class MeanFieldAlgorithm(OffPolicyAlgorithm):
    """An off-policy algorithm over per-agent transitions with the mean-action views.

    `update(sample)` (with `env_steps` set by the trainer) draws `sample(batch_size)`: tensors `obs`, `q_obs`, `next_obs` (B, D),
    `actions` (B, W) in the critic's view, `rewards` (B,), `terminated` (B,)."""

    config_class = MeanFieldConfig
    cfg: MeanFieldConfig

    def __init__(self, cfg: MeanFieldConfig, spec: Any, rng: np.random.Generator):
        if not spec.homogeneous:
            raise ValueError("the mean-field family needs every agent to have the same observation "
                             "and action space (one network for the swarm).")
        super().__init__(cfg, spec, rng)
        self.env_steps = 0  # the trainer's env-step count at the current update (schedules)

    def td_loss(self, q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.huber_loss(q, target, delta=self.cfg.huber_delta)

    def bootstrap(self, batch: dict[str, torch.Tensor], value: torch.Tensor) -> torch.Tensor:
        """r + gamma (1 - terminated) v, with the reward scaled."""
        return (self.cfg.reward_scale * batch["rewards"]
                + self.cfg.gamma * (1.0 - batch["terminated"]) * value)


def mean_action_width(env: Any, cfg: MeanFieldConfig, algorithm: str) -> int:
    """The width of the mean-action field ending each observation, checked before training."""
    sim_cfg = getattr(env, "cfg", None)
    if sim_cfg is not None:
        from sim.obs import mean_action_size

        if not sim_cfg.mean_action:
            raise ValueError(f"{algorithm} reads the neighbours' mean action from the observation; "
                             "train with env.mean_action=true (policies/configs/swarm.yaml sets it "
                             "for the drone scenarios).")
        return mean_action_size(sim_cfg)
    if cfg.mean_action_size <= 0:
        raise ValueError(f"{algorithm} on a user env needs its observations to end with the "
                         "neighbours' mean action; give its width as algo.mean_action_size=K.")
    if cfg.mean_action_size >= env.spec.obs_size:
        raise ValueError(f"algo.mean_action_size={cfg.mean_action_size} leaves no observation "
                         f"before it (observations have {env.spec.obs_size} entries).")
    return cfg.mean_action_size
