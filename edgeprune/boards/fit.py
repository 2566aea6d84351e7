"""Fit check: does an artifact fit a board's flash and SRAM (MCU) or DRAM (arm64)?

MCU boards::

    flash = model bytes (the .tflite flatbuffer, stored as is) + code estimate
    SRAM  = tensor arena + stack + runtime reserve          (and: arena ≤ largest contiguous SRAM block)

Code estimate (TFLM, when no measured ``code_bytes`` is given) =
``TFLM_CORE_BYTES`` (interpreter, allocator, flatbuffer access: TFLM compiles to ~20-50 KB depending on the
registered ops) + ``TFLM_KERNEL_BYTES`` per distinct op kind + ``BASE_FIRMWARE_BYTES`` (startup, HAL, UART,
timer, printf: EdgeMark measured 28,000 B of text for such a base program on the NUCLEO-L4R5ZI). These are
estimates, marked so in the verdict; pass ``code_bytes`` from ``arm-none-eabi-size`` for a measured figure.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from edgeprune.boards.errors import BoardError
from edgeprune.boards.schema import BoardProfile

KIB = 1024
TFLM_CORE_BYTES = 24 * KIB
TFLM_KERNEL_BYTES = 4 * KIB
BASE_FIRMWARE_BYTES = 28 * KIB
DEFAULT_STACK_BYTES = 8 * KIB
DEFAULT_RUNTIME_RESERVE_BYTES = 6 * KIB
"""Outside the arena: the application's .data/.bss (~4 KB in EdgeMark's base program) plus the TFLM
interpreter and op-resolver objects (~2 KB)."""
ARM64_RESERVE_BYTES = 1536 * KIB * KIB
"""arm64 boards: OS, runtime libraries and CUDA/TensorRT context; a rough allowance, override it."""
TIGHT_MARGIN_PCT = 10.0


def code_size_estimate(op_kinds: int) -> int:
    """Estimated flash for TFLM code with ``op_kinds`` distinct kernels, plus the base firmware."""
    return TFLM_CORE_BYTES + TFLM_KERNEL_BYTES * max(op_kinds, 0) + BASE_FIRMWARE_BYTES


@dataclass(frozen=True)
class Part:
    """One contribution to a resource's use."""

    label: str
    bytes: int
    estimated: bool = False


@dataclass(frozen=True)
class ResourceFit:
    """Use of one memory resource against its capacity."""

    resource: str
    capacity: int
    parts: tuple[Part, ...]

    @property
    def used(self) -> int:
        return sum(p.bytes for p in self.parts)

    @property
    def margin_bytes(self) -> int:
        return self.capacity - self.used

    @property
    def margin_pct(self) -> float:
        return 100.0 * self.margin_bytes / self.capacity

    @property
    def fits(self) -> bool:
        return self.margin_bytes >= 0

    @property
    def estimated(self) -> bool:
        return any(p.estimated for p in self.parts)


@dataclass(frozen=True)
class FitVerdict:
    """Per-resource margins and an overall verdict for one artifact on one board."""

    board: str
    resources: tuple[ResourceFit, ...]
    notes: tuple[str, ...] = ()

    @property
    def fits(self) -> bool:
        return all(r.fits for r in self.resources)

    @property
    def tightest(self) -> ResourceFit:
        return min(self.resources, key=lambda r: r.margin_pct)

    @property
    def verdict(self) -> str:
        """'fits', 'fits (tight: ...)' or 'does not fit: ...'."""
        over = [r for r in self.resources if not r.fits]
        if over:
            why = "; ".join(f"{r.resource} over by {-r.margin_bytes:,} B ({-r.margin_pct:.1f} %)" for r in over)
            return f"does not fit: {why}"
        t = self.tightest
        if t.margin_pct < TIGHT_MARGIN_PCT:
            return f"fits (tight: {t.resource} margin {t.margin_bytes:,} B, {t.margin_pct:.1f} %)"
        return f"fits (tightest: {t.resource}, {t.margin_pct:.1f} % free)"

    def to_dict(self) -> dict[str, object]:
        return {
            "board": self.board,
            "fits": self.fits,
            "verdict": self.verdict,
            "resources": [
                {
                    "resource": r.resource,
                    "capacity": r.capacity,
                    "used": r.used,
                    "margin_bytes": r.margin_bytes,
                    "margin_pct": r.margin_pct,
                    "fits": r.fits,
                    "parts": [{"label": p.label, "bytes": p.bytes, "estimated": p.estimated} for p in r.parts],
                }
                for r in self.resources
            ],
            "notes": list(self.notes),
        }

    def table(self) -> Table:
        """A rich table: one row per resource, with what uses it, and the verdict as caption."""
        style = "green" if self.fits else "bold red"
        t = Table(title=f"Fit on {self.board}", caption=f"[{style}]{self.verdict}[/]", caption_justify="left")
        for col, just in (("resource", "left"), ("used by", "left"), ("used", "right"), ("capacity", "right")):
            t.add_column(col, justify=just)
        t.add_column("margin", justify="right")
        t.add_column("margin %", justify="right")
        t.add_column("", justify="left")
        for r in self.resources:
            parts = ", ".join(f"{p.label} {p.bytes:,}{'*' if p.estimated else ''}" for p in r.parts)
            mark = "[green]ok[/]" if r.fits else "[bold red]OVER[/]"
            t.add_row(
                r.resource, parts, f"{r.used:,}", f"{r.capacity:,}", f"{r.margin_bytes:,}", f"{r.margin_pct:.1f}", mark
            )
        estimated = ("* estimated (docs/boards.md#fit-check)",) if any(r.estimated for r in self.resources) else ()
        if estimated or self.notes:
            t.caption += "\n" + "\n".join((*estimated, *self.notes))
        return t


