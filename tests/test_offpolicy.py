"""The off-policy CTDE family (MADDPG, HADDPG, HATD3): Gumbel-softmax, HATD3's target and
delay, the sequential agent order, Polyak averaging, the replay buffer, exact resume,
MADDPG's policy approximation and ensembles, clear config errors, learning.

Learning tests (`slow`) train seeds 0, 1 and 2 for 4,000 env steps on `TargetGame`: every
agent observes its own random target (new every step, 8-step episodes) and the team is paid
the agents' mean score; continuous (Box [-1, 1]: score -|a - target|) for MADDPG, HADDPG and
HATD3, Discrete (3 choices, score 1 for the right one) for Gumbel-softmax MADDPG. The
deterministic policies are scored on 50 held-out seeded steps. A constant action errs by
0.5 on average and a random one by 2/3; chance is 1/3 of hits. Measured (2 CPU cores,
beside another test run, 18-24 s a test): mean errors per seed MADDPG 0.009/0.006/0.006,
HADDPG 0.007/0.007/0.010, HATD3 0.016/0.012/0.019; hit rate 1.0 on every Discrete seed.
The thresholds (mean error below 0.15, no seed above 0.25; hit rate above 0.8, no seed
below 0.6) sit far from both the measured figures and the constant/random baselines.
"""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
import torch
from gymnasium import spaces
from pettingzoo import ParallelEnv

import policies
from policies.config import resolve_config
from policies.offpolicy.common import TransitionBuffer, polyak_update
from policies.offpolicy.trainer import OffPolicyTrainer

torch.set_num_threads(1)

QUIET = {"progress": False, "tensorboard": False}
SEEDS = (0, 1, 2)
SMALL_ALGO = {"hidden_sizes": [64, 64], "critic_hidden_sizes": [64, 64], "batch_size": 256,
              "learning_starts": 1000, "utd_ratio": 0.25, "lr_actor": 1e-3, "gamma": 0.9}
LEARNING_STEPS = 4_000


class TargetGame(ParallelEnv):
    """Each agent observes its own target and is scored for producing it; the team reward is
    the agents' mean score (continuous: -|a - target|; Discrete: 1 for the right choice).
    `agent_rewards` pays each agent its own score instead (a mixed-motive variant)."""

    metadata = {"name": "target_v0"}

    def __init__(self, discrete: bool = False, num_agents: int = 2, length: int = 8,
                 agent_rewards: bool = False):
        self.possible_agents = [f"agent_{i}" for i in range(num_agents)]
        self.discrete, self.length, self.own_rewards = discrete, length, agent_rewards
        self._obs = spaces.Box(-1, 1, (3 if discrete else 1,), np.float32)
        self._act = spaces.Discrete(3) if discrete else spaces.Box(-1, 1, (1,), np.float32)
        self.rng = np.random.default_rng(0)

    def observation_space(self, agent):
        return self._obs

    def action_space(self, agent):
        return self._act

    def _draw(self) -> None:
        n = len(self.possible_agents)
        self.targets = self.rng.integers(0, 3, n) if self.discrete else self.rng.uniform(-1, 1, n)

    def _observe(self) -> dict[str, np.ndarray]:
        if self.discrete:
            return {a: np.eye(3, dtype=np.float32)[self.targets[i]]
                    for i, a in enumerate(self.possible_agents)}
        return {a: np.array([self.targets[i]], np.float32)
                for i, a in enumerate(self.possible_agents)}

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.agents, self.t = list(self.possible_agents), 0
        self._draw()
        return self._observe(), {a: {} for a in self.agents}

    def scores(self, actions) -> list[float]:
        if self.discrete:
            return [float(actions[a] == self.targets[i]) for i, a in enumerate(self.possible_agents)]
        return [-abs(float(actions[a][0]) - self.targets[i])
                for i, a in enumerate(self.possible_agents)]

    def step(self, actions):
        scores = self.scores(actions)
        rewards = {a: (scores[i] if self.own_rewards else float(np.mean(scores)))
                   for i, a in enumerate(self.possible_agents)}
        self.t += 1
        self._draw()
        done = self.t >= self.length
        names = self.possible_agents
        if done:
            self.agents = []
        return (self._observe(), rewards, {a: False for a in names}, {a: done for a in names},
                {a: {} for a in names})


