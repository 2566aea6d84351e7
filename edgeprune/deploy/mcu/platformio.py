"""A PlatformIO project (Arduino framework) for a real board, running the benchmark firmware (EEMBC protocol,
``ep_main.c``) with one of two model runtimes behind ``ep_model.h``:

- ``"tflm"``: TensorFlow Lite Micro (``ep_model_tflm.cpp`` + the export's TFLM bundle: model array, op resolver,
  arena size). PlatformIO brings TFLM (and the optimized kernels the board's library has) through ``lib_deps``;
  an Arduino sketch folder with the same sources is written too.
- ``"aot"``: our ahead-of-time int8 kernels (``ep_kernels.c`` + generated ``model.c``); no ML library.

Build and upload with ``pio run -t upload``; nothing here downloads PlatformIO platforms or libraries."""

from __future__ import annotations

import json
import math
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from edgeprune.boards import iter_profiles
from edgeprune.boards.schema import BoardProfile
from edgeprune.deploy.mcu.aot.codegen import GeneratedModel
from edgeprune.deploy.mcu.build import FIRMWARE
from edgeprune.deploy.mcu.model import prepare
from edgeprune.errors import EdgepruneError
from edgeprune.io import write_atomic


@dataclass(frozen=True)
class TflmLibrary:
    """An Arduino library that brings TensorFlow Lite Micro for a board's Arduino core."""

    name: str  # the library's name (library.properties), as the Arduino IDE shows it
    header: str  # the umbrella header its examples include before any TFLM header
    lib_dep: str  # PlatformIO lib_deps entry
    install: str  # how to install it for the Arduino IDE / arduino-cli
    kernels: str  # which optimized kernels it compiles in
    evidence: str  # where this was checked


@dataclass(frozen=True)
class PioBoard:
    """A board as PlatformIO knows it: platform, board id, upload protocol (None: the board's default)."""

    platform: str
    board: str
    upload: str | None
    arduino: str | None  # why PlatformIO has no Arduino framework for this board; None: it has one
    tflm: TflmLibrary | str  # the TFLM library for the board's Arduino core, or why there is none


ARDUINO_TFLITE = TflmLibrary(
    name="Arduino_TensorFlowLite",
    header="TensorFlowLite.h",
    lib_dep="https://github.com/tensorflow/tflite-micro-arduino-examples.git",
    install="not in the Library Manager: git clone https://github.com/tensorflow/tflite-micro-arduino-examples "
    "~/Arduino/libraries/Arduino_TensorFlowLite",
    kernels="CMSIS-NN (src/tensorflow/lite/micro/kernels/cmsis_nn, src/third_party/cmsis_nn)",
    evidence="github.com/tensorflow/tflite-micro-arduino-examples: library.properties (name=Arduino_TensorFlowLite, "
    "includes=TensorFlowLite.h), README (clone into ~/Arduino/libraries), CI builds for the Nano 33 BLE Sense",
)
CHIRALE = TflmLibrary(
    name="Chirale_TensorFlowLite",
    header="Chirale_TensorFlowLite.h",
    lib_dep="https://github.com/spaziochirale/Chirale_TensorFlowLite.git",
    install="Arduino Library Manager: Chirale_TensorFlowLite (library.properties spells it Chirale_TensorFLowLite)",
    kernels="not documented by the library (its README: regenerated from the main TFLite Micro library)",
    evidence="github.com/spaziochirale/Chirale_TensorFlowLite: library.properties "
    "(architectures=mbed_nano,esp32,mbed_nicla,mbed_portenta), README (tested boards include the Arduino Nano ESP32, "
    "an ESP32-S3), examples/hello_world (#include <Chirale_TensorFlowLite.h>, 4-argument MicroInterpreter). "
    "Not chosen: TensorFlowLite_ESP32 (an old snapshot whose sync script deletes the ESP-NN kernels; its "
    "MicroInterpreter still takes an ErrorReporter) and Espressif's esp-tflite-micro (an ESP-IDF component, "
    "not an Arduino library)",
)
RUNTIMES = ("tflm", "aot")
SHARED = ("ep_main.c", "ep_model.h", "ep_board.h", "ep_board_arduino.cpp")
AOT_SOURCES = ("ep_kernels.c", "ep_kernels_dsp.c", "ep_kernels.h", "ep_requant.h")
TFLM_BUNDLE = ("model_data.h", "op_resolver.h")  # copied as they are; model_data.cc becomes model_data.cpp
# the TFLM libraries a profile's [platformio] tflm_library names
TFLM_LIBRARIES = {"arduino-tflite": ARDUINO_TFLITE, "chirale": CHIRALE}


