"""The card scanner on the dispenser, end to end: the real serial adapter on a pseudo-terminal, the dispenser
service with gpiozero's mock pins, a real Mosquitto and the real controller; and ``--simulate`` fed by lines.

The controller's handling of cards is built separately: these tests judge the dispenser by what it sends on
the broker (a probe subscribed to its request topic) and by what it prints. The ``card_limit`` refusal is
answered by a probe in the controller's place, on the wire.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import tty
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path

import pytest

from dispenser.config import DispenserConfig, ScannerConfig
from dispenser.core import CardRules
from dispenser.printer import PreviewPrinter, read_job
from hallq import wire
from testbed.broker import PrivateBroker
from tests.support import ROOT, ControllerProcess, Probe, wait_until
from tests.test_dispenser_helpers import DISPENSER_CONFIG, Kiosk, ledger_rows, load_config, running_kiosk

NAME = "Nguyễn Thị Ánh Tuyết"
ID_NUMBER = "079303012345"
CCCD = f"{ID_NUMBER}||{NAME}|12052003|Nữ|12 Lê Lợi, Phường Bến Thành, Quận 1, TP. Hồ Chí Minh|01072021"
PERSONAL = (NAME, ID_NUMBER, "12052003", "Lê Lợi")
CARD_LED = 26


class ScannerEnd:
    """The scanner's side of a pseudo-terminal pair; ``path`` is the device the dispenser reads."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)

    def scan(self, text: str | bytes) -> None:
        os.write(self.master, (text.encode() if isinstance(text, str) else text) + b"\r\n")

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with suppress(OSError):
                os.close(fd)


def with_scanner(config: DispenserConfig, device: str, *, hold_s: float = 20.0) -> DispenserConfig:
    scanner = ScannerConfig(device=device, baudrate=9600, rules=CardRules(hold_s=hold_s))
    return replace(config, scanner=scanner, leds=replace(config.leds, card=CARD_LED))


@contextmanager
def kiosk_with_scanner(broker: PrivateBroker, printer: PreviewPrinter, *,
                       hold_s: float = 20.0) -> Iterator[tuple[Kiosk, ScannerEnd]]:
    end = ScannerEnd()
    try:
        with running_kiosk(with_scanner(load_config(broker), end.path, hold_s=hold_s), printer) as kiosk:
            assert kiosk.service.scanner is not None and kiosk.service.scanner.connected.wait(5)
            yield kiosk, end
    finally:
        end.close()


def card_led(kiosk: Kiosk) -> bool:
    return bool(kiosk.factory.pin(CARD_LED).state)


def wait_card_led(kiosk: Kiosk, on: bool) -> None:
    wait_until(lambda: card_led(kiosk) is on, timeout_s=3, what=f"the card light {'on' if on else 'off'}",
               every_s=0.01)


