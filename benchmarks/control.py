"""The paper's Figure 2 on this machine: closed-loop return of a pruned TD-MPC-style model on Pendulum-v1.

Run: PYTHONPATH=. .venv/bin/python benchmarks/control.py [--out benchmarks/results/control] [--episodes 10]

Loads the trained model shipped in ``edgeprune/control/pretrained/`` (with ``--retrain`` trains a new one into
``--out`` first, a few CPU minutes; copy it there to ship it),
prunes 5 … 80 % of its parameters with

- ``vanilla``:        plain DepGraph groups,  ``Budget(total=f)``, ``mode="vanilla"``
- ``component``:      component-aware groups, ``Budget(total=f)``, ``mode="component"``
- ``component+enc``:  component-aware groups, ``Budget(total=f, weights={"encoder": W})`` (encoder protected by
  importance weighting, as the paper does; W = ``--encoder-weight``)

each with and without a short fine-tune (``--finetune-steps`` TD-MPC gradient steps on the training replay
buffer), and evaluates the latent MPPI planner closed-loop on ``--episodes`` seeded episodes. Writes
``control.json`` (every run), ``control.md`` (table: mean ± 95 % CI) and ``control.png`` to ``--out``.
Models with bit-identical weights are evaluated once (evaluation is deterministic) and marked as such.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeprune.control import Planner, PlannerConfig, Replay, TrainConfig, finetune, load_model, rollout
from edgeprune.control.env import random_act_fn
from edgeprune.control.planner import policy_act_fn
from edgeprune.control.pretrained import EVAL_SEED0, PLANNER_SEED, STEM, pretrained_dir
from edgeprune.control.train import train_and_save
from edgeprune.io import write_atomic
from edgeprune.prune import Budget, prune

FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
# two-sided 95 % Student-t quantiles by degrees of freedom
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
       11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
       20: 2.086, 25: 2.060, 30: 2.042}  # fmt: skip


@dataclass(frozen=True)
class Method:
    name: str
    mode: str
    encoder_weight: float | None = None

    def budget(self, fraction: float) -> Budget:
        weights = {"encoder": self.encoder_weight} if self.encoder_weight else {}
        return Budget(total=fraction, weights=weights)


def methods(encoder_weight: float) -> list[Method]:
    return [Method("vanilla", "vanilla"), Method("component", "component"), Method("component+enc", "component",
            encoder_weight)]  # fmt: skip


def prune_model(model: nn.Module, method: Method, fraction: float, inputs: tuple[torch.Tensor, ...]):
    """The benchmark's pruning call for one method and fraction (L2 group-magnitude importance)."""
    return prune(model, inputs, method.budget(fraction), mode=method.mode, importance="l2")


