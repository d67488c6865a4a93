"""The game-theoretic family's hooks for the shared `Trainer`: online tabular learning.

These learners update after every transition, as their papers write them, so `collect`
both steps and learns: `trainer.rollout_steps` joint steps of each of `trainer.num_envs`
environments (one by default), each followed by `algo.learn` on that step's transitions
(rows in env order). `update_step` only reports the iteration's figures. Nothing
outlives an iteration but the algorithm's tables and counters, which the checkpoint
holds with the RNG streams; the environments restart after each checkpoint (see
`policies.trainer`), so a resumed run continues exactly like the uninterrupted one.

Environments (`env_fn`):
- a named game of `policies.games.worlds.GAMES` ("matching_pennies", "soccer",
  "grid_game_1", ...), its parameters from the config's `env` section;
- a sim scenario whose observations are one-hot cells (`pursuit` with `view: cells`);
- a function returning any PettingZoo `ParallelEnv` with Discrete or one-hot Box
  observations and Discrete actions; Discrete observations are one-hot encoded for the
  batch, and each agent's table is indexed by its own observation.
A learner over features (Team-Q, `reads_features`) gets the observation rows instead of
state indices, and the env's basis functions (`attach_env`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from pettingzoo import ParallelEnv

from policies.envs import EPISODE_METRICS, ParallelEnvBatch, SubprocessEnvBatch
from policies.games import GAME_ALGORITHMS
from policies.games.common import GameSpec, Transition, one_hot_space, state_indices
from policies.games.policy import GamePolicy
from policies.normalization import ObservationNormalizer
from policies.trainer import Trainer, make_batched_env, segment_seed


class OneHotObservations(ParallelEnv):
    """A ParallelEnv whose Discrete observations become one-hot Box rows (the batch's format)."""

    def __init__(self, env: ParallelEnv):
        self.env = env
        self.metadata = getattr(env, "metadata", {})
        self.possible_agents = list(env.possible_agents)
        self._spaces = {a: one_hot_space(env.observation_space(a)) if isinstance(
            env.observation_space(a), spaces.Discrete) else env.observation_space(a)
            for a in self.possible_agents}

    @property
    def agents(self) -> list[str]:
        return self.env.agents

    @property
    def unwrapped(self) -> Any:
        return getattr(self.env, "unwrapped", self.env)

    def observation_space(self, agent: str) -> spaces.Space:
        return self._spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.env.action_space(agent)

    def _encode(self, obs: dict[str, Any]) -> dict[str, np.ndarray]:
        out = {}
        for a, o in obs.items():
            space = self.env.observation_space(a)
            if isinstance(space, spaces.Discrete):
                row = np.zeros(int(space.n), np.float32)
                row[int(o) - int(space.start)] = 1.0
                out[a] = row
            else:
                out[a] = np.asarray(o, np.float32)
        return out

    def reset(self, seed: int | None = None, options: dict | None = None):
        obs, infos = self.env.reset(seed=seed, options=options)
        return self._encode(obs), infos

    def step(self, actions: dict[str, Any]):
        obs, rew, term, trunc, infos = self.env.step(actions)
        return self._encode(obs), rew, term, trunc, infos

    def state(self) -> np.ndarray:
        return self.env.state()

    def close(self) -> None:
        self.env.close()


def one_hot_observations(env: Any) -> OneHotObservations:
    if not isinstance(env, ParallelEnv) and not hasattr(env, "possible_agents"):
        raise TypeError("env_fn must return a PettingZoo ParallelEnv (possible_agents, reset, step).")
    return OneHotObservations(env)


class GameTrainer(Trainer):
    """Minimax-Q, Nash-Q, Friend-or-Foe Q, WoLF-PHC, Team-Q: online learning from each transition."""

    algorithms = GAME_ALGORITHMS

    def resolve_device(self) -> torch.device:
        """The CPU: the family learns numpy tables, so `trainer.device` auto means the CPU
        and a CUDA device is refused rather than silently ignored."""
        if self.tcfg.device.startswith("cuda"):
            raise ValueError(f"trainer.device={self.tcfg.device} does not apply to "
                             f"{self.config['algorithm']}: the game-theoretic family learns numpy "
                             "tables on the CPU; set trainer.device=auto or cpu.")
        return torch.device("cpu")

    def make_env(self, env_fn: str | Callable[[], Any], resolved: dict[str, Any]) -> Any:
        from policies.games.worlds import GAMES, make_game

        if isinstance(env_fn, str) and env_fn in GAMES:
            params = dict(resolved["env"])
            return ParallelEnvBatch(lambda: one_hot_observations(make_game(env_fn, **params)),
                                    self.tcfg.num_envs)
        # a sim scenario with a one-hot view (pursuit's cells), or a user's ParallelEnv
        return make_batched_env(env_fn, resolved, wrap=one_hot_observations)

    def make_algorithm(self, algo_cls: Any, resolved: dict[str, Any]) -> Any:
        spec = self.env.spec
        if getattr(algo_cls, "reads_features", False):
            game = GameSpec(list(spec.agents), list(spec.obs_sizes),
                            [int(s.n) for s in spec.action_spaces], spec.num_envs)
        else:
            game = GameSpec.from_env_spec(spec)
        self.game = game
        algo = algo_cls(algo_cls.config_class.from_dict(resolved["algo"]), game, self.rng)
        if hasattr(algo, "attach_env"):
            algo.attach_env(self.raw_env())
        return algo

    def raw_env(self) -> Any:
        """The first environment as its author wrote it (for basis functions and models)."""
        if isinstance(self.env, ParallelEnvBatch | SubprocessEnvBatch):
            env = self.env.first_env
            return env.unwrapped if isinstance(env, OneHotObservations) else env
        return self.env.venv

    def learning_rate(self) -> float:
        return float(self.algo.figures().get("charts/learning_rate", float("nan")))

    def make_storage(self) -> None:
        """No normaliser (a state is an index) and no buffer (each transition is learned at once)."""
        self.obs_norm = ObservationNormalizer((self.env.spec.obs_size,), enabled=False)
        self.buffer = None

    def view(self, obs: np.ndarray) -> np.ndarray:
        """What the algorithm reads: state indices, or the observation rows for a feature learner."""
        if getattr(self.algo, "reads_features", False):
            return obs.copy()
        return state_indices(obs, self.game.state_sizes)

    def start_segment(self) -> None:
        e = self.env.num_envs
        self.obs = self.env.reset(seed=segment_seed(self.seed, self.update))
        self.episode_return = np.zeros((e, self.game.num_agents))
        self.episode_length = np.zeros(e, np.int64)

    def collect(self) -> dict[str, float]:
        """`rollout_steps` joint steps of every env, each learned from at once."""
        finished: list[tuple[np.ndarray, int, dict[str, float]]] = []
        self.figures: dict[str, list[float]] = {}
        for _ in range(self.tcfg.rollout_steps):
            states = self.view(self.obs)
            actions = self.algo.act(states, explore=True)
            next_obs, _, terminated, _, infos = self.env.step(actions[..., None].astype(np.float32))
            done = infos["done"].astype(bool)
            final = next_obs.copy()
            if done.any():
                final[done] = infos["final_obs"][done]
            rewards = np.asarray(infos["agent_rewards"], np.float64)
            t = Transition(states=states, actions=actions, rewards=rewards,
                           next_states=self.view(final), terminated=terminated & done, done=done)
            for k, v in self.algo.learn(t).items():
                self.figures.setdefault(k, []).append(v)
            self.global_step += self.env.num_envs
            self.episode_return += rewards
            self.episode_length += 1
            for i in np.flatnonzero(done):
                metrics = {k: float(infos[k][i]) for k in EPISODE_METRICS if k in infos}
                finished.append((self.episode_return[i].copy(), int(self.episode_length[i]), metrics))
                self.episode_return[i] = 0.0
                self.episode_length[i] = 0
            self.obs = next_obs
        if not finished:
            return {}
        returns = np.stack([f[0] for f in finished])
        out = {"episodic_return": float(returns.mean()),
               "episodic_length": float(np.mean([f[1] for f in finished])),
               **{f"return_{a}": float(returns[:, j].mean()) for j, a in enumerate(self.game.agents)}}
        for key in EPISODE_METRICS:
            values = [f[2][key] for f in finished if key in f[2]]
            if values:
                out[key] = float(np.mean(values))
        return out

    def update_step(self) -> dict[str, float]:
        out = {k: float(np.mean(v)) for k, v in self.figures.items()}
        return {**out, **self.algo.figures()}

    def policy(self) -> Any:
        if hasattr(self.algo, "policy"):  # a learner over features brings its own policy
            return self.algo.policy(self.policy_metadata())
        return GamePolicy(self.game.agents, self.algo.strategies(), self.policy_metadata())

    def policy_metadata(self) -> dict[str, Any]:
        metadata = super().policy_metadata()
        if "env_config" not in metadata:  # a named game or a user env, not a sim scenario
            metadata["game_params"] = dict(self.config.get("env") or {})
        return metadata
