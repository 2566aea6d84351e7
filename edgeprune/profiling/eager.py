"""PyTorch eager-mode profiler, with per-component timing through forward hooks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeprune.measure.record import ComponentShare, Measurement, Provenance
from edgeprune.measure.runner import Profiler
from edgeprune.measure.timing import hook_component_times
from edgeprune.prune import Components
from edgeprune.prune.counting import macs_per_component, params_per_component
from edgeprune.prune.tracing import flatten_tensors


class EagerProfiler(Profiler):
    """Times ``model`` in eager mode on ``device`` with ``threads`` CPU threads (None: torch's default).

    Per-component latency comes from a separate hooked pass (hooks add overhead, so the model's total
    latency is timed without them); CUDA work is synchronised before every clock read.
    """

    runtime = "pytorch-eager"

    def __init__(
        self,
        model: nn.Module,
        components: Components | None = None,
        threads: int | None = None,
        device: str = "cpu",
        component_runs: int = 20,
    ):
        self.model = model
        self.components = components
        self.threads = threads
        self.device = torch.device(device)
        self.component_runs = component_runs
        self._saved_threads: int | None = None

    def activate(self) -> None:
        if self.threads is not None:
            self._saved_threads = torch.get_num_threads()
            torch.set_num_threads(self.threads)
        self.model.eval().to(self.device)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def deactivate(self) -> None:
        if self._saved_threads is not None:
            torch.set_num_threads(self._saved_threads)
            self._saved_threads = None

    def infer(self, inputs: Sequence[Any]) -> list[np.ndarray]:
        args = [torch.as_tensor(x).to(self.device) for x in inputs]
        with torch.inference_mode():
            outputs = self.model(*args)
        self._sync()
        return [t.detach().cpu().numpy() for t in flatten_tensors(outputs)]

    def provenance(self) -> Provenance:
        threads = self.threads or torch.get_num_threads()
        return Provenance.host(f"PyTorch {torch.__version__} eager, {self.device}, {threads} threads")

    def extras(self, measurement: Measurement, inputs: Sequence[Any]) -> None:
        args = tuple(torch.as_tensor(x).to(self.device) for x in inputs)
        measurement.params = sum(p.numel() for p in self.model.parameters())
        if self.device.type == "cuda":
            measurement.memory.gpu_bytes = torch.cuda.max_memory_allocated(self.device)
        if self.components is None:
            return
        macs = macs_per_component(self.model, args, self.components)
        params = params_per_component(self.model, self.components)
        measurement.macs = sum(macs.values())
        times = self.component_latency(args)
        total = sum(times.values()) or 1.0
        measurement.components = {
            name: ComponentShare(times.get(name), times.get(name, 0.0) / total, macs.get(name), params.get(name))
            for name in self.components.names
        }

    def component_latency(self, args: tuple[torch.Tensor, ...]) -> dict[str, float]:
        """Median per-run time spent inside each component (all its calls summed), in ms."""
        named = dict(self.model.named_modules())
        roots = {name: [named[r] for r in self.components.roots(name)] for name in self.components.names}

        def call() -> None:
            with torch.inference_mode():
                self.model(*args)

        return hook_component_times(roots, call, self.component_runs, self._sync)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
