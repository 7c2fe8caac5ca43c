"""Command line of the hall display.

    hallq-display --config FILE [--broker HOST:PORT] [--listen HOST:PORT]   serve the page
    hallq-display check --config FILE                                       validate and exit
    hallq-display say --config FILE A015 5 [--out FILE.wav]                 hear one announcement

(``hallq-display`` is the console script in the virtual environment's ``bin``; ``python -m display`` with that
environment's Python is the same program.)

``say`` plays the announcement with ``[announce] player`` (``aplay -q``) on this machine's audio output; where
that player is missing or fails, it keeps the WAV in a new temporary directory and prints its path (never in
the current directory). ``--out FILE.wav`` writes the WAV there instead of playing it.

Exit status: 0 after a clean stop (SIGTERM/SIGINT), 78 for a bad config (one readable line, never a
traceback), 69 when the listening address is taken.
"""

from __future__ import annotations

import argparse
import errno
import logging
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from display import config as config_mod
from display import service
from display.audio import AnnouncementMaker, AudioError, Clip
from hallq import logsetup
from hallq.cli import config_refused, load_config
from hallq.errors import EXIT_CONFIG, EXIT_UNAVAILABLE, ConfigError

log = logging.getLogger("display")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hallq-display", description="hallq hall display: web page, chime and voice")
    parser.add_argument("command", nargs="?", choices=("run", "check", "say"), default="run",
                        help="run the display (default), check the config, or say one announcement")
    parser.add_argument("words", nargs="*", help="say: the ticket number and the counter, e.g. A015 5")
    parser.add_argument("--config", required=True, type=Path, help="the display's TOML config file")
    parser.add_argument("--broker", metavar="HOST:PORT", help="override [mqtt] broker")
    parser.add_argument("--listen", metavar="HOST:PORT", help="override [display] listen")
    parser.add_argument("--out", type=Path, help="say: write the WAV here instead of playing it")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_intermixed_args(argv)
    logsetup.setup("INFO")
    cfg = load_config(config_mod.load, args.config, log=log, broker=args.broker,
                      override=partial(_listen_override, args.listen))
    if cfg is None:
        return EXIT_CONFIG
    if args.command == "check":
        sys.stdout.write(f"{args.config}: OK — display of hall {cfg.hall} on http://{cfg.listen_host}:"
                         f"{cfg.listen_port}/\n")
        return 0
    if args.command == "say":
        return _say(cfg, args.words, args.out)
    logsetup.setup(cfg.log_level)
    try:
        service.run(cfg)
    except ConfigError as exc:  # e.g. the MQTT password file, read when connecting
        return config_refused(log, exc)
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            log.error("cannot listen on %s:%s: %s (another program uses it? change [display] listen)",
                      cfg.listen_host, cfg.listen_port, exc.strerror)
            return EXIT_UNAVAILABLE
        raise
    return 0


def _listen_override(address: str | None, cfg: config_mod.DisplayConfig) -> config_mod.DisplayConfig:
    """``cfg`` with ``--listen HOST:PORT`` applied (None: unchanged); a malformed address is a ConfigError."""
    if not address:
        return cfg
    try:
        return cfg.with_listen(address)
    except ValueError as exc:
        raise ConfigError("--listen", "", str(exc)) from None


def _say(cfg: config_mod.DisplayConfig, words: list[str], out: Path | None) -> int:
    if len(words) != 2:
        log.error("say needs a ticket number and a counter, e.g.: say A015 5")
        return 2
    utterances = cfg.announce.texts(number=words[0], counter=words[1])
    maker = AnnouncementMaker(cfg.announce.voice_settings())
    try:
        clip = maker.make(utterances)
    except AudioError as exc:
        log.error("%s", exc)
        return 1
    for utterance in utterances:
        sys.stdout.write(f"{utterance.language}: {utterance.text}  [spoken: {utterance.spoken}]\n")
    if out is None:
        out = _play_or_keep(cfg.announce.player, clip)
        if out is None:
            sys.stdout.write(f"played with {cfg.announce.player[0]}: {clip.duration_s:.2f} s\n")
            return 0
    else:
        out.write_bytes(clip.wav)
    sys.stdout.write(f"{out}: {clip.duration_s:.2f} s\n")
    return 0


def _play_or_keep(player: tuple[str, ...], clip: Clip) -> Path | None:
    """Play ``clip`` with ``player`` + a WAV file's path: None once played; else the WAV, kept in a new
    temporary directory, and a warning saying why it was not heard."""
    folder = Path(tempfile.mkdtemp(prefix="hallq-say-"))
    path = folder / "announcement.wav"
    path.write_bytes(clip.wav)
    if shutil.which(player[0]) is None:
        problem = "is not installed (Debian: apt-get install alsa-utils for aplay)"
    else:
        try:
            result = subprocess.run([*player, str(path)], capture_output=True, check=False,
                                    timeout=clip.duration_s + service.PLAYER_SLACK_S)
        except subprocess.TimeoutExpired:
            problem = f"did not finish within {clip.duration_s + service.PLAYER_SLACK_S:.0f} s"
        else:
            if result.returncode == 0:
                shutil.rmtree(folder)
                return None
            problem = (f"failed status={result.returncode}: "
                       f"{result.stderr.decode('utf-8', 'replace').strip()[:300]}")
    log.warning("cannot play the announcement here: audio player %s %s; the WAV is kept", player[0], problem)
    return path
