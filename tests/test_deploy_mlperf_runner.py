"""The MLPerf Tiny runner (github.com/mlcommons/tiny, benchmark/runner) driving our firmware on the emulated board.

The runner is not installable here (not on PyPI), so this file re-implements, in our own code, what its code sends
and how it parses the replies, as of mlcommons/tiny 1afd2c9 ("Update final report script to v1.4"), and replays
its performance- and accuracy-mode scripts against the firmware in QEMU:

- serial_device.py ``SerialDevice(port, 115200, "m-ready", "%")``: ``serial.Serial(port, baud, timeout=0.1)``;
  ``write_line`` writes the command, then ``%``; a reader thread decodes byte by byte, drops ``\\n \\r \\0`` and ends
  a line at ``\\n``; ``send_command`` collects non-empty lines until one *containing* ``m-ready`` (5 s per line, or
  the caller's timeout, else ``RuntimeError("No response to command ...")``) and returns a ``str`` when exactly one
  line came back. No drain before the first command (``reset_port`` is never called).
- device_under_test.py ``DUT``: ``name`` parsed with ``^m-(name)-dut-\\[([^]]+)]$``, ``profile`` with
  ``^m-(model|profile)-\\[([^]]+)]$`` (each retried up to 3 times when nothing matched); ``load``: ``db load N``
  then ``db`` + 31 bytes as lower-case hex per command (26 with a power manager); ``infer``: always ``infer N W``,
  30 s per reply line.
- main.py ``init_dut``: port opened, ``time.sleep(2)``, ``name``, ``profile``; ``run_test`` picks the test script
  by the reported model: ``Script(test_script.get(dut.get_model()))``; accuracy mode parses one float per ad01
  window (the anomaly score) and a class vector for the others.
- script.py ``_ScriptDownloadStep``: kws01/ic01/vww01 send a dataset file's bytes unchanged; ad01 cuts each file
  into windows of ``bytes_to_send`` bytes every ``stride`` bytes (truth file columns) and sends one window per
  ``infer`` (performance mode: the first window only). ``_ScriptInferStep._gather_infer_results`` takes
  ``m-results-\\[([^]]+)\\]`` (floats) and the first/second ``^m-lap-us-([0-9]+)$`` as start/end;
  ``_print_AP_results``: throughput = iterations / ((end - start) / 1e6).
- tests_performance.yaml: ``loop 5: download, infer N W`` (kws01 70 10, ad01 1500 10, ic01/vww01 20 5);
  tests_accuracy.yaml: every file, ``infer 1 0``. Replayed with smaller N (the commands are the same; the
  submission counts are minutes of QEMU time), so a real run's ``error 2`` check (5 loops under 10 s of wall time)
  does not apply here.

The dataset files are replaced by random inputs in each task's dataset format (int8 bytes for kws01, bytes the
firmware shifts by -128 for ic01, float32 windows for ad01). Every parsed result is compared with the TFLM host
interpreter's output (formatted as the firmware formats it; for ad01 the reference firmware's score), and the runner's
throughput with the emulated board's estimate."""

from __future__ import annotations

import os
import re
import shutil
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import serial
from deploy_exports import exported, random_inputs

from edgeprune.boards import load_board
from edgeprune.boards.cycle_model import LayerMix, cycle_model
from edgeprune.boards.schema import Core
from edgeprune.deploy.mcu import bench_export, emulate
from edgeprune.deploy.mcu.aot.codegen import GeneratedModel
from edgeprune.deploy.mcu.model import prepare
from edgeprune.export.tflm import run_tflm

