"""Errors of the exporters: what went wrong, what was expected, what to do about it."""

from __future__ import annotations

from edgeprune.errors import EdgepruneError


class ExportError(EdgepruneError):
    """An export step failed in a way the user can act on (``detail``: e.g. a converter's log excerpt)."""

    def __init__(self, what: str, expected: str = "", do: str = "", detail: str = "") -> None:
        self.what = what
        self.do = do
        self.detail = detail
        problem = f"{what}\n  detail:\n{detail}" if detail else what
        super().__init__(problem, expected=expected or None, fix=do or None)


class ParityError(ExportError):
    """An exported artifact disagrees with the eager model beyond the tolerance."""
