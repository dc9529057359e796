"""Parsing of the 房间导入 (bulk unit import) file behind the ``importUnits`` mutation.

Pure: bytes in, :class:`ParsedImport` out, no database. The file is a CSV (UTF-8 with or without
BOM, or GB18030/GBK as Chinese Excel writes it) or an XLSX workbook (first sheet). The first
non-blank row is the header; row numbers in errors are the ones a spreadsheet shows (header = 1,
first data row = 2). Every row is checked in full, so one pass reports all its problems.

Columns (headers are case-insensitive, English or Chinese, a trailing ``(㎡)``-style unit is ignored;
unknown columns are ignored):

==========  ==========  ========================================================
building    楼栋        building code, e.g. ``1`` (a ``号楼``/``栋``/``幢`` suffix is dropped)
entrance    单元        entrance code, e.g. ``2`` (a ``单元`` suffix is dropped); may be blank
                        for parking and storage units
floor       楼层        integer, negative below ground
number      房号        number within the floor, 1–99 (``01`` or ``1``)
area        建筑面积    building area in ㎡, > 0, at most 2 decimals
inner_area  套内面积    inner area in ㎡, > 0, at most 2 decimals, ≤ area
usage       用途        residential/commercial/parking/storage or 住宅/商铺/车位/储藏室
code        房间编码    optional; derived as ``{building}-{entrance}-{floor}{number:02d}``
==========  ==========  ========================================================

When a code is given it must equal the derived one, except for parking and storage units without
an entrance, which need an explicit code (any ``A-1-001``-style code) and no number.
"""

from __future__ import annotations

import csv
import enum
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from backend.property.models import UnitUsage

MAX_DATA_ROWS = 5000
MAX_BUILDING_CODE_LENGTH = 16
MAX_ENTRANCE_CODE_LENGTH = 16
MAX_UNIT_CODE_LENGTH = 32
MAX_AREA = Decimal("99999999.99")  # Numeric(10, 2)
MAX_NUMBER_IN_FLOOR = 99

_ZIP_MAGIC = b"PK\x03\x04"
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .xls (and other Office 97-2003 files)
_CENT = Decimal("0.01")

_SEGMENT = re.compile(r"[A-Za-z0-9]+")
_FREE_CODE = re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*")
_INTEGER = re.compile(r"[+-]?\d+")
_HEADER_UNIT_SUFFIX = re.compile(r"\s*[(（][^()（）]*[)）]\s*$")
_BUILDING_SUFFIX = re.compile(r"(号楼|号|栋|幢|座)$")
_ENTRANCE_SUFFIX = re.compile(r"(单元|号)$")


class ErrorCode(enum.StrEnum):
    UNSUPPORTED_FORMAT = "UNSUPPORTED_FORMAT"
    UNREADABLE_FILE = "UNREADABLE_FILE"
    EMPTY_FILE = "EMPTY_FILE"
    MISSING_COLUMN = "MISSING_COLUMN"
    DUPLICATE_COLUMN = "DUPLICATE_COLUMN"
    NO_DATA_ROWS = "NO_DATA_ROWS"
    TOO_MANY_ROWS = "TOO_MANY_ROWS"
    MISSING_VALUE = "MISSING_VALUE"
    INVALID_NUMBER = "INVALID_NUMBER"
    INVALID_CODE = "INVALID_CODE"
    INVALID_AREA = "INVALID_AREA"
    INNER_AREA_EXCEEDS_AREA = "INNER_AREA_EXCEEDS_AREA"
    UNKNOWN_USAGE = "UNKNOWN_USAGE"
    CODE_MISMATCH = "CODE_MISMATCH"
    DUPLICATE_CODE = "DUPLICATE_CODE"


@dataclass(frozen=True, slots=True)
class ImportRow:
    row_number: int
    building_code: str
    entrance_code: str | None
    floor: int
    code: str
    building_area: Decimal
    inner_area: Decimal
    usage: UnitUsage


@dataclass(frozen=True, slots=True)
class ImportError:
    """A problem of the file (``row_number`` None), its header row or one data row.

    The name shadows the builtin ``ImportError`` in this module (nothing here catches that one);
    callers may prefer ``from backend.property import unit_import`` and ``unit_import.ImportError``.
    """

    row_number: int | None
    field: str | None
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ParsedImport:
    """The valid rows and every error; import only when ``errors`` is empty."""

    rows: list[ImportRow]
    errors: list[ImportError]


