"""Sweeps: algorithms x seeds x a grid of config overrides, trained as Ray tasks, summarised
the way careful MARL evaluation reports results (several seeds, interquartile mean, bootstrap
confidence intervals, learning curves with bands).

    spec = SweepSpec(algos=["mappo", "happo"], scenario="coverage", seeds=[0, 1, 2],
                     steps=200_000, grid=parse_grid(["algo.lr_actor=1e-4,5e-4"]))
    run_sweep(spec, "runs/sweep")                 # local Ray with the machine's cores
    summary = summarize("runs/sweep")             # summary.md / .json / .png

A trial is one (algorithm, grid point, seed): a normal run folder
`OUT/<algo>/<tag>/seed<k>` written by `policies.train(..., out_dir=...)`, where the tag
spells the grid point's overrides (`algo.lr_actor=1e-4+trainer.num_envs=16`, or `default`
without a grid). `OUT/sweep.yaml` holds the spec; rerunning the same spec skips finished
trials (policy.pt present) and resumes interrupted ones from their checkpoint.pt, so a
killed sweep loses at most `trainer.checkpoint_every` iterations per running trial.

The result of a trial is its final score: the mean of the last `last` logged (finite) values
of the metric in its progress.csv, i.e. the training episodes of the stochastic policy at
the end of training; or, with `eval_episodes`, the mean over that many deterministic
episodes of the final policy on the fast backend (`policies.evaluation.evaluate`). Per
configuration the summary gives the interquartile mean (IQM, the 25% trimmed mean: the mean
of the middle half of the seeds, robust to one lucky or failed seed yet using more of the
data than the median) with a 95% percentile bootstrap confidence interval over seeds
(`rliable`, stratified over the one task, a fixed bootstrap seed so the summary is
reproducible), the mean and the median; and per logged step the IQM across seeds with its
bootstrap band (learning curves; the seeds of one configuration share the step grid).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

METRICS = ("coverage", "episodic_return")
FORCED_OVERRIDES = ("trainer.torch_threads=1", "trainer.progress=false")  # one core per trial
EVAL_SEED = 12345  # the evaluation episodes' seed (policies.evaluation's default)


# ------------------------------------------------------------------------------------------------
# The spec and its trials
# ------------------------------------------------------------------------------------------------
def split_values(text: str) -> list[str]:
    """`1e-4,5e-4` -> ['1e-4', '5e-4']; commas inside brackets stay (`[64,64],[128]`)."""
    values, depth, current = [], 0, ""
    for char in text:
        depth += (char in "[{") - (char in "]}")
        if char == "," and depth == 0:
            values.append(current.strip())
            current = ""
        else:
            current += char
    values.append(current.strip())
    return values


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """`["algo.lr_actor=1e-4,5e-4", "trainer.num_envs=16,32"]` -> {key: [value texts]}."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        values = split_values(text) if sep else []
        if not sep or not key or not all(values):
            raise ValueError(f"grid {item!r} is not key=v1,v2,...; write e.g. "
                             "algo.lr_actor=1e-4,5e-4.")
        if key in grid:
            raise ValueError(f"grid key {key!r} is given twice; list all its values in one "
                             f"--grid {key}=v1,v2,...")
        if len(set(values)) != len(values):
            raise ValueError(f"grid {item!r} repeats a value; each value is one configuration.")
        grid[key] = values
    return grid


def override_tag(overrides: tuple[str, ...]) -> str:
    """A grid point's folder name: its overrides joined by '+', or `default`."""
    tag = "+".join(overrides) or "default"
    return re.sub(r"[\s/\\]", "_", tag)


@dataclass(frozen=True)
class Trial:
    algo: str
    overrides: tuple[str, ...]  # the grid point, key=value
    seed: int

    def run_dir(self, out: str | Path) -> Path:
        return Path(out) / self.algo / override_tag(self.overrides) / f"seed{self.seed}"

    def name(self) -> str:
        return f"{self.algo} {override_tag(self.overrides)} seed{self.seed}"


