"""Drone dynamics: model files, controller behaviour on PyBullet, and fast-vs-PyBullet agreement.

Bounds stated here are what users of the backends rely on:
- hover holds altitude within HOVER_BOUND_M for 10 s;
- a velocity step settles within 5 % of the setpoint after 2 s, altitude held within HOVER_BOUND_M;
- the fast backend follows PyBullet within BACKEND_RMS_BOUND_M position RMS over 8 s of mixed
  8 Hz setpoints inside +/-1 m/s horizontally (measured: 0.020 m; 0.031 m before the
  tilt-limited horizontal model);
- and within FULL_SPEED_RMS_BOUND_M over 8 s of full-speed +-2 m/s horizontal steps and
  reversals switching at the 8 Hz policy rate, diagonals included (measured: 0.036 m; the linear
  model before the tilt limit gave 0.85 m). Large vertical speeds during such manoeuvres give
  more (the real tilt limit grows with the vertical thrust demand, the model's does not).
"""

from __future__ import annotations

import numpy as np
import pytest

from sim.drone import (
    URDF_PATH,
    CrazyflieParams,
    VelocityLimits,
    check_urdf_matches_params,
    read_urdf_inertial,
)
from sim.dynamics import make_dynamics
from sim.physics import PyBulletWorld

HOVER_BOUND_M = 0.03
BACKEND_RMS_BOUND_M = 0.06
FULL_SPEED_RMS_BOUND_M = 0.05


def fly(world: PyBulletWorld, setpoints: np.ndarray, seconds: float, rate_hz: float = 48.0) -> np.ndarray:
    """States (ticks, N, 12) sampled at rate_hz while holding `setpoints`."""
    states = []
    for _ in range(round(seconds * rate_hz)):
        world.step(setpoints, 1.0 / rate_hz)
        states.append(world.state())
    return np.array(states)


@pytest.fixture
def world():
    w = PyBulletWorld(2, seed=0)
    yield w
    w.close()


# -- model files and validation -------------------------------------------------------------------
def test_urdf_mass_and_inertia_match_params():
    params = CrazyflieParams()
    urdf = read_urdf_inertial(URDF_PATH)
    assert urdf == pytest.approx({"mass": params.mass, "ixx": params.ixx, "iyy": params.iyy,
                                  "izz": params.izz})
    check_urdf_matches_params(params)
    with pytest.raises(ValueError, match="mass"):
        check_urdf_matches_params(CrazyflieParams(mass=0.03))


def test_params_hover_and_max_rpm_consistent():
    params = CrazyflieParams()
    assert 4 * params.kf * params.hover_rpm**2 == pytest.approx(params.weight)
    assert params.max_thrust == pytest.approx(params.thrust_to_weight * params.weight)


@pytest.mark.parametrize("name", ["vxy", "vz", "yaw_rate"])
@pytest.mark.parametrize("value", [0.0, -1.0, float("nan")])
def test_bad_limits_raise_clear_error(name, value):
    with pytest.raises(ValueError, match=f"VelocityLimits.{name} must be a finite number > 0"):
        VelocityLimits(**{name: value})


def test_limits_clamp_per_component():
    limits = VelocityLimits(vxy=2.0, vz=1.0, yaw_rate=1.5)
    out = limits.clamp(np.array([[10.0, -10.0, 5.0, -5.0], [0.5, -0.5, 0.2, 0.1]]))
    np.testing.assert_allclose(out, [[2.0, -2.0, 1.0, -1.5], [0.5, -0.5, 0.2, 0.1]])


def test_unknown_backend_raises():
    with pytest.raises(ValueError, match="unknown backend 'x'; choose one of: fast, pybullet"):
        make_dynamics("x", 1, 1, policy_hz=8, limits=VelocityLimits())


def test_fast_backend_refuses_options_it_does_not_model():
    with pytest.raises(ValueError, match="fast backend does not model drag"):
        make_dynamics("fast", 1, 1, policy_hz=8, limits=VelocityLimits(), drag=True)
    make_dynamics("fast", 1, 1, policy_hz=8, limits=VelocityLimits(), drag=False, sensor_noise=0.01)


# -- PyBullet closed loop ----------------------------------------------------------------------------
def test_hover_holds_altitude(world):
    world.reset(np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 1.0]]))
    states = fly(world, np.zeros((2, 4)), 10.0)
    assert np.abs(states[..., 2] - 1.0).max() < HOVER_BOUND_M
    assert np.abs(states[..., :2] - states[0, :, :2]).max() < HOVER_BOUND_M


def test_velocity_step_settles_and_holds_altitude(world):
    world.reset(np.array([[0.0, 0.0, 1.0], [0.0, 2.0, 1.0]]))
    setpoints = np.zeros((2, 4))
    setpoints[0, 0] = 1.0  # drone 0: x step
    setpoints[1, 2] = 0.5  # drone 1: climb
    states = fly(world, setpoints, 2.0)
    settled = states[round(1.5 * 48):]  # from 1.5 s on
    assert np.abs(settled[:, 0, 3] - 1.0).max() < 0.05
    assert np.abs(settled[:, 1, 5] - 0.5).max() < 0.05 * 0.5
    assert states[:, 0, 3].max() < 1.1  # no big overshoot
    assert np.abs(states[:, 0, 2] - 1.0).max() < HOVER_BOUND_M


