"""``python -m counter``: configuration refusals are one readable line and exit status 78; unavailable GPIO
is one readable line and exit status 69."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hallq.errors import EXIT_CONFIG, EXIT_UNAVAILABLE
from tests.support import FIXTURES, ROOT


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "counter", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=30, check=False, env=env)


def _on_a_raspberry_pi() -> bool:
    model = Path("/proc/device-tree/model")
    return model.exists() and b"Raspberry Pi" in model.read_bytes()


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


def test_an_invalid_pin_names_file_and_key_and_exits_78(tmp_path: Path) -> None:
    path = tmp_path / "counter.toml"
    path.write_text((FIXTURES / "counter.toml").read_text(encoding="utf-8").replace('"GPIO23"', '"GPIO99"'),
                    encoding="utf-8")
    result = _run("check", "--config", str(path))
    assert result.returncode == EXIT_CONFIG
    assert f"{path}: keypad.no_show_pin: 'GPIO99' is not on the 40-pin header" in result.stderr


@pytest.mark.skipif(_on_a_raspberry_pi(), reason="a Raspberry Pi has a pin factory")
def test_keypad_without_a_pin_factory_is_one_line_and_exits_69() -> None:
    env = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
    result = _run("--config", str(FIXTURES / "counter.toml"), env=env)
    assert result.returncode == EXIT_UNAVAILABLE, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"GPIO unavailable: {FIXTURES / 'counter.toml'}: no GPIO pin factory could start" in lines[0]
    assert "Falling back from lgpio" in lines[0]


def test_keypad_with_an_unknown_pin_factory_exits_69() -> None:
    result = _run("--config", str(FIXTURES / "counter.toml"), env={**os.environ, "GPIOZERO_PIN_FACTORY": "nonsense"})
    assert result.returncode == EXIT_UNAVAILABLE, result.stderr
    assert "Unable to find pin factory 'nonsense'" in result.stderr
    assert "Traceback" not in result.stderr
