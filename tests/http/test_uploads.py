"""Multipart uploads (the GraphQL multipart request spec) and their size limit."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from backend.audit.models import AuditEntry

IMPORT = "mutation($input: ImportUnitsInput!) { importUnits(input: $input) { createdCount errors { code } } }"


def _form(estate_id: str) -> dict[str, str]:
    return {
        "operations": json.dumps({"query": IMPORT, "variables": {"input": {"estateId": estate_id, "file": None}}}),
        "map": json.dumps({"0": ["variables.input.file"]}),
    }


async def test_an_upload_over_the_limit_is_refused_before_it_is_read(as_user: Any, settings: Any) -> None:
    # given
    admin = await as_user("admin")
    too_big = b"x" * (settings.max_upload_bytes + 1)
    # when
    response = await admin.http.post(
        "/graphql",
        data=_form("RXN0YXRlOjE"),
        files={"0": ("units.csv", too_big, "text/csv")},
        headers={"authorization": f"Bearer {admin.token}"},
    )
    # then
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_an_upload_larger_than_a_json_body_may_be_is_accepted(as_user: Any, settings: Any) -> None:
    # given a file over the JSON body limit but within the upload limit, for an estate the
    # caller cannot see (so nothing is written)
    owner = await as_user("owner.a1")
    content = b"building,entrance,floor,number,area,inner_area,usage\n" + b"#" * settings.max_body_bytes
    # when
    response = await owner.http.post(
        "/graphql",
        data=_form("RXN0YXRlOjM"),
        files={"0": ("units.csv", content, "text/csv")},
        headers={"authorization": f"Bearer {owner.token}"},
    )
    # then: it reached the resolver, which refused the resident
    assert response.status_code == 200
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


LOGIN = 'mutation { login(input: {username: "admin", password: "demo1234"}) { errors { code } } }'


async def _login_audit_request_id(as_user: Any, runtime: Any, request_id: str) -> str | None:
    anonymous = await as_user(None)
    response = await anonymous.post(LOGIN, **{"x-request-id": request_id})
    assert response.json()["data"]["login"]["errors"] == []
    async with runtime.sessionmaker() as session:
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "login").order_by(AuditEntry.id.desc()).limit(1)
        )
    assert entry is not None
    return entry.request_id


async def test_a_callers_request_id_is_kept_only_when_it_looks_like_one(as_user: Any, runtime: Any) -> None:
    # when
    kept = await _login_audit_request_id(as_user, runtime, "client-abc-12345678")
    replaced = await _login_audit_request_id(as_user, runtime, "spoofed id; DROP TABLE")
    # then
    assert kept == "client-abc-12345678"
    assert replaced is not None
    assert replaced != "spoofed id; DROP TABLE"
    assert len(replaced) == 32
