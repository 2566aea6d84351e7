"""One call for all targets: ``export(model, example_inputs, out_dir, targets=...)`` -> :class:`ExportResult`.

Every step writes into a private staging directory; only when all requested targets succeeded
are the files moved into ``out_dir`` (atomically, one by one) and the manifest written last.
ONNX parity failures raise (everything else derives from the ONNX model); TFLite parity results
are recorded in the result, the table and the manifest, and ``ExportResult.passed`` is False when
any of them failed, so a CLI can exit non-zero.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeprune.export.artifacts import Artifact, Staging, check_writable, sha256_bytes
from edgeprune.export.errors import ExportError
from edgeprune.export.onnx import DEFAULT_OPSET, META_PLAN_HASH, OnnxExport, eager_outputs, onnx_from_torch
from edgeprune.export.opmap import onnx_nodes
from edgeprune.export.parity import ParityReport, Tolerance, compare
from edgeprune.export.samples import CalibrationSource, load_calibration, require_calibration
from edgeprune.export.tensorrt import PRECISIONS, TensorRTCheck, build_engine, check_tensorrt
from edgeprune.export.tflite import (
    FLOAT_TOLERANCE,
    INT8_TOLERANCE,
    TFLiteExport,
    from_tflite,
    int8_parity_sets,
    summarize_float_ops,
    tflite_from_onnx,
    to_tflite,
)
from edgeprune.export.tflm import TFLMBundle, run_tflm, tflm_bundle
from edgeprune.export.tflm import io_names as tflm_io_names

logger = logging.getLogger(__name__)
TARGETS = ("onnx", "tflite", "tflm", "tensorrt", "tensorrt-check")


@dataclass(frozen=True)
class OnnxOptions:
    input_names: Sequence[str] | None = None
    output_names: Sequence[str] | None = None
    opset: int = DEFAULT_OPSET
    dynamic_batch: bool = False
    simplify: bool = True
    plan_hash: str | None = None


@dataclass(frozen=True)
class Tolerances:
    onnx: Tolerance = field(default_factory=Tolerance)
    tflite_float: Tolerance = FLOAT_TOLERANCE
    tflite_int8: Tolerance = INT8_TOLERANCE


@dataclass(frozen=True)
class TensorRTOptions:
    precision: str = "fp16"
    workspace_mib: int = 1024
    timing_cache: Path | None = None
    dla_core: int | None = None


@dataclass(frozen=True)
class SummaryRow:
    artifact: str
    size: int
    check: str
    passed: bool | None


@dataclass
class ExportResult:
    """What an export wrote and how each artifact compared with eager PyTorch."""

    out_dir: Path
    artifacts: list[Artifact]
    rows: list[SummaryRow]
    onnx: OnnxExport
    tflite: TFLiteExport | None = None
    tflm: TFLMBundle | None = None
    tflm_parity: ParityReport | None = None
    tensorrt_check: TensorRTCheck | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def parity(self) -> list[ParityReport]:
        reports = [self.onnx.parity]
        if self.tflite is not None:
            reports += [r for r in (self.tflite.float_parity, self.tflite.int8_parity) if r is not None]
        return reports + ([self.tflm_parity] if self.tflm_parity is not None else [])

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.parity)

    def table(self) -> Any:
        """A ``rich.table.Table`` of artifact, size and parity/check, for the CLI summary."""
        from rich.table import Table

        table = Table(title=f"export -> {self.out_dir}")
        for col in ("artifact", "size", "parity / check", ""):
            table.add_column(col)
        for row in self.rows:
            mark = {True: "[green]ok[/]", False: "[red]FAIL[/]", None: ""}[row.passed]
            table.add_row(row.artifact, f"{row.size:,} B", row.check, mark)
        return table


def _parity_text(rep: ParityReport) -> str:
    top1 = "" if rep.top1 is None else f", top-1 {rep.top1:.0%} of {rep.top1_rows} rows"
    top1 = ", top-1 n/a (0 decisive rows)" if rep.top1_rows == 0 else top1
    return f"max abs {rep.max_abs:.2g}, rel {rep.max_rel:.2g}{top1}"


def _plan(targets: Sequence[str]) -> list[str]:
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise ExportError(f"unknown export target(s) {unknown}.", expected=f"some of {', '.join(TARGETS)}")
    wanted = {"onnx", *targets}
    if "tflm" in wanted:
        wanted.add("tflite")
    return [t for t in TARGETS if t in wanted]


def _expected_names(plan: Sequence[str]) -> list[str]:
    names = ["model.onnx"]
    names += ["tflite"] if "tflite" in plan else []
    names += ["tflm"] if "tflm" in plan else []
    names += ["tensorrt"] if {"tensorrt", "tensorrt-check"} & set(plan) else []
    return names


def export(
    model: nn.Module,
    example_inputs: torch.Tensor | Sequence[torch.Tensor],
    out_dir: str | Path,
    *,
    targets: Sequence[str] = ("onnx", "tflite", "tflm"),
    calibration: CalibrationSource | None = None,
    int8: bool = True,
    force: bool = False,
    onnx_options: OnnxOptions = OnnxOptions(),
    tolerances: Tolerances = Tolerances(),
    tensorrt: TensorRTOptions = TensorRTOptions(),
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export ``model`` to the requested ``targets`` in ``out_dir`` and check each artifact.

    Targets: ``onnx`` (always), ``tflite`` (float32, plus full-int8 when ``int8``), ``tflm`` (implies
    tflite int8), ``tensorrt`` (engine; needs TensorRT and a GPU) and ``tensorrt-check`` (offline
    buildability report, runs anywhere). ``calibration`` holds representative samples (.npy/.npz
    path, array, mapping or iterable) for int8. Refuses to overwrite an earlier export unless
    ``force``. Raises :class:`ExportError` with what/expected/what-to-do on bad input.
    """
    say = progress or logger.info
    plan = _plan(targets)
    out = Path(out_dir)
    check_writable(out, _expected_names(plan), force)
    needs_int8 = "tflm" in plan or ("tflite" in plan and int8)
    if needs_int8:
        require_calibration(calibration, "int8 TFLite" + (" for the TFLite Micro bundle" if "tflm" in plan else ""))
    if "tensorrt" in plan and tensorrt.precision not in PRECISIONS:
        raise ExportError(f"unknown TensorRT precision '{tensorrt.precision}'.", expected=f"one of {PRECISIONS}")
    trt_int8 = "tensorrt" in plan and tensorrt.precision == "int8"
    if trt_int8:
        require_calibration(calibration, "an INT8 TensorRT engine")
    if "tensorrt" in plan and importlib.util.find_spec("tensorrt") is None:
        raise ExportError(
            "a TensorRT engine was requested but the Python package 'tensorrt' is not installed here.",
            do="build the engine on the GPU machine/Jetson, or ask for 'tensorrt-check' (offline) instead.",
        )
    model = model.eval()
    with Staging(out) as st:
        say("ONNX: tracing and checking parity in ONNX Runtime")
        ox = onnx_from_torch(
            model,
            example_inputs,
            input_names=onnx_options.input_names,
            output_names=onnx_options.output_names,
            opset=onnx_options.opset,
            dynamic_batch=onnx_options.dynamic_batch,
            plan_hash=onnx_options.plan_hash,
            simplify=onnx_options.simplify,
            tolerance=tolerances.onnx,
        )
        calib = load_calibration(calibration, ox.input_shapes) if needs_int8 or trt_int8 else None
        onnx_bytes = ox.to_bytes()
        st.add("model.onnx", "onnx", onnx_bytes)
        rows = [SummaryRow("model.onnx", len(onnx_bytes), _parity_text(ox.parity), ox.parity.passed)]
        result = ExportResult(out, [], rows, ox, notes=list(ox.notes))
        if "tflite" in plan:
            _tflite_step(model, example_inputs, ox, calib if needs_int8 else None, tolerances, st, result, say)
        if "tflm" in plan:
            _tflm_step(model, example_inputs, ox, onnx_bytes, calib, tolerances.tflite_int8, st, result, say)
        if {"tensorrt", "tensorrt-check"} & set(plan):
            _tensorrt_step(ox, onnx_bytes, calib, tensorrt, "tensorrt" in plan, st, result, say)
        say("writing artifacts")
        result.artifacts = st.commit(_manifest(result, onnx_bytes))
    return result


