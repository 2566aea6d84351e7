"""``edgeprune groups`` shows the groups ``prune()`` uses: the model's declared constraints, pieces per component."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeprune.cli import main
from edgeprune.models import create_model
from edgeprune.prune import Budget, prune


def _shape(groups: list[dict]) -> list[tuple]:
    return [(tuple(g["roots"]), g["kind"], g["frozen"], g["block"], g["ensemble"] is not None) for g in groups]


@pytest.mark.parametrize("mode", ["component", "vanilla"])
def test_groups_cli_agrees_with_prune(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "g.json"
    assert main(["groups", "tdmpc", "--mode", mode, "--json", str(path)]) == 0
    shown = json.loads(path.read_text())["groups"]
    model = create_model("tdmpc").eval()
    used = prune(model, model.example_inputs(), Budget(total=0.3), mode=mode).groups.to_dict()["groups"]
    assert _shape(shown) == _shape(used)
    latent = next(g for g in shown if "encoder.3" in g["roots"])
    assert set(latent["roots"]) == {"encoder.3", "dynamics.6"} and latent["frozen"] is None  # declared tie + state
    assert latent["block"] == 8
    assert {p["component"] for p in latent["pieces"]} == {"encoder", "dynamics", "reward", "policy", "qs"}


def test_groups_cli_prints_interface_pieces(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["groups", "tdmpc", "--mode", "component"]) == 0
    out = capsys.readouterr().out
    assert "interface piece" in out
    assert "'pieces': 23" in out
