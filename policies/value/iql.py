"""IQL: independent Q-learning, every agent regressing its own Q on the team reward.

Tan, "Multi-Agent Reinforcement Learning: Independent vs. Cooperative Agents" (1993), with
the recurrent, parameter-shared agents of the value-decomposition family. There is no
mixer: the TD loss is taken per agent, so each agent treats the others as part of the
environment (the baseline the factorisation methods are measured against).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from policies.value.common import QLearner, ValueConfig


@dataclass
class IQLConfig(ValueConfig):
    pass


class NoMixer(nn.Module):
    """Identity: each agent's Q is its own target's prediction, (B, T, N) -> (B, T, N)."""

    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        return agent_qs


class IQL(QLearner):
    config_class = IQLConfig

    def make_mixer(self) -> nn.Module:
        return NoMixer()
