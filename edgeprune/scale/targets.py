"""Where a sweep measures: a :class:`Target` per board or runtime, each with the Ray resource it holds.

Written ``KIND:BOARD[:WHERE]`` on the command line and in a sweep TOML:

==========================  ======================================  =========================================
target                       runner                                  resource held while measuring
==========================  ======================================  =========================================
``emulate:BOARD``            EmulatedBoardRunner (QEMU)              ``emulator`` (one slot per core)
``serial:BOARD:PORT``        SerialBoardRunner                       ``board:BOARD:PORT`` (the board alone)
``ssh:BOARD:USER@HOST``      SshBoardRunner (onnxruntime)            ``ssh:USER@HOST``
``cost:BOARD``               CostModelRunner                         none (CPU only)
``engine:NAME``              HostRunner on the node                  ``host-timing`` (one timing per node)
==========================  ======================================  =========================================

A resource exists where it is declared: an embedded run declares this machine's (every target's resource, and
``emulator`` as many as cores); on a cluster, the node a board is plugged into declares it (``ray start
--resources``), so its measurements are scheduled there and nowhere else (docs/scale.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from edgeprune.errors import EdgepruneError
from edgeprune.measure.runner import Runner

KINDS = ("emulate", "serial", "ssh", "cost", "engine")
EMULATOR = "emulator"
HOST_TIMING = "host-timing"


@dataclass(frozen=True)
class Target:
    """One place to measure: ``kind``, the board (or engine) name and, for serial and SSH, the port or host."""

    kind: str
    name: str
    where: str = ""

    @classmethod
    def parse(cls, text: str) -> Target:
        kind, _, rest = text.partition(":")
        name, _, where = rest.partition(":")
        needs_where = kind in ("serial", "ssh")
        if kind not in KINDS or not name or needs_where != bool(where):
            raise EdgepruneError(
                f"target {text!r} is not understood",
                expected="emulate:BOARD, serial:BOARD:PORT, ssh:BOARD:USER@HOST, cost:BOARD or engine:NAME",
                fix="e.g. --target emulate:nucleo-l4r5zi --target serial:nucleo-h743zi2:/dev/ttyACM0",
            )
        return cls(kind, name, where)

    @property
    def label(self) -> str:
        return ":".join(p for p in (self.kind, self.name, self.where) if p)

    @property
    def resource(self) -> str | None:
        """The Ray resource a measurement holds (one unit), or None for CPU-only estimates."""
        return {
            "emulate": EMULATOR,
            "serial": f"board:{self.name}:{self.where}",
            "ssh": f"ssh:{self.where}",
            "engine": HOST_TIMING,
        }.get(self.kind)

    @property
    def needs_calibration(self) -> bool:
        """Whether the runner measures the int8 model (calibration samples required)."""
        if self.kind == "engine":
            from edgeprune.profiling.engines import engine

            return engine(self.name).int8
        return self.kind in ("emulate", "serial")

    def export_targets(self, calibrated: bool) -> tuple[str, ...]:
        """What the runner reads from the subject's export (made ahead of the measurement, on any node), with
        calibration samples given or not; () when it reads none."""
        if self.kind == "engine":
            from edgeprune.profiling.engines import engine

            return engine(self.name).targets
        if self.kind == "cost" and not calibrated:
            return ()
        return ("onnx",) if self.kind == "ssh" else ("onnx", "tflm")

    def runner(self, calibration: Any) -> Runner:
        """The runner measuring on this target (built where the measurement runs)."""
        if self.kind == "engine":
            from edgeprune.profiling.engines import HostRunner

            return HostRunner(self.name, calibration)
        from edgeprune.boards import load_board

        board = load_board(self.name)
        if self.kind == "cost":
            from edgeprune.boards.runner import CostModelRunner

            return CostModelRunner(board, calibration)
        if self.kind == "ssh":
            from edgeprune.deploy.ssh import SSHTarget
            from edgeprune.deploy.ssh.runner import SshBoardRunner

            return SshBoardRunner(SSHTarget.for_board(board, self.where), "onnxruntime")
        from edgeprune.deploy.mcu.runners import EmulatedBoardRunner, SerialBoardRunner

        if self.kind == "serial":
            return SerialBoardRunner(board, calibration, self.where)
        return EmulatedBoardRunner(board, calibration)


def local_resources(targets: list[Target], cpus: int | None = None) -> dict[str, float]:
    """The resources an embedded run declares on this machine for ``targets``."""
    out: dict[str, float] = {}
    for t in targets:
        if t.resource is not None:
            out[t.resource] = float(cpus or os.cpu_count() or 1) if t.kind == "emulate" else 1.0
    return out
