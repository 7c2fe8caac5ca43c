"""The printable report: one self-contained HTML page (no script, no outside resource), A4 when printed.

Charts are SVG drawn here, inline: tickets issued and calls by hour, the mean wait by hour of arrival, and the
visits served per counter. Vietnamese by default; ``lang="en"`` for English labels.

The citizens' ratings follow, in a section of their own: the share rated and satisfied, the ratings by level
(a chart), by channel, service, counter, hour served and day, the reasons for low ratings, and the
``RECENT_COMMENTS`` most recent comments. Every text is escaped (a comment is the citizen's own text), and a
comment's direction is its own (``unicode-bidi: plaintext``), so that no text can reorder the page around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from hallq.wire import RATING_LEVELS
from manager.render.tables import (
    RECENT_COMMENTS,
    Cell,
    Lang,
    Table,
    filter_text,
    labels,
    made_at,
    minutes,
    percent,
    report_tables,
)
from manager.reports import Report

CHART_WIDTH = 640
CHART_HEIGHT = 200
_CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 10.5pt; color: #111; margin: 1.5em; }
h1 { font-size: 16pt; margin: 0 0 .2em; } h2 { font-size: 12pt; margin: 1.2em 0 .4em; }
.meta { color: #444; margin-bottom: .8em; }
.kpis { display: flex; flex-wrap: wrap; gap: .6em; }
.kpi { border: 1px solid #bbb; border-radius: 4px; padding: .3em .6em; min-width: 8em; }
.kpi b { display: block; font-size: 14pt; }
table { border-collapse: collapse; margin: .3em 0; }
th, td { border: 1px solid #bbb; padding: .15em .4em; text-align: right; }
th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
th { background: #eee; font-weight: 600; }
svg text { font-family: inherit; font-size: 11px; fill: #222; }
svg text.empty { font-size: 14px; fill: #666; }
.bar1 { fill: #2b6cb0; } .bar2 { fill: #dd8a2a; } .axis { stroke: #555; stroke-width: 1; }
.swatch.bar1 { background: #2b6cb0; } .swatch.bar2 { background: #dd8a2a; }
.frame { fill: none; stroke: #ccc; }
table.comments th, table.comments td { text-align: left; }
table.comments td:last-child { max-width: 40em; unicode-bidi: plaintext; }
.note { color: #444; margin: .3em 0; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(36em, 1fr)); gap: 0 2em; }
.chart h2 { margin-top: .8em; } .chart svg { display: block; width: 100%; height: auto; max-width: 60em; }
.legend { margin: 0 0 .2em; } .legend span + span { margin-left: 1.2em; }
.swatch { display: inline-block; width: .9em; height: .9em; margin-right: .35em; vertical-align: -.1em;
          border: 1px solid #555; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
@page { size: A4; margin: 12mm; }
@media print { body { margin: 0; font-size: 9pt; } h2 { break-after: avoid; } table, .chart { break-inside: avoid; } }
"""
_WORDS = {
    "vi": {"arrivals_calls": "Phiếu cấp và lượt gọi theo giờ", "waits": "Thời gian chờ trung bình theo giờ đến (phút)",
           "per_counter": "Lượt đã phục vụ theo quầy", "no_data": "không có dữ liệu",
           "all_zero": "mọi giá trị đều bằng 0", "ratings_title": "Đánh giá của công dân",
           "levels": "Số lượt theo mức đánh giá", "no_ratings": "Chưa có lượt nào được đánh giá trong kỳ này.",
           "recent": "Ý kiến gần đây",
           "recent_note": "{shown} ý kiến mới nhất trong {total}; tệp CSV và XLSX có tất cả."},
    "en": {"arrivals_calls": "Tickets issued and calls by hour", "waits": "Mean wait by hour of arrival (minutes)",
           "per_counter": "Visits served per counter", "no_data": "no data", "all_zero": "every value is 0",
           "ratings_title": "Citizens' ratings", "levels": "Ratings by level",
           "no_ratings": "No visit was rated in this period.", "recent": "Recent comments",
           "recent_note": "The {shown} most recent of {total} comments; the CSV and XLSX files hold all."},
}


