"""Fit the `fast` backend's closed-loop model to PyBullet step responses.

    python -m sim.calibrate [--output sim/fast_model.yaml]

Flies one PyBullet world in which every drone runs its own setpoint experiment (steps up and
back to zero at several amplitudes, reversals, on each axis group; horizontally also full-speed
+-2 m/s steps, -2 -> +2 reversals and fast switching sequences that saturate the tilt), records
velocities at the controller rate, and fits natural frequency, damping and zero time per axis
group, plus the horizontal acceleration limit, with scipy.optimize.least_squares. The file records the fitted numbers, the fit RMS and the command
and date that produced them, so the figures can be regenerated whenever the controller changes.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.optimize
import yaml

from sim.control import CONTROL_HZ, ControllerGains
from sim.drone import CrazyflieParams, VelocityLimits
from sim.fast_dynamics import (
    AXIS_GROUPS,
    FAST_MODEL_PATH,
    HorizontalModel,
    continuous_axis_model,
    discretize,
    velocity_output,
)
from sim.physics import PyBulletWorld

EXPERIMENT_HZ = 8.0
"""Setpoints change at this (policy) rate in the experiments."""

POSITION_WEIGHT = 2.0
"""Weight of a displacement error (per m) against a velocity error (per m/s) in the fit."""


@dataclass(frozen=True)
class Experiment:
    """One drone's setpoint schedule on one setpoint component (0..3 = vx, vy, vz, yaw_rate)."""

    component: int
    levels: tuple[float, ...]  # each held for `hold_s`
    hold_s: float = 2.5

    @property
    def group(self) -> str:
        return ("xy", "xy", "z", "yaw")[self.component]


EXPERIMENTS = (
    Experiment(0, (0.5, 0.0)), Experiment(0, (1.0, 0.0)), Experiment(0, (2.0, 0.0)),
    Experiment(1, (-2.0, 0.0)), Experiment(0, (1.0, -1.0, 0.0), hold_s=2.0),
    Experiment(0, (2.0, -2.0, 0.0), hold_s=2.0), Experiment(1, (-2.0, 2.0, 0.0), hold_s=2.0),
    Experiment(0, (2.0, -2.0, 1.0, -1.5, 2.0, 0.5, -2.0, 2.0, 0.0, -2.0, 0.0), hold_s=0.5),
    Experiment(1, (1.5, -2.0, 2.0, 2.0, -1.0, -2.0, 0.0, 2.0, -2.0, 0.0), hold_s=0.25),
    Experiment(2, (0.3, 0.0)), Experiment(2, (0.6, 0.0)), Experiment(2, (1.0, 0.0)),
    Experiment(2, (-0.5, 0.0)),
    Experiment(3, (0.5, 0.0)), Experiment(3, (1.0, 0.0)), Experiment(3, (1.5, -1.5, 0.0), hold_s=2.0),
)


def setpoint_schedule(exp: Experiment, ticks_per_level: int) -> np.ndarray:
    """The experiment's setpoint component at each control tick."""
    return np.repeat(np.asarray(exp.levels, dtype=float), ticks_per_level)