# columns

_REQUIRED_COLUMNS = ("building", "entrance", "floor", "number", "area", "inner_area", "usage")
_OPTIONAL_COLUMNS = ("code",)

_COLUMN_LABELS = {
    "building": "building (楼栋)",
    "entrance": "entrance (单元)",
    "floor": "floor (楼层)",
    "number": "number (房号)",
    "area": "area (建筑面积)",
    "inner_area": "inner_area (套内面积)",
    "usage": "usage (用途)",
    "code": "code (房间编码)",
}

_HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "building": ("building", "building_code", "楼栋", "楼栋号", "楼号", "楼栋编码"),
    "entrance": ("entrance", "entrance_code", "unit_entrance", "单元", "单元号", "单元编码"),
    "floor": ("floor", "楼层", "层", "所在楼层"),
    "number": ("number", "room", "room_number", "房号", "房间号", "户号"),
    "area": ("area", "building_area", "gross_area", "建筑面积", "面积"),
    "inner_area": ("inner_area", "net_area", "套内面积", "套内建筑面积", "使用面积"),
    "usage": ("usage", "use", "type", "用途", "房屋用途", "房间用途", "类型", "房屋类型"),
    "code": ("code", "unit_code", "room_code", "房间编码", "房间代码", "房屋编码", "编码"),
}
_HEADER_LOOKUP = {alias: column for column, aliases in _HEADER_ALIASES.items() for alias in aliases}

_USAGE_ALIASES: dict[str, UnitUsage] = {
    "residential": UnitUsage.RESIDENTIAL,
    "residence": UnitUsage.RESIDENTIAL,
    "住宅": UnitUsage.RESIDENTIAL,
    "commercial": UnitUsage.COMMERCIAL,
    "shop": UnitUsage.COMMERCIAL,
    "商铺": UnitUsage.COMMERCIAL,
    "商业": UnitUsage.COMMERCIAL,
    "商用": UnitUsage.COMMERCIAL,
    "底商": UnitUsage.COMMERCIAL,
    "parking": UnitUsage.PARKING,
    "车位": UnitUsage.PARKING,
    "停车位": UnitUsage.PARKING,
    "storage": UnitUsage.STORAGE,
    "储藏室": UnitUsage.STORAGE,
    "储藏间": UnitUsage.STORAGE,
    "储物间": UnitUsage.STORAGE,
    "杂物间": UnitUsage.STORAGE,
}
_ANCILLARY = (UnitUsage.PARKING, UnitUsage.STORAGE)


def _error(row_number: int | None, field: str | None, code: ErrorCode, message: str) -> ImportError:
    return ImportError(row_number=row_number, field=field, code=code.value, message=message)


def _only(error: ImportError) -> ParsedImport:
    return ParsedImport(rows=[], errors=[error])


# entry point


def parse_unit_file(content: bytes, filename: str) -> ParsedImport:
    """Parse an uploaded CSV or XLSX unit list. Never raises on bad input: problems are ``errors``."""
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if content.startswith(_ZIP_MAGIC):
        return _parse_xlsx(content)
    if content.startswith(_OLE2_MAGIC) or extension == "xls":
        return _only(
            _error(
                None,
                None,
                ErrorCode.UNSUPPORTED_FORMAT,
                "Legacy Excel 97-2003 (.xls) files are not supported: save the sheet as .xlsx or CSV and upload again.",
            )
        )
    if extension == "xlsx":
        return _only(
            _error(
                None,
                None,
                ErrorCode.UNREADABLE_FILE,
                f"{filename!r} is named .xlsx but is not an Excel workbook: save it again from Excel as .xlsx or CSV.",
            )
        )
    if extension == "csv":
        return _parse_csv(content)
    return _only(
        _error(
            None,
            None,
            ErrorCode.UNSUPPORTED_FORMAT,
            f"Unsupported file {filename!r}: upload a .csv or .xlsx file.",
        )
    )


# readers: both yield (row number, raw cell values)


