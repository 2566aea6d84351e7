"""``edgeprune samples``: write int8 calibration samples (``.npz`` keyed by the model's input names)."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np

from edgeprune.calib_samples import SOURCES, make_samples
from edgeprune.cli.common import example
from edgeprune.cli.output import console
from edgeprune.errors import EdgepruneError
from edgeprune.io import write_atomic
from edgeprune.models.spec import load_model


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "samples",
        help="write int8 calibration samples (.npz keyed by input name) for --calib",
        description="Write int8 calibration samples (.npz keyed by input name) for --calib.\n"
        "replay: real (obs, action) pairs from the shipped TD-MPC replay buffer;\n"
        "example: draws of the model's example_inputs() (random: smoke tests only).\n"
        "For your own model save a few hundred real inputs with np.savez.",
        epilog=example(
            "edgeprune samples edgeprune.control.pretrained:pretrained_tdmpc --source replay --out out/samples.npz"
        ),
    )
    p.add_argument("model", help="bundled model name or package.module:factory")
    p.add_argument("--source", choices=SOURCES, required=True, help="replay: real TD-MPC data; example: random")
    p.add_argument("--count", type=int, default=256, help="number of samples")
    p.add_argument("--seed", type=int, default=0, help="which samples")
    p.add_argument("--out", required=True, help="the .npz file to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix != ".npz":
        raise EdgepruneError(f"--out {out}", expected="a .npz file name")
    if out.exists() and not args.force:
        raise EdgepruneError(f"{out} already exists", fix="pick another --out or pass --force")
    model, inputs = load_model(args.model)
    samples = make_samples(model, inputs, args.source, args.count, args.seed)
    buf = io.BytesIO()
    np.savez(buf, **samples)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, buf.getvalue())
    shapes = ", ".join(f"{n} {a.shape}" for n, a in samples.items())
    console.print(f"wrote {out}: {shapes} ({args.source})", highlight=False)
    return 0
