"""Structural constraints that Torch-Pruning cannot see and the pruner must respect."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from torch import nn


@dataclass(frozen=True)
class Constraints:
    """Declared structure of a model's dimensions.

    Every dimension is named by the module path of the layer that *produces* it (its output channels).

    - ``blocks``: ``{"encoder.proj": 8}`` — that dimension is only pruned in whole, aligned blocks
      (e.g. SimNorm's softmax over groups of 8).
    - ``ties``: ``[("dynamics.4", "encoder.2")]`` — two dimensions that must stay equal (a consistency
      loss compares them); both are pruned with the same indices, or neither is.
    - ``ensembles``: ``[["qs.0", "qs.1"]]`` — module prefixes of ensemble members whose corresponding
      layers must keep equal widths (stacked for vmap).
    - ``state_outputs``: ``(0,)`` — positions (in the flattened ``forward`` output) of outputs that are
      internal state, not external outputs: a latent the caller feeds back in (``next_z`` of a world model,
      a recurrent hidden state). Every other output is *external*: its shape is kept. A state output's
      width may change; the layer producing it is pruned with the dimension it is tied to (declare the
      recurrence as a tie, ``("dynamics.6", "encoder.3")``), so the loop latent in → latent out stays
      consistent. A state output tied to nothing is pruned as its own group.
    """

    blocks: Mapping[str, int] = field(default_factory=dict)
    ties: Sequence[tuple[str, str]] = ()
    ensembles: Sequence[Sequence[str]] = ()
    state_outputs: Sequence[int] = ()

    def __post_init__(self) -> None:
        for path, size in self.blocks.items():
            if not isinstance(size, int) or size < 1:
                raise ValueError(f"block size for {path!r} must be a positive int, got {size!r}")
        for tie in self.ties:
            if len(tie) != 2:
                raise ValueError(f"a tie names exactly two layers, got {tie!r}")
        for members in self.ensembles:
            if len(members) < 2:
                raise ValueError(f"an ensemble needs at least two members, got {list(members)!r}")
        for index in self.state_outputs:
            if not isinstance(index, int) or index < 0:
                raise ValueError(f"a state output is a position in the forward's outputs (int >= 0), got {index!r}")

    def module_paths(self) -> set[str]:
        """Every module path these constraints mention (used to validate them against a model)."""
        paths = set(self.blocks)
        for a, b in self.ties:
            paths |= {a, b}
        for members in self.ensembles:
            paths |= set(members)
        return paths


def model_constraints(model: nn.Module) -> Constraints:
    """Constraints a model declares about itself through a ``pruning_constraints()`` method (else none)."""
    declare = getattr(model, "pruning_constraints", None)
    return declare() if callable(declare) else Constraints()
