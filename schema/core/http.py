"""GraphQL over HTTP (POST and GET, per the GraphQL-over-HTTP spec) and over websockets.

HTTP is served by our own endpoint so that status codes, media types, body limits, auth
and rate limits follow the spec and our rules; websockets use strawberry's
graphql-transport-ws implementation (the legacy graphql-ws protocol is not offered).
"""

from __future__ import annotations

import asyncio
import json
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from graphql import GraphQLError, OperationDefinitionNode, parse
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.http.ides import get_graphql_ide_html
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from authz.principal import Permissions, Principal
from backend.accounts.errors import InvalidToken
from backend.accounts.tokens import decode_access_token
from schema.core.context import Context
from schema.core.errors import ErrorCode

if TYPE_CHECKING:
    from backend.app import Runtime

log = structlog.get_logger(__name__)

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
INVALID_TOKEN_MESSAGE = "The access token is invalid or expired."


class RequestError(Exception):
    def __init__(self, status: int, message: str, code: ErrorCode = ErrorCode.BAD_USER_INPUT) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def principal_from_token(runtime: Runtime, token: str) -> Principal:
    claims = decode_access_token(runtime.settings, token)
    return Principal(user_id=claims.user_id, username=claims.username, kind=claims.kind, person_id=claims.person_id)


def principal_from_header(runtime: Runtime, header: str | None) -> Principal | None:
    """The caller of an HTTP request (``None``: anonymous); raises InvalidToken for a bad one."""
    token = bearer_token(header)
    return principal_from_token(runtime, token) if token else None


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header; ``None`` without a header."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("not a bearer token")
    return token.strip()


def _media_type(request: Request) -> str:
    accept = request.headers.get("accept", "")
    if GRAPHQL_RESPONSE in accept:
        return GRAPHQL_RESPONSE
    return JSON


def error_body(message: str, code: ErrorCode | str) -> dict[str, Any]:
    """A request-level error, shaped like a GraphQL one (also used by the file exports)."""
    value = code.value if isinstance(code, ErrorCode) else code
    return {"errors": [{"message": message, "extensions": {"code": value}}]}


