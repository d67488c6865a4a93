"""Stage-game solvers against known answers of classic matrix games, the general-sum
matrix game, and Minimax-Q, Nash-Q and Friend-or-Foe Q learning those games."""

import numpy as np
import pytest
from gymnasium import spaces

import policies
from policies.games import GAME_ALGORITHMS
from policies.games.common import GameSpec, Transition
from policies.games.stage import friend_or_foe, maxmin, nash_equilibria, select_nash
from policies.matrix_game import MATRIX_GAMES, MatrixGame

SEEDS = (0, 1, 2)


def tables(game: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(MATRIX_GAMES[game], np.float64)
    return a, b


def is_equilibrium(a: np.ndarray, b: np.ndarray, p: np.ndarray, q: np.ndarray) -> bool:
    """No player gains by a pure deviation (enough: a mixed one is an average of pure ones)."""
    return bool(np.all(a @ q <= p @ a @ q + 1e-6) and np.all(p @ b <= p @ b @ q + 1e-6))


# -- maxmin --------------------------------------------------------------------------------

def test_maxmin_of_matching_pennies_is_fifty_fifty_with_value_zero():
    strategy, value = maxmin(tables("matching_pennies")[0])
    np.testing.assert_allclose(strategy, [0.5, 0.5], atol=1e-9)
    assert value == pytest.approx(0.0, abs=1e-9)


def test_maxmin_of_rock_paper_scissors_is_uniform_with_value_zero():
    strategy, value = maxmin(tables("rock_paper_scissors")[0])
    np.testing.assert_allclose(strategy, np.full(3, 1 / 3), atol=1e-9)
    assert value == pytest.approx(0.0, abs=1e-9)


def test_maxmin_of_a_game_with_a_saddle_point_is_pure():
    # Row 1 guarantees 2 (its minimum) and column 1 holds the row player to 2: a saddle point.
    strategy, value = maxmin([[3.0, 1.0, 4.0], [5.0, 2.0, 6.0]])
    np.testing.assert_array_equal(strategy, [0.0, 1.0])
    assert value == pytest.approx(2.0)


def test_maxmin_strategy_is_a_distribution_and_guarantees_the_value():
    payoff = np.random.default_rng(0).normal(size=(4, 5))
    strategy, value = maxmin(payoff)
    assert np.all(strategy >= 0) and strategy.sum() == pytest.approx(1.0)
    assert (strategy @ payoff).min() == pytest.approx(value)
    # No pure row does better against every column than the max-min value.
    assert payoff.min(axis=1).max() <= value + 1e-9


# -- Nash equilibria -----------------------------------------------------------------------

def test_prisoners_dilemma_has_only_mutual_defection():
    found = nash_equilibria(*tables("prisoners_dilemma"))
    assert len(found) == 1
    np.testing.assert_array_equal(found[0][0], [0.0, 1.0])
    np.testing.assert_array_equal(found[0][1], [0.0, 1.0])


def test_battle_of_the_sexes_has_two_pure_and_one_mixed_equilibrium():
    a, b = tables("battle_of_the_sexes")
    found = {tuple(np.round(np.concatenate([p, q]), 6)) for p, q in nash_equilibria(a, b)}
    assert found == {(1.0, 0.0, 1.0, 0.0), (0.0, 1.0, 0.0, 1.0), (0.6, 0.4, 0.4, 0.6)}
    assert all(is_equilibrium(a, b, p, q) for p, q in nash_equilibria(a, b))


def test_coordination_game_has_three_equilibria():
    a, b = tables("coordination")
    found = nash_equilibria(a, b)
    assert len(found) == 3
    mixed = [(p, q) for p, q in found if 0 < p[0] < 1]
    np.testing.assert_allclose(mixed[0][0], [1 / 3, 2 / 3])
    np.testing.assert_allclose(mixed[0][1], [1 / 3, 2 / 3])


def test_degenerate_game_still_yields_an_equilibrium():
    # All-zero tables (a learner that has seen nothing): every profile is an equilibrium.
    a = np.zeros((3, 3))
    found = nash_equilibria(a, a)
    assert found and all(is_equilibrium(a, a, p, q) for p, q in found)


def test_select_nash_takes_the_most_efficient_equilibrium_and_is_deterministic():
    a, b = tables("coordination")
    p, q, v1, v2 = select_nash(a, b)
    np.testing.assert_array_equal(p, [1.0, 0.0])
    np.testing.assert_array_equal(q, [1.0, 0.0])
    assert (v1, v2) == (10.0, 10.0)
    # Battle of the sexes: both pure equilibria are equally efficient; the row player's
    # preference breaks the tie, the same answer every call.
    a, b = tables("battle_of_the_sexes")
    picks = {tuple(np.concatenate(select_nash(a, b)[:2])) for _ in range(3)}
    assert picks == {(1.0, 0.0, 1.0, 0.0)}


@pytest.mark.parametrize("game", ["coordination", "prisoners_dilemma", "matching_pennies"])
def test_select_nash_is_the_same_equilibrium_from_the_column_players_view(game):
    """Where efficiency decides, the column player solving the game as the row player
    (tables swapped and transposed) selects the same equilibrium."""
    a, b = tables(game)
    p, q, v1, v2 = select_nash(a, b)
    q_, p_, v2_, v1_ = select_nash(b.T, a.T)
    np.testing.assert_allclose(np.concatenate([p, q, [v1, v2]]), np.concatenate([p_, q_, [v1_, v2_]]))


# -- Friend-or-Foe --------------------------------------------------------------------------

def test_friends_only_value_is_the_largest_entry_first_in_c_order():
    q = np.random.default_rng(1).normal(size=(2, 3, 2))
    q[1, 2, 0] = q[0, 1, 1] = q.max() + 1.0  # a tie: (0, 1, 1) comes first in C order
    strategy, value = friend_or_foe(q, [0, 1, 2], [])
    assert value == pytest.approx(q.max())
    assert strategy.shape == (2, 3, 2) and strategy[0, 1, 1] == 1.0 and strategy.sum() == 1.0


def test_foes_only_value_is_the_maxmin_against_the_foes_joint_action():
    q = np.random.default_rng(2).normal(size=(3, 2, 2))
    strategy, value = friend_or_foe(q, [0], [1, 2])
    expected_strategy, expected_value = maxmin(q.reshape(3, 4))
    assert value == pytest.approx(expected_value)
    np.testing.assert_allclose(strategy, expected_strategy, atol=1e-7)
    # On matching pennies the foe value is the game's value, 0, at 50/50.
    strategy, value = friend_or_foe(tables("matching_pennies")[0], [0], [1])
    np.testing.assert_allclose(strategy, [0.5, 0.5], atol=1e-9)
    assert value == pytest.approx(0.0, abs=1e-9)


def test_friend_or_foe_refuses_axes_that_do_not_split_the_payoff():
    with pytest.raises(ValueError, match="split the payoff"):
        friend_or_foe(np.zeros((2, 2, 2)), [0], [1])


# -- the general-sum matrix game ------------------------------------------------------------

def test_general_sum_matrix_game_pays_each_agent_its_own_table():
    env = MatrixGame(game="prisoners_dilemma")
    assert env.possible_agents == ["agent_0", "agent_1"]
    assert env.action_space("agent_0").n == 2 and env.observation_space("agent_0").shape == (1,)
    env.reset(seed=0)
    _, rewards, terms, _, _ = env.step({"agent_0": 0, "agent_1": 1})  # cooperate vs defect
    assert rewards == {"agent_0": 0.0, "agent_1": 5.0} and all(terms.values())


def test_matrix_game_stays_cooperative_without_the_flag_and_repeats_max_steps():
    env = MatrixGame(np.arange(8.0).reshape(2, 2, 2).tolist(), max_steps=2)  # 3 agents
    obs, _ = env.reset(seed=0)
    assert len(env.possible_agents) == 3
    np.testing.assert_array_equal(obs["agent_0"], [1.0])
    _, rewards, terms, _, _ = env.step({"agent_0": 1, "agent_1": 0, "agent_2": 1})
    assert set(rewards.values()) == {5.0} and not any(terms.values())
    _, _, terms, _, _ = env.step({"agent_0": 0, "agent_1": 0, "agent_2": 0})
    assert all(terms.values()) and env.agents == []


def test_matrix_game_refuses_a_general_sum_payoff_of_the_wrong_shape_and_unknown_names():
    with pytest.raises(ValueError, match="one table per agent"):
        MatrixGame([[1.0, 0.0], [0.0, 1.0]], general_sum=True)
    with pytest.raises(ValueError, match="matching_pennies"):
        MatrixGame(game="chicken")


# -- learning -------------------------------------------------------------------------------

def make_learner(algo: str, env: MatrixGame, seed: int, **config):
    cls = GAME_ALGORITHMS[algo]
    agents = env.possible_agents
    spec = GameSpec(list(agents), [1] * len(agents), [env.action_space(a).n for a in agents])
    return cls(cls.config_class.from_dict(config), spec, np.random.default_rng(seed))


def learn_matrix_game(algo: str, game: str, steps: int, seed: int, max_steps: int = 1, **config):
    """Online learning from one trajectory of the repeated game (the single state is 0)."""
    env = MatrixGame(game=game, max_steps=max_steps)
    learner = make_learner(algo, env, seed, **config)
    agents = env.possible_agents
    states = np.zeros((1, len(agents)), np.int64)
    env.reset(seed=seed)
    for _ in range(steps):
        actions = learner.act(states)
        _, rewards, terms, _, _ = env.step({a: int(actions[0, i]) for i, a in enumerate(agents)})
        done = np.array([terms[agents[0]]])
        learner.learn(Transition(states, actions, np.array([[rewards[a] for a in agents]]),
                                 states, done, done))
        if done[0]:
            env.reset()
    assert learner.steps == steps
    return learner


@pytest.mark.slow
@pytest.mark.parametrize("game", ["matching_pennies", "rock_paper_scissors"])
def test_minimax_q_learns_the_uniform_equilibrium_of_zero_sum_games(game):
    """Repeated 10 times an episode, so V(s) is bootstrapped: Q = r + gamma V, and V falls
    from its initial 1 to the game's value 0. Measured over 5 seeds at 300 steps: strategies
    within 0.0022 of uniform, |V| <= 0.009 (rock-paper-scissors; matching pennies exact)."""
    for seed in SEEDS:
        learner = learn_matrix_game("minimax_q", game, 300, seed, max_steps=10)
        for i, pi in enumerate(learner.strategies()):
            np.testing.assert_allclose(pi[0], np.full(pi.shape[1], 1 / pi.shape[1]), atol=0.02,
                                       err_msg=f"seed {seed} agent {i}")
            assert abs(learner.tables[f"v_{i}"][0]) < 0.05, (seed, i, learner.tables[f"v_{i}"])


ONE = np.ones(1, np.float32)  # the matrix game's single observation
QUIET = {"progress": False, "tensorboard": False}


def trained_strategies(algo: str, game: str, seed: int, steps: int = 300) -> list[np.ndarray]:
    """Each agent's mixed strategy after `policies.train` on the named one-shot game."""
    policy = policies.train(algo, game, steps, seed=seed, config={"trainer": QUIET})
    probs = policy.probabilities({"agent_0": ONE, "agent_1": ONE})
    return [probs["agent_0"], probs["agent_1"]]


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["minimax_q", "foe_q"])
def test_trained_zero_sum_learners_play_fifty_fifty_in_matching_pennies(algo):
    for seed in SEEDS:
        for pi in trained_strategies(algo, "matching_pennies", seed):
            np.testing.assert_allclose(pi, [0.5, 0.5], atol=0.02, err_msg=f"seed {seed}")


