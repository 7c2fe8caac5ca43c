"""Every role installed by deploy/install.sh and run by a real systemd, as docs/deploy.md tells a technician.

A fresh Debian 12 machine boots with systemd as PID 1 (``tests/live_guest.py``: systemd-nspawn on a cached
mmdebstrap root file system). Inside it, a copy of this repository is installed exactly as the guide's
"A dry run on one machine" says: ``deploy/install.sh controller`` (the first install must end with a controller
that logs in), the hall's displays listed and the installer run again, the hall manager, then a dispenser and a
counter with ``--simulated-hardware`` and a display, each with its credential and the hall's CA from the
controller's files, and its ``[mqtt]`` table set as the guide's table says. Then, for every role's unit: active
with READY=1, watchdog pings, a SIGSTOPped process killed by the watchdog and restarted, kill -9 restarted, exit
78 (bad config) and 69 (missing hardware) not restarted, the hardening seen in /proc, the role's key=value log
lines; the manager's ``check``, its page over HTTPS verified against the hall's CA, and a login with the account
the guide creates; a ticket from the kiosk's button to the controller, the counter and the display; an upgrade
that keeps the ledger and the credentials; and an uninstall that leaves no unit behind.

The tests of this module share one guest and run in order (each leaves the hall running for the next). The
measured figures are written to build/live-units.json. Marked ``live``; skipped with one line where the
machine cannot run them (not root, no systemd-nspawn/mmdebstrap/nft, no network for the first build or PyPI).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import pytest

from tests import live_guest
from tests.live_guest import Guest
from tests.support import ROOT

SRC = "/root/hallq"
INSTALL = f"cd {SRC} && deploy/install.sh"
ROLES = ("controller", "dispenser", "counter", "display", "manager")
UNITS = {role: f"hallq-{role}.service" for role in ROLES}
CREDENTIALS = "/etc/hallq/broker/credentials"
DEVICES = {"dispenser": "kiosk-1", "counter": "counter-5", "display": "display-1"}
GUIDE = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
DRY_RUN = GUIDE.split("\n## A dry run on one machine, without the hardware\n", 1)[1].split("\n## ", 1)[0]
COUNTER_7_CONFIG = next(block for block in DRY_RUN.split("```") if "counter-7.toml" in block).strip().split(
    "\n", 1)[1].split("\nsudo /opt", 1)[0]
COUNTER_7_CONSOLE = "sudo /opt/hallq/venv/bin/hallq-counter console --config /root/counter-7.toml"
MANAGER_BLOCK = next(block for block in DRY_RUN.split("```") if "hallq-manager users add" in block)
MANAGER_USERS_ADD, MANAGER_CHECK, MANAGER_CURL = (
    next(line.split("  #", 1)[0].strip() for line in MANAGER_BLOCK.splitlines() if word in line)
    for word in ("users add", " check ", "curl "))
MANAGER_PASSWORD = "mật khẩu của Lan 2026"
FIGURES: dict[str, object] = {}
INSTALL_S: list[tuple[str, float]] = []  # each run of the installer: its options, seconds
T = TypeVar("T")


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "live units: needs root (systemd-nspawn, an overlay mount, NAT)"
    missing = [tool for tool in ("systemd-nspawn", "mmdebstrap", "nft", "nsenter") if shutil.which(tool) is None]
    if missing:
        return f"live units: no {', '.join(missing)} (./run installs systemd-container, mmdebstrap, nftables)"
    if live_guest.cached_rootfs() is None and not live_guest.reachable("deb.debian.org", 80):
        return "live units: no network to build the Debian root file system (deb.debian.org unreachable)"
    if not live_guest.reachable("pypi.org", 443):
        return "live units: no network to PyPI, which pip in the guest needs"
    return None


# Decided once, when the module is imported: one skip line for the whole module, and the network is probed only
# on a machine that could run the tests otherwise.
SKIP = _skip_reason()
if SKIP is not None:
    pytest.skip(SKIP, allow_module_level=True)
pytestmark = pytest.mark.live


def wait_for(what: str, probe: Callable[[], T | None], *, timeout_s: float, every_s: float = 0.1) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)


def set_key(text: str, table: str, key: str, value: str) -> str:
    """``text`` (TOML) with ``key = value`` in ``[table]``: a (commented) line for it replaced, else added."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"[{table}]")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    pattern = re.compile(rf"^#?\s*{re.escape(key)}\s*=")
    for i in range(start + 1, end):
        if pattern.match(lines[i]):
            lines[i] = f"{key} = {value}"
            break
    else:
        lines.insert(start + 1, f"{key} = {value}")
    return "\n".join(lines) + "\n"