def _parse_csv(content: bytes) -> ParsedImport:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = content.decode("gb18030")
        except UnicodeDecodeError:
            return _only(
                _error(
                    None,
                    None,
                    ErrorCode.UNREADABLE_FILE,
                    "The CSV file is neither UTF-8 nor GBK/GB18030 text: save it again as 'CSV UTF-8' and upload again.",
                )
            )
    first_line = text.split("\n", 1)[0]
    delimiter = max((",", "\t", ";"), key=first_line.count) if first_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        return _parse_rows(enumerate(reader, start=1))
    except csv.Error as exc:
        return _only(
            _error(
                None,
                None,
                ErrorCode.UNREADABLE_FILE,
                f"The CSV file is malformed near line {reader.line_num}: {exc}.",
            )
        )


def _parse_xlsx(content: bytes) -> ParsedImport:
    import openpyxl  # deferred: only XLSX uploads pay for the import

    try:
        workbook = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception:
        return _only(
            _error(
                None,
                None,
                ErrorCode.UNREADABLE_FILE,
                "The file could not be read as an Excel workbook: save it again from Excel as .xlsx or CSV.",
            )
        )
    try:
        if not workbook.worksheets:
            return _only(_error(None, None, ErrorCode.EMPTY_FILE, "The workbook has no worksheet."))
        sheet = workbook.worksheets[0]
        sheet.reset_dimensions()  # a wrong stored <dimension> must not cut rows off
        rows: Iterator[tuple[Any, ...]] = sheet.iter_rows(values_only=True)
        try:
            return _parse_rows(enumerate(rows, start=1))
        except Exception:
            return _only(
                _error(
                    None,
                    None,
                    ErrorCode.UNREADABLE_FILE,
                    "The first worksheet could not be read: save the workbook again from Excel and upload again.",
                )
            )
    finally:
        workbook.close()


# rows