@pytest.mark.slow
def test_trained_nash_q_defects_in_the_prisoners_dilemma():
    for seed in SEEDS:
        assert [int(pi.argmax()) for pi in trained_strategies("nash_q", "prisoners_dilemma", seed)] \
            == [1, 1], seed


@pytest.mark.slow
def test_trained_friend_q_coordinates_on_the_optimum_of_the_coordination_game():
    """Both friends hold the same table and take its first maximum: the joint action paying 10."""
    for seed in SEEDS:
        policy = policies.train("friend_q", "coordination", 300, seed=seed, config={"trainer": QUIET})
        assert policy.act({"agent_0": ONE, "agent_1": ONE}) == {"agent_0": 0, "agent_1": 0}, seed


@pytest.mark.slow
def test_nash_q_plays_and_backs_up_one_equilibrium_of_the_battle_of_the_sexes():
    a, b = tables("battle_of_the_sexes")
    for seed in SEEDS:
        p, q = trained_strategies("nash_q", "battle_of_the_sexes", seed)
        assert is_equilibrium(a, b, p, q), (seed, p, q)
        learner = learn_matrix_game("nash_q", "battle_of_the_sexes", 300, seed)
        p, q = (pi[0] for pi in learner.strategies())
        assert is_equilibrium(a, b, p, q), (seed, p, q)
        # Both learners back up the value of the equilibrium they play (the same one).
        for i in range(2):
            values = learner.tables[f"nash_value_{i}"][:, 0]
            np.testing.assert_allclose(values, [p @ a @ q, p @ b @ q], err_msg=f"seed {seed}")


