"""The container files keep their promises without Docker: dependency layers built from the
manifests only (a code change rebuilds a small layer), no build debris in the context, the pins
inside setup.py's ranges, the ROS services sharing the host's network and IPC (FastDDS shared
memory) with runs/ mounted for the caller's uid, and a healthcheck that names the nodes the
swarm really starts."""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
# What a stage may copy before the source: the files that declare or install dependencies,
# and the container's own scripts (none of them imports the package).
MANIFESTS = {"setup.py", "docker/constraints.txt", "docker/requirements.py",
             "scripts/ros-wheels.txt", "scripts/install_torch.py", "docker/entrypoint.sh",
             "docker/healthcheck.py"}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        word, _, rest = pending.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        pending = ""
    return out


def stages(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Each named stage's instructions, those of the stages it is built FROM first; the
    last stage (the default target) also as "<last>"."""
    named: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for word, rest in instructions(path):
        if word == "FROM":
            parts = rest.split()
            current = list(named.get(parts[0], []))
            if len(parts) == 3 and parts[1].upper() == "AS":
                named[parts[2]] = current
            named["<last>"] = current
            continue
        if current is not None:
            current.append((word, rest))
    return named


def copied_sources(rest: str) -> list[str]:
    parts = [p for p in rest.split() if not p.startswith("--")]
    return parts[:-1]


def check_copies_only_manifests(steps: list[tuple[str, str]], all_stages: dict) -> None:
    """Every COPY before the source takes manifests, or the output of a stage that does."""
    for word, rest in steps:
        if word != "COPY":
            continue
        source_stage = re.search(r"--from=(\S+)", rest)
        if source_stage:
            check_copies_only_manifests(all_stages[source_stage[1]], all_stages)
        else:
            assert set(copied_sources(rest)) <= MANIFESTS, f"copied before the dependencies: {rest}"


def module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("target", ["cpu", "cuda", "test"])
def test_dependencies_are_installed_from_the_manifests_before_the_source_is_copied(target):
    all_stages = stages(ROOT / "Dockerfile")
    steps = all_stages[target]
    source_copy = steps.index(("COPY", ". ."))
    check_copies_only_manifests(steps[:source_copy], all_stages)
    installs = [rest for word, rest in steps[:source_copy] if word == "RUN" and "pip install" in rest]
    assert any("requirements/train.txt" in r for r in installs)
    assert ("ARG", 'EXTRAS="train"') in all_stages["requirements"]  # scale: --build-arg
    assert any("requirements.py $(printf -- '--extra %s ' $EXTRAS) --exclude torch" in rest
               for word, rest in all_stages["requirements"] if word == "RUN")
    assert any("install_torch.py" in rest for word, rest in steps[:source_copy] if word == "RUN")
    after = [rest for word, rest in steps[source_copy:] if word == "RUN" and "pip install" in rest]
    # after the source only the package itself (and the test stage's own tools)
    assert after[0].startswith("pip install --no-deps"), after[0]
    if target != "test":
        assert len(after) == 1, after


def test_the_ros_image_builds_the_package_after_its_dependencies():
    all_stages = stages(ROOT / "docker" / "ros.Dockerfile")
    steps = all_stages["<last>"]
    copies = [i for i, (word, rest) in enumerate(steps) if word == "COPY" and rest.startswith(". ")]
    assert len(copies) == 1
    before, after = steps[:copies[0]], steps[copies[0]:]
    assert any("pip install" in rest for word, rest in before if word == "RUN")
    assert not any("pip install" in rest for word, rest in after if word == "RUN")
    assert any("colcon build" in rest for word, rest in after if word == "RUN")
    check_copies_only_manifests(before, all_stages)
    assert ("STOPSIGNAL", "SIGINT") in steps
    assert any(word == "HEALTHCHECK" and "healthcheck.py" in rest for word, rest in steps)


def test_every_image_stops_on_sigint_and_runs_as_a_non_root_user():
    for target, steps in stages(ROOT / "Dockerfile").items():
        if target in ("requirements", "deps"):
            continue
        assert ("STOPSIGNAL", "SIGINT") in steps, target
        users = [rest for word, rest in steps if word == "USER"]
        assert users and users[-1] not in ("root", "0", "0:0"), target


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's context rule, as far as these patterns use it: a pattern matches the path or
    a folder above it; `**/` matches any number of folders; a later `!pattern` re-includes."""
    excluded = False
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        candidates = [pattern]
        if pattern.startswith("**/"):
            candidates += ["*/" * depth + pattern[3:] for depth in range(len(parts))]
        if any(fnmatch.fnmatchcase(prefix, c) and prefix.count("/") == c.count("/")
               for prefix in prefixes for c in candidates):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_host_debris_out_and_what_the_images_need_in():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for debris in [".venv/bin/python", "runs/demo/demo.json", "build/lib/marl_ros/cli.py",
                   "marl_ros.egg-info/PKG-INFO", ".git/HEAD", "sim/__pycache__/obs.cpython-311.pyc",
                   "install/setup.bash", "log/latest", ".pytest_cache/v/cache/nodeids"]:
        assert dockerignore_excludes(patterns, debris), f"{debris} would enter the image"
    zoo = next(p for p in sorted((ROOT / "policies" / "zoo").glob("*/*")) if p.is_file())
    for needed in ["setup.py", "setup.cfg", "package.xml", "resource/marl_ros",
                   "launch/swarm.launch.py", "docker/entrypoint.sh", "scripts/ros-wheels.txt",
                   "tests/test_obs.py", "ruff.toml", zoo.relative_to(ROOT).as_posix()]:
        assert (ROOT / needed).exists(), needed
        assert not dockerignore_excludes(patterns, needed), f"{needed} is kept out of the image"


def test_constraints_pin_every_requirement_inside_setup_py_ranges():
    from packaging.requirements import Requirement

    requirements = module(ROOT / "docker" / "requirements.py")
    source = (ROOT / "setup.py").read_text()
    pins = {}
    for line in (ROOT / "docker" / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            pins[req.name.lower().replace("_", "-")] = next(iter(req.specifier)).version
    images = requirements.requirements(source, ["train", "scale", "test", "gpu"], ["torch"])
    for text in images:
        req = Requirement(text)
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{name} is installed by the images but not pinned in constraints.txt"
        assert req.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {text}"


def test_requirements_list_is_setup_pys_without_the_excluded():
    requirements = module(ROOT / "docker" / "requirements.py")
    source = (ROOT / "setup.py").read_text()
    install, extras = requirements.declared(source)
    got = requirements.requirements(source, ["train"], ["torch", "PyYAML"])
    assert got == [r for r in install + extras["train"]
                   if requirements.project_name(r) not in ("torch", "pyyaml")]
    assert requirements.requirements(source, ["test"], [], base=False) == extras["test"]
    with pytest.raises(ValueError, match="no extra"):
        requirements.requirements(source, ["nope"], [])


def compose_services() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]


def test_compose_services_share_host_network_and_ipc_and_write_runs_as_the_caller():
    services = compose_services()
    assert {"train", "sim", "swarm", "listener"} <= set(services)
    targets = set(stages(ROOT / "Dockerfile"))
    for name, service in services.items():
        assert service["network_mode"] == "host", name
        assert service["ipc"] == "host", name  # FastDDS shared memory across containers
        assert service["user"] == "${UID:-1000}:${GID:-1000}", name
        assert "./runs:/work/runs" in service["volumes"], name
        build = service.get("build")
        if build:
            assert (ROOT / build["context"] / build.get("dockerfile", "Dockerfile")).exists()
            assert build.get("target", "cpu") in targets
    for name in ("sim", "swarm", "swarm-pip"):
        assert "healthcheck.py" in " ".join(services[name]["healthcheck"]["test"]), name
    assert services["swarm"]["depends_on"]["sim"]["condition"] == "service_healthy"


def test_healthcheck_expects_the_nodes_swarm_graph_starts():
    from marl_ros.graph import swarm_graph

    health = module(ROOT / "docker" / "healthcheck.py")
    for sim in (True, False):
        graph = swarm_graph(num_drones=3, sim=sim)
        started = {f"{spec.namespace}/{spec.name}" for spec in graph}
        assert set(health.expected_nodes(3, sim=sim)) == started
    # the compose services check the graphs their commands start
    services = compose_services()
    assert "--no-sim" in services["swarm"]["healthcheck"]["test"]
    assert "sim:=false" in services["swarm"]["command"]


def test_healthcheck_decides_from_the_node_list():
    health = module(ROOT / "docker" / "healthcheck.py")
    expected = health.expected_nodes(2)
    graph = [("sim", "/"), ("agent", "/drone_0"), ("agent", "/drone_1"), ("monitor", "/"),
             ("_marl_ros_healthcheck", "/")]
    assert health.missing_nodes(graph, expected) == []
    assert health.missing_nodes(graph[:2] + graph[3:], expected) == ["/drone_1/agent"]
    assert health.missing_nodes([("agent", "/")], ["/drone_0/agent"]) == ["/drone_0/agent"]
    assert health.missing_nodes([], expected) == expected


def test_entrypoint_runs_the_command_with_a_writable_home(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ROS_DISTRO"}
    script = str(ROOT / "docker" / "entrypoint.sh")
    run = subprocess.run(["bash", script, "sh", "-c", 'echo "$HOME $0"', "arg"],
                         env={**env, "HOME": str(tmp_path / "missing"),
                              "MARL_ROS_WS": str(tmp_path)},
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["/tmp", "arg"]
    run = subprocess.run(["bash", script, "sh", "-c", "exit 3"], env={**env, "MARL_ROS_WS": str(tmp_path)},
                         timeout=30)
    assert run.returncode == 3  # exec: the command's own status reaches docker


def test_the_dockerfile_pins_its_base_images():
    for path in (ROOT / "Dockerfile", ROOT / "docker" / "ros.Dockerfile"):
        text = path.read_text()
        for base in re.findall(r"^ARG (PYTHON_IMAGE|ROS_DISTRO)=(\S+)", text, re.M):
            assert base[1] and "latest" not in base[1], base
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in (ROOT / "Dockerfile").read_text()
