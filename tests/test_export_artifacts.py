"""Atomic artifact writing, the output manifest, overwrite refusal, calibration sample loading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeprune.export.artifacts import MANIFEST_NAME, Staging, check_writable, sha256_bytes, write_atomic
from edgeprune.export.errors import ExportError
from edgeprune.export.samples import load_calibration, require_calibration

INPUTS = {"obs": (1, 8), "act": (1, 4)}


def test_write_atomic_leaves_no_temp_files(tmp_path: Path) -> None:
    write_atomic(tmp_path / "a.bin", b"123")
    write_atomic(tmp_path / "a.bin", "456")
    assert (tmp_path / "a.bin").read_text() == "456"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_staging_commit_writes_manifest_with_hashes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with Staging(out) as st:
        st.add("model.onnx", "onnx", b"abc")
        st.add("tflm/model_data.cc", "tflm-source", "int x;")
        arts = st.commit({"tool": "test"})
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["tool"] == "test"
    assert {a["path"]: a["sha256"] for a in manifest["artifacts"]}["model.onnx"] == sha256_bytes(b"abc")
    assert [a.path for a in arts] == ["model.onnx", "tflm/model_data.cc"]
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME, "model.onnx", "tflm"]  # staging removed


def test_commit_removes_files_only_the_old_manifest_listed(tmp_path: Path) -> None:
    with Staging(tmp_path) as st:
        st.add("tflm/model_data.cc", "tflm", "old")
        st.commit()
    (tmp_path / "notes.txt").write_text("mine")
    with Staging(tmp_path) as st:
        st.add("model.onnx", "onnx", b"new")
        st.commit()
    assert not (tmp_path / "tflm").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_failed_run_leaves_nothing_behind(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), Staging(out) as st:
        st.add("model.onnx", "onnx", b"abc")
        raise RuntimeError("step failed")
    assert list(out.iterdir()) == []


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_NAME).write_text("{}")
    with pytest.raises(ExportError, match="force=True"):
        check_writable(tmp_path, ["model.onnx"], force=False)
    check_writable(tmp_path, ["model.onnx"], force=True)


def test_calibration_from_npz_file_and_iterables(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    obs, act = rng.standard_normal((5, 8)), rng.standard_normal((5, 4))
    np.savez(tmp_path / "c.npz", obs=obs, act=act)
    data = load_calibration(tmp_path / "c.npz", INPUTS)
    assert data["obs"].shape == (5, 8) and data["act"].dtype == np.float32
    pairs = [(torch.from_numpy(o[None]), a) for o, a in zip(obs, act, strict=True)]
    assert np.allclose(load_calibration(pairs, INPUTS)["obs"], obs)
    dicts = [{"obs": o, "act": a} for o, a in zip(obs, act, strict=True)]
    assert load_calibration(dicts, INPUTS)["act"].shape == (5, 4)


def test_calibration_errors_are_clear(tmp_path: Path) -> None:
    np.save(tmp_path / "one.npy", np.zeros((4, 8)))
    with pytest.raises(ExportError, match="model has 2 inputs"):
        load_calibration(tmp_path / "one.npy", INPUTS)
    with pytest.raises(ExportError, match=r"expected: samples of shape \(3, 16, 16\)"):
        load_calibration(np.zeros((4, 16, 16, 3)), {"x": (1, 3, 16, 16)})
    with pytest.raises(ExportError, match="no samples for input"):
        load_calibration({"obs": np.zeros((4, 8))}, INPUTS)
    with pytest.raises(ExportError, match="never calibrated on random noise"):
        require_calibration(None, "int8 TFLite")


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlinked-folder"])
def test_force_never_touches_files_outside_the_output_directory(tmp_path: Path, how: str) -> None:
    victim_dir = tmp_path / "victim"
    victim_dir.mkdir()
    victim = victim_dir / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    if how == "absolute":
        listed_path = str(victim)
    elif how == "dotdot":
        listed_path = "../victim/victim.txt"
    else:
        (out / "link").symlink_to(victim_dir)
        listed_path = "link/victim.txt"
    manifest = {"artifacts": [{"path": listed_path, "kind": "onnx", "size": 7, "sha256": "0" * 64}]}
    (out / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ExportError, match="outside") as err:
        check_writable(out, ["model.onnx"], force=True)
    assert "nothing was deleted" in str(err.value)
    with pytest.raises(ExportError, match="outside"), Staging(out) as st:
        st.add("model.onnx", "onnx", b"new")
        st.commit()
    assert victim.read_text() == "keep me"
    assert not (out / "model.onnx").exists()  # refused before anything moved in


def test_artifacts_are_never_written_through_a_symlinked_folder(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "tflm").symlink_to(elsewhere)
    with pytest.raises(ExportError, match="outside"), Staging(out) as st:
        st.add("tflm/model_data.cc", "tflm-source", "int x;")
        st.commit()
    assert list(elsewhere.iterdir()) == []


def test_a_symlinked_stale_artifact_is_unlinked_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "target.txt"
    target.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.onnx").symlink_to(target)
    manifest = {"artifacts": [{"path": "old.onnx", "kind": "onnx", "size": 7, "sha256": "0" * 64}]}
    (out / MANIFEST_NAME).write_text(json.dumps(manifest))
    with Staging(out) as st:
        st.add("model.onnx", "onnx", b"new")
        st.commit()
    assert not (out / "old.onnx").is_symlink() and target.read_text() == "keep me"


def test_export_force_cli_refuses_a_manifest_listing_an_outside_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgeprune.cli import main

    victim = tmp_path / "victim" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text("keep me")
    out = tmp_path / "handed-over"
    out.mkdir()
    (out / MANIFEST_NAME).write_text(json.dumps({"artifacts": [{"path": str(victim)}]}))
    assert main(["export", "tdmpc", "--to", "onnx", "--force", "--out", str(out)]) != 0
    assert "outside" in capsys.readouterr().err
    assert victim.read_text() == "keep me" and not list(out.glob(".staging-*"))