def ci95(values: list[float] | np.ndarray) -> tuple[float, float]:
    """Mean and the half-width of its two-sided 95 % Student-t confidence interval."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()), float("nan")
    df = len(v) - 1
    t = T95.get(df) or T95[max(k for k in T95 if k <= df)] if df <= 30 else 1.96
    return float(v.mean()), float(t * v.std(ddof=1) / np.sqrt(len(v)))


def weights_digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def evaluate(model: nn.Module, seeds: list[int], cfg: PlannerConfig) -> list[float]:
    planner = Planner(model, cfg, action_high=TrainConfig().action_high)
    return [float(r) for r in rollout(planner.act_fn(PLANNER_SEED), seeds)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/control")
    parser.add_argument("--episodes", type=int, default=10, help="seeded evaluation episodes per model")
    parser.add_argument("--fractions", default=",".join(str(f) for f in FRACTIONS))
    parser.add_argument("--encoder-weight", type=float, default=10.0)
    parser.add_argument("--finetune-steps", type=int, default=300, help="0 skips the fine-tuned variants")
    parser.add_argument("--finetune-lr", type=float, default=3e-4)
    parser.add_argument("--horizon", type=int, default=PlannerConfig.horizon)
    parser.add_argument("--iterations", type=int, default=PlannerConfig.iterations)
    parser.add_argument("--samples", type=int, default=PlannerConfig.num_samples)
    parser.add_argument("--retrain", action="store_true", help="train the model even if the weights exist")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the machine is shared)")
    parser.add_argument("--render-only", action="store_true", help="rewrite control.md/.png from control.json")
    args = parser.parse_args(argv)
    if args.render_only:
        render(Path(args.out))
        return
    torch.set_num_threads(args.threads)
    command = " ".join(["PYTHONPATH=. python benchmarks/control.py", *(shlex.quote(a) for a in (argv or sys.argv[1:]))])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    def log(line: str) -> None:
        print(f"[{time.perf_counter() - start:6.0f} s] {line}", flush=True)

    weights_dir = pretrained_dir()
    if args.retrain:
        log("training the TD-MPC-style model on Pendulum-v1 …")
        train_and_save(out, TrainConfig(), log=log, stem=STEM)
        weights_dir = out
    model = load_model(weights_dir / f"{STEM}.pt")
    replay = Replay.load(weights_dir / f"{STEM}_replay.npz")
    train_cfg = TrainConfig()
    planner_cfg = PlannerConfig(horizon=args.horizon, iterations=args.iterations, num_samples=args.samples)
    seeds = list(range(EVAL_SEED0, EVAL_SEED0 + args.episodes))
    fractions = [float(f) for f in args.fractions.split(",")]
    torch.manual_seed(0)
    inputs = model.example_inputs()
    n0 = param_count(model)

    log(f"model: {n0} parameters; {len(seeds)} episodes per model, planner {planner_cfg.to_dict()}")
    baseline = {
        "random": rollout(random_act_fn(0), seeds).tolist(),
        "policy": rollout(policy_act_fn(model), seeds).tolist(),
    }
    t = time.perf_counter()
    baseline["planner"] = evaluate(model, seeds, planner_cfg)
    eval_seconds = time.perf_counter() - t
    if args.finetune_steps > 0:  # the reference for fine-tuned pruned models: the same steps on the unpruned one
        tuned, _ = finetune(model, replay, args.finetune_steps, train_cfg, seed=0, lr=args.finetune_lr)
        baseline["planner_finetuned"] = evaluate(tuned, seeds, planner_cfg)
    for k, v in baseline.items():
        m, h = ci95(v)
        log(f"unpruned {k:8s} return {m:8.1f} ± {h:.1f}")
    log(f"one evaluation ({len(seeds)} episodes × 200 steps) took {eval_seconds:.0f} s")

    evaluated: dict[str, list[float]] = {weights_digest(model): baseline["planner"]}
    tuned_cache: dict[str, tuple[nn.Module, dict]] = {}
    runs: list[dict] = []
    variants = [False, True] if args.finetune_steps > 0 else [False]
    for f in fractions:
        for method in methods(args.encoder_weight):
            t = time.perf_counter()
            result = prune_model(model, method, f, inputs)
            pruned = result.model
            prune_s = time.perf_counter() - t
            comp = {r.name: r.achieved for r in result.report.components}
            for ft in variants:
                t = time.perf_counter()
                digest = weights_digest(pruned)
                ft_losses = None
                if ft:
                    if digest not in tuned_cache:
                        tuned_cache[digest] = finetune(
                            pruned, replay, args.finetune_steps, train_cfg, seed=0, lr=args.finetune_lr
                        )
                    evaluated_model, ft_losses = tuned_cache[digest]
                    digest = weights_digest(evaluated_model)
                else:
                    evaluated_model = pruned
                reused = digest in evaluated
                if not reused:
                    evaluated[digest] = evaluate(evaluated_model, seeds, planner_cfg)
                returns = evaluated[digest]
                m, h = ci95(returns)
                run = {
                    "method": method.name,
                    "mode": method.mode,
                    "encoder_weight": method.encoder_weight,
                    "finetune": ft,
                    "fraction": f,
                    "achieved": round(1 - param_count(pruned) / n0, 4),
                    "params": param_count(pruned),
                    "components_removed": comp,
                    "weights_digest": digest,
                    "reused_identical_weights": reused,
                    "returns": returns,
                    "mean": m,
                    "ci95": h,
                    "finetune_losses": ft_losses,
                    "seconds": round(time.perf_counter() - t + (0 if ft else prune_s), 1),
                }
                runs.append(run)
                log(
                    f"{f:4.0%} {method.name:14s} {'+ft' if ft else '   '} achieved {run['achieved']:.1%}  "
                    f"return {m:8.1f} ± {h:6.1f}{'  (same weights as an earlier run)' if reused else ''}"
                )
        write_outputs(out, args, command, n0, baseline, runs, planner_cfg, fractions, seeds, start, partial=True)
    write_outputs(out, args, command, n0, baseline, runs, planner_cfg, fractions, seeds, start, partial=False)
    log(f"done: {out / 'control.json'}, {out / 'control.md'}, {out / 'control.png'}")


def write_outputs(out, args, command, n0, baseline, runs, planner_cfg, fractions, seeds, start, partial) -> None:
    seconds = round(time.perf_counter() - start, 1)
    info = {
        "command": command,
        "partial": partial,
        "seconds": seconds,
        "env": TrainConfig().env_id,
        "eval_seeds": seeds,
        "planner_seed": PLANNER_SEED,
        "planner": planner_cfg.to_dict(),
        "importance": "l2",
        "encoder_weight": args.encoder_weight,
        "finetune_steps": args.finetune_steps,
        "finetune_lr": args.finetune_lr,
        "params": n0,
        "torch_threads": torch.get_num_threads(),
        "baseline": {k: {"returns": v, "mean": ci95(v)[0], "ci95": ci95(v)[1]} for k, v in baseline.items()},
        "runs": runs,
    }
    write_atomic(out / "control.json", json.dumps(info, indent=1) + "\n")
    write_atomic(out / "control.md", markdown(info, fractions))
    plot(info, fractions, out / "control.png")


def render(out: Path) -> None:
    """Markdown and plot again from a finished ``control.json`` (no pruning, no evaluation)."""
    info = json.loads((out / "control.json").read_text())
    fractions = sorted({r["fraction"] for r in info["runs"]})
    write_atomic(out / "control.md", markdown(info, fractions))
    plot(info, fractions, out / "control.png")


def _reference(base: dict, finetuned: bool) -> dict:
    """The unpruned model's statistics matching a run: fine-tuned the same way when the run was."""
    return base["planner_finetuned"] if finetuned and "planner_finetuned" in base else base["planner"]


