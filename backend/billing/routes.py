"""HTTP routes of online payments: the providers' callback, and the sandbox's pay page.

``POST /payments/callback/{provider}`` is what a provider calls. It answers 200
``{"code": "SUCCESS"}`` once the notice is handled (settled, or settled before), so the
provider stops retrying; 4xx ``{"code": "FAIL", "message": <outcome>}`` when it is not
believed or does not match; 500 when our side failed (the provider retries).

``GET``/``POST /payments/sandbox/{orderId}`` is the sandbox provider's own pay page, served
by this app only while the sandbox is the provider and never in production.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from backend.billing import online
from backend.billing.providers import CallbackOutcome, OrderState
from backend.billing.sandbox import SandboxError, SandboxGateway, SandboxOrder

if TYPE_CHECKING:
    from backend.app import Runtime

log = structlog.get_logger(__name__)

MAX_CALLBACK_BYTES = 64 * 1024

STATUS = {
    CallbackOutcome.SETTLED: 200,
    CallbackOutcome.DUPLICATE: 200,
    CallbackOutcome.NOT_PAID: 200,
    CallbackOutcome.BAD_SIGNATURE: 401,
    CallbackOutcome.STALE: 401,
    CallbackOutcome.MALFORMED: 400,
    CallbackOutcome.MERCHANT_MISMATCH: 400,
    CallbackOutcome.UNKNOWN_ORDER: 404,
    CallbackOutcome.AMOUNT_MISMATCH: 409,
    CallbackOutcome.PAYMENT_FAILED: 409,
    CallbackOutcome.ERROR: 500,
}


def _fail(status: int, message: str) -> JSONResponse:
    return JSONResponse({"code": "FAIL", "message": message}, status_code=status)


async def _body(request: Request, limit: int) -> bytes | None:
    """The raw body, or None once it passes ``limit`` bytes (read no further)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def payment_routes(runtime_of: Callable[[], Runtime], *, sandbox_pages: bool) -> list[Route]:
    async def callback(request: Request) -> Response:
        runtime = runtime_of()
        provider = runtime.payment_providers.get(request.path_params["provider"])
        if provider is None:
            return _fail(404, "UNKNOWN_PROVIDER")
        body = await _body(request, MAX_CALLBACK_BYTES)
        if body is None:
            return _fail(413, "TOO_LARGE")
        result = await online.receive_callback(
            sessionmaker=runtime.sessionmaker,
            provider=provider,
            headers=request.headers,
            body=body,
            request_id=request.scope.get("state", {}).get("request_id"),
        )
        if result.outcome.accepted:
            return JSONResponse({"code": "SUCCESS"})
        return _fail(STATUS[result.outcome], result.outcome.value)

    routes = [Route("/payments/callback/{provider}", callback, methods=["POST"])]
    if not sandbox_pages:
        return routes

    def gateway() -> SandboxGateway | None:
        sandbox = runtime_of().payment_providers.sandbox
        return sandbox.gateway if sandbox is not None else None

    async def sandbox_page(request: Request) -> Response:
        sandbox = gateway()
        if sandbox is None:
            return HTMLResponse(_page("Sandbox", "<p>The sandbox provider is not enabled.</p>"), status_code=404)
        order_id = request.path_params["order_id"]
        message = ""
        if request.method == "POST":
            form = await request.form()
            try:
                paid = await sandbox.pay(order_id)
                message = "Paid."
                if form.get("callback", "1") == "1":
                    status = await sandbox.send_callback(paid)
                    message += f" The merchant answered the callback with HTTP {status}."
                else:
                    message += " No callback sent: reconciliation will find the payment."
            except SandboxError as exc:
                message = str(exc)
        order = await sandbox.order(order_id)
        if order is None:
            return HTMLResponse(_page("Sandbox", f"<p>No order {html.escape(order_id)}.</p>"), status_code=404)
        return HTMLResponse(_page(f"Sandbox order {order.order_id}", _order_html(order, message)))

    routes.append(Route("/payments/sandbox/{order_id}", sandbox_page, methods=["GET", "POST"]))
    return routes


def _order_html(order: SandboxOrder, message: str) -> str:
    rows = [
        ("Merchant", order.merchant_id),
        ("Order", order.order_id),
        ("For", order.description),
        ("Amount", f"¥{order.amount}"),
        ("State", order.state.value),
        ("Expires", order.expires_at.isoformat(timespec="seconds")),
        ("Transaction", order.transaction_id or "—"),
    ]
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    note = f"<p class=note>{html.escape(message)}</p>" if message else ""
    actions = ""
    if order.state is OrderState.PENDING:
        actions = (
            "<form method=post><input type=hidden name=callback value=1><button>Pay</button></form>"
            "<form method=post><input type=hidden name=callback value=0>"
            "<button>Pay without a callback</button></form>"
        )
    elif order.state is OrderState.PAID:
        actions = (
            "<form method=post><input type=hidden name=callback value=1><button>Send the callback again</button></form>"
        )
    return f"{note}<table>{table}</table>{actions}"


def _page(title: str, content: str) -> str:
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}th{text-align:left;padding-right:1em}"
        "form{display:inline-block;margin:1em 1em 0 0}.note{background:#eef;padding:.5em}</style>"
        f"</head><body><h1>{html.escape(title)}</h1><p>A payment provider sandbox: no money moves.</p>"
        f"{content}</body></html>"
    )