# -- errors a user can meet -------------------------------------------------------------------

@pytest.mark.parametrize("algo", ["minimax_q", "nash_q"])
def test_two_player_learners_refuse_three_agents(algo):
    env = MatrixGame(np.zeros((2, 2, 2)).tolist())  # cooperative, 3 agents
    with pytest.raises(ValueError, match="two-player"):
        make_learner(algo, env, 0)


def test_friend_or_foe_refuses_friends_that_name_the_agent_itself():
    with pytest.raises(ValueError, match="algo.friends"):
        make_learner("foe_q", MatrixGame(game="coordination"), 0, friends=[[0], [0]])


def test_game_learners_refuse_box_actions():
    class BoxActions(MatrixGame):
        def action_space(self, agent: str) -> spaces.Box:
            return spaces.Box(-1.0, 1.0, (2,), np.float32)

    with pytest.raises(TypeError, match="need Discrete actions"):
        policies.train("minimax_q", lambda: BoxActions(game="matching_pennies"), 100, seed=0,
                       config={"trainer": QUIET})


def test_friend_q_agents_break_ties_between_optima_the_same_way():
    """Two optimal joint actions, (0, 1) and (1, 0): each friend takes the first in agent
    order, so both play their part of (0, 1) instead of (0, 0) or (1, 1), which pay nothing."""
    from policies.games.common import GameSpec, Transition
    from policies.games.ffq import FriendOrFoeQConfig, FriendQ

    spec = GameSpec(["a", "b"], [1, 1], [2, 2])
    algo = FriendQ(FriendOrFoeQConfig(lr_schedule="constant", lr=1.0), spec,
                   np.random.default_rng(0))
    for joint, reward in (((0, 1), 1.0), ((1, 0), 1.0), ((0, 0), 0.0), ((1, 1), 0.0)):
        algo.learn(Transition(states=np.zeros((1, 2), np.int64), actions=np.array([joint]),
                              rewards=np.full((1, 2), reward), next_states=np.zeros((1, 2), np.int64),
                              terminated=np.ones(1, bool), done=np.ones(1, bool)))
    greedy = [int(table[0].argmax()) for table in algo.strategies()]
    assert greedy == [0, 1]
