"""Sim-to-real readiness: a policy bundle flown in PyBullet under deployment faults.

    plan = plan_report("policies/zoo/coverage_4", sweeps=["loss", "latency=0,250"])
    report = run_report(plan, "runs/robustness/coverage_4")   # JSON, CSV, markdown, PNG

The bundle runs through `OnnxPolicy` (onnxruntime, no torch: what the robots run). Each
sweep moves one fault away from the ideal simulator and flies `episodes` episodes per
value, with seeds seed, seed + 1, ... for every value (the start positions `marl-ros swarm
--seed` uses), so the values differ only by the fault:

- `noise`: std of the Gaussian noise on every measured position (m) and velocity (m/s);
- `delay`: command latency in ms: 0 or 1 control tick of motor delay (1/48 s, the most the
  controller is stable with) plus whole policy ticks during which the drone still flies the
  command computed earlier (a radio link or a slow flight stack);
- `randomize`: per-drone +/- fraction of mass, thrust and torque coefficients;
- `odom_rate`: the rate in Hz at which the odometry (own state and swarm state) is
  refreshed; the policy runs at its own rate on the held value;
- `latency`: the age of the odometry in ms (whole policy ticks);
- `loss`: the probability of losing each neighbour's state per tick, as the agent node's
  `neighbour_drop` does.

Every fault is a scenario option of `sim` (`sensor_noise`, `actuation_delay`, `command_delay`,
`randomize`, `odom_period`, `odom_latency`, `neighbour_drop`; see `sim.vec_env`): the
perceived states go through `sim.obs.observe_tick`, the function the agent node calls, and
the env scores coverage and safety on the true states. Training with the same option is the
remedy for a sweep that falls off a cliff (`marl-ros train ... env.neighbour_drop=0.3`).
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from marl_ros.runtime import BUNDLE_FILE, OnnxPolicy, load_swarm_config, read_bundle_metadata
from sim.config import CONTROL_HZ, CoverageConfig, SwarmConfig, config_from_dict
from sim.drone import CrazyflieParams
from sim.scenarios import pairwise_distances
from sim.vec_env import VecEnv

IDEAL = {"sensor_noise": 0.0, "actuation_delay": 0, "command_delay": 0, "randomize": 0.0,
         "odom_period": 1, "odom_latency": 0, "neighbour_drop": 0.0, "gui": False}
"""The scenario's fault options at their ideal values: the baseline every sweep starts from."""

COVERAGE_TOLERANCE = 0.10
"""A value passes while mean coverage stays within this of the baseline's (the tolerance the
ROS tests allow between a ROS mission and its simulator twin), ..."""
CRASH_TOLERANCE = 0.2
"""... airframe contacts and ground strikes per episode exceed the baseline's by at most this
(two in ten episodes), near-misses by at most ..."""
NEAR_MISS_TOLERANCE = 1.0
"""... this, ..."""
GEOFENCE_FRACTION = 0.01
"""... and drone-ticks outside the geofence by at most this fraction of the episode's
drone-ticks (4 for 4 drones and 100 ticks)."""

CONTACT_DISTANCE = CrazyflieParams().contact_distance
"""Two rotor spans: closer than this the airframes touch (as monitor_node counts collisions)."""
GROUND_STRIKE_HEIGHT = 0.1
"""m: a drone this low (the altitude band starts at 0.5 m) has fallen or hit the ground."""

_MS_TOLERANCE = 0.5
FAST_UNMODELLED = ("actuation_delay", "randomize")  # dynamics options only PyBullet has


def _period_ms(cfg: SwarmConfig) -> float:
    return 1000.0 / cfg.policy_hz


def _noise(value: float, cfg: SwarmConfig) -> dict[str, Any]:
    if value < 0:
        raise ValueError(f"sweep noise: {value:g} is not a standard deviation >= 0 (m, m/s).")
    return {"sensor_noise": value}


def _delay(value: float, cfg: SwarmConfig) -> dict[str, Any]:
    period, tick = _period_ms(cfg), 1000.0 / CONTROL_HZ
    for motor in (0, 1):
        held = round((value - motor * tick) / period)
        if held >= 0 and abs(held * period + motor * tick - value) <= _MS_TOLERANCE:
            return {"command_delay": held, "actuation_delay": motor}
    raise ValueError(f"sweep delay: {value:g} ms cannot be simulated; commands are held for whole "
                     f"policy ticks ({period:g} ms at {cfg.policy_hz:g} Hz) plus 0 or 1 control "
                     f"tick of motor delay ({tick:.1f} ms), so use k x {period:g} or k x "
                     f"{period:g} + {tick:.1f} ms.")


