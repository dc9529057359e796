"""Query limits (depth, aliases, tokens, validation work), page sizes, and the per-caller
request rate limit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from http_testlib import GRAPHQL_RESPONSE, JSON, client_at, create_user, error_codes, new_ip, post, tokens_for

from backend.app import Runtime, build_runtime
from backend.settings import Settings

PASSWORD = "limits-test-password"
REQUESTS_PER_MINUTE = 5

VIEWER = "{ viewer { username } }"
UNITS = "query Units($first: Int) { units(first: $first) { totalCount edges { node { id } } } }"


def query_of_depth(depth: int) -> str:
    """``estates`` is at depth 0; ``buildings``/``estate`` alternate down to an ``id`` at ``depth``."""
    selection = "id"
    for level in reversed(range(3, depth)):
        selection = f"{'buildings' if level % 2 else 'estate'} {{ {selection} }}"
    return f"{{ estates(first: 1) {{ edges {{ node {{ {selection} }} }} }} }}"


def query_with_aliases(count: int) -> str:
    return "{ " + " ".join(f"a{n}: viewer {{ username }}" for n in range(count)) + " }"


def document_of_tokens(count: int) -> str:
    """``count`` tokens (8 per operation, then single extra fields), the first operation runnable."""
    operations, extra = divmod(count, 8)
    fields = " __typename" * extra
    first = f"query Q0 {{ viewer {{ username{fields} }} }}"
    return " ".join([first, *(f"query Q{n} {{ viewer {{ username }} }}" for n in range(1, operations))])


async def _send(http: httpx.AsyncClient, token: str | None, document: str) -> dict[str, Any]:
    response = await http.post(
        "/graphql",
        json={"query": document, "operationName": "Q0" if document.startswith("query Q0") else None},
        headers={"authorization": f"Bearer {token}"} if token else {},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _refused_as_too_complex(body: dict[str, Any], message: str) -> None:
    assert "data" not in body
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert message in error["message"]


# Depth, aliases, tokens


async def test_depth_ten_is_served(http: httpx.AsyncClient, as_user: Any) -> None:
    # given
    admin = await as_user("admin")
    # when
    body = await _send(http, admin.token, query_of_depth(10))
    # then
    assert "errors" not in body
    assert body["data"]["estates"]["edges"]


async def test_depth_eleven_is_too_complex(http: httpx.AsyncClient, as_user: Any) -> None:
    # given
    admin = await as_user("admin")
    # when
    body = await _send(http, admin.token, query_of_depth(11))
    # then
    _refused_as_too_complex(body, "exceeds maximum operation depth of 10")


async def test_fifteen_aliases_are_served(http: httpx.AsyncClient, as_user: Any) -> None:
    # given
    caller = await as_user("cs.a")
    # when
    body = await _send(http, caller.token, query_with_aliases(15))
    # then
    assert body["data"]["a14"] == {"username": "cs.a"}


async def test_sixteen_aliases_are_too_complex(http: httpx.AsyncClient, as_user: Any) -> None:
    # given
    caller = await as_user("cs.a")
    # when
    body = await _send(http, caller.token, query_with_aliases(16))
    # then
    _refused_as_too_complex(body, "16 aliases found. Allowed: 15")


async def test_two_thousand_tokens_are_served(http: httpx.AsyncClient, as_user: Any) -> None:
    # given
    caller = await as_user("cs.a")
    # when
    body = await _send(http, caller.token, document_of_tokens(2000))
    # then
    assert "errors" not in body
    assert body["data"]["viewer"]["username"] == "cs.a"


async def test_more_than_two_thousand_tokens_are_too_complex(http: httpx.AsyncClient, as_user: Any) -> None:
    # given
    caller = await as_user("cs.a")
    # when
    body = await _send(http, caller.token, document_of_tokens(2001))
    # then
    _refused_as_too_complex(body, "Document contains more than 2000 tokens. Parsing aborted.")


async def test_a_document_too_costly_to_validate_is_too_complex(http: httpx.AsyncClient, as_user: Any) -> None:
    # given: within the token limit, but merging a thousand same-named fields is quadratic work
    caller = await as_user("cs.a")
    document = "{ viewer { " + "username " * 1000 + "} }"
    # when
    body = await _send(http, caller.token, document)
    # then
    _refused_as_too_complex(body, "Validation aborted.")


async def test_limit_errors_are_400_as_graphql_response_json(http: httpx.AsyncClient, as_user: Any) -> None:
    # given
    caller = await as_user("cs.a")
    # when
    response = await post(http, query_with_aliases(16), token=caller.token, accept=GRAPHQL_RESPONSE)
    # then
    assert response.status_code == 400
    assert error_codes(response.json()) == ["QUERY_TOO_COMPLEX"]


# Page sizes


@pytest.mark.parametrize("first", [0, -1, 101, 10_000])
async def test_a_page_size_outside_1_to_100_is_bad_user_input(
    http: httpx.AsyncClient, as_user: Any, first: int
) -> None:
    # given
    admin = await as_user("admin")
    # when
    body = await admin.execute(UNITS, {"first": first})
    # then
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": "first"}
    assert error["path"] == ["units"]


async def test_a_page_of_100_is_served(http: httpx.AsyncClient, as_user: Any) -> None:
    # given
    admin = await as_user("admin")
    # when
    data = await admin.data(UNITS, {"first": 100})
    # then
    assert len(data["units"]["edges"]) == min(100, data["units"]["totalCount"])


# Request rate


@pytest_asyncio.fixture
async def limited(settings: Settings) -> AsyncIterator[Runtime]:
    """An API process allowing REQUESTS_PER_MINUTE requests per caller, on the same servers."""
    runtime = await build_runtime(settings.model_copy(update={"requests_per_minute": REQUESTS_PER_MINUTE}))
    yield runtime
    await runtime.close()


async def _within_one_window() -> None:
    """The limit counts per clock minute; start far enough from the next one."""
    left = 60 - time.time() % 60
    if left < 5:
        await asyncio.sleep(left + 0.1)


async def test_a_user_over_the_rate_limit_gets_429(http: httpx.AsyncClient, runtime: Runtime, limited: Runtime) -> None:
    # given: a user of the test's own, logged in through the unlimited app
    user = await create_user(runtime, password=PASSWORD)
    other = await create_user(runtime, password=PASSWORD)
    token = (await tokens_for(http, user.username, PASSWORD))["accessToken"]
    other_token = (await tokens_for(http, other.username, PASSWORD))["accessToken"]
    await _within_one_window()
    async with client_at(limited, new_ip()) as client:
        served = [await post(client, VIEWER, token=token) for _ in range(REQUESTS_PER_MINUTE)]
        # when
        refused = await post(client, VIEWER, token=token)
        refused_graphql = await post(client, VIEWER, token=token, accept=GRAPHQL_RESPONSE)
        other_user = await post(client, VIEWER, token=other_token)
    # then
    assert [response.status_code for response in served] == [200] * REQUESTS_PER_MINUTE
    for response, media_type in ((refused, JSON), (refused_graphql, GRAPHQL_RESPONSE)):
        assert response.status_code == 429
        assert response.headers["content-type"] == media_type
        (error,) = response.json()["errors"]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert 1 <= error["extensions"]["retryAfter"] <= 60
        assert int(response.headers["retry-after"]) == error["extensions"]["retryAfter"]
        assert "data" not in response.json()
    assert other_user.json() == {"data": {"viewer": {"username": other.username}}}


async def test_anonymous_callers_are_limited_per_address(limited: Runtime) -> None:
    # given
    address = new_ip()
    await _within_one_window()
    async with client_at(limited, address) as client:
        served = [await post(client, VIEWER) for _ in range(REQUESTS_PER_MINUTE)]
        # when
        refused = await post(client, VIEWER)
    async with client_at(limited, new_ip()) as elsewhere:
        other_address = await post(elsewhere, VIEWER)
    # then
    assert [response.status_code for response in served] == [200] * REQUESTS_PER_MINUTE
    assert refused.status_code == 429
    assert error_codes(refused.json()) == ["RATE_LIMITED"]
    assert other_address.json() == {"data": {"viewer": None}}
