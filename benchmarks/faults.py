"""Fault injection against the real emulated board: >= 1,000 faults (dropped bytes, flipped bits, delays,
truncated chunks, disconnects) injected by a pty proxy between the host and the QEMU firmware's UART, one
``bench`` session after another. Goal: 0 wrong values accepted, 0 tracebacks, 0 hangs; every session ends in
the clean session's numbers (up to the timer's resolution) or a clear ``LinkError`` within its deadline.

Run: nice -n 10 .venv/bin/python benchmarks/faults.py [--faults 1000] [--out benchmarks/results/faults.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the proxy and session of the CI test

from deploy_exports import exported
from fault_proxy import FaultProxy
from test_deploy_faults import BOARD, MODEL, SESSION_DEADLINE_S, numbers, same, session

from edgeprune.deploy.mcu import emulate, prepare
from edgeprune.errors import EdgepruneError
from edgeprune.io import write_atomic


def run(faults: int, budget: int, rate: float) -> dict:
    model, tflite = prepare(exported(MODEL))
    outcomes: Counter = Counter()
    injected: Counter = Counter()
    errors: Counter = Counter()
    tracebacks: list[str] = []
    durations: list[float] = []
    with emulate(BOARD, exported(MODEL), tempfile.mkdtemp(prefix="faults-")) as emu:
        with FaultProxy(emu.port, seed=0, budget=0) as clean:
            want = numbers(session(clean.port, model, tflite, seed=0))
        seed, idle = 0, 0
        while sum(injected.values()) < faults:
            seed += 1
            if idle >= 20:  # sessions end before any fault is injected: the board or setup is broken, not the link
                outcomes["STOPPED: 20 sessions in a row without a fault injected"] += 1
                break
            if seed % 50 == 0:
                print(f"{seed} sessions, {sum(injected.values())} faults, {dict(outcomes)}", flush=True)
            t0 = time.monotonic()
            with FaultProxy(emu.port, seed=seed, budget=budget, rate=rate) as proxy:
                try:
                    got = numbers(session(proxy.port, model, tflite, seed=0))
                    outcomes["correct result" if same(got, want) else "WRONG VALUE ACCEPTED"] += 1
                except EdgepruneError as exc:
                    outcomes[f"clear error ({type(exc).__name__})"] += 1
                    errors[exc.problem.split(":")[0][:70]] += 1
                except Exception:
                    outcomes["TRACEBACK"] += 1
                    tracebacks.append(traceback.format_exc()[-1500:])
                injected.update(proxy.injected)
                idle = 0 if proxy.total else idle + 1
            durations.append(time.monotonic() - t0)
            if durations[-1] > SESSION_DEADLINE_S:
                outcomes["HANG (over the session deadline)"] += 1
    return {
        "board": BOARD, "model": MODEL, "sessions": seed, "faults_injected": sum(injected.values()),
        "faults_by_kind": dict(injected), "outcomes": dict(outcomes), "errors": dict(errors.most_common()),
        "wrong_values_accepted": outcomes["WRONG VALUE ACCEPTED"], "tracebacks": outcomes["TRACEBACK"],
        "hangs": outcomes["HANG (over the session deadline)"], "traceback_samples": tracebacks[:5],
        "session_seconds": {"max": max(durations), "mean": sum(durations) / len(durations)},
        "session_deadline_s": SESSION_DEADLINE_S, "faults_per_session_max": budget, "fault_rate_per_chunk": rate,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faults", type=int, default=1000)
    ap.add_argument("--budget", type=int, default=5, help="faults per session at most")
    ap.add_argument("--rate", type=float, default=0.1, help="probability of a fault per relayed chunk")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "faults.json")
    args = ap.parse_args()
    result = run(args.faults, args.budget, args.rate)
    table = Table(title=f"{result['faults_injected']} faults in {result['sessions']} sessions ({BOARD}, {MODEL})")
    table.add_column("outcome")
    table.add_column("sessions", justify="right")
    for k, v in sorted(result["outcomes"].items()):
        table.add_row(k, str(v))
    Console().print(table)
    print(json.dumps({k: result[k] for k in ("faults_by_kind", "wrong_values_accepted", "tracebacks", "hangs",
                                             "session_seconds")}))  # fmt: skip
    write_atomic(args.out, json.dumps(result, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
