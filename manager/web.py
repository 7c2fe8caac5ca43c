"""The manager's web side (aiohttp): the live page, the reports, the actions' JSON API, Server-Sent Events.

Routes (every one behind login, ``manager.auth``; ``viewer`` sees, ``manager`` also acts):

    GET  /                          the live view (``?lang=en`` for English; the page also has a toggle)
    GET  /api/session               JSON: who is logged in, their role, the CSRF token for the page's script
    GET  /api/live                  JSON: the live view now (``manager.live.LiveModel.view``)
    GET  /events                    Server-Sent Events: ``live`` (the whole view), at once on connect, after every
                                    change and every second
    GET  /reports                   the reports form; with a query, the report inline
    GET  /reports/report.html       the printable report of the query (``manager.render.render_html``)
    GET  /reports/export.csv        the same as CSV, and /reports/export.xlsx as XLSX
    POST /api/counter/{id}/open     (and /pause, /close)                      manager role
    POST /api/ticket/{number}/void                                              manager role
    POST /api/ticket/{number}/transfer  {"service": "B"}                        manager role
    POST /api/day/end                                                           manager role
    POST /api/notice  {"text_vi": "...", "text_en": "..."}, POST /api/notice/clear   manager role
    GET  /audit                     the audit of citizens' profiles shown or changed (no personal data)  manager role
    GET  /healthz                   JSON: broker, board, ledger (no login: for monitoring from this machine)
    GET  /static/...                the page's CSS and JavaScript (no login: nothing in them is the hall's)
    /t/...                          the tickets' status pages on citizens' phones (no login: ``manager.phone_web``)

Every POST carries the session's CSRF token (header ``X-CSRF-Token``; ``manager.auth`` refuses it otherwise).
An action answers ``{"ok": true}`` once the controller stored it, or ``{"ok": false, "error": {"code", "label",
"message"}}``: ``label`` is ``hallq.labels.error_label(code)``, the plain words for the refusal. Each action is
logged at INFO with the user, the action, its target and the outcome.

Report queries: ``period`` = ``day`` (``day=YYYY-MM-DD``), ``week`` (``week=YYYY-Www``), ``month``
(``month=YYYY-MM``) or ``range`` (``from``, ``to``); filters ``service``, ``counter``, ``lane``, ``category``;
``lang`` vi or en. Reports are built in a worker thread (a year takes a while); the page stays live meanwhile.
"""

from __future__ import annotations

import asyncio
import functools
import html
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web

from hall_controller import audit
from hall_controller.engine.spec import HallSpec
from hallq import webstream, wire
from hallq.errors import InvariantError, ProfileError
from hallq.labels import error_label
from hallq.limits import MAX_NOTICE_LEN, MAX_NUMBER_LEN, has_control, is_token
from hallq.logsetup import escape_controls
from hallq.sse import Hub, sse
from manager import auth, budget, journal, reports
from manager import cache as report_cache
from manager.phone_web import PhonePages
from manager.render import render_csv, render_html, render_xlsx
from manager.users import Users

log = logging.getLogger(__name__)

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
KEEPALIVE_S: Final = 15.0
CLIENT_BACKLOG: Final = 50
PAGE_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-src 'self'; "
                               "frame-ancestors 'self'; base-uri 'none'; form-action 'self'",
    "X-Frame-Options": "SAMEORIGIN", "Referrer-Policy": "same-origin", "X-Content-Type-Options": "nosniff",
}
# The rendered report is a page of its own (inline styles, inline SVG, no script).
REPORT_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                               "frame-ancestors 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
}
# Words for refusals the manager itself makes (the controller's codes have theirs in hallq.labels).
OWN_LABELS: Final = {
    "timeout": "Bộ điều khiển không trả lời (no answer from the controller)",
    "broker_unavailable": "Mất kết nối với hệ thống (not connected to the hall's broker)",
}
COUNTER_ACTIONS: Final = {"open": "open_counter", "pause": "pause_counter", "close": "close_counter"}


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """What became of an action: ``ok``, or a refusal's ``code`` and ``message`` (the controller's or ours)."""

    ok: bool
    code: str | None = None
    message: str = ""

    @staticmethod
    def failed(code: str, message: str) -> ActionOutcome:
        return ActionOutcome(ok=False, code=code, message=message)

    def to_obj(self) -> dict[str, Any]:
        if self.ok:
            return {"ok": True, "error": None}
        code = self.code or "error"
        return {"ok": False, "error": {"code": code, "label": OWN_LABELS.get(code) or error_label(code),
                                       "message": self.message}}