def game(discrete: bool = False, **kwargs):
    return functools.partial(TargetGame, discrete, **kwargs)


def make_trainer(algo: str, discrete: bool = False, seed: int = 0, out_dir=None,
                 trainer: dict | None = None, **algo_cfg) -> OffPolicyTrainer:
    cfg = {"trainer": {**QUIET, "num_envs": 4, "rollout_steps": 8, **(trainer or {})},
           "algo": {**SMALL_ALGO, "batch_size": 32, "learning_starts": 64, **algo_cfg}}
    return OffPolicyTrainer(resolve_config(algo, None, cfg, seed=seed), game(discrete), out_dir)


def filled_trainer(algo: str, **kwargs) -> OffPolicyTrainer:
    trainer = make_trainer(algo, **kwargs)
    trainer.start_segment()
    for _ in range(3):
        trainer.collect()
    return trainer


# -- learning ----------------------------------------------------------------------------------
def held_out_score(policy, discrete: bool) -> float:
    env = TargetGame(discrete)
    scores = []
    for seed in range(50):
        obs, _ = env.reset(seed=100 + seed)
        scores.append(float(np.mean(env.scores(policy.act(obs)))))
    return float(np.mean(scores))


def learned_scores(algo: str, discrete: bool) -> list[float]:
    cfg = {"trainer": {**QUIET, "num_envs": 8, "rollout_steps": 8}, "algo": SMALL_ALGO}
    return [held_out_score(policies.train(algo, game(discrete), LEARNING_STEPS, seed=seed,
                                          config=cfg), discrete) for seed in SEEDS]


@pytest.mark.slow
@pytest.mark.parametrize("algo", policies.OFF_POLICY_ALGORITHM_NAMES)
def test_algorithm_learns_continuous_targets_far_better_than_a_constant_action(algo,
                                                                               record_property):
    errors = [-s for s in learned_scores(algo, discrete=False)]
    record_property("mean_abs_error_per_seed", errors)
    assert np.mean(errors) < 0.15 and max(errors) < 0.25, errors  # constant 0.5, random 2/3


@pytest.mark.slow
def test_gumbel_softmax_maddpg_learns_discrete_choices(record_property):
    hits = learned_scores("maddpg", discrete=True)
    record_property("hit_rate_per_seed", hits)
    assert np.mean(hits) > 0.8 and min(hits) > 0.6, hits  # chance 1/3


