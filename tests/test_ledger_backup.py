"""Backup and restore of the ledger (``hallq-controller backup`` / ``restore``, hall_controller/backup.py).

A backup is taken from a real controller while a dispenser keeps asking it for tickets, and must be the ledger
as of one commit, complete up to there; a restore must refuse while the controller runs, refuse a damaged,
foreign or unfitting backup without touching the ledger, and make the controller continue from the backup.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from hall_controller import backup, config
from hall_controller.engine import Engine
from hall_controller.engine.events import ActAtCounter, IssueTicket
from hall_controller.ledger import LEDGER_FILE, Ledger, LedgerCorrupt, inspect
from hall_controller.timesource import CLOCK_TRUST_FILE
from hallq.errors import EXIT_CANTCREAT, EXIT_CONFIG, EXIT_DATAERR, EXIT_IOERR, EXIT_UNAVAILABLE
from testbed.broker import PrivateBroker
from tests.support import HALL_CONFIG, HALL_ID, ROOT, ControllerProcess, Probe

SPEC = config.load(HALL_CONFIG).hall
ZONE = SPEC.zone
EVENING = datetime(2026, 11, 27, 22, 30, tzinfo=ZONE)


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hall_controller", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=60, check=False)


def _backup(state: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return _cli("backup", "--config", HALL_CONFIG, "--state-dir", state, *args)


def _restore(state: Path, source: Path, *, hall_config: Path = HALL_CONFIG) -> subprocess.CompletedProcess[str]:
    return _cli("restore", "--config", hall_config, "--state-dir", state, "--from", source)


def _written(result: subprocess.CompletedProcess[str]) -> Path:
    """The backup file named by ``backup``'s one line."""
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    match = re.match(r"backup (\S+): ", lines[0])
    assert match, lines[0]
    return Path(match.group(1))


def _refused_in_one_line(result: subprocess.CompletedProcess[str], status: int, text: str) -> None:
    assert result.returncode == status, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and text in result.stderr, result.stderr


