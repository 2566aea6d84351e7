"""Budget: how much of each component to remove, what to protect, how to round."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from edgeprune.prune.errors import PruneError

ALLOCATIONS = ("rank", "sensitivity")


@dataclass(frozen=True)
class Budget:
    """Sparsity budget, as fractions of parameters to remove.

    - ``default``: fraction of each component's parameters to remove, for components not in ``per_component``.
    - ``per_component``: ``{"dynamics": 0.3}`` overrides ``default`` for those components.
    - ``total``: instead of per-component fractions, remove this fraction of the whole model's parameters,
      ranking channels across components (importance scaled by ``weights``). In ``vanilla`` mode the
      target is always model-wide: ``total`` if given, else ``default``.
    - ``protect``: components that keep every parameter and their input and output widths.
    - ``interfaces``: whether cross-component interface groups may be pruned (off by default), and
      ``interface_ratio``: the fraction of each interface's channels to remove when they may.
    - ``round_to``: kept channel counts are multiples of this (SIMD lanes, tensor-core sizes); rounding
      always keeps more channels, never fewer.
    - ``weights``: per-component importance multipliers (> 1 = prune less). They only act when channels
      are ranked across components (``total``, or ``vanilla`` mode); ``prune`` refuses them otherwise.
    - ``interface_ratio`` is a fraction of each interface's *channels* (interfaces have no parameters
      of their own to count); all other fractions are of parameters.
    - ``allocate``: how a model-wide ``total`` is split. ``"rank"`` (default): one importance ranking
      across components. ``"sensitivity"`` (component mode): per-component fractions chosen from measured
      sensitivities to minimise the predicted metric drop (see :mod:`edgeprune.prune.sensitivity`).
    """

    default: float = 0.0
    per_component: Mapping[str, float] = field(default_factory=dict)
    total: float | None = None
    protect: frozenset[str] = frozenset()
    interfaces: bool = False
    interface_ratio: float = 0.0
    round_to: int = 1
    weights: Mapping[str, float] = field(default_factory=dict)
    allocate: str = "rank"

    def __post_init__(self) -> None:
        object.__setattr__(self, "protect", frozenset(self.protect))
        object.__setattr__(self, "per_component", dict(self.per_component))
        object.__setattr__(self, "weights", dict(self.weights))
        fractions = {"default": self.default, "interface_ratio": self.interface_ratio}
        fractions.update({f"per_component[{k!r}]": v for k, v in self.per_component.items()})
        if self.total is not None:
            fractions["total"] = self.total
        for name, value in fractions.items():
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise PruneError(
                    f"budget {name} = {value!r} is outside [0, 1)",
                    expected="a fraction of parameters to remove, e.g. 0.3 for 30 %",
                )
        if not isinstance(self.round_to, int) or self.round_to < 1:
            raise PruneError(f"round_to = {self.round_to!r}", expected="a positive integer (1 = no rounding)")
        for name, w in self.weights.items():
            if not w > 0:
                raise PruneError(f"importance weight for {name!r} is {w!r}", expected="a positive number")
        if self.total is not None and self.per_component:
            raise PruneError(
                "budget has both total and per_component fractions",
                expected="either per-component fractions (with default) or one model-wide total",
            )
        if self.allocate not in ALLOCATIONS:
            raise PruneError(f"allocate = {self.allocate!r}", expected=f"one of {', '.join(ALLOCATIONS)}")
        if self.allocate == "sensitivity" and (self.total is None or self.weights):
            raise PruneError(
                "allocate='sensitivity' splits a model-wide total by measured sensitivity",
                expected="Budget(total=f, allocate='sensitivity') without importance weights",
            )
        if self.interface_ratio and not self.interfaces:
            raise PruneError(
                "interface_ratio is set but interfaces=False", fix="pass interfaces=True to prune interface groups"
            )

    def fraction(self, component: str) -> float:
        """The requested fraction for one component (0 when protected)."""
        if component in self.protect:
            return 0.0
        return self.per_component.get(component, self.default)

    def mentioned_components(self) -> set[str]:
        return set(self.per_component) | set(self.protect) | set(self.weights)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["protect"] = sorted(self.protect)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Budget:
        return cls(**data)
