"""Deployment that fails safe: every node process ends cleanly on every shutdown path,
`marl-ros swarm` refuses bad input before any process starts, stops at once when a node
refuses its start, and never leaves a process or a shared-memory segment behind, however
it is stopped; the launch file ends the launch with the mission.

Node processes run on this file's own ROS_DOMAIN_ID; every process a test starts carries a
marker in its environment, so the test can find any that outlived it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
import types
import uuid
from pathlib import Path

import pytest
from ros_support import ROOT, Probe, domain_id, node_env, ros_domain, skip_module_without_ros

ROS_IMPORT_FAILURES = skip_module_without_ros()

from marl_ros.graph import (  # noqa: E402
    GraphStopped,
    NodeProcesses,
    NodeSpec,
    node_command,
    run_graph,
    swarm_graph,
)
from marl_ros.runtime import SHIPPED_BUNDLE, BundleError  # noqa: E402

pytestmark = pytest.mark.ros
DOMAIN_ID = domain_id(25)  # tests/test_ros.py: offset 0, tests/test_bridges.py: 50
MARKER = "MARL_ROS_TEST_RUN"


@pytest.fixture(scope="module", autouse=True)
def ros_domain_id():
    with ros_domain(DOMAIN_ID, ROS_IMPORT_FAILURES) as domain:
        yield domain


@pytest.fixture
def marker(monkeypatch):
    """A value of MARL_ROS_TEST_RUN that this test's processes (and their children) carry."""
    value = uuid.uuid4().hex
    monkeypatch.setenv(MARKER, value)
    return value


@pytest.fixture
def probe():
    p = Probe(DOMAIN_ID, "deployment_probe")
    yield p
    p.close()


@pytest.fixture(scope="module")
def per_agent_bundle(tmp_path_factory) -> Path:
    """A 4-drone coverage bundle with one model per agent (separate parameters)."""
    import torch

    import sim
    from policies.export import export_bundle
    from policies.normalization import ObservationNormalizer
    from policies.policy import TrainedPolicy, build_actors

    torch.manual_seed(0)
    venv = sim.make_vec_env("coverage", 1)
    n = venv.num_agents
    network = {"hidden_sizes": [32], "activation": "tanh", "recurrent": False, "gru_size": 16,
               "init_log_std": -0.5}
    actors = build_actors([venv.observation_space] * n, [venv.action_space] * n, False, 0, network)
    policy = TrainedPolicy(venv.agents, [venv.observation_space] * n, [venv.action_space] * n,
                           actors, ObservationNormalizer((venv.observation_size,)), False, 0,
                           network, {"algorithm": "happo", "seed": 0, "global_step": 0,
                                     "env_config": venv.cfg.to_dict()})
    venv.close()
    return export_bundle(policy, tmp_path_factory.mktemp("bundle") / "per_agent")


def processes_with_marker(value: str) -> list[str]:
    """'pid cmdline' of every live process whose environment carries the marker."""
    found = []
    needle = f"{MARKER}={value}".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            if needle in environ.split(b"\0"):
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append(f"{pid} {cmd.strip()}")
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def orphaned_shm(before: set[str]) -> list[str]:
    """Shared-memory segments created since `before` that no live process maps (FastDDS
    removes its segments when a participant is destroyed cleanly)."""
    mapped = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
                if "/dev/shm/" in line:
                    mapped.add(line.split("/dev/shm/", 1)[1].split(" ")[0])
        except OSError:
            continue
    return sorted(n for n in set(os.listdir("/dev/shm")) - before if n not in mapped)


def wait_for(condition, timeout: float, period: float = 0.2) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(period)
    return condition()


# ------------------------------------------------------------------------------------------------
# Every node ends cleanly on a first and on repeated SIGINT or SIGTERM
# ------------------------------------------------------------------------------------------------
NODES = {  # executable -> (extra parameters, a node it creates: (name, namespace))
    "agent_node": ([], ("agent", "/")),
    "sim_node": (["-p", "num_drones:=2"], ("sim", "/")),
    "monitor_node": (["-p", "num_drones:=2"], ("monitor", "/")),
    "swarm_agents": (["-p", "num_drones:=2", "-p", "namespace_prefix:=drone_"],
                     ("agent", "/drone_1")),
}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("executable", list(NODES))
def test_node_exits_cleanly_on_repeated_signals(executable, sig, probe, tmp_path):
    params, created = NODES[executable]
    log = tmp_path / "node.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", f"marl_ros.nodes.{executable}",
                                 "--ros-args", *params], stdout=out, stderr=subprocess.STDOUT,
                                env=node_env(DOMAIN_ID), cwd=ROOT)
    try:
        assert probe.spin_until(lambda: created in probe.node.get_node_names_and_namespaces(),
                                timeout=60), f"{executable} did not come up:\n{log.read_text()}"
        # As `ros2 launch` does it: a signal to the group, the launch's own, then more while
        # the node is tearing down and while the interpreter finalises.
        for _ in range(4):
            proc.send_signal(sig)
            time.sleep(0.25)
        code = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    text = log.read_text()
    assert code == 0, f"{executable} exited with {code} on repeated {sig.name}:\n{text}"
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text


