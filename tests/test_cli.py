"""The edgeprune command line, run in-process (and once as the installed console script)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from edgeprune.cli import main
from edgeprune.demo import DemoSettings
from edgeprune.models import create_model
from edgeprune.prune import PrunePlan, load_pruned


def test_prune_writes_plan_weights_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    rc = main(["prune", "tdmpc", "--budget", "0.5", "--budget", "dynamics=0.3", "--protect", "encoder",
               "--round-to", "8", "--out", str(out)])  # fmt: skip
    assert rc == 0
    assert {p.name for p in out.iterdir()} == {"plan.json", "pruned.pt", "report.json", "report.txt"}
    report = json.loads((out / "report.json").read_text())
    by_name = {c["name"]: c for c in report["components"]}
    assert by_name["encoder"]["params_after"] == by_name["encoder"]["params_before"]
    assert abs(by_name["dynamics"]["achieved"] - 0.3) <= 0.05
    assert "dynamics" in capsys.readouterr().out
    # the written plan + weights rebuild the pruned model from a fresh instance
    model = create_model("tdmpc")
    inputs = model.example_inputs()
    rebuilt = load_pruned(model, PrunePlan.load(out / "plan.json"), inputs, out / "pruned.pt")
    assert sum(p.numel() for p in rebuilt.parameters()) == report["totals"]["params_after"]


def test_prune_refuses_to_overwrite_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["prune", "simple", "--budget", "0.3", "--out", str(tmp_path)]
    assert main(args) == 0
    assert main(args) == 2
    assert "--force" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["prune", "simple", "--budget", "1.5"], "outside [0, 1)"),
        (["prune", "simple", "--budget", "0.3", "--protect", "enc"], "unknown component 'enc'"),
        (["prune", "nosuchmodel", "--budget", "0.3"], "unknown model 'nosuchmodel'"),
        (["prune", "simple"], "no budget given"),
        (["prune", "simple", "--budget", "abc"], "is not a number"),
        (["prune", "simple", "--budget", "0.3", "--component", "broken"], "bad --component"),
        (["prune", "json:nosuchattr", "--budget", "0.3"], "cannot load"),
        (["prune", "simple", "--budget", "0.3", "--weights", "/nonexistent.pt"], "does not exist"),
        (["prune", "simple", "--budget", "0.3", "--mode", "vanilla", "--budget", "core=0.2"], "vanilla mode"),
    ],
)
def test_bad_input_gives_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main([*args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and message in err
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_custom_factory_with_weights_and_input_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "userpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "import torch.nn as nn\n"
        "def make():\n"
        "    return nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 8, 3))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("userpkg", None)
    import userpkg

    weights = tmp_path / "w.pt"
    torch.save(userpkg.make().state_dict(), weights)
    out = tmp_path / "out"
    rc = main(["prune", "userpkg:make", "--weights", str(weights), "--input-shape", "1x3x16x16",
               "--depth", "1", "--budget", "0.5", "--mode", "vanilla", "--out", str(out)])  # fmt: skip
    assert rc == 0
    assert json.loads((out / "report.json").read_text())["totals"]["achieved"] > 0.2


def test_pickled_module_weights_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "module.pt"
    torch.save(create_model("simple"), path)  # a whole pickled module: weights_only=True must refuse it
    assert main(["prune", "simple", "--weights", str(path), "--budget", "0.3", "--out", str(tmp_path / "o")]) == 2
    assert "state_dict" in capsys.readouterr().err


def test_groups_writes_json_and_mermaid(tmp_path: Path) -> None:
    rc = main(["groups", "recursive", "--json", str(tmp_path / "g.json"), "--mermaid", str(tmp_path / "g.mmd")])
    assert rc == 0
    data = json.loads((tmp_path / "g.json").read_text())
    assert data["summary"]["components"] == 4
    assert (tmp_path / "g.mmd").read_text().startswith("flowchart LR")


def test_models_lists_every_bundled_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("simple", "branched", "multipath", "recursive", "tdmpc", "complex_cnn"):
        assert name in out


@pytest.mark.slow
def test_demo_runs_the_loop_end_to_end_as_the_installed_command(tmp_path: Path) -> None:
    """The README's first command: the trained TD-MPC model optimized on the emulated NUCLEO-L4R5ZI."""
    exe = shutil.which("edgeprune", path=str(Path(sys.executable).parent))
    assert exe, "the edgeprune console script is not installed in this environment"
    # exactly what `make demo` runs: no arguments, so the default output directory, relative to the working dir
    run = subprocess.run([exe, "demo"], cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    run_dir = tmp_path / "out" / "demo"
    assert "goals met" in run.stdout and "measuring on the target" in run.stderr  # progress throughout, on stderr
    summary = json.loads((run_dir / "pareto.json").read_text())
    chosen = summary["chosen"]
    latency = [p["result"]["latency"]["median_ms"] for p in (chosen, summary["points"][0])]  # the record's median
    assert latency[0] <= DemoSettings().latency_ms < latency[1]
    assert chosen["budgets"]["encoder"] == 0 and chosen["result"]["provenance"]["kind"] == "estimated"
    page = (run_dir / "report.html").read_text()
    assert "emulated" in page and "estimate" in page and "Pruning (component mode" in page
    assert "firmware arena" in page and "TFLM arena" not in page  # our kernels' arena, never mistaken for TFLM's
    assert (run_dir / "chosen" / "tflm" / "model.tflite").exists()


def test_boards_list_show_and_fit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["boards", "list"]) == 0
    assert "nucleo-l4r5zi" in capsys.readouterr().out
    assert main(["boards", "show", "pico"]) == 0
    assert "RP2040" in capsys.readouterr().out
    assert main(["boards", "fit", "nucleo-l4r5zi", "--model-bytes", "300000", "--arena-bytes", "100000"]) == 0
    assert "fits" in capsys.readouterr().out
    # 300 KB of arena does not fit in the Nano 33 BLE's 256 KiB of SRAM: exit code 1 and the table says so
    assert main(["boards", "fit", "nano33ble", "--model-bytes", "1000", "--arena-bytes", "300000"]) == 1
    assert "does not fit" in capsys.readouterr().out
    assert main(["boards", "show", "no-such-board"]) == 2
    assert "known" in capsys.readouterr().err.lower()
