"""Errors: user-fixable problems as payload values, the rest as typed top-level errors."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from typing import Any

import strawberry
import structlog
from graphql import GraphQLError
from graphql.validation.validate import ValidationAbortedError
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError

log = structlog.get_logger(__name__)


class ErrorCode(enum.Enum):
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    RATE_LIMITED = "RATE_LIMITED"
    QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"


class WuyeError(GraphQLError):
    """A top-level error whose message is meant for the caller; never masked."""

    code = ErrorCode.INTERNAL_SERVER_ERROR

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message, extensions={"code": self.code.value, **extensions})


class Unauthenticated(WuyeError):
    code = ErrorCode.UNAUTHENTICATED

    def __init__(self, message: str = "Authentication required.") -> None:
        super().__init__(message)


class Forbidden(WuyeError):
    code = ErrorCode.FORBIDDEN

    def __init__(self, message: str = "You are not allowed to do this.") -> None:
        super().__init__(message)


class BadUserInput(WuyeError):
    code = ErrorCode.BAD_USER_INPUT


class SubscriberTooSlow(WuyeError):
    code = ErrorCode.RATE_LIMITED

    def __init__(self) -> None:
        super().__init__("Events were dropped because the client read too slowly; subscribe again.")


class RateLimited(WuyeError):
    code = ErrorCode.RATE_LIMITED

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, retryAfter=retry_after)


@strawberry.type(description="A problem the caller can fix: which input field, a stable code, and a message.")
class UserError:
    field: str | None
    code: str
    message: str


def user_error(code: enum.Enum | str, message: str, field: str | None = None) -> UserError:
    return UserError(field=field, code=code.value if isinstance(code, enum.Enum) else code, message=message)


_SUGGESTION = re.compile(r" Did you mean .*\?$")

# strawberry's depth and alias limiters and graphql-core's token limit report plain errors,
# known only by their messages (tests/http/test_limits.py pins them).
_LIMIT_EXCEEDED = re.compile(
    r"exceeds maximum operation depth of \d+$"
    r"|^\d+ aliases found\. Allowed: \d+$"
    r"|Document contains more than \d+ tokens\. Parsing aborted\.$"
)


def _request_error_code(error: GraphQLError) -> ErrorCode:
    # graphql-core aborts validation when a document costs too much work to check.
    if isinstance(error, ValidationAbortedError) or _LIMIT_EXCEEDED.search(error.message):
        return ErrorCode.QUERY_TOO_COMPLEX
    return ErrorCode.BAD_USER_INPUT


def _validation_error(error: GraphQLError, production: bool) -> GraphQLError:
    """Parse and validation errors get a code; in production, no "did you mean" hints about the schema."""
    message = _SUGGESTION.sub("", error.message) if production else error.message
    extensions = dict(error.extensions or {})
    extensions.setdefault("code", _request_error_code(error).value)
    return GraphQLError(
        message, nodes=error.nodes, source=error.source, positions=error.positions, extensions=extensions
    )


def _is_expected(error: GraphQLError) -> bool:
    original = error.original_error
    # Parse and validation errors carry no original error; ours are WuyeError instances.
    return original is None or isinstance(original, WuyeError)


class ErrorMasking(SchemaExtension):
    """Replaces unexpected exceptions by a generic message with the request id, logging the original.

    Validation errors and WuyeErrors pass through (strawberry's MaskErrors would mask
    validation errors too). In development the original message stays visible. Over HTTP the
    operation's one result is masked when it ends; over a websocket every executed result (each
    event of a subscription) is masked before it is sent, since the operation ends only after them.
    A result shared by several subscribers is not changed: each gets a masked copy of the list.
    """

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        production = getattr(context, "production", True)
        try:
            yield
        except GraphQLError as error:
            # The parser cache parses while entering its own hook, so a syntax error (the
            # token limit's too) is raised through this one rather than put in the result.
            raise _validation_error(error, production) from None
        result = self.execution_context.result
        if result is not None and result.errors:
            result.errors = self._masked(result.errors)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        # Errors before execution (syntax, validation, unknown operation type) go as they are:
        # the graphql-transport-ws handler closes the socket on some, by their type.
        if isinstance(result, ExecutionResult) and not isinstance(result, PreExecutionError) and result.errors:
            result.errors = self._masked(result.errors)
        yield

    def _masked(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        context = self.execution_context.context
        request_id = getattr(context, "request_id", None)
        production = getattr(context, "production", True)
        masked: list[GraphQLError] = []
        for error in errors:
            if _is_expected(error):
                if error.original_error is None:
                    error = _validation_error(error, production)
                masked.append(error)
                continue
            log.error(
                "graphql.internal_error",
                request_id=request_id,
                path=error.path,
                exc_info=error.original_error,
            )
            message = f"Internal server error (request id {request_id})." if production else error.message
            masked.append(
                GraphQLError(
                    message,
                    nodes=error.nodes,
                    path=error.path,
                    extensions={"code": ErrorCode.INTERNAL_SERVER_ERROR.value, "requestId": request_id},
                )
            )
        return masked
