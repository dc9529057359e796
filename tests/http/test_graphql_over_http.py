"""GraphQL over HTTP as the spec (graphql.github.io/graphql-over-http) asks: media types,
status codes, GET for queries only, well-formed requests, the body limit; and what an
anonymous caller gets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from http_testlib import GRAPHQL_RESPONSE, JSON, error_codes, post

from backend.app import Runtime

VIEWER = "{ viewer { username } }"
PARSE_ERROR = "{ viewer { username }"
VALIDATION_ERROR = "{ viewer { nickname } }"
ROOT_FIELD_ERROR = "{ units(first: 0) { totalCount } }"
UNITS_FIRST = "query Units($first: Int) { units(first: $first) { totalCount } }"
TWO_OPERATIONS = "query Mine { viewer { username } } query Count { units { totalCount } }"
SUBSCRIPTION = "subscription { notificationAdded { id } }"
CREATE_PERSON = """
mutation CreatePerson($orgUnitId: ID!) {
  createPerson(input: {orgUnitId: $orgUnitId, name: "anonymous"}) { person { id } errors { code } }
}
"""
LOGOUT = 'mutation { logout(input: {refreshToken: "nothing"}) { errors { code } } }'
LOGIN = """
mutation { login(input: {username: "cs.a", password: "demo1234"}) { accessToken viewer { username } errors { code } } }
"""
ANONYMOUS_LISTS = {
    name: f"{{ {name} {{ totalCount edges {{ node {{ id }} }} }} }}"
    for name in ("estates", "units", "people", "announcements")
}
NODE = "query Node($id: ID!) { node(id: $id) { id } }"


def _headers(token: str | None, **more: str) -> dict[str, str]:
    return {**({"authorization": f"Bearer {token}"} if token else {}), **more}


async def _get(http: httpx.AsyncClient, token: str | None = None, accept: str = JSON, **params: str) -> httpx.Response:
    return await http.get("/graphql", params=params, headers=_headers(token, accept=accept))


async def _raw(http: httpx.AsyncClient, content: bytes, content_type: str = JSON, **headers: str) -> httpx.Response:
    return await http.post("/graphql", content=content, headers={"content-type": content_type, **headers})


# POST, media types, status codes


async def test_post_json_answers_json(http: httpx.AsyncClient, as_user: Any) -> None:
    # given
    caller = await as_user("cs.a")
    # when
    response = await http.post("/graphql", json={"query": VIEWER}, headers=_headers(caller.token))
    # then
    assert response.status_code == 200
    assert response.headers["content-type"] == JSON
    assert response.json() == {"data": {"viewer": {"username": "cs.a"}}}


async def test_accepting_graphql_response_json_gets_it(http: httpx.AsyncClient, as_user: Any) -> None:
    # given
    caller = await as_user("cs.a")
    # when
    response = await post(http, VIEWER, token=caller.token, accept=f"{GRAPHQL_RESPONSE}, {JSON};q=0.9")
    # then
    assert response.status_code == 200
    assert response.headers["content-type"] == GRAPHQL_RESPONSE
    assert response.json() == {"data": {"viewer": {"username": "cs.a"}}}


@pytest.mark.parametrize("document", [PARSE_ERROR, VALIDATION_ERROR], ids=["parse", "validation"])
async def test_a_request_error_is_400_as_graphql_response_json(http: httpx.AsyncClient, document: str) -> None:
    # when
    response = await post(http, document, accept=GRAPHQL_RESPONSE)
    # then: no `data`, the request never reached execution
    assert response.status_code == 400
    assert response.headers["content-type"] == GRAPHQL_RESPONSE
    body = response.json()
    assert "data" not in body
    assert error_codes(body) == ["BAD_USER_INPUT"]


@pytest.mark.parametrize("document", [PARSE_ERROR, VALIDATION_ERROR], ids=["parse", "validation"])
async def test_a_request_error_is_200_as_json(http: httpx.AsyncClient, document: str) -> None:
    # when
    response = await post(http, document, accept=JSON)
    # then
    assert response.status_code == 200
    assert response.headers["content-type"] == JSON
    body = response.json()
    assert "data" not in body
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["locations"]


async def test_without_accept_the_answer_is_json(http: httpx.AsyncClient) -> None:
    # when
    response = await http.post("/graphql", json={"query": PARSE_ERROR})
    # then
    assert response.status_code == 200
    assert response.headers["content-type"] == JSON


async def test_a_field_error_reaching_the_root_is_200_with_null_data(http: httpx.AsyncClient, as_user: Any) -> None:
    # given
    caller = await as_user("admin")
    # when
    response = await post(http, ROOT_FIELD_ERROR, token=caller.token, accept=GRAPHQL_RESPONSE)
    # then: execution started, so `data` is present (null)
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["path"] == ["units"]


@pytest.mark.parametrize(("accept", "status"), [(GRAPHQL_RESPONSE, 400), (JSON, 200)])
async def test_variables_of_the_wrong_type_are_a_request_error(
    http: httpx.AsyncClient, as_user: Any, accept: str, status: int
) -> None:
    # given
    caller = await as_user("admin")
    # when
    response = await post(http, UNITS_FIRST, {"first": "ten"}, token=caller.token, accept=accept)
    # then
    assert response.status_code == status
    assert "data" not in response.json()
    assert response.json()["errors"]


async def test_operation_name_picks_the_operation(http: httpx.AsyncClient, as_user: Any) -> None:
    # given
    caller = await as_user("cs.a")
    # when
    response = await http.post(
        "/graphql", json={"query": TWO_OPERATIONS, "operationName": "Mine"}, headers=_headers(caller.token)
    )
    # then
    assert response.json() == {"data": {"viewer": {"username": "cs.a"}}}


async def test_an_unknown_operation_name_is_400(http: httpx.AsyncClient) -> None:
    # when
    response = await http.post("/graphql", json={"query": TWO_OPERATIONS, "operationName": "Nope"})
    # then
    assert response.status_code == 400
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]


async def test_a_subscription_over_http_is_400(http: httpx.AsyncClient, as_user: Any) -> None:
    # given
    caller = await as_user("cs.a")
    # when
    response = await post(http, SUBSCRIPTION, token=caller.token)
    # then
    assert response.status_code == 400
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]


# GET


async def test_get_runs_a_query(http: httpx.AsyncClient, as_user: Any) -> None:
    # given
    caller = await as_user("admin")
    # when
    response = await _get(
        http, caller.token, query=UNITS_FIRST, variables=json.dumps({"first": 1}), operationName="Units"
    )
    # then
    assert response.status_code == 200
    assert response.json()["data"]["units"]["totalCount"] > 0


async def test_get_refuses_a_mutation_with_405(http: httpx.AsyncClient) -> None:
    # when
    response = await _get(http, query=LOGOUT)
    # then
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert "data" not in response.json()


@pytest.mark.parametrize(
    "params",
    [{}, {"query": ""}, {"query": VIEWER, "variables": "{not json"}, {"query": VIEWER, "variables": "[1]"}],
    ids=["no_query", "empty_query", "variables_not_json", "variables_not_object"],
)
async def test_a_malformed_get_is_400(http: httpx.AsyncClient, params: dict[str, str]) -> None:
    # when
    response = await _get(http, **params)
    # then
    assert response.status_code == 400
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]


# Well-formed requests


@pytest.mark.parametrize(
    "content",
    [
        b'{"query": "{ viewer { username } }"',
        b"",
        b'[{"query": "{ viewer { username } }"}]',
        b'"{ viewer { username } }"',
        b'{"query": 1}',
        b'{"variables": {}}',
        b'{"query": "{ viewer { username } }", "variables": [1]}',
        b'{"query": "{ viewer { username } }", "variables": "{}"}',
        b'{"query": "{ viewer { username } }", "operationName": 7}',
    ],
    ids=[
        "truncated_json",
        "empty_body",
        "batch",
        "string",
        "query_not_string",
        "no_query",
        "variables_list",
        "variables_string",
        "operation_name_not_string",
    ],
)
async def test_a_malformed_body_is_400(http: httpx.AsyncClient, content: bytes) -> None:
    # when
    response = await _raw(http, content)
    # then
    assert response.status_code == 400
    assert response.headers["content-type"] == JSON
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
async def test_an_unsupported_content_type_is_415(http: httpx.AsyncClient, content_type: str) -> None:
    # when
    response = await _raw(http, json.dumps({"query": VIEWER}).encode(), content_type)
    # then
    assert response.status_code == 415
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]


async def test_json_with_a_charset_is_accepted(http: httpx.AsyncClient) -> None:
    # when
    response = await _raw(http, json.dumps({"query": VIEWER}).encode(), "application/json; charset=utf-8")
    # then
    assert response.status_code == 200
    assert response.json() == {"data": {"viewer": None}}


def _body_of_size(size: int) -> bytes:
    """A valid request padded with JSON whitespace to exactly ``size`` bytes."""
    head, tail = b'{"query": "{ viewer { username } }"', b"}"
    return head + b" " * (size - len(head) - len(tail)) + tail


async def test_a_body_at_the_limit_is_served(http: httpx.AsyncClient, runtime: Runtime) -> None:
    # given
    content = _body_of_size(runtime.settings.max_body_bytes)
    # when
    response = await _raw(http, content)
    # then
    assert runtime.settings.max_body_bytes == 256 * 1024
    assert response.status_code == 200
    assert response.json() == {"data": {"viewer": None}}


async def test_a_body_over_the_limit_is_413(http: httpx.AsyncClient, runtime: Runtime) -> None:
    # given
    content = _body_of_size(runtime.settings.max_body_bytes + 1)
    # when
    response = await _raw(http, content)
    # then
    assert response.status_code == 413
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]


async def test_a_streamed_body_over_the_limit_is_413(http: httpx.AsyncClient, runtime: Runtime) -> None:
    # given: chunked, so no Content-Length announces the size
    content = _body_of_size(runtime.settings.max_body_bytes + 1)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(content), 16 * 1024):
            yield content[start : start + 16 * 1024]

    # when
    response = await http.post("/graphql", content=chunks(), headers={"content-type": JSON})
    # then
    assert response.status_code == 413


# Anonymous callers


async def test_anonymous_may_log_in(http: httpx.AsyncClient) -> None:
    # when
    response = await post(http, LOGIN)
    # then
    login = response.json()["data"]["login"]
    assert login["errors"] == []
    assert login["viewer"] == {"username": "cs.a"}


async def test_anonymous_has_no_viewer(http: httpx.AsyncClient) -> None:
    # when
    response = await post(http, VIEWER)
    # then
    assert response.json() == {"data": {"viewer": None}}


@pytest.mark.parametrize("document", ANONYMOUS_LISTS.values(), ids=ANONYMOUS_LISTS.keys())
async def test_anonymous_lists_are_unauthenticated(http: httpx.AsyncClient, document: str) -> None:
    # when
    response = await post(http, document, accept=GRAPHQL_RESPONSE)
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_anonymous_cannot_fetch_a_node(http: httpx.AsyncClient, as_user: Any) -> None:
    # given: an estate's id, as its manager sees it
    manager = await as_user("manager.north")
    estate_id = (await manager.data("{ estates(first: 1) { edges { node { id } } } }"))["estates"]["edges"][0]["node"][
        "id"
    ]
    # when
    response = await post(http, NODE, {"id": estate_id})
    # then
    body = response.json()
    assert body["data"] == {"node": None}
    assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_anonymous_mutations_other_than_login_are_unauthenticated(http: httpx.AsyncClient, as_user: Any) -> None:
    # given
    admin = await as_user("admin")
    org_unit_id = (await admin.data("{ viewer { roles { orgUnit { id } } } }"))["viewer"]["roles"][0]["orgUnit"]["id"]
    # when
    response = await post(http, CREATE_PERSON, {"orgUnitId": org_unit_id})
    # then
    body = response.json()
    assert body["data"] is None
    assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_several_operations_without_an_operation_name_are_a_request_error(as_user: Any) -> None:
    # given
    client = await as_user("admin")
    document = "query A { viewer { id } } query B { viewer { username } }"
    # when
    refused = await client.post(document, accept="application/graphql-response+json")
    chosen = await client.http.post(
        "/graphql",
        json={"query": document, "operationName": "B"},
        headers={"authorization": f"Bearer {client.token}"},
    )
    # then
    assert refused.status_code == 400
    assert "data" not in refused.json()
    assert chosen.json()["data"]["viewer"]["username"] == "admin"