def _label(method: str, ft: bool) -> str:
    return f"{method}{' + fine-tune' if ft else ''}"


def markdown(info: dict, fractions: list[float]) -> str:
    runs = info["runs"]
    columns = sorted({(r["method"], r["finetune"]) for r in runs}, key=lambda c: (c[1], _order(c[0])))
    base = info["baseline"]
    lines = [
        "# Control benchmark: closed-loop return of the pruned TD-MPC-style model on Pendulum-v1",
        "",
        f"Command: `{info['command']}` ({info['seconds'] / 60:.1f} min, {info['torch_threads']} torch thread"
        f"{'s' if info['torch_threads'] > 1 else ''}){' — PARTIAL' if info['partial'] else ''}",
        "",
        f"Return over {len(info['eval_seeds'])} episodes (env seeds {info['eval_seeds'][0]}–{info['eval_seeds'][-1]},"
        f" 200 steps each), mean ± 95 % CI (Student t). Higher is better; Pendulum returns are ≤ 0.",
        f"Unpruned model ({info['params']} parameters): planner {_fmt(base['planner'])}, policy alone "
        f"{_fmt(base['policy'])}; uniform random actions {_fmt(base['random'])}."
        + (
            f" Unpruned after the same fine-tune: planner {_fmt(base['planner_finetuned'])}."
            if "planner_finetuned" in base
            else ""
        ),
        "",
        "| removed | " + " | ".join(_label(m, ft) for m, ft in columns) + " |",
        "|---:|" + "---:|" * len(columns),
    ]
    for f in fractions:
        cells = []
        for m, ft in columns:
            r = next((r for r in runs if r["method"] == m and r["finetune"] == ft and r["fraction"] == f), None)
            cells.append("" if r is None else f"{r['mean']:.0f} ± {r['ci95']:.0f}")
        lines.append(f"| {f:.0%} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "The CIs above are wide because Pendulum's random start angle dominates the return. Every model is run on",
        "the same seeds, so the paired difference to the unpruned model (pruned − unpruned, per seed; mean ± 95 %",
        "CI) isolates the effect of pruning. Fine-tuned columns are compared with the unpruned model fine-tuned",
        "the same way" + (f" ({_fmt(base['planner_finetuned'])})" if "planner_finetuned" in base else "") + ":",
        "",
        "| removed | " + " | ".join(_label(m, ft) for m, ft in columns) + " |",
        "|---:|" + "---:|" * len(columns),
    ]
    for f in fractions:
        cells = []
        for m, ft in columns:
            r = next((r for r in runs if r["method"] == m and r["finetune"] == ft and r["fraction"] == f), None)
            if r is None:
                cells.append("")
                continue
            d, h = ci95(np.asarray(r["returns"]) - np.asarray(_reference(base, ft)["returns"]))
            cells.append(f"{d:+.1f} ± {h:.1f}")
        lines.append(f"| {f:.0%} | " + " | ".join(cells) + " |")
    lines += [
        "",
        'Methods: `vanilla` = `prune(..., Budget(total=f), mode="vanilla")`; `component` = the same with '
        f'`mode="component"`; `component+enc` = `Budget(total=f, weights={{"encoder": {info["encoder_weight"]:g}}})`'
        ', `mode="component"`. Importance: L2 group magnitude. '
        + (
            f"Fine-tune: {info['finetune_steps']} TD-MPC gradient steps (lr {info['finetune_lr']:g}) on the training "
            "replay buffer."
            if info["finetune_steps"]
            else "No fine-tuning."
        ),
        "",
        "Parameters actually removed (fraction of the whole model), per method:",
        "",
        "| requested | " + " | ".join(sorted({r["method"] for r in runs}, key=_order)) + " |",
        "|---:|" + "---:|" * len({r["method"] for r in runs}),
    ]
    for f in fractions:
        cells = []
        for m in sorted({r["method"] for r in runs}, key=_order):
            r = next((r for r in runs if r["method"] == m and r["fraction"] == f), None)
            cells.append("" if r is None else f"{r['achieved']:.1%} (enc {r['components_removed']['encoder']:.0%})")
        lines.append(f"| {f:.0%} | " + " | ".join(cells) + " |")
    same = _identical_note(runs)
    if same:
        lines += ["", same]
    return "\n".join(lines) + "\n"


