"""Read NVIDIA ``trtexec`` output into a :class:`Measurement`, per-layer times mapped to model components.

Understands both summary layouts (TensorRT 8+ ``=== Performance summary ===`` lines with ``min = ...,
percentile(99%) = ...``; the older ``Host Latency`` block with ``min: ... (end to end ...)``), both ``--dumpProfile``
table layouts (layer name first up to 8.x, numbers first in 10.x), the ``--exportProfile`` JSON and the
``--exportTimes`` JSON (raw per-query times: the latency statistics then come from the same
``LatencyStats.from_samples`` as every other runtime). Tested on real logs in ``tests/data/trtexec``.

TensorRT names a layer after the ONNX nodes it implements: fused nodes joined by `` + ``, ``PWN(...)``
pointwise fusions, ``Reformatting CopyNode for Input Tensor 0 to <layer>``, Myelin ``{ForeignNode[a...b]}``
ranges, and Myelin names with ``.`` turned into ``_`` and a ``_myl<i>_<j>`` suffix. A layer covering nodes of
several components is reported under the joined key ``a+b`` (its time is not split by a guess).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgeprune.deploy.ssh.remote import banner_version
from edgeprune.extras import require
from edgeprune.measure.record import ComponentShare, LatencyStats, Measurement, Provenance

UNATTRIBUTED = "(unattributed)"
_PREFIX = re.compile(r"^\[[^\]]*\] \[[A-Z]\] ?")
_STAT = re.compile(r"(min|max|mean|median|percentile\((\d+(?:\.\d+)?)%\)) = ([-+\d.eE]+) ms")
_NEW_LABELS = {"Latency": "latency", "Host Latency": "latency", "End-to-End Host Latency": "end_to_end",
               "Enqueue Time": "enqueue", "H2D Latency": "h2d", "GPU Compute Time": "gpu_compute",
               "D2H Latency": "d2h"}  # fmt: skip
_OLD_BLOCKS = {"Host Latency": "latency", "Enqueue Time": "enqueue", "GPU Compute": "gpu_compute"}
_OLD_STAT = re.compile(r"^(min|max|mean|median): ([\d.eE+-]+) ms(?: \(end to end ([\d.eE+-]+) ms\))?")
_OLD_PCT = re.compile(r"^percentile: ([\d.eE+-]+) ms at (\d+)%(?: \(end to end ([\d.eE+-]+) ms at \d+%\))?")
_MYELIN_SUFFIX = re.compile(r"_myl\d+_\d+$")
_REFORMAT = re.compile(r"^Reformatting CopyNode for (?:Input|Output) Tensor \d+ to (.+)$")
_FOREIGN = re.compile(r"^\{ForeignNode\[(.+?)\.\.\.(.+)\]\}$")
_PWN = re.compile(r"^PWN\((.+)\)$")


@dataclass(frozen=True)
class TimingStats:
    """One trtexec summary line (ms); ``percentiles`` maps e.g. 99.0 -> value."""

    min_ms: float
    max_ms: float
    mean_ms: float
    median_ms: float
    percentiles: dict[float, float] = field(default_factory=dict)


@dataclass(frozen=True)
class LayerTime:
    """One row of the per-layer profile."""

    name: str
    total_ms: float
    average_ms: float
    median_ms: float | None = None
    percent: float | None = None


@dataclass
class TrtexecReport:
    """What one trtexec run printed: versions, throughput, timing summaries (``latency``, ``gpu_compute``, ...)."""

    tensorrt_version: str | None = None
    throughput_qps: float | None = None
    queries: int | None = None
    stats: dict[str, TimingStats] = field(default_factory=dict)
    layers: list[LayerTime] = field(default_factory=list)
    profile_iterations: int | None = None


def parse_log(text: str) -> TrtexecReport:
    """Parse trtexec's console output (any TensorRT 7-10 layout)."""
    report = TrtexecReport()
    lines = [_PREFIX.sub("", line.rstrip()) for line in text.splitlines()]
    banner = re.search(r"\[TensorRT v(\d+)\]", text)
    version = re.search(r"TensorRT version: ([\d.]+)", text)
    report.tensorrt_version = version.group(1) if version else (banner_version(banner.group(1)) if banner else None)
    queries = re.search(r"Timing trace has (\d+) queries", text)
    report.queries = int(queries.group(1)) if queries else None
    old_block: str | None = None
    old: dict[str, dict[str, float]] = {}
    for i, line in enumerate(lines):
        body = line.strip()
        label, _, rest = body.partition(": ")
        if label in _NEW_LABELS and rest.startswith("min = "):
            report.stats[_NEW_LABELS[label]] = _stats(rest)
        elif label == "Throughput" and rest.endswith("qps"):
            report.throughput_qps = float(rest.split()[0])
        elif body in _OLD_BLOCKS:
            old_block = _OLD_BLOCKS[body]
        elif old_block and (m := _OLD_STAT.match(body)):
            old.setdefault(old_block, {})[m.group(1)] = float(m.group(2))
            if m.group(3) and old_block == "latency":
                old.setdefault("end_to_end", {})[m.group(1)] = float(m.group(3))
        elif old_block and (m := _OLD_PCT.match(body)):
            old.setdefault(old_block, {})[f"p{m.group(2)}"] = float(m.group(1))
            if m.group(3) and old_block == "latency":
                old.setdefault("end_to_end", {})[f"p{m.group(2)}"] = float(m.group(3))
        elif old_block and body.startswith("throughput: ") and report.throughput_qps is None:
            report.throughput_qps = float(body.split()[1])
        elif body.startswith("=== Profile ("):
            report.profile_iterations = int(re.search(r"\((\d+) iterations", body).group(1))
            report.layers = _profile_table(lines[i + 1 :])
    for key, values in old.items():
        if {"min", "max", "mean", "median"} <= values.keys() and key not in report.stats:
            pct = {float(k[1:]): v for k, v in values.items() if k.startswith("p")}
            report.stats[key] = TimingStats(values["min"], values["max"], values["mean"], values["median"], pct)
    return report


