"""ONNX Runtime, LiteRT, TFLM-host profilers and the original-vs-pruned comparison, on real exports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from headless_browser import assert_self_contained_and_rendered

from edgeprune.boards import load_board
from edgeprune.cli import main
from edgeprune.export import export
from edgeprune.measure.record import Measurement
from edgeprune.models import create_model
from edgeprune.pipeline.compare import compare
from edgeprune.profiling.litert import LiteRTProfiler
from edgeprune.profiling.ort import OnnxRuntimeProfiler
from edgeprune.profiling.tflm_host import TFLMHostProfiler
from edgeprune.prune import Budget, prune


def _samples(model: torch.nn.Module, n: int = 128) -> list[tuple[np.ndarray, ...]]:
    torch.manual_seed(3)
    return [tuple(t.numpy() for t in model.example_inputs(1)) for _ in range(n)]


@pytest.fixture(scope="module")
def tdmpc_export(tmp_path_factory: pytest.TempPathFactory):
    torch.manual_seed(0)
    model = create_model("tdmpc").eval()
    inputs = model.example_inputs(1)
    out = tmp_path_factory.mktemp("tdmpc")
    result = export(model, inputs, out, targets=("onnx", "tflm"), calibration=_samples(model))
    return model, inputs, out, result


def test_onnxruntime_profiler_attributes_time_to_components(tdmpc_export) -> None:
    model, inputs, out, _ = tdmpc_export
    m = OnnxRuntimeProfiler(out / "model.onnx", threads=1, profile_runs=5).measure("tdmpc", inputs, runs=5)
    assert m.runtime == "onnxruntime" and m.provenance.kind == "measured"
    assert m.latency.median_ms > 0 and m.memory.flash_bytes == (out / "model.onnx").stat().st_size
    names = {n for n, _ in model.named_children()}
    attributed = {c for c in m.components if c in names}
    assert attributed == names, m.components  # every component got kernel time from ORT's node profile
    assert sum(c.share for c in m.components.values()) == pytest.approx(1.0)


def test_conv_nodes_renamed_by_the_nchwc_layout_pass_keep_their_component(tmp_path: Path) -> None:
    """On x86, ONNX Runtime's NCHWc pass renames conv nodes after their output tensor (``<node>_output_0_nchwc``)."""
    torch.manual_seed(0)
    model = create_model("kws_dscnn").eval()
    export(model, model.example_inputs(1), tmp_path, targets=("onnx",))
    m = OnnxRuntimeProfiler(tmp_path / "model.onnx", threads=1, profile_runs=5).measure(
        "kws", [x.numpy() for x in model.example_inputs(1)], runs=3, warmup=1
    )
    attributed = sum(c.latency_ms for name, c in m.components.items() if name != "(unattributed)")
    assert {"stem", "blocks", "head"} <= set(m.components) and attributed >= 0.9 * sum(
        c.latency_ms for c in m.components.values()
    )


def test_onnxruntime_profiler_errors(tmp_path: Path, tdmpc_export) -> None:
    from edgeprune.errors import EdgepruneError

    with pytest.raises(EdgepruneError, match="does not exist"):
        OnnxRuntimeProfiler(tmp_path / "missing.onnx")
    _, inputs, out, _ = tdmpc_export
    with pytest.raises(EdgepruneError, match="takes 2 inputs, got 1"):
        OnnxRuntimeProfiler(out / "model.onnx").measure("x", inputs[:1], runs=1, warmup=0)
    with pytest.raises(EdgepruneError, match="no CUDAExecutionProvider"):
        OnnxRuntimeProfiler(out / "model.onnx", providers=["CUDAExecutionProvider"]).measure("x", inputs, runs=1)


@pytest.mark.parametrize("variant", ["model_float32.tflite", "model_int8.tflite"])
def test_litert_profiler_runs_and_matches_eager(tdmpc_export, variant: str) -> None:
    model, inputs, out, result = tdmpc_export
    with torch.no_grad():
        ref = [t.numpy() for t in model(*inputs)]
    shapes = dict(zip(result.onnx.output_names, [r.shape for r in ref], strict=True))
    profiler = LiteRTProfiler(out / "tflite" / variant, result.onnx.input_shapes, shapes)
    with profiler:
        got = profiler.infer([t.numpy() for t in inputs])
    tolerance = 1e-4 if "float32" in variant else 0.1
    for r, g in zip(ref, got, strict=True):
        assert np.abs(r - g).max() <= tolerance * max(1.0, np.abs(r).max())
    m = profiler.measure("tdmpc", [t.numpy() for t in inputs], runs=5, warmup=1)
    assert m.runtime == "litert" and m.latency.runs == 5


