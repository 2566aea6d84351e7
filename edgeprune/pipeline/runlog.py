"""The run directory of an optimize loop: one JSON line per iteration, so an interrupted run can resume."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgeprune.errors import EdgepruneError
from edgeprune.io import write_atomic
from edgeprune.measure.record import Measurement

LOG_NAME = "iterations.jsonl"
CONFIG_NAME = "config.json"
POINTS_NAME = "points"  # one folder per point: the artifacts its measurement wrote


@dataclass
class Point:
    """One point tried: the budgets, what the target measured, the metric, and whether it was kept."""

    iteration: int
    budgets: dict[str, float]
    result: Measurement
    metric: float
    accepted: bool
    step: float
    changed: str | None  # the component whose budget this step raised (None for the baseline)
    why: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["result"] = self.result.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Point:
        return cls(**{**data, "result": Measurement.from_dict(data["result"])})


def point_dir(run_dir: str | Path, iteration: int) -> Path:
    """The folder of point ``iteration`` in a run directory (``points/NNN``)."""
    return Path(run_dir) / POINTS_NAME / f"{iteration:03d}"


def holds_run(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds an optimize run: finished, interrupted, or failed before its first point
    (the configuration and the points folder are written before the baseline is measured)."""
    d = Path(run_dir)
    return (d / LOG_NAME).is_file() or ((d / CONFIG_NAME).is_file() and (d / POINTS_NAME).is_dir())


class RunLog:
    """Append-only record of every point tried, plus the configuration it was started with."""

    def __init__(self, run_dir: str | Path, config: dict[str, Any], resume: bool):
        self.dir = Path(run_dir)
        self.path = self.dir / LOG_NAME
        config_path = self.dir / CONFIG_NAME
        if resume:
            if not self.path.exists():
                raise EdgepruneError(f"nothing to resume in {self.dir}", fix="start without --resume")
            try:
                saved = json.loads(config_path.read_text())
            except (OSError, ValueError) as exc:
                raise EdgepruneError(f"cannot read {config_path}: {exc}", fix="start a new run directory") from exc
            if saved != config:
                changed = sorted(k for k in config if saved.get(k) != config[k])
                raise EdgepruneError(
                    f"--resume with different settings than the run in {self.dir}: {', '.join(changed)} differ",
                    expected="the same model, weights, example inputs, --eval, --finetune, target, --calib, "
                    "options and edgeprune version as the run was started with (its config.json)",
                    fix="resume with the same arguments, or start a new run directory (another --out)",
                )
        elif self.path.exists():
            raise EdgepruneError(
                f"{self.dir} already holds a run", fix="pass --resume to continue it, or pick another --out"
            )
        else:
            write_atomic(config_path, json.dumps(config, indent=2, sort_keys=True))
        self.points = [Point.from_dict(json.loads(line)) for line in self._lines()] if resume else []

    def _lines(self) -> list[str]:
        return [line for line in self.path.read_text().splitlines() if line.strip()]

    def append(self, point: Point) -> None:
        """Record a point (the whole file is rewritten atomically: a crash never leaves half a line)."""
        self.points.append(point)
        write_atomic(self.path, "".join(json.dumps(p.to_dict()) + "\n" for p in self.points))
