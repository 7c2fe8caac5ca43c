"""The ledger (and what SQLite keeps beside it) is readable by its owner only, however the controller is started:
systemd's ``UMask=0077`` made it 0600, a technician's shell (umask 022) made it 0644."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from hall_controller.ledger import Ledger


@pytest.fixture
def shell_umask() -> Iterator[None]:
    """The umask of a shell a technician starts the controller from."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _modes(path: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in sorted(path.parent.iterdir())
            if p.name.startswith(path.name)}


@pytest.mark.usefixtures("shell_umask")
def test_a_new_ledger_and_its_wal_and_shm_are_0600(tmp_path: Path) -> None:
    path = tmp_path / "state" / "ledger.sqlite3"
    ledger = Ledger(path, hall_id="h")
    try:
        modes = _modes(path)
    finally:
        ledger.close()
    assert set(modes) == {"ledger.sqlite3", "ledger.sqlite3-wal", "ledger.sqlite3-shm"}, modes
    assert set(modes.values()) == {0o600}, {name: oct(mode) for name, mode in modes.items()}


@pytest.mark.usefixtures("shell_umask")
def test_a_ledger_an_earlier_run_left_readable_is_made_0600(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    Ledger(path, hall_id="h").close()
    path.chmod(0o644)
    ledger = Ledger(path, hall_id="h")
    try:
        modes = _modes(path)
    finally:
        ledger.close()
    assert set(modes.values()) == {0o600}, {name: oct(mode) for name, mode in modes.items()}
