"""Sweeps (`policies.sweep`, `marl-ros sweep`): the grid and its trials, bad input refused before
Ray starts, the summary's statistics on hand-written run folders, resume of an interrupted
trial, and one tiny sweep on a local Ray instance (2 CPUs) with its rerun."""

from __future__ import annotations

import csv
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import yaml

import policies
from marl_ros import cli
from policies import sweep

# The small coverage task: 2 drones on 8 x 8 cells, 20-step episodes, 80 env steps per update.
TINY = ["env.num_drones=2", "env.width=8", "env.height=8", "env.patch_size=5",
        "env.summary_size=2", "env.max_steps=20", "trainer.num_envs=4",
        "trainer.rollout_steps=20", "trainer.tensorboard=false"]


def tiny_spec(**changes) -> sweep.SweepSpec:
    spec = dict(algos=["mappo"], scenario="coverage", seeds=[0, 1], steps=1600,
                grid=sweep.parse_grid(["algo.lr_actor=1e-4,1e-3"]), fixed=list(TINY))
    return sweep.SweepSpec(**{**spec, **changes})


# ------------------------------------------------------------------------------------------------
# The spec
# ------------------------------------------------------------------------------------------------
def test_a_grid_is_the_product_of_its_values_and_each_trial_a_run_folder(tmp_path):
    grid = sweep.parse_grid(["algo.lr_actor=1e-4, 5e-4", "algo.hidden_sizes=[64,64],[128]"])
    assert grid == {"algo.lr_actor": ["1e-4", "5e-4"], "algo.hidden_sizes": ["[64,64]", "[128]"]}
    spec = sweep.SweepSpec(algos=["mappo", "happo"], scenario="coverage", seeds=[0, 1, 2],
                           steps=100, grid=grid)
    points = spec.grid_points()
    assert len(points) == 4 and points[1] == ("algo.lr_actor=1e-4", "algo.hidden_sizes=[128]")
    trials = spec.trials()
    assert len(trials) == 2 * 4 * 3 == len(set(trials))
    assert trials[0].run_dir(tmp_path) == (
        tmp_path / "mappo" / "algo.lr_actor=1e-4+algo.hidden_sizes=[64,64]" / "seed0")
    assert sweep.SweepSpec(algos=["mappo"], scenario="coverage", seeds=[3], steps=1).trials()[
        0].run_dir(tmp_path) == tmp_path / "mappo" / "default" / "seed3"


@pytest.mark.parametrize("item, message", [
    ("algo.lr_actor", "is not key=v1,v2"),
    ("=1e-4,5e-4", "is not key=v1,v2"),
    ("algo.lr_actor=1e-4,", "is not key=v1,v2"),
    ("algo.lr_actor=1e-4,1e-4", "repeats a value"),
])
def test_a_malformed_grid_is_one_sentence(item, message):
    with pytest.raises(ValueError, match=message):
        sweep.parse_grid([item])
    with pytest.raises(ValueError, match="given twice"):
        sweep.parse_grid(["algo.lr_actor=1", "algo.lr_actor=2"])


@pytest.fixture
def ray_must_not_start(monkeypatch):
    ray = pytest.importorskip("ray")

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(ray, "init", refuse)


