"""Backups of the hall's ledger, taken while the controller runs, and their restore.

    hallq-controller backup --config FILE [--state-dir DIR] [--to PATH] [--keep N]
    hallq-controller restore --config FILE --from BACKUP [--state-dir DIR]

Theory of operation. A backup is a copy made with SQLite's online backup API (``ledger.copy``): one read
transaction, so it is the ledger exactly as of one commit, while the controller goes on issuing tickets. It is
written to a temporary file beside its final name, checked (SQLite's full integrity check, and the
controller's own check that it is a hallq ledger of this hall: ``ledger.inspect``), flushed to the disk, and
only then renamed into place: a backup file under its final name is always complete and checked. By default
backups go to ``backups/`` in the state directory (beside ``ledger.sqlite3``; ``/var/lib/hallq/backups`` on a
deployed Pi), named ``ledger-HALL-YYYYMMDDTHHMMSS+ZZZZ.sqlite3`` in the hall's local time; the newest
``KEEP_DEFAULT`` of the hall's backups there are kept and older ones removed (never any other file, never the
backup just written, even if the clock was wrong). A backup is one self-contained SQLite file, mode 0600.

A restore refuses while any process has the ledger open (``ledger.held_exclusively``: SQLite's own lock
bytes, which the controller's connection holds for as long as it runs), and holds the ledger so until it is
done. It copies the backup into the state directory, checks the copy as above and replays its last business
day the way the controller will (so a backup the current config no longer fits is refused before anything
changes), moves the current ledger with its -wal/-shm side files into ``ledger-before-restore-TIME/`` in the
state directory (never deletes it), and renames the copy into place. A refused backup leaves the ledger
exactly as it was.

Run as root, a file or directory this module creates gets the owner of the directory it is created in (the
state directory's owner, ``hallq``, for the ledger and ``backups/``), so that the controller and the daily
backup service, which run as ``hallq``, can go on using them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from hall_controller import ledger
from hall_controller.engine import Engine
from hall_controller.engine.spec import HallSpec
from hall_controller.ledger import SIDE_FILE_SUFFIXES, CopyError, LedgerCorrupt, LedgerSummary
from hallq.errors import ConfigError, InvariantError

log = logging.getLogger(__name__)

BACKUP_DIR = "backups"  # in the state directory, beside the ledger
KEEP_DEFAULT = 14
_STAMP = "%Y%m%dT%H%M%S%z"
_STAMP_PATTERN = re.compile(r"\d{8}T\d{6}[+-]\d{4}")


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    size_bytes: int
    summary: LedgerSummary
    keep: int | None  # how many of the hall's backups its directory keeps; None for a file named by hand
    removed: tuple[Path, ...]  # older backups removed to keep ``keep``


@dataclass(frozen=True, slots=True)
class RestoreResult:
    ledger_path: Path
    summary: LedgerSummary
    previous: Path | None  # the directory the replaced ledger was moved into; None if there was no ledger


PROFILES_FILE = "profiles.sqlite3"  # hall_controller.profiles.FILE_NAME, without its cryptography


def backup_name(hall_id: str, at: datetime) -> str:
    """``ledger-HALL-YYYYMMDDTHHMMSS+ZZZZ.sqlite3``, ``at`` (timezone-aware) as it is written."""
    return f"ledger-{hall_id}-{at.strftime(_STAMP)}.sqlite3"


def backup_time(name: str, *, hall_id: str) -> datetime | None:
    """When the backup called ``name`` was taken, or None if ``name`` is not one of this hall's backups."""
    prefix, suffix = f"ledger-{hall_id}-", ".sqlite3"
    if not (name.startswith(prefix) and name.endswith(suffix)):
        return None
    stamp = name[len(prefix):-len(suffix)]
    if not _STAMP_PATTERN.fullmatch(stamp):
        return None
    try:
        return datetime.strptime(stamp, _STAMP)
    except ValueError:
        return None


