"""The measure → budget → prune → export → measure loop (``optimize``) and the targets it measures on."""

from edgeprune.pipeline.optimize import Goals, OptimizeResult, fidelity_metric, optimize
from edgeprune.pipeline.runlog import Point, RunLog
from edgeprune.pipeline.targets import (
    CostModelTarget,
    EmulatedBoardTarget,
    LocalEngineTarget,
    SerialBoardTarget,
    SshBoardTarget,
    Target,
    TargetResult,
)

__all__ = [
    "CostModelTarget",
    "EmulatedBoardTarget",
    "Goals",
    "LocalEngineTarget",
    "OptimizeResult",
    "Point",
    "RunLog",
    "SerialBoardTarget",
    "SshBoardTarget",
    "Target",
    "TargetResult",
    "fidelity_metric",
    "optimize",
]
