"""Evaluation of a game-theoretic run (`marl-ros eval RUN` dispatches here).

Two figures, because in these games returns against the co-learner say little:
- episodes played by the policy itself (each agent sampling its mixed strategy with the
  policy's seeded generator): every agent's mean return;
- where the game has an exact model (`env.model()`, or a matrix game's payoff tables),
  the exploitability of the joint policy, i.e. what a best response gains over each
  player's own strategy (`policies.games.analysis`), 0 at a Nash equilibrium, and for a
  zero-sum game each player's worst-case value (what its strategy guarantees).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from policies.games.policy import GamePolicy


def game_model(env: Any) -> Any | None:
    """The exact model of a game env, or None where it has none."""
    base = getattr(env, "unwrapped", env)
    if hasattr(base, "model"):
        return base.model()
    from policies.matrix_game import MatrixGame

    if isinstance(base, MatrixGame) and base.general_sum and base.payoff.shape[0] == 2:
        from policies.games.analysis import matrix_game_model

        return matrix_game_model(base.payoff)
    return None


def play_episodes(policy: GamePolicy, env: Any, episodes: int, seed: int) -> dict[str, float]:
    """Each agent's mean return over `episodes` episodes of the policy sampling its strategies."""
    from policies.envs import EPISODE_METRICS

    totals = np.zeros((episodes, len(policy.agents)))
    lengths = np.zeros(episodes)
    metrics: dict[str, list[float]] = {}
    policy.rng = np.random.default_rng(seed)
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        info: dict[str, Any] = {}
        while env.agents:
            actions = policy.act({a: obs[a] for a in env.agents}, deterministic=False)
            obs, rewards, _, _, infos = env.step(actions)
            totals[k] += [rewards.get(a, 0.0) for a in policy.agents]
            lengths[k] += 1
            info = next(iter(infos.values()), {}) if infos else info
        for key in EPISODE_METRICS:  # the episode's final figure (e.g. coverage_grid's coverage)
            if key in info:
                metrics.setdefault(key, []).append(float(info[key]))
    return {**{f"return_{a}": float(totals[:, j].mean()) for j, a in enumerate(policy.agents)},
            "episode_length": float(lengths.mean()),
            **{key: float(np.mean(values)) for key, values in metrics.items()}}


def exploitability_report(policy: GamePolicy, model: Any) -> dict[str, Any]:
    """Exploitability (per player and their sum) and, zero-sum, the worst-case values."""
    from policies.games.analysis import exploitability, policy_values, worst_case_value

    gains = exploitability(model, policy.tables)
    values = policy_values(model, policy.tables)
    report: dict[str, Any] = {
        "exploitability": {a: float(g) for a, g in zip(policy.agents, gains, strict=True)},
        "exploitability_sum": float(gains.sum()),
        "value": {a: float(model.initial @ values[i]) for i, a in enumerate(policy.agents)},
    }
    if model.is_zero_sum():
        report["worst_case_value"] = {a: worst_case_value(model, policy.tables[i], i)
                                      for i, a in enumerate(policy.agents)}
    return report