def edit(guest: Guest, path: str, changes: list[tuple[str, str, str]]) -> None:
    target = guest.path(path)
    text = target.read_text(encoding="utf-8")
    for table, key, value in changes:
        text = set_key(text, table, key, value)
    target.write_text(text, encoding="utf-8")  # in place: the installer's owner and mode stay


def mqtt_login(role: str) -> list[tuple[str, str, str]]:
    """The ``[mqtt]`` lines docs/deploy.md gives every device, for a broker on the same machine."""
    return [("mqtt", "broker", '"127.0.0.1:8883"'), ("mqtt", "username", f'"{DEVICES[role]}"'),
            ("mqtt", "password_file", f'"/run/credentials/hallq-{role}.service/mqtt-password"'),
            ("mqtt", "tls", "true"), ("mqtt", "ca_file", '"/etc/hallq/ca.crt"')]


@dataclass
class Hall:
    guest: Guest
    installs: dict[str, str] = field(default_factory=dict)  # role -> the installer's output

    def state(self, unit: str) -> dict[str, str]:
        return self.guest.show(unit, "ActiveState", "SubState", "StatusText", "MainPID", "NRestarts", "Result",
                               "ExecMainStatus", "ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic",
                               "WatchdogTimestampMonotonic")

    def active(self, unit: str, *, timeout_s: float = 60) -> dict[str, str]:
        def probe() -> dict[str, str] | None:
            state = self.state(unit)
            return state if state["ActiveState"] == "active" and state["SubState"] == "running" else None
        return wait_for(f"{unit} active", probe, timeout_s=timeout_s)

    def install(self, role: str, *args: str) -> str:
        done = self.guest.run(" ".join([INSTALL, role, *args]) + " 2>&1", timeout_s=600)
        INSTALL_S.append((" ".join([role, *(a for a in args if a.startswith("--"))]), round(done.seconds, 1)))
        return done.stdout

    def ledger(self, sql: str) -> list[list[str]]:
        script = ("import json, sqlite3, sys; db = sqlite3.connect('file:/var/lib/hallq/ledger.sqlite3?mode=ro', "
                  "uri=True); print(json.dumps([list(map(str, row)) for row in db.execute(sys.argv[1])]))")
        out = self.guest.run(f"python3 -c \"{script}\" \"{sql}\"").stdout
        rows: list[list[str]] = json.loads(out)
        return rows


def _repository_files() -> list[str]:
    done = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z"],
                          capture_output=True, text=True, check=True)
    return [name for name in done.stdout.split("\0") if name]


