"""The display's strict config and its command line: refusals name file and key and exit 78; ``say`` works."""

from __future__ import annotations

import shutil
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from display import config as display_config
from hallq.errors import EXIT_CONFIG, ConfigError
from tests.support import FIXTURES, ROOT


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "display", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=30, check=False)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "display.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_loopback_page_audio_vietnamese_first(tmp_path: Path) -> None:
    cfg = display_config.load(_write(tmp_path, '[display]\nhall = "h1"\n'))
    assert (cfg.listen_host, cfg.listen_port, cfg.languages) == ("127.0.0.1", 8080, ("vi", "en"))
    assert cfg.announce.output == "page" and cfg.announce.enabled and cfg.announce.languages == ("vi", "en")
    assert cfg.announce.odd_word == "linh"


def test_southern_voice_reads_le(tmp_path: Path) -> None:
    cfg = display_config.load(_write(tmp_path, '[display]\nhall = "h1"\n[announce]\nvoice_vi = "vi-vn-x-south"\n'))
    assert cfg.announce.odd_word == "lẻ"


@pytest.mark.parametrize(("text", "key", "problem"), [
    ('[display]\nhall = "h1"\nlanguage = ["vi"]\n', "display.language", "unknown key"),
    ('[display]\nhall = "h1"\nlanguages = ["vi", "fr"]\n', "display.languages", "must list"),
    ('[display]\nhall = "h1"\nlisten = "8080"\n', "display.listen", "is not HOST:PORT"),
    ('[display]\nhall = "h1"\n[announce]\nvolume = 150\n', "announce.volume", "at most 100"),
    ('[display]\nhall = "h1"\n[announce]\ntemplate_vi = "Mời số {so}"\n', "announce.template_vi",
     "{number} and {counter}"),
    ('[display]\nhall = "h1"\n[announce]\nclips_dir = "/nonexistent/clips"\n', "announce.clips_dir",
     "not a directory"),
    ('[display]\nhall = "h1"\n[announce]\noutput = "local"\nplayer = ["no-such-player-xyz"]\n', "announce.player",
     "not installed"),
])
def test_bad_values_name_the_key(tmp_path: Path, text: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        display_config.load(_write(tmp_path, text))
    assert caught.value.key == key and problem in caught.value.problem


def test_cli_refuses_a_bad_config_with_one_line_and_78(tmp_path: Path) -> None:
    path = _write(tmp_path, '[display]\nhall = "h1"\nflash = 3\n')
    result = _run("--config", str(path))
    assert result.returncode == EXIT_CONFIG
    assert f"{path}: display.flash: unknown key" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_example_and_fixture_configs_are_valid() -> None:
    for path in (ROOT / "config" / "display.example.toml", FIXTURES / "display.toml"):
        result = _run("check", "--config", str(path))
        assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_say_writes_the_announcement_and_prints_what_it_says(tmp_path: Path) -> None:
    out = tmp_path / "a.wav"
    result = _run("say", "--config", str(FIXTURES / "display.toml"), "A015", "5", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "vi: Mời số A015 đến quầy số 5  [spoken: Mời số a không trăm mười lăm đến quầy số năm]" in result.stdout
    with wave.open(str(out)) as wav:
        assert wav.getnframes() / wav.getframerate() > 2.0
