"""Child process for the TFLM interpreter: ``python _tflm_probe.py MODE ...`` (run as a script so
that it imports only numpy and tflite_micro, not edgeprune/torch).

The TFLM Python interpreter can crash the whole process (SIGSEGV after "All temp buffers must be
freed") when an allocation fails at some arena sizes, so every use of it runs here:

- ``bisect MODEL LO HI N_INPUTS``: prints ``try N`` before and ``ok N`` / ``fail N`` after each
  probe and ``min N`` at the end; the parent treats a crash during ``try N`` as "N does not fit".
- ``time MODEL ARENA N_INPUTS RUNS WARMUP``: invoke on zero inputs, print one ``ns N`` line per timed run.
- ``run MODEL ARENA IN_NPZ OUT_NPZ``: load, invoke on every input set of ``IN_NPZ`` (keys
  ``s{k}_i{i}``; ``-`` for one set of zeros), write outputs ``s{k}_o{j}`` to ``OUT_NPZ`` (``-``: none),
  then ``print_allocations`` to stderr. Exit code 3 when TFLM rejects the model (log on stderr).
"""

from __future__ import annotations

import os
import sys

import numpy as np


def _load(data: bytes, arena: int):
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(data, arena_size=arena)


def _zeros(it, n_inputs: int) -> list[np.ndarray]:
    return [np.zeros(d["shape"], dtype=d["dtype"]) for d in (it.get_input_details(i) for i in range(n_inputs))]


def fits(data: bytes, arena: int, n_inputs: int) -> bool:
    try:
        it = _load(data, arena)
        for i, x in enumerate(_zeros(it, n_inputs)):
            it.set_input(x, i)
        it.invoke()
    except (RuntimeError, ValueError):
        return False
    return True


def bisect(data: bytes, lo: int, hi: int, n_inputs: int) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # TFLM reports every failed allocation on C stderr
    while hi - lo > 1:
        mid = (lo + hi) // 2
        print(f"try {mid}", flush=True)
        ok = fits(data, mid, n_inputs)
        print(f"{'ok' if ok else 'fail'} {mid}", flush=True)
        hi, lo = (mid, lo) if ok else (hi, mid)
    print(f"min {hi}", flush=True)


def run(data: bytes, arena: int, n_inputs: int, in_npz: str, out_npz: str) -> int:
    try:
        it = _load(data, arena)
        if in_npz == "-":
            sets = [_zeros(it, n_inputs)]
        else:
            with np.load(in_npz) as z:
                n_sets = len({k.split("_")[0] for k in z.files})
                sets = [[z[f"s{k}_i{i}"] for i in range(n_inputs)] for k in range(n_sets)]
        outputs = {}
        for k, arrays in enumerate(sets):
            for i, x in enumerate(arrays):
                it.set_input(x, i)
            it.invoke()
            j = 0
            while True:
                try:
                    outputs[f"s{k}_o{j}"] = np.array(it.get_output(j))
                except (IndexError, RuntimeError, ValueError):
                    break
                j += 1
    except (RuntimeError, ValueError):
        return 3
    if out_npz != "-":
        np.savez(out_npz, **outputs)
    sys.stderr.flush()
    it.print_allocations()
    return 0


def time_invokes(data: bytes, arena: int, n_inputs: int, runs: int, warmup: int) -> int:
    import time

    try:
        it = _load(data, arena)
        for i, x in enumerate(_zeros(it, n_inputs)):
            it.set_input(x, i)
        for _ in range(warmup):
            it.invoke()
        for _ in range(runs):
            t0 = time.perf_counter_ns()
            it.invoke()
            print(f"ns {time.perf_counter_ns() - t0}", flush=True)
    except (RuntimeError, ValueError):
        return 3
    return 0


def main(argv: list[str]) -> int:
    mode, path = argv[0], argv[1]
    with open(path, "rb") as f:
        data = f.read()
    if mode == "bisect":
        bisect(data, int(argv[2]), int(argv[3]), int(argv[4]))
        return 0
    if mode == "time":
        return time_invokes(data, int(argv[2]), int(argv[3]), int(argv[4]), int(argv[5]))
    return run(data, int(argv[2]), int(argv[3]), argv[4], argv[5])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
