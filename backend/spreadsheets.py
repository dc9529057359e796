"""Tables written for Excel: CSV streamed chunk by chunk, XLSX built in a spooled file.

Both formats get the same cells. Text that Excel would run as a formula (a cell starting
with ``= + - @``, a tab or a carriage return: OWASP's "CSV injection") is prefixed with
``'``; characters XML cannot carry are dropped. Money is a ``Decimal`` written with
exactly two places (text in CSV, a number formatted ``0.00`` in XLSX), dates ISO 8601.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import tempfile
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Sequence
from decimal import Decimal
from typing import IO

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ERROR_CODES, ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

Cell = str | Decimal | dt.date | int | None
Row = Sequence[Cell]

CENT = Decimal("0.01")
BOM = "\ufeff"  # lets Excel read the CSV as UTF-8 (Chinese names, 物业费)
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# An XLSX stays in memory up to this size, then spills to a temporary file on disk.
SPOOL_BYTES = 8 * 1024 * 1024
FILE_CHUNK_BYTES = 64 * 1024


def safe_text(value: str) -> str:
    """``value`` as a text cell that no spreadsheet runs as a formula."""
    value = ILLEGAL_CHARACTERS_RE.sub("", value)
    return "'" + value if value.startswith(_FORMULA_PREFIXES) else value


def csv_cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, Decimal):
        # Our own numbers (a leading minus is a negative amount, not a formula).
        return f"{value.quantize(CENT):f}"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def csv_lines(rows: Sequence[Row], *, first: bool = False) -> bytes:
    """Rows as CSV lines (CRLF, RFC 4180 quoting), UTF-8; ``first`` starts the file with a BOM."""
    buffer = io.StringIO()
    if first:
        buffer.write(BOM)
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows([csv_cell(value) for value in row] for row in rows)
    return buffer.getvalue().encode("utf-8")


async def csv_stream(header: Row, chunks: AsyncIterable[Sequence[Row]]) -> AsyncIterator[bytes]:
    """The CSV file: the header line, then one piece per chunk of rows as they arrive."""
    yield csv_lines([header], first=True)
    async for rows in chunks:
        yield csv_lines(rows)


class XlsxSheet:
    """One write-only worksheet (openpyxl keeps only the row being written in memory)."""

    def __init__(self, title: str, header: Row) -> None:
        self.workbook = Workbook(write_only=True)
        self.sheet: WriteOnlyWorksheet = self.workbook.create_sheet(title)
        self.rows = 0
        bold = Font(bold=True)
        cells = []
        for value in header:
            cell = WriteOnlyCell(self.sheet, value=str(value))
            cell.font = bold
            cells.append(cell)
        self.sheet.append(cells)

    def _cell(self, value: Cell) -> object:
        if isinstance(value, Decimal):
            cell = WriteOnlyCell(self.sheet, value=value.quantize(CENT))
            cell.number_format = "0.00"
            return cell
        if isinstance(value, str):
            text = safe_text(value)
            if text in ERROR_CODES:  # openpyxl would store "#N/A" as an error value
                cell = WriteOnlyCell(self.sheet, value=text)
                cell.data_type = "s"
                return cell
            return text
        if isinstance(value, dt.date):
            cell = WriteOnlyCell(self.sheet, value=value)
            cell.number_format = "yyyy-mm-dd"
            return cell
        return value

    def append(self, rows: Sequence[Row]) -> None:
        for row in rows:
            self.sheet.append([self._cell(value) for value in row])
        self.rows += len(rows)

    def save(self) -> IO[bytes]:
        """The finished workbook in a spooled temporary file, positioned at its start."""
        file = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115  # the caller closes it
        self.workbook.save(file)
        file.seek(0)
        return file


async def xlsx_file(title: str, header: Row, chunks: AsyncIterable[Sequence[Row]]) -> tuple[IO[bytes], int]:
    """The XLSX file of ``chunks`` and its number of data rows. openpyxl is synchronous CPU
    work: each chunk and the final zip are written off the event loop."""
    sheet = XlsxSheet(title, header)
    async for rows in chunks:
        await asyncio.to_thread(sheet.append, rows)
    return await asyncio.to_thread(sheet.save), sheet.rows


async def file_chunks(file: IO[bytes]) -> AsyncGenerator[bytes, None]:
    """A file's bytes in chunks; the file is closed at the end (or when the reader stops)."""
    try:
        while chunk := await asyncio.to_thread(file.read, FILE_CHUNK_BYTES):
            yield chunk
    finally:
        file.close()
