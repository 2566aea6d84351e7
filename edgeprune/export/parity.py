"""Comparing an exported artifact's outputs with the eager model's: max abs / rel error, top-1 agreement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from edgeprune.export.errors import ParityError


@dataclass(frozen=True)
class Tolerance:
    """Pass when every element satisfies ``|got - ref| <= atol + rtol * max|ref|`` (per output).

    ``max|ref|`` is the output's largest magnitude over all compared input sets, so near-zero
    reference elements do not blow the relative error up. ``min_top1`` additionally requires
    that fraction of argmax agreement on classifier-like outputs (2-D, more than one column),
    counted over the decisive rows only (see :func:`compare`).
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
    top1_rows: int | None = None  # rows whose reference top-1 margin exceeds the output's quantization step

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def describe(self) -> str:
        top1 = "" if self.top1 is None else f", top-1 agreement {self.top1:.1%} of {self.top1_rows} decisive rows"
        top1 = ", top-1 not assessed (no decisive row)" if self.top1_rows == 0 else top1
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


def _decisive(ref: np.ndarray, step: float) -> np.ndarray:
    """Rows whose top-1 leads the runner-up by more than ``step``: only there is a changed argmax a change of
    the decision rather than the output's quantization rounding (a near-uniform row's argmax is a coin toss)."""
    top2 = np.sort(ref, axis=1)[:, -2:]
    return (top2[:, 1] - top2[:, 0]) > step


def compare(
    artifact: str,
    runtime: str,
    refs: Sequence[Sequence[np.ndarray]],
    gots: Sequence[Sequence[np.ndarray]],
    tolerance: Tolerance,
    steps: Sequence[float | None] | None = None,
) -> ParityReport:
    """Compare per input set (outer) and per output (inner) arrays of eager ``refs`` and artifact ``gots``.

    Relative errors are taken against each output's largest magnitude over all input sets (its
    range, which is also what int8 quantization scales to), so a near-zero output in one set does
    not make the relative error explode. ``steps``: each output's quantization step (its int8 scale;
    None or 0 for a float output); top-1 agreement counts only the rows whose reference top-1 margin
    exceeds it (``top1_rows``), and is None when no row does.
    """
    n_out = len(refs[0]) if refs else 0
    scales = [max(float(np.max(np.abs(r[j]))) if np.size(r[j]) else 0.0 for r in refs) for j in range(n_out)]
    max_abs = 0.0
    passed = True
    agree = total = 0
    classifier = False
    for ref_set, got_set in zip(refs, gots, strict=True):
        for j, (ref, got) in enumerate(zip(ref_set, got_set, strict=True)):
            ref = np.asarray(ref, dtype=np.float64)
            got = np.asarray(got, dtype=np.float64)
            if got.size != ref.size:  # e.g. a shape baked in at trace time
                max_abs, passed = float("inf"), False
                continue
            got = got.reshape(ref.shape)
            err = np.abs(got - ref)
            max_abs = max(max_abs, float(err.max()) if err.size else 0.0)
            passed &= bool(np.all(err <= tolerance.atol + tolerance.rtol * scales[j]))
            if _is_classifier(ref):
                classifier = True
                rows = _decisive(ref, (steps[j] if steps else None) or 0.0)
                agree += int(np.sum((ref.argmax(1) == got.argmax(1))[rows]))
                total += int(rows.sum())
    max_rel = _max_rel(refs, gots, scales) if np.isfinite(max_abs) else float("inf")
    top1 = agree / total if total else None
    if tolerance.min_top1 is not None and top1 is not None:
        passed &= top1 >= tolerance.min_top1
    return ParityReport(artifact, runtime, len(refs), max_abs, max_rel, top1, tolerance, passed,
                        total if classifier else None)  # fmt: skip


def _max_rel(refs: Sequence[Sequence[np.ndarray]], gots: Sequence[Sequence[np.ndarray]], scales: list[float]) -> float:
    worst = 0.0
    for ref_set, got_set in zip(refs, gots, strict=True):
        for ref, got, scale in zip(ref_set, got_set, scales, strict=True):
            err = float(np.max(np.abs(np.asarray(got, np.float64).reshape(np.shape(ref)) - ref), initial=0.0))
            worst = max(worst, err / scale if scale > 0 else err)
    return worst
