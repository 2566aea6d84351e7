"""The ahead-of-time int8 kernels reproduce the TFLM host interpreter bit for bit on the bundled models."""

from __future__ import annotations

import json

import numpy as np
import pytest
from deploy_exports import exported, random_inputs

from edgeprune.deploy.mcu.aot import UnsupportedOpError, generate, run_on_host
from edgeprune.deploy.mcu.aot.codegen import check_supported, plan_arena
from edgeprune.deploy.mcu.aot.graph import Graph, Op, Tensor, read_graph
from edgeprune.deploy.mcu.aot.quant import quantize_multiplier, tflite_round
from edgeprune.export.tflm import run_tflm

# Whole exported models (single ops and their variants: test_deploy_kernels.py). Together these use
# FULLY_CONNECTED (per-channel), CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, PAD, SOFTMAX (kws), MEAN over 63
# elements, ADD, SUB, MUL, SQUARED_DIFFERENCE, RSQRT, CONCATENATION, QUANTIZE, RESHAPE, TANH (tdmpc pruned).
MODELS = [("kws_dscnn", False), ("ad_autoencoder", False), ("tdmpc", True)]


@pytest.mark.parametrize("dsp", [False, True], ids=["reference", "dsp"])  # dsp: the M4/M7 kernels, emulated in C
@pytest.mark.parametrize(("name", "pruned"), MODELS, ids=[f"{n}{'-pruned50' if p else ''}" for n, p in MODELS])
def test_generated_kernels_match_tflm_bit_for_bit(name: str, pruned: bool, dsp: bool) -> None:
    d = exported(name, pruned)
    data = (d / "tflm/model.tflite").read_bytes()
    arena = json.loads((d / "tflm/manifest.json").read_text())["arena"]["recommended"]
    gm = generate(data)
    sets = random_inputs([x.shape for x in gm.inputs], 40)
    want = run_tflm(data, sets, arena)
    got = run_on_host(gm, sets, dsp=dsp)
    for w, g in zip(want, got, strict=True):
        for wo, go in zip(w, g, strict=True):
            np.testing.assert_array_equal(go, np.asarray(wo).ravel())


def test_unsupported_ops_are_named() -> None:
    t = Tensor(0, "x", (1, 4), "int8", (0.1,), (0,), None)
    ops = (Op(0, "FULLY_CONNECTED", (0,), (0,), None), Op(1, "EXP", (0,), (0,), None), Op(2, "LOG", (0,), (0,), None))
    with pytest.raises(UnsupportedOpError) as err:
        check_supported(Graph((t,), ops, (0,), (0,)))
    assert "EXP (first at op #1), LOG (first at op #2)" in str(err.value)


def test_arena_plan_never_overlaps_live_tensors() -> None:
    g = read_graph((exported("kws_dscnn") / "tflm/model.tflite").read_bytes())
    offsets, total = plan_arena(g)
    sizes = {t: g.tensors[t].size for t in offsets}
    assert total < sum(sizes.values())  # memory is reused
    for op in g.ops:  # an op's output never overlaps its (live) inputs
        for i in op.inputs:
            if i in offsets:
                o = op.outputs[0]
                assert offsets[i] + sizes[i] <= offsets[o] or offsets[o] + sizes[o] <= offsets[i]


def test_quantize_multiplier_matches_tflite() -> None:
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(1.0) == (1 << 30, 1)
    assert quantize_multiplier(0.0) == (0, 0)
    assert tflite_round(2.5) == 3 and tflite_round(-2.5) == -3
