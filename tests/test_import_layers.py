"""The import graph of edgeprune, read from the source (ast, nothing imported): no cycle between modules, and no
import running up the layer order documented in docs/architecture.md. Function-level imports count too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "edgeprune"

# Bottom to top; a module may import its own layer and those below it, never one above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "io", "extras", "interrupts", "cache", "__init__"),
    ("prune",),
    ("models",),
    ("export",),
    ("measure",),
    ("boards",),
    ("profiling",),
    ("deploy",),
    ("control",),
    ("pipeline",),
    ("scale",),
    ("demo", "calib_samples", "cli", "__main__"),
)
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = ["edgeprune", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in ROOT.rglob("*.py")}


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The edgeprune modules ``path`` imports (``from pkg import sub`` resolves to the submodule)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("edgeprune")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if not base.startswith("edgeprune"):
                continue
            subs = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known}
            out |= subs or {base}
    return {m for m in out if m in known and m != name}


def unresolved(path: Path, known: set[str]) -> set[str]:
    """edgeprune modules ``path`` names that do not exist (a path left behind by a move)."""
    missing: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            missing |= {a.name for a in node.names if a.name.startswith("edgeprune") and a.name not in known}
        elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("edgeprune"):
            missing |= {node.module} - known if node.module else set()
    return missing


def test_every_edgeprune_import_names_a_module_that_exists() -> None:
    mods = modules()
    stale = sorted(f"{n} -> {m}" for n, p in mods.items() for m in unresolved(p, set(mods)))
    assert not stale, "imports of modules that do not exist:\n" + "\n".join(stale)


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(path, name, set(mods)) for name, path in mods.items()}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_top_level_part_has_a_layer() -> None:
    assert {layer(m) for m in modules()} <= set(RANK)


def test_no_import_runs_up_a_layer() -> None:
    upward = sorted(
        f"{src} -> {dst}" for src, dsts in graph().items() for dst in dsts if RANK[layer(dst)] > RANK[layer(src)]
    )
    assert not upward, "imports running up the layer order:\n" + "\n".join(upward)


def test_no_import_cycle() -> None:
    g = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in g:
        if v not in index:
            visit(v)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)
