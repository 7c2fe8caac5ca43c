// The ticket's status page on a citizen's phone (manager/phone_web.py): follows /t/{token}/events, shows the
// ticket's number, service, people ahead and wait; when called, the counter, with a chime (made here with
// WebAudio, once the citizen turned sound on: browsers play nothing before a tap) and a vibration where the phone
// allows; after the visit, the rating form. Vietnamese first, English on the button (remembered on this phone).
//
// Costs little while idle: no polling; one event stream whose heartbeat (a "ping" event) comes every 25 s.
// EventSource reconnects by itself after a drop it notices; one it cannot notice (a phone that slept or changed
// network keeps a stream that will never speak again) shows as silence: a stream that brought no event of any kind
// for QUIET_MS is closed and opened again, looked at every CHECK_MS and whenever the phone wakes up
// (visibilitychange), its network comes back (online) or the page is shown again from the cache (pageshow). A stream the server refused is followed by one look at /status: only a 404 there is
// final (a ticket of another day); a 503 (the service starting, or busy) or no answer at all means "try again",
// later and later (RETRY_FIRST_S doubling up to RETRY_MAX_S, at least the answer's Retry-After, with jitter so
// that a hall's phones do not all come back at once), and at once when the phone wakes up (visibilitychange) or
// its network comes back (online). Once the ticket can change no more (final), the stream is closed.
"use strict";

const WORDS = {
  vi: {
    title: "Số thứ tự của bạn", your_number: "Số của bạn", priority: "Ưu tiên", loading: "Đang tải…",
    ahead: "Số người trước bạn", wait: "Thời gian chờ dự kiến",
    waiting: "Đang chờ đến lượt", next: "Bạn là người tiếp theo", next_detail: "Hãy chú ý màn hình và điện thoại.",
    soon: "Sắp đến lượt", moved: "Số của bạn đã được chuyển từ {from} sang {to}.",
    called: "Đến lượt bạn!", recalled: "Mời lại lần {n}", go_to: "Mời bạn đến", counter_sub: "",
    called_detail: "Vui lòng đến quầy ngay.",
    ended: "Lượt của bạn tại {counter} đã kết thúc", ended_detail: "Đang cập nhật kết quả…",
    served: "Đã hoàn thành", rate_until: "Bạn có thể đánh giá đến {hm}.",
    rating_closed: "Đã hết thời gian đánh giá lượt này.",
    no_show: "Bạn đã không có mặt khi được gọi", no_show_detail: "Nếu vẫn cần làm thủ tục, vui lòng lấy số mới.",
    void: "Số này đã bị hủy", void_detail: "Nếu vẫn cần làm thủ tục, vui lòng lấy số mới.",
    expired: "Số này đã hết hiệu lực", expired_detail: "Ngày làm việc đã kết thúc. Hẹn gặp lại bạn.",
    gone: "Không tìm thấy số này trong ngày hôm nay", gone_detail: "Số của những ngày trước đã hết hiệu lực.",
    rating_title: "Bạn có hài lòng với lần phục vụ này?", levels_legend: "Chọn một mức",
    very_satisfied: "Rất hài lòng", satisfied: "Hài lòng", neutral: "Bình thường", dissatisfied: "Không hài lòng",
    reasons_legend: "Điều gì chưa tốt? (chọn một hoặc nhiều)",
    comment_label: "Góp ý thêm (không bắt buộc)", chars_left: "Còn {n} ký tự",
    send: "Gửi đánh giá", sending: "Đang gửi…", send_failed: "Chưa gửi được. Vui lòng kiểm tra mạng và thử lại.",
    thanks: "Cảm ơn bạn đã đánh giá!", your_rating: "Bạn đã chọn: {level}",
    sound_on: "Bật âm thanh khi đến lượt", sound_is_on: "Âm thanh đang bật",
    connecting: "Đang kết nối…", reconnecting: "Mất kết nối, đang kết nối lại…",
    stale: "Hệ thống đang kết nối lại, thông tin có thể chưa mới nhất.",
    minutes: "khoảng {n} phút", under_minute: "dưới 1 phút", hours: "khoảng {h} giờ {m} phút",
    privacy: "Trang này chỉ hiển thị số thứ tự của bạn, không chứa thông tin cá nhân.",
    other_lang: "English",
  },
  en: {
    title: "Your ticket", your_number: "Your number", priority: "Priority", loading: "Loading…",
    ahead: "People ahead of you", wait: "Estimated wait",
    waiting: "Waiting for your turn", next: "You are next", next_detail: "Watch the screen and this phone.",
    soon: "Very soon", moved: "Your ticket was moved from {from} to {to}.",
    called: "It is your turn!", recalled: "Called again ({n})", go_to: "Please go to",
    counter_sub: "counter {id}", called_detail: "Please go to the counter now.",
    ended: "Your turn at {counter} has ended", ended_detail: "Updating…",
    served: "Done", rate_until: "You can rate this visit until {hm}.",
    rating_closed: "The time to rate this visit has passed.",
    no_show: "You were called but did not come", no_show_detail: "If you still need the service, please take a new ticket.",
    void: "This ticket was cancelled", void_detail: "If you still need the service, please take a new ticket.",
    expired: "This ticket has expired", expired_detail: "The business day has ended. See you again.",
    gone: "This ticket is not of today", gone_detail: "Tickets of earlier days have expired.",
    rating_title: "Were you satisfied with this visit?", levels_legend: "Choose one",
    very_satisfied: "Very satisfied", satisfied: "Satisfied", neutral: "Neutral", dissatisfied: "Dissatisfied",
    reasons_legend: "What was not good? (choose any)",
    comment_label: "Anything else? (optional)", chars_left: "{n} characters left",
    send: "Send rating", sending: "Sending…", send_failed: "Not sent. Please check your connection and try again.",
    thanks: "Thank you for your rating!", your_rating: "You chose: {level}",
    sound_on: "Turn on sound for my call", sound_is_on: "Sound is on",
    connecting: "Connecting…", reconnecting: "Connection lost, reconnecting…",
    stale: "The hall's system is reconnecting; the figures may be behind.",
    minutes: "about {n} minutes", under_minute: "under a minute", hours: "about {h} h {m} min",
    privacy: "This page shows only your ticket number; it holds no personal data.",
    other_lang: "Tiếng Việt",
  },
};
const LOW = ["neutral", "dissatisfied"];
const COMMENT_MAX = 300;
const RETRY_FIRST_S = 3;  // the first try again after a refusal; each refusal in a row doubles it
const RETRY_MAX_S = 60;
const BUSY_WAIT_S = 10;  // the ticket was found but its stream refused: the service is at its bound
const QUIET_MS = 60000;  // over two heartbeats missed: the stream is dead, whatever its readyState says
const CHECK_MS = 10000;  // how often a quiet stream is looked at (one cheap comparison)
const base = window.location.pathname.replace(/\/+$/, "");
const $ = (id) => document.getElementById(id);

