"""Copy a local directory to a board, only the files whose sha256 differs, verified on arrival.

One SSH call hashes what the board already has; one more streams a tar of the changed files, which the board
checks against the sha256 manifest (first tar member) before renaming each into place, and keeps as
``.edgeprune-manifest.json``. Nothing else is deleted on the board.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from edgeprune.deploy.ssh.errors import RemoteCommandError, SSHError
from edgeprune.deploy.ssh.transport import SSHTarget

_HELPER = resources.files("edgeprune.deploy.ssh").joinpath("_board_files.py").read_text()


@dataclass
class SyncReport:
    """What one sync did: files copied (with bytes) and files already on the board with the right hash."""

    remote_dir: str
    copied: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    bytes_copied: int = 0
    bytes_total: int = 0
    seconds: float = 0.0


def local_manifest(root: Path) -> dict[str, dict[str, int | str]]:
    """``{relative posix path: {"sha256", "size"}}`` of every regular file under ``root``."""
    out: dict[str, dict[str, int | str]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        out[path.relative_to(root).as_posix()] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    return out


def remote_hashes(target: SSHTarget, remote_dir: str) -> dict[str, str]:
    """``{relative path: sha256}`` of the files the board has under ``remote_dir`` (hashed there, now)."""
    result = target.run([target.python, "-c", _HELPER, "hash", remote_dir], what=f"hash files in {remote_dir}")
    return json.loads(result.stdout)


def sync_dir(target: SSHTarget, local_dir: str | Path, remote_dir: str) -> SyncReport:
    """Make ``remote_dir`` on the board hold ``local_dir``'s files (byte-identical by sha256); copy only changes."""
    root = Path(local_dir)
    if not root.is_dir():
        raise SSHError(f"nothing to deploy: {root} is not a directory")
    manifest = local_manifest(root)
    have = remote_hashes(target, remote_dir)
    report = SyncReport(remote_dir, bytes_total=sum(int(m["size"]) for m in manifest.values()))
    changed = [p for p, m in manifest.items() if have.get(p) != m["sha256"]]
    report.unchanged = [p for p in manifest if p not in changed]
    if not changed:
        return report
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w") as tar:
        _add(tar, ".edgeprune-manifest.json", json.dumps(manifest).encode())
        for rel in changed:
            _add(tar, rel, (root / rel).read_bytes())
    result = target.run(
        [target.python, "-c", _HELPER, "receive", remote_dir],
        stdin=stream.getvalue(),
        what=f"receive {len(changed)} files in {remote_dir}",
    )
    report.seconds = result.seconds
    placed = json.loads(result.stdout)
    wrong = [p for p in changed if placed.get(p) != manifest[p]["sha256"]]
    if wrong:
        raise RemoteCommandError(
            f"{target.where}: the board did not confirm the sha256 of {', '.join(wrong)}", returncode=0,
            stderr=result.stderr,
        )  # fmt: skip
    report.copied = changed
    report.bytes_copied = sum(int(manifest[p]["size"]) for p in changed)
    return report


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))