def pio_board(board: BoardProfile) -> PioBoard | None:
    """The PlatformIO target of ``board``, from its profile's ``[platformio]`` table (None: it has none)."""
    t = board.platformio
    if t is None:
        return None
    tflm = TFLM_LIBRARIES[t.tflm_library] if t.tflm_library else t.no_tflm
    assert tflm is not None  # the schema requires one of them
    return PioBoard(t.platform, t.board, t.upload_protocol, t.no_arduino, tflm)


def pio_boards() -> dict[str, PioBoard]:
    """Every known board (built in and on ``EDGEPRUNE_BOARD_PATH``) that has a PlatformIO target."""
    return {b.name: t for b in iter_profiles() if (t := pio_board(b)) is not None}


def platformio_project(
    export_dir: str | Path,
    board: BoardProfile,
    out_dir: str | Path,
    *,
    runtime: str = "tflm",
    model: GeneratedModel | None = None,
) -> list[Path]:
    """Write ``platformio.ini``, ``src/`` and ``README.md`` for ``board`` into ``out_dir`` from an export directory
        (``edgeprune export --to onnx,tflm``); with ``runtime="tflm"`` also ``arduino/<sketch>/``. Returns the files
        written. Raises :class:`EdgepruneError` for a board without a PlatformIO Arduino target or, with ``"tflm"``,
        without a maintained TFLM library (``runtime="aot"`` runs our kernels there instead). ``model``: the export's
    generated C model when the caller has it already (:func:`~edgeprune.deploy.mcu.model.prepare`)."""
    if runtime not in RUNTIMES:
        raise EdgepruneError(f"unknown runtime {runtime!r}", expected=" or ".join(RUNTIMES))
    target = _target(board)
    if runtime == "tflm" and isinstance(target.tflm, str):
        with_tflm = [n for n, b in pio_boards().items() if b.arduino is None and isinstance(b.tflm, TflmLibrary)]
        raise EdgepruneError(
            f"no TensorFlow Lite Micro library for {board.name} under PlatformIO's Arduino framework: {target.tflm}",
            expected=f"a board with one: {', '.join(with_tflm)}",
            fix="use runtime 'aot' (our int8 kernels, no ML library: --runtime aot), or build TFLM for this board "
            "outside Arduino (its Makefile, or the vendor's SDK)",
        )
    export = Path(export_dir)
    name = export.resolve().name
    out = Path(out_dir)
    if runtime == "tflm":
        files, in_bytes = _tflm_sources(export, name, target.tflm)
    else:
        files, in_bytes = _aot_sources(model or prepare(export, name=name)[0])
    stale = sorted(p.name for p in (out / "src").glob("*") if p.name not in files) if (out / "src").is_dir() else []
    if stale:
        raise EdgepruneError(
            f"{out / 'src'} holds files this project does not write: {', '.join(stale)}",
            expected=f"an empty or new directory, or an earlier {runtime} project of this export",
            fix="remove those files (e.g. left by the other runtime), or choose another output directory",
        )
    db_max = max(in_bytes, 64)
    flags = f"-O2 -DEP_NO_MAIN -DEP_DB_MAX={db_max}" + (" -ffp-contract=off" if runtime == "aot" else "")
    written = [_write(out / "platformio.ini", _ini(board, target, runtime, flags))]
    written += [_write(out / "src" / f, text) for f, text in files.items()]
    written.append(_write(out / "README.md", _readme(board, target, runtime, name, export)))
    if runtime == "tflm":
        sketch = _sketch_name(name)
        prefix = "/* Arduino sketches take no build flags: the PlatformIO project's -D flags. */\n"
        prefix += f"#define EP_NO_MAIN 1\n#define EP_DB_MAX {db_max}\n"
        for f, text in files.items():
            path = out / "arduino" / sketch / f
            written.append(_write(path, prefix + text if f == "ep_main.c" else text))
        written.append(_write(out / "arduino" / sketch / f"{sketch}.ino", _ino(target.tflm, sketch)))
    return written


