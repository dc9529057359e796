"""The per-request GraphQL context: who asks, a lazily opened session, permissions, loaders."""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.extensions import SchemaExtension

from authz.principal import Permissions, Principal
from schema.core.errors import Unauthenticated

if TYPE_CHECKING:
    from backend.app import Runtime
    from schema.core.loaders import Loaders

# The loaders of the request being executed; the default field resolver falls back to them
# for a relation that the root resolver did not preload.
current_loaders: contextvars.ContextVar[Loaders | None] = contextvars.ContextVar("current_loaders", default=None)


@dataclass(slots=True)
class Context:
    runtime: Runtime
    permissions: Permissions
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    client_ip: str = "unknown"
    connection_params: dict[str, Any] | None = None
    hang_up: Callable[[], None] | None = None  # over a websocket: close the connection, whatever it is doing
    _session: AsyncSession | None = None
    _loaders: Loaders | None = None

    @property
    def production(self) -> bool:
        return bool(self.runtime.settings.production)

    @property
    def principal(self) -> Principal | None:
        return self.permissions.principal

    def require_principal(self) -> Principal:
        if self.permissions.principal is None:
            raise Unauthenticated()
        return self.permissions.principal

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            self._session = self.runtime.sessionmaker()
        return self._session

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            from schema.core.loaders import Loaders

            self._loaders = Loaders(self)
        return self._loaders

    async def close(self) -> None:
        """End the operation's unit of work: its session and its DataLoaders' caches."""
        self._loaders = None
        if self._session is not None:
            await self._session.close()
            self._session = None


class OperationScope(SchemaExtension):
    """Each operation gets its loaders for the default resolver and leaves no session open.

    Over HTTP a context serves one operation; over a websocket one context serves every
    operation of the connection, so this is where the per-operation state must end.
    """

    async def on_operation(self) -> AsyncIterator[None]:  # type: ignore[override]
        context = self.execution_context.context
        token = current_loaders.set(context.loaders)
        try:
            yield
        finally:
            current_loaders.reset(token)
            await context.close()
