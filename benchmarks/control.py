"""Closed-loop return of pruned TD-MPC-style models on Pendulum-v1: plain Torch-Pruning vs edgeprune's modes.

The harder task, DeepMind Control's cart-pole swing-up: ``train --task cartpole-swingup`` (its models go to
``benchmarks/results/control/cartpole/models``); ``run`` reads the task back from the model's train JSON.

Three steps (each command is recorded in the JSON it writes):

    # 1. train more models (the bundled one is seed 0): seed s -> <models>/tdmpc_pendulum_seed<s>.pt
    PYTHONPATH=. python benchmarks/control.py train --seed 1 --models benchmarks/results/control/models
    # 2. one trained model -> <out>/runs_<name>.json (prune, fine-tune, evaluate every method and fraction)
    PYTHONPATH=. python benchmarks/control.py run --model bundled
    PYTHONPATH=. python benchmarks/control.py run --model benchmarks/results/control/models/tdmpc_pendulum_seed1.pt
    # 3. every runs_*.json in <out> -> control.md (tables, paired CIs) and control.png
    PYTHONPATH=. python benchmarks/control.py render

Methods, at 20/40/60/80 % of parameters removed, each without and with a short fine-tune:

- ``torch-pruning``: Torch-Pruning's own ``MetaPruner`` as its users run it — global ranking,
  ``GroupMagnitudeImportance(p=2)``, ``round_to=8`` (SimNorm), the output heads in ``ignored_layers``, a
  ``forward_fn`` that unrolls the latent twice so ``z`` and ``next_z`` couple; its channel ratio bisected until
  the parameters removed match the fraction.
- ``vanilla``: ``prune(..., Budget(total=f), mode="vanilla")`` (whole-model groups, latent prunable).
- ``component``: ``Budget(total=f)``, ``mode="component"`` (one ranking across components, interfaces kept).
- ``component+sens``: ``Budget(total=f, allocate="sensitivity")`` with a sensitivity report measured on the
  task metric — the planner's closed-loop return on ``--sensitivity-episodes`` episodes with env seeds 3000…,
  disjoint from the evaluation seeds (2000…) and the training seeds.
- ``component+proxy`` (not run by default): the same allocation from the data-free output-fidelity proxy over
  256 replay-buffer samples.

Evaluation: the latent MPPI planner on ``--episodes`` seeded episodes (seeds 2000…); every model of a trained
network sees the same seeds, so differences are paired. Models with bit-identical weights are evaluated once.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch_pruning as tp
from stats import ci95
from torch import nn

from edgeprune.control import (
    RECURRENT_PLANNER,
    LoopConfig,
    PlannerConfig,
    Replay,
    RSSMTrainConfig,
    TrainConfig,
    finetune,
    load_model,
    planner_for,
    rollout,
)
from edgeprune.control.env import random_act_fn
from edgeprune.control.pretrained import EVAL_SEED0, PLANNER_SEED, STEM, pretrained_dir
from edgeprune.control.train import TASKS, task_config, train, train_and_save
from edgeprune.io import write_atomic
from edgeprune.prune import Budget, SensitivityReport, prune, recurrent, sensitivity


@dataclass(frozen=True)
class Arch:
    """A world model the benchmark trains, prunes and plans with."""

    config: type[LoopConfig]  # its training (and fine-tune) losses and model sizes
    stem: str  # file stem of its trained weights
    planner: PlannerConfig
    title: str
    heads: Callable[[nn.Module], list[nn.Module]]  # output layers plain Torch-Pruning must leave alone
    widths: Callable[[nn.Module], dict[str, int]]  # the state widths a run records
    tp_forward: Callable | None = None  # Torch-Pruning's forward_fn (None: model(*inputs))
    round_to: int | None = None


FRACTIONS = (0.2, 0.4, 0.6, 0.8)
METHODS = ("torch-pruning", "vanilla", "component", "component+sens")
ALL_METHODS = (*METHODS, "component+proxy")
SENSITIVITY_SEED0 = 3000  # sensitivity episodes: disjoint from training (seed * 100000 + ep) and evaluation (2000…)
OUT = Path("benchmarks/results/control")
TASK_OUT = {"pendulum": OUT, "cartpole-swingup": OUT / "cartpole"}  # default output folder per task
TASK_STEMS = {"cartpole-swingup": "tdmpc_cartpole"}  # trained weights' file stem (Pendulum: the arch's stem)


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def weights_digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode() + str(tuple(t.shape)).encode() + t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def persisted(metric: Callable[[nn.Module], float], path: Path, context: dict) -> Callable[[nn.Module], float]:
    """``metric`` whose values are kept in ``path`` by weights digest as they are measured: a sensitivity
    measurement killed part way (on the paper-shape model it takes about an hour) resumes where it stopped.
    Values measured under another ``context`` (seeds, planner) are discarded."""
    saved = json.loads(path.read_text()) if path.exists() else {}
    values: dict[str, float] = saved.get("values", {}) if saved.get("context") == context else {}

    def measure(m: nn.Module) -> float:
        digest = weights_digest(m)
        if digest not in values:
            values[digest] = metric(m)
            write_atomic(path, json.dumps({"context": context, "values": values}, indent=1) + "\n")
        return values[digest]

    return measure


# ---------------------------------------------------------------------------------------------------- methods


def tdmpc_forward(m: nn.Module, args: tuple[torch.Tensor, ...]):
    """The latent unrolled twice, so Torch-Pruning couples ``z`` and ``next_z``."""
    obs, action = args
    z = m.encode(obs)
    return m.next(m.next(z, action), action), m.reward_of(z, action), m.q_values(z, action), m.pi(z)


def tdmpc_heads(m: nn.Module) -> list[nn.Module]:
    return [m.reward[-1], m.policy[-2], *(q[-1] for q in m.qs)]


def rssm_heads(m: nn.Module) -> list[nn.Module]:
    decoder = [m.decoder.out] if m.decoder is not None else []
    return [m.reward.out, m.cont.out, m.policy[-2], *decoder]


ARCHS = {
    "tdmpc": Arch(
        TrainConfig,
        STEM,
        PlannerConfig(),
        "pruned TD-MPC-style models",
        tdmpc_heads,
        lambda m: {"latent": m.encoder[-3].out_features},
        tdmpc_forward,
        round_to=8,  # SimNorm groups of 8
    ),
    "rssm": Arch(
        RSSMTrainConfig,
        "rssm_pendulum",
        RECURRENT_PLANNER,
        "pruned recurrent (RSSM-style) models",
        rssm_heads,
        lambda m: {"latent": m.prior[-2].out_features, "deter": m.dynamics.cell.hidden_size},
    ),
}


def torch_pruning(
    model: nn.Module, fraction: float, inputs: tuple[torch.Tensor, ...], arch: Arch
) -> tuple[nn.Module, float]:
    """Plain Torch-Pruning at ``fraction`` of parameters; returns the model and the channel ratio used.

    Torch-Pruning 1.6 cannot trace a GRU cell (``IndexError`` in ``index_mapping``), so on a recurrent model its
    ``MetaPruner`` runs on the graph edgeprune's recurrent hooks make (``prune.recurrent.traceable``), with
    group magnitude extended to the cell's weights — Torch-Pruning's algorithm as if it supported GRUs.
    """

    def run(ratio: float) -> nn.Module:
        work = copy.deepcopy(model)
        with recurrent.traceable(work) as (traced, pruners):
            rnn = traced is not work
            importance = recurrent.MagnitudeImportance(p=2) if rnn else tp.importance.GroupMagnitudeImportance(p=2)
            pruner = tp.pruner.MetaPruner(
                traced, inputs, importance=importance, global_pruning=True, pruning_ratio=ratio,
                round_to=arch.round_to, ignored_layers=arch.heads(work), forward_fn=arch.tp_forward,
                customized_pruners=pruners if rnn else None,
            )  # fmt: skip
            pruner.step()
        return work

    n0 = param_count(model)
    lo, hi = 0.0, 0.99
    best = (float("inf"), 0.0, model)
    for _ in range(16):  # removed fraction is monotone (in steps) in the channel ratio
        mid = (lo + hi) / 2
        pruned = run(mid)
        got = 1 - param_count(pruned) / n0
        if abs(got - fraction) < best[0]:
            best = (abs(got - fraction), mid, pruned)
        lo, hi = (mid, hi) if got < fraction else (lo, mid)
    return best[2], best[1]


def calibration(replay: Replay, arity: int, n: int = 256, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """``n`` replay samples as the model's inputs: ``(obs, action)`` (``arity`` 2) or ``(obs,)``."""
    obs = np.concatenate([o[:-1] for o in replay.obs])
    action = np.concatenate(replay.action)
    idx = np.random.default_rng(seed).choice(len(obs), size=n, replace=False)
    return (torch.tensor(obs[idx]).float(), torch.tensor(action[idx]).float())[:arity]