let lang = window.localStorage.getItem("hallq-phone-lang") === "en" ? "en" : "vi";
let status = null;
let source = null;
let retryTimer = null;
let refusals = 0;  // refusals in a row: the next try waits longer
let heardAt = 0;  // Date.now() of the stream's last event of any kind (or of its opening)
let link = "connecting";
let finished = false;  // the ticket can change no more: the stream is closed for good
let audio = null;
let soundOn = false;
let lastCall = null;  // "counter/recalls" of the call shown, to chime only for a new one
let seenWaiting = false;
let ratedHere = null;  // the level this page sent and the controller accepted
let sending = false;
let reasonsBuilt = "";

function t(key, vars = {}) {
  const text = (WORDS[lang][key] ?? WORDS.vi[key] ?? key);
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

function setText(element, text) {
  // Only a real change is written: a screen reader announces each write of a live region.
  if (element.textContent !== text) element.textContent = text;
}

function show(element, visible) {
  if (element.hidden === visible) element.hidden = !visible;
}

function waitText(seconds) {
  if (seconds < 60) return t("under_minute");
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return t("minutes", { n: minutes });
  return t("hours", { h: Math.floor(minutes / 60), m: minutes % 60 });
}

function applyWords() {
  document.documentElement.lang = lang;
  for (const element of document.querySelectorAll("[data-t]")) setText(element, t(element.dataset.t));
  setText($("lang"), t("other_lang"));
  $("lang").setAttribute("lang", lang === "vi" ? "en" : "vi");
  setText($("sound"), soundOn ? t("sound_is_on") : t("sound_on"));
  updateCount();
  render();
}

function setLink(state) {
  link = state;
  document.body.dataset.link = state;
  renderLink();
}

function renderLink() {
  let text = "";
  if (!finished) {
    if (link === "connecting" && status === null) text = t("connecting");
    else if (link === "down") text = t("reconnecting");
    else if (status && status.found && !status.live) text = t("stale");
  }
  setText($("link"), text);
}

function render() {
  renderLink();
  if (status === null) return;
  const body = document.body;
  if (!status.found) {
    body.dataset.state = "gone";
    setText($("headline"), t("gone"));
    setText($("detail"), t("gone_detail"));
    for (const id of ["call", "figures", "sound", "rating", "thanks"]) show($(id), false);
    finish();  // a ticket of another day (the business day turned): nothing more will come
    return;
  }
  const state = status.state;
  body.dataset.state = state;
  setText($("hall"), lang === "vi" ? status.hall_vi : status.hall_en);
  setText($("number"), status.number);
  setText($("service"), lang === "vi" ? status.service_vi : status.service_en);
  show($("priority"), status.priority);
  document.title = `${status.number} — ${t("title")}`;

  let headline = "";
  let detail = "";
  const called = state === "called";
  if (state === "waiting") {
    headline = status.ahead === 0 ? t("next") : t("waiting");
    if (status.moved_from) {
      const from = lang === "vi" ? status.moved_from.name_vi : status.moved_from.name_en;
      detail = t("moved", { from, to: lang === "vi" ? status.service_vi : status.service_en });
    } else if (status.ahead === 0) {
      detail = t("next_detail");
    }
    setText($("ahead"), String(status.ahead));
    setText($("wait"), status.ahead === 0 ? t("soon") : waitText(status.estimated_wait_s));
  } else if (called) {
    headline = status.recalls > 0 ? t("recalled", { n: status.recalls }) : t("called");
    setText($("call-lead"), t("go_to"));
    setText($("call-counter"), status.counter_name);
    setText($("call-sub"), lang === "en" && status.counter_name !== status.counter ? t("counter_sub", { id: status.counter }) : "");
    detail = t("called_detail");
  } else if (state === "ended") {
    headline = t("ended", { counter: status.counter_name });
    detail = t("ended_detail");
  } else if (state === "served") {
    headline = t("served");
    const rated = status.rated || ratedHere;
    detail = rated ? "" : status.rating_open ? t("rate_until", { hm: status.rating_until_hm }) : t("rating_closed");
  } else {
    headline = t(state);
    detail = t(`${state}_detail`);
  }
  setText($("headline"), headline);
  setText($("detail"), detail);
  show($("call"), called);
  show($("figures"), state === "waiting");
  show($("sound"), state === "waiting" || called);
  renderRating();
  alertIfCalled();
  if (status.final) finish();
}

function finish() {
  finished = true;
  if (source) {
    source.close();
    source = null;
  }
  renderLink();
}

function renderRating() {
  const rated = status.rated || ratedHere;
  const open = status.state === "served" && status.rating_open && !rated;
  show($("rating"), open);
  show($("thanks"), status.state === "served" && Boolean(rated));
  if (rated) setText($("thanks-level"), t("your_rating", { level: t(rated) }));
  if (!open) return;
  const key = `${lang}:${status.reasons.map((r) => r.id).join(",")}`;
  if (key !== reasonsBuilt) {
    const checked = new Set([...document.querySelectorAll("#reasons input:checked")].map((i) => i.value));
    const holder = $("reasons");
    holder.replaceChildren(...status.reasons.map((reason) => {
      const label = document.createElement("label");
      label.className = "reason";
      const input = document.createElement("input");
      input.type = "checkbox";
      input.name = "reason";
      input.value = reason.id;
      input.checked = checked.has(reason.id);
      const text = document.createElement("span");
      text.textContent = lang === "vi" ? reason.name_vi : reason.name_en;
      label.append(input, text);
      return label;
    }));
    reasonsBuilt = key;
  }
  const level = chosenLevel();
  show($("why"), LOW.includes(level));
  $("rating-send").disabled = sending || level === null;
  setText($("rating-send"), sending ? t("sending") : t("send"));
}

function chosenLevel() {
  const input = document.querySelector("input[name=rating]:checked");
  return input ? input.value : null;
}

function updateCount() {
  const left = COMMENT_MAX - $("comment").value.length;
  setText($("comment-count"), t("chars_left", { n: left }));
}

function problem(text) {
  const element = $("rating-problem");
  setText(element, text || "");
  show(element, Boolean(text));
}

async function sendRating(event) {
  event.preventDefault();
  const level = chosenLevel();
  if (level === null || sending) return;
  const low = LOW.includes(level);
  const body = {
    rating: level,
    reasons: low ? [...document.querySelectorAll("#reasons input:checked")].map((i) => i.value) : [],
    comment: low ? $("comment").value.trim() || null : null,
  };
  sending = true;
  problem("");
  renderRating();
  try {
    const response = await fetch(base + "/rating", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      credentials: "same-origin", cache: "no-store",
    });
    const answer = await response.json();
    if (answer.ok) {
      ratedHere = level;
    } else {
      const error = answer.error || {};
      problem((lang === "vi" ? error.label_vi : error.label_en) || error.label || t("send_failed"));
    }
  } catch (_error) {
    problem(t("send_failed"));
  } finally {
    sending = false;
    render();
  }
}

