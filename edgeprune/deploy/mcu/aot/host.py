"""Compile a generated model with the host C compiler and run it on input sets (for bit-exactness checks)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgeprune.deploy.mcu.aot.codegen import GeneratedModel
from edgeprune.errors import EdgepruneError

FIRMWARE = Path(__file__).resolve().parent.parent / "firmware"


def run_on_host(
    model: GeneratedModel, input_sets: Sequence[Sequence[np.ndarray]], *, dsp: bool = False, timeout: float = 120
) -> list[list[np.ndarray]]:
    """Outputs (int8, flat) of ``model`` for each input set (int8 arrays in model input order). ``dsp``: with the
    Cortex-M4/M7 DSP-extension kernels (``ep_kernels_dsp.c``, instructions emulated in C) instead of the
    reference loops the host (and the Cortex-M0+) runs."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise EdgepruneError("no host C compiler (cc/gcc) found", fix="apt-get install gcc")
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp) / "model.c", Path(tmp) / "model"
        src.write_text(model.source)
        cmd = [cc, "-O2", "-ffp-contract=off", *(["-DEP_DSP_PORTABLE"] if dsp else []), "-I", str(FIRMWARE),
               str(src), *(str(FIRMWARE / f) for f in ("ep_kernels.c", "ep_kernels_dsp.c", "host_main.c")), "-lm",
               "-o", str(exe)]  # fmt: skip
        build = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if build.returncode != 0:
            raise EdgepruneError("host build of the generated model failed", fix=build.stderr[-2000:])
        feed = b"".join(np.asarray(x, dtype=np.int8).tobytes() for s in input_sets for x in s)
        run = subprocess.run([str(exe)], input=feed, capture_output=True, timeout=timeout, check=False)
    if run.returncode != 0:
        raise EdgepruneError(f"the host build of the model exited with {run.returncode}")
    flat = np.frombuffer(run.stdout, dtype=np.int8)
    sizes = [o.size for o in model.outputs]
    per_set = sum(sizes)
    if flat.size != per_set * len(input_sets):
        raise EdgepruneError(f"host run returned {flat.size} bytes, expected {per_set * len(input_sets)}")
    out, pos = [], 0
    for _ in input_sets:
        row = []
        for n in sizes:
            row.append(flat[pos : pos + n].copy())
            pos += n
        out.append(row)
    return out
