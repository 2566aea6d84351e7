"""CLI conventions: every --help shows its defaults and a runnable example; -v/-q over `logging`; stage lines on
stderr when output goes to a file; commands printed for the user are shell-quoted."""

from __future__ import annotations

import argparse
import logging
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from edgeprune.boards import load_board
from edgeprune.cli import main, parser
from edgeprune.cli.common import commands
from edgeprune.deploy.mcu.flash import flash_command


def _shown(action: argparse.Action) -> bool:
    """Whether an option has a default worth showing (flags and empty repeatables have none)."""
    return bool(action.option_strings) and action.default not in (None, False, [], argparse.SUPPRESS)


def test_every_help_shows_its_defaults_and_a_runnable_example(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # one line per option: a default is never split by wrapping
    top = parser()
    checked = 0
    for path, command in commands(top):
        text = command.format_help()
        name = " ".join(("edgeprune", *path))
        assert "\nExample:\n" in text, f"`{name} --help` has no Example"
        examples = [line.strip() for line in text.split("\nExample:\n", 1)[1].splitlines() if line.strip()]
        assert examples and all(e.startswith("edgeprune ") for e in examples), (name, examples)
        for line in examples:  # each example parses: real options, real values
            argv = shlex.split(line)[1:]
            try:
                top.parse_args(argv)
            except SystemExit:
                pytest.fail(f"the example in `{name} --help` does not parse: {line}")
            if path and line.split()[1] == path[0]:
                checked += 1
        for action in command._actions:
            if _shown(action) and action.dest != "log_level":
                assert f"(default: {action.default})" in text, f"`{name} --help` hides the default of {action.dest}"
    assert checked >= 18  # every command (and boards' actions) has an example of itself


def test_verbosity_goes_before_or_after_the_command() -> None:
    p = parser()
    assert p.parse_args(["models"]).log_level == logging.INFO
    assert p.parse_args(["-q", "models"]).log_level == logging.WARNING
    assert p.parse_args(["models", "-v"]).log_level == logging.DEBUG
    assert p.parse_args(["-v", "boards", "list"]).log_level == logging.DEBUG  # not reset by the subcommand
    assert p.parse_args(["boards", "list", "--quiet"]).log_level == logging.WARNING
    with pytest.raises(SystemExit):
        p.parse_args(["models", "-v", "-q"])


def test_quiet_and_verbose_set_what_reaches_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["prune", "simple", "--budget", "0.3", "--force", "--out", str(tmp_path)]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "pruning: done in" in err and "pruning ..." not in out
    assert "debug" not in err and "wrote plan.json" in out  # results on stdout, progress on stderr
    assert main(["-q", *args]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "wrote plan.json" in out
    assert main([*args, "-v"]) == 0
    err = capsys.readouterr().err
    assert "debug: edgeprune.cli: pruning: verify" in err


def test_stage_lines_reach_a_file(tmp_path: Path) -> None:
    """Off a terminal (output to a file, a CI log) every stage still says when it starts and ends."""
    out_dir = tmp_path / "e"
    with (tmp_path / "stdout.txt").open("w") as stdout, (tmp_path / "stderr.txt").open("w") as stderr:
        argv = [sys.executable, "-m", "edgeprune.cli", "export", "simple", "--to", "onnx", "--out", str(out_dir)]
        rc = subprocess.run(argv, stdout=stdout, stderr=stderr, timeout=300, check=False).returncode
    err, out = (tmp_path / "stderr.txt").read_text(), (tmp_path / "stdout.txt").read_text()
    assert rc == 0, err + out
    lines = err.splitlines()
    stamp = r"^\[ *\d+\.\d+s\] "
    assert re.match(stamp + r"export to onnx \.\.\.$", lines[0]), err
    assert any(re.match(stamp + "ONNX: tracing", line) for line in lines), err  # the export's own step
    assert re.match(stamp + r"export to onnx: done in \d+\.\d s$", lines[-1]), err
    assert "model.onnx" in out and not re.search(stamp, out, re.M)  # the result table alone on stdout


def test_printed_commands_are_shell_quoted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    firmware = tmp_path / "my build" / "fw.elf"  # a space in the path, and openocd's "-c 'program …'" argument
    assert main(["flash", str(firmware), "--board", "nucleo-l4r5zi", "--dry-run"]) == 0
    printed = capsys.readouterr().out.strip().removeprefix("would run: ")
    assert shlex.split(printed) == flash_command(load_board("nucleo-l4r5zi"), firmware)