class BadRequest(Exception):
    """A request the API refuses before anything is sent (400, code ``bad_request``)."""


def _json_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response(ActionOutcome.failed(code, message).to_obj(), status=status)


def make_app(*, spec: HallSpec, users: Users, secure_cookies: bool, view: Callable[[], dict[str, Any]],
             act: Callable[[wire.ManagerCommand], Awaitable[ActionOutcome]], hub: Hub, ledger: Path,
             health: Callable[[], dict[str, Any]], now: Callable[[], datetime],
             cache_dir: Path | None = None, report_cpu_share: float = budget.DEFAULT_CPU_SHARE,
             phones: PhonePages | None = None) -> web.Application:
    """The aiohttp application. ``view()`` is the live view now; ``act(command)`` sends an action and waits for
    its outcome; ``ledger`` is read for reports, through the closed days' cache in ``cache_dir`` (None: no
    cache); ``now()`` the hall's wall clock. Reports are made on threads of their own at the lowest CPU
    priority, each within ``report_cpu_share`` of one core (``manager.budget``). ``phones``: the tickets' status
    pages, served too (without login)."""
    app = web.Application(client_max_size=64 * 1024)
    report_threads = budget.report_executor(workers=REPORT_THREADS)
    memo = report_cache.ReportMemo()

    async def stop_report_threads(_app: web.Application) -> None:
        report_threads.shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(stop_report_threads)
    auth.setup(app, users=users, secure_cookies=secure_cookies)
    viewer, manager = auth.require("viewer"), auth.require("manager")

    async def live_page(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)

    async def session(request: web.Request) -> web.Response:
        user = auth.current_user(request)
        if user is None:  # pragma: no cover - require() lets no one through without a session
            raise InvariantError("no user behind require()")
        return web.json_response({"name": user.name, "role": user.role, "csrf": auth.csrf_token(request),
                                  "hall": spec.id, "hall_name_vi": spec.name_vi, "hall_name_en": spec.name_en,
                                  "services": [{"service": s.id, "name_vi": s.name_vi, "name_en": s.name_en}
                                               for s in spec.services]},
                                 headers={"Cache-Control": "no-store"})

    async def live(_request: web.Request) -> web.Response:
        return web.json_response(view(), headers={"Cache-Control": "no-store"}, dumps=_dumps)

    async def events(request: web.Request) -> web.StreamResponse:
        return await webstream.stream(request, hub, sse("live", view()), cache_control="no-store",
                                      keepalive_s=KEEPALIVE_S)

    async def action(request: web.Request, *, action: wire.ManagerAction, target: str, **fields: str | None) -> \
            web.Response:
        user = auth.current_user(request)
        if user is None:  # pragma: no cover - require() lets no one through without a session
            raise InvariantError("no user behind require()")
        command = wire.ManagerCommand(request_id=str(uuid.uuid4()), user=user.name, action=action,
                                      counter=fields.get("counter"), ticket=fields.get("ticket"),
                                      service=fields.get("service"), text_vi=fields.get("text_vi"),
                                      text_en=fields.get("text_en"))
        outcome = await act(command)
        log.info("manager action user=%s action=%s target=%s outcome=%s%s", user.name, action,
                 escape_controls(target), "done" if outcome.ok else f"refused code={outcome.code}",
                 "" if outcome.ok else f" message={escape_controls(outcome.message)}")
        status = 200 if outcome.ok or outcome.code not in OWN_LABELS else 503
        return web.json_response(outcome.to_obj(), status=status)

    async def counter_action(request: web.Request) -> web.Response:
        counter, verb = request.match_info["counter"], request.match_info["verb"]
        if verb not in COUNTER_ACTIONS:
            raise web.HTTPNotFound()
        if counter not in spec.counter_by_id:
            return _json_error(400, "unknown_counter", f"there is no counter {counter!r} in this hall")
        return await action(request, action=COUNTER_ACTIONS[verb], target=f"counter={counter}",  # type: ignore[arg-type]
                            counter=counter)

    async def void_ticket(request: web.Request) -> web.Response:
        number = _ticket_number(request)
        if number is None:
            return _json_error(400, "bad_request", "a ticket number is like A015")
        return await action(request, action="void_ticket", target=f"ticket={number}", ticket=number)

    async def transfer_ticket(request: web.Request) -> web.Response:
        number = _ticket_number(request)
        if number is None:
            return _json_error(400, "bad_request", "a ticket number is like A015")
        try:
            body = await _json_body(request)
        except BadRequest as exc:
            return _json_error(400, "bad_request", str(exc))
        service = body.get("service")
        if not isinstance(service, str) or service not in spec.service_by_id:
            return _json_error(400, "unknown_service", f"there is no service {service!r} in this hall")
        return await action(request, action="transfer_ticket", target=f"ticket={number} service={service}",
                            ticket=number, service=service)

    async def end_day(request: web.Request) -> web.Response:
        return await action(request, action="end_day", target="day")

    async def show_notice(request: web.Request) -> web.Response:
        try:
            body = await _json_body(request)
            text_vi = _notice_text(body, "text_vi", required=True)
            text_en = _notice_text(body, "text_en", required=False)
        except BadRequest as exc:
            return _json_error(400, "bad_request", str(exc))
        return await action(request, action="show_notice", target="notice", text_vi=text_vi, text_en=text_en)

    async def clear_notice(request: web.Request) -> web.Response:
        return await action(request, action="clear_notice", target="notice")

    async def audit_page(request: web.Request) -> web.Response:
        path = ledger.parent / PROFILES_FILE
        try:
            rows = await asyncio.get_running_loop().run_in_executor(None, functools.partial(audit.read, path,
                                                                                            limit=AUDIT_LINES))
            problem = None
        except ProfileError as exc:
            rows, problem = [], exc.message
        return web.Response(text=_audit_page(request, spec, rows, problem), content_type="text/html",
                            charset="utf-8", headers=PAGE_HEADERS)

    async def reports_page(request: web.Request) -> web.Response:
        return web.Response(text=_reports_page(request, spec, auth.csrf_token(request)), content_type="text/html",
                            charset="utf-8", headers=PAGE_HEADERS)

    async def report_document(request: web.Request, fmt: str) -> web.Response:
        try:
            query = ReportQuery.parse(request.query, spec)
        except reports.ReportError as exc:
            return web.Response(status=400, text=str(exc) + "\n", content_type="text/plain", charset="utf-8")
        try:
            data = await asyncio.get_running_loop().run_in_executor(
                report_threads, functools.partial(query.render, spec, ledger, now(), fmt, cache_dir,
                                                  cpu_share=report_cpu_share, memo=memo))
        except journal.JournalError as exc:
            return web.Response(status=503, text=f"{exc}\n", content_type="text/plain", charset="utf-8")
        name = f"hallq-{spec.id}-{query.period.label}"
        match fmt:
            case "html":
                return web.Response(body=data, content_type="text/html", charset="utf-8", headers=REPORT_HEADERS)
            case "csv":
                return web.Response(body=data, content_type="text/csv", charset="utf-8", headers={
                    "Content-Disposition": f'attachment; filename="{name}.csv"', "Cache-Control": "no-store"})
            case _:
                return web.Response(
                    body=data, content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"',
                             "Cache-Control": "no-store"})

    async def report_html(request: web.Request) -> web.Response:
        return await report_document(request, "html")

    async def export_csv(request: web.Request) -> web.Response:
        return await report_document(request, "csv")

    async def export_xlsx(request: web.Request) -> web.Response:
        return await report_document(request, "xlsx")

    async def healthz(_request: web.Request) -> web.Response:
        state = health()
        return web.json_response(state, status=200 if state.get("healthy") else 503)

    app.router.add_get("/", viewer(live_page))
    app.router.add_get("/api/session", viewer(session))
    app.router.add_get("/api/live", viewer(live))
    app.router.add_get("/events", viewer(events))
    app.router.add_get("/reports", viewer(reports_page))
    app.router.add_get("/reports/report.html", viewer(report_html))
    app.router.add_get("/reports/export.csv", viewer(export_csv))
    app.router.add_get("/reports/export.xlsx", viewer(export_xlsx))
    app.router.add_post("/api/counter/{counter}/{verb}", manager(counter_action))
    app.router.add_post("/api/ticket/{number}/void", manager(void_ticket))
    app.router.add_post("/api/ticket/{number}/transfer", manager(transfer_ticket))
    app.router.add_post("/api/day/end", manager(end_day))
    app.router.add_post("/api/notice", manager(show_notice))
    app.router.add_post("/api/notice/clear", manager(clear_notice))
    app.router.add_get("/audit", manager(audit_page))
    app.router.add_get("/healthz", healthz)
    app.router.add_static("/static/", STATIC_DIR)
    if phones is not None:
        phones.install(app)
    return app


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _ticket_number(request: web.Request) -> str | None:
    number = request.match_info["number"].strip().upper()
    return number if is_token(number, MAX_NUMBER_LEN) else None


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _notice_text(body: Mapping[str, Any], key: str, *, required: bool) -> str | None:
    value = body.get(key)
    if isinstance(value, str):
        value = value.strip()
    if value is None or value == "":
        if required:
            raise BadRequest(f"{key} is needed")
        return None
    if not isinstance(value, str) or len(value) > MAX_NOTICE_LEN or has_control(value):
        raise BadRequest(f"{key} must be one line of at most {MAX_NOTICE_LEN} characters")
    return value


