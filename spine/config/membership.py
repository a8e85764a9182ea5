"""Which consumer-group member a dispatcher is: its static ``group.instance.id``. Plain Python.

A dispatcher SIGKILLed and started again by its supervisor must get its partitions back at once.
A dynamic member (no ``group.instance.id``) keeps them until the broker's ``session.timeout.ms``
ends the dead one's session (45 s on Apache Kafka, measured; never on the local development
broker, which does not evict members). A static member that rejoins under the same id takes them
back at once (0.2 s measured on Kafka 4.4), so every dispatcher consumer is a static member with an
id that stays the same across restarts of the same process and differs between any two processes
that run at once: site, host and the process's index among ``--numworkers``.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

# Kafka checks a group.instance.id as it checks a topic name: these characters, at most 249 of them
_ILLEGAL = re.compile(r"[^A-Za-z0-9._-]")
MAX_LENGTH = 249


def instance_id(consumer_conf: dict[str, Any], *, site: str, host: str, index: int) -> str | None:
	"""The ``group.instance.id`` of dispatcher ``index`` of ``site`` on ``host``, or None for a
	dynamic member.

	- The kafka block's own ``group.instance.id`` is a prefix: ``<value>-<index>`` (as before).
	- ``group.protocol: consumer`` (KIP-848) gets none: there a restarted static member is refused
	  with a fatal error while the old member's session lasts (measured on Kafka 4.4), so it stays
	  dynamic and the broker's ``group.consumer.session.timeout.ms`` bounds the wait.
	- Otherwise ``spine-<site>-<host>-<index>``, made legal for Kafka (and shortened with a hash
	  if too long).
	"""
	given = consumer_conf.get("group.instance.id")
	if given:
		return _legal(f"{given}-{index}")
	if str(consumer_conf.get("group.protocol", "classic")).lower() == "consumer":
		return None
	return _legal(f"spine-{site}-{host}-{index}")


def _legal(text: str) -> str:
	clean = _ILLEGAL.sub("_", text)
	if len(clean) <= MAX_LENGTH:
		return clean
	digest = hashlib.sha1(clean.encode()).hexdigest()[:12]
	return f"{clean[: MAX_LENGTH - 13]}-{digest}"
