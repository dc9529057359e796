from typing import Any

from sqlalchemy import select, text

from backend.db import to_global_id
from backend.property.models import Entrance, OrgUnit


async def test_probe(as_user: Any, runtime: Any) -> None:
    async with runtime.sessionmaker() as s:
        orgs = (await s.scalars(select(OrgUnit))).all()
        for o in orgs:
            print(o.id, o.code, o.path, o.kind)
        ent = (await s.scalars(select(Entrance).limit(1))).one()
        print("entrance", ent.id, to_global_id("Entrance", ent.id))
        rows = (await s.execute(text("select ptype,v0,v1,v2 from casbin_rule where ptype='g'"))).all()
        print(rows)
        n1 = next(o for o in orgs if o.code == "N1")
    cs = await as_user("cs.a")
    print(
        await cs.execute(
            'mutation($o: ID!){createPerson(input:{orgUnitId:$o, name:"x"}){person{id} errors{field code message}}}',
            {"o": to_global_id("OrgUnit", n1.id)},
        )
    )
    admin = await as_user("admin")
    print(
        await admin.execute(
            "query($id: ID!){node(id:$id){id ... on Entrance {code}}}", {"id": to_global_id("Entrance", ent.id)}
        )
    )
    print(await admin.execute("{estates{edges{node{code buildings{code entrances{code}}}}}}"))
    anon = await as_user(None)
    print(
        await anon.execute(
            "{estates{totalCount} units{totalCount} viewer{username} announcements{totalCount} people{totalCount}}"
        )
    )
    o = await as_user("owner.a1")
    print(
        await o.execute(
            "{viewer{id username person{id name phone idNumber occupancies{id role unit{code} person{name}}}} estates{edges{node{code buildings{code entrances{code}}}}} announcements{totalCount}}"
        )
    )
    print(
        await o.execute(
            "{units{edges{node{code occupants{id role person{name phone idNumber occupancies{unit{code}}}}}}}}"
        )
    )
    print(await admin.execute("{announcements{totalCount edges{node{id title}}}}"))
