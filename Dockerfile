# marl_ros images: one Dockerfile, three targets. Build with BuildKit (Docker >= 23 does by
# default; older: DOCKER_BUILDKIT=1), which builds only the stages a target needs; the legacy
# builder builds every stage before the one asked for: with it, always pass --target.
#   docker build -t marl_ros:cpu .                    # default target: CPU torch, ~2 GB
#   docker build --target test -t marl_ros:test . && docker run --rm marl_ros:test
#   docker build --target cuda -t marl_ros:cuda .     # CUDA 13.0 torch + onnxruntime-gpu:
#       needs an NVIDIA driver >= 580 and the NVIDIA Container Toolkit (docker run --gpus all)
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD/runs:/work/runs" marl_ros:cpu \
#       marl-ros demo --out runs/demo                 # outputs belong to the caller
# The ROS 2 image (colcon, ros2 launch, ros2 topic) is docker/ros.Dockerfile; compose.yaml runs
# them together. README "Containers".
# Python 3.11: pybullet 3.2.7 ships a binary wheel for it (3.12 compiles it from source, ~8 min).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- requirements: setup.py's requirement lists, generated apart so that a change to setup.py
# that leaves them as they are (entry points, data files, other extras) keeps the deps layers ----
FROM ${PYTHON_IMAGE} AS requirements
# setup.py's extras the images install beside the package: train (torch and its tools) always;
# --build-arg EXTRAS="train scale" adds Ray and rliable (rollout workers, `marl-ros sweep`;
# about 0.4 GB more)
ARG EXTRAS="train"
WORKDIR /src
COPY setup.py ./
COPY docker/requirements.py docker/
RUN mkdir /requirements \
 && python docker/requirements.py $(printf -- '--extra %s ' $EXTRAS) --exclude torch \
      > /requirements/train.txt \
 && python docker/requirements.py --no-base --extra test > /requirements/test.txt

# ---- deps: everything but torch and the source ----
FROM ${PYTHON_IMAGE} AS deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 MPLBACKEND=Agg \
    HOME=/home/marl
# Any uid may run the images (`--user "$(id -u):$(id -g)"` makes files written to mounted
# folders the caller's): HOME and /work are world-writable with the sticky bit, like /tmp.
RUN useradd --uid 1000 --user-group --create-home --home-dir /home/marl --shell /bin/bash marl \
 && chmod 1777 /home/marl && mkdir -p /work && chmod 1777 /work
WORKDIR /opt/marl_ros
# Only what names the dependencies: a change to the code keeps every layer up to `COPY . .`.
COPY docker/constraints.txt docker/
COPY scripts/ros-wheels.txt scripts/
COPY --from=requirements /requirements/ /opt/requirements/
# The ROS 2 client libraries as PyPI wheels (`marl-ros swarm`; no ros2 CLI, no launch: that is
# the ROS image), then setup.py's requirements with the train extra, pinned by constraints.txt.
RUN pip install -c docker/constraints.txt -r scripts/ros-wheels.txt \
 && pip install -c docker/constraints.txt -r /opt/requirements/train.txt
COPY docker/entrypoint.sh /usr/local/bin/marl-ros-entrypoint
COPY docker/healthcheck.py /usr/local/lib/marl_ros/healthcheck.py
ENTRYPOINT ["marl-ros-entrypoint"]
# `docker stop`: SIGINT, which `marl-ros swarm`, every node and `ros2 launch` stop cleanly on
# (`ros2 launch` dies of SIGTERM without stopping its nodes, ros2/launch#666).
STOPSIGNAL SIGINT

# ---- cpu (default): torch's CPU build, the package ----
FROM deps AS cpu
# A wheel index holding torch 2.13.0+cpu; empty: PyTorch's CPU index (scripts/install_torch.py).
ARG MARL_ROS_TORCH_INDEX=
COPY scripts/install_torch.py scripts/
RUN MARL_ROS_TORCH=cpu python scripts/install_torch.py
COPY . .
# A wheel build (--use-pep517): the console scripts land in bin/ (setup.cfg's install_scripts,
# lib/marl_ros for colcon, only applies to a legacy `setup.py install`).
RUN pip install --no-deps --use-pep517 . && rm -rf build ./*.egg-info
WORKDIR /work
USER marl
CMD ["marl-ros", "--help"]

# ---- test: the suite against the cpu image (the CMD runs it; building runs nothing) ----
FROM cpu AS test
USER root
WORKDIR /opt/marl_ros
RUN pip install -c docker/constraints.txt -r /opt/requirements/test.txt \
 && chmod -R a+rwX /opt/marl_ros
# ROS 2 is installed: a ROS install that does not import fails tests/test_ros.py (as in dev.sh).
ENV MARL_ROS_REQUIRE_ROS=1 RUFF_CACHE_DIR=/tmp/ruff-cache PYTEST_ADDOPTS="-p no:cacheprovider"
USER marl
CMD ["sh", "-c", "ruff check . && exec pytest -q -m 'not slow'"]

# ---- cuda: torch's CUDA 13.0 build from PyPI and the CUDA execution provider of the runtime ----
FROM deps AS cuda
ARG MARL_ROS_TORCH_INDEX=
COPY scripts/install_torch.py scripts/
# onnxruntime and onnxruntime-gpu hold the same module: one replaces the other. Its CUDA 13
# libraries are the nvidia-* wheels torch brings (the cuda/cudnn extras resolve to them).
RUN MARL_ROS_TORCH=cuda python scripts/install_torch.py \
 && pip uninstall -y onnxruntime \
 && pip install -c docker/constraints.txt "onnxruntime-gpu[cuda,cudnn]"
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
COPY . .
RUN pip install --no-deps --use-pep517 . && rm -rf build ./*.egg-info
WORKDIR /work
USER marl
CMD ["marl-ros", "--help"]

# ---- the default target (the last stage): the cpu image ----
FROM cpu
