"""The controller under a Pi's wrong clock, end to end: a real controller process and a real Mosquitto, the
wall clock driven through the controller's clock drill (``--clock-drill``), the way a power cut, a boot
before time sync, a hand-set date or a time-sync step would move it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from testbed.broker import PrivateBroker
from tests.support import HALL_CONFIG, ROOT, ControllerProcess, Probe, wait_until

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
DAY = timedelta(days=1)


class Hall:
    """A controller with a clock drill file, a probe acting as dispenser d1 and counters 1 and 3."""

    def __init__(self, broker: PrivateBroker, tmp_path: Path, *, trust: str) -> None:
        self.config = tmp_path / "hall.toml"
        self.config.write_text(HALL_CONFIG.read_text(encoding="utf-8").replace(
            'trust_clock = "always"', f'trust_clock = "{trust}"'), encoding="utf-8")
        self.drill = tmp_path / "clock.json"
        self.state = tmp_path / "state"
        self.broker = broker
        self.set_clock(offset=timedelta(0), synchronised=True)
        self.process = self._process()

    def _process(self) -> ControllerProcess:
        return ControllerProcess(config=self.config, broker=self.broker, state_dir=self.state,
                                 extra_args=("--clock-drill", str(self.drill)))

    def set_clock(self, *, offset: timedelta, synchronised: bool) -> None:
        """What the controller's wall clock says from now on: real time + ``offset``; and the kernel's flag.
        Written atomically; the controller reads it at its next batch (at least once a second)."""
        staging = self.drill.with_suffix(".tmp")
        staging.write_text(json.dumps({"offset_s": offset.total_seconds(), "synchronised": synchronised}),
                           encoding="utf-8")
        staging.replace(self.drill)

    def restart(self) -> None:
        """The same process object stopped and started again: the test's ``with`` still stops it at the end."""
        self.process.stop()
        self.process.start()

    def wait_for_log(self, text: str, *, timeout_s: float = 5.0) -> None:
        self.process.wait_for_log(text, timeout_s=timeout_s)


@pytest.fixture
def probe(broker: PrivateBroker) -> Iterator[Probe]:
    with Probe(broker, subscriptions=["qms/test-hall/#"]) as client:
        yield client


def _until(probe: Probe, ask: object, *, timeout_s: float = 5.0) -> None:
    """Poll ``ask()`` (a request) until it is not refused with clock_unsynchronised."""
    def trusted() -> bool:
        reply = ask()  # type: ignore[operator]
        return bool(reply.error is None or reply.error.code != "clock_unsynchronised")

    wait_until(trusted, timeout_s=timeout_s, what="the clock becomes trusted", every_s=0.2)


def test_a_step_back_mid_service_keeps_estimates_valid_for_the_kiosk(broker: PrivateBroker, tmp_path: Path,
                                                                     probe: Probe) -> None:
    hall = Hall(broker, tmp_path, trust="always")
    with hall.process:  # starts it, and stops it at the end
        probe.request_ticket("d1", "A")
        probe.request_ticket("d1", "A")
        assert probe.command("3", "next").ticket is not None
        hall.set_clock(offset=-timedelta(hours=1), synchronised=False)  # someone set the date by hand
        hall.wait_for_log("nothing vouches for it")
        probe.command("3", "complete")
        for _ in range(3):
            ticket = probe.request_ticket("d1", "A").ticket  # decoded exactly as the dispenser decodes it
            assert ticket is not None and 0 <= ticket.estimated_wait_s <= 3 * 3600
            assert ticket.issued_at > datetime.now(ZONE) - timedelta(minutes=5)  # the hall's time went on


def test_a_boot_with_yesterdays_clock_issues_and_calls_nothing_until_time_syncs(
        broker: PrivateBroker, tmp_path: Path, probe: Probe) -> None:
    hall = Hall(broker, tmp_path, trust="synchronised")
    yesterday = -timedelta(hours=30)  # the business day before today's, whatever the hour now
    hall.set_clock(offset=yesterday, synchronised=True)
    with hall.process:  # starts it, and stops it at the end
        assert [probe.request_ticket("d1", "A").ticket.number for _ in range(3)] == ["A001", "A002", "A003"]  # type: ignore[union-attr]
        # Power cut; the Pi boots the next morning with the time it saved, and no network time yet.
        hall.set_clock(offset=yesterday + timedelta(minutes=5), synchronised=False)
        hall.restart()
        refused = probe.request_ticket("d1", "A")
        assert refused.error is not None and refused.error.code == "clock_unsynchronised"
        called = probe.command("3", "next")
        assert called.error is not None and called.error.code == "clock_unsynchronised"  # not yesterday's A002
        hall.wait_for_log("the hall's clock is not trusted")
        hall.set_clock(offset=timedelta(0), synchronised=True)  # network time arrives
        _until(probe, lambda: probe.request_ticket("d1", "B"))
        hall.wait_for_log("business day")
        today = [probe.request_ticket("d1", "A").ticket.number for _ in range(2)]  # type: ignore[union-attr]
        assert today == ["A001", "A002"]  # a new day's numbering, nothing handed out twice this morning
        nxt = probe.command("3", "next")
        assert nxt.ticket is not None and nxt.ticket.number == "A001"


