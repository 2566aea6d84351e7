"""TD-MPC training of the bundled ``TDMPCStyle`` on Pendulum-v1, on CPU in minutes.

Per sampled sub-trajectory ``(s_0..s_H, a_0..a_{H-1}, r_0..r_{H-1})`` (TD-MPC, Hansen et al. 2022, eq. 3–5):

- latent rollout ``z_0 = enc(s_0)``, ``z_{t+1} = d(z_t, a_t)``;
- consistency ``||z_{t+1} − sg(enc(s_{t+1}))||²``, reward ``(R(z_t, a_t) − c·r_t)²`` and value
  ``(Q_i(z_t, a_t) − sg(c·r_t + γ min_i Q⁻_i(enc(s_{t+1}), π(enc(s_{t+1})))))²`` summed with weights ρ^t,
  where ``Q⁻`` is an exponential moving average of the model (the target network) and ``c`` the reward scale;
- policy improvement ``−min_i Q_i(sg(z_t), π(sg(z_t)))`` (only the policy's parameters are stepped).

Data: the policy with Gaussian exploration noise (uniform random actions for the first episodes) fills a
replay buffer of whole episodes; after each collected episode the model takes ``updates_per_step`` gradient
steps per environment step, as TD-MPC does. Everything is seeded; on one CPU thread runs are repeatable.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeprune.control.env import ENV_ID, ActFn, rollout
from edgeprune.control.planner import Planner, PlannerConfig, policy_act_fn
from edgeprune.control.replay import Replay
from edgeprune.errors import EdgepruneError
from edgeprune.io import write_atomic
from edgeprune.models.tdmpc import TDMPCStyle


@dataclass(frozen=True)
class LoopConfig:
    """What every world model's training loop shares: data collection, update rate, evaluation."""

    env_id: str = ENV_ID
    action_high: float = 2.0
    env_steps: int = 6_000  # total environment steps, seed episodes included
    seed_steps: int = 1_000  # uniform random actions first (TD-MPC's seed_steps)
    episode_steps: int = 200  # Pendulum-v1's time limit
    updates_per_step: float = 1.0
    batch_size: int = 256
    lr: float = 1e-3  # TD-MPC's lr for its small state-based models
    reward_scale: float = 0.1  # Pendulum rewards are in [−16.3, 0]; the model learns 0.1·r
    grad_clip: float = 10.0
    expl_std: tuple[float, float] = (0.5, 0.05)  # exploration noise (model units), linear over training
    eval_every: int = 10  # episodes between evaluations (training curve)
    eval_seeds: tuple[int, ...] = (10_000, 10_001, 10_002)
    eval_planner: bool = False  # also score the planner (``plan_act``) at each evaluation: the curve's second line
    seed: int = 0
    model: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def make_model(self) -> nn.Module:
        raise NotImplementedError

    def make_learner(self, model: nn.Module, lr: float | None = None) -> Any:
        """An object with ``sample(replay, rng) -> batch`` and ``update(batch) -> {loss name: value}``."""
        raise NotImplementedError

    def explore_act(self, model: nn.Module, std: float, rng: np.random.Generator, seed: int) -> ActFn:
        """The behaviour for one collected episode after the seed episodes (``std``: the exploration noise)."""
        raise NotImplementedError

    def eval_act(self, model: nn.Module) -> ActFn:
        """The controller scored on ``eval_seeds`` for the training curve."""
        raise NotImplementedError

    def plan_act(self, model: nn.Module) -> ActFn:
        """The planner scored beside :meth:`eval_act` when ``eval_planner`` is set."""
        raise NotImplementedError


@dataclass(frozen=True)
class TrainConfig(LoopConfig):
    """TD-MPC on ``TDMPCStyle``; exploration and the training curve use the learned policy."""

    horizon: int = 3  # TD-MPC's training horizon
    rho: float = 0.5  # temporal weight of the horizon's losses
    consistency_coef: float = 2.0  # TD-MPC coefficients
    reward_coef: float = 0.5
    value_coef: float = 0.1
    discount: float = 0.975  # TD-MPC2's heuristic for 200-step episodes: (200/5 − 1)/(200/5)
    tau: float = 0.01  # target network EMA
    model: dict = field(  # TDMPCStyle's arguments; depth None: the bundled shape (encoder 1 hidden layer, others 2)
        default_factory=lambda: {"obs_dim": 3, "action_dim": 1, "latent_dim": 32, "hidden_dim": 128, "depth": None}
    )

    def make_model(self) -> nn.Module:
        return TDMPCStyle(**self.model)

    def make_learner(self, model: nn.Module, lr: float | None = None) -> Learner:
        return Learner(model, self, lr)

    def explore_act(self, model: nn.Module, std: float, rng: np.random.Generator, seed: int) -> ActFn:
        return policy_act_fn(model, self.action_high, noise=std, rng=rng)

    def eval_act(self, model: nn.Module) -> ActFn:
        return policy_act_fn(model, self.action_high)

    def planner_config(self) -> PlannerConfig:
        """TD-MPC's planner discounting as the value was trained."""
        return PlannerConfig(discount=self.discount)

    def plan_act(self, model: nn.Module) -> ActFn:
        return Planner(model, self.planner_config(), self.action_high).act_fn(0)