// --- the call's sound and vibration ------------------------------------------------------------------------------

function chime() {
  if (!audio || !soundOn) return;
  const start = audio.currentTime + 0.05;
  // Three notes, up-down-up: heard over a busy hall, unlike a message tone.
  for (const [frequency, offset] of [[784, 0], [659, 0.32], [988, 0.64]]) {
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    tone.type = "sine";
    tone.frequency.value = frequency;
    gain.gain.setValueAtTime(0.0001, start + offset);
    gain.gain.exponentialRampToValueAtTime(0.5, start + offset + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.3);
    tone.connect(gain).connect(audio.destination);
    tone.start(start + offset);
    tone.stop(start + offset + 0.32);
  }
  document.body.dataset.chimes = String(Number(document.body.dataset.chimes) + 1);
}

function buzz() {
  try {
    if (typeof navigator.vibrate === "function") navigator.vibrate([400, 200, 400, 200, 400]);
  } catch (_error) {
    // Not allowed here (no tap yet, or the phone says no): the screen and the chime remain.
  }
}

function alertIfCalled() {
  const call = status.state === "called" ? `${status.counter}/${status.recalls}` : null;
  // A call seen arriving chimes (a new call, or a recall), not one the page was opened on.
  if (call !== null && call !== lastCall && (lastCall !== null || seenWaiting)) {
    chime();
    buzz();
  }
  if (status.state === "waiting") seenWaiting = true;
  lastCall = call;
}

