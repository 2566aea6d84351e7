"""Ahead-of-time int8 kernels: C generated from a full-int8 ``.tflite``, bit-exact with TFLite Micro's reference
kernels (``generate``), and a host build of it for checks (``run_on_host``)."""

from edgeprune.deploy.mcu.aot.codegen import SUPPORTED, GeneratedModel, IOTensor, Layer, UnsupportedOpError, generate
from edgeprune.deploy.mcu.aot.host import run_on_host

__all__ = ["SUPPORTED", "GeneratedModel", "IOTensor", "Layer", "UnsupportedOpError", "generate", "run_on_host"]
