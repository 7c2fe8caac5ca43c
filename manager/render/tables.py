"""A report as named tables of plain values: what the text, CSV and XLSX renderers write, in Vietnamese or
English. Durations are minutes with one decimal, shares are percent with one decimal, a missing figure is None.

The citizens' comments are their own words: a table holds each on one line (its control characters, line
breaks included, as spaces), and ``formula_safe`` is what the CSV and XLSX renderers use so that no text can
become a spreadsheet formula.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from hallq.limits import CONTROL_CHARACTERS
from hallq.wire import RATING_CHANNELS, RATING_LEVELS
from manager.reports import Comment, DurationStats, Figures, RatingFigures, Report

Lang = str  # "vi" or "en"
Cell = str | int | float | None

LABELS: dict[str, dict[str, str]] = {
    "vi": {
        "summary": "Tổng hợp", "services": "Theo dịch vụ", "counters": "Theo quầy", "lanes": "Ưu tiên và thường",
        "hours": "Theo giờ", "days": "Theo ngày",
        "hall": "Trung tâm", "period": "Kỳ báo cáo", "days_worked": "Số ngày làm việc", "filters": "Bộ lọc",
        "generated": "Lập lúc", "none": "không",
        "service": "Dịch vụ", "name": "Tên", "counter": "Quầy", "lane": "Luồng", "category": "Đối tượng",
        "hour": "Giờ", "day": "Ngày", "target_min": "Mục tiêu chờ (phút)",
        "issued": "Số phiếu cấp", "transferred_in": "Chuyển đến", "visits": "Lượt", "served": "Đã phục vụ",
        "no_show": "Vắng mặt", "transferred": "Chuyển đi", "voided": "Hủy", "expired": "Hết hạn",
        "open": "Chưa xong",
        "wait_mean": "Chờ TB (phút)", "wait_median": "Chờ trung vị (phút)", "wait_p90": "Chờ P90 (phút)",
        "wait_max": "Chờ tối đa (phút)", "within_target": "Gọi trong mục tiêu (%)",
        "service_mean": "Phục vụ TB (phút)", "service_median": "Phục vụ trung vị (phút)",
        "service_p90": "Phục vụ P90 (phút)", "service_max": "Phục vụ tối đa (phút)",
        "open_h": "Mở (giờ)", "paused_h": "Tạm dừng (giờ)", "closed_h": "Đóng (giờ)",
        "arrivals": "Phiếu cấp", "calls": "Lượt gọi", "regular": "Thường", "priority": "Ưu tiên",
        "figure": "Chỉ số", "value": "Giá trị", "title": "Báo cáo hoạt động",
        "ratings": "Đánh giá", "ratings_services": "Đánh giá theo dịch vụ", "ratings_counters": "Đánh giá theo quầy",
        "ratings_days": "Đánh giá theo ngày", "ratings_hours": "Đánh giá theo giờ phục vụ",
        "rating_reasons": "Lý do chưa hài lòng", "rating_comments": "Ý kiến của công dân",
        "rated": "Lượt đánh giá", "rated_share": "Tỷ lệ được đánh giá (%)",
        "satisfied_share": "Hài lòng trở lên (%)",
        "very_satisfied": "Rất hài lòng", "satisfied": "Hài lòng", "neutral": "Bình thường",
        "dissatisfied": "Không hài lòng",
        "channel": "Kênh", "all_channels": "Tất cả", "counter_buttons": "Nút bấm tại quầy", "phone": "Điện thoại",
        "reason": "Mã lý do", "reason_name": "Lý do", "reason_count": "Số lượt",
        "reason_share": "Trong số lượt Bình thường và Không hài lòng (%)",
        "time": "Giờ", "level": "Mức đánh giá", "comment": "Ý kiến",
    },
    "en": {
        "summary": "Summary", "services": "By service", "counters": "By counter", "lanes": "Priority and regular",
        "hours": "By hour", "days": "By day",
        "hall": "Hall", "period": "Period", "days_worked": "Days worked", "filters": "Filters",
        "generated": "Made at", "none": "none",
        "service": "Service", "name": "Name", "counter": "Counter", "lane": "Lane", "category": "Category",
        "hour": "Hour", "day": "Day", "target_min": "Target wait (min)",
        "issued": "Tickets issued", "transferred_in": "Transferred in", "visits": "Visits", "served": "Served",
        "no_show": "No-show", "transferred": "Transferred out", "voided": "Voided", "expired": "Expired",
        "open": "Still open",
        "wait_mean": "Wait mean (min)", "wait_median": "Wait median (min)", "wait_p90": "Wait P90 (min)",
        "wait_max": "Wait max (min)", "within_target": "Called within target (%)",
        "service_mean": "Service mean (min)", "service_median": "Service median (min)",
        "service_p90": "Service P90 (min)", "service_max": "Service max (min)",
        "open_h": "Open (h)", "paused_h": "Paused (h)", "closed_h": "Closed (h)",
        "arrivals": "Tickets issued", "calls": "Calls", "regular": "Regular", "priority": "Priority",
        "figure": "Figure", "value": "Value", "title": "Activity report",
        "ratings": "Ratings", "ratings_services": "Ratings by service", "ratings_counters": "Ratings by counter",
        "ratings_days": "Ratings by day", "ratings_hours": "Ratings by hour served",
        "rating_reasons": "Reasons for low ratings", "rating_comments": "Citizens' comments",
        "rated": "Visits rated", "rated_share": "Rated of served (%)", "satisfied_share": "Satisfied or better (%)",
        "very_satisfied": "Very satisfied", "satisfied": "Satisfied", "neutral": "Neutral",
        "dissatisfied": "Dissatisfied",
        "channel": "Channel", "all_channels": "All", "counter_buttons": "Counter buttons", "phone": "Phone",
        "reason": "Reason id", "reason_name": "Reason", "reason_count": "Ratings",
        "reason_share": "Of neutral and dissatisfied ratings (%)",
        "time": "Time", "level": "Rating", "comment": "Comment",
    },
}
LANGS = tuple(LABELS)
MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
FIGURE_KEYS = ("issued", "transferred_in", "visits", "served", "no_show", "transferred", "voided", "expired", "open",
               "wait_mean", "wait_median", "wait_p90", "wait_max", "within_target", "service_mean",
               "service_median", "service_p90", "service_max")
CHANNEL_KEYS: Final = {"counter": "counter_buttons", "phone": "phone"}  # a rating channel's label
RECENT_COMMENTS = 20  # the comments the printable page and the text show (the exports hold all)
# What a spreadsheet reads as the start of a formula (also after spaces); a tab or carriage return too.
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
_ONE_LINE = {ord(ch): " " for ch in CONTROL_CHARACTERS} | {code: "\ufffd" for code in range(0xD800, 0xE000)}


@dataclass(frozen=True, slots=True)
class Table:
    """One table: ``name`` (stable, English: a file or sheet name), ``title`` in the report's language."""

    name: str
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


