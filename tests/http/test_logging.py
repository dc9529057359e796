"""Personal data never reaches the logs: not from a GET query string, not from a failed login."""

from __future__ import annotations

import json
from typing import Any

from structlog.testing import capture_logs

PHONE = "13812345678"


async def test_access_log_has_the_path_but_never_the_query_string(as_user: Any) -> None:
    # given
    cs = await as_user("cs.a")
    query = "query($phone: String!) { people(first: 1, filter: {phone: $phone}) { totalCount } }"
    # when
    with capture_logs() as logs:
        response = await cs.http.get(
            "/graphql",
            params={"query": query, "variables": json.dumps({"phone": PHONE})},
            headers={"authorization": f"Bearer {cs.token}"},
        )
    # then
    assert response.status_code == 200
    access = [entry for entry in logs if entry["event"] == "http.request"]
    assert access, logs
    assert access[-1]["path"] == "/graphql"
    assert access[-1]["status"] == 200
    assert PHONE not in json.dumps(logs, default=str)


async def test_a_failed_login_logs_neither_the_username_nor_the_password(as_user: Any) -> None:
    # given
    anonymous = await as_user(None)
    # when
    with capture_logs() as logs:
        await anonymous.data(
            "mutation($u: String!, $p: String!) { login(input: {username: $u, password: $p}) { errors { code } } }",
            {"u": PHONE, "p": f"secret-{PHONE}"},
        )
    # then
    assert any(entry["event"] == "auth.login_failed" for entry in logs)
    assert PHONE not in json.dumps(logs, default=str)
