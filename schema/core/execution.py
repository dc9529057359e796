"""One execution per live event and result group, shared by every subscriber of the group.

A hub (schema/core/live.py) loads each event once and hands the SAME payload object to every
subscriber; each subscription yields it, and graphql-core would execute the subscription's
document once per subscriber (``map_source_to_response_event`` → ``execute_operation`` of a
per-event executor). :class:`SharedEventExecutor` executes a :func:`share`-d payload once per
result group and gives every subscriber of the group the same ``ExecutionResult``.

A result group is what decides the result: the document, the operation, the variables, and
who asks (the principal, and the policy version behind its permissions). The principal itself
is in the key, not only its grants: resolvers reachable from ``AlarmEvent`` and
``AccessEvent`` read who the caller is beyond the permissions (``Alarm.ticket`` shows the
caller's assigned work order, ``Ticket.contactPhone`` the assignee's and reporter's own,
``Person.phone`` and ``AccessEvent.credential`` the caller's own, row rules with ``*_own`` /
``*_assigned``), so two users with equal grants may see different results.

The shared execution runs in a task of its own with a context of its own (its own session
and DataLoaders, closed afterwards): no subscriber's connection, session or cancellation can
spoil it for the others. Errors are masked afterwards per subscriber (``ErrorMasking``), so
each caller sees its own request id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Final, cast

import orjson
from graphql import ExecutionResult, print_ast
from graphql.pyutils import AwaitableOrValue, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from authz.principal import Permissions
from schema.core.context import Context, current_loaders

_DEFAULT: Final = "<default>"  # a variable the request left out (its default applies)

SharedResults = dict[Hashable, "asyncio.Task[Any]"]

# The payload carries its executions by result group: they go when it goes, i.e. once no
# subscriber holds it in its queue any more.
_RESULTS: Final = "_shared_results"


@dataclass
class SharedExecutionStats:
    executions: int = 0  # shared payloads executed (one per event and result group)
    reused: int = 0  # results handed to a subscriber from another one's execution


stats = SharedExecutionStats()


def share(payload: Any) -> None:
    """Mark a subscription payload, yielded by many subscribers, as executed once per result group."""
    setattr(payload, _RESULTS, {})


def _results_of(payload: Any) -> SharedResults | None:
    return getattr(payload, _RESULTS, None)


def _retrieve(task: asyncio.Task[Any]) -> None:
    # A result nobody waits for any more (every subscriber left): no "never retrieved" warning.
    if not task.cancelled():
        task.exception()


class SharedEventExecutor(StrawberryGraphQLCoreExecutionContext):  # type: ignore[misc]
    """strawberry's executor, executing a shared payload once per result group."""

    _document_key: Hashable | None = None  # what the subscription executes; fixed for its life

    def build_per_event_executor(self, payload: Any) -> Any:
        results = None if payload is None else _results_of(payload)
        if results is None:
            return super().build_per_event_executor(payload)
        if self._document_key is None:
            self._document_key = self._key_of_document()
        return _SharedEvent(self, payload, results)

    async def _execute_for_group(self, serially: bool | None) -> ExecutionResult:
        """Execute this per-event executor (a subscriber's throwaway copy) for the whole group."""
        subscriber: Context = self.context_value
        runtime = subscriber.runtime
        context = Context(
            runtime=runtime,
            permissions=Permissions(subscriber.principal, runtime.authorizer),
            client_ip=subscriber.client_ip,
        )
        self.context_value = context
        current_loaders.set(context.loaders)  # in this task's own copy of the context variables
        stats.executions += 1
        try:
            result = self.execute_operation(serially)
            if self.is_awaitable(result):
                result = await result
            return result  # type: ignore[no-any-return]
        finally:
            await context.close()

    def _key_of_document(self) -> Hashable:
        operation = self.operation
        if operation.loc is not None:
            document = operation.loc.source.body
        else:
            document = "\n".join(print_ast(node) for node in (operation, *self.fragment_definitions.values()))
        variables = {
            name: _DEFAULT if source.value is Undefined else source.value
            for name, source in self.variable_values.sources.items()
        }
        extensions = getattr(self, "operation_extensions", None)
        return (
            document,
            operation.name.value if operation.name else None,
            orjson.dumps(variables, option=orjson.OPT_SORT_KEYS, default=repr),
            orjson.dumps(extensions, option=orjson.OPT_SORT_KEYS, default=repr) if extensions else None,
        )


class _SharedEvent:
    """Stands for the per-event executor of a shared payload, for one subscriber: it finds the
    group's execution, and only the subscriber that starts it copies the executor."""

    __slots__ = ("_executor", "_payload", "_results")

    def __init__(self, executor: SharedEventExecutor, payload: Any, results: SharedResults) -> None:
        self._executor = executor
        self._payload = payload
        self._results = results

    def execute_operation(self, serially: bool | None = None) -> AwaitableOrValue[Any]:
        executor = self._executor
        context: Context = executor.context_value
        group = (executor._document_key, context.principal, context.runtime.authorizer.version)
        execution = self._results.get(group)
        if execution is None:
            event_executor = cast(
                "SharedEventExecutor", super(SharedEventExecutor, executor).build_per_event_executor(self._payload)
            )
            execution = asyncio.get_running_loop().create_task(event_executor._execute_for_group(serially))
            execution.add_done_callback(_retrieve)
            self._results[group] = execution
        else:
            stats.reused += 1
            if execution.done() and not execution.cancelled() and execution.exception() is None:
                return execution.result()  # the common case: no coroutine, no task switch
        return _awaited(execution)


async def _awaited(execution: asyncio.Task[Any]) -> Any:
    # The execution belongs to the group: one subscriber leaving must not cancel it.
    return await asyncio.shield(execution)
