"""What the value-decomposition family (and COMA) share: agents, episodes, targets, the Q update.

Every agent is one recurrent network shared by all agents (parameter sharing as in
the QMIX and COMA papers): its input is the agent's normalised observation, the
one-hot of its previous action and the one-hot of its id; a GRU cell carries its
action-observation history. Learning works on whole episodes sampled from an
`EpisodeBuffer`: the network is unrolled from the first step so hidden states are
exact, padded steps are masked out of every loss.

A Q-learning algorithm file (IQL, VDN, QMIX) only provides its mixer
`Q_tot = mixer(Q_1..Q_N, s)`; `QLearner.update` does the rest: double-Q targets from
the target networks, optional TD(lambda), masked TD loss, target updates (periodic
copy or Polyak averaging). QTRAN and COMA replace `loss`/`update` with their own.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from policies.config import AlgorithmConfig
from policies.envs import EnvSpec
from policies.normalization import ObservationNormalizer


@dataclass
class ValueConfig(AlgorithmConfig):
    """Hyperparameters every episodic value-based algorithm has."""

    gamma: float = 0.99
    lr: float = 5e-4
    max_grad_norm: float = 10.0
    batch_episodes: int = 32  # episodes per gradient step
    buffer_episodes: int = 2000  # replay capacity, in episodes
    updates_per_collect: int = 1  # gradient steps after each batch of num_envs episodes
    learning_starts: int = 32  # episodes in the buffer before the first update
    epsilon_start: float = 1.0
    epsilon_finish: float = 0.05
    epsilon_anneal_steps: int = 50_000  # env steps of the linear epsilon schedule
    target_update_interval: int = 200  # gradient steps between hard target copies
    target_tau: float = 0.0  # > 0: Polyak averaging every step instead of hard copies
    double_q: bool = True
    td_lambda: float = 0.0  # 0: one-step targets; (0, 1]: TD(lambda) over the episode
    episode_limit: int = 0  # padded episode length; 0: what the env declares, else grown
    # networks
    hidden_sizes: list[int] = field(default_factory=lambda: [64])
    gru_size: int = 64
    agent_id: bool = True  # one-hot agent id in the agent's input
    last_action: bool = True  # one-hot previous action in the agent's input

    def validate(self) -> None:
        if not 0.0 < self.gamma <= 1.0 or not 0.0 <= self.td_lambda <= 1.0:
            raise ValueError(f"gamma must be in (0, 1] and td_lambda in [0, 1] "
                             f"(got {self.gamma}, {self.td_lambda}).")
        if self.batch_episodes < 1 or self.buffer_episodes < self.batch_episodes:
            raise ValueError(f"need 1 <= batch_episodes <= buffer_episodes (got "
                             f"{self.batch_episodes}, {self.buffer_episodes}).")
        if not 0.0 <= self.epsilon_finish <= self.epsilon_start <= 1.0:
            raise ValueError("need 0 <= epsilon_finish <= epsilon_start <= 1.")
        if not 0.0 <= self.target_tau <= 1.0:
            raise ValueError(f"target_tau must be in [0, 1] (got {self.target_tau}).")


def linear_epsilon(cfg: ValueConfig, env_steps: int) -> float:
    """Linear annealing from epsilon_start to epsilon_finish over epsilon_anneal_steps."""
    frac = min(1.0, env_steps / max(1, cfg.epsilon_anneal_steps))
    return cfg.epsilon_start + frac * (cfg.epsilon_finish - cfg.epsilon_start)


def num_actions_of(spec: EnvSpec) -> int:
    for s in spec.action_spaces:
        if not isinstance(s, spaces.Discrete):
            raise TypeError(f"value-decomposition methods and COMA need Discrete actions; got {s}. "
                            "Use action_mode='discrete' for sim scenarios.")
    return max(int(s.n) for s in spec.action_spaces)


class RecurrentAgent(nn.Module):
    """o, last action, id -> MLP -> GRU cell -> one output per action (Q-values or logits)."""

    def __init__(self, input_size: int, hidden_sizes: list[int], gru_size: int, num_actions: int):
        super().__init__()
        layers: list[nn.Module] = []
        for size in hidden_sizes:
            layers += [nn.Linear(input_size, size), nn.ReLU()]
            input_size = size
        self.body = nn.Sequential(*layers)
        self.gru = nn.GRUCell(input_size, gru_size)
        self.head = nn.Linear(gru_size, num_actions)
        self.hidden_size = gru_size

    def forward(self, x: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (..., in), hidden (..., H) -> outputs (..., A), next hidden (..., H)."""
        lead = x.shape[:-1]
        h = self.gru(self.body(x.reshape(-1, x.shape[-1])), hidden.reshape(-1, self.hidden_size))
        return self.head(h).reshape(*lead, -1), h.reshape(*lead, self.hidden_size)

    def unroll(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs (B, T, N, in) from a zero hidden state -> outputs (B, T, N, A), hiddens (B, T, N, H)."""
        b, t, n, _ = inputs.shape
        h = inputs.new_zeros(b, n, self.hidden_size)
        outs, hiddens = [], []
        for k in range(t):
            out, h = self(inputs[:, k], h)
            outs.append(out)
            hiddens.append(h)
        return torch.stack(outs, 1), torch.stack(hiddens, 1)


def agent_inputs(obs: torch.Tensor, last_actions: torch.Tensor | None, num_actions: int,
                 agent_id: bool) -> torch.Tensor:
    """obs (..., N, D), last actions (..., N) int or None -> the agent network input."""
    parts = [obs]
    if last_actions is not None:
        parts.append(F.one_hot(last_actions.long().clamp(min=0), num_actions).float()
                     * (last_actions >= 0).unsqueeze(-1).float())  # -1: no previous action
    if agent_id:
        n = obs.shape[-2]
        parts.append(torch.eye(n, device=obs.device).expand(*obs.shape[:-1], n))
    return torch.cat(parts, -1)


def input_size_of(obs_size: int, num_agents: int, num_actions: int, cfg: ValueConfig) -> int:
    return obs_size + (num_actions if cfg.last_action else 0) + (num_agents if cfg.agent_id else 0)


def sequence_inputs(batch: dict[str, torch.Tensor], num_actions: int, cfg: ValueConfig) -> torch.Tensor:
    """Agent inputs for every stored step (B, T+1, N, in); the last action at t is u_{t-1}."""
    actions = batch["actions"]  # (B, T+1, N)
    last = None
    if cfg.last_action:
        last = torch.cat([torch.full_like(actions[:, :1], -1), actions[:, :-1]], 1)
    return agent_inputs(batch["obs"], last, num_actions, cfg.agent_id)


def td_lambda_targets(rewards: torch.Tensor, terminated: torch.Tensor, mask: torch.Tensor,
                      next_values: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """Lambda-returns G_t = r_t + gamma (1 - term_t) [(1 - lam) V_{t+1} + lam G_{t+1}].

    All (B, T) (next_values may carry a trailing agent dim). next_values[t] is the target
    value of the state after step t; at the last valid step of an episode G_{t+1} is
    replaced by V_{t+1} (a truncated episode bootstraps, a terminated one does not).
    lam = 0 gives one-step targets.
    """
    extra = next_values.dim() - rewards.dim()
    r, term, m = (x.reshape(tuple(x.shape) + (1,) * extra) for x in (rewards, terminated, mask))
    targets = torch.zeros_like(next_values)
    g = next_values[:, -1]
    for t in range(rewards.shape[1] - 1, -1, -1):
        cont = m[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(m[:, t])
        blend = (1.0 - lam * cont) * next_values[:, t] + lam * cont * g
        g = r[:, t] + gamma * (1.0 - term[:, t]) * blend
        targets[:, t] = g
    return targets


def normalized_batch(batch: dict[str, torch.Tensor], obs_norm: ObservationNormalizer,
                     state_norm: ObservationNormalizer) -> dict[str, torch.Tensor]:
    """Stored raw observations and states through the current normalisers."""
    out = dict(batch)
    for key, norm in (("obs", obs_norm), ("state", state_norm)):
        if norm.enabled:
            device = batch[key].device
            mean = torch.as_tensor(norm.mean, dtype=torch.float32, device=device)
            std = torch.as_tensor(np.sqrt(norm.var + 1e-8), dtype=torch.float32, device=device)
            out[key] = ((batch[key] - mean) / std).clamp(-norm.clip, norm.clip)
    return out


def masked_mse(error: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.reshape(tuple(mask.shape) + (1,) * (error.dim() - mask.dim())).expand_as(error)
    return (error.pow(2) * m).sum() / m.sum().clamp(min=1.0)


class EpisodeBuffer:
    """A ring of whole episodes, padded to `limit` steps.

    Per episode: obs (T+1, N, D) and state (T+1, S) hold the observation before each step
    and, at the episode's last index, the final one (the bootstrap of a truncated
    episode); actions (T+1, N) (the slot after the last step is unused); reward,
    terminated and mask (T,), mask = 1 on real steps.
    """

    def __init__(self, capacity: int, limit: int, num_agents: int, obs_size: int, state_size: int):
        self.capacity, self.limit = capacity, limit
        t, n = limit, num_agents
        self.data = {
            "obs": np.zeros((capacity, t + 1, n, obs_size), np.float32),
            "state": np.zeros((capacity, t + 1, state_size), np.float32),
            "actions": np.zeros((capacity, t + 1, n), np.int64),
            "reward": np.zeros((capacity, t), np.float32),
            "terminated": np.zeros((capacity, t), np.float32),
            "mask": np.zeros((capacity, t), np.float32),
        }
        self.next = 0
        self.size = 0

    def add(self, episodes: dict[str, np.ndarray]) -> None:
        """Store a batch of episodes (leading dim = episodes), overwriting the oldest."""
        for i in range(len(episodes["reward"])):
            for k, v in self.data.items():
                v[self.next] = episodes[k][i]
            self.next = (self.next + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)

    def sample(self, count: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        return self.batch(rng.choice(self.size, size=count, replace=self.size < count))

    def latest(self, count: int) -> dict[str, torch.Tensor]:
        return self.batch((self.next - 1 - np.arange(min(count, self.size))) % self.capacity)

    def batch(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        """Episodes `idx`, cut to the longest one among them."""
        length = int(self.data["mask"][idx].sum(1).max())
        out = {k: torch.from_numpy(v[idx]) for k, v in self.data.items()}
        for k in ("obs", "state", "actions"):
            out[k] = out[k][:, : length + 1]
        for k in ("reward", "terminated", "mask"):
            out[k] = out[k][:, :length]
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"data": {k: v[: self.size].copy() for k, v in self.data.items()}, "next": self.next,
                "size": self.size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state["data"].items():
            self.data[k][: len(v)] = v
        self.next, self.size = state["next"], state["size"]

    def grow(self, new_limit: int) -> None:
        """Pad every slot to `new_limit` steps, so longer episodes fit and stored ones keep their
        steps (the padding is zeros with mask 0, which every loss ignores)."""
        if new_limit <= self.limit:
            return
        extra = new_limit - self.limit
        for k, v in self.data.items():
            self.data[k] = np.pad(v, [(0, 0), (0, extra)] + [(0, 0)] * (v.ndim - 2))
        self.limit = new_limit


class EpisodicAlgorithm:
    """Interface the episodic trainer drives (see `policies.value.trainer`)."""

    config_class: type[ValueConfig] = ValueConfig
    on_policy = False  # True: train on the latest episodes only (COMA)
    output_kind = "q"  # what the agent network outputs: "q" (act greedily) or "logits"
    device = torch.device("cpu")  # where the networks live (the trainer's `place` sets it)

    def __init__(self, cfg: ValueConfig, spec: EnvSpec, rng: np.random.Generator):
        self.cfg, self.spec, self.rng = cfg, spec, rng
        self.num_agents = spec.num_agents
        self.num_actions = num_actions_of(spec)
        self.input_size = input_size_of(spec.obs_size, spec.num_agents, self.num_actions, cfg)
        self.agent = RecurrentAgent(self.input_size, cfg.hidden_sizes, cfg.gru_size, self.num_actions)
        self.hidden_size = cfg.gru_size
        self.updates = 0
        self.available = torch.zeros(self.num_agents, self.num_actions, dtype=torch.bool)
        for i, s in enumerate(spec.action_spaces):  # agents with fewer actions never pick the rest
            self.available[i, : int(s.n)] = True

    @property
    def actor_optimizers(self) -> list[torch.optim.Optimizer]:  # the trainer logs its lr
        return [self.optimizer]

    def masked_outputs(self, out: torch.Tensor, fill: float = -1e9) -> torch.Tensor:
        return out.masked_fill(~self.available, fill)

    @torch.no_grad()
    def select_actions(self, obs: np.ndarray, last_actions: np.ndarray, hidden: torch.Tensor,
                       env_steps: int) -> tuple[np.ndarray, torch.Tensor]:
        """Exploration policy for collection: epsilon-greedy over the agent's Q-values."""
        x = agent_inputs(torch.from_numpy(obs).to(self.device),
                         torch.from_numpy(last_actions).to(self.device) if
                         self.cfg.last_action else None, self.num_actions, self.cfg.agent_id)
        q, hidden = self.agent(x, hidden)
        greedy = self.masked_outputs(q).argmax(-1).cpu().numpy()
        eps = linear_epsilon(self.cfg, env_steps)
        random = self.random_actions(greedy.shape)
        explore = self.rng.random(greedy.shape) < eps
        return np.where(explore, random, greedy), hidden

    def random_actions(self, shape: tuple[int, ...]) -> np.ndarray:
        counts = self.available.sum(-1).cpu().numpy()
        return (self.rng.random(shape) * counts).astype(np.int64)

    def exploration_figures(self, env_steps: int) -> dict[str, float]:
        return {"charts/epsilon": linear_epsilon(self.cfg, env_steps)}

    def clip_and_step(self, loss: torch.Tensor, params: list[nn.Parameter],
                      optimizer: torch.optim.Optimizer) -> float:
        optimizer.zero_grad()
        loss.backward()
        norm = nn.utils.clip_grad_norm_(params, self.cfg.max_grad_norm)
        optimizer.step()
        return float(norm)

    def update_targets(self, pairs: list[tuple[nn.Module, nn.Module]]) -> None:
        """Polyak averaging every update (target_tau > 0) or a hard copy every interval."""
        tau = self.cfg.target_tau
        if tau > 0:
            with torch.no_grad():
                for online, target in pairs:
                    for p, tp in zip(online.parameters(), target.parameters(), strict=True):
                        tp.lerp_(p, tau)
        elif self.updates % self.cfg.target_update_interval == 0:
            for online, target in pairs:
                target.load_state_dict(online.state_dict())

    # checkpoints: every module and optimiser the subclass registers in `self.modules`
    def state_dict(self) -> dict[str, Any]:
        return {"modules": {k: m.state_dict() for k, m in self.modules().items()},
                "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, m in self.modules().items():
            m.load_state_dict(state["modules"][k])
        self.updates = state["updates"]

    def modules(self) -> dict[str, Any]:
        raise NotImplementedError

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        raise NotImplementedError


class QLearner(EpisodicAlgorithm):
    """Episodic deep Q-learning over a mixer; subclasses set `make_mixer`."""

    def __init__(self, cfg: ValueConfig, spec: EnvSpec, rng: np.random.Generator):
        super().__init__(cfg, spec, rng)
        self.mixer = self.make_mixer()
        self.target_agent = copy.deepcopy(self.agent)
        self.target_mixer = copy.deepcopy(self.mixer)
        self.params = list(self.agent.parameters()) + list(self.mixer.parameters())
        self.optimizer = torch.optim.Adam(self.params, lr=cfg.lr)

    def make_mixer(self) -> nn.Module:
        """(B, T, N) agent Qs, (B, T, S) states -> Q_tot (B, T) (or (B, T, N) for IQL)."""
        raise NotImplementedError

    def modules(self) -> dict[str, Any]:
        return {"agent": self.agent, "mixer": self.mixer, "target_agent": self.target_agent,
                "target_mixer": self.target_mixer, "optimizer": self.optimizer}

    def chosen_and_next(self, batch: dict[str, torch.Tensor]):
        """Q(tau_t, u_t) per agent with gradients; the target net's Q at the next greedy action.

        Double-Q: the online network picks the next action, the target network values it.
        """
        inputs = sequence_inputs(batch, self.num_actions, self.cfg)
        q, hiddens = self.agent.unroll(inputs)  # (B, T+1, N, A)
        q = self.masked_outputs(q)
        chosen = q[:, :-1].gather(-1, batch["actions"][:, :-1, :, None]).squeeze(-1)
        with torch.no_grad():
            q_target, _ = self.target_agent.unroll(inputs)
            q_target = self.masked_outputs(q_target)
            picker = q.detach() if self.cfg.double_q else q_target
            best = picker[:, 1:].argmax(-1, keepdim=True)
            next_q = q_target[:, 1:].gather(-1, best).squeeze(-1)
        return q, hiddens, chosen, next_q

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.cfg
        _, _, chosen, next_q = self.chosen_and_next(batch)
        q_tot = self.mixer(chosen, batch["state"][:, :-1])
        with torch.no_grad():
            next_tot = self.target_mixer(next_q, batch["state"][:, 1:])
            targets = td_lambda_targets(batch["reward"], batch["terminated"], batch["mask"],
                                        next_tot, cfg.gamma, cfg.td_lambda)
        loss = masked_mse(q_tot - targets, batch["mask"])
        grad_norm = self.clip_and_step(loss, self.params, self.optimizer)
        self.updates += 1
        self.update_targets([(self.agent, self.target_agent), (self.mixer, self.target_mixer)])
        return {"losses/td_loss": loss.item(), "losses/grad_norm": grad_norm,
                "losses/q_taken_mean": float(q_tot.detach().mean())}
