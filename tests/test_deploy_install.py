"""deploy/install.sh: shellcheck clean, its dry run, and real runs into a temporary root (``--root DIR``).

A run into a root creates the users (systemd-sysusers), the config skeleton, the units, the udev rule and the
units' enablement (``systemctl --root``) there, exactly as on a Pi; it skips what cannot live in a file tree
(Debian packages, the virtual environment, starting services). These tests run as root, like the installer.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT

INSTALL = ROOT / "deploy" / "install.sh"
ROLES = ["controller", "dispenser", "counter", "display"]
UNITS = {
    "controller": ["hallq-controller.service"],
    "dispenser": ["hallq-dispenser.service"],
    "counter": ["hallq-counter.service"],
    "display": ["hallq-display.service", "hallq-kiosk.service"],
}
CONFIG = {"controller": "hall.toml", "dispenser": "dispenser.toml", "counter": "counter.toml",
          "display": "display.toml"}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the installer sets file owners: run the suite as root")


def _install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(INSTALL), *args], capture_output=True, text=True, check=False, timeout=60)


def _snapshot(root: Path) -> dict[str, tuple[int, int, int, bytes | str]]:
    """Every path under ``root`` with its mode, owner, group and content (or link target)."""
    result: dict[str, tuple[int, int, int, bytes | str]] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        content: bytes | str = os.readlink(path) if path.is_symlink() else path.read_bytes() if path.is_file() else b""
        result[str(path.relative_to(root))] = (info.st_mode, info.st_uid, info.st_gid, content)
    return result


def _gid(root: Path, group: str) -> int:
    for line in (root / "etc" / "group").read_text(encoding="utf-8").splitlines():
        name, _, gid, _ = line.split(":", 3)
        if name == group:
            return int(gid)
    raise AssertionError(f"no group {group} in {root}/etc/group")


def test_scripts_are_shellcheck_clean() -> None:
    done = subprocess.run(["shellcheck", str(INSTALL), str(ROOT / "deploy" / "hallq-kiosk")], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout


def test_unknown_role_is_refused_with_usage() -> None:
    done = _install("printer", "--dry-run")
    assert done.returncode == 2 and "ROLE" in done.stderr


def test_dry_run_changes_nothing_and_says_what_it_would_do(tmp_path: Path) -> None:
    done = _install("dispenser", "--dry-run", "--root", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == []
    for line in ("would install /etc/systemd/system/hallq-dispenser.service",
                 "would install /etc/udev/rules.d/60-hallq.rules",
                 "would install /etc/hallq/dispenser.toml",
                 "would enable hallq-dispenser.service"):
        assert f"[hallq] {line}" in done.stdout, done.stdout
    assert "change(s) would be made" in done.stdout


@pytest.mark.parametrize("role", ROLES)
def test_install_into_a_root_lays_out_the_role(role: str, tmp_path: Path) -> None:
    done = _install(role, "--root", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    passwd = (tmp_path / "etc" / "passwd").read_text(encoding="utf-8")
    assert passwd.startswith("hallq:") and "\nhallq-kiosk:" in passwd
    for unit in UNITS[role]:
        installed = tmp_path / "etc" / "systemd" / "system" / unit
        assert installed.read_bytes() == (ROOT / "systemd" / unit).read_bytes()
        wants = tmp_path / "etc" / "systemd" / "system" / "multi-user.target.wants" / unit
        assert os.readlink(wants) == f"/etc/systemd/system/{unit}"
    config = tmp_path / "etc" / "hallq" / CONFIG[role]
    assert config.stat().st_mode & 0o777 == 0o640 and config.stat().st_gid == _gid(tmp_path, "hallq")
    assert (tmp_path / "etc" / "hallq" / "credentials").stat().st_mode & 0o777 == 0o700
    udev = tmp_path / "etc" / "udev" / "rules.d" / "60-hallq.rules"
    assert udev.exists() == (role in ("dispenser", "counter"))


@pytest.mark.parametrize("role", ROLES)
def test_units_documentation_is_where_the_installer_puts_it(role: str, tmp_path: Path) -> None:
    assert _install(role, "--root", str(tmp_path)).returncode == 0
    for unit in UNITS[role]:
        text = (ROOT / "systemd" / unit).read_text(encoding="utf-8")
        documents = [word.removeprefix("file:") for line in text.splitlines() if line.startswith("Documentation=")
                     for word in line.removeprefix("Documentation=").split() if word.startswith("file:")]
        assert documents, f"{unit} names no local documentation"
        for document in documents:
            installed = tmp_path / document.lstrip("/")
            assert installed.read_bytes() == (ROOT / "docs" / Path(document).name).read_bytes(), unit


def test_controller_gets_the_broker_config_and_drop_in(tmp_path: Path) -> None:
    assert _install("controller", "--root", str(tmp_path)).returncode == 0
    etc = tmp_path / "etc"
    assert (etc / "hallq" / "broker" / "hallq.conf").read_bytes() == \
        (ROOT / "config" / "mosquitto" / "hallq.conf").read_bytes()
    assert (etc / "systemd" / "system" / "mosquitto.service.d" / "hallq.conf").exists()
    assert (etc / "hallq" / "displays.toml").exists()


def test_display_gets_the_kiosk_launcher_and_its_address(tmp_path: Path) -> None:
    assert _install("display", "--root", str(tmp_path)).returncode == 0
    launcher = tmp_path / "opt" / "hallq" / "bin" / "hallq-kiosk"
    assert launcher.stat().st_mode & 0o777 == 0o755
    assert "HALLQ_KIOSK_URL=http://127.0.0.1:8080/" in (tmp_path / "etc" / "hallq" / "kiosk.env").read_text("utf-8")


@pytest.mark.parametrize("role", ROLES)
def test_second_run_changes_nothing(role: str, tmp_path: Path) -> None:
    assert _install(role, "--root", str(tmp_path)).returncode == 0
    before = _snapshot(tmp_path)
    again = _install(role, "--root", str(tmp_path))
    assert again.returncode == 0, again.stderr
    assert f"[hallq] nothing to change: role {role} is installed" in again.stdout
    assert _snapshot(tmp_path) == before
    dry = _install(role, "--root", str(tmp_path), "--dry-run")
    assert "would " not in dry.stdout and "nothing to change" in dry.stdout, dry.stdout


def test_existing_config_is_never_overwritten(tmp_path: Path) -> None:
    mine = tmp_path / "etc" / "hallq" / "hall.toml"
    mine.parent.mkdir(parents=True)
    mine.write_text("# the technician's hall\n", encoding="utf-8")
    assert _install("controller", "--root", str(tmp_path)).returncode == 0
    assert mine.read_text(encoding="utf-8") == "# the technician's hall\n"


def test_credential_and_ca_are_installed_for_the_unit(tmp_path: Path) -> None:
    credential, ca = tmp_path / "kiosk-1.mqtt-password", tmp_path / "ca.crt"
    credential.write_text("s3cret\n", encoding="utf-8")
    ca.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    root = tmp_path / "root"
    done = _install("dispenser", "--root", str(root), "--credential", str(credential), "--ca", str(ca))
    assert done.returncode == 0, done.stderr
    installed = root / "etc" / "hallq" / "credentials" / "dispenser.mqtt-password"
    assert installed.read_text(encoding="utf-8") == "s3cret\n" and installed.stat().st_mode & 0o777 == 0o600
    assert (root / "etc" / "hallq" / "ca.crt").stat().st_mode & 0o777 == 0o644


def test_a_changed_unit_is_reinstalled(tmp_path: Path) -> None:
    assert _install("counter", "--root", str(tmp_path)).returncode == 0
    unit = tmp_path / "etc" / "systemd" / "system" / "hallq-counter.service"
    unit.write_text(unit.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    done = _install("counter", "--root", str(tmp_path))
    assert "[hallq] install /etc/systemd/system/hallq-counter.service" in done.stdout
    assert unit.read_bytes() == (ROOT / "systemd" / "hallq-counter.service").read_bytes()


LOCAL_AUDIO = Path("etc/systemd/system/hallq-display.service.d/local-audio.conf")


def _display_config(root: Path, *, output: str) -> None:
    """The example display config with ``[announce] output`` set, where the installer looks for it."""
    example = (ROOT / "config" / "display.example.toml").read_text(encoding="utf-8")
    assert 'output = "page"' in example
    config = root / "etc" / "hallq" / "display.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(example.replace('output = "page"', f'output = "{output}"', 1), encoding="utf-8")


def _debian_packages(stdout: str) -> list[str]:
    line = next(line for line in stdout.splitlines() if "skip Debian packages" in line)
    return line.split(": ", 1)[1].split()


def test_display_that_plays_the_sound_itself_gets_the_sound_devices_and_aplay(tmp_path: Path) -> None:
    _display_config(tmp_path, output="local")
    done = _install("display", "--root", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    drop_in = tmp_path / LOCAL_AUDIO
    assert drop_in.read_bytes() == (ROOT / "systemd" / "hallq-display.service.d" / "local-audio.conf").read_bytes()
    assert drop_in.stat().st_mode & 0o777 == 0o644
    assert "alsa-utils" in _debian_packages(done.stdout)
    again = _install("display", "--root", str(tmp_path))
    assert "[hallq] nothing to change: role display is installed" in again.stdout, again.stdout


def test_display_with_page_output_has_no_devices_and_loses_a_drop_in_left_from_before(tmp_path: Path) -> None:
    forced = _install("display", "--root", str(tmp_path), "--local-audio")  # before the config says "local"
    assert forced.returncode == 0 and (tmp_path / LOCAL_AUDIO).exists(), forced.stdout + forced.stderr
    done = _install("display", "--root", str(tmp_path))  # the config (the example's) says "page"
    assert f"[hallq] remove /{LOCAL_AUDIO}" in done.stdout, done.stdout
    assert not (tmp_path / LOCAL_AUDIO).parent.exists()
    assert "alsa-utils" not in _debian_packages(done.stdout)


def test_display_config_that_is_not_toml_counts_as_page_output_and_says_so(tmp_path: Path) -> None:
    config = tmp_path / "etc" / "hallq" / "display.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[announce]\noutput = "local\n', encoding="utf-8")
    done = _install("display", "--root", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"warning: cannot read {config}; local audio only with --local-audio" in done.stderr
    assert not (tmp_path / LOCAL_AUDIO).exists()


def test_local_audio_is_refused_for_other_roles() -> None:
    done = _install("counter", "--local-audio", "--dry-run")
    assert done.returncode == 1 and "--local-audio is for a display's Pi" in done.stderr


# --- uninstall ---------------------------------------------------------------------------------------------------

KEPT = {
    "controller": ["etc/hallq/hall.toml", "etc/hallq/displays.toml", "etc/hallq/broker/passwd", "var/lib/hallq/ledger.sqlite3",
                   "etc/hallq/credentials/profile.key"],
    "dispenser": ["etc/hallq/dispenser.toml"],
    "counter": ["etc/hallq/counter.toml"],
    "display": ["etc/hallq/display.toml", "etc/hallq/kiosk.env"],
}
USER_DATABASES = {"etc/passwd", "etc/group", "etc/shadow", "etc/gshadow", "etc/.pwd.lock"}


def _installed(role: str, root: Path, tmp_path: Path) -> None:
    """``role`` installed into ``root`` as on a Pi: with its credential and the CA, and (controller) a ledger and
    provisioned broker files."""
    credential, ca = tmp_path / f"{role}.mqtt-password", tmp_path / "ca.crt"
    credential.write_text("s3cret\n", encoding="utf-8")
    ca.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    extra = ["--local-audio"] if role == "display" else []
    done = _install(role, "--root", str(root), "--credential", str(credential), "--ca", str(ca), *extra)
    assert done.returncode == 0, done.stdout + done.stderr
    if role == "controller":
        (root / "var" / "lib" / "hallq").mkdir(parents=True)
        (root / "var" / "lib" / "hallq" / "ledger.sqlite3").write_bytes(b"SQLite format 3\x00")
        (root / "etc" / "hallq" / "broker" / "passwd").write_text("controller:$7$...\n", encoding="utf-8")


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir() or p.is_symlink()}


@pytest.mark.parametrize("role", ROLES)
def test_uninstall_removes_what_the_installer_put_in_place_and_keeps_config_credentials_and_ledger(
    role: str, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    _installed(role, root, tmp_path)
    done = _install("uninstall", role, "--root", str(root))
    assert done.returncode == 0, done.stdout + done.stderr
    kept = [*KEPT[role], f"etc/hallq/credentials/{role}.mqtt-password", "etc/hallq/ca.crt"]
    assert _files(root) == USER_DATABASES | set(kept)
    for unit in UNITS[role]:
        assert f"[hallq] disable {unit}" in done.stdout
    listed = [path for path in kept if path != "etc/hallq/broker/passwd" and "ledger" not in path]
    assert all(f"/{path}" in done.stdout.split("(--purge removes them): ", 1)[1] for path in listed), done.stdout
    assert "[hallq] 0 change(s)" not in done.stdout and f"role {role} is uninstalled" in done.stdout


def test_uninstall_of_the_controller_names_the_ledger_it_keeps(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _installed("controller", root, tmp_path)
    done = _install("uninstall", "controller", "--root", str(root))
    kept = next(line for line in done.stdout.splitlines() if "(--purge removes them)" in line)
    assert "/etc/hallq/broker" in kept.split() and "/var/lib/hallq" in kept.split()


def test_uninstall_keeps_a_technicians_drop_in_and_removes_only_the_installers(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _installed("display", root, tmp_path)
    override = root / "etc" / "systemd" / "system" / "hallq-display.service.d" / "override.conf"
    override.write_text("[Service]\nIPAddressAllow=203.0.113.0/24\n", encoding="utf-8")
    done = _install("uninstall", "display", "--root", str(root))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[hallq] remove /etc/systemd/system/hallq-display.service.d/local-audio.conf" in done.stdout
    assert override.exists() and "/etc/systemd/system/hallq-display.service.d" in done.stdout.split()


def test_uninstall_purge_removes_config_credentials_and_ledger_but_not_the_users(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _installed("controller", root, tmp_path)
    done = _install("uninstall", "controller", "--purge", "--root", str(root))
    assert done.returncode == 0, done.stdout + done.stderr
    assert _files(root) == USER_DATABASES
    assert "[hallq] remove /var/lib/hallq" in done.stdout and "[hallq] remove /etc/hallq" in done.stdout
    assert (root / "etc" / "passwd").read_text(encoding="utf-8").startswith("hallq:")


def test_uninstall_dry_run_changes_nothing_and_says_what_it_would_remove(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _installed("counter", root, tmp_path)
    before = _snapshot(root)
    done = _install("uninstall", "counter", "--dry-run", "--root", str(root))
    assert done.returncode == 0, done.stdout + done.stderr
    assert _snapshot(root) == before
    for line in ("would disable hallq-counter.service", "would remove /etc/systemd/system/hallq-counter.service",
                 "would remove /etc/udev/rules.d/60-hallq.rules", "would remove /opt/hallq"):
        assert f"[hallq] {line}" in done.stdout, done.stdout
    assert "change(s) would be made" in done.stdout


def test_uninstall_keeps_what_another_role_installed_here_still_uses(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _installed("dispenser", root, tmp_path)
    _installed("counter", root, tmp_path)
    done = _install("uninstall", "counter", "--purge", "--root", str(root))
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (root / "etc" / "hallq" / "counter.toml").exists()
    for shared in ("etc/udev/rules.d/60-hallq.rules", "opt/hallq/docs/deploy.md", "etc/hallq/ca.crt",
                   "etc/hallq/dispenser.toml", "etc/hallq/credentials/dispenser.mqtt-password"):
        assert (root / shared).exists(), shared
    wants = root / "etc" / "systemd" / "system" / "multi-user.target.wants"
    assert [p.name for p in wants.iterdir()] == ["hallq-dispenser.service"]


def test_a_second_uninstall_has_nothing_to_remove(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _installed("dispenser", root, tmp_path)
    assert _install("uninstall", "dispenser", "--root", str(root)).returncode == 0
    before = _snapshot(root)
    again = _install("uninstall", "dispenser", "--root", str(root))
    assert again.returncode == 0 and "[hallq] nothing to remove: role dispenser is not installed" in again.stdout
    assert _snapshot(root) == before


def test_uninstall_refuses_install_options_and_purge_is_only_for_uninstall(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("x\n", encoding="utf-8")
    refused = _install("uninstall", "dispenser", "--ca", str(ca), "--dry-run")
    assert refused.returncode == 1 and "uninstall takes only --purge, --dry-run and --root" in refused.stderr
    purge = _install("dispenser", "--purge", "--dry-run")
    assert purge.returncode == 1 and "--purge is for uninstall" in purge.stderr


def test_controller_gets_the_nightly_backup_timer_enabled_and_its_service_started_only_by_it(tmp_path: Path) -> None:
    done = _install("controller", "--root", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    system = tmp_path / "etc" / "systemd" / "system"
    for unit in ("hallq-backup.service", "hallq-backup.timer"):
        installed = system / unit
        assert installed.read_bytes() == (ROOT / "systemd" / unit).read_bytes()
        assert installed.stat().st_mode & 0o777 == 0o644
        for document in re.findall(r"^Documentation=file:(\S+)$", installed.read_text(encoding="utf-8"), re.MULTILINE):
            assert (tmp_path / document.lstrip("/")).read_bytes() == (ROOT / "docs" / Path(document).name).read_bytes()
    assert os.readlink(system / "timers.target.wants" / "hallq-backup.timer") == "/etc/systemd/system/hallq-backup.timer"
    assert not list(system.glob("*.wants/hallq-backup.service"))


@pytest.mark.parametrize("role", ["dispenser", "counter", "display"])
def test_only_the_controller_gets_the_backup_timer(role: str, tmp_path: Path) -> None:
    assert _install(role, "--root", str(tmp_path)).returncode == 0
    assert not list((tmp_path / "etc" / "systemd" / "system").rglob("hallq-backup.*"))
