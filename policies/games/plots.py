"""Strategy-space plots of WoLF-PHC against PHC in self-play (after Bowling & Veloso 2002).

Both learners play a repeated zero-sum matrix game whose only equilibrium is mixed: matching
pennies (50/50) and rock-paper-scissors (uniform). The plots draw the strategies the agents
play, pi, as they learn: for matching pennies P(heads) of agent 0 against agent 1 (the
unit square), for rock-paper-scissors agent 0's strategy in the 2-simplex (a triangle,
ternary projection). PHC orbits the equilibrium for as long as it learns; WoLF-PHC spirals
into it. Both start away from the equilibrium so the spiral is visible.

    python -m policies.games.plots --out docs/games

writes wolf_vs_phc_matching_pennies.png and wolf_vs_phc_rps.png and prints, per learner,
how far pi stays from the equilibrium over the last fifth of the run.

`self_play` is the experiment loop, shared with the tests: a bare act/learn loop over the
payoff table, which records the trajectory and runs ~5x faster than `policies.train` (no
env, no checkpoints), so the plots and the learning tests fit a few seconds per run.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from policies.games import GAME_ALGORITHMS
from policies.games.common import GameSpec, Transition
from policies.matrix_game import MATRIX_GAMES

# Where the plots start (agent 0, agent 1): off the equilibrium, in no special position.
STARTS = {"matching_pennies": [[0.8, 0.2], [0.3, 0.7]],
          "rock_paper_scissors": [[0.7, 0.2, 0.1], [0.2, 0.2, 0.6]]}


@dataclass
class Trajectory:
    """Strategies recorded every `record_every` env steps: (R, N, A) arrays."""

    steps: np.ndarray  # (R,) env steps learned from at each record
    policy: np.ndarray  # pi: what the agents play
    average: np.ndarray  # pibar: the average policies


def self_play(algo: str, game: str, steps: int, seed: int = 0, config: dict[str, Any] | None = None,
              start: list[list[float]] | None = None, record_every: int = 100) -> Trajectory:
    """`algo` in self-play on a repeated matrix game of `policies.matrix_game.MATRIX_GAMES`.

    start: every agent's initial strategy (pi and pibar), uniform when None.
    """
    if game not in MATRIX_GAMES:
        raise ValueError(f"unknown matrix game {game!r}; choose one of: {', '.join(MATRIX_GAMES)}.")
    payoff = np.asarray(MATRIX_GAMES[game], np.float64)  # (N, A_1, ..., A_N)
    n = payoff.shape[0]
    cls = GAME_ALGORITHMS[algo]
    spec = GameSpec([f"agent_{i}" for i in range(n)], [1] * n, list(payoff.shape[1:]), 1)
    learner = cls(cls.config_class.from_dict(config), spec, np.random.default_rng(seed))
    if start is not None:
        for i, p in enumerate(start):
            learner.tables[f"pi_{i}"][0] = learner.tables[f"pibar_{i}"][0] = p
    states, ends = np.zeros((1, n), np.int64), np.ones(1, bool)  # one state; every round ends
    records, policy, average = [], [], []
    for step in range(steps + 1):
        if step % record_every == 0:
            records.append(step)
            policy.append([p[0].copy() for p in learner.strategies()])
            average.append([p[0].copy() for p in learner.average_strategies()])
        if step == steps:
            break
        actions = learner.act(states)
        rewards = payoff[(slice(None), *actions[0])][None]  # (1, N): each agent's own payoff
        learner.learn(Transition(states, actions, rewards, states, ends, ends))
    return Trajectory(np.asarray(records), np.asarray(policy), np.asarray(average))


def distance_from_uniform(strategies: np.ndarray) -> np.ndarray:
    """max over agents and actions of |pi(a) - 1/|A||, per record: 0 at these games' equilibrium."""
    return np.abs(strategies - 1.0 / strategies.shape[-1]).max(axis=(-2, -1))


def late_window(trajectory: Trajectory, fraction: float = 0.2) -> slice:
    """The records of the last `fraction` of the run."""
    return slice(int(len(trajectory.steps) * (1.0 - fraction)), None)


def ternary(p: np.ndarray) -> np.ndarray:
    """(..., 3) points of the 2-simplex -> (..., 2) in an equilateral triangle (rock at the origin)."""
    return np.stack([p[..., 1] + 0.5 * p[..., 2], np.sqrt(3.0) / 2.0 * p[..., 2]], axis=-1)