pytestmark = pytest.mark.skipif(
    not (shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")),
    reason="needs qemu-system-arm and arm-none-eabi-gcc (make setup)",
)
LINE_TIMEOUT = 5.0  # serial_device.py: SerialDevice._timeout, per reply line
INFER_TIMEOUT = 30.0  # device_under_test.py: DUT.infer passes timeout=30.0
DB_BYTES = 31  # device_under_test.py: DUT._max_bytes without a power manager
PERFORMANCE = (5, 4, 1)  # tests_performance.yaml shape: loop 5, infer N W (kws01: 70 10; smaller here)
ACCURACY_FILES = 3  # tests_accuracy.yaml: loop over every dataset file, infer 1 0
M4 = "nucleo-l4r5zi"


class RunnerPort:
    """serial_device.py ``SerialDevice`` with end of response ``m-ready`` and delimiter ``%``."""

    def __init__(self, path: str) -> None:
        self.port = serial.Serial(path, 115200, timeout=0.1)
        self.pending = ""

    def close(self) -> None:
        self.port.close()

    def read_line(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            char = self.port.read(1).decode()  # the runner decodes each byte on its own (ASCII only)
            if char and char not in "\n\r\0":
                self.pending += char
            elif char == "\n":
                line, self.pending = self.pending, ""
                return line
        return None

    def send_command(self, command: str, timeout: float = LINE_TIMEOUT) -> list[str] | str:
        self.port.write(command.encode())
        self.port.write(b"%")
        lines: list[str] = []
        while True:
            resp = self.read_line(timeout)
            if resp is None:
                raise RuntimeError(f"No response to command {command}")
            end = "m-ready" in resp
            if resp:
                lines.append(resp)
            if end:
                break
        return lines if len(lines) != 1 else lines[0]


class RunnerDut:
    """device_under_test.py ``DUT`` (no power manager) and main.py ``init_dut``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.name: str | None = None
        self.model: str | None = None
        self.profile: str | None = None

    def init(self) -> None:
        port = RunnerPort(self.path)
        time.sleep(2)  # main.py init_dut; lines arriving meanwhile would be queued for the first command
        for _ in range(3):  # DUT._retry(self._get_name)
            for line in port.send_command("name"):
                m = re.match(r"^m-(name)-dut-\[([^]]+)]$", line)
                if m:
                    self.name = m.group(2)
            if self.name:
                break
        for _ in range(3):  # DUT._retry(self._get_profile)
            for line in port.send_command("profile"):
                m = re.match(r"^m-(model|profile)-\[([^]]+)]$", line)
                if m:
                    setattr(self, m.group(1), m.group(2))
            if self.model:
                break
        port.close()

    @staticmethod
    def load(port: RunnerPort, data: bytes) -> list[str] | str:
        port.send_command(f"db load {len(data)}")
        result: list[str] | str = []
        for i in range(0, len(data), DB_BYTES):
            result = port.send_command(f"db {''.join(f'{d:02x}' for d in data[i : i + DB_BYTES])}")
        return result

    @staticmethod
    def infer(port: RunnerPort, number: int, warmups: int) -> list[str] | str:
        return port.send_command(f"infer {number} {warmups}", timeout=INFER_TIMEOUT)


def gather_infer_results(lines: list[str] | str) -> dict[str, Any]:
    """script.py ``_ScriptInferStep._gather_infer_results`` and ``_print_AP_results`` (performance/accuracy)."""
    result: dict[str, Any] = {}
    for res in lines:
        m = re.match(r"^m-results-\[([^]]+)\]$", res)
        if m:
            result["results"] = [float(x) for x in m.group(1).split(",") if x.strip()]
            continue
        m = re.match(r"^m-lap-us-([0-9]+)$", res)
        if m:
            result["end_time" if "start_time" in result else "start_time"] = int(m.group(1))
    if "start_time" in result and "end_time" in result:
        result["elapsed_time"] = result["end_time"] - result["start_time"]
    return result


def fixed3(f: np.float32) -> float:
    """ep_main.c out_fixed3 (``%0.3f`` by round-half-up of ``f * 1000`` in float32), parsed back."""
    milli = int(np.float32(abs(f) * np.float32(1000.0) + np.float32(0.5)))
    return -milli / 1000 if f < 0 else milli / 1000


def firmware_results(model: GeneratedModel, outputs: list[np.ndarray]) -> list[float]:
    """What ``m-results-[...]`` holds for these int8 outputs (float32 dequantization, ``%0.3f``)."""
    return [
        fixed3(np.float32(int(q) - io.zero_point) * np.float32(io.scale))
        for io, out in zip(model.outputs, outputs, strict=True)
        for q in np.asarray(out, dtype=np.int8).ravel()
    ]


def replay(port: RunnerPort, model: GeneratedModel, tflite: bytes, files: int, infer: tuple[int, int], seed: int):
    """One ``Script.run`` for kws01-style tasks: per file ``download`` + ``infer``, each reply parsed as the runner
    does and checked against TFLM; afterwards the raw outputs of the last inference byte for byte (``ep-raw%``)."""
    sets = random_inputs([x.shape for x in model.inputs], files, seed=seed)
    want = run_tflm(tflite, sets, 4 << 20)
    results = []
    for inputs, outputs in zip(sets, want, strict=True):
        assert RunnerDut.load(port, b"".join(x.tobytes() for x in inputs)) == ["m-load-done", "m-ready"]
        lines = RunnerDut.infer(port, *infer)
        assert isinstance(lines, list) and lines[-1] == "m-ready" and not any(x.startswith("e-") for x in lines)
        res = gather_infer_results(lines)
        assert res["results"] == firmware_results(model, outputs)
        results.append(res)
    want_raw = b"".join(np.asarray(o, dtype=np.int8).tobytes() for o in want[-1]).hex()
    raw = f"m-ep-raw-[{want_raw}]"  # extension replies end with the CRC-32 of their lines
    assert port.send_command("ep-raw") == [raw, f"m-ep-crc-[{zlib.crc32((raw + chr(10)).encode()):08x}]", "m-ready"]
    return results


@pytest.fixture(scope="module")
def kws01(tmp_path_factory: pytest.TempPathFactory):
    with emulate(M4, exported("kws_dscnn"), tmp_path_factory.mktemp("fw"), mlperf_model="kws01") as emu:
        yield emu


def test_runner_identifies_the_board_and_picks_the_kws01_script(kws01) -> None:
    dut = RunnerDut(kws01.port)
    dut.init()
    assert dut.name == f"edgeprune-{exported('kws_dscnn').name}"  # the firmware names the model by its export
    assert dut.model == "kws01"  # a key of the runner's tests_*.yaml, so run_test finds the script
    assert dut.profile == (
        "edgeprune-fw 0.2 (EEMBC ULPMark-ML protocol); m-lap-us: estimated, QEMU instructions x "
        f"{_kws01_cycles(kws01) / _kws01_mix(kws01).instructions:.3f} cycles/insn (cycle model) at 120 MHz"
    )


def _kws01_mix(emu) -> LayerMix:
    total = LayerMix()
    for mix in emu.firmware.layer_mixes:
        total += mix
    return total


def _kws01_cycles(emu) -> float:
    return cycle_model(Core.CORTEX_M4).cycles(_kws01_mix(emu), load_board(M4))


def test_runner_performance_mode_throughput_is_the_estimate(kws01) -> None:
    """The runner's throughput (iterations over the m-lap-us difference) is the emulated board's estimate:
    the traced inference's cycles (cycle model) at the L4R5ZI's 120 MHz."""
    model, tflite = prepare(exported("kws_dscnn"))
    loops, n, warmup = PERFORMANCE
    port = RunnerPort(kws01.port)
    try:
        results = replay(port, model, tflite, loops, (n, warmup), seed=1)
    finally:
        port.close()
    assert len(results) == loops
    estimate_s = _kws01_cycles(kws01) / 120e6
    for res in results:
        assert n / (res["elapsed_time"] / 1e6) == pytest.approx(1 / estimate_s, rel=0.01)
    m = bench_export(exported("kws_dscnn"), load_board(M4), kws01.port, emulated=True, runs=1, warmup=0,
                     firmware=kws01.firmware)  # fmt: skip
    assert m.latency is not None
    assert results[0]["elapsed_time"] / n / 1e3 == pytest.approx(m.latency.mean_ms, rel=0.001)


def test_runner_accuracy_mode(kws01) -> None:
    model, tflite = prepare(exported("kws_dscnn"))
    port = RunnerPort(kws01.port)
    try:
        assert len(replay(port, model, tflite, ACCURACY_FILES, (1, 0), seed=2)) == ACCURACY_FILES
    finally:
        port.close()


def ad01_windows(data: bytes, bytes_to_send: int, stride: int) -> list[bytes]:
    """script.py ``_ScriptDownloadStep.run`` for ad01: windows of ``bytes_to_send`` every ``stride`` bytes."""
    out, start = [], 0
    while start + bytes_to_send <= len(data):
        out.append(data[start : start + bytes_to_send])
        start += stride
    return out


def ad01_score(model: GeneratedModel, tflite: bytes, window: np.ndarray) -> float:
    """The reference AD firmware: th_load_tensor quantizes the float32 window (QuantizeFloatToInt8: round half away
    from zero of value / scale, plus the zero point, clamped), th_results prints the mean squared error of the
    dequantized output against the float input, in float32."""
    i, o = model.inputs[0], model.outputs[0]
    r = window / np.float32(i.scale)
    q = np.clip(np.sign(r) * np.floor(np.abs(r) + np.float32(0.5)) + i.zero_point, -128, 127).astype(np.int8)
    (out,) = run_tflm(tflite, [[q.reshape(i.shape)]], 4 << 20)[0]
    y = (np.asarray(out, dtype=np.int32).ravel() - o.zero_point).astype(np.float32) * np.float32(o.scale)
    diffsum = np.float32(0)
    for d in y - window:
        diffsum = np.float32(diffsum + d * d)
    return fixed3(np.float32(diffsum / np.float32(o.size)))


def test_ad01_takes_float32_windows_and_returns_the_anomaly_score(tmp_path: Path) -> None:
    """ad01 as the reference firmware speaks it: ``db load 2560`` (640 float32), one score per window; the runner
    cuts a file into windows by the truth file's bytes_to_send/stride (accuracy mode: every window)."""
    d = exported("ad_autoencoder")
    model, tflite = prepare(d)
    n = model.inputs[0].size
    assert 4 * n == 2560
    rng = np.random.default_rng(3)
    lo, hi = (np.float32(model.inputs[0].scale) * (q - model.inputs[0].zero_point) for q in (-128, 127))
    data = rng.uniform(lo * 1.1, hi * 1.1, n + 2 * 128).astype("<f4")  # 3 windows, stride 128 floats; some clamp
    windows = ad01_windows(data.tobytes(), 4 * n, 4 * 128)
    assert len(windows) == 3
    with emulate(M4, d, tmp_path, mlperf_model="ad01", estimate=False) as emu:
        dut = RunnerDut(emu.port)
        dut.init()
        assert dut.model == "ad01"
        port = RunnerPort(emu.port)
        try:
            for w in windows:
                assert RunnerDut.load(port, w) == ["m-load-done", "m-ready"]
                res = gather_infer_results(RunnerDut.infer(port, 1, 0))
                assert res["results"] == [ad01_score(model, tflite, np.frombuffer(w, dtype="<f4"))]
                assert res["elapsed_time"] > 0
        finally:
            port.close()
        # edgeprune's own bench sends raw int8 (a buffer of the int8 input size) and still checks bit for bit
        m = bench_export(d, load_board(M4), emu.port, emulated=True, runs=1, warmup=0)
    assert m.notes[0].startswith("outputs bit-identical")


def test_ic01_subtracts_128_from_each_dataset_byte(tmp_path: Path) -> None:
    """ic01/vww01 reference firmwares feed ``byte - 128`` to the int8 model; the runner sends the file unchanged."""
    d = exported("simple")
    model, tflite = prepare(d)
    rng = np.random.default_rng(4)
    raw = rng.integers(0, 256, model.inputs[0].size, dtype=np.uint8)
    want = run_tflm(tflite, [[(raw.astype(np.int16) - 128).astype(np.int8).reshape(model.inputs[0].shape)]], 4 << 20)
    with emulate(M4, d, tmp_path, mlperf_model="ic01", estimate=False) as emu:
        port = RunnerPort(emu.port)
        try:
            assert RunnerDut.load(port, raw.tobytes()) == ["m-load-done", "m-ready"]
            res = gather_infer_results(RunnerDut.infer(port, 1, 0))
        finally:
            port.close()
        m = bench_export(d, load_board(M4), emu.port, emulated=True, runs=1, warmup=0)  # sends int8 + 128
    assert res["results"] == firmware_results(model, want[0])
    assert m.notes[0].startswith("outputs bit-identical")


def test_the_idle_board_sleeps(kws01) -> None:
    """Between commands the firmware waits in WFI (UART receive interrupt), so QEMU uses no host CPU."""

    def cpu_s() -> float:
        fields = Path(f"/proc/{kws01.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    before = cpu_s()
    time.sleep(1.0)
    assert cpu_s() - before < 0.1  # polling the UART burned the whole second
