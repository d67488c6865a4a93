"""What `policies.train` and `marl-ros train` promise a user beyond learning itself.

- Bring your own env, episodic family: a ParallelEnv that declares no episode length
  trains anyway; the padded episode length is read from the env where declared, else
  grown from the episodes seen (stored episodes stay whole and valid, checkpoints keep
  the grown buffer), and an episode that never ends stops with one clear sentence.
- `marl-ros train` refuses a budget that trains nothing and a `--resume` of another
  algorithm's or scenario's run before any work, and reports the env steps it really
  trained (whole rollouts or episodes).
- Bring your own env, stepped in worker processes (`trainer.env_workers`): the same arrays
  and the same trained policy as in one process, an env's error named with its worker,
  no worker left after training or after the trainer is killed.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from gymnasium import spaces
from pettingzoo import ParallelEnv

import policies
import policies.value.trainer as episodic
from marl_ros.cli import main
from policies.config import resolve_config
from policies.envs import ParallelEnvBatch, SubprocessEnvBatch
from policies.value.common import EpisodeBuffer
from policies.value.trainer import EpisodicTrainer, episode_limit

torch.set_num_threads(1)

QUIET = {"progress": False, "tensorboard": False}
# Additive payoff r_1(u_1) + r_2(u_2): optimum (1, 2), worth 7 a step; the runner-up 5.
ADDITIVE_PAYOFF = (np.array([1.0, 4.0, 0.0])[:, None] + np.array([0.0, 1.0, 3.0])[None, :]).tolist()
SMALL_COVERAGE = dict(width=8, height=8, cell_size=0.25, footprint=3, patch_size=5,
                      summary_size=2, max_steps=30)
TINY_RUN = (["--scenario", "coverage", "--num-drones", "2", "trainer.num_envs=4",
             "trainer.rollout_steps=16", "trainer.progress=false", "trainer.tensorboard=false"]
            + [f"env.{k}={v}" for k, v in SMALL_COVERAGE.items()])
PER_ROLLOUT = 4 * 16  # env steps of one rollout of TINY_RUN


class RepeatedMatrixGame(ParallelEnv):
    """A cooperative matrix game played for `shortest..longest` rounds (drawn from the reset
    seed); it declares no episode length. longest=None never ends. Records every finished
    episode's length in `finished`."""

    metadata = {"name": "repeated_matrix_v0", "render_modes": []}

    def __init__(self, payoff, shortest: int = 1, longest: int | None = 8):
        self.payoff = np.asarray(payoff, np.float32)
        self.shortest, self.longest = shortest, longest
        self.possible_agents = [f"agent_{i}" for i in range(self.payoff.ndim)]
        self.agents: list[str] = []
        self._obs_space = spaces.Box(0.0, 1.0, (1,), np.float32)
        self._action_spaces = {a: spaces.Discrete(self.payoff.shape[i])
                               for i, a in enumerate(self.possible_agents)}
        self.finished: list[int] = []
        self._t, self._length = 0, 0

    def observation_space(self, agent):
        return self._obs_space

    def action_space(self, agent):
        return self._action_spaces[agent]

    def state(self):
        return np.ones(1, np.float32)

    def reset(self, seed=None, options=None):
        rng = np.random.default_rng(seed)
        self._length = (0 if self.longest is None
                        else int(rng.integers(self.shortest, self.longest + 1)))
        self._t = 0
        self.agents = list(self.possible_agents)
        return {a: np.ones(1, np.float32) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions):
        reward = float(self.payoff[tuple(int(actions[a]) for a in self.possible_agents)])
        self._t += 1
        done = self._length > 0 and self._t >= self._length
        obs = {a: np.ones(1, np.float32) for a in self.agents}
        out = (obs, {a: reward for a in self.agents}, {a: done for a in self.agents},
               {a: False for a in self.agents}, {a: {} for a in self.agents})
        if done:
            self.agents = []
            self.finished.append(self._t)
        return out


