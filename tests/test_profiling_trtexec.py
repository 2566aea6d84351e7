"""trtexec parser on real logs of several TensorRT versions (tests/data/trtexec/README.md says where each is from)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from edgeprune.deploy.ssh.trtexec import (
    UNATTRIBUTED,
    NodeMap,
    component_times,
    parse_log,
    parse_profile_json,
    parse_times_json,
    to_measurement,
)
from edgeprune.measure.record import Measurement, Provenance

DATA = Path(__file__).parent / "data" / "trtexec"
PROV = Provenance("measured", "test board", "trtexec")


def read(name: str) -> str:
    return (DATA / name).read_text()


def test_trt10_summary_with_90_95_99_percentiles() -> None:
    r = parse_log(read("trt10.16_summary_excerpt.log"))
    assert r.tensorrt_version == "10.16.0" and r.throughput_qps == 18392 and r.queries == 55177
    lat, gpu = r.stats["latency"], r.stats["gpu_compute"]
    assert (lat.min_ms, lat.median_ms, lat.mean_ms, lat.max_ms) == (0.0334473, 0.0386963, 0.0431899, 0.882324)
    assert lat.percentiles == {90.0: 0.0480957, 95.0: 0.0548096, 99.0: 0.144043}
    assert gpu.median_ms == 0.0297852 and set(r.stats) == {"latency", "enqueue", "h2d", "gpu_compute", "d2h"}
    m = to_measurement(r, "m", PROV)
    assert m.latency.median_ms == 0.0386963 and m.latency.p90_ms == 0.0480957 and m.latency.runs == 55177
    assert math.isnan(m.latency.std_ms) and m.metrics["gpu_compute_median_ms"] == 0.0297852
    assert m.metrics["throughput_qps"] == 18392 and m.environment["tensorrt"] == "10.16.0"


def test_trt8_2_summary_with_only_p99_and_end_to_end() -> None:
    r = parse_log(read("trt8.2.5_t4_loadengine.log"))
    assert r.tensorrt_version == "8.2.5" and r.throughput_qps == 40.997 and r.queries == 126
    assert r.stats["latency"].percentiles == {99.0: 36.0881}
    assert r.stats["end_to_end"].median_ms == 47.5804 and r.stats["gpu_compute"].mean_ms == 23.8437
    m = to_measurement(r, "m", PROV)
    assert m.latency.median_ms == 34.6692 and math.isnan(m.latency.p90_ms) and m.latency.p99_ms == 36.0881
    assert r.layers == []  # no --dumpProfile in this run


def test_trt7_host_latency_block() -> None:
    r = parse_log(read("trt7_host_latency_excerpt.log"))
    lat, e2e = r.stats["latency"], r.stats["end_to_end"]
    assert (lat.min_ms, lat.max_ms, lat.mean_ms, lat.median_ms) == (1.64058, 6.2915, 1.66069, 1.65601)
    assert lat.percentiles == {99.0: 1.67065} and e2e.median_ms == 3.01636 and e2e.percentiles == {99.0: 3.03931}
    assert r.throughput_qps == 0 and r.tensorrt_version is None


def test_trt10_dumpprofile_table_numbers_first() -> None:
    r = parse_log(read("trt10.16_dumpprofile.log"))
    assert r.profile_iterations == 20079 and len(r.layers) == 16 and "latency" not in r.stats
    first, pwn = r.layers[0], r.layers[8]
    assert first.name == "Reformatting CopyNode for Input Tensor 0 to node_conv2d + node_relu"
    assert (first.total_ms, first.average_ms, first.median_ms, first.percent) == (137.84, 0.0069, 0.0061, 9.4)
    assert pwn.name == "PWN(node_linear_1 + node_relu_2)"
    assert sum(layer.average_ms for layer in r.layers) == pytest.approx(0.0731, abs=2e-4)  # the printed Total
    nodes = NodeMap({"node_conv2d": "features", "node_relu": "features", "node_max_pool2d": "features",
                     "node_linear_1": "head", "node_relu_2": "head", "node_linear_1_5": "head"})  # fmt: skip
    per = component_times(r.layers, nodes)
    assert per["features"] == pytest.approx(0.0069 + 0.0061 + 0.0035)
    assert per["head"] == pytest.approx(0.0035 + 0.0035 + 0.0039)  # PWN + reformat to PWN + PWN
    assert per[UNATTRIBUTED] > 0  # Myelin-internal layers name no ONNX node


def test_trt8_5_dumpprofile_table_layer_first() -> None:
    r = parse_log(read("trt8.5_profile_excerpt.log"))
    assert r.profile_iterations == 1874 and len(r.layers) == 6
    assert r.layers[0].name == "/transformer/h.7/attn/Range_1"
    assert (r.layers[0].total_ms, r.layers[0].average_ms, r.layers[0].median_ms) == (10.20, 0.0054, 0.0051)


def test_export_profile_json_maps_myelin_names_to_components() -> None:
    count, layers = parse_profile_json(read("trt10_alexnet_rtx3060_exportProfile.json"))
    assert count == 13897 and len(layers) == 14
    onnx_nodes = [f"/features/features.{i}/{op}" for i, op in [(0, "Conv"), (1, "Relu"), (2, "MaxPool"), (3, "Conv"),
                  (4, "Relu"), (5, "MaxPool"), (6, "Conv"), (7, "Relu"), (8, "Conv"), (9, "Relu"), (10, "Conv"),
                  (11, "Relu"), (12, "MaxPool")]] + [f"/classifier/classifier.{i}/Gemm" for i in (1, 4, 6)]  # fmt: skip
    nodes = NodeMap({n: n.split("/")[1] for n in onnx_nodes}, onnx_nodes)
    per = component_times(layers, nodes)
    assert per["classifier"] == pytest.approx(0.24579 + 0.113655 + 0.035835)
    assert per["features"] == pytest.approx(sum(la.average_ms for la in layers[:9]))
    assert per[UNATTRIBUTED] == pytest.approx(0.00204809 + 0.00409618)
    m = to_measurement(parse_log(""), "alexnet", PROV, nodes=nodes)
    assert m.components == {}  # a report without layers gives no component times
    report = parse_log("")
    report.layers = layers
    m = to_measurement(report, "alexnet", PROV, nodes=nodes)
    share = sum(la.percent for la in layers[-3:]) / 100  # trtexec's own "percentage" column
    assert m.components["classifier"].share == pytest.approx(share, abs=1e-4)


def test_foreign_node_range_spanning_components_is_reported_jointly() -> None:
    order = ["/enc/Gemm", "/enc/Relu", "/dyn/Gemm", "/pi/Gemm"]
    nodes = NodeMap({"/enc/Gemm": "enc", "/enc/Relu": "enc", "/dyn/Gemm": "dyn", "/pi/Gemm": "pi"}, order)
    assert nodes.layer_components("{ForeignNode[/enc/Relu.../dyn/Gemm]}") == ["dyn", "enc"]
    assert nodes.layer_components("(Unnamed Layer* 3) [Shuffle]") == []


def test_export_times_give_latency_stats_from_samples() -> None:
    times = parse_times_json(read("trt10_alexnet_rtx3060_exportTimes_head.json"))
    assert times["latency"] == [0.497559, 0.498535, 0.497559, 0.499023, 0.498535]
    m = to_measurement(parse_log(read("trt10.16_summary_excerpt.log")), "m", PROV, times=times, warmup=0)
    assert m.latency.runs == 5 and m.latency.median_ms == 0.498535 and m.latency.std_ms > 0
    assert m.metrics["gpu_compute_median_ms"] == 0.498535
    assert Measurement.from_dict(m.to_dict()).metrics == m.metrics
