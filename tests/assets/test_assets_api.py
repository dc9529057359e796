"""The equipment register over GraphQL: registering, editing, retiring; the error codes;
who may do it and who sees which assets."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from assets_support import (
    ASSET_BY_TAG,
    ASSETS,
    CREATE_ASSET,
    RETIRE_ASSET,
    UPDATE_ASSET,
    Site,
    codes,
)
from sqlalchemy import func, select

from backend.assets import service
from backend.assets.models import Asset, AssetStatus, AssetType, MaintenancePlan
from backend.audit.models import AuditEntry
from backend.db import to_global_id
from backend.property.models import Estate

ROLES = ("admin", "manager.north", "cs.a", "finance.north", "tech.a", "guard.a", "supervisor.north",
         "supervisor.south", "owner.a1", None)  # fmt: skip
WRITERS = {"admin", "manager.north"}  # `Asset create/update/retire`: the `*` rows of admin and manager
# `Asset read` in office N1 (the site's office): admin, manager, customer service, technician, guard, supervisor.
NORTH_READERS = {"admin", "manager.north", "cs.a", "tech.a", "guard.a", "supervisor.north"}


async def _asset(runtime: Any, site: Site, code: str, **extra: Any) -> Asset:
    async with runtime.sessionmaker() as session, session.begin():
        data = service.AssetData(code=code, type=extra.pop("type", AssetType.ELEVATOR), name=f"设备 {code}", **extra)
        asset = await service.create_asset(session, estate=site.estate, data=data, actor_id=None, request_id=None)
    site.assets[asset.code] = asset
    return asset


async def _count(runtime: Any, *where: Any) -> int:
    async with runtime.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Asset).where(*where)) or 0)


# -- registering -------------------------------------------------------------------------------


async def test_a_manager_registers_an_asset_with_all_its_fields(as_user: Any, runtime: Any, site: Site) -> None:
    # given a pump room controller to hang the pump under
    parent = await _asset(runtime, site, "AS-CTRL-1", type=AssetType.OTHER)
    manager = await as_user("manager.north")
    # when
    body = await manager.data(CREATE_ASSET, {"input": {
        "estateId": site.estate.gid, "code": " as-pump-01 ", "type": "WATER_PUMP", "name": "生活水泵 1号",
        "tag": "QR-AS-PUMP-01", "model": "CDLF 32-80", "manufacturer": "南方泵业", "location": "水泵房",
        "installDate": "2020-05-01", "warrantyUntil": "2023-05-01", "parameters": {"powerKw": 7.5, "stages": [1, 2]},
        "buildingId": site.buildings[0].gid, "parentId": parent.gid, "deviceId": "AS-PUMP-DEV-01"}})  # fmt: skip
    # then
    payload = body["createAsset"]
    assert payload["errors"] == []
    asset = payload["asset"]
    assert {k: v for k, v in asset.items() if k != "id"} == {
        "code": "AS-PUMP-01", "tag": "QR-AS-PUMP-01", "type": "WATER_PUMP", "name": "生活水泵 1号",
        "model": "CDLF 32-80", "manufacturer": "南方泵业", "location": "水泵房", "installDate": "2020-05-01",
        "warrantyUntil": "2023-05-01", "status": "IN_SERVICE", "parameters": {"powerKw": 7.5, "stages": [1, 2]},
        "deviceId": "AS-PUMP-DEV-01", "retiredAt": None, "estate": {"code": site.estate.code},
        "building": {"code": "1"}, "parent": {"code": "AS-CTRL-1"}, "children": [],
    }  # fmt: skip
    async with runtime.sessionmaker() as session:
        stored = await session.scalar(
            select(Asset).where(Asset.code == "AS-PUMP-01", Asset.estate_id == site.estate.id)
        )
        audited = await session.scalar(
            select(func.count()).where(AuditEntry.action == "asset.create", AuditEntry.target_id == str(stored.id))
        )
    assert stored is not None
    assert stored.company_id == int(site.estate.org_path.split("/")[1])
    assert audited == 1
    children = await manager.data(
        "query($id: ID!) { node(id: $id) { ... on Asset { children { code } } } }", {"id": parent.gid}
    )
    assert children["node"]["children"] == [{"code": "AS-PUMP-01"}]


@pytest.mark.parametrize(("change", "code", "field"), [
    ({"code": "AS-DUP-1"}, "DUPLICATE_CODE", "code"),
    ({"code": "as-dup-1"}, "DUPLICATE_CODE", "code"),  # codes are compared upper-case
    ({"tag": "QR-TAKEN"}, "DUPLICATE_TAG", "tag"),
    ({"deviceId": "DEV-TAKEN"}, "DUPLICATE_DEVICE_ID", "deviceId"),
    ({"code": "bad code!"}, "INVALID_INPUT", "code"),
    ({"name": "  "}, "INVALID_INPUT", "name"),
    ({"status": "RETIRED"}, "INVALID_INPUT", "status"),
    ({"installDate": "2024-01-01", "warrantyUntil": "2023-12-31"}, "INVALID_DATES", "warrantyUntil"),
    ({"buildingId": "other-estate"}, "INVALID_BUILDING", "buildingId"),
    ({"buildingId": to_global_id("Estate", 1)}, "INVALID_BUILDING", "buildingId"),
    ({"parentId": "other-estate"}, "INVALID_PARENT", "parentId"),
    ({"parentId": to_global_id("Asset", 999999999)}, "INVALID_PARENT", "parentId"),
    ({"parameters": [1, 2]}, "INVALID_INPUT", "parameters"),
])  # fmt: skip
async def test_an_invalid_asset_is_refused_with_its_code_and_nothing_is_written(
    as_user: Any, runtime: Any, site: Site, south_site: Site, change: dict[str, Any], code: str, field: str
) -> None:
    # given an asset holding a code, a tag and a device id, and another estate with a building and an asset
    await _asset(runtime, site, "AS-DUP-1", tag="QR-TAKEN", device_id="DEV-TAKEN")
    other_parent = await _asset(runtime, south_site, "AS-SOUTH-1")
    replacements = {"other-estate": None}
    if change.get("buildingId") == "other-estate":
        replacements["other-estate"] = south_site.buildings[0].gid
    if change.get("parentId") == "other-estate":
        replacements["other-estate"] = other_parent.gid
    change = {k: replacements.get(v, v) if isinstance(v, str) else v for k, v in change.items()}
    before = await _count(runtime, Asset.estate_id == site.estate.id)
    # when
    body = await (await as_user("admin")).data(CREATE_ASSET, {"input": {
        "estateId": site.estate.gid, "code": "AS-NEW-1", "type": "ELEVATOR", "name": "新电梯", **change}})  # fmt: skip
    # then
    payload = body["createAsset"]
    assert payload["asset"] is None
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [(code, field)]
    assert await _count(runtime, Asset.estate_id == site.estate.id) == before


async def test_two_concurrent_registrations_of_one_code_make_one_asset(as_user: Any, runtime: Any, site: Site) -> None:
    # given
    admin, manager = await as_user("admin"), await as_user("manager.north")
    variables = {"input": {"estateId": site.estate.gid, "code": "AS-RACE-1", "type": "CAMERA", "name": "摄像机"}}
    # when
    replies = await asyncio.gather(admin.data(CREATE_ASSET, variables), manager.data(CREATE_ASSET, variables))
    # then
    outcomes = sorted(tuple(codes(r["createAsset"])) for r in replies)
    assert outcomes == [(), ("DUPLICATE_CODE",)]
    assert await _count(runtime, Asset.code == "AS-RACE-1") == 1


# -- editing ---------------------------------------------------------------------------------


async def test_an_update_changes_only_the_fields_given_and_null_clears(as_user: Any, runtime: Any, site: Site) -> None:
    # given
    asset = await _asset(runtime, site, "AS-UPD-1", tag="QR-UPD-1", model="M1", location="大堂")
    # when
    body = await (await as_user("manager.north")).data(UPDATE_ASSET, {"input": {
        "assetId": asset.gid, "name": "1号楼客梯", "tag": None, "status": "FAULTY",
        "buildingId": site.buildings[1].gid, "parameters": {"floors": 18}}})  # fmt: skip
    # then
    payload = body["updateAsset"]
    assert payload["errors"] == []
    got = payload["asset"]
    assert (got["name"], got["tag"], got["status"], got["model"], got["location"], got["building"], got["parameters"]) == (
        "1号楼客梯", None, "FAULTY", "M1", "大堂", {"code": "2"}, {"floors": 18}
    )  # fmt: skip


@pytest.mark.parametrize("shape", ["self", "loop"])
async def test_a_parent_chain_may_not_loop(as_user: Any, runtime: Any, site: Site, shape: str) -> None:
    # given A ⊃ B ⊃ C
    a = await _asset(runtime, site, "AS-A")
    b = await _asset(runtime, site, "AS-B", parent_id=a.id)
    c = await _asset(runtime, site, "AS-C", parent_id=b.id)
    target, parent = (a, a) if shape == "self" else (a, c)
    # when
    body = await (await as_user("admin")).data(UPDATE_ASSET, {"input": {"assetId": target.gid, "parentId": parent.gid}})
    # then
    assert [(e["code"], e["field"]) for e in body["updateAsset"]["errors"]] == [("PARENT_CYCLE", "parentId")]
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(Asset.parent_id).where(Asset.id == a.id)) is None


async def test_a_code_taken_by_another_asset_is_refused_on_update(as_user: Any, runtime: Any, site: Site) -> None:
    # given
    await _asset(runtime, site, "AS-TAKEN")
    other = await _asset(runtime, site, "AS-OTHER")
    # when
    body = await (await as_user("admin")).data(UPDATE_ASSET, {"input": {"assetId": other.gid, "code": "as-taken"}})
    # then
    assert codes(body["updateAsset"]) == ["DUPLICATE_CODE"]
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(Asset.code).where(Asset.id == other.id)) == "AS-OTHER"


# -- retiring --------------------------------------------------------------------------------


async def test_retiring_stops_the_assets_own_plans_and_freezes_it(as_user: Any, runtime: Any, site: Site) -> None:
    # given an elevator with its own plan, and a plan for every elevator of the estate
    asset = await _asset(runtime, site, "AS-RET-1")
    async with runtime.sessionmaker() as session, session.begin():
        own = MaintenancePlan(estate_id=site.estate.id, name="单梯保养", asset_id=asset.id, interval_days=15,
                              next_due_date=dt.date(2030, 1, 1))  # fmt: skip
        by_type = MaintenancePlan(estate_id=site.estate.id, name="全部电梯", asset_type=AssetType.ELEVATOR,
                                  interval_days=15, next_due_date=dt.date(2030, 1, 1))  # fmt: skip
        session.add_all([own, by_type])
    admin = await as_user("admin")
    # when
    body = await admin.data(RETIRE_ASSET, {"input": {"assetId": asset.gid, "reason": "报废"}})
    again = await admin.data(RETIRE_ASSET, {"input": {"assetId": asset.gid}})
    edit = await admin.data(UPDATE_ASSET, {"input": {"assetId": asset.gid, "name": "改名"}})
    # then
    payload = body["retireAsset"]
    assert payload["errors"] == []
    assert payload["asset"]["status"] == "RETIRED"
    assert payload["asset"]["retiredAt"] is not None
    assert codes(again["retireAsset"]) == ["ASSET_RETIRED"]
    assert codes(edit["updateAsset"]) == ["ASSET_RETIRED"]
    async with runtime.sessionmaker() as session:
        active = dict((await session.execute(
            select(MaintenancePlan.name, MaintenancePlan.active).where(MaintenancePlan.estate_id == site.estate.id)
        )).all())  # fmt: skip
        stored = await session.get(Asset, asset.id)
    assert active == {"单梯保养": False, "全部电梯": True}
    assert stored is not None
    assert (stored.status, stored.name) == (AssetStatus.RETIRED, "设备 AS-RET-1")


# -- reading ---------------------------------------------------------------------------------


async def test_filters_search_and_the_tag_lookup(as_user: Any, runtime: Any, site: Site) -> None:
    # given
    await _asset(runtime, site, "AS-F-EL1", building_id=site.buildings[0].id, tag="QR-F-EL1")
    await _asset(runtime, site, "AS-F-EL2", building_id=site.buildings[1].id)
    await _asset(runtime, site, "AS-F-PUMP", type=AssetType.WATER_PUMP, status=AssetStatus.FAULTY)
    cs = await as_user("cs.a")

    async def listed(**filter_: Any) -> list[str]:
        body = await cs.data(ASSETS, {"first": 100, "filter": {"estateId": site.estate.gid, **filter_}})
        return sorted(e["node"]["code"] for e in body["assets"]["edges"])

    # when / then
    assert await listed() == ["AS-F-EL1", "AS-F-EL2", "AS-F-PUMP"]
    assert await listed(type="ELEVATOR") == ["AS-F-EL1", "AS-F-EL2"]
    assert await listed(status="FAULTY") == ["AS-F-PUMP"]
    assert await listed(buildingId=site.buildings[1].gid) == ["AS-F-EL2"]
    assert await listed(search="pump") == ["AS-F-PUMP"]
    assert await listed(search="qr-f-el1") == ["AS-F-EL1"]
    assert await listed(search="设备 AS-F-EL") == ["AS-F-EL1", "AS-F-EL2"]
    found = await cs.data(ASSET_BY_TAG, {"tag": " QR-F-EL1 "})
    assert found["assetByTag"]["code"] == "AS-F-EL1"
    assert (await cs.data(ASSET_BY_TAG, {"tag": "QR-NOPE"}))["assetByTag"] is None


# -- who may -----------------------------------------------------------------------------------


def _verdict(body: dict[str, Any], field: str) -> str:
    if body.get("errors"):
        assert body.get("data") is None, body
        return str(body["errors"][0]["extensions"]["code"])
    return "NOT_FOUND" if codes(body["data"][field]) == ["NOT_FOUND"] else "ALLOWED"


def _expected_write(role: str | None) -> str:
    return "UNAUTHENTICATED" if role is None else "ALLOWED" if role in WRITERS else "FORBIDDEN"


@pytest.mark.parametrize("role", ROLES)
async def test_who_may_register_an_asset(as_user: Any, runtime: Any, site: Site, role: str | None) -> None:
    # when
    body = await (await as_user(role)).execute(CREATE_ASSET, {"input": {
        "estateId": site.estate.gid, "code": "AS-WHO-1", "type": "ELEVATOR", "name": "电梯"}})  # fmt: skip
    # then
    expected = _expected_write(role)
    assert _verdict(body, "createAsset") == expected
    assert await _count(runtime, Asset.estate_id == site.estate.id) == (1 if expected == "ALLOWED" else 0)


@pytest.mark.parametrize("role", ROLES)
async def test_who_may_edit_and_retire_an_asset(as_user: Any, runtime: Any, site: Site, role: str | None) -> None:
    # given
    asset = await _asset(runtime, site, "AS-WHO-2")
    client = await as_user(role)
    # when
    updated = await client.execute(UPDATE_ASSET, {"input": {"assetId": asset.gid, "name": "改名了"}})
    retired = await client.execute(RETIRE_ASSET, {"input": {"assetId": asset.gid}})
    # then
    expected = _expected_write(role)
    assert (_verdict(updated, "updateAsset"), _verdict(retired, "retireAsset")) == (expected, expected)
    async with runtime.sessionmaker() as session:
        stored = await session.get(Asset, asset.id)
    assert stored is not None
    if expected == "ALLOWED":
        assert (stored.name, stored.status) == ("改名了", AssetStatus.RETIRED)
    else:
        assert (stored.name, stored.status) == ("设备 AS-WHO-2", AssetStatus.IN_SERVICE)


@pytest.mark.parametrize("role", ["admin", "manager.north", "supervisor.north"])
async def test_an_asset_of_an_estate_out_of_scope_is_not_found(
    as_user: Any, runtime: Any, south_site: Site, role: str
) -> None:
    # given a South asset: admin may edit it; North's manager and supervisor do not see it
    asset = await _asset(runtime, south_site, "AS-SOUTH-2")
    # when
    body = await (await as_user(role)).execute(UPDATE_ASSET, {"input": {"assetId": asset.gid, "name": "改名了"}})
    # then
    expected = "ALLOWED" if role == "admin" else "NOT_FOUND" if role == "manager.north" else "FORBIDDEN"
    assert _verdict(body, "updateAsset") == expected
    async with runtime.sessionmaker() as session:
        name = await session.scalar(select(Asset.name).where(Asset.id == asset.id))
    assert name == ("改名了" if role == "admin" else "设备 AS-SOUTH-2")


@pytest.mark.parametrize("role", [*ROLES, "owner.c1"])
async def test_who_sees_assets(as_user: Any, runtime: Any, site: Site, south_site: Site, role: str | None) -> None:
    # given a North asset (office N1) and a South one (office S1), both tagged
    north = await _asset(runtime, site, "AS-SEE-N", tag="QR-SEE-N")
    south = await _asset(runtime, south_site, "AS-SEE-S", tag="QR-SEE-S")
    client = await as_user(role)
    # when
    listed = await client.execute(ASSETS, {"first": 100, "filter": {"search": "AS-SEE-"}})
    by_tag = [await client.execute(ASSET_BY_TAG, {"tag": t}) for t in ("QR-SEE-N", "QR-SEE-S")]
    by_node = await client.execute("query($id: ID!) { node(id: $id) { id } }", {"id": north.gid})
    # then
    if role is None:
        assert listed["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert all(b["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED" for b in by_tag)
        return
    expected = {n for n, seen in (("AS-SEE-N", role in NORTH_READERS), ("AS-SEE-S", role in ("admin", "supervisor.south"))) if seen}  # fmt: skip
    assert {e["node"]["code"] for e in listed["data"]["assets"]["edges"]} == expected
    assert {b["data"]["assetByTag"]["code"] for b in by_tag if b["data"]["assetByTag"]} == expected
    assert (by_node["data"]["node"] is not None) == ("AS-SEE-N" in expected)
    assert south.gid  # (the South asset exists for every caller)


async def test_demo_estates_have_their_equipment_seen_by_their_staff(as_user: Any, demo_assets: int) -> None:
    # given the demo equipment (elevators per building, pumps, fire equipment, generator, sensors)
    query = 'query($s: String!) { assets(first: 100, filter: {search: $s}) { totalCount edges { node { code type deviceId estate { code } } } } }'  # fmt: skip
    # when
    tech = (await (await as_user("tech.a")).data(query, {"s": "DEMO-"}))["assets"]
    south = (await (await as_user("supervisor.south")).data(query, {"s": "DEMO-"}))["assets"]
    # then
    assert {e["node"]["estate"]["code"] for e in tech["edges"]} == {"DEMO-A"}
    assert {e["node"]["estate"]["code"] for e in south["edges"]} == {"DEMO-C"}
    types = {e["node"]["type"] for e in tech["edges"]}
    assert {"ELEVATOR", "WATER_PUMP", "FIRE_EQUIPMENT", "GENERATOR", "SENSOR", "DOOR_CONTROLLER"} <= types
    devices = {e["node"]["deviceId"] for e in tech["edges"]} - {None}
    assert devices == {"DEMO-A-SMOKE-01", "DEMO-A-TEMP-01", "DEMO-A-GATE-01"}
    assert {e["node"]["deviceId"] for e in south["edges"]} - {None} == {"DEMO-C-LEAK-01"}


async def test_the_demo_equipment_is_made_once(runtime: Any, demo_assets: int) -> None:
    # given the demo equipment made once already
    from backend.seed_assets import ensure_demo_assets

    async with runtime.sessionmaker() as session, session.begin():
        before = await session.scalar(select(func.count()).select_from(Asset))
        # when
        again = await ensure_demo_assets(session)
        after = await session.scalar(select(func.count()).select_from(Asset))
    # then
    assert again == 0
    assert before == after
    async with runtime.sessionmaker() as session:
        estates = (await session.scalars(select(Estate.code).where(Estate.code.like("DEMO-%")))).all()
    assert set(estates) >= {"DEMO-A", "DEMO-B", "DEMO-C"}
