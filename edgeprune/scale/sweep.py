"""``sweep``: models × budgets × targets, every point recorded in one run directory.

Points are independent: each model is pruned to each budget once (:func:`~edgeprune.scale.points.prepare`),
converted once per content hash (:func:`~edgeprune.scale.points.make_export`) and measured on each target
holding that target's resource (:func:`~edgeprune.scale.points.measure`), on Ray when it is installed, else
one after another in this process. The driver alone writes the run directory::

    run_dir/sweep.json              the spec
    run_dir/points/<id>.json        one record per measured point (the Measurement JSON and the point's facts)
    run_dir/failures.json           points that failed after their retries, with the error
    run_dir/pareto-<target>.md/.png the Pareto front (latency vs metric) per target
    run_dir/exports/<hash>/         each conversion, kept by content hash (edgeprune.scale.store)

A rerun on the same directory skips the points already recorded and converts nothing kept in ``exports/``
(resume after a kill).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from edgeprune.errors import EdgepruneError
from edgeprune.extras import MissingExtraError
from edgeprune.io import write_atomic
from edgeprune.models.spec import load_model
from edgeprune.scale import points
from edgeprune.scale.executor import Serial, ray_executor
from edgeprune.scale.pareto import write_pareto
from edgeprune.scale.store import ExportStore
from edgeprune.scale.targets import Target, local_resources

logger = logging.getLogger(__name__)
SPEC_NAME, POINTS_NAME, FAILURES_NAME, EXPORTS_NAME = "sweep.json", "points", "failures.json", "exports"


@dataclass(frozen=True)
class ModelEntry:
    """One model of a sweep: a bundled name or ``module:factory``, optional weights and input shapes, the
    int8 calibration samples (a .npy/.npz path; needed by MCU targets) and the metric (see ``points.prepare``)."""

    spec: str
    weights: str | None = None
    input_shapes: tuple[str, ...] = ()
    calib: str | None = None
    metric: str = "fidelity"
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or re.sub(r"[^A-Za-z0-9_.-]+", "_", self.spec)


@dataclass(frozen=True)
class SweepSpec:
    """What to sweep: every model at every budget (model-wide fraction of parameters removed) on every target."""

    models: tuple[ModelEntry, ...]
    budgets: tuple[float, ...]
    targets: tuple[Target, ...]
    seed: int = 0  # models and example inputs are built under this seed, so a resumed run measures the same ones
    retries: int = 1

    def __post_init__(self) -> None:
        if not self.models or not self.budgets or not self.targets:
            raise EdgepruneError(
                "a sweep needs at least one model, one budget and one target",
                fix="--model NAME --budget 0.3 --target emulate:nucleo-l4r5zi, or a TOML spec",
            )
        bad = [b for b in self.budgets if not 0 <= b < 1]
        if bad:
            raise EdgepruneError(f"budgets {bad} out of range", expected="fractions in [0, 1) (0: the model as is)")
        uncalibrated = [m.name for m in self.models if m.calib is None]
        int8 = [t.label for t in self.targets if t.needs_calibration]
        if uncalibrated and int8:
            raise EdgepruneError(
                f"{', '.join(int8)} measure the int8 model, and {', '.join(uncalibrated)} has no calibration samples",
                expected="calib = a .npy/.npz of real inputs per model",
                fix="give each model its calib (TOML) or --calib (one model)",
            )
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise EdgepruneError(f"two models named alike in {names}", fix="give each a distinct label")

    def to_dict(self) -> dict[str, Any]:
        return {
            "models": [asdict(m) for m in self.models],
            "budgets": list(self.budgets),
            "targets": [t.label for t in self.targets],
            "seed": self.seed,
            "retries": self.retries,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: Path | None = None) -> SweepSpec:
        """A spec from plain data; relative ``calib`` and ``weights`` paths are taken from ``base`` (default: the
        current directory) and made absolute, so every task (on any node's worker) reads the same files."""

        def entry(m: Any) -> ModelEntry:
            if not isinstance(m, dict):
                return ModelEntry(str(m))
            paths = {k: str((base or Path.cwd()) / m[k]) for k in ("calib", "weights") if m.get(k)}
            return ModelEntry(**{**m, **paths, "input_shapes": tuple(m.get("input_shapes", ()))})

        return cls(
            tuple(entry(m) for m in data.get("models", ())),
            tuple(float(b) for b in data.get("budgets", ())),
            tuple(Target.parse(t) for t in data.get("targets", ())),
            int(data.get("seed", 0)),
            int(data.get("retries", 1)),
        )

    @classmethod
    def load(cls, path: str | Path) -> SweepSpec:
        """A spec from TOML: ``budgets``, ``targets`` (strings) and ``models`` (names or tables; paths relative
        to the TOML file), see docs/scale.md."""
        from edgeprune.boards._toml import tomllib

        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise EdgepruneError(f"cannot read the sweep spec {path}: {exc}") from exc
        try:
            return cls.from_dict(data, Path(path).resolve().parent)
        except TypeError as exc:
            raise EdgepruneError(
                f"{path}: {exc}", expected="model tables with spec, weights, input_shapes, calib, metric, label"
            ) from exc


@dataclass(frozen=True)
class SweepPoint:
    model: ModelEntry
    budget: float
    target: Target

    @property
    def id(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{self.model.name}--{self.budget:.3f}--{self.target.label}")


@dataclass
class SweepResult:
    run_dir: Path
    records: dict[str, dict[str, Any]]
    failures: dict[str, str]
    skipped: int
    executor: str
    exports: int = 0  # conversions made (one per content hash not found in run_dir/exports)
    reused: int = 0  # exports loaded from run_dir/exports (converted by an earlier run)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def plan(spec: SweepSpec) -> list[SweepPoint]:
    return [SweepPoint(m, b, t) for m in spec.models for b in spec.budgets for t in spec.targets]


def recorded(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The records already in ``run_dir`` (a record is written whole, atomically, so every file is complete)."""
    folder = run_dir / POINTS_NAME
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))} if folder.exists() else {}


def run_sweep(
    spec: SweepSpec,
    run_dir: str | Path,
    *,
    address: str | None = None,
    use_ray: bool | None = None,
    num_cpus: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> SweepResult:
    """Measure every point of ``spec`` not yet recorded in ``run_dir``. ``use_ray``: None = on Ray when installed
    (``address`` or ``RAY_ADDRESS``: that cluster; else started here with ``num_cpus``), else serially;
    False = serially; True = Ray or an error."""
    say = progress or logger.info
    run = Path(run_dir)
    (run / POINTS_NAME).mkdir(parents=True, exist_ok=True)
    write_atomic(run / SPEC_NAME, json.dumps(spec.to_dict(), indent=2))
    done = recorded(run)
    todo = [p for p in plan(spec) if p.id not in done]
    notes: list[str] = []
    if done:
        say(f"resuming: {len(done)} point(s) already recorded, {len(todo)} to go")
    started = time.perf_counter()
    failures: dict[str, str] = {}
    if use_ray is False:
        executor_name, exports, reused = _drive(Serial(spec.retries), spec, todo, run, done, failures, say)
    else:
        try:
            resources = local_resources(list(spec.targets), num_cpus)
            with ray_executor(address, resources, spec.retries, num_cpus) as ex:
                executor_name, exports, reused = _drive(ex, spec, todo, run, done, failures, say)
        except MissingExtraError as exc:
            if use_ray:
                raise
            notes.append(f"Ray is not installed ({exc.fix}): the points ran one after another in this process")
            say(notes[-1])
            executor_name, exports, reused = _drive(Serial(spec.retries), spec, todo, run, done, failures, say)
    write_atomic(run / FAILURES_NAME, json.dumps(failures, indent=2))
    write_pareto(run, done)
    skipped = len(plan(spec)) - len(todo)
    return SweepResult(
        run, done, failures, skipped, executor_name, exports, reused, time.perf_counter() - started, notes
    )


def _load(entry: ModelEntry, seed: int) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return load_model(entry.spec, entry.weights, entry.input_shapes)


def _drive(
    ex: Any,
    spec: SweepSpec,
    todo: list[SweepPoint],
    run: Path,
    done: dict[str, dict[str, Any]],
    failures: dict[str, str],
    say: Callable[[str], None],
) -> tuple[str, int, int]:
    """Submit every step of ``todo``, then record each point as its measurement finishes; the executor's name,
    the number of conversions and the number of exports reused from the run directory."""
    say(f"{len(todo)} point(s) to measure, {ex.name}")
    by_prep: dict[tuple[str, float], list[SweepPoint]] = {}
    for p in todo:
        by_prep.setdefault((p.model.name, p.budget), []).append(p)
    models = {m.name: m for m in spec.models}
    loaded = {name: _load(models[name], spec.seed) for name in {n for n, _ in by_prep}}
    info: dict[Any, tuple[str, float]] = {}  # prepare's handle -> (model, budget)
    for key, group in by_prep.items():
        entry = models[key[0]]
        sets = sorted({p.target.export_targets(entry.calib is not None) for p in group})
        handle = ex.call(points.prepare, *loaded[key[0]], key[1], entry.metric, sets, entry.calib)
        info[handle] = key
    exports = _Exports(ex, ExportStore(run / EXPORTS_NAME))
    measuring: dict[Any, SweepPoint] = {}
    pending = list(info)
    total, finished = len(todo), 0
    while pending:
        for handle in ex.wait(pending):
            pending.remove(handle)
            if handle in info:
                key = info.pop(handle)
                try:
                    prep = ex.get(handle)
                except Exception as exc:
                    for p in by_prep[key]:
                        finished += 1
                        _fail(p, f"prune/metric: {_why(exc)}", failures, say, finished, total)
                    continue
                started = []
                for p in by_prep[key]:
                    entry = p.model
                    targets = p.target.export_targets(entry.calib is not None)
                    packed = None
                    if targets:
                        packed, conversion = exports.get(prep.keys[targets], handle, targets, entry.calib)
                        started += [conversion] if conversion is not None else []
                    m = ex.call(points.measure, p.id, handle, packed, p.target, entry.calib, resource=p.target.resource)
                    measuring[m] = p
                    pending.append(m)
                pending += started  # after the measurements: a serial run stores a conversion before measuring it
                continue
            if exports.finished(handle, say):
                continue
            p = measuring.pop(handle)
            finished += 1
            try:
                record = ex.get(handle)
            except Exception as exc:
                _fail(p, _why(exc), failures, say, finished, total)
                continue
            record.update(id=p.id, model=p.model.name, budget=p.budget, target=p.target.label)
            done[p.id] = record
            write_atomic(run / POINTS_NAME / f"{p.id}.json", json.dumps(record, indent=2))
            ms = record["measurement"]["latency"]["median_ms"] if record["measurement"].get("latency") else None
            say(f"[{finished}/{total}] {p.id}: " + (f"{ms:.3f} ms" if ms is not None else "no latency"))
    if exports.reused:
        say(f"{exports.reused} export(s) reused from {exports.store.root}, {exports.converted} converted")
    return ex.name, exports.converted, exports.reused


class _Exports:
    """A sweep's exports, one per content hash: kept in the run directory by an earlier run, else converted
    once (a task) and kept when the conversion finishes."""

    def __init__(self, ex: Any, store: ExportStore):
        self.ex, self.store = ex, store
        self.handles: dict[str, Any] = {}  # content hash -> the export's handle (for measurements)
        self.converting: dict[Any, str] = {}  # a conversion's handle -> its content hash
        self.converted = self.reused = 0

    def get(self, key: str, prepared: Any, targets: tuple[str, ...], calibration: Any) -> tuple[Any, Any]:
        """The export of ``key`` for a measurement, and the conversion started for it (to wait for), if any."""
        if key in self.handles:
            return self.handles[key], None
        stored = self.store.get(key)
        if stored is not None:
            self.handles[key] = self.ex.share(stored)
            self.reused += 1
            return self.handles[key], None
        self.handles[key] = self.ex.call(points.make_export, prepared, targets, calibration)
        self.converting[self.handles[key]] = key
        self.converted += 1
        return self.handles[key], self.handles[key]

    def finished(self, handle: Any, say: Callable[[str], None]) -> bool:
        """Whether ``handle`` is a conversion; if it succeeded, its export is kept in the store."""
        key = self.converting.pop(handle, None)
        if key is None:
            return False
        try:
            packed = self.ex.get(handle)
        except Exception:  # the measurements that needed it fail with the same error and report it
            return True
        try:
            self.store.put(packed)
        except (OSError, EdgepruneError) as exc:
            say(f"warning: export {key[:12]} not kept in {self.store.root} ({exc}): a resumed run converts it again")
        return True


def _fail(p: SweepPoint, error: str, failures: dict[str, str], say: Callable[[str], None], n: int, total: int) -> None:
    failures[p.id] = error
    say(f"[{n}/{total}] {p.id}: FAILED after retries: {error}")


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