# --- reports ------------------------------------------------------------------------------------------------------

PERIODS: Final = ("day", "week", "month", "range")
# Two reports at once at most (a day asked for while a year is being made need not wait for it).
REPORT_THREADS: Final = 2


@dataclass(frozen=True, slots=True)
class ReportQuery:
    """A report asked for in a URL's query (see the module's docstring)."""

    period: reports.Period
    filters: reports.Filters
    lang: str

    @staticmethod
    def parse(query: Mapping[str, str], spec: HallSpec) -> ReportQuery:
        """The query's report; ``ReportError`` naming what is wrong."""
        kind = query.get("period", "day")

        def need(name: str) -> str:
            value = query.get(name, "").strip()
            if not value:
                raise reports.ReportError(f"{name} is needed for a {kind} report")
            return value

        match kind:
            case "day":
                period = reports.day_period(need("day"))
            case "week":
                period = reports.week_period(need("week"))
            case "month":
                period = reports.month_period(need("month"))
            case "range":
                period = reports.range_period(need("from"), need("to"))
            case _:
                raise reports.ReportError(f"period must be one of {', '.join(PERIODS)}")
        lane = query.get("lane") or None
        if lane is not None and lane not in reports.LANES:
            raise reports.ReportError(f"lane must be one of {', '.join(reports.LANES)}")
        filters = reports.Filters(service=query.get("service") or None, counter=query.get("counter") or None,
                                  lane=lane, category=query.get("category") or None)
        filters.check(spec)
        lang = query.get("lang", "vi")
        return ReportQuery(period=period, filters=filters, lang=lang if lang in ("vi", "en") else "vi")

    def render(self, spec: HallSpec, ledger: Path, now: datetime, fmt: str, cache_dir: Path | None, *,
               cpu_share: float = 1.0, memo: report_cache.ReportMemo | None = None) -> bytes:
        """The report as ``fmt`` (html, csv, xlsx); reads the ledger through the closed days' cache in
        ``cache_dir``, within ``cpu_share`` of one core (1: no budget), keeping closed periods' reports in
        ``memo`` (run it in a worker thread: ``manager.budget.report_executor``)."""
        report = report_cache.build_report(ledger, spec=spec, period=self.period, filters=self.filters, now=now,
                                           cache_dir=cache_dir, budget=budget.CpuBudget(cpu_share), memo=memo)
        match fmt:
            case "html":
                return render_html(report, self.lang).encode("utf-8")
            case "csv":
                return render_csv(report, self.lang)
            case _:
                return render_xlsx(report, self.lang)


