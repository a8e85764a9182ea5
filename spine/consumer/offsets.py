"""How far each Kafka partition is stored in Message Log: the point the consumer group's offsets follow.

A row of Spine Consumer Offset per (consumer group, topic, partition) holds ``stored_up_to``, the
offset of the next message to store. The intake moves it in the same transaction that inserts
the rows, and only over a batch that continues from it, so every message before it is in Message
Log (or was stored and purged since). The dispatcher commits Kafka offsets up to it and resumes
from it; a hand-over lost with Redis is read again from it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import frappe
from frappe.utils import now_datetime

from spine import db_connection, logs
from spine.kafka.records import Record
from spine.kafka.stored import TP, continuation

log = logs.logger(__name__)

DOCTYPE = "Spine Consumer Offset"


def row_name(group: str, topic: str, partition: int) -> str:
	"""The row's name: the same for the same partition of a group, so concurrent inserts meet."""
	return hashlib.sha1(f"{group}\0{topic}\0{partition}".encode()).hexdigest()[:20]


class StoredPositions:
	"""``StoredOffsets`` of one consumer group on this site, for the dispatcher (reads afresh each
	call; a dead database connection is replaced on the next call)."""

	def __init__(self, group: str, outage: db_connection.Outage):
		self.group = group
		self.outage = outage

	def stored(self, partitions: Sequence[TP]) -> dict[TP, int]:
		if not partitions:
			return {}
		return db_connection.call(lambda: self._stored(partitions), self.outage)

	def begin(self, starts: dict[TP, int], topic_ids: dict[TP, str] | None = None) -> None:
		db_connection.call(lambda: self._begin(starts, topic_ids or {}), self.outage)

	def topic_ids(self, partitions: Sequence[TP]) -> dict[TP, str]:
		if not partitions:
			return {}

		def read() -> dict[TP, str]:
			names = {row_name(self.group, t, p): (t, p) for t, p in partitions}
			rows = frappe.db.sql(
				"SELECT name, topic_id FROM `tabSpine Consumer Offset` WHERE name IN %(names)s AND topic_id != ''",
				{"names": tuple(names)},
			)
			frappe.db.rollback()
			return {names[name]: tid for name, tid in rows}

		return db_connection.call(read, self.outage)

	def set_topic_ids(self, ids: dict[TP, str]) -> None:
		def write() -> None:
			for (topic, partition), tid in ids.items():
				frappe.db.sql(
					"UPDATE `tabSpine Consumer Offset` SET topic_id = %s WHERE name = %s",
					(tid, row_name(self.group, topic, partition)),
				)
			frappe.db.commit()  # nosemgrep: frappe-manual-commit - a dispatcher's own bookkeeping

		db_connection.call(write, self.outage)

	def _stored(self, partitions: Sequence[TP]) -> dict[TP, int]:
		names = {row_name(self.group, t, p): (t, p) for t, p in partitions}
		rows = frappe.db.sql(
			"SELECT name, stored_up_to FROM `tabSpine Consumer Offset` WHERE name IN %(names)s",
			{"names": tuple(names)},
		)
		frappe.db.rollback()  # end the snapshot: the next call must see what intake committed meanwhile
		return {names[name]: int(at) for name, at in rows}

	def _begin(self, starts: dict[TP, int], topic_ids: dict[TP, str]) -> None:
		_start(self.group, starts, topic_ids)
		frappe.db.commit()  # nosemgrep: frappe-manual-commit - the start must be durable before the hand-over


def take(group: str, records: list[Record], after: int) -> list[Record]:
	"""In the intake's transaction: lock the partition's position and move it past ``records``.

	Returns the records to store: those at or after the stored position. Returns none when the
	batch does not continue from it (an earlier hand-over was lost: storing these would leave a
	hole; the dispatcher reads the partition again from the stored position) or when all of them
	are stored already.
	"""
	if not records:
		return []
	topic, partition = records[0]["topic"], records[0]["partition"]
	name = row_name(group, topic, partition)
	found = frappe.db.sql(
		"SELECT stored_up_to FROM `tabSpine Consumer Offset` WHERE name = %s FOR UPDATE", (name,)
	)
	if not found:  # its row was deleted by hand: start it here
		_start(group, {(topic, partition): after})
		found = ((after,),)
	at = int(found[0][0])
	fresh, until = continuation(records, after, at)
	if after > at:
		log.warning(
			"Spine intake on %s: messages %s[%d]@%d-%d not stored: they continue from offset %d, but %s[%d] "
			"is stored only up to %d (a hand-over before them was lost); the dispatcher reads the partition "
			"again from %d",
			frappe.local.site, topic, partition, records[0]["offset"], records[-1]["offset"], after, topic,
			partition, at, at,
		)  # fmt: skip
	if until is not None:
		frappe.db.sql(
			"UPDATE `tabSpine Consumer Offset` SET stored_up_to = %s, modified = %s WHERE name = %s",
			(until, now_datetime(), name),
		)
	return fresh


def _start(group: str, starts: dict[TP, int], topic_ids: dict[TP, str] | None = None) -> None:
	"""Positions where reading starts (with the topic's id, where known), replacing what a row held."""
	now = now_datetime()
	ids = topic_ids or {}
	frappe.db.sql(
		"""INSERT INTO `tabSpine Consumer Offset`
		(name, creation, modified, owner, modified_by, docstatus, idx, consumer_group, topic, kafka_partition,
			stored_up_to, topic_id) VALUES """
		+ ", ".join(
			["(%s, %s, %s, 'Administrator', 'Administrator', 0, 0, %s, %s, %s, %s, %s)"] * len(starts)
		)
		+ " ON DUPLICATE KEY UPDATE stored_up_to = VALUES(stored_up_to), modified = VALUES(modified), "
		"topic_id = VALUES(topic_id)",
		[
			v
			for (topic, partition), at in starts.items()
			for v in (
				row_name(group, topic, partition),
				now,
				now,
				group,
				topic,
				partition,
				at,
				ids.get((topic, partition), ""),
			)  # fmt: skip
		],
	)


def positions(group: str) -> dict[TP, int]:
	"""Every stored position of ``group`` on this site."""
	return {
		(t, int(p)): int(at)
		for t, p, at in frappe.db.sql(
			"SELECT topic, kafka_partition, stored_up_to FROM `tabSpine Consumer Offset` WHERE consumer_group = %s",
			(group,),
		)
	}
