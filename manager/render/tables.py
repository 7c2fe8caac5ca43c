"""A report as named tables of plain values: what the text, CSV and XLSX renderers write, in Vietnamese or
English. Durations are minutes with one decimal, shares are percent with one decimal, a missing figure is None.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from manager.reports import DurationStats, Figures, Report

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
    },
}
LANGS = tuple(LABELS)
MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
FIGURE_KEYS = ("issued", "transferred_in", "visits", "served", "no_show", "transferred", "voided", "expired", "open",
               "wait_mean", "wait_median", "wait_p90", "wait_max", "within_target", "service_mean",
               "service_median", "service_p90", "service_max")


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


def filter_text(report: Report, lang: Lang) -> str:
    f = report.filters
    t = labels(lang)
    parts = [f"{t[key]} {value}" for key, value in (("service", f.service), ("counter", f.counter),
                                                    ("lane", t[f.lane] if f.lane else None),
                                                    ("category", f.category)) if value is not None]
    return ", ".join(parts) or t["none"]


def report_tables(report: Report, lang: Lang = "vi") -> list[Table]:
    """The report's tables, in order: summary, services, counters, lanes, hours, days."""
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
    ]


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
