"""Teams: one policy per side of a game (pursuit's pursuers and evaders), trained in one loop.

A team is a set of the env's agents with its own algorithm instance (actors, centralised
critic, optimisers, value normaliser), its own observation and state normalisers and its own
rollout buffer. The environments are stepped once per step for all teams; each team's
critic sees the global state `env.state()` and learns its own team's reward, the mean of its
agents' rewards (`infos["agent_rewards"]`; pursuit pays every drone its team's reward), so an
evader's reward never enters the pursuers' buffer and the other way round.

Config (`trainer` section, `policies.config.TrainerConfig`):

    trainer:
      teams:                       # team name -> its settings
        pursuers: {algo: mappo}    # algo: an on-policy algorithm (mappo, happo, hatrpo, haa2c)
        evaders: {algo: happo, lr_actor: 3.0e-4}   # other keys: that algorithm's settings
      opponents: current           # or past
      snapshot_every: 10           # past: iterations between two snapshots of each team
      pool_size: 5                 # past: snapshots kept per team (the oldest dropped)

A team without `algo` trains with the run's algorithm and its `algo` section; with another
algorithm it starts from that algorithm's defaults (`resolve_config`). Membership comes from
the env: a sim scenario's `cfg.teams` (pursuit: pursuers 0..P-1, evaders P..N-1), a user's
ParallelEnv's attribute `teams` (team name -> agent names; `policies.envs.declared_teams`),
or a team's own `agents: [names]` in the config, which wins. Every agent must belong to
exactly one team. Only the on-policy family trains teams; the other families are refused.

Self-play (`opponents`):
- `current`: every team acts with its current policy in every environment, and every team
  learns from every environment of each iteration's one rollout (simultaneous learning).
- `past`: the environments are split into one contiguous group per team (np.array_split of
  num_envs, in team order). In team k's group team k acts with its current policy and learns
  from those rows only; every other team acts there with a snapshot drawn from its pool
  (uniformly, from the trainer's seeded generator, at the start of each iteration; sampled
  actions, frozen weights and statistics). So in every iteration each team learns against
  past policies of the others, and the envs are still stepped once for all teams. The pool of
  each team starts with its initial policy and gains a snapshot after every `snapshot_every`
  iterations; it holds the latest `pool_size`. An episode running across two iterations may
  meet two opponents' snapshots.

Checkpoints hold every team's algorithm, normalisers and the pools (resume continues exactly
as the uninterrupted run, like the single-policy trainer). The run writes `policy.pt` (a
`TeamPolicies`: `policies.load` returns it, `act` dispatches each agent to its team's policy)
and `policy_<team>.pt` per team (a `TrainedPolicy` of that team's agents). `marl-ros export
RUN --out DIR` writes one bundle per team, DIR/<team>, for `team_policies` over ROS.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from policies.buffer import RolloutBuffer
from policies.envs import EPISODE_METRICS, EnvSpec, episode_means
from policies.networks import cpu_modules, place, to_device
from policies.normalization import ObservationNormalizer
from policies.onpolicy import ALGORITHMS
from policies.onpolicy.trainer import OnPolicyTrainer
from policies.policy import TrainedPolicy, atomic_torch_save
from policies.trainer import segment_seed

TEAM_KEYS = ("algo", "agents")  # a team's own keys; the others are its algorithm's settings


def resolve_teams(resolved: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`trainer.teams` validated and complete: each team's algorithm, its agents if named, and
    every setting of its algorithm (so config.yaml alone rebuilds the run). One clear sentence
    for a team mode the trainer cannot run, before any environment is built."""
    from policies import ON_POLICY_ALGORITHM_NAMES
    from policies.config import resolve_config

    teams, tcfg = resolved["trainer"]["teams"], resolved["trainer"]
    on_policy = ", ".join(ON_POLICY_ALGORITHM_NAMES)
    if resolved["algorithm"] not in ON_POLICY_ALGORITHM_NAMES:
        raise ValueError(f"trainer.teams trains each team with an on-policy algorithm ({on_policy}); "
                         f"{resolved['algorithm']} belongs to another family, which has no team "
                         "mode: train with --algo mappo (or happo, hatrpo, haa2c).")
    if len(teams) < 2:
        raise ValueError(f"trainer.teams names {len(teams)} team; teams are the sides of a game, "
                         "so name at least two (e.g. {pursuers: {}, evaders: {}}).")
    if tcfg["workers"]:
        raise ValueError("trainer.teams collects in this process; Ray rollout workers do not serve "
                         "it yet: set trainer.workers=0.")
    if tcfg["opponents"] == "past" and tcfg["num_envs"] < len(teams):
        raise ValueError(f"trainer.opponents=past gives each of the {len(teams)} teams its own "
                         f"share of the environments; set trainer.num_envs >= {len(teams)} (got "
                         f"{tcfg['num_envs']}).")
    out: dict[str, dict[str, Any]] = {}
    for name, settings in teams.items():
        if settings is None:
            settings = {}
        if not isinstance(settings, dict):
            raise ValueError(f"trainer.teams.{name} must be a mapping of its settings, e.g. "
                             f"{{algo: mappo}} (got {settings!r}).")
        settings = dict(settings)
        algo = settings.pop("algo", resolved["algorithm"])
        agents = settings.pop("agents", None)
        if algo not in ON_POLICY_ALGORITHM_NAMES:
            raise ValueError(f"trainer.teams.{name}.algo={algo!r}: a team trains with an on-policy "
                             f"algorithm ({on_policy}); the other families have no team mode yet.")
        if agents is not None and (not isinstance(agents, list) or not agents):
            raise ValueError(f"trainer.teams.{name}.agents must be a non-empty list of agent names "
                             f"(got {agents!r}).")
        base = (resolved["algo"] if algo == resolved["algorithm"]
                else resolve_config(algo, resolved.get("scenario"), None, check_teams=False)["algo"])
        cfg = ALGORITHMS[algo].config_class.from_dict({**base, **settings})
        out[str(name)] = {"algo": algo, **({"agents": list(agents)} if agents else {}),
                          **cfg.to_dict()}
    return out


