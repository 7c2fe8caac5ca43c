"""The report as CSV that Excel opens right: UTF-8 with a byte-order mark (so Vietnamese shows as written),
comma-separated, CRLF line ends.

One file holds every table, as sections: the table's title alone on a row, its header row, its rows, then an
empty row. ``render_csv_table`` gives one table alone (header row first), for a program to read.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any, Protocol

from manager.render.tables import Cell, Lang, Table, report_tables
from manager.reports import Report

BOM = "\ufeff"


def render_csv(report: Report, lang: Lang = "vi") -> bytes:
    """Every table of the report in one CSV file, as sections (see the module docstring)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for table in report_tables(report, lang):
        writer.writerow([table.title])
        _write(writer, table)
        writer.writerow([])
    return (BOM + buffer.getvalue()).encode("utf-8")


def render_csv_table(report: Report, name: str, lang: Lang = "vi") -> bytes:
    """One table (``summary``, ``services``, ``counters``, ``lanes``, ``hours`` or ``days``) as a plain CSV
    file: header row, then rows. KeyError for another name."""
    tables = {table.name: table for table in report_tables(report, lang)}
    buffer = io.StringIO()
    _write(csv.writer(buffer, lineterminator="\r\n"), tables[name])
    return (BOM + buffer.getvalue()).encode("utf-8")


class _Writer(Protocol):
    def writerow(self, row: Iterable[Any], /) -> Any: ...
    def writerows(self, rows: Iterable[Iterable[Any]], /) -> None: ...


def _write(writer: _Writer, table: Table) -> None:
    writer.writerow(table.headers)
    writer.writerows([_cell(value) for value in row] for row in table.rows)


def _cell(value: Cell) -> str | int | float:
    return "" if value is None else value