def take(ledger_path: Path, *, hall_id: str, to: Path | None = None, keep: int = KEEP_DEFAULT,
         now: datetime) -> BackupResult:
    """Back up the ledger at ``ledger_path`` (hall ``hall_id``), also while the controller runs.

    ``to``: None for ``backups/`` beside the ledger; an existing directory for a named file in it (both keep the
    hall's ``keep`` newest backups there, 0 for all); anything else is the file to write (its directory must
    exist; nothing is removed). ``now`` (timezone-aware, the hall's time) names the file.

    Raises ``LedgerError`` (no ledger, or it cannot be read), ``LedgerBusy`` (a restore holds it),
    ``LedgerCorrupt`` (the copy fails its check: the ledger itself is damaged) or ``CopyError``."""
    if not ledger_path.is_file():
        raise ledger.LedgerError(f"there is no ledger {ledger_path}")
    rotate_keep: int | None = keep
    if to is None:
        directory = ledger_path.parent / BACKUP_DIR
        _make_dir(directory, mode=0o700)
        target = directory / backup_name(hall_id, now)
    elif to.is_dir():
        directory, target = to, to / backup_name(hall_id, now)
    else:
        directory, target, rotate_keep = to.parent, to, None
    with _partial(target) as partial:
        try:
            ledger.copy(ledger_path, partial, name=f"ledger {ledger_path}")
            summary = ledger.inspect(partial, hall_id=hall_id, name=f"the copy of ledger {ledger_path}")
        except LedgerCorrupt as exc:
            raise LedgerCorrupt(f"{exc}: the ledger itself is damaged; no backup was written") from None
        _install(partial, target)
    profiles = ledger_path.parent / PROFILES_FILE
    if profiles.is_file():
        # The citizens' profiles go with it, as they are: sealed (they need the key, which is not backed up here).
        with _partial(profiles_backup(target)) as partial:
            ledger.copy(profiles, partial, name=f"profiles {profiles}")
            _install(partial, profiles_backup(target))
    removed = rotate(directory, hall_id=hall_id, keep=rotate_keep, newest=target) if rotate_keep else []
    return BackupResult(path=target, size_bytes=target.stat().st_size, summary=summary, keep=rotate_keep,
                        removed=tuple(removed))


def rotate(directory: Path, *, hall_id: str, keep: int, newest: Path) -> list[Path]:
    """Remove the oldest of hall ``hall_id``'s backups in ``directory`` beyond ``keep``; ``newest`` (the one
    just written) always stays, whatever time its name says. Returns the removed files."""
    dated = []
    for path in directory.iterdir():
        taken = backup_time(path.name, hall_id=hall_id)
        if taken is not None and path != newest and path.is_file():
            dated.append((taken, path.name, path))
    dated.sort(reverse=True)
    removed = []
    for _, _, path in dated[max(keep - 1, 0):]:
        try:
            path.unlink()
            profiles_backup(path).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot remove old backup path=%s: %s", path, exc.strerror)
            continue
        removed.append(path)
    return removed


def profiles_backup(ledger_backup: Path) -> Path:
    """Where the citizens' profiles of the ledger backup ``ledger_backup`` are kept: beside it, ``profiles-…``
    for ``ledger-…`` (a file named by hand: ``….profiles``). A restore never puts them back by itself: a profile
    erased since the backup must stay erased (docs/privacy.md)."""
    name = ledger_backup.name
    if name.startswith("ledger-"):
        return ledger_backup.with_name("profiles-" + name.removeprefix("ledger-"))
    return ledger_backup.with_name(name + ".profiles")


def restore(ledger_path: Path, *, spec: HallSpec, source: Path, now: datetime) -> RestoreResult:
    """Put the backup ``source`` in place of the ledger at ``ledger_path``, the controller stopped.

    ``source`` may also be a ledger a restore moved aside, with its side files: it is read through SQLite, WAL
    included. Raises ``LedgerBusy`` while any process has the ledger open, and, the ledger left as it was:
    ``LedgerError`` (``source`` cannot be read), ``LedgerCorrupt`` (it is damaged, not a hallq ledger, or
    another hall's), ``ConfigError`` (it names a counter or service the config no longer has) or ``CopyError``
    (the state directory cannot be written). ``now`` (timezone-aware) names the replaced ledger's directory."""
    if not source.is_file():
        raise ledger.LedgerError(f"there is no backup {source}")
    if ledger_path.exists() and source.samefile(ledger_path):
        raise ledger.LedgerError(f"{source} is the ledger itself, not a backup of it")
    state_dir = ledger_path.parent
    _make_dir(state_dir, mode=0o750)
    with ledger.held_exclusively(ledger_path), _partial(ledger_path) as partial:
        had_ledger = ledger_path.stat().st_size > 0 or bool(_side_files(ledger_path))
        name = f"backup {source}"
        try:
            ledger.copy(source, partial, name=name)
            summary = ledger.inspect(partial, hall_id=spec.id, name=name)
            _replay(partial, spec=spec, name=name)
        except LedgerCorrupt as exc:
            raise LedgerCorrupt(f"{exc}; refused, the ledger was not changed") from None
        previous = _move_aside(ledger_path, now=now) if had_ledger else None
        _install(partial, ledger_path)
    return RestoreResult(ledger_path=ledger_path, summary=summary, previous=previous)