def _target(board: BoardProfile) -> PioBoard:
    target = pio_board(board)
    if target is None:
        raise EdgepruneError(
            f"no PlatformIO target for {board.name}",
            expected=f"one of {', '.join(pio_boards())}",
            fix="use the emulated board, or add a [platformio] table (platform, board) to the board's profile",
        )
    if target.arduino is not None:
        raise EdgepruneError(
            f"no PlatformIO Arduino target for {board.name}: {target.arduino}",
            expected=f"a board whose PlatformIO manifest lists the Arduino framework: "
            f"{', '.join(n for n, b in pio_boards().items() if b.arduino is None)}",
            fix="use the emulated board (edgeprune emulate / bench --emulate), or a board from that list",
        )
    return target


def _write(path: Path, data: str | bytes) -> Path:
    write_atomic(path, data)
    return path


def _aot_sources(model: GeneratedModel) -> tuple[dict[str, str], int]:
    """The AOT firmware's sources and its input bytes."""
    files = {"model.c": model.source} | {f: (FIRMWARE / f).read_text() for f in (*SHARED, *AOT_SOURCES)}
    return files, sum(x.size for x in model.inputs)


def _tflm_sources(export: Path, name: str, lib: TflmLibrary) -> tuple[dict[str, str], int]:
    """The TFLM firmware's sources (shared protocol, backend, bundle, generated I/O table) and its input bytes."""
    bundle = export / "tflm"
    missing = [f for f in ("manifest.json", "model_data.cc", *TFLM_BUNDLE) if not (bundle / f).is_file()]
    if missing:
        raise EdgepruneError(
            f"{export} holds no complete TFLM bundle (missing tflm/{', tflm/'.join(missing)})",
            fix="export with targets including 'tflm' (edgeprune export ... --to onnx,tflm)",
        )
    manifest = json.loads((bundle / "manifest.json").read_text())
    io = [*manifest["inputs"], *manifest["outputs"]]
    wide = sorted({q["dtype"] for q in io} - {"int8"})
    if wide:
        raise EdgepruneError(
            f"the TFLM bundle's inputs/outputs are {', '.join(wide)}",
            expected="int8 inputs and outputs (the benchmark protocol moves int8 tensors)",
            fix="export a full-int8 model (edgeprune export --to onnx,tflm with --calib)",
        )
    sizes = [math.prod(q["shape"]) for q in io]
    n_in = len(manifest["inputs"])
    offsets = [sum(sizes[:k]) for k in range(len(sizes))]

    def table(kind: str, lo: int, hi: int) -> str:
        rows = ", ".join(
            f"{{{offsets[k]}u, {sizes[k]}u, {io[k]['scale']!r}f, {io[k]['zero_point']}}}" for k in range(lo, hi)
        )
        return f"const ep_tensor_io ep_{kind}s[] = {{{rows}}};\nconst int ep_{kind}_count = {hi - lo};\n"

    sha = manifest["model"]["sha256"]
    info = (
        "// Generated by edgeprune.deploy.mcu.platformio from the TFLM bundle's manifest.json. Do not edit.\n"
        "// Offsets are into ep_arena's I/O staging area (ep_model_tflm.cpp), inputs first.\n"
        'extern "C" {\n#include "ep_model.h"\n}\n\n'
        f"const char ep_model_name[] = {json.dumps(name)};\n"
        f'const char ep_model_sha256[] = "{sha}";\n' + table("input", 0, n_in) + table("output", n_in, len(io))
    )
    files = {f: (FIRMWARE / f).read_text() for f in (*SHARED, "ep_model_tflm.cpp")}
    files |= {f: (bundle / f).read_text() for f in TFLM_BUNDLE}
    files["model_data.cpp"] = (bundle / "model_data.cc").read_text()  # Arduino sketches compile .cpp, not .cc
    files["ep_model_info.cpp"] = info
    files["ep_model_info.h"] = (
        "// Generated by edgeprune.deploy.mcu.platformio. Do not edit.\n"
        f"#ifndef EP_MODEL_INFO_H\n#define EP_MODEL_INFO_H\n#define EP_IO_BYTES {sum(sizes)}u\n#endif\n"
    )
    files["ep_tflm_lib.h"] = (
        f"// The board's TFLM library: {lib.name} ({lib.lib_dep}). Its umbrella header comes before any TFLM header.\n"
        f"#include <{lib.header}>\n"
    )
    return files, sum(sizes[:n_in])


