"""SSH transport to a Linux board (Jetson, Raspberry Pi): run argument lists remotely, with timeouts and clear errors.

Why the system OpenSSH client and not paramiko/asyncssh/fabric: Jetson users already reach their board with
``ssh``, and it honours everything they have set up for it (``~/.ssh/config`` host aliases, ``ProxyJump``
bastions, ssh-agent, hardware keys, hashed ``known_hosts``), which the libraries support only in part. It is
one binary present on every Linux/macOS host and Windows 10+, and needs no new Python dependency. Its failures
are told apart from its stable messages (``ssh_errors.classify_ssh_failure``).

Safety: host-key checking is on (``StrictHostKeyChecking=yes``; ``accept-new`` only when asked), ``BatchMode``
never prompts, every command is an argument list (quoted with :func:`shlex.join` for the remote shell, never a
string pasted together), and every call has a connect timeout and an overall timeout; remote commands also
run under coreutils ``timeout`` so nothing keeps running on the board after we gave up.
"""

from __future__ import annotations

import logging
import re
import shlex
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgeprune.boards import BoardProfile, FlashMethod, load_board
from edgeprune.deploy.ssh.errors import (
    RemoteCommandError,
    RemoteEnvironmentError,
    SSHError,
    SSHTimeoutError,
    classify_ssh_failure,
    tail,
)

logger = logging.getLogger(__name__)

REMOTE_TIMEOUT_EXIT = 124  # coreutils `timeout` exit status when the time ran out
NOT_FOUND_EXIT = 127  # shell: command not found
KILL_GRACE_S = 5  # `timeout -k`: SIGKILL this long after SIGTERM