@pytest.mark.parametrize("argv, message", [
    (["--algos", "mappo", "foo"], "unknown algorithm 'foo'; choose from: mappo, happo"),
    (["--algos", "mappo", "--steps", "0"], "--steps must be a positive number of env steps"),
    (["--algos", "mappo", "--grid", "algo.lr_actor"], "grid 'algo.lr_actor' is not key=v1,v2"),
    (["--algos", "mappo", "--grid", "algo.lr_actr=1,2"], "unknown MAPPOConfig key 'lr_actr'"),
    (["--algos", "mappo", "--set", "env.width=6", "env.height=6"],
     "summary_size must be an integer >= 1 that divides width=6"),
    (["--algos", "mappo", "--seeds", "0", "0"], "--seeds needs one or more distinct seeds"),
    (["--algos", "mappo", "--scenario", "atlantis"], "unknown scenario 'atlantis'"),
    (["--algos", "mappo", "--grid", "env.width=8,12", "--set", "env.width=8"],
     "env.width is both swept (--grid) and fixed (--set)"),
    (["--algos", "mappo", "--num-cpus", "0"], "--num-cpus must be >= 1"),
    (["--algos", "mappo", "--num-cpus", "2", "--address", "auto"], "--num-cpus sizes a local Ray"),
    (["--seeds", "0"], "--algos is required to run a sweep"),
    (["--algos", "mappo", "--set", "trainer.workers=2"], "trainer.workers inside its trials"),
])
def test_bad_input_is_refused_in_one_sentence_before_ray_starts(argv, message, tmp_path, capsys,
                                                                ray_must_not_start):
    assert cli.main(["sweep", "--out", str(tmp_path / "sweep"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("marl-ros sweep: ") and message in err and err.count("\n") == 1, err


def test_an_out_folder_holding_another_sweep_or_other_files_is_refused(tmp_path, capsys,
                                                                      ray_must_not_start):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "sweep.yaml").write_text(yaml.safe_dump(tiny_spec().to_dict()))
    argv = ["sweep", "--algos", "mappo", "--seeds", "0", "1", "2", "--steps", "1600", "--grid",
            "algo.lr_actor=1e-4,1e-3", "--set", *TINY, "--out", str(out)]
    assert cli.main(argv) == 2
    assert ("holds a different sweep (seeds: [0, 1] there, [0, 1, 2] here); repeat its spec"
            in capsys.readouterr().err)
    other = tmp_path / "run"
    other.mkdir()
    (other / "policy.pt").write_text("")
    assert cli.main([*argv[:-1], str(other)]) == 2
    assert "exists and holds no sweep.yaml" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# The summary's statistics (hand-written run folders, no training, no Ray)
# ------------------------------------------------------------------------------------------------
def write_run(run: Path, coverage: list[float], returns: list[float] | None = None) -> None:
    """A progress.csv as the trainer writes it (100 env steps per row); NaN: no episode ended."""
    run.mkdir(parents=True)
    returns = returns if returns is not None else [10 * c for c in coverage]
    with (run / "progress.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["global_step", "update", "wall_s", "steps_per_s", "episodic_return",
                         "episodic_length", "coverage"])
        for i, (c, r) in enumerate(zip(coverage, returns, strict=True)):
            writer.writerow([100 * (i + 1), i + 1, 0.1 * i, 1000.0, r, 20.0, c])
    (run / "config.yaml").write_text(yaml.safe_dump({"algorithm": "mappo", "scenario": "coverage"}))


def test_interquartile_mean_is_scipys_trimmed_mean_and_rliables_iqm():
    from rliable import metrics

    rng = np.random.default_rng(0)
    for n in range(1, 12):
        x = rng.normal(size=(n, 7))
        np.testing.assert_allclose(sweep.interquartile_mean(x), scipy.stats.trim_mean(x, 0.25))
        assert sweep.interquartile_mean(x[:, :1])[0] == pytest.approx(metrics.aggregate_iqm(x[:, 0]))


def test_summary_reports_iqm_with_a_bootstrap_ci_mean_median_and_curves(tmp_path):
    out = tmp_path / "sweep"
    rng = np.random.default_rng(1)
    final = [0.2, 0.55, 0.6, 0.62, 0.95]  # one failed and one lucky seed
    for seed, level in enumerate(final):
        curve = list(np.linspace(0.1, level, 12) + rng.normal(0, 0.01, 12))
        write_run(out / "mappo" / "algo.lr_actor=1e-4" / f"seed{seed}", [math.nan] * 2 + curve)
    for seed in range(3):
        write_run(out / "happo" / "default" / f"seed{seed}", list(np.linspace(0.1, 0.5, 14)))
    summary = sweep.summarize(out, last=3, reps=300)
    assert summary["metric"] == "coverage"
    first, second = summary["configs"]
    assert (first["algorithm"], first["overrides"], first["n"]) == ("happo", "default", 3)
    row = second
    scores = []
    for seed in range(5):
        with (out / "mappo" / "algo.lr_actor=1e-4" / f"seed{seed}" / "progress.csv").open() as f:
            coverage = [float(r["coverage"]) for r in csv.DictReader(f)]
        scores.append(np.mean(coverage[-3:]))
    assert row["scores"] == pytest.approx(scores)
    assert row["iqm"] == pytest.approx(scipy.stats.trim_mean(scores, 0.25))
    assert row["mean"] == pytest.approx(np.mean(scores))
    assert row["median"] == pytest.approx(np.median(scores))
    low, high = row["ci"]
    assert min(scores) <= low < row["iqm"] < high <= max(scores)
    # Learning curve: the steps every seed logged a value at (the NaN rows dropped), IQM there.
    curve = row["curve"]
    assert curve["global_step"] == list(range(300, 1500, 100))
    at_800 = []
    for seed in range(5):
        with (out / "mappo" / "algo.lr_actor=1e-4" / f"seed{seed}" / "progress.csv").open() as f:
            at_800 += [float(r["coverage"]) for r in csv.DictReader(f) if r["global_step"] == "800"]
    i = curve["global_step"].index(800)
    assert curve["iqm"][i] == pytest.approx(scipy.stats.trim_mean(at_800, 0.25))
    assert all(lo <= m <= hi for lo, m, hi in zip(curve["low"], curve["iqm"], curve["high"],
                                                   strict=True))
    # The files, and the same figures again (a fixed bootstrap seed).
    assert (out / "summary.png").stat().st_size > 10_000
    md = (out / "summary.md").read_text()
    assert (f"| mappo | algo.lr_actor=1e-4 | 5/5 | {100 * row['iqm']:.1f}% | "
            f"[{100 * low:.1f}%, {100 * high:.1f}%] |") in md
    again = json.loads((out / "summary.json").read_text())
    assert sweep.summarize(out, last=3, reps=300)["configs"] == again["configs"]


def test_summary_falls_back_to_the_return_where_no_coverage_is_logged(tmp_path):
    out = tmp_path / "sweep"
    for seed, level in enumerate([1.0, 2.0, 3.0, 4.0]):
        write_run(out / "maddpg" / "default" / f"seed{seed}", [math.nan] * 5, [0.0] * 4 + [level])
    summary = sweep.summarize(out, reps=100)
    assert summary["metric"] == "episodic_return"
    assert summary["configs"][0]["iqm"] == pytest.approx(0.5)
    assert summary["configs"][0]["scores"] == pytest.approx([0.2, 0.4, 0.6, 0.8])  # last 10 -> 5
    with pytest.raises(FileNotFoundError, match="holds no run folders"):
        sweep.summarize(tmp_path / "sweep" / "maddpg", reps=100)


# ------------------------------------------------------------------------------------------------
# One trial (no Ray): an interrupted trial resumes, a start killed before its checkpoint restarts
# ------------------------------------------------------------------------------------------------
def test_an_interrupted_trial_resumes_and_an_unsaved_start_begins_again(tmp_path):
    trial = tiny_spec().trials()[0]
    run = trial.run_dir(tmp_path)
    short = sweep.train_trial(trial, tiny_spec(steps=800), str(tmp_path))
    assert not short["resumed"] and short["global_step"] == 800
    (run / "policy.pt").unlink()  # stopped after its last checkpoint, before the policy
    info = sweep.train_trial(trial, tiny_spec(), str(tmp_path))
    assert info["resumed"] and info["global_step"] == 1600
    with (run / "progress.csv").open() as f:
        steps = [int(r["global_step"]) for r in csv.DictReader(f)]
    assert steps == list(range(80, 1601, 80))
    fresh = tiny_spec().trials()[1].run_dir(tmp_path)  # config and rows, never a checkpoint
    fresh.mkdir(parents=True)
    (fresh / "progress.csv").write_text("global_step,coverage\n999999,0.5\n")
    assert not sweep.train_trial(tiny_spec().trials()[1], tiny_spec(steps=160),
                                 str(tmp_path))["resumed"]
    with (fresh / "progress.csv").open() as f:
        assert [int(r["global_step"]) for r in csv.DictReader(f)] == [80, 160]


# ------------------------------------------------------------------------------------------------
# A tiny sweep on a local Ray instance
# ------------------------------------------------------------------------------------------------
def ray_processes() -> list[str]:
    """Ray's processes started from this one (raylet, GCS, workers, agents)."""
    import psutil

    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            command = " ".join(child.cmdline())
        except psutil.Error:  # ended meanwhile
            continue
        if "ray" in command:
            found.append(f"{child.pid}: {command[:80]}")
    return found


def test_a_tiny_sweep_on_local_ray_writes_runs_and_a_summary_and_reruns_for_free(tmp_path,
                                                                                 monkeypatch):
    ray = pytest.importorskip("ray")
    start_ray = ray.init

    def init_or_skip(*args, **kwargs):
        try:
            return start_ray(*args, **kwargs)
        except Exception as err:  # only here: a machine where Ray cannot start
            pytest.skip(f"Ray cannot start on this machine: {type(err).__name__}: {err}")

    monkeypatch.setattr(ray, "init", init_or_skip)
    out = tmp_path / "sweep"
    argv = ["sweep", "--algos", "mappo", "--seeds", "0", "1", "--steps", "1600", "--grid",
            "algo.lr_actor=1e-4,1e-3", "--set", *TINY, "--out", str(out), "--num-cpus", "2",
            "--reps", "200"]
    assert cli.main(argv) == 0
    assert not ray_processes(), "Ray processes outlived the sweep"
    spec = tiny_spec()
    mtimes = {}
    for trial in spec.trials():
        run = trial.run_dir(out)
        policy = policies.load(run / "policy.pt")  # a normal run folder
        assert policy.metadata["global_step"] == 1600 and policy.metadata["seed"] == trial.seed
        config = yaml.safe_load((run / "config.yaml").read_text())
        lr = float(trial.overrides[0].split("=")[1])
        assert config["algo"]["lr_actor"] == lr and config["seed"] == trial.seed
        assert config["env"]["width"] == 8 and config["trainer"]["progress"] is False
        mtimes[run] = (run / "policy.pt").stat().st_mtime_ns
    summary = json.loads((out / "summary.json").read_text())
    assert [r["overrides"] for r in summary["configs"]] == ["algo.lr_actor=1e-4",
                                                           "algo.lr_actor=1e-3"]
    for row in summary["configs"]:
        scores = []
        for seed in (0, 1):
            with (out / "mappo" / row["overrides"] / f"seed{seed}" / "progress.csv").open() as f:
                coverage = [float(r["coverage"]) for r in csv.DictReader(f)]
            scores.append(np.mean([c for c in coverage if np.isfinite(c)][-10:]))
        assert row["iqm"] == pytest.approx(scipy.stats.trim_mean(scores, 0.25))
        assert row["ci"][0] <= row["iqm"] <= row["ci"][1]
    assert (out / "summary.png").is_file() and (out / "summary.md").is_file()
    # Scored instead by deterministic episodes of each final policy (cached in the run folder).
    evaluated = sweep.summarize(out, eval_episodes=4, reps=100)
    for row in evaluated["configs"]:
        held = [json.loads((out / "mappo" / row["overrides"] / f"seed{s}" / "sweep_eval.json")
                           .read_text()) for s in (0, 1)]
        assert row["scores"] == pytest.approx([h["figures"]["coverage"] for h in held])
        assert all(h["episodes"] == 4 and h["backend"] == "fast" for h in held)
    assert "4 deterministic episodes of the final policy" in evaluated["score"]
    # The same sweep again: every trial is finished, so nothing trains and Ray never starts.
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray started on a rerun"))
    began = time.perf_counter()
    assert cli.main(argv) == 0
    assert time.perf_counter() - began < 20
    assert all((run / "policy.pt").stat().st_mtime_ns == m for run, m in mtimes.items())
    assert os.path.exists(out / "sweep.yaml")
