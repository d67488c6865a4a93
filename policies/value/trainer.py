"""The episodic family's hooks for the shared `Trainer`: whole episodes -> store -> sample -> update.

One iteration collects one episode in each of `trainer.num_envs` environments (all
restarted from a seed derived from (seed, iteration)), adds them to the episode replay
buffer, then takes `algo.updates_per_collect` gradient steps on sampled episodes (COMA:
on the episodes just collected). `checkpoint_every` counts iterations; the checkpoint
adds the replay buffer (with its padded length) to the shared fields, so a resumed run
continues like the uninterrupted one.

Episode length: the buffer pads episodes to one length, `algo.episode_limit` when set
(longer episodes are cut there and bootstrapped), else the length the environment
declares (`max_steps`, `max_cycles`, `max_episode_steps`, on the env or `env.unwrapped`,
or a gymnasium-style `spec.max_episode_steps`). An environment that declares nothing
starts from a short guess; an episode that runs past it doubles the padded length of the
episodes being collected and of the replay buffer (stored episodes stay valid, padded
with mask 0), up to `EPISODE_LENGTH_CAP` steps, past which an episode that never ends
stops training with a message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from policies.envs import EPISODE_METRICS, ParallelEnvBatch, SimVecEnv
from policies.networks import cpu_modules, to_device
from policies.normalization import ObservationNormalizer
from policies.trainer import Trainer, make_batched_env, segment_seed
from policies.value import VALUE_ALGORITHMS
from policies.value.common import EpisodeBuffer, normalized_batch
from policies.value.policy import RecurrentAgentPolicy


def make_episodic_env(env_fn: str | Callable[[], Any], resolved: dict[str, Any]):
    if env_fn == "matrix":
        from policies.matrix_game import MatrixGame

        params = dict(resolved["env"])
        return ParallelEnvBatch(lambda: MatrixGame(**params), resolved["trainer"]["num_envs"])
    return make_batched_env(env_fn, resolved)


EPISODE_LENGTH_ATTRIBUTES = ("max_steps", "max_cycles", "max_episode_steps")
FIRST_EPISODE_LIMIT = 16  # the first padded length for an env that declares none; doubles
EPISODE_LENGTH_CAP = 10_000  # an undeclared episode longer than this is taken as never-ending


def declared_length(obj: Any) -> int | None:
    """The episode length `obj` declares, if any (PettingZoo, gymnasium and sim names)."""
    holders = [obj]
    for name in ("unwrapped", "spec"):
        try:  # wrappers forward attributes and may raise anything for ones they lack
            holder = getattr(obj, name, None)
        except Exception:
            holder = None
        if holder is not None and holder is not obj:
            holders.append(holder)
    for holder in holders:
        for name in EPISODE_LENGTH_ATTRIBUTES:
            try:
                value = getattr(holder, name, None)
            except Exception:
                value = None
            if isinstance(value, int | np.integer) and not isinstance(value, bool) and value > 0:
                return int(value)
    return None


def episode_limit(env: Any, configured: int) -> tuple[int, bool]:
    """The padded episode length to start from, and whether it may grow (nothing declared)."""
    if configured > 0:
        return configured, False
    if isinstance(env, SimVecEnv):
        return int(env.cfg.max_steps), False
    declared = declared_length(env.first_env)
    if declared is not None:
        return declared, False
    return FIRST_EPISODE_LIMIT, True


class EpisodicTrainer(Trainer):
    """IQL, VDN, QMIX, QTRAN, COMA: whole episodes, replayed (value methods) or the latest (COMA)."""

    algorithms = VALUE_ALGORITHMS

    def make_env(self, env_fn: str | Callable[[], Any], resolved: dict[str, Any]) -> Any:
        return make_episodic_env(env_fn, resolved)

    def make_storage(self) -> None:
        """One observation normaliser for the shared agent network, and the episode buffer."""
        spec, acfg = self.env.spec, self.algo.cfg
        self.limit, self.grows = episode_limit(self.env, acfg.episode_limit)
        self.obs_norm = ObservationNormalizer((spec.obs_size,), enabled=self.tcfg.normalize_obs)
        capacity = spec.num_envs if self.algo.on_policy else acfg.buffer_episodes
        self.buffer = EpisodeBuffer(capacity, self.limit, spec.num_agents, spec.obs_size,
                                    spec.state_size)

    def longer_limit(self) -> int:
        """The next padded length for an episode that outgrew `self.limit` (or a clear stop)."""
        if self.limit >= EPISODE_LENGTH_CAP:
            raise ValueError(f"an episode of this environment ran past {EPISODE_LENGTH_CAP:,} steps "
                             "without ending and the environment declares no episode length; set "
                             "algo.episode_limit (episodes are then cut there and bootstrapped) or "
                             "make the environment truncate its episodes.")
        return min(2 * self.limit, EPISODE_LENGTH_CAP)

    # -- collection ---------------------------------------------------------------------------
    def start_segment(self) -> None:
        """Nothing to restart: every `collect` starts fresh episodes from a derived seed."""

    def collect(self) -> dict[str, float]:
        """One episode per environment into the buffer; returns the episodes' mean figures.

        Runs until every environment's episode has ended, growing the padded length when an
        episode outlasts it (envs that declare no length), else cuts at `self.limit`.
        """
        env, algo = self.env, self.algo
        e, n, d = env.num_envs, env.spec.num_agents, env.spec.obs_size
        episodes = EpisodeBuffer(e, self.limit, n, d, env.spec.state_size)  # the same layout
        ep = episodes.data
        obs = env.reset(seed=segment_seed(self.seed, self.update))
        active = np.ones(e, bool)
        hidden = torch.zeros(e, n, algo.hidden_size, device=self.device)
        last = -np.ones((e, n), np.int64)
        figures: dict[str, np.ndarray] = {k: np.zeros(e) for k in EPISODE_METRICS}
        seen: set[str] = set()
        t = 0
        while active.any():
            if t == self.limit:
                if not self.grows:
                    break
                self.limit = self.longer_limit()
                episodes.grow(self.limit)
                self.buffer.grow(self.limit)
                ep = episodes.data
            ep["obs"][active, t] = obs[active]
            ep["state"][active, t] = env.state()[active]
            actions, hidden = algo.select_actions(self.obs_norm(obs), last, hidden, self.global_step)
            obs, reward, terminated, _, infos = env.step(actions[..., None].astype(np.float32))
            done = infos["done"].astype(bool)
            ep["actions"][active, t] = actions[active]
            ep["reward"][active, t] = reward[active]
            ep["terminated"][active, t] = terminated[active]
            ep["mask"][active, t] = 1.0
            ending = active & done
            if ending.any():
                ep["obs"][ending, t + 1] = infos["final_obs"][ending]
                ep["state"][ending, t + 1] = infos["final_state"][ending]
            for k in EPISODE_METRICS:
                if k in infos:
                    figures[k][active] = infos[k][active]
                    seen.add(k)
            active &= ~done
            last = actions
            t += 1
        t_max = self.limit
        if active.any():  # cut at the episode limit: bootstrap from where it stands
            ep["obs"][active, t_max] = obs[active]
            ep["state"][active, t_max] = env.state()[active]
        mask = ep["mask"].astype(bool)
        self.global_step += int(mask.sum())
        self.buffer.add(ep)
        real_obs = ep["obs"][:, :t_max][mask]
        self.obs_norm.update(real_obs.reshape(-1, d))
        self.state_norm.update(ep["state"][:, :t_max][mask])
        out = {"episodic_return": float(ep["reward"].sum(1).mean()),
               "episodic_length": float(mask.sum(1).mean())}
        out.update({k: float(figures[k].mean()) for k in seen})
        return out

    # -- learning ------------------------------------------------------------------------------
    def update_step(self) -> dict[str, float]:
        """`updates_per_collect` steps on sampled episodes (COMA: on the ones just collected),
        once the buffer holds enough; always the exploration figures."""
        acfg = self.algo.cfg
        losses: dict[str, float] = {}
        ready = self.algo.on_policy or self.buffer.size >= max(acfg.learning_starts,
                                                               acfg.batch_episodes)
        if ready:
            for _ in range(acfg.updates_per_collect):
                batch = (self.buffer.latest(self.env.num_envs) if self.algo.on_policy
                         else self.buffer.sample(acfg.batch_episodes, self.rng))
                losses = self.algo.update(normalized_batch(to_device(batch, self.device),
                                                           self.obs_norm, self.state_norm))
        losses.update(self.algo.exploration_figures(self.global_step))
        return losses

    # -- results and checkpoints ---------------------------------------------------------------
    def policy(self) -> RecurrentAgentPolicy:
        spec, acfg, algo = self.env.spec, self.algo.cfg, self.algo
        network = {"input_size": algo.input_size, "hidden_sizes": list(acfg.hidden_sizes),
                   "gru_size": acfg.gru_size, "num_actions": algo.num_actions,
                   "agent_id": acfg.agent_id, "last_action": acfg.last_action,
                   "output": algo.output_kind, "epsilon": acfg.epsilon_finish}
        return RecurrentAgentPolicy(spec.agents, spec.observation_spaces, spec.action_spaces,
                                    cpu_modules(algo.agent), self.obs_norm, network,
                                    self.policy_metadata())

    def checkpoint_fields(self) -> dict[str, Any]:
        """The replay buffer and its padded length (which may have grown during the run)."""
        return {"buffer": self.buffer.state_dict(), "episode_limit": self.limit}

    def load_checkpoint_fields(self, data: dict[str, Any]) -> None:
        limit = int(data.get("episode_limit", data["buffer"]["data"]["reward"].shape[1]))
        if limit > self.limit:
            self.buffer.grow(limit)
            self.limit = limit
        self.buffer.load_state_dict(data["buffer"])
