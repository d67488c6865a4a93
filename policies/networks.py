"""Actor and critic networks shared by every policy-gradient algorithm.

Actors map one agent's (normalised) observation to an action distribution:
a Gaussian with a state-independent log-std for Box actions, a Categorical for
Discrete ones. The recurrent actor keeps its hidden state outside the module
(`hidden` in, `hidden` out) so that rollouts, training on sequences, ONNX
export and the ROS node all carry it the same way. The centralised critic sees
the global state only during training; deployment never needs it.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from gymnasium import spaces
from torch import nn
from torch.distributions import Categorical, Distribution, Normal


def layer_init(layer: nn.Linear, gain: float = float(np.sqrt(2))) -> nn.Linear:
    """Orthogonal weights, zero bias: the initialisation PPO results are reported with."""
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def mlp(in_size: int, hidden_sizes: list[int], activation: type[nn.Module] = nn.Tanh) -> nn.Sequential:
    layers: list[nn.Module] = []
    for size in hidden_sizes:
        layers += [layer_init(nn.Linear(in_size, size)), activation()]
        in_size = size
    return nn.Sequential(*layers)


ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


def action_size(space: spaces.Space) -> int:
    """Width of one action in the rollout arrays: the Box dimension, 1 for a Discrete index."""
    if isinstance(space, spaces.Box):
        return int(np.prod(space.shape))
    if isinstance(space, spaces.Discrete):
        return 1
    raise TypeError(f"action space {space} is not supported; use gymnasium Box or Discrete.")


class Actor(nn.Module):
    """An agent's policy pi(a | o[, h]).

    `forward_sequence` is the one evaluation path: inputs shaped (L, B, obs) with
    episode-start flags (L, B) and the hidden state (B, H) at the first step. The
    feed-forward actor ignores the hidden state (it is carried as a zero-width tensor),
    so algorithms never branch on the architecture.
    """

    def __init__(self, obs_size: int, action_space: spaces.Space, hidden_sizes: list[int],
                 activation: str = "tanh", recurrent: bool = False, gru_size: int = 64,
                 init_log_std: float = -0.5):
        super().__init__()
        if not hidden_sizes:
            raise ValueError("hidden_sizes must name at least one layer, e.g. [64, 64].")
        self.obs_size = obs_size
        self.action_space = action_space
        self.recurrent = recurrent
        self.hidden_size = gru_size if recurrent else 0
        self.body = mlp(obs_size, hidden_sizes, ACTIVATIONS[activation])
        feature = hidden_sizes[-1]
        if recurrent:
            self.gru = nn.GRU(feature, gru_size)
            for name, param in self.gru.named_parameters():
                if "weight" in name:
                    nn.init.orthogonal_(param)
                else:
                    nn.init.zeros_(param)
            feature = gru_size
        self.discrete = isinstance(action_space, spaces.Discrete)
        if self.discrete:
            self.head = layer_init(nn.Linear(feature, int(action_space.n)), gain=0.01)
        elif isinstance(action_space, spaces.Box):
            dim = action_size(action_space)
            self.head = layer_init(nn.Linear(feature, dim), gain=0.01)
            self.log_std = nn.Parameter(torch.full((dim,), float(init_log_std)))
        else:
            raise TypeError(f"action space {action_space} is not supported; use Box or Discrete.")

    def initial_hidden(self, batch: int) -> torch.Tensor:
        return torch.zeros(batch, self.hidden_size)

    def forward_sequence(self, obs: torch.Tensor, starts: torch.Tensor,
                         hidden: torch.Tensor) -> tuple[Distribution, torch.Tensor]:
        """Distribution over actions for every step of (L, B) sequences, and the last hidden."""
        x = self.body(obs)
        if self.recurrent:
            outs = []
            h = hidden
            for t in range(x.shape[0]):
                h = h * (1.0 - starts[t].unsqueeze(-1))  # a new episode forgets the old one
                out, hn = self.gru(x[t : t + 1], h.unsqueeze(0))
                h = hn.squeeze(0)
                outs.append(out)
            x, hidden = torch.cat(outs, 0), h
        return self.distribution(self.head(x)), hidden

    def distribution(self, head: torch.Tensor) -> Distribution:
        if self.discrete:
            return Categorical(logits=head)
        return Normal(head, self.log_std.exp().expand_as(head))

    def log_prob(self, dist: Distribution, actions: torch.Tensor) -> torch.Tensor:
        """Log-probability of stored actions (..., action_size) -> (...)."""
        if self.discrete:
            return dist.log_prob(actions[..., 0].long())
        return dist.log_prob(actions).sum(-1)

    def entropy(self, dist: Distribution) -> torch.Tensor:
        return dist.entropy() if self.discrete else dist.entropy().sum(-1)

    def mode(self, dist: Distribution) -> torch.Tensor:
        """The deterministic action, shaped like a stored action (..., action_size)."""
        if self.discrete:
            return dist.probs.argmax(-1, keepdim=True).float()
        return dist.mean

    def sample(self, dist: Distribution) -> torch.Tensor:
        if self.discrete:
            return dist.sample().unsqueeze(-1).float()
        return dist.sample()


class Critic(nn.Module):
    """Centralised value V(s) on the global state; outputs a normalised value."""

    def __init__(self, state_size: int, hidden_sizes: list[int], activation: str = "tanh"):
        super().__init__()
        self.body = mlp(state_size, hidden_sizes, ACTIVATIONS[activation])
        self.head = layer_init(nn.Linear(hidden_sizes[-1], 1), gain=1.0)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(state)).squeeze(-1)


def agent_id_onehot(num_agents: int, batch_shape: tuple[int, ...]) -> torch.Tensor:
    """One-hot agent ids broadcast over leading dims: (*batch_shape, N, N)."""
    eye = torch.eye(num_agents)
    return eye.expand(*batch_shape, num_agents, num_agents)


class PointMass:
    """The action "distribution" of a deterministic actor: all its mass on one action."""

    def __init__(self, action: torch.Tensor):
        self.mean = action


class BoxScale(nn.Module):
    """[-1, 1] -> [low, high] per dimension: a tanh output in the units the env expects."""

    def __init__(self, space: spaces.Box):
        super().__init__()
        low, high = space.low.ravel().astype(np.float64), space.high.ravel().astype(np.float64)
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise ValueError(f"action space {space} has infinite bounds; deterministic actors "
                             "squash their actions into the Box with tanh, so give it finite "
                             "low and high (rescale the actions in a wrapper).")
        self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32))
        self.register_buffer("half_range", torch.as_tensor((high - low) / 2, dtype=torch.float32))

    def forward(self, unit: torch.Tensor) -> torch.Tensor:
        return self.low + (unit + 1.0) * self.half_range


class DeterministicActor(nn.Module):
    """mu(o) of the off-policy family (MADDPG, HADDPG, HATD3), acting like an `Actor`.

    Box actions: `head` = linear -> tanh -> `BoxScale`, so `head(body(x))` is the action in
    the env's units and the bundle exporter's graph (which clamps `head` to the Box) needs
    nothing new; training works on `unit_action`, the tanh output in [-1, 1]. Discrete
    actions: `head` gives logits; the deployed action is their arg-max, training uses a
    Gumbel-softmax sample. Feed-forward only (`hidden_size` 0, as `Actor` carries it).
    """

    recurrent = False
    hidden_size = 0

    def __init__(self, obs_size: int, action_space: spaces.Space, hidden_sizes: list[int],
                 activation: str = "relu"):
        super().__init__()
        if not hidden_sizes:
            raise ValueError("hidden_sizes must name at least one layer, e.g. [64, 64].")
        self.obs_size = obs_size
        self.action_space = action_space
        self.body = mlp(obs_size, hidden_sizes, ACTIVATIONS[activation])
        self.discrete = isinstance(action_space, spaces.Discrete)
        if self.discrete:
            self.head = layer_init(nn.Linear(hidden_sizes[-1], int(action_space.n)), gain=0.01)
        elif isinstance(action_space, spaces.Box):
            linear = layer_init(nn.Linear(hidden_sizes[-1], action_size(action_space)), gain=0.01)
            self.head = nn.Sequential(linear, nn.Tanh(), BoxScale(action_space))
        else:
            raise TypeError(f"action space {action_space} is not supported; use Box or Discrete.")

    def unit_action(self, x: torch.Tensor) -> torch.Tensor:
        """Box: the action in [-1, 1] (before `BoxScale`); Discrete: the logits."""
        feature = self.body(x)
        return self.head(feature) if self.discrete else torch.tanh(self.head[0](feature))

    def initial_hidden(self, batch: int) -> torch.Tensor:
        return torch.zeros(batch, 0)

    def forward_sequence(self, obs: torch.Tensor, starts: torch.Tensor,
                         hidden: torch.Tensor) -> tuple[Categorical | PointMass, torch.Tensor]:
        head = self.head(self.body(obs))
        return (Categorical(logits=head) if self.discrete else PointMass(head)), hidden

    def mode(self, dist: Categorical | PointMass) -> torch.Tensor:
        if self.discrete:
            return dist.probs.argmax(-1, keepdim=True).float()
        return dist.mean

    def sample(self, dist: Categorical | PointMass) -> torch.Tensor:
        """The same action: exploration noise is the trainer's business, not the policy's."""
        return self.mode(dist)


# -- devices -----------------------------------------------------------------------------------
def resolve_device(name: str) -> torch.device:
    """`trainer.device` as a torch device: auto = the first CUDA device when torch sees one,
    else the CPU; cuda / cuda:N where torch sees no such device is refused in one sentence."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            seen = f"{count} CUDA device(s)" if count else "no CUDA device"
            raise ValueError(f"trainer.device={name} but torch sees {seen} on this machine "
                             f"(torch {torch.__version__}); set trainer.device=auto or cpu, or "
                             "train on a machine with an NVIDIA GPU and the CUDA build of torch.")
    return device