# -- the pieces --------------------------------------------------------------------------------
def test_gumbel_softmax_is_one_hot_forward_with_softmax_gradients():
    algo = make_trainer("maddpg", discrete=True).algo
    obs = torch.eye(3)[torch.tensor([0, 1, 2, 0])]
    actions = algo.policy_action(0, obs)
    assert torch.equal(actions.sum(-1), torch.ones(4))
    assert set(actions.unique().tolist()) == {0.0, 1.0}
    (actions * torch.tensor([1.0, -2.0, 3.0])).sum().backward()
    grads = [p.grad for p in algo.actor_of(0).parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_polyak_update_moves_targets_by_tau():
    source, target = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = copy.deepcopy(target.state_dict())
    polyak_update(target, source, 0.25)
    for k, v in target.state_dict().items():
        assert torch.allclose(v, 0.75 * before[k] + 0.25 * source.state_dict()[k])


def test_replay_buffer_wraps_and_samples_only_filled_rows():
    buf = TransitionBuffer(capacity=5, num_agents=1, obs_size=1, state_size=1, action_width=1)

    def rows(values):
        e = len(values)
        v = np.array(values, np.float32)
        return dict(obs=v[:, None, None], state=v[:, None], actions=v[:, None, None],
                    rewards=v[:, None], next_obs=v[:, None, None], next_state=v[:, None],
                    terminated=np.zeros(e), subpolicy=np.zeros((e, 1), np.int64),
                    discount=np.full(e, 0.99))

    buf.add(**rows([1, 2, 3]))
    assert buf.size == 3
    sampled = buf.data["state"][buf.sample_index(1000, np.random.default_rng(0)), 0]
    assert set(sampled.tolist()) == {1.0, 2.0, 3.0}  # never an empty row
    buf.add(**rows([4, 5, 6, 7]))  # 6 and 7 overwrite the oldest (1 and 2)
    assert (buf.size, buf.pos) == (5, 2)
    assert buf.data["state"][:, 0].tolist() == [6, 7, 3, 4, 5]
    restored = TransitionBuffer(5, 1, 1, 1, 1)
    restored.load_state_dict(buf.state_dict())
    assert (restored.size, restored.pos) == (5, 2)
    assert np.array_equal(restored.data["state"], buf.data["state"])


def test_hatd3_target_is_the_smaller_twin_with_clipped_smoothing_noise():
    trainer = filled_trainer("hatd3")
    algo = trainer.algo
    batch = trainer.sample(6)
    noise = [torch.tensor([[0.9], [-0.9], [0.1], [-0.2], [2.0], [0.0]]),
             torch.tensor([[-3.0], [0.3], [0.0], [0.6], [-0.1], [0.5]])]
    got = algo.critic_target(batch, noise)
    with torch.no_grad():  # by hand: clip the noise to +-0.5, the action to [-1, 1]
        actions = []
        for i in range(2):
            actor = algo.target_subpolicies[0][i]
            mu = torch.tanh(actor.head[0](actor.body(batch["next_obs"][:, i])))
            actions.append((mu + noise[i].clamp(-0.5, 0.5)).clamp(-1, 1))
        x = torch.cat([batch["next_state"], *actions], -1)
        q1, q2 = (c(x) for c in algo.target_critics)
        expected = batch["rewards"].mean(-1) + 0.9 * (1 - batch["terminated"]) * torch.min(q1, q2)
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(q1, q2)  # the minimum did choose


def test_hatd3_updates_actors_every_policy_delay_critic_steps():
    trainer = filled_trainer("hatd3", policy_delay=3)
    algo = trainer.algo
    changed_actor, changed_critic = [], []
    for _ in range(6):
        actor, critic = copy.deepcopy(algo.actors.state_dict()), copy.deepcopy(algo.critics.state_dict())
        target = copy.deepcopy(algo.target_critics.state_dict())
        algo.update(trainer.sample)
        moved = lambda old, new: any(not torch.equal(old[k], new[k]) for k in old)  # noqa: E731
        changed_actor.append(moved(actor, algo.actors.state_dict()))
        changed_critic.append(moved(critic, algo.critics.state_dict()))
        assert moved(target, algo.target_critics.state_dict()) == changed_actor[-1]
    assert changed_actor == [False, False, True, False, False, True]
    assert all(changed_critic)


def test_sequential_order_is_a_fresh_permutation_reproducible_from_the_seed():
    def orders(seed: int) -> list[tuple[int, ...]]:
        cfg = {"trainer": {**QUIET, "num_envs": 4, "rollout_steps": 8},
               "algo": {**SMALL_ALGO, "batch_size": 32, "learning_starts": 64}}
        trainer = OffPolicyTrainer(resolve_config("haddpg", None, cfg, seed=seed),
                                   game(num_agents=3))
        trainer.start_segment()
        for _ in range(3):
            trainer.collect()
        out = []
        for _ in range(30):
            trainer.algo.update(trainer.sample)
            out.append(tuple(trainer.algo.last_order))
        return out

    first = orders(0)
    assert len(set(first)) == 6  # every order of 3 agents turns up in 30 updates
    assert first == orders(0)
    assert first != orders(1)


def test_each_actor_is_updated_against_its_predecessors_new_actions():
    cfg = {"trainer": {**QUIET, "num_envs": 4, "rollout_steps": 8},
           "algo": {**SMALL_ALGO, "batch_size": 32, "learning_starts": 64, "lr_actor": 0.05}}
    trainer = OffPolicyTrainer(resolve_config("haddpg", None, cfg), game(num_agents=3))
    trainer.start_segment()
    for _ in range(3):
        trainer.collect()
    algo = trainer.algo
    before = copy.deepcopy(algo.actors)
    batch = trainer.sample(32)
    algo.sequential_actor_update(batch, algo.critics[0])

    def action(actors, agent):
        with torch.no_grad():
            return torch.tanh(actors[agent].head[0](actors[agent].body(batch["obs"][:, agent])))

    order = algo.last_order
    for m, agent in enumerate(order):
        seen = algo.last_joint_inputs[agent]
        for k in order[:m]:  # predecessors: their updated actors
            assert torch.allclose(seen[k], action(algo.actors, k), atol=1e-6)
            assert not torch.allclose(seen[k], action(before, k), atol=1e-4)
        for k in order[m + 1:]:  # successors: as the round found them
            assert torch.allclose(seen[k], action(before, k), atol=1e-6)


@pytest.mark.parametrize("algo", ["haddpg", "maddpg"])
def test_action_regularization_brings_a_saturated_actor_off_the_flat_end_of_its_tanh(algo):
    """At a pre-activation of 4 the tanh passes 1e-3 of the critic's gradient, which Adam's
    scaling still turns into full steps: unregularised, the actor stays saturated (here it
    goes 3x further out); the MADDPG authors' penalty brings it back (to 0.3 of the start)."""

    def pre_activation(trainer, batch):
        actor = trainer.algo.actors[0]
        with torch.no_grad():
            return actor.head[0](actor.body(batch["obs"][:, 0])).abs().mean().item()

    after = {}
    for coefficient in (0.0, 0.1):
        trainer = filled_trainer(algo, lr_actor=0.01, action_regularization=coefficient)
        with torch.no_grad():
            for actor in trainer.algo.actors:
                actor.head[0].bias.fill_(4.0)
        batch = trainer.sample(32)
        start = pre_activation(trainer, batch)
        for _ in range(20):
            if algo == "maddpg":
                loss = trainer.algo.actor_loss(0, 0, batch)
                trainer.algo.step(trainer.algo.optimizer_of(0), loss,
                                  trainer.algo.actor_of(0).parameters())
            else:
                trainer.algo.sequential_actor_update(batch, trainer.algo.critics[0])
        after[coefficient] = pre_activation(trainer, batch) / start
    assert after[0.0] > 0.97, after  # still at (or beyond) the flat end
    assert after[0.1] < 0.9, after  # pulled back towards the tanh's working range


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, monkeypatch):
    cfg = {"trainer": {**QUIET, "num_envs": 4, "rollout_steps": 8, "checkpoint_every": 2},
           "algo": {**SMALL_ALGO, "batch_size": 32, "learning_starts": 32}}
    per_iteration = 4 * 8
    runs = {"hatd3": ("hatd3", {}),
            "maddpg": ("maddpg", {"ensemble_size": 2, "approximate_policies": True}),
            # 3-step returns: the checkpoint carries the window's last two steps
            "hatd3_n3": ("hatd3", {"n_step": 3})}
    for name, (algo, extra) in runs.items():
        run_cfg = {**cfg, "algo": {**cfg["algo"], **extra}}
        straight = policies.train(algo, game(), 6 * per_iteration, seed=3, config=run_cfg,
                                  out_dir=tmp_path / f"{name}_straight")
        killed = tmp_path / f"{name}_killed"
        calls = {"n": 0}
        original = OffPolicyTrainer.collect

        def collect_then_die(self, original=original, calls=calls):
            calls["n"] += 1
            if calls["n"] == 4:
                raise KeyboardInterrupt
            return original(self)

        monkeypatch.setattr(OffPolicyTrainer, "collect", collect_then_die)
        with pytest.raises(KeyboardInterrupt):
            policies.train(algo, game(), 6 * per_iteration, seed=3, config=run_cfg, out_dir=killed)
        monkeypatch.setattr(OffPolicyTrainer, "collect", original)
        saved = torch.load(killed / "checkpoint.pt", weights_only=False)
        window = extra.get("n_step", 1) - 1
        assert saved["global_step"] == 2 * per_iteration
        assert saved["buffer"]["size"] == 64 - 4 * window and len(saved["pending"]) == window
        assert saved["algo"]["gradient_steps"] > 0  # learning had started before the kill
        resumed = policies.train(algo, game(), 6 * per_iteration, out_dir=killed, resume=True)
        a, b = straight.actors.state_dict(), resumed.actors.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
        final = [torch.load(d / "checkpoint.pt", weights_only=False)["algo"]
                 for d in (tmp_path / f"{name}_straight", killed)]
        for part in ("critics", "target_critics", "target_subpolicies"):
            assert all(torch.equal(final[0][part][k], final[1][part][k]) for k in final[0][part])


