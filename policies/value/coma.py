"""COMA: counterfactual multi-agent policy gradients.

Foerster et al., "Counterfactual Multi-Agent Policy Gradients" (2018). A centralised
critic Q(s, u_-a, .) returns, in one pass, the joint action-value for every action of
agent a with the other agents' actions fixed. Agent a's advantage is its taken action's
value minus the policy-weighted average over its own actions,
    A_a(s, u) = Q(s, u) - sum_u' pi_a(u' | tau_a) Q(s, (u_-a, u')),
a baseline that depends only on the other agents' actions, so it removes variance
without biasing the gradient and credits each agent with its own contribution. The
critic learns TD(lambda) targets from a target copy; the actor is the shared GRU agent.
COMA is on-policy: each update uses the episodes collected just before it.

Exploration mixes the actor's softmax with the uniform policy (epsilon annealed). The
actions are drawn from that mixture, so the update uses the same behaviour distribution
for log pi, the counterfactual baseline and the entropy (as the paper's implementation
does); the plain softmax there would bias the early gradient, while epsilon is large.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from policies.value.common import (
    EpisodicAlgorithm,
    ValueConfig,
    agent_inputs,
    linear_epsilon,
    masked_mse,
    sequence_inputs,
    td_lambda_targets,
)


@dataclass
class COMAConfig(ValueConfig):
    lr: float = 5e-4  # actor
    lr_critic: float = 5e-4
    critic_hidden: int = 128
    critic_updates: int = 2  # critic gradient steps per batch, before the actor's step
    td_lambda: float = 0.8
    target_update_interval: int = 10  # updates (one per batch of episodes)
    ent_coef: float = 0.01
    # exploration: the policy is mixed with a uniform one, epsilon annealed linearly
    epsilon_start: float = 0.5
    epsilon_finish: float = 0.01
    epsilon_anneal_steps: int = 30_000


def counterfactual_advantages(q_values: torch.Tensor, probs: torch.Tensor,
                              taken: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """q_values, probs (..., A), taken (...) -> (advantage of the taken action, of every action).

    The baseline sum_u pi(u) Q(u) makes sum_u pi(u) A(u) = 0: the advantages carry no
    policy-weighted offset, only each action's relative worth given the others' actions.
    """
    baseline = (probs * q_values).sum(-1, keepdim=True)
    advantages = q_values - baseline
    return advantages.gather(-1, taken[..., None]).squeeze(-1), advantages


class CounterfactualCritic(nn.Module):
    """Q(s, o_a, u_-a, u_{t-1}, a) -> one value per action of agent a, for all agents at once."""

    def __init__(self, state_size: int, obs_size: int, num_agents: int, num_actions: int,
                 hidden: int):
        super().__init__()
        self.num_agents, self.num_actions = num_agents, num_actions
        size = state_size + obs_size + 2 * num_agents * num_actions + num_agents
        self.net = nn.Sequential(nn.Linear(size, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, num_actions))

    def forward(self, states: torch.Tensor, obs: torch.Tensor, actions: torch.Tensor,
                last_actions: torch.Tensor) -> torch.Tensor:
        """states (..., S), obs (..., N, D), actions/last_actions (..., N) -> (..., N, A)."""
        n, a = self.num_agents, self.num_actions
        lead = obs.shape[:-2]
        joint = F.one_hot(actions, a).float().reshape(*lead, 1, n * a).expand(*lead, n, n * a)
        hide_own = (1.0 - torch.eye(n, device=obs.device)).repeat_interleave(a, dim=-1)  # zero agent a's own action
        last = F.one_hot(last_actions.clamp(min=0), a).float() * (last_actions >= 0)[..., None]
        last = last.reshape(*lead, 1, n * a).expand(*lead, n, n * a)
        x = torch.cat([states.unsqueeze(-2).expand(*lead, n, states.shape[-1]), obs,
                       joint * hide_own, last, torch.eye(n, device=obs.device).expand(*lead, n, n)],
                      -1)
        return self.net(x)


class COMA(EpisodicAlgorithm):
    config_class = COMAConfig
    cfg: COMAConfig
    on_policy = True
    output_kind = "logits"

    def __init__(self, cfg: COMAConfig, spec, rng):
        super().__init__(cfg, spec, rng)
        self.critic = CounterfactualCritic(spec.state_size, spec.obs_size, self.num_agents,
                                           self.num_actions, cfg.critic_hidden)
        self.target_critic = copy.deepcopy(self.critic)
        self.optimizer = torch.optim.Adam(self.agent.parameters(), lr=cfg.lr)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr_critic)
        self.epsilon = cfg.epsilon_start  # exploration rate of the episodes collected last

    def modules(self) -> dict[str, Any]:
        return {"agent": self.agent, "critic": self.critic, "target_critic": self.target_critic,
                "optimizer": self.optimizer, "critic_optimizer": self.critic_optimizer}

    def behaviour_probs(self, logits: torch.Tensor, epsilon: float) -> torch.Tensor:
        """The actor's softmax mixed with the uniform policy over available actions."""
        probs = F.softmax(self.masked_outputs(logits), -1)
        uniform = self.available.float() / self.available.sum(-1, keepdim=True)
        return (1.0 - epsilon) * probs + epsilon * uniform

    @torch.no_grad()
    def select_actions(self, obs: np.ndarray, last_actions: np.ndarray, hidden: torch.Tensor,
                       env_steps: int) -> tuple[np.ndarray, torch.Tensor]:
        x = agent_inputs(torch.from_numpy(obs).to(self.device),
                         torch.from_numpy(last_actions).to(self.device) if
                         self.cfg.last_action else None, self.num_actions, self.cfg.agent_id)
        logits, hidden = self.agent(x, hidden)
        self.epsilon = linear_epsilon(self.cfg, env_steps)  # the next update's behaviour policy
        probs = self.behaviour_probs(logits, self.epsilon)
        return torch.distributions.Categorical(probs=probs).sample().cpu().numpy(), hidden

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.cfg
        mask, states, obs = batch["mask"], batch["state"], batch["obs"]
        actions = batch["actions"]  # (B, T+1, N); the slot after an episode's end is unused
        last = torch.cat([torch.full_like(actions[:, :1], -1), actions[:, :-1]], 1)
        logits, _ = self.agent.unroll(sequence_inputs(batch, self.num_actions, cfg))
        probs = self.behaviour_probs(logits, self.epsilon)  # what the actions were drawn from
        # The bootstrap of a truncated episode needs u_{T}: sample it from the current policy.
        with torch.no_grad():
            sampled = torch.distributions.Categorical(probs=probs.detach()).sample()
            real_next = torch.cat([mask[:, 1:], torch.zeros_like(mask[:, :1])], 1).bool()
            next_actions = torch.where(real_next[..., None], actions[:, 1:], sampled[:, 1:])
            next_last = actions[:, :-1]
            target_q = self.target_critic(states[:, 1:], obs[:, 1:], next_actions, next_last)
            next_values = target_q.gather(-1, next_actions[..., None]).squeeze(-1)  # (B, T, N)
            targets = td_lambda_targets(batch["reward"], batch["terminated"], mask, next_values,
                                        cfg.gamma, cfg.td_lambda)
        taken = actions[:, :-1]
        critic_losses = []
        for _ in range(cfg.critic_updates):
            q_all = self.critic(states[:, :-1], obs[:, :-1], taken, last[:, :-1])
            q_taken = q_all.gather(-1, taken[..., None]).squeeze(-1)
            critic_loss = masked_mse(q_taken - targets, mask)
            self.clip_and_step(critic_loss, list(self.critic.parameters()), self.critic_optimizer)
            critic_losses.append(critic_loss.item())
        # actor: counterfactual advantage against the policy-weighted baseline
        with torch.no_grad():
            q_all = self.critic(states[:, :-1], obs[:, :-1], taken, last[:, :-1])
        pi = probs[:, :-1]
        advantage, _ = counterfactual_advantages(q_all, pi.detach(), taken)
        log_pi = torch.log(pi.gather(-1, taken[..., None]).squeeze(-1).clamp(min=1e-10))
        entropy = -(pi * torch.log(pi.clamp(min=1e-10))).sum(-1)
        m = mask[..., None].expand_as(advantage)
        mean_entropy = float((entropy.detach() * m).sum() / m.sum())
        actor_loss = -((advantage * log_pi + cfg.ent_coef * entropy) * m).sum() / m.sum()
        grad_norm = self.clip_and_step(actor_loss, list(self.agent.parameters()), self.optimizer)
        self.updates += 1
        self.update_targets([(self.critic, self.target_critic)])
        return {"losses/critic_loss": float(np.mean(critic_losses)),
                "losses/policy_loss": actor_loss.item(), "losses/entropy": mean_entropy,
                "losses/grad_norm": grad_norm,
                "losses/advantage_abs": float((advantage.abs() * m).sum() / m.sum())}