def team_members(env: Any, teams: dict[str, dict[str, Any]]) -> dict[str, list[int]]:
    """Each configured team's agent indices (its `agents`, else the env's teams), checked: the
    names match the env's teams and every agent belongs to exactly one team."""
    agents = list(env.spec.agents)
    declared = getattr(env, "teams", {}) or {}
    out: dict[str, list[int]] = {}
    for name, settings in teams.items():
        if "agents" in settings:
            unknown = [a for a in settings["agents"] if a not in agents]
            if unknown:
                raise ValueError(f"trainer.teams.{name}.agents names {unknown[0]!r}, which the env "
                                 f"does not have; its agents are {', '.join(agents)}.")
            out[name] = [agents.index(a) for a in settings["agents"]]
        elif name in declared:
            out[name] = list(declared[name])
        else:
            where = (f"the env's teams are {', '.join(declared)}" if declared
                     else "the env declares no teams")
            raise ValueError(f"trainer.teams names team {name!r} but {where}; use those names or "
                             f"give the team its agents (trainer.teams.{name}.agents: [...]).")
    counts = np.zeros(len(agents), np.int64)
    for members in out.values():
        counts[members] += 1
    if (counts != 1).any():
        agent = agents[int(np.flatnonzero(counts != 1)[0])]
        raise ValueError(f"agent {agent} is in {int(counts[agents.index(agent)])} teams; every "
                         "agent must be in exactly one team of trainer.teams.")
    return out


def team_spec(spec: EnvSpec, members: list[int], num_envs: int) -> EnvSpec:
    """What a team's algorithm knows of the env: its own agents' spaces, the global state."""
    return EnvSpec(agents=[spec.agents[i] for i in members],
                   observation_spaces=[spec.observation_spaces[i] for i in members],
                   action_spaces=[spec.action_spaces[i] for i in members],
                   state_size=spec.state_size, num_envs=num_envs)