def parse_profile_json(text: str) -> tuple[int | None, list[LayerTime]]:
    """``--exportProfile`` JSON -> (iterations, layers)."""
    rows = json.loads(text)
    count = next((r["count"] for r in rows if "count" in r), None)
    layers = [
        LayerTime(r["name"], float(r["timeMs"]), float(r["averageMs"]), r.get("medianMs"), r.get("percentage"))
        for r in rows
        if "name" in r
    ]
    return count, layers


def parse_times_json(text: str) -> dict[str, list[float]]:
    """``--exportTimes`` JSON -> per-query samples: ``latency`` (host), ``gpu_compute``, ``h2d``, ``d2h`` in ms."""
    rows = json.loads(text)
    keys = {"latency": "latencyMs", "gpu_compute": "computeMs", "h2d": "h2dMs", "d2h": "d2hMs"}
    return {name: [float(r[k]) for r in rows] for name, k in keys.items() if rows and k in rows[0]}


@dataclass(frozen=True)
class NodeMap:
    """ONNX node name -> component (from edgeprune's export metadata), and the graph's node order."""

    components: Mapping[str, str]
    order: Sequence[str] = ()

    @classmethod
    def from_onnx(cls, path: str | Path) -> NodeMap:
        from edgeprune.profiling.ort import node_components

        onnx = require("onnx", "onnx", "reading an ONNX model's nodes")

        return cls(node_components(path), [n.name for n in onnx.load(str(path), load_external_data=False).graph.node])

    def layer_components(self, layer: str) -> list[str]:
        """The components whose ONNX nodes a TensorRT layer implements (sorted; empty when none is known)."""
        found: set[str] = set()
        for node in _layer_nodes(layer, self.order):
            comp = self._component(node)
            if comp is not None:
                found.add(comp)
        return sorted(found)

    def _component(self, node: str) -> str | None:
        if node in self.components:
            return self.components[node]
        bare = _MYELIN_SUFFIX.sub("", node)
        for name, comp in self.components.items():
            if bare in (name, name.replace(".", "_")):
                return comp
        return None


def component_times(layers: Sequence[LayerTime], nodes: NodeMap) -> dict[str, float]:
    """Average per-inference ms per component (or joined components) from per-layer times."""
    out: dict[str, float] = {}
    for layer in layers:
        comps = nodes.layer_components(layer.name)
        key = "+".join(comps) if comps else UNATTRIBUTED
        out[key] = out.get(key, 0.0) + layer.average_ms
    return out