def test_commands_beyond_limits_are_clamped():
    limits = VelocityLimits(vxy=1.0, vz=0.5, yaw_rate=1.0)
    world = PyBulletWorld(1, limits=limits)
    try:
        world.reset(np.array([[0.0, 0.0, 1.0]]))
        states = fly(world, np.array([[10.0, 0.0, 0.0, 0.0]]), 3.0)
        assert states[-1, 0, 3] == pytest.approx(limits.vxy, rel=0.05)
    finally:
        world.close()


def test_options_fly_stably():
    world = PyBulletWorld(3, drag=True, ground_effect=True, sensor_noise=0.01, actuation_delay=1,
                          randomize=0.1, seed=3)
    try:
        world.reset(np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 1.0], [2.0, 0.0, 0.3]]))
        world.step(np.zeros((3, 4)), 5.0)
        state = world.state()
        assert np.all(np.abs(state[:, 2] - [1.0, 1.0, 0.3]) < 0.1)
        assert np.all(np.abs(state[:, 6:8]) < 0.1)
        assert world.physics_steps >= 5 * 240
    finally:
        world.close()


# -- batched interface and the fast backend ----------------------------------------------------------
@pytest.mark.parametrize("backend", ["fast", "pybullet"])
def test_dynamics_interface(backend):
    dyn = make_dynamics(backend, 2, 3, policy_hz=8, limits=VelocityLimits(), seed=0)
    try:
        positions = np.zeros((2, 3, 3))
        positions[..., 0] = np.arange(3)
        positions[..., 2] = 1.0
        dyn.reset(np.arange(2), positions, np.zeros((2, 3)))
        setpoints = np.zeros((2, 3, 4))
        setpoints[1, :, 0] = 1.0
        dyn.step(setpoints)
        state = dyn.state()
        assert state.shape == (2, 3, 12) and state.dtype == np.float64
        assert np.all(state[1, :, 3] > 0.1) and np.all(np.abs(state[0, :, 3]) < 1e-6)
        assert dyn.physics_steps == (0 if backend == "fast" else 2 * 30)
        dyn.reset(np.array([1]), positions[:1], np.zeros((1, 3)))
        np.testing.assert_allclose(dyn.state()[1, :, :6], np.concatenate(
            [positions[0], np.zeros((3, 3))], axis=1), atol=1e-9)
    finally:
        dyn.close()


def backend_position_rms(commands: np.ndarray) -> float:
    """Position RMS (m) between the fast and pybullet backends flying `commands` (steps, 1, 2, 4)."""
    start = np.array([[[0.0, 0.0, 1.5], [2.0, 0.0, 1.5]]])
    trajectories = {}
    for backend in ("pybullet", "fast"):
        dyn = make_dynamics(backend, 1, 2, policy_hz=8, limits=VelocityLimits(), seed=0)
        dyn.reset(np.array([0]), start, np.zeros((1, 2)))
        states = []
        for command in commands:
            dyn.step(command)
            states.append(dyn.state()[0])
        dyn.close()
        trajectories[backend] = np.array(states)
    error = trajectories["pybullet"][..., :3] - trajectories["fast"][..., :3]
    return float(np.sqrt((error**2).sum(-1).mean()))


def test_fast_backend_tracks_pybullet():
    rng = np.random.default_rng(1)
    steps, hold = 64, 8  # 8 s at 8 Hz, a new setpoint every second
    scale = np.array([1.0, 1.0, 0.6, 1.0])
    commands = np.repeat(rng.uniform(-1, 1, (steps // hold, 1, 2, 4)) * scale, hold, axis=0)
    rms = backend_position_rms(commands)
    assert rms < BACKEND_RMS_BOUND_M, f"fast vs pybullet position RMS {rms:.3f} m"


def test_fast_backend_tracks_pybullet_at_full_speed():
    """+-2 m/s horizontal steps and reversals held 1..8 policy steps: the tilt limit saturates."""
    rng = np.random.default_rng(3)
    steps = 64  # 8 s at 8 Hz
    commands = np.zeros((steps, 1, 2, 4))
    for drone in range(2):
        for axis in range(2):
            k = 0
            while k < steps:
                hold = int(rng.integers(1, 9))
                commands[k:k + hold, 0, drone, axis] = rng.choice([-2.0, 0.0, 2.0])
                k += hold
        k = 0
        while k < steps:
            hold = int(rng.integers(4, 12))
            commands[k:k + hold, 0, drone, 3] = rng.uniform(-1.0, 1.0)  # yaw rate
            k += hold
    assert np.abs(np.diff(commands[:, 0, :, :2], axis=0)).max() == 4.0  # reversals included
    rms = backend_position_rms(commands)
    assert rms < FULL_SPEED_RMS_BOUND_M, f"fast vs pybullet position RMS {rms:.3f} m at full speed"


def test_unstable_actuation_delay_is_refused():
    with pytest.raises(ValueError, match="actuation_delay must be an integer in"):
        PyBulletWorld(1, actuation_delay=2)
