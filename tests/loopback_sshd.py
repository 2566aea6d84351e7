"""A real OpenSSH server on 127.0.0.1 for the SSH tests: own host key, user key, free port, known_hosts.

Started by the ``loopback_sshd`` fixture (one per test session) and stopped in its teardown. Skips with the reason
only when ``sshd``/``ssh``/``ssh-keygen`` are not installed (``make setup`` installs them from system-packages.txt).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"


@dataclass(frozen=True)
class Loopback:
    root: Path
    port: int
    user: str
    user_key: Path
    other_key: Path  # a valid key the server does not accept
    known_hosts: Path
    wrong_known_hosts: Path  # pins another host key for this address
    empty_known_hosts: Path

    @property
    def host(self) -> str:
        return f"{self.user}@127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@pytest.fixture(scope="session")
def loopback_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loopback]:
    missing = [t for t in (SSHD, "ssh", "ssh-keygen") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"OpenSSH not installed ({', '.join(missing)} missing): run `make setup` (openssh-server)")
    root = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "user_key", "other_key"):
        _keygen(root / name)
    (root / "authorized_keys").write_text((root / "user_key.pub").read_text())
    port = free_port()
    entry = lambda pub: f"[127.0.0.1]:{port} {' '.join(pub.read_text().split()[:2])}\n"  # noqa: E731
    (root / "known_hosts").write_text(entry(root / "host_key.pub"))
    (root / "wrong_known_hosts").write_text(entry(root / "other_key.pub"))
    (root / "empty_known_hosts").write_text("")
    (root / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_key'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"StrictModes no\nUsePAM no\nPidFile {root / 'sshd.pid'}\n"
    )
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege-separation directory sshd insists on
    subprocess.run([SSHD, "-f", str(root / "sshd_config"), "-E", str(root / "sshd.log")], check=True, timeout=10)
    pid = _wait_listening(root / "sshd.pid", port)
    try:
        yield Loopback(
            root, port, os.environ.get("USER") or _whoami(), root / "user_key", root / "other_key",
            root / "known_hosts", root / "wrong_known_hosts", root / "empty_known_hosts",
        )  # fmt: skip
    finally:
        os.kill(pid, signal.SIGTERM)


def _wait_listening(pid_file: Path, port: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid_file.exists() and pid_file.read_text().strip():
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return int(pid_file.read_text())
        time.sleep(0.05)
    raise RuntimeError(f"sshd did not start listening on port {port}")


def _whoami() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name
