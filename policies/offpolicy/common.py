"""What the off-policy family shares: hyperparameters, deterministic actors and their targets,
centralised Q critics, the transition replay buffer, exploration, Polyak averaging and the
heterogeneous-agent sequential actor update.

An algorithm file subclasses `OffPolicyConfig` (its hyperparameters) and
`OffPolicyAlgorithm` (its critics and its `update`), and nothing else.

Actions, three views of one thing:
- the critic's view (what the replay buffer stores, per agent padded to the widest): a Box
  action in [-1, 1] (the actor's tanh output plus exploration noise), a Discrete action as
  its one-hot;
- the env's view (`env_actions`): the Box action scaled to the space's bounds, the
  Discrete index in column 0 (as `policies.envs` expects);
- the deployed view: `DeterministicActor.head(body(o))`, the same scaled action or the
  logits' arg-max (`policies.networks.DeterministicActor`).
Discrete actors are trained through the Gumbel-softmax relaxation, straight-through: the
forward pass is a one-hot sample, the gradient that of the softmax (MADDPG's particle
worlds). A critic Q(x, a_1..a_n) reads the normalised global state x (`env.state()`, or
all observations where the env has no state; with `critic_input: observations` always the
observations) and every agent's action in the critic's view, concatenated in agent order.
With `n_step` > 1 the replay holds n-step transitions, and a TD target bootstraps with the
stored gamma^m instead of gamma (`OffPolicyAlgorithm.discount`).
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
from policies.networks import Critic, DeterministicActor
from policies.onpolicy.common import OnPolicyAlgorithm, sequential_agent_order


@dataclass
class OffPolicyConfig(AlgorithmConfig):
    """Hyperparameters every off-policy algorithm has (defaults: HARL's off-policy ones,
    except the replay capacity, see `buffer_size`)."""

    gamma: float = 0.99
    # n-step returns: a stored transition sums the next n rewards of its env (discounted,
    # stopping where the episode ends) and bootstraps from the observation n steps later,
    # with gamma^m for the m steps it summed. 1 = one-step TD (HARL's default).
    n_step: int = 1
    lr_actor: float = 5e-4
    lr_critic: float = 1e-3
    tau: float = 0.005  # Polyak averaging of every target network, each target update
    batch_size: int = 1000  # transitions per gradient step
    # Replay capacity in transitions. HARL keeps 1e6; a checkpoint holds the buffer (raw
    # observations and states, before and after each step), which is ~7.7 kB a transition
    # on the default coverage task, so 1e5 keeps a checkpoint under 0.8 GB.
    buffer_size: int = 100_000
    learning_starts: int = 10_000  # env steps of uniform random actions before any update
    utd_ratio: float = 0.05  # gradient steps per env step (one joint step of one env)
    # Gaussian exploration noise on Box actions in [-1, 1], std annealed linearly from
    # exploration_noise to exploration_noise_final over noise_anneal_steps env steps.
    exploration_noise: float = 0.1
    exploration_noise_final: float = 0.05
    noise_anneal_steps: int = 1_000_000
    gumbel_temperature: float = 1.0  # Discrete actions: the Gumbel-softmax temperature
    # Coefficient of the mean squared pre-activation (Box: before the tanh; Discrete: the
    # logits) added to every actor loss, as the MADDPG authors' implementation does (1e-3
    # there): it keeps a deterministic actor off the flat ends of its tanh, where the
    # critic's gradient no longer moves it. 0 = none (HARL's defaults).
    action_regularization: float = 0.0
    max_grad_norm: float = 10.0
    # What the critics read beside the joint action: "state" (env.state(), or all
    # observations where the env has none) or "observations" (every agent's normalised
    # observation, concatenated in agent order: each drone's egocentric belief patch and
    # neighbours instead of the global map; the replay then stores no states).
    critic_input: str = "state"
    # networks
    share_params: bool = False  # one actor for every agent (homogeneous agents)
    agent_id: bool = True  # a shared actor is told which agent it is (one-hot)
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    critic_hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    activation: str = "relu"

    def validate(self) -> None:
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 < self.tau <= 1.0:
            raise ValueError(f"gamma must be in [0, 1] and tau in (0, 1] (got {self.gamma}, "
                             f"{self.tau}).")
        if self.n_step < 1:
            raise ValueError(f"n_step must be >= 1 (got {self.n_step}).")
        if self.batch_size < 1 or self.buffer_size < self.batch_size:
            raise ValueError(f"need 1 <= batch_size <= buffer_size (got {self.batch_size}, "
                             f"{self.buffer_size}).")
        if self.utd_ratio <= 0:
            raise ValueError(f"utd_ratio (gradient steps per env step) must be > 0 (got "
                             f"{self.utd_ratio}).")
        if min(self.exploration_noise, self.exploration_noise_final) < 0 or self.learning_starts < 0:
            raise ValueError("exploration_noise, exploration_noise_final and learning_starts must "
                             "be >= 0.")
        if self.gumbel_temperature <= 0:
            raise ValueError(f"gumbel_temperature must be > 0 (got {self.gumbel_temperature}).")
        if self.action_regularization < 0:
            raise ValueError(f"action_regularization must be >= 0 (got "
                             f"{self.action_regularization}).")
        if self.activation not in ("relu", "tanh"):
            raise ValueError(f"activation must be relu or tanh (got {self.activation!r}).")
        if self.critic_input not in ("state", "observations"):
            raise ValueError(f"critic_input must be state or observations (got "
                             f"{self.critic_input!r}).")


def linear_schedule(start: float, end: float, duration: int, step: int) -> float:
    """start -> end linearly over `duration` steps, then end (exploration schedules)."""
    return start + min(1.0, step / max(1, duration)) * (end - start)


def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """target <- (1 - tau) target + tau source, parameter by parameter."""
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters(), strict=True):
            t.mul_(1.0 - tau).add_(s, alpha=tau)


def critic_action_width(space: spaces.Space) -> int:
    """Width of one agent's action in the critic's view: the Box dimension or the one-hot."""
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    return int(np.prod(space.shape))


class TransitionBuffer:
    """A ring buffer of joint transitions (x, o, a, r, x', o', terminated) from E envs at once.

    Observations and states are stored raw and normalised when sampled, with the
    normalisers of the moment (they move during training). Rewards are per agent (N).
    `subpolicy` records which ensemble member each agent acted with (MADDPG's policy
    ensembles; 0 otherwise). `state_dict` holds the filled rows, so a checkpoint of a short
    run is small and a resumed run samples exactly the same rows.
    """

    FIELDS = ("obs", "state", "actions", "rewards", "next_obs", "next_state", "terminated",
              "subpolicy", "discount")

    def __init__(self, capacity: int, num_agents: int, obs_size: int, state_size: int,
                 action_width: int):
        c, n = capacity, num_agents
        self.capacity = capacity
        self.data = {
            "obs": np.zeros((c, n, obs_size), np.float32),
            "state": np.zeros((c, state_size), np.float32),
            "actions": np.zeros((c, n, action_width), np.float32),  # the critic's view
            "rewards": np.zeros((c, n), np.float32),
            "next_obs": np.zeros((c, n, obs_size), np.float32),
            "next_state": np.zeros((c, state_size), np.float32),
            "terminated": np.zeros(c, np.float32),  # 1: no bootstrap (a time limit is not one)
            "subpolicy": np.zeros((c, n), np.int64),
            # gamma^m for the m rewards an n-step transition sums (gamma for one-step ones)
            "discount": np.zeros(c, np.float32),
        }
        self.pos = 0
        self.size = 0

    def add(self, **rows: np.ndarray) -> None:
        """Add E transitions (every field shaped (E, ...)); the oldest are overwritten."""
        count = len(rows["obs"])
        index = (self.pos + np.arange(count)) % self.capacity
        for name in self.FIELDS:
            self.data[name][index] = rows[name]
        self.pos = int((self.pos + count) % self.capacity)
        self.size = min(self.size + count, self.capacity)

    def sample_index(self, batch_size: int, rng: np.random.Generator,
                     rows: np.ndarray | None = None) -> np.ndarray:
        """Uniform row indices among the filled rows (or among `rows`, a subset of them)."""
        if rows is None:
            return rng.integers(0, self.size, size=batch_size)
        return rows[rng.integers(0, len(rows), size=batch_size)]

    def state_dict(self) -> dict[str, Any]:
        return {"pos": self.pos, "size": self.size,
                "data": {k: v[: self.size].copy() for k, v in self.data.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        size = int(state["size"])
        if size > self.capacity:
            raise ValueError(f"the checkpoint's replay buffer holds {size} transitions, more than "
                             f"buffer_size={self.capacity}; resume with the run's own config.")
        for k, v in state["data"].items():
            self.data[k][:size] = v
        if "discount" not in state["data"]:  # a checkpoint from before n-step returns
            self.data["discount"][:size] = np.nan  # never read: one-step targets use gamma
        self.pos, self.size = int(state["pos"]), size


class OffPolicyAlgorithm:
    """Deterministic actors (+ targets), Q critics (+ targets), exploration and shared steps.

    A subclass sets `num_critics` (or overrides `make_critics`) and writes `update(sample)`,
    where `sample(batch_size, agent=None, subpolicy=None)` returns a normalised batch of
    tensors (`obs` (B, N, D), `state` (B, S), `actions` (B, N, W), `rewards` (B, N),
    `next_obs`, `next_state`, `terminated` (B,), `subpolicy` (B, N)).
    """

    config_class: type[OffPolicyConfig] = OffPolicyConfig
    num_critics = 1  # HADDPG: one team critic; HATD3: twin; MADDPG: one per agent
    device = torch.device("cpu")  # where the networks live (the trainer's `place` sets it)

    def __init__(self, cfg: OffPolicyConfig, spec: EnvSpec, rng: np.random.Generator):
        self.cfg = cfg
        self.spec = spec
        self.rng = rng  # exploration noise, agent orders and batches: the trainer's stream
        n = spec.num_agents
        if cfg.share_params and not spec.homogeneous:
            raise ValueError("share_params=True needs every agent to have the same observation and "
                             "action space; set share_params=false for heterogeneous agents.")
        self.id_size = n if (cfg.share_params and cfg.agent_id) else 0
        self.widths = [critic_action_width(s) for s in spec.action_spaces]
        self.action_width = max(self.widths)
        self.joint_width = sum(self.widths)
        self.discrete = [isinstance(s, spaces.Discrete) for s in spec.action_spaces]
        count = 1 if cfg.share_params else n
        # subpolicies[k][j]: ensemble member k of actor j (one member unless MADDPG's ensembles)
        self.subpolicies = nn.ModuleList([nn.ModuleList([
            DeterministicActor(spec.obs_sizes[j] + self.id_size, spec.action_spaces[j],
                               cfg.hidden_sizes, cfg.activation) for j in range(count)])
            for _ in range(self.num_subpolicies)])
        self.target_subpolicies = copy.deepcopy(self.subpolicies)
        self.actor_optimizers = [torch.optim.Adam(actor.parameters(), lr=cfg.lr_actor)
                                 for member in self.subpolicies for actor in member]
        self.critics = self.make_critics()
        self.target_critics = copy.deepcopy(self.critics)
        critic_params = list(self.critics.parameters())  # none: MF-Q's Q-network is its actor
        self.critic_optimizer = (torch.optim.Adam(critic_params, lr=cfg.lr_critic)
                                 if critic_params else None)
        self.gradient_steps = 0

    @property
    def num_subpolicies(self) -> int:
        return 1

    @property
    def actors(self) -> nn.ModuleList:
        """The deployed actors (ensemble member 0)."""
        return self.subpolicies[0]

    @property
    def critic_state_size(self) -> int:
        """Width of what a critic reads beside the joint action (`critic_input`)."""
        if self.cfg.critic_input == "observations":
            return self.spec.num_agents * self.spec.obs_size
        return self.spec.state_size

    def make_critics(self) -> nn.ModuleList:
        return nn.ModuleList([
            Critic(self.critic_state_size + self.joint_width, self.cfg.critic_hidden_sizes,
                   self.cfg.activation) for _ in range(self.num_critics)])

    # -- actions -------------------------------------------------------------------------------
    def actor_of(self, agent: int, subpolicy: int = 0, target: bool = False) -> DeterministicActor:
        members = self.target_subpolicies if target else self.subpolicies
        return members[subpolicy][0 if self.cfg.share_params else agent]

    def optimizer_of(self, agent: int, subpolicy: int = 0) -> torch.optim.Optimizer:
        count = 1 if self.cfg.share_params else self.spec.num_agents
        return self.actor_optimizers[subpolicy * count + (0 if self.cfg.share_params else agent)]

    # Agent `agent`'s slice of padded observations (..., D), plus its one-hot id: the same
    # input the on-policy actors get.
    actor_input = OnPolicyAlgorithm.actor_input

    def policy_action(self, agent: int, obs: torch.Tensor, subpolicy: int = 0,
                      target: bool = False) -> torch.Tensor:
        """mu_agent(o) in the critic's view, differentiable: the tanh action, or a
        straight-through Gumbel-softmax one-hot for Discrete actions. obs: (B, D)."""
        out = self.actor_of(agent, subpolicy, target).unit_action(self.actor_input(obs, agent))
        if self.discrete[agent]:
            return F.gumbel_softmax(out, tau=self.cfg.gumbel_temperature, hard=True)
        return out

    def action_penalty(self, agent: int, obs: torch.Tensor, subpolicy: int = 0) -> torch.Tensor:
        """`action_regularization` x the mean squared pre-activation of mu_agent(o) (0. when
        the coefficient is 0): the term every actor loss adds."""
        coefficient = self.cfg.action_regularization
        if coefficient == 0:
            return torch.zeros((), device=obs.device)
        actor = self.actor_of(agent, subpolicy)
        feature = actor.body(self.actor_input(obs, agent))
        pre = actor.head(feature) if self.discrete[agent] else actor.head[0](feature)
        return coefficient * pre.pow(2).mean()

    def member_outputs(self, agent: int, obs: torch.Tensor, members: torch.Tensor,
                       target: bool = False) -> torch.Tensor:
        """Each row's tanh action or logits from the ensemble member its agent acted with."""
        if self.num_subpolicies == 1:
            return self.actor_of(agent, 0, target).unit_action(self.actor_input(obs, agent))
        out = torch.zeros(len(obs), self.widths[agent], device=obs.device)
        for k in range(self.num_subpolicies):
            rows = members == k
            if rows.any():
                out[rows] = self.actor_of(agent, k, target).unit_action(
                    self.actor_input(obs[rows], agent))
        return out

    def member_actions(self, agent: int, obs: torch.Tensor, members: torch.Tensor,
                       target: bool = False) -> torch.Tensor:
        """`policy_action` per row from the ensemble member that row's agent acted with (B,)."""
        out = self.member_outputs(agent, obs, members, target)
        if self.discrete[agent]:
            return F.gumbel_softmax(out, tau=self.cfg.gumbel_temperature, hard=True)
        return out

    def joint(self, actions: list[torch.Tensor]) -> torch.Tensor:
        """Per-agent critic-view actions (B, W_i) -> the critic's joint action (B, sum W_i)."""
        return torch.cat([a[..., : w] for a, w in zip(actions, self.widths, strict=True)], -1)

    def stored_joint(self, stored: torch.Tensor) -> torch.Tensor:
        """Replay actions (B, N, W) -> (B, sum W_i)."""
        return self.joint([stored[:, i] for i in range(self.spec.num_agents)])

    def q_value(self, critic: nn.Module, state: torch.Tensor, joint: torch.Tensor) -> torch.Tensor:
        return critic(torch.cat([state, joint], -1))

    def discount(self, batch: dict[str, torch.Tensor]) -> float | torch.Tensor:
        """What multiplies the bootstrapped value in a TD target: gamma, or per row gamma^m
        for n-step transitions that summed m rewards."""
        return self.cfg.gamma if self.cfg.n_step == 1 else batch["discount"]

    def noise_std(self, env_steps: int) -> float:
        """The Gaussian exploration std at `env_steps` (linear annealing)."""
        cfg = self.cfg
        return linear_schedule(cfg.exploration_noise, cfg.exploration_noise_final,
                               cfg.noise_anneal_steps, env_steps)

    def exploration_figures(self, env_steps: int) -> dict[str, float]:
        """What the trainer logs of the exploration schedule."""
        return {"charts/exploration_noise": self.noise_std(env_steps)}

    @torch.no_grad()
    def explore(self, obs: np.ndarray, env_steps: int, members: np.ndarray) -> np.ndarray:
        """Behaviour actions in the critic's view (E, N, W) for normalised obs (E, N, D).

        Before `learning_starts` env steps: uniform random actions. Then Box: mu(o) plus
        Gaussian noise, clipped to [-1, 1]; Discrete: a sample of softmax(logits)."""
        e, n = obs.shape[:2]
        out = np.zeros((e, n, self.action_width), np.float32)
        random = env_steps < self.cfg.learning_starts
        std = self.noise_std(env_steps)
        obs_t = torch.from_numpy(obs).to(self.device)
        members_t = torch.from_numpy(members).to(self.device)
        for i in range(n):
            w = self.widths[i]
            if self.discrete[i]:
                if random:
                    choice = self.rng.integers(0, w, size=e)
                else:
                    logits = self.member_outputs(i, obs_t[:, i], members_t[:, i])
                    probs = torch.softmax(logits.double(), -1).cpu().numpy()
                    choice = (probs.cumsum(-1) < self.rng.random((e, 1))).sum(-1).clip(0, w - 1)
                out[np.arange(e), i, choice] = 1.0
            elif random:
                out[:, i, :w] = self.rng.uniform(-1.0, 1.0, size=(e, w))
            else:
                mu = self.member_outputs(i, obs_t[:, i], members_t[:, i]).cpu().numpy()
                out[:, i, :w] = np.clip(mu + std * self.rng.standard_normal(mu.shape), -1.0, 1.0)
        return out

    def env_actions(self, critic_actions: np.ndarray) -> np.ndarray:
        """Critic-view actions (E, N, W) -> what `policies.envs` steps with (E, N, A)."""
        e, n = critic_actions.shape[:2]
        out = np.zeros((e, n, self.spec.action_size), np.float32)
        for i, space in enumerate(self.spec.action_spaces):
            if self.discrete[i]:
                out[:, i, 0] = critic_actions[:, i, : self.widths[i]].argmax(-1)
            else:
                low, high = space.low.ravel(), space.high.ravel()
                unit = critic_actions[:, i, : self.widths[i]]
                out[:, i, : self.widths[i]] = low + (unit + 1.0) * (high - low) / 2
        return out

    def draw_subpolicies(self, count: int) -> np.ndarray:
        """The ensemble member each agent of `count` new episodes acts with (count, N)."""
        return np.zeros((count, self.spec.num_agents), np.int64)

    # -- learning ------------------------------------------------------------------------------
    def step(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor,
             params: Any) -> None:
        params = list(params)
        optimizer.zero_grad()
        # Gradients of the stepped parameters only: an actor's loss runs through the critic,
        # whose weight gradients would cost a backward pass per layer and be thrown away.
        loss.backward(inputs=params)
        nn.utils.clip_grad_norm_(params, self.cfg.max_grad_norm)
        optimizer.step()

    def critic_step(self, batch: dict[str, torch.Tensor], targets: list[torch.Tensor]) -> float:
        """One Adam step of every critic k towards targets[k] (B,) at the stored joint action."""
        joint = self.stored_joint(batch["actions"])
        loss = sum(F.mse_loss(self.q_value(c, batch["state"], joint), y)
                   for c, y in zip(self.critics, targets, strict=True))
        self.step(self.critic_optimizer, loss, self.critics.parameters())
        return loss.item() / len(self.critics)

    def sequential_actor_update(self, batch: dict[str, torch.Tensor],
                                critic: nn.Module) -> float:
        """HADDPG/HATD3: the agents' actors one after another, in a fresh random order.

        Agent i_m ascends Q(x, a^{i_1..i_{m-1}}_new, mu^{i_m}(o), a^{i_{m+1}..}_old): its
        predecessors' actions from their updated actors, its successors' from their actors
        as they were when the round started. `last_order` and `last_joint_inputs` (agent ->
        the per-agent actions its loss read, detached) show the scheme to diagnostics and
        tests. With a shared actor every step moves all agents' actions, so the updated
        agents' actions are re-evaluated after each step (the successors keep theirs).
        """
        n, obs, state = self.spec.num_agents, batch["obs"], batch["state"]
        with torch.no_grad():
            actions = [self.policy_action(i, obs[:, i]) for i in range(n)]
        self.last_order = sequential_agent_order(self.rng, n)
        self.last_joint_inputs: dict[int, list[torch.Tensor]] = {}
        losses = []
        for m, i in enumerate(self.last_order):
            actions[i] = self.policy_action(i, obs[:, i])
            self.last_joint_inputs[i] = [a.detach().clone() for a in actions]
            loss = (-self.q_value(critic, state, self.joint(actions)).mean()
                    + self.action_penalty(i, obs[:, i]))
            self.step(self.optimizer_of(i), loss, self.actor_of(i).parameters())
            losses.append(loss.item())
            with torch.no_grad():
                for k in self.last_order[: m + 1] if self.cfg.share_params else [i]:
                    actions[k] = self.policy_action(k, obs[:, k])
        return float(np.mean(losses))

    def update_targets(self, actors: bool = True, critics: bool = True) -> None:
        if actors:
            polyak_update(self.target_subpolicies, self.subpolicies, self.cfg.tau)
        if critics:
            polyak_update(self.target_critics, self.critics, self.cfg.tau)

    def update(self, sample: Any) -> dict[str, float]:
        raise NotImplementedError

    # -- checkpointing -------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        return {"subpolicies": self.subpolicies, "target_subpolicies": self.target_subpolicies,
                "critics": self.critics, "target_critics": self.target_critics}

    def state_dict(self) -> dict[str, Any]:
        return {**{k: m.state_dict() for k, m in self.modules().items()},
                "actor_optimizers": [o.state_dict() for o in self.actor_optimizers],
                "critic_optimizer": (self.critic_optimizer.state_dict()
                                     if self.critic_optimizer else None),
                "gradient_steps": self.gradient_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, m in self.modules().items():
            m.load_state_dict(state[k])
        for opt, s in zip(self.actor_optimizers, state["actor_optimizers"], strict=True):
            opt.load_state_dict(s)
        if self.critic_optimizer:
            self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.gradient_steps = int(state["gradient_steps"])