def _tflite_step(
    model: nn.Module,
    example_inputs: torch.Tensor | Sequence[torch.Tensor],
    ox: OnnxExport,
    calib: dict[str, np.ndarray] | None,
    tolerances: Tolerances,
    st: Staging,
    result: ExportResult,
    say: Callable[[str], None],
) -> None:
    say("TFLite: converting with onnx2tf" + (" (float32 + full-int8)" if calib is not None else " (float32)"))
    with tempfile.TemporaryDirectory(dir=st.root) as work:
        tfl = tflite_from_onnx(
            ox,
            model,
            example_inputs,
            Path(work),
            int8=calib is not None,
            calibration=calib,
            float_tolerance=tolerances.tflite_float,
            int8_tolerance=tolerances.tflite_int8,
        )
    result.tflite = tfl
    st.add("tflite/model_float32.tflite", "tflite-float32", tfl.float32)
    result.rows.append(
        SummaryRow(
            "tflite/model_float32.tflite",
            len(tfl.float32),
            _parity_text(tfl.float_parity),
            tfl.float_parity.passed,
        )
    )
    if tfl.int8 is not None and tfl.int8_parity is not None:
        st.add("tflite/model_int8.tflite", "tflite-int8", tfl.int8)
        islands = f"; {len(tfl.float_ops)} float ops" if tfl.float_ops else ""
        result.rows.append(
            SummaryRow(
                "tflite/model_int8.tflite",
                len(tfl.int8),
                _parity_text(tfl.int8_parity) + islands,
                tfl.int8_parity.passed,
            )
        )
        if tfl.float_ops:
            result.notes.append(summarize_float_ops(tfl.float_ops))
    info = {
        "float32": {"inputs": [asdict(x) for x in tfl.inputs], "outputs": [asdict(x) for x in tfl.outputs]},
        "int8": {
            "inputs": [asdict(x) for x in tfl.int8_inputs],
            "outputs": [asdict(x) for x in tfl.int8_outputs],
        },
        "float_ops_in_int8": [f.describe() for f in tfl.float_ops],
        "layout_note": "tflite tensor = onnx tensor transposed by perm (NCHW -> NHWC for images)",
        "onnx2tf_seconds": round(tfl.seconds, 2),
    }
    st.add("tflite/layout.json", "tflite-info", json.dumps(info, indent=2, sort_keys=True) + "\n")


