"""edgeprune: component-aware structured pruning for edge targets (MCUs with TFLite Micro, Jetson with TensorRT)."""

__version__ = "0.1.0"