@dataclass
class SweepSpec:
    algos: list[str]
    scenario: str
    seeds: list[int]
    steps: int
    grid: dict[str, list[str]] = field(default_factory=dict)
    fixed: list[str] = field(default_factory=list)  # overrides of every trial (--set)

    def grid_points(self) -> list[tuple[str, ...]]:
        points: list[tuple[str, ...]] = [()]
        for key, values in self.grid.items():
            points = [(*p, f"{key}={v}") for p in points for v in values]
        return points

    def trials(self) -> list[Trial]:
        return [Trial(a, p, s) for a in self.algos for p in self.grid_points() for s in self.seeds]

    def to_dict(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in asdict(self).items()}

    def validate(self) -> None:
        """Refuse bad input in one sentence, before any process starts."""
        import policies
        import sim
        from policies.config import resolve_config

        policies.check_total_steps(self.steps)
        if not self.algos:
            raise ValueError("a sweep needs at least one algorithm (--algos).")
        for algo in self.algos:
            if algo not in policies.ALGORITHM_NAMES:
                raise ValueError(f"unknown algorithm {algo!r}; choose from: "
                                 f"{', '.join(policies.ALGORITHM_NAMES)}.")
        if len(set(self.algos)) != len(self.algos):
            raise ValueError(f"--algos names an algorithm twice ({' '.join(self.algos)}).")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"--seeds needs one or more distinct seeds (got {self.seeds}).")
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds):
            raise ValueError(f"seeds must be integers >= 0 (got {self.seeds}).")
        if self.scenario not in known_scenarios():
            raise ValueError(f"unknown scenario {self.scenario!r}; choose from: "
                             f"{', '.join(known_scenarios())}.")
        for key in self.grid:
            if any(item.split("=", 1)[0].strip() == key for item in self.fixed):
                raise ValueError(f"{key} is both swept (--grid) and fixed (--set); keep one.")
        for algo in self.algos:  # every trial's config resolves (unknown keys, bad values)
            for point in self.grid_points():
                try:
                    resolved = resolve_config(algo, self.scenario, None, [*self.fixed, *point])
                    if self.scenario in sim.SCENARIOS:  # the scenario's own checks
                        sim.make_config(self.scenario, **resolved["env"])
                except ValueError as err:
                    raise ValueError(f"{algo} with {' '.join([*self.fixed, *point]) or 'defaults'}:"
                                     f" {err}") from None
                if resolved["trainer"]["workers"]:  # a trial holds one CPU of the same Ray
                    raise ValueError("a sweep runs each trial as one Ray task on one CPU; "
                                     "trainer.workers inside its trials would wait for CPUs the "
                                     "trials hold; drop trainer.workers from --set/--grid.")


def check_evaluation(scenario: str | None, episodes: int) -> None:
    import sim

    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 0:
        raise ValueError(f"--eval-episodes must be a count >= 0 (got {episodes!r}).")
    if episodes and scenario not in sim.SCENARIOS:
        raise ValueError(f"--eval-episodes evaluates drone scenarios ({', '.join(sim.SCENARIOS)}); "
                         f"score {scenario} runs from progress.csv instead.")


def known_scenarios() -> list[str]:
    import sim
    from policies.games.worlds import GAMES

    return [*sim.SCENARIOS, *GAMES, "matrix"]


def check_out_dir(spec: SweepSpec, out: Path) -> None:
    """An existing OUT must hold this very sweep (its sweep.yaml), or be empty."""
    saved = out / "sweep.yaml"
    if saved.is_file():
        held = yaml.safe_load(saved.read_text()) or {}
        mine = spec.to_dict()
        differs = [k for k in mine if held.get(k) != mine[k]]
        if differs:
            k = differs[0]
            raise ValueError(f"{out} holds a different sweep ({k}: {held.get(k)!r} there, "
                             f"{mine[k]!r} here); repeat its spec to continue it, or choose "
                             "another --out.")
    elif out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} exists and holds no sweep.yaml; choose an empty or new --out.")


# ------------------------------------------------------------------------------------------------
# Running the trials
# ------------------------------------------------------------------------------------------------
def train_trial(trial: Trial, spec: SweepSpec, out: str, eval_episodes: int = 0) -> dict[str, Any]:
    """Train (or resume) one trial in its run folder; the body of each Ray task."""
    import policies

    run = trial.run_dir(out)
    resume = (run / "checkpoint.pt").is_file()
    if not resume:  # a start killed before its first checkpoint: begin again, cleanly
        for stale in ("progress.csv", "config.yaml"):
            (run / stale).unlink(missing_ok=True)
        shutil.rmtree(run / "tb", ignore_errors=True)
    start = time.perf_counter()
    policy = policies.train(trial.algo, spec.scenario, spec.steps, seed=trial.seed, out_dir=run,
                            overrides=[*FORCED_OVERRIDES, *spec.fixed, *trial.overrides],
                            resume=resume)
    if eval_episodes:
        final_evaluation(run, eval_episodes)
    return {"run": str(run), "resumed": resume, "wall_s": time.perf_counter() - start,
            "global_step": int(policy.metadata["global_step"])}


