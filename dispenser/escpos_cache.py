"""python-escpos's printer database, imported through a cache that no crash or neighbour can break.

Theory of operation. python-escpos 3.1 reads its printer database when ``escpos.capabilities`` is imported:
from ``$ESCPOS_CAPABILITIES_PICKLE_DIR/<python version>.capabilities.pickle`` if that file is newer than the
database (~25 ms), otherwise by parsing the database (200-300 ms) and writing the pickle *in place*: it
truncates the file, parses, then writes. A second process starting during those 300 ms reads an empty file
and dies (``EOFError: Ran out of input``), and so does every later start if the writer never finishes (a
power cut, or a kiosk stopped because its neighbour died). It also makes, and leaves behind, an empty
temporary directory at every import, even when told where its pickle goes.

So python-escpos never sees the shared cache directory. Each process:

1. reads the shared pickle, once, and keeps it only if it unpickles to a printer database (~1 ms);
2. copies those very bytes into a private directory, with the shared file's modification time, so that
   python-escpos's own "older than the database" test still decides whether to parse again;
3. imports ``escpos.capabilities`` with ``ESCPOS_CAPABILITIES_PICKLE_DIR`` (and the temporary directory
   python-escpos insists on making) pointing into the private directory;
4. if python-escpos parsed the database, publishes its fresh pickle into the shared directory: written to a
   temporary file there, flushed to disk, then renamed over the old one (``os.replace``), so a reader finds
   the old file or the new one, never part of one;
5. removes the private directory and restores the environment.

A damaged, empty or stale shared pickle costs one parse and is replaced; an unusable cache directory costs a
parse at every start. Neither stops a dispenser. ``dispenser.cli`` does this before anything imports
python-escpos; importing ``dispenser`` itself touches neither the environment nor the file system.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import pickle
import platform
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

PICKLE_DIR_VARIABLE: Final = "ESCPOS_CAPABILITIES_PICKLE_DIR"
CACHE_SUBDIRECTORY: Final = "hallq-escpos"


def _pickle_name() -> str:
    """The file python-escpos reads in its pickle directory (one per Python version)."""
    return f"{platform.python_version()}.capabilities.pickle"


def shared_directory(environ: Mapping[str, str]) -> Path | None:
    """Where this machine's dispensers share the cache, or None when there is no such place.

    ``$ESCPOS_CAPABILITIES_PICKLE_DIR`` as set by the operator; else ``$CACHE_DIRECTORY/hallq-escpos`` (systemd's
    ``CacheDirectory=``, its first entry); else ``$XDG_CACHE_HOME/hallq-escpos``; else ``~/.cache/hallq-escpos``.
    """
    if environ.get(PICKLE_DIR_VARIABLE):
        return Path(environ[PICKLE_DIR_VARIABLE])
    base = environ.get("CACHE_DIRECTORY", "").split(":")[0] or environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:  # no $HOME and no password entry
            return None
    return Path(base) / CACHE_SUBDIRECTORY


def import_escpos(shared: Path | None) -> None:
    """Import python-escpos's printer database (``escpos.capabilities``) through a private copy of the cache
    in ``shared``, refreshing the shared copy if python-escpos had to parse the database.

    Call it before anything imports python-escpos, with logging configured (python-escpos calls
    ``logging.basicConfig()`` when imported). Never raises for the cache's sake.
    """
    if "escpos.capabilities" in sys.modules:
        return  # imported already: its database is in memory and no cache will be read
    name = _pickle_name()
    seed = None if shared is None else _valid_pickle(shared / name)
    with tempfile.TemporaryDirectory(prefix="hallq-escpos-") as private_name:
        private = Path(private_name)
        if seed is not None:
            data, mtime_ns = seed
            (private / name).write_bytes(data)
            os.utime(private / name, ns=(mtime_ns, mtime_ns))
        with _escpos_pointed_at(private):
            capabilities = importlib.import_module("escpos.capabilities")
        if not capabilities.full_load:
            log.debug("python-escpos printer database read from the cache path=%s", shared)
            return
        if shared is None:
            log.warning("python-escpos printer database parsed; no cache directory to keep it "
                        "(set CACHE_DIRECTORY, XDG_CACHE_HOME or HOME)")
            return
        try:
            _publish((private / name).read_bytes(), shared / name)
        except OSError as exc:
            log.warning("python-escpos printer database parsed but not cached path=%s: %s; every start "
                        "parses it again until the directory is writable", shared, exc)
        else:
            log.info("python-escpos printer database parsed and cached path=%s", shared / name)


def _valid_pickle(path: Path) -> tuple[bytes, int] | None:
    """The file's bytes and modification time if it holds a printer database; None (logged) otherwise."""
    try:
        with path.open("rb") as f:
            data = f.read()
            mtime_ns = os.fstat(f.fileno()).st_mtime_ns
    except FileNotFoundError:
        log.debug("no python-escpos cache yet path=%s", path)
        return None
    except OSError as exc:
        log.warning("python-escpos cache unreadable path=%s: %s; parsing the printer database", path, exc)
        return None
    try:
        # Our own cache, in the user's or the unit's cache directory; python-escpos would unpickle it anyway.
        database = pickle.loads(data)  # noqa: S301
    except Exception as exc:  # a damaged pickle raises almost anything: EOFError, UnpicklingError, ValueError...
        log.warning("python-escpos cache damaged path=%s (%s: %s); parsing the printer database again", path,
                    type(exc).__name__, exc)
        return None
    # What python-escpos's import itself looks up (its "default" profile); the rest it reads on demand.
    profiles = database.get("profiles") if isinstance(database, dict) else None
    if not (isinstance(profiles, dict) and isinstance(profiles.get("default"), dict)
            and isinstance(database.get("encodings"), dict)):
        log.warning("python-escpos cache holds no printer database path=%s; parsing the printer database again",
                    path)
        return None
    return data, mtime_ns


@contextlib.contextmanager
def _escpos_pointed_at(private: Path) -> Iterator[None]:
    """python-escpos's pickle directory and its leftover temporary directory, both inside ``private``."""
    saved_variable = os.environ.get(PICKLE_DIR_VARIABLE)
    saved_tempdir = tempfile.tempdir
    os.environ[PICKLE_DIR_VARIABLE] = str(private)
    tempfile.tempdir = str(private)  # where its mkdtemp() goes, and so goes away with ``private``
    try:
        yield
    finally:
        tempfile.tempdir = saved_tempdir
        if saved_variable is None:
            del os.environ[PICKLE_DIR_VARIABLE]
        else:
            os.environ[PICKLE_DIR_VARIABLE] = saved_variable


def _publish(data: bytes, target: Path) -> None:
    """Replace ``target`` with ``data`` in one step: readers see the old file or the new one, never a part."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            # On disk before the rename: after a power cut the name holds the old file or the whole new one.
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