def labels(lang: Lang) -> dict[str, str]:
    """The labels of ``lang`` ("vi" or "en"); ValueError for another."""
    if lang not in LABELS:
        raise ValueError(f"language {lang!r}: one of {', '.join(LANGS)}")
    return LABELS[lang]


def minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


def hours(seconds: float) -> float:
    return round(seconds / 3600, 2)


def made_at(moment: datetime, lang: Lang) -> str:
    """When a report was made, as people read it, in the hall's time (``moment`` is the hall's wall clock):
    "05/12/2026 07:05" in Vietnamese, "5 Dec 2026 07:05" in English."""
    if lang == "vi":
        return moment.strftime("%d/%m/%Y %H:%M")
    return f"{moment.day} {MONTHS_EN[moment.month - 1]} {moment.year} {moment:%H:%M}"


def percent(share: float | None) -> float | None:
    return None if share is None else round(100 * share, 1)


def figure_cells(figures: Figures) -> tuple[Cell, ...]:
    """The cells of ``FIGURE_KEYS`` for ``figures``."""
    o = figures.outcomes
    return (o.issued, o.transferred_in, o.visits, o.served, o.no_show, o.transferred, o.voided, o.expired, o.open,
            *_stat_cells(figures.wait), percent(figures.within_target_share), *_stat_cells(figures.service_time))


