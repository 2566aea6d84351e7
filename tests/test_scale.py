"""Sweeps on a real local Ray (2 CPUs, one module-scoped cluster): points as tasks, one conversion per content
hash, a board resource never double-booked, failures retried or reported per point, a killed sweep resumed.
Targets are the ones that run here cheaply: ONNX Runtime on this machine (holding ``host-timing``, capacity 1)
and the MCU cost model (CPU only)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeprune.scale import ModelEntry, SweepSpec, Target, run_sweep
from edgeprune.scale.targets import HOST_TIMING

ray = pytest.importorskip("ray", reason="the scale extra (pip install 'edgeprune[scale]')")

ROOT = Path(__file__).resolve().parent.parent
SERIAL_BOARD = Target.parse("serial:nucleo-l4r5zi:/dev/ttyACM0")


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scale-state")


@pytest.fixture(scope="module", autouse=True)
def local_ray(state_dir: Path):
    """One local Ray for the module; workers import this worktree's edgeprune and tests/scale_metrics.py."""
    env = {
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
        "EDGEPRUNE_TEST_SCALE_DIR": str(state_dir),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    ray.init(
        num_cpus=2, resources={HOST_TIMING: 1, SERIAL_BOARD.resource: 1}, include_dashboard=False, log_to_driver=False
    )
    yield
    ray.shutdown()
    for k, v in saved.items():
        os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def _spec(*models: ModelEntry, budgets=(0.0, 0.3), targets=("engine:onnxruntime",), retries=1) -> SweepSpec:
    return SweepSpec(models, budgets, tuple(Target.parse(t) for t in targets), retries=retries)


def test_points_run_as_tasks_with_one_conversion_per_content_hash_and_the_timing_resource_held_alone(
    tmp_path: Path,
) -> None:
    # the same model listed twice (same seed: identical weights) -> one conversion per budget, not two
    spec = _spec(
        ModelEntry("simple", label="a"),
        ModelEntry("simple", label="b"),
        budgets=(0.0, 0.3, 0.5),
        targets=("engine:onnxruntime", "cost:nucleo-l4r5zi"),
    )
    result = run_sweep(spec, tmp_path)
    assert result.executor == "on Ray (local)" and not result.failures
    assert len(result.records) == 12 and result.exports == 3  # 6 ONNX Runtime points, 3 distinct models
    onnx = [r for r in result.records.values() if r["target"] == "engine:onnxruntime"]
    done = {r["id"] for r in onnx}
    for budget in (0.0, 0.3, 0.5):
        a, b = (next(r for r in onnx if r["model"] == m and r["budget"] == budget) for m in "ab")
        assert a["export"] == b["export"] and a["params"] == b["params"]
    assert len({r["export"] for r in onnx}) == 3
    assert all(r["pid"] != os.getpid() for r in result.records.values())  # measured in Ray's workers
    # host-timing has capacity 1: no two ONNX Runtime timings overlap
    spans = sorted((r["started"], r["ended"]) for r in onnx)
    assert all(end <= nxt_start for (_, end), (nxt_start, _) in itertools.pairwise(spans)), spans
    # records are the measure/ Measurement JSON, and a Pareto table per target
    assert onnx[0]["measurement"]["provenance"]["kind"] == "measured"
    assert (tmp_path / "pareto-engine_onnxruntime.md").read_text().count("| a |") == 3
    assert json.loads((tmp_path / "sweep.json").read_text())["targets"] == ["engine:onnxruntime", "cost:nucleo-l4r5zi"]
    # the conversions are kept in the run directory: points measured again convert nothing
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == sorted({r["export"] for r in onnx})
    for r in onnx:
        (tmp_path / "points" / f"{r['id']}.json").unlink()
    again = run_sweep(spec, tmp_path)
    assert (again.exports, again.reused, again.skipped, len(again.records)) == (0, 3, 6, 12)
    assert {r["id"]: r["export"] for r in onnx} == {i: r["export"] for i, r in again.records.items() if i in done}


def test_a_board_resource_is_held_by_one_task_at_a_time() -> None:
    """``board:<name>:<port>`` as a Ray resource of capacity 1 (no board here: the task only holds it)."""
    import time

    @ray.remote(num_cpus=0, resources={SERIAL_BOARD.resource: 1})
    def hold() -> tuple[float, float]:
        start = time.time()
        time.sleep(0.3)
        return start, time.time()

    spans = sorted(ray.get([hold.remote() for _ in range(3)]))
    assert all(end <= nxt for (_, end), (nxt, _) in itertools.pairwise(spans)), spans


def test_a_failing_step_is_retried_then_reported_per_point(tmp_path: Path) -> None:
    spec = _spec(
        ModelEntry("simple", metric="scale_metrics:flaky", label="flaky"),
        ModelEntry("simple", metric="scale_metrics:broken", label="broken"),
        targets=("cost:nucleo-l4r5zi",),
        retries=1,
    )
    result = run_sweep(spec, tmp_path)
    assert sorted(result.records) == ["flaky--0.000--cost_nucleo-l4r5zi", "flaky--0.300--cost_nucleo-l4r5zi"]
    assert sorted(result.failures) == ["broken--0.000--cost_nucleo-l4r5zi", "broken--0.300--cost_nucleo-l4r5zi"]
    assert all("broken metric" in why for why in result.failures.values())
    assert json.loads((tmp_path / "failures.json").read_text()) == result.failures


def test_bad_input_is_refused_per_point_without_retries(tmp_path: Path) -> None:
    spec = _spec(ModelEntry("simple", metric="no_such_module:fn"), targets=("cost:nucleo-l4r5zi",), retries=3)
    result = run_sweep(spec, tmp_path)
    assert not result.records and len(result.failures) == 2
    assert all("cannot be loaded" in why for why in result.failures.values())


def test_a_killed_sweep_resumes_with_the_recorded_points_skipped(tmp_path: Path) -> None:
    args = [
        "sweep",
        "--serial",
        "--model",
        "simple",
        "--metric",
        "scale_metrics:dies_second",
        "--budget",
        "0",
        "--budget",
        "0.3",
        "--budget",
        "0.5",
        "--target",
        "cost:nucleo-l4r5zi",
        "--out",
        str(tmp_path),
    ]
    killed = subprocess.run(
        [sys.executable, "-m", "edgeprune.cli", *args], capture_output=True, text=True, timeout=120, env=os.environ
    )
    assert killed.returncode == -9, killed.stderr  # the metric killed the sweep on its second point
    first = list((tmp_path / "points").glob("*.json"))
    assert len(first) == 1
    before = first[0].read_bytes(), first[0].stat().st_mtime_ns
    messages: list[str] = []
    spec = SweepSpec.from_dict(json.loads((tmp_path / "sweep.json").read_text()))
    result = run_sweep(spec, tmp_path, progress=messages.append)
    assert result.skipped == 1 and len(result.records) == 3 and not result.failures
    assert (first[0].read_bytes(), first[0].stat().st_mtime_ns) == before
    assert "resuming: 1 point(s) already recorded, 2 to go" in messages


def test_a_killed_sweep_resumed_converts_nothing_it_converted_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Models a and b come out identical (one hash per budget). Serially the sweep prepares b at 0.3 first,
    converts and measures it, then dies preparing b at 0: the resumed run needs a at 0.3 (converted before the
    kill, kept in exports/) and the models at 0 (one conversion)."""
    monkeypatch.setenv("EDGEPRUNE_TEST_SCALE_DIR", str(tmp_path / "state"))  # dies_second counts from 1 here
    spec = _spec(
        ModelEntry("simple", metric="scale_metrics:dies_second", label="a"),
        ModelEntry("simple", metric="scale_metrics:dies_second", label="b"),
    )
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "sweep.json").write_text(json.dumps(spec.to_dict()))
    cmd = [sys.executable, "-m", "edgeprune.cli", "sweep", "--serial", "--out", str(tmp_path / "run")]
    killed = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=os.environ)
    assert killed.returncode == -9, killed.stderr
    assert [p.name for p in (tmp_path / "run" / "points").iterdir()] == ["b--0.300--engine_onnxruntime.json"]
    assert len(list((tmp_path / "run" / "exports").iterdir())) == 1
    messages: list[str] = []
    result = run_sweep(spec, tmp_path / "run", use_ray=False, progress=messages.append)
    assert len(result.records) == 4 and not result.failures
    assert (result.exports, result.reused) == (1, 1), messages  # without the store: 2 conversions
    assert "1 export(s) reused from" in " ".join(messages)
    a, b = (result.records[f"{m}--0.300--engine_onnxruntime"]["export"] for m in "ab")
    assert a == b


def test_two_ray_tasks_storing_one_hash_leave_one_intact_entry_that_both_use(tmp_path: Path) -> None:
    """Both tasks write a 16 MB entry for the same hash at once (a file barrier starts them together)."""
    from edgeprune.scale.cache import PackedExport, converter_versions
    from edgeprune.scale.store import ExportStore

    key = "cd" * 32

    @ray.remote(num_cpus=1)
    def put(note: str) -> PackedExport:
        import time

        (tmp_path / f"ready-{note}").touch()
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("ready-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        files = {"files/model.onnx": note.encode() * ((1 << 24) // len(note)), "files/tflm/model_data.cc": b"//"}
        return ExportStore(tmp_path / "exports").put(PackedExport(key, {"notes": [note]}, files, converter_versions()))

    first, second = ray.get([put.remote("first"), put.remote("second")])
    stored = ExportStore(tmp_path / "exports").get(key)
    assert stored is not None and first == second == stored  # the loser returned the winner's entry
    assert [p.name for p in (tmp_path / "exports").iterdir()] == [key]  # no temporary directory left


def test_spec_errors_are_clear(tmp_path: Path) -> None:
    from edgeprune.errors import EdgepruneError
    from edgeprune.scale.executor import _reachable

    with pytest.raises(EdgepruneError, match="nothing answers at the Ray address"):
        _reachable("127.0.0.1:1")  # Ray itself would keep retrying for minutes
    with pytest.raises(EdgepruneError, match="not understood"):
        Target.parse("serial:nucleo-l4r5zi")
    with pytest.raises(EdgepruneError, match="no calibration samples"):
        _spec(ModelEntry("simple"), targets=("emulate:nucleo-l4r5zi",))
    (tmp_path / "s.toml").write_text('budgets = [0.2]\ntargets = ["cost:x"]\nmodels = [{spec = "simple", oops = 1}]')
    with pytest.raises(EdgepruneError, match="oops"):
        SweepSpec.load(tmp_path / "s.toml")


def test_without_ray_the_sweep_runs_serially_and_says_so(tmp_path: Path) -> None:
    code = "import sys; sys.modules['ray'] = None; from edgeprune.cli import main; sys.exit(main(sys.argv[1:]))"
    args = ["sweep", "--model", "simple", "--budget", "0.3", "--target", "cost:nucleo-l4r5zi", "--out", str(tmp_path)]
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = " ".join(proc.stderr.split())
    assert "Ray is not installed" in out and "serially in this process" in out
    assert len(list((tmp_path / "points").glob("*.json"))) == 1


def test_a_toml_spec_reads_paths_relative_to_itself(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(
        'budgets = [0.2]\ntargets = ["cost:nucleo-l4r5zi"]\n'
        'models = ["simple", {spec = "tdmpc", calib = "calib/t.npz", label = "t"}]\n'
    )
    spec = SweepSpec.load(tmp_path / "s.toml")
    assert [m.name for m in spec.models] == ["simple", "t"]
    assert spec.models[1].calib == str(tmp_path.resolve() / "calib" / "t.npz")


@pytest.mark.parametrize("strategy", ["greedy", "knapsack"])
def test_optimize_evaluates_a_rounds_candidates_as_ray_tasks_and_finds_the_serial_points(
    tmp_path: Path, state_dir: Path, strategy: str
) -> None:
    import scale_metrics
    import torch

    from edgeprune.boards import load_board
    from edgeprune.boards.runner import CostModelRunner
    from edgeprune.measure.runner import Subject
    from edgeprune.models import create_model
    from edgeprune.pipeline import Goals, OptimizeOptions, allocation, fidelity_metric, optimize
    from edgeprune.scale.executor import RayExecutor

    torch.manual_seed(0)
    model = create_model("simple").eval()
    inputs = model.example_inputs(1)
    runner = CostModelRunner(load_board("nucleo-l4r5zi"))
    baseline = runner.measure(Subject("m", model, inputs, tmp_path / "baseline")).latency_ms
    goals = Goals(latency_ms=0.5 * baseline, max_drop=1.0)  # per-call costs: 0.3 would need ~85 % cut everywhere
    options = OptimizeOptions(strategy=allocation.strategy(strategy), step=0.1)
    evaluate = fidelity_metric(model, model.example_inputs(16))

    serial = optimize(model, inputs, runner, evaluate, goals, tmp_path / "serial", options)
    on_ray = optimize(model, inputs, runner, scale_metrics.recording(evaluate), goals, tmp_path / "ray", options,
                      executor=RayExecutor(ray, retries=0))  # fmt: skip

    def facts(result):
        return [(p.budgets, p.metric, p.accepted, p.changed, p.result.latency_ms) for p in result.points]

    assert serial.met and len(serial.points) > 2
    assert facts(on_ray) == facts(serial) and on_ray.chosen.iteration == serial.chosen.iteration
    pids = {int(f.name.split("-")[1]) for f in (state_dir / "evaluated").iterdir()}
    assert pids - {os.getpid()}, "every candidate was evaluated in this process, none in a Ray worker"


def test_cli_optimize_parallel_on_ray_and_serially_without_it(tmp_path: Path) -> None:
    from edgeprune.cli import main

    args = ["optimize", "simple", "--board", "nucleo-l4r5zi", "--latency-ms", "0.05", "--eval", "fidelity",
            "--strategy", "greedy", "--max-iterations", "3"]  # fmt: skip
    main([*args, "--parallel", "--out", str(tmp_path / "ray")])  # goal met or not: exit 0 or 1, points recorded
    assert len((tmp_path / "ray" / "iterations.jsonl").read_text().splitlines()) == 4
    assert main([*args, "--address", "localhost:1", "--out", str(tmp_path / "x")]) == 2  # --address needs --parallel
    code = "import sys; sys.modules['ray'] = None; from edgeprune.cli import main; sys.exit(main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", code, *args, "--parallel", "--out", str(tmp_path / "serial")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert "warning: Ray is not installed" in " ".join(proc.stderr.split()), proc.stdout + proc.stderr
    serial = (tmp_path / "serial" / "iterations.jsonl").read_text().splitlines()
    parallel = (tmp_path / "ray" / "iterations.jsonl").read_text().splitlines()
    assert [json.loads(a)["budgets"] for a in serial] == [json.loads(b)["budgets"] for b in parallel]


def test_optimize_refuses_a_metric_ray_cannot_send_with_a_clear_error(tmp_path: Path) -> None:
    import threading

    import torch

    from edgeprune.boards import load_board
    from edgeprune.boards.runner import CostModelRunner
    from edgeprune.errors import EdgepruneError
    from edgeprune.models import create_model
    from edgeprune.pipeline import Goals, optimize
    from edgeprune.scale.executor import RayExecutor

    model = create_model("simple").eval()
    inputs = model.example_inputs(1)
    lock = threading.Lock()  # a metric holding a lock cannot be pickled

    def evaluate(m: torch.nn.Module) -> float:
        with lock:
            return 0.0

    with pytest.raises(EdgepruneError, match="cannot be sent to the Ray workers"):
        optimize(model, inputs, CostModelRunner(load_board("nucleo-l4r5zi")), evaluate, Goals(latency_ms=1e-6),
                 tmp_path / "run", executor=RayExecutor(ray, retries=0))  # fmt: skip
