"""The report as an Excel workbook (XlsxWriter): one sheet per table, numbers as numbers, headers bold,
the first row frozen.

Text is always written as text (``write_string``: never a formula, never a link, whatever it begins with; a
citizen's comment may begin with "="), and a text that a spreadsheet would read as a formula is also marked
"quote prefix", as Excel marks a cell typed with a leading apostrophe: it stays text when edited."""

from __future__ import annotations

import io

import xlsxwriter

from manager.render.tables import Lang, looks_like_formula, report_tables
from manager.reports import Report

MAX_SHEET_NAME = 31  # Excel's limit


def render_xlsx(report: Report, lang: Lang = "vi") -> bytes:
    """The workbook's bytes: sheets named by the tables' titles, in the report's order."""
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    bold = workbook.add_format({"bold": True, "text_wrap": True, "valign": "top"})
    quoted = workbook.add_format({"quote_prefix": True})
    for table in report_tables(report, lang):
        sheet = workbook.add_worksheet(table.title[:MAX_SHEET_NAME])
        for col, header in enumerate(table.headers):
            sheet.write_string(0, col, header, bold)
        for index, row in enumerate(table.rows, start=1):
            for col, value in enumerate(row):
                if isinstance(value, str):
                    if looks_like_formula(value):
                        sheet.write_string(index, col, value, quoted)
                    else:
                        sheet.write_string(index, col, value)
                elif value is not None:
                    sheet.write_number(index, col, value)
        sheet.freeze_panes(1, 0)
        sheet.set_column(0, 0, 22)
        sheet.set_column(1, len(table.headers) - 1, 14)
    workbook.close()
    return buffer.getvalue()
