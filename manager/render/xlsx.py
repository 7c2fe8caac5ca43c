"""The report as an Excel workbook (XlsxWriter): one sheet per table, numbers as numbers, headers bold,
the first row frozen."""

from __future__ import annotations

import io

import xlsxwriter

from manager.render.tables import Lang, report_tables
from manager.reports import Report

MAX_SHEET_NAME = 31  # Excel's limit


def render_xlsx(report: Report, lang: Lang = "vi") -> bytes:
    """The workbook's bytes: sheets named by the tables' titles, in the report's order."""
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    bold = workbook.add_format({"bold": True, "text_wrap": True, "valign": "top"})
    for table in report_tables(report, lang):
        sheet = workbook.add_worksheet(table.title[:MAX_SHEET_NAME])
        sheet.write_row(0, 0, table.headers, bold)
        for index, row in enumerate(table.rows, start=1):
            for col, value in enumerate(row):
                if value is not None:
                    sheet.write(index, col, value)
        sheet.freeze_panes(1, 0)
        sheet.set_column(0, 0, 22)
        sheet.set_column(1, len(table.headers) - 1, 14)
    workbook.close()
    return buffer.getvalue()
