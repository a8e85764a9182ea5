"""Message Log's one owner: the only code that writes a row, moves it between statuses (both
directions), keeps its retry schedule and attempt history, and states the per-document order rule.

Everything else asks this module: the capture hook and the intake insert rows through it, the relay
reports deliveries to it, the processor hands it each message's ``Outcome``, Desk's actions reset
rows through it. ``tests/unit/test_layout.py`` fails where any other module writes Message Log.

**The order rule.** A message waits while an earlier message of its document is unfinished. Its
document is (direction, topic, Kafka key); "earlier" is capture order outbound and offset order
inbound (rows of a partition are stored in offset order, so a lower name is an earlier offset);
"unfinished" is ``UNFINISHED[direction]`` — a Failed message no longer holds back. The relay
(``due_outbound``), the processor's choice of rows (``DUE_INBOUND_SQL``), a batch's locked rows
(``first_foreign_unfinished``) and a batch's own failures (``Outcomes.blocked_keys``, from
``Outcome.holds_back``) all apply this one rule.

Every locking or updating statement names its index: left alone, MariaDB locks through the
(direction, status, next_attempt_at) index or a full scan, and its gap locks then hold up every new
row of the table (a user's save, the intake) until the transaction commits.
"""

from __future__ import annotations

from spine.message_log.inbound import (
	DUE_INBOUND_SQL,
	INBOUND_COLUMNS,
	LOCK_SQL,
	LOCK_STORED_SQL,
	add_notes,
	due_inbound,
	in_document_order,
	insert_inbound,
	lock_due,
	lock_stored,
	note_sent_again,
	record_failure,
	record_waiting,
	reset,
	set_status,
	wake,
)
from spine.message_log.outbound import (
	OUTBOUND_INSERT_SQL,
	DueRows,
	delivery_failed,
	due_outbound,
	insert_outbound,
	insert_published,
	published,
	published_out_of_turn,
)
from spine.message_log.outcome import (
	DELIVERY_RETRY,
	ERROR,
	FAILED,
	FINISHED_INBOUND,
	INBOUND,
	INVALID,
	OUTBOUND,
	PENDING,
	PROCESSED,
	PUBLISHED,
	SKIPPED,
	TABLE,
	UNFINISHED,
	WAITING,
	Outcome,
	failed,
	invalid,
	processed,
	retry,
	skipped,
	waiting,
)
