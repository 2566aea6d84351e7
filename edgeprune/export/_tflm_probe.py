"""Worker for the arena bisection: ``python -m edgeprune.export._tflm_probe MODEL LO HI N_INPUTS``.

The TFLM Python interpreter can crash the process (SIGSEGV after "All temp buffers must be
freed") when allocation fails at some arena sizes, so the bisection runs here, in a child
process. It prints ``try N`` before and ``ok N`` / ``fail N`` after each probe; the parent treats
a crash during ``try N`` as "N does not fit" and restarts it on the narrowed interval.
"""

from __future__ import annotations

import os
import sys

import numpy as np


def fits(data: bytes, arena: int, n_inputs: int) -> bool:
    from tflite_micro.python.tflite_micro import runtime

    try:
        it = runtime.Interpreter.from_bytes(data, arena_size=arena)
        for i in range(n_inputs):
            d = it.get_input_details(i)
            it.set_input(np.zeros(d["shape"], dtype=d["dtype"]), i)
        it.invoke()
    except (RuntimeError, ValueError):
        return False
    return True


def main(argv: list[str]) -> int:
    path, lo, hi, n_inputs = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    with open(path, "rb") as f:
        data = f.read()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # TFLM reports every failed allocation on C stderr
    while hi - lo > 1:
        mid = (lo + hi) // 2
        print(f"try {mid}", flush=True)
        ok = fits(data, mid, n_inputs)
        print(f"{'ok' if ok else 'fail'} {mid}", flush=True)
        hi, lo = (mid, lo) if ok else (hi, mid)
    print(f"min {hi}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
