"""Optional dependency stacks (the extras in pyproject.toml), imported only where a step needs one.

A missing stack is one :class:`MissingExtraError` that names the extra to install, never a traceback
from deep inside a library nor a converter's confusing failure.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

from edgeprune.errors import EdgepruneError

# import name -> distribution name, where they differ
_DISTRIBUTIONS = {
    "serial": "pyserial",
    "ai_edge_litert": "ai-edge-litert",
    "tflite_micro": "tflite-micro",
    "tf_keras": "tf-keras",
}


class MissingExtraError(EdgepruneError):
    """An optional dependency of the step that was asked for is not installed."""

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        top = module.split(".")[0]
        self.module, self.extra = top, extra
        dist = _DISTRIBUTIONS.get(top, top)
        super().__init__(
            f"{purpose} needs the Python package {dist}, which is not installed in {sys.prefix}.",
            expected=f"edgeprune installed with its '{extra}' extra",
            fix=f"pip install 'edgeprune[{extra}]'",
        )


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` (e.g. ``"onnxruntime"``), or raise :class:`MissingExtraError` naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        # a dependency of the stack missing (``exc.name``) is reported as that package, with the same extra
        raise MissingExtraError(exc.name or module, extra, purpose) from exc


def require_installed(*modules: str, extra: str, purpose: str) -> None:
    """Check that ``modules`` can be imported, without importing them (for stacks run in a subprocess)."""
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise MissingExtraError(module, extra, purpose)
