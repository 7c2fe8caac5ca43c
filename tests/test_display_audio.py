"""Announcement audio: chime and espeak-ng's Vietnamese voice into one WAV with a plausible, measured length."""

from __future__ import annotations

import array
import shutil
import subprocess
import wave
from io import BytesIO
from pathlib import Path

import pytest

from display.audio import (
    SAMPLE_RATE,
    AnnouncementMaker,
    AudioError,
    ClipLibrary,
    VoiceSettings,
    chime_pcm,
    espeak_pcm,
    pcm_to_wav,
    wav_duration_s,
)
from display.speech import announcement_texts

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
VOICES = {"vi": "vi", "en": "en"}


def _peak(wav: bytes) -> int:
    with wave.open(BytesIO(wav)) as source:
        samples = array.array("h", source.readframes(source.getnframes()))
    return int(max(abs(s) for s in samples))


def test_chime_is_a_short_audible_two_note_sound() -> None:
    wav = pcm_to_wav(chime_pcm())
    assert 1.0 <= wav_duration_s(wav) <= 2.0
    assert 10_000 < _peak(wav) < 32_767  # loud, not clipping


@needs_espeak
def test_vietnamese_and_english_announcement_has_a_plausible_length() -> None:
    maker = AnnouncementMaker(VoiceSettings(voices=VOICES, speed_wpm=140))
    utterances = announcement_texts(number="A015", counter="5", languages=("vi", "en"))
    clip = maker.make(utterances)
    with wave.open(BytesIO(clip.wav)) as source:
        assert (source.getnchannels(), source.getsampwidth(), source.getframerate()) == (1, 2, SAMPLE_RATE)
    vi_only = maker.make(utterances[:1])
    # chime ~1.3 s + "Mời số a không trăm mười lăm đến quầy số năm" ~3-4 s at 140 wpm
    assert 3.5 < vi_only.duration_s < 8.0
    assert clip.duration_s > vi_only.duration_s + 2.0  # the English sentence follows
    assert clip.duration_s == pytest.approx(wav_duration_s(clip.wav))


@needs_espeak
def test_volume_scales_the_samples() -> None:
    utterances = announcement_texts(number="A001", counter="1", languages=("vi",))
    loud = AnnouncementMaker(VoiceSettings(voices=VOICES, volume_pct=100)).make(utterances)
    quiet = AnnouncementMaker(VoiceSettings(voices=VOICES, volume_pct=25)).make(utterances)
    assert _peak(quiet.wav) == pytest.approx(_peak(loud.wav) * 0.25, abs=2)
    assert quiet.duration_s == loud.duration_s


@needs_espeak
def test_recorded_clips_are_used_when_every_word_has_one(tmp_path: Path) -> None:
    [utterance] = announcement_texts(number="A015", counter="5", languages=("vi",))
    words = utterance.spoken.lower().split()
    for word in set(words):
        (tmp_path / f"{word}.wav").write_bytes(pcm_to_wav(b"\x10\x00" * (SAMPLE_RATE // 4)))  # 0.25 s each
    maker = AnnouncementMaker(VoiceSettings(voices=VOICES, chime=False, clips=ClipLibrary(tmp_path), pause_s=0))
    clip = maker.make([utterance])
    expected_s = len(words) * 0.25 + (len(words) - 1) * 0.05 + 0.15
    assert clip.duration_s == pytest.approx(expected_s, abs=0.01)
    # a word without a clip: the whole sentence falls back to espeak-ng
    (tmp_path / "năm.wav").unlink()
    fallback = AnnouncementMaker(VoiceSettings(voices=VOICES, chime=False, clips=ClipLibrary(tmp_path), pause_s=0))
    assert fallback.make([utterance]).duration_s != pytest.approx(expected_s, abs=0.01)


def test_clip_in_another_format_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "mời.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(44_100)
        out.writeframes(b"\0" * 400)
    with pytest.raises(AudioError, match=r"must be 16-bit mono 22050 Hz.*sox IN.wav -r 22050 -c 1 -b 16 OUT.wav"):
        ClipLibrary(tmp_path)


@needs_espeak
def test_unknown_voice_is_an_audio_error() -> None:
    with pytest.raises(AudioError, match="failed"):
        espeak_pcm("xin chào", voice="xx-nonexistent", speed_wpm=140)


@pytest.mark.skipif(shutil.which("soxi") is None, reason="sox is not installed")
@needs_espeak
def test_sox_measures_the_same_duration(tmp_path: Path) -> None:
    clip = AnnouncementMaker(VoiceSettings(voices=VOICES)).make(
        announcement_texts(number="B002", counter="12", languages=("vi",)))
    path = tmp_path / "a.wav"
    path.write_bytes(clip.wav)
    measured = float(subprocess.run(["soxi", "-D", str(path)], capture_output=True, text=True, check=True,
                                    timeout=10).stdout)
    assert measured == pytest.approx(clip.duration_s, abs=0.001)