def render_html(report: Report, lang: Lang = "vi") -> str:
    """The whole page, UTF-8 text."""
    t = labels(lang)
    words = _WORDS[lang]
    hall = report.hall_name_vi if lang == "vi" else report.hall_name_en
    tables = {table.name: table for table in report_tables(report, lang)}
    totals = report.totals
    kpis = [(t["issued"], totals.outcomes.issued), (t["served"], totals.outcomes.served),
            (t["no_show"], totals.outcomes.no_show), (t["expired"], totals.outcomes.expired),
            (t["wait_mean"], minutes(totals.wait.mean_s)), (t["wait_p90"], minutes(totals.wait.p90_s)),
            (t["within_target"], percent(totals.within_target_share)),
            (t["service_mean"], minutes(totals.service_time.mean_s))]
    hours = [row for row in report.hours if row.arrivals or row.calls] or list(report.hours)
    first, last = hours[0].hour, hours[-1].hour
    shown = [row for row in report.hours if first <= row.hour <= last]
    generated = (f" · {escape(t['generated'])} {escape(made_at(report.generated_at, lang))}"
                 if report.generated_at else "")
    hour_labels = [f"{row.hour:02d}" for row in shown]
    no_data = words["no_data"]
    parts = [
        f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n',
        f"<title>{escape(t['title'])} — {escape(hall)} — {escape(report.period.label)}</title>\n",
        f"<style>{_CSS}</style>\n</head>\n<body>\n",
        f"<h1>{escape(t['title'])} — {escape(hall)}</h1>\n",
        f'<div class="meta">{escape(t["period"])}: {escape(report.period.label)} · {escape(t["days_worked"])}: '
        f"{len(report.days_worked)} · {escape(t['filters'])}: {escape(filter_text(report, lang))}{generated}</div>\n",
        '<div class="kpis">' + "".join(f'<div class="kpi">{escape(name)}<b>{_text(value)}</b></div>'
                                       for name, value in kpis) + "</div>\n",
        '<div class="charts">\n',
        _chart(words["arrivals_calls"], [t["arrivals"], t["calls"]],
               bar_chart(hour_labels, [[row.arrivals for row in shown], [row.calls for row in shown]],
                         title=words["arrivals_calls"], empty=no_data)),
        _chart(words["waits"], [], bar_chart(hour_labels, [[minutes(row.wait.mean_s) for row in shown]],
                                             title=words["waits"], empty=no_data, zero=words["all_zero"])),
        _chart(words["per_counter"], [], bar_chart([row.counter for row in report.counters],
                                                   [[row.figures.outcomes.served for row in report.counters]],
                                                   title=words["per_counter"], empty=no_data)),
        "</div>\n",
    ]
    for name in ("services", "counters", "lanes"):
        parts += [f"<h2>{escape(tables[name].title)}</h2>\n", html_table(tables[name])]
    if len(report.days) > 1:
        parts += [f"<h2>{escape(tables['days'].title)}</h2>\n", html_table(tables["days"])]
    parts += _ratings_section(report, tables, lang)
    parts.append("</body>\n</html>\n")
    return "".join(parts)


def _ratings_section(report: Report, tables: dict[str, Table], lang: Lang) -> list[str]:
    """The ratings' part of the page (see the module docstring); only the summary's figures and a line saying so
    when nothing was rated."""
    t = labels(lang)
    words = _WORDS[lang]
    ratings = report.ratings
    shares = dict(zip(RATING_LEVELS, ratings.level_shares, strict=True))
    kpis = [(t["rated"], ratings.rated), (t["rated_share"], percent(ratings.rated_share)),
            (t["satisfied_share"], percent(ratings.satisfied_share)),
            (f"{t['dissatisfied']} (%)", percent(shares["dissatisfied"]))]
    parts = [f"<h2>{escape(words['ratings_title'])}</h2>\n",
             '<div class="kpis">' + "".join(f'<div class="kpi">{escape(name)}<b>{_text(value)}</b></div>'
                                            for name, value in kpis) + "</div>\n"]
    if not ratings.rated:
        return [*parts, f'<p class="note">{escape(words["no_ratings"])}</p>\n']
    parts += ['<div class="charts">\n',
              _chart(words["levels"], [], bar_chart([t[level] for level in RATING_LEVELS], [list(ratings.levels)],
                                                    title=words["levels"], empty=words["no_data"])),
              "</div>\n"]
    hours = tables["ratings_hours"]
    # Only the hours with a visit served or rated (the rest of the day is empty rows); served and rated are
    # the second and third cells.
    busy = Table(hours.name, hours.title, hours.headers, tuple(row for row in hours.rows if row[1] or row[2]))
    shown = [tables["ratings"], tables["ratings_services"], tables["ratings_counters"], busy]
    if len(report.days) > 1:
        shown.append(tables["ratings_days"])
    if report.rating_reasons:
        shown.append(tables["rating_reasons"])
    for table in shown:
        parts += [f"<h3>{escape(table.title)}</h3>\n", html_table(table)]
    comments = tables["rating_comments"]
    if comments.rows:
        recent = Table(comments.name, comments.title, comments.headers, comments.rows[:RECENT_COMMENTS])
        parts.append(f"<h3>{escape(words['recent'])}</h3>\n")
        if len(recent.rows) < len(comments.rows):
            note = words["recent_note"].format(shown=len(recent.rows), total=len(comments.rows))
            parts.append(f'<p class="note">{escape(note)}</p>\n')
        parts.append(html_table(recent, css_class="comments"))
    return parts


