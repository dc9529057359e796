"""Relations that no root resolver preloaded still load, batched and scoped, through the
per-request DataLoaders of the default field resolver."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete

from backend.notifications.models import Announcement

ESTATES = 'query { estates(first: 5, filter: {codePrefix: "DEMO-"}) { edges { node { id code } } } }'

PUBLISH = """
mutation($input: PublishAnnouncementInput!) {
  publishAnnouncement(input: $input) {
    announcement { id title estates { code buildings { code } } }
    errors { code }
  }
}
"""


async def test_a_payload_object_loads_its_relations_in_batches(
    as_user: Any, count_statements: Any, runtime: Any
) -> None:
    # given
    manager = await as_user("manager.north")
    estates = {e["node"]["code"]: e["node"]["id"] for e in (await manager.data(ESTATES))["estates"]["edges"]}
    title = f"电梯检修 {uuid.uuid4().hex[:6]}"
    count_statements.statements.clear()
    # when the payload's announcement comes straight from the service, nothing preloaded
    data = await manager.data(
        PUBLISH,
        {"input": {"estateIds": [estates["DEMO-A"], estates["DEMO-B"]], "title": title, "body": "周三上午"}},
    )
    # then
    announcement = data["publishAnnouncement"]["announcement"]
    assert [e["code"] for e in announcement["estates"]] == ["DEMO-A", "DEMO-B"]
    assert all(len(e["buildings"]) > 3 for e in announcement["estates"])
    selects = [s for s in count_statements.statements if s.lstrip().upper().startswith("SELECT")]
    # one batched statement per relation and level, whatever the number of parents
    assert sum("FROM announcement_estates JOIN estates" in s for s in selects) == 1
    assert sum("FROM buildings" in s for s in selects) == 1
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(delete(Announcement).where(Announcement.title == title))
