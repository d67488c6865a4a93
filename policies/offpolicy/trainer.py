"""The off-policy family's hooks for the shared `Trainer`: k env steps -> replay -> UTD updates.

One iteration steps all `trainer.num_envs` environments `trainer.rollout_steps` times with
the exploring actors (uniform random actions for the first `algo.learning_starts` env
steps), adds every joint transition to the `TransitionBuffer` (episodes run on across
iterations, auto-reset; a time limit bootstraps from the final observation and state;
with `algo.n_step` > 1 each goes through a window of its env's last n steps, see `store`),
then takes `utd_ratio` gradient steps per env step collected (a fractional remainder
carries over to the next iteration), each on a fresh uniform batch, once the buffer holds
`batch_size` transitions and the random phase is over. `checkpoint_every` counts
iterations; the checkpoint adds the replay buffer, the carried remainder and the n-step
window to the shared fields, and the environments restart after each checkpoint (see
`policies.trainer`), so a resumed run continues exactly like the uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from policies.envs import EPISODE_METRICS, episode_means
from policies.networks import cpu_modules, cpu_state_dict
from policies.offpolicy import OFFPOLICY_ALGORITHMS
from policies.offpolicy.common import TransitionBuffer
from policies.policy import TrainedPolicy
from policies.rollout_workers import join_records
from policies.trainer import Trainer, segment_seed


class OffPolicyTrainer(Trainer):
    """MADDPG, HADDPG, HATD3: deterministic actors learned from a transition replay buffer."""

    algorithms = OFFPOLICY_ALGORITHMS
    stores_state = True  # centralised critics read env.state(); the mean-field family does not

    def make_storage(self) -> None:
        """The observation normaliser (per agent unless shared) and the replay buffer."""
        spec = self.env.spec
        n, d = spec.num_agents, spec.obs_size
        self.obs_norm = self.per_agent_obs_normalizer()
        # critic_input "observations": the critics read the observations, no state is kept
        self.obs_critic = self.algo.cfg.critic_input == "observations"
        self.stores_state = type(self).stores_state and not self.obs_critic
        self.buffer = TransitionBuffer(self.algo.cfg.buffer_size, n, d,
                                       spec.state_size if self.stores_state else 0,
                                       self.algo.action_width)
        self.update_credit = 0.0  # gradient steps owed by the utd_ratio (fractional part)
        self.pending: list[dict[str, np.ndarray]] = []  # n-step window: the last steps, oldest first

    def plan(self, total_steps: int) -> int:
        """Whole iterations of num_envs x rollout_steps env steps."""
        per_iteration = self.tcfg.rollout_steps * self.env.num_envs
        return max(1, math.ceil(total_steps / per_iteration)) * per_iteration

    def start_segment(self) -> None:
        self.flush_pending()
        e = self.env.num_envs
        self.obs = self.env.reset(seed=segment_seed(self.seed, self.update))
        self.state = self.env_state()
        self.members = self.algo.draw_subpolicies(e)
        self.episode_return = np.zeros(e)
        self.episode_length = np.zeros(e, np.int64)

    supports_workers = True

    def rollout(self, sink: Callable[[dict[str, np.ndarray]], None] | None = None) -> dict[str, Any]:
        """`rollout_steps` joint steps of every env with the exploring actors; each step's
        transitions go to `sink` (default `store`: the replay buffer)."""
        algo, env = self.algo, self.env
        sink = sink or self.store
        raw_obs, raw_states, finished = [], [], []
        for t in range(self.tcfg.rollout_steps):
            # the exploration schedules follow the run's env-step count (all workers' envs)
            env_steps = self.global_step + t * self.schedule_stride
            actions = algo.explore(self.obs_norm(self.obs), env_steps, self.members)
            next_obs, reward, terminated, _, infos = env.step(algo.env_actions(actions))
            done = infos["done"].astype(bool)
            next_state = self.env_state()
            stored_obs, stored_state = next_obs.copy(), next_state.copy()
            if done.any():  # the rows that reset: the transition ends at the final obs/state
                stored_obs[done] = infos["final_obs"][done]
                if self.stores_state:
                    stored_state[done] = infos["final_state"][done]
            agent_rewards = infos.get("agent_rewards")
            if agent_rewards is None:
                agent_rewards = np.repeat(reward[:, None], env.spec.num_agents, 1)
            sink(dict(obs=self.obs, state=self.state, actions=actions, rewards=agent_rewards,
                      next_obs=stored_obs, next_state=stored_state,
                      terminated=(terminated & done).astype(np.float32), subpolicy=self.members,
                      done=done))
            raw_obs.append(self.obs)
            raw_states.append(self.state)
            self.episode_return += reward
            self.episode_length += 1
            for i in np.flatnonzero(done):
                ep = {"episodic_return": float(self.episode_return[i]),
                      "episodic_length": float(self.episode_length[i])}
                ep.update({k: float(infos[k][i]) for k in EPISODE_METRICS if k in infos})
                finished.append(ep)
            self.episode_return[done] = 0.0
            self.episode_length[done] = 0
            if done.any():
                self.members[done] = algo.draw_subpolicies(int(done.sum()))
            self.obs, self.state = next_obs, next_state
        return {"raw_obs": np.stack(raw_obs), "raw_states": np.stack(raw_states),
                "finished": finished, "steps": self.tcfg.rollout_steps * env.num_envs}

    @property
    def schedule_stride(self) -> int:
        """Env steps the run takes per joint step: this process's envs, or all the workers'."""
        return getattr(self, "total_envs", self.env.num_envs)

    def absorb(self, record: dict[str, Any]) -> dict[str, float]:
        """The learner's side of a rollout (already in the replay): statistics, step count."""
        self.obs_norm.update(record["raw_obs"])
        if self.stores_state:
            self.state_norm.update(record["raw_states"])
        self.global_step += record["steps"]
        return episode_means(record["finished"])

    # -- Ray rollout workers (`policies.rollout_workers`) ----------------------------------------
    def acting_state(self) -> dict[str, Any]:
        """What a rollout worker explores with: the actors and the observation statistics."""
        return {"actors": cpu_state_dict(self.algo.actors), "obs_norm": self.obs_norm.state_dict()}

    def load_acting_state(self, state: dict[str, Any]) -> None:
        self.algo.actors.load_state_dict(state["actors"])
        self.obs_norm.load_state_dict(state["obs_norm"])

    def worker_rollout(self) -> dict[str, Any]:
        steps: list[dict[str, np.ndarray]] = []
        # copies: the loop reuses some arrays in place (a finished episode's subpolicy row)
        record = self.rollout(lambda step: steps.append({k: np.array(v) for k, v in step.items()}))
        record["transitions"] = steps
        return record

    def merge_rollouts(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """The workers' steps, joined env-wise (workers' envs in order), into the replay."""
        for joint in zip(*(r["transitions"] for r in records), strict=True):
            self.store({k: np.concatenate([step[k] for step in joint]) for k in joint[0]})
        return join_records(records)

    def segment_ended(self) -> None:
        self.flush_pending()

    def store(self, step: dict[str, np.ndarray]) -> None:
        """One joint step of every env into the replay: as it is (n_step 1), or through the
        window of each env's last n steps, whose oldest becomes an n-step transition."""
        if self.algo.cfg.n_step == 1:
            one_step = {k: v for k, v in step.items() if k != "done"}
            self.buffer.add(**one_step, discount=np.full(len(step["obs"]), self.algo.cfg.gamma,
                                                         np.float32))
            return
        # copies: the trainer reuses some arrays in place (a finished episode's subpolicy row)
        self.pending.append({k: np.array(v) for k, v in step.items()})
        if len(self.pending) == self.algo.cfg.n_step:
            self.buffer.add(**self.n_step_transition(self.pending))
            self.pending.pop(0)

    def flush_pending(self) -> None:
        """The environments restart: every step still in the window becomes a transition of
        the rewards it has, bootstrapped from its last observation."""
        while self.pending:
            self.buffer.add(**self.n_step_transition(self.pending))
            self.pending.pop(0)

    def n_step_transition(self, window: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """window[0]'s transition with the discounted sum of the rewards of up to
        len(window) steps of its env, stopping after the step that ended the episode."""
        gamma, first = self.algo.cfg.gamma, window[0]
        out = {k: first[k] for k in ("obs", "state", "actions", "subpolicy")}
        out.update({k: first[k].copy() for k in ("next_obs", "next_state", "terminated")})
        rewards = np.zeros(first["rewards"].shape)
        alive = np.ones(len(first["obs"]), bool)  # envs whose episode has not ended yet
        steps = np.zeros(len(alive))
        for k, step in enumerate(window):
            rewards[alive] += gamma**k * step["rewards"][alive]
            steps += alive
            for key in ("next_obs", "next_state", "terminated"):
                out[key][alive] = step[key][alive]
            alive &= ~step["done"]
        out["rewards"] = rewards.astype(np.float32)
        out["discount"] = (gamma**steps).astype(np.float32)
        return out

    def env_state(self) -> np.ndarray:
        """The global state of every env (E, S), or (E, 0) where the family keeps none."""
        if self.stores_state:
            return self.env.state()
        return np.zeros((self.env.num_envs, 0), np.float32)

    def learning_ready(self) -> bool:
        """Past the random phase, with a batch's worth of transitions in the buffer."""
        acfg = self.algo.cfg
        return self.global_step >= acfg.learning_starts and self.buffer.size >= acfg.batch_size

    def sample(self, batch_size: int, agent: int | None = None,
               subpolicy: int | None = None) -> dict[str, torch.Tensor]:
        """A uniform batch of normalised transitions (those where `agent` acted with
        ensemble member `subpolicy`, when given) as tensors."""
        data, rows = self.buffer.data, None
        if agent is not None and subpolicy is not None:
            rows = np.flatnonzero(data["subpolicy"][: self.buffer.size, agent] == subpolicy)
            if len(rows) == 0:
                return {}
        index = self.buffer.sample_index(batch_size, self.rng, rows)
        batch = {k: v[index] for k, v in data.items()}
        for k in ("obs", "next_obs"):
            batch[k] = self.obs_norm(batch[k])
        if self.stores_state:
            for k in ("state", "next_state"):
                batch[k] = self.state_norm(batch[k])
        elif self.obs_critic:  # the critics' input: every agent's observation, in agent order
            batch["state"] = batch["obs"].reshape(len(index), -1)
            batch["next_state"] = batch["next_obs"].reshape(len(index), -1)
        return {k: torch.from_numpy(np.ascontiguousarray(v)).to(self.device)
                for k, v in batch.items()}

    def update_step(self) -> dict[str, float]:
        """`utd_ratio` gradient steps per env step of this iteration, once learning starts."""
        acfg = self.algo.cfg
        figures = self.algo.exploration_figures(self.global_step)
        if not self.learning_ready():
            return figures
        self.update_credit += acfg.utd_ratio * self.tcfg.rollout_steps * self.env.num_envs
        steps = int(self.update_credit)
        self.update_credit -= steps
        stats: list[dict[str, float]] = [self.algo.update(self.sample) for _ in range(steps)]
        for key in {k for s in stats for k in s}:
            figures[key] = float(np.mean([s[key] for s in stats if key in s]))
        figures["charts/gradient_steps"] = float(self.algo.gradient_steps)
        return figures

    # -- results and checkpoints ---------------------------------------------------------------
    def policy(self) -> TrainedPolicy:
        spec, acfg = self.env.spec, self.algo.cfg
        network = {"actor": "deterministic", "hidden_sizes": list(acfg.hidden_sizes),
                   "activation": acfg.activation}
        return TrainedPolicy(spec.agents, spec.observation_spaces, spec.action_spaces,
                             cpu_modules(self.algo.actors), self.obs_norm, acfg.share_params,
                             self.algo.id_size, network, self.policy_metadata())

    def checkpoint_fields(self) -> dict[str, Any]:
        return {"buffer": self.buffer.state_dict(), "update_credit": self.update_credit,
                "pending": self.pending}

    def load_checkpoint_fields(self, data: dict[str, Any]) -> None:
        self.buffer.load_state_dict(data["buffer"])
        self.update_credit = float(data["update_credit"])
        self.pending = list(data.get("pending", []))  # flushed when the envs restart
