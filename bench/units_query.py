"""The units list through the real GraphQL endpoint, side by side with a hand-written endpoint.

``uv run python -m bench.units_query`` (or ``make bench``) creates a throwaway database,
migrates and seeds the demo company, logs in as ``manager.north`` and times, in this process:

* ``graphql``      — the real app's ``POST /graphql`` with :data:`QUERY`;
* ``handwritten``  — a Starlette endpoint with raw asyncpg (its own pool) and orjson that
  returns the same JSON (checked before anything is timed);
* ``floor``        — graphql-core's ``graphql()`` running :data:`QUERY` on the same schema
  over prebuilt dicts (the executor's own cost: no I/O, no resolvers of ours);
* ``floor-exec``   — the same with the document parsed once (``execute()`` only);
* ``no-io``        — strawberry executing :data:`QUERY` on the real schema with the page of
  ORM objects already loaded (our GraphQL layer without HTTP and the database).

Both HTTP endpoints are driven through ``httpx.ASGITransport``, sequentially and with
``--concurrency`` requests in flight. It prints requests/s, the ratios against the
hand-written endpoint, the share of request time spent in authz, and PASS/MISS against the
targets. See bench/README.md for how to read it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import datetime as dt
import gc
import io
import logging
import os
import pstats
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import orjson
import structlog
from graphql import GraphQLObjectType, execute, parse
from graphql import graphql as graphql_core
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import authz.enforcer
import authz.principal
import authz.scopes
import schema.core.loaders
import schema.property.queries
from authz.fields import mask_phone
from authz.principal import Permissions, Principal
from authz.rules import subject
from backend.accounts.errors import InvalidToken
from backend.accounts.tokens import decode_access_token
from backend.app import Runtime, build_runtime, create_app
from backend.settings import Settings
from schema.core.context import Context

QUERY = "query Units { units(first: 100) { edges { node { building { estate { name } } occupants { person { name phone } } } } } }"
PAGE = 100
USERNAME = "manager.north"
PASSWORD = "demo1234"

TARGET_RATIO = 0.12  # graphql ≥ 12 % of the hand-written endpoint's throughput
TARGET_AUTHZ = 0.05  # authz ≤ 5 % of request time

DEFAULT_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"

LOGIN = """
mutation Login($username: String!, $password: String!) {
  login(input: {username: $username, password: $password}) { accessToken errors { code message } }
}
"""

# --- the hand-written endpoint ---------------------------------------------------------------

# The GraphQL resolver's statement, written by hand: the caller's units in id order, each with
# its building's estate. Row scope as in authz/scopes.py: units of estates under the caller's
# org-unit paths ($1), or units the caller ($3, NULL without `read_own`) occupies today ($4).
UNITS_SQL = """
SELECT u.id, e.name
FROM units u
JOIN buildings b ON b.id = u.building_id
JOIN estates e ON e.id = b.estate_id
WHERE u.estate_id IN (SELECT id FROM estates WHERE org_path LIKE ANY($1::text[]))
   OR u.id IN (
    SELECT unit_id FROM occupancies
    WHERE person_id = $3 AND start_date <= $4 AND (end_date IS NULL OR end_date > $4)
  )
ORDER BY u.id
LIMIT $2
"""

# Today's occupancies of those units ($1) that the caller may see (same rules, for Occupancy),
# in occupancy order, with their person.
OCCUPANTS_SQL = """
SELECT o.unit_id, p.id, p.name, p.phone
FROM occupancies o
JOIN persons p ON p.id = o.person_id
WHERE o.unit_id = ANY($1::int[])
  AND o.start_date <= $2 AND (o.end_date IS NULL OR o.end_date > $2)
  AND (
    o.unit_id IN (
      SELECT id FROM units WHERE estate_id IN (SELECT id FROM estates WHERE org_path LIKE ANY($3::text[]))
    )
    OR o.person_id = $4
  )