def _identical_note(runs: list[dict]) -> str:
    pairs = {}
    for r in runs:
        pairs.setdefault((r["fraction"], r["finetune"]), {})[r["method"]] = r["weights_digest"]
    same = [k for k, v in pairs.items() if "vanilla" in v and v.get("vanilla") == v.get("component")]
    if not same:
        return ""
    if len(same) == len(pairs):
        return (
            "`vanilla` and `component` produced bit-identical pruned (and fine-tuned) weights at every fraction, "
            "so their rows are the same evaluation."
        )
    return f"`vanilla` and `component` gave bit-identical weights at {len(same)} of {len(pairs)} points."


def _order(method: str) -> int:
    return ["vanilla", "component", "component+enc"].index(method) if method in ("vanilla", "component",
            "component+enc") else 9  # fmt: skip


def _fmt(stat: dict) -> str:
    return f"{stat['mean']:.0f} ± {stat['ci95']:.0f}"


def plot(info: dict, fractions: list[float], path: Path) -> None:
    """Top: return vs fraction removed (mean ± 95 % CI) per method; bottom: paired difference to the unpruned model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs, base = info["runs"], info["baseline"]
    variants = sorted({r["finetune"] for r in runs})
    fig, axes = plt.subplots(2, len(variants), figsize=(6 * len(variants), 7.6), sharex=True, squeeze=False)
    style = {"vanilla": ("C3", "o", "-"), "component": ("C0", "s", "--"), "component+enc": ("C2", "^", "-")}
    for col, ft in enumerate(variants):
        top, bottom = axes[0][col], axes[1][col]
        ref = _reference(base, ft)
        for method in sorted({r["method"] for r in runs}, key=_order):
            rows = sorted(
                (r for r in runs if r["method"] == method and r["finetune"] == ft), key=lambda r: r["fraction"]
            )
            x = np.array([0.0] + [r["fraction"] for r in rows]) * 100
            y = np.array([ref["mean"]] + [r["mean"] for r in rows])
            h = np.array([ref["ci95"]] + [r["ci95"] for r in rows])
            paired = [(0.0, 0.0)] + [ci95(np.asarray(r["returns"]) - np.asarray(ref["returns"])) for r in rows]
            d, dh = np.array(paired).T
            color, marker, ls = style.get(method, ("C7", "x", "-"))
            for ax, yy, hh in ((top, y, h), (bottom, d, dh)):
                ax.plot(x, yy, color=color, marker=marker, ls=ls, label=method, alpha=0.9)
                ax.fill_between(x, yy - hh, yy + hh, color=color, alpha=0.12)
        top.axhline(base["random"]["mean"], color="k", ls=":", lw=1, label="random actions")
        bottom.axhline(0, color="k", lw=0.8)
        top.set_title(
            "pruned, then fine-tuned (0 % = unpruned, fine-tuned the same way)" if ft else "pruned, no fine-tune",
            fontsize=10,
        )
        bottom.set_xlabel("parameters removed (%)")
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
    n = len(info["eval_seeds"])
    axes[0][0].set_ylabel(f"closed-loop return\n(mean ± 95 % CI, {n} episodes)")
    axes[1][0].set_ylabel("return − unpruned, same seeds\n(paired mean ± 95 % CI)")
    axes[0][0].legend(fontsize=8, loc="center left")
    fig.suptitle("Pruned TD-MPC-style model on Pendulum-v1, latent MPPI planner")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
