"""Cost model: op records from real modules, MLPerf Tiny MAC counts, the calibration fit and its errors,
labelled estimates."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgeprune.boards import (
    LatencyEstimate,
    NoCostModelError,
    OpCost,
    OpKind,
    estimate_latency,
    load_board,
    load_cost_models,
    ops_from_module,
    total_macs,
)
from edgeprune.boards.calibration import (
    StackCalibration,
    calibration_ops,
    fit_all,
    fit_report,
    fit_set,
    load_calibration,
    render_coefficients,
    rounding_sensitivity,
    stored_matches_fit,
)
from edgeprune.boards.cost_model import TIED_KINDS, features
from edgeprune.boards.errors import BoardError
from edgeprune.models import create_model

# Exact MACs/weights of the MLPerf Tiny reference models (derived in edgeprune/models/mlperf_tiny.py):
# KWS DS-CNN: conv 25*5*64*(10*4) = 320,000; per block depthwise 25*5*64*9 = 72,000 and pointwise
# 25*5*64*64 = 512,000; FC 64*12 = 768 -> 2,656,768 (the "2.7 M MACs"/"5.4 M ops" of Hello Edge's DS-CNN-S,
# whose 38.6 KB "memory" = 22.6 k int8 weights + 2 x 8,000 B activation buffers).
# AD autoencoder: 640*128 + 3*128*128 + 128*8 + 8*128 + 3*128*128 + 128*640 = 264,192 MACs; 265,864 weights+biases.
KWS_MACS, KWS_WEIGHTS = 2_656_768, 22_604
AD_MACS, AD_WEIGHTS = 264_192, 265_864

FIT_ERROR_BOUND_PCT = 0.01
"""Two free coefficients and two full-rank points per set: the system is exactly determined, so the only
residual is floating-point error. 0.01 % is far below the 0.1 ms rounding of the published values
(≥ 0.3 % of the smallest, 1.8 ms)."""


@pytest.fixture(scope="module")
def ops() -> dict[str, list[OpCost]]:
    return calibration_ops(["kws_dscnn", "ad_autoencoder"])


# --- op records -------------------------------------------------------------------------------------


def test_mlperf_tiny_mac_counts(ops: dict[str, list[OpCost]]) -> None:
    assert total_macs(ops["kws_dscnn"]) == KWS_MACS
    assert total_macs(ops["ad_autoencoder"]) == AD_MACS
    assert sum(op.weights for op in ops["kws_dscnn"]) == KWS_WEIGHTS
    assert sum(op.weights for op in ops["ad_autoencoder"]) == AD_WEIGHTS


def test_kws_op_list_matches_tflite_graph(ops: dict[str, list[OpCost]]) -> None:
    kinds = [op.kind for op in ops["kws_dscnn"]]
    assert kinds == [
        OpKind.CONV2D,
        *[OpKind.DEPTHWISE_CONV2D, OpKind.CONV2D] * 4,
        OpKind.POOLING,
        OpKind.RESHAPE,
        OpKind.FULLY_CONNECTED,
        OpKind.SOFTMAX,
    ]
    stem = ops["kws_dscnn"][0]
    assert (stem.macs, stem.output_elements, stem.input_elements) == (320_000, 25 * 5 * 64, 49 * 10)
    assert stem.fused == ("stem.1", "stem.2"), "BN and ReLU folded into the conv, as TFLite does"
    assert [op.macs for op in ops["kws_dscnn"][1:3]] == [72_000, 512_000]


def test_ad_op_list_is_ten_fully_connected(ops: dict[str, list[OpCost]]) -> None:
    assert [op.kind for op in ops["ad_autoencoder"]] == [OpKind.FULLY_CONNECTED] * 10
    assert all(len(op.fused) == 2 for op in ops["ad_autoencoder"][:9])
    assert ops["ad_autoencoder"][-1].fused == ()


def test_ops_are_per_example_and_name_repeated_calls() -> None:
    class Loop(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cell = nn.Linear(8, 8)
            self.act = nn.Tanh()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for _ in range(3):
                x = self.act(self.cell(x))
            return x

    records = ops_from_module(Loop(), (torch.randn(5, 8),))
    assert [r.name for r in records] == ["cell", "act", "cell#2", "act#2", "cell#3", "act#3"]
    assert records[0].macs == 64 and records[1].kind is OpKind.ACTIVATION, "tanh is not fused"
    assert records[1].output_elements == 8


def test_ops_unfused_and_training_mode_restored() -> None:
    model = create_model("kws_dscnn").train()
    records = ops_from_module(model, model.example_inputs(2), fuse=False)
    assert model.training
    assert sum(r.kind is OpKind.ELEMENTWISE for r in records) == 9  # the BatchNorms
    assert sum(r.kind is OpKind.ACTIVATION for r in records) == 9  # the ReLUs
    assert total_macs(records) == KWS_MACS


def test_every_kind_has_a_cost_rule() -> None:
    assert set(TIED_KINDS) == set(OpKind)
    op = OpCost("x", OpKind.ADD, macs=0, output_elements=100)
    assert features(op) == (0.0, 200.0)


# --- calibration fit --------------------------------------------------------------------------------


def test_every_calibration_point_is_fitted_within_bound() -> None:
    sets = load_cost_models()
    calibration = load_calibration()
    assert (
        set(sets)
        == set(calibration)
        == {
            "cortex-m4/tflm-reference",
            "cortex-m4/x-cube-ai",
            "cortex-m4/cmsis-nn",
            "cortex-m33/cmsis-nn",
            "cortex-m7/x-cube-ai",
        }
    )
    for name, coeffs in sets.items():
        assert len(coeffs.fit) == len(calibration[name].points) == 2
        for point in coeffs.fit:
            assert abs(point.error_pct) < FIT_ERROR_BOUND_PCT, f"{name} {point.model}: {point.error_pct:+.4f} %"


def test_published_points_are_the_calibration_data() -> None:
    published = {
        ("cortex-m4/tflm-reference", "kws_dscnn"): 181.9,
        ("cortex-m4/tflm-reference", "ad_autoencoder"): 10.1,
        ("cortex-m4/x-cube-ai", "kws_dscnn"): 75.1,
        ("cortex-m4/x-cube-ai", "ad_autoencoder"): 7.6,
        ("cortex-m4/cmsis-nn", "kws_dscnn"): 99.8,
        ("cortex-m4/cmsis-nn", "ad_autoencoder"): 8.6,
        ("cortex-m33/cmsis-nn", "kws_dscnn"): 76.1,
        ("cortex-m33/cmsis-nn", "ad_autoencoder"): 6.3,
        ("cortex-m7/x-cube-ai", "kws_dscnn"): 16.8,
        ("cortex-m7/x-cube-ai", "ad_autoencoder"): 1.8,
    }
    got = {(n, p.model): p.measured_ms for n, c in load_cost_models().items() for p in c.fit}
    assert got == published


def test_fit_errors_are_reported() -> None:
    sets = load_cost_models()
    report = fit_report(sets)
    print(report)  # shown with pytest -rP: coefficients and the error on every calibration point
    for name, coeffs in sets.items():
        assert name in report
        for p in coeffs.fit:
            assert f"{p.error_pct:+7.3f}%" in report
    assert "error_pct" in render_coefficients(sets), "the data file records each point's error too"


def test_stored_coefficients_equal_a_fresh_fit() -> None:
    assert stored_matches_fit(), "run `python -m edgeprune.boards.calibration` after changing calibration data"


def test_coefficients_are_physical_and_ordered() -> None:
    sets = load_cost_models()
    for c in sets.values():
        assert 0.5 < c.cycles_per_mac_conv < 20 and 0.5 < c.cycles_per_mac_fc < 20
        assert not c.overhead_fitted and c.per_op_overhead_cycles == 0.0
    ref, cmsis, xcube = (sets[f"cortex-m4/{s}"] for s in ("tflm-reference", "cmsis-nn", "x-cube-ai"))
    assert ref.cycles_per_mac_conv > cmsis.cycles_per_mac_conv > xcube.cycles_per_mac_conv
    assert sets["cortex-m7/x-cube-ai"].cycles_per_mac_conv < xcube.cycles_per_mac_conv, "dual-issue M7"


def test_rounding_of_published_values_moves_coefficients_little(ops: dict[str, list[OpCost]]) -> None:
    for cal in load_calibration().values():
        worst = rounding_sensitivity(cal, ops)
        assert worst["cycles_per_mac_conv"] < 0.5 and worst["cycles_per_mac_fc"] < 3.0


def test_three_points_also_fit_the_overhead(ops: dict[str, list[OpCost]]) -> None:
    k_conv, k_fc, overhead, clock = 5.0, 3.0, 2_000.0, 100_000_000
    tiny = [OpCost(f"fc{i}", OpKind.FULLY_CONNECTED, macs=100, output_elements=10) for i in range(50)]
    models = {**ops, "tiny": tiny}

    def ms(model: str) -> float:
        conv = sum(features(o)[0] for o in models[model])
        fc = sum(features(o)[1] for o in models[model])
        return (k_conv * conv + k_fc * fc + overhead * len(models[model])) / clock * 1e3

    cal = StackCalibration(
        "cortex-m4/synthetic", "synthetic", "test", 0.0, tuple((m, "b", clock, ms(m)) for m in models)
    )
    fitted = fit_set(cal, models)
    assert fitted.overhead_fitted
    assert fitted.cycles_per_mac_conv == pytest.approx(k_conv, rel=1e-6)
    assert fitted.cycles_per_mac_fc == pytest.approx(k_fc, rel=1e-6)
    assert fitted.per_op_overhead_cycles == pytest.approx(overhead, rel=1e-6)


def test_underdetermined_or_unphysical_fits_are_refused(ops: dict[str, list[OpCost]]) -> None:
    one_model = StackCalibration(
        "cortex-m4/x", "x", "test", 0.0, (("kws_dscnn", "b", 1, 1.0), ("kws_dscnn", "b", 1, 1.0))
    )
    with pytest.raises(BoardError, match="rank"):
        fit_set(one_model, ops)
    # KWS (10x the MACs) faster than AD would need a negative conv coefficient
    upside_down = StackCalibration(
        "cortex-m4/x",
        "x",
        "test",
        0.0,
        (("kws_dscnn", "b", 120_000_000, 0.01), ("ad_autoencoder", "b", 120_000_000, 10.0)),
    )
    with pytest.raises(BoardError, match="not physical"):
        fit_set(upside_down, ops)


def test_fit_all_accepts_custom_calibration() -> None:
    cal = load_calibration()
    subset = {"cortex-m7/x-cube-ai": cal["cortex-m7/x-cube-ai"]}
    assert list(fit_all(subset)) == ["cortex-m7/x-cube-ai"]


# --- estimates --------------------------------------------------------------------------------------


def test_estimates_are_labelled(ops: dict[str, list[OpCost]]) -> None:
    est = estimate_latency(ops["kws_dscnn"], load_board("nucleo-l4r5zi"), cost_model="cortex-m4/tflm-reference")
    assert isinstance(est, LatencyEstimate)
    assert est.kind == "estimate" and not est.proxy
    assert est.label.startswith("estimate (cost model cortex-m4/tflm-reference fitted to MLPerf Tiny v1.0")
    assert "181.9 ms" in est.label and "nucleo-l4r5zi @120 MHz" in est.label
    assert est.to_dict()["label"] == est.label and est.to_dict()["kind"] == "estimate"
    assert est.latency_ms == pytest.approx(181.9, rel=1e-6)
    assert sum(est.by_component().values()) == pytest.approx(est.latency_ms)
    assert est.label in _caption(est)


def _caption(est: LatencyEstimate) -> str:
    return str(est.table().caption)


def test_estimate_scales_with_clock(ops: dict[str, list[OpCost]]) -> None:
    l4 = load_board("nucleo-l4r5zi")
    half = l4.model_copy(update={"clock_hz": 60_000_000, "name": "half"})
    a, b = (estimate_latency(ops["ad_autoencoder"], board) for board in (l4, half))
    assert b.latency_ms == pytest.approx(2 * a.latency_ms) and a.cycles == pytest.approx(b.cycles)


def test_other_stack_on_same_core(ops: dict[str, list[OpCost]]) -> None:
    est = estimate_latency(ops["kws_dscnn"], load_board("nano33ble"), cost_model="cortex-m4/cmsis-nn")
    assert est.cost_model == "cortex-m4/cmsis-nn" and not est.proxy
    assert est.latency_ms == pytest.approx(99.8 * 120 / 64, rel=1e-6)


def test_uncalibrated_cores_raise_clear_errors(ops: dict[str, list[OpCost]]) -> None:
    for board in ("raspberry-pi-pico", "esp32-s3-devkitc-1"):
        with pytest.raises(NoCostModelError, match="no fitted cost model") as info:
            estimate_latency(ops["kws_dscnn"], load_board(board))
        assert "proxy=True" in str(info.value)
    with pytest.raises(NoCostModelError, match="for MCUs"):
        estimate_latency(ops["kws_dscnn"], load_board("jetson-orin-nano-8gb"))
    with pytest.raises(NoCostModelError, match="fitted on cortex-m4"):
        estimate_latency(ops["kws_dscnn"], load_board("pico"), cost_model="cortex-m4/tflm-reference")
    with pytest.raises(NoCostModelError, match="no fitted cost model 'cortex-m55/x'"):
        estimate_latency(ops["kws_dscnn"], load_board("pico"), cost_model="cortex-m55/x", proxy=True)


def test_proxy_estimates_say_so(ops: dict[str, list[OpCost]]) -> None:
    est = estimate_latency(ops["kws_dscnn"], load_board("pico"), cost_model="cortex-m4/tflm-reference", proxy=True)
    assert est.proxy and est.label.startswith("proxy estimate")
    assert "no calibration for cortex-m0plus" in est.label


def test_unknown_kinds_are_noted() -> None:
    ops = [OpCost("mystery", OpKind.OTHER, macs=0, output_elements=1000)]
    est = estimate_latency(ops, load_board("l4r5zi"), cost_model="cortex-m4/tflm-reference")
    assert est.notes and "mystery" in est.notes[0]