def _snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` with its content."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _ledger_of(state: Path, *, tickets: int = 5, hall_id: str = HALL_ID, open_counter_4: bool = False) -> Path:
    """A ledger in ``state`` with ``tickets`` tickets of service A, written through the real engine."""
    spec = SPEC if hall_id == HALL_ID else config.load(_other_hall(state.parent)).hall
    engine, ledger = Engine(spec), Ledger(state / LEDGER_FILE, hall_id=hall_id)
    now = datetime(2026, 11, 27, 8, 0, tzinfo=ZONE)
    for i in range(tickets):
        now += timedelta(seconds=20)
        ledger.append(engine.handle(IssueTicket("d1", f"r{i}", "A", False, None, f"t{i}"), now=now).events)
    if open_counter_4:
        ledger.append(engine.handle(ActAtCounter("4", "open-4", "open"), now=now).events)
    ledger.close()
    return state / LEDGER_FILE


def _other_hall(directory: Path) -> Path:
    path = directory / "other-hall.toml"
    path.write_text(HALL_CONFIG.read_text(encoding="utf-8").replace('id = "test-hall"', 'id = "other-hall"'),
                    encoding="utf-8")
    return path


def _without_counter_4(directory: Path) -> Path:
    text = HALL_CONFIG.read_text(encoding="utf-8")
    block = text[text.index('[[counters]]\nid = "4"'):text.index("[[dispensers]]")]
    path = directory / "hall-without-4.toml"
    path.write_text(text.replace(block, ""), encoding="utf-8")
    return path


def _backup_of(tmp_path: Path, **ledger: object) -> Path:
    """A good backup, taken with ``backup`` from a ledger of its own."""
    state = tmp_path / "source-state"
    state.mkdir()
    _ledger_of(state, **ledger)  # type: ignore[arg-type]
    return _written(_backup(state))


class Dispenser:
    """Kiosk d1, asking for a ticket of service A after each answer, on a thread of its own, until stopped."""

    def __init__(self, broker: PrivateBroker) -> None:
        topics = Probe(broker).topics
        self.probe = Probe(broker, subscriptions=[topics.dispenser_ticket("d1")])
        self.answered: list[str] = []
        self.changed = threading.Condition()
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._ask, name="dispenser-d1", daemon=True)

    def __enter__(self) -> Dispenser:
        self.probe.__enter__()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.probe.__exit__()
        if self._failure is not None:
            raise self._failure

    def _ask(self) -> None:
        try:
            while not self._stop.is_set():
                reply = self.probe.request_ticket("d1", "A")
                assert reply.ticket is not None, reply.error
                with self.changed:
                    self.answered.append(reply.ticket.number)
                    self.changed.notify_all()
        except BaseException as exc:  # handed to the test's thread by __exit__
            self._failure = exc
            with self.changed:
                self.changed.notify_all()

    def wait_for(self, count: int, *, timeout_s: float = 30.0) -> int:
        """Until ``count`` tickets were answered in all; returns how many were."""
        with self.changed:
            done = self.changed.wait_for(lambda: len(self.answered) >= count or self._failure is not None,
                                         timeout=timeout_s)
            assert done and self._failure is None, f"{len(self.answered)} answers; {self._failure!r}"
            return len(self.answered)


@pytest.fixture
def controller_at(broker: PrivateBroker, tmp_path: Path) -> Iterator[ControllerProcess]:
    """A controller the test starts, kills and restarts itself; always stopped at the end."""
    process = ControllerProcess(config=HALL_CONFIG, broker=broker, state_dir=tmp_path / "state")
    yield process
    process.stop()


def _next_number(broker: PrivateBroker) -> str:
    topics = Probe(broker).topics
    with Probe(broker, subscriptions=[topics.dispenser_ticket("d1")]) as probe:
        reply = probe.request_ticket("d1", "A")
    assert reply.ticket is not None, reply.error
    return reply.ticket.number


# --- backup --------------------------------------------------------------------------------------------------

def test_a_backup_taken_while_tickets_are_issued_is_the_ledger_as_of_one_commit(
    broker: PrivateBroker, controller: ControllerProcess, tmp_path: Path
) -> None:
    state = controller.state_dir
    with Dispenser(broker) as dispenser:
        before = dispenser.wait_for(30)
        result = _backup(state)
        during = dispenser.wait_for(0)
        dispenser.wait_for(during + 30)                      # and it goes on afterwards
    assert during > before, "no ticket was issued while the backup was taken"
    written = _written(result)
    assert written.parent == state / "backups" and written.name.startswith(f"ledger-{HALL_ID}-")
    assert os.listdir(written.parent) == [written.name]      # nothing partial left beside it
    assert written.stat().st_mode & 0o777 == 0o600
    summary = inspect(written, hall_id=HALL_ID)              # SQLite's integrity check, this hall's ledger
    assert f"{summary.tickets:,} tickets" in result.stdout
    assert "the newest 14 of hall test-hall's backups" in result.stdout
    assert before <= summary.tickets <= during                # every ticket answered before it, none invented
    assert controller.stop() == 0

    backed_up = sqlite3.connect(f"file:{written}?mode=ro", uri=True)
    rows = backed_up.execute("SELECT id, number, request_id, issued_at FROM tickets ORDER BY rowid").fetchall()
    final = Ledger(state / LEDGER_FILE, hall_id=HALL_ID).history()
    assert len(final) > summary.tickets
    assert rows == [(r["id"], r["number"], r["request_id"], r["issued_at"]) for r in final[:summary.tickets]]
    assert [r[1] for r in rows] == [f"A{n:03}" for n in range(1, summary.tickets + 1)]
    # The journal and the history were copied as of the same commit: the journal replays to the same tickets.
    replica = tmp_path / "replica.sqlite3"
    shutil.copy(written, replica)
    engine = Engine(SPEC)
    engine.replay(Ledger(replica, hall_id=HALL_ID).events())
    assert engine.waiting_count("A", priority=False) == summary.tickets


def test_rotation_keeps_the_newest_backups_of_the_hall_and_nothing_else_is_touched(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    ledger = _ledger_of(state)
    folder = state / "backups"
    folder.mkdir()
    others = [folder / "notes.txt", folder / "ledger-other-hall-20261101T223000+0700.sqlite3"]
    for other in others:
        other.write_text("not ours\n", encoding="utf-8")
    nights = [EVENING - timedelta(days=n) for n in range(16, 0, -1)]
    for night in nights:
        done = backup.take(ledger, hall_id=HALL_ID, keep=14, now=night)
    assert len(done.removed) == 1
    kept = sorted(p.name for p in folder.iterdir() if p not in others)
    assert kept == sorted(backup.backup_name(HALL_ID, night) for night in nights[2:])
    assert all(other.read_text(encoding="utf-8") == "not ours\n" for other in others)


def test_a_backup_named_by_a_clock_that_went_back_is_kept_and_the_oldest_other_goes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    ledger = _ledger_of(state)
    for night in (EVENING - timedelta(days=2), EVENING - timedelta(days=1), EVENING):
        backup.take(ledger, hall_id=HALL_ID, keep=3, now=night)
    late = backup.take(ledger, hall_id=HALL_ID, keep=3, now=EVENING - timedelta(days=300))  # a Pi without time
    assert late.path.exists()
    assert late.removed == (state / "backups" / backup.backup_name(HALL_ID, EVENING - timedelta(days=2)),)


def test_a_backup_into_a_directory_or_a_named_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    _ledger_of(state, tickets=7)
    stick = tmp_path / "stick"
    stick.mkdir()
    into = _written(_backup(state, "--to", stick, "--keep", "2"))
    assert into.parent == stick and into.name.startswith(f"ledger-{HALL_ID}-")
    named = tmp_path / "for-the-office.sqlite3"
    result = _backup(state, "--to", named)
    assert _written(result) == named and "nothing rotated" in result.stdout
    assert inspect(named, hall_id=HALL_ID).tickets == 7


def test_backup_refusals_are_one_line_and_a_status(tmp_path: Path) -> None:
    _refused_in_one_line(_cli("backup", "--config", tmp_path / "missing.toml"), EXIT_CONFIG, "file not found")
    _refused_in_one_line(_backup(tmp_path / "empty"), EXIT_IOERR, "there is no ledger")
    assert not (tmp_path / "empty").exists()                  # a backup creates no ledger, no directory
    state = tmp_path / "state"
    state.mkdir()
    _ledger_of(state)
    a_file = tmp_path / "a-file"
    a_file.write_text("", encoding="utf-8")
    _refused_in_one_line(_backup(state, "--to", a_file / "x.sqlite3"), EXIT_CANTCREAT, "cannot write")
    (state / LEDGER_FILE).write_bytes(b"\x00garbage" * 512)
    _refused_in_one_line(_backup(state), EXIT_DATAERR, "is damaged")
    assert list((state / "backups").iterdir()) == []


# --- restore -------------------------------------------------------------------------------------------------

def test_restore_is_refused_while_the_controller_runs_and_changes_nothing(
    broker: PrivateBroker, controller: ControllerProcess
) -> None:
    state = controller.state_dir
    assert _next_number(broker) == "A001"
    written = _written(_backup(state))
    before = sorted(os.listdir(state))
    result = _restore(state, written)
    _refused_in_one_line(result, EXIT_UNAVAILABLE, "the controller is running")
    assert "sudo systemctl stop hallq-controller" in result.stderr
    assert sorted(os.listdir(state)) == before
    assert _next_number(broker) == "A002"                    # the controller never noticed


def test_a_restored_ledger_makes_the_controller_continue_from_the_backup(
    broker: PrivateBroker, controller_at: ControllerProcess
) -> None:
    controller, state = controller_at, controller_at.state_dir
    controller.start()
    assert [_next_number(broker) for _ in range(3)] == ["A001", "A002", "A003"]
    written = _written(_backup(state))
    assert [_next_number(broker) for _ in range(3)] == ["A004", "A005", "A006"]
    controller.kill()                                        # a power cut: A004-A006 are in the WAL only
    assert (state / f"{LEDGER_FILE}-wal").stat().st_size > 0
    result = _restore(state, written)
    assert result.returncode == 0, result.stderr
    assert "3 tickets" in result.stdout and "Start the controller" in result.stdout
    [previous] = state.glob("ledger-before-restore-*")
    # No WAL of the old ledger left beside the new one (the clock's trust record is the boot's, not the ledger's).
    assert sorted(set(os.listdir(state)) - {CLOCK_TRUST_FILE}) == sorted([LEDGER_FILE, "backups", previous.name])
    controller.start()
    number = _next_number(broker)
    controller.stop()
    # Numbering goes on from the backup's: A004 is issued again. (Possibly first to a request the killed
    # controller answered but had not yet acknowledged, which the broker delivers again: ours then gets A005.)
    numbers = [r["number"] for r in Ledger(state / LEDGER_FILE, hall_id=HALL_ID).history()]
    assert numbers[:4] == ["A001", "A002", "A003", "A004"] and number in numbers[3:]
    assert numbers == [f"A{n:03}" for n in range(1, len(numbers) + 1)]
    # The replaced ledger was moved whole, with its WAL: all six tickets are still in it.
    kept = Ledger(previous / LEDGER_FILE, hall_id=HALL_ID)
    assert [r["number"] for r in kept.history()] == [f"A00{n}" for n in range(1, 7)]


def test_a_restore_onto_a_new_state_directory_installs_the_backup(tmp_path: Path) -> None:
    written = _backup_of(tmp_path, tickets=4)
    state = tmp_path / "new-pi" / "state"
    result = _restore(state, written)
    assert result.returncode == 0, result.stderr
    assert "there was no ledger before" in result.stdout
    assert os.listdir(state) == [LEDGER_FILE]
    assert (state / LEDGER_FILE).stat().st_mode & 0o777 == 0o600
    assert len(Ledger(state / LEDGER_FILE, hall_id=HALL_ID).history()) == 4


def _garbage(path: Path) -> Path:
    path.write_bytes(b"this is not SQLite" * 500)
    return path


def test_a_restore_is_undone_by_restoring_the_ledger_it_moved_aside(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    # Six tickets, in the WAL only: the writing process ends without closing the ledger.
    writer = ("import os, sys; from pathlib import Path; from tests.test_ledger_backup import _ledger_at_exit; "
              "_ledger_at_exit(Path(sys.argv[1])); os._exit(0)")
    subprocess.run([sys.executable, "-c", writer, str(state)], cwd=ROOT, check=True, timeout=60)
    assert (state / f"{LEDGER_FILE}-wal").stat().st_size > 0
    assert _restore(state, _backup_of(tmp_path, tickets=3)).returncode == 0
    [previous] = state.glob("ledger-before-restore-*")
    undone = _restore(state, previous / LEDGER_FILE)
    assert undone.returncode == 0, undone.stderr
    assert "6 tickets" in undone.stdout
    assert [r["number"] for r in Ledger(state / LEDGER_FILE, hall_id=HALL_ID).history()] == [
        f"A00{n}" for n in range(1, 7)]


def _ledger_at_exit(state: Path) -> None:
    """Six tickets in a ledger left open, for a process that then ends without closing it."""
    engine, ledger = Engine(SPEC), Ledger(state / LEDGER_FILE, hall_id=HALL_ID)
    now = datetime(2026, 11, 27, 8, 0, tzinfo=ZONE)
    for i in range(6):
        ledger.append(engine.handle(IssueTicket("d1", f"r{i}", "A", False, None, f"t{i}"), now=now).events)


def test_the_ledger_itself_is_not_a_backup(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    _ledger_of(state)
    before = _snapshot(state)
    _refused_in_one_line(_restore(state, state / LEDGER_FILE), EXIT_IOERR, "is the ledger itself")
    assert _snapshot(state) == before


def _truncated(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _overwritten_in_the_middle(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2 // 4096 * 4096
    data[middle:middle + 4096] = bytes(range(256)) * 16
    path.write_bytes(bytes(data))
    return path


def _index_out_of_step(path: Path) -> Path:
    """Readable, every page sound, but an index no longer matches its table: only a full check sees it."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA writable_schema = ON")
        db.execute("UPDATE sqlite_master SET sql = 'CREATE INDEX tickets_by_day ON tickets (day, number, service)'"
                   " WHERE name = 'tickets_by_day'")
    return path


def _empty_database(path: Path) -> Path:
    path.unlink()
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    return path


@pytest.mark.parametrize(("damage", "message"), [
    (_garbage, "is damaged or not a hallq ledger"),
    (_truncated, "is damaged or not a hallq ledger: database disk image is malformed"),
    (_overwritten_in_the_middle, "is damaged or not a hallq ledger: database disk image is malformed"),
    (_index_out_of_step, "fails SQLite's integrity check: row 1 missing from index tickets_by_day"),
    (_empty_database, "is not a hallq ledger"),
])
def test_a_damaged_backup_is_refused_and_the_ledger_left_as_it_was(
    damage: Callable[[Path], Path], message: str, tmp_path: Path
) -> None:
    written = _backup_of(tmp_path, tickets=400)  # enough tickets for the file to span many pages
    assert written.stat().st_size > 16 * 4096
    damaged = tmp_path / "damaged.sqlite3"
    shutil.copy(written, damaged)
    damage(damaged)
    state = tmp_path / "state"
    state.mkdir()
    _ledger_of(state, tickets=3)
    before = _snapshot(state)
    result = _restore(state, damaged)
    _refused_in_one_line(result, EXIT_DATAERR, message)
    assert "the ledger was not changed" in result.stderr
    assert _snapshot(state) == before


def test_another_halls_backup_is_refused_and_the_ledger_left_as_it_was(tmp_path: Path) -> None:
    foreign_state = tmp_path / "foreign"
    foreign_state.mkdir()
    _ledger_of(foreign_state, hall_id="other-hall")
    written = _written(_cli("backup", "--config", _other_hall(tmp_path), "--state-dir", foreign_state))
    state = tmp_path / "state"
    state.mkdir()
    _ledger_of(state)
    before = _snapshot(state)
    _refused_in_one_line(_restore(state, written), EXIT_DATAERR, "belongs to hall 'other-hall', not 'test-hall'")
    assert _snapshot(state) == before


def test_a_backup_the_config_no_longer_fits_is_refused_before_anything_changes(tmp_path: Path) -> None:
    written = _backup_of(tmp_path, open_counter_4=True)
    state = tmp_path / "state"
    state.mkdir()
    _ledger_of(state)
    before = _snapshot(state)
    result = _restore(state, written, hall_config=_without_counter_4(tmp_path))
    _refused_in_one_line(result, EXIT_CONFIG, "which the config no longer has")
    assert _snapshot(state) == before


def test_a_refused_restore_onto_an_empty_state_directory_leaves_no_ledger_behind(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"\x00garbage" * 512)
    _refused_in_one_line(_restore(state, garbage), EXIT_DATAERR, "is damaged")
    _refused_in_one_line(_restore(state, tmp_path / "missing.sqlite3"), EXIT_IOERR, "there is no backup")
    assert os.listdir(state) == []   # no empty ledger for the controller to start a new numbering on


def test_inspect_refuses_what_the_controller_would_refuse(tmp_path: Path) -> None:
    ledger = _ledger_of(tmp_path)
    assert inspect(ledger, hall_id=HALL_ID).tickets == 5
    with pytest.raises(LedgerCorrupt, match="belongs to hall 'test-hall', not 'elsewhere'"):
        inspect(ledger, hall_id="elsewhere")


def test_the_citizens_profiles_go_into_each_backup_sealed_and_leave_with_it(tmp_path: Path) -> None:
    from hall_controller import profiles  # noqa: PLC0415
    from hallq.cards import CitizenCard, parse  # noqa: PLC0415

    state = tmp_path / "state"
    _ledger_of(state)
    key = profiles.new_key_text()
    store = profiles.ProfileStore(state / profiles.FILE_NAME, bytes.fromhex(key), keep=("name", "id_number"))
    card = parse("001050012345||Nguyễn Văn An|01011950|Nam|Hà Nội|15082021", today=datetime(2026, 12, 5).date())
    assert isinstance(card, CitizenCard)
    seen = store.citizen(card, now=datetime(2026, 12, 5, 9, 0, tzinfo=ZONE))
    store.close()
    first = _written(_backup(state, "--keep", "1"))
    copy = backup.profiles_backup(first)
    assert copy.name == first.name.replace("ledger-", "profiles-", 1) and copy.is_file()
    data = copy.read_bytes()
    assert b"Nguy" not in data and b"001050012345" not in data  # sealed, as in the hall
    reopened = profiles.ProfileStore(copy, bytes.fromhex(key))  # whole, and readable with the hall's key
    assert reopened.ref_of("nothing") is None and reopened.count() == 1
    assert reopened.show(seen.ref, ticket_id="t", counter="1", number="A1", today=datetime(2026, 12, 5).date(),
                         now=datetime(2026, 12, 5, 9, 1, tzinfo=ZONE)) is not None
    reopened.close()
    first_time = backup.backup_time(first.name, hall_id=HALL_ID)
    assert first_time is not None
    os.utime(first, (first_time.timestamp(),) * 2)
    shutil.move(first, first.with_name(backup.backup_name(HALL_ID, datetime(2020, 1, 1, tzinfo=ZONE))))
    shutil.move(copy, backup.profiles_backup(first.with_name(backup.backup_name(HALL_ID, datetime(2020, 1, 1,
                                                                                                   tzinfo=ZONE)))))
    second = _written(_backup(state, "--keep", "1"))  # keeps one: the older backup goes, its profiles with it
    assert sorted(p.name for p in second.parent.iterdir()) == sorted([second.name,
                                                                      backup.profiles_backup(second).name])
