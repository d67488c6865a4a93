# Simulator container for training and evaluation (no ROS 2 distribution inside; the ROS 2
# client libraries come from PyPI like on a developer machine).
#   docker build -t marl_ros .
#   docker run --rm -v "$PWD/runs:/work/runs" marl_ros marl-ros demo --out runs/demo
# Python 3.11: pybullet 3.2.7 ships a binary wheel for it (3.12 compiles from source, ~8 min).
FROM python:3.11-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
WORKDIR /work

# torch first and pinned: anything depending on torch then finds it satisfied. For a CPU-only
# image, point pip at a CPU wheel index for this line (the default build brings CUDA).
RUN pip install "torch==2.13.0"
# The ROS 2 packages of package.xml that PyPI has (the same list as scripts/dev.sh).
RUN pip install ros-rclpy ros-rmw-fastrtps-cpp ros-rcl-interfaces ros-builtin-interfaces \
    ros-rosgraph-msgs ros-std-msgs ros-geometry-msgs ros-nav-msgs ros-visualization-msgs \
    ros-ament-index-python

COPY . .
RUN pip install ".[train]"

# `docker stop`: SIGINT, which `marl-ros swarm`, every node and `ros2 launch` stop cleanly on
# (`ros2 launch` dies of SIGTERM without stopping its nodes, ros2/launch#666).
STOPSIGNAL SIGINT
CMD ["marl-ros", "--help"]