def _replay(path: Path, *, spec: HallSpec, name: str) -> None:
    """Open ``path`` (a copy of ``name``) as the controller will, and replay its last business day as the
    controller does at start."""
    copy = ledger.Ledger(path, hall_id=spec.id)
    try:
        Engine(spec).replay(copy.events(since_last_day=True))
    except KeyError as exc:
        raise ConfigError(name, "", f"refers to {exc}, which the config no longer has; refused, the ledger was "
                                    "not changed") from None
    except InvariantError as exc:
        raise LedgerCorrupt(f"{name} cannot be replayed: {exc}") from None
    finally:
        copy.close()  # the last connection: SQLite folds the WAL back in and removes -wal and -shm


def _side_files(path: Path) -> list[Path]:
    return [side for suffix in SIDE_FILE_SUFFIXES if (side := path.with_name(path.name + suffix)).exists()]


def _move_aside(ledger_path: Path, *, now: datetime) -> Path:
    """Move the ledger and its side files, together, into a new directory beside it; returns that directory.
    The WAL goes first: a WAL left behind would be replayed into the ledger that takes the name."""
    base = ledger_path.parent / f"ledger-before-restore-{now.strftime(_STAMP)}"
    aside, number = base, 1
    while True:
        try:
            aside.mkdir(mode=0o700)
            break
        except FileExistsError:
            number += 1
            aside = base.with_name(f"{base.name}-{number}")
        except OSError as exc:
            raise CopyError(aside, exc.strerror or str(exc)) from None
    _adopt_owner(aside)
    try:
        for path in [*_side_files(ledger_path), ledger_path]:
            path.rename(aside / path.name)
    except OSError as exc:
        raise CopyError(aside, f"moving the ledger there failed half way ({exc.strerror}): the files of "
                               f"{ledger_path} are partly in {aside}; move them back before starting") from None
    _sync_dir(aside)
    return aside


@contextlib.contextmanager
def _partial(target: Path) -> Iterator[Path]:
    """An empty file (mode 0600) in ``target``'s directory for a copy on its way there; removed (with any side
    file SQLite left) unless ``_install`` renamed it into place."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    except OSError as exc:
        raise CopyError(target.parent, exc.strerror or str(exc)) from None
    os.close(fd)
    partial = Path(name)
    try:
        yield partial
    finally:
        for path in [partial, *_side_files(partial)]:
            path.unlink(missing_ok=True)


def _install(partial: Path, target: Path) -> None:
    """Flush ``partial`` to the disk, give it its owner, and rename it to ``target`` atomically (replacing a
    file there: two backups in the same second are the same backup)."""
    try:
        fd = os.open(partial, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        partial.chmod(0o600)
        _adopt_owner(partial)
        partial.replace(target)
    except OSError as exc:
        raise CopyError(target, exc.strerror or str(exc)) from None
    _sync_dir(target.parent)


def _make_dir(path: Path, *, mode: int) -> None:
    if path.is_dir():
        return
    try:
        path.mkdir(mode=mode, parents=True)
    except FileExistsError:
        return
    except OSError as exc:
        raise CopyError(path, exc.strerror or str(exc)) from None
    _adopt_owner(path)


def _adopt_owner(path: Path) -> None:
    """Run as root: give ``path`` the owner and group of its directory."""
    if os.geteuid() != 0:
        return
    parent = path.parent.stat()
    # Best effort: a file system without owners (a FAT memory stick) refuses, and there it does not matter.
    with contextlib.suppress(OSError):
        os.chown(path, parent.st_uid, parent.st_gid)


def _sync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise CopyError(path, exc.strerror or str(exc)) from None
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
