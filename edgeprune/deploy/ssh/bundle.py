"""A bench bundle: what the board-side runner needs to time one model, with no pickles and no model code.

``model.onnx`` (from :func:`edgeprune.export.export`, with its node → component metadata), ``model.pt2`` (a
``torch.export`` program: ATen graph + weights, run eagerly on the board; left out when only ONNX Runtime or
TensorRT will run), ``inputs/<i>.npy`` (the example inputs,
read there with ``allow_pickle=False``) and ``bundle.json``. Every file is byte-for-byte reproducible for the same
model and inputs, so re-preparing an unchanged model copies nothing new to the board; ``bundle.json`` records a
fingerprint of the model (architecture, weights, inputs, torch version) so an unchanged bundle is not even rebuilt.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeprune.errors import EdgepruneError
from edgeprune.io import write_atomic

BUNDLE_FILE = "bundle.json"


def prepare_bundle(
    model: nn.Module,
    example_inputs: torch.Tensor | Sequence[torch.Tensor],
    out_dir: str | Path,
    *,
    onnx_path: str | Path | None = None,
    program: bool = True,
) -> Path:
    """Write the bundle for ``model`` into ``out_dir`` and return it.

    ``onnx_path``: an ONNX file already exported by edgeprune (else the model is exported here, with parity check).
    ``program``: include ``model.pt2`` (needed by the board's eager PyTorch run only; ``torch.export`` takes seconds).
    """
    out = Path(out_dir)
    args = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    model = model.eval()
    digest = fingerprint(model, args, onnx_path) + ("" if program else "-no-program")
    if _is_current(out, digest):
        return out
    if onnx_path is None:
        from edgeprune.export import export

        with tempfile.TemporaryDirectory() as tmp:
            onnx_bytes = (export(model, args, tmp, targets=("onnx",), force=True).out_dir / "model.onnx").read_bytes()
    else:
        onnx_bytes = Path(onnx_path).read_bytes()
    write_atomic(out / "model.onnx", onnx_bytes)
    if program:
        write_atomic(out / "model.pt2", _program_bytes(model, args))
    inputs = []
    for i, x in enumerate(args):
        buf = io.BytesIO()
        np.save(buf, x.detach().cpu().numpy(), allow_pickle=False)
        write_atomic(out / "inputs" / f"{i}.npy", buf.getvalue())
        inputs.append(f"inputs/{i}.npy")
    meta = {"onnx": "model.onnx", "inputs": inputs, "torch": torch.__version__,
            "params": sum(p.numel() for p in model.parameters()), "fingerprint": digest}  # fmt: skip
    if program:
        meta["program"] = "model.pt2"
    write_atomic(out / BUNDLE_FILE, json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return out


def fingerprint(model: nn.Module, args: tuple[torch.Tensor, ...], onnx_path: str | Path | None = None) -> str:
    """sha256 over what the bundle is made from: module structure, state_dict, inputs, torch version, given ONNX."""
    h = hashlib.sha256(f"{torch.__version__}\n{model!r}\n".encode())
    for name, tensor in [*model.state_dict().items(), *((f"input{i}", x) for i, x in enumerate(args))]:
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    if onnx_path is not None:
        h.update(Path(onnx_path).read_bytes())
    return h.hexdigest()


def _is_current(out: Path, digest: str) -> bool:
    try:
        meta = json.loads((out / BUNDLE_FILE).read_text())
    except (OSError, ValueError):
        return False
    files = [meta.get("onnx"), *([meta["program"]] if "program" in meta else []), *meta.get("inputs", [])]
    return meta.get("fingerprint") == digest and all(f and (out / f).is_file() for f in files)


def _program_bytes(model: nn.Module, args: tuple[torch.Tensor, ...]) -> bytes:
    try:
        program = torch.export.export(model, args)
    except Exception as exc:
        raise EdgepruneError(
            f"torch.export cannot capture {type(model).__name__}: {type(exc).__name__}: {str(exc)[:300]}",
            expected="a model torch.export can trace (no data-dependent Python control flow)",
            fix="bench it on the board with ONNX Runtime / TensorRT only (runtimes=('onnxruntime', 'tensorrt'))",
        ) from exc
    buf = io.BytesIO()
    torch.export.save(program, buf)
    return buf.getvalue()
