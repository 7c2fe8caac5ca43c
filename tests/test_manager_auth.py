"""The manager's login: the users file, sessions, roles, CSRF, the login rate limit and the ``users`` command.

The web tests run a real aiohttp server on a free loopback port (``aiohttp.test_utils``) with the clock
injected, so expiry and the rate limit's window are crossed by moving the clock, never by sleeping.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import os
import re
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from hallq.errors import ConfigError, InvariantError
from manager import auth
from manager.cli import main
from manager.users import PasswordHash, User, UserError, Users

LAN_PASSWORD = "mật-khẩu-của-Lan"
MINH_PASSWORD = "minh-password-1"
TTL_S = 600.0


class Clock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def users_file(tmp_path: Path) -> Path:
    return tmp_path / "manager" / "users.json"


@pytest.fixture
def users(users_file: Path) -> Users:
    users = Users.load(users_file)
    users.add("lan", LAN_PASSWORD, "manager")
    users.add("minh", MINH_PASSWORD, "viewer")
    return users


# --- the users file --------------------------------------------------------------------------------------------


def test_hash_matches_only_its_password() -> None:
    made = PasswordHash.make("correct horse battery")
    assert made.matches("correct horse battery")
    assert not made.matches("correct horse batterY")
    assert len(made.salt) == 16
    assert made.salt != PasswordHash.make("correct horse battery").salt


def test_password_is_compared_after_unicode_normalisation() -> None:
    composed = "m\u1eadt kh\u1ea9u d\u00e0i"  # precomposed letters
    decomposed = "ma\u0323\u0302t kha\u0302\u0309u da\u0300i"  # the same text, combining marks
    assert PasswordHash.make(composed).matches(decomposed)


def test_users_file_stores_scrypt_parameters_beside_each_hash(users: Users, users_file: Path) -> None:
    document = json.loads(users_file.read_text(encoding="utf-8"))
    stored = document["users"]["lan"]["password"]
    assert document["version"] == 1
    assert (stored["scheme"], stored["n"], stored["r"], stored["p"]) == ("scrypt", 2**14, 8, 1)
    assert LAN_PASSWORD not in users_file.read_text(encoding="utf-8")


def test_a_hash_made_with_other_parameters_still_verifies(users: Users, users_file: Path) -> None:
    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(b"old-password-1", salt=salt, n=2**10, r=4, p=1, dklen=32)
    document = json.loads(users_file.read_text(encoding="utf-8"))
    document["users"]["old"] = {"role": "viewer", "password": PasswordHash(2**10, 4, 1, salt, digest).to_json()}
    users_file.write_text(json.dumps(document), encoding="utf-8")
    assert Users.load(users_file).verify("old", "old-password-1") == User("old", "viewer")


def test_users_file_is_private_and_replaced_whole(users: Users, users_file: Path) -> None:
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    before = users_file.stat().st_ino
    users.add("thu", "thu-password-1", "viewer")
    assert users_file.stat().st_ino != before  # a new file renamed over the old one, not rewritten in place
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    assert [p.name for p in users_file.parent.iterdir()] == ["users.json"]  # no temporary file left


def test_missing_file_means_no_users_and_no_default_account(tmp_path: Path) -> None:
    users = Users.load(tmp_path / "none.json")
    assert users.list() == []
    for name, password in (("admin", "admin"), ("admin", "password"), ("manager", "manager"), ("root", "")):
        assert users.verify(name, password) is None
    assert not (tmp_path / "none.json").exists()


@pytest.mark.parametrize("content", ["{", "[]", '{"version": 2, "users": {}}', '{"version": 1}',
                                     '{"version": 1, "users": {"lan": {"role": "boss", "password": {}}}}',
                                     '{"version": 1, "users": {}, "extra": 1}'])
def test_damaged_file_is_a_config_error_naming_it(tmp_path: Path, content: str) -> None:
    path = tmp_path / "users.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        Users.load(path)


def test_add_refuses_an_existing_name_unless_replacing(users: Users) -> None:
    with pytest.raises(UserError) as refused:
        users.add("lan", "another-password", "viewer")
    assert refused.value.code == "exists"
    assert users.verify("lan", LAN_PASSWORD) == User("lan", "manager")
    users.add("lan", "another-password", "viewer", replace=True)
    assert users.verify("lan", "another-password") == User("lan", "viewer")
    assert users.verify("lan", LAN_PASSWORD) is None


@pytest.mark.parametrize(("name", "password", "code"), [
    ("", "long-enough-1", "bad_name"), ("Lan", "long-enough-1", "bad_name"), ("a" * 33, "long-enough-1", "bad_name"),
    ("lan van", "long-enough-1", "bad_name"), ("thu", "short", "short_password"), ("thu", "123456789", "short_password"),
])
def test_add_refuses_bad_names_and_short_passwords(users: Users, name: str, password: str, code: str) -> None:
    with pytest.raises(UserError) as refused:
        users.add(name, password, "viewer")
    assert refused.value.code == code


def test_verify_tells_right_from_wrong_and_unknown(users: Users) -> None:
    assert users.verify("lan", LAN_PASSWORD) == User("lan", "manager")
    assert users.verify("lan", MINH_PASSWORD) is None
    assert users.verify("nobody", LAN_PASSWORD) is None
    assert users.list() == [User("lan", "manager"), User("minh", "viewer")]


def test_verify_takes_about_as_long_for_an_unknown_name(users: Users) -> None:
    def median_s(name: str) -> float:
        samples = []
        for _ in range(5):
            start = time.perf_counter()
            users.verify(name, "wrong-password")
            samples.append(time.perf_counter() - start)
        return sorted(samples)[2]

    known, unknown = median_s("lan"), median_s("nobody")
    assert 0.5 < unknown / known < 2.0


def test_remove_deletes_the_account(users: Users, users_file: Path) -> None:
    users.remove("minh")
    assert Users.load(users_file).list() == [User("lan", "manager")]
    with pytest.raises(UserError) as refused:
        users.remove("minh")
    assert refused.value.code == "unknown_user"


def test_a_loaded_users_object_sees_changes_made_by_another(users: Users, users_file: Path) -> None:
    Users.load(users_file).add("thu", "thu-password-1", "viewer")
    assert users.verify("thu", "thu-password-1") == User("thu", "viewer")


def test_a_file_damaged_while_running_lets_nobody_in(users: Users, users_file: Path) -> None:
    users_file.write_text("{", encoding="utf-8")
    assert users.verify("lan", LAN_PASSWORD) is None
    assert users.reload_error is not None


# --- the pure parts of the web side ----------------------------------------------------------------------------


def test_limiter_counts_failures_per_name_across_addresses() -> None:
    limiter = auth.LoginLimiter(per_min=3)
    for i in range(3):
        assert limiter.refused(remote=f"10.0.0.{i}", name="lan", now=0.0) is None
        limiter.failed(remote=f"10.0.0.{i}", name="lan", now=float(i))
    assert limiter.refused(remote="10.0.0.9", name="lan", now=10.0) == "name"
    assert limiter.refused(remote="10.0.0.9", name="minh", now=10.0) is None
    assert limiter.refused(remote="10.0.0.9", name="lan", now=60.5) is None


def test_limiter_counts_failures_per_address_across_names() -> None:
    limiter = auth.LoginLimiter(per_min=2)
    limiter.failed(remote="10.0.0.1", name="a", now=0.0)
    limiter.failed(remote="10.0.0.1", name="b", now=1.0)
    assert limiter.refused(remote="10.0.0.1", name="c", now=2.0) == "address"
    assert limiter.refused(remote="10.0.0.2", name="c", now=2.0) is None


def test_limiter_forgives_an_attempt_that_succeeded() -> None:
    limiter = auth.LoginLimiter(per_min=1)
    limiter.failed(remote="10.0.0.1", name="lan", now=5.0)
    limiter.forgive(remote="10.0.0.1", name="lan", at=5.0)
    assert limiter.refused(remote="10.0.0.1", name="lan", now=6.0) is None


def test_sessions_expire_after_inactivity_and_slide_with_use() -> None:
    store = auth.SessionStore(ttl_s=100.0)
    session = store.open("lan", password_stamp=b"s", now=0.0)
    assert len(session.token) >= 43  # 32 random bytes, base64
    assert store.find(session.token, now=90.0) is session
    assert store.find(session.token, now=180.0) is session
    assert store.find(session.token, now=281.0) is None
    assert store.find(session.token, now=281.0) is None
    assert len(store) == 0


@pytest.mark.parametrize(("target", "expected"), [
    ("/reports?day=2026-12-04", "/reports?day=2026-12-04"), (None, "/"), ("", "/"), ("//evil.example/x", "/"),
    ("https://evil.example/", "/"), ("/\\evil.example", "/"), ("reports", "/"), ("/a\r\nSet-Cookie: x", "/"),
])
def test_login_redirects_only_to_local_paths(target: str | None, expected: str) -> None:
    assert auth.local_path(target) == expected


def test_manager_implies_viewer() -> None:
    assert auth.role_allows("manager", "viewer")
    assert auth.role_allows("manager", "manager")
    assert auth.role_allows("viewer", "viewer")
    assert not auth.role_allows("viewer", "manager")


# --- the web side, over HTTP -----------------------------------------------------------------------------------


class Hall:
    """A tiny app under login: a page for viewers, an action for managers, counting the actions taken."""

    def __init__(self, users: Users, *, clock: Clock, secure_cookies: bool = False) -> None:
        self.actions = 0
        self.app = web.Application()
        auth.setup(self.app, users=users, secure_cookies=secure_cookies, session_ttl_s=TTL_S, clock=clock)
        self.app.router.add_get("/", auth.require("viewer")(self.home))
        self.app.router.add_get("/board", auth.require("viewer")(self.board))
        self.app.router.add_post("/act", auth.require("manager")(self.act))

    async def home(self, request: web.Request) -> web.Response:
        user = auth.current_user(request)
        assert user is not None
        return web.Response(text=f"{user.name} {user.role} {auth.csrf_token(request)}")

    async def board(self, _request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def act(self, _request: web.Request) -> web.Response:
        self.actions += 1
        return web.json_response({"ok": True})


def serve(app: web.Application, scenario: Callable[[TestClient[web.Request, web.Application]], Awaitable[None]]) -> None:
    async def run() -> None:
        async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
            await scenario(client)

    asyncio.run(run())


async def login(client: TestClient[web.Request, web.Application], name: str, password: str, *,
                next_path: str | None = None) -> ClientResponse:
    page = await client.get("/login")
    found = re.search(r'name="csrf_token" value="([^"]+)"', await page.text())
    assert found is not None
    form = {"csrf_token": found.group(1), "name": name, "password": password}
    if next_path is not None:
        form["next"] = next_path
    return await client.post("/login", data=form, allow_redirects=False)


async def token_of(client: TestClient[web.Request, web.Application]) -> str:
    response = await client.get("/")
    assert response.status == 200
    return (await response.text()).split()[2]


def test_login_page_is_vietnamese_first_and_fetches_nothing(users: Users) -> None:
    async def scenario(client: TestClient[web.Request, web.Application]) -> None:
        response = await client.get("/login")
        page = await response.text()
        assert response.status == 200
        assert page.index("Đăng nhập") < page.index("Log in")
        assert "http://" not in page and "https://" not in page and "<script" not in page

    serve(Hall(users, clock=Clock()).app, scenario)


def test_right_password_opens_a_session_and_goes_to_next(users: Users) -> None:
    async def scenario(client: TestClient[web.Request, web.Application]) -> None:
        response = await login(client, "lan", LAN_PASSWORD, next_path="/board?day=1")
        assert response.status == 303
        assert response.headers["Location"] == "/board?day=1"
        cookie = response.cookies[auth.SESSION_COOKIE]
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and not cookie["secure"]
        assert len(cookie.value) >= 43
        assert (await (await client.get("/")).text()).startswith("lan manager ")

    serve(Hall(users, clock=Clock()).app, scenario)


def test_secure_cookies_mark_the_session_cookie_secure(users: Users) -> None:
    async def scenario(client: TestClient[web.Request, web.Application]) -> None:
        page = await client.get("/login")
        assert "Secure" in page.headers["Set-Cookie"]
        found = re.search(r'name="csrf_token" value="([^"]+)"', await page.text())
        assert found is not None
        # the client keeps no Secure cookie over plain HTTP, so send the login cookie by hand
        response = await client.post("/login", allow_redirects=False,
                                      data={"csrf_token": found.group(1), "name": "lan", "password": LAN_PASSWORD},
                                      headers={"Cookie": f"{auth.LOGIN_COOKIE}={page.cookies[auth.LOGIN_COOKIE].value}"})
        assert response.status == 303
        assert response.cookies[auth.SESSION_COOKIE]["secure"]

    serve(Hall(users, clock=Clock(), secure_cookies=True).app, scenario)


def test_wrong_password_and_unknown_name_are_refused_alike_and_logged(
        users: Users, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(client: TestClient[web.Request, web.Application]) -> None:
        wrong = await login(client, "lan", "wrong-password-1")
        unknown = await login(client, "nobody", "wrong-password-2")
        assert wrong.status == unknown.status == 401
        assert "Sai tên đăng nhập hoặc mật khẩu" in await wrong.text()
        assert "Sai tên đăng nhập hoặc mật khẩu" in await unknown.text()
        assert auth.SESSION_COOKIE not in wrong.cookies
        assert (await client.get("/board")).status == 401

    with caplog.at_level(logging.WARNING, logger="manager.auth"):
        serve(Hall(users, clock=Clock()).app, scenario)
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("name=lan" in m and "reason=wrong_password" in m and "remote=127.0.0.1" in m for m in messages)
    assert any("name=nobody" in m and "reason=unknown_user" in m for m in messages)
    assert not any("wrong-password" in m for m in messages)


def test_sixth_failure_in_a_minute_is_refused_without_checking_the_password(
        users: Users, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()

    async def scenario(client: TestClient[web.Request, web.Application]) -> None:
        for _ in range(5):
            assert (await login(client, "lan", "wrong-password-1")).status == 401
            clock.now += 5
        refused = await login(client, "lan", LAN_PASSWORD)  # the right password, but not even looked at
        assert refused.status == 429
        assert refused.content_type == "text/plain"
        assert "Too many failed logins" in await refused.text()
        assert auth.SESSION_COOKIE not in refused.cookies
        clock.now += 60
        assert (await login(client, "lan", LAN_PASSWORD)).status == 303

    with caplog.at_level(logging.WARNING, logger="manager.auth"):
        serve(Hall(users, clock=clock).app, scenario)
    assert any("reason=rate_limited" in r.getMessage() for r in caplog.records)


def test_a_burst_of_parallel_guesses_gets_no_more_than_the_limit(users: Users) -> None:
    async def scenario(client: TestClient[web.Request, web.Application]) -> None:
        page = await client.get("/login")
        found = re.search(r'name="csrf_token" value="([^"]+)"', await page.text())
        assert found is not None
        form = {"csrf_token": found.group(1), "name": "lan"}
        answers = await asyncio.gather(*(client.post("/login", data={**form, "password": f"guess-number-{i}"})
                                         for i in range(12)))
        assert sorted(a.status for a in answers) == [401] * 5 + [429] * 7

    serve(Hall(users, clock=Clock()).app, scenario)


def test_nobody_logged_in_is_sent_to_login_or_told_to_log_in(users: Users) -> None:
    async def scenario(client: TestClient[web.Request, web.Application]) -> None:
        page = await client.get("/board?day=1", headers={"Accept": "text/html,*/*"}, allow_redirects=False)
        assert page.status == 302
        assert page.headers["Location"] == "/login?next=%2Fboard%3Fday%3D1"
        data = await client.get("/board", headers={"Accept": "application/json"})
        assert data.status == 401
        assert (await data.json())["error"]["code"] == "login_required"
        action = await client.post("/act", headers={"X-CSRF-Token": "x"})
        assert action.status == 401
        assert (await action.json()) == {"ok": False, "error": {"code": "login_required",
                                                                "message": "Vui lòng đăng nhập. / Please log in."}}

    hall = Hall(users, clock=Clock())
    serve(hall.app, scenario)
    assert hall.actions == 0


def test_a_viewer_cannot_act_on_a_manager_route(users: Users) -> None:
    async def scenario(client: TestClient[web.Request, web.Application]) -> None:
        assert (await login(client, "minh", MINH_PASSWORD)).status == 303
        token = await token_of(client)
        response = await client.post("/act", headers={"X-CSRF-Token": token})
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "forbidden"

    hall = Hall(users, clock=Clock())
    serve(hall.app, scenario)
    assert hall.actions == 0


def test_a_manager_acts_with_the_token_in_a_header_or_a_form_field(users: Users) -> None:
    async def scenario(client: TestClient[web.Request, web.Application]) -> None:
        assert (await login(client, "lan", LAN_PASSWORD)).status == 303
        token = await token_of(client)
        assert (await client.post("/act", headers={"X-CSRF-Token": token})).status == 200
        assert (await client.post("/act", data={"csrf_token": token})).status == 200
        origin = str(client.make_url("/")).rstrip("/")
        assert (await client.post("/act", data={"csrf_token": token}, headers={"Origin": origin})).status == 200

    hall = Hall(users, clock=Clock())
    serve(hall.app, scenario)
    assert hall.actions == 3


def test_an_expired_session_cannot_act(users: Users) -> None:
    clock = Clock()

    async def scenario(client: TestClient[web.Request, web.Application]) -> None:
        assert (await login(client, "lan", LAN_PASSWORD)).status == 303
        token = await token_of(client)
        clock.now += TTL_S - 1
        assert (await client.get("/board")).status == 200  # a request restarts the count
        clock.now += TTL_S - 1
        assert (await client.get("/board")).status == 200
        clock.now += TTL_S + 1
        response = await client.post("/act", headers={"X-CSRF-Token": token})
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "login_required"
        assert (await client.get("/", headers={"Accept": "text/html"}, allow_redirects=False)).status == 302

    hall = Hall(users, clock=clock)
    serve(hall.app, scenario)
    assert hall.actions == 0


def test_a_forged_post_changes_nothing(users: Users, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(client: TestClient[web.Request, web.Application]) -> None:
        assert (await login(client, "lan", LAN_PASSWORD)).status == 303
        token = await token_of(client)
        for kwargs in ({}, {"headers": {"X-CSRF-Token": "guess"}}, {"data": {"csrf_token": "guess"}},
                       {"data": {"csrf_token": token}, "headers": {"Origin": "https://evil.example"}},
                       {"headers": {"X-CSRF-Token": token, "Origin": "null"}}):
            response = await client.post("/act", **kwargs)  # type: ignore[arg-type]
            assert response.status == 403
            assert (await response.json())["error"]["code"] == "csrf"

    hall = Hall(users, clock=Clock())
    with caplog.at_level(logging.WARNING, logger="manager.auth"):
        serve(hall.app, scenario)
    assert hall.actions == 0
    refusals = [r.getMessage() for r in caplog.records if "reason=csrf" in r.getMessage()]
    assert len(refusals) == 5
    assert any("detail=origin" in m for m in refusals)


def test_a_login_posted_without_the_login_page_token_is_refused(users: Users, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(client: TestClient[web.Request, web.Application]) -> None:
        forged = await client.post("/login", data={"name": "lan", "password": LAN_PASSWORD}, allow_redirects=False)
        assert forged.status == 403
        assert auth.SESSION_COOKIE not in forged.cookies
        page = await client.get("/login")
        found = re.search(r'name="csrf_token" value="([^"]+)"', await page.text())
        assert found is not None
        cross_site = await client.post("/login", allow_redirects=False, headers={"Origin": "https://evil.example"},
                                       data={"csrf_token": found.group(1), "name": "lan", "password": LAN_PASSWORD})
        assert cross_site.status == 403
        assert (await client.get("/board")).status == 401

    with caplog.at_level(logging.WARNING, logger="manager.auth"):
        serve(Hall(users, clock=Clock()).app, scenario)
    assert sum("login refused" in r.getMessage() and "reason=csrf" in r.getMessage() for r in caplog.records) == 2


def test_logout_forgets_the_session(users: Users) -> None:
    async def scenario(client: TestClient[web.Request, web.Application]) -> None:
        response = await login(client, "lan", LAN_PASSWORD)
        session = response.cookies[auth.SESSION_COOKIE].value
        token = await token_of(client)
        refused = await client.post("/logout", allow_redirects=False)  # without the token: a forged logout
        assert refused.status == 403
        out = await client.post("/logout", headers={"X-CSRF-Token": token}, allow_redirects=False)
        assert out.status == 303
        assert out.headers["Location"] == "/login"
        client.session.cookie_jar.clear()
        replayed = await client.post("/act", headers={"X-CSRF-Token": token,
                                                      "Cookie": f"{auth.SESSION_COOKIE}={session}"})
        assert replayed.status == 401

    hall = Hall(users, clock=Clock())
    serve(hall.app, scenario)
    assert hall.actions == 0


def test_a_removed_account_or_a_new_password_ends_its_sessions(users: Users, users_file: Path) -> None:
    async def scenario(client: TestClient[web.Request, web.Application]) -> None:
        assert (await login(client, "lan", LAN_PASSWORD)).status == 303
        assert (await client.get("/board")).status == 200
        Users.load(users_file).add("lan", "a-new-password", "manager", replace=True)
        assert (await client.get("/board")).status == 401
        assert (await login(client, "minh", MINH_PASSWORD)).status == 303
        Users.load(users_file).remove("minh")
        assert (await client.get("/board")).status == 401

    serve(Hall(users, clock=Clock()).app, scenario)


def test_current_user_needs_setup() -> None:
    async def scenario(client: TestClient[web.Request, web.Application]) -> None:
        assert (await client.get("/")).status == 500

    app = web.Application()

    async def page(request: web.Request) -> web.Response:
        with pytest.raises(InvariantError):
            auth.current_user(request)
        raise web.HTTPInternalServerError

    app.router.add_get("/", page)
    serve(app, scenario)


# --- hallq-manager users -----------------------------------------------------------------------------------------


def run_cli(monkeypatch: pytest.MonkeyPatch, args: list[str], stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(args)


def test_users_command_adds_lists_changes_and_removes(users_file: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    where = ["--users", str(users_file)]
    assert run_cli(monkeypatch, ["users", "add", "lan", "--role", "manager", *where, "--password-stdin"],
                   "first-password\n") == 0
    assert run_cli(monkeypatch, ["users", "add", "minh", "--role", "viewer", *where, "--password-stdin"],
                   "minh-password\n") == 0
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    capsys.readouterr()
    assert run_cli(monkeypatch, ["users", "list", *where]) == 0
    assert capsys.readouterr().out == "lan\tmanager\nminh\tviewer\n"
    assert run_cli(monkeypatch, ["users", "passwd", "lan", *where, "--password-stdin"], "second-password\n") == 0
    assert Users.load(users_file).verify("lan", "second-password") == User("lan", "manager")
    assert Users.load(users_file).verify("lan", "first-password") is None
    assert run_cli(monkeypatch, ["users", "remove", "minh", *where]) == 0
    assert Users.load(users_file).list() == [User("lan", "manager")]


@pytest.mark.parametrize(("args", "stdin", "said"), [
    (["users", "add", "lan", "--role", "manager", "--password-stdin"], "other-password\n", "already exists"),
    (["users", "add", "thu", "--role", "viewer", "--password-stdin"], "short\n", "at least 10 characters"),
    (["users", "add", "thu", "--role", "viewer", "--password-stdin"], "", "at least 10 characters"),
    (["users", "add", "Thu Le", "--role", "viewer", "--password-stdin"], "long-enough-1\n", "not a valid user name"),
    (["users", "add", "thu", "--role", "viewer"], "long-enough-1\n", "--password-stdin"),
    (["users", "remove", "nobody"], "", "there is no user 'nobody'"),
    (["users", "passwd", "nobody", "--password-stdin"], "long-enough-1\n", "there is no user 'nobody'"),
])
def test_users_command_refuses_with_one_line_and_status_2(
        users: Users, users_file: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        args: list[str], stdin: str, said: str) -> None:
    before = users_file.read_bytes()
    with caplog.at_level(logging.ERROR):
        assert run_cli(monkeypatch, [*args, "--users", str(users_file)], stdin) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and said in errors[0] and "\n" not in errors[0]
    assert users_file.read_bytes() == before


@pytest.mark.parametrize("args", [["users"], ["users", "add", "thu"], ["users", "add", "thu", "--role", "boss"],
                                  ["users", "add", "thu", "--role", "viewer", "--password", "x"]])
def test_users_command_bad_usage_exits_2(args: list[str], users_file: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*args, "--users", str(users_file)])
    assert exited.value.code == 2


def test_users_command_names_a_damaged_file(users_file: Path, monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    users_file.parent.mkdir(parents=True)
    users_file.write_text("{", encoding="utf-8")
    assert run_cli(monkeypatch, ["users", "list", "--users", str(users_file)]) == 78
    assert str(users_file) in caplog.text


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file to another user")
def test_a_users_file_written_by_root_belongs_to_the_owner_of_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "manager"
    folder.mkdir()
    os.chown(folder, 65534, 65534)  # nobody: as /var/lib/hallq/manager belongs to hallq
    users = Users.load(folder / "users.json")
    users.add("lan", "mật khẩu đủ dài", "manager")
    info = (folder / "users.json").stat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (65534, 65534, 0o600)
