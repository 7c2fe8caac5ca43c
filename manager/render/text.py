"""The report as aligned plain-text tables, for a terminal."""

from __future__ import annotations

from manager.render.tables import Cell, Lang, Table, labels, report_tables
from manager.reports import Report


def render_text(report: Report, lang: Lang = "vi") -> str:
    """Every table of the report, each under its title, columns aligned (empty cell: ``-``)."""
    t = labels(lang)
    out = [f"{t['title']} — {report.hall_name_vi if lang == 'vi' else report.hall_name_en} — {report.period.label}"]
    for table in report_tables(report, lang):
        out += ["", table.title, _aligned(table)]
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
