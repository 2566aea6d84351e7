"""`boards list|show|fit`."""

from __future__ import annotations

import argparse

from edgeprune.boards import (
    board_details,
    boards_table,
    check_fit,
    fit_artifact,
    load_board,
)
from edgeprune.cli.common import example
from edgeprune.cli.output import console
from edgeprune.errors import EdgepruneError


def add(sub: argparse._SubParsersAction) -> None:
    """Register this module's commands."""
    boards = sub.add_parser(
        "boards", help="board profiles: list, show, fit check", epilog=example("edgeprune boards list 'nucleo*'")
    ).add_subparsers(required=True, metavar="action")
    p = boards.add_parser(
        "list",
        help="list known boards (shipped and on $EDGEPRUNE_BOARD_PATH)",
        epilog=example("edgeprune boards list", "edgeprune boards list 'nucleo*'"),
    )
    p.add_argument("pattern", nargs="?", help="fnmatch pattern over board names")
    p.set_defaults(run=_cmd_boards_list)
    p = boards.add_parser(
        "show", help="a board's profile with its data-sheet sources", epilog=example("edgeprune boards show l4r5zi")
    )
    p.add_argument("board", help="board name, alias or profile file")
    p.set_defaults(run=_cmd_boards_show)
    p = boards.add_parser(
        "fit",
        help="does a model fit this board (flash and SRAM, with margins)?",
        epilog=example(
            "edgeprune boards fit nucleo-l4r5zi --model-bytes 52000 --arena-bytes 24000",
            "edgeprune boards fit nucleo-l4r5zi --artifact out/export/tflm/model.tflite --arena-bytes 62496",
        ),
    )
    p.add_argument("board", help="board name, alias or profile file")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--artifact", help="model file (e.g. model.tflite): its size is the flash for weights")
    size.add_argument("--model-bytes", type=int, help="flash taken by the model's weights")
    size.add_argument("--export", help="an `edgeprune export --to tflm` folder: edgeprune's firmware for the board is "
                      "linked and measured, the basis `bench --emulate` reports on")  # fmt: skip
    p.add_argument("--arena-bytes", type=int, help="tensor arena in bytes (TFLM bundle manifest; not with --export)")
    p.add_argument("--code-bytes", type=int, help="measured code size (default: an estimate)")
    p.set_defaults(run=_cmd_boards_fit)


def _cmd_boards_list(args: argparse.Namespace) -> int:
    console.print(boards_table(args.pattern))
    return 0


def _cmd_boards_show(args: argparse.Namespace) -> int:
    console.print(board_details(load_board(args.board)))
    return 0


def _cmd_boards_fit(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    if args.export:
        from edgeprune.deploy.mcu import fit_export

        verdict = fit_export(args.export, board)
        console.print(verdict.table())
        return 0 if verdict.fits else 1
    if args.arena_bytes is None:
        raise EdgepruneError("boards fit needs --arena-bytes with --artifact or --model-bytes",
                             fix="pass the TFLM arena from the export's manifest, or --export DIR")  # fmt: skip
    if args.artifact:
        verdict = fit_artifact(board, args.artifact, arena_bytes=args.arena_bytes, code_bytes=args.code_bytes)
    else:
        verdict = check_fit(
            board, model_bytes=args.model_bytes, arena_bytes=args.arena_bytes, code_bytes=args.code_bytes
        )
    console.print(verdict.table())
    return 0 if verdict.fits else 1
