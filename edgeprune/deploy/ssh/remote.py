"""The benchmark runner that runs ON the board: ``python3 runner.py run '<request json>'`` prints one JSON line.

Self-contained on purpose: a Jetson or Raspberry Pi usually has no edgeprune, so this file is copied to the board
(by ``edgeprune.deploy.ssh.bench``) and needs only the standard library and numpy, plus whichever runtime it
times: ONNX Runtime, PyTorch (a ``torch.export`` program: no pickled modules, no model code on the board) and
TensorRT through NVIDIA's ``trtexec`` (present on every JetPack; engines and the timing cache are kept on the
board, keyed by the ONNX hash, precision and TensorRT version). It reports raw samples and raw profiles only:
the host turns them into :class:`~edgeprune.measure.record.Measurement` (one implementation of the
statistics, the trtexec parser and the node → component attribution). The timing loops are
:mod:`edgeprune.measure.timing` (the host's runners use the same file; it is copied beside this one as
``ep_timing.py``). Where edgeprune is installed
it also runs as ``python -m edgeprune.deploy.ssh.remote run '<request json>'``.

Exit codes: 0 ok (per-runtime failures are reported inside the JSON), 3 numpy missing, 2 bad request.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata, util

if __package__:
    from edgeprune.measure.timing import hook_component_times, ort_node_times, time_samples
else:  # on the board: copied beside this file as TIMING_FILE (edgeprune is usually not installed there)
    from ep_timing import hook_component_times, ort_node_times, time_samples  # type: ignore[no-redef]

FORMAT = 1
EXIT_MISSING = 3
RESULT_MARKER = "EDGEPRUNE-RESULT "  # prefixes the one JSON line, so stray prints by libraries cannot break it
RUNTIMES = ("onnxruntime", "pytorch-eager", "tensorrt")
TRTEXEC_PATHS = ("/usr/src/tensorrt/bin/trtexec", "/usr/local/tensorrt/bin/trtexec", "/opt/tensorrt/bin/trtexec")
PACKAGES = {"onnxruntime": ("onnxruntime", "onnxruntime-gpu"), "pytorch-eager": ("torch",), "tensorrt": ("tensorrt",)}
MODULES = {"onnxruntime": "onnxruntime", "pytorch-eager": "torch"}
TOOL_TIMEOUT_S = 10


def package_version(runtime: str) -> str | None:
    """The installed version of a runtime's Python package (``None``: not importable here)."""
    for dist in PACKAGES[runtime]:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    module = MODULES.get(runtime, runtime)
    return "installed (version unknown)" if util.find_spec(module) is not None else None


def find_trtexec(explicit: str | None = None) -> str | None:
    """``explicit`` if given (and executable), else trtexec on PATH or where JetPack/TensorRT installs put it."""
    if explicit:
        return explicit if os.access(os.path.expanduser(explicit), os.X_OK) else None
    return shutil.which("trtexec") or next((p for p in TRTEXEC_PATHS if os.access(p, os.X_OK)), None)


def banner_version(code: str) -> str:
    """trtexec's ``[TensorRT vNNNN]`` banner code as a version: ``8205`` -> 8.2.5, ``101600`` -> 10.16.0."""
    major, minor, patch = (code[:-4], code[-4:-2], code[-2:]) if len(code) > 4 else (code[0], code[1], code[2:])
    return f"{int(major)}.{int(minor)}.{int(patch)}"


def trtexec_version(exe: str) -> str | None:
    """The TensorRT version trtexec reports in its banner (works where the Python bindings are not visible)."""
    try:
        proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"\[TensorRT v(\d+)\]", proc.stdout + proc.stderr)
    return banner_version(m.group(1)) if m else None


def _tool(argv: list[str]) -> str:
    """A tool's output, or 'unavailable (why)'."""
    if shutil.which(argv[0]) is None:
        return f"unavailable ({argv[0]} not installed)"
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({type(exc).__name__})"
    out = (proc.stdout + proc.stderr).strip()
    return out if proc.returncode == 0 else f"unavailable (exit {proc.returncode}: {out[-200:]})"


def _read(path: str) -> str | None:
    try:
        with open(path, errors="replace") as f:
            return f.read().replace("\x00", "").strip()
    except OSError:
        return None


def _cpu_model() -> str:
    text = _read("/proc/cpuinfo") or ""
    for key in ("model name", "Model", "Hardware", "CPU part"):
        for line in text.splitlines():
            if line.startswith(key) and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _dpkg_version(*packages: str) -> str | None:
    for pkg in packages:
        out = _tool(["dpkg-query", "-W", "-f=${Version}", pkg])
        if out and not out.startswith("unavailable"):
            return out
    return None


