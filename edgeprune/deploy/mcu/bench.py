"""``bench``: run a model on a board (real or emulated) over the benchmark protocol and return a
:class:`~edgeprune.measure.record.Measurement` with per-layer and per-component cycles, after
checking the board's outputs bit for bit against the TFLM host interpreter."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from edgeprune.boards.cycle_model import cycle_model
from edgeprune.boards.schema import BoardProfile
from edgeprune.deploy.mcu.aot.codegen import GeneratedModel
from edgeprune.deploy.mcu.build import INSNS_PER_SECOND, Firmware
from edgeprune.deploy.mcu.link import Link, LinkError
from edgeprune.deploy.mcu.protocol import Dut, LayerTicks
from edgeprune.errors import EdgepruneError
from edgeprune.measure.record import ComponentShare, LatencyStats, LayerFigure, Measurement, Memory, Provenance

# The one "layer" of the TFLM firmware (firmware/ep_model_tflm.cpp): Invoke() runs every op, so no per-layer ticks.
TFLM_LAYER = "TFLM_INVOKE"


class OutputMismatchError(EdgepruneError):
    """The board's outputs differ from the TFLM host interpreter's."""


def _reference(tflite: bytes, sets: Sequence[Sequence[np.ndarray]]) -> list[bytes]:
    from edgeprune.export.tflm import run_tflm

    outs = run_tflm(tflite, sets, 4 << 20)
    return [b"".join(np.asarray(o, dtype=np.int8).tobytes() for o in row) for row in outs]


def check_outputs(dut: Dut, tflite: bytes, sets: Sequence[Sequence[np.ndarray]], input_format: str = "int8") -> int:
    """Run each input set once on the board; raise :class:`OutputMismatchError` unless every output byte
    equals TFLM's. Returns the number of sets checked. ``input_format`` ``uint8-128``: the firmware subtracts 128
    from each byte (MLPerf Tiny ic01/vww01), so each int8 value is sent plus 128.

    Inputs (``ep-db``) and outputs (``ep-raw``) cross the link checksummed, so a difference is computed on
    the board. A set that differs is run again: the same wrong bytes twice are the kernels' doing; different
    bytes (or right ones) the second time mean the board or link is unreliable (:class:`LinkError`)."""
    for k, (s, want) in enumerate(zip(sets, _reference(tflite, sets), strict=True)):
        data = b"".join(np.asarray(x, dtype=np.int8).tobytes() for x in s)
        data = bytes(b ^ 0x80 for b in data) if input_format == "uint8-128" else data
        got = _run_once(dut, data)
        if got == want:
            continue
        again = _run_once(dut, data)
        if again != got:
            raise LinkError(
                f"input set {k}: the board gave different outputs for the same input on two runs",
                expected="a deterministic board behind a reliable link",
                fix="check the board's power, clock and link; the numbers of this session cannot be trusted",
            )
        bad = sum(a != b for a, b in zip(got, want, strict=False)) + abs(len(got) - len(want))
        raise OutputMismatchError(
            f"input set {k}: {bad} of {len(want)} output bytes differ from the TFLM host interpreter "
            "(the same on two runs, checksummed over the link)",
            expected="bit-identical int8 outputs",
            fix="report a bug with the model; the board's firmware or kernels disagree with TFLM",
        )
    return len(sets)


def _run_once(dut: Dut, data: bytes) -> bytes:
    dut.load(data)
    dut.infer(1, 0)
    return dut.raw()


def bench(
    link: Link,
    model: GeneratedModel,
    tflite: bytes,
    board: BoardProfile,
    *,
    emulated: bool | None = None,
    runs: int = 5,
    warmup: int = 1,
    check_sets: int = 3,
    seed: int = 0,
    firmware: Firmware | None = None,
) -> Measurement:
    """Handshake, check outputs on ``check_sets`` random inputs, time ``runs`` inferences after ``warmup``,
    read per-layer ticks. On the emulator ticks are virtual time (1 instruction = 1 ns) and cycles are
    estimated per layer from ``firmware.layer_mixes`` by the core's cycle model
    (:mod:`edgeprune.boards.cycle_model`); on a board with DWT they are cycles. ``emulated=None``: decided
    by the firmware's ``m-ep-board-`` (``mps2-qemu`` is the emulated board)."""
    dut = Dut(link)
    link.resync()  # a half command or a late reply an earlier session left behind
    info = dut.info()
    if info.sha256 != model.sha256:
        raise EdgepruneError(
            f"the board runs model {info.model} ({info.sha256[:12]}), not this one ({model.sha256[:12]})",
            fix="flash (or emulate) the firmware built from this model",
        )
    if emulated is None:
        emulated = info.board_kind == "mps2-qemu"
    rng = np.random.default_rng(seed)
    sets = [[rng.integers(-128, 128, x.shape).astype(np.int8) for x in model.inputs] for _ in range(check_sets)]
    checked = check_outputs(dut, tflite, sets, info.input_format)
    timing = dut.timed(runs, warmup, info)
    n, ticks = timing.runs, list(timing.layers)
    mem = dut.memory()
    tflm = [t.op for t in ticks] == [TFLM_LAYER]
    where = f"emulated {board.name} (QEMU {board.qemu_machine.value if board.qemu_machine else '?'})"
    per_insn: list[float] | None = None  # estimated cycles per instruction per layer; None: measured, or no estimate
    if emulated:
        per_insn, label = _layer_cpi(board, firmware, len(ticks))
        provenance = Provenance("estimated", where, label)
    else:
        label = f"{info.timer} at {info.tick_hz} Hz"
        provenance = Provenance("measured", board.name, f"{'TFLM' if tflm else 'edgeprune AOT'} int8 firmware, {label}")
    layers = [_layer_cycles(t, n, info.tick_hz, emulated, per_insn[k] if per_insn else None, board)
              for k, t in enumerate(ticks)]  # fmt: skip
    total_cycles = sum(lay.cycles for lay in layers)
    ms = 1e3 * total_cycles / board.clock_hz
    timed = total_cycles > 0
    comps: dict[str, float] = defaultdict(float)  # cycles, or instructions when there is no cycle estimate
    for lay in layers:
        comps[lay.component] += lay.cycles if timed else lay.instructions or 0.0
    summed = sum(comps.values()) or 1.0
    notes = [f"outputs bit-identical to the TFLM host interpreter on {checked} random input sets"]
    batch = model.inputs[0].shape[0] if model.inputs and model.inputs[0].shape else 1
    if batch > 1:
        notes.append(f"the model was exported with batch {batch}: one inference runs {batch} samples "
                     "(export with --input-shape 1x... for one sample per inference)")  # fmt: skip
    if emulated:
        notes.append("instructions counted by QEMU (-icount shift=0)")
    if not timed:
        notes.append(label)
    return Measurement(
        model=info.model,
        runtime="tflm-int8" if tflm else "edgeprune-aot-int8",
        provenance=provenance,
        latency=LatencyStats.from_samples([ms] * runs, warmup) if ms > 0 else None,
        memory=Memory(
            flash_bytes=firmware.flash_bytes if firmware else None,
            arena_bytes=mem.get("arena", 0),
            arena="TFLM" if tflm else "firmware",
            ram_bytes=firmware.ram_bytes if firmware else None,
            stack_bytes=mem.get("stack_used", 0),
        ),
        fits=True,  # it linked and runs
        instructions=sum(lay.instructions or 0.0 for lay in layers) if emulated else None,
        batch=batch,
        components={
            c: ComponentShare(latency_ms=1e3 * v / board.clock_hz if timed else None, share=v / summed)
            for c, v in comps.items()
        },
        layers=layers,
        notes=notes,
    )


