// hallq hall manager: the live view. Follows /events (Server-Sent Events, reconnecting after a drop), draws the
// view with textContent only (no markup from data), and sends actions to the JSON API with the session's CSRF
// token. Vietnamese first; ?lang=en or the toggle for English (remembered in this browser).
"use strict";

const WORDS = {
  vi: {
    reports: "Báo cáo", audit: "Nhật ký hồ sơ", logout: "Đăng xuất", other_lang: "English", alarms: "Cảnh báo", notice: "Thông báo trên màn hình",
    notice_vi: "Tiếng Việt", notice_en: "English", show_notice: "Hiển thị", clear_notice: "Xoá thông báo",
    no_notice: "Không có thông báo", counters: "Quầy", counter: "Quầy", status: "Trạng thái", serving: "Đang phục vụ",
    for: "Thời gian", served_today: "Đã phục vụ hôm nay", median_service: "Thời gian phục vụ (trung vị)",
    actions: "Thao tác", services: "Dịch vụ", service: "Dịch vụ", regular: "Thường", priority: "Ưu tiên",
    categories: "Đối tượng ưu tiên", oldest_wait: "Chờ lâu nhất", estimated_wait: "Dự kiến chờ",
    open_counters: "Quầy mở", ticket_actions: "Xử lý số", ticket_number: "Số", void: "Huỷ số",
    to_service: "Chuyển sang", transfer: "Chuyển", end_day: "Kết thúc ngày làm việc", devices: "Thiết bị",
    device: "Thiết bị", role: "Loại", state: "Tình trạng", since: "Từ lúc", printer: "Máy in", last_ticket: "Số cuối",
    events: "Sự kiện", open: "Mở", paused: "Tạm dừng", closed: "Đóng", do_open: "Mở", do_pause: "Tạm dừng",
    do_close: "Đóng", online: "Đang hoạt động", offline: "Mất kết nối", unknown: "Chưa rõ",
    controller: "Bộ điều khiển", dispenser: "Máy lấy số", display: "Màn hình", other: "Khác",
    ok: "Bình thường", paper_low: "Sắp hết giấy", paper_out: "Hết giấy", printer_offline: "Máy in mất kết nối",
    waiting: "Đang chờ", served: "Đã phục vụ", open_now: "Quầy đang mở", link_up: "Đã kết nối",
    link_down: "Mất kết nối với hệ thống", connecting: "Đang kết nối…", page_offline: "Trang mất kết nối, đang thử lại…",
    done: "Đã thực hiện", refused: "Bị từ chối", failed: "Không thực hiện được",
    confirm_void: "Huỷ số {n}? Số này sẽ không được gọi nữa.",
    confirm_end_day: "Kết thúc ngày làm việc? Mọi số đang chờ sẽ hết hiệu lực và không cấp số mới cho đến ngày mai.",
    confirm_close: "Đóng quầy {c}?", alarm_wait: "{s}: số {n} đã chờ {w} (mục tiêu {t})",
    alarm_offline: "{name} mất kết nối", alarm_printer_paper_out: "{name}: hết giấy",
    alarm_printer_offline: "{name}: máy in mất kết nối", alarm_storage_fault: "Không lưu được dữ liệu: {m}",
    no_estimate: "không có quầy mở", ledger_problem: "Không đọc được sổ dữ liệu: {m}",
    ticket_voided: "Huỷ số", print_failed: "In lỗi", storage_fault: "Lỗi lưu trữ", storage_ok: "Lưu trữ bình thường",
    clock_untrusted: "Đồng hồ chưa tin cậy", clock_trusted: "Đồng hồ tin cậy", refused_kind: "Từ chối",
    manager_action: "Quản lý", day_started: "Bắt đầu ngày", day_ended: "Kết thúc ngày", recalls: "gọi lại",
    ev_open_counter: "{u} mở {c}", ev_pause_counter: "{u} tạm dừng {c}", ev_close_counter: "{u} đóng {c}",
    ev_void_ticket: "{u} huỷ số {n}", ev_transfer_ticket: "{u} chuyển số {n} sang dịch vụ {s}",
    ev_transfer_ticket_bare: "{u} chuyển số {n} sang dịch vụ khác",
    ev_end_day: "{u} kết thúc ngày làm việc; các số đang chờ hết hiệu lực",
    ev_show_notice: "{u} hiển thị thông báo “{x}”", ev_show_notice_bare: "{u} hiển thị thông báo",
    ev_clear_notice: "{u} xoá thông báo",
    ev_print_failed: "{d} không in được số {n} ({r}); số này bị huỷ",
    ev_rate_limited: "{d} gửi quá nhiều tin; các tin bị bỏ qua",
    ev_retained: "{d} gửi tin lưu lại (retained) trên hệ thống; đã xoá, cần sửa cài đặt MQTT của thiết bị này",
    ev_storage_fault: "Không ghi được sổ dữ liệu: tạm ngừng cấp số mới và đổi trạng thái quầy",
    ev_storage_ok: "Ghi được sổ dữ liệu trở lại",
    ev_clock_untrusted: "Đồng hồ hệ thống chưa tin cậy: tạm ngừng cấp số và gọi số cho đến khi chỉnh giờ",
    ev_clock_trusted: "Đồng hồ hệ thống tin cậy trở lại: cấp số và gọi số tiếp tục",
    ev_day_started: "Bắt đầu ngày làm việc {day}", ev_day_ended: "{u} kết thúc ngày làm việc {day}",
    ev_expired: "{k} số đã hết hiệu lực", ev_ticket_voided: "Số {n} bị huỷ", ev_counter: "Quầy {c}",
    reason_paper_out: "hết giấy", reason_cover_open: "nắp máy in mở", reason_offline: "máy in mất kết nối",
    reason_timeout: "máy in không trả lời", reason_error: "lỗi máy in",
  },
  en: {
    reports: "Reports", audit: "Profiles' audit", logout: "Log out", other_lang: "Tiếng Việt", alarms: "Alarms", notice: "Notice on the screens",
    notice_vi: "Vietnamese", notice_en: "English", show_notice: "Show", clear_notice: "Clear the notice",
    no_notice: "No notice", counters: "Counters", counter: "Counter", status: "Status", serving: "Serving",
    for: "For", served_today: "Served today", median_service: "Service time (median)", actions: "Actions",
    services: "Services", service: "Service", regular: "Regular", priority: "Priority",
    categories: "Priority categories", oldest_wait: "Longest wait", estimated_wait: "Estimated wait",
    open_counters: "Open counters", ticket_actions: "Tickets", ticket_number: "Number", void: "Void",
    to_service: "To service", transfer: "Transfer", end_day: "End the business day", devices: "Devices",
    device: "Device", role: "Kind", state: "State", since: "Since", printer: "Printer", last_ticket: "Last ticket",
    events: "Events", open: "Open", paused: "Paused", closed: "Closed", do_open: "Open", do_pause: "Pause",
    do_close: "Close", online: "Online", offline: "Offline", unknown: "Unknown", controller: "Controller",
    dispenser: "Kiosk", display: "Display", other: "Other", ok: "OK", paper_low: "Paper low", paper_out: "Out of paper",
    printer_offline: "Printer offline", waiting: "Waiting", served: "Served", open_now: "Counters open",
    link_up: "Connected", link_down: "Not connected to the hall", connecting: "Connecting…",
    page_offline: "Page disconnected, retrying…", done: "Done", refused: "Refused", failed: "Not done",
    confirm_void: "Void ticket {n}? It will not be called.",
    confirm_end_day: "End the business day? Every waiting ticket expires and no ticket is issued until tomorrow.",
    confirm_close: "Close counter {c}?", alarm_wait: "{s}: {n} has waited {w} (target {t})",
    alarm_offline: "{name} is offline", alarm_printer_paper_out: "{name}: out of paper",
    alarm_printer_offline: "{name}: printer offline", alarm_storage_fault: "Storage fault: {m}",
    no_estimate: "no counter open", ledger_problem: "Cannot read the ledger: {m}",
    ticket_voided: "Voided", print_failed: "Print failed", storage_fault: "Storage fault", storage_ok: "Storage OK",
    clock_untrusted: "Clock untrusted", clock_trusted: "Clock trusted", refused_kind: "Refused",
    manager_action: "Manager", day_started: "Day started", day_ended: "Day ended", recalls: "recalls",
    ev_open_counter: "{u} opened {c}", ev_pause_counter: "{u} paused {c}", ev_close_counter: "{u} closed {c}",
    ev_void_ticket: "{u} voided {n}", ev_transfer_ticket: "{u} moved {n} to service {s}",
    ev_transfer_ticket_bare: "{u} moved {n} to another service",
    ev_end_day: "{u} ended the business day; the waiting tickets expired",
    ev_show_notice: "{u} showed the notice “{x}”", ev_show_notice_bare: "{u} showed a notice",
    ev_clear_notice: "{u} cleared the notice",
    ev_print_failed: "{d} could not print {n} ({r}); the ticket is void",
    ev_rate_limited: "{d} sends too many messages; they are dropped",
    ev_retained: "{d} sent a retained message; it was cleared: fix that device's MQTT settings",
    ev_storage_fault: "The ledger cannot be written: new tickets and counter changes are refused",
    ev_storage_ok: "The ledger is writable again",
    ev_clock_untrusted: "The hall's clock is not trusted: tickets and calls are refused until it is set",
    ev_clock_trusted: "The hall's clock is trusted again: tickets and calls resume",
    ev_day_started: "Business day {day} started", ev_day_ended: "{u} ended business day {day}",
    ev_expired: "{k} tickets expired", ev_ticket_voided: "{n} voided", ev_counter: "Counter {c}",
    reason_paper_out: "out of paper", reason_cover_open: "cover open", reason_offline: "printer offline",
    reason_timeout: "printer not answering", reason_error: "printer error",
  },
};

