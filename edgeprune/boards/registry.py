"""Finding board profiles: the shipped ones, user directories on a search path, or a file path.

Search order (first match of a name or alias wins): the directories in ``EDGEPRUNE_BOARD_PATH``
(``os.pathsep``-separated, read at every call), then the profiles shipped in
``edgeprune/boards/profiles/``. A user profile with a shipped board's name therefore shadows it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from fnmatch import fnmatch
from importlib import resources
from pathlib import Path

from edgeprune.boards.errors import BoardFileError, UnknownBoardError
from edgeprune.boards.loader import load_profile_file
from edgeprune.boards.schema import BoardProfile

BOARD_PATH_ENV = "EDGEPRUNE_BOARD_PATH"


def builtin_profile_dir() -> Path:
    """The directory of the shipped ``*.toml`` profiles."""
    return Path(str(resources.files("edgeprune.boards") / "profiles"))


def search_path(extra: Sequence[str | os.PathLike] = ()) -> list[Path]:
    """Directories searched for profiles: ``extra``, then ``$EDGEPRUNE_BOARD_PATH``, then the shipped ones."""
    env = os.environ.get(BOARD_PATH_ENV, "")
    user = [Path(p) for p in (*extra, *env.split(os.pathsep)) if str(p)]
    return [*user, builtin_profile_dir()]


def iter_profiles(extra: Sequence[str | os.PathLike] = ()) -> Iterator[BoardProfile]:
    """Every profile on the search path, in search order, skipping names already seen (shadowed ones)."""
    seen: set[str] = set()
    builtin = builtin_profile_dir()
    for directory in search_path(extra):
        if not directory.is_dir():
            continue
        for file in sorted(directory.glob("*.toml")):
            try:
                profile = load_profile_file(file)
            except BoardFileError:
                if directory == builtin:
                    raise
                continue  # one broken user file does not hide every other board (unreadable_profiles says why)
            if profile.name in seen:
                continue
            seen.add(profile.name)
            yield profile


def unreadable_profiles(extra: Sequence[str | os.PathLike] = ()) -> list[str]:
    """The user profiles on the search path that cannot be loaded, each with the reason."""
    problems = []
    for directory in search_path(extra)[:-1]:
        for file in sorted(directory.glob("*.toml")) if directory.is_dir() else ():
            try:
                load_profile_file(file)
            except BoardFileError as exc:
                problems.append(exc.problem)
    return problems


def list_boards(pattern: str | None = None, *, extra: Sequence[str | os.PathLike] = ()) -> list[str]:
    """Board names on the search path, sorted; ``pattern`` (fnmatch, case-insensitive) matches names or aliases."""
    pat = pattern.lower() if pattern else None
    return sorted(p.name for p in iter_profiles(extra) if pat is None or any(fnmatch(n, pat) for n in p.names()))


def load_board(spec: str | os.PathLike, *, extra: Sequence[str | os.PathLike] = ()) -> BoardProfile:
    """The profile named by ``spec``: a board name, an alias (case-insensitive), or a ``.toml`` file path."""
    text = str(spec)
    if isinstance(spec, os.PathLike) or text.endswith(".toml") or os.sep in text:
        path = Path(text).expanduser()
        if not path.is_file():
            raise BoardFileError(f"board profile {path} does not exist", expected="a path to a .toml board profile")
        return load_profile_file(path)
    key = text.strip().lower()
    profiles = list(iter_profiles(extra))
    for profile in profiles:
        if key in profile.names():
            return profile
    known = ", ".join(sorted(p.name for p in profiles))
    skipped = unreadable_profiles(extra)
    raise UnknownBoardError(
        f"unknown board {text!r}" + (f" (skipped unreadable profiles: {'; '.join(skipped)})" if skipped else ""),
        expected=f"a board name or alias ({known}) or a path to a .toml profile",
        fix=f"`edgeprune boards list` shows names and aliases; add your own board in a directory on ${BOARD_PATH_ENV}",
    )
