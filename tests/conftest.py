"""Shared fixtures: bundled models, one torch thread per test, a random Pendulum replay, a loopback SSH server."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator

import pytest
import torch
from loopback_sshd import loopback_sshd  # noqa: F401  (session fixture: OpenSSH server on 127.0.0.1)
from torch import nn

from edgeprune import cache
from edgeprune.models import create_model

_CACHE_KEY = pytest.StashKey[tuple[str | None, str]]()


def pytest_configure(config: pytest.Config) -> None:
    """One fresh artifact cache (``edgeprune.cache``) per test run, shared by the xdist workers (they inherit the
    environment of the process that starts them) and by the commands the tests run, so that no run depends on an
    earlier one. Set before collection: some test modules copy ``os.environ`` when imported."""
    if hasattr(config, "workerinput"):  # an xdist worker: the controller set it
        return
    config.stash[_CACHE_KEY] = (os.environ.get(cache.ENV), tempfile.mkdtemp(prefix="edgeprune-test-cache-"))
    os.environ[cache.ENV] = config.stash[_CACHE_KEY][1]


def pytest_unconfigure(config: pytest.Config) -> None:
    before, run_cache = config.stash.get(_CACHE_KEY, (None, None))
    if run_cache is None:
        return
    shutil.rmtree(run_cache, ignore_errors=True)
    if before is None:
        os.environ.pop(cache.ENV, None)
    else:
        os.environ[cache.ENV] = before


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files holding a test marked ``slow`` first, otherwise in collection order: with ``--dist loadfile
    --no-loadscope-reorder`` (``make test``) the longest files start early and the short ones fill the other
    worker, instead of a long file starting last while the other worker idles."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)


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


@pytest.fixture(scope="module")
def replay():
    """400 Pendulum-v1 transitions of uniform random actions (env seeds 0 and 1), actions in model units."""
    from edgeprune.control import Replay, rollout
    from edgeprune.control.env import random_act_fn

    _, trace = rollout(random_act_fn(0), [0, 1], record=True)
    buf = Replay()
    buf.add(trace["obs"], trace["action"] / 2.0, trace["reward"])
    return buf


@pytest.fixture
def make_model() -> Callable[..., nn.Module]:
    """``make_model(name, seed=0, **ctor_kwargs)``: a bundled model, seeded and in eval mode."""
    return _make
