"""Shared fixtures for the pruner tests (``tests/test_prune_*.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch
from loopback_sshd import loopback_sshd  # noqa: F401  (session fixture: OpenSSH server on 127.0.0.1)
from torch import nn

from edgeprune.models import create_model


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tests run tiny models: one intra-op thread is as fast, and two xdist workers with two threads each on a
    shared 2-core machine collapse (a 5 s closed-loop evaluation took 117 s under that contention)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _make(name: str, seed: int = 0, **kwargs: object) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(name, **kwargs).eval()


@pytest.fixture
def make_model() -> Callable[..., nn.Module]:
    """``make_model(name, seed=0, **ctor_kwargs)``: a bundled model, seeded and in eval mode."""
    return _make