def pruner_for(method: str, model: nn.Module, inputs, report, arch: Arch) -> Callable[[float], tuple[nn.Module, dict]]:
    """``fraction -> (pruned model, details)`` for one method; ``report``: the sensitivity report it allocates by."""

    def run(f: float) -> tuple[nn.Module, dict]:
        if method == "torch-pruning":
            pruned, ratio = torch_pruning(model, f, inputs, arch)
            return pruned, {"channel_ratio": round(ratio, 4)}
        if method == "vanilla":
            r = prune(model, inputs, Budget(total=f), mode="vanilla")
        elif method == "component":
            r = prune(model, inputs, Budget(total=f), mode="component")
        else:
            r = prune(model, inputs, Budget(total=f, allocate="sensitivity"), mode="component", sensitivity=report)
        return r.model, {"components_removed": {c.name: c.achieved for c in r.report.components}}

    return run


# ---------------------------------------------------------------------------------------------------- commands


BUNDLED_SHAPE = {"hidden_dim": TrainConfig().model["hidden_dim"], "depth": TrainConfig().model["depth"]}


def shape_of(model_config: dict) -> dict:
    """``{"hidden_dim", "depth"}`` of a ``TrainConfig.model`` (older train JSONs have no depth: the bundled shape)."""
    return {"hidden_dim": model_config["hidden_dim"], "depth": model_config.get("depth")}