def place(holder: object, device: torch.device) -> None:
    """Move every module and tensor an algorithm holds (attributes, and lists, tuples or dicts
    of them) to `device`, and record it as `holder.device`. Modules move in place, so the
    optimisers built on their parameters keep working; on the CPU nothing changes."""
    for name, value in list(vars(holder).items()):
        if isinstance(value, nn.Module):
            value.to(device)
        elif isinstance(value, torch.Tensor):
            setattr(holder, name, value.to(device))
        elif isinstance(value, list | tuple):
            for item in value:
                if isinstance(item, nn.Module):
                    item.to(device)
        elif isinstance(value, dict):
            for item in value.values():
                if isinstance(item, nn.Module):
                    item.to(device)
    holder.device = device


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """A sampled batch on the learner's device (the same tensors on the CPU)."""
    return {k: v.to(device) for k, v in batch.items()}


def cpu_modules(modules: nn.Module) -> nn.Module:
    """`modules` where they already live on the CPU, else a CPU copy: what a saved or exported
    policy holds (`policies.load` and `marl-ros export` run on machines without a GPU)."""
    if all(t.device.type == "cpu" for t in (*modules.parameters(), *modules.buffers())):
        return modules
    return copy.deepcopy(modules).to("cpu")


def cpu_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of a module's weights (e.g. actor weights for CPU rollout workers)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
