"""Late fees (滞纳金): accrued daily by a job, once per bill per day, after the grace days.

A bill falls late the day after ``due_date + grace_days``. Each late day adds one LATE_FEE
line of ``principal × daily rate`` (rounded half up to the cent; nothing when that is under
a cent), where the principal is what the bill still owes of its charge — amount and
adjustments, less payments and waivers, never the late fees themselves (no interest on
interest). The total of a bill's late fees never exceeds its amount, the usual cap in
property contracts. The unique index (bill, day) makes a retried, duplicated or concurrent
run add nothing; a run after the worker was down catches up the days it missed, at most
``catch_up_days`` back.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_LOCK = text(
    """
    SELECT b.id FROM bills b JOIN fee_items i ON i.id = b.fee_item_id
    WHERE b.status IN ('UNPAID', 'PARTIAL') AND i.late_fee_daily_rate > 0
      AND b.due_date + i.grace_days < CAST(:today AS date)
      AND (CAST(:estate_id AS integer) IS NULL OR b.estate_id = :estate_id)
    ORDER BY b.id
    FOR UPDATE OF b
    """
)

_ACCRUE = text(
    """
    WITH late AS (
        SELECT b.id, b.amount, i.late_fee_daily_rate AS rate,
               greatest(b.due_date + i.grace_days + 1, CAST(:today AS date) - CAST(:catch_up AS integer) + 1) AS first_day,
               b.amount
                 + coalesce(sum(l.amount) FILTER (WHERE l.kind = 'ADJUSTMENT'), 0)
                 - coalesce(sum(l.amount) FILTER (WHERE l.kind = 'PAYMENT'), 0)
                 + coalesce(sum(l.amount) FILTER (WHERE l.kind = 'REVERSAL'), 0)
                 - coalesce(sum(l.amount) FILTER (WHERE l.kind = 'WAIVER'), 0) AS principal,
               coalesce(sum(l.amount) FILTER (WHERE l.kind = 'LATE_FEE'), 0) AS accrued
        FROM bills b
        JOIN fee_items i ON i.id = b.fee_item_id
        LEFT JOIN bill_lines l ON l.bill_id = b.id
        WHERE b.status IN ('UNPAID', 'PARTIAL')
          AND i.late_fee_daily_rate > 0
          AND b.id = ANY(CAST(:locked AS integer[]))
        GROUP BY b.id, i.late_fee_daily_rate, i.grace_days
    ),
    days AS (
        SELECT late.id, late.amount, late.accrued, d::date AS day,
               round(late.principal * late.rate, 2) AS fee,
               row_number() OVER (PARTITION BY late.id ORDER BY d) AS n
        FROM late
        CROSS JOIN LATERAL generate_series(late.first_day, CAST(:today AS date), interval '1 day') AS d
        WHERE late.principal > 0
          AND NOT EXISTS (
              SELECT 1 FROM bill_lines x WHERE x.bill_id = late.id AND x.kind = 'LATE_FEE' AND x.accrued_on = d::date
          )
    ),
    capped AS (
        SELECT id, day, least(fee, amount - accrued - fee * (n - 1)) AS fee
        FROM days
        WHERE fee >= 0.01 AND amount - accrued - fee * (n - 1) > 0
    ),
    inserted AS (
        INSERT INTO bill_lines (bill_id, kind, amount, note, accrued_on, created_at)
        SELECT id, 'LATE_FEE', fee, '滞纳金 late fee', day, now() FROM capped
        ON CONFLICT (bill_id, accrued_on) WHERE kind = 'LATE_FEE' DO NOTHING
        RETURNING bill_id, amount
    )
    SELECT count(*), coalesce(sum(amount), 0), count(DISTINCT bill_id) FROM inserted
    """
)


async def accrue_late_fees(
    session: AsyncSession, *, today: dt.date, estate_id: int | None = None, catch_up_days: int = 7
) -> tuple[int, int]:
    """Add the late fees due up to and including ``today``; returns (lines, bills).

    The late bills are locked first (in id order, as payments lock them), so a payment and
    this job never interleave: a bill a payment settles gets no fee for a day it was paid."""
    locked = list((await session.scalars(_LOCK, {"today": today, "estate_id": estate_id})).all())
    if not locked:
        return 0, 0
    # Only the bills this transaction holds: one that turned late since (a refund committed
    # in between) is left to the next run, or a payment could settle it past our fee.
    row = (await session.execute(_ACCRUE, {"today": today, "locked": locked, "catch_up": catch_up_days})).one()
    return int(row[0]), int(row[2])