def test_n_step_transitions_sum_discounted_rewards_up_to_the_episode_end():
    """n_step=3: a transition sums its env's next three rewards (gamma^k r_k), stops after the
    step that ended its episode, bootstraps from the last of them with gamma^m, and the steps
    still in the window when the envs restart become shorter transitions."""
    trainer = make_trainer("hatd3", n_step=3, gamma=0.5)
    e, n = 2, 2
    ended = {1: [False, True]}  # env 1's episode ends at step 1 (terminated), env 0's runs on

    def step(t):
        done = np.array(ended.get(t, [False, False]))
        return {"obs": np.full((e, n, 1), t, np.float32), "state": np.zeros((e, 2), np.float32),
                "actions": np.zeros((e, n, 1), np.float32),
                "rewards": np.array([[t + 1.0] * n, [10.0 * (t + 1)] * n], np.float32),
                "next_obs": np.full((e, n, 1), t + 1, np.float32),
                "next_state": np.zeros((e, 2), np.float32),
                "terminated": done.astype(np.float32), "subpolicy": np.zeros((e, n), np.int64),
                "done": done}

    for t in range(4):
        trainer.store(step(t))
    data, size = trainer.buffer.data, trainer.buffer.size
    assert size == 2 * e and len(trainer.pending) == 2  # transitions from steps 0 and 1
    rows = {(int(data["obs"][i, 0, 0]), i % e): i for i in range(size)}
    expect = {  # (start step, env): (reward, discount, next obs, terminated)
        (0, 0): (1 + 0.5 * 2 + 0.25 * 3, 0.125, 3, 0.0),
        (0, 1): (10 + 0.5 * 20, 0.25, 2, 1.0),  # stops at the episode's end
        (1, 0): (2 + 0.5 * 3 + 0.25 * 4, 0.125, 4, 0.0),
        (1, 1): (20, 0.5, 2, 1.0),
    }
    for key, (reward, discount, next_obs, terminated) in expect.items():
        i = rows[key]
        assert data["rewards"][i, 0] == pytest.approx(reward), key
        assert data["discount"][i] == pytest.approx(discount), key
        assert data["next_obs"][i, 0, 0] == next_obs and data["terminated"][i] == terminated, key
    trainer.flush_pending()  # the envs restart: steps 2 and 3 with what they have
    assert trainer.buffer.size == 4 * e and trainer.pending == []
    last = trainer.buffer.size - e  # step 3, env 0: one reward, bootstrapped after it
    assert data["rewards"][last, 0] == pytest.approx(4) and data["discount"][last] == 0.5
    assert data["rewards"][last - e, 0] == pytest.approx(3 + 0.5 * 4)
    assert data["discount"][last - e] == 0.25
    batch = trainer.sample(8)
    torch.testing.assert_close(trainer.algo.discount(batch), batch["discount"])