def test_tflm_host_profiler_reports_arena_and_host_time(tdmpc_export) -> None:
    _, inputs, out, result = tdmpc_export
    m = TFLMHostProfiler(out / "tflm" / "model.tflite").measure("tdmpc", inputs, runs=5, warmup=1)
    assert m.memory.arena_bytes == result.tflm.arena.minimum  # bisection finds the exporter's arena
    assert "host CPU time, not board time" in m.provenance.how
    assert m.latency.runs == 5 and m.latency.min_ms > 0


def test_compare_original_vs_pruned_table_json_and_plot(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("simple").eval()
    inputs = model.example_inputs(1)
    pruned = prune(model, inputs, Budget(default=0.5)).model
    result = compare(
        model, pruned, inputs, tmp_path, calibration=_samples(model), board=load_board("nucleo-l4r5zi"),
        runs=5, warmup=1,
    )  # fmt: skip
    engines = [r.engine for r in result.rows]
    assert engines == ["pytorch-eager", "onnxruntime", "litert-fp32", "litert-int8", "tflm-host", "nucleo-l4r5zi"]
    assert result.macs["pruned"] < 0.6 * result.macs["original"]
    assert result.ideal_speedup == pytest.approx(result.macs["original"] / result.macs["pruned"])
    board_row = result.row("nucleo-l4r5zi")
    assert board_row.original.provenance.kind == "estimated"  # an estimate is never shown as a measurement
    assert board_row.speedup > 1.5  # the cost model is MAC-driven: halving MACs roughly halves the estimate
    result.save(tmp_path / "c.json", tmp_path / "c.png")
    data = json.loads((tmp_path / "c.json").read_text())
    assert Measurement.from_dict(data["engines"][0]["original"]).runtime == "pytorch-eager"
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_without_calibration_skips_int8_with_a_note(tmp_path: Path) -> None:
    model = create_model("simple").eval()
    inputs = model.example_inputs(1)
    pruned = prune(model, inputs, Budget(default=0.3)).model
    result = compare(model, pruned, inputs, tmp_path, runs=2, warmup=0)
    assert [r.engine for r in result.rows] == ["pytorch-eager", "onnxruntime", "litert-fp32"]
    assert any("no calibration samples" in n for n in result.notes)


def test_cli_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prune", "simple", "--budget", "0.5", "--round-to", "8", "--out", str(tmp_path / "p")]) == 0
    args = ["compare", "simple", "--plan", str(tmp_path / "p/plan.json"), "--board", "pico", "--runs", "3",
            "--out", str(tmp_path / "c")]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "ideal speedup from MACs" in out
    assert "no fitted cost model" in out  # the Pico's Cortex-M0+ has no calibration point: said, not guessed
    assert (tmp_path / "c" / "compare.png").exists()
    assert main(args) == 2  # refuses to overwrite without --force


def test_report_from_compare_and_prune_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prune", "simple", "--budget", "0.5", "--out", str(tmp_path / "p")]) == 0
    args = ["compare", "simple", "--plan", str(tmp_path / "p/plan.json"), "--board", "nucleo-l4r5zi", "--runs", "3",
            "--out", str(tmp_path / "c")]  # fmt: skip
    assert main(args) == 0
    inputs = [str(tmp_path / "c/compare.json"), str(tmp_path / "p/report.json")]
    assert main(["report", *inputs, "--out", str(tmp_path / "r")]) == 0
    md = (tmp_path / "r/report.md").read_text()
    page = (tmp_path / "r/report.html").read_text()
    assert "## Engines: original vs pruned" in md and "(estimate)" in md
    assert "## Pruning (component mode" in md
    assert page.count("data:image/png;base64,") >= 3  # self-contained: plots inline
    assert "<table>" in page and "nucleo-l4r5zi" in page
    assert_self_contained_and_rendered(tmp_path / "r/report.html", min_images=3)  # in a real browser, offline
    (tmp_path / "bad.json").write_text('{"something": 1}')
    assert main(["report", str(tmp_path / "bad.json"), "--out", str(tmp_path / "r2")]) == 2
    assert "not a file this report understands" in capsys.readouterr().err
