"""QMIX: a monotonic mixing network whose weights are produced from the global state.

Rashid et al., "QMIX: Monotonic Value Function Factorisation for Deep Multi-Agent
Reinforcement Learning" (2018). Hypernetworks map the state s to the mixer's weights;
taking their absolute value makes dQ_tot/dQ_a >= 0 for every agent, so the joint
greedy action is every agent's own greedy action (IGM) while Q_tot stays a non-linear,
state-dependent function of the agents' Qs. Biases are state-dependent and unconstrained;
the final bias V(s) is a two-layer network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from policies.value.common import QLearner, ValueConfig


@dataclass
class QMIXConfig(ValueConfig):
    mixing_embed: int = 32  # width of the mixer's hidden layer
    hypernet_embed: int = 64  # hidden width of the two-layer weight hypernetworks
    hypernet_layers: int = 2  # 1: linear hypernetworks; 2: one ReLU hidden layer


def hypernetwork(state_size: int, out_size: int, layers: int, embed: int) -> nn.Module:
    if layers == 1:
        return nn.Linear(state_size, out_size)
    return nn.Sequential(nn.Linear(state_size, embed), nn.ReLU(), nn.Linear(embed, out_size))


class QMixer(nn.Module):
    def __init__(self, num_agents: int, state_size: int, mixing_embed: int = 32,
                 hypernet_embed: int = 64, hypernet_layers: int = 2):
        super().__init__()
        self.num_agents, self.embed = num_agents, mixing_embed
        self.hyper_w1 = hypernetwork(state_size, num_agents * mixing_embed, hypernet_layers,
                                     hypernet_embed)
        self.hyper_b1 = nn.Linear(state_size, mixing_embed)
        self.hyper_w2 = hypernetwork(state_size, mixing_embed, hypernet_layers, hypernet_embed)
        self.hyper_b2 = nn.Sequential(nn.Linear(state_size, mixing_embed), nn.ReLU(),
                                      nn.Linear(mixing_embed, 1))  # V(s)

    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """agent_qs (..., N), states (..., S) -> Q_tot (...)."""
        lead = agent_qs.shape[:-1]
        s = states.reshape(-1, states.shape[-1])
        q = agent_qs.reshape(-1, 1, self.num_agents)
        w1 = self.hyper_w1(s).abs().view(-1, self.num_agents, self.embed)
        b1 = self.hyper_b1(s).view(-1, 1, self.embed)
        hidden = F.elu(torch.bmm(q, w1) + b1)
        w2 = self.hyper_w2(s).abs().view(-1, self.embed, 1)
        b2 = self.hyper_b2(s).view(-1, 1, 1)
        return (torch.bmm(hidden, w2) + b2).reshape(lead)


class QMIX(QLearner):
    config_class = QMIXConfig
    cfg: QMIXConfig

    def make_mixer(self) -> nn.Module:
        return QMixer(self.num_agents, self.spec.state_size, self.cfg.mixing_embed,
                      self.cfg.hypernet_embed, self.cfg.hypernet_layers)
