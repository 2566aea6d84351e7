"""The parity criterion: top-1 agreement counts only the rows an int8 output can decide (the reference's top-1
leads by more than the output's quantization step); near-uniform rows, whose argmax the rounding alone flips,
are left out instead of failing an export whose errors are far inside the tolerance."""

from __future__ import annotations

import numpy as np

from edgeprune.export.parity import Tolerance, compare

INT8 = Tolerance(atol=0.0, rtol=0.1, min_top1=0.9)
STEP = 1 / 256  # a softmax output's int8 scale


def _rows(values: list[list[float]]) -> list[list[np.ndarray]]:
    return [[np.array([row], np.float32)] for row in values]


def test_near_uniform_rows_flipped_within_a_step_do_not_fail() -> None:
    ref = _rows([[0.101, 0.100, 0.099] + [0.7 / 7] * 7, [0.0995, 0.1005] + [0.8 / 8] * 8])
    got = _rows([[0.099, 0.101, 0.1] + [0.1] * 7, [0.1005, 0.0995] + [0.1] * 8])  # both argmaxes changed
    rep = compare("m", "rt", ref, got, INT8, [STEP])
    assert rep.passed and rep.top1 is None and rep.top1_rows == 0 and rep.max_rel < 0.03
    assert not compare("m", "rt", ref, got, INT8).passed  # without the step: top-1 0 %, as the issue found


def test_a_decisive_row_with_a_changed_argmax_still_fails() -> None:
    ref = _rows([[0.30, 0.25, 0.45], [0.6, 0.2, 0.2]])
    got = _rows([[0.30, 0.28, 0.42], [0.58, 0.21, 0.21]])
    rep = compare("m", "rt", ref, got, Tolerance(atol=0.0, rtol=0.1, min_top1=0.9), [STEP])
    assert rep.top1_rows == 2 and rep.top1 == 1.0 and rep.passed
    flipped = _rows([[0.30, 0.25, 0.27], [0.6, 0.2, 0.2]])  # the first row's decision changed (within rtol 0.3)
    rep = compare("m", "rt", ref, flipped, Tolerance(atol=0.0, rtol=0.3, min_top1=0.9), [STEP])
    assert rep.top1_rows == 2 and rep.top1 == 0.5 and not rep.passed