def run_sweep(spec: SweepSpec, out: str | Path, address: str | None = None,
              num_cpus: int | None = None, eval_episodes: int = 0,
              echo=print) -> dict[str, Any]:
    """Train every unfinished trial as a Ray task (one CPU each); returns what happened.

    address: an existing Ray cluster (`ray.init(address=...)`; its nodes need this package
    and a filesystem shared with OUT); None starts a local Ray with `num_cpus` (default: the
    machine's cores) and shuts it down at the end. eval_episodes > 0: each trial also scores
    its final policy (`final_evaluation`), in its task.
    """
    out = Path(out)
    spec.validate()
    check_evaluation(spec.scenario, eval_episodes)
    check_out_dir(spec, out)
    if num_cpus is not None and num_cpus < 1:
        raise ValueError(f"--num-cpus must be >= 1 (got {num_cpus}).")
    if num_cpus is not None and address is not None:
        raise ValueError("--num-cpus sizes a local Ray; a cluster (--address) runs as many trials "
                         "at once as it has CPUs, so drop one of them.")
    trials = spec.trials()
    todo = [t for t in trials if not (t.run_dir(out) / "policy.pt").is_file()]
    result: dict[str, Any] = {"trials": len(trials), "skipped": len(trials) - len(todo),
                              "trained": [], "failed": []}
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.yaml").write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    if result["skipped"]:
        echo(f"{result['skipped']} of {len(trials)} trials already finished (policy.pt); "
             "skipping them")
    if not todo:
        return result
    import ray

    if address is None:
        ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
                 log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=1)(train_trial)
        pending = {task.remote(t, spec, str(out.resolve()), eval_episodes): t for t in todo}
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            trial = pending.pop(ref)
            done = len(result["trained"]) + len(result["failed"]) + 1
            try:
                info = ray.get(ref)
            except Exception as err:  # one failed trial does not stop the others
                cause = getattr(err, "cause", None) or err
                result["failed"].append({"trial": trial.name(), "error": str(cause)})
                echo(f"[{done}/{len(todo)}] {trial.name()}: FAILED: "
                     f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}")
                continue
            result["trained"].append(info)
            how = "resumed to" if info["resumed"] else "trained"
            echo(f"[{done}/{len(todo)}] {trial.name()}: {how} {info['global_step']:,} env steps "
                 f"in {info['wall_s']:.0f} s")
    finally:
        ray.shutdown()
    return result


# ------------------------------------------------------------------------------------------------
# Scores and the summary
# ------------------------------------------------------------------------------------------------
def read_progress(run: Path) -> dict[str, np.ndarray]:
    with (run / "progress.csv").open() as f:
        rows = list(csv.DictReader(f))
    return {key: np.array([float(r[key]) if r.get(key) not in (None, "") else math.nan
                           for r in rows]) for key in ("global_step", *METRICS)}


def final_evaluation(run: Path, episodes: int) -> dict[str, float]:
    """Deterministic episodes of the run's final policy (fast backend), cached in the run."""
    cache = run / "sweep_eval.json"
    if cache.is_file():
        held = json.loads(cache.read_text())
        if held.get("episodes") == episodes:
            return held["figures"]
    import policies
    from policies.config import read_yaml
    from policies.evaluation import evaluate

    scenario = read_yaml(run / "config.yaml")["scenario"]
    figures = evaluate(policies.load(run / "policy.pt"), scenario, episodes, "fast", EVAL_SEED)
    cache.write_text(json.dumps({"episodes": episodes, "backend": "fast", "seed": EVAL_SEED,
                                 "figures": figures}, indent=2))
    return figures


def final_score(progress: dict[str, np.ndarray], metric: str, last: int) -> float:
    """The mean of the last `last` finite logged values of `metric` (NaN: none logged)."""
    values = progress[metric][np.isfinite(progress[metric])]
    return float(values[-last:].mean()) if len(values) else math.nan


def find_runs(out: Path) -> dict[tuple[str, str], list[Path]]:
    """(algorithm, tag) -> its seeds' run folders with a progress.csv, in seed order."""
    configs: dict[tuple[str, str], list[Path]] = {}
    runs = sorted(out.glob("*/*/seed*/progress.csv"),
                  key=lambda p: (p.parts[-4], p.parts[-3], int(p.parent.name[4:] or 0)))
    for path in runs:
        if path.parent.name[4:].isdigit():
            configs.setdefault((path.parts[-4], path.parts[-3]), []).append(path.parent)
    return configs