def shape_tag(shape: dict) -> str:
    """``""`` for the bundled shape, else ``w<hidden>d<depth>``: file names and tables keep the shapes apart."""
    return "" if shape == BUNDLED_SHAPE else f"w{shape['hidden_dim']}d{shape['depth']}"


def model_config(hidden: int, depth: int | None) -> dict:
    return {**TrainConfig().model, "hidden_dim": hidden, "depth": depth}


def cmd_train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    arch = ARCHS[args.arch]
    options = {"env_steps": args.env_steps} if args.env_steps else {}
    task_stem = arch.stem if args.task == "pendulum" else TASK_STEMS[args.task]
    stem = f"{task_stem}_seed{args.seed}"
    if args.arch == "tdmpc":  # --hidden/--depth: the TD-MPC model's shape
        options["model"] = {"hidden_dim": args.hidden, "depth": args.depth}
        tag = shape_tag(shape_of(options["model"]))
        stem = f"{task_stem}_{tag}_seed{args.seed}" if tag else stem
        cfg = task_config(args.task, seed=args.seed, **options)
    elif args.task != "pendulum":
        raise SystemExit(f"--task {args.task}: only the TD-MPC model (--arch tdmpc) is set up for it")
    else:
        cfg = arch.config(seed=args.seed, **options)
    models = Path(args.models or (TASK_OUT[args.task] / "models"))
    train_and_save(models, cfg, log=lambda line: print(line, flush=True), stem=stem)


def cmd_probe(args: argparse.Namespace, command: str) -> None:
    """Time a short training run per width (CPU seconds) and extrapolate to the full schedule by gradient updates."""
    torch.set_num_threads(args.threads)
    full = TrainConfig()
    full_updates = int(full.updates_per_step * full.env_steps)
    rows = []
    for width in (int(w) for w in args.widths.split(",")):
        cfg = TrainConfig(env_steps=args.env_steps, seed_steps=args.env_steps // 2,
                          updates_per_step=args.updates_per_step, model=model_config(width, args.depth))  # fmt: skip
        result = train(cfg)
        updates = result.curve["loss_step"][-1]
        projected = result.cpu_seconds * full_updates / updates
        rows.append({"hidden_dim": width, "depth": args.depth, "params": param_count(result.model),
                     "updates": updates, "cpu_seconds": round(result.cpu_seconds, 1),
                     "cpu_seconds_per_update": round(result.cpu_seconds / updates, 4),
                     "projected_cpu_minutes": round(projected / 60, 1)})  # fmt: skip
        print(f"width {width} depth {args.depth}: {rows[-1]['params']:,} params, {updates} updates in "
              f"{result.cpu_seconds:.1f} CPU s -> {projected / 60:.1f} CPU-min for {full_updates} updates")  # fmt: skip
    fits = [r for r in rows if r["projected_cpu_minutes"] <= args.budget_minutes * 1.1]
    chosen = max(fits, key=lambda r: r["hidden_dim"])["hidden_dim"] if fits else None
    info = {"command": command, "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "full_schedule": {"env_steps": full.env_steps, "updates": full_updates},
            "budget_cpu_minutes": args.budget_minutes, "rule": "widest with projected CPU-min <= 1.1 x budget",
            "chosen_hidden_dim": chosen, "rows": rows,
            "note": "process_time of one thread under nice 19 on a shared 2-core machine; linear in updates "
                    "(collection and evaluation episodes are < 1 % of the probe's time)"}  # fmt: skip
    out = Path(args.out) / "training_probe.json"
    write_atomic(out, json.dumps(info, indent=1) + "\n")
    print(f"chosen width {chosen} (depth {args.depth}); wrote {out}")


