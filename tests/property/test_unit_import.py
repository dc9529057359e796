"""The 房间导入 parser: CSV/XLSX in, validated rows and row-numbered errors out (no database)."""

from __future__ import annotations

import io
import zipfile
from decimal import Decimal
from typing import Any

import openpyxl
import pytest

from backend.property.models import UnitUsage
from backend.property.unit_import import (
    MAX_DATA_ROWS,
    ImportRow,
    ParsedImport,
    parse_unit_file,
)

HEADER = "building,entrance,floor,number,area,inner_area,usage"


def csv_bytes(*lines: str, encoding: str = "utf-8") -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def xlsx_bytes(rows: list[list[Any]], *, gaps: dict[int, int] | None = None) -> bytes:
    """A workbook whose first sheet holds ``rows`` from A1; ``gaps`` maps a row index to blank rows before it."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    row_number = 1
    for index, row in enumerate(rows):
        row_number += (gaps or {}).get(index, 0)
        for column, value in enumerate(row, start=1):
            sheet.cell(row=row_number, column=column, value=value)
        row_number += 1
    workbook.create_sheet("ignored").append(["building"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def errors_of(parsed: ParsedImport) -> list[tuple[int | None, str | None, str]]:
    return [(error.row_number, error.field, error.code) for error in parsed.errors]


def only_error(content: bytes, filename: str = "units.csv") -> tuple[int | None, str | None, str]:
    parsed = parse_unit_file(content, filename)
    assert parsed.rows == []
    assert len(parsed.errors) == 1, parsed.errors
    return errors_of(parsed)[0]


def row_errors(*lines: str, header: str = HEADER) -> list[tuple[int | None, str | None, str]]:
    parsed = parse_unit_file(csv_bytes(header, *lines), "units.csv")
    assert all(error.message for error in parsed.errors)
    return errors_of(parsed)


# happy paths


def test_csv_happy_path() -> None:
    parsed = parse_unit_file(
        csv_bytes(
            HEADER + ",code",
            "1,2,3,01,89.5,70.12,residential,1-2-301",
            "1,2,1,2,120,102,Commercial,",
            "P,,-1,,13.20,12.50,parking,P-1-001",
            "S,1,-1,5,8.4,7.56,STORAGE,",
        ),
        "units.csv",
    )
    assert parsed.errors == []
    assert parsed.rows == [
        ImportRow(2, "1", "2", 3, "1-2-301", Decimal("89.50"), Decimal("70.12"), UnitUsage.RESIDENTIAL),
        ImportRow(3, "1", "2", 1, "1-2-102", Decimal("120.00"), Decimal("102.00"), UnitUsage.COMMERCIAL),
        ImportRow(4, "P", None, -1, "P-1-001", Decimal("13.20"), Decimal("12.50"), UnitUsage.PARKING),
        ImportRow(5, "S", "1", -1, "S-1--105", Decimal("8.40"), Decimal("7.56"), UnitUsage.STORAGE),
    ]
    assert all(isinstance(row.building_area, Decimal) for row in parsed.rows)
    assert str(parsed.rows[0].building_area) == "89.50"


def test_code_column_is_optional_and_extra_columns_are_ignored() -> None:
    parsed = parse_unit_file(
        csv_bytes("Remark,Building,Entrance,Floor,Number,Area,Inner Area,Usage", "x,A,1,12,3,90,80,residential"),
        "u.csv",
    )
    assert parsed.errors == []
    assert [row.code for row in parsed.rows] == ["A-1-1203"]


def test_bom_and_chinese_headers() -> None:
    content = "\ufeff" + "\r\n".join(
        [
            "楼栋,单元,楼层,房号,建筑面积(㎡),套内面积（㎡）,用途,房间编码",
            "1号楼,2单元,5,01,95.36,76.29,住宅,1-2-501",
            "3栋,1,1,2,130.00,110.50,商铺,",
            "P,,-1,,13.2,12.5,车位,P-1-007",
            "S,,-2,,6.8,6.12,储藏室,S-2-003",
        ]
    )
    parsed = parse_unit_file(content.encode("utf-8"), "房间导入.CSV")
    assert parsed.errors == []
    assert [(row.code, row.building_code, row.entrance_code, row.usage) for row in parsed.rows] == [
        ("1-2-501", "1", "2", UnitUsage.RESIDENTIAL),
        ("3-1-102", "3", "1", UnitUsage.COMMERCIAL),
        ("P-1-007", "P", None, UnitUsage.PARKING),
        ("S-2-003", "S", None, UnitUsage.STORAGE),
    ]


def test_gbk_encoded_csv() -> None:
    content = csv_bytes("楼栋,单元,楼层,房号,建筑面积,套内面积,用途", "1,1,2,03,88.88,70.00,住宅", encoding="gbk")
    with pytest.raises(UnicodeDecodeError):
        content.decode("utf-8")
    parsed = parse_unit_file(content, "export.csv")
    assert parsed.errors == []
    assert parsed.rows == [
        ImportRow(2, "1", "1", 2, "1-1-203", Decimal("88.88"), Decimal("70.00"), UnitUsage.RESIDENTIAL)
    ]


def test_tab_separated_csv() -> None:
    parsed = parse_unit_file(csv_bytes(HEADER.replace(",", "\t"), "1\t1\t2\t1\t80\t60\tresidential"), "u.csv")
    assert parsed.errors == []
    assert [row.code for row in parsed.rows] == ["1-1-201"]


def test_xlsx_with_numeric_cells() -> None:
    content = xlsx_bytes(
        [
            ["楼栋", "单元", "楼层", "房号", "建筑面积", "套内面积", "用途", "房间编码"],
            [1, 2, 3, "01", 89.12, 70.5, "住宅", None],
            [1.0, 2.0, 3.0, 2.0, 100, 80, "residential", "1-2-302"],
            ["P", None, -1, None, 13.2, 12.5, "parking", "P-1-001"],
        ]
    )
    parsed = parse_unit_file(content, "units.xlsx")
    assert parsed.errors == []
    assert parsed.rows == [
        ImportRow(2, "1", "2", 3, "1-2-301", Decimal("89.12"), Decimal("70.50"), UnitUsage.RESIDENTIAL),
        ImportRow(3, "1", "2", 3, "1-2-302", Decimal("100.00"), Decimal("80.00"), UnitUsage.RESIDENTIAL),
        ImportRow(4, "P", None, -1, "P-1-001", Decimal("13.20"), Decimal("12.50"), UnitUsage.PARKING),
    ]


def test_xlsx_is_sniffed_whatever_the_name() -> None:
    content = xlsx_bytes([HEADER.split(","), [1, 1, 1, 1, 50, 40, "residential"]])
    for name in ("upload", "units.csv", "units.bin"):
        parsed = parse_unit_file(content, name)
        assert parsed.errors == []
        assert [row.code for row in parsed.rows] == ["1-1-101"]


def test_xlsx_area_with_more_than_two_decimals_is_rejected() -> None:
    content = xlsx_bytes([HEADER.split(","), [1, 1, 1, 1, 89.8736, 70, "residential"]])
    assert errors_of(parse_unit_file(content, "u.xlsx")) == [(2, "area", "INVALID_AREA")]


def test_xlsx_float_area_with_binary_noise_is_rejected() -> None:
    """Excel stores 17 significant digits, so an unrounded formula result such as 0.1 + 0.2 shows its noise."""
    content = xlsx_bytes([HEADER.split(","), [1, 1, 1, 1, 50.25, 40.3, "residential"]])
    source, patched = io.BytesIO(content), io.BytesIO()
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(patched, "w") as copy:
        for item in original.infolist():
            data = original.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                assert b"<v>40.3</v>" in data
                data = data.replace(b"<v>40.3</v>", b"<v>40.300000000000004</v>")
            copy.writestr(item, data)
    assert errors_of(parse_unit_file(patched.getvalue(), "u.xlsx")) == [(2, "inner_area", "INVALID_AREA")]


# blank rows and row numbers


def test_blank_rows_are_skipped_and_rows_keep_their_spreadsheet_numbers() -> None:
    parsed = parse_unit_file(
        csv_bytes(
            HEADER,
            "1,1,1,1,50,40,residential",
            "",
            ",,,,,,",
            " , ,\t, , , , ",
            "1,1,1,2,50,60,residential",
            "1,1,1,3,50,40,residential",
        ),
        "u.csv",
    )
    assert [row.row_number for row in parsed.rows] == [2, 7]
    assert errors_of(parsed) == [(6, "inner_area", "INNER_AREA_EXCEEDS_AREA")]


def test_xlsx_blank_rows_are_skipped_and_rows_keep_their_spreadsheet_numbers() -> None:
    content = xlsx_bytes(
        [
            HEADER.split(","),
            [1, 1, 1, 1, 50, 40, "residential"],
            [1, 1, 1, 2, 50, 40, "villa"],
            [1, 1, 1, 3, 50, 40, "residential"],
        ],
        gaps={1: 2, 3: 1},
    )
    parsed = parse_unit_file(content, "u.xlsx")
    assert [row.row_number for row in parsed.rows] == [4, 7]
    assert errors_of(parsed) == [(5, "usage", "UNKNOWN_USAGE")]


def test_leading_blank_rows_before_the_header() -> None:
    parsed = parse_unit_file(csv_bytes(",,", HEADER, "1,1,1,1,50,40,residential"), "u.csv")
    assert parsed.errors == []
    assert [row.row_number for row in parsed.rows] == [3]


def test_quoted_multiline_cell_counts_as_one_row() -> None:
    parsed = parse_unit_file(
        csv_bytes(HEADER + ",note", '1,1,1,1,50,40,residential,"two\nlines"', "1,1,1,2,50,x,residential"), "u.csv"
    )
    assert [row.row_number for row in parsed.rows] == [2]
    assert errors_of(parsed) == [(3, "inner_area", "INVALID_AREA")]


# row errors


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (",1,1,1,50,40,residential", [(2, "building", "MISSING_VALUE")]),
        ("1,,1,1,50,40,residential", [(2, "entrance", "MISSING_VALUE")]),
        ("1,1,,1,50,40,residential", [(2, "floor", "MISSING_VALUE")]),
        ("1,1,1,,50,40,residential", [(2, "number", "MISSING_VALUE")]),
        ("1,1,1,1,,40,residential", [(2, "area", "MISSING_VALUE")]),
        ("1,1,1,1,50,,residential", [(2, "inner_area", "MISSING_VALUE")]),
        ("1,1,1,1,50,40,", [(2, "usage", "MISSING_VALUE")]),
        ("P,,-1,,13,12,parking", [(2, "code", "MISSING_VALUE")]),
        ("1,1,2F,1,50,40,residential", [(2, "floor", "INVALID_NUMBER")]),
        ("1,1,2.5,1,50,40,residential", [(2, "floor", "INVALID_NUMBER")]),
        ("1,1,2,A1,50,40,residential", [(2, "number", "INVALID_NUMBER")]),
        ("1,1,2,0,50,40,residential", [(2, "number", "INVALID_NUMBER")]),
        ("1,1,2,100,50,40,residential", [(2, "number", "INVALID_NUMBER")]),
        ("1,1,1,1,abc,40,residential", [(2, "area", "INVALID_AREA")]),
        ("1,1,1,1,50.123,40,residential", [(2, "area", "INVALID_AREA")]),
        ("1,1,1,1,0,0,residential", [(2, "area", "INVALID_AREA"), (2, "inner_area", "INVALID_AREA")]),
        ("1,1,1,1,-5,-6,residential", [(2, "area", "INVALID_AREA"), (2, "inner_area", "INVALID_AREA")]),
        ("1,1,1,1,NaN,Infinity,residential", [(2, "area", "INVALID_AREA"), (2, "inner_area", "INVALID_AREA")]),
        ("1,1,1,1,100000000,40,residential", [(2, "area", "INVALID_AREA")]),
        ('1,1,1,1,"1,050.00",40,residential', [(2, "area", "INVALID_AREA")]),
        ("1,1,1,1,50,50.01,residential", [(2, "inner_area", "INNER_AREA_EXCEEDS_AREA")]),
        ("1,1,1,1,50,40,villa", [(2, "usage", "UNKNOWN_USAGE")]),
        ("1-2,1,1,1,50,40,residential", [(2, "building", "INVALID_CODE")]),
        ("1,一,1,1,50,40,residential", [(2, "entrance", "INVALID_CODE")]),
        ("P,,-1,,13,12,parking,P_1_001", [(2, "code", "INVALID_CODE")]),
        ("1,1,3,1,50,40,residential,1-1-31", [(2, "code", "CODE_MISMATCH")]),
        ("1,1,3,1,50,40,residential,1-2-301", [(2, "code", "CODE_MISMATCH")]),
    ],
)
def test_row_error(line: str, expected: list[tuple[int, str, str]]) -> None:
    assert row_errors(line, header=HEADER + ",code") == expected


def test_equal_areas_are_fine_and_values_are_quantised() -> None:
    parsed = parse_unit_file(csv_bytes(HEADER, "1,1,1,1,50.000,50,residential"), "u.csv")
    assert parsed.errors == []
    assert parsed.rows[0].building_area == parsed.rows[0].inner_area == Decimal("50.00")


def test_all_problems_of_a_row_are_reported_and_the_row_is_dropped() -> None:
    parsed = parse_unit_file(csv_bytes(HEADER, "1,1,x,1,50.555,,condo", "1,1,1,1,50,40,residential"), "u.csv")
    assert errors_of(parsed) == [
        (2, "usage", "UNKNOWN_USAGE"),
        (2, "floor", "INVALID_NUMBER"),
        (2, "area", "INVALID_AREA"),
        (2, "inner_area", "MISSING_VALUE"),
    ]
    assert [row.row_number for row in parsed.rows] == [3]


def test_duplicate_code_points_at_the_first_row() -> None:
    parsed = parse_unit_file(
        csv_bytes(
            HEADER + ",code",
            "1,1,3,1,50,40,residential,",
            "1,1,3,2,50,40,residential,",
            "1,1,3,01,60,40,residential,1-1-301",
            "P,,-1,,13,12,parking,P-1-001",
            "P,,-1,,13,12,parking,P-1-001",
        ),
        "u.csv",
    )
    assert errors_of(parsed) == [(4, "code", "DUPLICATE_CODE"), (6, "code", "DUPLICATE_CODE")]
    assert "row 2" in parsed.errors[0].message
    assert "row 5" in parsed.errors[1].message
    assert [row.row_number for row in parsed.rows] == [2, 3, 5]


# file-level errors


def test_missing_columns_are_all_reported_on_the_header_row() -> None:
    assert errors_of(parse_unit_file(csv_bytes("building,entrance,floor,area", "1,1,1,50"), "u.csv")) == [
        (1, "number", "MISSING_COLUMN"),
        (1, "inner_area", "MISSING_COLUMN"),
        (1, "usage", "MISSING_COLUMN"),
    ]


def test_duplicate_column() -> None:
    assert errors_of(parse_unit_file(csv_bytes(HEADER + ",用途", "1,1,1,1,50,40,residential,住宅"), "u.csv")) == [
        (1, "usage", "DUPLICATE_COLUMN")
    ]


def test_too_many_rows() -> None:
    line = "1,1,1,1,50,40,residential"
    assert parse_unit_file(csv_bytes(HEADER, *[line] * MAX_DATA_ROWS), "u.csv").errors[-1].code == "DUPLICATE_CODE"
    row_number, field, code = only_error(csv_bytes(HEADER, *[line] * (MAX_DATA_ROWS + 1)))
    assert (row_number, field, code) == (None, None, "TOO_MANY_ROWS")


def test_exactly_the_row_limit_is_accepted() -> None:
    lines = [f"{n // 99 + 1},1,1,{n % 99 + 1},50,40,residential" for n in range(MAX_DATA_ROWS)]
    parsed = parse_unit_file(csv_bytes(HEADER, "", *lines), "u.csv")
    assert parsed.errors == []
    assert len(parsed.rows) == MAX_DATA_ROWS
    assert parsed.rows[-1].row_number == MAX_DATA_ROWS + 2


@pytest.mark.parametrize(
    ("content", "filename", "code"),
    [
        (b"building\n", "units.txt", "UNSUPPORTED_FORMAT"),
        (b"building\n", "units", "UNSUPPORTED_FORMAT"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, "units.xls", "UNSUPPORTED_FORMAT"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, "units.csv", "UNSUPPORTED_FORMAT"),
        (b"building,entrance\n", "units.xlsx", "UNREADABLE_FILE"),
        (b"PK\x03\x04 not really a zip", "units.xlsx", "UNREADABLE_FILE"),
        (b"\xff\xfe\x00\xd8garbage\x81", "units.csv", "UNREADABLE_FILE"),
        (b"", "units.csv", "EMPTY_FILE"),
        (b"\xef\xbb\xbf\r\n,,\r\n", "units.csv", "EMPTY_FILE"),
        (csv_bytes(HEADER, ",,,"), "units.csv", "NO_DATA_ROWS"),
    ],
)
def test_file_errors(content: bytes, filename: str, code: str) -> None:
    row_number, field, actual = only_error(content, filename)
    assert (row_number, field, actual) == (None, None, code)


def test_empty_xlsx() -> None:
    assert only_error(xlsx_bytes([]), "u.xlsx") == (None, None, "EMPTY_FILE")


def test_messages_are_actionable() -> None:
    parsed = parse_unit_file(csv_bytes(HEADER + ",code", "1,1,3,1,50,40,residential,1-1-31"), "u.csv")
    assert parsed.errors[0].message == (
        "The code 1-1-31 does not match building, entrance, floor and number, which give 1-1-301: "
        "correct the code or leave it blank."
    )