class GraphQLHTTP:
    """The ASGI endpoint for ``POST /graphql`` and ``GET /graphql``."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def __call__(self, request: Request) -> Response:
        media_type = _media_type(request)
        try:
            params = await self._params(request)
            principal = self._principal(request)
        except RequestError as exc:
            return self._respond(error_body(exc.message, exc.code), exc.status, media_type)
        except InvalidToken:
            body = error_body(INVALID_TOKEN_MESSAGE, ErrorCode.UNAUTHENTICATED)
            if media_type == GRAPHQL_RESPONSE:
                # RFC 6750: a 401 names the scheme and why the token was refused.
                return self._respond(
                    body, 401, media_type, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
                )
            return self._respond(body, 200, media_type)
        if params is None:
            return HTMLResponse(get_graphql_ide_html("graphiql"))
        retry_after = await self.runtime.request_limiter.retry_after(principal, client_ip(request))
        if retry_after is not None:
            body = error_body("Too many requests.", ErrorCode.RATE_LIMITED)
            body["errors"][0]["extensions"]["retryAfter"] = retry_after
            return self._respond(body, 429, media_type, headers={"Retry-After": str(retry_after)})

        context = Context(
            runtime=self.runtime,
            permissions=Permissions(principal, self.runtime.authorizer),
            client_ip=client_ip(request),
            request_id=request_id_of(request),
        )
        allowed = (OperationType.QUERY,) if request.method == "GET" else (OperationType.QUERY, OperationType.MUTATION)
        if params.get("operationName") is None and _operation_count(params["query"]) > 1:
            body = error_body(
                "The document has several operations: say which in `operationName`.", ErrorCode.BAD_USER_INPUT
            )
            return self._respond(body, 400 if media_type == GRAPHQL_RESPONSE else 200, media_type)
        try:
            result = await self.runtime.schema.execute(
                params["query"],
                variable_values=params.get("variables"),
                context_value=context,
                operation_name=params.get("operationName"),
                allowed_operation_types=allowed,
            )
        except InvalidOperationTypeError as exc:
            if request.method == "GET" and exc.operation_type is OperationType.MUTATION:
                body = error_body("Mutations must be sent with POST.", ErrorCode.BAD_USER_INPUT)
                return self._respond(body, 405, media_type, headers={"Allow": "POST"})
            body = error_body("Subscriptions are served over the websocket.", ErrorCode.BAD_USER_INPUT)
            return self._respond(body, 400, media_type)
        except (CannotGetOperationTypeError, MissingQueryError) as exc:
            return self._respond(error_body(str(exc), ErrorCode.BAD_USER_INPUT), 400, media_type)
        finally:
            await context.close()  # also when execution never started (OperationScope did not run)
        return self._result(result, media_type, request.method)

    def _principal(self, request: Request) -> Principal | None:
        return principal_from_header(self.runtime, request.headers.get("authorization"))

    async def _params(self, request: Request) -> dict[str, Any] | None:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        settings = self.runtime.settings
        # A file upload (importUnits) may be larger than a GraphQL document ever needs to be.
        limit = settings.max_upload_bytes if content_type == "multipart/form-data" else settings.max_body_bytes
        if request.method == "GET":
            if "query" not in request.query_params:
                if self.runtime.graphiql and "text/html" in request.headers.get("accept", ""):
                    return None
                raise RequestError(400, "Missing `query` parameter.")
            params: dict[str, Any] = {"query": request.query_params["query"]}
            if "variables" in request.query_params:
                params["variables"] = _json(request.query_params["variables"], "variables")
            params["operationName"] = request.query_params.get("operationName")
            return _checked(params)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RequestError(413, f"Request body larger than {limit} bytes.")
        if content_type == "multipart/form-data":
            return _checked(await self._multipart(request, limit, settings.max_body_bytes))
        if content_type not in (JSON, GRAPHQL_RESPONSE, ""):
            raise RequestError(415, "Send `application/json` or `multipart/form-data`.")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise RequestError(413, f"Request body larger than {limit} bytes.")
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise RequestError(400, "The body is not valid JSON.") from exc
        if not isinstance(parsed, dict):
            raise RequestError(400, "The body must be a JSON object.")
        return _checked(parsed)

    async def _multipart(self, request: Request, limit: int, field_limit: int) -> dict[str, Any]:
        """The GraphQL multipart request spec: ``operations``, ``map`` and one file."""
        if not 0 < int(request.headers.get("content-length") or 0) <= limit:
            raise RequestError(411, "A multipart request states its Content-Length.")
        form = await request.form(max_files=1, max_fields=10, max_part_size=field_limit)
        operations = _json(str(form.get("operations", "")), "operations")
        mapping = _json(str(form.get("map", "{}")), "map")
        if not isinstance(operations, dict) or not isinstance(mapping, dict):
            raise RequestError(400, "Invalid multipart GraphQL request.")
        for key, paths in mapping.items():
            upload = form.get(key)
            if upload is None or isinstance(upload, str):
                raise RequestError(400, f"File {key!r} is missing.")
            for path in paths:
                _assign(operations, path.split("."), upload)
        return operations

    def _respond(
        self, body: dict[str, Any], status: int, media_type: str, headers: dict[str, str] | None = None
    ) -> Response:
        return Response(orjson.dumps(body), status_code=status, media_type=media_type, headers=headers)

    def _result(self, result: ExecutionResult, media_type: str, method: str) -> Response:
        body: dict[str, Any] = {}
        errors = result.errors or []
        if errors:
            body["errors"] = [error.formatted for error in errors]
        # Field errors carry a path; request errors (parse, validation, variable coercion)
        # do not. Once execution started `data` is present, null when an error reached the root.
        executed = result.data is not None or not errors or any(error.path for error in errors)
        status = 200
        if executed:
            body["data"] = result.data
        elif media_type == GRAPHQL_RESPONSE:
            status = 400
        return self._respond(body, status, media_type)


@lru_cache(maxsize=1024)
def _operation_count(query: str) -> int:
    """How many operations a document defines (strawberry would run the first of several)."""
    try:
        document = parse(query)
    except GraphQLError:
        return 1  # the executor reports the syntax error
    return sum(isinstance(d, OperationDefinitionNode) for d in document.definitions)


def _json(raw: str, name: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise RequestError(400, f"`{name}` is not valid JSON.") from exc


def _checked(params: dict[str, Any]) -> dict[str, Any]:
    query = params.get("query")
    if not isinstance(query, str) or not query.strip():
        raise RequestError(400, "`query` must be a non-empty string.")
    variables = params.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise RequestError(400, "`variables` must be an object.")
    name = params.get("operationName")
    if name is not None and not isinstance(name, str):
        raise RequestError(400, "`operationName` must be a string.")
    return params


def _assign(target: Any, path: list[str], value: Any) -> None:
    *parents, last = path
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value


_REQUEST_ID = re.compile(r"^[A-Za-z0-9_\-]{8,64}$")


def request_id_of(request: Request) -> str:
    """A caller's X-Request-Id is kept for correlation when it looks like one; else ours."""
    supplied = request.headers.get("x-request-id", "")
    return supplied if _REQUEST_ID.fullmatch(supplied) else str(request.state.request_id)


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class _HangUp:
    """A websocket's ASGI ``receive`` that the server can end: after :meth:`hang_up` it reports a
    disconnect, so strawberry's handler ends every operation of the connection (also one
    blocked sending to a client that does not read) and the connection is closed.

    Closing through ASGI would not do: uvicorn's ``send`` of the close frame waits, like any
    send, until the client reads."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._hung_up = asyncio.Event()

    def hang_up(self) -> None:
        self._hung_up.set()

    async def receive(self) -> Message:
        if not self._hung_up.is_set():
            message = asyncio.ensure_future(self._receive())
            hung_up = asyncio.ensure_future(self._hung_up.wait())
            try:
                await asyncio.wait((message, hung_up), return_when=asyncio.FIRST_COMPLETED)
            finally:
                hung_up.cancel()
                if not message.done():
                    message.cancel()
            if not message.cancelled():
                return message.result()
        return {"type": "websocket.disconnect", "code": 1008}


_HANG_UP = "wuye.hang_up"  # the scope key of a websocket's _HangUp.hang_up


class GraphQLWebSocket(GraphQL[Context, None]):
    """graphql-transport-ws only; the access token arrives in ``connection_init``."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(
            runtime.schema,
            graphql_ide=None,
            allow_queries_via_get=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            allowed_origins=runtime.settings.allowed_origins,
            max_subscriptions_per_connection=20,
        )
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            connection = _HangUp(receive)
            scope, receive = {**scope, _HANG_UP: connection.hang_up}, connection.receive
        await super().__call__(scope, receive, send)

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        return Context(
            runtime=self.runtime,
            permissions=Permissions(None, self.runtime.authorizer),
            client_ip=request.client.host if request.client else "unknown",
            hang_up=request.scope.get(_HANG_UP),
        )

    async def on_ws_connect(self, context: Context) -> dict[str, object] | None:
        params = context.connection_params or {}
        header = params.get("Authorization") or params.get("authorization")
        try:
            token = bearer_token(header if isinstance(header, str) else None)
            if token is None:
                raise InvalidToken("no token")
            context.permissions = Permissions(principal_from_token(self.runtime, token), self.runtime.authorizer)
        except InvalidToken as exc:
            raise ConnectionRejectionError({"code": ErrorCode.UNAUTHENTICATED.value}) from exc
        return None
