"""Scenario configurations: one validated, frozen dataclass per scenario.

The configuration is part of the sim-to-real contract: the observation an agent
builds depends on it (field size, footprint, communication radius, neighbours K,
patch size), so the deployed node rebuilds the same object from a policy bundle.
numpy-free and dependency-free on purpose.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

CONTROL_HZ = 48.0
"""Rate of the onboard velocity controller; the policy rate must divide it."""

VALID_POLICY_HZ = tuple(CONTROL_HZ / k for k in range(1, 49) if (CONTROL_HZ / k).is_integer())

ACTION_MODES = ("continuous", "discrete")

# Discrete action set: index -> unit (vx, vy, vz) direction, scaled by the velocity limits.
# 0 hovers; 1-8 fly horizontally (E, NE, N, NW, W, SW, S, SE); 9 climbs; 10 descends.
DISCRETE_ACTIONS = (
    ("hover", (0.0, 0.0, 0.0)),
    ("east", (1.0, 0.0, 0.0)),
    ("north_east", (math.sqrt(0.5), math.sqrt(0.5), 0.0)),
    ("north", (0.0, 1.0, 0.0)),
    ("north_west", (-math.sqrt(0.5), math.sqrt(0.5), 0.0)),
    ("west", (-1.0, 0.0, 0.0)),
    ("south_west", (-math.sqrt(0.5), -math.sqrt(0.5), 0.0)),
    ("south", (0.0, -1.0, 0.0)),
    ("south_east", (math.sqrt(0.5), -math.sqrt(0.5), 0.0)),
    ("up", (0.0, 0.0, 1.0)),
    ("down", (0.0, 0.0, -1.0)),
)

# The cells view of pursuit (tabular learners): index -> (dx, dy) move to a neighbouring cell.
CELL_MOVES = (
    ("stay", (0, 0)),
    ("east", (1, 0)),
    ("west", (-1, 0)),
    ("north", (0, 1)),
    ("south", (0, -1)),
)

PURSUIT_VIEWS = ("drone", "cells")

OBSTACLE_SHAPES = ("cylinder", "box", "mixed")

MAX_JOINT_CELLS = 2 ** 20
"""Largest joint cell state of the pursuit cells view (its one-hot observation's width)."""


class ConfigError(ValueError):
    """A scenario parameter outside its valid range; the message names it and the fix."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@dataclass(frozen=True)
class SwarmConfig:
    """Parameters every drone-swarm scenario shares.

    Distances in metres, speeds in m/s, ENU frame, field origin at (0, 0).
    """

    num_drones: int = 4
    action_mode: str = "continuous"
    policy_hz: float = 8.0
    max_steps: int = 100
    # Velocity-setpoint limits: a continuous action in [-1, 1] is scaled by these.
    vxy: float = 2.0
    vz: float = 1.0
    yaw_rate: float = 1.5
    # What a drone can hear: neighbours within comm_radius, the K nearest of them.
    comm_radius: float = 1.5
    num_neighbours: int = 3
    # Mean-field observation field: the mean action of every neighbour heard (sim.obs
    # neighbour_mean_action), appended last. Off by default; the mean-field family sets it.
    mean_action: bool = False
    # Geofence: the field in x/y and this altitude band in z.
    altitude_min: float = 0.5
    altitude_max: float = 1.5
    start_altitude: float = 1.0
    collision_distance: float = 0.3
    collision_penalty: float = 0.05
    geofence_penalty: float = 0.05
    # Reward minus this times each drone's squared change of commanded velocity since its last
    # command (each axis over its limit, so a full reversal on one axis costs 4), averaged
    # over the drones: smooth commands instead of bang-bang chatter. 0 = off.
    command_change_penalty: float = 0.0
    # Pay each drone its own share of the team reward (times N, so that the drones' mean is
    # the team reward) instead of the team reward: see sim.vec_env. The mean-field family sets it.
    agent_rewards: bool = False
    # Simulation options (do not change the observation).
    drag: bool = False
    ground_effect: bool = False
    sensor_noise: float = 0.0
    actuation_delay: int = 0
    randomize: float = 0.0
    # Deployment faults in what the drones perceive and command (policy ticks); the env keeps
    # scoring the true state. See sim.vec_env.
    odom_latency: int = 0
    odom_period: int = 1
    neighbour_drop: float = 0.0
    command_delay: int = 0
    gui: bool = False

    scenario = "base"
    # Fields that do not change what an agent observes; they stay out of the observation hash.
    SIM_ONLY = (
        "action_mode", "max_steps", "collision_penalty", "geofence_penalty", "command_change_penalty",
        "agent_rewards", "drag",
        "ground_effect", "sensor_noise", "actuation_delay", "randomize", "gui",
        "collision_distance", "start_altitude", "yaw_rate",
        "odom_latency", "odom_period", "neighbour_drop", "command_delay",
    )

    def __post_init__(self) -> None:
        self._validate()

    # -- geometry ---------------------------------------------------------------------------
    @property
    def field_size(self) -> tuple[float, float]:
        """Extent of the field in metres (x, y)."""
        raise NotImplementedError

    @property
    def start_spacing(self) -> float:
        """Minimum distance between drones at reset: twice the near-collision distance."""
        return max(2.0 * self.collision_distance, 0.2)

    @property
    def teams(self) -> dict[str, list[int]]:
        """The scenario's teams (name -> drone indices, in drone order); {} for a cooperative
        one. The trainer's team mode (`trainer.teams`) and `team_policies` over ROS read it."""
        return {}

    def start_capacity(self) -> int:
        """How many drones fit in the field at start spacing (one per grid spot)."""
        fx, fy = self.field_size
        s = self.start_spacing
        return max(int(fx / s), 0) * max(int(fy / s), 0)

    # -- validation -------------------------------------------------------------------------
    def _validate(self) -> None:
        _require(isinstance(self.num_drones, int) and self.num_drones >= 1,
                 f"num_drones must be an integer >= 1 (got {self.num_drones!r}).")
        _require(self.action_mode in ACTION_MODES,
                 f"action_mode must be one of {', '.join(ACTION_MODES)} (got {self.action_mode!r}).")
        _require(any(abs(self.policy_hz - v) < 1e-9 for v in VALID_POLICY_HZ),
                 f"policy_hz must divide the {CONTROL_HZ:g} Hz controller rate, one of "
                 f"{', '.join(f'{v:g}' for v in VALID_POLICY_HZ)} (got {self.policy_hz!r}).")
        _require(isinstance(self.max_steps, int) and self.max_steps >= 1,
                 f"max_steps must be an integer >= 1 (got {self.max_steps!r}).")
        for name in ("vxy", "vz", "yaw_rate", "comm_radius", "collision_distance"):
            value = getattr(self, name)
            _require(isinstance(value, int | float) and math.isfinite(value) and value > 0,
                     f"{name} must be a finite number > 0 (got {value!r}).")
        _require(isinstance(self.num_neighbours, int) and 0 <= self.num_neighbours,
                 f"num_neighbours must be an integer >= 0 (got {self.num_neighbours!r}).")
        for name in ("mean_action", "agent_rewards"):
            _require(isinstance(getattr(self, name), bool),
                     f"{name} must be true or false (got {getattr(self, name)!r}).")
        _require(0.0 < self.altitude_min < self.altitude_max,
                 f"altitude band must satisfy 0 < altitude_min < altitude_max "
                 f"(got {self.altitude_min!r}, {self.altitude_max!r}).")
        _require(self.altitude_min <= self.start_altitude <= self.altitude_max,
                 f"start_altitude must lie in [altitude_min, altitude_max] = "
                 f"[{self.altitude_min}, {self.altitude_max}] (got {self.start_altitude!r}).")
        for name in ("collision_penalty", "geofence_penalty", "command_change_penalty",
                     "sensor_noise", "randomize"):
            value = getattr(self, name)
            _require(isinstance(value, int | float) and math.isfinite(value) and value >= 0,
                     f"{name} must be a finite number >= 0 (got {value!r}).")
        _require(self.randomize < 1.0, f"randomize must be in [0, 1) (got {self.randomize!r}).")
        # The controller's gains are stable with at most one control tick of motor delay.
        _require(isinstance(self.actuation_delay, int) and 0 <= self.actuation_delay <= 1,
                 f"actuation_delay must be 0 or 1 control ticks (got {self.actuation_delay!r}).")
        for name in ("odom_latency", "command_delay"):
            value = getattr(self, name)
            _require(isinstance(value, int) and 0 <= value,
                     f"{name} must be an integer number of policy ticks >= 0 (got {value!r}).")
        _require(isinstance(self.odom_period, int) and 1 <= self.odom_period,
                 f"odom_period must be an integer number of policy ticks >= 1 (got "
                 f"{self.odom_period!r}).")
        _require(isinstance(self.neighbour_drop, int | float) and 0.0 <= self.neighbour_drop <= 1.0,
                 f"neighbour_drop must be a probability in [0, 1] (got {self.neighbour_drop!r}).")

    def _validate_capacity(self) -> None:
        capacity = self.start_capacity()
        _require(self.num_drones <= capacity,
                 f"num_drones={self.num_drones} is more than the field can hold at "
                 f"{self.start_spacing:.2f} m spacing (at most {capacity}); enlarge the field "
                 f"or use fewer drones.")

    # -- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data (tuples as lists, as YAML and JSON write them back)."""
        return {"scenario": self.scenario,
                **{k: list(v) if isinstance(v, tuple) else v
                   for k, v in dataclasses.asdict(self).items()}}

    def observation_params(self) -> dict[str, Any]:
        """The parameters the observation depends on (what a policy bundle must match).

        With `mean_action` the observation also depends on the action mode (the mean action
        lives in its action space); without it, `mean_action` is left out so that bundles
        written before the field existed keep their hash."""
        params = {k: v for k, v in self.to_dict().items() if k not in self.SIM_ONLY}
        if self.mean_action:
            params["action_mode"] = self.action_mode
        else:
            del params["mean_action"]
        return params


@dataclass(frozen=True)
class CoverageConfig(SwarmConfig):
    """Sweep a W x H grid of cells with a downward footprint of F x F cells per drone."""

    width: int = 20
    height: int = 20
    cell_size: float = 0.25
    footprint: int = 3
    patch_size: int = 9
    summary_size: int = 5
    # Static obstacles (sim.obstacles): `obstacles` vertical cylinders and/or boxes per
    # episode, drawn at every reset; sizes (radius or half side, m) in the range below.
    obstacles: int = 0
    obstacle_shape: str = "mixed"
    obstacle_size_min: float = 0.15
    obstacle_size_max: float = 0.25
    obstacle_penalty: float = 0.05
    # Horizontal range readings (sim.obstacles.range_readings): `range_rays` rays evenly spaced
    # in the world frame (ray 0 along +x, counter-clockwise), distances clipped to range_max.
    range_rays: int = 0
    range_max: float = 1.5
    # Heterogeneous swarms: per-drone profiles by drone index, each of length num_drones, or
    # empty (every drone alike: `footprint` and the shared limits). speed_factors scale a drone's
    # velocity limits (vxy, vz); footprints are its odd footprint widths in cells. With profiles,
    # own_profile adds the drone's own (speed factor, footprint / widest footprint) to its
    # observation.
    speed_factors: tuple[float, ...] = ()
    footprints: tuple[int, ...] = ()
    own_profile: bool = True

    scenario = "coverage"
    # A coverage observation has the same layout and meaning for any swarm size (K nearest
    # neighbours), so a policy trained with 4 drones may fly 16. The obstacles vary per
    # episode; the observation sees them only through the range readings.
    SIM_ONLY = SwarmConfig.SIM_ONLY + ("num_drones", "obstacles", "obstacle_shape",
                                       "obstacle_size_min", "obstacle_size_max",
                                       "obstacle_penalty")
    SPEED_FACTOR_RANGE = (0.25, 2.0)

    def __post_init__(self) -> None:
        # YAML and JSON give lists; the frozen config holds tuples (hashable, compared by value).
        for name in ("speed_factors", "footprints"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        super().__post_init__()

    @property
    def field_size(self) -> tuple[float, float]:
        return (self.width * self.cell_size, self.height * self.cell_size)

    @property
    def drone_radius(self) -> float:
        """The drone's collision radius for obstacles: half the near-collision distance (two
        drones nearer than collision_distance touch when each is this wide)."""
        return 0.5 * self.collision_distance

    @property
    def obstacle_clearance(self) -> float:
        """Free space kept around every obstacle at the draw, metres: from each drone's start,
        from the field's edge and between obstacles (2 drone radii: a drone passes)."""
        return self.collision_distance

    @property
    def heterogeneous(self) -> bool:
        """Whether the drones have their own profiles (speed_factors or footprints)."""
        return bool(self.speed_factors or self.footprints)

    def drone_speed_factors(self) -> tuple[float, ...]:
        """Every drone's factor on the velocity limits, by drone index (1 without profiles)."""
        return tuple(float(v) for v in self.speed_factors) or (1.0,) * self.num_drones

    def drone_footprints(self) -> tuple[int, ...]:
        """Every drone's footprint width in cells, by drone index (`footprint` without profiles)."""
        return tuple(self.footprints) or (self.footprint,) * self.num_drones

    @property
    def widest_footprint(self) -> int:
        return max(self.drone_footprints())

    def observation_params(self) -> dict[str, Any]:
        """As the base, with the range readings and the profiles only where set: bundles written
        before obstacles or profiles existed keep their hash (and a homogeneous swarm's bundle
        flies any drone count)."""
        params = super().observation_params()
        if not self.range_rays:
            del params["range_rays"], params["range_max"]
        if not self.heterogeneous:
            for name in ("speed_factors", "footprints", "own_profile"):
                del params[name]
        else:
            params["speed_factors"] = list(self.drone_speed_factors())
            params["footprints"] = list(self.drone_footprints())
        return params

    def _validate(self) -> None:
        super()._validate()
        for name in ("width", "height"):
            value = getattr(self, name)
            _require(isinstance(value, int) and value >= 2,
                     f"{name} must be an integer number of cells >= 2 (got {value!r}).")
        _require(isinstance(self.cell_size, int | float) and self.cell_size > 0,
                 f"cell_size must be a number of metres > 0 (got {self.cell_size!r}).")
        _require(isinstance(self.footprint, int) and self.footprint >= 1 and self.footprint % 2 == 1,
                 f"footprint must be an odd integer >= 1 cells (got {self.footprint!r}).")
        _require(self.footprint <= min(self.width, self.height),
                 f"footprint={self.footprint} is larger than the field "
                 f"({self.width} x {self.height} cells); use footprint <= {min(self.width, self.height)}.")
        self._validate_profiles()
        _require(isinstance(self.patch_size, int) and self.patch_size >= 1 and self.patch_size % 2 == 1,
                 f"patch_size must be an odd integer >= 1 cells (got {self.patch_size!r}).")
        _require(isinstance(self.summary_size, int) and self.summary_size >= 1
                 and self.width % self.summary_size == 0 and self.height % self.summary_size == 0,
                 f"summary_size must be an integer >= 1 that divides width={self.width} and "
                 f"height={self.height} (got {self.summary_size!r}).")
        self._validate_capacity()
        self._validate_obstacles()

    def _validate_obstacles(self) -> None:
        _require(isinstance(self.obstacles, int) and not isinstance(self.obstacles, bool)
                 and self.obstacles >= 0,
                 f"obstacles must be an integer count >= 0 (got {self.obstacles!r}).")
        _require(self.obstacle_shape in OBSTACLE_SHAPES,
                 f"obstacle_shape must be one of {', '.join(OBSTACLE_SHAPES)} "
                 f"(got {self.obstacle_shape!r}).")
        for name in ("obstacle_size_min", "obstacle_size_max", "range_max"):
            value = getattr(self, name)
            _require(isinstance(value, int | float) and math.isfinite(value) and value > 0,
                     f"{name} must be a finite number of metres > 0 (got {value!r}).")
        _require(self.obstacle_size_min <= self.obstacle_size_max,
                 f"obstacle_size_min={self.obstacle_size_min} is larger than obstacle_size_max="
                 f"{self.obstacle_size_max}; swap them.")
        _require(isinstance(self.obstacle_penalty, int | float)
                 and math.isfinite(self.obstacle_penalty) and self.obstacle_penalty >= 0,
                 f"obstacle_penalty must be a finite number >= 0 (got {self.obstacle_penalty!r}).")
        _require(isinstance(self.range_rays, int) and not isinstance(self.range_rays, bool)
                 and self.range_rays >= 0,
                 f"range_rays must be an integer count of rays >= 0 (got {self.range_rays!r}).")
        # Every cell stays coverable from a spot clear of the obstacles: a footprint reaches a
        # square of half side `reach` around a cell's centre, and an obstacle centred on the
        # cell must leave that square's corners free for a drone (sim.obstacles, tested).
        widest = self.widest_footprint  # the team covers a cell if any of its drones can
        reach = (widest // 2 + 0.5) * self.cell_size
        largest = reach - self.drone_radius / math.sqrt(2.0)
        _require(self.obstacles == 0 or self.obstacle_size_max < largest,
                 f"obstacle_size_max={self.obstacle_size_max} m would hide whole cells from every "
                 f"footprint ({widest} cells of {self.cell_size} m, drone radius "
                 f"{self.drone_radius} m); use obstacle_size_max < {largest:.3f}.")
        fx, fy = self.field_size
        side = 2 * self.obstacle_size_max + 2 * self.obstacle_clearance
        _require(self.obstacles * side * side <= 0.4 * fx * fy,
                 f"{self.obstacles} obstacles of up to {2 * self.obstacle_size_max:g} m (with "
                 f"{self.obstacle_clearance:g} m clearance) crowd the {fx:g} m x {fy:g} m field; "
                 f"use fewer or smaller obstacles (at most "
                 f"{int(0.4 * fx * fy / (side * side))}).")

    def _validate_profiles(self) -> None:
        n = self.num_drones
        lo, hi = self.SPEED_FACTOR_RANGE
        _require(isinstance(self.own_profile, bool),
                 f"own_profile must be true or false (got {self.own_profile!r}).")
        for name, what in (("speed_factors", f"factors in [{lo:g}, {hi:g}]"),
                           ("footprints", "odd footprint widths in cells")):
            value = getattr(self, name)
            _require(isinstance(value, tuple),
                     f"{name} must be a list of {what}, one per drone (got {value!r}).")
            _require(len(value) in (0, n),
                     f"{name} has {len(value)} entries but num_drones={n}; give one per drone "
                     f"(drone index order) or none for a swarm of alike drones.")
        for i, v in enumerate(self.speed_factors):
            _require(isinstance(v, int | float) and not isinstance(v, bool) and lo <= v <= hi,
                     f"speed_factors[{i}] must be a factor in [{lo:g}, {hi:g}] on the drone's "
                     f"velocity limits (got {v!r}).")
        side = min(self.width, self.height)
        for i, v in enumerate(self.footprints):
            _require(isinstance(v, int) and not isinstance(v, bool) and v >= 1 and v % 2 == 1,
                     f"footprints[{i}] must be an odd integer >= 1 cells (got {v!r}).")
            _require(v <= side,
                     f"footprints[{i}]={v} is larger than the field ({self.width} x "
                     f"{self.height} cells); use footprints <= {side}.")


@dataclass(frozen=True)
class SpreadConfig(SwarmConfig):
    """Cooperative navigation: N drones, N landmarks, cover every landmark."""

    arena_size: float = 4.0
    landmark_altitude: float = 1.0
    max_steps: int = 50

    scenario = "spread"

    @property
    def field_size(self) -> tuple[float, float]:
        return (self.arena_size, self.arena_size)

    @property
    def num_landmarks(self) -> int:
        return self.num_drones

    def _validate(self) -> None:
        super()._validate()
        _require(isinstance(self.arena_size, int | float) and self.arena_size > 0,
                 f"arena_size must be a number of metres > 0 (got {self.arena_size!r}).")
        _require(self.altitude_min <= self.landmark_altitude <= self.altitude_max,
                 f"landmark_altitude must lie in [altitude_min, altitude_max] = "
                 f"[{self.altitude_min}, {self.altitude_max}] (got {self.landmark_altitude!r}).")
        self._validate_capacity()


@dataclass(frozen=True)
class PursuitConfig(SwarmConfig):
    """Pursuit-evasion: `num_pursuers` drones chase `num_evaders` drones over a square arena.

    Teams: drones 0..P-1 are the pursuers, P..P+E-1 the evaders (P = num_pursuers, E =
    num_evaders; the agent names stay drone_i, and num_drones must equal P + E). An evader is
    captured when a pursuer comes within `capture_radius` of it horizontally (altitude does
    not hide it), or when it leaves the geofence (the arena is the game: fleeing out of it
    loses). The evaders' velocity limits are `evader_speed` times the pursuers' (vxy, vz):
    below 1 the pursuers are faster, above 1 the evaders.

    Rewards are zero-sum between the teams. Every pursuer is paid the pursuers' team reward
    and every evader its negative: +1 per evader captured this step, minus `time_penalty` per
    step (the pursuers' hurry, the evaders' bonus for surviving), minus collision_penalty
    per near-collision pair of pursuers plus the same per pair of evaders still in play,
    minus geofence_penalty per pursuer outside the geofence. A pursuer's safety violation is
    paid to the evaders and the other way round, so the two team rewards always sum to 0;
    near-collisions of a pursuer with an evader are not penalised (closing in is the
    pursuers' task, and with capture_radius >= collision_distance, the default, every one is
    a capture). With one evader its capture ends the episode (terminated); with several, a
    captured evader hovers where it was caught, out of play (its commands are ignored, no
    drone hears it, it cannot be captured again and is paid its team's reward as before),
    and the episode ends when every evader is captured. Otherwise it is truncated after
    max_steps.

    Views (`view`), one game:
    - "drone" (deep methods): the ordinary drone observation (own state, the K nearest heard
      neighbours) plus the own team flag and each listed neighbour's flag (+1 pursuer,
      -1 evader, 0 padding), so one shared network can play either side; the usual
      `action_mode` (continuous or the 11 discrete actions).
    - "cells" (tabular learners): the arena divided into cells_per_side x cells_per_side
      cells; the observation is the one-hot of the joint cell index (own cell first, then
      every other drone's in index order: (cells_per_side^2)^N states, 256 for 1 v 1 on
      4 x 4). Every drone hears every other here (comm_radius does not apply: a Markov
      game's state holds every position), so neighbour_drop must be 0. Actions: Discrete(5)
      (`CELL_MOVES`: stay, +x, -x, +y, -y; needs action_mode="discrete"), a velocity setpoint
      towards the centre of the neighbouring cell (its own centre for stay; a move off the
      arena stays): (centre - position) x policy_hz, the speed that covers the distance in
      one policy step, i.e. cell_speed = cell_size x policy_hz for a drone at its cell's
      centre, clamped to the drone's velocity limit (vxy, x evader_speed for the evaders; so
      evader_speed only matters here where cell_speed exceeds the evader's limit). The
      drone must also stop within the step (velocity lag ~0.2 s, acceleration <= 5.8 m/s^2:
      about 0.8 s for 1 m), so use policy_hz=1 with the default 1 m cells: measured on the
      fast backend, 96% of random moves end in the intended cell and none leaves the arena;
      at 2 Hz 51%, with overshoots out of it; at the default 8 Hz a move is clamped to
      0.25 m a step.

    Start positions keep every two drones 2 x capture_radius apart (at least the usual start
    spacing), so no evader starts caught.

    Infos (sim.vec_env): `capture`, the fraction of evaders captured this episode (1 v 1:
    1 once caught), `capture_time`, policy steps to the episode's first capture (the steps so
    far while none: an uncaught episode reports max_steps), `pursuer_reward` and
    `evader_reward` (E,); `team_reward` is the drones' mean reward (0 in 1 v 1).
    `agent_rewards` changes nothing here: every drone is already paid its own team's reward.
    """

    num_drones: int = 2
    num_pursuers: int = 1
    num_evaders: int = 1
    arena_size: float = 4.0
    capture_radius: float = 0.5
    evader_speed: float = 1.0
    time_penalty: float = 0.0
    view: str = "drone"
    cells_per_side: int = 4
    # Every drone hears every other across the default arena (its diagonal is 5.7 m): chasing
    # needs to see the opponent; a smaller radius makes it a search game.
    comm_radius: float = 6.0

    scenario = "pursuit"
    SIM_ONLY = SwarmConfig.SIM_ONLY + ("capture_radius", "time_penalty")

    @property
    def field_size(self) -> tuple[float, float]:
        return (self.arena_size, self.arena_size)

    @property
    def start_spacing(self) -> float:
        """Twice the capture radius or the usual spacing, whichever is larger."""
        return max(super().start_spacing, 2.0 * self.capture_radius)

    @property
    def teams(self) -> dict[str, list[int]]:
        """Pursuers 0..P-1, evaders P..N-1."""
        p, n = self.num_pursuers, self.num_drones
        return {"pursuers": list(range(p)), "evaders": list(range(p, n))}

    @property
    def cell_size(self) -> float:
        """Side of one cell of the cells view, metres."""
        return self.arena_size / self.cells_per_side

    @property
    def cell_speed(self) -> float:
        """Speed of a cells-view move from a cell's centre, before the velocity limit (m/s)."""
        return self.cell_size * self.policy_hz

    @property
    def num_cells(self) -> int:
        return self.cells_per_side * self.cells_per_side

    @property
    def num_joint_cells(self) -> int:
        """States of the cells view: every drone's cell, (cells_per_side^2)^N."""
        return self.num_cells ** self.num_drones

    def is_evader(self, drone: int) -> bool:
        return drone >= self.num_pursuers

    def _validate(self) -> None:
        super()._validate()
        for name in ("num_pursuers", "num_evaders"):
            value = getattr(self, name)
            _require(isinstance(value, int) and value >= 1,
                     f"{name} must be an integer >= 1 (got {value!r}).")
        _require(not self.command_change_penalty,
                 "command_change_penalty must be 0 for pursuit: its two teams' rewards are "
                 "zero-sum and a penalty on either side would break that (got "
                 f"{self.command_change_penalty!r}).")
        total = self.num_pursuers + self.num_evaders
        _require(self.num_drones == total,
                 f"num_drones must equal num_pursuers + num_evaders = {total} (got "
                 f"{self.num_drones!r}); set num_drones={total}.")
        _require(isinstance(self.arena_size, int | float) and math.isfinite(self.arena_size)
                 and self.arena_size > 0,
                 f"arena_size must be a number of metres > 0 (got {self.arena_size!r}).")
        _require(isinstance(self.capture_radius, int | float) and math.isfinite(self.capture_radius)
                 and self.capture_radius > 0,
                 f"capture_radius must be a number of metres > 0 (got {self.capture_radius!r}).")
        _require(isinstance(self.evader_speed, int | float) and 0 < self.evader_speed <= 2,
                 f"evader_speed must be a factor in (0, 2] on the evaders' velocity limits "
                 f"(got {self.evader_speed!r}).")
        _require(isinstance(self.time_penalty, int | float) and math.isfinite(self.time_penalty)
                 and self.time_penalty >= 0,
                 f"time_penalty must be a finite number >= 0 (got {self.time_penalty!r}).")
        _require(self.view in PURSUIT_VIEWS,
                 f"view must be one of {', '.join(PURSUIT_VIEWS)} (got {self.view!r}).")
        _require(isinstance(self.cells_per_side, int) and self.cells_per_side >= 2,
                 f"cells_per_side must be an integer >= 2 (got {self.cells_per_side!r}).")
        if self.view == "cells":
            _require(self.action_mode == "discrete",
                     f"view='cells' acts with the {len(CELL_MOVES)} cell moves; set "
                     f"action_mode='discrete' (got {self.action_mode!r}).")
            _require(not self.mean_action,
                     "view='cells' is a one-hot state; set mean_action=false.")
            _require(self.neighbour_drop == 0,
                     f"view='cells' needs every drone's position each tick; set neighbour_drop=0 "
                     f"(got {self.neighbour_drop!r}).")
            _require(self.num_joint_cells <= MAX_JOINT_CELLS,
                     f"view='cells' has (cells_per_side^2)^num_drones = {self.num_joint_cells} "
                     f"states, more than {MAX_JOINT_CELLS}; use fewer cells or drones.")
        capacity = self.start_capacity()
        _require(self.num_drones <= capacity or 2.0 * self.capture_radius <= super().start_spacing,
                 f"capture_radius={self.capture_radius} keeps drones {2 * self.capture_radius:g} m "
                 f"apart at the start, and the arena holds at most {capacity} such drones; use a "
                 f"smaller capture_radius or a larger arena_size.")
        self._validate_capacity()


FORMATION_SHAPES = ("line", "wedge", "ring", "grid")
FORMATION_REFERENCES = ("moving", "centroid")
FORMATION_MARGIN = 0.25
"""Metres between the fence and the formation's outermost slot where the reference turns."""


def formation_offsets(shape: str, num_drones: int, spacing: float) -> list[tuple[float, float]]:
    """The formation's slots relative to its reference, (x, y) metres, centred on it (their
    mean is the reference): neighbouring slots `spacing` apart. line: abreast along y;
    wedge: a V opening towards -x (apex forward, 45-degree arms); ring: a regular polygon;
    grid: ceil(sqrt(N)) columns, filled row by row. Pure Python: the config validates with it
    and sim.formation turns it into an array."""
    n, s = num_drones, spacing
    if shape == "line":
        points = [(0.0, (k - (n - 1) / 2) * s) for k in range(n)]
    elif shape == "wedge":
        arm = s * math.sqrt(0.5)
        points = [(-((k + 1) // 2) * arm, (1 if k % 2 else -1) * ((k + 1) // 2) * arm)
                  for k in range(n)]
    elif shape == "ring":
        radius = s / (2 * math.sin(math.pi / n)) if n > 1 else 0.0
        points = [(radius * math.cos(2 * math.pi * k / n), radius * math.sin(2 * math.pi * k / n))
                  for k in range(n)]
    elif shape == "grid":
        cols = math.ceil(math.sqrt(n))
        points = [(-(k // cols) * s, (k % cols) * s) for k in range(n)]
    else:
        raise ConfigError(f"shape must be one of {', '.join(FORMATION_SHAPES)} (got {shape!r}).")
    cx = sum(p[0] for p in points) / n
    cy = sum(p[1] for p in points) / n
    return [(x - cx, y - cy) for x, y in points]


@dataclass(frozen=True)
class FormationConfig(SwarmConfig):
    """Hold a shape around a reference: the N drones take the N slots of `shape` (neighbouring
    slots `spacing` apart, held in the world frame) around the reference, any drone in any
    slot (the reward matches drones to slots optimally).

    reference="moving": the reference starts over the drones' start centroid (kept where the
    whole formation fits) and flies a straight leg at `reference_speed` with a random heading,
    bouncing off the box that keeps every slot FORMATION_MARGIN inside the arena; the drones
    observe it as the mission target (position, velocity). reference="centroid": the
    reference is the swarm's own centroid (each drone computes it from itself and the
    neighbours it hears), so only the shape counts.

    Reward per step: minus the shape error (the mean drone-to-slot distance under the optimal
    assignment, metres) times `shape_weight`, minus the usual collision and geofence
    penalties; with `agent_rewards`, each drone's own distance to its assigned slot instead.
    Metric: `shape_error`, its mean over the episode's steps.
    """

    shape: str = "wedge"
    spacing: float = 0.8
    reference: str = "moving"
    reference_speed: float = 0.3
    arena_size: float = 6.0
    shape_weight: float = 1.0
    # Every drone hears every other across the default arena (diagonal 8.5 m): a drone
    # chooses its slot from where the others are.
    comm_radius: float = 9.0

    scenario = "formation"
    SIM_ONLY = SwarmConfig.SIM_ONLY + ("shape_weight",)

    @property
    def field_size(self) -> tuple[float, float]:
        return (self.arena_size, self.arena_size)

    def slot_offsets(self) -> list[tuple[float, float]]:
        return formation_offsets(self.shape, self.num_drones, self.spacing)

    @property
    def formation_radius(self) -> float:
        """Horizontal distance from the reference to the outermost slot, metres."""
        return max(math.hypot(x, y) for x, y in self.slot_offsets())

    @property
    def reference_box(self) -> tuple[float, float]:
        """The range of the moving reference's x and y: every slot stays FORMATION_MARGIN
        inside the arena."""
        edge = self.formation_radius + FORMATION_MARGIN
        return (edge, self.arena_size - edge)

    def _validate(self) -> None:
        super()._validate()
        _require(self.shape in FORMATION_SHAPES,
                 f"shape must be one of {', '.join(FORMATION_SHAPES)} (got {self.shape!r}).")
        _require(self.reference in FORMATION_REFERENCES,
                 f"reference must be one of {', '.join(FORMATION_REFERENCES)} "
                 f"(got {self.reference!r}).")
        _require(isinstance(self.spacing, int | float) and math.isfinite(self.spacing)
                 and self.spacing > self.collision_distance,
                 f"spacing must be a number of metres larger than collision_distance="
                 f"{self.collision_distance} (got {self.spacing!r}).")
        _require(isinstance(self.reference_speed, int | float) and 0 <= self.reference_speed < self.vxy,
                 f"reference_speed must be a number of m/s in [0, vxy={self.vxy}) so the drones "
                 f"can keep up (got {self.reference_speed!r}).")
        _require(isinstance(self.shape_weight, int | float) and math.isfinite(self.shape_weight)
                 and self.shape_weight >= 0,
                 f"shape_weight must be a finite number >= 0 (got {self.shape_weight!r}).")
        _require(isinstance(self.arena_size, int | float) and math.isfinite(self.arena_size)
                 and self.arena_size > 0,
                 f"arena_size must be a number of metres > 0 (got {self.arena_size!r}).")
        low, high = self.reference_box
        _require(low < high,
                 f"the {self.shape} of {self.num_drones} drones at spacing {self.spacing} m "
                 f"({2 * low:.2f} m across with its margins) does not fit in arena_size="
                 f"{self.arena_size}; use a larger arena_size or a smaller spacing.")
        self._validate_capacity()


@dataclass(frozen=True)
class FlockConfig(SwarmConfig):
    """Move the swarm to a goal region as a group (the rules: sim.flock). The drones start as
    a compact cluster (grid at start spacing, `cluster_margin` inside the fence) in a square
    arena; the goal region is a disc of `goal_radius` around a centre at least
    `goal_distance` from the start centroid. Reward: the centroid's progress to the goal
    times `goal_weight`, `goal_bonus` when every drone is inside (which ends the episode),
    minus `time_penalty` per step, minus the Reynolds costs (cohesion, alignment, separation
    below `separation_distance`) times their weights, minus the usual collision and geofence
    penalties. The reward is the group's: there is no per-drone split (`agent_rewards`).
    """

    arena_size: float = 6.0
    goal_radius: float = 0.6
    goal_distance: float = 3.0
    separation_distance: float = 0.5
    cluster_margin: float = 0.5
    max_steps: int = 80
    goal_weight: float = 1.0
    goal_bonus: float = 2.0
    time_penalty: float = 0.05
    cohesion_weight: float = 0.05
    alignment_weight: float = 0.02
    separation_weight: float = 0.2

    scenario = "flock"
    SIM_ONLY = SwarmConfig.SIM_ONLY + ("goal_weight", "goal_bonus", "time_penalty",
                                       "cohesion_weight", "alignment_weight", "separation_weight")

    @property
    def field_size(self) -> tuple[float, float]:
        return (self.arena_size, self.arena_size)

    @property
    def cluster_radius(self) -> float:
        """Half the side of the start cluster's grid, metres."""
        cols = math.ceil(math.sqrt(self.num_drones))
        rows = math.ceil(self.num_drones / cols)
        return 0.5 * (max(cols, rows) - 1) * self.start_spacing

    @property
    def cluster_box(self) -> tuple[float, float]:
        """The range of the start cluster centre's x and y."""
        edge = self.cluster_radius + self.cluster_margin
        return (edge, self.arena_size - edge)

    @property
    def goal_box(self) -> tuple[float, float]:
        """The range of the goal centre's x and y: the goal region inside the fence."""
        return (self.goal_radius, self.arena_size - self.goal_radius)

    def _validate(self) -> None:
        super()._validate()
        for name in ("arena_size", "goal_radius", "separation_distance"):
            value = getattr(self, name)
            _require(isinstance(value, int | float) and math.isfinite(value) and value > 0,
                     f"{name} must be a finite number of metres > 0 (got {value!r}).")
        for name in ("goal_distance", "cluster_margin", "goal_weight", "goal_bonus",
                     "time_penalty", "cohesion_weight", "alignment_weight", "separation_weight"):
            value = getattr(self, name)
            _require(isinstance(value, int | float) and math.isfinite(value) and value >= 0,
                     f"{name} must be a finite number >= 0 (got {value!r}).")
        low, high = self.cluster_box
        _require(low <= high,
                 f"the start cluster of {self.num_drones} drones ({2 * self.cluster_radius:.2f} m "
                 f"across) with cluster_margin={self.cluster_margin} does not fit in "
                 f"arena_size={self.arena_size}; use a larger arena_size or fewer drones.")
        low, high = self.goal_box
        _require(low <= high,
                 f"goal_radius={self.goal_radius} does not fit in arena_size={self.arena_size}; "
                 f"use goal_radius <= {self.arena_size / 2}.")
        _require(not self.agent_rewards,
                 "agent_rewards=true needs each drone's own share of the task reward, and "
                 "flock's reward is the group's (the centroid's progress, the Reynolds terms); "
                 "train flock on the team reward (env.agent_rewards=false).")
        reach = math.hypot(self.arena_size, self.arena_size)
        _require(self.goal_distance < reach,
                 f"goal_distance must be shorter than the arena's diagonal ({reach:.2f} m) "
                 f"(got {self.goal_distance!r}).")
        self._validate_capacity()

SCENARIOS: dict[str, type[SwarmConfig]] = {"coverage": CoverageConfig, "spread": SpreadConfig,
                                           "pursuit": PursuitConfig,
                                           "formation": FormationConfig,
                                           "flock": FlockConfig}


def make_config(name: str, **params: Any) -> SwarmConfig:
    """Build a validated config; unknown scenarios or parameters get one clear sentence."""
    if name not in SCENARIOS:
        raise ConfigError(f"unknown scenario {name!r}; choose one of: {', '.join(sorted(SCENARIOS))}.")
    cls = SCENARIOS[name]
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - valid)
    if unknown:
        raise ConfigError(f"unknown parameter {unknown[0]!r} for scenario {name!r}; "
                          f"valid parameters: {', '.join(sorted(valid))}.")
    return cls(**params)


def scaled_field(name: str, num_drones: int) -> dict[str, Any]:
    """Field parameters that give `num_drones` about the drone density of the scenario's
    default (coverage: 4 drones on 20 x 20 cells of 0.25 m, 100 cells a drone; spread: 4 drones
    in a 4 m arena, 4 m^2 a drone), the cell size and everything else unchanged: the side grows
    with sqrt(N / 4), coverage rounded up to whole summary blocks, spread to 0.1 m. What the
    large-swarm benchmarks and tests use; pass it on as `make_config(name, num_drones=N,
    **scaled_field(name, N))`."""
    _require(isinstance(num_drones, int) and num_drones >= 1,
             f"num_drones must be an integer >= 1 (got {num_drones!r}).")
    scale = math.sqrt(num_drones / 4)
    if name == "coverage":
        block = CoverageConfig.summary_size
        side = block * math.ceil(round(CoverageConfig.width * scale / block, 6))
        return {"width": side, "height": side}
    if name == "spread":
        return {"arena_size": round(SpreadConfig.arena_size * scale, 1)}
    if name in SCENARIOS:
        raise ConfigError(f"scaled_field has no density rule for {name!r}; it scales coverage and "
                          f"spread (set the {name} field yourself).")
    raise ConfigError(f"unknown scenario {name!r}; choose one of: {', '.join(sorted(SCENARIOS))}.")


def config_from_dict(data: dict[str, Any]) -> SwarmConfig:
    """Inverse of `SwarmConfig.to_dict` (used when loading policy bundles)."""
    data = dict(data)
    name = data.pop("scenario", None)
    if name is None:
        raise ConfigError("configuration has no 'scenario' entry; add scenario: "
                          f"{'|'.join(SCENARIOS)}.")
    return make_config(name, **data)


__all__ = [
    "ACTION_MODES", "CELL_MOVES", "CONTROL_HZ", "ConfigError", "CoverageConfig", "DISCRETE_ACTIONS",
    "FORMATION_MARGIN", "FORMATION_REFERENCES", "FORMATION_SHAPES", "FormationConfig",
    "FlockConfig",
    "formation_offsets",
    "MAX_JOINT_CELLS", "OBSTACLE_SHAPES", "PURSUIT_VIEWS", "PursuitConfig", "SCENARIOS", "SpreadConfig",
    "SwarmConfig", "VALID_POLICY_HZ", "config_from_dict", "make_config", "scaled_field",
]
