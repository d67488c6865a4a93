"""QTRAN-base and QTRAN-alt: a free joint Q_jt, and individual Qs made to factorise it.

Son et al., "QTRAN: Learning to Factorize with Transformation for Cooperative Multi-Agent
Reinforcement Learning" (2019). Three networks over the agents' GRU features h_a and the
state: the individual Q_a (the agents, used to act), an unconstrained joint action-value
Q_jt(tau, u) trained by TD, and a state value V_jt(tau). The individual Qs factorise Q_jt
when  sum_a Q_a(u_a) - Q_jt(u) + V_jt  is 0 at the greedy joint action (L_opt) and >= 0
elsewhere (L_nopt). Q_jt is detached in both factorisation terms: it is fitted by L_td
only, the agents and V_jt move towards it. Q_jt and V_jt read the agents' GRU features
and, as in the paper, share the agents' lower layers: L_td and the V_jt terms train
them too. `detach_joint_inputs` stops those gradients (the joint networks then read the
features without training them); the README's value-family section has the figures.

QTRAN-alt replaces Q_jt by a counterfactual network giving, for each agent a, Q_jt over
all of a's actions with the others' actions fixed, and L_nopt by L_nopt-min: for every
agent the smallest gap over its own actions must be zero, a stronger signal than the
one-sided penalty on the taken joint action.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from policies.value.common import (
    EpisodicAlgorithm,
    ValueConfig,
    masked_mse,
    sequence_inputs,
    td_lambda_targets,
)


@dataclass
class QTRANConfig(ValueConfig):
    qtran_embed: int = 64  # width of the joint and value networks
    lambda_opt: float = 1.0
    lambda_nopt: float = 1.0
    detach_joint_inputs: bool = False  # True: Q_jt and V_jt do not train the agents' layers


# -- the factorisation terms (pure functions, unit-tested) ----------------------------------------
def opt_loss(q_sum_greedy: torch.Tensor, q_jt_greedy: torch.Tensor, v: torch.Tensor,
             mask: torch.Tensor) -> torch.Tensor:
    """L_opt: (sum_a Q_a(greedy) - Q_jt(greedy) + V)^2, Q_jt treated as fixed."""
    return masked_mse(q_sum_greedy - q_jt_greedy.detach() + v, mask)


def nopt_loss(q_sum_taken: torch.Tensor, q_jt_taken: torch.Tensor, v: torch.Tensor,
              mask: torch.Tensor) -> torch.Tensor:
    """L_nopt: min(0, sum_a Q_a(u_a) - Q_jt(u) + V)^2 at the taken joint action."""
    return masked_mse((q_sum_taken - q_jt_taken.detach() + v).clamp(max=0.0), mask)


def nopt_min_loss(agent_qs: torch.Tensor, taken: torch.Tensor, q_jt_counterfactual: torch.Tensor,
                  v: torch.Tensor, mask: torch.Tensor,
                  available: torch.Tensor | None = None) -> torch.Tensor:
    """L_nopt-min: mean over agents a of (min_{u'_a} [Q_a(u'_a) + sum_{b != a} Q_b(u_b)
    - Q_jt(u'_a, u_-a) + V])^2.

    agent_qs (..., N, A), taken (..., N), q_jt_counterfactual (..., N, A): agent a's row
    holds Q_jt over its own actions with the others' taken actions; v, mask (...).
    available (N, A) bool: an agent's actions beyond its own action count are left out of
    its min (agents with different action counts pad to the largest).
    """
    chosen = agent_qs.gather(-1, taken[..., None]).squeeze(-1)  # (..., N)
    others = chosen.sum(-1, keepdim=True) - chosen  # sum of the other agents' Qs
    gaps = agent_qs + others[..., None] - q_jt_counterfactual.detach() + v[..., None, None]
    if available is not None:
        gaps = gaps.masked_fill(~available, float("inf"))
    return masked_mse(gaps.min(-1).values, mask)


# -- networks ------------------------------------------------------------------------------------
class JointActionValue(nn.Module):
    """Q_jt(tau, u): sum over agents of an encoding of (h_a, u_a), with the state -> scalar."""

    def __init__(self, hidden_size: int, num_actions: int, state_size: int, embed: int):
        super().__init__()
        self.num_actions = num_actions
        self.encode = nn.Sequential(nn.Linear(hidden_size + num_actions, embed), nn.ReLU(),
                                    nn.Linear(embed, embed))
        self.out = nn.Sequential(nn.Linear(state_size + embed, embed), nn.ReLU(),
                                 nn.Linear(embed, 1))

    def forward(self, states: torch.Tensor, hiddens: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """states (..., S), hiddens (..., N, H), actions (..., N) -> (...)."""
        x = torch.cat([hiddens, F.one_hot(actions, self.num_actions).float()], -1)
        return self.out(torch.cat([states, self.encode(x).sum(-2)], -1)).squeeze(-1)


class CounterfactualJointActionValue(nn.Module):
    """QTRAN-alt's Q_jt(tau, ., u_-a) for every agent a: (..., N, A) in one pass."""

    def __init__(self, hidden_size: int, num_actions: int, num_agents: int, state_size: int,
                 embed: int):
        super().__init__()
        self.num_actions, self.num_agents = num_actions, num_agents
        self.encode = nn.Sequential(nn.Linear(hidden_size + num_actions, embed), nn.ReLU(),
                                    nn.Linear(embed, embed))
        self.own = nn.Linear(hidden_size + num_agents, embed)
        self.out = nn.Sequential(nn.Linear(state_size + 2 * embed, embed), nn.ReLU(),
                                 nn.Linear(embed, num_actions))

    def forward(self, states: torch.Tensor, hiddens: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        enc = self.encode(torch.cat([hiddens, F.one_hot(actions, self.num_actions).float()], -1))
        others = enc.sum(-2, keepdim=True) - enc  # (..., N, E): everyone but agent a
        ids = torch.eye(self.num_agents, device=hiddens.device).expand(*hiddens.shape[:-1],
                                                                       self.num_agents)
        own = self.own(torch.cat([hiddens, ids], -1))
        s = states.unsqueeze(-2).expand(*hiddens.shape[:-1], states.shape[-1])
        return self.out(torch.cat([s, others, own], -1))


class StateValue(nn.Module):
    """V_jt(tau): sum over agents of an encoding of h_a, with the state -> scalar."""

    def __init__(self, hidden_size: int, state_size: int, embed: int):
        super().__init__()
        self.encode = nn.Sequential(nn.Linear(hidden_size, embed), nn.ReLU(), nn.Linear(embed, embed))
        self.out = nn.Sequential(nn.Linear(state_size + embed, embed), nn.ReLU(),
                                 nn.Linear(embed, 1))

    def forward(self, states: torch.Tensor, hiddens: torch.Tensor) -> torch.Tensor:
        return self.out(torch.cat([states, self.encode(hiddens).sum(-2)], -1)).squeeze(-1)


# -- the algorithms --------------------------------------------------------------------------------
class QTRANBase(EpisodicAlgorithm):
    config_class = QTRANConfig
    cfg: QTRANConfig
    counterfactual = False

    def __init__(self, cfg: QTRANConfig, spec, rng):
        super().__init__(cfg, spec, rng)
        h, a, s, e = cfg.gru_size, self.num_actions, spec.state_size, cfg.qtran_embed
        self.joint = (CounterfactualJointActionValue(h, a, self.num_agents, s, e)
                      if self.counterfactual else JointActionValue(h, a, s, e))
        self.value = StateValue(h, s, e)
        self.target_agent = copy.deepcopy(self.agent)
        self.target_joint = copy.deepcopy(self.joint)
        self.params = [*self.agent.parameters(), *self.joint.parameters(), *self.value.parameters()]
        self.optimizer = torch.optim.Adam(self.params, lr=cfg.lr)

    def modules(self) -> dict[str, Any]:
        return {"agent": self.agent, "joint": self.joint, "value": self.value,
                "target_agent": self.target_agent, "target_joint": self.target_joint,
                "optimizer": self.optimizer}

    def joint_q(self, net: nn.Module, states, hiddens, actions) -> torch.Tensor:
        """Q_jt at the joint action `actions`: (B, T) for base, (B, T, N) per agent for alt."""
        out = net(states, hiddens, actions)
        if self.counterfactual:
            return out.gather(-1, actions[..., None]).squeeze(-1)
        return out

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.cfg
        inputs = sequence_inputs(batch, self.num_actions, cfg)
        q, hiddens = self.agent.unroll(inputs)  # (B, T+1, N, A), (B, T+1, N, H)
        q = self.masked_outputs(q)
        if cfg.detach_joint_inputs:  # the agents then learn from the factorisation terms only
            hiddens = hiddens.detach()
        taken = batch["actions"][:, :-1]
        states, mask = batch["state"], batch["mask"]
        # L_td: the joint action-value network on the taken joint action
        q_jt = self.joint_q(self.joint, states[:, :-1], hiddens[:, :-1], taken)
        with torch.no_grad():
            _, target_hiddens = self.target_agent.unroll(inputs)
            next_greedy = q[:, 1:].argmax(-1)  # double-Q: online agents pick, target Q_jt values
            next_q = self.joint_q(self.target_joint, states[:, 1:], target_hiddens[:, 1:],
                                  next_greedy)
            targets = td_lambda_targets(batch["reward"], batch["terminated"], mask, next_q,
                                        cfg.gamma, cfg.td_lambda)
        l_td = masked_mse(q_jt - targets, mask)
        # factorisation terms, with Q_jt fixed
        q_now = q[:, :-1]
        greedy = q_now.detach().argmax(-1)
        v = self.value(states[:, :-1], hiddens[:, :-1])
        with torch.no_grad():
            q_jt_greedy = self.joint_q(self.joint, states[:, :-1], hiddens[:, :-1], greedy)
        q_sum_greedy = q_now.max(-1).values.sum(-1)
        if self.counterfactual:
            l_opt = opt_loss(q_sum_greedy[..., None], q_jt_greedy, v[..., None], mask)
            with torch.no_grad():
                q_jt_all = self.joint(states[:, :-1], hiddens[:, :-1], taken)
            l_nopt = nopt_min_loss(q_now, taken, q_jt_all, v, mask, self.available)
        else:
            l_opt = opt_loss(q_sum_greedy, q_jt_greedy, v, mask)
            q_sum_taken = q_now.gather(-1, taken[..., None]).squeeze(-1).sum(-1)
            l_nopt = nopt_loss(q_sum_taken, q_jt, v, mask)
        loss = l_td + cfg.lambda_opt * l_opt + cfg.lambda_nopt * l_nopt
        grad_norm = self.clip_and_step(loss, self.params, self.optimizer)
        self.updates += 1
        self.update_targets([(self.agent, self.target_agent), (self.joint, self.target_joint)])
        return {"losses/td_loss": l_td.item(), "losses/opt_loss": l_opt.item(),
                "losses/nopt_loss": l_nopt.item(), "losses/grad_norm": grad_norm}


class QTRANAlt(QTRANBase):
    counterfactual = True
