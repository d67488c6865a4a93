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
    totals = np.zeros((episodes, len(policy.agents)))
    lengths = np.zeros(episodes)
    policy.rng = np.random.default_rng(seed)
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        while env.agents:
            actions = policy.act({a: obs[a] for a in env.agents}, deterministic=False)
            obs, rewards, _, _, _ = env.step(actions)
            totals[k] += [rewards.get(a, 0.0) for a in policy.agents]
            lengths[k] += 1
    return {**{f"return_{a}": float(totals[:, j].mean()) for j, a in enumerate(policy.agents)},
            "episode_length": float(lengths.mean())}


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


def evaluate_game_run(run_dir: str | Path, episodes: int = 100, seed: int = 12345) -> dict[str, Any]:
    """Evaluate a run on a named game: `eval.json` in the run folder, returned as a dict."""
    from policies.config import read_yaml
    from policies.games.worlds import GAMES, make_game
    from policies.policy import load

    run = Path(run_dir)
    config = read_yaml(run / "config.yaml")
    game = config.get("scenario")
    if game not in GAMES:
        raise ValueError(f"{run} was trained on {game or 'a user environment'}, not a named game; "
                         "evaluate it with policies.load(...).probabilities(...) and "
                         "policies.games.analysis in your own code.")
    policy = load(run / "policy.pt")
    env = make_game(game, **(config.get("env") or {}))
    report: dict[str, Any] = {"run": str(run), "algorithm": config["algorithm"], "game": game,
                              "episodes": episodes, "seed": seed,
                              "trained_env_steps": policy.metadata.get("global_step"),
                              "policy": play_episodes(policy, env, episodes, seed)}
    model = game_model(env)
    if model is not None:
        report.update(exploitability_report(policy, model))
    out = run / "eval.json"
    out.write_text(json.dumps(report, indent=2))
    report["json"] = str(out)
    return report
