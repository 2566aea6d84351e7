"""One path for SIGTERM and SIGINT (what ``timeout``, CI, systemd and Ctrl-C send): both raise
:class:`Interrupted` (a ``KeyboardInterrupt``) in the main thread, so every ``with`` and ``finally`` cleans up
on the way out: export staging folders are removed, ``subprocess.run`` kills its child (onnx2tf, the compiler,
the TFLM probe), an emulated board stops QEMU. Further signals are ignored while that clean-up runs. The
command line turns it into exit status 128 + the signal number, with one line and no traceback."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(KeyboardInterrupt):
    """The process got SIGTERM or SIGINT (``signum``)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise(signum: int, _frame: object) -> None:
    for s in SIGNALS:  # one interruption: the clean-up it starts is not itself interrupted
        signal.signal(s, signal.SIG_IGN)
    raise Interrupted(signum)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise :class:`Interrupted`; the previous handlers are restored
    after it. Outside the main thread (where Python cannot install handlers) it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def exit_status(exc: KeyboardInterrupt) -> int:
    """128 + the signal number, as a shell reports a process ended by that signal."""
    return 128 + getattr(exc, "signum", signal.SIGINT)
