"""The report as aligned plain-text tables, for a terminal. Of the citizens' comments, the most recent
``RECENT_COMMENTS`` (the CSV and XLSX files hold all)."""

from __future__ import annotations

from manager.render.tables import RECENT_COMMENTS, Cell, Lang, Table, labels, report_tables
from manager.reports import Report


def render_text(report: Report, lang: Lang = "vi") -> str:
    """Every table of the report, each under its title, columns aligned (empty cell: ``-``)."""
    t = labels(lang)
    out = [f"{t['title']} — {report.hall_name_vi if lang == 'vi' else report.hall_name_en} — {report.period.label}"]
    for table in report_tables(report, lang):
        shown, title = table, table.title
        if table.name == "rating_comments" and len(table.rows) > RECENT_COMMENTS:
            title = f"{title} ({RECENT_COMMENTS} / {len(table.rows)})"
            shown = Table(table.name, table.title, table.headers, table.rows[:RECENT_COMMENTS])
        out += ["", title, _aligned(shown)]
    return "\n".join(out) + "\n"


def _cell(value: Cell) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _aligned(table: Table) -> str:
    grid = [list(table.headers)] + [[_cell(value) for value in row] for row in table.rows]
    widths = [max(len(row[col]) for row in grid) for col in range(len(table.headers))]
    lines = []
    for index, row in enumerate(grid):
        lines.append("  ".join(text.ljust(width) if col < 2 or index == 0 else text.rjust(width)
                               for col, (text, width) in enumerate(zip(row, widths, strict=True))).rstrip())
    return "\n".join(lines)