def episodic_trainer(env_fn, out_dir=None, algo: str = "vdn", resume: bool = False, **algo_cfg):
    cfg = {"trainer": {**QUIET, "num_envs": 4}, "algo": {"learning_starts": 4,
                                                         "batch_episodes": 4, **algo_cfg}}
    return EpisodicTrainer(resolve_config(algo, None, cfg, seed=0), env_fn, out_dir, resume=resume)


# -- bring your own env: the episode length ------------------------------------------------------
def test_episode_buffer_grows_and_keeps_stored_episodes_whole():
    buf = EpisodeBuffer(capacity=4, limit=3, num_agents=2, obs_size=1, state_size=1)

    def episode(length: int, limit: int) -> dict[str, np.ndarray]:
        ep = EpisodeBuffer(1, limit, 2, 1, 1).data
        ep["reward"][0, :length] = np.arange(1, length + 1)
        ep["mask"][0, :length] = 1.0
        ep["obs"][0, : length + 1] = 1.0  # the observations, the final one included
        return ep

    buf.add(episode(2, 3))
    buf.grow(8)
    buf.add(episode(7, 8))
    assert buf.limit == 8 and buf.data["reward"].shape == (4, 8)
    assert buf.data["mask"][:2].sum(1).tolist() == [2.0, 7.0]
    assert buf.data["reward"][0].tolist() == [1, 2, 0, 0, 0, 0, 0, 0]  # kept, zero padding
    assert buf.data["obs"][0, :, 0, 0].tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0]
    batch = buf.latest(2)
    assert batch["mask"].shape == (2, 7) and batch["obs"].shape == (2, 8, 2, 1)


def test_episode_length_is_read_from_what_the_env_declares():
    game = RepeatedMatrixGame(ADDITIVE_PAYOFF)
    assert episode_limit(SimpleNamespace(first_env=game), 0) == (episodic.FIRST_EPISODE_LIMIT, True)
    assert episode_limit(SimpleNamespace(first_env=game), 12) == (12, False)  # algo.episode_limit
    game.max_cycles = 25  # PettingZoo's name (MPE, butterfly)
    assert episode_limit(SimpleNamespace(first_env=game), 0) == (25, False)
    wrapped = SimpleNamespace(unwrapped=SimpleNamespace(max_steps=40))
    assert episode_limit(SimpleNamespace(first_env=wrapped), 0) == (40, False)
    gym_style = SimpleNamespace(spec=SimpleNamespace(max_episode_steps=50))
    assert episode_limit(SimpleNamespace(first_env=gym_style), 0) == (50, False)
    undeclared = SimpleNamespace(spec=SimpleNamespace(max_episode_steps=None), max_steps=True)
    assert episode_limit(SimpleNamespace(first_env=undeclared), 0)[1]


def test_collection_grows_the_padded_length_and_stores_episodes_whole():
    games: list[RepeatedMatrixGame] = []

    def make_game():
        games.append(RepeatedMatrixGame(ADDITIVE_PAYOFF, shortest=20, longest=70))
        return games[-1]

    trainer = episodic_trainer(make_game)
    assert trainer.limit == episodic.FIRST_EPISODE_LIMIT < 20
    for _ in range(3):
        for game in games:
            game.finished.clear()
        trainer.collect()
        true_lengths = [game.finished[0] for game in games]  # each env's collected episode
        newest = trainer.buffer.latest(4)
        lengths = newest["mask"].sum(1).flip(0).tolist()  # latest() lists newest first
        assert lengths == true_lengths
        assert all(newest["terminated"][i, int(n) - 1] == 1 for i, n in
                   enumerate(newest["mask"].sum(1)))  # each stored through its real end
    assert trainer.buffer.limit == trainer.limit >= max(max(g.finished) for g in games) > 16
    assert trainer.buffer.size == 12
    assert trainer.buffer.data["mask"].sum() == trainer.global_step


