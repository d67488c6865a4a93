"""PHC and WoLF-PHC (policies/games/wolf_phc.py).

- the hill-climbing step: a distribution stays one, the greedy action gains what the others
  lose, no probability goes below zero;
- one update by hand: Q-learning on the own action, the average policy, the step towards the
  greedy action; WoLF's step is delta_win while winning and delta_lose while losing, both
  decaying as delta_0 / (1 + t / delta_decay_steps);
- any number of agents, env rows learned in order, checkpoints, config errors;
- PHC against a fixed opponent climbs to the best response (fast);
- learning (slow): in self-play on matching pennies and rock-paper-scissors WoLF-PHC's
  current and average policies settle near the uniform equilibrium on every seed, while
  PHC's current policy keeps swinging across the strategy space under the same step
  schedule (its average settles); and WoLF-PHC through `policies.train`.

Thresholds come from 8 seeds each (`policies.games.plots.self_play`, the loop the README
figures use): the measured spread is in each test's comment.
"""

from __future__ import annotations

import numpy as np
import pytest

import policies
from policies.games.common import GameSpec, Transition
from policies.games.plots import distance_from_uniform, late_window, main, self_play, ternary
from policies.games.wolf_phc import PHC, PHCConfig, WoLFPHC, WoLFPHCConfig, hill_climb

QUIET = {"trainer": {"progress": False, "tensorboard": False}}


def make(cls, spec: GameSpec, seed: int = 0, **cfg):
    return cls(cls.config_class.from_dict(cfg), spec, np.random.default_rng(seed))


def one_row(states, actions, rewards, next_states, terminated=False) -> Transition:
    done = np.array([terminated])
    return Transition(np.array([states]), np.array([actions]), np.array([rewards], float),
                      np.array([next_states]), done, done)


# -- the hill-climbing step ----------------------------------------------------------------

def test_hill_climb_moves_delta_to_the_greedy_action_and_keeps_a_distribution():
    out = hill_climb(np.array([0.5, 0.3, 0.2]), greedy=0, delta=0.1)
    np.testing.assert_allclose(out, [0.6, 0.25, 0.15])  # each other action loses delta / 2
    out = hill_climb(np.array([0.2, 0.5, 0.3]), greedy=2, delta=0.4)
    np.testing.assert_allclose(out, [0.0, 0.3, 0.7])  # action 0 only has 0.2 to give
    assert out.min() >= 0.0 and out.sum() == pytest.approx(1.0)


def test_hill_climb_from_many_random_points_stays_in_the_simplex():
    rng = np.random.default_rng(0)
    for _ in range(200):
        pi = rng.dirichlet(np.ones(4) * 0.3)
        greedy, delta = int(rng.integers(4)), float(rng.uniform(0.0, 1.0))
        out = hill_climb(pi, greedy, delta)
        assert out.min() >= 0.0 and out.sum() == pytest.approx(1.0)
        assert out[greedy] >= pi[greedy]
        assert np.all(np.delete(out, greedy) <= np.delete(pi, greedy))


def test_hill_climb_of_a_single_action_is_that_action():
    np.testing.assert_array_equal(hill_climb(np.array([1.0]), 0, 0.5), [1.0])


# -- one update by hand --------------------------------------------------------------------