@dataclass(frozen=True)
class RemoteResult:
    """One finished remote command."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: str
    seconds: float


@dataclass(frozen=True)
class SSHTarget:
    """A board reached over SSH: ``host`` is ``user@host`` (or a ``~/.ssh/config`` alias).

    ``key`` is the private key to log in with (``None``: ssh-agent / default keys); ``known_hosts`` the file
    holding the board's host key (``None``: the user's). ``python`` is the interpreter on the board;
    ``remote_dir`` the working directory there (relative paths and ``~/...`` are under the remote home).
    """

    host: str
    board: BoardProfile | None = None
    port: int = 22
    key: Path | None = None
    known_hosts: Path | None = None
    accept_new_host_key: bool = False
    python: str = "python3"
    remote_dir: str = "edgeprune"
    connect_timeout: float = 10.0
    command_timeout: float = 900.0

    def __post_init__(self) -> None:
        for name in ("key", "known_hosts"):  # accept str and "~/..." paths
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value).expanduser())
        if self.remote_dir.startswith("~/"):  # arguments are quoted, so no remote shell expands "~": make it relative
            object.__setattr__(self, "remote_dir", self.remote_dir[2:])
        if not self.host or self.host.startswith("-") or any(c.isspace() for c in self.host):
            raise SSHError(f"bad SSH host {self.host!r}", expected="user@host, host, or an ~/.ssh/config alias")
        if not 0 < self.port < 65536:
            raise SSHError(f"bad SSH port {self.port}", expected="1..65535")
        if self.key is not None and not Path(self.key).is_file():
            raise SSHError(f"SSH key {self.key} does not exist", fix="pass the private key file (not the .pub)")

    @classmethod
    def for_board(cls, board: str | BoardProfile, host: str, **options: object) -> SSHTarget:
        """The CLI's way in: ``board`` name/alias/profile and ``host`` as ``user@host`` or ``user@host:port``.

        Refuses boards that are not reached over SSH (MCU boards are flashed, see ``edgeprune.deploy``).
        ``options`` are the other fields (``key``, ``known_hosts``, ``python``, ``port``, ...).
        """
        profile = board if isinstance(board, BoardProfile) else load_board(board)
        if profile.flash_method is not FlashMethod.SSH:
            raise SSHError(
                f"{profile.name} is not reached over SSH (flash method: {profile.flash_method.value})",
                expected="a Linux board profile with flash_method = 'ssh' (Jetson, Raspberry Pi)",
                fix="drop --host for MCU boards, or pick the right --board",
            )
        name, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
        if port:
            if not port.isdigit():
                raise SSHError(f"bad port in {host!r}", expected="user@host:port with a number, e.g. nano@10.0.0.7:22")
            options.setdefault("port", int(port))
        return cls(name or host, board=profile, **options)

    @property
    def where(self) -> str:
        """``user@host:port`` for messages."""
        return f"{self.host}:{self.port}"

    def ssh_argv(self, remote_argv: Sequence[str]) -> list[str]:
        """The local ``ssh`` argument list that runs ``remote_argv`` on the board."""
        argv = ["ssh", "-T", "-p", str(self.port)]
        opts = {
            "BatchMode": "yes",
            "ConnectTimeout": str(max(1, round(self.connect_timeout))),
            "StrictHostKeyChecking": "accept-new" if self.accept_new_host_key else "yes",
            "ServerAliveInterval": "5",
            "ServerAliveCountMax": "3",
            "LogLevel": "ERROR",
        }
        if self.key is not None:
            argv += ["-i", str(self.key)]
            opts["IdentitiesOnly"] = "yes"
        if self.known_hosts is not None:
            opts["UserKnownHostsFile"] = str(self.known_hosts)
        for name, value in opts.items():
            argv += ["-o", f"{name}={value}"]
        return [*argv, "--", self.host, shlex.join(remote_argv)]

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
        check: bool = True,
        what: str | None = None,
    ) -> RemoteResult:
        """Run ``argv`` on the board; raise a specific :class:`SSHError` on failure (any exit != 0 when ``check``)."""
        limit = self.command_timeout if timeout is None else timeout
        wrapped = ["timeout", "-k", str(KILL_GRACE_S), f"{limit:g}", *argv]
        what = what or shlex.join(argv)[:120]
        t0 = time.perf_counter()
        logger.debug("on %s: %s", self.host, shlex.join(wrapped))
        try:
            proc = subprocess.run(
                self.ssh_argv(wrapped),
                input=stdin if stdin is not None else b"",
                capture_output=True,
                timeout=limit + self.connect_timeout + KILL_GRACE_S + 2,
            )
        except FileNotFoundError:
            raise SSHError(
                "no `ssh` client on this machine", fix="install OpenSSH (apt-get install openssh-client)"
            ) from None
        except subprocess.TimeoutExpired:
            raise SSHTimeoutError(
                f"{self.where}: `{what}` did not finish within {limit:g} s (connection lost or board unresponsive)",
                fix="check the board, or raise the timeout",
            ) from None
        result = RemoteResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr.decode(errors="replace"),
                              time.perf_counter() - t0)  # fmt: skip
        if result.returncode == 0 or not check:
            return result
        raise self.failure(result, what, limit)

    def failure(self, result: RemoteResult, what: str, limit: float) -> SSHError:
        """The error that explains a non-zero exit of ``run``."""
        err, code = result.stderr, result.returncode
        if code == 255:
            known = classify_ssh_failure(
                err, self.where, key=str(self.key) if self.key else None,
                known_hosts=str(self.known_hosts) if self.known_hosts else None,
            )  # fmt: skip
            if known is not None:
                return known
        if code == REMOTE_TIMEOUT_EXIT:
            return SSHTimeoutError(f"{self.where}: `{what}` was stopped after {limit:g} s", fix="raise the timeout")
        if code == NOT_FOUND_EXIT and ("not found" in err or "No such file" in err):
            no_timeout = re.search(r"timeout: (command )?not found", err) is not None
            missing = "timeout (coreutils)" if no_timeout else result.argv[0]
            return RemoteEnvironmentError(
                f"{self.where}: `{missing}` is not installed on the board ({tail(err, 1).strip()})",
                fix=f"install it on the board, or pass the right interpreter path (python={self.python!r})"
                if not no_timeout else "apt-get install coreutils on the board",
            )  # fmt: skip
        return RemoteCommandError(f"{self.where}: `{what}` failed with exit code {code}", returncode=code, stderr=err)