def test_an_episode_that_never_ends_stops_with_the_fix(monkeypatch):
    monkeypatch.setattr(episodic, "EPISODE_LENGTH_CAP", 64)
    trainer = episodic_trainer(lambda: RepeatedMatrixGame(ADDITIVE_PAYOFF, longest=None))
    with pytest.raises(ValueError, match="ran past 64 steps without ending.*set "
                                         "algo.episode_limit.*truncate"):
        trainer.collect()
    cut = episodic_trainer(lambda: RepeatedMatrixGame(ADDITIVE_PAYOFF, longest=None),
                           episode_limit=10)  # the fix: cut and bootstrap at 10 steps
    cut.collect()
    assert cut.buffer.data["mask"][:4].sum(1).tolist() == [10.0] * 4 and cut.limit == 10


def test_checkpoint_keeps_the_grown_buffer_and_resumes_like_an_uninterrupted_run(tmp_path):
    def make_game():
        return RepeatedMatrixGame(ADDITIVE_PAYOFF, shortest=10, longest=40)

    config = {"trainer": {**QUIET, "num_envs": 4, "checkpoint_every": 2},
              "algo": {"learning_starts": 4, "batch_episodes": 4}}
    straight = policies.train("vdn", make_game, 800, seed=3, config=config,
                              out_dir=tmp_path / "straight")
    policies.train("vdn", make_game, 400, seed=3, config=config, out_dir=tmp_path / "split")
    saved = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=False)
    assert saved["episode_limit"] > episodic.FIRST_EPISODE_LIMIT  # it grew before the save
    trainer = EpisodicTrainer(saved["config"], make_game, tmp_path / "split", resume=True)
    assert trainer.limit == trainer.buffer.limit == saved["episode_limit"]
    for k, v in saved["buffer"]["data"].items():
        assert np.array_equal(trainer.buffer.data[k][: len(v)], v), k
    resumed = policies.train("vdn", make_game, 800, out_dir=tmp_path / "split", resume=True)
    assert resumed.metadata["global_step"] == straight.metadata["global_step"] >= 800
    a, b = straight.agent.state_dict(), resumed.agent.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_qmix_takes_the_optimum_of_a_game_whose_length_is_undeclared_and_varies():
    policy = policies.train(
        "qmix", lambda: RepeatedMatrixGame(ADDITIVE_PAYOFF, shortest=1, longest=24), 12_000,
        seed=0, config={"trainer": {**QUIET, "num_envs": 16, "normalize_obs": False,
                                    "normalize_state": False},
                        "algo": {"lr": 2.0e-3, "epsilon_anneal_steps": 4000, "gamma": 0.9,
                                 "updates_per_collect": 2, "target_update_interval": 50}})
    ones = np.ones(1, np.float32)
    for _ in range(5):  # every round of the repeated game, the hidden state carried on
        assert policy.act({"agent_0": ones, "agent_1": ones}) == {"agent_0": 1, "agent_1": 2}


