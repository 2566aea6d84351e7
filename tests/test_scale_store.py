"""The on-disk export store of sweeps (edgeprune/scale/store.py): a real int8 export (ONNX, .tflite, the TFLM
bundle's generated C) stored, verified and unpacked whole; damaged or stale entries reported and replaced; the
first of two writers wins. Races between Ray tasks are in test_scale.py (they need Ray)."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest
import torch

from edgeprune.errors import EdgepruneError
from edgeprune.scale.cache import PackedExport, converter_versions
from edgeprune.scale.store import ENTRY_NAME, ExportStore

KEY = "ab" * 32


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory: pytest.TempPathFactory):
    """The smallest bundled model exported to ONNX and a full-int8 TFLM bundle (one onnx2tf run, ~10 CPU-s)."""
    from edgeprune.export import export
    from edgeprune.models import create_model

    torch.manual_seed(0)
    model = create_model("simple").eval()
    inputs = model.example_inputs(1)
    calib = [tuple(t.numpy() for t in model.example_inputs(1)) for _ in range(8)]
    out = tmp_path_factory.mktemp("export") / "out"
    result = export(model, inputs, out, targets=("onnx", "tflm"), calibration=calib, int8=True, force=True)
    return model, inputs, calib, result


def _small(note: str = "") -> PackedExport:
    """A stored export needs no conversion to test the store itself: a result JSON and two files."""
    files = {"files/model.onnx": b"onnx" * 1000, "files/tflm/model_data.cc": f"// {note}\n".encode()}
    return PackedExport(KEY, {"notes": [note]}, files, converter_versions())


def test_an_int8_export_is_stored_verified_and_unpacked_whole(int8_export, tmp_path: Path) -> None:
    from edgeprune.boards import load_board
    from edgeprune.boards.runner import CostModelRunner
    from edgeprune.measure.runner import Subject

    model, inputs, calib, result = int8_export
    store = ExportStore(tmp_path / "exports")
    assert store.get(KEY) is None
    store.put(PackedExport.pack(KEY, result))
    loaded = store.get(KEY)
    assert loaded is not None
    entry = json.loads((tmp_path / "exports" / KEY / ENTRY_NAME).read_text())
    assert "files/tflm/model_data.cc" in entry["files"] and "files/tflite/model_int8.tflite" in entry["files"]
    assert not [n for n in entry["files"] if n.startswith("blobs/")]  # every byte string is one of the export's files

    back = loaded.unpack(tmp_path / "unpacked")
    assert back.out_dir == tmp_path / "unpacked"
    assert dataclasses.replace(back, out_dir=result.out_dir) == result  # the ONNX model, bytes, reports, layouts
    for artifact in result.artifacts:
        assert (back.out_dir / artifact.path).read_bytes() == (result.out_dir / artifact.path).read_bytes()

    def measured(export) -> dict:
        runner = CostModelRunner(load_board("nucleo-l4r5zi"), calib)
        made = (frozenset({"onnx", "tflm"}), runner.calibration)
        subject = Subject("m", model, inputs, tmp_path / "m", _export=export, _made=made)
        return runner.measure(subject).to_dict()

    assert measured(back) == measured(result)


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def _edit(entry: Path, change, *, rehash: bool = False) -> None:
    """``change`` applied to the entry's JSON, its sha256 updated to match when ``rehash``."""
    from edgeprune.scale.store import _digest

    meta = json.loads((entry / ENTRY_NAME).read_text())
    meta.pop("sha256")
    change(meta)
    (entry / ENTRY_NAME).write_text(json.dumps({**meta, "sha256": _digest(meta) if rehash else "0" * 64}))


def _stale(entry: Path) -> None:
    """Converted by another onnx2tf (an intact entry, but not this machine's conversion)."""
    _edit(entry, lambda meta: meta["versions"].update(onnx2tf="0.0.1"), rehash=True)


DAMAGE = {
    "a flipped bit in a file": lambda e: _flip(e / "files" / "model.onnx"),
    "a missing file": lambda e: (e / "files" / "tflm" / "model_data.cc").unlink(),
    "an edited entry.json": lambda e: _edit(e, lambda meta: meta["result"].update(notes=["x"])),
    "a truncated entry.json": lambda e: (e / ENTRY_NAME).write_text((e / ENTRY_NAME).read_text()[:40]),
    "other converter versions": _stale,
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_or_stale_entry_is_reported_and_replaced_never_used(
    damage: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ExportStore(tmp_path)
    store.put(_small())
    DAMAGE[damage](tmp_path / KEY)
    with caplog.at_level(logging.DEBUG, logger="edgeprune.scale.store"):
        assert store.get(KEY) is None
    assert "converted again" in caplog.text
    assert store.put(_small()) == _small() == store.get(KEY)  # the damaged entry replaced
    assert [p.name for p in tmp_path.iterdir()] == [KEY]  # no temporary or discarded directory left


def test_the_first_writer_wins_and_the_second_gets_its_entry(tmp_path: Path) -> None:
    store = ExportStore(tmp_path)
    first, second = _small("first"), _small("second")
    assert store.put(first) == first
    assert store.put(second) == first  # an intact entry is never overwritten
    assert store.get(KEY) == first and [p.name for p in tmp_path.iterdir()] == [KEY]


def test_a_key_that_is_not_a_content_hash_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EdgepruneError, match="not a content hash"):
        ExportStore(tmp_path).get("../../etc")
    with pytest.raises(ValueError, match="not a relative path"):
        ExportStore(tmp_path).put(PackedExport(KEY, {}, {"files/../x": b""}, converter_versions()))
