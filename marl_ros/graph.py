"""The swarm's node graph, produced by one function for both ways of starting it.

`launch/swarm.launch.py` turns `swarm_graph(...)` into launch_ros `Node` actions
(`ros2 launch marl_ros swarm.launch.py ...`); `marl-ros swarm ...` starts the very
same list as processes where the ros2 command line and launch_ros are not
installed. No rclpy or launch import here.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# name -> (default as a launch string, description); the launch file declares exactly these.
LAUNCH_ARGUMENTS: dict[str, tuple[str, str]] = {
    "num_drones": ("4", "number of drones (one agent node each)"),
    "policy": ("", "policy bundle folder; empty = the shipped coverage policy"),
    "scenario": ("coverage", "scenario the bundle must have been trained on"),
    "sim": ("true", "start the PyBullet sim_node (false on real hardware)"),
    "rate": ("0.0", "agent control rate in Hz; 0 = the bundle's policy rate"),
    "namespace_prefix": ("drone_", "drone i lives in /<prefix><i>"),
    "use_sim_time": ("auto", "follow /clock; auto = true when sim is true"),
    "one_process": ("false", "all agent nodes in one process on one executor (large swarms)"),
    "real_time_factor": ("1.0", "sim_node: simulated seconds per wall second"),
    "seed": ("0", "sim_node: seed of the start positions"),
    "report_dir": ("runs/swarm", "monitor_node: folder for report.json and coverage.png"),
    "mission_steps": ("0", "monitor_node: mission length in policy ticks; 0 = scenario default"),
    "neighbour_drop": ("0.0", "fault injection: probability of losing a neighbour's state"),
}


@dataclass(frozen=True)
class NodeSpec:
    """One node to start: the executable in lib/marl_ros, also module marl_ros.nodes.<name>."""

    executable: str
    name: str
    namespace: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)


def _bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    low = value.strip().lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise ValueError(f"expected true or false (got {value!r}).")


def parse_launch_arguments(raw: dict[str, str]) -> dict[str, Any]:
    """Launch-argument strings -> typed keyword arguments of `swarm_graph`."""
    unknown = set(raw) - set(LAUNCH_ARGUMENTS)
    if unknown:
        raise ValueError(f"unknown launch argument {sorted(unknown)[0]!r}; valid: "
                         f"{', '.join(LAUNCH_ARGUMENTS)}.")
    args = {k: raw.get(k, default) for k, (default, _) in LAUNCH_ARGUMENTS.items()}
    try:
        return {
            "num_drones": int(args["num_drones"]), "policy": args["policy"] or None,
            "scenario": args["scenario"], "sim": _bool(args["sim"]),
            "rate": float(args["rate"]), "namespace_prefix": args["namespace_prefix"],
            "use_sim_time": None if args["use_sim_time"] == "auto" else _bool(args["use_sim_time"]),
            "one_process": _bool(args["one_process"]),
            "real_time_factor": float(args["real_time_factor"]), "seed": int(args["seed"]),
            "report_dir": args["report_dir"], "mission_steps": int(args["mission_steps"]),
            "neighbour_drop": float(args["neighbour_drop"]),
        }
    except ValueError as err:
        raise ValueError(f"bad launch argument: {err}") from None


def swarm_graph(num_drones: int = 4, policy: str | None = None, scenario: str = "coverage",
                sim: bool = True, rate: float = 0.0, namespace_prefix: str = "drone_",
                use_sim_time: bool | None = None, one_process: bool = False,
                real_time_factor: float = 1.0, seed: int = 0, report_dir: str = "runs/swarm",
                mission_steps: int = 0, neighbour_drop: float = 0.0,
                exit_on_complete: bool = False) -> list[NodeSpec]:
    """The nodes of a swarm: [sim_node], one agent node per drone (or one swarm_agents
    process), monitor_node. Checks the bundle's scenario before anything starts."""
    from marl_ros.runtime import BundleError, default_bundle, read_bundle_metadata

    if num_drones < 1:
        raise ValueError(f"num_drones must be >= 1 (got {num_drones}).")
    bundle = str(Path(policy).resolve()) if policy else default_bundle()
    meta = read_bundle_metadata(bundle)
    trained = (meta.get("scenario") or {}).get("scenario")
    if trained != scenario:
        raise BundleError(f"the policy was trained on scenario {trained!r} but scenario "
                          f"{scenario!r} was asked for; pass scenario:={trained} or another "
                          "policy.")
    sim_time = sim if use_sim_time is None else use_sim_time
    common = {"bundle": bundle, "num_drones": num_drones, "use_sim_time": sim_time}
    agent = {**common, "rate": rate, "neighbour_drop": neighbour_drop, "seed": seed}
    nodes = []
    if sim:
        nodes.append(NodeSpec("sim_node", "sim", "", {
            **common, "use_sim_time": False, "publish_clock": sim_time,
            "namespace_prefix": namespace_prefix, "real_time_factor": real_time_factor,
            "seed": seed}))
    if one_process:
        nodes.append(NodeSpec("swarm_agents", "swarm_agents", "",
                              {**agent, "namespace_prefix": namespace_prefix}))
    else:
        nodes += [NodeSpec("agent_node", "agent", f"/{namespace_prefix}{i}",
                           {**agent, "drone_id": i}) for i in range(num_drones)]
    nodes.append(NodeSpec("monitor_node", "monitor", "", {
        **common, "report_dir": report_dir, "mission_steps": mission_steps,
        "exit_on_complete": exit_on_complete}))
    return nodes


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def node_command(spec: NodeSpec) -> list[str]:
    """How `marl-ros swarm` runs a node: this interpreter, the node's module, --ros-args."""
    cmd = [sys.executable, "-m", f"marl_ros.nodes.{spec.executable}", "--ros-args",
           "-r", f"__node:={spec.name}"]
    if spec.namespace:
        cmd += ["-r", f"__ns:={spec.namespace}"]
    for key, value in spec.parameters.items():
        cmd += ["-p", f"{key}:={_param_text(value)}"]
    return cmd


def run_graph(specs: list[NodeSpec], timeout_s: float, log_dir: Path | None = None) -> int:
    """Start every node, wait for the monitor to finish the mission (or the timeout or
    Ctrl-C), then stop the rest with SIGINT. Returns the monitor's exit code (or 124)."""
    procs: list[tuple[NodeSpec, subprocess.Popen]] = []
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
    try:
        for spec in specs:
            out = (open(log_dir / f"{spec.name}{spec.namespace.replace('/', '_')}.log", "w")
                   if log_dir is not None else None)
            procs.append((spec, subprocess.Popen(node_command(spec), stdout=out,
                                                 stderr=subprocess.STDOUT)))
        monitor = next(p for s, p in procs if s.executable == "monitor_node")
        deadline = time.monotonic() + timeout_s
        while monitor.poll() is None and time.monotonic() < deadline:
            for spec, proc in procs:
                if proc is not monitor and proc.poll() == 2:
                    raise RuntimeError(f"{spec.executable} {spec.namespace or spec.name} stopped "
                                       "at start (exit code 2); see its log.")
            time.sleep(0.2)
        code = monitor.poll()
        return 124 if code is None else code
    finally:
        for _, proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        end = time.monotonic() + 10
        for _, proc in procs:
            try:
                proc.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