def test_a_scan_then_a_press_sends_the_card_and_prints_a_ticket_without_personal_data(
    broker: PrivateBroker, controller: ControllerProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    topics = Probe(broker).topics
    with (Probe(broker, subscriptions=[topics.dispenser_request("d1")]) as probe,
          kiosk_with_scanner(broker, PreviewPrinter(tmp_path / "previews")) as (kiosk, scanner)):
        scanner.scan(CCCD)
        assert kiosk.service.wait_outcome(lambda o: o.kind == "card_read") is not None
        wait_card_led(kiosk, True)
        kiosk.press("1")
        request = wire.TicketRequest.decode(probe.on(topics.dispenser_request("d1")).payload)
        printed = kiosk.service.wait_outcome(lambda o: o.kind == "printed")
        assert printed is not None and printed.preview is not None
        wait_card_led(kiosk, False)
    assert request.card == wire.CardScan(kind="cccd", code=CCCD)  # every Vietnamese letter as scanned
    assert [row["number"] for row in ledger_rows(tmp_path / "state")] == ["A001"]
    assert read_job(printed.preview.with_suffix(".bin").read_bytes()).ends_with_cut
    lines = [record.getMessage() for record in caplog.records]
    assert any("card read: cccd" in line for line in lines)
    assert not [line for line in lines if any(value in line for value in PERSONAL)]


def test_a_bad_scan_beeps_and_the_next_press_is_an_ordinary_ticket(
    broker: PrivateBroker, controller: ControllerProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    topics = Probe(broker).topics
    with (Probe(broker, subscriptions=[topics.dispenser_request("d1")]) as probe,
          kiosk_with_scanner(broker, PreviewPrinter(tmp_path / "previews")) as (kiosk, scanner)):
        scanner.scan(b"\xff\xfe not text")
        scanner.scan("https://dichvucong.gov.vn/")
        rejected = [kiosk.service.wait_outcome(lambda o: o.kind == "card_rejected", after=n) for n in (0, 1)]
        assert [o.detail for o in rejected if o is not None] == [
            "bytes that are not UTF-8", "not a CCCD, and this hall issues no cards of its own"]
        assert not card_led(kiosk)
        kiosk.press("2")
        request = wire.TicketRequest.decode(probe.on(topics.dispenser_request("d1")).payload)
        assert kiosk.service.wait_outcome(lambda o: o.kind == "printed") is not None
    assert request.card is None and request.service == "B"
    assert any("bad scan ignored: bytes that are not UTF-8" in r.getMessage() for r in caplog.records)


def test_a_card_limit_refusal_prints_a_slip_and_the_card_is_forgotten(
    broker: PrivateBroker, tmp_path: Path,
) -> None:
    topics = Probe(broker).topics
    previews = tmp_path / "previews"
    with (Probe(broker, subscriptions=[topics.dispenser_request("d1")]) as controller,
          kiosk_with_scanner(broker, PreviewPrinter(previews)) as (kiosk, scanner)):
        scanner.scan(CCCD)
        assert kiosk.service.wait_outcome(lambda o: o.kind == "card_read") is not None
        kiosk.press("1")
        request = wire.TicketRequest.decode(controller.on(topics.dispenser_request("d1")).payload)
        assert request.card is not None
        refusal = wire.TicketReply(request_id=request.request_id,
                                   error=wire.ErrorInfo("card_limit", "this card has taken its 1 ticket(s) today"))
        controller.publish(topics.dispenser_ticket("d1"), refusal.encode())
        slip = kiosk.service.wait_outcome(lambda o: o.kind == "slip_printed")
        refused = kiosk.service.wait_outcome(lambda o: o.kind == "refused")
        assert slip is not None and slip.preview is not None
        assert refused is not None and refused.detail == "card_limit"
        wait_card_led(kiosk, False)
    view = read_job(slip.preview.with_suffix(".bin").read_bytes())
    assert view.images and view.ends_with_cut


def test_a_card_not_used_within_the_hold_is_forgotten_and_its_light_goes_out(
    broker: PrivateBroker, tmp_path: Path,
) -> None:
    with kiosk_with_scanner(broker, PreviewPrinter(tmp_path / "previews"), hold_s=0.3) as (kiosk, scanner):
        scanner.scan("079303012345||Trần Thị Bình|12052003|Nữ|Hà Nội|01072021")
        assert kiosk.service.wait_outcome(lambda o: o.kind == "card_read") is not None
        forgotten = kiosk.service.wait_outcome(lambda o: o.kind == "card_forgotten", timeout_s=3)
        assert forgotten is not None and forgotten.detail == "cccd"
        wait_card_led(kiosk, False)


def test_a_kiosk_whose_scanner_is_missing_still_issues_tickets(
    broker: PrivateBroker, controller: ControllerProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    config = with_scanner(load_config(broker), str(tmp_path / "ttyACM0"))
    with running_kiosk(config, PreviewPrinter(tmp_path / "previews")) as kiosk:
        kiosk.press("1")
        assert kiosk.service.wait_outcome(lambda o: o.kind == "printed") is not None
    assert any("card scanner unavailable" in r.getMessage() for r in caplog.records)


def test_simulate_mode_reads_scan_lines_through_the_serial_adapter(
    broker: PrivateBroker, controller: ControllerProcess, tmp_path: Path,
) -> None:
    config = tmp_path / "kiosk.toml"
    config.write_text(DISPENSER_CONFIG.read_text(encoding="utf-8")
                      + '\n[scanner]\ndevice = "/dev/ttyACM0"\ncard_led_pin = 26\n', encoding="utf-8")
    topics = Probe(broker).topics
    with Probe(broker, subscriptions=[topics.dispenser_request("d1")]) as probe:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dispenser", "--simulate", "--config", str(config), "--broker", broker.address,
             "--preview-dir", str(tmp_path / "previews")],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"}, text=True, encoding="utf-8",
        )
        assert proc.stdin is not None and proc.stderr is not None
        lines: list[str] = []
        seen = threading.Condition()

        def read() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                with seen:
                    lines.append(line)
                    seen.notify_all()

        def wait_for(text: str) -> None:
            with seen:
                assert seen.wait_for(lambda: any(text in line for line in lines), timeout=30), "".join(lines)

        threading.Thread(target=read, daemon=True).start()
        try:
            wait_for("card scanner ready")
            wait_for("leds ready=on")
            proc.stdin.write(f"scan {CCCD}\nscan 12345\n")
            proc.stdin.flush()
            wait_for(f"card read: cccd chars={len(CCCD)}")
            wait_for("bad scan ignored: not a CCCD")
            proc.stdin.write("1\n")
            proc.stdin.flush()
            wait_for("printed ticket=A001")
            request = wire.TicketRequest.decode(probe.on(topics.dispenser_request("d1")).payload)
            proc.stdin.close()
            assert proc.wait(10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert request.card == wire.CardScan(kind="cccd", code=CCCD)
    assert "card=on" in "".join(lines)
    assert not [line for line in lines if any(value in line for value in PERSONAL)]