# TD-MPC's recipe per task: only what the task forces differs from Pendulum-v1's defaults above
TASKS: dict[str, dict[str, Any]] = {
    "pendulum": {},
    "cartpole-swingup": {
        "env_id": "dm_control/cartpole-swingup-v0",  # DeepMind Control Suite (dm-control via shimmy), action repeat 8
        "action_high": 1.0,
        "episode_steps": 125,  # 1000 physics steps / 8
        "env_steps": 12_500,  # TD-MPC's 100 k physics steps (its curve: ~750-850 there)
        "discount": 0.96,  # the same heuristic for 125-decision episodes: (125/5 − 1)/(125/5)
        "eval_planner": True,
        "model": {"obs_dim": 5, "action_dim": 1},  # reward per decision in [0, 8]: 0.1·r like Pendulum's scale
    },
}


def task_config(task: str, **overrides: Any) -> TrainConfig:
    """TD-MPC's :class:`TrainConfig` for ``task`` (a key of :data:`TASKS`); ``overrides`` replace fields, and a
    ``model`` override is merged into the task's model arguments."""
    if task not in TASKS:
        raise EdgepruneError(f"unknown control task {task!r}", expected=f"one of {', '.join(TASKS)}",
                             fix="pick a listed task")  # fmt: skip
    fields = {**TASKS[task], **overrides}
    fields["model"] = {**TrainConfig().model, **TASKS[task].get("model", {}), **overrides.get("model", {})}
    return TrainConfig(**fields)


@dataclass
class TrainResult:
    model: nn.Module
    replay: Replay
    curve: dict[str, list]
    seconds: float  # wall
    config: LoopConfig
    cpu_seconds: float = 0.0  # process CPU time (the shared machine makes wall time meaningless)


def tdmpc_losses(
    model: nn.Module, target: nn.Module, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor, cfg: TrainConfig
) -> dict[str, torch.Tensor]:
    """The world-model losses on a time-major batch (``obs (H+1, B, o)``, ``action (H, B, a)``, ``reward (H, B)``).

    Returns ``total`` (to backpropagate), ``consistency``, ``reward``, ``value`` and the rolled-out latents ``zs``
    (H, B, L) for the policy update.
    """
    H = action.shape[0]
    with torch.no_grad():
        next_z = model.encode(obs[1:])
        next_q = target.q_values(next_z, model.pi(next_z)).min(-1).values
        td_target = cfg.reward_scale * reward + cfg.discount * next_q
    z = model.encode(obs[0])
    zs, consistency = [], 0.0
    for t in range(H):
        zs.append(z)
        z = model.next(z, action[t])
        consistency = consistency + cfg.rho**t * (z - next_z[t]).pow(2).mean()
    zs_t = torch.stack(zs)
    weights = cfg.rho ** torch.arange(H, dtype=torch.float32)
    r_err = (model.reward_of(zs_t, action).squeeze(-1) - cfg.reward_scale * reward).pow(2).mean(1)
    q_err = (model.q_values(zs_t, action) - td_target[..., None]).pow(2).mean((1, 2))
    losses = {
        "consistency": consistency / H,
        "reward": (weights * r_err).sum() / H,
        "value": (weights * q_err).sum() / H,
    }
    losses["total"] = (
        cfg.consistency_coef * losses["consistency"]
        + cfg.reward_coef * losses["reward"]
        + cfg.value_coef * losses["value"]
    )
    losses["zs"] = zs_t
    return losses


