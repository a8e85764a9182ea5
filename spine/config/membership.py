"""Which consumer-group member a dispatcher is: its static ``group.instance.id``. Plain Python.

A dispatcher SIGKILLed and started again by its supervisor must get its partitions back at once.
A dynamic member (no ``group.instance.id``) keeps them until the broker's ``session.timeout.ms``
ends the dead one's session (45 s on Apache Kafka, measured; never on the local development
broker, which does not evict members). A static member that rejoins under the same id takes them
back at once (0.2 s measured on Kafka 4.4), so every dispatcher consumer is a static member with an
id that stays the same across restarts of the same process and differs between any two processes
that run at once: site, host and the process's *slot* on that host. A slot is the lowest number
not held by another dispatcher of the site on the host, held by an exclusive ``flock`` for the
process's life: the kernel releases it when the process dies (SIGKILL included), so the process a
supervisor starts in its place claims the same slot, while two commands serving one site at once
(two Procfile lines, or a per-site and a bench-wide command) get different ones.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
from dataclasses import dataclass
from typing import IO, Any

# Kafka checks a group.instance.id as it checks a topic name: these characters, at most 249 of them
_ILLEGAL = re.compile(r"[^A-Za-z0-9._-]")
MAX_LENGTH = 249


MAX_SLOTS = 256


@dataclass
class Slot:
	"""A claimed slot: its number, held until ``release`` or the end of the process."""

	number: int
	_file: IO | None

	def release(self) -> None:
		if self._file is not None:
			self._file.close()  # closing the file drops the lock
			self._file = None


def claim_slot(directory: str, name: str) -> Slot:
	"""The lowest free slot for ``name`` among the processes of this host, held by an exclusive
	``flock`` on ``<directory>/<name>-<n>.lock``. Raises ``OSError`` when all ``MAX_SLOTS`` are held."""
	os.makedirs(directory, exist_ok=True)
	for number in range(MAX_SLOTS):
		handle = open(os.path.join(directory, f"{name}-{number}.lock"), "a")
		try:
			fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
		except BlockingIOError:
			handle.close()
			continue
		return Slot(number, handle)
	raise OSError(f"all {MAX_SLOTS} slots of {name} in {directory} are held")


def instance_id(consumer_conf: dict[str, Any], *, site: str, host: str, slot: int) -> str | None:
	"""The ``group.instance.id`` of the dispatcher in ``slot`` of ``site`` on ``host``, or None for
	a dynamic member.

	- The kafka block's own ``group.instance.id`` is a prefix: ``<value>-<slot>``.
	- ``group.protocol: consumer`` (KIP-848) gets none: there a restarted static member is refused
	  with a fatal error while the old member's session lasts (measured on Kafka 4.4), so it stays
	  dynamic and the broker's ``group.consumer.session.timeout.ms`` bounds the wait.
	- Otherwise ``spine-<site>-<host>-<slot>``, made legal for Kafka (and shortened with a hash
	  if too long).
	"""
	given = consumer_conf.get("group.instance.id")
	if given:
		return _legal(f"{given}-{slot}")
	if str(consumer_conf.get("group.protocol", "classic")).lower() == "consumer":
		return None
	return _legal(f"spine-{site}-{host}-{slot}")


def _legal(text: str) -> str:
	clean = _ILLEGAL.sub("_", text)
	if len(clean) <= MAX_LENGTH:
		return clean
	digest = hashlib.sha1(clean.encode()).hexdigest()[:12]
	return f"{clean[: MAX_LENGTH - 13]}-{digest}"