def environment(trtexec: str | None = None) -> dict[str, str]:
    """What the board is and how it is set up; every entry says 'unavailable (why)' when it cannot be read."""
    uname = platform.uname()
    exe = find_trtexec(trtexec)
    trt = (trtexec_version(exe) if exe else None) or package_version("tensorrt")
    trt = trt or _dpkg_version("tensorrt", "libnvinfer-bin", "libnvinfer10", "libnvinfer8")
    env = {
        "hostname": uname.node,
        "uname": f"{uname.system} {uname.release} {uname.machine}",
        "cpu": _cpu_model(),
        "cpu_count": str(os.cpu_count()),
        "board_model": _read("/proc/device-tree/model") or "unavailable (no /proc/device-tree/model)",
        "l4t": (_read("/etc/nv_tegra_release") or "unavailable (no /etc/nv_tegra_release: not a Jetson?)").splitlines()[
            0
        ],
        "jetpack": _dpkg_version("nvidia-jetpack") or "unavailable (no nvidia-jetpack package)",
        "tensorrt": trt or "unavailable (no TensorRT)",
        "trtexec": exe or "unavailable (not found)",
        "nvpmodel": _tool(["nvpmodel", "-q"]),
        "jetson_clocks": _tool(["jetson_clocks", "--show"]),
        "python": platform.python_version(),
    }
    for runtime in ("onnxruntime", "pytorch-eager"):
        env[MODULES[runtime]] = package_version(runtime) or "not installed"
    env["numpy"] = metadata.version("numpy")
    return env


def run_onnxruntime(bundle: dict, inputs: list, req: dict) -> dict:
    import onnxruntime as ort

    providers = req.get("ort_providers") or ["CPUExecutionProvider"]
    missing = [p for p in providers if p not in ort.get_available_providers()]
    if missing:
        return {"error": f"ONNX Runtime here has no {', '.join(missing)} (has {ort.get_available_providers()})"}

    def session(profile_prefix: str | None = None):
        opts = ort.SessionOptions()
        if req.get("threads"):
            opts.intra_op_num_threads, opts.inter_op_num_threads = req["threads"], 1
        if profile_prefix:
            opts.enable_profiling, opts.profile_file_prefix = True, profile_prefix
        return ort.InferenceSession(bundle["onnx"], opts, providers=providers)

    sess = session()
    feeds = {spec.name: x for spec, x in zip(sess.get_inputs(), inputs)}  # noqa: B905  (boards may run Python 3.8)
    samples = time_samples(lambda: sess.run(None, feeds), req["runs"], req["warmup"])
    with tempfile.TemporaryDirectory() as tmp:
        prof = session(os.path.join(tmp, "ort"))
        for _ in range(req.get("profile_runs", 20)):
            prof.run(None, feeds)
        with open(prof.end_profiling()) as f:
            node_ms = ort_node_times(json.load(f))
    threads = f", {req['threads']} threads" if req.get("threads") else ""
    return {"how": f"ONNX Runtime {ort.__version__}, {'/'.join(providers)}{threads}", "samples_ms": samples,
            "node_ms": node_ms, "artifact_bytes": os.path.getsize(bundle["onnx"])}  # fmt: skip


def run_pytorch(bundle: dict, inputs: list, req: dict) -> dict:
    import torch

    if req.get("threads"):
        torch.set_num_threads(req["threads"])
    try:
        program = torch.export.load(bundle["program"])
        module = program.module()
    except Exception as exc:  # version skew: the program was written by the host's torch
        return {"error": f"torch {torch.__version__} here cannot load {bundle['program']} (written by torch "
                         f"{bundle.get('torch', '?')}): {type(exc).__name__}: {exc}"}  # fmt: skip
    args = [torch.from_numpy(x) for x in inputs]

    def call() -> None:
        with torch.inference_mode():
            module(*args)

    samples = time_samples(call, req["runs"], req["warmup"])
    out = {"how": f"PyTorch {torch.__version__} eager (torch.export program), cpu, {torch.get_num_threads()} threads",
           "samples_ms": samples, "params": sum(p.numel() for p in module.parameters()),
           "artifact_bytes": os.path.getsize(bundle["program"])}  # fmt: skip
    try:
        out["component_ms"] = _export_component_times(torch, program, args, req.get("profile_runs", 20))
    except Exception as exc:  # per-component times are a bonus: never lose the total for them
        out["component_error"] = f"{type(exc).__name__}: {exc}"
    return out


