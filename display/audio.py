"""How an announcement sounds: a generated chime, then each sentence from espeak-ng or from recorded clips.

Everything is 16-bit mono PCM at 22,050 Hz, espeak-ng's own output format, so parts join without
resampling. ``AnnouncementMaker.make()`` returns one WAV per announcement (chime, pause, sentence, pause,
sentence) and its duration measured with the ``wave`` module; the display's queue uses that duration to
keep announcements from overlapping. Volume scales the samples (0–100 %).

espeak-ng runs as a subprocess (``espeak-ng -v vi --stdout``): ~20 ms per sentence on a PC, a few times
that on a Pi; the service calls ``make()`` off its event loop. Recorded clips are optional: a directory of
WAV files named after the words they say (``mời.wav``, ``số.wav``, ``a.wav``, ``mười.wav``, ...); a sentence
whose every word has a clip is played from clips, any other from espeak-ng.
"""

from __future__ import annotations

import array
import io
import logging
import math
import shutil
import subprocess
import sys
import unicodedata
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from display.speech import Utterance
from hallq.errors import HallqError

log = logging.getLogger(__name__)

SAMPLE_RATE: Final = 22_050
SAMPLE_WIDTH: Final = 2
CHANNELS: Final = 1
ESPEAK_TIMEOUT_S: Final = 10.0
TAIL_S: Final = 0.15  # players cut the last few ms; the voice must not lose its final word


class AudioError(HallqError, RuntimeError):
    """Speech could not be made (espeak-ng missing or failing, a clip unreadable)."""


@dataclass(frozen=True, slots=True)
class Clip:
    """A finished WAV file in memory and its measured length."""

    wav: bytes
    duration_s: float


def pcm_to_wav(pcm: bytes) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(CHANNELS)
        out.setsampwidth(SAMPLE_WIDTH)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm)
    return buffer.getvalue()


def wav_to_pcm(data: bytes, *, what: str) -> bytes:
    """The PCM frames of a WAV in our format; AudioError naming ``what`` for any other format."""
    try:
        with wave.open(io.BytesIO(data), "rb") as source:
            params = source.getparams()
            frames = source.readframes(params.nframes)
    except (wave.Error, EOFError) as exc:
        raise AudioError(f"{what}: not a WAV file ({exc})") from None
    if (params.nchannels, params.sampwidth, params.framerate) != (CHANNELS, SAMPLE_WIDTH, SAMPLE_RATE):
        raise AudioError(f"{what}: must be 16-bit mono {SAMPLE_RATE} Hz, is {params.sampwidth * 8}-bit "
                         f"{params.nchannels}-channel {params.framerate} Hz; convert it with: "
                         f"sox IN.wav -r {SAMPLE_RATE} -c 1 -b 16 OUT.wav")
    return frames


def wav_duration_s(data: bytes) -> float:
    """Length of a WAV file in seconds, read from its header and frame count."""
    with wave.open(io.BytesIO(data), "rb") as source:
        return source.getnframes() / source.getframerate()


def pcm_duration_s(pcm: bytes) -> float:
    return len(pcm) / (SAMPLE_WIDTH * CHANNELS * SAMPLE_RATE)


def silence(seconds: float) -> bytes:
    return b"\0\0" * round(seconds * SAMPLE_RATE)


def scale(pcm: bytes, volume_pct: int) -> bytes:
    """Samples multiplied by ``volume_pct`` / 100 (clipped to 16 bits)."""
    if volume_pct == 100:
        return pcm
    samples = array.array("h")
    samples.frombytes(pcm)
    if sys.byteorder != "little":
        samples.byteswap()
    factor = volume_pct / 100
    scaled = array.array("h", (max(-32768, min(32767, round(s * factor))) for s in samples))
    if sys.byteorder != "little":
        scaled.byteswap()
    return scaled.tobytes()


def chime_pcm() -> bytes:
    """A two-note "ding-dong" (E5 then C5, bell-like decay with a soft overtone), 1.3 s in all."""
    notes = ((659.25, 0.0, 0.65), (523.25, 0.55, 0.75))  # (Hz, start s, length s)
    total = round(1.3 * SAMPLE_RATE)
    mix = [0.0] * total
    for freq, start_s, length_s in notes:
        first = round(start_s * SAMPLE_RATE)
        for i in range(round(length_s * SAMPLE_RATE)):
            if first + i >= total:
                break
            t = i / SAMPLE_RATE
            attack = min(1.0, t / 0.005)  # 5 ms attack: no click
            envelope = attack * math.exp(-4.0 * t)
            tone = math.sin(2 * math.pi * freq * t) + 0.3 * math.sin(2 * math.pi * 2 * freq * t)
            mix[first + i] += 0.42 * envelope * tone
    samples = array.array("h", (max(-32768, min(32767, round(v * 32767))) for v in mix))
    if sys.byteorder != "little":
        samples.byteswap()
    return samples.tobytes()


