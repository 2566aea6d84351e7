"""The loopback "board": bundle, copy, remote run (ONNX Runtime + eager) of TD-MPC original and pruned, results back.

The remote side is a real OpenSSH server on 127.0.0.1 (tests/loopback_sshd.py); the runner is the copied,
self-contained ``runner.py`` run by the board's Python, exactly the path a Jetson without edgeprune takes.
"""

from __future__ import annotations

import ast
import json
import os
import sys
from pathlib import Path

import pytest
import torch
from loopback_sshd import Loopback
from rich.console import Console

from edgeprune.boards import load_board
from edgeprune.deploy.ssh import remote
from edgeprune.deploy.ssh.bench import bench_remote
from edgeprune.deploy.ssh.bundle import prepare_bundle
from edgeprune.deploy.ssh.errors import RemoteEnvironmentError
from edgeprune.deploy.ssh.transport import SSHTarget
from edgeprune.errors import EdgepruneError
from edgeprune.measure.record import Measurement
from edgeprune.models import create_model
from edgeprune.profiling.ort import OnnxRuntimeProfiler
from edgeprune.prune import Budget, prune

COMPONENTS = {"encoder", "dynamics", "reward", "policy", "qs"}


@pytest.fixture(scope="module")
def tdmpc_pair() -> dict[str, tuple[torch.nn.Module, tuple[torch.Tensor, ...]]]:
    torch.manual_seed(0)
    model = create_model("tdmpc").eval()
    inputs = model.example_inputs()
    pruned = prune(model, inputs, Budget(default=0.5)).model.eval()
    return {"original": (model, inputs), "pruned": (pruned, inputs)}


def board(lo: Loopback, tmp: Path, **kw: object) -> SSHTarget:
    base = dict(
        host=lo.host, board=load_board("jetson-orin-nano"), port=lo.port, key=lo.user_key,
        known_hosts=lo.known_hosts, python=sys.executable, remote_dir=str(tmp / "board-home" / "edgeprune"),
        connect_timeout=5,
    )  # fmt: skip
    return SSHTarget(**{**base, **kw})


@pytest.fixture(scope="module")
def board_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("loopback-board")


