"""The `fast` backend: a batched linear model of drone + velocity controller.

Training throughput is bounded by physics; this model replaces PyBullet + PID by the closed-loop
response it produces, fitted from PyBullet step responses (`python -m sim.calibrate`, numbers
in sim/fast_model.yaml). Training on `fast` and evaluating on `pybullet` then measures the
sim-to-sim gap instead of hiding it.

Per axis group (horizontal x and y share one model, vertical z, yaw) the velocity answers its
setpoint u through

    V(s) / U(s) = wn^2 (1 + b s) / (s^2 + 2 zeta wn s + wn^2)

and position (or yaw angle) is its integral. The setpoint is constant over a policy period, so
the 3-state system [position, z1, z2] is discretised exactly once, with the matrix exponential,
and every step is one small matrix product over (envs, drones, axes). Roll and pitch are the
small-angle tilt that produces the model's horizontal acceleration; body rates are the finite
difference of roll and pitch over the step and the model's yaw rate.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
import yaml

from sim.drone import CrazyflieParams, VelocityLimits

FAST_MODEL_PATH = Path(__file__).resolve().parent / "fast_model.yaml"
"""Fitted model parameters written by `python -m sim.calibrate`."""

AXIS_GROUPS = ("xy", "z", "yaw")
_GROUP_OF_AXIS = (0, 0, 1, 2)  # x, y -> xy; z -> z; yaw -> yaw
GROUND_HEIGHT = 0.0125
"""Lowest body-centre height: half the URDF collision cylinder, resting on the z = 0 plane."""


def load_fast_model(path: str | Path = FAST_MODEL_PATH) -> dict[str, dict[str, float]]:
    """Read and check the fitted model: {group: {natural_frequency, damping, zero_time, ...}}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"fast model file {path} is missing; run `python -m sim.calibrate` to create it.")
    with path.open() as f:
        model = yaml.safe_load(f)
    validate_fast_model(model, source=str(path))
    return model


def validate_fast_model(model: Any, source: str = "model") -> None:
    """Raise ValueError unless `model` has positive wn and damping and a finite zero time per group."""
    if not isinstance(model, dict):
        raise ValueError(f"{source} must be a mapping of axis groups {', '.join(AXIS_GROUPS)}.")
    for group in AXIS_GROUPS:
        entry = model.get(group)
        if not isinstance(entry, dict):
            raise ValueError(f"{source} lacks the '{group}' group; rerun `python -m sim.calibrate`.")
        for key, lower in (("natural_frequency", 0.0), ("damping", 0.0)):
            value = entry.get(key)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > lower):
                raise ValueError(f"{source}: {group}.{key} must be a finite number > 0 (got {value!r}).")
        zero_time = entry.get("zero_time", 0.0)
        if not (isinstance(zero_time, int | float) and math.isfinite(zero_time)):
            raise ValueError(f"{source}: {group}.zero_time must be a finite number (got {zero_time!r}).")


def continuous_axis_model(natural_frequency: float, damping: float,
                          zero_time: float) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) of one axis with state [position, z1, z2]; velocity = wn^2 (z1 + b z2)."""
    wn2 = natural_frequency**2
    a = np.array([
        [0.0, wn2, wn2 * zero_time],
        [0.0, 0.0, 1.0],
        [0.0, -wn2, -2.0 * damping * natural_frequency],
    ])
    b = np.array([0.0, 0.0, 1.0])
    return a, b


def discretize(a: np.ndarray, b: np.ndarray, period: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact zero-order-hold discretisation: expm([[A, B], [0, 0]] T)."""
    n = a.shape[0]
    block = np.zeros((n + 1, n + 1))
    block[:n, :n] = a
    block[:n, n] = b
    phi = scipy.linalg.expm(block * period)
    return phi[:n, :n], phi[:n, n]


def velocity_output(entry: dict[str, float]) -> np.ndarray:
    """(3,) row mapping the axis state to velocity."""
    wn2 = entry["natural_frequency"] ** 2
    return np.array([0.0, wn2, wn2 * entry.get("zero_time", 0.0)])


def acceleration_output(entry: dict[str, float]) -> tuple[np.ndarray, float]:
    """(row, input gain) mapping state and setpoint to acceleration dv/dt."""
    wn, zeta, zt = entry["natural_frequency"], entry["damping"], entry.get("zero_time", 0.0)
    wn2 = wn**2
    # dv/dt = wn^2 (z2 + b z2'),  z2' = -wn^2 z1 - 2 zeta wn z2 + u
    row = np.array([0.0, -wn2 * wn2 * zt, wn2 * (1.0 - 2.0 * zeta * wn * zt)])
    return row, wn2 * zt


