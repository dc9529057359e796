"""Monthly bills for 100,000 units: the real service against a raw bulk INSERT of the same rows.

``uv run python -m bench.bill_generation`` (or ``make bench BENCH=bill_generation``) creates a
scratch database, migrates it (``backend.migrate``), and with bulk SQL (not timed) one estate
of ``--units`` units, each bound to one PER_AREA monthly fee item. Then, ``--rounds`` times
in alternating order, on an emptied ``bills`` table:

* ``service``  — ``backend.billing.service.generate_bills`` for one month, in its own
  transaction, exactly as the monthly job runs it;
* ``raw``      — one hand-written ``INSERT INTO bills … SELECT`` of the same rows (same
  columns, same rounding) on the same engine, in its own transaction.

Both must leave the same rows (count, total and a checksum of every row) or it stops. It
prints the median seconds of each and the ratio service/raw against the target (≤ 3×).
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import io
import logging
import os
import pstats
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
import structlog
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from backend.billing.service import generate_bills
from backend.db import make_engine, make_sessionmaker
from backend.migrate import upgrade_async
from backend.property.models import Estate

TARGET_RATIO = 3.0  # service ≤ 3 × the raw INSERT
DEFAULT_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
MONTH = dt.date(2026, 11, 1)
RATE = Decimal("2.3500")  # per m² and month
DUE_DAY = 15
UNITS_PER_BUILDING = 1000

# The raw contender: what generate_bills inserts for a monthly PER_AREA item, by hand.
RAW_INSERT = """
INSERT INTO bills (estate_id, unit_id, fee_item_id, period, period_start, period_end,
                   quantity, rate, amount, due_date, status)
SELECT u.estate_id, u.id, b.fee_item_id, :period, :start, :end,
       u.building_area, :rate, round(u.building_area * :rate, 2), :due, 'UNPAID'
FROM fee_bindings b
JOIN units u ON u.id = b.unit_id
WHERE b.fee_item_id = :item AND b.start_date <= :start AND (b.end_date IS NULL OR b.end_date > :start)
"""

# Every row's content, in one digest: both contenders must leave identical bills.
CHECK = """
SELECT count(*), coalesce(sum(amount), 0),
       md5(string_agg(concat_ws('|', estate_id, unit_id, fee_item_id, period, period_start, period_end,
                                quantity, rate, amount, due_date, status), ',' ORDER BY unit_id))