class Learner:
    """Model, target network and the two optimisers; :meth:`update` is one TD-MPC gradient step."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, lr: float | None = None):
        self.model, self.cfg = model, cfg
        self.target = copy.deepcopy(model).requires_grad_(False)
        lr = lr or cfg.lr
        policy_ids = {id(p) for p in model.policy.parameters()}
        self.optim = torch.optim.Adam([p for p in model.parameters() if id(p) not in policy_ids], lr=lr)
        self.pi_optim = torch.optim.Adam(model.policy.parameters(), lr=lr)

    def sample(self, replay: Replay, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        return replay.sample(self.cfg.batch_size, self.cfg.horizon, rng)

    def update(self, batch: tuple[torch.Tensor, ...]) -> dict[str, float]:
        cfg, model = self.cfg, self.model
        model.train()
        losses = tdmpc_losses(model, self.target, *batch, cfg)
        self.optim.zero_grad(set_to_none=True)
        losses["total"].backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        self.optim.step()

        zs = losses["zs"].detach()
        weights = cfg.rho ** torch.arange(zs.shape[0], dtype=torch.float32)
        q = model.q_values(zs, model.pi(zs)).min(-1).values  # (H, B)
        pi_loss = -(weights * q.mean(1)).sum() / zs.shape[0]
        self.pi_optim.zero_grad(set_to_none=True)
        pi_loss.backward()
        nn.utils.clip_grad_norm_(model.policy.parameters(), cfg.grad_clip)
        self.pi_optim.step()
        model.zero_grad(set_to_none=True)  # the Q heads got gradients from the policy loss: not applied

        with torch.no_grad():
            for p, tp_ in zip(model.parameters(), self.target.parameters(), strict=True):
                tp_.lerp_(p, cfg.tau)
        out = {k: float(v.detach()) for k, v in losses.items() if k != "zs"}
        out["policy"] = float(pi_loss.detach())
        return out


def train(cfg: LoopConfig | None = None, log: Callable[[str], None] | None = None) -> TrainResult:
    """Train ``cfg``'s world model from scratch (a ``TDMPCStyle`` by default); ``log`` gets a line per evaluation."""
    cfg = cfg or TrainConfig()
    log = log or (lambda _line: None)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = cfg.make_model()
    learner = cfg.make_learner(model)
    replay = Replay()
    curve: dict[str, list] = {k: [] for k in ("episode", "env_step", "train_return", "seconds", "cpu_seconds")}
    curve.update({"eval_env_step": [], "eval_return": [], "loss_step": [], "losses": {}})
    if cfg.eval_planner:
        curve["eval_planner_return"] = []
    episodes = math.ceil(cfg.env_steps / cfg.episode_steps)
    seed_episodes = math.ceil(cfg.seed_steps / cfg.episode_steps)
    start, cpu0, steps, updates = time.perf_counter(), time.process_time(), 0, 0
    for ep in range(episodes):
        if ep < seed_episodes:
            act = _uniform(rng, model.action_dim, cfg.action_high)
        else:
            frac = (ep - seed_episodes) / max(1, episodes - seed_episodes - 1)
            std = cfg.expl_std[0] + frac * (cfg.expl_std[1] - cfg.expl_std[0])
            act = cfg.explore_act(model.eval(), std, rng, seed=cfg.seed * 100_000 + ep)
        ret, trace = rollout(act, [cfg.seed * 100_000 + ep], cfg.env_id, record=True)
        replay.add(trace["obs"][0], trace["action"][0] / cfg.action_high, trace["reward"][0])
        steps += trace["reward"].shape[1]
        curve["episode"].append(ep)
        curve["env_step"].append(steps)
        curve["train_return"].append(float(ret[0]))
        if ep + 1 < seed_episodes:
            curve["seconds"].append(time.perf_counter() - start)
            curve["cpu_seconds"].append(time.process_time() - cpu0)
            continue
        n_updates = int(cfg.updates_per_step * (steps if ep + 1 == seed_episodes else trace["reward"].shape[1]))
        sums: dict[str, float] = {}
        for _ in range(n_updates):
            for k, v in learner.update(learner.sample(replay, rng)).items():
                sums[k] = sums.get(k, 0.0) + v
        updates += n_updates
        curve["loss_step"].append(updates)
        for k, v in sums.items():
            curve["losses"].setdefault(k, []).append(v / max(1, n_updates))
        curve["seconds"].append(time.perf_counter() - start)
        curve["cpu_seconds"].append(time.process_time() - cpu0)
        if (ep + 1) % cfg.eval_every == 0 or ep + 1 == episodes:
            ev = rollout(cfg.eval_act(model.eval()), list(cfg.eval_seeds), cfg.env_id)
            curve["eval_env_step"].append(steps)
            curve["eval_return"].append(float(np.mean(ev)))
            planned = ""
            if cfg.eval_planner:
                planner_return = float(np.mean(rollout(cfg.plan_act(model), list(cfg.eval_seeds), cfg.env_id)))
                curve["eval_planner_return"].append(planner_return)
                planned = f"  planner {planner_return:8.1f}"
            losses = " ".join(f"{k} {v / max(1, n_updates):.4f}" for k, v in sums.items() if k != "total")
            log(
                f"episode {ep + 1}/{episodes}  steps {steps}  train return {ret[0]:8.1f}  "
                f"eval {np.mean(ev):8.1f}{planned}  losses {losses}  "
                f"{time.process_time() - cpu0:5.0f} CPU-s"
            )
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return TrainResult(model.eval(), replay, curve, seconds, cfg, cpu)


