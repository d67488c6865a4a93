"""Team-Q (policies/games/team_q.py) and its field task, the coarse coverage grid
(policies/games/coverage_grid.py).

Mechanism tests check the basis functions on hand-made states (every feature of known
moves), the joint-action order, the grid's rewards, penalties and episode ends, the
normalised TD step on the summed Q, and the social convention: every agent, computing the
maximisation from its own copy of the observation, picks the same joint action, also
where several tie. With the tabular basis, on the QTRAN paper's cooperative matrix game
every seed must find the optimum (0, 0), and on a game with two equal optima every agent
must play the first one. The user's path: `policies.train("team_q", ...)` gives strategy
tables on a finite game and a `LinearTeamPolicy` (act, probabilities, save) on the grid.

Learning tests (`slow`) train seeds 0, 1 and 2 for 3000 steps on the 6 x 6 grid and
assert on every seed: the greedy team's mean coverage over 32 seeded episodes must beat
the random walk on the same episodes by `LEARNING_MARGIN` = 0.3 and the untrained
weights (which tie every joint action, so the convention keeps the team still: N of the
36 cells) by `UNTRAINED_MARGIN` = 0.6. Measured with these tests' helpers over seeds 0-7,
through `policies.train` and through the hand-written loop alike: 2 drones, 20 steps:
greedy 0.931-0.933, random walk 0.378-0.444 over 8 episode sets (0.410 on the tests'
set), untrained 0.056; 3 drones, 15 steps: greedy 0.963-0.964, random 0.451-0.510 (0.495),
untrained 0.083. The smallest greedy-minus-random gap, 0.45, clears the margin by 0.15.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from pettingzoo.test import parallel_api_test

import policies
from policies.games.common import GameSpec, Transition
from policies.games.coverage_grid import EAST, FEATURES, NORTH, SOUTH, STAY, WEST, CoverageGrid
from policies.games.policy import GamePolicy
from policies.games.team_q import (
    LINEAR_TEAM_FORMAT,
    LinearTeamPolicy,
    TeamQ,
    TeamQConfig,
    conventional_argmax,
)
from policies.matrix_game import DEFAULT_PAYOFF, MatrixGame

SEEDS = (0, 1, 2)
LEARNING_STEPS = 3000
LEARNING_ALGO = {"epsilon_anneal_steps": 2000}
LEARNING_MARGIN = 0.3
UNTRAINED_MARGIN = 0.6
EVAL_EPISODES = 32
QUIET = {"trainer": {"progress": False, "tensorboard": False}}
K = len(FEATURES)
F = {name: i for i, name in enumerate(FEATURES)}


def feature(phi_row: np.ndarray, drone: int, name: str) -> float:
    return float(phi_row[drone * K + F[name]])


def grid_spec(env: CoverageGrid) -> GameSpec:
    agents = env.possible_agents
    return GameSpec(agents, [env.observation_space(a).shape[0] for a in agents],
                    [int(env.action_space(a).n) for a in agents])


def feature_team_q(env: CoverageGrid, seed: int = 0, **algo) -> TeamQ:
    team = TeamQ(TeamQConfig.from_dict(algo), grid_spec(env), np.random.default_rng(seed))
    team.use_basis(env.basis, env.num_features)
    return team


def stack(values: dict, agents: list[str]) -> np.ndarray:
    return np.stack([np.asarray(values[a]) for a in agents])[None]


def train(team: TeamQ, env, steps: int, seed: int, finite: bool = False) -> None:
    """The trainer's loop, by hand: act on every agent's observation, learn the transition."""
    agents = env.possible_agents
    obs, _ = env.reset(seed=seed)
    while team.steps < steps:
        states = np.zeros((1, len(agents)), np.int64) if finite else stack(obs, agents)
        actions = team.act(states)
        obs, rewards, terms, truncs, _ = env.step({a: int(actions[0, j])
                                                   for j, a in enumerate(agents)})
        terminated = np.array([terms[agents[0]]])
        done = terminated | np.array([truncs[agents[0]]])
        next_states = states if finite else stack(obs, agents)
        team.learn(Transition(states, actions, stack(rewards, agents).astype(float),
                              next_states, terminated, done))
        if done[0]:
            obs, _ = env.reset()


def mean_coverage(env: CoverageGrid, choose, seed: int = 1000) -> float:
    """Mean final coverage over EVAL_EPISODES seeded episodes; choose(obs, rng) -> (N,)."""
    rng = np.random.default_rng(seed)
    finals = []
    for episode in range(EVAL_EPISODES):
        obs, info = env.reset(seed=seed + episode)
        while env.agents:
            actions = choose(obs, rng)
            obs, _, _, _, info = env.step({a: int(actions[j])
                                           for j, a in enumerate(env.possible_agents)})
        finals.append(info[env.possible_agents[0]]["coverage"])
    return float(np.mean(finals))


def decentralised_actions(team: TeamQ, obs: dict) -> list[int]:
    """What each drone node plays from its own copy of the observation."""
    return [team.own_action(obs[a].copy(), j) for j, a in enumerate(sorted(obs))]


def greedy_team(team: TeamQ):
    """The trained team as a `mean_coverage` policy."""
    return lambda obs, rng: decentralised_actions(team, obs)


def policy_team(policy, agents: list[str]):
    """A trained policy (each agent acting on its own observation) for `mean_coverage`."""
    return lambda obs, rng: [policy.act(obs)[a] for a in agents]


# -- the coverage grid ----------------------------------------------------------------------------
def test_grid_is_the_drone_worlds_field_in_footprint_cells():
    env = CoverageGrid()
    # CoverageConfig: 20 x 20 cells, footprint 3, penalties 0.05 at 1/400 per fine cell
    assert env.size == 6 and env.num_cells == 36
    assert env.collision_penalty == pytest.approx(0.05 * 400 / 9)
    assert env.leave_penalty == pytest.approx(0.05 * 400 / 9)


def test_grid_passes_the_parallel_api_and_reseeds_identically():
    parallel_api_test(CoverageGrid(num_drones=3), num_cycles=60)
    env = CoverageGrid(num_drones=3)
    first = env.reset(seed=7)[0]["drone_0"]
    env.reset(seed=8)
    assert np.array_equal(env.reset(seed=7)[0]["drone_0"], first)
    cells = first[: 3 * 36].reshape(3, 36).argmax(axis=1)
    assert len(set(cells.tolist())) == 3  # distinct start cells
    assert first[3 * 36:][cells].all() and first[3 * 36:].sum() == 3  # only they are covered


def test_grid_rewards_new_cells_and_penalises_sharing_and_leaving():
    env = CoverageGrid(num_drones=2, size=4, max_steps=5, collision_penalty=2.0,
                       leave_penalty=3.0)
    env.reset(options={"cells": [0, 5], "covered": np.zeros(16)})  # (0, 0) and (1, 1)
    _, r, _, _, info = env.step({"drone_0": EAST, "drone_1": NORTH})  # to (1, 0), (1, 2)
    assert r["drone_0"] == r["drone_1"] == 2.0
    assert info["drone_0"]["coverage"] == pytest.approx(4 / 16)
    obs, r, _, _, _ = env.step({"drone_0": SOUTH, "drone_1": STAY})  # drone 0 tries to leave
    assert r["drone_0"] == -3.0
    assert obs["drone_0"][:32].reshape(2, 16).argmax(axis=1).tolist() == [1, 9]
    obs, r, _, _, _ = env.step({"drone_0": NORTH, "drone_1": SOUTH})  # both into covered (1, 1)
    assert r["drone_0"] == -2.0
    assert obs["drone_0"][:32].reshape(2, 16).argmax(axis=1).tolist() == [5, 5]


def test_grid_terminates_when_covered_and_truncates_at_max_steps():
    env = CoverageGrid(num_drones=2, size=2, max_steps=3)
    env.reset(options={"cells": [0, 1], "covered": [1, 1, 0, 0]})  # the top row to go
    _, r, terms, truncs, _ = env.step({"drone_0": NORTH, "drone_1": NORTH})
    assert r["drone_0"] == 2.0 and terms["drone_0"] and not truncs["drone_0"] and not env.agents
    env.reset(seed=0)
    for _ in range(3):
        _, _, terms, truncs, _ = env.step({"drone_0": STAY, "drone_1": STAY})
    assert truncs["drone_0"] and not terms["drone_0"] and not env.agents


def test_basis_shapes_and_joint_action_order():
    for n in (2, 3):
        env = CoverageGrid(num_drones=n)
        obs = env.reset(seed=0)[0]["drone_0"]
        assert env.basis(obs).shape == (5 ** n, n * K)
        batch = np.stack([obs, env.reset(seed=1)[0]["drone_0"]])
        phi = env.basis(batch)
        assert phi.shape == (2, 5 ** n, n * K)
        assert np.array_equal(phi[0], env.basis(obs))
    # C order, agent 0 slowest: row a0 * 25 + a1 * 5 + a2
    assert env.joint_actions[1].tolist() == [0, 0, 1]
    assert env.joint_actions[5 * EAST + WEST].tolist() == [0, EAST, WEST]
    assert env.joint_actions[25 * NORTH + 5 * SOUTH + STAY].tolist() == [NORTH, SOUTH, STAY]


def test_basis_values_on_a_hand_made_state():
    env = CoverageGrid(num_drones=2, size=4)
    covered = np.zeros((4, 4), bool)  # [y, x]
    covered[0, :] = True  # the south row
    covered[1, 0] = True
    obs = env.observation_of([4, 1], covered)  # drone 0 at (0, 1), drone 1 at (1, 0)
    phi = env.basis(obs)
    row = phi[5 * SOUTH + EAST]  # drone 0 to (0, 0), drone 1 to (2, 0): both covered
    assert feature(row, 0, "bias") == 1.0 and feature(row, 1, "bias") == 1.0
    assert feature(row, 0, "new_cell") == 0.0 and feature(row, 1, "new_cell") == 0.0
    # Manhattan cells to (1, 1) or (0, 2), and to (2, 1), over the diameter 6
    assert feature(row, 0, "distance_to_uncovered") == pytest.approx(2 / 6)
    assert feature(row, 1, "distance_to_uncovered") == pytest.approx(1 / 6)
    assert feature(row, 0, "uncovered_nearby") == 0.0  # (1, 0), (0, 1) covered
    assert feature(row, 1, "uncovered_nearby") == pytest.approx(1 / 4)  # (2, 1)
    row = phi[5 * EAST + NORTH]  # both into (1, 1), uncovered
    for drone in (0, 1):
        assert feature(row, drone, "new_cell") == 1.0
        assert feature(row, drone, "shares_cell") == 1.0
        assert feature(row, drone, "leaves_field") == 0.0
        assert feature(row, drone, "distance_to_uncovered") == 0.0
        assert feature(row, drone, "uncovered_nearby") == pytest.approx(2 / 4)  # (2, 1), (1, 2)
    row = phi[5 * EAST + EAST]  # to (1, 1) and (2, 0): apart
    assert feature(row, 0, "shares_cell") == 0.0 and feature(row, 1, "shares_cell") == 0.0
    row = phi[5 * SOUTH + WEST]  # both into (0, 0), covered
    assert feature(row, 0, "shares_cell") == 1.0 and feature(row, 1, "new_cell") == 0.0
    row = phi[5 * WEST + SOUTH]  # both try to leave: they stay, apart
    assert feature(row, 0, "leaves_field") == 1.0 and feature(row, 1, "leaves_field") == 1.0
    assert feature(row, 0, "shares_cell") == 0.0
    assert feature(row, 0, "distance_to_uncovered") == pytest.approx(1 / 6)  # from (0, 1)
    # drone 0's block depends on its own move only (apart from sharing a cell)
    own = [F[name] for name in FEATURES if name != "shares_cell"]
    for a0 in range(5):
        blocks = phi[a0 * 5: a0 * 5 + 5, :K][:, own]
        assert np.all(blocks == blocks[0])
    full = env.observation_of([4, 1], np.ones(16, bool))
    assert np.all(env.basis(full)[:, [F["new_cell"], F["distance_to_uncovered"],
                                      F["uncovered_nearby"]]] == 0.0)


def test_grid_errors_name_the_fix():
    with pytest.raises(ValueError, match="num_drones must be 1, 2 or 3"):
        CoverageGrid(num_drones=4)
    with pytest.raises(ValueError, match="size must be"):
        CoverageGrid(size=1)
    with pytest.raises(ValueError, match="max_steps"):
        CoverageGrid(max_steps=0)
    with pytest.raises(ValueError, match="penalty"):
        CoverageGrid(collision_penalty=-1.0)
    with pytest.raises(ValueError, match="a state is 2 cells"):
        CoverageGrid().observation_of([0], np.zeros(36))
    with pytest.raises(ValueError, match="a state is 2 cells in 0..35"):
        CoverageGrid().reset(options={"cells": [0, 36]})


# -- the social convention ------------------------------------------------------------------------
def test_conventional_argmax_takes_the_first_of_tied_maxima():
    assert conventional_argmax(np.array([1.0, 3.0, 3.0 - 1e-12, 2.0]), 1e-9) == 1
    assert conventional_argmax(np.array([1.0, 3.0 - 1e-12, 3.0, 2.0]), 1e-9) == 1
    assert conventional_argmax(np.array([1.0, 3.0, 3.0 + 1e-6]), 1e-9) == 2
    assert conventional_argmax(np.zeros((2, 4)), 0.0).tolist() == [0, 0]


def test_every_drone_picks_the_same_joint_action_including_ties():
    env = CoverageGrid(num_drones=3)
    team = feature_team_q(env)
    obs = env.reset(seed=3)[0]
    # Untrained weights tie all 125 joint actions: the convention keeps everyone still.
    assert decentralised_actions(team, obs) == [STAY, STAY, STAY]
    # Value new cells only: drone 0 in the south-west corner has two uncovered cells next to
    # it, east and north, which tie; the others' moves do not matter to this theta.
    covered = np.zeros(36, bool)
    covered[[0, 20, 35]] = True
    corner = env.observation_of([0, 20, 35], covered)
    team.tables["theta"][F["new_cell"]] = 1.0
    joint = [team.joint_action(corner, agent_index=j).tolist() for j in range(3)]
    assert joint == [[EAST, STAY, STAY]] * 3
    assert decentralised_actions(team, {a: corner for a in env.possible_agents}) == \
        [EAST, STAY, STAY]
    # Every drone values new cells: each takes its first uncovered move in action order.
    team.tables["theta"][K + F["new_cell"]] = team.tables["theta"][2 * K + F["new_cell"]] = 1.0
    expected = [EAST, EAST, WEST]  # drone 2 at (5, 5), the north-east corner
    assert decentralised_actions(team, {a: corner for a in env.possible_agents}) == expected
    actions = team.act(np.stack([corner] * 3)[None], explore=False)
    assert actions.tolist() == [expected]


def test_exploration_is_each_agents_own_uniform_choice():
    env = CoverageGrid(num_drones=2)
    team = feature_team_q(env, epsilon_start=1.0, epsilon_end=1.0)
    obs = stack(env.reset(seed=0)[0], env.possible_agents)
    draws = np.concatenate([team.act(obs) for _ in range(400)])
    for j in range(2):
        counts = np.bincount(draws[:, j], minlength=5)
        assert counts.min() > 50  # ~80 each: uniform, not the greedy stay
    assert np.mean(draws[:, 0] == draws[:, 1]) < 0.35  # independent (~0.2), not joint


def test_learn_is_the_normalised_td_step_on_the_summed_q():
    env = CoverageGrid(num_drones=2)
    team = feature_team_q(env, lr=0.5, gamma=0.5)
    rng = np.random.default_rng(0)
    team.tables["theta"][:] = rng.normal(size=env.num_features)
    theta = team.tables["theta"].copy()
    obs = env.reset(seed=1)[0]
    s = stack(obs, env.possible_agents)
    actions = np.array([[EAST, NORTH]])
    nxt, rewards, _, _, _ = env.step({"drone_0": EAST, "drone_1": NORTH})
    s2 = stack(nxt, env.possible_agents)
    team.learn(Transition(s, actions, stack(rewards, env.possible_agents).astype(float), s2,
                          np.array([False]), np.array([False])))
    phi = env.basis(s[0, 0])[5 * EAST + NORTH]
    delta = rewards["drone_0"] + 0.5 * (env.basis(s2[0, 0]) @ theta).max() - phi @ theta
    assert np.allclose(team.tables["theta"], theta + 0.5 * delta * phi / (phi @ phi))
    assert team.steps == 1
    # alpha = 1 removes the whole TD error at (s, a)
    team = feature_team_q(env, lr=1.0)
    team.learn(Transition(s, actions, np.full((1, 2), 3.0), s2, np.array([True]),
                          np.array([True])))
    assert team.joint_values(s[0, 0])[5 * EAST + NORTH] == pytest.approx(3.0)


# -- finite games: the tabular basis --------------------------------------------------------------
def matrix_team_q(payoff, seed: int, **algo) -> tuple[TeamQ, MatrixGame]:
    env = MatrixGame(payoff)
    spec = GameSpec(env.possible_agents, [1] * len(env.possible_agents),
                    [int(env.action_space(a).n) for a in env.possible_agents])
    return TeamQ(TeamQConfig.from_dict(algo), spec, np.random.default_rng(seed)), env


@pytest.mark.parametrize("seed", SEEDS)
def test_tabular_team_q_finds_the_cooperative_matrix_games_optimum(seed):
    team, env = matrix_team_q(DEFAULT_PAYOFF, seed, epsilon_start=1.0, epsilon_end=0.2,
                              epsilon_anneal_steps=200)
    train(team, env, 1000, seed, finite=True)
    # The constant step 0.1 leaves 12 * 0.9^n of a -12 entry after n visits; exploration
    # visited each at least 48 times in seeds 0-2 (12 * 0.9^48 = 0.08).
    assert np.allclose(team.tables["q_0"][0], np.ravel(DEFAULT_PAYOFF), atol=0.5)
    assert [s.tolist() for s in team.strategies()] == [[[1.0, 0.0, 0.0]]] * 2
    assert team.act(np.zeros((1, 2), np.int64), explore=False).tolist() == [[0, 0]]


def test_tabular_team_q_plays_one_of_two_equal_optima_together():
    # Two optima worth 10: agents maximising on their own could play (0, 1) and get 0.
    payoff = [[10.0, 0.0], [0.0, 10.0]]
    team, env = matrix_team_q(payoff, 0, lr_schedule="visits", lr=1.0, epsilon_start=1.0,
                              epsilon_end=1.0)
    train(team, env, 200, 0, finite=True)
    assert team.tables["q_0"][0].tolist() == [10.0, 0.0, 0.0, 10.0]  # the tie is exact
    assert [s.tolist() for s in team.strategies()] == [[[1.0, 0.0]], [[1.0, 0.0]]]
    assert [team.own_action(0, j) for j in range(2)] == [0, 0]


# -- config and interface errors ------------------------------------------------------------------
def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="algo.tie_tolerance"):
        TeamQConfig.from_dict({"tie_tolerance": -1.0})
    with pytest.raises(ValueError, match="algo.gamma"):
        TeamQConfig.from_dict({"gamma": 1.0})
    with pytest.raises(ValueError, match="unknown TeamQConfig key 'alpha'"):
        TeamQConfig.from_dict({"alpha": 0.1})
    with pytest.raises(ValueError, match="normalized_step must be a bool"):
        TeamQConfig.from_dict({"normalized_step": "yes"})
    env = CoverageGrid()
    with pytest.raises(ValueError, match="lr_schedule='visits'"):
        feature_team_q(env, lr_schedule="visits")


def test_interface_errors_name_the_fix():
    env = CoverageGrid(num_drones=2)
    team = feature_team_q(env)
    with pytest.raises(TypeError, match="own_action"):
        team.strategies()
    obs = env.reset(seed=0)[0]
    other = env.reset(seed=1)[0]["drone_0"]
    with pytest.raises(ValueError, match="same full state"):
        team.act(np.stack([obs["drone_0"], other])[None])
    wrong = TeamQ(TeamQConfig(), grid_spec(env), np.random.default_rng(0))
    wrong.use_basis(env.basis, env.num_features + 1)
    with pytest.raises(ValueError, match="basis gave features of shape"):
        wrong.joint_action(obs["drone_0"])


class ContinuousStates(MatrixGame):
    """A game whose observation is no finite state, and no basis to read it through."""

    def observation_space(self, agent: str) -> spaces.Box:
        return spaces.Box(-5.0, 5.0, (2,), np.float32)


class BasisWithoutCount(CoverageGrid):
    num_features = None


def test_attach_env_reads_a_basis_or_needs_finite_states():
    env = CoverageGrid(num_drones=2)
    team = TeamQ(TeamQConfig(), grid_spec(env), np.random.default_rng(0))
    team.attach_env(env)
    assert team.reads_features and team.tables["theta"].shape == (env.num_features,)
    finite, game = matrix_team_q(DEFAULT_PAYOFF, 0)
    finite.attach_env(game)
    assert not finite.reads_features and finite.tables["q_0"].shape == (1, 9)
    with pytest.raises(TypeError, match="need a finite state"):
        finite.attach_env(ContinuousStates())
    with pytest.raises(TypeError, match="no integer num_features"):
        team.attach_env(BasisWithoutCount())


def test_checkpoint_restores_the_weights():
    env = CoverageGrid(num_drones=2)
    team = feature_team_q(env)
    train(team, env, 50, seed=0)
    restored = feature_team_q(env)
    restored.load_state_dict(team.state_dict())
    obs = env.reset(seed=5)[0]["drone_0"]
    assert restored.steps == 50
    assert np.array_equal(restored.joint_values(obs), team.joint_values(obs))


# -- the user's path: policies.train --------------------------------------------------------------
def test_train_on_the_matrix_game_gives_the_optimums_strategy_tables():
    policy = policies.train("team_q", lambda: MatrixGame(), 1000, seed=0,
                            config={**QUIET, "algo": {"epsilon_start": 1.0, "epsilon_end": 0.2,
                                                      "epsilon_anneal_steps": 200}})
    assert isinstance(policy, GamePolicy)
    assert [t.tolist() for t in policy.tables] == [[[1.0, 0.0, 0.0]]] * 2
    assert policy.act({"agent_0": np.ones(1), "agent_1": np.ones(1)}) == \
        {"agent_0": 0, "agent_1": 0}


def test_train_on_the_grid_gives_a_linear_team_policy_that_saves(tmp_path):
    policy = policies.train("team_q", lambda: CoverageGrid(num_drones=2), 200, seed=0,
                            config=QUIET)
    assert isinstance(policy, LinearTeamPolicy) and policy.theta.shape == (2 * K,)
    assert np.any(policy.theta != 0.0)
    env = CoverageGrid(num_drones=2)
    obs = env.reset(seed=4)[0]
    joint = policy.joint_action(obs["drone_0"])
    probs = policy.probabilities(obs)
    assert [int(probs[a].argmax()) for a in env.possible_agents] == joint.tolist()
    greedy = dict(zip(env.possible_agents, joint.tolist(), strict=True))
    assert policy.act(obs, deterministic=False) == greedy
    path = policy.save(tmp_path / "policy.pt")
    data = torch.load(path, weights_only=False)
    assert data["format"] == LINEAR_TEAM_FORMAT
    loaded = policies.load(path)
    assert isinstance(loaded, LinearTeamPolicy)
    assert loaded.act(obs) == policy.act(obs)
    with pytest.raises(KeyError, match="unknown agent 'drone_7'"):
        policy.act({"drone_7": obs["drone_0"]})


# -- learning on the coverage grid ----------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("num_drones,max_steps", [(2, 20), (3, 15)])
def test_team_q_covers_the_grid_better_than_random_and_untrained(num_drones, max_steps):
    env = CoverageGrid(num_drones=num_drones, max_steps=max_steps)
    n = num_drones
    random = mean_coverage(env, lambda obs, rng: rng.integers(0, 5, n))
    still = mean_coverage(env, greedy_team(feature_team_q(env)))
    assert still == pytest.approx(n / env.num_cells)  # the convention's all-stay
    greedy = []
    for seed in SEEDS:
        policy = policies.train("team_q", lambda: CoverageGrid(num_drones=n, max_steps=max_steps),
                                LEARNING_STEPS, seed=seed, config={**QUIET, "algo": LEARNING_ALGO})
        greedy.append(mean_coverage(env, policy_team(policy, env.possible_agents)))
    assert min(greedy) > random + LEARNING_MARGIN, (greedy, random)
    assert min(greedy) > still + UNTRAINED_MARGIN, (greedy, still)


@pytest.mark.slow
def test_team_q_learns_the_same_through_a_hand_written_loop():
    """The algorithm alone (act/learn on (E, N, D) rows), each drone acting on its own copy."""
    env = CoverageGrid(num_drones=2, max_steps=20)
    random = mean_coverage(env, lambda obs, rng: rng.integers(0, 5, 2))
    greedy = []
    for seed in SEEDS:
        team = feature_team_q(env, seed, **LEARNING_ALGO)
        train(team, env, LEARNING_STEPS, seed)
        greedy.append(mean_coverage(env, greedy_team(team)))
    assert min(greedy) > random + LEARNING_MARGIN, (greedy, random)