def interquartile_mean(x: np.ndarray) -> np.ndarray:
    """The 25% trimmed mean along axis 0: `rliable.metrics.aggregate_iqm` (scipy's trim_mean,
    which cuts int(n / 4) values at each end) at every point at once, without scipy's
    per-call overhead, which the bootstrap would pay thousands of times."""
    n = x.shape[0]
    cut = int(0.25 * n)
    return np.sort(x, axis=0)[cut:n - cut].mean(axis=0)


def bootstrap_iqm(scores: np.ndarray, reps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """IQM over runs (axis 0) and its 95% stratified bootstrap interval (rliable).

    scores: (runs,) for final scores -> IQM (1,), interval (2, 1); or (runs, steps) for a
    learning curve -> (steps,), (2, steps).
    """
    from rliable import library as rly

    data = scores.reshape(scores.shape[0], 1, -1)  # (runs, tasks=1, points)

    def iqm(x: np.ndarray) -> np.ndarray:
        return interquartile_mean(x.reshape(-1, x.shape[-1]))

    # rliable 1.2 draws its resampling indices from NumPy's global generator (random_state
    # only reaches arch), so the global one is seeded for the call and restored after it.
    outer = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():  # arch's notice that RandomState is being phased out
            warnings.simplefilter("ignore", FutureWarning)
            point, interval = rly.get_interval_estimates(
                {"x": data}, iqm, reps=reps, random_state=np.random.RandomState(seed))
    finally:
        np.random.set_state(outer)
    return point["x"], interval["x"]


def learning_curve(progress: list[dict[str, np.ndarray]], metric: str,
                   max_points: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """The steps logged by every seed with a finite value in each, and (seeds, steps) values."""
    common = None
    for p in progress:
        steps = set(p["global_step"][np.isfinite(p[metric])].tolist())
        common = steps if common is None else common & steps
    steps = np.array(sorted(common or ()))
    if len(steps) > max_points:
        steps = steps[np.unique(np.linspace(0, len(steps) - 1, max_points).round().astype(int))]
    values = np.array([[p[metric][p["global_step"] == s][-1] for s in steps] for p in progress])
    return steps, values.reshape(len(progress), len(steps))


def summarize(out: str | Path, metric: str | None = None, last: int = 10, reps: int = 2000,
              eval_episodes: int = 0, bootstrap_seed: int = 0) -> dict[str, Any]:
    """Build OUT/summary.json, summary.md and summary.png from the run folders under OUT."""
    out = Path(out)
    if not out.is_dir():
        raise FileNotFoundError(f"{out} does not exist; pass the --out folder of a sweep.")
    if metric is not None and metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)} (got {metric!r}).")
    if last < 1 or reps < 1:
        raise ValueError(f"last and reps must be >= 1 (got last={last}, reps={reps}).")
    configs = find_runs(out)
    if not configs:
        raise FileNotFoundError(f"{out} holds no run folders (<algo>/<tag>/seed<k>/progress.csv).")
    if (out / "sweep.yaml").is_file():  # the spec's order: algorithms, then grid points
        order: dict[tuple[str, str], int] = {}
        for trial in SweepSpec(**yaml.safe_load((out / "sweep.yaml").read_text())).trials():
            order.setdefault((trial.algo, override_tag(trial.overrides)), len(order))
        configs = dict(sorted(configs.items(), key=lambda kv: order.get(kv[0], len(order))))
    scenario = next((yaml.safe_load((r / "config.yaml").read_text()).get("scenario")
                     for runs in configs.values() for r in runs if (r / "config.yaml").is_file()),
                    None)
    check_evaluation(scenario, eval_episodes)
    progress = {key: [read_progress(r) for r in runs] for key, runs in configs.items()}
    if metric is None:  # coverage where the scenario logs it, else the team return
        logged = [np.isfinite(p["coverage"]).any() for ps in progress.values() for p in ps]
        metric = "coverage" if all(logged) else "episodic_return"
    if eval_episodes:
        source = (f"mean {metric} of {eval_episodes} deterministic episodes of the final policy "
                  f"(fast backend, seed {EVAL_SEED})")
    else:
        source = (f"mean of the last {last} logged values of {metric} in progress.csv (training "
                  "episodes of the stochastic policy at the end of training)")
    rows = []
    for (algo, tag), runs in configs.items():
        if eval_episodes:
            key = "coverage" if metric == "coverage" else "episode_return"
            scores = np.array([final_evaluation(r, eval_episodes)[key]
                               if (r / "policy.pt").is_file() else math.nan for r in runs])
        else:
            scores = np.array([final_score(p, metric, last) for p in progress[(algo, tag)]])
        finite = np.isfinite(scores)
        kept = [p for p, ok in zip(progress[(algo, tag)], finite, strict=True) if ok]
        row: dict[str, Any] = {
            "algorithm": algo, "overrides": tag, "seeds": [int(r.name[4:]) for r in runs],
            "scores": [None if not math.isfinite(s) else float(s) for s in scores],
            "n": int(finite.sum()),
            "env_steps": int(np.median([p["global_step"][-1] for p in progress[(algo, tag)]]))}
        if row["n"]:
            iqm, ci = bootstrap_iqm(scores[finite], reps, bootstrap_seed)
            row.update(iqm=float(iqm[0]), ci=[float(ci[0, 0]), float(ci[1, 0])],
                       mean=float(scores[finite].mean()), median=float(np.median(scores[finite])))
            steps, values = learning_curve(kept, metric)
            if len(steps):
                curve, band = bootstrap_iqm(values, reps, bootstrap_seed)
                row["curve"] = {"global_step": steps.astype(int).tolist(),
                                "iqm": curve.tolist(), "low": band[0].tolist(),
                                "high": band[1].tolist()}
        rows.append(row)
    summary = {"scenario": scenario, "metric": metric, "score": source, "last": last,
               "eval_episodes": eval_episodes, "bootstrap_reps": reps,
               "bootstrap_seed": bootstrap_seed, "confidence": 0.95, "configs": rows}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    summary["plot"] = str(save_summary_plot(summary, out / "summary.png"))
    (out / "summary.md").write_text(summary_markdown(summary))
    return summary


