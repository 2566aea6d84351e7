"""The ``edgeprune`` command line: a thin layer over the Python API. One module per command group; the option
groups several commands share live in ``common.py`` and build the API's objects. Optional stacks (ONNX, TensorFlow,
TFLite Micro, pyserial, matplotlib, gymnasium) are imported inside the commands that need them."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rich.markup import escape

from edgeprune import __version__
from edgeprune.cli import boards, measure, optimize, prune, samples, sweep
from edgeprune.cli.common import console
from edgeprune.errors import EdgepruneError
from edgeprune.interrupts import exit_status, interruptible


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        with interruptible():
            return args.run(args)
    except EdgepruneError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)  # a fix may read edgeprune[export]
        return 2
    except KeyboardInterrupt as exc:  # SIGINT/SIGTERM: child processes ended and staging removed on the way here
        console.print("interrupted: child processes stopped, partial outputs removed", highlight=False)
        return exit_status(exc)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgeprune", description=__doc__.split(". ")[0] + ".")
    p.add_argument("--version", action="version", version=f"edgeprune {__version__}")
    sub = p.add_subparsers(required=True, metavar="command")
    for group in (prune, samples, measure, optimize, sweep, boards):
        group.add(sub)
    return p