def espeak_pcm(text: str, *, voice: str, speed_wpm: int, executable: str = "espeak-ng") -> bytes:
    """``text`` spoken by espeak-ng's ``voice`` as PCM; AudioError if espeak-ng is missing or fails."""
    path = shutil.which(executable)
    if path is None:
        raise AudioError(f"{executable} is not installed (Debian: apt-get install espeak-ng)")
    try:
        result = subprocess.run([path, "-v", voice, "-s", str(speed_wpm), "--stdout", text],
                                capture_output=True, timeout=ESPEAK_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise AudioError(f"{executable} took more than {ESPEAK_TIMEOUT_S} s") from None
    if result.returncode != 0 or not result.stdout:
        detail = result.stderr.decode("utf-8", "replace").strip()
        raise AudioError(f"{executable} -v {voice} failed with status {result.returncode}: {detail}")
    return wav_to_pcm(result.stdout, what=f"{executable} output")


def _word_key(word: str) -> str:
    return unicodedata.normalize("NFC", word.strip(".,;:!?\"'()").lower())


class ClipLibrary:
    """Recorded words: every ``*.wav`` in ``directory``, keyed by its file name (NFC, lower case)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.words: dict[str, bytes] = {}
        for path in sorted(directory.glob("*.wav")):
            self.words[_word_key(path.stem)] = wav_to_pcm(path.read_bytes(), what=str(path))

    def phrase(self, spoken: str, *, gap_s: float = 0.05) -> bytes | None:
        """The sentence from clips if every word has one, else ``None``."""
        keys = [_word_key(w) for w in spoken.split()]
        keys = [k for k in keys if k]
        if not keys or any(k not in self.words for k in keys):
            return None
        gap = silence(gap_s)
        return gap.join(self.words[k] for k in keys)


@dataclass(frozen=True, slots=True)
class VoiceSettings:
    """How announcements sound; see ``[announce]`` in ``config/display.example.toml``."""

    voices: dict[str, str]
    speed_wpm: int = 140
    volume_pct: int = 100
    chime: bool = True
    clips: ClipLibrary | None = None
    pause_s: float = 0.35


class AnnouncementMaker:
    """Builds one announcement's WAV: chime, then each sentence (clips where possible, else espeak-ng)."""

    def __init__(self, settings: VoiceSettings) -> None:
        self.settings = settings
        self._chime = chime_pcm() if settings.chime else b""

    def chime(self) -> Clip:
        """The chime alone, at the configured volume (``/audio/chime.wav``: to test a TV's sound)."""
        wav = pcm_to_wav(scale(self._chime or chime_pcm(), self.settings.volume_pct))
        return Clip(wav=wav, duration_s=wav_duration_s(wav))

    def sentence_pcm(self, utterance: Utterance, *, speed_wpm: int | None = None) -> bytes:
        """One sentence: from recorded clips if every word has one, else espeak-ng at ``speed_wpm`` (default:
        the configured speed)."""
        settings = self.settings
        if settings.clips is not None:
            from_clips = settings.clips.phrase(utterance.spoken)
            if from_clips is not None:
                return from_clips
            log.debug("no clips for every word of %r; using espeak-ng", utterance.spoken)
        return espeak_pcm(utterance.spoken, voice=settings.voices[utterance.language],
                          speed_wpm=speed_wpm or settings.speed_wpm)

    @property
    def chime_s(self) -> float:
        """Length of the chime that opens a segment (0 when the chime is off)."""
        return pcm_duration_s(self._chime)

    def compose(self, sentences: list[bytes], *, chime: bool) -> Clip:
        """One segment's WAV: the chime and a pause (if ``chime``), the sentences with a pause between two,
        and a short tail; the layout ``display.announcer.Announcer`` assumes for its offsets."""
        pause = silence(self.settings.pause_s)
        parts = [self._chime, pause] if chime and self._chime else []
        for i, sentence in enumerate(sentences):
            if i:
                parts.append(pause)
            parts.append(sentence)
        parts.append(silence(TAIL_S))
        wav = pcm_to_wav(scale(b"".join(parts), self.settings.volume_pct))
        return Clip(wav=wav, duration_s=wav_duration_s(wav))

    def make(self, utterances: list[Utterance]) -> Clip:
        """A whole announcement (chime, then every sentence). Raises AudioError if a sentence cannot be
        spoken."""
        return self.compose([self.sentence_pcm(u) for u in utterances], chime=True)
