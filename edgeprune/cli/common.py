"""The option groups several commands share, and the objects they build (so no option is dropped on the way); the
help conventions (defaults and an Example in every --help) and -v/-q."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterator

from edgeprune.boards import BoardProfile
from edgeprune.errors import EdgepruneError
from edgeprune.prune import (
    Budget,
    Components,
)
from edgeprune.prune.groups import MODES
from edgeprune.prune.importance import IMPORTANCES


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
    g.add_argument("--mode", choices=MODES, default="component", help="grouping mode")


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
    g.add_argument("--python", help="Python on the board (default: python3)")
    g.add_argument("--remote-dir", help="work directory on the board (default: ~/edgeprune)")
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
    g.add_argument("--round-to", type=int, default=1, help="keep channel counts multiples of this")
    g.add_argument("--weight", action="append", default=[], metavar="NAME=W", help="importance weight per component")
    importances = [i for i in IMPORTANCES if i != "taylor"]
    g.add_argument("--importance", choices=importances, default="l2", help="how channels are ranked")
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


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's default in its help (unless the help names it already); the Example epilog as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or action.default in (None, False, [], argparse.SUPPRESS) or "%(default)" in text:
            return text
        return f"{text} (default: %(default)s)"


def example(*lines: str) -> str:
    """A command's ``Example:`` epilog: real command lines, runnable as written (one per line)."""
    return "Example:\n" + "\n".join(f"  {line}" for line in lines)


Command = tuple[tuple[str, ...], argparse.ArgumentParser]


def commands(p: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[Command]:
    """``p`` and every (sub)command parser below it, with its command path (``("boards", "fit")``)."""
    yield path, p
    for action in p._actions:  # argparse has no public way to list subparsers
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))


def verbosity_args(p: argparse.ArgumentParser, top: bool) -> None:
    """-v/-q: on the top-level parser (default INFO) and again after each command (default: left as given)."""
    g = p.add_mutually_exclusive_group()
    default = logging.INFO if top else argparse.SUPPRESS
    g.add_argument("-v", "--verbose", dest="log_level", action="store_const", const=logging.DEBUG, default=default,
                   help="also debug lines on stderr (steps within stages, commands run)")  # fmt: skip
    g.add_argument("-q", "--quiet", dest="log_level", action="store_const", const=logging.WARNING, default=default,
                   help="no progress lines on stderr, only warnings and errors")  # fmt: skip
