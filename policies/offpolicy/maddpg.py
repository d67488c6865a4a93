"""MADDPG: one deterministic actor per agent, one centralised critic per agent.

Lowe et al., "Multi-Agent Actor-Critic for Mixed Cooperative-Competitive Environments"
(NeurIPS 2017). Critic i learns Q_i(x, a_1..a_N) on agent i's own reward r_i (per-agent
rewards, so mixed cooperative-competitive tasks work; a cooperative env pays every agent
the team reward):

    y_i = r_i + gamma (1 - terminated) Q'_i(x', mu'_1(o'_1), ..., mu'_N(o'_N))

and actor i ascends Q_i(x, a_1, ..., mu_i(o_i), ..., a_N) with the other agents' actions
from the replay buffer (the paper's eq. 6). Discrete actions: mu_i is a straight-through
Gumbel-softmax sample of the actor's logits (the paper's particle worlds).

The paper's two extensions, as options:
- `approximate_policies` (section 4.2): agent i learns an approximation mu_hat_i^j of
  every other agent j's policy from j's observed actions (maximum likelihood with an
  entropy bonus, `approximation_entropy`) and critic i's target uses the approximators'
  targets for the other agents, so it needs no access to their actors.
- `ensemble_size` K (section 4.3): K sub-policies per agent, one drawn uniformly for each
  agent at the start of every episode. Sub-policy k of agent i learns only from the
  transitions where agent i acted with k (the paper's buffer D_i^(k)); critic i learns from
  all of them, its targets taking every agent's action from the sub-policy that agent
  acted with. The exported policy flies sub-policy 0 of every agent.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical, Normal

from policies.networks import mlp
from policies.offpolicy.common import OffPolicyAlgorithm, OffPolicyConfig, polyak_update


@dataclass
class MADDPGConfig(OffPolicyConfig):
    approximate_policies: bool = False
    approximation_entropy: float = 1e-3  # lambda of the approximators' entropy bonus
    ensemble_size: int = 1  # K sub-policies per agent

    def validate(self) -> None:
        super().validate()
        if self.ensemble_size < 1:
            raise ValueError(f"ensemble_size must be >= 1 (got {self.ensemble_size}).")
        if self.approximation_entropy < 0:
            raise ValueError(f"approximation_entropy must be >= 0 (got "
                             f"{self.approximation_entropy}).")


class PolicyApproximator(nn.Module):
    """mu_hat_i^j(o_j): a Gaussian over j's [-1, 1] Box action, or logits over its choices."""

    def __init__(self, obs_size: int, width: int, discrete: bool, hidden_sizes: list[int]):
        super().__init__()
        self.discrete = discrete
        self.body = mlp(obs_size, hidden_sizes, nn.ReLU)
        self.head = nn.Linear(hidden_sizes[-1], width)
        self.log_std = nn.Parameter(torch.zeros(width))

    def distribution(self, obs: torch.Tensor) -> Categorical | Normal:
        head = self.head(self.body(obs))
        if self.discrete:
            return Categorical(logits=head)
        return Normal(torch.tanh(head), self.log_std.exp().expand_as(head))

    def action(self, obs: torch.Tensor, temperature: float) -> torch.Tensor:
        """The approximated action in the critic's view: the mean, or a Gumbel one-hot."""
        dist = self.distribution(obs)
        if self.discrete:
            return F.gumbel_softmax(dist.logits, tau=temperature, hard=True)
        return dist.mean