class FastDynamics:
    """`num_envs` x `num_drones` drones flown by the fitted closed-loop model, all at once.

    Same interface as the PyBullet backend (see sim.dynamics): reset / step / state /
    physics_steps / close; state() has the same (E, N, 12) layout.
    """

    def __init__(self, num_envs: int, num_drones: int, *, policy_hz: float = 8,
                 limits: VelocityLimits | None = None, model: dict | None = None,
                 sensor_noise: float = 0.0, seed: int | None = None) -> None:
        if num_envs < 1 or num_drones < 1:
            raise ValueError(f"num_envs and num_drones must be >= 1 (got {num_envs}, {num_drones}).")
        if not (math.isfinite(policy_hz) and policy_hz > 0):
            raise ValueError(f"policy_hz must be a finite number > 0 (got {policy_hz!r}).")
        if not (math.isfinite(sensor_noise) and sensor_noise >= 0):
            raise ValueError(f"sensor_noise must be a finite number >= 0 (got {sensor_noise!r}).")
        if model is None:
            model = load_fast_model()
        else:
            validate_fast_model(model)
        self.num_envs = int(num_envs)
        self.num_drones = int(num_drones)
        self.policy_hz = float(policy_hz)
        self.limits = limits or VelocityLimits()
        self.model = model
        self.sensor_noise = float(sensor_noise)
        self._rng = np.random.default_rng(seed)
        self._gravity = CrazyflieParams().gravity
        period = 1.0 / self.policy_hz

        # Per-axis (x, y, z, yaw) discrete matrices and output rows, built once.
        entries = [model[AXIS_GROUPS[g]] for g in _GROUP_OF_AXIS]
        mats = [discretize(*continuous_axis_model(e["natural_frequency"], e["damping"],
                                                  e.get("zero_time", 0.0)), period) for e in entries]
        self._ad = np.stack([m[0] for m in mats])  # (4, 3, 3)
        self._bd = np.stack([m[1] for m in mats])  # (4, 3)
        self._c_vel = np.stack([velocity_output(e) for e in entries])  # (4, 3)
        acc = [acceleration_output(e) for e in entries]
        self._c_acc = np.stack([a[0] for a in acc])
        self._d_acc = np.array([a[1] for a in acc])

        shape = (self.num_envs, self.num_drones)
        self._x = np.zeros((*shape, 4, 3))  # per axis: [position, z1, z2]
        self._setpoints = np.zeros((*shape, 4))
        self._tilt = np.zeros((*shape, 2))  # roll, pitch
        self._tilt_rate = np.zeros((*shape, 2))
        self._update_tilt()

    @property
    def physics_steps(self) -> int:
        """Always 0: there is no physics engine behind this backend."""
        return 0

    def reset(self, env_ids: np.ndarray, positions: np.ndarray, yaws: np.ndarray | None = None) -> None:
        """Put drones of `env_ids` at rest at `positions` (len, N, 3) with headings `yaws` (len, N)."""
        env_ids = np.asarray(env_ids, dtype=np.intp).reshape(-1)
        positions = np.asarray(positions, dtype=np.float64)
        expected = (len(env_ids), self.num_drones, 3)
        if positions.shape != expected:
            raise ValueError(f"positions must have shape {expected} (got {positions.shape}).")
        yaws = np.zeros(expected[:2]) if yaws is None else np.asarray(yaws, dtype=np.float64)
        if yaws.shape != expected[:2]:
            raise ValueError(f"yaws must have shape {expected[:2]} (got {yaws.shape}).")
        self._x[env_ids] = 0.0
        self._x[env_ids, :, :3, 0] = positions
        self._x[env_ids, :, 3, 0] = yaws
        self._setpoints[env_ids] = 0.0
        self._tilt[env_ids] = 0.0
        self._tilt_rate[env_ids] = 0.0

    def step(self, setpoints: np.ndarray) -> None:
        """Advance every env by one policy period under `setpoints` (E, N, 4), clamped to the limits."""
        setpoints = np.asarray(setpoints, dtype=np.float64)
        expected = (self.num_envs, self.num_drones, 4)
        if setpoints.shape != expected:
            raise ValueError(f"setpoints must have shape {expected} (got {setpoints.shape}).")
        u = self.limits.clamp(setpoints)
        self._setpoints = u
        self._x = np.einsum("aij,enaj->enai", self._ad, self._x) + self._bd * u[..., None]
        # The ground: a drone that reaches the plane stops there (lands) instead of sinking.
        grounded = self._x[..., 2, 0] < GROUND_HEIGHT
        if grounded.any():
            self._x[grounded, 2, :] = 0.0
            self._x[grounded, 2, 0] = GROUND_HEIGHT
        previous = self._tilt
        self._update_tilt()
        self._tilt_rate = (self._tilt - previous) * self.policy_hz

    def state(self) -> np.ndarray:
        """(E, N, 12) float64, the layout of PyBulletWorld.state(): pos, vel (world), roll/pitch/yaw,
        body rates. Yaw is wrapped to [-pi, pi)."""
        vel = np.einsum("ai,enai->ena", self._c_vel, self._x)
        pos = self._x[..., :3, 0]
        yaw = (self._x[..., 3, 0] + np.pi) % (2.0 * np.pi) - np.pi
        out = np.concatenate([
            pos, vel[..., :3], self._tilt, yaw[..., None], self._tilt_rate, vel[..., 3:4],
        ], axis=-1)
        if self.sensor_noise > 0.0:
            out[..., :6] += self._rng.normal(0.0, self.sensor_noise, out[..., :6].shape)
        return out

    def close(self) -> None:
        """Nothing to release; present for interface parity with the PyBullet backend."""

    def _update_tilt(self) -> None:
        """Small-angle roll and pitch that tilt the thrust to the model's horizontal acceleration."""
        acc = np.einsum("ai,enai->ena", self._c_acc[:2], self._x[..., :2, :]) + self._d_acc[:2] * self._setpoints[..., :2]
        yaw = self._x[..., 3, 0]
        cos_yaw, sin_yaw = np.cos(yaw), np.sin(yaw)
        forward = cos_yaw * acc[..., 0] + sin_yaw * acc[..., 1]
        left = -sin_yaw * acc[..., 0] + cos_yaw * acc[..., 1]
        self._tilt = np.stack([np.arctan2(-left, self._gravity), np.arctan2(forward, self._gravity)], axis=-1)
