"""users and orgUnits: the ids an administrator needs for grantRole, scoped like everything else."""

from __future__ import annotations

from typing import Any

USERS = """
query Users($prefix: String) {
  users(first: 100, filter: {usernamePrefix: $prefix}) {
    totalCount
    edges { node { id username kind roles { role orgUnit { name } } person { name } } }
  }
}
"""

ORG_UNITS = "query { orgUnits(first: 50) { edges { node { id kind code name } } } }"

NODE_USER = "query Node($id: ID!) { node(id: $id) { id ... on User { username } } }"


async def _usernames(client: Any) -> set[str]:
    data = await client.data(USERS)
    return {edge["node"]["username"] for edge in data["users"]["edges"]}


async def test_admin_sees_every_demo_account_with_its_roles(as_user: Any) -> None:
    # given
    admin = await as_user("admin")
    # when
    data = await admin.data(USERS, {"prefix": "supervisor."})
    # then
    roles = {e["node"]["username"]: e["node"]["roles"] for e in data["users"]["edges"]}
    assert roles["supervisor.north"] == [{"role": "supervisor", "orgUnit": {"name": "North"}}]
    assert roles["supervisor.south"] == [{"role": "supervisor", "orgUnit": {"name": "South"}}]


async def test_manager_sees_accounts_of_their_branch_only(as_user: Any) -> None:
    # given
    manager = await as_user("manager.north")
    # when
    usernames = await _usernames(manager)
    # then
    assert {"cs.a", "tech.a", "supervisor.north", "owner.a1", "owner.a2"} <= usernames
    assert not {"supervisor.south", "owner.c1", "admin"} & usernames


async def test_roles_without_user_read_see_no_accounts(as_user: Any) -> None:
    for username in ("cs.a", "tech.a", "owner.a1"):
        # given
        client = await as_user(username)
        # when / then
        assert await _usernames(client) == set()


async def test_viewer_id_is_the_user_node_id(as_user: Any) -> None:
    # given
    admin = await as_user("admin")
    owner = await as_user("owner.a1")
    viewer_id = (await owner.data("{ viewer { id } }"))["viewer"]["id"]
    # when
    by_admin = await admin.data(NODE_USER, {"id": viewer_id})
    by_other_owner = await (await as_user("owner.c1")).data(NODE_USER, {"id": viewer_id})
    # then
    assert by_admin["node"] == {"id": viewer_id, "username": "owner.a1"}
    assert by_other_owner["node"] is None


async def test_org_units_follow_the_callers_grants(as_user: Any) -> None:
    # given
    admin = await as_user("admin")
    manager = await as_user("manager.north")
    # when
    everything = await admin.data(ORG_UNITS)
    north = await manager.data(ORG_UNITS)
    # then
    assert {e["node"]["code"] for e in everything["orgUnits"]["edges"]} >= {"DEMO", "NORTH", "N1", "N2", "SOUTH", "S1"}
    assert {e["node"]["code"] for e in north["orgUnits"]["edges"]} == {"NORTH", "N1", "N2"}