def _layer_cpi(board: BoardProfile, firmware: Firmware | None, n_layers: int) -> tuple[list[float] | None, str]:
    """Estimated cycles per instruction of each layer (from the firmware's traced instruction mixes and the core's
    cycle model) and the estimate's label; ``None`` and why when there is no estimate."""
    model = cycle_model(board.core)
    if model is None:
        return None, f"no cycle model for {board.core.value}: instruction counts only"
    mixes = firmware.layer_mixes if firmware else ()
    if len(mixes) != n_layers:
        return (
            None,
            "no traced instruction mix for this firmware (start it with edgeprune.deploy.mcu.emulate): "
            "instruction counts only",
        )
    return [model.cycles(m, board) / m.instructions if m.instructions else 1.0 for m in mixes], model.label


def _layer_cycles(t: LayerTicks, runs: int, tick_hz: int, emulated: bool, per_insn: float | None,
                  board: BoardProfile) -> LayerFigure:  # fmt: skip
    """A layer's cycles per run: on a real board ticks at ``tick_hz`` -> cycles at the board's clock; on the emulated
    board ticks are QEMU virtual time (1 instruction = 1 ns), times the layer's estimated cycles per instruction
    (``None``: no estimate, cycles 0 and the instruction count only)."""
    seconds = t.ticks / max(runs, 1) / tick_hz
    if not emulated:
        return LayerFigure(t.index, t.op, t.component, seconds * board.clock_hz)
    insns = seconds * INSNS_PER_SECOND
    return LayerFigure(t.index, t.op, t.component, insns * (per_insn or 0.0), instructions=insns)
