"""The generated PlatformIO projects (runtimes ``tflm`` and ``aot``) are complete, and every source that does not
need TensorFlow Lite Micro's headers compiles on the host. Not compiled here: ``ep_model_tflm.cpp`` (TFLM's headers
come with the board's Arduino library on the user's machine); its C interface is checked by symbol names instead."""

from __future__ import annotations

import configparser
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from deploy_exports import exported

from edgeprune.boards import load_board
from edgeprune.cli import main
from edgeprune.deploy.mcu.build import FIRMWARE
from edgeprune.deploy.mcu.platformio import TflmLibrary, pio_boards, platformio_project
from edgeprune.errors import EdgepruneError

ARDUINO_STUB = """#pragma once
#include <stdint.h>
struct SerialStub { void begin(long) {} operator bool() { return true; } int available() { return 0; }
                    int read() { return -1; } void write(char) {} };
static SerialStub Serial;
static inline uint32_t micros() { return 0; }
"""
# MicroMutableOpResolver's methods as TFLM spells them (tensorflow/lite/micro/micro_mutable_op_resolver.h).
TFLM_METHODS = {
    "AVERAGE_POOL_2D": "AddAveragePool2D",
    "CONV_2D": "AddConv2D",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "FULLY_CONNECTED": "AddFullyConnected",
    "PAD": "AddPad",
    "SOFTMAX": "AddSoftmax",
}
# What ep_main.c needs from the model (ep_model.h) and which file of the TFLM project defines it.
FROM_INFO = {"ep_model_name", "ep_model_sha256", "ep_inputs", "ep_outputs", "ep_input_count", "ep_output_count"}
FROM_BACKEND = {"ep_arena", "ep_arena_bytes", "ep_kernel_set", "ep_layer_count", "ep_layers", "ep_run_layer"}
NANO = "arduino-nano-33-ble-sense"


def _compilers() -> tuple[str, str]:
    cc, cxx = shutil.which("gcc"), shutil.which("g++")
    if not (cc and cxx):
        pytest.skip("no host gcc/g++")
    return cc, cxx


def _symbols(obj: Path, kind: str, prefix: str = "ep_") -> set[str]:
    """Defined (``kind="defined"``) or undefined symbols of an object file starting with ``prefix``, by ``nm``."""
    out = subprocess.run(["nm", str(obj)], capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in out.splitlines()]
    return {r[-1] for r in rows if r[-1].startswith(prefix) and (r[-2] == "U") == (kind == "undefined")}


def _ini(project: Path) -> configparser.SectionProxy:
    ini = configparser.ConfigParser()
    ini.read(project / "platformio.ini")
    (section,) = ini.sections()
    return ini[section]


def test_tflm_project_is_complete(tmp_path: Path) -> None:
    export = exported("kws_dscnn")
    project = tmp_path / "pio"
    platformio_project(export, load_board(NANO), project)
    manifest = json.loads((export / "tflm/manifest.json").read_text())
    tflite = (export / "tflm/model.tflite").read_bytes()

    env = _ini(project)
    assert env.name == f"env:{NANO}"
    assert (env["platform"], env["board"], env["framework"]) == ("nordicnrf52", "nano33ble", "arduino")
    assert env["lib_deps"] == "https://github.com/tensorflow/tflite-micro-arduino-examples.git"
    assert env["monitor_speed"] == "115200" and "upload_protocol" not in env
    assert env["build_flags"].split() == ["-O2", "-DEP_NO_MAIN", "-DEP_DB_MAX=490"]  # 49 x 10 int8 input bytes

    src = project / "src"
    sources = {p.name for p in src.iterdir() if p.suffix in (".c", ".cpp", ".cc")}
    assert sources == {"ep_main.c", "ep_board_arduino.cpp", "ep_model_tflm.cpp", "ep_model_info.cpp", "model_data.cpp"}
    for f in src.iterdir():  # every local include is in src/; the rest come from the library or the toolchain
        for inc in re.findall(r'#include "([^"]+)"', f.read_text()):
            assert (src / inc).is_file() or inc.startswith("tensorflow/"), f"{f.name} includes missing {inc}"
    assert (src / "ep_main.c").read_text() == (FIRMWARE / "ep_main.c").read_text()  # shared, not a variant
    assert (src / "ep_tflm_lib.h").read_text().endswith("#include <TensorFlowLite.h>\n")

    resolver = (src / "op_resolver.h").read_text()
    assert re.findall(r"resolver\.(Add\w+)\(\)", resolver) == [TFLM_METHODS[op] for op in manifest["ops"]]
    assert f"MicroMutableOpResolver<{len(manifest['ops'])}>" in resolver
    arena = int(re.search(r"kTensorArenaSize = (\d+);", (src / "model_data.h").read_text()).group(1))
    assert arena == manifest["arena"]["recommended"]
    array = (src / "model_data.cpp").read_text()
    assert bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", array)) == tflite
    assert f"g_model_data_len = {len(tflite)};" in array

    info = (src / "ep_model_info.cpp").read_text()
    assert f'ep_model_sha256[] = "{hashlib.sha256(tflite).hexdigest()}"' in info
    (i,), (o,) = manifest["inputs"], manifest["outputs"]
    assert f"{{0u, 490u, {i['scale']!r}f, {i['zero_point']}}}" in info
    assert f"{{490u, 12u, {o['scale']!r}f, {o['zero_point']}}}" in info
    assert "#define EP_IO_BYTES 502u" in (src / "ep_model_info.h").read_text()

    readme = (project / "README.md").read_text()
    assert "Arduino_TensorFlowLite" in readme and "Per-layer cycles are **not available**" in readme

    sketch = project / "arduino" / f"edgeprune_{export.name.replace('-', '_')}"
    assert (sketch / f"{sketch.name}.ino").read_text().endswith("#include <TensorFlowLite.h>\n")
    assert {p.name for p in sketch.iterdir()} == {p.name for p in src.iterdir()} | {f"{sketch.name}.ino"}
    head, _, rest = (sketch / "ep_main.c").read_text().partition("#define EP_DB_MAX 490\n")
    assert "#define EP_NO_MAIN 1\n" in head and rest == (FIRMWARE / "ep_main.c").read_text()


