"""The measure → budget → prune → export → measure loop (``optimize``) and ``compare`` (original vs pruned on
every engine). Both measure through runners (:mod:`edgeprune.measure.runner`)."""

from edgeprune.pipeline.optimize import Goals, OptimizeOptions, OptimizeResult, optimize
from edgeprune.pipeline.runlog import Point, RunLog

__all__ = ["Goals", "OptimizeOptions", "OptimizeResult", "Point", "RunLog", "optimize"]
