"""The on-policy CTDE family: learning, trust region, exact resume, any ParallelEnv, CLI.

Learning tests use a small coverage task (2 drones, 8 x 8 cells, 30 steps) and compare
the trained deterministic policy with the random walk on the same 32 seeded episodes.
The random walk covers about 55% there; the policies reach 85-98% within 150k env
steps, so the asserted margin (+20 points) is far above the episode-to-episode spread
of the mean (a few points) yet well below what every algorithm learns.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from gymnasium import spaces
from pettingzoo import ParallelEnv

import policies
from policies.algos.hatrpo import HATRPO, conjugate_gradient
from policies.buffer import RolloutBuffer
from policies.config import resolve_config
from policies.evaluation import evaluate, evaluate_random_walk
from policies.trainer import Trainer

torch.set_num_threads(1)

SMALL = dict(num_drones=2, width=8, height=8, cell_size=0.25, footprint=3, patch_size=5,
             summary_size=2, max_steps=30)
QUIET = {"progress": False, "tensorboard": False}
LEARNING_MARGIN = 0.20


@pytest.mark.parametrize("algo", policies.ON_POLICY_ALGORITHM_NAMES)
def test_algorithm_learns_small_coverage_above_random_walk(algo):
    policy = policies.train(algo, "coverage", 150_000, seed=0,
                            config={"env": SMALL, "trainer": QUIET})
    learned = evaluate(policy, "coverage", episodes=32, seed=7, **SMALL)
    random_walk = evaluate_random_walk("coverage", episodes=32, seed=7, **SMALL)
    assert learned["coverage"] > random_walk["coverage"] + LEARNING_MARGIN, (learned, random_walk)


def small_trainer(algo: str, tmp_path=None, **trainer) -> Trainer:
    resolved = resolve_config(algo, "coverage", {"env": SMALL, "trainer": {**QUIET, **trainer}})
    return Trainer(resolved, "coverage", tmp_path)


def test_hatrpo_accepted_step_respects_its_kl_bound():
    trainer = small_trainer("hatrpo", num_envs=8, rollout_steps=32)
    algo: HATRPO = trainer.algo
    trainer.start_segment()
    trainer.collect()
    batch = trainer.buffer.sequences(1)
    before = copy.deepcopy(algo.actors)
    stats = algo.update(batch)
    delta = algo.cfg.kl_threshold
    assert stats["losses/kl_max"] <= delta
    accepted = [i for i in range(2) if stats[f"losses/step_accepted_agent{i}"]]
    assert accepted, "no agent took a trust-region step"
    for i in accepted:  # recompute KL(old || new) independently of the line search
        inputs = (batch["obs"][..., i, :], batch["starts"], batch["hiddens"][:, i],
                  batch["actions"][..., i, :])
        with torch.no_grad():
            old_dist, _ = before[i].forward_sequence(algo.actor_input(inputs[0], i), inputs[1],
                                                     inputs[2])
            kl = algo.mean_kl(i, inputs, old_dist).item()
        assert 0.0 < kl <= delta * (1 + 1e-5)
        assert kl == pytest.approx(stats[f"losses/kl_agent{i}"], rel=1e-5)


def test_conjugate_gradient_solves_a_positive_definite_system():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(6, 6))
    a = torch.tensor(m @ m.T + 6 * np.eye(6))
    b = torch.tensor(rng.normal(size=6))
    x = conjugate_gradient(lambda v: a @ v, b, iterations=20)
    assert torch.allclose(a @ x, b, atol=1e-8)


def test_gae_bootstraps_truncation_but_not_termination():
    buf = RolloutBuffer(steps=2, num_envs=2, num_agents=1, obs_size=1, state_size=1,
                        action_size=1, hidden_size=0)
    gamma, lam = 0.9, 0.5
    # env 0: step 0 truncated (V(final) = 10); env 1: step 0 terminated (V(final) ignored).
    buf.add(values=np.array([1.0, 1.0]), rewards=np.array([1.0, 1.0]), dones=np.array([1.0, 1.0]),
            final_values=np.array([10.0, 0.0]))
    buf.add(values=np.array([2.0, 2.0]), rewards=np.array([0.0, 0.0]), dones=np.array([0.0, 0.0]),
            final_values=np.array([0.0, 0.0]))
    buf.compute_advantages(last_values=np.array([3.0, 3.0]), gamma=gamma, gae_lambda=lam)
    last = 0.0 + gamma * 3.0 - 2.0
    assert buf.advantages[1] == pytest.approx([last, last])
    assert buf.advantages[0, 0] == pytest.approx(1.0 + gamma * 10.0 - 1.0)  # no GAE across the cut
    assert buf.advantages[0, 1] == pytest.approx(1.0 - 1.0)
    assert buf.returns == pytest.approx(buf.advantages + buf.values)


def params_of(policy) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in policy.actors.state_dict().items()}


def test_resume_after_a_kill_continues_bitwise_like_an_uninterrupted_run(tmp_path, monkeypatch):
    cfg = {"env": SMALL, "trainer": {**QUIET, "num_envs": 4, "rollout_steps": 16,
                                     "checkpoint_every": 2, "tensorboard": True}}
    per_update = 4 * 16
    straight = policies.train("happo", "coverage", 5 * per_update, seed=3, config=cfg,
                              out_dir=tmp_path / "straight")

    # Kill the second run during its 4th update (after the checkpoint at update 2).
    killed = tmp_path / "killed"
    calls = {"n": 0}
    original = Trainer.collect

    def collect_then_die(self):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "collect", collect_then_die)
    with pytest.raises(KeyboardInterrupt):
        policies.train("happo", "coverage", 5 * per_update, seed=3, config=cfg, out_dir=killed)
    monkeypatch.setattr(Trainer, "collect", original)

    saved = torch.load(killed / "checkpoint.pt", weights_only=False)
    assert saved["global_step"] == 2 * per_update
    trainer = Trainer(resolve_config("happo", "coverage", cfg, seed=3), "coverage", killed,
                      resume=True)
    assert trainer.global_step == 2 * per_update
    for k, v in trainer.algo.actors.state_dict().items():
        assert torch.equal(v, saved["algo"]["actors"][k])

    resumed = policies.train("happo", "coverage", 5 * per_update, out_dir=killed, resume=True)
    assert resumed.metadata["global_step"] == straight.metadata["global_step"] == 5 * per_update
    a, b = params_of(straight), params_of(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [line.split(",")[0] for line in (killed / "progress.csv").read_text().splitlines()[1:]]
    assert steps == [str(per_update * u) for u in range(1, 6)]


def test_saved_policy_loads_and_acts_identically(tmp_path):
    policy = policies.train("mappo", "coverage", 2_000, out_dir=tmp_path,
                            config={"env": SMALL, "trainer": {**QUIET, "tensorboard": True}})
    loaded = policies.load(tmp_path / "policy.pt")
    import sim

    env = sim.make_env("coverage", backend="fast", seed=1, **SMALL)
    obs, _ = env.reset(seed=1)
    a, b = policy.act(obs), loaded.act(obs)
    assert set(a) == set(env.possible_agents)
    for k in a:
        assert env.action_space(k).contains(a[k])
        np.testing.assert_array_equal(a[k], b[k])
    assert (tmp_path / "config.yaml").exists() and (tmp_path / "tb").is_dir()


class MatchingGame(ParallelEnv):
    """Two heterogeneous agents, no state(): a Box agent and a Discrete agent are told a
    target and rewarded for hitting it (team reward = both agents' terms)."""

    metadata = {"name": "matching_v0"}

    def __init__(self):
        self.possible_agents = ["pointer", "chooser"]
        self._obs = {"pointer": spaces.Box(-1, 1, (2,), np.float32),
                     "chooser": spaces.Box(0, 1, (3,), np.float32)}
        self._act = {"pointer": spaces.Box(-1, 1, (1,), np.float32), "chooser": spaces.Discrete(3)}
        self.rng = np.random.default_rng(0)

    def observation_space(self, agent):
        return self._obs[agent]

    def action_space(self, agent):
        return self._act[agent]

    def _observe(self):
        onehot = np.eye(3, dtype=np.float32)[self.choice]
        return {"pointer": np.array([self.target, 0.5], np.float32), "chooser": onehot}

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self.t = 0
        self.target, self.choice = self.rng.uniform(-1, 1), int(self.rng.integers(3))
        return self._observe(), {a: {} for a in self.agents}

    def step(self, actions):
        r = -abs(float(actions["pointer"][0]) - self.target) + float(actions["chooser"] == self.choice)
        self.t += 1
        self.target, self.choice = self.rng.uniform(-1, 1), int(self.rng.integers(3))
        done = self.t >= 8
        obs = self._observe()
        if done:
            self.agents = []
        names = self.possible_agents
        return (obs, {a: r for a in names}, {a: False for a in names}, {a: done for a in names},
                {a: {} for a in names})


@pytest.mark.parametrize("algo", ["happo", "mappo"])
def test_trainer_accepts_a_heterogeneous_parallel_env_without_state(algo):
    cfg = {"trainer": {**QUIET, "num_envs": 4, "rollout_steps": 32},
           "algo": {"share_params": False, "lr_actor": 3e-3, "lr_critic": 3e-3}}
    policy = policies.train(algo, MatchingGame, 12_000, seed=0, config=cfg)
    env = MatchingGame()
    hits, errors = [], []
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        act = policy.act(obs)
        assert isinstance(act["chooser"], int) and act["pointer"].shape == (1,)
        hits.append(act["chooser"] == env.choice)
        errors.append(abs(float(act["pointer"][0]) - env.target))
    assert np.mean(hits) > 0.8  # chance is 1/3
    assert np.mean(errors) < 0.3  # a constant action errs by 0.5 on average


def test_recurrent_actor_trains_on_sequences_and_acts_with_memory():
    cfg = {"env": SMALL, "trainer": {**QUIET, "num_envs": 4, "rollout_steps": 16},
           "algo": {"recurrent": True, "chunk_len": 8, "gru_size": 16}}
    policy = policies.train("mappo", "coverage", 4 * 16 * 3, config=cfg)
    import sim

    env = sim.make_env("coverage", backend="fast", **SMALL)
    obs, _ = env.reset(seed=0)
    policy.act(obs)
    assert set(policy._hidden) == set(env.possible_agents)
    policy.reset()
    assert not policy._hidden


def test_config_overrides_and_clear_errors():
    resolved = resolve_config("mappo", "coverage", None,
                              ["algo.lr_actor=1e-3", "num_envs=8", "env.width=8", "clip_coef=0.1"])
    assert resolved["algo"]["lr_actor"] == 1e-3 and resolved["algo"]["clip_coef"] == 0.1
    assert resolved["trainer"]["num_envs"] == 8 and resolved["env"]["width"] == 8
    with pytest.raises(ValueError, match="unknown MAPPOConfig key 'lr'"):
        resolve_config("mappo", "coverage", {"algo": {"lr": 1.0}})
    with pytest.raises(ValueError, match="section.key"):
        resolve_config("mappo", "coverage", None, ["nonsense=1"])
    with pytest.raises(ValueError, match="separate parameters"):
        small_trainer_cfg = resolve_config("hatrpo", "coverage", {"env": SMALL, "trainer": QUIET,
                                                                  "algo": {"share_params": True}})
        Trainer(small_trainer_cfg, "coverage")
    with pytest.raises(ValueError, match="unknown algorithm"):
        resolve_config("ppo", "coverage", None)


def test_cli_train_then_eval_writes_report_and_pictures(tmp_path, capsys):
    from marl_ros.cli import main

    out = tmp_path / "run"
    args = ["train", "--algo", "mappo", "--scenario", "coverage", "--num-drones", "2", "--steps",
            "1024", "--out", str(out), "trainer.num_envs=4", "trainer.rollout_steps=16",
            "trainer.progress=false"] + [f"env.{k}={v}" for k, v in SMALL.items() if k != "num_drones"]
    assert main(args) == 0
    assert main(args) == 2  # the folder holds a run: refuses without --resume
    assert main(["train", "--algo", "mappo", "--steps", "2048", "--out", str(out), "--resume"]) == 0
    assert "global_step" in (out / "progress.csv").read_text()
    assert main(["eval", str(out), "--backend", "fast", "--episodes", "3", "--gif"]) == 0
    report = json.loads((out / "eval_fast.json").read_text())
    assert 0.0 <= report["policy"]["coverage"] <= 1.0 and "random_walk" in report
    for name in ("learning_curve.png", "coverage_fast.png", "episode_fast.gif"):
        assert (out / name).stat().st_size > 0
