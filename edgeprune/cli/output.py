"""Where the command line's output goes: results to stdout (``console``); progress, warnings and errors to stderr
(``err_console``), through the ``edgeprune`` loggers. ``setup_logging`` is the one place logging is configured."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

# results on stdout: wide enough for tables in logs; lines of text are never wrapped (commands and paths stay copyable)
console = Console(width=None if sys.stdout.isatty() else 120, soft_wrap=True, log_path=False)
# progress, warnings and errors on stderr (the `edgeprune` loggers' lines, and a spinner on a terminal)
err_console = Console(stderr=True, soft_wrap=True, highlight=False)

log = logging.getLogger("edgeprune.cli")


class _LineFormatter(logging.Formatter):
    """``[  12.3s] message``: seconds since the command started; the level named when it is not INFO."""

    def __init__(self) -> None:
        super().__init__()
        self.start = time.monotonic()

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        where = f"{record.name}: " if record.levelno == logging.DEBUG else ""
        return f"[{time.monotonic() - self.start:6.1f}s] {level}{where}{record.getMessage()}"


class _StderrHandler(logging.Handler):
    """Log lines through the stderr console (so they print above a running spinner, never through it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            err_console.print(self.format(record), markup=False, highlight=False)
        except Exception:  # logging's contract: a broken handler never breaks the program
            self.handleError(record)


def setup_logging(level: int) -> None:
    """The one place logging is configured: the ``edgeprune`` loggers' lines go to stderr at ``level``
    (INFO: stage and progress lines; -v DEBUG; -q WARNING). Results stay on stdout."""
    root = logging.getLogger("edgeprune")
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    handler = _StderrHandler()
    handler.setFormatter(_LineFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False  # the command line owns the output; an embedding program's root handlers get none


@contextlib.contextmanager
def stage(title: str) -> Iterator[None]:
    """A long step: a line when it starts and when it ends (with its seconds), whether or not stderr is a
    terminal; on a terminal also a spinner showing the latest progress line of the ``edgeprune`` loggers."""
    log.info("%s ...", title)
    start = time.monotonic()
    try:
        with _spinner(title):
            yield
    except BaseException:
        log.info("%s: stopped after %.1f s", title, time.monotonic() - start)
        raise
    log.info("%s: done in %.1f s", title, time.monotonic() - start)


@contextlib.contextmanager
def _spinner(title: str) -> Iterator[None]:
    root = logging.getLogger("edgeprune")
    if not err_console.is_terminal or root.getEffectiveLevel() > logging.INFO:
        yield
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(title)
        follow = _Follow(lambda message: progress.update(task, description=message))
        root.addHandler(follow)
        try:
            yield
        finally:
            root.removeHandler(follow)


class _Follow(logging.Handler):
    """Shows each INFO line in the spinner."""

    def __init__(self, show: Callable[[str], None]) -> None:
        super().__init__(logging.INFO)
        self.show = show

    def emit(self, record: logging.LogRecord) -> None:
        self.show(record.getMessage())
