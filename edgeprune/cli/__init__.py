"""The ``edgeprune`` command line: a thin layer over the Python API. One module per command group; the option
groups several commands share live in ``common.py`` and build the API's objects. Optional stacks (ONNX, TensorFlow,
TFLite Micro, pyserial, matplotlib, gymnasium) are imported inside the commands that need them."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rich.markup import escape

from edgeprune import __version__
from edgeprune.cli import boards, measure, optimize, prune, samples, sweep
from edgeprune.cli.common import HelpFormatter, commands, example, verbosity_args
from edgeprune.cli.output import err_console, setup_logging
from edgeprune.errors import EdgepruneError
from edgeprune.interrupts import exit_status, interruptible


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        with interruptible():
            return args.run(args)
    except EdgepruneError as exc:  # the message may read edgeprune[export]: printed as text, never as markup
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}")
        return 2
    except KeyboardInterrupt as exc:  # SIGINT/SIGTERM: child processes ended and staging removed on the way here
        err_console.print("interrupted: child processes stopped, partial outputs removed")
        return exit_status(exc)


def parser() -> argparse.ArgumentParser:
    """The whole command line; every command's help shows its defaults and an example."""
    p = argparse.ArgumentParser(
        prog="edgeprune",
        description="Component-aware structured pruning and the toolchain to put the model on an edge board.\n"
        "Results go to stdout; progress lines to stderr (-v: more, -q: none).\n"
        "`edgeprune COMMAND --help` shows a command's options, their defaults and an example.",
        epilog=example("edgeprune prune tdmpc --budget 0.5 --protect encoder --out out/pruned"),
    )
    p.add_argument("--version", action="version", version=f"edgeprune {__version__}")
    sub = p.add_subparsers(required=True, metavar="command")
    for group in (prune, samples, measure, optimize, sweep, boards):
        group.add(sub)
    for path, command in commands(p):
        command.formatter_class = HelpFormatter
        verbosity_args(command, top=not path)
        for action in command._actions:  # a command's --help opens with the line `edgeprune --help` lists it by
            if isinstance(action, argparse._SubParsersAction):
                for listed in action._choices_actions:
                    sub_parser = action.choices[listed.dest]
                    sub_parser.description = sub_parser.description or listed.help
    return p