# -- the Python API's own checks --------------------------------------------------------------
@pytest.mark.parametrize("steps", [0, -5, float("nan")])
def test_train_refuses_a_budget_that_trains_nothing(steps, tmp_path):
    with pytest.raises(ValueError, match="total_steps must be a positive number of env steps"):
        policies.train("mappo", "coverage", steps, out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


# -- marl-ros train --------------------------------------------------------------------------------
@pytest.mark.parametrize("steps", ["-5", "0"])
def test_cli_train_refuses_a_non_positive_budget_before_any_work(steps, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--algo", "mappo", "--steps", steps, "--out", str(out), *TINY_RUN]) == 2
    captured = capsys.readouterr()
    assert f"--steps must be a positive number of env steps (got {steps})" in captured.err
    assert captured.out == "" and not out.exists()


def test_cli_train_reports_the_env_steps_it_really_trained(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--algo", "mappo", "--steps", "100", "--out", str(out), *TINY_RUN]) == 0
    text = capsys.readouterr().out
    assert policies.load(out / "policy.pt").metadata["global_step"] == 2 * PER_ROLLOUT
    assert ("trained mappo on coverage for 128 env steps (asked 100; training runs whole "
            "rollouts of 64 steps, 4 envs x 16 steps)") in text
    assert main(["train", "--algo", "mappo", "--steps", "64", "--out", str(tmp_path / "exact"),
                 *TINY_RUN]) == 0
    text = capsys.readouterr().out
    assert "trained mappo on coverage for 64 env steps in" in text and "asked" not in text


def test_cli_train_stops_at_the_wall_clock_budget_and_says_so(tmp_path, capsys):
    """trainer.max_minutes ends a run after the iteration that reaches the budget of
    training-loop time (progress.csv's wall_s), with a policy and a checkpoint like any end."""
    import csv

    out = tmp_path / "run"
    budget = 0.005  # minutes: 0.3 s, a few tiny rollouts
    assert main(["train", "--algo", "mappo", "--steps", "10000000", "--out", str(out), *TINY_RUN,
                 f"trainer.max_minutes={budget}"]) == 0
    text = capsys.readouterr().out
    trained = policies.load(out / "policy.pt").metadata["global_step"]
    assert 0 < trained < 10_000_000 and trained % PER_ROLLOUT == 0
    assert (f"for {trained:,} env steps (asked 10,000,000; stopped at trainer.max_minutes="
            f"{budget:g} of training-loop time)") in text
    walls = [float(row["wall_s"]) for row in csv.DictReader((out / "progress.csv").open())]
    assert walls[-1] >= 60 * budget > walls[-2]  # stopped at the first iteration past it
    assert (out / "checkpoint.pt").exists()


@pytest.mark.parametrize("value", ["-1", "nan", "true"])
def test_cli_train_refuses_a_bad_time_budget_before_any_work(value, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--algo", "mappo", "--steps", "64", "--out", str(out), *TINY_RUN,
                 f"trainer.max_minutes={value}"]) == 2
    assert "trainer.max_minutes must be a number of minutes >= 0" in capsys.readouterr().err
    assert not (out / "checkpoint.pt").exists()


def test_cli_resume_refuses_another_algorithm_or_scenario_and_continues_the_run(tmp_path,
                                                                                 capsys):
    out = tmp_path / "run"
    assert main(["train", "--algo", "mappo", "--steps", "64", "--out", str(out), *TINY_RUN]) == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    assert main(["train", "--algo", "happo", "--steps", "128", "--out", str(out), "--resume"]) == 2
    captured = capsys.readouterr()
    assert (f"{out} holds a mappo run, so --resume cannot continue it as happo; drop --algo or "
            "pass --algo mappo, or train happo in another --out folder.") in captured.err
    assert captured.out == ""
    assert main(["train", "--scenario", "spread", "--steps", "128", "--out", str(out),
                 "--resume"]) == 2
    captured = capsys.readouterr()
    assert "holds a run on coverage" in captured.err and "--scenario coverage" in captured.err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # untouched
    with pytest.raises(ValueError, match="holds a mappo run, not happo"):
        policies.train("happo", "coverage", 128, out_dir=out, resume=True)

    assert main(["train", "--steps", "128", "--out", str(out), "--resume"]) == 0  # the run's algo
    assert "trained mappo on coverage to 128 env steps in all" in capsys.readouterr().out
    assert policies.load(out / "policy.pt").metadata["global_step"] == 128
    assert main(["train", "--steps", "64", "--out", str(tmp_path / "new")]) == 2
    assert "--algo is required to start a run" in capsys.readouterr().err


def test_bench_train_throughput_reports_off_policy_updates_beside_the_bare_env_rate(capsys):
    from marl_ros.bench import bench_train_throughput

    tiny = {"env": {"num_drones": 2, "width": 8, "height": 8, "footprint": 3, "patch_size": 5,
                    "summary_size": 2, "max_steps": 10},
            "trainer": {"num_envs": 2, "rollout_steps": 4},
            "algo": {"hidden_sizes": [16], "critic_hidden_sizes": [16], "batch_size": 16,
                     "buffer_size": 256, "learning_starts": 32, "utd_ratio": 0.5}}
    results = bench_train_throughput(("hatd3",), seconds=0.3, config=tiny)
    assert results["hatd3_num_envs"] == 2
    assert results["hatd3_gradient_steps"] >= 4  # utd 0.5 x 8 env steps per iteration
    for key in ("train_steps_per_s", "updates_per_s", "collect_steps_per_s",
                "bare_env_steps_per_s"):
        assert results[f"hatd3_{key}"] > 0
    assert results["hatd3_updates_per_s"] < results["hatd3_train_steps_per_s"]
    assert 0 < results["hatd3_update_fraction"] < 1
    assert "hatd3" in capsys.readouterr().out


# -- bring your own env: worker processes ----------------------------------------------------------
class TargetWalk(ParallelEnv):
    """Two agents told a random target each step, paid -|a - target|; the episode length
    (3-7) and the targets come from the reset seed; `coverage` (progress through the
    episode) in the infos of even steps only; `fail_at`: step count that raises."""

    metadata = {"name": "target_walk_v0", "render_modes": []}

    def __init__(self, fail_at: int | None = None):
        self.possible_agents = ["a", "b"]
        self.agents: list[str] = []
        self.fail_at, self.steps = fail_at, 0
        self._obs = spaces.Box(-1.0, 1.0, (3,), np.float32)
        self._act = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def observation_space(self, agent):
        return self._obs

    def action_space(self, agent):
        return self._act

    def state(self):
        return np.concatenate([self.targets, [self.t / self.length]]).astype(np.float32)

    def _observe(self):
        return {a: np.array([self.targets[i], self.t / self.length, i], np.float32)
                for i, a in enumerate(self.agents)}

    def reset(self, seed=None, options=None):
        self.rng = np.random.default_rng(seed)
        self.length, self.t = int(self.rng.integers(3, 8)), 0
        self.targets = self.rng.uniform(-1, 1, 2)
        self.agents = list(self.possible_agents)
        return self._observe(), {a: {} for a in self.agents}

    def step(self, actions):
        self.steps += 1
        if self.fail_at is not None and self.steps >= self.fail_at:
            raise ValueError("the simulator lost its licence")
        rewards = {a: -abs(float(actions[a][0]) - self.targets[i])
                   for i, a in enumerate(self.agents)}
        self.t += 1
        self.targets = self.rng.uniform(-1, 1, 2)
        done = self.t >= self.length
        info = {"coverage": self.t / self.length} if self.t % 2 == 0 else {}
        obs = self._observe()
        out = (obs, rewards, {a: done for a in self.agents}, {a: False for a in self.agents},
               {a: dict(info) for a in self.agents})
        if done:
            self.agents = []
        return out


def test_env_workers_step_the_same_arrays_as_one_process():
    here = ParallelEnvBatch(TargetWalk, 5)
    workers = SubprocessEnvBatch(TargetWalk, 5, 2)  # rows 0-1 and 2-4
    try:
        rng = np.random.default_rng(0)
        np.testing.assert_array_equal(here.reset(seed=3), workers.reset(seed=3))
        finished = 0
        for _ in range(30):
            actions = rng.uniform(-1, 1, (5, 2, 1)).astype(np.float32)
            a, b = here.step(actions), workers.step(actions)
            for x, y in zip(a[:4], b[:4], strict=True):
                np.testing.assert_array_equal(x, y)
            assert a[4].keys() == b[4].keys()
            for key in a[4]:
                np.testing.assert_array_equal(a[4][key], b[4][key], err_msg=key)
            np.testing.assert_array_equal(here.state(), workers.state())
            finished += int(a[4]["done"].sum())
        assert finished >= 10  # episodes ended and restarted in both workers' rows
        assert workers.spec == dataclasses.replace(here.spec, num_envs=5)
    finally:
        workers.close()
        here.close()
    assert not [p for p in workers.procs if p.is_alive()] and not multiprocessing.active_children()


def test_training_with_env_workers_gives_the_same_policy_and_leaves_no_worker():
    cfg = {"trainer": {**QUIET, "num_envs": 4, "rollout_steps": 16}}
    trained = {}
    for workers in (0, 3):
        cfg["trainer"]["env_workers"] = workers
        policy = policies.train("mappo", TargetWalk, 256, seed=1, config=cfg)
        trained[workers] = [p.detach().clone() for p in policy.actors.parameters()]
        assert not multiprocessing.active_children()  # closed with the training
    for x, y in zip(trained[0], trained[3], strict=True):
        assert torch.equal(x, y)


def test_an_env_error_in_a_worker_is_one_sentence_naming_the_worker():
    batch = SubprocessEnvBatch(lambda: TargetWalk(fail_at=4), 4, 2)
    try:
        batch.reset(seed=0)
        with pytest.raises(RuntimeError, match=r"env worker 0 \(rows 0-1\) failed: ValueError: "
                                               "the simulator lost its licence"):
            for _ in range(4):
                batch.step(np.zeros((4, 2, 1), np.float32))
    finally:
        batch.close()
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("env_fn,workers,message", [
    ("coverage", 2, r"trainer.env_workers=2 is for a user's ParallelEnv; the 'coverage' scenario "
                    r"steps every env in one numpy call \(set trainer.env_workers=0\)"),
    (TargetWalk, 5, r"trainer.env_workers must be between 0 and trainer.num_envs=4 \(got 5\)"),
])
def test_env_workers_are_refused_where_they_cannot_apply(env_fn, workers, message):
    cfg = {"trainer": {**QUIET, "num_envs": 4, "env_workers": workers}}
    with pytest.raises(ValueError, match=message):
        policies.train("mappo", env_fn, 64, config=cfg)


def test_an_env_fn_that_cannot_reach_the_workers_is_refused_with_the_fix():
    import threading

    lock = threading.Lock()  # held by the function: no pickle sends it

    def env_fn():
        with lock:
            return TargetWalk()

    with pytest.raises(ValueError, match=r"env_fn cannot be sent to the env workers \(TypeError: "
                                         r".*\); pass a function that builds the env inside it"):
        SubprocessEnvBatch(env_fn, 4, 2)
    assert not multiprocessing.active_children()


WORKERS_OF_A_KILLED_TRAINER = """
import sys
sys.path.insert(0, sys.argv[1])
from test_training_api import TargetWalk
from policies.envs import SubprocessEnvBatch
batch = SubprocessEnvBatch(TargetWalk, 4, 2)
print(" ".join(str(p.pid) for p in batch.procs), flush=True)
sys.stdin.read()
"""


def test_env_workers_end_when_the_trainer_is_killed():
    here = os.path.dirname(__file__)
    trainer = subprocess.Popen([sys.executable, "-c", WORKERS_OF_A_KILLED_TRAINER, here],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               cwd=os.path.dirname(here))
    pids = [int(p) for p in trainer.stdout.readline().split()]
    assert len(pids) == 2
    trainer.send_signal(signal.SIGKILL)
    trainer.wait(10)

    def alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        with open(f"/proc/{pid}/stat") as f:  # a zombie waiting for init to reap it is gone
            return f.read().split(")")[-1].split()[0] != "Z"

    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if alive(p)]


def test_bench_envs_measures_a_user_env_in_one_process_and_over_workers(capsys):
    assert main(["bench", "envs", "--env", "test_training_api:TargetWalk", "--num-envs", "4",
                 "--workers", "2", "--seconds", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "test_training_api:TargetWalk, 4 copies" in out
    rows = [line.split("│")[1:4] for line in out.splitlines() if line.count("│") == 4]
    assert [r[0].strip() for r in rows] == ["0", "2"]
    assert rows[0][2].strip() == "1.00x" and float(rows[1][2].strip()[:-1]) > 0
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("env,message", [
    ("no_such_module_xyz:make", "--env no_such_module_xyz:make: cannot import no_such_module_xyz"),
    ("test_training_api:NoSuchEnv", "--env test_training_api:NoSuchEnv: test_training_api has "
                                    "no function 'NoSuchEnv'."),
    ("simple_spread", "--env must be module:function"),
])
def test_bench_envs_refuses_an_env_it_cannot_find_with_one_sentence(env, message, capsys):
    assert main(["bench", "envs", "--env", env]) == 2
    assert message in capsys.readouterr().err
