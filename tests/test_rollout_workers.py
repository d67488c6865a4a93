"""Ray rollout workers (`trainer.workers`, `policies.rollout_workers`), on a local Ray
instance of 2 CPUs: one worker reproduces the in-process run bit for bit (on-policy and
off-policy), K workers resume exactly, learn like the in-process path, train a user's
ParallelEnv, and the trainer ends the Ray instance it started. Skipped, with the reason,
only where Ray cannot start here."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from test_onpolicy import QUIET, SEEDS, SMALL

import policies
from policies.evaluation import evaluate, evaluate_random_walk

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[scale]')")

TINY = {"num_envs": 4, "rollout_steps": 40, "device": "cpu"}
OFF_POLICY_TINY = {"learning_starts": 400, "batch_size": 64}


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (2 CPUs) for the module; the trainers use it as it is."""
    if not ray.is_initialized():
        try:
            # the workers import this folder's test envs, as a user's workers import theirs
            ray.init(num_cpus=2, include_dashboard=False,
                     runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).parent)}})
        except Exception as err:  # the only reason to skip: Ray cannot start on this machine
            pytest.skip(f"a local Ray instance does not start here: {err}")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def small_random_walk() -> float:
    return evaluate_random_walk("coverage", episodes=32, seed=7, **SMALL)["coverage"]


def train(algo: str, steps: int, seed: int = 3, out_dir=None, resume: bool = False, **trainer):
    algo_cfg = OFF_POLICY_TINY if algo in (*policies.OFF_POLICY_ALGORITHM_NAMES, *policies.MEAN_FIELD_ALGORITHM_NAMES) else {}
    return policies.train(algo, "coverage", steps, seed=seed, out_dir=out_dir, resume=resume,
                          config={"env": SMALL, "trainer": {**QUIET, **TINY, **trainer},
                                  "algo": algo_cfg})


def same_weights(a, b) -> bool:
    sa, sb = a.actors.state_dict(), b.actors.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("algo", ["mappo", "happo", "hatd3", "maddpg", "mf_q"])
def test_one_worker_holding_every_env_is_the_in_process_run_exactly(local_ray, algo):
    local = train(algo, 4000)
    remote = train(algo, 4000, workers=1)
    assert same_weights(local, remote)
    assert remote.metadata["global_step"] == local.metadata["global_step"] == 4000
    assert remote.metadata["env_config"] == local.metadata["env_config"]


@pytest.mark.parametrize("algo", ["mappo", "hatd3"])
def test_two_workers_step_their_own_envs_and_resume_exactly(local_ray, algo, tmp_path):
    """Two workers give other numbers than one process (their own streams), but a run
    stopped at a checkpoint and resumed ends where the uninterrupted one does."""
    straight = train(algo, 960, out_dir=tmp_path / "straight", workers=2, checkpoint_every=3)
    assert not same_weights(straight, train(algo, 960))
    train(algo, 480, out_dir=tmp_path / "split", workers=2, checkpoint_every=3)
    resumed = train(algo, 960, out_dir=tmp_path / "split", resume=True, workers=2,
                    checkpoint_every=3)
    assert same_weights(straight, resumed)
    rows = (tmp_path / "straight" / "progress.csv").read_text().splitlines()
    assert len(rows) == 1 + 960 // 160  # one row per iteration of 4 envs x 40 steps


@pytest.mark.parametrize("workers", [1, 2])
def test_workers_train_a_users_parallel_env(local_ray, workers):
    """A user's env function travels to the workers (cloudpickle); one worker is the
    in-process run exactly, two train to the same step count."""
    from test_training_api import TargetWalk

    def run(count: int):
        return policies.train("mappo", lambda: TargetWalk(), 800, seed=0,
                              config={"trainer": {**QUIET, "num_envs": 4, "rollout_steps": 20,
                                                  "workers": count, "device": "cpu"}})

    remote, local = run(workers), run(0)
    assert remote.metadata["global_step"] == local.metadata["global_step"] == 800
    assert same_weights(remote, local) == (workers == 1)
    obs = {agent: np.zeros(3, np.float32) for agent in remote.agents}
    assert set(remote.act(obs)) == {"a", "b"}