def _bring_up(hall: Hall) -> None:
    guest = hall.guest
    guest.copy_tree(ROOT, _repository_files(), SRC)
    # The guide's step 2: the first install of the controller, nothing edited.
    hall.installs["controller-first"] = hall.install("controller")
    hall.active(UNITS["controller"])
    # The hall's displays, and the clock: a container's kernel reports the host's clock state (here not
    # synchronised by network time), and a dry run's machine may have no network time at all: the guide tells
    # such a dry run to trust the system clock (the hall's own Pi keeps "synchronised").
    displays = guest.path("/etc/hallq/displays.toml")
    displays.write_text(displays.read_text(encoding="utf-8").replace("displays = []", 'displays = ["display-1"]'),
                        encoding="utf-8")
    # And a dry run at any hour: the example hall's services open 07:30-11:30 and 13:00-17:00, the hall's time.
    path = guest.path("/etc/hallq/hall.toml")
    hall_toml = re.sub(r"^hours = .*$", "# hours: always open for the dry run", path.read_text(encoding="utf-8"),
                       flags=re.M)
    path.write_text(hall_toml, encoding="utf-8")
    if re.search(r"^trust_clock\s*=", hall_toml, re.M):
        edit(guest, "/etc/hallq/hall.toml", [("controller", "trust_clock", '"always"')])
    hall.installs["controller"] = hall.install("controller")
    hall.active(UNITS["controller"])
    # The hall manager, after the controller: its credential and certificate come from the controller's files.
    hall.installs["manager"] = hall.install("manager")
    # Every other role on the same machine, with its credential and the CA from the controller's files.
    ca = "/etc/hallq/broker/tls/ca.crt"
    for role, extra in (("dispenser", ["--simulated-hardware"]), ("counter", ["--simulated-hardware"]),
                        ("display", [])):
        hall.installs[role] = hall.install(role, *extra, "--credential", f"{CREDENTIALS}/{DEVICES[role]}.mqtt-password",
                                           "--ca", ca)
    edit(guest, "/etc/hallq/dispenser.toml", [("dispenser", "id", '"kiosk-1"'), *mqtt_login("dispenser")])
    edit(guest, "/etc/hallq/counter.toml", mqtt_login("counter"))
    edit(guest, "/etc/hallq/display.toml", mqtt_login("display"))
    guest.run("systemctl disable --now hallq-kiosk.service && "
              "systemctl restart hallq-dispenser.service hallq-counter.service hallq-display.service")
    for role in ROLES:
        hall.active(UNITS[role])


@pytest.fixture(scope="module")
def hall() -> Iterator[Hall]:
    rootfs, build_s = live_guest.build_rootfs()
    FIGURES["rootfs_build_s"] = round(build_s, 1)
    started = time.monotonic()
    try:
        with live_guest.booted(rootfs) as guest:
            FIGURES["boot_s"] = round(guest.boot_s, 2)
            hall = Hall(guest)
            _bring_up(hall)
            FIGURES["bring_up_s"] = round(time.monotonic() - started, 1)
            FIGURES["keep_wheels_s"] = round(guest.keep_wheels("/opt/hallq/venv").seconds, 1)
            yield hall
    finally:
        FIGURES["total_s"] = round(time.monotonic() - started, 1)
        FIGURES["install_s"] = INSTALL_S
        out = ROOT / "build" / "live-units.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(FIGURES, indent=2) + "\n", encoding="utf-8")


def _restart_all(hall: Hall, units: list[str]) -> None:
    hall.guest.run(f"systemctl reset-failed {' '.join(units)}; systemctl restart {' '.join(units)}")
    for unit in units:
        hall.active(unit)


# --- the tests, in order ---------------------------------------------------------------------------------------


def test_the_guides_dry_run_is_what_these_tests_do() -> None:
    for line in ("sudo deploy/install.sh controller\n", "sudo deploy/install.sh controller\nsudo deploy/install.sh manager\n",
                 "sudo deploy/install.sh dispenser --simulated-hardware --credential $C/kiosk-1.mqtt-password --ca $CA",
                 "sudo deploy/install.sh counter --simulated-hardware --credential $C/counter-5.mqtt-password --ca $CA",
                 "sudo deploy/install.sh display --credential $C/display-1.mqtt-password --ca $CA",
                 "C=/etc/hallq/broker/credentials CA=/etc/hallq/broker/tls/ca.crt",
                 'displays = ["display-1"]', 'trust_clock = "always"', 'id = "kiosk-1"',
                 'broker = "127.0.0.1:8883"', "sudo systemctl disable --now hallq-kiosk",
                 "echo 2 | sudo tee /run/hallq-dispenser.keys", COUNTER_7_CONSOLE):
        assert line in DRY_RUN, line
    assert COUNTER_7_CONFIG.startswith("sed -e") and COUNTER_7_CONFIG.endswith("/root/counter-7.toml >/dev/null")
    assert MANAGER_USERS_ADD == "sudo -u hallq /opt/hallq/venv/bin/hallq-manager users add lan --role manager"
    assert MANAGER_CHECK == "sudo /opt/hallq/venv/bin/hallq-manager check --config /etc/hallq/manager.toml"
    assert MANAGER_CURL == "curl --cacert /etc/hallq/broker/tls/ca.crt https://127.0.0.1:8443/healthz"


