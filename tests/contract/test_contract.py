"""The frontend contract (DESIGN.md §8, CONTRACT.md): no database needed.

- every operation the frontends send (frontend-contract/<frontend>/**/*.graphql) parses and
  validates against the schema the code builds;
- the committed frontend-contract/schema.graphql is what `uv run wuye export-schema` writes now;
- the binding GraphQL names of CONTRACT.md that exist at this stage are all there;
- the project's own top-level packages are imported, not same-named ones from PyPI.
"""

from __future__ import annotations

import difflib
import importlib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from graphql import (
    DocumentNode,
    ExecutableDefinitionNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    Visitor,
    get_named_type,
    parse,
    validate,
    visit,
)

from backend.settings import Settings
from schema.schema import build_schema

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONTRACT_DIR = PROJECT_ROOT / "frontend-contract"
SCHEMA_FILE = CONTRACT_DIR / "schema.graphql"
FRONTENDS = ("owner-app", "staff-console", "supervisor-dashboard")


@cache
def _strawberry_schema() -> Any:
    return build_schema(Settings())


@pytest.fixture(scope="module")
def graphql_schema() -> GraphQLSchema:
    built: GraphQLSchema = _strawberry_schema()._schema
    return built


# --- the frontends' documents -------------------------------------------------------------


def _frontend_dirs() -> list[Path]:
    return sorted(path for path in CONTRACT_DIR.iterdir() if path.is_dir())


def _documents() -> list[Path]:
    return sorted(path for folder in _frontend_dirs() for path in folder.rglob("*.graphql"))


def _label(path: Path) -> str:
    return path.relative_to(CONTRACT_DIR).as_posix()


def _frontend_of(path: Path) -> Path:
    return CONTRACT_DIR / path.relative_to(CONTRACT_DIR).parts[0]


@cache
def _parsed(path: Path) -> DocumentNode:
    return parse(path.read_text(encoding="utf-8"))


def _definitions(path: Path) -> tuple[list[OperationDefinitionNode], list[FragmentDefinitionNode]]:
    document = _parsed(path)
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    fragments = [d for d in document.definitions if isinstance(d, FragmentDefinitionNode)]
    return operations, fragments


@cache
def _fragments_of(folder: Path) -> dict[str, FragmentDefinitionNode]:
    """A frontend folder is one document namespace: its fragments are shared by its operations."""
    fragments: dict[str, FragmentDefinitionNode] = {}
    for path in sorted(folder.rglob("*.graphql")):
        for fragment in _definitions(path)[1]:
            fragments.setdefault(fragment.name.value, fragment)
    return fragments


def _spreads(node: Any) -> set[str]:
    names: set[str] = set()

    class Collect(Visitor):
        def enter_fragment_spread(self, spread: FragmentSpreadNode, *_args: Any) -> None:
            names.add(spread.name.value)

    visit(node, Collect())
    return names


def _with_fragments(operation: OperationDefinitionNode, fragments: dict[str, FragmentDefinitionNode]) -> DocumentNode:
    """The operation plus every fragment it uses, directly or through other fragments."""
    needed: list[str] = []
    pending = sorted(_spreads(operation))
    while pending:
        name = pending.pop()
        if name in needed or name not in fragments:
            continue  # an unknown fragment is left for validation to report
        needed.append(name)
        pending.extend(sorted(_spreads(fragments[name])))
    definitions: list[ExecutableDefinitionNode] = [operation, *(fragments[name] for name in sorted(needed))]
    return DocumentNode(definitions=tuple(definitions))


DOCUMENTS = _documents()


def test_every_frontend_has_operations() -> None:
    for frontend in FRONTENDS:
        folder = CONTRACT_DIR / frontend
        assert folder.is_dir(), f"missing {_label(folder)}/"
        operations = [path for path in folder.rglob("*.graphql") if _definitions(path)[0]]
        assert operations, f"{frontend} has no operations"


@pytest.mark.parametrize("path", DOCUMENTS, ids=_label)
def test_document_is_one_named_definition(path: Path) -> None:
    """One operation per file, or one fragment per file, named like the file."""
    operations, fragments = _definitions(path)
    definitions = [*operations, *fragments]
    assert len(definitions) == 1, f"{_label(path)}: expected one operation or one fragment, found {len(definitions)}"
    name = definitions[0].name
    assert name is not None, f"{_label(path)}: operations must be named"
    assert name.value == path.stem, f"{_label(path)}: holds {name.value!r}; name the file {name.value}.graphql"