def test_tflm_sources_compile_on_the_host_except_the_tflm_backend(tmp_path: Path) -> None:
    cc, cxx = _compilers()
    project = tmp_path / "pio"
    platformio_project(exported("kws_dscnn"), load_board(NANO), project)
    sketch = next((project / "arduino").iterdir())
    objs = tmp_path / "o"
    objs.mkdir()
    # The sketch's ep_main.c, without -D flags: its own #defines must turn the bare-metal main() off.
    subprocess.run([cc, "-Wall", "-Werror", "-c", str(sketch / "ep_main.c"), "-o", str(objs / "ep_main.o")],
                   check=True, timeout=120)  # fmt: skip
    for name in ("ep_model_info.cpp", "model_data.cpp"):
        subprocess.run([cxx, "-std=c++17", "-Wall", "-Werror", "-c", str(sketch / name), "-o", str(objs / f"{name}.o")],
                       check=True, timeout=120)  # fmt: skip
    (tmp_path / "Arduino.h").write_text(ARDUINO_STUB)
    subprocess.run([cxx, "-Wall", "-Werror", "-I", str(tmp_path), "-c", str(sketch / "ep_board_arduino.cpp"),
                    "-o", str(objs / "board.o")], check=True, timeout=120)  # fmt: skip

    assert "main" not in _symbols(objs / "ep_main.o", "defined", prefix="")  # the Arduino core has main()
    needed = _symbols(objs / "ep_main.o", "undefined")
    assert _symbols(objs / "ep_model_info.cpp.o", "defined") >= FROM_INFO  # C linkage: the names are not mangled
    board = _symbols(objs / "board.o", "defined")
    assert needed - FROM_INFO - board == FROM_BACKEND
    backend = (sketch / "ep_model_tflm.cpp").read_text()  # not compiled here: it needs TFLM's headers
    for name in FROM_BACKEND:
        assert re.search(rf"^(?:extern \"C\" )?(?:alignas\(16\) )?[\w ]+[ *]{name}(?:\[|\(| =)", backend, re.M), name


def test_tflm_project_for_the_esp32_s3_uses_its_library(tmp_path: Path) -> None:
    project = tmp_path / "pio"
    platformio_project(exported("kws_dscnn"), load_board("esp32-s3-devkitc-1"), project)
    env = _ini(project)
    assert (env["platform"], env["board"]) == ("espressif32", "esp32-s3-devkitc-1")
    assert env["lib_deps"] == "https://github.com/spaziochirale/Chirale_TensorFlowLite.git"
    assert "#include <Chirale_TensorFlowLite.h>" in (project / "src/ep_tflm_lib.h").read_text()


def test_board_without_a_tflm_library_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EdgepruneError, match="no TensorFlow Lite Micro library for nucleo-l4r5zi") as err:
        platformio_project(exported("kws_dscnn"), load_board("nucleo-l4r5zi"), tmp_path / "pio")
    assert "STM32duino" in str(err.value) and "--runtime aot" in str(err.value)
    assert not (tmp_path / "pio").exists()


def test_board_without_an_arduino_target_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EdgepruneError, match="no PlatformIO Arduino target for nucleo-h7a3zi-q"):
        platformio_project(exported("ad_autoencoder"), load_board("nucleo-h7a3zi-q"), tmp_path, runtime="aot")
    with pytest.raises(EdgepruneError, match="no PlatformIO target for nrf5340-dk"):
        platformio_project(exported("ad_autoencoder"), load_board("nrf5340-dk"), tmp_path, runtime="aot")


