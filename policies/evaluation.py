"""Deterministic evaluation of a trained policy, and the random-walk baseline beside it.

`evaluate` runs `episodes` episodes of a sim scenario, all at once in a vector env
(either backend), through the same `TrainedPolicy.act` a user calls, and reports
means of the end-of-episode figures: coverage, team return, length, near-collisions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import sim
from policies.envs import to_env_action
from policies.policy import TrainedPolicy
from sim.scripted import random_walk_actions


def run_episodes(venv: Any, choose_actions, seed: int) -> dict[str, float]:
    """Roll every env of `venv` to the end of its first episode; means of the end figures."""
    obs, metrics = venv.reset(seed=seed)
    e = venv.num_envs
    finished = np.zeros(e, bool)
    figures: dict[str, np.ndarray] = {k: np.zeros(e) for k in (
        "coverage", "episode_return", "episode_length", "episode_collisions")}
    # and the scenario's own metrics (formation: shape_error), as the episode ends
    figures.update({k: np.zeros(e) for k in metrics if k not in figures})
    while not finished.all():
        obs, _, _, _, infos = venv.step(choose_actions(obs))
        first = infos["done"] & ~finished
        for key in figures:
            if key in infos:
                figures[key][first] = infos[key][first]
        finished |= infos["done"]
    out = {k: float(v.mean()) for k, v in figures.items()}
    out["coverage_min"] = float(figures["coverage"].min())
    return out


def evaluate(policy: TrainedPolicy, scenario: str = "coverage", episodes: int = 16,
             backend: str = "fast", seed: int = 12345, **params: Any) -> dict[str, float]:
    """Mean end-of-episode figures of the deterministic policy over `episodes` episodes."""
    if not params and "env_config" in policy.metadata:
        params = {k: v for k, v in policy.metadata["env_config"].items() if k != "scenario"}
    venv = sim.make_vec_env(scenario, episodes, backend=backend, seed=seed, **params)
    discrete = venv.cfg.action_mode == "discrete"

    def choose(obs: np.ndarray) -> np.ndarray:
        actions = policy.act_batch(obs)
        return actions[..., 0].astype(np.int64) if discrete else np.clip(actions, -1.0, 1.0)

    policy.reset()
    try:
        return run_episodes(venv, choose, seed)
    finally:
        venv.close()


def evaluate_random_walk(scenario: str = "coverage", episodes: int = 16, backend: str = "fast",
                         seed: int = 12345, **params: Any) -> dict[str, float]:
    """The same figures for the random-walk baseline (`sim.scripted.random_walk_actions`)."""
    venv = sim.make_vec_env(scenario, episodes, backend=backend, seed=seed, **params)
    rng = np.random.default_rng(seed)
    try:
        return run_episodes(venv, lambda obs: random_walk_actions(
            venv.cfg, rng, (venv.num_envs, venv.num_agents)), seed)
    finally:
        venv.close()


def record_episode(policy: TrainedPolicy, scenario: str, backend: str, seed: int,
                   frames: bool = False, **params: Any) -> dict[str, Any]:
    """One deterministic episode through the PettingZoo env and `policy.act` (dicts).

    Returns the final coverage map, trajectories (T + 1, N, 3), end figures and, when
    asked, the rendered frames for a GIF.
    """
    env = sim.make_env(scenario, backend=backend, seed=seed, **params)
    obs, _ = env.reset(seed=seed)
    policy.reset()
    images = [env.render()] if frames else []
    info: dict[str, float] = {}
    total = 0.0
    agents = env.possible_agents  # the batched call flies any count a shared policy can
    while env.agents:
        acts = policy.act_batch(np.stack([obs[a] for a in agents])[None])[0]
        actions = {a: to_env_action(env.action_space(a), acts[i]) for i, a in enumerate(agents)}
        obs, rewards, _, _, infos = env.step(actions)
        total += float(np.mean(list(rewards.values())))
        info = next(iter(infos.values()))
        if frames:
            images.append(env.render())
    covered = getattr(env._vec.scenario, "covered", None)
    out = {"cfg": env.cfg, "covered": None if covered is None else covered[0].copy(),
           "trajectories": env.trajectories, "info": info, "return": total, "frames": images,
           "obstacles": env.obstacles}
    env.close()
    return out


def save_learning_curve(progress_csv: Any, path: Any, title: str) -> Any:
    """Coverage and team return against env steps, from a run's progress.csv."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(progress_csv) as f:
        rows = list(csv.DictReader(f))
    steps = np.array([float(r["global_step"]) for r in rows])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "coverage", "mean coverage at episode end"),
                           (axes[1], "episodic_return", "team return")):
        values = np.array([float(r[key]) for r in rows])
        ax.plot(steps, values, lw=1.5)
        ax.set_xlabel("env steps")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def evaluate_run(run_dir: Any, backend: str = "pybullet", episodes: int = 10, seed: int = 12345,
                 gif: bool = False, num_drones: int | None = None) -> dict[str, Any]:
    """Evaluate a training run folder: JSON report, learning curve, coverage PNG, GIF.

    Writes `eval_<backend>.json`, `learning_curve.png`, `coverage_<backend>.png` and
    (with gif) `episode_<backend>.gif` into the run folder and returns the report.
    num_drones: fly that many drones instead, on the field `sim.config.scaled_field` gives
    them (files named `..._<backend>_n<N>`); the policy must fly any count (no agent ids).
    """
    import json
    from pathlib import Path

    from policies.config import read_yaml
    from policies.policy import load
    from sim.render import save_coverage_png

    run = Path(run_dir)
    config = read_yaml(run / "config.yaml")
    scenario = config.get("scenario")
    if scenario is None:
        raise ValueError(f"{run} was trained on a user environment; evaluate it with "
                         "policies.load(...).act(...) in your own loop.")
    policy = load(run / "policy.pt")
    params = {k: v for k, v in policy.metadata.get("env_config", {}).items() if k != "scenario"}
    tag = backend
    if num_drones is not None:
        from sim.config import scaled_field

        if not policy.flies_any_count:
            raise ValueError(f"{run} holds a policy for exactly {len(policy.agents)} drones (one "
                             "network per agent, or agent ids); --num-drones needs a shared "
                             "policy without agent ids.")
        params.update(num_drones=num_drones, **scaled_field(scenario, num_drones))
        tag = f"{backend}_n{num_drones}"
    result = evaluate(policy, scenario, episodes, backend, seed, **params)
    baseline = evaluate_random_walk(scenario, episodes, backend, seed, **params)
    report: dict[str, Any] = {
        "run": str(run), "algorithm": config["algorithm"], "scenario": scenario,
        "backend": backend, "episodes": episodes, "seed": seed,
        "trained_env_steps": policy.metadata.get("global_step"), "policy": result,
        "random_walk": baseline, "env": params}
    if (run / "progress.csv").exists():
        report["learning_curve_png"] = str(save_learning_curve(
            run / "progress.csv", run / "learning_curve.png",
            f"{config['algorithm']} on {scenario}"))
    episode = record_episode(policy, scenario, backend, seed, frames=gif, **params)
    if episode["covered"] is not None:
        report["coverage_png"] = str(save_coverage_png(
            run / f"coverage_{tag}.png", episode["cfg"], episode["covered"],
            episode["trajectories"],
            f"{config['algorithm']} ({backend}): {100 * episode['info'].get('coverage', 0):.1f}%",
            obstacles=episode["obstacles"]))
    if gif:
        from PIL import Image

        images = [Image.fromarray(f) for f in episode["frames"]]
        path = run / f"episode_{tag}.gif"
        images[0].save(path, save_all=True, append_images=images[1:], duration=125, loop=0)
        report["gif"] = str(path)
    out = run / f"eval_{tag}.json"
    out.write_text(json.dumps(report, indent=2))
    report["json"] = str(out)
    return report


