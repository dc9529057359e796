"""File downloads of billing data for finance clerks, next to the GraphQL API:

    GET /exports/bills.csv   | /exports/bills.xlsx    ?estateId=…&period=YYYY-MM&status=…&feeItemCode=…
    GET /exports/arrears.csv | /exports/arrears.xlsx  ?estateId=…

Not GraphQL, but the same API rules: the caller is authenticated exactly as on ``/graphql``
(a bearer access token), counts against the same rate limit, needs ``Bill read``, and gets
only the rows the API would show; an estate outside the scope is answered like a missing
one. Every export is audited with its filters and row count before the first byte leaves.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import anyio
import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from authz.principal import Permissions
from authz.scopes import scoped
from backend.accounts.errors import InvalidToken
from backend.audit import service as audit
from backend.billing import exports
from backend.billing.errors import BillingError
from backend.billing.models import BillStatus
from backend.billing.periods import parse_month
from backend.db import local_today
from backend.property.models import Estate
from backend.spreadsheets import CSV_MEDIA_TYPE, XLSX_MEDIA_TYPE, csv_stream, file_chunks, xlsx_file
from schema.core.errors import ErrorCode
from schema.core.http import (
    INVALID_TOKEN_MESSAGE,
    client_ip,
    error_body,
    principal_from_header,
    request_id_of,
)
from schema.core.relay import try_decode_id

if TYPE_CHECKING:
    from backend.app import Runtime

EXPORT_PATHS = ("/exports/bills.csv", "/exports/bills.xlsx", "/exports/arrears.csv", "/exports/arrears.xlsx")
PARAMETERS = {"bills": {"estateId", "period", "status", "feeItemCode"}, "arrears": {"estateId"}}
SHEET_TITLES = {"bills": "Bills", "arrears": "Arrears"}
NOT_FOUND = "NOT_FOUND"


class ExportRefused(Exception):
    """The request gets an error body instead of a file."""

    def __init__(self, status: int, message: str, code: ErrorCode | str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers

    def response(self) -> Response:
        return Response(
            orjson.dumps(error_body(self.message, self.code)),
            status_code=self.status,
            media_type="application/json",
            headers=self.headers,
        )


@dataclass(frozen=True, slots=True)
class ExportRequest:
    report: str  # "bills" | "arrears"
    file_format: str  # "csv" | "xlsx"
    estate_id: int | None  # None: not an Estate id at all (answered like a missing estate)
    month: dt.date | None = None
    statuses: tuple[BillStatus, ...] = ()
    fee_item_code: str | None = None

    def export_of(self, estate: Estate, permissions: Permissions, today: dt.date) -> exports.Export:
        if self.report == "arrears":
            return exports.arrears_export(permissions, estate_id=estate.id, today=today)
        filters = exports.BillFilters(estate.id, self.month, self.statuses, self.fee_item_code)
        return exports.bills_export(permissions, filters)

    def audit_detail(self, today: dt.date) -> dict[str, Any]:
        if self.report == "arrears":
            return {"asOf": today.isoformat()}
        return {
            "period": f"{self.month:%Y-%m}" if self.month else None,
            "status": [s.name for s in self.statuses] or None,
            "feeItemCode": self.fee_item_code,
        }

    def filename(self, estate: Estate, today: dt.date) -> str:
        if self.report == "arrears":
            return f"arrears-{estate.code}-{today.isoformat()}.{self.file_format}"
        period = f"-{self.month:%Y-%m}" if self.month else ""
        return f"bills-{estate.code}{period}.{self.file_format}"


class ClosingStreamingResponse(StreamingResponse):
    """Closes its body however the response ends — a client that goes away mid-download
    included — so the export's cursor and connection are released at once."""

    def __init__(self, body: AsyncGenerator[bytes, None], **kwargs: Any) -> None:
        super().__init__(body, **kwargs)
        self._body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._body.aclose()