def _randomize(value: float, cfg: SwarmConfig) -> dict[str, Any]:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"sweep randomize: {value:g} is not a fraction in [0, 1).")
    return {"randomize": value}


def _odom_rate(value: float, cfg: SwarmConfig) -> dict[str, Any]:
    period = cfg.policy_hz / value if value > 0 else math.inf
    held = round(period) if math.isfinite(period) else 0
    if held < 1 or abs(period - held) > 1e-6:
        raise ValueError(f"sweep odom_rate: {value:g} Hz does not divide the policy rate "
                         f"{cfg.policy_hz:g} Hz; use {cfg.policy_hz:g} / k Hz for a whole k >= 1.")
    return {"odom_period": held}


def _latency(value: float, cfg: SwarmConfig) -> dict[str, Any]:
    period = _period_ms(cfg)
    ticks = round(value / period)
    if ticks < 0 or abs(ticks * period - value) > _MS_TOLERANCE:
        raise ValueError(f"sweep latency: {value:g} ms is not a whole number of policy ticks "
                         f"({period:g} ms at {cfg.policy_hz:g} Hz).")
    return {"odom_latency": ticks}


def _loss(value: float, cfg: SwarmConfig) -> dict[str, Any]:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"sweep loss: {value:g} is not a probability in [0, 1].")
    return {"neighbour_drop": value}


@dataclass(frozen=True)
class Sweep:
    """One fault: how a swept value becomes scenario options, and the values swept by default."""

    name: str
    title: str
    unit: str
    overrides: Callable[[float, SwarmConfig], dict[str, Any]]
    defaults: Callable[[SwarmConfig], list[float]]
    harsher_when_lower: bool = False  # odometry rate: the fault grows as the value falls


SWEEPS: dict[str, Sweep] = {s.name: s for s in (
    Sweep("noise", "sensor noise", "std, m and m/s", _noise,
          lambda cfg: [0.0, 0.05, 0.1, 0.2, 0.4]),
    Sweep("delay", "command delay", "ms", _delay,
          lambda cfg: [0.0, round(1000.0 / CONTROL_HZ, 1)] + [k * _period_ms(cfg) for k in (1, 2, 4)]),
    Sweep("randomize", "mass and motor randomisation", "+/- fraction", _randomize,
          lambda cfg: [0.0, 0.1, 0.2, 0.3, 0.4]),
    Sweep("odom_rate", "odometry rate", "Hz", _odom_rate,
          lambda cfg: [cfg.policy_hz / k for k in (1, 2, 4, 8)], harsher_when_lower=True),
    Sweep("latency", "odometry latency", "ms", _latency,
          lambda cfg: [k * _period_ms(cfg) for k in range(5)]),
    Sweep("loss", "neighbour message loss", "probability per tick", _loss,
          lambda cfg: [0.0, 0.25, 0.5, 0.75, 1.0]),
)}


@dataclass
class Plan:
    """A validated report: bundle, baseline configuration and every (sweep, value, config)."""

    bundle: Path
    policy: OnnxPolicy
    baseline: SwarmConfig
    backend: str
    seeds: list[int]
    sweeps: list[tuple[Sweep, list[tuple[float, dict[str, Any], SwarmConfig]]]]


