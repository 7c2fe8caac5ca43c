"""Provisioning the broker's accounts and ACL, and the hall's certificates, without a broker.

What Mosquitto does with the generated files is tested in ``test_broker_security_broker.py``.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from hall_controller import config as config_mod
from hall_controller.config import ControllerConfig
from hall_controller.provision import (
    CREDENTIAL_SUFFIX,
    Device,
    ProvisionError,
    acl_text,
    check_password,
    devices_of,
    hash_password,
    parse_passwd,
    provision,
)
from hall_controller.tls import current_names, ensure_certs, san_entries
from hallq.topics import Topics
from tests.support import HALL_CONFIG, ROOT

TOPICS = Topics(hall="test-hall")


def _config() -> ControllerConfig:
    return config_mod.load(HALL_CONFIG)


def _snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*")) if p.is_file()}


def _rules(acl: str, user: str) -> list[str]:
    lines = acl.splitlines()
    start = lines.index(f"user {user}") + 1
    rules = []
    for line in lines[start:]:
        if not line.startswith("topic "):
            break
        rules.append(line)
    return rules


def test_every_device_of_the_hall_gets_an_account() -> None:
    devices = devices_of(_config(), displays=["display-1"])
    assert [(d.username, d.role) for d in devices] == [
        ("controller", "controller"),
        ("controller.dispenser.d1", "intake"), ("controller.dispenser.d2", "intake"),
        ("controller.dispenser.d3", "intake"), ("controller.counter.1", "intake"), ("controller.counter.2", "intake"),
        ("controller.counter.3", "intake"), ("controller.counter.4", "intake"),
        ("controller.manager.manager", "intake"), ("controller.others", "intake"),
        ("d1", "dispenser"), ("d2", "dispenser"), ("d3", "dispenser"),
        ("counter-1", "counter"), ("counter-2", "counter"), ("counter-3", "counter"), ("counter-4", "counter"),
        ("manager", "manager"), ("display-1", "display"), ("monitor", "monitor"),
    ]


def test_the_manager_writes_only_its_commands_and_reads_its_replies_the_events_and_the_public_topics() -> None:
    acl = acl_text(TOPICS, devices_of(_config(), displays=[]))
    assert _rules(acl, "manager") == [
        "topic write qms/test-hall/manager/manager/command",
        "topic read qms/test-hall/manager/manager/reply",
        "topic read qms/test-hall/events",
        "topic write qms/test-hall/status/manager",
        "topic read qms/test-hall/calls",
        "topic read qms/test-hall/board",
        "topic read qms/test-hall/counter/+/state",
        "topic read qms/test-hall/status/+",
        "topic read qms/test-hall/notice",
    ]


def test_a_device_named_like_one_of_the_controllers_connections_is_refused() -> None:
    with pytest.raises(ProvisionError, match=r"would both use the MQTT username 'controller\.others'"):
        devices_of(_config(), displays=["controller.others"])


def test_the_controllers_receiving_connections_may_only_read_what_they_receive() -> None:
    acl = acl_text(TOPICS, devices_of(_config(), displays=[]))
    assert _rules(acl, "controller.dispenser.d2") == ["topic read qms/test-hall/dispenser/d2/request",
                                                      "topic read qms/test-hall/dispenser/d2/printed"]
    assert _rules(acl, "controller.counter.3") == ["topic read qms/test-hall/counter/3/command"]
    assert _rules(acl, "controller.manager.manager") == ["topic read qms/test-hall/manager/manager/command"]
    others = _rules(acl, "controller.others")
    assert others[:3] == ["topic read qms/test-hall/dispenser/+/request",
                          "topic read qms/test-hall/dispenser/+/printed",
                          "topic read qms/test-hall/counter/+/command"]
    # Every configured device's topics are denied to it: their own connections receive them.
    config = _config()
    denied = {f"topic deny qms/test-hall/dispenser/{d.id}/{kind}" for d in config.hall.dispensers
              for kind in ("request", "printed")}
    denied |= {f"topic deny qms/test-hall/counter/{c.id}/command" for c in config.hall.counters}
    assert set(others[3:]) == denied and len(others[3:]) == len(denied)


def test_the_controllers_connections_share_its_password_and_follow_its_rotation(tmp_path: Path) -> None:
    first = provision(_config(), out=tmp_path, displays=[])
    hashes = parse_passwd((tmp_path / "passwd").read_text(encoding="utf-8"))
    intake = [user for user in hashes if user.startswith("controller.")]
    assert len(intake) == 9 and all(hashes[user] == hashes["controller"] for user in intake)
    files = {p.name for p in (tmp_path / "credentials").iterdir()}
    assert f"controller{CREDENTIAL_SUFFIX}" in files and not any(f"{user}{CREDENTIAL_SUFFIX}" in files for user in intake)
    assert check_password(first.issued["controller"], hashes["controller.others"])
    rotated = provision(_config(), out=tmp_path, displays=[], rotate=["controller"])
    after = parse_passwd((tmp_path / "passwd").read_text(encoding="utf-8"))
    assert all(check_password(rotated.issued["controller"], after[user]) for user in ["controller", *intake])
    with pytest.raises(ProvisionError, match="share its password; rotate the controller's account"):
        provision(_config(), out=tmp_path, displays=[], rotate=["controller.counter.1"])


def test_a_display_named_like_a_dispenser_is_refused() -> None:
    with pytest.raises(ProvisionError, match="both use the MQTT username 'd1'"):
        devices_of(_config(), displays=["d1"])


def test_dispenser_may_write_only_its_own_request_and_printed() -> None:
    acl = acl_text(TOPICS, [Device("d1", "dispenser", "d1")])
    assert _rules(acl, "d1") == [
        "topic write qms/test-hall/dispenser/d1/request",
        "topic write qms/test-hall/dispenser/d1/printed",
        "topic read qms/test-hall/dispenser/d1/ticket",
        "topic write qms/test-hall/status/d1",
        "topic read qms/test-hall/calls",
        "topic read qms/test-hall/board",
        "topic read qms/test-hall/counter/+/state",
        "topic read qms/test-hall/status/+",
        "topic read qms/test-hall/notice",
    ]


def test_counter_account_uses_the_counter_programs_client_id_and_its_counters_topics() -> None:
    acl = acl_text(TOPICS, [Device("counter-7", "counter", "7")])
    assert _rules(acl, "counter-7")[:3] == [
        "topic write qms/test-hall/counter/7/command",
        "topic read qms/test-hall/counter/7/reply",
        "topic write qms/test-hall/status/counter-7",
    ]


def test_display_and_monitor_only_read() -> None:
    acl = acl_text(TOPICS, [Device("display-1", "display", "display-1"), Device("monitor", "monitor", "monitor")])
    assert all(rule.startswith("topic read ") for rule in _rules(acl, "display-1"))
    # The monitor reads the hall but nothing that may carry a citizen's personal data.
    assert _rules(acl, "monitor") == ["topic read qms/test-hall/#", "topic deny qms/test-hall/dispenser/+/request",
                                      "topic deny qms/test-hall/counter/+/reply",
                                      "topic deny qms/test-hall/counter/+/command"]


def test_controller_reads_and_writes_the_whole_hall_and_nothing_else() -> None:
    acl = acl_text(Topics(hall="test-hall", base="site/a"), [Device("controller", "controller", "controller")])
    assert _rules(acl, "controller") == ["topic readwrite site/a/test-hall/#"]


def test_password_hash_is_mosquittos_own_format(tmp_path: Path) -> None:
    ours = hash_password("s3cret", salt=bytes(range(12)))
    assert ours.startswith("$7$1000$") and check_password("s3cret", ours) and not check_password("s3cret!", ours)
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(tmp_path / "pw"), "alice", "wonder"], check=True,
                   capture_output=True)
    theirs = parse_passwd((tmp_path / "pw").read_text(encoding="utf-8"))["alice"]
    assert check_password("wonder", theirs) and not check_password("wander", theirs)


def test_files_have_private_modes_and_credentials_match_the_hashes(tmp_path: Path) -> None:
    result = provision(_config(), out=tmp_path, displays=["display-1"])
    hashes = parse_passwd((tmp_path / "passwd").read_text(encoding="utf-8"))
    assert set(result.added) == set(result.issued) == {user for user in hashes if not user.startswith("controller.")}
    for user, password in result.issued.items():
        path = tmp_path / "credentials" / f"{user}{CREDENTIAL_SUFFIX}"
        assert path.read_text(encoding="utf-8") == password + "\n"
        assert path.stat().st_mode & 0o777 == 0o600
        assert check_password(password, hashes[user])
    assert (tmp_path / "credentials").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "passwd").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "acl").stat().st_mode & 0o777 == 0o640
    assert len({*result.issued.values()}) == len(result.issued)


def test_running_again_changes_nothing(tmp_path: Path) -> None:
    provision(_config(), out=tmp_path, displays=["display-1"])
    before = _snapshot(tmp_path)
    again = provision(_config(), out=tmp_path, displays=["display-1"])
    assert again.issued == {} and again.added == [] and len(again.kept) == 11  # the 9 intake accounts follow
    assert _snapshot(tmp_path) == before


def test_rotating_one_account_changes_only_that_account(tmp_path: Path) -> None:
    provision(_config(), out=tmp_path, displays=[])
    before = parse_passwd((tmp_path / "passwd").read_text(encoding="utf-8"))
    old_d2 = (tmp_path / "credentials" / f"d2{CREDENTIAL_SUFFIX}").read_text(encoding="utf-8")
    result = provision(_config(), out=tmp_path, displays=[], rotate=["d2"])
    after = parse_passwd((tmp_path / "passwd").read_text(encoding="utf-8"))
    assert result.rotated == ["d2"] and list(result.issued) == ["d2"]
    assert {u for u in after if after[u] != before[u]} == {"d2"}
    new_d2 = (tmp_path / "credentials" / f"d2{CREDENTIAL_SUFFIX}").read_text(encoding="utf-8")
    assert new_d2 != old_d2 and check_password(new_d2.strip(), after["d2"])


def test_rotating_an_unknown_account_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    provision(_config(), out=tmp_path, displays=[])
    before = _snapshot(tmp_path)
    with pytest.raises(ProvisionError, match="cannot rotate d9"):
        provision(_config(), out=tmp_path, displays=[], rotate=["d9"])
    assert _snapshot(tmp_path) == before


def test_a_device_removed_from_the_config_loses_its_account(tmp_path: Path) -> None:
    cfg = _config()
    provision(cfg, out=tmp_path, displays=[])
    smaller = replace(cfg, hall=replace(cfg.hall, dispensers=cfg.hall.dispensers[:2]))
    result = provision(smaller, out=tmp_path, displays=[])
    assert result.removed == ["controller.dispenser.d3", "d3"]
    assert "d3" not in parse_passwd((tmp_path / "passwd").read_text(encoding="utf-8"))
    assert "user d3" not in (tmp_path / "acl").read_text(encoding="utf-8")
    assert not (tmp_path / "credentials" / f"d3{CREDENTIAL_SUFFIX}").exists()


def test_local_credential_is_the_controllers_own(tmp_path: Path) -> None:
    result = provision(_config(), out=tmp_path / "broker", displays=[], local_credential=tmp_path / "cred" / "mqtt")
    assert (tmp_path / "cred" / "mqtt").read_text(encoding="utf-8") == result.issued["controller"] + "\n"
    assert (tmp_path / "cred" / "mqtt").stat().st_mode & 0o777 == 0o600


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hall_controller", *args], capture_output=True, text=True,
                          cwd=ROOT, check=False, timeout=60)


def test_cli_provisions_and_reads_displays_next_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "hall.toml").write_text(HALL_CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "displays.toml").write_text('displays = ["screen-a"]\n', encoding="utf-8")
    done = _cli("provision", "--config", str(tmp_path / "hall.toml"), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert f"new credential: {tmp_path / 'out' / 'credentials' / 'screen-a.mqtt-password'}" in done.stdout
    assert "user screen-a" in (tmp_path / "out" / "acl").read_text(encoding="utf-8")


def test_cli_bad_displays_file_exits_78_naming_file_and_key(tmp_path: Path) -> None:
    displays = tmp_path / "displays.toml"
    displays.write_text('displays = ["ok", "not ok"]\n', encoding="utf-8")
    done = _cli("provision", "--config", str(HALL_CONFIG), "--out", str(tmp_path / "out"), "--displays", str(displays))
    assert done.returncode == 78
    assert f"{displays}: displays[#2]: 'not ok' is not a valid id" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


def test_certs_are_kept_on_a_second_run_and_only_the_server_cert_follows_new_names(tmp_path: Path) -> None:
    first = ensure_certs(tmp_path, hall="test-hall", names=["broker.local", "192.168.1.10"])
    ca, server = (tmp_path / "ca.crt").read_bytes(), (tmp_path / "server.crt").read_bytes()
    again = ensure_certs(tmp_path, hall="test-hall", names=["broker.local", "192.168.1.10"])
    assert (first.ca_created, first.server_issued, again.ca_created, again.server_issued) == (True, True, False, False)
    assert (tmp_path / "server.crt").read_bytes() == server
    moved = ensure_certs(tmp_path, hall="test-hall", names=["broker.local", "192.168.1.20", "::1"])
    assert moved.server_issued and not moved.ca_created
    assert (tmp_path / "ca.crt").read_bytes() == ca and (tmp_path / "server.crt").read_bytes() != server
    assert current_names(tmp_path / "server.crt") == set(san_entries(["broker.local", "192.168.1.20", "::1"]))
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "ca.crt"), "-purpose", "sslserver",
                             str(tmp_path / "server.crt")], capture_output=True, text=True, check=False)
    assert verify.returncode == 0, verify.stderr
    assert (tmp_path / "ca.key").stat().st_mode & 0o777 == 0o600