def finetune(
    model: nn.Module,
    replay: Replay,
    steps: int,
    cfg: LoopConfig | None = None,
    seed: int = 0,
    lr: float | None = None,
) -> tuple[nn.Module, dict[str, float]]:
    """A copy of ``model`` after ``steps`` gradient steps of ``cfg``'s losses (TD-MPC's by default; its target
    network = the copy at start) on ``replay``.

    Returns the copy and the mean losses of the first and last 10 % of steps (``first_*``, ``last_*``).
    """
    cfg = cfg or TrainConfig()
    tuned = copy.deepcopy(model)
    rng = np.random.default_rng(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        learner = cfg.make_learner(tuned, lr=lr)
        history = [learner.update(learner.sample(replay, rng)) for _ in range(steps)]
    n = max(1, steps // 10)
    summary = {}
    for k in history[0] if history else ("total",):
        summary[f"first_{k}"] = float(np.mean([h[k] for h in history[:n]])) if history else float("nan")
        summary[f"last_{k}"] = float(np.mean([h[k] for h in history[-n:]])) if history else float("nan")
    return tuned.eval(), summary


def save(result: TrainResult, weights: str | Path, replay: str | Path | None = None) -> None:
    """State dict to ``weights`` (load with :func:`load_model`), optionally the replay buffer (``.npz``)."""
    Path(weights).parent.mkdir(parents=True, exist_ok=True)
    torch.save(result.model.state_dict(), weights)
    if replay is not None:
        result.replay.save(replay)


def load_model(weights: str | Path, cfg: LoopConfig | None = None) -> nn.Module:
    """``cfg``'s model (a ``TDMPCStyle`` of the default Pendulum sizes by default) with weights loaded
    (``weights_only=True``)."""
    model = (cfg or TrainConfig()).make_model()
    model.load_state_dict(torch.load(weights, weights_only=True))
    return model.eval()


def _uniform(rng: np.random.Generator, action_dim: int, high: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda obs: rng.uniform(-high, high, size=(len(obs), action_dim)).astype(np.float32)


def train_and_save(
    out_dir: str | Path,
    cfg: TrainConfig | None = None,
    log: Callable[[str], None] | None = None,
    stem: str = "tdmpc_pendulum",
) -> TrainResult:
    """Train, then write ``<stem>.pt`` (state dict), ``<stem>_replay.npz``, ``<stem>_train.json`` (config, curve,
    seconds) and, when matplotlib is installed, ``<stem>_train.png`` into ``out_dir``."""
    import json
    import platform

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = train(cfg, log)
    save(result, out / f"{stem}.pt", out / f"{stem}_replay.npz")
    info = {
        "config": result.config.to_dict(),
        "seconds": round(result.seconds, 1),
        "cpu_seconds": round(result.cpu_seconds, 1),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "transitions": result.replay.transitions,
        "curve": result.curve,
    }
    write_atomic(out / f"{stem}_train.json", json.dumps(info, indent=1) + "\n")
    with contextlib.suppress(ImportError):  # matplotlib is the [plot] extra
        plot_curve(
            result.curve, out / f"{stem}_train.png", f"{type(result.model).__name__} on {result.config.env_id} (CPU)"
        )
    return result


def plot_curve(curve: dict[str, list], path: str | Path, title: str) -> None:
    """Training returns (exploring) and evaluations against env steps; losses against updates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.plot(curve["env_step"], curve["train_return"], ".-", alpha=0.6, label="training episode (with noise)")
    ax1.plot(curve["eval_env_step"], curve["eval_return"], "o-", label="policy, 3 held-out seeds")
    if "eval_planner_return" in curve:
        ax1.plot(curve["eval_env_step"], curve["eval_planner_return"], "s-", label="planner, 3 held-out seeds")
    ax1.set_xlabel("environment steps")
    ax1.set_ylabel("return")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    for k, v in curve["losses"].items():
        if k != "total" and min(v) > 0:
            ax2.semilogy(curve["loss_step"], v, label=k)
    ax2.set_xlabel("gradient updates")
    ax2.set_ylabel("mean loss per episode's updates")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