def parse_sweep_spec(spec: str) -> tuple[Sweep, list[float] | None]:
    """`NAME` or `NAME=V1,V2,...` -> the sweep and its values (None: the defaults)."""
    name, given, values = spec.partition("=")
    if name not in SWEEPS:
        raise ValueError(f"unknown sweep {name!r}; choose from {', '.join(SWEEPS)} "
                         "(NAME or NAME=V1,V2,...).")
    if not given:
        return SWEEPS[name], None
    try:
        parsed = [float(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"sweep {spec!r}: values must be numbers separated by commas, e.g. "
                         f"{name}=0,0.5.") from None
    if not parsed or not all(math.isfinite(v) for v in parsed):
        raise ValueError(f"sweep {spec!r}: give at least one finite number after '=', e.g. "
                         f"{name}=0,0.5.")
    return SWEEPS[name], parsed


def plan_report(bundle: str | Path, sweeps: list[str] | None = None, episodes: int = 10,
                seed: int = 12345, backend: str = "pybullet", mission_steps: int = 0) -> Plan:
    """Check everything before any flight: bundle, sweep names and values, options.

    Raises ValueError (BundleError included) with one sentence for anything unusable.
    """
    path = Path(bundle)
    if not (path / BUNDLE_FILE).is_file():
        if (path / "config.yaml").is_file() or (path / "policy.pt").is_file():
            raise ValueError(f"{path} is a training run; --robustness flies a policy bundle, so "
                             f"export it first (marl-ros export {path} --out BUNDLE) and pass "
                             "BUNDLE.")
        raise ValueError(f"{path} is not a policy bundle (no {BUNDLE_FILE}); pass a folder "
                         "written by marl-ros export, e.g. policies/zoo/coverage_4.")
    if not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"--episodes must be a whole number >= 1 (got {episodes!r}).")
    if not isinstance(mission_steps, int) or mission_steps < 0:
        raise ValueError(f"--mission-steps must be a whole number >= 0 (got {mission_steps!r}).")
    if backend not in ("pybullet", "fast"):
        raise ValueError(f"unknown backend {backend!r}; choose pybullet or fast.")
    trained = load_swarm_config(path, len(read_bundle_metadata(path)["agents"]))
    if not isinstance(trained, CoverageConfig):
        raise ValueError(f"{path} was trained on {trained.scenario}; the readiness report "
                         "measures coverage, so it takes coverage bundles only.")
    params = {**trained.to_dict(), **IDEAL}
    if mission_steps:
        params["max_steps"] = mission_steps
    baseline = config_from_dict(params)
    specs = list(sweeps) if sweeps else list(SWEEPS)
    chosen: list[tuple[Sweep, list[float] | None]] = [parse_sweep_spec(s) for s in specs]
    names = [s.name for s, _ in chosen]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"sweep {repeated[0]!r} is given twice; name each sweep once.")
    planned = []
    for sweep, values in chosen:
        rows = []
        for value in values if values is not None else sweep.defaults(baseline):
            overrides = sweep.overrides(float(value), baseline)
            if backend == "fast" and any(overrides.get(k) for k in FAST_UNMODELLED):
                raise ValueError(f"the fast backend does not model motor delay or mass and "
                                 f"motor randomisation ({sweep.name} {value:g}); use --backend "
                                 "pybullet or other values.")
            cfg = config_from_dict({**params, **overrides})
            rows.append((float(value), overrides, cfg))
        planned.append((sweep, rows))
    policy = OnnxPolicy.load(path, config=baseline, provider="cpu")
    return Plan(path, policy, baseline, backend, [seed + i for i in range(episodes)], planned)


# ----------------------------------------------------------------------------------------------
# Flying
# ----------------------------------------------------------------------------------------------
def policy_actions(policy: OnnxPolicy, agents: list[str], obs: np.ndarray,
                   discrete: bool) -> np.ndarray:
    """The bundle's deterministic actions for obs (E, N, D): (E, N, 4) or (E, N) indices."""
    actions = np.stack([policy.run(obs[:, i], agent)["action"] for i, agent in enumerate(agents)],
                       axis=1)
    return actions.astype(np.int64) if discrete else np.clip(actions, -1.0, 1.0)


