"""Errors of ``edgeprune.boards``; all are ``EdgepruneError`` (problem, expected, fix)."""

from __future__ import annotations

from edgeprune.errors import EdgepruneError


class BoardError(EdgepruneError):
    """Base class of board-profile errors."""


class BoardFileError(BoardError, ValueError):
    """A profile file that cannot be read, parsed or validated; names the file and the fields."""


class UnknownBoardError(BoardError, KeyError):
    """A board name or alias that no profile on the search path has."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0] if self.args else ""


class NoCostModelError(BoardError, LookupError):
    """No fitted cost-model coefficients for the requested core and kernel stack."""
