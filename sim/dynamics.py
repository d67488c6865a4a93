"""One batched dynamics interface over the two backends, for the vector environment.

    dyn = make_dynamics("pybullet" | "fast", num_envs, num_drones, policy_hz=8, limits=limits)
    dyn.reset(env_ids, positions, yaws); dyn.step(setpoints); dyn.state(); dyn.kinematics()

Scenario logic (rewards, observations, resets) lives above this line and is shared; only what
happens between two policy steps differs. Shapes: setpoints (E, N, 4) = (vx, vy, vz, yaw_rate)
world ENU; state (E, N, 12) = position, velocity (world), roll/pitch/yaw, body rates;
kinematics: its position and velocity, (E, N, 3) each.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from sim.control import CONTROL_HZ
from sim.drone import VelocityLimits
from sim.fast_dynamics import FastDynamics
from sim.physics import PyBulletWorld

BACKENDS = ("fast", "pybullet")

PYBULLET_OPTIONS = {"gui": False, "drag": False, "ground_effect": False, "sensor_noise": 0.0,
                    "actuation_delay": 0, "randomize": 0.0}
"""Options of the pybullet backend and their defaults (= effect off)."""

FAST_OPTIONS = ("sensor_noise",)
"""The subset the fast backend models; any other option set away from its default is refused."""

PHYSICS_HZ = 240


class Dynamics(Protocol):
    """What the vector environment needs from a backend."""

    num_envs: int
    num_drones: int
    policy_hz: float

    def reset(self, env_ids: np.ndarray, positions: np.ndarray, yaws: np.ndarray | None = None) -> None: ...
    def step(self, setpoints: np.ndarray) -> None: ...
    def state(self) -> np.ndarray: ...
    def kinematics(self) -> tuple[np.ndarray, np.ndarray]: ...
    @property
    def physics_steps(self) -> int: ...
    def close(self) -> None: ...


class PyBulletDynamics:
    """`num_envs` independent PyBulletWorlds (one PyBullet client each) behind the batched API."""

    def __init__(self, num_envs: int, num_drones: int, *, policy_hz: float,
                 limits: VelocityLimits | None = None, seed: int | None = None, **options: Any) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1 (got {num_envs}).")
        self.num_envs = int(num_envs)
        self.num_drones = int(num_drones)
        self.policy_hz = float(policy_hz)
        self.limits = limits or VelocityLimits()
        # Independent, reproducible streams per world (noise, randomisation).
        seeds = np.random.SeedSequence(seed).spawn(self.num_envs)
        self.worlds: list[PyBulletWorld] = []
        try:
            for e in range(self.num_envs):
                self.worlds.append(PyBulletWorld(
                    self.num_drones, physics_hz=PHYSICS_HZ, ctrl_hz=int(CONTROL_HZ), limits=self.limits,
                    seed=int(seeds[e].generate_state(1)[0]), **options))
        except Exception:
            self.close()
            raise

    @property
    def physics_steps(self) -> int:
        """stepSimulation calls summed over all worlds."""
        return sum(w.physics_steps for w in self.worlds)

    def reset(self, env_ids: np.ndarray, positions: np.ndarray, yaws: np.ndarray | None = None) -> None:
        """Reset the worlds `env_ids` with positions (len, N, 3) and yaws (len, N)."""
        env_ids = np.asarray(env_ids, dtype=np.intp).reshape(-1)
        positions = np.asarray(positions, dtype=np.float64)
        expected = (len(env_ids), self.num_drones, 3)
        if positions.shape != expected:
            raise ValueError(f"positions must have shape {expected} (got {positions.shape}).")
        for j, e in enumerate(env_ids):
            self.worlds[e].reset(positions[j], None if yaws is None else np.asarray(yaws)[j])

    def step(self, setpoints: np.ndarray) -> None:
        """Advance every world by 1 / policy_hz seconds under setpoints (E, N, 4)."""
        setpoints = np.asarray(setpoints, dtype=np.float64)
        expected = (self.num_envs, self.num_drones, 4)
        if setpoints.shape != expected:
            raise ValueError(f"setpoints must have shape {expected} (got {setpoints.shape}).")
        duration = 1.0 / self.policy_hz
        for world, sp in zip(self.worlds, setpoints, strict=True):
            world.step(sp, duration)

    def state(self) -> np.ndarray:
        """(E, N, 12) float64 states of all worlds."""
        return np.stack([w.state() for w in self.worlds])

    def kinematics(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions and velocities (E, N, 3) each: the first columns of `state()`."""
        state = self.state()
        return state[..., 0:3], state[..., 3:6]

    def set_obstacles(self, env_ids: np.ndarray, centres: np.ndarray, half_sizes: np.ndarray,
                      boxes: np.ndarray) -> None:
        """Give the worlds `env_ids` their obstacle layouts (len, O, ...) (sim.obstacles)."""
        for j, e in enumerate(np.asarray(env_ids, dtype=np.intp).reshape(-1)):
            self.worlds[e].set_obstacles(centres[j], half_sizes[j], boxes[j])

    def range_readings(self, env_ids: np.ndarray | slice, rays: int, range_max: float) -> np.ndarray:
        """(len, N, R) range readings of the worlds `env_ids` (PyBulletWorld.range_readings)."""
        ids = np.arange(self.num_envs)[env_ids]
        return np.stack([self.worlds[e].range_readings(rays, range_max) for e in ids])

    def close(self) -> None:
        for world in self.worlds:
            world.close()


def make_dynamics(backend: str, num_envs: int, num_drones: int, *, policy_hz: float,
                  limits: VelocityLimits | None = None, seed: int | None = None,
                  **options: Any) -> PyBulletDynamics | FastDynamics:
    """Build the dynamics backend `backend` ('fast' or 'pybullet') for num_envs x num_drones drones.

    `options` are the pybullet simulation options (gui, drag, ground_effect, sensor_noise,
    actuation_delay, randomize). The fast backend models only sensor_noise and refuses any other
    option set to a non-default value, so a config never silently loses an effect.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    unknown = sorted(set(options) - set(PYBULLET_OPTIONS))
    if unknown:
        raise ValueError(f"unknown dynamics option {unknown[0]!r}; valid options: "
                         f"{', '.join(PYBULLET_OPTIONS)}")
    steps = PHYSICS_HZ / policy_hz if policy_hz > 0 else 0.0
    if not (policy_hz > 0 and abs(steps - round(steps)) < 1e-9 and round(steps) % (PHYSICS_HZ // int(CONTROL_HZ)) == 0):
        raise ValueError(f"policy_hz must divide the {CONTROL_HZ:g} Hz controller rate (got {policy_hz!r}).")
    limits = limits or VelocityLimits()
    if backend == "fast":
        for name, value in options.items():
            if name not in FAST_OPTIONS and value != PYBULLET_OPTIONS[name]:
                raise ValueError(f"the fast backend does not model {name}={value!r}; "
                                 f"leave it at {PYBULLET_OPTIONS[name]!r} or use backend 'pybullet'.")
        return FastDynamics(num_envs, num_drones, policy_hz=policy_hz, limits=limits,
                            sensor_noise=float(options.get("sensor_noise", 0.0)), seed=seed)
    return PyBulletDynamics(num_envs, num_drones, policy_hz=policy_hz, limits=limits, seed=seed, **options)