HUNG_SHUTDOWN = """
import os, signal, sys, time
from marl_ros.nodes.process import install_stop_handlers

stop = install_stop_handlers(grace_s=float(sys.argv[1]))
os.kill(os.getpid(), signal.SIGINT)
while not stop.requested:
    time.sleep(0.01)

def destroy_nodes_that_hangs(seconds):
    time.sleep(seconds)

destroy_nodes_that_hangs(float(sys.argv[2]))
"""


def test_a_node_whose_shutdown_hangs_ends_itself_and_says_where(tmp_path):
    """Past STOP_GRACE_S after its first stop signal a node process ends itself with exit
    code 1 and every thread's stack on stderr; one that stops within it is left alone."""
    hung = subprocess.run([sys.executable, "-c", HUNG_SHUTDOWN, "1.0", "60"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30, env=node_env(DOMAIN_ID))
    assert hung.returncode == 1, hung.stderr
    assert hung.stderr.startswith("Timeout (0:00:01)!"), hung.stderr
    assert "in destroy_nodes_that_hangs" in hung.stderr, hung.stderr
    slow = subprocess.run([sys.executable, "-c", HUNG_SHUTDOWN, "3.0", "0.5"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30, env=node_env(DOMAIN_ID))
    assert (slow.returncode, slow.stderr) == (0, "")

    # `marl-ros swarm` names such a node and its log (NodeProcesses.ended_hung).
    nodes = NodeProcesses(tmp_path)
    spec = NodeSpec("agent_node", "agent", "/drone_2")
    log = nodes.log_path(spec)
    log.write_text(hung.stderr)
    nodes.procs.append((spec, types.SimpleNamespace(returncode=1)))
    assert nodes.ended_hung() == [("agent_node /drone_2", log)]
    nodes.procs[0] = (spec, types.SimpleNamespace(returncode=0))  # stopped in time
    assert nodes.ended_hung() == []


def test_a_node_stops_cleanly_when_whatever_started_it_dies(probe, tmp_path, marker):
    """As when `ros2 launch` is killed by SIGTERM (it handles only SIGINT itself) or SIGKILL:
    the node gets SIGTERM from the kernel and shuts down instead of flying on, orphaned."""
    log = tmp_path / "node.log"
    starter = ("import subprocess, sys, time; subprocess.Popen(sys.argv[1:]); time.sleep(600)")
    with open(log, "w") as out:
        launcher = subprocess.Popen([sys.executable, "-c", starter, sys.executable, "-m",
                                     "marl_ros.nodes.agent_node"], stdout=out,
                                    stderr=subprocess.STDOUT, env=node_env(DOMAIN_ID), cwd=ROOT)
    try:
        assert probe.spin_until(lambda: ("agent", "/") in probe.node.get_node_names_and_namespaces(),
                                timeout=60), log.read_text()
    finally:
        launcher.kill()
        launcher.wait(timeout=10)
    assert wait_for(lambda: len(processes_with_marker(marker)) == 0, timeout=20), (
        processes_with_marker(marker))
    assert "Traceback" not in log.read_text()


def test_one_process_host_names_its_agents_like_separate_agent_nodes(probe, tmp_path):
    spec = next(s for s in swarm_graph(num_drones=2, sim=False, one_process=True)
                if s.executable == "swarm_agents")
    cmd = node_command(spec)
    assert not any(arg.startswith("__node:=") for arg in cmd)  # it would rename every agent
    with open(tmp_path / "host.log", "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                env=node_env(DOMAIN_ID), cwd=ROOT)
    try:
        wanted = {("agent", "/drone_0"), ("agent", "/drone_1")}
        assert probe.spin_until(
            lambda: wanted <= set(probe.node.get_node_names_and_namespaces()), timeout=60), (
            probe.node.get_node_names_and_namespaces(), (tmp_path / "host.log").read_text())
        names = probe.node.get_node_names_and_namespaces()
        assert not [n for n in names if n[0] == "swarm_agents" and n[1] != "/"], names
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0


# ------------------------------------------------------------------------------------------------
# Bad input: one sentence before anything starts
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, sentence", [
    ({"num_drones": 1000}, "num_drones=1000 is more than the field can hold at 0.60 m spacing "
                           "(at most 64)"),
    ({"num_drones": 0}, "num_drones must be a whole number >= 1 (got 0)"),
    ({"rate": -1.0}, "rate must be 0 (the bundle's policy rate) or a control rate in Hz up to "
                     "100 (got -1.0)"),
    ({"real_time_factor": 0.0}, "real_time_factor must be between 0.05 and 50"),
    ({"mission_steps": -1}, "mission_steps must be 0 (the scenario's episode length)"),
    ({"neighbour_drop": 1.5}, "neighbour_drop is a probability and must lie in [0, 1]"),
    ({"namespace_prefix": "1drone"}, "namespace_prefix '1drone' is not a valid start of a ROS "
                                     "name"),
])
def test_swarm_graph_refuses_bad_arguments_with_one_sentence(kwargs, sentence):
    with pytest.raises(ValueError) as err:
        swarm_graph(**kwargs)
    assert sentence in str(err.value) and "\n" not in str(err.value)


def test_a_bundle_with_one_model_per_drone_flies_only_its_swarm_size(per_agent_bundle):
    assert len(swarm_graph(num_drones=4, policy=str(per_agent_bundle))) == 6
    for n in (2, 8):
        with pytest.raises(BundleError, match=f"holds one policy per drone for 4 drones "
                                              rf"\(trained by happo\), so it flies exactly 4 "
                                              f"drones, not {n}"):
            swarm_graph(num_drones=n, policy=str(per_agent_bundle))
    # The shipped bundle (one shared model, no agent id) flies any swarm the field holds.
    assert len(swarm_graph(num_drones=9, policy=str(SHIPPED_BUNDLE))) == 11


@pytest.mark.parametrize("flags, sentence", [
    (["--real-time-factor", "0"], "--real-time-factor must be between 0.05 and 50"),
    (["--rate", "-1"], "--rate must be 0 (the bundle's policy rate)"),
    (["--mission-steps", "-1"], "--mission-steps must be 0"),
    (["--num-drones", "1000"], "--num-drones 1000 is more than the field can hold"),
    (["--num-drones", "8", "PER_AGENT"], "so it flies exactly 4 drones, not 8"),
    (["--timeout", "3"], "the mission takes 12.5 wall seconds (100 policy ticks at 8 Hz, 1x "
                         "real time) but --timeout is 3 s"),
])
def test_swarm_command_refuses_bad_input_before_starting_a_process(flags, sentence, tmp_path,
                                                                   per_agent_bundle, marker):
    if "PER_AGENT" in flags:
        flags = [f for f in flags if f != "PER_AGENT"] + ["--policy", str(per_agent_bundle)]
    out = tmp_path / "swarm"
    result = subprocess.run([sys.executable, "-m", "marl_ros.cli", "swarm", "--report-dir",
                             str(out), *flags], capture_output=True, text=True,
                            env=node_env(DOMAIN_ID), cwd=ROOT, timeout=120)
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("marl-ros swarm: "), result.stderr
    assert sentence in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not (out / "logs").exists(), "no node may start"
    assert processes_with_marker(marker) == []


def test_swarm_command_flies_large_swarms_in_one_process_beyond_the_machine(monkeypatch, capsys,
                                                                           tmp_path):
    from marl_ros import cli, graph

    started = []
    monkeypatch.setattr(graph, "agent_process_capacity", lambda: (3, "a test machine"))
    monkeypatch.setattr(graph, "run_graph", lambda specs, **_: started.append(specs) or 0)
    for n, host in ((3, "agent_node"), (5, "swarm_agents")):
        cli.main(["swarm", "--num-drones", str(n), "--report-dir", str(tmp_path)])
        executables = [s.executable for s in started[-1]]
        assert executables.count(host) == (n if host == "agent_node" else 1), executables
    printed = capsys.readouterr().out
    assert ("5 drones are more agent processes than this machine holds (3: a test machine); "
            "flying them in one swarm_agents process") in printed
    assert "3 drones are more" not in printed


# ------------------------------------------------------------------------------------------------
# A node that refuses its start stops the whole graph at once, with that node's sentence
# ------------------------------------------------------------------------------------------------
def test_graph_stops_at_once_when_a_node_refuses_its_start(tmp_path, marker):
    specs = swarm_graph(num_drones=2, real_time_factor=2.0, report_dir=str(tmp_path / "r"))
    bad = next(i for i, s in enumerate(specs) if s.namespace == "/drone_1")
    specs[bad] = dataclasses.replace(specs[bad], parameters={**specs[bad].parameters,
                                                             "comm_radius": 3.0})
    start = time.monotonic()
    with pytest.raises(GraphStopped) as stopped:
        run_graph(specs, timeout_s=300, log_dir=tmp_path / "logs")
    assert time.monotonic() - start < 60, "it must not wait for the mission or the timeout"
    assert stopped.value.exit_code == 2
    message = str(stopped.value)
    assert message.startswith("agent_node /drone_1 refused to start: the bundle was trained with "
                              "comm_radius=1.5 but this node is configured with comm_radius=3.0")
    assert processes_with_marker(marker) == []


# ------------------------------------------------------------------------------------------------
# No swarm command, killed or not, leaves a process or a shared-memory segment behind
# ------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT],
                         ids=["SIGKILL", "SIGTERM", "SIGINT"])