class TeamPolicies:
    """One `TrainedPolicy` per team, acting as one policy for the whole env: `act` gives each
    agent its team's action; `teams[name]` is a team's own policy (what `export` bundles)."""

    def __init__(self, teams: dict[str, TrainedPolicy], members: dict[str, list[int]],
                 agents: list[str], metadata: dict[str, Any] | None = None):
        self.teams = dict(teams)
        self.members = {k: list(v) for k, v in members.items()}
        self.agents = list(agents)
        self.metadata = dict(metadata or {})
        self._team_of = {a: name for name, p in self.teams.items() for a in p.agents}

    def team_of(self, agent: str) -> str:
        if agent not in self._team_of:
            raise KeyError(f"unknown agent {agent!r}; these team policies fly "
                           f"{', '.join(self.agents)}.")
        return self._team_of[agent]

    def reset(self) -> None:
        for policy in self.teams.values():
            policy.reset()

    def act(self, observations: dict[str, np.ndarray], deterministic: bool = True) -> dict[str, Any]:
        """Actions for the agents in `observations`, each from its team's policy."""
        out: dict[str, Any] = {}
        for name in observations:
            team = self.teams[self.team_of(name)]
            out.update(team.act({name: observations[name]}, deterministic=deterministic))
        return out

    def act_batch(self, obs: np.ndarray, starts: np.ndarray | None = None,
                  deterministic: bool = True) -> np.ndarray:
        """obs (E, N, D_max) -> actions (E, N, A_max), each team acting on its agents' rows."""
        outs = {name: p.act_batch(obs[:, self.members[name], : p.obs_size], starts, deterministic)
                for name, p in self.teams.items()}
        width = max(a.shape[-1] for a in outs.values())
        out = np.zeros(obs.shape[:2] + (width,), np.float32)
        for name, actions in outs.items():
            out[:, self.members[name], : actions.shape[-1]] = actions
        return out

    def payload(self) -> dict[str, Any]:
        return {"format": "team_policies", "agents": self.agents, "members": self.members,
                "teams": {name: p.payload() for name, p in self.teams.items()},
                "metadata": self.metadata}

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> TeamPolicies:
        teams = {name: TrainedPolicy.from_payload(p) for name, p in data["teams"].items()}
        return cls(teams, data["members"], data["agents"], data["metadata"])

    def save(self, path: str | Path) -> Path:
        """`path` (policy.pt) with every team, and policy_<team>.pt beside it for each team."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(self.payload(), path)
        for name, policy in self.teams.items():
            policy.save(path.with_name(f"policy_{name}.pt"))
        return path


class Team:
    """One side: its agents (indices into the env's), the env rows where it learns, its
    algorithm, normalisers and buffer (`TeamTrainer.make_storage`)."""

    def __init__(self, name: str, members: list[int], rows: np.ndarray, algo_name: str, algo: Any):
        self.name, self.members, self.rows, self.algo = name, members, rows, algo
        self.algo_name = algo_name
        self.obs_size = algo.spec.obs_size
        self.obs_norm: ObservationNormalizer
        self.state_norm: ObservationNormalizer
        self.buffer: RolloutBuffer


class PerTeam:
    """Per-team parts saved under the base checkpoint's keys (`algo`, `obs_norm`,
    `state_norm`): a dict of the teams' state dicts."""

    def __init__(self, parts: dict[str, Any]):
        self.parts = parts

    def state_dict(self) -> dict[str, Any]:
        return {name: part.state_dict() for name, part in self.parts.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, part in self.parts.items():
            part.load_state_dict(state[name])


class TeamTrainer(OnPolicyTrainer):
    """The on-policy family's hooks with one algorithm per team (see the module docstring)."""

    supports_workers = False

    # -- setup -------------------------------------------------------------------------------
    def make_algorithm(self, algo_cls: Any, resolved: dict[str, Any]) -> PerTeam:
        settings = resolved["trainer"]["teams"]
        members = team_members(self.env, settings)
        e = self.env.num_envs
        groups = (np.array_split(np.arange(e), len(members)) if self.tcfg.opponents == "past"
                  else [np.arange(e)] * len(members))
        self.teams: list[Team] = []
        for (name, agents), rows in zip(members.items(), groups, strict=True):
            team_cfg = {k: v for k, v in settings[name].items() if k not in TEAM_KEYS}
            cls = ALGORITHMS[settings[name]["algo"]]
            algo = cls(cls.config_class.from_dict(team_cfg), team_spec(self.env.spec, agents, len(rows)),
                       self.rng)
            place(algo, self.device)
            self.teams.append(Team(name, agents, rows, settings[name]["algo"], algo))
        return PerTeam({t.name: t.algo for t in self.teams})

    def learning_rate(self) -> float:
        return self.teams[0].algo.actor_optimizers[0].param_groups[0]["lr"]

    def make_storage(self) -> None:
        spec = self.env.spec
        for team in self.teams:
            tspec, cfg = team.algo.spec, team.algo.cfg
            n, d = tspec.num_agents, tspec.obs_size
            team.obs_norm = ObservationNormalizer((d,) if cfg.share_params else (n, d),
                                                  enabled=self.tcfg.normalize_obs)
            team.state_norm = ObservationNormalizer((spec.state_size,),
                                                    enabled=self.tcfg.normalize_state)
            team.buffer = RolloutBuffer(self.tcfg.rollout_steps, len(team.rows), n, d,
                                        spec.state_size, tspec.action_size, team.algo.hidden_size)
        self.obs_norm = PerTeam({t.name: t.obs_norm for t in self.teams})
        self.state_norm = PerTeam({t.name: t.state_norm for t in self.teams})
        # past: every team's pool of snapshots, its initial policy first (`draw_opponents`)
        self.pools: dict[str, list[dict[str, Any]]] = {t.name: [] for t in self.teams}

    # -- self-play ---------------------------------------------------------------------------
    def team_policy(self, team: Team) -> TrainedPolicy:
        cfg = team.algo.cfg
        network = {k: getattr(cfg, k) for k in ("hidden_sizes", "activation", "recurrent",
                                                "gru_size", "init_log_std")}
        metadata = {**self.policy_metadata(), "algorithm": team.algo_name,
                    "team": team.name, "team_members": list(team.members)}
        tspec = team.algo.spec
        return TrainedPolicy(tspec.agents, tspec.observation_spaces, tspec.action_spaces,
                             cpu_modules(team.algo.actors), team.obs_norm, cfg.share_params,
                             team.algo.id_size, network, metadata)

    def take_snapshots(self) -> None:
        """Add every team's current policy to its pool (frozen copies), the oldest dropped."""
        for team in self.teams:
            pool = self.pools[team.name]
            pool.append(copy.deepcopy(self.team_policy(team).payload()))
            del pool[: max(0, len(pool) - self.tcfg.pool_size)]

    def draw_opponents(self) -> list[tuple[Team, np.ndarray, TrainedPolicy]]:
        """past: for each team's group of rows, a snapshot of every other team to act there."""
        if self.tcfg.opponents != "past":
            return []
        if not any(self.pools.values()):  # the first iteration: the initial policies
            self.take_snapshots()
        out = []
        for learner in self.teams:
            for team in self.teams:
                if team is not learner:
                    pool = self.pools[team.name]
                    snapshot = pool[int(self.rng.integers(len(pool)))]
                    out.append((team, learner.rows, TrainedPolicy.from_payload(snapshot)))
        return out

    # -- collection --------------------------------------------------------------------------
    def start_segment(self) -> None:
        e = self.env.num_envs
        self.obs = self.env.reset(seed=segment_seed(self.seed, self.update))
        self.starts = np.ones(e, np.float32)
        self.hidden = {t.name: np.zeros((e, len(t.members), t.algo.hidden_size), np.float32)
                       for t in self.teams}
        self.episode_return = {t.name: np.zeros(e) for t in self.teams}
        self.episode_length = np.zeros(e, np.int64)

    def rollout(self) -> dict[str, Any]:
        """One rollout of every team at once; each team's buffer gets its rows, its agents'
        observations and actions and its own reward, then its advantages."""
        e, n = self.env.num_envs, self.env.spec.num_agents
        width = self.env.spec.action_size
        opponents = self.draw_opponents()
        raw_obs, raw_states, finished = [], [], []
        for _ in range(self.tcfg.rollout_steps):
            state = self.env.state()
            actions = np.zeros((e, n, width), np.float32)
            acted = {}
            for team in self.teams:
                obs_n = team.obs_norm(self.obs[:, team.members, : team.obs_size])
                a, log_probs, hidden = team.algo.act(obs_n, self.starts, self.hidden[team.name])
                state_n = team.state_norm(state)
                actions[:, team.members, : a.shape[-1]] = a
                acted[team.name] = (obs_n, state_n, a, log_probs, hidden,
                                    team.algo.values(state_n))
            for team, rows, snapshot in opponents:  # past: the others' snapshots act there
                obs = self.obs[np.ix_(rows, team.members)][..., : team.obs_size]
                a = snapshot.act_batch(obs, self.starts[rows], deterministic=False)
                actions[np.ix_(rows, team.members)] = 0.0
                actions[np.ix_(rows, team.members, np.arange(a.shape[-1]))] = a
            next_obs, _, terminated, _, infos = self.env.step(actions)
            done = infos["done"].astype(bool)
            cut = done & ~terminated  # time limit: bootstrap from the final state's value
            for team in self.teams:
                obs_n, state_n, a, log_probs, hidden, values = acted[team.name]
                reward = infos["agent_rewards"][:, team.members].mean(axis=1).astype(np.float32)
                final_values = np.zeros(e, np.float32)
                if cut.any():
                    final_values[cut] = team.algo.values(team.state_norm(infos["final_state"][cut]))
                r = team.rows
                team.buffer.add(obs=obs_n[r], states=state_n[r], actions=a[r],
                                log_probs=log_probs[r], hiddens=self.hidden[team.name][r],
                                starts=self.starts[r], values=values[r], rewards=reward[r],
                                dones=done[r], final_values=final_values[r])
                self.episode_return[team.name] += reward
                self.hidden[team.name] = hidden
            raw_obs.append(self.obs)
            raw_states.append(state)
            self.episode_length += 1
            for i in np.flatnonzero(done):
                ep = {"episodic_return": float(self.episode_return[self.teams[0].name][i]),
                      "episodic_length": float(self.episode_length[i]),
                      **{f"return_{t.name}": float(self.episode_return[t.name][i])
                         for t in self.teams}}
                ep.update({k: float(infos[k][i]) for k in EPISODE_METRICS if k in infos})
                finished.append(ep)
            for returns in self.episode_return.values():
                returns[done] = 0.0
            self.episode_length[done] = 0
            self.obs, self.starts = next_obs, done.astype(np.float32)
        state = self.env.state()
        for team in self.teams:
            last_values = team.algo.values(team.state_norm(state))[team.rows]
            team.buffer.compute_advantages(last_values, team.algo.cfg.gamma,
                                           team.algo.cfg.gae_lambda)
        return {"raw_obs": np.stack(raw_obs), "raw_states": np.stack(raw_states),
                "finished": finished, "steps": self.tcfg.rollout_steps * e}

    def absorb(self, record: dict[str, Any]) -> dict[str, float]:
        """Each team's statistics from its own rows and agents only."""
        for team in self.teams:
            team.algo.value_normalizer.update(team.buffer.returns)
            obs = record["raw_obs"][:, team.rows][:, :, team.members, : team.obs_size]
            team.obs_norm.update(obs)
            team.state_norm.update(record["raw_states"][:, team.rows])
        self.global_step += record["steps"]
        return episode_means(record["finished"])

    def update_step(self) -> dict[str, float]:
        """Every team's update on its own buffer; then, past, the pools' snapshots."""
        losses: dict[str, float] = {}
        for team in self.teams:
            if team.algo.cfg.anneal_lr:
                team.algo.set_learning_rate(1.0 - self.update / self.num_updates)
            stats = team.algo.update(to_device(team.buffer.sequences(team.algo.cfg.chunk_len),
                                               self.device))
            losses.update({k.replace("losses/", f"losses/{team.name}/"): v
                           for k, v in stats.items()})
        if self.tcfg.opponents == "past" and (self.update + 1) % self.tcfg.snapshot_every == 0:
            self.take_snapshots()
        return losses

    # -- results and checkpoints -------------------------------------------------------------
    def progress_fields(self) -> tuple[str, ...]:
        return ("episodic_return", "episodic_length", "capture", "capture_time",
                *(f"return_{t.name}" for t in self.teams))

    def checkpoint_fields(self) -> dict[str, Any]:
        return {"opponent_pools": self.pools}

    def load_checkpoint_fields(self, data: dict[str, Any]) -> None:
        self.pools = data["opponent_pools"]

    def policy(self) -> TeamPolicies:
        teams = {t.name: self.team_policy(t) for t in self.teams}
        return TeamPolicies(teams, {t.name: t.members for t in self.teams}, self.env.spec.agents,
                            {**self.policy_metadata(), "algorithm": "teams",
                             "teams": {t.name: teams[t.name].metadata["algorithm"]
                                       for t in self.teams}})
