"""A Linux board over SSH as a runner (Jetson, Raspberry Pi)."""

from __future__ import annotations

from edgeprune.deploy.ssh.bench import bench_remote
from edgeprune.deploy.ssh.remote import RUNTIMES
from edgeprune.deploy.ssh.transport import SSHTarget
from edgeprune.errors import EdgepruneError
from edgeprune.measure.record import Measurement
from edgeprune.measure.runner import Runner, Subject, loads_note

LOADS = {"tensorrt": "TensorRT engine", "pytorch-eager": "torch.export program", "onnxruntime": "ONNX file"}


class SshBoardRunner(Runner):
    """Each measurement bundles the subject (its ONNX export handed on, not made again), copies what changed
    (sha256 sync) and times it on the board with one ``runtime`` (``onnxruntime``; ``tensorrt`` on a Jetson;
    ``pytorch-eager``) through the self-contained board-side runner.

    Latency is **measured** on the board (median of ``runs``); per component from ONNX Runtime's node profile
    (TensorRT's layer profile, eager hooks) mapped through the ONNX metadata. ``memory.flash_bytes`` is the size
    of the model file the runtime loads; there is no tensor arena to measure.
    """

    LABEL = "candidate"  # one bundle on the board, replaced file by file as the loop moves on

    def __init__(
        self,
        ssh: SSHTarget,
        runtime: str = "onnxruntime",
        *,
        runs: int = 50,
        warmup: int = 10,
        threads: int | None = None,
        tensorrt_precision: str = "fp16",
        trtexec: str | None = None,
    ):
        if runtime not in RUNTIMES:
            raise EdgepruneError(f"unknown runtime {runtime!r} for an SSH board", expected=f"one of {RUNTIMES}")
        self.ssh = ssh
        self.runtime = runtime
        self.options = dict(runs=runs, warmup=warmup, threads=threads, tensorrt_precision=tensorrt_precision,
                            trtexec=trtexec)  # fmt: skip
        self.name = f"{ssh.board.name if ssh.board else 'Linux board'} at {ssh.host} ({runtime})"

    def measure(self, subject: Subject) -> Measurement:
        onnx = subject.export("onnx").out_dir / "model.onnx"
        bench = bench_remote(self.ssh, {self.LABEL: (subject.model, subject.inputs)}, subject.workdir,
                             runtimes=(self.runtime,), onnx_paths={self.LABEL: onnx}, **self.options)  # fmt: skip
        (m,) = bench.measurements
        if m.latency is None:
            raise EdgepruneError(f"{m.runtime} returned no latency", fix="its notes say: " + "; ".join(m.notes))
        m.notes.insert(0, loads_note(LOADS[self.runtime], "on a Linux board"))
        if not m.components:
            m.notes.append(f"no per-component times from {m.runtime}: latency not attributed")
        m.notes.append(f"copied {bench.sync.bytes_copied:,} B to the board")
        return m
