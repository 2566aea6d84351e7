"""Several Ray nodes on this machine (separate raylet processes, ``ray.cluster_utils.Cluster``): do a sweep's
points spread across the nodes, and do measurements stay on the node that owns their target's resource?

Three nodes of one CPU each: ``head`` (``emulator`` slot), ``timing`` (``host-timing``: the only node where host
timings may run) and ``plain`` (CPU only). The real command connects to the cluster by address
(``edgeprune sweep --address``): simple and tdmpc × 3 budgets on ``engine:onnxruntime`` (holds host-timing)
and ``cost:nucleo-l4r5zi`` (CPU only, anywhere). Reports which node measured each point; the check is that every
ONNX Runtime point ran on ``timing``, and how the cost-model points spread. Writes sweep_cluster.json/.md.

Run: nice -n 10 .venv/bin/python benchmarks/sweep_cluster.py [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgeprune.extras import require
from edgeprune.io import write_atomic

NODES = {"head": {"emulator": 1}, "timing": {"host-timing": 1}, "plain": {}}
ARGS = [
    "--model",
    "simple",
    "--model",
    "tdmpc",
    "--budget",
    "0",
    "--budget",
    "0.3",
    "--budget",
    "0.5",
    "--target",
    "engine:onnxruntime",
    "--target",
    "cost:nucleo-l4r5zi",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    ray = require("ray", "scale", "the cluster benchmark")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": NODES["head"]})
    try:
        for name in ("timing", "plain"):
            cluster.add_node(num_cpus=1, resources=NODES[name])
        cluster.wait_for_nodes()
        ray.init(address=cluster.address)
        names = {}
        for node in ray.nodes():
            res = node["Resources"]
            names[node["NodeID"]] = next((n for n, r in NODES.items() if r and set(r) <= set(res)), "plain")
        ray.shutdown()
        with tempfile.TemporaryDirectory(prefix="edgeprune-sweep-cluster-") as tmp:
            cmd = [sys.executable, "-m", "edgeprune.cli", "sweep", *ARGS, "--out", tmp, "--address", cluster.address]
            start = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "RAY_ADDRESS": ""})
            seconds = time.perf_counter() - start
            if proc.returncode != 0:
                raise SystemExit(f"sweep failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
            records = [json.loads(p.read_text()) for p in sorted((Path(tmp) / "points").glob("*.json"))]
    finally:
        cluster.shutdown()
    by_target: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for r in records:
        by_target[r["target"]][names.get(r["node"], r["node"])] += 1
    pinned = set(by_target["engine:onnxruntime"]) == {"timing"}
    lines = ["| target | points per node |", "|---|---|"]
    lines += [f"| {t} | {', '.join(f'{n}: {c}' for n, c in sorted(cnt.items()))} |" for t, cnt in by_target.items()]
    lines.append(
        f"\n{len(records)} points in {seconds:.1f} s on {len(names)} nodes; host timings only on the "
        f"node declaring host-timing: {pinned}; cost-model points on "
        f"{len(by_target['cost:nucleo-l4r5zi'])} node(s)"
    )
    print("\n".join(lines))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"nodes": NODES, "points": len(records), "seconds": seconds, "per_target": by_target, "pinned": pinned}
    write_atomic(out / "sweep_cluster.json", json.dumps(summary, indent=2))
    write_atomic(out / "sweep_cluster.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
