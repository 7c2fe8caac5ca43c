"""The display's strict config and its command line: refusals name file and key and exit 78; ``say`` works."""

from __future__ import annotations

import os
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


def _say_here(tmp_path: Path, player: str) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    """``say A015 5`` without ``--out``, run in an empty directory with its own TMPDIR: (result, cwd, tmpdir)."""
    here, tmp = tmp_path / "here", tmp_path / "tmp"
    here.mkdir()
    tmp.mkdir()
    text = (FIXTURES / "display.toml").read_text(encoding="utf-8")
    config = tmp_path / "display.toml"
    config.write_text(text.replace("gap_s = 0.3\n", f"gap_s = 0.3\nplayer = {player}\n"), encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "display", "say", "--config", str(config), "A015", "5"],
                            capture_output=True, text=True, cwd=here, timeout=30, check=False,
                            env={**os.environ, "TMPDIR": str(tmp)})
    return result, here, tmp


def _seconds(path: Path) -> float:
    with wave.open(str(path)) as wav:
        return float(wav.getnframes() / wav.getframerate())


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_say_without_out_plays_with_the_configured_player_and_leaves_no_file(tmp_path: Path) -> None:
    played = tmp_path / "played"
    played.mkdir()
    result, here, tmp = _say_here(tmp_path, f'["cp", "-t", "{played}"]')  # cp -t DIR FILE: the "player"
    assert result.returncode == 0, result.stderr
    assert "played with cp:" in result.stdout
    assert _seconds(played / "announcement.wav") > 2.0
    assert not any(here.iterdir()) and not any(tmp.iterdir())


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_say_without_a_player_keeps_the_wav_in_a_temporary_directory_and_prints_it(tmp_path: Path) -> None:
    result, here, tmp = _say_here(tmp_path, '["hallq-no-such-player"]')
    assert result.returncode == 0, result.stderr
    kept = Path(result.stdout.splitlines()[-1].rsplit(": ", 1)[0])
    assert kept.parent.parent == tmp and _seconds(kept) > 2.0
    assert "audio player hallq-no-such-player is not installed" in result.stderr
    assert not any(here.iterdir())


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_say_keeps_the_wav_when_the_player_fails(tmp_path: Path) -> None:
    result, here, tmp = _say_here(tmp_path, '["false"]')
    assert result.returncode == 0, result.stderr
    kept = Path(result.stdout.splitlines()[-1].rsplit(": ", 1)[0])
    assert kept.parent.parent == tmp and kept.is_file()
    assert "audio player false failed status=1" in result.stderr
    assert not any(here.iterdir())
