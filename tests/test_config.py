"""The controller's strict configuration: the example loads, and every mistake is named precisely."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from hall_controller import config
from hall_controller.engine import Engine
from hall_controller.engine.events import ActAtCounter
from hall_controller.ledger import Ledger
from hallq.errors import ConfigError
from hallq.topics import Topics
from tests.support import HALL_CONFIG, ROOT

EXAMPLE = ROOT / "config" / "hall.example.toml"


def test_the_example_describes_a_realistic_hall_and_loads() -> None:
    cfg = config.load(EXAMPLE)
    hall = cfg.hall
    assert len(hall.services) >= 5
    assert len(hall.counters) == 20
    assert sum(c.policy == "priority_first" for c in hall.counters) == 2
    assert len(hall.dispensers) >= 3
    assert hall.time_zone == "Asia/Ho_Chi_Minh"
    assert any(s.priority_prefix for s in hall.services)
    assert all(s.hours for s in hall.services)


def test_the_test_fixture_hall_loads() -> None:
    assert config.load(HALL_CONFIG).hall.id == "test-hall"


def _with(tmp_path: Path, old: str, new: str) -> Path:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert old in text, old
    path = tmp_path / "hall.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


BAD = [
    ('id = "hcm-q1"', 'id = "hcm/q1"', "hall.id", "not a valid id"),
    ('time_zone = "Asia/Ho_Chi_Minh"', 'time_zone = "Mars/Olympus"', "hall.time_zone", "unknown time zone"),
    ('business_day_starts = "04:00"', 'business_day_starts = "4am"', "hall.business_day_starts", "HH:MM"),
    ("[hall]\n", "[hall]\nprority = 3\n", "hall.prority", "unknown key"),
    ('prefix = "A"', 'prefix = "a1"', 'services[id="A"].prefix', "capital letters"),
    ('prefix = "B"', 'prefix = "A"', 'services[id="B"].prefix', "already used by service A"),
    ('priority_prefix = "UE"', 'priority_prefix = "E"', 'services[id="E"].priority_prefix', "already used"),
    ('last_number = 1999', 'last_number = 0', 'services[id="D"].last_number', "at least 1"),
    ('daily_cap = 300', 'daily_cap = "many"', 'services[id="B"].daily_cap', "integer"),
    ('hours = ["07:30-11:30", "13:00-17:00"]', 'hours = ["11:30-07:30"]', 'services[id="A"].hours', "after the start"),
    ('transfer_position = "original"', 'transfer_position = "back"', 'services[id="F"].transfer_position', "front, original"),
    ('services = ["A"]', 'services = ["A", "Q"]', 'counters[id="3"].services', "unknown service 'Q'"),
    ('policy = "priority_first"', 'policy = "fastest"', 'counters[id="1"].policy', "priority_first, interleave"),
    ('interleave_ratio = 4', 'interleave_ratio = 0', 'counters[id="11"].interleave_ratio', "at least 1"),
    ('id = "2"', 'id = "1"', "counters[#2].id", "duplicate id '1' (also counters[#1])"),
    ('id = "kiosk-3"', 'id = "kiosk-1"', "dispensers[#3].id", "duplicate id 'kiosk-1' (also dispensers[#1])"),
    ('broker = "127.0.0.1:1883"', 'broker = "localhost"', "mqtt.broker", "HOST:PORT"),
    ('log_level = "INFO"', 'log_level = "LOUD"', "controller.log_level", "DEBUG, INFO"),
    ("window_minutes = 30", "window_minutes = 0", "ratings.window_minutes", "at least 1"),
    ("window_minutes = 30", "window_minutes = 30\nwindow = 5", "ratings.window", "unknown key"),
    ("window_minutes = 30", 'window_minutes = 30\n[[ratings.reasons]]\nid = "a b"\nname_vi = "x"\nname_en = "x"',
     "ratings.reasons[#1].id", "not a valid id"),
    ("window_minutes = 30", 'window_minutes = 30\n[[ratings.reasons]]\nid = "wait"\nname_vi = "Chờ lâu"',
     'ratings.reasons[id="wait"].name_en', "is required"),
    ("window_minutes = 30", 'window_minutes = 30\n[[ratings.reasons]]\nid = "w"\nname_vi = "a"\nname_en = "a"\n'
     '[[ratings.reasons]]\nid = "w"\nname_vi = "b"\nname_en = "b"', "ratings.reasons[#2].id", "duplicate id 'w'"),
]


@pytest.mark.parametrize(("old", "new", "key", "problem"), BAD, ids=[b[2] for b in BAD])
def test_a_bad_value_is_refused_naming_file_key_and_problem(
    tmp_path: Path, old: str, new: str, key: str, problem: str
) -> None:
    path = _with(tmp_path, old, new)
    with pytest.raises(ConfigError) as refused:
        config.load(path)
    assert refused.value.path == str(path)
    assert refused.value.key == key
    assert problem in refused.value.problem


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        config.load(tmp_path / "nope.toml")


def test_broken_toml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hall.toml"
    path.write_text("[hall\nid = 1", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(path)


def test_the_cli_exits_78_with_one_readable_line_and_no_traceback(tmp_path: Path) -> None:
    path = _with(tmp_path, 'policy = "priority_first"', 'policy = "fastest"')
    for args in (["check"], []):
        result = subprocess.run([sys.executable, "-m", "hall_controller", *args, "--config", str(path)],
                                check=False, capture_output=True, text=True, cwd=ROOT, timeout=30)
        assert result.returncode == 78
        assert "Traceback" not in result.stderr
        assert f'{path}: counters[id="1"].policy: must be one of priority_first, interleave' in result.stderr


def test_check_reports_what_it_found() -> None:
    result = subprocess.run([sys.executable, "-m", "hall_controller", "check", "--config", str(EXAMPLE)],
                            check=False, capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert result.returncode == 0
    assert "6 services, 20 counters, 3 dispensers" in result.stdout


def test_a_damaged_ledger_stops_the_controller_with_status_65(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "ledger.sqlite3").write_bytes(b"\x00garbage" * 512)
    result = subprocess.run([sys.executable, "-m", "hall_controller", "--config", str(HALL_CONFIG),
                             "--state-dir", str(state), "--broker", "127.0.0.1:9"],
                            check=False, capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert result.returncode == 65
    assert "Traceback" not in result.stderr
    assert "Refusing to start" in result.stderr


def test_a_ledger_naming_a_counter_the_config_no_longer_has_stops_the_controller_with_status_78(
    tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    cfg = config.load(HALL_CONFIG)
    engine = Engine(cfg.hall)
    ledger = Ledger(state / "ledger.sqlite3", hall_id=cfg.hall.id)
    ledger.append(engine.handle(ActAtCounter("4", "open-4", "open"), now=datetime.now(cfg.hall.zone)).events)
    ledger.close()
    text = HALL_CONFIG.read_text(encoding="utf-8")
    block = text[text.index('[[counters]]\nid = "4"'):]
    smaller = tmp_path / "hall.toml"
    smaller.write_text(text.replace(block, block[block.index("\n\n") + 2:] if "\n\n[" in block else ""),
                       encoding="utf-8")
    assert config.load(smaller).hall.counters[-1].id != "4"
    result = subprocess.run([sys.executable, "-m", "hall_controller", "--config", str(smaller),
                             "--state-dir", str(state), "--broker", "127.0.0.1:9"],
                            check=False, capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert result.returncode == 78
    assert "Traceback" not in result.stderr
    assert "which the config no longer has" in result.stderr and "'4'" in result.stderr


def test_the_mqtt_password_file_is_read_when_connecting_not_when_checking(tmp_path: Path) -> None:
    """Under systemd the password is a credential that exists only while the unit runs: ``check`` must pass
    without it, and the controller must refuse to run without it (exit 78, one line naming the file)."""
    missing = tmp_path / "credentials" / "mqtt-password"
    path = _with(tmp_path, '# username = "controller"',
                 f'username = "controller"\npassword_file = "{missing}"')
    checked = subprocess.run([sys.executable, "-m", "hall_controller", "check", "--config", str(path)],
                             check=False, capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert checked.returncode == 0, checked.stderr
    ran = subprocess.run([sys.executable, "-m", "hall_controller", "--config", str(path), "--state-dir",
                          str(tmp_path / "state"), "--broker", "127.0.0.1:9"],
                         check=False, capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert ran.returncode == 78
    assert "Traceback" not in ran.stderr
    assert f"{missing}: cannot read the MQTT password file" in ran.stderr


@pytest.mark.parametrize("base", ["qms/", "/qms", "q+s", "q#", ""])
def test_a_base_topic_is_refused_alike_by_the_config_and_by_topics(tmp_path: Path, base: str) -> None:
    with pytest.raises(ConfigError) as refused:
        config.load(_with(tmp_path, 'base_topic = "qms"', f'base_topic = "{base}"'))
    assert refused.value.key == "mqtt.base_topic"
    with pytest.raises(ValueError, match="invalid base topic"):
        Topics(hall="h", base=base)
