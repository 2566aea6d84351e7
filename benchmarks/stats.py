"""Paired statistics shared by the benchmarks: Student-t 95 % intervals of a mean and of a ratio.

Imported by the benchmark scripts as ``from stats import ...`` (a script's own folder is first on ``sys.path``).
"""

from __future__ import annotations

import math

import numpy as np

# two-sided 95 % Student-t quantiles by degrees of freedom (>= 120: normal); a df between two keys takes the
# smaller key's (larger, so conservative) quantile
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
       15: 2.131, 20: 2.086, 25: 2.060, 29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000, 89: 1.987, 120: 1.980}  # fmt: skip


def t95(df: int) -> float:
    """The two-sided 95 % Student-t quantile for ``df`` degrees of freedom (conservative lookup)."""
    return T95[max(k for k in T95 if k <= df)] if df < 120 else 1.96


def ci95(values) -> tuple[float, float]:
    """Mean and the half-width of its two-sided 95 % Student-t confidence interval (nan with one value)."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()), float("nan")
    return float(v.mean()), float(t95(len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))


def ratio_ci95(ratios) -> tuple[float, float, float]:
    """Geometric mean of paired ratios (e.g. serial / parallel seconds of each pair) and its 95 % confidence
    interval, from a Student-t interval on the log ratios: ``(mean, low, high)`` (low/high nan with one pair)."""
    mean, half = ci95(np.log(np.asarray(ratios, dtype=float)))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)
