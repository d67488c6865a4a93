"""The on-policy family's hooks for the shared `Trainer`: rollout -> advantages -> one update.

One iteration collects `trainer.rollout_steps` steps in each of `trainer.num_envs`
environments into the `RolloutBuffer` (episodes run on across iterations, auto-reset),
computes GAE advantages against the centralised critic, and hands the rollout to the
algorithm's `update` (critic regression + its actor step). A run's budget is rounded up
to whole rollouts; `checkpoint_every` counts rollouts, and the environments restart
only after a checkpoint (see `policies.trainer`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from policies.buffer import RolloutBuffer
from policies.envs import EPISODE_METRICS, episode_means
from policies.networks import cpu_modules, cpu_state_dict, to_device
from policies.onpolicy import ALGORITHMS
from policies.policy import TrainedPolicy
from policies.rollout_workers import join_records
from policies.trainer import Trainer, segment_seed


class OnPolicyTrainer(Trainer):
    """MAPPO, HAPPO, HATRPO, HAA2C: rollouts of a stochastic actor, one update per rollout."""

    algorithms = ALGORITHMS
    supports_workers = True

    def make_storage(self) -> None:
        """The observation normaliser (per agent unless shared) and the rollout buffer."""
        spec = self.env.spec
        n, d = spec.num_agents, spec.obs_size
        self.obs_norm = self.per_agent_obs_normalizer()
        self.buffer = RolloutBuffer(self.tcfg.rollout_steps, spec.num_envs, n, d, spec.state_size,
                                    spec.action_size, self.algo.hidden_size)

    def plan(self, total_steps: int) -> int:
        """Whole rollouts: the budget rounded up (the learning-rate schedule spans them)."""
        per_update = self.tcfg.rollout_steps * self.env.num_envs
        self.num_updates = max(1, math.ceil(total_steps / per_update))
        return self.num_updates * per_update

    def start_segment(self) -> None:
        """Restart every environment and recurrent state (start, after checkpoints, resume)."""
        e, n = self.env.num_envs, self.env.spec.num_agents
        self.obs = self.env.reset(seed=segment_seed(self.seed, self.update))
        self.starts = np.ones(e, np.float32)
        self.hidden = np.zeros((e, n, self.algo.hidden_size), np.float32)
        self.episode_return = np.zeros(e)
        self.episode_length = np.zeros(e, np.int64)

    def rollout(self) -> dict[str, Any]:
        """Step the environments for one rollout into the buffer (advantages included) with
        the current actors, critic and normalisers; returns what `absorb` learns from."""
        algo, buf = self.algo, self.buffer
        raw_obs, raw_states, finished = [], [], []
        for _ in range(buf.steps):
            state = self.env.state()
            obs_n, state_n = self.obs_norm(self.obs), self.state_norm(state)
            actions, log_probs, hidden = algo.act(obs_n, self.starts, self.hidden)
            values = algo.values(state_n)
            next_obs, reward, terminated, truncated, infos = self.env.step(actions)
            done = infos["done"].astype(bool)
            final_values = np.zeros(len(done), np.float32)
            cut = done & ~terminated  # time limit: bootstrap from the final state's value
            if cut.any():
                final_values[cut] = algo.values(self.state_norm(infos["final_state"][cut]))
            buf.add(obs=obs_n, states=state_n, actions=actions, log_probs=log_probs,
                    hiddens=self.hidden, starts=self.starts, values=values, rewards=reward,
                    dones=done, final_values=final_values)
            raw_obs.append(self.obs)
            raw_states.append(state)
            self.episode_return += reward
            self.episode_length += 1
            for i in np.flatnonzero(done):
                ep = {"episodic_return": float(self.episode_return[i]),
                      "episodic_length": float(self.episode_length[i])}
                ep.update({k: float(infos[k][i]) for k in EPISODE_METRICS if k in infos})
                finished.append(ep)
            self.episode_return[done] = 0.0
            self.episode_length[done] = 0
            self.obs, self.starts, self.hidden = next_obs, done.astype(np.float32), hidden
        last_values = algo.values(self.state_norm(self.env.state()))
        buf.compute_advantages(last_values, algo.cfg.gamma, algo.cfg.gae_lambda)
        return {"raw_obs": np.stack(raw_obs), "raw_states": np.stack(raw_states),
                "finished": finished, "steps": buf.steps * self.env.num_envs}

    def absorb(self, record: dict[str, Any]) -> dict[str, float]:
        """The learner's side of a rollout (in the buffer): normaliser statistics, step count."""
        self.algo.value_normalizer.update(self.buffer.returns)
        self.obs_norm.update(record["raw_obs"])
        self.state_norm.update(record["raw_states"])
        self.global_step += record["steps"]
        return episode_means(record["finished"])

    # -- Ray rollout workers (`policies.rollout_workers`) ----------------------------------------
    def acting_state(self) -> dict[str, Any]:
        """What a rollout worker acts with: actors, critic (GAE), value and input statistics."""
        algo = self.algo
        return {"actors": cpu_state_dict(algo.actors), "critic": cpu_state_dict(algo.critic),
                "value_normalizer": algo.value_normalizer.state_dict(),
                "obs_norm": self.obs_norm.state_dict(), "state_norm": self.state_norm.state_dict()}

    def load_acting_state(self, state: dict[str, Any]) -> None:
        algo = self.algo
        algo.actors.load_state_dict(state["actors"])
        algo.critic.load_state_dict(state["critic"])
        algo.value_normalizer.load_state_dict(state["value_normalizer"])
        self.obs_norm.load_state_dict(state["obs_norm"])
        self.state_norm.load_state_dict(state["state_norm"])

    def worker_rollout(self) -> dict[str, Any]:
        record = self.rollout()
        record["buffer"] = {name: getattr(self.buffer, name) for name in RolloutBuffer.FIELDS}
        return record

    def merge_rollouts(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """The workers' rollouts as one over all environments (workers' envs in order)."""
        for name in RolloutBuffer.FIELDS:
            getattr(self.buffer, name)[:] = np.concatenate([r["buffer"][name] for r in records], 1)
        return join_records(records)

    def update_step(self) -> dict[str, float]:
        """The algorithm's update on the rollout (after the optional learning-rate decay)."""
        if self.algo.cfg.anneal_lr:
            self.algo.set_learning_rate(1.0 - self.update / self.num_updates)
        return self.algo.update(to_device(self.buffer.sequences(self.algo.cfg.chunk_len),
                                          self.device))

    def policy(self) -> TrainedPolicy:
        spec, acfg = self.env.spec, self.algo.cfg
        network = {k: getattr(acfg, k) for k in ("hidden_sizes", "activation", "recurrent",
                                                 "gru_size", "init_log_std")}
        return TrainedPolicy(spec.agents, spec.observation_spaces, spec.action_spaces,
                             cpu_modules(self.algo.actors), self.obs_norm, acfg.share_params,
                             self.algo.id_size, network, self.policy_metadata())
