"""Benchmark models on a Linux board over SSH: bundle, copy what changed, run the board-side runner, read results.

``bench_remote(target, {"original": (model, inputs), "pruned": (pruned, inputs)}, work_dir)`` returns a
:class:`RemoteBench` whose ``measurements`` are ordinary :class:`Measurement` objects (ONNX Runtime and eager
PyTorch with raw samples; TensorRT through trtexec), labelled with where they were measured and the board's
versions, power mode and clocks.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeprune.deploy.ssh import remote
from edgeprune.deploy.ssh.bundle import prepare_bundle
from edgeprune.deploy.ssh.errors import RemoteCommandError, RemoteEnvironmentError
from edgeprune.deploy.ssh.sync import SyncReport, sync_dir
from edgeprune.deploy.ssh.transport import SSHTarget
from edgeprune.deploy.ssh.trtexec import NodeMap, parse_log, parse_profile_json, parse_times_json, to_measurement
from edgeprune.errors import EdgepruneError
from edgeprune.export.tensorrt import PRECISIONS
from edgeprune.io import write_atomic
from edgeprune.measure.record import ComponentShare, LatencyStats, Measurement, Provenance
from edgeprune.profiling.ort import component_times, node_components

logger = logging.getLogger(__name__)

RUNNER = "runner.py"
TIMING_FILE = "ep_timing.py"  # edgeprune.measure.timing, imported by the runner on the board
INSTALL_HINTS = {
    "numpy": "pip install numpy",
    "onnxruntime": "pip install onnxruntime (Jetson: the onnxruntime-gpu wheel for your JetPack from NVIDIA's "
    "Jetson AI Lab index)",
    "pytorch-eager": "install NVIDIA's PyTorch wheel for your JetPack (Raspberry Pi: pip install torch)",
    "tensorrt": "TensorRT and trtexec come with JetPack (sudo apt install nvidia-jetpack); trtexec lives in "
    "/usr/src/tensorrt/bin",
}

ModelAndInputs = tuple[nn.Module, torch.Tensor | Sequence[torch.Tensor]]


@dataclass
class RemoteBench:
    """Measurements from one board run, what the sync copied, and what the board reported about itself."""

    target: SSHTarget
    measurements: list[Measurement]
    sync: SyncReport
    environment: dict[str, str]
    unavailable: list[str] = field(default_factory=list)  # runtimes the board lacks (when none were requested)
    seconds: float = 0.0

    def table(self) -> Any:
        """A ``rich`` table: latency per model and runtime; speed-up over eager (same model) and the first model."""
        from rich.markup import escape
        from rich.table import Table

        where = self.measurements[0].provenance.where if self.measurements else self.target.where
        table = Table(title=f"on {where}")
        base = self.measurements[0].model if self.measurements else "first"
        cols = ("model", "runtime", "ms: median [p10, p90]", "runs", "artifact", "x eager", f"x {base}")
        for col in cols:  # "[p10, p90]" is text, not rich markup
            table.add_column(escape(col), justify="left" if col in ("model", "runtime") else "right")
        eager = {m.model: m.latency.median_ms for m in self.measurements if m.runtime == "pytorch-eager" and m.latency}
        first: dict[str, float] = {}
        for m in self.measurements:
            if m.latency is None:
                continue
            first.setdefault(m.runtime, m.latency.median_ms)
            lat = m.latency
            x_eager = eager.get(m.model, 0) / lat.median_ms if m.model in eager else None
            x_first = first[m.runtime] / lat.median_ms
            table.add_row(
                m.model, m.runtime, lat.text(), str(lat.runs),
                f"{m.memory.flash_bytes:,} B" if m.memory.flash_bytes else "", f"{x_eager:.2f}" if x_eager else "",
                f"{x_first:.2f}",
            )  # fmt: skip
        table.caption = power_mode(self.environment)
        return table


def bench_remote(
    target: SSHTarget,
    models: Mapping[str, ModelAndInputs],
    work_dir: str | Path,
    *,
    runtimes: Sequence[str] | None = None,
    runs: int = 50,
    warmup: int = 10,
    threads: int | None = None,
    ort_providers: Sequence[str] = ("CPUExecutionProvider",),
    tensorrt_precision: str = "fp16",
    trtexec: str | None = None,
    onnx_paths: Mapping[str, str | Path] | None = None,
    timeout: float | None = None,
) -> RemoteBench:
    """Time each of ``models`` ({label: (module, example inputs)}) on the board, in each runtime.

    ``runtimes``: some of ``onnxruntime``, ``pytorch-eager``, ``tensorrt`` (``None``: whatever the board has;
    asking for one it lacks raises :class:`RemoteEnvironmentError`). ``work_dir`` keeps the local copy of what
    is deployed (bundles are reproducible, so an unchanged model is not copied again). ``trtexec`` is its path on
    the board when not on PATH or in /usr/src/tensorrt/bin. ``onnx_paths`` reuses ONNX files exported earlier.
    """
    unknown = sorted(set(runtimes or ()) - set(remote.RUNTIMES))
    if unknown:
        raise EdgepruneError(f"unknown runtime(s) {unknown}", expected=f"some of {', '.join(remote.RUNTIMES)}")
    if tensorrt_precision not in PRECISIONS:
        raise EdgepruneError(f"unknown TensorRT precision {tensorrt_precision!r}", expected=f"one of {PRECISIONS}")
    if runs < 1 or warmup < 0:
        raise EdgepruneError(f"runs={runs}, warmup={warmup}", expected="runs >= 1 and warmup >= 0")
    bad = [name for name in models if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name)]
    if bad:
        raise EdgepruneError(f"model labels {bad} cannot name a directory on the board", expected="e.g. 'pruned-50'")
    deploy = Path(work_dir) / "deploy"
    for name, (model, inputs) in models.items():
        logger.info("%s: exporting the bundle", name)
        onnx = (onnx_paths or {}).get(name)
        prepare_bundle(model, inputs, deploy / "bundles" / name, onnx_path=onnx,
                       program=not runtimes or "pytorch-eager" in runtimes)  # fmt: skip
    write_atomic(deploy / RUNNER, resources.files("edgeprune.deploy.ssh").joinpath("remote.py").read_bytes())
    write_atomic(deploy / TIMING_FILE, resources.files("edgeprune.measure").joinpath("timing.py").read_bytes())
    t0 = time.perf_counter()
    logger.info("copying changed files to %s", target.where)
    report = sync_dir(target, deploy, f"{target.remote_dir}/deploy")
    logger.info("timing on the board (%s)", ", ".join(runtimes) if runtimes else "every runtime it has")
    request = {
        "root": target.remote_dir,
        "bundles": {name: f"deploy/bundles/{name}" for name in models},
        "runtimes": list(runtimes) if runtimes else None,
        "runs": runs,
        "warmup": warmup,
        "threads": threads,
        "ort_providers": list(ort_providers),
        "tensorrt": {"precision": tensorrt_precision, "trtexec": trtexec},
    }
    output = _run_runner(target, request, timeout)
    env = output["environment"]
    notes = [power_mode(env)]
    if target.board is not None and target.board.gpu is not None and env["l4t"].startswith("unavailable"):
        notes.append(f"board profile {target.board.name} names a Jetson, but the machine reports no L4T release: "
                     "these numbers are for the machine named in the provenance")  # fmt: skip
    measurements = [
        _measurement(entry, deploy / "bundles" / entry["bundle"], _where(target, env), env, notes)
        for entry in output["results"]
    ]
    unavailable = [] if runtimes else sorted(set(remote.RUNTIMES) - set(output["available"]))
    return RemoteBench(target, measurements, report, env, unavailable, time.perf_counter() - t0)


def power_mode(env: Mapping[str, str]) -> str:
    """One line: the board's power mode and clocks as far as they could be read (they move results 20 %+)."""
    nvp = env.get("nvpmodel", "unavailable").splitlines()[0] if env.get("nvpmodel") else "unavailable"
    clocks = env.get("jetson_clocks", "unavailable")
    clocks = clocks if clocks.startswith("unavailable") else f"{len(clocks.splitlines())} lines recorded"
    return f"nvpmodel: {nvp}; jetson_clocks: {clocks}; JetPack: {env.get('jetpack', '?')}; L4T: {env.get('l4t', '?')}"