def _stat_cells(stats: DurationStats) -> tuple[Cell, ...]:
    return minutes(stats.mean_s), minutes(stats.median_s), minutes(stats.p90_s), minutes(stats.max_s)


def rating_headers(t: dict[str, str]) -> tuple[str, ...]:
    """The headers of ``rating_cells``: served, rated, rated share, each level's count and share, satisfied."""
    levels = tuple(header for level in RATING_LEVELS for header in (t[level], f"{t[level]} (%)"))
    return (t["served"], t["rated"], t["rated_share"], *levels, t["satisfied_share"])


def rating_cells(ratings: RatingFigures) -> tuple[Cell, ...]:
    """The cells of ``rating_headers`` for ``ratings``."""
    levels = tuple(cell for count, share in zip(ratings.levels, ratings.level_shares, strict=True)
                   for cell in (count, percent(share)))
    return (ratings.served, ratings.rated, percent(ratings.rated_share), *levels, percent(ratings.satisfied_share))


def one_line(text: str) -> str:
    """A citizen's text on one line: each control character (line breaks, tabs, terminal controls) a space, and
    a lone surrogate (no character: no file could hold it) the replacement character."""
    return text.translate(_ONE_LINE)


def looks_like_formula(text: str) -> bool:
    """Whether a spreadsheet would read ``text`` as a formula (or the start of one): it begins with = + - @, a
    tab or a carriage return, also after spaces. A lone "-" (what an empty cell shows, e.g. the regular lane's
    category) is only text."""
    return text.lstrip(" ").startswith(FORMULA_STARTS) and text != "-"


def formula_safe(text: str) -> str:
    """``text`` for a CSV file: one that ``looks_like_formula`` gets a leading apostrophe, which Excel and
    LibreOffice read as "this cell is text" (and show without it)."""
    return "'" + text if looks_like_formula(text) else text


def filter_text(report: Report, lang: Lang) -> str:
    f = report.filters
    t = labels(lang)
    parts = [f"{t[key]} {value}" for key, value in (("service", f.service), ("counter", f.counter),
                                                    ("lane", t[f.lane] if f.lane else None),
                                                    ("category", f.category)) if value is not None]
    return ", ".join(parts) or t["none"]


def report_tables(report: Report, lang: Lang = "vi") -> list[Table]:
    """The report's tables, in order: summary, services, counters, lanes, hours, days, then the ratings: ratings
    (all, and per channel), ratings_services, ratings_counters, ratings_days, ratings_hours, rating_reasons and
    rating_comments (every comment, newest first)."""
    t = labels(lang)
    figure_headers = tuple(t[key] for key in FIGURE_KEYS)
    name_of = "name_vi" if lang == "vi" else "name_en"
    summary_rows: list[tuple[Cell, ...]] = [
        (t["hall"], report.hall_name_vi if lang == "vi" else report.hall_name_en),
        (t["period"], report.period.label),
        (t["days_worked"], len(report.days_worked)),
        (t["filters"], filter_text(report, lang)),
    ]
    if report.generated_at is not None:
        summary_rows.append((t["generated"], made_at(report.generated_at, lang)))
    summary_rows += list(zip((t[key] for key in FIGURE_KEYS), figure_cells(report.totals), strict=True))
    summary_rows += [(t["rated"], report.ratings.rated), (t["rated_share"], percent(report.ratings.rated_share)),
                     (t["satisfied_share"], percent(report.ratings.satisfied_share))]
    return [
        Table("summary", t["summary"], (t["figure"], t["value"]), tuple(summary_rows)),
        Table("services", t["services"], (t["service"], t["name"], t["target_min"], *figure_headers),
              tuple((row.service, getattr(row, name_of), minutes(row.target_wait_s), *figure_cells(row.figures))
                    for row in report.services)),
        Table("counters", t["counters"], (t["counter"], t["name"], t["open_h"], t["paused_h"], t["closed_h"],
                                          *figure_headers),
              tuple((row.counter, row.name, hours(row.open_s), hours(row.paused_s), hours(row.closed_s),
                     *figure_cells(row.figures)) for row in report.counters)),
        Table("lanes", t["lanes"], (t["lane"], t["category"], *figure_headers),
              tuple((t[row.lane], category_name(row.category, lang), *figure_cells(row.figures))
                    for row in report.lanes)),
        Table("hours", t["hours"], (t["hour"], t["arrivals"], t["calls"], t["wait_mean"], t["wait_median"],
                                    t["wait_p90"], t["wait_max"]),
              tuple((f"{row.hour:02d}:00", row.arrivals, row.calls, *_stat_cells(row.wait)) for row in report.hours)),
        Table("days", t["days"], (t["day"], *figure_headers),
              tuple((row.day, *figure_cells(row.figures)) for row in report.days)),
        *rating_tables(report, lang),
    ]