def test_aot_project_for_the_nucleo_builds_on_the_host(tmp_path: Path) -> None:
    files = platformio_project(exported("ad_autoencoder"), load_board("nucleo-l4r5zi"), tmp_path / "pio", runtime="aot")
    env = _ini(tmp_path / "pio")
    assert (env["board"], env["framework"], env["upload_protocol"]) == ("nucleo_l4r5zi", "arduino", "stlink")
    assert "-DEP_NO_MAIN" in env["build_flags"] and "lib_deps" not in env
    assert {f.name for f in files} >= {"model.c", "ep_main.c", "ep_kernels.c", "ep_board_arduino.cpp", "README.md"}
    assert not (tmp_path / "pio/arduino").exists()
    cc, cxx = _compilers()
    (tmp_path / "Arduino.h").write_text(ARDUINO_STUB)
    src = tmp_path / "pio/src"
    sources = (("model.c", []), ("ep_main.c", []), ("ep_kernels.c", []), ("ep_kernels_dsp.c", ["-DEP_DSP_PORTABLE"]))
    for c, flags in sources:
        subprocess.run([cc, "-Wall", "-Werror", "-DEP_NO_MAIN", *flags, "-c", str(src / c), "-o",
                        str(tmp_path / f"{c}.o")], check=True, timeout=120)  # fmt: skip
    subprocess.run([cxx, "-Wall", "-I", str(tmp_path), "-fsyntax-only",
                    str(src / "ep_board_arduino.cpp")], check=True, timeout=120)  # fmt: skip


def test_other_runtimes_sources_are_not_mixed_in(tmp_path: Path) -> None:
    platformio_project(exported("kws_dscnn"), load_board(NANO), tmp_path, runtime="aot")
    aot_only = r"ep_kernels\.c, ep_kernels\.h, ep_kernels_dsp\.c, ep_requant\.h, model\.c"
    with pytest.raises(EdgepruneError, match=f"does not write: {aot_only}"):
        platformio_project(exported("kws_dscnn"), load_board(NANO), tmp_path, runtime="tflm")


def test_every_project_is_a_valid_platformio_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("platformio", reason="platformio (dev extra) validates platformio.ini offline")
    from platformio.project.config import ProjectConfig

    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(tmp_path / "core"))
    arduino = [name for name, b in pio_boards().items() if b.arduino is None]
    projects = [(name, "aot") for name in arduino] + [
        (name, "tflm") for name in arduino if isinstance(pio_boards()[name].tflm, TflmLibrary)
    ]
    assert len(projects) == 8
    for name, runtime in projects:
        out = tmp_path / f"{name}-{runtime}"
        platformio_project(exported("kws_dscnn"), load_board(name), out, runtime=runtime)
        config = ProjectConfig(str(out / "platformio.ini"))
        assert config.validate(silent=True) and config.warnings == [], (name, runtime, config.warnings)
        env = f"env:{name}"
        assert config.get(env, "framework") == ["arduino"] and config.get(env, "monitor_speed") == 115200
        assert config.get(env, "lib_deps") == ([pio_boards()[name].tflm.lib_dep] if runtime == "tflm" else [])


def test_cli_writes_the_project_and_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["platformio", str(exported("kws_dscnn")), "--board", NANO, "--out", str(tmp_path)]
    assert main(args) == 0
    assert "pio run -t upload" in capsys.readouterr().out and (tmp_path / "src/ep_model_tflm.cpp").is_file()
    assert main(args) == 2 and "already holds a PlatformIO project" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0
    assert main([*args[:-2], "--board", "nucleo-l4r5zi", "--out", str(tmp_path / "n")]) == 2
    assert "--runtime aot" in capsys.readouterr().err


def test_flash_uploads_a_generated_project_with_platformio(tmp_path: Path, capsys, monkeypatch) -> None:
    from edgeprune.deploy.mcu.flash import FlashError, flash, flash_command

    project = tmp_path / "nano"
    platformio_project(exported("kws_dscnn"), load_board(NANO), project, runtime="tflm")
    args = ["flash", str(project), "--board", NANO, "--port", "/dev/ttyACM0", "--dry-run"]
    assert main(args) == 0
    assert f"pio run -d {project} -e {NANO} -t upload --upload-port /dev/ttyACM0" in capsys.readouterr().out
    with pytest.raises(FlashError, match=f"has no environment for esp32-s3-devkitc-1 \\(it has: {NANO}\\)"):
        flash_command(load_board("esp32-s3-devkitc-1"), project)
    with pytest.raises(FlashError, match="not a PlatformIO project"):
        flash_command(load_board(NANO), project / "src")
    monkeypatch.setenv("PATH", str(tmp_path))  # no pio on PATH
    with pytest.raises(FlashError, match=r"pio is not installed .* by PlatformIO upload") as err:
        flash(load_board(NANO), project)
    assert "pip install platformio" in str(err.value)
