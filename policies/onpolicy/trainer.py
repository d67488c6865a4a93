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

import numpy as np

from policies.buffer import RolloutBuffer
from policies.envs import EPISODE_METRICS
from policies.onpolicy import ALGORITHMS
from policies.policy import TrainedPolicy
from policies.trainer import Trainer, segment_seed


class OnPolicyTrainer(Trainer):
    """MAPPO, HAPPO, HATRPO, HAA2C: rollouts of a stochastic actor, one update per rollout."""

    algorithms = ALGORITHMS

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

    def collect(self) -> dict[str, float]:
        """One rollout of `rollout_steps` into the buffer; returns finished-episode means."""
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
        algo.value_normalizer.update(buf.returns)
        self.obs_norm.update(np.stack(raw_obs))
        self.state_norm.update(np.stack(raw_states))
        self.global_step += buf.steps * self.env.num_envs
        if not finished:
            return {}
        return {k: float(np.mean([ep[k] for ep in finished if k in ep])) for k in finished[0]}

    def update_step(self) -> dict[str, float]:
        """The algorithm's update on the rollout (after the optional learning-rate decay)."""
        if self.algo.cfg.anneal_lr:
            self.algo.set_learning_rate(1.0 - self.update / self.num_updates)
        return self.algo.update(self.buffer.sequences(self.algo.cfg.chunk_len))

    def policy(self) -> TrainedPolicy:
        spec, acfg = self.env.spec, self.algo.cfg
        network = {k: getattr(acfg, k) for k in ("hidden_sizes", "activation", "recurrent",
                                                 "gru_size", "init_log_std")}
        return TrainedPolicy(spec.agents, spec.observation_spaces, spec.action_spaces,
                             self.algo.actors, self.obs_norm, acfg.share_params,
                             self.algo.id_size, network, self.policy_metadata())