def _run_runner(target: SSHTarget, request: dict, timeout: float | None) -> dict:
    argv = [target.python, f"{target.remote_dir}/deploy/{RUNNER}", "run", json.dumps(request)]
    what = "benchmark runner"
    result = target.run(argv, timeout=timeout, check=False, what=what)
    if result.returncode == remote.EXIT_MISSING:
        missing = _runner_json(result.stdout)["missing"]
        raise RemoteEnvironmentError(
            f"{target.where}: {', '.join(missing)} is not installed for {target.python} on the board",
            fix="; ".join(INSTALL_HINTS.get(m, f"pip install {m}") for m in missing)
            + " (or pass the interpreter of a venv that has it: python=...)",
        )
    if result.returncode != 0:
        raise target.failure(result, what, timeout or target.command_timeout)
    output = _runner_json(result.stdout)
    failed = [e for e in output["results"] if e.get("error")]
    missing = sorted({e["runtime"] for e in failed if e.get("missing")})
    if missing:
        raise RemoteEnvironmentError(
            f"{target.where}: the board has no {', '.join(missing)} (asked for explicitly)",
            fix="; ".join(INSTALL_HINTS[m] for m in missing) + "; or leave runtimes unset to use what is there",
        )
    if failed:
        first = failed[0]
        raise RemoteCommandError(
            f"{target.where}: {first['runtime']} failed on bundle {first['bundle']!r}: {first['error']}",
            returncode=0, stderr=first.get("log", ""),
        )  # fmt: skip
    return output


