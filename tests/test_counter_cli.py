"""``python -m counter``: configuration refusals are one readable line and exit status 78."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hallq.errors import EXIT_CONFIG
from tests.support import FIXTURES, ROOT


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "counter", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=30, check=False)


def test_unknown_key_names_file_and_key_and_exits_78(tmp_path: Path) -> None:
    path = tmp_path / "counter.toml"
    path.write_text('[counter]\nid = "1"\nhall = "test-hall"\nreply_timout_s = 3\n', encoding="utf-8")
    result = _run("--config", str(path))
    assert result.returncode == EXIT_CONFIG
    assert f"{path}: counter.reply_timout_s: unknown key" in result.stderr
    assert "Traceback" not in result.stderr


def test_keypad_without_pins_is_refused_but_the_console_config_checks(tmp_path: Path) -> None:
    path = tmp_path / "counter.toml"
    path.write_text('[counter]\nid = "1"\nhall = "test-hall"\n', encoding="utf-8")
    keypad = _run("--config", str(path))
    assert keypad.returncode == EXIT_CONFIG and "keypad: is required" in keypad.stderr
    check = _run("check", "--config", str(path))
    assert check.returncode == 0 and "counter 1 of hall test-hall" in check.stdout


def test_the_example_config_is_valid() -> None:
    result = _run("check", "--config", str(ROOT / "config" / "counter.example.toml"))
    assert result.returncode == 0, result.stderr
    assert _run("check", "--config", str(FIXTURES / "counter.toml")).returncode == 0
