"""The ticket dispenser: a kiosk's buttons become printed tickets numbered by the hall controller.

Layout: ``core`` (the pure state machine), ``ticket`` (drawing the ticket), ``printer`` (ESC/POS jobs and
printer adapters), ``hardware`` (gpiozero buttons and LEDs), ``config``, ``service`` (the shell that
wires them to the broker), ``simulate`` (keyboard presses on mock pins) and ``cli``.
"""

from __future__ import annotations

import os
from pathlib import Path


def _escpos_cache_dir() -> None:
    # python-escpos parses its printer database at import (230-330 ms) unless this directory holds the
    # pickled copy it writes on first use (~90 ms after). Under systemd, CacheDirectory= gives one.
    if "ESCPOS_CAPABILITIES_PICKLE_DIR" in os.environ:
        return
    base = os.environ.get("CACHE_DIRECTORY") or os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    directory = Path(base.split(":")[0]) / "hallq-escpos"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # python-escpos falls back to a temporary directory: slower start, nothing worse
    os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"] = str(directory)


_escpos_cache_dir()
