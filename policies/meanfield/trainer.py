"""The mean-field family's hooks for the shared `Trainer`: the off-policy loop (k env steps ->
replay -> `utd_ratio` updates, see `policies.offpolicy.trainer`) over per-agent transitions,
with no global state, and batches that carry the mean-action views of `common`."""

from __future__ import annotations

import numpy as np
import torch

from policies.meanfield import MEANFIELD_ALGORITHMS
from policies.meanfield.common import mean_action_width
from policies.offpolicy.common import TransitionBuffer
from policies.offpolicy.trainer import OffPolicyTrainer


class MeanFieldTrainer(OffPolicyTrainer):
    """MF-Q, MF-AC: the off-policy loop over per-agent transitions, without a global state.

    The replay buffer keeps joint steps (every drone of an env at once) and a batch draws
    (step, drone) pairs uniformly, so `batch_size` and `buffer_size` count agent transitions.
    """

    stores_state = False

    algorithms = MEANFIELD_ALGORITHMS

    def make_storage(self) -> None:
        spec, acfg = self.env.spec, self.algo.cfg
        self.mean_width = mean_action_width(self.env, acfg, self.config["algorithm"])
        n = spec.num_agents
        self.obs_norm = self.per_agent_obs_normalizer()
        rows = max(acfg.buffer_size // n, 1)
        self.buffer = TransitionBuffer(rows, n, spec.obs_size, 0, self.algo.action_width)
        self.update_credit = 0.0
        self.pending = []  # no n-step window (the family learns one-step targets)

    def update_step(self) -> dict[str, float]:
        self.algo.env_steps = self.global_step  # the schedules the updates follow (beta)
        return super().update_step()

    def learning_ready(self) -> bool:
        acfg = self.algo.cfg
        agent_transitions = self.buffer.size * self.env.spec.num_agents
        return self.global_step >= acfg.learning_starts and agent_transitions >= acfg.batch_size

    def sample(self, batch_size: int, agent: int | None = None,
               subpolicy: int | None = None) -> dict[str, torch.Tensor]:
        """A uniform batch of agent transitions with the three observation views."""
        data, n = self.buffer.data, self.env.spec.num_agents
        rows = self.rng.integers(0, self.buffer.size, size=batch_size)
        agents = self.rng.integers(0, n, size=batch_size)
        obs, next_obs = data["obs"][rows, agents], data["next_obs"][rows, agents]
        q_obs = obs.copy()
        q_obs[:, -self.mean_width:] = next_obs[:, -self.mean_width:]
        batch = {"obs": self.obs_norm(obs), "q_obs": self.obs_norm(q_obs),
                 "next_obs": self.obs_norm(next_obs), "actions": data["actions"][rows, agents],
                 "rewards": data["rewards"][rows, agents], "terminated": data["terminated"][rows]}
        return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)).to(self.device)
                for k, v in batch.items()}
