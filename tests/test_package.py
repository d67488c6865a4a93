"""The ROS package manifest matches the code: every ROS package the nodes, bridges and launch
file import is an exec_depend (rosdep installs nothing else on a robot), and nothing is
listed that no code imports."""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROS_PACKAGE_SUFFIXES = ("_msgs", "_interfaces")
ROS_PACKAGES = {"rclpy", "launch", "launch_ros", "ament_index_python"}
OPTIONAL = {"px4_msgs"}  # px4_relay says what to build when it is missing


def imported_ros_packages() -> set[str]:
    found = set()
    for path in [*ROOT.glob("marl_ros/**/*.py"), *ROOT.glob("launch/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            for name in names:
                top = name.split(".")[0]
                if top in ROS_PACKAGES or top.endswith(ROS_PACKAGE_SUFFIXES):
                    found.add(top)
    return found


def test_package_xml_exec_depends_are_exactly_the_ros_packages_the_code_imports():
    manifest = ET.parse(ROOT / "package.xml").getroot()
    depends = {e.text for e in manifest.iter("exec_depend") if not e.text.startswith("python3-")}
    imported = imported_ros_packages() - OPTIONAL
    assert {"rclpy", "rosgraph_msgs", "tf2_msgs", "launch_ros"} <= imported  # the scan works
    assert imported - depends == set(), "imported but not in package.xml"
    assert depends - imported == set(), "in package.xml but imported nowhere"


def test_setup_installs_every_node_executable_and_the_launch_file():
    setup = (ROOT / "setup.py").read_text()
    for module in sorted((ROOT / "marl_ros" / "nodes").glob("*.py")):
        source = module.read_text()
        if "\ndef main(" in source:
            assert f"{module.stem} = marl_ros.nodes.{module.stem}:main" in setup, module.stem
    assert '("share/" + package_name + "/launch", glob("launch/*.launch.py"))' in setup


ROS_WHEELS = "scripts/ros-wheels.txt"


def listed_ros_wheels() -> dict[str, str]:
    """name -> pinned version of every wheel in scripts/ros-wheels.txt."""
    import re

    wheels = {}
    for line in (ROOT / ROS_WHEELS).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            match = re.fullmatch(r"(ros-[a-z0-9-]+)==([0-9][0-9.]*)", line)
            assert match, f"{ROS_WHEELS}: {line!r} is not a pinned ros-* wheel (name==version)"
            wheels[match[1]] = match[2]
    return wheels


def test_dev_sh_and_the_dockerfile_install_the_ros_wheels_package_xml_asks_for_from_one_list():
    import re

    for user in ("scripts/dev.sh", "Dockerfile"):
        text = (ROOT / user).read_text()
        assert f"-r {ROS_WHEELS}" in text, f"{user} does not install {ROS_WHEELS}"
        # no second list to drift from the first
        assert not re.findall(r"(?<![\w-])ros-(?!wheels\.txt)[a-z0-9-]+", text), f"{user} names ROS wheels itself"
    manifest = ET.parse(ROOT / "package.xml").getroot()
    on_pypi = {e.text for e in manifest.iter("exec_depend")} - {
        "tf2_msgs", "launch", "launch_ros"}  # not on PyPI (no TF from sim_node, no ros2 launch)
    wanted = {"ros-" + name.replace("_", "-") for name in on_pypi if not name.startswith("python3")}
    assert set(listed_ros_wheels()) - {"ros-rmw-fastrtps-cpp"} == wanted
