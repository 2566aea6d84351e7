"""The README's code blocks, run as a newcomer pastes them: in order, in one shell and one Python session.

A block runs for real unless the comment line before it says ``<!-- readme-test: parse (why) -->`` (bash:
each ``edgeprune`` line is parsed by the CLI's own argument parser; Python: compiled) or ``skip (why)``
(installs, hardware). A command whose comment says ``exits 1`` must exit with exactly 1, every other with 0.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(
    r"(?:<!-- readme-test: (?P<mode>skip|parse)\b[^>]*-->\n)?```(?P<lang>bash|python)\n(?P<code>.*?)```", re.S
)
PARSE = "import sys; from edgeprune.cli import parser; parser().parse_args(sys.argv[1:])"


def blocks() -> list[tuple[str, str, str]]:
    """(mode, language, code) of every bash/python block, in README order; mode is run, parse or skip."""
    text = (ROOT / "README.md").read_text()
    return [(m["mode"] or "run", m["lang"], m["code"]) for m in BLOCK.finditer(text)]


def _shell_script(parts: list[tuple[str, str]]) -> str:
    """One bash script: each command line checked for its expected exit status, in order."""
    lines = ["set -u"]
    for mode, code in parts:
        if mode == "parse":
            lines.append(f'edgeprune() {{ "{sys.executable}" -c "{PARSE}" "$@"; }}')
        for cmd in code.splitlines():
            if not cmd.strip() or cmd.lstrip().startswith("#"):
                continue
            want = 1 if "exits 1" in cmd.partition(" #")[2] else 0
            quoted = cmd.replace("'", "'\\''")
            lines += [
                cmd,
                f"rc=$?; [ $rc -eq {want} ] || {{ echo 'README line failed (exit '$rc'): {quoted}' >&2; exit 1; }}",
            ]
        if mode == "parse":
            lines.append("unset -f edgeprune")
    return "\n".join(lines) + "\n"


def test_readme_blocks_are_marked_and_cover_the_quick_start() -> None:
    found = blocks()
    assert sum(1 for m, lang, _ in found if m == "run" and lang == "bash") >= 2
    quick = next(code for m, lang, code in found if m == "run" and "edgeprune samples" in code)
    assert "pretrained_tdmpc" in quick and "--calib qs/samples.npz" in quick  # trained weights, real samples
    for _, _, code in found:
        assert "samples.npz" not in code or "qs/samples.npz" in code  # no placeholder calibration file


@pytest.mark.slow
def test_readme_blocks_run_in_order(tmp_path: Path) -> None:
    found = blocks()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    script = _shell_script([(m, code) for m, lang, code in found if lang == "bash" and m != "skip"])
    shell = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert shell.returncode == 0, shell.stderr[-3000:] + shell.stdout[-3000:]
    assert "ms per inference" in shell.stdout  # the emulated bench ran

    python = [code for m, lang, code in found if lang == "python" and m == "run"]
    for m, lang, code in found:
        if lang == "python" and m == "parse":
            compile(code, "README.md", "exec")
    session = subprocess.run([sys.executable, "-c", "\n".join(python)], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=600)  # fmt: skip
    assert session.returncode == 0, session.stderr[-3000:]
