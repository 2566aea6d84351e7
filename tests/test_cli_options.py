"""The CLI's shared option groups build the objects (no option is dropped on the way), and the bare command needs
only the base dependencies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from loopback_sshd import Loopback

from edgeprune import __version__
from edgeprune.cli import main, parser
from edgeprune.cli.common import ssh_target

OPTIONAL = ("onnx", "onnxruntime", "tensorflow", "onnx2tf", "tflite_micro", "serial", "matplotlib", "gymnasium",
            "ai_edge_litert", "tflite_runtime", "tensorrt", "onnxscript")  # fmt: skip

BLOCKED_RUN = """
import importlib.abc, sys
BLOCK = set(sys.argv[1].split(","))
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCK:
            raise ImportError(f"{name} is blocked: the bare CLI must not need it")
sys.meta_path.insert(0, Blocker())
from edgeprune.cli import main
sys.argv = ["edgeprune", *sys.argv[2:]]
try:
    main()
except SystemExit as exc:
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCK)
    print("LOADED", loaded)
    raise
"""


def _blocked(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCKED_RUN, ",".join(OPTIONAL), *argv], capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip


def test_help_and_version_need_only_the_base_dependencies() -> None:
    helped = _blocked("--help")
    assert helped.returncode == 0, helped.stderr[-2000:]
    assert "usage: edgeprune" in helped.stdout and "LOADED []" in helped.stdout
    for command in ("compare", "optimize", "bench"):
        sub = _blocked(command, "--help")
        assert sub.returncode == 0 and f"usage: edgeprune {command}" in sub.stdout, sub.stderr[-2000:]
    version = _blocked("--version")
    assert version.returncode == 0 and version.stdout.startswith(f"edgeprune {__version__}")


def test_every_command_with_host_builds_its_board_with_the_remote_dir() -> None:
    ssh = ["--board", "raspberry-pi-5", "--host", "pi@pi", "--remote-dir", "work/D", "--python", "/opt/py"]
    for argv in (["bench", "simple", *ssh, "--out", "o"], ["compare", "simple", "--plan", "p.json", *ssh, "--out", "o"],
                 ["optimize", "simple", "--eval", "fidelity", "--latency-ms", "1", *ssh, "--out", "o"]):  # fmt: skip
        args = parser().parse_args(argv)
        target = ssh_target(args, args.board)
        assert (target.remote_dir, target.python, target.host) == ("work/D", "/opt/py", "pi@pi"), argv[0]


def test_bench_over_ssh_runs_in_the_remote_dir(loopback_sshd: Loopback, tmp_path: Path) -> None:
    """`bench --host ... --remote-dir D` once ignored D; the board-side runner must land in D."""
    lo = loopback_sshd
    argv = ["bench", "simple", "--board", "raspberry-pi-5", "--host", f"{lo.host}:{lo.port}", "--key",
            str(lo.user_key), "--known-hosts", str(lo.known_hosts), "--python", sys.executable,
            "--remote-dir", str(tmp_path / "board-home"), "--runtimes", "onnxruntime", "--runs", "3",
            "--warmup", "1", "--out", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 0
    assert (tmp_path / "board-home" / "deploy" / "runner.py").is_file()
    assert (tmp_path / "out" / "measurements.json").is_file()