def to_measurement(
    report: TrtexecReport,
    model: str,
    provenance: Provenance,
    *,
    nodes: NodeMap | None = None,
    times: Mapping[str, list[float]] | None = None,
    warmup: int = 0,
) -> Measurement:
    """A ``tensorrt`` Measurement: host latency (H2D + compute + D2H) as ``latency``, GPU compute in ``metrics``."""
    m = Measurement(model, "tensorrt", provenance)
    if times and times.get("latency"):
        m.latency = LatencyStats.from_samples(times["latency"], warmup)
        if times.get("gpu_compute"):
            gpu = LatencyStats.from_samples(times["gpu_compute"], warmup)
            m.metrics.update(gpu_compute_median_ms=gpu.median_ms, gpu_compute_mean_ms=gpu.mean_ms)
    elif "latency" in report.stats:
        m.latency = _summary_latency(report.stats["latency"], report.queries or 0, warmup)
        m.notes.append("latency from trtexec's printed summary (no --exportTimes): std not reported")
    for key, stats in report.stats.items():
        if key != "latency" and not (times and key == "gpu_compute" and times.get("gpu_compute")):
            m.metrics[f"{key}_median_ms"] = stats.median_ms
            m.metrics[f"{key}_mean_ms"] = stats.mean_ms
    if report.throughput_qps is not None:
        m.metrics["throughput_qps"] = report.throughput_qps
    if report.tensorrt_version:
        m.environment["tensorrt"] = report.tensorrt_version
    if report.layers and nodes is not None:
        per = component_times(report.layers, nodes)
        total = sum(per.values()) or 1.0
        m.components = {k: ComponentShare(latency_ms=v, share=v / total) for k, v in per.items()}
    return m


def _stats(body: str) -> TimingStats:
    values: dict[str, float] = {}
    pct: dict[float, float] = {}
    for m in _STAT.finditer(body):
        if m.group(2):
            pct[float(m.group(2))] = float(m.group(3))
        else:
            values[m.group(1)] = float(m.group(3))
    return TimingStats(values["min"], values["max"], values["mean"], values["median"], pct)


def _summary_latency(s: TimingStats, runs: int, warmup: int) -> LatencyStats:
    nan = math.nan
    return LatencyStats(runs, warmup, s.min_ms, s.median_ms, s.mean_ms, s.percentiles.get(90.0, nan),
                        s.percentiles.get(99.0, nan), nan)  # fmt: skip


def _profile_table(lines: Sequence[str]) -> list[LayerTime]:
    header = lines[0].strip() if lines else ""
    numbers_first = header.startswith("Time")
    n_numbers = 4 if "Median" in header else 3
    num = r"([\d.]+)"
    if numbers_first:
        row = re.compile(r"^\s*" + r"\s+".join([num] * n_numbers) + r"\s+(.+?)\s*$")
    else:
        row = re.compile(r"^\s*(.+?)\s+" + r"\s+".join([num] * n_numbers) + r"\s*$")
    layers = []
    for line in lines[1:]:
        m = row.match(line)
        if not m:
            break
        groups = list(m.groups())
        name = groups.pop(n_numbers if numbers_first else 0)
        if name == "Total":
            break
        vals = [float(g) for g in groups]
        median = vals[2] if n_numbers == 4 else None
        layers.append(LayerTime(name, vals[0], vals[1], median, vals[-1]))
    return layers


def _layer_nodes(layer: str, order: Sequence[str]) -> list[str]:
    layer = layer.strip()
    if m := _REFORMAT.match(layer):
        return _layer_nodes(m.group(1), order)
    if m := _FOREIGN.match(layer):
        first, last = m.group(1), m.group(2)
        if first in order and last in order:
            i, j = sorted((order.index(first), order.index(last)))
            return list(order[i : j + 1])
        return [first, last]
    if m := _PWN.match(layer):
        layer = m.group(1)
    return [part.strip() for chunk in layer.split(" + ") for part in chunk.split(", ") if part.strip()]
