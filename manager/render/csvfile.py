"""The report as CSV that Excel opens right: UTF-8 with a byte-order mark (so Vietnamese shows as written), CRLF
line ends, in the conventions of the report's language. Excel reads a CSV file with the computer's regional
settings: in Vietnamese ones (vi-VN) the list separator is ";" and the decimal mark ",", so the Vietnamese file
(``lang="vi"``) is semicolon-separated with decimal commas ("3,19"); the English one is comma-separated with
decimal points ("3.19"). ``csv_dialect(lang)`` gives the dialect to read either back with Python's ``csv``.

One file holds every table, as sections: the table's title alone on a row, its header row, its rows, then an
empty row. ``render_csv_table`` gives one table alone (header row first), for a program to read.

No text becomes a formula: a text cell that a spreadsheet would read as one (beginning with = + - @, a tab or
a carriage return: a citizen's comment may) is written with a leading apostrophe (``tables.formula_safe``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any, Protocol

from manager.render.tables import Cell, Lang, Table, formula_safe, labels, report_tables
from manager.reports import Report

BOM = "\ufeff"


class ExcelVietnamese(csv.excel):
    """Excel's CSV under Vietnamese regional settings: ";" between fields (numbers are written "3,19")."""

    delimiter = ";"


def csv_dialect(lang: Lang) -> type[csv.Dialect]:
    """The CSV dialect of the report in ``lang``: ``ExcelVietnamese`` for "vi", ``csv.excel`` for "en"."""
    labels(lang)  # ValueError for a language the reports do not have
    return ExcelVietnamese if lang == "vi" else csv.excel


def render_csv(report: Report, lang: Lang = "vi") -> bytes:
    """Every table of the report in one CSV file, as sections (see the module docstring)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, dialect=csv_dialect(lang), lineterminator="\r\n")
    for table in report_tables(report, lang):
        writer.writerow([table.title])
        _write(writer, table, lang)
        writer.writerow([])
    return (BOM + buffer.getvalue()).encode("utf-8")


def render_csv_table(report: Report, name: str, lang: Lang = "vi") -> bytes:
    """One table (a name of ``report_tables``: ``summary``, ``services``, ..., ``rating_comments``) as a plain
    CSV file: header row, then rows. KeyError for another name."""
    tables = {table.name: table for table in report_tables(report, lang)}
    buffer = io.StringIO()
    _write(csv.writer(buffer, dialect=csv_dialect(lang), lineterminator="\r\n"), tables[name], lang)
    return (BOM + buffer.getvalue()).encode("utf-8")


class _Writer(Protocol):
    def writerow(self, row: Iterable[Any], /) -> Any: ...
    def writerows(self, rows: Iterable[Iterable[Any]], /) -> None: ...


def _write(writer: _Writer, table: Table, lang: Lang) -> None:
    writer.writerow(table.headers)
    writer.writerows([_cell(value, lang) for value in row] for row in table.rows)


def _cell(value: Cell, lang: Lang) -> str | int:
    if value is None:
        return ""
    if isinstance(value, float):
        return str(value).replace(".", ",") if lang == "vi" else str(value)
    if isinstance(value, str):
        return formula_safe(value)
    return value