def test_first_install_ends_with_a_controller_that_logs_in(hall: Hall) -> None:
    first = hall.installs["controller-first"]
    assert "warning" not in first, first
    log = hall.guest.journal(UNITS["controller"])
    assert "Not authorized" not in log
    assert "connected to broker 127.0.0.1:1883 client=controller" in log
    assert "controller ready" in log
    hall_toml = hall.guest.path("/etc/hallq/hall.toml").read_text(encoding="utf-8")
    assert re.search(r'^username = "controller"', hall_toml, re.M)


def test_every_role_reaches_active_with_ready(hall: Hall) -> None:
    ready: dict[str, float] = {}
    for role in ROLES:
        unit = UNITS[role]
        hall.guest.run(f"systemctl restart {unit}")
        state = hall.active(unit)
        ready[role] = round((int(state["ActiveEnterTimestampMonotonic"])
                             - int(state["ExecMainStartTimestampMonotonic"])) / 1e6, 2)
        # Type=notify: "active" only after READY=1; the journal says it was the service that said so.
        assert hall.guest.show(unit, "Type")["Type"] == "notify"
        assert state["Result"] == "success"
    FIGURES["start_to_ready_s"] = ready


def test_watchdog_pings_arrive(hall: Hall) -> None:
    before = {role: hall.state(UNITS[role])["WatchdogTimestampMonotonic"] for role in ROLES}
    for role in ROLES:  # every unit pings at half its WatchdogSec=30: a new ping within ~15 s
        wait_for(f"a watchdog ping from {UNITS[role]}",
                 lambda role=role: hall.state(UNITS[role])["WatchdogTimestampMonotonic"] != before[role],  # type: ignore[misc]
                 timeout_s=20, every_s=0.5)


def test_hardening_seen_in_proc_matches_the_units(hall: Hall) -> None:
    for role in ROLES:
        unit = UNITS[role]
        text = (ROOT / "systemd" / unit).read_text(encoding="utf-8")
        assert "NoNewPrivileges=yes" in text and "SystemCallFilter=@system-service" in text
        pid = hall.state(unit)["MainPID"]
        status = dict(line.split(":", 1) for line in hall.guest.run(f"cat /proc/{pid}/status").stdout.splitlines())
        assert status["NoNewPrivs"].strip() == "1", unit
        assert status["Seccomp"].strip() == "2", unit
        assert int(status["CapEff"].strip(), 16) == 0 and int(status["CapBnd"].strip(), 16) == 0, unit
        assert status["Uid"].split()[0] != "0", unit


def test_journal_shows_each_roles_key_value_lines(hall: Hall) -> None:
    expected = {
        "controller": r"hall controller starting hall=hcm-q1 broker=127\.0\.0\.1:1883",
        "dispenser": r"dispenser starting id=kiosk-1 hall=hcm-q1 broker=127\.0\.0\.1:8883",
        "counter": r"counter keypad running counter=5 client=counter-5",
        "display": r"display listening on http://127\.0\.0\.1:8080/ .*hall=hcm-q1",
        "manager": r"manager listening on https://0\.0\.0\.0:8443/ hall=hcm-q1 ledger=/var/lib/hallq/ledger\.sqlite3",
    }
    for role, pattern in expected.items():
        assert re.search(pattern, hall.guest.journal(UNITS[role])), role


# A browser's login, in the guest's own Python: the login form's token, POST /login, then the session's API; the
# page's certificate checked against the hall's CA (and 127.0.0.1 against its names).
LOGIN = """
import http.cookiejar, json, re, ssl, sys, urllib.parse, urllib.request
context = ssl.create_default_context(cafile="/etc/hallq/broker/tls/ca.crt")
opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context),
                                     urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
base = "https://127.0.0.1:8443"
form = opener.open(base + "/login", timeout=10).read().decode()
token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
fields = {"name": "lan", "password": sys.stdin.readline().rstrip("\\n"), "csrf_token": token, "next": "/"}
page = opener.open(base + "/login", urllib.parse.urlencode(fields).encode(), timeout=10)
print(json.dumps({"landed": page.url, "session": json.load(opener.open(base + "/api/session", timeout=10))}))
"""


