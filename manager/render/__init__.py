"""Renderers of a ``manager.reports.Report``: plain text, CSV, XLSX and a printable HTML page.

Each takes the report and ``lang`` ("vi", the default, or "en") and returns the whole document (``str`` for
text and HTML, ``bytes`` for CSV and XLSX); none writes a file. ``tables.report_tables`` gives the same figures
as plain tables for other uses.
"""

from manager.render.csvfile import csv_dialect, render_csv, render_csv_table
from manager.render.html import render_html
from manager.render.tables import LANGS, Table, report_tables
from manager.render.text import render_text
from manager.render.xlsx import render_xlsx

__all__ = ["LANGS", "Table", "csv_dialect", "render_csv", "render_csv_table", "render_html", "render_text",
           "render_xlsx", "report_tables"]