def _chart(title: str, series: Sequence[str], svg: str) -> str:
    """A chart under its title, with a legend naming each series by its colour when there are several."""
    legend = ""
    if series:
        legend = '<div class="legend">' + "".join(
            f'<span><i class="swatch bar{i % 2 + 1}"></i>{escape(name)}</span>'
            for i, name in enumerate(series)) + "</div>\n"
    return f'<div class="chart">\n<h2>{escape(title)}</h2>\n{legend}{svg}</div>\n'


def _text(value: Cell) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return escape(f"{value:g}")
    return escape(str(value))


def html_table(table: Table, *, css_class: str | None = None) -> str:
    """``table`` as an HTML table, every value escaped; ``css_class`` on the ``<table>``."""
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    body = "".join("<tr>" + "".join(f"<td>{_text(v)}</td>" for v in row) + "</tr>\n" for row in table.rows)
    opening = "<table>" if css_class is None else f'<table class="{escape(css_class)}">'
    return f"{opening}\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n"


def bar_chart(labels_: Sequence[str], series: Sequence[Sequence[float | None]], *, title: str,
              empty: str = "no data", zero: str | None = None, width: int = CHART_WIDTH,
              height: int = CHART_HEIGHT) -> str:
    """Grouped bars: one group per label, one bar per series (at most two colours), values printed above
    the bars, a baseline. An inline ``<svg>`` element, as wide as its box (its ``viewBox`` is ``width`` ×
    ``height``); a value None is no bar. Nothing to draw: a frame saying ``empty`` (no label, no value, or every
    value 0 and no ``zero``) or ``zero`` (every value 0)."""
    left, bottom, top = 8, 20, 16
    groups = max(1, len(labels_))
    present = [v for values in series for v in values if v is not None]
    peak = max(present, default=0)
    out = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{escape(title)}">']
    if not labels_ or not peak:
        if labels_ and present and zero is not None:
            empty = zero
        out.append(f'<rect class="frame" x="0.5" y="0.5" width="{width - 1}" height="{height - 1}"/>'
                   f'<text class="empty" x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle" '
                   f'dominant-baseline="middle">{escape(empty)}</text></svg>\n')
        return "".join(out)
    slot = (width - 2 * left) / groups
    bar = slot * 0.8 / max(1, len(series))
    plot = height - bottom - top
    for g, label in enumerate(labels_):
        x0 = left + g * slot + slot * 0.1
        for s, values in enumerate(series):
            value = values[g] or 0
            h = plot * value / peak
            x = x0 + s * bar
            y = top + plot - h
            out.append(f'<rect class="bar{s % 2 + 1}" x="{x:.1f}" y="{y:.1f}" width="{bar * 0.92:.1f}" '
                       f'height="{h:.1f}"><title>{escape(label)}: {value:g}</title></rect>')
            if value:
                out.append(f'<text x="{x + bar / 2:.1f}" y="{y - 2:.1f}" text-anchor="middle">{value:g}</text>')
        out.append(f'<text x="{left + g * slot + slot / 2:.1f}" y="{height - 4}" text-anchor="middle">'
                   f"{escape(label)}</text>")
    out.append(f'<line class="axis" x1="{left}" y1="{top + plot}" x2="{width - left}" y2="{top + plot}"/>')
    out.append("</svg>\n")
    return "".join(out)
