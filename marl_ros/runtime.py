"""The torch-free policy runtime: load a bundle, check it, run it with onnxruntime.

    policy = OnnxPolicy.load("policies/zoo/coverage_4")       # validates the bundle
    setpoint = policy.act(observation, "drone_0")              # (vx, vy, vz, yaw_rate)

`load` refuses a bundle that does not match what this code would build: files
missing or altered (checksums), ONNX inputs/outputs other than the metadata says,
an observation hash other than `sim/obs.py` computes for the bundle's scenario, or
(given `config`) a node configuration whose observation differs from training.
Each refusal is one `BundleError` sentence naming the field and both values.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import yaml

BUNDLE_FILE = "policy.yaml"
SHIPPED_BUNDLE = Path(__file__).resolve().parent.parent / "policies" / "zoo" / "coverage_4"
SUPPORTED_FORMAT = 1
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
             "tensorrt": "TensorrtExecutionProvider"}


class BundleError(ValueError):
    """A policy bundle that cannot be used; the message says what and how to fix it."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_bundle_metadata(bundle_dir: str | Path) -> dict[str, Any]:
    bundle = Path(bundle_dir)
    meta_path = bundle / BUNDLE_FILE
    if not bundle.is_dir():
        raise BundleError(f"policy bundle {bundle} does not exist; pass the folder written by "
                          "`marl-ros export`.")
    if not meta_path.is_file():
        raise BundleError(f"{meta_path} is missing; a bundle folder holds policy.yaml and its "
                          "ONNX model(s) (re-export it with `marl-ros export`).")
    try:
        meta = yaml.safe_load(meta_path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise BundleError(f"{meta_path} is not valid YAML ({err.__class__.__name__}); "
                          "re-export the bundle.") from None
    if not isinstance(meta, dict):
        raise BundleError(f"{meta_path} does not hold a mapping; re-export the bundle.")
    for key in ("format", "agents", "models", "checksums", "onnx", "observation", "action"):
        if key not in meta:
            raise BundleError(f"{meta_path} has no '{key}' field; re-export the bundle.")
    if meta["format"] != SUPPORTED_FORMAT:
        raise BundleError(f"policy.yaml field format is {meta['format']!r} but this runtime reads "
                          f"{SUPPORTED_FORMAT}; re-export with this version.")
    return meta


def tensorrt_libraries_present() -> bool:
    """Whether TensorRT's runtime library (libnvinfer) is on the library path. onnxruntime-gpu
    lists its TensorRT provider whenever it was built with it; without the library a session
    asking for it only logs errors and falls back, so `auto` asks for it only when it is here."""
    import ctypes.util

    return ctypes.util.find_library("nvinfer") is not None


def cuda_driver_present() -> bool:
    """Whether the NVIDIA driver's libcuda is here (onnxruntime-gpu lists CUDA without one)."""
    import ctypes.util

    return ctypes.util.find_library("cuda") is not None


def preload_cuda_libraries() -> None:
    """Best effort: onnxruntime-gpu 1.21+ loads CUDA and cuDNN from the nvidia-* pip packages
    (those the CUDA build of torch installs), which the runtime needs because it never imports
    torch; a system CUDA on the library path needs nothing. If they are missing, the session
    does not start its CUDA provider: `OnnxPolicy.load` refuses an explicit cuda or tensorrt
    in one sentence, and with auto runs on the CPU (`OnnxPolicy.providers` says which)."""
    import importlib.util

    import onnxruntime as ort

    if hasattr(ort, "preload_dlls") and importlib.util.find_spec("nvidia") is not None:
        try:
            ort.preload_dlls()
        except Exception:  # onnxruntime's own loader errors; OnnxPolicy.load's check reports
            pass


def choose_providers(provider: str = "auto") -> list[str]:
    """onnxruntime execution providers, best first. auto: TensorRT where onnxruntime-gpu has
    it and its libraries are installed, then CUDA where it has that and a driver is present,
    then the CPU; cpu, cuda or tensorrt: that one (TensorRT with CUDA behind it for the
    operators it leaves out), refused in one sentence where this onnxruntime lacks it."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if provider not in ("auto", *PROVIDERS):
        raise BundleError(f"execution provider {provider!r} is unknown; choose auto, cpu, cuda or "
                          "tensorrt.")
    cuda = PROVIDERS["cuda"] in available and cuda_driver_present()
    tensorrt = cuda and PROVIDERS["tensorrt"] in available and tensorrt_libraries_present()
    if provider == "auto":
        return ([PROVIDERS["tensorrt"]] if tensorrt else []) + (
            [PROVIDERS["cuda"]] if cuda else []) + [PROVIDERS["cpu"]]
    if PROVIDERS[provider] not in available:
        raise BundleError(f"execution provider {provider!r} is not available in this onnxruntime "
                          f"(has {', '.join(available)}); install onnxruntime-gpu (pip install "
                          "-e '.[gpu]' after pip uninstall onnxruntime) or use cpu.")
    if provider == "tensorrt":
        if not tensorrt_libraries_present():
            raise BundleError("execution provider 'tensorrt' needs TensorRT's libnvinfer on the "
                              "library path and none was found; install TensorRT (e.g. pip "
                              "install tensorrt and add its libraries to LD_LIBRARY_PATH) or use "
                              "cuda.")
        return [PROVIDERS["tensorrt"], PROVIDERS["cuda"]]
    return [PROVIDERS[provider]]


def _config_mismatch(trained_cfg: Any, node_cfg: Any) -> str | None:
    """The first observation parameter the two configs set differently, as one sentence.
    (A parameter only one side's observation depends on, e.g. `action_mode` with
    `mean_action`, is compared at both sides' values.)"""
    keys = set(trained_cfg.observation_params()) | set(node_cfg.observation_params())
    trained = {k: v for k, v in trained_cfg.to_dict().items() if k in keys}
    node = {k: v for k, v in node_cfg.to_dict().items() if k in keys}
    for key in sorted(keys):
        if trained.get(key) != node.get(key):
            return (f"the bundle was trained with {key}={trained.get(key)!r} but this node is "
                    f"configured with {key}={node.get(key)!r}; set {key} to "
                    f"{trained.get(key)!r} or use a policy trained for {node.get(key)!r}.")
    return None


class OnnxPolicy:
    """A validated bundle with one onnxruntime session per distinct model file."""

    def __init__(self, bundle_dir: Path, meta: dict[str, Any], sessions: dict[str, Any]):
        self.bundle_dir = bundle_dir
        self.meta = meta
        self.agents: list[str] = list(meta["agents"])
        self._sessions = sessions  # model file -> session
        # the execution providers the sessions run on, best first (e.g. CUDA, then CPU)
        self.providers: list[str] = next(iter(sessions.values())).get_providers()
        self.inputs: list[str] = list(meta["onnx"]["inputs"])
        self.outputs: list[str] = list(meta["onnx"]["outputs"])
        rec = meta.get("recurrent")
        self.hidden_size = int(rec["shape"][0]) if rec else 0
        self.discrete = meta["action"]["mode"] == "discrete"
        self.obs_sizes: dict[str, int] = {a: int(s) for a, s in meta["observation"]["sizes"].items()}
        self._hidden: dict[str, np.ndarray] = {}
        # A mixed strategy (the game-theoretic family) is played by sampling its probabilities
        # with this generator; `reseed` gives each node its own stream.
        self.mixed = meta["action"].get("sampling") == "mixed"
        self.rng = np.random.default_rng(0)
        setpoints = meta["action"].get("discrete_actions")
        self._setpoints = (np.array([d["setpoint"] for d in setpoints], np.float32)
                           if setpoints else None)
        self.config = None
        if "scenario" in meta:
            from sim.config import config_from_dict

            self.config = config_from_dict(meta["scenario"])

    @property
    def policy_rate_hz(self) -> float | None:
        return self.meta.get("policy_rate_hz")

    @property
    def provenance(self) -> dict[str, Any]:
        return dict(self.meta.get("provenance") or {})

    # -- loading --------------------------------------------------------------------------------
    @classmethod
    def load(cls, bundle_dir: str | Path, *, config: Any = None, provider: str = "auto",
             threads: int = 1) -> OnnxPolicy:
        """Load and validate a bundle.

        config: the node's scenario configuration (`sim.config.SwarmConfig`); every
        parameter the observation depends on must equal the bundle's. provider: "auto"
        (TensorRT, then CUDA when available, else CPU; see `choose_providers`), "cpu",
        "cuda" or "tensorrt". threads: onnxruntime intra-op
        threads; 1 suits one node per robot.
        """
        import onnxruntime as ort

        bundle = Path(bundle_dir)
        meta = read_bundle_metadata(bundle)
        for agent in meta["agents"]:
            if agent not in meta["models"]:
                raise BundleError(f"policy.yaml lists agent {agent} but no model for it under "
                                  "'models'; re-export the bundle.")
        files = sorted(set(meta["models"].values()))
        for name in files:
            path = bundle / name
            if not path.is_file():
                raise BundleError(f"{path} is missing from the bundle; copy the whole bundle "
                                  "folder or re-export it.")
            expected = meta["checksums"].get(name)
            actual = _sha256(path)
            if expected != actual:
                raise BundleError(f"checksum of {name} is {actual[:12]}... but policy.yaml "
                                  f"says {str(expected)[:12]}...; the file is corrupt or was "
                                  "changed after export (re-export the bundle).")
        cls._check_observation(meta, config)

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        providers = choose_providers(provider)
        if providers[0] != PROVIDERS["cpu"]:
            preload_cuda_libraries()
        sessions = {}
        for name in files:
            try:
                sessions[name] = ort.InferenceSession(str(bundle / name), options,
                                                      providers=providers)
            except Exception as err:  # onnxruntime raises its own exception types
                raise BundleError(f"{bundle / name} is not a loadable ONNX model "
                                  f"({str(err).splitlines()[0][:120]}); re-export the "
                                  "bundle.") from None
            cls._check_io(meta, name, sessions[name])
            active = sessions[name].get_providers()
            if provider not in ("auto", "cpu") and PROVIDERS[provider] not in active:
                raise BundleError(f"onnxruntime could not start the {provider!r} execution "
                                  f"provider here (the session runs on {', '.join(active)}); "
                                  "check the GPU driver and CUDA libraries, or use auto or cpu.")
        return cls(bundle, meta, sessions)

    @staticmethod
    def _check_observation(meta: dict[str, Any], config: Any) -> None:
        if "scenario" not in meta:
            if config is not None:
                raise BundleError("the bundle was not trained in a marl_ros scenario, so it "
                                  "cannot be checked against a node configuration.")
            return
        from sim.config import ConfigError, config_from_dict
        from sim.obs import observation_hash

        try:
            trained = config_from_dict(meta["scenario"])
        except ConfigError as err:
            raise BundleError(f"policy.yaml scenario is invalid: {err}") from None
        built = observation_hash(trained)
        stored = meta["observation"].get("hash")
        if stored != built:
            raise BundleError(f"policy.yaml field observation.hash is {stored!r} but sim/obs.py "
                              f"builds {built!r} for the bundle's scenario; the observation code "
                              "changed since export (retrain and re-export).")
        if config is not None:
            if observation_hash(config) != built:
                problem = _config_mismatch(trained, config)
                raise BundleError(problem or "the node's observation differs from the bundle's.")

    @staticmethod
    def _check_io(meta: dict[str, Any], name: str, session: Any) -> None:
        got_in = [i.name for i in session.get_inputs()]
        got_out = [o.name for o in session.get_outputs()]
        if got_in != meta["onnx"]["inputs"]:
            raise BundleError(f"{name} inputs are {got_in} but policy.yaml onnx.inputs says "
                              f"{meta['onnx']['inputs']}; re-export the bundle.")
        if got_out != meta["onnx"]["outputs"]:
            raise BundleError(f"{name} outputs are {got_out} but policy.yaml onnx.outputs says "
                              f"{meta['onnx']['outputs']}; re-export the bundle.")
        obs_width = session.get_inputs()[0].shape[-1]
        sizes = {meta["observation"]["sizes"][a] for a, f in meta["models"].items() if f == name}
        if isinstance(obs_width, int) and sizes != {obs_width}:
            raise BundleError(f"{name} takes observations of size {obs_width} but policy.yaml "
                              f"observation.sizes says {sorted(sizes)}; re-export the bundle.")

    # -- acting ---------------------------------------------------------------------------------
    def reseed(self, seed: int | None) -> None:
        """Seed the generator that samples a mixed strategy (None: fresh entropy)."""
        self.rng = np.random.default_rng(seed)

    def reset(self, agent_id: str | None = None) -> None:
        """Forget recurrent state (all agents, or one)."""
        if agent_id is None:
            self._hidden.clear()
        else:
            self._hidden.pop(agent_id, None)

    def run(self, obs: np.ndarray, agent_id: str) -> dict[str, np.ndarray]:
        """All graph outputs for a batch of observations (B, D) of one agent id."""
        if agent_id not in self.obs_sizes:
            raise KeyError(f"unknown agent {agent_id!r}; the bundle has {', '.join(self.agents)}.")
        obs = np.asarray(obs, dtype=np.float32)
        if obs.ndim == 1:
            obs = obs[None]
        if obs.shape[-1] != self.obs_sizes[agent_id]:
            raise ValueError(f"observation for {agent_id} has {obs.shape[-1]} values but the "
                             f"policy expects {self.obs_sizes[agent_id]}.")
        feeds = {"obs": obs}
        if self.hidden_size:
            h = self._hidden.get(agent_id)
            if h is None or h.shape[0] != obs.shape[0]:
                h = np.zeros((obs.shape[0], self.hidden_size), dtype=np.float32)
            feeds["h_in"] = h
        session = self._sessions[self.meta["models"][agent_id]]
        values = dict(zip(self.outputs, session.run(None, feeds), strict=True))
        if self.hidden_size:
            self._hidden[agent_id] = values["h_out"]
        return values

    def act(self, obs: np.ndarray, agent_id: str) -> np.ndarray:
        """The velocity setpoint (vx, vy, vz, yaw_rate) for one observation (D,), or the raw
        action for bundles trained outside marl_ros scenarios."""
        values = self.run(obs, agent_id)
        if self.mixed:  # sample the mixed strategy instead of taking its most probable action
            probs = np.clip(values["probabilities"][0].astype(np.float64), 0.0, None)
            index = int(self.rng.choice(probs.size, p=probs / probs.sum()))
            if self._setpoints is not None:
                return self._setpoints[index].copy()
            return np.array([index], dtype=values["action"].dtype)
        key = "setpoint" if "setpoint" in values else "action"
        return values[key][0]


def default_bundle() -> str:
    """The shipped coverage policy: the source tree's, else the installed share/marl_ros one."""
    if SHIPPED_BUNDLE.is_dir():
        return str(SHIPPED_BUNDLE)
    try:
        from ament_index_python.packages import get_package_share_directory

        return str(Path(get_package_share_directory("marl_ros")) / "zoo" / "coverage_4")
    except Exception:  # no ament index: report the source path in the error that follows
        return str(SHIPPED_BUNDLE)


def flies_any_drone_count(meta: dict[str, Any]) -> bool:
    """One model for every agent, told no agent id: any drone can fly it, in a swarm of any
    size (the observation holds the K nearest heard neighbours, not the swarm size)."""
    return len(set(meta["models"].values())) == 1


def check_drone_count(meta: dict[str, Any], num_drones: int, bundle: str | Path) -> None:
    """A bundle with a model per agent (separate parameters, or a shared actor told its agent
    id) flies exactly the swarm it was trained with; a team's bundle (`team`, from a team run)
    holds its team's drones of that swarm."""
    trained = (meta.get("scenario") or {}).get("num_drones") if "team" in meta else len(meta["agents"])
    if flies_any_drone_count(meta) or num_drones == trained:
        return
    algorithm = (meta.get("provenance") or {}).get("algorithm", "its algorithm")
    raise BundleError(f"{bundle} holds one policy per drone for {trained} drones "
                      f"(trained by {algorithm}), so it flies exactly {trained} "
                      f"drones, not {num_drones}; fly {trained} or train a shared "
                      "policy without agent ids (the swarm default: `marl-ros train --algo "
                      "mappo`).")


def load_swarm_config(bundle: str | Path, num_drones: int, comm_radius: float = 0.0):
    """The scenario configuration a node runs with: the bundle's, with this swarm's size and,
    if given, the node's communication radius (which `OnnxPolicy.load` then checks)."""
    from sim.config import config_from_dict

    meta = read_bundle_metadata(bundle)
    if "scenario" not in meta:
        raise BundleError(f"{bundle} was not trained in a marl_ros scenario; the nodes need a "
                          "bundle exported from `marl-ros train`.")
    check_drone_count(meta, num_drones, bundle)
    params = dict(meta["scenario"])
    params["num_drones"] = num_drones
    if comm_radius > 0:
        params["comm_radius"] = comm_radius
    return config_from_dict(params)