def _tflm_step(
    model: nn.Module,
    example_inputs: torch.Tensor | Sequence[torch.Tensor],
    ox: OnnxExport,
    onnx_bytes: bytes,
    calib: dict[str, np.ndarray],
    tolerance: Tolerance,
    st: Staging,
    result: ExportResult,
    say: Callable[[str], None],
) -> None:
    tfl = result.tflite
    assert tfl is not None and tfl.int8 is not None  # guaranteed by _plan and require_calibration
    say("TFLite Micro: gating in the TFLM interpreter and bisecting the arena")
    bundle = tflm_bundle(
        tfl.int8,
        onnx_nodes=onnx_nodes(ox.model, ox.components),
        source_onnx_sha256=sha256_bytes(onnx_bytes),
        layouts=[asdict(x) for x in tfl.int8_inputs + tfl.int8_outputs],
    )
    result.tflm = bundle
    for name, content in bundle.files.items():
        st.add(f"tflm/{name}", "tflm", content)
    arena = bundle.arena
    say("TFLite Micro: parity against eager PyTorch")
    result.tflm_parity = _tflm_parity(model, example_inputs, tfl, bundle, calib, tolerance)
    result.rows.append(
        SummaryRow(
            "tflm/model.tflite",
            len(tfl.int8),
            f"{_parity_text(result.tflm_parity)}; arena {arena.minimum:,}/{arena.recommended:,} B (min/rec.)",
            result.tflm_parity.passed,
        )
    )