def evaluate_game_run(run_dir: str | Path, episodes: int = 100, seed: int = 12345,
                      backend: str = "pybullet", opponent: str | Path | None = None) -> dict[str, Any]:
    """Evaluate a game-theoretic run: `eval.json` in the run folder, returned as a dict.

    A named game: sampled episodes and, with a model, exploitability. The pursuit scenario
    (cells view): the learned sides against scripted, random and learned opponents on
    `backend` (`evaluate_pursuit`; `opponent`: another pursuit run's folder whose learned sides
    play this run's), written as `eval_<backend>.json`."""
    from policies.config import read_yaml
    from policies.games.worlds import GAMES, make_game
    from policies.policy import load

    run = Path(run_dir)
    config = read_yaml(run / "config.yaml")
    game = config.get("scenario")
    policy = load(run / "policy.pt")
    report: dict[str, Any] = {"run": str(run), "algorithm": config["algorithm"], "game": game,
                              "episodes": episodes, "seed": seed,
                              "trained_env_steps": policy.metadata.get("global_step")}
    if game == "pursuit":
        report["backend"] = backend
        rival = None
        if opponent is not None:
            rival = load(Path(opponent) / "policy.pt" if Path(opponent).is_dir() else opponent)
            report["opponent"] = str(opponent)
        report["matchups"] = evaluate_pursuit(policy, policy.metadata["env_config"], episodes,
                                              backend, seed, opponent=rival)
        out = run / f"eval_{backend}.json"
    elif game in GAMES:
        env = make_game(game, **(config.get("env") or {}))
        report["policy"] = play_episodes(policy, env, episodes, seed)
        model = game_model(env)
        if model is not None:
            report.update(exploitability_report(policy, model))
        out = run / "eval.json"
        if opponent is not None:
            raise ValueError("--opponent plays two pursuit runs against each other; drop it for "
                             f"{game}.")
    else:
        raise ValueError(f"{run} was trained on {game or 'a user environment'}, which marl-ros eval "
                         "cannot rebuild; evaluate it with policies.load(...).probabilities(...) "
                         "and policies.games.analysis in your own code.")
    out.write_text(json.dumps(report, indent=2))
    report["json"] = str(out)
    return report


# -- pursuit: a learned side against scripted and learned opponents ------------------------------
PURSUIT_SIDES = ("policy", "scripted", "random")


def _side_actions(kind: str, policy: Any, obs: np.ndarray, columns: range, scripted: np.ndarray,
                  agents: list[str], deterministic: bool = False) -> np.ndarray:
    """The actions (E, len(columns)[, 4]) of one team: the policy's (a tabular policy sampling
    its strategy, a deep one its most probable action with deterministic), or the
    scripted/random actions already computed for every drone."""
    if kind != "policy":
        return scripted[:, columns]
    out = []
    for e in range(obs.shape[0]):
        acts = policy.act({agents[j]: obs[e, j] for j in columns}, deterministic=deterministic)
        out.append([acts[agents[j]] for j in columns])
    return np.asarray(out)


def pursuit_matchup(policy: Any, env_config: dict[str, Any], pursuers: str, evaders: str,
                    episodes: int = 20, backend: str = "pybullet", seed: int = 0,
                    deterministic: bool = False) -> dict[str, float]:
    """Capture rate and mean capture time of one pursuit matchup: each team is "policy" (the
    learned strategies, sampled; a deep team policy's most probable action with
    deterministic), "scripted" (chase / flee, `sim.scripted.pursuit_actions`) or "random" (a
    random walk over the moves). Cells view (tabular) or drone view (`policies.teams`)."""
    import sim
    from sim.config import config_from_dict
    from sim.scripted import pursuit_actions

    for kind in (pursuers, evaders):
        if kind not in PURSUIT_SIDES:
            raise ValueError(f"a pursuit side is one of {', '.join(PURSUIT_SIDES)} (got {kind!r}).")
    cfg = config_from_dict(env_config)
    num_envs = min(episodes, 4)
    venv = sim.make_vec_env("pursuit", num_envs, backend=backend, seed=seed,
                            **{k: v for k, v in cfg.to_dict().items() if k != "scenario"})
    rng = np.random.default_rng(seed)
    if policy is not None:
        policy.rng = np.random.default_rng(seed + 1)
    obs, _ = venv.reset(seed=seed)
    p = cfg.num_pursuers
    captures, times = [], []
    while len(captures) < episodes:
        scripted = pursuit_actions(cfg, venv.positions, rng,
                                   pursuers="random" if pursuers == "random" else "chase",
                                   evaders="random" if evaders == "random" else "flee",
                                   velocities=venv.velocities)
        actions = np.concatenate([
            _side_actions(pursuers, policy, obs, range(p), scripted, venv.agents, deterministic),
            _side_actions(evaders, policy, obs, range(p, cfg.num_drones), scripted, venv.agents,
                          deterministic)],
            axis=1)
        obs, _, _, _, infos = venv.step(actions)
        for e in np.flatnonzero(infos["done"]):
            captures.append(float(infos["capture"][e]))
            times.append(float(infos["capture_time"][e]))
    venv.close()
    return {"capture_rate": float(np.mean(captures[:episodes])),
            "capture_time": float(np.mean(times[:episodes])), "episodes": episodes}


