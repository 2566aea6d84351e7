"""What can go wrong talking to a board over SSH, each as an :class:`EdgepruneError` with a fix."""

from __future__ import annotations

import re

from edgeprune.errors import EdgepruneError

STDERR_TAIL_LINES = 15


class SSHError(EdgepruneError):
    """Any failure reaching or using a board over SSH."""


class HostUnreachableError(SSHError):
    """No SSH connection: name does not resolve, port closed, host down or filtered."""


class AuthError(SSHError):
    """The board refused our key (or the key file is unusable)."""


class HostKeyError(SSHError):
    """The board's host key is unknown or differs from the one in known_hosts."""


class SSHTimeoutError(SSHError):
    """A connection or remote command took longer than its timeout."""


class RemoteCommandError(SSHError):
    """A remote command ran and failed; carries its exit code and the tail of its stderr."""

    def __init__(self, problem: str, *, returncode: int, stderr: str, **kw: str | None):
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(f"{problem}\n{indent_tail(stderr)}".rstrip(), **kw)


class RemoteEnvironmentError(SSHError):
    """The board lacks Python, a Python package or a tool the requested work needs."""


def tail(text: str, lines: int = STDERR_TAIL_LINES) -> str:
    """The last ``lines`` non-empty lines of ``text``."""
    kept = [line for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def indent_tail(text: str) -> str:
    body = tail(text)
    lines = "\n".join("    " + line for line in body.splitlines())
    return "" if not body else "  remote stderr (last lines):\n" + lines


def classify_ssh_failure(stderr: str, where: str, *, key: str | None, known_hosts: str | None) -> SSHError | None:
    """Turn ssh's own exit-255 messages into a specific error; ``None`` when stderr names no ssh failure."""
    kh = known_hosts or "~/.ssh/known_hosts"
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr or "has changed and you have requested strict" in stderr:
        return HostKeyError(
            f"{where}: the board's host key does not match the one in {kh} (possible man-in-the-middle, or the "
            "board was re-flashed)",
            expected="the host key recorded in known_hosts",
            fix=f"if the board was re-flashed: ssh-keygen -f {kh} -R '<host>' and connect once to record the new key",
        )
    if "host key is known" in stderr or "Host key verification failed" in stderr:
        return HostKeyError(
            f"{where}: the board's host key is not in {kh} and host-key checking is on",
            fix="connect once with `ssh` to record the key, or pass a known_hosts file holding it "
            "(accept_new_host_key=True trusts it on first use)",
        )
    if "Permission denied" in stderr or "Too many authentication failures" in stderr:
        return AuthError(
            f"{where}: the board refused the login ({_last_line(stderr)})",
            expected="a private key whose public half is in the board user's ~/.ssh/authorized_keys"
            + (f" (used: {key})" if key else " (none given: ssh-agent and default keys were tried)"),
            fix="ssh-copy-id -i <key>.pub <user>@<host>, or pass the right key",
        )
    if re.search(r"Connection refused", stderr):
        return HostUnreachableError(
            f"{where}: connection refused (nothing listens on that port)",
            fix="check the port and that sshd runs on the board (sudo systemctl status ssh)",
        )
    if re.search(r"Could not resolve hostname|Name or service not known", stderr):
        return HostUnreachableError(f"{where}: the host name does not resolve", fix="use the board's IP address")
    if re.search(r"timed out|No route to host|Network is unreachable|Connection closed by|Connection reset", stderr):
        return HostUnreachableError(
            f"{where}: cannot reach the board ({_last_line(stderr)})",
            fix="check that the board is powered, on the same network, and the address is right",
        )
    if re.search(r"Load key .*: (invalid format|error in libcrypto)|bad permissions", stderr):
        return AuthError(f"{where}: the key file cannot be used ({_last_line(stderr)})", fix="chmod 600 the key")
    return None


def _last_line(text: str) -> str:
    return tail(text, 1).strip()