def test_killing_the_swarm_command_mid_mission_leaves_nothing_behind(sig, tmp_path, marker):
    shm_before = set(os.listdir("/dev/shm"))
    out = tmp_path / "swarm"
    cli = subprocess.Popen([sys.executable, "-m", "marl_ros.cli", "swarm", "--report-dir",
                            str(out), "--mission-steps", "100000", "--timeout", "100000"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=node_env(DOMAIN_ID), cwd=ROOT, start_new_session=True)
    try:
        sim_log = out / "logs" / "sim.log"
        assert wait_for(lambda: sim_log.is_file() and "starting simulated time"
                        in sim_log.read_text(), timeout=90), "the mission did not start"
        time.sleep(2.0)  # mid-mission: drones flying, DDS traffic on every topic
        nodes = processes_with_marker(marker)
        assert len(nodes) == 1 + 6, nodes  # the command, sim, 4 agents, monitor
        cli.send_signal(sig)
        stdout, stderr = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)
            cli.communicate(timeout=10)
    assert wait_for(lambda: not processes_with_marker(marker), timeout=30), (
        f"left behind after {sig.name}: {processes_with_marker(marker)}")
    assert orphaned_shm(shm_before) == [], "shared-memory segments left behind"
    logs = {p.name: p.read_text() for p in (out / "logs").iterdir()}
    assert not [name for name, text in logs.items() if "Traceback" in text], logs
    if sig == signal.SIGKILL:
        assert cli.returncode == -signal.SIGKILL
    else:
        assert cli.returncode == 128 + sig, (stdout, stderr)
        *before, last = stderr.strip().splitlines()
        assert last == (f"marl-ros swarm: stopped by {sig.name}; every node was shut down (the "
                        "monitor writes the report so far).")
        # The one thing allowed before it: a node whose shutdown hung (rarely, in the
        # middleware) ended itself after STOP_GRACE_S and the command says where it hung.
        assert all(re.fullmatch(r"marl-ros swarm: \S+( /drone_\d)? hung while shutting down "
                                r"and ended itself; the stacks of where it hung are in \S+",
                                line) for line in before), stderr
    # However it ended, the monitor shut down cleanly and wrote the mission so far.
    report = json.loads((out / "report.json").read_text())
    assert not report["complete"] and report["steps"] > 0