ORDER BY o.id
"""


def _like_prefixes(domains: tuple[str, ...]) -> list[str]:
    return [d.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" for d in domains]


def handwritten_app(settings: Settings, runtime: Runtime, pool: Any) -> Starlette:
    """``POST /units`` with ``{"first": n}``: what a careful hand-written endpoint would do.

    It verifies the bearer token, asks the (memoised) authorizer for the caller's org-unit
    paths and phone permission, runs two statements and serialises with orjson.
    """
    authorizer = runtime.authorizer

    async def units(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        try:
            if scheme.lower() != "bearer":
                raise InvalidToken("not a bearer token")
            claims = decode_access_token(settings, token.strip())
        except InvalidToken:
            return Response(b'{"error":"unauthenticated"}', status_code=401, media_type="application/json")
        first = int(orjson.loads(await request.body()).get("first", 20))
        sub = subject(claims.user_id)
        unit_scope = _like_prefixes(authorizer.domains(sub, "Unit", "read"))
        unit_own = claims.person_id if authorizer.domains(sub, "Unit", "read_own") else None
        occupancy_scope = _like_prefixes(authorizer.domains(sub, "Occupancy", "read"))
        occupancy_own = claims.person_id if authorizer.domains(sub, "Occupancy", "read_own") else None
        phone_full = bool(authorizer.domains(sub, "Person.phone", "read"))
        phone_self = bool(authorizer.domains(sub, "Person.phone", "read_self"))
        today = dt.date.today()
        async with pool.acquire() as connection:
            rows = await connection.fetch(UNITS_SQL, unit_scope, first, unit_own, today)
            occupants: dict[int, list[dict[str, Any]]] = {row[0]: [] for row in rows}
            if rows:
                for unit_id, person_id, name, phone in await connection.fetch(
                    OCCUPANTS_SQL, list(occupants), today, occupancy_scope, occupancy_own
                ):
                    if not (phone_full or (phone_self and person_id == claims.person_id)):
                        phone = mask_phone(phone)
                    occupants[unit_id].append({"person": {"name": name, "phone": phone}})
        edges = [
            {"node": {"building": {"estate": {"name": estate}}, "occupants": occupants[unit_id]}}
            for unit_id, estate in rows
        ]
        return Response(orjson.dumps({"data": {"units": {"edges": edges}}}), media_type="application/json")

    return Starlette(routes=[Route("/units", units, methods=["POST"])])


# --- measuring authz -------------------------------------------------------------------------


@dataclass
class AuthzClock:
    """Wall time spent inside the authz entry points, outermost calls only (the inner ones
    are counted in the outer one's time, under its name)."""

    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    _depth: int = 0

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            # The wrapped functions are synchronous, so calls never interleave across tasks.
            if self._depth:
                return function(*args, **kwargs)
            self._depth += 1
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
                self.calls[name] = self.calls.get(name, 0) + 1
                self._depth -= 1

        return timed


@contextlib.contextmanager
def timing_authz(clock: AuthzClock) -> Iterator[None]:
    """Wrap ``Authorizer.domains``, ``Permissions.field_access``/``domains`` and
    ``scopes.predicate`` (also where it was imported by name) for the duration."""
    targets: list[tuple[Any, str, str]] = [
        (authz.enforcer.Authorizer, "domains", "Authorizer.domains"),
        (authz.principal.Permissions, "field_access", "Permissions.field_access"),
        (authz.principal.Permissions, "domains", "Permissions.domains"),
        (authz.scopes, "predicate", "scopes.predicate"),
        (schema.core.loaders, "predicate", "scopes.predicate"),
    ]
    originals = [(owner, name, label, owner.__dict__[name]) for owner, name, label in targets]
    try:
        for owner, name, label, original in originals:
            setattr(owner, name, clock.wrap(label, original))
        yield
    finally:
        for owner, name, _label, original in originals:
            setattr(owner, name, original)


@dataclass
class GCClock:
    """Wall time spent in the cyclic garbage collector (``gc.callbacks``)."""

    seconds: float = 0.0
    collections: dict[int, int] = field(default_factory=dict)
    _started: float = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        self.seconds += time.perf_counter() - self._started
        generation = info["generation"]
        self.collections[generation] = self.collections.get(generation, 0) + 1


@contextlib.contextmanager
def timing_gc(clock: GCClock) -> Iterator[None]:
    gc.callbacks.append(clock)
    try:
        yield
    finally:
        gc.callbacks.remove(clock)


# --- the executor floor and strawberry without I/O --------------------------------------------


@contextlib.contextmanager
def plain_schema(runtime: Runtime) -> Iterator[None]:
    """The same GraphQLSchema with its resolvers and ``is_type_of`` checks removed, so
    graphql-core's default resolver reads plain dicts. Restored on exit."""
    saved: list[tuple[Any, str, Any]] = []
    for type_ in runtime.schema._schema.type_map.values():
        if not isinstance(type_, GraphQLObjectType) or type_.name.startswith("__"):
            continue
        saved.append((type_, "is_type_of", type_.is_type_of))
        type_.is_type_of = None
        for field_ in type_.fields.values():
            saved.append((field_, "resolve", field_.resolve))
            field_.resolve = None
    try:
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


@contextlib.asynccontextmanager
async def preloaded_units(runtime: Runtime, context: Context) -> AsyncIterator[None]:
    """``units`` answers from one page of ORM objects loaded by the real resolver once."""
    module = vars(schema.property.queries)
    original = module["scoped_connection"]
    loaded: Any = None

    async def cached(*args: Any, **kwargs: Any) -> Any:
        nonlocal loaded
        if loaded is None:
            loaded = await original(*args, **kwargs)
        return loaded

    module["scoped_connection"] = cached
    try:
        result = await runtime.schema.execute(QUERY, context_value=context)
        if result.errors:
            raise RuntimeError(result.errors)
        await context.close()
        yield
    finally:
        module["scoped_connection"] = original


# --- driving ---------------------------------------------------------------------------------

Call = Callable[[], Awaitable[None]]


async def drive(call: Call, requests: int, concurrency: int) -> float:
    """Seconds for ``requests`` calls with ``concurrency`` of them in flight."""
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start


@dataclass
class Contender:
    name: str
    call: Call
    rates: dict[int, list[float]] = field(default_factory=dict)  # concurrency → requests/s per round

    def rate(self, concurrency: int) -> float:
        return statistics.median(self.rates[concurrency])


def normalised(body: Any) -> Any:
    """Key order does not matter in JSON objects; list order does."""
    if isinstance(body, dict):
        return {key: normalised(body[key]) for key in sorted(body)}
    if isinstance(body, list):
        return [normalised(item) for item in body]
    return body


# --- setup -----------------------------------------------------------------------------------


def _with_database(url: str, name: str) -> str:
    base, _, _old = url.rpartition("/")
    return f"{base}/{name}"


@contextlib.asynccontextmanager
async def throwaway_database(admin_url: str) -> AsyncIterator[str]:
    from backend.cli import migrate, seed_demo

    name = f"wuye_bench_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = _with_database(admin_url, name)
    try:
        await migrate(url)
        await seed_demo(url)
        yield url
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def _asyncpg_dsn(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+')[0]}{sep}{rest}"


@dataclass
class Results:
    requests: int
    concurrency: int
    rounds: int
    rates: dict[str, dict[int, float]]
    authz_seconds: dict[str, float]  # per entry point
    authz_calls: dict[str, int]
    request_seconds: float
    gc_seconds: float
    gc_collections: dict[int, int]  # generation → collections
    units: int
    occupants: int

    @property
    def authz_share(self) -> float:
        return sum(self.authz_seconds.values()) / self.request_seconds

    @property
    def gc_share(self) -> float:
        return self.gc_seconds / self.request_seconds

    def ratio(self, name: str, concurrency: int) -> float:
        return self.rates[name][concurrency] / self.rates["handwritten"][concurrency]

    @property
    def ratio_ok(self) -> bool:
        return all(self.ratio("graphql", c) >= TARGET_RATIO for c in (1, self.concurrency))

    @property
    def authz_ok(self) -> bool:
        return self.authz_share <= TARGET_AUTHZ

    def as_json(self) -> dict[str, Any]:
        levels = (1, self.concurrency)
        return {
            "query": QUERY,
            "requests": self.requests,
            "rounds": self.rounds,
            "units": self.units,
            "occupants": self.occupants,
            "requests_per_second": {name: {str(c): rates[c] for c in levels} for name, rates in self.rates.items()},
            "ratios": {
                f"{name}/handwritten": {str(c): self.ratio(name, c) for c in levels}
                for name in self.rates
                if name != "handwritten"
            },
            "authz": {
                "seconds": sum(self.authz_seconds.values()),
                "calls": sum(self.authz_calls.values()),
                "by_entry_point": {
                    name: {"seconds": seconds, "calls": self.authz_calls[name]}
                    for name, seconds in self.authz_seconds.items()
                },
                "request_seconds": self.request_seconds,
                "share": self.authz_share,
            },
            "gc": {
                "seconds": self.gc_seconds,
                "collections_by_generation": {str(g): n for g, n in sorted(self.gc_collections.items())},
                "share": self.gc_share,
            },
            "targets": {
                "graphql/handwritten": {"min": TARGET_RATIO, "pass": self.ratio_ok},
                "authz_share": {"max": TARGET_AUTHZ, "pass": self.authz_ok},
            },
        }

    def table(self) -> str:
        c = self.concurrency
        lines = [
            f"units(first: {PAGE}) as {USERNAME}: {self.units} units, {self.occupants} occupants; "
            f"{self.requests} requests x {self.rounds} rounds (median), sequential and {c} in flight",
            "",
            f"{'contender':<13}{'req/s (1)':>12}{f'req/s ({c})':>12}{'/hand (1)':>12}{f'/hand ({c})':>12}",
        ]
        for name, rates in self.rates.items():
            ratios = ("", "") if name == "handwritten" else (f"{self.ratio(name, 1):.1%}", f"{self.ratio(name, c):.1%}")
            lines.append(f"{name:<13}{rates[1]:>12.1f}{rates[c]:>12.1f}{ratios[0]:>12}{ratios[1]:>12}")
        worst = min(self.ratio("graphql", 1), self.ratio("graphql", c))
        lines += [
            "",
            f"graphql/handwritten  {worst:.1%} (worst of both)  target >= {TARGET_RATIO:.0%}  "
            f"{'PASS' if self.ratio_ok else 'MISS'}",
            f"authz share          {self.authz_share:.2%} ({sum(self.authz_seconds.values()) * 1000:.1f} ms in "
            f"{sum(self.authz_calls.values())} calls / {self.request_seconds * 1000:.0f} ms of {self.requests} "
            f"sequential requests)  target <= {TARGET_AUTHZ:.0%}  {'PASS' if self.authz_ok else 'MISS'}",
        ]
        for name, seconds in sorted(self.authz_seconds.items(), key=lambda item: -item[1]):
            calls = self.authz_calls[name]
            lines.append(
                f"  {name:<26}{seconds * 1000:>8.1f} ms {calls:>7} calls {seconds / calls * 1e6:>7.2f} µs/call"
            )
        collections = ", ".join(f"gen{g} x{n}" for g, n in sorted(self.gc_collections.items()))
        lines.append(
            f"gc share (info)      {self.gc_share:.2%} ({self.gc_seconds * 1000:.1f} ms in the same requests; {collections})"
        )
        return "\n".join(lines)


def profile_report(profile: cProfile.Profile, top: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs()
    for order in ("cumulative", "tottime"):
        out.write(f"\n--- top {top} by {order} ---\n")
        stats.sort_stats(order).print_stats(top)
    return out.getvalue()


async def run(args: argparse.Namespace) -> Results:
    admin_url = os.environ.get("WUYE_BENCH_DATABASE_URL", DEFAULT_DATABASE)
    redis_url = os.environ.get("WUYE_BENCH_REDIS_URL", DEFAULT_REDIS)
    log(f"creating a throwaway database on {admin_url.rpartition('@')[2]} and seeding the demo company …")
    async with throwaway_database(admin_url) as database_url:
        settings = Settings(
            database_url=database_url,
            redis_url=redis_url,
            mqtt_url=None,
            secret_key="bench-secret-key-that-is-long-enough-for-hs256",
            requests_per_minute=1_000_000_000,
            data_dir=Path(".wuye/bench"),
        )
        runtime = await build_runtime(settings)
        pool = await asyncpg.create_pool(
            _asyncpg_dsn(database_url), min_size=settings.db_pool_size, max_size=settings.db_pool_size
        )
        try:
            return await measure(args, settings, runtime, pool)
        finally:
            await pool.close()
            await runtime.close()


async def measure(args: argparse.Namespace, settings: Settings, runtime: Runtime, pool: Any) -> Results:
    client = ("127.0.0.1", 50000)
    # As a served process does after start-up (backend.app lifespan): long-lived objects
    # leave the garbage collector's generations. Applies to every contender alike.
    gc.collect()
    gc.freeze()
    async with (
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(settings, runtime=runtime), client=client),
            base_url="http://wuye.bench",
        ) as gql_http,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=handwritten_app(settings, runtime, pool), client=client),
            base_url="http://hand.bench",
        ) as hand_http,
    ):
        login = await gql_http.post(
            "/graphql", json={"query": LOGIN, "variables": {"username": USERNAME, "password": PASSWORD}}
        )
        logged_in = login.json()["data"]["login"]
        if logged_in["errors"]:
            raise SystemExit(f"cannot log in as {USERNAME}: {logged_in['errors']}")
        token = logged_in["accessToken"]
        headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        gql_body = orjson.dumps({"query": QUERY})
        hand_body = orjson.dumps({"first": PAGE})

        async def post_graphql() -> httpx.Response:
            return await gql_http.post("/graphql", content=gql_body, headers=headers)

        async def post_handwritten() -> httpx.Response:
            return await hand_http.post("/units", content=hand_body, headers=headers)

        # The comparison is only honest if both return the same document.
        gql_json = orjson.loads((await post_graphql()).content)
        hand_json = orjson.loads((await post_handwritten()).content)
        if "errors" in gql_json:
            raise SystemExit(f"the GraphQL endpoint answered with errors: {gql_json['errors']}")
        if normalised(gql_json) != normalised(hand_json):
            raise SystemExit("the hand-written endpoint does not return the GraphQL endpoint's JSON")
        edges = gql_json["data"]["units"]["edges"]
        if len(edges) != PAGE:
            raise SystemExit(f"expected {PAGE} units in {USERNAME}'s scope, got {len(edges)}")
        occupants = sum(len(edge["node"]["occupants"]) for edge in edges)
        log(f"both endpoints return the same {len(edges)} units and {occupants} occupants")

        async def graphql_call() -> None:
            response = await post_graphql()
            if response.status_code != 200:
                raise RuntimeError(response.text)

        async def handwritten_call() -> None:
            response = await post_handwritten()
            if response.status_code != 200:
                raise RuntimeError(response.text)

        # The floor: graphql-core over the same schema, the result's own dicts as root value.
        root = gql_json["data"]
        executable = runtime.schema._schema

        async def floor_call() -> None:
            result = await graphql_core(executable, QUERY, root_value=root)
            if result.errors:
                raise RuntimeError(result.errors)

        document = parse(QUERY)

        async def floor_execute_call() -> None:
            result = execute(executable, document, root_value=root)
            if isinstance(result, Awaitable):
                result = await result
            if result.errors:
                raise RuntimeError(result.errors)

        claims = decode_access_token(settings, token)
        principal = Principal(claims.user_id, claims.username, claims.kind, claims.person_id)

        async def no_io_call() -> None:
            context = Context(runtime=runtime, permissions=Permissions(principal, runtime.authorizer))
            result = await runtime.schema.execute(QUERY, context_value=context)
            if result.errors:
                raise RuntimeError(result.errors)

        http_contenders = [Contender("graphql", graphql_call), Contender("handwritten", handwritten_call)]
        floor_contenders = [Contender("floor", floor_call), Contender("floor-exec", floor_execute_call)]
        no_io = Contender("no-io", no_io_call)
        levels = (1, args.concurrency)

        async def timed(contenders: list[Contender], concurrency: int, round_: int) -> None:
            # Alternate the order from round to round so that drift hits both sides alike.
            for contender in contenders if round_ % 2 == 0 else contenders[::-1]:
                await drive(contender.call, args.warmup, concurrency)
                seconds = await drive(contender.call, args.requests, concurrency)
                contender.rates.setdefault(concurrency, []).append(args.requests / seconds)

        for round_ in range(args.rounds):
            log(f"round {round_ + 1}/{args.rounds} …")
            for concurrency in levels:
                await timed(http_contenders, concurrency, round_)
                with plain_schema(runtime):
                    await timed(floor_contenders, concurrency, round_)
                context = Context(runtime=runtime, permissions=Permissions(principal, runtime.authorizer))
                async with preloaded_units(runtime, context):
                    await timed([no_io], concurrency, round_)

        # Authz (and GC) share: a separate sequential pass with the authz entry points timed.
        clock, gc_clock = AuthzClock(), GCClock()
        with timing_authz(clock):
            await drive(graphql_call, args.warmup, 1)
            clock.reset()
            with timing_gc(gc_clock):
                request_seconds = await drive(graphql_call, args.requests, 1)

        if args.profile:
            profile = cProfile.Profile()
            await drive(graphql_call, args.warmup, 1)
            profile.enable()
            await drive(graphql_call, args.profile, 1)
            profile.disable()
            print(f"cProfile of {args.profile} sequential /graphql requests", file=sys.stderr)
            print(profile_report(profile, args.top), file=sys.stderr)

    contenders = [*http_contenders, *floor_contenders, no_io]
    return Results(
        requests=args.requests,
        concurrency=args.concurrency,
        rounds=args.rounds,
        rates={c.name: {level: c.rate(level) for level in levels} for c in contenders},
        authz_seconds=dict(clock.seconds),
        authz_calls=dict(clock.calls),
        request_seconds=request_seconds,
        gc_seconds=gc_clock.seconds,
        gc_collections=dict(gc_clock.collections),
        units=len(edges),
        occupants=occupants,
    )


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.units_query", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="timed requests per contender and round")
    parser.add_argument("--warmup", type=int, default=30, help="untimed requests before each timed run")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight in the concurrent runs")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all contenders; the median counts")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="cProfile N /graphql requests (stderr)")
    parser.add_argument("--top", type=int, default=15, help="functions listed per profile ordering")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    # stdout carries only the results; the app's own log lines go to stderr.
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    results = asyncio.run(run(args))
    print(orjson.dumps(results.as_json(), option=orjson.OPT_INDENT_2).decode() if args.json else results.table())
    return 1 if args.strict and not (results.ratio_ok and results.authz_ok) else 0


if __name__ == "__main__":
    sys.exit(main())
