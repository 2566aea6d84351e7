"""The MLPerf Tiny runner (github.com/mlcommons/tiny, benchmark/runner) driving our firmware on the emulated board.

The runner is not installable here (not on PyPI), so this file re-implements, in our own code, exactly what its
code sends and how it parses the replies, and replays its performance- and accuracy-mode scripts against the
firmware in QEMU. What is mirrored, by runner file (read at mlcommons/tiny commits noted below):

- serial_device.py (20d7b7b3) ``SerialDevice(port, 115200, "m-ready", "%")``: ``serial.Serial(port, baud,
  timeout=0.1)``; ``write_line`` writes the command, then ``%``; a reader thread decodes byte by byte, drops
  ``\\n \\r \\0`` and ends a line at ``\\n``; ``send_command`` collects non-empty lines until one *containing*
  ``m-ready`` (5 s per line, else ``RuntimeError("No response to command ...")``) and returns a ``str`` when
  exactly one line came back. No drain before the first command (``reset_port`` is not called).
- device_under_test.py (1af53ffc; 4984e1ff) ``DUT``: ``name`` parsed with ``^m-(name)-dut-\\[([^]]+)]$``,
  ``profile`` with ``^m-(model|profile)-\\[([^]]+)]$``; ``load``: ``db load N`` then ``db`` + 31 bytes as
  lower-case hex per command (26 with a power manager); ``infer``: ``infer N W`` (1af53ffc; the older 4984e1ff
  omits ``W`` when it is 0, so the firmware's default of 10 warm-ups applies, as in the reference firmware).
- main.py (05b1d3b7) ``init_dut``: port opened, ``time.sleep(2)``, ``name``, ``profile``; then ``run_test`` picks
  the test script by the reported model: ``Script(test_script.get(dut.get_model()))``.
- script.py (09f3bf8a) ``_ScriptLoopStep`` / ``_ScriptDownloadStep`` / ``_ScriptInferStep``: per loop
  ``download`` (``dut.load(file bytes)``) then ``infer``; ``_gather_infer_results`` takes ``m-results-\\[([^]]+)\\]``
  (floats) and the first/second ``^m-lap-us-([0-9]+)$`` as start/end; performance mode computes throughput
  from ``elapsed_time``.
- tests.yaml (1af53ffc): kws01 ``loop 5: download, infer 10 1`` (the default ``-t``); tests_accuracy.yaml
  (23e62416): every file, ``infer 1 0``. tests_performance.yaml's submission counts (kws01 ``infer 70 10``, ad01
  ``infer 1500 10``) are not replayed: minutes of QEMU time, and the same commands.

The dataset files are replaced by random int8 inputs of the model's input size (the runner sends a file's bytes
unchanged for kws01; ad01's segmenting by ``bytes_to_send``/``stride`` comes from the dataset's truth file).
Every parsed result vector is compared with the TFLM host interpreter's output dequantized and formatted as the
firmware formats it, and the raw int8 outputs (``ep-raw%``) byte for byte."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import serial
from deploy_exports import exported, random_inputs

from edgeprune.boards.insn_cost import CALIBRATION_INSNS
from edgeprune.boards.schema import Core
from edgeprune.deploy.mcu import emulate
from edgeprune.deploy.mcu.aot.codegen import GeneratedModel
from edgeprune.deploy.mcu.model import prepare
from edgeprune.export.tflm import run_tflm

pytestmark = pytest.mark.skipif(
    not (shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")),
    reason="needs qemu-system-arm and arm-none-eabi-gcc (make setup)",
)
LINE_TIMEOUT = 5.0  # serial_device.py: SerialDevice._timeout, per reply line
DB_BYTES = 31  # device_under_test.py: DUT._max_bytes without a power manager
PERFORMANCE = (5, 10, 1)  # tests.yaml kws01: loop 5, infer 10 1
ACCURACY_FILES = 3  # tests_accuracy.yaml: loop over every dataset file, infer 1 0


class RunnerPort:
    """serial_device.py ``SerialDevice`` with end of response ``m-ready`` and delimiter ``%``."""

    def __init__(self, path: str) -> None:
        self.port = serial.Serial(path, 115200, timeout=0.1)
        self.pending = ""

    def close(self) -> None:
        self.port.close()

    def read_line(self) -> str | None:
        deadline = time.monotonic() + LINE_TIMEOUT
        while time.monotonic() < deadline:
            char = self.port.read(1).decode()  # the runner decodes each byte on its own (ASCII only)
            if char and char not in "\n\r\0":
                self.pending += char
            elif char == "\n":
                line, self.pending = self.pending, ""
                return line
        return None

    def send_command(self, command: str) -> list[str] | str:
        self.port.write(command.encode())
        self.port.write(b"%")
        lines: list[str] = []
        while True:
            resp = self.read_line()
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
        for line in port.send_command("name"):
            m = re.match(r"^m-(name)-dut-\[([^]]+)]$", line)
            if m:
                self.name = m.group(2)
        for line in port.send_command("profile"):
            m = re.match(r"^m-(model|profile)-\[([^]]+)]$", line)
            if m:
                setattr(self, m.group(1), m.group(2))
        port.close()

    @staticmethod
    def load(port: RunnerPort, data: bytes) -> list[str] | str:
        port.send_command(f"db load {len(data)}")
        result: list[str] | str = []
        for i in range(0, len(data), DB_BYTES):
            result = port.send_command(f"db {''.join(f'{d:02x}' for d in data[i : i + DB_BYTES])}")
        return result


def gather_infer_results(lines: list[str] | str) -> dict[str, Any]:
    """script.py ``_ScriptInferStep._gather_infer_results`` (performance/accuracy mode)."""
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


def firmware_results(model: GeneratedModel, outputs: list[np.ndarray]) -> list[float]:
    """What ``m-results-[...]`` holds for these int8 outputs: ep_main.c's results() (float32 dequantization,
    ``%0.3f`` by round-half-up of ``f * 1000``), parsed back to floats."""
    values = []
    for io, out in zip(model.outputs, outputs, strict=True):
        for q in np.asarray(out, dtype=np.int8).ravel():
            f = np.float32(int(q) - io.zero_point) * np.float32(io.scale)
            milli = int(np.float32(abs(f) * np.float32(1000.0) + np.float32(0.5)))
            values.append(-milli / 1000 if f < 0 else milli / 1000)
    return values


def replay(
    dut: RunnerDut, model: GeneratedModel, tflite: bytes, files: int, infer: str, seed: int
) -> list[dict[str, Any]]:
    """One ``Script.run``: port opened, per file ``download`` + ``infer``, each reply parsed as the runner does and
    checked against TFLM; afterwards the raw outputs of the last inference byte for byte (``ep-raw%``)."""
    sets = random_inputs([x.shape for x in model.inputs], files, seed=seed)
    want = run_tflm(tflite, sets, 4 << 20)
    port = RunnerPort(dut.path)
    results = []
    try:
        for inputs, outputs in zip(sets, want, strict=True):
            done = RunnerDut.load(port, b"".join(x.tobytes() for x in inputs))
            assert done == ["m-load-done", "m-ready"]
            lines = port.send_command(infer)
            assert isinstance(lines, list) and lines[-1] == "m-ready" and not any(x.startswith("e-") for x in lines)
            res = gather_infer_results(lines)
            assert res["results"] == firmware_results(model, outputs)
            results.append(res)
        raw = port.send_command("ep-raw")
        want_raw = b"".join(np.asarray(o, dtype=np.int8).tobytes() for o in want[-1]).hex()
        assert raw == [f"m-ep-raw-[{want_raw}]", "m-ready"]
    finally:
        port.close()
    return results


@pytest.fixture(scope="module")
def kws01(tmp_path_factory: pytest.TempPathFactory):
    with emulate("nucleo-l4r5zi", exported("kws_dscnn"), tmp_path_factory.mktemp("fw"), mlperf_model="kws01") as emu:
        yield emu


def test_runner_identifies_the_board_and_picks_the_kws01_script(kws01) -> None:
    dut = RunnerDut(kws01.port)
    dut.init()
    assert dut.name == f"edgeprune-{exported('kws_dscnn').name}"  # the firmware names the model by its export
    assert dut.model == "kws01"  # a key of the runner's tests.yaml, so run_test finds the script
    assert dut.profile and dut.profile.startswith("edgeprune-fw")


def test_runner_performance_mode(kws01) -> None:
    model, tflite = prepare(exported("kws_dscnn"))
    loops, n, warmup = PERFORMANCE
    results = replay(RunnerDut(kws01.port), model, tflite, loops, f"infer {n} {warmup}", seed=1)
    assert len(results) == loops
    per_run_us = CALIBRATION_INSNS[Core.CORTEX_M4]["kws_dscnn"] / 1000  # -icount shift=0: 1 instruction = 1 ns
    for res in results:
        assert res["elapsed_time"] == pytest.approx(n * per_run_us, rel=0.01)


def test_runner_accuracy_mode(kws01) -> None:
    model, tflite = prepare(exported("kws_dscnn"))
    assert len(replay(RunnerDut(kws01.port), model, tflite, ACCURACY_FILES, "infer 1 0", seed=2)) == ACCURACY_FILES


def test_older_runner_omits_zero_warmups_and_gets_the_reference_default(kws01) -> None:
    port = RunnerPort(kws01.port)
    try:
        lines = port.send_command("infer 1")  # device_under_test.py at 4984e1ff for warmups == 0
    finally:
        port.close()
    assert lines[0] == "m-warmup-start-10"  # internally_implemented.cpp: size_t w = 10


def test_ad01_accuracy_mode_on_the_m7(tmp_path: Path) -> None:
    d = exported("ad_autoencoder")
    model, tflite = prepare(d)
    with emulate("nucleo-h743zi2", d, tmp_path, mlperf_model="ad01") as emu:
        dut = RunnerDut(emu.port)
        dut.init()
        assert dut.model == "ad01"
        assert len(replay(dut, model, tflite, ACCURACY_FILES, "infer 1 0", seed=3)) == ACCURACY_FILES