_REPORT_WORDS: Final = {
    "vi": {"title": "Báo cáo", "live": "Trực tiếp", "period": "Kỳ báo cáo", "day": "Ngày", "week": "Tuần",
           "month": "Tháng", "range": "Khoảng ngày", "from": "Từ", "to": "Đến", "service": "Dịch vụ",
           "counter": "Quầy", "lane": "Luồng", "category": "Đối tượng ưu tiên", "all": "Tất cả",
           "regular": "Thường", "priority": "Ưu tiên", "show": "Xem báo cáo", "csv": "Tải CSV", "xlsx": "Tải XLSX",
           "lang": "English", "logout": "Đăng xuất", "print": "In"},
    "en": {"title": "Reports", "live": "Live", "period": "Period", "day": "Day", "week": "Week", "month": "Month",
           "range": "Range", "from": "From", "to": "To", "service": "Service", "counter": "Counter", "lane": "Lane",
           "category": "Priority category", "all": "All", "regular": "Regular", "priority": "Priority",
           "show": "Show report", "csv": "Download CSV", "xlsx": "Download XLSX", "lang": "Tiếng Việt",
           "logout": "Log out", "print": "Print"},
}


AUDIT_LINES: Final = 500
PROFILES_FILE: Final = "profiles.sqlite3"  # beside the ledger (hall_controller.profiles.FILE_NAME)
_AUDIT_WORDS: Final = {
    "vi": {"title": "Nhật ký xem hồ sơ công dân", "live": "Trực tiếp", "reports": "Báo cáo", "lang": "English",
           "at": "Thời điểm", "what": "Việc", "ref": "Hồ sơ", "counter": "Quầy", "ticket": "Số", "none":
           "Chưa có hồ sơ nào được xem.", "shown": "xem", "edited": "sửa", "erased": "xóa theo yêu cầu",
           "purged": "tự xóa (lâu không dùng)",
           "intro": "Mỗi lần một quầy xem hoặc sửa hồ sơ công dân, và mỗi lần hồ sơ bị xóa, đều được ghi lại ở đây. "
                    "Trang này không chứa dữ liệu cá nhân: hồ sơ chỉ được ghi bằng mã tham chiếu."},
    "en": {"title": "Audit of citizens' profiles", "live": "Live", "reports": "Reports", "lang": "Tiếng Việt",
           "at": "When", "what": "What", "ref": "Profile", "counter": "Counter", "ticket": "Ticket", "none":
           "No profile has been viewed yet.", "shown": "shown", "edited": "changed", "erased": "erased on request",
           "purged": "deleted (unused)",
           "intro": "Every time a counter was shown or changed a citizen's profile, and every time one was deleted. "
                    "No personal data here: a profile is named by its reference only."},
}


