"""Environments as the trainer sees them: batched arrays (E envs, N agents).

Two sources, one interface (`BatchedEnv`):
- `SimVecEnv` wraps `sim.make_vec_env` (the fast path: one numpy call steps all envs);
- `ParallelEnvBatch` runs E copies of any PettingZoo `ParallelEnv` with Box
  observations and Box or Discrete actions, one after the other;
  `SubprocessEnvBatch` runs the same E copies split over W worker processes
  (`trainer.env_workers`), so a slow Python env steps W at a time. Both give the same
  arrays for the same seed: every reset seed is drawn in the trainer's process, in row
  order, as `ParallelEnvBatch` draws them.

Interface: `reset(seed) -> obs (E, N, D)`; `step(actions (E, N, A) float) -> obs,
team_reward (E,), terminated (E,), truncated (E,), infos`; `state() -> (E, S)`.
Finished environments are reset inside `step`; `infos["final_obs"]` and
`infos["final_state"]` hold the last observation/state of the rows where
`infos["done"]`. Episode metrics reported by the env (e.g. "coverage") come as
(E,) arrays; `infos["agent_rewards"]` (E, N) holds each agent's own reward (the
off-policy family's per-agent critics read it; sim scenarios pay every agent the team
reward, and an agent that has left a ParallelEnv is paid 0).

Conventions for user environments (documented in `policies.train`):
- the team reward is the mean of the agents' rewards (cooperative tasks give every
  agent the same reward, so this is that reward);
- the global state is `env.state()`; when the env does not implement it, the
  fallback is the concatenation of all agents' (padded) observations;
- agents may differ in observation and action spaces; observations are zero-padded
  to the widest, actions to the widest (a Discrete action is one column);
- an episode ends when every agent is terminated or truncated (or `env.agents`
  empties); it counts as terminated if any agent terminated, else as truncated.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import signal
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from policies.networks import action_size

EPISODE_METRICS = ("coverage", "mean_landmark_distance", "capture", "capture_time")


def episode_means(finished: list[dict[str, float]]) -> dict[str, float]:
    """The mean of each figure over the episodes that finished in an iteration ({} if none)."""
    if not finished:
        return {}
    return {k: float(np.mean([ep[k] for ep in finished if k in ep])) for k in finished[0]}


@dataclass
class EnvSpec:
    """What the learner needs to know about an environment."""

    agents: list[str]
    observation_spaces: list[spaces.Box]
    action_spaces: list[spaces.Space]
    state_size: int
    num_envs: int

    @property
    def num_agents(self) -> int:
        return len(self.agents)

    @property
    def obs_sizes(self) -> list[int]:
        return [int(np.prod(s.shape)) for s in self.observation_spaces]

    @property
    def obs_size(self) -> int:
        return max(self.obs_sizes)

    @property
    def action_size(self) -> int:
        return max(action_size(s) for s in self.action_spaces)

    @property
    def homogeneous(self) -> bool:
        first_o, first_a = self.observation_spaces[0], self.action_spaces[0]
        return all(o == first_o for o in self.observation_spaces) and all(
            a == first_a for a in self.action_spaces)


def declared_teams(env: Any, agents: list[str]) -> dict[str, list[int]]:
    """The teams a user's ParallelEnv declares: an attribute `teams` mapping each team's name to
    its agents' names (e.g. {"pursuers": ["p0", "p1"], "evaders": ["e0"]}), as agent indices;
    {} when it declares none (`trainer.teams` may then name each team's `agents`)."""
    teams = getattr(env, "teams", None) or getattr(getattr(env, "unwrapped", None), "teams", None)
    if not teams:
        return {}
    if not isinstance(teams, dict):
        raise TypeError(f"env.teams must map team names to lists of agent names (got {teams!r}).")
    out: dict[str, list[int]] = {}
    for name, members in teams.items():
        unknown = [a for a in members if a not in agents]
        if unknown:
            raise ValueError(f"env.teams puts {unknown[0]!r} in team {name!r}, but the env's "
                             f"agents are {', '.join(agents)}; list agents of possible_agents.")
        out[str(name)] = [agents.index(a) for a in members]
    return out


def to_env_action(space: spaces.Space, action: np.ndarray) -> Any:
    """A stored action row (A_max,) -> what `space` accepts (clipped Box / int index)."""
    if isinstance(space, spaces.Discrete):
        return int(action[0])
    dim = int(np.prod(space.shape))
    return np.clip(action[:dim], space.low.ravel(), space.high.ravel()).reshape(space.shape).astype(
        space.dtype)


class SimVecEnv:
    """`sim.make_vec_env` as a `BatchedEnv`."""

    def __init__(self, venv: Any):
        self.venv = venv
        self.num_envs = venv.num_envs
        self.cfg = venv.cfg
        n = venv.num_agents
        self.spec = EnvSpec(agents=list(venv.agents), observation_spaces=[venv.observation_space] * n,
                            action_spaces=[venv.action_space] * n,
                            state_size=int(venv.state_space.shape[0]), num_envs=venv.num_envs)
        self.discrete = isinstance(venv.action_space, spaces.Discrete)
        self.teams = dict(venv.cfg.teams)  # team -> agent indices ({} for a cooperative world)

    def reset(self, seed: int | None = None) -> np.ndarray:
        obs, _ = self.venv.reset(seed=seed)
        return obs

    def step(self, actions: np.ndarray):
        act = actions[..., 0].astype(np.int64) if self.discrete else np.clip(actions, -1.0, 1.0)
        obs, rew, term, trunc, infos = self.venv.step(act)
        infos = {**infos, "agent_rewards": np.asarray(rew, np.float32)}  # own shares or the team's
        return obs, infos["team_reward"], term.all(axis=1), trunc.all(axis=1), infos

    def state(self) -> np.ndarray:
        return self.venv.state()

    def close(self) -> None:
        self.venv.close()


class ParallelEnvBatch:
    """E copies of a PettingZoo ParallelEnv as a `BatchedEnv` (see module docstring)."""

    def __init__(self, env_fn: Callable[[], Any], num_envs: int):
        self.envs = [env_fn() for _ in range(num_envs)]
        self.num_envs = num_envs
        env = self.envs[0]
        self.agents = list(env.possible_agents)
        obs_spaces = [env.observation_space(a) for a in self.agents]
        for a, s in zip(self.agents, obs_spaces, strict=True):
            if not isinstance(s, spaces.Box):
                raise TypeError(f"observation space of {a} is {s}; the trainer needs gymnasium Box "
                                "observations (flatten other spaces with a wrapper).")
        act_spaces = [env.action_space(a) for a in self.agents]
        for a, s in zip(self.agents, act_spaces, strict=True):
            action_size(s)  # raises one clear sentence for unsupported spaces
            if not isinstance(s, spaces.Box | spaces.Discrete):
                raise TypeError(f"action space of {a} is {s}; use Box or Discrete.")
        self.obs_sizes = [int(np.prod(s.shape)) for s in obs_spaces]
        self.obs_size = max(self.obs_sizes)
        self.rng = np.random.default_rng()
        env.reset(seed=0)
        self.has_state = self._try_state(env) is not None
        state_size = (int(np.prod(self._try_state(env).shape)) if self.has_state
                      else self.obs_size * len(self.agents))
        self.spec = EnvSpec(agents=self.agents, observation_spaces=obs_spaces,
                            action_spaces=act_spaces, state_size=state_size, num_envs=num_envs)
        self._obs = np.zeros((num_envs, len(self.agents), self.obs_size), np.float32)
        self.teams = declared_teams(env, self.agents)

    @staticmethod
    def _try_state(env: Any) -> np.ndarray | None:
        try:
            state = env.state()
        except (NotImplementedError, AttributeError):
            return None
        return None if state is None else np.asarray(state, np.float32).ravel()

    def _pack(self, i: int, obs: dict) -> None:
        for j, a in enumerate(self.agents):
            if a in obs:  # an agent that has left keeps its last observation
                self._obs[i, j, : self.obs_sizes[j]] = np.asarray(obs[a], np.float32).ravel()

    @property
    def first_env(self) -> Any:
        """The first copy as its author wrote it (declared lengths, basis functions)."""
        return self.envs[0]

    def draw_seeds(self, count: int) -> list[int]:
        """The next `count` reset seeds, one draw each (the order rows reset in)."""
        return [int(self.rng.integers(2**31)) for _ in range(count)]

    def reset_rows(self, rows: Sequence[int], seeds: Sequence[int]) -> np.ndarray:
        """Reset env `rows[k]` with `seeds[k]`; returns those rows' observations."""
        for i, seed in zip(rows, seeds, strict=True):
            obs, _ = self.envs[i].reset(seed=int(seed))
            self._obs[i] = 0.0
            self._pack(i, obs)
        return self._obs[list(rows)].copy()

    def reset(self, seed: int | None = None) -> np.ndarray:
        self.rng = np.random.default_rng(seed)
        self.reset_rows(range(self.num_envs), self.draw_seeds(self.num_envs))
        return self._obs.copy()

    def _state_of(self, i: int) -> np.ndarray:
        if self.has_state:
            return np.asarray(self.envs[i].state(), np.float32).ravel()
        return self._obs[i].ravel()

    def state(self) -> np.ndarray:
        return np.stack([self._state_of(i) for i in range(self.num_envs)])

    def step(self, actions: np.ndarray):
        obs, rew, term, trunc, infos = self.step_envs(actions)
        done = infos["done"]
        if done.any():  # the finished rows restart, in row order
            rows = np.flatnonzero(done)
            obs[rows] = self.reset_rows(rows, self.draw_seeds(len(rows)))
        else:
            del infos["final_obs"], infos["final_state"]
        return obs, rew, term, trunc, infos

    def step_envs(self, actions: np.ndarray):
        """Step every env once; a finished one is left to `reset_rows` (its last observation
        and state in `infos["final_obs"]` / `infos["final_state"]`, always present here)."""
        e = self.num_envs
        rew, term, trunc = np.zeros(e, np.float32), np.zeros(e, bool), np.zeros(e, bool)
        agent_rewards = np.zeros((e, len(self.agents)), np.float32)
        done = np.zeros(e, bool)
        final_obs = np.zeros_like(self._obs)
        final_state = np.zeros((e, self.spec.state_size), np.float32)
        metrics: dict[str, np.ndarray] = {}
        for i, env in enumerate(self.envs):
            live = list(env.agents)
            act = {a: to_env_action(self.spec.action_spaces[j], actions[i, j])
                   for j, a in enumerate(self.agents) if a in live}
            obs, r, te, tr, info = env.step(act)
            self._pack(i, obs)
            rew[i] = float(np.mean([r[a] for a in r])) if r else 0.0
            agent_rewards[i] = [float(r.get(a, 0.0)) for a in self.agents]
            first = info.get(live[0], {}) if live else {}
            for key in EPISODE_METRICS:
                if key in first:
                    metrics.setdefault(key, np.zeros(e))[i] = float(first[key])
            ended = not env.agents or all(te.get(a, False) or tr.get(a, False) for a in live)
            if ended:
                done[i] = True
                term[i] = any(te.get(a, False) for a in live)
                trunc[i] = not term[i]
                final_obs[i] = self._obs[i]
                final_state[i] = self._state_of(i)
        infos: dict[str, np.ndarray] = {"done": done, "agent_rewards": agent_rewards, **metrics,
                                        "final_obs": final_obs, "final_state": final_state}
        return self._obs.copy(), rew, term, trunc, infos

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _env_worker(conn: Any, parent_end: Any, env_fn: bytes, num_envs: int) -> None:
    """A worker process of `SubprocessEnvBatch`: a `ParallelEnvBatch` of its rows, driven by
    (command, argument) messages. Ctrl-C is the trainer's to handle (it closes the workers);
    a trainer that dies closes the pipe, and the worker ends."""
    import cloudpickle

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent_end.close()  # a forked worker's copy of the trainer's end
    batch = None
    try:
        batch = ParallelEnvBatch(cloudpickle.loads(env_fn), num_envs)
        conn.send(("ok", None))
        while True:
            command, arg = conn.recv()
            if command == "close":
                break
            if command == "reset":
                out = batch.reset_rows(*arg)
            elif command == "step":
                out = batch.step_envs(arg)
            else:  # "state"
                out = batch.state()
            conn.send(("ok", out))
    except EOFError:  # the trainer is gone
        pass
    except Exception as err:  # the env's own error, sent with its traceback
        try:
            conn.send(("error", f"{type(err).__name__}: {err}\n{traceback.format_exc()}"))
        except OSError:
            pass
    finally:
        if batch is not None:
            batch.close()
        conn.close()


class SubprocessEnvBatch:
    """`ParallelEnvBatch`'s E copies split over `workers` processes (contiguous rows each),
    stepped at the same time: the same arrays for the same seed, every reset seed drawn
    here in row order. `env_fn` is sent with cloudpickle (a lambda or a closure works); a
    copy built here (`first_env`) gives the spaces and is never stepped. `close()` ends
    the workers; a worker also ends when this process dies."""

    def __init__(self, env_fn: Callable[[], Any], num_envs: int, workers: int):
        import cloudpickle

        if not 1 <= workers <= num_envs:
            raise ValueError(f"trainer.env_workers must be between 1 and trainer.num_envs="
                             f"{num_envs} (got {workers}); 0 steps the envs in this process.")
        try:  # before building anything: a refused env_fn leaves nothing to close
            payload = cloudpickle.dumps(env_fn)
        except Exception as err:
            raise ValueError(f"env_fn cannot be sent to the env workers ({type(err).__name__}: "
                             f"{err}); pass a function that builds the env inside it (a lambda "
                             "works), or set trainer.env_workers=0.") from None
        probe = ParallelEnvBatch(env_fn, 1)
        self.first_env = probe.envs[0]
        self.agents, self.obs_size = probe.agents, probe.obs_size
        self.teams = probe.teams
        self.spec = dataclasses.replace(probe.spec, num_envs=num_envs)
        self.num_envs = num_envs
        self.rng = np.random.default_rng()
        bounds = np.linspace(0, num_envs, workers + 1).round().astype(int)
        self.rows = [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        context = multiprocessing.get_context()
        self.conns, self.procs = [], []
        try:
            for rows in self.rows:
                parent, child = context.Pipe()
                proc = context.Process(target=_env_worker, args=(child, parent, payload, len(rows)),
                                       daemon=True, name="marl-ros env worker")
                proc.start()
                child.close()
                self.conns.append(parent)
                self.procs.append(proc)
            for k in range(workers):
                self._receive(k)
        except BaseException:
            self.close()
            raise

    def _receive(self, k: int) -> Any:
        try:
            status, out = self.conns[k].recv()
        except EOFError:
            raise RuntimeError(f"env worker {k} died (exit code {self.procs[k].exitcode}); "
                               "see its output above.") from None
        if status == "error":
            raise RuntimeError(f"env worker {k} (rows {self.rows[k][0]}-{self.rows[k][-1]}) "
                               f"failed: {out}")
        return out

    def _call(self, messages: dict[int, tuple[str, Any]]) -> dict[int, Any]:
        for k, message in messages.items():
            self.conns[k].send(message)
        return {k: self._receive(k) for k in messages}

    draw_seeds = ParallelEnvBatch.draw_seeds  # the same draws from this process's rng

    def _reset_rows(self, rows: np.ndarray, seeds: list[int], obs: np.ndarray) -> None:
        """Reset `rows` (global indices, ascending) with `seeds`, each by its worker, into obs."""
        seeds_array = np.asarray(seeds, np.int64)
        messages, picked = {}, {}
        for k, own in enumerate(self.rows):
            pick = np.isin(rows, own)
            if pick.any():
                picked[k] = rows[pick]
                messages[k] = ("reset", ((rows[pick] - own[0]).tolist(),
                                         seeds_array[pick].tolist()))
        for k, out in self._call(messages).items():
            obs[picked[k]] = out

    def reset(self, seed: int | None = None) -> np.ndarray:
        self.rng = np.random.default_rng(seed)
        obs = np.zeros((self.num_envs, len(self.agents), self.obs_size), np.float32)
        self._reset_rows(np.arange(self.num_envs), self.draw_seeds(self.num_envs), obs)
        return obs

    def state(self) -> np.ndarray:
        parts = self._call({k: ("state", None) for k in range(len(self.rows))})
        return np.concatenate([parts[k] for k in range(len(self.rows))])

    def step(self, actions: np.ndarray):
        parts = self._call({k: ("step", actions[rows]) for k, rows in enumerate(self.rows)})
        parts = [parts[k] for k in range(len(self.rows))]
        obs, rew, term, trunc = (np.concatenate([p[j] for p in parts]) for j in range(4))
        infos: dict[str, np.ndarray] = {}
        for key in dict.fromkeys(key for p in parts for key in p[4]):  # first-seen order
            pieces = [p[4].get(key) for p in parts]
            template = next(x for x in pieces if x is not None)
            infos[key] = np.concatenate([np.zeros((len(rows),) + template.shape[1:],
                                                  template.dtype) if x is None else x
                                         for x, rows in zip(pieces, self.rows, strict=True)])
        done = infos["done"]
        if done.any():
            rows = np.flatnonzero(done)
            self._reset_rows(rows, self.draw_seeds(len(rows)), obs)
        else:
            del infos["final_obs"], infos["final_state"]
        return obs, rew, term, trunc, infos

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(("close", None))
            except OSError:  # that worker is gone already
                pass
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        for conn in self.conns:
            conn.close()
        if self.procs or self.conns:
            self.first_env.close()
        self.conns, self.procs = [], []
