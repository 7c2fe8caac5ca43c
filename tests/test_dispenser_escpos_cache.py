"""python-escpos's printer database cache never stops a dispenser from starting, and importing the package
touches nothing.

Every test runs real dispenser processes (``python -m dispenser print-test --preview``) with a cache home of
its own; the check afterwards reads the cache the way python-escpos does (a pickle of its database).
"""

from __future__ import annotations

import os
import pickle
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT

KIOSK_CONFIG = ROOT / "config" / "sim" / "kiosk-1.toml"
PICKLE_NAME = f"{platform.python_version()}.capabilities.pickle"
CACHE_VARIABLES = ("ESCPOS_CAPABILITIES_PICKLE_DIR", "CACHE_DIRECTORY", "XDG_CACHE_HOME")


def dispenser_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a fresh machine: an empty home, an empty cache, a temporary directory of its own."""
    env = {k: v for k, v in os.environ.items() if k not in CACHE_VARIABLES}
    for name in ("home", "tmp"):
        (tmp_path / name).mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(tmp_path / "home"), TMPDIR=str(tmp_path / "tmp"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    env.update(extra)
    return env


def start_print_test(env: dict[str, str], preview: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "dispenser", "print-test", "--config", str(KIOSK_CONFIG),
                             "--preview", str(preview)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    out, err = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def assert_started(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "test ticket, 576x" in done.stdout


def load_cache(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        database = pickle.load(f)  # the file this test's own dispensers wrote
    assert isinstance(database, dict) and database["profiles"]["TM-T20II"] and database["encodings"]
    return database


@pytest.mark.slow
def test_two_dispensers_starting_at_once_on_an_empty_cache_both_start(tmp_path: Path) -> None:
    for attempt in range(3):
        home = tmp_path / f"machine-{attempt}"
        env = dispenser_env(home)
        both = [start_print_test(env, home / f"kiosk-{n}.png") for n in (1, 2)]
        for done in [finish(p) for p in both]:
            assert_started(done)
        load_cache(home / "cache" / "hallq-escpos" / PICKLE_NAME)


@pytest.mark.slow
@pytest.mark.parametrize("damage", [b"", b"garbage, not a pickle\n" * 20,
                                    pickle.dumps({"profiles": {"x": {}}, "encodings": {}}, protocol=2)[:-9],
                                    pickle.dumps(["a list, not the database"], protocol=2)],
                         ids=["empty", "garbage", "truncated", "wrong-content"])
def test_a_damaged_cache_is_rebuilt_not_a_traceback(tmp_path: Path, damage: bytes) -> None:
    cache = tmp_path / "cache" / "hallq-escpos" / PICKLE_NAME
    cache.parent.mkdir(parents=True)
    cache.write_bytes(damage)
    assert_started(finish(start_print_test(dispenser_env(tmp_path), tmp_path / "ticket.png")))
    load_cache(cache)


@pytest.mark.slow
def test_a_warm_cache_is_read_not_rewritten_and_no_temporary_directory_stays(tmp_path: Path) -> None:
    env = dispenser_env(tmp_path)
    cache = tmp_path / "cache" / "hallq-escpos" / PICKLE_NAME
    assert_started(finish(start_print_test(env, tmp_path / "cold.png")))
    built = cache.stat()
    assert_started(finish(start_print_test(env, tmp_path / "warm.png")))
    assert (cache.stat().st_ino, cache.stat().st_mtime_ns) == (built.st_ino, built.st_mtime_ns)
    assert list((tmp_path / "tmp").iterdir()) == []
    assert sorted(p.name for p in cache.parent.iterdir()) == [PICKLE_NAME]


@pytest.mark.slow
@pytest.mark.parametrize(("variable", "subdirectory"), [("CACHE_DIRECTORY", "hallq-escpos"),
                                                        ("ESCPOS_CAPABILITIES_PICKLE_DIR", "")])
def test_the_cache_goes_where_systemd_or_the_operator_says(tmp_path: Path, variable: str,
                                                           subdirectory: str) -> None:
    chosen = tmp_path / "chosen"
    env = dispenser_env(tmp_path, **{variable: str(chosen)})
    assert_started(finish(start_print_test(env, tmp_path / "ticket.png")))
    load_cache(chosen / subdirectory / PICKLE_NAME)
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("module", ["dispenser", "dispenser.cli"])
def test_importing_the_dispenser_changes_no_variable_and_creates_no_directory(tmp_path: Path, module: str) -> None:
    env = dispenser_env(tmp_path)
    check = (f"import os, sys; before = dict(os.environ); import {module}; "
             "sys.exit(0 if dict(os.environ) == before and 'escpos' not in sys.modules else 1)")
    done = subprocess.run([sys.executable, "-c", check], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "tmp"]
    assert list((tmp_path / "home").iterdir()) == list((tmp_path / "tmp").iterdir()) == []
