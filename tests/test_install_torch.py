"""scripts/install_torch.py: the build of torch a fresh setup installs. A machine without an
NVIDIA GPU gets the CPU build (PyTorch's CPU index when it answers, else pip's own indexes
when they hold a CPU build) and never the several-GB CUDA build it cannot use; a GPU
machine gets the CUDA build; the overrides win. pip itself is replaced by a recorder."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "install_torch.py"


@pytest.fixture
def installer(monkeypatch):
    spec = importlib.util.spec_from_file_location("install_torch", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.calls = []
    monkeypatch.setattr(module, "pip_install", lambda *args: module.calls.append(args))
    monkeypatch.setattr(module, "installed_build", lambda: None)
    for name in ("MARL_ROS_TORCH", "MARL_ROS_TORCH_INDEX"):
        monkeypatch.delenv(name, raising=False)
    return module


def machine(monkeypatch, module, gpu: bool, cpu_index: bool, pip_has_cpu: bool) -> None:
    monkeypatch.setattr(module, "has_nvidia_gpu", lambda: gpu)
    monkeypatch.setattr(module, "index_answers", lambda url, seconds=5.0: cpu_index)
    monkeypatch.setattr(module, "plain_resolution_is_cpu", lambda: pip_has_cpu)


def test_setup_pins_the_same_torch_as_setup_py(installer):
    setup = (SCRIPT.parent.parent / "setup.py").read_text()
    assert f'"torch=={installer.TORCH_VERSION}"' in setup


def test_a_cuda_wheel_is_told_by_its_nvidia_requirements(installer):
    assert installer.is_cuda_build(["filelock", "nvidia-cublas==13.0.0; platform_system == 'Linux'"])
    assert not installer.is_cuda_build(["filelock", "sympy>=1.13"])
    assert not installer.is_cuda_build(None)


def test_no_gpu_takes_the_cpu_build_from_pytorchs_cpu_index_when_it_answers(installer,
                                                                              monkeypatch):
    machine(monkeypatch, installer, gpu=False, cpu_index=True, pip_has_cpu=False)
    assert installer.main() == 0
    (args,) = installer.calls
    assert args[:2] == ("--index-url", installer.CPU_INDEX) and args[-1] == "torch==2.13.0+cpu"


def test_no_gpu_and_no_cpu_index_takes_pips_own_cpu_build(installer, monkeypatch, capsys):
    machine(monkeypatch, installer, gpu=False, cpu_index=False, pip_has_cpu=True)
    assert installer.main() == 0
    assert installer.calls == [("torch==2.13.0",)]
    assert "did not answer" in capsys.readouterr().out


def test_no_gpu_and_only_the_cuda_build_reachable_stops_with_the_fix(installer, monkeypatch,
                                                                      capsys):
    machine(monkeypatch, installer, gpu=False, cpu_index=False, pip_has_cpu=False)
    assert installer.main() == 1
    assert installer.calls == []  # nothing downloaded
    out = capsys.readouterr().out
    assert "set MARL_ROS_TORCH_INDEX" in out and "MARL_ROS_TORCH=cuda" in out


def test_a_gpu_takes_the_cuda_build_from_pypi(installer, monkeypatch):
    machine(monkeypatch, installer, gpu=True, cpu_index=True, pip_has_cpu=True)
    assert installer.main() == 0
    assert installer.calls == [("torch==2.13.0",)]


def test_overrides_choose_the_build_and_the_index(installer, monkeypatch):
    machine(monkeypatch, installer, gpu=True, cpu_index=True, pip_has_cpu=False)
    monkeypatch.setenv("MARL_ROS_TORCH", "cpu")
    assert installer.main() == 0
    assert installer.calls[-1][-1] == "torch==2.13.0+cpu"
    monkeypatch.setenv("MARL_ROS_TORCH_INDEX", "http://mirror.example/cpu")
    assert installer.main() == 0
    assert installer.calls[-1] == ("--index-url", "http://mirror.example/cpu", "--extra-index-url",
                                   installer.PYPI, "torch==2.13.0")


def test_an_installed_torch_of_the_wanted_build_is_kept_and_a_bad_choice_refused(
        installer, monkeypatch, capsys):
    machine(monkeypatch, installer, gpu=False, cpu_index=True, pip_has_cpu=True)
    monkeypatch.setattr(installer, "installed_build", lambda: "cpu")
    assert installer.main() == 0 and installer.calls == []
    monkeypatch.setenv("MARL_ROS_TORCH", "gpu")
    assert installer.main() == 2
    assert "MARL_ROS_TORCH='gpu' is not one of auto, cpu, cuda" in capsys.readouterr().out