def run_experiments(experiments: tuple[Experiment, ...] = EXPERIMENTS,
                    limits: VelocityLimits | None = None
                    ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Fly all experiments in one PyBullet world; per experiment (inputs, velocities, displacements).

    The velocity of an experiment is the component it commands (world vx, vy, vz, or body yaw
    rate), the displacement the matching position (or unwrapped yaw) change since the start,
    both sampled once per control tick, right after the tick's physics steps.
    """
    limits = limits or VelocityLimits()
    n = len(experiments)
    hold_ticks = {round(e.hold_s * CONTROL_HZ) for e in experiments}
    ticks_per_policy = round(CONTROL_HZ / EXPERIMENT_HZ)
    inputs = [setpoint_schedule(e, round(e.hold_s * CONTROL_HZ)) for e in experiments]
    length = max(len(u) for u in inputs)
    if any(h % ticks_per_policy for h in hold_ticks):
        raise ValueError("every hold must be a whole number of policy periods.")
    world = PyBulletWorld(n, seed=0, limits=limits)
    try:
        world.reset(np.column_stack([np.zeros(n), 3.0 * np.arange(n), np.full(n, 2.0)]))
        responses = np.zeros((length, n))
        displacement = np.zeros((length, n))
        start = world.state()
        setpoints = np.zeros((n, 4))
        for k in range(length):
            for i, (exp, u) in enumerate(zip(experiments, inputs, strict=True)):
                setpoints[i, exp.component] = u[k] if k < len(u) else 0.0
            world.step(setpoints, 1.0 / CONTROL_HZ)
            state = world.state()
            for i, exp in enumerate(experiments):
                c = exp.component
                responses[k, i] = state[i, 3 + c] if c < 3 else state[i, 11]
                displacement[k, i] = state[i, c] - start[i, c] if c < 3 else state[i, 8] - start[i, 8]
    finally:
        world.close()
    displacement[:, [i for i, e in enumerate(experiments) if e.component == 3]] = np.unwrap(
        displacement[:, [i for i, e in enumerate(experiments) if e.component == 3]], axis=0)
    return (inputs, [responses[: len(u), i] for i, u in enumerate(inputs)],
            [displacement[: len(u), i] for i, u in enumerate(inputs)])


def simulate_horizontal(entry: dict[str, float], inputs: list[np.ndarray],
                        components: list[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The tilt-limited horizontal model (sim.fast_dynamics.HorizontalModel) flown through all
    `inputs` at once, each on its own axis `components` (0 = x, 1 = y), one controller tick per
    input; per experiment (velocities, displacements) after each tick."""
    model = HorizontalModel(entry, 1.0 / CONTROL_HZ)
    n, length = len(inputs), max(len(u) for u in inputs)
    schedule = np.zeros((length, n, 2))
    rows = np.arange(n)
    for i, (u, c) in enumerate(zip(inputs, components, strict=True)):
        schedule[: len(u), i, c] = u
    state = np.zeros((n, 2, 4))
    vel = np.empty((length, n))
    disp = np.empty((length, n))
    comp = np.asarray(components)
    for k in range(length):
        state = model.tick(state, schedule[k])
        vel[k] = model.velocity(state)[rows, comp]
        disp[k] = model.position(state)[rows, comp]
    return ([vel[: len(u), i] for i, u in enumerate(inputs)],
            [disp[: len(u), i] for i, u in enumerate(inputs)])


def simulate_response(entry: dict[str, float], inputs: np.ndarray,
                      rate_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Linear model (z, yaw) velocity and displacement after each of the piecewise-constant
    `inputs` at `rate_hz`."""
    ad, bd = discretize(*continuous_axis_model(entry["natural_frequency"], entry["damping"],
                                               entry["zero_time"]), 1.0 / rate_hz)
    c = velocity_output(entry)
    x = np.zeros(3)
    vel = np.empty(len(inputs))
    disp = np.empty(len(inputs))
    for k, u in enumerate(inputs):
        x = ad @ x + bd * u
        vel[k] = c @ x
        disp[k] = x[0]
    return vel, disp


def fit_group(group: str, inputs: list[np.ndarray], responses: list[np.ndarray],
              displacements: list[np.ndarray], components: list[int]) -> dict[str, float]:
    """Least-squares natural frequency, damping and zero time for one axis group; for xy also
    the acceleration limit (started at the controller's g tan(max tilt)) and the gain of the
    velocity-error integral (its clamp is the controller's).

    Residuals are velocity errors and, weighted by POSITION_WEIGHT, displacement errors: the
    policy sees positions, and a model that matches velocity but drifts in position would make
    the fast backend's trajectories walk away from PyBullet's.
    """
    horizontal = group == "xy"

    def entry_of(theta: np.ndarray) -> dict[str, float]:
        entry = {"natural_frequency": float(np.exp(theta[0])), "damping": float(np.exp(theta[1])),
                 "zero_time": float(theta[2])}
        if horizontal:
            entry["max_acceleration"] = float(np.exp(theta[3]))
            entry["integral_gain"] = float(theta[4])
            entry["integral_limit"] = gains.vel_integral_limit
        return entry

    def simulate(entry: dict[str, float]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        if horizontal:
            return simulate_horizontal(entry, inputs, components)
        pairs = [simulate_response(entry, u, CONTROL_HZ) for u in inputs]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def residuals(theta: np.ndarray) -> np.ndarray:
        vel, disp = simulate(entry_of(theta))
        return np.concatenate([np.concatenate([mv - v, POSITION_WEIGHT * (md - d)])
                               for mv, md, v, d in zip(vel, disp, responses, displacements, strict=True)])

    x0 = [np.log(6.0), np.log(0.8), 0.0]
    gains = ControllerGains()
    if horizontal:
        x0.append(np.log(CrazyflieParams().gravity * np.tan(np.radians(gains.max_tilt_deg))))
        x0.append(gains.vel_xy_i)
    result = scipy.optimize.least_squares(residuals, x0=np.array(x0))
    entry = entry_of(result.x)
    vel, disp = simulate(entry)
    vel_err = np.concatenate([mv - v for mv, v in zip(vel, responses, strict=True)])
    disp_err = np.concatenate([md - d for md, d in zip(disp, displacements, strict=True)])
    rms = float(np.sqrt(np.mean(vel_err**2)))
    scale = float(np.sqrt(np.mean(np.concatenate(responses) ** 2)))
    return {**{k: round(v, 5) for k, v in entry.items()},
            "fit_rms": round(rms, 5), "fit_rms_relative": round(rms / scale, 4),
            "fit_rms_position": round(float(np.sqrt(np.mean(disp_err**2))), 5)}


def calibrate(limits: VelocityLimits | None = None) -> dict[str, dict[str, float]]:
    """Run the experiments and fit every axis group; the dict FastDynamics takes as `model`."""
    inputs, responses, displacements = run_experiments(EXPERIMENTS, limits)
    model = {}
    for group in AXIS_GROUPS:
        idx = [i for i, e in enumerate(EXPERIMENTS) if e.group == group]
        model[group] = fit_group(group, [inputs[i] for i in idx], [responses[i] for i in idx],
                                 [displacements[i] for i in idx], [EXPERIMENTS[i].component for i in idx])
    return model


def write_model(model: dict[str, dict[str, float]], path: Path, command: str) -> None:
    """Write the fitted model with a header saying how and when it was made."""
    today = datetime.date.today().isoformat()
    header = (
        "# Closed-loop velocity model of the PyBullet drone + PID, used by the `fast` backend.\n"
        f"# Fitted on {today} by: {command}\n"
        "# Per axis group: V(s)/U(s) = wn^2 (1 + zero_time s) / (s^2 + 2 damping wn s + wn^2),\n"
        "# natural_frequency wn in rad/s, zero_time in s; fit_rms is the velocity error of the fit\n"
        "# (m/s, or rad/s for yaw) over all step experiments at 48 Hz, fit_rms_relative that RMS\n"
        "# divided by the RMS of the responses, fit_rms_position the displacement error (m or rad).\n"
        "# xy additionally saturates: the acceleration demand K (u - w), K = wn / (2 damping), is\n"
        "# norm-limited to max_acceleration (m/s^2, the controller's tilt limit) at 48 Hz, with a\n"
        "# lag 1 / (2 damping wn) to the acceleration, plus integral_gain times the velocity-error\n"
        "# integral clipped to +-integral_limit (m); see sim/fast_dynamics.py.\n"
        "# Regenerate whenever the controller or drone changes.\n"
    )
    path.write_text(header + yaml.safe_dump(model, sort_keys=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.calibrate", description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=FAST_MODEL_PATH,
                        help="where to write the fitted model (default: sim/fast_model.yaml)")
    args = parser.parse_args(argv)
    model = calibrate()
    command = "python -m sim.calibrate" + ("" if argv is None and len(sys.argv) <= 1 else
                                            " " + " ".join(sys.argv[1:] if argv is None else argv))
    write_model(model, args.output, command)
    for group, entry in model.items():
        print(f"{group:>3}: wn={entry['natural_frequency']:.3f} rad/s  damping={entry['damping']:.3f}  "
              f"zero_time={entry['zero_time']:.4f} s  fit RMS={entry['fit_rms']:.4f} "
              f"({100 * entry['fit_rms_relative']:.1f} %), position {entry['fit_rms_position']:.4f}")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