def _page_top(spec: HallSpec, lang: str, title: str, nav: str) -> str:
    """A server-made page's start, up to ``<main>``: its title, the hall's name, and ``nav`` (HTML)."""
    hall_name = html.escape(spec.name_vi if lang == "vi" else spec.name_en)
    return f"""<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} — {hall_name}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/manager.css">
</head>
<body class="reports">
<header class="top">
<h1>{title} <small>{hall_name}</small></h1>
<nav>{nav}</nav>
</header>
<main>"""


def _audit_page(request: web.Request, spec: HallSpec, rows: list[audit.AuditRow], problem: str | None) -> str:
    """The audit of profile views (manager role): the latest ``AUDIT_LINES``, latest first."""
    lang = request.query.get("lang", "vi") if request.query.get("lang") in ("vi", "en") else "vi"
    words = _AUDIT_WORDS[lang]
    esc = html.escape
    names = {c.id: c.name for c in spec.counters}
    lines = "".join(
        f"<tr><td>{esc(datetime.fromisoformat(row.at).astimezone(spec.zone).strftime('%Y-%m-%d %H:%M:%S'))}</td>"
        f"<td>{esc(words.get(row.what, row.what))}</td><td><code>{esc(row.ref[:8])}</code></td>"
        f"<td>{esc(names.get(row.counter, row.counter))}</td><td>{esc(row.number)}</td></tr>" for row in rows)
    body = (f'<p class="problem" role="alert">{esc(problem)}</p>' if problem else
            f"<table class=\"grid\"><thead><tr><th>{words['at']}</th><th>{words['what']}</th><th>{words['ref']}</th>"
            f"<th>{words['counter']}</th><th>{words['ticket']}</th></tr></thead><tbody>{lines}</tbody></table>"
            if rows else f"<p>{words['none']}</p>")
    other = "en" if lang == "vi" else "vi"
    nav = (f'<a href="/?lang={lang}">{words["live"]}</a> <a href="/reports?lang={lang}">{words["reports"]}</a>\n'
           f'<a href="/audit?lang={other}">{words["lang"]}</a>')
    return f"""{_page_top(spec, lang, words["title"], nav)}
<p>{words["intro"]}</p>
{body}
</main>
</body>
</html>
"""