def test_phc_update_by_hand():
    spec = GameSpec(["a", "b"], [2, 2], [2, 3])
    algo = make(PHC, spec, lr=0.5, gamma=0.9, delta=0.1, delta_decay_steps=1000)
    algo.tables["q_0"][1] = [2.0, 4.0]  # agent 0's next state is worth max 4
    figures = algo.learn(one_row([0, 0], [1, 2], [1.0, -1.0], [1, 0]))
    # Q_0(0, 1) <- 0.5 * 0 + 0.5 * (1 + 0.9 * 4) = 2.3; Q_1(0, 2) <- 0.5 * (-1 + 0.9 * 0)
    np.testing.assert_allclose(algo.tables["q_0"][0], [0.0, 2.3])
    np.testing.assert_allclose(algo.tables["q_1"][0], [0.0, 0.0, -0.5])
    # the average policy took the uniform pi of the first visit; pi then climbed by delta
    np.testing.assert_allclose(algo.tables["pibar_0"][0], [0.5, 0.5])
    np.testing.assert_allclose(algo.tables["pi_0"][0], [0.4, 0.6])
    # agent 1: actions 0 and 1 tie at 0 (the greedy one drawn among them), the others lose delta / 2
    pi1 = algo.tables["pi_1"][0]
    assert pi1[2] == pytest.approx(1 / 3 - 0.05)
    assert sorted(pi1[:2]) == pytest.approx([1 / 3 - 0.05, 1 / 3 + 0.1])
    np.testing.assert_allclose(algo.tables["pi_0"][1], [0.5, 0.5])  # an unvisited state is untouched
    assert algo.steps == 1 and figures["charts/policy_step"] == pytest.approx(0.1)
    assert algo.strategies()[0] is algo.tables["pi_0"]
    assert algo.average_strategies()[1] is algo.tables["pibar_1"]


def test_terminal_rows_do_not_bootstrap():
    algo = make(PHC, GameSpec(["a"], [2], [2]), lr=1.0)
    algo.tables["q_0"][1] = [5.0, 5.0]
    algo.learn(one_row([0], [0], [1.0], [1], terminated=True))
    assert algo.tables["q_0"][0, 0] == pytest.approx(1.0)


def test_average_policy_is_the_mean_of_the_policies_played_at_each_visit():
    algo = make(PHC, GameSpec(["a"], [1], [3]), seed=1, lr=0.3, delta=0.2)
    played = []
    rng = np.random.default_rng(0)
    for _ in range(25):
        played.append(algo.tables["pi_0"][0].copy())
        algo.learn(one_row([0], [int(rng.integers(3))], [float(rng.normal())], [0], True))
    np.testing.assert_allclose(algo.tables["pibar_0"][0], np.mean(played, axis=0))
    assert algo.tables["state_visits_0"][0] == 25


def wolf_with(pi, pibar, q, **cfg) -> WoLFPHC:
    """One agent, one state, Q and both policies set; pibar frozen by a huge visit count."""
    algo = make(WoLFPHC, GameSpec(["a"], [1], [2]), lr=1e-9, **cfg)
    algo.tables["pi_0"][0], algo.tables["pibar_0"][0], algo.tables["q_0"][0] = pi, pibar, q
    algo.tables["state_visits_0"][0] = 1e12
    return algo


def test_wolf_learns_slowly_while_winning_and_fast_while_losing():
    # Q prefers action 0. pi plays it more than pibar: winning, the step is delta_win.
    algo = wolf_with([0.7, 0.3], [0.5, 0.5], [1.0, 0.0], delta_win=0.01, delta_lose=0.04)
    algo.learn(one_row([0], [0], [1.0], [0], True))
    np.testing.assert_allclose(algo.tables["pi_0"][0], [0.71, 0.29])
    # pi plays it less than pibar: losing, the step is delta_lose.
    algo = wolf_with([0.3, 0.7], [0.5, 0.5], [1.0, 0.0], delta_win=0.01, delta_lose=0.04)
    algo.learn(one_row([0], [0], [1.0], [0], True))
    np.testing.assert_allclose(algo.tables["pi_0"][0], [0.34, 0.66])


def test_policy_steps_decay_hyperbolically():
    algo = wolf_with([0.3, 0.7], [0.5, 0.5], [1.0, 0.0], delta_win=0.01, delta_lose=0.04,
                     delta_decay_steps=500)
    algo.steps = 1500  # delta_lose / (1 + 1500 / 500) = 0.01
    algo.learn(one_row([0], [0], [1.0], [0], True))
    np.testing.assert_allclose(algo.tables["pi_0"][0], [0.31, 0.69])
    phc = make(PHC, GameSpec(["a"], [1], [2]), delta=0.2, delta_decay_steps=100)
    phc.steps = 100
    assert phc.policy_step(0, 0) == pytest.approx(0.1)