def rating_tables(report: Report, lang: Lang = "vi") -> list[Table]:
    """The ratings' tables of ``report_tables``."""
    t = labels(lang)
    headers = rating_headers(t)
    name_of = "name_vi" if lang == "vi" else "name_en"
    channels = [(t["all_channels"], report.ratings)]
    channels += [(t[CHANNEL_KEYS[channel]], report.ratings.through(channel)) for channel in RATING_CHANNELS]
    return [
        Table("ratings", t["ratings"], (t["channel"], *headers),
              tuple((name, *rating_cells(ratings)) for name, ratings in channels)),
        Table("ratings_services", t["ratings_services"], (t["service"], t["name"], *headers),
              tuple((row.service, getattr(row, name_of), *rating_cells(row.ratings)) for row in report.services)),
        Table("ratings_counters", t["ratings_counters"], (t["counter"], t["name"], *headers),
              tuple((row.counter, row.name, *rating_cells(row.ratings)) for row in report.counters)),
        Table("ratings_days", t["ratings_days"], (t["day"], *headers),
              tuple((row.day, *rating_cells(row.ratings)) for row in report.days)),
        Table("ratings_hours", t["ratings_hours"], (t["hour"], *headers),
              tuple((f"{row.hour:02d}:00", *rating_cells(row.ratings)) for row in report.hours)),
        Table("rating_reasons", t["rating_reasons"], (t["reason"], t["reason_name"], t["reason_count"],
                                                      t["reason_share"]),
              tuple((row.reason, getattr(row, name_of), row.count, percent(row.share))
                    for row in report.rating_reasons)),
        Table("rating_comments", t["rating_comments"], (t["day"], t["time"], t["counter"], t["service"], t["level"],
                                                        t["channel"], t["comment"]),
              tuple(comment_cells(comment, t) for comment in reversed(report.rating_comments))),
    ]


def comment_cells(comment: Comment, t: dict[str, str]) -> tuple[Cell, ...]:
    """A comment's row: its business day, the hall's time it was given, counter, service, level, channel, text."""
    return (comment.day, f"{comment.at:%H:%M}", comment.counter, comment.service, t.get(comment.level, comment.level),
            t[CHANNEL_KEYS[comment.channel]] if comment.channel in CHANNEL_KEYS else comment.channel,
            one_line(comment.text))


# Priority categories (hallq.wire.PRIORITY_CATEGORIES) as a report names them; an unknown one as it is.
CATEGORY_NAMES: Final = {
    "vi": {"elderly": "Người cao tuổi", "disability": "Người khuyết tật", "pregnant": "Phụ nữ mang thai",
           "child": "Trẻ em", "other": "Khác"},
    "en": {"elderly": "Elderly", "disability": "Disabled", "pregnant": "Pregnant", "child": "Child",
           "other": "Other"},
}


def category_name(category: str | None, lang: str) -> str:
    """The category's name in ``lang``; "-" for none (a regular ticket)."""
    if category is None or category in ("", "-"):
        return "-"
    return CATEGORY_NAMES.get(lang, CATEGORY_NAMES["vi"]).get(category, category)
