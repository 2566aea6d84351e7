"""Writing artifacts: atomic files, one manifest with every artifact and its sha256, no silent overwrite."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeprune.export.errors import ExportError
from edgeprune.io import write_atomic

MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class Artifact:
    """One file in an output directory (``path`` is relative to it)."""

    path: str
    kind: str
    size: int
    sha256: str


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_json_atomic(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def check_writable(out_dir: Path, names: Iterable[str], force: bool) -> None:
    """Refuse to run when ``names`` or the manifest already exist in ``out_dir``, unless ``force``; refuse
    at once (before any work) a manifest there that lists a path outside ``out_dir``."""
    listed(out_dir)
    existing = [n for n in [MANIFEST_NAME, *names] if (out_dir / n).exists()]
    if existing and not force:
        raise ExportError(
            f"{out_dir} already holds export artifacts ({', '.join(sorted(existing))}).",
            expected="an empty or new output directory",
            do="choose another output directory, or pass force=True (--force) to overwrite.",
        )


class Staging:
    """A private directory next to ``out_dir`` where a run writes; ``commit`` moves files in atomically.

    Nothing lands in ``out_dir`` until every step succeeded, so a failed export never leaves
    half a set of artifacts behind. Use as a context manager: the staging directory is removed
    on exit either way.
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(dir=self.out_dir, prefix=".staging-"))
        self._kinds: dict[str, str] = {}

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def path(self, rel: str) -> Path:
        p = confined(self.root, rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def add(self, rel: str, kind: str, data: bytes | str | None = None) -> Path:
        """Register ``rel`` as an artifact of ``kind``; write ``data`` to it when given."""
        p = self.path(rel)
        if data is not None:
            write_atomic(p, data)
        if not p.is_file():
            raise ExportError(f"internal: artifact {rel} was registered but never written")
        self._kinds[rel] = kind
        return p

    def names(self) -> list[str]:
        return sorted(self._kinds)

    def commit(self, extra: dict[str, Any] | None = None) -> list[Artifact]:
        """Move every registered artifact into ``out_dir`` (os.replace) and write the manifest last.

        Files an earlier manifest listed that this run did not produce are removed (only those:
        nothing else in ``out_dir`` is touched), so the directory matches its manifest.
        """
        stale = set(listed(self.out_dir)) - set(self._kinds)
        artifacts = []
        for rel in sorted(self._kinds):
            src = self.root / rel
            artifacts.append(Artifact(rel, self._kinds[rel], src.stat().st_size, sha256_file(src)))
        for art in artifacts:
            dst = confined(self.out_dir, art.path)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.root / art.path, dst)
        manifest = {
            "artifacts": [art.__dict__ for art in artifacts],
            **(extra or {}),
        }
        write_json_atomic(self.out_dir / MANIFEST_NAME, manifest)
        root = self.out_dir.resolve()
        for rel in sorted(stale):
            path = confined(self.out_dir, rel)
            if path.is_file() or path.is_symlink():
                path.unlink()  # a symlink itself, never what it points to
            for parent in path.parents:
                if parent == root or not parent.is_relative_to(root) or not parent.is_dir() or any(parent.iterdir()):
                    break
                parent.rmdir()
        return artifacts


def confined(out_dir: Path, rel: str, source: str = "an artifact path") -> Path:
    """``out_dir / rel``, refusing any path that would reach outside ``out_dir``: absolute paths, ``..``,
    and folders inside ``out_dir`` that are symlinks leading out of it. Only the last component may be a
    symlink (it is replaced or unlinked itself, never followed)."""
    root = Path(out_dir).resolve()
    rel_path = Path(rel) if isinstance(rel, str) and rel else None
    if rel_path is None or rel_path.is_absolute() or ".." in rel_path.parts or rel_path.parts in ((), (".",)):
        raise _outside(out_dir, rel, source)
    path = root / rel_path
    if not path.parent.resolve().is_relative_to(root):
        raise _outside(out_dir, rel, source)
    return path


def _outside(out_dir: Path, rel: object, source: str) -> ExportError:
    return ExportError(
        f"{source} leads outside {out_dir}: {rel!r}",
        expected="artifact paths relative to the output directory, with no '..', no absolute path and no "
        "symlinked folder leading out of it",
        do=f"remove {Path(out_dir) / MANIFEST_NAME} (it was not written by edgeprune, or was edited), or choose "
        "another output directory; nothing was deleted",
    )


def listed(out_dir: Path) -> list[str]:
    """Artifact paths of the manifest in ``out_dir`` (none when absent or unreadable), each checked to stay
    inside ``out_dir`` (:class:`ExportError` otherwise: a manifest must never make us touch other files)."""
    try:
        data = json.loads((Path(out_dir) / MANIFEST_NAME).read_text())
        paths = [a["path"] for a in data["artifacts"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    for rel in paths:
        confined(out_dir, rel, f"{Path(out_dir) / MANIFEST_NAME} lists an artifact that")
    return paths