def fly_episode(policy: OnnxPolicy, cfg: SwarmConfig, seed: int, backend: str = "pybullet",
                observer: Callable[[np.ndarray, VecEnv], None] | None = None) -> dict[str, float]:
    """One episode from the start positions of `seed`; end figures counted on the true state.

    observer(obs, env), if given, sees every observation the policy is fed (after the reset
    and after each step) with the env, whose `positions`/`velocities` are the true state.
    """
    env = VecEnv(cfg, num_envs=1, backend=backend, seed=seed, autoreset=False)
    try:
        obs, infos = env.reset(seed=seed)
        policy.reset()
        if observer is not None:
            observer(obs, env)
        discrete = cfg.action_mode == "discrete"
        near_ticks, outside, steps = 0, 0, 0
        closest, excursion = math.inf, 0.0
        grounded = np.zeros(cfg.num_drones, dtype=bool)
        # Approaches, each counted once from when a pair comes closer than the distance until
        # it separates again (a pair that stays tangled is one contact, not one per tick).
        events = {"near_misses": cfg.collision_distance, "contacts": CONTACT_DISTANCE}
        counts = dict.fromkeys(events, 0)
        close = {k: np.zeros((cfg.num_drones,) * 2, dtype=bool) for k in events}
        while True:
            obs, _, _, _, infos = env.step(policy_actions(policy, env.agents, obs, discrete))
            steps += 1
            if observer is not None:
                observer(obs, env)
            near_ticks += int(infos["collisions"][0])
            outside += int(infos["geofence_violations"][0])
            pos = env.positions[0]
            excursion = max(excursion, float(geofence_excursion(pos, cfg).max()))
            grounded |= pos[:, 2] < GROUND_STRIKE_HEIGHT
            if cfg.num_drones > 1:
                d = pairwise_distances(pos[None])[0]
                for key, distance in events.items():
                    now = d < distance
                    counts[key] += int(np.triu(now & ~close[key], 1).sum())
                    close[key] = now
                closest = min(closest, float(d.min()))
            if infos["done"][0]:
                break
        return {"seed": seed, "coverage": float(infos["coverage"][0]),
                **counts, "near_collision_ticks": near_ticks,
                "ground_strikes": int(grounded.sum()), "geofence_violations": outside,
                "max_excursion_m": excursion, "min_separation_m": closest, "steps": steps}
    finally:
        env.close()


def geofence_excursion(pos: np.ndarray, cfg: SwarmConfig) -> np.ndarray:
    """How far (m) each position lies outside the field and altitude band; 0 inside."""
    fx, fy = cfg.field_size
    low = np.array([0.0, 0.0, cfg.altitude_min])
    high = np.array([fx, fy, cfg.altitude_max])
    return np.maximum(np.maximum(low - pos, pos - high), 0.0).max(axis=-1)


PER_EPISODE = ("near_misses", "contacts", "ground_strikes", "geofence_violations")


def summarise(episodes: list[dict[str, float]]) -> dict[str, Any]:
    """Mean, spread and minimum of coverage; safety counts per episode; the worst excursion
    and the closest approach over all episodes."""
    cov = np.array([e["coverage"] for e in episodes])
    return {"coverage": float(cov.mean()), "coverage_std": float(cov.std()),
            "coverage_min": float(cov.min()),
            **{k: float(np.mean([e[k] for e in episodes])) for k in PER_EPISODE},
            "max_excursion_m": float(max(e["max_excursion_m"] for e in episodes)),
            "min_separation_m": float(min(e["min_separation_m"] for e in episodes)),
            "episodes": episodes}


def readiness_failures(row: dict[str, Any], baseline: dict[str, Any],
                       cfg: SwarmConfig) -> list[str]:
    """What falls short of the readiness bar (empty: the value passes), against the baseline:
    coverage more than COVERAGE_TOLERANCE below it; airframe contacts or ground strikes more
    than CRASH_TOLERANCE per episode above it; near-misses more than NEAR_MISS_TOLERANCE per
    episode above it; geofence violations above it by more than GEOFENCE_FRACTION of the
    episode's drone-ticks."""
    allowance = {"contacts": CRASH_TOLERANCE, "ground_strikes": CRASH_TOLERANCE,
                 "near_misses": NEAR_MISS_TOLERANCE,
                 "geofence_violations": GEOFENCE_FRACTION * cfg.max_steps * cfg.num_drones}
    failures = (["coverage"] if row["coverage"] < baseline["coverage"] - COVERAGE_TOLERANCE
                else [])
    return failures + [k for k in PER_EPISODE if row[k] > baseline[k] + allowance[k] + 1e-9]


def find_cliff(rows: list[dict[str, Any]], harsher_when_lower: bool = False
               ) -> tuple[float | None, float | None]:
    """From the mildest value to the harshest: the first that fails the readiness bar (the
    cliff; None if none does) and the last that passes before it."""
    cliff, last_passing = None, None
    for row in sorted(rows, key=lambda r: -r["value"] if harsher_when_lower else r["value"]):
        if not row["passes"]:
            cliff = row["value"]
            break
        last_passing = row["value"]
    return cliff, last_passing


