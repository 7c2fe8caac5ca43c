"""The printable report: one self-contained HTML page (no script, no outside resource), A4 when printed.

Charts are SVG drawn here, inline: tickets issued and calls by hour, the mean wait by hour of arrival, and the
visits served per counter. Vietnamese by default; ``lang="en"`` for English labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from manager.render.tables import Cell, Lang, Table, filter_text, labels, minutes, percent, report_tables
from manager.reports import Report

CHART_WIDTH = 640
CHART_HEIGHT = 180
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
svg text { font-family: inherit; font-size: 10px; fill: #222; }
.bar1 { fill: #2b6cb0; } .bar2 { fill: #dd8a2a; } .axis { stroke: #555; stroke-width: 1; }
.legend span { display: inline-block; width: .8em; height: .8em; margin: 0 .3em 0 1em; vertical-align: middle; }
@page { size: A4; margin: 12mm; }
@media print { body { margin: 0; font-size: 9pt; } h2 { break-after: avoid; } table, svg { break-inside: avoid; } }
"""
_WORDS = {
    "vi": {"arrivals_calls": "Phiếu cấp và lượt gọi theo giờ", "waits": "Thời gian chờ trung bình theo giờ đến (phút)",
           "per_counter": "Lượt đã phục vụ theo quầy"},
    "en": {"arrivals_calls": "Tickets issued and calls by hour", "waits": "Mean wait by hour of arrival (minutes)",
           "per_counter": "Visits served per counter"},
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
    generated = (f" · {escape(t['generated'])} {escape(report.generated_at.isoformat(timespec='minutes'))}"
                 if report.generated_at else "")
    parts = [
        f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n',
        f"<title>{escape(t['title'])} — {escape(hall)} — {escape(report.period.label)}</title>\n",
        f"<style>{_CSS}</style>\n</head>\n<body>\n",
        f"<h1>{escape(t['title'])} — {escape(hall)}</h1>\n",
        f'<div class="meta">{escape(t["period"])}: {escape(report.period.label)} · {escape(t["days_worked"])}: '
        f"{len(report.days_worked)} · {escape(t['filters'])}: {escape(filter_text(report, lang))}{generated}</div>\n",
        '<div class="kpis">' + "".join(f'<div class="kpi">{escape(name)}<b>{_text(value)}</b></div>'
                                       for name, value in kpis) + "</div>\n",
        f"<h2>{escape(words['arrivals_calls'])}</h2>\n",
        f'<div class="legend"><span class="bar1"></span>{escape(t["arrivals"])}'
        f'<span class="bar2"></span>{escape(t["calls"])}</div>\n',
        bar_chart([f"{row.hour:02d}" for row in shown], [[row.arrivals for row in shown],
                                                         [row.calls for row in shown]],
                  title=words["arrivals_calls"]),
        f"<h2>{escape(words['waits'])}</h2>\n",
        bar_chart([f"{row.hour:02d}" for row in shown], [[minutes(row.wait.mean_s) or 0 for row in shown]],
                  title=words["waits"]),
        f"<h2>{escape(words['per_counter'])}</h2>\n",
        bar_chart([row.counter for row in report.counters],
                  [[row.figures.outcomes.served for row in report.counters]], title=words["per_counter"]),
    ]
    for name in ("services", "counters", "lanes"):
        parts += [f"<h2>{escape(tables[name].title)}</h2>\n", html_table(tables[name])]
    if len(report.days) > 1:
        parts += [f"<h2>{escape(tables['days'].title)}</h2>\n", html_table(tables["days"])]
    parts.append("</body>\n</html>\n")
    return "".join(parts)


def _text(value: Cell) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return escape(f"{value:g}")
    return escape(str(value))


def html_table(table: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    body = "".join("<tr>" + "".join(f"<td>{_text(v)}</td>" for v in row) + "</tr>\n" for row in table.rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n"


def bar_chart(labels_: Sequence[str], series: Sequence[Sequence[float]], *, title: str,
              width: int = CHART_WIDTH, height: int = CHART_HEIGHT) -> str:
    """Grouped bars: one group per label, one bar per series (at most two colours), values printed above
    the bars, a baseline. An inline ``<svg>`` element."""
    left, bottom, top = 8, 18, 14
    groups = max(1, len(labels_))
    peak = max((v for values in series for v in values), default=0) or 1
    slot = (width - 2 * left) / groups
    bar = slot * 0.8 / max(1, len(series))
    plot = height - bottom - top
    out = [f'<svg width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">']
    for g, label in enumerate(labels_):
        x0 = left + g * slot + slot * 0.1
        for s, values in enumerate(series):
            value = values[g]
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
