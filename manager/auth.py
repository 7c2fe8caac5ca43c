"""Login for the manager's web service: local accounts, sessions, roles, CSRF and a login rate limit.

Wiring (in the app's builder)::

    users = Users.load(Path("/var/lib/hallq/manager/users.json"))
    app = web.Application()
    auth.setup(app, users=users, secure_cookies=True)      # the middleware, GET/POST /login, POST /logout
    app.router.add_get("/", auth.require("viewer")(home))   # pages and actions say which role they need

Theory of operation:

* **Accounts** live in the users file (``manager.users``); there is no default account. Roles: ``viewer`` (sees
  the hall) and ``manager`` (also acts on it); ``manager`` implies ``viewer``.
* **Sessions** are server-side, in memory (a restart logs everybody out): ``POST /login`` with the right name and
  password gives a random 256-bit token in the cookie ``hallq_session`` (HttpOnly, SameSite=Strict, Secure when
  ``secure_cookies``). A session ends after ``session_ttl_s`` without a request (each request restarts the
  count), on ``POST /logout``, when its account is removed, or when its password changes. Its role is read from
  the users file on each request, so a changed role applies at once.
* **CSRF**: each session has its own random token; a page puts it in forms (field ``csrf_token``) or scripts send
  it in the header ``X-CSRF-Token``. The middleware refuses every POST/PUT/PATCH/DELETE without it, or whose
  ``Origin`` header (when present) is not this site: 403 ``{"ok": false, "error": {"code": "csrf", ...}}``. Such a
  request without any session is refused with 401 ``login_required``. The login form is protected too, before
  there is a session: ``GET /login`` sets a random cookie ``hallq_login`` and the form carries its HMAC under a
  key that lives only in this process; a login posted from another site has neither.
* **Rate limit**: at most ``login_attempts_per_min`` failed logins in any 60 s per remote address and per user
  name; the next attempt is answered 429 without looking at the password. A success does not clear the count
  (a valid account must not let an address go on guessing others').
* **Logs**: every refused login and every refused request is a WARNING with ``name=``, ``remote=`` and
  ``reason=`` (never a password); a login and a logout are INFO.

``SessionStore`` and ``LoginLimiter`` are pure: they take ``now`` and do no I/O; ``setup`` is the shell that
reads the clock and talks HTTP.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import html
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from hallq.errors import InvariantError
from hallq.logsetup import escape_controls
from manager.users import ROLES, Role, User, Users

__all__ = ["LOGIN_COOKIE", "SESSION_COOKIE", "Handler", "LoginLimiter", "Role", "SessionStore", "User", "Users",
           "csrf_token", "current_user", "require", "setup"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SESSION_COOKIE: Final = "hallq_session"
LOGIN_COOKIE: Final = "hallq_login"
CSRF_HEADER: Final = "X-CSRF-Token"
CSRF_FIELD: Final = "csrf_token"
WINDOW_S: Final = 60.0
LOGIN_COOKIE_MAX_AGE_S: Final = 3600
STATE_CHANGING: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_FORM_TYPES: Final = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
_LOG_NAME_CHARS: Final = 64
# scrypt takes ~16 MiB and tens of ms per check: a burst of logins waits its turn instead of filling the memory.
HASHING_AT_ONCE: Final = 2
_RANK: Final[dict[Role, int]] = {role: rank for rank, role in enumerate(ROLES)}


# --- the pure core -------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Session:
    """One login: whose (``name``; the role is read from the users file each time), the password it was opened
    with (``password_stamp``), its CSRF token, and when it was last used."""

    token: str
    name: str
    password_stamp: bytes
    csrf: str
    last_seen: float


class SessionStore:
    """Sessions by token, each ending ``ttl_s`` after its last use. Pure: the caller passes ``now``."""

    def __init__(self, *, ttl_s: float) -> None:
        if ttl_s <= 0:
            raise ValueError("session_ttl_s must be positive")
        self.ttl_s = ttl_s
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, name: str, *, password_stamp: bytes, now: float) -> Session:
        """A new session for ``name`` with fresh random tokens (256 bits each); forgets the expired ones."""
        for token in [t for t, s in self._sessions.items() if now - s.last_seen > self.ttl_s]:
            del self._sessions[token]
        session = Session(secrets.token_urlsafe(32), name, password_stamp, secrets.token_urlsafe(32), now)
        self._sessions[session.token] = session
        return session

    def find(self, token: str, *, now: float) -> Session | None:
        """The live session with ``token``, now marked as used; None (and forgotten) if it has expired."""
        session = self._sessions.get(token)
        if session is None:
            return None
        if now - session.last_seen > self.ttl_s:
            del self._sessions[token]
            return None
        session.last_seen = now
        return session

    def close(self, token: str) -> None:
        """Forget the session with ``token`` (nothing if there is none)."""
        self._sessions.pop(token, None)


@dataclass(slots=True)
class _Failures:
    times: deque[float] = field(default_factory=deque)


class LoginLimiter:
    """Failed logins in the last ``WINDOW_S`` seconds, per remote address and per user name. Pure: the caller
    passes ``now``. Memory stays bounded: a key is forgotten once its failures are older than the window."""

    def __init__(self, *, per_min: int) -> None:
        if per_min < 1:
            raise ValueError("login_attempts_per_min must be at least 1")
        self.per_min = per_min
        self._failures: dict[tuple[str, str], _Failures] = {}
        self._next_sweep = float("-inf")

    def refused(self, *, remote: str, name: str, now: float) -> str | None:
        """``"address"`` or ``"name"`` if that already had ``per_min`` failures in the window, else None."""
        for kind, key in (("address", remote), ("name", name)):
            if self._recent(kind, key, now) >= self.per_min:
                return kind
        return None

    def failed(self, *, remote: str, name: str, now: float) -> None:
        """Count one failed login from ``remote`` for ``name``."""
        self._sweep(now)
        for kind, key in (("address", remote), ("name", name)):
            failures = self._failures.setdefault((kind, key), _Failures())
            failures.times.append(now)
            while len(failures.times) > self.per_min:
                failures.times.popleft()

    def forgive(self, *, remote: str, name: str, at: float) -> None:
        """Take back the failure counted ``at`` for ``remote`` and ``name`` (the shell counts each attempt as
        failed before checking it, so parallel attempts cannot all slip under the limit, and forgives a success)."""
        for key in (("address", remote), ("name", name)):
            failures = self._failures.get(key)
            if failures is not None and at in failures.times:
                failures.times.remove(at)

    def _recent(self, kind: str, key: str, now: float) -> int:
        failures = self._failures.get((kind, key))
        if failures is None:
            return 0
        while failures.times and now - failures.times[0] >= WINDOW_S:
            failures.times.popleft()
        if not failures.times:
            del self._failures[(kind, key)]
        return len(failures.times)

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + WINDOW_S
        for key, failures in list(self._failures.items()):
            if not failures.times or now - failures.times[-1] >= WINDOW_S:
                del self._failures[key]


def role_allows(held: Role, needed: Role) -> bool:
    """Whether someone with role ``held`` may do what needs ``needed`` (``manager`` implies ``viewer``)."""
    return _RANK[held] >= _RANK[needed]


def local_path(target: str | None) -> str:
    """``target`` if it is a path on this site (``/reports?day=1``), else ``/``: never a redirect elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