def _export_component_times(torch, program, args: list, runs: int) -> dict[str, float]:
    """Per top-level submodule times of the unflattened program (module hierarchy restored, hooks allowed)."""
    model = torch.export.unflatten(program)
    fired: set[str] = set()
    candidates = {f"{name}.{sub}" if sub else name: (name, m)
                  for name, child in model.named_children()
                  for sub, m in [("", child), *child.named_children()]}  # fmt: skip
    probes = [m.register_forward_pre_hook(lambda _m, _a, key=key: fired.add(key)) for key, (_, m) in candidates.items()]
    with torch.inference_mode():
        model(*args)
    for h in probes:
        h.remove()
    roots: dict[str, list] = {}
    for key, (name, m) in candidates.items():  # a called child is the root; a container's called children otherwise
        if key in fired and (key == name or name not in fired):
            roots.setdefault(name, []).append(m)

    def call() -> None:
        with torch.inference_mode():
            model(*args)

    return hook_component_times(roots, call, runs)


def run_tensorrt(bundle: dict, req: dict, env: dict) -> dict:
    opts = req.get("tensorrt", {})
    exe = find_trtexec(opts.get("trtexec"))
    if exe is None:
        return {"missing": "trtexec", "error": "no trtexec on the board (JetPack puts it in /usr/src/tensorrt/bin)"}
    precision = opts.get("precision", "fp16")
    version = env["tensorrt"].split()[0].replace("/", "_")
    with open(bundle["onnx"], "rb") as f:
        onnx_sha = hashlib.sha256(f.read()).hexdigest()[:16]
    cache = os.path.join("cache", "tensorrt")
    os.makedirs(cache, exist_ok=True)
    engine = os.path.join(cache, f"{onnx_sha}-{precision}-trt{version}.engine")
    timing_cache = os.path.join(cache, f"timing-trt{version}.cache")
    built = not os.path.exists(engine)
    with tempfile.TemporaryDirectory() as tmp:
        profile, times = os.path.join(tmp, "profile.json"), os.path.join(tmp, "times.json")
        argv = [exe]
        if built:
            argv += [f"--onnx={bundle['onnx']}", f"--saveEngine={engine}", f"--timingCacheFile={timing_cache}",
                     "--profilingVerbosity=detailed"] + (["--fp16"] if precision == "fp16" else [])  # fmt: skip
            argv += ["--int8"] if precision == "int8" else []
        else:
            argv += [f"--loadEngine={engine}"]
        argv += [f"--iterations={req['runs']}", "--duration=0", "--separateProfileRun", "--dumpProfile",
                 f"--exportProfile={profile}", f"--exportTimes={times}"]  # fmt: skip
        t0 = time.perf_counter()  # no timeout here: the host runs this runner under `timeout`, which stops the group
        proc = subprocess.run(argv, capture_output=True, text=True)
        out = {"how": f"TensorRT {env['tensorrt']} trtexec, {precision}", "log": proc.stdout + proc.stderr,
               "argv": argv, "engine": engine, "built": built, "seconds": time.perf_counter() - t0}  # fmt: skip
        if proc.returncode != 0:
            if os.path.exists(engine):  # unloadable (older TensorRT) or half-written: rebuild next time
                os.remove(engine)
            return {**out, "error": f"trtexec exited {proc.returncode}"}
        for key, path in (("profile", profile), ("times", times)):
            out[key] = _read(path)
        out["artifact_bytes"] = os.path.getsize(engine)
    return out


def run(req: dict) -> dict:
    import numpy as np

    os.chdir(os.path.expanduser(req["root"]))
    trtexec = req.get("tensorrt", {}).get("trtexec")
    env = environment(trtexec)
    available = {rt for rt in RUNTIMES if (find_trtexec(trtexec) if rt == "tensorrt" else package_version(rt))}
    wanted = req.get("runtimes") or sorted(available)
    results = []
    for name, rel in req["bundles"].items():
        with open(os.path.join(rel, "bundle.json")) as f:
            bundle = {k: os.path.join(rel, v) if k in ("onnx", "program") else v for k, v in json.load(f).items()}
        inputs = [np.load(os.path.join(rel, p), allow_pickle=False) for p in bundle["inputs"]]
        for runtime in wanted:
            entry = {"bundle": name, "runtime": runtime, "warmup": req["warmup"]}
            if runtime not in available:
                entry.update(missing=runtime, error=f"{runtime} is not installed on the board")
            elif runtime == "onnxruntime":
                entry.update(run_onnxruntime(bundle, inputs, req))
            elif runtime == "pytorch-eager":
                entry.update(run_pytorch(bundle, inputs, req))
            else:
                entry.update(run_tensorrt(bundle, req, env))
            results.append(entry)
    return {"format": FORMAT, "environment": env, "available": sorted(available), "results": results}


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] != "run":
        print("usage: runner.py run '<request json>'", file=sys.stderr)
        return 2
    if util.find_spec("numpy") is None:
        print(RESULT_MARKER + json.dumps({"format": FORMAT, "missing": ["numpy"], "python": sys.executable}))
        return EXIT_MISSING
    result = run(json.loads(argv[2]))
    print(RESULT_MARKER + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