def test_one_step_targets_use_gamma_as_before():
    trainer = filled_trainer("hatd3", gamma=0.9)
    assert trainer.algo.discount(trainer.sample(4)) == 0.9
    assert np.all(trainer.buffer.data["discount"][: trainer.buffer.size] == np.float32(0.9))


def test_maddpg_critic_target_uses_the_approximators_not_the_other_actors():
    trainer = filled_trainer("maddpg", approximate_policies=True)
    algo = trainer.algo
    approx = copy.deepcopy(algo.approximators.state_dict())
    for _ in range(3):
        algo.update(trainer.sample)
    assert any(not torch.equal(v, algo.approximators.state_dict()[k]) for k, v in approx.items())
    batch = trainer.sample(16)
    expected = algo.critic_target(0, batch)
    with torch.no_grad():  # agent 1's actors become unusable: critic 0 must not notice
        for members in (algo.subpolicies, algo.target_subpolicies):
            for p in members[0][1].parameters():
                p.fill_(float("nan"))
    torch.manual_seed(0)
    got = algo.critic_target(0, batch)
    assert torch.isfinite(got).all() and torch.allclose(got, expected)
    assert torch.isnan(algo.critic_target(1, batch)).any()  # critic 1 does use its own actor


@pytest.mark.parametrize("n_step", [1, 3])
def test_maddpg_ensemble_draws_one_subpolicy_per_agent_and_episode(n_step):
    trainer = make_trainer("maddpg", ensemble_size=3, n_step=n_step)
    algo = trainer.algo
    assert len(algo.subpolicies) == 3 and len(algo.target_subpolicies) == 3
    initial = copy.deepcopy(algo.subpolicies.state_dict())
    trainer.start_segment()
    for _ in range(4):
        trainer.collect()
    trainer.flush_pending()  # n-step: the window's last steps, so that whole episodes are in
    members = trainer.buffer.data["subpolicy"][: trainer.buffer.size].reshape(-1, 4, 2)  # (T, E, N)
    episodes = members.reshape(-1, 8, 4, 2)  # 8-step episodes, the same member for all 8 steps
    assert (episodes == episodes[:, :1]).all()
    assert set(np.unique(members).tolist()) == {0, 1, 2}
    assert len({tuple(e[0, :, 0]) for e in episodes}) > 1  # new draws for new episodes
    for _ in range(3):
        algo.update(trainer.sample)
    after = algo.subpolicies.state_dict()
    for k in range(3):  # every member learns (from the rows it acted in)
        assert any(not torch.equal(initial[n], after[n]) for n in initial if n.startswith(f"{k}."))


