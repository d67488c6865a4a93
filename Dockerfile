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
RUN pip install ros-rclpy ros-rmw-fastrtps-cpp ros-std-msgs ros-geometry-msgs ros-nav-msgs \
    ros-sensor-msgs ros-visualization-msgs ros-lifecycle-msgs ros-ament-index-python

COPY . .
RUN pip install ".[train]"

CMD ["marl-ros", "--help"]
