"""Shared fixtures: a private Mosquitto per test (from the project's own broker config) and a controller."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dispenser.escpos_cache import import_escpos, shared_directory
from testbed.broker import PrivateBroker
from tests.support import HALL_CONFIG, ControllerProcess

# Test modules import the printer code directly, not through the dispenser's command: give them the same
# cache set-up, so one suite run parses python-escpos's printer database once and leaves nothing in /tmp.
import_escpos(shared_directory(os.environ))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    with PrivateBroker(tmp_path / "broker") as running:
        yield running


@pytest.fixture
def controller(broker: PrivateBroker, tmp_path: Path) -> Iterator[ControllerProcess]:
    with ControllerProcess(config=HALL_CONFIG, broker=broker, state_dir=tmp_path / "state") as process:
        yield process
