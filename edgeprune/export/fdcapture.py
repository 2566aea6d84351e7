"""Capture what native code writes to file descriptors 1/2 (TFLM's print_allocations, exporter dumps)."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def capture_fds(fds: tuple[int, ...] = (2,)) -> Iterator[list[str]]:
    """Redirect ``fds`` to a temp file for the block; the yielded list receives the text afterwards."""
    out: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in fds}
    with tempfile.TemporaryFile(mode="w+b") as f:
        for fd in fds:
            os.dup2(f.fileno(), fd)
        try:
            yield out
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, keep in saved.items():
                os.dup2(keep, fd)
                os.close(keep)
            f.seek(0)
            out.append(f.read().decode(errors="replace"))