def load_trained(model: str, arch: Arch) -> tuple[nn.Module, Path, LoopConfig]:
    """``bundled`` (the TD-MPC model) or a ``<stem>.pt`` -> (model, weights path, its training config). A trained
    file's shape is read back from the ``<stem>_train.json`` beside it (``train`` writes it), never assumed."""
    if model == "bundled":
        if arch is not ARCHS["tdmpc"]:
            raise SystemExit("--model bundled is the TD-MPC model: give a trained .pt for this --arch")
        weights = pretrained_dir() / f"{STEM}.pt"
        return load_model(weights), weights, TrainConfig()
    weights = Path(model)
    train_json = weights.with_name(weights.stem + "_train.json")
    if not train_json.exists():
        raise SystemExit(f"{train_json} not found: the model's shape is read from the train JSON written beside "
                         f"{weights.name} by `benchmarks/control.py train`")  # fmt: skip
    saved = json.loads(train_json.read_text())["config"]
    task_keys = {k for t in TASKS.values() for k in t} - {"model"}  # env, action scale, discount: what a task sets
    cfg = arch.config(model=saved["model"], **{k: v for k, v in saved.items() if k in task_keys})
    return load_model(weights, cfg), weights, cfg


def cmd_run(args: argparse.Namespace, command: str) -> None:
    torch.set_num_threads(args.threads)
    start, cpu0 = time.perf_counter(), time.process_time()
    arch = ARCHS[args.arch]
    model, weights, cfg = load_trained(args.model, arch)
    config = cfg.model
    planner_cfg = cfg.planner_config() if isinstance(cfg, TrainConfig) else arch.planner  # discount as trained
    stems = (arch.stem, *TASK_STEMS.values())
    name = (
        "seed0"
        if args.model == "bundled"
        else next((weights.stem.removeprefix(f"{s}_") for s in stems if weights.stem.startswith(f"{s}_")), weights.stem)
    )
    replay = Replay.load(weights.with_name(weights.stem + "_replay.npz"))
    seeds = list(range(EVAL_SEED0, EVAL_SEED0 + args.episodes))
    fractions = [float(f) for f in args.fractions.split(",")]
    methods = args.methods.split(",")
    torch.manual_seed(0)
    inputs = model.example_inputs()
    n0 = param_count(model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def log(line: str) -> None:
        print(f"[{name} {time.process_time() - cpu0:6.0f} CPU-s] {line}", flush=True)

    def planned_returns(m: nn.Module, env_seeds: list[int]) -> list[float]:
        act = planner_for(m, planner_cfg, cfg.action_high).act_fn(PLANNER_SEED)
        return [float(r) for r in rollout(act, env_seeds, cfg.env_id)]

    def evaluate(m: nn.Module) -> list[float]:
        return planned_returns(m, seeds)

    def tune(m: nn.Module) -> nn.Module:
        return finetune(m, replay, args.finetune_steps, cfg, seed=0, lr=args.finetune_lr)[0]

    path = out / f"runs_{name}.json"
    variants = [False, True] if args.finetune == "both" else [args.finetune == "only"]
    info = json.loads(path.read_text()) if path.exists() else {}  # resume: points already there are kept
    if info and (info["eval_seeds"] != seeds or info["planner"] != planner_cfg.to_dict()):
        raise SystemExit(f"{path} was made with other seeds or planner settings: move it away first")
    baseline = info.get("baseline") or {
        "random": [float(r) for r in rollout(random_act_fn(0, model.action_dim, cfg.action_high), seeds, cfg.env_id)],
        "planner": evaluate(model),
    }
    if True in variants and "planner_finetuned" not in baseline:
        baseline["planner_finetuned"] = evaluate(tune(model))
    log(f"unpruned {ci95(baseline['planner'])[0]:.1f}, random {ci95(baseline['random'])[0]:.1f}")
    sens_seeds = list(range(SENSITIVITY_SEED0, SENSITIVITY_SEED0 + args.sensitivity_episodes))

    def closed_loop_return(m: nn.Module) -> float:
        return float(np.mean(planned_returns(m, sens_seeds)))

    progress = out / f"sensitivity_progress_{name}.json"  # measured cuts, so a killed measurement resumes

    reports, sens_s = {}, dict(info.get("sensitivity_seconds", {}))
    for method, key, stem in (("component+sens", "sensitivity", "sensitivity"),
                              ("component+proxy", "sensitivity_proxy", "sensitivity_proxy")):  # fmt: skip
        if method not in methods:
            continue
        if info.get(key):  # measured by an earlier run of this command: reuse it, so resumed points agree
            reports[method] = SensitivityReport.from_dict(info[key])
            continue
        t = time.perf_counter()
        if method == "component+sens":
            metric_name = f"closed-loop return, {len(sens_seeds)} episodes (seeds {sens_seeds[0]}–{sens_seeds[-1]})"
            metric = persisted(closed_loop_return, progress, {"seeds": sens_seeds, "planner": planner_cfg.to_dict()})
            reports[method] = sensitivity(model, inputs, metric=metric, metric_name=metric_name)
        else:
            reports[method] = sensitivity(model, calibration(replay, len(inputs)))
        sens_s[key] = round(time.perf_counter() - t, 1)
        log(f"{key} ({sens_s[key]:.0f} s):\n{reports[method]}")
        reports[method].plot(out / f"{stem}_{name}.png")
    runs: list[dict] = info.get("runs", [])
    evaluated = {r["weights_digest"]: r["returns"] for r in runs}
    commands = [*info.get("commands", []), command]
    info = {"commands": commands, "arch": args.arch, "env_id": cfg.env_id, "model": name, "weights": str(weights),
            "model_config": config, "params": n0,
            "eval_seeds": seeds,
            "planner": planner_cfg.to_dict(), "finetune_steps": args.finetune_steps, "finetune_lr": args.finetune_lr,
            "torch_threads": torch.get_num_threads(), "baseline": baseline,
            "sensitivity_seeds": sens_seeds,
            "sensitivity": reports["component+sens"].to_dict() if "component+sens" in reports
            else info.get("sensitivity"),
            "sensitivity_proxy": reports["component+proxy"].to_dict() if "component+proxy" in reports
            else info.get("sensitivity_proxy"),
            "sensitivity_seconds": sens_s,
            "runs": runs, "seconds": info.get("seconds", 0.0), "cpu_seconds": info.get("cpu_seconds", 0.0)}  # fmt: skip
    seconds0, cpu_seconds0 = info["seconds"], info["cpu_seconds"]
    write_atomic(path, json.dumps(info, indent=1) + "\n")  # baseline and sensitivity kept if the run is killed
    progress.unlink(missing_ok=True)  # the report is in the runs JSON now
    done = {(r["method"], r["finetune"], r["fraction"]) for r in runs}
    for f in fractions:
        for method in methods:
            todo = [ft for ft in variants if (method, ft, f) not in done]
            if not todo:
                continue
            t = time.perf_counter()
            pruned, extra = pruner_for(method, model, inputs, reports.get(method), arch)(f)
            prune_s = time.perf_counter() - t
            for ft in todo:
                t = time.perf_counter()
                evaluated_model = tune(pruned) if ft else pruned
                digest = weights_digest(evaluated_model)
                reused = digest in evaluated
                if not reused:
                    evaluated[digest] = evaluate(evaluated_model)
                returns = evaluated[digest]
                run = {
                    "method": method,
                    "finetune": ft,
                    "fraction": f,
                    "achieved": round(1 - param_count(pruned) / n0, 4),
                    **arch.widths(pruned),
                    "weights_digest": digest,
                    "reused_identical_weights": reused,
                    "returns": returns,
                    "prune_seconds": round(prune_s, 1),
                    "seconds": round(time.perf_counter() - t, 1),
                    **extra,
                }
                runs.append(run)
                same = "  (same weights as before)" if reused else ""
                log(f"{f:4.0%} {method:15s}{' +ft' if ft else '    '} achieved {run['achieved']:.1%} "
                    f"{arch.widths(pruned)} return {np.mean(returns):8.1f}{same}")  # fmt: skip
            info["seconds"] = round(seconds0 + time.perf_counter() - start, 1)
            info["cpu_seconds"] = round(cpu_seconds0 + time.process_time() - cpu0, 1)
            write_atomic(path, json.dumps(info, indent=1) + "\n")
    log(f"done: {path}")


# ---------------------------------------------------------------------------------------------------- render


def normalized(returns, base: dict) -> np.ndarray:
    """(R − R_random) / (R_unpruned − R_random), with the model's own mean random and unpruned returns."""
    rand, ref = np.mean(base["random"]), np.mean(base["planner"])
    return (np.asarray(returns) - rand) / (ref - rand)


def cmd_render(args: argparse.Namespace) -> None:
    out = Path(args.out)
    infos = [json.loads(p.read_text()) for p in sorted(out.glob("runs_*.json"))]
    if not infos:
        raise SystemExit(f"no runs_*.json in {out}")
    sections, pngs = [], []
    for tag, group in sorted(by_shape(infos).items()):  # "" (the bundled shape) first
        pngs.append(out / (f"control_{tag}.png" if tag else "control.png"))
        sections.append(markdown(group))
        plot(group, pngs[-1])
    write_atomic(out / "control.md", "\n".join(sections))
    print(f"wrote {out / 'control.md'}, {', '.join(map(str, pngs))}")


def env_of(info: dict) -> str:
    """The task a runs JSON was evaluated on (older ones: Pendulum-v1)."""
    return info.get("env_id", "Pendulum-v1")


def model_config_of(info: dict) -> dict:
    """The model config a runs JSON records (older ones: their architecture's default)."""
    return info.get("model_config") or ARCHS[info.get("arch", "tdmpc")].config().model


def by_shape(infos: list[dict]) -> dict[str, list[dict]]:
    """Runs grouped by model shape tag: one table and plot per shape, returns of two shapes never pool."""
    groups: dict[str, list[dict]] = {}
    for info in infos:
        groups.setdefault(shape_tag(shape_of(model_config_of(info))), []).append(info)
    return groups


def shape_title(info: dict) -> str:
    """``width 128 (bundled shape: encoder 1 hidden layer, others 2), 116,420 parameters`` or
    ``width 256, 3 hidden layers per component, 860,612 parameters`` (the rssm: its sizes)."""
    config = model_config_of(info)
    if info.get("arch", "tdmpc") != "tdmpc":
        sizes = ", ".join(f"{k} {v}" for k, v in config.items() if k not in ("obs_dim", "action_dim"))
        return f"{sizes}, {info['params']:,} parameters"
    shape = shape_of(config)
    if shape["depth"] is None:
        layers = " (bundled shape: encoder 1 hidden layer, others 2)"
    else:
        layers = f", {shape['depth']} hidden layers per component"
    return f"width {shape['hidden_dim']}{layers}, {info['params']:,} parameters"


def _cells(infos: list[dict], method: str, ft: bool, f: float, against: str = "torch-pruning"):
    """Per (model, episode) of the models that ran both points: raw return, normalized return, the matching
    returns of ``against``, and how many models that is (None when no model ran both)."""
    raw, norm, tp_raw, tp_norm, models = [], [], [], [], 0
    for info in infos:
        runs = {(r["method"], r["finetune"], r["fraction"]): r for r in info["runs"]}
        r, ref = runs.get((method, ft, f)), runs.get((against, ft, f))
        if r is None or ref is None:
            continue
        models += 1
        raw += r["returns"]
        norm += normalized(r["returns"], info["baseline"]).tolist()
        tp_raw += ref["returns"]
        tp_norm += normalized(ref["returns"], info["baseline"]).tolist()
    if not models:
        return None
    return np.array(raw), np.array(norm), np.array(tp_raw), np.array(tp_norm), models


def coverage(models: set[int], n: int) -> str:
    """The suffix ' [k of n models]' (' [j–k of n models]' over a line) when fewer than all n models ran, else ''."""
    if not models or min(models) == n:
        return ""
    return f" [{'–'.join(map(str, sorted({min(models), max(models)})))} of {n} models]"


def markdown(infos: list[dict]) -> str:
    fractions = sorted({r["fraction"] for i in infos for r in i["runs"]})
    methods = [m for m in ALL_METHODS if any(r["method"] == m for i in infos for r in i["runs"])]
    n_ep = len(infos[0]["eval_seeds"])
    arch = ARCHS[infos[0].get("arch", "tdmpc")]
    planner = "latent MPPI planner" if arch.planner.num_pi else "reward-only latent MPPI planner, GRU state carried"
    lines = [
        f"# Control benchmark: {arch.title} on {env_of(infos[0])} ({planner})",
        "",
        f"Model: {shape_title(infos[0])}.",
        "",
        f"{len(infos)} independently trained model(s) ({', '.join(i['model'] for i in infos)}) × {n_ep} episodes "
        f"(env seeds {infos[0]['eval_seeds'][0]}–{infos[0]['eval_seeds'][-1]}) per point; cells pool the "
        f"{len(infos) * n_ep} (model, episode) pairs (a cell marked [k of n models] pools the models that ran it). "
        "Commands:",
        "",
        *[f"    {c}" for i in infos for c in i["commands"]],
        "",
        "CPU time is not comparable across lines: the machine was shared; "
        + ", ".join(
            f"{i['model']} {i['seconds'] / 60:.0f} min wall"
            + (f" ({i['cpu_seconds'] / 60:.0f} CPU-min)" if i.get("cpu_seconds") else "")
            for i in infos
        )
        + ".",
        "",
        "Per model: unpruned planner / random actions / unpruned after the same fine-tune (mean return; – not run):",
        "",
        *[
            f"- {i['model']}: {np.mean(i['baseline']['planner']):.1f} / {np.mean(i['baseline']['random']):.1f} / "
            + (f"{np.mean(i['baseline']['planner_finetuned']):.1f}" if "planner_finetuned" in i["baseline"] else "–")
            for i in infos
        ],
        "",
    ]
    for ft in sorted({r["finetune"] for i in infos for r in i["runs"]}):
        lines += [
            f"## {'With' if ft else 'Without'} fine-tune",
            "",
            "Normalized return (R − R_random)/(R_unpruned − R_random), mean ± 95 % CI; raw return in brackets; "
            "then the paired difference to torch-pruning in normalized units (same model, same episode).",
            "",
            "| removed | "
            + " | ".join(methods)
            + " | "
            + " | ".join(f"{m} − TP" for m in methods[1:])
            + " | component+sens − vanilla |",
            "|---:|" + "---:|" * (2 * len(methods)),
        ]
        for f in fractions:
            cells, diffs = [], []
            for m in methods:
                c = _cells(infos, m, ft, f)
                if c is None:
                    cells.append("")
                    if m != methods[0]:
                        diffs.append("")
                    continue
                raw, norm, _, tp_norm, models = c
                nm, nh = ci95(norm)
                cells.append(f"{nm:.2f} ± {nh:.2f} ({np.mean(raw):.0f}){coverage({models}, len(infos))}")
                if m != methods[0]:
                    d, dh = ci95(norm - tp_norm)
                    mark = " *" if abs(d) > dh else ""
                    diffs.append(f"{d:+.3f} ± {dh:.3f}{mark}")
            c = _cells(infos, "component+sens", ft, f, against="vanilla")
            if c is None:
                diffs.append("")
            else:
                d, dh = ci95(c[1] - c[3])
                diffs.append(f"{d:+.3f} ± {dh:.3f}{' *' if abs(d) > dh else ''}")
            if any(cells):
                lines.append(f"| {f:.0%} | " + " | ".join(cells + diffs) + " |")
        lines.append("")
    lines += ["`*`: the paired 95 % CI excludes 0.", "", *prediction_table(infos)]
    lines += ["State widths and parameters removed per model:", ""]
    for info in infos:
        lines.append(f"- {info['model']}: " + "; ".join(
            f"{r['fraction']:.0%} {r['method']} {r['achieved']:.1%} z={r['latent']}"
            + (f" h={r['deter']}" if "deter" in r else "")
            for r in info["runs"] if not r["finetune"] and r["method"] in ALL_METHODS))  # fmt: skip
    return "\n".join(lines) + "\n"


def prediction_table(infos: list[dict]) -> list[str]:
    """component+sens without fine-tune: the drop its sensitivity report predicts for the split it chose (each
    component's cut measured alone, summed) against the drop measured on the evaluation episodes."""
    rows = []
    for info in infos:
        if not info.get("sensitivity"):
            continue
        report, base = SensitivityReport.from_dict(info["sensitivity"]), info["baseline"]
        unpruned = np.mean(base["planner"])
        for r in sorted(info["runs"], key=lambda r: r["fraction"]):
            if r["method"] != "component+sens" or r["finetune"]:
                continue
            predicted = report.predicted_drop(r["components_removed"])
            measured = unpruned - np.mean(r["returns"])
            split = ", ".join(f"{c} {v:.0%}" for c, v in r["components_removed"].items())
            rows.append(f"| {info['model']} | {r['fraction']:.0%} | {split} | {predicted:.0f} | {measured:.0f} | "
                        f"{normalized([unpruned - predicted], base)[0]:.2f} | "
                        f"{np.mean(normalized(r['returns'], base)):.2f} |")  # fmt: skip
    if not rows:
        return []
    return [
        "## component+sens: predicted and measured drop (no fine-tune)",
        "",
        "The drop in return the sensitivity report predicts for the split it chose (each component's cut measured "
        "alone on the sensitivity episodes, summed) against the drop measured on the evaluation episodes; then both "
        "as normalized return. A measured drop far above the prediction means the cuts interact.",
        "",
        "| model | removed | split (share of each component removed) | predicted drop | measured drop "
        "| predicted normalized | measured normalized |",
        "|---|---:|---|---:|---:|---:|---:|",
        *rows,
        "",
    ]


def plot(infos: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fractions = sorted({r["fraction"] for i in infos for r in i["runs"]})
    methods = [m for m in ALL_METHODS if any(r["method"] == m for i in infos for r in i["runs"])]
    variants = sorted({r["finetune"] for i in infos for r in i["runs"]})
    fig, axes = plt.subplots(2, len(variants), figsize=(5.5 * len(variants), 7.5), sharex=True, squeeze=False)
    for col, ft in enumerate(variants):
        top, bottom = axes[0][col], axes[1][col]
        for k, m in enumerate(methods):
            xs, ys, hs, ds, dhs, counts = [], [], [], [], [], set()
            for f in fractions:
                c = _cells(infos, m, ft, f)
                if c is None:
                    continue
                _, norm, _, tp_norm, models = c
                counts.add(models)
                xs.append(100 * f)
                y, h = ci95(norm)
                d, dh = ci95(norm - tp_norm)
                ys.append(y), hs.append(h), ds.append(d), dhs.append(dh)
            if not xs:
                continue
            x = np.array(xs) + (k - 1.5) * 0.8
            of = coverage(counts, len(infos))  # a line that pools fewer models than the title counts says so
            top.errorbar(x, ys, yerr=hs, marker="o", capsize=3, label=m + of, color=f"C{k}")
            if m != "torch-pruning":
                bottom.errorbar(x, ds, yerr=dhs, marker="o", capsize=3, label=f"{m} − torch-pruning{of}", color=f"C{k}")
        top.axhline(1, color="k", ls=":", lw=1)
        bottom.axhline(0, color="k", lw=0.8)
        top.set_title(("pruned, then fine-tuned" if ft else "pruned, no fine-tune"), fontsize=10)
        bottom.set_xlabel("parameters removed (%)")
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("normalized return (1 = unpruned, 0 = random)\nmean ± 95 % CI")
    axes[1][0].set_ylabel("paired difference to torch-pruning\n(normalized, mean ± 95 % CI)")
    for ax in axes.flat:  # each panel its own legend: the columns can pool different models
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    n = sum(len(i["eval_seeds"]) for i in infos)
    fig.suptitle(
        f"{ARCHS[infos[0].get('arch', 'tdmpc')].title.capitalize()} on {env_of(infos[0])}\n({shape_title(infos[0])}):\n"
        f"{len(infos)} trained model(s), {n} (model, episode) pairs"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("train", help="train one more model")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--arch", choices=tuple(ARCHS), default="tdmpc", help="which world model to train")
    p.add_argument("--task", choices=tuple(TASKS), default="pendulum",
                   help="pendulum (Pendulum-v1) or cartpole-swingup (DeepMind Control, action repeat 8)")  # fmt: skip
    p.add_argument("--env-steps", type=int, default=0,
                   help="environment steps, decisions after action repeat (0: the task's default)")  # fmt: skip
    p.add_argument("--models", default=None, help="output folder (default: <the task's results>/models)")
    p.add_argument("--hidden", type=int, default=BUNDLED_SHAPE["hidden_dim"], help="width of every hidden layer")
    p.add_argument("--depth", type=int, default=None,
                   help="hidden layers per component (default: the bundled shape, encoder 1, others 2)")  # fmt: skip
    p.add_argument("--threads", type=int, default=1)
    p = sub.add_parser("probe", help="time short training runs per width, extrapolate to the full schedule")
    p.add_argument("--widths", default="512,384,256,192")
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--env-steps", type=int, default=400, help="the probe's schedule (half of it random seed steps)")
    p.add_argument("--updates-per-step", type=float, default=0.5)
    p.add_argument("--budget-minutes", type=float, default=45.0, help="CPU-minutes per seed")
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--threads", type=int, default=1)
    p = sub.add_parser("run", help="prune, fine-tune and evaluate one trained model")
    p.add_argument("--arch", choices=tuple(ARCHS), default="tdmpc", help="the model's architecture")
    p.add_argument("--model", default="bundled", help="'bundled' (tdmpc) or a .pt next to its _replay.npz")
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--episodes", type=int, default=30)
    p.add_argument("--fractions", default=",".join(map(str, FRACTIONS)))
    p.add_argument("--methods", default=",".join(METHODS), help=f"any of {', '.join(ALL_METHODS)}")
    p.add_argument("--finetune", choices=("both", "none", "only"), default="both",
                   help="evaluate without and with the fine-tune (both), or one of them")  # fmt: skip
    p.add_argument("--sensitivity-episodes", type=int, default=10,
                   help="episodes (env seeds 3000…) per sensitivity measurement of component+sens")  # fmt: skip
    p.add_argument("--finetune-steps", type=int, default=300)
    p.add_argument("--finetune-lr", type=float, default=3e-4)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the machine is shared)")
    p = sub.add_parser("render", help="control.md and control.png from every runs_*.json")
    p.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    command = " ".join(["PYTHONPATH=. python benchmarks/control.py", *map(shlex.quote, argv)])
    if args.cmd == "train":
        cmd_train(args)
    elif args.cmd == "probe":
        cmd_probe(args, command)
    elif args.cmd == "run":
        cmd_run(args, command)
    else:
        cmd_render(args)


if __name__ == "__main__":
    main()
