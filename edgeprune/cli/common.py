"""The option groups several commands share, and the objects they build (so no option is dropped on the way)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from edgeprune.boards import BoardProfile
from edgeprune.errors import EdgepruneError
from edgeprune.prune import (
    Budget,
    Components,
)
from edgeprune.prune.groups import MODES
from edgeprune.prune.importance import IMPORTANCES

# wide enough for tables in logs; lines of text are never wrapped (commands and paths stay copyable)
console = Console(width=None if sys.stdout.isatty() else 120, soft_wrap=True, log_path=False)


def model_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "model",
        nargs=None if required else "?",
        help="bundled model name (see `edgeprune models`) or package.module:factory",
    )
    g.add_argument("--weights", help="state_dict file for the model (loaded with weights_only=True)")
    g.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="1x3x32x32",
        help="example input shape, once per forward argument (default: the model's example_inputs())",
    )
    g.add_argument("--depth", type=int, help="components = modules at this depth (default: top-level children)")
    g.add_argument(
        "--component",
        action="append",
        default=[],
        metavar="NAME=PATTERN[,PATTERN]",
        help="explicit component: module paths or globs (repeatable)",
    )
    g.add_argument("--mode", choices=MODES, default="component", help="grouping mode (default: component)")


def plan_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    g = p.add_argument_group("pruned model")
    g.add_argument("--plan", required=required, help="plan.json written by `edgeprune prune`")
    g.add_argument(
        "--pruned-weights",
        help="pruned.pt written by `edgeprune prune` (or after fine-tuning); default: the plan applied to --weights",
    )


def ssh_args(
    p: argparse.ArgumentParser,
    runtimes: str = "comma-separated among onnxruntime, pytorch-eager, tensorrt (default: all)",
) -> None:
    g = p.add_argument_group("Linux boards over SSH (Jetson, Raspberry Pi)")
    g.add_argument("--host", help="user@host or user@host:port")
    g.add_argument("--key", help="SSH private key (default: your ssh config and agent)")
    g.add_argument("--known-hosts", help="known_hosts file (host-key checking is always on)")
    g.add_argument("--python", help="Python on the board (default python3)")
    g.add_argument("--remote-dir", help="work directory on the board (default ~/edgeprune)")
    g.add_argument("--runtimes", help=runtimes)


def budget_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("budget")
    g.add_argument(
        "--budget",
        action="append",
        default=[],
        metavar="F|NAME=F",
        help="fraction of parameters to remove: a default (0.5) and/or per component (dynamics=0.3); repeatable",
    )
    g.add_argument("--total", type=float, help="remove this fraction of the whole model, ranked across components")
    g.add_argument("--protect", action="append", default=[], metavar="NAME[,NAME]", help="components to keep intact")
    g.add_argument("--interfaces", type=float, metavar="RATIO", help="also prune cross-component interfaces")
    g.add_argument("--round-to", type=int, default=1, help="keep channel counts multiples of this (default 1)")
    g.add_argument("--weight", action="append", default=[], metavar="NAME=W", help="importance weight per component")
    g.add_argument("--importance", choices=[i for i in IMPORTANCES if i != "taylor"], default="l2")
    g.add_argument("--seed", type=int, default=0, help="seed for random importance")


def ssh_target(args: argparse.Namespace, board: BoardProfile | str):
    """The SSH board the --host options name (every option of the group goes in, --remote-dir included)."""
    from edgeprune.deploy.ssh import SSHTarget

    options = given(key=args.key, known_hosts=args.known_hosts, python=args.python, remote_dir=args.remote_dir)
    return SSHTarget.for_board(board, args.host, **options)


def given(**options: object) -> dict[str, object]:
    """The options the user gave (``None``: not given, so the API's own default applies)."""
    return {k: v for k, v in options.items() if v is not None}


def components_of(model, args: argparse.Namespace) -> Components:
    if args.component and args.depth:
        raise EdgepruneError("--component and --depth exclude each other", fix="use one way to name components")
    if args.component:
        mapping = {}
        for item in args.component:
            name, sep, patterns = item.partition("=")
            if not sep or not name or not patterns:
                raise EdgepruneError(f"bad --component {item!r}", expected="NAME=PATTERN[,PATTERN], e.g. enc=encoder.*")
            mapping[name] = patterns.split(",")
        return Components(model, mapping)
    if args.depth:
        return Components.from_depth(model, args.depth)
    return Components.from_children(model)


def budget_of(args: argparse.Namespace) -> Budget:
    default = 0.0
    per_component: dict[str, float] = {}
    for item in (part for arg in args.budget for part in arg.split(",")):
        name, sep, value = item.rpartition("=")
        fraction = number(value, f"--budget {item}")
        if sep:
            per_component[name] = fraction
        else:
            default = fraction
    weights = {}
    for item in args.weight:
        name, sep, value = item.partition("=")
        if not sep:
            raise EdgepruneError(f"bad --weight {item!r}", expected="NAME=W, e.g. encoder=2")
        weights[name] = number(value, f"--weight {item}")
    if not args.budget and args.total is None:
        raise EdgepruneError("no budget given", fix="pass --budget 0.5 (and/or NAME=F) or --total 0.4")
    return Budget(
        default=default,
        per_component=per_component,
        total=args.total,
        protect=frozenset(n for arg in args.protect for n in arg.split(",") if n),
        interfaces=args.interfaces is not None,
        interface_ratio=args.interfaces or 0.0,
        round_to=args.round_to,
        weights=weights,
    )


def number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise EdgepruneError(f"{what}: {text!r} is not a number", expected="a fraction such as 0.3") from None


def load_callable(spec: str, flag: str) -> Callable:
    import importlib

    module, sep, name = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name) if sep else None
    except (ImportError, AttributeError) as exc:
        raise EdgepruneError(f"{flag} {spec}: {exc}", expected="package.module:function importable here") from exc
    if not callable(fn):
        raise EdgepruneError(f"{flag} {spec} is not a function", expected="package.module:function")
    return fn


@contextlib.contextmanager
def status(start: str) -> Iterator[Callable[[str], None]]:
    """A spinner with elapsed time for long work; yields the function that updates its message."""
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(start)
        yield lambda message: progress.update(task, description=message)
