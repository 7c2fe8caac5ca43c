"""The dispenser's config: the example loads; each mistake is refused naming file, key and problem."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from dispenser import config as config_mod
from dispenser.printer import TicketJobs, read_job
from dispenser.ticket import TicketRenderer, sample_ticket
from hallq.errors import EXIT_CONFIG, ConfigError
from tests.support import ROOT
from tests.test_dispenser_helpers import DISPENSER_CONFIG

EXAMPLE = ROOT / "config" / "dispenser.example.toml"


def test_the_example_documents_a_working_config() -> None:
    cfg = config_mod.load(EXAMPLE)
    assert (cfg.id, cfg.hall, cfg.printer.type, cfg.printer.width_dots) == ("d1", "hcm-q1", "usb", 576)
    assert (cfg.printer.usb_vendor_id, cfg.printer.usb_timeout_ms) == (0x0416, 5000)
    assert [b.key for b in cfg.buttons] == ["1", "2", "3", "4"]
    assert cfg.buttons[3].priority and cfg.buttons[3].category == "elderly"
    assert cfg.time_zone == "Asia/Ho_Chi_Minh"


def test_the_time_zone_defaults_to_vietnams() -> None:
    assert config_mod.load(DISPENSER_CONFIG).zone == ZoneInfo("Asia/Ho_Chi_Minh")


def test_labels_are_stored_composed(tmp_path: Path) -> None:
    text = DISPENSER_CONFIG.read_text(encoding="utf-8").replace('label_vi = "Hộ tịch"', 'label_vi = "Ho\u0302\u0323 ti\u0323ch"')
    path = tmp_path / "d.toml"
    path.write_text(text, encoding="utf-8")
    assert config_mod.load(path).buttons[0].label_vi == "Hộ tịch"


def variant(tmp_path: Path, old: str, new: str) -> Path:
    text = DISPENSER_CONFIG.read_text(encoding="utf-8")
    assert old in text, old
    path = tmp_path / "dispenser.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(("old", "new", "key", "problem"), [
    ('id = "d1"', 'id = "d1"\nprority = 1', "dispenser.prority", "unknown key"),
    ('key = "1"', 'key = "10"', 'buttons[key="10"].key', "one letter or digit"),
    ('key = "2"', 'key = "1"', "buttons[#2].key", "duplicate key '1' (also buttons[#1])"),
    ("pin = 27", "pin = 17", 'buttons[key="2"].pin', 'already used by buttons[key="1"].pin'),
    ("ready_led = 5", "ready_led = 17", "gpio.ready_led", "already used"),
    ("pin = 17", "pin = 40", 'buttons[key="1"].pin', "at most 27"),
    ('category = "elderly"', 'category = "vip"', 'buttons[key="4"].category', "must be one of"),
    ('service = "A"', 'service = "A"\ncategory = "child"', 'buttons[key="1"].category', "only for priority"),
    ('pin_factory = "mock"', 'pin_factory = "wiringpi"', "gpio.pin_factory", "must be one of"),
    ("paper_width_mm = 80", "paper_width_mm = 76", "printer.paper_width_mm", "58 or 80"),
    ('profile = "TM-T20II"', 'profile = "TM-X"', "printer.profile", "unknown python-escpos profile"),
    ('profile = "TM-T20II"', 'profile = "POS-5890"', "printer.paper_width_mm", "prints at most 384"),
    ('type = "preview"', 'type = "usb"', "printer.usb", "is required"),
    ('type = "preview"', 'type = "preview"\n[printer.usb]\nvendor_id = 1', "printer.usb", 'is for type = "usb"'),
    ('qr = "hallq:{hall}/{dispenser}/{number}/{ticket_id}"', 'qr = "{ticket}"', "ticket.qr", "bad template"),
    ('footer = "', 'logo = "/nonexistent.png"\nfooter = "', "ticket.logo", "cannot read image"),
    ("request_attempts = 3", "request_attempts = 0", "dispenser.request_attempts", "at least 1"),
    ('hall = "test-hall"', 'hall = "test-hall"\ntime_zone = "Asia/Saigon City"', "dispenser.time_zone",
     "unknown time zone"),
    ('hall = "test-hall"', 'hall = "test-hall"\ntime_zone = "../etc/passwd"', "dispenser.time_zone",
     "unknown time zone"),
])
def test_mistakes_are_refused_naming_key_and_problem(tmp_path: Path, old: str, new: str, key: str,
                                                     problem: str) -> None:
    path = variant(tmp_path, old, new)
    with pytest.raises(ConfigError) as caught:
        config_mod.load(path)
    assert caught.value.path == str(path) and caught.value.key == key
    assert problem in caught.value.problem


def test_cli_check_says_ok_and_a_bad_config_exits_78_in_one_line(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "dispenser", "check", "--config", str(DISPENSER_CONFIG)],
                        capture_output=True, text=True, cwd=ROOT, check=False)
    assert ok.returncode == 0 and "OK — dispenser d1 of hall test-hall: 4 buttons" in ok.stdout
    bad = variant(tmp_path, "pin = 27", "pin = 17")
    refused = subprocess.run([sys.executable, "-m", "dispenser", "--config", str(bad)],
                             capture_output=True, text=True, cwd=ROOT, check=False)
    assert refused.returncode == EXIT_CONFIG
    assert "Traceback" not in refused.stderr
    assert f'{bad}: buttons[key="2"].pin: GPIO17 is already used by buttons[key="1"].pin' in refused.stderr


def test_print_test_preview_writes_exactly_the_test_ticket(tmp_path: Path) -> None:
    out = tmp_path / "test.png"
    done = subprocess.run([sys.executable, "-m", "dispenser", "print-test", "--config", str(DISPENSER_CONFIG),
                           "--preview", str(out)], capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    assert out.is_file() and "test ticket, 576x" in done.stdout


def test_print_test_prints_the_halls_time_not_the_machines(tmp_path: Path) -> None:
    cfg = config_mod.load(DISPENSER_CONFIG)  # the hall in Asia/Ho_Chi_Minh (UTC+7)
    machine_zone = "America/Los_Angeles"  # 14 or 15 hours behind: another hour on paper, often another day
    out = tmp_path / "test.png"
    before = datetime.now(UTC)
    done = subprocess.run([sys.executable, "-m", "dispenser", "print-test", "--config", str(DISPENSER_CONFIG),
                           "--preview", str(out)], capture_output=True, text=True, cwd=ROOT, check=False,
                          env={**os.environ, "TZ": machine_zone})
    after = datetime.now(UTC)
    assert done.returncode == 0, done.stderr
    jobs = TicketJobs(TicketRenderer(cfg.layout, width_dots=cfg.printer.width_dots), profile=cfg.printer.profile)

    def printed_at(moment: datetime) -> bytes:
        ticket, button = sample_ticket(hall_id=cfg.hall, issued_at=moment)
        return read_job(jobs.job(ticket, button)).picture().tobytes()

    with Image.open(out) as preview:
        printed = preview.tobytes()
    assert printed in {printed_at(t.astimezone(cfg.zone)) for t in (before, after)}
    assert printed != printed_at(before.astimezone(ZoneInfo(machine_zone)))


def test_print_test_on_an_unreachable_printer_exits_69(tmp_path: Path) -> None:
    text = DISPENSER_CONFIG.read_text(encoding="utf-8").replace('type = "preview"', 'type = "network"')
    text = text.replace("[ticket]", '[printer.network]\nhost = "127.0.0.1"\nport = 1\n\n[ticket]')
    path = tmp_path / "network.toml"
    path.write_text(text, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "dispenser", "print-test", "--config", str(path)],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 69 and "not ready: offline" in done.stderr and "Traceback" not in done.stderr


def test_an_overlong_qr_template_is_refused(tmp_path: Path) -> None:
    text = DISPENSER_CONFIG.read_text(encoding="utf-8")
    path = tmp_path / "dispenser.toml"
    path.write_text(text.replace('qr = "hallq:{hall}/{dispenser}/{number}/{ticket_id}"', 'qr = "' + "x" * 600 + '"'),
                    encoding="utf-8")
    with pytest.raises(ConfigError, match="at most 500"):
        config_mod.load(path)