def _cell_text(value: Any) -> str:
    """A cell as stripped text; integral floats (Excel numbers) lose their ``.0``."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _is_blank(cells: Sequence[Any]) -> bool:
    return all(_cell_text(cell) == "" for cell in cells)


def _normalise_header(value: Any) -> str:
    text = _HEADER_UNIT_SUFFIX.sub("", _cell_text(value)).strip().lower()
    return re.sub(r"[\s\-]+", "_", text)


def _read_header(row_number: int, cells: Sequence[Any]) -> tuple[dict[str, int], list[ImportError]]:
    positions: dict[str, int] = {}
    errors: list[ImportError] = []
    for index, cell in enumerate(cells):
        column = _HEADER_LOOKUP.get(_normalise_header(cell))
        if column is None:
            continue
        if column in positions:
            errors.append(
                _error(
                    row_number,
                    column,
                    ErrorCode.DUPLICATE_COLUMN,
                    f"The header has more than one {_COLUMN_LABELS[column]} column: keep only one.",
                )
            )
            continue
        positions[column] = index
    for column in _REQUIRED_COLUMNS:
        if column not in positions:
            errors.append(
                _error(
                    row_number,
                    column,
                    ErrorCode.MISSING_COLUMN,
                    f"The header row has no {_COLUMN_LABELS[column]} column: add it to row {row_number}.",
                )
            )
    return positions, errors


def _parse_rows(numbered_rows: Iterable[tuple[int, Sequence[Any]]]) -> ParsedImport:
    rows: list[ImportRow] = []
    errors: list[ImportError] = []
    positions: dict[str, int] | None = None
    header_row = 0
    first_row_of_code: dict[str, int] = {}
    data_rows = 0
    for row_number, cells in numbered_rows:
        if _is_blank(cells):
            continue
        if positions is None:
            header_row = row_number
            positions, header_errors = _read_header(row_number, cells)
            if header_errors:
                return ParsedImport(rows=[], errors=header_errors)
            continue
        data_rows += 1
        if data_rows > MAX_DATA_ROWS:
            return _only(
                _error(
                    None,
                    None,
                    ErrorCode.TOO_MANY_ROWS,
                    f"The file has more than {MAX_DATA_ROWS:,} data rows: split it into files of at most "
                    f"{MAX_DATA_ROWS:,} rows each.",
                )
            )
        values = {column: _cell_raw(cells, index) for column, index in positions.items()}
        row, row_errors = _parse_row(row_number, values, first_row_of_code)
        errors.extend(row_errors)
        if row is not None:
            rows.append(row)
    if positions is None:
        return _only(
            _error(None, None, ErrorCode.EMPTY_FILE, "The file is empty: it needs a header row and unit rows.")
        )
    if data_rows == 0:
        return _only(
            _error(
                None,
                None,
                ErrorCode.NO_DATA_ROWS,
                f"The file has a header (row {header_row}) but no unit rows below it.",
            )
        )
    return ParsedImport(rows=rows, errors=errors)


def _cell_raw(cells: Sequence[Any], index: int) -> Any:
    return cells[index] if index < len(cells) else None


def _parse_row(
    row_number: int, values: dict[str, Any], first_row_of_code: dict[str, int]
) -> tuple[ImportRow | None, list[ImportError]]:
    errors: list[ImportError] = []

    def fail(field: str, code: ErrorCode, message: str) -> None:
        errors.append(_error(row_number, field, code, message))

    usage = _parse_usage(row_number, values.get("usage"), errors)
    ancillary = usage in _ANCILLARY
    building = _parse_segment(row_number, "building", values.get("building"), _BUILDING_SUFFIX, errors)
    entrance_text = _cell_text(values.get("entrance"))
    entrance: str | None = None
    if entrance_text:
        entrance = _parse_segment(row_number, "entrance", entrance_text, _ENTRANCE_SUFFIX, errors)
    elif usage is not None and not ancillary:
        fail("entrance", ErrorCode.MISSING_VALUE, "The entrance (单元) is missing.")
    floor = _parse_integer(row_number, "floor", "floor (楼层)", values.get("floor"), errors)
    number_text = _cell_text(values.get("number"))
    free_code = ancillary and not entrance_text  # parking/storage without an entrance: the code is given
    number: int | None = None
    if number_text or not free_code:
        number = _parse_integer(row_number, "number", "number (房号)", values.get("number"), errors)
        if number is not None and not 1 <= number <= MAX_NUMBER_IN_FLOOR:
            fail(
                "number",
                ErrorCode.INVALID_NUMBER,
                f"The number (房号) must be between 1 and {MAX_NUMBER_IN_FLOOR}, got {number}.",
            )
            number = None
    area = _parse_area(row_number, "area", "area (建筑面积)", values.get("area"), errors)
    inner_area = _parse_area(row_number, "inner_area", "inner area (套内面积)", values.get("inner_area"), errors)
    if area is not None and inner_area is not None and inner_area > area:
        fail(
            "inner_area",
            ErrorCode.INNER_AREA_EXCEEDS_AREA,
            f"The inner area (套内面积) {inner_area} ㎡ exceeds the building area (建筑面积) {area} ㎡.",
        )
        inner_area = None

    code = _resolve_code(row_number, values.get("code"), building, entrance, floor, number, free_code, errors)
    if code is not None:
        first = first_row_of_code.setdefault(code, row_number)
        if first != row_number:
            fail("code", ErrorCode.DUPLICATE_CODE, f"The unit code {code} already appears in row {first}.")
            code = None

    # Every None below has its error in ``errors``; the checks narrow the types.
    if errors or building is None or floor is None or code is None or usage is None:
        return None, errors
    if area is None or inner_area is None:
        return None, errors
    return (
        ImportRow(
            row_number=row_number,
            building_code=building,
            entrance_code=entrance,
            floor=floor,
            code=code,
            building_area=area,
            inner_area=inner_area,
            usage=usage,
        ),
        errors,
    )


def _resolve_code(
    row_number: int,
    raw: Any,
    building: str | None,
    entrance: str | None,
    floor: int | None,
    number: int | None,
    free_code: bool,
    errors: list[ImportError],
) -> str | None:
    given = _cell_text(raw)
    if free_code:
        if not given:
            errors.append(
                _error(
                    row_number,
                    "code",
                    ErrorCode.MISSING_VALUE,
                    "A parking or storage unit without an entrance (单元) needs a code (房间编码), e.g. P-1-001.",
                )
            )
            return None
        if not _FREE_CODE.fullmatch(given) or len(given) > MAX_UNIT_CODE_LENGTH:
            errors.append(
                _error(
                    row_number,
                    "code",
                    ErrorCode.INVALID_CODE,
                    f"The code {given!r} is invalid: use letters and digits in dash-separated parts, e.g. P-1-001, "
                    f"at most {MAX_UNIT_CODE_LENGTH} characters.",
                )
            )
            return None
        return given
    if building is None or entrance is None or floor is None or number is None:
        return None  # the missing parts are already reported
    derived = f"{building}-{entrance}-{floor}{number:02d}"
    if len(derived) > MAX_UNIT_CODE_LENGTH:
        errors.append(
            _error(
                row_number,
                "code",
                ErrorCode.INVALID_CODE,
                f"The unit code {derived} is longer than {MAX_UNIT_CODE_LENGTH} characters: use shorter building "
                "and entrance codes.",
            )
        )
        return None
    if given and given != derived:
        errors.append(
            _error(
                row_number,
                "code",
                ErrorCode.CODE_MISMATCH,
                f"The code {given} does not match building, entrance, floor and number, which give {derived}: "
                "correct the code or leave it blank.",
            )
        )
        return None
    return derived


def _parse_usage(row_number: int, raw: Any, errors: list[ImportError]) -> UnitUsage | None:
    text = _cell_text(raw)
    if not text:
        errors.append(_error(row_number, "usage", ErrorCode.MISSING_VALUE, "The usage (用途) is missing."))
        return None
    usage = _USAGE_ALIASES.get(text.lower())
    if usage is None:
        errors.append(
            _error(
                row_number,
                "usage",
                ErrorCode.UNKNOWN_USAGE,
                f"Unknown usage {text!r}: use residential, commercial, parking or storage (住宅, 商铺, 车位 or 储藏室).",
            )
        )
    return usage


def _parse_segment(
    row_number: int, field: str, raw: Any, suffix: re.Pattern[str], errors: list[ImportError]
) -> str | None:
    """A building or entrance code: letters and digits only, since it becomes part of the unit code."""
    label = _COLUMN_LABELS[field]
    text = _cell_text(raw)
    if not text:
        errors.append(_error(row_number, field, ErrorCode.MISSING_VALUE, f"The {label} is missing."))
        return None
    code = suffix.sub("", text).strip() or text
    limit = MAX_BUILDING_CODE_LENGTH if field == "building" else MAX_ENTRANCE_CODE_LENGTH
    if not _SEGMENT.fullmatch(code) or len(code) > limit:
        errors.append(
            _error(
                row_number,
                field,
                ErrorCode.INVALID_CODE,
                f"The {label} {text!r} is invalid: use letters and digits only, at most {limit} characters (e.g. 1 or A).",
            )
        )
        return None
    return code


def _parse_integer(row_number: int, field: str, label: str, raw: Any, errors: list[ImportError]) -> int | None:
    text = _cell_text(raw)
    if not text:
        errors.append(_error(row_number, field, ErrorCode.MISSING_VALUE, f"The {label} is missing."))
        return None
    if isinstance(raw, bool) or not _INTEGER.fullmatch(text):
        errors.append(
            _error(row_number, field, ErrorCode.INVALID_NUMBER, f"The {label} must be a whole number, got {text!r}.")
        )
        return None
    return int(text)


def _parse_area(row_number: int, field: str, label: str, raw: Any, errors: list[ImportError]) -> Decimal | None:
    text = "" if raw is None else str(raw).strip()  # str(float) is the shortest repr: 89.12 stays "89.12"
    if not text:
        errors.append(_error(row_number, field, ErrorCode.MISSING_VALUE, f"The {label} is missing."))
        return None
    value: Decimal | None = None
    if not isinstance(raw, bool):
        try:
            value = Decimal(text)
        except InvalidOperation:
            value = None
    if value is None or not value.is_finite():
        errors.append(
            _error(row_number, field, ErrorCode.INVALID_AREA, f"The {label} must be a number of ㎡, got {text!r}.")
        )
        return None
    if value <= 0 or value > MAX_AREA:
        errors.append(
            _error(
                row_number,
                field,
                ErrorCode.INVALID_AREA,
                f"The {label} must be greater than 0 and at most {MAX_AREA} ㎡, got {text}.",
            )
        )
        return None
    if value != value.quantize(_CENT):  # safe: the value is within Numeric(10, 2) range here
        errors.append(
            _error(
                row_number,
                field,
                ErrorCode.INVALID_AREA,
                f"The {label} {text} has more than 2 decimals: round it to 0.01 ㎡.",
            )
        )
        return None
    return value.quantize(_CENT)