def as_guide(line: str) -> str:
    """A line of the guide as this guest runs it: as root, which has no sudo (runuser for ``sudo -u``)."""
    return line.replace("sudo -u hallq ", "runuser -u hallq -- ").replace("sudo ", "")


def test_the_manager_answers_over_https_and_a_user_logs_in(hall: Hall) -> None:
    guest = hall.guest
    install = hall.installs["manager"]
    assert "warning" not in install and "not starting" not in install, install
    check = guest.run(as_guide(MANAGER_CHECK)).stdout
    assert "/etc/hallq/manager.toml: OK" in check and "of hall hcm-q1 on https://0.0.0.0:8443/" in check, check
    health = json.loads(guest.run(as_guide(MANAGER_CURL).replace("curl ", "curl -sS --fail ")).stdout)
    assert health["healthy"], health
    # The first account, made as the guide says (the password on standard input, as a script gives it).
    guest.run(as_guide(MANAGER_USERS_ADD) + " --password-stdin", stdin=MANAGER_PASSWORD + "\n")
    users = guest.run("stat -c '%U %a' /var/lib/hallq/manager/users.json").stdout.split()
    assert users == ["hallq", "600"], users
    assert "1 account(s)" in guest.run(as_guide(MANAGER_CHECK)).stdout
    # The running service reads the new file (no restart) and lets lan in.
    guest.path("/root/login.py").write_text(LOGIN, encoding="utf-8")
    done = guest.run("python3 /root/login.py", stdin=MANAGER_PASSWORD + "\n", check=False)
    assert done.returncode == 0, (done.stderr, guest.journal(UNITS["manager"])[-3000:])
    login = json.loads(done.stdout)
    assert login["landed"] == "https://127.0.0.1:8443/", login
    assert (login["session"]["name"], login["session"]["role"]) == ("lan", "manager"), login
    assert re.search(r"login name=lan role=manager remote=127\.0\.0\.1", guest.journal(UNITS["manager"]))


def test_a_ticket_flows_from_the_kiosk_through_controller_and_counter_to_the_display(hall: Hall) -> None:
    guest = hall.guest
    # The counter's keypad on mock pins can only be pressed from inside its process: for this test the unit runs
    # tests/live_keypad.py (the same KeypadService, its buttons pressed through a FIFO) via a runtime drop-in.
    guest.path("/usr/local/lib/hallq-live").mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "tests" / "live_keypad.py", guest.path("/usr/local/lib/hallq-live/live_keypad.py"))
    dropin = "/run/systemd/system/hallq-counter.service.d/zz-live-keys.conf"
    guest.write(dropin, "[Service]\nExecStart=\nExecStart=/opt/hallq/venv/bin/python "
                "/usr/local/lib/hallq-live/live_keypad.py %E/hallq/counter.toml\n")
    try:
        guest.run("systemctl daemon-reload && systemctl restart hallq-counter.service")
        hall.active(UNITS["counter"])
        cursor = guest.cursor()
        started = time.monotonic()
        # The kiosk's first button (service A), pressed as the guide's dry run says.
        guest.run("echo 1 > /run/hallq-dispenser.keys")
        printed = wait_for("the dispenser's printed ticket", lambda: re.search(
            r"printed ticket=(\S+) service=A", guest.journal(UNITS["dispenser"], since_cursor=cursor)), timeout_s=20)
        number = printed.group(1)
        FIGURES["press_to_printed_s"] = round(time.monotonic() - started, 2)
        assert guest.run(f"ls /var/cache/hallq-dispenser/previews/{number}-*.png").stdout.strip()
        assert hall.ledger(f"SELECT state FROM tickets WHERE number = '{number}'") == [["waiting"]]
        guest.run("echo next > /run/hallq-counter/keys")
        wait_for("the counter's reply", lambda: re.search(
            rf"reply counter=5 action=next ok=True ticket={number}", guest.journal(UNITS["counter"],
                                                                                  since_cursor=cursor)),
                 timeout_s=20)
        # The display's whole journal (the number is new in this guest): its lines were, more than once, missing
        # from journalctl --after-cursor with a cursor taken just before the press, though logged at once.
        wait_for("the display's call", lambda: re.search(
            rf"call ticket={number} counter=5", guest.journal(UNITS["display"])), timeout_s=20)
        FIGURES["press_to_display_s"] = round(time.monotonic() - started, 2)
        assert hall.ledger(f"SELECT state, counter FROM tickets WHERE number = '{number}'") == [["called", "5"]]
        health = json.loads(guest.run("curl -sf http://127.0.0.1:8080/healthz").stdout)
        assert health["broker_connected"] and health["board"] and health["seq"] >= 1, health
    finally:
        guest.run(f"rm -f {dropin} && systemctl daemon-reload && systemctl restart hallq-counter.service")
        hall.active(UNITS["counter"])


