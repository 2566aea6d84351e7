"""SSH transport and artifact sync against a real OpenSSH server on loopback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from loopback_sshd import Loopback, free_port

from edgeprune.boards import load_board
from edgeprune.deploy.ssh.errors import (
    AuthError,
    HostKeyError,
    HostUnreachableError,
    RemoteCommandError,
    RemoteEnvironmentError,
    SSHError,
    SSHTimeoutError,
)
from edgeprune.deploy.ssh.sync import sync_dir
from edgeprune.deploy.ssh.transport import SSHTarget


def target(lo: Loopback, **kw: object) -> SSHTarget:
    base = dict(
        host=lo.host, board=load_board("jetson-orin-nano"), port=lo.port, key=lo.user_key,
        known_hosts=lo.known_hosts, python=sys.executable, connect_timeout=5,
    )  # fmt: skip
    return SSHTarget(**{**base, **kw})


def test_runs_an_argument_list_without_a_shell(loopback_sshd: Loopback) -> None:
    result = target(loopback_sshd).run(["printf", "%s|", "a b", "$HOME", "; rm -rf /"])
    assert result.stdout == b"a b|$HOME|; rm -rf /|"


def test_bad_key_is_an_auth_error(loopback_sshd: Loopback) -> None:
    with pytest.raises(AuthError, match="refused the login") as err:
        target(loopback_sshd, key=loopback_sshd.other_key).run(["true"])
    assert "authorized_keys" in str(err.value)


def test_closed_port_is_unreachable(loopback_sshd: Loopback) -> None:
    with pytest.raises(HostUnreachableError, match="connection refused"):
        target(loopback_sshd, port=free_port()).run(["true"])


def test_changed_host_key_is_refused(loopback_sshd: Loopback) -> None:
    with pytest.raises(HostKeyError, match="does not match"):
        target(loopback_sshd, known_hosts=loopback_sshd.wrong_known_hosts).run(["true"])


def test_unknown_host_key_is_refused_unless_accept_new(loopback_sshd: Loopback, tmp_path: Path) -> None:
    with pytest.raises(HostKeyError, match="not in"):
        target(loopback_sshd, known_hosts=loopback_sshd.empty_known_hosts).run(["true"])
    fresh = tmp_path / "known_hosts"
    target(loopback_sshd, known_hosts=fresh, accept_new_host_key=True).run(["true"])
    assert (loopback_sshd.root / "host_key.pub").read_text().split()[1] in fresh.read_text()


def test_remote_failure_gives_exit_code_and_stderr_tail(loopback_sshd: Loopback) -> None:
    with pytest.raises(RemoteCommandError, match="exit code 3") as err:
        target(loopback_sshd).run([sys.executable, "-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(3)"])
    assert err.value.returncode == 3 and "boom" in str(err.value)


def test_timeout_stops_the_remote_command(loopback_sshd: Loopback) -> None:
    with pytest.raises(SSHTimeoutError, match="stopped after 1 s"):
        target(loopback_sshd).run(["sleep", "30"], timeout=1)


def test_missing_remote_python_is_named(loopback_sshd: Loopback, tmp_path: Path) -> None:
    t = target(loopback_sshd, python="/opt/no-such/python3")
    with pytest.raises(RemoteEnvironmentError, match=r"/opt/no-such/python3.*not installed"):
        sync_dir(t, tmp_path, "edgeprune-test/empty")


def test_bad_host_strings_are_refused_before_ssh_runs() -> None:
    for host in ("-oProxyCommand=evil", "a b", ""):
        with pytest.raises(SSHError, match="bad SSH host"):
            SSHTarget(host)


def test_for_board_parses_host_and_refuses_mcu_boards(tmp_path: Path) -> None:
    t = SSHTarget.for_board("orin-nano", "nano@10.0.0.7:2222", python="/home/nano/venv/bin/python")
    assert (t.host, t.port, t.board.name, t.python) == ("nano@10.0.0.7", 2222, "jetson-orin-nano-8gb",
                                                        "/home/nano/venv/bin/python")  # fmt: skip
    assert SSHTarget.for_board("rpi5", "pi@raspberrypi.local").port == 22
    key = tmp_path / "id_ed25519"
    key.write_text("x")
    assert SSHTarget.for_board("rpi5", "pi@pi", key=str(key)).key == key  # str paths become Paths
    assert SSHTarget("pi@pi", remote_dir="~/bench").remote_dir == "bench"  # quoted args: no remote ~ expansion
    with pytest.raises(SSHError, match="not reached over SSH"):
        SSHTarget.for_board("nucleo-l4r5zi", "me@host")
    with pytest.raises(SSHError, match="bad port"):
        SSHTarget.for_board("orin-nano", "nano@host:ssh")


def test_sync_copies_only_changes_and_verifies(loopback_sshd: Loopback, tmp_path: Path) -> None:
    local = tmp_path / "artifacts"
    (local / "sub").mkdir(parents=True)
    (local / "a.bin").write_bytes(b"a" * 1000)
    (local / "sub" / "b.txt").write_text("hello")
    remote = str(loopback_sshd.root / "board" / "sync")
    t = target(loopback_sshd)
    first = sync_dir(t, local, remote)
    assert sorted(first.copied) == ["a.bin", "sub/b.txt"] and first.bytes_copied == 1005
    second = sync_dir(t, local, remote)
    assert second.copied == [] and second.bytes_copied == 0 and sorted(second.unchanged) == ["a.bin", "sub/b.txt"]
    (local / "sub" / "b.txt").write_text("changed")
    third = sync_dir(t, local, remote)
    assert third.copied == ["sub/b.txt"] and third.bytes_copied == 7
    assert (Path(remote) / "sub" / "b.txt").read_text() == "changed"
    (Path(remote) / "a.bin").write_bytes(b"tampered")  # the board's copy is hashed, not trusted from the manifest
    assert sync_dir(t, local, remote).copied == ["a.bin"]
    assert (Path(remote) / ".edgeprune-manifest.json").is_file()
