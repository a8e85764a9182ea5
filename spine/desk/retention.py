"""Daily purge of old Message Log entries, in small batches so the table is never locked for long.

Only finished entries go: Published/Processed/Skipped after ``keep_done_days``, Failed/Invalid
after ``keep_failed_days`` (Spine Settings). Pending, Error, Publishing and Processing entries
are never deleted, whatever their age.
"""

from __future__ import annotations

import datetime

import frappe
from frappe.utils import now_datetime

from spine import logs

log = logs.logger(__name__)

DONE = ("Published", "Processed", "Skipped")
PARKED = ("Failed", "Invalid")


def purge_daily() -> None:
	"""Scheduler entry (daily)."""
	deleted = purge()
	if deleted:
		log.info("Spine retention: deleted %s old Message Log entries", deleted)


def purge(now: datetime.datetime | None = None) -> int:
	"""Delete expired entries batch by batch (one commit per batch); returns how many were deleted."""
	settings = frappe.get_single("Spine Settings")
	now = now or now_datetime()
	batch = int(settings.purge_batch_size or 5000)
	total = 0
	for statuses, days in ((DONE, settings.keep_done_days or 30), (PARKED, settings.keep_failed_days or 90)):
		cutoff = now - datetime.timedelta(days=int(days))
		while True:
			frappe.db.sql(
				f"""DELETE FROM `tabMessage Log` WHERE status IN ({", ".join(["%s"] * len(statuses))})
				AND modified < %s ORDER BY modified LIMIT %s""",
				(*statuses, cutoff, batch),
			)
			count = frappe.db.sql("SELECT ROW_COUNT()")[0][0]
			frappe.db.commit()  # nosemgrep: frappe-manual-commit - short transactions keep row locks brief
			total += count
			if count < batch:
				break
	return total
