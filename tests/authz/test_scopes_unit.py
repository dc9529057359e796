"""Unit tests of authz/: policy validation, loading, domain inheritance, deny rows, the memo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql

from authz.enforcer import Authorizer, PolicyLoadError
from authz.models import CasbinRule
from authz.principal import FieldAccess, Permissions, Principal
from authz.rules import POLICY_CSV, PolicyError, PolicyLine, read_policy_csv, validate
from authz.scopes import predicate, scoped
from backend.app import Runtime
from backend.audit.models import AuditEntry
from backend.people.models import Person
from backend.property.models import Unit

DEFAULT_POLICY = [(line.ptype, list(line.values)) for line in read_policy_csv()]

STAFF = Principal(user_id=1, username="someone", kind="STAFF", person_id=None)
RESIDENT = Principal(user_id=2, username="owner", kind="RESIDENT", person_id=42)


def authorizer_with(*grants: tuple[str, str, str], extra: list[tuple[str, list[str]]] | None = None) -> Authorizer:
    """The default policy plus ``g`` lines ``(subject, role, org-unit path)``."""
    authorizer = Authorizer()
    authorizer.load_rows([*DEFAULT_POLICY, *(extra or []), *(("g", list(grant)) for grant in grants)])
    return authorizer


def permissions(principal: Principal | None, authorizer: Authorizer) -> Permissions:
    return Permissions(principal, authorizer)


def sql(clause: Any) -> str:
    return str(clause.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["Person,phone", "Person(phone)", "Person[phone]", "{Person}", "Person phone", "Unit;read", "Unit'", ""],
)
def test_a_value_casbin_cannot_store_safely_is_refused(value: str) -> None:
    # given
    line = ["customer_service", "*", value, "read", "allow"]
    # when / then
    with pytest.raises(PolicyError):
        validate("p", line)
    with pytest.raises(PolicyError):
        PolicyLine("p", tuple(line))


@pytest.mark.parametrize("effect", ["Deny", "DENY", "Allow", "permit", "deny ", "*"])
def test_only_lower_case_allow_and_deny_are_effects(effect: str) -> None:
    # given
    line = ["manager", "*", "RoleAssignment", "*", effect]
    # when / then
    with pytest.raises(PolicyError):
        validate("p", line)


def test_a_capitalised_deny_in_the_store_fails_the_load_instead_of_being_ignored() -> None:
    # given: pycasbin on its own would read "Deny" as no effect at all, i.e. the deny vanishes
    authorizer = Authorizer()
    rows = [*DEFAULT_POLICY, ("p", ["manager", "*", "Unit", "create", "Deny"])]
    # when / then
    with pytest.raises(PolicyLoadError, match="Deny"):
        authorizer.load_rows(rows)
    assert not authorizer.loaded


@pytest.mark.parametrize(
    ("ptype", "values"),
    [
        ("p", ["admin", "*", "*", "*"]),  # too few values
        ("g", ["u:1", "admin", "DEMO"]),  # a grant's domain is an org-unit path
        ("g", ["u:1", "admin", "/1/2"]),
        ("x", ["u:1", "admin", "/1/"]),
    ],
)
def test_malformed_lines_are_refused(ptype: str, values: list[str]) -> None:
    with pytest.raises(PolicyError):
        validate(ptype, values)


def test_policy_csv_with_a_bad_value_names_file_and_line(tmp_path: Path) -> None:
    # given
    path = tmp_path / "policy.csv"
    path.write_text("# roles\np, admin, *, *, *, allow\np, finance, *, Bill(x), read, allow\n", encoding="utf-8")
    # when / then
    with pytest.raises(PolicyError, match=r"policy\.csv:3:"):
        read_policy_csv(path)


def test_the_shipped_policy_is_valid_and_keeps_the_managers_deny_row() -> None:
    # when
    lines = read_policy_csv(POLICY_CSV)
    # then
    assert PolicyLine("p", ("manager", "*", "RoleAssignment", "*", "deny")) in lines
    assert {line.ptype for line in lines} == {"p"}, "grants live in the database, not in policy.csv"


# --- loading fails closed ----------------------------------------------------------------------


def test_an_authorizer_that_never_loaded_allows_nothing() -> None:
    # given
    authorizer = Authorizer()
    # when / then
    with pytest.raises(PolicyLoadError):
        authorizer.domains("u:1", "Unit", "read")
    with pytest.raises(PolicyLoadError):
        permissions(STAFF, authorizer).allows_at("Unit", "read", "/1/")


async def test_a_bad_stored_line_makes_the_load_raise(runtime: Runtime) -> None:
    # given: a line with a comma, as a careless INSERT could write it
    async with runtime.sessionmaker() as session, session.begin():
        bad = CasbinRule(ptype="p", v0="finance", v1="*", v2="Bill,Payment", v3="read", v4="allow")
        session.add(bad)
    version = runtime.authorizer.version
    grants_before = runtime.authorizer.domains("u:1", "RoleAssignment", "grant")
    fresh = Authorizer()
    try:
        # when
        with pytest.raises(PolicyLoadError, match="Bill,Payment"):
            await fresh.load(runtime.sessionmaker)
        with pytest.raises(PolicyLoadError):
            await runtime.policy_changed()
        # then
        assert not fresh.loaded
        with pytest.raises(PolicyLoadError):
            fresh.domains("u:1", "Unit", "read")
        # the running process keeps its last good policy rather than opening up
        assert runtime.authorizer.version == version
        assert runtime.authorizer.domains("u:1", "RoleAssignment", "grant") == grants_before
    finally:
        async with runtime.sessionmaker() as session, session.begin():
            await session.execute(delete(CasbinRule).where(CasbinRule.v2 == "Bill,Payment"))
        await runtime.policy_changed()


# --- domains -----------------------------------------------------------------------------------


def test_a_role_at_a_branch_covers_the_offices_below_it_and_nothing_else() -> None:
    # given: a manager at branch North (/1/2/)
    authorizer = authorizer_with(("u:1", "manager", "/1/2/"))
    caller = permissions(STAFF, authorizer)
    # when
    allowed = {path: caller.allows_at("Unit", "read", path) for path in ("/1/2/", "/1/2/3/", "/1/2/4/9/")}
    refused = {path: caller.allows_at("Unit", "read", path) for path in ("/1/", "/1/5/", "/1/5/6/", "/1/20/", "/1/2")}
    # then
    assert all(allowed.values()), allowed
    assert not any(refused.values()), refused
    assert authorizer.domains("u:1", "Unit", "read") == ("/1/2/",)


def test_a_role_at_an_office_does_not_reach_up_to_its_branch() -> None:
    # given
    authorizer = authorizer_with(("u:1", "customer_service", "/1/2/3/"))
    caller = permissions(STAFF, authorizer)
    # when / then
    assert caller.allows_at("Person", "create", "/1/2/3/")
    assert not caller.allows_at("Person", "create", "/1/2/")
    assert not caller.allows_at("Person", "create", "/1/2/4/")


def test_nested_grants_collapse_to_the_highest_path() -> None:
    # given
    authorizer = authorizer_with(
        ("u:1", "customer_service", "/1/2/3/"), ("u:1", "manager", "/1/2/"), ("u:1", "finance", "/1/5/")
    )
    # when
    unit_reads = authorizer.domains("u:1", "Unit", "read")
    unit_creates = authorizer.domains("u:1", "Unit", "create")
    # then
    assert unit_reads == ("/1/2/", "/1/5/")
    assert unit_creates == ("/1/2/",), "finance creates no units"


def test_no_grant_means_no_domains() -> None:
    # given
    authorizer = authorizer_with(("u:1", "admin", "/1/"))
    # when / then
    assert authorizer.domains("u:999", "Unit", "read") == ()
    assert not permissions(Principal(999, "nobody", "STAFF", None), authorizer).anywhere("Unit", "read")


# --- deny wins ---------------------------------------------------------------------------------


def test_a_manager_cannot_grant_roles_although_allowed_everything_else() -> None:
    # given
    authorizer = authorizer_with(("u:1", "manager", "/1/2/"), ("u:2", "admin", "/1/"))
    # when / then
    assert authorizer.domains("u:1", "RoleAssignment", "grant") == ()
    assert authorizer.domains("u:1", "RoleAssignment", "read") == ()
    assert authorizer.domains("u:1", "Unit", "create") == ("/1/2/",)
    assert authorizer.domains("u:1", "Person.idNumber", "read") == ("/1/2/",)
    assert authorizer.domains("u:2", "RoleAssignment", "grant") == ("/1/",)


def test_a_deny_row_beats_an_allow_row_of_another_role_held_by_the_same_user() -> None:
    # given: one user is both customer_service and (by an added row) denied Person.phone
    deny = ("p", ["customer_service", "*", "Person.phone", "read", "deny"])
    authorizer = authorizer_with(("u:1", "customer_service", "/1/2/3/"), extra=[deny])
    # when / then
    assert authorizer.domains("u:1", "Person.phone", "read") == ()
    assert permissions(STAFF, authorizer).field_access("Person.phone") is FieldAccess.MASKED


# --- the memo ----------------------------------------------------------------------------------


def test_the_memo_is_cleared_on_reload() -> None:
    # given: the technician's answer is memoised
    grant = ("g", ["u:1", "technician", "/1/2/3/"])
    authorizer = Authorizer()
    authorizer.load_rows([*DEFAULT_POLICY, grant])
    assert authorizer.domains("u:1", "Person.phone", "read") == ()
    version = authorizer.version
    # when
    authorizer.load_rows([*DEFAULT_POLICY, ("p", ["technician", "*", "Person.phone", "read", "allow"]), grant])
    # then
    assert authorizer.domains("u:1", "Person.phone", "read") == ("/1/2/3/",)
    assert authorizer.version == version + 1


def test_a_revoked_grant_stops_answering_after_reload() -> None:
    # given
    authorizer = authorizer_with(("u:1", "manager", "/1/2/"))
    assert authorizer.domains("u:1", "Unit", "read") == ("/1/2/",)
    # when
    authorizer.load_rows(DEFAULT_POLICY)
    # then
    assert authorizer.domains("u:1", "Unit", "read") == ()
    assert authorizer.grants("u:1") == ()


# --- fields and rows ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "phone", "id_number"),
    [
        ("admin", FieldAccess.FULL, FieldAccess.FULL),
        ("manager", FieldAccess.FULL, FieldAccess.FULL),
        ("customer_service", FieldAccess.FULL, FieldAccess.MASKED),
        ("finance", FieldAccess.MASKED, FieldAccess.MASKED),
        ("technician", FieldAccess.MASKED, FieldAccess.MASKED),
        ("security_guard", FieldAccess.MASKED, FieldAccess.MASKED),
        ("supervisor", FieldAccess.MASKED, FieldAccess.MASKED),
        ("resident", FieldAccess.SELF, FieldAccess.SELF),
    ],
)
def test_field_access_per_role(role: str, phone: FieldAccess, id_number: FieldAccess) -> None:
    # given
    principal = RESIDENT if role == "resident" else STAFF
    authorizer = authorizer_with((principal.subject, role, "/1/2/3/"))
    caller = permissions(principal, authorizer)
    # when / then
    assert (caller.field_access("Person.phone"), caller.field_access("Person.idNumber")) == (phone, id_number)


def test_anonymous_callers_match_no_rows() -> None:
    # given
    authorizer = authorizer_with(("u:1", "admin", "/1/"))
    # when
    clause = predicate(Unit, permissions(None, authorizer))
    # then
    assert sql(clause) == "false"


def test_a_role_without_the_permission_matches_no_rows() -> None:
    # given: supervisors hold no `Person read`
    authorizer = authorizer_with(("u:1", "supervisor", "/1/2/"))
    # when
    clause = predicate(Person, permissions(STAFF, authorizer))
    # then
    assert sql(clause) == "false"


def test_a_model_without_a_row_rule_matches_no_rows_even_for_admin() -> None:
    # given
    authorizer = authorizer_with(("u:1", "admin", "/1/"))
    # when
    clause = predicate(AuditEntry, permissions(STAFF, authorizer))
    # then
    assert sql(clause) == "false"


@pytest.mark.parametrize(
    ("role", "path", "expected"),
    [
        ("customer_service", "/1/2/3/", {"DEMO-A"}),
        ("manager", "/1/2/", {"DEMO-A", "DEMO-B"}),
        ("supervisor", "/1/5/", {"DEMO-C"}),
        ("admin", "/1/", {"DEMO-A", "DEMO-B", "DEMO-C"}),
    ],
)
async def test_scoped_units_are_the_units_of_the_estates_under_the_grant(
    runtime: Runtime, demo: Any, role: str, path: str, expected: set[str]
) -> None:
    # given
    caller = permissions(STAFF, authorizer_with((STAFF.subject, role, path)))
    statement = scoped(select(Unit.estate_id).distinct(), Unit, caller)
    # when
    async with runtime.sessionmaker() as session:
        estate_ids = set((await session.scalars(statement)).all())
    # then
    assert {code for code, pk in demo.estates.items() if pk in estate_ids} == expected