def crossed(pursuers: Any, evaders: Any, cfg: Any) -> Any:
    """One policy playing `pursuers`' strategies for the pursuers and `evaders`' for the evaders
    (two runs' learned sides against each other); both must be for the same game."""
    from policies.teams import TeamPolicies

    if isinstance(pursuers, TeamPolicies) or isinstance(evaders, TeamPolicies):
        return crossed_teams(pursuers, evaders)
    if pursuers.state_sizes != evaders.state_sizes or pursuers.action_sizes != evaders.action_sizes:
        raise ValueError("the opponent's policy was trained on another pursuit grid (its tables "
                         f"are {evaders.state_sizes} states x {evaders.action_sizes} moves, this "
                         f"one's {pursuers.state_sizes} x {pursuers.action_sizes}); train both on "
                         "the same cells view.")
    p = cfg.num_pursuers
    return GamePolicy(pursuers.agents, pursuers.tables[:p] + evaders.tables[p:])


def crossed_teams(pursuers: Any, evaders: Any) -> Any:
    """Two team runs' policies (`policies.teams.TeamPolicies`) crossed: the first's pursuers
    against the second's evaders; both must play the same game (observation) and drones."""
    from policies.teams import TeamPolicies
    from sim.config import config_from_dict
    from sim.obs import observation_hash

    if not (isinstance(pursuers, TeamPolicies) and isinstance(evaders, TeamPolicies)):
        raise ValueError("--opponent crosses two runs of the same kind; a team run (trainer.teams) "
                         "plays another team run.")
    ours, theirs = (config_from_dict(p.metadata["env_config"]) for p in (pursuers, evaders))
    if observation_hash(ours) != observation_hash(theirs) or ours.teams != theirs.teams:
        raise ValueError("the opponent run was trained on another pursuit game (observation or "
                         "teams differ); train both with the same env settings.")
    return TeamPolicies({"pursuers": pursuers.teams["pursuers"], "evaders": evaders.teams["evaders"]},
                        pursuers.members, pursuers.agents, pursuers.metadata)


def evaluate_pursuit(policy: Any, env_config: dict[str, Any], episodes: int = 20,
                     backend: str = "pybullet", seed: int = 0,
                     opponent: Any | None = None,
                     deterministic: bool = False) -> dict[str, dict[str, float]]:
    """The learned pursuer and evader against scripted, random and learned opponents, beside
    the scripted and random baselines of the same matchups. opponent: another run's learned
    strategies, played against this one's on both sides (`policy_vs_opponent`: this run's
    pursuer against the opponent's evader). deterministic: deep team policies
    (`policies.teams`) act with their most probable actions."""
    matchups = {
        "policy_vs_flee": ("policy", "scripted"), "chase_vs_flee": ("scripted", "scripted"),
        "random_vs_flee": ("random", "scripted"), "policy_vs_random": ("policy", "random"),
        "chase_vs_policy": ("scripted", "policy"), "chase_vs_random": ("scripted", "random"),
        "random_vs_policy": ("random", "policy"), "random_vs_random": ("random", "random"),
        "policy_vs_policy": ("policy", "policy"),
    }
    out = {name: pursuit_matchup(policy, env_config, pursuers, evaders, episodes, backend, seed,
                                 deterministic)
           for name, (pursuers, evaders) in matchups.items()}
    if opponent is not None:
        from sim.config import config_from_dict

        cfg = config_from_dict(env_config)
        for name, joint in (("policy_vs_opponent", crossed(policy, opponent, cfg)),
                            ("opponent_vs_policy", crossed(opponent, policy, cfg))):
            out[name] = pursuit_matchup(joint, env_config, "policy", "policy", episodes, backend,
                                        seed, deterministic)
    return out