# --- the shell: aiohttp ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class _State:
    users: Users
    sessions: SessionStore
    limiter: LoginLimiter
    secure_cookies: bool
    clock: Callable[[], float]
    login_key: bytes
    hashing: asyncio.Semaphore


_STATE: Final = web.AppKey("hallq_manager_auth", _State)


@dataclass(frozen=True, slots=True)
class _Who:
    session: Session | None
    user: User | None


_WHO: Final = web.RequestKey("hallq_manager_who", _Who)


def _who(request: web.Request) -> _Who:
    try:
        return request[_WHO]
    except KeyError:
        raise InvariantError("manager.auth.setup() was not called on this application") from None


def setup(app: web.Application, *, users: Users, secure_cookies: bool, session_ttl_s: float = 8 * 3600,
          clock: Callable[[], float] = time.monotonic, login_attempts_per_min: int = 5) -> None:
    """Install login on ``app``: the middleware (sessions, CSRF) and ``GET /login``, ``POST /login``,
    ``POST /logout``. ``secure_cookies``: mark cookies Secure (true whenever the app is served over HTTPS).
    ``clock``: seconds, monotonic (tests pass their own)."""
    app[_STATE] = _State(users, SessionStore(ttl_s=session_ttl_s), LoginLimiter(per_min=login_attempts_per_min),
                         secure_cookies, clock, secrets.token_bytes(32), asyncio.Semaphore(HASHING_AT_ONCE))
    app.middlewares.append(_middleware)
    app.router.add_get("/login", _login_page)
    app.router.add_post("/login", _login)
    app.router.add_post("/logout", _logout)


