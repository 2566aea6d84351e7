"""Channel importance per group: L1, L2 (group magnitude), first-order Taylor, random."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn

from edgeprune.prune import recurrent
from edgeprune.prune.errors import PruneError
from edgeprune.prune.groups import PruneGroup, unsupported_layers

IMPORTANCES = ("l1", "l2", "taylor", "random")


@dataclass(frozen=True)
class Taylor:
    """First-order Taylor importance |w · dL/dw|; ``loss_fn(model)`` computes the loss on a batch you choose."""

    loss_fn: Callable[[nn.Module], torch.Tensor]

    name = "taylor"


ImportanceSpec = str | Taylor


def importance_name(spec: ImportanceSpec) -> str:
    return spec.name if isinstance(spec, Taylor) else spec


def score_groups(
    model: nn.Module, groups: list[PruneGroup], spec: ImportanceSpec, seed: int = 0
) -> dict[int, torch.Tensor]:
    """Per-channel scores (higher = keep) for every prunable group, each normalised to mean 1.

    Tied groups add their roots' scores. Scores are computed on ``model`` as it is; for Taylor, the
    gradients of ``spec.loss_fn(model)`` are computed first and cleared afterwards.
    """
    scorer = _scorer(spec)
    scores: dict[int, torch.Tensor] = {}
    with _gradients(model, spec), torch.random.fork_rng():
        torch.manual_seed(seed)
        for g in groups:
            if g.frozen:
                continue
            total = torch.zeros(g.channels)
            for tg in g.tp_groups:
                s = _score(scorer, tg, g, model)
                if s is None:
                    break
                total += s.detach().float().cpu()
            else:
                mean = total.mean()
                scores[g.id] = total / mean if mean > 0 else torch.ones_like(total)
    return scores


def _score(scorer: tp.importance.Importance, tg: tp.Group, g: PruneGroup, model: nn.Module) -> torch.Tensor | None:
    """One Torch-Pruning group's channel scores; its failures (mis-coupled custom layers) get our message."""
    try:
        return scorer(tg)
    except Exception as exc:
        suspects = unsupported_layers(model, [m.target for m in g.members])
        raise PruneError(
            f"Torch-Pruning cannot score the group rooted at {', '.join(g.roots)}: {type(exc).__name__}: {exc}",
            expected="layers Torch-Pruning knows how to cut"
            + (f"; these have parameters it has no pruner for: {suspects}" if suspects else ""),
            fix=f"protect the component holding such a layer (Budget(protect={{...}}); "
            f"this group touches {', '.join(g.components) or 'no component'})",
        ) from exc


def _scorer(spec: ImportanceSpec) -> tp.importance.Importance:
    if isinstance(spec, Taylor):
        return tp.importance.GroupTaylorImportance(normalizer=None)
    if spec == "l1":
        return recurrent.MagnitudeImportance(p=1, normalizer=None)
    if spec == "l2":
        return recurrent.MagnitudeImportance(p=2, normalizer=None)
    if spec == "random":
        return tp.importance.RandomImportance()
    if spec == "taylor":
        raise PruneError(
            "Taylor importance needs a loss",
            expected="importance=Taylor(loss_fn) where loss_fn(model) returns a scalar loss on a batch",
        )
    raise PruneError(f"unknown importance {spec!r}", expected=f"one of {', '.join(IMPORTANCES)} or Taylor(loss_fn)")


class _gradients:
    """For Taylor: compute the loss gradients on entry, drop them on exit (the model keeps no .grad)."""

    def __init__(self, model: nn.Module, spec: ImportanceSpec):
        self.model, self.spec = model, spec

    def __enter__(self) -> None:
        if not isinstance(self.spec, Taylor):
            return
        self.model.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = self.spec.loss_fn(self.model)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise PruneError(
                    f"Taylor loss_fn returned {type(loss).__name__}", expected="a scalar tensor (the loss on a batch)"
                )
            loss.backward()

    def __exit__(self, *exc: object) -> None:
        if isinstance(self.spec, Taylor):
            self.model.zero_grad(set_to_none=True)
