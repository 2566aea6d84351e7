"""The timing loops every runner shares, host and board: standard library only, so the file is also copied to
Linux boards beside their runner (``edgeprune.deploy.ssh.remote``) as ``ep_timing.py``."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def time_samples(fn: Callable[[], object], runs: int, warmup: int) -> list[float]:
    """Wall-clock milliseconds of ``runs`` calls of ``fn`` after ``warmup`` untimed ones (perf_counter_ns)."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return samples


def hook_component_times(
    roots: dict[str, list], call: Callable[[], object], runs: int, sync: Callable[[], None] = lambda: None
) -> dict[str, float]:
    """Median per-run ms spent inside each component (all calls of all its root modules summed).

    ``roots`` maps a component to its ``nn.Module`` roots; forward pre/post hooks read the clock (after ``sync``,
    e.g. a CUDA synchronise). Hooks add overhead, so time the whole model without them.
    """
    started: dict[str, int] = {}
    per_run: dict[str, float] = {}
    samples: dict[str, list[float]] = {}

    def pre(name: str):
        def hook(_module: object, _args: object) -> None:
            sync()
            started[name] = time.perf_counter_ns()

        return hook

    def post(name: str):
        def hook(_module: object, _args: object, _out: object) -> None:
            sync()
            per_run[name] = per_run.get(name, 0.0) + (time.perf_counter_ns() - started.pop(name)) / 1e6

        return hook

    handles = [h for name, mods in roots.items() for m in mods
               for h in (m.register_forward_pre_hook(pre(name)), m.register_forward_hook(post(name)))]  # fmt: skip
    try:
        for _ in range(runs):
            per_run.clear()
            call()
            for name, ms in per_run.items():
                samples.setdefault(name, []).append(ms)
    finally:
        for h in handles:
            h.remove()
    return {name: statistics.median(v) for name, v in samples.items()}


def ort_node_times(trace: list[dict]) -> dict[str, list[float]]:
    """Per-node kernel time (ms) in each ``model_run`` of an ONNX Runtime profile trace (0.0 if it did not run)."""
    runs = sorted(
        (e["ts"], e["ts"] + e["dur"]) for e in trace if e.get("cat") == "Session" and e.get("name") == "model_run"
    )
    per_node: dict[str, list[float]] = {}
    for event in trace:
        name = event.get("name", "")
        if event.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        run = next((i for i, (t0, t1) in enumerate(runs) if t0 <= event["ts"] <= t1), None)
        if run is None:
            continue
        node = event.get("args", {}).get("node_name") or name[: -len("_kernel_time")]
        per_node.setdefault(node, [0.0] * len(runs))[run] += event["dur"] / 1000.0
    return per_node