@pytest.mark.parametrize("path", [path for path in DOCUMENTS if _definitions(path)[0]], ids=_label)
def test_operation_validates(path: Path, graphql_schema: GraphQLSchema) -> None:
    (operation,) = _definitions(path)[0]
    document = _with_fragments(operation, _fragments_of(_frontend_of(path)))
    errors = validate(graphql_schema, document)
    assert not errors, f"{_label(path)} does not validate:\n" + "\n".join(f"  {error}" for error in errors)


def test_names_are_unique() -> None:
    """Operation and fragment names are unique across all frontends (codegen and logs key on them)."""
    seen: dict[str, str] = {}
    duplicates: list[str] = []
    for path in DOCUMENTS:
        operations, fragments = _definitions(path)
        for definition in [*operations, *fragments]:
            if definition.name is None:
                continue
            name = definition.name.value
            if name in seen:
                duplicates.append(f"{name}: {seen[name]} and {_label(path)}")
            seen.setdefault(name, _label(path))
    assert not duplicates, "duplicate names:\n" + "\n".join(duplicates)


def test_every_fragment_is_used() -> None:
    unused: list[str] = []
    for folder in _frontend_dirs():
        fragments = _fragments_of(folder)
        used: set[str] = set()
        for path in folder.rglob("*.graphql"):
            for operation in _definitions(path)[0]:
                used.update(
                    d.name.value
                    for d in _with_fragments(operation, fragments).definitions
                    if isinstance(d, FragmentDefinitionNode)
                )
        unused.extend(f"{_label(folder)}: {name}" for name in sorted(set(fragments) - used))
    assert not unused, "fragments no operation uses:\n" + "\n".join(unused)


# --- the committed SDL ----------------------------------------------------------------------


def test_committed_schema_is_current() -> None:
    expected = _strawberry_schema().as_str() + "\n"
    committed = SCHEMA_FILE.read_text(encoding="utf-8") if SCHEMA_FILE.exists() else ""
    if committed != expected:
        diff = difflib.unified_diff(
            committed.splitlines(), expected.splitlines(), "committed", "schema/schema.py", lineterm=""
        )
        shown = "\n".join(list(diff)[:80])
        pytest.fail(f"frontend-contract/schema.graphql is stale: run `uv run wuye export-schema`.\n{shown}")


# --- the binding names of CONTRACT.md (those that exist at this stage) ----------------------

BINDING_QUERIES = ("viewer", "node", "estates", "units", "people", "announcements")
BINDING_CONNECTIONS = ("estates", "units", "people", "announcements")
BINDING_MUTATIONS = (
    "login",
    "refreshToken",
    "logout",
    "generateUnits",
    "grantRole",
    "revokeRole",
    "publishAnnouncement",
    "markNotificationsRead",
)
BINDING_SUBSCRIPTIONS = ("notificationAdded",)

# Only names CONTRACT.md binds; input objects are written inline so that no type name is relied on.
BINDING_DOCUMENT = """
fragment BindingViewer on Viewer {
  id username kind
  person { ...BindingPerson }
  roles { role orgUnit { id name } }
}
fragment BindingPerson on Person { id name phone idNumber }
fragment BindingEstate on Estate { id code name }
fragment BindingUnit on Unit {
  id code floor area usage
  building { id name estate { ...BindingEstate } }
  occupants { role person { ...BindingPerson } }
}
fragment BindingErrors on UserError { field code message }

query BindingQueries($id: ID!, $first: Int, $after: String) {
  viewer { ...BindingViewer }
  node(id: $id) {
    id
    ... on Unit { ...BindingUnit }
    ... on Person { ...BindingPerson }
    ... on Estate { ...BindingEstate }
  }
  estates(first: $first, after: $after, filter: {}) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { ...BindingEstate } }
  }
  units(first: $first, after: $after, filter: {}) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { ...BindingUnit } }
  }
  people(first: $first, after: $after, filter: {}) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { ...BindingPerson } }
  }
  announcements(first: $first, after: $after, filter: {}) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id } }
  }
}

mutation BindingLogin($username: String!, $password: String!) {
  login(input: {username: $username, password: $password}) {
    accessToken refreshToken expiresAt viewer { ...BindingViewer } errors { ...BindingErrors }
  }
}

mutation BindingRefreshToken($refreshToken: String!) {
  refreshToken(input: {refreshToken: $refreshToken}) {
    accessToken refreshToken expiresAt errors { ...BindingErrors }
  }
}

mutation BindingLogout($refreshToken: String!) {
  logout(input: {refreshToken: $refreshToken}) { errors { ...BindingErrors } }
}

mutation BindingGrantRole($userId: ID!, $role: String!, $orgUnitId: ID!) {
  grantRole(input: {userId: $userId, role: $role, orgUnitId: $orgUnitId}) {
    roleAssignment { role orgUnit { id } } errors { ...BindingErrors }
  }
}

mutation BindingRevokeRole($userId: ID!, $role: String!, $orgUnitId: ID!) {
  revokeRole(input: {userId: $userId, role: $role, orgUnitId: $orgUnitId}) { errors { ...BindingErrors } }
}

subscription BindingNotificationAdded {
  notificationAdded { __typename }
}
"""