def test_a_console_calls_the_next_ticket_as_the_guide_says(hall: Hall) -> None:
    guest = hall.guest
    cursor = guest.cursor()
    guest.run("echo 2 > /run/hallq-dispenser.keys")  # service B, which counter 7 serves
    printed = wait_for("the dispenser's printed ticket", lambda: re.search(
        r"printed ticket=(\S+) service=B", guest.journal(UNITS["dispenser"], since_cursor=cursor)), timeout_s=20)
    number = printed.group(1)
    # The guide's commands, as root (no sudo in this guest): counter 7's config, then its console pressing n.
    guest.run(COUNTER_7_CONFIG.replace("sudo ", "").replace("\\\n", " "))
    screen = guest.run(f"(sleep 3; printf n; sleep 3; printf q) | TERM=xterm script -qfec "
                       f"'{COUNTER_7_CONSOLE.removeprefix('sudo ')}' /dev/null", timeout_s=60).stdout
    assert number in screen
    wait_for("the display's call", lambda: re.search(
        rf"call ticket={number} counter=7", guest.journal(UNITS["display"])), timeout_s=20)
    assert hall.ledger(f"SELECT state, counter FROM tickets WHERE number = '{number}'") == [["called", "7"]]


def _replaced(hall: Hall, signal_name: str, *, timeout_s: float) -> dict[str, float]:
    """Send ``signal_name`` to every role's main process at once; seconds until each runs again (a new PID)."""
    pids = {role: hall.state(UNITS[role])["MainPID"] for role in ROLES}
    hall.guest.run(f"kill -{signal_name} {' '.join(pids.values())}")
    started = time.monotonic()
    taken: dict[str, float] = {}
    deadline = started + timeout_s
    while len(taken) < len(ROLES):
        for role in ROLES:
            if role in taken:
                continue
            state = hall.state(UNITS[role])
            if state["MainPID"] not in ("0", pids[role]) and state["ActiveState"] == "active":
                taken[role] = round(time.monotonic() - started, 1)
        assert time.monotonic() < deadline, f"not restarted after SIG{signal_name}: {set(ROLES) - set(taken)}"
        time.sleep(0.2)  # the polling interval: systemd's state has no event to wait on from here
    return taken


def test_a_stopped_process_is_killed_by_the_watchdog_and_restarted(hall: Hall) -> None:
    # WatchdogSec=30 as installed (no drop-in): ~30 s to notice, RestartSec=5 more.
    cursor = hall.guest.cursor()
    FIGURES["sigstop_to_restarted_s"] = _replaced(hall, "STOP", timeout_s=60)
    for role in ROLES:
        assert "Failed with result 'watchdog'" in hall.guest.run(
            f"journalctl -u {UNITS[role]} --after-cursor='{cursor}' --no-pager").stdout, role


