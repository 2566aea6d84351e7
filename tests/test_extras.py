"""Optional stacks are imported only where a step needs them, and a missing one is one clear error naming the extra.

Each case runs in a fresh interpreter in which the stack is made unimportable (``sys.modules[name] = None``,
what Python does for a module that is not installed), so the modules of the rest of the test run do not leak in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OPTIONAL = ("onnx", "onnxruntime", "onnxscript", "onnxslim", "onnx2tf", "tensorflow", "tf_keras", "ai_edge_litert",
            "tflite_micro", "serial", "matplotlib", "gymnasium", "ray")  # fmt: skip

# What a base install (no extras) must still do, and the error every step that needs an extra gives.
_BASE = """
import importlib, json, pkgutil, sys, tempfile
from pathlib import Path
for name in BLOCKED:
    sys.modules[name] = None
import torch
import edgeprune
from edgeprune.extras import MissingExtraError

out = {}
# every module of the package imports without any optional stack (remote.py runs on the board; cli.py is checked
# through its entry point)
for mod in pkgutil.walk_packages(edgeprune.__path__, "edgeprune."):
    importlib.import_module(mod.name)
from edgeprune.models import create_model
from edgeprune.prune import Budget, prune
model = create_model("tdmpc").eval()
pruned = prune(model, model.example_inputs(), Budget(default=0.5)).model
out["pruned_params"] = sum(p.numel() for p in pruned.parameters())

def error(fn):
    try:
        fn()
    except MissingExtraError as exc:
        return str(exc)
    return "no error"

from edgeprune.export.onnx import onnx_from_torch
small = create_model("simple").eval()
out["onnx"] = error(lambda: onnx_from_torch(small, small.example_inputs()))
from edgeprune.control.env import make_env
out["control"] = error(make_env)
from edgeprune.deploy.mcu.link import Link
out["deploy"] = error(lambda: Link.open("/dev/null"))
from edgeprune.pipeline.plots import grouped_bars
out["plot"] = error(lambda: grouped_bars(["a"], [1.0], [0.5], "ms"))
from edgeprune.deploy.mcu.aot.graph import read_graph
out["tflite_micro"] = error(lambda: read_graph(b"\\0\\0\\0\\0TFL3"))
print(json.dumps(out))
"""

# Only the converter missing: the ONNX step works, the TFLite step names the extra (not "unsupported op").
_NO_ONNX2TF = """
import json, sys, tempfile
from pathlib import Path
for name in BLOCKED:
    sys.modules[name] = None
from edgeprune.export.onnx import onnx_from_torch
from edgeprune.export.tflite import tflite_from_onnx
from edgeprune.extras import MissingExtraError
from edgeprune.models import create_model
model = create_model("simple").eval()
example = model.example_inputs()
onnx_export = onnx_from_torch(model, example)
try:
    tflite_from_onnx(onnx_export, model, example, Path(tempfile.mkdtemp()), int8=False)
    message = "no error"
except MissingExtraError as exc:
    message = str(exc)
print(json.dumps({"tflite": message}))
"""


def _run(script: str, blocked: tuple[str, ...]) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = f"BLOCKED = {blocked!r}\n{script}"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_base_install_prunes_and_each_missing_stack_names_its_extra() -> None:
    out = _run(_BASE, OPTIONAL)
    assert isinstance(out["pruned_params"], int) and out["pruned_params"] > 0
    for case, extra, package in (
        ("onnx", "onnx", "onnx"),
        ("control", "control", "gymnasium"),
        ("deploy", "deploy", "pyserial"),
        ("plot", "plot", "matplotlib"),
        ("tflite_micro", "deploy", "tflite-micro"),
    ):
        message = out[case]
        assert f"pip install 'edgeprune[{extra}]'" in message, (case, message)
        assert f"needs the Python package {package}," in message, (case, message)


@pytest.mark.slow
def test_missing_onnx2tf_is_reported_as_the_export_extra_not_an_unsupported_op() -> None:
    message = _run(_NO_ONNX2TF, ("onnx2tf",))["tflite"]
    assert "pip install 'edgeprune[export]'" in message and "onnx2tf" in message, message
    assert "replace that op" not in message