const params = new URLSearchParams(window.location.search);
let lang = params.get("lang") || window.localStorage.getItem("hallq-manager-lang") || "vi";
if (!(lang in WORDS)) lang = "vi";
let session = null;
let lastView = null;
let source = null;

function t(key, values) {
  let text = WORDS[lang][key] ?? WORDS.vi[key] ?? key;
  for (const [name, value] of Object.entries(values || {})) text = text.replace(`{${name}}`, String(value));
  return text;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${String(r).padStart(2, "0")}` : `${m}:${String(r).padStart(2, "0")}`;
}

function clock(iso) {
  if (!iso) return "—";
  const match = /T(\d\d:\d\d:\d\d)/.exec(iso);
  return match ? match[1] : iso;
}

function serviceName(row) {
  return `${row.service} — ${lang === "vi" ? row.name_vi : row.name_en}`;
}

function applyWords() {
  document.documentElement.lang = lang;
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = t(node.dataset.t);
  document.getElementById("lang-toggle").textContent = t("other_lang");
  document.getElementById("reports-link").href = `/reports?lang=${lang}`;
  document.getElementById("audit-link").href = `/audit?lang=${lang}`;
  fillServices();
  if (lastView) render(lastView);
}

function setLink(state) {
  const link = document.getElementById("link");
  link.dataset.state = state;
  link.textContent = t(state === "up" ? "link_up" : state === "down" ? "link_down" : state === "page" ? "page_offline" : "connecting");
}

function showOutcome(ok, text) {
  const box = document.getElementById("outcome");
  box.hidden = false;
  box.className = `outcome ${ok ? "ok" : "refused"}`;
  box.textContent = text;
  window.clearTimeout(showOutcome.timer);
  showOutcome.timer = window.setTimeout(() => { box.hidden = true; }, ok ? 5000 : 15000);
}

let busy = false;  // an action is in flight: every button waits for its answer

async function act(path, body, what) {
  // Only the buttons enabled now are held and given back: a counter's button for its current state stays off.
  const buttons = [...document.querySelectorAll("button")].filter((b) => !b.disabled);
  buttons.forEach((b) => { b.disabled = true; });
  busy = true;
  document.body.classList.add("busy");
  try {
    const response = await fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": session.csrf },
      body: JSON.stringify(body || {}),
    });
    if (response.status === 401) { window.location.href = "/login?next=/"; return false; }
    let answer = null;
    try { answer = await response.json(); } catch (_err) { answer = null; }
    if (answer && answer.ok) { showOutcome(true, `${what}: ${t("done")}`); return true; }
    const error = (answer && answer.error) || { label: `HTTP ${response.status}`, message: "" };
    showOutcome(false, `${what}: ${t("refused")} — ${error.label || error.code}${error.message ? ` (${error.message})` : ""}`);
    return false;
  } catch (err) {
    showOutcome(false, `${what}: ${t("failed")} — ${err}`);
    return false;
  } finally {
    busy = false;
    document.body.classList.remove("busy");
    buttons.forEach((b) => { b.disabled = false; });
    if (lastView) renderCounters(lastView);  // the counters' buttons as their states now say
  }
}

function renderAlarms(view) {
  const list = document.getElementById("alarms");
  list.replaceChildren();
  const services = Object.fromEntries(view.services.map((s) => [s.service, s]));
  for (const alarm of view.alarms) {
    let text;
    if (alarm.kind === "wait") {
      const s = services[alarm.service];
      text = t("alarm_wait", { s: s ? serviceName(s) : alarm.service, n: alarm.number, w: duration(alarm.wait_s), t: duration(alarm.target_s) });
    } else if (alarm.kind === "storage_fault") {
      text = t("alarm_storage_fault", { m: alarm.message });
    } else {
      text = t(`alarm_${alarm.kind}`, { name: alarm.name || alarm.client });
      if (alarm.detail) text += ` (${alarm.detail})`;
    }
    list.append(el("li", text));
  }
  if (view.ledger_problem) list.append(el("li", t("ledger_problem", { m: view.ledger_problem })));
  document.getElementById("alarms-section").hidden = list.children.length === 0;
}

function renderTotals(view) {
  const box = document.getElementById("totals");
  box.replaceChildren();
  for (const [key, value] of [["waiting", view.totals.regular + view.totals.priority], ["priority", view.totals.priority],
    ["served", view.totals.served], ["open_now", view.totals.open_counters]]) {
    const span = el("span");
    span.append(el("b", value), t(key));
    box.append(span);
  }
}

function renderNotice(view) {
  const text = document.getElementById("notice-text");
  if (view.notice) {
    text.className = "notice-text";
    text.textContent = view.notice.text_en && lang === "en" ? view.notice.text_en : view.notice.text_vi;
    if (view.notice.by) text.append(el("span", ` — ${view.notice.by}, ${clock(view.notice.at)}`, "muted"));
  } else {
    text.className = "notice-text empty";
    text.textContent = t("no_notice");
  }
}

function counterButton(row, verb) {
  const button = el("button", t(`do_${verb}`));
  button.type = "button";
  button.dataset.counter = row.counter;
  button.dataset.verb = verb;
  const current = row.status === { open: "open", pause: "paused", close: "closed" }[verb];
  button.disabled = current || busy;
  if (current) {
    button.classList.add("current");
    button.title = t(row.status);
  }
  button.addEventListener("click", () => {
    if (verb === "close" && !window.confirm(t("confirm_close", { c: row.name }))) return;
    act(`/api/counter/${encodeURIComponent(row.counter)}/${verb}`, {}, `${row.name}: ${t(`do_${verb}`)}`);
  });
  return button;
}

function renderCounters(view) {
  const body = document.querySelector("#counters tbody");
  body.replaceChildren();
  for (const row of view.counters) {
    const tr = el("tr");
    tr.dataset.counter = row.counter;
    const number = row.number ? `${row.number}${row.priority ? " ★" : ""}${row.recalls ? ` (${row.recalls} ${t("recalls")})` : ""}` : "—";
    tr.append(el("td", row.name), el("td", t(row.status), `status-${row.status}`), el("td", number, "number"),
      el("td", row.number ? duration(row.serving_s) : "—", "num"), el("td", row.served_today, "num"),
      el("td", duration(row.median_service_s), "num"));
    const actions = el("td", null, "actions manager-only");
    for (const verb of ["open", "pause", "close"]) actions.append(counterButton(row, verb));
    tr.append(actions);
    body.append(tr);
  }
}

// Priority categories (hallq.wire.PRIORITY_CATEGORIES) in the page's language; an unknown one as it is.
const CATEGORY_NAMES = {
  vi: {elderly: "người cao tuổi", disability: "người khuyết tật", pregnant: "phụ nữ mang thai", child: "trẻ em",
       other: "khác"},
  en: {elderly: "elderly", disability: "disabled", pregnant: "pregnant", child: "child", other: "other"},
};

function categoryName(category) {
  return (CATEGORY_NAMES[lang] || CATEGORY_NAMES.vi)[category] || category;
}

function renderServices(view) {
  const body = document.querySelector("#services tbody");
  body.replaceChildren();
  for (const row of view.services) {
    const tr = el("tr", null, row.alarm ? "alarm" : "");
    tr.dataset.service = row.service;
    const categories = Object.entries(row.categories).map(([k, v]) => `${categoryName(k)} ${v}`).join(", ") || "—";
    const oldest = row.oldest_number ? `${duration(row.oldest_wait_s)} (${row.oldest_number})` : "—";
    const estimate = row.estimated_wait_s === null ? t("no_estimate") : duration(row.estimated_wait_s);
    tr.append(el("td", serviceName(row)), el("td", row.regular, "num"), el("td", row.priority, "num"),
      el("td", categories), el("td", oldest, "num"), el("td", estimate, "num"), el("td", row.open_counters, "num"));
    body.append(tr);
  }
}

function renderDevices(view) {
  const body = document.querySelector("#devices tbody");
  body.replaceChildren();
  for (const row of view.devices) {
    const tr = el("tr", null, row.alarm ? "alarm" : "");
    tr.dataset.client = row.client;
    const name = row.name && row.name !== row.client ? `${row.name} (${row.client})` : row.client;
    const printer = row.printer ? t(row.printer === "offline" ? "printer_offline" : row.printer) : "";
    const printerCell = el("td", printer + (row.detail ? ` — ${row.detail}` : ""), row.printer ? `printer-${row.printer}` : "");
    const last = row.last_ticket ? `${row.last_ticket} · ${clock(row.last_ticket_at)}` : "";
    tr.append(el("td", name), el("td", t(row.role)), el("td", t(row.state), `state-${row.state}`),
      el("td", clock(row.since)), printerCell, el("td", last));
    body.append(tr);
  }
}

const EVENT_KINDS = new Set(["ticket_voided", "print_failed", "storage_fault", "storage_ok", "clock_untrusted",
  "clock_trusted", "refused", "manager_action", "day_started", "day_ended"]);
const MANAGER_ACTIONS = new Set(["open_counter", "pause_counter", "close_counter", "void_ticket", "transfer_ticket",
  "end_day", "show_notice", "clear_notice"]);

function counterName(view, id) {
  const row = view.counters.find((c) => c.counter === id);
  return row ? row.name : t("ev_counter", { c: id });
}

function deviceName(view, event) {
  if (event.counter) return counterName(view, event.counter);
  const row = view.devices.find((d) => d.client === event.dispenser);
  return row && row.name ? row.name : event.dispenser || "?";
}

// What happened, in the page's language, from the event's fields; null when the page does not know the kind
// (the controller's own words are shown then). An older controller's events lack some fields (the transfer's
// service, the notice's text, the business day, the expired count): then they are read from its message.
function eventText(view, event) {
  const message = event.message || "";
  const u = event.user || "?";
  const n = event.number || "?";
  switch (event.kind) {
    case "manager_action": {
      if (!MANAGER_ACTIONS.has(event.code)) return null;
      if (event.code === "transfer_ticket") {
        const to = event.service || (/to service (\S+)$/.exec(message) || [])[1];
        return to ? t("ev_transfer_ticket", { u, n, s: to }) : t("ev_transfer_ticket_bare", { u, n });
      }
      if (event.code === "show_notice") {
        const text = event.text || (/\u201c(.*)\u201d/.exec(message) || [])[1];
        return text ? t("ev_show_notice", { u, x: text }) : t("ev_show_notice_bare", { u });
      }
      return t(`ev_${event.code}`, { u, n, c: counterName(view, event.counter || "?") });
    }
    case "print_failed": {
      const reason = WORDS.vi[`reason_${event.code}`] ? t(`reason_${event.code}`) : event.code || "?";
      return t("ev_print_failed", { d: deviceName(view, event), n, r: reason });
    }
    case "refused":
      return event.code === "rate_limited" || event.code === "retained" ? t(`ev_${event.code}`, { d: deviceName(view, event) }) : null;
    case "day_started":
    case "day_ended": {
      const day = event.day || (/\d{4}-\d\d-\d\d/.exec(message) || [""])[0];
      const expired = event.count ?? Number((/(\d+) (?:open|waiting) tickets expired/.exec(message) || [0, 0])[1]);
      let text = t(`ev_${event.kind}`, { u, day }).replace(/ +$/, "").replace(/  +/, " ");
      if (expired) text += `; ${t("ev_expired", { k: expired })}`;
      return text;
    }
    case "ticket_voided":
      return t("ev_ticket_voided", { n }) + (event.user ? ` — ${event.user}` : "");
    default:
      return EVENT_KINDS.has(event.kind) ? t(`ev_${event.kind}`) : null;
  }
}

function renderEvents(view) {
  const list = document.getElementById("events");
  list.replaceChildren();
  for (const event of view.events) {
    const li = el("li");
    li.dataset.kind = event.kind;
    const known = EVENT_KINDS.has(event.kind);
    const text = eventText(view, event);
    li.append(el("time", clock(event.at)), el("span", known ? t(event.kind === "refused" ? "refused_kind" : event.kind) : event.kind, "kind"),
      el("span", text ?? (event.message + (event.user && !event.message.includes(event.user) ? ` — ${event.user}` : "")), "what"));
    if (text !== null && event.message) li.title = event.message;  // the controller's own words, on hover
    list.append(li);
  }
}

function render(view) {
  lastView = view;
  document.getElementById("hall-name").textContent = lang === "vi" ? view.hall_name_vi : view.hall_name_en;
  document.getElementById("business-day").textContent = view.business_day || "";
  setLink(view.link_up ? "up" : "down");
  renderAlarms(view);
  renderTotals(view);
  renderNotice(view);
  renderCounters(view);
  renderServices(view);
  renderDevices(view);
  renderEvents(view);
}

function follow() {
  if (source) source.close();
  source = new EventSource("/events");
  source.addEventListener("live", (message) => render(JSON.parse(message.data)));
  source.addEventListener("error", () => {
    setLink("page");
    // The browser retries by itself while the stream can be re-opened; a refused one (a session that ended, a
    // restarted service) is closed for good: check the session and open a new one.
    if (source.readyState === EventSource.CLOSED) window.setTimeout(start, 2000);
  });
}

function wireForms() {
  document.getElementById("lang-toggle").addEventListener("click", () => {
    lang = lang === "vi" ? "en" : "vi";
    window.localStorage.setItem("hallq-manager-lang", lang);
    applyWords();
  });
  document.getElementById("notice-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const vi = document.getElementById("notice-vi"), en = document.getElementById("notice-en");
    if (await act("/api/notice", { text_vi: vi.value, text_en: en.value }, t("show_notice"))) { vi.value = ""; en.value = ""; }
  });
  document.getElementById("notice-clear").addEventListener("click", () => act("/api/notice/clear", {}, t("clear_notice")));
  document.getElementById("void-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = document.getElementById("void-number");
    const number = input.value.trim().toUpperCase();
    if (!number || !window.confirm(t("confirm_void", { n: number }))) return;
    if (await act(`/api/ticket/${encodeURIComponent(number)}/void`, {}, `${t("void")} ${number}`)) input.value = "";
  });
  document.getElementById("transfer-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = document.getElementById("transfer-number");
    const number = input.value.trim().toUpperCase();
    const service = document.getElementById("transfer-service").value;
    if (!number) return;
    if (await act(`/api/ticket/${encodeURIComponent(number)}/transfer`, { service }, `${t("transfer")} ${number} → ${service}`)) input.value = "";
  });
  document.getElementById("end-day-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (window.confirm(t("confirm_end_day"))) act("/api/day/end", {}, t("end_day"));
  });
}

function fillServices() {
  if (!session) return;
  const select = document.getElementById("transfer-service");
  const chosen = select.value;
  select.replaceChildren(...session.services.map((s) => {
    const option = el("option", serviceName(s));
    option.value = s.service;
    return option;
  }));
  if (chosen) select.value = chosen;
}

async function start() {
  let response;
  try {
    response = await fetch("/api/session", { credentials: "same-origin", headers: { Accept: "application/json" } });
  } catch (_err) {
    setLink("page");
    window.setTimeout(start, 2000);
    return;
  }
  if (response.status === 401) { window.location.href = "/login?next=" + encodeURIComponent(window.location.pathname + window.location.search); return; }
  if (!response.ok) { setLink("page"); window.setTimeout(start, 2000); return; }
  session = await response.json();
  document.body.dataset.role = session.role;
  document.getElementById("audit-link").hidden = session.role !== "manager";
  document.getElementById("user").textContent = `${session.name} (${session.role})`;
  document.getElementById("logout-csrf").value = session.csrf;
  fillServices();
  follow();
}

document.addEventListener("DOMContentLoaded", () => {
  applyWords();
  setLink("connecting");
  wireForms();
  start();
});
