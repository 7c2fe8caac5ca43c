"""The simulated hall's past days: a real ledger the controller restores and the manager reports on."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import date
from pathlib import Path

import pytest

from hall_controller import config
from hall_controller.engine import Engine
from hall_controller.engine.events import DayStarted, TicketExpired, TicketFinished, TicketIssued, TicketRated
from hall_controller.ledger import LEDGER_FILE, Ledger
from hallsim.history import ledger_is_empty, write_history
from tests.support import ROOT


def _config(state: Path) -> config.ControllerConfig:
    return dataclasses.replace(config.load(ROOT / "config" / "sim" / "hall.toml"), state_dir=state)


def test_a_week_of_history_replays_and_leaves_nothing_open(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    assert ledger_is_empty(cfg)
    issued = write_history(cfg, days=3, tickets_per_day=200, today=date(2026, 12, 4))
    ledger = Ledger(tmp_path / LEDGER_FILE, hall_id=cfg.hall.id)
    try:
        events = list(ledger.events())
    finally:
        ledger.close()
    days = [e.day for e in events if isinstance(e, DayStarted)]
    assert days == ["2026-12-01", "2026-12-02", "2026-12-03", "2026-12-04"]  # the last one: leftovers expire
    assert issued == sum(isinstance(e, TicketIssued) for e in events) > 300
    assert all(a.at <= b.at for a, b in itertools.pairwise(events))  # a journal in time order
    engine = Engine(cfg.hall)
    engine.replay(events)
    assert engine.open_count() == 0 and engine.day == "2026-12-04"
    assert any(isinstance(e, TicketExpired) for e in events)
    rated = [e for e in events if isinstance(e, TicketRated)]
    served = sum(1 for e in events if isinstance(e, TicketFinished) and e.outcome == "served")
    assert 0.3 * served < len(rated) < 0.7 * served  # about half the served visits are rated
    assert {e.channel for e in rated} == {"counter", "phone"} and len({e.level for e in rated}) == 4
    assert any(e.reasons for e in rated) and all(not e.reasons or e.level in ("neutral", "dissatisfied")
                                                 for e in rated)
    assert not ledger_is_empty(cfg)


def test_history_goes_only_into_an_empty_ledger(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    write_history(cfg, days=1, tickets_per_day=20, today=date(2026, 12, 4))
    with pytest.raises(ValueError, match="not empty"):
        write_history(cfg, days=1, today=date(2026, 12, 4))
