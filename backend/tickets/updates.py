"""Live updates of a ticket: every event is published after its commit on the ticket's own
channel of the events bus (``ticketUpdates`` subscribers re-check their scope per event)."""

from __future__ import annotations


def ticket_channel(ticket_id: int) -> str:
    return f"tickets:{ticket_id}"