class BillingExports:
    """The endpoint behind :data:`EXPORT_PATHS`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def __call__(self, request: Request) -> Response:
        try:
            if request.method != "GET":
                raise ExportRefused(405, "Exports are downloaded with GET.", ErrorCode.BAD_USER_INPUT, {"Allow": "GET"})
            permissions = await self._caller(request)
            return await self._export(request, permissions, _parse(request))
        except ExportRefused as refused:
            return refused.response()

    async def _caller(self, request: Request) -> Permissions:
        """Authenticated as on /graphql, within the rate limit, holding ``Bill read``."""
        try:
            principal = principal_from_header(self.runtime, request.headers.get("authorization"))
        except InvalidToken as exc:
            raise ExportRefused(
                401,
                INVALID_TOKEN_MESSAGE,
                ErrorCode.UNAUTHENTICATED,
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            ) from exc
        if principal is None:
            raise ExportRefused(
                401, "Authentication required.", ErrorCode.UNAUTHENTICATED, {"WWW-Authenticate": "Bearer"}
            )
        retry_after = await self.runtime.request_limiter.retry_after(principal, client_ip(request))
        if retry_after is not None:
            raise ExportRefused(429, "Too many requests.", ErrorCode.RATE_LIMITED, {"Retry-After": str(retry_after)})
        permissions = Permissions(principal, self.runtime.authorizer)
        if not permissions.anywhere("Bill", "read"):
            raise ExportRefused(403, "You are not allowed to do this.", ErrorCode.FORBIDDEN)
        return permissions

    async def _export(self, request: Request, permissions: Permissions, wanted: ExportRequest) -> Response:
        session = self.runtime.sessionmaker()
        streaming = False
        try:
            await exports.begin_snapshot(session)
            estate = await _estate(session, permissions, wanted.estate_id)
            today = local_today()
            export = wanted.export_of(estate, permissions, today)
            detail = wanted.audit_detail(today)
            headers = {
                "Content-Disposition": _attachment(wanted.filename(estate, today)),
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            }
            if wanted.file_format == "csv":
                rows = await exports.count_rows(session, export)
                await self._audit(request, permissions, export, estate, detail | {"format": "csv", "rows": rows})
                response = ClosingStreamingResponse(
                    _csv_body(session, export), media_type=CSV_MEDIA_TYPE, headers=headers
                )
                streaming = True  # the body closes the session once it is sent
                return response
            file, rows = await xlsx_file(SHEET_TITLES[export.name], export.header, exports.row_chunks(session, export))
        finally:
            if not streaming:
                await session.close()
        try:
            await self._audit(request, permissions, export, estate, detail | {"format": "xlsx", "rows": rows})
            size = file.seek(0, 2)
            file.seek(0)
        except BaseException:
            file.close()
            raise
        headers["Content-Length"] = str(size)
        return ClosingStreamingResponse(file_chunks(file), media_type=XLSX_MEDIA_TYPE, headers=headers)

    async def _audit(
        self,
        request: Request,
        permissions: Permissions,
        export: exports.Export,
        estate: Estate,
        detail: dict[str, Any],
    ) -> None:
        """Committed on its own before the file goes out: an interrupted download is still
        on record."""
        assert permissions.principal is not None
        async with self.runtime.sessionmaker() as session, session.begin():
            await audit.record(
                session,
                actor_user_id=permissions.principal.user_id,
                action=f"{export.name}.export",
                target_type="Estate",
                target_id=estate.id,
                request_id=request_id_of(request),
                detail={"estate": estate.code, **detail},
            )


def _parse(request: Request) -> ExportRequest:
    report, _, file_format = request.url.path.rpartition("/")[2].partition(".")
    params = request.query_params
    unknown = sorted(set(params) - PARAMETERS[report])
    if unknown:
        raise ExportRefused(400, f"Unknown parameter {unknown[0]!r}.", ErrorCode.BAD_USER_INPUT)
    raw_estate = params.get("estateId")
    if not raw_estate:
        raise ExportRefused(400, "`estateId` is required.", ErrorCode.BAD_USER_INPUT)
    estate_id = try_decode_id(raw_estate, "Estate")
    if report == "arrears":
        return ExportRequest(report, file_format, estate_id)
    month = None
    if params.get("period"):
        try:
            month = parse_month(params["period"])
        except BillingError as exc:
            raise ExportRefused(400, exc.message, ErrorCode.BAD_USER_INPUT) from exc
    statuses: list[BillStatus] = []
    for value in (part.strip() for raw in params.getlist("status") for part in raw.split(",")):
        if value not in BillStatus.__members__:
            names = ", ".join(BillStatus.__members__)
            raise ExportRefused(400, f"`status` is one or more of {names}.", ErrorCode.BAD_USER_INPUT)
        statuses.append(BillStatus[value])
    fee_item_code = params.get("feeItemCode") or None
    return ExportRequest(report, file_format, estate_id, month, tuple(dict.fromkeys(statuses)), fee_item_code)


async def _estate(session: AsyncSession, permissions: Permissions, estate_id: int | None) -> Estate:
    """The estate if the caller may read its bills; otherwise NOT_FOUND, exactly as for an
    id that does not exist (never FORBIDDEN, which would tell that it exists)."""
    estate = None
    if estate_id is not None:
        estate = await session.scalar(scoped(select(Estate).where(Estate.id == estate_id), Estate, permissions))
    if estate is None or not permissions.allows_at("Bill", "read", estate.org_path):
        raise ExportRefused(404, "No estate with this id.", NOT_FOUND)
    return estate


async def _csv_body(session: AsyncSession, export: exports.Export) -> AsyncGenerator[bytes, None]:
    try:
        async for piece in csv_stream(export.header, exports.row_chunks(session, export)):
            yield piece
    finally:
        with anyio.CancelScope(shield=True):
            await session.close()


_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]")


def _attachment(filename: str) -> str:
    """RFC 6266: an ASCII fallback and the UTF-8 name (an estate code may be Chinese)."""
    fallback = _UNSAFE_FILENAME.sub("_", filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