def test_maddpg_critics_learn_each_agents_own_reward():
    cfg = {"trainer": {**QUIET, "num_envs": 2, "rollout_steps": 8},
           "algo": {**SMALL_ALGO, "learning_starts": 0}}
    trainer = OffPolicyTrainer(resolve_config("maddpg", None, cfg), game(agent_rewards=True))
    trainer.start_segment()
    trainer.collect()
    rewards = trainer.buffer.data["rewards"][: trainer.buffer.size]
    assert not np.allclose(rewards[:, 0], rewards[:, 1])
    batch = trainer.sample(8)
    with torch.no_grad():
        for i in range(2):
            q = trainer.algo.q_value(trainer.algo.target_critics[i], batch["next_state"],
                                     torch.zeros(8, 2))
            assert q.shape == (8,)
    targets = [trainer.algo.critic_target(i, {**batch, "terminated": torch.ones(8)}) for i in range(2)]
    for i in range(2):  # a terminal step's target is the agent's own reward
        assert torch.allclose(targets[i], batch["rewards"][:, i])


def test_critics_on_observations_read_every_agents_observation_and_store_no_state():
    """critic_input=observations: the critics read the agents' normalised observations in agent
    order (not env.state()), the replay keeps no states, and the critics learn from them."""
    small = {"width": 8, "height": 8, "cell_size": 0.25, "footprint": 3, "patch_size": 5,
             "summary_size": 2, "max_steps": 30}
    cfg = {"trainer": {**QUIET, "num_envs": 2, "rollout_steps": 8},
           "algo": {**SMALL_ALGO, "learning_starts": 0, "batch_size": 16, "n_step": 1,
                    "critic_input": "observations", "share_params": True},
           "env": small}  # n_step 1 (coverage.yaml's HATD3 recipe has 5): every step is stored
    trainer = OffPolicyTrainer(resolve_config("hatd3", "coverage", cfg), "coverage")
    spec = trainer.env.spec
    n, d = spec.num_agents, spec.obs_size
    assert spec.state_size > 0  # the scenario has a state; the critics do not read it
    first = trainer.algo.critics[0].body[0]
    assert first.in_features == n * d + trainer.algo.joint_width
    assert trainer.buffer.data["state"].shape[1] == 0
    trainer.start_segment()
    trainer.collect()
    batch = trainer.sample(16)
    torch.testing.assert_close(batch["state"], batch["obs"].reshape(16, n * d))
    torch.testing.assert_close(batch["next_state"], batch["next_obs"].reshape(16, n * d))
    before = copy.deepcopy(trainer.algo.critics.state_dict())
    trainer.update_step()
    assert any(not torch.equal(before[k], v) for k, v in trainer.algo.critics.state_dict().items())


