"""monitor_node: team metrics from the swarm state, RViz markers, an end-of-run report.

At the policy rate it marks every drone's footprint on the ground-truth coverage map
(the simulator's rules, `sim.obs.mark_footprints`), and tracks the minimum separation,
collisions (pairs closer than two rotor spans: the airframes touch), near-collisions
(pairs closer than the scenario's collision_distance, the safety margin the reward
penalises) and geofence violations (drone-ticks outside). Publishes `/swarm/coverage`,
`/swarm/min_separation` (std_msgs/Float64), `/swarm/collisions`, `/swarm/near_collisions`,
`/swarm/geofence_violations` (std_msgs/Int32, counts so far) and
`/swarm/markers` (visualization_msgs/MarkerArray: drones and covered cells). The
mission ends at full coverage or after `mission_steps` ticks: it then writes
`report.json` and `coverage.png` to `report_dir` (also at shutdown) and, with
`exit_on_complete`, shuts down.

Pursuit: each tick it applies the simulator's capture rule (`sim.scenarios.PursuitScenario`)
to the positions: an evader is captured when a pursuer is within capture_radius of it
horizontally, or when it is outside the geofence. It publishes `/swarm/capture`
(std_msgs/Int32, evaders captured so far) and `/swarm/captured` (std_msgs/Int32MultiArray,
their drone ids, on each capture: the agent nodes take them out of play, as the simulator
does), and the mission also ends once every evader is captured; the report adds `capture` (the fraction of evaders captured), `captured_evaders`
(their drone ids), `capture_time_steps` (ticks to the first capture, null without one) and
`capture_time_s`.

Obstacles (coverage with `obstacles`): it holds the layout the simulator's episode of `seed`
draws (`sim.obstacles.obstacles_for_seed`, as sim_node), counts obstacle collisions with the
simulator's rule (drone-ticks with a drone closer than its radius to an obstacle's surface,
`sim.obstacles.obstacle_hits`), publishes the count on `/swarm/obstacle_collisions`
(std_msgs/Int32), draws the obstacles in the markers and reports `obstacle_collisions` and the
layout. (With real obstacles the layout is the simulator's draw, not the room's.)

Missions (formation, flock: `sim.missions`): once every drone's first position has arrived
it draws the episode's mission from its `seed` and those positions, as the simulator does at
a reset, publishes the mission target on `/mission/target` (nav_msgs/Odometry, world frame)
every tick for the agent nodes, and scores the flight with the world's own tracker; the
report adds its metrics under `mission` (e.g. formation's shape error, flock's time to goal).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import rclpy
from geometry_msgs.msg import Point
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from std_msgs.msg import Bool, ColorRGBA, Float64, Float64MultiArray, Int32, Int32MultiArray
from visualization_msgs.msg import Marker, MarkerArray

from marl_ros.nodes.agent_node import CAPTURED_QOS, CAPTURED_TOPIC, MISSION_TARGET_TOPIC, _describe
from marl_ros.nodes.messages import SENSOR_QOS, WORLD_FRAME, make_odometry, unpack_swarm_state
from marl_ros.nodes.process import run_node_process
from marl_ros.runtime import default_bundle, load_swarm_config, read_bundle_metadata
from sim import obs as O
from sim.config import CoverageConfig, PursuitConfig
from sim.drone import CrazyflieParams
from sim.missions import Mission, mission_module
from sim.obstacles import obstacle_hits, obstacles_for_seed
from sim.scenarios import pairwise_distances


class MonitorNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("monitor", **kwargs)
        p = self.declare_parameter
        p("num_drones", 4, _describe("drones in the swarm", 1, 1024, integer=True))
        p("bundle", default_bundle(), _describe("policy bundle giving the scenario geometry"))
        p("swarm_topic", "/swarm/state", ParameterDescriptor(description="swarm state topic"))
        p("rate", 0.0, _describe("metric ticks per second; 0 = the policy rate", 0.0, 100.0))
        p("mission_steps", 0, _describe("ticks until the mission ends; 0 = the scenario's "
                                        "episode length", 0, 10**7, integer=True))
        p("report_dir", "runs/swarm", ParameterDescriptor(description="where report.json and "
                                                                      "coverage.png go"))
        p("exit_on_complete", False, ParameterDescriptor(description="shut down after the "
                                                                     "report is written"))
        p("seed", 0, _describe("seed of the mission (formation, flock) or obstacle layout drawn: "
                               "the simulator's episode of that seed", 0, 2**31 - 1,
                               integer=True))
        g = self.get_parameter
        bundle = g("bundle").value
        self.cfg = load_swarm_config(bundle, g("num_drones").value)
        self.provenance = read_bundle_metadata(bundle).get("provenance", {})
        self.rate = g("rate").value or self.cfg.policy_hz
        self.mission_steps = g("mission_steps").value or self.cfg.max_steps
        self.report_dir = Path(g("report_dir").value)
        self.exit_on_complete = g("exit_on_complete").value
        self.coverage_map = O.new_belief(self.cfg) if isinstance(self.cfg, CoverageConfig) else None
        self.positions: np.ndarray | None = None
        self.velocities = np.zeros((self.cfg.num_drones, 3))
        self.max_velocity = np.zeros((self.cfg.num_drones, 3))  # largest |vx|, |vy|, |vz| heard
        self.has_mission = mission_module(self.cfg) is not None
        self.mission: Mission | None = None  # drawn with the first positions
        self.seed = g("seed").value
        self.trajectory: list[np.ndarray] = []
        self.steps = 0
        self.min_separation = np.inf
        self.near_collisions = 0
        self.collisions = 0
        self.contact_distance = CrazyflieParams().contact_distance
        self.geofence_violations = 0
        self.complete = False
        self.report_written = False
        self.pursuit = isinstance(self.cfg, PursuitConfig)
        self.captured = np.zeros(self.cfg.num_evaders if self.pursuit else 0, dtype=bool)
        self.first_capture: int | None = None  # tick of the first capture
        self.obstacles = (obstacles_for_seed(self.cfg, self.seed)[1:]
                          if getattr(self.cfg, "obstacles", 0) else None)  # centres, sizes, boxes
        self.obstacle_collisions = 0

        self.create_subscription(Float64MultiArray, g("swarm_topic").value, self.on_swarm,
                                 SENSOR_QOS)
        self.pubs = {name: self.create_publisher(kind, f"/swarm/{name}", 10) for name, kind in [
            ("coverage", Float64), ("min_separation", Float64), ("collisions", Int32),
            ("near_collisions", Int32),
            ("geofence_violations", Int32), ("mission_complete", Bool)]
            + ([("capture", Int32)] if self.pursuit else [])
            + ([("obstacle_collisions", Int32)] if self.obstacles is not None else [])}
        self.marker_pub = self.create_publisher(MarkerArray, "/swarm/markers", 10)
        self.captured_pub = (self.create_publisher(Int32MultiArray, CAPTURED_TOPIC, CAPTURED_QOS)
                             if self.pursuit else None)
        self.target_pub = (self.create_publisher(Odometry, MISSION_TARGET_TOPIC, SENSOR_QOS)
                           if self.has_mission else None)
        self.target_msg = Odometry()
        self.timer = self.create_timer(1.0 / self.rate, self.tick)

    @property
    def coverage(self) -> float:
        if self.coverage_map is None:
            return 0.0
        return float((O.belief_interior(self.coverage_map, self.cfg) == O.COVERED).mean())

    def on_swarm(self, msg: Float64MultiArray) -> None:
        try:
            rows = unpack_swarm_state(msg)
        except ValueError as err:
            self.get_logger().warning(f"ignoring malformed swarm state: {err}",
                                   throttle_duration_sec=2.0)
            return
        rows = rows[np.isfinite(rows).all(axis=1)]
        first = self.positions is None
        ids = rows[:, 0].astype(int)
        pos = np.full((self.cfg.num_drones, 3), np.nan)
        ok = (ids >= 0) & (ids < self.cfg.num_drones)
        pos[ids[ok]] = rows[ok, 1:4]
        self.velocities[ids[ok]] = rows[ok, 4:7]
        self.max_velocity = np.maximum(self.max_velocity, np.abs(self.velocities))
        if first and not np.isnan(pos).any():
            self.positions = pos
            if self.has_mission:  # drawn from the start positions, as at an episode's reset
                self.mission = Mission.for_seed(self.cfg, self.seed, pos)
                self.publish_target()
            self.record()  # the start positions count, as at an episode's reset
        elif not first:
            self.positions = np.where(np.isnan(pos), self.positions, pos)

    def publish_target(self) -> None:
        target = self.mission.target(self.steps)
        make_odometry(target[:3], target[3:], 0.0, np.zeros(3), self.get_clock().now().to_msg(),
                      "mission_target", self.target_msg)
        self.target_pub.publish(self.target_msg)

    def record(self) -> None:
        pos = self.positions
        self.trajectory.append(pos.copy())
        if self.coverage_map is not None:
            O.mark_footprints(self.coverage_map, pos, None, self.cfg,
                              O.drone_footprints(self.cfg))  # rows are drones by index

    def tick(self) -> None:
        if self.positions is None or self.complete:
            return
        self.steps += 1
        self.record()
        pos = self.positions
        if len(pos) > 1:
            d = pairwise_distances(pos[None])[0]
            self.min_separation = min(self.min_separation, float(d.min()))
            self.near_collisions += int(np.triu(d < self.cfg.collision_distance, 1).sum())
            self.collisions += int(np.triu(d < self.contact_distance, 1).sum())
            current_min = float(d.min())
        else:
            current_min = float("inf")
        self.geofence_violations += int((~O.inside_geofence(pos, self.cfg)).sum())
        if self.obstacles is not None:
            self.obstacle_collisions += int(obstacle_hits(pos[None], *(a[None] for a in self.obstacles),
                                                          self.cfg).sum())
            self.pubs["obstacle_collisions"].publish(Int32(data=self.obstacle_collisions))
        if self.pursuit:
            self.check_captures(pos)
            self.pubs["capture"].publish(Int32(data=int(self.captured.sum())))
        if self.mission is not None:
            self.mission.update(pos, self.velocities, self.steps)
            self.publish_target()
        self.pubs["coverage"].publish(Float64(data=self.coverage))
        self.pubs["min_separation"].publish(Float64(data=current_min))
        self.pubs["collisions"].publish(Int32(data=self.collisions))
        self.pubs["near_collisions"].publish(Int32(data=self.near_collisions))
        self.pubs["geofence_violations"].publish(Int32(data=self.geofence_violations))
        self.marker_pub.publish(self.markers())
        all_captured = self.pursuit and bool(self.captured.all())
        mission_ended = self.mission is not None and self.mission.ended()
        if (self.coverage >= 1.0 or all_captured or mission_ended
                or self.steps >= self.mission_steps):
            self.complete = True
            self.pubs["mission_complete"].publish(Bool(data=True))
            self.write_report()
            if self.pursuit:
                task = f"{int(self.captured.sum())} of {self.captured.size} evaders captured"
            elif self.mission is not None:
                task = ", ".join(f"{k} {v:.3g}" for k, v in self.mission.metrics().items()
                                 if v is not None)
            else:
                task = f"coverage {100 * self.coverage:.1f}%"
            self.get_logger().info(f"mission complete after {self.steps} steps: {task}, "
                                   f"near-collisions {self.near_collisions}; report in "
                                   f"{self.report_dir}")
            if self.exit_on_complete:
                rclpy.try_shutdown()

    def check_captures(self, pos: np.ndarray) -> None:
        """The simulator's rule on this tick's positions: an evader still in play is captured
        by a pursuer within capture_radius horizontally, or by leaving the geofence."""
        p = self.cfg.num_pursuers
        pursuers, evaders = pos[:p, :2], pos[p:, :2]
        nearest = np.linalg.norm(evaders[:, None] - pursuers[None], axis=-1).min(axis=1)
        caught = ~self.captured & ((nearest <= self.cfg.capture_radius)
                                   | ~O.inside_geofence(pos[p:], self.cfg))
        if caught.any():
            self.captured |= caught
            if self.first_capture is None:
                self.first_capture = self.steps
            ids = ", ".join(str(p + int(j)) for j in np.flatnonzero(caught))
            self.get_logger().info(f"tick {self.steps}: evader drone(s) {ids} captured")
            self.captured_pub.publish(Int32MultiArray(
                data=[p + int(j) for j in np.flatnonzero(self.captured)]))

    def markers(self) -> MarkerArray:
        out = MarkerArray()
        stamp = self.get_clock().now().to_msg()
        for i, p in enumerate(self.positions):
            m = Marker(ns="drones", id=i, type=Marker.SPHERE, action=Marker.ADD)
            m.header.frame_id, m.header.stamp = WORLD_FRAME, stamp
            m.pose.position = Point(x=float(p[0]), y=float(p[1]), z=float(p[2]))
            m.pose.orientation.w = 1.0
            m.scale.x = m.scale.y = m.scale.z = 0.15
            evader = self.pursuit and self.cfg.is_evader(i)
            m.color = (ColorRGBA(r=1.0, g=0.3, b=0.2, a=1.0) if evader
                       else ColorRGBA(r=0.2, g=0.4, b=1.0, a=1.0))
            out.markers.append(m)
        if self.obstacles is not None:
            from sim.obstacles import OBSTACLE_HEIGHT

            top = self.cfg.altitude_max + 0.5  # drawn a little above the flight band
            for k, (centre, half, box) in enumerate(zip(*self.obstacles, strict=True)):
                m = Marker(ns="obstacles", id=k, type=Marker.CUBE if box else Marker.CYLINDER,
                           action=Marker.ADD)
                m.header.frame_id, m.header.stamp = WORLD_FRAME, stamp
                m.pose.position = Point(x=float(centre[0]), y=float(centre[1]), z=top / 2)
                m.pose.orientation.w = 1.0
                m.scale.x, m.scale.y = 2 * float(half[0]), 2 * float(half[1])
                m.scale.z = min(top, OBSTACLE_HEIGHT)
                m.color = ColorRGBA(r=0.5, g=0.5, b=0.5, a=0.8)
                out.markers.append(m)
        if self.coverage_map is not None:
            m = Marker(ns="coverage", id=0, type=Marker.CUBE_LIST, action=Marker.ADD)
            m.header.frame_id, m.header.stamp = WORLD_FRAME, stamp
            m.pose.orientation.w = 1.0
            c = self.cfg.cell_size
            m.scale.x, m.scale.y, m.scale.z = c, c, 0.01
            rows, cols = np.nonzero(O.belief_interior(self.coverage_map, self.cfg) == O.COVERED)
            m.points = [Point(x=(col + 0.5) * c, y=(row + 0.5) * c, z=0.0)
                        for row, col in zip(rows.tolist(), cols.tolist(), strict=True)]
            m.color = ColorRGBA(r=0.3, g=0.8, b=0.3, a=0.6)
            out.markers.append(m)
        return out

    def report(self) -> dict:
        report = {
            "scenario": self.cfg.scenario, "num_drones": self.cfg.num_drones,
            "steps": self.steps, "simulated_s": self.steps / self.rate,
            "coverage": round(self.coverage, 4),
            "min_separation_m": None if not np.isfinite(self.min_separation)
            else round(self.min_separation, 3),
            "collisions": self.collisions,
            "contact_distance_m": round(self.contact_distance, 3),
            "near_collisions": self.near_collisions,
            "collision_distance_m": self.cfg.collision_distance,
            "geofence_violations": self.geofence_violations,
            # per drone, the largest |vx|, |vy|, |vz| in the swarm state: each within its limits
            "max_velocity_mps": np.round(self.max_velocity, 3).tolist(),
            "complete": self.complete,
            "policy": {k: self.provenance.get(k) for k in ("algorithm", "training_steps",
                                                           "code_version")},
        }
        if self.pursuit:
            p = self.cfg.num_pursuers
            report.update({
                "capture": round(float(self.captured.mean()), 4),
                "captured_evaders": [p + int(j) for j in np.flatnonzero(self.captured)],
                "capture_time_steps": self.first_capture,
                "capture_time_s": None if self.first_capture is None
                else self.first_capture / self.rate,
                "capture_radius_m": self.cfg.capture_radius})
        if self.obstacles is not None:
            centres, half_sizes, boxes = self.obstacles
            report["obstacle_collisions"] = self.obstacle_collisions
            report["obstacles"] = [
                {"shape": "box" if box else "cylinder", "centre_m": np.round(c, 3).tolist(),
                 "half_size_m": np.round(h, 3).tolist() if box else round(float(h[0]), 3)}
                for c, h, box in zip(centres, half_sizes, boxes, strict=True)]
        if self.mission is not None:
            report["mission"] = {k: None if v is None else round(v, 4)
                                 for k, v in self.mission.metrics().items()}
        return report

    def write_report(self) -> None:
        if self.positions is None:
            return
        self.report_dir.mkdir(parents=True, exist_ok=True)
        report = self.report()
        if self.coverage_map is not None:
            from sim.render import save_coverage_png

            png = save_coverage_png(self.report_dir / "coverage.png", self.cfg, self.coverage_map,
                                    np.array(self.trajectory),
                                    f"ROS swarm, {self.cfg.num_drones} drones: "
                                    f"{100 * self.coverage:.1f}% in {self.steps} steps")
            report["png"] = str(png)
        (self.report_dir / "report.json").write_text(json.dumps(report, indent=2))
        self.report_written = True


def _write_report_unless_written(nodes: list[MonitorNode]) -> None:
    """The report is written on every way out: mission end, Ctrl-C, SIGTERM."""
    for node in nodes:
        if not node.report_written:
            node.write_report()


def main(args: list[str] | None = None) -> int:
    return run_node_process("monitor_node", lambda: [MonitorNode()], args,
                            on_exit=_write_report_unless_written)


if __name__ == "__main__":
    sys.exit(main())