def _root(schema: GraphQLSchema, kind: str) -> GraphQLObjectType:
    roots = {"Query": schema.query_type, "Mutation": schema.mutation_type, "Subscription": schema.subscription_type}
    root = roots[kind]
    assert root is not None, f"the schema has no {kind} type"
    return root


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        *(("Query", name) for name in BINDING_QUERIES),
        *(("Mutation", name) for name in BINDING_MUTATIONS),
        *(("Subscription", name) for name in BINDING_SUBSCRIPTIONS),
    ],
)
def test_binding_root_field_exists(graphql_schema: GraphQLSchema, kind: str, name: str) -> None:
    assert name in _root(graphql_schema, kind).fields, f"CONTRACT.md binds {kind}.{name}, the schema lacks it"


@pytest.mark.parametrize("name", BINDING_CONNECTIONS)
def test_binding_list_query_is_a_filtered_connection(graphql_schema: GraphQLSchema, name: str) -> None:
    field = _root(graphql_schema, "Query").fields[name]
    for argument in ("first", "after", "filter"):
        assert argument in field.args, f"Query.{name} lacks the `{argument}` argument"
    assert isinstance(get_named_type(field.args["filter"].type), GraphQLInputObjectType), (
        f"Query.{name}(filter:) is not an input object"
    )
    connection = get_named_type(field.type)
    assert isinstance(connection, GraphQLObjectType)
    for member in ("edges", "pageInfo", "totalCount"):
        assert member in connection.fields, f"{connection.name} (from Query.{name}) lacks `{member}`"
    edge = get_named_type(connection.fields["edges"].type)
    assert isinstance(edge, GraphQLObjectType)
    assert "node" in edge.fields, f"{edge.name} lacks `node`"


@pytest.mark.parametrize("name", BINDING_MUTATIONS)
def test_binding_mutation_takes_input_and_returns_errors(graphql_schema: GraphQLSchema, name: str) -> None:
    field = _root(graphql_schema, "Mutation").fields[name]
    assert list(field.args) == ["input"], f"Mutation.{name} takes {list(field.args)}, not just `input:`"
    assert isinstance(field.args["input"].type, GraphQLNonNull), f"Mutation.{name}(input:) is optional"
    assert isinstance(get_named_type(field.args["input"].type), GraphQLInputObjectType)
    payload = get_named_type(field.type)
    assert isinstance(payload, GraphQLObjectType), f"Mutation.{name} does not return a payload object"
    assert "errors" in payload.fields, f"{payload.name} (from Mutation.{name}) lacks `errors`"
    errors_type = payload.fields["errors"].type
    assert isinstance(errors_type, GraphQLNonNull), f"{payload.name}.errors is nullable"
    assert isinstance(errors_type.of_type, GraphQLList), f"{payload.name}.errors is not a list"
    error = get_named_type(errors_type)
    assert isinstance(error, GraphQLObjectType)
    for member in ("field", "code", "message"):
        assert member in error.fields, f"{error.name} (errors of Mutation.{name}) lacks `{member}`"


def test_binding_document_validates(graphql_schema: GraphQLSchema) -> None:
    errors = validate(graphql_schema, parse(BINDING_DOCUMENT))
    assert not errors, "CONTRACT.md's binding fields do not validate:\n" + "\n".join(f"  {e}" for e in errors)


def test_enum_values_are_upper_case(graphql_schema: GraphQLSchema) -> None:
    lower = [
        f"{type_.name}.{value}"
        for type_ in graphql_schema.type_map.values()
        if isinstance(type_, GraphQLEnumType) and not type_.name.startswith("__")
        for value in type_.values
        if value != value.upper()
    ]
    assert not lower, f"enums are upper case on the wire (CONTRACT.md): {lower}"


# --- the project's packages, not PyPI's namesakes (PyPI has a `schema` library) -------------


@pytest.mark.parametrize("package", ["schema", "backend", "workers", "authz", "iot"])
def test_package_is_the_projects_own(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__file__ is not None, f"{package} is a namespace package, not the project's"
    assert Path(module.__file__).resolve().parent == PROJECT_ROOT / package, (
        f"`import {package}` found {module.__file__}, not the project's {package}/"
    )