def test_policy_saves_loads_and_acts_identically(tmp_path):
    policy = policies.train("hatd3", game(), 256, out_dir=tmp_path,
                            config={"trainer": {**QUIET, "num_envs": 4, "rollout_steps": 8},
                                    "algo": {**SMALL_ALGO, "learning_starts": 64,
                                             "batch_size": 32}})
    loaded = policies.load(tmp_path)
    env = TargetGame()
    obs, _ = env.reset(seed=1)
    a, b = policy.act(obs), loaded.act(obs)
    for k in a:
        assert env.action_space(k).contains(a[k])
        np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.parametrize("override,message", [
    (["algo.utd_ratio=0"], "utd_ratio"),
    (["algo.batch_size=2000", "algo.buffer_size=1000"], "batch_size <= buffer_size"),
    (["algo.ensemble_size=0"], "ensemble_size must be >= 1"),
    (["algo.policy_dela=2"], "unknown"),
    (["algo.critic_input=obs"], "critic_input must be state or observations"),
    (["algo.n_step=0"], "n_step must be >= 1"),
])
def test_bad_config_is_one_clear_sentence(override, message):
    algo = "hatd3" if "policy_dela" in override[0] else "maddpg"
    with pytest.raises(ValueError, match=message):
        resolve_config(algo, None, None, override)


def test_unbounded_box_actions_are_refused_with_the_fix():
    class Unbounded(TargetGame):
        def action_space(self, agent):
            return spaces.Box(-np.inf, np.inf, (1,), np.float32)

    cfg = {"trainer": {**QUIET, "num_envs": 1}, "algo": SMALL_ALGO}
    with pytest.raises(ValueError, match="infinite bounds"):
        OffPolicyTrainer(resolve_config("haddpg", None, cfg), Unbounded)


def test_registered_in_the_api_and_the_cli():
    from marl_ros.cli import build_parser, training_granularity

    for algo in ("maddpg", "haddpg", "hatd3"):
        assert algo in policies.ALGORITHM_NAMES
        assert policies.family_trainer(algo) is OffPolicyTrainer
        args = build_parser().parse_args(["train", "--algo", algo])
        assert args.algo == algo
        resolved = resolve_config(algo, "coverage", None)
        assert "replay buffer" in training_granularity(resolved)
