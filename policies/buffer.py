"""Rollout storage over the batched arrays and generalised advantage estimation.

Everything is stored as the environments produce it, time first: (T, E, N, ...)
for per-agent arrays, (T, E) for the team reward, values and episode flags. The
team shares one reward, so values and advantages are per environment and every
agent's policy gradient uses the same advantage (CTDE with a centralised V(s)).

Episode ends come in two kinds and GAE treats them differently:
- termination (the task is done): nothing follows, the next value is 0;
- truncation (time limit): the episode was cut, so the next value is V(final state),
  which the trainer evaluated from `infos["final_state"]` and stored in `final_values`.
In both cases the recursion stops at the boundary, since the next stored step
belongs to a new episode (auto-reset).
"""

from __future__ import annotations

import numpy as np
import torch


class RolloutBuffer:
    # the arrays of a rollout (what a Ray rollout worker sends back to the learner)
    FIELDS = ("obs", "states", "actions", "log_probs", "hiddens", "starts", "values", "rewards",
              "dones", "final_values", "advantages", "returns")

    def __init__(self, steps: int, num_envs: int, num_agents: int, obs_size: int,
                 state_size: int, action_size: int, hidden_size: int):
        t, e, n = steps, num_envs, num_agents
        self.steps, self.num_envs, self.num_agents = t, e, n
        self.obs = np.zeros((t, e, n, obs_size), np.float32)  # normalised, as the actor saw them
        self.states = np.zeros((t, e, state_size), np.float32)  # normalised, as the critic saw them
        self.actions = np.zeros((t, e, n, action_size), np.float32)  # raw samples / indices
        self.log_probs = np.zeros((t, e, n), np.float32)
        self.hiddens = np.zeros((t, e, n, hidden_size), np.float32)  # actor memory before step t
        self.starts = np.zeros((t, e), np.float32)  # obs[t] is the first of an episode
        self.values = np.zeros((t, e), np.float32)  # V(s_t), in return units
        self.rewards = np.zeros((t, e), np.float32)
        self.dones = np.zeros((t, e), np.float32)  # the episode ended with this step
        self.final_values = np.zeros((t, e), np.float32)  # V(final state) if truncated, else 0
        self.advantages = np.zeros((t, e), np.float32)
        self.returns = np.zeros((t, e), np.float32)
        self.pos = 0

    def add(self, **arrays: np.ndarray) -> None:
        for name, value in arrays.items():
            getattr(self, name)[self.pos] = value
        self.pos += 1

    def compute_advantages(self, last_values: np.ndarray, gamma: float, gae_lambda: float) -> None:
        """GAE(gamma, lambda) backwards over the rollout; `last_values` = V(s_T) per env."""
        if self.pos != self.steps:
            raise RuntimeError(f"rollout holds {self.pos} of {self.steps} steps; collect it fully "
                               "before computing advantages.")
        gae = np.zeros(self.num_envs, np.float32)
        for t in reversed(range(self.steps)):
            following = last_values if t == self.steps - 1 else self.values[t + 1]
            next_value = np.where(self.dones[t] > 0, self.final_values[t], following)
            delta = self.rewards[t] + gamma * next_value - self.values[t]
            gae = delta + gamma * gae_lambda * (1.0 - self.dones[t]) * gae
            self.advantages[t] = gae
        self.returns[:] = self.advantages + self.values
        self.pos = 0

    def sequences(self, chunk_len: int) -> dict[str, torch.Tensor]:
        """The rollout cut into chunks of `chunk_len` steps: arrays shaped (L, B, ...).

        B = (T / L) * E sequences; `hiddens` keeps only each chunk's first step (B, N, H),
        which is where a recurrent actor restarts when it is re-evaluated. With L = 1 this
        is simply every transition as its own sample.
        """
        t, e = self.steps, self.num_envs
        if t % chunk_len:
            raise ValueError(f"rollout_steps={t} must be a multiple of chunk_len={chunk_len}.")
        c = t // chunk_len

        def cut(x: np.ndarray) -> torch.Tensor:
            x = x.reshape(c, chunk_len, e, *x.shape[2:]).swapaxes(0, 1)
            return torch.from_numpy(np.ascontiguousarray(x.reshape(chunk_len, c * e, *x.shape[3:])))

        out = {name: cut(getattr(self, name)) for name in (
            "obs", "states", "actions", "log_probs", "starts", "values", "advantages", "returns")}
        out["hiddens"] = cut(self.hiddens)[0]
        return out