def _ini(board: BoardProfile, target: PioBoard, runtime: str, flags: str) -> str:
    lib = target.tflm if runtime == "tflm" and isinstance(target.tflm, TflmLibrary) else None
    return "\n".join(
        [
            f"; Generated by edgeprune for {board.display_name}, runtime {runtime} (see README.md).",
            "; Build and flash: pio run -t upload; then talk EEMBC over the serial port at 115200 8N1.",
            f"[env:{board.name}]",
            f"platform = {target.platform}",
            f"board = {target.board}",
            "framework = arduino",
            "monitor_speed = 115200",
            f"build_flags = {flags}",
            *([f"lib_deps = {lib.lib_dep}"] if lib else []),
            *([f"upload_protocol = {target.upload}"] if target.upload else []),
            "",
        ]
    )


def _sketch_name(model: str) -> str:
    """An Arduino sketch name (letters, digits, ``_``; the folder and the ``.ino`` share it)."""
    return "edgeprune_" + re.sub(r"[^0-9A-Za-z_]", "_", model)[:50]


def _ino(lib: TflmLibrary, sketch: str) -> str:
    return (
        f"// {sketch}: edgeprune benchmark firmware (EEMBC protocol over Serial at 115200 8N1) running the model\n"
        f"// with TensorFlow Lite Micro. Needs the Arduino library {lib.name}:\n//   {lib.install}\n"
        "// setup() and loop() are in ep_board_arduino.cpp; see README.md of the PlatformIO project next to this.\n"
        f"#include <{lib.header}>\n"
    )


def _readme(board: BoardProfile, target: PioBoard, runtime: str, name: str, export: Path) -> str:
    lines = [
        f"# edgeprune benchmark firmware: {name} on {board.display_name} ({runtime})",
        "",
        "Generated by `edgeprune platformio`. The firmware speaks the EEMBC / MLPerf Tiny benchmark protocol",
        "(plus edgeprune's `ep-*` commands) over `Serial` at 115200 8N1; docs/real-boards.md in edgeprune.",
        "",
        "```",
        "pio run -t upload          # PlatformIO downloads the platform, the Arduino core"
        + (" and the TFLM library" if runtime == "tflm" else ""),
        shlex.join(["edgeprune", "bench", "--board", board.name, "--export", str(export)]) + " [--port PORT]",
        "```",
        "",
    ]
    if runtime == "tflm" and isinstance(target.tflm, TflmLibrary):
        lib = target.tflm
        lines += [
            "## Runtime: TensorFlow Lite Micro",
            "",
            f"- Library: **{lib.name}** (`lib_deps = {lib.lib_dep}`, the default branch: pin a commit with `#<sha>`",
            "  for reproducible builds). Kernels: " + lib.kernels + ".",
            f"- Arduino IDE / arduino-cli: open `arduino/{_sketch_name(name)}/`; install the library first:",
            f"  {lib.install}.",
            f"- Evidence for this choice: {lib.evidence}.",
            "- `src/op_resolver.h` registers exactly the model's ops; `src/model_data.h` sets the tensor arena",
            "  (`kTensorArenaSize`, the bundle's recommended size). If `AllocateTensors` fails on the board the",
            "  firmware prints `e-[TFLM ...]` and outputs stay zero (edgeprune bench then reports an output mismatch).",
            "- Per-layer cycles are **not available** with this runtime: TFLM runs every op inside one `Invoke()`,",
            "  so `ep-layers` reports a single layer `TFLM_INVOKE` (the whole inference, including copying the int8",
            "  inputs and outputs). Use `--runtime aot` for per-layer cycles.",
            "- The interpreter is created on the first inference (the EEMBC warm-up, or edgeprune's output check).",
            "",
        ]
    else:
        lines += [
            "## Runtime: edgeprune AOT int8 kernels",
            "",
            "No ML library: `src/model.c` is the model generated from the `.tflite`, `src/ep_kernels.c` the kernels",
            "(bit-exact with TFLM's reference kernels). `ep-layers` reports per-layer cycles.",
            "",
        ]
    lines += ["## TFLM libraries per board (PlatformIO, Arduino framework)", ""]
    for b, t in pio_boards().items():
        status = t.arduino or (f"{t.tflm.name}" if isinstance(t.tflm, TflmLibrary) else f"none: {t.tflm}")
        lines.append(f"- {b} (`{t.platform}` / `{t.board}`): {status}")
    return "\n".join(lines) + "\n"
