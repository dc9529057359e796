"""Sending a document as one caller and classifying the answer for the authorisation matrix.

Each request carries its own ``X-Request-Id``, so a test can ask the audit log whether
*this* request wrote anything.
"""

from __future__ import annotations

import enum
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

ROLES: tuple[str | None, ...] = (
    "admin",
    "manager.north",
    "cs.a",
    "finance.north",
    "tech.a",
    "guard.a",
    "supervisor.north",
    "supervisor.south",
    "owner.a1",
    None,  # anonymous
)


class Verdict(enum.Enum):
    ALLOWED = "allowed"  # the effect happened
    FORBIDDEN = "forbidden"  # top-level FORBIDDEN, nothing written
    UNAUTHENTICATED = "unauthenticated"  # top-level UNAUTHENTICATED, nothing written
    OUT_OF_SCOPE = "out_of_scope"  # NOT_FOUND in the payload (or null / empty), nothing written


def role_id(role: str | None) -> str:
    return role or "anonymous"


def row(*verdicts: Verdict) -> dict[str | None, Verdict]:
    """One matrix row: a verdict per role, in the order of :data:`ROLES`."""
    assert len(verdicts) == len(ROLES)
    return dict(zip(ROLES, verdicts, strict=True))


def cases(table: dict[str | None, Verdict], where: str) -> list[Any]:
    return [case(role, where, verdict) for role, verdict in table.items()]


def case(role: str | None, where: str, verdict: Verdict) -> Any:
    return pytest.param(role, where, verdict, id=f"{role_id(role)}@{where}-{verdict.value}")


@dataclass(frozen=True)
class Reply:
    body: dict[str, Any]
    request_id: str

    def verdict(self, field: str) -> Verdict:
        """Classify a mutation's answer; anything unexpected fails the test."""
        errors = self.body.get("errors")
        if errors:
            assert len(errors) == 1, self.body
            code = errors[0]["extensions"]["code"]
            assert code in ("FORBIDDEN", "UNAUTHENTICATED"), self.body
            assert errors[0]["path"] == [field], self.body
            assert self.body.get("data") is None, self.body
            return Verdict(code.lower())
        payload = self.body["data"][field]
        user_errors = payload["errors"]
        if user_errors:
            assert [e["code"] for e in user_errors] == ["NOT_FOUND"], self.body
            return Verdict.OUT_OF_SCOPE
        return Verdict.ALLOWED

    def payload(self, field: str) -> dict[str, Any]:
        data: dict[str, Any] = self.body["data"][field]
        return data


async def send(client: Any, document: str, variables: dict[str, Any] | None = None) -> Reply:
    request_id = uuid.uuid4().hex
    response = await client.post(document, variables, **{"x-request-id": request_id})
    assert response.status_code == 200, response.text
    return Reply(response.json(), request_id)


async def send_upload(
    client: Any, document: str, variables: dict[str, Any], path: str, filename: str, content: bytes
) -> Reply:
    """A GraphQL multipart request: ``operations``, ``map`` and one file at ``path``."""
    request_id = uuid.uuid4().hex
    headers = {"x-request-id": request_id}
    if client.token:
        headers["authorization"] = f"Bearer {client.token}"
    response = await client.http.post(
        "/graphql",
        data={
            "operations": json.dumps({"query": document, "variables": variables}),
            "map": json.dumps({"0": [path]}),
        },
        files={"0": (filename, content, "text/csv")},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return Reply(response.json(), request_id)