def _figure(value: float | None, metric: str) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}%" if metric == "coverage" else f"{value:.3f}"


def table_rows(summary: dict[str, Any]) -> list[list[str]]:
    """The summary table's cells: one row per (algorithm, overrides)."""
    m = summary["metric"]
    rows = []
    for r in summary["configs"]:
        ci = r.get("ci")
        rows.append([r["algorithm"], r["overrides"], f"{r['n']}/{len(r['seeds'])}",
                     _figure(r.get("iqm"), m),
                     f"[{_figure(ci[0], m)}, {_figure(ci[1], m)}]" if ci else "-",
                     _figure(r.get("mean"), m), _figure(r.get("median"), m),
                     f"{r['env_steps']:,}"])
    return rows


TABLE_HEADER = ["algorithm", "overrides", "seeds", "IQM", "95% CI", "mean", "median",
                "env steps"]


def summary_markdown(summary: dict[str, Any]) -> str:
    lines = [f"# Sweep summary: {summary['scenario']}, final {summary['metric']}", "",
             f"Score of a run: {summary['score']}. IQM: the 25% trimmed mean over seeds; 95% CI: "
             f"percentile stratified bootstrap over seeds (rliable, {summary['bootstrap_reps']} "
             f"resamples, seed {summary['bootstrap_seed']}). Curves: IQM across seeds at each "
             "logged env step with the same bootstrap band (summary.png).", "",
             "| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(summary)]
    return "\n".join(lines) + "\n"


def print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{summary['scenario']}: final {summary['metric']}, IQM over seeds with "
                        "a 95% bootstrap CI")
    for name in TABLE_HEADER:
        table.add_column(name, justify="left" if name in ("algorithm", "overrides") else "right",
                         no_wrap=True)
    for cells in table_rows(summary):
        table.add_row(*cells)
    cells = [TABLE_HEADER, *table_rows(summary)]
    needed = sum(max(len(row[i]) for row in cells) + 3 for i in range(len(TABLE_HEADER))) + 1
    console = Console()
    console = Console(width=max(console.width, needed))  # whole rows even in a narrow log
    console.print(table)
    console.print(f"score of a run: {summary['score']}")


def save_summary_plot(summary: dict[str, Any], path: Path) -> Path:
    """One curve (IQM across seeds) and its 95% bootstrap band per configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for row in summary["configs"]:
        curve = row.get("curve")
        if not curve:
            continue
        label = f"{row['algorithm']} {row['overrides']} (n={row['n']})"
        (line,) = ax.plot(curve["global_step"], curve["iqm"], lw=1.5, label=label)
        ax.fill_between(curve["global_step"], curve["low"], curve["high"], alpha=0.2,
                        color=line.get_color())
    ax.set_xlabel("env steps")
    ax.set_ylabel(f"{summary['metric']} (training episodes)")
    ax.set_title(f"{summary['scenario']}: IQM across seeds, 95% bootstrap band")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
