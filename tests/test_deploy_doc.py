"""docs/deploy.md keeps up with the code it describes: the printer types it reports on, the installer's commands."""

from __future__ import annotations

import re

from dispenser.config import PRINTER_TYPES
from tests.support import ROOT

DOC = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    return DOC.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_every_printer_type_says_what_was_tested() -> None:
    rows = re.findall(r"^\| `([a-z]+)` \| (.+?) \| (.+?) \|$", _section("Receipt printers: what was tested"), re.M)
    assert sorted(name for name, _, _ in rows) == sorted(PRINTER_TYPES)


def test_the_uninstall_the_guide_shows_is_the_installers() -> None:
    usage = (ROOT / "deploy" / "install.sh").read_text(encoding="utf-8")
    assert "#   sudo deploy/install.sh uninstall ROLE [--purge] [--dry-run] [--root DIR]" in usage
    assert "sudo deploy/install.sh uninstall ROLE --dry-run" in _section("Uninstalling")
    assert "`--purge`" in _section("Uninstalling")


def test_the_clock_section_says_how_to_check_the_clock_and_where_faults_are_described() -> None:
    clock = _section("The hall's clock")
    assert "timedatectl show -p NTPSynchronized" in clock and "timedatectl status" in clock
    assert "dtoverlay=i2c-rtc,ds3231" in clock
    assert "(reliability.md#clock-faults)" in clock
