"""Rich renderings of board profiles for the CLI (``edgeprune boards list`` / ``boards show``)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.table import Table

from edgeprune.boards.registry import iter_profiles, unreadable_profiles
from edgeprune.boards.schema import BoardProfile


def human_bytes(n: int | None) -> str:
    """``1_048_576`` → ``'1 MiB'``; ``None`` → ``'-'``."""
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:g} {unit}" if unit == "B" else f"{n:.4g} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _memory(p: BoardProfile) -> tuple[str, str]:
    if p.core.is_mcu:
        return human_bytes(p.sram_bytes), human_bytes(p.flash_bytes)
    return human_bytes(p.dram_bytes) + " DRAM", "-"


def boards_table(pattern: str | None = None, *, extra: Sequence[str | os.PathLike] = ()) -> Table:
    """One row per board on the search path (optionally filtered by an fnmatch ``pattern`` on names/aliases)."""
    from fnmatch import fnmatch

    pat = pattern.lower() if pattern else None
    profiles = [
        p
        for p in sorted(iter_profiles(extra), key=lambda p: p.name)
        if pat is None or any(fnmatch(n, pat) for n in p.names())
    ]
    t = Table(title="Boards")
    t.add_column("name", no_wrap=True, min_width=max((len(p.name) for p in profiles), default=4))
    for col in ("core", "clock", "RAM", "flash", "runtimes"):
        t.add_column(col, justify="right" if col == "clock" else "left")
    for p in profiles:
        ram, flash = _memory(p)
        t.add_row(
            p.name,
            p.core.value,
            f"{p.clock_hz / 1e6:g} MHz",
            ram,
            flash,
            ", ".join(r.value for r in p.runtimes),
        )
    skipped = unreadable_profiles(extra)
    if skipped:
        t.caption = "skipped (fix or remove these files): " + "; ".join(skipped)
    return t


def board_details(profile: BoardProfile) -> RenderableType:
    """Every field of one profile, then its sources."""
    p = profile
    t = Table(title=f"{p.display_name} ({p.name})", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value")
    rows: list[tuple[str, str]] = [
        ("aliases", ", ".join(p.aliases) or "-"),
        ("vendor", p.vendor),
        ("chip", p.chip),
        ("core", p.core.value + (f" ({p.cpu})" if p.cpu else "")),
        ("cpu cores", str(p.cpu_cores)),
        ("clock", f"{p.clock_hz / 1e6:g} MHz"),
    ]
    for label, value in (
        ("SRAM", p.sram_bytes),
        ("largest SRAM block", p.sram_contiguous_bytes),
        ("flash", p.flash_bytes),
        ("external RAM", p.external_ram_bytes),
        ("external flash", p.external_flash_bytes),
        ("DRAM", p.dram_bytes),
    ):
        if value is not None:
            rows.append((label, f"{human_bytes(value)} ({value:,} B)"))
    if p.storage:
        rows.append(("storage", p.storage))
    if p.gpu is not None:
        g = p.gpu
        bits = [g.name]
        bits += [f"{g.cuda_cores} CUDA cores"] if g.cuda_cores else []
        bits += [f"{g.tensor_cores} tensor cores"] if g.tensor_cores is not None else []
        bits += [f"compute capability {g.compute_capability}"] if g.compute_capability else []
        bits += [f"{g.max_clock_hz / 1e6:g} MHz"] if g.max_clock_hz else []
        bits += ["memory shared with CPU"] if g.shared_memory_with_cpu else []
        rows.append(("GPU", ", ".join(bits)))
    rows += [
        ("runtimes", ", ".join(r.value for r in p.runtimes)),
        ("serial", f"{p.serial.baud} baud; USB {', '.join(p.serial.usb_ids) or '-'}"),
        ("flash method", p.flash_method.value),
        ("QEMU machine", p.qemu_machine.value if p.qemu_machine else "- (no emulation)"),
        ("cost model", p.cost_model or "- (no fitted set for this core)"),
    ]
    if p.notes:
        rows.append(("notes", p.notes))
    for row in rows:
        t.add_row(*row)
    s = Table(title="Sources", show_lines=False)
    for col in ("document", "section", "url", "covers"):
        s.add_column(col, overflow="fold")
    for src in p.sources:
        s.add_row(src.title, src.section or "-", src.url or "-", ", ".join(src.covers) or "-")
    return Group(t, s)
