"""The card scanner's parts of the dispenser that need no broker: its config table, the card ticket and the
refusal slip on paper, the card light and beeps on gpiozero's mock pins."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

import pytest
from gpiozero.pins.mock import MockFactory

from dispenser import config as config_mod
from dispenser.core import BeepPattern, ButtonSpec, ShowIndicators
from dispenser.hardware import _BEEPS, Indicators, LedWiring
from dispenser.printer import TicketJobs, read_job
from dispenser.ticket import TicketLayout, TicketRenderer
from hallq.errors import EXIT_CONFIG, ConfigError
from hallq.wire import TicketInfo
from tests.support import ROOT
from tests.test_dispenser_helpers import DISPENSER_CONFIG, PREVIEWS

EXAMPLE = ROOT / "config" / "dispenser.example.toml"
SCANNER = '\n[scanner]\ndevice = "/dev/ttyACM0"\n'
LAYOUT = TicketLayout(hall_name="Trung tâm Phục vụ hành chính công Quận 1", hall_id="hcm-q1", dispenser_id="d1",
                      qr="https://hcm-q1.example.gov.vn/ticket/{ticket_id}",
                      footer="Vui lòng chờ gọi số. Xin cảm ơn! / Please wait for your number. Thank you!")
BUTTON = ButtonSpec(key="1", service="A", label_vi="Hộ tịch", label_en="Civil status registration")


def with_scanner(tmp_path: Path, table: str = SCANNER) -> Path:
    path = tmp_path / "dispenser.toml"
    path.write_text(DISPENSER_CONFIG.read_text(encoding="utf-8") + table, encoding="utf-8")
    return path


def a_ticket(*, card: bool) -> TicketInfo:
    return TicketInfo(id="3e2d1c0b9a8f4e7d", number="A015", service="A", priority=False, category=None,
                      issued_at=datetime(2026, 11, 27, 1, 16, tzinfo=UTC), ahead=4, estimated_wait_s=360, card=card)


# --- config ---------------------------------------------------------------------------------------------------

def test_a_dispenser_without_a_scanner_table_has_no_scanner() -> None:
    cfg = config_mod.load(DISPENSER_CONFIG)
    assert cfg.scanner is None and cfg.leds.card is None


def test_the_scanner_table_takes_its_defaults(tmp_path: Path) -> None:
    scanner = config_mod.load(with_scanner(tmp_path)).scanner
    assert scanner is not None
    assert (scanner.device, scanner.baudrate, scanner.rules.hold_s, scanner.rules.hall_prefix) == (
        "/dev/ttyACM0", 9600, 20.0, None)


def test_the_examples_commented_scanner_table_is_a_working_one(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    block = text[text.index("# [scanner]"):text.index("# One [[buttons]]")]
    table = "\n".join(line.removeprefix("# ") for line in block.splitlines() if line.startswith("# "))
    path = tmp_path / "example.toml"
    path.write_text(text.replace(block, table + "\n\n"), encoding="utf-8")
    cfg = config_mod.load(path)
    assert cfg.scanner is not None and cfg.scanner.rules.hall_prefix == "TTHCC-" and cfg.leds.card == 26


@pytest.mark.parametrize(("table", "key", "problem"), [
    ("\n[scanner]\nbaudrate = 9600\n", "scanner.device", "is required"),
    (SCANNER + "baudrate = 4800\n", "scanner.baudrate", "must be 9600, 19200, 38400, 57600 or 115200, got 4800"),
    (SCANNER + "hold_s = 1\n", "scanner.hold_s", "at least 5"),
    (SCANNER + "hold_s = 600\n", "scanner.hold_s", "at most 120"),
    (SCANNER + 'hall_card_prefix = "tthcc-"\n', "scanner.hall_card_prefix", "1-16 of A-Z 0-9 _ -"),
    (SCANNER + "card_led_pin = 19\n", "scanner.card_led_pin", "GPIO19 is already used by gpio.buzzer"),
    (SCANNER + "card_led_pin = 28\n", "scanner.card_led_pin", "at most 27"),
    (SCANNER + "buzzer_pin = 12\n", "scanner.buzzer_pin", "unknown key"),
])
def test_scanner_mistakes_are_refused_naming_key_and_problem(tmp_path: Path, table: str, key: str,
                                                             problem: str) -> None:
    path = with_scanner(tmp_path, table)
    with pytest.raises(ConfigError) as caught:
        config_mod.load(path)
    assert (caught.value.path, caught.value.key) == (str(path), key)
    assert problem in caught.value.problem


def test_a_bad_scanner_table_stops_the_dispenser_in_one_line(tmp_path: Path) -> None:
    path = with_scanner(tmp_path, SCANNER + "baudrate = 4800\n")
    refused = subprocess.run([sys.executable, "-m", "dispenser", "check", "--config", str(path)],
                             capture_output=True, text=True, cwd=ROOT, check=False)
    assert refused.returncode == EXIT_CONFIG and "Traceback" not in refused.stderr
    assert f"{path}: scanner.baudrate: must be 9600" in refused.stderr


# --- paper -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("paper_dots", [384, 576])
def test_a_card_ticket_carries_the_mark_and_the_privacy_notice_below_the_footer(paper_dots: int) -> None:
    jobs = TicketJobs(TicketRenderer(LAYOUT, width_dots=paper_dots), profile="TM-T20II")
    plain = read_job(jobs.job(a_ticket(card=False), BUTTON)).picture()
    card = read_job(jobs.job(a_ticket(card=True), BUTTON)).picture()
    footer_rows = jobs.renderer.footer().height
    assert card.height > plain.height + 80  # the mark, and two to four lines of notice
    # The plain ticket is unchanged, and the card ticket ends with the plain footer and then the notice.
    assert plain.tobytes() == jobs.renderer.render(a_ticket(card=False), BUTTON).tobytes()
    notice = jobs.renderer.footer(card=True)
    assert notice.crop((0, 0, paper_dots, footer_rows)).tobytes() == jobs.renderer.footer().tobytes()
    PREVIEWS.mkdir(parents=True, exist_ok=True)
    card.save(PREVIEWS / f"dispenser-ticket-card-{paper_dots}dots.png")


def test_the_refusal_slip_is_a_job_of_its_own_with_no_number() -> None:
    jobs = TicketJobs(TicketRenderer(LAYOUT, width_dots=576), profile="TM-T20II")
    view = read_job(jobs.slip("card_limit"))
    assert view.images and view.ends_with_cut
    slip = view.picture()
    assert 150 < slip.height < jobs.renderer.render(a_ticket(card=False), BUTTON).height / 2
    PREVIEWS.mkdir(parents=True, exist_ok=True)
    slip.save(PREVIEWS / "dispenser-slip-card-limit.png")


def test_a_card_ticket_without_english_has_a_shorter_mark() -> None:
    vi = TicketRenderer(replace(LAYOUT, english=False), width_dots=576)
    both = TicketRenderer(LAYOUT, width_dots=576)
    assert vi.body(a_ticket(card=True)).height < both.body(a_ticket(card=True)).height


# --- light and buzzer ------------------------------------------------------------------------------------------

def test_the_card_light_follows_the_indicators() -> None:
    factory = MockFactory()
    try:
        leds = Indicators(LedWiring(ready=5, card=26, buzzer=19), pin_factory=factory)
        leds.show(ShowIndicators(ready=True, busy=False, fault="off", card=True))
        assert factory.pin(26).state and factory.pin(5).state
        leds.show(ShowIndicators(ready=True, busy=False, fault="off", card=False))
        assert not factory.pin(26).state
        leds.close()
    finally:
        factory.close()


def test_every_beep_the_core_asks_for_has_a_distinct_pattern() -> None:
    patterns = [_BEEPS[name] for name in get_args(BeepPattern)]
    assert len(set(patterns)) == len(patterns)
    assert _BEEPS["card_bad"][2] == 3  # three short beeps: "that is no card"
