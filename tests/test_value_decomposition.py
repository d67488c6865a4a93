"""The episodic family: IQL, VDN, QMIX, QTRAN-base, QTRAN-alt and COMA.

Mechanism tests check the property each method is built on (QMIX's monotonicity, VDN's
sum, QTRAN's factorisation conditions, COMA's zero-mean counterfactual advantage).

Learning tests use the small discrete coverage task of the on-policy tests (2 drones,
8 x 8 cells, 30 steps) and compare the trained greedy policy with the random walk on
the same 32 seeded episodes. The random walk covers 56% there. After 50k env steps
(12-35 s each on one CPU thread) the greedy policies reached, over seeds 0 and 1:
IQL 0.83/0.83, VDN 0.90/0.83, QMIX 0.77/0.72 (seed 2: 0.83), QTRAN-base 0.70/0.68,
QTRAN-alt 0.72/0.64, COMA 0.77/0.79. The asserted margin, `LEARNING_MARGIN` = 10 points,
is above the spread of a 32-episode mean (2-3 points) and below what seed 0 learns for
every method (QTRAN-base, the weakest, clears it by 3 points; QTRAN-alt fails it with
seed 1, so these budgets are not a robustness claim for QTRAN). On a one-step matrix
game whose payoff is additive (so every factorisation can represent it exactly) every
method must take the optimal joint action.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import policies
from policies.evaluation import evaluate, evaluate_random_walk
from policies.value.coma import counterfactual_advantages
from policies.value.common import td_lambda_targets
from policies.value.qmix import QMixer
from policies.value.qtran import nopt_loss, nopt_min_loss, opt_loss
from policies.value.vdn import SumMixer

torch.set_num_threads(1)

SMALL = dict(num_drones=2, width=8, height=8, cell_size=0.25, footprint=3, patch_size=5,
             summary_size=2, max_steps=30, action_mode="discrete")
QUIET = {"progress": False, "tensorboard": False}
LEARNING_MARGIN = 0.10
LEARNING_STEPS = 50_000
# The small task's own settings (policies/configs/coverage.yaml is tuned for the default
# 20 x 20 task): a faster Adam step, Polyak targets and a short epsilon schedule; QMIX
# learned more steadily over seeds with TD(0.6) and a longer schedule (0.77/0.72/0.83 over
# seeds 0-2 vs 0.83/0.56/0.70 without).
SMALL_TASK_ALGO = {"lr": 1.0e-3, "target_tau": 0.01, "updates_per_collect": 4,
                   "epsilon_anneal_steps": 20_000, "td_lambda": 0.0, "hidden_sizes": [64]}
SMALL_TASK_ALGO_OF = {"qmix": {**SMALL_TASK_ALGO, "epsilon_anneal_steps": 30_000,
                               "td_lambda": 0.6},
                      "coma": {}}
# Additive payoff r_1(u_1) + r_2(u_2): optimum (1, 2), worth 7; the runner-up is worth 5.
ADDITIVE_PAYOFF = (np.array([1.0, 4.0, 0.0])[:, None] + np.array([0.0, 1.0, 3.0])[None, :]).tolist()


# -- mechanisms ------------------------------------------------------------------------------
def test_qmix_mixer_is_monotonic_in_every_agent_q():
    torch.manual_seed(0)
    mixer = QMixer(num_agents=4, state_size=10, mixing_embed=16, hypernet_embed=32)
    states = torch.randn(256, 10) * 3
    agent_qs = (torch.randn(256, 4) * 5).requires_grad_(True)
    q_tot = mixer(agent_qs, states)
    (grads,) = torch.autograd.grad(q_tot.sum(), agent_qs)
    assert q_tot.shape == (256,)
    assert (grads >= 0).all()
    assert (grads > 0).any()
    # ... and the joint greedy action is every agent's greedy action (IGM).
    per_agent = torch.randn(8, 4, 5)
    greedy = per_agent.max(-1).values
    for i in range(4):
        for a in range(5):
            other = greedy.clone()
            other[:, i] = per_agent[:, i, a]
            assert (mixer(other, states[:8]) <= mixer(greedy, states[:8]) + 1e-5).all()


def test_vdn_is_the_sum_of_agent_qs():
    qs = torch.randn(3, 7, 4)
    assert torch.allclose(SumMixer()(qs, torch.zeros(3, 7, 2)), qs.sum(-1))


def test_qtran_losses_vanish_for_a_correct_factorisation_and_not_for_a_violated_one():
    # Two agents, two actions; Q_jt (not additive) has its optimum at (0, 0); V = 1. With
    # Q_1 = [6, 4], Q_2 = [3, 1] the gaps Q_1 + Q_2 - Q_jt + V are [[0, 0], [0, 4]]: zero at
    # the optimum, >= 0 elsewhere, and zero somewhere in every row and column (QTRAN-alt).
    q_jt = torch.tensor([[10.0, 8.0], [8.0, 2.0]])
    v = torch.tensor(1.0)
    mask = torch.ones(())

    def losses(q1: torch.Tensor, q2: torch.Tensor):
        q_sum = q1[:, None] + q2[None, :]
        greedy = (int(q1.argmax()), int(q2.argmax()))
        l_opt = opt_loss(q_sum[greedy], q_jt[greedy], v, mask)
        l_nopt = sum(nopt_loss(q_sum[i, j], q_jt[i, j], v, mask) for i in range(2) for j in range(2))
        return float(l_opt), float(l_nopt)

    correct = losses(torch.tensor([6.0, 4.0]), torch.tensor([3.0, 1.0]))  # sum - Q_jt + V >= 0
    assert correct == (0.0, 0.0)
    wrong_greedy = losses(torch.tensor([6.0, 4.0]), torch.tensor([1.0, 3.0]))  # picks (0, 1)
    assert wrong_greedy[0] > 0 and wrong_greedy[1] > 0
    underestimate = losses(torch.tensor([6.0, -3.0]), torch.tensor([3.0, 1.0]))  # (1, .) too low
    assert underestimate[0] == 0.0 and underestimate[1] > 0

    # L_nopt-min (QTRAN-alt): agent rows of Q_jt over own actions, others at the taken action.
    taken = torch.tensor([1, 1])
    counterfactual = torch.stack([q_jt[:, taken[1]], q_jt[taken[0], :]])  # (N, A)
    correct_qs = torch.tensor([[6.0, 4.0], [3.0, 1.0]])
    assert float(nopt_min_loss(correct_qs, taken, counterfactual, v, mask)) == 0.0
    wrong_qs = torch.tensor([[6.0, 0.0], [3.0, 1.0]])  # agent 1's best gap at u_1 = 1 is -4
    assert float(nopt_min_loss(wrong_qs, taken, counterfactual, v, mask)) > 0.0


def test_coma_advantages_have_zero_mean_under_the_policy():
    torch.manual_seed(0)
    q = torch.randn(5, 3, 11) * 4
    probs = torch.softmax(torch.randn(5, 3, 11), -1)
    taken = torch.randint(0, 11, (5, 3))
    adv_taken, adv_all = counterfactual_advantages(q, probs, taken)
    assert torch.allclose((probs * adv_all).sum(-1), torch.zeros(5, 3), atol=1e-5)
    assert torch.allclose(adv_taken, adv_all.gather(-1, taken[..., None]).squeeze(-1))


def test_td_lambda_targets_bootstrap_truncation_and_stop_at_termination():
    gamma = 0.9
    rewards = torch.tensor([[1.0, 2.0, 0.0], [1.0, 2.0, 3.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    terminated = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    next_v = torch.tensor([[5.0, 6.0, 0.0], [5.0, 6.0, 7.0]])
    one_step = td_lambda_targets(rewards, terminated, mask, next_v, gamma, 0.0)
    assert torch.allclose(one_step[0, :2], torch.tensor([1 + gamma * 5.0, 2.0]))
    assert torch.allclose(one_step[1], rewards[1] + gamma * next_v[1])
    monte_carlo = td_lambda_targets(rewards, terminated, mask, next_v, gamma, 1.0)
    assert monte_carlo[0, 0] == pytest.approx(1 + gamma * 2.0)  # terminated: no bootstrap
    assert monte_carlo[1, 0] == pytest.approx(1 + gamma * 2 + gamma**2 * 3 + gamma**3 * 7.0)


# -- learning ------------------------------------------------------------------------------------
@pytest.mark.parametrize("algo", policies.VALUE_ALGORITHM_NAMES)
def test_method_takes_the_optimum_of_an_additive_matrix_game(algo):
    policy = policies.train(algo, "matrix", 6_000, seed=0,
                            config={"env": {"payoff": ADDITIVE_PAYOFF}, "trainer": QUIET})
    ones = np.ones(1, np.float32)
    assert policy.act({"agent_0": ones, "agent_1": ones}) == {"agent_0": 1, "agent_1": 2}


@pytest.mark.parametrize("algo", policies.VALUE_ALGORITHM_NAMES)
def test_method_learns_small_coverage_above_random_walk(algo):
    algo_cfg = SMALL_TASK_ALGO_OF.get(algo, SMALL_TASK_ALGO)
    policy = policies.train(algo, "coverage", LEARNING_STEPS, seed=0,
                            config={"env": SMALL, "trainer": {**QUIET, "num_envs": 8},
                                    "algo": algo_cfg})
    learned = evaluate(policy, "coverage", episodes=32, seed=7, **SMALL)
    random_walk = evaluate_random_walk("coverage", episodes=32, seed=7, **SMALL)
    assert learned["coverage"] > random_walk["coverage"] + LEARNING_MARGIN, (learned, random_walk)


def test_saved_policy_loads_and_acts_identically(tmp_path):
    policy = policies.train("qmix", "coverage", 2_000, out_dir=tmp_path,
                            config={"env": SMALL, "trainer": {**QUIET, "tensorboard": True}})
    for name in ("config.yaml", "checkpoint.pt", "policy.pt", "progress.csv", "tb"):
        assert (tmp_path / name).exists(), name
    loaded = policies.load(tmp_path / "policy.pt")
    import sim

    env = sim.make_env("coverage", backend="fast", seed=1, **SMALL)
    obs, _ = env.reset(seed=1)
    for _ in range(5):
        a, b = policy.act(obs), loaded.act(obs)
        assert a == b
        obs, *_ = env.step(a)


def test_resume_continues_like_an_uninterrupted_run(tmp_path):
    cfg = {"env": SMALL, "trainer": {**QUIET, "num_envs": 4, "checkpoint_every": 2},
           "algo": {"learning_starts": 4, "batch_episodes": 4}}
    per_iteration = 4 * 30
    straight = policies.train("vdn", "coverage", 4 * per_iteration, seed=3, config=cfg,
                              out_dir=tmp_path / "straight")
    policies.train("vdn", "coverage", 2 * per_iteration, seed=3, config=cfg,
                   out_dir=tmp_path / "split")
    resumed = policies.train("vdn", "coverage", 4 * per_iteration, out_dir=tmp_path / "split",
                             resume=True)
    assert resumed.metadata["global_step"] == straight.metadata["global_step"] == 4 * per_iteration
    a, b = straight.agent.state_dict(), resumed.agent.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_trains_on_a_user_parallel_env_and_refuses_continuous_actions():
    from policies.matrix_game import MatrixGame

    policy = policies.train("qmix", lambda: MatrixGame(ADDITIVE_PAYOFF), 320, seed=0,
                            config={"trainer": {**QUIET, "num_envs": 8}})
    ones = np.ones(1, np.float32)
    actions = policy.act({"agent_0": ones, "agent_1": ones})
    assert set(actions) == {"agent_0", "agent_1"} and all(0 <= a < 3 for a in actions.values())
    with pytest.raises(TypeError, match="Discrete actions"):
        policies.train("vdn", "coverage", 100, config={"env": {**SMALL, "action_mode": "continuous"},
                                                        "trainer": QUIET})
