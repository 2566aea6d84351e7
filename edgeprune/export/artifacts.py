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
    """Refuse to run when ``names`` or the manifest already exist in ``out_dir``, unless ``force``."""
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
        p = self.root / rel
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
        stale = set(_listed(self.out_dir / MANIFEST_NAME)) - set(self._kinds)
        artifacts = []
        for rel in sorted(self._kinds):
            src = self.root / rel
            artifacts.append(Artifact(rel, self._kinds[rel], src.stat().st_size, sha256_file(src)))
        for art in artifacts:
            dst = self.out_dir / art.path
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.root / art.path, dst)
        manifest = {
            "artifacts": [art.__dict__ for art in artifacts],
            **(extra or {}),
        }
        write_json_atomic(self.out_dir / MANIFEST_NAME, manifest)
        for rel in sorted(stale):
            path = self.out_dir / rel
            path.unlink(missing_ok=True)
            for parent in path.parents:
                if parent == self.out_dir or any(parent.iterdir()):
                    break
                parent.rmdir()
        return artifacts


def _listed(manifest: Path) -> list[str]:
    """Artifact paths of an existing manifest (none when absent or unreadable)."""
    try:
        data = json.loads(manifest.read_text())
        return [a["path"] for a in data["artifacts"] if ".." not in Path(a["path"]).parts]
    except (OSError, ValueError, KeyError, TypeError):
        return []
