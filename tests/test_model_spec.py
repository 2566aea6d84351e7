"""Model specs from the command line: example inputs taken as the model gives them, factory errors explained."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from edgeprune.errors import EdgepruneError
from edgeprune.models.spec import load_model

USERPKG = """
import torch
from torch import nn

class One(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 2)
    def forward(self, x):
        return self.fc(x)
    def example_inputs(self):
        return torch.randn(1, 8)

class Two(One):
    def forward(self, x, y):
        return self.fc(x) + y
    def example_inputs(self):
        return (torch.randn(1, 8), torch.zeros(1, 2))

class Bad(One):
    def example_inputs(self):
        return [1, 2]

def one():
    return One()

def two():
    return Two()

def bad():
    return Bad()

def broken():
    raise ValueError("no such layer size")
"""


@pytest.fixture
def userpkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "specpkg17.py").write_text(USERPKG)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("specpkg17", None)
    return "specpkg17"


def test_a_single_tensor_example_is_one_batched_input(userpkg: str) -> None:
    _, inputs = load_model(f"{userpkg}:one")
    assert [tuple(t.shape) for t in inputs] == [(1, 8)]


def test_a_tuple_example_is_one_input_per_argument(userpkg: str) -> None:
    _, inputs = load_model(f"{userpkg}:two")
    assert [tuple(t.shape) for t in inputs] == [(1, 8), (1, 2)]
    assert all(isinstance(t, torch.Tensor) for t in inputs)


def test_a_non_tensor_example_and_a_raising_factory_are_clear_errors(userpkg: str) -> None:
    with pytest.raises(EdgepruneError, match="example_inputs\\(\\) returned list"):
        load_model(f"{userpkg}:bad")
    with pytest.raises(EdgepruneError, match="broken\\(\\) raised ValueError: no such layer size") as err:
        load_model(f"{userpkg}:broken")
    assert err.value.fix
