"""SIGTERM / SIGINT on the command line end child processes (onnx2tf, QEMU) and remove staging folders,
without a traceback; a full disk is a clear error after which the same command simply runs again."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgeprune.cli", *args], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)  # fmt: skip


def _children(pid: int) -> dict[int, str]:
    """Descendants of ``pid`` (from /proc) with their command lines."""
    found: dict[int, str] = {}
    parents = {pid}
    for _ in range(4):
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, IndexError, ValueError):
                continue
            if ppid in parents and int(entry.name) not in found:
                found[int(entry.name)] = cmd
        parents |= set(found)
    return found


def _wait_for_child(proc: subprocess.Popen, word: str, timeout: float = 240) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        for pid, cmd in _children(proc.pid).items():
            if word in cmd:
                return pid
        time.sleep(0.2)
    raise AssertionError(f"no {word} child process within {timeout} s")


def _gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":  # exited, waiting to be reaped by init
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_export_ends_onnx2tf_and_removes_staging(tmp_path: Path, sig: signal.Signals) -> None:
    out = tmp_path / "out"
    proc = _cli("export", "simple", "--to", "onnx,tflite", "--no-int8", "--out", str(out))
    child = _wait_for_child(proc, "onnx2tf")
    proc.send_signal(sig)
    text, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, text
    assert "Traceback" not in text and "interrupted" in text
    assert _gone(child), "onnx2tf outlived the export"
    assert not list(out.glob(".staging-*")) and not (out / "manifest.json").exists()


@pytest.mark.skipif(not shutil.which("qemu-system-arm"), reason="needs qemu-system-arm (make setup)")
def test_sigterm_on_emulate_stops_qemu(tmp_path: Path) -> None:
    from deploy_exports import exported

    proc = _cli("emulate", "--board", "nucleo-l4r5zi", str(exported("ad_autoencoder")))
    qemu = _wait_for_child(proc, "qemu-system-arm")
    deadline = time.monotonic() + 120
    while proc.stdout and "UART at" not in proc.stdout.readline() and time.monotonic() < deadline:
        pass
    proc.send_signal(signal.SIGTERM)
    text, _ = proc.communicate(timeout=60)
    assert "Traceback" not in text
    assert _gone(qemu), "QEMU outlived edgeprune emulate"


_LIBRARY_CALLER = """
import sys, time
from edgeprune.deploy.mcu import emulate
with emulate("nucleo-l4r5zi", sys.argv[1], sys.argv[2]) as emu:
    print("UART at", emu.port, flush=True)
    time.sleep(120)
"""


@pytest.mark.skipif(not shutil.which("qemu-system-arm"), reason="needs qemu-system-arm (make setup)")
def test_sigterm_on_a_library_caller_does_not_orphan_qemu(tmp_path: Path) -> None:
    """A program using the library (no CLI signal handler: Python's default SIGTERM runs no clean-up)."""
    from deploy_exports import exported

    proc = subprocess.Popen([sys.executable, "-c", _LIBRARY_CALLER, str(exported("ad_autoencoder")), str(tmp_path)],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    qemu = _wait_for_child(proc, "qemu-system-arm")
    deadline = time.monotonic() + 120
    while proc.stdout and "UART at" not in proc.stdout.readline() and time.monotonic() < deadline:
        pass
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM
    assert _gone(qemu), "QEMU outlived the program that started it"


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))  # pruned.pt is larger: EFBIG, as on a full disk
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def test_a_full_disk_during_prune_is_a_clear_error_and_the_rerun_is_not_refused(tmp_path: Path) -> None:
    args = ["prune", "tdmpc", "--budget", "0.5", "--out", str(tmp_path / "out")]
    full = _cli(*args, preexec_fn=_limit_file_size)
    text, _ = full.communicate(timeout=300)
    assert full.returncode == 2 and "Traceback" not in text, text
    assert "cannot write" in text and "run the same command again" in text
    again = _cli(*args)
    text, _ = again.communicate(timeout=300)
    assert again.returncode == 0, text
