"""Bundled example networks: the six multi-component architectures of the paper's Table 1, and the
MLPerf Tiny keyword-spotting and anomaly-detection reference models (calibration of the board cost model).

Each model's components are its top-level ``named_children()``; each has ``example_inputs(batch_size)``
and, where it has structure Torch-Pruning cannot see, ``pruning_constraints()``.
"""

from __future__ import annotations

from collections.abc import Callable
from fnmatch import fnmatch
from types import MappingProxyType

import torch
from torch import nn

from edgeprune.errors import EdgepruneError
from edgeprune.models.cnn import ComplexCNN
from edgeprune.models.mlp import SimNorm, mlp
from edgeprune.models.mlperf_tiny import DSCNNKWS, FCAutoencoderAD
from edgeprune.models.rssm import RSSMStyle
from edgeprune.models.tdmpc import TDMPCStyle
from edgeprune.models.toy import BranchedMLP, MultiPathMLP, RecursiveMLP, SimpleMLP

__all__ = [
    "DSCNNKWS",
    "BranchedMLP",
    "ComplexCNN",
    "FCAutoencoderAD",
    "MultiPathMLP",
    "RSSMStyle",
    "RecursiveMLP",
    "SimNorm",
    "SimpleMLP",
    "TDMPCStyle",
    "UnknownModelError",
    "create_model",
    "list_models",
    "mlp",
]

_REGISTRY: MappingProxyType[str, Callable[..., nn.Module]] = MappingProxyType(
    {
        "simple": SimpleMLP,
        "branched": BranchedMLP,
        "multipath": MultiPathMLP,
        "recursive": RecursiveMLP,
        "tdmpc": TDMPCStyle,
        "complex_cnn": ComplexCNN,
        "rssm": RSSMStyle,
        "kws_dscnn": DSCNNKWS,
        "ad_autoencoder": FCAutoencoderAD,
    }
)


class UnknownModelError(EdgepruneError, ValueError):
    """A model name that is not in the registry."""


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names (Table 1 order, then MLPerf Tiny), optionally filtered by an fnmatch ``pattern``."""
    return [name for name in _REGISTRY if pattern is None or fnmatch(name, pattern)]


SEED = 0  # bundled models are built from this seed: the same name gives the same weights in every process


def create_model(name: str, **kwargs: object) -> nn.Module:
    """Build the registered model ``name`` (weights initialised from ``SEED``, without touching the global
    random state); ``kwargs`` go to its constructor."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}",
            expected=f"a bundled model ({', '.join(_REGISTRY)}) or package.module:factory",
        ) from None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        return factory(**kwargs)