class MADDPG(OffPolicyAlgorithm):
    config_class = MADDPGConfig
    cfg: MADDPGConfig

    def __init__(self, cfg: MADDPGConfig, spec, rng: np.random.Generator):
        self.num_critics = spec.num_agents  # before the base class builds the critics
        super().__init__(cfg, spec, rng)
        n = spec.num_agents
        # approximators[i][j]: agent i's model of agent j's policy (None on the diagonal)
        self.approximators = nn.ModuleList([nn.ModuleList([
            PolicyApproximator(spec.obs_sizes[j], self.widths[j], self.discrete[j],
                               cfg.hidden_sizes) if cfg.approximate_policies and j != i
            else nn.Identity() for j in range(n)]) for i in range(n)])
        self.target_approximators = copy.deepcopy(self.approximators)
        self.approximator_optimizer = (torch.optim.Adam(self.approximators.parameters(),
                                                        lr=cfg.lr_actor)
                                       if cfg.approximate_policies else None)

    @property
    def num_subpolicies(self) -> int:
        return self.cfg.ensemble_size

    def draw_subpolicies(self, count: int) -> np.ndarray:
        """One sub-policy per agent and new episode, uniformly (the paper's ensembles)."""
        if self.num_subpolicies == 1:
            return super().draw_subpolicies(count)
        return self.rng.integers(0, self.num_subpolicies, size=(count, self.spec.num_agents))

    @torch.no_grad()
    def critic_target(self, i: int, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """y_i: agent i's own target actor; the others' target actors, or with
        `approximate_policies` agent i's target approximators of them."""
        next_obs, members = batch["next_obs"], batch["subpolicy"]
        actions = []
        for j in range(self.spec.num_agents):
            if self.cfg.approximate_policies and j != i:
                obs_j = next_obs[:, j, : self.spec.obs_sizes[j]]
                actions.append(self.target_approximators[i][j].action(
                    obs_j, self.cfg.gumbel_temperature))
            else:
                actions.append(self.member_actions(j, next_obs[:, j], members[:, j], target=True))
        q_next = self.q_value(self.target_critics[i], batch["next_state"], self.joint(actions))
        return batch["rewards"][:, i] + self.discount(batch) * (1.0 - batch["terminated"]) * q_next

    def update_approximators(self, batch: dict[str, torch.Tensor]) -> float:
        """Maximum likelihood of the other agents' replayed actions, plus an entropy bonus."""
        losses = []
        for i in range(self.spec.num_agents):
            for j in range(self.spec.num_agents):
                if i == j:
                    continue
                dist = self.approximators[i][j].distribution(
                    batch["obs"][:, j, : self.spec.obs_sizes[j]])
                taken = batch["actions"][:, j, : self.widths[j]]
                log_prob = (dist.log_prob(taken.argmax(-1)) if self.discrete[j]
                            else dist.log_prob(taken).sum(-1))
                entropy = dist.entropy() if self.discrete[j] else dist.entropy().sum(-1)
                losses.append(-(log_prob + self.cfg.approximation_entropy * entropy).mean())
        loss = torch.stack(losses).sum()
        self.step(self.approximator_optimizer, loss, self.approximators.parameters())
        polyak_update(self.target_approximators, self.approximators, self.cfg.tau)
        return loss.item() / len(losses)

    def actor_loss(self, i: int, k: int, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """-Q_i(x, a_1, ..., mu_i^(k)(o_i), ..., a_N), the others' actions from the buffer."""
        actions = [batch["actions"][:, j] for j in range(self.spec.num_agents)]
        actions[i] = self.policy_action(i, batch["obs"][:, i], k)
        return (-self.q_value(self.critics[i], batch["state"], self.joint(actions)).mean()
                + self.action_penalty(i, batch["obs"][:, i], k))

    def update(self, sample) -> dict[str, float]:
        cfg, n = self.cfg, self.spec.num_agents
        batch = sample(cfg.batch_size)
        stats = {}
        if cfg.approximate_policies:
            stats["losses/approximation_loss"] = self.update_approximators(batch)
        stats["losses/critic_loss"] = self.critic_step(
            batch, [self.critic_target(i, batch) for i in range(n)])
        actor_losses = []
        for k in range(self.num_subpolicies):
            for i in range(1 if cfg.share_params else n):
                # A shared actor ascends the mean of every agent's critic; an ensemble member
                # learns from the transitions its agent acted with it (buffer D_i^(k)).
                agents = range(n) if cfg.share_params else [i]
                losses = []
                for a in agents:
                    own = batch if self.num_subpolicies == 1 else sample(cfg.batch_size, a, k)
                    if own:
                        losses.append(self.actor_loss(a, k, own))
                if losses:
                    loss = torch.stack(losses).mean()
                    self.step(self.optimizer_of(i, k), loss, self.actor_of(i, k).parameters())
                    actor_losses.append(loss.item())
        self.update_targets()
        self.gradient_steps += 1
        stats["losses/actor_loss"] = float(np.mean(actor_losses)) if actor_losses else 0.0
        return stats

    def modules(self) -> dict[str, nn.Module]:
        return {**super().modules(), "approximators": self.approximators,
                "target_approximators": self.target_approximators}

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.approximator_optimizer is not None:
            state["approximator_optimizer"] = self.approximator_optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if self.approximator_optimizer is not None:
            self.approximator_optimizer.load_state_dict(state["approximator_optimizer"])
