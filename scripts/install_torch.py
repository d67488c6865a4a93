"""Install the pinned torch into this Python, the CPU build unless the machine has an NVIDIA GPU.

    python scripts/install_torch.py            # what scripts/dev.sh and the Dockerfile run

Plain PyPI resolves `torch==2.13.0` on Linux x86_64 to the CUDA build (the wheel plus ~15
nvidia-* packages, several GB), which a machine without an NVIDIA GPU cannot use. So:
  - a GPU present (`nvidia-smi -L` lists one)  -> the CUDA build from PyPI;
  - no GPU -> the CPU build: from PyTorch's CPU wheel index when it answers within a few
    seconds, else what plain `pip install torch==2.13.0` would take if that is a CPU build
    (a local wheel cache, macOS, aarch64), else stop with one sentence saying what to set
    instead of downloading the CUDA build.
Overrides (environment):
  MARL_ROS_TORCH=auto|cpu|cuda   the build to install (default auto: by the GPU test above)
  MARL_ROS_TORCH_INDEX=URL       a wheel index to take torch from (a mirror, a local index);
                                 its other dependencies still come from pip's usual indexes
An installed torch of the pinned version and the wanted build is kept as it is.
Standard library only: it runs before anything else is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from importlib import metadata

TORCH_VERSION = "2.13.0"  # setup.py's [train] extra pins the same version
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PYPI = "https://pypi.org/simple"
PROBE_SECONDS = 5.0


def say(text: str) -> None:
    print(f"[torch] {text}", flush=True)


def has_nvidia_gpu() -> bool:
    """True where the NVIDIA driver lists at least one GPU."""
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def is_cuda_build(requires: list[str] | None) -> bool:
    """A torch wheel is the CUDA build when it depends on NVIDIA's runtime packages."""
    return any(r.lower().startswith("nvidia-") for r in requires or [])


def installed_build() -> str | None:
    """'cpu' or 'cuda' for an installed torch of the pinned version, else None."""
    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None
    if version.split("+")[0] != TORCH_VERSION:
        return None
    local = version.partition("+")[2]
    if local.startswith("cu"):
        return "cuda"
    return "cuda" if is_cuda_build(metadata.requires("torch")) else "cpu"


def index_answers(url: str, seconds: float = PROBE_SECONDS) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/torch/", timeout=seconds) as response:
            return response.status == 200
    except OSError:
        return False


def plain_resolution_is_cpu() -> bool:
    """What `pip install torch==<pin>` takes here, asked of pip without installing."""
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.json")
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet",
                               "--ignore-installed", "--no-deps", "--report", report,
                               f"torch=={TORCH_VERSION}"], capture_output=True, text=True)
        if done.returncode != 0:
            say(f"pip could not resolve torch=={TORCH_VERSION}: {done.stderr.strip()[-400:]}")
            return False
        with open(report) as f:
            items = json.load(f)["install"]
    meta = items[0]["metadata"] if items else {}
    return not is_cuda_build(meta.get("requires_dist")) and "+cu" not in meta.get("version", "")


def pip_install(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", *args], check=True)


def main() -> int:
    want = os.environ.get("MARL_ROS_TORCH", "auto").strip().lower() or "auto"
    if want not in ("auto", "cpu", "cuda"):
        say(f"MARL_ROS_TORCH={want!r} is not one of auto, cpu, cuda; set it to one of them or unset it.")
        return 2
    if want == "auto":
        want = "cuda" if has_nvidia_gpu() else "cpu"
        say(f"{'an NVIDIA GPU is present' if want == 'cuda' else 'no NVIDIA GPU'}: the {want} build "
            f"of torch {TORCH_VERSION} (MARL_ROS_TORCH=cpu|cuda chooses)")
    have = installed_build()
    if have == want:
        say(f"torch {TORCH_VERSION} ({have}) is already installed")
        return 0
    pin = f"torch=={TORCH_VERSION}"
    index = os.environ.get("MARL_ROS_TORCH_INDEX", "").strip()
    if index:
        say(f"installing {pin} from MARL_ROS_TORCH_INDEX={index}")
        pip_install("--index-url", index, "--extra-index-url", PYPI, pin)
    elif want == "cuda":
        say(f"installing {pin} from PyPI (the CUDA build, several GB; it needs an NVIDIA driver "
            "recent enough for CUDA 13)")
        pip_install(pin)
    elif index_answers(CPU_INDEX):
        say(f"installing {pin}+cpu from {CPU_INDEX}")
        pip_install("--index-url", CPU_INDEX, "--extra-index-url", PYPI, f"{pin}+cpu")
    elif plain_resolution_is_cpu():
        say(f"{CPU_INDEX} did not answer; pip's own indexes have a CPU build, installing it")
        pip_install(pin)
    else:
        say(f"{CPU_INDEX} did not answer within {PROBE_SECONDS:.0f} s and pip's indexes only have "
            f"the CUDA build of {pin} (several GB, useless without an NVIDIA GPU); set "
            "MARL_ROS_TORCH_INDEX to a wheel index holding the CPU build, or MARL_ROS_TORCH=cuda "
            "to install the CUDA build anyway.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
