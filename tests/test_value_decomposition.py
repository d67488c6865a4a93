"""The episodic family: IQL, VDN, QMIX, QTRAN-base, QTRAN-alt and COMA.

Mechanism tests check the property each method is built on (QMIX's monotonicity, VDN's
sum, QTRAN's factorisation conditions and masking, COMA's zero-mean counterfactual
advantage, critic blind to the acting agent's own action and behaviour-policy gradient)
and the shared machinery (target updates, double-Q targets, TD(lambda)).

Learning tests (`slow`) train seeds 0, 1 and 2 and assert over all of them, never on one
seed's trajectory (which differs between CPUs and BLAS kernels). On the small discrete
coverage task (2 drones, 8 x 8 cells, 30 steps; 50k env steps) the mean greedy coverage
of the three seeds must beat the random walk on the same 32 seeded episodes (56%) by
`LEARNING_MARGIN` = 10 points (IQL, VDN, QMIX, COMA; the weakest mean measured, QMIX's
0.760, clears it by 10 points on three floating-point paths; the README's Tests section has
every per-seed figure). On matrix games every seed must reach the known answer: the
optimum of an additive game for every method, (0, 0) of the QTRAN paper's non-monotonic
game for QTRAN-base and QTRAN-alt, and for VDN and QMIX a Q_tot that provably cannot
represent that game.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import policies
from policies.config import resolve_config
from policies.evaluation import evaluate, evaluate_random_walk
from policies.value import coma as coma_module
from policies.value.coma import CounterfactualCritic, counterfactual_advantages
from policies.value.common import (
    agent_inputs,
    normalized_batch,
    sequence_inputs,
    td_lambda_targets,
)
from policies.value.qmix import QMixer
from policies.value.qtran import nopt_loss, nopt_min_loss, opt_loss
from policies.value.trainer import EpisodicTrainer
from policies.value.vdn import SumMixer

torch.set_num_threads(1)

SMALL = dict(num_drones=2, width=8, height=8, cell_size=0.25, footprint=3, patch_size=5,
             summary_size=2, max_steps=30, action_mode="discrete")
QUIET = {"progress": False, "tensorboard": False}
SEEDS = (0, 1, 2)  # learning tests assert over these, never one seed's trajectory
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
# QTRAN is left out of the small coverage test: over seeds 0-2 and two floating-point paths
# its greedy coverage ranged from 0.28 to 0.74 (means 0.50-0.66 against the random walk's
# 0.56; README), so no margin would hold on every machine. Its learning is tested on the
# matrix games below, where every seed reaches the known answer.
COVERAGE_LEARNERS = [a for a in policies.VALUE_ALGORITHM_NAMES if not a.startswith("qtran")]
# Additive payoff r_1(u_1) + r_2(u_2): optimum (1, 2), worth 7; the runner-up is worth 5.
ADDITIVE_PAYOFF = (np.array([1.0, 4.0, 0.0])[:, None] + np.array([0.0, 1.0, 3.0])[None, :]).tolist()
# The QTRAN paper's non-monotonic game, learned from uniform exploration over joint actions
# (as in the paper), so every method sees the same data and only the factorisation differs.
NON_MONOTONIC_PAYOFF = [[8.0, -12.0, -12.0], [-12.0, 0.0, 0.0], [-12.0, 0.0, 0.0]]
NON_MONOTONIC_ALGO = {"epsilon_start": 1.0, "epsilon_finish": 1.0, "updates_per_collect": 4}
NON_MONOTONIC_STEPS = 20_000  # QTRAN-base found (0, 0) on 3-4 of 5 seeds after 6-10k, 5 of 5 after 20k


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


def episodic_trainer(algo: str, scenario: str = "matrix", **algo_cfg) -> EpisodicTrainer:
    """A trainer whose algorithm, buffer and environments the mechanism tests drive by hand."""
    config = {"trainer": {**QUIET, "num_envs": 4}, "algo": algo_cfg}
    if scenario == "coverage":
        config["env"] = SMALL
    return EpisodicTrainer(resolve_config(algo, scenario, config), scenario)


def sampled_batch(trainer: EpisodicTrainer, episodes: int = 4) -> dict[str, torch.Tensor]:
    trainer.collect()
    return normalized_batch(trainer.buffer.latest(episodes), trainer.obs_norm, trainer.state_norm)


def test_target_networks_follow_polyak_averaging_or_periodic_copies():
    polyak = episodic_trainer("qmix", target_tau=0.25).algo
    batch = sampled_batch(episodic_trainer("qmix"))
    before = copy.deepcopy(polyak.target_agent.state_dict())
    polyak.update(batch)
    online, target = polyak.agent.state_dict(), polyak.target_agent.state_dict()
    for k in target:  # target <- (1 - tau) target + tau online, after the gradient step
        assert torch.allclose(target[k], 0.75 * before[k] + 0.25 * online[k], atol=1e-6), k
    assert any(not torch.equal(target[k], before[k]) for k in target)

    hard = episodic_trainer("qmix", target_tau=0.0, target_update_interval=3).algo
    initial = copy.deepcopy(hard.target_mixer.state_dict())
    for step in range(1, 4):
        hard.update(batch)
        target, online = hard.target_mixer.state_dict(), hard.mixer.state_dict()
        if step < 3:  # untouched between copies, while the online mixer moves
            assert all(torch.equal(target[k], initial[k]) for k in target)
            assert any(not torch.equal(online[k], initial[k]) for k in online)
        else:
            assert all(torch.equal(target[k], online[k]) for k in target)


@pytest.mark.parametrize("double_q", [True, False])
def test_q_targets_value_the_next_action_the_online_network_picks(double_q):
    trainer = episodic_trainer("vdn", "coverage", double_q=double_q)
    algo = trainer.algo
    batch = sampled_batch(trainer, 2)
    with torch.no_grad():  # make the target network disagree with the online one
        for p in algo.target_agent.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    _, _, _, next_q = algo.chosen_and_next(batch)
    inputs = sequence_inputs(batch, algo.num_actions, algo.cfg)
    with torch.no_grad():
        online = algo.agent.unroll(inputs)[0][:, 1:]
        target = algo.target_agent.unroll(inputs)[0][:, 1:]
    online_pick = target.gather(-1, online.argmax(-1, keepdim=True)).squeeze(-1)
    target_max = target.max(-1).values
    assert not torch.allclose(online_pick, target_max)  # the two rules differ on this batch
    assert torch.allclose(next_q, online_pick if double_q else target_max)


def test_coma_critic_does_not_see_the_acting_agents_own_action():
    torch.manual_seed(0)
    n, a = 3, 4
    critic = CounterfactualCritic(state_size=5, obs_size=2, num_agents=n, num_actions=a, hidden=32)
    states, obs = torch.randn(6, 5), torch.randn(6, n, 2)
    actions, last = torch.randint(0, a, (6, n)), torch.randint(0, a, (6, n))
    out = critic(states, obs, actions, last)
    for agent in range(n):
        changed = actions.clone()
        changed[:, agent] = (changed[:, agent] + 1) % a
        moved = critic(states, obs, changed, last)
        assert torch.equal(moved[:, agent], out[:, agent])  # its own row ignores its action
        others = [b for b in range(n) if b != agent]
        assert not torch.allclose(moved[:, others], out[:, others])  # the others' rows see it


def test_coma_learns_from_the_distribution_it_explores_with(monkeypatch):
    trainer = episodic_trainer("coma", epsilon_start=0.5, epsilon_finish=0.5)
    algo = trainer.algo
    with torch.no_grad():  # a peaked actor, so its softmax is far from the mixture
        algo.agent.head.weight.mul_(50.0)
        algo.agent.head.bias.copy_(torch.tensor([6.0, 0.0, -6.0]))
    batch = sampled_batch(trainer)
    assert algo.epsilon == 0.5
    seen = {}
    original = coma_module.counterfactual_advantages

    def recording(q, probs, taken):
        seen["probs"] = probs
        return original(q, probs, taken)

    monkeypatch.setattr(coma_module, "counterfactual_advantages", recording)
    with torch.no_grad():
        logits, _ = algo.agent.unroll(sequence_inputs(batch, algo.num_actions, algo.cfg))
    algo.update(batch)
    behaviour = algo.behaviour_probs(logits, 0.5)[:, :-1]
    softmax = torch.softmax(logits, -1)[:, :-1]
    assert torch.allclose(seen["probs"], behaviour, atol=1e-6)
    assert not torch.allclose(seen["probs"], softmax, atol=1e-2)
    assert float(seen["probs"].min()) >= 0.5 / 3 - 1e-6  # every action as likely as exploration


@pytest.mark.parametrize("algo", ["qtran_base", "qtran_alt"])
def test_qtran_joint_loss_trains_the_shared_agent_layers_unless_detached(algo):
    def agent_moves(**algo_cfg) -> bool:  # one update on L_td alone (factorisation terms off)
        trainer = episodic_trainer(algo, lambda_opt=0.0, lambda_nopt=0.0, **algo_cfg)
        before = copy.deepcopy(trainer.algo.agent.state_dict())
        trainer.algo.update(sampled_batch(trainer))
        after = trainer.algo.agent.state_dict()
        return any(not torch.equal(after[k], before[k]) for k in before)

    assert agent_moves()  # the paper's sharing: Q_jt's TD loss reaches the agents' GRU
    assert not agent_moves(detach_joint_inputs=True)


def test_qtran_alt_min_leaves_out_actions_an_agent_does_not_have():
    # Agent 0 has 2 actions, agent 1 has 3 (padded to 3); masked outputs are -1e9.
    available = torch.tensor([[True, True, False], [True, True, True]])
    agent_qs = torch.tensor([[2.0, 1.0, -1e9], [0.5, 1.5, 1.0]])
    taken = torch.tensor([0, 1])
    q_jt = torch.tensor([[4.0, 4.5, 0.0], [3.0, 4.0, 2.5]])
    v, mask = torch.tensor(0.0), torch.ones(())
    # gaps: agent 0 over its 2 actions: [2+1.5-4, 1+1.5-4.5] = [-0.5, -2]; agent 1: [2.5-3, 3.5-4,
    # 3-2.5] = [-0.5, -0.5, 0.5] -> mins -2 and -0.5 -> mean of squares 2.125.
    loss = nopt_min_loss(agent_qs, taken, q_jt, v, mask, available)
    assert float(loss) == pytest.approx(2.125)

    # ... and in a QTRAN-alt update on a game where the agents have 2 and 3 actions.
    config = {"env": {"payoff": [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]},
              "trainer": {**QUIET, "num_envs": 4}}
    trainer = EpisodicTrainer(resolve_config("qtran_alt", "matrix", config), "matrix")
    stats = trainer.algo.update(sampled_batch(trainer))
    assert 0.0 <= stats["losses/nopt_loss"] < 100.0  # ~1e18 with the padded action in the min


# -- learning ------------------------------------------------------------------------------------
def matrix_joint_action(algo: str, payoff: list, seed: int, steps: int = 6_000,
                        **algo_cfg) -> tuple[int, int]:
    """The greedy joint action after training `algo` on a one-step matrix game."""
    policy = policies.train(algo, "matrix", steps, seed=seed,
                            config={"env": {"payoff": payoff}, "trainer": QUIET, "algo": algo_cfg})
    ones = np.ones(1, np.float32)
    actions = policy.act({"agent_0": ones, "agent_1": ones})
    return actions["agent_0"], actions["agent_1"]


def small_coverage(algo: str, seed: int, trainer: dict | None = None) -> float:
    """Greedy coverage on 32 seeded small-task episodes after LEARNING_STEPS of training."""
    algo_cfg = SMALL_TASK_ALGO_OF.get(algo, SMALL_TASK_ALGO)
    policy = policies.train(algo, "coverage", LEARNING_STEPS, seed=seed,
                            config={"env": SMALL, "trainer": {**QUIET, "num_envs": 8, **(trainer or {})},
                                    "algo": algo_cfg})
    return evaluate(policy, "coverage", episodes=32, seed=7, **SMALL)["coverage"]


@pytest.mark.slow
@pytest.mark.parametrize("algo", policies.VALUE_ALGORITHM_NAMES)
def test_method_takes_the_optimum_of_an_additive_matrix_game(algo):
    optimum = (1, 2)
    found = [matrix_joint_action(algo, ADDITIVE_PAYOFF, seed) for seed in SEEDS]
    assert all(joint == optimum for joint in found), found


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["qtran_base", "qtran_alt"])
def test_qtran_solves_the_non_monotonic_matrix_game(algo):
    """The QTRAN paper's game: (0, 0) pays 8 behind -12s that a monotonic factorisation
    cannot represent; QTRAN's unrestricted Q_jt can, with exploration over every joint action."""
    found = [matrix_joint_action(algo, NON_MONOTONIC_PAYOFF, seed, NON_MONOTONIC_STEPS,
                                 **NON_MONOTONIC_ALGO) for seed in SEEDS]
    assert all(joint == (0, 0) for joint in found), found