def _reports_page(request: web.Request, spec: HallSpec, csrf: str) -> str:
    """The reports form, and when the query asks for a report, the report inline (a frame) with its downloads."""
    query = request.query
    lang = query.get("lang", "vi") if query.get("lang") in ("vi", "en") else "vi"
    words = _REPORT_WORDS[lang]
    today = spec.business_day(datetime.now(spec.zone))
    kind = query.get("period", "day")
    esc = html.escape

    def value(name: str, default: str = "") -> str:
        return esc(query.get(name, default), quote=True)

    def options(name: str, choices: list[tuple[str, str]]) -> str:
        chosen = query.get(name, "")
        rows = [f'<option value=""{" selected" if not chosen else ""}>{words["all"]}</option>']
        rows += [f'<option value="{esc(v, quote=True)}"{" selected" if v == chosen else ""}>{esc(label)}</option>'
                 for v, label in choices]
        return f'<select name="{name}" id="f-{name}">{"".join(rows)}</select>'

    service_choices = [(s.id, f"{s.id} — {s.name_vi if lang == 'vi' else s.name_en}") for s in spec.services]
    counter_choices = [(c.id, c.name) for c in spec.counters]
    lane_choices: list[tuple[str, str]] = [(lane, words[lane]) for lane in reports.LANES]
    category_choices = [(c, c) for c in wire.PRIORITY_CATEGORIES]
    periods = "".join(f'<label><input type="radio" name="period" value="{p}"{" checked" if p == kind else ""}> '
                      f'{words[p]}</label>' for p in PERIODS)
    result = ""
    if "period" in query:
        problem = None
        try:
            ReportQuery.parse(query, spec)
        except reports.ReportError as exc:
            problem = str(exc)
        if problem is not None:
            result = f'<p class="problem" role="alert">{esc(problem)}</p>'
        else:
            qs = esc(urlencode(list(query.items())), quote=True)
            result = (f'<p class="downloads"><a href="/reports/export.csv?{qs}" download>{words["csv"]}</a> '
                      f'<a href="/reports/export.xlsx?{qs}" download>{words["xlsx"]}</a> '
                      f'<a href="/reports/report.html?{qs}" target="_blank" rel="noopener">{words["print"]}</a></p>'
                      f'<iframe class="report" src="/reports/report.html?{qs}" title="{words["title"]}"></iframe>')
    other = "en" if lang == "vi" else "vi"
    other_qs = esc(urlencode([*[(k, v) for k, v in query.items() if k != "lang"], ("lang", other)]), quote=True)
    nav = (f'<a href="/?lang={lang}">{words["live"]}</a> <a href="/reports?{other_qs}">{words["lang"]}</a>\n'
           f'<form method="post" action="/logout" class="inline">\n'
           f'<input type="hidden" name="csrf_token" value="{esc(csrf, quote=True)}">\n'
           f'<button type="submit">{words["logout"]}</button></form>')
    return f"""{_page_top(spec, lang, words["title"], nav)}
<form method="get" action="/reports" class="report-form">
<input type="hidden" name="lang" value="{lang}">
<fieldset><legend>{words["period"]}</legend>{periods}
<label>{words["day"]} <input type="date" name="day" value="{value("day", today)}"></label>
<label>{words["week"]} <input type="text" name="week" placeholder="2026-W49" value="{value("week")}"></label>
<label>{words["month"]} <input type="month" name="month" value="{value("month", today[:7])}"></label>
<label>{words["from"]} <input type="date" name="from" value="{value("from")}"></label>
<label>{words["to"]} <input type="date" name="to" value="{value("to")}"></label>
</fieldset>
<fieldset><legend>{words["service"]} · {words["counter"]} · {words["lane"]}</legend>
<label>{words["service"]} {options("service", service_choices)}</label>
<label>{words["counter"]} {options("counter", counter_choices)}</label>
<label>{words["lane"]} {options("lane", lane_choices)}</label>
<label>{words["category"]} {options("category", category_choices)}</label>
</fieldset>
<button type="submit">{words["show"]}</button>
</form>
{result}
</main>
</body>
</html>
"""
