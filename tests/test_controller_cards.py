"""The citizen's card at the controller, against a real Mosquitto and the real controller process: priority by
age, the daily limit per card, the profile for the counter that calls, the registration at the counter, a hall
card registered there and scanned later; and what is kept where (encrypted, audited, erased, purged)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from hall_controller import profiles
from hallq import wire
from hallq.cards import CitizenCard, parse
from testbed.broker import PrivateBroker
from tests.support import HALL_CONFIG, ROOT, ControllerProcess, Probe

ELDER = "001050012345|123456789|Nguyễn Văn An|01011950|Nam|Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội|15082021"
YOUNG = "079195001234||Trần Thị Bích|15031995|Nữ|12 Lê Lợi, Quận 1, TP Hồ Chí Minh|01022022"
PERSONAL = ("Nguyễn Văn An", "001050012345", "Tràng Tiền", "Trần Thị Bích", "079195001234", "0912 345 678",
            "cần hỗ trợ", "TTHCC-7K2M9Q")
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def cards_config(tmp_path: Path) -> Path:
    key = tmp_path / "profile.key"
    key.write_text(profiles.new_key_text(), encoding="ascii")
    text = HALL_CONFIG.read_text(encoding="utf-8").replace('id = "A"\n', 'id = "A"\ncard_daily_limit = 1\n', 1)
    text += (f'\n[cards]\nelderly_age = 60\ndaily_limit = 2\nhall_card_prefix = "TTHCC-"\nkeep = ["name", "id_number", '
             f'"birth_date", "address"]\nkey_file = "{key}"\n')
    path = tmp_path / "hall-cards.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def hall(broker: PrivateBroker, tmp_path: Path) -> Iterator[ControllerProcess]:
    with ControllerProcess(config=cards_config(tmp_path), broker=broker, state_dir=tmp_path / "state") as process:
        yield process


@pytest.fixture
def probe(broker: PrivateBroker, hall: ControllerProcess) -> Iterator[Probe]:
    with Probe(broker, subscriptions=["qms/test-hall/dispenser/+/ticket", "qms/test-hall/counter/+/reply"]) as p:
        yield p


def citizen(code: str, today: datetime) -> CitizenCard:
    card = parse(code, today=today.date())
    assert isinstance(card, CitizenCard)
    return card


def cccd(code: str) -> wire.CardScan:
    return wire.CardScan("cccd", code)


def test_age_priority_daily_limits_profile_registration_and_a_hall_card(
        probe: Probe, hall: ControllerProcess, tmp_path: Path) -> None:
    young = probe.request_ticket("d1", "A", card=cccd(YOUNG))
    assert young.ticket is not None and young.ticket.card and not young.ticket.priority
    elder = probe.request_ticket("d1", "A", card=cccd(ELDER))
    # 76 years old on the hall's day: the priority lane without pressing its button.
    assert elder.ticket is not None and elder.ticket.card
    assert (elder.ticket.priority, elder.ticket.category) == (True, "elderly")
    plain = probe.request_ticket("d1", "A", card=wire.CardScan("hall", "https://example.com/x"))
    assert plain.ticket is not None and not plain.ticket.card and not plain.ticket.priority  # unreadable: ordinary

    # Service A allows one ticket a day per card; the hall two in all.
    again = probe.request_ticket("d1", "A", card=cccd(ELDER))
    assert again.error_code == wire.ErrorCode.CARD_LIMIT

    called = probe.command("1", "next")  # a priority-first counter: the elderly citizen
    assert called.ticket is not None and called.ticket.id == elder.ticket.id
    profile = called.profile
    assert profile is not None and profile.ticket == elder.ticket.id
    assert (profile.name, profile.id_number, profile.birth_date) == ("Nguyễn Văn An", "001050012345", "1950-01-01")
    today = datetime.now(ZONE).date()
    assert profile.age == citizen(ELDER, datetime.now(ZONE)).age_on(today)
    assert profile.address == "Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội" and profile.sex is None  # not kept
    assert profile.first_visit and profile.visits == ()

    assert probe.command("1", "complete").ok
    edited = probe.command("1", "profile", profile=wire.ProfileEdit(phone="0912 345 678", notes="cần hỗ trợ đi lại",
                                                                    hall_card="tthcc-7k2m9q"))
    assert edited.ok and edited.profile is not None
    assert (edited.profile.phone, edited.profile.notes, edited.profile.hall_card) == \
        ("0912 345 678", "cần hỗ trợ đi lại", True)
    # A console that still believes it serves another ticket changes nothing (another desk acted meanwhile).
    stale = wire.CounterCommand(request_id="stale-1", action="profile", serving="0" * 32,
                                profile=wire.ProfileEdit(notes="wrong citizen"))
    probe.publish(probe.topics.counter_command("1"), stale.encode())
    answer = probe.expect(lambda m: m.topic == probe.topics.counter_reply("1")
                          and wire.CounterReply.decode(m.payload).request_id == "stale-1")
    assert wire.CounterReply.decode(answer.payload).error_code == wire.ErrorCode.CONFLICT
    refused = probe.command("2", "profile", profile=wire.ProfileEdit(phone="0900 000 000"))
    assert refused.error_code == wire.ErrorCode.NO_PROFILE  # counter 2 called no card: it may change nothing

    # The young citizen's ticket: another counter sees her profile, never his.
    other = probe.command("2", "next")
    assert other.profile is not None and other.profile.name == "Trần Thị Bích" and other.profile.age is not None
    assert other.ticket is not None and other.ticket.id == young.ticket.id

    # Later the same day he scans the hall card instead: his profile, his age, his registration, his visit.
    by_card = probe.request_ticket("d1", "B", card=wire.CardScan("hall", "TTHCC-7K2M9Q"))
    assert by_card.ticket is not None and by_card.ticket.card and by_card.ticket.category == "elderly"
    back = probe.command("1", "next")
    assert back.ticket is not None and back.ticket.id == by_card.ticket.id and back.profile is not None
    assert not back.profile.first_visit and back.profile.phone == "0912 345 678"
    assert [(v.service, v.outcome) for v in back.profile.visits] == [("A", "served")]
    third = probe.request_ticket("d1", "C", card=cccd(ELDER))
    assert third.error_code == wire.ErrorCode.CARD_LIMIT  # two tickets today, in all

    state = tmp_path / "state"
    hall.stop()
    # What is kept where: nothing personal in the ledger, in the profiles file, or in the log.
    for path in [*state.glob("ledger.sqlite3*"), *state.glob(profiles.FILE_NAME + "*"), hall.log_path]:
        data = path.read_bytes()
        for value in PERSONAL:
            assert value.encode() not in data, (path.name, value)
        assert b"Nguy" not in data and b"TTHCC-7K" not in data, path.name
    assert oct((state / profiles.FILE_NAME).stat().st_mode & 0o777) == "0o600"
    rows = profiles.audit(state / profiles.FILE_NAME)
    assert [(r.what, r.counter) for r in reversed(rows)] == [("shown", "1"), ("edited", "1"), ("shown", "2"),
                                                             ("shown", "1")]
    assert all(r.ref.startswith("p") and r.number for r in rows)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hall_controller", "profiles", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=False)


def test_erasure_on_request_and_retention(tmp_path: Path) -> None:
    config = cards_config(tmp_path)
    state = tmp_path / "state"
    key = profiles.load_key(tmp_path / "profile.key")
    store = profiles.ProfileStore(state / profiles.FILE_NAME, key, keep=("name", "birth_date"))
    long_ago = datetime(2025, 1, 2, 9, 0, tzinfo=ZONE)
    today = datetime.now(ZONE)
    old = store.citizen(citizen(YOUNG, today), now=long_ago)  # not seen for almost two years
    kept = store.citizen(citizen(ELDER, today), now=today)
    store.link("t1", kept.ref, day=today.date().isoformat(), service="A")
    assert store.count() == 2
    store.close()

    purged = run_cli("purge", "--config", str(config), "--state-dir", str(state))
    assert purged.returncode == 0 and "deleted 1 profile(s) unused for 365 days; 1 remain" in purged.stdout, purged
    erased = run_cli("erase", "--config", str(config), "--state-dir", str(state), "--id-number", "001050012345")
    assert erased.returncode == 0 and f"erased profile {kept.ref[:8]}" in erased.stdout, erased
    again = run_cli("erase", "--config", str(config), "--state-dir", str(state), "--id-number", "001050012345")
    assert again.returncode == 1 and "nothing was erased" in again.stdout
    store = profiles.ProfileStore(state / profiles.FILE_NAME, key, keep=("name",))
    assert store.count() == 0 and store.ref_of("t1") is None
    # Scanned again, a citizen starts afresh: nothing of the erased profile comes back.
    fresh = store.citizen(citizen(ELDER, today), now=today)
    assert fresh.new and fresh.ref != kept.ref
    store.close()
    audit = run_cli("audit", "--config", str(config), "--state-dir", str(state))
    assert audit.returncode == 0 and "purged" in audit.stdout and "erased" in audit.stdout
    assert old.ref[:8] in audit.stdout and "Nguy" not in audit.stdout


def test_a_wrong_or_missing_key_is_refused_plainly(broker: PrivateBroker, tmp_path: Path) -> None:
    config = cards_config(tmp_path)
    state = tmp_path / "state"
    store = profiles.ProfileStore(state / profiles.FILE_NAME, profiles.load_key(tmp_path / "profile.key"))
    store.close()
    (tmp_path / "profile.key").write_text(profiles.new_key_text(), encoding="ascii")  # another key
    run = subprocess.run([sys.executable, "-m", "hall_controller", "--config", str(config), "--state-dir", str(state),
                          "--broker", broker.address], capture_output=True, text=True, cwd=ROOT, timeout=60,
                         check=False)
    assert run.returncode == 78 and "sealed with another key" in run.stderr and "Traceback" not in run.stderr, run
    (tmp_path / "profile.key").write_text("not a key\n", encoding="ascii")
    run = subprocess.run([sys.executable, "-m", "hall_controller", "--config", str(config), "--state-dir", str(state),
                          "--broker", broker.address], capture_output=True, text=True, cwd=ROOT, timeout=60,
                         check=False)
    assert run.returncode == 78 and "64 hexadecimal digits" in run.stderr and "Traceback" not in run.stderr, run
    key = run_cli("new-key", "--out", str(tmp_path / "profile.key"))
    assert key.returncode != 0 and "never overwritten" in key.stderr


def test_an_old_profile_is_found_again_and_its_card_fields_refreshed(tmp_path: Path) -> None:
    key = profiles.new_key_text()
    (tmp_path / "k").write_text(key, encoding="ascii")
    store = profiles.ProfileStore(tmp_path / "p.sqlite3", profiles.load_key(tmp_path / "k"),
                                  keep=("name", "address"))
    today = datetime.now(ZONE)
    first = store.citizen(citizen(ELDER, today), now=today - timedelta(days=30))
    moved = ELDER.replace("Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội", "Số 9 Hàng Bài, Hoàn Kiếm, Hà Nội")
    second = store.citizen(citizen(moved, today), now=today)
    assert (first.new, second.new, second.ref) == (True, False, first.ref)
    shown = store.show(first.ref, ticket_id="t9", counter="5", number="A009", today=today.date(), now=today)
    assert shown is not None and shown.address == "Số 9 Hàng Bài, Hoàn Kiếm, Hà Nội" and shown.birth_date is None
    assert store.edit(first.ref, phone=None, notes=None, hall_card="TTHCC-AAAA1") is None
    other = store.citizen(citizen(YOUNG, today), now=today)
    assert store.edit(other.ref, phone=None, notes=None, hall_card="TTHCC-AAAA1") == \
        "this hall card is registered to another citizen"
    store.close()


def test_a_registration_begun_before_a_restart_is_finished_after_it(
        broker: PrivateBroker, hall: ControllerProcess) -> None:
    with Probe(broker, subscriptions=["qms/test-hall/dispenser/+/ticket", "qms/test-hall/counter/+/reply"]) as probe:
        assert probe.request_ticket("d1", "A", card=cccd(YOUNG)).ok
        called = probe.command("3", "next")
        assert called.profile is not None and called.profile.first_visit
    hall.stop()  # a power cut while the clerk types the phone number
    hall.start()
    with Probe(broker, subscriptions=["qms/test-hall/counter/+/reply"]) as probe:
        edited = probe.command("3", "profile", profile=wire.ProfileEdit(phone="0912 345 678"))
        assert edited.ok and edited.profile is not None and edited.profile.phone == "0912 345 678"
        assert edited.profile.name == "Trần Thị Bích"
        assert probe.command("2", "profile", profile=wire.ProfileEdit(notes="x")).error_code == \
            wire.ErrorCode.NO_PROFILE  # another counter still may not


def test_the_controller_deletes_profiles_unused_too_long_by_itself_hourly(tmp_path: Path) -> None:
    from hall_controller import config as config_mod  # noqa: PLC0415
    from hall_controller.citizens import CitizenDesk  # noqa: PLC0415

    cfg = config_mod.load(cards_config(tmp_path))
    assert cfg.cards is not None
    store = profiles.ProfileStore(tmp_path / profiles.FILE_NAME, profiles.load_key(tmp_path / "profile.key"),
                                  keep=cfg.cards.keep)
    today = datetime.now(ZONE)
    old = store.citizen(citizen(YOUNG, today), now=today - timedelta(days=cfg.cards.retain_days + 1))
    recent = store.citizen(citizen(ELDER, today), now=today - timedelta(days=cfg.cards.retain_days - 1))
    desk = CitizenDesk(store, cfg.cards, cfg.hall)
    desk.stored([], now=today, now_s=1000.0)
    assert store.count() == 1 and store.erase(ref=old.ref, now=today) is None  # already gone
    store.citizen(citizen(ELDER, today), now=today - timedelta(days=cfg.cards.retain_days + 5))  # seen long ago
    desk.stored([], now=today, now_s=1000.0 + 60)  # within the hour: not checked again
    assert store.count() == 1
    desk.stored([], now=today, now_s=1000.0 + 3600)
    assert store.count() == 0 and store.erase(ref=recent.ref, now=today) is None
    assert [row.what for row in profiles.audit(tmp_path / profiles.FILE_NAME)] == ["purged", "purged"]
    store.close()
