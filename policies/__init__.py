"""CTDE learning for drone swarms: the on-policy family (MAPPO, HAPPO, HATRPO, HAA2C), the
episodic family (IQL, VDN, QMIX, QTRAN-base, QTRAN-alt, COMA; Discrete actions only) and the
off-policy family (MADDPG, HADDPG, HATD3; deterministic actors, replay of transitions), the
mean-field family (MF-Q, MF-AC) and the game-theoretic family (Minimax-Q, Nash-Q, Friend-or-Foe
Q, WoLF-PHC, Team-Q; tabular or linear, mixed strategies; see `policies.games`).

    import policies
    policy = policies.train("mappo", "coverage", 200_000, config={"env": {"num_drones": 2}})
    actions = policy.act(observations)          # dict agent -> action, deterministic
    policy.save("runs/x/policy.pt"); policy = policies.load("runs/x/policy.pt")

`env_fn` is either
- a sim scenario name ("coverage", "spread"): the fast path, `sim.make_vec_env` with
  `trainer.num_envs` environments, `trainer.backend` dynamics and the config's `env`
  section as scenario parameters; or
- a function returning any PettingZoo `ParallelEnv` with Box observations and Box or
  Discrete actions. `trainer.num_envs` copies are stepped in turn. The team reward is
  the mean of the agents' rewards, the critic's state is `env.state()` or, where the env
  does not implement it, the concatenation of all agents' observations.
- for the game-theoretic family: a named game of `policies.games.worlds.GAMES` or any
  ParallelEnv with Discrete / one-hot Box observations and Discrete actions (per-agent
  rewards); it returns a `policies.games.policy.GamePolicy` with `probabilities(...)`.
- "matrix" (episodic family): the one-step cooperative matrix game of
  `policies.matrix_game`, its payoff table from the config's `env` section. Heterogeneous
  agents need `algo.share_params: false` (the default of every algorithm but MAPPO).

Teams (a game between sides, e.g. pursuit's pursuers and evaders): `trainer.teams` gives each
team its own on-policy algorithm, normalisers and buffer in the one loop, with self-play
against the other teams' current or past policies (`policies.teams`); it returns a
`policies.teams.TeamPolicies`, one policy per team.

The episodic family pads episodes to one length: `algo.episode_limit`, else what the env
declares (`max_steps`, `max_cycles`, `max_episode_steps`, `spec.max_episode_steps`), else
it grows the padded length from the episodes it sees (see `policies.value.trainer`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from pathlib import Path
from typing import Any

from policies.policy import TrainedPolicy, load

ON_POLICY_ALGORITHM_NAMES = ("mappo", "happo", "hatrpo", "haa2c")
VALUE_ALGORITHM_NAMES = ("iql", "vdn", "qmix", "qtran_base", "qtran_alt", "coma")  # discrete
OFF_POLICY_ALGORITHM_NAMES = ("maddpg", "haddpg", "hatd3")
MEAN_FIELD_ALGORITHM_NAMES = ("mf_q", "mf_ac")
GAME_ALGORITHM_NAMES = ("minimax_q", "nash_q", "friend_q", "foe_q", "wolf_phc", "phc",
                        "independent_q", "team_q")  # tabular / linear, finite states
ALGORITHM_NAMES = (ON_POLICY_ALGORITHM_NAMES + VALUE_ALGORITHM_NAMES + OFF_POLICY_ALGORITHM_NAMES
                   + MEAN_FIELD_ALGORITHM_NAMES + GAME_ALGORITHM_NAMES)
# A family is a folder `policies/<family>/`: its algorithms, its registry
# (`policies.onpolicy.ALGORITHMS`, `policies.value.VALUE_ALGORITHMS`,
# `policies.offpolicy.OFFPOLICY_ALGORITHMS`, `policies.meanfield.MEANFIELD_ALGORITHMS`) and its hooks for the
# one training loop (`policies/<family>/trainer.py`, picked by `family_trainer`).


def train(algo: str, env_fn: str | Callable[[], Any], total_steps: int, *, seed: int = 0,
          config: dict[str, Any] | str | Path | None = None, out_dir: str | Path | None = None,
          overrides: list[str] | None = None, resume: bool = False) -> TrainedPolicy:
    """Train `algo` for `total_steps` env steps (one env step = one joint step of one env).

    config: a dict or YAML path with sections env/trainer/algo, merged over the YAML
    defaults (see `policies.config`). out_dir: where the run writes its config,
    checkpoints, TensorBoard logs and policy; None writes nothing. resume: continue the
    run in out_dir from its last checkpoint, with the config saved there.
    """
    from policies.config import read_yaml, resolve_config

    check_total_steps(total_steps)
    if resume:
        if out_dir is None:
            raise ValueError("resume=True needs out_dir, the folder of the run to continue.")
        resolved = read_yaml(Path(out_dir) / "config.yaml")
        if algo != resolved["algorithm"]:
            raise ValueError(f"{out_dir} holds a {resolved['algorithm']} run, not {algo}; resume it "
                             f"with algo={resolved['algorithm']!r} or train {algo} in another "
                             "out_dir.")
        if isinstance(env_fn, str) and env_fn != resolved.get("scenario"):
            raise ValueError(f"{out_dir} holds a run on {resolved.get('scenario') or 'a user env'}, "
                             f"not {env_fn}; resume it with the same env_fn or train {env_fn} in "
                             "another out_dir.")
        for override in overrides or []:  # where the run continues (a GPU run resumes on a CPU)
            if override.startswith("trainer.device="):
                resolved["trainer"]["device"] = override.split("=", 1)[1]
    else:
        scenario = env_fn if isinstance(env_fn, str) else None
        resolved = resolve_config(algo, scenario, config, overrides, seed=seed)
    trainer = run_trainer(resolved)(resolved, env_fn, out_dir, resume=resume)
    try:
        return trainer.train(total_steps)
    finally:  # env worker processes and physics servers end with the training
        trainer.env.close()


def run_trainer(resolved: dict[str, Any]) -> type:
    """The trainer of a resolved config: `policies.teams.TeamTrainer` when it names teams
    (`trainer.teams`, one on-policy algorithm per team), else its algorithm's family's."""
    if resolved["trainer"].get("teams"):
        from policies.teams import TeamTrainer

        return TeamTrainer
    return family_trainer(resolved["algorithm"])


def family_trainer(algo: str) -> type:
    """The trainer of `algo`'s family: the shared loop of `policies.trainer` with its hooks."""
    if algo in VALUE_ALGORITHM_NAMES:
        from policies.value.trainer import EpisodicTrainer

        return EpisodicTrainer
    if algo in ON_POLICY_ALGORITHM_NAMES:
        from policies.onpolicy.trainer import OnPolicyTrainer

        return OnPolicyTrainer
    if algo in OFF_POLICY_ALGORITHM_NAMES:
        from policies.offpolicy.trainer import OffPolicyTrainer

        return OffPolicyTrainer
    if algo in MEAN_FIELD_ALGORITHM_NAMES:
        from policies.meanfield.trainer import MeanFieldTrainer

        return MeanFieldTrainer
    if algo in GAME_ALGORITHM_NAMES:
        from policies.games.trainer import GameTrainer

        return GameTrainer
    raise ValueError(f"unknown algorithm {algo!r}; choose one of: {', '.join(ALGORITHM_NAMES)}.")


def check_total_steps(total_steps: Any) -> None:
    """Refuse a budget that would train nothing (or forever) before any work starts."""
    if (isinstance(total_steps, bool) or not isinstance(total_steps, numbers.Real)
            or not 0 < total_steps < math.inf):
        raise ValueError(f"total_steps must be a positive number of env steps (got {total_steps!r}).")


__all__ = ["ALGORITHM_NAMES", "GAME_ALGORITHM_NAMES", "MEAN_FIELD_ALGORITHM_NAMES", "OFF_POLICY_ALGORITHM_NAMES", "ON_POLICY_ALGORITHM_NAMES",
           "VALUE_ALGORITHM_NAMES", "TrainedPolicy",
           "family_trainer", "load", "run_trainer", "train"]
