"""The viewer (the logged-in account) and its role assignments."""

from __future__ import annotations

import datetime as dt
import enum

import strawberry
from sqlalchemy import or_, select

from authz.scopes import occupancy_current, scoped
from backend.accounts import models
from backend.accounts.roles import role_assignments
from backend.notifications import models as notification_models
from backend.notifications.service import unread_count
from schema.billing.types import PaymentType
from schema.core.loaders import Relation, load_options, register_relation
from schema.core.relay import Connection, Node
from schema.core.resolving import Info, scoped_connection
from schema.core.types import orm_type
from schema.people.types import PersonType
from schema.property.types import OrgUnitType, UnitType

UserKind = strawberry.enum(models.UserKind, name="UserKind")


@strawberry.type
class RoleAssignment:
    role: str = strawberry.field(description="Lower-case role name, e.g. `manager`.")
    org_unit: OrgUnitType


@orm_type(notification_models.Notification, name="Notification")
class NotificationType(Node):
    kind: str
    title: str
    body: str
    created_at: dt.datetime
    read_at: dt.datetime | None


class NotificationStatus(enum.Enum):
    ALL = "all"
    UNREAD = "unread"


strawberry.enum(NotificationStatus, name="NotificationStatus")


@orm_type(models.User, name="Viewer", description="The account making the request.")
class ViewerType:
    username: str
    kind: UserKind
    display_name: str

    @strawberry.field
    @staticmethod
    def id(root: strawberry.Parent[models.User]) -> strawberry.ID:
        return strawberry.ID(root.gid)

    @strawberry.field(description="The resident's own person; null for staff.")
    @staticmethod
    async def person(root: strawberry.Parent[models.User], info: Info) -> PersonType | None:
        if root.person_id is None:
            return None
        from backend.people.models import Person
        from schema.core.resolving import get_scoped

        return await get_scoped(info, Person, root.person_id)  # type: ignore[return-value]

    @strawberry.field(description="The units the viewer currently occupies (owner, tenant, family); empty for staff.")
    @staticmethod
    async def units(root: strawberry.Parent[models.User], info: Info) -> list[UnitType]:
        if root.person_id is None:
            return []
        from backend.people.models import Occupancy
        from backend.property.models import Unit

        statement = (
            select(Unit)
            .where(
                Unit.id.in_(select(Occupancy.unit_id).where(Occupancy.person_id == root.person_id, occupancy_current()))
            )
            .order_by(Unit.id)
        )
        statement = scoped(statement, Unit, info.context.permissions).options(
            *load_options(info.context, Unit, info.selected_fields[0].selections)
        )
        return list((await info.context.session.scalars(statement)).unique().all())

    @strawberry.field
    @staticmethod
    async def roles(root: strawberry.Parent[models.User], info: Info) -> list[RoleAssignment]:
        return [RoleAssignment(role=r, org_unit=o) for r, o in await role_assignments(info.context.session, root.id)]  # type: ignore[arg-type]

    @strawberry.field(description="The viewer's in-app notifications, newest last.")
    @staticmethod
    async def notifications(
        root: strawberry.Parent[models.User],
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        status: NotificationStatus = NotificationStatus.ALL,
    ) -> Connection[NotificationType]:
        statement = select(notification_models.Notification)
        if status is NotificationStatus.UNREAD:
            statement = statement.where(notification_models.Notification.read_at.is_(None))
        return await scoped_connection(info, notification_models.Notification, statement, first=first, after=after)

    @strawberry.field(
        description="The viewer's payment history, newest first: payments they made, and payments for bills of "
        "their units (a resident's own, pending ones included)."
    )
    @staticmethod
    async def payments(
        root: strawberry.Parent[models.User], info: Info, first: int | None = 20, after: str | None = None
    ) -> Connection[PaymentType]:
        from authz.scopes import own_bill_paid_by
        from backend.billing.models import Payment

        mine = Payment.created_by_id == root.id
        if root.person_id is not None:
            mine = or_(mine, own_bill_paid_by(root.person_id))
        return await scoped_connection(
            info, Payment, select(Payment).where(mine), first=first, after=after, newest_first=True
        )

    @strawberry.field
    @staticmethod
    async def unread_notification_count(root: strawberry.Parent[models.User], info: Info) -> int:
        return await unread_count(info.context.session, root.id)


@orm_type(models.User, name="User", description="A login account (staff or resident), as staff administer it.")
class UserType(Node):
    username: str
    kind: UserKind
    display_name: str
    is_active: bool
    last_login_at: dt.datetime | None
    person: PersonType | None

    @strawberry.field(description="The account's role grants.")
    @staticmethod
    async def roles(root: strawberry.Parent[models.User], info: Info) -> list[RoleAssignment]:
        grants = await info.context.loaders.roles_by_user.load(root.id)
        return [RoleAssignment(role=role, org_unit=org) for role, org in grants]


register_relation(models.User, "person", Relation("person"))