def test_the_controller_reads_cards_with_the_key_its_unit_passes(hall: Hall) -> None:
    """[cards] turned on: the profiles' key comes from the installer, through the unit's LoadCredential=, and the
    profiles' file is the service user's alone."""
    config = hall.guest.path("/etc/hallq/hall.toml")
    saved = config.read_text(encoding="utf-8")
    try:
        config.write_text(saved + "\n[cards]\nelderly_age = 60\n", encoding="utf-8")
        cursor = hall.guest.cursor()
        hall.guest.run(f"systemctl restart {UNITS['controller']}", check=False)
        journal = hall.guest.journal(UNITS["controller"], since_cursor=cursor)
        assert "Traceback" not in journal, journal
        hall.active(UNITS["controller"])
        assert "citizens' cards read: 0 profile(s) in /var/lib/hallq/profiles.sqlite3" in journal, journal
        owners = hall.guest.run("stat -c '%a %U' /var/lib/hallq/profiles.sqlite3 /etc/hallq/credentials/profile.key")
        assert owners.stdout.split() == ["600", "hallq", "600", "root"], owners.stdout
    finally:
        config.write_text(saved, encoding="utf-8")
        _restart_all(hall, [UNITS["controller"]])


def test_kill_9_is_restarted(hall: Hall) -> None:
    FIGURES["kill9_to_restarted_s"] = _replaced(hall, "KILL", timeout_s=30)


def _not_restarted(hall: Hall, unit: str, status: int) -> None:
    def failed() -> dict[str, str] | None:
        state = hall.state(unit)
        return state if state["ActiveState"] == "failed" else None

    # systemd decides at the exit whether to start the unit again: one it will restart waits out RestartSec as
    # "activating (auto-restart)", never "failed". So "failed" already says that no new start is coming.
    try:
        # 60 s: the unit is first stopped, then started; all five at once on a loaded 2-core CI machine.
        state = wait_for(f"{unit} failed", failed, timeout_s=60)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; now {hall.state(unit)}; its journal ends:\n"
                             + "\n".join(hall.guest.journal(unit).splitlines()[-30:])) from None
    assert state["ExecMainStatus"] == str(status), state
    assert state["SubState"] == "failed", state


def test_a_bad_config_exits_78_and_is_not_restarted(hall: Hall) -> None:
    configs = {"controller": "hall.toml", "dispenser": "dispenser.toml", "counter": "counter.toml",
               "display": "display.toml", "manager": "manager.toml"}
    saved = {role: hall.guest.path(f"/etc/hallq/{name}").read_text(encoding="utf-8")
             for role, name in configs.items()}
    try:
        for role, name in configs.items():
            hall.guest.path(f"/etc/hallq/{name}").write_text(saved[role] + "\n[no_such_table]\nkey = 1\n",
                                                             encoding="utf-8")
        hall.guest.run(f"systemctl restart --no-block {' '.join(UNITS.values())}")
        for role in ROLES:
            _not_restarted(hall, UNITS[role], 78)
            assert "bad configuration" in hall.guest.journal(UNITS[role]), role
    finally:
        for role, name in configs.items():
            hall.guest.path(f"/etc/hallq/{name}").write_text(saved[role], encoding="utf-8")
        _restart_all(hall, list(UNITS.values()))


def test_missing_hardware_exits_69_and_is_not_restarted(hall: Hall) -> None:
    # The real pins (no --simulate, no mock factory): gpiozero finds no GPIO in this machine.
    dropins = {
        "dispenser": "[Service]\nExecStart=\nExecStart=/opt/hallq/venv/bin/python -m dispenser --config "
                     "%E/hallq/dispenser.toml\nStandardInput=null\nUnsetEnvironment=GPIOZERO_PIN_FACTORY\n",
        "counter": "[Service]\nUnsetEnvironment=GPIOZERO_PIN_FACTORY\n",
    }
    paths = {role: f"/run/systemd/system/{UNITS[role]}.d/zz-live-hardware.conf" for role in dropins}
    try:
        for role, text in dropins.items():
            hall.guest.write(paths[role], text)
        hall.guest.run("systemctl daemon-reload && systemctl restart --no-block hallq-dispenser hallq-counter")
        for role in dropins:
            _not_restarted(hall, UNITS[role], 69)
    finally:
        hall.guest.run(f"rm -f {' '.join(paths.values())} && systemctl daemon-reload")
        _restart_all(hall, [UNITS["dispenser"], UNITS["counter"]])