def test_any_number_of_agents_and_rows_learned_in_order():
    spec = GameSpec(["a", "b", "c"], [1, 2, 3], [2, 3, 4], num_envs=2)
    algo = make(WoLFPHC, spec)
    states = np.array([[0, 1, 2], [0, 0, 1]])
    actions = algo.act(states)
    assert actions.shape == (2, 3) and np.all(actions < np.array(spec.action_sizes))
    done = np.array([True, False])
    algo.learn(Transition(states, actions, np.ones((2, 3)), states, done, done))
    assert algo.steps == 2
    for i, table in enumerate(algo.strategies()):
        assert table.shape == (spec.state_sizes[i], spec.action_sizes[i])
        np.testing.assert_allclose(table.sum(axis=1), 1.0)
    assert algo.tables["state_visits_0"][0] == 2  # both rows were agent 0's state 0, in turn


def test_checkpoint_restores_the_learner():
    spec = GameSpec(["a", "b"], [1, 1], [2, 2])
    algo = make(WoLFPHC, spec)
    algo.learn(one_row([0, 0], [0, 1], [1.0, -1.0], [0, 0], True))
    other = make(WoLFPHC, spec)
    other.load_state_dict(algo.state_dict())
    assert other.steps == 1
    for name, table in algo.tables.items():
        np.testing.assert_array_equal(other.tables[name], table)


@pytest.mark.parametrize(("cls", "cfg", "key"), [
    (WoLFPHCConfig, {"delta_win": 0.05, "delta_lose": 0.05}, "delta_lose"),
    (WoLFPHCConfig, {"delta_win": 0.04, "delta_lose": 0.01}, "delta_lose"),
    (WoLFPHCConfig, {"delta_win": 0.0}, "delta_win"),
    (WoLFPHCConfig, {"delta_lose": 1.5}, "delta_lose"),
    (PHCConfig, {"delta": 0.0}, "delta"),
    (PHCConfig, {"delta_decay_steps": 0}, "delta_decay_steps"),
    (PHCConfig, {"lr": 0.0}, "lr"),
    (PHCConfig, {"delta_win": 0.01}, "delta_win"),  # a WoLF key given to PHC
    (WoLFPHCConfig, {"delta": 0.01}, "delta"),  # PHC's one step given to WoLF
])
def test_config_errors_name_the_key(cls, cfg, key):
    with pytest.raises(ValueError, match=key):
        cls.from_dict(cfg)


# -- the README figures -------------------------------------------------------------------

