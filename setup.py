"""ament_python package for marl_ros: the Python library and the ROS 2 nodes in one install."""

from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

package_name = "marl_ros"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(include=["marl_ros", "marl_ros.*", "sim", "sim.*", "policies", "policies.*"]),
    package_data={
        "sim": ["assets/*.urdf", "*.yaml"],
        "policies": ["configs/*.yaml", "zoo/*/*"],
    },
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/assets", glob("sim/assets/*.urdf")),
    ] + [  # shipped policy bundles, found by marl_ros.runtime.default_bundle when installed
        ("share/" + package_name + "/zoo/" + Path(bundle).name, glob(bundle + "/*"))
        for bundle in sorted(glob("policies/zoo/*")) if Path(bundle).is_dir()
    ],
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.24",
        "scipy>=1.10",
        "pyyaml>=6",
        "gymnasium>=1.0",
        "pettingzoo>=1.24",
        "pybullet>=3.2.5",
        "matplotlib>=3.7",
        "rich>=13",
        "onnxruntime>=1.17",
    ],
    extras_require={
        # torch is pinned: an open range pulls several GB of CUDA wheels.
        # numba: the fast backend's compiled loops (sim.kernels); without it the numpy paths run
        "train": ["torch==2.13.0", "tensorboard>=2.14", "onnx>=1.16", "onnxscript>=0.1", "imageio>=2.30",
                  "nashpy>=0.0.41", "numba>=0.60"],
        "test": ["pytest>=7", "ruff>=0.5"],
        # beyond one process: Ray rollout workers (trainer.workers) and `marl-ros sweep`, whose
        # summary reports interquartile means with bootstrap confidence intervals (rliable)
        # (rliable 1.2 needs arch < 8, which does not import beside pandas 3)
        "scale": ["ray>=2.9", "rliable>=1.2", "pandas<3"],
        # CUDA (and TensorRT where installed) for the ONNX runtime; scripts/dev.sh swaps it in for
        # onnxruntime on a machine with an NVIDIA GPU (the two packages hold the same module)
        "gpu": ["onnxruntime-gpu>=1.17"],
        # the peer `marl-ros bench sim` compares against when installed (never a test dependency)
        "peers": ["vmas>=1.5"],
    },
    zip_safe=False,  # URDF and model YAML are read as plain files
    maintainer="marl_ros developers",
    maintainer_email="marl-ros@example.org",
    description="Cooperative multi-agent RL for drone swarms: PyBullet training, ONNX export, ROS 2 deployment.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "marl-ros = marl_ros.cli:main",
            # ROS 2 node executables (lib/marl_ros with colcon, for `ros2 run` and launch).
            "agent_node = marl_ros.nodes.agent_node:main",
            "sim_node = marl_ros.nodes.sim_node:main",
            "monitor_node = marl_ros.nodes.monitor_node:main",
            "swarm_agents = marl_ros.nodes.swarm_agents:main",
            # Bridges to real drone stacks.
            "mocap_bridge = marl_ros.nodes.mocap_bridge:main",
            "px4_relay = marl_ros.nodes.px4_relay:main",
        ],
    },
)
