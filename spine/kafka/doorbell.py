"""A bench-wide doorbell for dispatchers that rest between polls. Plain Python (redis), no Frappe.

On a broker that answers an empty fetch at once (the local development broker) a dispatcher
pauses its partitions while idle and looks for news every so often. The relay rings the bell
(one Redis PUBLISH) with the topics it has just published to, so a resting dispatcher of any site
on the bench that follows one of them looks at once instead of at its next look. The bell is only
a hint: a lost ring costs one idle interval, never a message; messages produced from outside the
bench are found by the regular looks.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable

from redis import Redis

log = logging.getLogger(__name__)

# After a ring nobody heard, this long without ringing (a dispatcher that starts resting meanwhile
# looks for news on its own within its idle interval, at most 2 s)
QUIET_SECONDS = 10.0


class Waiter:
	"""One dispatcher's side of the bell: ``wait(timeout)`` returns True early when one of ``topics``
	was rung (the ring is consumed)."""

	def __init__(self) -> None:
		self.topics: frozenset[str] = frozenset()
		self._event = threading.Event()

	def wait(self, timeout: float) -> bool:
		rung = self._event.wait(timeout)
		self._event.clear()
		return rung

	def ring(self) -> None:
		self._event.set()


class Doorbell:
	"""The bell on ``channel`` of ``connection``: ``ring`` publishes, ``waiter`` subscribes (one
	listening thread per process, started with the first waiter)."""

	def __init__(self, connection: Redis, channel: str):
		self.connection = connection
		self.channel = channel
		self._waiters: list[Waiter] = []
		self._lock = threading.Lock()
		self._listener: threading.Thread | None = None
		self._quiet_until = 0.0

	def ring(self, topics: Iterable[str]) -> None:
		"""Tell resting dispatchers that ``topics`` have new messages. Never raises (only a hint).

		After a ring nobody heard (no dispatcher of the bench rests: on Kafka none does), the bell
		stays silent for ``QUIET_SECONDS``: a PUBLISH per commit for no listener is wasted work."""
		topics = sorted(set(topics))
		if not topics or time.monotonic() < self._quiet_until:
			return
		try:
			if not self.connection.publish(self.channel, json.dumps(topics)):
				self._quiet_until = time.monotonic() + QUIET_SECONDS
		except Exception as e:
			log.debug("doorbell: ring for %s not sent: %s", topics, e)

	def waiter(self) -> Waiter:
		"""A new waiter, rung whenever one of its ``topics`` is."""
		waiter = Waiter()
		with self._lock:
			self._waiters.append(waiter)
			if self._listener is None:
				self._listener = threading.Thread(target=self._listen, name="spine-doorbell", daemon=True)
				self._listener.start()
		return waiter

	def forget(self, waiter: Waiter) -> None:
		with self._lock:
			if waiter in self._waiters:
				self._waiters.remove(waiter)

	def _listen(self) -> None:
		while True:
			try:
				pubsub = self.connection.pubsub(ignore_subscribe_messages=True)
				pubsub.subscribe(self.channel)
				for message in pubsub.listen():
					if message.get("type") == "message":
						self._deliver(set(json.loads(message["data"])))
			except Exception as e:
				log.debug("doorbell: listening on %s failed (%s); again in 1s", self.channel, e)
				time.sleep(1)

	def _deliver(self, topics: set[str]) -> None:
		with self._lock:
			waiters = list(self._waiters)
		for waiter in waiters:
			if waiter.topics & topics:
				waiter.ring()


_bells: dict[tuple[int, str], Doorbell] = {}
_bells_lock = threading.Lock()


def doorbell(connection: Redis, channel: str) -> Doorbell:
	"""The process's bell on ``channel`` of ``connection`` (one listener thread however many sites)."""
	key = (id(connection), channel)
	with _bells_lock:
		if key not in _bells:
			_bells[key] = Doorbell(connection, channel)
		return _bells[key]
