"""agent_node: one drone's decentralised policy.

Subscribes its own odometry (`odom`) and the swarm state (`/swarm/state`), keeps its
belief map exactly as the simulator models it, builds the observation with
`sim.obs.observe_tick` (the function training used), runs the ONNX bundle at the
bundle's rate and publishes a velocity setpoint on `cmd_vel`.

Safety: stale, missing, malformed or implausible own odometry -> hover command and a
throttled warning; neighbours are only what a robot could hear (comm radius, fresh
stamps); commands are clamped to the velocity limits and pushed back inside the
geofence. A bad message never stops the node; a missing or mismatched bundle stops
it at start with one sentence.

Pursuit: the drone's team is its index (`sim.obs.team_flags`). The "drone" view adds its own
and the heard drones' team flags, and an evader's setpoints are scaled by evader_speed as in
the simulator; the "cells" view needs every other drone's position each tick (hover while
one is missing or stale) and turns the policy's cell move into a setpoint from the own
position (`sim.obs.cell_action_setpoint`). An evader's velocity limits are evader_speed times
the pursuers'. With several evaders, those monitor_node reports captured (`/swarm/captured`)
are out of play as in the simulator: a captured evader hovers, and the drone view no longer
hears it (the cells view keeps its cell in the state).

Heterogeneous coverage (per-drone `speed_factors`, `footprints` in the bundle): the drone flies
its own speed factor times the limits, as the simulator, and marks each heard neighbour's
footprint in its belief by the id in that neighbour's swarm-state row (a row of an unknown id
is not heard); the observation ends with its own profile where the bundle has `own_profile`.

Missions (formation around a moving reference, flock: `sim.missions`): the observation holds
the mission target, which monitor_node publishes each tick on `/mission/target`
(nav_msgs/Odometry: the target's position and velocity in the world frame). The node uses the
newest one received, moved on at its velocity for the time since it arrived
(`sim.missions.target_after`: the node ticks on its own timer, up to a period after the
monitor); none within stale_timeout -> hover and a throttled warning. Before the
first target it publishes no command at all: its cmd_vel publisher, the simulator's sign that
an agent is ready, appears only with the mission, so sim_node starts the episode when every
drone knows it (a real drone without commands holds, as sim_node's cmd_timeout does).

Range readings (coverage with obstacles, bundles with `range_rays`): the node subscribes its
`scan` (sensor_msgs/LaserScan in the drone's body frame, from sim_node or a real 2-D lidar or
range-sensor ring) and resamples the newest scan to the bundle's world-frame rays with
`sim.obstacles.laserscan_readings` and its own heading from odometry: the readings the
simulator's ray cast gives. No scan yet, or one older than stale_timeout -> hover and a
throttled warning; as with a mission target, the cmd_vel publisher appears only once the
first scan has arrived.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Float64MultiArray, Int32MultiArray

from marl_ros.nodes.messages import (
    COMMAND_QOS,
    SENSOR_QOS,
    make_twist,
    odometry_to_state,
    odometry_yaw,
    stamp_to_seconds,
    unpack_swarm_state,
)
from marl_ros.nodes.process import run_node_process
from marl_ros.runtime import BundleError, OnnxPolicy, default_bundle, load_swarm_config
from sim import obs as O
from sim.config import CELL_MOVES, CoverageConfig, PursuitConfig
from sim.missions import target_after, uses_target
from sim.obstacles import laserscan_readings

HOVER = np.zeros(4)
MAX_PLAUSIBLE_POSITION = 1000.0  # m: beyond this an odometry message is a fault, not a state
MAX_PLAUSIBLE_SPEED = 20.0  # m/s: a Crazyflie-class drone cannot fly this fast
# Pursuit's captured evaders (monitor_node, std_msgs/Int32MultiArray of drone ids): an event,
# not a stream; delivered reliably, and kept for a node that joins later.
CAPTURED_TOPIC = "/swarm/captured"
CAPTURED_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                          reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL)
# A mission's target (monitor_node, nav_msgs/Odometry in the world frame): a stream, newest wins.
MISSION_TARGET_TOPIC = "/mission/target"


def _describe(text: str, lo: float | None = None, hi: float | None = None,
              integer: bool = False) -> ParameterDescriptor:
    d = ParameterDescriptor(description=text)
    if lo is not None:
        if integer:
            d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
        else:
            d.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi),
                                                         step=0.0)]
    return d


class TickStats:
    """Benchmark instrumentation (parameter stats_dir, off by default): per control tick, how
    late it started against the timer's schedule, ticks the timer skipped, the age of the own
    odometry (from its stamp) when the command left, and the compute time."""

    def __init__(self, path: Path, period_s: float):
        self.path = path
        self.period_ns = int(round(period_s * 1e9))
        self.expected_ns: int | None = None  # when the tick now running was due
        self.rows: list[list[float | None]] = []  # start s, lateness s, skipped, latency s, compute s

    def record(self, node: AgentNode, start_ns: int, odom_stamp: float | None) -> None:
        end_ns = node.get_clock().now().nanoseconds
        late = None if self.expected_ns is None else (start_ns - self.expected_ns) * 1e-9
        skipped = 0
        until_next = node.timer.time_until_next_call()
        if until_next is not None:
            next_ns = end_ns + until_next
            if self.expected_ns is not None:
                skipped = max(0, round((next_ns - self.expected_ns) / self.period_ns) - 1)
            self.expected_ns = next_ns
        latency = None if odom_stamp is None else end_ns * 1e-9 - odom_stamp
        self.rows.append([start_ns * 1e-9, late, skipped, latency, (end_ns - start_ns) * 1e-9])

    def write(self, drone_id: int) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / f"agent_{drone_id}.json").write_text(json.dumps({
            "drone_id": drone_id, "period_s": self.period_ns * 1e-9,
            "columns": ["start_s", "lateness_s", "skipped_after", "odom_age_s", "compute_s"],
            "ticks": self.rows}))


class AgentNode(Node):
    def __init__(self, node_name: str = "agent", *, hosted: bool = False, **kwargs) -> None:
        """hosted=True: a host process (swarm_agents) delivers the swarm state, parsed once for
        all its agents, and calls control_tick from one timer for all of them."""
        super().__init__(node_name, **kwargs)
        p = self.declare_parameter
        p("drone_id", 0, _describe("index i of this drone (/drone_i); selects its row in the "
                                   "swarm state", 0, 1023, integer=True))
        p("num_drones", 4, _describe("drones in the swarm", 1, 1024, integer=True))
        p("bundle", default_bundle(), _describe("policy bundle folder (policy.yaml + ONNX)"))
        p("rate", 0.0, _describe("control rate in Hz; 0 = the bundle's policy rate", 0.0, 100.0))
        p("comm_radius", 0.0, _describe("communication radius in m; 0 = the bundle's. Must "
                                        "equal the radius the policy was trained with", 0.0, 1e3))
        p("odom_topic", "odom", _describe("own odometry (nav_msgs/Odometry, ENU)"))
        p("cmd_topic", "cmd_vel", _describe("velocity setpoint out (geometry_msgs/Twist, ENU)"))
        p("swarm_topic", "/swarm/state", _describe("all drones' states (std_msgs/"
                                                   "Float64MultiArray, see messages.py)"))
        p("scan_topic", "scan", _describe("range scan in (sensor_msgs/LaserScan, body frame), "
                                          "for bundles with range readings"))
        p("max_vxy", 0.0, _describe("horizontal speed limit per axis, m/s; 0 = bundle", 0.0, 10.0))
        p("max_vz", 0.0, _describe("vertical speed limit, m/s; 0 = bundle", 0.0, 5.0))
        p("max_yaw_rate", 0.0, _describe("yaw-rate limit, rad/s; 0 = bundle", 0.0, 10.0))
        p("geofence_margin", 0.5, _describe("m beyond the field/altitude band before the node "
                                            "overrides the policy and flies back", 0.0, 100.0))
        p("stale_timeout", 0.5, _describe("s after which own odometry or a neighbour's state is "
                                          "too old to use", 0.01, 60.0))
        p("neighbour_drop", 0.0, _describe("fault injection: probability of losing each "
                                           "neighbour's state per tick", 0.0, 1.0))
        p("seed", 0, _describe("seed of the node's random streams (fault injection; sampling a "
                               "mixed-strategy policy)", 0, 2**31 - 1, integer=True))
        p("stats_dir", "", _describe("benchmarks: write per-tick timing to <dir>/agent_<id>.json "
                                     "at shutdown; empty = off"))
        g = self.get_parameter
        self.drone_id = g("drone_id").value
        bundle = g("bundle").value
        # Raises BundleError (one sentence) when the bundle is missing or does not match.
        self.cfg = load_swarm_config(bundle, g("num_drones").value, g("comm_radius").value)
        self.policy = OnnxPolicy.load(bundle, config=self.cfg)
        self.agent_key = self._agent_key()
        self.rate = g("rate").value or float(self.policy.policy_rate_hz)
        # Pursuit: this drone's team flag, everyone's (by drone id), its factor on the limits.
        self.pursuit = isinstance(self.cfg, PursuitConfig)
        if self.pursuit and self.drone_id >= self.cfg.num_drones:
            raise BundleError(f"drone_id {self.drone_id} is not a drone of this "
                              f"{self.cfg.num_drones}-drone pursuit game (its team is its "
                              f"index); use 0..{self.cfg.num_drones - 1}.")
        # Heterogeneous coverage: every drone's profile by its index (speed factor, footprint).
        self.profiles = isinstance(self.cfg, CoverageConfig) and self.cfg.heterogeneous
        if self.profiles and self.drone_id >= self.cfg.num_drones:
            raise BundleError(f"drone_id {self.drone_id} is not a drone of this "
                              f"{self.cfg.num_drones}-drone heterogeneous swarm (its profile is "
                              f"its index); use 0..{self.cfg.num_drones - 1}.")
        self.cells = O.is_cells_view(self.cfg)
        self.teams = O.team_flags(self.cfg) if self.pursuit else None
        self.speed = (float(O.speed_scales(self.cfg)[self.drone_id])
                      if self.pursuit or self.profiles else 1.0)
        self.limits = np.array([g("max_vxy").value or self.cfg.vxy, g("max_vxy").value or self.cfg.vxy,
                                g("max_vz").value or self.cfg.vz,
                                g("max_yaw_rate").value or self.cfg.yaw_rate])
        self.limits[:3] *= self.speed  # an evader's evader_speed, a drone's own speed factor
        self.margin = g("geofence_margin").value
        fx, fy = self.cfg.field_size
        self.fence_low = np.array([0.0, 0.0, self.cfg.altitude_min]) - self.margin
        self.fence_high = np.array([fx, fy, self.cfg.altitude_max]) + self.margin
        self.fence_warned = -math.inf  # when the last geofence warning was logged
        self.stale = g("stale_timeout").value
        self.drop = g("neighbour_drop").value
        self.rng = np.random.default_rng(g("seed").value + 7919 * self.drone_id)
        self.policy.reseed(g("seed").value + 7919 * self.drone_id + 1)  # a mixed strategy's draws
        self.belief = O.new_belief(self.cfg) if isinstance(self.cfg, CoverageConfig) else None
        self.landmarks = None  # spread: the task's landmarks would come from a parameter

        self.own: tuple[np.ndarray, np.ndarray] | None = None
        self.own_time = -1.0
        self.own_stamp: float | None = None  # header stamp of the odometry in self.own
        self.own_yaw = 0.0  # heading from the odometry's orientation (turns a scan to world rays)
        self.own_problem = "no odometry received yet"
        self.swarm = np.zeros((0, 8))
        self.captured: set[int] = set()  # pursuit: the evaders out of play
        self.uses_target = uses_target(self.cfg)
        self.target: np.ndarray | None = None  # mission target (6,), when the task has one
        self.target_time = -1.0
        self.rays = getattr(self.cfg, "range_rays", 0)
        self.scan: LaserScan | None = None  # the newest range scan, when the policy reads ranges
        self.scan_time = -1.0
        self.last_setpoint = HOVER.copy()
        self.ticks = 0

        self.create_subscription(Odometry, g("odom_topic").value, self.on_odom, SENSOR_QOS)
        if not hosted:
            self.create_subscription(Float64MultiArray, g("swarm_topic").value, self.on_swarm,
                                     SENSOR_QOS)
        if self.pursuit:
            self.create_subscription(Int32MultiArray, CAPTURED_TOPIC, self.on_captured,
                                     CAPTURED_QOS)
        if self.uses_target:
            self.create_subscription(Odometry, MISSION_TARGET_TOPIC, self.on_target, SENSOR_QOS)
        if self.rays:
            self.scan_topic = g("scan_topic").value
            self.create_subscription(LaserScan, self.scan_topic, self.on_scan, SENSOR_QOS)
        # Created last: a cmd_vel publisher means "policy loaded, ready" to the simulator. An
        # agent whose observation needs a mission target or range readings is ready once the
        # first has arrived, so the simulator does not start while drones still wait for them.
        self.cmd_topic = g("cmd_topic").value
        self.cmd_pub = None
        self.publish_when_ready()
        self.timer = None if hosted else self.create_timer(1.0 / self.rate, self.control_tick)
        stats_dir = g("stats_dir").value
        self.stats = TickStats(Path(stats_dir), 1.0 / self.rate) if stats_dir else None
        prov = self.policy.provenance
        self.get_logger().info(
            f"drone {self.drone_id}: {prov.get('algorithm')} policy from {bundle} at "
            f"{self.rate:g} Hz, comm radius {self.cfg.comm_radius:g} m, K={self.cfg.num_neighbours}")

    def _agent_key(self) -> str:
        key = f"drone_{self.drone_id}"
        if key in self.policy.agents:
            return key
        models = set(self.policy.meta["models"].values())
        if len(models) == 1:  # shared parameters: any drone can fly the one model
            return self.policy.agents[0]
        raise BundleError(f"the bundle has separate policies for {', '.join(self.policy.agents)} "
                          f"but none for drone_{self.drone_id}; use a shared-parameter bundle or "
                          "a drone id it was trained for.")

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # -- inputs ---------------------------------------------------------------------------------
    def on_odom(self, msg: Odometry) -> None:
        pos, vel = odometry_to_state(msg)
        if not (np.isfinite(pos).all() and np.isfinite(vel).all()):
            self.own_problem = "own odometry contains NaN or infinite values"
            self.own = None
            return
        if np.abs(pos).max() > MAX_PLAUSIBLE_POSITION or np.linalg.norm(vel) > MAX_PLAUSIBLE_SPEED:
            self.own_problem = (f"own odometry out of range (position {np.round(pos, 2).tolist()}, "
                                f"speed {np.linalg.norm(vel):.1f} m/s)")
            self.own = None
            return
        self.own = (pos, vel)
        self.own_yaw = odometry_yaw(msg)
        self.own_time = self.now()
        self.own_stamp = stamp_to_seconds(msg.header.stamp)
        self.own_problem = ""

    def on_swarm(self, msg: Float64MultiArray) -> None:
        rows = self.parse_swarm(msg)
        if rows is not None:
            self.swarm = rows

    def on_target(self, msg: Odometry) -> None:
        pos, vel = odometry_to_state(msg)
        target = np.concatenate([pos, vel])
        if not np.isfinite(target).all():
            self.get_logger().warning("ignoring a mission target with NaN or infinite values",
                                      throttle_duration_sec=2.0)
            return
        self.target = target
        self.target_time = self.now()
        self.publish_when_ready()

    def on_scan(self, msg: LaserScan) -> None:
        if not (math.isfinite(msg.angle_min) and math.isfinite(msg.angle_increment)
                and msg.angle_increment != 0.0 and len(msg.ranges) > 0):
            self.get_logger().warning(
                f"ignoring a range scan on {self.scan_topic} without beams or with angle_min "
                f"{msg.angle_min} / angle_increment {msg.angle_increment}",
                throttle_duration_sec=2.0)
            return
        self.scan = msg
        self.scan_time = self.now()
        self.publish_when_ready()

    def publish_when_ready(self) -> None:
        """Create the cmd_vel publisher once every input the observation needs has arrived."""
        waiting = (self.uses_target and self.target is None) or (self.rays and self.scan is None)
        if self.cmd_pub is None and not waiting:
            self.cmd_pub = self.create_publisher(Twist, self.cmd_topic, COMMAND_QOS)

    def on_captured(self, msg: Int32MultiArray) -> None:
        self.captured = {int(i) for i in msg.data}

    def parse_swarm(self, msg: Float64MultiArray) -> np.ndarray | None:
        """The finite rows of a swarm-state message, or None (with a warning) if malformed."""
        try:
            rows = unpack_swarm_state(msg)
        except ValueError as err:
            self.get_logger().warning(f"ignoring malformed swarm state: {err}",
                                      throttle_duration_sec=2.0)
            return None
        return rows[np.isfinite(rows).all(axis=1)]

    def heard_neighbours(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """Other drones' fresh states as (M, 3) positions and velocities (radius filter is
        applied by the observation builder, exactly as in training)."""
        rows = self.heard_rows(now)
        return rows[:, 1:4], rows[:, 4:7]

    def heard_rows(self, now: float) -> np.ndarray:
        """The swarm-state rows (id, position, velocity, stamp) of the other drones heard
        fresh this tick."""
        rows = self.swarm
        keep = (rows[:, 0] != self.drone_id) & (now - rows[:, 7] <= self.stale)
        if self.drop > 0:
            keep &= self.rng.random(len(rows)) >= self.drop
        return rows[keep]

    # -- control --------------------------------------------------------------------------------
    def control_tick(self) -> None:
        start_ns = self.get_clock().now().nanoseconds
        odom_stamp = self.own_stamp if self.own is not None else None
        try:
            setpoint = self.compute_setpoint(start_ns * 1e-9)
        except Exception as err:  # never die on a bad input: hover and say why
            self.get_logger().error(f"control step failed ({err!r}); commanding hover",
                                    throttle_duration_sec=2.0)
            setpoint = HOVER
        self.last_setpoint = setpoint
        if self.cmd_pub is None:  # no mission target / scan yet: not ready, the drone hovers
            return
        self.cmd_pub.publish(make_twist(setpoint))
        self.ticks += 1
        if self.stats is not None:
            self.stats.record(self, start_ns, odom_stamp)

    def compute_setpoint(self, now: float) -> np.ndarray:
        if self.own is None:
            self.get_logger().warning(f"{self.own_problem}; commanding hover",
                                   throttle_duration_sec=2.0)
            return HOVER
        if now - self.own_time > self.stale:
            self.get_logger().warning(f"own odometry is stale ({now - self.own_time:.2f} s old > "
                                   f"{self.stale:g} s); commanding hover",
                                   throttle_duration_sec=2.0)
            return HOVER
        pos, vel = self.own
        if self.drone_id in self.captured:  # out of play: hover where it was caught
            return HOVER
        if self.cells:
            return self.cells_setpoint(now, pos)
        rows = self.heard_rows(now)
        task = {}
        if self.uses_target:
            if self.target is None or now - self.target_time > self.stale:
                what = ("no mission target received yet" if self.target is None else
                        f"the mission target is stale ({now - self.target_time:.2f} s old > "
                        f"{self.stale:g} s)")
                self.get_logger().warning(f"{what} on {MISSION_TARGET_TOPIC}; commanding hover",
                                          throttle_duration_sec=2.0)
                return HOVER
            task["target"] = target_after(self.target, now - self.target_time)
        if self.rays:
            if self.scan is None or now - self.scan_time > self.stale:
                what = ("no range scan received yet" if self.scan is None else
                        f"the range scan is stale ({now - self.scan_time:.2f} s old > "
                        f"{self.stale:g} s)")
                self.get_logger().warning(f"{what} on {self.scan_topic}; commanding hover",
                                          throttle_duration_sec=2.0)
                return HOVER
            s = self.scan
            task["ranges"] = laserscan_readings(np.asarray(s.ranges), s.angle_min,
                                                s.angle_increment, s.range_max, self.own_yaw,
                                                self.rays, self.cfg.range_max, s.range_min)
        if self.pursuit:  # own flag, and each heard drone's by the id in its row
            ids = rows[:, 0].astype(np.int64)
            known = (ids >= 0) & (ids < self.cfg.num_drones)  # a stranger's row carries no team
            known &= ~np.isin(ids, list(self.captured))  # nobody hears a captured evader
            rows, ids = rows[known], ids[known]
            task.update(own_team=self.teams[self.drone_id], other_teams=self.teams[ids])
        if self.profiles:  # each heard drone's footprint by the id in its row
            ids = rows[:, 0].astype(np.int64)
            known = (ids >= 0) & (ids < self.cfg.num_drones)  # a stranger's row has no profile
            rows, ids = rows[known], ids[known]
            task.update(own_id=self.drone_id, other_ids=ids)
        obs = O.observe_tick(self.cfg, pos, vel, rows[:, 1:4], rows[:, 4:7], None,
                             belief=self.belief, landmarks=self.landmarks, **task)
        setpoint = np.array(self.policy.act(obs, self.agent_key), dtype=np.float64)
        setpoint[:3] *= self.speed  # the action in the drone's own limits, as the simulator
        setpoint = np.clip(setpoint, -self.limits, self.limits)
        return self.geofence_guard(pos, setpoint)

    def cells_setpoint(self, now: float, pos: np.ndarray) -> np.ndarray:
        """Pursuit cells view: the joint cell of every drone (own first, then the others in
        index order) -> the policy's cell move -> the setpoint that reaches the target cell's
        centre in one policy step. Hover while any drone's state is missing or stale: the
        state of the game is then unknown."""
        rows = self.heard_rows(now)
        others = [j for j in range(self.cfg.num_drones) if j != self.drone_id]
        by_id = {int(r[0]): r for r in rows}
        missing = [j for j in others if j not in by_id]
        if missing:
            self.get_logger().warning(
                f"no fresh state of drone(s) {', '.join(map(str, missing))} (within "
                f"{self.stale:g} s); the cells view needs every drone's position; commanding "
                "hover", throttle_duration_sec=2.0)
            return HOVER
        other_pos = np.array([by_id[j][1:4] for j in others]).reshape(len(others), 3)
        obs = O.observe_tick(self.cfg, pos, np.zeros(3), other_pos, None)
        action = int(np.asarray(self.policy.act(obs, self.agent_key)).ravel()[0])
        if not 0 <= action < len(CELL_MOVES):
            raise ValueError(f"the policy chose cell move {action}; the cells view has "
                             f"{len(CELL_MOVES)}")
        setpoint = O.cell_action_setpoint(self.cfg, action, pos, self.speed)
        setpoint = np.clip(setpoint, -self.limits, self.limits)
        return self.geofence_guard(pos, setpoint)

    def geofence_guard(self, pos: np.ndarray, setpoint: np.ndarray) -> np.ndarray:
        """Beyond the geofence margin, replace outward motion by half-speed flight back."""
        low, high = pos < self.fence_low, pos > self.fence_high
        if not (low.any() or high.any()):
            return setpoint
        out = setpoint.copy()
        out[:3][low] = 0.5 * self.limits[:3][low]
        out[:3][high] = -0.5 * self.limits[:3][high]
        now = time.monotonic()
        if now - self.fence_warned >= 2.0:  # throttled here: rclpy's throttle inspects frames
            self.fence_warned = now
            self.get_logger().warning(f"outside the geofence at {np.round(pos, 2).tolist()}; "
                                      "flying back")
        return out

    def destroy_node(self) -> None:
        stats = getattr(self, "stats", None)  # absent when __init__ refused the bundle
        if stats is not None:
            stats.write(self.drone_id)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node_process("agent_node", lambda: [AgentNode()], args)


if __name__ == "__main__":
    sys.exit(main())
