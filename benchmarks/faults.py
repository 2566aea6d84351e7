"""Fault injection against the real emulated board: >= 1,000 faults (dropped bytes, flipped bits, delays,
truncated chunks, disconnects) injected by a pty proxy between the host and the QEMU firmware's UART, one
``bench`` session after another. Goal: 0 wrong values accepted, 0 tracebacks, 0 hangs; every session ends in
the clean session's numbers (up to the timer's resolution) or a clear ``LinkError`` within its deadline.

Resumable: each session is appended to ``<out>.sessions.jsonl`` as it ends (session k uses proxy seed k), so a
run that was stopped goes on from the next session when started again with the same options; ``--max-minutes``
ends a chunk early. The summary (JSON + a Markdown table) is written from all recorded sessions.

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

WRONG, TRACEBACK, HANG = "WRONG VALUE ACCEPTED", "TRACEBACK", "HANG (over the session deadline)"
IDLE_STOP = 20  # sessions in a row without a fault injected: the setup is broken, not the link


def one_session(port: str, seed: int, budget: int, rate: float, model, tflite: bytes, want: list[float]) -> dict:
    """One bench session through a fresh proxy with fault seed ``seed``: its outcome, faults and duration."""
    t0 = time.monotonic()
    error = ""
    with FaultProxy(port, seed=seed, budget=budget, rate=rate) as proxy:
        try:
            got = numbers(session(proxy.port, model, tflite, seed=0))
            outcome = "correct result" if same(got, want) else WRONG
        except EdgepruneError as exc:
            outcome, error = f"clear error ({type(exc).__name__})", exc.problem
        except Exception:
            outcome, error = TRACEBACK, traceback.format_exc()[-1500:]
    seconds = time.monotonic() - t0
    return {"seed": seed, "outcome": HANG if seconds > SESSION_DEADLINE_S else outcome, "error": error,
            "faults": dict(proxy.injected), "relayed": dict(proxy.relayed), "seconds": round(seconds, 3)}  # fmt: skip


def run(log: Path, faults: int, budget: int, rate: float, max_minutes: float) -> list[dict]:
    """Sessions recorded in ``log`` plus new ones until ``faults`` are injected (or ``max_minutes`` pass)."""
    done = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    total = sum(sum(s["faults"].values()) for s in done)
    if total >= faults:
        return done
    end = time.monotonic() + 60 * max_minutes
    model, tflite = prepare(exported(MODEL))
    with emulate(BOARD, exported(MODEL), tempfile.mkdtemp(prefix="faults-")) as emu:
        with FaultProxy(emu.port, seed=0, budget=0) as clean:
            want = numbers(session(clean.port, model, tflite, seed=0))
        with log.open("a") as f:
            while total < faults and time.monotonic() < end:
                if len(done) >= IDLE_STOP and not any(s["faults"] for s in done[-IDLE_STOP:]):
                    print(f"STOPPED: {IDLE_STOP} sessions in a row without a fault injected", flush=True)
                    break
                rec = one_session(emu.port, len(done) + 1, budget, rate, model, tflite, want)
                f.write(json.dumps(rec, sort_keys=True) + "\n")
                f.flush()
                done.append(rec)
                total += sum(rec["faults"].values())
                if len(done) % 25 == 0:
                    print(f"{len(done)} sessions, {total} faults", flush=True)
    return done


def summary(sessions: list[dict], budget: int, rate: float) -> dict:
    outcomes = Counter(s["outcome"] for s in sessions)
    kinds: Counter = Counter()
    for s in sessions:
        kinds.update(s["faults"])
    errors = Counter(s["error"].split(":")[0][:70] for s in sessions if s["outcome"].startswith("clear error"))
    no_disconnect = [s for s in sessions if "disconnect" not in s["faults"]]
    seconds = [s["seconds"] for s in sessions]
    return {
        "board": BOARD, "model": MODEL, "sessions": len(sessions), "faults_injected": sum(kinds.values()),
        "faults_by_kind": dict(kinds), "outcomes": dict(outcomes), "errors": dict(errors.most_common()),
        "wrong_values_accepted": outcomes[WRONG], "tracebacks": outcomes[TRACEBACK], "hangs": outcomes[HANG],
        "traceback_samples": [s["error"] for s in sessions if s["outcome"] == TRACEBACK][:5],
        "sessions_without_fault": sum(not s["faults"] for s in sessions),
        "recovered_without_disconnect": [sum(s["outcome"] == "correct result" for s in no_disconnect),
                                         len(no_disconnect)],
        "session_seconds": {"max": max(seconds), "mean": sum(seconds) / len(seconds)},
        "session_deadline_s": SESSION_DEADLINE_S, "faults_per_session_max": budget, "fault_rate_per_chunk": rate,
    }  # fmt: skip


def markdown(result: dict, command: str) -> str:
    ok, n = result["recovered_without_disconnect"]
    rows = "\n".join(f"| {k} | {v} |" for k, v in sorted(result["outcomes"].items()))
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(result["faults_by_kind"].items()))
    return (
        f"# Fault injection: {result['faults_injected']} faults in {result['sessions']} sessions "
        f"({result['board']}, {result['model']})\n\n`{command}`\n\n| outcome | sessions |\n|---|---|\n{rows}\n\n"
        f"Faults: {kinds}. Wrong values accepted: {result['wrong_values_accepted']}, tracebacks: "
        f"{result['tracebacks']}, hangs: {result['hangs']}. Sessions without a disconnect that gave the clean "
        f"numbers: {ok} of {n}. Session time mean {result['session_seconds']['mean']:.1f} s, max "
        f"{result['session_seconds']['max']:.1f} s (deadline {result['session_deadline_s']:g} s).\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faults", type=int, default=1000)
    ap.add_argument("--budget", type=int, default=5, help="faults per session at most")
    ap.add_argument("--rate", type=float, default=0.1, help="probability of a fault per relayed chunk")
    ap.add_argument("--max-minutes", type=float, default=55.0, help="end this chunk after that long (resumable)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "faults.json")
    args = ap.parse_args()
    log = args.out.with_suffix(".sessions.jsonl")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sessions = run(log, args.faults, args.budget, args.rate, args.max_minutes)
    result = summary(sessions, args.budget, args.rate)
    table = Table(title=f"{result['faults_injected']} faults in {result['sessions']} sessions ({BOARD}, {MODEL})")
    table.add_column("outcome")
    table.add_column("sessions", justify="right")
    for k, v in sorted(result["outcomes"].items()):
        table.add_row(k, str(v))
    Console().print(table)
    print(json.dumps({k: result[k] for k in ("faults_by_kind", "wrong_values_accepted", "tracebacks", "hangs",
                                             "recovered_without_disconnect", "session_seconds")}))  # fmt: skip
    command = f"nice -n 10 .venv/bin/python benchmarks/faults.py --faults {args.faults} --budget {args.budget} " \
              f"--rate {args.rate}"  # fmt: skip
    write_atomic(args.out, json.dumps(result, indent=2, sort_keys=True) + "\n")
    write_atomic(args.out.with_suffix(".md"), markdown(result, command))


if __name__ == "__main__":
    main()
