"""A content-addressed cache of deterministic build artifacts: firmware images, traced instruction mixes and
onnx2tf conversions, so benchmarking the same model twice (or two optimize points that prune to the same widths)
does not compile, trace or convert it again. Never measurements: latency is always measured anew.

An entry is keyed by a hash of everything its artifact is made from (the caller's :func:`content_key`: input
bytes, tool versions, command line) and lives in ``<root>/<kind>/<key>/``: the artifact files and a
``manifest.json`` with the sha256 of each. A hit is checked against the manifest; a damaged entry is removed (and
the caller rebuilds). An entry appears whole or not at all (written in a private directory, then renamed), so
concurrent processes can share the cache. Failing to write the cache never fails the caller.

The root is ``$EDGEPRUNE_CACHE_DIR``, else ``$XDG_CACHE_HOME/edgeprune``, else ``~/.cache/edgeprune``;
``EDGEPRUNE_CACHE_DIR=off`` turns the cache off. Delete the directory to clear it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path

from edgeprune.errors import EdgepruneError
from edgeprune.io import write_atomic

logger = logging.getLogger(__name__)

ENV = "EDGEPRUNE_CACHE_DIR"
MANIFEST = "manifest.json"
FORMAT = 1  # layout of an entry; part of every key


def cache_root() -> Path | None:
    """Where the cache lives (see the module docstring); ``None`` when it is turned off."""
    env = os.environ.get(ENV, "").strip()
    if env.lower() == "off":
        return None
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "edgeprune"


def content_key(*parts: bytes | str) -> str:
    """sha256 over ``parts`` (each length-prefixed, so no two different sequences collide by concatenation)."""
    h = hashlib.sha256(f"edgeprune-cache-{FORMAT}\0".encode())
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """The installed version of each package (``"-"``: not installed): what a key needs of the tools that make
    an artifact."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "-"
    return out


def _entry(kind: str, key: str) -> Path | None:
    root = cache_root()
    return None if root is None else root / kind / key


def load(kind: str, key: str) -> dict[str, bytes] | None:
    """The files of entry ``kind``/``key`` when it is there and every file matches its manifest hash; else
    ``None`` (a damaged entry is removed, so the caller's rebuild replaces it)."""
    entry = _entry(kind, key)
    if entry is None or not entry.is_dir():
        return None
    try:
        manifest = json.loads((entry / MANIFEST).read_text(encoding="utf-8"))
        files = {name: (entry / name).read_bytes() for name in manifest["files"]}
        bad = [name for name, data in files.items() if hashlib.sha256(data).hexdigest() != manifest["files"][name]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        bad = [f"unreadable ({exc})"]
    if bad:
        logger.warning("cache entry %s is damaged (%s): removing it, rebuilding", entry, ", ".join(bad))
        _remove(entry)
        return None
    logger.debug("cache hit %s", entry)
    return files


def store(kind: str, key: str, files: Mapping[str, bytes]) -> None:
    """Add entry ``kind``/``key`` holding ``files`` (flat names). Another process adding the same entry first
    wins; a write that fails (full disk, read-only) is logged and skipped."""
    entry = _entry(kind, key)
    if entry is None or entry.is_dir():
        return
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:16]}-", dir=entry.parent))
    except OSError as exc:
        logger.warning("cannot write the cache at %s: %s", entry.parent, exc)
        return
    try:
        for name, data in files.items():
            write_atomic(tmp / name, data)
        manifest = {"files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}}
        write_atomic(tmp / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        tmp.rename(entry)  # atomic; fails when another process stored this entry meanwhile
    except (OSError, EdgepruneError) as exc:  # write_atomic reports a full disk as an EdgepruneError
        if not entry.is_dir():
            logger.warning("cannot write the cache entry %s: %s", entry, exc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove(entry: Path) -> None:
    """Move the entry aside first (readers never see it half-deleted), then delete it."""
    with contextlib.suppress(OSError):
        aside = Path(tempfile.mkdtemp(prefix=".damaged-", dir=entry.parent))
        entry.rename(aside / entry.name)
        shutil.rmtree(aside, ignore_errors=True)