def _pyplot() -> Any:
    """pyplot on the Agg backend: files only, never a window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _timed_line(ax: Any, xy: np.ndarray, steps: np.ndarray, norm: Any) -> Any:
    from matplotlib.collections import LineCollection

    segments = np.stack([xy[:-1], xy[1:]], axis=1)
    line = LineCollection(segments, cmap="viridis", norm=norm, linewidths=0.8)
    line.set_array(steps[:-1])
    ax.add_collection(line)
    return line


LABELS = {"wolf_phc": "WoLF-PHC", "phc": "PHC"}


def plot_matching_pennies(runs: dict[str, Trajectory], path: Path) -> None:
    """P(heads) of agent 0 against agent 1 for each learner, coloured by env step."""
    from matplotlib.colors import Normalize

    plt = _pyplot()

    fig, axes = plt.subplots(1, len(runs), figsize=(3.6 * len(runs) + 1.0, 4.0), squeeze=False,
                             layout="constrained")
    norm = Normalize(0, max(t.steps[-1] for t in runs.values()))
    for ax, (name, t) in zip(axes[0], runs.items(), strict=True):
        line = _timed_line(ax, t.policy[:, :, 0], t.steps, norm)
        ax.plot(*t.policy[0, :, 0], "o", color="black", ms=4)
        ax.plot(0.5, 0.5, "*", color="crimson", ms=10)
        late = distance_from_uniform(t.policy[late_window(t)]).mean()
        ax.set(xlim=(0, 1), ylim=(0, 1), aspect="equal", xlabel="agent 0: P(heads)",
               ylabel="agent 1: P(heads)", title=f"{LABELS[name]} (late |pi - 1/2|: {late:.2f})")
    fig.colorbar(line, ax=axes[0].tolist(), label="env step", shrink=0.85)
    fig.suptitle("Matching pennies, self-play: the strategies played (o start, * equilibrium)")
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_rps(runs: dict[str, Trajectory], path: Path) -> None:
    """Agent 0's strategy in the rock-paper-scissors simplex for each learner."""
    from matplotlib.colors import Normalize

    plt = _pyplot()

    corners = ternary(np.eye(3))
    fig, axes = plt.subplots(1, len(runs), figsize=(3.6 * len(runs) + 1.0, 3.4), squeeze=False,
                             layout="constrained")
    norm = Normalize(0, max(t.steps[-1] for t in runs.values()))
    for ax, (name, t) in zip(axes[0], runs.items(), strict=True):
        ax.fill(*corners.T, facecolor="none", edgecolor="gray", lw=0.8)
        for corner, label, offset in zip(corners, ("rock", "paper", "scissors"),
                                         ((-0.04, -0.06), (0.04, -0.06), (0.0, 0.03)), strict=True):
            ax.annotate(label, corner, xytext=offset, textcoords="offset fontsize", ha="center",
                        fontsize=8)
        line = _timed_line(ax, ternary(t.policy[:, 0]), t.steps, norm)
        ax.plot(*ternary(t.policy[0, 0]), "o", color="black", ms=4)
        ax.plot(*ternary(np.full(3, 1.0 / 3.0)), "*", color="crimson", ms=10)
        late = distance_from_uniform(t.policy[late_window(t)]).mean()
        ax.set(xlim=(-0.08, 1.08), ylim=(-0.1, 0.95), aspect="equal",
               title=f"{LABELS[name]} (late |pi - 1/3|: {late:.2f})")
        ax.axis("off")
    fig.colorbar(line, ax=axes[0].tolist(), label="env step", shrink=0.85)
    fig.suptitle("Rock-paper-scissors, self-play: agent 0's strategy (o start, * equilibrium)")
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/games"), help="folder for the PNGs")
    parser.add_argument("--steps", type=int, default=50_000, help="env steps per run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps < 100:
        raise SystemExit(f"--steps must be >= 100 (got {args.steps}).")
    args.out.mkdir(parents=True, exist_ok=True)
    plots = {"matching_pennies": (plot_matching_pennies, "wolf_vs_phc_matching_pennies.png"),
             "rock_paper_scissors": (plot_rps, "wolf_vs_phc_rps.png")}
    for game, (plot, filename) in plots.items():
        runs = {name: self_play(name, game, args.steps, args.seed, start=STARTS[game],
                                record_every=max(1, args.steps // 2000)) for name in LABELS}
        for name, t in runs.items():
            window = late_window(t)
            print(f"{game} {LABELS[name]}: last 20% of {args.steps} steps, max |pi - uniform| "
                  f"mean {distance_from_uniform(t.policy[window]).mean():.3f} "
                  f"max {distance_from_uniform(t.policy[window]).max():.3f}; "
                  f"final |pibar - uniform| {distance_from_uniform(t.average[-1]):.3f}")
        plot(runs, args.out / filename)
        print(f"wrote {args.out / filename}")


if __name__ == "__main__":
    main()