def test_a_1970_boot_is_behind_the_ledger_and_waits(broker: PrivateBroker, tmp_path: Path, probe: Probe) -> None:
    hall = Hall(broker, tmp_path, trust="always")  # even a hall that trusts its clock: the ledger proves it wrong
    with hall.process:  # starts it, and stops it at the end
        probe.request_ticket("d1", "A")
        hall.set_clock(offset=datetime(1970, 1, 1, tzinfo=ZONE) - datetime.now(ZONE), synchronised=False)
        hall.restart()
        refused = probe.request_ticket("d1", "A")
        assert refused.error is not None and refused.error.code == "clock_unsynchronised"
        hall.set_clock(offset=timedelta(0), synchronised=True)
        _until(probe, lambda: probe.request_ticket("d1", "A"))
        reply = probe.request_ticket("d1", "A")
        assert reply.ticket is not None and reply.ticket.issued_at.year >= 2026


def test_a_step_across_the_day_start_that_nothing_vouches_for_is_ignored_and_expires_nothing(broker: PrivateBroker, tmp_path: Path,
                                                                   probe: Probe) -> None:
    hall = Hall(broker, tmp_path, trust="always")
    hall.set_clock(offset=timedelta(0), synchronised=False)
    with hall.process:  # starts it, and stops it at the end
        probe.request_ticket("d1", "A")
        probe.request_ticket("d1", "A")
        serving = probe.command("3", "next").ticket
        hall.set_clock(offset=DAY, synchronised=False)
        hall.wait_for_log("nothing vouches for it")
        assert probe.request_ticket("d1", "A").ticket.number == "A003"  # type: ignore[union-attr]
        after = probe.command("3", "complete")
        assert after.error is None and serving is not None  # the citizen being served was not expired


def test_a_year_ahead_typo_corrected_leaves_the_business_day_alone_after_a_restart(
        broker: PrivateBroker, tmp_path: Path, probe: Probe) -> None:
    hall = Hall(broker, tmp_path, trust="always")
    hall.set_clock(offset=timedelta(0), synchronised=False)
    with hall.process:  # starts it, and stops it at the end
        probe.request_ticket("d1", "A")
        hall.set_clock(offset=timedelta(days=365), synchronised=False)
        hall.wait_for_log("nothing vouches for it")
        probe.request_ticket("d1", "A")
        hall.set_clock(offset=timedelta(0), synchronised=False)  # corrected a moment later
        hall.restart()
        reply = probe.request_ticket("d1", "A")
        assert reply.ticket is not None and reply.ticket.number == "A003"
        assert reply.ticket.issued_at.year == datetime.now(ZONE).year


def test_an_operator_confirms_the_clock_where_no_network_time_comes(broker: PrivateBroker, tmp_path: Path,
                                                                    probe: Probe) -> None:
    hall = Hall(broker, tmp_path, trust="synchronised")
    hall.set_clock(offset=timedelta(0), synchronised=False)
    with hall.process:  # starts it, and stops it at the end
        refused = probe.request_ticket("d1", "A")
        assert refused.error is not None and refused.error.code == "clock_unsynchronised"
        done = subprocess.run([sys.executable, "-m", "hall_controller", "clock", "confirm", "--config",
                               str(hall.config), "--state-dir", str(hall.state)], cwd=ROOT, capture_output=True,
                              text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        assert "synchronised: " in done.stdout and "confirmed:" in done.stdout
        _until(probe, lambda: probe.request_ticket("d1", "A"))
        hall.wait_for_log("clock confirmed by the operator")


def test_a_restart_in_the_same_boot_keeps_a_trusted_clock(broker: PrivateBroker, tmp_path: Path,
                                                          probe: Probe) -> None:
    """A crash, the watchdog or an upgrade restarts the controller: a hall without network time (or hours
    after its last synchronisation) must not stop issuing until somebody confirms the clock again."""
    hall = Hall(broker, tmp_path, trust="synchronised")
    with hall.process:  # starts it, and stops it at the end
        assert probe.request_ticket("d1", "A").ticket is not None
        hall.set_clock(offset=timedelta(0), synchronised=False)  # the kernel forgets it was synchronised
        hall.restart()
        reply = probe.request_ticket("d1", "A")
        assert reply.ticket is not None and reply.ticket.number == "A002"