def test_an_upgrade_keeps_the_ledger_and_the_credentials(hall: Hall) -> None:
    guest = hall.guest
    kept = ["/etc/hallq/credentials/*.mqtt-password", f"{CREDENTIALS}/*", "/etc/hallq/broker/passwd",
            "/etc/hallq/broker/tls/ca.crt", "/etc/hallq/ca.crt"]
    sums = guest.run(f"sha256sum {' '.join(kept)}").stdout
    tickets = hall.ledger("SELECT number, state FROM tickets ORDER BY issued_at")
    assert tickets
    pids = {role: hall.state(UNITS[role])["MainPID"] for role in ("controller", "dispenser")}
    # A new release: the same tree with one change, installed over the old one as the guide's "Upgrading" says.
    init = guest.path(f"{SRC}/hallq/__init__.py")
    init.write_text(init.read_text(encoding="utf-8") + "# the next release\n", encoding="utf-8")
    for role, extra in (("controller", []), ("dispenser", ["--simulated-hardware"])):
        out = hall.install(role, *extra)
        assert "install hallq" in out and f"restart {UNITS[role]}" in out, out
        state = hall.active(UNITS[role])
        assert state["MainPID"] != pids[role]
    assert guest.run(f"sha256sum {' '.join(kept)}").stdout == sums
    assert hall.ledger("SELECT number, state FROM tickets ORDER BY issued_at") == tickets
    # The numbering goes on from the ledger: the next ticket of service A follows the last one.
    cursor = guest.cursor()
    guest.run("echo 1 > /run/hallq-dispenser.keys")
    printed = wait_for("a ticket after the upgrade", lambda: re.search(
        r"printed ticket=(\S+) service=A", guest.journal(UNITS["dispenser"], since_cursor=cursor)), timeout_s=30)
    last = max(number for number, _ in tickets if number.startswith("A"))
    assert printed.group(1) > last


def test_uninstalling_every_role_leaves_no_unit_behind(hall: Hall) -> None:
    guest = hall.guest
    for role in ("display", "counter", "dispenser", "manager", "controller"):
        out = guest.run(f"{INSTALL} uninstall {role} 2>&1").stdout
        assert f"role {role} is uninstalled" in out, out
    left = guest.run("ls /etc/systemd/system /etc/systemd/system/*.wants /etc/systemd/system/*.d 2>/dev/null; "
                     "systemctl list-unit-files --no-legend 'hallq*'", check=False).stdout
    assert "hallq" not in left, left
    assert "hallq" not in guest.run("systemctl --failed --no-legend", check=False).stdout
    # In memory: systemd forgets a unit whose file is gone once it is inactive and nothing refers to it, but only
    # after sending its change signals on the bus; with the bus busy after the reload that waits for a later turn
    # of its loop, so "not-found inactive dead" may be listed for a moment. Anything else (failed, active, a job)
    # stays, and is what this looks for.
    def units_in_memory() -> str:
        return guest.run("systemctl list-units --all --no-legend --plain 'hallq*'", check=False).stdout.strip()

    try:
        wait_for("systemd to forget the removed units", lambda: not units_in_memory(), timeout_s=10, every_s=0.2)
    except AssertionError:
        listed = units_in_memory()
        names = " ".join(line.split()[0] for line in listed.splitlines())
        detail = guest.run(f"systemctl show -p Id,LoadState,ActiveState,SubState,Result,Job,TriggeredBy,WantedBy,"
                           f"RequiredBy,Before,After {names}", check=False).stdout
        raise AssertionError(f"units still in systemd's memory:\n{listed}\n{detail}") from None
    assert not guest.path("/etc/systemd/system/mosquitto.service.d/hallq.conf").exists()
    assert not guest.path("/opt/hallq").exists()
    # What the guide says is kept for a reinstall is kept.
    assert guest.path("/var/lib/hallq/ledger.sqlite3").exists()
    assert guest.path("/etc/hallq/credentials/controller.mqtt-password").exists()