def current_user(request: web.Request) -> User | None:
    """Who made ``request``, or None if nobody is logged in (or the session has expired)."""
    return _who(request).user


def csrf_token(request: web.Request) -> str:
    """The CSRF token of ``request``'s session, to put in a form (``csrf_token``) or a page's script (header
    ``X-CSRF-Token``). Only for a request with a session (a handler under ``require``)."""
    session = _who(request).session
    if session is None:
        raise InvariantError("csrf_token() needs a logged-in request: guard the handler with require()")
    return session.csrf


def require(role: Role) -> Callable[[Handler], Handler]:
    """Guard a handler: only users with ``role`` (or higher) reach it. Nobody logged in: a GET asking for HTML
    is redirected (302) to ``/login?next=<this page>``, anything else gets 401 ``login_required``; a user whose
    role is too low gets 403 ``forbidden``."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            user = current_user(request)
            if user is None:
                if request.method in ("GET", "HEAD") and "text/html" in request.headers.get("Accept", ""):
                    target = "/login?" + urlencode({"next": request.rel_url.path_qs})
                    return web.Response(status=302, headers={"Location": target})
                return _error(401, "login_required", "Vui lòng đăng nhập. / Please log in.")
            if not role_allows(user.role, role):
                log.warning("request refused name=%s role=%s needs=%s method=%s path=%s remote=%s reason=forbidden",
                            user.name, user.role, role, request.method, _quote(request.path), request.remote)
                return _error(403, "forbidden", "Tài khoản không có quyền này. / Your account may not do this.")
            return await handler(request)

        return guarded

    return decorate


def _error(status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"ok": False, "error": {"code": code, "message": message}}, status=status,
                             headers=headers)


def _quote(text: str) -> str:
    return escape_controls(text[:_LOG_NAME_CHARS])


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return origin.lower() == f"{request.scheme}://{request.host}".lower()


def _set_cookie(response: web.StreamResponse, state: _State, name: str, value: str, *, path: str,
                max_age: int | None = None) -> None:
    response.set_cookie(name, value, path=path, max_age=max_age, httponly=True, samesite="Strict",
                        secure=state.secure_cookies)


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[_STATE]
    session, user = _resolve(request, state)
    request[_WHO] = _Who(session, user)
    is_login = request.path == "/login" and request.method == "POST"
    if request.method in STATE_CHANGING and not is_login:
        if session is None:
            if request.path == "/logout":
                return await handler(request)  # nothing to end; the handler sends the browser to /login
            return _error(401, "login_required", "Vui lòng đăng nhập. / Please log in.")
        reason = await _csrf_problem(request, session.csrf)
        if reason is not None:
            log.warning("request refused name=%s method=%s path=%s remote=%s reason=csrf detail=%s",
                        session.name, request.method, _quote(request.path), request.remote, reason)
            return _error(403, "csrf", "Yêu cầu bị từ chối (thiếu mã bảo vệ). Hãy tải lại trang. / "
                                       "Request refused (missing or wrong CSRF token). Reload the page.")
    response = await handler(request)
    if session is not None and not response.prepared:
        response.headers.setdefault("Cache-Control", "no-store")  # a logged-in page stays out of caches
    return response


def _resolve(request: web.Request, state: _State) -> tuple[Session | None, User | None]:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None, None
    session = state.sessions.find(token, now=state.clock())
    if session is None:
        return None, None
    user = state.users.get(session.name)
    stamp = state.users.password_stamp(session.name)
    if user is None or stamp is None or not hmac.compare_digest(stamp, session.password_stamp):
        state.sessions.close(token)  # the account was removed or its password changed
        return None, None
    return session, user


async def _csrf_problem(request: web.Request, expected: str) -> str | None:
    if not _same_origin(request):
        return "origin"
    token = request.headers.get(CSRF_HEADER)
    if token is None and request.content_type in _FORM_TYPES:
        value = (await request.post()).get(CSRF_FIELD)
        token = value if isinstance(value, str) else None
    if token is None:
        return "missing_token"
    if not hmac.compare_digest(token.encode("utf-8"), expected.encode("utf-8")):
        return "wrong_token"
    return None


def _login_token(state: _State, nonce: str) -> str:
    return hmac.new(state.login_key, nonce.encode("utf-8"), hashlib.sha256).hexdigest()


def _login_response(request: web.Request, *, status: int = 200, problem: str | None = None,
                    target: str = "/") -> web.Response:
    """The login page with a fresh pre-session token (and its cookie)."""
    state = request.app[_STATE]
    nonce = secrets.token_urlsafe(32)
    body = _LOGIN_PAGE.format(
        problem="" if problem is None else f'<p class="problem" role="alert">{problem}</p>',
        csrf=_login_token(state, nonce), next=html.escape(target, quote=True))
    response = web.Response(status=status, text=body, content_type="text/html", charset="utf-8", headers={
        "Cache-Control": "no-store",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                                   "frame-ancestors 'none'; base-uri 'none'",
        "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin"})
    _set_cookie(response, state, LOGIN_COOKIE, nonce, path="/login", max_age=LOGIN_COOKIE_MAX_AGE_S)
    return response


async def _login_page(request: web.Request) -> web.Response:
    return _login_response(request, target=local_path(request.query.get("next")))


def _field(form: Mapping[str, object], key: str) -> str:
    value = form.get(key)
    return value if isinstance(value, str) else ""


async def _login(request: web.Request) -> web.StreamResponse:
    state = request.app[_STATE]
    remote = request.remote or "-"
    form = await request.post()
    name = _field(form, "name").strip().lower()
    password = _field(form, "password")
    target = local_path(_field(form, "next"))
    logged_name = _quote(name)

    nonce = request.cookies.get(LOGIN_COOKIE, "")
    sent = _field(form, CSRF_FIELD)
    if not _same_origin(request) or not nonce or not hmac.compare_digest(
            sent.encode("utf-8"), _login_token(state, nonce).encode("utf-8")):
        log.warning("login refused name=%s remote=%s reason=csrf", logged_name, remote)
        return _login_response(request, status=403, target=target,
                               problem="Trang đăng nhập đã cũ, vui lòng thử lại. / "
                                       "This login page has expired; please try again.")

    key = name[:_LOG_NAME_CHARS]
    attempt_at = state.clock()
    limit = state.limiter.refused(remote=remote, name=key, now=attempt_at)
    if limit is not None:
        log.warning("login refused name=%s remote=%s reason=rate_limited limit=%s", logged_name, remote, limit)
        return web.Response(status=429, content_type="text/plain", charset="utf-8",
                            headers={"Retry-After": str(int(WINDOW_S))},
                            text="Đăng nhập sai quá nhiều lần. Vui lòng thử lại sau một phút.\n"
                                 "Too many failed logins. Please try again in a minute.\n")

    # Counted as failed until proven right: no await between the check above and this, so a burst of parallel
    # attempts cannot all pass the check before the first of them fails.
    state.limiter.failed(remote=remote, name=key, now=attempt_at)
    async with state.hashing:
        user = await asyncio.get_running_loop().run_in_executor(None, state.users.verify, name, password)
    if user is None:
        reason = "unknown_user" if state.users.get(name) is None else "wrong_password"
        log.warning("login refused name=%s remote=%s reason=%s", logged_name, remote, reason)
        return _login_response(request, status=401, target=target,
                               problem="Sai tên đăng nhập hoặc mật khẩu. / Wrong name or password.")

    state.limiter.forgive(remote=remote, name=key, at=attempt_at)
    stamp = state.users.password_stamp(user.name)
    if stamp is None:  # removed between verify and now
        return _login_response(request, status=401, target=target,
                               problem="Sai tên đăng nhập hoặc mật khẩu. / Wrong name or password.")
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        state.sessions.close(old)
    session = state.sessions.open(user.name, password_stamp=stamp, now=state.clock())
    log.info("login name=%s role=%s remote=%s", user.name, user.role, remote)
    response = web.Response(status=303, headers={"Location": target, "Cache-Control": "no-store"})
    _set_cookie(response, state, SESSION_COOKIE, session.token, path="/")
    response.del_cookie(LOGIN_COOKIE, path="/login")
    return response


async def _logout(request: web.Request) -> web.StreamResponse:
    state = request.app[_STATE]
    session = _who(request).session
    if session is not None:
        state.sessions.close(session.token)
        log.info("logout name=%s remote=%s", session.name, request.remote)
    response = web.Response(status=303, headers={"Location": "/login", "Cache-Control": "no-store"})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


_LOGIN_PAGE: Final = """<!doctype html>
<html lang="vi">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Đăng nhập · Log in — hallq</title>
<style>
  body {{ font-family: system-ui, sans-serif; background: #f3f5f7; margin: 0; color: #1d2733; }}
  main {{ max-width: 22rem; margin: 12vh auto; background: #fff; padding: 2rem; border-radius: 8px;
         box-shadow: 0 1px 4px rgba(0, 0, 0, .15); }}
  h1 {{ font-size: 1.4rem; margin: 0 0 1.5rem; }}
  h1 small, label small {{ display: block; font-weight: normal; color: #5b6875; font-size: .8em; }}
  label {{ display: block; margin: 0 0 1rem; font-weight: 600; }}
  input[type=text], input[type=password] {{ box-sizing: border-box; width: 100%; padding: .5rem;
         font-size: 1rem; margin-top: .3rem; border: 1px solid #9aa5b1; border-radius: 4px; }}
  button {{ width: 100%; padding: .6rem; font-size: 1rem; background: #0b5cad; color: #fff; border: 0;
           border-radius: 4px; cursor: pointer; }}
  .problem {{ background: #fdecea; color: #8a1c12; padding: .6rem; border-radius: 4px; }}
</style>
</head>
<body>
<main>
<h1>Đăng nhập quản lý sảnh<small>Hall manager — log in</small></h1>
{problem}
<form method="post" action="/login">
<input type="hidden" name="csrf_token" value="{csrf}">
<input type="hidden" name="next" value="{next}">
<label>Tên đăng nhập <small>Name</small>
<input type="text" name="name" autocomplete="username" autocapitalize="none" spellcheck="false" required autofocus>
</label>
<label>Mật khẩu <small>Password</small>
<input type="password" name="password" autocomplete="current-password" required>
</label>
<button type="submit">Đăng nhập · Log in</button>
</form>
</main>
</body>
</html>
"""
