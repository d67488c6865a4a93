"""Export a trained policy as a bundle: ONNX actor(s) + policy.yaml.

Everything a robot needs to act lives inside the ONNX graph: observation
normalisation, the actor, and action post-processing (the deterministic action,
and for sim scenarios the velocity setpoint in m/s and rad/s). Recurrent actors
take their hidden state as an input and return the next one. `policy.yaml`
holds the observation layout and hash, the action mapping and limits, the policy
rate, the scenario parameters, the recurrent state, agent ids, checksums and
provenance; `marl_ros.runtime.OnnxPolicy` validates a bundle against it.

Exporter: torch's TorchScript-based `torch.onnx.export(..., dynamo=False)` at
opset 17. With torch 2.13 it exports the MLP and GRU actors exactly (parity
tests: max abs difference ~1e-7), while the torch.export-based exporter could not
produce a valid opset-17 graph for the GRU actor.

The episodic family (IQL, VDN, QMIX, QTRAN, COMA) acts with one recurrent agent network
that also reads its previous action. The exported graph carries that action inside the
recurrent state: h = [GRU state, one-hot of the previous action], zeros at the start of
an episode (no previous action), so robots run both families through the same
`obs, h_in -> action, setpoint, h_out` interface.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import subprocess
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from gymnasium import spaces
from torch import nn

from policies.networks import Actor
from policies.policy import TrainedPolicy

OPSET = 17
BUNDLE_FORMAT = 1
BUNDLE_FILE = "policy.yaml"


class ExportedActor(nn.Module):
    """obs (B, D) [, h_in (B, H)] -> action [, setpoint] [, h_out]: the graph a robot runs."""

    def __init__(self, actor: Actor, mean: np.ndarray, std: np.ndarray, clip: float | None,
                 agent_onehot: np.ndarray | None, action_space: spaces.Space,
                 setpoint_scale: np.ndarray | None, discrete_setpoints: np.ndarray | None):
        super().__init__()
        self.actor = actor
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.clip = clip
        self.register_buffer("onehot", None if agent_onehot is None
                             else torch.as_tensor(agent_onehot, dtype=torch.float32))
        self.discrete = isinstance(action_space, spaces.Discrete)
        if not self.discrete:
            self.register_buffer("low", torch.as_tensor(action_space.low.ravel(), dtype=torch.float32))
            self.register_buffer("high", torch.as_tensor(action_space.high.ravel(),
                                                         dtype=torch.float32))
        self.register_buffer("scale", None if setpoint_scale is None
                             else torch.as_tensor(setpoint_scale, dtype=torch.float32))
        self.register_buffer("table", None if discrete_setpoints is None
                             else torch.as_tensor(discrete_setpoints, dtype=torch.float32))

    def forward(self, obs: torch.Tensor, h_in: torch.Tensor | None = None):
        x = (obs - self.mean) / self.std
        if self.clip is not None:
            x = torch.clamp(x, -self.clip, self.clip)
        if self.onehot is not None:
            x = torch.cat([x, self.onehot.expand(x.shape[0], -1)], dim=-1)
        feat = self.actor.body(x)
        h_out = None
        if self.actor.recurrent:
            out, hn = self.actor.gru(feat.unsqueeze(0), h_in.unsqueeze(0))
            feat, h_out = out.squeeze(0), hn.squeeze(0)
        head = self.actor.head(feat)
        outputs = []
        if self.discrete:
            action = torch.argmax(head, dim=-1)
            outputs.append(action)
            if self.table is not None:
                outputs.append(self.table[action])
        else:
            action = torch.maximum(torch.minimum(head, self.high), self.low)  # the Gaussian mean
            outputs.append(action)
            if self.scale is not None:
                outputs.append(action * self.scale)
        if h_out is not None:
            outputs.append(h_out)
        return tuple(outputs)


class ExportedRecurrentAgent(nn.Module):
    """obs (B, D), h_in (B, H + A) -> action, setpoint, h_out for the episodic family.

    The greedy action is the arg-max of the agent network's outputs (Q-values, or COMA's
    logits) over the agent's own actions; h carries the GRU state and the previous
    action's one-hot (the network's last-action input)."""

    def __init__(self, agent: nn.Module, mean: np.ndarray, std: np.ndarray, clip: float | None,
                 padded_size: int, agent_onehot: np.ndarray | None, last_action: bool,
                 num_actions: int, available: int, discrete_setpoints: np.ndarray | None):
        super().__init__()
        self.agent = agent
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.clip = clip
        self.padded_size = padded_size
        self.register_buffer("onehot", None if agent_onehot is None
                             else torch.as_tensor(agent_onehot, dtype=torch.float32))
        self.last_action = last_action
        self.num_actions = num_actions
        mask = torch.zeros(num_actions)
        mask[available:] = -1e9  # actions this agent does not have (heterogeneous spaces)
        self.register_buffer("mask", mask)
        self.register_buffer("table", None if discrete_setpoints is None
                             else torch.as_tensor(discrete_setpoints, dtype=torch.float32))
        self.discrete = True
        self.scale = None
        self.state_size = agent.hidden_size + num_actions

    def forward(self, obs: torch.Tensor, h_in: torch.Tensor):
        x = nn.functional.pad(obs, (0, self.padded_size - obs.shape[-1]))
        x = (x - self.mean) / self.std
        if self.clip is not None:
            x = torch.clamp(x, -self.clip, self.clip)
        hidden, previous = h_in[:, : self.agent.hidden_size], h_in[:, self.agent.hidden_size:]
        parts = [x] + ([previous] if self.last_action else [])
        if self.onehot is not None:
            parts.append(self.onehot.expand(x.shape[0], -1))
        out, h = self.agent(torch.cat(parts, dim=-1), hidden)
        action = torch.argmax(out + self.mask, dim=-1)
        h_out = torch.cat([h, nn.functional.one_hot(action, self.num_actions).float()], dim=-1)
        outputs = [action] + ([self.table[action]] if self.table is not None else [])
        return tuple(outputs + [h_out])


def exported_recurrent_agent(policy: Any, agent_index: int) -> ExportedRecurrentAgent:
    """The export module of one agent of a `RecurrentAgentPolicy` (the episodic family)."""
    norm = policy.obs_normalizer
    if norm.enabled:
        mean, std, clip = norm.mean, np.sqrt(norm.var + 1e-8), float(norm.clip)
    else:
        mean, std, clip = np.zeros(policy.obs_size), np.ones(policy.obs_size), None
    onehot = None
    if policy.network["agent_id"]:
        onehot = np.zeros((1, len(policy.agents)), dtype=np.float32)
        onehot[0, agent_index] = 1.0
    _, _, table = _sim_contract(policy)
    available = int(policy.action_spaces[agent_index].n)
    return ExportedRecurrentAgent(policy.agent, mean, std, clip, policy.obs_size, onehot,
                                  bool(policy.network["last_action"]), policy.num_actions,
                                  available, table).eval()


class ExportedStrategy(nn.Module):
    """obs (B, S) one-hot state -> action, probabilities [, setpoint]: a mixed-strategy table.

    The table is inside the graph (probabilities = obs @ table, one row per state); the
    action output is the most probable one (the first on ties, as `GamePolicy.act`), and
    a node that plays the mixed strategy samples from `probabilities` itself.
    """

    def __init__(self, table: np.ndarray, discrete_setpoints: np.ndarray | None):
        super().__init__()
        self.discrete = True
        self.scale = None
        self.register_buffer("strategy", torch.as_tensor(table, dtype=torch.float32))
        self.register_buffer("table", None if discrete_setpoints is None
                             else torch.as_tensor(discrete_setpoints, dtype=torch.float32))

    def forward(self, obs: torch.Tensor):
        probabilities = obs @ self.strategy
        action = torch.argmax(probabilities, dim=-1)
        if self.table is None:
            return action, probabilities
        return action, probabilities, self.table[action]


class ExportedLinearTeam(nn.Module):
    """features (B, J * F) -> action, probabilities: Team-Q's weights inside the graph.

    The input is the basis functions phi(s, a) of every joint action, flattened (the env's
    numpy `basis`, which the caller computes as the shared observation code); the graph
    forms Q(s, a) = phi(s, a) . theta, takes the social convention's joint action (the
    first within the tie tolerance of the maximum) and returns this agent's part of it and
    its one-hot probabilities (a pure strategy).
    """

    def __init__(self, theta: np.ndarray, action_sizes: list[int], agent_index: int,
                 tolerance: float):
        super().__init__()
        self.discrete, self.scale, self.table = True, None, None
        self.register_buffer("theta", torch.as_tensor(theta, dtype=torch.float32))
        joint = np.array(np.unravel_index(np.arange(int(np.prod(action_sizes))), action_sizes))
        self.register_buffer("own", torch.as_tensor(joint[agent_index], dtype=torch.int64))
        self.num_actions = int(action_sizes[agent_index])
        self.tolerance = float(tolerance)

    def forward(self, obs: torch.Tensor):
        q = obs.reshape(obs.shape[0], self.own.shape[0], self.theta.shape[0]) @ self.theta
        best = q.max(dim=-1, keepdim=True).values
        ties = (q >= best - self.tolerance * torch.clamp(best.abs(), min=1.0)).float()
        action = self.own[torch.argmax(ties, dim=-1)]  # argmax of 0/1: the first tie
        probabilities = torch.nn.functional.one_hot(action, self.num_actions).float()
        return action, probabilities


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def code_version() -> str:
    """git describe of the source tree when available, else the package version."""
    from marl_ros import __version__

    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).resolve().parent)
        if out.returncode == 0 and out.stdout.strip():
            return f"{__version__}+{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    return __version__


def _sim_contract(policy: TrainedPolicy) -> tuple[Any, np.ndarray | None, np.ndarray | None]:
    """The scenario config and the action -> setpoint mapping, for policies trained in sim."""
    env_config = policy.metadata.get("env_config")
    if not env_config:
        return None, None, None
    from sim.config import DISCRETE_ACTIONS, config_from_dict
    from sim.obs import is_cells_view

    cfg = config_from_dict(env_config)
    scale = np.array([cfg.vxy, cfg.vxy, cfg.vz, cfg.yaw_rate], dtype=np.float32)
    if is_cells_view(cfg):  # a move's setpoint depends on the position: the node computes it
        return cfg, None, None
    table = np.array([[*d, 0.0] for _, d in DISCRETE_ACTIONS], dtype=np.float32) * scale
    return cfg, scale, table


def _io_names(discrete: bool, with_setpoint: bool, recurrent: bool,
              mixed: bool = False) -> tuple[list[str], list[str]]:
    inputs = ["obs"] + (["h_in"] if recurrent else [])
    outputs = (["action"] + (["probabilities"] if mixed else []) + (["setpoint"] if with_setpoint else [])
               + (["h_out"] if recurrent else []))
    return inputs, outputs


def exported_actor(policy: TrainedPolicy, agent_index: int) -> ExportedActor:
    """The export module for one agent (shared-parameter policies use agent 0's model)."""
    norm = policy.obs_normalizer
    size = policy.obs_sizes[agent_index]
    if norm.enabled:
        stats = norm.mean if norm.mean.ndim == 1 else norm.mean[agent_index]
        var = norm.var if norm.var.ndim == 1 else norm.var[agent_index]
        mean, std, clip = stats[:size], np.sqrt(var[:size] + 1e-8), float(norm.clip)
    else:
        mean, std, clip = np.zeros(size), np.ones(size), None
    onehot = None
    if policy.id_size:
        onehot = np.zeros((1, policy.id_size), dtype=np.float32)
        onehot[0, agent_index] = 1.0
    cfg, scale, table = _sim_contract(policy)
    space = policy.action_spaces[agent_index]
    discrete = isinstance(space, spaces.Discrete)
    return ExportedActor(policy.actor_of(agent_index), mean, std, clip, onehot, space,
                         None if discrete else scale, table if discrete else None).eval()


def _export_onnx(module: ExportedActor | ExportedRecurrentAgent, obs_size: int, hidden_size: int, path: Path) -> None:
    recurrent = hidden_size > 0
    inputs, outputs = _io_names(module.discrete, module.scale is not None or module.table is not None,
                                recurrent, isinstance(module, ExportedStrategy | ExportedLinearTeam))
    args: tuple = (torch.zeros(1, obs_size),)
    if recurrent:
        args += (torch.zeros(1, hidden_size),)
    dynamic = {name: {0: "batch"} for name in inputs + outputs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(module, args, str(path), input_names=inputs, output_names=outputs,
                          dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)


def export_bundle(policy: Any, out_dir: str | Path, *, evaluation: dict | None = None,
                  config: dict | None = None, command: str | None = None) -> Path:
    """Write `out_dir/policy.yaml` and the ONNX model(s) of a `TrainedPolicy` (on-policy
    family) or a `RecurrentAgentPolicy` (episodic family); returns the folder."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from policies.games.policy import GamePolicy
    from policies.games.team_q import LinearTeamPolicy

    linear = isinstance(policy, LinearTeamPolicy)
    mixed = isinstance(policy, GamePolicy)
    episodic = not isinstance(policy, TrainedPolicy) and not mixed and not linear
    if linear:  # Team-Q over features: the weights in the graph, the basis from the caller
        one_model, hidden = False, 0

        def module_of(p: LinearTeamPolicy, i: int) -> ExportedLinearTeam:
            return ExportedLinearTeam(p.theta, p.action_sizes, i, p.tie_tolerance).eval()
    elif mixed:  # one table per agent, each its own small graph
        cfg, _, table = _sim_contract(policy)
        one_model, hidden = False, 0

        def module_of(p: GamePolicy, i: int) -> ExportedStrategy:
            return ExportedStrategy(p.tables[i], table).eval()
    elif episodic:  # one shared network; one model per agent only when it is told its id
        sizes = set(policy.obs_sizes)
        one_model = not policy.network["agent_id"] and len(sizes) == 1 and len(
            {int(s.n) for s in policy.action_spaces}) == 1
        hidden = policy.agent.hidden_size + policy.num_actions
        module_of = exported_recurrent_agent
    else:
        norm = policy.obs_normalizer
        per_agent_stats = norm.enabled and norm.mean.ndim == 2
        one_model = policy.share_params and not per_agent_stats and not policy.id_size
        hidden = policy.actor_of(0).hidden_size
        module_of = exported_actor
    models: dict[str, str] = {}
    with torch.no_grad():
        if one_model:
            _export_onnx(module_of(policy, 0), policy.obs_sizes[0], hidden, out / "policy.onnx")
            models = {agent: "policy.onnx" for agent in policy.agents}
        else:
            for i, agent in enumerate(policy.agents):
                name = f"policy_{agent}.onnx"
                _export_onnx(module_of(policy, i), policy.obs_sizes[i], hidden, out / name)
                models[agent] = name

    cfg, scale, table = _sim_contract(policy)
    space = (spaces.Discrete(policy.action_sizes[0]) if mixed or linear
             else policy.action_spaces[0])
    discrete = isinstance(space, spaces.Discrete)
    from sim.obs import is_cells_view

    cells = cfg is not None and is_cells_view(cfg)
    inputs, outputs = _io_names(discrete, cfg is not None and not cells, hidden > 0,
                                mixed or linear)
    meta: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "agents": list(policy.agents),
        "models": models,
        "checksums": {name: _sha256(out / name) for name in sorted(set(models.values()))},
        "onnx": {"opset": OPSET, "inputs": inputs, "outputs": outputs},
        "observation": {"sizes": {a: policy.obs_sizes[i] for i, a in enumerate(policy.agents)}},
        "action": {"mode": "discrete" if discrete else "continuous",
                   "size": int(space.n) if discrete else int(np.prod(space.shape)),
                   # a mixed strategy: the node samples `probabilities` with its own generator
                   **({"sampling": "mixed"} if mixed else {})},
        # Team-Q: the input is the env's basis functions of every joint action, (J, F) flattened
        **({"features": {"joint_actions": int(np.prod(policy.action_sizes)),
                         "per_joint_action": len(policy.theta),
                         "basis": policy.basis_name}} if linear else {}),
        "recurrent": ({"input": "h_in", "output": "h_out", "shape": [hidden]} if hidden else None),
        # the episodic family's state also carries the previous action (see the module doc)
        **({"recurrent_layout": [["gru", policy.agent.hidden_size],
                                 ["previous_action_onehot", policy.num_actions]]} if episodic else {}),
        "provenance": {
            "algorithm": policy.metadata.get("algorithm"),
            "seed": policy.metadata.get("seed"),
            "training_steps": policy.metadata.get("global_step"),
            "config": config,
            "evaluation": evaluation,
            "command": command,
            "code_version": code_version(),
            "exported": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "torch": str(torch.__version__),
        },
    }
    if "team" in policy.metadata:  # one team's policy of a team run (`policies.teams`)
        meta["team"] = {"name": policy.metadata["team"],
                        "drones": [int(i) for i in policy.metadata["team_members"]]}
    if cfg is not None:
        from sim.config import DISCRETE_ACTIONS
        from sim.obs import observation_hash, observation_layout

        meta["scenario"] = cfg.to_dict()
        meta["policy_rate_hz"] = cfg.policy_hz
        meta["observation"].update({
            "layout": [[name, size] for name, size in observation_layout(cfg)],
            "hash": observation_hash(cfg),
            "parameters": cfg.observation_params(),
        })
        meta["action"].update({
            "setpoint": ["vx", "vy", "vz", "yaw_rate"], "frame": "ENU",
            "limits": {"vxy": cfg.vxy, "vz": cfg.vz, "yaw_rate": cfg.yaw_rate},
        })
        if cells:  # a move towards a neighbouring cell: sim.obs.cell_action_setpoint
            from sim.config import CELL_MOVES

            meta["action"]["cell_moves"] = [{"index": i, "name": name, "cells": list(step)}
                                            for i, (name, step) in enumerate(CELL_MOVES)]
        elif discrete:
            meta["action"]["discrete_actions"] = [
                {"index": i, "name": name, "setpoint": table[i].tolist()}
                for i, (name, _) in enumerate(DISCRETE_ACTIONS)]
    tmp = out / (BUNDLE_FILE + ".tmp")
    tmp.write_text(yaml.safe_dump(meta, sort_keys=False))
    tmp.replace(out / BUNDLE_FILE)
    return out