def test_plots_command_writes_both_figures(tmp_path, capsys):
    main(["--out", str(tmp_path), "--steps", "200"])
    for name in ("wolf_vs_phc_matching_pennies.png", "wolf_vs_phc_rps.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) < 150_000
    assert "WoLF-PHC" in capsys.readouterr().out


def test_ternary_projection_and_self_play_records():
    corners = ternary(np.eye(3))
    np.testing.assert_allclose(corners, [[0, 0], [1, 0], [0.5, np.sqrt(3) / 2]])
    np.testing.assert_allclose(ternary(np.full(3, 1 / 3)), corners.mean(axis=0))  # the centroid
    t = self_play("phc", "rock_paper_scissors", 300, start=[[0.6, 0.2, 0.2], [0.2, 0.2, 0.6]],
                  record_every=100)
    np.testing.assert_array_equal(t.steps, [0, 100, 200, 300])
    assert t.policy.shape == t.average.shape == (4, 2, 3)
    np.testing.assert_allclose(t.policy[0], [[0.6, 0.2, 0.2], [0.2, 0.2, 0.6]])
    np.testing.assert_allclose(t.policy.sum(axis=-1), 1.0)
    with pytest.raises(ValueError, match="unknown matrix game"):
        self_play("phc", "chess", 10)


# -- learning ------------------------------------------------------------------------------

def test_phc_against_a_fixed_opponent_climbs_to_the_best_response():
    # Matching pennies, agent 0 (the matcher) alone against an opponent playing heads 30%:
    # the best response is pure tails. Measured: P(tails) = 1.0 within ~40 steps on seeds
    # 0-7 and there to 2000. PHC needs no opponent model to be rational.
    payoff = np.array([[1.0, -1.0], [-1.0, 1.0]])
    for seed in range(4):
        algo = make(PHC, GameSpec(["matcher"], [1], [2]), seed=seed)
        rng = np.random.default_rng(100 + seed)
        for _ in range(1000):
            a = int(algo.act(np.zeros((1, 1), np.int64))[0, 0])
            o = int(rng.random() >= 0.3)  # 0 heads, 1 tails
            algo.learn(one_row([0], [a], [payoff[a, o]], [0], True))
        assert algo.strategies()[0][0, 1] > 0.95, seed


SELF_PLAY_SEEDS = range(4)


@pytest.mark.slow
@pytest.mark.parametrize(("game", "steps"), [("matching_pennies", 30_000),
                                             ("rock_paper_scissors", 50_000)])
def test_wolf_phc_self_play_settles_at_the_mixed_equilibrium(game, steps):
    # Over the last fifth of the run, max over agents and actions of |pi - uniform|,
    # seeds 0-7: MP mean 0.010-0.020, max 0.033-0.059; RPS mean 0.015-0.037, max
    # 0.030-0.061. Final |pibar - uniform|: MP <= 0.019, RPS <= 0.035.
    for seed in SELF_PLAY_SEEDS:
        t = self_play("wolf_phc", game, steps, seed, record_every=50)
        late = distance_from_uniform(t.policy[late_window(t)])
        assert late.mean() < 0.08 and late.max() < 0.15, (seed, late.mean(), late.max())
        assert distance_from_uniform(t.average[-1]) < 0.08, seed


@pytest.mark.slow
@pytest.mark.parametrize(("game", "steps"), [("matching_pennies", 30_000),
                                             ("rock_paper_scissors", 50_000)])
def test_phc_self_play_keeps_orbiting_while_its_average_settles(game, steps):
    # Same runs, window and step schedule as WoLF's, seeds 0-7: PHC's pi stays far from
    # uniform (mean 0.34-0.45 MP, 0.33-0.38 RPS) and some action's probability swings
    # across most of [0, 1] (range 0.85-1.0 MP, 0.71-0.82 RPS) while its average policy is
    # near uniform (<= 0.030 MP, <= 0.032 RPS): the cycling is in what it plays.
    for seed in SELF_PLAY_SEEDS:
        t = self_play("phc", game, steps, seed, record_every=50)
        window = t.policy[late_window(t)]
        assert distance_from_uniform(window).mean() > 0.2, seed
        assert (window.max(axis=0) - window.min(axis=0)).max() > 0.5, seed
        assert distance_from_uniform(t.average[-1]) < 0.1, seed


@pytest.mark.slow
def test_wolf_phc_through_policies_train_plays_fifty_fifty():
    # The user's path: the named game, the trainer, the returned policy. Measured final
    # |P(heads) - 1/2| after 20000 steps, both agents, seeds 0-3: 0.005-0.057.
    for seed in (0, 1):
        policy = policies.train("wolf_phc", "matching_pennies", 20_000, seed=seed, config=QUIET)
        probs = policy.probabilities({a: np.ones(1, np.float32) for a in policy.agents})
        for agent, p in probs.items():
            assert abs(p[0] - 0.5) < 0.15, (seed, agent, p)
