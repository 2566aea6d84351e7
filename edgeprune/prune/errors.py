"""Errors raised by the pruner."""

from edgeprune.errors import EdgepruneError


class PruneError(EdgepruneError):
    """Bad input to the pruner, or a model structure it cannot prune safely."""
