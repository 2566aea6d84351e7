"""Exporters: dense ONNX, TFLite int8 and TFLite Micro bundles, TensorRT engines (issue: exporters)."""