function toggleSound() {
  try {
    if (audio === null) {
      const Context = window.AudioContext || window.webkitAudioContext;
      if (!Context) return;
      audio = new Context();
    }
    if (audio.state === "suspended") audio.resume();
  } catch (_error) {
    return;
  }
  soundOn = !soundOn;
  $("sound").setAttribute("aria-pressed", String(soundOn));
  setText($("sound"), soundOn ? t("sound_is_on") : t("sound_on"));
  if (soundOn) chime();  // what the call will sound like, and proof that it works
}

// --- the stream ---------------------------------------------------------------------------------------------------

function connect() {
  window.clearTimeout(retryTimer);
  retryTimer = null;
  if (finished) return;
  if (source) source.close();
  setLink("connecting");
  heardAt = Date.now();
  source = new EventSource(base + "/events");
  source.addEventListener("open", () => {
    heardAt = Date.now();
    setLink("up");
  });
  source.addEventListener("ping", () => {
    heardAt = Date.now();
    if (link !== "up") setLink("up");
  });
  source.addEventListener("status", (message) => {
    heardAt = Date.now();
    refusals = 0;
    status = JSON.parse(message.data);
    setLink("up");
    render();
  });
  source.addEventListener("error", () => {
    if (finished) return;
    setLink("down");
    // A network drop: the browser tries again by itself. A stream the server refused is closed for good:
    // ask what became of the ticket, and try again later.
    if (source && source.readyState === EventSource.CLOSED) {
      source = null;
      afterRefusal();
    }
  });
}

async function afterRefusal() {
  let atLeastS = 0;
  try {
    const response = await fetch(base + "/status", { cache: "no-store" });
    if (response.status === 404) {
      // The only final answer: a completed reading of the hall's ledger does not know this ticket.
      status = { found: false };
      render();
      return;
    }
    if (response.ok) {
      status = await response.json();
      render();
      atLeastS = BUSY_WAIT_S;
    } else {
      // 503: the service has just started (or is busy); it says when to come back.
      atLeastS = Number(response.headers.get("Retry-After")) || 0;
    }
  } catch (_error) {
    // Offline, or the service away: try again later; "online" tries at once.
  }
  retryLater(atLeastS);
}

function retryLater(atLeastS) {
  // Not when the phone woke up meanwhile and opened a stream already.
  if (finished || retryTimer !== null || source !== null) return;
  const backoffS = Math.min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** refusals);
  refusals += 1;
  const waitS = Math.max(backoffS, atLeastS) * (1 + Math.random() * 0.5);
  retryTimer = window.setTimeout(connect, waitS * 1000);
}

function quiet() {
  return source !== null && Date.now() - heardAt > QUIET_MS;
}

function wake() {
  if (!finished && (source === null || source.readyState === EventSource.CLOSED || quiet())) connect();
}

window.setInterval(() => {
  // Only a stream gone silent: one refused waits for its own timer (retryLater), not for this one.
  if (!finished && quiet()) connect();
}, CHECK_MS);

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") wake();
});
window.addEventListener("online", wake);
window.addEventListener("offline", () => setLink("down"));
window.addEventListener("pageshow", (event) => {
  if (event.persisted) wake();
});

$("lang").addEventListener("click", () => {
  lang = lang === "vi" ? "en" : "vi";
  window.localStorage.setItem("hallq-phone-lang", lang);
  applyWords();
});
$("sound").addEventListener("click", toggleSound);
$("rating-form").addEventListener("change", () => {
  problem("");
  renderRating();
});
$("rating-form").addEventListener("submit", sendRating);
$("comment").addEventListener("input", updateCount);

applyWords();
connect();