def test_loopback_round_trip_and_second_run_copies_nothing(
    loopback_sshd: Loopback, tdmpc_pair: dict, board_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = board(loopback_sshd, board_dir)
    work = board_dir / "host-work"
    kw = dict(runtimes=("onnxruntime", "pytorch-eager"), runs=30, warmup=5, threads=1)
    first = bench_remote(target, tdmpc_pair, work, **kw)
    got = {(m.model, m.runtime): m for m in first.measurements}
    assert set(got) == {(b, r) for b in ("original", "pruned") for r in ("onnxruntime", "pytorch-eager")}
    for m in first.measurements:
        assert m.provenance.kind == "measured" and "127.0.0.1" in m.provenance.where
        assert m.latency is not None and m.latency.runs == 30 and m.latency.median_ms > 0
        assert m.environment["nvpmodel"].startswith("unavailable") and "python" in m.environment
        assert any("no L4T" in n for n in m.notes)  # a Jetson profile on a non-Jetson machine is called out
        assert Measurement.from_dict(m.to_dict()).latency == m.latency
    ort = got[("original", "onnxruntime")]
    assert set(ort.components) >= COMPONENTS  # ORT node profile on the board, mapped through the ONNX metadata
    assert set(got[("original", "pytorch-eager")].components) == COMPONENTS  # hooks on the unflattened program
    assert got[("pruned", "pytorch-eager")].params < got[("original", "pytorch-eager")].params
    assert "torch.export" in got[("original", "pytorch-eager")].provenance.how
    assert sorted(first.sync.copied)[:2] == ["bundles/original/bundle.json", "bundles/original/inputs/0.npy"]
    assert first.sync.bytes_copied == first.sync.bytes_total > 0

    # A fresh work dir re-exports both models from scratch: the bytes are identical, so nothing is copied;
    # and with no runtimes named the board uses what it has.
    second = bench_remote(target, tdmpc_pair, board_dir / "host-work-2", runs=5, warmup=1, threads=1)
    assert second.sync.copied == [] and second.sync.bytes_copied == 0 and second.sync.unchanged
    assert {(m.model, m.runtime) for m in second.measurements} == set(got)
    assert second.unavailable == ["tensorrt"]

    Console(width=150).print(first.table())
    for m in first.measurements:
        print(f"{m.model:9s} {m.runtime:14s} median {m.latency.median_ms:.4f} ms  p90 {m.latency.p90_ms:.4f} ms")
    print(f"sync: first run {first.sync.bytes_copied:,} B in {len(first.sync.copied)} files, "
          f"second run {second.sync.bytes_copied:,} B ({len(second.sync.unchanged)} unchanged)")  # fmt: skip
    with capsys.disabled():
        print("\n" + capsys.readouterr().out)


def test_explicit_runtime_the_board_lacks_is_an_error(
    loopback_sshd: Loopback, tdmpc_pair: dict, board_dir: Path
) -> None:
    with pytest.raises(RemoteEnvironmentError, match="no tensorrt") as err:
        bench_remote(board(loopback_sshd, board_dir), {"original": tdmpc_pair["original"]}, board_dir / "host-work",
                     runtimes=("tensorrt",), runs=5, warmup=1)  # fmt: skip
    assert "trtexec" in str(err.value)


def test_board_python_without_numpy_is_named(loopback_sshd: Loopback, tdmpc_pair: dict, board_dir: Path) -> None:
    bare = board_dir / "bare-python3"  # this Python without site-packages: a board interpreter lacking numpy
    bare.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    bare.chmod(0o755)
    target = board(loopback_sshd, board_dir, python=str(bare))
    with pytest.raises(RemoteEnvironmentError, match=r"numpy is not installed for .*bare-python3") as err:
        bench_remote(target, {"original": tdmpc_pair["original"]}, board_dir / "host-work", runs=5, warmup=1)
    assert "pip install numpy" in str(err.value)


REPLAY_TRTEXEC = """#!{python}
# Stand-in for trtexec on a machine without a GPU: replays real trtexec output (tests/data/trtexec) and logs argv.
import pathlib, sys
data = pathlib.Path({data!r})
with open({calls!r}, "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
if "--help" in sys.argv:
    print("&&&& RUNNING TensorRT.trtexec [TensorRT v101600] [b72] # trtexec --help")
    sys.exit(0)
if "saveEngine" in args:
    pathlib.Path(args["saveEngine"]).write_bytes(b"engine bytes")
pathlib.Path(args["exportProfile"]).write_text((data / "trt10_alexnet_rtx3060_exportProfile.json").read_text())
pathlib.Path(args["exportTimes"]).write_text((data / "trt10_alexnet_rtx3060_exportTimes_head.json").read_text())
print((data / "trt10.16_summary_excerpt.log").read_text())
"""


def test_tensorrt_path_with_a_replaying_trtexec(loopback_sshd: Loopback, tdmpc_pair: dict, board_dir: Path) -> None:
    """The TensorRT plumbing end to end (build, timing cache, engine reuse, parse, Measurement) without a GPU:
    a stand-in trtexec replays real TensorRT 10.16 output, so the numbers are that log's, not TD-MPC's."""
    calls = board_dir / "trtexec-calls.txt"
    fake = board_dir / "fake-trtexec"
    fake.write_text(REPLAY_TRTEXEC.format(python=sys.executable, data=str(Path(__file__).parent / "data" / "trtexec"),
                                          calls=str(calls)))  # fmt: skip
    fake.chmod(0o755)
    target = board(loopback_sshd, board_dir)
    kw = dict(runtimes=("tensorrt",), runs=5, warmup=1, trtexec=str(fake))
    first = bench_remote(target, {"original": tdmpc_pair["original"]}, board_dir / "host-work", **kw)
    (m,) = first.measurements
    assert m.runtime == "tensorrt" and m.environment["tensorrt"] == "10.16.0"
    assert m.latency.runs == 5 and m.latency.median_ms == 0.498535  # from --exportTimes
    assert m.metrics["gpu_compute_median_ms"] == 0.498535 and m.metrics["throughput_qps"] == 18392
    assert set(m.components) == {"(unattributed)"}  # alexnet's layer names are not TD-MPC nodes
    assert any("engine built on the board" in n for n in m.notes)
    again = bench_remote(target, {"original": tdmpc_pair["original"]}, board_dir / "host-work", **kw)
    assert any("cached engine reused" in n for n in again.measurements[0].notes)
    build, _, reuse = calls.read_text().splitlines()[-3:]  # build, --help (version probe), reuse
    assert "--saveEngine=" in build and "--timingCacheFile=cache/tensorrt/timing-trt10.16.0.cache" in build
    assert "--fp16" in build and "--loadEngine=" in reuse and "--onnx=" not in reuse


def test_unchanged_bundle_is_not_rebuilt(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("simple").eval()
    inputs = model.example_inputs()
    bundle = prepare_bundle(model, inputs, tmp_path / "b")
    before = {p: p.stat().st_mtime_ns for p in bundle.rglob("*") if p.is_file()}
    prepare_bundle(model, inputs, bundle)  # same fingerprint: nothing rewritten
    assert {p: p.stat().st_mtime_ns for p in bundle.rglob("*") if p.is_file()} == before
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    prepare_bundle(model, inputs, bundle)  # changed weights: rebuilt
    assert (bundle / "model.pt2").stat().st_mtime_ns != before[bundle / "model.pt2"]
    # the host's ORT profiler reads node profiles with the runner's function: same attribution on both sides
    host = OnnxRuntimeProfiler(bundle / "model.onnx").measure("simple", [x.numpy() for x in inputs], runs=5, warmup=1)
    assert {n for n, _ in model.named_children()} <= set(host.components)


def test_bundle_without_the_program_for_onnx_runtime_only(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("simple").eval()
    inputs = model.example_inputs()
    bundle = prepare_bundle(model, inputs, tmp_path / "b", program=False)  # no torch.export: ORT/TensorRT only
    assert not (bundle / "model.pt2").exists() and "program" not in json.loads((bundle / "bundle.json").read_text())
    mtime = (bundle / "bundle.json").stat().st_mtime_ns
    assert prepare_bundle(model, inputs, bundle, program=False) and (bundle / "bundle.json").stat().st_mtime_ns == mtime
    prepare_bundle(model, inputs, bundle)  # asked for the program now: rebuilt with it
    assert (bundle / "model.pt2").is_file() and json.loads((bundle / "bundle.json").read_text())["program"]


def test_unknown_runtime_is_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(EdgepruneError, match="unknown runtime"):
        bench_remote(SSHTarget("me@board"), {}, tmp_path, runtimes=("tflm",))
    with pytest.raises(EdgepruneError, match="cannot name a directory"):
        bench_remote(SSHTarget("me@board"), {"../x": (torch.nn.Linear(1, 1), torch.zeros(1, 1))}, tmp_path)


def test_runner_is_self_contained() -> None:
    """What is copied to the board imports only the standard library at module level (numpy and runtimes lazily)."""
    tree = ast.parse(Path(remote.__file__).read_text())
    top = {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    top |= {n.module.split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom) and n.module}
    assert top <= set(sys.stdlib_module_names) | {"__future__"}, top
    every = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "edgeprune" not in every


@pytest.mark.gpu
def test_tensorrt_engine_built_and_timed_on_a_real_board(tdmpc_pair: dict, tmp_path: Path) -> None:
    """TensorRT through trtexec on a real Jetson: EDGEPRUNE_TEST_JETSON=user@host [_KEY, _PYTHON, _BOARD]."""
    host = os.environ.get("EDGEPRUNE_TEST_JETSON")
    if not host:
        pytest.skip("no GPU/TensorRT here: set EDGEPRUNE_TEST_JETSON=user@host (a Jetson with JetPack) to run this")
    key = os.environ.get("EDGEPRUNE_TEST_JETSON_KEY")
    target = SSHTarget(
        host, board=load_board(os.environ.get("EDGEPRUNE_TEST_JETSON_BOARD", "jetson-orin-nano")),
        key=Path(key) if key else None, python=os.environ.get("EDGEPRUNE_TEST_JETSON_PYTHON", "python3"),
    )  # fmt: skip
    first = bench_remote(target, tdmpc_pair, tmp_path, runtimes=("tensorrt",), runs=200)
    for m in first.measurements:
        assert m.runtime == "tensorrt" and m.latency.median_ms > 0 and m.metrics["gpu_compute_median_ms"] > 0
        assert COMPONENTS & set("+".join(m.components).split("+"))
        assert m.environment["tensorrt"] and not m.environment["l4t"].startswith("unavailable")
    again = bench_remote(target, tdmpc_pair, tmp_path, runtimes=("tensorrt",), runs=50)
    assert again.sync.copied == [] and all(any("cached engine" in n for n in m.notes) for m in again.measurements)


def test_cli_bench_over_ssh_original_and_pruned(loopback_sshd, tmp_path: Path, capsys) -> None:
    """`edgeprune bench --board raspberry-pi-5 --host ...` against the loopback OpenSSH "board"."""
    from edgeprune.cli import main

    assert main(["prune", "simple", "--budget", "0.5", "--out", str(tmp_path / "p")]) == 0
    args = ["bench", "simple", "--plan", str(tmp_path / "p/plan.json"), "--board", "raspberry-pi-5",
            "--host", f"{loopback_sshd.host}:{loopback_sshd.port}", "--key", str(loopback_sshd.user_key),
            "--known-hosts", str(loopback_sshd.known_hosts), "--python", sys.executable,
            "--remote-dir", str(tmp_path / "board-home"),
            "--runtimes", "onnxruntime", "--runs", "5",
            "--out", str(tmp_path / "b")]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "original" in out and "pruned" in out
    data = json.loads((tmp_path / "b" / "measurements.json").read_text())
    assert {m["model"] for m in data} == {"original", "pruned"}
    compare = ["compare", *args[1:]]  # `compare --host` times both on the board too
    compare[compare.index(str(tmp_path / "b"))] = str(tmp_path / "c")
    assert main(compare) == 0
    timed = json.loads((tmp_path / "c" / "measurements.json").read_text())
    assert {m["model"] for m in timed} == {"original", "pruned"}
    assert main(["bench", "simple", "--board", "nucleo-l4r5zi", "--host", "me@x", "--out", str(tmp_path / "c")]) == 2
    assert "runs a TFLite Micro bundle" in capsys.readouterr().err  # an MCU board benches an export