def matrix_q_table(algo: str, payoff: list, seed: int, steps: int, **algo_cfg) -> torch.Tensor:
    """The joint action-value table Q_tot(u_1, u_2) that a mixer learned on a matrix game."""
    config = {"env": {"payoff": payoff}, "trainer": QUIET, "algo": algo_cfg}
    trainer = EpisodicTrainer(resolve_config(algo, "matrix", config, seed=seed), "matrix")
    trainer.train(steps)
    algo_ = trainer.algo
    x = agent_inputs(torch.ones(1, 2, 1), torch.full((1, 2), -1), algo_.num_actions,
                     algo_.cfg.agent_id)
    with torch.no_grad():
        q, _ = algo_.agent(x, torch.zeros(1, 2, algo_.hidden_size))
        joint = torch.cartesian_prod(q[0, 0], q[0, 1])  # (9, 2): Q_1(u_1), Q_2(u_2)
        return algo_.mixer(joint, torch.ones(9, 1)).reshape(3, 3)


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["vdn", "qmix"])
def test_monotonic_factorisations_cannot_represent_the_non_monotonic_game(algo, record_property):
    """VDN's sum and QMIX's monotonic mixer cannot represent this payoff, whatever they learn:
    if Q_tot's greedy joint action is not (0, 0), Q_tot(greedy) >= Q_tot(0, 0) while the
    payoffs are <= 0 and 8, so one of the two is off by >= 4; if it is (0, 0), monotonicity
    gives Q_tot(0, 1) >= Q_tot(1, 1) against payoffs -12 and 0, off by >= 6. A Q_tot that
    fit the table would break this bound. VDN's greedy joint action is also suboptimal on
    every seed (on uniform data its Q_a are the payoff's row and column means); QMIX's
    non-linear mixer lands on (0, 0) with some seeds (seed 2 of 0-2), so only its table is
    asserted."""
    payoff = torch.tensor(NON_MONOTONIC_PAYOFF)
    errors, greedy = [], []
    for seed in SEEDS:
        table = matrix_q_table(algo, NON_MONOTONIC_PAYOFF, seed, NON_MONOTONIC_STEPS,
                               **NON_MONOTONIC_ALGO)
        errors.append(float((table - payoff).abs().max()))
        greedy.append(divmod(int(table.argmax()), 3))
    record_property("max_abs_error_per_seed", errors)
    assert min(errors) > 3.9, (errors, greedy)  # the bound is 4; measured 6.1-15.9
    if algo == "vdn":
        assert all(joint != (0, 0) for joint in greedy), greedy