def is_team_run(run_dir: Any) -> bool:
    """A run that trained one policy per team (`trainer.teams`, `policies.teams`)."""
    from pathlib import Path

    from policies.config import read_yaml

    config = Path(run_dir) / "config.yaml"
    return config.is_file() and bool((read_yaml(config).get("trainer") or {}).get("teams"))


def evaluate_team_run(run_dir: Any, backend: str = "pybullet", episodes: int = 20,
                      seed: int = 0, opponent: Any = None) -> dict[str, Any]:
    """A team run on pursuit: its learned pursuers and evaders (most probable actions) against
    scripted, random-walk and learned opponents, beside the scripted and random baselines of
    the same matchups (`policies.games.evaluation.evaluate_pursuit`: capture rate and mean
    time to the first capture, policy steps); `opponent`: another team run whose sides play
    this one's. Writes `eval_<backend>.json` in the run folder."""
    import json
    from pathlib import Path

    from policies.config import read_yaml
    from policies.games.evaluation import evaluate_pursuit
    from policies.policy import load

    run = Path(run_dir)
    config = read_yaml(run / "config.yaml")
    if config.get("scenario") != "pursuit":
        raise ValueError(f"{run} trained teams on {config.get('scenario') or 'a user environment'}; "
                         "marl-ros eval measures team runs on pursuit only. Evaluate it with "
                         "policies.load(...).act(...) in your own loop.")
    policy = load(run / "policy.pt")
    report: dict[str, Any] = {
        "run": str(run), "algorithm": "teams", "scenario": "pursuit", "backend": backend,
        "teams": {name: p.metadata.get("algorithm") for name, p in policy.teams.items()},
        "opponents": config["trainer"].get("opponents"), "episodes": episodes, "seed": seed,
        "trained_env_steps": policy.metadata.get("global_step")}
    rival = None
    if opponent is not None:
        rival = load(Path(opponent) / "policy.pt" if Path(opponent).is_dir() else opponent)
        report["opponent"] = str(opponent)
    report["matchups"] = evaluate_pursuit(policy, policy.metadata["env_config"], episodes, backend,
                                          seed, opponent=rival, deterministic=True)
    out = run / f"eval_{backend}.json"
    out.write_text(json.dumps(report, indent=2))
    report["json"] = str(out)
    return report
