"""The one error type of the exporters: what went wrong, what was expected, what to do about it."""

from __future__ import annotations


class ExportError(RuntimeError):
    """An export step failed in a way the user can act on.

    Carries three short texts so that a CLI can print them without a traceback:
    ``what`` happened, what was ``expected``, and what to ``do`` about it.
    """

    def __init__(self, what: str, expected: str = "", do: str = "", detail: str = "") -> None:
        self.what = what
        self.expected = expected
        self.do = do
        self.detail = detail
        super().__init__(self._format())

    def _format(self) -> str:
        lines = [self.what]
        if self.expected:
            lines.append(f"expected: {self.expected}")
        if self.do:
            lines.append(f"what to do: {self.do}")
        if self.detail:
            lines.append(f"detail:\n{self.detail}")
        return "\n".join(lines)


class ParityError(ExportError):
    """An exported artifact disagrees with the eager model beyond the tolerance."""
