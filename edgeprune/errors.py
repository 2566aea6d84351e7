"""The one error type users see from edgeprune: what was wrong, what was expected, what to do."""

from __future__ import annotations


class EdgepruneError(Exception):
    """A user-facing error. ``str(err)`` reads: problem, then ``expected: ...`` and ``fix: ...`` lines."""

    def __init__(self, problem: str, *, expected: str | None = None, fix: str | None = None):
        self.problem = problem
        self.expected = expected
        self.fix = fix
        lines = [problem]
        if expected:
            lines.append(f"  expected: {expected}")
        if fix:
            lines.append(f"  fix: {fix}")
        super().__init__("\n".join(lines))