def run_report(plan: Plan, out_dir: str | Path, command: str = "",
               progress: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Fly every planned value; write robustness.json, .csv, .md and .png into out_dir."""
    start = time.perf_counter()
    cache: dict[str, dict[str, Any]] = {}

    def figures(cfg: SwarmConfig) -> dict[str, Any]:
        key = json.dumps(cfg.to_dict(), sort_keys=True)
        if key not in cache:
            cache[key] = summarise([fly_episode(plan.policy, cfg, s, plan.backend)
                                    for s in plan.seeds])
        return cache[key]

    baseline = figures(plan.baseline)
    if progress:
        progress(f"baseline: {_summary_line(baseline)}")
    sweeps = []
    for sweep, values in plan.sweeps:
        rows = []
        for value, overrides, cfg in values:
            t0 = time.perf_counter()
            row = {"value": value, "options": overrides, **figures(cfg)}
            row["fails"] = readiness_failures(row, baseline, cfg)
            row["passes"] = not row["fails"]
            rows.append(row)
            if progress:
                progress(f"{sweep.name} {value:g}: {_summary_line(row)} "
                         f"[{time.perf_counter() - t0:.0f} s]")
        cliff, last_passing = find_cliff(rows, sweep.harsher_when_lower)
        sweeps.append({"name": sweep.name, "title": sweep.title, "unit": sweep.unit,
                       "harsher_when_lower": sweep.harsher_when_lower, "rows": rows,
                       "cliff": cliff, "last_passing": last_passing})
    report = {
        "bundle": str(plan.bundle), "backend": plan.backend, "num_drones": plan.baseline.num_drones,
        "policy_hz": plan.baseline.policy_hz, "mission_steps": plan.baseline.max_steps,
        "episodes": len(plan.seeds), "seeds": plan.seeds, "command": command,
        "readiness_bar": {"coverage_drop": COVERAGE_TOLERANCE,
                          "contacts_and_ground_strikes_per_episode": CRASH_TOLERANCE,
                          "near_misses_per_episode": NEAR_MISS_TOLERANCE,
                          "geofence_fraction_of_drone_ticks": GEOFENCE_FRACTION,
                          "contact_distance_m": round(CONTACT_DISTANCE, 4),
                          "near_collision_distance_m": plan.baseline.collision_distance,
                          "ground_strike_height_m": GROUND_STRIKE_HEIGHT},
        "baseline": baseline, "sweeps": sweeps,
        "wall_s": round(time.perf_counter() - start, 1)}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report["files"] = {k: str(out / f"robustness.{k}") for k in ("json", "csv", "md", "png")}
    Path(report["files"]["json"]).write_text(json.dumps(report, indent=2))
    write_csv(report, report["files"]["csv"])
    Path(report["files"]["md"]).write_text(markdown_table(report) + "\n")
    save_robustness_plot(report, report["files"]["png"])
    return report


def _summary_line(row: dict[str, Any]) -> str:
    return (f"coverage {100 * row['coverage']:.1f}% (min {100 * row['coverage_min']:.1f}%), "
            f"near-misses {row['near_misses']:.1f}, contacts {row['contacts']:.1f}, "
            f"ground strikes {row['ground_strikes']:.1f}, geofence "
            f"{row['geofence_violations']:.1f} per episode"
            + ("" if row.get("passes", True) else f"; fails on {', '.join(row['fails'])}"))


# ----------------------------------------------------------------------------------------------
# Tables and the plot
# ----------------------------------------------------------------------------------------------
TABLE_HEADER = ("sweep", "value", "coverage % (± std)", "min %", "near-misses", "contacts",
                "ground strikes", "geofence", "max excursion m", "min separation m", "verdict")
FIGURE_KEYS = ("coverage", "coverage_std", "coverage_min", *PER_EPISODE, "max_excursion_m",
               "min_separation_m")


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    """One row of strings per swept value, the baseline first; counts are per episode."""
    def cells(name: str, value: str, r: dict[str, Any], verdict: str) -> list[str]:
        return [name, value, f"{100 * r['coverage']:.1f} ± {100 * r['coverage_std']:.1f}",
                f"{100 * r['coverage_min']:.1f}",
                *(f"{r[k]:.1f}" for k in PER_EPISODE),
                f"{r['max_excursion_m']:.2f}", f"{r['min_separation_m']:.3f}", verdict]

    rows = [cells("baseline", "-", report["baseline"], "-")]
    for sweep in report["sweeps"]:
        for r in sweep["rows"]:
            rows.append(cells(f"{sweep['name']} ({sweep['unit']})", f"{r['value']:g}", r,
                              "pass" if r["passes"] else "**fail**: " + ", ".join(r["fails"])))
    return rows


def markdown_table(report: dict[str, Any]) -> str:
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(report)]
    return "\n".join(lines)


def write_csv(report: dict[str, Any], path: str | Path) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("sweep", "unit", "value", *FIGURE_KEYS, "fails"))
        writer.writerow(("baseline", "", "", *(report["baseline"][k] for k in FIGURE_KEYS), ""))
        for sweep in report["sweeps"]:
            for r in sweep["rows"]:
                writer.writerow((sweep["name"], sweep["unit"], r["value"],
                                 *(r[k] for k in FIGURE_KEYS), " ".join(r["fails"])))
    return Path(path)


def print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"sim-to-real readiness of {report['bundle']} ({report['backend']}, "
                        f"{report['episodes']} episodes of {report['mission_steps']} steps per value)")
    for name in TABLE_HEADER:
        table.add_column(name, justify="left" if name == "sweep" else "right")
    for row in table_rows(report):
        table.add_row(*[c.replace("**", "") for c in row])
    Console(width=160).print(table)


def save_robustness_plot(report: dict[str, Any], path: str | Path) -> Path:
    """One panel per sweep: coverage (mean, spread, minimum) and safety counts per episode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweeps = report["sweeps"]
    cols = min(3, len(sweeps))
    rows = math.ceil(len(sweeps) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.ravel()[len(sweeps):]:
        ax.set_visible(False)
    base = report["baseline"]
    twins = []
    for ax, sweep in zip(axes.ravel(), sweeps, strict=False):
        x = np.array([r["value"] for r in sweep["rows"]])
        order = np.argsort(x)
        x = x[order]
        rows_sorted = [sweep["rows"][i] for i in order]
        cov = np.array([100 * r["coverage"] for r in rows_sorted])
        std = np.array([100 * r["coverage_std"] for r in rows_sorted])
        ax.fill_between(x, cov - std, cov + std, color="tab:blue", alpha=0.2)
        ax.plot(x, cov, "o-", color="tab:blue", label="coverage (mean ± std)")
        ax.plot(x, [100 * r["coverage_min"] for r in rows_sorted], "v--", color="tab:blue",
                alpha=0.6, label="coverage (min)")
        ax.axhline(100 * (base["coverage"] - COVERAGE_TOLERANCE), color="grey", ls=":", lw=1,
                   label=f"baseline - {100 * COVERAGE_TOLERANCE:g} points")
        ax.set_ylim(0, 100)
        ax.set_ylabel("coverage %")
        ax.set_xlabel(f"{sweep['title']} ({sweep['unit']})")
        if sweep["harsher_when_lower"]:
            ax.invert_xaxis()
        if sweep["cliff"] is not None:
            ax.axvline(sweep["cliff"], color="tab:red", ls="--", lw=1)
        safety = ax.twinx()
        twins.append(safety)
        for key, colour, label in (("near_misses", "tab:orange", "near-misses"),
                                   ("contacts", "tab:red", "contacts"),
                                   ("ground_strikes", "tab:purple", "ground strikes"),
                                   ("geofence_violations", "tab:green", "geofence violations")):
            safety.plot(x, [r[key] for r in rows_sorted], "s-", ms=3, lw=1, color=colour,
                        label=f"{label} / episode")
        safety.set_yscale("symlog", linthresh=1.0)  # a few contacts stay visible beside 100s
        safety.set_ylim(bottom=0)
        safety.set_ylabel("safety counts per episode (symlog)")
        ax.set_title(sweep["title"] + ("" if sweep["cliff"] is None
                                       else f" (fails at {sweep['cliff']:g})"))
        ax.grid(alpha=0.3)
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    more_handles, more_labels = twins[0].get_legend_handles_labels()
    fig.legend(handles + more_handles, labels + more_labels, loc="lower center", ncol=6,
               fontsize=8, frameon=False)
    fig.suptitle(f"sim-to-real readiness: {Path(report['bundle']).name}, {report['backend']}, "
                 f"{report['episodes']} episodes of {report['mission_steps']} steps per value")
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