def test_workers_are_refused_for_families_they_do_not_serve_before_ray_starts():
    with pytest.raises(ValueError, match=r"trainer.workers=2: Ray rollout workers serve the "
                                         r"on-policy, off-policy and mean-field families, not qmix"):
        policies.train("qmix", "coverage", 100, config={"env": SMALL, "trainer": {
            **QUIET, "num_envs": 4, "workers": 2}})
    with pytest.raises(ValueError, match="between 0 and trainer.num_envs=4"):
        train("mappo", 100, workers=5)
    with pytest.raises(ValueError, match="do not combine"):
        policies.train("mappo", lambda: None, 100, config={"trainer": {
            "num_envs": 4, "workers": 2, "env_workers": 2}})


def test_bench_workers_splits_an_iteration_and_predicts_from_one_worker(local_ray, capsys):
    from marl_ros.bench import bench_workers

    out = bench_workers(("mappo",), workers=(0, 1), seconds=0.5)
    for key in ("rate", "step_s", "update_s", "steps"):
        assert out[f"mappo_w0_{key}"] > 0 and out[f"mappo_w1_{key}"] > 0
    assert out["mappo_w0_transfer_s"] == 0 < out["mappo_w1_transfer_s"]
    w1 = {k: out[f"mappo_w1_{k}"] for k in ("steps", "transfer_s", "update_s")}
    assert out["mappo_ceiling_steps_per_s"] == pytest.approx(
        w1["steps"] / (w1["transfer_s"] + w1["update_s"]))
    printed = capsys.readouterr().out
    assert "predicted with a core per worker" in printed and "ceiling" in printed


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["mappo"])
def test_two_workers_learn_small_coverage_like_the_in_process_path(local_ray, algo,
                                                                   small_random_walk,
                                                                   record_property):
    """The in-process learning test's task, budget and margin (tests/test_onpolicy.py),
    collected by two workers."""
    from test_onpolicy import LEARNING_MARGIN, LEARNING_STEPS

    per_seed = []
    for seed in SEEDS:
        policy = policies.train(algo, "coverage", LEARNING_STEPS, seed=seed,
                                config={"env": SMALL, "trainer": {**QUIET, "workers": 2}})
        per_seed.append(evaluate(policy, "coverage", episodes=32, seed=7, **SMALL)["coverage"])
    record_property("coverage_per_seed", per_seed)
    assert np.mean(per_seed) > small_random_walk + LEARNING_MARGIN, (per_seed, small_random_walk)


def test_the_trainer_ends_the_ray_instance_it_started():
    if ray.is_initialized():
        ray.shutdown()
    try:
        train("mappo", 320, workers=2)
    except Exception as err:
        if "ray" in type(err).__module__:
            pytest.skip(f"a local Ray instance does not start here: {err}")
        raise
    assert not ray.is_initialized()
    deadline = time.monotonic() + 90  # Ray's helper agents notice their raylet is gone
    while time.monotonic() < deadline:
        left = subprocess.run(["pgrep", "-f", "raylet|gcs_server|RolloutWorker"],
                              capture_output=True, text=True).stdout.split()
        if not left:
            break
        time.sleep(1)
    assert not left, f"Ray processes left behind: {left}"


def test_workers_join_a_running_cluster_at_its_address_and_leave_it_running():
    """`trainer.ray_address`: the trainer joins a cluster someone else started (here a head
    node started with `ray start` on this machine) and does not shut it down."""
    from shutil import which

    if ray.is_initialized():
        ray.shutdown()
    ray_cli = str(Path(sys.executable).parent / "ray")
    if not Path(ray_cli).exists():
        ray_cli = which("ray") or ray_cli
    env = {**os.environ, "RAY_ADDRESS": ""}
    with socket.socket() as probe:  # a free port: the address this test's head listens on
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    started = subprocess.run([ray_cli, "start", "--head", f"--port={address.split(':')[1]}",
                              "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
                             capture_output=True, text=True, env=env, timeout=120)
    if started.returncode != 0:
        pytest.skip(f"a Ray head node does not start here: {started.stderr.strip()[-300:]}")
    try:
        policy = train("mappo", 320, workers=2, ray_address=address)
        assert policy.metadata["global_step"] == 320
        assert not ray.is_initialized()  # the trainer's connection ended ...
        ray.init(address=address)  # ... and the cluster it joined is still up
        assert ray.cluster_resources().get("CPU") == 2
        ray.shutdown()
    finally:
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, timeout=120)