LOCK_HOLDER = """
import fcntl, sys, time
f = open(sys.argv[1], "ab")
fcntl.flock(f, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(600)
"""


def test_the_graph_removes_the_dds_shared_memory_its_dead_nodes_left_and_nothing_else(tmp_path):
    """FastDDS's rule: a segment or port lives while its owner holds `<name>_el` locked. A
    node killed by the graph's last resort (SIGKILL) or a crash leaves its files; stop()
    removes exactly those among the files created since the graph started."""
    from marl_ros.graph import remove_dds_zombies

    def files(*names):
        for name in names:
            (tmp_path / name).write_bytes(b"")

    files("fastdds_0000000000000000", "fastdds_0000000000000000_el")  # older than the graph
    before = set(os.listdir(tmp_path))
    files("fastdds_port7011", "fastdds_port7011_el", "sem.fastdds_port7011_mutex",  # killed
          "fastdds_1111111111111111", "fastdds_1111111111111111_el",  # alive
          "fastdds_2222222222222222", "fastdds_2222222222222222_el",  # just created
          "unrelated")
    holders = {name: subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(tmp_path / name)],
                                      stdout=subprocess.PIPE, text=True)
               for name in ("fastdds_port7011_el", "fastdds_1111111111111111_el")}
    try:
        for proc in holders.values():
            assert proc.stdout.readline().strip() == "locked"
        holders["fastdds_port7011_el"].kill()
        holders["fastdds_port7011_el"].wait(10)
        old = time.time() - 60
        for name in os.listdir(tmp_path):
            if "2222" not in name:
                os.utime(tmp_path / name, (old, old))
        assert remove_dds_zombies(before, tmp_path) == 3
    finally:
        for proc in holders.values():
            proc.kill()
            proc.wait(10)
    assert sorted(os.listdir(tmp_path)) == [
        "fastdds_0000000000000000", "fastdds_0000000000000000_el",
        "fastdds_1111111111111111", "fastdds_1111111111111111_el",
        "fastdds_2222222222222222", "fastdds_2222222222222222_el", "unrelated"]


