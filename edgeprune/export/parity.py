"""Comparing an exported artifact's outputs with the eager model's: max abs / rel error, top-1 agreement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from edgeprune.export.errors import ParityError


@dataclass(frozen=True)
class Tolerance:
    """Pass when every element satisfies ``|got - ref| <= atol + rtol * max|ref|`` (per output).

    ``min_top1`` additionally requires that fraction of argmax agreement on classifier-like
    outputs (2-D, more than one column). ``rtol`` is relative to each output's largest
    magnitude, so near-zero reference elements do not blow the relative error up.
    """

    atol: float = 1e-4
    rtol: float = 1e-3
    min_top1: float | None = None


@dataclass(frozen=True)
class ParityReport:
    """Agreement of one artifact with eager PyTorch over ``n_samples`` input sets."""

    artifact: str
    runtime: str
    n_samples: int
    max_abs: float
    max_rel: float
    top1: float | None
    tolerance: Tolerance
    passed: bool

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def describe(self) -> str:
        top1 = "" if self.top1 is None else f", top-1 agreement {self.top1:.1%}"
        return (
            f"{self.artifact} in {self.runtime}: max abs {self.max_abs:.3g}, max rel {self.max_rel:.3g}"
            f"{top1} over {self.n_samples} input sets "
            f"(atol {self.tolerance.atol:g}, rtol {self.tolerance.rtol:g}"
            + ("" if self.tolerance.min_top1 is None else f", top-1 >= {self.tolerance.min_top1:.0%}")
            + ")"
        )

    def raise_if_failed(self) -> None:
        if not self.passed:
            raise ParityError(
                f"parity check failed: {self.describe()}",
                expected="the exported model to reproduce the eager outputs within the tolerance",
                do="inspect the op that diverges (e.g. float islands, unsupported ops), loosen the tolerance "
                "if the error is acceptable, or for int8 give more representative calibration samples.",
            )


def _is_classifier(ref: np.ndarray) -> bool:
    return ref.ndim == 2 and ref.shape[1] > 1


def compare(
    artifact: str,
    runtime: str,
    refs: Sequence[Sequence[np.ndarray]],
    gots: Sequence[Sequence[np.ndarray]],
    tolerance: Tolerance,
) -> ParityReport:
    """Compare per input set (outer) and per output (inner) arrays of eager ``refs`` and artifact ``gots``."""
    max_abs = max_rel = 0.0
    passed = True
    agree = total = 0
    for ref_set, got_set in zip(refs, gots, strict=True):
        for ref, got in zip(ref_set, got_set, strict=True):
            ref = np.asarray(ref, dtype=np.float64)
            got = np.asarray(got, dtype=np.float64)
            if got.size != ref.size:  # e.g. a shape baked in at trace time
                max_abs = max_rel = float("inf")
                passed = False
                continue
            got = got.reshape(ref.shape)
            err = np.abs(got - ref)
            scale = float(np.max(np.abs(ref))) if ref.size else 0.0
            abs_e = float(err.max()) if err.size else 0.0
            max_abs = max(max_abs, abs_e)
            max_rel = max(max_rel, abs_e / scale if scale > 0 else abs_e)
            passed &= bool(np.all(err <= tolerance.atol + tolerance.rtol * scale))
            if _is_classifier(ref):
                agree += int(np.sum(ref.argmax(1) == got.argmax(1)))
                total += ref.shape[0]
    top1 = agree / total if total else None
    if tolerance.min_top1 is not None and top1 is not None:
        passed &= top1 >= tolerance.min_top1
    return ParityReport(artifact, runtime, len(refs), max_abs, max_rel, top1, tolerance, passed)
