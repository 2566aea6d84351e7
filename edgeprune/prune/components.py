"""Components: named sets of submodules that are pruned as units (encoder, dynamics, reward, ...)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping

from torch import nn

from edgeprune.prune.errors import PruneError

# Containers without a forward of their own: their children are the modules actually called.
_CONTAINERS = (nn.ModuleList, nn.ModuleDict)


class Components:
    """A partition of (part of) a model into named components.

    Each component owns one or more *root* modules (module paths) and everything below them.
    Build one with :meth:`from_children` (the default: one component per top-level child),
    :meth:`from_depth`, or an explicit mapping ``name -> [module path or glob pattern, ...]``.
    """

    def __init__(self, model: nn.Module, mapping: Mapping[str, Iterable[str]]):
        named = dict(model.named_modules())
        roots: dict[str, tuple[str, ...]] = {}
        owner_of_root: dict[str, str] = {}
        for name, patterns in mapping.items():
            if isinstance(patterns, str):
                patterns = [patterns]
            paths: list[str] = []
            for pattern in patterns:
                matched = [p for p in named if p and fnmatch.fnmatchcase(p, pattern)]
                if not matched:
                    top = ", ".join(n for n, _ in model.named_children())
                    raise PruneError(
                        f"component {name!r}: pattern {pattern!r} matches no module of {type(model).__name__}",
                        expected=f"a module path or glob over named_modules(); top-level modules: {top}",
                    )
                # keep only the outermost matches: a match inside another match adds nothing
                matched = [p for p in matched if not any(p.startswith(q + ".") for q in matched)]
                paths.extend(_expand_containers(named, matched))
            for path in paths:
                if path in owner_of_root and owner_of_root[path] != name:
                    raise PruneError(f"module {path!r} is claimed by components {owner_of_root[path]!r} and {name!r}")
                owner_of_root[path] = name
            roots[name] = tuple(dict.fromkeys(paths))
        all_roots = [p for ps in roots.values() for p in ps]
        nested = [p for p in all_roots if any(p.startswith(q + ".") for q in all_roots)]
        if nested:
            raise PruneError(
                f"component roots {nested} lie inside other components' roots",
                expected="components that do not nest; map the inner modules to one component only",
            )
        self._roots = roots
        self._owner = {path: name for name, paths in roots.items() for path in paths}

    @classmethod
    def from_children(cls, model: nn.Module) -> Components:
        """One component per top-level child that holds parameters (the paper's default)."""
        mapping = {name: [name] for name, child in model.named_children() if _has_params(child)}
        if not mapping:
            raise PruneError(f"{type(model).__name__} has no child module with parameters to form components")
        return cls(model, mapping)

    @classmethod
    def from_depth(cls, model: nn.Module, depth: int) -> Components:
        """One component per module at ``depth`` (1 = children); shallower leaves count as their own component."""
        if depth < 1:
            raise PruneError(f"depth must be >= 1, got {depth}")
        mapping: dict[str, list[str]] = {}

        def visit(module: nn.Module, prefix: str, level: int) -> None:
            for name, child in module.named_children():
                path = f"{prefix}.{name}" if prefix else name
                if not _has_params(child):
                    continue
                if level == depth or not any(True for _ in child.children()):
                    mapping[path] = [path]
                else:
                    visit(child, path, level + 1)

        visit(model, "", 1)
        return cls(model, mapping)

    @property
    def names(self) -> list[str]:
        return list(self._roots)

    def roots(self, name: str) -> tuple[str, ...]:
        """Module paths of the component's root modules (hooks and per-component graphs use these)."""
        self.check_names([name])
        return self._roots[name]

    def owner(self, module_path: str) -> str | None:
        """The component that owns a module path (or a parameter path), or None."""
        path = module_path
        while True:
            if path in self._owner:
                return self._owner[path]
            if "." not in path:
                return None
            path = path.rsplit(".", 1)[0]

    def check_names(self, names: Iterable[str], what: str = "component") -> None:
        """Raise a clear error for names that are not components."""
        unknown = [n for n in names if n not in self._roots]
        if unknown:
            raise PruneError(
                f"unknown {what} {', '.join(map(repr, unknown))}",
                expected=f"one of the model's components: {', '.join(self._roots)}",
            )

    def to_dict(self) -> dict[str, list[str]]:
        return {name: list(paths) for name, paths in self._roots.items()}

    def __repr__(self) -> str:
        return f"Components({self.to_dict()})"


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _expand_containers(named: Mapping[str, nn.Module], paths: list[str]) -> list[str]:
    """Replace ModuleList/ModuleDict roots (no forward of their own) by their children."""
    out: list[str] = []
    for path in paths:
        module = named[path]
        if isinstance(module, _CONTAINERS):
            children = [f"{path}.{n}" for n, _ in module.named_children()]
            out.extend(_expand_containers(named, children))
        else:
            out.append(path)
    return out
