"""GraphQL types of access control (门禁): access points, credentials, visitor passes, swipes."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import strawberry

from authz.fields import mask_credential, mask_phone
from authz.principal import FieldAccess
from backend.access import models
from schema.core.loaders import Relation, register_relation
from schema.core.relay import Node
from schema.core.types import orm_type

if TYPE_CHECKING:
    from schema.core.context import Context
    from schema.people.types import PersonType
    from schema.property.types import EstateType, UnitType

AccessPointKind = strawberry.enum(models.AccessPointKind, name="AccessPointKind")
CredentialKind = strawberry.enum(models.CredentialKind, name="CredentialKind")
VisitorPassKind = strawberry.enum(models.VisitorPassKind, name="VisitorPassKind")
AccessDirection = strawberry.enum(models.AccessDirection, name="AccessDirection")
AccessResult = strawberry.enum(models.AccessResult, name="AccessResult")


def _credential_visible(info: strawberry.Info[Context, None], person_id: int | None) -> bool:
    access = info.context.permissions.field_access("Credential.identifier")
    if access is FieldAccess.FULL:
        return True
    principal = info.context.principal
    return (
        access is FieldAccess.SELF
        and principal is not None
        and person_id is not None
        and (principal.person_id == person_id)
    )


@orm_type(models.AccessPoint, name="AccessPoint", description="A gate, door or barrier and its controller.")
class AccessPointType(Node):
    name: str
    kind: AccessPointKind
    device_id: str | None = strawberry.field(description="The controller's MQTT device id.")
    location: str
    active: bool
    estate: Annotated[EstateType, strawberry.lazy("schema.property.types")]


@orm_type(models.Credential, name="Credential", description="A person's card, QR code, PIN or face, with validity.")
class CredentialType(Node):
    kind: CredentialKind
    valid_from: dt.datetime
    valid_until: dt.datetime | None
    revoked_at: dt.datetime | None
    person: Annotated[PersonType, strawberry.lazy("schema.people.types")]

    @strawberry.field(
        description="`kind:identifier`, e.g. `card:A1000001`. Masked (`card:A100****`) unless the caller holds "
        "`Credential.identifier read` (security guards, supervisors, managers) or it is the caller's own."
    )
    @staticmethod
    def identifier(root: strawberry.Parent[models.Credential], info: strawberry.Info[Context, None]) -> str:
        reference = root.reference
        return reference if _credential_visible(info, root.person_id) else str(mask_credential(reference))


@orm_type(models.VisitorPass, name="VisitorPass", description="A visitor's pass for a unit: at most 7 days.")
class VisitorPassType(Node):
    kind: VisitorPassKind
    code: str = strawberry.field(description="What the visitor shows at the gate (`qr:<code>` on the controller).")
    visitor_name: str
    valid_from: dt.datetime
    valid_until: dt.datetime
    revoked_at: dt.datetime | None
    created_at: dt.datetime
    unit: Annotated[UnitType, strawberry.lazy("schema.property.types")]

    @strawberry.field(
        description="Masked (`138****5678`) unless the caller holds `VisitorPass.visitorPhone read` (guards, "
        "supervisors, managers) or issued the pass."
    )
    @staticmethod
    def visitor_phone(root: strawberry.Parent[models.VisitorPass], info: strawberry.Info[Context, None]) -> str | None:
        ctx = info.context
        principal = ctx.principal
        if ctx.permissions.field_access("VisitorPass.visitorPhone") is FieldAccess.FULL or (
            principal is not None and principal.user_id == root.issued_by_id
        ):
            return root.visitor_phone
        return mask_phone(root.visitor_phone)


@orm_type(models.AccessEvent, name="AccessEvent", description="A swipe as the controller reported it; never edited.")
class AccessEventType(Node):
    occurred_at: dt.datetime
    direction: AccessDirection
    result: AccessResult
    reason: str | None = strawberry.field(
        description="The controller's reason, else the backend's finding (`unknown_credential`, "
        "`credential_revoked`, `credential_expired`, `pass_revoked`, …)."
    )
    device_id: str
    access_point: AccessPointType | None
    person: Annotated[PersonType, strawberry.lazy("schema.people.types")] | None = strawberry.field(
        description="The credential's holder, if the credential is known."
    )
    visitor_pass: VisitorPassType | None
    estate: Annotated[EstateType, strawberry.lazy("schema.property.types")]

    @strawberry.field(description="The credential reported, masked as `Credential.identifier`.")
    @staticmethod
    def credential(root: strawberry.Parent[models.AccessEvent], info: strawberry.Info[Context, None]) -> str | None:
        if _credential_visible(info, root.person_id):
            return root.credential_ref
        return mask_credential(root.credential_ref)


register_relation(models.AccessPoint, "estate", Relation("estate"))
register_relation(models.Credential, "person", Relation("person"))
register_relation(models.VisitorPass, "unit", Relation("unit"))
register_relation(models.AccessEvent, "accessPoint", Relation("access_point"))
register_relation(models.AccessEvent, "person", Relation("person"))
register_relation(models.AccessEvent, "visitorPass", Relation("visitor_pass"))
register_relation(models.AccessEvent, "estate", Relation("estate"))
