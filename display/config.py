"""The display's configuration: a strict TOML file (see ``config/display.example.toml``).

Every key is checked at start; an unknown key or a bad value stops the display with a message naming the
file, the key and the problem (exit status 78), never a traceback.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from display.audio import AudioError, ClipLibrary, VoiceSettings
from display.speech import DEFAULT_MORE_TEMPLATES, DEFAULT_TEMPLATES, Language, Utterance, announcement_texts
from hallq.configfile import LOG_LEVELS, Table, load_toml, read_mqtt
from hallq.mqtt import BrokerSettings, parse_address

LANGUAGES: tuple[Language, ...] = ("vi", "en")
VI_VOICES = ("vi", "vi-vn-x-central", "vi-vn-x-south")


@dataclass(frozen=True, slots=True)
class AnnounceConfig:
    enabled: bool
    output: Literal["page", "local"]
    languages: tuple[Language, ...]
    voices: dict[str, str]
    templates: dict[Language, str]
    more_templates: dict[Language, str]
    odd_word: str
    speed_wpm: int
    busy_speed_wpm: int
    volume_pct: int
    chime: bool
    gap_s: float
    max_call_age_s: float
    max_lag_s: float
    clips: ClipLibrary | None
    player: tuple[str, ...]

    def voice_settings(self) -> VoiceSettings:
        """How announcements sound: the same for the hall's voice and for ``display say``."""
        return VoiceSettings(voices=self.voices, speed_wpm=self.speed_wpm, volume_pct=self.volume_pct,
                             chime=self.chime, clips=self.clips)

    def texts(self, *, number: str, counter: str, more: bool = False) -> list[Utterance]:
        """The words announcing ``number`` at ``counter``, in each configured language; ``more``: the form
        that follows another call under the same chime ("số B003 đến quầy số 2")."""
        return announcement_texts(number=number, counter=counter, languages=self.languages,
                                  templates=self.more_templates if more else self.templates,
                                  odd_word=self.odd_word)


@dataclass(frozen=True, slots=True)
class DisplayConfig:
    hall: str
    client_id: str
    listen_host: str
    listen_port: int
    languages: tuple[Language, ...]
    recent_calls: int
    flash_s: float
    time_zone: str
    log_level: str
    broker: BrokerSettings
    base_topic: str
    announce: AnnounceConfig
    source: Path

    def with_listen(self, address: str) -> DisplayConfig:
        """A copy listening on ``HOST:PORT`` (the ``--listen`` option); ValueError if malformed."""
        host, port = parse_address(address)
        return replace(self, listen_host=host, listen_port=port)


def _languages(table: Table, name: str, default: list[str]) -> tuple[Language, ...]:
    values = table.text_list(name, default)
    if not values or len(set(values)) != len(values) or any(v not in LANGUAGES for v in values):
        raise table.error(name, f"must list \"vi\" and/or \"en\" once each, got {values!r}")
    return tuple(cast(Language, v) for v in values)


def load(path: Path) -> DisplayConfig:
    """Read and check a display's config file; raises ``ConfigError`` naming file, key and problem."""
    root = load_toml(path)
    table = root.table("display", required=True)
    hall = table.ident("hall")
    client_id = table.ident("client_id", "display")
    listen = table.text("listen", "127.0.0.1:8080")
    try:
        listen_host, listen_port = parse_address(listen)
    except ValueError as exc:
        raise table.error("listen", str(exc)) from None
    languages = _languages(table, "languages", ["vi", "en"])
    recent_calls = table.integer("recent_calls", 6, minimum=1, maximum=10)
    flash_s = table.number("flash_s", 6.0, minimum=0.0, maximum=60.0)
    time_zone = table.text("time_zone", "Asia/Ho_Chi_Minh")
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise table.error("time_zone", f"unknown time zone {time_zone!r}") from None
    log_level = table.choice("log_level", LOG_LEVELS, "INFO")
    table.done()
    broker, base_topic = read_mqtt(root.table("mqtt"))
    announce = _announce(root.table("announce"), languages)
    root.done()
    return DisplayConfig(hall=hall, client_id=client_id, listen_host=listen_host, listen_port=listen_port,
                         languages=languages, recent_calls=recent_calls, flash_s=flash_s, time_zone=time_zone,
                         log_level=log_level, broker=broker, base_topic=base_topic, announce=announce, source=path)


def _announce(table: Table, screen_languages: tuple[Language, ...]) -> AnnounceConfig:
    enabled = table.boolean("enabled", True)
    output = cast(Literal["page", "local"], table.choice("output", ("page", "local"), "page"))
    languages = _languages(table, "languages", list(screen_languages))
    voice_vi = table.text("voice_vi", "vi")
    if voice_vi not in VI_VOICES:
        raise table.error("voice_vi", f"must be one of {', '.join(VI_VOICES)}; got {voice_vi!r}")
    voice_en = table.text("voice_en", "en")
    templates: dict[Language, str] = {}
    more_templates: dict[Language, str] = {}
    for language in LANGUAGES:
        for key, defaults, into in ((f"template_{language}", DEFAULT_TEMPLATES, templates),
                                    (f"template_more_{language}", DEFAULT_MORE_TEMPLATES, more_templates)):
            template = table.text(key, defaults[language])
            try:
                template.format(number="A001", counter="1")
            except (KeyError, IndexError, ValueError):
                raise table.error(key, "may only use the fields {number} and {counter}") from None
            into[language] = template
    speed_wpm = table.integer("speed_wpm", 140, minimum=80, maximum=300)
    busy_speed_wpm = table.integer("busy_speed_wpm", min(300, round(speed_wpm * 1.25)), minimum=speed_wpm,
                                   maximum=300)
    volume_pct = table.integer("volume", 100, minimum=0, maximum=100)
    chime = table.boolean("chime", True)
    gap_s = table.number("gap_s", 0.8, minimum=0.0, maximum=10.0)
    max_call_age_s = table.number("max_call_age_s", 60.0, minimum=1.0, maximum=3600.0)
    max_lag_s = table.number("max_lag_s", 10.0, minimum=5.0, maximum=120.0)
    clips_dir = table.opt_text("clips_dir")
    clips = None
    if clips_dir is not None:
        directory = Path(clips_dir)
        if not directory.is_dir():
            raise table.error("clips_dir", f"{clips_dir} is not a directory")
        try:
            clips = ClipLibrary(directory)
        except AudioError as exc:
            raise table.error("clips_dir", str(exc)) from None
    player = tuple(table.text_list("player", ["aplay", "-q"]))
    table.done()
    if enabled and shutil.which("espeak-ng") is None and clips is None:
        raise table.error("enabled", "espeak-ng is not installed (Debian: apt-get install espeak-ng); "
                                     "install it, give clips_dir, or set enabled = false")
    if enabled and output == "local" and shutil.which(player[0]) is None:
        raise table.error("player", f"{player[0]} is not installed (Debian: apt-get install alsa-utils for aplay)")
    return AnnounceConfig(enabled=enabled, output=output, languages=languages,
                          voices={"vi": voice_vi, "en": voice_en}, templates=templates,
                          more_templates=more_templates,
                          odd_word="lẻ" if voice_vi == "vi-vn-x-south" else "linh", speed_wpm=speed_wpm,
                          busy_speed_wpm=busy_speed_wpm,
                          volume_pct=volume_pct, chime=chime, gap_s=gap_s, max_call_age_s=max_call_age_s,
                          max_lag_s=max_lag_s,
                          clips=clips, player=player)