def _runner_json(stdout: bytes) -> dict:
    for line in reversed(stdout.decode(errors="replace").splitlines()):
        if line.startswith(remote.RESULT_MARKER):
            return json.loads(line[len(remote.RESULT_MARKER) :])
    raise RemoteCommandError("the benchmark runner printed no result line", returncode=0,
                             stderr=stdout.decode(errors="replace"))  # fmt: skip


def _where(target: SSHTarget, env: Mapping[str, str]) -> str:
    model = env.get("board_model", "")
    machine = model if not model.startswith("unavailable") else f"{env.get('uname', '?')}, {env.get('cpu', '?')}"
    profile = f"; profile {target.board.name}" if target.board else ""
    return f"{target.host} ({machine}{profile})"


def _measurement(entry: dict, bundle: Path, where: str, env: dict[str, str], notes: list[str]) -> Measurement:
    meta = json.loads((bundle / "bundle.json").read_text())
    onnx = bundle / meta["onnx"]
    prov = Provenance("measured", where, entry["how"])
    label = entry["bundle"]
    if entry["runtime"] == "tensorrt":
        report = parse_log(entry["log"])
        if entry.get("profile"):
            report.profile_iterations, report.layers = parse_profile_json(entry["profile"])
        times = parse_times_json(entry["times"]) if entry.get("times") else None
        m = to_measurement(report, label, prov, nodes=NodeMap.from_onnx(onnx), times=times)
        how = "engine built on the board: " if entry["built"] else "cached engine reused: "
        m.notes.append(how + entry["engine"])
    else:
        m = Measurement(label, entry["runtime"], prov, LatencyStats.from_samples(entry["samples_ms"], entry["warmup"]))
        m.params = entry.get("params") or meta.get("params")
        times = entry.get("component_ms") or (
            component_times(entry["node_ms"], node_components(onnx)) if entry.get("node_ms") else {}
        )
        total = sum(times.values()) or 1.0
        m.components = {c: ComponentShare(latency_ms=t, share=t / total) for c, t in times.items()}
        if entry.get("component_error"):
            m.notes.append(f"no per-component times: {entry['component_error']}")
    m.memory.flash_bytes = entry.get("artifact_bytes")
    m.environment = {**env, **m.environment}
    m.notes.extend(notes)
    return m
