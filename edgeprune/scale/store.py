"""Exports kept on disk by content hash, so a resumed sweep converts nothing it converted before.

One directory per content hash, written whole or not at all::

    exports/<hash>/entry.json       format, hash, converter versions, the ExportResult as JSON, sha256 of each
                                    file, and sha256 of the rest of entry.json
    exports/<hash>/files/...        the export directory (model.onnx, tflite/, tflm/ with the generated C, ...)
    exports/<hash>/blobs/<sha256>   bytes of the result that no export file holds

An entry is written in a temporary directory beside it and renamed into place, so it appears complete or not at
all; when two writers race on one hash, the first rename wins and the other uses the winner's entry. Reading an
entry checks every file against its hash and the converter versions against this machine's: a missing, corrupt
or stale entry is reported at debug level and treated as absent (converted again), never trusted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from edgeprune.errors import EdgepruneError
from edgeprune.scale.cache import PackedExport, converter_versions
from edgeprune.scale.codec import safe_name, sha256

logger = logging.getLogger(__name__)
ENTRY_NAME = "entry.json"
FORMAT = 1


class ExportStore:
    """The exports under ``root``, one entry per content hash."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def get(self, key: str) -> PackedExport | None:
        """The entry of ``key`` with every file verified, or None (absent, incomplete, corrupt or stale)."""
        entry = self._entry(key)
        if not entry.exists():
            return None
        try:
            meta = json.loads((entry / ENTRY_NAME).read_text(encoding="utf-8"))
            if meta.pop("sha256", None) != _digest(meta):
                raise ValueError(f"{ENTRY_NAME} does not match its sha256")
            if meta.get("format") != FORMAT or meta.get("key") != key:
                raise ValueError(f"format {meta.get('format')!r} / key {meta.get('key')!r} is not this store's")
            if meta["versions"] != converter_versions():
                raise ValueError(f"converted with {meta['versions']}, this machine has {converter_versions()}")
            files = {}
            for name, digest in meta["files"].items():
                data = (entry / safe_name(name)).read_bytes()
                if sha256(data) != digest:
                    raise ValueError(f"{name} does not match its sha256")
                files[name] = data
            return PackedExport(key, meta["result"], files, meta["versions"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.debug("export %s in %s not used (%s): it is converted again", key[:12], self.root, exc)
            return None

    def put(self, packed: PackedExport) -> PackedExport:
        """Write ``packed`` as its hash's entry, atomically; an intact entry already there (another writer won
        the race) is kept and returned instead, a damaged one replaced."""
        entry = self._entry(packed.key)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{packed.key[:12]}-", dir=self.root))
        try:
            for name, data in packed.files.items():
                path = tmp / safe_name(name)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            meta = {
                "format": FORMAT,
                "key": packed.key,
                "versions": packed.versions,
                "result": packed.result,
                "files": {name: sha256(data) for name, data in packed.files.items()},
            }
            (tmp / ENTRY_NAME).write_text(json.dumps({**meta, "sha256": _digest(meta)}, indent=1), encoding="utf-8")
            for _ in range(3):
                try:
                    os.rename(tmp, entry)  # a directory: fails when the entry exists (and is not empty)
                    return packed
                except OSError:
                    winner = self.get(packed.key)
                    if winner is not None:
                        return winner
                    self._discard(entry)
            raise EdgepruneError(f"cannot write the export {entry}: it keeps being replaced while written")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _entry(self, key: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", key):
            raise EdgepruneError(f"{key!r} is not a content hash", expected="64 hex digits (scale.cache.content_hash)")
        return self.root / key

    @staticmethod
    def _discard(entry: Path) -> None:
        """Move a damaged entry out of the way (renamed first, so no half-deleted entry is ever seen)."""
        trash = Path(tempfile.mkdtemp(prefix=f".{entry.name[:12]}-discard-", dir=entry.parent))
        with contextlib.suppress(OSError):  # gone already: another writer discarded it
            os.rename(entry, trash / "entry")
        shutil.rmtree(trash, ignore_errors=True)


def _digest(meta: dict) -> str:
    """sha256 of an entry's JSON (everything but this digest), so no part of it is trusted unchecked."""
    return sha256(json.dumps(meta, sort_keys=True).encode())