def _tflm_parity(
    model: nn.Module,
    example_inputs: torch.Tensor | Sequence[torch.Tensor],
    tfl: TFLiteExport,
    bundle: TFLMBundle,
    calib: dict[str, np.ndarray],
    tolerance: Tolerance,
) -> ParityReport:
    """Run the bundle's model in the TFLM interpreter on the int8 parity inputs; compare with eager."""
    example = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    sets = int8_parity_sets(example, calib, max_samples=64)
    in_names, out_names = tflm_io_names(tfl.int8)
    ins = {lay.tflite_name: (i, lay) for i, lay in enumerate(tfl.int8_inputs)}
    feeds = [[to_tflite(s[ins[n][0]].numpy(), ins[n][1]) for n in in_names] for s in sets]
    outs = run_tflm(tfl.int8, feeds, bundle.arena.recommended)
    position = {name: j for j, name in enumerate(out_names)}
    gots = [[from_tflite(ys[position[lay.tflite_name]], lay) for lay in tfl.int8_outputs] for ys in outs]
    refs = [eager_outputs(model, s) for s in sets]
    return compare("tflm/model.tflite", "TFLite Micro", refs, gots, tolerance, [x.scale for x in tfl.int8_outputs])


def _tensorrt_step(
    ox: OnnxExport,
    onnx_bytes: bytes,
    calib: dict[str, np.ndarray] | None,
    opts: TensorRTOptions,
    build: bool,
    st: Staging,
    result: ExportResult,
    say: Callable[[str], None],
) -> None:
    say("TensorRT: offline buildability check")
    check = check_tensorrt(ox.model, ox.components, allow_dynamic_batch=ox.dynamic_batch)
    result.tensorrt_check = check
    report = {
        "snapshot_version": check.snapshot_version,
        "ok": check.ok,
        "problems": check.problems,
        "notes": check.notes,
    }
    data = json.dumps(report, indent=2) + "\n"
    st.add("tensorrt/tensorrt_check.json", "tensorrt-check", data)
    result.rows.append(
        SummaryRow(
            "tensorrt/tensorrt_check.json",
            len(data),
            f"TensorRT {check.snapshot_version}: " + ("buildable" if check.ok else f"{len(check.problems)} problem(s)"),
            check.ok,
        )
    )
    if not build:
        return
    if not check.ok:
        raise ExportError("the ONNX model would not build in TensorRT.", detail=check.describe())
    say(f"TensorRT: building a {opts.precision} engine")
    eng = build_engine(
        onnx_bytes,
        ox.input_shapes,
        precision=opts.precision,
        workspace_mib=opts.workspace_mib,
        timing_cache=opts.timing_cache,
        dla_core=opts.dla_core,
        calibration=calib,
    )
    name = f"tensorrt/model_{opts.precision}.engine"
    st.add(name, "tensorrt-engine", eng.engine)
    st.add("tensorrt/engine.json", "tensorrt-info", json.dumps(eng.manifest, indent=2) + "\n")
    st.add("tensorrt/timing.cache", "tensorrt-timing-cache", eng.timing_cache)
    result.rows.append(SummaryRow(name, len(eng.engine), f"built on {eng.manifest['gpu']}", None))


def _manifest(result: ExportResult, onnx_bytes: bytes) -> dict[str, Any]:
    from edgeprune import __version__

    ox = result.onnx
    return {
        "edgeprune_version": __version__,
        "torch_version": torch.__version__,
        "onnx": {
            "sha256": sha256_bytes(onnx_bytes),
            "opset": ox.opset,
            "exporter": "torch.onnx TorchScript (dynamo=False)",
            "inputs": {k: list(v) for k, v in ox.input_shapes.items()},
            "outputs": ox.output_names,
            "dynamic_batch": ox.dynamic_batch,
            "simplified": ox.simplified,
            "components": sorted(set(ox.components.values())),
        },
        "plan_hash": next((p.value for p in ox.model.metadata_props if p.key == META_PLAN_HASH), None),
        "parity": [r.as_dict() for r in result.parity],
        "passed": result.passed,
        "notes": result.notes,
    }
