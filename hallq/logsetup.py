"""Logging for every role's command line: one line per record, ``key=value`` context in the message."""

from __future__ import annotations

import logging
import os
import sys


def setup(level: str = "INFO") -> None:
    """Configure the root logger once; under systemd (JOURNAL_STREAM set) the journal adds time and unit."""
    under_journal = bool(os.environ.get("JOURNAL_STREAM"))
    fmt = "%(levelname)s %(name)s: %(message)s" if under_journal else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr, force=True)
    # paho logs nothing unless asked; escpos and PIL are chatty at DEBUG.
    for noisy in ("PIL", "escpos"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, logging.getLogger().level))