def check_fit(
    board: BoardProfile,
    *,
    model_bytes: int,
    arena_bytes: int,
    code_bytes: int | None = None,
    op_kinds: int | Iterable[object] | None = None,
    stack_bytes: int = DEFAULT_STACK_BYTES,
    reserve_bytes: int | None = None,
) -> FitVerdict:
    """Fit of a model (``model_bytes`` in flash, ``arena_bytes`` of tensor arena) on ``board``.

    ``code_bytes``: measured code size; else estimated from ``op_kinds`` (a count, or an iterable of op
    kinds / op records whose distinct kinds are counted; default 8). ``reserve_bytes``: SRAM (MCU) or DRAM
    (arm64) kept for everything outside the arena besides the stack.
    """
    for label, value in (("model_bytes", model_bytes), ("arena_bytes", arena_bytes), ("stack_bytes", stack_bytes)):
        if value < 0:
            raise BoardError(f"{label} is negative ({value})", expected="a size in bytes >= 0")
    if not board.core.is_mcu:
        return _check_dram(board, model_bytes, arena_bytes, reserve_bytes)
    notes = ["basis: a TFLite Micro firmware (the model file stored as is + interpreter code); for edgeprune's own "
             "firmware, linked and measured as `bench --emulate` builds it: boards fit --export DIR"]  # fmt: skip
    if code_bytes is None:
        kinds = _count_kinds(op_kinds)
        code = Part(f"code ({kinds} kernels)", code_size_estimate(kinds), estimated=True)
    else:
        code = Part("code", code_bytes)
    assert board.flash_bytes is not None and board.sram_bytes is not None  # guaranteed by the schema
    reserve = DEFAULT_RUNTIME_RESERVE_BYTES if reserve_bytes is None else reserve_bytes
    resources = [
        ResourceFit("flash", board.flash_bytes, (Part("model", model_bytes), code)),
        ResourceFit(
            "sram",
            board.sram_bytes,
            (Part("arena", arena_bytes), Part("stack", stack_bytes), Part("reserve", reserve, reserve_bytes is None)),
        ),
    ]
    if board.sram_contiguous_bytes is not None and board.sram_contiguous_bytes < board.sram_bytes:
        resources.append(ResourceFit("sram block", board.sram_contiguous_bytes, (Part("arena", arena_bytes),)))
    if board.external_ram_bytes:
        notes.append(f"external RAM ({board.external_ram_bytes:,} B) not counted: the arena is placed in SRAM")
    return FitVerdict(board.name, tuple(resources), tuple(notes))


def fit_artifact(board: BoardProfile, artifact: str | os.PathLike, *, arena_bytes: int, **kwargs: object) -> FitVerdict:
    """``check_fit`` with ``model_bytes`` read from the artifact's file size (e.g. a ``.tflite``)."""
    path = Path(artifact)
    if not path.is_file():
        raise BoardError(f"artifact {path} does not exist", expected="a model file such as model.tflite")
    _check_model_file(path)
    return check_fit(board, model_bytes=path.stat().st_size, arena_bytes=arena_bytes, **kwargs)  # type: ignore[arg-type]


def _check_model_file(path: Path) -> None:
    """A ``.tflite`` flatbuffer (file identifier ``TFL3``) or an ``.onnx`` model, else a BoardError: the size
    of any other file says nothing about what a board must hold."""
    with open(path, "rb") as f:
        head = f.read(8)
    if path.suffix == ".tflite" and head[4:8] == b"TFL3":
        return
    if path.suffix == ".onnx":
        import onnx

        try:
            onnx.load_model(str(path), load_external_data=False)
            return
        except Exception:
            pass
    raise BoardError(
        f"{path} is not a TFLite or ONNX model file",
        expected="the model the board will hold: model.tflite (a TFLite flatbuffer) or model.onnx",
        fix="pass --artifact out/tflm/model.tflite from `edgeprune export`, or --model-bytes N",
    )


def _count_kinds(op_kinds: int | Iterable[object] | None) -> int:
    if op_kinds is None:
        return 8
    if isinstance(op_kinds, int):
        return op_kinds
    return len({getattr(k, "kind", k) for k in op_kinds})


def _check_dram(board: BoardProfile, model_bytes: int, arena_bytes: int, reserve_bytes: int | None) -> FitVerdict:
    assert board.dram_bytes is not None
    reserve = ARM64_RESERVE_BYTES if reserve_bytes is None else reserve_bytes
    parts = (
        Part("model", model_bytes),
        Part("activations", arena_bytes),
        Part("os+runtime", reserve, reserve_bytes is None),
    )
    notes = ("storage not checked (removable or large)",)
    if board.gpu is not None and board.gpu.shared_memory_with_cpu:
        notes += ("GPU shares this DRAM with the CPU",)
    return FitVerdict(board.name, (ResourceFit("dram", board.dram_bytes, parts),), notes)
