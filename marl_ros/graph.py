"""The swarm's node graph, produced by one function for both ways of starting it.

`launch/swarm.launch.py` turns `swarm_graph(...)` into launch_ros `Node` actions
(`ros2 launch marl_ros swarm.launch.py ...`); `marl-ros swarm ...` starts the very
same list as processes where the ros2 command line and launch_ros are not
installed. No rclpy or launch import here.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
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
    "seed": ("0", "sim_node: seed of the start positions and obstacles; monitor_node: of the "
             "mission or obstacle layout"),
    "report_dir": ("runs/swarm", "monitor_node: folder for report.json and coverage.png"),
    "mission_steps": ("0", "monitor_node: mission length in policy ticks; 0 = scenario default"),
    "neighbour_drop": ("0.0", "fault injection: probability of losing a neighbour's state"),
    "exit_on_complete": ("true", "end the launch (every node) when the monitor reports the "
                                 "mission complete"),
    "team_policies": ("", "one bundle per team, e.g. pursuers=<bundle>,evaders=<bundle> "
                          "(pursuit); teams not named fly policy"),
}
MAX_RATE_HZ = 100.0  # agent_node's rate parameter range
REAL_TIME_FACTOR_RANGE = (0.05, 50.0)  # sim_node's real_time_factor parameter range
MAX_MISSION_STEPS = 10**7  # monitor_node's mission_steps parameter range
NAME_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


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

    def typed(name: str, kind):
        try:
            return kind(args[name])
        except ValueError:
            what = {int: "a whole number", float: "a number", _bool: "true or false"}[kind]
            raise ValueError(f"launch argument {name} must be {what} (got "
                             f"{args[name]!r}).") from None

    return {
        "num_drones": typed("num_drones", int), "policy": args["policy"] or None,
        "scenario": args["scenario"], "sim": typed("sim", _bool),
        "rate": typed("rate", float), "namespace_prefix": args["namespace_prefix"],
        "use_sim_time": None if args["use_sim_time"] == "auto" else typed("use_sim_time", _bool),
        "one_process": typed("one_process", _bool),
        "real_time_factor": typed("real_time_factor", float), "seed": typed("seed", int),
        "report_dir": args["report_dir"], "mission_steps": typed("mission_steps", int),
        "neighbour_drop": typed("neighbour_drop", float),
        "exit_on_complete": typed("exit_on_complete", _bool),
        "team_policies": args["team_policies"],
    }


def check_swarm_arguments(num_drones: int, rate: float, namespace_prefix: str,
                          real_time_factor: float, seed: int, report_dir: str,
                          mission_steps: int, neighbour_drop: float, sim: bool) -> None:
    """One ValueError sentence for the first argument no node would accept (the nodes'
    parameter ranges), before any process starts."""
    if isinstance(num_drones, bool) or not isinstance(num_drones, int) or num_drones < 1:
        raise ValueError(f"num_drones must be a whole number >= 1 (got {num_drones!r}).")
    if not (math.isfinite(rate) and 0.0 <= rate <= MAX_RATE_HZ):
        raise ValueError(f"rate must be 0 (the bundle's policy rate) or a control rate in Hz up "
                         f"to {MAX_RATE_HZ:g} (got {rate!r}).")
    low, high = REAL_TIME_FACTOR_RANGE
    if sim and not (math.isfinite(real_time_factor) and low <= real_time_factor <= high):
        raise ValueError(f"real_time_factor must be between {low:g} and {high:g} simulated "
                         f"seconds per wall second (got {real_time_factor!r}).")
    if not 0 <= mission_steps <= MAX_MISSION_STEPS:
        raise ValueError(f"mission_steps must be 0 (the scenario's episode length) or a number "
                         f"of policy ticks up to {MAX_MISSION_STEPS:,} (got {mission_steps!r}).")
    if not (math.isfinite(neighbour_drop) and 0.0 <= neighbour_drop <= 1.0):
        raise ValueError(f"neighbour_drop is a probability and must lie in [0, 1] (got "
                         f"{neighbour_drop!r}).")
    if not 0 <= seed < 2**31:
        raise ValueError(f"seed must lie in [0, 2^31) (got {seed!r}).")
    if not NAME_TOKEN.match(namespace_prefix):
        raise ValueError(f"namespace_prefix {namespace_prefix!r} is not a valid start of a ROS "
                         "name; use letters, digits and underscores, not starting with a digit "
                         "(e.g. drone_).")
    if not report_dir:
        raise ValueError("report_dir must name a folder (e.g. runs/swarm).")


def scenario_teams(cfg: Any) -> dict[str, list[int]]:
    """A scenario's teams and their drone indices, in team order; {} for a scenario without
    teams (`sim.config.SwarmConfig.teams`; pursuit: pursuers 0..P-1, evaders P..N-1)."""
    return dict(cfg.teams)


def team_names(scenario: str) -> list[str]:
    """The scenario's team names in drone order (its default configuration's teams)."""
    from sim.config import make_config

    return list(scenario_teams(make_config(scenario)))


def parse_team_policies(text: str, scenario: str) -> dict[str, str]:
    """`pursuers=<bundle>,evaders=<bundle>` -> {team: bundle}, the team names checked against
    the scenario's (its default configuration's teams). A scenario without teams refuses the
    argument; so does an empty, repeated or unknown entry."""
    names = team_names(scenario)
    if not names:
        raise ValueError(f"team_policies needs a scenario with teams (pursuit), but scenario "
                         f"{scenario!r} has none; pass one bundle with policy:=<bundle>.")
    out: dict[str, str] = {}
    for item in text.split(","):
        team, sep, bundle = (part.strip() for part in item.partition("="))
        if not sep or not team or not bundle:
            raise ValueError(f"team_policies entry {item.strip()!r} is not <team>=<bundle>; write "
                             f"e.g. team_policies:={names[0]}=<bundle>,{names[-1]}=<bundle>.")
        if team not in names:
            raise ValueError(f"team_policies names team {team!r} but scenario {scenario!r} has "
                             f"the teams {', '.join(names)}; use those names.")
        if team in out:
            raise ValueError(f"team_policies names team {team!r} twice; give each team one "
                             "bundle.")
        out[team] = bundle
    return out


def _first_difference(a: Any, b: Any) -> str:
    """The first observation parameter two configurations set differently, as
    `key=a against key=b` (the comparison `marl_ros.runtime._config_mismatch` makes)."""
    keys = sorted(set(a.observation_params()) | set(b.observation_params()))
    da, db = a.to_dict(), b.to_dict()
    for key in keys:
        if da.get(key) != db.get(key):
            return f"{key}={da.get(key)!r} against {key}={db.get(key)!r}"
    return "a different observation"


def _team_bundles(team_policies: str, policy: str | None, scenario: str,
                  num_drones: int) -> tuple[str, list[str]]:
    """The world bundle (the first team's) and each drone's bundle, every bundle checked: it
    exists, was trained on `scenario`, flies `num_drones` drones and its team's drone ids,
    loads, and plays the same game (observation) as the first team's bundle."""
    from marl_ros.runtime import (
        BundleError,
        OnnxPolicy,
        flies_any_drone_count,
        load_swarm_config,
        read_bundle_metadata,
    )
    from sim.obs import observation_hash

    named = parse_team_policies(team_policies, scenario)
    checked: dict[str, tuple[Any, dict]] = {}  # bundle -> (its node configuration, metadata)

    def check(bundle: str, team: str) -> tuple[Any, dict]:
        if bundle not in checked:
            meta = read_bundle_metadata(bundle)
            trained = (meta.get("scenario") or {}).get("scenario")
            if trained != scenario:
                raise BundleError(f"the {team} bundle {bundle} was trained on scenario "
                                  f"{trained!r}, not {scenario!r}; pass a {scenario} bundle.")
            cfg = load_swarm_config(bundle, num_drones)
            OnnxPolicy.load(bundle, config=cfg)
            checked[bundle] = (cfg, meta)
        return checked[bundle]

    first_cfg: Any = None
    teams: dict[str, list[int]] = {}
    drone_bundle = [""] * num_drones
    first_bundle = first_team = ""
    for team in team_names(scenario):
        given = named.get(team) or policy
        if not given:
            raise ValueError(f"team_policies names no bundle for the {team} and no policy is "
                             f"given; add {team}=<bundle> to team_policies or pass "
                             "policy:=<bundle>.")
        bundle = str(Path(given).resolve())
        cfg, meta = check(bundle, team)
        if first_cfg is None:
            first_cfg, first_bundle, first_team = cfg, bundle, team
            teams = scenario_teams(cfg)
        elif observation_hash(cfg) != observation_hash(first_cfg):
            raise BundleError(f"the {team} bundle {bundle} plays another game than the "
                              f"{first_team} bundle {first_bundle} ({_first_difference(cfg, first_cfg)}); "
                              "export both teams' bundles from one scenario configuration.")
        ids = teams[team]
        if not flies_any_drone_count(meta):
            missing = [f"drone_{i}" for i in ids if f"drone_{i}" not in meta["agents"]]
            if missing:
                raise BundleError(f"the {team} bundle {bundle} holds policies for "
                                  f"{', '.join(meta['agents'])} but not for {', '.join(missing)} "
                                  f"of its team; export it with a model for each of the {team}' "
                                  "drones or a shared-parameter policy.")
        for i in ids:
            drone_bundle[i] = bundle
    return first_bundle, drone_bundle


def swarm_graph(num_drones: int = 4, policy: str | None = None, scenario: str = "coverage",
                sim: bool = True, rate: float = 0.0, namespace_prefix: str = "drone_",
                use_sim_time: bool | None = None, one_process: bool = False,
                real_time_factor: float = 1.0, seed: int = 0, report_dir: str = "runs/swarm",
                mission_steps: int = 0, neighbour_drop: float = 0.0,
                exit_on_complete: bool = False, team_policies: str = "") -> list[NodeSpec]:
    """The nodes of a swarm: [sim_node], one agent node per drone (or one swarm_agents
    process), monitor_node. Checks every argument, the bundle's scenario, the drone count
    against the field and against the bundle before anything starts (one sentence each).

    team_policies ("pursuers=<bundle>,evaders=<bundle>", pursuit): each agent flies its
    team's bundle (teams not named fly `policy`); sim_node and monitor_node take the world
    and the rules outside the observation (capture_radius, max_steps) from the first team's.
    Every bundle is checked first (see `_team_bundles`)."""
    from marl_ros.runtime import (
        BundleError,
        OnnxPolicy,
        default_bundle,
        load_swarm_config,
        read_bundle_metadata,
    )

    check_swarm_arguments(num_drones, rate, namespace_prefix, real_time_factor, seed,
                          report_dir, mission_steps, neighbour_drop, sim)
    if team_policies and team_policies.strip():
        bundle, drone_bundles = _team_bundles(team_policies, policy, scenario, num_drones)
    else:
        bundle = str(Path(policy).resolve()) if policy else default_bundle()
        meta = read_bundle_metadata(bundle)
        trained = (meta.get("scenario") or {}).get("scenario")
        if trained != scenario:
            raise BundleError(f"the policy was trained on scenario {trained!r} but scenario "
                              f"{scenario!r} was asked for; pass scenario:={trained} or another "
                              "policy.")
        # The field holds them, the bundle flies this many, its files load and pass their checks.
        OnnxPolicy.load(bundle, config=load_swarm_config(bundle, num_drones))
        drone_bundles = [bundle] * num_drones
    sim_time = sim if use_sim_time is None else use_sim_time
    common = {"bundle": bundle, "num_drones": num_drones, "use_sim_time": sim_time}
    agent = {**common, "rate": rate, "neighbour_drop": neighbour_drop, "seed": seed}
    nodes = []
    if sim:
        nodes.append(NodeSpec("sim_node", "sim", "", {
            **common, "use_sim_time": False, "publish_clock": sim_time,
            "namespace_prefix": namespace_prefix, "real_time_factor": real_time_factor,
            "seed": seed}))
    if one_process:  # no name: a node-name remap would rename every agent the process holds
        hosted = {**agent, "namespace_prefix": namespace_prefix}
        if any(b != bundle for b in drone_bundles):  # drone i flies drone_bundles[i]
            hosted["drone_bundles"] = drone_bundles
        nodes.append(NodeSpec("swarm_agents", "", "", hosted))
    else:
        nodes += [NodeSpec("agent_node", "agent", f"/{namespace_prefix}{i}",
                           {**agent, "drone_id": i, "bundle": drone_bundles[i]})
                  for i in range(num_drones)]
    nodes.append(NodeSpec("monitor_node", "monitor", "", {
        **common, "report_dir": report_dir, "mission_steps": mission_steps,
        "exit_on_complete": exit_on_complete, "seed": seed}))
    return nodes


def agent_process_capacity() -> tuple[int, str]:
    """How many agent processes this machine holds, and why: 8 per CPU (`marl-ros bench
    ros`: 16 processes at 30 Hz took 1.1 of 2 cores) and one per 150 MB of available memory
    (an agent process with onnxruntime and DDS: ~100 MB resident)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    by_cpu = 8 * (cpus or 1)
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except OSError:
        pass
    if available is None:
        return by_cpu, f"{cpus} CPUs"
    by_memory = int(available // 150e6)
    reason = f"{cpus} CPUs, {available / 2**30:.1f} GiB available"
    return max(1, min(by_cpu, by_memory)), reason


def _param_text(value: Any) -> str:
    if isinstance(value, list):  # a string array, e.g. swarm_agents' drone_bundles
        return "[" + ",".join(json.dumps(str(v)) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def node_command(spec: NodeSpec) -> list[str]:
    """How `marl-ros swarm` runs a node: this interpreter, the node's module, --ros-args.
    A spec without a name is not renamed (swarm_agents names the nodes it holds itself)."""
    cmd = [sys.executable, "-m", f"marl_ros.nodes.{spec.executable}", "--ros-args"]
    if spec.name:
        cmd += ["-r", f"__node:={spec.name}"]
    if spec.namespace:
        cmd += ["-r", f"__ns:={spec.namespace}"]
    for key, value in spec.parameters.items():
        cmd += ["-p", f"{key}:={_param_text(value)}"]
    return cmd


def spec_label(spec: NodeSpec) -> str:
    """`agent_node /drone_3`, `sim_node`: how messages name a node."""
    return f"{spec.executable} {spec.namespace}" if spec.namespace else spec.executable


def _log_name(spec: NodeSpec) -> str:
    return (spec.name or spec.executable) + spec.namespace.replace("/", "_")


class StopRequest:
    """A SIGINT/SIGTERM handler that only records the request (the first signal); repeats
    change nothing. The loop that owns the processes checks it and stops them itself."""

    def __init__(self, on_first: Callable[[], None] | None = None) -> None:
        self.signal: int | None = None
        self.on_first = on_first

    def __call__(self, signum: int, frame: object) -> None:
        if self.signal is None:
            self.signal = signum
            if self.on_first is not None:
                self.on_first()

    @property
    def requested(self) -> bool:
        return self.signal is not None


def die_with_parent() -> None:
    """Ask the kernel for SIGTERM (a clean node shutdown, marl_ros/nodes/process.py) when the
    process that started this one dies, however it dies: `marl-ros swarm` killed, `ros2
    launch` killed by SIGTERM (launch handles only SIGINT itself, ros2/launch#666) or
    SIGKILL. Set in the child before exec (covering the node's imports) and again by the
    node itself (covering `ros2 launch` and `ros2 run`). Linux only; elsewhere a no-op."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the process-group teardown still applies
        pass


def fatal_sentence(log: Path) -> str | None:
    """The last FATAL message a node logged (its one sentence on a refused start)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    fatal = [line for line in lines if "[FATAL]" in line]
    if not fatal:
        return None
    return fatal[-1].split("]: ", 1)[-1].strip()


SHM_DIR = Path("/dev/shm")


def dds_zombies(created_since: set[str], shm_dir: Path = SHM_DIR,
                min_age_s: float = 1.0) -> list[Path]:
    """FastDDS shared-memory files in `shm_dir` that are not in `created_since` (a listing
    taken before a graph started) and whose owner is gone. FastDDS's own rule (`fastdds shm
    clean`): a segment `fastdds_<id>` or a port `fastdds_port<n>` has a lock file `<name>_el`
    that its owner holds (flock) while it lives; a lock file nobody holds marks a zombie,
    which is the segment, the lock file and (ports) `sem.<name>_mutex`. A node that exits
    cleanly removes its own; one that was killed, or crashed, leaves them behind.
    Files younger than `min_age_s` are left alone (an owner may be about to lock them)."""
    import fcntl

    try:
        names = set(os.listdir(shm_dir)) - created_since
    except OSError:  # no /dev/shm (not Linux)
        return []
    zombies = []
    for lock_name in sorted(n for n in names if n.startswith("fastdds_") and n.endswith("_el")):
        lock = shm_dir / lock_name
        try:
            if time.time() - lock.stat().st_mtime < min_age_s:
                continue
            with open(lock, "rb") as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises while its owner lives
        except OSError:
            continue
        segment = lock_name[: -len("_el")]
        zombies += [shm_dir / name for name in (segment, lock_name, f"sem.{segment}_mutex")
                    if name in names]
    return zombies


def remove_dds_zombies(created_since: set[str], shm_dir: Path = SHM_DIR) -> int:
    """Remove `dds_zombies(created_since)`; returns how many files went."""
    removed = 0
    for path in dds_zombies(created_since, shm_dir):
        try:
            path.unlink()
            removed += 1
        except OSError:  # gone meanwhile
            pass
    return removed


class NodeProcesses:
    """The node processes of one graph, in one process group of their own, each set to die
    with this process; `stop()` ends them all (SIGINT, then SIGTERM, then SIGKILL) and is
    safe to call on every exit path."""

    def __init__(self, log_dir: Path | None = None, stop_timeout_s: float = 10.0):
        self.log_dir = log_dir
        self.stop_timeout_s = stop_timeout_s
        self.procs: list[tuple[NodeSpec, subprocess.Popen]] = []
        self.pgid: int | None = None
        try:  # what /dev/shm held before any node: stop() cleans up only after this graph
            self.shm_before: set[str] = set(os.listdir(SHM_DIR))
        except OSError:
            self.shm_before = set()
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)

    def log_path(self, spec: NodeSpec) -> Path | None:
        return None if self.log_dir is None else self.log_dir / f"{_log_name(spec)}.log"

    def start(self, spec: NodeSpec, env: dict[str, str] | None = None) -> subprocess.Popen:
        log = self.log_path(spec)
        out = open(log, "w") if log is not None else subprocess.DEVNULL
        try:
            # The first node founds the group (its pid is the group id); the rest join it.
            proc = subprocess.Popen(node_command(spec), stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env,
                                    process_group=0 if self.pgid is None else self.pgid,
                                    preexec_fn=die_with_parent)
        finally:
            if log is not None:
                out.close()
        if self.pgid is None:
            self.pgid = proc.pid
        self.procs.append((spec, proc))
        return proc

    def exited(self) -> list[tuple[NodeSpec, int]]:
        return [(spec, proc.returncode) for spec, proc in self.procs if proc.poll() is not None]

    def _signal_group(self, sig: int) -> None:
        if self.pgid is None:
            return
        try:
            os.killpg(self.pgid, sig)
        except ProcessLookupError:  # every member already gone
            pass

    def _wait_all(self, until: float) -> bool:
        while time.monotonic() < until:
            if all(proc.poll() is not None for _, proc in self.procs):
                return True
            time.sleep(0.05)
        return all(proc.poll() is not None for _, proc in self.procs)

    def ended_hung(self) -> list[tuple[str, Path]]:
        """(label, log) of each node that ended itself in a hung shutdown: exit code 1 and the
        stacks the fault handler writes in its log (marl_ros/nodes/process.py)."""
        hung = []
        for spec, proc in self.procs:
            log = self.log_path(spec)
            if proc.returncode == 1 and log is not None and log.is_file() and re.search(
                    r"^Timeout \(\d", log.read_text(errors="replace"), re.MULTILINE):
                hung.append((spec_label(spec), log))
        return hung

    def stop(self) -> list[str]:
        """Stop every node; returns the labels of those that had to be SIGKILLed. Then
        removes the DDS shared memory this graph's nodes left behind (a killed node's;
        FastDDS would otherwise keep it in /dev/shm until a `fastdds shm clean`)."""
        if not self.procs:
            return []
        killed: list[str] = []
        self._signal_group(signal.SIGINT)
        if not self._wait_all(time.monotonic() + self.stop_timeout_s):
            self._signal_group(signal.SIGTERM)
            if not self._wait_all(time.monotonic() + 3.0):
                killed = [spec_label(s) for s, p in self.procs if p.poll() is None]
                self._signal_group(signal.SIGKILL)
                self._wait_all(time.monotonic() + 5.0)
        if all(proc.poll() is not None for _, proc in self.procs):
            remove_dds_zombies(self.shm_before)
        return killed


class GraphStopped(RuntimeError):
    """run_graph ended early; the message is the one sentence to print."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def run_graph(specs: list[NodeSpec], timeout_s: float, log_dir: Path | None = None) -> int:
    """Start every node, wait for the monitor to finish the mission, then stop the rest.

    Returns the monitor's exit code, or 124 when `timeout_s` passed first. Raises
    GraphStopped when a node refuses its start (exit code 2: its own FATAL sentence), when
    sim_node dies, or when this process gets SIGINT/SIGTERM. Every node is stopped on every
    way out, and each dies with this process even when it is SIGKILLed."""
    nodes = NodeProcesses(log_dir)
    stop = StopRequest()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for spec in specs:
            nodes.start(spec)
            if stop.requested:
                break
        monitor = next(p for s, p in nodes.procs if s.executable == "monitor_node")
        deadline = time.monotonic() + timeout_s
        reported: set[int] = set()
        while monitor.poll() is None and time.monotonic() < deadline:
            if stop.requested:
                name = signal.Signals(stop.signal).name
                raise GraphStopped(f"stopped by {name}; every node was shut down (the monitor "
                                   "writes the report so far).", 128 + stop.signal)
            for spec, proc in nodes.procs:
                code = proc.poll()
                if code is None or proc is monitor or id(proc) in reported:
                    continue
                reported.add(id(proc))
                log = nodes.log_path(spec)
                sentence = fatal_sentence(log) if log is not None else None
                where = f"; see {log}" if log is not None else ""
                if code == 2:
                    raise GraphStopped(f"{spec_label(spec)} refused to start: "
                                       f"{sentence or 'see its log'}{where}", 2)
                if spec.executable == "sim_node":
                    raise GraphStopped(f"sim_node stopped (exit code {code}): "
                                       f"{sentence or 'see its log'}{where}", 1)
                # A lost agent is a fault the swarm tolerates: its drone hovers.
                print(f"marl-ros swarm: {spec_label(spec)} stopped (exit code {code}); its "
                      f"drone hovers, the others fly on{where}", file=sys.stderr)
            time.sleep(0.1)
        code = monitor.poll()
        return 124 if code is None else code
    finally:
        killed = nodes.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for label, log in nodes.ended_hung():
            print(f"marl-ros swarm: {label} hung while shutting down and ended itself; the "
                  f"stacks of where it hung are in {log}", file=sys.stderr)
        if killed:
            print(f"marl-ros swarm: {', '.join(killed)} did not stop on SIGINT or SIGTERM and "
                  "was killed.", file=sys.stderr)