@pytest.fixture(scope="module")
def small_random_walk() -> float:
    return evaluate_random_walk("coverage", episodes=32, seed=7, **SMALL)["coverage"]


@pytest.mark.slow
@pytest.mark.parametrize("algo", COVERAGE_LEARNERS)
def test_method_learns_small_coverage_above_random_walk(algo, small_random_walk, record_property):
    per_seed = [small_coverage(algo, seed) for seed in SEEDS]
    record_property("coverage_per_seed", per_seed)
    assert np.mean(per_seed) > small_random_walk + LEARNING_MARGIN, (per_seed, small_random_walk)


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


@pytest.mark.slow
def test_trains_on_a_user_parallel_env_whose_agents_have_different_action_counts():
    from policies.matrix_game import MatrixGame

    # agent_0 has 2 actions, agent_1 has 3; additive payoff, optimum (1, 2).
    payoff = (np.array([1.0, 4.0])[:, None] + np.array([0.0, 1.0, 3.0])[None, :]).tolist()
    ones = np.ones(1, np.float32)
    obs = {"agent_0": ones, "agent_1": ones}
    for seed in SEEDS:
        policy = policies.train("qmix", lambda: MatrixGame(payoff), 6_000, seed=seed,
                                config={"trainer": {**QUIET, "num_envs": 8},
                                        "algo": {"epsilon_anneal_steps": 4_000}})
        assert policy.act(obs) == {"agent_0": 1, "agent_1": 2}, seed
        policy.network["epsilon"] = 1.0  # explore: only actions each agent has may come out
        sampled = [policy.act(obs, deterministic=False) for _ in range(200)]
        assert {a["agent_0"] for a in sampled} == {0, 1}
        assert {a["agent_1"] for a in sampled} == {0, 1, 2}


def test_refuses_continuous_actions_with_the_fix():
    with pytest.raises(TypeError, match="Discrete actions"):
        policies.train("vdn", "coverage", 100, config={"env": {**SMALL, "action_mode": "continuous"},
                                                        "trainer": QUIET})
