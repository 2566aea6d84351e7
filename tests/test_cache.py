"""The artifact cache (edgeprune.cache): entries verified on every hit, damaged ones rebuilt, and the three real
users (onnx2tf conversion, firmware link, traced instruction mix) serving a second identical request from it."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgeprune import cache
from edgeprune.boards import load_board
from edgeprune.deploy.mcu.api import build_traced
from edgeprune.export import export

needs_toolchain = pytest.mark.skipif(
    not (shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")),
    reason="needs qemu-system-arm and arm-none-eabi-gcc (make setup)",
)


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(cache.ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_an_entry_is_verified_and_a_damaged_one_removed(own_cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    key = cache.content_key("test", b"input bytes")
    assert cache.load("kind", key) is None
    cache.store("kind", key, {"a.bin": b"\x00\x01", "b.txt": b"text"})
    assert cache.load("kind", key) == {"a.bin": b"\x00\x01", "b.txt": b"text"}
    assert not [p for p in (own_cache / "kind").iterdir() if p.name.startswith(".")]  # no leftover temp dirs

    (own_cache / "kind" / key / "a.bin").write_bytes(b"\x00\x02")  # same size, other content
    with caplog.at_level(logging.WARNING, logger="edgeprune.cache"):
        assert cache.load("kind", key) is None
    assert "damaged (a.bin)" in caplog.text and not (own_cache / "kind" / key).exists()
    cache.store("kind", key, {"a.bin": b"\x00\x01"})  # the rebuild replaces it
    (own_cache / "kind" / key / cache.MANIFEST).write_text("{not json")
    assert cache.load("kind", key) is None and not (own_cache / "kind" / key).exists()


def test_keys_separate_their_parts_and_the_cache_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cache.content_key("ab", "c") != cache.content_key("a", "bc")
    assert cache.content_key("ab", "c") == cache.content_key(b"ab", b"c")
    monkeypatch.setenv(cache.ENV, "off")
    assert cache.cache_root() is None
    cache.store("kind", "k", {"a": b"1"})
    assert cache.load("kind", "k") is None
    monkeypatch.delenv(cache.ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere")
    assert cache.cache_root() == Path("/somewhere/edgeprune")


def _export(out: Path) -> str:
    """A small MLP exported to ONNX + TFLM; returns the TFLite step's onnx2tf log."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()
    calib = np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)
    result = export(model, (torch.randn(1, 8),), out, targets=("onnx", "tflm"), calibration=calib, force=True)
    assert result.passed and result.tflite is not None
    return result.tflite.log


@pytest.fixture(scope="module")
def two_exports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, str, str, Path]]:
    """The same model exported twice into one fresh cache: (first, second, their logs, the cache)."""
    root = tmp_path_factory.mktemp("cached")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(cache.ENV, str(root / "cache"))
        first, second = root / "first", root / "second"
        logs = _export(first), _export(second)
        yield first, second, *logs, root / "cache"


@pytest.mark.slow
def test_the_same_conversion_is_served_from_the_cache(two_exports: tuple[Path, Path, str, str, Path]) -> None:
    first, second, log1, log2, root = two_exports
    assert not log1.startswith("edgeprune:") and log2.startswith("edgeprune: onnx2tf's output for these inputs")
    assert len(list((root / "onnx2tf").iterdir())) == 1
    for name in ("tflite/model_int8.tflite", "tflite/model_float32.tflite", "tflm/model.tflite"):
        assert (first / name).read_bytes() == (second / name).read_bytes()


@pytest.mark.slow
@needs_toolchain
def test_firmware_and_its_trace_are_served_from_the_cache_and_rebuilt_when_damaged(
    two_exports: tuple[Path, Path, str, str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, _, _, _, root = two_exports
    monkeypatch.setenv(cache.ENV, str(root))
    board = load_board("nucleo-l4r5zi")
    with caplog.at_level(logging.DEBUG, logger="edgeprune.cache"):
        _, fw1 = build_traced(first, board, tmp_path / "a")
        assert "cache hit" not in caplog.text
        _, fw2 = build_traced(first, board, tmp_path / "b")
    hits = [r.message for r in caplog.records if "cache hit" in r.message]
    assert sum("/firmware/" in m for m in hits) == 2 and sum("/trace/" in m for m in hits) == 1  # 2 links, 1 trace
    assert fw1.elf.read_bytes() == fw2.elf.read_bytes() and fw1.layer_mixes == fw2.layer_mixes
    assert (tmp_path / "b" / "model.c").is_file()  # the build directory is complete on a hit too

    for entry in (root / "firmware").iterdir():  # damage every cached image: each is linked again
        (entry / "firmware.elf").write_bytes(b"not an ELF")
    for entry in (root / "trace").iterdir():
        mixes = json.loads((entry / "mixes.json").read_text())
        mixes[0]["taken"] += 1
        (entry / "mixes.json").write_text(json.dumps(mixes))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="edgeprune.cache"):
        _, fw3 = build_traced(first, board, tmp_path / "c")
    assert caplog.text.count("is damaged") == 3
    assert fw3.elf.read_bytes() == fw1.elf.read_bytes() and len(fw3.layer_mixes) == len(fw1.layer_mixes)
    assert all(cache.load(kind, e.name) for kind in ("firmware", "trace") for e in (root / kind).iterdir())
