"""The game-theoretic family through the user's path: `policies.train` on named games and on
a user's own ParallelEnv, the mixed-strategy policy (`probabilities`, `act`, save/load),
exact resume, clear errors, and the ONNX bundle whose node samples the strategy."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo import ParallelEnv

import policies
from policies.games.policy import GamePolicy

QUIET = {"trainer": {"progress": False, "tensorboard": False}}


class TwoStateZeroSum(ParallelEnv):
    """A user's zero-sum game with a Discrete observation: state 0 is matching pennies, state 1
    a game where action 0 dominates for agent 0 (its strategy there must become pure)."""

    metadata = {"name": "two_state_v0"}

    def __init__(self, max_steps: int = 10):
        self.possible_agents = ["red", "blue"]
        self.agents: list[str] = []
        self.max_steps = max_steps
        self._obs = spaces.Discrete(2)
        self._act = spaces.Discrete(2)
        self.rng = np.random.default_rng(0)

    def observation_space(self, agent):
        return self._obs

    def action_space(self, agent):
        return self._act

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self.t = 0
        self.s = int(self.rng.integers(2))
        return {a: self.s for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions):
        a, o = actions["red"], actions["blue"]
        if self.s == 0:
            r = 1.0 if a == o else -1.0
        else:
            r = 1.0 if a == 0 else -1.0
        self.t += 1
        self.s = int(self.rng.integers(2))
        done = self.t >= self.max_steps
        obs = {ag: self.s for ag in self.agents}
        rewards = {"red": r, "blue": -r}
        trunc = {ag: done for ag in self.agents}
        term = {ag: False for ag in self.agents}
        if done:
            self.agents = []
        return obs, rewards, term, trunc, {ag: {} for ag in obs}


def test_minimax_q_trains_on_a_named_game_and_returns_a_mixed_strategy(tmp_path):
    policy = policies.train("minimax_q", "matching_pennies", 6000, seed=1, config=QUIET,
                            out_dir=tmp_path / "run")
    assert isinstance(policy, GamePolicy)
    probs = policy.probabilities({"agent_0": np.ones(1, np.float32), "agent_1": np.ones(1)})
    for p in probs.values():
        assert p.shape == (2,) and abs(p.sum() - 1.0) < 1e-9
        assert np.allclose(p, 0.5, atol=0.05)  # the minimax strategy of matching pennies
    loaded = policies.load(tmp_path / "run")
    assert isinstance(loaded, GamePolicy)
    for a, b in zip(loaded.tables, policy.tables, strict=True):
        np.testing.assert_array_equal(a, b)
    for name in ("config.yaml", "checkpoint.pt", "progress.csv", "policy.pt"):
        assert (tmp_path / "run" / name).exists()


def test_a_user_parallel_env_with_discrete_observations_trains_without_glue():
    policy = policies.train("minimax_q", lambda: TwoStateZeroSum(), 8000, seed=0, config=QUIET)
    # Agent "red" observes state 1, where action 0 wins whatever blue does: a pure strategy.
    assert policy.act({"red": 1})["red"] == 0
    assert policy.probabilities({"red": 1})["red"][0] > 0.95
    # State 0 is matching pennies: mixed; the same observation given one-hot gives the same.
    p0 = policy.probabilities({"red": 0})["red"]
    assert np.allclose(p0, 0.5, atol=0.1)
    np.testing.assert_array_equal(policy.probabilities({"red": np.array([1.0, 0.0])})["red"], p0)


def test_act_samples_the_mixed_strategy_and_deterministic_takes_the_most_probable():
    table = np.array([[0.2, 0.8]])
    policy = GamePolicy(["a"], [table], seed=3)
    assert policy.act({"a": 0}, deterministic=True) == {"a": 1}
    draws = [policy.act({"a": 0}, deterministic=False)["a"] for _ in range(4000)]
    assert abs(np.mean(draws) - 0.8) < 0.03


def test_bad_observations_and_agents_are_one_clear_error():
    policy = GamePolicy(["a"], [np.full((3, 2), 0.5)])
    with pytest.raises(KeyError, match="unknown agent"):
        policy.probabilities({"b": 0})
    with pytest.raises(ValueError, match="state 5"):
        policy.probabilities({"a": 5})
    with pytest.raises(ValueError, match="neither a state index nor a one-hot"):
        policy.probabilities({"a": np.array([0.5, 0.5, 0.0])})


class BoxActions(TwoStateZeroSum):
    def action_space(self, agent):
        return spaces.Box(-1.0, 1.0, (1,), np.float32)


class ContinuousObservations(TwoStateZeroSum):
    def observation_space(self, agent):
        return spaces.Box(-5.0, 5.0, (3,), np.float32)


def test_environments_the_tabular_learners_cannot_read_are_refused_before_training():
    with pytest.raises(TypeError, match="need Discrete actions"):
        policies.train("minimax_q", lambda: BoxActions(), 100, config=QUIET)
    with pytest.raises(TypeError, match="finite state"):
        policies.train("minimax_q", lambda: ContinuousObservations(), 100, config=QUIET)
    with pytest.raises(ValueError, match="unknown game"):
        from policies.games.worlds import make_game

        make_game("tic_tac_toe")
    with pytest.raises(ValueError, match="unknown MinimaxQConfig key"):
        policies.train("minimax_q", "matching_pennies", 100, config={**QUIET, "algo": {"alpha": 1}})


def test_resume_continues_exactly_like_the_uninterrupted_run(tmp_path):
    config = {"trainer": {"progress": False, "tensorboard": False, "checkpoint_every": 2,
                          "rollout_steps": 100}}
    whole = policies.train("minimax_q", lambda: TwoStateZeroSum(), 1200, seed=5, config=config,
                           out_dir=tmp_path / "whole")
    policies.train("minimax_q", lambda: TwoStateZeroSum(), 600, seed=5, config=config,
                   out_dir=tmp_path / "split")
    resumed = policies.train("minimax_q", lambda: TwoStateZeroSum(), 1200, seed=5,
                             out_dir=tmp_path / "split", resume=True)
    for a, b in zip(whole.tables, resumed.tables, strict=True):
        np.testing.assert_array_equal(a, b)
    assert resumed.metadata["global_step"] == 1200


def test_the_exported_bundle_holds_the_strategy_and_the_runtime_samples_it(tmp_path):
    from marl_ros.runtime import OnnxPolicy
    from policies.export import export_bundle

    tables = [np.array([[0.25, 0.75], [1.0, 0.0]]), np.array([[0.5, 0.5], [0.1, 0.9]])]
    policy = GamePolicy(["red", "blue"], tables, {"algorithm": "minimax_q", "seed": 0,
                                                  "global_step": 10})
    bundle = OnnxPolicy.load(export_bundle(policy, tmp_path / "bundle"))
    assert bundle.mixed and bundle.meta["action"]["sampling"] == "mixed"
    for i, agent in enumerate(policy.agents):
        for s in range(2):
            onehot = np.eye(2, dtype=np.float32)[s]
            out = bundle.run(onehot, agent)
            np.testing.assert_allclose(out["probabilities"][0], tables[i][s], atol=1e-7)
            assert int(out["action"][0]) == policy.act({agent: s})[agent]
    bundle.reseed(7)
    draws = [int(bundle.act(np.array([1.0, 0.0], np.float32), "red")[0]) for _ in range(4000)]
    assert abs(np.mean(draws) - 0.75) < 0.03  # the node plays the mixed strategy
    bundle.reseed(7)
    again = [int(bundle.act(np.array([1.0, 0.0], np.float32), "red")[0]) for _ in range(4000)]
    assert draws == again  # its own seeded generator: reproducible


def test_cli_trains_a_named_game_and_eval_reports_exploitability(tmp_path, capsys):
    import json

    from marl_ros.cli import main

    run = tmp_path / "rps"
    assert main(["train", "--algo", "minimax_q", "--scenario", "rock_paper_scissors", "--steps",
                 "1500", "--out", str(run), "trainer.progress=false",
                 "trainer.tensorboard=false"]) == 0
    assert main(["eval", str(run), "--episodes", "50"]) == 0
    report = json.loads((run / "eval.json").read_text())
    assert report["game"] == "rock_paper_scissors"
    # Minimax-Q's strategy in rock-paper-scissors is the uniform equilibrium: nothing to exploit.
    assert report["exploitability_sum"] < 0.02
    assert abs(report["worst_case_value"]["agent_0"]) < 0.02
    assert "exploitability" in capsys.readouterr().out
    # A strategy that always plays rock loses 1 per round to a best response.
    from policies.games.evaluation import exploitability_report, game_model
    from policies.games.worlds import make_game

    rock = GamePolicy(["agent_0", "agent_1"], [np.array([[1.0, 0.0, 0.0]]),
                                               np.full((1, 3), 1 / 3)])
    gains = exploitability_report(rock, game_model(make_game("rock_paper_scissors")))
    assert abs(gains["exploitability"]["agent_1"] - 1.0) < 1e-9
    assert abs(gains["worst_case_value"]["agent_0"] + 1.0) < 1e-9


def _chasing_tables(cfg):
    """Cells-view strategies by hand: the pursuer steps towards the evader's cell, the evader
    stays (one-hot rows over CELL_MOVES: stay, east, west, north, south)."""
    c = cfg.cells_per_side
    cells = c * c
    pursuer = np.zeros((cells * cells, 5))
    evader = np.zeros((cells * cells, 5))
    evader[:, 0] = 1.0
    for own in range(cells):
        for other in range(cells):
            (oy, ox), (ty, tx) = divmod(own, c), divmod(other, c)
            move = 1 if tx > ox else 2 if tx < ox else 3 if ty > oy else 4 if ty < oy else 0
            pursuer[own * cells + other, move] = 1.0
    return pursuer, evader


def test_a_cells_view_pursuit_policy_flies_against_scripted_opponents_and_exports():
    import sim
    from marl_ros.runtime import OnnxPolicy
    from policies.export import export_bundle
    from policies.games.evaluation import pursuit_matchup

    cfg = sim.make_config("pursuit", view="cells", policy_hz=1, action_mode="discrete",
                          max_steps=20)
    pursuer, evader = _chasing_tables(cfg)
    policy = GamePolicy(["drone_0", "drone_1"], [pursuer, evader],
                        {"algorithm": "minimax_q", "seed": 0, "global_step": 1,
                         "env_config": cfg.to_dict()})
    env = cfg.to_dict()
    chase = pursuit_matchup(policy, env, "policy", "policy", episodes=8, backend="fast")
    idle = pursuit_matchup(policy, env, "random", "policy", episodes=8, backend="fast")
    assert chase["capture_rate"] == 1.0  # walking to the still evader's cell catches it
    assert chase["capture_time"] < idle["capture_time"]
    with pytest.raises(ValueError, match="pursuit side"):
        pursuit_matchup(policy, env, "policy", "human", episodes=1, backend="fast")
    import tempfile

    bundle = OnnxPolicy.load(export_bundle(policy, tempfile.mkdtemp()))
    assert "setpoint" not in bundle.outputs  # a cell move's setpoint depends on the position
    assert [m["name"] for m in bundle.meta["action"]["cell_moves"]] == [
        "stay", "east", "west", "north", "south"]
    obs = np.zeros(pursuer.shape[0], np.float32)
    obs[2 * 16 + 7] = 1.0  # pursuer in cell 2 (x 2, y 0), evader in cell 7 (x 3, y 1)
    assert int(bundle.act(obs, "drone_0")[0]) == 1  # east, as the table says


def test_cli_evaluates_a_pursuit_run_against_scripted_and_another_runs_opponents(tmp_path, capsys):
    import json

    from marl_ros.cli import main

    env = ["env.view=cells", "env.policy_hz=1", "env.action_mode=discrete", "env.max_steps=10",
           "env.cells_per_side=3", "env.arena_size=3.0", "trainer.progress=false",
           "trainer.tensorboard=false"]
    for algo in ("wolf_phc", "independent_q"):
        assert main(["train", "--algo", algo, "--scenario", "pursuit", "--steps", "400",
                     "--out", str(tmp_path / algo), *env]) == 0
    assert main(["eval", str(tmp_path / "wolf_phc"), "--backend", "fast", "--episodes", "4",
                 "--opponent", str(tmp_path / "independent_q")]) == 0
    report = json.loads((tmp_path / "wolf_phc" / "eval_fast.json").read_text())
    assert report["game"] == "pursuit" and report["backend"] == "fast"
    for name in ("policy_vs_flee", "chase_vs_policy", "random_vs_random", "policy_vs_opponent",
                 "opponent_vs_policy"):
        assert 0.0 <= report["matchups"][name]["capture_rate"] <= 1.0
        assert report["matchups"][name]["episodes"] == 4
    assert "policy_vs_opponent" in capsys.readouterr().out
    assert main(["train", "--algo", "wolf_phc", "--scenario", "matching_pennies", "--steps", "200",
                 "--out", str(tmp_path / "mp"), "trainer.progress=false"]) == 0
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "mp"), "--opponent", str(tmp_path / "wolf_phc")]) != 0
    assert "--opponent plays two pursuit runs" in capsys.readouterr().err


PURSUIT_GRID = {"view": "cells", "policy_hz": 1, "action_mode": "discrete", "max_steps": 20,
                "cells_per_side": 3, "arena_size": 3.0}


def _pursuit_learner(algo: str, steps: int, seed: int) -> GamePolicy:
    return policies.train(algo, "pursuit", steps, seed=seed,
                          config={"env": PURSUIT_GRID, "trainer": {"progress": False,
                                                                   "tensorboard": False,
                                                                   "num_envs": 2}})


@pytest.mark.slow
def test_minimax_q_learns_an_evader_on_the_pursuit_grid():
    """Measured (15k steps, 32 episodes, fast backend, seeds 0/1/2): a random-walk pursuer caught
    the learned evader in 9/19/16% of episodes and a random-walk evader in 88/69/84%."""
    from policies.games.evaluation import pursuit_matchup

    for seed in (0, 1, 2):
        policy = _pursuit_learner("minimax_q", 15_000, seed)
        env = policy.metadata["env_config"]
        learned = pursuit_matchup(policy, env, "random", "policy", 32, "fast", seed)
        baseline = pursuit_matchup(policy, env, "random", "random", 32, "fast", seed)
        assert learned["capture_rate"] < 0.5 * baseline["capture_rate"], (seed, learned, baseline)


@pytest.mark.slow
def test_wolf_phc_learns_a_pursuer_on_the_pursuit_grid():
    """Measured (30k steps, 32 episodes, fast backend, seeds 0/1/2): the learned pursuer caught a
    random-walking evader after 7.6/7.7/7.6 steps on average, a random-walk pursuer after
    9.9/11.6/8.4 (mean ratio 0.76)."""
    from policies.games.evaluation import pursuit_matchup

    ratios = []
    for seed in (0, 1, 2):
        policy = _pursuit_learner("wolf_phc", 30_000, seed)
        env = policy.metadata["env_config"]
        learned = pursuit_matchup(policy, env, "policy", "random", 32, "fast", seed)
        baseline = pursuit_matchup(policy, env, "random", "random", 32, "fast", seed)
        assert learned["capture_rate"] >= baseline["capture_rate"], (seed, learned, baseline)
        ratios.append(learned["capture_time"] / baseline["capture_time"])
    assert np.mean(ratios) < 0.9, ratios


def test_team_q_exports_its_weights_and_the_graph_plays_the_social_convention(tmp_path):
    from marl_ros.runtime import OnnxPolicy
    from policies.export import export_bundle
    from policies.games.coverage_grid import CoverageGrid

    policy = policies.train("team_q", "coverage_grid", 3000, seed=0, config=QUIET)
    bundle = OnnxPolicy.load(export_bundle(policy, tmp_path / "team_q"))
    assert bundle.meta["features"]["basis"].endswith("CoverageGrid.basis")
    assert bundle.meta["features"]["joint_actions"] == 25 and not bundle.mixed
    env, steps = CoverageGrid(num_drones=2), 0
    for seed in range(5):  # the graph over the env's basis plays what the policy plays
        obs, _ = env.reset(seed=seed)
        while env.agents:
            features = np.asarray(env.basis(obs["drone_0"]), np.float32).ravel()
            expected = policy.act(obs)
            assert {a: int(bundle.act(features, a)) for a in env.agents} == expected
            obs, *_ = env.step(expected)
            steps += 1
    assert steps >= 5 * 5
    # All values tied (untrained weights): the convention's first joint action, (stay, stay).
    policy.theta[:] = 0.0
    flat = OnnxPolicy.load(export_bundle(policy, tmp_path / "tied"))
    features = np.asarray(env.basis(env.reset(seed=0)[0]["drone_0"]), np.float32).ravel()
    assert [int(flat.act(features, a)) for a in env.possible_agents] == [0, 0]
