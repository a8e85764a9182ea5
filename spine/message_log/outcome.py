"""Message Log's statuses, and ``Outcome``: what handling a message came to."""

from __future__ import annotations

from dataclasses import dataclass

from spine.retry import RetryPolicy

TABLE = "`tabMessage Log`"

PENDING, PUBLISHED, FAILED = "Pending", "Published", "Failed"
PROCESSED, SKIPPED, INVALID, ERROR, WAITING = "Processed", "Skipped", "Invalid", "Error", "Waiting"
OUTBOUND, INBOUND = "Outbound", "Inbound"
UNFINISHED = {OUTBOUND: (PENDING,), INBOUND: (PENDING, ERROR, WAITING)}
FINISHED_INBOUND = (PROCESSED, SKIPPED, FAILED, INVALID)

# A failed delivery waits 5 s, 10 s, ... up to 5 min; it is never given up (the row stays Pending).
DELIVERY_RETRY = RetryPolicy(max_attempts=2**31 - 1, base_seconds=5, max_seconds=300)


@dataclass(frozen=True)
class Outcome:
	"""What handling a message came to — what every route (handlers, sync, replies, keys) and every
	gate (trust, schema) returns, and the one thing the processor writes from.

	``retry``: failed for now, tried again on the retry schedule (``Failed`` after the last attempt);
	``waiting_for``: a document (``DocType:name``) it needs, tried again when that arrives."""

	status: str
	reason: str | None = None
	retry: bool = False
	waiting_for: str | None = None
	error: BaseException | None = None

	@property
	def holds_back(self) -> bool:
		"""Whether later messages of its document wait behind it (in this batch and after)."""
		return self.retry or self.waiting_for is not None


def processed() -> Outcome:
	return Outcome(PROCESSED)


def skipped(reason: str) -> Outcome:
	return Outcome(SKIPPED, reason)


def invalid(reason: str) -> Outcome:
	return Outcome(INVALID, reason)


def failed(reason: str, error: BaseException | None = None) -> Outcome:
	"""Failed for good (the handler said not to retry, or Frappe refused the synced document)."""
	return Outcome(FAILED, reason, error=error)


def retry(reason: str, error: BaseException | None = None) -> Outcome:
	"""Failed this time; Error with the next attempt's time (Failed after the last attempt)."""
	return Outcome(ERROR, reason, retry=True, error=error)


def waiting(waiting_for: str, reason: str) -> Outcome:
	return Outcome(WAITING, reason, waiting_for=waiting_for)
