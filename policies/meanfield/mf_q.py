"""MF-Q: mean-field Q-learning with a Boltzmann policy (Yang et al. 2018, section 3.2).

One Q-network for the swarm, Q(s, ., a_bar) with one output per discrete action, on the
drone's observation s whose last field is the heard neighbours' mean action a_bar (see
`policies.meanfield.common`). Acting: a^j ~ pi(a | s, a_bar) = softmax(beta Q(s, ., a_bar)),
with a_bar the mean of the neighbours' previous actions, as the observation carries it.
Learning, on a stored (s, a, r, s', a_bar) with a_bar the mean action taken with a:

    v^MF(s') = sum_a pi(a | s', a_bar') Q'(s', a, a_bar')
    y        = r + gamma (1 - terminated) v^MF(s')
    loss     = Huber(Q(s, a, a_bar) - y)

where Q' is the Polyak-averaged target network and pi the Boltzmann policy of the online
network (the one the agent follows). The inverse temperature beta anneals linearly from
`beta` to `beta_final` over `beta_anneal_steps` env steps (more greedy as Q sharpens). The
deployed policy is the greedy one, arg-max_a Q(s, a, a_bar): the Q-network exports as the
bundle's arg-max actor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from policies.meanfield.common import MeanFieldAlgorithm, MeanFieldConfig
from policies.offpolicy.common import linear_schedule


@dataclass
class MFQConfig(MeanFieldConfig):
    beta: float = 1.0  # Boltzmann inverse temperature at the start (after the random phase)
    beta_final: float = 10.0
    beta_anneal_steps: int = 500_000
    lr_actor: float = 5e-4  # the Q-network's Adam step (it is the acting network)

    def validate(self) -> None:
        super().validate()
        if self.beta <= 0 or self.beta_final <= 0 or self.beta_anneal_steps < 0:
            raise ValueError(f"need beta > 0, beta_final > 0 and beta_anneal_steps >= 0 (got "
                             f"{self.beta}, {self.beta_final}, {self.beta_anneal_steps}).")


class MFQ(MeanFieldAlgorithm):
    config_class = MFQConfig
    cfg: MFQConfig

    def __init__(self, cfg: MFQConfig, spec, rng: np.random.Generator):
        if not all(isinstance(s, spaces.Discrete) for s in spec.action_spaces):
            raise ValueError("mf_q needs Discrete actions (a Boltzmann policy over Q-values); set "
                             "env.action_mode=discrete, or train mf_ac for Box actions.")
        super().__init__(cfg, spec, rng)  # its one shared "actor" is the Q-network

    def make_critics(self) -> nn.ModuleList:
        return nn.ModuleList()

    @property
    def q(self) -> nn.Module:
        """Q(o, .): a `DeterministicActor` over the Discrete space, its logits the Q-values,
        so the greedy policy exports as the bundle's arg-max actor."""
        return self.subpolicies[0][0]

    def beta_at(self, env_steps: int) -> float:
        return linear_schedule(self.cfg.beta, self.cfg.beta_final, self.cfg.beta_anneal_steps,
                               env_steps)

    def exploration_figures(self, env_steps: int) -> dict[str, float]:
        return {"charts/beta": self.beta_at(env_steps)}

    @torch.no_grad()
    def explore(self, obs: np.ndarray, env_steps: int, members: np.ndarray) -> np.ndarray:
        """One-hot Boltzmann samples (E, N, A), uniform during the first `learning_starts`."""
        e, n = obs.shape[:2]
        width = self.action_width
        if env_steps < self.cfg.learning_starts:
            choice = self.rng.integers(0, width, size=(e, n))
        else:
            q = self.q.unit_action(torch.from_numpy(obs).to(self.device))
            probs = torch.softmax(self.beta_at(env_steps) * q.double(), -1).cpu().numpy()
            choice = (probs.cumsum(-1) < self.rng.random((e, n, 1))).sum(-1).clip(0, width - 1)
        return np.eye(width, dtype=np.float32)[choice]

    @torch.no_grad()
    def mean_field_target(self, batch: dict[str, torch.Tensor], beta: float) -> torch.Tensor:
        """y = r + gamma (1 - terminated) sum_a pi(a | s') Q'(s', a)."""
        pi = torch.softmax(beta * self.q.unit_action(batch["next_obs"]), -1)
        target_q = self.target_subpolicies[0][0].unit_action(batch["next_obs"])
        return self.bootstrap(batch, (pi * target_q).sum(-1))

    def update(self, sample) -> dict[str, float]:
        batch = sample(self.cfg.batch_size)
        target = self.mean_field_target(batch, self.beta_at(self.env_steps))
        q = (self.q.unit_action(batch["q_obs"]) * batch["actions"]).sum(-1)  # actions are one-hot
        loss = self.td_loss(q, target)
        self.step(self.actor_optimizers[0], loss, self.q.parameters())
        self.update_targets(actors=True, critics=False)
        self.gradient_steps += 1
        return {"losses/q_loss": loss.item(), "charts/q_mean": q.mean().item()}