# ------------------------------------------------------------------------------------------------
# The launch file: the monitor's exit (mission complete) shuts the launch down
# ------------------------------------------------------------------------------------------------
def stand_in_launch_modules() -> dict[str, types.ModuleType]:
    """The parts of the launch / launch_ros API the launch file uses, recording their
    arguments (the real packages are not on PyPI; see test_ros.py for the real check)."""

    def recorder(name):
        def init(self, *args, **kwargs):
            self.args, self.kwargs = args, kwargs
        return type(name, (), {"__init__": init})

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context[self.name]

    modules = {name: types.ModuleType(name) for name in (
        "launch", "launch.actions", "launch.event_handlers", "launch.events",
        "launch.substitutions", "launch_ros", "launch_ros.actions")}
    modules["launch"].LaunchDescription = recorder("LaunchDescription")
    for name in ("DeclareLaunchArgument", "EmitEvent", "OpaqueFunction", "RegisterEventHandler"):
        setattr(modules["launch.actions"], name, recorder(name))
    modules["launch.event_handlers"].OnProcessExit = recorder("OnProcessExit")
    modules["launch.events"].Shutdown = recorder("Shutdown")
    modules["launch.substitutions"].LaunchConfiguration = LaunchConfiguration
    modules["launch_ros.actions"].Node = recorder("Node")
    return modules


def stand_in_launch_description(monkeypatch) -> object:
    """swarm.launch.py's LaunchDescription, built over the recording stand-ins."""
    for name, module in stand_in_launch_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("swarm_launch_standin",
                                                  ROOT / "launch" / "swarm.launch.py")
    launch_file = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launch_file)
    return launch_file.generate_launch_description()


@pytest.mark.parametrize("exit_on_complete", ["true", "false"])
def test_launch_file_shuts_the_launch_down_when_the_monitor_exits(monkeypatch, exit_on_complete):
    from marl_ros.graph import LAUNCH_ARGUMENTS

    description = stand_in_launch_description(monkeypatch)
    declared = {a.args[0]: a.kwargs["default_value"] for a in description.args[0][:-1]}
    assert declared == {k: v for k, (v, _) in LAUNCH_ARGUMENTS.items()}
    assert declared["exit_on_complete"] == "true"  # the launch ends with the mission by default

    context = {**declared, "exit_on_complete": exit_on_complete, "one_process": "true",
               "num_drones": "3"}
    actions = description.args[0][-1].kwargs["function"](context)
    nodes = [a for a in actions if type(a).__name__ == "Node"]
    assert [n.kwargs["executable"] for n in nodes] == ["sim_node", "swarm_agents", "monitor_node"]
    assert nodes[1].kwargs["name"] is None  # no remap renaming every agent of the process
    handlers = [a for a in actions if type(a).__name__ == "RegisterEventHandler"]
    if exit_on_complete == "false":
        assert handlers == []
        return
    (handler,) = handlers
    on_exit = handler.args[0]
    assert on_exit.kwargs["target_action"] is nodes[2]  # the monitor
    (emit,) = on_exit.kwargs["on_exit"]
    assert type(emit.kwargs["event"]).__name__ == "Shutdown"
    assert nodes[2].kwargs["parameters"][0]["exit_on_complete"] is True