FROM bills
"""


# --- the scratch database --------------------------------------------------------------------


def _with_database(url: str, name: str) -> str:
    base, _, _old = url.rpartition("/")
    return f"{base}/{name}"


@asynccontextmanager
async def scratch_database(admin_url: str) -> AsyncIterator[str]:
    """A database created for the run, migrated, dropped at the end (also on failure)."""
    name = f"wuye_bench_bills_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = _with_database(admin_url, name)
    try:
        await upgrade_async(url)
        yield url
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def build_estate(engine: AsyncEngine, units: int) -> tuple[int, int]:
    """One estate of ``units`` units in buildings of 1,000, all bound to one PER_AREA monthly
    fee item: bulk SQL, a few statements whatever the size. Returns (estate id, item id)."""
    buildings = -(-units // UNITS_PER_BUILDING)
    async with engine.begin() as connection:

        async def one(sql: str, **params: Any) -> int:
            return int((await connection.execute(text(sql), params)).scalar_one())

        company = await one(
            "INSERT INTO org_units (kind, code, name, path) VALUES ('COMPANY', 'B', 'Bench', '/0/') RETURNING id"
        )
        await connection.execute(
            text("UPDATE org_units SET path = :path WHERE id = :id"), {"path": f"/{company}/", "id": company}
        )
        estate = await one(
            "INSERT INTO estates (org_unit_id, org_path, code, name, address) "
            "VALUES (:org, :path, 'BENCH', '基准小区', '') RETURNING id",
            org=company,
            path=f"/{company}/",
        )
        await connection.execute(
            text(
                "INSERT INTO buildings (estate_id, code, name) "
                "SELECT :estate, b::text, b || '号楼' FROM generate_series(1, :buildings) AS b"
            ),
            {"estate": estate, "buildings": buildings},
        )
        # Areas from 45.00 to 194.99 m², spread so that rounding to the cent matters.
        await connection.execute(
            text(
                """
                INSERT INTO units (estate_id, building_id, code, floor, building_area, inner_area, usage, status)
                SELECT :estate, bl.id, bl.code || '-1-' || lpad(((n - 1) % :per + 1)::text, 4, '0'),
                       ((n - 1) % :per) / 10 + 1, 45 + (n * 37 % 15000) / 100.0, 40, 'RESIDENTIAL', 'OCCUPIED'
                FROM generate_series(1, :units) AS n
                JOIN buildings bl ON bl.estate_id = :estate AND bl.code = (((n - 1) / :per) + 1)::text
                """
            ),
            {"estate": estate, "units": units, "per": UNITS_PER_BUILDING},
        )
        item = await one(
            "INSERT INTO fee_items (estate_id, code, name, kind, method, cycle, due_day, late_fee_daily_rate, "
            "grace_days, active) VALUES (:estate, 'PF', '物业服务费', 'PROPERTY_FEE', 'PER_AREA', 'MONTHLY', :due, 0, "
            "0, true) RETURNING id",
            estate=estate,
            due=DUE_DAY,
        )
        await connection.execute(
            text("INSERT INTO fee_rates (fee_item_id, rate, effective_from) VALUES (:item, :rate, '2026-01-01')"),
            {"item": item, "rate": RATE},
        )
        await connection.execute(
            text(
                "INSERT INTO fee_bindings (unit_id, fee_item_id, start_date) "
                "SELECT id, :item, '2026-01-01' FROM units WHERE estate_id = :estate"
            ),
            {"item": item, "estate": estate},
        )
    async with engine.begin() as connection:
        await connection.execute(text("ANALYZE"))
    return estate, item


# --- the contenders --------------------------------------------------------------------------


@dataclass
class Outcome:
    rows: int
    total: Decimal
    digest: str


@dataclass
class Contender:
    name: str
    run: Callable[[], Awaitable[None]]
    seconds: list[float] = field(default_factory=list)
    outcome: Outcome | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


async def empty_bills(engine: AsyncEngine) -> None:
    """The same starting point for every run: no bills, no dirty buffers waiting."""
    async with engine.begin() as connection:
        await connection.execute(text("TRUNCATE bills CASCADE"))
    async with engine.begin() as connection:
        await connection.execute(text("CHECKPOINT"))


async def outcome(engine: AsyncEngine) -> Outcome:
    async with engine.connect() as connection:
        rows, total, digest = (await connection.execute(text(CHECK))).one()
    return Outcome(int(rows), Decimal(total), str(digest))


def contenders(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], estate_id: int, item_id: int, units: int
) -> list[Contender]:
    async def service() -> None:
        async with sessionmaker() as session, session.begin():
            estate = await session.scalar(select(Estate).where(Estate.id == estate_id))
            assert estate is not None
            report = await generate_bills(session=session, estate=estate, month=MONTH, actor_id=None, request_id=None)
        if report.created != units:
            raise SystemExit(f"generate_bills created {report.created} bills, expected {units}")

    async def raw() -> None:
        async with engine.begin() as connection:
            await connection.execute(
                text(RAW_INSERT),
                {
                    "period": f"{MONTH:%Y-%m}",
                    "start": MONTH,
                    "end": dt.date(2026, 11, 30),
                    "rate": RATE,
                    "due": MONTH.replace(day=DUE_DAY),
                    "item": item_id,
                },
            )

    return [Contender("service", service), Contender("raw", raw)]


async def timed(engine: AsyncEngine, contender: Contender) -> float:
    await empty_bills(engine)
    started = time.perf_counter()
    await contender.run()
    seconds = time.perf_counter() - started
    result = await outcome(engine)
    if contender.outcome is None:
        contender.outcome = result
    elif result != contender.outcome:
        raise SystemExit(f"{contender.name} left different bills from one run to the next")
    return seconds


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Results:
    units: int
    rounds: int
    seconds: dict[str, list[float]]
    outcome: Outcome

    def median(self, name: str) -> float:
        return statistics.median(self.seconds[name])

    @property
    def ratio(self) -> float:
        return self.median("service") / self.median("raw")

    @property
    def ok(self) -> bool:
        return self.ratio <= TARGET_RATIO

    def as_json(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "rounds": self.rounds,
            "seconds": self.seconds,
            "median_seconds": {name: self.median(name) for name in self.seconds},
            "ratio": self.ratio,
            "target": TARGET_RATIO,
            "ok": self.ok,
            "rows": self.outcome.rows,
            "total": str(self.outcome.total),
        }

    def table(self) -> str:
        lines = [
            f"monthly bills for {self.units:,} units (one PER_AREA item), {self.rounds} rounds alternating, median",
            "",
            f"{'contender':<10}{'median s':>10}{'min s':>9}{'max s':>9}{'bills/s':>11}",
        ]
        for name, seconds in self.seconds.items():
            median = self.median(name)
            lines.append(
                f"{name:<10}{median:>10.3f}{min(seconds):>9.3f}{max(seconds):>9.3f}{self.outcome.rows / median:>11,.0f}"
            )
        lines += [
            "",
            f"service/raw  {self.ratio:.2f}x  target <= {TARGET_RATIO:.0f}x  {'PASS' if self.ok else 'MISS'}",
            f"both: {self.outcome.rows:,} bills, total {self.outcome.total:,}, same rows (md5 {self.outcome.digest[:12]}…)",
        ]
        return "\n".join(lines)


async def run(args: argparse.Namespace) -> Results:
    admin_url = os.environ.get("WUYE_BENCH_DATABASE_URL", DEFAULT_DATABASE)
    log(f"creating a scratch database on {admin_url.rpartition('@')[2]} and migrating it …")
    async with scratch_database(admin_url) as database_url:
        engine = make_engine(database_url, pool_size=2)
        try:
            started = time.perf_counter()
            estate_id, item_id = await build_estate(engine, args.units)
            log(f"{args.units:,} units bound to one PER_AREA fee item in {time.perf_counter() - started:.1f} s")
            racers = contenders(engine, make_sessionmaker(engine), estate_id, item_id, args.units)
            for contender in racers:  # warm-up: plans, caches, the first file extension
                await timed(engine, contender)
                contender.outcome = None
            for round_ in range(args.rounds):
                for contender in racers if round_ % 2 == 0 else racers[::-1]:
                    contender.seconds.append(await timed(engine, contender))
                log(
                    f"round {round_ + 1}/{args.rounds}: " + ", ".join(f"{c.name} {c.seconds[-1]:.3f} s" for c in racers)
                )
            service, raw = racers
            if service.outcome != raw.outcome:
                raise SystemExit(f"the contenders left different bills: {service.outcome} != {raw.outcome}")
            if args.profile:
                await empty_bills(engine)
                profile = cProfile.Profile()
                profile.enable()
                await service.run()
                profile.disable()
                print(profile_report(profile, args.top), file=sys.stderr)
            assert service.outcome is not None
            return Results(args.units, args.rounds, {c.name: c.seconds for c in racers}, service.outcome)
        finally:
            await engine.dispose()


def profile_report(profile: cProfile.Profile, top: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs()
    out.write("cProfile of one generate_bills run (Python side; the database's time shows as waiting)\n")
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bill_generation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=100_000, help="units billed (default 100,000)")
    parser.add_argument("--rounds", type=int, default=5, help="timed runs of each contender; the median counts")
    parser.add_argument("--profile", action="store_true", help="cProfile one more generate_bills run (stderr)")
    parser.add_argument("--top", type=int, default=20, help="functions listed by --profile")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    results = asyncio.run(run(args))
    print(orjson.dumps(results.as_json(), option=orjson.OPT_INDENT_2).decode() if args.json else results.table())
    return 1 if args.strict and not results.ok else 0


if __name__ == "__main__":
    sys.exit(main())
