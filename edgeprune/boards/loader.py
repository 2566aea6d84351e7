"""Read one board profile TOML file into a validated ``BoardProfile``; errors name file, field, expectation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from edgeprune.boards import _toml
from edgeprune.boards.errors import BoardFileError
from edgeprune.boards.schema import BoardProfile


def load_profile_file(path: str | os.PathLike) -> BoardProfile:
    """Parse and validate the TOML profile at ``path``."""
    path = Path(path)
    try:
        data = _toml.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BoardFileError(f"board profile {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BoardFileError(f"cannot read board profile {path}: {exc}") from exc
    except _toml.TOMLDecodeError as exc:
        raise BoardFileError(
            f"{path}: not valid TOML: {exc}", expected="a TOML board profile (see docs/boards.md)"
        ) from exc
    return profile_from_dict(data, source=str(path))


def profile_from_dict(data: dict[str, Any], *, source: str = "<dict>") -> BoardProfile:
    """Validate ``data`` (a parsed profile); ``source`` names it in errors."""
    try:
        return BoardProfile.model_validate(data)
    except ValidationError as exc:
        raise _file_error(exc, source) from None


def _file_error(exc: ValidationError, source: str) -> BoardFileError:
    lines, expected = [], []
    for err in exc.errors(include_url=False):
        field = _dotted(err["loc"]) or "(profile)"
        got = "" if err["type"] == "missing" or "input" not in err else f" (got {_short(err['input'])})"
        lines.append(f"  field {field}: {err['msg']}{got}")
        hint = _description(err["loc"], err["type"])
        if hint and f"{field}: {hint}" not in expected:
            expected.append(f"{field}: {hint}")
    n = len(lines)
    problem = f"{source}: invalid board profile ({n} error{'s' * (n != 1)})\n" + "\n".join(lines)
    return BoardFileError(
        problem,
        expected=(
            expected[0]
            if len(expected) == 1
            else "\n".join(["", *(f"    {e}" for e in expected)]) or "a profile as described in docs/boards.md"
        ),
        fix="compare with a shipped profile (edgeprune boards show nucleo-l4r5zi) and docs/boards.md",
    )


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _description(loc: tuple[int | str, ...], error_type: str) -> str | None:
    """What the field at ``loc`` expects: its schema description, or the known fields for an unknown one."""
    model: type[BaseModel] | None = BoardProfile
    description = None
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None:
            return None
        field = model.model_fields.get(part)
        if field is None:
            return (
                "one of the known fields: " + ", ".join(model.model_fields) if error_type == "extra_forbidden" else None
            )
        description = field.description
        ann = field.annotation
        model = next(
            (t for t in getattr(ann, "__args__", (ann,)) if isinstance(t, type) and issubclass(t, BaseModel)), None
        )
    return description
