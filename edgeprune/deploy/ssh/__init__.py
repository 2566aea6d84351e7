"""Linux boards over SSH (Jetson, Raspberry Pi): the OpenSSH transport, sha256 file sync, the model bundle, the
self-contained board-side runner (``remote.py``) and ``bench_remote``. See docs/ssh-boards.md."""

from edgeprune.deploy.ssh.transport import RemoteResult, SSHTarget

__all__ = ["RemoteResult", "SSHTarget"]
