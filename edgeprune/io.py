"""Atomic file writes: a reader never sees a half-written artifact."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from edgeprune.errors import EdgepruneError

# the disk is full, a quota or file-size limit was hit, or the filesystem is read-only
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Write to a temporary file beside ``path``, then rename it into place (only if the block succeeds)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; artifacts get the usual permissions
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        disk = _disk_error(exc)
        if disk is not None:
            raise EdgepruneError(
                f"cannot write {path}: {disk.strerror}",
                expected="room on the disk (and permission) to write the output",
                fix=f"free space on the disk holding {path.parent} (or choose another output directory), then "
                "run the same command again; nothing half-written was left",
            ) from exc
        raise


def write_atomic(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a synced temp file in the same directory and ``os.replace``."""
    with atomic_open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())


def _disk_error(exc: BaseException | None) -> OSError | None:
    """The full-disk (or quota, size limit, read-only) OSError behind ``exc``, if any: writers such as
    ``torch.save`` report it wrapped in their own error."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
